#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Synchronization
import CLibDRM

/// A DRM adapter's device: an open render node.
///
/// New buffers come from the first allocator of the device that can make them: Mesa's GBM on the
/// render node (any driver Mesa supports: the driver's formats, modifiers and tiling; a machine
/// with only a render node allocates this way), then driver-native creation (virtio-gpu's
/// `RESOURCE_CREATE`), then dumb buffers on the primary node. Each is exported as a PRIME dma-buf
/// (read-write) and imported back into the render node; buffers from elsewhere are imported with
/// `drmPrimeFDToHandle`. The kernel hands out one GEM handle per buffer per fd, so handles are
/// reference counted here: two opens of one buffer must not close each other's handle.
final class DRMDevice: DeviceBackend {
    /// The render node this process opened. In a `fork()`ed child it is the parent's open file
    /// (GEM and syncobj handles are per open file): the child uses it only for the objects made
    /// before the fork, and a reopen (``node()``) for everything it makes itself.
    private let opened: FileDescriptor
    /// The process that opened ``opened``.
    let owner: Int32
    private let renderPath: String?
    /// A `fork()`ed child's own open of the render node, made at its first need.
    private let childNode = ForkSafeMutex<(owner: Int32, node: FileDescriptorList)>((0, FileDescriptorList()))
    let driverName: String
    /// Whether this device has timeline syncobjs (`DRM_CAP_SYNCOBJ_TIMELINE`; vgem has none).
    let hasTimelines: Bool
    /// Whether this is a virtio-gpu with 3D (virgl: `VIRTGPU_PARAM_3D_FEATURES`), whose images
    /// live on the host and need transfers around CPU access.
    let hasVirgl: Bool
    private let primaryPath: String?
    /// The primary node, opened on first need (dumb buffers).
    private let primary = ForkSafeMutex<FileDescriptor?>(nil)
    /// GBM on this device, made on first need by the process that uses it (nil inside: GBM cannot
    /// serve this device).
    private let gbm = ForkSafeMutex<(owner: Int32, allocator: GBMAllocator??)>((0, nil))
    /// GEM handle → how many BufferObjects use it. Imports and closes happen under this lock, so
    /// a handle number is never closed while another import is returning it.
    private let handles = ForkSafeMutex<[UInt64: Int]>([:])

    /// Takes ownership of `render`, an open render node (at `renderPath`) of the driver `driverName`.
    init(render: consuming FileDescriptor, renderPath: String?, primaryPath: String?, driverName: String) {
        self.opened = render
        self.owner = Kernel.processID
        self.renderPath = renderPath
        self.primaryPath = primaryPath
        self.driverName = driverName
        self.hasTimelines = Kernel.drmCapability(self.opened.borrowed, DRM_CAP_SYNCOBJ_TIMELINE) != 0
        self.hasVirgl = driverName == "virtio_gpu"
            && ((try? Kernel.virtioGPUParameter(self.opened.borrowed, Kernel.virtioGPUParam3DFeatures)) ?? 0) != 0
    }

    /// The render node this process makes and imports objects on: the one it opened, or in a
    /// `fork()`ed child its own reopen, so that nothing the child makes or closes shares a GEM or
    /// syncobj handle with its parent.
    ///
    /// - Throws: the status of reopening the node in a child (`STATUS_DEVICE_REMOVED` when it is
    ///   gone).
    func node() throws(NTError) -> BorrowedDescriptor {
        let pid = Kernel.processID
        guard pid != owner else { return opened.borrowed }
        return try childNode.withLock { (child) throws(NTError) -> BorrowedDescriptor in
            if child.owner == pid, child.node.count > 0 { return child.node.borrow(child.node.count - 1) }
            guard let renderPath else { throw NTError(.deviceRemoved, "no render node to reopen after fork()") }
            do throws(Errno) { child.node.append(try Kernel.open(renderPath, O_RDWR)) } catch {
                throw error.nt("reopening \(renderPath) in a fork()ed child")
            }
            child.owner = pid
            return child.node.borrow(child.node.count - 1)
        }
    }

    /// The render node as opened (what device queries use).
    var render: BorrowedDescriptor { opened.borrowed }

