import Testing
@testable import D3DKMT
import KMTTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Threads of this process (`/proc/self/task`).
func threadCount() -> Int { Kernel.directoryEntries("/proc/self/task").count }

/// The threads of this process called `name` (`/proc/self/task/TID/comm`).
func threads(named name: String) -> Int {
    Kernel.directoryEntries("/proc/self/task").filter {
        Kernel.readSmallFile("/proc/self/task/\($0)/comm")?.hasPrefix(name) == true
    }.count
}

/// Waits (bounded: 10 s) until `condition` holds; whether it did.
func eventually(_ condition: () -> Bool) -> Bool {
    for _ in 0..<1000 {
        if condition() { return true }
        usleep(10_000)
    }
    return condition()
}

/// The open descriptor count once it has stayed the same for 100 ms (at most 5 s): what a test
/// measures before it starts while the event thread may still be retiring an earlier test's names
/// or dropping its finished waits.
func quietDescriptorCount() -> Int {
    var count = openDescriptorCount(), still = 0
    for _ in 0..<500 where still < 10 {
        usleep(10_000)
        let now = openDescriptorCount()
        still = now == count ? still + 1 : 0
        count = now
    }
    return count
}

/// Raises the soft `RLIMIT_NOFILE` to at least `wanted` (within the hard limit) for `body`.
func withDescriptorLimit<R>(atLeast wanted: rlim_t, _ body: () throws -> R) rethrows -> R {
    var saved = rlimit()
    getrlimit(Int32(RLIMIT_NOFILE.rawValue), &saved)
    var raised = saved
    raised.rlim_cur = max(saved.rlim_cur, min(wanted, saved.rlim_max))
    setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised)
    defer { setrlimit(Int32(RLIMIT_NOFILE.rawValue), &saved) }
    return try body()
}

extension D3DKMTSuite {
    /// The process's one event thread (#12 item 3): async waits and names share it, nothing waits
    /// on a thread of its own, and destroying sync objects ends their waits.
    @Suite struct EventThread {
        static let withSyncObjects = adaptersUnderTest.filter(hasSyncObjects)

        /// The sleep ticker (the library's only other thread) runs while a wait without a deadline
        /// sleeps, and ends on its own once nothing is watched: one thread at most, never one per
        /// wait, and none left behind.
        @Test func theSleepTickerRunsOnlyWhileWaitsWithoutADeadlineSleep() throws {
            let device = try Adapter.open(luid: AdapterInfo.software.luid).makeDevice()
            let fence = try device.createSyncObject(.fence)
            #expect(eventually { threads(named: "d3dkmt-ticker") == 0 }, "a ticker from an earlier test stays")
            let waiters = (0..<3).map { _ in Thread { try? fence.wait(for: 1) } }
            #expect(eventually { fence.fenceState!.sleepingWaiters == 3 && threads(named: "d3dkmt-ticker") == 1 })
            try fence.signal(1)
            waiters.forEach { $0.join() }
            #expect(eventually { threads(named: "d3dkmt-ticker") == 0 }, "the ticker did not end")
        }

        /// 1,000 async waits that are never satisfied, on 10 sync objects (single waits, wait-all
        /// and wait-any over two objects), run on one thread; destroying the objects cancels them
        /// all and the thread and every descriptor they held go.
        @Test(arguments: withSyncObjects)
        func aThousandNeverSatisfiedWaitsEndWithTheirObjects(adapter: Adapter) throws {
            try withDescriptorLimit(atLeast: 4096) {
                let device = try adapter.makeDevice()
                // The thread and its two descriptors, for the life of the process, from here.
                try EventLoop.shared.after(.now) {}
                let threadsBefore = threadCount(), descriptorsBefore = openDescriptorCount()
                let event = try Kernel.eventfd()
                var peakThreads = 0, peakDescriptors = 0
                do {
                    let objects = try (0..<10).map { _ in try device.createSyncObject(.monitoredFence) }
                    let withObjects = openDescriptorCount()
                    for index in 0..<1000 {
                        let first = objects[index % 10], second = objects[(index + 1) % 10]
                        let far = UInt64(1_000_000 + index)
                        switch index % 3 {
                        case 0: try SyncObject.notify(eventfd: event.rawValue, when: [(first, far)])
                        case 1: try SyncObject.notify(eventfd: event.rawValue, when: [(first, far), (second, far)])
                        default:
                            try SyncObject.notify(eventfd: event.rawValue, when: [(first, far), (second, far)],
                                                  all: false)
                        }
                    }
                    peakThreads = threadCount()
                    peakDescriptors = openDescriptorCount()
                    // (Other threads of the test runner may end meanwhile, never start for a wait.)
                    #expect(peakThreads <= threadsBefore, "the one event thread serves every wait")
                    #expect(objects.map(\.pendingAsyncWaits).reduce(0, +) == 1000 + 666)
                    // One duplicate of the event per wait, and on DRM one eventfd per object for the
                    // kernel.
                    let perObject = objects[0].timeline == nil ? 0 : 10
                    #expect(peakDescriptors == withObjects + 1000 + perObject)
                    #expect(try !readable(event.rawValue, within: 20))
                }
                // The objects are destroyed: every wait is cancelled, never signalled.
                #expect(eventually { threadCount() <= threadsBefore && openDescriptorCount() == descriptorsBefore + 1 })
                #expect(threadCount() <= threadsBefore, "threads after the objects went")
                #expect(openDescriptorCount() == descriptorsBefore + 1, "descriptors after the objects went")
                #expect(try !readable(event.rawValue, within: 0), "a cancelled wait signalled its event")
                print("event thread, \(adapter.info.driverName): 1,000 waits: threads \(threadsBefore) -> "
                      + "\(peakThreads) -> \(threadCount()), descriptors \(descriptorsBefore) -> \(peakDescriptors) -> "
                      + "\(openDescriptorCount() - 1) (+1: the test's event)")
            }
        }

