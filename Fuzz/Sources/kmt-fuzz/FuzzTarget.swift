// The libFuzzer target: forged shared NT handles against the share package parser and every entry
// point that reads a shared handle, in Swift and in C, on the software adapter.
//
// One input is a forged handle: a SOCK_SEQPACKET socket pair with the input's datagram queued in
// it, carrying 0 to 3 descriptors the input picks (a sealed memfd, possibly stamped as a keyed
// mutex or fence state page, a pipe end, an eventfd). The harness then
//
//   - decodes the datagram with `SharePackage.decode` and, when it is accepted, checks that
//     encoding the result gives back exactly the datagram (the format has one encoding);
//   - opens the handle through the Swift API (`Device.resourceInfo`, `Device.openResource`,
//     `KeyedMutex.open`, `Device.openSyncObject`, `SyncObject.open`) and through the C ABI
//     (`D3DKMTQueryResourceInfoFromNtHandle`, `D3DKMTOpenResourceFromNtHandle`,
//     `D3DKMTOpenKeyedMutexFromNtHandle`, `D3DKMTOpenSyncObjectFromNtHandle(2)`), and checks that
//     both report the same status;
//   - uses what opened: maps and reads every allocation (first and last byte: a size check that
//     lies would fault here), acquires and releases keyed mutexes, signals and waits on fences;
//     optionally after rewriting the state pages as a hostile peer holding them could;
//   - closes everything and checks that the process has exactly the descriptors it had before.
//
// A crash, a failed check or a leaked descriptor aborts, and libFuzzer keeps the input. Inputs
// that found a bug are kept in Fuzz/findings; scripts/fuzz replays them before every run.
//
// Input layout (see `FuzzInput`): a 132-byte prefix, then the datagram.
//
//    0  u8  bits 0-1 descriptor count (0-3), bits 2-3 memfd seals (0 SHRINK|GROW, 1 +SEAL,
//           2 none, 3 +WRITE), bit 4 tamper with the state pages after opening
//    1  u8  kind of descriptor i in bits 2i..2i+1: 0 memfd, 1 pipe read end, 2 eventfd,
//           3 memfd stamped as a state page
//    2  u8  bits 0-2 memfd size (sizes below), bit 3+i: stamped descriptor i is a fence page
//           ('KMFN') instead of a keyed mutex page ('KMKM')
//    3  u8  size of the private data a keyed mutex release stores, in units of 256 bytes
//    4  32 bytes: a keyed mutex page's bytes 8..<40 (state, key, fence value, capacity, size)
//   36  32 bytes: a fence page's bytes 8..<40 (sequence, sleepers, value)
//   68  32 bytes: what tampering writes over a keyed mutex page's bytes 8..<40
//  100  32 bytes: what tampering writes over a fence page's bytes 8..<40
//  132  the datagram
//
// `kmt-fuzz --generate-corpus DIR` writes seed inputs (real handles made through the public API,
// read back byte for byte) into DIR.

@testable import D3DKMT
import D3DKMTCABI
import CD3DKMT
import CFuzzSupport
#if canImport(Glibc)
import Glibc
#endif

// MARK: - The input

struct FuzzInput {
    static let prefixSize = 132
    static let memfdSizes: [UInt64] = [4096, 0, 24, 64, 8192, 65536, 1 << 20, (1 << 20) + 4096]

    enum Kind: Int { case memfd = 0, pipe, eventfd, statePage }

    var descriptorCount: Int
    var sealMode: Int
    var tamper: Bool
    var kinds: [Kind]
    var memfdSize: UInt64
    var fencePage: [Bool]
    var releaseDataSize: Int
    var keyedMutexPage: [UInt8]
    var fencePageBytes: [UInt8]
    var keyedMutexTamper: [UInt8]
    var fenceTamper: [UInt8]
    var datagram: [UInt8]

