#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// An absolute `CLOCK_MONOTONIC` time in nanoseconds: what DRM syncobj waits and futex waits take.
/// Relative timeouts become deadlines once, at the API boundary, so retries after `EINTR` never
/// stretch a wait.
struct Deadline: Comparable, Sendable {
    var nanoseconds: Int64

    static let never = Deadline(nanoseconds: Int64.max)

    static var now: Deadline {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Deadline(nanoseconds: Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec))
    }

    /// `now + nanoseconds`, saturating at ``never``.
    static func after(nanoseconds: Int64) -> Deadline {
        let (sum, overflow) = now.nanoseconds.addingReportingOverflow(max(0, nanoseconds))
        return overflow ? .never : Deadline(nanoseconds: sum)
    }

    static func < (a: Deadline, b: Deadline) -> Bool { a.nanoseconds < b.nanoseconds }

    /// The deadline as the `timespec` futex waits take.
    var monotonicTime: timespec {
        timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
    }

    /// Milliseconds from now to the deadline, rounded up, as `poll(2)` takes them: -1 for
    /// ``never``, 0 once passed.
    var pollTimeout: Int32 {
        guard self != .never else { return -1 }
        return Int32(clamping: max(0, (nanoseconds - Deadline.now.nanoseconds + 999_999) / 1_000_000))
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

    /// A Swift `Duration` from now; nil waits forever (inlined: that case reads no clock and
    /// costs no call).
    @inline(__always)
    static func after(_ duration: Duration?) -> Deadline {
        guard let duration else { return .never }
        return after(duration: duration)
    }

    private static func after(duration: Duration) -> Deadline {
        let (seconds, attoseconds) = duration.components
        guard seconds >= 0 else { return .now }
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        let nanoseconds = whole.addingReportingOverflow(attoseconds / 1_000_000_000).partialValue
        return overflow ? .never : .after(nanoseconds: nanoseconds)
    }
}

/// Clocks.
extension Kernel {
    /// `CLOCK_REALTIME` in 100 ns units since 1601-01-01: Windows system time, for NT absolute
    /// timeouts.
    static var windowsSystemTime: Int64 {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return (Int64(time.tv_sec) + 11_644_473_600) * 10_000_000 + Int64(time.tv_nsec) / 100
    }
}
