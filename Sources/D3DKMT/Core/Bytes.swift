/// Writes little-endian integers and blobs into memory the caller owns: the share package's
/// encoder writes straight into the buffer it sends, with no array in between. Writing past the
/// buffer's end traps.
struct ByteWriter {
    private let buffer: UnsafeMutableRawBufferPointer
    /// Bytes written so far.
    private(set) var count = 0

    /// A writer at the start of `buffer`.
    init(_ buffer: UnsafeMutableRawBufferPointer) { self.buffer = buffer }

    /// A new array of exactly `count` bytes, every one of them written by `body`.
    static func bytes(count: Int, _ body: (inout ByteWriter) -> Void) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: count) { storage, initialized in
            var writer = ByteWriter(UnsafeMutableRawBufferPointer(storage))
            body(&writer)
            precondition(writer.count == count, "wrote \(writer.count) of \(count) bytes")
            initialized = count
        }
    }

    private mutating func advance(_ size: Int) -> UnsafeMutableRawPointer {
        precondition(size <= buffer.count - count, "ByteWriter: write past the end")
        defer { count += size }
        return buffer.baseAddress! + count
    }

    @inline(__always)
    mutating func append<T: FixedWidthInteger>(_ value: T) {
        advance(MemoryLayout<T>.size).storeBytes(of: value.littleEndian, as: T.self)
    }

    /// The next `count` bytes, zeroed, as a ``FixedFields`` to fill at fixed offsets (one bounds
    /// check for a whole header or record).
    @inline(__always)
    mutating func appendFields(_ count: Int) -> FixedFields {
        let start = advance(count)
        start.initializeMemory(as: UInt8.self, repeating: 0, count: count)
        return FixedFields(bytes: UnsafeMutableRawBufferPointer(start: start, count: count))
    }

    /// Bytes whose length was checked once: little-endian integers stored at offsets inside them.
    struct FixedFields {
        let bytes: UnsafeMutableRawBufferPointer

        /// Stores `value` at `offset`, which with its size must lie inside the checked bytes.
        @inline(__always)
        func store<T: FixedWidthInteger>(_ value: T, at offset: Int) {
            precondition(offset >= 0 && offset + MemoryLayout<T>.size <= bytes.count, "field outside its part")
            bytes.storeBytes(of: value.littleEndian, toByteOffset: offset, as: T.self)
        }
    }

    mutating func append(_ blob: some Collection<UInt8>) {
        let count = blob.count
        guard count > 0 else { return }
        UnsafeMutableRawBufferPointer(start: advance(count), count: count).copyBytes(from: blob)
    }

    /// `count` zero bytes.
    mutating func appendZeros(_ zeros: Int) {
        advance(zeros).initializeMemory(as: UInt8.self, repeating: 0, count: zeros)
    }
}

/// Reads little-endian integers and blobs from untrusted bytes; every read is bounds-checked and a
/// short read returns nil instead of trapping.
struct ByteReader {
    private let bytes: UnsafeRawBufferPointer
    private(set) var offset = 0

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    var remaining: Int { bytes.count - offset }

    @inline(__always)
    mutating func read<T: FixedWidthInteger>(_: T.Type = T.self) -> T? {
        let size = MemoryLayout<T>.size
        guard remaining >= size else { return nil }
        defer { offset += size }
        return T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
    }

    /// The next `count` bytes as a ``FixedFields`` to read at fixed offsets (one bounds check for a
    /// whole header or record), or nil when fewer remain.
    @inline(__always)
    mutating func readFields(_ count: Int) -> FixedFields? {
        guard count >= 0, remaining >= count else { return nil }
        defer { offset += count }
        return FixedFields(bytes: UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + count)]))
    }

    /// Bytes whose length was checked once: little-endian integers at offsets inside them.
    struct FixedFields {
        let bytes: UnsafeRawBufferPointer

        /// The integer at `offset`; the offset and size must lie inside the checked bytes.
        @inline(__always)
        func load<T: FixedWidthInteger>(_ offset: Int, as _: T.Type = T.self) -> T {
            precondition(offset >= 0 && offset + MemoryLayout<T>.size <= bytes.count, "field outside its part")
            return T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
        }
    }

    mutating func readBlob(_ count: Int) -> [UInt8]? {
        guard count >= 0, remaining >= count else { return nil }
        guard count > 0 else { return [] }
        defer { offset += count }
        return Array(UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + count)]))
    }

    mutating func skip(_ count: Int) -> Bool {
        guard count >= 0, remaining >= count else { return false }
        offset += count
        return true
    }
}
