#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CKMTShims
import CLibDRM

/// libdrm, DRM ioctls and dma-buf ioctls.
///
/// libdrm mixes conventions: `drmIoctl`-based calls (PRIME, syncobj, caps) return -1 and set
/// `errno`, others (`drmGetDevices2`) return `-errno`. ``libdrm(_:)`` is the one place that
/// normalises both into a thrown ``Errno``. `drmIoctl` itself retries `EINTR` and `EAGAIN`.
extension Kernel {
    static func libdrm(_ result: Int32) throws(Errno) {
        if result == 0 { return }
        throw result == -1 ? Errno.current : Errno(rawValue: result < 0 ? -result : result)
    }

    /// A libdrm call that is an ioctl (``Call/ioctl``): the fault seam first (a planned `EINTR` is
    /// restarted, as `drmIoctl` does), then ``libdrm(_:)`` on its result.
    @inline(__always)
    static func libdrm(_ call: () -> Int32) throws(Errno) {
        try checkFault(.ioctl)
        try libdrm(call())
    }

    /// `drmGetVersion(fd)->name`: the kernel driver's name (`virtio_gpu`, `vgem`, `i915`, ...).
    static func drmDriverName(_ fd: BorrowedDescriptor) throws(Errno) -> String {
        try checkFault(.ioctl)
        guard let version = drmGetVersion(fd.rawValue) else {
            throw Errno.current == Errno(rawValue: 0) ? .noDevice : .current
        }
        defer { drmFreeVersion(version) }
        guard let name = version.pointee.name else { return "" }
        return String(cString: name)
    }

    /// `drmGetCap(fd, capability)`; 0 when the kernel does not know the capability.
    static func drmCapability(_ fd: BorrowedDescriptor, _ capability: Int32) -> UInt64 {
        var value: UInt64 = 0
        do { try libdrm { drmGetCap(fd.rawValue, UInt64(capability), &value) } } catch { return 0 }
        return value
    }

    /// `drmPrimeHandleToFD`: exports GEM `handle` as a close-on-exec dma-buf
    /// (`DRM_IOCTL_PRIME_HANDLE_TO_FD`).
    static func primeExport(_ fd: BorrowedDescriptor, handle: UInt32, writable: Bool) throws(Errno) -> FileDescriptor {
        var dmaBuf: Int32 = -1
        let flags = UInt32(DRM_CLOEXEC) | (writable ? UInt32(DRM_RDWR) : 0)
        try libdrm { drmPrimeHandleToFD(fd.rawValue, handle, flags, &dmaBuf) }
        return FileDescriptor(adopting: dmaBuf)
    }

    /// `drmPrimeFDToHandle`: imports a dma-buf into device `fd` (`DRM_IOCTL_PRIME_FD_TO_HANDLE`).
    /// The kernel returns the same handle each time the same buffer is imported on the same fd.
    ///
    /// - Throws: `ENODEV` (or `EINVAL`) when this device cannot import that buffer.
    static func primeImport(_ fd: BorrowedDescriptor, dmaBuf: BorrowedDescriptor) throws(Errno) -> UInt32 {
        var handle: UInt32 = 0
        try libdrm { drmPrimeFDToHandle(fd.rawValue, dmaBuf.rawValue, &handle) }
        return handle
    }

    /// `DRM_IOCTL_GEM_CLOSE`; errors are ignored (the handle is gone either way).
    static func gemClose(_ fd: BorrowedDescriptor, handle: UInt32) {
        var request = drm_gem_close(handle: handle, pad: 0)
        try? ioctl(fd, kmt_DRM_IOCTL_GEM_CLOSE, &request)
    }

    /// `DRM_IOCTL_MODE_CREATE_DUMB` (primary nodes only): a linear 32-bpp buffer.
    static func createDumb(
        _ fd: BorrowedDescriptor, width: UInt32, height: UInt32
    ) throws(Errno) -> (handle: UInt32, size: UInt64) {
        var request = drm_mode_create_dumb(
            height: height, width: width, bpp: 32, flags: 0, handle: 0, pitch: 0, size: 0)
        try ioctl(fd, kmt_DRM_IOCTL_MODE_CREATE_DUMB, &request)
        return (request.handle, request.size)
    }

    /// `DRM_IOCTL_VIRTGPU_RESOURCE_CREATE` for a 2D resource (works without virgl, on render nodes).
    static func virtioGPUCreate2D(_ fd: BorrowedDescriptor, width: UInt32, height: UInt32,
                                  size: UInt32) throws(Errno) -> UInt32 {
        var request = drm_virtgpu_resource_create()
        request.target = 2        // PIPE_TEXTURE_2D
        request.format = 1       // VIRTIO_GPU_FORMAT_B8G8R8A8_UNORM
        request.bind = 2         // VIRGL_BIND_RENDER_TARGET
        request.width = width
        request.height = height
        request.depth = 1
        request.array_size = 1
        request.size = size
        request.stride = width * 4
        try ioctl(fd, kmt_DRM_IOCTL_VIRTGPU_RESOURCE_CREATE, &request)
        return request.bo_handle
    }

