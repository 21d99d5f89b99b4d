import Testing
import Synchronization
@testable import D3DKMT
#if canImport(Glibc)
import Glibc
#endif

/// The virtio-gpu adapter when it has virgl 3D (the default VM guest), else nil.
let virglAdapter: Adapter? = adaptersUnderTest.first {
    $0.info.driverName == "virtio_gpu" && $0.info.capabilities.contains(.virgl3D)
}

/// True in the guest scripts/vm-test boots with virgl (`D3DKMT_VM_GPU=virgl`): 3D must be there.
let virglRequired: Bool = getenv("D3DKMT_VM_GPU").map { String(cString: $0) == "virgl" } ?? false

/// A pending fence standing in for GPU work: a vgem buffer's unsignalled write fence, as a
/// sync_file (`DMA_BUF_IOCTL_EXPORT_SYNC_FILE`); ``signal()`` completes the "work".
final class PendingGPUWork {
    let card: FileDescriptor
    let handle: UInt32
    let fence: UInt32
    let syncFile: FileDescriptor

    init(vgemCard: String) throws {
        card = try Kernel.open(vgemCard, O_RDWR)
        handle = try Kernel.createDumb(card.borrowed, width: 1024, height: 1).handle
        fence = try VGEM.fenceAttach(card.rawValue, handle: handle)
        let dmaBuf = try Kernel.primeExport(card.borrowed, handle: handle, writable: true)
        syncFile = try Kernel.dmaBufExportSyncFile(dmaBuf.borrowed, write: true)
    }

    func signal() throws { try VGEM.fenceSignal(card.rawValue, fence: fence) }

    deinit { Kernel.gemClose(card.borrowed, handle: handle) }
}

extension D3DKMTSuite {
    @Suite struct GPUInterop {
        static let vgemCard = adapter(driver: "vgem")?.info.primaryNode
        static let virtio = adapter(driver: "virtio_gpu")

