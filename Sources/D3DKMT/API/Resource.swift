import Synchronization

/// A resource: a set of allocations with the runtime's and the driver's private data, as created
/// by `D3DKMTCreateAllocation2` with `CreateResource`, or opened from a shared handle.
public final class Resource: Sendable {
    public let device: Device
    public let allocations: [Allocation]
    /// The resource's `pPrivateDriverData`
    public let driverData: [UInt8]
    /// Created with `CreateShared` + `NtSecuritySharing` (or opened from a shared handle).
    public let isShareable: Bool

    /// The runtime data's shared page, which travels in every share of the resource so that an
    /// update reaches every holder and handles already shared: made with the resource when it can
    /// be shared (by NT handle or global handle), or the one of the handle it was opened from;
    /// nil for a resource that can never be shared, whose runtime data is ``localRuntimeData``.
    private let page: RuntimeDataPage?
    /// The runtime data of a resource without a ``page``. Guarded by ``localRuntimeDataLock``.
    nonisolated(unsafe) private var localRuntimeData: [UInt8]
    /// One lock for every unshareable resource's local runtime data, held for a few instructions at
    /// a time (resources need no lock of their own; one with a page never takes it).
    private static let localRuntimeDataLock = ForkSafeMutex<Void>(())

    /// - Parameter runtimeDataPage: the page, for a resource that can be shared; nil keeps
    ///   `runtimeData` locally.
    init(device: Device, allocations: [Allocation], runtimeData: [UInt8], driverData: [UInt8], shareable: Bool,
         keyedMutex: KeyedMutex? = nil, syncObject: SyncObject? = nil,
         runtimeDataPage: consuming RuntimeDataPage?) {
        self.device = device
        self.keyedMutex = keyedMutex
        self.syncObject = syncObject
        self.allocations = allocations
        switch runtimeDataPage {
        case .some: localRuntimeData = []
        case .none: localRuntimeData = runtimeData
        }
        page = runtimeDataPage
        self.driverData = driverData
        self.isShareable = shareable
    }

    /// `pPrivateRuntimeData`: what the creator passed, or the last ``updateRuntimeData(_:)`` by
    /// any process holding the resource (empty if a holder of its handle wrecked the shared page).
    public var runtimeData: [UInt8] {
        switch page {
        case .some(let page): return (try? page.load()) ?? []
        case .none: return Self.localRuntimeDataLock.withLock { _ in localRuntimeData }
        }
    }

    /// True when every allocation is read-only (opened from a handle shared without
    /// `SHARED_ALLOCATION_WRITE`).
    public var isReadOnly: Bool { allocations.allSatisfy { $0.isReadOnly } }

    /// The most runtime private data ``updateRuntimeData(_:)`` takes, and a shared resource
    /// carries (131,008 bytes).
    public static let maximumRuntimeDataSize = RuntimeDataPage.maximumDataSize

    /// Replaces the runtime private data (`D3DKMTEscape` with `D3DKMT_ESCAPE_UPDATE_RESOURCE_WINE`,
    /// which DXVK and vkd3d-proton use to attach their descriptor to a resource a Vulkan layer
    /// made): for this resource, for every process that opened it, and for every later open of
    /// its shared handles, including handles shared before the update.
    ///
    /// - Throws: `STATUS_INVALID_PARAMETER` when `data` is larger than 131,008 bytes;
    ///   `STATUS_ACCESS_DENIED` for a resource opened read-only; the kernel's status when the
    ///   shared page cannot be mapped.
    public func updateRuntimeData(_ data: [UInt8]) throws(NTError) {
        try RuntimeDataPage.checkSize(data.count)
        guard !isReadOnly else { throw NTError(.accessDenied, "the resource was opened read-only") }
        switch page {
        case .some(let page): try page.store(data)
        case .none: Self.localRuntimeDataLock.withLock { _ in localRuntimeData = data }
        }
    }

