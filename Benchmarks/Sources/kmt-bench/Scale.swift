#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CBenchSupport
import D3DKMT

// scale-10k: the share-open cycle (4 KiB) with 10,000 live shared objects next to the same
// with 10 live. A live shared object is a resource the sharer holds with its shared handle, and
// that the peer has opened and holds. That is two descriptors per object in the sharer: where
// RLIMIT_NOFILE cannot be raised that far (a hard limit of 20,000 without CAP_SYS_RESOURCE),
// the sharer lets go of its resources past what fits and keeps the handles only (which keep
// the objects alive), and the row says so.
//
// scale-10k raw primitive (context): the raw cycle of share-open with as many raw buffers live
// (held by both sides) next to 10: what the kernel and the device do with many objects alive
// whatever the library does (virtio-gpu under QEMU slows down with many resources).
//
// per-object: what one live shared object costs, measured across the growth from few to many
// (while the sharer still holds both): descriptors and VmRSS of the sharer and of the opener,
// and kernel slab memory (system-wide /proc/meminfo Slab). Raw: the sharer holds its memfd /
// dma-buf descriptor, the opener the memfd descriptor / GEM handle it imported.

/// The per-object rows.
let perObjectRows: [(name: String, unit: String)] = [
    ("per-object fds (sharer)", "fds"),
    ("per-object fds (opener)", "fds"),
    ("per-object RSS (sharer)", "KiB"),
    ("per-object RSS (opener)", "KiB"),
    ("per-object kernel slab", "KiB"),
]

struct Footprint {
    var sharer: ProcessStats
    var opener: ProcessStats
    var slabKiB: Int

    static func take(opener peer: Peer) throws -> Footprint {
        kb_trim_heap()
        let reply = try peer.channel.request(Message(.stats))
        return Footprint(sharer: .current(),
                         opener: ProcessStats(descriptors: Int(reply.arguments.0), residentKiB: Int(reply.arguments.1)),
                         slabKiB: kb_meminfo_kib("Slab"))
    }

    /// Per object, from `self` (with `from` objects live) to `later` (with `to`).
    func perObject(to later: Footprint, objects: Int) -> [Double] {
        let n = Double(objects)
        return [Double(later.sharer.descriptors - sharer.descriptors) / n,
                Double(later.opener.descriptors - opener.descriptors) / n,
                Double(later.sharer.residentKiB - sharer.residentKiB) / n,
                Double(later.opener.residentKiB - opener.residentKiB) / n,
                Double(later.slabKiB - slabKiB) / n]
    }
}

