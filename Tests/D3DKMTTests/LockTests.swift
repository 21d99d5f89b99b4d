import Testing
import Synchronization
import CD3DKMT
import KMTTestSupport
@testable import D3DKMTCABI
@testable import D3DKMT
#if canImport(Glibc)
import Glibc
#endif

/// `D3DKMTLock2` / `D3DKMTUnlock2`: reserved flags, the kept mapping (the same address, shared
/// with other processes' locks, read-only as the access rights say), and locks waiting for a busy
/// buffer, stalling no other call.
extension D3DKMTSuite {
    @Suite struct Lock {
        /// An adapter, a device on it and one standalone 4 KiB allocation, through the C ABI.
        struct Setup {
            var adapter: D3DKMT_HANDLE = 0
            var device: D3DKMT_HANDLE = 0
            var allocation: D3DKMT_HANDLE = 0
        }

        func setUp(_ adapter: Adapter) throws -> Setup {
            var setup = Setup()
            var open = D3DKMT_OPENADAPTERFROMLUID()
            open.AdapterLuid = CD3DKMT.LUID(LowPart: adapter.info.luid.lowPart, HighPart: adapter.info.luid.highPart)
            try #require(D3DKMTOpenAdapterFromLuid(&open) == 0)
            setup.adapter = open.hAdapter
            var create = D3DKMT_CREATEDEVICE()
            create.hAdapter = open.hAdapter
            try #require(D3DKMTCreateDevice(&create) == 0)
            setup.device = create.hDevice
            var desc = D3DKMT_LINUX_ALLOCATION_DESC()
            desc.Version = UInt32(D3DKMT_LINUX_ALLOCATION_DESC_VERSION)
            desc.Size = 4096
            desc.DmaBufFd = -1
            var info = D3DDDI_ALLOCATIONINFO2()
            let status = withUnsafeMutablePointer(to: &desc) { descPointer in
                withUnsafeMutablePointer(to: &info) { infoPointer in
                    infoPointer.pointee.pPrivateDriverData = UnsafeMutableRawPointer(descPointer)
                    infoPointer.pointee.PrivateDriverDataSize = UInt32(MemoryLayout<D3DKMT_LINUX_ALLOCATION_DESC>.size)
                    var allocate = D3DKMT_CREATEALLOCATION()
                    allocate.hDevice = setup.device
                    allocate.NumAllocations = 1
                    allocate.pAllocationInfo2 = infoPointer
                    return D3DKMTCreateAllocation2(&allocate)
                }
            }
            try #require(status == 0)
            setup.allocation = info.hAllocation
            return setup
        }

        func tearDown(_ setup: Setup) {
            var destroy = D3DKMT_DESTROYDEVICE(hDevice: setup.device)
            #expect(D3DKMTDestroyDevice(&destroy) == 0)
            var close = D3DKMT_CLOSEADAPTER(hAdapter: setup.adapter)
            #expect(D3DKMTCloseAdapter(&close) == 0)
        }

        @Test(arguments: adaptersUnderTest)
        func reservedFlagsAreRefused(adapter: Adapter) throws {
            let setup = try setUp(adapter)
            defer { tearDown(setup) }
            var lock = D3DKMT_LOCK2()
            lock.hDevice = setup.device
            lock.hAllocation = setup.allocation
            lock.Flags.Value = 1
            #expect(D3DKMTLock2(&lock) == NTStatus.invalidParameter.rawValue)
            lock.Flags.Value = 0
            #expect(D3DKMTLock2(&lock) == 0)
            var unlock = D3DKMT_UNLOCK2(hDevice: setup.device, hAllocation: setup.allocation)
            #expect(D3DKMTUnlock2(&unlock) == 0)
            #expect(D3DKMTUnlock2(&unlock) == NTStatus.invalidParameter.rawValue)
        }

