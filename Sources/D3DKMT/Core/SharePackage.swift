/// The wire format of a shared NT handle.
///
/// A shared NT handle is one end of an `AF_UNIX` `SOCK_SEQPACKET` socket pair whose receive queue
/// holds exactly one datagram: this package, with every object's descriptor attached as
/// `SCM_RIGHTS`. Opening peeks at it (see ``Kernel/peekMessage(_:into:)``); the kernel keeps the
/// datagram, and so the objects, alive for as long as any copy of the handle is open.
///
/// Layout, version 2, all integers little-endian:
///
/// ```
/// header (48 bytes)
///   u32 magic 'DKMT'   u16 version   u16 header size   u32 total size
///   u32 contents (1 resource, 2 keyed mutex, 4 sync object)   u32 descriptor count
///   u32 access mask    u32 LUID low  i32 LUID high     u32 allocation count
///   u32 runtime data size   u32 resource driver data size
///   u32 runtime data page descriptor index (a resource's runtime data lives in a shared page,
///       ``RuntimeDataPage``, so that `D3DKMTEscape` can replace it for handles already shared;
///       the runtime data size is then 0)
/// allocation records (48 bytes each)
///   u64 size   u32 driver data size   u32 descriptor index   u32 flags (0)   u32 reserved (0)
///   u32 width   u32 height   u32 stride   u32 fourcc   u64 modifier   (the allocation's layout:
///   the library's own bookkeeping, never part of the runtime's driver data)
///   with flags bit 0 (``planesFlag``), 48 more bytes follow the record: u32 plane count (1...4)
///   u32 reserved (0)   u64 data offset   4 × (u32 offset, u32 stride), unused planes 0 (a
///   layout version 1 could not say; builds before it refuse such a package as malformed)
/// keyed mutex record (16 bytes, when contents has 2)
///   u32 state descriptor index   u32 syncobj descriptor index   u32 runtime data size   u32 reserved
/// sync object record (24 bytes, when contents has 4)
///   u32 type   u32 flags   u32 syncobj descriptor index   u32 state descriptor index   u64 reserved
/// (an index of 0xFFFFFFFF means no such descriptor: a keyed mutex without a timeline, a software
///  sync object, a DRM fence without a CPU-visible value page; a sync object has at least one)
/// blobs, back to back: runtime data, resource driver data, each allocation's driver data,
///   keyed mutex runtime data
/// ```
///
/// The package comes from another process and is validated as untrusted input: the decoder checks
/// every size against the bytes that arrived and every descriptor index against the descriptors
/// that arrived, and each descriptor is used at most once.
struct SharePackage {
    static let magic: UInt32 = 0x544D_4B44  // "DKMT"
    static let version: UInt16 = 2
    static let headerSize = 48
    static let allocationRecordSize = 48
    /// An allocation record's flag: its planes and data offset follow it.
    static let planesFlag: UInt32 = 1
    static let planesExtensionSize = 48
    static let keyedMutexRecordSize = 16
    static let syncObjectRecordSize = 24
    /// A descriptor index meaning "none": a keyed mutex without a timeline syncobj, a software
    /// sync object (no syncobj), a DRM fence without a CPU-visible page.
    static let noDescriptor = UInt32.max
    /// The largest package we send or accept. A datagram must fit the socket's send buffer whole.
    static let maximumSize = 160 * 1024
    /// The most allocations one shared resource can hold: one descriptor each, and its runtime
    /// data page, a keyed mutex and a sync object may need five more, within `SCM_MAX_FD` (253).
    static let maximumAllocations = Kernel.maximumDescriptorsPerMessage - 5

    struct Contents: OptionSet, Hashable {
        let rawValue: UInt32
        static let resource = Contents(rawValue: 1)
        static let keyedMutex = Contents(rawValue: 2)
        static let syncObject = Contents(rawValue: 4)
    }

