#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CBenchSupport
import D3DKMT

// open-by-name: the parent shares a 4 KiB resource under a name and holds the named handle; a
// second process opens it by name and then opens the resource from the handle it got, and closes
// both (D3DKMTOpenNtHandleFromName: a connection to the sharer's event thread, which sends back a
// copy of the handle granting the access asked for; then D3DKMTOpenResourceFromNtHandle + destroy);
// next to the parent sending the same process an NT handle to the same resource (a duplicate, with
// SCM_RIGHTS), which the process opens and closes. Each side is one request and its reply.
//
// A third side, the floor, is the name protocol in C (CBenchSupport's kb_name_floor): a thread of
// the parent's serves copies of a handle on a listening socket, the process checks the directory,
// connects, waits, receives the copy and closes the connection, then opens the resource from the
// copy with the library as the other sides do. floor / raw is what a lookup through a socket costs
// the kernel and the scheduler; ours / floor is the library's own work in a lookup.
//
// A fourth side, the fast floor (kb_name_fast_floor), is a lookup without a round trip in C: the
// process reads a record the parent published (a symlink: the parent's pid, the descriptor numbers
// and identities of the handle and of a keeper), takes copies of both with pidfd_getfd, checks them
// with fstat, judges the keeper's hang-up and the handle's queued package, closes what it does not
// keep, then opens the resource as the other sides do.

func openByNameRow(_ target: Target) -> Row {
    let name = "open-by-name"
    let unit = "µs/op"
    do {
        let resource = try target.device.createResource(
            allocations: [(source: .new(AllocationDescriptor(size: 4096)), extraDriverData: [])])
        let objectName = "kmt-bench-open-by-name-\(getpid())"
        let named = try resource.share(name: objectName)
        let plain = try resource.share()
        guard let floor = kb_name_floor_start(plain.rawValue) else { throw BenchError("the name floor's server") }
        defer { kb_name_floor_stop(floor) }
        let floorPath = String(cString: kb_name_floor_path(floor))
        guard let fastFloor = kb_name_fast_floor_start(plain.rawValue) else {
            throw BenchError("the name fast floor's record")
        }
        defer { kb_name_fast_floor_stop(fastFloor) }
        let fastFloorPath = String(cString: kb_name_fast_floor_path(fastFloor))
        let peer = try Peer(role: "open-name",
                            arguments: target.luidArguments + [objectName, floorPath, fastFloorPath])
        let sides = target.sides([
            Side(name: "ours") { n in for _ in 0..<n { _ = try peer.channel.request(Message(.run, 1)) } },
            Side(name: "raw") { n in
                for _ in 0..<n { _ = try peer.channel.request(Message(.run, 0, descriptors: [plain.rawValue])) }
            },
            Side(name: "floor") { n in for _ in 0..<n { _ = try peer.channel.request(Message(.run, 2)) } },
            Side(name: "fast-floor") { n in for _ in 0..<n { _ = try peer.channel.request(Message(.run, 3)) } },
        ])
        let result = try measure(sides, target.config)
        try peer.finish()
        _ = consume named
        var note = "raw side: the same resource sent to the same opener as an NT handle"
        if let floor = result["floor"] {
            note += "; floor (the name protocol in C, same open): \(format(floor / 1000)) µs/op"
            if let raw = result["raw"] { note += ", \(formatFixed(floor / raw, 2))× raw" }
            if let ours = result["ours"] { note += "; ours \(formatFixed(ours / floor, 2))× floor" }
        }
        if let fastFloor = result["fast-floor"] {
            note += "; fast floor (record + pidfd_getfd in C, same open): \(format(fastFloor / 1000)) µs/op"
            if let raw = result["raw"] { note += ", \(formatFixed(fastFloor / raw, 2))× raw" }
        }
        return target.row(name, ours: result["ours"].map { $0 / 1000 }, raw: result["raw"].map { $0 / 1000 },
                          unit: unit, goal: 2.0, note: note)
    } catch {
        return target.failed(name, unit: unit, goal: 2.0, error)
    }
}

/// `.run`: with argument 1, opens the resource by the name given on the command line (after the
/// LUID); with 2, through the C floor's socket (the path after the name); with 3, through the C fast
/// floor's record (the last path); with 0, from the NT handle sent with the message. Closes
/// everything before answering.
func runOpenByNamePeer(_ channel: Channel, _ arguments: [String]) throws {
    guard arguments.count >= 3 else { throw BenchError("open-name peer: no name and floor paths") }
    let objectName = arguments[arguments.count - 3], floorPath = arguments[arguments.count - 2]
    let fastFloorPath = arguments[arguments.count - 1]
    let device = try adapter(luidArguments: Array(arguments.dropLast(3))).makeDevice()
    while true {
        let message = try channel.receive()
        switch message.op {
        case .run:
            let handle: SharedHandle
            if message.arguments.0 == 1 {
                handle = try SharedHandle.open(name: objectName)
            } else if message.arguments.0 == 2 {
                handle = SharedHandle(adopting: try check(kb_name_floor_lookup(floorPath), "the floor's lookup"))
            } else if message.arguments.0 == 3 {
                handle = SharedHandle(adopting: try check(kb_name_fast_floor_lookup(fastFloorPath),
                                                          "the fast floor's lookup"))
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
