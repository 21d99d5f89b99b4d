// kmt inspect and kmt names: what shared handles and names hold, read without changing them.
import ArgumentParser
import D3DKMT
#if canImport(Glibc)
import Glibc
#endif

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show what a shared handle holds: adapter, allocations, data sizes, access, the keyed mutex's "
            + "state and the sync object's value. The handle is read, never changed.",
        discussion: """
            Pick the handle by name (--name, in your namespace), by a descriptor of a running process of \
            yours (--pid P --fd N, through pidfd_getfd; Yama's ptrace_scope may restrict it to your own \
            children), or every shared handle a process holds (--pid P alone).
            """)

    @Option(help: "A name in your namespace (a resource's or a sync object's), as D3DKMTOpenNtHandleFromName takes it.")
    var name: String?
    @Option(help: "A process of yours.") var pid: Int32?
    @Option(help: "A descriptor of that process (with --pid).") var fd: Int32?
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        guard (name == nil) != (pid == nil) else {
            throw ValidationError("give --name, or --pid (with or without --fd)")
        }
        if fd != nil && pid == nil { throw ValidationError("--fd needs --pid") }
    }

    func run() throws {
        do {
            if let name {
                let report = try SharedHandle.inspect(name: name)
                if json {
                    print(JSON.object([("name", .string(name)), ("handle", reportJSON(report))]).rendered())
                } else {
                    print("name \(name)")
                    printReport(report)
                }
            } else if let pid, let fd {
                let report: HandleReport
                do {
                    report = try SharedHandle.copy(fromProcess: pid, descriptor: fd).inspect()
                } catch {
                    // The reason names this process's copy of the descriptor: say whose it is.
                    throw NTError(error.status, "process \(pid) descriptor \(fd): \(error.reason)")
                }
                if json {
                    print(JSON.object([("pid", .int(Int64(pid))), ("descriptor", .int(Int64(fd))),
                                       ("handle", reportJSON(report))]).rendered())
                } else {
                    print("process \(pid), descriptor \(fd)")
                    printReport(report)
                }
            } else if let pid {
                let found = try SharedHandle.inspectProcess(pid)
                if json {
                    print(JSON.object([
                        ("pid", .int(Int64(pid))),
                        ("handles", .array(found.map {
                            .object([("descriptor", .int(Int64($0.descriptor))), ("handle", reportJSON($0.report))])
                        })),
                    ]).rendered())
                } else {
                    print("process \(pid): \(found.count) shared handle\(found.count == 1 ? "" : "s")")
                    for entry in found {
                        print("")
                        print("descriptor \(entry.descriptor)")
                        printReport(entry.report)
                    }
                }
            }
        } catch {
            printError("inspect: \(error)")
            throw ExitCode.failure
        }
    }
}

struct NamesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "names",
        abstract: "List your live names (those whose sharer still answers) and what they name.",
        discussion: "Names are shown as the namespace keeps them: folded to upper case, global ones with "
            + "Global\\. Listing a name does not change it.")

    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let names: [LiveName]
        do { names = try SharedHandle.liveNames() } catch {
            printError("names: \(error)")
            throw ExitCode.failure
        }
        if json {
            print(JSON.array(names.map { name in
                .object([("name", .string(name.openableName)), ("canonicalName", .string(name.canonicalName)),
                         ("namespace", .string(name.isGlobal ? "global" : "session")),
                         ("kind", .string(name.kind.rawValue))])
            }).rendered())
            return
        }
        guard !names.isEmpty else {
            print("no live names")
            return
        }
        printTable([["name", "namespace", "kind"]] + names.map {
            [$0.openableName, $0.isGlobal ? "global" : "session", $0.kind == .resource ? "resource" : "sync object"]
        })
    }
}

// MARK: - Output

/// A DRM fourcc as its four characters (`XR24`), when they are printable.
func fourccText(_ code: UInt32) -> String? {
    guard code != 0 else { return nil }
    let bytes = (0..<4).map { UInt8(truncatingIfNeeded: code >> (8 * $0)) }
    guard bytes.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) else { return nil }
    return String(decoding: bytes, as: UTF8.self)
}