    struct AllocationRecord: Equatable {
        var size: UInt64
        /// The runtime's per-allocation private driver data.
        var driverData: [UInt8]
        var descriptorIndex: UInt32
        /// Width, height, stride, fourcc and modifier (its `size` is the record's).
        var layout: AllocationDescriptor
        /// What the allocation's descriptor turned out to be when the package was opened: set by
        /// ``SharedPackageReader`` for every record of a package it opens, nil in one being
        /// written. Never on the wire.
        var buffer: MeasuredBuffer? = nil
    }

    /// A received allocation descriptor's kind and how many bytes it holds.
    struct MeasuredBuffer: Equatable {
        var kind: BufferKind
        var size: UInt64
    }

    struct KeyedMutexRecord: Equatable {
        var stateDescriptorIndex: UInt32
        var syncobjDescriptorIndex: UInt32
        var runtimeData: [UInt8]
    }

    struct SyncObjectRecord: Equatable {
        var type: UInt32
        var flags: UInt32
        var syncobjDescriptorIndex: UInt32
        var stateDescriptorIndex: UInt32
    }

    var contents: Contents
    var descriptorCount: UInt32
    var access: UInt32
    var adapterLUID: LUID
    var runtimeData: [UInt8] = []
    /// The descriptor of the resource's runtime data page, or ``noDescriptor`` when the runtime
    /// data is in the package itself.
    var runtimeDataPageIndex: UInt32 = SharePackage.noDescriptor
    var resourceDriverData: [UInt8] = []
    var allocations: [AllocationRecord] = []
    var keyedMutex: KeyedMutexRecord?
    var syncObject: SyncObjectRecord?

    /// The combinations a package may hold: what `D3DKMTShareObjects` accepts (a resource; a
    /// resource with its keyed mutex and sync object; a sync object alone), and a keyed mutex
    /// alone, which only a global share handle serves (``GlobalShares``).
    static let acceptedContents: Set<Contents> = [[.resource], [.resource, .keyedMutex, .syncObject], [.syncObject],
                                                  [.keyedMutex]]

    /// Whether a package may hold `contents` (``acceptedContents``, without hashing a set).
    static func isAccepted(_ contents: Contents) -> Bool {
        switch contents.rawValue {
        case Contents.resource.rawValue, Contents([.resource, .keyedMutex, .syncObject]).rawValue,
             Contents.syncObject.rawValue, Contents.keyedMutex.rawValue:
            return true
        default:
            return false
        }
    }

    /// The rights an opener of the sync object gets: the share's access when it was shared alone,
    /// everything when it came with its resource (the access then is the resource's).
    var syncObjectAccess: UInt32 {
        contents == .syncObject ? access : 0x001F_0003  // D3DDDI_SYNC_OBJECT_ALL_ACCESS
    }

    /// The encoded package's size in bytes.
    var encodedSize: Int { encodedSize(allocations: allocations) }

    /// The size in bytes of the package encoded with `allocations` as its allocation records
    /// (a share reads them from the resource: ``SharePackageBuilder``).
    func encodedSize(allocations: some Collection<AllocationRecord>) -> Int {
        var size = Self.headerSize + runtimeData.count + resourceDriverData.count
        for allocation in allocations {
            size += Self.allocationRecordSize + allocation.driverData.count
            if allocation.layout.needsVersion2 { size += Self.planesExtensionSize }
        }
        if let keyedMutex { size += Self.keyedMutexRecordSize + keyedMutex.runtimeData.count }
        if syncObject != nil { size += Self.syncObjectRecordSize }
        return size
    }

    /// The encoded package as an array (what a test forges handles from).
    func encoded() -> [UInt8] {
        let size = encodedSize
        return ByteWriter.bytes(count: size) { encode(allocations: allocations, into: &$0, encodedSize: size) }
    }

