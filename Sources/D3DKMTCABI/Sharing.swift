import D3DKMT
import CD3DKMT
#if canImport(Glibc)
import Glibc
#endif

// Sharing: D3DKMTShareObjects, D3DKMTQueryResourceInfoFromNtHandle, D3DKMTOpenResourceFromNtHandle.

/// `D3DKMTShareObjects`: shares objects as a new NT handle, a close-on-exec file descriptor
/// stored as `(HANDLE)(intptr_t)fd` and closed with `close()`.
///
/// As on Windows: `cObjects` 1 shares a resource or a sync object alone; 3 shares a resource with
/// its keyed mutex and sync object, in that order. Anything else, or an object created without
/// `NtSecuritySharing` (objects opened from an NT handle can be shared again), is
/// `STATUS_INVALID_PARAMETER`. Generic rights in `dwDesiredAccess` are mapped to the object's
/// specific rights as Windows' generic mapping does. `pObjectAttributes` may be NULL; when not,
/// its `Length` must be `sizeof(OBJECT_ATTRIBUTES)`, and a name in its `ObjectName` (UTF-16) is
/// published in the caller's per-user namespace while the returned handle or a copy of it is open
/// (`STATUS_OBJECT_NAME_COLLISION` when taken, `STATUS_OBJECT_NAME_INVALID` when empty, longer
/// than 256 characters, or not valid UTF-16). `SecurityDescriptor` is not used: names are the
/// user's own.
@c @implementation
public func D3DKMTShareObjects(_ cObjects: UINT, _ hObjects: UnsafePointer<D3DKMT_HANDLE>?,
                               _ pObjectAttributes: UnsafeMutablePointer<OBJECT_ATTRIBUTES>?,
                               _ dwDesiredAccess: DWORD,
                               _ phSharedNtHandle: UnsafeMutablePointer<HANDLE?>?) -> NTSTATUS {
    ntCall(arguments: (cObjects, hObjects, pObjectAttributes, dwDesiredAccess, phSharedNtHandle)) {
        () throws(NTError) in
        let out = try required(phSharedNtHandle, "phSharedNtHandle")
        guard cObjects == 1 || cObjects == 3 else { throw invalid("cObjects must be 1 or 3, not \(cObjects)") }
        guard let hObjects else { throw invalid("hObjects is NULL") }
        let name = try objectName(pObjectAttributes)
        let objects = (0..<Int(cObjects)).map { hObjects[$0] }
        let found = handleTable.withLock { table in objects.map { table.lookup($0) } }
        var handle: SharedHandle
        switch (found[0], cObjects) {
        case (.resource(let resource, _, _)?, 1):
            handle = try resource.share(access: SharedAccess.mapped(dwDesiredAccess), name: name)
        case (.syncObject(let object, _)?, 1):
            handle = try object.share(access: SyncObjectAccess.mapped(dwDesiredAccess), name: name)
        case (.resource(let resource, _, _)?, 3):
            guard case .keyedMutex(let mutex)? = found[1] else { throw invalid("hObjects[1] is not a keyed mutex") }
            guard case .syncObject(let object, _)? = found[2] else { throw invalid("hObjects[2] is not a sync object") }
            handle = try resource.share(access: SharedAccess.mapped(dwDesiredAccess), keyedMutex: mutex,
                                        syncObject: object, name: name)
        default:
            throw invalid(cObjects == 1 ? "hObjects[0] is not a resource or a sync object"
                                        : "hObjects[0] is not a resource")
        }
        out.pointee = try ntHandle(handle)
    }
}

