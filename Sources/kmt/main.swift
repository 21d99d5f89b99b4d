// kmt: shows the adapters, shares real objects between two processes, and shows what shared handles
// and names hold.
import ArgumentParser
import D3DKMT
#if canImport(Glibc)
import Glibc
#endif

struct KMT: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kmt",
        abstract: "D3DKMT object sharing on Linux DRM: adapters, a cross-process self-test, "
            + "and what shared handles and names hold.",
        subcommands: [Adapters.self, SelfTest.self, Inspect.self, NamesCommand.self, SelfTestPeer.self,
                      SelfTestGlobalPeer.self],
        defaultSubcommand: Adapters.self
    )
}

struct Adapters: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List adapters: driver, nodes, LUID, capabilities (D3DKMTEnumAdapters2).")

    @Flag(help: "Print JSON instead of a table.") var json = false

    func run() throws {
        var rows = [["#", "driver", "render node", "primary node", "bus", "LUID", "capabilities", "allocator"]]
        var objects: [JSON] = []
        for (index, adapter) in Adapter.enumerate().enumerated() {
            let info = adapter.info
            var capabilities: [String] = []
            if info.capabilities.contains(.software) { capabilities.append("software") }
            if info.capabilities.contains(.prime) { capabilities.append("PRIME") }
            if info.capabilities.contains(.syncObject) { capabilities.append("syncobj") }
            if info.capabilities.contains(.timelineSyncObject) { capabilities.append("timeline") }
            if info.capabilities.contains(.syncObjectEventfd) { capabilities.append("eventfd") }
            if info.capabilities.contains(.virgl3D) { capabilities.append("3D") }
            let allocator = Self.allocator(of: adapter)
            rows.append([String(index), info.driverName, info.renderNode ?? "-", info.primaryNode ?? "-", info.busInfo,
                         info.luid.description, capabilities.joined(separator: ","), allocator])
            objects.append(.object([
                ("index", .int(Int64(index))), ("driver", .string(info.driverName)),
                ("renderNode", info.renderNode.map(JSON.string) ?? .null),
                ("primaryNode", info.primaryNode.map(JSON.string) ?? .null), ("bus", .string(info.busInfo)),
                ("luid", luidJSON(info.luid)), ("vendorID", .int(Int64(info.vendorID))),
                ("deviceID", .int(Int64(info.deviceID))), ("capabilities", .array(capabilities.map(JSON.string))),
                ("allocator", .string(allocator)),
            ]))
        }
        if json { print(JSON.array(objects).rendered()) } else { printTable(rows) }
    }

    /// Which allocator serves the adapter, found by making a 64×64 ARGB8888 image on it (GBM, then
    /// virtio-gpu or dumb buffers, memfd on the software adapter), or why none can.
    static func allocator(of adapter: Adapter) -> String {
        do {
            let image = AllocationDescriptor(width: 64, height: 64, fourcc: AllocationDescriptor.fourccARGB8888)
            return try adapter.makeDevice().createAllocation(.new(image)).allocator.rawValue
        } catch {
            return "none (\(error.status))"
        }
    }
}

