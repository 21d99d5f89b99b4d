import Synchronization

/// The process's look-out for threads sleeping on shared pages: while some sleep, the event
/// thread looks at what they wait for every ``interval`` and wakes them when they must look
/// again themselves.
///
/// A shared page is shared with every holder, so a peer can lose a wake-up for good: zero a
/// software fence's sleeping-waiters word (a signaller then skips its `FUTEX_WAKE`) or raise the
/// value without one; and a keyed mutex's owner can die without releasing it, which only its
/// waiters can notice (``KeyedMutexState``). A wait must still end once the value is reached or
/// the owner is gone (#12 item 7). Each sleep could be bounded instead, but a futex timeout arms
/// a kernel timer on every wait, which costs every handoff about 11% (the `signal-wake` and
/// `keyed-mutex-handoff` benchmark rows); one look every 100 ms by the thread the process has
/// anyway costs a wait two short locked updates.
///
/// Only this process's sleepers are watched; a `fork()`ed child starts with none.
enum SleepWatch {
    /// How often the event thread looks while there are sleepers: the longest a lost wake-up
    /// can delay a wait.
    static let interval: Int64 = 100_000_000  // 100 ms

    /// One watched sleeper, to hand back to ``remove(_:)``.
    struct Token {
        fileprivate let slot: Int
        fileprivate let generation: Int
    }

    /// What a sleeper waits for.
    enum Sleeper {
        /// A software fence to reach `target`: woken once it has.
        case fence(FenceState, target: UInt64)
        /// A keyed mutex: woken at every look, to see whether its owner still lives.
        case keyedMutex(KeyedMutexState)

        /// Wakes the sleepers if they have something to look at now.
        fileprivate func look() {
            switch self {
            case .fence(let fence, let target): if fence.value >= target { fence.wakeSleepers() }
            case .keyedMutex(let mutex): mutex.wakeWaiters()
            }
        }
    }

    private struct State {
        /// The sleepers, by slot; free slots are nil and listed in `free`.
        var entries: [Sleeper?] = []
        var free: [Int] = []
        var active = 0
        /// A look is scheduled on the event thread.
        var armed = false
        /// The ``forks`` count this state belongs to.
        var generation = 0
    }

    private static let state = ForkSafeMutex(State())

    /// `fork()`s this process went through, counted in the child (an atomic add is safe there):
    /// a child's state must not hold its parent's sleepers, or a schedule its event thread lost.
    private static let forks = Atomic<Int>(0)
    private static let forkHandler: Void = {
        Kernel.atFork(prepare: {}, parent: {}, child: { SleepWatch.forks.add(1, ordering: .relaxed) })
    }()

    /// Watches for a sleeper.
    ///
    /// - Returns: the token for ``remove(_:)``, or nil when the event thread cannot be started
    ///   (descriptor or thread limits): the caller then bounds each of its sleeps itself.
    static func add(_ sleeper: Sleeper) -> Token? {
        forkHandler
        let generation = forks.load(ordering: .relaxed)
        let (slot, arm) = state.withLock { state in
            if state.generation != generation { state = State(generation: generation) }
            let slot: Int
            if let reused = state.free.popLast() {
                slot = reused
                state.entries[slot] = sleeper
            } else {
                slot = state.entries.count
                state.entries.append(sleeper)
            }
            state.active += 1
            defer { state.armed = true }
            return (slot, !state.armed)
        }
        let token = Token(slot: slot, generation: generation)
        guard !arm || schedule() else {
            remove(token)
            return nil
        }
        return token
    }

    /// Stops watching a sleeper ``add(_:)`` returned.
    static func remove(_ token: Token) {
        let dropped: Sleeper? = state.withLock { state in
            guard state.generation == token.generation, let entry = state.entries[token.slot] else { return nil }
            state.entries[token.slot] = nil
            state.free.append(token.slot)
            state.active -= 1
            return entry
        }
        _ = dropped  // its page is released outside the lock
    }

    /// Schedules the next look; false (and disarmed) when the event thread cannot run it.
    private static func schedule() -> Bool {
        do {
            try EventLoop.shared.after(.after(nanoseconds: interval)) { look() }
            return true
        } catch {
            state.withLock { $0.armed = false }
            return false
        }
    }

    /// On the event thread: wakes the sleepers that have something to look at, and looks again
    /// later while anyone sleeps. The wake-ups are made under the lock, so the look never holds a
    /// sleeper's objects past its ``remove(_:)`` (whose caller may be about to destroy them and
    /// count its descriptors).
    private static func look() {
        let generation = forks.load(ordering: .relaxed)
        let again = state.withLock { state -> Bool in
            guard state.generation == generation, state.active > 0 else {
                state.armed = false
                return false
            }
            for case let sleeper? in state.entries { sleeper.look() }
            return true
        }
        if again { _ = schedule() }
    }

    /// Sleepers watched now, for tests.
    static var watchedSleepers: Int {
        let generation = forks.load(ordering: .relaxed)
        return state.withLock { $0.generation == generation ? $0.active : 0 }
    }
}
