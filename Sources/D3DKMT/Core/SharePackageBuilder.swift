/// Collects the objects of one `D3DKMTShareObjects` call into a share package and the
/// descriptors that travel with it, and writes them into a new shared handle.
///
/// Descriptors are numbered in the order the objects are added: a resource's runtime data page
/// (0) and its allocations (1, 2, ...), a keyed mutex's state page and timeline, a sync object's
/// syncobj and state page. The resource's allocation records and every descriptor's number are
/// read from the objects as the package is written, so an unnamed share makes no lists of its own.
struct SharePackageBuilder: ~Copyable {
    /// The package, less its allocation records (``allocationRecords``).
    private var package: SharePackage
    /// The resource, and its runtime data page's descriptor number.
    private var resource: Resource?
    private var runtimeDataPage: Int32 = -1
    private var keyedMutex: KeyedMutex?
    private var syncObject: SyncObject?
    /// The descriptor made for the package alone (a sync object's syncobj export), closed with the
    /// builder. A package holds at most one sync object.
    private var exported: FileDescriptor?

    init(contents: SharePackage.Contents, access: UInt32, adapterLUID: LUID) {
        package = SharePackage(contents: contents, descriptorCount: 0, access: access, adapterLUID: adapterLUID)
    }

    /// The index of the next descriptor.
    private mutating func attach() -> UInt32 {
        defer { package.descriptorCount += 1 }
        return package.descriptorCount
    }

    /// Adds a resource: its runtime data page (made now if it was never shared), its driver data
    /// and its allocations. Objects the resource is shared with come after it.
    ///
    /// - Throws: the kernel's status when the runtime data page cannot be made.
    mutating func add(_ resource: Resource) throws(NTError) {
        precondition(package.descriptorCount == 0, "a resource's descriptors are the first")
        let page = try resource.runtimeDataPageDescriptor()
        package.runtimeDataPageIndex = attach()
        package.descriptorCount += UInt32(resource.allocations.count)
        package.resourceDriverData = resource.driverData
        // The page lives as long as the resource, which the caller holds until write returns.
        self.resource = resource
        runtimeDataPage = page
    }

    mutating func add(_ keyedMutex: KeyedMutex) {
        let state = attach()
        let timeline = keyedMutex.timelineNumber == nil ? SharePackage.noDescriptor : attach()
        package.keyedMutex = SharePackage.KeyedMutexRecord(stateDescriptorIndex: state,
                                                           syncobjDescriptorIndex: timeline,
                                                           runtimeData: keyedMutex.runtimeData)
        self.keyedMutex = keyedMutex
    }

    /// - Throws: the kernel's status when a DRM syncobj cannot be exported.
    mutating func add(_ syncObject: SyncObject) throws(NTError) {
        var syncobj = SharePackage.noDescriptor
        if let timeline = syncObject.timeline {
            exported = try timeline.exportDescriptor()
            syncobj = attach()
        }
        let state = syncObject.fenceState == nil ? SharePackage.noDescriptor : attach()
        package.syncObject = SharePackage.SyncObjectRecord(type: syncObject.kind.rawValue, flags: syncObject.flags,
                                                           syncobjDescriptorIndex: syncobj, stateDescriptorIndex: state)
        self.syncObject = syncObject
    }

    /// The resource's allocations as package records, made as the encoder reads them.
    private var allocationRecords: AllocationRecords {
        AllocationRecords(allocations: resource?.allocations ?? [])
    }

    /// Sends the package into a new shared handle; with a `name`, also publishes it in the
    /// caller's namespace (``Names``). The objects must live until this returns.
    func write(name: String? = nil) throws(NTError) -> SharedHandle {
        let count = Int(package.descriptorCount)
        guard let name else {
            // The descriptor numbers on the stack, for the one send.
            return try withUnsafeTemporaryAllocation(of: Int32.self, capacity: count) {
                (numbers) throws(NTError) -> SharedHandle in
                fill(numbers)
                return try SharedPackageWriter.write(package, allocations: allocationRecords,
                                                     descriptors: UnsafeBufferPointer(numbers))
            }
        }
        // A name keeps the package and the descriptors for every later open: lists of its own.
        var complete = package
        complete.allocations = Array(allocationRecords)
        let descriptors = [Int32](unsafeUninitializedCapacity: count) { numbers, initialized in
            fill(numbers)
            initialized = count
        }
        let kind: Names.Kind = package.contents == .syncObject ? .syncObject : .resource
        return try Names.publish(name, kind: kind, package: complete, descriptors: descriptors)
    }

    /// Writes each descriptor's number at its index (-1 first, so a slot no object claimed would
    /// fail the send rather than pass a stray number).
    private func fill(_ numbers: UnsafeMutableBufferPointer<Int32>) {
        numbers.initialize(repeating: -1)
        if let resource {
            numbers[Int(package.runtimeDataPageIndex)] = runtimeDataPage
            for (index, allocation) in resource.allocations.enumerated() {
                numbers[AllocationRecords.firstDescriptor + index] = allocation.buffer.descriptor.rawValue
            }
        }
        if let keyedMutex, let record = package.keyedMutex {
            numbers[Int(record.stateDescriptorIndex)] = keyedMutex.state.page.descriptor.rawValue
            if let timeline = keyedMutex.timelineNumber { numbers[Int(record.syncobjDescriptorIndex)] = timeline }
        }
        if let syncObject, let record = package.syncObject {
            switch exported {
            case .some(let descriptor): numbers[Int(record.syncobjDescriptorIndex)] = descriptor.rawValue
            case .none: break
            }
            if let state = syncObject.fenceState {
                numbers[Int(record.stateDescriptorIndex)] = state.page.descriptor.rawValue
            }
        }
    }
}

/// A resource's allocations as share package records, each made when it is read: allocation `i`
/// travels as descriptor `i + 1` (after the runtime data page).
struct AllocationRecords: RandomAccessCollection {
    static let firstDescriptor = 1
    let allocations: [Allocation]

    var startIndex: Int { 0 }
    var endIndex: Int { allocations.count }

    subscript(index: Int) -> SharePackage.AllocationRecord {
        let allocation = allocations[index]
        return SharePackage.AllocationRecord(size: allocation.size, driverData: allocation.driverData,
                                             descriptorIndex: UInt32(Self.firstDescriptor + index),
                                             layout: allocation.layout)
    }
}
