#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CKMTShims

/// Unix-domain sockets: socket pairs (a shared handle is one end of one) and sockets bound to
/// paths (what the per-user name namespace is built from).
extension Kernel {
    /// The longest socket path `sockaddr_un` holds (107 bytes and a NUL).
    static let maximumSocketPathLength = 107

    /// The two ends of a socket pair, each with one owner.
    struct SocketPair: ~Copyable {
        var first: FileDescriptor
        var second: FileDescriptor
    }

    /// `socketpair(AF_UNIX, type | SOCK_CLOEXEC)`.
    static func socketPair(type: Int32) throws(Errno) -> SocketPair {
        var fds: (Int32, Int32) = (-1, -1)
        _ = try withUnsafeMutableBytes(of: &fds) { (raw) throws(Errno) in
            let pair = raw.baseAddress!.assumingMemoryBound(to: Int32.self)
            return try retrying(.socketpair) { socketpair(AF_UNIX, type | Int32(SOCK_CLOEXEC.rawValue), 0, pair) }
        }
        return SocketPair(first: FileDescriptor(adopting: fds.0), second: FileDescriptor(adopting: fds.1))
    }

    /// `getsockopt(2)` for an `Int32` option.
    static func socketOption(_ fd: BorrowedDescriptor, level: Int32, _ option: Int32) throws(Errno) -> Int32 {
        var value: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        _ = try retrying(.sockopt) { getsockopt(fd.rawValue, level, option, &value, &length) }
        return value
    }

    /// `setsockopt(2)` for an `Int32` option.
    static func setSocketOption(_ fd: BorrowedDescriptor, level: Int32, _ option: Int32, _ value: Int32) throws(Errno) {
        var value = value
        _ = try retrying(.sockopt) {
            setsockopt(fd.rawValue, level, option, &value, socklen_t(MemoryLayout<Int32>.size))
        }
    }

    private static func withAddress<R>(
        _ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R
    ) throws(Errno) -> R {
        let bytes = Array(path.utf8)
        guard bytes.count <= maximumSocketPathLength else { throw Errno(rawValue: ENAMETOOLONG) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
    }

    /// A close-on-exec `SOCK_SEQPACKET` socket, `SOCK_NONBLOCK` too when asked.
    private static func seqpacketSocket(nonBlocking: Bool = false) throws(Errno) -> FileDescriptor {
        let type = Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | (nonBlocking ? kmt_SOCK_NONBLOCK : 0)
        return FileDescriptor(adopting: try retrying(.socket) { socket(AF_UNIX, type, 0) })
    }

    /// A close-on-exec `SOCK_SEQPACKET` socket bound to `path` and listening.
    static func listen(at path: String) throws(Errno) -> FileDescriptor {
        let socket = try seqpacketSocket()
        try checkFault(.bind)
        let bound = try withAddress(path) { bind(socket.rawValue, $0, $1) }
        if bound != 0 { throw Errno.current }
        try checkFault(.listen)
        if Glibc.listen(socket.rawValue, 64) != 0 { throw Errno.current }
        return socket
    }

    /// A close-on-exec `SOCK_SEQPACKET` socket connected to the listener at `path`. With
    /// `nonBlocking` the socket is `SOCK_NONBLOCK` and a listener whose backlog is full (its
    /// process does not accept: stopped, wedged) fails at once with `EAGAIN` instead of blocking.
    static func connect(to path: String, nonBlocking: Bool = false) throws(Errno) -> FileDescriptor {
        let socket = try seqpacketSocket(nonBlocking: nonBlocking)
        while true {
            if let fault = injectedFault(.connect) {
                if fault == .interrupted { continue }
                throw fault
            }
            let result = try withAddress(path) { Glibc.connect(socket.rawValue, $0, $1) }
            if result == 0 { return socket }
            if Errno.current != .interrupted { throw Errno.current }
        }
    }

    /// `accept4(2)` with `SOCK_CLOEXEC`, and `SOCK_NONBLOCK` when asked (the connection never
    /// blocks its sender).
    ///
    /// - Throws: `EAGAIN` when nothing waits on a non-blocking listener; `EMFILE`, `ENOMEM`.
    static func accept(_ listener: BorrowedDescriptor, nonBlocking: Bool = false) throws(Errno) -> FileDescriptor {
        FileDescriptor(adopting: try retrying(.accept) {
            nonBlocking ? kmt_accept_nonblocking(listener.rawValue) : kmt_accept_cloexec(listener.rawValue)
        })
    }
}
