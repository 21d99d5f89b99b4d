import Testing
@testable import D3DKMT
import CD3DKMT

/// `NTStatus` against `<d3dkmthk.h>`: every value the Swift API names is the header's
/// `STATUS_*`, and every one prints with its name.
extension D3DKMTSuite {
    @Suite struct NTStatusValues {
        /// Each `NTStatus` constant, the header's macro for it, and the name it prints.
        static let all: [(status: NTStatus, header: NTSTATUS, name: String)] = [
            (.success, STATUS_SUCCESS, "STATUS_SUCCESS"),
            (.abandoned, STATUS_ABANDONED, "STATUS_ABANDONED"),
            (.timeout, STATUS_TIMEOUT, "STATUS_TIMEOUT"),
            (.pending, STATUS_PENDING, "STATUS_PENDING"),
            (.bufferOverflow, STATUS_BUFFER_OVERFLOW, "STATUS_BUFFER_OVERFLOW"),
            (.unsuccessful, STATUS_UNSUCCESSFUL, "STATUS_UNSUCCESSFUL"),
            (.notImplemented, STATUS_NOT_IMPLEMENTED, "STATUS_NOT_IMPLEMENTED"),
            (.invalidHandle, STATUS_INVALID_HANDLE, "STATUS_INVALID_HANDLE"),
            (.invalidParameter, STATUS_INVALID_PARAMETER, "STATUS_INVALID_PARAMETER"),
            (.noSuchDevice, STATUS_NO_SUCH_DEVICE, "STATUS_NO_SUCH_DEVICE"),
            (.invalidDeviceRequest, STATUS_INVALID_DEVICE_REQUEST, "STATUS_INVALID_DEVICE_REQUEST"),
            (.noMemory, STATUS_NO_MEMORY, "STATUS_NO_MEMORY"),
            (.accessDenied, STATUS_ACCESS_DENIED, "STATUS_ACCESS_DENIED"),
            (.bufferTooSmall, STATUS_BUFFER_TOO_SMALL, "STATUS_BUFFER_TOO_SMALL"),
            (.objectTypeMismatch, STATUS_OBJECT_TYPE_MISMATCH, "STATUS_OBJECT_TYPE_MISMATCH"),
            (.objectNameInvalid, STATUS_OBJECT_NAME_INVALID, "STATUS_OBJECT_NAME_INVALID"),
            (.objectNameNotFound, STATUS_OBJECT_NAME_NOT_FOUND, "STATUS_OBJECT_NAME_NOT_FOUND"),
            (.objectNameCollision, STATUS_OBJECT_NAME_COLLISION, "STATUS_OBJECT_NAME_COLLISION"),
            (.objectPathNotFound, STATUS_OBJECT_PATH_NOT_FOUND, "STATUS_OBJECT_PATH_NOT_FOUND"),
            (.integerOverflow, STATUS_INTEGER_OVERFLOW, "STATUS_INTEGER_OVERFLOW"),
            (.insufficientResources, STATUS_INSUFFICIENT_RESOURCES, "STATUS_INSUFFICIENT_RESOURCES"),
            (.ioTimeout, STATUS_IO_TIMEOUT, "STATUS_IO_TIMEOUT"),
            (.notSupported, STATUS_NOT_SUPPORTED, "STATUS_NOT_SUPPORTED"),
            (.tooManyOpenedFiles, STATUS_TOO_MANY_OPENED_FILES, "STATUS_TOO_MANY_OPENED_FILES"),
            (.deviceRemoved, STATUS_DEVICE_REMOVED, "STATUS_DEVICE_REMOVED"),
        ]

        @Test func everyStatusIsTheHeaderValue() {
            for entry in Self.all {
                #expect(entry.status.rawValue == entry.header, "\(entry.name)")
            }
        }

        @Test func everyStatusPrintsItsName() {
            for entry in Self.all {
                let hex = "0x" + String(UInt32(bitPattern: entry.header), radix: 16, uppercase: true)
                #expect(entry.status.description == "\(entry.name) (\(hex))")
            }
        }

        @Test func statusesAreDistinct() {
            #expect(Set(Self.all.map(\.status)).count == Self.all.count)
        }

        @Test func unnamedStatusesPrintTheirValue() {
            #expect(NTStatus(rawValue: 0x1234).description == "0x1234")
        }
    }
}
