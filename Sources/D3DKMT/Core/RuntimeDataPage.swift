import Synchronization

/// A shared resource's runtime private data, in a ``SharedPage`` that every process holding the
/// resource maps, so that `D3DKMTEscape(D3DKMT_ESCAPE_UPDATE_RESOURCE_WINE)` replaces it for the
/// local resource, for every process that opened it, and for every later open of handles shared
/// before the update (Wine keeps it in its server's resource object for the same reason).
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
/// Readers copy the data and retry when the sequence moved; writers take the sequence from even to
/// odd with a compare-and-swap, copy, and release it to the next even value. Any holder of the
/// memfd can write to it; the library never trusts what it reads beyond its bounds (a size past
/// the capacity is clamped), and a sequence that stays odd (a writer that died mid-copy, or a
/// hostile holder) delays a reader or writer by at most ``patience`` before it goes ahead.
struct RuntimeDataPage: @unchecked Sendable {
    static let magic: UInt32 = 0x544D_524B  // "KRMT"
    static let version: UInt32 = 1
    static let dataOffset = 64
    static let pageSize = 128 * 1024
    /// The most runtime private data a shared resource carries.
    static let maximumDataSize = pageSize - dataOffset
    /// How long a reader or writer waits for another writer (nanoseconds).
    static let patience: Int64 = 100_000_000

    let page: SharedPage

    private var sequence: UnsafeMutablePointer<Atomic<UInt32>> { page.atomic32(8) }
    private var size: UnsafeMutablePointer<Atomic<UInt32>> { page.atomic32(12) }

    /// A new page holding `data`.
    ///
    /// - Throws: `STATUS_INVALID_PARAMETER` when `data` is larger than ``maximumDataSize``; the
    ///   kernel's status when the memfd cannot be made.
    static func create(_ data: [UInt8]) throws(NTError) -> RuntimeDataPage {
        try checkSize(data.count)
        let made = RuntimeDataPage(page: try SharedPage(size: pageSize, magic: magic, version: version,
                                                        name: "d3dkmt-runtime-data"))
        made.store(data)
        return made
    }

    /// Maps a page another process shared.
    ///
    /// - Throws: `STATUS_INVALID_PARAMETER` when it is not a runtime data page of this layout.
    static func open(_ descriptor: consuming FileDescriptor) throws(NTError) -> RuntimeDataPage {
        let page = try SharedPage(opening: descriptor, minimumSize: pageSize, magic: magic, version: version)
        return RuntimeDataPage(page: page)
    }

    static func checkSize(_ count: Int) throws(NTError) {
        guard count <= maximumDataSize else {
            throw NTError(.invalidParameter, "runtime private data of \(count) bytes; a shared resource holds at most \(maximumDataSize)")
        }
    }

    /// The current data: a consistent copy of the last complete write.
    func load() -> [UInt8] {
        let deadline = Deadline.after(nanoseconds: Self.patience)
        var attempts = 0
        while true {
            let before = sequence.pointee.load(ordering: .acquiring)
            let count = min(Int(size.pointee.load(ordering: .relaxed)), Self.maximumDataSize)
            let copy = Array(UnsafeRawBufferPointer(start: page.base + Self.dataOffset, count: count))
            atomicMemoryFence(ordering: .acquiring)
            let after = sequence.pointee.load(ordering: .relaxed)
            attempts += 1
            if (before == after && before & 1 == 0) || (attempts % 64 == 0 && Deadline.now >= deadline) { return copy }
            Kernel.yield()
        }
    }

    /// Replaces the data.
    ///
    /// - Precondition: `data.count <= maximumDataSize` (``checkSize(_:)``).
    func store(_ data: [UInt8]) {
        precondition(data.count <= Self.maximumDataSize)
        let deadline = Deadline.after(nanoseconds: Self.patience)
        var current = sequence.pointee.load(ordering: .relaxed)
        var attempts = 0
        while true {
            if current & 1 == 0 || (attempts % 64 == 63 && Deadline.now >= deadline) {
                let (exchanged, original) = sequence.pointee.compareExchange(
                    expected: current, desired: current | 1, ordering: .acquiring)
                if exchanged { break }
                current = original
            } else {
                Kernel.yield()
                current = sequence.pointee.load(ordering: .relaxed)
            }
            attempts += 1
        }
        data.withUnsafeBytes { bytes in
            if let base = bytes.baseAddress { (page.base + Self.dataOffset).copyMemory(from: base, byteCount: bytes.count) }
        }
        size.pointee.store(UInt32(data.count), ordering: .relaxed)
        sequence.pointee.store((current | 1) &+ 1, ordering: .releasing)
    }
}
