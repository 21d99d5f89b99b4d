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

    /// Gives up ownership of the descriptor (for the C ABI's `HANDLE`, or to send it).
    public consuming func take() -> Int32 {
        descriptor.take()
    }

    /// Runs `body` with a handle for a descriptor the caller keeps owning (the C ABI's `HANDLE`
    /// arguments); the descriptor is not closed.
    ///
    /// - Throws: `STATUS_INVALID_HANDLE` when `fd` is negative, or what `body` throws.
    public static func withBorrowed<R>(_ fd: Int32, _ body: (borrowing SharedHandle) throws(NTError) -> R) throws(NTError) -> R {
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
}
