import Testing
import CD3DKMT
@testable import D3DKMTCABI
@testable import D3DKMT
#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Open descriptors of this process, not counting pipes it shares with a child process: under
/// ThreadSanitizer those are the runtime's own, to the symbolizer it starts at its first report
/// (`llvm-symbolizer`, alive until the process exits).
private func descriptorCountWithoutChildPipes() -> Int {
    let children = childPipes()
    var count = 0
    guard let directory = opendir("/proc/self/fd") else { return -1 }
    let own = dirfd(directory)
    while let entry = readdir(directory) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        guard name.first != ".", Int32(name) != own else { continue }
        // (Standard input, output and error are inherited by children too: always counted.)
        if let number = Int32(name), number > 2, let target = Kernel.readLink("/proc/self/fd/\(name)"),
           children.contains(target) { continue }
        count += 1
    }
    closedir(directory)
    return count
}

/// The pipes (`pipe:[inode]`) open in this process's child processes.
private func childPipes() -> Set<String> {
    var pipes: Set<String> = []
    guard let processes = opendir("/proc") else { return pipes }
    defer { closedir(processes) }
    let me = getpid()
    while let entry = readdir(processes) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        guard let pid = Int32(name), pid != me, let stat = try? String(contentsOfProcFile: "/proc/\(pid)/stat"),
              let close = stat.lastIndex(of: ")") else { continue }
        // After "pid (comm) ": state, then the parent's pid.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 1, Int32(fields[1]) == me, let descriptors = opendir("/proc/\(pid)/fd") else { continue }
        while let fd = readdir(descriptors) {
            let number = withUnsafeBytes(of: fd.pointee.d_name) {
                String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
            }
            if let target = Kernel.readLink("/proc/\(pid)/fd/\(number)"), target.hasPrefix("pipe:") {
                pipes.insert(target)
            }
        }
        closedir(descriptors)
    }
    return pipes
}

private extension String {
    /// A small /proc file's text (its size reads as 0, so read until the end).
    init(contentsOfProcFile path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Errno(rawValue: errno) }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 512)
        while true {
            let count = read(fd, &chunk, chunk.count)
            if count <= 0 { break }
            bytes += chunk[0..<count]
        }
        self = String(decoding: bytes, as: UTF8.self)
    }
}

/// What this process's descriptors are, for a leak report.
private func descriptorListing() -> String {
    guard let directory = opendir("/proc/self/fd") else { return "?" }
    defer { closedir(directory) }
    var lines: [String] = []
    while let entry = readdir(directory) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        guard name.first != "." else { continue }
        lines.append("\(name) -> \(Kernel.readLink("/proc/self/fd/\(name)") ?? "?")")
    }
    return lines.joined(separator: "\n")
}

/// The C ABI from eight threads at once: every thread runs the whole life of shared objects
/// (adapter, device, resource, keyed mutex, sync object, share, open, lock, acquire, signal,
/// wait, destroy) over and over, opens what the other threads share, and throws stale, bogus and
/// NULL arguments at every entry point in between. Every status is checked against the one thing
/// it may be; the process has the same descriptors afterwards. Outcomes do not depend on timing:
/// where another thread's activity decides (a neighbour's keyed mutex), both outcomes are named.
///
/// `D3DKMT_HAMMER_ITERATIONS` sets the iterations per thread (default 40).
extension D3DKMTSuite {
    @Suite struct Hammer {
        static let threadCount = 8
        static let iterations = getenv("D3DKMT_HAMMER_ITERATIONS").flatMap { Int(String(cString: $0)) } ?? 40

        @Test func eightThreadsCallTheCABIAtOnce() throws {
            let before = descriptorCountWithoutChildPipes()
            let run = HammerRun(threads: Self.threadCount, iterations: Self.iterations)
            let threads = (0..<Self.threadCount).map { index in Thread { run.worker(index) } }
            threads.forEach { $0.join() }
            // Single-threaded again: handles destroyed during the run can be checked now without
            // another thread reusing their slots meanwhile.
            run.checkStaleHandles()
            run.closePublished()

            let failures = run.failures.withLock { $0 }
            let report = failures.prefix(25).joined(separator: "\n")
            #expect(failures.count == 0, "failed checks (at most 200 kept), the first:\n\(report)")
            #expect(run.completed.load(ordering: .relaxed) == Self.threadCount * Self.iterations)
            #expect(run.neighbourOpens.load(ordering: .relaxed) > 0, "no thread opened another thread's handle")

            // An async wait's helper thread closes its eventfd duplicate just after signalling it
            // (the workers saw every eventfd signalled): allow it a moment to finish.
            var after = descriptorCountWithoutChildPipes()
            for _ in 0..<200 where after != before {
                usleep(10_000)
                after = descriptorCountWithoutChildPipes()
            }
            #expect(after == before, "\(after - before) descriptors leaked; open now:\n\(descriptorListing())")
        }
    }
}

/// Memory for one iteration's C structures and buffers; freed when the iteration ends, after
/// every call that was given a pointer into it has returned.
private final class Arena {
    private var blocks: [UnsafeMutableRawPointer] = []

    func bytes(_ count: Int, filling value: UInt8 = 0) -> UnsafeMutableRawPointer {
        let block = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1), alignment: 16)
        block.initializeMemory(as: UInt8.self, repeating: value, count: max(count, 1))
        blocks.append(block)
        return block
    }

    func values<T>(_ values: [T]) -> UnsafeMutablePointer<T> {
        let pointer = bytes(MemoryLayout<T>.stride * max(values.count, 1))
            .bindMemory(to: T.self, capacity: max(values.count, 1))
        for (index, value) in values.enumerated() { (pointer + index).initialize(to: value) }
        return pointer
    }

    deinit { blocks.forEach { $0.deallocate() } }
}

