#if canImport(Glibc)
import Glibc
#endif

/// A locally unique identifier (`LUID`): how an adapter is named across processes.
public struct LUID: Hashable, Sendable, CustomStringConvertible {
    public var lowPart: UInt32
    public var highPart: Int32

    public init(lowPart: UInt32, highPart: Int32) {
        self.lowPart = lowPart
        self.highPart = highPart
    }

    public var description: String {
        let high = String(UInt32(bitPattern: highPart), radix: 16)
        let low = String(lowPart, radix: 16)
        return "0x" + String(repeating: "0", count: 8 - high.count) + high
            + ":" + String(repeating: "0", count: 8 - low.count) + low
    }
}

/// What kind of memory object a buffer descriptor is.
enum BufferKind: Sendable {
    /// A DRM PRIME dma-buf.
    case dmaBuf
    /// A memfd (system memory; what the software adapter allocates).
    case memfd

    /// Classifies `fd` by its filesystem (`fstatfs`), so a peer cannot pass off a pipe or a socket
    /// as a buffer.
    init(classifying fd: Int32) throws(NTError) {
        let magic: Int
        do {
            magic = try Kernel.filesystemMagic(BorrowedDescriptor(unowned: fd))
        } catch {
            throw error.nt("fstatfs on a buffer descriptor")
        }
        switch magic {
        case Kernel.dmaBufMagic:
            self = .dmaBuf
        case Kernel.tmpfsMagic, Kernel.hugetlbfsMagic:
            // tmpfs holds ordinary files too; only memfd/shmem objects answer F_GET_SEALS. A memfd
            // that can still shrink could SIGBUS whoever maps it: refused everywhere.
            guard let seals = try? Kernel.seals(BorrowedDescriptor(unowned: fd)) else {
                throw NTError(.invalidParameter, "descriptor is a tmpfs file, not a memfd")
            }
            guard seals & Kernel.sealShrink != 0 else {
                throw NTError(.invalidParameter, "memfd without F_SEAL_SHRINK cannot be shared safely")
            }
            self = .memfd
        default:
            throw NTError(.invalidParameter, "descriptor is neither a dma-buf nor a memfd "
                                             + "(filesystem magic 0x\(String(magic, radix: 16)))")
        }
    }
}


/// What a backend does around CPU access to one buffer beyond `DMA_BUF_IOCTL_SYNC`: virgl keeps an
/// image's contents on the host, so the guest pages a mapping shows must be filled before
/// (`VIRTGPU_TRANSFER_FROM_HOST` + `VIRTGPU_WAIT`) and written back after
/// (`VIRTGPU_TRANSFER_TO_HOST` + `VIRTGPU_WAIT`); and a dma-buf exported read-only can still be
/// mapped writable through the device's own node. Class-bound, so that a buffer without one
/// (every memfd) holds a null reference, which costs nothing to copy or drop.
protocol BufferCPUAccess: AnyObject, Sendable {
    /// Before the CPU reads or writes the mapping.
    func begin(writable: Bool) throws(NTError)
    /// After it; `writable` as for ``begin(writable:)``.
    func end(writable: Bool)
    /// A writable mapping of the first `length` bytes through the device (for a buffer whose
    /// dma-buf is read-only), or nil when the device has no such way.
    func mapThroughDevice(length: Int) throws(NTError) -> UnsafeMutableRawPointer?
    /// Whether ``begin(writable:)`` and ``end(writable:)`` do anything for this buffer (false:
    /// the buffer's CPU access needs only what its kind needs). Fixed for the buffer's life.
    var bracketsAccess: Bool { get }
}

/// What CPU access to one buffer needs around it, fixed when the buffer is made.
enum CPUAccessWindow: Sendable {
    /// Nothing: a memfd's pages are the buffer. A lock is only its kept mapping.
    case none
    /// `DMA_BUF_IOCTL_SYNC` start before and end after, one pair per lock: the kernel counts
    /// nothing between them, so locks need no shared state beyond their count.
    case dmaBufSync
    /// The backend's work (virgl's transfers) as well: opened by the first lock and closed by the
    /// last, which nested locks share.
    case shared
}

