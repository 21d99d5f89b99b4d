#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CKMTTestSupport
import D3DKMT

/// vgem's fence ioctls: fences a test attaches to a vgem buffer and signals by hand, to stand in
/// for GPU work. Test-only, so not in the library.
public enum VGEM {
    /// `DRM_IOCTL_VGEM_FENCE_ATTACH`: attaches a new unsignalled write fence to a vgem buffer.
    public static func fenceAttach(_ fd: Int32, handle: UInt32) throws(Errno) -> UInt32 {
        var fence: UInt32 = 0
        try retrying { kmt_vgem_fence_attach(fd, handle, &fence) }
        return fence
    }

    /// `DRM_IOCTL_VGEM_FENCE_SIGNAL`.
    public static func fenceSignal(_ fd: Int32, fence: UInt32) throws(Errno) {
        try retrying { kmt_vgem_fence_signal(fd, fence) }
    }

    private static func retrying(_ call: () -> Int32) throws(Errno) {
        while call() != 0 {
            guard errno == EINTR else { throw Errno(rawValue: errno) }
        }
    }
}
