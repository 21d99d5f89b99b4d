// The second fuzz mode (KMT_FUZZ_MODE=api, #12 item 1): every C entry point of <d3dkmthk.h> with
// arbitrary struct contents. One input is a program: each step picks an entry point and fills its
// struct from the input, every scalar field (counts, sizes, widths, strides, flags, offsets, keys,
// timeouts) arbitrary, every handle field one of the live handles of the process's handle table or
// an arbitrary value, every NT handle (HANDLE) a real shared handle, an eventfd, a descriptor that
// is not a handle or an arbitrary number, and every pointer NULL or a buffer of the harness. A
// buffer is a 64 KiB region of an 8 MiB arena filled from the input, so whatever size the input
// pairs with a pointer, what the library may read within its own limits is memory the harness
// owns; arrays of structs with pointers of their own (allocation infos, object attributes) are
// built the same way, one level down. Blocking calls are bounded: a wait without hAsyncEvent gets
// the harness's eventfd, an acquire's timeout is at most 1 ms.
//
// After each input every object the program made is destroyed and every descriptor it opened is
// closed; what a call must never do is crash, trap, fail an ASan check or return a status no
// input can justify (a success code other than STATUS_SUCCESS/TIMEOUT/ABANDONED/PENDING, or
// STATUS_UNSUCCESSFUL, which means an unclassified error).

@testable import D3DKMT
@testable import D3DKMTCABI
import CD3DKMT
import CFuzzSupport
#if canImport(Glibc)
import Glibc
#endif

/// Reads the input as a stream of values; zeros once it is used up.
struct FuzzReader {
    let bytes: UnsafeRawBufferPointer
    var at = 0

    var exhausted: Bool { at >= bytes.count }

    mutating func u8() -> UInt8 {
        guard at < bytes.count else { return 0 }
        defer { at += 1 }
        return bytes[at]
    }

    mutating func u32() -> UInt32 { (0..<4).reduce(0) { value, _ in value << 8 | UInt32(u8()) } }
    mutating func u64() -> UInt64 { UInt64(u32()) << 32 | UInt64(u32()) }

    /// A size: small most of the time, at the edges sometimes.
    mutating func size() -> UInt32 {
        switch u8() % 8 {
        case 0: return 0
        case 1: return UInt32(u8())
        case 2: return UInt32(u8()) * 16
        case 3: return 0xFFFF_FFFF
        case 4: return UInt32(u8()) << 12
        default: return u32()
        }
    }

    /// Copies up to `count` input bytes into `destination` (zeros after the input ends).
    mutating func fill(_ destination: UnsafeMutableRawPointer, _ count: Int) {
        let take = max(0, min(count, bytes.count - at))
        if take > 0 { destination.copyMemory(from: bytes.baseAddress! + at, byteCount: take) }
        if take < count { (destination + take).initializeMemory(as: UInt8.self, repeating: 0, count: count - take) }
        at += take
    }
}

/// The harness's memory: 8 MiB in 64 KiB regions, handed out in order for each input.
enum Arena {
    static let regionSize = 64 << 10
    static let regions = 128
    nonisolated(unsafe) static let base: UnsafeMutableRawPointer = {
        let memory = UnsafeMutableRawPointer.allocate(byteCount: regionSize * regions, alignment: 4096)
        memory.initializeMemory(as: UInt8.self, repeating: 0, count: regionSize * regions)
        return memory
    }()
    nonisolated(unsafe) static var next = 0

    /// A zeroed region (the last one again once all are used: at most one input's worth).
    static func region() -> UnsafeMutableRawPointer {
        let index = min(next, regions - 2)  // never the last: reads past a region stay in the arena
        next += 1
        let region = base + index * regionSize
        region.initializeMemory(as: UInt8.self, repeating: 0, count: regionSize)
        return region
    }
}

/// What handle fields and NT handles are chosen from.
struct FuzzPool {
    var handles: [UInt32]
    var ntHandles: [Int32]
}

/// The state of the API fuzzer across inputs: real objects every program can name.
enum APIFuzz {
    /// Shared handles made once: a resource with keyed mutex and fence, a sync object alone, a
    /// named one, and an eventfd for async waits.
    static let fixtures: (shared: Int32, syncOnly: Int32, eventfd: Int32) = {
        do {
            let device = softwareDevice
            let resource = try device.createResource(allocations: [(.new(AllocationDescriptor(size: 8192)), [1, 2])],
                                                     runtimeData: [1, 2, 3])
            let mutex = try KeyedMutex.create(initialKey: 0)
            let fence = try device.createSyncObject(.monitoredFence)
            let shared = try resource.share(keyedMutex: mutex, syncObject: fence).take()
            let syncOnly = try fence.share().take()
            return (shared, syncOnly, fuzz_eventfd())
        } catch { fail("API fuzz fixtures: \(error)") }
    }()