        /// Windows programs keep the address a Lock2 returns: every lock of an allocation returns the
        /// same one (the mapping is kept from the first lock to the allocation's end), the bytes
        /// written through it stay, nested locks share it, and a locked allocation destroyed leaves
        /// nothing behind.
        @Test(arguments: adaptersUnderTest)
        func everyLockReturnsTheSameAddress(adapter: Adapter) throws {
            let setup = try setUp(adapter)
            defer { tearDown(setup) }
            var lock = D3DKMT_LOCK2()
            lock.hDevice = setup.device
            lock.hAllocation = setup.allocation
            var unlock = D3DKMT_UNLOCK2(hDevice: setup.device, hAllocation: setup.allocation)
            try #require(D3DKMTLock2(&lock) == 0)
            let first = try #require(lock.pData)
            for offset in stride(from: 0, to: 4096, by: 512) { first.storeBytes(of: UInt8(offset / 512 + 1),
                                                                                toByteOffset: offset, as: UInt8.self) }
            #expect(D3DKMTUnlock2(&unlock) == 0)
            for _ in 0..<3 {
                lock.pData = nil
                try #require(D3DKMTLock2(&lock) == 0)
                #expect(lock.pData == first)
                #expect(first.load(fromByteOffset: 3584, as: UInt8.self) == 8)
                // Nested: the same address; one unlock each.
                var nested = lock
                #expect(D3DKMTLock2(&nested) == 0 && nested.pData == first)
                #expect(D3DKMTUnlock2(&unlock) == 0)
                #expect(D3DKMTUnlock2(&unlock) == 0)
            }
            #expect(D3DKMTUnlock2(&unlock) == NTStatus.invalidParameter.rawValue)
            // Destroyed while locked: its mapping and everything else go with it.
            let before = openDescriptorCount()
            try #require(D3DKMTLock2(&lock) == 0)
            var list = setup.allocation
            var destroy = D3DKMT_DESTROYALLOCATION2()
            destroy.hDevice = setup.device
            destroy.AllocationCount = 1
            let destroyed = withUnsafePointer(to: &list) { pointer in
                destroy.phAllocationList = pointer
                return D3DKMTDestroyAllocation2(&destroy)
            }
            #expect(destroyed == 0)
            #expect(openDescriptorCount() == before - 1, "only the allocation's own descriptor goes")
            #expect(D3DKMTUnlock2(&unlock) == NTStatus.invalidParameter.rawValue)
        }