    /// `DMA_BUF_IOCTL_SYNC`: brackets CPU access to a mapped dma-buf.
    static func dmaBufSync(_ fd: BorrowedDescriptor, start: Bool, write: Bool) throws(Errno) {
        var flags = UInt64(start ? DMA_BUF_SYNC_START : DMA_BUF_SYNC_END)
        flags |= UInt64(DMA_BUF_SYNC_READ) | (write ? UInt64(DMA_BUF_SYNC_WRITE) : 0)
        var request = dma_buf_sync(flags: flags)
        try ioctl(fd, kmt_DMA_BUF_IOCTL_SYNC, &request)
    }

    /// `DMA_BUF_IOCTL_EXPORT_SYNC_FILE`: the fences on a dma-buf, as a sync_file.
    static func dmaBufExportSyncFile(_ dmaBuf: BorrowedDescriptor, write: Bool) throws(Errno) -> FileDescriptor {
        var request = dma_buf_export_sync_file(flags: UInt32(write ? DMA_BUF_SYNC_WRITE : DMA_BUF_SYNC_READ), fd: -1)
        try ioctl(dmaBuf, kmt_DMA_BUF_IOCTL_EXPORT_SYNC_FILE, &request)
        return FileDescriptor(adopting: request.fd)
    }
}

/// virtio-gpu's own ioctls (virtgpu_drm.h) beyond `RESOURCE_CREATE`: the 3D parameter, and the
/// transfers and wait that bracket CPU access to a virgl resource, whose contents live on the host.
extension Kernel {
    /// `VIRTGPU_PARAM_3D_FEATURES`.
    static let virtioGPUParam3DFeatures: UInt64 = 1

    /// `DRM_IOCTL_VIRTGPU_GETPARAM`: the parameter's value.
    static func virtioGPUParameter(_ fd: BorrowedDescriptor, _ parameter: UInt64) throws(Errno) -> Int32 {
        var value: Int32 = 0
        try withUnsafeMutablePointer(to: &value) { (pointer) throws(Errno) in
            var request = drm_virtgpu_getparam(param: parameter, value: UInt64(UInt(bitPattern: pointer)))
            try ioctl(fd, kmt_DRM_IOCTL_VIRTGPU_GETPARAM, &request)
        }
        return value
    }

    /// `DRM_IOCTL_VIRTGPU_RESOURCE_INFO`: the resource's host stride (0 for a buffer).
    static func virtioGPUResourceStride(_ fd: BorrowedDescriptor, handle: UInt32) throws(Errno) -> UInt32 {
        var request = drm_virtgpu_resource_info(bo_handle: handle, res_handle: 0, size: 0, stride: 0)
        try ioctl(fd, kmt_DRM_IOCTL_VIRTGPU_RESOURCE_INFO, &request)
        return request.stride
    }

    /// `DRM_IOCTL_VIRTGPU_TRANSFER_FROM_HOST` (`toHost` false) or `TRANSFER_TO_HOST`: copies a
    /// virgl resource's `width` × `height` box (level 0) between the host's copy and the guest
    /// pages a mapping shows. Queued: ``virtioGPUWait(_:handle:)`` waits for it.
    /// (libdrm's copy of the structs predates their `stride` fields: the kernel takes 0, the
    /// resource's own stride.)
    static func virtioGPUTransfer(_ fd: BorrowedDescriptor, handle: UInt32, width: UInt32, height: UInt32,
                                  toHost: Bool) throws(Errno) {
        let box = drm_virtgpu_3d_box(x: 0, y: 0, z: 0, w: width, h: height, d: 1)
        if toHost {
            var request = drm_virtgpu_3d_transfer_to_host(bo_handle: handle, box: box, level: 0, offset: 0)
            try ioctl(fd, kmt_DRM_IOCTL_VIRTGPU_TRANSFER_TO_HOST, &request)
        } else {
            var request = drm_virtgpu_3d_transfer_from_host(bo_handle: handle, box: box, level: 0, offset: 0)
            try ioctl(fd, kmt_DRM_IOCTL_VIRTGPU_TRANSFER_FROM_HOST, &request)
        }
    }

    /// `DRM_IOCTL_VIRTGPU_MAP`: the offset at which `mmap(2)` of the render node maps the GEM object
    /// (with the node's own access mode, whatever mode the object's dma-buf was exported with).
    static func virtioGPUMapOffset(_ fd: BorrowedDescriptor, handle: UInt32) throws(Errno) -> UInt64 {
        var request = drm_virtgpu_map(offset: 0, handle: handle, pad: 0)
        try ioctl(fd, kmt_DRM_IOCTL_VIRTGPU_MAP, &request)
        return request.offset
    }

    /// `DRM_IOCTL_VIRTGPU_WAIT`: blocks until the resource is idle (its transfers and rendering).
    static func virtioGPUWait(_ fd: BorrowedDescriptor, handle: UInt32) throws(Errno) {
        var request = drm_virtgpu_3d_wait(handle: handle, flags: 0)
        try ioctl(fd, kmt_DRM_IOCTL_VIRTGPU_WAIT, &request)
    }
}