/// One buffer as a device holds it: the dma-buf or memfd that is the buffer, and whatever the
/// backend keeps for it on the device (a GEM handle), released when the last user lets go.
final class BufferObject: Sendable {
    /// The dma-buf or memfd. Owned here; exported copies are duplicates.
    let descriptor: FileDescriptor
    let kind: BufferKind
    /// Bytes the buffer holds (at least what was asked for).
    let size: UInt64
    /// Who made it.
    let allocator: BufferAllocator
    /// The layout its allocator chose (GBM's stride, modifier and planes), nil when the creator's
    /// descriptor says it all.
    let layout: AllocationDescriptor?
    /// The backend's part of CPU access (virgl transfers, device mappings), if any.
    let cpuAccess: (any BufferCPUAccess)?
    /// What CPU access needs around it: nothing (a memfd), a dma-buf's sync, or also the
    /// backend's part.
    let accessWindow: CPUAccessWindow
    private let release: (@Sendable () -> Void)?

    init(descriptor: consuming FileDescriptor, kind: BufferKind, size: UInt64,
         allocator: BufferAllocator = .imported, layout: AllocationDescriptor? = nil,
         cpuAccess: (any BufferCPUAccess)? = nil, release: (@Sendable () -> Void)? = nil) {
        self.descriptor = descriptor
        self.kind = kind
        self.size = size
        self.allocator = allocator
        self.layout = layout
        if cpuAccess?.bracketsAccess == true {
            accessWindow = .shared
        } else {
            accessWindow = kind == .dmaBuf ? .dmaBufSync : .none
        }
        self.cpuAccess = cpuAccess
        self.release = release
    }

    deinit { release?() }

    /// Maps the first `length` bytes for CPU access (`mmap(MAP_SHARED)`), then opens the CPU
    /// access window (``beginAccess(writable:)``).
    ///
    /// - Throws: as ``mapMemory(length:writable:)`` and ``beginAccess(writable:)``.
    func map(length: Int, writable: Bool) throws(NTError) -> UnsafeMutableRawPointer {
        let address = try mapMemory(length: length, writable: writable)
        do { try beginAccess(writable: writable) } catch {
            Kernel.unmap(address, length: length)
            throw error
        }
        return address
    }

    /// Maps the first `length` bytes (`mmap(MAP_SHARED)`), without opening the CPU access window.
    /// A writable mapping of a dma-buf exported read-only goes through the device
    /// (``BufferCPUAccess/mapThroughDevice(length:)``) where it can.
    ///
    /// - Throws: the status of a failing `mmap(2)` (`STATUS_NOT_SUPPORTED` when the exporter
    ///   cannot be mapped, `STATUS_ACCESS_DENIED` for a read-only memfd or dma-buf mapped
    ///   writable).
    func mapMemory(length: Int, writable: Bool) throws(NTError) -> UnsafeMutableRawPointer {
        var address: UnsafeMutableRawPointer?
        if writable, kind == .dmaBuf, isReadOnlyFile, let cpuAccess {
            address = try cpuAccess.mapThroughDevice(length: length)
        }
        if address == nil {
            do { address = try Kernel.mapShared(descriptor.borrowed, length: length, writable: writable) } catch {
                if error == .permissionDenied && kind == .dmaBuf && writable {
                    throw NTError(.accessDenied, "the dma-buf was exported read-only (O_RDONLY, as Mesa's "
                                  + "gbm_bo_get_fd does) and this device has no writable mapping of its own; "
                                  + "lock it read-only or wrap a dma-buf exported with DRM_RDWR")
                }
                throw error.nt("mapping an allocation")
            }
        }
        guard let address else { throw NTError(.notSupported, "no mapping") }
        return address
    }

    /// Opens the CPU access window: `DMA_BUF_IOCTL_SYNC` start on a dma-buf (waiting for the GPU
    /// work that writes it), then the backend's (``BufferCPUAccess/begin(writable:)``: virgl's
    /// transfer from the host) where it has any. Nothing on a memfd.
    ///
    /// - Throws: the backend's status when it cannot bring the contents in.
    func beginAccess(writable: Bool) throws(NTError) {
        guard accessWindow != .none else { return }
        syncDmaBuf(start: true, writable: writable)
        guard accessWindow == .shared else { return }
        do { try cpuAccess?.begin(writable: writable) } catch {
            syncDmaBuf(start: false, writable: writable)
            throw error
        }
    }

