import Synchronization

/// A keyed mutex (`D3DKMTCreateKeyedMutex2`): hands a shared resource back and forth between
/// processes by key.
///
/// A new mutex is released with its initial key. ``acquire(key:timeout:)`` succeeds only when the
/// mutex is free and was last released with that key; ``release(key:fenceValue:runtimeData:)``
/// hands it on. An owner that dies, or drops its mutex while owning it, abandons the mutex: every
/// later acquire and release throws `STATUS_ABANDONED`.
///
/// The CPU protocol lives in a shared memfd page (see ``KeyedMutexState``): no system call when
/// the mutex is free, one futex wake per contended handoff. For the GPU, the mutex carries a DRM
/// timeline syncobj (when the machine has a device with timelines): the fence value a release
/// records is the point the releaser's GPU work signals on it, and the value an acquire returns is
/// the point the acquirer's GPU work waits for, so GPU work orders itself without the CPU waiting.
///
/// Each `KeyedMutex` value is one open of the mutex, like a `D3DKMT_HANDLE`: ownership belongs to
/// the value that acquired it, and another value (in this or any process) cannot release it.
public final class KeyedMutex: Sendable {
    let state: KeyedMutexState
    /// The DRM timeline syncobj fence values refer to, when there is one.
    let timeline: FileDescriptor?

    /// The number of ``timeline``, valid while the mutex lives.
    var timelineNumber: Int32? {
        switch timeline {
        case .some(let descriptor): return descriptor.rawValue
        case .none: return nil
        }
    }
    /// The private runtime data the mutex was created with (`pPrivateRuntimeData`).
    public let runtimeData: [UInt8]
    /// Created with `NtSecuritySharing`, or opened from a shared handle: it can be shared with
    /// its resource and sync object. Windows shares no other keyed mutex by NT handle.
    public let isShareable: Bool
    /// This open owns the mutex (it acquired it and has not released it). An atomic, not a lock:
    /// the shared state decides every race, this only remembers what this open did.
    private let owning = Atomic<Bool>(false)
    /// This process's reference to the mutex's global share handle, when it has one.
    let global = GlobalReference()

    /// The global share handle (`hSharedHandle`): set for a mutex created with a global handle
    /// (without `NtSecuritySharing`) or opened by one; nil otherwise.
    public var globalHandle: UInt32? { global.value }

    /// The devices that keep an imported copy of the timeline for this open
    /// (``kernelTimeline(on:)``).
    private let timelineDevices = ForkSafeMutex<[WeakDevice]>([])

    init(state: KeyedMutexState, timeline: consuming FileDescriptor?, runtimeData: [UInt8], shareable: Bool = true) {
        self.state = state
        self.timeline = timeline
        self.runtimeData = runtimeData
        self.isShareable = shareable
    }

    /// Creates a keyed mutex released with `initialKey` (`D3DKMTCreateKeyedMutex2`).
    ///
    /// - Parameters:
    ///   - initialKey: `InitialValue`, the key the first acquire must ask for.
    ///   - runtimeData: `pPrivateRuntimeData`; its size is also the most private data a release
    ///     can store (at most 65,472 bytes).
    ///   - shareable: `NtSecuritySharing`: the mutex can be shared by NT handle with its resource.
    ///   - globalShare: the mutex gets a global share handle (``globalHandle``), as
    ///     `D3DKMTCreateKeyedMutex(2)` without `NtSecuritySharing` gives one on Windows, which any
    ///     process of the user opens with ``open(globalHandle:)`` while some process holds it.
    ///   - device: where to create the timeline syncobj; nil picks the first DRM adapter with
    ///     timeline syncobjs, and on a machine without one the mutex has no timeline (fence
    ///     values are still recorded and returned).
    /// - Throws: `STATUS_INVALID_PARAMETER` for oversized data; `STATUS_NOT_SUPPORTED` when
    ///   `device` has no timeline syncobjs; the kernel's status when memory runs out.
    public static func create(initialKey: UInt64 = 0, runtimeData: [UInt8] = [], shareable: Bool = true,
                              globalShare: Bool = false,
                              timelineOn device: Device? = nil) throws(NTError) -> KeyedMutex {
        guard !(shareable && globalShare) else {
            throw NTError(.invalidParameter, "a keyed mutex is shared by NT handle or by global handle, not both")
        }
        let state = try KeyedMutexState.create(initialKey: initialKey, data: runtimeData)
        let timeline: FileDescriptor?
        if let device {
            timeline = try device.backend.makeTimelineDescriptor()
        } else {
            timeline = try defaultTimeline()
        }
        let mutex = KeyedMutex(state: state, timeline: timeline, runtimeData: runtimeData, shareable: shareable)
        if globalShare {
            var builder = SharePackageBuilder(contents: .keyedMutex, access: SharedAccess.allAccess,
                                              adapterLUID: timelineAdapter?.info.luid ?? LUID(lowPart: 0, highPart: 0))
            builder.add(mutex)
            let share = try GlobalShares.create(.keyedMutex, serving: try builder.write())
            mutex.global.set(share)
        }
        return mutex
    }

