import Synchronization

/// A fence value in a ``SharedPage``: the whole of a software sync object, and the CPU-visible
/// mirror (`FenceValueCPUVirtualAddress`) of a DRM monitored fence.
///
/// Layout (little-endian, version 1):
///
/// ```
///  0 u32 magic 'KMFN'   4 u32 version
///  8 u32 sequence: bumped by every signal (the futex word)   12 u32 sleeping waiters
/// 16 u64 fence value (monotonic; what FenceValueCPUVirtualAddress points at)
/// ```
///
/// Signalling raises the value, bumps the sequence and wakes sleepers only when there are some;
/// a waiter registers itself before sleeping on the sequence word, so no signal is missed.
struct FenceState: @unchecked Sendable {
    static let magic: UInt32 = 0x4E46_4D4B  // "KMFN"
    static let version: UInt32 = 1
    static let size = 4096

    let page: SharedPage

    private var sequence: UnsafeMutablePointer<Atomic<UInt32>> { page.atomic32(8) }
    private var sleepers: UnsafeMutablePointer<Atomic<UInt32>> { page.atomic32(12) }
    private var valueWord: UnsafeMutablePointer<Atomic<UInt64>> { page.atomic64(16) }

    static func create(initialValue: UInt64) throws(NTError) -> FenceState {
        let made = FenceState(page: try SharedPage(size: size, magic: magic, version: version, name: "d3dkmt-fence"))
        made.valueWord.pointee.store(initialValue, ordering: .releasing)
        return made
    }

    static func open(_ descriptor: consuming FileDescriptor) throws(NTError) -> FenceState {
        FenceState(page: try SharedPage(opening: descriptor, minimumSize: 24, magic: magic, version: version))
    }

    /// Where the value lives in this process: `FenceValueCPUVirtualAddress`.
    var valueAddress: UnsafeMutableRawPointer { page.base + 16 }

    var value: UInt64 { valueWord.pointee.load(ordering: .acquiring) }

    /// Threads (in every process) sleeping in a wait for the fence now; read only, for inspection.
    var sleepingWaiters: UInt32 { sleepers.pointee.load(ordering: .relaxed) }

    /// Raises the value to `target` (never lowers it) and wakes sleepers.
    func advance(to target: UInt64) {
        var current = valueWord.pointee.load(ordering: .relaxed)
        while current < target {
            let (exchanged, found) = valueWord.pointee.compareExchange(expected: current, desired: target,
                                                                       ordering: .sequentiallyConsistent)
            if exchanged { break }
            current = found
        }
        sequence.pointee.wrappingAdd(1, ordering: .sequentiallyConsistent)
        if sleepers.pointee.load(ordering: .sequentiallyConsistent) > 0 { Kernel.futexWakeAll(page.futexWord(8)) }
    }

    /// The sequence word and its value now, for a waiter about to check and sleep.
    func snapshot() -> (word: UnsafeMutablePointer<UInt32>, expected: UInt32) {
        (page.futexWord(8), sequence.pointee.load(ordering: .sequentiallyConsistent))
    }

    /// Counts the caller as sleeping while `body` runs.
    func sleeping<T>(_ body: () throws(Errno) -> T) throws(Errno) -> T {
        sleepers.pointee.wrappingAdd(1, ordering: .sequentiallyConsistent)
        defer { sleepers.pointee.wrappingSubtract(1, ordering: .sequentiallyConsistent) }
        return try body()
    }

    /// The longest a waiter sleeps before looking at the value again. The page is shared with
    /// every holder, and a peer that zeroes the sleepers count (signallers then skip the wake-up)
    /// or raises the value without a wake-up must not make a waiter sleep past the value being
    /// reached: at worst it notices one slice late. Waits never pass their deadline either way.
    static let slice: Int64 = 100_000_000  // 100 ms

    /// The end of the slice that starts now, or `deadline` when that is sooner.
    static func sliceEnd(_ deadline: Deadline) -> Deadline {
        let (end, overflow) = Deadline.now.nanoseconds.addingReportingOverflow(slice)
        return overflow ? deadline : min(deadline, Deadline(nanoseconds: end))
    }

    /// Waits until the value reaches `target` or `deadline` passes, sleeping in slices of at most
    /// ``slice``; false on timeout.
    func wait(for target: UInt64, until deadline: Deadline) -> Bool {
        // A wait without a deadline reads no clock, and is watched by the SleepTicker from its first
        // sleep on (unwatched, it sleeps in relative slices).
        var watched: Int?
        var asked = false
        defer { if let watched { SleepTicker.unwatch(watched) } }
        while true {
            let (word, expected) = snapshot()
            if value >= target { return true }
            let forever = deadline == .never
            if !forever, Deadline.now >= deadline { return false }
            sleepers.pointee.wrappingAdd(1, ordering: .sequentiallyConsistent)
            if forever {
                if !asked {
                    asked = true
                    watched = SleepTicker.watch(word)
                }
                _ = watched != nil ? Kernel.futexWait(word, expected: expected, until: .never)
                    : Kernel.futexWait(word, expected: expected, for: Self.slice)
            } else {
                _ = Kernel.futexWait(word, expected: expected, until: Self.sliceEnd(deadline))
            }
            sleepers.pointee.wrappingSubtract(1, ordering: .sequentiallyConsistent)
        }
    }

    /// Waits until every fence (or, with `all` false, one) reaches its value, or `deadline`:
    /// `futex_waitv(2)` on the fences' sequence words for a wait-any, in slices as
    /// ``wait(for:until:)``.
    ///
    /// - Returns: false when the deadline passed.
    static func wait(for fences: [(FenceState, UInt64)], all: Bool, until deadline: Deadline) throws(NTError) -> Bool {
        if all || fences.count == 1 {
            for (fence, value) in fences where !fence.wait(for: value, until: deadline) { return false }
            return true
        }
        while true {
            let words = fences.map { $0.0.snapshot() }
            if fences.contains(where: { $0.0.value >= $0.1 }) { return true }
            if Deadline.now >= deadline { return false }
            do {
                _ = try sleepingAll(fences.map(\.0)) { () throws(Errno) in
                    try Kernel.futexWaitAny(words, until: sliceEnd(deadline))
                }
            } catch {
                throw error.nt("waiting for software fences")
            }
        }
    }

    private static func sleepingAll<T>(_ fences: [FenceState], _ body: () throws(Errno) -> T) throws(Errno) -> T {
        guard let first = fences.first else { return try body() }
        return try first.sleeping { () throws(Errno) in try sleepingAll(Array(fences.dropFirst()), body) }
    }
}
