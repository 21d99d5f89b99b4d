#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// The keyed mutex protocol, in a ``SharedPage`` every process that opened the mutex maps.
///
/// Layout (little-endian, version 1):
///
/// ```
///  0 u32 magic 'KMKM'   4 u32 version
///  8 u64 state: low 32 bits = generation << 3 | waiters 4 | abandoned 2 | owned 1 (the futex
///        word); high 32 bits = the owning open's presence slot + 1
/// 16 u64 key the mutex was last released with
/// 24 u64 fence value of the last release
/// 32 u32 private data capacity   36 u32 private data size   40 u32 presence slot hint
/// 44..63 reserved
/// 64 private runtime data of the last release
/// ```
///
/// Acquiring is one compare-and-swap on `state` when the mutex is free with the right key: no
/// system call. Releasing stores the key, fence value and private data, then swaps `state` to
/// free with the next generation (so an acquirer that read an older state cannot succeed) and
/// makes one `FUTEX_WAKE` only when someone is waiting. Waiters sleep on the state word.
///
/// An owner that dies cannot release. Each open of the mutex (every `KeyedMutex`, in any process)
/// has a **presence slot**: an exclusive open-file-description lock on one byte of the state
/// memfd, through a reopen of it of its own, held for the open's whole life; the kernel drops it
/// when the open's descriptor closes, which its process dying does too. An acquire records its
/// slot in the state; waiters look every ``livenessInterval`` whether that slot is still locked
/// (`F_OFD_GETLK`), and when it is not, the owner is gone: they mark the mutex abandoned, for good,
/// and wake everyone. Nothing here is a pid, so processes in different pid namespaces (a Flatpak
/// app and the host, a container) share mutexes safely, and a reused pid hides nothing.
struct KeyedMutexState: @unchecked Sendable {
    static let magic: UInt32 = 0x4D4B_4D4B  // "KMKM"
    static let version: UInt32 = 1
    static let dataOffset = 64
    /// The most private runtime data a keyed mutex carries.
    static let maximumDataSize = 64 * 1024 - dataOffset
    static let livenessInterval: Int64 = 100_000_000  // 100 ms

    private static let owned: UInt64 = 1
    private static let abandonedBit: UInt64 = 2
    private static let waiters: UInt64 = 4
    private static let generationMask: UInt64 = 0xFFFF_FFF8

    let page: SharedPage
    /// This open's presence slot; the lock goes with the last copy of this state.
    let presence: Presence
    /// Bytes of private data a release may store, fixed when the page is made or opened (and then
    /// checked against the mapping). Never taken from the page again: any process holding the
    /// memfd can rewrite the shared word at any time.
    let capacity: UInt32

    private var state: UnsafeMutablePointer<Atomic<UInt64>> { page.atomic64(8) }
    private var key: UnsafeMutablePointer<Atomic<UInt64>> { page.atomic64(16) }
    private var fence: UnsafeMutablePointer<Atomic<UInt64>> { page.atomic64(24) }
    private var capacityWord: UnsafeMutablePointer<Atomic<UInt32>> { page.atomic32(32) }
    private var dataSize: UnsafeMutablePointer<Atomic<UInt32>> { page.atomic32(36) }

    /// A new mutex, released with `initialKey`, whose private data holds `data` and can hold up to
    /// `data.count` bytes.
    static func create(initialKey: UInt64, data: [UInt8]) throws(NTError) -> KeyedMutexState {
        guard data.count <= maximumDataSize else {
            throw NTError(.invalidParameter, "keyed mutex private data of \(data.count) bytes; "
                                             + "at most \(maximumDataSize)")
        }
        let page = try SharedPage(size: dataOffset + data.count, magic: magic, version: version,
                                  name: "d3dkmt-keyed-mutex")
        let made = KeyedMutexState(page: page, presence: try Presence(page), capacity: UInt32(data.count))
        made.key.pointee.store(initialKey, ordering: .relaxed)
        made.capacityWord.pointee.store(UInt32(data.count), ordering: .relaxed)
        made.storeData(data)
        return made
    }

    /// Maps a mutex another process shared, checking its layout.
    static func open(_ descriptor: consuming FileDescriptor) throws(NTError) -> KeyedMutexState {
        let page = try SharedPage(opening: descriptor, minimumSize: dataOffset, magic: magic, version: version)
        let capacity = page.atomic32(32).pointee.load(ordering: .relaxed)
        guard Int(capacity) <= page.size - dataOffset else {
            throw NTError(.invalidParameter, "keyed mutex state claims more private data than it holds")
        }
        return KeyedMutexState(page: page, presence: try Presence(page), capacity: capacity)
    }

    var isAbandoned: Bool { state.pointee.load(ordering: .acquiring) & Self.abandonedBit != 0 }

    enum AcquireOutcome: Equatable {
        case acquired(fenceValue: UInt64)
        case timedOut
        case abandoned
    }

