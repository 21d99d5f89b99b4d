import Synchronization
import Testing
@testable import D3DKMT
import KMTTestSupport
#if canImport(Glibc)
import Glibc
#endif

extension D3DKMTSuite {
    /// Shared pages are hostile input (#12 item 7): a peer holding a software fence's page can
    /// make waits fail or time out, never sleep past the value being reached or past a deadline.
    @Suite struct HostilePages {
        /// Seconds since `start`.
        static func seconds(since start: Deadline) -> Double {
            Double((Deadline.now.nanoseconds - start.nanoseconds) / 1_000_000) / 1000
        }

        /// The peer keeps the sleeping-waiters word at 0 (so a signal would wake nobody) and then
        /// raises the value without a wake-up: the waiter, sleeping in 100 ms slices, sees it
        /// within a slice instead of sleeping to its 60 s deadline; with no deadline at all, too.
        @Test func aLostWakeUpEndsWithinASlice() throws {
            let adapter = try Adapter.open(luid: AdapterInfo.software.luid)
            let fence = try adapter.makeDevice().createSyncObject(.monitoredFence)
            let handle = try fence.share()
            let peer = try PeerProcess(["scribble", "3"] + luidArguments(adapter) + ["9", "300"],
                                       inherit: [handle.rawValue])
            let started = Deadline.now
            #expect(status { try SyncObject.wait(for: [(fence, 9)], timeout: .seconds(60)) } == .success)
            let waited = Self.seconds(since: started)
            print("hostile page: a lost wake-up 0.3 s into a wait was seen after \(waited) s")
            #expect(waited < 10, "the wait slept past the value")
            #expect(peer.wait().exitStatus == 0)

            let endless = try PeerProcess(["scribble", "3"] + luidArguments(adapter) + ["10", "300"],
                                          inherit: [handle.rawValue])
            let ended = Atomic<Int>(0)
            let waiter = Thread {
                ended.store((try? fence.wait(for: 10)) == nil ? 2 : 1, ordering: .sequentiallyConsistent)
            }
            let giveUp = Deadline.after(nanoseconds: 15_000_000_000)
            while ended.load(ordering: .sequentiallyConsistent) == 0, Deadline.now < giveUp { usleep(10_000) }
            #expect(ended.load(ordering: .sequentiallyConsistent) == 1, "a wait without a deadline did not end")
            if ended.load(ordering: .sequentiallyConsistent) == 0 { try fence.signal(11) }  // let it go
            waiter.join()
            #expect(endless.wait().exitStatus == 0)
        }

        /// With every SleepTicker slot taken (waits without a deadline on another fence), a wait
        /// without a deadline is not watched: it sleeps in relative slices, and a lost wake-up
        /// still ends it.
        @Test func anUnwatchedWaitWithoutADeadlineStillSeesALostWakeUp() throws {
            let adapter = try Adapter.open(luid: AdapterInfo.software.luid)
            let device = try adapter.makeDevice()
            let filler = try device.createSyncObject(.fence)
            let fillers = (0..<SleepTicker.slotCount).map { _ in Thread { try? filler.wait(for: 1) } }
            defer {
                try? filler.signal(1)
                fillers.forEach { $0.join() }
            }
            let asleep = Deadline.after(nanoseconds: 10_000_000_000)
            while filler.fenceState!.sleepingWaiters < UInt32(SleepTicker.slotCount), Deadline.now < asleep {
                usleep(1_000)
            }
            let fence = try device.createSyncObject(.monitoredFence)
            let handle = try fence.share()
            let peer = try PeerProcess(["scribble", "3"] + luidArguments(adapter) + ["5", "300"],
                                       inherit: [handle.rawValue])
            let ended = Atomic<Int>(0)
            let waiter = Thread {
                ended.store((try? fence.wait(for: 5)) == nil ? 2 : 1, ordering: .sequentiallyConsistent)
            }
            let giveUp = Deadline.after(nanoseconds: 15_000_000_000)
            while ended.load(ordering: .sequentiallyConsistent) == 0, Deadline.now < giveUp { usleep(10_000) }
            #expect(ended.load(ordering: .sequentiallyConsistent) == 1, "an unwatched wait did not end")
            if ended.load(ordering: .sequentiallyConsistent) == 0 { try fence.signal(6) }  // let it go
            waiter.join()
            #expect(peer.wait().exitStatus == 0)
        }

        /// While the peer scribbles, a wait with a deadline times out at it, not later; a wait-any
        /// too.
        @Test func aScribbledPageNeverHoldsAWaitPastItsDeadline() throws {
            let adapter = try Adapter.open(luid: AdapterInfo.software.luid)
            let device = try adapter.makeDevice()
            let fence = try device.createSyncObject(.monitoredFence)
            let other = try device.createSyncObject(.monitoredFence)
            let handle = try fence.share()
            let peer = try PeerProcess(["scribble", "3"] + luidArguments(adapter) + ["1", "1500"],
                                       inherit: [handle.rawValue])
            var started = Deadline.now
            #expect(status { try SyncObject.wait(for: [(fence, 50)], timeout: .milliseconds(300)) } == .timeout)
            #expect(Self.seconds(since: started) < 5, "a wait outlived its deadline")
            started = Deadline.now
            #expect(status {
                try SyncObject.wait(for: [(fence, 50), (other, 50)], all: false, timeout: .milliseconds(300))
            } == .timeout)
            #expect(Self.seconds(since: started) < 5, "a wait-any outlived its deadline")
            #expect(peer.wait().exitStatus == 0)
            #expect(try fence.currentValue() == 1, "the peer's scribble is the value now (it only grows)")
        }
    }

    /// Without `/proc` (#12 item 8): every call that needs it fails with `STATUS_NOT_SUPPORTED`
    /// and a text naming `/proc`, never a misleading status; what does not need it works.
    @Suite struct WithoutProc {
        @Test(.enabled(if: geteuid() == 0 && access("/usr/bin/unshare", X_OK) == 0
                           && getenv("ASAN_OPTIONS") == nil && getenv("TSAN_OPTIONS") == nil,
                       "needs root and unshare(1) to hide /proc, and no sanitizer (whose runtime reads /proc)"))
        func everyCallNeedingProcSaysSo() throws {
            let adapter = try Adapter.open(luid: AdapterInfo.software.luid)
            let peer = try runPeer(["noproc-run", "noproc"] + luidArguments(adapter))
            #expect(peer.exitStatus == 0, "peer said: \(peer.text)")
            for call in ["keyedmutex", "asyncwait", "readonly"] {
                #expect(peer.output[call] == "\(NTStatus.notSupported)", "\(call): \(peer.text)")
                #expect(peer.output[call + ".proc"] == "yes", "\(call)'s failure text does not name /proc")
            }
            #expect(peer.output["plain"] == "success", "sharing needs no /proc: \(peer.text)")
        }
    }
}
