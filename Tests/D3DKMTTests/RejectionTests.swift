import Testing
@testable import D3DKMT
#if canImport(Glibc)
import Glibc
#endif

/// A handle made by hand: `bytes` queued with `descriptors`, as a hostile or broken peer could.
func forgedHandle(_ bytes: [UInt8], descriptors: [Int32] = []) throws -> SharedHandle {
    let pair = try Kernel.socketPair(type: Int32(SOCK_SEQPACKET.rawValue))
    try Kernel.send(pair.second.borrowed, bytes: bytes, descriptors: descriptors.map(BorrowedDescriptor.init(unowned:)))
    return SharedHandle(try pair.first.duplicate())
}

/// A valid one-allocation package for `buffer`, to be broken by the tests.
func validPackage(luid: LUID, size: UInt64 = 4096) -> SharePackage {
    var package = SharePackage(contents: .resource, descriptorCount: 1, access: SharedAccess.allAccess,
                               adapterLUID: luid)
    package.runtimeData = [1, 2, 3]
    package.allocations = [.init(size: size, driverData: [0xAB], descriptorIndex: 0,
                                 layout: AllocationDescriptor(size: size))]
    return package
}

extension D3DKMTSuite {
    @Suite struct Rejections {
        let device: Device
        let allocation: Allocation
        /// The allocation's memfd, owned by `allocation`.
        var bufferFD: Int32 { allocation.buffer.descriptor.rawValue }

        init() throws {
            device = try Adapter.open(luid: AdapterInfo.software.luid).makeDevice()
            let resource = try device.createResource(allocations: [(.new(AllocationDescriptor(size: 4096)), [])])
            allocation = resource.allocations[0]
        }

        func openStatus(_ handle: borrowing SharedHandle) -> NTStatus {
            status { _ = try device.openResource(handle) }
        }

        @Test func aWellFormedForgedPackageOpens() throws {
            // The control for the cases below: the same construction, unbroken, works.
            let handle = try forgedHandle(validPackage(luid: device.adapter.info.luid).encoded(),
                                          descriptors: [bufferFD])
            #expect(openStatus(handle) == .success)
        }

