import Testing
@testable import D3DKMT
#if canImport(Glibc)
import Glibc
#endif

/// Every test lives under this suite, which runs its tests one at a time: the tests count the
/// process's open descriptors, and a test running beside another would see its descriptors.
@Suite(.serialized) enum D3DKMTSuite {}

extension D3DKMTSuite {
    @Suite struct Adapters {
        @Test func softwareAdapterIsLastAndLUIDsAreUnique() {
            let adapters = Adapter.enumerate()
            #expect(adapters.last?.info.isSoftware == true)
            #expect(adapters.filter(\.info.isSoftware).count == 1)
            #expect(Set(adapters.map(\.info.luid)).count == adapters.count)
        }

        @Test func openByLUIDFindsTheSameAdapter() throws {
            for adapter in Adapter.enumerate() {
                let reopened = try Adapter.open(luid: adapter.info.luid)
                #expect(reopened.info == adapter.info)
            }
            #expect(status { _ = try Adapter.open(luid: LUID(lowPart: 0xDEAD, highPart: 7)) } == .invalidParameter)
        }

        @Test func anotherProcessSeesTheSameLUIDs() throws {
            let peer = try runPeer(["adapters"])
            #expect(peer.exitStatus == 0)
            let theirs = peer.text.split(separator: "\n").map(String.init)
            let ours = Adapter.enumerate().map {
                "luid=\($0.info.luid.lowPart):\($0.info.luid.highPart) driver=\($0.info.driverName)"
            }
            #expect(theirs == ours)
        }

        @Test func requiredDriversArePresent() {
            // Empty on the host; in the VM guest scripts/vm-test names virtio_gpu and vgem.
            for driver in requiredDrivers {
                let found = hasDriver(driver)
                #expect(found, "driver \(driver) is required here but no render node has it")
            }
        }

        @Test(arguments: adaptersUnderTest)
        func devicesOpenAndClose(adapter: Adapter) throws {
            try expectNoDescriptorLeak("device open/close") {
                for _ in 0..<20 { _ = try adapter.makeDevice() }
            }
        }
    }

    @Suite struct Sharing {
        @Test(arguments: adaptersUnderTest)
        func anotherProcessOpensReadsAndWrites(adapter: Adapter) throws {
            try expectNoDescriptorLeak("cross-process share") {
                let device = try adapter.makeDevice()
                let resource = try makePatternResource(on: device, sizes: [65536, 12288], seed: 41)
                let handle = try resource.share()
                let peer = try runPeer(["open", "3"] + luidArguments(adapter) + ["41"], inherit: [handle.rawValue])
                #expect(peer.exitStatus == 0, "peer said: \(peer.text)")
                #expect(peer.output["runtime"] == hex(resource.runtimeData))
                #expect(peer.output["driver"] == hex(resource.driverData))
                for (index, allocation) in resource.allocations.enumerated() {
                    #expect(peer.output["allocation.\(index)"] == "\(allocation.size):\(hex(allocation.driverData))")
                    // What the peer wrote, read here.
                    #expect(try patternMatches(allocation, seed: 42, index: index))
                }
            }
        }

        @Test(arguments: adaptersUnderTest)
        func aHandleOpensManyTimesAndClosingItKeepsWhatWasOpened(adapter: Adapter) throws {
            try expectNoDescriptorLeak("repeated open") {
                let device = try adapter.makeDevice()
                var opened: [Resource] = []
                do {
                    let resource = try makePatternResource(on: device, sizes: [8192], seed: 5)
                    let handle = try resource.share()
                    for _ in 0..<3 { opened.append(try device.openResource(handle)) }
                    let info = try device.resourceInfo(handle)
                    #expect(info.allocationCount == 1)
                    #expect(info.runtimeDataSize == 4)
                    #expect(info.resourceDriverDataSize == 2)
                    // Only the runtime's bytes after the Linux descriptor: the descriptor is ours.
                    #expect(info.totalAllocationDriverDataSize == 2)
                    #expect(info.adapterLUID == adapter.info.luid)
                    // The handle and the creator are gone after this scope.
                }
                for resource in opened {
                    #expect(try patternMatches(resource.allocations[0], seed: 5, index: 0))
                }
                // Writes through one opening show through another: one buffer.
                do {
                    let mapping = try opened[0].allocations[0].map()
                    TestPattern.fill(mapping.bytes, seed: 6, allocation: 0)
                }
                #expect(try patternMatches(opened[2].allocations[0], seed: 6, index: 0))
            }
        }

