#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CKMTShims

/// Open file description locks (`F_OFD_*`, Linux 3.15): byte-range locks that belong to an open
/// file description, not to a process, and that the kernel drops when the last descriptor of that
/// description closes, which includes its process dying. They tie a keyed mutex's owner to the
/// owner's lifetime whatever pid namespaces the processes are in.
extension Kernel {
    /// Takes an exclusive lock on byte `offset` of `fd`'s file without waiting.
    ///
    /// - Returns: false when another open file description holds it.
    static func tryLockByte(_ fd: BorrowedDescriptor, at offset: Int64) throws(Errno) -> Bool {
        var lock = byteLock(F_WRLCK, at: offset)
        do throws(Errno) {
            _ = try retrying(.fcntl) { fcntl(fd.rawValue, kmt_F_OFD_SETLK, &lock) }
        } catch {
            if error.rawValue == EAGAIN || error.rawValue == EACCES { return false }
            throw error
        }
        return true
    }

    /// Whether an open file description other than `fd`'s holds a lock on byte `offset`.
    static func byteIsLocked(_ fd: BorrowedDescriptor, at offset: Int64) throws(Errno) -> Bool {
        var lock = byteLock(F_WRLCK, at: offset)
        _ = try retrying(.fcntl) { fcntl(fd.rawValue, kmt_F_OFD_GETLK, &lock) }
        return lock.l_type != Int16(F_UNLCK)
    }

    private static func byteLock(_ type: Int32, at offset: Int64) -> flock {
        var lock = flock()
        lock.l_type = Int16(type)
        lock.l_whence = Int16(SEEK_SET)
        lock.l_start = off_t(offset)
        lock.l_len = 1
        lock.l_pid = 0  // required for F_OFD_* commands
        return lock
    }
}
