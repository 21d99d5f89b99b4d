import D3DKMT
import CD3DKMT

// Adapters and devices: D3DKMTEnumAdapters2, D3DKMTOpenAdapterFromLuid, D3DKMTCloseAdapter,
// D3DKMTQueryAdapterInfo, D3DKMTCreateDevice, D3DKMTDestroyDevice.

/// `D3DKMTEnumAdapters2`: with `pAdapters` NULL, reports how many adapters there are; otherwise
/// fills up to `NumAdapters` entries with newly opened adapter handles (close each with
/// `D3DKMTCloseAdapter`). `STATUS_BUFFER_TOO_SMALL` (and the count needed) when the array is short.
@c @implementation
public func D3DKMTEnumAdapters2(_ pData: UnsafePointer<D3DKMT_ENUMADAPTERS2>?) -> NTSTATUS {
    ntCall(arguments: pData?.pointee) { () throws(NTError) in
        let data = try required(pData)
        let adapters = Adapter.enumerate()
        guard let entries = data.pointee.pAdapters else {
            data.pointee.NumAdapters = ULONG(adapters.count)
            return
        }
        guard Int(data.pointee.NumAdapters) >= adapters.count else {
            data.pointee.NumAdapters = ULONG(adapters.count)
            throw NTError(.bufferTooSmall, "\(adapters.count) adapters do not fit")
        }
        var opened: [D3DKMT_HANDLE] = []
        for adapter in adapters {
            do throws(NTError) {
                opened.append(try register(.adapter(adapter)))
            } catch {
                handleTable.withLock { table in for handle in opened { table.remove(handle) } }
                throw error
            }
        }
        for (index, adapter) in adapters.enumerated() {
            var entry = D3DKMT_ADAPTERINFO()
            entry.hAdapter = opened[index]
            entry.AdapterLuid = LUID(LowPart: adapter.info.luid.lowPart, HighPart: adapter.info.luid.highPart)
            entries[index] = entry
        }
        data.pointee.NumAdapters = ULONG(adapters.count)
    }
}

/// `D3DKMTOpenAdapterFromLuid`: `STATUS_INVALID_PARAMETER` when no adapter has the LUID.
@c @implementation
public func D3DKMTOpenAdapterFromLuid(_ pData: UnsafePointer<D3DKMT_OPENADAPTERFROMLUID>?) -> NTSTATUS {
    ntCall(arguments: pData?.pointee) { () throws(NTError) in
        let data = try required(pData)
        let luid = data.pointee.AdapterLuid
        let adapter = try Adapter.open(luid: D3DKMT.LUID(lowPart: luid.LowPart, highPart: luid.HighPart))
        data.pointee.hAdapter = try register(.adapter(adapter))
    }
}

/// `D3DKMTCloseAdapter`.
@c @implementation
public func D3DKMTCloseAdapter(_ pData: UnsafePointer<D3DKMT_CLOSEADAPTER>?) -> NTSTATUS {
    ntCall(arguments: pData?.pointee) { () throws(NTError) in
        let handle = try required(pData).pointee.hAdapter
        let closed = handleTable.withLock { table -> Bool in
            guard table.adapter(handle) != nil else { return false }
            table.remove(handle)
            return true
        }
        guard closed else { throw invalid("hAdapter is not an open adapter") }
    }
}

