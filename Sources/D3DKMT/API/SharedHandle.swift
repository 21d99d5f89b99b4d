/// A shared NT handle: a close-on-exec file descriptor (one end of a socket pair holding the
/// share package). `~Copyable`, closed when dropped.
///
/// Pass it to another process like any descriptor (`SCM_RIGHTS`, inheritance, `pidfd_getfd`); in
/// the C ABI it is `(HANDLE)(intptr_t)fd` and `CloseHandle` is `close()`. Any number of processes
/// can open it any number of times; the objects live while any copy of it, or anything opened from
/// it, lives.
public struct SharedHandle: ~Copyable, Sendable {
    let descriptor: FileDescriptor

    /// Takes ownership of a descriptor received from elsewhere. Nothing is checked until it is
    /// opened.
    public init(adopting fd: Int32) {
        descriptor = FileDescriptor(adopting: fd)
    }

    init(_ descriptor: consuming FileDescriptor) {
        self.descriptor = descriptor
    }

    /// The descriptor number, valid while this value lives.
    public var rawValue: Int32 { descriptor.rawValue }

    /// The descriptor lent to a call, valid while this value lives.
    public var borrowed: BorrowedDescriptor { descriptor.borrowed }

    /// Gives up ownership of the descriptor (for the C ABI's `HANDLE`, or to send it).
    public consuming func take() -> Int32 {
        descriptor.take()
    }

    /// Runs `body` with a handle for a descriptor the caller keeps owning (the C ABI's `HANDLE`
    /// arguments); the descriptor is not closed.
    ///
    /// - Throws: `STATUS_INVALID_HANDLE` when `fd` is negative, or what `body` throws.
    public static func withBorrowed<R>(_ fd: Int32,
                                       _ body: (borrowing SharedHandle) throws(NTError) -> R) throws(NTError) -> R {
        guard fd >= 0 else { throw NTError(.invalidHandle, "\(fd) is not a descriptor") }
        let handle = SharedHandle(adopting: fd)
        let result = Result { () throws(NTError) in try body(handle) }
        _ = handle.take()
        return try result.get()
    }

    /// Another handle to the same objects (`DuplicateHandle` = `dup()`).
    public borrowing func duplicate() throws(NTError) -> SharedHandle {
        do { return SharedHandle(try descriptor.duplicate()) } catch { throw error.nt("duplicating a shared handle") }
    }

    /// Opens a named resource handle in the caller's namespace (`D3DKMTOpenNtHandleFromName`).
    ///
    /// Windows checks such an open against the object's security, not against the access the
    /// sharer gave its own handle: every process of the sharer's user may ask for any access.
    ///
    /// - Parameter access: `dwDesiredAccess` (generic rights are mapped, ``SharedAccess/mapped(_:)``);
    ///   the returned handle grants exactly that.
    /// - Throws: `STATUS_ACCESS_DENIED` for access 0 or an unsafe namespace directory;
    ///   `STATUS_OBJECT_NAME_NOT_FOUND`, `STATUS_OBJECT_NAME_INVALID`, `STATUS_OBJECT_PATH_NOT_FOUND`,
    ///   `STATUS_OBJECT_TYPE_MISMATCH` (the name is a sync object's).
    public static func open(name: String, access: UInt32 = SharedAccess.allAccess) throws(NTError) -> SharedHandle {
        guard access != 0 else { throw NTError(.accessDenied, "no access asked for") }
        return try Names.resolve(name, kind: .resource, granting: SharedAccess.mapped(access))
    }

    /// Opens a named sync object handle (`D3DKMTOpenSyncObjectNtHandleFromName`); as
    /// ``open(name:access:)``, with ``SyncObjectAccess/mapped(_:)``.
    public static func openSyncObject(name: String,
                                      access: UInt32 = SyncObjectAccess.allAccess) throws(NTError) -> SharedHandle {
        guard access != 0 else { throw NTError(.accessDenied, "no access asked for") }
        return try Names.resolve(name, kind: .syncObject, granting: SyncObjectAccess.mapped(access))
    }

    /// The access the handle grants (`dwDesiredAccess` of its share).
    public func access() throws(NTError) -> UInt32 {
        try SharedPackageReader.read(descriptor.rawValue).access
    }

    /// This handle, or a new one to the same objects granting `access` instead.
    consuming func granting(_ access: UInt32) throws(NTError) -> SharedHandle {
        let opened = try SharedPackageReader.open(descriptor.rawValue)
        guard access != opened.package.access else { return self }
        var package = opened.package
        package.access = access
        return try SharedPackageWriter.write(
            package, descriptors: (0..<Int(package.descriptorCount)).map(opened.descriptors.peek))
    }
}