private let success = NTStatus.success.rawValue
private let invalidParameter = NTStatus.invalidParameter.rawValue
private let invalidHandle = NTStatus.invalidHandle.rawValue
private let timeout = NTStatus.timeout.rawValue

/// D3DKMT_HANDLE values that can never name an object (wrong tag bits, slot 0, all ones), so
/// they are refused whatever the other threads hold.
private let bogusHandles: [D3DKMT_HANDLE] = [0, 0xFFFF_FFFF, 0x0000_0001, 0x8000_0001, 0xC000_0001, 0x4000_0000,
                                             0x7F00_0000]

private func ntHandle(_ fd: Int32) -> HANDLE? { HANDLE(bitPattern: Int(fd)) }

private final class HammerRun: @unchecked Sendable {
    let threads: Int
    let iterations: Int
    let failures = Locked<[String]>([])
    let completed = Atomic<Int>(0)
    let neighbourOpens = Atomic<Int>(0)
    /// Released once every worker is running, so their calls overlap from the first one.
    private let gate = Atomic<Int>(0)
    /// Each thread's latest shared handle (resource + keyed mutex + sync object), for the others
    /// to open; -1 until the first. Replaced under the lock, duplicated under the lock.
    private let published: Locked<[Int32]>
    /// Handles destroyed during the run, to check once the threads are done.
    private let destroyed = Locked<[(kind: String, handle: D3DKMT_HANDLE)]>([])

    init(threads: Int, iterations: Int) {
        self.threads = threads
        self.iterations = iterations
        published = Locked([Int32](repeating: -1, count: threads))
    }

    // MARK: checks

    /// Records a failure unless `status` is one of `expected`; true when it is.
    @discardableResult
    func expect(_ status: NTSTATUS, _ expected: [NTSTATUS], _ what: @autoclosure () -> String,
                thread: Int, iteration: Int) -> Bool {
        guard !expected.contains(status) else { return true }
        let names = expected.map { NTStatus(rawValue: $0).description }.joined(separator: " or ")
        let message = "thread \(thread) iteration \(iteration): \(what()) returned \(NTStatus(rawValue: status)), "
            + "expected \(names)"
        failures.withLock { if $0.count < 200 { $0.append(message) } }
        return false
    }

    func fail(_ message: String, thread: Int, iteration: Int) {
        failures.withLock { if $0.count < 200 { $0.append("thread \(thread) iteration \(iteration): \(message)") } }
    }

    // MARK: the worker

    func worker(_ index: Int) {
        gate.add(1, ordering: .acquiringAndReleasing)
        while gate.load(ordering: .acquiring) < threads { sched_yield() }
        for iteration in 0..<iterations {
            Iteration(shared: self, thread: index, iteration: iteration).run()
            completed.add(1, ordering: .relaxed)
        }
    }

    /// Another thread's latest shared handle, duplicated (the caller closes it); nil before it
    /// shared one.
    func neighbourHandle(of thread: Int) -> Int32? {
        published.withLock { handles in
            let fd = handles[(thread + 1) % threads]
            return fd < 0 ? nil : fcntl(fd, F_DUPFD_CLOEXEC, 0)
        }.flatMap { $0 >= 0 ? $0 : nil }
    }

    func publish(_ fd: Int32, thread: Int) {
        let copy = fcntl(fd, F_DUPFD_CLOEXEC, 0)
        guard copy >= 0 else { return }
        let old = published.withLock { handles in
            defer { handles[thread] = copy }
            return handles[thread]
        }
        if old >= 0 { close(old) }
    }

    func closePublished() {
        published.withLock { handles in
            for index in handles.indices where handles[index] >= 0 {
                close(handles[index])
                handles[index] = -1
            }
        }
    }

    func noteDestroyed(_ kind: String, _ handle: D3DKMT_HANDLE) {
        destroyed.withLock { $0.append((kind, handle)) }
    }

    /// Every handle destroyed during the run is refused by every call that takes that kind,
    /// including the destructive ones (no other thread can hold a reused slot now).
    func checkStaleHandles() {
        let handles = destroyed.withLock { $0 }
        for (kind, handle) in handles {
            var statuses: [(NTSTATUS, String)] = []
            switch kind {
            case "adapter":
                var close = D3DKMT_CLOSEADAPTER(hAdapter: handle)
                statuses.append((D3DKMTCloseAdapter(&close), "CloseAdapter"))
                var device = D3DKMT_CREATEDEVICE()
                device.hAdapter = handle
                statuses.append((D3DKMTCreateDevice(&device), "CreateDevice"))
            case "device":
                var destroy = D3DKMT_DESTROYDEVICE(hDevice: handle)
                statuses.append((D3DKMTDestroyDevice(&destroy), "DestroyDevice"))
                var sync = D3DKMT_CREATESYNCHRONIZATIONOBJECT2()
                sync.hDevice = handle
                sync.Info.Type = D3DDDI_FENCE
                statuses.append((D3DKMTCreateSynchronizationObject2(&sync), "CreateSynchronizationObject2"))
            case "keyed mutex":
                var destroy = D3DKMT_DESTROYKEYEDMUTEX(hKeyedMutex: handle)
                statuses.append((D3DKMTDestroyKeyedMutex(&destroy), "DestroyKeyedMutex"))
                var acquire = D3DKMT_ACQUIREKEYEDMUTEX2()
                acquire.hKeyedMutex = handle
                var zero = LARGE_INTEGER()
                statuses.append((withUnsafeMutablePointer(to: &zero) {
                    acquire.pTimeout = $0; return D3DKMTAcquireKeyedMutex2(&acquire)
                }, "AcquireKeyedMutex2"))
                var release = D3DKMT_RELEASEKEYEDMUTEX2()
                release.hKeyedMutex = handle
                statuses.append((D3DKMTReleaseKeyedMutex2(&release), "ReleaseKeyedMutex2"))
            case "sync object":
                var destroy = D3DKMT_DESTROYSYNCHRONIZATIONOBJECT(hSyncObject: handle)
                statuses.append((D3DKMTDestroySynchronizationObject(&destroy), "DestroySynchronizationObject"))
                var fd: Int32 = -1
                statuses.append((D3DKMTLinuxExportSyncObjectFd(handle, &fd), "LinuxExportSyncObjectFd"))
            default:  // a resource of a destroyed device
                var destroy = D3DKMT_DESTROYALLOCATION2()
                destroy.hResource = handle
                statuses.append((D3DKMTDestroyAllocation2(&destroy), "DestroyAllocation2"))
            }
            for (status, call) in statuses {
                expect(status, [invalidParameter],
                       "\(call) with the destroyed \(kind) handle 0x\(String(handle, radix: 16))",
                       thread: -1, iteration: -1)
            }
        }
    }
}