        @Test func theVM3DGuestHasVirgl() {
            // In the virgl guest a missing 3D adapter is a failure, not a skip.
            if virglRequired { #expect(virglAdapter != nil, "D3DKMT_VM_GPU=virgl but no virtio-gpu with 3D") }
        }

        /// Item 4: GPU work's sync_file signals a fence value with no CPU wait; a CPU waiter in
        /// another process wakes when the work completes, not before.
        @Test(.enabled(if: vgemCard != nil && virtio != nil, "needs vgem and virtio_gpu (VM guest)"))
        func aSyncFileSignalsAFenceValueAndWakesAWaiterInAnotherProcess() throws {
            let virtio = try #require(Self.virtio)
            let device = try virtio.makeDevice()
            try expectNoDescriptorLeak("sync_file signal") {
                let fence = try device.createSyncObject(.monitoredFence)
                let work = try PendingGPUWork(vgemCard: try #require(Self.vgemCard))
                try fence.signal(3, whenSignalled: work.syncFile.rawValue)
                // Returned at once; the value is not reached before the work completes.
                #expect(try fence.currentValue() == 0)
                #expect(status { try fence.signal(3, whenSignalled: work.syncFile.rawValue) } == .invalidParameter)
                #expect(status { try fence.signal(2, whenSignalled: work.syncFile.rawValue) } == .invalidParameter)
                #expect(status { try fence.signal(4, whenSignalled: -1) } == .invalidHandle)
                let handle = try fence.share()
                let peer = try PeerProcess(["wait", "3"] + luidArguments(virtio) + ["3"], inherit: [handle.rawValue])
                #expect(peer.readLine() == "waiting")
                let point = try fence.exportSyncFile(value: 3)
                #expect(try Kernel.waitReadable(point.borrowed, until: .after(nanoseconds: 100_000_000)) == false)
                try work.signal()
                #expect(peer.readLine() == "waited=3")
                #expect(peer.wait().exitStatus == 0)
                #expect(try fence.currentValue() == 3)
                #expect(try Kernel.waitReadable(point.borrowed, until: .now))
            }
        }

        /// Item 4 for keyed mutexes: the releaser's GPU fence becomes the release's fence value;
        /// the acquirer gets a sync_file for it that signals when the work does.
        @Test(.enabled(if: vgemCard != nil && virtio != nil, "needs vgem and virtio_gpu (VM guest)"))
        func aSyncFileSignalsTheKeyedMutexReleaseValue() throws {
            let virtio = try #require(Self.virtio)
            let device = try readyDevice(virtio)
            try expectNoDescriptorLeak("keyed mutex sync_file") {
                let (resource, mutex, sync) = try makeGuardedResource(on: device)
                let handle = try resource.share(keyedMutex: mutex, syncObject: sync)
                let other = try #require(try device.openResource(handle).keyedMutex)
                _ = try mutex.acquire(key: 0, timeout: .zero)
                let work = try PendingGPUWork(vgemCard: try #require(Self.vgemCard))
                try mutex.signal(fenceValue: 1, whenSignalled: work.syncFile.rawValue, on: device)
                try mutex.release(key: 1, fenceValue: 1)
                let acquired = try other.acquire(key: 1, timeout: .seconds(5))
                #expect(acquired.fenceValue == 1)
                let wait = try other.exportSyncFile(fenceValue: acquired.fenceValue, on: device)
                #expect(try Kernel.waitReadable(wait.borrowed, until: .after(nanoseconds: 50_000_000)) == false)
                try work.signal()
                #expect(try Kernel.waitReadable(wait.borrowed, until: .after(nanoseconds: 5_000_000_000)))
                #expect(status { _ = try other.exportSyncFile(fenceValue: 9, on: device) } == .invalidParameter)
                try other.release(key: 0)
            }
        }

        /// Software sync objects and keyed mutexes have no kernel timeline: a clear
        /// STATUS_NOT_SUPPORTED, not a CPU wait.
        @Test func theSoftwareAdapterRefusesGPUFences() throws {
            let software = try #require(adaptersUnderTest.first { $0.info.isSoftware }).makeDevice()
            let fence = try software.createSyncObject(.fence)
            var pipeEnds: [Int32] = [0, 0]
            #expect(pipe(&pipeEnds) == 0)
            defer { pipeEnds.forEach { _ = close($0) } }
            #expect(status { try fence.signal(1, whenSignalled: pipeEnds[0]) } == .notSupported)
            let mutex = try KeyedMutex.create(timelineOn: Self.virtio.map { try $0.makeDevice() } ?? nil)
            if mutex.timelineNumber != nil {
                #expect(status { try mutex.signal(fenceValue: 1, whenSignalled: pipeEnds[0], on: software) }
                        == .notSupported)
            } else {
                #expect(status { _ = try mutex.exportSyncFile(fenceValue: 1, on: software) } == .notSupported)
            }
        }

        /// Item 2: on virgl, images come from GBM with the driver's layout, which reaches the
        /// opener whole; GBM's descriptors go away with the device.
        @Test(.enabled(if: virglAdapter != nil, "needs a virgl virtio-gpu (VM guest)"))
        func imagesComeFromGBMAndTheirLayoutReachesTheOpener() throws {
            let virgl = try #require(virglAdapter)
            try expectNoDescriptorLeak("GBM allocation, device and all") {
                let device = try virgl.makeDevice()
                let asked = AllocationDescriptor(width: 64, height: 48, fourcc: AllocationDescriptor.fourccABGR8888,
                                                 modifier: AllocationDescriptor.modifierInvalid)
                let resource = try device.createResource(allocations: [(.new(asked), [5])])
                let made = resource.allocations[0]
                #expect(made.allocator == .gbm)
                #expect(made.layout.effectivePlanes.count == 1)
                #expect(made.layout.stride >= 64 * 4 && made.layout.effectivePlanes.first?.stride == made.layout.stride)
                #expect(made.layout.size >= UInt64(made.layout.stride) * 48)
                let plain = try device.createAllocation(.new(AllocationDescriptor(size: 8192)))
                #expect(plain.allocator == .gbm && plain.size == 8192)
                let handle = try resource.share()
                let opened = try virgl.makeDevice().openResource(handle).allocations[0]
                #expect(opened.layout == made.layout)
                #expect(opened.allocator == .imported && opened.driverData == [5])
            }
        }

        /// Item 6: a virgl image written through Lock2 reaches the host and comes back (transfers
        /// to and from the host around the mapping).
        @Test(.enabled(if: virglAdapter != nil, "needs a virgl virtio-gpu (VM guest)"))
        func aVirglImageKeepsWhatTheCPUWroteAcrossLocks() throws {
            let virgl = try #require(virglAdapter)
            let device = try readyDevice(virgl)
            try expectNoDescriptorLeak("virgl image locks") {
                let image = try device.createAllocation(.new(AllocationDescriptor(
                    width: 32, height: 32, fourcc: AllocationDescriptor.fourccABGR8888)))
                let count = Int(image.layout.stride) * 32
                do {
                    let mapping = try image.map()
                    for index in 0..<count { mapping.bytes[index] = UInt8(truncatingIfNeeded: index &* 7) }
                }
                // The next lock transfers from the host: what the CPU wrote went there and back.
                let mapping = try image.map(writable: false)
                #expect((0..<count).allSatisfy { mapping.bytes[$0] == UInt8(truncatingIfNeeded: $0 &* 7) })
            }
        }

        /// Item 3, on every machine: a wrapped buffer with a header (data offset) and two planes
        /// (NV12) keeps its layout through sharing, and Lock2 maps from the data offset.
        @Test func aWrappedNV12BufferWithAHeaderKeepsItsLayout() throws {
            let software = try #require(adaptersUnderTest.first { $0.info.isSoftware })
            let device = try software.makeDevice()
            try expectNoDescriptorLeak("NV12 with a data offset") {
                let width: UInt32 = 64, height: UInt32 = 32
                let nv12 = AllocationDescriptor(width: width, height: height, fourcc: AllocationDescriptor.fourccNV12)
                #expect(nv12.resolvedSize == UInt64(width * height * 3 / 2))
                let memory = try Kernel.memfd(name: "nv12")
                try Kernel.truncate(memory.borrowed, to: 4096 + 8192)
                try Kernel.addSeals(memory.borrowed, Kernel.sealShrink | Kernel.sealGrow)
                var header = [UInt8](repeating: 0xAB, count: 4096)
                header += [UInt8](repeating: 0x5C, count: 8192)
                try header.withUnsafeBytes { try Kernel.writeAt(memory.borrowed, $0, at: 0) }
                let planes = [AllocationDescriptor.Plane(offset: 4096, stride: width),
                              AllocationDescriptor.Plane(offset: 4096 + width * height, stride: width)]
                let layout = AllocationDescriptor(width: width, height: height, stride: width,
                                                  fourcc: AllocationDescriptor.fourccNV12, planes: planes,
                                                  dataOffset: 4096)
                let resource = try device.createResource(
                    allocations: [(.wrap(descriptor: memory.rawValue, layout), [])])
                #expect(resource.allocations[0].size == UInt64(width * height * 3 / 2))
                let opened = try device.openResource(try resource.share()).allocations[0]
                #expect(opened.layout == resource.allocations[0].layout)
                #expect(opened.layout.planes == planes && opened.layout.dataOffset == 4096)
                let mapping = try opened.map(writable: false)
                #expect(mapping.count == Int(width * height * 3 / 2) && mapping.bytes[0] == 0x5C)
                // More than the buffer holds past the data offset is refused.
                var tooBig = layout
                tooBig.dataOffset = 4096 + 8192 - 1024  // 1 KiB left, 3 KiB asked
                #expect(status { _ = try device.createAllocation(.wrap(descriptor: memory.rawValue, tooBig)) }
                        == .invalidParameter)
                // A new allocation's planes are the allocator's choice.
                #expect(status { _ = try device.createAllocation(.new(layout)) } == .invalidParameter)
            }
        }
    }
}
