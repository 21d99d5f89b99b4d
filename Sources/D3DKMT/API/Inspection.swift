#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// What a shared NT handle holds, read without changing it (`kmt inspect`).
///
/// Made by ``SharedHandle/inspect()`` and its relatives. Inspecting peeks at the handle's package
/// (`MSG_PEEK`: it stays queued), reads the shared pages of its keyed mutex and sync object and
/// queries its DRM syncobjs; it acquires, releases, signals and writes nothing, and every
/// descriptor it took is closed before it returns.
public struct HandleReport: Hashable, Sendable {
    /// The adapter the sharer created the objects on.
    public struct AdapterReport: Hashable, Sendable {
        /// The sharer's adapter LUID, as the package carries it.
        public var luid: LUID
        /// The kernel driver of the adapter with that LUID on this machine (`"software"` for the
        /// software adapter), nil when no adapter here has it.
        public var driverName: String?
        /// Its render node, when it is a DRM adapter here.
        public var renderNode: String?
    }

    /// One allocation of a shared resource.
    public struct AllocationReport: Hashable, Sendable {
        /// The allocation's size and layout (width, height, stride, DRM fourcc and modifier) as
        /// its creator described it (`D3DKMT_LINUX_ALLOCATION_DESC`).
        public var layout: AllocationDescriptor
        /// Bytes the buffer itself holds (at least ``AllocationDescriptor/size``: page rounding).
        public var bufferSize: UInt64
        /// True for a DRM PRIME dma-buf, false for a memfd (system memory).
        public var isDmaBuf: Bool
        /// Bytes of the runtime's private driver data for this allocation.
        public var driverDataSize: Int
    }

    /// A shared resource.
    public struct ResourceReport: Hashable, Sendable {
        /// Bytes of runtime private data now (`PrivateRuntimeDataSize`; it lives in a shared
        /// page that `D3DKMT_ESCAPE_UPDATE_RESOURCE_WINE` can replace).
        public var runtimeDataSize: Int
        /// Bytes of the resource's own driver data (`ResourcePrivateDriverDataSize`).
        public var resourceDriverDataSize: Int
        /// Every allocation's driver data, packed (`TotalPrivateDriverDataSize`).
        public var totalAllocationDriverDataSize: Int
        /// The allocations, in order.
        public var allocations: [AllocationReport]
    }

    /// A keyed mutex, as its shared state page says now.
    public struct KeyedMutexReport: Hashable, Sendable {
        /// While free: the key of the last release (the initial key before any), which the next
        /// acquire must ask for. While owned: the key it was acquired with.
        public var key: UInt64
        /// Some open of the mutex holds it.
        public var isOwned: Bool
        /// While owned, the owning open's presence slot (each open of the mutex, in any process,
        /// holds a lock on a byte of the state memfd for its life); else nil.
        public var ownerSlot: UInt32?
        /// The process holding that slot, in the caller's pid namespace: nil when not owned, or
        /// when the owner is not a process whose descriptors the caller can read (another pid
        /// namespace, another user) or is gone.
        public var ownerProcessID: Int32?
        /// Whether the owning open still exists (its slot is locked); nil when not owned. An
        /// owner that died is noticed by the next waiter, which abandons the mutex.
        public var ownerIsRunning: Bool?
        /// An owner died or destroyed the mutex while owning it: every acquire fails for good.
        public var isAbandoned: Bool
        /// The fence value the last release recorded (what the next acquire returns).
        public var fenceValue: UInt64
        /// Some thread is (or was, since the last release) waiting to acquire.
        public var hasWaiters: Bool
        /// Releases so far, modulo 2^29.
        public var generation: UInt32
        /// Bytes of private runtime data the mutex was created with (its capacity).
        public var runtimeDataSize: Int
        /// Bytes of private data the last release stored.
        public var releaseDataSize: Int
        /// The mutex carries a DRM timeline syncobj for its fence values.
        public var hasTimeline: Bool
        /// The point that timeline has reached (`DRM_IOCTL_SYNCOBJ_QUERY`), nil without one or
        /// when no device here can query it.
        public var timelinePoint: UInt64?
    }