    init(_ bytes: UnsafeRawBufferPointer) {
        var prefix = [UInt8](repeating: 0, count: Self.prefixSize)
        for index in 0..<min(bytes.count, Self.prefixSize) { prefix[index] = bytes[index] }
        descriptorCount = Int(prefix[0] & 3)
        sealMode = Int(prefix[0] >> 2) & 3
        tamper = prefix[0] & 0x10 != 0
        kinds = (0..<3).map { Kind(rawValue: Int(prefix[1] >> (2 * $0)) & 3)! }
        memfdSize = Self.memfdSizes[Int(prefix[2] & 7)]
        fencePage = (0..<3).map { prefix[2] & (8 << $0) != 0 }
        releaseDataSize = Int(prefix[3]) * 256
        keyedMutexPage = Array(prefix[4..<36])
        fencePageBytes = Array(prefix[36..<68])
        keyedMutexTamper = Array(prefix[68..<100])
        fenceTamper = Array(prefix[100..<132])
        datagram = bytes.count > Self.prefixSize ? Array(bytes[Self.prefixSize...]) : []
    }

    var seals: Int32 {
        switch sealMode {
        case 0: return Int32(FUZZ_SEAL_SHRINK | FUZZ_SEAL_GROW)
        case 1: return Int32(FUZZ_SEAL_SHRINK | FUZZ_SEAL_GROW | FUZZ_SEAL_SEAL)
        case 2: return 0
        default: return Int32(FUZZ_SEAL_SHRINK | FUZZ_SEAL_GROW | FUZZ_SEAL_WRITE)
        }
    }

    /// The key a keyed mutex page says it was last released with (what an acquire asks for).
    var acquireKey: UInt64 {
        let page = tamper ? keyedMutexTamper : keyedMutexPage
        return page[8..<16].reversed().reduce(0) { $0 << 8 | UInt64($1) }
    }
}

/// A page header: magic, version 1, then `body` (bytes 8..<40).
func statePage(fence: Bool, body: [UInt8]) -> [UInt8] {
    let magic: UInt32 = fence ? FenceState.magic : KeyedMutexState.magic
    var bytes: [UInt8] = []
    withUnsafeBytes(of: magic.littleEndian) { bytes += $0 }
    withUnsafeBytes(of: UInt32(1).littleEndian) { bytes += $0 }
    return bytes + body
}

// MARK: - Checks

/// Stops the run: libFuzzer reports the abort as a crash and keeps the input.
func fail(_ message: String) -> Never {
    say("FAILED: \(message)")
    abort()
}

/// A line on standard error.
func say(_ message: String) {
    let line = Array("kmt-fuzz: \(message)\n".utf8)
    _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}

func statusOf(_ body: () throws(NTError) -> Void) -> NTStatus {
    do { try body(); return .success } catch { return error.status }
}

func expectSame(_ swift: NTStatus, _ c: NTSTATUS, _ what: String) {
    if swift.rawValue != c { fail("\(what): the Swift API says \(swift), the C ABI \(NTStatus(rawValue: c))") }
}

/// The statuses an open of a forged handle may return. Anything else is reported.
let expectedOpenStatuses: Set<NTStatus> = [.success, .invalidParameter, .notSupported, .invalidHandle, .accessDenied]

func expectOpenStatus(_ status: NTStatus, _ what: String) {
    if !expectedOpenStatuses.contains(status) {
        fail("\(what) returned \(status), which no forged handle should produce")
    }
}

// MARK: - One-time setup

let softwareDevice: Device = {
    do {
        return try Adapter.open(luid: AdapterInfo.software.luid).makeDevice()
    } catch { fail("software device: \(error)") }
}()

