import Synchronization

/// A device: one process's connection to an adapter (`D3DKMTCreateDevice`). Allocations are made
/// and shared resources opened on a device.
public final class Device: Sendable {
    public let adapter: Adapter
    let backend: any DeviceBackend
    /// Keyed mutex timelines imported on this device, by the open that uses them
    /// (`KeyedMutex.kernelTimeline(on:)`); an open removes its entry when it goes.
    let keyedMutexTimelines = ForkSafeMutex<[ObjectIdentifier: any KernelTimeline]>([:])

    init(adapter: Adapter, backend: any DeviceBackend) {
        self.adapter = adapter
        self.backend = backend
    }

    /// Where an allocation's memory comes from.
    public enum AllocationSource: Sendable {
        /// A new buffer the library allocates on this device.
        case new(AllocationDescriptor)
        /// An existing dma-buf (the runtime's own Vulkan/GL export) or sealed memfd. The library
        /// duplicates `descriptor`; the caller keeps and closes its own.
        case wrap(descriptor: Int32, AllocationDescriptor)
    }

    /// Creates a resource: its allocations plus the runtime's and the driver's private data
    /// (`D3DKMTCreateAllocation2` with `Flags.CreateResource`).
    ///
    /// - Parameters:
    ///   - allocations: one entry per allocation, with the runtime's extra per-allocation driver
    ///     data (kept after the descriptor and carried to openers).
    ///   - runtimeData: `pPrivateRuntimeData`.
    ///   - driverData: the resource's `pPrivateDriverData`.
    ///   - shareable: `CreateShared` + `NtSecuritySharing`; only such resources can be shared. A
    ///     resource that can be shared (so also one with `globalShare`) holds one descriptor more
    ///     from its creation: its runtime data page, which its shares carry.
    ///   - globalShare: `CreateShared` alone: the resource gets a global share handle
    ///     (``Resource/globalHandle``) that any process of the user opens with
    ///     ``openResource(globalHandle:check:)`` while some process holds the resource. Windows
    ///     makes a resource one or the other, never both.
    /// - Throws: `STATUS_INVALID_PARAMETER` for an empty or oversized request (a shareable
    ///   resource's `runtimeData` beyond ``Resource/maximumRuntimeDataSize`` too), or a wrapped
    ///   descriptor that is not a dma-buf or memfd; `STATUS_NOT_SUPPORTED` when this device
    ///   cannot import a wrapped buffer; the kernel's status when allocation fails.
    public func createResource(
        allocations: [(source: AllocationSource, extraDriverData: [UInt8])],
        runtimeData: [UInt8] = [],
        driverData: [UInt8] = [],
        shareable: Bool = true,
        globalShare: Bool = false
    ) throws(NTError) -> Resource {
        guard !(shareable && globalShare) else {
            throw NTError(.invalidParameter, "a resource is shared by NT handle or by global handle, not both")
        }
        guard !allocations.isEmpty else { throw NTError(.invalidParameter, "a resource needs at least one allocation") }
        guard allocations.count <= SharePackage.maximumAllocations else {
            throw NTError(.invalidParameter, "\(allocations.count) allocations; a shared resource holds at most "
                                             + "\(SharePackage.maximumAllocations)")
        }
        var made: [Allocation] = []
        made.reserveCapacity(allocations.count)
        // (By index: taking each (source, data) pair apart would copy it through the runtime's
        // generic tuple witnesses.)
        for index in allocations.indices {
            made.append(try createAllocation(allocations[index].source,
                                             extraDriverData: allocations[index].extraDriverData))
        }
        // A resource that can be shared has its runtime data page from the start (its shares carry it).
        let page = shareable || globalShare ? try RuntimeDataPage.create(runtimeData) : nil
        let resource = Resource(device: self, allocations: made, runtimeData: runtimeData, driverData: driverData,
                                shareable: shareable, runtimeDataPage: page)
        if globalShare { try resource.makeGlobal() }
        return resource
    }

