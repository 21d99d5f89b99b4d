// Seed inputs: real shared handles made through the public API, read back byte for byte (the
// datagram and what each descriptor is), written in the fuzzer's input layout. A seed opens
// everywhere the harness tries it; the fuzzer mutates from there.
//
//   .build-fuzz/debug/kmt-fuzz --generate-corpus Fuzz/corpus

@testable import D3DKMT
import CFuzzSupport
#if canImport(Glibc)
import Glibc
#endif

/// What a live handle holds, in the fuzzer's input layout; nil when it does not fit the layout
/// (more than 3 descriptors, a descriptor other than a memfd).
func seedInput(_ handle: borrowing SharedHandle, releaseDataUnits: UInt8 = 0, tamper: Bool = false) -> [UInt8]? {
    var buffer = [UInt8](repeating: 0, count: SharePackage.maximumSize)
    var fds = [Int32](repeating: -1, count: 8)
    var count: Int32 = 0
    let length = buffer.withUnsafeMutableBytes { raw in
        fuzz_peek(handle.rawValue, raw.baseAddress, raw.count, &fds, Int32(fds.count), &count)
    }
    defer { for fd in fds.prefix(Int(count)) { close(fd) } }
    guard length >= 0, length <= buffer.count, count <= 3 else { return nil }

    var prefix = [UInt8](repeating: 0, count: FuzzInput.prefixSize)
    prefix[0] = UInt8(count) | (tamper ? 0x10 : 0)  // seals: SHRINK|GROW (the library adds SEAL too)
    prefix[3] = releaseDataUnits
    var sizeIndex: Int?
    for (index, fd) in fds.prefix(Int(count)).enumerated() {
        guard let size = try? Kernel.size(BorrowedDescriptor(unowned: fd)),
              let table = FuzzInput.memfdSizes.firstIndex(of: size) else {
            return nil
        }
        guard sizeIndex == nil || sizeIndex == table else { return nil }  // one size for all memfds
        sizeIndex = table
        var header = [UInt8](repeating: 0, count: 40)
        guard pread(fd, &header, 40, 0) == 40 else { return nil }
        let magic = header[0..<4].reversed().reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        switch magic {
        case KeyedMutexState.magic:
            prefix[1] |= 3 << (2 * index)
            prefix.replaceSubrange(4..<36, with: header[8..<40])
            prefix.replaceSubrange(68..<100, with: header[8..<40])
        case FenceState.magic:
            prefix[1] |= 3 << (2 * index)
            prefix[2] |= 8 << index
            prefix.replaceSubrange(36..<68, with: header[8..<40])
            prefix.replaceSubrange(100..<132, with: header[8..<40])
        default:
            break  // an allocation's memfd
        }
    }
    prefix[2] |= UInt8(sizeIndex ?? 0)
    return prefix + buffer[0..<length]
}

func generateCorpus(into directory: String) {
    mkdir(directory, 0o755)
    var written = 0
    func write(_ name: String, _ bytes: [UInt8]?) {
        guard let bytes else { say("seed \(name) does not fit the input layout; skipped"); return }
        let path = directory + "/" + name
        guard let file = fopen(path, "wb") else { fail("cannot write \(path)") }
        _ = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
        fclose(file)
        written += 1
    }
    func make(_ name: String, _ body: () throws(NTError) -> [UInt8]?) {
        do { write(name, try body()) } catch { fail("seed \(name): \(error)") }
    }
    let device = softwareDevice
    let page = AllocationDescriptor(size: 4096)

    make("resource-1") { () throws(NTError) in
        let resource = try device.createResource(allocations: [(.new(page), [0xEE])], runtimeData: [1, 2, 3],
                                                 driverData: [4, 5])
        return seedInput(try resource.share())
    }
    make("resource-3") { () throws(NTError) in
        let resource = try device.createResource(
            allocations: [(.new(page), []),
                          (.new(AllocationDescriptor(size: 4096, width: 32, height: 32, stride: 128,
                                                     fourcc: 0x3432_5258)), [1, 2]),
                          (.new(page), Array(repeating: 7, count: 40))],
            runtimeData: Array(repeating: 0x42, count: 100), driverData: [])
        return seedInput(try resource.share(access: SharedAccess.read))
    }
    make("resource-keyed-mutex-fence") { () throws(NTError) in
        let resource = try device.createResource(allocations: [(.new(page), [])], runtimeData: [9])
        let mutex = try KeyedMutex.create(initialKey: 0, runtimeData: Array(repeating: 1, count: 300))
        let fence = try device.createSyncObject(.monitoredFence, initialValue: 5)
        return seedInput(try resource.share(keyedMutex: mutex, syncObject: fence), releaseDataUnits: 1)
    }
    // The same with tampering on (rewriting the pages with what they already hold, until the
    // fuzzer changes that) and a release of 8 KiB, more than the mutex's 300 bytes.
    make("resource-keyed-mutex-fence-tampered") { () throws(NTError) in
        let resource = try device.createResource(allocations: [(.new(page), [])], runtimeData: [9])
        let mutex = try KeyedMutex.create(initialKey: 0, runtimeData: Array(repeating: 1, count: 300))
        let fence = try device.createSyncObject(.monitoredFence, initialValue: 5)
        return seedInput(try resource.share(keyedMutex: mutex, syncObject: fence), releaseDataUnits: 32, tamper: true)
    }
    make("monitored-fence") { () throws(NTError) in
        seedInput(try device.createSyncObject(.monitoredFence, initialValue: 3).share())
    }
    make("fence") { () throws(NTError) in
        seedInput(try device.createSyncObject(.fence, initialValue: 0).share(access: SyncObjectAccess.wait))
    }
    // Not packages: an empty input, and a header alone.
    write("empty", [])
    make("header-only") { () throws(NTError) in
        guard let bytes = seedInput(try device.createSyncObject(.fence).share()) else { return nil }
        return Array(bytes.prefix(FuzzInput.prefixSize + SharePackage.headerSize))
    }
    say("wrote \(written) seeds into \(directory)")
}
