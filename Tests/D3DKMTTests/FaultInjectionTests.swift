import Testing
@testable import D3DKMT
#if canImport(Glibc)
import Glibc
#endif

/// The kernel layer's fault seam (`Kernel.withFaults`, DEBUG builds) driven through the public
/// API: interrupted calls are retried transparently, and each errno a call can fail with comes
/// out as the NTSTATUS `NTStatus(_ errno:)` maps it to, without leaking a descriptor.
extension D3DKMTSuite {
    @Suite struct FaultInjection {
        typealias Fault = Kernel.Fault

        /// One planned failure and the status the API call must return for it.
        struct Case: Sendable, CustomTestStringConvertible {
            var call: Kernel.Call
            var errno: Int32
            var expected: NTStatus
            /// Calls of the family that go through first.
            var skip: Int
            init(_ call: Kernel.Call, _ errno: Int32, _ expected: NTStatus, skip: Int = 0) {
                self.call = call
                self.errno = errno
                self.expected = expected
                self.skip = skip
            }
            var fault: Fault { .fail(call, Errno(rawValue: errno), skip: skip) }
            var testDescription: String { "\(call) \(Errno(rawValue: errno)) -> \(expected)" }
        }

        let device: Device

        init() throws {
            device = try Adapter.open(luid: AdapterInfo.software.luid).makeDevice()
        }

        func makeResource(runtimeData: [UInt8] = [1, 2, 3, 4]) throws -> Resource {
            try device.createResource(
                allocations: [(.new(AllocationDescriptor(size: 65536)), [7])], runtimeData: runtimeData)
        }

        /// A resource that was shared once, by name too: the process's name thread exists before a
        /// test counts descriptors.
        func makeSharedResource() throws -> Resource {
            let resource = try makeResource()
            _ = try resource.share(name: "Local\\d3dkmt-fault-warm-up-\(getpid())")
            return resource
        }

        /// The open descriptor count once it holds still: the name thread closes a retired name's
        /// sockets, and async waits their descriptors, a moment after the handles that kept them.
        static func settledDescriptorCount() -> Int {
            var count = Kernel.openDescriptorCount(), steady = 0
            for _ in 0..<300 where steady < 3 {
                usleep(10_000)
                let now = Kernel.openDescriptorCount()
                steady = now == count ? steady + 1 : 0
                count = now
            }
            return count
        }

        /// Runs `body` with `faults` planned, checks that every one was injected and that no
        /// descriptor leaked, and returns the status `body` threw.
        func status(
            _ faults: [Fault], sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void
        ) -> NTStatus {
            let before = Self.settledDescriptorCount()
            let (result, plan) = Kernel.withFaults(faults) { plan in (D3DKMTTests.status(body), plan) }
            // The name thread closes a retired name's sockets a moment after its handle closes.
            var after = Kernel.openDescriptorCount()
            for _ in 0..<200 where after != before {
                usleep(10_000)
                after = Kernel.openDescriptorCount()
            }
            #expect(after == before, "\(after - before) descriptors leaked", sourceLocation: sourceLocation)
            for call in Set(faults.map(\.call)) {
                let planned = faults.filter { $0.call == call }.map(\.count).reduce(0, +)
                #expect(plan.injected(call) == planned, "\(call): \(plan.injected(call)) of \(planned) faults injected",
                        sourceLocation: sourceLocation)
            }
            return result
        }

        // MARK: EINTR

