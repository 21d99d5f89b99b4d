
// Making, opening, exporting and importing sync objects, and async waits.

extension Device {
    /// Creates a sync object (`D3DKMTCreateSynchronizationObject2`).
    ///
    /// - Parameters:
    ///   - kind: a fence (`D3DDDI_FENCE`, `D3DDDI_MONITORED_FENCE`), or a GPU-queue mutex or
    ///     semaphore (which exist and can be shared, but which the CPU calls refuse).
    ///   - initialValue: the fence value it starts at (a mutex's initial state, a semaphore's
    ///     initial count).
    ///   - flags: `D3DDDI_SYNCHRONIZATIONOBJECT_FLAGS`, kept and carried to openers; with
    ///     `Shared | NtSecuritySharing` (the default) it can be shared as an NT handle; with
    ///     `Shared` alone it gets a global share handle (``SyncObject/globalHandle``), which any
    ///     process of the user opens with ``SyncObject/open(globalHandle:)``.
    /// - Throws: `STATUS_INVALID_PARAMETER` for `NtSecuritySharing` without `Shared`;
    ///   `STATUS_NOT_SUPPORTED` for a fence on a DRM device without timeline syncobjs (vgem); the
    ///   kernel's status otherwise.
    public func createSyncObject(_ kind: SyncObject.Kind, initialValue: UInt64 = 0,
                                 flags: UInt32 = SyncObject.Flags.ntShared) throws(NTError) -> SyncObject {
        let sharing = flags & SyncObject.Flags.ntShared
        guard sharing != SyncObject.Flags.ntSecuritySharing else {
            throw NTError(.invalidParameter, "NtSecuritySharing needs Shared")
        }
        let object: SyncObject
        if kind.isFence, let timeline = try backend.makeTimeline() {
            // From here the object owns the timeline and destroys it on every path.
            object = SyncObject(kind: kind, device: self, timeline: timeline,
                                fenceState: kind == .monitoredFence ? try FenceState.create(initialValue: 0) : nil,
                                flags: flags)
            try object.signal(initialValue)
        } else {
            object = SyncObject(kind: kind, device: self, timeline: nil,
                                fenceState: try FenceState.create(initialValue: initialValue), flags: flags)
        }
        if sharing == SyncObject.Flags.shared {
            var builder = SharePackageBuilder(contents: .syncObject, access: SyncObjectAccess.allAccess,
                                              adapterLUID: adapter.info.luid)
            try builder.add(object)
            let share = try GlobalShares.create(.syncObject, serving: try builder.write())
            object.global.set(share)
        }
        return object
    }

    /// Takes a DRM timeline syncobj made elsewhere (a Vulkan timeline semaphore exported as an
    /// opaque fd) as a `D3DDDI_FENCE`. The library imports `syncobj`; the caller keeps and
    /// closes its own descriptor.
    ///
    /// - Throws: `STATUS_NOT_SUPPORTED` on the software adapter or a device without timelines;
    ///   `STATUS_INVALID_PARAMETER` when `syncobj` is not a syncobj descriptor.
    public func importSyncObject(syncobj: Int32) throws(NTError) -> SyncObject {
        SyncObject(kind: .fence, device: self, timeline: try backend.importTimeline(syncobj), fenceState: nil,
                   flags: SyncObject.Flags.ntShared)
    }

    /// Makes a `D3DDDI_FENCE` that reaches value 1 when a sync_file's fence signals (a GPU job's
    /// out-fence, or `DMA_BUF_IOCTL_EXPORT_SYNC_FILE`). The caller keeps and closes `syncFile`.
    ///
    /// - Throws: `STATUS_NOT_SUPPORTED` on the software adapter or a device without timelines;
    ///   `STATUS_INVALID_PARAMETER` when `syncFile` is not a sync_file.
    public func importSyncObject(syncFile: Int32) throws(NTError) -> SyncObject {
        SyncObject(kind: .fence, device: self, timeline: try backend.importSyncFile(syncFile), fenceState: nil,
                   flags: SyncObject.Flags.ntShared)
    }

    /// Opens the sync object a shared handle holds on this device
    /// (`D3DKMTOpenSyncObjectFromNtHandle2`).
    ///
    /// - Throws: `STATUS_INVALID_PARAMETER` for a handle without a sync object;
    ///   `STATUS_NOT_SUPPORTED` when this device cannot take a DRM syncobj (software adapter, vgem).
    public func openSyncObject(_ handle: borrowing SharedHandle) throws(NTError) -> SyncObject {
        let opened = try SharedPackageReader.open(handle.descriptor.rawValue)
        guard let record = opened.package.syncObject else {
            throw NTError(.invalidParameter, "the handle holds no sync object")
        }
        return try openSyncObject(record, opened.descriptors, access: opened.package.syncObjectAccess)
    }

