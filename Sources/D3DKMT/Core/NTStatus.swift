#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A Windows `NTSTATUS`: what every D3DKMT call returns.
///
/// Bit 31 set means failure (`STATUS_INVALID_PARAMETER` is `0xC000000D`); success codes such as
/// `STATUS_TIMEOUT` (`0x102`) and `STATUS_ABANDONED` (`0x80`) are informational and not errors in
/// NT terms, though the Swift API throws them where a caller must act on them. The C ABI returns
/// ``rawValue`` unchanged.
public struct NTStatus: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The 32-bit status exactly as the C ABI returns it.
    public let rawValue: Int32

    public init(rawValue: Int32) { self.rawValue = rawValue }

    init(_ bits: UInt32) { self.rawValue = Int32(bitPattern: bits) }

    /// `NT_SUCCESS()`: true for success and informational codes.
    public var isSuccess: Bool { rawValue >= 0 }

    public static let success = NTStatus(0x0000_0000)
    public static let abandoned = NTStatus(0x0000_0080)
    public static let timeout = NTStatus(0x0000_0102)
    public static let pending = NTStatus(0x0000_0103)
    public static let bufferOverflow = NTStatus(0x8000_0005)
    public static let unsuccessful = NTStatus(0xC000_0001)
    public static let notImplemented = NTStatus(0xC000_0002)
    public static let invalidHandle = NTStatus(0xC000_0008)
    public static let invalidParameter = NTStatus(0xC000_000D)
    public static let noSuchDevice = NTStatus(0xC000_000E)
    public static let invalidDeviceRequest = NTStatus(0xC000_0010)
    public static let noMemory = NTStatus(0xC000_0017)
    public static let accessDenied = NTStatus(0xC000_0022)
    public static let bufferTooSmall = NTStatus(0xC000_0023)
    public static let objectTypeMismatch = NTStatus(0xC000_0024)
    public static let objectNameInvalid = NTStatus(0xC000_0033)
    public static let objectNameNotFound = NTStatus(0xC000_0034)
    public static let objectNameCollision = NTStatus(0xC000_0035)
    public static let objectPathNotFound = NTStatus(0xC000_003A)
    public static let integerOverflow = NTStatus(0xC000_0095)
    public static let insufficientResources = NTStatus(0xC000_009A)
    public static let ioTimeout = NTStatus(0xC000_00B5)
    public static let notSupported = NTStatus(0xC000_00BB)
    public static let tooManyOpenedFiles = NTStatus(0xC000_011F)
    public static let deviceRemoved = NTStatus(0xC000_02B6)

    private static let names: [NTStatus: String] = [
        .success: "STATUS_SUCCESS", .abandoned: "STATUS_ABANDONED", .timeout: "STATUS_TIMEOUT",
        .pending: "STATUS_PENDING", .bufferOverflow: "STATUS_BUFFER_OVERFLOW",
        .unsuccessful: "STATUS_UNSUCCESSFUL", .notImplemented: "STATUS_NOT_IMPLEMENTED",
        .invalidHandle: "STATUS_INVALID_HANDLE", .invalidParameter: "STATUS_INVALID_PARAMETER",
        .noSuchDevice: "STATUS_NO_SUCH_DEVICE", .invalidDeviceRequest: "STATUS_INVALID_DEVICE_REQUEST",
        .noMemory: "STATUS_NO_MEMORY", .accessDenied: "STATUS_ACCESS_DENIED",
        .bufferTooSmall: "STATUS_BUFFER_TOO_SMALL", .objectTypeMismatch: "STATUS_OBJECT_TYPE_MISMATCH",
        .objectNameInvalid: "STATUS_OBJECT_NAME_INVALID", .objectNameNotFound: "STATUS_OBJECT_NAME_NOT_FOUND",
        .objectNameCollision: "STATUS_OBJECT_NAME_COLLISION", .objectPathNotFound: "STATUS_OBJECT_PATH_NOT_FOUND",
        .integerOverflow: "STATUS_INTEGER_OVERFLOW",
        .insufficientResources: "STATUS_INSUFFICIENT_RESOURCES", .ioTimeout: "STATUS_IO_TIMEOUT",
        .notSupported: "STATUS_NOT_SUPPORTED",
        .tooManyOpenedFiles: "STATUS_TOO_MANY_OPENED_FILES", .deviceRemoved: "STATUS_DEVICE_REMOVED",
    ]

    public var description: String {
        let hex = "0x" + String(UInt32(bitPattern: rawValue), radix: 16, uppercase: true)
        return NTStatus.names[self].map { "\($0) (\(hex))" } ?? hex
    }

    /// The status a kernel error becomes. This is the one place errno values turn into NTSTATUS.
    public init(_ error: Errno) {
        switch error.rawValue {
        case EINVAL, E2BIG, EOVERFLOW, ERANGE: self = .invalidParameter
        case EBADF, ENOTSOCK: self = .invalidHandle
        case ENOMEM: self = .noMemory
        case EMFILE, ENFILE: self = .tooManyOpenedFiles
        case EACCES, EPERM: self = .accessDenied
        case ENODEV, ENXIO, EOPNOTSUPP, ENOTTY, ENOSYS: self = .notSupported
        case ENOSPC, EAGAIN, ETOOMANYREFS: self = .insufficientResources
        case ETIMEDOUT, ETIME: self = .timeout
        case ENOENT: self = .noSuchDevice
        default: self = .unsuccessful
        }
    }
}

/// The error every throwing call of the Swift API throws: the `NTSTATUS` the matching D3DKMT call
/// returns, plus a sentence for people (never parsed).
public struct NTError: Error, Sendable, CustomStringConvertible {
    /// What the C ABI returns for the same failure.
    public let status: NTStatus
    /// Why, for logs and `kmt`'s output.
    public let reason: String

    public init(_ status: NTStatus, _ reason: String) {
        self.status = status
        self.reason = reason
    }

    /// A kernel failure during `operation`.
    init(_ error: Errno, during operation: String) {
        self.init(NTStatus(error), "\(operation): \(error)")
    }

    public var description: String { "\(status): \(reason)" }
}

extension Errno {
    /// This kernel error as an ``NTError`` raised while doing `operation`.
    func nt(_ operation: String) -> NTError { NTError(self, during: operation) }
}

extension NTError {
    /// `STATUS_NOT_SUPPORTED` for `what`, which needs `/proc` (`/proc/self/fd`), when `/proc` is
    /// not mounted (a minimal container, a chroot); nil when it is.
    static func withoutProc(_ what: String) -> NTError? {
        Kernel.hasProcSelf ? nil : NTError(.notSupported, "\(what) needs /proc mounted (/proc/self/fd is missing)")
    }
}
