import D3DKMT
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// What a local `D3DKMT_HANDLE` names.
enum LocalObject: Sendable {
    case adapter(Adapter)
    case device(Device, adapter: UInt32)
    /// A resource and its allocations' handles.
    case resource(Resource, device: UInt32, allocations: [UInt32])
    /// An allocation; `resource` is 0 for a standalone one.
    case allocation(Allocation, device: UInt32, resource: UInt32)
    /// A keyed mutex (keyed mutexes belong to no device).
    case keyedMutex(KeyedMutex)
    /// A sync object; `device` is 0 when it was opened without one
    /// (`D3DKMTOpenSyncObjectFromNtHandle`).
    case syncObject(SyncObject, device: UInt32)

    var device: UInt32? {
        switch self {
        case .adapter, .device, .keyedMutex: return nil
        case .resource(_, let device, _), .allocation(_, let device, _), .syncObject(_, let device): return device
        }
    }
}

/// The process's table of local `D3DKMT_HANDLE`s.
///
/// Handles have Windows' shape, which clients rely on to tell local handles from global ones:
/// bits 31 and 30 set, the low 6 bits clear (a global handle has 2 there), consecutive objects
/// 0x40 apart. In between, bits 6...24 are the slot + 1 and bits 25...29 a generation, so a handle
/// is never 0, and a handle whose slot was freed and reused no longer matches (the generation
/// moved on): a stale handle is refused instead of naming someone else's object. The generation
/// has 5 bits: a slot's 32nd reuse gives its first handle back. Freed slots are therefore reused
/// oldest first, and only once ``quarantine`` others are waiting, so a stale handle can name a new
/// object only after at least 32 × 4,096 objects were made since it was destroyed. Every access
/// holds one lock; the C ABI is safe to call from any thread.
struct HandleTable: ~Copyable {
    private var slots: [(generation: UInt32, object: LocalObject?)] = []
    /// Freed slots, oldest first from `freeHead`.
    private var free: [Int] = []
    private var freeHead = 0
    /// Slot numbers + 1 fill bits 6...24.
    static let maximumSlots = (1 << 19) - 1
    static let quarantine = 4096
    private static let generationMask: UInt32 = 0x1F

    private static func decode(_ handle: UInt32) -> (slot: Int, generation: UInt32)? {
        guard handle & 0xC000_003F == 0xC000_0000 else { return nil }
        let slot = Int((handle >> 6) & 0x7_FFFF) - 1
        guard slot >= 0 else { return nil }
        return (slot, (handle >> 25) & generationMask)
    }

    private static func encode(slot: Int, generation: UInt32) -> UInt32 {
        0xC000_0000 | (generation << 25) | (UInt32(slot + 1) << 6)
    }

    /// Registers `object`; nil when the table is full.
    mutating func insert(_ object: LocalObject) -> UInt32? {
        let slot: Int
        let waiting = free.count - freeHead
        if waiting > Self.quarantine || (waiting > 0 && slots.count >= Self.maximumSlots) {
            slot = free[freeHead]
            freeHead += 1
            if freeHead >= 1024 {
                free.removeFirst(freeHead)
                freeHead = 0
            }
            slots[slot].object = object
        } else {
            guard slots.count < Self.maximumSlots else { return nil }
            slot = slots.count
            slots.append((0, object))
        }
        return Self.encode(slot: slot, generation: slots[slot].generation)
    }

    func lookup(_ handle: UInt32) -> LocalObject? {
        guard let (slot, generation) = Self.decode(handle), slot < slots.count,
              slots[slot].generation == generation else { return nil }
        return slots[slot].object
    }

    mutating func replace(_ handle: UInt32, with object: LocalObject) {
        guard let (slot, _) = Self.decode(handle), lookup(handle) != nil else { return }
        slots[slot].object = object
    }

    @discardableResult
    mutating func remove(_ handle: UInt32) -> LocalObject? {
        guard let (slot, _) = Self.decode(handle), let object = lookup(handle) else { return nil }
        slots[slot] = ((slots[slot].generation + 1) & Self.generationMask, nil)
        free.append(slot)
        return object
    }