func hex64(_ value: UInt64) -> String { "0x" + String(value, radix: 16) }

/// What a resource's access mask lets openers do.
func resourceAccessText(_ access: UInt32) -> String {
    if access == SharedAccess.allAccess { return "SHARED_ALLOCATION_ALL_ACCESS" }
    return access & SharedAccess.write != 0 ? "read/write" : "read-only"
}

/// What a sync object's access mask lets openers do.
func syncAccessText(_ access: UInt32) -> String {
    if access == SyncObjectAccess.allAccess { return "D3DDDI_SYNC_OBJECT_ALL_ACCESS" }
    var rights: [String] = []
    if access & SyncObjectAccess.wait != 0 { rights.append("wait") }
    if access & SyncObjectAccess.signal != 0 { rights.append("signal") }
    return rights.isEmpty ? "neither wait nor signal" : rights.joined(separator: "+")
}

func kindText(_ kind: SyncObject.Kind?, type: UInt32) -> String {
    switch kind {
    case .fence: return "fence"
    case .monitoredFence: return "monitored fence"
    case .mutex: return "mutex"
    case .semaphore: return "semaphore"
    case nil: return "type \(type)"
    }
}

func printReport(_ report: HandleReport) {
    let adapter = report.adapter
    let here = adapter.driverName.map { $0 + (adapter.renderNode.map { " " + $0 } ?? "") } ?? "not on this machine"
    let contents = [report.resource != nil ? "resource" : nil, report.keyedMutex != nil ? "keyed mutex" : nil,
                    report.syncObject != nil ? "sync object" : nil].compactMap { $0 }
    print("  holds        \(contents.joined(separator: " + ")) (\(report.descriptorCount) descriptors)")
    print("  adapter      \(adapter.luid) (\(here))")
    let accessMeaning = report.resource != nil ? resourceAccessText(report.access) : syncAccessText(report.access)
    print("  access       \(hex32(report.access)) (\(accessMeaning))")
    if let resource = report.resource {
        print("  resource     runtime data \(resource.runtimeDataSize) B, resource driver data "
              + "\(resource.resourceDriverDataSize) B, allocation driver data "
              + "\(resource.totalAllocationDriverDataSize) B")
        for (index, allocation) in resource.allocations.enumerated() {
            let layout = allocation.layout
            var text = "  allocation \(index): \(layout.size) B (\(allocation.isDmaBuf ? "dma-buf" : "memfd") of "
                + "\(allocation.bufferSize) B)"
            if layout.width != 0 || layout.height != 0 {
                text += ", \(layout.width)x\(layout.height) stride \(layout.stride)"
            }
            if layout.fourcc != 0 {
                text += ", fourcc \(fourccText(layout.fourcc) ?? "?") (\(hex32(layout.fourcc)))"
            }
            text += ", modifier \(hex64(layout.modifier)), driver data \(allocation.driverDataSize) B"
            print(text)
        }
    }
    if let mutex = report.keyedMutex {
        var state: String
        if mutex.isOwned {
            state = "OWNED with key \(mutex.key)"
            if let pid = mutex.ownerProcessID { state += " by pid \(pid)" }
            if let slot = mutex.ownerSlot { state += " (slot \(slot)" + (mutex.ownerIsRunning == false
                                                                           ? ", owner gone)" : ")") }
        } else {
            state = "released with key \(mutex.key)"
        }
        if mutex.isAbandoned { state += ", ABANDONED" }
        print("  keyed mutex  \(state)")
        print("               last fence value \(mutex.fenceValue), waiters \(mutex.hasWaiters ? "yes" : "no"), "
              + "generation \(mutex.generation)")
        let timeline = mutex.hasTimeline ? "timeline at \(mutex.timelinePoint.map(String.init) ?? "?")" : "no timeline"
        print("               runtime data \(mutex.runtimeDataSize) B (last release \(mutex.releaseDataSize) B), "
              + timeline)
    }
    if let sync = report.syncObject {
        let value = sync.value.map(String.init) ?? "unknown (\(sync.valueError ?? "?"))"
        var text = "  sync object  \(kindText(sync.kind, type: sync.type)), "
            + "\(sync.isDRM ? "DRM timeline syncobj" : "software"), value \(value)"
        if sync.isDRM, let shared = sync.sharedValue { text += " (CPU-visible copy \(shared))" }
        if let sleeping = sync.sleepingWaiters { text += ", \(sleeping) waiting" }
        print(text)
        print("               flags \(hex32(sync.flags)), access \(hex32(sync.access)) "
              + "(\(syncAccessText(sync.access)))")
    }
}