    /// The descriptor of the runtime data's shared page, which a share package carries; valid
    /// while the resource lives.
    ///
    /// - Throws: `STATUS_INVALID_PARAMETER` for a resource that cannot be shared.
    func runtimeDataPageDescriptor() throws(NTError) -> Int32 {
        switch page {
        case .some(let page): return page.descriptor.rawValue
        case .none: throw NTError(.invalidParameter, "the resource cannot be shared")
        }
    }

    /// This process's reference to the resource's global share handle, when it has one.
    let global = GlobalReference()

    /// The global share handle (`hGlobalShare`): set for a resource created with a global handle
    /// (`CreateShared` without `NtSecuritySharing`) or opened by one; nil otherwise.
    public var globalHandle: UInt32? { global.value }

    /// Gives the resource a global share handle, served by this process while the resource lives.
    func makeGlobal() throws(NTError) {
        var builder = SharePackageBuilder(contents: .resource, access: SharedAccess.allAccess,
                                          adapterLUID: device.adapter.info.luid)
        try builder.add(self)
        let share = try GlobalShares.create(.resource, serving: try builder.write())
        global.set(share)
    }

    /// The keyed mutex that came with the resource when it was opened from a handle that held
    /// one (`hKeyedMutex` of `D3DKMT_OPENRESOURCEFROMNTHANDLE`); nil otherwise.
    public let keyedMutex: KeyedMutex?
    /// The sync object that came with it (`hSyncObject`); nil otherwise.
    public let syncObject: SyncObject?

    /// Shares the resource as a new NT handle (`D3DKMTShareObjects`): alone, or with the keyed
    /// mutex and sync object that guard it (Windows takes both or neither).
    ///
    /// - Parameters:
    ///   - access: `dwDesiredAccess`: what openers of the handle may do (``SharedAccess``, with
    ///     no generic rights: the C ABI maps those); without `SHARED_ALLOCATION_WRITE` they get
    ///     the allocations read-only. A resource opened read-only never shares write access.
    ///   - name: a name in the caller's namespace (`OBJECT_ATTRIBUTES.ObjectName`), resolvable
    ///     with ``SharedHandle/open(name:access:)`` while the returned handle (or a copy) is open.
    /// - Throws: `STATUS_INVALID_PARAMETER` when the resource, the keyed mutex or the sync object
    ///   was not created shareable, or only one of `keyedMutex` and `syncObject` is given;
    ///   `STATUS_OBJECT_NAME_COLLISION`, `STATUS_OBJECT_NAME_INVALID` for names; the kernel's
    ///   status when the handle cannot be made (`STATUS_TOO_MANY_OPENED_FILES`).
    public func share(access: UInt32 = SharedAccess.allAccess, keyedMutex: KeyedMutex? = nil,
                      syncObject: SyncObject? = nil, name: String? = nil) throws(NTError) -> SharedHandle {
        guard isShareable else {
            throw NTError(.invalidParameter, "resource was not created with CreateShared and NtSecuritySharing")
        }
        guard (keyedMutex == nil) == (syncObject == nil) else {
            throw NTError(.invalidParameter, "a resource is shared with both its keyed mutex and its sync object, "
                                             + "or neither")
        }
        guard keyedMutex?.isShareable ?? true, syncObject?.isShareable ?? true else {
            throw NTError(.invalidParameter, "the keyed mutex or sync object was not created for NT-handle sharing")
        }
        var builder = SharePackageBuilder(contents: keyedMutex == nil
                                              ? .resource : [.resource, .keyedMutex, .syncObject],
                                          access: isReadOnly ? access & ~SharedAccess.write : access,
                                          adapterLUID: device.adapter.info.luid)
        try builder.add(self)
        if let keyedMutex, let syncObject {
            builder.add(keyedMutex)
            try builder.add(syncObject)
        }
        return try builder.write(name: name)
    }
}

