#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CBenchSupport
import D3DKMT

// kmt-bench: each D3DKMT operation next to the raw primitive it is built on, measured in the
// same run, on every adapter present. See docs/benchmarks.md.

let usage = """
    usage: kmt-bench [options]
      --smoke               few iterations and 200 live objects; exit 1 unless every row is produced
      --json FILE           write the rows as a JSON list
      --json-lines FILE|-   write one JSON object per line (`-`: stdout, each line prefixed BENCHJSON)
      --machine NAME        the machine column (default host)
      --rows P1,P2          only rows whose names start with one of these
      --adapters D1,D2      only adapters with these driver names (software, virtio_gpu, vgem, ...)
      --rounds N            measured rounds per side (default 9)
      --round-ms N          target duration of one round (default 40)
      --live N              live objects for scale-10k and per-object (default 10000)
      --only SIDE           run one side only: ours, raw, floor (share-open, open-by-name),
                            fast-floor (open-by-name), pipe (context)
      --iterations N        exactly N iterations per round, no warm-up (profiling)
      --cpus same|split|any pin every process to one CPU (default: reproducible handoffs), the
                            peers to another CPU than the parent, or leave it to the scheduler
    Speed goals are ratios of the two sides measured in one run; a missed goal does not fail the
    run. The exit status is 1 when a row could not be produced (an error), 2 for bad usage.
    """

func fail(_ message: String, status: Int32 = 2) -> Never {
    kb_log("kmt-bench: \(message)")
    exit(status)
}

// ---- peers: `kmt-bench --peer ROLE ARGS...`, the socket to the parent on descriptor 3

func runPeer(_ role: String, _ arguments: [String]) -> Never {
    let channel = Channel(socket: 3)
    do {
        switch role {
        case "share-ours": try runShareOursPeer(channel, arguments)
        case "share-raw": try runShareRawPeer(channel, arguments)
        case "share-floor": try runShareFloorPeer(channel, arguments)
        case "open-global": try runOpenGlobalPeer(channel, arguments)
        case "open-name": try runOpenByNamePeer(channel, arguments)
        case "kmutex-ours": try runKeyedMutexPeer(channel)
        case "futex-raw": try runFutexPeer(channel)
        case "pipe-raw": try runPipePeer(channel)
        case "signal-ours": try runSignalOursPeer(channel, arguments)
        case "signal-raw-futex": try runSignalRawPeer(channel, arguments, drm: false)
        case "signal-raw-drm": try runSignalRawPeer(channel, arguments, drm: true)
        default: fail("unknown peer role \(role)")
        }
    } catch {
        kb_log("kmt-bench \(role) peer: \(error)")
        exit(1)
    }
    exit(0)
}

let commandLine = Array(CommandLine.arguments.dropFirst())
if commandLine.first == "--peer" {
    if let cpu = getenv("KMT_BENCH_PEER_CPU").flatMap({ Int32(String(cString: $0)) }) { _ = kb_pin_to_cpu(cpu) }
    guard commandLine.count >= 2 else { fail("--peer needs a role") }
    runPeer(commandLine[1], Array(commandLine.dropFirst(2)))
}

// ---- options

struct Options {
    var config = Config()
    var jsonPath: String?
    var jsonLinesPath: String?
}

func parseOptions(_ words: [String]) -> Options {
    var options = Options()
    var overrides: [(inout Config) -> Void] = []
    var index = 0
    func value() -> String {
        index += 1
        guard index < words.count else { fail("\(words[index - 1]) needs a value") }
        return words[index]
    }
    func number(_ text: String) -> Int {
        guard let parsed = Int(text), parsed > 0 else { fail("not a positive number: \(text)") }
        return parsed
    }
    while index < words.count {
        switch words[index] {
        case "--smoke": options.config = Config.smokeProfile
        case "--json": options.jsonPath = value()
        case "--json-lines": options.jsonLinesPath = value()
        case "--machine": let name = value(); overrides.append { $0.machine = name }
        case "--rows":
            let rows = value().split(separator: ",").map(String.init); overrides.append { $0.rowFilter = rows }
        case "--adapters":
            let list = value().split(separator: ",").map(String.init); overrides.append { $0.adapterFilter = list }
        case "--rounds": let n = number(value()); overrides.append { $0.rounds = n }
        case "--round-ms": let n = number(value()); overrides.append { $0.roundNanoseconds = UInt64(n) * 1_000_000 }
        case "--live": let n = number(value()); overrides.append { $0.liveObjects = max(n, 20) }
        case "--iterations": let n = number(value()); overrides.append { $0.fixedIterations = n }
        case "--only":
            let side = value()
            guard ["ours", "raw", "floor", "fast-floor", "pipe"].contains(side) else {
                fail("--only takes ours, raw, floor, fast-floor or pipe")
            }
            overrides.append { $0.onlySide = side }
        case "--cpus":
            let mode = value()
            guard ["same", "split", "any"].contains(mode) else { fail("--cpus takes same, split or any") }
            overrides.append { $0.cpus = mode }
        case "-h", "--help": print(usage); exit(0)
        default: fail("unknown option \(words[index])\n\(usage)")
        }
        index += 1
    }
    for override in overrides { override(&options.config) }
    return options
}

let options = parseOptions(commandLine)
let config = options.config

