#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CBenchSupport

/// How long and how often to measure.
struct Config {
    /// Measured rounds per side (the median is reported).
    var rounds = 9
    /// What one round should take, in nanoseconds (iterations are calibrated to it, per side).
    var roundNanoseconds: UInt64 = 40_000_000
    /// Bounds on the iterations of one round.
    var minimumIterations = 3
    var maximumIterations = 200_000
    /// Live shared objects for the scale row and the per-object costs (10,000 in the issue).
    var liveObjects = 10_000
    /// Few iterations; only checks that every row is produced.
    var smoke = false
    /// "host" or "guest", recorded with every row.
    var machine = "host"
    /// Exactly this many iterations per round, no calibration (profiling: reproducible counts).
    var fixedIterations: Int?
    /// Run only this side of each row (for profiling under callgrind): "ours" or "raw".
    var onlySide: String?
    /// Rows whose names start with one of these (all when empty).
    var rowFilter: [String] = []
    /// Adapters whose driver name is one of these (all when empty).
    var adapterFilter: [String] = []
    /// Where the processes run: "same" (every process pinned to one CPU: a handoff is a context
    /// switch, reproducible), "split" (the parent on one CPU, its peers on another: a handoff
    /// is a cross-CPU wake-up) or "any" (the scheduler decides).
    var cpus = "same"

    static let smokeProfile = Config(rounds: 2, roundNanoseconds: 1_000_000, minimumIterations: 2,
                                     maximumIterations: 50, liveObjects: 200, smoke: true)

    func wants(row name: String) -> Bool {
        rowFilter.isEmpty || rowFilter.contains { name.hasPrefix($0) }
    }
}

/// One row of the results table: our operation next to the raw primitive it is built on.
struct Row {
    var name: String
    var adapter: String
    var machine: String
    /// Our cost and the raw primitive's, in ``unit``; nil when not measured.
    var ours: Double?
    var raw: Double?
    var unit: String
    /// The goal: ratio (ours / raw) at most this. Nil for rows given for context.
    var goal: Double?
    /// share-open: the floor side (C making ours' system calls), in ``unit``.
    var floor: Double?
    /// Why the row has no numbers (n/a), or what a context row compares.
    var note: String?
    /// Set when the benchmark failed: the row is missing.
    var error: String?

    var ratio: Double? {
        guard let ours, let raw, raw > 0 else { return nil }
        return ours / raw
    }

    var verdict: String {
        if error != nil { return "ERROR" }
        guard let ratio else { return ours == nil ? "n/a" : "context" }
        guard let goal else { return "context" }
        return ratio <= goal ? "met" : "MISSED"
    }

    /// Produced: measured, or not applicable on this adapter (never an error).
    var isProduced: Bool { error == nil && (ours != nil || raw != nil || note != nil) }
}

/// One side of a benchmark: runs `iterations` iterations of its operation.
struct Side {
    var name: String
    var run: (_ iterations: Int) throws -> Void
}

enum Clock {
    static func now() -> UInt64 { kb_now_ns() }

    static func time(_ body: () throws -> Void) rethrows -> UInt64 {
        let start = now()
        try body()
        return now() - start
    }
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return .nan }
    let middle = sorted.count / 2
    return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

/// Measures each side in the same run: a warm-up that calibrates iterations to
/// ``Config/roundNanoseconds`` per side, then ``Config/rounds`` rounds in which the sides take
/// turns (the order rotates every round, so drift hits all sides alike).
///
/// - Returns: each side's median nanoseconds per iteration, by side name.
func measure(_ sides: [Side], _ config: Config) throws -> [String: Double] {
    let iterations = try sides.map { (side) throws -> Int in try calibrate(side, config) }
    var samples = [[Double]](repeating: [], count: sides.count)
    for round in 0..<config.rounds {
        for turn in 0..<sides.count {
            let index = (turn + round) % sides.count
            let elapsed = try Clock.time { try sides[index].run(iterations[index]) }
            samples[index].append(Double(elapsed) / Double(iterations[index]))
        }
    }
    var medians: [String: Double] = [:]
    for (side, values) in zip(sides, samples) { medians[side.name] = median(values) }
    return medians
}

/// Warms `side` up and returns the iterations that make one round last about
/// ``Config/roundNanoseconds``.
func calibrate(_ side: Side, _ config: Config) throws -> Int {
    if let fixed = config.fixedIterations { return fixed }
    var count = 1
    var elapsed: UInt64 = 0
    while true {
        elapsed = try Clock.time { try side.run(count) }
        if elapsed >= config.roundNanoseconds / 4 || count >= config.maximumIterations { break }
        count = min(count * 2, config.maximumIterations)
    }
    let perIteration = max(Double(elapsed) / Double(count), 1)
    let wanted = Int(Double(config.roundNanoseconds) / perIteration)
    return min(max(wanted, config.minimumIterations), config.maximumIterations)
}

/// One side's per-iteration samples alone, for measurements whose sides cannot take turns.
func sample(_ side: Side, rounds: Int, _ config: Config) throws -> [Double] {
    let iterations = try calibrate(side, config)
    var samples: [Double] = []
    for _ in 0..<rounds {
        samples.append(Double(try Clock.time { try side.run(iterations) }) / Double(iterations))
    }
    return samples
}

// ---- output