struct SelfTest: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "selftest",
        abstract: "On every adapter: create a resource, share it with a keyed mutex and a fence, "
            + "open it in a second process, write in one and read in the other, hand the mutex back and forth; "
            + "then share a resource by global (KMT) handle and open it by value in a second process.")

    @Option(help: "Bytes per allocation.") var size: UInt64 = 256 * 1024
    @Flag(help: "Print JSON instead of a table.") var json = false
    @Flag(help: ArgumentHelp("Run the self-test in the project's QEMU guest with real DRM drivers (virtio-gpu, vgem).",
                             discussion: "Runs scripts/vm-test of the source tree this kmt was built in; "
                                 + "elsewhere it prints the command to run there."))
    var vm = false

    static let columns = ["create", "share", "open in child", "child reads", "parent reads", "keyed mutex",
                          "global handle"]

    func run() throws {
        if vm && getenv("D3DKMT_IN_VM") == nil { try runInVM() }
        var rows = [["adapter"] + SelfTest.columns + ["result"]]
        var objects: [JSON] = []
        var failures = 0
        for adapter in Adapter.enumerate() {
            let steps = runSteps(adapter)
            if steps.last != "PASS" { failures += 1 }
            rows.append(["\(adapter.info.driverName) \(adapter.info.renderNode ?? "")"] + steps)
            objects.append(.object([
                ("driver", .string(adapter.info.driverName)),
                ("renderNode", adapter.info.renderNode.map(JSON.string) ?? .null),
                ("luid", luidJSON(adapter.info.luid)),
                ("steps", .object(zip(SelfTest.columns, steps).map { ($0, JSON.string($1)) })),
                ("result", .string(steps.last ?? "FAIL")),
            ]))
        }
        if json {
            print(JSON.object([("adapters", .array(objects)), ("pass", .bool(failures == 0))]).rendered())
        } else {
            printTable(rows)
            print(failures == 0 ? "selftest: all adapters pass" : "selftest: \(failures) adapter(s) FAIL")
        }
        if failures > 0 { throw ExitCode.failure }
    }

    /// Replaces this process with `scripts/vm-test -- THIS-KMT selftest ...` when this kmt lives in
    /// a source tree (its `.build`); otherwise explains what to run.
    private func runInVM() throws {
        let executable = readLink("/proc/self/exe") ?? CommandLine.arguments[0]
        guard let script = findVMTestScript(from: executable) else {
            printError("selftest --vm runs the self-test in the project's QEMU guest, which needs the source "
                       + "tree's scripts/vm-test; this kmt (\(executable)) is not in one. In a checkout run:\n"
                       + "    scripts/vm-test -- \"$(swift build --show-bin-path)/kmt\" selftest")
            throw ExitCode(2)
        }
        var arguments = [script, "--", executable, "selftest", "--size", String(size)]
        if json { arguments.append("--json") }
        if !json { print("kmt: running in the QEMU guest: \(arguments.joined(separator: " "))") }
        fflush(nil)
        let argv = arguments.map { strdup($0) } + [nil]
        execv(script, argv)
        printError("cannot run \(script): \(String(cString: strerror(errno)))")
        throw ExitCode.failure
    }

    /// The step columns: "ok" for each step done, the failure in the step that failed, "-" after.
    private func runSteps(_ adapter: Adapter) -> [String] {
        var steps: [String] = []
        func finish(_ failure: String) -> [String] {
            steps.append(failure)
            while steps.count < SelfTest.columns.count { steps.append("-") }
            return steps + ["FAIL"]
        }
        let seed: UInt32 = 1000 + UInt32(getpid() % 1000)
        let resource: Resource
        do {
            let device = try adapter.makeDevice()
            resource = try device.createResource(
                allocations: [(.new(AllocationDescriptor(size: size)), []),
                              (.new(AllocationDescriptor(size: size)), [])],
                runtimeData: Array("kmt selftest".utf8), driverData: [0x4B, 0x4D])
            for (index, allocation) in resource.allocations.enumerated() {
                let mapping = try allocation.map()
                TestPattern.fill(mapping.bytes, seed: seed, allocation: index)
            }
            steps.append("ok")
        } catch { return finish("\(error.status)") }

        // Where the adapter has sync objects (not vgem), the resource travels with a keyed mutex and
        // a fence, and the two processes hand the mutex back and forth.
        let guards: (KeyedMutex, SyncObject)? = try? (KeyedMutex.create(),
                                                      resource.device.createSyncObject(.monitoredFence))
        let handle: SharedHandle
        do {
            handle = try resource.share(keyedMutex: guards?.0, syncObject: guards?.1); steps.append("ok")
        } catch { return finish("\(error.status)") }

        let child = spawnSelf(["selftest-peer", String(adapter.info.luid.lowPart), String(adapter.info.luid.highPart),
                               String(seed)],
                              handle: handle.rawValue)
        var handoffs = "n/a (no syncobjs)"
        if let (mutex, fence) = guards, child.pid > 0 {
            do {
                for round in 0..<SelfTest.handoffs {
                    _ = try mutex.acquire(key: 0, timeout: .seconds(30))
                    try mutex.release(key: 1, fenceValue: UInt64(round))
                }
                try SyncObject.wait(for: [(fence, 1)], timeout: .seconds(30))
                handoffs = "\(SelfTest.handoffs) handoffs"
            } catch {
                handoffs = "\(error.status)"
            }
        }
        let exitCode = child.wait()
        switch exitCode {
        case 0: steps += ["ok", "ok"]
        case 2: return finish("open failed")
        case 3: steps.append("ok"); return finish("wrong contents")
        case 4: steps += ["ok", "ok", "-"]; return finish("child: \(handoffs)")
        default: return finish("child exit \(exitCode)")
        }
        for (index, allocation) in resource.allocations.enumerated() {
            guard let mapping = try? allocation.map(writable: false),
                  TestPattern.firstMismatch(UnsafeRawBufferPointer(mapping.bytes), seed: seed + 1,
                                            allocation: index) == nil
            else { return finish("wrong contents") }
        }
        steps.append("ok")
        steps.append(handoffs)
        let global = globalStep(adapter, seed: seed + 7)
        steps.append(global)
        return handoffs.hasPrefix("STATUS") || global != "ok" ? steps + ["FAIL"] : steps + ["PASS"]
    }

    /// A resource with a global share handle (`CreateShared` alone): a second process opens it by
    /// its value, reads this process's pattern and writes its own; once destroyed here, the value no
    /// longer opens. "ok", or what went wrong.
    private func globalStep(_ adapter: Adapter, seed: UInt32) -> String {
        do {
            let device = try adapter.makeDevice()
            let value: UInt32
            switch try shareByValue(device, seed: seed) {
            case .success(let shared): value = shared  // the resource is destroyed by now
            case .failure(let why): return why.text
            }
            do {
                _ = try device.resourceInfo(globalHandle: value)
                return "still opens after destroy"
            } catch where error.status == .invalidParameter {
                return "ok"
            }
        } catch {
            return "\(error.status)"
        }
    }

    struct StepFailure: Error {
        var text: String
    }

    /// Makes the resource, has a child open it by value and checks both ways; returns its value
    /// after destroying it.
    private func shareByValue(_ device: Device, seed: UInt32) throws(NTError) -> Result<UInt32, StepFailure> {
        let resource = try device.createResource(allocations: [(.new(AllocationDescriptor(size: size)), [])],
                                                 shareable: false, globalShare: true)
        guard let value = resource.globalHandle else { return .failure(StepFailure(text: "no global handle")) }
        let mapping = try resource.allocations[0].map()
        TestPattern.fill(mapping.bytes, seed: seed, allocation: 0)
        let child = spawnSelf(["selftest-global-peer", String(device.adapter.info.luid.lowPart),
                               String(device.adapter.info.luid.highPart), String(seed), String(value)], handle: nil)
        switch child.wait() {
        case 0: break
        case 2: return .failure(StepFailure(text: "open by value failed"))
        case 3: return .failure(StepFailure(text: "child: wrong contents"))
        case let code: return .failure(StepFailure(text: "child exit \(code)"))
        }
        guard TestPattern.firstMismatch(UnsafeRawBufferPointer(mapping.bytes), seed: seed + 1, allocation: 0) == nil
        else { return .failure(StepFailure(text: "wrong contents")) }
        return .success(value)
    }

    static let handoffs = 100
}

