/// A byte pattern that differs per seed, allocation and offset: what `kmt selftest` and the tests
/// write in one process and check in another.
public enum TestPattern {
    public static func byte(seed: UInt32, allocation: Int, offset: Int) -> UInt8 {
        var value = seed &* 0x9E37_79B9 &+ UInt32(truncatingIfNeeded: allocation) &* 0x85EB_CA6B
        value &+= UInt32(truncatingIfNeeded: offset >> 2) &* 0xC2B2_AE35
        value ^= value >> 15
        return UInt8(truncatingIfNeeded: value >> (8 * UInt32(offset & 3)))
    }

    /// Fills `bytes` with the pattern.
    public static func fill(_ bytes: UnsafeMutableRawBufferPointer, seed: UInt32, allocation: Int) {
        for offset in 0..<bytes.count { bytes[offset] = byte(seed: seed, allocation: allocation, offset: offset) }
    }

    /// The first offset where `bytes` differs from the pattern, nil when it matches.
    public static func firstMismatch(_ bytes: UnsafeRawBufferPointer, seed: UInt32, allocation: Int) -> Int? {
        (0..<bytes.count).first { bytes[$0] != byte(seed: seed, allocation: allocation, offset: $0) }
    }
}