func format(_ value: Double?) -> String {
    guard let value, value.isFinite else { return "-" }
    let magnitude = abs(value)
    let decimals = magnitude >= 100 ? 0 : magnitude >= 10 ? 1 : magnitude >= 1 ? 2 : 3
    return formatFixed(value, decimals)
}

func formatFixed(_ value: Double, _ decimals: Int) -> String {
    var buffer = [CChar](repeating: 0, count: 64)
    _ = withVaList([decimals, value]) { vsnprintf(&buffer, buffer.count, "%.*f", $0) }
    return cString(buffer)
}

/// The text of a NUL-terminated buffer.
func cString(_ buffer: [CChar]) -> String {
    let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
    return String(decoding: bytes, as: UTF8.self)
}

func pad(_ text: String, _ width: Int, right: Bool = false) -> String {
    let count = text.count
    guard count < width else { return text }
    let fill = String(repeating: " ", count: width - count)
    return right ? fill + text : text + fill
}

func printTable(_ rows: [Row]) {
    let headers = ["name", "adapter", "ours", "raw", "unit", "ratio", "goal", "verdict"]
    let cells = rows.map { row -> [String] in
        [row.name, row.adapter, format(row.ours), format(row.raw), row.unit,
         row.ratio.map { formatFixed($0, 2) } ?? "-", row.goal.map { "≤ " + formatFixed($0, 2) } ?? "-", row.verdict]
    }
    let widths = headers.indices.map { column in
        ([headers[column]] + cells.map { $0[column] }).map(\.count).max() ?? 0
    }
    let numeric: Set<Int> = [2, 3, 5]
    func line(_ fields: [String]) -> String {
        fields.indices.map { pad(fields[$0], widths[$0], right: numeric.contains($0)) }.joined(separator: "  ")
    }
    print(line(headers))
    print(widths.map { String(repeating: "-", count: $0) }.joined(separator: "  "))
    for (row, fields) in zip(rows, cells) {
        print(line(fields))
        if let error = row.error { print("    error: \(error)") }
    }
    let notes = rows.filter { $0.error == nil && $0.note != nil }
    if !notes.isEmpty {
        print("")
        for row in notes { print("  \(row.name) [\(row.adapter)]: \(row.note!)") }
    }
}

func jsonString(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\t": out += "\\t"
        default:
            if scalar.value < 0x20 {
                out += "\\u00" + (scalar.value < 16 ? "0" : "") + String(scalar.value, radix: 16)
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
    }
    return out + "\""
}

func jsonNumber(_ value: Double?) -> String {
    guard let value, value.isFinite else { return "null" }
    return formatFixed(value, value.magnitude >= 100 ? 1 : 4)
}

/// One JSON object per row: `name`, `adapter`, `ours`, `raw`, `unit`, `ratio` (ours / raw), and
/// `machine`, `goal`, `verdict`, `note`, `error`.
func jsonObject(_ row: Row) -> String {
    var fields = [
        "\"name\": \(jsonString(row.name))",
        "\"adapter\": \(jsonString(row.adapter))",
        "\"ours\": \(jsonNumber(row.ours))",
        "\"raw\": \(jsonNumber(row.raw))",
        "\"unit\": \(jsonString(row.unit))",
        "\"ratio\": \(jsonNumber(row.ratio))",
        "\"machine\": \(jsonString(row.machine))",
        "\"goal\": \(row.goal.map { jsonNumber($0) } ?? "null")",
        "\"verdict\": \(jsonString(row.verdict))",
    ]
    if let floor = row.floor { fields.append("\"floor\": \(jsonNumber(floor))") }
    if let note = row.note { fields.append("\"note\": \(jsonString(note))") }
    if let error = row.error { fields.append("\"error\": \(jsonString(error))") }
    return "{" + fields.joined(separator: ", ") + "}"
}

func writeFile(_ path: String, _ text: String) throws {
    guard let file = fopen(path, "w") else { throw BenchError("cannot write \(path): \(errorText(errno))") }
    defer { fclose(file) }
    guard fputs(text, file) >= 0 else { throw BenchError("cannot write \(path)") }
}

// ---- the machine

func readFirstLine(_ path: String, prefix: String) -> String? {
    guard let file = fopen(path, "re") else { return nil }
    defer { fclose(file) }
    var buffer = [CChar](repeating: 0, count: 512)
    while fgets(&buffer, Int32(buffer.count), file) != nil {
        let line = cString(buffer)
        if line.hasPrefix(prefix) {
            let value = line.dropFirst(prefix.count).drop { $0 == " " || $0 == "\t" || $0 == ":" }
            return String(value.trimmingSuffix { $0 == "\n" })
        }
    }
    return nil
}

extension Substring {
    func trimmingSuffix(while predicate: (Character) -> Bool) -> Substring {
        var end = endIndex
        while end > startIndex, predicate(self[index(before: end)]) { end = index(before: end) }
        return self[startIndex..<end]
    }
}

func machineDescription() -> String {
    var name = utsname()
    uname(&name)
    let release = withUnsafeBytes(of: &name.release) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
    let cpu = readFirstLine("/proc/cpuinfo", prefix: "model name") ?? "unknown CPU"
    let cpus = sysconf(Int32(_SC_NPROCESSORS_ONLN))
    let memory = kb_meminfo_kib("MemTotal")
    return "Linux \(release), \(cpu), \(cpus) CPU\(cpus == 1 ? "" : "s"), \(memory / 1024) MiB RAM"
}
