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
                let binary = try Kernel.syncobjCreate(first.rawValue)
                defer { Kernel.syncobjDestroy(first.rawValue, binary) }
                #expect(throws: Errno(rawValue: ETIME)) {
                    _ = try Kernel.syncobjWait(first.rawValue, handles: [binary], points: [0], all: true, until: .now)
                }
                try Kernel.syncobjSignal(first.rawValue, binary)
                _ = try Kernel.syncobjWait(first.rawValue, handles: [binary], points: [0], all: true, until: .now)

                // Timeline, shared through its descriptor: signalled on one fd, seen on the other.
                let timeline = try Kernel.syncobjCreate(first.rawValue)
                defer { Kernel.syncobjDestroy(first.rawValue, timeline) }
                let exported = try Kernel.syncobjExport(first.rawValue, timeline)
                #expect(try Kernel.statusFlags(exported.rawValue) >= 0)
                #expect(fcntl(exported.rawValue, F_GETFD) & FD_CLOEXEC != 0)
                let imported = try Kernel.syncobjImport(second.rawValue, exported.rawValue)
                defer { Kernel.syncobjDestroy(second.rawValue, imported) }
                try Kernel.syncobjTimelineSignal(second.rawValue, imported, point: 5)
                #expect(try Kernel.syncobjQuery(first.rawValue, timeline) == 5)
                _ = try Kernel.syncobjWait(first.rawValue, handles: [timeline], points: [3], all: true, until: .now)
                #expect(throws: Errno(rawValue: ETIME)) {
                    _ = try Kernel.syncobjWait(first.rawValue, handles: [timeline], points: [7], all: true, until: .after(nanoseconds: 1_000_000))
                }
                // Wait-any: the signalled one is reported.
                #expect(try Kernel.syncobjWait(first.rawValue, handles: [timeline, timeline], points: [9, 4], all: false, until: .now) == 1)
            }
        }

        @Test(.enabled(if: virtio != nil, "needs a virtio_gpu render node (VM guest)"))
        func syncobjEventfdBecomesReadableWhenThePointSignals() throws {
            let node = try #require(Self.virtio?.renderNode)
            try expectNoDescriptorLeak("syncobj eventfd") {
                let device = try Kernel.open(node, O_RDWR)
                let timeline = try Kernel.syncobjCreate(device.rawValue)
                defer { Kernel.syncobjDestroy(device.rawValue, timeline) }
                let event = try Kernel.eventfd()
                try Kernel.syncobjEventfd(device.rawValue, timeline, point: 10, eventfd: event.rawValue)
                try Kernel.syncobjTimelineSignal(device.rawValue, timeline, point: 9)
                #expect(try Kernel.waitReadable(event.rawValue, until: .now) == false)
                try Kernel.syncobjTimelineSignal(device.rawValue, timeline, point: 10)
                #expect(try Kernel.waitReadable(event.rawValue, until: .after(nanoseconds: 5_000_000_000)))
            }
        }

        @Test(.enabled(if: vgem != nil && virtio != nil, "needs vgem and virtio_gpu (VM guest)"))
        func aVgemFenceBlocksASyncobjWaitUntilVgemSignalsIt() throws {
            let vgemCard = try #require(Self.vgem?.primaryNode)
            let virtioNode = try #require(Self.virtio?.renderNode)
            try expectNoDescriptorLeak("vgem fence") {
                let card = try Kernel.open(vgemCard, O_RDWR)
                let buffer = try Kernel.createDumb(card.rawValue, width: 1024, height: 1)
                defer { Kernel.gemClose(card.rawValue, handle: buffer.handle) }
                let fence = try VGEM.fenceAttach(card.rawValue, handle: buffer.handle)
                let dmaBuf = try Kernel.primeExport(card.rawValue, handle: buffer.handle, writable: true)
                // The buffer's pending write, as a sync_file, in a syncobj of another driver.
                let syncFile = try Kernel.dmaBufExportSyncFile(dmaBuf.rawValue, write: true)
                let device = try Kernel.open(virtioNode, O_RDWR)
                let syncobj = try Kernel.syncobjCreate(device.rawValue)
                defer { Kernel.syncobjDestroy(device.rawValue, syncobj) }
                try Kernel.syncobjImportSyncFile(device.rawValue, syncobj, syncFile: syncFile.rawValue)

                #expect(throws: Errno(rawValue: ETIME)) {
                    _ = try Kernel.syncobjWait(device.rawValue, handles: [syncobj], points: [0], all: true, until: .after(nanoseconds: 10_000_000))
                }
                // A blocking waiter on another thread; it cannot return before the signal below.
                let finished = Atomic<Int>(0)  // 1: returned success, 2: failed
                let deviceFD = device.rawValue
                let waiter = Thread {
                    let ok = (try? Kernel.syncobjWait(deviceFD, handles: [syncobj], points: [0], all: true, until: .after(nanoseconds: 60_000_000_000))) != nil
                    finished.store(ok ? 1 : 2, ordering: .sequentiallyConsistent)
                }
                #expect(try Kernel.waitReadable(syncFile.rawValue, until: .after(nanoseconds: 20_000_000)) == false)
                #expect(finished.load(ordering: .sequentiallyConsistent) == 0)
                try VGEM.fenceSignal(card.rawValue, fence: fence)
                waiter.join()
                #expect(finished.load(ordering: .sequentiallyConsistent) == 1)
                #expect(try Kernel.waitReadable(syncFile.rawValue, until: .now))
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
