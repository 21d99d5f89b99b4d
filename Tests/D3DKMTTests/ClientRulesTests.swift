import Testing
@testable import D3DKMT
#if canImport(Glibc)
import Glibc
#endif

/// What DXVK, vkd3d-proton and Wine's Vulkan layer rely on, through the Swift API: runtime data
/// replaced after sharing (their `D3DKMTEscape(D3DKMT_ESCAPE_UPDATE_RESOURCE_WINE)`), names as
/// Windows resolves them, generic rights, and driver data that is only the runtime's.
extension D3DKMTSuite {
    @Suite struct ClientRules {
        @Test(arguments: adaptersUnderTest)
        func anUpdateReachesHandlesSharedBeforeIt(adapter: Adapter) throws {
            let device = try adapter.makeDevice()
            let resource = try makePatternResource(on: device, sizes: [4096], seed: 3, runtimeData: [])
            // Shared before the runtime attaches its descriptor, as a Vulkan layer shares first.
            let handle = try resource.share()
            let descriptor = (0..<0x68).map { UInt8(truncatingIfNeeded: $0 &* 7) }
            try resource.updateRuntimeData(descriptor)
            #expect(resource.runtimeData == descriptor)
            #expect(try device.resourceInfo(handle).runtimeDataSize == 0x68)
            let peer = try runPeer(["open", "3"] + luidArguments(adapter) + ["3"], inherit: [handle.rawValue])
            #expect(peer.exitStatus == 0, "peer said: \(peer.text)")
            #expect(peer.output["runtime"] == hex(descriptor))

            // An opener's update reaches the creator and later opens; size 0 clears it.
            let opened = try device.openResource(handle)
            #expect(opened.runtimeData == descriptor)
            try opened.updateRuntimeData([1, 2, 3])
            #expect(resource.runtimeData == [1, 2, 3])
            try resource.updateRuntimeData([])
            #expect(try device.openResource(handle).runtimeData.isEmpty)
            #expect(status {
                try resource.updateRuntimeData([UInt8](repeating: 0, count: 200_000))
            } == .invalidParameter)
        }

        @Test(arguments: adaptersUnderTest)
        func aReadOnlyOpenCannotUpdateOrReshareWrite(adapter: Adapter) throws {
            let device = try adapter.makeDevice()
            let resource = try makePatternResource(on: device, sizes: [4096], seed: 4)
            let readOnly = try device.openResource(try resource.share(access: SharedAccess.read))
            #expect(readOnly.isReadOnly)
            #expect(status { try readOnly.updateRuntimeData([9]) } == .accessDenied)
            let reshared = try readOnly.share(access: SharedAccess.allAccess)
            #expect(try reshared.access() & SharedAccess.write == 0)
            #expect(try device.openResource(reshared).isReadOnly)
        }

        @Test(arguments: adaptersUnderTest)
        func openersGetOnlyTheRuntimesDriverDataAndTheLayoutSeparately(adapter: Adapter) throws {
            let device = try adapter.makeDevice()
            let layout = AllocationDescriptor(width: 64, height: 32, fourcc: 0x3432_5241)  // DRM_FORMAT_ARGB8888
            let resource = try device.createResource(allocations: [(.new(layout), []),
                                                                   (.new(AllocationDescriptor(size: 8192)), [7, 7])])
            let info = try device.resourceInfo(try resource.share())
            #expect(info.totalAllocationDriverDataSize == 2)
            let opened = try device.openResource(try resource.share())
            #expect(opened.allocations.map(\.driverData) == [[], [7, 7]])
            #expect(opened.allocations[0].layout.width == 64 && opened.allocations[0].layout.height == 32)
            #expect(opened.allocations[0].layout.fourcc == 0x3432_5241 && opened.allocations[0].size == 64 * 32 * 4)
            #expect(opened.allocations[1].layout.size == 8192)
        }

        @Test func namesFoldCaseAndUnderstandWindowsDirectories() throws {
            let device = try Adapter.open(luid: AdapterInfo.software.luid).makeDevice()
            let resource = try device.createResource(allocations: [(.new(AllocationDescriptor(size: 4096)), [])])
            let leaf = "D3DKMT-Case-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            let session = try resource.share(name: "\\Sessions\\1\\BaseNamedObjects\\" + leaf)
            for spelling in ["Local\\" + leaf.lowercased(), leaf.uppercased(),
                             "\\sessions\\7\\basenamedobjects\\" + leaf] {
                #expect(status { _ = try SharedHandle.open(name: spelling) } == .success, "\(spelling)")
            }
            #expect(status { _ = try SharedHandle.open(name: "Global\\" + leaf) } == .objectNameNotFound)
            let global = try resource.share(name: "Global\\" + leaf)
            #expect(status { _ = try SharedHandle.open(name: "\\BaseNamedObjects\\" + leaf.lowercased()) } == .success)
            #expect(status { _ = try resource.share(name: "local\\" + leaf.lowercased()) } == .objectNameCollision)
            #expect(status { _ = try SharedHandle.open(name: "\\Elsewhere\\" + leaf) } == .objectPathNotFound)
            #expect(status { _ = try SharedHandle.open(name: "Local\\a\\" + leaf) } == .objectPathNotFound)
            #expect(status { _ = try SharedHandle.open(name: "Local\\") } == .objectNameInvalid)
            _ = consume session
            _ = consume global
            waitForRetirement(["Local\\" + leaf, "Global\\" + leaf])
        }

        @Test func aClosedNameIsNotFoundAtOnceAndFreeAtOnce() throws {
            let device = try Adapter.open(luid: AdapterInfo.software.luid).makeDevice()
            let resource = try device.createResource(allocations: [(.new(AllocationDescriptor(size: 4096)), [])])
            let name = uniqueName("retire")
            var statuses: [NTStatus: Int] = [:]
            for _ in 0..<200 {
                var handle: SharedHandle? = try resource.share(name: name)
                #expect(status { _ = try SharedHandle.open(name: name) } == .success)
                handle = nil
                _ = handle
                statuses[status { _ = try SharedHandle.open(name: name) }, default: 0] += 1
            }
            #expect(statuses == [.objectNameNotFound: 200])
            waitForRetirement([name])
        }

        @Test func genericRightsMapAsWindowsMapsThem() throws {
            #expect(SharedAccess.mapped(0x8000_0000) == 0x0002_0000)
            #expect(SharedAccess.mapped(0x4000_0000) == 0x0002_0001)
            #expect(SharedAccess.mapped(0x2000_0000) == 0x0002_0000)
            #expect(SharedAccess.mapped(0x1000_0000) == SharedAccess.allAccess)
            #expect(SharedAccess.mapped(0x8000_0001) == 0x0002_0001)  // DXGI_SHARED_RESOURCE_READ | WRITE
            #expect(SyncObjectAccess.mapped(0x8000_0000) == 0x0002_0001)
            #expect(SyncObjectAccess.mapped(0x4000_0000) == 0x0002_0002)
            #expect(SyncObjectAccess.mapped(0x1000_0000) == SyncObjectAccess.allAccess)

            // Opening by name with generic rights: what Wine's Vulkan layer asks (GENERIC_ALL).
            let device = try Adapter.open(luid: AdapterInfo.software.luid).makeDevice()
            let fence = try device.createSyncObject(.fence)
            let name = uniqueName("generic")
            let shared = try fence.share(access: SyncObjectAccess.wait, name: name)
            let all = try SharedHandle.openSyncObject(name: name, access: 0x1000_0000)
            #expect(try all.access() == SyncObjectAccess.allAccess)
            let readOnly = try device.openSyncObject(try SharedHandle.openSyncObject(name: name, access: 0x8000_0000))
            #expect(status { try readOnly.signal(1) } == .accessDenied)
            #expect(status { try SyncObject.wait(for: [(readOnly, 0)]) } == .success)
            _ = consume shared
            waitForRetirement([name])
        }
    }
}
