#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CKMTShims

/// Futexes on shared memory: what the keyed mutex and the software sync objects sleep on. Futex
/// words here live in `MAP_SHARED` memory, so every operation is the shared (not
/// `FUTEX_PRIVATE_FLAG`) kind.
extension Kernel {
    /// `FUTEX_WAIT_BITSET` on a shared word until `deadline`: returns when woken, when `*word` no
    /// longer equals `expected` (at once), or at the deadline.
    ///
    /// - Returns: false when the deadline passed, true otherwise (woken, value changed, or a
    ///   signal interrupted the wait: the caller re-checks its condition in every case).
    static func futexWait(
        _ word: UnsafeMutablePointer<UInt32>, expected: UInt32, until deadline: Deadline
    ) -> Bool {
        if let fault = injectedFault(.futex) { return fault != .timedOut }
        let result: Int
        if deadline == .never {
            result = kmt_futex_wait(word, expected, nil, 1)
        } else {
            var time = deadline.monotonicTime
            result = kmt_futex_wait(word, expected, &time, 1)
        }
        return result == 0 || Errno.current != .timedOut
    }

    /// `FUTEX_WAIT` on a shared word for at most `nanoseconds` (a relative timeout: no clock is
    /// read here, and the kernel restarts a wait a signal interrupted with the time left): returns
    /// when woken, when `*word` no longer equals `expected` (at once), or when the time is up. For
    /// bounded sleeps of a wait without a deadline, where the bound is a liveness slice.
    ///
    /// - Returns: false when the time ran out, true otherwise (the caller re-checks its condition).
    static func futexWait(_ word: UnsafeMutablePointer<UInt32>, expected: UInt32, for nanoseconds: Int64) -> Bool {
        if let fault = injectedFault(.futex) { return fault != .timedOut }
        return kmt_futex_wait_for(word, expected, nanoseconds, 1) == 0 || Errno.current != .timedOut
    }

    /// `FUTEX_WAKE` of every waiter on a shared word. Not subject to the fault seam (it cannot
    /// fail on a valid word).
    static func futexWakeAll(_ word: UnsafeMutablePointer<UInt32>) {
        _ = kmt_futex_wake(word, Int32.max, 1)
    }

    /// `futex_waitv(2)`: waits on several shared words at once until one is woken or changed, or
    /// the deadline passes.
    ///
    /// - Returns: false when the deadline passed.
    /// - Throws: `ENOSYS` on kernels before 5.16.
    static func futexWaitAny(
        _ words: [(word: UnsafeMutablePointer<UInt32>, expected: UInt32)], until deadline: Deadline
    ) throws(Errno) -> Bool {
        let error: Errno
        if let fault = injectedFault(.futexWaitv) {
            error = fault
        } else {
            var entries = words.map {
                kmt_futex_waitv_entry(
                    val: UInt64($0.expected), uaddr: UInt64(UInt(bitPattern: $0.word)), flags: kmt_FUTEX_32,
                    __reserved: 0)
            }
            let result: Int
            if deadline == .never {
                result = kmt_futex_waitv(&entries, UInt32(entries.count), nil)
            } else {
                var time = deadline.monotonicTime
                result = kmt_futex_waitv(&entries, UInt32(entries.count), &time)
            }
            if result >= 0 { return true }
            error = Errno.current
        }
        switch error {
        case .timedOut: return false
        case .wouldBlock, .interrupted: return true
        case let error: throw error
        }
    }
}
