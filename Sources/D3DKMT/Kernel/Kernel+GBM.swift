#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CKMTShims

/// Mesa's GBM (`libgbm.so.1`), loaded with `dlopen` at first use: the allocator that knows each
/// driver's formats, modifiers and tiling. Loaded, not linked, so the library needs no Mesa
/// where no GBM allocation is made (a machine without Mesa still allocates through the
/// driver-native and dumb-buffer paths). GBM reports failure without `errno` on some paths:
/// failures here are `ENODEV` (no GBM, or the device's driver has none) or `EINVAL` (it cannot
/// make that buffer).
extension Kernel {
    /// The GBM entry points the library uses, resolved with `dlsym`.
    struct GBMLibrary: @unchecked Sendable {  // C function pointers into a library that is never unloaded
        let createDevice: @convention(c) (Int32) -> UnsafeMutableRawPointer?
        let destroyDevice: @convention(c) (UnsafeMutableRawPointer?) -> Void
        let createBuffer: @convention(c) (UnsafeMutableRawPointer?, UInt32, UInt32, UInt32,
                                          UInt32) -> UnsafeMutableRawPointer?
        let createBufferWithModifiers: @convention(c) (UnsafeMutableRawPointer?, UInt32, UInt32, UInt32,
                                                       UnsafePointer<UInt64>?, UInt32) -> UnsafeMutableRawPointer?
        let destroyBuffer: @convention(c) (UnsafeMutableRawPointer?) -> Void
        let handle: kmt_gbm_bo_get_handle_function
        let planeCount: @convention(c) (UnsafeMutableRawPointer?) -> Int32
        let strideForPlane: @convention(c) (UnsafeMutableRawPointer?, Int32) -> UInt32
        let offset: @convention(c) (UnsafeMutableRawPointer?, Int32) -> UInt32
        let modifier: @convention(c) (UnsafeMutableRawPointer?) -> UInt64
        let formatSupported: @convention(c) (UnsafeMutableRawPointer?, UInt32, UInt32) -> Int32
    }

    /// libgbm, or nil when it cannot be loaded (not installed) or `D3DKMT_GBM=0` turns it off.
    static let gbm: GBMLibrary? = {
        if let setting = getenv("D3DKMT_GBM"), String(cString: setting) == "0" { return nil }
        guard let library = dlopen("libgbm.so.1", RTLD_NOW | RTLD_LOCAL) else { return nil }
        func symbol<T>(_ name: String, _ type: T.Type) -> T? {
            guard let address = dlsym(library, name) else { return nil }
            return unsafeBitCast(address, to: type)
        }
        guard let createDevice = symbol("gbm_create_device", (@convention(c) (Int32) -> UnsafeMutableRawPointer?).self),
              let destroyDevice = symbol("gbm_device_destroy", (@convention(c) (UnsafeMutableRawPointer?) -> Void).self),
              let createBuffer = symbol("gbm_bo_create", (@convention(c) (UnsafeMutableRawPointer?, UInt32, UInt32,
                                                                           UInt32, UInt32)
                                                                           -> UnsafeMutableRawPointer?).self),
              let createWithModifiers = symbol("gbm_bo_create_with_modifiers",
                                               (@convention(c) (UnsafeMutableRawPointer?, UInt32, UInt32, UInt32,
                                                                UnsafePointer<UInt64>?, UInt32)
                                                                -> UnsafeMutableRawPointer?).self),
              let destroyBuffer = symbol("gbm_bo_destroy", (@convention(c) (UnsafeMutableRawPointer?) -> Void).self),
              let handle = symbol("gbm_bo_get_handle", kmt_gbm_bo_get_handle_function.self),
              let planeCount = symbol("gbm_bo_get_plane_count",
                                      (@convention(c) (UnsafeMutableRawPointer?) -> Int32).self),
              let strideForPlane = symbol("gbm_bo_get_stride_for_plane",
                                          (@convention(c) (UnsafeMutableRawPointer?, Int32) -> UInt32).self),
              let offset = symbol("gbm_bo_get_offset", (@convention(c) (UnsafeMutableRawPointer?, Int32) -> UInt32).self),
              let modifier = symbol("gbm_bo_get_modifier", (@convention(c) (UnsafeMutableRawPointer?) -> UInt64).self),
              let formatSupported = symbol("gbm_device_is_format_supported",
                                           (@convention(c) (UnsafeMutableRawPointer?, UInt32, UInt32) -> Int32).self)
        else {
            dlclose(library)
            return nil
        }
        return GBMLibrary(createDevice: createDevice, destroyDevice: destroyDevice, createBuffer: createBuffer,
                          createBufferWithModifiers: createWithModifiers, destroyBuffer: destroyBuffer, handle: handle,
                          planeCount: planeCount, strideForPlane: strideForPlane, offset: offset, modifier: modifier,
                          formatSupported: formatSupported)
    }()

