import Testing
import CD3DKMT
@testable import D3DKMTCABI
@testable import D3DKMT
#if canImport(Glibc)
import Glibc
#endif

/// The C entry points called directly (the C test in Tests/c runs them from a C program across
/// processes; this covers the paths it does not).
extension D3DKMTSuite {
    @Suite struct CABI {
        func softwareDevice() throws -> (adapter: D3DKMT_HANDLE, device: D3DKMT_HANDLE) {
            var open = D3DKMT_OPENADAPTERFROMLUID()
            open.AdapterLuid = CD3DKMT.LUID(LowPart: AdapterInfo.software.luid.lowPart,
                                            HighPart: AdapterInfo.software.luid.highPart)
            try #require(D3DKMTOpenAdapterFromLuid(&open) == 0)
            var create = D3DKMT_CREATEDEVICE()
            create.hAdapter = open.hAdapter
            try #require(D3DKMTCreateDevice(&create) == 0)
            return (open.hAdapter, create.hDevice)
        }

        func close(_ handles: (adapter: D3DKMT_HANDLE, device: D3DKMT_HANDLE)) {
            var destroy = D3DKMT_DESTROYDEVICE(hDevice: handles.device)
            #expect(D3DKMTDestroyDevice(&destroy) == 0)
            var closeAdapter = D3DKMT_CLOSEADAPTER(hAdapter: handles.adapter)
            #expect(D3DKMTCloseAdapter(&closeAdapter) == 0)
        }

        @Test func enumerationReportsTheCountAndRefusesAShortArray() throws {
            var query = D3DKMT_ENUMADAPTERS2()
            #expect(D3DKMTEnumAdapters2(&query) == 0)
            #expect(Int(query.NumAdapters) == Adapter.enumerate().count)
            guard query.NumAdapters > 0 else { return }
            var entries = [D3DKMT_ADAPTERINFO](repeating: D3DKMT_ADAPTERINFO(), count: Int(query.NumAdapters))
            try entries.withUnsafeMutableBufferPointer { buffer in
                var short = D3DKMT_ENUMADAPTERS2(NumAdapters: query.NumAdapters - 1, pAdapters: buffer.baseAddress)
                #expect(D3DKMTEnumAdapters2(&short) == NTStatus.bufferTooSmall.rawValue)
                #expect(short.NumAdapters == query.NumAdapters)
                var full = D3DKMT_ENUMADAPTERS2(NumAdapters: query.NumAdapters, pAdapters: buffer.baseAddress)
                try #require(D3DKMTEnumAdapters2(&full) == 0)
            }
            for entry in entries {
                var close = D3DKMT_CLOSEADAPTER(hAdapter: entry.hAdapter)
                #expect(D3DKMTCloseAdapter(&close) == 0)
                // Closed handles are refused, never reused silently.
                #expect(D3DKMTCloseAdapter(&close) == NTStatus.invalidParameter.rawValue)
            }
        }

