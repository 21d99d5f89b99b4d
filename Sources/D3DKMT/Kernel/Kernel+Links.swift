#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Symbolic links as small records (a name's record, ``Names``), and the identity of an open file.
extension Kernel {
    /// Which file a descriptor is: `fstat(2)`'s `st_dev` and `st_ino` (``Call/fstat``). Two
    /// descriptors with the same identity are the same file while either is open.
    struct FileIdentity: Equatable, Sendable {
        var device: UInt64
        var inode: UInt64
    }

    /// The identity of the file behind `fd` (`fstat(2)`).
    static func fileIdentity(_ fd: BorrowedDescriptor) throws(Errno) -> FileIdentity {
        var info = stat()
        _ = try retrying(.fstat) { fstat(fd.rawValue, &info) }
        return FileIdentity(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
    }

    /// `readlink(2)` of `path` into `buffer` (``Call/readlink``); returns how many bytes the target
    /// has. A target that fills the buffer may have been cut: callers give room for more than they
    /// accept.
    ///
    /// - Throws: `ENOENT` when there is no such link; `EINVAL` when `path` is not a link.
    static func readLink(_ path: String, into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        guard let base = buffer.baseAddress else { return 0 }
        return try retrying(.readlink) {
            path.withCString { readlink($0, base.assumingMemoryBound(to: CChar.self), buffer.count) }
        }
    }

    /// `symlink(2)`: makes `path` a symbolic link whose target is `target` (``Call/symlink``).
    ///
    /// - Throws: `EEXIST` when `path` exists; the file system's error (`ENOSPC`, `EACCES`).
    static func makeSymbolicLink(_ target: String, at path: String) throws(Errno) {
        _ = try retrying(.symlink) { symlink(target, path) }
    }

    /// `rename(2)`: moves `source` to `destination` in one step, replacing what was there
    /// (``Call/rename``).
    static func rename(_ source: String, to destination: String) throws(Errno) {
        _ = try retrying(.rename) { Glibc.rename(source, destination) }
    }
}