// Many live objects need many descriptors (the sharer holds two per object).
_ = kb_raise_fd_limit(Int(2 * config.liveObjects + 4096))
// Lines in order with stderr when both go to one pipe (the VM console).
kb_line_buffered_stdout()
// Placement: see Config.cpus.
var allowedCPUs = [Int32](repeating: 0, count: 1024)
let allowedCount = Int(kb_allowed_cpus(&allowedCPUs, 1024))
var placement = "unpinned"
if config.cpus != "any", allowedCount > 0 {
    _ = kb_pin_to_cpu(allowedCPUs[0])
    placement = "every process on CPU \(allowedCPUs[0])"
    if config.cpus == "split", allowedCount > 1 {
        setenv("KMT_BENCH_PEER_CPU", String(allowedCPUs[1]), 1)
        placement = "parent on CPU \(allowedCPUs[0]), peers on CPU \(allowedCPUs[1])"
    }
}
// A peer that dies must not kill us with SIGPIPE.
signal(SIGPIPE, SIG_IGN)

// ---- the run

print("kmt-bench on \(config.machine): \(machineDescription()); \(placement)")
var adapters = Adapter.enumerate()
if !config.adapterFilter.isEmpty {
    adapters = adapters.filter { config.adapterFilter.contains($0.info.driverName) }
}
print("adapters: " + adapters.map { "\($0.info.driverName)\($0.info.renderNode.map { " (\($0))" } ?? "")" }
    .joined(separator: ", "))
print("")

var rows: [Row] = []
var expected: [(name: String, adapter: String)] = []
// In the VM guest, scripts/vm-test names the drivers that must be there: one the library does
// not enumerate is a missing adapter, not a shorter table.
if let required = getenv("D3DKMT_REQUIRE_DRIVERS").map({ String(cString: $0) }), config.adapterFilter.isEmpty {
    for driver in required.split(separator: ",").map(String.init)
        where !adapters.contains(where: { $0.info.driverName == driver }) {
        var row = Row(name: "adapter", adapter: driver, machine: config.machine, unit: "-")
        row.error = "D3DKMT_REQUIRE_DRIVERS names \(driver), but Adapter.enumerate() has no such adapter"
        rows.append(row)
    }
}
for adapter in adapters {
    let driver = adapter.info.driverName
    let sameDriver = adapters.filter { $0.info.driverName == driver }.count > 1
    let name = sameDriver ? "\(driver)@\(adapter.info.renderNode ?? "?")" : driver
    kb_log("kmt-bench: measuring \(name)...")
    let target: Target
    do {
        target = try Target(adapter: adapter, name: name, config: config)
    } catch {
        var row = Row(name: "adapter", adapter: name, machine: config.machine, unit: "-")
        row.error = "cannot open the adapter: \(error)"
        rows.append(row)
        continue
    }
    var produced: [Row] = []
    for (size, label) in [(UInt64(4096), "4KiB"), (UInt64(1 << 20), "1MiB")]
        where config.wants(row: "share-open \(label)") {
        produced.append(shareOpenRow(target, size: size, label: label))
    }
    if config.wants(row: "open-by-global") { produced.append(openGlobalRow(target)) }
    if config.wants(row: "open-by-name") { produced.append(openByNameRow(target)) }
    for (size, label) in [(UInt64(4096), "4KiB"), (UInt64(1 << 20), "1MiB")]
        where config.wants(row: "lock2-cycle \(label)") {
        produced.append(lock2Row(target, size: size, label: label))
    }
    produced += keyedMutexRows(target)
    for kind in [SyncObject.Kind.fence, .monitoredFence] {
        if let row = signalWakeRow(target, kind: kind) { produced.append(row) }
    }
    produced += scaleRows(target)
    produced += gpuRows(target)
    rows += produced

    // What every adapter must produce (measured, or n/a where the adapter lacks the feature).
    let all = ["share-open 4KiB", "share-open 1MiB", "open-by-global", "open-by-name", "lock2-cycle 4KiB",
               "lock2-cycle 1MiB",
               "keyed-mutex-handoff", "pipe-roundtrip (context)",
               "signal-wake fence", "signal-wake monitored-fence", "scale-10k share-open",
               "scale-10k raw primitive (context)"] + perObjectRows.map(\.name) + gpuRowNames
    expected += all.filter(config.wants(row:)).map { ($0, name) }
}

printTable(rows)

let missing = expected.filter { want in
    !rows.contains { $0.name == want.name && $0.adapter == want.adapter && $0.isProduced }
}
let failedRows = rows.filter { $0.error != nil }

do {
    if let jsonPath = options.jsonPath {
        try writeFile(jsonPath, "[\n" + rows.map { "  " + jsonObject($0) }.joined(separator: ",\n") + "\n]\n")
    }
    if let jsonLinesPath = options.jsonLinesPath {
        if jsonLinesPath == "-" {
            for row in rows { print("BENCHJSON " + jsonObject(row)) }
        } else {
            try writeFile(jsonLinesPath, rows.map { jsonObject($0) + "\n" }.joined())
        }
    }
} catch {
    fail("\(error)", status: 1)
}

if !missing.isEmpty || !failedRows.isEmpty {
    print("")
    for row in missing { print("kmt-bench: row missing: \(row.name) [\(row.adapter)]") }
    exit(1)
}
if config.smoke { print("\nkmt-bench: smoke: all \(expected.count) rows produced") }
