/// A DRM timeline syncobj on a device's render node: the kernel side of a fence on a DRM
/// adapter. Its handle belongs to this object and is destroyed with it.
final class DRMTimeline: KernelTimeline {
    let device: DRMDevice
    let handle: UInt32
    /// The open render node the handle belongs to (the device's, or a `fork()`ed child's reopen).
    let fd: BorrowedDescriptor
    /// The process that made the handle: in a `fork()`ed child the handle is the parent's, used
    /// (the syncobj is the same) but never destroyed.
    private let creator: Int32

    /// Takes ownership of `handle`, a syncobj on `device`'s render node `fd` (``DRMDevice/node()``).
    init(device: DRMDevice, handle: UInt32, on fd: BorrowedDescriptor) {
        self.device = device
        self.handle = handle
        self.fd = fd
        self.creator = Kernel.processID
    }

    deinit {
        if Kernel.processID == creator { Kernel.syncobjDestroy(fd, handle) }
    }

    func currentPoint() throws(NTError) -> UInt64 {
        do { return try Kernel.syncobjQuery(fd, handle) } catch { throw error.nt("querying a syncobj") }
    }

    func signal(_ point: UInt64) throws(NTError) {
        do {
            try Kernel.syncobjTimelineSignal(fd, handle, point: point)
        } catch {
            throw error.nt("signalling a syncobj")
        }
    }

    func exportDescriptor() throws(NTError) -> FileDescriptor {
        do { return try Kernel.syncobjExport(fd, handle) } catch { throw error.nt("exporting a syncobj") }
    }

    /// The fence of `point` moved into a temporary binary syncobj and exported from there
    /// (`DRM_IOCTL_SYNCOBJ_TRANSFER`, `HANDLE_TO_FD` with `EXPORT_SYNC_FILE`).
    func exportSyncFile(point: UInt64) throws(NTError) -> FileDescriptor {
        do {
            let binary = try Kernel.syncobjCreate(fd)
            defer { Kernel.syncobjDestroy(fd, binary) }
            try Kernel.syncobjTransfer(fd, destination: binary, destinationPoint: 0, source: handle, sourcePoint: point)
            return try Kernel.syncobjExportSyncFile(fd, binary)
        } catch {
            throw error == .invalidArgument || error == .noSuchFile
                ? NTError(.invalidParameter, "no fence for value \(point) yet") : error.nt("exporting a sync_file")
        }
    }

    func signal(_ point: UInt64, whenSignalled syncFile: Int32) throws(NTError) {
        let submitted: UInt64
        do { submitted = try Kernel.syncobjQuery(fd, handle, lastSubmitted: true) } catch {
            throw error.nt("querying a syncobj")
        }
        guard point > submitted else {
            throw NTError(.invalidParameter, "fence value \(point) is not above \(submitted), the last value "
                                             + "already signalled or submitted (fence values only grow)")
        }
        do {
            let binary = try Kernel.syncobjCreate(fd)
            defer { Kernel.syncobjDestroy(fd, binary) }
            try Kernel.syncobjImportSyncFile(fd, binary, syncFile: BorrowedDescriptor(unowned: syncFile))
            try Kernel.syncobjTransfer(fd, destination: handle, destinationPoint: point, source: binary, sourcePoint: 0)
        } catch {
            throw error == .invalidArgument || error == .badFileDescriptor
                ? NTError(.invalidParameter, "descriptor \(syncFile) is not a sync_file")
                : error.nt("putting a sync_file's fence on a timeline")
        }
    }

    func notify(eventfd: Int32, point: UInt64) throws(NTError) {
        do {
            try Kernel.syncobjEventfd(fd, handle, point: point, eventfd: BorrowedDescriptor(unowned: eventfd))
        } catch {
            throw error.nt("registering a syncobj eventfd")
        }
    }

    /// One `DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT` (with `WAIT_FOR_SUBMIT`) over every entry.
    func wait(_ entries: [(timeline: any KernelTimeline, point: UInt64)], all: Bool,
              until deadline: Deadline) throws(NTError) -> Bool {
        var handles: [UInt32] = []
        for (timeline, _) in entries {
            guard let drm = timeline as? DRMTimeline, drm.device === device, drm.fd == fd else {
                throw NTError(.invalidParameter, "sync objects of different devices")
            }
            handles.append(drm.handle)
        }
        do {
            _ = try Kernel.syncobjWait(fd, handles: handles, points: entries.map(\.point), all: all, until: deadline)
            return true
        } catch {
            guard error == .timerExpired || error == .timedOut else { throw error.nt("waiting for syncobjs") }
            return false
        }
    }

    /// One `DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT` (with `WAIT_FOR_SUBMIT`) on this timeline alone.
    func wait(for point: UInt64, until deadline: Deadline) throws(NTError) -> Bool {
        do {
            try Kernel.syncobjWait(fd, handle, point: point, until: deadline)
            return true
        } catch {
            guard error == .timerExpired || error == .timedOut else { throw error.nt("waiting for a syncobj") }
            return false
        }
    }
}

extension DRMDevice {
    func makeTimeline() throws(NTError) -> (any KernelTimeline)? {
        try requireTimelines()
        let render = try node()
        do { return DRMTimeline(device: self, handle: try Kernel.syncobjCreate(render), on: render) } catch {
            throw error.nt("creating a syncobj on \(driverName)")
        }
    }

    func importTimeline(_ descriptor: Int32) throws(NTError) -> any KernelTimeline {
        try requireTimelines()
        guard descriptor >= 0, Kernel.isSyncobj(BorrowedDescriptor(unowned: descriptor)) else {
            if let missing = NTError.withoutProc("telling a DRM syncobj") { throw missing }
            throw NTError(.invalidParameter, "descriptor \(descriptor) is not a DRM syncobj")
        }
        let render = try node()
        do {
            let handle = try Kernel.syncobjImport(render, BorrowedDescriptor(unowned: descriptor))
            return DRMTimeline(device: self, handle: handle, on: render)
        } catch {
            throw error.nt("importing a syncobj")
        }
    }

    /// The sync_file's fence into a temporary binary syncobj, then moved to point 1 of a new
    /// timeline (`FD_TO_HANDLE` with `IMPORT_SYNC_FILE`, `TRANSFER`).
    func importSyncFile(_ syncFile: Int32) throws(NTError) -> any KernelTimeline {
        guard let made = try makeTimeline() as? DRMTimeline else { throw NTError(.notSupported, "no timeline") }
        let fd = made.fd
        do {
            let binary = try Kernel.syncobjCreate(fd)
            defer { Kernel.syncobjDestroy(fd, binary) }
            try Kernel.syncobjImportSyncFile(fd, binary, syncFile: BorrowedDescriptor(unowned: syncFile))
            try Kernel.syncobjTransfer(fd, destination: made.handle, destinationPoint: 1, source: binary,
                                       sourcePoint: 0)
        } catch {
            throw error == .invalidArgument || error == .badFileDescriptor
                ? NTError(.invalidParameter, "descriptor \(syncFile) is not a sync_file")
                : error.nt("importing a sync_file")
        }
        return made
    }
}