    /// Takes the mutex once it is free and was last released with `wanted`, or until `deadline`.
    func acquire(key wanted: UInt64, until deadline: Deadline) -> AcquireOutcome {
        let me = UInt64(presence.slot + 1) << 32
        var checkOwner = false
        // A wait without a deadline is watched by the SleepTicker from its first sleep on.
        var watched: Int?
        var asked = false
        defer { if let watched { SleepTicker.unwatch(watched) } }
        while true {
            let current = state.pointee.load(ordering: .acquiring)
            if current & Self.abandonedBit != 0 { return .abandoned }
            if current & Self.owned == 0 {
                if key.pointee.load(ordering: .relaxed) == wanted {
                    let taken = me | (current & (Self.generationMask | Self.waiters)) | Self.owned
                    if state.pointee.compareExchange(expected: current, desired: taken,
                                                     ordering: .acquiringAndReleasing).exchanged {
                        return .acquired(fenceValue: fence.pointee.load(ordering: .relaxed))
                    }
                    continue
                }
            } else if checkOwner, !presence.ownerAlive(current) {
                abandon(from: current)
                continue
            }
            // A wait without a deadline reads no clock: its sleeps are slices of relative time.
            let now = deadline == .never ? Deadline.never : Deadline.now
            if deadline != .never, now >= deadline {
                // A try (or a last look) at a mutex whose owner died reports the abandonment.
                if current & Self.owned != 0, !checkOwner { checkOwner = true; continue }
                return .timedOut
            }
            var expected = current
            if current & Self.waiters == 0 {
                expected = current | Self.waiters
                guard state.pointee.compareExchange(expected: current, desired: expected,
                                                    ordering: .relaxed).exchanged else {
                    continue
                }
            }
            let word = page.futexWord(8), value = UInt32(truncatingIfNeeded: expected)
            if deadline == .never {
                if !asked {
                    asked = true
                    watched = SleepTicker.watch(word)
                }
                if watched != nil {
                    _ = Kernel.futexWait(word, expected: value, until: .never)
                    // Woken with nothing changed: the ticker's wake-up (or a stray one), the time to
                    // look at the owner.
                    checkOwner = state.pointee.load(ordering: .acquiring) == expected
                } else {
                    // Not watched: look at the owner when a whole slice passed without news.
                    checkOwner = !Kernel.futexWait(word, expected: value, for: Self.livenessInterval)
                }
            } else {
                let slice = Deadline(nanoseconds: now.nanoseconds + Self.livenessInterval)
                checkOwner = !Kernel.futexWait(word, expected: value, until: min(deadline, slice)) && slice < deadline
            }
        }
    }

    enum ReleaseOutcome: Equatable {
        case released
        case abandoned
        case notOwner
    }

    /// Releases the mutex this process holds to `key`, recording `fenceValue` and `data` for the
    /// next owner. `data` must fit ``capacity`` (the caller checks).
    func release(key newKey: UInt64, fenceValue: UInt64, data: [UInt8]) -> ReleaseOutcome {
        var current = state.pointee.load(ordering: .acquiring)
        if current & Self.abandonedBit != 0 { return .abandoned }
        guard current & Self.owned != 0, current >> 32 == UInt64(presence.slot + 1) else {
            return .notOwner
        }
        storeData(data)
        fence.pointee.store(fenceValue, ordering: .relaxed)
        key.pointee.store(newKey, ordering: .relaxed)
        while true {
            let next = ((current & Self.generationMask) &+ 8) & Self.generationMask
            let (exchanged, found) = state.pointee.compareExchange(expected: current, desired: next,
                                                                   ordering: .acquiringAndReleasing)
            if exchanged { break }
            if found & Self.abandonedBit != 0 { return .abandoned }
            current = found  // a waiter set the waiters bit meanwhile
        }
        if current & Self.waiters != 0 { Kernel.futexWakeAll(page.futexWord(8)) }
        return .released
    }

    /// Marks the mutex abandoned if it is still in state `seen`, and wakes every waiter.
    func abandon(from seen: UInt64) {
        if state.pointee.compareExchange(expected: seen, desired: seen | Self.abandonedBit,
                                         ordering: .acquiringAndReleasing).exchanged {
            Kernel.futexWakeAll(page.futexWord(8))
        }
    }

    /// Abandons the mutex this open holds: its holder is destroyed while owning it. The caller
    /// knows it holds the mutex; the slot check guards against a stale belief.
    func abandonHeld() {
        let current = state.pointee.load(ordering: .acquiring)
        if current & Self.owned != 0, current >> 32 == UInt64(presence.slot + 1) {
            abandon(from: current)
        }
    }

    /// The private data of the last release (the creator's data until the first release).
    func loadData() -> [UInt8] {
        guard capacity > 0 else { return [] }  // the common mutex, made without private data
        let count = min(Int(dataSize.pointee.load(ordering: .relaxed)), Int(capacity), page.size - Self.dataOffset)
        return Array(UnsafeRawBufferPointer(start: page.base + Self.dataOffset, count: count))
    }

