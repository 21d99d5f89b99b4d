import CKMTShims

/// A locally unique identifier (`LUID`): how an adapter is named across processes.
public struct LUID: Hashable, Sendable, CustomStringConvertible {
    public var lowPart: UInt32
    public var highPart: Int32

    public init(lowPart: UInt32, highPart: Int32) {
        self.lowPart = lowPart
        self.highPart = highPart
    }

    public var description: String {
        let high = String(UInt32(bitPattern: highPart), radix: 16)
        let low = String(lowPart, radix: 16)
        return "0x" + String(repeating: "0", count: 8 - high.count) + high + ":" + String(repeating: "0", count: 8 - low.count) + low
    }
}

/// What kind of memory object a buffer descriptor is.
enum BufferKind: Sendable {
    /// A DRM PRIME dma-buf.
    case dmaBuf
    /// A memfd (system memory; what the software adapter allocates).
    case memfd

    /// Classifies `fd` by its filesystem (`fstatfs`), so a peer cannot pass off a pipe or a socket
    /// as a buffer.
    init(classifying fd: Int32) throws(NTError) {
        let magic: Int
        do { magic = try Kernel.filesystemMagic(fd) } catch { throw error.nt("fstatfs on a buffer descriptor") }
        switch magic {
        case Int(kmt_DMA_BUF_MAGIC):
            self = .dmaBuf
        case Int(kmt_TMPFS_MAGIC), Int(kmt_HUGETLBFS_MAGIC):
            // tmpfs holds ordinary files too; only memfd/shmem objects answer F_GET_SEALS. A memfd
            // that can still shrink could SIGBUS whoever maps it: refused everywhere.
            guard let seals = try? Kernel.seals(fd) else { throw NTError(.invalidParameter, "descriptor is a tmpfs file, not a memfd") }
            guard seals & kmt_F_SEAL_SHRINK != 0 else {
                throw NTError(.invalidParameter, "memfd without F_SEAL_SHRINK cannot be shared safely")
            }
            self = .memfd
        default:
            throw NTError(.invalidParameter, "descriptor is neither a dma-buf nor a memfd (filesystem magic 0x\(String(magic, radix: 16)))")
        }
    }
}


/// One buffer as a device holds it: the dma-buf or memfd that is the buffer, and whatever the
/// backend keeps for it on the device (a GEM handle), released when the last user lets go.
final class BufferObject: Sendable {
    /// The dma-buf or memfd. Owned here; exported copies are duplicates.
    let descriptor: FileDescriptor
    let kind: BufferKind
    /// Bytes the buffer holds (at least what was asked for).
    let size: UInt64
    private let release: (@Sendable () -> Void)?

    init(descriptor: consuming FileDescriptor, kind: BufferKind, size: UInt64, release: (@Sendable () -> Void)? = nil) {
        self.descriptor = descriptor
        self.kind = kind
        self.size = size
        self.release = release
    }

    deinit { release?() }
}

/// What a backend (DRM or software) does for a device.
protocol DeviceBackend: AnyObject, Sendable {
    /// Creates a new buffer of at least `size` bytes.
    func allocate(size: UInt64, descriptor: AllocationDescriptor) throws(NTError) -> BufferObject

    /// Takes a buffer made elsewhere (another process's share package, or the runtime's own
    /// dma-buf export) onto this device. `kind` and `size` are what the caller already measured
    /// (``BufferKind/init(classifying:)``, ``Kernel/size(_:)``).
    ///
    /// - Throws: `STATUS_NOT_SUPPORTED` when this device cannot import that buffer (another
    ///   driver's dma-buf the kernel refuses with `ENODEV`, a memfd on a DRM device).
    func adopt(_ descriptor: consuming FileDescriptor, kind: BufferKind, size: UInt64) throws(NTError) -> BufferObject
}
