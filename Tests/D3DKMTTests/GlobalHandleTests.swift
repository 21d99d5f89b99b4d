import Testing
@testable import D3DKMT
import KMTTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Global (KMT) share handles through the Swift API, across real processes (the C ABI's are in
/// Tests/c/global_handles.c and windows_conformance.c).
extension D3DKMTSuite {
    @Suite struct GlobalHandles {
        /// A value has Windows' global shape: bits 31 and 30 set, the low 6 bits 2.
        static func hasGlobalShape(_ value: UInt32) -> Bool { value & 0xC000_0000 == 0xC000_0000 && value & 0x3F == 2 }

        @Test(arguments: adaptersUnderTest)
        func aResourceOpensByValueInAnotherProcessUntilItsLastReferenceGoes(adapter: Adapter) throws {
            let device = try adapter.makeDevice()
            var resource: Resource? = try device.createResource(
                allocations: [(.new(AllocationDescriptor(size: 8192)), [])], runtimeData: [1, 2, 3],
                shareable: false, globalShare: true)
            let value = try #require(resource?.globalHandle)
            #expect(Self.hasGlobalShape(value))
            // As on Windows, a resource with a global handle is not shared by NT handle.
            #expect(status { _ = try resource!.share() } == .invalidParameter)
            let mapping = try resource!.allocations[0].map()
            TestPattern.fill(mapping.bytes, seed: 41, allocation: 0)
            let peer = try PeerProcess(["open-global", String(value)] + luidArguments(adapter) + ["41"], input: true)
            #expect(peer.readLine() == "runtime=010203")
            #expect(peer.readLine() == "opened")
            #expect(TestPattern.firstMismatch(UnsafeRawBufferPointer(mapping.bytes), seed: 42, allocation: 0) == nil)
            // The creator lets go; the peer's reference keeps the value.
            _ = consume mapping
            resource = nil
            #expect(status { _ = try device.resourceInfo(globalHandle: value) } == .success)
            peer.send("drop")
            let result = peer.wait()
            #expect(result.exitStatus == 0, "peer said: \(result.text)")
            #expect(result.output["status"] == "\(NTStatus.invalidParameter)", "peer said: \(result.text)")
            #expect(status { _ = try device.resourceInfo(globalHandle: value) } == .invalidParameter)
        }

        @Test(arguments: adaptersUnderTest)
        func theValueOutlivesItsCreatorWhileAnotherProcessHoldsIt(adapter: Adapter) throws {
            let device = try adapter.makeDevice()
            let creator = try PeerProcess(["share-global"] + luidArguments(adapter) + ["51"], input: true)
            let line = try #require(creator.readLine())
            let value = try #require(UInt32(line.dropFirst("value=".count)), "creator said: \(line)")
            #expect(Self.hasGlobalShape(value))
            var held: Resource? = try device.openResource(globalHandle: value)
            #expect(held?.runtimeData == Array("global".utf8))
            creator.send("exit")
            #expect(creator.wait().exitStatus == 0)
            // The creator is gone (without destroying anything): a third process opens the value
            // from this one, and after dropping its own reference it still opens (this one holds).
            let third = try PeerProcess(["open-global", String(value)] + luidArguments(adapter) + ["51"], input: true)
            #expect(third.readLine() == "runtime=" + hex(Array("global".utf8)))
            #expect(third.readLine() == "opened")
            third.closeInput()
            let result = third.wait()
            #expect(result.exitStatus == 0, "third said: \(result.text)")
            #expect(result.output["status"] == "success", "third said: \(result.text)")
            let mapping = try #require(held?.allocations[0]).map(writable: false)
            #expect(TestPattern.firstMismatch(UnsafeRawBufferPointer(mapping.bytes), seed: 52, allocation: 0) == nil)
            _ = consume mapping
            held = nil
            #expect(status { _ = try device.openResource(globalHandle: value) } == .invalidParameter)
        }

        @Test func aStoppedHolderIsPassedOverAndAloneGivesATimeout() throws {
            let device = try Adapter.open(luid: AdapterInfo.software.luid).makeDevice()
            let luid = luidArguments(device.adapter)
            let creator = try PeerProcess(["share-global"] + luid + ["61"], input: true)
            let line = try #require(creator.readLine())
            let value = try #require(UInt32(line.dropFirst("value=".count)), "creator said: \(line)")
            let holder = try PeerProcess(["open-global", String(value)] + luid + ["61"], input: true)
            #expect(holder.readLine()?.hasPrefix("runtime=") == true)
            #expect(holder.readLine() == "opened")
            kill(creator.pid, SIGSTOP)
            defer {
                kill(creator.pid, SIGCONT)
                creator.send("exit")
                _ = creator.wait()
            }
            // Two holders, one stopped: the other answers.
            #expect(status { _ = try device.resourceInfo(globalHandle: value) } == .success)
            // The other one dies (its socket then refuses connections); only the stopped one is left:
            // a bounded failure, not a hang.
            kill(holder.pid, SIGKILL)
            #expect(holder.wait().exitStatus == 128 + SIGKILL)
            let bound = Deadline.after(nanoseconds: 15_000_000_000)
            #expect(status { _ = try device.resourceInfo(globalHandle: value) } == .ioTimeout)
            #expect(Deadline.now < bound, "the lookup took more than 15 s")
        }

        /// The value counter is locked only while a value is drawn: a process stopped holding it
        /// (here: another open file description of it, locked) makes creation fail within a bound.
        @Test func aHeldValueCounterGivesATimeoutNotAHang() throws {
            let device = try Adapter.open(luid: AdapterInfo.software.luid).makeDevice()
            let counter = try Kernel.open(try D3DKMT.Names.directory() + "/g-counter", O_RDWR | O_CREAT, mode: 0o600)
            let locked = try Kernel.tryLockByte(counter.borrowed, at: 0)
            try #require(locked)
            let bound = Deadline.after(nanoseconds: 15_000_000_000)
            #expect(status {
                _ = try device.createResource(allocations: [(.new(AllocationDescriptor(size: 4096)), [])],
                                              shareable: false, globalShare: true)
            } == .ioTimeout)
            #expect(Deadline.now < bound, "creation took more than 15 s")
            _ = consume counter  // unlocked: creation works again
            let resource = try device.createResource(allocations: [(.new(AllocationDescriptor(size: 4096)), [])],
                                                     shareable: false, globalShare: true)
            #expect(resource.globalHandle != nil)
        }

        @Test func keyedMutexesAndSyncObjectsOpenByValue() throws {
            let mutex = try KeyedMutex.create(shareable: false, globalShare: true)
            let value = try #require(mutex.globalHandle)
            #expect(Self.hasGlobalShape(value))
            var other: KeyedMutex? = try KeyedMutex.open(globalHandle: value)
            #expect(other?.globalHandle == value)
            _ = try mutex.acquire(key: 0, timeout: .zero)
            try mutex.release(key: 1, fenceValue: 9)
            #expect(try other!.acquire(key: 1, timeout: .seconds(5)).fenceValue == 9)
            other = nil  // dropped while owning it: abandoned, as on Windows
            #expect(status { _ = try mutex.acquire(key: 1, timeout: .zero) } == .abandoned)
            #expect(status { _ = try KeyedMutex.create(shareable: true, globalShare: true) } == .invalidParameter)

            let device = try Adapter.open(luid: AdapterInfo.software.luid).makeDevice()
            let fence = try device.createSyncObject(.fence, flags: SyncObject.Flags.shared)
            let fenceValue = try #require(fence.globalHandle)
            #expect(!fence.isShareable)  // not by NT handle
            let opened = try SyncObject.open(globalHandle: fenceValue)
            try opened.signal(3)
            try SyncObject.wait(for: [(fence, 3)], timeout: .seconds(5))
            // A value names one kind of object.
            #expect(status { _ = try KeyedMutex.open(globalHandle: fenceValue) } == .invalidParameter)
            #expect(status { _ = try SyncObject.open(globalHandle: value) } == .invalidParameter)
            #expect(status { _ = try device.openResource(globalHandle: value) } == .invalidParameter)
        }

        @Test func forgedAndStaleValuesOpenNothingAndLeakNothing() throws {
            let device = try Adapter.open(luid: AdapterInfo.software.luid).makeDevice()
            var resource: Resource? = try device.createResource(
                allocations: [(.new(AllocationDescriptor(size: 4096)), [])], shareable: false, globalShare: true)
            let stale = try #require(resource?.globalHandle)
            resource = nil
            // A holding's socket closes on the event thread: wait for the count to settle.
            var before = openDescriptorCount()
            for _ in 0..<100 {
                usleep(10_000)
                let now = openDescriptorCount()
                if now == before { break }
                before = now
            }
            let random = 0xC000_0002 | (UInt32.random(in: 1..<(1 << 24)) << 6)
            expectNoDescriptorLeak("forged global handles") {
                for forged: UInt32 in [0, 0x1EAD_BEED, 0xC000_0000, 0xC000_0002, 0xC000_0043, stale, random] {
                    #expect(status { _ = try device.openResource(globalHandle: forged) } == .invalidParameter)
                    #expect(status { _ = try device.resourceInfo(globalHandle: forged) } == .invalidParameter)
                    #expect(status { _ = try KeyedMutex.open(globalHandle: forged) } == .invalidParameter)
                    #expect(status { _ = try SyncObject.open(globalHandle: forged) } == .invalidParameter)
                }
            }
            // A new object never gets the stale value.
            let next = try device.createResource(allocations: [(.new(AllocationDescriptor(size: 4096)), [])],
                                                 shareable: false, globalShare: true)
            #expect(next.globalHandle != stale)
        }
    }
}