    private func storeData(_ data: [UInt8]) {
        precondition(data.count <= Int(capacity), "keyed mutex private data beyond its capacity")
        if data.isEmpty, capacity == 0 { return }  // nothing stored, nothing to store: no copy, no size
        data.withUnsafeBytes {
            (page.base + Self.dataOffset).copyMemory(from: $0.baseAddress ?? UnsafeRawPointer(page.base),
                                                     byteCount: $0.count)
        }
        dataSize.pointee.store(UInt32(data.count), ordering: .relaxed)
    }

}

/// One open's presence slot (see ``KeyedMutexState``): its own open file description of the state
/// memfd and the exclusive lock it holds on byte ``base`` + slot.
final class Presence: Sendable {
    /// Where the slot bytes start: past any page, so they lock no data.
    static let base: Int64 = 1 << 30
    /// The most opens of one mutex alive at once.
    static let slots: UInt32 = 65_536

    let slot: UInt32
    /// The open file description whose lock is the presence (one descriptor).
    private let descriptors: FileDescriptorList
    private var descriptor: BorrowedDescriptor { descriptors.borrow(0) }
    /// The process that made it. A `fork()`ed child inherits the descriptor, and with it the
    /// open file description and its lock, which would keep the parent "alive" for every waiter
    /// while the child lives: the child's copy is closed right after the fork (``ForkedCopies``),
    /// so the parent's death is seen; in the child this presence is then dead (a mutex opened
    /// before the fork must be opened again there).
    private let owner: Int32

    /// Claims a free slot of `page`'s mutex, starting from a hint kept in the page (so claims
    /// seldom collide): a reopen of the memfd (`/proc/self/fd`) for a description of its own,
    /// then the first byte it can lock.
    ///
    /// - Throws: `STATUS_NOT_SUPPORTED` without `/proc`; `STATUS_INSUFFICIENT_RESOURCES` when
    ///   every slot is taken; the kernel's status otherwise.
    init(_ page: SharedPage) throws(NTError) {
        let reopened: FileDescriptor
        do { reopened = try Kernel.reopen(page.descriptor.borrowed, O_RDWR) } catch {
            throw NTError.withoutProc("a keyed mutex (telling its owner's death: reopening its state)")
                ?? error.nt("reopening keyed mutex state")
        }
        let hint = page.atomic32(40).pointee.wrappingAdd(1, ordering: .relaxed).oldValue
        for step in 0..<Self.slots {
            let candidate = (hint &+ step) % Self.slots
            let locked: Bool
            do { locked = try Kernel.tryLockByte(reopened.borrowed, at: Self.base + Int64(candidate)) } catch {
                throw error.nt("locking a keyed mutex presence slot")
            }
            if locked {
                slot = candidate
                let number = reopened.rawValue
                descriptors = FileDescriptorList(capacity: 1)
                descriptors.append(reopened)
                owner = Kernel.processID
                ForkedCopies.add(number)
                return
            }
        }
        throw NTError(.insufficientResources, "all \(Self.slots) presence slots of the keyed mutex are taken")
    }

    deinit {
        if Kernel.processID == owner {
            ForkedCopies.remove(descriptor.rawValue)
        } else {
            // A fork()ed child's copy, closed at the fork: the number may be another file now.
            _ = descriptors.take(0).take()
        }
    }

    /// Whether the open that owns the mutex in `state` still exists: its slot is this open's, or
    /// another open file description holds the slot's lock. A slot out of range (a peer
    /// scribbled) has no owner.
    func ownerAlive(_ state: UInt64) -> Bool {
        let owner = UInt32(truncatingIfNeeded: state >> 32)
        guard owner > 0, owner <= Self.slots else { return false }
        if owner - 1 == slot { return true }
        // An error (never expected) counts as alive: never abandon on a doubt.
        return (try? Kernel.byteIsLocked(descriptor, at: Self.base + Int64(owner - 1))) ?? true
    }
}

/// The descriptors a `fork()`ed child must not keep (presence locks): registered while open, and
/// closed in the child by a `pthread_atfork` handler (only `close(2)`, which is safe there). The
/// registry's lock is a plain pthread mutex taken by the forking thread, so the child never finds
/// it held.
enum ForkedCopies {
    private static let guardLock = ForkGuard()
    nonisolated(unsafe) private static var numbers: Set<Int32> = []
    nonisolated(unsafe) private static var childNumbers: [Int32] = []

    private static let handlers: Void = {
        Kernel.atFork(prepare: {
            ForkedCopies.guardLock.lock()
            // Copied before the fork: the child handler must not allocate.
            ForkedCopies.childNumbers = Array(ForkedCopies.numbers)
        }, parent: {
            ForkedCopies.guardLock.unlock()
        }, child: {
            for number in ForkedCopies.childNumbers { Kernel.closeInForkedChild(number) }
            ForkedCopies.numbers.removeAll(keepingCapacity: true)
            ForkedCopies.guardLock.unlock()
        })
    }()

    static func add(_ number: Int32) {
        handlers
        guardLock.lock()
        numbers.insert(number)
        guardLock.unlock()
    }

    static func remove(_ number: Int32) {
        guardLock.lock()
        numbers.remove(number)
        guardLock.unlock()
    }
}
