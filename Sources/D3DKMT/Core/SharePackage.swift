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
        let header = writer.appendFields(Self.headerSize)
        header.store(Self.magic, at: 0)
        header.store(Self.version, at: 4)
        header.store(UInt16(Self.headerSize), at: 6)
        header.store(UInt32(size), at: 8)
        header.store(contents.rawValue, at: 12)
        header.store(descriptorCount, at: 16)
        header.store(access, at: 20)
        header.store(adapterLUID.lowPart, at: 24)
        header.store(adapterLUID.highPart, at: 28)
        header.store(UInt32(allocations.count), at: 32)
        header.store(UInt32(runtimeData.count), at: 36)
        header.store(UInt32(resourceDriverData.count), at: 40)
        header.store(runtimeDataPageIndex, at: 44)
        for allocation in allocations {
            let layout = allocation.layout
            let planesFollow = layout.needsVersion2
            let record = writer.appendFields(Self.allocationRecordSize)  // reserved fields stay 0
            record.store(allocation.size, at: 0)
            record.store(UInt32(allocation.driverData.count), at: 8)
            record.store(allocation.descriptorIndex, at: 12)
            record.store(planesFollow ? Self.planesFlag : 0, at: 16)
            record.store(layout.width, at: 24)
            record.store(layout.height, at: 28)
            record.store(layout.stride, at: 32)
            record.store(layout.fourcc, at: 36)
            record.store(layout.modifier, at: 40)
            if planesFollow {
                // The planes, or the one a version 1 layout implies (offset 0, its stride); unused
                // planes stay 0.
                let planes = writer.appendFields(Self.planesExtensionSize)
                let count = max(Int(layout.planeCount), 1)
                planes.store(UInt32(count), at: 0)
                planes.store(layout.dataOffset, at: 8)
                for index in 0..<count {
                    let plane = layout.planeCount == 0 ? AllocationDescriptor.Plane(offset: 0, stride: layout.stride)
                        : layout.plane(index)
                    planes.store(plane.offset, at: 16 + index * 8)
                    planes.store(plane.stride, at: 20 + index * 8)
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
        guard bytes.count >= 4, ByteReader.FixedFields(bytes: bytes).load(0, as: UInt32.self) == Self.magic else {
            throw .malformed("not a shared handle package (bad magic)")
        }
        guard let header = reader.readFields(Self.headerSize) else { throw .malformed("truncated header") }
        let version = header.load(4, as: UInt16.self), headerSize = header.load(6, as: UInt16.self)
        let totalSize = header.load(8, as: UInt32.self), rawContents = header.load(12, as: UInt32.self)
        let descriptorCount = header.load(16, as: UInt32.self), access = header.load(20, as: UInt32.self)
        let luidLow = header.load(24, as: UInt32.self), luidHigh = header.load(28, as: Int32.self)
        let allocationCount = header.load(32, as: UInt32.self), runtimeSize = header.load(36, as: UInt32.self)
        let driverSize = header.load(40, as: UInt32.self), runtimePage = header.load(44, as: UInt32.self)
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
            // (The driver data size, at 8, is read again with the blobs, below.)
            guard let fields = reader.readFields(Self.allocationRecordSize) else {
                throw .malformed("truncated allocation record")
            }
            let size = fields.load(0, as: UInt64.self), index = fields.load(12, as: UInt32.self)
            let flags = fields.load(16, as: UInt32.self), reserved = fields.load(20, as: UInt32.self)
            let width = fields.load(24, as: UInt32.self), height = fields.load(28, as: UInt32.self)
            let stride = fields.load(32, as: UInt32.self), fourcc = fields.load(36, as: UInt32.self)
            let modifier = fields.load(40, as: UInt64.self)
            guard flags & ~Self.planesFlag == 0, reserved == 0 else { throw .malformed("unknown allocation flags") }
            guard size > 0, size <= AllocationDescriptor.maximumSize else {
                throw .malformed("allocation size \(size) out of range")
            }
            try claim(index)
            var layout = AllocationDescriptor(size: size, width: width, height: height, stride: stride,
                                              fourcc: fourcc, modifier: modifier)
            if flags & Self.planesFlag != 0 {
                guard let planes = reader.readFields(Self.planesExtensionSize) else {
                    throw .malformed("truncated allocation planes")
                }
                let count = planes.load(0, as: UInt32.self), reservedPlanes = planes.load(4, as: UInt32.self)
                let dataOffset = planes.load(8, as: UInt64.self)
                guard (1...UInt32(AllocationDescriptor.maximumPlanes)).contains(count), reservedPlanes == 0,
                      dataOffset <= AllocationDescriptor.maximumSize
                else { throw .malformed("allocation planes out of range") }
                for plane in 0..<AllocationDescriptor.maximumPlanes {
                    let offset = planes.load(16 + plane * 8, as: UInt32.self)
                    let planeStride = planes.load(20 + plane * 8, as: UInt32.self)
                    if plane < Int(count) {
                        layout.appendPlane(AllocationDescriptor.Plane(offset: offset, stride: planeStride))
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
            guard let record = reader.readFields(Self.keyedMutexRecordSize), record.load(12, as: UInt32.self) == 0
            else { throw .malformed("truncated keyed mutex record") }
            let state = record.load(0, as: UInt32.self), syncobj = record.load(4, as: UInt32.self)
            let runtime = record.load(8, as: UInt32.self)
            try claim(state)
            if syncobj != Self.noDescriptor { try claim(syncobj) }
            keyedMutex = KeyedMutexRecord(stateDescriptorIndex: state, syncobjDescriptorIndex: syncobj,
                                                  runtimeData: [])
            keyedMutexRuntimeSize = Int(runtime)
        }
        if contents.contains(.syncObject) {
            guard let record = reader.readFields(Self.syncObjectRecordSize), record.load(16, as: UInt64.self) == 0
            else { throw .malformed("truncated sync object record") }
            let type = record.load(0, as: UInt32.self), flags = record.load(4, as: UInt32.self)
            let syncobj = record.load(8, as: UInt32.self), state = record.load(12, as: UInt32.self)
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
