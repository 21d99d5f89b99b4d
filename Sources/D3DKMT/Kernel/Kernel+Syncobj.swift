#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CKMTShims
import CLibDRM

/// DRM syncobjs and the sync_files they exchange fences with. Syncobj descriptors and sync_files
/// come from the kernel close-on-exec. Every call is an ioctl (``Call/ioctl``) for the fault seam.
extension Kernel {
    /// `DRM_IOCTL_SYNCOBJ_CREATE`.
    static func syncobjCreate(_ fd: BorrowedDescriptor, signaled: Bool = false) throws(Errno) -> UInt32 {
        var handle: UInt32 = 0
        try libdrm { drmSyncobjCreate(fd.rawValue, signaled ? UInt32(DRM_SYNCOBJ_CREATE_SIGNALED) : 0, &handle) }
        return handle
    }

    /// `DRM_IOCTL_SYNCOBJ_DESTROY`; errors are ignored (not subject to the fault seam).
    static func syncobjDestroy(_ fd: BorrowedDescriptor, _ handle: UInt32) {
        _ = drmSyncobjDestroy(fd.rawValue, handle)
    }

    /// `DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD`: a syncobj descriptor another process or device can import.
    static func syncobjExport(_ fd: BorrowedDescriptor, _ handle: UInt32) throws(Errno) -> FileDescriptor {
        var out: Int32 = -1
        try libdrm { drmSyncobjHandleToFD(fd.rawValue, handle, &out) }
        return FileDescriptor(adopting: out)
    }

    /// `DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE`.
    static func syncobjImport(_ fd: BorrowedDescriptor, _ syncobj: BorrowedDescriptor) throws(Errno) -> UInt32 {
        var handle: UInt32 = 0
        try libdrm { drmSyncobjFDToHandle(fd.rawValue, syncobj.rawValue, &handle) }
        return handle
    }

    /// `DRM_IOCTL_SYNCOBJ_SIGNAL` (binary syncobjs).
    static func syncobjSignal(_ fd: BorrowedDescriptor, _ handle: UInt32) throws(Errno) {
        var handle = handle
        try libdrm { drmSyncobjSignal(fd.rawValue, &handle, 1) }
    }

    /// `DRM_IOCTL_SYNCOBJ_TIMELINE_SIGNAL`: signals `point` on a timeline syncobj.
    static func syncobjTimelineSignal(_ fd: BorrowedDescriptor, _ handle: UInt32, point: UInt64) throws(Errno) {
        var handle = handle
        var point = point
        try libdrm { drmSyncobjTimelineSignal(fd.rawValue, &handle, &point, 1) }
    }

    /// `DRM_IOCTL_SYNCOBJ_QUERY`: the timeline's last signalled point, or with `lastSubmitted`
    /// (`DRM_SYNCOBJ_QUERY_FLAGS_LAST_SUBMITTED`) the last point that has a fence, signalled or not.
    static func syncobjQuery(_ fd: BorrowedDescriptor, _ handle: UInt32,
                             lastSubmitted: Bool = false) throws(Errno) -> UInt64 {
        var handle = handle
        var point: UInt64 = 0
        let flags = lastSubmitted ? UInt32(DRM_SYNCOBJ_QUERY_FLAGS_LAST_SUBMITTED) : 0
        try libdrm { drmSyncobjQuery2(fd.rawValue, &handle, &point, 1, flags) }
        return point
    }

    /// `DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT` until `deadline`: for each handle its point (0 on a binary
    /// syncobj), all of them or any one. Waits for the fence to be submitted
    /// (`WAIT_FOR_SUBMIT`), as a CPU waiter on a not-yet-signalled point expects.
    ///
    /// - Returns: the index of the first signalled handle (meaningful for wait-any).
    /// - Throws: `ETIME` when the deadline passes.
    static func syncobjWait(
        _ fd: BorrowedDescriptor, handles: [UInt32], points: [UInt64], all: Bool, until deadline: Deadline
    ) throws(Errno) -> Int {
        var handles = handles
        var points = points
        var first: UInt32 = 0
        var flags = UInt32(DRM_SYNCOBJ_WAIT_FLAGS_WAIT_FOR_SUBMIT)
        if all { flags |= UInt32(DRM_SYNCOBJ_WAIT_FLAGS_WAIT_ALL) }
        // drmIoctl restarts on EINTR with the same absolute deadline.
        try libdrm {
            drmSyncobjTimelineWait(
                fd.rawValue, &handles, &points, UInt32(handles.count), deadline.nanoseconds, flags, &first)
        }
        return Int(first)
    }

