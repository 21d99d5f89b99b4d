import D3DKMT
import CD3DKMT

// Sync objects: D3DKMTCreateSynchronizationObject(2), D3DKMTOpenSyncObjectFromNtHandle(2),
// D3DKMTDestroySynchronizationObject, D3DKMTSignalSynchronizationObjectFromCpu,
// D3DKMTWaitForSynchronizationObjectFromCpu, and the Linux extensions for syncobj and sync_file
// interop.

/// `D3DKMTCreateSynchronizationObject2`: `D3DDDI_FENCE` (initial value `Info.Fence.FenceValue`),
/// `D3DDDI_MONITORED_FENCE` (initial value `Info.MonitoredFence.InitialFenceValue`; returns
/// `FenceValueCPUVirtualAddress`, and 0 as the GPU address), and `D3DDDI_SYNCHRONIZATION_MUTEX` and
/// `D3DDDI_SEMAPHORE` (objects that exist and can be shared, though only GPU contexts, which this
/// library does not have, signal and wait on them: the CPU calls refuse them). With
/// `Flags.Shared | Flags.NtSecuritySharing` the object can be shared as an NT handle
/// (`Info.SharedHandle` 0); with `Flags.Shared` alone `Info.SharedHandle` is a global handle that
/// `D3DKMTOpenSynchronizationObject` opens in any process of the same user (written only with
/// `Shared`, as on Windows). `STATUS_INVALID_PARAMETER` for an unknown type or `NtSecuritySharing`
/// without `Shared`; `STATUS_INVALID_HANDLE` for a `D3DDDI_CPU_NOTIFICATION` without an event;
/// `STATUS_NOT_SUPPORTED` for the other types and for fences on a DRM device without timeline
/// syncobjs (vgem).
@c @implementation
public func D3DKMTCreateSynchronizationObject2(
    _ pData: UnsafeMutablePointer<D3DKMT_CREATESYNCHRONIZATIONOBJECT2>?
) -> NTSTATUS {
    ntCall(arguments: pData?.pointee) { () throws(NTError) in
        let data = try required(pData)
        let device = try HandleTable.device(data.pointee.hDevice)
        let info = data.pointee.Info
        let kind: SyncObject.Kind
        let initialValue: UInt64
        switch info.Type {
        case D3DDDI_FENCE:
            kind = .fence
            initialValue = info.Fence.FenceValue
        case D3DDDI_MONITORED_FENCE:
            kind = .monitoredFence
            initialValue = info.MonitoredFence.InitialFenceValue
        case D3DDDI_SYNCHRONIZATION_MUTEX:
            kind = .mutex
            initialValue = UInt64(UInt32(bitPattern: info.SynchronizationMutex.InitialState))
        case D3DDDI_SEMAPHORE:
            kind = .semaphore
            initialValue = UInt64(info.Semaphore.InitialCount)
        case D3DDDI_CPU_NOTIFICATION:
            guard info.CPUNotification.Event != nil else {
                throw NTError(.invalidHandle, "CPUNotification.Event is NULL")
            }
            throw NTError(.notSupported, "D3DDDI_CPU_NOTIFICATION objects are signalled by GPU work, "
                                         + "which this library does not run")
        case D3DDDI_PERIODIC_MONITORED_FENCE, D3DDDI_NATIVE_FENCE:
            throw NTError(.notSupported, "sync object type \(info.Type.rawValue) is not implemented")
        default:
            throw invalid("unknown sync object type \(info.Type.rawValue)")
        }
        let object = try device.createSyncObject(kind, initialValue: initialValue, flags: info.Flags.Value)
        data.pointee.hSyncObject = try register(.syncObject(object, device: data.pointee.hDevice))
        if info.Flags.Value & SyncObject.Flags.shared != 0 { data.pointee.Info.SharedHandle = object.globalHandle ?? 0 }
        if kind == .monitoredFence {
            data.pointee.Info.MonitoredFence.FenceValueCPUVirtualAddress =
                UnsafeMutableRawPointer(mutating: object.fenceValueAddress)
            data.pointee.Info.MonitoredFence.FenceValueGPUVirtualAddress = 0
        }
    }
}

