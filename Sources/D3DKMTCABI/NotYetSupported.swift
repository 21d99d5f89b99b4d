import D3DKMT
import CD3DKMT

// Declared in <d3dkmthk.h> and exported, but not implemented yet: keyed mutexes, sync objects
// and names. Each returns STATUS_NOT_SUPPORTED (README, "Status"), never a silent success.

private let notSupported = NTStatus.notSupported.rawValue

@c @implementation public func D3DKMTCreateKeyedMutex2(_ pData: UnsafeMutablePointer<D3DKMT_CREATEKEYEDMUTEX2>?) -> NTSTATUS { notSupported }
@c @implementation public func D3DKMTOpenKeyedMutex2(_ pData: UnsafeMutablePointer<D3DKMT_OPENKEYEDMUTEX2>?) -> NTSTATUS { notSupported }
@c @implementation public func D3DKMTOpenKeyedMutexFromNtHandle(_ pData: UnsafeMutablePointer<D3DKMT_OPENKEYEDMUTEXFROMNTHANDLE>?) -> NTSTATUS { notSupported }
@c @implementation public func D3DKMTDestroyKeyedMutex(_ pData: UnsafePointer<D3DKMT_DESTROYKEYEDMUTEX>?) -> NTSTATUS { notSupported }
@c @implementation public func D3DKMTAcquireKeyedMutex2(_ pData: UnsafeMutablePointer<D3DKMT_ACQUIREKEYEDMUTEX2>?) -> NTSTATUS { notSupported }
@c @implementation public func D3DKMTReleaseKeyedMutex2(_ pData: UnsafeMutablePointer<D3DKMT_RELEASEKEYEDMUTEX2>?) -> NTSTATUS { notSupported }
@c @implementation public func D3DKMTCreateSynchronizationObject2(_ pData: UnsafeMutablePointer<D3DKMT_CREATESYNCHRONIZATIONOBJECT2>?) -> NTSTATUS { notSupported }
@c @implementation public func D3DKMTOpenSyncObjectFromNtHandle(_ pData: UnsafeMutablePointer<D3DKMT_OPENSYNCOBJECTFROMNTHANDLE>?) -> NTSTATUS { notSupported }
@c @implementation public func D3DKMTOpenSyncObjectFromNtHandle2(_ pData: UnsafeMutablePointer<D3DKMT_OPENSYNCOBJECTFROMNTHANDLE2>?) -> NTSTATUS { notSupported }
@c @implementation public func D3DKMTDestroySynchronizationObject(_ pData: UnsafePointer<D3DKMT_DESTROYSYNCHRONIZATIONOBJECT>?) -> NTSTATUS { notSupported }
@c @implementation public func D3DKMTSignalSynchronizationObjectFromCpu(_ pData: UnsafePointer<D3DKMT_SIGNALSYNCHRONIZATIONOBJECTFROMCPU>?) -> NTSTATUS { notSupported }
@c @implementation public func D3DKMTWaitForSynchronizationObjectFromCpu(_ pData: UnsafePointer<D3DKMT_WAITFORSYNCHRONIZATIONOBJECTFROMCPU>?) -> NTSTATUS { notSupported }
@c @implementation public func D3DKMTOpenNtHandleFromName(_ pData: UnsafeMutablePointer<D3DKMT_OPENNTHANDLEFROMNAME>?) -> NTSTATUS { notSupported }
@c @implementation public func D3DKMTOpenSyncObjectNtHandleFromName(_ pData: UnsafeMutablePointer<D3DKMT_OPENSYNCOBJECTNTHANDLEFROMNAME>?) -> NTSTATUS { notSupported }
