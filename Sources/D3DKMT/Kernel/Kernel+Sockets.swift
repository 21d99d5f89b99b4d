#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CKMTShims

/// Unix-domain sockets bound to paths, directories and polling: what the per-user name
/// namespace is built from.
extension Kernel {
    /// The longest socket path `sockaddr_un` holds (107 bytes and a NUL).
    static let maximumSocketPathLength = 107

    private static func withAddress<R>(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) throws(Errno) -> R {
        let bytes = Array(path.utf8)
        guard bytes.count <= maximumSocketPathLength else { throw Errno(rawValue: ENAMETOOLONG) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
    }

    /// A close-on-exec `SOCK_SEQPACKET` socket bound to `path` and listening.
    static func listen(at path: String) throws(Errno) -> FileDescriptor {
        let socket = FileDescriptor(adopting: try retrying { Glibc.socket(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) })
        let bound = try withAddress(path) { bind(socket.rawValue, $0, $1) }
        if bound != 0 { throw Errno.current }
        if Glibc.listen(socket.rawValue, 64) != 0 { throw Errno.current }
        return socket
    }

    /// A close-on-exec `SOCK_SEQPACKET` socket connected to the listener at `path`.
    static func connect(to path: String) throws(Errno) -> FileDescriptor {
        let socket = FileDescriptor(adopting: try retrying { Glibc.socket(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) })
        while true {
            let result = try withAddress(path) { Glibc.connect(socket.rawValue, $0, $1) }
            if result == 0 { return socket }
            if Errno.current != .interrupted { throw Errno.current }
        }
    }

    /// `accept4(2)` with `SOCK_CLOEXEC`.
    static func accept(_ listener: Int32) throws(Errno) -> FileDescriptor {
        FileDescriptor(adopting: try retrying { kmt_accept_cloexec(listener) })
    }

    /// `mkdir(2)`; an existing entry is not an error (the caller checks what it is).
    static func makeDirectory(_ path: String, mode: mode_t) throws(Errno) {
        if mkdir(path, mode) != 0, Errno.current != Errno(rawValue: EEXIST) { throw Errno.current }
    }

    /// `lstat(2)`: owner, mode and type of a path (symbolic links are not followed).
    static func pathStatus(_ path: String) throws(Errno) -> (owner: uid_t, mode: mode_t) {
        var status = stat()
        guard lstat(path, &status) == 0 else { throw Errno.current }
        return (status.st_uid, status.st_mode)
    }

    /// `unlink(2)`, ignoring errors.
    static func unlink(_ path: String) {
        _ = Glibc.unlink(path)
    }

    /// The effective user id.
    static var userID: uid_t { geteuid() }

    /// `poll(2)` until one of `descriptors` has an event or `deadline`; the `revents` of each.
    static func poll(_ descriptors: [Int32], events: Int16 = Int16(POLLIN), until deadline: Deadline) throws(Errno) -> [Int16] {
        var entries = descriptors.map { pollfd(fd: $0, events: events, revents: 0) }
        while true {
            let remaining = deadline == .never ? -1 : max(0, (deadline.nanoseconds - Deadline.now.nanoseconds + 999_999) / 1_000_000)
            let result = Glibc.poll(&entries, nfds_t(entries.count), Int32(clamping: remaining))
            if result >= 0 { return entries.map(\.revents) }
            if Errno.current != .interrupted { throw .current }
        }
    }
}
