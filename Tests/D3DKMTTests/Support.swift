import Testing
@_exported import KMTTestSupport
@testable import D3DKMT
#if canImport(Glibc)
import Glibc
#endif

/// The adapters every behavioural test runs on: all that this machine has (the software adapter
/// everywhere; virtio_gpu and vgem in the VM guest).
let adaptersUnderTest: [Adapter] = Adapter.enumerate()

/// `D3DKMT_REQUIRE_DRIVERS` (set by scripts/vm-test): drivers that must be present; a test that
/// would skip for want of one fails instead.
let requiredDrivers: [String] = (getenv("D3DKMT_REQUIRE_DRIVERS").map { String(cString: $0) } ?? "")
    .split(separator: ",").map(String.init)

func adapter(driver: String) -> Adapter? {
    adaptersUnderTest.first { $0.info.driverName == driver }
}

/// True when a render node with `driver` is here; the tests that need it are skipped on the host.
func hasDriver(_ driver: String) -> Bool { adapter(driver: driver) != nil }

/// A device on `adapter` whose allocator is set up: GBM opens its descriptors (its own open of
/// the render node, Mesa's) on a device's first allocation and keeps them for the device's life,
/// so tests that count descriptors around allocations on a device made outside the count start
/// from here. (`imagesComeFromGBMAndTheirLayoutReachesTheOpener` checks they go with the device.)
func readyDevice(_ adapter: Adapter) throws -> Device {
    let device = try adapter.makeDevice()
    _ = try? device.createAllocation(.new(AllocationDescriptor(size: 4096)))
    return device
}

/// Runs `body` and checks that it leaves the number of open descriptors unchanged.
func expectNoDescriptorLeak(_ what: String, sourceLocation: SourceLocation = #_sourceLocation,
                            _ body: () throws -> Void) rethrows {
    let before = openDescriptorCount()
    try body()
    let after = openDescriptorCount()
    #expect(after == before, "\(what): \(after - before) descriptors leaked", sourceLocation: sourceLocation)
}

/// The test peer executable, built next to the test bundle.
let peerPath: String = {
    let exe = Kernel.readLink("/proc/self/exe") ?? ""
    var directory = exe.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
    // `swift test` runs `.build/<triple>/debug/D3DKMTPackageTests.xctest`; the peer is beside it.
    if directory.hasSuffix(".xctest") {
        directory = String(directory.split(separator: "/", omittingEmptySubsequences: false).dropLast()
            .joined(separator: "/"))
    }
    return directory + "/KMTTestPeer"
}()

struct PeerResult {
    var exitStatus: Int32
    var output: [String: String]
    var text: String
}

/// A running peer process: its pid and the read end of its standard output.
final class PeerProcess {
    let pid: pid_t
    private let output: Int32
    /// The write end of the peer's standard input, when it was given one.
    private var input: Int32 = -1
    private var lines: LineReader
    private var finished: PeerResult?

    /// Spawns the peer with `arguments`; `inherit` descriptors become the child's 3, 4, ... in order.
    /// With `input`, the peer's standard input is a pipe that ``send(_:)`` writes and
    /// ``closeInput()`` ends.
    init(_ arguments: [String], inherit: [Int32] = [], input: Bool = false) throws {
        var pipeFDs: [Int32] = [-1, -1]
        guard pipe(&pipeFDs) == 0 else { throw Errno(rawValue: errno) }
        for fd in pipeFDs { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var inputFDs: [Int32] = [-1, -1]
        if input {
            guard pipe(&inputFDs) == 0 else { throw Errno(rawValue: errno) }
            for fd in inputFDs { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 1)
        if input { posix_spawn_file_actions_adddup2(&actions, inputFDs[0], 0) }
        for (index, fd) in inherit.enumerated() {
            posix_spawn_file_actions_adddup2(&actions, fd, Int32(3 + index))
        }
        let argv = ([peerPath] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, peerPath, &actions, nil, argv, environ)
        close(pipeFDs[1])
        if input { close(inputFDs[0]) }
        guard spawned == 0 else {
            close(pipeFDs[0])
            if input { close(inputFDs[1]) }
            throw Errno(rawValue: spawned)
        }
        self.pid = pid
        self.output = pipeFDs[0]
        self.input = inputFDs[1]
        self.lines = LineReader(pipeFDs[0])
    }

    /// Writes `line` and a newline to the peer's standard input.
    func send(_ line: String) {
        let bytes = Array((line + "\n").utf8)
        _ = bytes.withUnsafeBytes { write(input, $0.baseAddress, $0.count) }
    }

    /// Ends the peer's standard input.
    func closeInput() {
        if input >= 0 { close(input) }
        input = -1
    }

    /// Reads the peer's output up to the next newline; nil at end of output.
    func readLine() -> String? { lines.next() }

    /// Reads the rest of the output and waits for the peer to exit.
    func wait() -> PeerResult {
        if let finished { return finished }
        closeInput()
        let data = lines.rest()
        close(output)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let text = String(decoding: data, as: UTF8.self)
        var values: [String: String] = [:]
        for line in text.split(separator: "\n") {
            if let equals = line.firstIndex(of: "=") {
                values[String(line[..<equals])] = String(line[line.index(after: equals)...])
            }
        }
        let exitStatus: Int32 = (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
        let result = PeerResult(exitStatus: exitStatus, output: values, text: text)
        finished = result
        return result
    }

    deinit { _ = wait() }
}

/// Spawns the peer with `arguments`; `inherit` descriptors become the child's 3, 4, ... in order.
/// Returns after the peer exits.
func runPeer(_ arguments: [String], inherit: [Int32] = []) throws -> PeerResult {
    try PeerProcess(arguments, inherit: inherit).wait()
}

func luidArguments(_ adapter: Adapter) -> [String] {
    [String(adapter.info.luid.lowPart), String(adapter.info.luid.highPart)]
}

/// A shareable resource of `sizes` allocations holding TestPattern(seed).
func makePatternResource(on device: Device, sizes: [UInt64], seed: UInt32, runtimeData: [UInt8] = [9, 8, 7, 6],
                         driverData: [UInt8] = [1, 2]) throws -> Resource {
    let resource = try device.createResource(
        allocations: sizes.enumerated().map { index, size in
            (.new(AllocationDescriptor(size: size)), [UInt8(index), 0xEE])
        },
        runtimeData: runtimeData, driverData: driverData)
    for (index, allocation) in resource.allocations.enumerated() {
        let mapping = try allocation.map()
        TestPattern.fill(mapping.bytes, seed: seed, allocation: index)
    }
    return resource
}

func patternMatches(_ allocation: Allocation, seed: UInt32, index: Int) throws -> Bool {
    let mapping = try allocation.map(writable: false)
    return TestPattern.firstMismatch(UnsafeRawBufferPointer(mapping.bytes), seed: seed, allocation: index) == nil
}

/// A value behind a pthread mutex. (Not `Synchronization.Mutex`: ThreadSanitizer does not see
/// that lock's synchronisation on Linux with this toolchain and reports every access under it.)
final class Locked<Value>: @unchecked Sendable {
    private var value: Value
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)

    init(_ value: Value) {
        self.value = value
        pthread_mutex_init(mutex, nil)
    }

    func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }
}