/// One iteration of one thread. Creates everything it uses and destroys all of it.
private struct Iteration {
    let shared: HammerRun
    let thread: Int
    let iteration: Int
    let arena = Arena()

    @discardableResult
    func expect(_ status: NTSTATUS, _ expected: NTSTATUS, _ what: @autoclosure () -> String) -> Bool {
        shared.expect(status, [expected], what(), thread: thread, iteration: iteration)
    }

    @discardableResult
    func expect(_ status: NTSTATUS, oneOf expected: [NTSTATUS], _ what: @autoclosure () -> String) -> Bool {
        shared.expect(status, expected, what(), thread: thread, iteration: iteration)
    }

    func fail(_ message: String) { shared.fail(message, thread: thread, iteration: iteration) }

    /// This thread's mark in the allocations it writes: thread and iteration.
    var stamp: UInt64 { UInt64(thread) << 32 | UInt64(iteration) }

    func run() {
        var openAdapter = D3DKMT_OPENADAPTERFROMLUID()
        openAdapter.AdapterLuid = CD3DKMT.LUID(LowPart: AdapterInfo.software.luid.lowPart,
                                               HighPart: AdapterInfo.software.luid.highPart)
        guard expect(D3DKMTOpenAdapterFromLuid(&openAdapter), success, "OpenAdapterFromLuid(software)") else { return }
        let adapter = openAdapter.hAdapter
        var createDevice = D3DKMT_CREATEDEVICE()
        createDevice.hAdapter = adapter
        let deviceStatus = D3DKMTCreateDevice(&createDevice)
        if expect(deviceStatus, success, "CreateDevice") {
            let device = createDevice.hDevice
            nullAndBogusArguments(device: device)
            objects(device: device)
            // Every other iteration the device goes with its objects still alive: destroying it
            // destroys them (their handles are checked once the threads are done).
            if iteration % 2 == 1, let resource = createResource(device: device, allocations: 1) {
                shared.noteDestroyed("resource", resource.resource)
            }
            var destroy = D3DKMT_DESTROYDEVICE(hDevice: device)
            // (Destroying it again is checked once the threads are done: a stale handle that no
            // device check guards could name another thread's object by then.)
            expect(D3DKMTDestroyDevice(&destroy), success, "DestroyDevice")
            shared.noteDestroyed("device", device)
        }
        var closeAdapter = D3DKMT_CLOSEADAPTER(hAdapter: adapter)
        expect(D3DKMTCloseAdapter(&closeAdapter), success, "CloseAdapter")
        shared.noteDestroyed("adapter", adapter)
    }

    // MARK: objects

    struct Created {
        var resource: D3DKMT_HANDLE
        var allocations: [D3DKMT_HANDLE]
        var sizes: [UInt64]
    }

    /// A shareable resource of `allocations` allocations (4 KiB, 8 KiB, ...), each with 8 bytes of
    /// the runtime's own driver data after its descriptor.
    func createResource(device: D3DKMT_HANDLE, allocations count: Int) -> Created? {
        let descriptorSize = MemoryLayout<D3DKMT_LINUX_ALLOCATION_DESC>.size
        var infos: [D3DDDI_ALLOCATIONINFO2] = []
        var sizes: [UInt64] = []
        for index in 0..<count {
            var desc = D3DKMT_LINUX_ALLOCATION_DESC()
            desc.Version = UInt32(D3DKMT_LINUX_ALLOCATION_DESC_VERSION)
            desc.Size = UInt64(4096 << index)
            desc.DmaBufFd = -1
            sizes.append(desc.Size)
            let data = arena.bytes(descriptorSize + 8)
            data.storeBytes(of: desc, as: D3DKMT_LINUX_ALLOCATION_DESC.self)
            data.storeBytes(of: stamp, toByteOffset: descriptorSize, as: UInt64.self)
            var info = D3DDDI_ALLOCATIONINFO2()
            info.pPrivateDriverData = data
            info.PrivateDriverDataSize = UInt32(descriptorSize + 8)
            infos.append(info)
        }
        let infoArray = arena.values(infos)
        let runtime = arena.values([stamp, ~stamp])
        var create = D3DKMT_CREATEALLOCATION()
        create.hDevice = device
        create.NumAllocations = UInt32(count)
        create.pAllocationInfo2 = infoArray
        create.pPrivateRuntimeData = UnsafeRawPointer(runtime)
        create.PrivateRuntimeDataSize = 16
        create.Flags.CreateResource = 1
        create.Flags.CreateShared = 1
        create.Flags.NtSecuritySharing = 1
        guard expect(D3DKMTCreateAllocation2(&create), success, "CreateAllocation2 (\(count) allocations)") else {
            return nil
        }
        return Created(resource: create.hResource, allocations: (0..<count).map { infoArray[$0].hAllocation },
                       sizes: sizes)
    }

