#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// An open file descriptor with exactly one owner.
///
/// `FileDescriptor` is `~Copyable`: it is moved, never copied, and its `deinit` closes it. To hand
/// the descriptor to code that takes ownership of a raw `Int32` (the C ABI returning an NT handle,
/// `SCM_RIGHTS`), call ``take()``; to keep it and give out another, call ``duplicate()``.
public struct FileDescriptor: ~Copyable, Sendable {
    /// The descriptor number. Valid for as long as this value lives.
    public let rawValue: Int32

    /// Takes ownership of `rawValue`, which must be an open descriptor nobody else closes.
    public init(adopting rawValue: Int32) {
        precondition(rawValue >= 0, "FileDescriptor(adopting:) needs an open descriptor")
        self.rawValue = rawValue
    }

    /// Gives up ownership: the caller must close the returned descriptor.
    public consuming func take() -> Int32 {
        let value = rawValue
        discard self
        return value
    }

    /// A new close-on-exec descriptor for the same open file (`fcntl(F_DUPFD_CLOEXEC)`).
    ///
    /// - Throws: `EMFILE` when the process is out of descriptors.
    public borrowing func duplicate() throws(Errno) -> FileDescriptor {
        try Kernel.duplicate(rawValue)
    }

    deinit {
        Kernel.close(rawValue)
    }
}

/// A ``FileDescriptor`` held by reference, for a descriptor an object may or may not have
/// (`Optional` of a `~Copyable` stored in a class cannot be borrowed through). Closes with the
/// last reference.
final class OwnedDescriptor: Sendable {
    let descriptor: FileDescriptor
    init(_ descriptor: consuming FileDescriptor) { self.descriptor = descriptor }
    var rawValue: Int32 { descriptor.rawValue }
}