    /// Runs `body` with the package, `allocations` its allocation records, encoded in temporary
    /// memory (on the stack when it is small).
    ///
    /// - Throws: `STATUS_INVALID_PARAMETER` when the package is larger than ``maximumSize``;
    ///   what `body` throws.
    func withEncoded<R: ~Copyable>(allocations: some Collection<AllocationRecord>,
                                   _ body: (UnsafeRawBufferPointer) throws(NTError) -> R) throws(NTError) -> R {
        let size = encodedSize(allocations: allocations)
        guard size <= Self.maximumSize else {
            throw NTError(.invalidParameter, "private data too large to share (\(size) bytes; "
                                             + "at most \(Self.maximumSize))")
        }
        return try withUnsafeTemporaryAllocation(byteCount: size, alignment: 8) {
            (buffer) throws(NTError) -> R in
            var writer = ByteWriter(buffer)
            encode(allocations: allocations, into: &writer, encodedSize: size)
            precondition(writer.count == size, "encodedSize disagrees with the encoder")
            return try body(UnsafeRawBufferPointer(buffer))
        }
    }

    /// Writes the package with `writer`, `allocations` its allocation records: `size` bytes, its
    /// ``encodedSize(allocations:)``.
    func encode(allocations: some Collection<AllocationRecord>, into writer: inout ByteWriter,
                encodedSize size: Int) {
        writer.append(Self.magic)
        writer.append(Self.version)
        writer.append(UInt16(Self.headerSize))
        writer.append(UInt32(size))
        writer.append(contents.rawValue)
        writer.append(descriptorCount)
        writer.append(access)
        writer.append(adapterLUID.lowPart)
        writer.append(adapterLUID.highPart)
        writer.append(UInt32(allocations.count))
        writer.append(UInt32(runtimeData.count))
        writer.append(UInt32(resourceDriverData.count))
        writer.append(runtimeDataPageIndex)
        for allocation in allocations {
            let layout = allocation.layout
            let planesFollow = layout.needsVersion2
            writer.append(allocation.size)
            writer.append(UInt32(allocation.driverData.count))
            writer.append(allocation.descriptorIndex)
            writer.append(planesFollow ? Self.planesFlag : 0)
            writer.append(UInt32(0))
            writer.append(layout.width)
            writer.append(layout.height)
            writer.append(layout.stride)
            writer.append(layout.fourcc)
            writer.append(layout.modifier)
            if planesFollow {
                let planes = layout.effectivePlanes
                writer.append(UInt32(planes.count))
                writer.append(UInt32(0))
                writer.append(layout.dataOffset)
                for index in 0..<AllocationDescriptor.maximumPlanes {
                    writer.append(index < planes.count ? planes[index].offset : 0)
                    writer.append(index < planes.count ? planes[index].stride : 0)
                }
            }
        }
        if let keyedMutex {
            writer.append(keyedMutex.stateDescriptorIndex)
            writer.append(keyedMutex.syncobjDescriptorIndex)
            writer.append(UInt32(keyedMutex.runtimeData.count))
            writer.append(UInt32(0))
        }
        if let syncObject {
            writer.append(syncObject.type)
            writer.append(syncObject.flags)
            writer.append(syncObject.syncobjDescriptorIndex)
            writer.append(syncObject.stateDescriptorIndex)
            writer.append(UInt64(0))
        }
        writer.append(runtimeData)
        writer.append(resourceDriverData)
        for allocation in allocations { writer.append(allocation.driverData) }
        if let keyedMutex { writer.append(keyedMutex.runtimeData) }
    }

    /// Why a package was refused; the opener reports `STATUS_INVALID_PARAMETER` for all but
    /// `.unsupported` (a well-formed package of a kind or version this build cannot open), which
    /// becomes `STATUS_NOT_SUPPORTED`.
    enum DecodeError: Error, Equatable {
        case malformed(String)
        case unsupported(String)
    }

