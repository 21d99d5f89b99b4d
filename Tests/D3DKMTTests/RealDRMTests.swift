import Testing
@testable import D3DKMT
import KMTTestSupport
#if canImport(Glibc)
import Glibc
import Synchronization
#endif

/// The kernel layer against real drivers (the VM guest): the primitives the sync-object and
/// keyed-mutex work stands on. Skipped on a host without these render nodes.
extension D3DKMTSuite {
    @Suite struct RealDRM {
        static let virtio = adapter(driver: "virtio_gpu")?.info
        static let vgem = adapter(driver: "vgem")?.info

        @Test(.enabled(if: virtio != nil, "needs a virtio_gpu render node (VM guest)"))
        func virtioGPUHasPRIMEAndTimelineSyncobjs() throws {
            let info = try #require(Self.virtio)
            #expect(info.capabilities.isSuperset(of: [.prime, .syncObject, .timelineSyncObject]))
        }

        @Test(.enabled(if: virtio != nil, "needs a virtio_gpu render node (VM guest)"))
        func binaryAndTimelineSyncobjsSignalWaitAndCrossDescriptors() throws {
            let node = try #require(Self.virtio?.renderNode)
            try expectNoDescriptorLeak("syncobjs") {
                let first = try Kernel.open(node, O_RDWR)
                let second = try Kernel.open(node, O_RDWR)  // another "process's" device
                // Binary: unsignalled times out, signalled returns.
                let binary = try Kernel.syncobjCreate(first.borrowed)
                defer { Kernel.syncobjDestroy(first.borrowed, binary) }
                #expect(throws: Errno(rawValue: ETIME)) {
                    _ = try Kernel.syncobjWait(first.borrowed, handles: [binary], points: [0], all: true, until: .now)
                }
                try Kernel.syncobjSignal(first.borrowed, binary)
                _ = try Kernel.syncobjWait(first.borrowed, handles: [binary], points: [0], all: true, until: .now)

                // Timeline, shared through its descriptor: signalled on one fd, seen on the other.
                let timeline = try Kernel.syncobjCreate(first.borrowed)
                defer { Kernel.syncobjDestroy(first.borrowed, timeline) }
                let exported = try Kernel.syncobjExport(first.borrowed, timeline)
                #expect(try Kernel.statusFlags(exported.borrowed) >= 0)
                #expect(fcntl(exported.rawValue, F_GETFD) & FD_CLOEXEC != 0)
                let imported = try Kernel.syncobjImport(second.borrowed, exported.borrowed)
                defer { Kernel.syncobjDestroy(second.borrowed, imported) }
                try Kernel.syncobjTimelineSignal(second.borrowed, imported, point: 5)
                #expect(try Kernel.syncobjQuery(first.borrowed, timeline) == 5)
                _ = try Kernel.syncobjWait(first.borrowed, handles: [timeline], points: [3], all: true, until: .now)
                #expect(throws: Errno(rawValue: ETIME)) {
                    _ = try Kernel.syncobjWait(first.borrowed, handles: [timeline], points: [7], all: true,
                                               until: .after(nanoseconds: 1_000_000))
                }
                // Wait-any: the signalled one is reported.
                #expect(try Kernel.syncobjWait(first.borrowed, handles: [timeline, timeline], points: [9, 4],
                                               all: false, until: .now) == 1)
            }
        }

        @Test(.enabled(if: virtio != nil, "needs a virtio_gpu render node (VM guest)"))
        func syncobjEventfdBecomesReadableWhenThePointSignals() throws {
            let node = try #require(Self.virtio?.renderNode)
            try expectNoDescriptorLeak("syncobj eventfd") {
                let device = try Kernel.open(node, O_RDWR)
                let timeline = try Kernel.syncobjCreate(device.borrowed)
                defer { Kernel.syncobjDestroy(device.borrowed, timeline) }
                let event = try Kernel.eventfd()
                try Kernel.syncobjEventfd(device.borrowed, timeline, point: 10, eventfd: event.borrowed)
                try Kernel.syncobjTimelineSignal(device.borrowed, timeline, point: 9)
                #expect(try Kernel.waitReadable(event.borrowed, until: .now) == false)
                try Kernel.syncobjTimelineSignal(device.borrowed, timeline, point: 10)
                #expect(try Kernel.waitReadable(event.borrowed, until: .after(nanoseconds: 5_000_000_000)))
            }
        }

        /// The eventfd capability (`D3DKMT_LINUX_ADAPTER_SYNCOBJ_EVENTFD`) says what the kernel does:
        /// set exactly when a real syncobj can be handed an eventfd on the adapter's render node.
        @Test(.enabled(if: virtio != nil, "needs a virtio_gpu render node (VM guest)"))
        func theSyncobjEventfdCapabilityIsWhatTheKernelDoes() throws {
            for adapter in adaptersUnderTest {
                let info = adapter.info
                guard let node = info.renderNode else {
                    #expect(!info.capabilities.contains(.syncObjectEventfd), "\(info.driverName)")
                    continue
                }
                try expectNoDescriptorLeak("eventfd probe") {
                    let device = try Kernel.open(node, O_RDWR)
                    var works = false
                    if let syncobj = try? Kernel.syncobjCreate(device.borrowed) {
                        defer { Kernel.syncobjDestroy(device.borrowed, syncobj) }
                        let event = try Kernel.eventfd()
                        works = (try? Kernel.syncobjEventfd(device.borrowed, syncobj, point: 0,
                                                            eventfd: event.borrowed)) != nil
                    }
                    #expect(info.capabilities.contains(.syncObjectEventfd) == works, "\(info.driverName)")
                }
            }
            // Linux 6.12's virtio_gpu has the ioctl; vgem has no syncobjs at all.
            #expect(Self.virtio?.capabilities.contains(.syncObjectEventfd) == true)
            if let vgem = Self.vgem { #expect(!vgem.capabilities.contains(.syncObjectEventfd)) }
        }

        @Test(.enabled(if: vgem != nil && virtio != nil, "needs vgem and virtio_gpu (VM guest)"))
        func aVgemFenceBlocksASyncobjWaitUntilVgemSignalsIt() throws {
            let vgemCard = try #require(Self.vgem?.primaryNode)
            let virtioNode = try #require(Self.virtio?.renderNode)
            try expectNoDescriptorLeak("vgem fence") {
                let card = try Kernel.open(vgemCard, O_RDWR)
                let buffer = try Kernel.createDumb(card.borrowed, width: 1024, height: 1)
                defer { Kernel.gemClose(card.borrowed, handle: buffer.handle) }
                let fence = try VGEM.fenceAttach(card.rawValue, handle: buffer.handle)
                let dmaBuf = try Kernel.primeExport(card.borrowed, handle: buffer.handle, writable: true)
                // The buffer's pending write, as a sync_file, in a syncobj of another driver.
                let syncFile = try Kernel.dmaBufExportSyncFile(dmaBuf.borrowed, write: true)
                let device = try Kernel.open(virtioNode, O_RDWR)
                let syncobj = try Kernel.syncobjCreate(device.borrowed)
                defer { Kernel.syncobjDestroy(device.borrowed, syncobj) }
                try Kernel.syncobjImportSyncFile(device.borrowed, syncobj, syncFile: syncFile.borrowed)

                #expect(throws: Errno(rawValue: ETIME)) {
                    _ = try Kernel.syncobjWait(device.borrowed, handles: [syncobj], points: [0], all: true,
                                               until: .after(nanoseconds: 10_000_000))
                }
                // A blocking waiter on another thread; it cannot return before the signal below.
                let finished = Atomic<Int>(0)  // 1: returned success, 2: failed
                let deviceFD = device.rawValue
                let waiter = Thread {
                    let ok = (try? Kernel.syncobjWait(BorrowedDescriptor(unowned: deviceFD), handles: [syncobj],
                                                      points: [0], all: true,
                                                      until: .after(nanoseconds: 60_000_000_000))) != nil
                    finished.store(ok ? 1 : 2, ordering: .sequentiallyConsistent)
                }
                #expect(try Kernel.waitReadable(syncFile.borrowed, until: .after(nanoseconds: 20_000_000)) == false)
                #expect(finished.load(ordering: .sequentiallyConsistent) == 0)
                try VGEM.fenceSignal(card.rawValue, fence: fence)
                waiter.join()
                #expect(finished.load(ordering: .sequentiallyConsistent) == 1)
                #expect(try Kernel.waitReadable(syncFile.borrowed, until: .now))
            }
        }
    }
}

/// A joinable pthread, for tests that need a second thread blocked in the kernel.
final class Thread: @unchecked Sendable {
    private var thread = pthread_t()
    private let body: @Sendable () -> Void

    init(_ body: @escaping @Sendable () -> Void) {
        self.body = body
        let context = Unmanaged.passRetained(self).toOpaque()
        pthread_create(&thread, nil, { context in
            let me = Unmanaged<Thread>.fromOpaque(context!).takeRetainedValue()
            me.body()
            return nil
        }, context)
    }

    func join() { pthread_join(thread, nil) }
}