/// The child side of `selftest`: the shared handle is descriptor 3.
struct SelfTestPeer: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "selftest-peer", shouldDisplay: false)

    @Argument var luidLow: UInt32
    @Argument var luidHigh: Int32
    @Argument var seed: UInt32

    func run() throws {
        let handle = SharedHandle(adopting: 3)
        let resource: Resource
        do {
            let device = try Adapter.open(luid: LUID(lowPart: luidLow, highPart: luidHigh)).makeDevice()
            resource = try device.openResource(handle)
        } catch {
            printError("open: \(error)")
            throw ExitCode(2)
        }
        for (index, allocation) in resource.allocations.enumerated() {
            guard let mapping = try? allocation.map() else { throw ExitCode(2) }
            if TestPattern.firstMismatch(UnsafeRawBufferPointer(mapping.bytes), seed: seed, allocation: index) != nil {
                throw ExitCode(3)
            }
            TestPattern.fill(mapping.bytes, seed: seed + 1, allocation: index)
        }
        guard let mutex = resource.keyedMutex, let fence = resource.syncObject else { return }
        do {
            for _ in 0..<SelfTest.handoffs {
                _ = try mutex.acquire(key: 1, timeout: .seconds(30))
                try mutex.release(key: 0)
            }
            try fence.signal(1)
        } catch {
            printError("keyed mutex: \(error)")
            throw ExitCode(4)
        }
    }
}

