/// What an allocation is: the Linux allocation descriptor.
///
/// On Windows the size and format of an allocation hide in the driver's private data; here we are
/// the driver, so every allocation's private driver data on creation begins with this descriptor
/// (`D3DKMT_LINUX_ALLOCATION_DESC` in `<d3dkmthk.h>`, 48 bytes, same layout). It is the library's
/// input, carried in the share package as the allocation's layout; bytes after it are the
/// runtime's own driver data, and only they reach openers.
///
/// Version 2 (`D3DKMT_LINUX_ALLOCATION_DESC2`, 104 bytes) adds up to four planes (offset and stride
/// each, for multi-planar formats such as NV12 and P010, or what GBM chose) and a data offset into
/// a wrapped buffer; a version 1 descriptor has one plane at offset 0 with ``stride``.
public struct AllocationDescriptor: Hashable, Sendable {
    /// The C struct's version field (`D3DKMT_LINUX_ALLOCATION_DESC_VERSION`).
    public static let version: UInt32 = 1
    /// `D3DKMT_LINUX_ALLOCATION_DESC_VERSION_2`.
    public static let version2: UInt32 = 2
    /// The encoded size (`sizeof(D3DKMT_LINUX_ALLOCATION_DESC)`).
    public static let encodedSize = 48
    /// `sizeof(D3DKMT_LINUX_ALLOCATION_DESC2)`.
    public static let encodedSize2 = 104
    /// The most planes an image has (DRM's limit).
    public static let maximumPlanes = 4
    /// `DRM_FORMAT_MOD_INVALID`: as a new allocation's ``modifier``, "the driver chooses" (GBM
    /// picks a tiling; the allocation's ``Allocation/layout`` says which).
    public static let modifierInvalid: UInt64 = 0x00FF_FFFF_FFFF_FFFF

    /// One plane of an image: where it starts in the buffer (bytes from the buffer's start, as
    /// `EGL_DMA_BUF_PLANEn_OFFSET_EXT` and Vulkan's `VkSubresourceLayout` take it) and its bytes
    /// per row.
    public struct Plane: Hashable, Sendable {
        public var offset: UInt32
        public var stride: UInt32
        public init(offset: UInt32, stride: UInt32) {
            self.offset = offset
            self.stride = stride
        }
    }
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
    /// The image's planes (at most four), empty when it is described by ``stride`` alone (one
    /// plane at offset 0). An allocation the library made through GBM has them as GBM chose.
    /// Setting more than four keeps the first four and marks the descriptor
    /// (``hasTooManyPlanes``): creating an allocation with it is refused.
    public var planes: [Plane] {
        get { (0..<Int(planeCount)).map { plane($0) } }
        set {
            hasTooManyPlanes = newValue.count > Self.maximumPlanes
            planeCount = UInt8(min(newValue.count, Self.maximumPlanes))
            storedPlanes = Self.noPlanes
            for index in 0..<Int(planeCount) { store(newValue[index], at: index) }
        }
    }
    /// How many of ``storedPlanes`` are planes. The planes are stored inline, not in an array, so
    /// that a descriptor is plain data: copying one (every allocation record of a share package
    /// holds one) retains and releases nothing.
    private(set) var planeCount: UInt8 = 0
    /// More than ``maximumPlanes`` planes were given (``planes`` kept four).
    public private(set) var hasTooManyPlanes = false
    private var storedPlanes = Self.noPlanes
    /// Four empty slots. (Computed: a stored `static let` costs a `swift_once` check on every use.)
    private static var noPlanes: (Plane, Plane, Plane, Plane) {
        (Plane(offset: 0, stride: 0), Plane(offset: 0, stride: 0), Plane(offset: 0, stride: 0),
         Plane(offset: 0, stride: 0))
    }

    /// Writes `plane` into slot `index` of ``storedPlanes``.
    private mutating func store(_ plane: Plane, at index: Int) {
        withUnsafeMutableBytes(of: &storedPlanes) { raw in
            raw.storeBytes(of: plane, toByteOffset: index * MemoryLayout<Plane>.stride, as: Plane.self)
        }
    }

    /// Plane `index` of ``planes``, without making the array.
    ///
    /// - Precondition: `index` < ``planeCount``.
    func plane(_ index: Int) -> Plane {
        precondition(index >= 0 && index < Int(planeCount), "plane \(index) of \(planeCount)")
        return withUnsafeBytes(of: storedPlanes) { $0.load(fromByteOffset: index * MemoryLayout<Plane>.stride,
                                                            as: Plane.self) }
    }

    /// Adds a plane after the others.
    ///
    /// - Precondition: fewer than ``maximumPlanes`` planes.
    mutating func appendPlane(_ plane: Plane) {
        precondition(Int(planeCount) < Self.maximumPlanes, "an image has at most \(Self.maximumPlanes) planes")
        store(plane, at: Int(planeCount))
        planeCount += 1
    }

    /// Where the allocation's bytes begin in its buffer: a wrapped buffer whose memory starts
    /// after a header (lavapipe's `OPAQUE_FD` memory: 4096). `Lock2` maps from here; ``size``
    /// counts from here. 0 for every buffer the library allocates.
    public var dataOffset: UInt64 = 0