    /// Closes the CPU access window: the backend's (virgl's transfer to the host) where it has
    /// any, then `DMA_BUF_IOCTL_SYNC` end on a dma-buf.
    func endAccess(writable: Bool) {
        guard accessWindow != .none else { return }
        if accessWindow == .shared { cpuAccess?.end(writable: writable) }
        syncDmaBuf(start: false, writable: writable)
    }

    /// `DMA_BUF_IOCTL_SYNC` start or end (read, and write when `writable`) on a dma-buf; nothing
    /// on a memfd. A failure is ignored: the CPU access goes ahead (and an unlock could not report
    /// it).
    @inline(__always)
    func syncDmaBuf(start: Bool, writable: Bool) {
        if kind == .dmaBuf { try? Kernel.dmaBufSync(descriptor.borrowed, start: start, write: writable) }
    }

    /// Ends a ``map(length:writable:)``: closes the CPU access window and unmaps.
    func unmap(_ address: UnsafeMutableRawPointer, length: Int, writable: Bool) {
        endAccess(writable: writable)
        Kernel.unmap(address, length: length)
    }

    /// Whether the descriptor was opened read-only (a dma-buf exported without `DRM_RDWR`).
    var isReadOnlyFile: Bool {
        guard let flags = try? Kernel.statusFlags(descriptor.borrowed) else { return false }
        return flags & O_ACCMODE == O_RDONLY
    }

    /// Wraps a buffer a runtime hands over (its own Vulkan/GL export) on `backend`: classifies and
    /// measures it and adopts a duplicate (the caller keeps its descriptor).
    ///
    /// - Throws: `STATUS_INVALID_PARAMETER` when `fd` is neither a dma-buf nor a sealed memfd;
    ///   what ``DeviceBackend/adopt(_:kind:size:layout:)`` throws; the kernel's status when it cannot be
    ///   measured or duplicated.
    static func wrapping(_ fd: Int32, layout: AllocationDescriptor,
                         on backend: any DeviceBackend) throws(NTError) -> BufferObject {
        let kind = try BufferKind(classifying: fd)
        let size: UInt64
        let copy: FileDescriptor
        do {
            size = try Kernel.size(BorrowedDescriptor(unowned: fd))
            copy = try Kernel.duplicate(BorrowedDescriptor(unowned: fd))
        } catch { throw error.nt("taking a wrapped buffer") }
        return try backend.adopt(copy, kind: kind, size: size, layout: layout)
    }

    /// A read-only open of the same memfd (`/proc/self/fd/N` with `O_RDONLY`): the kernel refuses
    /// writable mappings of it.
    ///
    /// - Throws: `STATUS_NOT_SUPPORTED` without `/proc`; the kernel's status otherwise.
    static func readOnlyCopy(of descriptor: borrowing FileDescriptor) throws(NTError) -> FileDescriptor {
        do {
            return try Kernel.reopen(descriptor.borrowed, O_RDONLY)
        } catch {
            if let missing = NTError.withoutProc("a read-only open of a memfd (reopening it)") { throw missing }
            throw error.nt("reopening a buffer read-only")
        }
    }
}

