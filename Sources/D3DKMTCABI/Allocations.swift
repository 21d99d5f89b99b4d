import D3DKMT
import CD3DKMT

// Allocations: D3DKMTCreateAllocation, D3DKMTCreateAllocation2, D3DKMTDestroyAllocation,
// D3DKMTDestroyAllocation2, D3DKMTLock2, D3DKMTUnlock2, and the Linux extensions
// D3DKMTLinuxExportAllocationDmaBuf, D3DKMTLinuxQueryAllocationDesc and
// D3DKMTLinuxQueryAllocationSize.

/// One allocation request, read from either `D3DDDI_ALLOCATIONINFO` or `D3DDDI_ALLOCATIONINFO2`.
struct AllocationRequest {
    var source: Device.AllocationSource
    var extraDriverData: [UInt8]
}

/// Reads `pPrivateDriverData`: a `D3DKMT_LINUX_ALLOCATION_DESC` (or, with `Version` 2, a
/// `D3DKMT_LINUX_ALLOCATION_DESC2`), then the runtime's own bytes.
func allocationRequest(_ data: UnsafeMutableRawPointer?, _ size: UInt32,
                       index: Int) throws(NTError) -> AllocationRequest {
    let descriptorSize = MemoryLayout<D3DKMT_LINUX_ALLOCATION_DESC>.size
    guard let data, Int(size) >= descriptorSize else {
        throw invalid("allocation \(index): pPrivateDriverData must start with a D3DKMT_LINUX_ALLOCATION_DESC "
                      + "(\(descriptorSize) bytes)")
    }
    let version = data.loadUnaligned(as: UInt32.self)
    let descriptor: AllocationDescriptor
    let fd: Int32
    let consumed: Int
    if version == UInt32(D3DKMT_LINUX_ALLOCATION_DESC_VERSION_2) {
        consumed = MemoryLayout<D3DKMT_LINUX_ALLOCATION_DESC2>.size
        guard Int(size) >= consumed else {
            throw invalid("allocation \(index): a version 2 descriptor is \(consumed) bytes; "
                          + "PrivateDriverDataSize is \(size)")
        }
        let desc = data.loadUnaligned(as: D3DKMT_LINUX_ALLOCATION_DESC2.self)
        guard desc.Flags == 0, desc.Reserved.0 == 0, desc.Reserved.1 == 0,
              desc.PlaneCount <= UInt32(D3DKMT_LINUX_MAX_PLANES) else {
            throw invalid("allocation \(index): unknown D3DKMT_LINUX_ALLOCATION_DESC2 flags, reserved fields "
                          + "or PlaneCount \(desc.PlaneCount) above \(D3DKMT_LINUX_MAX_PLANES)")
        }
        let planes = withUnsafeBytes(of: desc.Planes) { raw in
            (0..<Int(desc.PlaneCount)).map { plane in
                let entry = raw.loadUnaligned(fromByteOffset: plane * MemoryLayout<D3DKMT_LINUX_ALLOCATION_PLANE>.size,
                                              as: D3DKMT_LINUX_ALLOCATION_PLANE.self)
                return AllocationDescriptor.Plane(offset: entry.Offset, stride: entry.Stride)
            }
        }
        descriptor = AllocationDescriptor(size: desc.Size, width: desc.Width, height: desc.Height,
                                          stride: desc.Stride, fourcc: desc.Fourcc, modifier: desc.Modifier,
                                          planes: planes, dataOffset: desc.DataOffset)
        fd = desc.DmaBufFd
    } else {
        let desc = data.loadUnaligned(as: D3DKMT_LINUX_ALLOCATION_DESC.self)
        guard desc.Version == UInt32(D3DKMT_LINUX_ALLOCATION_DESC_VERSION), desc.Flags == 0, desc.Reserved == 0 else {
            throw invalid("allocation \(index): unknown D3DKMT_LINUX_ALLOCATION_DESC version or flags")
        }
        descriptor = AllocationDescriptor(size: desc.Size, width: desc.Width, height: desc.Height,
                                          stride: desc.Stride, fourcc: desc.Fourcc, modifier: desc.Modifier)
        fd = desc.DmaBufFd
        consumed = descriptorSize
    }
    let extra = Array(UnsafeRawBufferPointer(start: data + consumed, count: Int(size) - consumed))
    let source: Device.AllocationSource = fd >= 0 ? .wrap(descriptor: fd, descriptor) : .new(descriptor)
    return AllocationRequest(source: source, extraDriverData: extra)
}