    /// A sync object.
    public struct SyncObjectReport: Hashable, Sendable {
        /// Its type, nil for a type this build does not know (``type`` has the raw value).
        public var kind: SyncObject.Kind?
        /// `D3DDDI_SYNCHRONIZATIONOBJECT_TYPE` as the package carries it.
        public var type: UInt32
        /// `D3DDDI_SYNCHRONIZATIONOBJECT_FLAGS` as created.
        public var flags: UInt32
        /// What an opener may do (`D3DDDI_SYNC_OBJECT_*`).
        public var access: UInt32
        /// True when it is a DRM timeline syncobj, false when it lives in shared memory alone.
        public var isDRM: Bool
        /// The value it has reached (the timeline's point on DRM), nil when it cannot be read
        /// here (``valueError`` says why).
        public var value: UInt64?
        /// The shared copy of the value (`FenceValueCPUVirtualAddress`; on DRM, never ahead of
        /// ``value``); nil for a DRM `D3DDDI_FENCE`, which has none.
        public var sharedValue: UInt64?
        /// Threads sleeping in a CPU wait for a software fence now (nil on DRM, where the kernel
        /// keeps its waiters).
        public var sleepingWaiters: UInt32?
        /// Why ``value`` is nil.
        public var valueError: String?
    }

    /// `dwDesiredAccess` of the share: what openers of this handle may do.
    public var access: UInt32
    /// The adapter of the objects.
    public var adapter: AdapterReport
    /// Descriptors the handle carries (buffers, pages, syncobjs).
    public var descriptorCount: Int
    /// The resource, when the handle holds one.
    public var resource: ResourceReport?
    /// The keyed mutex, when the handle holds one (with its resource).
    public var keyedMutex: KeyedMutexReport?
    /// The sync object, when the handle holds one (with its resource, or alone).
    public var syncObject: SyncObjectReport?
}

/// A shared handle another process holds, found by ``SharedHandle/inspectProcess(_:)``.
public struct ProcessHandleReport: Hashable, Sendable {
    /// Its descriptor number in that process.
    public var descriptor: Int32
    /// What it holds.
    public var report: HandleReport
}

/// A live name of the caller's namespace (``SharedHandle/liveNames()``).
public struct LiveName: Hashable, Sendable {
    /// What kind of object a name names.
    public enum Kind: String, Hashable, Sendable {
        /// A resource (with or without its keyed mutex and sync object): open it with
        /// ``SharedHandle/open(name:access:)``.
        case resource
        /// A sync object shared alone: ``SharedHandle/openSyncObject(name:access:)``.
        case syncObject
    }

    /// The name as the namespace keeps it: `S:` (the user's session namespace) or `G:` (its
    /// global one), then the object's name folded to upper case.
    public var canonicalName: String
    /// True for the global namespace (`Global\X`, `\BaseNamedObjects\X`).
    public var isGlobal: Bool
    /// The object's name without its namespace, folded to upper case.
    public var objectName: String
    /// A spelling that opens it again: `X` for a session name, `Global\X` for a global one.
    public var openableName: String { isGlobal ? "Global\\" + objectName : objectName }
    /// What it names.
    public var kind: Kind
}

extension SharedHandle {
    /// What this handle holds (see ``HandleReport``); the handle is left as it was.
    ///
    /// - Throws: `STATUS_INVALID_PARAMETER` when the descriptor is not a shared NT handle or its
    ///   package is malformed; `STATUS_INVALID_HANDLE` for a closed descriptor.
    public borrowing func inspect() throws(NTError) -> HandleReport {
        try Inspector.inspect(descriptor.rawValue)
    }

    /// What the object named `name` in the caller's namespace holds: a resource's name or a sync
    /// object's. The name and its objects are left as they were.
    ///
    /// - Throws: `STATUS_OBJECT_NAME_NOT_FOUND`, `STATUS_OBJECT_NAME_INVALID`,
    ///   `STATUS_OBJECT_PATH_NOT_FOUND`; `STATUS_ACCESS_DENIED` for an unsafe namespace directory.
    public static func inspect(name: String) throws(NTError) -> HandleReport {
        let handle: SharedHandle
        do {
            handle = try Names.resolve(name, kind: .resource)
        } catch where error.status == .objectTypeMismatch {
            handle = try Names.resolve(name, kind: .syncObject)
        }
        return try handle.inspect()
    }