/// The C ABI's software adapter and device handles.
let cDevice: (adapter: D3DKMT_HANDLE, device: D3DKMT_HANDLE) = {
    var open = D3DKMT_OPENADAPTERFROMLUID()
    open.AdapterLuid = CD3DKMT.LUID(LowPart: AdapterInfo.software.luid.lowPart,
                                    HighPart: AdapterInfo.software.luid.highPart)
    guard D3DKMTOpenAdapterFromLuid(&open) == 0 else { fail("D3DKMTOpenAdapterFromLuid(software)") }
    var create = D3DKMT_CREATEDEVICE()
    create.hAdapter = open.hAdapter
    guard D3DKMTCreateDevice(&create) == 0 else { fail("D3DKMTCreateDevice(software)") }
    // Destroyed at exit, before LeakSanitizer looks: the handle table keeps a device in an enum
    // payload whose pointer carries the case in its spare bits, which LeakSanitizer does not
    // recognise as a reference (it would report the live device as leaked).
    atexit {
        var destroy = D3DKMT_DESTROYDEVICE(hDevice: cDevice.device)
        _ = D3DKMTDestroyDevice(&destroy)
        var close = D3DKMT_CLOSEADAPTER(hAdapter: cDevice.adapter)
        _ = D3DKMTCloseAdapter(&close)
    }
    return (open.hAdapter, create.hDevice)
}()

// MARK: - Forging

/// The descriptors an input attaches; the harness keeps its own copies to tamper with and closes
/// them at the end.
struct Forged {
    var handle: Int32 = -1
    var attached: [Int32] = []
    /// (descriptor, is a fence page) for the stamped memfds.
    var statePages: [(fd: Int32, fence: Bool)] = []
    var extra: [Int32] = []  // the other pipe ends

    func close() {
        for fd in [handle] + attached + extra where fd >= 0 { Glibc.close(fd) }
    }
}

func forge(_ input: FuzzInput) -> Forged? {
    var forged = Forged()
    for index in 0..<input.descriptorCount {
        var fd: Int32 = -1
        switch input.kinds[index] {
        case .memfd:
            fd = fuzz_memfd(input.memfdSize, nil, 0, input.seals)
        case .statePage:
            let page = statePage(fence: input.fencePage[index],
                                 body: input.fencePage[index] ? input.fencePageBytes : input.keyedMutexPage)
            fd = page.withUnsafeBytes { fuzz_memfd(input.memfdSize, $0.baseAddress, $0.count, input.seals) }
            if fd >= 0 { forged.statePages.append((fd, input.fencePage[index])) }
        case .pipe:
            var ends: [Int32] = [-1, -1]
            if fuzz_pipe(&ends) == 0 { fd = ends[0]; forged.extra.append(ends[1]) }
        case .eventfd:
            fd = fuzz_eventfd()
        }
        guard fd >= 0 else { forged.close(); return nil }
        forged.attached.append(fd)
    }
    var pair: [Int32] = [-1, -1]
    guard fuzz_seqpacket_pair(&pair) == 0 else { forged.close(); return nil }
    let sent = input.datagram.withUnsafeBytes { bytes in
        forged.attached.withUnsafeBufferPointer { fds in
            fuzz_send(pair[1], bytes.baseAddress, bytes.count, fds.baseAddress, Int32(fds.count))
        }
    }
    Glibc.close(pair[1])
    forged.handle = pair[0]
    guard sent == input.datagram.count else { forged.close(); return nil }  // too large for one datagram
    return forged
}

/// Rewrites the stamped pages' bytes 8..<40, as another process holding them could at any time.
func tamper(_ forged: Forged, _ input: FuzzInput) {
    guard input.tamper else { return }
    for (fd, fence) in forged.statePages {
        let bytes = fence ? input.fenceTamper : input.keyedMutexTamper
        _ = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 8) }
    }
}

/// Puts the stamped pages' bytes 8..<40 back as they were forged, so that the next open sees
/// what the previous one saw (opens are compared between the Swift API and the C ABI).
func untamper(_ forged: Forged, _ input: FuzzInput) {
    guard input.tamper else { return }
    for (fd, fence) in forged.statePages {
        let bytes = fence ? input.fencePageBytes : input.keyedMutexPage
        _ = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 8) }
    }
}

