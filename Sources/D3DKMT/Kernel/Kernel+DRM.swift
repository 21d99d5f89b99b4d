#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CKMTShims
import CLibDRM

/// libdrm and DRM ioctls.
///
/// libdrm mixes conventions: `drmIoctl`-based calls (PRIME, syncobj, caps) return -1 and set
/// `errno`, others (`drmGetDevices2`) return `-errno`. ``libdrm(_:)`` is the one place that
/// normalises both into a thrown ``Errno``. `drmIoctl` itself retries `EINTR` and `EAGAIN`.
extension Kernel {
    static func libdrm(_ result: Int32) throws(Errno) {
        if result == 0 { return }
        throw result == -1 ? Errno.current : Errno(rawValue: result < 0 ? -result : result)
    }

    /// `drmGetVersion(fd)->name`: the kernel driver's name (`virtio_gpu`, `vgem`, `i915`, ...).
    static func drmDriverName(_ fd: Int32) throws(Errno) -> String {
        guard let version = drmGetVersion(fd) else { throw Errno.current == Errno(rawValue: 0) ? .noDevice : .current }
        defer { drmFreeVersion(version) }
        guard let name = version.pointee.name else { return "" }
        return String(cString: name)
    }

    /// `drmGetCap(fd, capability)`; 0 when the kernel does not know the capability.
    static func drmCapability(_ fd: Int32, _ capability: Int32) -> UInt64 {
        var value: UInt64 = 0
        do { try libdrm(drmGetCap(fd, UInt64(capability), &value)) } catch { return 0 }
        return value
    }

    /// `drmPrimeHandleToFD`: exports GEM `handle` as a close-on-exec dma-buf (`DRM_IOCTL_PRIME_HANDLE_TO_FD`).
    static func primeExport(_ fd: Int32, handle: UInt32, writable: Bool) throws(Errno) -> FileDescriptor {
        var dmaBuf: Int32 = -1
        let flags = UInt32(DRM_CLOEXEC) | (writable ? UInt32(DRM_RDWR) : 0)
        try libdrm(drmPrimeHandleToFD(fd, handle, flags, &dmaBuf))
        return FileDescriptor(adopting: dmaBuf)
    }

    /// `drmPrimeFDToHandle`: imports a dma-buf into device `fd` (`DRM_IOCTL_PRIME_FD_TO_HANDLE`).
    /// The kernel returns the same handle each time the same buffer is imported on the same fd.
    ///
    /// - Throws: `ENODEV` (or `EINVAL`) when this device cannot import that buffer.
    static func primeImport(_ fd: Int32, dmaBuf: Int32) throws(Errno) -> UInt32 {
        var handle: UInt32 = 0
        try libdrm(drmPrimeFDToHandle(fd, dmaBuf, &handle))
        return handle
    }

    /// `DRM_IOCTL_GEM_CLOSE`.
    static func gemClose(_ fd: Int32, handle: UInt32) {
        var request = kmt_drm_gem_close(handle: handle, pad: 0)
        try? ioctl(fd, kmt_DRM_IOCTL_GEM_CLOSE, &request)
    }

    /// `DRM_IOCTL_MODE_CREATE_DUMB` (primary nodes only): a linear 32-bpp buffer.
    static func createDumb(_ fd: Int32, width: UInt32, height: UInt32) throws(Errno) -> (handle: UInt32, size: UInt64) {
        var request = kmt_drm_mode_create_dumb(height: height, width: width, bpp: 32, flags: 0, handle: 0, pitch: 0, size: 0)
        try ioctl(fd, kmt_DRM_IOCTL_MODE_CREATE_DUMB, &request)
        return (request.handle, request.size)
    }

    /// `DRM_IOCTL_VIRTGPU_RESOURCE_CREATE` for a 2D resource (works without virgl, on render nodes).
    static func virtioGPUCreate2D(_ fd: Int32, width: UInt32, height: UInt32, size: UInt32) throws(Errno) -> UInt32 {
        var request = kmt_drm_virtgpu_resource_create()
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
    static func dmaBufSync(_ fd: Int32, start: Bool, write: Bool) throws(Errno) {
        var flags = start ? kmt_DMA_BUF_SYNC_START : kmt_DMA_BUF_SYNC_END
        flags |= kmt_DMA_BUF_SYNC_READ | (write ? kmt_DMA_BUF_SYNC_WRITE : 0)
        var request = dma_buf_sync(flags: flags)
        try ioctl(fd, kmt_DMA_BUF_IOCTL_SYNC, &request)
    }

    /// Reads a small text file (sysfs), trimmed; nil if it cannot be read.
    static func readSmallFile(_ path: String) -> String? {
        guard let file = try? open(path, O_RDONLY) else { return nil }
        var buffer = [UInt8](repeating: 0, count: 256)
        let count = buffer.withUnsafeMutableBytes { raw in read(file.rawValue, raw.baseAddress, raw.count) }
        guard count > 0 else { return nil }
        let text = String(decoding: buffer[0..<count], as: UTF8.self)
        let trimmed = text.drop { $0.isWhitespace }
        return String(trimmed.reversed().drop { $0.isWhitespace }.reversed())
    }

    /// `readlink(2)`, nil if it fails.
    static func readLink(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let count = readlink(path, &buffer, buffer.count - 1)
        guard count > 0 else { return nil }
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The names in a directory, without `.` and `..`; empty if it cannot be read.
    static func directoryEntries(_ path: String) -> [String] {
        guard let directory = opendir(path) else { return [] }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }
}
