#if DEBUG
import Synchronization

/// The fault seam, DEBUG builds only: a test plans failures for chosen system calls, and the
/// wrappers in `Kernel` return them instead of calling the kernel (swift-system's `Mocking` is
/// the model).
///
/// A plan applies to the task that installs it with ``Kernel/withFaults(_:_:)`` and to its child
/// tasks, never to other tests running in parallel, nor to threads the library starts itself (the
/// name thread, async waits). Each ``Kernel/Fault`` lets `skip` calls of its family through, then
/// fails the next `count`. A planned `EINTR` makes the wrapper behave as the kernel's would: the
/// call is restarted (a futex wait wakes spuriously), so the caller still succeeds.
///
/// ```swift
/// let plan = try Kernel.withFaults([.fail(.sendmsg, .noMemory)]) { plan in
///     #expect(status { _ = try resource.share() } == .noMemory)
///     return plan
/// }
/// #expect(plan.injected(.sendmsg) == 1)
/// ```
extension Kernel {
    /// One planned failure of a system call family.
    struct Fault: Sendable {
        var call: Call
        var error: Errno
        /// How many calls fail (`Int.max`: all of them).
        var count: Int
        /// How many calls of the family succeed first.
        var skip: Int

        /// The next `count` calls of `call`, after `skip` that succeed, fail with `error`.
        static func fail(_ call: Call, _ error: Errno, count: Int = 1, skip: Int = 0) -> Fault {
            Fault(call: call, error: error, count: count, skip: skip)
        }

        /// The next `count` calls of `call` are interrupted (`EINTR`) once each before running.
        static func interrupt(_ call: Call, count: Int = 1, skip: Int = 0) -> Fault {
            Fault(call: call, error: .interrupted, count: count, skip: skip)
        }
    }

    /// Runs `body` with `faults` planned for the calling task; returns what `body` returns. The
    /// plan passed to `body` tells which faults were injected.
    static func withFaults<R, E: Error>(_ faults: [Fault], _ body: (FaultPlan) throws(E) -> R) throws(E) -> R {
        let plan = FaultPlan(faults)
        let result: Result<R, E> = FaultPlan.$current.withValue(plan) { Result { () throws(E) in try body(plan) } }
        return try result.get()
    }

    /// The failures planned for one task, and what came of them.
    final class FaultPlan: Sendable {
        @TaskLocal static var current: FaultPlan?

        private struct State {
            var faults: [Fault]
            var calls: [Call: Int] = [:]
            var injected: [Call: Int] = [:]
            var marks: Set<String> = []
        }

        private let state: ForkSafeMutex<State>

        init(_ faults: [Fault]) { state = ForkSafeMutex(State(faults: faults)) }

        /// The error planned for this call of `call`, if any; counts the call.
        func next(_ call: Call) -> Errno? {
            state.withLock { state in
                state.calls[call, default: 0] += 1
                guard let index = state.faults.firstIndex(where: { $0.call == call && $0.count > 0 }) else {
                    return nil
                }
                if state.faults[index].skip > 0 {
                    state.faults[index].skip -= 1
                    return nil
                }
                state.faults[index].count -= 1
                state.injected[call, default: 0] += 1
                return state.faults[index].error
            }
        }

        /// How many calls of `call` asked the seam (injected or not).
        func calls(_ call: Call) -> Int { state.withLock { $0.calls[call, default: 0] } }

        /// How many faults were injected into calls of `call`.
        func injected(_ call: Call) -> Int { state.withLock { $0.injected[call, default: 0] } }

        /// How many faults were injected in all.
        var totalInjected: Int { state.withLock { $0.injected.values.reduce(0, +) } }

        /// Records `mark`: what the code under test remembers, for the rest of the process, after a
        /// failure (``Names``' "pidfds are refused here") is remembered in the plan instead while
        /// one is installed, so that one test's injected failures do not change other tests.
        func mark(_ mark: String) { state.withLock { _ = $0.marks.insert(mark) } }

        /// Whether ``mark(_:)`` recorded `mark` in this plan.
        func isMarked(_ mark: String) -> Bool { state.withLock { $0.marks.contains(mark) } }
    }
}
#endif