        /// A package too big for the opener's first, small peek (more than 1 KiB, more than 32
        /// descriptors) is peeked again whole, and nothing of the first peek leaks.
        @Test(arguments: adaptersUnderTest)
        func aLargePackageWithManyDescriptorsOpensWhole(adapter: Adapter) throws {
            try expectNoDescriptorLeak("large package") {
                let device = try adapter.makeDevice()
                let sources = (0..<40).map { index in
                    (source: Device.AllocationSource.new(AllocationDescriptor(size: 4096)),
                     extraDriverData: [UInt8](repeating: UInt8(index), count: 64))
                }
                let driverData = (0..<3000).map { UInt8(truncatingIfNeeded: $0 * 7) }
                let resource = try device.createResource(allocations: sources, runtimeData: [1, 2, 3],
                                                         driverData: driverData)
                let handle = try resource.share()
                let opened = try device.openResource(handle)
                #expect(opened.allocations.count == 40)
                #expect(opened.driverData == driverData)
                #expect(opened.runtimeData == [1, 2, 3])
                for (index, allocation) in opened.allocations.enumerated() {
                    #expect(allocation.driverData == [UInt8](repeating: UInt8(index), count: 64))
                    #expect(allocation.size == 4096)
                }
                #expect(try device.resourceInfo(handle).totalAllocationDriverDataSize == 40 * 64)
            }
        }

        @Test(arguments: adaptersUnderTest)
        func theHandleStillOpensAfterTheSharerExits(adapter: Adapter) throws {
            try expectNoDescriptorLeak("sharer exits first") {
                let pair = try Kernel.socketPair(type: Int32(SOCK_SEQPACKET.rawValue))
                let peer = try runPeer(["share", "3"] + luidArguments(adapter) + ["77"],
                                       inherit: [pair.second.rawValue])
                #expect(peer.exitStatus == 0, "peer said: \(peer.text)")
                let handle = SharedHandle(try receiveDescriptor(over: pair.first.rawValue))
                let resource = try adapter.makeDevice().openResource(handle)
                #expect(resource.runtimeData == [1, 2, 3])
                #expect(resource.allocations.count == 2)
                for (index, allocation) in resource.allocations.enumerated() {
                    #expect(try patternMatches(allocation, seed: 77, index: index))
                }
            }
        }

        @Test(arguments: adaptersUnderTest)
        func aThousandShareOpenCloseCyclesLeakNothing(adapter: Adapter) throws {
            let device = try adapter.makeDevice()
            let resource = try makePatternResource(on: device, sizes: [4096, 4096], seed: 1)
            // The first share gives the resource its runtime data page, which it keeps.
            _ = try resource.share()
            try expectNoDescriptorLeak("1,000 share/open/close cycles") {
                for _ in 0..<1000 {
                    let handle = try resource.share()
                    let opened = try device.openResource(handle)
                    #expect(opened.allocations.count == 2)
                }
            }
        }

        @Test(arguments: adaptersUnderTest)
        func exportedDescriptorWrapsIntoANewAllocationOfTheSameMemory(adapter: Adapter) throws {
            try expectNoDescriptorLeak("wrap") {
                let device = try adapter.makeDevice()
                let resource = try makePatternResource(on: device, sizes: [16384], seed: 9)
                let exported = try resource.allocations[0].exportDescriptor()
                let wrapped = try device.createAllocation(.wrap(descriptor: exported.rawValue,
                                                                AllocationDescriptor(size: 16384)))
                #expect(try patternMatches(wrapped, seed: 9, index: 0))
                // Asking for more than the buffer holds is refused.
                #expect(status {
                    _ = try device.createAllocation(.wrap(descriptor: exported.rawValue,
                                                          AllocationDescriptor(size: 1 << 20)))
                } == .invalidParameter)
            }
        }
    }

    @Suite struct CrossAdapter {
        @Test(arguments: adaptersUnderTest.filter { !$0.info.isSoftware })
        func theSoftwareAdapterOpensADRMBuffer(adapter: Adapter) throws {
            let resource = try makePatternResource(on: try adapter.makeDevice(), sizes: [4096], seed: 3)
            let handle = try resource.share()
            let opened = try Adapter.open(luid: AdapterInfo.software.luid).makeDevice().openResource(handle)
            #expect(try patternMatches(opened.allocations[0], seed: 3, index: 0))
        }

        @Test(arguments: adaptersUnderTest.filter { !$0.info.isSoftware })
        func aDRMDeviceRefusesASoftwareBufferClearly(adapter: Adapter) throws {
            try expectNoDescriptorLeak("memfd into DRM") {
                let software = try Adapter.open(luid: AdapterInfo.software.luid).makeDevice()
                let handle = try makePatternResource(on: software, sizes: [4096], seed: 3).share()
                #expect(status { _ = try adapter.makeDevice().openResource(handle) } == .notSupported)
            }
        }

        @Test(.enabled(if: hasDriver("vgem") && hasDriver("virtio_gpu"),
                       "needs vgem and virtio_gpu render nodes (VM guest)"))
        func vgemIntoVirtioGPUFailsAndVirtioGPUIntoVgemWorks() throws {
            try expectNoDescriptorLeak("cross-driver import") {
                let vgem = try #require(adapter(driver: "vgem")).makeDevice()
                let virtio = try #require(adapter(driver: "virtio_gpu")).makeDevice()
                let fromVgem = try makePatternResource(on: vgem, sizes: [4096], seed: 11).share()
                #expect(status { _ = try virtio.openResource(fromVgem) } == .notSupported)
                let fromVirtio = try makePatternResource(on: virtio, sizes: [4096], seed: 12).share()
                let opened = try vgem.openResource(fromVirtio)
                #expect(try patternMatches(opened.allocations[0], seed: 12, index: 0))
            }
        }
    }
}
