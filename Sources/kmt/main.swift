// kmt: shows the adapters and shares real objects between two processes.
import ArgumentParser
import D3DKMT
#if canImport(Glibc)
import Glibc
#endif

@main
struct KMT: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kmt",
        abstract: "D3DKMT object sharing on Linux DRM: adapters and a cross-process self-test.",
        subcommands: [Adapters.self, SelfTest.self, SelfTestPeer.self],
        defaultSubcommand: Adapters.self
    )
}

struct Adapters: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List adapters: driver, nodes, LUID, capabilities (D3DKMTEnumAdapters2).")

    func run() throws {
        var rows = [["#", "driver", "render node", "primary node", "bus", "LUID", "capabilities"]]
        for (index, adapter) in Adapter.enumerate().enumerated() {
            let info = adapter.info
            var capabilities: [String] = []
            if info.capabilities.contains(.software) { capabilities.append("software") }
            if info.capabilities.contains(.prime) { capabilities.append("PRIME") }
            if info.capabilities.contains(.syncObject) { capabilities.append("syncobj") }
            if info.capabilities.contains(.timelineSyncObject) { capabilities.append("timeline") }
            rows.append([String(index), info.driverName, info.renderNode ?? "-", info.primaryNode ?? "-", info.busInfo,
                         info.luid.description, capabilities.joined(separator: ",")])
        }
        printTable(rows)
    }
}

struct SelfTest: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "selftest",
        abstract: "On every adapter: create a resource, share it with a keyed mutex and a fence, "
            + "open it in a second process, write in one and read in the other, hand the mutex back and forth.")

    @Option(help: "Bytes per allocation.") var size: UInt64 = 256 * 1024

    func run() throws {
        var rows = [["adapter", "create", "share", "open in child", "child reads", "parent reads", "keyed mutex",
                     "result"]]
        var failures = 0
        for adapter in Adapter.enumerate() {
            let steps = runSteps(adapter)
            if steps.last != "PASS" { failures += 1 }
            rows.append(["\(adapter.info.driverName) \(adapter.info.renderNode ?? "")"] + steps)
        }
        printTable(rows)
        print(failures == 0 ? "selftest: all adapters pass" : "selftest: \(failures) adapter(s) FAIL")
        if failures > 0 { throw ExitCode.failure }
    }

    /// The step columns: "ok" for each step done, the failure in the step that failed, "-" after.
    private func runSteps(_ adapter: Adapter) -> [String] {
        var steps: [String] = []
        func finish(_ failure: String) -> [String] {
            steps.append(failure)
            while steps.count < 6 { steps.append("-") }
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
        return handoffs.hasPrefix("STATUS") ? steps + ["FAIL"] : steps + ["PASS"]
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
func spawnSelf(_ arguments: [String], handle: Int32) -> Child {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_adddup2(&actions, handle, 3)
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
