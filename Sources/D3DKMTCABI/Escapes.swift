import D3DKMT
import CD3DKMT

// Escapes: D3DKMTEscape.

/// `D3DKMTEscape`. The one escape this library knows is Wine's
/// `D3DKMT_ESCAPE_UPDATE_RESOURCE_WINE` (0x80000000), which DXVK and vkd3d-proton use to attach
/// their runtime descriptor to a resource a Vulkan layer made: `hContext` is a local resource
/// handle (created or opened) and `pPrivateDriverData`/`PrivateDriverDataSize` its new runtime
/// private data, which the resource, every process that opened it, and every later open of its
/// shared handles see (``Resource/updateRuntimeData(_:)``). `hAdapter`, `hDevice` and `Flags` are
/// not used. `STATUS_INVALID_PARAMETER` when `hContext` is not a resource, the data is NULL with a
/// non-zero size or larger than 131,008 bytes; `STATUS_ACCESS_DENIED` for a resource opened
/// read-only. Every other escape type is `STATUS_NOT_SUPPORTED`: there is no driver behind it.
@c @implementation
public func D3DKMTEscape(_ pData: UnsafePointer<D3DKMT_ESCAPE>?) -> NTSTATUS {
    ntCall(arguments: pData?.pointee) { () throws(NTError) in
        let data = try required(pData).pointee
        guard data.Type == D3DKMT_ESCAPE_UPDATE_RESOURCE_WINE else {
            throw NTError(.notSupported, "escape type 0x\(String(UInt32(bitPattern: data.Type.rawValue), radix: 16)) "
                          + "has no driver behind it here")
        }
        let handle = data.hContext
        let resource: Resource? = handleTable.withLock { table in
            if case .resource(let resource, _, _)? = table.lookup(handle) { return resource }
            return nil
        }
        guard let resource else { throw invalid("hContext 0x\(String(handle, radix: 16)) is not a resource") }
        try resource.updateRuntimeData(try bytes(data.pPrivateDriverData, data.PrivateDriverDataSize,
                                                 "pPrivateDriverData", atMost: Resource.maximumRuntimeDataSize))
    }
}
