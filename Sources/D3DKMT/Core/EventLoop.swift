import Synchronization

/// The process's one event thread: an `epoll` loop that serves names (``NameServer``), async
/// waits (``AsyncWait``) and whatever else waits on descriptors, never a thread per wait.
///
/// Features register a descriptor with a handler (``watch(_:_:handler:)``) or a one-shot timer
/// (``after(_:handler:)``) and get a ``Token``; ``cancel(_:)`` ends either. Handlers run on the
/// loop's thread, one at a time, without any lock of the loop held, so they may watch, update and
/// cancel (their own token too); they must never block. The thread starts with the first
/// registration and lives as long as the process, with two descriptors (its epoll set and a
/// wake-up eventfd). In a `fork()`ed child, whose copy of the loop has no thread, the first call finds the
/// parent's registrations (copied descriptors of the parent's objects), drops them and starts
/// afresh, so the child serves only what it registers itself.
///
/// Descriptors stay with their owner: the handler's captures should own what it watches, and the
/// owner must cancel before closing it (an epoll registration outlives a close while the file is
/// open elsewhere, such as in a child).
final class EventLoop: Sendable {
    static let shared = EventLoop()

    /// Names one registration, for ``update(_:_:)`` and ``cancel(_:)``.
    struct Token: Hashable, Sendable {
        fileprivate let key: UInt64
    }

    typealias Events = Kernel.EpollEvents

    /// The loop of one process: its epoll set and the eventfd that wakes it for a new timer.
    private final class Core: Sendable {
        let owner: Int32
        let epoll: FileDescriptor
        let wake: FileDescriptor

        init(owner: Int32, epoll: consuming FileDescriptor, wake: consuming FileDescriptor) {
            self.owner = owner
            self.epoll = epoll
            self.wake = wake
        }
    }

    private final class Watch: Sendable {
        let descriptor: BorrowedDescriptor
        let handler: @Sendable (Events) -> Void
        init(_ descriptor: BorrowedDescriptor, _ handler: @escaping @Sendable (Events) -> Void) {
            self.descriptor = descriptor
            self.handler = handler
        }
    }

    private struct Timer {
        var deadline: Deadline
        var handler: @Sendable () -> Void
    }

    private struct State {
        var core: Core?
        var nextKey: UInt64 = 1
        var watches: [UInt64: Watch] = [:]
        var timers: [UInt64: Timer] = [:]
        /// Threads started, for tests and diagnostics.
        var started = 0
    }

    private let state = ForkSafeMutex(State())

    /// Held by the event thread whenever it is not sleeping in `epoll_wait`, and by a thread
    /// calling `fork()` (`pthread_atfork`), so a child is never forked while the event thread
    /// holds one of the library's locks (which the child could then never take).
    fileprivate static let dispatching = ForkGuard()

    /// Registers the fork handlers, once.
    private static let forkHandlers: Void = {
        Kernel.atFork(prepare: { EventLoop.dispatching.lock() }, parent: { EventLoop.dispatching.unlock() },
                      child: { EventLoop.dispatching.unlock() })
    }()

    /// The wake-up eventfd's key; registrations' keys start at 1.
    private static let wakeKey: UInt64 = 0

    /// The core of this process, started if needed. A core another process made (we are its
    /// `fork()`ed child) is dropped with every registration it had.
    ///
    /// - Parameter inherited: receives the parent's state, for the caller to drop outside the lock
    ///   (its handlers' captures close the child's copies of the parent's descriptors).
    private static func running(_ state: inout State, inherited: inout State?) throws(NTError) -> Core {
        let pid = Kernel.processID
        if let core = state.core {
            if core.owner == pid { return core }
            inherited = state
            state = State()
        }
        Self.forkHandlers
        do throws(Errno) {
            let epoll = try Kernel.epollCreate()
            let wake = try Kernel.eventfd()
            try Kernel.epollAdd(epoll.borrowed, wake.borrowed, events: .readable, key: wakeKey)
            let core = Core(owner: pid, epoll: epoll, wake: wake)
            try Kernel.detachedThread(named: "d3dkmt-events") { EventLoop.shared.run(core) }
            state.core = core
            state.started += 1
            return core
        } catch {
            throw error.nt("starting the event thread")
        }
    }