    /// A copy, in this process, of descriptor `descriptor` of process `pid` (`pidfd_getfd(2)`):
    /// the same handle, as `SCM_RIGHTS` would pass it. Nothing is checked until it is used.
    ///
    /// - Throws: `STATUS_INVALID_PARAMETER` when there is no such process or it has no such
    ///   descriptor; `STATUS_ACCESS_DENIED` when the caller may not ptrace it (another user, or
    ///   Yama's `ptrace_scope`); `STATUS_NOT_SUPPORTED` without pidfds (Linux < 5.6, glibc < 2.36).
    public static func copy(fromProcess pid: Int32, descriptor: Int32) throws(NTError) -> SharedHandle {
        let process = try Inspector.openProcess(pid)
        do {
            return SharedHandle(try Kernel.copyDescriptor(descriptor,
                                                          fromProcess: process.borrowed))
        } catch {
            switch error.rawValue {
            case EBADF: throw NTError(.invalidParameter, "process \(pid) has no descriptor \(descriptor)")
            case ESRCH: throw NTError(.invalidParameter, "process \(pid) has exited")
            default: throw error.nt("taking descriptor \(descriptor) of process \(pid)")
            }
        }
    }

    /// Every shared NT handle process `pid` holds, with what it holds: each `AF_UNIX` socket in
    /// its descriptor table (`/proc/PID/fd`) is copied (`pidfd_getfd`) and kept when its queued
    /// message is a valid share package. (A process that shared names holds its names' objects'
    /// descriptors open for its event thread to serve them from; those are not handles.) Nothing
    /// is changed in the process or its handles.
    ///
    /// - Throws: as ``copy(fromProcess:descriptor:)``.
    public static func inspectProcess(_ pid: Int32) throws(NTError) -> [ProcessHandleReport] {
        let process = try Inspector.openProcess(pid)
        let table: [(fd: Int32, target: String)]
        do { table = try Kernel.processDescriptors(pid) } catch {
            throw error == .noSuchFile ? NTError(.invalidParameter, "no process \(pid)")
                                       : error.nt("reading the descriptors of process \(pid)")
        }
        var found: [ProcessHandleReport] = []
        for (fd, target) in table where target.hasPrefix("socket:") {
            let copy: FileDescriptor
            do {
                copy = try Kernel.copyDescriptor(fd, fromProcess: process.borrowed)
            } catch {
                if error == .badFileDescriptor { continue }  // closed since the table was read
                throw error.nt("taking descriptor \(fd) of process \(pid)")
            }
            // Sockets that are not shared handles (other kinds, listeners, empty queues, other
            // messages) are skipped.
            guard let report = try? Inspector.inspect(copy.rawValue) else { continue }
            found.append(ProcessHandleReport(descriptor: fd, report: report))
        }
        return found
    }

    /// The live names of the caller's namespace, sorted: those whose sharer's name thread answers
    /// (stale names of sharers that died are left out). Listing them changes none of them.
    ///
    /// - Throws: `STATUS_ACCESS_DENIED` when the namespace directory is not the caller's own.
    public static func liveNames() throws(NTError) -> [LiveName] {
        try Names.live().map { listed in
            let isGlobal = listed.canonicalName.hasPrefix("G:")
            return LiveName(canonicalName: listed.canonicalName, isGlobal: isGlobal,
                            objectName: String(listed.canonicalName.dropFirst(2)),
                            kind: listed.kind == .resource ? .resource : .syncObject)
        }
    }
}

/// The reading behind ``HandleReport``.
enum Inspector {
    static func openProcess(_ pid: Int32) throws(NTError) -> FileDescriptor {
        do { return try Kernel.openProcess(pid) } catch {
            throw error.rawValue == ESRCH ? NTError(.invalidParameter, "no process \(pid)")
                                          : error.nt("opening process \(pid) (pidfd_open)")
        }
    }

    static func inspect(_ fd: Int32) throws(NTError) -> HandleReport {
        let opened = try SharedPackageReader.open(fd)
        let package = opened.package
        let here = try? Adapter.open(luid: package.adapterLUID)
        var report = HandleReport(
            access: package.access,
            adapter: HandleReport.AdapterReport(luid: package.adapterLUID, driverName: here?.info.driverName,
                                                renderNode: here?.info.renderNode),
            descriptorCount: Int(package.descriptorCount))
        if package.contents.contains(.resource) {
            let allocations = package.allocations.map { record in
                let buffer = record.buffer!  // measured when the package was read
                return HandleReport.AllocationReport(layout: record.layout, bufferSize: buffer.size,
                                                     isDmaBuf: buffer.kind == .dmaBuf,
                                                     driverDataSize: record.driverData.count)
            }
            report.resource = HandleReport.ResourceReport(
                runtimeDataSize: try opened.runtimeData().count,
                resourceDriverDataSize: package.resourceDriverData.count,
                totalAllocationDriverDataSize: allocations.reduce(0) { $0 + $1.driverDataSize },
                allocations: allocations)
        }
        if let record = package.keyedMutex {
            report.keyedMutex = try keyedMutex(record, opened.descriptors, adapter: here)
        }
        if let record = package.syncObject {
            report.syncObject = try syncObject(record, opened.descriptors, adapter: here,
                                               access: package.syncObjectAccess)
        }
        return report
    }