        /// An async wait is satisfied by a signal from another process: on DRM through the
        /// kernel's eventfd, on the software adapter by the event thread's periodic look. Destroying
        /// one of two objects of a wait-all cancels the wait and the other object keeps nothing.
        @Test(arguments: withSyncObjects)
        func anotherProcessSignalSatisfiesAnAsyncWait(adapter: Adapter) throws {
            let device = try adapter.makeDevice()
            let before = openDescriptorCount()
            do {
                let fence = try device.createSyncObject(.monitoredFence)
                let handle = try fence.share()
                let event = try Kernel.eventfd()
                try SyncObject.notify(eventfd: event.rawValue, when: [(fence, 7)])
                #expect(try !readable(event.rawValue, within: 50))
                let peer = try PeerProcess(["signal", "3"] + luidArguments(adapter) + ["7", "100"],
                                           inherit: [handle.rawValue])
                #expect(try readable(event.rawValue, within: 15_000), "the other process's signal was missed")
                #expect(peer.wait().exitStatus == 0)
                #expect(fence.pendingAsyncWaits == 0)

                let other = try device.createSyncObject(.fence)
                let cancelled = try Kernel.eventfd()
                do {
                    let doomed = try device.createSyncObject(.fence)
                    try SyncObject.notify(eventfd: cancelled.rawValue, when: [(other, 5), (doomed, 5)])
                    #expect(other.pendingAsyncWaits == 1)
                }
                #expect(other.pendingAsyncWaits == 0, "destroying one object of a wait-all cancels it")
                try other.signal(5)
                #expect(try !readable(cancelled.rawValue, within: 50), "a cancelled wait signalled its event")
            }
            #expect(eventually { openDescriptorCount() == before }, "async waits leaked descriptors")
        }

        /// The generic API: a watched descriptor's handler runs on the event thread, a timer fires
        /// once, a cancelled watch never runs again, and none of it starts a thread of its own.
        @Test func watchesAndTimersRunOnTheOneThread() throws {
            try EventLoop.shared.after(.now) {}
            let threadsBefore = threadCount()
            let fired = Locked<[String]>([])
            let event = try Kernel.eventfd()
            let watched = try EventLoop.shared.watch(event.borrowed, .readable) { _ in
                Kernel.eventfdDrain(event.borrowed)
                fired.withLock { $0.append("watch") }
            }
            try EventLoop.shared.after(.after(nanoseconds: 20_000_000)) { fired.withLock { $0.append("timer") } }
            try Kernel.eventfdSignal(event.borrowed)
            #expect(eventually { fired.withLock { $0.contains("watch") && $0.contains("timer") } })
            #expect(threadCount() <= threadsBefore, "a watch or a timer started a thread")
            EventLoop.shared.cancel(watched)
            try Kernel.eventfdSignal(event.borrowed)
            usleep(50_000)
            #expect(fired.withLock { $0.filter { $0 == "watch" }.count } == 1, "a cancelled watch ran")
            #expect(fired.withLock { $0.filter { $0 == "timer" }.count } == 1, "a timer fired twice")
        }
    }
}
