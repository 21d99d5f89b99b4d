#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Synchronization

/// Mesa's GBM on one DRM device: `gbm_create_device` on a second open of the render node, so
/// GBM's GEM handles never alias the device's own (closing a GBM buffer closes its handle). A
/// buffer is made with `gbm_bo_create`, exported read-write by the library before anything else
/// exports it (a dma-buf's mode is fixed by its first export, and `gbm_bo_get_fd` exports
/// read-only), and its GBM buffer destroyed at once: the dma-buf holds the memory.
final class GBMAllocator: @unchecked Sendable {  // GBM calls are serialised by `lock`
    /// A buffer GBM made: its read-write dma-buf, the dma-buf's size, and the layout GBM chose.
    struct Made: ~Copyable {
        var dmaBuf: FileDescriptor
        var size: UInt64
        var layout: AllocationDescriptor
    }

    private let node: FileDescriptor
    private let device: UnsafeMutableRawPointer
    private let driverName: String
    private let lock = ForkSafeMutex<Void>(())

    /// Drivers Mesa has no driver for, whose GBM would fall back to `kms_swrast` (dumb buffers,
    /// refused on a render node) after printing its loader's failure on standard error.
    static let driversWithoutMesa: Set<String> = ["vgem"]

    /// GBM on `renderNode`'s device, or nil when libgbm is not there or has no driver for it.
    init?(renderNode: BorrowedDescriptor, driverName: String) {
        guard Kernel.gbm != nil, !Self.driversWithoutMesa.contains(driverName),
              let path = Kernel.readLink("/proc/self/fd/\(renderNode)"),
              let node = try? Kernel.open(path, O_RDWR),
              let device = try? Kernel.gbmCreateDevice(node.borrowed)
        else { return nil }
        self.node = node
        self.device = device
        self.driverName = driverName
    }

    deinit { Kernel.gbmDestroyDevice(device) }

    /// A new buffer: an image as `descriptor` asks (width, height, fourcc, modifier; modifier
    /// `DRM_FORMAT_MOD_INVALID` lets the driver choose), or a plain buffer of `size` bytes as a
    /// linear ARGB8888 surface 1024 pixels wide.
    ///
    /// - Returns: the read-write dma-buf, its size, and the layout GBM chose (stride, modifier,
    ///   planes).
    /// - Throws: `STATUS_NOT_SUPPORTED` when GBM cannot make it; the kernel's status when the
    ///   export fails.
    func allocate(size: UInt64, descriptor: AllocationDescriptor) throws(NTError) -> Made {
        let image = descriptor.fourcc != 0 && descriptor.width != 0 && descriptor.height != 0
        var layout = descriptor
        let (width, height, fourcc, modifier): (UInt32, UInt32, UInt32, UInt64)
        if image {
            (width, height, fourcc, modifier) = (descriptor.width, descriptor.height, descriptor.fourcc,
                                                 descriptor.modifier)
        } else {
            let rows = (size + 4095) / 4096
            guard rows <= 16384 else { throw NTError(.notSupported, "\(size) bytes is taller than GBM makes") }
            (width, height, fourcc, modifier) = (1024, UInt32(rows), AllocationDescriptor.fourccARGB8888, 0)
        }
        var exported: FileDescriptor?
        var failure: NTError?
        var bytes: UInt64 = 0
        lock.withLock { _ in
            let buffer: UnsafeMutableRawPointer
            do {
                buffer = try Kernel.gbmCreateBuffer(device, width: width, height: height, fourcc: fourcc,
                                                    modifier: modifier)
            } catch {
                failure = (NTError(.notSupported, "gbm_bo_create \(width)x\(height) fourcc 0x"
                                        + String(fourcc, radix: 16) + " modifier 0x" + String(modifier, radix: 16)
                                        + " failed on \(driverName)"))
                return
            }
            defer { Kernel.gbmDestroyBuffer(buffer) }
            let chosen = Kernel.gbmLayout(buffer)
            do throws(Errno) {
                let dmaBuf = try Kernel.primeExport(node.borrowed, handle: chosen.handle, writable: true)
                bytes = try Kernel.size(dmaBuf.borrowed)
                exported = consume dmaBuf
                if image {
                    // Linear was asked for and made (GBM_BO_USE_LINEAR), whatever GBM reports;
                    // otherwise GBM's modifier: DRM_FORMAT_MOD_INVALID when the driver has no
                    // explicit modifiers (virgl), an implicit layout importers must not name.
                    layout.modifier = modifier == 0 ? 0 : chosen.modifier
                    layout.stride = chosen.planes[0].stride
                    layout.planes = chosen.planes.map {
                        AllocationDescriptor.Plane(offset: $0.offset, stride: $0.stride)
                    }
                    // One plane at offset 0 is what the stride already says (a version 1 layout).
                    if layout.planes.count == 1 && layout.planes[0].offset == 0 { layout.planes = [] }
                }
            } catch {
                failure = error.nt("exporting a GBM buffer")
            }
        }
        if let failure { throw failure }
        guard let dmaBuf = exported.take() else { throw NTError(.notSupported, "GBM made no buffer") }
        if !image { return Made(dmaBuf: dmaBuf, size: bytes, layout: descriptor) }
        // The size asked for, else what the image needs with GBM's stride (one plane: its rows;
        // several: the whole buffer). On virgl the dma-buf may hold less (the image lives on the
        // host): Lock2 then says so.
        if descriptor.size == 0 {
            layout.size = layout.planes.count > 1 ? bytes : UInt64(layout.stride) * UInt64(layout.height)
        }
        return Made(dmaBuf: dmaBuf, size: bytes, layout: layout)
    }
}