/// A release that stored more private data than the state page holds after its 64-byte header
/// wrote past the page's mapping: whatever the page says its capacity is, that must not happen.
func checkRelease(stored count: Int, _ input: FuzzInput, _ what: String) {
    guard count > 0, UInt64(count) > input.memfdSize &- 64 || input.memfdSize < 64 else { return }
    fail("\(what) stored \(count) bytes of private data into a keyed mutex page of \(input.memfdSize) bytes "
         + "(its header takes 64): memory past the mapping was written")
}

// MARK: - Using what opened

func exercise(_ allocation: Allocation) {
    guard let mapping = try? allocation.map(writable: false) else { return }
    let bytes = mapping.bytes
    if bytes.count > 0 {
        // Reading both ends: a package that overstated the buffer's size would fault here.
        var sum = bytes[0] &+ bytes[bytes.count - 1]
        withUnsafeMutablePointer(to: &sum) { _ = $0 }
    }
}

func exercise(_ mutex: KeyedMutex, _ input: FuzzInput, tamperWith forged: Forged) {
    tamper(forged, input)
    defer { untamper(forged, input) }
    _ = mutex.isAbandoned
    let data = [UInt8](repeating: 0x5A, count: input.releaseDataSize)
    if (try? mutex.acquire(key: input.acquireKey, timeout: .zero)) != nil {
        // Too much data is refused and leaves the mutex owned; release it then without data.
        if statusOf({ () throws(NTError) in
            try mutex.release(key: input.acquireKey &+ 1, fenceValue: 7, runtimeData: data)
        }) == .success {
            checkRelease(stored: data.count, input, "KeyedMutex.release")
        } else {
            _ = statusOf { () throws(NTError) in try mutex.release(key: 0) }
        }
    } else if statusOf({ () throws(NTError) in try mutex.release(key: 0) }) == .success {
        fail("a keyed mutex open released the mutex without having acquired it")
    }
}

func exercise(_ object: SyncObject, _ input: FuzzInput, tamperWith forged: Forged) {
    tamper(forged, input)
    defer { untamper(forged, input) }
    guard let value = try? object.currentValue() else { return }
    if let address = object.fenceValueAddress { _ = address.pointee }
    if value < UInt64.max { _ = statusOf { () throws(NTError) in try object.signal(value + 1) } }
    _ = statusOf { () throws(NTError) in try SyncObject.wait(for: [(object, value)], timeout: .zero) }
    if value < UInt64.max - 1 {
        _ = statusOf { () throws(NTError) in try SyncObject.wait(for: [(object, value + 2)], timeout: .zero) }
    }
}

// MARK: - The Swift API

struct SwiftStatuses {
    var info: NTStatus
    var resource: NTStatus
    var keyedMutex: NTStatus
    var syncObject: NTStatus
}

func runSwift(_ fd: Int32, _ input: FuzzInput, _ forged: Forged) -> SwiftStatuses {
    // Borrowed: the harness closes the handle itself.
    do {
        return try SharedHandle.withBorrowed(fd) { (handle) throws(NTError) in runSwift(handle, input, forged) }
    } catch {
        fail("borrowing descriptor \(fd): \(error)")
    }
}

func runSwift(_ handle: borrowing SharedHandle, _ input: FuzzInput, _ forged: Forged) -> SwiftStatuses {

    let info = statusOf { () throws(NTError) in
        let info = try softwareDevice.resourceInfo(handle)
        if info.allocationCount < 1 || info.allocationCount > SharePackage.maximumAllocations {
            fail("resourceInfo: \(info.allocationCount) allocations")
        }
    }
    let resource = statusOf { () throws(NTError) in
        let resource = try softwareDevice.openResource(handle)
        for allocation in resource.allocations { exercise(allocation) }
        if let mutex = resource.keyedMutex { exercise(mutex, input, tamperWith: forged) }
        if let object = resource.syncObject { exercise(object, input, tamperWith: forged) }
    }
    let keyedMutex = statusOf { () throws(NTError) in exercise(try KeyedMutex.open(handle), input, tamperWith: forged) }
    let syncObject = statusOf { () throws(NTError) in
        exercise(try softwareDevice.openSyncObject(handle), input, tamperWith: forged)
    }
    let anyDevice = statusOf { () throws(NTError) in exercise(try SyncObject.open(handle), input, tamperWith: forged) }
    for (status, what) in [(info, "resourceInfo"), (resource, "openResource"), (keyedMutex, "KeyedMutex.open"),
                           (syncObject, "openSyncObject"), (anyDevice, "SyncObject.open")] {
        expectOpenStatus(status, what)
    }
    // A resource's info can be read whenever the resource opens.
    if resource == .success && info != .success { fail("openResource succeeded but resourceInfo said \(info)") }
    return SwiftStatuses(info: info, resource: resource, keyedMutex: keyedMutex, syncObject: syncObject)
}

