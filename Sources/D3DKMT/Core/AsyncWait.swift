import Synchronization

/// The `hAsyncEvent` side of CPU waits: an eventfd the caller passes as the Windows event, and
/// waits that end by signalling it, all served by the process's event thread (``EventLoop``),
/// never a thread per wait.
///
/// - DRM timelines: one eventfd of the wait's own is registered with the kernel for every object
///   (`DRM_IOCTL_SYNCOBJ_EVENTFD`) and watched; each time it fires the wait's condition is looked
///   at again (`DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT` with a deadline passed), so wait-all and wait-any
///   of any number of objects cost no thread. A kernel without the ioctl (before 6.6) falls back
///   to the periodic checks below.
/// - Software fences (a value in a shared page, with futex wake-ups nothing can poll): the event
///   thread looks at every pending software wait every ``softwareCheckInterval`` (4 ms) while
///   there is one, and at once when this process signals a software fence. So a wait is satisfied
///   at most 4 ms (plus scheduling) after another process signals, at once after this one does.
///
/// Destroying any of a wait's sync objects cancels it: the event stays unsignalled and everything
/// the wait held (its eventfd duplicate, its own eventfd, its references to the objects' kernel
/// timelines and pages) is released.
enum AsyncWait {
    /// Refuses what is not an eventfd (`/proc/self/fd/N` names `anon_inode:[eventfd]`).
    ///
    /// - Throws: `STATUS_INVALID_PARAMETER`; `STATUS_NOT_SUPPORTED` without `/proc`.
    static func checkEventfd(_ fd: Int32) throws(NTError) {
        guard fd >= 0, Kernel.readLink("/proc/self/fd/\(fd)") == "anon_inode:[eventfd]" else {
            if let missing = NTError.withoutProc("telling an eventfd (hAsyncEvent)") { throw missing }
            throw NTError(.invalidParameter, "descriptor \(fd) is not an eventfd")
        }
    }

    /// Makes the eventfd readable now.
    static func signal(_ fd: Int32) throws(NTError) {
        do {
            try Kernel.eventfdSignal(BorrowedDescriptor(unowned: fd))
        } catch {
            throw error.nt("signalling an eventfd")
        }
    }

    /// How often pending software waits are looked at.
    static let softwareCheckInterval: Int64 = 4_000_000

    /// Starts a wait that signals `eventfd` (a duplicate of it: the caller keeps its own) once
    /// `objects` reach their values, all of them or any one.
    ///
    /// - Throws: the kernel's status when the eventfd cannot be duplicated, the wait's own eventfd
    ///   made or registered, or the event thread started.
    static func start(signalling eventfd: Int32, for objects: [(object: SyncObject, value: UInt64)],
                      all: Bool) throws(NTError) {
        let event: FileDescriptor
        do { event = try Kernel.duplicate(BorrowedDescriptor(unowned: eventfd)) } catch {
            throw error.nt("duplicating an eventfd")
        }
        let wait = Pending(event: event, objects: objects, all: all)
        for (object, _) in objects { object.asyncWaits.add(wait) }
        do throws(NTError) {
            var polled = false
            for (object, value) in objects {
                guard let timeline = object.timeline else {
                    polled = true
                    continue
                }
                do { try timeline.notify(eventfd: try object.asyncWaits.trigger(), point: value) } catch {
                    guard error.status == .notSupported else { throw error }
                    polled = true  // no DRM_IOCTL_SYNCOBJ_EVENTFD (Linux before 6.6): looked at periodically
                }
            }
            if polled { try SoftwareChecks.add(wait) }
            // Reached between the caller's check and the registrations: nothing would fire.
            try EventLoop.shared.after(.now) { wait.check() }
        } catch {
            wait.finish()
            throw error
        }
    }

    /// Looks at every pending software wait now: this process just signalled a software fence.
    static func softwareFenceSignalled() { SoftwareChecks.checkSoon() }

    /// One pending wait: what it waits for and what it holds until it ends.
    final class Pending: Sendable {
        let event: FileDescriptor
        let kernel: [(timeline: any KernelTimeline, point: UInt64)]
        let software: [(fence: FenceState, value: UInt64)]
        /// The CPU-visible copies of DRM monitored fences, raised when a wait-all is satisfied.
        let mirrors: [(fence: FenceState, value: UInt64)]
        let all: Bool
        let registries: [AsyncWaitRegistry]
        let finished = Atomic<Bool>(false)

        init(event: consuming FileDescriptor, objects: [(object: SyncObject, value: UInt64)], all: Bool) {
            self.event = event
            kernel = SyncObject.timelineEntries(objects)
            software = objects.compactMap { entry in
                entry.object.timeline == nil ? entry.object.fenceState.map { ($0, entry.value) } : nil
            }
            mirrors = objects.compactMap { entry in
                entry.object.timeline == nil ? nil : entry.object.fenceState.map { ($0, entry.value) }
            }
            self.all = all
            registries = objects.map(\.object.asyncWaits)
        }

        /// Whether the wait is satisfied now; nil when a kernel wait failed (a device error).
        private var satisfied: Bool? {
            var kernelDone = kernel.isEmpty ? all : false
            if let first = kernel.first {
                do { kernelDone = try first.timeline.wait(kernel, all: all, until: .now) } catch { return nil }
            }
            let softwareDone = all ? software.allSatisfy { $0.fence.value >= $0.value }
                                   : software.contains { $0.fence.value >= $0.value }
            return all ? kernelDone && softwareDone : kernelDone || softwareDone
        }

