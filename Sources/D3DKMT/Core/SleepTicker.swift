import Synchronization

/// Bounds the sleeps of keyed-mutex and software-fence waits that have no deadline, so that those
/// sleeps arm no kernel timer: a thread of its own wakes every watched futex word every
/// ``interval``, and the woken waiter looks again (at the fence value, at the mutex owner's
/// presence) as it would after a timed-out slice. It is the library's one thread besides the
/// event thread (``EventLoop``), and it runs only while waits are watched.
///
/// A futex timeout costs every sleep a kernel timer armed and cancelled: about 5 µs per handoff in
/// the 1-vCPU QEMU guest (12% of a futex ping-pong), ~0.3 µs on the host. Here a wait costs one
/// compare-and-swap to claim a slot and one store to free it, no lock and no system call; the
/// ticker thread runs 10 times a second while anything is watched and exits after a second with
/// nothing watched (the next watched wait starts it again). Waits with a deadline sleep in timed
/// slices as before (they arm a timer anyway).
///
/// Slots hold word addresses only. The ticker may wake a word just after its wait ended and its
/// page was unmapped: `FUTEX_WAKE` then fails (`EFAULT`) or wakes a later mapping's waiters, a
/// spurious wake-up every futex waiter takes. When every slot is taken, or the thread cannot be
/// started, a wait sleeps in timed slices. A `fork()`ed child starts with no ticker and no slots.
enum SleepTicker {
    /// How often watched words are woken: the longest a lost wake-up or an owner's death goes
    /// unnoticed.
    static let interval: Int64 = 100_000_000  // 100 ms
    /// Waits watched at once; more sleep in timed slices.
    static let slotCount = 64
    /// Ticks with nothing watched before the ticker exits.
    static let idleTicksBeforeExiting = 10

    private static let noThread: UInt32 = 0, ticking: UInt32 = 1, unavailable: UInt32 = 3

    /// The slots (word addresses, 0 when free), then the ticker's state word (its futex).
    nonisolated(unsafe) private static let memory: UnsafeMutableRawPointer = {
        let size = slotCount * MemoryLayout<UInt>.stride + MemoryLayout<UInt32>.stride
        let memory = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: MemoryLayout<UInt>.alignment)
        memory.initializeMemory(as: UInt8.self, repeating: 0, count: size)
        Kernel.atFork(prepare: {}, parent: {}, child: { SleepTicker.forgetInForkedChild() })
        return memory
    }()

    private static func slot(_ index: Int) -> UnsafeMutablePointer<Atomic<UInt>> {
        (memory + index * MemoryLayout<UInt>.stride).assumingMemoryBound(to: Atomic<UInt>.self)
    }

    private static var stateWord: UnsafeMutablePointer<UInt32> {
        (memory + slotCount * MemoryLayout<UInt>.stride).assumingMemoryBound(to: UInt32.self)
    }

    private static var state: UnsafeMutablePointer<Atomic<UInt32>> {
        UnsafeMutableRawPointer(stateWord).assumingMemoryBound(to: Atomic<UInt32>.self)
    }

    /// Watches `word` for a wait about to sleep on it without a deadline, starting the ticker
    /// when none runs.
    ///
    /// - Returns: the slot to pass to ``unwatch(_:)`` when the wait ends, or nil: the wait must
    ///   bound each of its sleeps itself.
    static func watch(_ word: UnsafeMutablePointer<UInt32>) -> Int? {
        let address = UInt(bitPattern: word)
        var claimed: Int?
        for index in 0..<slotCount
        where slot(index).pointee.compareExchange(expected: 0, desired: address,
                                                  ordering: .sequentiallyConsistent).exchanged {
            claimed = index
            break
        }
        guard let claimed else { return nil }
        while true {
            switch state.pointee.load(ordering: .sequentiallyConsistent) {
            case ticking:
                return claimed
            case noThread:
                if state.pointee.compareExchange(expected: noThread, desired: ticking,
                                                 ordering: .sequentiallyConsistent).exchanged {
                    do {
                        try Kernel.detachedThread(named: "d3dkmt-ticker") { SleepTicker.run() }
                        return claimed
                    } catch {
                        state.pointee.store(unavailable, ordering: .sequentiallyConsistent)
                    }
                }
            default:  // unavailable: no thread could be started
                unwatch(claimed)
                return nil
            }
        }
    }

    /// Frees the slot ``watch(_:)`` returned.
    static func unwatch(_ index: Int) {
        slot(index).pointee.store(0, ordering: .releasing)
    }

    /// The ticker thread: every ``interval``, wakes every watched word; returns (the thread
    /// ends) when nothing was watched for ``idleTicksBeforeExiting`` ticks.
    private static func run() {
        var idleTicks = 0
        while true {
            // Sleeps the interval (the state word stays `ticking` while it runs: no one wakes it).
            _ = Kernel.futexWait(stateWord, expected: ticking, for: interval)
            if wakeWatched() {
                idleTicks = 0
                continue
            }
            idleTicks += 1
            guard idleTicks >= idleTicksBeforeExiting else { continue }
            idleTicks = 0
            state.pointee.store(noThread, ordering: .sequentiallyConsistent)
            // A wait that claimed a slot before the store above saw `ticking` and counts on this
            // thread: it goes on, unless a wait after the store started a new ticker already.
            if anyWatched(),
               state.pointee.compareExchange(expected: noThread, desired: ticking,
                                             ordering: .sequentiallyConsistent).exchanged {
                continue
            }
            return
        }
    }

    /// Wakes every watched word; false when nothing was watched.
    private static func wakeWatched() -> Bool {
        var any = false
        for index in 0..<slotCount {
            let address = slot(index).pointee.load(ordering: .acquiring)
            guard address != 0, let word = UnsafeMutablePointer<UInt32>(bitPattern: address) else { continue }
            any = true
            Kernel.futexWakeAll(word)
        }
        return any
    }

    private static func anyWatched() -> Bool {
        (0..<slotCount).contains { slot($0).pointee.load(ordering: .sequentiallyConsistent) != 0 }
    }

    /// In a `fork()`ed child: no ticker thread runs there, and the parent's waits are not the
    /// child's. Atomic stores only (safe after a fork).
    private static func forgetInForkedChild() {
        for index in 0..<slotCount { slot(index).pointee.store(0, ordering: .relaxed) }
        state.pointee.store(noThread, ordering: .relaxed)
    }
}