/// A fence's timeline in the kernel, kept by a backend: a DRM timeline syncobj on its device.
/// Destroyed with the last reference. The fence value is the timeline's point.
protocol KernelTimeline: AnyObject, Sendable {
    /// The point the timeline has reached (`DRM_IOCTL_SYNCOBJ_QUERY`).
    func currentPoint() throws(NTError) -> UInt64
    /// Signals `point` from the CPU (`DRM_IOCTL_SYNCOBJ_TIMELINE_SIGNAL`).
    func signal(_ point: UInt64) throws(NTError)
    /// A new descriptor of the timeline, for another process, device or Vulkan.
    func exportDescriptor() throws(NTError) -> FileDescriptor
    /// A sync_file that signals with `point`.
    ///
    /// - Throws: `STATUS_INVALID_PARAMETER` when nothing was submitted for `point` yet.
    func exportSyncFile(point: UInt64) throws(NTError) -> FileDescriptor
    /// Signals `point` when a sync_file's fence signals (GPU work done), without the CPU waiting:
    /// the fence becomes the timeline's point (`FD_TO_HANDLE` with `IMPORT_SYNC_FILE` into a
    /// temporary binary syncobj, `DRM_IOCTL_SYNCOBJ_TRANSFER` to the point). The caller keeps
    /// `syncFile`.
    ///
    /// - Throws: `STATUS_INVALID_PARAMETER` when `point` is not above every point already
    ///   submitted (fence values only grow) or `syncFile` is not a sync_file.
    func signal(_ point: UInt64, whenSignalled syncFile: Int32) throws(NTError)
    /// Makes `eventfd` readable when `point` signals (`DRM_IOCTL_SYNCOBJ_EVENTFD`).
    func notify(eventfd: Int32, point: UInt64) throws(NTError)
    /// Waits until every entry (or, with `all` false, one) reaches its point, or `deadline`.
    /// Every entry is a timeline of the same device as this one.
    ///
    /// - Returns: false when the deadline passed.
    func wait(_ entries: [(timeline: any KernelTimeline, point: UInt64)], all: Bool,
              until deadline: Deadline) throws(NTError) -> Bool
    /// Waits until this timeline reaches `point`, or `deadline`: the one-entry form of
    /// ``wait(_:all:until:)``, building no lists.
    ///
    /// - Returns: false when the deadline passed.
    func wait(for point: UInt64, until deadline: Deadline) throws(NTError) -> Bool
}

/// What a backend (DRM or software) does for a device: it makes and owns every kernel object the
/// device's allocations, fences and keyed mutexes use, so the API layer never calls the kernel.
protocol DeviceBackend: AnyObject, Sendable {
    /// Creates a new buffer of at least `size` bytes, laid out as `descriptor` asks (an image's
    /// width, height, fourcc and modifier); the buffer's ``BufferObject/layout`` says what the
    /// allocator chose.
    ///
    /// - Throws: `STATUS_NOT_SUPPORTED` when no allocator of this device can make it (no GBM for
    ///   the driver, no driver-native creation, no primary node for dumb buffers); the kernel's
    ///   status when allocation fails.
    func allocate(size: UInt64, descriptor: AllocationDescriptor) throws(NTError) -> BufferObject

    /// Takes a buffer made elsewhere (another process's share package, or the runtime's own
    /// dma-buf export) onto this device. `kind` and `size` are what the caller already measured
    /// (``BufferKind/init(classifying:)``, ``Kernel/size(_:)``); `layout` is what the buffer holds
    /// (its creator's descriptor), for the backend's CPU access (virgl transfers of an image).
    ///
    /// - Throws: `STATUS_NOT_SUPPORTED` when this device cannot import that buffer (another
    ///   driver's dma-buf the kernel refuses with `ENODEV`, a memfd on a DRM device).
    func adopt(_ descriptor: consuming FileDescriptor, kind: BufferKind, size: UInt64,
               layout: AllocationDescriptor?) throws(NTError) -> BufferObject

    /// A new kernel timeline for a fence, or nil when this backend keeps fences in shared memory
    /// alone (the software adapter, whose fences are a ``FenceState``).
    ///
    /// - Throws: `STATUS_NOT_SUPPORTED` on a device that has neither (a DRM device without timeline
    ///   syncobjs, such as vgem).
    func makeTimeline() throws(NTError) -> (any KernelTimeline)?

    /// Takes a timeline made elsewhere (a share package's syncobj, a Vulkan timeline semaphore's
    /// opaque fd). The caller keeps `descriptor`.
    ///
    /// - Throws: `STATUS_NOT_SUPPORTED` where the device cannot take DRM syncobjs;
    ///   `STATUS_INVALID_PARAMETER` when `descriptor` is not one.
    func importTimeline(_ descriptor: Int32) throws(NTError) -> any KernelTimeline

    /// A new timeline that reaches point 1 when a sync_file's fence signals. The caller keeps
    /// `syncFile`.
    ///
    /// - Throws: as ``importTimeline(_:)``; `STATUS_INVALID_PARAMETER` for what is not a sync_file.
    func importSyncFile(_ syncFile: Int32) throws(NTError) -> any KernelTimeline

    /// A new timeline as a descriptor alone, for a keyed mutex's fence values (nothing of it stays
    /// on this device).
    ///
    /// - Throws: `STATUS_NOT_SUPPORTED` where the device has no timelines.
    func makeTimelineDescriptor() throws(NTError) -> FileDescriptor
}