    public static func == (lhs: AllocationDescriptor, rhs: AllocationDescriptor) -> Bool {
        lhs.size == rhs.size && lhs.width == rhs.width && lhs.height == rhs.height && lhs.stride == rhs.stride
            && lhs.fourcc == rhs.fourcc && lhs.modifier == rhs.modifier && lhs.dataOffset == rhs.dataOffset
            && lhs.planeCount == rhs.planeCount && lhs.hasTooManyPlanes == rhs.hasTooManyPlanes
            && (0..<Int(lhs.planeCount)).allSatisfy { lhs.plane($0) == rhs.plane($0) }
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(size)
        hasher.combine(width)
        hasher.combine(height)
        hasher.combine(stride)
        hasher.combine(fourcc)
        hasher.combine(modifier)
        hasher.combine(dataOffset)
        hasher.combine(planeCount)
        hasher.combine(hasTooManyPlanes)
        for index in 0..<Int(planeCount) { hasher.combine(plane(index)) }
    }

    /// Whether this describes an image (a fourcc with width and height), not a plain buffer.
    public var isImage: Bool { fourcc != 0 && width != 0 && height != 0 }

    /// The planes, with the implicit one of a version 1 layout (offset 0, ``stride``) when
    /// ``planes`` is empty: what an EGL or Vulkan import takes.
    public var effectivePlanes: [Plane] { planes.isEmpty ? [Plane(offset: 0, stride: stride)] : planes }

    /// Whether this descriptor says more than version 1 can carry (planes, a data offset).
    public var needsVersion2: Bool {
        guard dataOffset == 0, planeCount <= 1 else { return true }
        return planeCount == 1 && (plane(0).offset != 0 || plane(0).stride != stride)
    }

    /// A plain buffer of `size` bytes.
    public init(size: UInt64) {
        self.init(size: size, width: 0, height: 0, stride: 0, fourcc: 0, modifier: 0)
    }

    /// An image, or (``fourcc`` 0) a plain buffer; `planes` and `dataOffset` as the properties say.
    public init(size: UInt64 = 0, width: UInt32, height: UInt32, stride: UInt32 = 0, fourcc: UInt32,
                modifier: UInt64 = 0, planes: [Plane] = [], dataOffset: UInt64 = 0) {
        self.size = size
        self.width = width
        self.height = height
        self.stride = stride
        self.fourcc = fourcc
        self.modifier = modifier
        if !planes.isEmpty { self.planes = planes }
        self.dataOffset = dataOffset
    }

    /// The size in bytes this descriptor asks for, or nil when it asks for nothing or too much.
    public var resolvedSize: UInt64? {
        var bytes = size
        if bytes == 0, let multiPlane = planarSize {
            bytes = multiPlane
        } else if bytes == 0 {
            let rowBytes = stride != 0 ? UInt64(stride) : UInt64(width) * 4  // < 2^34
            // Up to 2^34 * 2^32: can overflow (Width = Height = 0xFFFFFFFF once trapped here).
            let (product, overflow) = rowBytes.multipliedReportingOverflow(by: UInt64(height))
            guard !overflow else { return nil }
            bytes = product
        }
        guard bytes > 0, bytes <= AllocationDescriptor.maximumSize else { return nil }
        return bytes
    }

    /// The bytes a known two-plane YUV 4:2:0 format needs when ``size`` is 0 (NV12, P010: the luma
    /// plane, then an interleaved chroma plane half as tall with the same stride), nil for others.
    var planarSize: UInt64? {
        let rowBytes = stride != 0 ? UInt64(stride) : UInt64(width) * UInt64(bytesPerLumaSample ?? 1)
        switch fourcc {
        case Self.fourccNV12, Self.fourccP010:
            // Checked: a stride or width and a height of up to 2^32 each (an overflow is a size no
            // allocation can have, refused by the caller).
            let rows = UInt64(height) + (UInt64(height) + 1) / 2
            let (product, overflow) = rowBytes.multipliedReportingOverflow(by: rows)
            return overflow ? UInt64.max : product
        default: return nil
        }
    }

    private var bytesPerLumaSample: UInt32? {
        switch fourcc {
        case Self.fourccNV12: return 1
        case Self.fourccP010: return 2
        default: return nil
        }
    }

    /// `DRM_FORMAT_NV12` ('NV12') and `DRM_FORMAT_P010` ('P010').
    public static let fourccNV12: UInt32 = 0x3231_564E
    public static let fourccP010: UInt32 = 0x3031_3050
    /// `DRM_FORMAT_ARGB8888` ('AR24'), `DRM_FORMAT_XRGB8888` ('XR24'), `DRM_FORMAT_ABGR8888` ('AB24').
    public static let fourccARGB8888: UInt32 = 0x3432_5241
    public static let fourccXRGB8888: UInt32 = 0x3432_5258
    public static let fourccABGR8888: UInt32 = 0x3432_4241
}

/// Which allocator made an allocation's buffer.
public enum BufferAllocator: String, Hashable, Sendable {
    /// Mesa's GBM on the render node (`gbm_bo_create`): the driver's own layout.
    case gbm
    /// virtio-gpu's `DRM_IOCTL_VIRTGPU_RESOURCE_CREATE` on the render node.
    case virtioGPU = "virtio-gpu"
    /// A dumb buffer on the primary node (`DRM_IOCTL_MODE_CREATE_DUMB`).
    case dumb
    /// A sealed memfd (the software adapter).
    case memfd
    /// A buffer the library did not allocate: wrapped (a runtime's export) or opened from a handle.
    case imported
}