        @Test func standaloneAllocationsLockUnlockAndDestroyWithTheDevice() throws {
            try expectNoDescriptorLeak("C ABI allocations") {
                let handles = try softwareDevice()
                var desc = D3DKMT_LINUX_ALLOCATION_DESC()
                desc.Version = UInt32(D3DKMT_LINUX_ALLOCATION_DESC_VERSION)
                desc.Size = 8192
                desc.DmaBufFd = -1
                var info = D3DDDI_ALLOCATIONINFO()
                try withUnsafeMutablePointer(to: &desc) { descPointer in
                    info.pPrivateDriverData = UnsafeMutableRawPointer(descPointer)
                    info.PrivateDriverDataSize = UInt32(MemoryLayout<D3DKMT_LINUX_ALLOCATION_DESC>.size)
                    try withUnsafeMutablePointer(to: &info) { infoPointer in
                        var create = D3DKMT_CREATEALLOCATION()
                        create.hDevice = handles.device
                        create.NumAllocations = 1
                        create.pAllocationInfo = infoPointer
                        try #require(D3DKMTCreateAllocation(&create) == 0)
                        #expect(create.hResource == 0)
                        // A standalone allocation cannot be shared.
                        var shared: HANDLE? = nil
                        var allocation = infoPointer.pointee.hAllocation
                        #expect(D3DKMTShareObjects(1, &allocation, nil, 0, &shared)
                                == NTStatus.invalidParameter.rawValue)

                        var lock = D3DKMT_LOCK2()
                        lock.hDevice = handles.device
                        lock.hAllocation = allocation
                        try #require(D3DKMTLock2(&lock) == 0)
                        let first = try #require(lock.pData)
                        first.storeBytes(of: 0xA5, as: UInt8.self)
                        try #require(D3DKMTLock2(&lock) == 0)
                        #expect(lock.pData == first)
                        var unlock = D3DKMT_UNLOCK2(hDevice: handles.device, hAllocation: allocation)
                        #expect(D3DKMTUnlock2(&unlock) == 0)
                        #expect(D3DKMTUnlock2(&unlock) == 0)
                        #expect(D3DKMTUnlock2(&unlock) == NTStatus.invalidParameter.rawValue)

                        var size: UINT64 = 0
                        #expect(D3DKMTLinuxQueryAllocationSize(handles.device, allocation, &size) == 0)
                        #expect(size == 8192)
                        var fd: Int32 = -1
                        #expect(D3DKMTLinuxExportAllocationDmaBuf(handles.device, allocation, &fd) == 0)
                        #expect(fd >= 0)
                        Glibc.close(fd)
                        // Wrong device, wrong type, NULL out-pointer.
                        #expect(D3DKMTLinuxQueryAllocationSize(handles.adapter, allocation, &size)
                                == NTStatus.invalidParameter.rawValue)
                        #expect(D3DKMTLinuxQueryAllocationSize(handles.device, handles.device, &size)
                                == NTStatus.invalidParameter.rawValue)
                        #expect(D3DKMTLinuxQueryAllocationSize(handles.device, allocation, nil)
                                == NTStatus.invalidParameter.rawValue)
                    }
                }
                // Destroying the device destroys its allocation (its memfd closes: no leak).
                close(handles)
            }
        }

        @Test func badCreateRequestsAreRefused() throws {
            let handles = try softwareDevice()
            defer { close(handles) }
            var create = D3DKMT_CREATEALLOCATION()
            create.hDevice = handles.device
            #expect(D3DKMTCreateAllocation2(nil) == NTStatus.invalidParameter.rawValue)
            create.NumAllocations = 1
            #expect(D3DKMTCreateAllocation2(&create) == NTStatus.invalidParameter.rawValue)  // pAllocationInfo2 NULL
            var short = [UInt8](repeating: 0, count: 8)
            short.withUnsafeMutableBytes { raw in
                var info = D3DDDI_ALLOCATIONINFO2()
                info.pPrivateDriverData = raw.baseAddress
                info.PrivateDriverDataSize = 8  // shorter than a D3DKMT_LINUX_ALLOCATION_DESC
                withUnsafeMutablePointer(to: &info) { pointer in
                    create.pAllocationInfo2 = pointer
                    #expect(D3DKMTCreateAllocation2(&create) == NTStatus.invalidParameter.rawValue)
                    // An unknown device, while `info` still exists (the pointer dies with this closure).
                    create.hDevice = 0x4000_1234
                    #expect(D3DKMTCreateAllocation2(&create) == NTStatus.invalidParameter.rawValue)
                }
            }
        }

        @Test func nullArgumentsAndForgedGlobalHandlesAreInvalid() {
            let invalid = NTStatus.invalidParameter.rawValue
            #expect(D3DKMTCreateKeyedMutex2(nil) == invalid)
            #expect(D3DKMTAcquireKeyedMutex2(nil) == invalid)
            #expect(D3DKMTReleaseKeyedMutex2(nil) == invalid)
            #expect(D3DKMTCreateSynchronizationObject2(nil) == invalid)
            #expect(D3DKMTSignalSynchronizationObjectFromCpu(nil) == invalid)
            #expect(D3DKMTWaitForSynchronizationObjectFromCpu(nil) == invalid)
            #expect(D3DKMTOpenNtHandleFromName(nil) == invalid)
            #expect(D3DKMTOpenSyncObjectNtHandleFromName(nil) == invalid)
            #expect(D3DKMTQueryResourceInfo(nil) == invalid)
            #expect(D3DKMTOpenResource(nil) == invalid)
            #expect(D3DKMTOpenResource2(nil) == invalid)
            #expect(D3DKMTOpenSynchronizationObject(nil) == invalid)
            #expect(D3DKMTOpenKeyedMutex(nil) == invalid)
            // Not a global handle's shape, and a shape no process holds.
            for value: UInt32 in [0x1234, 0xC000_0002, 0xFFFF_FFC2] {
                var open = D3DKMT_OPENKEYEDMUTEX2()
                open.hSharedHandle = value
                #expect(D3DKMTOpenKeyedMutex2(&open) == invalid)
            }
        }
    }
}
