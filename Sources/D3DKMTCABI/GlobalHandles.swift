import D3DKMT
import CD3DKMT

// Global (KMT) share handles: D3DKMTQueryResourceInfo, D3DKMTOpenResource, D3DKMTOpenResource2 and
// D3DKMTOpenSynchronizationObject (D3DKMTOpenKeyedMutex(2) are with the keyed mutexes). The values
// come from D3DKMTCreateAllocation(2) with CreateShared alone, D3DKMTCreateKeyedMutex(2) without
// NtSecuritySharing and D3DKMTCreateSynchronizationObject2 with Shared alone; they open in every
// process of the same user while some process holds the object (GlobalShares in the library).

/// `D3DKMTQueryResourceInfo`: the sizes and count opening a global handle takes, as Windows reports
/// them (`PrivateRuntimeDataSize` the runtime data's real size, whatever was passed;
/// `pPrivateRuntimeData` is never written). `STATUS_INVALID_PARAMETER` for an unknown device, a
/// value that is not a global handle, or one no process of this user holds any more.
@c @implementation
public func D3DKMTQueryResourceInfo(_ pData: UnsafeMutablePointer<D3DKMT_QUERYRESOURCEINFO>?) -> NTSTATUS {
    ntCall(arguments: pData?.pointee) { () throws(NTError) in
        let data = try required(pData)
        let deviceHandle = data.pointee.hDevice
        guard let device = handleTable.withLock({ $0.device(deviceHandle) }) else {
            throw invalid("hDevice is not an open device")
        }
        let info = try device.resourceInfo(globalHandle: data.pointee.hGlobalShare)
        data.pointee.PrivateRuntimeDataSize = UInt32(info.runtimeDataSize)
        data.pointee.TotalPrivateDriverDataSize = UInt32(info.totalAllocationDriverDataSize)
        data.pointee.ResourcePrivateDriverDataSize = UInt32(info.resourceDriverDataSize)
        data.pointee.NumAllocations = UInt32(info.allocationCount)
    }
}

/// `D3DKMTOpenResource2`: opens the resource a global handle names on `hDevice`. The checks are
/// `D3DKMTOpenResourceFromNtHandle`'s (`ResourcePrivateDriverDataSize` must be the resource's
/// exactly, as Windows wants), with what clients of global handles pass: a
/// `PrivateRuntimeDataSize` of 0 opens without copying the runtime data (DXVK opens its own
/// resources that way; Wine does the same), any other size must be the runtime data's exactly;
/// `pTotalPrivateDriverDataBuffer` is needed only when the allocations carry driver data
/// (`STATUS_NO_MEMORY` when it is smaller). `hResource`, each `pOpenAllocationInfo2[i].hAllocation`
/// and the sizes are written back. The opened resource keeps the value alive (this process serves
/// it too) until it is destroyed; it cannot be shared by NT handle, as on Windows.
@c @implementation
public func D3DKMTOpenResource2(_ pData: UnsafeMutablePointer<D3DKMT_OPENRESOURCE>?) -> NTSTATUS {
    ntCall(arguments: pData?.pointee) { () throws(NTError) in
        try openGlobalResource(required(pData), firstVersion: false)
    }
}

/// `D3DKMTOpenResource`: `D3DKMTOpenResource2` with `D3DDDI_OPENALLOCATIONINFO` entries: an
/// entry's `pPrivateDriverData`, when not NULL, receives that allocation's driver data and must
/// hold it (`PrivateDriverDataSize`, written back with the real size); `pTotalPrivateDriverDataBuffer`
/// may then be NULL.
@c @implementation
public func D3DKMTOpenResource(_ pData: UnsafeMutablePointer<D3DKMT_OPENRESOURCE>?) -> NTSTATUS {
    ntCall(arguments: pData?.pointee) { () throws(NTError) in
        try openGlobalResource(required(pData), firstVersion: true)
    }
}

