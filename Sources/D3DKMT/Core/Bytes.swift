/// Writes little-endian integers and blobs into a byte array (the share package's encoder). The
/// array is made zero-filled at `capacity` up front and written in place: a writer sized exactly
/// (as ``SharePackage/encoded()`` sizes it) hands its array over without a copy; one written past
/// its capacity grows.
struct ByteWriter {
    private var storage: [UInt8]
    private var count = 0

    init(capacity: Int = 0) { storage = [UInt8](repeating: 0, count: capacity) }

    /// What was written.
    var bytes: [UInt8] { count == storage.count ? storage : Array(storage[..<count]) }

    private mutating func reserve(_ extra: Int) {
        guard count + extra > storage.count else { return }
        storage.append(contentsOf: repeatElement(0, count: max(count + extra - storage.count, storage.count)))
    }

    mutating func append<T: FixedWidthInteger>(_ value: T) {
        let size = MemoryLayout<T>.size
        reserve(size)
        let at = count
        storage.withUnsafeMutableBytes { $0.storeBytes(of: value.littleEndian, toByteOffset: at, as: T.self) }
        count += size
    }

    mutating func append(_ blob: [UInt8]) {
        guard !blob.isEmpty else { return }
        reserve(blob.count)
        let at = count
        storage.withUnsafeMutableBytes { target in
            blob.withUnsafeBytes { source in
                target.baseAddress!.advanced(by: at).copyMemory(from: source.baseAddress!, byteCount: source.count)
            }
        }
        count += blob.count
    }

    /// `count` zero bytes (the storage is zero-filled: nothing is written).
    mutating func appendZeros(_ zeros: Int) {
        reserve(zeros)
        count += zeros
    }
}

/// Reads little-endian integers and blobs from untrusted bytes; every read is bounds-checked and a
/// short read returns nil instead of trapping.
struct ByteReader {
    private let bytes: UnsafeRawBufferPointer
    private(set) var offset = 0

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    var remaining: Int { bytes.count - offset }

    mutating func read<T: FixedWidthInteger>(_: T.Type = T.self) -> T? {
        let size = MemoryLayout<T>.size
        guard remaining >= size else { return nil }
        defer { offset += size }
        return T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
    }

    mutating func readBlob(_ count: Int) -> [UInt8]? {
        guard count >= 0, remaining >= count else { return nil }
        defer { offset += count }
        return Array(bytes[offset..<(offset + count)])
    }

    mutating func skip(_ count: Int) -> Bool {
        guard count >= 0, remaining >= count else { return false }
        offset += count
        return true
    }
}
