import D3DKMT
import CD3DKMT

// Declared in <d3dkmthk.h> and exported, but not implemented yet: names. Each returns STATUS_NOT_SUPPORTED (README, "Status"), never a silent success.

private let notSupported = NTStatus.notSupported.rawValue

@c @implementation public func D3DKMTOpenNtHandleFromName(_ pData: UnsafeMutablePointer<D3DKMT_OPENNTHANDLEFROMNAME>?) -> NTSTATUS { notSupported }
@c @implementation public func D3DKMTOpenSyncObjectNtHandleFromName(_ pData: UnsafeMutablePointer<D3DKMT_OPENSYNCOBJECTNTHANDLEFROMNAME>?) -> NTSTATUS { notSupported }