    func objects(device: D3DKMT_HANDLE) {
        guard let resource = createResource(device: device, allocations: 2) else { return }
        defer {
            var destroy = D3DKMT_DESTROYALLOCATION2()
            destroy.hDevice = device
            destroy.hResource = resource.resource
            expect(D3DKMTDestroyAllocation2(&destroy), success, "DestroyAllocation2 (created resource)")
            // Stale now; the check names this thread's own live device, so it holds even if
            // another thread's object took the slot meanwhile.
            expect(D3DKMTDestroyAllocation2(&destroy), invalidParameter, "DestroyAllocation2 of a destroyed resource")
            var lock = D3DKMT_LOCK2()
            lock.hDevice = device
            lock.hAllocation = resource.allocations[0]
            expect(D3DKMTLock2(&lock), invalidParameter, "Lock2 of a destroyed allocation")
        }
        // Write the stamp at both ends of each allocation.
        for (allocation, size) in zip(resource.allocations, resource.sizes) {
            guard let base = lock(device, allocation) else { return }
            base.storeBytes(of: stamp, as: UInt64.self)
            base.storeBytes(of: ~stamp, toByteOffset: Int(size) - 8, as: UInt64.self)
            unlock(device, allocation)
        }

        // A keyed mutex released to key 0 carrying 16 bytes, and a monitored fence at 0.
        var createMutex = D3DKMT_CREATEKEYEDMUTEX2()
        createMutex.InitialValue = 0
        createMutex.pPrivateRuntimeData = UnsafeMutableRawPointer(arena.values([stamp, stamp]))
        createMutex.PrivateRuntimeDataSize = 16
        createMutex.Flags.NtSecuritySharing = 1
        guard expect(D3DKMTCreateKeyedMutex2(&createMutex), success, "CreateKeyedMutex2") else { return }
        let mutex = createMutex.hKeyedMutex
        defer { destroyKeyedMutex(mutex) }

        var createFence = D3DKMT_CREATESYNCHRONIZATIONOBJECT2()
        createFence.hDevice = device
        createFence.Info.Type = D3DDDI_MONITORED_FENCE
        createFence.Info.MonitoredFence.InitialFenceValue = 0
        createFence.Info.Flags.Shared = 1
        createFence.Info.Flags.NtSecuritySharing = 1
        guard expect(D3DKMTCreateSynchronizationObject2(&createFence), success, "CreateSynchronizationObject2") else {
            return
        }
        let fence = createFence.hSyncObject
        defer { destroySyncObject(fence) }

        // Share all three, and the fence alone.
        var sharedHandle: HANDLE? = nil
        let objects = arena.values([resource.resource, mutex, fence])
        guard expect(D3DKMTShareObjects(3, objects, nil, SharedAccess.allAccess, &sharedHandle), success,
                     "ShareObjects(resource, keyed mutex, fence)") else { return }
        let handle = Int32(Int(bitPattern: sharedHandle))
        defer { close(handle) }
        var sharedFence: HANDLE? = nil
        guard expect(D3DKMTShareObjects(1, objects + 2, nil, SyncObjectAccess.allAccess, &sharedFence), success,
                     "ShareObjects(fence)") else { return }
        let fenceHandle = Int32(Int(bitPattern: sharedFence))
        defer { close(fenceHandle) }
        // A keyed mutex cannot be shared alone.
        var refused: HANDLE? = nil
        expect(D3DKMTShareObjects(1, objects + 1, nil, SharedAccess.allAccess, &refused), invalidParameter,
               "ShareObjects(keyed mutex alone)")

        // Open the resource on this device, as another process would.
        guard let opened = openResource(device: device, handle: handle, expectingAllocations: 2) else { return }
        defer {
            destroyKeyedMutex(opened.keyedMutex)
            destroySyncObject(opened.syncObject)
            var destroy = D3DKMT_DESTROYALLOCATION2()
            destroy.hDevice = device
            destroy.hResource = opened.resource
            expect(D3DKMTDestroyAllocation2(&destroy), success, "DestroyAllocation2 (opened resource)")
        }
        for (index, allocation) in opened.allocations.enumerated() {
            guard let base = lock(device, allocation) else { return }
            let size = Int(resource.sizes[index])
            if base.load(as: UInt64.self) != stamp || base.load(fromByteOffset: size - 8, as: UInt64.self) != ~stamp {
                fail("opened allocation \(index) does not hold what was written through the creator's")
            }
            unlock(device, allocation)
        }

        keyedMutexHandoff(creator: mutex, opened: opened.keyedMutex)
        fences(device: device, creator: fence, opened: opened.syncObject, fenceHandle: fenceHandle)

        // Another open of the keyed mutex from the same handle; its own ownership.
        var openMutex = D3DKMT_OPENKEYEDMUTEXFROMNTHANDLE()
        openMutex.hNtHandle = ntHandle(handle)
        if expect(D3DKMTOpenKeyedMutexFromNtHandle(&openMutex), success, "OpenKeyedMutexFromNtHandle") {
            var release = D3DKMT_RELEASEKEYEDMUTEX2()
            release.hKeyedMutex = openMutex.hKeyedMutex
            expect(D3DKMTReleaseKeyedMutex2(&release), invalidParameter,
                   "ReleaseKeyedMutex2 by an open that did not acquire")
            destroyKeyedMutex(openMutex.hKeyedMutex)
        }

        shared.publish(handle, thread: thread)
        neighbour(device: device)
    }

    struct Opened {
        var resource: D3DKMT_HANDLE
        var allocations: [D3DKMT_HANDLE]
        var keyedMutex: D3DKMT_HANDLE
        var syncObject: D3DKMT_HANDLE
    }