// MARK: - The C ABI

func cHandle(_ fd: Int32) -> HANDLE? { HANDLE(bitPattern: Int(fd)) }

func destroyKeyedMutex(_ handle: D3DKMT_HANDLE) {
    guard handle != 0 else { return }
    var destroy = D3DKMT_DESTROYKEYEDMUTEX(hKeyedMutex: handle)
    if D3DKMTDestroyKeyedMutex(&destroy) != 0 { fail("D3DKMTDestroyKeyedMutex of a handle the open returned") }
}

func destroySyncObject(_ handle: D3DKMT_HANDLE) {
    guard handle != 0 else { return }
    var destroy = D3DKMT_DESTROYSYNCHRONIZATIONOBJECT(hSyncObject: handle)
    if D3DKMTDestroySynchronizationObject(&destroy) != 0 {
        fail("D3DKMTDestroySynchronizationObject of a handle the open returned")
    }
}

func exerciseC(keyedMutex handle: D3DKMT_HANDLE, _ input: FuzzInput, tamperWith forged: Forged) {
    guard handle != 0 else { return }
    tamper(forged, input)
    defer { untamper(forged, input) }
    var timeout = LARGE_INTEGER()
    timeout.QuadPart = 0
    var acquire = D3DKMT_ACQUIREKEYEDMUTEX2()
    acquire.hKeyedMutex = handle
    acquire.Key = input.acquireKey
    let acquired = withUnsafeMutablePointer(to: &timeout) { pointer in
        acquire.pTimeout = pointer
        return D3DKMTAcquireKeyedMutex2(&acquire)
    }
    if acquired == 0 {
        var data = [UInt8](repeating: 0xA5, count: input.releaseDataSize)
        data.withUnsafeMutableBytes { raw in
            var release = D3DKMT_RELEASEKEYEDMUTEX2()
            release.hKeyedMutex = handle
            release.Key = input.acquireKey &+ 1
            release.FenceValue = 9
            release.pPrivateRuntimeData = raw.baseAddress
            release.PrivateRuntimeDataSize = UInt32(raw.count)
            if D3DKMTReleaseKeyedMutex2(&release) == 0 {
                checkRelease(stored: raw.count, input, "D3DKMTReleaseKeyedMutex2")
            } else {
                var plain = D3DKMT_RELEASEKEYEDMUTEX2()
                plain.hKeyedMutex = handle
                _ = D3DKMTReleaseKeyedMutex2(&plain)
            }
        }
    } else {
        var release = D3DKMT_RELEASEKEYEDMUTEX2()
        release.hKeyedMutex = handle
        if D3DKMTReleaseKeyedMutex2(&release) == 0 {
            fail("D3DKMTReleaseKeyedMutex2 released a mutex its handle had not acquired")
        }
    }
}

