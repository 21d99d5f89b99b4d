import Testing
import Synchronization
@testable import D3DKMT
#if canImport(Glibc)
import Glibc
#endif

/// Whether sync objects can be made on this adapter (not on vgem: no timeline syncobjs).
func hasSyncObjects(_ adapter: Adapter) -> Bool {
    adapter.info.isSoftware || adapter.info.capabilities.contains(.timelineSyncObject)
}

/// A shareable one-allocation resource with a keyed mutex and a monitored fence, shared together.
func makeGuardedResource(on device: Device, initialKey: UInt64 = 0) throws -> (Resource, KeyedMutex, SyncObject) {
    let resource = try device.createResource(allocations: [(.new(AllocationDescriptor(size: 4096)), [])])
    let mutex = try KeyedMutex.create(initialKey: initialKey, runtimeData: [1, 2, 3, 4])
    let sync = try device.createSyncObject(.monitoredFence)
    return (resource, mutex, sync)
}

extension D3DKMTSuite {
    @Suite struct KeyedMutexes {
        @Test(arguments: adaptersUnderTest)
        func tenThousandHandoffsBetweenTwoProcesses(adapter: Adapter) throws {
            let device = try readyDevice(adapter)
            guard hasSyncObjects(adapter) else {
                #expect(status { _ = try device.createSyncObject(.monitoredFence) } == .notSupported)
                return
            }
            try expectNoDescriptorLeak("10,000 keyed mutex handoffs") {
                let (resource, mutex, sync) = try makeGuardedResource(on: device)
                let handle = try resource.share(keyedMutex: mutex, syncObject: sync)
                let rounds: UInt64 = 10_000
                let peer = try PeerProcess(["pingpong", "3"] + luidArguments(adapter) + [String(rounds)],
                                           inherit: [handle.rawValue])
                let mapping = try resource.allocations[0].map()
                let word = mapping.baseAddress.assumingMemoryBound(to: UInt64.self)
                var mismatches = 0
                for round in 0..<rounds {
                    let acquired = try mutex.acquire(key: 0, timeout: .seconds(60))
                    // What the peer wrote in the previous round (0 before the first).
                    if word.pointee != 2 * round || acquired.fenceValue != 2 * round { mismatches += 1 }
                    word.pointee = 2 * round + 1
                    try mutex.release(key: 1, fenceValue: 2 * round + 1)
                }
                let last = try mutex.acquire(key: 0, timeout: .seconds(60))
                #expect(word.pointee == 2 * rounds && last.fenceValue == 2 * rounds)
                try mutex.release(key: 0)
                let result = peer.wait()
                #expect(result.exitStatus == 0, "peer said: \(result.text)")
                #expect(result.output["handoffs"] == String(rounds))
                #expect(mismatches == 0)
                // The sync object travelled with them: the peer's signal is seen here.
                #expect(try sync.currentValue() == rounds)
            }
        }

        @Test func aNewMutexIsReleasedWithItsInitialKeyAndCarriesPrivateData() throws {
            let mutex = try KeyedMutex.create(initialKey: 5, runtimeData: [7, 7, 7])
            #expect(status { _ = try mutex.acquire(key: 0, timeout: .zero) } == .timeout)
            let acquired = try mutex.acquire(key: 5, timeout: .zero)
            #expect(acquired.fenceValue == 0 && acquired.runtimeData == [7, 7, 7])
            try mutex.release(key: 6, fenceValue: 42, runtimeData: [1, 2])
            let next = try mutex.acquire(key: 6, timeout: .zero)
            #expect(next.fenceValue == 42 && next.runtimeData == [1, 2])
            // Private data larger than the mutex was created with is refused, and it stays owned.
            #expect(status { try mutex.release(key: 0, runtimeData: [1, 2, 3, 4]) } == .invalidParameter)
            try mutex.release(key: 0)
        }