    /// Opens the render node of the adapter `info` describes (`D3DKMTCreateDevice`).
    ///
    /// - Throws: `STATUS_DEVICE_REMOVED` when the node is gone or is another device now (minors are
    ///   reused); the status of the `open(2)` failure otherwise (`STATUS_ACCESS_DENIED`, ...).
    static func open(_ info: AdapterInfo) throws(NTError) -> DRMDevice {
        guard let renderNode = info.renderNode else { throw NTError(.deviceRemoved, "adapter has no render node") }
        let render: FileDescriptor
        do { render = try Kernel.open(renderNode, O_RDWR) } catch {
            throw error == .noSuchFile || error == .noDevice
                ? NTError(.deviceRemoved, "\(renderNode) is gone") : error.nt("opening \(renderNode)")
        }
        guard DRMDiscovery.describe(render.borrowed, renderPath: renderNode)?.luid == info.luid else {
            throw NTError(.deviceRemoved, "\(renderNode) is another device now")
        }
        return DRMDevice(render: render, renderPath: renderNode, primaryPath: info.primaryNode,
                         driverName: info.driverName)
    }

    /// Allocates through GBM, then driver-native creation, then dumb buffers (see the type).
    /// An image (`fourcc` with width and height) is made as asked by GBM; by the fallbacks, and
    /// a plain buffer by all, as a linear 32-bpp surface 1024 pixels (4 KiB) wide, tall enough for
    /// `size` bytes.
    func allocate(size: UInt64, descriptor: AllocationDescriptor) throws(NTError) -> BufferObject {
        var reasons: [String] = []
        if let allocator = gbmAllocator() {
            do {
                let made = try allocator.allocate(size: size, descriptor: descriptor)
                return try adopt(made.dmaBuf, kind: .dmaBuf, size: made.size, allocator: .gbm,
                                 chosen: made.layout, layout: made.layout)
            } catch {
                reasons.append("GBM: \(error.reason)")
            }
        } else {
            reasons.append("GBM: no GBM for \(driverName)")
        }
        let rowBytes: UInt64 = 4096
        let rows = (size + rowBytes - 1) / rowBytes
        guard rows <= UInt64(UInt32.max / 4096) else {
            throw NTError(.invalidParameter, "allocation of \(size) bytes is too large for \(driverName)")
        }
        guard driverName == "virtio_gpu" || primaryPath != nil else {
            throw NTError(.notSupported, "nothing can allocate on \(driverName): "
                          + reasons.joined(separator: "; ") + "; no primary node for dumb buffers")
        }
        let dmaBuf: FileDescriptor
        let allocator: BufferAllocator
        let render = try node()
        do throws(Errno) {
            if driverName == "virtio_gpu" {
                // The handle stays open: importing the dma-buf below returns this same handle,
                // which the BufferObject then owns.
                let handle = try Kernel.virtioGPUCreate2D(render, width: 1024, height: UInt32(rows),
                                                          size: UInt32(rows * rowBytes))
                do { dmaBuf = try Kernel.primeExport(render, handle: handle, writable: true) } catch {
                    Kernel.gemClose(render, handle: handle)
                    throw error
                }
                allocator = .virtioGPU
            } else {
                let card = try primaryNode()
                let created = try Kernel.createDumb(card, width: 1024, height: UInt32(rows))
                defer { Kernel.gemClose(card, handle: created.handle) }
                dmaBuf = try Kernel.primeExport(card, handle: created.handle, writable: true)
                allocator = .dumb
            }
        } catch {
            throw error.nt("allocating \(size) bytes on \(driverName) (" + reasons.joined(separator: "; ") + ")")
        }
        // The dma-buf now holds the buffer; the device's own handle comes from importing it
        // (for virtio-gpu, the import returns the handle RESOURCE_CREATE made, now counted).
        let exportedSize: UInt64
        do { exportedSize = try Kernel.size(dmaBuf.borrowed) } catch { throw error.nt("sizing a new dma-buf") }
        return try adopt(dmaBuf, kind: .dmaBuf, size: exportedSize, allocator: allocator, chosen: nil, layout: nil)
    }

    func adopt(_ descriptor: consuming FileDescriptor, kind: BufferKind, size: UInt64,
               layout: AllocationDescriptor?) throws(NTError) -> BufferObject {
        try adopt(descriptor, kind: kind, size: size, allocator: .imported, chosen: nil, layout: layout)
    }