    /// - Parameter access: what the opener may do (`D3DDDI_SYNC_OBJECT_*`).
    func openSyncObject(_ record: SharePackage.SyncObjectRecord, _ descriptors: ReceivedDescriptors,
                        access: UInt32) throws(NTError) -> SyncObject {
        guard let kind = SyncObject.Kind(rawValue: record.type) else {
            throw NTError(.notSupported, "sync object type \(record.type)")
        }
        let fenceState = record.stateDescriptorIndex == SharePackage.noDescriptor
            ? nil : try FenceState.open(descriptors.take(Int(record.stateDescriptorIndex)))
        guard record.syncobjDescriptorIndex != SharePackage.noDescriptor else {
            guard let fenceState else { throw NTError(.invalidParameter, "a software sync object without its state") }
            return SyncObject(kind: kind, device: self, timeline: nil, fenceState: fenceState, flags: record.flags,
                              access: access)
        }
        let timeline = try backend.importTimeline(descriptors.peek(Int(record.syncobjDescriptorIndex)))
        return SyncObject(kind: kind, device: self, timeline: timeline, fenceState: fenceState, flags: record.flags,
                          access: access)
    }
}

extension SyncObject {
    /// Opens the sync object a shared handle holds on a device of the adapter that shared it
    /// (`D3DKMTOpenSyncObjectFromNtHandle`, which names no device).
    ///
    /// - Throws: as ``Device/openSyncObject(_:)``; `STATUS_INVALID_PARAMETER` when the sharer's
    ///   adapter is not on this machine.
    public static func open(_ handle: borrowing SharedHandle) throws(NTError) -> SyncObject {
        let opened = try SharedPackageReader.open(handle.descriptor.rawValue)
        guard let record = opened.package.syncObject else {
            throw NTError(.invalidParameter, "the handle holds no sync object")
        }
        let device = try Adapter.open(luid: opened.package.adapterLUID).makeDevice()
        return try device.openSyncObject(record, opened.descriptors, access: opened.package.syncObjectAccess)
    }

    /// Opens the sync object a global share handle names (`D3DKMTOpenSynchronizationObject`), on a
    /// device of the adapter that made it. The object keeps the value alive (this process serves
    /// it too) until it goes; it cannot be shared by NT handle, as on Windows.
    ///
    /// - Throws: `STATUS_INVALID_PARAMETER` when `value` is not a live global handle of a sync
    ///   object of this user, or its adapter is not on this machine.
    public static func open(globalHandle value: UInt32) throws(NTError) -> SyncObject {
        let (object, share) = try GlobalShares.open(value, kind: .syncObject) { (handle) throws(NTError) in
            try open(handle)
        }
        object.global.set(share)
        return object
    }

    /// Shares the sync object alone as a new NT handle (`D3DKMTShareObjects` with one sync object).
    ///
    /// - Parameters:
    ///   - access: `dwDesiredAccess` (``SyncObjectAccess``): openers without `SIGNAL` cannot
    ///     signal, without `WAIT` cannot wait.
    ///   - name: a name in the caller's namespace, resolvable with
    ///     ``SharedHandle/openSyncObject(name:access:)`` while the returned handle lives.
    public func share(access: UInt32 = SyncObjectAccess.allAccess,
                      name: String? = nil) throws(NTError) -> SharedHandle {
        guard isShareable else {
            throw NTError(.invalidParameter, "the sync object was not created with Shared and NtSecuritySharing")
        }
        var builder = SharePackageBuilder(contents: .syncObject, access: access, adapterLUID: device.adapter.info.luid)
        try builder.add(self)
        return try builder.write(name: name)
    }

    /// A new descriptor for the DRM timeline syncobj, for Vulkan (`VK_EXTERNAL_SEMAPHORE_HANDLE_TYPE_OPAQUE_FD`
    /// timeline semaphore) or another DRM device. The caller owns it.
    ///
    /// - Throws: `STATUS_NOT_SUPPORTED` for a software sync object.
    public func exportSyncobj() throws(NTError) -> FileDescriptor {
        try require(SyncObjectAccess.wait | SyncObjectAccess.signal, "export the syncobj of")
        guard let timeline else { throw NTError(.notSupported, "a software sync object has no DRM syncobj") }
        return try timeline.exportDescriptor()
    }

    /// A sync_file that signals when the fence reaches `value`, for APIs that take one (a
    /// KMS in-fence, `VK_EXTERNAL_SEMAPHORE_HANDLE_TYPE_SYNC_FD`). The caller owns it.
    ///
    /// - Throws: `STATUS_NOT_SUPPORTED` for a software sync object; `STATUS_INVALID_PARAMETER`
    ///   when nothing has been submitted for `value` yet (the kernel has no fence for it).
    public func exportSyncFile(value: UInt64) throws(NTError) -> FileDescriptor {
        try require(SyncObjectAccess.wait, "wait for")
        guard let timeline else { throw NTError(.notSupported, "a software sync object has no DRM fence") }
        return try timeline.exportSyncFile(point: value)
    }