        @Test func timeoutsOwnershipAndOtherKeys() throws {
            let device = try Adapter.open(luid: AdapterInfo.software.luid).makeDevice()
            try expectNoDescriptorLeak("keyed mutex timeouts") {
                let (resource, mutex, sync) = try makeGuardedResource(on: device)
                let handle = try resource.share(keyedMutex: mutex, syncObject: sync)
                let other = try KeyedMutex.open(handle)
                #expect(other.runtimeData == [1, 2, 3, 4])
                // Wrong key: a try, a relative timeout, and an NT-style relative timeout.
                #expect(status { _ = try mutex.acquire(key: 1, timeout: .zero) } == .timeout)
                #expect(status { _ = try mutex.acquire(key: 1, timeout: .milliseconds(30)) } == .timeout)
                #expect(status { _ = try mutex.acquire(key: 1, ntTimeout: -300_000) } == .timeout)
                // An absolute NT time in the past is a try.
                #expect(status { _ = try mutex.acquire(key: 1, ntTimeout: 1) } == .timeout)
                _ = try mutex.acquire(key: 0, timeout: .zero)
                // Owned: nobody else gets it, and only the owning open can release it.
                #expect(status { _ = try other.acquire(key: 0, timeout: .zero) } == .timeout)
                #expect(status { try other.release(key: 1) } == .invalidParameter)
                #expect(status { _ = try mutex.acquire(key: 0, timeout: .zero) } == .invalidParameter)

                // A waiter for key 2 keeps waiting through a release to key 1; the waiter for key 1 gets it.
                let outcomes = Locked<[UInt64: NTStatus]>([:])
                let waiters = [UInt64(1), 2].map { key in
                    Thread {
                        let result = status {
                            _ = try other.acquire(key: key, timeout: .milliseconds(key == 1 ? 30_000 : 300))
                        }
                        outcomes.withLock { $0[key] = result }
                    }
                }
                usleep(50_000)
                try mutex.release(key: 1)
                waiters.forEach { $0.join() }
                #expect(outcomes.withLock { $0 } == [1: .success, 2: .timeout])
                try other.release(key: 0)
            }
        }

        @Test func destroyingWhileOwningAbandons() throws {
            let device = try Adapter.open(luid: AdapterInfo.software.luid).makeDevice()
            let (resource, mutex, sync) = try makeGuardedResource(on: device)
            let handle = try resource.share(keyedMutex: mutex, syncObject: sync)
            var holder: KeyedMutex? = try KeyedMutex.open(handle)
            _ = try holder!.acquire(key: 0, timeout: .zero)
            holder = nil
            #expect(status { _ = try mutex.acquire(key: 0, timeout: .seconds(5)) } == .abandoned)
            #expect(status { _ = try mutex.acquire(key: 7, timeout: .zero) } == .abandoned)
            #expect(status { try mutex.release(key: 0) } == .abandoned)
            #expect(mutex.isAbandoned)
        }

        @Test(arguments: adaptersUnderTest.filter(hasSyncObjects))
        func anOwnerKilledBySIGKILLAbandonsTheMutex(adapter: Adapter) throws {
            let device = try readyDevice(adapter)
            try expectNoDescriptorLeak("abandonment") {
                let (resource, mutex, sync) = try makeGuardedResource(on: device)
                let handle = try resource.share(keyedMutex: mutex, syncObject: sync)
                let peer = try PeerProcess(["hold", "3"], inherit: [handle.rawValue])
                #expect(peer.readLine() == "acquired")
                #expect(status { _ = try mutex.acquire(key: 0, timeout: .zero) } == .timeout)
                // Waiters for the released key and for another key, blocked before the owner dies.
                let outcomes = Locked<[UInt64: NTStatus]>([:])
                let waiters = [UInt64(0), 9].map { key in
                    Thread {
                        let result = status { _ = try mutex.acquire(key: key, timeout: .seconds(60)) }
                        outcomes.withLock { $0[key] = result }
                    }
                }
                usleep(50_000)
                kill(peer.pid, SIGKILL)
                // The waiters see the abandonment before the dead owner is reaped (a zombie
                // releases nothing).
                waiters.forEach { $0.join() }
                #expect(outcomes.withLock { $0 } == [0: .abandoned, 9: .abandoned])
                #expect(peer.wait().exitStatus == 128 + SIGKILL)
                #expect(status { _ = try mutex.acquire(key: 0) } == .abandoned)
                #expect(status { try mutex.release(key: 0) } == .abandoned)
            }
        }

