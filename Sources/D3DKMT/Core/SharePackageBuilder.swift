/// Collects the objects of one `D3DKMTShareObjects` call into a share package and the
/// descriptors that travel with it.
struct SharePackageBuilder: ~Copyable {
    private(set) var package: SharePackage
    /// Borrowed descriptor numbers, valid while the objects they belong to live (the caller
    /// holds them until ``write()`` returns).
    private var descriptors: [Int32] = []

    init(contents: SharePackage.Contents, access: UInt32, adapterLUID: LUID) {
        package = SharePackage(contents: contents, descriptorCount: 0, access: access, adapterLUID: adapterLUID)
    }

    private mutating func attach(_ descriptor: Int32) -> UInt32 {
        descriptors.append(descriptor)
        return UInt32(descriptors.count - 1)
    }

    /// - Throws: the kernel's status when the runtime data page cannot be made.
    mutating func add(_ resource: Resource) throws(NTError) {
        package.runtimeDataPageIndex = attach(try resource.sharedRuntimeData().descriptor.rawValue)
        package.resourceDriverData = resource.driverData
        for allocation in resource.allocations {
            let index = attach(allocation.buffer.descriptor.rawValue)
            package.allocations.append(SharePackage.AllocationRecord(
                size: allocation.size, driverData: allocation.driverData, descriptorIndex: index,
                layout: allocation.layout))
        }
    }

    mutating func add(_ keyedMutex: KeyedMutex) {
        let state = attach(keyedMutex.state.page.descriptor.rawValue)
        var timeline = SharePackage.noDescriptor
        if let descriptor = keyedMutex.timelineNumber { timeline = attach(descriptor) }
        package.keyedMutex = SharePackage.KeyedMutexRecord(stateDescriptorIndex: state,
                                                           syncobjDescriptorIndex: timeline,
                                                           runtimeData: keyedMutex.runtimeData)
    }

    /// - Throws: the kernel's status when a DRM syncobj cannot be exported.
    mutating func add(_ syncObject: SyncObject) throws(NTError) {
        var syncobj = SharePackage.noDescriptor
        if let timeline = syncObject.timeline {
            let descriptor = try timeline.exportDescriptor()
            syncobj = attach(descriptor.rawValue)
            exported = consume descriptor
        }
        let state = syncObject.fenceState.map { attach($0.page.descriptor.rawValue) } ?? SharePackage.noDescriptor
        package.syncObject = SharePackage.SyncObjectRecord(type: syncObject.kind.rawValue, flags: syncObject.flags,
                                                           syncobjDescriptorIndex: syncobj, stateDescriptorIndex: state)
    }

    /// The descriptor made for the package alone (a sync object's syncobj export), closed with the
    /// builder. A package holds at most one sync object.
    private var exported: FileDescriptor?

    /// Sends the package into a new shared handle; with a `name`, also publishes it in the
    /// caller's namespace (``Names``).
    func write(name: String? = nil) throws(NTError) -> SharedHandle {
        var package = package
        package.descriptorCount = UInt32(descriptors.count)
        guard let name else { return try SharedPackageWriter.write(package, descriptors: descriptors) }
        let kind: Names.Kind = package.contents == .syncObject ? .syncObject : .resource
        return try Names.publish(name, kind: kind, package: package, descriptors: descriptors)
    }
}
