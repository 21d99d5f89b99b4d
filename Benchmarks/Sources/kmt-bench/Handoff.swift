#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CBenchSupport
import D3DKMT

// keyed-mutex-handoff: two processes alternate acquire(0)/release(1) and acquire(1)/release(0)
// on one keyed mutex; next to a bare futex ping-pong on a shared word, and (for context, the
// cost model of a server-based design such as Wine's keyed mutexes) a pipe ping-pong.
//
// One iteration is a round trip: two handoffs.

func keyedMutexRows(_ target: Target) -> [Row] {
    let handoff = "keyed-mutex-handoff"
    let context = "pipe-roundtrip (context)"
    let wanted = [handoff, context].filter(target.config.wants(row:))
    guard !wanted.isEmpty else { return [] }
    guard target.hasTimelines else {
        let why = "\(target.info.driverName) has no syncobjs, "
            + "and a keyed mutex is shared with its resource's sync object"
        return [target.notApplicable(handoff, unit: "ns/handoff", goal: 1.2, why: why),
                target.notApplicable(context, unit: "ns/roundtrip", goal: nil, why: why)]
            .filter { wanted.contains($0.name) }
    }
    do {
        // Ours: a resource shared with its keyed mutex and sync object, opened in the peer.
        let resource = try target.device.createResource(
            allocations: [(source: .new(AllocationDescriptor(size: 4096)), extraDriverData: [])])
        let mutex = try KeyedMutex.create(initialKey: 0, timelineOn: target.info.isSoftware ? nil : target.device)
        let syncObject = try target.device.createSyncObject(.fence)
        let handle = try resource.share(keyedMutex: mutex, syncObject: syncObject)
        let oursPeer = try Peer(role: "kmutex-ours")
        try oursPeer.channel.request(Message(.setup, descriptors: [handle.rawValue]))

        // Raw: one futex word in a shared memfd page.
        let page = try check(kb_memfd_buffer(4096), "memfd")
        defer { close(page) }
        let word = try mapShared(page, size: 4096).assumingMemoryBound(to: UInt32.self)
        defer { munmap(word, 4096) }
        word.pointee = 0
        let futexPeer = try Peer(role: "futex-raw")
        try futexPeer.channel.request(Message(.setup, descriptors: [page]))

        // Context: two pipes.
        var toPeer: [Int32] = [-1, -1], fromPeer: [Int32] = [-1, -1]
        try check(kb_pipe(&toPeer), "pipe2")
        try check(kb_pipe(&fromPeer), "pipe2")
        defer { (toPeer + fromPeer).forEach { close($0) } }
        let pipePeer = try Peer(role: "pipe-raw")
        try pipePeer.channel.request(Message(.setup, descriptors: [toPeer[0], fromPeer[1]]))

        let sides = target.sides([
            Side(name: "ours") { n in
                try oursPeer.channel.send(Message(.run, UInt64(n)))
                for _ in 0..<n {
                    _ = try mutex.acquire(key: 0)
                    try mutex.release(key: 1)
                }
                _ = try oursPeer.channel.receive()
            },
            Side(name: "raw") { n in
                try futexPeer.channel.send(Message(.run, UInt64(n)))
                kb_futex_pingpong(word, 0, 1, n)
                _ = try futexPeer.channel.receive()
            },
            Side(name: "pipe") { n in
                try pipePeer.channel.send(Message(.run, UInt64(n)))
                try check(kb_pipe_pingpong(fromPeer[0], toPeer[1], n, 1), "pipe ping-pong")
                _ = try pipePeer.channel.receive()
            },
        ])
        let result = try measure(sides, target.config)
        try oursPeer.finish()
        try futexPeer.finish()
        try pipePeer.finish()
        _ = consume handle
        let ours = result["ours"]
        return [
            target.row(handoff, ours: ours.map { $0 / 2 }, raw: result["raw"].map { $0 / 2 }, unit: "ns/handoff",
                       goal: 1.2),
            target.row(context, ours: ours, raw: result["pipe"], unit: "ns/roundtrip", goal: nil,
                       note: "ours = keyed-mutex round trip (2 handoffs), raw = pipe round trip (2 hops); "
                           + "a server-based keyed mutex pays at least one pipe round trip "
                           + "per acquire and per release"),
        ].filter { wanted.contains($0.name) }
    } catch {
        return [target.failed(handoff, unit: "ns/handoff", goal: 1.2, error),
                target.failed(context, unit: "ns/roundtrip", goal: nil, error)].filter { wanted.contains($0.name) }
    }
}

// ---- the peers

/// The other side of the keyed mutex: acquire(1), release(0), `n` times per run.
func runKeyedMutexPeer(_ channel: Channel) throws {
    let setup = try channel.receive()
    guard setup.op == .setup, let fd = setup.descriptors.first else { throw BenchError("kmutex peer: no handle") }
    let handle = SharedHandle(adopting: fd)
    let mutex = try KeyedMutex.open(handle)
    try channel.send(Message(.done))
    while true {
        let message = try channel.receive()
        switch message.op {
        case .run:
            for _ in 0..<message.arguments.0 {
                _ = try mutex.acquire(key: 1)
                try mutex.release(key: 0)
            }
            try channel.send(Message(.done))
        case .quit:
            return
        default:
            throw BenchError("kmutex peer: unexpected \(message.op)")
        }
    }
}

/// The other side of the futex ping-pong.
func runFutexPeer(_ channel: Channel) throws {
    let setup = try channel.receive()
    guard setup.op == .setup, let fd = setup.descriptors.first else { throw BenchError("futex peer: no page") }
    let word = try mapShared(fd, size: 4096).assumingMemoryBound(to: UInt32.self)
    close(fd)
    try channel.send(Message(.done))
    while true {
        let message = try channel.receive()
        switch message.op {
        case .run:
            kb_futex_pingpong(word, 1, 0, Int(message.arguments.0))
            try channel.send(Message(.done))
        case .quit:
            return
        default:
            throw BenchError("futex peer: unexpected \(message.op)")
        }
    }
}

/// The other side of the pipe ping-pong.
func runPipePeer(_ channel: Channel) throws {
    let setup = try channel.receive()
    guard setup.op == .setup, setup.descriptors.count == 2 else { throw BenchError("pipe peer: no pipes") }
    let (input, output) = (setup.descriptors[0], setup.descriptors[1])
    try channel.send(Message(.done))
    while true {
        let message = try channel.receive()
        switch message.op {
        case .run:
            try check(kb_pipe_pingpong(input, output, Int(message.arguments.0), 0), "pipe ping-pong")
            try channel.send(Message(.done))
        case .quit:
            return
        default:
            throw BenchError("pipe peer: unexpected \(message.op)")
        }
    }
}