    /// Opens the keyed mutex a global share handle names (`D3DKMTOpenKeyedMutex(2)`): a new open,
    /// not owning the mutex, that keeps the value alive (this process serves it too) until it goes.
    ///
    /// - Throws: `STATUS_INVALID_PARAMETER` when `value` is not a live global handle of a keyed
    ///   mutex of this user.
    public static func open(globalHandle value: UInt32) throws(NTError) -> KeyedMutex {
        let (mutex, share) = try GlobalShares.open(value, kind: .keyedMutex) { (handle) throws(NTError) in
            let opened = try SharedPackageReader.open(handle.descriptor.rawValue)
            guard let record = opened.package.keyedMutex else {
                throw NTError(.invalidParameter, "the handle holds no keyed mutex")
            }
            return try open(record, opened.descriptors, shareable: false)
        }
        mutex.global.set(share)
        return mutex
    }

    /// Opens the keyed mutex a shared handle holds (`D3DKMTOpenKeyedMutexFromNtHandle`): a new
    /// open, not owning the mutex.
    ///
    /// - Throws: `STATUS_INVALID_PARAMETER` when the handle holds no keyed mutex or is malformed.
    public static func open(_ handle: borrowing SharedHandle) throws(NTError) -> KeyedMutex {
        let opened = try SharedPackageReader.open(handle.descriptor.rawValue)
        guard let record = opened.package.keyedMutex else {
            throw NTError(.invalidParameter, "the handle holds no keyed mutex")
        }
        return try open(record, opened.descriptors)
    }

    static func open(_ record: SharePackage.KeyedMutexRecord, _ descriptors: ReceivedDescriptors,
                     shareable: Bool = true) throws(NTError) -> KeyedMutex {
        let state = try KeyedMutexState.open(descriptors.take(Int(record.stateDescriptorIndex)))
        let timeline: FileDescriptor? = record.syncobjDescriptorIndex == SharePackage.noDescriptor
            ? nil : descriptors.take(Int(record.syncobjDescriptorIndex))
        return KeyedMutex(state: state, timeline: timeline, runtimeData: record.runtimeData, shareable: shareable)
    }

    /// What a successful acquire returns.
    public struct Acquisition: Hashable, Sendable {
        /// The fence value of the last release: GPU work on the resource waits for this point on
        /// the mutex's timeline before it starts.
        public var fenceValue: UInt64
        /// The private runtime data the last release stored.
        public var runtimeData: [UInt8]
    }

    /// Acquires the mutex once it is free and was last released with `key`
    /// (`D3DKMTAcquireKeyedMutex2`).
    ///
    /// - Parameter timeout: nil waits for ever; `.zero` only tries.
    /// - Throws: `STATUS_TIMEOUT` when the time runs out; `STATUS_ABANDONED` once an owner died or
    ///   dropped the mutex while owning it; `STATUS_INVALID_PARAMETER` when this open already owns it.
    public func acquire(key: UInt64, timeout: Duration? = nil) throws(NTError) -> Acquisition {
        try acquire(key: key, until: .after(timeout))
    }

