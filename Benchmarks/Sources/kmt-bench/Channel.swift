#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CBenchSupport

/// strerror(code).
func errorText(_ code: Int32) -> String {
    guard let text = strerror(code) else { return "error \(code)" }
    return String(cString: text)
}

/// A benchmark failure, with what went wrong.
struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Throws a ``BenchError`` for a negative C result (`-errno`).
@discardableResult
func check<T: BinaryInteger>(_ result: T, _ what: @autoclosure () -> String) throws(BenchError) -> T {
    if result < 0 { throw BenchError("\(what()): \(errorText(Int32(truncatingIfNeeded: -Int64(result))))") }
    return result
}

/// The commands the parent sends a peer, one `SOCK_SEQPACKET` message each: an opcode byte, then
/// up to three 64-bit arguments at bytes 8, 16, 24, and maybe descriptors.
enum Op: UInt8 {
    /// One shared handle (or raw buffer) to open and close at once. 0x4B is the payload byte of
    /// the library's `sendDescriptor`, so "ours" sends its handle with the library's own call.
    case open = 0x4B
    /// One shared handle (or raw buffer) to open and keep (live objects).
    case hold = 0x48
    /// Drop held objects down to argument 0 of them.
    case drop = 0x44
    /// Reply with this process's descriptor count and VmRSS.
    case stats = 0x53
    /// Objects for a ping-pong (descriptors).
    case setup = 0x55
    /// Run argument 0 ping-pong rounds from base value argument 1.
    case run = 0x52
    /// Exit.
    case quit = 0x51
    /// A reply.
    case done = 0x4F
}

struct Message {
    var op: Op
    var arguments: (UInt64, UInt64, UInt64) = (0, 0, 0)
    var descriptors: [Int32] = []

    init(_ op: Op, _ a: UInt64 = 0, _ b: UInt64 = 0, _ c: UInt64 = 0, descriptors: [Int32] = []) {
        self.op = op
        self.arguments = (a, b, c)
        self.descriptors = descriptors
    }
}

/// One end of the parent ↔ peer socket.
struct Channel {
    let socket: Int32

    func send(_ message: Message) throws(BenchError) {
        var bytes = [UInt8](repeating: 0, count: 32)
        bytes[0] = message.op.rawValue
        for (index, value) in [message.arguments.0, message.arguments.1, message.arguments.2].enumerated() {
            withUnsafeBytes(of: value.littleEndian) {
                bytes.replaceSubrange(8 + index * 8 ..< 16 + index * 8, with: $0)
            }
        }
        let result = bytes.withUnsafeBytes { raw in
            message.descriptors.withUnsafeBufferPointer { fds in
                kb_send(socket, raw.baseAddress, message.op == .open ? 1 : raw.count, fds.baseAddress, Int32(fds.count))
            }
        }
        try check(result, "sending \(message.op)")
    }

    /// The next message; its descriptors belong to the caller.
    func receive() throws(BenchError) -> Message {
        var bytes = [UInt8](repeating: 0, count: 32)
        var fds = [Int32](repeating: -1, count: 16)
        var count: Int32 = 0
        let got = bytes.withUnsafeMutableBytes { raw in
            fds.withUnsafeMutableBufferPointer {
                kb_recv(socket, raw.baseAddress, raw.count, $0.baseAddress, 16, &count)
            }
        }
        try check(got, "receiving a message")
        guard got > 0, let op = Op(rawValue: bytes[0]) else {
            throw BenchError("peer channel closed or garbled (\(got) bytes)")
        }
        func argument(_ index: Int) -> UInt64 {
            bytes.withUnsafeBytes {
                UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: 8 + index * 8, as: UInt64.self))
            }
        }
        var message = Message(op, argument(0), argument(1), argument(2))
        message.descriptors = Array(fds[0..<Int(count)])
        return message
    }

    /// Sends `message` and waits for the reply.
    @discardableResult
    func request(_ message: Message) throws(BenchError) -> Message {
        try send(message)
        let reply = try receive()
        guard reply.op == .done else { throw BenchError("peer answered \(reply.op) to \(message.op)") }
        return reply
    }
}

/// A second process: this executable again (`/proc/self/exe`), started with `--peer ROLE ARGS`,
/// holding the other end of a socket pair as descriptor 3.
final class Peer {
    /// What `/proc/self/exe` links to: the same file, and under valgrind (which runs the program
    /// inside its own executable) still this program, so `--trace-children=yes` profiles peers.
    static let executable: String = {
        var buffer = [CChar](repeating: 0, count: 4096)
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        return count > 0 ? cString(buffer) : "/proc/self/exe"
    }()

    let pid: pid_t
    let channel: Channel
    let role: String
    private var finished = false

    init(role: String, arguments: [String] = []) throws(BenchError) {
        var pair: [Int32] = [-1, -1]
        try check(socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair),
                  "socketpair")
        // Keep the child's end away from 3, so that dup2 to 3 clears its close-on-exec flag.
        let childEnd = fcntl(pair[1], F_DUPFD_CLOEXEC, 64)
        close(pair[1])
        defer { close(childEnd) }
        try check(childEnd, "fcntl(F_DUPFD_CLOEXEC)")

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, childEnd, 3)

        let words = ["kmt-bench", "--peer", role] + arguments
        var argv: [UnsafeMutablePointer<CChar>?] = words.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var child: pid_t = 0
        let spawned = posix_spawn(&child, Peer.executable, &actions, nil, &argv, environ)
        guard spawned == 0 else {
            close(pair[0])
            throw BenchError("posix_spawn of a \(role) peer: \(errorText(spawned))")
        }
        pid = child
        channel = Channel(socket: pair[0])
        self.role = role
    }

    /// Tells the peer to exit and reaps it.
    func finish() throws(BenchError) {
        finished = true
        try? channel.send(Message(.quit))
        close(channel.socket)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        // WIFEXITED && WEXITSTATUS == 0
        guard status & 0x7F == 0, (status >> 8) & 0xFF == 0 else {
            throw BenchError("\(role) peer ended with status 0x\(String(status, radix: 16))")
        }
    }

    deinit {
        // A peer left behind by an error may be blocked anywhere: it is ended.
        if !finished {
            close(channel.socket)
            kill(pid, SIGKILL)
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        }
    }
}

/// This process's descriptor count and resident memory.
struct ProcessStats {
    var descriptors: Int
    var residentKiB: Int

    static func current() -> ProcessStats {
        ProcessStats(descriptors: Int(kb_count_fds()), residentKiB: kb_status_kib("VmRSS"))
    }
}
