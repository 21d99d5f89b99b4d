import D3DKMT
import CD3DKMT
#if canImport(Glibc)
import Glibc
#endif

/// Runs one C entry point's body and turns what it throws into the NTSTATUS it returns. A failure's
/// reason is kept for the calling thread (`D3DKMTLinuxGetLastFailure`) and, with `D3DKMT_DEBUG`,
/// reported on standard error; `D3DKMT_DEBUG=calls` reports every call.
///
/// - Parameters:
///   - function: the entry point (filled in by the compiler).
///   - arguments: what a `D3DKMT_DEBUG=calls` report shows of the call (its struct's fields, or
///     its scalar arguments); evaluated only for that report, before the call.
@inline(__always)
func ntCall(_ function: StaticString = #function, arguments: @autoclosure () -> Any? = nil,
            _ body: () throws(NTError) -> Void) -> NTSTATUS {
    let shown = Diagnostics.trace == .calls ? arguments().map { String(describing: $0) } : nil
    do {
        try body()
        if let shown { report(function, .success, nil, arguments: shown) }
        return NTStatus.success.rawValue
    } catch {
        failed(function, error, arguments: shown)
        return error.status.rawValue
    }
}

/// Keeps `error` as the calling thread's last failure and reports it when asked to.
@inline(never)
func failed(_ function: StaticString, _ error: NTError, arguments: String?) {
    let message = "\(name(of: function)) failed: \(error.status): \(error.reason)"
    LastFailure.set(message)
    if Diagnostics.trace != .off { report(function, error.status, error.reason, arguments: arguments) }
}

/// `d3dkmt: D3DKMTName -> STATUS: reason [arguments]` on standard error.
@inline(never)
func report(_ function: StaticString, _ status: NTStatus, _ reason: String?, arguments: String?) {
    Diagnostics.report("d3dkmt: \(name(of: function)) -> \(status)" + (reason.map { ": \($0)" } ?? "")
                       + (arguments.map { " [\($0)]" } ?? ""))
}

/// `D3DKMTLock2(_:)` without its argument labels.
private func name(of function: StaticString) -> Substring {
    "\(function)".prefix { $0 != "(" }
}

/// The calling thread's last failure message (a `pthread` key: C callers have no Swift tasks).
enum LastFailure {
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key) { free($0) }
        return key
    }()

    static func set(_ message: String) {
        let copy = strdup(message)
        free(pthread_getspecific(key))
        pthread_setspecific(key, copy)
    }

    static var message: String? {
        pthread_getspecific(key).map { String(cString: $0.assumingMemoryBound(to: CChar.self)) }
    }
}

/// `D3DKMTLinuxGetLastFailure`: the message of the calling thread's last failing D3DKMT call
/// (the call, its NTSTATUS and the library's reason), NUL-terminated and cut to `BufferSize`;
/// returns its full length without the NUL (0 when no call has failed on this thread), so a
/// caller can size a buffer. `pBuffer` may be NULL with `BufferSize` 0.
@c @implementation
public func D3DKMTLinuxGetLastFailure(_ pBuffer: UnsafeMutablePointer<CChar>?, _ BufferSize: UINT) -> UINT {
    guard let message = LastFailure.message else {
        if let pBuffer, BufferSize > 0 { pBuffer[0] = 0 }
        return 0
    }
    let bytes = Array(message.utf8)
    if let pBuffer, BufferSize > 0 {
        let count = min(bytes.count, Int(BufferSize) - 1)
        for index in 0..<count { pBuffer[index] = CChar(bitPattern: bytes[index]) }
        pBuffer[count] = 0
    }
    return UINT(clamping: bytes.count)
}

func invalid(_ why: String) -> NTError { NTError(.invalidParameter, why) }

/// A required input/output struct pointer; NULL is `STATUS_INVALID_PARAMETER`.
func required<T>(_ pointer: UnsafePointer<T>?, _ name: String = "pData") throws(NTError) -> UnsafeMutablePointer<T> {
    guard let pointer else { throw invalid("\(name) is NULL") }
    // Microsoft declares several in/out structs `const`; they are written all the same.
    return UnsafeMutablePointer(mutating: pointer)
}

func required<T>(_ pointer: UnsafeMutablePointer<T>?,
                 _ name: String = "pData") throws(NTError) -> UnsafeMutablePointer<T> {
    guard let pointer else { throw invalid("\(name) is NULL") }
    return pointer
}

/// Copies a C buffer of `size` bytes into an array; NULL with a non-zero size is invalid.
func bytes(_ pointer: UnsafeRawPointer?, _ size: UInt32, _ name: String,
           atMost limit: Int = Int.max) throws(NTError) -> [UInt8] {
    // A size past what the call can take is refused before the copy, which would read past the
    // caller's buffer.
    guard Int(size) <= limit else { throw invalid("\(name) has \(size) bytes; at most \(limit) are taken") }
    guard size > 0 else { return [] }
    guard let pointer else { throw invalid("\(name) is NULL but its size is \(size)") }
    return Array(UnsafeRawBufferPointer(start: pointer, count: Int(size)))
}

/// Copies `source` into a caller's buffer of `capacity` bytes.
func copyOut(_ source: [UInt8], to pointer: UnsafeMutableRawPointer?, capacity: UInt32,
             _ name: String) throws(NTError) {
    guard !source.isEmpty else { return }
    guard let pointer else { throw invalid("\(name) is NULL; \(source.count) bytes are needed") }
    guard Int(capacity) >= source.count else {
        throw invalid("\(name) holds \(capacity) bytes; \(source.count) are needed")
    }
    source.withUnsafeBytes { pointer.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
}

/// Copies a string into a fixed-size C `char` array, NUL-terminated, truncating if needed.
func copyString<Tuple>(_ text: String, into field: inout Tuple) {
    withUnsafeMutableBytes(of: &field) { raw in
        raw.initializeMemory(as: UInt8.self, repeating: 0)
        let utf8 = Array(text.utf8.prefix(raw.count - 1))
        raw.copyBytes(from: utf8)
    }
}

/// A shared NT handle's file descriptor, from a `HANDLE`.
func descriptor(of handle: HANDLE?) -> Int32 {
    guard let handle else { return -1 }
    let value = Int(bitPattern: handle)
    return value >= 0 && value <= Int(Int32.max) ? Int32(value) : -1
}

/// Registers a new local object, or fails with `STATUS_INSUFFICIENT_RESOURCES` when the table is full.
func register(_ object: LocalObject) throws(NTError) -> D3DKMT_HANDLE {
    guard let handle = handleTable.withLock({ $0.insert(object) }) else {
        throw NTError(.insufficientResources, "the local handle table is full")
    }
    return handle
}
