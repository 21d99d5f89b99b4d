#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import D3DKMT

// open-by-name: the parent shares a 4 KiB resource under a name and holds the named handle; a
// second process opens it by name and then opens the resource from the handle it got, and closes
// both (D3DKMTOpenNtHandleFromName: a connection to the sharer's event thread, which sends back a
// copy of the handle granting the access asked for; then D3DKMTOpenResourceFromNtHandle + destroy);
// next to the parent sending the same process an NT handle to the same resource (a duplicate, with
// SCM_RIGHTS), which the process opens and closes. Each side is one request and its reply.

func openByNameRow(_ target: Target) -> Row {
    let name = "open-by-name"
    let unit = "µs/op"
    do {
        let resource = try target.device.createResource(
            allocations: [(source: .new(AllocationDescriptor(size: 4096)), extraDriverData: [])])
        let objectName = "kmt-bench-open-by-name-\(getpid())"
        let named = try resource.share(name: objectName)
        let plain = try resource.share()
        let peer = try Peer(role: "open-name", arguments: target.luidArguments + [objectName])
        let sides = target.sides([
            Side(name: "ours") { n in for _ in 0..<n { _ = try peer.channel.request(Message(.run, 1)) } },
            Side(name: "raw") { n in
                for _ in 0..<n { _ = try peer.channel.request(Message(.run, 0, descriptors: [plain.rawValue])) }
            },
        ])
        let result = try measure(sides, target.config)
        try peer.finish()
        _ = consume named
        return target.row(name, ours: result["ours"].map { $0 / 1000 }, raw: result["raw"].map { $0 / 1000 },
                          unit: unit, goal: 2.0,
                          note: "raw side: the same resource sent to the same opener as an NT handle")
    } catch {
        return target.failed(name, unit: unit, goal: 2.0, error)
    }
}

/// `.run`: with argument 1, opens the resource by the name given on the command line (after the
/// LUID); with 0, from the NT handle sent with the message. Closes everything before answering.
func runOpenByNamePeer(_ channel: Channel, _ arguments: [String]) throws {
    guard let objectName = arguments.last else { throw BenchError("open-name peer: no name") }
    let device = try adapter(luidArguments: Array(arguments.dropLast())).makeDevice()
    while true {
        let message = try channel.receive()
        switch message.op {
        case .run:
            let handle: SharedHandle
            if message.arguments.0 == 1 {
                handle = try SharedHandle.open(name: objectName)
            } else {
                guard let fd = message.descriptors.first else { throw BenchError("run without a handle") }
                handle = SharedHandle(adopting: fd)
            }
            try { (handle: consuming SharedHandle) throws in _ = try device.openResource(handle) }(handle)
            try channel.send(Message(.done))
        case .quit:
            return
        default:
            throw BenchError("open-name peer: unexpected \(message.op)")
        }
    }
}