/// `D3DKMTQueryAdapterInfo` for `KMTQAITYPE_ADAPTERADDRESS` (PCI adapters only),
/// `KMTQAITYPE_ADAPTERTYPE`, `KMTQAITYPE_DRIVERVERSION`, `KMTQAITYPE_DRIVER_DESCRIPTION`,
/// `KMTQAITYPE_PHYSICALADAPTERDEVICEIDS` and the Linux `KMTQAITYPE_LINUX_DRM_INFO`. Other types
/// return `STATUS_NOT_SUPPORTED`; a buffer of the wrong size `STATUS_INVALID_PARAMETER`.
@c @implementation
public func D3DKMTQueryAdapterInfo(_ pData: UnsafePointer<D3DKMT_QUERYADAPTERINFO>?) -> NTSTATUS {
    ntCall(arguments: pData?.pointee) { () throws(NTError) in
        let data = try required(pData).pointee
        guard let info = handleTable.withLock({ $0.adapter(data.hAdapter) })?.info else {
            throw invalid("hAdapter is not an open adapter")
        }
        func output<T>(_ type: T.Type) throws(NTError) -> UnsafeMutablePointer<T> {
            guard let buffer = data.pPrivateDriverData, Int(data.PrivateDriverDataSize) == MemoryLayout<T>.size else {
                throw invalid("pPrivateDriverData must be \(MemoryLayout<T>.size) bytes for this query")
            }
            return buffer.assumingMemoryBound(to: T.self)
        }
        switch data.Type {
        case KMTQAITYPE_ADAPTERADDRESS:
            let out = try output(D3DKMT_ADAPTERADDRESS.self)
            guard let pci = info.pciLocation else {
                throw NTError(.notSupported, "\(info.busInfo) is not a PCI device")
            }
            out.pointee = D3DKMT_ADAPTERADDRESS(BusNumber: pci.bus, DeviceNumber: pci.device,
                                                FunctionNumber: pci.function)
        case KMTQAITYPE_ADAPTERTYPE:
            let out = try output(D3DKMT_ADAPTERTYPE.self)
            var type = D3DKMT_ADAPTERTYPE()
            type.RenderSupported = 1
            type.SoftwareDevice = info.isSoftware ? 1 : 0
            type.Paravirtualized = info.driverName == "virtio_gpu" ? 1 : 0
            out.pointee = type
        case KMTQAITYPE_DRIVERVERSION:
            try output(UInt32.self).pointee = UInt32(KMT_DRIVERVERSION_WDDM_2_0.rawValue)
        case KMTQAITYPE_DRIVER_DESCRIPTION:
            let out = try output(D3DKMT_DRIVER_DESCRIPTION.self)
            let text = Array("\(info.driverName) (\(info.busInfo))".utf16.prefix(4095)) + [0]
            withUnsafeMutableBytes(of: &out.pointee.DriverDescription) { raw in
                raw.initializeMemory(as: UInt8.self, repeating: 0)
                text.withUnsafeBytes { raw.copyMemory(from: $0) }
            }
        case KMTQAITYPE_PHYSICALADAPTERDEVICEIDS:
            let out = try output(D3DKMT_QUERY_DEVICE_IDS.self)
            guard out.pointee.PhysicalAdapterIndex == 0 else {
                throw invalid("adapters have one physical adapter, index 0")
            }
            out.pointee.DeviceIds = D3DKMT_DEVICE_IDS(VendorID: info.vendorID, DeviceID: info.deviceID, SubVendorID: 0,
                                                      SubSystemID: 0, RevisionID: 0, BusType: 0)
        case KMTQAITYPE_LINUX_DRM_INFO:
            let out = try output(D3DKMT_LINUX_ADAPTER_INFO.self)
            var linux = D3DKMT_LINUX_ADAPTER_INFO()
            linux.Version = UInt32(D3DKMT_LINUX_ADAPTER_INFO_VERSION)
            var flags: UInt32 = 0
            if info.capabilities.contains(.software) { flags |= UInt32(D3DKMT_LINUX_ADAPTER_SOFTWARE) }
            if info.capabilities.contains(.prime) { flags |= UInt32(D3DKMT_LINUX_ADAPTER_PRIME) }
            if info.capabilities.contains(.syncObject) { flags |= UInt32(D3DKMT_LINUX_ADAPTER_SYNCOBJ) }
            if info.capabilities.contains(.timelineSyncObject) {
                flags |= UInt32(D3DKMT_LINUX_ADAPTER_SYNCOBJ_TIMELINE)
            }
            if info.capabilities.contains(.syncObjectEventfd) {
                flags |= UInt32(D3DKMT_LINUX_ADAPTER_SYNCOBJ_EVENTFD)
            }
            if info.capabilities.contains(.virgl3D) { flags |= UInt32(D3DKMT_LINUX_ADAPTER_VIRGL_3D) }
            linux.Flags = flags
            copyString(info.driverName, into: &linux.DriverName)
            copyString(info.renderNode ?? "", into: &linux.RenderNode)
            copyString(info.primaryNode ?? "", into: &linux.PrimaryNode)
            copyString(info.busInfo, into: &linux.BusInfo)
            linux.VendorId = info.vendorID
            linux.DeviceId = info.deviceID
            out.pointee = linux
        default:
            throw NTError(.notSupported, "query type \(data.Type.rawValue) is not supported")
        }
    }
}

/// `D3DKMTCreateDevice`: opens a device (on a DRM adapter, its own render-node descriptor).
@c @implementation
public func D3DKMTCreateDevice(_ pData: UnsafeMutablePointer<D3DKMT_CREATEDEVICE>?) -> NTSTATUS {
    ntCall(arguments: pData?.pointee) { () throws(NTError) in
        let data = try required(pData)
        let adapterHandle = data.pointee.hAdapter
        guard let adapter = handleTable.withLock({ $0.adapter(adapterHandle) }) else {
            throw invalid("hAdapter is not an open adapter")
        }
        let device = try adapter.makeDevice()
        data.pointee.hDevice = try register(.device(device, adapter: adapterHandle))
        data.pointee.pCommandBuffer = nil
        data.pointee.CommandBufferSize = 0
        data.pointee.pAllocationList = nil
        data.pointee.AllocationListSize = 0
        data.pointee.pPatchLocationList = nil
        data.pointee.PatchLocationListSize = 0
    }
}

/// `D3DKMTDestroyDevice`: also destroys every allocation and resource made or opened on it.
@c @implementation
public func D3DKMTDestroyDevice(_ pData: UnsafePointer<D3DKMT_DESTROYDEVICE>?) -> NTSTATUS {
    ntCall(arguments: pData?.pointee) { () throws(NTError) in
        let handle = try required(pData).pointee.hDevice
        // Objects are released after the lock is dropped: closing descriptors takes syscalls.
        let released: [LocalObject]? = handleTable.withLock { table in
            guard table.device(handle) != nil else { return nil }
            var objects = table.handles(ofDevice: handle).compactMap { table.remove($0) }
            if let device = table.remove(handle) { objects.append(device) }
            return objects
        }
        guard released != nil else { throw invalid("hDevice is not an open device") }
    }
}
