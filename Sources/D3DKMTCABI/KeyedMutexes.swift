import D3DKMT
import CD3DKMT

// Keyed mutexes: D3DKMTCreateKeyedMutex(2), D3DKMTOpenKeyedMutex(2), D3DKMTOpenKeyedMutexFromNtHandle,
// D3DKMTDestroyKeyedMutex, D3DKMTAcquireKeyedMutex(2), D3DKMTReleaseKeyedMutex(2), and the Linux
// extension D3DKMTLinuxExportKeyedMutexTimelineFd.

/// `D3DKMTCreateKeyedMutex2`: a keyed mutex released with `InitialValue`, carrying
/// `pPrivateRuntimeData` (whose size is also the most a release can store); no device needed.
/// With `Flags.NtSecuritySharing` it is shared by passing it with its resource and sync object to
/// `D3DKMTShareObjects`, and `hSharedHandle` is 0, as on Windows; without it `hSharedHandle` is a
/// global handle that `D3DKMTOpenKeyedMutex(2)` opens in any process of the same user.
@c @implementation
public func D3DKMTCreateKeyedMutex2(_ pData: UnsafeMutablePointer<D3DKMT_CREATEKEYEDMUTEX2>?) -> NTSTATUS {
    ntCall(arguments: pData?.pointee) { () throws(NTError) in
        let data = try required(pData)
        guard data.pointee.Flags.Value & ~1 == 0 else {
            throw invalid("unknown Flags bits 0x\(String(data.pointee.Flags.Value, radix: 16))")
        }
        let runtimeData = try bytes(data.pointee.pPrivateRuntimeData, data.pointee.PrivateRuntimeDataSize,
                                    "pPrivateRuntimeData", atMost: KeyedMutex.maximumRuntimeDataSize)
        let ntShared = data.pointee.Flags.NtSecuritySharing != 0
        let mutex = try KeyedMutex.create(initialKey: data.pointee.InitialValue, runtimeData: runtimeData,
                                          shareable: ntShared, globalShare: !ntShared)
        data.pointee.hKeyedMutex = try register(.keyedMutex(mutex))
        data.pointee.hSharedHandle = mutex.globalHandle ?? 0
    }
}

/// `D3DKMTCreateKeyedMutex`: `D3DKMTCreateKeyedMutex2` without private data or flags: as on
/// Windows, a mutex with a global handle (`hSharedHandle`).
@c @implementation
public func D3DKMTCreateKeyedMutex(_ pData: UnsafeMutablePointer<D3DKMT_CREATEKEYEDMUTEX>?) -> NTSTATUS {
    ntCall(arguments: pData?.pointee) { () throws(NTError) in
        let data = try required(pData)
        let mutex = try KeyedMutex.create(initialKey: data.pointee.InitialValue, shareable: false, globalShare: true)
        data.pointee.hKeyedMutex = try register(.keyedMutex(mutex))
        data.pointee.hSharedHandle = mutex.globalHandle ?? 0
    }
}

/// `D3DKMTOpenKeyedMutex`: a new open (a new local handle, not owning the mutex) of the keyed
/// mutex a global handle names. It keeps the value alive (this process serves it too) until it is
/// destroyed. `STATUS_INVALID_PARAMETER` for a value that is not a global handle, names another
/// kind of object, or that no process of this user holds any more.
@c @implementation
public func D3DKMTOpenKeyedMutex(_ pData: UnsafeMutablePointer<D3DKMT_OPENKEYEDMUTEX>?) -> NTSTATUS {
    ntCall(arguments: pData?.pointee) { () throws(NTError) in
        let data = try required(pData)
        data.pointee.hKeyedMutex = try register(.keyedMutex(KeyedMutex.open(globalHandle: data.pointee.hSharedHandle)))
    }
}

/// `D3DKMTOpenKeyedMutex2`: `D3DKMTOpenKeyedMutex` with Windows' private data rules: a non-zero
/// `PrivateRuntimeDataSize` needs a buffer and must hold the mutex's private data
/// (`STATUS_INVALID_PARAMETER` otherwise); as on Windows neither the buffer nor the size is
/// written (the data comes with each acquire).
@c @implementation
public func D3DKMTOpenKeyedMutex2(_ pData: UnsafeMutablePointer<D3DKMT_OPENKEYEDMUTEX2>?) -> NTSTATUS {
    ntCall(arguments: pData?.pointee) { () throws(NTError) in
        let data = try required(pData)
        let size = data.pointee.PrivateRuntimeDataSize
        guard size == 0 || data.pointee.pPrivateRuntimeData != nil else {
            throw invalid("PrivateRuntimeDataSize is \(size) with a NULL pPrivateRuntimeData")
        }
        let mutex = try KeyedMutex.open(globalHandle: data.pointee.hSharedHandle)
        guard size == 0 || Int(size) >= mutex.runtimeData.count else {
            throw invalid("pPrivateRuntimeData holds \(size) bytes; the keyed mutex's data takes "
                          + "\(mutex.runtimeData.count)")
        }
        data.pointee.hKeyedMutex = try register(.keyedMutex(mutex))
    }
}

