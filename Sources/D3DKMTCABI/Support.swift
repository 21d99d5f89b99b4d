import D3DKMT
import CD3DKMT

/// Runs one C entry point's body and turns what it throws into the NTSTATUS it returns.
@inline(__always)
func ntCall(_ body: () throws(NTError) -> Void) -> NTSTATUS {
    do {
        try body()
        return NTStatus.success.rawValue
    } catch {
        return error.status.rawValue
    }
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
func bytes(_ pointer: UnsafeRawPointer?, _ size: UInt32, _ name: String) throws(NTError) -> [UInt8] {
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
