import Synchronization

/// A sync object (`D3DKMTCreateSynchronizationObject2`): a 64-bit fence value that only grows,
/// signalled from the CPU (or a GPU) and waited on from the CPU.
///
/// On a DRM device it is a DRM timeline syncobj: the fence value is the timeline's point, so GPU
/// work and Vulkan timeline semaphores (an imported syncobj descriptor) signal and wait on it
/// directly. On the software adapter it is a fence value in shared memory with futex wake-ups.
/// A monitored fence also has a CPU-readable copy of its value (`FenceValueCPUVirtualAddress`)
/// that is never ahead of the real value.
public final class SyncObject: Sendable {
    /// The sync object types this library implements (`D3DDDI_SYNCHRONIZATIONOBJECT_TYPE`).
    public enum Kind: UInt32, Sendable {
        /// `D3DDDI_SYNCHRONIZATION_MUTEX`: a GPU-queue mutex. It can be created, shared, opened
        /// and destroyed, but only GPU contexts signal and wait on it on Windows, and this
        /// library has none: the CPU calls refuse it (`STATUS_INVALID_PARAMETER`).
        case mutex = 1
        /// `D3DDDI_SEMAPHORE`: a GPU-queue semaphore; as ``mutex``.
        case semaphore = 2
        /// `D3DDDI_FENCE`
        case fence = 3
        /// `D3DDDI_MONITORED_FENCE`
        case monitoredFence = 5

        /// A fence type: one with a value the CPU signals and waits for.
        public var isFence: Bool { self == .fence || self == .monitoredFence }
    }

    /// `D3DDDI_SYNCHRONIZATIONOBJECT_FLAGS` bits the library reads.
    public enum Flags {
        /// `Shared`
        public static let shared: UInt32 = 0x1
        /// `NtSecuritySharing`
        public static let ntSecuritySharing: UInt32 = 0x2
        /// `Shared | NtSecuritySharing`: what a sync object needs to be shared as an NT handle.
        public static let ntShared: UInt32 = shared | ntSecuritySharing
    }

    public let kind: Kind
    /// The device it was created or opened on.
    public let device: Device
    /// The kernel timeline the backend keeps for the fence (a DRM timeline syncobj); nil when the
    /// fence is its shared value page alone (the software adapter, mutexes, semaphores).
    let timeline: (any KernelTimeline)?
    /// The shared value page: the fence itself in software, the CPU-visible mirror of a DRM
    /// monitored fence, nil for a DRM `D3DDDI_FENCE`.
    let fenceState: FenceState?
    /// `D3DDDI_SYNCHRONIZATIONOBJECT_FLAGS` as created, carried to openers.
    public let flags: UInt32

    /// Created with `Shared` and `NtSecuritySharing`, or opened from a shared handle (which
    /// only such objects have): ``share(access:name:)`` works. Windows refuses the others.
    public var isShareable: Bool { flags & Flags.ntShared == Flags.ntShared }

    /// What this open may do (`D3DDDI_SYNC_OBJECT_WAIT` / `_SIGNAL`): all for the creator and
    /// for a sync object shared with its resource; a sync object shared alone grants the
    /// `dwDesiredAccess` of its share.
    public let access: UInt32

    /// This process's reference to the object's global share handle, when it has one.
    let global = GlobalReference()

    /// The global share handle (`SharedHandle` of `D3DKMTCreateSynchronizationObject2` with
    /// `Shared` alone): set for an object created that way or opened by one; nil otherwise.
    public var globalHandle: UInt32? { global.value }

    /// The async waits (``notify(eventfd:when:all:)``) pending on this object, cancelled when it
    /// is destroyed.
    let asyncWaits = AsyncWaitRegistry()

    deinit { asyncWaits.cancelAll() }

    init(kind: Kind, device: Device, timeline: (any KernelTimeline)?, fenceState: FenceState?, flags: UInt32,
         access: UInt32 = SyncObjectAccess.allAccess) {
        self.access = access
        self.kind = kind
        self.device = device
        self.timeline = timeline
        self.fenceState = fenceState
        self.flags = flags
    }