/// `D3DKMTCreateSynchronizationObject` (v1): as on Windows, only `D3DDDI_SYNCHRONIZATION_MUTEX` and
/// `D3DDDI_SEMAPHORE` (any other type is `STATUS_INVALID_PARAMETER`), made as
/// `D3DKMTCreateSynchronizationObject2` makes them, not shareable by NT handle.
@c @implementation
public func D3DKMTCreateSynchronizationObject(
    _ pData: UnsafeMutablePointer<D3DKMT_CREATESYNCHRONIZATIONOBJECT>?
) -> NTSTATUS {
    ntCall(arguments: pData?.pointee) { () throws(NTError) in
        let data = try required(pData)
        let device = try HandleTable.device(data.pointee.hDevice)
        let info = data.pointee.Info
        let object: SyncObject
        switch info.Type {
        case D3DDDI_SYNCHRONIZATION_MUTEX:
            object = try device.createSyncObject(
                .mutex, initialValue: UInt64(UInt32(bitPattern: info.SynchronizationMutex.InitialState)), flags: 0)
        case D3DDDI_SEMAPHORE:
            object = try device.createSyncObject(.semaphore, initialValue: UInt64(info.Semaphore.InitialCount),
                                                 flags: 0)
        default:
            throw invalid("D3DKMTCreateSynchronizationObject takes D3DDDI_SYNCHRONIZATION_MUTEX or D3DDDI_SEMAPHORE, "
                          + "not type \(info.Type.rawValue)")
        }
        data.pointee.hSyncObject = try register(.syncObject(object, device: data.pointee.hDevice))
    }
}

/// `D3DKMTOpenSyncObjectFromNtHandle`: opens the sync object of a shared NT handle on a device of
/// the adapter that shared it (the call names no device). `STATUS_INVALID_PARAMETER` when that
/// adapter is not on this machine.
@c @implementation
public func D3DKMTOpenSyncObjectFromNtHandle(
    _ pData: UnsafeMutablePointer<D3DKMT_OPENSYNCOBJECTFROMNTHANDLE>?
) -> NTSTATUS {
    ntCall(arguments: pData?.pointee) { () throws(NTError) in
        let data = try required(pData)
        let object = try SharedHandle.withBorrowed(descriptor(of: data.pointee.hNtHandle)) { (handle) throws(NTError) in
            try SyncObject.open(handle)
        }
        data.pointee.hSyncObject = try register(.syncObject(object, device: 0))
    }
}

/// `D3DKMTOpenSyncObjectFromNtHandle2`: opens the sync object of a shared NT handle on `hDevice`
/// (`Flags` comes back 0); for a monitored fence, returns `MonitoredFence.FenceValueCPUVirtualAddress`
/// (GPU address 0).
/// `STATUS_NOT_SUPPORTED` when the device cannot take the object (a DRM syncobj on the software
/// adapter or vgem).
@c @implementation
public func D3DKMTOpenSyncObjectFromNtHandle2(
    _ pData: UnsafeMutablePointer<D3DKMT_OPENSYNCOBJECTFROMNTHANDLE2>?
) -> NTSTATUS {
    ntCall(arguments: pData?.pointee) { () throws(NTError) in
        let data = try required(pData)
        let device = try HandleTable.device(data.pointee.hDevice)
        let object = try SharedHandle.withBorrowed(descriptor(of: data.pointee.hNtHandle)) { (handle) throws(NTError) in
            try device.openSyncObject(handle)
        }
        data.pointee.hSyncObject = try register(.syncObject(object, device: data.pointee.hDevice))
        data.pointee.Flags.Value = 0  // as on Windows: an open reports no creation flags
        data.pointee.MonitoredFence.FenceValueCPUVirtualAddress =
            UnsafeMutableRawPointer(mutating: object.fenceValueAddress)
        data.pointee.MonitoredFence.FenceValueGPUVirtualAddress = 0
    }
}