    /// ``acquire(key:timeout:)`` with an NT timeout as `D3DKMT_ACQUIREKEYEDMUTEX2.pTimeout` holds
    /// it: nil waits for ever, a negative value is relative in 100 ns units, a positive one is an
    /// absolute Windows system time (100 ns units since 1601), 0 only tries.
    public func acquire(key: UInt64, ntTimeout: Int64?) throws(NTError) -> Acquisition {
        try acquire(key: key, until: .nt(ntTimeout))
    }

    /// ``acquire(key:timeout:)`` with an absolute `CLOCK_MONOTONIC` deadline (the C ABI's NT
    /// timeouts become one once).
    func acquire(key: UInt64, until deadline: Deadline) throws(NTError) -> Acquisition {
        guard !owning.load(ordering: .relaxed) else {
            throw NTError(.invalidParameter, "this keyed mutex is already acquired")
        }
        switch state.acquire(key: key, until: deadline) {
        case .acquired(let fenceValue):
            owning.store(true, ordering: .relaxed)
            return Acquisition(fenceValue: fenceValue, runtimeData: state.loadData())
        case .timedOut:
            throw NTError(.timeout, "keyed mutex not released with key \(key) in time")
        case .abandoned:
            throw NTError(.abandoned, "keyed mutex was abandoned by an owner that died or destroyed it")
        }
    }

    /// The most private runtime data a keyed mutex can be created with (65,472 bytes).
    public static let maximumRuntimeDataSize = KeyedMutexState.maximumDataSize

    /// The most private data a release can carry: the size of the data the mutex was created with
    /// (`PrivateRuntimeDataSize` of `D3DKMTCreateKeyedMutex2`).
    public var runtimeDataCapacity: Int { Int(state.capacity) }

    /// Releases the mutex to `key` (`D3DKMTReleaseKeyedMutex2`).
    ///
    /// - Parameters:
    ///   - fenceValue: the point the releaser's GPU work signals on the timeline when it is done
    ///     with the resource; the next acquire returns it.
    ///   - runtimeData: private data for the next owner, at most ``runtimeData``'s size.
    /// - Throws: `STATUS_ABANDONED` once the mutex was abandoned (by anyone);
    ///   `STATUS_INVALID_PARAMETER` when this open does not own the mutex or the data is too large.
    public func release(key: UInt64, fenceValue: UInt64 = 0, runtimeData data: [UInt8] = []) throws(NTError) {
        guard data.count <= Int(state.capacity) else {
            throw NTError(.invalidParameter, "\(data.count) bytes of private data; "
                                             + "this keyed mutex holds \(state.capacity)")
        }
        guard !state.isAbandoned else {
            owning.store(false, ordering: .relaxed)
            throw NTError(.abandoned, "keyed mutex was abandoned")
        }
        // Taking the ownership first makes one of two racing releases of this open the releaser.
        guard owning.compareExchange(expected: true, desired: false, ordering: .relaxed).exchanged else {
            throw NTError(.invalidParameter, "the keyed mutex is not owned by this open")
        }
        switch state.release(key: key, fenceValue: fenceValue, data: data) {
        case .released:
            return
        case .abandoned:
            throw NTError(.abandoned, "keyed mutex was abandoned")
        case .notOwner:
            throw NTError(.invalidParameter, "the keyed mutex is not owned by this process")
        }
    }

    /// Whether the mutex has been abandoned.
    public var isAbandoned: Bool { state.isAbandoned }

    /// A new descriptor for the mutex's DRM timeline syncobj, for Vulkan (an opaque-fd timeline
    /// semaphore) or `drmSyncobjFDToHandle`. The caller owns it.
    ///
    /// - Throws: `STATUS_NOT_SUPPORTED` when the mutex has no timeline (no DRM device with
    ///   timelines where it was created).
    public func exportTimeline() throws(NTError) -> FileDescriptor {
        switch timeline {
        case .some(let descriptor):
            do { return try descriptor.duplicate() } catch { throw error.nt("duplicating a keyed mutex timeline") }
        case .none:
            throw NTError(.notSupported, "this keyed mutex has no DRM timeline syncobj")
        }
    }

