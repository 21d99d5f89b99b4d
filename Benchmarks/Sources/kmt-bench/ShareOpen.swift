#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CBenchSupport
import D3DKMT

// share-open: create a resource, share it, pass the handle to a second process, open it there,
// close everything; next to: make the buffer (memfd / dma-buf), send its descriptor with
// SCM_RIGHTS, import it (fstat / drmPrimeFDToHandle), close.
//
// A third side, the floor, is C making the system calls ours makes and nothing else (socket
// pair, package sent into it, peek, descriptor checks): the part of the gap to raw that is the
// shared-handle design's kernel work; the rest is the library's own user-space work.

/// One "ours" share-open cycle: the parent's half, and the wait for the peer's open.
func shareOpenOurs(_ target: Target, _ channel: Channel, size: UInt64) throws {
    let resource = try target.device.createResource(
        allocations: [(source: .new(AllocationDescriptor(size: size)), extraDriverData: [])])
    let handle = try resource.share()
    try sendDescriptor(handle.rawValue, over: channel.socket)
    _ = consume handle
    _ = try channel.receive()
}

/// One raw cycle.
func shareOpenRaw(_ target: Target, _ channel: Channel, size: UInt64) throws {
    let fd = try target.raw.makeBuffer(size: size)
    defer { close(fd) }
    try channel.send(Message(.open, descriptors: [fd]))
    _ = try channel.receive()
}

/// One floor cycle.
func shareOpenFloor(_ target: Target, _ channel: Channel, size: UInt64) throws {
    let fd = try target.raw.makeBuffer(size: size)
    var gem: UInt32 = 0
    defer {
        close(fd)
        if !target.raw.isSoftware { kb_gem_close(target.raw.render, gem) }
    }
    // Ours keeps the new buffer imported in the sharer's device too.
    if !target.raw.isSoftware { try check(kb_prime_import(target.raw.render, fd, &gem), "drmPrimeFDToHandle") }
    // The size of ours' package for one allocation and no private data (header + one record).
    let package = [UInt8](repeating: 0x5A, count: 96)
    try check(package.withUnsafeBytes { kb_floor_share(channel.socket, fd, $0.baseAddress, $0.count) }, "floor share")
    _ = try channel.receive()
}

func shareOpenRow(_ target: Target, size: UInt64, label: String) -> Row {
    let name = "share-open \(label)"
    let unit = "µs/op"
    do {
        let oursPeer = try Peer(role: "share-ours", arguments: target.luidArguments)
        let rawPeer = try Peer(role: "share-raw", arguments: target.raw.arguments)
        let floorPeer = try Peer(role: "share-floor", arguments: target.raw.arguments)
        let sides = target.sides([
            Side(name: "ours") { n in for _ in 0..<n { try shareOpenOurs(target, oursPeer.channel, size: size) } },
            Side(name: "raw") { n in for _ in 0..<n { try shareOpenRaw(target, rawPeer.channel, size: size) } },
            Side(name: "floor") { n in for _ in 0..<n { try shareOpenFloor(target, floorPeer.channel, size: size) } },
        ])
        let result = try measure(sides, target.config)
        try oursPeer.finish()
        try rawPeer.finish()
        try floorPeer.finish()
        var row = target.row(name, ours: result["ours"].map { $0 / 1000 }, raw: result["raw"].map { $0 / 1000 },
                             unit: unit, goal: 1.25)
        if let floor = result["floor"] {
            row.floor = floor / 1000
            row.note = "floor (C making ours' system calls, no library): \(format(floor / 1000)) µs/op" +
                (result["raw"].map { ", \(formatFixed(floor / $0, 2))× raw" } ?? "") +
                (result["ours"].map { ours in
                    let ratio = ours / floor
                    let verdict = ratio <= 1.10 ? "met" : "MISSED"
                    return "; ours \(formatFixed(ratio, 2))× floor (goal ≤ 1.10: \(verdict))"
                } ?? "")
        }
        return row
    } catch {
        return target.failed(name, unit: unit, goal: 1.25, error)
    }
}

