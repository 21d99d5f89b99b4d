/// The DRM backend's part of CPU access to one buffer (``BufferCPUAccess``).
///
/// On a virtio-gpu with virgl, an image's contents live in the host's copy of the resource
/// (where the GPU renders); the guest pages a mapping shows are only filled by
/// `VIRTGPU_TRANSFER_FROM_HOST` and read back by `VIRTGPU_TRANSFER_TO_HOST`, each waited for with
/// `VIRTGPU_WAIT`. So an image (a fourcc with width and height) is transferred in before the CPU
/// reads and written back after it writes. Plain buffers (fourcc 0) are the CPU's: their guest
/// pages are what counts, and they are never transferred (a transfer in would overwrite what
/// another process wrote there). On virtio-gpu, a dma-buf exported read-only is mapped writable
/// through the render node (`VIRTGPU_MAP`).
final class DRMBufferAccess: BufferCPUAccess {
    let device: DRMDevice
    /// The render node `handle` belongs to (the device's, or a `fork()`ed child's reopen).
    let render: BorrowedDescriptor
    let handle: UInt32
    let layout: AllocationDescriptor?

    init(device: DRMDevice, render: BorrowedDescriptor, handle: UInt32, layout: AllocationDescriptor?) {
        self.device = device
        self.render = render
        self.handle = handle
        self.layout = layout
    }

    private var transfersImage: Bool {
        guard device.hasVirgl, let layout else { return false }
        return layout.fourcc != 0 && layout.width != 0 && layout.height != 0
    }

    /// Only a virgl image's CPU access needs transfers; every other buffer's needs only its
    /// dma-buf's sync.
    var bracketsAccess: Bool { transfersImage }

    /// `VIRTGPU_TRANSFER_FROM_HOST` of the whole image, then `VIRTGPU_WAIT`: the mapping shows what
    /// the GPU rendered.
    func begin(writable: Bool) throws(NTError) {
        guard transfersImage, let layout else { return }
        do {
            try Kernel.virtioGPUTransfer(render, handle: handle, width: layout.width,
                                         height: layout.height, toHost: false)
            try Kernel.virtioGPUWait(render, handle: handle)
        } catch {
            throw error.nt("bringing a virgl image's contents from the host (VIRTGPU_TRANSFER_FROM_HOST)")
        }
    }

    /// After a writable mapping, `VIRTGPU_TRANSFER_TO_HOST` and `VIRTGPU_WAIT`: the GPU sees what the
    /// CPU wrote. (A failure cannot be reported by an unlock; the next lock's transfer reports.)
    func end(writable: Bool) {
        guard writable, transfersImage, let layout else { return }
        try? Kernel.virtioGPUTransfer(render, handle: handle, width: layout.width,
                                      height: layout.height, toHost: true)
        try? Kernel.virtioGPUWait(render, handle: handle)
    }

    /// virtio-gpu: `VIRTGPU_MAP` and `mmap(2)` of the render node (open read-write) at its offset.
    func mapThroughDevice(length: Int) throws(NTError) -> UnsafeMutableRawPointer? {
        guard device.driverName == "virtio_gpu" else { return nil }
        do {
            let offset = try Kernel.virtioGPUMapOffset(render, handle: handle)
            return try Kernel.mapShared(render, length: length, writable: true, offset: offset)
        } catch {
            throw error.nt("mapping a read-only dma-buf through the virtio-gpu render node (VIRTGPU_MAP)")
        }
    }
}
