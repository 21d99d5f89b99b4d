/// What an allocation is: the Linux allocation descriptor.
///
/// On Windows the size and format of an allocation hide in the driver's private data; here we are
/// the driver, so every allocation's private driver data on creation begins with this descriptor
/// (`D3DKMT_LINUX_ALLOCATION_DESC` in `<d3dkmthk.h>`, 48 bytes, same layout). It is the library's
/// input, carried in the share package as the allocation's layout; bytes after it are the
/// runtime's own driver data, and only they reach openers.
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

    public init(size: UInt64 = 0, width: UInt32, height: UInt32, stride: UInt32 = 0, fourcc: UInt32,
                modifier: UInt64 = 0) {
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
            let rowBytes = stride != 0 ? UInt64(stride) : UInt64(width) * 4  // < 2^34
            // Up to 2^34 * 2^32: can overflow (Width = Height = 0xFFFFFFFF once trapped here).
            let (product, overflow) = rowBytes.multipliedReportingOverflow(by: UInt64(height))
            guard !overflow else { return nil }
            bytes = product
        }
        guard bytes > 0, bytes <= AllocationDescriptor.maximumSize else { return nil }
        return bytes
    }
}