/// `D3DKMTOpenKeyedMutexFromNtHandle`: opens the keyed mutex a shared NT handle holds. When
/// `pPrivateRuntimeData` is not NULL it receives the creator's private data and must hold it all.
@c @implementation
public func D3DKMTOpenKeyedMutexFromNtHandle(
    _ pData: UnsafeMutablePointer<D3DKMT_OPENKEYEDMUTEXFROMNTHANDLE>?
) -> NTSTATUS {
    ntCall(arguments: pData?.pointee) { () throws(NTError) in
        let data = try required(pData)
        let mutex = try SharedHandle.withBorrowed(descriptor(of: data.pointee.hNtHandle)) { (handle) throws(NTError) in
            try KeyedMutex.open(handle)
        }
        if data.pointee.pPrivateRuntimeData != nil {
            try copyOut(mutex.runtimeData, to: data.pointee.pPrivateRuntimeData,
                        capacity: data.pointee.PrivateRuntimeDataSize, "pPrivateRuntimeData")
        }
        data.pointee.hKeyedMutex = try register(.keyedMutex(mutex))
    }
}

/// `D3DKMTDestroyKeyedMutex`: closes this open of the mutex. Destroying it while owning it
/// abandons it for every other open.
@c @implementation
public func D3DKMTDestroyKeyedMutex(_ pData: UnsafePointer<D3DKMT_DESTROYKEYEDMUTEX>?) -> NTSTATUS {
    ntCall(arguments: pData?.pointee) { () throws(NTError) in
        let handle = try required(pData).pointee.hKeyedMutex
        let removed: LocalObject? = handleTable.withLock { table in
            guard case .keyedMutex? = table.lookup(handle) else { return nil }
            return table.remove(handle)
        }
        guard removed != nil else { throw invalid("hKeyedMutex is not a keyed mutex") }
    }
}

/// `D3DKMTAcquireKeyedMutex2`: waits until the mutex is free and was last released with `Key`.
/// `pTimeout` is NT-style (NULL: forever; negative: relative, 100 ns units; positive: absolute
/// system time; 0: try once). Returns `STATUS_TIMEOUT` (0x102) when the time runs out and
/// `STATUS_ABANDONED` (0x80) once an owner died or destroyed the mutex while owning it. On success
/// `FenceValue` is the last release's fence value and `pPrivateRuntimeData`, when not NULL,
/// receives its private data (the buffer must hold the mutex's private data size).
@c @implementation
public func D3DKMTAcquireKeyedMutex2(_ pData: UnsafeMutablePointer<D3DKMT_ACQUIREKEYEDMUTEX2>?) -> NTSTATUS {
    ntCall(arguments: pData?.pointee) { () throws(NTError) in
        let data = try required(pData)
        let mutex = try HandleTable.keyedMutex(data.pointee.hKeyedMutex)
        let buffer = data.pointee.pPrivateRuntimeData
        // Checked before acquiring: failing afterwards would leave the mutex owned.
        if buffer != nil, data.pointee.PrivateRuntimeDataSize < UInt32(mutex.runtimeData.count) {
            throw invalid("pPrivateRuntimeData holds \(data.pointee.PrivateRuntimeDataSize) bytes; "
                          + "the keyed mutex's data takes \(mutex.runtimeData.count)")
        }
        let acquired = try mutex.acquire(key: data.pointee.Key, ntTimeout: data.pointee.pTimeout?.pointee.QuadPart)
        data.pointee.FenceValue = acquired.fenceValue
        if let buffer, !acquired.runtimeData.isEmpty {
            acquired.runtimeData.withUnsafeBytes {
                buffer.copyMemory(from: $0.baseAddress!,
                                  byteCount: min($0.count, Int(data.pointee.PrivateRuntimeDataSize)))
            }
        }
    }
}