        /// The kept mapping shows the buffer itself: what another process writes through its own
        /// lock is what this process's next lock shows, at the same address as before, and what
        /// this process wrote through its lock is what the other finds. An opener without write
        /// access gets a read-only mapping (the lock maps as the access rights say).
        @Test(arguments: adaptersUnderTest)
        func aLockSeesWhatAnotherProcessWroteThroughItsLock(adapter: Adapter) throws {
            try expectNoDescriptorLeak("locks across processes") {
                let device = try adapter.makeDevice()
                let resource = try device.createResource(allocations: [(.new(AllocationDescriptor(size: 65536)), [])])
                let allocation = resource.allocations[0]
                let first = try allocation.lock()
                TestPattern.fill(UnsafeMutableRawBufferPointer(start: first, count: 65536), seed: 61, allocation: 0)
                #expect(allocation.unlock())
                let handle = try resource.share()
                let writer = try runPeer(["lock-write", "3"] + luidArguments(adapter) + ["61"],
                                         inherit: [handle.rawValue])
                #expect(writer.exitStatus == 0, "peer said: \(writer.text)")
                #expect(writer.output["same"] == "yes")
                #expect(writer.output["perms"]?.hasPrefix("rw") == true, "peer said: \(writer.text)")
                let again = try allocation.lock()
                #expect(again == first)
                #expect(TestPattern.firstMismatch(UnsafeRawBufferPointer(start: again, count: 65536), seed: 62,
                                                  allocation: 0) == nil, "the peer's writes are not in the lock")
                #expect(allocation.unlock())
                let readOnly = try resource.share(access: SharedAccess.read)
                let reader = try runPeer(["lock-write", "3"] + luidArguments(adapter) + ["62"],
                                         inherit: [readOnly.rawValue])
                #expect(reader.exitStatus == 0, "peer said: \(reader.text)")
                #expect(reader.output["perms"]?.hasPrefix("r-") == true, "peer said: \(reader.text)")
                _ = consume handle
                _ = consume readOnly
            }
        }

        /// On a dma-buf every lock, a nested one too, waits for the GPU work on the buffer
        /// (`DMA_BUF_IOCTL_SYNC` start per lock): a fence attached while the allocation is locked
        /// keeps the next lock waiting until it signals.
        @Test(.enabled(if: hasDriver("vgem"), "needs vgem (VM guest)"))
        func aNestedLockWaitsForGPUWorkQueuedAfterTheFirst() throws {
            let vgem = try #require(adapter(driver: "vgem"))
            let card = try Kernel.open(try #require(vgem.info.primaryNode), O_RDWR)
            let setup = try setUp(vgem)
            defer { tearDown(setup) }
            var lock = D3DKMT_LOCK2()
            lock.hDevice = setup.device
            lock.hAllocation = setup.allocation
            try #require(D3DKMTLock2(&lock) == 0)
            let first = UInt(bitPattern: lock.pData)
            var exported: Int32 = -1
            try #require(D3DKMTLinuxExportAllocationDmaBuf(setup.device, setup.allocation, &exported) == 0)
            let dmaBuf = FileDescriptor(adopting: exported)
            let handle = try Kernel.primeImport(card.borrowed, dmaBuf: dmaBuf.borrowed)
            defer { Kernel.gemClose(card.borrowed, handle: handle) }
            let fence = try VGEM.fenceAttach(card.rawValue, handle: handle)
            let (device, allocation) = (setup.device, setup.allocation)
            let locked = Atomic<Int>(0)  // 1: the nested Lock2 returned the same address, 2: it did not
            let locker = Thread {
                var nested = D3DKMT_LOCK2()
                nested.hDevice = device
                nested.hAllocation = allocation
                let same = D3DKMTLock2(&nested) == 0 && UInt(bitPattern: nested.pData) == first
                locked.store(same ? 1 : 2, ordering: .sequentiallyConsistent)
            }
            usleep(100_000)
            #expect(locked.load(ordering: .sequentiallyConsistent) == 0, "the nested Lock2 did not wait")
            try VGEM.fenceSignal(card.rawValue, fence: fence)
            locker.join()
            #expect(locked.load(ordering: .sequentiallyConsistent) == 1)
            var unlock = D3DKMT_UNLOCK2(hDevice: device, hAllocation: allocation)
            #expect(D3DKMTUnlock2(&unlock) == 0)
            #expect(D3DKMTUnlock2(&unlock) == 0)
            #expect(D3DKMTUnlock2(&unlock) == NTStatus.invalidParameter.rawValue)
        }

        /// A vgem fence on the buffer keeps `DMA_BUF_IOCTL_SYNC` (and so the Lock2) waiting; other
        /// threads' calls, on the same device and allocation too, go on meanwhile.
        @Test(.enabled(if: hasDriver("vgem"), "needs vgem (VM guest)"))
        func aLockWaitingForABusyBufferStallsNoOtherCall() throws {
            let vgem = try #require(adapter(driver: "vgem"))
            let card = try Kernel.open(try #require(vgem.info.primaryNode), O_RDWR)
            let setup = try setUp(vgem)
            defer { tearDown(setup) }
            var exported: Int32 = -1
            try #require(D3DKMTLinuxExportAllocationDmaBuf(setup.device, setup.allocation, &exported) == 0)
            let dmaBuf = FileDescriptor(adopting: exported)
            let handle = try Kernel.primeImport(card.borrowed, dmaBuf: dmaBuf.borrowed)
            defer { Kernel.gemClose(card.borrowed, handle: handle) }
            let fence = try VGEM.fenceAttach(card.rawValue, handle: handle)

            let (device, allocation) = (setup.device, setup.allocation)
            let locked = Atomic<Int>(0)  // 1: Lock2 returned success, 2: it failed
            let locker = Thread {
                var lock = D3DKMT_LOCK2()
                lock.hDevice = device
                lock.hAllocation = allocation
                locked.store(D3DKMTLock2(&lock) == 0 ? 1 : 2, ordering: .sequentiallyConsistent)
            }
            // Give the locker time to reach the wait; whether or not it has, these must not block.
            usleep(100_000)
            var size: UInt64 = 0
            #expect(D3DKMTLinuxQueryAllocationSize(device, allocation, &size) == 0 && size == 4096)
            var other = D3DKMT_CREATEDEVICE()
            other.hAdapter = setup.adapter
            #expect(D3DKMTCreateDevice(&other) == 0)
            var destroyOther = D3DKMT_DESTROYDEVICE(hDevice: other.hDevice)
            #expect(D3DKMTDestroyDevice(&destroyOther) == 0)
            #expect(locked.load(ordering: .sequentiallyConsistent) == 0, "the Lock2 did not wait for the fence")
            try VGEM.fenceSignal(card.rawValue, fence: fence)
            locker.join()
            #expect(locked.load(ordering: .sequentiallyConsistent) == 1)
            var unlock = D3DKMT_UNLOCK2(hDevice: device, hAllocation: allocation)
            #expect(D3DKMTUnlock2(&unlock) == 0)
        }
    }
}