    /// Signals `value` when GPU work finishes (the Linux counterpart of
    /// `D3DKMTSignalSynchronizationObjectFromGpu`): `syncFile` is that work's fence (an EGL
    /// `EGL_ANDROID_native_fence_sync` fd, a Vulkan `SYNC_FD` semaphore export, an execbuffer's out
    /// fence), and the fence reaches `value` when it signals; the CPU does not wait. CPU waiters,
    /// in any process, wake then. The caller keeps and closes `syncFile`.
    ///
    /// - Throws: `STATUS_NOT_SUPPORTED` for a software sync object (it has no kernel timeline);
    ///   `STATUS_INVALID_PARAMETER` when `value` is not above the values already signalled or
    ///   submitted, or `syncFile` is not a sync_file; `STATUS_ACCESS_DENIED` when this open may not
    ///   signal.
    public func signal(_ value: UInt64, whenSignalled syncFile: Int32) throws(NTError) {
        try requireFence()
        try require(SyncObjectAccess.signal, "signal")
        guard let timeline else {
            throw NTError(.notSupported, "a software sync object has no kernel timeline a GPU fence can signal; "
                                         + "create it on a DRM adapter")
        }
        guard syncFile >= 0 else { throw NTError(.invalidHandle, "sync_file \(syncFile) is not a descriptor") }
        try timeline.signal(value, whenSignalled: syncFile)
    }

    /// Makes `eventfd` readable once `objects` reach their values (all, or any one), and returns
    /// at once: the `hAsyncEvent` form of `D3DKMTWaitForSynchronizationObjectFromCpu`.
    ///
    /// The process's one event thread serves every such wait (``AsyncWait``): DRM timelines
    /// through `DRM_IOCTL_SYNCOBJ_EVENTFD`, software fences by a look every 4 ms (at once when
    /// this process signals). Destroying any of the objects cancels the wait: `eventfd` is then
    /// never signalled by it, and everything it held is released. The caller keeps and closes
    /// its own `eventfd`.
    ///
    /// - Throws: `STATUS_INVALID_PARAMETER` when `eventfd` is not an eventfd or the list is empty;
    ///   the kernel's status when the wait cannot be registered.
    public static func notify(eventfd: Int32, when objects: [(object: SyncObject, value: UInt64)],
                              all: Bool = true) throws(NTError) {
        try AsyncWait.checkEventfd(eventfd)
        guard let objects = try pending(objects, all: all) else {
            try AsyncWait.signal(eventfd)
            return
        }
        try AsyncWait.start(signalling: eventfd, for: objects, all: all)
    }

    /// How many async waits are pending on this object (for tests and inspection).
    public var pendingAsyncWaits: Int { asyncWaits.count }
}

/// `dwDesiredAccess` values for shared sync objects (Microsoft's constants).
public enum SyncObjectAccess {
    /// `D3DDDI_SYNC_OBJECT_WAIT`
    public static let wait: UInt32 = 0x0001
    /// `D3DDDI_SYNC_OBJECT_SIGNAL`
    public static let signal: UInt32 = 0x0002
    /// `D3DDDI_SYNC_OBJECT_ALL_ACCESS`
    public static let allAccess: UInt32 = 0x001F_0003

    /// `access` with its generic rights replaced by what they mean for a shared sync object
    /// (Windows' generic mapping of `DxgkSharedSyncObject`): `GENERIC_READ` = `READ_CONTROL` +
    /// wait, `GENERIC_WRITE` = `READ_CONTROL` + signal, `GENERIC_EXECUTE` = `READ_CONTROL` +
    /// `SYNCHRONIZE`, `GENERIC_ALL` = ``allAccess``.
    public static func mapped(_ access: UInt32) -> UInt32 {
        GenericRights.map(access, read: 0x0002_0001, write: 0x0002_0002, execute: 0x0012_0000, all: allAccess)
    }
}

/// The four generic rights of an access mask (`GENERIC_*`).
enum GenericRights {
    static let read: UInt32 = 0x8000_0000
    static let write: UInt32 = 0x4000_0000
    static let execute: UInt32 = 0x2000_0000
    static let all: UInt32 = 0x1000_0000

    /// `access` without its generic bits, plus what each one present maps to.
    static func map(_ access: UInt32, read: UInt32, write: UInt32, execute: UInt32, all: UInt32) -> UInt32 {
        var mapped = access & ~(Self.read | Self.write | Self.execute | Self.all)
        if access & Self.read != 0 { mapped |= read }
        if access & Self.write != 0 { mapped |= write }
        if access & Self.execute != 0 { mapped |= execute }
        if access & Self.all != 0 { mapped |= all }
        return mapped
    }
}