        /// On the event thread: signals the event and ends the wait once it is satisfied; ends it
        /// unsignalled after a device error, as a Windows event stays when its wait is abandoned.
        func check() {
            guard !finished.load(ordering: .acquiring) else { return }
            guard let satisfied else {
                finish()
                return
            }
            guard satisfied, !finished.exchange(true, ordering: .acquiringAndReleasing) else { return }
            if all { for (fence, value) in mirrors { fence.advance(to: value) } }
            release()  // first: who sees the event finds the wait gone
            try? Kernel.eventfdSignal(event.borrowed)
        }

        /// Ends the wait without signalling (cancelled: one of its objects was destroyed). Once.
        func finish() {
            guard !finished.exchange(true, ordering: .acquiringAndReleasing) else { return }
            release()
        }

        private func release() {
            SoftwareChecks.remove(self)
            for registry in registries { registry.remove(self) }
        }
    }

    /// The pending waits that are looked at periodically, and the one timer that does it.
    private enum SoftwareChecks {
        private struct State {
            var owner: Int32 = 0
            var waits: [ObjectIdentifier: Pending] = [:]
            var armed = false
        }

        private static let state = ForkSafeMutex(State())
        /// Waits registered (never fewer than `state` holds; more in a `fork()`ed child): a signal
        /// with none to look at (the common case) takes no lock.
        private static let registered = Atomic<Int>(0)

        static func add(_ wait: Pending) throws(NTError) {
            let arm = state.withLock { state in
                if state.owner != Kernel.processID { state = State(owner: Kernel.processID) }
                if state.waits.updateValue(wait, forKey: ObjectIdentifier(wait)) == nil {
                    registered.add(1, ordering: .relaxed)
                }
                defer { state.armed = true }
                return !state.armed
            }
            if arm { try schedule() }
        }

        static func remove(_ wait: Pending) {
            let removed = state.withLock { state in
                let removed = state.waits.removeValue(forKey: ObjectIdentifier(wait))
                if removed != nil { registered.subtract(1, ordering: .relaxed) }
                return removed
            }
            _ = removed
        }

        private static func schedule() throws(NTError) {
            do {
                try EventLoop.shared.after(.after(nanoseconds: AsyncWait.softwareCheckInterval)) { tick(again: true) }
            } catch {
                state.withLock { $0.armed = false }
                throw error
            }
        }

        static func checkSoon() {
            // No waits (the common case of a signal): no lock and no getpid either.
            guard registered.load(ordering: .relaxed) > 0 else { return }
            let any = state.withLock { !$0.waits.isEmpty && $0.owner == Kernel.processID }
            if any { _ = try? EventLoop.shared.after(.now) { tick(again: false) } }
        }

        private static func tick(again: Bool) {
            let waits = state.withLock { Array($0.waits.values) }
            for wait in waits { wait.check() }
            guard again else { return }
            let rearm = state.withLock { state in
                state.armed = !state.waits.isEmpty
                return state.armed
            }
            if rearm { try? schedule() }
        }
    }
}

/// The async waits pending on one sync object, cancelled when it is destroyed, and the eventfd the
/// kernel signals for them (`DRM_IOCTL_SYNCOBJ_EVENTFD`), one per object whatever the number of
/// waits: each time it fires, every wait pending on the object is looked at again.
final class AsyncWaitRegistry: Sendable {
    private struct State {
        var waits: [ObjectIdentifier: AsyncWait.Pending] = [:]
        var token: EventLoop.Token?
        var owner: Int32 = 0
    }

    private let state = ForkSafeMutex(State())
    /// The object's eventfd for the kernel, made with its first DRM async wait (the last one; one
    /// more in each `fork()`ed child that waits).
    private let triggers = FileDescriptorList(capacity: 1)

    func add(_ wait: AsyncWait.Pending) { state.withLock { $0.waits[ObjectIdentifier(wait)] = wait } }

    func remove(_ wait: AsyncWait.Pending) {
        let removed = state.withLock { $0.waits.removeValue(forKey: ObjectIdentifier(wait)) }
        _ = removed
    }

    /// How many waits are pending on the object.
    var count: Int { state.withLock { $0.waits.count } }

    /// The eventfd to register with the kernel for this object's waits, watched by the event
    /// thread; made (and watched) the first time.
    ///
    /// - Throws: the kernel's status when it cannot be made or watched.
    func trigger() throws(NTError) -> Int32 {
        try state.withLock { (state) throws(NTError) -> Int32 in
            if state.token != nil, state.owner == Kernel.processID { return triggers[triggers.count - 1] }
            // The first DRM wait, or the first in a fork()ed child (whose copy of the parent's
            // eventfd the parent's thread drains): a new eventfd.
            do throws(Errno) { triggers.append(try Kernel.eventfd()) } catch {
                throw error.nt("making an async wait's eventfd")
            }
            state.owner = Kernel.processID
            let descriptor = triggers.borrow(triggers.count - 1)
            state.token = try EventLoop.shared.watch(descriptor, .readable) { _ in
                Kernel.eventfdDrain(descriptor)
                self.checkAll()
            }
            return descriptor.rawValue
        }
    }

    /// Looks at every wait pending on the object (its eventfd fired).
    private func checkAll() {
        let pending = state.withLock { Array($0.waits.values) }
        for wait in pending { wait.check() }
    }

    /// Ends every pending wait unsignalled and stops watching the object's eventfd (closed with
    /// the object).
    func cancelAll() {
        let (pending, token) = state.withLock { state in
            defer { state = State() }
            return (Array(state.waits.values), state.token)
        }
        if let token { EventLoop.shared.cancel(token) }
        for wait in pending { wait.finish() }
    }
}