    /// `FenceValueCPUVirtualAddress` of a monitored fence: a `UInt64` in shared memory holding a
    /// value the fence has reached (never ahead of it). Valid while this object lives. Nil for a
    /// `D3DDDI_FENCE`.
    public var fenceValueAddress: UnsafePointer<UInt64>? {
        guard kind == .monitoredFence, let fenceState else { return nil }
        return UnsafePointer(fenceState.valueAddress.assumingMemoryBound(to: UInt64.self))
    }

    /// The value the fence has reached (`DRM_IOCTL_SYNCOBJ_QUERY` on DRM).
    public func currentValue() throws(NTError) -> UInt64 {
        guard let timeline else { return fenceState!.value }
        let value = try timeline.currentPoint()
        fenceState?.advance(to: value)
        return value
    }

    /// Signals `value` from the CPU (`D3DKMTSignalSynchronizationObjectFromCpu`): the fence
    /// reaches `value` and every waiter for it or less wakes. Signalling the value it already has
    /// does nothing.
    ///
    /// - Throws: `STATUS_INVALID_PARAMETER` when `value` is below the current value (a fence
    ///   never goes back); `STATUS_ACCESS_DENIED` when this open may not signal.
    public func signal(_ value: UInt64) throws(NTError) {
        try requireFence()
        try require(SyncObjectAccess.signal, "signal")
        guard let timeline else {
            // A software fence: its page is the fence.
            guard let fenceState else { return }
            let current = fenceState.value
            guard value > current else { return try Self.refuse(value, below: current) }
            fenceState.advance(to: value)
            AsyncWait.softwareFenceSignalled()
            return
        }
        let current = try timeline.currentPoint()
        guard value > current else {
            fenceState?.advance(to: current)
            return try Self.refuse(value, below: current)
        }
        try timeline.signal(value)
        fenceState?.advance(to: value)
    }

    /// Refuses a signal of `value` below the fence's `current` value; a signal of the value the
    /// fence has does nothing.
    private static func refuse(_ value: UInt64, below current: UInt64) throws(NTError) {
        guard value >= current else {
            throw NTError(.invalidParameter, "fence value \(value) is below the current \(current)")
        }
    }

    /// Waits from the CPU until `objects` reach their values, all of them or any one
    /// (`D3DKMTWaitForSynchronizationObjectFromCpu`).
    ///
    /// - Parameters:
    ///   - objects: each object with the value to wait for; on one device.
    ///   - all: wait-all (true) or wait-any.
    ///   - timeout: nil waits for ever.
    /// - Throws: `STATUS_TIMEOUT`; `STATUS_ACCESS_DENIED` for an object opened without
    ///   `D3DDDI_SYNC_OBJECT_WAIT`; `STATUS_INVALID_PARAMETER` for an empty list or objects of
    ///   different devices; `STATUS_NOT_SUPPORTED` for a wait-any that mixes DRM and software
    ///   sync objects.
    public static func wait(for objects: [(object: SyncObject, value: UInt64)], all: Bool = true,
                            timeout: Duration? = nil) throws(NTError) {
        try wait(for: objects, all: all, until: .after(timeout))
    }

    /// Waits from the CPU until this sync object reaches `value`: the one-object form of
    /// ``wait(for:all:timeout:)`` (`D3DKMTWaitForSynchronizationObjectFromCpu` with `ObjectCount`
    /// 1), without the list.
    ///
    /// - Parameter timeout: nil waits for ever.
    /// - Throws: `STATUS_TIMEOUT`; `STATUS_ACCESS_DENIED` for an object opened without
    ///   `D3DDDI_SYNC_OBJECT_WAIT`; `STATUS_INVALID_PARAMETER` for a mutex or semaphore.
    public func wait(for value: UInt64, timeout: Duration? = nil) throws(NTError) {
        try wait(for: value, until: .after(timeout))
    }