    /// Creates one allocation (a standalone allocation, or one of a resource's).
    public func createAllocation(_ source: AllocationSource,
                                 extraDriverData: [UInt8] = []) throws(NTError) -> Allocation {
        switch source {
        case .new(let descriptor):
            guard descriptor.dataOffset == 0, descriptor.planeCount == 0 else {
                throw NTError(.invalidParameter, "a new allocation's planes and data offset are the allocator's "
                                                 + "choice (they describe wrapped buffers)")
            }
            guard let size = descriptor.resolvedSize else {
                throw NTError(.invalidParameter, "allocation descriptor asks for no bytes or more than "
                                                 + "\(AllocationDescriptor.maximumSize)")
            }
            let buffer = try backend.allocate(size: size, descriptor: descriptor)
            return Allocation(device: self, buffer: buffer, descriptor: descriptor, extraDriverData: extraDriverData)
        case .wrap(let fd, let descriptor):
            guard fd >= 0 else { throw NTError(.invalidParameter, "wrapped descriptor \(fd) is not a descriptor") }
            guard !descriptor.hasTooManyPlanes else {
                throw NTError(.invalidParameter, "an image has at most \(AllocationDescriptor.maximumPlanes) planes")
            }
            let buffer = try BufferObject.wrapping(fd, layout: descriptor, on: backend)
            // An image's dma-buf may hold less than the image (a virgl texture keeps its contents
            // on the host, with one page of guest memory): it is shared whole; Lock2 refuses it.
            if !(buffer.kind == .dmaBuf && descriptor.isImage), let asked = descriptor.resolvedSize,
               asked > buffer.size || descriptor.dataOffset > buffer.size - asked {
                throw NTError(.invalidParameter, "descriptor asks for \(asked) bytes at offset "
                              + "\(descriptor.dataOffset), but the wrapped buffer holds \(buffer.size)")
            }
            guard descriptor.dataOffset <= AllocationDescriptor.maximumSize else {
                throw NTError(.invalidParameter, "data offset \(descriptor.dataOffset) is out of range")
            }
            return Allocation(device: self, buffer: buffer, descriptor: descriptor, extraDriverData: extraDriverData)
        }
    }

    /// What a shared handle holds, before opening it (`D3DKMTQueryResourceInfoFromNtHandle`).
    ///
    /// - Throws: `STATUS_INVALID_PARAMETER` when `handle` is not a shared resource handle.
    public func resourceInfo(_ handle: borrowing SharedHandle) throws(NTError) -> SharedResourceInfo {
        let opened = try SharedPackageReader.open(handle.descriptor.rawValue)
        guard opened.package.contents.contains(.resource) else {
            throw NTError(.invalidParameter, "the handle holds no resource")
        }
        return SharedResourceInfo(opened.package, runtimeData: try opened.runtimeData())
    }

    /// Opens the resource a shared handle holds, on this device (`D3DKMTOpenResourceFromNtHandle`).
    /// The handle stays valid and can be opened again; closing it later does not affect the
    /// returned resource.
    ///
    /// - Throws: `STATUS_INVALID_PARAMETER` for anything that is not a well-formed shared
    ///   resource handle; `STATUS_NOT_SUPPORTED` when this device cannot import its buffers.
    public func openResource(_ handle: borrowing SharedHandle) throws(NTError) -> Resource {
        try openResource(handle) { _ throws(NTError) in }
    }

    /// Opens the resource a shared handle holds after `check` accepts what it holds: the C ABI
    /// checks the caller's counts and buffer sizes here, so the handle is read once and nothing
    /// is imported when they are wrong.
    public func openResource(_ handle: borrowing SharedHandle,
                             check: (SharedResourceInfo) throws(NTError) -> Void) throws(NTError) -> Resource {
        try openResource(handle, shareable: true, check: check)
    }

    /// What a global share handle holds, before opening it (`D3DKMTQueryResourceInfo`). Takes no
    /// reference: the value may stop opening once its holders let go.
    ///
    /// - Throws: `STATUS_INVALID_PARAMETER` when `value` is not a live global handle of a
    ///   resource of this user.
    public func resourceInfo(globalHandle value: UInt32) throws(NTError) -> SharedResourceInfo {
        try GlobalShares.open(value, kind: .resource, reference: false) { (handle) throws(NTError) in
            try resourceInfo(handle)
        }.0
    }