func scaleRows(_ target: Target) -> [Row] {
    let scaleName = "scale-10k share-open"
    let rawScaleName = "scale-10k raw primitive (context)"
    let wantScale = target.config.wants(row: scaleName)
    let wantedPerObject = perObjectRows.filter { target.config.wants(row: $0.name) }
    guard wantScale || !wantedPerObject.isEmpty else { return [] }
    let unit = "µs/op"
    let few = 10
    // Each live object costs the sharer three descriptors (its buffer, its runtime data page and
    // the handle) while it keeps its resource, one (the handle) once it does not; the opener two
    // (the buffer and the runtime data page of the resource it opened). Where RLIMIT_NOFILE holds
    // fewer, the row is measured with as many as fit, and says so.
    let fdLimit = kb_fd_limit() - 256
    let live = min(target.config.liveObjects, fdLimit / 2)
    guard live > few else {
        let why = "RLIMIT_NOFILE \(fdLimit + 256) is too low for live objects"
        return ([scaleName] + wantedPerObject.map(\.name)).map {
            target.failed($0, unit: "-", goal: nil, BenchError(why))
        }
    }
    let withResources = min(live, fdLimit / 3)
    var notes: [String] = []
    if live != 10_000 {
        let limited = " (as many as RLIMIT_NOFILE \(fdLimit + 256) lets the opener hold)"
        let why = target.config.smoke ? " (smoke)" : live < target.config.liveObjects ? limited : ""
        notes.append("\(live) live objects" + why)
    }
    do {
        let oursPeer = try Peer(role: "share-ours", arguments: target.luidArguments)
        let rawPeer = try Peer(role: "share-raw", arguments: target.raw.arguments)

        // Raw footprint, and the raw cycle with few and many raw buffers live (held on both sides).
        var rawHeld: [Int32] = []
        func growRaw(to count: Int) throws {
            while rawHeld.count < count {
                let fd = try target.raw.makeBuffer(size: 4096)
                rawHeld.append(fd)
                try rawPeer.channel.request(Message(.hold, descriptors: [fd]))
            }
        }
        let rawSide = Side(name: "raw") { n in
            for _ in 0..<n { try shareOpenRaw(target, rawPeer.channel, size: 4096) }
        }
        let rawBefore = try Footprint.take(opener: rawPeer)
        try growRaw(to: few)
        let rawFewSamples = wantScale ? try sample(rawSide, rounds: target.config.rounds, target.config) : []
        try growRaw(to: withResources)
        let rawAfter = try Footprint.take(opener: rawPeer)
        let rawManySamples = wantScale ? try sample(rawSide, rounds: target.config.rounds, target.config) : []
        rawHeld.forEach { close($0) }
        rawHeld = []
        try rawPeer.channel.request(Message(.drop, 0))
        try rawPeer.finish()
        try target.raw.settle()

        // Ours.
        var held: [(resource: Resource?, handle: Int32)] = []
        func grow(to count: Int, keepResources: Bool = true) throws {
            while held.count < count {
                let resource = try target.device.createResource(
                    allocations: [(source: .new(AllocationDescriptor(size: 4096)), extraDriverData: [])])
                let handle = try resource.share()
                try oursPeer.channel.request(Message(.hold, descriptors: [handle.rawValue]))
                held.append((keepResources ? resource : nil, handle.take()))
            }
        }
        func shrink(to count: Int) throws {
            while held.count > count { close(held.removeLast().handle) }
            try oursPeer.channel.request(Message(.drop, UInt64(count)))
        }
        let side = Side(name: "ours") { n in
            for _ in 0..<n { try shareOpenOurs(target, oursPeer.channel, size: 4096) }
        }
        let halfRounds = max(1, (target.config.rounds + 1) / 2)

        try grow(to: few)
        var fewSamples = wantScale ? try sample(side, rounds: halfRounds, target.config) : []
        let oursBefore = try Footprint.take(opener: oursPeer)
        try grow(to: withResources)
        let oursAfter = try Footprint.take(opener: oursPeer)
        if withResources < live {
            for index in held.indices { held[index].resource = nil }
            try grow(to: live, keepResources: false)
            notes.append("the sharer holds the handles only, not its resources (RLIMIT_NOFILE \(fdLimit + 256))")
        }
        let manySamples = wantScale ? try sample(side, rounds: target.config.rounds, target.config) : []
        try shrink(to: few)
        try target.raw.settle()
        if wantScale { fewSamples += try sample(side, rounds: halfRounds, target.config) }
        try shrink(to: 0)
        try oursPeer.finish()
        try target.raw.settle()

        var rows: [Row] = []
        if wantScale {
            rows.append(target.row(scaleName, ours: median(manySamples) / 1000, raw: median(fewSamples) / 1000,
                                   unit: unit, goal: 1.1,
                                   note: (["ours = \(live) live shared objects, raw = \(few) live"] + notes)
                                       .joined(separator: "; ")))
            rows.append(target.row(rawScaleName, ours: median(rawManySamples) / 1000,
                                   raw: median(rawFewSamples) / 1000, unit: unit, goal: nil,
                                   note: "the raw share-open cycle with \(withResources) raw buffers live "
                                       + "(ours column) and \(few) (raw column): "
                                       + "the kernel's and the device's own scaling"))
        }
        let ours = oursBefore.perObject(to: oursAfter, objects: withResources - few)
        let raw = rawBefore.perObject(to: rawAfter, objects: withResources)
        for (index, entry) in perObjectRows.enumerated()
            where wantedPerObject.contains(where: { $0.name == entry.name }) {
            var note: String?
            if index == 0 && withResources != live {
                note = "per-object rows: growth over \(withResources - few) objects (ours) and \(withResources) (raw)"
            }
            if index == 4 { note = "system-wide /proc/meminfo Slab growth per object (kernel memory; not in VmRSS)" }
            rows.append(target.row(entry.name, ours: ours[index], raw: raw[index], unit: entry.unit, goal: nil,
                                   note: note))
        }
        return rows
    } catch {
        let names = (wantScale ? [(scaleName, unit), (rawScaleName, unit)] : [])
            + wantedPerObject.map { ($0.name, $0.unit) }
        return names.map { target.failed($0.0, unit: $0.1, goal: $0.0 == scaleName ? 1.1 : nil, error) }
    }
}

extension String {
    var nilIfEmpty: String? { isEmpty ? nil : self }
}