    func wait(for value: UInt64, until deadline: Deadline) throws(NTError) {
        try requireFence()
        try require(SyncObjectAccess.wait, "wait for")
        // Straight to the software fence's futex or the one DRM timeline: nothing allocated.
        let reached: Bool
        if let timeline {
            // Value 0 is reached by every fence (a timeline with no point has no fence to wait for).
            guard value != 0 else { return }
            reached = try timeline.wait(for: value, until: deadline)
            if reached { fenceState?.advance(to: value) }
        } else if let fenceState {
            reached = fenceState.wait(for: value, until: deadline)
        } else {
            return try Self.wait(for: [(self, value)], all: true, until: deadline)
        }
        guard reached else { throw NTError(.timeout, "sync object not signalled in time") }
    }

    static func wait(for objects: [(object: SyncObject, value: UInt64)], all: Bool,
                     until deadline: Deadline) throws(NTError) {
        if objects.count == 1, objects[0].object.timeline != nil || objects[0].object.fenceState != nil {
            return try objects[0].object.wait(for: objects[0].value, until: deadline)
        }
        guard let objects = try pending(objects, all: all) else { return }
        let kernel = timelineEntries(objects)
        var satisfied: Bool
        if kernel.count == objects.count {
            satisfied = try kernel[0].timeline.wait(kernel, all: all, until: deadline)
            if satisfied {
                for (object, value) in objects where all { object.fenceState?.advance(to: value) }
            }
        } else if kernel.isEmpty {
            satisfied = try FenceState.wait(for: objects.map { ($0.object.fenceState!, $0.value) }, all: all,
                                            until: deadline)
        } else if all {
            // Fences only grow: waiting for each in turn is waiting for all.
            satisfied = true
            for entry in objects where satisfied {
                do { try wait(for: [entry], all: true, until: deadline) } catch {
                    guard error.status == .timeout else { throw error }
                    satisfied = false
                }
            }
        } else {
            throw NTError(.notSupported, "a wait-any cannot mix DRM and software sync objects")
        }
        guard satisfied else { throw NTError(.timeout, "sync objects not signalled in time") }
    }

    /// Checks a wait's list (not empty, one device, the right to wait) and drops what is reached
    /// already: value 0, which every fence has (a DRM timeline with no point yet has no fence the
    /// kernel could wait for).
    ///
    /// - Returns: the entries still to wait for, or nil when the wait is satisfied now.
    static func pending(_ objects: [(object: SyncObject, value: UInt64)],
                        all: Bool) throws(NTError) -> [(object: SyncObject, value: UInt64)]? {
        guard let first = objects.first else { throw NTError(.invalidParameter, "no sync objects to wait for") }
        guard objects.allSatisfy({ $0.object.device === first.object.device }) else {
            throw NTError(.invalidParameter, "sync objects of different devices")
        }
        for (object, _) in objects {
            try object.requireFence()
            try object.require(SyncObjectAccess.wait, "wait for")
        }
        guard objects.contains(where: { $0.value == 0 }) else { return objects }
        let rest = objects.filter { $0.value != 0 }
        return rest.isEmpty || !all ? nil : rest
    }

    /// The kernel timeline and point of each entry that has one.
    static func timelineEntries(_ objects: [(object: SyncObject, value: UInt64)])
        -> [(timeline: any KernelTimeline, point: UInt64)] {
        objects.compactMap { entry in entry.object.timeline.map { ($0, entry.value) } }
    }

    /// Refuses a CPU signal or wait of a mutex or semaphore: only GPU contexts use those. Inlined
    /// into every signal and wait; the refusal is not.
    @inline(__always)
    func requireFence() throws(NTError) {
        guard kind.isFence else { throw notAFence() }
    }

    @inline(never)
    private func notAFence() -> NTError {
        NTError(.invalidParameter, "a \(kind) sync object is signalled and waited for by GPU contexts, not the CPU")
    }

    /// Refuses what this open's access does not allow. Inlined as ``requireFence()``.
    @inline(__always)
    func require(_ rights: UInt32, _ what: StaticString) throws(NTError) {
        guard access & rights == rights else { throw Self.denied(what) }
    }

    @inline(never)
    private static func denied(_ what: StaticString) -> NTError {
        NTError(.accessDenied, "this sync object was shared without the right to \(what) it")
    }

}
