import Testing
import Synchronization
@testable import D3DKMT
#if canImport(Glibc)
import Glibc
#endif

/// Keyed mutex owners in other pid namespaces (a container or a Flatpak app sharing with the
/// host): an owner is judged alive or dead by its open's presence lock, which the kernel drops
/// when the owner's files close, never by a pid, which means nothing across namespaces.
extension D3DKMTSuite {
    @Suite struct KeyedMutexNamespaces {
        /// The owner is pid 1 of a new pid namespace: as long as it lives the mutex is not
        /// abandoned; once it is killed every waiter here sees the abandonment (a pid check would
        /// have found this namespace's pid 1 alive for ever).
        @Test(.enabled(if: getuid() == 0, "needs root (unshare(CLONE_NEWPID))"))
        func anOwnerInAnotherPidNamespaceIsAliveUntilItDies() throws {
            let device = try Adapter.open(luid: AdapterInfo.software.luid).makeDevice()
            try expectNoDescriptorLeak("owner in another pid namespace") {
                let (resource, mutex, sync) = try makeGuardedResource(on: device)
                let handle = try resource.share(keyedMutex: mutex, syncObject: sync)
                let peer = try PeerProcess(["pidns", "hold", "3"], inherit: [handle.rawValue])
                #expect(peer.readLine() == "acquired")
                // Several liveness looks (100 ms each) while the owner lives: no abandonment.
                #expect(status { _ = try mutex.acquire(key: 0, timeout: .milliseconds(450)) } == .timeout)
                let outcome = Locked<NTStatus?>(nil)
                let waiter = Thread {
                    let result = status { _ = try mutex.acquire(key: 0, timeout: .seconds(15)) }
                    outcome.withLock { $0 = result }
                }
                usleep(50_000)
                kill(peer.pid, SIGKILL)
                waiter.join()
                #expect(outcome.withLock { $0 } == .abandoned)
                _ = peer.wait()
            }
        }

        /// The waiter is in a new pid namespace and the owner here: the owner's pid does not exist
        /// there, yet the waiter sees a live owner and times out, with no false abandonment.
        @Test(.enabled(if: getuid() == 0, "needs root (unshare(CLONE_NEWPID))"))
        func aWaiterInAnotherPidNamespaceSeesALiveOwner() throws {
            let device = try Adapter.open(luid: AdapterInfo.software.luid).makeDevice()
            try expectNoDescriptorLeak("waiter in another pid namespace") {
                let (resource, mutex, sync) = try makeGuardedResource(on: device)
                let handle = try resource.share(keyedMutex: mutex, syncObject: sync)
                _ = try mutex.acquire(key: 0)
                let peer = try runPeer(["pidns", "acquire", "3", "450"], inherit: [handle.rawValue])
                #expect(peer.output["status"] == "\(NTStatus.timeout)", "peer said: \(peer.text)")
                #expect(!mutex.isAbandoned)
                try mutex.release(key: 0)
            }
        }
    }
}