/// `D3DKMTAcquireKeyedMutex`: `D3DKMTAcquireKeyedMutex2` without private data. Any `pTimeout`
/// value is taken by the NT rules (DXVK's unsigned conversion of milliseconds gives small positive
/// values: absolute times long past, so a mutex that is not free times out at once).
@c @implementation
public func D3DKMTAcquireKeyedMutex(_ pData: UnsafeMutablePointer<D3DKMT_ACQUIREKEYEDMUTEX>?) -> NTSTATUS {
    ntCall(arguments: pData?.pointee) { () throws(NTError) in
        let data = try required(pData)
        let mutex = try HandleTable.keyedMutex(data.pointee.hKeyedMutex)
        data.pointee.FenceValue = try mutex.acquire(key: data.pointee.Key,
                                                    ntTimeout: data.pointee.pTimeout?.pointee.QuadPart).fenceValue
    }
}

/// `D3DKMTReleaseKeyedMutex`: `D3DKMTReleaseKeyedMutex2` without private data.
@c @implementation
public func D3DKMTReleaseKeyedMutex(_ pData: UnsafeMutablePointer<D3DKMT_RELEASEKEYEDMUTEX>?) -> NTSTATUS {
    ntCall(arguments: pData?.pointee) { () throws(NTError) in
        let data = try required(pData)
        try HandleTable.keyedMutex(data.pointee.hKeyedMutex).release(key: data.pointee.Key,
                                                                     fenceValue: data.pointee.FenceValue)
    }
}

/// `D3DKMTReleaseKeyedMutex2`: hands the mutex on with `Key`, recording `FenceValue` and the
/// private data for the next owner. `STATUS_INVALID_PARAMETER` when this handle does not own the
/// mutex or the data is larger than the mutex's; `STATUS_ABANDONED` once it was abandoned.
@c @implementation
public func D3DKMTReleaseKeyedMutex2(_ pData: UnsafeMutablePointer<D3DKMT_RELEASEKEYEDMUTEX2>?) -> NTSTATUS {
    ntCall(arguments: pData?.pointee) { () throws(NTError) in
        let data = try required(pData)
        let mutex = try HandleTable.keyedMutex(data.pointee.hKeyedMutex)
        let runtimeData = try bytes(data.pointee.pPrivateRuntimeData, data.pointee.PrivateRuntimeDataSize,
                                    "pPrivateRuntimeData", atMost: mutex.runtimeDataCapacity)
        try mutex.release(key: data.pointee.Key, fenceValue: data.pointee.FenceValue, runtimeData: runtimeData)
    }
}

/// `D3DKMTLinuxExportKeyedMutexTimelineFd`: a new descriptor for the mutex's DRM timeline syncobj.
@c @implementation
public func D3DKMTLinuxExportKeyedMutexTimelineFd(_ hKeyedMutex: D3DKMT_HANDLE,
                                                  _ pFd: UnsafeMutablePointer<Int32>?) -> NTSTATUS {
    ntCall(arguments: (hKeyedMutex, pFd)) { () throws(NTError) in
        let out = try required(pFd, "pFd")
        out.pointee = try HandleTable.keyedMutex(hKeyedMutex).exportTimeline().take()
    }
}

/// `D3DKMTLinuxSignalKeyedMutexFromSyncFile`: the mutex's timeline reaches `FenceValue` when the
/// sync_file's fence signals (before `D3DKMTReleaseKeyedMutex2` with that value); returns at once.
@c @implementation
public func D3DKMTLinuxSignalKeyedMutexFromSyncFile(_ hDevice: D3DKMT_HANDLE, _ hKeyedMutex: D3DKMT_HANDLE,
                                                    _ FenceValue: UINT64, _ SyncFileFd: Int32) -> NTSTATUS {
    ntCall(arguments: (hDevice, hKeyedMutex, FenceValue, SyncFileFd)) { () throws(NTError) in
        let device = try HandleTable.device(hDevice)
        try HandleTable.keyedMutex(hKeyedMutex).signal(fenceValue: FenceValue, whenSignalled: SyncFileFd,
                                                       on: device)
    }
}

/// `D3DKMTLinuxExportKeyedMutexSyncFile`: a sync_file for one fence value of the mutex's timeline,
/// for the acquirer's GPU work to wait on.
@c @implementation
public func D3DKMTLinuxExportKeyedMutexSyncFile(_ hDevice: D3DKMT_HANDLE, _ hKeyedMutex: D3DKMT_HANDLE,
                                                _ FenceValue: UINT64, _ pFd: UnsafeMutablePointer<Int32>?) -> NTSTATUS {
    ntCall(arguments: (hDevice, hKeyedMutex, FenceValue, pFd)) { () throws(NTError) in
        let out = try required(pFd, "pFd")
        let device = try HandleTable.device(hDevice)
        out.pointee = try HandleTable.keyedMutex(hKeyedMutex).exportSyncFile(fenceValue: FenceValue, on: device).take()
    }
}