func exerciseC(syncObject handle: D3DKMT_HANDLE, device: D3DKMT_HANDLE, _ input: FuzzInput, tamperWith forged: Forged) {
    guard handle != 0 else { return }
    tamper(forged, input)
    defer { untamper(forged, input) }
    let handles = [handle]
    var values: [UInt64] = [1]
    handles.withUnsafeBufferPointer { handlePointer in
        values.withUnsafeMutableBufferPointer { valuePointer in
            var signal = D3DKMT_SIGNALSYNCHRONIZATIONOBJECTFROMCPU()
            signal.hDevice = device
            signal.ObjectCount = 1
            signal.ObjectHandleArray = handlePointer.baseAddress
            signal.FenceValueArray = UnsafePointer(valuePointer.baseAddress)
            let signalled = D3DKMTSignalSynchronizationObjectFromCpu(&signal)
            // With an eventfd the wait runs on a helper thread that holds the objects and a
            // duplicate of the eventfd until the value is reached. Value 1 is reached when the
            // signal worked or the fence was already past it, unless a tampering peer rewrote the
            // value: then the thread would wait for ever (by design), so that case is not tried.
            guard !input.tamper, signalled == 0 || signalled == NTStatus.invalidParameter.rawValue else { return }
            let event = fuzz_eventfd()
            guard event >= 0 else { return }
            defer { Glibc.close(event) }
            var wait = D3DKMT_WAITFORSYNCHRONIZATIONOBJECTFROMCPU()
            wait.hDevice = device
            wait.ObjectCount = 1
            wait.ObjectHandleArray = handlePointer.baseAddress
            wait.FenceValueArray = UnsafePointer(valuePointer.baseAddress)
            wait.hAsyncEvent = cHandle(event)
            if D3DKMTWaitForSynchronizationObjectFromCpu(&wait) == 0 {
                var poll = pollfd(fd: event, events: Int16(POLLIN), revents: 0)
                if Glibc.poll(&poll, 1, 10_000) != 1 {
                    fail("an async wait for a reached fence value did not signal its eventfd in 10 s")
                }
            }
        }
    }
}