    /// The handles alive before any program ran (the harness's device and adapter): never
    /// destroyed between inputs.
    static let baseline: Set<UInt32> = {
        _ = cDevice
        _ = fixtures
        // The event thread and its two descriptors live as long as the process: started here,
        // before any program counts descriptors.
        do { try EventLoop.shared.after(.now) {} } catch { fail("starting the event thread: \(error)") }
        // And through the C ABI (a v1 keyed mutex has a global handle, served by the event thread),
        // in case the library the C calls reach is linked as a copy of its own.
        var mutex = D3DKMT_CREATEKEYEDMUTEX()
        if D3DKMTCreateKeyedMutex(&mutex) == 0 {
            var destroy = D3DKMT_DESTROYKEYEDMUTEX(hKeyedMutex: mutex.hKeyedMutex)
            _ = D3DKMTDestroyKeyedMutex(&destroy)
        }
        return Set(handleTable.withLock { $0.liveHandles })
    }()

    static func pool() -> FuzzPool {
        FuzzPool(handles: handleTable.withLock { $0.liveHandles },
                 ntHandles: [fixtures.shared, fixtures.syncOnly, fixtures.eventfd, 0, -1, 1 << 20])
    }

    /// A handle field: a live handle (most of the time) or an arbitrary value.
    static func handle(_ reader: inout FuzzReader, _ pool: FuzzPool) -> UInt32 {
        let choice = reader.u8()
        if choice < 0xE0, !pool.handles.isEmpty { return pool.handles[Int(choice) % pool.handles.count] }
        return choice == 0xFF ? 0 : reader.u32()
    }

    /// An NT handle field.
    static func ntHandle(_ reader: inout FuzzReader, _ pool: FuzzPool) -> HANDLE? {
        let choice = reader.u8()
        let fd = choice < 0xF0 ? pool.ntHandles[Int(choice) % pool.ntHandles.count] : Int32(bitPattern: reader.u32())
        return HANDLE(bitPattern: Int(fd))
    }

    /// A pointer field: NULL sometimes, else a region filled with up to `limit` input bytes.
    static func buffer(_ reader: inout FuzzReader, limit: Int = 1024) -> UnsafeMutableRawPointer? {
        let choice = reader.u8()
        if choice & 7 == 0 { return nil }
        let region = Arena.region()
        reader.fill(region, min(limit, Int(choice) * 8))
        return region
    }

    /// A struct of `T` with every byte from the input; the caller then sets its handles and
    /// pointers.
    static func raw<T>(_ reader: inout FuzzReader, _ type: T.Type) -> T {
        let memory = UnsafeMutableRawPointer.allocate(byteCount: MemoryLayout<T>.size, alignment: 16)
        defer { memory.deallocate() }
        reader.fill(memory, MemoryLayout<T>.size)
        return memory.load(as: T.self)
    }

    /// An array of `count` handles in a region (live ones mostly).
    static func handles(_ reader: inout FuzzReader, _ pool: FuzzPool, count: Int) -> UnsafeMutablePointer<UInt32>? {
        if reader.u8() & 15 == 0 { return nil }
        let region = Arena.region().assumingMemoryBound(to: UInt32.self)
        for index in 0..<min(count, 64) { region[index] = handle(&reader, pool) }
        return region
    }

    /// An array of fence values in a region.
    static func values(_ reader: inout FuzzReader, count: Int) -> UnsafeMutablePointer<UInt64>? {
        if reader.u8() & 15 == 0 { return nil }
        let region = Arena.region().assumingMemoryBound(to: UInt64.self)
        for index in 0..<min(count, 64) { region[index] = reader.u8() < 0x80 ? UInt64(reader.u8()) : reader.u64() }
        return region
    }

    /// A private data buffer that usually starts with a plausible D3DKMT_LINUX_ALLOCATION_DESC.
    static func allocationData(_ reader: inout FuzzReader) -> (UnsafeMutableRawPointer?, UInt32) {
        guard let region = buffer(&reader) else { return (nil, reader.size()) }
        if reader.u8() & 1 == 0 {
            var desc = raw(&reader, D3DKMT_LINUX_ALLOCATION_DESC.self)
            desc.Version = UInt32(D3DKMT_LINUX_ALLOCATION_DESC_VERSION)
            if reader.u8() & 1 == 0 { desc.Size = UInt64(reader.u8()) << 12 }
            if reader.u8() & 1 == 0 { desc.DmaBufFd = -1 }
            region.storeBytes(of: desc, as: D3DKMT_LINUX_ALLOCATION_DESC.self)
        }
        let size = reader.u8() & 1 == 0 ? UInt32(MemoryLayout<D3DKMT_LINUX_ALLOCATION_DESC>.size) + UInt32(reader.u8())
                                         : reader.size()
        return (region, size)
    }