    /// Puts GPU work's fence at `fenceValue` on the mutex's timeline: the value a
    /// ``release(key:fenceValue:runtimeData:)`` then hands on signals when that work finishes, and
    /// the CPU never waits. `syncFile` is the work's fence (EGL native fence fd, Vulkan `SYNC_FD`);
    /// the caller keeps it. `device` is a DRM device the timeline is used through.
    ///
    /// - Throws: `STATUS_NOT_SUPPORTED` when the mutex has no timeline or `device` cannot take
    ///   DRM syncobjs (the software adapter); `STATUS_INVALID_PARAMETER` when `fenceValue` is not
    ///   above the values already on the timeline, or `syncFile` is not a sync_file.
    public func signal(fenceValue: UInt64, whenSignalled syncFile: Int32, on device: Device) throws(NTError) {
        guard syncFile >= 0 else { throw NTError(.invalidHandle, "sync_file \(syncFile) is not a descriptor") }
        try kernelTimeline(on: device).signal(fenceValue, whenSignalled: syncFile)
    }

    /// A sync_file that signals when the mutex's timeline reaches `fenceValue` (what an acquire
    /// returned), for the acquirer's GPU work to wait on (EGL `EGL_SYNC_NATIVE_FENCE_ANDROID` +
    /// `eglWaitSyncKHR`, Vulkan `SYNC_FD` import). The caller owns it.
    ///
    /// - Throws: as ``signal(fenceValue:whenSignalled:on:)``; `STATUS_INVALID_PARAMETER` when
    ///   nothing was submitted for `fenceValue` yet.
    public func exportSyncFile(fenceValue: UInt64, on device: Device) throws(NTError) -> FileDescriptor {
        try kernelTimeline(on: device).exportSyncFile(point: fenceValue)
    }

    /// The mutex's timeline on `device`: imported on first use and kept by the device for this
    /// open (a syncobj handle on its render node, no descriptor) until either goes, so a GPU handoff
    /// pays no import. The device holds the timeline; this open holds the device weakly and removes
    /// its entry when it goes first.
    private func kernelTimeline(on device: Device) throws(NTError) -> any KernelTimeline {
        guard let number = timelineNumber else {
            throw NTError(.notSupported, "this keyed mutex has no DRM timeline syncobj")
        }
        let key = ObjectIdentifier(self)
        if let kept = device.keyedMutexTimelines.withLock({ $0[key] }) { return kept }
        let timeline = try device.backend.importTimeline(number)
        device.keyedMutexTimelines.withLock { $0[key] = timeline }
        timelineDevices.withLock { devices in
            if !devices.contains(where: { $0.device === device }) { devices.append(WeakDevice(device: device)) }
        }
        return timeline
    }

    deinit {
        let key = ObjectIdentifier(self)
        for entry in timelineDevices.withLock({ $0 }) {
            _ = entry.device?.keyedMutexTimelines.withLock { $0.removeValue(forKey: key) }
        }
        // Destroyed while owning it (D3DKMTDestroyKeyedMutex, or the last reference dropped):
        // the mutex is abandoned, as on Windows.
        if owning.load(ordering: .relaxed) { state.abandonHeld() }
    }

    /// The adapter keyed mutexes take their timeline from when created without a device.
    private static let timelineAdapter: Adapter? = Adapter.enumerate().first {
        $0.info.capabilities.contains(.timelineSyncObject)
    }

    private static func defaultTimeline() throws(NTError) -> FileDescriptor? {
        guard let adapter = timelineAdapter else { return nil }
        return try adapter.makeDevice().backend.makeTimelineDescriptor()
    }
}

/// A device a keyed mutex open does not keep alive.
struct WeakDevice {
    weak var device: Device?
}