/// Packs each allocation's driver data, back to back, into `total` (an opener's
/// `pTotalPrivateDriverDataBuffer`, sized by the caller's checks; NULL: nothing is copied), and
/// calls `entry` with each allocation's index, where its data went (nil when it has none or there
/// is no buffer) and the data; returns the bytes packed.
func packDriverData(_ resource: Resource, into total: UnsafeMutableRawPointer?,
                    _ entry: (Int, UnsafeRawPointer?, [UInt8]) -> Void) -> Int {
    var offset = 0
    for (index, allocation) in resource.allocations.enumerated() {
        let driverData = allocation.driverData
        var placed: UnsafeRawPointer?
        if let total, !driverData.isEmpty {
            driverData.withUnsafeBytes { (total + offset).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            placed = UnsafeRawPointer(total + offset)
            offset += driverData.count
        }
        entry(index, placed, driverData)
    }
    return offset
}

/// A shared handle as a `HANDLE`: its descriptor, which is never 0 (that would read as NULL).
func ntHandle(_ handle: consuming SharedHandle) throws(NTError) -> HANDLE? {
    if handle.rawValue == 0 {
        let moved = try handle.duplicate()
        handle = moved
    }
    return HANDLE(bitPattern: Int(handle.take()))
}

/// The name in `OBJECT_ATTRIBUTES.ObjectName`, or nil when there is none.
///
/// - Throws: `STATUS_OBJECT_NAME_INVALID` for an odd byte length, a NULL buffer or invalid UTF-16.
func objectName(_ attributes: UnsafeMutablePointer<OBJECT_ATTRIBUTES>?) throws(NTError) -> String? {
    guard let attributes else { return nil }
    guard Int(attributes.pointee.Length) == MemoryLayout<OBJECT_ATTRIBUTES>.size else {
        throw invalid("OBJECT_ATTRIBUTES.Length is \(attributes.pointee.Length), "
                      + "not \(MemoryLayout<OBJECT_ATTRIBUTES>.size)")
    }
    guard let name = attributes.pointee.ObjectName?.pointee else { return nil }
    guard name.Length % 2 == 0, name.Length > 0, let buffer = name.Buffer else {
        throw NTError(.objectNameInvalid, "ObjectName has \(name.Length) bytes or no buffer")
    }
    let units = UnsafeBufferPointer(start: buffer, count: Int(name.Length) / 2)
    guard let text = String(validating: units, as: UTF16.self) else {
        throw NTError(.objectNameInvalid, "ObjectName is not valid UTF-16")
    }
    return text
}

/// The name an open-by-name call must carry.
func requiredName(_ attributes: UnsafeMutablePointer<OBJECT_ATTRIBUTES>?) throws(NTError) -> String {
    guard attributes != nil else { throw invalid("pObjAttrib is NULL") }
    guard let name = try objectName(attributes) else {
        throw NTError(.objectNameInvalid, "pObjAttrib has no ObjectName")
    }
    return name
}

/// `D3DKMTOpenNtHandleFromName`: a new handle to the resource published under the name in
/// `pObjAttrib` in the caller's namespace (names compare without case, whatever `Attributes`
/// says; `\Sessions\<n>\BaseNamedObjects\`, `Local\` and `Global\` are understood), granting
/// `dwDesiredAccess` with generic rights mapped. As on Windows the check is the object's (the
/// same user may ask for any access), not the sharer's `dwDesiredAccess`; access 0 is
/// `STATUS_ACCESS_DENIED`. `STATUS_OBJECT_NAME_NOT_FOUND` when no live share has the name (at
/// once after its last handle closed); `STATUS_OBJECT_TYPE_MISMATCH` when it names a sync
/// object; `STATUS_OBJECT_PATH_NOT_FOUND` for an object directory that does not exist here.
@c @implementation
public func D3DKMTOpenNtHandleFromName(_ pData: UnsafeMutablePointer<D3DKMT_OPENNTHANDLEFROMNAME>?) -> NTSTATUS {
    ntCall(arguments: pData?.pointee) { () throws(NTError) in
        let data = try required(pData)
        data.pointee.hNtHandle = nil
        data.pointee.hNtHandle = try ntHandle(SharedHandle.open(name: requiredName(data.pointee.pObjAttrib),
                                                                access: data.pointee.dwDesiredAccess))
    }
}

/// `D3DKMTOpenSyncObjectNtHandleFromName`: as `D3DKMTOpenNtHandleFromName`, for a sync object
/// shared alone.
@c @implementation
public func D3DKMTOpenSyncObjectNtHandleFromName(
    _ pData: UnsafeMutablePointer<D3DKMT_OPENSYNCOBJECTNTHANDLEFROMNAME>?
) -> NTSTATUS {
    ntCall(arguments: pData?.pointee) { () throws(NTError) in
        let data = try required(pData)
        data.pointee.hNtHandle = nil
        data.pointee.hNtHandle = try ntHandle(SharedHandle.openSyncObject(name: requiredName(data.pointee.pObjAttrib),
                                                                          access: data.pointee.dwDesiredAccess))
    }
}

/// `D3DKMTQueryResourceInfoFromNtHandle`: the sizes and count an opener must provide, as Windows
/// reports them: `PrivateRuntimeDataSize`, `TotalPrivateDriverDataSize` (the runtime's
/// per-allocation driver data, not the library's allocation layout), `ResourcePrivateDriverDataSize`
/// and `NumAllocations`. Nothing is written to `pPrivateRuntimeData`, whatever its size.
@c @implementation
public func D3DKMTQueryResourceInfoFromNtHandle(
    _ pData: UnsafeMutablePointer<D3DKMT_QUERYRESOURCEINFOFROMNTHANDLE>?
) -> NTSTATUS {
    ntCall(arguments: pData?.pointee) { () throws(NTError) in
        let data = try required(pData)
        let deviceHandle = data.pointee.hDevice
        guard let device = handleTable.withLock({ $0.device(deviceHandle) }) else {
            throw invalid("hDevice is not an open device")
        }
        let info = try SharedHandle.withBorrowed(descriptor(of: data.pointee.hNtHandle)) { (handle) throws(NTError) in
            try device.resourceInfo(handle)
        }
        data.pointee.PrivateRuntimeDataSize = UInt32(info.runtimeDataSize)
        data.pointee.TotalPrivateDriverDataSize = UInt32(info.totalAllocationDriverDataSize)
        data.pointee.ResourcePrivateDriverDataSize = UInt32(info.resourceDriverDataSize)
        data.pointee.NumAllocations = UInt32(info.allocationCount)
    }
}

/// `D3DKMTOpenResourceFromNtHandle`: opens a shared resource on `hDevice`, with Windows' checks:
/// `NumAllocations` must equal the resource's allocation count and `PrivateRuntimeDataSize` its
/// runtime data size exactly (larger and smaller are both `STATUS_INVALID_PARAMETER`);
/// `pTotalPrivateDriverDataBuffer` must hold every allocation's driver data
/// (`STATUS_NO_MEMORY` when `TotalPrivateDriverDataBufferSize` is smaller; 0 is fine when the
/// creator gave none, as DXVK, vkd3d-proton and Wine pass), `pResourcePrivateDriverData` the
/// resource's (`STATUS_INVALID_PARAMETER`). Nothing is opened when a check fails.
/// Each `pOpenAllocationInfo2[i]` gets a new allocation handle and points into
/// `pTotalPrivateDriverDataBuffer` at that allocation's driver data; each allocation's size and
/// layout come from `D3DKMTLinuxQueryAllocationDesc`. `STATUS_NOT_SUPPORTED` when this device
/// cannot import the buffers (another driver's dma-buf, or system memory on a DRM device). When
/// the handle holds a keyed mutex and sync object they are opened too: `hKeyedMutex` and
/// `hSyncObject` receive their handles, and `pKeyedMutexPrivateRuntimeData` (when not NULL) the
/// keyed mutex's private data; else both handles are 0.
@c @implementation
public func D3DKMTOpenResourceFromNtHandle(
    _ pData: UnsafeMutablePointer<D3DKMT_OPENRESOURCEFROMNTHANDLE>?
) -> NTSTATUS {
    ntCall(arguments: pData?.pointee) { () throws(NTError) in
        let data = try required(pData)
        let input = data.pointee
        guard let device = handleTable.withLock({ $0.device(input.hDevice) }) else {
            throw invalid("hDevice is not an open device")
        }
        guard input.NumAllocations > 0, let infos = input.pOpenAllocationInfo2 else {
            throw invalid("NumAllocations is 0 or pOpenAllocationInfo2 is NULL")
        }
        // Windows wants both buffers even when nothing goes in them (clients pass a dummy).
        guard input.pPrivateRuntimeData != nil, input.pTotalPrivateDriverDataBuffer != nil else {
            throw invalid("pPrivateRuntimeData and pTotalPrivateDriverDataBuffer must not be NULL")
        }
        var runtimeData: [UInt8] = []
        let resource = try SharedHandle.withBorrowed(descriptor(of: input.hNtHandle)) { (handle) throws(NTError) in
            try device.openResource(handle) { (info) throws(NTError) in
                guard info.allocationCount == Int(input.NumAllocations) else {
                    throw invalid("NumAllocations is \(input.NumAllocations); the resource has \(info.allocationCount)")
                }
                guard Int(input.PrivateRuntimeDataSize) == info.runtimeDataSize,
                      info.runtimeDataSize == 0 || input.pPrivateRuntimeData != nil else {
                    throw invalid("PrivateRuntimeDataSize is \(input.PrivateRuntimeDataSize); "
                                  + "the runtime data has \(info.runtimeDataSize) bytes")
                }
                guard info.resourceDriverDataSize == 0 || (input.pResourcePrivateDriverData != nil
                      && Int(input.ResourcePrivateDriverDataSize) >= info.resourceDriverDataSize) else {
                    throw invalid("pResourcePrivateDriverData holds \(input.ResourcePrivateDriverDataSize) bytes; "
                                  + "\(info.resourceDriverDataSize) are needed")
                }
                guard info.totalAllocationDriverDataSize == 0 || (input.pTotalPrivateDriverDataBuffer != nil
                      && Int(input.TotalPrivateDriverDataBufferSize) >= info.totalAllocationDriverDataSize) else {
                    throw NTError(.noMemory, "pTotalPrivateDriverDataBuffer holds "
                                  + "\(input.TotalPrivateDriverDataBufferSize) bytes; "
                                  + "the allocations' driver data takes \(info.totalAllocationDriverDataSize)")
                }
                if input.pKeyedMutexPrivateRuntimeData != nil,
                   Int(input.KeyedMutexPrivateRuntimeDataSize) < info.keyedMutexRuntimeDataSize {
                    throw invalid("pKeyedMutexPrivateRuntimeData holds "
                                  + "\(input.KeyedMutexPrivateRuntimeDataSize) bytes; "
                                  + "\(info.keyedMutexRuntimeDataSize) are needed")
                }
                runtimeData = info.runtimeData
            }
        }
        // Sizes were checked above; nothing below can fail but the handle table.
        try copyOut(runtimeData, to: input.pPrivateRuntimeData, capacity: input.PrivateRuntimeDataSize,
                    "pPrivateRuntimeData")
        try copyOut(resource.driverData, to: input.pResourcePrivateDriverData,
                    capacity: input.ResourcePrivateDriverDataSize, "pResourcePrivateDriverData")
        if let mutex = resource.keyedMutex, input.pKeyedMutexPrivateRuntimeData != nil {
            try copyOut(mutex.runtimeData, to: input.pKeyedMutexPrivateRuntimeData,
                        capacity: input.KeyedMutexPrivateRuntimeDataSize, "pKeyedMutexPrivateRuntimeData")
        }
        let handles = handleTable.withLock { (table) -> (UInt32, [UInt32], UInt32, UInt32)? in
            guard let (resourceHandle, allocationHandles) = table.insertResource(resource, device: input.hDevice) else {
                return nil
            }
            var mutexHandle: UInt32 = 0, syncHandle: UInt32 = 0
            if let mutex = resource.keyedMutex, let object = resource.syncObject {
                let made = table.insert(.keyedMutex(mutex)),
                    madeSync = table.insert(.syncObject(object, device: input.hDevice))
                guard let made, let madeSync else {
                    // All or nothing.
                    for handle in [made, madeSync].compactMap({ $0 }) + allocationHandles + [resourceHandle] {
                        table.remove(handle)
                    }
                    return nil
                }
                (mutexHandle, syncHandle) = (made, madeSync)
            }
            return (resourceHandle, allocationHandles, mutexHandle, syncHandle)
        }
        guard let (resourceHandle, allocationHandles, keyedMutexHandle, syncObjectHandle) = handles else {
            throw NTError(.insufficientResources, "the local handle table is full")
        }

        let packed = packDriverData(resource, into: input.pTotalPrivateDriverDataBuffer) { index, placed, driverData in
            var entry = D3DDDI_OPENALLOCATIONINFO2()
            entry.hAllocation = allocationHandles[index]
            entry.pPrivateDriverData = placed
            entry.PrivateDriverDataSize = UInt32(driverData.count)
            infos[index] = entry
        }
        data.pointee.TotalPrivateDriverDataBufferSize = UInt32(packed)
        data.pointee.ResourcePrivateDriverDataSize = UInt32(resource.driverData.count)
        data.pointee.KeyedMutexPrivateRuntimeDataSize = UInt32(resource.keyedMutex?.runtimeData.count ?? 0)
        data.pointee.hResource = resourceHandle
        data.pointee.hKeyedMutex = keyedMutexHandle
        data.pointee.hSyncObject = syncObjectHandle
    }
}
