#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CKMTShims
import Synchronization

/// futexes on shared memory, process liveness and helper threads: what the keyed mutex and the
/// software sync objects are built from. Futex words here live in `MAP_SHARED` memory, so every
/// operation is the shared (not `FUTEX_PRIVATE_FLAG`) kind.
extension Kernel {
    /// `FUTEX_WAIT_BITSET` on a shared word until `deadline`: returns when woken, when `*word` no
    /// longer equals `expected` (at once), or at the deadline.
    ///
    /// - Returns: false when the deadline passed, true otherwise (woken, value changed, or a
    ///   signal interrupted the wait: the caller re-checks its condition in every case).
    static func futexWait(_ word: UnsafeMutablePointer<UInt32>, expected: UInt32, until deadline: Deadline) -> Bool {
        let result: Int
        if deadline == .never {
            result = kmt_futex_wait(word, expected, nil, 1)
        } else {
            var time = deadline.monotonicTime
            result = kmt_futex_wait(word, expected, &time, 1)
        }
        return result == 0 || Errno.current != .timedOut
    }

    /// `sched_yield(2)`: lets another thread (or process) run before a spinning loop looks again.
    static func yield() {
        _ = sched_yield()
    }

    /// `FUTEX_WAKE` of every waiter on a shared word.
    static func futexWakeAll(_ word: UnsafeMutablePointer<UInt32>) {
        _ = kmt_futex_wake(word, Int32.max, 1)
    }

    /// `futex_waitv(2)`: waits on several shared words at once until one is woken or changed, or
    /// the deadline passes.
    ///
    /// - Returns: false when the deadline passed.
    /// - Throws: `ENOSYS` on kernels before 5.16.
    static func futexWaitAny(_ words: [(word: UnsafeMutablePointer<UInt32>, expected: UInt32)], until deadline: Deadline) throws(Errno) -> Bool {
        var entries = words.map {
            kmt_futex_waitv_entry(val: UInt64($0.expected), uaddr: UInt64(UInt(bitPattern: $0.word)), flags: kmt_FUTEX_32, __reserved: 0)
        }
        let result: Int
        if deadline == .never {
            result = kmt_futex_waitv(&entries, UInt32(entries.count), nil)
        } else {
            var time = deadline.monotonicTime
            result = kmt_futex_waitv(&entries, UInt32(entries.count), &time)
        }
        if result >= 0 { return true }
        switch Errno.current {
        case .timedOut: return false
        case .wouldBlock, .interrupted: return true
        case let error: throw error
        }
    }

    /// This process's id, cached (the keyed mutex reads it on every acquire and release); a
    /// `fork` child starts again from `getpid()`.
    static var processID: Int32 {
        let cached = cachedProcessID.load(ordering: .relaxed)
        if cached != 0 { return cached }
        _ = forkHandlerInstalled
        let pid = getpid()
        cachedProcessID.store(pid, ordering: .relaxed)
        return pid
    }

    private static let forkHandlerInstalled: Bool = {
        pthread_atfork(nil, nil, { cachedProcessID.store(0, ordering: .relaxed) }) == 0
    }()

    /// Whether process `pid` is still running: it exists (`kill(pid, 0)`: `ESRCH` means gone,
    /// `EPERM` that it belongs to someone else) and is not a zombie waiting to be reaped (state
    /// `Z` or `X` in `/proc/PID/stat`), which can never release anything again.
    static func processRunning(_ pid: Int32) -> Bool {
        guard pid > 0 else { return false }
        guard kill(pid, 0) == 0 || Errno.current != Errno(rawValue: ESRCH) else { return false }
        // "pid (comm) S ...": the state follows the last ')' (comm may hold anything).
        guard let stat = readSmallFile("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")") else { return true }
        let state = stat[stat.index(after: close)...].drop { $0 == " " }.first
        return state != "Z" && state != "X"
    }

    /// Adds 1 to an eventfd's counter, making it readable: the Windows event of an async wait.
    static func eventfdSignal(_ fd: Int32) throws(Errno) {
        _ = try retrying { kmt_eventfd_signal(fd) }
    }

    /// Runs `body` on a new detached thread (`pthread_create`).
    static func detachedThread(_ body: @escaping @Sendable () -> Void) throws(Errno) {
        let box = Unmanaged.passRetained(ThreadBody(body))
        var thread = pthread_t()
        let result = pthread_create(&thread, nil, { argument in
            let body = Unmanaged<ThreadBody>.fromOpaque(argument!).takeRetainedValue()
            body.run()
            return nil
        }, box.toOpaque())
        guard result == 0 else {
            box.release()
            throw Errno(rawValue: result)
        }
        pthread_detach(thread)
    }

    /// `CLOCK_REALTIME` in 100 ns units since 1601-01-01: Windows system time, for NT absolute
    /// timeouts.
    static var windowsSystemTime: Int64 {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return (Int64(time.tv_sec) + 11_644_473_600) * 10_000_000 + Int64(time.tv_nsec) / 100
    }
}

/// ``Kernel/processID``'s cache; 0 until read, and again in a `fork` child.
private let cachedProcessID = Atomic<Int32>(0)

private final class ThreadBody: Sendable {
    let run: @Sendable () -> Void
    init(_ run: @escaping @Sendable () -> Void) { self.run = run }
}

extension Deadline {
    var monotonicTime: timespec {
        timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
    }

    /// An NT timeout as `D3DKMTAcquireKeyedMutex2` and the Windows wait functions take it: nil
    /// waits forever, a negative value is relative in 100 ns units, a positive one is an absolute
    /// Windows system time, 0 only tests.
    static func nt(_ timeout: Int64?) -> Deadline {
        guard let timeout else { return .never }
        if timeout <= 0 {
            let (nanoseconds, overflow) = timeout.magnitude.multipliedReportingOverflow(by: 100)
            return overflow || nanoseconds > UInt64(Int64.max) ? .never : .after(nanoseconds: Int64(nanoseconds))
        }
        let remaining = timeout - Kernel.windowsSystemTime
        let (nanoseconds, overflow) = max(0, remaining).multipliedReportingOverflow(by: 100)
        return overflow ? .never : .after(nanoseconds: nanoseconds)
    }

    /// A Swift `Duration` from now; nil waits forever.
    static func after(_ duration: Duration?) -> Deadline {
        guard let duration else { return .never }
        let (seconds, attoseconds) = duration.components
        guard seconds >= 0 else { return .now }
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? .never : .after(nanoseconds: whole.addingReportingOverflow(attoseconds / 1_000_000_000).partialValue)
    }
}