func reportJSON(_ report: HandleReport) -> JSON {
    var members: [(String, JSON)] = [
        ("access", .uint(UInt64(report.access))),
        ("adapter", .object([("luid", luidJSON(report.adapter.luid)),
                             ("driver", .optional(report.adapter.driverName, JSON.string)),
                             ("renderNode", .optional(report.adapter.renderNode, JSON.string))])),
        ("descriptorCount", .int(Int64(report.descriptorCount))),
    ]
    members.append(("resource", .optional(report.resource) { resource in
        .object([
            ("runtimeDataSize", .int(Int64(resource.runtimeDataSize))),
            ("resourceDriverDataSize", .int(Int64(resource.resourceDriverDataSize))),
            ("totalAllocationDriverDataSize", .int(Int64(resource.totalAllocationDriverDataSize))),
            ("allocations", .array(resource.allocations.map { allocation in
                .object([
                    ("size", .uint(allocation.layout.size)), ("bufferSize", .uint(allocation.bufferSize)),
                    ("memory", .string(allocation.isDmaBuf ? "dma-buf" : "memfd")),
                    ("width", .uint(UInt64(allocation.layout.width))),
                    ("height", .uint(UInt64(allocation.layout.height))),
                    ("stride", .uint(UInt64(allocation.layout.stride))),
                    ("fourcc", .uint(UInt64(allocation.layout.fourcc))),
                    ("fourccText", .optional(fourccText(allocation.layout.fourcc), JSON.string)),
                    ("modifier", .uint(allocation.layout.modifier)),
                    ("driverDataSize", .int(Int64(allocation.driverDataSize))),
                ])
            })),
        ])
    }))
    members.append(("keyedMutex", .optional(report.keyedMutex) { mutex in
        .object([
            ("key", .uint(mutex.key)), ("owned", .bool(mutex.isOwned)),
            ("ownerSlot", .optional(mutex.ownerSlot) { .uint(UInt64($0)) }),
            ("ownerPid", .optional(mutex.ownerProcessID) { .int(Int64($0)) }),
            ("ownerRunning", .optional(mutex.ownerIsRunning, JSON.bool)),
            ("abandoned", .bool(mutex.isAbandoned)), ("fenceValue", .uint(mutex.fenceValue)),
            ("waiters", .bool(mutex.hasWaiters)), ("generation", .uint(UInt64(mutex.generation))),
            ("runtimeDataSize", .int(Int64(mutex.runtimeDataSize))),
            ("releaseDataSize", .int(Int64(mutex.releaseDataSize))),
            ("timeline", .bool(mutex.hasTimeline)),
            ("timelinePoint", .optional(mutex.timelinePoint, JSON.uint)),
        ])
    }))
    members.append(("syncObject", .optional(report.syncObject) { sync in
        .object([
            ("type", .uint(UInt64(sync.type))), ("kind", .string(kindText(sync.kind, type: sync.type))),
            ("drm", .bool(sync.isDRM)), ("value", .optional(sync.value, JSON.uint)),
            ("sharedValue", .optional(sync.sharedValue, JSON.uint)),
            ("sleepingWaiters", .optional(sync.sleepingWaiters) { .uint(UInt64($0)) }),
            ("valueError", .optional(sync.valueError, JSON.string)),
            ("flags", .uint(UInt64(sync.flags))), ("access", .uint(UInt64(sync.access))),
        ])
    }))
    return .object(members)
}