    /// Parses and validates a package of `bytes` that arrived with `descriptorCount` descriptors.
    static func decode(_ bytes: UnsafeRawBufferPointer,
                       descriptorCount received: Int) throws(DecodeError) -> SharePackage {
        var reader = ByteReader(bytes)
        guard let magic = reader.read(UInt32.self), magic == Self.magic else {
            throw .malformed("not a shared handle package (bad magic)")
        }
        guard let version = reader.read(UInt16.self), let headerSize = reader.read(UInt16.self),
              let totalSize = reader.read(UInt32.self), let rawContents = reader.read(UInt32.self),
              let descriptorCount = reader.read(UInt32.self), let access = reader.read(UInt32.self),
              let luidLow = reader.read(UInt32.self), let luidHigh = reader.read(Int32.self),
              let allocationCount = reader.read(UInt32.self), let runtimeSize = reader.read(UInt32.self),
              let driverSize = reader.read(UInt32.self), let runtimePage = reader.read(UInt32.self)
        else { throw .malformed("truncated header") }
        guard version == Self.version else {
            throw .unsupported("package version \(version); this build reads \(Self.version)")
        }
        guard Int(headerSize) == Self.headerSize else { throw .malformed("bad header size") }
        guard Int(totalSize) == bytes.count, bytes.count <= Self.maximumSize else {
            throw .malformed("size field \(totalSize) does not match the \(bytes.count) bytes received")
        }
        guard Int(descriptorCount) == received else {
            throw .malformed("package names \(descriptorCount) descriptors but \(received) arrived")
        }
        let contents = Contents(rawValue: rawContents)
        guard Self.isAccepted(contents) else {
            throw .malformed("invalid object combination \(rawContents)")
        }
        guard contents.contains(.resource) || allocationCount == 0 else {
            throw .malformed("allocations without a resource")
        }
        guard !contents.contains(.resource) || (1...UInt32(Self.maximumAllocations)).contains(allocationCount) else {
            throw .malformed("allocation count \(allocationCount) out of range")
        }

        // The parts, gathered in locals and put together at the end (a package built up in place
        // was copied on its way out).
        var runtimeDataPageIndex = Self.noDescriptor
        var allocations: [AllocationRecord] = []
        var keyedMutex: KeyedMutexRecord?
        var syncObject: SyncObjectRecord?
        // Which descriptors are claimed, a bit each (a message carries at most 253).
        var used: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        func claim(_ index: UInt32) throws(DecodeError) {
            guard Int(index) < received, index < 256 else {
                throw .malformed("descriptor index \(index) out of range or used twice")
            }
            let bit = UInt64(1) << (index % 64)
            let taken = withUnsafeMutableBytes(of: &used) { words -> Bool in
                let word = words.load(fromByteOffset: Int(index / 64) * 8, as: UInt64.self)
                words.storeBytes(of: word | bit, toByteOffset: Int(index / 64) * 8, as: UInt64.self)
                return word & bit != 0
            }
            guard !taken else { throw .malformed("descriptor index \(index) out of range or used twice") }
        }
        if runtimePage != Self.noDescriptor {
            guard contents.contains(.resource), runtimeSize == 0 else {
                throw .malformed("misplaced runtime data page")
            }
            try claim(runtimePage)
            runtimeDataPageIndex = runtimePage
        }

        let firstRecord = reader.offset
        allocations.reserveCapacity(Int(allocationCount))
        for _ in 0..<allocationCount {
            // (The driver data size is read again with the blobs, below.)
            guard let size = reader.read(UInt64.self), reader.read(UInt32.self) != nil,
                  let index = reader.read(UInt32.self), let flags = reader.read(UInt32.self),
                  let reserved = reader.read(UInt32.self), let width = reader.read(UInt32.self),
                  let height = reader.read(UInt32.self), let stride = reader.read(UInt32.self),
                  let fourcc = reader.read(UInt32.self), let modifier = reader.read(UInt64.self)
            else { throw .malformed("truncated allocation record") }
            guard flags & ~Self.planesFlag == 0, reserved == 0 else { throw .malformed("unknown allocation flags") }
            guard size > 0, size <= AllocationDescriptor.maximumSize else {
                throw .malformed("allocation size \(size) out of range")
            }
            try claim(index)
            var layout = AllocationDescriptor(size: size, width: width, height: height, stride: stride,
                                              fourcc: fourcc, modifier: modifier)
            if flags & Self.planesFlag != 0 {
                guard let count = reader.read(UInt32.self), let reservedPlanes = reader.read(UInt32.self),
                      let dataOffset = reader.read(UInt64.self)
                else { throw .malformed("truncated allocation planes") }
                guard (1...UInt32(AllocationDescriptor.maximumPlanes)).contains(count), reservedPlanes == 0,
                      dataOffset <= AllocationDescriptor.maximumSize
                else { throw .malformed("allocation planes out of range") }
                for plane in 0..<AllocationDescriptor.maximumPlanes {
                    guard let offset = reader.read(UInt32.self), let planeStride = reader.read(UInt32.self) else {
                        throw .malformed("truncated allocation planes")
                    }
                    if plane < Int(count) {
                        layout.planes.append(AllocationDescriptor.Plane(offset: offset, stride: planeStride))
                    } else if offset != 0 || planeStride != 0 {
                        throw .malformed("an unused plane is not zero")
                    }
                }
                layout.dataOffset = dataOffset
            }
            allocations.append(AllocationRecord(size: size, driverData: [], descriptorIndex: index,
                                                        layout: layout))
        }
        var keyedMutexRuntimeSize = 0
        if contents.contains(.keyedMutex) {
            guard let state = reader.read(UInt32.self), let syncobj = reader.read(UInt32.self),
                  let runtime = reader.read(UInt32.self), let reserved = reader.read(UInt32.self), reserved == 0
            else { throw .malformed("truncated keyed mutex record") }
            try claim(state)
            if syncobj != Self.noDescriptor { try claim(syncobj) }
            keyedMutex = KeyedMutexRecord(stateDescriptorIndex: state, syncobjDescriptorIndex: syncobj,
                                                  runtimeData: [])
            keyedMutexRuntimeSize = Int(runtime)
        }
        if contents.contains(.syncObject) {
            guard let type = reader.read(UInt32.self), let flags = reader.read(UInt32.self),
                  let syncobj = reader.read(UInt32.self), let state = reader.read(UInt32.self),
                  let reserved = reader.read(UInt64.self), reserved == 0
            else { throw .malformed("truncated sync object record") }
            guard syncobj != Self.noDescriptor || state != Self.noDescriptor else {
                throw .malformed("sync object without descriptors")
            }
            if syncobj != Self.noDescriptor { try claim(syncobj) }
            if state != Self.noDescriptor { try claim(state) }
            syncObject = SyncObjectRecord(type: type, flags: flags, syncobjDescriptorIndex: syncobj,
                                                  stateDescriptorIndex: state)
        }

        // The blobs: each read is bounds-checked, so sizes that overflow or lie fail here.
        guard let runtime = reader.readBlob(Int(runtimeSize)), let driver = reader.readBlob(Int(driverSize)) else {
            throw .malformed("private data sizes exceed the package")
        }
        // Each allocation's driver data size, read again from its record (the records were checked
        // above): no list of sizes to keep meanwhile.
        var record = firstRecord
        for index in allocations.indices {
            let dataSize = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: record + 8, as: UInt32.self))
            let flags = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: record + 16, as: UInt32.self))
            record += Self.allocationRecordSize + (flags & Self.planesFlag != 0 ? Self.planesExtensionSize : 0)
            guard let data = reader.readBlob(Int(dataSize)) else {
                throw .malformed("allocation private data exceeds the package")
            }
            allocations[index].driverData = data
        }
        if keyedMutex != nil {
            guard let data = reader.readBlob(keyedMutexRuntimeSize) else {
                throw .malformed("keyed mutex data exceeds the package")
            }
            keyedMutex!.runtimeData = data
        }
        guard reader.remaining == 0 else { throw .malformed("\(reader.remaining) stray bytes after the package") }
        let claimed = used.0.nonzeroBitCount + used.1.nonzeroBitCount + used.2.nonzeroBitCount
            + used.3.nonzeroBitCount
        guard claimed == received else { throw .malformed("descriptors that no object claims") }
        return SharePackage(contents: contents, descriptorCount: descriptorCount, access: access,
                            adapterLUID: LUID(lowPart: luidLow, highPart: luidHigh), runtimeData: runtime,
                            runtimeDataPageIndex: runtimeDataPageIndex, resourceDriverData: driver,
                            allocations: allocations, keyedMutex: keyedMutex, syncObject: syncObject)
    }
}