    /// Object attributes naming an object (or NULL), with their UNICODE_STRING and its buffer.
    static func objectAttributes(_ reader: inout FuzzReader, _ pool: FuzzPool)
        -> UnsafeMutablePointer<OBJECT_ATTRIBUTES>? {
        if reader.u8() & 3 == 0 { return nil }
        let region = Arena.region()
        var attributes = raw(&reader, OBJECT_ATTRIBUTES.self)
        attributes.RootDirectory = reader.u8() & 1 == 0 ? nil : ntHandle(&reader, pool)
        attributes.SecurityDescriptor = nil
        attributes.SecurityQualityOfService = nil
        attributes.ObjectName = nil
        if reader.u8() & 7 != 0 {
            let name = (region + 256).assumingMemoryBound(to: UNICODE_STRING.self)
            var string = raw(&reader, UNICODE_STRING.self)
            let text = (region + 1024).assumingMemoryBound(to: UInt16.self)
            for index in 0..<300 {
                text[index] = reader.u8() < 0xF0 ? 0x41 + UInt16(index % 26) : UInt16(reader.u8())
            }
            string.Buffer = reader.u8() & 15 == 0 ? nil : text
            if reader.u8() & 1 == 0 {
                string.Length = UInt16(reader.u8() % 64) * 2
                string.MaximumLength = string.Length
            }
            name.pointee = string
            attributes.ObjectName = name
        }
        region.storeBytes(of: attributes, as: OBJECT_ATTRIBUTES.self)
        return region.assumingMemoryBound(to: OBJECT_ATTRIBUTES.self)
    }

    /// An NT timeout no longer than 1 ms (or 0: a try), for acquires.
    static func timeout(_ reader: inout FuzzReader) -> UnsafeMutablePointer<LARGE_INTEGER> {
        let region = Arena.region().assumingMemoryBound(to: LARGE_INTEGER.self)
        region.pointee.QuadPart = reader.u8() & 1 == 0 ? 0 : -Int64(reader.u8() % 100) * 100
        return region
    }

    static let allowed: Set<NTStatus> = [.success, .timeout, .abandoned, .pending]

    /// Checks a call's status: a failure code, or one of the success codes a call can return.
    static func check(_ status: NTSTATUS, _ call: String) {
        let value = NTStatus(rawValue: status)
        if value.rawValue >= 0, !allowed.contains(value) { fail("\(call) returned the success code \(value)") }
        if value == .unsuccessful {
            var text = [CChar](repeating: 0, count: 512)
            _ = D3DKMTLinuxGetLastFailure(&text, 512)
            let bytes = text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
            fail("\(call) returned STATUS_UNSUCCESSFUL (an unclassified error): "
                 + String(decoding: bytes, as: UTF8.self))
        }
    }

    /// The number of steps in one program at most.
    static let maximumSteps = 24

    /// Runs one program.
    static func run(_ data: UnsafeRawBufferPointer) {
        _ = baseline
        var reader = FuzzReader(bytes: data)
        let descriptorsBefore = fuzz_open_descriptor_count()
        var highest: Int32 = 0
        for fd in 0..<Int32(4096) where fcntl(fd, F_GETFD) >= 0 { highest = fd }
        for _ in 0..<maximumSteps where !reader.exhausted {
            Arena.next = 0
            step(&reader, pool())
        }
        // Undo everything the program made: its objects, then its descriptors.
        var made = handleTable.withLock { table in
            table.liveHandles.filter { !baseline.contains($0) }.compactMap { table.remove($0) }
        }
        made.removeAll()  // destroyed here, outside the table's lock
        for fd in (highest + 1)..<Int32(4096) { close(fd) }
        // Async waits of destroyed objects are cancelled on the event thread: let it finish.
        var after = fuzz_open_descriptor_count()
        for _ in 0..<2000 where after > descriptorsBefore {
            usleep(1000)
            after = fuzz_open_descriptor_count()
        }
        if after != descriptorsBefore {
            var listing = ""
            for fd in 0..<Int32(4096) where fcntl(fd, F_GETFD) >= 0 {
                var target = [CChar](repeating: 0, count: 256)
                let length = readlink("/proc/self/fd/\(fd)", &target, 255)
                let bytes = target[0..<max(0, length)].map { UInt8(bitPattern: $0) }
                let name = length > 0 ? String(decoding: bytes, as: UTF8.self)
                                      : "?"
                listing += "  \(fd) -> \(name)\n"
            }
            fail("descriptors: \(descriptorsBefore) before the program, \(after) after (highest before \(highest))\n"
                 + listing)
        }
    }