        @Test(arguments: adaptersUnderTest.filter(hasSyncObjects))
        func aWaiterWithoutADeadlineSeesTheOwnersDeath(adapter: Adapter) throws {
            let device = try readyDevice(adapter)
            try expectNoDescriptorLeak("abandonment seen without a deadline") {
                let (resource, mutex, sync) = try makeGuardedResource(on: device)
                let handle = try resource.share(keyedMutex: mutex, syncObject: sync)
                let peer = try PeerProcess(["hold", "3"], inherit: [handle.rawValue])
                #expect(peer.readLine() == "acquired")
                // The only waiter, so no other one's look at the owner wakes it: its sleeps are
                // relative slices (no clock read), and after each it must look at the owner itself.
                let outcome = Locked<NTStatus?>(nil)
                let waiter = Thread {
                    let result = status { _ = try mutex.acquire(key: 0) }
                    outcome.withLock { $0 = result }
                }
                usleep(50_000)
                kill(peer.pid, SIGKILL)
                // Within seconds (a slice is 100 ms); a waiter that never looks would wait for ever.
                let limit = Deadline.after(nanoseconds: 20_000_000_000)
                while outcome.withLock({ $0 }) == nil, Deadline.now < limit { usleep(10_000) }
                #expect(outcome.withLock { $0 } == .abandoned)
                if outcome.withLock({ $0 }) != nil { waiter.join() }
                #expect(peer.wait().exitStatus == 128 + SIGKILL)
            }
        }

        @Test(.enabled(if: hasDriver("virtio_gpu"), "needs virtio_gpu (VM guest)"))
        func fenceValuesArePointsOnTheMutexTimeline() throws {
            let found = D3DKMTTests.adapter(driver: "virtio_gpu")
            let virtio = try #require(found)
            let device = try readyDevice(virtio)
            try expectNoDescriptorLeak("keyed mutex timeline") {
                let (resource, mutex, sync) = try makeGuardedResource(on: device)
                let handle = try resource.share(keyedMutex: mutex, syncObject: sync)
                let other = try KeyedMutex.open(handle)
                // The producer's "GPU" signals point 5 on the shared timeline and releases with 5.
                let producerTimeline = try mutex.exportTimeline()
                let drm = try #require(device.backend as? DRMDevice)
                let producerHandle = try Kernel.syncobjImport(drm.render, producerTimeline.borrowed)
                defer { Kernel.syncobjDestroy(drm.render, producerHandle) }
                _ = try mutex.acquire(key: 0)
                try mutex.release(key: 1, fenceValue: 5)
                // The consumer learns 5 and its "GPU" waits on its own import of the same timeline.
                let acquired = try other.acquire(key: 1, timeout: .zero)
                #expect(acquired.fenceValue == 5)
                let consumerTimeline = try other.exportTimeline()
                let consumerHandle = try Kernel.syncobjImport(drm.render, consumerTimeline.borrowed)
                defer { Kernel.syncobjDestroy(drm.render, consumerHandle) }
                #expect(throws: Errno.timerExpired) {
                    _ = try Kernel.syncobjWait(drm.render, handles: [consumerHandle], points: [5], all: true,
                                               until: .after(nanoseconds: 10_000_000))
                }
                try Kernel.syncobjTimelineSignal(drm.render, producerHandle, point: 5)
                _ = try Kernel.syncobjWait(drm.render, handles: [consumerHandle], points: [5], all: true,
                                           until: .after(nanoseconds: 5_000_000_000))
                try other.release(key: 0)
            }
        }

        @Test(.enabled(if: !adaptersUnderTest.contains { $0.info.capabilities.contains(.timelineSyncObject) },
                       "host without DRM timelines"))
        func withoutADRMTimelineTheMutexHasNone() throws {
            let mutex = try KeyedMutex.create()
            #expect(status { _ = try mutex.exportTimeline() } == .notSupported)
        }
    }
}
