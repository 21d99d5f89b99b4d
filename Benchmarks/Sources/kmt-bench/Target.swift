#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CBenchSupport
import D3DKMT

/// The raw primitives' view of an adapter: nothing (software: memfds and futexes), or its DRM
/// nodes opened directly.
struct RawDevice {
    /// "software", or the render node path.
    var renderPath: String
    var cardPath: String
    var isVirtio: Bool
    /// Open descriptors (-1 on the software adapter or when not opened).
    var render: Int32 = -1
    var card: Int32 = -1

    var isSoftware: Bool { renderPath == "software" }

    /// How a peer learns it: `software` or `RENDER CARD VIRTIO`.
    var arguments: [String] { isSoftware ? ["software"] : [renderPath, cardPath, isVirtio ? "1" : "0"] }

    init(arguments: [String]) throws {
        guard let first = arguments.first else { throw BenchError("raw peer without a device") }
        renderPath = first
        cardPath = arguments.count > 1 ? arguments[1] : "-"
        isVirtio = arguments.count > 2 && arguments[2] == "1"
        if !isSoftware {
            render = try check(kb_drm_open(renderPath), "opening \(renderPath)")
            if cardPath != "-" && !isVirtio { card = try check(kb_drm_open(cardPath), "opening \(cardPath)") }
        }
    }

    /// Waits until the device has caught up with buffers freed so far (virtio-gpu destroys them
    /// on the host, asynchronously); nothing elsewhere.
    func settle() throws {
        guard isVirtio, render >= 0 else { return }
        try check(kb_virtio_settle(render), "waiting for virtio-gpu to settle")
    }

    /// A new buffer: a sealed memfd, or a dma-buf made as the library makes one.
    func makeBuffer(size: UInt64) throws -> Int32 {
        if isSoftware { return try check(kb_memfd_buffer(size), "memfd of \(size) bytes") }
        return try check(kb_drm_buffer(render, card, isVirtio ? 1 : 0, size),
                         "DRM buffer of \(size) bytes on \(renderPath)")
    }
}

/// One adapter under test, as this process sees it.
struct Target {
    let adapter: Adapter
    let device: Device
    let raw: RawDevice
    /// The adapter column: the driver name (with the render node when two share a driver).
    let name: String
    let config: Config

    var info: AdapterInfo { adapter.info }
    var hasTimelines: Bool { info.isSoftware || info.capabilities.contains(.timelineSyncObject) }

    /// `--luid LOW HIGH`, how an "ours" peer finds the adapter.
    var luidArguments: [String] { [String(info.luid.lowPart), String(info.luid.highPart)] }

    init(adapter: Adapter, name: String, config: Config) throws {
        self.adapter = adapter
        self.name = name
        self.config = config
        device = try adapter.makeDevice()
        let info = adapter.info
        raw = info.isSoftware
            ? try RawDevice(arguments: ["software"])
            : try RawDevice(arguments: [info.renderNode ?? "-", info.primaryNode ?? "-",
                                        info.driverName == "virtio_gpu" ? "1" : "0"])
    }

    func row(_ name: String, ours: Double?, raw: Double?, unit: String, goal: Double?, note: String? = nil) -> Row {
        Row(name: name, adapter: self.name, machine: config.machine, ours: ours, raw: raw, unit: unit, goal: goal,
            note: note)
    }

    func notApplicable(_ name: String, unit: String, goal: Double?, why: String) -> Row {
        row(name, ours: nil, raw: nil, unit: unit, goal: goal, note: "n/a: \(why)")
    }

    func failed(_ name: String, unit: String, goal: Double?, _ error: any Error) -> Row {
        var row = row(name, ours: nil, raw: nil, unit: unit, goal: goal)
        row.error = "\(error)"
        return row
    }

    /// The sides to measure, honouring `--only`.
    func sides(_ all: [Side]) -> [Side] {
        guard let only = config.onlySide else { return all }
        return all.filter { $0.name == only }
    }
}

/// The adapter with this LUID, as the peer was told it.
func adapter(luidArguments arguments: [String]) throws -> Adapter {
    guard arguments.count >= 2, let low = UInt32(arguments[0]), let high = Int32(arguments[1]) else {
        throw BenchError("peer needs LUID LOW HIGH")
    }
    return try Adapter.open(luid: LUID(lowPart: low, highPart: high))
}

/// Maps `size` bytes of a shared descriptor read-write.
func mapShared(_ fd: Int32, size: Int) throws -> UnsafeMutableRawPointer {
    guard let base = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), base != MAP_FAILED else {
        throw BenchError("mmap: \(errorText(errno))")
    }
    return base
}