        @Test func forgedKeyedMutexesAndSyncObjectsAreRefused() throws {
            try expectNoDescriptorLeak("forged sync packages") {
                var fds: [Int32] = [-1, -1]
                #expect(pipe(&fds) == 0)
                defer { close(fds[0]); close(fds[1]) }
                let good = try device.createSyncObject(.monitoredFence)
                let goodState = good.fenceState!.page.descriptor.rawValue
                let mutex = try KeyedMutex.create()
                let mutexState = mutex.state.page.descriptor.rawValue

                func syncPackage(syncobj: UInt32, state: UInt32, count: UInt32) -> [UInt8] {
                    var package = SharePackage(contents: .syncObject, descriptorCount: count, access: 0,
                                               adapterLUID: device.adapter.info.luid)
                    package.syncObject = .init(type: SyncObject.Kind.monitoredFence.rawValue, flags: 0,
                                               syncobjDescriptorIndex: syncobj, stateDescriptorIndex: state)
                    return package.encoded()
                }
                let none = SharePackage.noDescriptor
                // The control: a software fence's page alone opens.
                #expect(status {
                    _ = try device.openSyncObject(forgedHandle(syncPackage(syncobj: none, state: 0, count: 1),
                                                               descriptors: [goodState]))
                } == .success)
                // A pipe passed off as a syncobj, or as the state page; a keyed mutex page as a fence page;
                // no descriptor at all.
                #expect(status {
                    _ = try device.openSyncObject(forgedHandle(syncPackage(syncobj: 0, state: none, count: 1),
                                                               descriptors: [fds[0]]))
                } == .invalidParameter)
                #expect(status {
                    _ = try device.openSyncObject(forgedHandle(syncPackage(syncobj: none, state: 0, count: 1),
                                                               descriptors: [fds[0]]))
                } == .invalidParameter)
                #expect(status {
                    _ = try device.openSyncObject(forgedHandle(syncPackage(syncobj: none, state: 0, count: 1),
                                                               descriptors: [mutexState]))
                } == .invalidParameter)
                #expect(status {
                    _ = try device.openSyncObject(forgedHandle(syncPackage(syncobj: none, state: none, count: 0)))
                } == .invalidParameter)

                // A keyed mutex whose state is a fence page, or a pipe.
                func mutexPackage(_ state: Int32) -> [UInt8] {
                    var package = validPackage(luid: device.adapter.info.luid)
                    package.contents = [.resource, .keyedMutex, .syncObject]
                    package.descriptorCount = 3
                    package.keyedMutex = .init(stateDescriptorIndex: 1, syncobjDescriptorIndex: none, runtimeData: [])
                    package.syncObject = .init(type: SyncObject.Kind.fence.rawValue, flags: 0,
                                               syncobjDescriptorIndex: none, stateDescriptorIndex: 2)
                    return package.encoded()
                }
                #expect(status {
                    _ = try KeyedMutex.open(forgedHandle(mutexPackage(mutexState),
                                                         descriptors: [bufferFD, mutexState, goodState]))
                } == .success)
                #expect(status {
                    _ = try KeyedMutex.open(forgedHandle(mutexPackage(goodState),
                                                         descriptors: [bufferFD, goodState, goodState]))
                } == .invalidParameter)
                #expect(status {
                    _ = try KeyedMutex.open(forgedHandle(mutexPackage(fds[0]),
                                                         descriptors: [bufferFD, fds[0], goodState]))
                } == .invalidParameter)
                #expect(status {
                    _ = try device.openResource(forgedHandle(mutexPackage(fds[0]),
                                                             descriptors: [bufferFD, fds[0], goodState]))
                } == .invalidParameter)
            }
        }

        @Test func resourcesCreatedWithoutSharingCannotBeShared() throws {
            let resource = try device.createResource(allocations: [(.new(AllocationDescriptor(size: 4096)), [])],
                                                     shareable: false)
            #expect(status { _ = try resource.share() } == .invalidParameter)
        }

        @Test func badAllocationRequestsAreRefused() throws {
            expectNoDescriptorLeak("bad allocations") {
                #expect(status { _ = try device.createResource(allocations: []) } == .invalidParameter)
                #expect(status {
                    _ = try device.createAllocation(.new(AllocationDescriptor(size: 0)))
                } == .invalidParameter)
                #expect(status {
                    _ = try device.createAllocation(.new(AllocationDescriptor(size: 1 << 40)))
                } == .invalidParameter)
                var fds: [Int32] = [-1, -1]
                #expect(pipe(&fds) == 0)
                #expect(status {
                    _ = try device.createAllocation(.wrap(descriptor: fds[0], AllocationDescriptor(size: 4096)))
                } == .invalidParameter)
                close(fds[0]); close(fds[1])
                #expect(status {
                    _ = try device.createAllocation(.wrap(descriptor: -1, AllocationDescriptor(size: 4096)))
                } == .invalidParameter)
            }
        }

        @Test func descriptorsThatAreNotHandles() throws {
            try expectNoDescriptorLeak("non-handles") {
                var fds: [Int32] = [-1, -1]
                #expect(pipe(&fds) == 0)
                #expect(openStatus(SharedHandle(adopting: fds[0])) == .invalidParameter)
                close(fds[1])
                let stream = try Kernel.socketPair(type: Int32(SOCK_STREAM.rawValue))
                #expect(openStatus(try SharedHandle(stream.first.duplicate())) == .invalidParameter)
                // A handle-shaped socket with nothing queued: what a handle whose package a holder
                // read out of it (without MSG_PEEK) looks like: spent.
                let empty = try Kernel.socketPair(type: Int32(SOCK_SEQPACKET.rawValue))
                #expect(openStatus(try SharedHandle(empty.first.duplicate())) == .invalidHandle)
                #expect(openStatus(SharedHandle(try allocation.buffer.descriptor.duplicate())) == .invalidParameter)
            }
            // A number that is no open descriptor: taken high (a copy at >= 900, then closed) so that
            // nothing another test opens meanwhile reuses it, and borrowed, never closed again.
            let closed = fcntl(allocation.buffer.descriptor.rawValue, F_DUPFD_CLOEXEC, 900)
            #expect(closed >= 900)
            close(closed)
            #expect(status {
                _ = try SharedHandle.withBorrowed(closed) { (handle) throws(NTError) in
                    try device.openResource(handle)
                }
            } == .invalidHandle)
        }

        @Test func forgedPackagesAreRefusedWithoutLeaks() throws {
            let luid = device.adapter.info.luid
            let good = validPackage(luid: luid).encoded()
            var pipeFDs: [Int32] = [-1, -1]
            #expect(pipe(&pipeFDs) == 0)
            defer { close(pipeFDs[0]); close(pipeFDs[1]) }

            func patched(_ offset: Int, _ value: UInt32, in bytes: [UInt8] = good) -> [UInt8] {
                var copy = bytes
                withUnsafeBytes(of: value.littleEndian) { for i in 0..<4 { copy[offset + i] = $0[i] } }
                return copy
            }
            var tooBig = validPackage(luid: luid)
            tooBig.allocations[0].size = 1 << 20  // more than the 4 KiB buffer holds

            var twice = validPackage(luid: luid)
            twice.allocations.append(twice.allocations[0])  // both name descriptor 0
            twice.descriptorCount = 2

            let cases: [(String, [UInt8], [Int32], NTStatus)] = [
                ("garbage", Array(repeating: 0xAB, count: 100), [bufferFD], .invalidParameter),
                ("truncated", Array(good.prefix(30)), [bufferFD], .invalidParameter),
                ("truncated blobs", patched(8, UInt32(good.count - 2), in: Array(good.dropLast(2))), [bufferFD],
                 .invalidParameter),
                ("newer version", { var b = good; b[4] = 9; return b }(), [bufferFD], .notSupported),
                ("no descriptors", good, [], .invalidParameter),
                ("one descriptor too many", good, [bufferFD, bufferFD], .invalidParameter),
                ("pipe as allocation", good, [pipeFDs[0]], .invalidParameter),
                ("runtime size overflows", patched(36, 0xFFFF_FFF0), [bufferFD], .invalidParameter),
                ("allocation count overflows", patched(32, 0xFFFF_FFFF), [bufferFD], .invalidParameter),
                ("bad object combination", patched(12, 2), [bufferFD], .invalidParameter),
                ("size beyond the buffer", tooBig.encoded(), [bufferFD], .invalidParameter),
                ("descriptor used twice", twice.encoded(), [bufferFD, bufferFD], .invalidParameter),
            ]
            for (name, bytes, descriptors, expected) in cases {
                try expectNoDescriptorLeak(name) {
                    let handle = try forgedHandle(bytes, descriptors: descriptors)
                    #expect(openStatus(handle) == expected, "\(name)")
                    #expect(status { _ = try device.resourceInfo(handle) } != .success, "\(name)")
                }
            }
        }

        @Test func aSyncObjectOnlyHandleIsNotAResource() throws {
            var package = SharePackage(contents: .syncObject, descriptorCount: 1, access: 0,
                                       adapterLUID: device.adapter.info.luid)
            package.syncObject = .init(type: 0, flags: 0, syncobjDescriptorIndex: 0, stateDescriptorIndex: UInt32.max)
            let handle = try forgedHandle(package.encoded(), descriptors: [bufferFD])
            #expect(openStatus(handle) == .invalidParameter)
        }

        @Test func aWrappedImageWithMoreThanFourPlanesIsRefused() throws {
            let made = try device.createAllocation(.new(AllocationDescriptor(size: 4096)))
            let memory = try made.exportDescriptor()
            let planes = (0..<5).map { AllocationDescriptor.Plane(offset: UInt32($0) * 512, stride: 64) }
            var layout = AllocationDescriptor(size: 4096, width: 16, height: 8, stride: 64,
                                              fourcc: AllocationDescriptor.fourccARGB8888)
            layout.planes = planes
            #expect(layout.hasTooManyPlanes && layout.planes == Array(planes.prefix(4)))
            #expect(status { _ = try device.createAllocation(.wrap(descriptor: memory.rawValue, layout)) }
                        == .invalidParameter)
            layout.planes = Array(planes.prefix(4))
            #expect(!layout.hasTooManyPlanes)
            _ = try device.createAllocation(.wrap(descriptor: memory.rawValue, layout))
        }

        @Test func largePrivateDataTravelsAndOversizedIsRefused() throws {
            let big = (0..<100_000).map { UInt8(truncatingIfNeeded: $0) }
            let resource = try device.createResource(allocations: [(.new(AllocationDescriptor(size: 4096)), [])],
                                                     runtimeData: big)
            let opened = try device.openResource(try resource.share())
            #expect(opened.runtimeData == big)
            // A shareable resource carries its runtime data in its page from the start: more than
            // the page holds is refused at creation; a resource that is never shared keeps it.
            #expect(status {
                _ = try device.createResource(allocations: [(.new(AllocationDescriptor(size: 4096)), [])],
                                              runtimeData: big + big)
            } == .invalidParameter)
            let local = try device.createResource(allocations: [(.new(AllocationDescriptor(size: 4096)), [])],
                                                  runtimeData: big + big, shareable: false)
            #expect(local.runtimeData == big + big)
        }
    }
}