/// `D3DKMTDestroySynchronizationObject`. Async waits pending on the object are cancelled (their
/// events stay unsignalled) once its last reference goes.
@c @implementation
public func D3DKMTDestroySynchronizationObject(
    _ pData: UnsafePointer<D3DKMT_DESTROYSYNCHRONIZATIONOBJECT>?
) -> NTSTATUS {
    ntCall(arguments: pData?.pointee) { () throws(NTError) in
        let handle = try required(pData).pointee.hSyncObject
        let removed: LocalObject? = handleTable.withLock { table in
            guard case .syncObject? = table.lookup(handle) else { return nil }
            return table.remove(handle)
        }
        guard removed != nil else { throw invalid("hSyncObject is not a sync object") }
    }
}

/// The sync objects and values of a signal or wait: 1 to 32 objects of `device`, in order.
private func objects(_ count: UINT, _ handles: UnsafePointer<D3DKMT_HANDLE>?, _ values: UnsafePointer<UINT64>?,
                     device: D3DKMT_HANDLE) throws(NTError) -> [(object: SyncObject, value: UInt64)] {
    guard (1...UInt32(D3DDDI_MAX_OBJECT_WAITED_ON)).contains(count) else {
        throw invalid("ObjectCount \(count) is not 1...32")
    }
    guard let handles, let values else { throw invalid("ObjectHandleArray or FenceValueArray is NULL") }
    _ = try HandleTable.device(device)
    var list: [(object: SyncObject, value: UInt64)] = []
    for index in 0..<Int(count) {
        list.append((try HandleTable.syncObject(handles[index], onDevice: device), values[index]))
    }
    return list
}

/// `D3DKMTSignalSynchronizationObjectFromCpu`: each object reaches its value.
/// `STATUS_INVALID_PARAMETER` for a value below an object's current one; `AllowFenceRewind` is
/// `STATUS_NOT_SUPPORTED` (fences here never go back).
@c @implementation
public func D3DKMTSignalSynchronizationObjectFromCpu(
    _ pData: UnsafePointer<D3DKMT_SIGNALSYNCHRONIZATIONOBJECTFROMCPU>?
) -> NTSTATUS {
    ntCall(arguments: pData?.pointee) { () throws(NTError) in
        let data = try required(pData).pointee
        guard data.Flags.AllowFenceRewind == 0 else {
            throw NTError(.notSupported, "AllowFenceRewind: fences never go back here")
        }
        if data.ObjectCount == 1, let handles = data.ObjectHandleArray, let values = data.FenceValueArray {
            _ = try HandleTable.device(data.hDevice)
            return try HandleTable.syncObject(handles[0], onDevice: data.hDevice).signal(values[0])
        }
        for (object, value) in try objects(data.ObjectCount, data.ObjectHandleArray, data.FenceValueArray,
                                           device: data.hDevice) {
            try object.signal(value)
        }
    }
}

/// `D3DKMTWaitForSynchronizationObjectFromCpu`: with `hAsyncEvent` NULL, blocks until every
/// object (or, with `Flags.WaitAny`, one) reaches its value. With `hAsyncEvent` holding an eventfd
/// (`(HANDLE)(intptr_t)efd`) it returns at once and the eventfd becomes readable when the wait is
/// satisfied; the caller keeps and closes the eventfd.
@c @implementation
public func D3DKMTWaitForSynchronizationObjectFromCpu(
    _ pData: UnsafePointer<D3DKMT_WAITFORSYNCHRONIZATIONOBJECTFROMCPU>?
) -> NTSTATUS {
    ntCall(arguments: pData?.pointee) { () throws(NTError) in
        let data = try required(pData).pointee
        guard data.Flags.Value & ~1 == 0 else { throw invalid("unknown Flags bits") }
        if data.hAsyncEvent == nil, data.ObjectCount == 1, let handles = data.ObjectHandleArray,
           let values = data.FenceValueArray {
            // One object, the common wait (DXVK, vkd3d-proton): no list to build.
            _ = try HandleTable.device(data.hDevice)
            return try HandleTable.syncObject(handles[0], onDevice: data.hDevice).wait(for: values[0])
        }
        let list = try objects(data.ObjectCount, data.ObjectHandleArray, data.FenceValueArray, device: data.hDevice)
        let all = data.Flags.WaitAny == 0
        if let event = data.hAsyncEvent {
            let fd = descriptor(of: event)
            guard fd >= 0 else { throw NTError(.invalidHandle, "hAsyncEvent is not a descriptor") }
            try SyncObject.notify(eventfd: fd, when: list, all: all)
        } else {
            try SyncObject.wait(for: list, all: all)
        }
    }
}