    /// Query + open of a 3-object handle; `expectingAllocations` nil for a neighbour's handle
    /// (whatever it holds).
    func openResource(device: D3DKMT_HANDLE, handle: Int32, expectingAllocations: Int?) -> Opened? {
        var query = D3DKMT_QUERYRESOURCEINFOFROMNTHANDLE()
        query.hDevice = device
        query.hNtHandle = ntHandle(handle)
        guard expect(D3DKMTQueryResourceInfoFromNtHandle(&query), success, "QueryResourceInfoFromNtHandle") else {
            return nil
        }
        let count = Int(query.NumAllocations)
        if let expected = expectingAllocations, count != expected || query.PrivateRuntimeDataSize != 16 {
            fail("QueryResourceInfoFromNtHandle: \(count) allocations, "
                 + "\(query.PrivateRuntimeDataSize) bytes of runtime data")
        }
        let infos = arena.values([D3DDDI_OPENALLOCATIONINFO2](repeating: D3DDDI_OPENALLOCATIONINFO2(), count: count))
        var open = D3DKMT_OPENRESOURCEFROMNTHANDLE()
        open.hDevice = device
        open.hNtHandle = ntHandle(handle)
        open.NumAllocations = UInt32(count)
        open.pOpenAllocationInfo2 = infos
        open.PrivateRuntimeDataSize = query.PrivateRuntimeDataSize
        open.pPrivateRuntimeData = arena.bytes(Int(query.PrivateRuntimeDataSize))
        open.ResourcePrivateDriverDataSize = query.ResourcePrivateDriverDataSize
        open.pResourcePrivateDriverData = arena.bytes(Int(query.ResourcePrivateDriverDataSize))
        open.TotalPrivateDriverDataBufferSize = query.TotalPrivateDriverDataSize
        open.pTotalPrivateDriverDataBuffer = arena.bytes(Int(query.TotalPrivateDriverDataSize))
        open.KeyedMutexPrivateRuntimeDataSize = 16
        open.pKeyedMutexPrivateRuntimeData = arena.bytes(16)

        // Too few allocation entries: refused, nothing opened.
        if count > 1 {
            var short = open
            short.NumAllocations = UInt32(count - 1)
            expect(D3DKMTOpenResourceFromNtHandle(&short), invalidParameter,
                   "OpenResourceFromNtHandle with NumAllocations one short")
        }
        guard expect(D3DKMTOpenResourceFromNtHandle(&open), success, "OpenResourceFromNtHandle") else { return nil }
        if open.hKeyedMutex == 0 || open.hSyncObject == 0 {
            fail("OpenResourceFromNtHandle returned no keyed mutex or sync object")
        }
        if expectingAllocations != nil {
            let runtime = open.pPrivateRuntimeData.load(as: UInt64.self)
            let mutexData = open.pKeyedMutexPrivateRuntimeData.load(as: UInt64.self)
            // Openers get the runtime's bytes after the Linux descriptor, not the descriptor.
            let extra = infos[0].pPrivateDriverData.load(as: UInt64.self)
            if runtime != stamp || mutexData != stamp || extra != stamp {
                fail("opened private data is not what was shared")
            }
        }
        return Opened(resource: open.hResource, allocations: (0..<count).map { infos[$0].hAllocation },
                      keyedMutex: open.hKeyedMutex, syncObject: open.hSyncObject)
    }

    // MARK: keyed mutexes

    func acquire(_ mutex: D3DKMT_HANDLE, key: UInt64,
                 tryOnly: Bool = true) -> (status: NTSTATUS, fence: UInt64, data: UInt64) {
        var acquire = D3DKMT_ACQUIREKEYEDMUTEX2()
        acquire.hKeyedMutex = mutex
        acquire.Key = key
        let data = arena.bytes(16)
        acquire.pPrivateRuntimeData = data
        acquire.PrivateRuntimeDataSize = 16
        var zero = LARGE_INTEGER()
        zero.QuadPart = 0
        let status = withUnsafeMutablePointer(to: &zero) { pointer in
            acquire.pTimeout = tryOnly ? pointer : nil
            return D3DKMTAcquireKeyedMutex2(&acquire)
        }
        return (status, acquire.FenceValue, data.load(as: UInt64.self))
    }

    func release(_ mutex: D3DKMT_HANDLE, key: UInt64, fence: UInt64, data: UInt64) -> NTSTATUS {
        var release = D3DKMT_RELEASEKEYEDMUTEX2()
        release.hKeyedMutex = mutex
        release.Key = key
        release.FenceValue = fence
        release.pPrivateRuntimeData = UnsafeMutableRawPointer(arena.values([data, data]))
        release.PrivateRuntimeDataSize = 16
        return D3DKMTReleaseKeyedMutex2(&release)
    }

    /// The mutex goes creator → opener → creator; only this thread uses it, so every step has
    /// one outcome.
    func keyedMutexHandoff(creator: D3DKMT_HANDLE, opened: D3DKMT_HANDLE) {
        guard opened != 0 else { return }
        let first = acquire(creator, key: 0)
        guard expect(first.status, success, "AcquireKeyedMutex2 (creator, key 0)") else { return }
        expect(acquire(creator, key: 0).status, invalidParameter, "AcquireKeyedMutex2 by the open that holds it")
        expect(acquire(opened, key: 0).status, timeout, "AcquireKeyedMutex2 (opened) of a held mutex")
        expect(release(creator, key: 1, fence: stamp, data: ~stamp), success, "ReleaseKeyedMutex2 (creator, to key 1)")
        expect(acquire(opened, key: 0).status, timeout, "AcquireKeyedMutex2 (opened) with the old key")
        let second = acquire(opened, key: 1)
        if expect(second.status, success, "AcquireKeyedMutex2 (opened, key 1)") {
            if second.fence != stamp || second.data != ~stamp {
                fail("AcquireKeyedMutex2 returned fence \(second.fence), data \(second.data)")
            }
            expect(release(creator, key: 0, fence: 0, data: 0), invalidParameter,
                   "ReleaseKeyedMutex2 by the creator, which no longer holds it")
            expect(release(opened, key: 0, fence: 0, data: stamp), success, "ReleaseKeyedMutex2 (opened, to key 0)")
        }
    }

