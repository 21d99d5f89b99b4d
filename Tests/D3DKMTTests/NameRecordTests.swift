import Testing
@testable import D3DKMT
import KMTTestSupport
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

extension D3DKMTSuite {
    /// Names resolved by their records (``Names/Record``: `pidfd_getfd` of the sharer's
    /// descriptors, no round trip) and, whenever a record cannot answer, by the name's socket.
    /// Tests run as root, which may take any process's descriptors: the socket path is reached by
    /// planned failures and by records that lie.
    @Suite struct NameRecords {
        typealias Fault = Kernel.Fault
        let device: Device

        init() throws {
            device = try Adapter.open(luid: AdapterInfo.software.luid).makeDevice()
            // The first name starts the process's name thread, which keeps its descriptors.
            let warmUp = uniqueName("record-warm-up")
            _ = try device.createResource(allocations: [(.new(AllocationDescriptor(size: 4096)), [])])
                .share(name: warmUp)
            waitForRetirement([warmUp])
        }

        func makeResource() throws -> Resource {
            try device.createResource(allocations: [(.new(AllocationDescriptor(size: 4096)), [])])
        }

        /// The record's path of `name`.
        static func recordPath(_ name: String) throws -> String {
            try D3DKMT.Names.recordPath(D3DKMT.Names.canonical(name), in: D3DKMT.Names.directory())
        }

        /// Runs `body` with `faults` planned; checks that no descriptor was left open after it.
        func planned(_ faults: [Fault], sourceLocation: SourceLocation = #_sourceLocation,
                     _ body: (Kernel.FaultPlan) throws -> Void) throws {
            let before = FaultInjection.settledDescriptorCount()
            try Kernel.withFaults(faults) { plan in try body(plan) }
            let after = FaultInjection.settledDescriptorCount()
            #expect(after == before, "\(after - before) descriptors left open", sourceLocation: sourceLocation)
        }

        /// Opens `name` and the resource it names; the status.
        func open(_ name: String) -> NTStatus {
            status { _ = try device.openResource(SharedHandle.open(name: name)) }
        }

        @Test func aNameResolvesByItsRecordWithoutAskingTheSharer() throws {
            let name = uniqueName("record")
            let resource = try makeResource()
            let named = try resource.share(name: name)
            try planned([]) { plan in
                #expect(open(name) == .success)
                #expect(plan.calls(.pidfdGetfd) == 2, "the openers' handle and the keeper")
                #expect(plan.calls(.connect) == 0, "the sharer was asked")
            }
            // Another process's name, the same way.
            let adapter = try Adapter.open(luid: AdapterInfo.software.luid)
            let other = uniqueName("record-peer")
            let peer = try PeerProcess(["share-named", other] + luidArguments(adapter) + ["9"])
            defer { kill(peer.pid, SIGKILL) }
            #expect(peer.readLine()?.hasPrefix("shared=") == true)
            try planned([]) { plan in
                #expect(open(other) == .success)
                #expect(plan.calls(.connect) == 0, "the sharer was asked")
            }
            _ = named.rawValue
        }

        struct Failure: CustomTestStringConvertible, Sendable {
            var fault: Fault
            /// Whether the process stops trying records after it.
            var refuses: Bool
            var testDescription: String { "\(fault.call) \(fault.error) (skip \(fault.skip))" }
        }

        static let failures: [Failure] = [
            Failure(fault: .fail(.readlink, .noSuchFile), refuses: false),
            Failure(fault: .fail(.pidfdOpen, Errno(rawValue: ESRCH)), refuses: false),
            Failure(fault: .fail(.pidfdOpen, Errno(rawValue: ENOSYS)), refuses: true),
            Failure(fault: .fail(.pidfdOpen, Errno(rawValue: EPERM)), refuses: true),
            Failure(fault: .fail(.pidfdGetfd, Errno(rawValue: EPERM)), refuses: true),
            Failure(fault: .fail(.pidfdGetfd, .permissionDenied), refuses: true),
            Failure(fault: .fail(.pidfdGetfd, .badFileDescriptor), refuses: false),
            // The keeper's copy, after the openers' handle's.
            Failure(fault: .fail(.pidfdGetfd, .badFileDescriptor, skip: 1), refuses: false),
            Failure(fault: .fail(.pidfdGetfd, Errno(rawValue: EPERM), skip: 1), refuses: true),
            Failure(fault: .fail(.fstat, .noMemory), refuses: false),
            Failure(fault: .fail(.poll, .noMemory), refuses: false),
            Failure(fault: .fail(.ioctl, .noMemory), refuses: false),
        ]

        /// A record that cannot answer leaves the lookup to the socket (the same result, every
        /// descriptor closed); after `EPERM`, `EACCES` or `ENOSYS` the process stops trying
        /// records, after anything else the next lookup tries again.
        @Test(arguments: failures)
        func aRecordLookupThatFailsAsksTheSocket(_ failure: Failure) throws {
            let name = uniqueName("record-fails")
            let resource = try makeResource()
            let named = try resource.share(name: name)
            try planned([failure.fault]) { plan in
                #expect(open(name) == .success)
                #expect(plan.injected(failure.fault.call) == 1)
                #expect(plan.calls(.connect) == 1, "the socket was not asked")
                let pidfdOpens = plan.calls(.pidfdOpen)
                #expect(open(name) == .success)
                if failure.refuses {
                    #expect(plan.calls(.pidfdOpen) == pidfdOpens, "records were tried again")
                    #expect(plan.calls(.connect) == 2)
                } else {
                    #expect(plan.calls(.connect) == 1, "the record was not tried again")
                }
            }
            _ = named.rawValue
        }

