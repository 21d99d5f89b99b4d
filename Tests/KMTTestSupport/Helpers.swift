import D3DKMT
#if canImport(Glibc)
import Glibc
#endif

/// What the Swift tests and the test peer both need, written once.

/// `bytes` as lowercase hex, two digits a byte.
public func hex(_ bytes: [UInt8]) -> String {
    bytes.map { $0 < 16 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
}

/// The NTSTATUS `body` ends with: success, the status of the `NTError` it throws, or
/// `STATUS_UNSUCCESSFUL` for any other error.
public func status(_ body: () throws -> Void) -> NTStatus {
    do {
        try body()
        return .success
    } catch let error as NTError {
        return error.status
    } catch {
        return .unsuccessful
    }
}

/// Open descriptors of this process.
public func openDescriptorCount() -> Int { Diagnostics.openDescriptorCount() }

/// Reads a child's output (a pipe) line by line, keeping what arrived past the last newline.
public struct LineReader {
    public let descriptor: Int32
    /// Bytes read but not yet returned as a line.
    public private(set) var pending: [UInt8] = []

    public init(_ descriptor: Int32) { self.descriptor = descriptor }

    /// The next line without its newline; nil at the end of the output.
    public mutating func next() -> String? {
        while true {
            if let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: pending[..<newline], as: UTF8.self)
                pending.removeSubrange(...newline)
                return line
            }
            guard readMore() else { return nil }
        }
    }

    /// Everything still to come, up to the end of the output, after what is pending.
    public mutating func rest() -> [UInt8] {
        while readMore() {}
        defer { pending = [] }
        return pending
    }

    /// One `read(2)` into ``pending``; false at the end of the output or on an error.
    private mutating func readMore() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = read(descriptor, &chunk, chunk.count)
            if count > 0 {
                pending += chunk[0..<count]
                return true
            }
            if count < 0 && errno == EINTR { continue }
            return false
        }
    }
}