    /// Calls `handler` on the event thread whenever `descriptor` has one of `events` (and always
    /// for `EPOLLERR`/`EPOLLHUP`; level-triggered unless `events` has ``Events/edgeTriggered``).
    /// The descriptor must stay open until ``cancel(_:)`` returns.
    ///
    /// - Throws: the kernel's status when the thread cannot start or epoll refuses the
    ///   descriptor (`EPOLL_CTL_ADD`).
    func watch(_ descriptor: BorrowedDescriptor, _ events: Events,
               handler: @escaping @Sendable (Events) -> Void) throws(NTError) -> Token {
        var inherited: State?
        defer { if inherited != nil { inherited = nil } }
        return try state.withLock { (state) throws(NTError) -> Token in
            let core = try Self.running(&state, inherited: &inherited)
            let key = state.nextKey
            state.nextKey += 1
            do throws(Errno) {
                try Kernel.epollAdd(core.epoll.borrowed, descriptor, events: events, key: key)
            } catch {
                throw error.nt("watching a descriptor")
            }
            state.watches[key] = Watch(descriptor, handler)
            return Token(key: key)
        }
    }

    /// New `events` for a watched descriptor (`EPOLL_CTL_MOD`); nothing for a cancelled token.
    func update(_ token: Token, _ events: Events) {
        state.withLock { state in
            guard let core = state.core, core.owner == Kernel.processID, let watch = state.watches[token.key] else {
                return
            }
            try? Kernel.epollModify(core.epoll.borrowed, watch.descriptor, events: events, key: token.key)
        }
    }

    /// Calls `handler` once on the event thread at `deadline` (at once for a deadline passed).
    ///
    /// - Throws: the kernel's status when the thread cannot start.
    @discardableResult
    func after(_ deadline: Deadline, handler: @escaping @Sendable () -> Void) throws(NTError) -> Token {
        var inherited: State?
        defer { if inherited != nil { inherited = nil } }
        let (token, core) = try state.withLock { (state) throws(NTError) -> (Token, Core) in
            let core = try Self.running(&state, inherited: &inherited)
            let key = state.nextKey
            state.nextKey += 1
            state.timers[key] = Timer(deadline: deadline, handler: handler)
            return (Token(key: key), core)
        }
        // The loop may be sleeping until a later deadline.
        try? Kernel.eventfdSignal(core.wake.borrowed)
        return token
    }

    /// Ends a registration: its handler is not called again once this returns (a call already
    /// running on the event thread finishes). Cancelling twice, or a token of the parent in a
    /// `fork()`ed child, does nothing.
    func cancel(_ token: Token) {
        let dropped: (Watch?, Timer?) = state.withLock { state in
            guard let core = state.core, core.owner == Kernel.processID else { return (nil, nil) }
            let watch = state.watches.removeValue(forKey: token.key)
            if let watch { Kernel.epollRemove(core.epoll.borrowed, watch.descriptor) }
            return (watch, state.timers.removeValue(forKey: token.key))
        }
        _ = dropped  // released here, outside the lock: their captures may cancel more
    }

    /// How many registrations (watches, timers) this process has, and whether its thread runs.
    var census: (watches: Int, timers: Int, running: Bool) {
        state.withLock { state in
            let mine = state.core?.owner == Kernel.processID
            return mine ? (state.watches.count, state.timers.count, true) : (0, 0, false)
        }
    }

    /// The event thread: waits for the next event or timer and runs handlers, for the life of the
    /// process.
    private func run(_ core: Core) {
        Self.dispatching.lock()
        while true {
            let deadline: Deadline = state.withLock { state in
                state.timers.values.map(\.deadline).min() ?? .never
            }
            Self.dispatching.unlock()
            let events = (try? Kernel.epollWait(core.epoll.borrowed, until: deadline)) ?? []
            Self.dispatching.lock()
            for (events, key) in events {
                if key == Self.wakeKey {
                    Kernel.eventfdDrain(core.wake.borrowed)
                    continue
                }
                guard let watch = state.withLock({ $0.core === core ? $0.watches[key] : nil }) else { continue }
                watch.handler(events)
            }
            let now = Deadline.now
            let due: [Timer] = state.withLock { state in
                guard state.core === core else { return [] }
                let keys = state.timers.filter { $0.value.deadline <= now }.keys
                return keys.sorted().compactMap { state.timers.removeValue(forKey: $0) }
            }
            for timer in due { timer.handler() }
        }
    }
}