/// `dwDesiredAccess` values for shared resources (Microsoft's constants).
public enum SharedAccess {
    /// `STANDARD_RIGHTS_READ`
    public static let read: UInt32 = 0x0002_0000
    /// `SHARED_ALLOCATION_WRITE`
    public static let write: UInt32 = 0x0001
    /// `SHARED_ALLOCATION_ALL_ACCESS` (`STANDARD_RIGHTS_REQUIRED | SHARED_ALLOCATION_WRITE`)
    public static let allAccess: UInt32 = 0x000F_0001

    /// `access` with its generic rights replaced by what they mean for a shared resource
    /// (Windows' generic mapping of `DxgkSharedResource`): `GENERIC_READ` and `GENERIC_EXECUTE`
    /// = `READ_CONTROL`, `GENERIC_WRITE` = `READ_CONTROL` + ``write``, `GENERIC_ALL` =
    /// ``allAccess``.
    public static func mapped(_ access: UInt32) -> UInt32 {
        GenericRights.map(access, read: read, write: read | write, execute: read, all: allAccess)
    }
}

/// One allocation: a GEM buffer shared as a dma-buf, or a sealed memfd on the software adapter.
public final class Allocation: Sendable {
    public let device: Device
    let buffer: BufferObject
    /// The size the allocation was created with (its buffer may be larger: page rounding).
    public var size: UInt64 { layout.size }
    /// What the memory holds: size, width, height, stride, DRM fourcc and modifier, from the
    /// creator's `D3DKMT_LINUX_ALLOCATION_DESC` (`D3DKMTLinuxQueryAllocationDesc`), with the size
    /// resolved. The library's own bookkeeping: it travels with the allocation but is not part of
    /// ``driverData``.
    public let layout: AllocationDescriptor
    /// The runtime's private driver data for this allocation: the bytes its creator passed after
    /// the `D3DKMT_LINUX_ALLOCATION_DESC` (often none).
    public let driverData: [UInt8]

    init(device: Device, buffer: BufferObject, descriptor: AllocationDescriptor, extraDriverData: [UInt8]) {
        self.isReadOnly = false
        // What the allocator chose (GBM's stride, modifier, planes) wins over what was asked.
        var layout = buffer.layout ?? descriptor
        if buffer.layout == nil || layout.size == 0 {
            layout.size = descriptor.resolvedSize ?? (buffer.size - min(buffer.size, descriptor.dataOffset))
        }
        self.device = device
        self.buffer = buffer
        self.layout = layout
        self.driverData = extraDriverData
    }

    init(device: Device, buffer: BufferObject, openedDriverData: [UInt8], layout: AllocationDescriptor,
         readOnly: Bool) {
        self.isReadOnly = readOnly
        self.device = device
        self.buffer = buffer
        self.layout = layout
        self.driverData = openedDriverData
    }

    /// Opened from a handle shared without `SHARED_ALLOCATION_WRITE`: it maps read-only. For a
    /// memfd the kernel enforces it (the descriptor is a read-only reopen); for a dma-buf, whose
    /// mode the first PRIME export fixed for everyone, the library refuses writable mappings.
    public let isReadOnly: Bool

    /// True when the memory is a DRM dma-buf (false: a memfd in system memory).
    public var isDmaBuf: Bool { buffer.kind == .dmaBuf }

    /// Which allocator made the buffer (`.imported` for a wrapped or opened one).
    public var allocator: BufferAllocator { buffer.allocator }

    /// A new close-on-exec descriptor for the allocation's dma-buf (or memfd), for Vulkan/GL
    /// import (`VK_EXT_external_memory_dma_buf`). The caller owns it.
    public func exportDescriptor() throws(NTError) -> FileDescriptor {
        do {
            return try buffer.descriptor.duplicate()
        } catch {
            throw error.nt("duplicating an allocation's descriptor")
        }
    }