    /// Imports `descriptor` into the render node. `chosen` is the layout the allocator picked
    /// (kept on the buffer), `layout` what it holds (for virgl's transfers).
    private func adopt(_ descriptor: consuming FileDescriptor, kind: BufferKind, size: UInt64,
                       allocator: BufferAllocator, chosen: AllocationDescriptor?,
                       layout: AllocationDescriptor?) throws(NTError) -> BufferObject {
        guard kind == .dmaBuf else {
            throw NTError(.notSupported, "\(driverName) cannot import a system-memory (memfd) allocation; "
                                         + "open it on the software adapter")
        }
        let renderFD = try node()
        let handle = try retainImport(descriptor.rawValue, on: renderFD)
        let creator = Kernel.processID
        let access = DRMBufferAccess(device: self, render: renderFD, handle: handle, layout: layout)
        return BufferObject(descriptor: descriptor, kind: .dmaBuf, size: size, allocator: allocator, layout: chosen,
                            cpuAccess: access) { [self] in
            // A fork()ed child's copy of a parent's buffer: the handle is the parent's to close.
            guard Kernel.processID == creator else { return }
            self.releaseHandle(handle, renderFD: renderFD)
        }
    }

    /// GBM on this device, made on first use; nil when libgbm is missing or has no driver for it
    /// (also a 2D-only virtio-gpu: Mesa's virgl driver needs 3D, and its fallback makes dumb
    /// buffers, which a render node refuses). A `fork()`ed child makes its own: the parent's GBM
    /// shares its open file with the parent (its buffer handles are the parent's), so the child
    /// keeps it untouched (never destroyed: that would close handles of the parent's).
    private func gbmAllocator() -> GBMAllocator? {
        if driverName == "virtio_gpu" && !hasVirgl { return nil }
        let process = Kernel.processID
        return gbm.withLock { (state) -> GBMAllocator? in
            if state.owner == process, let made = state.allocator { return made }
            if case .some(.some(let inherited)) = state.allocator { _ = Unmanaged.passRetained(inherited) }
            let made = GBMAllocator(renderNode: render, driverName: driverName)
            state = (process, .some(made))
            return made
        }
    }

    /// The key of a GEM handle in ``handles``: handles are per open file (a child's reopen has
    /// its own).
    private static func key(_ handle: UInt32, _ render: BorrowedDescriptor) -> UInt64 {
        UInt64(UInt32(bitPattern: render.rawValue)) << 32 | UInt64(handle)
    }

    private func retainImport(_ dmaBuf: Int32, on render: BorrowedDescriptor) throws(NTError) -> UInt32 {
        let result: Result<UInt32, Errno> = handles.withLock { table in
            do throws(Errno) {
                let handle = try Kernel.primeImport(render, dmaBuf: BorrowedDescriptor(unowned: dmaBuf))
                table[Self.key(handle, render), default: 0] += 1
                return .success(handle)
            } catch {
                return .failure(error)
            }
        }
        switch result {
        case .success(let handle): return handle
        case .failure(let error):
            if error == .noDevice || error == .invalidArgument {
                throw NTError(.notSupported, "\(driverName) cannot import this dma-buf (\(error)); "
                                             + "it belongs to a device this one cannot share with")
            }
            throw error.nt("importing a dma-buf into \(driverName)")
        }
    }

    private func releaseHandle(_ handle: UInt32, renderFD: BorrowedDescriptor) {
        handles.withLock { table in
            let key = Self.key(handle, renderFD)
            guard let count = table[key] else { return }
            if count > 1 {
                table[key] = count - 1
            } else {
                table[key] = nil
                Kernel.gemClose(renderFD, handle: handle)
            }
        }
    }


    /// Refuses sync objects on a device without timeline syncobjs.
    func requireTimelines() throws(NTError) {
        guard hasTimelines else {
            throw NTError(.notSupported, "\(driverName) has no timeline syncobjs (DRM_CAP_SYNCOBJ_TIMELINE)")
        }
    }

    /// A new timeline syncobj, as a descriptor only: the handle on this device is destroyed once
    /// exported (`DRM_IOCTL_SYNCOBJ_CREATE`, `HANDLE_TO_FD`, `DESTROY`).
    func makeTimelineDescriptor() throws(NTError) -> FileDescriptor {
        try requireTimelines()
        let render = try node()
        do {
            let handle = try Kernel.syncobjCreate(render)
            defer { Kernel.syncobjDestroy(render, handle) }
            return try Kernel.syncobjExport(render, handle)
        } catch {
            throw error.nt("creating a timeline syncobj on \(driverName)")
        }
    }

    private func primaryNode() throws(Errno) -> BorrowedDescriptor {
        guard let primaryPath else { throw .noDevice }
        return try primary.withLock { (node: inout FileDescriptor?) throws(Errno) -> BorrowedDescriptor in
            if let open = node?.borrowed { return open }
            let opened = try Kernel.open(primaryPath, O_RDWR)
            let borrowed = opened.borrowed
            node = consume opened
            return borrowed
        }
    }
}