func runC(_ fd: Int32, _ input: FuzzInput, _ forged: Forged, expect swift: SwiftStatuses) {
    let device = cDevice.device
    var query = D3DKMT_QUERYRESOURCEINFOFROMNTHANDLE()
    query.hDevice = device
    query.hNtHandle = cHandle(fd)
    let queried = D3DKMTQueryResourceInfoFromNtHandle(&query)
    expectSame(swift.info, queried, "query resource info")

    if queried == 0 {
        let count = Int(query.NumAllocations)
        var infos = [D3DDDI_OPENALLOCATIONINFO2](repeating: D3DDDI_OPENALLOCATIONINFO2(), count: count + 1)
        // Buffers are never empty (an empty array has no address): Windows wants the runtime and
        // driver data buffers even when nothing goes in them. The sizes passed are the query's.
        var runtime = [UInt8](repeating: 0, count: max(1, Int(query.PrivateRuntimeDataSize)))
        var resourceData = [UInt8](repeating: 0, count: max(1, Int(query.ResourcePrivateDriverDataSize)))
        var total = [UInt8](repeating: 0, count: max(1, Int(query.TotalPrivateDriverDataSize)))
        var mutexData = [UInt8](repeating: 0, count: 64 * 1024)
        infos.withUnsafeMutableBufferPointer { infoPointer in
        runtime.withUnsafeMutableBytes { runtimePointer in
        resourceData.withUnsafeMutableBytes { resourcePointer in
        total.withUnsafeMutableBytes { totalPointer in
        mutexData.withUnsafeMutableBytes { mutexPointer in
            func request(_ allocations: Int) -> D3DKMT_OPENRESOURCEFROMNTHANDLE {
                var open = D3DKMT_OPENRESOURCEFROMNTHANDLE()
                open.hDevice = device
                open.hNtHandle = cHandle(fd)
                open.NumAllocations = UInt32(allocations)
                open.pOpenAllocationInfo2 = infoPointer.baseAddress
                open.PrivateRuntimeDataSize = query.PrivateRuntimeDataSize
                open.pPrivateRuntimeData = runtimePointer.baseAddress
                open.ResourcePrivateDriverDataSize = query.ResourcePrivateDriverDataSize
                open.pResourcePrivateDriverData = resourcePointer.baseAddress
                open.TotalPrivateDriverDataBufferSize = query.TotalPrivateDriverDataSize
                open.pTotalPrivateDriverDataBuffer = totalPointer.baseAddress
                open.KeyedMutexPrivateRuntimeDataSize = UInt32(mutexPointer.count)
                open.pKeyedMutexPrivateRuntimeData = mutexPointer.baseAddress
                return open
            }
            // A wrong allocation count is refused before anything is imported.
            var wrong = request(count + 1)
            let refused = D3DKMTOpenResourceFromNtHandle(&wrong)
            if refused == 0 {
                fail("D3DKMTOpenResourceFromNtHandle accepted NumAllocations \(count + 1) for \(count) allocations")
            }

            var open = request(count)
            let opened = D3DKMTOpenResourceFromNtHandle(&open)
            expectSame(swift.resource, opened, "open resource")
            guard opened == 0 else { return }
            if open.TotalPrivateDriverDataBufferSize != query.TotalPrivateDriverDataSize {
                fail("TotalPrivateDriverDataBufferSize changed between query and open")
            }
            for index in 0..<count {
                let allocation = infoPointer[index].hAllocation
                var size: UInt64 = 0
                guard D3DKMTLinuxQueryAllocationSize(device, allocation, &size) == 0 else {
                    fail("querying an opened allocation's size")
                }
                var lock = D3DKMT_LOCK2()
                lock.hDevice = device
                lock.hAllocation = allocation
                if D3DKMTLock2(&lock) == 0, let base = lock.pData {
                    if size > 0 {
                        let first = base.load(as: UInt8.self),
                            last = base.load(fromByteOffset: Int(size) - 1, as: UInt8.self)
                        var sum = first &+ last
                        withUnsafeMutablePointer(to: &sum) { _ = $0 }
                    }
                    var unlock = D3DKMT_UNLOCK2(hDevice: device, hAllocation: allocation)
                    if D3DKMTUnlock2(&unlock) != 0 { fail("D3DKMTUnlock2 after a successful lock") }
                }
            }
            exerciseC(keyedMutex: open.hKeyedMutex, input, tamperWith: forged)
            exerciseC(syncObject: open.hSyncObject, device: device, input, tamperWith: forged)
            destroyKeyedMutex(open.hKeyedMutex)
            destroySyncObject(open.hSyncObject)
            var destroy = D3DKMT_DESTROYALLOCATION2()
            destroy.hDevice = device
            destroy.hResource = open.hResource
            if D3DKMTDestroyAllocation2(&destroy) != 0 { fail("D3DKMTDestroyAllocation2 of an opened resource") }
        }}}}}
    }

    var mutex = D3DKMT_OPENKEYEDMUTEXFROMNTHANDLE()
    mutex.hNtHandle = cHandle(fd)
    let mutexStatus = D3DKMTOpenKeyedMutexFromNtHandle(&mutex)
    expectSame(swift.keyedMutex, mutexStatus, "open keyed mutex")
    if mutexStatus == 0 {
        exerciseC(keyedMutex: mutex.hKeyedMutex, input, tamperWith: forged)
        destroyKeyedMutex(mutex.hKeyedMutex)
    }

    var sync = D3DKMT_OPENSYNCOBJECTFROMNTHANDLE2()
    sync.hDevice = device
    sync.hNtHandle = cHandle(fd)
    let syncStatus = D3DKMTOpenSyncObjectFromNtHandle2(&sync)
    expectSame(swift.syncObject, syncStatus, "open sync object")
    if syncStatus == 0 {
        exerciseC(syncObject: sync.hSyncObject, device: device, input, tamperWith: forged)
        destroySyncObject(sync.hSyncObject)
    }

    var anyDevice = D3DKMT_OPENSYNCOBJECTFROMNTHANDLE()
    anyDevice.hNtHandle = cHandle(fd)
    if D3DKMTOpenSyncObjectFromNtHandle(&anyDevice) == 0 { destroySyncObject(anyDevice.hSyncObject) }
}

