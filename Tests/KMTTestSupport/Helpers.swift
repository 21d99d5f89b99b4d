import D3DKMT

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
