#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Looking at another process's descriptors, for inspection (`kmt inspect --pid`): its
/// `/proc/PID/fd` table, and copies of its descriptors through a pidfd (`pidfd_open(2)`,
/// `pidfd_getfd(2)`, Linux 5.6; the kernel allows it for a process the caller could ptrace:
/// the same user, and under Yama's `ptrace_scope` 1 only a descendant unless the target allows it).
///
/// glibc declares both calls only in `<sys/pidfd.h>` (glibc 2.36), which Swift's Glibc module does
/// not import, and `syscall(2)` is variadic; they are looked up with `dlsym`. Without them (an older
/// C library) the calls fail with `ENOSYS`. Opening by name uses them too (``Names``' record
/// lookup); the fault seam's families for them are ``Call/pidfdOpen`` and ``Call/pidfdGetfd``.
extension Kernel {
    private typealias PidfdOpen = @convention(c) (Int32, UInt32) -> Int32
    private typealias PidfdGetfd = @convention(c) (Int32, Int32, UInt32) -> Int32

    private static let pidfdOpenFunction: PidfdOpen? = symbol("pidfd_open", as: PidfdOpen.self)
    private static let pidfdGetfdFunction: PidfdGetfd? = symbol("pidfd_getfd", as: PidfdGetfd.self)

    /// The C library's function `name` (from the global symbol scope), as `type`.
    private static func symbol<F>(_ name: String, as type: F.Type) -> F? {
        guard let address = dlsym(UnsafeMutableRawPointer(bitPattern: 0), name) else { return nil }
        return unsafeBitCast(address, to: type)
    }

    /// Runs `body` until it does not fail with `EINTR`; -1 throws the current `errno`.
    private static func retryingInterrupted(_ body: () -> Int32) throws(Errno) -> Int32 {
        while true {
            let result = body()
            if result != -1 { return result }
            if Errno.current != .interrupted { throw Errno.current }
        }
    }

    /// `pidfd_open(pid, 0)`: a descriptor that names process `pid` for as long as it is open (a
    /// pid can be reused; the pidfd cannot), close-on-exec.
    ///
    /// - Throws: `ESRCH` when there is no such process; `ENOSYS` without pidfds.
    static func openProcess(_ pid: Int32) throws(Errno) -> FileDescriptor {
        try checkFault(.pidfdOpen)
        guard let pidfdOpen = pidfdOpenFunction else { throw Errno(rawValue: ENOSYS) }
        guard pid > 0 else { throw Errno(rawValue: ESRCH) }
        return FileDescriptor(adopting: try retryingInterrupted { pidfdOpen(pid, 0) })
    }

    /// `pidfd_getfd(pidfd, fd, 0)`: a close-on-exec copy, in this process, of descriptor `fd` of
    /// the process `pidfd` names (as `SCM_RIGHTS` would pass it: the same open file).
    ///
    /// - Throws: `EBADF` when the process has no descriptor `fd`; `EPERM` when the caller may not
    ///   ptrace the process (another user, or Yama); `ESRCH` when it has exited; `ENOSYS`.
    /// - Parameter remote: a descriptor number of the other process (not one of ours).
    static func copyDescriptor(_ remote: Int32,
                               fromProcess pidfd: BorrowedDescriptor) throws(Errno) -> FileDescriptor {
        try checkFault(.pidfdGetfd)
        guard let pidfdGetfd = pidfdGetfdFunction else { throw Errno(rawValue: ENOSYS) }
        return FileDescriptor(adopting: try retryingInterrupted { pidfdGetfd(pidfd.rawValue, remote, 0) })
    }

    /// Every descriptor process `pid` has open and what it is (the `/proc/PID/fd/N` link:
    /// `socket:[INODE]`, `/dev/dri/renderD128`, `anon_inode:...`), in descriptor order.
    ///
    /// - Throws: `ENOENT` when there is no such process; `EACCES` when its descriptor table is
    ///   not the caller's to read.
    static func processDescriptors(_ pid: Int32) throws(Errno) -> [(fd: Int32, target: String)] {
        let directory = "/proc/\(pid)/fd"
        // ``directoryEntries(_:)`` answers nothing for a directory it cannot read; ask first why.
        _ = try retryingInterrupted { access(directory, R_OK | X_OK) }
        var found: [(fd: Int32, target: String)] = []
        for name in directoryEntries(directory) {
            guard let fd = Int32(name) else { continue }
            found.append((fd, readLink(directory + "/" + name) ?? "?"))
        }
        return found.sorted { $0.fd < $1.fd }
    }

    /// The `/proc/locks` spelling of the file behind `fd`: `MAJOR:MINOR:INODE` of its
    /// filesystem's device (hexadecimal, two digits at least) and its inode (decimal).
    static func lockFileIdentity(_ fd: BorrowedDescriptor) throws(Errno) -> String {
        var info = stat()
        _ = try retryingInterrupted { fstat(fd.rawValue, &info) }
        let device = UInt64(info.st_dev)
        let major = ((device >> 8) & 0xFFF) | ((device >> 32) & ~0xFFF)
        let minor = (device & 0xFF) | ((device >> 12) & ~0xFF)
        func hex(_ value: UInt64) -> String {
            let digits = String(value, radix: 16)
            return digits.count < 2 ? "0" + digits : digits
        }
        return "\(hex(major)):\(hex(minor)):\(info.st_ino)"
    }

    /// The processes holding an open file description lock (`F_OFD_SETLK`) that starts at byte
    /// `offset` of the file `identity` (``lockFileIdentity(_:)``), among the processes whose
    /// descriptor tables the caller may read, found by their `/proc/PID/fdinfo/N` `lock:` lines
    /// (the kernel lists there the locks of that descriptor's own open file description). Only
    /// descriptors whose link starts with `linkPrefix` are read (`/memfd:` for a memfd).
    ///
    /// OFD locks carry no pid (`F_OFD_GETLK` and `/proc/locks` say -1): this scan is the only way
    /// to name the process. Pids are those of the caller's pid namespace; a holder outside it is
    /// not found.
    static func ofdLockHolders(identity: String, offset: Int64, linkPrefix: String) -> [Int32] {
        var holders: [Int32] = []
        for entry in directoryEntries("/proc") {
            guard let pid = Int32(entry), let table = try? processDescriptors(pid) else { continue }
            for (fd, target) in table where target.hasPrefix(linkPrefix) {
                guard let info = readProcFile("/proc/\(pid)/fdinfo/\(fd)") else { continue }
                let held = info.split(separator: "\n").contains { line in
                    let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
                    return fields.count >= 8 && fields[0] == "lock:" && fields[2] == "OFDLCK"
                        && fields[6] == identity && fields[7] == String(offset)
                }
                if held {
                    holders.append(pid)
                    break
                }
            }
        }
        return holders.sorted()
    }

    /// The whole of a (small) procfs file; nil when it cannot be read.
    private static func readProcFile(_ path: String) -> String? {
        guard let file = try? open(path, O_RDONLY) else { return nil }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while bytes.count < 1 << 20 {
            let count = chunk.withUnsafeMutableBytes { raw in
                (try? retryingInterrupted { Int32(read(file.rawValue, raw.baseAddress, raw.count)) }) ?? -1
            }
            guard count >= 0 else { return nil }
            if count == 0 { break }
            bytes += chunk[0..<Int(count)]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