    private static func keyedMutex(_ record: SharePackage.KeyedMutexRecord, _ descriptors: ReceivedDescriptors,
                                   adapter: Adapter?) throws(NTError) -> HandleReport.KeyedMutexReport {
        // The page alone, mapped: opening the mutex would claim a presence slot.
        let page = try KeyedMutexState.inspectionPage(descriptors.take(Int(record.stateDescriptorIndex)))
        let now = try KeyedMutexState.snapshot(of: page)
        var ownerProcessID: Int32?
        var ownerIsRunning: Bool?
        if let slot = now.ownerSlot {
            let offset = Presence.base + Int64(slot)
            // The received memfd's open file description is not any open's own (each open locks
            // through a reopen), so it sees every presence lock.
            ownerIsRunning = try? Kernel.byteIsLocked(page.descriptor.borrowed, at: offset)
            if ownerIsRunning != false, let identity = try? Kernel.lockFileIdentity(page.descriptor.borrowed) {
                ownerProcessID = Kernel.ofdLockHolders(identity: identity, offset: offset, linkPrefix: "/memfd:").first
            }
        }
        var timelinePoint: UInt64?
        let hasTimeline = record.syncobjDescriptorIndex != SharePackage.noDescriptor
        if hasTimeline {
            // A syncobj imports into any DRM device with syncobjs; the sharer's adapter first.
            let candidates = [adapter].compactMap { $0 } + Adapter.enumerate()
            if let device = candidates.lazy.filter({ $0.info.capabilities.contains(.timelineSyncObject) })
                .compactMap({ try? $0.makeDevice() }).first {
                timelinePoint = try? device.backend.importTimeline(descriptors.peek(Int(record.syncobjDescriptorIndex)))
                    .currentPoint()
            }
        }
        return HandleReport.KeyedMutexReport(
            key: now.key, isOwned: now.owned, ownerSlot: now.ownerSlot, ownerProcessID: ownerProcessID,
            ownerIsRunning: ownerIsRunning, isAbandoned: now.abandoned, fenceValue: now.fenceValue,
            hasWaiters: now.waiters, generation: now.generation, runtimeDataSize: record.runtimeData.count,
            releaseDataSize: now.dataSize, hasTimeline: hasTimeline, timelinePoint: timelinePoint)
    }

    private static func syncObject(_ record: SharePackage.SyncObjectRecord, _ descriptors: ReceivedDescriptors,
                                   adapter: Adapter?, access: UInt32) throws(NTError) -> HandleReport.SyncObjectReport {
        let fenceState = record.stateDescriptorIndex == SharePackage.noDescriptor
            ? nil : try FenceState.open(descriptors.take(Int(record.stateDescriptorIndex)))
        let isDRM = record.syncobjDescriptorIndex != SharePackage.noDescriptor
        var report = HandleReport.SyncObjectReport(
            kind: SyncObject.Kind(rawValue: record.type), type: record.type, flags: record.flags, access: access,
            isDRM: isDRM, value: nil, sharedValue: fenceState?.value,
            sleepingWaiters: isDRM ? nil : fenceState?.sleepingWaiters, valueError: nil)
        guard isDRM else {
            report.value = fenceState?.value
            return report
        }
        // The timeline's point, queried on a device of the sharer's adapter. A query through
        // SyncObject.currentValue() would also bring the shared copy up to date: not done here.
        guard let adapter else {
            report.valueError = "the sharer's adapter is not on this machine"
            return report
        }
        do {
            let device = try adapter.makeDevice()
            report.value = try device.backend.importTimeline(descriptors.peek(Int(record.syncobjDescriptorIndex)))
                .currentPoint()
        } catch {
            report.valueError = "\(error)"
        }
        return report
    }
}
