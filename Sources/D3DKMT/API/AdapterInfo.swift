/// What an adapter can do, as far as sharing goes.
public struct AdapterCapabilities: OptionSet, Hashable, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// The software adapter (system memory, no DRM device).
    public static let software = AdapterCapabilities(rawValue: 1)
    /// PRIME import and export of dma-bufs (`DRM_CAP_PRIME`).
    public static let prime = AdapterCapabilities(rawValue: 2)
    /// DRM syncobjs (`DRM_CAP_SYNCOBJ`).
    public static let syncObject = AdapterCapabilities(rawValue: 4)
    /// Timeline syncobjs (`DRM_CAP_SYNCOBJ_TIMELINE`).
    public static let timelineSyncObject = AdapterCapabilities(rawValue: 8)
    /// 3D acceleration the library can see: a virtio-gpu with virgl (`VIRTGPU_PARAM_3D_FEATURES`).
    /// Other drivers do not say it this way and never have this bit, whatever their GPU does.
    public static let virgl3D = AdapterCapabilities(rawValue: 16)
    /// CPU waits on the adapter's syncobjs can be handed to the kernel as an eventfd
    /// (`DRM_IOCTL_SYNCOBJ_EVENTFD`, Linux 6.6): asynchronous waits (`hAsyncEvent`) then cost no
    /// polling. Without it they still work: the event thread looks at them every few milliseconds.
    public static let syncObjectEventfd = AdapterCapabilities(rawValue: 32)
}

/// A PCI bus location (`D3DKMT_ADAPTERADDRESS`).
public struct PCILocation: Hashable, Sendable {
    public var domain: UInt32
    public var bus: UInt32
    public var device: UInt32
    public var function: UInt32

    /// Parses `"0000:00:02.0"`.
    init?(parsing text: String) {
        let parts = text.split(whereSeparator: { $0 == ":" || $0 == "." })
        guard parts.count == 4,
              let domain = UInt32(parts[0], radix: 16), let bus = UInt32(parts[1], radix: 16),
              let device = UInt32(parts[2], radix: 16), let function = UInt32(parts[3], radix: 10)
        else { return nil }
        (self.domain, self.bus, self.device, self.function) = (domain, bus, device, function)
    }
}

/// Everything a runtime needs to tell adapters apart (`D3DKMTQueryAdapterInfo`).
public struct AdapterInfo: Hashable, Sendable {
    /// Stable on this machine until reboot, the same in every process.
    public var luid: LUID
    /// The kernel driver (`drmGetVersion` name), or `"software"`.
    public var driverName: String
    /// `/dev/dri/renderD128`, nil for the software adapter.
    public var renderNode: String?
    /// `/dev/dri/card0`, when the device has one.
    public var primaryNode: String?
    /// `"pci:0000:00:02.0"`, `"platform:vgem"`, or `"software"`.
    public var busInfo: String
    /// The PCI location, for PCI devices.
    public var pciLocation: PCILocation?
    /// PCI vendor and device ids, 0 when not PCI.
    public var vendorID: UInt32
    public var deviceID: UInt32
    public var capabilities: AdapterCapabilities

    /// True for the software adapter.
    public var isSoftware: Bool { capabilities.contains(.software) }

    /// The software adapter, present on every machine.
    public static let software = AdapterInfo(
        luid: LUID(lowPart: 0x5357_0001, highPart: 0x4B4D_5457),  // "SW" 1, "KMTW"
        driverName: "software", renderNode: nil, primaryNode: nil, busInfo: "software",
        pciLocation: nil, vendorID: 0, deviceID: 0, capabilities: [.software]
    )
}