/// `D3DKMTLinuxExportSyncObjectFd`: a new DRM syncobj descriptor for the sync object.
@c @implementation
public func D3DKMTLinuxExportSyncObjectFd(_ hSyncObject: D3DKMT_HANDLE,
                                          _ pFd: UnsafeMutablePointer<Int32>?) -> NTSTATUS {
    ntCall(arguments: (hSyncObject, pFd)) { () throws(NTError) in
        let out = try required(pFd, "pFd")
        out.pointee = try HandleTable.syncObject(hSyncObject).exportSyncobj().take()
    }
}

/// `D3DKMTLinuxExportSyncFile`: a sync_file for one fence value of the sync object.
@c @implementation
public func D3DKMTLinuxExportSyncFile(_ hSyncObject: D3DKMT_HANDLE, _ FenceValue: UINT64,
                                      _ pFd: UnsafeMutablePointer<Int32>?) -> NTSTATUS {
    ntCall(arguments: (hSyncObject, FenceValue, pFd)) { () throws(NTError) in
        let out = try required(pFd, "pFd")
        out.pointee = try HandleTable.syncObject(hSyncObject).exportSyncFile(value: FenceValue).take()
    }
}

/// `D3DKMTLinuxSignalSyncObjectFromSyncFile`: the sync object reaches `FenceValue` when the
/// sync_file's fence signals (GPU work done); returns at once.
@c @implementation
public func D3DKMTLinuxSignalSyncObjectFromSyncFile(_ hSyncObject: D3DKMT_HANDLE, _ FenceValue: UINT64,
                                                    _ SyncFileFd: Int32) -> NTSTATUS {
    ntCall(arguments: (hSyncObject, FenceValue, SyncFileFd)) { () throws(NTError) in
        try HandleTable.syncObject(hSyncObject).signal(FenceValue, whenSignalled: SyncFileFd)
    }
}

/// `D3DKMTLinuxImportSyncObjectFd`: a `D3DDDI_FENCE` on `hDevice` from a timeline syncobj
/// descriptor or a sync_file.
@c @implementation
public func D3DKMTLinuxImportSyncObjectFd(_ hDevice: D3DKMT_HANDLE, _ Fd: Int32, _ Kind: UINT,
                                          _ phSyncObject: UnsafeMutablePointer<D3DKMT_HANDLE>?) -> NTSTATUS {
    ntCall(arguments: (hDevice, Fd, Kind, phSyncObject)) { () throws(NTError) in
        let out = try required(phSyncObject, "phSyncObject")
        let device = try HandleTable.device(hDevice)
        guard Fd >= 0 else { throw NTError(.invalidHandle, "Fd \(Fd) is not a descriptor") }
        let object: SyncObject
        switch Kind {
        case D3DKMT_LINUX_IMPORT_SYNCOBJ: object = try device.importSyncObject(syncobj: Fd)
        case D3DKMT_LINUX_IMPORT_SYNC_FILE: object = try device.importSyncObject(syncFile: Fd)
        default: throw invalid("Kind \(Kind) is not D3DKMT_LINUX_IMPORT_SYNCOBJ or D3DKMT_LINUX_IMPORT_SYNC_FILE")
        }
        out.pointee = try register(.syncObject(object, device: hDevice))
    }
}
