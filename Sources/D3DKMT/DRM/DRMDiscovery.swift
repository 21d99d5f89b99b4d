#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CLibDRM

/// Finds the DRM devices that have a render node.
///
/// Scans `/dev/dri/renderD*` rather than trusting `drmGetDevices2`, which skips platform devices
/// without a device-tree name (vgem); sysfs (`/sys/dev/char/MAJ:MIN/device`) gives the bus
/// location, the PCI ids and the matching primary node.
enum DRMDiscovery {
    static let directory = "/dev/dri"

    static func adapters() -> [AdapterInfo] {
        let renderNodes = Kernel.directoryEntries(directory)
            .compactMap { name -> (Int, String)? in
                guard name.hasPrefix("renderD"), let minor = Int(name.dropFirst("renderD".count)) else { return nil }
                return (minor, name)
            }
            .sorted { $0.0 < $1.0 }
        return renderNodes.compactMap { describe(node: $0.1) }
    }

    /// Opens one render node and describes it; nil if it cannot be opened (no permission, gone).
    static func describe(node: String) -> AdapterInfo? {
        let renderPath = "\(directory)/\(node)"
        guard let fd = try? Kernel.open(renderPath, O_RDWR) else { return nil }
        return describe(fd.borrowed, renderPath: renderPath)
    }

    /// Describes the render node open as `fd`; nil if it is not a DRM device.
    static func describe(_ fd: BorrowedDescriptor, renderPath: String) -> AdapterInfo? {
        guard let driver = try? Kernel.drmDriverName(fd),
              let rdev = try? Kernel.deviceNumber(fd)
        else { return nil }
        let sysfs = "/sys/dev/char/\(major(rdev)):\(minor(rdev))/device"

        var capabilities: AdapterCapabilities = []
        let prime = Kernel.drmCapability(fd, DRM_CAP_PRIME)
        if prime & UInt64(DRM_PRIME_CAP_IMPORT) != 0 && prime & UInt64(DRM_PRIME_CAP_EXPORT) != 0 {
            capabilities.insert(.prime)
        }
        if Kernel.drmCapability(fd, DRM_CAP_SYNCOBJ) != 0 {
            capabilities.insert(.syncObject)
            if Kernel.hasSyncobjEventfd(fd) { capabilities.insert(.syncObjectEventfd) }
        }
        if Kernel.drmCapability(fd, DRM_CAP_SYNCOBJ_TIMELINE) != 0 { capabilities.insert(.timelineSyncObject) }
        if driver == "virtio_gpu", (try? Kernel.virtioGPUParameter(fd, Kernel.virtioGPUParam3DFeatures)) ?? 0 != 0 {
            capabilities.insert(.virgl3D)
        }

        // "../../../0000:00:02.0" under a PCI bus, ".../platform/vgem" for a platform device.
        let deviceLink = Kernel.readLink(sysfs) ?? ""
        let deviceName = deviceLink.split(separator: "/").last.map(String.init) ?? renderPath
        let subsystem = Kernel.readLink(sysfs + "/subsystem")?.split(separator: "/").last.map(String.init) ?? "unknown"
        var pci: PCILocation?
        if subsystem == "pci" {
            pci = PCILocation(parsing: deviceName)
        }
        let vendor = Kernel.readSmallFile(sysfs + "/vendor").flatMap(parseHex) ?? 0
        let device = Kernel.readSmallFile(sysfs + "/device").flatMap(parseHex) ?? 0
        let primary = Kernel.directoryEntries(sysfs + "/drm").first { $0.hasPrefix("card") }
            .map { "\(directory)/\($0)" }

        let busInfo = "\(subsystem):\(deviceName)"
        return AdapterInfo(
            luid: luid(minor: UInt32(minor(rdev)), busInfo: busInfo),
            driverName: driver,
            renderNode: renderPath,
            primaryNode: primary,
            busInfo: busInfo,
            pciLocation: pci,
            vendorID: vendor,
            deviceID: device,
            capabilities: capabilities
        )
    }

    /// A DRM adapter's LUID: the render node's minor in the low part (tagged 'DR' in the top 16
    /// bits) and a hash of the bus location in the high part. Both are the same in every process
    /// until the device goes away, so a LUID sent by a sharer names the same adapter for the
    /// opener; a different device later given the same minor gets a different high part.
    static func luid(minor: UInt32, busInfo: String) -> LUID {
        var hash: UInt32 = 0x811C_9DC5  // FNV-1a
        for byte in busInfo.utf8 {
            hash ^= UInt32(byte)
            hash = hash &* 0x0100_0193
        }
        return LUID(lowPart: 0x4452_0000 | (minor & 0xFFFF), highPart: Int32(bitPattern: hash & 0x7FFF_FFFF))
    }

    private static func parseHex(_ text: String) -> UInt32? {
        UInt32(text.hasPrefix("0x") ? String(text.dropFirst(2)) : text, radix: 16)
    }

    private static func major(_ device: dev_t) -> UInt32 {
        UInt32((device >> 8) & 0xFFF) | UInt32((device >> 32) & ~0xFFF)
    }
    private static func minor(_ device: dev_t) -> UInt32 { UInt32(device & 0xFF) | UInt32((device >> 12) & ~0xFF) }
}
