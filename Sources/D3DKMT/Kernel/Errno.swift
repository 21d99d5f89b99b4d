#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A POSIX error number, as the kernel returned it.
///
/// The kernel layer (`Kernel`) is the only place that reads the C `errno` variable or libdrm's
/// mixed `-errno` / `errno` returns; everything above it sees `Errno` values, and the core turns
/// them into an `NTStatus` with ``NTStatus/init(_:)``.
public struct Errno: RawRepresentable, Error, Hashable, Sendable, CustomStringConvertible {
    /// The `errno` value (`EINVAL`, `ENODEV`, ...).
    public let rawValue: Int32

    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// The calling thread's current `errno`.
    static var current: Errno { Errno(rawValue: errno) }

    public var description: String {
        guard let text = strerror(rawValue) else { return "errno \(rawValue)" }
        return "\(String(cString: text)) (errno \(rawValue))"
    }

    public static let interrupted = Errno(rawValue: EINTR)
    public static let invalidArgument = Errno(rawValue: EINVAL)
    public static let noDevice = Errno(rawValue: ENODEV)
    public static let noSuchFile = Errno(rawValue: ENOENT)
    public static let badFileDescriptor = Errno(rawValue: EBADF)
    public static let tooManyOpenFiles = Errno(rawValue: EMFILE)
    public static let noMemory = Errno(rawValue: ENOMEM)
    public static let permissionDenied = Errno(rawValue: EACCES)
    public static let notSupported = Errno(rawValue: EOPNOTSUPP)
    public static let wouldBlock = Errno(rawValue: EAGAIN)
    public static let timedOut = Errno(rawValue: ETIMEDOUT)
    /// `ETIME`: what DRM syncobj waits fail with at their deadline.
    public static let timerExpired = Errno(rawValue: ETIME)
}