    /// `GBM_BO_USE_RENDERING`, `GBM_BO_USE_LINEAR` (gbm.h).
    static let gbmUseRendering: UInt32 = 1 << 2
    static let gbmUseLinear: UInt32 = 1 << 4
    /// `DRM_FORMAT_MOD_INVALID`: "the driver chooses".
    static let modifierInvalid: UInt64 = 0x00FF_FFFF_FFFF_FFFF

    /// `gbm_create_device(fd)` on a render node the caller keeps open for the device's life.
    ///
    /// - Throws: `ENODEV` when libgbm is missing or has no driver for the node.
    static func gbmCreateDevice(_ fd: BorrowedDescriptor) throws(Errno) -> UnsafeMutableRawPointer {
        try checkFault(.ioctl)
        guard let gbm, let device = gbm.createDevice(fd.rawValue) else { throw .noDevice }
        return device
    }

    /// `gbm_device_destroy`.
    static func gbmDestroyDevice(_ device: UnsafeMutableRawPointer) {
        gbm?.destroyDevice(device)
    }

    /// A new GBM buffer: `gbm_bo_create` (linear when `modifier` is `DRM_FORMAT_MOD_LINEAR`, the
    /// driver's choice when `DRM_FORMAT_MOD_INVALID`) or `gbm_bo_create_with_modifiers` with that
    /// one modifier.
    ///
    /// - Throws: `EINVAL` when GBM cannot make it (format, modifier or size not supported).
    static func gbmCreateBuffer(_ device: UnsafeMutableRawPointer, width: UInt32, height: UInt32, fourcc: UInt32,
                                modifier: UInt64) throws(Errno) -> UnsafeMutableRawPointer {
        try checkFault(.ioctl)
        guard let gbm else { throw .noDevice }
        let buffer: UnsafeMutableRawPointer?
        switch modifier {
        case 0: buffer = gbm.createBuffer(device, width, height, fourcc, gbmUseRendering | gbmUseLinear)
        case modifierInvalid: buffer = gbm.createBuffer(device, width, height, fourcc, gbmUseRendering)
        default:
            var modifier = modifier
            buffer = gbm.createBufferWithModifiers(device, width, height, fourcc, &modifier, 1)
        }
        guard let buffer else { throw .invalidArgument }
        return buffer
    }

    /// `gbm_bo_destroy` (closes GBM's GEM handle).
    static func gbmDestroyBuffer(_ buffer: UnsafeMutableRawPointer) {
        gbm?.destroyBuffer(buffer)
    }

    /// What GBM chose for a buffer: its GEM handle on the GBM device's fd (`gbm_bo_get_handle`),
    /// modifier, and each plane's offset and stride.
    static func gbmLayout(_ buffer: UnsafeMutableRawPointer)
        -> (handle: UInt32, modifier: UInt64, planes: [(offset: UInt32, stride: UInt32)]) {
        guard let gbm else { return (0, 0, []) }
        let count = max(1, min(4, Int(gbm.planeCount(buffer))))
        let planes = (0..<count).map { plane in
            (offset: gbm.offset(buffer, Int32(plane)), stride: gbm.strideForPlane(buffer, Int32(plane)))
        }
        return (gbm.handle(buffer).u32, gbm.modifier(buffer), planes)
    }
}