/// The shared body of `D3DKMTCreateAllocation` and `D3DKMTCreateAllocation2`.
func createAllocations(_ data: UnsafeMutablePointer<D3DKMT_CREATEALLOCATION>,
                       requests: [AllocationRequest],
                       storeHandle: (Int, D3DKMT_HANDLE) -> Void) throws(NTError) {
    let flags = data.pointee.Flags
    let deviceHandle = data.pointee.hDevice
    guard let device = handleTable.withLock({ $0.device(deviceHandle) }) else {
        throw invalid("hDevice is not an open device")
    }
    guard !requests.isEmpty else { throw invalid("NumAllocations is 0") }
    guard flags.ExistingSysMem == 0, flags.ExistingSection == 0, flags.StandardAllocation == 0 else {
        throw NTError(.notSupported, "ExistingSysMem, ExistingSection and StandardAllocation are not supported")
    }
    guard flags.CreateShared == 0 || flags.CreateResource != 0 else {
        throw invalid("CreateShared needs CreateResource")
    }
    if flags.NtSecuritySharing != 0 && flags.CreateShared == 0 {
        throw invalid("NtSecuritySharing needs CreateShared")
    }
    data.pointee.hGlobalShare = 0

    if flags.CreateResource != 0 {
        let runtime = try bytes(data.pointee.pPrivateRuntimeData, data.pointee.PrivateRuntimeDataSize,
                                "pPrivateRuntimeData")
        let driver = try bytes(data.pointee.pPrivateDriverData, data.pointee.PrivateDriverDataSize,
                               "pPrivateDriverData")
        let resource = try device.createResource(
            allocations: requests.map { ($0.source, $0.extraDriverData) }, runtimeData: runtime, driverData: driver,
            shareable: flags.NtSecuritySharing != 0,
            globalShare: flags.CreateShared != 0 && flags.NtSecuritySharing == 0)
        // All handles are made under one lock, so a failure leaves none behind.
        let handles = handleTable.withLock { $0.insertResource(resource, device: deviceHandle) }
        guard let (resourceHandle, allocationHandles) = handles else {
            throw NTError(.insufficientResources, "the local handle table is full")
        }
        data.pointee.hResource = resourceHandle
        data.pointee.hGlobalShare = resource.globalHandle ?? 0
        for (index, handle) in allocationHandles.enumerated() { storeHandle(index, handle) }
    } else {
        var allocations: [Allocation] = []
        for request in requests {
            allocations.append(try device.createAllocation(request.source, extraDriverData: request.extraDriverData))
        }
        let handles: [D3DKMT_HANDLE]? = handleTable.withLock { table in
            var made: [D3DKMT_HANDLE] = []
            for allocation in allocations {
                guard let handle = table.insert(.allocation(allocation, device: deviceHandle, resource: 0)) else {
                    for handle in made { table.remove(handle) }
                    return nil
                }
                made.append(handle)
            }
            return made
        }
        guard let handles else { throw NTError(.insufficientResources, "the local handle table is full") }
        for (index, handle) in handles.enumerated() { storeHandle(index, handle) }
    }
}

/// Reads `NumAllocations` requests through `entry` (one allocation info's driver data), creates
/// them, and hands each new handle to `store`.
func createAllocations(_ pData: UnsafeMutablePointer<D3DKMT_CREATEALLOCATION>?,
                       hasInfo: (D3DKMT_CREATEALLOCATION) -> Bool,
                       entry: (D3DKMT_CREATEALLOCATION, Int) -> (UnsafeMutableRawPointer?, UInt32),
                       store: @escaping (D3DKMT_CREATEALLOCATION, Int, D3DKMT_HANDLE) -> Void) -> NTSTATUS {
    ntCall { () throws(NTError) in
        let data = try required(pData)
        // As on Windows, an hResource that names nothing is refused before anything else; one that
        // names a resource cannot take more allocations (a new resource needs hResource 0).
        let existing = data.pointee.hResource
        if existing != 0 {
            let isResource = handleTable.withLock { table -> Bool? in
                guard let object = table.lookup(existing) else { return nil }
                if case .resource = object { return true }
                return false
            }
            guard let isResource else {
                throw NTError(.invalidHandle, "hResource 0x\(String(existing, radix: 16)) names nothing")
            }
            throw invalid(isResource ? "allocations cannot be added to an existing resource"
                                     : "hResource is not a resource")
        }
        let count = Int(data.pointee.NumAllocations)
        guard count <= 4096 else { throw invalid("NumAllocations \(count) is too large") }
        guard count == 0 || hasInfo(data.pointee) else { throw invalid("the allocation info array is NULL") }
        var requests: [AllocationRequest] = []
        for index in 0..<count {
            let (driverData, size) = entry(data.pointee, index)
            requests.append(try allocationRequest(driverData, size, index: index))
        }
        try createAllocations(data, requests: requests) { index, handle in store(data.pointee, index, handle) }
    }
}