    func destroyKeyedMutex(_ handle: D3DKMT_HANDLE) {
        guard handle != 0 else { return }
        var destroy = D3DKMT_DESTROYKEYEDMUTEX(hKeyedMutex: handle)
        expect(D3DKMTDestroyKeyedMutex(&destroy), success, "DestroyKeyedMutex")
        shared.noteDestroyed("keyed mutex", handle)
    }

    // MARK: sync objects

    func signal(_ device: D3DKMT_HANDLE, _ object: D3DKMT_HANDLE, _ value: UInt64) -> NTSTATUS {
        var signal = D3DKMT_SIGNALSYNCHRONIZATIONOBJECTFROMCPU()
        signal.hDevice = device
        signal.ObjectCount = 1
        signal.ObjectHandleArray = UnsafePointer(arena.values([object]))
        signal.FenceValueArray = UnsafePointer(arena.values([value]))
        return D3DKMTSignalSynchronizationObjectFromCpu(&signal)
    }

    /// A blocking wait for values already reached (so it returns), or with an eventfd.
    func wait(_ device: D3DKMT_HANDLE, _ objects: [D3DKMT_HANDLE], _ values: [UInt64], event: Int32? = nil,
              any: Bool = false) -> NTSTATUS {
        var wait = D3DKMT_WAITFORSYNCHRONIZATIONOBJECTFROMCPU()
        wait.hDevice = device
        wait.ObjectCount = UInt32(objects.count)
        wait.ObjectHandleArray = UnsafePointer(arena.values(objects))
        wait.FenceValueArray = UnsafePointer(arena.values(values))
        wait.Flags.WaitAny = any ? 1 : 0
        wait.hAsyncEvent = event.flatMap(ntHandle)
        return D3DKMTWaitForSynchronizationObjectFromCpu(&wait)
    }

    func fences(device: D3DKMT_HANDLE, creator: D3DKMT_HANDLE, opened: D3DKMT_HANDLE, fenceHandle: Int32) {
        guard opened != 0 else { return }
        let value = UInt64(iteration + 1)
        expect(signal(device, creator, value), success, "SignalSynchronizationObjectFromCpu (creator)")
        expect(signal(device, creator, value - 1), invalidParameter,
               "SignalSynchronizationObjectFromCpu below the value")
        expect(wait(device, [opened], [value]), success, "WaitForSynchronizationObjectFromCpu (opened, reached)")
        expect(wait(device, [opened, creator], [value, value + 100], any: true), success,
               "WaitForSynchronizationObjectFromCpu (wait-any, one reached)")

        // The fence shared alone, opened on this device: same value; an async wait signals its
        // eventfd (the value is reached, so the helper thread finishes).
        var open = D3DKMT_OPENSYNCOBJECTFROMNTHANDLE2()
        open.hDevice = device
        open.hNtHandle = ntHandle(fenceHandle)
        guard expect(D3DKMTOpenSyncObjectFromNtHandle2(&open), success, "OpenSyncObjectFromNtHandle2") else { return }
        defer { destroySyncObject(open.hSyncObject) }
        if let address = open.MonitoredFence.FenceValueCPUVirtualAddress, address.load(as: UInt64.self) < value {
            fail("FenceValueCPUVirtualAddress shows \(address.load(as: UInt64.self)), below \(value)")
        }
        expect(signal(device, open.hSyncObject, value + 1), success,
               "SignalSynchronizationObjectFromCpu (opened alone)")
        guard let eventDescriptor = try? Kernel.eventfd() else { fail("eventfd failed"); return }
        let event = eventDescriptor.rawValue
        if expect(wait(device, [open.hSyncObject, opened], [value + 1, value], event: event), success,
                  "WaitForSynchronizationObjectFromCpu (async)") {
            var poll = pollfd(fd: event, events: Int16(POLLIN), revents: 0)
            // Reached values: the helper signals at once; 30 s only bounds a broken build.
            if Glibc.poll(&poll, 1, 30_000) != 1 {
                fail("an async wait for reached values never signalled its eventfd")
            }
        }
        // The device-less open, on the adapter that shared it.
        var anyDevice = D3DKMT_OPENSYNCOBJECTFROMNTHANDLE()
        anyDevice.hNtHandle = ntHandle(fenceHandle)
        if expect(D3DKMTOpenSyncObjectFromNtHandle(&anyDevice), success, "OpenSyncObjectFromNtHandle") {
            // It belongs to no device: waits and signals naming any device take it.
            expect(wait(device, [anyDevice.hSyncObject], [value]), success,
                   "WaitForSynchronizationObjectFromCpu (device-less open, reached)")
            destroySyncObject(anyDevice.hSyncObject)
        }
    }

    func destroySyncObject(_ handle: D3DKMT_HANDLE) {
        guard handle != 0 else { return }
        var destroy = D3DKMT_DESTROYSYNCHRONIZATIONOBJECT(hSyncObject: handle)
        expect(D3DKMTDestroySynchronizationObject(&destroy), success, "DestroySynchronizationObject")
        shared.noteDestroyed("sync object", handle)
    }

    // MARK: locks

    func lock(_ device: D3DKMT_HANDLE, _ allocation: D3DKMT_HANDLE) -> UnsafeMutableRawPointer? {
        var lock = D3DKMT_LOCK2()
        lock.hDevice = device
        lock.hAllocation = allocation
        guard expect(D3DKMTLock2(&lock), success, "Lock2") else { return nil }
        guard let base = lock.pData else { fail("Lock2 returned NULL"); return nil }
        return base
    }

    func unlock(_ device: D3DKMT_HANDLE, _ allocation: D3DKMT_HANDLE) {
        var unlock = D3DKMT_UNLOCK2(hDevice: device, hAllocation: allocation)
        expect(D3DKMTUnlock2(&unlock), success, "Unlock2")
    }