/// The body of `D3DKMTOpenResource` and `D3DKMTOpenResource2`.
private func openGlobalResource(_ data: UnsafeMutablePointer<D3DKMT_OPENRESOURCE>,
                                firstVersion: Bool) throws(NTError) {
    let input = data.pointee
    guard let device = handleTable.withLock({ $0.device(input.hDevice) }) else {
        throw invalid("hDevice is not an open device")
    }
    let hasEntries = firstVersion ? input.pOpenAllocationInfo != nil : input.pOpenAllocationInfo2 != nil
    guard input.NumAllocations > 0, hasEntries else {
        throw invalid("NumAllocations is 0 or the open allocation info array is NULL")
    }
    var runtimeData: [UInt8] = []
    let resource = try device.openResource(globalHandle: input.hGlobalShare) { (info) throws(NTError) in
        guard info.allocationCount == Int(input.NumAllocations) else {
            throw invalid("NumAllocations is \(input.NumAllocations); the resource has \(info.allocationCount)")
        }
        guard input.PrivateRuntimeDataSize == 0
              || (Int(input.PrivateRuntimeDataSize) == info.runtimeDataSize && input.pPrivateRuntimeData != nil) else {
            throw invalid("PrivateRuntimeDataSize is \(input.PrivateRuntimeDataSize); "
                          + "the runtime data has \(info.runtimeDataSize) bytes")
        }
        // Windows refuses a ResourcePrivateDriverDataSize that is not the resource's exactly.
        guard Int(input.ResourcePrivateDriverDataSize) == info.resourceDriverDataSize,
              info.resourceDriverDataSize == 0 || input.pResourcePrivateDriverData != nil else {
            throw invalid("ResourcePrivateDriverDataSize is \(input.ResourcePrivateDriverDataSize); "
                          + "the resource's driver data has \(info.resourceDriverDataSize) bytes")
        }
        let total = info.totalAllocationDriverDataSize
        let totalNeeded = total > 0 && (!firstVersion || input.pTotalPrivateDriverDataBuffer != nil)
        guard !totalNeeded || (input.pTotalPrivateDriverDataBuffer != nil
                               && Int(input.TotalPrivateDriverDataBufferSize) >= total) else {
            throw NTError(.noMemory, "pTotalPrivateDriverDataBuffer holds \(input.TotalPrivateDriverDataBufferSize) "
                                     + "bytes; the allocations' driver data takes \(total)")
        }
        runtimeData = info.runtimeData
    }
    if firstVersion {
        // Each entry's own buffer must hold its allocation's driver data.
        for (index, allocation) in resource.allocations.enumerated() {
            let entry = input.pOpenAllocationInfo[index]
            if entry.pPrivateDriverData != nil, Int(entry.PrivateDriverDataSize) < allocation.driverData.count {
                throw invalid("pOpenAllocationInfo[\(index)].pPrivateDriverData holds \(entry.PrivateDriverDataSize) "
                              + "bytes; the allocation's driver data takes \(allocation.driverData.count)")
            }
        }
    }
    if input.PrivateRuntimeDataSize > 0 {
        try copyOut(runtimeData, to: input.pPrivateRuntimeData, capacity: input.PrivateRuntimeDataSize,
                    "pPrivateRuntimeData")
    }
    try copyOut(resource.driverData, to: input.pResourcePrivateDriverData,
                capacity: input.ResourcePrivateDriverDataSize, "pResourcePrivateDriverData")
    let handles = handleTable.withLock { $0.insertResource(resource, device: input.hDevice) }
    guard let (resourceHandle, allocationHandles) = handles else {
        throw NTError(.insufficientResources, "the local handle table is full")
    }
    let packed = packDriverData(resource, into: input.pTotalPrivateDriverDataBuffer) { index, packedData, driverData in
        if firstVersion {
            var entry = input.pOpenAllocationInfo[index]
            entry.hAllocation = allocationHandles[index]
            if let own = entry.pPrivateDriverData, !driverData.isEmpty {
                driverData.withUnsafeBytes {
                    UnsafeMutableRawPointer(mutating: own).copyMemory(from: $0.baseAddress!, byteCount: $0.count)
                }
            }
            entry.PrivateDriverDataSize = UInt32(driverData.count)
            input.pOpenAllocationInfo[index] = entry
        } else {
            var entry = D3DDDI_OPENALLOCATIONINFO2()
            entry.hAllocation = allocationHandles[index]
            entry.pPrivateDriverData = packedData
            entry.PrivateDriverDataSize = UInt32(driverData.count)
            input.pOpenAllocationInfo2[index] = entry
        }
    }
    data.pointee.PrivateRuntimeDataSize = UInt32(runtimeData.count)
    data.pointee.TotalPrivateDriverDataBufferSize = UInt32(packed)
    data.pointee.ResourcePrivateDriverDataSize = UInt32(resource.driverData.count)
    data.pointee.hResource = resourceHandle
}

/// `D3DKMTOpenSynchronizationObject`: a new local handle to the sync object a global handle names
/// (`Info.SharedHandle` of `D3DKMTCreateSynchronizationObject2` with `Shared` alone), on a device of
/// the adapter that made it. `STATUS_INVALID_PARAMETER` for a value that is not a global handle,
/// names another kind of object, or that no process of this user holds any more.
@c @implementation
public func D3DKMTOpenSynchronizationObject(
    _ pData: UnsafeMutablePointer<D3DKMT_OPENSYNCHRONIZATIONOBJECT>?
) -> NTSTATUS {
    ntCall(arguments: pData?.pointee) { () throws(NTError) in
        let data = try required(pData)
        let object = try SyncObject.open(globalHandle: data.pointee.hSharedHandle)
        data.pointee.hSyncObject = try register(.syncObject(object, device: 0))
    }
}
