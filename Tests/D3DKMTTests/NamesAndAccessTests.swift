import Testing
@testable import D3DKMT
#if canImport(Glibc)
import Glibc
#endif

/// A name no other test run uses.
func uniqueName(_ tag: String) -> String {
    "Local\\d3dkmt-test-\(tag)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
}

/// The status of resolving `name` once the name thread has caught up (it retires names
/// asynchronously): polls until the status is `expected` or 5 seconds pass, and returns the last.
func resolveStatus(_ name: String, becomes expected: NTStatus) -> NTStatus {
    var last = NTStatus.success
    for _ in 0..<500 {
        last = status { _ = try SharedHandle.open(name: name) }
        if last == expected { break }
        usleep(10_000)
    }
    return last
}

/// Waits until `names` no longer resolve and the name thread has closed their sockets (it
/// retires names asynchronously), so later tests count descriptors from a quiet state.
func waitForRetirement(_ names: [String]) {
    for name in names { _ = resolveStatus(name, becomes: .objectNameNotFound) }
    var count = openDescriptorCount()
    for _ in 0..<100 {
        usleep(20_000)
        let now = openDescriptorCount()
        if now == count { break }
        count = now
    }
}

extension D3DKMTSuite {
    @Suite struct Names {
        @Test(arguments: adaptersUnderTest)
        func aNamedResourceOpensInAnotherProcessUntilItsHandleCloses(adapter: Adapter) throws {
            let device = try adapter.makeDevice()
            let name = uniqueName("open")
            // The first name a process publishes starts its name thread, which keeps one
            // descriptor (its wake-up eventfd) for the life of the process.
            let warmUp = uniqueName("warm-up")
            _ = try device.createResource(allocations: [(.new(AllocationDescriptor(size: 4096)), [])])
                .share(name: warmUp)
            waitForRetirement([warmUp])
            let before = openDescriptorCount()
            do {
                let resource = try makePatternResource(on: device, sizes: [8192], seed: 77)
                var handle: SharedHandle? = try resource.share(name: name)
                let peer = try runPeer(["open-named", name] + luidArguments(adapter) + ["77"])
                #expect(peer.exitStatus == 0, "peer said: \(peer.text)")
                #expect(try patternMatches(resource.allocations[0], seed: 78, index: 0))
                // A duplicate keeps the name alive; the last copy's close retires it.
                let copy = try handle!.duplicate()
                handle = nil
                #expect(status { _ = try SharedHandle.open(name: name) } == .success)
                _ = consume copy
                #expect(resolveStatus(name, becomes: .objectNameNotFound) == .objectNameNotFound)
            }
            // The name thread closes a retired name's sockets just after unlinking it.
            settleDescriptors(to: before)
            #expect(openDescriptorCount() == before, "named share leaked descriptors")
        }

        /// Names compare as Windows' object manager compares them: upper case one UTF-16 unit at a
        /// time, the directory prefixes without case; ASCII names (the fast path) and others alike.
        @Test func namesFoldToUpperCaseOneUnitAtATime() throws {
            #expect(try D3DKMT.Names.canonical("Local\\dxvk-Shared_0x1f") == "S:DXVK-SHARED_0X1F")
            #expect(try D3DKMT.Names.canonical("global\\a{z}~") == "G:A{Z}~")
            #expect(try D3DKMT.Names.canonical("\\sessions\\1\\basenamedobjects\\x") == "S:X")
            #expect(try D3DKMT.Names.canonical("Grüße-é") == "S:GRÜßE-É",
                    "ß has no one-unit upper case: it stays")
            #expect(try D3DKMT.Names.canonical("Local\\ǆ") == "S:Ǆ")
            #expect(try D3DKMT.Names.canonical("Same") == D3DKMT.Names.canonical("sAME"))
        }

        @Test func collisionsInvalidNamesKindsAndAccess() throws {
            let device = try Adapter.open(luid: AdapterInfo.software.luid).makeDevice()
            let resource = try device.createResource(allocations: [(.new(AllocationDescriptor(size: 4096)), [])])
            let name = uniqueName("rules")
            let handle = try resource.share(access: SharedAccess.read, name: name)
            #expect(status { _ = try resource.share(name: name) } == .objectNameCollision)
            #expect(status { _ = try resource.share(name: "") } == .objectNameInvalid)
            #expect(status { _ = try resource.share(name: String(repeating: "x", count: 257)) } == .objectNameInvalid)
            #expect(status { _ = try resource.share(name: "a\u{0}b") } == .objectNameInvalid)
            #expect(status { _ = try SharedHandle.open(name: uniqueName("missing")) } == .objectNameNotFound)
            #expect(status { _ = try SharedHandle.openSyncObject(name: name) } == .objectTypeMismatch)
            // As on Windows, opening by name is checked against the object (same user), not the
            // sharer's own access: more than it granted is given; no access at all is denied.
            #expect(status { _ = try SharedHandle.open(name: name, access: 0) } == .accessDenied)
            let widened = try SharedHandle.open(name: name, access: SharedAccess.allAccess)
            #expect(try widened.access() == SharedAccess.allAccess)
            let opened = try SharedHandle.open(name: name, access: SharedAccess.read)
            #expect(try opened.access() == SharedAccess.read)
            // A sync object's name, and a reduced-access handle from a full one.
            let fence = try device.createSyncObject(.fence)
            let syncName = uniqueName("sync")
            let syncHandle = try fence.share(name: syncName)
            let waitOnly = try SharedHandle.openSyncObject(name: syncName, access: SyncObjectAccess.wait)
            #expect(try waitOnly.access() == SyncObjectAccess.wait)
            #expect(status { _ = try SharedHandle.open(name: syncName) } == .objectTypeMismatch)
            _ = consume handle
            _ = consume syncHandle
            waitForRetirement([name, syncName])
        }

