/// What an allocation is: the Linux allocation descriptor.
///
/// On Windows the size and format of an allocation hide in the driver's private data; here we are
/// the driver, so every allocation's private driver data begins with this descriptor
/// (`D3DKMT_LINUX_ALLOCATION_DESC` in `<d3dkmthk.h>`, 48 bytes, same layout). Bytes after it are
/// the runtime's own and travel with the allocation unchanged.
public struct AllocationDescriptor: Hashable, Sendable {
    /// The C struct's version field (`D3DKMT_LINUX_ALLOCATION_DESC_VERSION`).
    public static let version: UInt32 = 1
    /// The encoded size (`sizeof(D3DKMT_LINUX_ALLOCATION_DESC)`).
    public static let encodedSize = 48
    /// The largest allocation the library creates (16 GiB): a bound, so sizes cannot overflow.
    public static let maximumSize: UInt64 = 1 << 34

    /// Bytes. Zero means `height * stride`.
    public var size: UInt64
    /// Pixels per row (informational; a plain buffer leaves it 0).
    public var width: UInt32
    /// Rows.
    public var height: UInt32
    /// Bytes per row. Zero means `width * 4`.
    public var stride: UInt32
    /// A DRM fourcc (`DRM_FORMAT_*`), 0 for a plain buffer.
    public var fourcc: UInt32
    /// A DRM format modifier; 0 is `DRM_FORMAT_MOD_LINEAR`.
    public var modifier: UInt64

    /// A plain buffer of `size` bytes.
    public init(size: UInt64) {
        self.init(size: size, width: 0, height: 0, stride: 0, fourcc: 0, modifier: 0)
    }

    public init(size: UInt64 = 0, width: UInt32, height: UInt32, stride: UInt32 = 0, fourcc: UInt32, modifier: UInt64 = 0) {
        self.size = size
        self.width = width
        self.height = height
        self.stride = stride
        self.fourcc = fourcc
        self.modifier = modifier
    }

    /// The size in bytes this descriptor asks for, or nil when it asks for nothing or too much.
    public var resolvedSize: UInt64? {
        var bytes = size
        if bytes == 0 {
            let rowBytes = stride != 0 ? UInt64(stride) : UInt64(width) * 4
            bytes = rowBytes * UInt64(height)  // both < 2^34, cannot overflow
        }
        guard bytes > 0, bytes <= AllocationDescriptor.maximumSize else { return nil }
        return bytes
    }

    /// The 48-byte C layout, with `DmaBufFd` = -1 (a descriptor number means nothing elsewhere).
    func encoded(size resolved: UInt64) -> [UInt8] {
        var writer = ByteWriter(capacity: Self.encodedSize)
        writer.append(Self.version)
        writer.append(UInt32(0))  // Flags
        writer.append(resolved)
        writer.append(width)
        writer.append(height)
        writer.append(stride)
        writer.append(fourcc)
        writer.append(modifier)
        writer.append(Int32(-1))  // DmaBufFd
        writer.append(UInt32(0))  // Reserved
        return writer.bytes
    }

    /// Parses the C layout at the start of `bytes`.
    ///
    /// - Returns: the descriptor and the `DmaBufFd` field, or nil when `bytes` is too short, the
    ///   version is unknown or the reserved fields are not zero.
    static func decode(_ bytes: UnsafeRawBufferPointer) -> (AllocationDescriptor, dmaBufFd: Int32)? {
        var reader = ByteReader(bytes)
        guard let version = reader.read(UInt32.self), version == Self.version,
              let flags = reader.read(UInt32.self), flags == 0,
              let size = reader.read(UInt64.self),
              let width = reader.read(UInt32.self),
              let height = reader.read(UInt32.self),
              let stride = reader.read(UInt32.self),
              let fourcc = reader.read(UInt32.self),
              let modifier = reader.read(UInt64.self),
              let fd = reader.read(Int32.self),
              let reserved = reader.read(UInt32.self), reserved == 0
        else { return nil }
        let descriptor = AllocationDescriptor(size: size, width: width, height: height, stride: stride,
                                              fourcc: fourcc, modifier: modifier)
        return (descriptor, fd)
    }
}
