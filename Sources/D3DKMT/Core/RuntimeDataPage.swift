import Synchronization

/// A shared resource's runtime private data, in a sealed memfd that travels in every handle of the
/// resource, so that `D3DKMTEscape(D3DKMT_ESCAPE_UPDATE_RESOURCE_WINE)` replaces it for the local
/// resource, for every process that opened it, and for every later open of handles shared before
/// the update (Wine keeps it in its server's resource object for the same reason).
///
/// Layout (little-endian, version 1):
///
/// ```
///  0 u32 magic 'KRMT'   4 u32 version
///  8 u32 sequence: even when stable, odd while a writer is copying (a seqlock)
/// 12 u32 data size     16..63 reserved
/// 64 runtime data (up to ``maximumDataSize`` bytes; the memfd is sealed at 128 KiB, and pages
///    never written cost no memory)
/// ```
///
/// Reads cost no mapping: `pread` of the header, the data, and the sequence again, retried when
/// the sequence moved (share and open read it; updates are rare); an empty page at a stable
/// sequence is one `pread`. A writer maps the page on its
/// first update, takes the sequence from even to odd with a compare-and-swap, copies, and releases
/// it to the next even value. Any holder of the memfd can write to it; the library never trusts
/// what it reads beyond its bounds (a size past the capacity is clamped), and a sequence that
/// stays odd (a writer that died mid-copy, or a hostile holder) delays a reader or writer by at
/// most ``patience`` before it goes ahead.
///
/// `~Copyable`: a resource holds its page inline (no object of its own), and the page owns its
/// memfd and mapping.
struct RuntimeDataPage: ~Copyable, Sendable {
    static let magic: UInt32 = 0x544D_524B  // "KRMT"
    static let version: UInt32 = 1
    static let headerSize = 16
    static let dataOffset = 64
    static let pageSize = 128 * 1024
    /// The most runtime private data a shared resource carries.
    static let maximumDataSize = pageSize - dataOffset
    /// How long a reader or writer waits for another writer (nanoseconds).
    static let patience: Int64 = 100_000_000

    /// The memfd; it travels in the resource's share packages.
    let descriptor: FileDescriptor
    /// The writable mapping, made by the first ``store(_:)`` (most pages are never written): set
    /// once, released with the page.
    private let mapping = Atomic<Unmanaged<SharedPage>?>(nil)

    private init(_ descriptor: consuming FileDescriptor) {
        self.descriptor = descriptor
    }

    deinit { mapping.load(ordering: .acquiring)?.release() }

    /// A new page holding `data`: `memfd_create`, `ftruncate`, one `pwrite` of the header and the
    /// data (from the stack when they are small), `F_ADD_SEALS`.
    ///
    /// - Throws: `STATUS_INVALID_PARAMETER` when `data` is larger than ``maximumDataSize``; the
    ///   kernel's status when the memfd cannot be made.
    static func create(_ data: [UInt8]) throws(NTError) -> RuntimeDataPage {
        try checkSize(data.count)
        do throws(Errno) {
            let memory = try Kernel.memfd(name: "d3dkmt-runtime-data")
            try Kernel.truncate(memory.borrowed, to: UInt64(pageSize))
            try withUnsafeTemporaryAllocation(byteCount: dataOffset + data.count, alignment: 8) {
                (bytes) throws(Errno) in
                var header = ByteWriter(bytes)
                header.append(magic)
                header.append(version)
                header.append(UInt32(0))  // sequence: stable
                header.append(UInt32(data.count))
                header.appendZeros(dataOffset - headerSize)
                header.append(data)
                try Kernel.writeAt(memory.borrowed, UnsafeRawBufferPointer(bytes), at: 0)
            }
            try Kernel.addSeals(memory.borrowed, Kernel.sealShrink | Kernel.sealGrow | Kernel.sealSeal)
            return RuntimeDataPage(memory)
        } catch {
            throw error.nt("creating a runtime data page")
        }
    }

    /// Takes a page another process shared: a memfd sealed against shrinking, of this size.
    ///
    /// - Throws: `STATUS_INVALID_PARAMETER` for anything else.
    static func open(_ descriptor: consuming FileDescriptor) throws(NTError) -> RuntimeDataPage {
        guard try BufferKind(classifying: descriptor.rawValue) == .memfd else {
            throw NTError(.invalidParameter, "a runtime data page is not a memfd")
        }
        let size: UInt64
        do { size = try Kernel.size(descriptor.borrowed) } catch { throw error.nt("sizing a runtime data page") }
        guard size == UInt64(pageSize) else { throw NTError(.invalidParameter, "a runtime data page of \(size) bytes") }
        return RuntimeDataPage(descriptor)
    }

    static func checkSize(_ count: Int) throws(NTError) {
        guard count <= maximumDataSize else {
            throw NTError(.invalidParameter, "runtime private data of \(count) bytes; "
                                             + "a shared resource holds at most \(maximumDataSize)")
        }
    }