    /// Registers a resource and each of its allocations, all or nothing.
    ///
    /// - Returns: the resource's handle and its allocations' handles, or nil when the table is full.
    mutating func insertResource(_ resource: Resource, device: UInt32) -> (resource: UInt32, allocations: [UInt32])? {
        guard let resourceHandle = insert(.resource(resource, device: device, allocations: [])) else { return nil }
        var allocationHandles: [UInt32] = []
        for allocation in resource.allocations {
            guard let handle = insert(.allocation(allocation, device: device, resource: resourceHandle)) else {
                for made in allocationHandles + [resourceHandle] { remove(made) }
                return nil
            }
            allocationHandles.append(handle)
        }
        replace(resourceHandle, with: .resource(resource, device: device, allocations: allocationHandles))
        return (resourceHandle, allocationHandles)
    }

    /// Every live handle whose object belongs to `device`.
    /// Every live handle (what the fuzz harness picks handle fields from and destroys after each
    /// input).
    var liveHandles: [UInt32] {
        slots.indices.compactMap { slot in
            slots[slot].object == nil ? nil : Self.encode(slot: slot, generation: slots[slot].generation)
        }
    }

    func handles(ofDevice device: UInt32) -> [UInt32] {
        slots.indices.compactMap { slot in
            guard let object = slots[slot].object, object.device == device else { return nil }
            return Self.encode(slot: slot, generation: slots[slot].generation)
        }
    }
}

/// The process's handle table behind a pthread mutex (`ForkSafeMutex`: ThreadSanitizer sees it,
/// and a `fork()`ed child can take it).
final class HandleTableLock: @unchecked Sendable {
    private let table = ForkSafeMutex(HandleTable())

    func withLock<R, E: Error>(_ body: (inout HandleTable) throws(E) -> R) throws(E) -> R {
        try table.withLock { (table) throws(E) -> R in try body(&table) }
    }
}

let handleTable = HandleTableLock()

extension HandleTable {
    func adapter(_ handle: UInt32) -> Adapter? {
        if case .adapter(let adapter)? = lookup(handle) { return adapter }
        return nil
    }

    func device(_ handle: UInt32) -> Device? {
        if case .device(let device, _)? = lookup(handle) { return device }
        return nil
    }

    /// The allocation `handle` names on `device`, or `STATUS_INVALID_PARAMETER`.
    static func allocation(_ handle: UInt32, onDevice device: UInt32) throws(NTError) -> Allocation {
        guard let allocation = handleTable.withLock({ $0.allocation(handle, onDevice: device) }) else {
            throw NTError(.invalidParameter, "hAllocation is not an allocation of hDevice")
        }
        return allocation
    }

    /// The allocation `handle` names, if it belongs to device `device`.
    func allocation(_ handle: UInt32, onDevice device: UInt32) -> Allocation? {
        if case .allocation(let allocation, let owner, _)? = lookup(handle), owner == device { return allocation }
        return nil
    }
}

extension HandleTable {
    /// The keyed mutex `handle` names, or `STATUS_INVALID_PARAMETER`.
    static func keyedMutex(_ handle: UInt32) throws(NTError) -> KeyedMutex {
        let found: KeyedMutex? = handleTable.withLock { table in
            if case .keyedMutex(let mutex)? = table.lookup(handle) { return mutex }
            return nil
        }
        guard let found else { throw NTError(.invalidParameter, "hKeyedMutex is not a keyed mutex") }
        return found
    }

    /// The sync object `handle` names, or `STATUS_INVALID_PARAMETER`; with `device`, it must
    /// belong to that device.
    static func syncObject(_ handle: UInt32, onDevice device: UInt32? = nil) throws(NTError) -> SyncObject {
        let found: SyncObject? = handleTable.withLock { table in
            // Objects opened without a device (OpenSyncObjectFromNtHandle, owner 0) go with any.
            if case .syncObject(let object, let owner)? = table.lookup(handle),
               device == nil || owner == device || owner == 0 {
                return object
            }
            return nil
        }
        guard let found else {
            throw NTError(.invalidParameter, "handle 0x\(String(handle, radix: 16)) is not a sync object"
                                             + "\(device == nil ? "" : " of hDevice")")
        }
        return found
    }

    /// The device `handle` names, or `STATUS_INVALID_PARAMETER`.
    static func device(_ handle: UInt32) throws(NTError) -> Device {
        guard let device = handleTable.withLock({ $0.device(handle) }) else {
            throw NTError(.invalidParameter, "hDevice is not an open device")
        }
        return device
    }
}
