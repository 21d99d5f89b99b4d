import Testing
import Synchronization
@testable import D3DKMT
import KMTTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Whether `fd` becomes readable within `milliseconds` (0: is it readable now).
func readable(_ fd: Int32, within milliseconds: Int64) throws -> Bool {
    try Kernel.waitReadable(BorrowedDescriptor(unowned: fd), until: .after(nanoseconds: milliseconds * 1_000_000))
}

/// Waits (bounded) until the open descriptor count returns to `count`: an async wait's helper
/// thread closes its eventfd copy just after signalling it.
func settleDescriptors(to count: Int) {
    for _ in 0..<500 where openDescriptorCount() != count { usleep(10_000) }
}

extension D3DKMTSuite {
    @Suite struct SyncObjects {
        static let withSyncObjects = adaptersUnderTest.filter(hasSyncObjects)

        @Test(arguments: adaptersUnderTest)
        func vgemRefusesAndOthersCreateBothFenceKinds(adapter: Adapter) throws {
            let device = try adapter.makeDevice()
            for kind in [SyncObject.Kind.fence, .monitoredFence] {
                if hasSyncObjects(adapter) {
                    let object = try device.createSyncObject(kind, initialValue: 3)
                    #expect(try object.currentValue() == 3)
                    #expect((object.fenceValueAddress != nil) == (kind == .monitoredFence))
                    #expect(object.fenceValueAddress?.pointee ?? 3 == 3)
                } else {
                    #expect(status { _ = try device.createSyncObject(kind) } == .notSupported)
                }
            }
        }

        @Test(arguments: withSyncObjects)
        func aSignalInAnotherProcessWakesAWaiterHere(adapter: Adapter) throws {
            let device = try adapter.makeDevice()
            try expectNoDescriptorLeak("cross-process signal") {
                let fence = try device.createSyncObject(.monitoredFence)
                let handle = try fence.share()
                let peer = try PeerProcess(["signal", "3"] + luidArguments(adapter) + ["7", "100"],
                                           inherit: [handle.rawValue])
                try SyncObject.wait(for: [(fence, 7)], timeout: .seconds(30))
                #expect(try fence.currentValue() >= 7)
                #expect(fence.fenceValueAddress!.pointee == 7)
                let result = peer.wait()
                #expect(result.exitStatus == 0, "peer said: \(result.text)")
            }
        }

        @Test(arguments: withSyncObjects)
        func aWaiterInAnotherProcessWakesOnASignalHere(adapter: Adapter) throws {
            let device = try adapter.makeDevice()
            try expectNoDescriptorLeak("cross-process wait") {
                let fence = try device.createSyncObject(.fence)
                let handle = try fence.share()
                let peer = try PeerProcess(["wait", "3"] + luidArguments(adapter) + ["3"], inherit: [handle.rawValue])
                #expect(peer.readLine() == "waiting")
                try fence.signal(2)
                try fence.signal(3)
                let result = peer.wait()
                #expect(result.exitStatus == 0, "peer said: \(result.text)")
                #expect(result.output["waited"] == "3")
            }
        }

