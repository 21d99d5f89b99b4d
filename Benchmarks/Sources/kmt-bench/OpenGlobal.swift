import D3DKMT

// open-by-global: the parent tells a second process a 4 KiB resource's global (KMT) share handle
// (a value in a message), and the process opens it and closes it (D3DKMTOpenResource2 + destroy:
// a connection to the creator's name thread for the objects, then this process serving the value
// itself while it holds the resource); next to the parent sending the same process an NT handle
// to the same resource (a duplicate, with SCM_RIGHTS), which the process opens and closes
// (D3DKMTOpenResourceFromNtHandle + destroy, the handle closed). Each side is one request and its
// reply: how a client gets a shared resource from another process, by value and by NT handle.

func openGlobalRow(_ target: Target) -> Row {
    let name = "open-by-global"
    let unit = "µs/op"
    do {
        let global = try target.device.createResource(
            allocations: [(source: .new(AllocationDescriptor(size: 4096)), extraDriverData: [])],
            shareable: false, globalShare: true)
        guard let value = global.globalHandle else { throw BenchError("no global handle") }
        let shared = try target.device.createResource(
            allocations: [(source: .new(AllocationDescriptor(size: 4096)), extraDriverData: [])])
        let handle = try shared.share()
        let peer = try Peer(role: "open-global", arguments: target.luidArguments)
        let sides = target.sides([
            Side(name: "ours") { n in for _ in 0..<n { _ = try peer.channel.request(Message(.run, UInt64(value))) } },
            Side(name: "raw") { n in
                for _ in 0..<n {
                    _ = try peer.channel.request(Message(.run, 0, descriptors: [handle.rawValue]))
                }
            },
        ])
        let result = try measure(sides, target.config)
        try peer.finish()
        return target.row(name, ours: result["ours"].map { $0 / 1000 }, raw: result["raw"].map { $0 / 1000 },
                          unit: unit, goal: 1.5,
                          note: "raw side: the same resource sent to the same opener as an NT handle")
    } catch {
        return target.failed(name, unit: unit, goal: 1.5, error)
    }
}

/// `.run`: opens by global handle (argument 0) or, for argument 0 = 0, from the NT handle sent
/// with it (then closed).
func runOpenGlobalPeer(_ channel: Channel, _ arguments: [String]) throws {
    let device = try adapter(luidArguments: arguments).makeDevice()
    while true {
        let message = try channel.receive()
        switch message.op {
        case .run:  // .open carries no arguments on the wire
            let value = UInt32(truncatingIfNeeded: message.arguments.0)
            if value != 0 {
                _ = try device.openResource(globalHandle: value)
            } else {
                guard let fd = message.descriptors.first else { throw BenchError("run without a handle") }
                try { (handle: consuming SharedHandle) throws in
                    _ = try device.openResource(handle)
                }(SharedHandle(adopting: fd))
            }
            try channel.send(Message(.done))
        case .quit:
            return
        default:
            throw BenchError("open-global peer: unexpected \(message.op)")
        }
    }
}
