#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CBenchSupport
import D3DKMT

// signal-wake: SyncObject.signal in one process wakes SyncObject.wait(for:) in another. Two shared sync
// objects, A (parent → peer) and B (peer → parent), ping-pong rising values; one iteration is a
// round trip, two signal → wake hops. Raw: two DRM timeline syncobjs with
// drmSyncobjTimelineSignal / drmSyncobjTimelineWait on DRM, two futex counters in shared
// memory on the software adapter.

func signalWakeRow(_ target: Target, kind: SyncObject.Kind) -> Row? {
    let name = "signal-wake \(kind == .fence ? "fence" : "monitored-fence")"
    let unit = "ns/wake"
    guard target.config.wants(row: name) else { return nil }
    guard target.hasTimelines else {
        return target.notApplicable(name, unit: unit, goal: 1.2,
                                    why: "\(target.info.driverName) has no timeline syncobjs")
    }
    do {
        let a = try target.device.createSyncObject(kind)
        let b = try target.device.createSyncObject(kind)
        let oursPeer = try Peer(role: "signal-ours", arguments: target.luidArguments)
        do {
            let handleA = try a.share()
            let handleB = try b.share()
            try oursPeer.channel.request(Message(.setup, descriptors: [handleA.rawValue, handleB.rawValue]))
        }
        var oursBase: UInt64 = 0

        // Raw.
        let rawPeer = try Peer(role: target.raw.isSoftware ? "signal-raw-futex" : "signal-raw-drm",
                               arguments: target.raw.arguments)
        var rawSide: Side
        var cleanup: () -> Void = {}
        defer { cleanup() }
        if target.raw.isSoftware {
            let page = try check(kb_memfd_buffer(4096), "memfd")
            let base = try mapShared(page, size: 4096)
            cleanup = { munmap(base, 4096) }
            try rawPeer.channel.request(Message(.setup, descriptors: [page]))
            close(page)
            let out = base.assumingMemoryBound(to: UInt32.self)
            let into = (base + 64).assumingMemoryBound(to: UInt32.self)
            var value: UInt32 = 0
            rawSide = Side(name: "raw") { n in
                try rawPeer.channel.send(Message(.run, UInt64(n), UInt64(value)))
                kb_futex_fence_pingpong(out, into, value, n, 1)
                value &+= UInt32(n)
                _ = try rawPeer.channel.receive()
            }
        } else {
            let fd = target.raw.render
            var out: UInt32 = 0, into: UInt32 = 0
            try check(kb_syncobj_create(fd, &out), "drmSyncobjCreate")
            try check(kb_syncobj_create(fd, &into), "drmSyncobjCreate")
            cleanup = { [out, into] in
                kb_syncobj_destroy(fd, out)
                kb_syncobj_destroy(fd, into)
            }
            let exportedOut = try check(kb_syncobj_export(fd, out), "drmSyncobjHandleToFD")
            let exportedIn = try check(kb_syncobj_export(fd, into), "drmSyncobjHandleToFD")
            try rawPeer.channel.request(Message(.setup, descriptors: [exportedOut, exportedIn]))
            close(exportedOut)
            close(exportedIn)
            var point: UInt64 = 0
            rawSide = Side(name: "raw") { n in
                try rawPeer.channel.send(Message(.run, UInt64(n), point))
                try check(kb_syncobj_pingpong(fd, out, into, point, n, 1), "syncobj ping-pong")
                point += UInt64(n)
                _ = try rawPeer.channel.receive()
            }
        }

        let sides = target.sides([
            Side(name: "ours") { n in
                try oursPeer.channel.send(Message(.run, UInt64(n), oursBase))
                for i in 1...UInt64(n) {
                    try a.signal(oursBase + i)
                    try b.wait(for: oursBase + i)
                }
                oursBase += UInt64(n)
                _ = try oursPeer.channel.receive()
            },
            rawSide,
        ])
        let result = try measure(sides, target.config)
        try oursPeer.finish()
        try rawPeer.finish()
        return target.row(name, ours: result["ours"].map { $0 / 2 }, raw: result["raw"].map { $0 / 2 }, unit: unit,
                          goal: 1.2)
    } catch {
        return target.failed(name, unit: unit, goal: 1.2, error)
    }
}

// ---- the peers

/// Opens A and B on its own device; per run, waits for A and signals B.
func runSignalOursPeer(_ channel: Channel, _ arguments: [String]) throws {
    let device = try adapter(luidArguments: arguments).makeDevice()
    let setup = try channel.receive()
    guard setup.op == .setup, setup.descriptors.count == 2 else { throw BenchError("signal peer: no handles") }
    let handleA = SharedHandle(adopting: setup.descriptors[0])
    let handleB = SharedHandle(adopting: setup.descriptors[1])
    let a = try device.openSyncObject(handleA)
    let b = try device.openSyncObject(handleB)
    _ = consume handleA
    _ = consume handleB
    try channel.send(Message(.done))
    while true {
        let message = try channel.receive()
        switch message.op {
        case .run:
            let base = message.arguments.1
            for i in 1...message.arguments.0 {
                try a.wait(for: base + i)
                try b.signal(base + i)
            }
            try channel.send(Message(.done))
        case .quit:
            return
        default:
            throw BenchError("signal peer: unexpected \(message.op)")
        }
    }
}

/// The raw other side: futex counters (software) or imported timeline syncobjs (DRM).
func runSignalRawPeer(_ channel: Channel, _ arguments: [String], drm: Bool) throws {
    let raw = try RawDevice(arguments: arguments)
    let setup = try channel.receive()
    guard setup.op == .setup, !setup.descriptors.isEmpty else { throw BenchError("raw signal peer: no objects") }
    var pingPong: (_ rounds: Int, _ base: UInt64) throws -> Void
    if drm {
        guard setup.descriptors.count == 2 else { throw BenchError("raw signal peer: want two syncobjs") }
        // The parent's "out" is this side's "in".
        var into: UInt32 = 0, out: UInt32 = 0
        try check(kb_syncobj_import(raw.render, setup.descriptors[0], &into), "drmSyncobjFDToHandle")
        try check(kb_syncobj_import(raw.render, setup.descriptors[1], &out), "drmSyncobjFDToHandle")
        setup.descriptors.forEach { close($0) }
        pingPong = { rounds, base in
            try check(kb_syncobj_pingpong(raw.render, out, into, base, rounds, 0), "syncobj ping-pong")
        }
    } else {
        let base = try mapShared(setup.descriptors[0], size: 4096)
        close(setup.descriptors[0])
        let into = base.assumingMemoryBound(to: UInt32.self)
        let out = (base + 64).assumingMemoryBound(to: UInt32.self)
        pingPong = { rounds, value in kb_futex_fence_pingpong(out, into, UInt32(truncatingIfNeeded: value), rounds, 0) }
    }
    try channel.send(Message(.done))
    while true {
        let message = try channel.receive()
        switch message.op {
        case .run:
            try pingPong(Int(message.arguments.0), message.arguments.1)
            try channel.send(Message(.done))
        case .quit:
            return
        default:
            throw BenchError("raw signal peer: unexpected \(message.op)")
        }
    }
}