// MARK: - The parser alone

func runDecoder(_ input: FuzzInput) {
    input.datagram.withUnsafeBytes { bytes in
        guard let package = try? SharePackage.decode(bytes, descriptorCount: input.descriptorCount) else { return }
        // The format has exactly one encoding of each package (sizes are exact, reserved fields
        // zero, no stray bytes): what was accepted must re-encode to the same bytes.
        let again = package.encoded()
        if again != input.datagram {
            fail("decode/encode round trip differs: \(input.datagram.count) bytes in, \(again.count) out")
        }
        // Every descriptor index the package names is in range and claimed once.
        var indices = package.allocations.map(\.descriptorIndex)
        if let mutex = package.keyedMutex { indices += [mutex.stateDescriptorIndex, mutex.syncobjDescriptorIndex] }
        if let object = package.syncObject { indices += [object.syncobjDescriptorIndex, object.stateDescriptorIndex] }
        let real = indices.filter { $0 != SharePackage.noDescriptor }
        if Set(real).count != real.count || real.contains(where: { Int($0) >= input.descriptorCount })
            || real.count != input.descriptorCount {
            fail("decoder accepted descriptor indices \(indices) for \(input.descriptorCount) descriptors")
        }
    }
}

// MARK: - Entry points

/// Debug output for one input: KMT_FUZZ_VERBOSE=1.
let verbose = getenv("KMT_FUZZ_VERBOSE") != nil

/// KMT_FUZZ_MODE=api: every C entry point with arbitrary struct contents (APIFuzz.swift) instead
/// of forged shared handles.
let apiMode = getenv("KMT_FUZZ_MODE").map { String(cString: $0) == "api" } ?? false

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    if apiMode {
        APIFuzz.run(UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : size))
        return 0
    }
    _ = softwareDevice
    _ = cDevice
    let input = FuzzInput(UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : size))
    runDecoder(input)

    let before = fuzz_open_descriptor_count()
    do {
        guard let forged = forge(input) else { return 0 }
        let swift = runSwift(forged.handle, input, forged)
        runC(forged.handle, input, forged, expect: swift)
        if verbose {
            say("info \(swift.info) resource \(swift.resource) keyed mutex \(swift.keyedMutex) "
                + "sync object \(swift.syncObject)")
        }
        forged.close()
    }
    // An async wait's helper thread closes its eventfd duplicate just after signalling it: give
    // it a moment (at most 2 s) before calling a difference a leak.
    var after = fuzz_open_descriptor_count()
    for _ in 0..<2000 where after != before {
        usleep(1000)
        after = fuzz_open_descriptor_count()
    }
    if after != before {
        var listing = ""
        if let directory = opendir("/proc/self/fd") {
            while let entry = readdir(directory) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) {
                    String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
                }
                guard name.first != "." else { continue }
                var target = [CChar](repeating: 0, count: 256)
                let length = readlink("/proc/self/fd/\(name)", &target, 255)
                let resolved = length > 0
                    ? String(decoding: target[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self) : "?"
                listing += "  \(name) -> \(resolved)\n"
            }
            closedir(directory)
        }
        fail("descriptor leak: \(before) open before the input, \(after) after\n\(listing)")
    }
    return 0
}

/// The program's entry point. SwiftPM links an executable target's `main` to `<target>_main`
/// (here `kmt_fuzz_main`), so the harness has a main of its own, which hands over to libFuzzer's
/// driver: `kmt-fuzz [libFuzzer flags] [corpus directories or inputs]`, or
/// `kmt-fuzz --generate-corpus DIR` to write the seed inputs.
@_cdecl("kmt_fuzz_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    if argc == 3, let flag = argv[1], String(cString: flag) == "--generate-corpus", let directory = argv[2] {
        generateCorpus(into: String(cString: directory))
        return 0
    }
    var count = argc
    var arguments: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = argv
    return LLVMFuzzerRunDriver(&count, &arguments) { data, size in fuzz(data, size) }
}