        @Test(arguments: adaptersUnderTest.suffix(1))
        func aNameDiesWithItsSharerAndCanBeTakenAgain(adapter: Adapter) throws {
            let name = uniqueName("stale")
            let peer = try PeerProcess(["share-named", name] + luidArguments(adapter) + ["5"])
            #expect(peer.readLine()?.hasPrefix("shared=") == true)
            #expect(status { _ = try SharedHandle.open(name: name) } == .success)
            kill(peer.pid, SIGKILL)
            _ = peer.wait()
            #expect(status { _ = try SharedHandle.open(name: name) } == .objectNameNotFound)
            let device = try adapter.makeDevice()
            let resource = try device.createResource(allocations: [(.new(AllocationDescriptor(size: 4096)), [])])
            let handle = try resource.share(name: name)
            #expect(status { _ = try SharedHandle.open(name: name) } == .success)
            _ = consume handle
            waitForRetirement([name])
        }

        @Test(.enabled(if: geteuid() == 0, "needs root to run a child as another user"))
        func anotherUserCannotResolveOrReachOurNames() throws {
            let device = try Adapter.open(luid: AdapterInfo.software.luid).makeDevice()
            let resource = try device.createResource(allocations: [(.new(AllocationDescriptor(size: 4096)), [])])
            let name = uniqueName("private")
            let handle = try resource.share(name: name)
            let path = D3DKMT.Names.socketPath(name, in: try D3DKMT.Names.directory())
            let peer = try runPeer(["other-user", "65534", name, path])
            #expect(peer.exitStatus == 0, "peer said: \(peer.text)")
            #expect(peer.output["lookup"] == "\(NTStatus.objectNameNotFound)")
            #expect(peer.output["connect"] == "EACCES")
            _ = consume handle
            waitForRetirement([name])
        }
    }

    @Suite struct AccessRights {
        @Test(arguments: adaptersUnderTest)
        func aReadOnlyShareCannotBeWrittenByTheOpener(adapter: Adapter) throws {
            try expectNoDescriptorLeak("read-only share") {
                // Inside the count: a device may open its primary node for its first buffer.
                let device = try adapter.makeDevice()
                let resource = try makePatternResource(on: device, sizes: [4096], seed: 3)
                let handle = try resource.share(access: SharedAccess.read)
                let peer = try runPeer(["map-write", "3"] + luidArguments(adapter), inherit: [handle.rawValue])
                #expect(peer.exitStatus == 0, "peer said: \(peer.text)")
                #expect(peer.output["write"] == "\(NTStatus.accessDenied)")
                #expect(peer.output["read"] == "success")
                if adapter.info.isSoftware {
                    // System memory: the opener's descriptor itself is read-only (the kernel says no).
                    #expect(peer.output["rawwrite"] == "accessDenied")
                }
                // The full-access share still writes.
                let writable = try resource.share()
                let writer = try runPeer(["map-write", "3"] + luidArguments(adapter), inherit: [writable.rawValue])
                #expect(writer.output["write"] == "success")
                #expect(try patternMatches(resource.allocations[0], seed: 3, index: 0))
            }
        }

        @Test(arguments: adaptersUnderTest.filter(hasSyncObjects))
        func waitOnlyAndSignalOnlySyncObjects(adapter: Adapter) throws {
            let device = try adapter.makeDevice()
            let fence = try device.createSyncObject(.monitoredFence)
            let waitOnly = try device.openSyncObject(fence.share(access: SyncObjectAccess.wait))
            let signalOnly = try device.openSyncObject(fence.share(access: SyncObjectAccess.signal))
            #expect(status { try waitOnly.signal(1) } == .accessDenied)
            #expect(status { _ = try waitOnly.exportSyncobj() } == .accessDenied)
            try signalOnly.signal(1)
            #expect(status { try SyncObject.wait(for: [(signalOnly, 1)], timeout: .zero) } == .accessDenied)
            try SyncObject.wait(for: [(waitOnly, 1)], timeout: .seconds(5))
            // Across processes: a peer holding a wait-only handle cannot signal.
            let handle = try fence.share(access: SyncObjectAccess.wait)
            let peer = try runPeer(["signal", "3"] + luidArguments(adapter) + ["2", "0"], inherit: [handle.rawValue])
            #expect(peer.exitStatus == 1 && peer.text.contains("STATUS_ACCESS_DENIED"), "peer said: \(peer.text)")
            #expect(try fence.currentValue() == 1)
        }
    }

    @Suite struct Faults {
        @Test(arguments: adaptersUnderTest)
        func tooFewDescriptorsIsAClearStatusWithNothingLeaked(adapter: Adapter) throws {
            let device = try adapter.makeDevice()
            let resource = try makePatternResource(on: device, sizes: [4096, 4096, 4096, 4096], seed: 1)
            let handle = try resource.share()
            let peer = try runPeer(["fd-limit", "3"] + luidArguments(adapter), inherit: [handle.rawValue])
            #expect(peer.exitStatus == 0, "peer said: \(peer.text)")
            #expect(peer.output["status"] == "\(NTStatus.tooManyOpenedFiles)", "peer said: \(peer.text)")
            #expect(peer.output["leaked"] == "0")
        }
    }
}