    /// What `page` holds (``load()``), or nil when there is no page.
    static func load(_ page: borrowing RuntimeDataPage?) throws(NTError) -> [UInt8]? {
        switch page {
        case .some(let page): return try page.load()
        case .none: return nil
        }
    }

    /// The current data: a consistent copy of the last complete write.
    ///
    /// - Throws: `STATUS_INVALID_PARAMETER` when the page does not have this layout (a peer
    ///   rewrote its header); the kernel's status when it cannot be read.
    borrowing func load() throws(NTError) -> [UInt8] {
        let fd = descriptor.borrowed
        var deadline: Deadline?  // taken at the first retry: most reads need none
        var attempts = 0
        while true {
            var header = (UInt32(0), UInt32(0), UInt32(0), UInt32(0))
            var again: UInt32 = 0
            var data: [UInt8] = []
            do throws(Errno) {
                let read = try withUnsafeMutableBytes(of: &header) { (raw) throws(Errno) in
                    try Kernel.readAt(fd, into: raw, at: 0)
                }
                let count = min(Int(UInt32(littleEndian: header.3)), Self.maximumDataSize)
                if read == Self.headerSize, count == 0, UInt32(littleEndian: header.2) & 1 == 0 {
                    // Empty at an even sequence: no data can be torn, so the header alone is the
                    // answer (the one read of an open whose runtime data is still empty).
                    again = header.2
                } else if read == Self.headerSize {
                    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(count, 1), alignment: 8)
                    defer { buffer.deallocate() }
                    let got = try Kernel.readAt(fd, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<count]),
                                                at: Self.dataOffset)
                    data = Array(UnsafeRawBufferPointer(rebasing: buffer[0..<got]))
                    _ = try withUnsafeMutableBytes(of: &again) { (raw) throws(Errno) in
                        try Kernel.readAt(fd, into: raw, at: 8)
                    }
                }
            } catch {
                throw error.nt("reading a runtime data page")
            }
            guard UInt32(littleEndian: header.0) == Self.magic, UInt32(littleEndian: header.1) == Self.version else {
                throw NTError(.invalidParameter, "a runtime data page has the wrong magic or version")
            }
            let sequence = UInt32(littleEndian: header.2)
            if sequence == UInt32(littleEndian: again) && sequence & 1 == 0 { return data }
            attempts += 1
            let giveUp = deadline ?? .after(nanoseconds: Self.patience)
            deadline = giveUp
            if attempts % 64 == 0 && Deadline.now >= giveUp { return data }
            Kernel.yield()
        }
    }

    /// Replaces the data.
    ///
    /// - Precondition: `data.count <= maximumDataSize` (``checkSize(_:)``).
    /// - Throws: the kernel's status when the page cannot be mapped.
    borrowing func store(_ data: [UInt8]) throws(NTError) {
        precondition(data.count <= Self.maximumDataSize)
        Self.store(data, into: try writableMapping())
    }

    /// The writable mapping, made the first time (two threads storing at once may both map the
    /// page; the one that loses the race unmaps its own).
    private borrowing func writableMapping() throws(NTError) -> SharedPage {
        if let made = mapping.load(ordering: .acquiring) { return made.takeUnretainedValue() }
        let copy: FileDescriptor
        do throws(Errno) {
            copy = try descriptor.duplicate()
        } catch {
            throw error.nt("mapping a runtime data page")
        }
        let new = Unmanaged.passRetained(try SharedPage(opening: copy, minimumSize: Self.pageSize, magic: Self.magic,
                                                        version: Self.version))
        let (stored, existing) = mapping.compareExchange(expected: nil, desired: new, ordering: .acquiringAndReleasing)
        guard stored else {
            new.release()
            return existing!.takeUnretainedValue()
        }
        return new.takeUnretainedValue()
    }

    private static func store(_ data: [UInt8], into page: SharedPage) {
        let sequence = page.atomic32(8), size = page.atomic32(12)
        let deadline = Deadline.after(nanoseconds: patience)
        var current = sequence.pointee.load(ordering: .relaxed)
        var attempts = 0
        while true {
            if current & 1 == 0 || (attempts % 64 == 63 && Deadline.now >= deadline) {
                let (exchanged, original) = sequence.pointee.compareExchange(expected: current, desired: current | 1,
                                                                             ordering: .acquiring)
                if exchanged { break }
                current = original
            } else {
                Kernel.yield()
                current = sequence.pointee.load(ordering: .relaxed)
            }
            attempts += 1
        }
        data.withUnsafeBytes { bytes in
            if let base = bytes.baseAddress { (page.base + dataOffset).copyMemory(from: base, byteCount: bytes.count) }
        }
        size.pointee.store(UInt32(data.count), ordering: .relaxed)
        sequence.pointee.store((current | 1) &+ 1, ordering: .releasing)
    }
}