/// The child side of the `selftest` global-handle step: opens the resource by value.
struct SelfTestGlobalPeer: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "selftest-global-peer", shouldDisplay: false)

    @Argument var luidLow: UInt32
    @Argument var luidHigh: Int32
    @Argument var seed: UInt32
    @Argument var value: UInt32

    func run() throws {
        let resource: Resource
        do {
            let device = try Adapter.open(luid: LUID(lowPart: luidLow, highPart: luidHigh)).makeDevice()
            resource = try device.openResource(globalHandle: value)
        } catch {
            printError("open by global handle 0x\(String(value, radix: 16)): \(error)")
            throw ExitCode(2)
        }
        guard let mapping = try? resource.allocations[0].map() else { throw ExitCode(2) }
        if TestPattern.firstMismatch(UnsafeRawBufferPointer(mapping.bytes), seed: seed, allocation: 0) != nil {
            throw ExitCode(3)
        }
        TestPattern.fill(mapping.bytes, seed: seed + 1, allocation: 0)
    }
}

/// `scripts/vm-test` of the source tree holding `executable` (an ancestor directory of it), or of
/// the current directory's tree.
func findVMTestScript(from executable: String) -> String? {
    var candidates: [String] = []
    var directory = executable
    while let slash = directory.lastIndex(of: "/"), slash != directory.startIndex {
        directory = String(directory[..<slash])
        candidates.append(directory)
    }
    var buffer = [CChar](repeating: 0, count: 4096)
    if getcwd(&buffer, buffer.count) != nil {
        candidates.append(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }
    for candidate in candidates {
        let script = candidate + "/scripts/vm-test"
        if access(script, X_OK) == 0, access(candidate + "/Package.swift", R_OK) == 0 { return script }
    }
    return nil
}

func readLink(_ path: String) -> String? {
    var buffer = [CChar](repeating: 0, count: 4096)
    let count = readlink(path, &buffer, buffer.count - 1)
    guard count > 0 else { return nil }
    return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

func printError(_ text: String) {
    let line = "kmt: \(text)\n"
    _ = line.withCString { write(2, $0, strlen($0)) }
}

/// A child started by ``spawnSelf(_:handle:)``; pid -1 when it could not start.
struct Child {
    let pid: pid_t

    /// Waits for the child; its exit code (128 + signal when killed, 127 when it never started).
    func wait() -> Int32 {
        guard pid > 0 else { return 127 }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
    }
}

/// Runs this executable again with `arguments`, `handle` as its descriptor 3.
func spawnSelf(_ arguments: [String], handle: Int32?) -> Child {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    if let handle { posix_spawn_file_actions_adddup2(&actions, handle, 3) }
    let path = "/proc/self/exe"
    let argv = (["kmt"] + arguments).map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var pid: pid_t = 0
    guard posix_spawn(&pid, path, &actions, nil, argv, environ) == 0 else { return Child(pid: -1) }
    return Child(pid: pid)
}

func printTable(_ rows: [[String]]) {
    guard let first = rows.first else { return }
    var widths = first.map(\.count)
    for row in rows { for (column, cell) in row.enumerated() { widths[column] = max(widths[column], cell.count) } }
    for (index, row) in rows.enumerated() {
        let line = row.enumerated().map { column, cell in
            cell + String(repeating: " ", count: widths[column] - cell.count)
        }.joined(separator: "  ")
        print(line)
        if index == 0 { print(widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")) }
    }
}

KMT.main()