    /// ``syncobjWait(_:handles:points:all:until:)`` for one handle and point, without lists.
    ///
    /// - Throws: `ETIME` when the deadline passes.
    static func syncobjWait(_ fd: BorrowedDescriptor, _ handle: UInt32, point: UInt64,
                            until deadline: Deadline) throws(Errno) {
        var handle = handle
        var point = point
        var first: UInt32 = 0
        let flags = UInt32(DRM_SYNCOBJ_WAIT_FLAGS_WAIT_FOR_SUBMIT | DRM_SYNCOBJ_WAIT_FLAGS_WAIT_ALL)
        try libdrm { drmSyncobjTimelineWait(fd.rawValue, &handle, &point, 1, deadline.nanoseconds, flags, &first) }
    }

    /// `DRM_IOCTL_SYNCOBJ_EVENTFD` (Linux 6.6): `eventfd` becomes readable when `point` signals
    /// (point 0: the binary syncobj's fence).
    static func syncobjEventfd(_ fd: BorrowedDescriptor, _ handle: UInt32, point: UInt64,
                               eventfd: BorrowedDescriptor) throws(Errno) {
        var request = kmt_drm_syncobj_eventfd(handle: handle, flags: 0, point: point, fd: eventfd.rawValue, pad: 0)
        try ioctl(fd, kmt_DRM_IOCTL_SYNCOBJ_EVENTFD, &request)
    }

    /// Whether the device answers `DRM_IOCTL_SYNCOBJ_EVENTFD` (Linux 6.6 and later, on a driver with
    /// syncobjs). Asked about syncobj handle 0, which never exists: a kernel that has the ioctl looks
    /// the handle up and answers `ENOENT`; an older one does not know the ioctl (`EINVAL`), a driver
    /// without syncobjs refuses it (`EOPNOTSUPP`).
    static func hasSyncobjEventfd(_ fd: BorrowedDescriptor) -> Bool {
        var request = kmt_drm_syncobj_eventfd(handle: 0, flags: 0, point: 0, fd: -1, pad: 0)
        do { try ioctl(fd, kmt_DRM_IOCTL_SYNCOBJ_EVENTFD, &request) } catch { return error.rawValue == ENOENT }
        return true  // not expected: handle 0 is never a syncobj
    }

    /// `DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE` with `IMPORT_SYNC_FILE`: puts a sync_file's fence in a
    /// syncobj.
    static func syncobjImportSyncFile(_ fd: BorrowedDescriptor, _ handle: UInt32,
                                      syncFile: BorrowedDescriptor) throws(Errno) {
        try libdrm { drmSyncobjImportSyncFile(fd.rawValue, handle, syncFile.rawValue) }
    }

    /// `DRM_IOCTL_SYNCOBJ_TRANSFER`: puts the fence of `source` at `sourcePoint` into
    /// `destination` at `destinationPoint` (point 0: a binary syncobj).
    static func syncobjTransfer(
        _ fd: BorrowedDescriptor, destination: UInt32, destinationPoint: UInt64, source: UInt32, sourcePoint: UInt64
    ) throws(Errno) {
        try libdrm { drmSyncobjTransfer(fd.rawValue, destination, destinationPoint, source, sourcePoint, 0) }
    }

    /// `DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD` with `EXPORT_SYNC_FILE`: a binary syncobj's fence as a
    /// sync_file.
    static func syncobjExportSyncFile(_ fd: BorrowedDescriptor, _ handle: UInt32) throws(Errno) -> FileDescriptor {
        var out: Int32 = -1
        try libdrm { drmSyncobjExportSyncFile(fd.rawValue, handle, &out) }
        return FileDescriptor(adopting: out)
    }

    /// Whether `fd` is a DRM syncobj file (the kernel names its anonymous inode `syncobj_file`).
    static func isSyncobj(_ fd: BorrowedDescriptor) -> Bool {
        readLink("/proc/self/fd/\(fd)") == "anon_inode:syncobj_file"
    }
}