/// `D3DKMTCreateAllocation2`: creates allocations, as one resource with `Flags.CreateResource`,
/// shareable by NT handle with `CreateShared` + `NtSecuritySharing`, or given a global share
/// handle (`hGlobalShare`, opened with `D3DKMTOpenResource(2)`) with `CreateShared` alone. Every
/// `pAllocationInfo2[i]` has a `pPrivateDriverData` that starts with a `D3DKMT_LINUX_ALLOCATION_DESC`;
/// with its `DmaBufFd` set, the allocation wraps that dma-buf instead of allocating.
@c @implementation
public func D3DKMTCreateAllocation2(_ pData: UnsafeMutablePointer<D3DKMT_CREATEALLOCATION>?) -> NTSTATUS {
    createAllocations(pData, hasInfo: { $0.pAllocationInfo2 != nil },
                      entry: { ($0.pAllocationInfo2[$1].pPrivateDriverData,
                                $0.pAllocationInfo2[$1].PrivateDriverDataSize) },
                      store: { $0.pAllocationInfo2[$1].hAllocation = $2 })
}

/// `D3DKMTCreateAllocation`: as `D3DKMTCreateAllocation2`, with `pAllocationInfo` entries.
@c @implementation
public func D3DKMTCreateAllocation(_ pData: UnsafeMutablePointer<D3DKMT_CREATEALLOCATION>?) -> NTSTATUS {
    createAllocations(pData, hasInfo: { $0.pAllocationInfo != nil },
                      entry: { ($0.pAllocationInfo[$1].pPrivateDriverData,
                                $0.pAllocationInfo[$1].PrivateDriverDataSize) },
                      store: { $0.pAllocationInfo[$1].hAllocation = $2 })
}

/// The shared body of `D3DKMTDestroyAllocation` and `D3DKMTDestroyAllocation2`, as Windows does it:
/// with `hResource` and no list, destroys the resource and all its allocations (also how an opened
/// resource is closed); with a list, destroys just those allocations (of `hResource` when given;
/// standalone ones or any resource's without it), their resources staying; with neither, destroys
/// nothing and succeeds. Locked
/// allocations are unmapped. `STATUS_INVALID_PARAMETER` for an unknown device, resource or
/// allocation, or a count without a list; nothing is destroyed then.
func destroyAllocations(device: D3DKMT_HANDLE, resource: D3DKMT_HANDLE, list: UnsafePointer<D3DKMT_HANDLE>?,
                        count: UInt32) throws(NTError) {
    guard count == 0 || list != nil else { throw invalid("phAllocationList is NULL") }
    guard count <= UInt32(HandleTable.maximumSlots) else {
        throw invalid("AllocationCount \(count) is more than there can be")
    }
    let listed = (0..<Int(count)).map { list![$0] }
    guard Set(listed).count == listed.count else { throw invalid("an allocation is listed twice") }
    let released: Result<[LocalObject], NTError> = handleTable.withLock { table in
        guard table.device(device) != nil else { return .failure(invalid("hDevice is not an open device")) }
        var toRemove: [D3DKMT_HANDLE] = listed
        if resource != 0 {
            guard case .resource(let object, let owner, let allocations)? = table.lookup(resource),
                  owner == device else {
                return .failure(invalid("hResource is not a resource of hDevice"))
            }
            guard listed.allSatisfy(allocations.contains) else {
                return .failure(invalid("an allocation is not in hResource"))
            }
            if listed.isEmpty {
                toRemove = [resource] + allocations
            } else {
                table.replace(resource, with: .resource(object, device: owner,
                                                        allocations: allocations.filter { !listed.contains($0) }))
            }
        } else {
            // Listed alone, an allocation may be standalone or one of a resource's (which stays).
            var parents: [D3DKMT_HANDLE: [D3DKMT_HANDLE]] = [:]
            for handle in listed {
                guard case .allocation(_, let owner, let parent)? = table.lookup(handle), owner == device else {
                    return .failure(invalid("allocation handle 0x\(String(handle, radix: 16)) "
                                            + "is not an allocation of hDevice"))
                }
                if parent != 0 { parents[parent, default: []].append(handle) }
            }
            for (parent, gone) in parents {
                guard case .resource(let object, let owner, let allocations)? = table.lookup(parent) else { continue }
                table.replace(parent, with: .resource(object, device: owner,
                                                      allocations: allocations.filter { !gone.contains($0) }))
            }
        }
        return .success(toRemove.compactMap { table.remove($0) })
    }
    _ = try released.get()  // the objects are dropped here, outside the lock
}

