import Testing
@testable import D3DKMT
#if canImport(Glibc)
import Glibc
#endif

// `kmt inspect`, `kmt names` and the inspection API, against objects a peer process holds and
// moves: its keyed mutex owned and released, its fence signalled, and the handle unchanged after.

/// The `kmt` executable, built beside the test peer.
let kmtPath: String = {
    var parts = peerPath.split(separator: "/", omittingEmptySubsequences: false)
    parts[parts.count - 1] = "kmt"
    return parts.joined(separator: "/")
}()

/// Spawns `path` with `arguments`, standard input and output on pipes (standard error is the
/// test's), and closes the pipes' other ends here.
private func spawnPiped(_ path: String, _ arguments: [String]) throws -> (pid: pid_t, input: Int32, output: Int32) {
    var input: [Int32] = [-1, -1], output: [Int32] = [-1, -1]
    guard pipe(&input) == 0, pipe(&output) == 0 else { throw Errno(rawValue: errno) }
    for fd in input + output { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_adddup2(&actions, input[0], 0)
    posix_spawn_file_actions_adddup2(&actions, output[1], 1)
    let argv = ([path] + arguments).map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var pid: pid_t = 0
    let spawned = posix_spawn(&pid, path, &actions, nil, argv, environ)
    close(input[0])
    close(output[1])
    guard spawned == 0 else {
        close(input[1])
        close(output[0])
        throw Errno(rawValue: spawned)
    }
    return (pid, input[1], output[0])
}

private func waitExit(_ pid: pid_t) -> Int32 {
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    return (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
}

/// Runs `kmt arguments` to its end: its exit status and standard output.
func runKMT(_ arguments: [String]) throws -> (status: Int32, output: String) {
    let child = try spawnPiped(kmtPath, arguments)
    close(child.input)
    var data: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = read(child.output, &chunk, chunk.count)
        if count > 0 { data += chunk[0..<count] } else if count == 0 || errno != EINTR { break }
    }
    close(child.output)
    return (waitExit(child.pid), String(decoding: data, as: UTF8.self))
}

/// `kmt arguments --json`, parsed; a failure to run or parse is a test failure and gives `.null`.
func kmtJSON(_ arguments: [String], sourceLocation: SourceLocation = #_sourceLocation) throws -> JSONValue {
    let (status, output) = try runKMT(arguments + ["--json"])
    #expect(status == 0, "kmt \(arguments) exited \(status): \(output)", sourceLocation: sourceLocation)
    guard let value = JSONValue.parse(output) else {
        Issue.record("kmt \(arguments) printed no JSON: \(output)", sourceLocation: sourceLocation)
        return .null
    }
    return value
}

/// The test peer's `guarded` mode: it shares a resource, keyed mutex and fence under a name and
/// moves them on command.
final class GuardedPeer {
    let pid: pid_t
    /// The shared handle's descriptor in the peer.
    private(set) var descriptor: Int32 = -1
    private let input: Int32
    private let output: Int32
    private var lines: LineReader
    private var exitStatus: Int32?

    init(name: String, adapter: Adapter) throws {
        (pid, input, output) = try spawnPiped(peerPath, ["guarded", name] + luidArguments(adapter))
        lines = LineReader(output)
        let first = readLine() ?? ""
        descriptor = first.hasPrefix("shared=") ? Int32(first.dropFirst(7)) ?? -1 : -1
        #expect(descriptor >= 0, "peer said: \(first)")
    }

    private func readLine() -> String? { lines.next() }

    /// Sends one command; the peer's answer line.
    @discardableResult
    func send(_ command: String) -> String {
        let line = Array((command + "\n").utf8)
        _ = line.withUnsafeBytes { write(input, $0.baseAddress, $0.count) }
        return readLine() ?? "(no answer)"
    }

    /// Ends the peer (end of its input) and returns its exit status.
    func finish() -> Int32 {
        if let exitStatus { return exitStatus }
        close(input)
        close(output)
        let status = waitExit(pid)
        exitStatus = status
        return status
    }

    deinit { _ = finish() }
}

/// A parsed JSON value (what `kmt --json` prints), for the tests to read.
indirect enum JSONValue: Equatable {
    case null
    case bool(Bool)
    case number(String)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    subscript(_ key: String) -> JSONValue {
        if case .object(let members) = self { return members[key] ?? .null }
        return .null
    }

    subscript(_ index: Int) -> JSONValue {
        if case .array(let values) = self, values.indices.contains(index) { return values[index] }
        return .null
    }

    var array: [JSONValue] { if case .array(let values) = self { return values }; return [] }
    var uint: UInt64? { if case .number(let text) = self { return UInt64(text) }; return nil }
    var int: Int64? { if case .number(let text) = self { return Int64(text) }; return nil }
    var bool: Bool? { if case .bool(let value) = self { return value }; return nil }
    var string: String? { if case .string(let value) = self { return value }; return nil }

    static func parse(_ text: String) -> JSONValue? {
        var parser = Parser(bytes: Array(text.utf8))
        guard let value = parser.value() else { return nil }
        parser.skipSpace()
        return parser.position == parser.bytes.count ? value : nil
    }

    private struct Parser {
        let bytes: [UInt8]
        var position = 0

        mutating func skipSpace() {
            while position < bytes.count, [0x20, 0x0A, 0x0D, 0x09].contains(bytes[position]) { position += 1 }
        }

        mutating func literal(_ word: String) -> Bool {
            let expected = Array(word.utf8)
            guard bytes.count - position >= expected.count,
                  Array(bytes[position..<position + expected.count]) == expected else { return false }
            position += expected.count
            return true
        }

        mutating func value() -> JSONValue? {
            skipSpace()
            guard position < bytes.count else { return nil }
            switch bytes[position] {
            case UInt8(ascii: "n"): return literal("null") ? .null : nil
            case UInt8(ascii: "t"): return literal("true") ? .bool(true) : nil
            case UInt8(ascii: "f"): return literal("false") ? .bool(false) : nil
            case UInt8(ascii: "\""): return string().map(JSONValue.string)
            case UInt8(ascii: "["):
                position += 1
                var values: [JSONValue] = []
                skipSpace()
                if position < bytes.count, bytes[position] == UInt8(ascii: "]") { position += 1; return .array([]) }
                while true {
                    guard let element = value() else { return nil }
                    values.append(element)
                    skipSpace()
                    guard position < bytes.count else { return nil }
                    position += 1
                    if bytes[position - 1] == UInt8(ascii: "]") { return .array(values) }
                    guard bytes[position - 1] == UInt8(ascii: ",") else { return nil }
                }
            case UInt8(ascii: "{"):
                position += 1
                var members: [String: JSONValue] = [:]
                skipSpace()
                if position < bytes.count, bytes[position] == UInt8(ascii: "}") { position += 1; return .object([:]) }
                while true {
                    skipSpace()
                    guard let key = string() else { return nil }
                    skipSpace()
                    guard position < bytes.count, bytes[position] == UInt8(ascii: ":") else { return nil }
                    position += 1
                    guard let member = value() else { return nil }
                    members[key] = member
                    skipSpace()
                    guard position < bytes.count else { return nil }
                    position += 1
                    if bytes[position - 1] == UInt8(ascii: "}") { return .object(members) }
                    guard bytes[position - 1] == UInt8(ascii: ",") else { return nil }
                }
            default:
                let start = position
                while position < bytes.count, "-+.eE0123456789".utf8.contains(bytes[position]) { position += 1 }
                return position > start ? .number(String(decoding: bytes[start..<position], as: UTF8.self)) : nil
            }
        }

        mutating func string() -> String? {
            guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else { return nil }
            position += 1
            var out: [UInt8] = []
            while position < bytes.count {
                let byte = bytes[position]
                position += 1
                switch byte {
                case UInt8(ascii: "\""): return String(decoding: out, as: UTF8.self)
                case UInt8(ascii: "\\"):
                    guard position < bytes.count else { return nil }
                    let escaped = bytes[position]
                    position += 1
                    switch escaped {
                    case UInt8(ascii: "n"): out.append(0x0A)
                    case UInt8(ascii: "t"): out.append(0x09)
                    case UInt8(ascii: "r"): out.append(0x0D)
                    case UInt8(ascii: "u"):
                        guard bytes.count - position >= 4,
                              let code = UInt32(String(decoding: bytes[position..<position + 4], as: UTF8.self),
                                                radix: 16),
                              let scalar = Unicode.Scalar(code) else { return nil }
                        position += 4
                        out += Array(String(Character(scalar)).utf8)
                    default: out.append(escaped)
                    }
                default: out.append(byte)
                }
            }
            return nil
        }
    }
}

extension D3DKMTSuite {
    @Suite struct Inspection {
        static let withSyncObjects = adaptersUnderTest.filter(hasSyncObjects)

        /// The checks every report of the peer's handle must pass, whatever moved.
        func expectPeerLayout(_ handle: JSONValue, adapter: Adapter,
                              sourceLocation: SourceLocation = #_sourceLocation) {
            #expect(handle["access"].uint == UInt64(SharedAccess.allAccess), sourceLocation: sourceLocation)
            #expect(handle["adapter"]["luid"]["lowPart"].uint == UInt64(adapter.info.luid.lowPart),
                    sourceLocation: sourceLocation)
            #expect(handle["adapter"]["driver"].string == adapter.info.driverName, sourceLocation: sourceLocation)
            let resource = handle["resource"]
            #expect(resource["runtimeDataSize"].int == 5, sourceLocation: sourceLocation)
            #expect(resource["resourceDriverDataSize"].int == 3, sourceLocation: sourceLocation)
            #expect(resource["totalAllocationDriverDataSize"].int == 3, sourceLocation: sourceLocation)
            let allocations = resource["allocations"].array
            #expect(allocations.count == 2, sourceLocation: sourceLocation)
            #expect(allocations.first?["size"].uint == 4096, sourceLocation: sourceLocation)
            #expect(allocations.first?["width"].uint == 64, sourceLocation: sourceLocation)
            #expect(allocations.first?["height"].uint == 16, sourceLocation: sourceLocation)
            #expect(allocations.first?["stride"].uint == 256, sourceLocation: sourceLocation)
            #expect(allocations.first?["fourccText"].string == "XR24", sourceLocation: sourceLocation)
            #expect(allocations.first?["modifier"].uint == 0, sourceLocation: sourceLocation)
            #expect(allocations.first?["driverDataSize"].int == 2, sourceLocation: sourceLocation)
            #expect(allocations.last?["size"].uint == 4096, sourceLocation: sourceLocation)
            #expect(allocations.last?["memory"].string == (adapter.info.isSoftware ? "memfd" : "dma-buf"),
                    sourceLocation: sourceLocation)
            #expect(handle["keyedMutex"]["runtimeDataSize"].int == 4, sourceLocation: sourceLocation)
            #expect(handle["syncObject"]["kind"].string == "monitored fence", sourceLocation: sourceLocation)
            #expect(handle["syncObject"]["drm"].bool == !adapter.info.isSoftware, sourceLocation: sourceLocation)
        }

        @Test(arguments: withSyncObjects)
        func inspectFollowsAPeersKeyedMutexAndFenceWithoutChangingThem(adapter: Adapter) throws {
            let name = uniqueName("inspect")
            let peer = try GuardedPeer(name: name, adapter: adapter)
            let pid = String(peer.pid), fd = String(peer.descriptor)

            // Listed by `kmt names` (as the namespace keeps it: upper case), and inspectable by
            // that spelling too.
            let objectName = String(name.dropFirst("Local\\".count)).uppercased()
            let listed = try kmtJSON(["names"]).array.first { $0["name"].string == objectName }
            #expect(listed?["kind"].string == "resource")
            #expect(listed?["namespace"].string == "session")
            #expect(listed?["canonicalName"].string == "S:" + objectName)

            // Released with its initial key, nothing signalled.
            var handle = try kmtJSON(["inspect", "--name", name])["handle"]
            expectPeerLayout(handle, adapter: adapter)
            #expect(handle["keyedMutex"]["owned"].bool == false)
            #expect(handle["keyedMutex"]["key"].uint == 0)
            #expect(handle["keyedMutex"]["ownerPid"] == .null)
            #expect(handle["keyedMutex"]["abandoned"].bool == false)
            #expect(handle["keyedMutex"]["fenceValue"].uint == 0)
            #expect(handle["syncObject"]["value"].uint == 0)
            #expect(try kmtJSON(["inspect", "--name", objectName])["handle"] == handle)

            // The peer acquires: owned, by the peer, seen through its own descriptor.
            #expect(peer.send("acquire 0") == "acquired=0")
            let byDescriptor = try kmtJSON(["inspect", "--pid", pid, "--fd", fd])
            #expect(byDescriptor["descriptor"].int == Int64(peer.descriptor))
            handle = byDescriptor["handle"]
            expectPeerLayout(handle, adapter: adapter)
            #expect(handle["keyedMutex"]["owned"].bool == true)
            #expect(handle["keyedMutex"]["ownerPid"].int == Int64(peer.pid))
            #expect(handle["keyedMutex"]["ownerRunning"].bool == true)
            #expect(handle["keyedMutex"]["abandoned"].bool == false)
            // What the report says is so: this process cannot take it.
            let device = try adapter.makeDevice()
            do {
                let opened = try device.openResource(try SharedHandle.open(name: name))
                #expect(status { _ = try opened.keyedMutex!.acquire(key: 0, timeout: .zero) } == .timeout)
            }

            // Released with key 5 and fence value 7, the fence signalled twice: the scan of the
            // peer's descriptors finds the handle (and the name thread's own copy) with the news.
            #expect(peer.send("release 5 7") == "released=5")
            #expect(peer.send("signal 3") == "signalled=3")
            let scan = try kmtJSON(["inspect", "--pid", pid])
            #expect(scan["pid"].int == Int64(peer.pid))
            let entries = scan["handles"].array
            #expect(entries.count >= 1)
            let found = entries.first { $0["descriptor"].int == Int64(peer.descriptor) }
            #expect(found != nil, "the scan missed descriptor \(fd): \(entries.map { $0["descriptor"] })")
            for entry in entries {
                handle = entry["handle"]
                expectPeerLayout(handle, adapter: adapter)
                #expect(handle["keyedMutex"]["owned"].bool == false)
                #expect(handle["keyedMutex"]["key"].uint == 5)
                #expect(handle["keyedMutex"]["fenceValue"].uint == 7)
                #expect(handle["keyedMutex"]["generation"].uint == 1)
                #expect(handle["syncObject"]["value"].uint == 3)
            }
            #expect(peer.send("signal 9") == "signalled=9")
            handle = try kmtJSON(["inspect", "--name", name])["handle"]
            #expect(handle["syncObject"]["value"].uint == 9)
            #expect(handle["keyedMutex"]["key"].uint == 5)

            // The text form says the same.
            let text = try runKMT(["inspect", "--name", name])
            #expect(text.status == 0)
            #expect(text.output.contains("released with key 5"), "kmt inspect said: \(text.output)")
            #expect(text.output.contains("value 9"), "kmt inspect said: \(text.output)")

            // Inspecting changed nothing: the handle opens with what the peer left, and the peer
            // acquires with the key and fence value it released with.
            do {
                let opened = try device.openResource(try SharedHandle.open(name: name))
                #expect(opened.allocations.count == 2)
                #expect(opened.runtimeData == [1, 2, 3, 4, 5])
                #expect(try opened.syncObject!.currentValue() == 9)
                #expect(status { _ = try opened.keyedMutex!.acquire(key: 0, timeout: .zero) } == .timeout)
            }
            #expect(peer.send("acquire 5") == "acquired=7")
            #expect(peer.send("release 0 8") == "released=0")
            #expect(peer.finish() == 0)
            #expect(resolveStatus(name, becomes: .objectNameNotFound) == .objectNameNotFound)
            // Gone with its sharer: no longer listed.
            #expect(try !kmtJSON(["names"]).array.contains { $0["name"].string == objectName })
        }

        @Test(arguments: withSyncObjects)
        func inspectingInProcessLeaksNothingAndLeavesTheHandleAsItWas(adapter: Adapter) throws {
            let device = try adapter.makeDevice()
            let mutex = try KeyedMutex.create(initialKey: 3, runtimeData: [1, 2])
            let fence = try device.createSyncObject(.monitoredFence, initialValue: 4)
            let resource = try device.createResource(
                allocations: [(.new(AllocationDescriptor(width: 8, height: 8, fourcc: 0x3432_5241)), [7])],
                runtimeData: [9], driverData: [])
            let handle = try resource.share(access: SharedAccess.read, keyedMutex: mutex, syncObject: fence)
            var report: HandleReport?
            try expectNoDescriptorLeak("inspect") { report = try handle.inspect() }
            #expect(report?.access == SharedAccess.read)
            #expect(report?.adapter.luid == adapter.info.luid)
            #expect(report?.resource?.allocations.first?.layout.size == 256)
            #expect(report?.resource?.allocations.first?.layout.fourcc == 0x3432_5241)
            #expect(report?.resource?.allocations.first?.driverDataSize == 1)
            #expect(report?.keyedMutex?.isOwned == false)
            #expect(report?.keyedMutex?.key == 3)
            #expect(report?.syncObject?.value == 4)

            _ = try mutex.acquire(key: 3, timeout: .seconds(5))
            let owned = try handle.inspect().keyedMutex
            #expect(owned?.isOwned == true)
            #expect(owned?.ownerProcessID == getpid())
            #expect(owned?.ownerIsRunning == true)
            try mutex.release(key: 6, fenceValue: 11, runtimeData: [5])
            try fence.signal(12)
            let released = try handle.inspect()
            #expect(released.keyedMutex?.isOwned == false)
            #expect(released.keyedMutex?.key == 6)
            #expect(released.keyedMutex?.fenceValue == 11)
            #expect(released.keyedMutex?.releaseDataSize == 1)
            #expect(released.syncObject?.value == 12)
            // The handle is as it was: same access, and it opens.
            #expect(try handle.access() == SharedAccess.read)
            let opened = try device.openResource(handle)
            #expect(opened.isReadOnly)
            #expect(try opened.keyedMutex!.acquire(key: 6, timeout: .seconds(5)).fenceValue == 11)
            try opened.keyedMutex!.release(key: 3)
        }

        @Test func inspectAndNamesRefuseWhatTheyCannotRead() throws {
            // Not a shared handle: a pipe of this process.
            var pipeFDs: [Int32] = [-1, -1]
            #expect(pipe(&pipeFDs) == 0)
            defer { pipeFDs.forEach { close($0) } }
            let notHandle = try runKMT(["inspect", "--pid", String(getpid()), "--fd", String(pipeFDs[0])])
            #expect(notHandle.status == 1)
            #expect(status { _ = try SharedHandle.copy(fromProcess: getpid(), descriptor: pipeFDs[0]).inspect() }
                        == .invalidParameter)
            #expect(status { _ = try SharedHandle.copy(fromProcess: getpid(), descriptor: 1_000_000) }
                        == .invalidParameter)
            // No such name; no such process; contradictory options.
            #expect(try runKMT(["inspect", "--name", uniqueName("missing")]).status == 1)
            #expect(status { _ = try SharedHandle.inspect(name: uniqueName("missing")) } == .objectNameNotFound)
            #expect(status { _ = try SharedHandle.inspectProcess(Int32.max) } == .invalidParameter)
            #expect(try runKMT(["inspect"]).status != 0)
            #expect(try runKMT(["inspect", "--name", "x", "--pid", "1"]).status != 0)
            // A sync object's name is inspected too; a retired name is not listed.
            let device = try Adapter.open(luid: AdapterInfo.software.luid).makeDevice()
            let fence = try device.createSyncObject(.fence, initialValue: 2)
            let name = uniqueName("fence")
            var shared: SharedHandle? = try fence.share(access: SyncObjectAccess.wait, name: name)
            let report = try SharedHandle.inspect(name: name)
            #expect(report.resource == nil && report.keyedMutex == nil)
            #expect(report.syncObject?.kind == .fence)
            #expect(report.syncObject?.value == 2)
            #expect(report.access == SyncObjectAccess.wait)
            let objectName = String(name.dropFirst("Local\\".count)).uppercased()
            #expect(try SharedHandle.liveNames().first { $0.objectName == objectName }?.kind == .syncObject)
            shared = nil
            _ = shared
            waitForRetirement([name])
            #expect(try !SharedHandle.liveNames().contains { $0.objectName == objectName })
        }

        @Test func everyCommandTakesJSON() throws {
            let adapters = try kmtJSON(["adapters"]).array
            #expect(adapters.count == adaptersUnderTest.count)
            #expect(adapters.map { $0["driver"].string } == adaptersUnderTest.map { $0.info.driverName })
            #expect(adapters.last?["luid"]["text"].string == AdapterInfo.software.luid.description)
            let selftest = try kmtJSON(["selftest", "--size", "65536"])
            #expect(selftest["pass"].bool == true)
            #expect(selftest["adapters"].array.count == adaptersUnderTest.count)
            #expect(selftest["adapters"].array.allSatisfy { $0["result"].string == "PASS" })
        }
    }
}