// ---- the peers

/// Opens what it is sent with the library, on a device of the adapter named by LUID.
func runShareOursPeer(_ channel: Channel, _ arguments: [String]) throws {
    let device = try adapter(luidArguments: arguments).makeDevice()
    var held: [Resource] = []
    while true {
        let message = try channel.receive()
        switch message.op {
        case .open:
            guard let fd = message.descriptors.first else { throw BenchError("open without a handle") }
            // Open and close everything (the handle too) before answering, as the raw peer does.
            try { (handle: consuming SharedHandle) throws in
                _ = try device.openResource(handle)
            }(SharedHandle(adopting: fd))
            try channel.send(Message(.done))
        case .hold:
            guard let fd = message.descriptors.first else { throw BenchError("hold without a handle") }
            let handle = SharedHandle(adopting: fd)
            held.append(try device.openResource(handle))
            try channel.send(Message(.done))
        case .drop:
            let keep = Int(message.arguments.0)
            if held.count > keep { held.removeLast(held.count - keep) }
            try channel.send(Message(.done))
        case .stats:
            kb_trim_heap()
            let stats = ProcessStats.current()
            try channel.send(Message(.done, UInt64(stats.descriptors), UInt64(stats.residentKiB)))
        case .quit:
            return
        default:
            throw BenchError("share-ours peer: unexpected \(message.op)")
        }
    }
}

/// Imports what it is sent the raw way: fstat of a memfd, drmPrimeFDToHandle of a dma-buf.
func runShareRawPeer(_ channel: Channel, _ arguments: [String]) throws {
    let raw = try RawDevice(arguments: arguments)
    // Held objects: a memfd descriptor, or a GEM handle (the dma-buf descriptor is closed once
    // imported: the handle keeps the buffer).
    var held: [Int32] = []
    func importBuffer(_ fd: Int32, keep: Bool) throws {
        if raw.isSoftware {
            try check(kb_fd_size(fd), "fstat of a received memfd")
            if keep { held.append(fd) } else { close(fd) }
        } else {
            var handle: UInt32 = 0
            let imported = kb_prime_import(raw.render, fd, &handle)
            close(fd)
            try check(imported, "drmPrimeFDToHandle")
            if keep { held.append(Int32(bitPattern: handle)) } else { kb_gem_close(raw.render, handle) }
        }
    }
    func release(_ object: Int32) {
        if raw.isSoftware { close(object) } else { kb_gem_close(raw.render, UInt32(bitPattern: object)) }
    }
    while true {
        let message = try channel.receive()
        switch message.op {
        case .open, .hold:
            guard let fd = message.descriptors.first else { throw BenchError("open without a buffer") }
            try importBuffer(fd, keep: message.op == .hold)
            try channel.send(Message(.done))
        case .drop:
            let keep = Int(message.arguments.0)
            while held.count > keep { release(held.removeLast()) }
            try channel.send(Message(.done))
        case .stats:
            let stats = ProcessStats.current()
            try channel.send(Message(.done, UInt64(stats.descriptors), UInt64(stats.residentKiB)))
        case .quit:
            return
        default:
            throw BenchError("share-raw peer: unexpected \(message.op)")
        }
    }
}

/// The floor's other side: kb_floor_open on each handle.
func runShareFloorPeer(_ channel: Channel, _ arguments: [String]) throws {
    let raw = try RawDevice(arguments: arguments)
    while true {
        let message = try channel.receive()
        switch message.op {
        case .open:
            guard let fd = message.descriptors.first else { throw BenchError("open without a handle") }
            try check(kb_floor_open(fd, raw.render), "floor open")
            try channel.send(Message(.done))
        case .quit:
            return
        default:
            throw BenchError("share-floor peer: unexpected \(message.op)")
        }
    }
}