    /// `D3DKMTLock2`'s address once the first lock mapped the allocation (0 before): the kept
    /// mapping's first byte of the allocation, read without a lock.
    private let lockAddress = Atomic<UInt>(0)
    /// Locks held. Changed atomically alone, except on a buffer whose window is shared
    /// (``CPUAccessWindow/shared``): there under ``CPULocks/mapping``'s mutex, with the window's
    /// opening and closing.
    private let lockCount = Atomic<Int>(0)
    /// The kept mapping and its mutex, made by the first lock (most allocations are never locked).
    private let lockState = Atomic<Unmanaged<CPULocks>?>(nil)

    private var locks: CPULocks {
        if let made = lockState.load(ordering: .acquiring) { return made.takeUnretainedValue() }
        let new = Unmanaged.passRetained(CPULocks())
        let (stored, existing) = lockState.compareExchange(expected: nil, desired: new,
                                                           ordering: .acquiringAndReleasing)
        guard stored else {
            new.release()
            return existing!.takeUnretainedValue()
        }
        return new.takeUnretainedValue()
    }

    /// Opens CPU access to the allocation (`D3DKMTLock2`) and returns its first byte: the same
    /// address every time, as Windows programs expect. The allocation is mapped on its first lock
    /// (writable unless ``isReadOnly``; a mapping costs address space, no memory until touched)
    /// and stays mapped until the allocation goes. After that a lock costs what coherency needs:
    /// nothing on a memfd, `DMA_BUF_IOCTL_SYNC` start on a dma-buf (waiting for GPU work, per
    /// lock), and on a virgl image the transfer from the host, made by the first of nested locks
    /// (which share it, under a mutex: waiting for it stalls only the threads locking this
    /// allocation).
    ///
    /// - Throws: as ``map(writable:)``; the backend's status when a virgl image's contents cannot
    ///   be brought in.
    public func lock() throws(NTError) -> UnsafeMutableRawPointer {
        let window = buffer.accessWindow
        if window != .shared, let kept = UnsafeMutableRawPointer(bitPattern: lockAddress.load(ordering: .acquiring)) {
            lockCount.wrappingAdd(1, ordering: .relaxed)
            if window == .dmaBufSync { buffer.syncDmaBuf(start: true, writable: !isReadOnly) }
            return kept
        }
        return try lockUnderMutex()
    }

    /// A first lock (which maps), or any lock of a buffer whose window is shared.
    private func lockUnderMutex() throws(NTError) -> UnsafeMutableRawPointer {
        try locks.mapping.withLock { (mapping) throws(NTError) -> UnsafeMutableRawPointer in
            if mapping == nil {
                let (offset, length) = try mappedRange()
                let made = try buffer.mapMemory(length: offset + length, writable: !isReadOnly)
                mapping = CPULocks.Mapping(address: made, length: offset + length)
                lockAddress.store(UInt(bitPattern: made + offset), ordering: .releasing)
            }
            if buffer.accessWindow != .shared || lockCount.load(ordering: .relaxed) == 0 {
                try buffer.beginAccess(writable: !isReadOnly)
            }
            lockCount.wrappingAdd(1, ordering: .relaxed)
            return UnsafeMutableRawPointer(bitPattern: lockAddress.load(ordering: .relaxed))!
        }
    }

    /// Ends one ``lock()`` (`D3DKMTUnlock2`): `DMA_BUF_IOCTL_SYNC` end on a dma-buf; on a virgl
    /// image the last of nested locks makes the transfer to the host. The mapping stays.
    ///
    /// - Returns: false when the allocation was not locked.
    @discardableResult
    public func unlock() -> Bool {
        let window = buffer.accessWindow
        guard window == .shared else {
            var held = lockCount.load(ordering: .relaxed)
            while true {
                guard held > 0 else { return false }
                let (exchanged, found) = lockCount.compareExchange(expected: held, desired: held - 1,
                                                                   ordering: .relaxed)
                if exchanged { break }
                held = found
            }
            if window == .dmaBufSync { buffer.syncDmaBuf(start: false, writable: !isReadOnly) }
            return true
        }
        guard let made = lockState.load(ordering: .acquiring) else { return false }
        return made.takeUnretainedValue().mapping.withLock { _ -> Bool in
            let held = lockCount.load(ordering: .relaxed)
            guard held > 0 else { return false }
            lockCount.store(held - 1, ordering: .relaxed)
            if held == 1 { buffer.endAccess(writable: !isReadOnly) }
            return true
        }
    }

