/// A graphics adapter: a DRM device with a render node, or the software adapter.
///
/// Corresponds to the `hAdapter` of `D3DKMTEnumAdapters2` / `D3DKMTOpenAdapterFromLuid`. An
/// adapter holds no descriptor; each ``Device`` made from it opens its own.
public final class Adapter: Sendable {
    public let info: AdapterInfo

    init(info: AdapterInfo) { self.info = info }

    /// Every adapter on this machine: one per DRM device that has a render node the caller can
    /// open, in render-node order, then the software adapter (`D3DKMTEnumAdapters2`).
    public static func enumerate() -> [Adapter] {
        (DRMDiscovery.adapters() + [AdapterInfo.software]).map(Adapter.init(info:))
    }

    /// The adapter with this LUID (`D3DKMTOpenAdapterFromLuid`).
    ///
    /// - Throws: `STATUS_INVALID_PARAMETER` when no adapter has that LUID (Windows' status for an
    ///   unknown LUID).
    public static func open(luid: LUID) throws(NTError) -> Adapter {
        if luid == AdapterInfo.software.luid { return Adapter(info: .software) }
        guard let info = DRMDiscovery.adapters().first(where: { $0.luid == luid }) else {
            throw NTError(.invalidParameter, "no adapter has LUID \(luid)")
        }
        return Adapter(info: info)
    }

    /// Opens a device on this adapter (`D3DKMTCreateDevice`): on a DRM adapter, a new descriptor
    /// for its render node. The first one a process makes raises its soft `RLIMIT_NOFILE` to the
    /// hard limit when `D3DKMT_RAISE_NOFILE=1` is set (``DescriptorLimit``).
    ///
    /// - Throws: the status for the `open(2)` failure (`STATUS_ACCESS_DENIED`, ...) or
    ///   `STATUS_DEVICE_REMOVED` when the device has gone.
    public func makeDevice() throws(NTError) -> Device {
        _ = DescriptorLimit.raised  // D3DKMT_RAISE_NOFILE=1: the soft RLIMIT_NOFILE to the hard one, once
        if info.isSoftware { return Device(adapter: self, backend: SoftwareDevice()) }
        return Device(adapter: self, backend: try DRMDevice.open(info))
    }
}