    // MARK: the neighbour's objects

    /// Opens the handle the next thread shared last (its objects may be in use by it right now):
    /// the resource opens and its memory maps; its keyed mutex and fence are left to it, but for a
    /// wait on a value the fence has reached.
    func neighbour(device: D3DKMT_HANDLE) {
        guard let fd = shared.neighbourHandle(of: thread) else { return }
        defer { close(fd) }
        guard let opened = openResource(device: device, handle: fd, expectingAllocations: nil) else { return }
        shared.neighbourOpens.add(1, ordering: .relaxed)
        for allocation in opened.allocations {
            guard let base = lock(device, allocation) else { break }
            // The neighbour wrote its stamp before sharing; its thread index is in the high half.
            if base.load(fromByteOffset: 4, as: UInt32.self) != UInt32((thread + 1) % shared.threads) {
                fail("a neighbour's allocation holds \(base.load(as: UInt64.self))")
            }
            unlock(device, allocation)
        }
        expect(wait(device, [opened.syncObject], [0]), success,
               "WaitForSynchronizationObjectFromCpu (neighbour's fence, value 0)")
        // Trying the neighbour's mutex may win or lose against the neighbour: either is right;
        // a win is handed straight back with the key it had.
        let tried = acquire(opened.keyedMutex, key: 0)
        if expect(tried.status, oneOf: [success, timeout], "AcquireKeyedMutex2 (neighbour's mutex)"),
           tried.status == success {
            expect(release(opened.keyedMutex, key: 0, fence: tried.fence, data: tried.data), success,
                   "ReleaseKeyedMutex2 (neighbour's mutex)")
        }
        destroyKeyedMutex(opened.keyedMutex)
        destroySyncObject(opened.syncObject)
        var destroy = D3DKMT_DESTROYALLOCATION2()
        destroy.hDevice = device
        destroy.hResource = opened.resource
        expect(D3DKMTDestroyAllocation2(&destroy), success, "DestroyAllocation2 (neighbour's resource)")
    }

    // MARK: NULL and bogus arguments