/// `D3DKMTDestroyAllocation2`: see ``destroyAllocations(device:resource:list:count:)``.
@c @implementation
public func D3DKMTDestroyAllocation2(_ pData: UnsafePointer<D3DKMT_DESTROYALLOCATION2>?) -> NTSTATUS {
    ntCall(arguments: pData?.pointee) { () throws(NTError) in
        let data = try required(pData).pointee
        try destroyAllocations(device: data.hDevice, resource: data.hResource, list: data.phAllocationList,
                               count: data.AllocationCount)
    }
}

/// `D3DKMTDestroyAllocation`: as `D3DKMTDestroyAllocation2`.
@c @implementation
public func D3DKMTDestroyAllocation(_ pData: UnsafePointer<D3DKMT_DESTROYALLOCATION>?) -> NTSTATUS {
    ntCall(arguments: pData?.pointee) { () throws(NTError) in
        let data = try required(pData).pointee
        try destroyAllocations(device: data.hDevice, resource: data.hResource, list: data.phAllocationList,
                               count: data.AllocationCount)
    }
}

/// `D3DKMTLock2`: CPU access to the whole allocation (writable unless it was opened read-only).
/// The allocation is mapped on its first lock and stays mapped until it is destroyed, so every
/// lock returns the same address, as on Windows; each lock then costs only what coherency needs
/// (`DMA_BUF_IOCTL_SYNC` start on a dma-buf; a virgl image's transfer from the host, shared by
/// nested locks; nothing on a memfd). The wait for a busy dma-buf happens outside the handle
/// table's lock: it stalls only the threads locking this allocation. `STATUS_INVALID_PARAMETER` for an unknown
/// allocation or non-zero `Flags` (Microsoft reserves them); the `mmap` failure otherwise.
@c @implementation
public func D3DKMTLock2(_ pData: UnsafeMutablePointer<D3DKMT_LOCK2>?) -> NTSTATUS {
    ntCall(arguments: pData?.pointee) { () throws(NTError) in
        let data = try required(pData)
        guard data.pointee.Flags.Value == 0 else { throw invalid("D3DDDICB_LOCK2FLAGS are reserved; Flags must be 0") }
        data.pointee.pData = try HandleTable.allocation(data.pointee.hAllocation, onDevice: data.pointee.hDevice).lock()
    }
}

/// `D3DKMTUnlock2`: ends a `D3DKMTLock2` (`DMA_BUF_IOCTL_SYNC` end on a dma-buf; the last of
/// nested locks of a virgl image makes the transfer to the host). The mapping stays.
@c @implementation
public func D3DKMTUnlock2(_ pData: UnsafePointer<D3DKMT_UNLOCK2>?) -> NTSTATUS {
    ntCall(arguments: pData?.pointee) { () throws(NTError) in
        let data = try required(pData).pointee
        let allocation = try HandleTable.allocation(data.hAllocation, onDevice: data.hDevice)
        guard allocation.unlock() else { throw invalid("hAllocation is not a locked allocation of hDevice") }
    }
}

