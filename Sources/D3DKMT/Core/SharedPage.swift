import Synchronization

/// A small block of memory shared between processes: a sealed memfd, mapped `MAP_SHARED`.
///
/// Keyed mutexes keep their key protocol in one and software sync objects their fence value; the
/// memfd travels in the share package and every opener maps the same pages. The size is sealed
/// (`F_SEAL_SHRINK | F_SEAL_GROW`), so no process can cut a mapping short. The first 8 bytes are a
/// magic number and a layout version, checked on open: the memfd came from another process.
final class SharedPage: @unchecked Sendable {
    let descriptor: FileDescriptor
    let base: UnsafeMutableRawPointer
    let size: Int

    static let headerSize = 8

    /// A new zeroed page of `size` bytes stamped with `magic` and `version`.
    init(size: Int, magic: UInt32, version: UInt32, name: StaticString) throws(NTError) {
        let rounded = (size + 4095) & ~4095
        do {
            let memory = try Kernel.memfd(name: name)
            try Kernel.truncate(memory.borrowed, to: UInt64(rounded))
            try Kernel.addSeals(memory.borrowed, Kernel.sealShrink | Kernel.sealGrow | Kernel.sealSeal)
            base = try Kernel.mapShared(memory.borrowed, length: rounded, writable: true)
            descriptor = memory
        } catch {
            throw error.nt("creating shared state (\(name))")
        }
        self.size = rounded
        base.storeBytes(of: magic.littleEndian, as: UInt32.self)
        (base + 4).storeBytes(of: version.littleEndian, as: UInt32.self)
    }

    /// Maps a page another process made. `descriptor` must be a memfd sealed against shrinking
    /// (``BufferKind/init(classifying:)``), at least `minimumSize` bytes, stamped `magic`/`version`.
    ///
    /// - Throws: `STATUS_INVALID_PARAMETER` for anything else.
    init(opening descriptor: consuming FileDescriptor, minimumSize: Int, magic: UInt32,
         version: UInt32) throws(NTError) {
        guard try BufferKind(classifying: descriptor.rawValue) == .memfd else {
            throw NTError(.invalidParameter, "shared state is not a memfd")
        }
        let size: UInt64
        do { size = try Kernel.size(descriptor.borrowed) } catch { throw error.nt("sizing shared state") }
        guard size >= UInt64(max(minimumSize, Self.headerSize)), size <= 1 << 20 else {
            throw NTError(.invalidParameter, "shared state holds \(size) bytes")
        }
        do { base = try Kernel.mapShared(descriptor.borrowed, length: Int(size), writable: true) } catch {
            throw error.nt("mapping shared state")
        }
        self.size = Int(size)
        self.descriptor = descriptor
        guard UInt32(littleEndian: base.load(as: UInt32.self)) == magic,
              UInt32(littleEndian: (base + 4).load(as: UInt32.self)) == version
        else { throw NTError(.invalidParameter, "shared state has the wrong magic or version") }
    }

    deinit { Kernel.unmap(base, length: size) }

    /// The 64-bit atomic at byte `offset` (8-aligned).
    func atomic64(_ offset: Int) -> UnsafeMutablePointer<Atomic<UInt64>> {
        (base + offset).assumingMemoryBound(to: Atomic<UInt64>.self)
    }

    /// The 32-bit atomic at byte `offset` (4-aligned), usable as a futex word.
    func atomic32(_ offset: Int) -> UnsafeMutablePointer<Atomic<UInt32>> {
        (base + offset).assumingMemoryBound(to: Atomic<UInt32>.self)
    }

    /// The same word as a plain pointer, for `futex(2)`.
    func futexWord(_ offset: Int) -> UnsafeMutablePointer<UInt32> {
        (base + offset).assumingMemoryBound(to: UInt32.self)
    }
}