    func nullAndBogusArguments(device: D3DKMT_HANDLE) {
        let nulls: [(String, NTSTATUS)] = [
            ("EnumAdapters2", D3DKMTEnumAdapters2(nil)),
            ("OpenAdapterFromLuid", D3DKMTOpenAdapterFromLuid(nil)),
            ("CloseAdapter", D3DKMTCloseAdapter(nil)),
            ("QueryAdapterInfo", D3DKMTQueryAdapterInfo(nil)),
            ("CreateDevice", D3DKMTCreateDevice(nil)),
            ("DestroyDevice", D3DKMTDestroyDevice(nil)),
            ("CreateAllocation", D3DKMTCreateAllocation(nil)),
            ("CreateAllocation2", D3DKMTCreateAllocation2(nil)),
            ("DestroyAllocation2", D3DKMTDestroyAllocation2(nil)),
            ("Lock2", D3DKMTLock2(nil)),
            ("Unlock2", D3DKMTUnlock2(nil)),
            ("ShareObjects", D3DKMTShareObjects(1, nil, nil, 0, nil)),
            ("QueryResourceInfoFromNtHandle", D3DKMTQueryResourceInfoFromNtHandle(nil)),
            ("OpenResourceFromNtHandle", D3DKMTOpenResourceFromNtHandle(nil)),
            ("CreateKeyedMutex2", D3DKMTCreateKeyedMutex2(nil)),
            ("OpenKeyedMutex2", D3DKMTOpenKeyedMutex2(nil)),
            ("OpenKeyedMutexFromNtHandle", D3DKMTOpenKeyedMutexFromNtHandle(nil)),
            ("DestroyKeyedMutex", D3DKMTDestroyKeyedMutex(nil)),
            ("AcquireKeyedMutex2", D3DKMTAcquireKeyedMutex2(nil)),
            ("ReleaseKeyedMutex2", D3DKMTReleaseKeyedMutex2(nil)),
            ("CreateSynchronizationObject2", D3DKMTCreateSynchronizationObject2(nil)),
            ("OpenSyncObjectFromNtHandle", D3DKMTOpenSyncObjectFromNtHandle(nil)),
            ("OpenSyncObjectFromNtHandle2", D3DKMTOpenSyncObjectFromNtHandle2(nil)),
            ("DestroySynchronizationObject", D3DKMTDestroySynchronizationObject(nil)),
            ("SignalSynchronizationObjectFromCpu", D3DKMTSignalSynchronizationObjectFromCpu(nil)),
            ("WaitForSynchronizationObjectFromCpu", D3DKMTWaitForSynchronizationObjectFromCpu(nil)),
            ("LinuxExportAllocationDmaBuf", D3DKMTLinuxExportAllocationDmaBuf(device, 0, nil)),
            ("LinuxQueryAllocationSize", D3DKMTLinuxQueryAllocationSize(device, 0, nil)),
            ("LinuxExportSyncObjectFd", D3DKMTLinuxExportSyncObjectFd(0, nil)),
            ("LinuxExportSyncFile", D3DKMTLinuxExportSyncFile(0, 0, nil)),
            ("LinuxImportSyncObjectFd", D3DKMTLinuxImportSyncObjectFd(device, -1, 0, nil)),
            ("LinuxExportKeyedMutexTimelineFd", D3DKMTLinuxExportKeyedMutexTimelineFd(0, nil)),
        ]
        for (call, status) in nulls { expect(status, invalidParameter, "\(call)(NULL)") }

        for bogus in bogusHandles {
            let what = "handle 0x\(String(bogus, radix: 16))"
            var closeAdapter = D3DKMT_CLOSEADAPTER(hAdapter: bogus)
            expect(D3DKMTCloseAdapter(&closeAdapter), invalidParameter, "CloseAdapter(\(what))")
            var createDevice = D3DKMT_CREATEDEVICE()
            createDevice.hAdapter = bogus
            expect(D3DKMTCreateDevice(&createDevice), invalidParameter, "CreateDevice(\(what))")
            var destroyDevice = D3DKMT_DESTROYDEVICE(hDevice: bogus)
            expect(D3DKMTDestroyDevice(&destroyDevice), invalidParameter, "DestroyDevice(\(what))")
            var destroy = D3DKMT_DESTROYALLOCATION2()
            destroy.hDevice = device
            destroy.hResource = bogus
            // hResource 0 with nothing listed destroys nothing and succeeds, as on Windows.
            expect(D3DKMTDestroyAllocation2(&destroy), bogus == 0 ? success : invalidParameter,
                   "DestroyAllocation2(\(what))")
            var lock = D3DKMT_LOCK2()
            lock.hDevice = device
            lock.hAllocation = bogus
            expect(D3DKMTLock2(&lock), invalidParameter, "Lock2(\(what))")
            var unlock = D3DKMT_UNLOCK2(hDevice: device, hAllocation: bogus)
            expect(D3DKMTUnlock2(&unlock), invalidParameter, "Unlock2(\(what))")
            var shared: HANDLE? = nil
            expect(D3DKMTShareObjects(1, arena.values([bogus]), nil, 0, &shared), invalidParameter,
                   "ShareObjects(\(what))")
            var destroyMutex = D3DKMT_DESTROYKEYEDMUTEX(hKeyedMutex: bogus)
            expect(D3DKMTDestroyKeyedMutex(&destroyMutex), invalidParameter, "DestroyKeyedMutex(\(what))")
            expect(acquire(bogus, key: 0).status, invalidParameter, "AcquireKeyedMutex2(\(what))")
            expect(release(bogus, key: 0, fence: 0, data: 0), invalidParameter, "ReleaseKeyedMutex2(\(what))")
            var destroySync = D3DKMT_DESTROYSYNCHRONIZATIONOBJECT(hSyncObject: bogus)
            expect(D3DKMTDestroySynchronizationObject(&destroySync), invalidParameter,
                   "DestroySynchronizationObject(\(what))")
            expect(signal(device, bogus, 1), invalidParameter, "SignalSynchronizationObjectFromCpu(\(what))")
            expect(signal(bogus, bogus, 1), invalidParameter, "SignalSynchronizationObjectFromCpu(device \(what))")
            expect(wait(device, [bogus], [0]), invalidParameter, "WaitForSynchronizationObjectFromCpu(\(what))")
            var fd: Int32 = -1
            expect(D3DKMTLinuxExportAllocationDmaBuf(device, bogus, &fd), invalidParameter,
                   "LinuxExportAllocationDmaBuf(\(what))")
            expect(D3DKMTLinuxExportSyncObjectFd(bogus, &fd), invalidParameter, "LinuxExportSyncObjectFd(\(what))")
            expect(D3DKMTLinuxExportKeyedMutexTimelineFd(bogus, &fd), invalidParameter,
                   "LinuxExportKeyedMutexTimelineFd(\(what))")
        }

        // NT handles that are not shared handles. One that is no descriptor at all (NULL, -1,
        // beyond any descriptor number) is STATUS_INVALID_HANDLE, as on Windows; a descriptor
        // of this thread's that is something else (an eventfd) is STATUS_INVALID_PARAMETER.
        guard let otherDescriptor = try? Kernel.eventfd() else { fail("eventfd failed"); return }
        let other = otherDescriptor.rawValue
        let notDescriptors: [HANDLE?] = [nil, HANDLE(bitPattern: -1), HANDLE(bitPattern: Int(Int32.max) + 1),
                                         HANDLE(bitPattern: Int.min)]
        for (handle, expected) in notDescriptors.map({ ($0, invalidHandle) }) + [(ntHandle(other), invalidParameter)] {
            let what = "NT handle \(Int(bitPattern: handle))"
            var query = D3DKMT_QUERYRESOURCEINFOFROMNTHANDLE()
            query.hDevice = device
            query.hNtHandle = handle
            expect(D3DKMTQueryResourceInfoFromNtHandle(&query), expected, "QueryResourceInfoFromNtHandle(\(what))")
            var open = D3DKMT_OPENRESOURCEFROMNTHANDLE()
            open.hDevice = device
            open.hNtHandle = handle
            open.NumAllocations = 1
            open.pOpenAllocationInfo2 = arena.values([D3DDDI_OPENALLOCATIONINFO2()])
            // The buffers Windows requires even when empty (clients pass a dummy).
            open.pPrivateRuntimeData = arena.bytes(1)
            open.pTotalPrivateDriverDataBuffer = arena.bytes(1)
            expect(D3DKMTOpenResourceFromNtHandle(&open), expected, "OpenResourceFromNtHandle(\(what))")
            var mutex = D3DKMT_OPENKEYEDMUTEXFROMNTHANDLE()
            mutex.hNtHandle = handle
            expect(D3DKMTOpenKeyedMutexFromNtHandle(&mutex), expected, "OpenKeyedMutexFromNtHandle(\(what))")
            var sync = D3DKMT_OPENSYNCOBJECTFROMNTHANDLE2()
            sync.hNtHandle = handle
            sync.hDevice = device
            expect(D3DKMTOpenSyncObjectFromNtHandle2(&sync), expected, "OpenSyncObjectFromNtHandle2(\(what))")
            var anyDevice = D3DKMT_OPENSYNCOBJECTFROMNTHANDLE()
            anyDevice.hNtHandle = handle
            expect(D3DKMTOpenSyncObjectFromNtHandle(&anyDevice), expected, "OpenSyncObjectFromNtHandle(\(what))")
        }
    }
}
