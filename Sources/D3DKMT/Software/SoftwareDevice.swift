#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The software adapter's device: allocations are sealed memfds (system memory), like the
/// Windows Basic Render Driver's. It opens buffers of any kind it can map: memfds and dma-bufs.
final class SoftwareDevice: DeviceBackend {
    func allocate(size: UInt64, descriptor: AllocationDescriptor) throws(NTError) -> BufferObject {
        do {
            let memory = try Kernel.memfd(name: "d3dkmt-allocation")
            try Kernel.truncate(memory.borrowed, to: size)
            // The size is fixed for life: a peer mapping it can never be cut short (SIGBUS).
            try Kernel.addSeals(memory.borrowed, Kernel.sealShrink | Kernel.sealGrow | Kernel.sealSeal)
            return BufferObject(descriptor: memory, kind: .memfd, size: size, allocator: .memfd)
        } catch {
            throw error.nt("creating a \(size)-byte memfd allocation")
        }
    }

    func adopt(_ descriptor: consuming FileDescriptor, kind: BufferKind, size: UInt64,
               layout: AllocationDescriptor?) throws(NTError) -> BufferObject {
        BufferObject(descriptor: descriptor, kind: kind, size: size)
    }

    /// Software fences are their shared value page alone.
    func makeTimeline() throws(NTError) -> (any KernelTimeline)? { nil }

    func importTimeline(_ descriptor: Int32) throws(NTError) -> any KernelTimeline {
        throw Self.noSyncobjs
    }

    func importSyncFile(_ syncFile: Int32) throws(NTError) -> any KernelTimeline {
        throw Self.noSyncobjs
    }

    func makeTimelineDescriptor() throws(NTError) -> FileDescriptor {
        throw NTError(.notSupported, "the software adapter has no timeline syncobjs; pass nil or a DRM device")
    }

    private static var noSyncobjs: NTError {
        NTError(.notSupported, "the software adapter cannot take DRM syncobjs; open it on a DRM device")
    }
}