/// `D3DKMTLinuxExportAllocationDmaBuf`: a new close-on-exec descriptor for the allocation's
/// dma-buf (a memfd on the software adapter), for Vulkan/GL import. The caller closes it.
@c @implementation
public func D3DKMTLinuxExportAllocationDmaBuf(_ hDevice: D3DKMT_HANDLE, _ hAllocation: D3DKMT_HANDLE,
                                             _ pFd: UnsafeMutablePointer<Int32>?) -> NTSTATUS {
    ntCall(arguments: (hDevice, hAllocation, pFd)) { () throws(NTError) in
        let out = try required(pFd, "pFd")
        out.pointee = try HandleTable.allocation(hAllocation, onDevice: hDevice).exportDescriptor().take()
    }
}

/// `D3DKMTLinuxQueryAllocationDesc`: the allocation's layout as its creator described it (size
/// resolved, `DmaBufFd` -1): how an opener learns what a shared allocation holds, since the
/// library's descriptor is not part of the runtime's driver data.
@c @implementation
public func D3DKMTLinuxQueryAllocationDesc(_ hDevice: D3DKMT_HANDLE, _ hAllocation: D3DKMT_HANDLE,
                                          _ pDesc: UnsafeMutablePointer<D3DKMT_LINUX_ALLOCATION_DESC>?) -> NTSTATUS {
    ntCall(arguments: (hDevice, hAllocation, pDesc)) { () throws(NTError) in
        let out = try required(pDesc, "pDesc")
        let layout = try HandleTable.allocation(hAllocation, onDevice: hDevice).layout
        var desc = D3DKMT_LINUX_ALLOCATION_DESC()
        desc.Version = UInt32(D3DKMT_LINUX_ALLOCATION_DESC_VERSION)
        desc.Size = layout.size
        desc.Width = layout.width
        desc.Height = layout.height
        desc.Stride = layout.stride
        desc.Fourcc = layout.fourcc
        desc.Modifier = layout.modifier
        desc.DmaBufFd = -1
        out.pointee = desc
    }
}

/// `D3DKMTLinuxQueryAllocationDesc2`: the allocation's layout in version 2, with its planes (at
/// least one: plane 0 at offset 0 with `Stride` when its creator gave none) and data offset.
@c @implementation
public func D3DKMTLinuxQueryAllocationDesc2(_ hDevice: D3DKMT_HANDLE, _ hAllocation: D3DKMT_HANDLE,
                                           _ pDesc: UnsafeMutablePointer<D3DKMT_LINUX_ALLOCATION_DESC2>?) -> NTSTATUS {
    ntCall(arguments: (hDevice, hAllocation, pDesc)) { () throws(NTError) in
        let out = try required(pDesc, "pDesc")
        let layout = try HandleTable.allocation(hAllocation, onDevice: hDevice).layout
        var desc = D3DKMT_LINUX_ALLOCATION_DESC2()
        desc.Version = UInt32(D3DKMT_LINUX_ALLOCATION_DESC_VERSION_2)
        desc.Size = layout.size
        desc.Width = layout.width
        desc.Height = layout.height
        desc.Stride = layout.stride
        desc.Fourcc = layout.fourcc
        desc.Modifier = layout.modifier
        desc.DmaBufFd = -1
        desc.DataOffset = layout.dataOffset
        let planes = layout.effectivePlanes
        desc.PlaneCount = UInt32(planes.count)
        withUnsafeMutableBytes(of: &desc.Planes) { raw in
            for (index, plane) in planes.enumerated() {
                raw.storeBytes(of: D3DKMT_LINUX_ALLOCATION_PLANE(Offset: plane.offset, Stride: plane.stride),
                               toByteOffset: index * MemoryLayout<D3DKMT_LINUX_ALLOCATION_PLANE>.size,
                               as: D3DKMT_LINUX_ALLOCATION_PLANE.self)
            }
        }
        out.pointee = desc
    }
}

/// `D3DKMTLinuxQueryAllocationSize`: the allocation's size in bytes.
@c @implementation
public func D3DKMTLinuxQueryAllocationSize(_ hDevice: D3DKMT_HANDLE, _ hAllocation: D3DKMT_HANDLE,
                                           _ pSize: UnsafeMutablePointer<UINT64>?) -> NTSTATUS {
    ntCall(arguments: (hDevice, hAllocation, pSize)) { () throws(NTError) in
        let out = try required(pSize, "pSize")
        out.pointee = try HandleTable.allocation(hAllocation, onDevice: hDevice).size
    }
}