    deinit {
        guard let made = lockState.load(ordering: .acquiring) else { return }
        // Destroyed while locked (D3DKMTDestroyAllocation of a locked allocation): the window
        // closes now, so virgl still writes the CPU's changes back to the host.
        if lockCount.load(ordering: .relaxed) > 0 { buffer.endAccess(writable: !isReadOnly) }
        made.release()
    }

    /// The data offset and length a mapping of the allocation covers after the offset.
    ///
    /// - Throws: `STATUS_NOT_SUPPORTED` when the buffer holds less than the layout describes.
    private func mappedRange() throws(NTError) -> (offset: Int, length: Int) {
        guard layout.dataOffset <= buffer.size, size <= buffer.size - layout.dataOffset else {
            throw NTError(.notSupported, "the dma-buf holds \(buffer.size) bytes, fewer than the \(size) at offset "
                          + "\(layout.dataOffset) its layout describes: its contents are the GPU's (a virgl "
                          + "texture lives on the host with a page of guest memory) and cannot be mapped; "
                          + "read it back through the GPU, or allocate it through the library (GBM)")
        }
        return (Int(layout.dataOffset), Int(size))
    }

    /// Maps the allocation for CPU access; the mapping ends when the returned value is dropped.
    /// On a dma-buf the access is bracketed with `DMA_BUF_IOCTL_SYNC`. (``lock()`` keeps one
    /// mapping instead.)
    ///
    /// - Throws: `STATUS_ACCESS_DENIED` for a writable mapping of a read-only allocation
    ///   (``isReadOnly``); the status of a failing `mmap(2)` (`STATUS_NOT_SUPPORTED` when the
    ///   exporter cannot be mapped).
    public func map(writable: Bool = true) throws(NTError) -> AllocationMapping {
        guard !(writable && isReadOnly) else { throw NTError(.accessDenied, "the allocation was shared read-only") }
        let (offset, length) = try mappedRange()
        return try AllocationMapping(buffer: buffer, offset: offset, length: length, writable: writable)
    }
}

/// An allocation's ``Allocation/lock()`` mapping, made by its first lock and unmapped with the
/// allocation, and the mutex it is made under. A buffer whose CPU access window is shared
/// (``CPUAccessWindow/shared``: virgl's transfers) also opens and closes the window under that
/// mutex (a pthread mutex: the opening may wait in the kernel); other locks never take it once
/// the mapping exists.
final class CPULocks: Sendable {
    struct Mapping {
        var address: UnsafeMutableRawPointer
        var length: Int
    }
    /// The kept mapping (the whole buffer up to the allocation's end).
    let mapping = ForkSafeMutex<Mapping?>(nil)

    deinit {
        if let made = mapping.withLock({ $0 }) { Kernel.unmap(made.address, length: made.length) }
    }
}

/// A CPU mapping of an allocation. `~Copyable`: exactly one owner; dropping it unmaps.
public struct AllocationMapping: ~Copyable, @unchecked Sendable {
    /// The allocation's first byte (its layout's data offset into the buffer).
    public let baseAddress: UnsafeMutableRawPointer
    public let count: Int
    private let buffer: BufferObject
    private let writable: Bool
    private let mapped: UnsafeMutableRawPointer
    private let mappedLength: Int

    init(buffer: BufferObject, offset: Int, length: Int, writable: Bool) throws(NTError) {
        mappedLength = offset + length
        mapped = try buffer.map(length: mappedLength, writable: writable)
        baseAddress = mapped + offset
        self.count = length
        self.buffer = buffer
        self.writable = writable
    }

    /// The mapped bytes.
    public var bytes: UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(start: baseAddress, count: count) }

    deinit {
        buffer.unmap(mapped, length: mappedLength, writable: writable)
    }
}