        /// Records that lie (another file at the descriptor number, a process that does not exist,
        /// another name, garbage) are not trusted: the socket answers.
        @Test func aRecordNamingAnotherFileOrProcessIsNotTrusted() throws {
            let name = uniqueName("record-lies")
            let resource = try makeResource()
            let named = try resource.share(name: name)
            let path = try Self.recordPath(name)
            let record = try #require(Kernel.readLink(path))
            let fields = record.split(separator: ":", maxSplits: 10, omittingEmptySubsequences: false).map(String.init)
            try #require(fields.count == 11 && fields[0] == "K1")
            let lies: [String] = [
                // The openers' handle's number with the keeper's identity, and the other way round.
                { () -> [String] in var f = fields; (f[4], f[7]) = (f[7], f[4]); return f }(),
                // Another inode at the right number.
                { () -> [String] in var f = fields; f[6] = String(UInt64(f[6])! + 1); return f }(),
                // A process that does not exist.
                { () -> [String] in var f = fields; f[1] = "4194303"; return f }(),
                // Another name, another kind.
                { () -> [String] in var f = fields; f[10] = "S:SOMETHING-ELSE"; return f }(),
                { () -> [String] in var f = fields; f[2] = "2"; return f }(),
            ].map { $0.joined(separator: ":") } + ["K1:1:2:3", "", "garbage"]
            for lie in lies {
                Kernel.unlink(path)
                if !lie.isEmpty { try Kernel.makeSymbolicLink(lie, at: path) }
                try planned([]) { plan in
                    #expect(open(name) == .success, "record \(lie)")
                    #expect(plan.calls(.connect) == 1, "record \(lie) was trusted")
                }
            }
            _ = named.rawValue
        }

        /// Every opener by name gets a copy of one handle (the openers'); a holder that reads its
        /// package out spends it for all. The record lookup sees that (`SIOCINQ` 0) and asks the
        /// socket, whose server makes the handle again and writes the record again.
        @Test func aReadOutOpenersHandleIsMadeAgainAndItsRecordFollows() throws {
            let name = uniqueName("record-read-out")
            let resource = try makeResource()
            let named = try resource.share(name: name)
            let path = try Self.recordPath(name)
            let before = try #require(Kernel.readLink(path))
            try planned([]) { plan in
                let spent = try SharedHandle.open(name: name)
                _ = try Kernel.receiveMessage(BorrowedDescriptor(unowned: spent.rawValue))
                #expect(plan.calls(.connect) == 0)
                #expect(open(name) == .success)
                #expect(plan.calls(.connect) == 1, "a spent handle was taken from the record")
                #expect(open(name) == .success)
                #expect(plan.calls(.connect) == 1, "the record did not follow the new handle")
            }
            #expect(Kernel.readLink(path) != before)
            _ = named.rawValue
        }

        /// Once the last copy of the named handle is closed, no lookup finds the name, however
        /// it races the close: a lookup that starts after the close returns is not found.
        @Test func theLastCloseRacingLookupsIsNotFoundAfterIt() throws {
            let name = uniqueName("record-race")
            let resource = try makeResource()
            // Its first share makes the runtime data page the resource keeps.
            let first = uniqueName("record-race-first")
            _ = try resource.share(name: first)
            waitForRetirement([first])
            let before = FaultInjection.settledDescriptorCount()
            for round in 0..<40 {
                var named: SharedHandle? = try resource.share(name: name)
                let race = Race()
                try Kernel.detachedThread(named: "d3dkmt-test") {
                    var afterClose = 0
                    while afterClose < 20 {
                        let wasClosed = race.closed.load(ordering: .acquiring)
                        let result = status { _ = try SharedHandle.open(name: name) }
                        race.lookups.add(1, ordering: .relaxed)
                        if wasClosed {
                            afterClose += 1
                            if result != .objectNameNotFound { race.foundAfter.add(1, ordering: .relaxed) }
                        }
                    }
                    race.finished.store(true, ordering: .releasing)
                }
                while race.lookups.load(ordering: .relaxed) < round % 5 { Kernel.yield() }
                named = nil
                race.closed.store(true, ordering: .releasing)
                #expect(status { _ = try SharedHandle.open(name: name) } == .objectNameNotFound)
                while !race.finished.load(ordering: .acquiring) { usleep(1000) }
                #expect(race.foundAfter.load(ordering: .relaxed) == 0, "round \(round): found after the last close")
                _ = named
            }
            waitForRetirement([name])
            let after = FaultInjection.settledDescriptorCount()
            #expect(after == before, "\(after - before) descriptors left open")
        }
    }
}

/// What a lookup thread and the closing test share in one round of the race.
private final class Race: Sendable {
    let closed = Atomic<Bool>(false)
    let finished = Atomic<Bool>(false)
    let foundAfter = Atomic<Int>(0)
    let lookups = Atomic<Int>(0)
}