    // swiftlint:disable:next cyclomatic_complexity function_body_length
    static func step(_ reader: inout FuzzReader, _ pool: FuzzPool) {
        let call = reader.u8() % 51
        let nullStruct = reader.u8() == 0xFF
        func h() -> UInt32 { handle(&reader, pool) }
        switch call {
        case 0:
            var data = raw(&reader, D3DKMT_ENUMADAPTERS2.self)
            data.pAdapters = buffer(&reader, limit: 0)?.assumingMemoryBound(to: D3DKMT_ADAPTERINFO.self)
            if reader.u8() & 1 == 0 { data.NumAdapters = UInt32(reader.u8() % 32) }
            check(nullStruct ? D3DKMTEnumAdapters2(nil) : D3DKMTEnumAdapters2(&data), "EnumAdapters2")
        case 1:
            var data = raw(&reader, D3DKMT_OPENADAPTERFROMLUID.self)
            if reader.u8() & 1 == 0 {
                data.AdapterLuid = CD3DKMT.LUID(LowPart: AdapterInfo.software.luid.lowPart,
                                                HighPart: AdapterInfo.software.luid.highPart)
            }
            check(nullStruct ? D3DKMTOpenAdapterFromLuid(nil) : D3DKMTOpenAdapterFromLuid(&data), "OpenAdapterFromLuid")
        case 2:
            var data = D3DKMT_CLOSEADAPTER(hAdapter: h())
            check(nullStruct ? D3DKMTCloseAdapter(nil) : D3DKMTCloseAdapter(&data), "CloseAdapter")
        case 3:
            var data = raw(&reader, D3DKMT_QUERYADAPTERINFO.self)
            data.hAdapter = h()
            data.pPrivateDriverData = buffer(&reader, limit: 0)
            if reader.u8() & 1 == 0 { data.PrivateDriverDataSize = UInt32(reader.u8()) * 8 }
            check(nullStruct ? D3DKMTQueryAdapterInfo(nil) : D3DKMTQueryAdapterInfo(&data), "QueryAdapterInfo")
        case 4:
            var data = raw(&reader, D3DKMT_CREATEDEVICE.self)
            data.hAdapter = h()
            data.pCommandBuffer = buffer(&reader, limit: 0)
            data.pAllocationList = buffer(&reader, limit: 0)?.assumingMemoryBound(to: D3DDDI_ALLOCATIONLIST.self)
            data.pPatchLocationList = buffer(&reader, limit: 0)?
                .assumingMemoryBound(to: D3DDDI_PATCHLOCATIONLIST.self)
            check(nullStruct ? D3DKMTCreateDevice(nil) : D3DKMTCreateDevice(&data), "CreateDevice")
        case 5:
            var data = D3DKMT_DESTROYDEVICE(hDevice: h())
            // The harness's own device stays.
            if data.hDevice == cDevice.device { data.hDevice = 0 }
            check(nullStruct ? D3DKMTDestroyDevice(nil) : D3DKMTDestroyDevice(&data), "DestroyDevice")
        case 6, 7:
            var data = raw(&reader, D3DKMT_CREATEALLOCATION.self)
            data.hDevice = reader.u8() & 3 == 0 ? h() : cDevice.device
            data.hResource = reader.u8() & 3 == 0 ? h() : 0
            data.hPrivateRuntimeResourceHandle = nil
            data.pPrivateRuntimeData = UnsafeRawPointer(buffer(&reader))
            if reader.u8() & 1 == 0 { data.PrivateRuntimeDataSize = UInt32(reader.u8()) }
            data.pPrivateDriverData = UnsafeRawPointer(buffer(&reader))
            if reader.u8() & 1 == 0 { data.PrivateDriverDataSize = UInt32(reader.u8()) }
            if reader.u8() & 1 == 0 { data.NumAllocations = UInt32(reader.u8() % 6) }
            let count = Int(min(data.NumAllocations, 6))
            if reader.u8() & 15 == 0 {
                data.pAllocationInfo2 = nil
            } else if call == 7 {
                let infos = Arena.region().assumingMemoryBound(to: D3DDDI_ALLOCATIONINFO2.self)
                for index in 0..<count {
                    var info = raw(&reader, D3DDDI_ALLOCATIONINFO2.self)
                    let (pointer, size) = allocationData(&reader)
                    info.pPrivateDriverData = pointer
                    info.PrivateDriverDataSize = size
                    info.pSystemMem = reader.u8() & 7 == 0 ? UnsafeRawPointer(buffer(&reader)) : nil
                    infos[index] = info
                }
                data.pAllocationInfo2 = infos
            } else {
                let infos = Arena.region().assumingMemoryBound(to: D3DDDI_ALLOCATIONINFO.self)
                for index in 0..<count {
                    var info = raw(&reader, D3DDDI_ALLOCATIONINFO.self)
                    let (pointer, size) = allocationData(&reader)
                    info.pPrivateDriverData = pointer
                    info.PrivateDriverDataSize = size
                    info.pSystemMem = reader.u8() & 7 == 0 ? UnsafeRawPointer(buffer(&reader)) : nil
                    infos[index] = info
                }
                data.pAllocationInfo = infos
            }
            if call == 7 {
                check(nullStruct ? D3DKMTCreateAllocation2(nil) : D3DKMTCreateAllocation2(&data), "CreateAllocation2")
            } else {
                check(nullStruct ? D3DKMTCreateAllocation(nil) : D3DKMTCreateAllocation(&data), "CreateAllocation")
            }
        case 8:
            var data = raw(&reader, D3DKMT_DESTROYALLOCATION.self)
            data.hDevice = h()
            data.hResource = h()
            let count = Int(reader.u8() % 8)
            data.phAllocationList = UnsafePointer(handles(&reader, pool, count: count))
            data.AllocationCount = reader.u8() & 1 == 0 ? UInt32(count) : reader.u32()
            check(nullStruct ? D3DKMTDestroyAllocation(nil) : D3DKMTDestroyAllocation(&data), "DestroyAllocation")
        case 9:
            var data = raw(&reader, D3DKMT_DESTROYALLOCATION2.self)
            data.hDevice = h()
            data.hResource = h()
            let count = Int(reader.u8() % 8)
            data.phAllocationList = UnsafePointer(handles(&reader, pool, count: count))
            data.AllocationCount = reader.u8() & 1 == 0 ? UInt32(count) : reader.u32()
            check(nullStruct ? D3DKMTDestroyAllocation2(nil) : D3DKMTDestroyAllocation2(&data), "DestroyAllocation2")
        case 10:
            var data = raw(&reader, D3DKMT_LOCK2.self)
            data.hDevice = h()
            data.hAllocation = h()
            if reader.u8() & 1 == 0 { data.Flags.Value = 0 }
            check(nullStruct ? D3DKMTLock2(nil) : D3DKMTLock2(&data), "Lock2")
        case 11:
            var data = D3DKMT_UNLOCK2(hDevice: h(), hAllocation: h())
            check(nullStruct ? D3DKMTUnlock2(nil) : D3DKMTUnlock2(&data), "Unlock2")
        case 12:
            let count = UInt32(reader.u8() % 5)
            let objects = handles(&reader, pool, count: Int(count))
            let attributes = objectAttributes(&reader, pool)
            let out = reader.u8() & 15 == 0 ? nil : Arena.region().assumingMemoryBound(to: HANDLE?.self)
            let status = D3DKMTShareObjects(reader.u8() & 1 == 0 ? count : reader.u32(), objects, attributes,
                                            reader.u32(), out)
            check(status, "ShareObjects")
        case 13:
            var data = raw(&reader, D3DKMT_QUERYRESOURCEINFOFROMNTHANDLE.self)
            data.hDevice = reader.u8() & 3 == 0 ? h() : cDevice.device
            data.hNtHandle = ntHandle(&reader, pool)
            data.pPrivateRuntimeData = buffer(&reader)
            check(nullStruct ? D3DKMTQueryResourceInfoFromNtHandle(nil) : D3DKMTQueryResourceInfoFromNtHandle(&data),
                  "QueryResourceInfoFromNtHandle")
        case 14:
            var data = raw(&reader, D3DKMT_OPENRESOURCEFROMNTHANDLE.self)
            data.hDevice = reader.u8() & 3 == 0 ? h() : cDevice.device
            data.hNtHandle = ntHandle(&reader, pool)
            if reader.u8() & 1 == 0 { data.NumAllocations = UInt32(reader.u8() % 4) }
            if reader.u8() & 15 == 0 {
                data.pOpenAllocationInfo2 = nil
            } else {
                let infos = Arena.region().assumingMemoryBound(to: D3DDDI_OPENALLOCATIONINFO2.self)
                for index in 0..<Int(min(data.NumAllocations, 4)) {
                    var info = raw(&reader, D3DDDI_OPENALLOCATIONINFO2.self)
                    info.pPrivateDriverData = UnsafeRawPointer(buffer(&reader))
                    infos[index] = info
                }
                data.pOpenAllocationInfo2 = infos
            }
            if reader.u8() & 1 == 0 { data.PrivateRuntimeDataSize = UInt32(reader.u8()) }
            data.pPrivateRuntimeData = buffer(&reader)
            if reader.u8() & 1 == 0 { data.ResourcePrivateDriverDataSize = UInt32(reader.u8()) }
            data.pResourcePrivateDriverData = buffer(&reader)
            if reader.u8() & 1 == 0 { data.TotalPrivateDriverDataBufferSize = UInt32(reader.u8()) * 8 }
            data.pTotalPrivateDriverDataBuffer = buffer(&reader)
            if reader.u8() & 1 == 0 { data.KeyedMutexPrivateRuntimeDataSize = UInt32(reader.u8()) }
            data.pKeyedMutexPrivateRuntimeData = buffer(&reader)
            check(nullStruct ? D3DKMTOpenResourceFromNtHandle(nil) : D3DKMTOpenResourceFromNtHandle(&data),
                  "OpenResourceFromNtHandle")
        case 15:
            var data = raw(&reader, D3DKMT_OPENNTHANDLEFROMNAME.self)
            data.pObjAttrib = objectAttributes(&reader, pool)
            data.hNtHandle = nil
            check(nullStruct ? D3DKMTOpenNtHandleFromName(nil) : D3DKMTOpenNtHandleFromName(&data),
                  "OpenNtHandleFromName")
        case 16:
            var data = raw(&reader, D3DKMT_OPENSYNCOBJECTNTHANDLEFROMNAME.self)
            data.pObjAttrib = objectAttributes(&reader, pool)
            data.hNtHandle = nil
            check(nullStruct ? D3DKMTOpenSyncObjectNtHandleFromName(nil) : D3DKMTOpenSyncObjectNtHandleFromName(&data),
                  "OpenSyncObjectNtHandleFromName")
        case 17:
            var data = raw(&reader, D3DKMT_CREATEKEYEDMUTEX.self)
            check(nullStruct ? D3DKMTCreateKeyedMutex(nil) : D3DKMTCreateKeyedMutex(&data), "CreateKeyedMutex")
        case 18:
            var data = raw(&reader, D3DKMT_CREATEKEYEDMUTEX2.self)
            data.pPrivateRuntimeData = buffer(&reader)
            if reader.u8() & 1 == 0 { data.PrivateRuntimeDataSize = UInt32(reader.u8()) }
            check(nullStruct ? D3DKMTCreateKeyedMutex2(nil) : D3DKMTCreateKeyedMutex2(&data), "CreateKeyedMutex2")
        case 19:
            var data = raw(&reader, D3DKMT_OPENKEYEDMUTEX.self)
            data.hSharedHandle = h()
            check(nullStruct ? D3DKMTOpenKeyedMutex(nil) : D3DKMTOpenKeyedMutex(&data), "OpenKeyedMutex")
        case 20:
            var data = raw(&reader, D3DKMT_OPENKEYEDMUTEX2.self)
            data.hSharedHandle = h()
            data.pPrivateRuntimeData = buffer(&reader)
            check(nullStruct ? D3DKMTOpenKeyedMutex2(nil) : D3DKMTOpenKeyedMutex2(&data), "OpenKeyedMutex2")
        case 21:
            var data = raw(&reader, D3DKMT_OPENKEYEDMUTEXFROMNTHANDLE.self)
            data.hNtHandle = ntHandle(&reader, pool)
            data.pPrivateRuntimeData = buffer(&reader)
            if reader.u8() & 1 == 0 { data.PrivateRuntimeDataSize = UInt32(reader.u8()) }
            check(nullStruct ? D3DKMTOpenKeyedMutexFromNtHandle(nil) : D3DKMTOpenKeyedMutexFromNtHandle(&data),
                  "OpenKeyedMutexFromNtHandle")
        case 22:
            var data = D3DKMT_DESTROYKEYEDMUTEX(hKeyedMutex: h())
            check(nullStruct ? D3DKMTDestroyKeyedMutex(nil) : D3DKMTDestroyKeyedMutex(&data), "DestroyKeyedMutex")
        case 23:
            var data = raw(&reader, D3DKMT_ACQUIREKEYEDMUTEX.self)
            data.hKeyedMutex = h()
            if reader.u8() & 1 == 0 { data.Key = UInt64(reader.u8() % 4) }
            data.pTimeout = timeout(&reader)
            check(nullStruct ? D3DKMTAcquireKeyedMutex(nil) : D3DKMTAcquireKeyedMutex(&data), "AcquireKeyedMutex")
        case 24:
            var data = raw(&reader, D3DKMT_ACQUIREKEYEDMUTEX2.self)
            data.hKeyedMutex = h()
            if reader.u8() & 1 == 0 { data.Key = UInt64(reader.u8() % 4) }
            data.pTimeout = timeout(&reader)
            data.pPrivateRuntimeData = buffer(&reader)
            if reader.u8() & 1 == 0 { data.PrivateRuntimeDataSize = UInt32(reader.u8()) }
            check(nullStruct ? D3DKMTAcquireKeyedMutex2(nil) : D3DKMTAcquireKeyedMutex2(&data), "AcquireKeyedMutex2")
        case 25:
            var data = raw(&reader, D3DKMT_RELEASEKEYEDMUTEX.self)
            data.hKeyedMutex = h()
            if reader.u8() & 1 == 0 { data.Key = UInt64(reader.u8() % 4) }
            check(nullStruct ? D3DKMTReleaseKeyedMutex(nil) : D3DKMTReleaseKeyedMutex(&data), "ReleaseKeyedMutex")
        case 26:
            var data = raw(&reader, D3DKMT_RELEASEKEYEDMUTEX2.self)
            data.hKeyedMutex = h()
            if reader.u8() & 1 == 0 { data.Key = UInt64(reader.u8() % 4) }
            data.pPrivateRuntimeData = buffer(&reader)
            if reader.u8() & 1 == 0 { data.PrivateRuntimeDataSize = UInt32(reader.u8()) }
            check(nullStruct ? D3DKMTReleaseKeyedMutex2(nil) : D3DKMTReleaseKeyedMutex2(&data), "ReleaseKeyedMutex2")
        case 27:
            var data = raw(&reader, D3DKMT_CREATESYNCHRONIZATIONOBJECT.self)
            data.hDevice = reader.u8() & 3 == 0 ? h() : cDevice.device
            check(nullStruct ? D3DKMTCreateSynchronizationObject(nil) : D3DKMTCreateSynchronizationObject(&data),
                  "CreateSynchronizationObject")
        case 28:
            var data = raw(&reader, D3DKMT_CREATESYNCHRONIZATIONOBJECT2.self)
            data.hDevice = reader.u8() & 3 == 0 ? h() : cDevice.device
            if reader.u8() & 1 == 0 {
                data.Info.Type = D3DDDI_SYNCHRONIZATIONOBJECT_TYPE(rawValue: UInt32(reader.u8() % 8))
            }
            check(nullStruct ? D3DKMTCreateSynchronizationObject2(nil) : D3DKMTCreateSynchronizationObject2(&data),
                  "CreateSynchronizationObject2")
        case 29:
            var data = raw(&reader, D3DKMT_OPENSYNCOBJECTFROMNTHANDLE.self)
            data.hNtHandle = ntHandle(&reader, pool)
            check(nullStruct ? D3DKMTOpenSyncObjectFromNtHandle(nil) : D3DKMTOpenSyncObjectFromNtHandle(&data),
                  "OpenSyncObjectFromNtHandle")
        case 30:
            var data = raw(&reader, D3DKMT_OPENSYNCOBJECTFROMNTHANDLE2.self)
            data.hNtHandle = ntHandle(&reader, pool)
            data.hDevice = reader.u8() & 3 == 0 ? h() : cDevice.device
            check(nullStruct ? D3DKMTOpenSyncObjectFromNtHandle2(nil) : D3DKMTOpenSyncObjectFromNtHandle2(&data),
                  "OpenSyncObjectFromNtHandle2")
        case 31:
            var data = D3DKMT_DESTROYSYNCHRONIZATIONOBJECT(hSyncObject: h())
            check(nullStruct ? D3DKMTDestroySynchronizationObject(nil) : D3DKMTDestroySynchronizationObject(&data),
                  "DestroySynchronizationObject")
        case 32:
            var data = raw(&reader, D3DKMT_SIGNALSYNCHRONIZATIONOBJECTFROMCPU.self)
            data.hDevice = reader.u8() & 3 == 0 ? h() : cDevice.device
            let count = Int(reader.u8() % 4)
            data.ObjectHandleArray = UnsafePointer(handles(&reader, pool, count: count))
            data.FenceValueArray = UnsafePointer(values(&reader, count: count))
            data.ObjectCount = reader.u8() & 1 == 0 ? UInt32(count) : reader.u32()
            check(nullStruct ? D3DKMTSignalSynchronizationObjectFromCpu(nil)
                             : D3DKMTSignalSynchronizationObjectFromCpu(&data), "SignalSynchronizationObjectFromCpu")
        case 33:
            var data = raw(&reader, D3DKMT_WAITFORSYNCHRONIZATIONOBJECTFROMCPU.self)
            data.hDevice = reader.u8() & 3 == 0 ? h() : cDevice.device
            let count = Int(reader.u8() % 4)
            data.ObjectHandleArray = UnsafePointer(handles(&reader, pool, count: count))
            data.FenceValueArray = UnsafePointer(values(&reader, count: count))
            data.ObjectCount = reader.u8() & 1 == 0 ? UInt32(count) : reader.u32()
            // Never a blocking wait: it could wait for ever.
            let event = ntHandle(&reader, pool)
            data.hAsyncEvent = event ?? HANDLE(bitPattern: Int(fixtures.eventfd))
            check(D3DKMTWaitForSynchronizationObjectFromCpu(&data), "WaitForSynchronizationObjectFromCpu")
        case 34:
            var data = raw(&reader, D3DKMT_ESCAPE.self)
            data.hAdapter = h()
            data.hDevice = h()
            data.hContext = h()
            data.pPrivateDriverData = buffer(&reader)
            if reader.u8() & 1 == 0 { data.PrivateDriverDataSize = UInt32(reader.u8()) }
            if reader.u8() & 1 == 0 { data.Type = D3DKMT_ESCAPETYPE(rawValue: Int32(bitPattern: 0x8000_0000)) }
            check(nullStruct ? D3DKMTEscape(nil) : D3DKMTEscape(&data), "Escape")
        case 35:
            let size = UInt32(reader.u8())
            let buffer = reader.u8() & 7 == 0 ? nil : Arena.region().assumingMemoryBound(to: CChar.self)
            _ = D3DKMTLinuxGetLastFailure(buffer, size)
        case 36:
            let out = reader.u8() & 7 == 0 ? nil : Arena.region().assumingMemoryBound(to: Int32.self)
            check(D3DKMTLinuxExportAllocationDmaBuf(h(), h(), out), "LinuxExportAllocationDmaBuf")
        case 37:
            let out = reader.u8() & 7 == 0 ? nil
                : Arena.region().assumingMemoryBound(to: D3DKMT_LINUX_ALLOCATION_DESC.self)
            check(D3DKMTLinuxQueryAllocationDesc(h(), h(), out), "LinuxQueryAllocationDesc")
        case 38:
            let out = reader.u8() & 7 == 0 ? nil : Arena.region().assumingMemoryBound(to: UInt64.self)
            check(D3DKMTLinuxQueryAllocationSize(h(), h(), out), "LinuxQueryAllocationSize")
        case 39:
            let out = reader.u8() & 7 == 0 ? nil : Arena.region().assumingMemoryBound(to: Int32.self)
            check(D3DKMTLinuxExportSyncObjectFd(h(), out), "LinuxExportSyncObjectFd")
        case 40:
            let out = reader.u8() & 7 == 0 ? nil : Arena.region().assumingMemoryBound(to: Int32.self)
            check(D3DKMTLinuxExportSyncFile(h(), reader.u64(), out), "LinuxExportSyncFile")
        case 41:
            let out = reader.u8() & 7 == 0 ? nil : Arena.region().assumingMemoryBound(to: UInt32.self)
            let fd = Int32(Int(bitPattern: ntHandle(&reader, pool)))
            check(D3DKMTLinuxImportSyncObjectFd(h(), fd, reader.u32() % 4, out), "LinuxImportSyncObjectFd")
        case 42:
            let out = reader.u8() & 7 == 0 ? nil : Arena.region().assumingMemoryBound(to: Int32.self)
            check(D3DKMTLinuxExportKeyedMutexTimelineFd(h(), out), "LinuxExportKeyedMutexTimelineFd")
        // D3DKMT_1.1: global handles.
        case 43:
            var data = raw(&reader, D3DKMT_QUERYRESOURCEINFO.self)
            data.hDevice = reader.u8() & 3 == 0 ? h() : cDevice.device
            data.hGlobalShare = h()
            data.pPrivateRuntimeData = buffer(&reader)
            check(nullStruct ? D3DKMTQueryResourceInfo(nil) : D3DKMTQueryResourceInfo(&data), "QueryResourceInfo")
        case 44, 45:
            var data = raw(&reader, D3DKMT_OPENRESOURCE.self)
            data.hDevice = reader.u8() & 3 == 0 ? h() : cDevice.device
            data.hGlobalShare = h()
            if reader.u8() & 1 == 0 { data.NumAllocations = UInt32(reader.u8() % 4) }
            if reader.u8() & 15 == 0 {
                data.pOpenAllocationInfo2 = nil
            } else if call == 44 {
                let infos = Arena.region().assumingMemoryBound(to: D3DDDI_OPENALLOCATIONINFO.self)
                for index in 0..<Int(min(data.NumAllocations, 4)) {
                    var info = raw(&reader, D3DDDI_OPENALLOCATIONINFO.self)
                    info.pPrivateDriverData = UnsafeRawPointer(buffer(&reader))
                    infos[index] = info
                }
                data.pOpenAllocationInfo = infos
            } else {
                let infos = Arena.region().assumingMemoryBound(to: D3DDDI_OPENALLOCATIONINFO2.self)
                for index in 0..<Int(min(data.NumAllocations, 4)) {
                    var info = raw(&reader, D3DDDI_OPENALLOCATIONINFO2.self)
                    info.pPrivateDriverData = UnsafeRawPointer(buffer(&reader))
                    infos[index] = info
                }
                data.pOpenAllocationInfo2 = infos
            }
            if reader.u8() & 1 == 0 { data.PrivateRuntimeDataSize = UInt32(reader.u8()) }
            data.pPrivateRuntimeData = buffer(&reader)
            if reader.u8() & 1 == 0 { data.ResourcePrivateDriverDataSize = UInt32(reader.u8()) }
            data.pResourcePrivateDriverData = buffer(&reader)
            if reader.u8() & 1 == 0 { data.TotalPrivateDriverDataBufferSize = UInt32(reader.u8()) * 8 }
            data.pTotalPrivateDriverDataBuffer = buffer(&reader)
            if call == 44 {
                check(nullStruct ? D3DKMTOpenResource(nil) : D3DKMTOpenResource(&data), "OpenResource")
            } else {
                check(nullStruct ? D3DKMTOpenResource2(nil) : D3DKMTOpenResource2(&data), "OpenResource2")
            }
        case 46:
            var data = raw(&reader, D3DKMT_OPENSYNCHRONIZATIONOBJECT.self)
            data.hSharedHandle = h()
            check(nullStruct ? D3DKMTOpenSynchronizationObject(nil) : D3DKMTOpenSynchronizationObject(&data),
                  "OpenSynchronizationObject")
        // D3DKMT_1.1: layouts and GPU fences.
        case 47:
            let out = reader.u8() & 7 == 0 ? nil
                : Arena.region().assumingMemoryBound(to: D3DKMT_LINUX_ALLOCATION_DESC2.self)
            check(D3DKMTLinuxQueryAllocationDesc2(h(), h(), out), "LinuxQueryAllocationDesc2")
        case 48:
            let fd = Int32(Int(bitPattern: ntHandle(&reader, pool)))
            check(D3DKMTLinuxSignalSyncObjectFromSyncFile(h(), reader.u64(), fd), "LinuxSignalSyncObjectFromSyncFile")
        case 49:
            let fd = Int32(Int(bitPattern: ntHandle(&reader, pool)))
            check(D3DKMTLinuxSignalKeyedMutexFromSyncFile(h(), h(), reader.u64(), fd),
                  "LinuxSignalKeyedMutexFromSyncFile")
        default:
            let out = reader.u8() & 7 == 0 ? nil : Arena.region().assumingMemoryBound(to: Int32.self)
            check(D3DKMTLinuxExportKeyedMutexSyncFile(h(), h(), reader.u64(), out), "LinuxExportKeyedMutexSyncFile")
        }
    }
}