        @Test(arguments: withSyncObjects)
        func timeoutsRewindsAndWaitAnyAgainstWaitAll(adapter: Adapter) throws {
            let device = try adapter.makeDevice()
            try expectNoDescriptorLeak("sync object waits") {
                let a = try device.createSyncObject(.monitoredFence)
                let b = try device.createSyncObject(.fence)
                // Value 0 is reached from the start, also by a DRM timeline that has no point yet.
                #expect(status { try SyncObject.wait(for: [(b, 0)], timeout: .seconds(5)) } == .success)
                #expect(status {
                    try SyncObject.wait(for: [(a, 0), (b, 0)], all: true, timeout: .seconds(5))
                } == .success)
                let zero = try Kernel.eventfd()
                try SyncObject.notify(eventfd: zero.rawValue, when: [(b, 0)])
                #expect(try readable(zero.rawValue, within: 5_000))
                #expect(status { try SyncObject.wait(for: [(a, 1)], timeout: .zero) } == .timeout)
                #expect(status { try SyncObject.wait(for: [(a, 1)], timeout: .milliseconds(20)) } == .timeout)
                try a.signal(1)
                #expect(status { try SyncObject.wait(for: [(a, 1), (b, 1)], all: false, timeout: .zero) } == .success)
                #expect(status {
                    try SyncObject.wait(for: [(a, 1), (b, 1)], all: true, timeout: .milliseconds(20))
                } == .timeout)
                try b.signal(1)
                #expect(status { try SyncObject.wait(for: [(a, 1), (b, 1)], all: true, timeout: .zero) } == .success)
                // A fence never goes back; signalling the current value again changes nothing.
                try a.signal(5)
                #expect(status { try a.signal(4) } == .invalidParameter)
                #expect(status { try a.signal(5) } == .success)
                #expect(try a.currentValue() == 5 && a.fenceValueAddress!.pointee == 5)
                #expect(status { try SyncObject.wait(for: []) } == .invalidParameter)
                // A wait-any woken by the second object, from another thread.
                let signaller = Thread { usleep(50_000); try? b.signal(9) }
                try SyncObject.wait(for: [(a, 100), (b, 9)], all: false, timeout: .seconds(30))
                signaller.join()
            }
        }

        @Test(arguments: withSyncObjects)
        func asyncWaitsMakeAnEventfdReadable(adapter: Adapter) throws {
            let device = try adapter.makeDevice()
            let before = openDescriptorCount()
            do {
                let a = try device.createSyncObject(.monitoredFence)
                let b = try device.createSyncObject(.monitoredFence)
                let single = try Kernel.eventfd(), any = try Kernel.eventfd(), all = try Kernel.eventfd()
                try SyncObject.notify(eventfd: single.rawValue, when: [(a, 2)])
                try SyncObject.notify(eventfd: any.rawValue, when: [(a, 3), (b, 3)], all: false)
                try SyncObject.notify(eventfd: all.rawValue, when: [(a, 2), (b, 1)], all: true)
                #expect(try !readable(single.rawValue, within: 20))
                try a.signal(2)
                #expect(try readable(single.rawValue, within: 5_000))
                #expect(try !readable(any.rawValue, within: 20))
                #expect(try !readable(all.rawValue, within: 0))
                try b.signal(3)
                #expect(try readable(any.rawValue, within: 5_000))
                #expect(try readable(all.rawValue, within: 5_000))
                // Not an eventfd: refused.
                let pipeEnds = try Kernel.socketPair(type: Int32(SOCK_STREAM.rawValue))
                #expect(status {
                    try SyncObject.notify(eventfd: pipeEnds.first.rawValue, when: [(a, 1)])
                } == .invalidParameter)
            }
            settleDescriptors(to: before)
            #expect(openDescriptorCount() == before, "async waits leaked descriptors")
        }

        @Test(arguments: withSyncObjects)
        func theFenceValueAddressIsSharedAndNeverAhead(adapter: Adapter) throws {
            let device = try adapter.makeDevice()
            let fence = try device.createSyncObject(.monitoredFence, initialValue: 10)
            let handle = try fence.share()
            let opened = try device.openSyncObject(handle)
            #expect(opened.kind == .monitoredFence)
            #expect(opened.fenceValueAddress!.pointee == 10)
            try fence.signal(11)
            // The opener's CPU view follows the sharer's signal and is never ahead of the fence.
            #expect(opened.fenceValueAddress!.pointee == 11)
            #expect(opened.fenceValueAddress!.pointee <= (try opened.currentValue()))
        }

        @Test(.enabled(if: hasDriver("virtio_gpu"), "needs virtio_gpu (VM guest)"))
        func syncobjAndSyncFileInterop() throws {
            let found = D3DKMTTests.adapter(driver: "virtio_gpu")
            let virtio = try #require(found)
            try expectNoDescriptorLeak("syncobj interop") {
                let first = try virtio.makeDevice(), second = try virtio.makeDevice()
                let fence = try first.createSyncObject(.fence)
                let exported = try fence.exportSyncobj()
                let imported = try second.importSyncObject(syncobj: exported.rawValue)
                try fence.signal(4)
                #expect(try imported.currentValue() == 4)
                #expect(status { _ = try fence.exportSyncFile(value: 9) } == .invalidParameter)
                let syncFile = try fence.exportSyncFile(value: 4)
                let fromFile = try second.importSyncObject(syncFile: syncFile.rawValue)
                try SyncObject.wait(for: [(fromFile, 1)], timeout: .seconds(5))
                // Not a syncobj / not a sync_file: refused.
                let event = try Kernel.eventfd()
                #expect(status { _ = try second.importSyncObject(syncobj: event.rawValue) } == .invalidParameter)
                #expect(status { _ = try second.importSyncObject(syncFile: event.rawValue) } == .invalidParameter)
            }
        }

        @Test func theSoftwareAdapterCannotTakeDRMSyncobjs() throws {
            let device = try Adapter.open(luid: AdapterInfo.software.luid).makeDevice()
            let software = try device.createSyncObject(.fence)
            #expect(status { _ = try software.exportSyncobj() } == .notSupported)
            #expect(status { _ = try software.exportSyncFile(value: 0) } == .notSupported)
            let event = try Kernel.eventfd()
            #expect(status { _ = try device.importSyncObject(syncFile: event.rawValue) } == .notSupported)
            guard let virtio = adapter(driver: "virtio_gpu") else { return }
            let drm = try virtio.makeDevice().createSyncObject(.fence)
            #expect(status { _ = try device.openSyncObject(drm.share()) } == .notSupported)
        }

        @Test(.enabled(if: hasDriver("vgem") && hasDriver("virtio_gpu"), "needs vgem and virtio_gpu (VM guest)"))
        func aVgemFenceInASyncObjectHoldsACPUWaitUntilVgemSignals() throws {
            let vgemCard = try #require(adapter(driver: "vgem")?.info.primaryNode)
            let found = D3DKMTTests.adapter(driver: "virtio_gpu")
            let virtio = try #require(found)
            try expectNoDescriptorLeak("vgem fence in a sync object") {
                let card = try Kernel.open(vgemCard, O_RDWR)
                let buffer = try Kernel.createDumb(card.borrowed, width: 1024, height: 1)
                defer { Kernel.gemClose(card.borrowed, handle: buffer.handle) }
                let vgemFence = try VGEM.fenceAttach(card.rawValue, handle: buffer.handle)
                let dmaBuf = try Kernel.primeExport(card.borrowed, handle: buffer.handle, writable: true)
                let syncFile = try Kernel.dmaBufExportSyncFile(dmaBuf.borrowed, write: true)
                let device = try virtio.makeDevice()
                let object = try device.importSyncObject(syncFile: syncFile.rawValue)
                let finished = Atomic<Int>(0)  // 1: the wait returned success, 2: it failed
                let waiter = Thread {
                    let ok = status { try SyncObject.wait(for: [(object, 1)], timeout: .seconds(60)) } == .success
                    finished.store(ok ? 1 : 2, ordering: .sequentiallyConsistent)
                }
                #expect(status { try SyncObject.wait(for: [(object, 1)], timeout: .milliseconds(50)) } == .timeout)
                #expect(finished.load(ordering: .sequentiallyConsistent) == 0)
                try VGEM.fenceSignal(card.rawValue, fence: vgemFence)
                waiter.join()
                #expect(finished.load(ordering: .sequentiallyConsistent) == 1)
                #expect(try object.currentValue() == 1)
            }
        }
    }
}