    /// Opens the resource a global share handle names, on this device (`D3DKMTOpenResource2`),
    /// after `check` accepts what it holds. The resource keeps the value alive (this process
    /// serves it too) until it goes; it cannot be shared by NT handle, as on Windows.
    ///
    /// - Throws: `STATUS_INVALID_PARAMETER` when `value` is not a live global handle of a
    ///   resource of this user; as ``openResource(_:check:)`` otherwise.
    public func openResource(globalHandle value: UInt32,
                             check: (SharedResourceInfo) throws(NTError) -> Void = { _ throws(NTError) in })
        throws(NTError) -> Resource {
        let (resource, share) = try GlobalShares.open(value, kind: .resource) { (handle) throws(NTError) in
            try openResource(handle, shareable: false, check: check)
        }
        resource.global.set(share)
        return resource
    }

    func openResource(_ handle: borrowing SharedHandle, shareable: Bool,
                      check: (SharedResourceInfo) throws(NTError) -> Void) throws(NTError) -> Resource {
        let opened = try SharedPackageReader.open(handle.descriptor.rawValue)
        guard opened.package.contents.contains(.resource) else {
            throw NTError(.invalidParameter, "the handle holds no resource")
        }
        var page = try opened.runtimeDataPage()
        let fromPage = try RuntimeDataPage.load(page)
        let info = SharedResourceInfo(opened.package, runtimeData: fromPage ?? opened.package.runtimeData)
        try check(info)
        if fromPage == nil {
            // A package with its runtime data inline (not one this build writes) gets a page of
            // the opener's own, so that the opened resource can be shared again.
            page = try RuntimeDataPage.create(info.runtimeData)
        }
        var allocations: [Allocation] = []
        allocations.reserveCapacity(opened.package.allocations.count)
        let readOnly = opened.package.access & SharedAccess.write == 0
        // (Each record's parts are read in place: copying a record would retain its driver data.)
        let records = opened.package.allocations
        for index in records.indices {
            let measured = records[index].buffer!  // measured when the package was read
            let layout = records[index].layout
            var descriptor = opened.descriptors.take(Int(records[index].descriptorIndex))
            if readOnly && measured.kind == .memfd {
                // A read-only open of the same memory: the kernel refuses writable mappings.
                descriptor = try BufferObject.readOnlyCopy(of: descriptor)
            }
            let buffer = try backend.adopt(descriptor, kind: measured.kind, size: measured.size, layout: layout)
            allocations.append(Allocation(device: self, buffer: buffer, openedDriverData: records[index].driverData,
                                          layout: layout, readOnly: readOnly))
        }
        let keyedMutex = try opened.package.keyedMutex.map { (record) throws(NTError) in
            try KeyedMutex.open(record, opened.descriptors)
        }
        let syncObject = try opened.package.syncObject.map { (record) throws(NTError) in
            try openSyncObject(record, opened.descriptors, access: SyncObjectAccess.allAccess)
        }
        return Resource(device: self, allocations: allocations, runtimeData: info.runtimeData,
                        driverData: opened.package.resourceDriverData, shareable: shareable, keyedMutex: keyedMutex,
                        syncObject: syncObject, runtimeDataPage: page)
    }
}

/// The sizes a shared resource handle carries (`D3DKMT_QUERYRESOURCEINFOFROMNTHANDLE`).
public struct SharedResourceInfo: Hashable, Sendable {
    public var allocationCount: Int
    /// `PrivateRuntimeDataSize`
    public var runtimeDataSize: Int
    /// `ResourcePrivateDriverDataSize`
    public var resourceDriverDataSize: Int
    /// `TotalPrivateDriverDataSize`: every allocation's driver data (what the runtime supplied
    /// after each `D3DKMT_LINUX_ALLOCATION_DESC`), packed.
    public var totalAllocationDriverDataSize: Int
    /// The adapter the sharer created it on.
    public var adapterLUID: LUID
    /// The runtime private data itself (`pPrivateRuntimeData`).
    public var runtimeData: [UInt8]
    /// The private data of the keyed mutex shared with the resource (0 when there is none).
    public var keyedMutexRuntimeDataSize: Int

    init(_ package: borrowing SharePackage, runtimeData: [UInt8]) {
        self.runtimeData = runtimeData
        allocationCount = package.allocations.count
        runtimeDataSize = runtimeData.count
        resourceDriverDataSize = package.resourceDriverData.count
        totalAllocationDriverDataSize = package.allocations.reduce(0) { $0 + $1.driverData.count }
        adapterLUID = package.adapterLUID
        keyedMutexRuntimeDataSize = package.keyedMutex?.runtimeData.count ?? 0
    }
}