        @Test func interruptedCallsAreRestartedTransparently() throws {
            let calls: [Kernel.Call] = [.memfd, .ftruncate, .fcntl, .pwrite, .socketpair, .sendmsg]
            let openCalls: [Kernel.Call] = [.recvmsg, .sockopt, .fstatfs, .lseek, .pread, .mmap]
            var runtimeData: [UInt8] = [], mappedBytes = 0
            #expect(status((calls + openCalls).map { Fault.interrupt($0) }) {
                let shared = try makeResource(runtimeData: [5, 6, 7, 8]).share()
                let opened = try device.openResource(shared)
                runtimeData = opened.runtimeData
                mappedBytes = try opened.allocations[0].map().bytes.count
            } == .success)
            #expect(runtimeData == [5, 6, 7, 8])
            #expect(mappedBytes == 65536)
        }

        @Test func interruptedNameCallsAreRestartedTransparently() throws {
            let resource = try makeSharedResource()
            let name = "Local\\d3dkmt-fault-eintr-\(getpid())"
            #expect(status([.interrupt(.socket), .interrupt(.lstat), .interrupt(.bind), .interrupt(.listen)]) {
                let named = try resource.share(name: name)
                // By the name's record, then (no record) by its socket.
                #expect(throws: Never.self) {
                    try Self.lookUp(name, [.interrupt(.readlink), .interrupt(.pidfdOpen), .interrupt(.pidfdGetfd),
                                           .interrupt(.fstat), .interrupt(.poll)])
                }
                #expect(throws: Never.self) {
                    try Self.lookUp(name, [Self.noRecord, .interrupt(.connect), .interrupt(.poll)])
                }
                _ = named.rawValue
            } == .success)
        }

        // MARK: share

        static let shareCases: [Case] = [
            Case(.socketpair, EMFILE, .tooManyOpenedFiles),
            Case(.socketpair, ENFILE, .tooManyOpenedFiles),
            Case(.socketpair, ENOMEM, .noMemory),
            Case(.sendmsg, ENOMEM, .noMemory),
            Case(.sendmsg, EAGAIN, .insufficientResources),
            Case(.sendmsg, ETOOMANYREFS, .insufficientResources),
            Case(.sendmsg, EBADF, .invalidHandle),
        ]

        /// Creating a shareable resource makes its runtime data page, which its shares carry.
        /// (The allocation's memfd is made and sized first: one memfd and one ftruncate go through.)
        static let pageCases: [Case] = [
            Case(.memfd, EMFILE, .tooManyOpenedFiles, skip: 1),
            Case(.memfd, ENOMEM, .noMemory, skip: 1),
            Case(.ftruncate, ENOSPC, .insufficientResources, skip: 1),
            Case(.pwrite, ENOSPC, .insufficientResources),
        ]

        @Test(arguments: pageCases)
        func creatingAShareableResourceFailsWithItsPage(_ failure: Case) throws {
            try expectNoDescriptorLeak("\(failure)") {
                #expect(status([failure.fault]) { _ = try makeResource() } == failure.expected)
            }
            // Nothing of the failed creation stays behind, and the next one works.
            let resource = try makeResource()
            _ = try device.openResource(try resource.share())
        }

        @Test(arguments: shareCases)
        func shareFails(_ failure: Case) throws {
            let resource = try makeSharedResource()
            #expect(status([failure.fault]) { _ = try resource.share() } == failure.expected)
            // Nothing half-done stays behind: the next share works.
            #expect(status([]) { _ = try device.openResource(try resource.share()) } == .success)
        }

        static let createCases: [Case] = [
            Case(.memfd, EMFILE, .tooManyOpenedFiles),
            Case(.memfd, ENOMEM, .noMemory),
            Case(.ftruncate, ENOMEM, .noMemory),
            Case(.fcntl, EBADF, .invalidHandle),
        ]

        @Test(arguments: createCases)
        func createFails(_ failure: Case) throws {
            #expect(status([failure.fault]) { _ = try makeResource() } == failure.expected)
        }

        // MARK: open

        static let openCases: [Case] = [
            Case(.recvmsg, EMFILE, .tooManyOpenedFiles),
            Case(.recvmsg, ENOMEM, .noMemory),
            // A peek finding nothing queued: a socket that holds no package (read out of it): spent.
            Case(.recvmsg, EAGAIN, .invalidHandle),
            Case(.recvmsg, EBADF, .invalidHandle),
            Case(.sockopt, EBADF, .invalidHandle),
            Case(.fstatfs, EBADF, .invalidHandle),
            Case(.fstatfs, ENOMEM, .noMemory),
            Case(.lseek, EBADF, .invalidHandle),
            Case(.pread, ENOMEM, .noMemory),
        ]

        @Test(arguments: openCases)
        func openFails(_ failure: Case) throws {
            let resource = try makeResource()
            let handle = try resource.share()
            #expect(status([failure.fault]) { _ = try device.openResource(handle) } == failure.expected)
            // The handle is untouched by the failed open.
            #expect(status([]) { _ = try device.openResource(handle) } == .success)
        }

        static let mapCases: [Case] = [
            Case(.mmap, ENOMEM, .noMemory),
            Case(.mmap, EAGAIN, .insufficientResources),
            Case(.mmap, EACCES, .accessDenied),
        ]

        @Test(arguments: mapCases)
        func mapFails(_ failure: Case) throws {
            let opened = try device.openResource(try makeResource().share())
            #expect(status([failure.fault]) { _ = try opened.allocations[0].map() } == failure.expected)
        }

        // MARK: waits

        @Test func interruptedWaitsKeepTheirDeadline() throws {
            let fence = try device.createSyncObject(.fence)
            let other = try device.createSyncObject(.fence)
            // Wait-all sleeps on one futex at a time, wait-any on all of them with futex_waitv.
            let plans: [([Fault], Bool)] = [
                ([.interrupt(.futex, count: 5)], true), ([.interrupt(.futexWaitv, count: 5)], false),
            ]
            for (faults, all) in plans {
                let start = Deadline.now
                #expect(status(faults) {
                    try SyncObject.wait(for: [(fence, 1), (other, 1)], all: all, timeout: .milliseconds(100))
                } == .timeout)
                let waited = Deadline.now.nanoseconds - start.nanoseconds
                #expect(waited >= 100_000_000, "an interrupted wait ended after \(waited / 1_000_000) ms of 100")
            }
        }

        @Test func interruptedWaitsStillSeeTheSignal() throws {
            let fence = try device.createSyncObject(.fence)
            let signaller = try device.openSyncObject(try fence.share())
            #expect(status([.interrupt(.futex, count: 3)]) {
                try Kernel.detachedThread(named: "d3dkmt-test") {
                    usleep(30_000)
                    try? signaller.signal(1)
                }
                try SyncObject.wait(for: [(fence, 1)], timeout: .seconds(10))
            } == .success)
        }

        static let waitAnyCases: [Case] = [
            Case(.futexWaitv, ENOMEM, .noMemory),
            Case(.futexWaitv, EFAULT, .unsuccessful),
        ]

        @Test(arguments: waitAnyCases)
        func waitAnyFails(_ failure: Case) throws {
            let fence = try device.createSyncObject(.fence)
            let other = try device.createSyncObject(.fence)
            #expect(status([failure.fault]) {
                try SyncObject.wait(for: [(fence, 1), (other, 1)], all: false, timeout: .seconds(10))
            } == failure.expected)
        }

        @Test func interruptedKeyedMutexWaitsKeepTheirDeadline() throws {
            let mutex = try KeyedMutex.create(initialKey: 0)
            let resource = try makeResource()
            let fence = try device.createSyncObject(.monitoredFence)
            let opened = try device.openResource(try resource.share(keyedMutex: mutex, syncObject: fence))
            _ = try mutex.acquire(key: 0)
            let start = Deadline.now
            #expect(status([.interrupt(.futex, count: 5)]) {
                _ = try opened.keyedMutex!.acquire(key: 0, timeout: .milliseconds(100))
            } == .timeout)
            #expect(Deadline.now.nanoseconds - start.nanoseconds >= 100_000_000)
            try mutex.release(key: 0)
        }

        // MARK: names

        static let publishCases: [Case] = [
            Case(.socket, EMFILE, .tooManyOpenedFiles),
            Case(.bind, ENOMEM, .noMemory),
            Case(.bind, EACCES, .accessDenied),
            Case(.listen, ENOMEM, .noMemory),
            Case(.lstat, EACCES, .accessDenied),
            Case(.socketpair, EMFILE, .tooManyOpenedFiles),
        ]

        @Test(arguments: publishCases)
        func publishingANameFails(_ failure: Case) throws {
            let resource = try makeSharedResource()
            let name = "Local\\d3dkmt-fault-publish-\(getpid())"
            #expect(status([failure.fault]) { _ = try resource.share(name: name) } == failure.expected)
            // The name was not taken.
            #expect(status([]) { _ = try SharedHandle.open(name: name) } == .objectNameNotFound)
        }

        static let lookupCases: [Case] = [
            Case(.socket, EMFILE, .tooManyOpenedFiles),
            Case(.connect, ECONNREFUSED, .objectNameNotFound),
            Case(.connect, EACCES, .accessDenied),
            Case(.connect, ENOMEM, .noMemory),
            // A listener whose backlog is full (its sharer does not accept for a moment): tried again.
            Case(.connect, EAGAIN, .success),
            // Found by this test: the answer's poll and recvmsg failures were once reported as
            // STATUS_OBJECT_NAME_NOT_FOUND.
            Case(.poll, ENOMEM, .noMemory),
            Case(.recvmsg, EMFILE, .tooManyOpenedFiles),
            Case(.recvmsg, ENOMEM, .noMemory),
        ]

        /// A lookup that finds no record of the name (``Names/Record``) asks the name's socket.
        static let noRecord = Fault.fail(.readlink, .noSuchFile)

        @Test(arguments: lookupCases)
        func lookingUpANameFails(_ failure: Case) throws {
            let resource = try makeSharedResource()
            let name = "Local\\d3dkmt-fault-lookup-\(getpid())"
            let named = try resource.share(name: name)
            let result = status([Self.noRecord, failure.fault]) { _ = try SharedHandle.open(name: name) }
            #expect(result == failure.expected)
            #expect(status([]) { _ = try SharedHandle.open(name: name) } == .success)
            _ = named.rawValue
        }

        /// Opens `name` with `faults` planned (no leak check: the caller holds the name).
        static func lookUp(_ name: String, _ faults: [Fault]) throws {
            try Kernel.withFaults(faults) { plan throws(NTError) in
                _ = try SharedHandle.open(name: name)
                for fault in faults { #expect(plan.injected(fault.call) == fault.count) }
            }
        }

        /// `accept` runs on the name thread, outside any test's plan: the wrapper itself.
        @Test func acceptIsRestartedOrFails() throws {
            let path = "/tmp/d3dkmt-fault-accept-\(getpid())"
            Kernel.unlink(path)
            defer { Kernel.unlink(path) }
            let before = quietDescriptorCount()
            do {
                let listener = try Kernel.listen(at: path)
                let first = try Kernel.connect(to: path)
                let second = try Kernel.connect(to: path)
                try Kernel.withFaults([.interrupt(.accept), .fail(.accept, .tooManyOpenFiles, skip: 1)]) { plan in
                    _ = try Kernel.accept(listener.borrowed)
                    #expect(throws: Errno.tooManyOpenFiles) { _ = try Kernel.accept(listener.borrowed) }
                    #expect(plan.injected(.accept) == 2)
                }
                _ = try Kernel.accept(listener.borrowed)
                _ = first.rawValue + second.rawValue
            }
            #expect(Kernel.openDescriptorCount() == before)
        }

        // MARK: the seam itself

        @Test func faultsStayWithTheTaskThatPlannedThem() async throws {
            let plan = Kernel.withFaults([.fail(.memfd, .noMemory, count: Int.max)]) { plan in plan }
            // Outside the scope, and in a task that did not plan them, calls run normally.
            #expect(status([]) { _ = try makeResource() } == .success)
            let elsewhere = await Task.detached { () -> Bool in
                (try? Kernel.memfd(name: "d3dkmt-fault-elsewhere")) != nil
            }.value
            #expect(elsewhere)
            #expect(plan.injected(.memfd) == 0)
        }

        @Test func closingADescriptorThatIsNotOpenTraps() async {
            await #expect(processExitsWith: .failure) {
                Kernel.close(-1)
            }
        }
    }
}
