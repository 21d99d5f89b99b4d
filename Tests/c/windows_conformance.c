/*
 * windows_conformance.c - the expectations that Wine's conformance test
 * (dlls/win32u/tests/d3dkmt.c) checks on real Windows, checked against
 * libd3dkmt through its C ABI (<d3dkmthk.h>) on every adapter that
 * D3DKMTEnumAdapters2 reports.
 *
 * Build and run:
 *     cc -std=c11 -o windows_conformance windows_conformance.c $(pkg-config --cflags --libs d3dkmt)
 *     ./windows_conformance
 *
 * The groups below follow the calls, each citing the section of the client
 * facts (the notes on DXVK, vkd3d-proton, Wine and the Windows test) it comes
 * from:
 *   adapters, devices    facts 4.1, 2 (a device outlives its adapter handle)
 *   handles              facts 0, 4.2, 4.5 (the test's next_local chain)
 *   sync objects v1      facts 4.2
 *   sync objects v2      facts 4.3
 *   sync object sharing  facts 4.7 "Sync objects"
 *   keyed mutexes        facts 4.4, 3.1, 3.3, 1.8
 *   allocations          facts 4.5
 *   ShareObjects         facts 4.7 "Resources" and "Combined objects", 5
 *   query / open         facts 4.7 QueryResourceInfoFromNtHandle, OpenResourceFromNtHandle
 *   names                facts 4.7 OpenNtHandleFromName, 3.1, 3.2
 *   access               facts 3.3 (the generic mapping), 4.10
 *   escape               facts 3.1, 4.8, 5
 *
 * Where Windows needs objects this library does not have (standard allocations
 * of existing system memory), the same rule is checked with the library's
 * allocation form: a D3DKMT_LINUX_ALLOCATION_DESC at the start of each
 * allocation's private driver data, followed by the runtime's own bytes.
 * Where the library deliberately differs from Windows (no CPU notifications, no
 * existing system memory), its documented status is checked and the check says
 * so in a comment "differs from Windows". Global (KMT) handles are per user
 * here, system-wide on Windows; within one user they behave as Windows'.
 *
 * vgem has no DRM syncobjs: fence types are STATUS_NOT_SUPPORTED there (checked),
 * and the parts that need a fence are skipped. Mutex and semaphore sync objects
 * exist on every adapter, so the sharing checks use them, as the Windows test
 * does.
 *
 * A child process (this program re-executed as
 *     windows_conformance escape-child <fd> <LUID low> <LUID high> <hex bytes>)
 * checks that runtime data replaced by D3DKMTEscape is what another process
 * reads from a handle shared before the escape.
 *
 * Output: one line per adapter on stdout, failure details on stderr, and as
 * the last line "N passed, M failed". The exit status is 0 only if nothing
 * failed.
 */
#define _GNU_SOURCE
#include "support/kmt_test.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PRESET          KMT_PRESET    /* the Windows test's "invalid" handle */
#define ALLOC_SIZE      0x10000u
#define EXTRA_BYTES     10u           /* the Windows test's allocation driver data: 10 bytes */
#define KM_DATA_BYTES   20u           /* the Windows test's keyed mutex runtime data: 20 bytes */
#define NAME_LOOPS      200
#define MAX_ESCAPE_DATA 131008u /* RuntimeDataPage: 128 KiB less its 64-byte header */

static const uint8_t runtime4[4] = { 9, 8, 7, 6 }; /* the Windows test's resource runtime data */

#define PHASE_SECONDS 90

/* ------------------------------------------------------------------------ */
/* Handles (facts 0)                                                        */
/* ------------------------------------------------------------------------ */

static int is_local(D3DKMT_HANDLE h)
{
    return h != 0 && (h & 0xc0000000u) == 0xc0000000u && (h & 0x3fu) == 0;
}

#define CHECK_LOCAL(h, what) \
    CHECK(is_local(h), "%s 0x%08" PRIX32 " is not a local D3DKMT handle", (what), (uint32_t)(h))

/* A global (KMT) handle: 0xc0000000 set, low 6 bits 2. */
static int is_global(D3DKMT_HANDLE h)
{
    return (h & 0xc0000000u) == 0xc0000000u && (h & 0x3fu) == 2;
}

#define CHECK_GLOBAL(h, what) \
    CHECK(is_global(h), "%s 0x%08" PRIX32 " is not a global D3DKMT handle", (what), (uint32_t)(h))

/* An NT handle: an open descriptor, (h & 0xc0000000) == 0. */
static int is_nt(HANDLE h)
{
    uintptr_t v = (uintptr_t)h;
    return h != NULL && (v & 0xc0000000u) == 0 && v <= INT32_MAX &&
           fcntl(D3DKMTLinuxHandleToFd(h), F_GETFD) >= 0;
}

#define CHECK_NT(h, what) CHECK(is_nt(h), "%s %p is not an NT handle (an open descriptor)", (what), (void *)(h))

/* The Windows test's next_local: every fresh local is the previous + 0x40,
 * whatever its type. 0 starts a new chain. */
static D3DKMT_HANDLE chain_next;

static void chain(D3DKMT_HANDLE h, const char *what)
{
    CHECK_LOCAL(h, what);
    if (chain_next)
        CHECK(h == chain_next, "%s is 0x%08" PRIX32 ", expected the next local 0x%08" PRIX32, what,
              (uint32_t)h, (uint32_t)chain_next);
    chain_next = h + 0x40u;
}

static void close_nt(HANDLE h)
{
    if (h)
        CHECK(close(D3DKMTLinuxHandleToFd(h)) == 0, "close(NT handle %p): %s", (void *)h, strerror(errno));
}

/* ------------------------------------------------------------------------ */
/* Process state                                                            */
/* ------------------------------------------------------------------------ */

/* 1 if the mapping holding p is writable, 0 if it is not, -1 if p is not mapped. */
static int mapping_writable(const void *p)
{
    FILE *f = fopen("/proc/self/maps", "re");
    if (!f)
        return -1;
    char line[512];
    int result = -1;
    uintptr_t a = (uintptr_t)p;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        char perms[8];
        if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3 && a >= lo && a < hi) {
            result = perms[1] == 'w';
            break;
        }
    }
    fclose(f);
    return result;
}

static LONGLONG elapsed_ms(const struct timespec *since)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (LONGLONG)(now.tv_sec - since->tv_sec) * 1000 + (now.tv_nsec - since->tv_nsec) / 1000000;
}

/* ------------------------------------------------------------------------ */
/* Names                                                                    */
/* ------------------------------------------------------------------------ */

/* OBJECT_ATTRIBUTES naming the printf-formatted name, Attributes 0 (as the
 * Windows test: no OBJ_CASE_INSENSITIVE) and MaximumLength = Length. */
static OBJECT_ATTRIBUTES *ntname(nt_name_t *n, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static OBJECT_ATTRIBUTES *ntname(nt_name_t *n, const char *fmt, ...)
{
    char s[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s, sizeof s, fmt, ap);
    va_end(ap);
    OBJECT_ATTRIBUTES *oa = make_attributes(n, s, 0, NULL);
    n->string.MaximumLength = n->string.Length;
    return oa;
}

/* ------------------------------------------------------------------------ */
/* Wrappers                                                                 */
/* ------------------------------------------------------------------------ */

typedef struct {
    unsigned index;
    const char *argv0;
    D3DKMT_ADAPTERINFO info;
    D3DKMT_LINUX_ADAPTER_INFO li;
    int info_ok;
    int fences;             /* fence types exist (not on vgem) */
    D3DKMT_HANDLE hDevice;
    char base[96];          /* a name unique to this run and adapter */
} adapter_t;

static uint8_t extra_byte(unsigned i)
{
    return (uint8_t)(0xA0u + i * 7u);
}

/* An allocation's private driver data: the library's descriptor, then the
 * runtime's own bytes. */
typedef struct {
    D3DKMT_LINUX_ALLOCATION_DESC desc;
    uint8_t extra[32];
} alloc_data_t;

#define ALLOC_DATA_SIZE(extra) ((UINT)(sizeof(D3DKMT_LINUX_ALLOCATION_DESC) + (extra)))

static void alloc_data_init(alloc_data_t *d, unsigned extra)
{
    memset(d, 0, sizeof *d);
    d->desc.Version = D3DKMT_LINUX_ALLOCATION_DESC_VERSION;
    d->desc.Size = ALLOC_SIZE;
    d->desc.DmaBufFd = -1;
    for (unsigned i = 0; i < extra && i < sizeof d->extra; i++)
        d->extra[i] = extra_byte(i);
}

/* A resource of `count` (<= 2) allocations with CreateResource, `extra` driver
 * bytes per allocation after the descriptor and the given runtime data; nt
 * adds CreateShared and NtSecuritySharing. */
static NTSTATUS create_resource_n(D3DKMT_HANDLE hDevice, unsigned count, const void *rt, UINT rtSize,
                                  unsigned extra, int nt, D3DKMT_HANDLE *phRes, D3DKMT_HANDLE *phAllocs)
{
    alloc_data_t data[2];
    D3DDDI_ALLOCATIONINFO2 info[2];
    D3DKMT_CREATEALLOCATION ca;
    memset(info, 0, sizeof info);
    for (unsigned i = 0; i < count && i < 2; i++) {
        alloc_data_init(&data[i], extra);
        info[i].pPrivateDriverData = &data[i];
        info[i].PrivateDriverDataSize = ALLOC_DATA_SIZE(extra);
        info[i].hAllocation = PRESET;
    }
    memset(&ca, 0, sizeof ca);
    ca.hDevice = hDevice;
    ca.pPrivateRuntimeData = rt;
    ca.PrivateRuntimeDataSize = rtSize;
    ca.NumAllocations = count;
    ca.pAllocationInfo2 = info;
    ca.Flags.CreateResource = 1;
    ca.Flags.CreateShared = nt ? 1 : 0;
    ca.Flags.NtSecuritySharing = nt ? 1 : 0;
    NTSTATUS st = D3DKMTCreateAllocation2(&ca);
    *phRes = st == STATUS_SUCCESS ? ca.hResource : 0;
    for (unsigned i = 0; i < count && i < 2; i++)
        phAllocs[i] = st == STATUS_SUCCESS ? info[i].hAllocation : 0;
    return st;
}

static NTSTATUS create_resource1(D3DKMT_HANDLE hDevice, const void *rt, UINT rtSize, unsigned extra, int nt,
                                D3DKMT_HANDLE *phRes, D3DKMT_HANDLE *phAlloc)
{
    return create_resource_n(hDevice, 1, rt, rtSize, extra, nt, phRes, phAlloc);
}

/* The Windows test's NT-shareable resource: runtime data {9, 8, 7, 6}, one
 * allocation with EXTRA_BYTES bytes of driver data. */
static NTSTATUS create_test_resource(D3DKMT_HANDLE hDevice, D3DKMT_HANDLE *phRes, D3DKMT_HANDLE *phAlloc)
{
    return create_resource1(hDevice, runtime4, sizeof runtime4, EXTRA_BYTES, 1, phRes, phAlloc);
}

/* An allocation without a resource. */
static NTSTATUS create_standalone(D3DKMT_HANDLE hDevice, D3DKMT_HANDLE *phAlloc)
{
    alloc_data_t data;
    D3DDDI_ALLOCATIONINFO2 info;
    D3DKMT_CREATEALLOCATION ca;
    alloc_data_init(&data, 0);
    memset(&info, 0, sizeof info);
    info.pPrivateDriverData = &data;
    info.PrivateDriverDataSize = ALLOC_DATA_SIZE(0);
    memset(&ca, 0, sizeof ca);
    ca.hDevice = hDevice;
    ca.NumAllocations = 1;
    ca.pAllocationInfo2 = &info;
    NTSTATUS st = D3DKMTCreateAllocation2(&ca);
    *phAlloc = st == STATUS_SUCCESS ? info.hAllocation : 0;
    return st;
}

static NTSTATUS share(UINT count, const D3DKMT_HANDLE *objs, OBJECT_ATTRIBUTES *oa, DWORD access, HANDLE *ph)
{
    HANDLE h = (HANDLE)(uintptr_t)PRESET;
    NTSTATUS st = D3DKMTShareObjects(count, objs, oa, access, &h);
    if (st == STATUS_SUCCESS)
        CHECK(h != (HANDLE)(uintptr_t)PRESET, "ShareObjects left the preset handle in place");
    *ph = st == STATUS_SUCCESS ? h : NULL;
    return st;
}

static NTSTATUS share1(D3DKMT_HANDLE obj, OBJECT_ATTRIBUTES *oa, DWORD access, HANDLE *ph)
{
    return share(1, &obj, oa, access, ph);
}

/* Checks that a name opens (as a resource, or as a sync object) and closes
 * what it opened. */
static void expect_name(NTSTATUS expected, int sync, DWORD access, OBJECT_ATTRIBUTES *oa, const char *what)
{
    HANDLE h = NULL;
    NTSTATUS st = sync ? open_sync_name(access, oa, &h) : open_name(access, oa, &h);
    CHECK(st == expected, "opening %s by name: 0x%08" PRIX32 ", expected 0x%08" PRIX32, what, (uint32_t)st,
          (uint32_t)expected);
    if (st == STATUS_SUCCESS) {
        CHECK_NT(h, what);
        close_nt(h);
    }
}

/* Sync objects. */
static NTSTATUS sync1_create(D3DKMT_HANDLE hDevice, D3DDDI_SYNCHRONIZATIONOBJECT_TYPE type, D3DKMT_HANDLE *ph)
{
    D3DKMT_CREATESYNCHRONIZATIONOBJECT c;
    memset(&c, 0, sizeof c);
    c.hDevice = hDevice;
    c.Info.Type = type;
    c.hSyncObject = PRESET;
    NTSTATUS st = D3DKMTCreateSynchronizationObject(&c);
    *ph = st == STATUS_SUCCESS ? c.hSyncObject : 0;
    return st;
}


/* Keyed mutexes v1 or v2; timeout NULL: pTimeout NULL (forever). FenceValue
 * is preset to 0xdeadbeefdeadbeef. */
static NTSTATUS km_acquire_v(int v1, D3DKMT_HANDLE h, UINT64 key, const LONGLONG *timeout, UINT64 *pFence)
{
    return km_acquire_ex(v1, h, key, timeout ? *timeout : NO_TIMEOUT, 0xdeadbeefdeadbeefull, pFence, NULL, 0);
}

static NTSTATUS km_release_v(int v1, D3DKMT_HANDLE h, UINT64 key, UINT64 fence)
{
    return km_release_ex(v1, h, key, fence, NULL, 0);
}

/* flags: the raw D3DDDI_SYNCHRONIZATIONOBJECT_FLAGS. */
static NTSTATUS sync2_create(D3DKMT_HANDLE hDevice, D3DDDI_SYNCHRONIZATIONOBJECT_TYPE type, UINT flags,
                             D3DKMT_HANDLE *ph, D3DKMT_HANDLE *pShared)
{
    return sync_create_ex(hDevice, type, flags, 0, ph, NULL, pShared);
}

/* Flags preset to Shared | NtSecuritySharing; *pFlags receives what the call wrote. */
static NTSTATUS open_sync2(D3DKMT_HANDLE hDevice, HANDLE h, D3DKMT_HANDLE *ph, UINT *pFlags)
{
    return sync_open2_ex(hDevice, h, SYNC_SHARED_NT, ph, NULL, pFlags);
}

/* A blocking wait: only for values already reached (or refused). */
static NTSTATUS sync_wait_now(D3DKMT_HANDLE hDevice, D3DKMT_HANDLE h, UINT64 value)
{
    return sync_wait(hDevice, h, value, -1);
}

/* Query and open. */
static NTSTATUS query(D3DKMT_HANDLE hDevice, HANDLE h, void *buf, UINT size, D3DKMT_QUERYRESOURCEINFOFROMNTHANDLE *q)
{
    memset(q, 0, sizeof *q);
    q->hDevice = hDevice;
    q->hNtHandle = h;
    q->pPrivateRuntimeData = buf;
    q->PrivateRuntimeDataSize = size;
    q->TotalPrivateDriverDataSize = 0xdeadbeef;
    q->ResourcePrivateDriverDataSize = 0xdeadbeef;
    q->NumAllocations = 0xdeadbeef;
    return D3DKMTQueryResourceInfoFromNtHandle(q);
}

typedef struct {
    D3DKMT_OPENRESOURCEFROMNTHANDLE o;
    D3DDDI_OPENALLOCATIONINFO2 allocs[2];
    uint8_t runtime[0x100];
    uint8_t resdata[0x40];
    uint8_t total[0x400];
    uint8_t kmdata[0x100];
} opener_t;

/* The Windows test's good state: presets 0x1eadbeed, one allocation, exactly
 * sized runtime buffer, a total buffer of totalSize bytes. */
static void opener_init(opener_t *p, D3DKMT_HANDLE hDevice, HANDLE h, UINT runtimeSize, UINT totalSize)
{
    memset(p, 0, sizeof *p);
    memset(p->runtime, 0xcd, sizeof p->runtime);
    memset(p->total, 0xcd, sizeof p->total);
    memset(p->kmdata, 0xcd, sizeof p->kmdata);
    p->allocs[0].hAllocation = PRESET;
    p->o.hDevice = hDevice;
    p->o.hNtHandle = h;
    p->o.NumAllocations = 1;
    p->o.pOpenAllocationInfo2 = p->allocs;
    p->o.PrivateRuntimeDataSize = runtimeSize;
    p->o.pPrivateRuntimeData = p->runtime;
    p->o.ResourcePrivateDriverDataSize = 0;
    p->o.pResourcePrivateDriverData = p->resdata;
    p->o.TotalPrivateDriverDataBufferSize = totalSize;
    p->o.pTotalPrivateDriverDataBuffer = p->total;
    p->o.hResource = p->o.hKeyedMutex = p->o.hSyncObject = PRESET;
    p->o.pKeyedMutexPrivateRuntimeData = NULL;
    p->o.KeyedMutexPrivateRuntimeDataSize = 0;
}

static NTSTATUS opener_open(opener_t *p)
{
    return D3DKMTOpenResourceFromNtHandle(&p->o);
}

/* Destroys what a successful open made. */
static void opener_close(opener_t *p)
{
    if (p->o.hKeyedMutex && p->o.hKeyedMutex != PRESET)
        EXPECT_OK(km_destroy(p->o.hKeyedMutex));
    if (p->o.hSyncObject && p->o.hSyncObject != PRESET)
        EXPECT_OK(sync_destroy(p->o.hSyncObject));
    if (p->o.hResource && p->o.hResource != PRESET)
        EXPECT_OK(destroy_resource(p->o.hDevice, p->o.hResource));
    p->o.hResource = p->o.hKeyedMutex = p->o.hSyncObject = 0;
}

/* Opens a resource handle with exactly sized buffers (from a query). */
static NTSTATUS open_exact(D3DKMT_HANDLE hDevice, HANDLE h, opener_t *p)
{
    D3DKMT_QUERYRESOURCEINFOFROMNTHANDLE q;
    NTSTATUS st = query(hDevice, h, NULL, 0, &q);
    if (st != STATUS_SUCCESS)
        return st;
    if (q.PrivateRuntimeDataSize > sizeof p->runtime || q.TotalPrivateDriverDataSize > sizeof p->total ||
        q.NumAllocations != 1)
        return STATUS_BUFFER_TOO_SMALL;
    opener_init(p, hDevice, h, q.PrivateRuntimeDataSize, q.TotalPrivateDriverDataSize);
    return opener_open(p);
}

/* 1 if allocation hAlloc of hDevice locks to a writable mapping, 0 if to a
 * read-only one, -1 if it cannot be locked. */
static int lock_writable(D3DKMT_HANDLE hDevice, D3DKMT_HANDLE hAlloc)
{
    D3DKMT_LOCK2 lk;
    memset(&lk, 0, sizeof lk);
    lk.hDevice = hDevice;
    lk.hAllocation = hAlloc;
    NTSTATUS st = D3DKMTLock2(&lk);
    if (st != STATUS_SUCCESS) {
        fprintf(stderr, "%s: Lock2 of 0x%08" PRIX32 ": 0x%08" PRIX32 "\n", who, (uint32_t)hAlloc, (uint32_t)st);
        return -1;
    }
    int w = mapping_writable(lk.pData);
    D3DKMT_UNLOCK2 ul = { hDevice, hAlloc };
    EXPECT_OK(D3DKMTUnlock2(&ul));
    return w;
}

/* Opens handle h and checks whether its allocation maps writable. */
static void expect_open_mode(D3DKMT_HANDLE hDevice, HANDLE h, int writable, const char *what)
{
    opener_t p;
    NTSTATUS st = open_exact(hDevice, h, &p);
    CHECK(st == STATUS_SUCCESS, "%s: opening: 0x%08" PRIX32, what, (uint32_t)st);
    if (st != STATUS_SUCCESS)
        return;
    int w = lock_writable(hDevice, p.allocs[0].hAllocation);
    CHECK(w == writable, "%s: the opened allocation maps %s, expected %s", what,
          w < 0 ? "not at all" : w ? "writable" : "read-only", writable ? "writable" : "read-only");
    opener_close(&p);
}

static NTSTATUS escape_update(D3DKMT_HANDLE hContext, const void *data, UINT size)
{
    D3DKMT_ESCAPE e;
    memset(&e, 0, sizeof e);
    e.Type = D3DKMT_ESCAPE_UPDATE_RESOURCE_WINE;
    e.pPrivateDriverData = (void *)data;
    e.PrivateDriverDataSize = size;
    e.hContext = hContext;
    return D3DKMTEscape(&e);
}

/* ------------------------------------------------------------------------ */
/* Adapters and devices (facts 4.1; vkd3d: facts 2)                         */
/* ------------------------------------------------------------------------ */

static void test_basics(adapter_t *a)
{
    phase("adapters and devices");
    D3DKMT_ENUMADAPTERS2 ea;
    D3DKMT_ADAPTERINFO one;
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTEnumAdapters2(NULL));
    memset(&ea, 0, sizeof ea);
    ea.NumAdapters = 0;
    ea.pAdapters = &one;
    EXPECT_STATUS(STATUS_BUFFER_TOO_SMALL, D3DKMTEnumAdapters2(&ea));
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTCloseAdapter(NULL));
    {
        D3DKMT_CLOSEADAPTER z;
        memset(&z, 0, sizeof z);
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTCloseAdapter(&z));
    }
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTCreateDevice(NULL));
    {
        D3DKMT_CREATEDEVICE z;
        memset(&z, 0, sizeof z);
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTCreateDevice(&z));
        z.hAdapter = a->info.hAdapter;
        z.pCommandBuffer = (void *)&z;
        z.CommandBufferSize = 1;
        EXPECT_OK(D3DKMTCreateDevice(&z));
        CHECK_LOCAL(z.hDevice, "CreateDevice hDevice");
        CHECK(z.pCommandBuffer == NULL && z.CommandBufferSize == 0 && z.pAllocationList == NULL &&
              z.AllocationListSize == 0 && z.pPatchLocationList == NULL && z.PatchLocationListSize == 0,
              "CreateDevice: the command buffer and lists are not NULL / 0");
        if (z.hDevice)
            EXPECT_OK(destroy_device(z.hDevice));
    }
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTDestroyDevice(NULL));
    {
        D3DKMT_DESTROYDEVICE z;
        memset(&z, 0, sizeof z);
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTDestroyDevice(&z));
    }
    {
        /* A NULL buffer or one a byte too small. */
        D3DKMT_LINUX_ADAPTER_INFO li;
        D3DKMT_QUERYADAPTERINFO qa;
        memset(&qa, 0, sizeof qa);
        qa.hAdapter = a->info.hAdapter;
        qa.Type = KMTQAITYPE_LINUX_DRM_INFO;
        qa.pPrivateDriverData = NULL;
        qa.PrivateDriverDataSize = sizeof li;
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTQueryAdapterInfo(&qa));
        qa.pPrivateDriverData = &li;
        qa.PrivateDriverDataSize = sizeof li - 1;
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTQueryAdapterInfo(&qa));
    }
    /* vkd3d closes the adapter right after CreateDevice and keeps the device. */
    {
        D3DKMT_OPENADAPTERFROMLUID oa;
        D3DKMT_HANDLE d = 0, res = 0, alloc = 0;
        HANDLE h = NULL;
        memset(&oa, 0, sizeof oa);
        oa.AdapterLuid = a->info.AdapterLuid;
        EXPECT_OK(D3DKMTOpenAdapterFromLuid(&oa));
        if (oa.hAdapter) {
            EXPECT_OK(create_device(oa.hAdapter, &d));
            EXPECT_OK(close_adapter(oa.hAdapter));
        }
        if (d) {
            EXPECT_OK(create_test_resource(d, &res, &alloc));
            if (res) {
                EXPECT_OK(share1(res, NULL, GENERIC_ALL, &h));
                if (h)
                    expect_open_mode(d, h, 1, "a device whose adapter handle was closed");
                close_nt(h);
                EXPECT_OK(destroy_resource(d, res));
            }
            EXPECT_OK(destroy_device(d));
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Handles: bit patterns and the next_local chain (facts 0, 4.2, 4.5)       */
/* ------------------------------------------------------------------------ */

static void test_handles(adapter_t *a)
{
    phase("handles");
    D3DKMT_HANDLE hAdapter = 0, hDevice = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, km1 = 0, km2 = 0;
    D3DKMT_HANDLE res = 0, alloc = 0, lone = 0, s5 = 0, kmShared = 0;

    chain_next = 0;
    D3DKMT_OPENADAPTERFROMLUID oa;
    memset(&oa, 0, sizeof oa);
    oa.AdapterLuid = a->info.AdapterLuid;
    oa.hAdapter = PRESET;
    EXPECT_OK(D3DKMTOpenAdapterFromLuid(&oa));
    hAdapter = oa.hAdapter;
    chain(hAdapter, "OpenAdapterFromLuid hAdapter");
    EXPECT_OK(create_device(hAdapter, &hDevice));
    chain(hDevice, "CreateDevice hDevice");
    if (!hDevice)
        goto out;
    /* The facts' chain: adapter -> device -> sync objects -> mutexes -> resources. */
    EXPECT_OK(sync1_create(hDevice, D3DDDI_SYNCHRONIZATION_MUTEX, &s1));
    chain(s1, "v1 mutex sync object");
    EXPECT_OK(sync1_create(hDevice, D3DDDI_SEMAPHORE, &s2));
    chain(s2, "v1 semaphore sync object");
    EXPECT_OK(sync2_create(hDevice, D3DDDI_SYNCHRONIZATION_MUTEX, 0, &s3, NULL));
    chain(s3, "v2 mutex sync object");
    EXPECT_OK(sync2_create(hDevice, D3DDDI_SEMAPHORE, SYNC_SHARED_NT, &s4, NULL));
    chain(s4, "v2 NT-shareable semaphore");
    EXPECT_OK(km_create_ex(1, 0, 0, NULL, 0, &km1, &kmShared));
    chain(km1, "v1 keyed mutex");
    EXPECT_OK(km_create_ex(0, 0, 1, NULL, 0, &km2, NULL));
    chain(km2, "v2 keyed mutex");
    EXPECT_OK(create_test_resource(hDevice, &res, &alloc));
    chain(res, "resource");
    chain(alloc, "the resource's allocation");
    EXPECT_OK(create_standalone(hDevice, &lone));
    chain(lone, "standalone allocation");
    if (a->fences) {
        EXPECT_OK(sync2_create(hDevice, D3DDDI_MONITORED_FENCE, SYNC_SHARED_NT, &s5, NULL));
        chain(s5, "monitored fence");
    }

    /* NT handles are ordinary handles, not D3DKMT ones (facts 4.7). */
    HANDLE h = NULL, hs = NULL;
    EXPECT_OK(share1(res, NULL, STANDARD_RIGHTS_READ, &h));
    CHECK_NT(h, "ShareObjects(resource)");
    EXPECT_OK(share1(s4, NULL, STANDARD_RIGHTS_READ, &hs));
    CHECK_NT(hs, "ShareObjects(sync object)");

    /* Destroying does not make the next handle reuse a freed one: the chain
     * goes on. */
    EXPECT_OK(sync_destroy(s1));
    EXPECT_OK(sync_destroy(s2));
    EXPECT_OK(km_destroy(km1));
    EXPECT_OK(destroy_alloc(0, hDevice, 0, &lone, 1));
    s1 = s2 = km1 = lone = 0;
    EXPECT_OK(sync1_create(hDevice, D3DDDI_SYNCHRONIZATION_MUTEX, &s1));
    chain(s1, "v1 mutex made after destroying objects");

    /* Opened objects are locals too. */
    opener_t p;
    EXPECT_OK(open_exact(hDevice, h, &p));
    CHECK_LOCAL(p.o.hResource, "opened hResource");
    CHECK_LOCAL(p.allocs[0].hAllocation, "opened hAllocation");
    opener_close(&p);
    D3DKMT_HANDLE os = 0;
    EXPECT_OK(open_sync2(hDevice, hs, &os, NULL));
    CHECK_LOCAL(os, "sync object opened with OpenSyncObjectFromNtHandle2");
    if (os)
        EXPECT_OK(sync_destroy(os));
    EXPECT_OK(sync_open1(hs, &os));
    CHECK_LOCAL(os, "sync object opened with OpenSyncObjectFromNtHandle");
    if (os)
        EXPECT_OK(sync_destroy(os));
    close_nt(h);
    close_nt(hs);

    if (s5)
        EXPECT_OK(sync_destroy(s5));
    if (res)
        EXPECT_OK(destroy_resource(hDevice, res));
    if (km2)
        EXPECT_OK(km_destroy(km2));
    if (s4)
        EXPECT_OK(sync_destroy(s4));
    if (s3)
        EXPECT_OK(sync_destroy(s3));
    if (s1)
        EXPECT_OK(sync_destroy(s1));
    EXPECT_OK(destroy_device(hDevice));
out:
    if (hAdapter)
        EXPECT_OK(close_adapter(hAdapter));
    chain_next = 0;
}

/* ------------------------------------------------------------------------ */
/* D3DKMTCreateSynchronizationObject, v1 (facts 4.2)                        */
/* ------------------------------------------------------------------------ */

static void test_sync_v1(adapter_t *a)
{
    phase("CreateSynchronizationObject (v1)");
    D3DKMT_HANDLE d = a->hDevice, h = 0, h2 = 0;
    D3DKMT_CREATESYNCHRONIZATIONOBJECT c;

    EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTCreateSynchronizationObject(NULL));
    memset(&c, 0, sizeof c);
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTCreateSynchronizationObject(&c));
    c.hDevice = d; /* Type 0 */
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTCreateSynchronizationObject(&c));
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, sync1_create(0, D3DDDI_SYNCHRONIZATION_MUTEX, &h));
    EXPECT_OK(sync1_create(d, D3DDDI_SYNCHRONIZATION_MUTEX, &h));
    CHECK_LOCAL(h, "v1 mutex (preset 0x1eadbeed)");
    EXPECT_OK(sync1_create(d, D3DDDI_SEMAPHORE, &h2));
    CHECK_LOCAL(h2, "v1 semaphore");
    /* Only mutexes and semaphores are v1 types. */
    D3DKMT_HANDLE x = 0;
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, sync1_create(d, D3DDDI_FENCE, &x));
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, sync1_create(d, D3DDDI_CPU_NOTIFICATION, &x));
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, sync1_create(d, D3DDDI_MONITORED_FENCE, &x));
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, sync1_create(d, D3DDDI_SYNCHRONIZATION_TYPE_LIMIT, &x));

    /* v1 objects cannot be shared (unnamed attributes, STANDARD_RIGHTS_WRITE). */
    OBJECT_ATTRIBUTES attr;
    InitializeObjectAttributes(&attr, NULL, 0, NULL, NULL);
    HANDLE sh = NULL;
    if (h)
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, share1(h, &attr, STANDARD_RIGHTS_WRITE, &sh));
    close_nt(sh);

    if (h) {
        EXPECT_OK(sync_destroy(h));
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, sync_destroy(h));
    }
    if (h2) {
        EXPECT_OK(sync_destroy(h2));
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, sync_destroy(h2));
    }
}

/* ------------------------------------------------------------------------ */
/* D3DKMTCreateSynchronizationObject2 (facts 4.3)                           */
/* ------------------------------------------------------------------------ */

static void test_sync_v2(adapter_t *a)
{
    phase("CreateSynchronizationObject2");
    D3DKMT_HANDLE d = a->hDevice, h = 0, shared = 0;
    D3DKMT_CREATESYNCHRONIZATIONOBJECT2 c;

    EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTCreateSynchronizationObject2(NULL));
    memset(&c, 0, sizeof c);
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTCreateSynchronizationObject2(&c));
    c.hDevice = d; /* Type 0 */
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTCreateSynchronizationObject2(&c));
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, sync2_create(0, D3DDDI_SYNCHRONIZATION_MUTEX, 0, &h, NULL));
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, sync2_create(d, D3DDDI_SYNCHRONIZATION_TYPE_LIMIT, 0, &h, NULL));

    static const D3DDDI_SYNCHRONIZATIONOBJECT_TYPE types[] = {
        D3DDDI_SYNCHRONIZATION_MUTEX, D3DDDI_SEMAPHORE, D3DDDI_FENCE, D3DDDI_MONITORED_FENCE,
    };
    for (unsigned i = 0; i < sizeof types / sizeof types[0]; i++) {
        int fence = types[i] == D3DDDI_FENCE || types[i] == D3DDDI_MONITORED_FENCE;
        NTSTATUS st = sync2_create(d, types[i], 0, &h, NULL);
        if (fence && !a->fences) {
            /* vgem: no syncobjs, no fences (library). */
            CHECK(st == STATUS_NOT_SUPPORTED, "type %d on %s: 0x%08" PRIX32 ", expected STATUS_NOT_SUPPORTED",
                  (int)types[i], a->li.DriverName, (uint32_t)st);
        } else {
            CHECK(st == STATUS_SUCCESS, "CreateSynchronizationObject2 type %d: 0x%08" PRIX32, (int)types[i],
                  (uint32_t)st);
            CHECK_LOCAL(h, "CreateSynchronizationObject2 hSyncObject");
        }
        if (h) {
            if (!fence) {
                /* No GPU contexts here: CPU signal and wait are for fences (library). */
                EXPECT_STATUS(STATUS_INVALID_PARAMETER, sync_signal(d, h, 1));
                EXPECT_STATUS(STATUS_INVALID_PARAMETER, sync_wait_now(d, h, 0));
            }
            EXPECT_OK(sync_destroy(h));
            EXPECT_STATUS(STATUS_INVALID_PARAMETER, sync_destroy(h));
            h = 0;
        }
    }
    EXPECT_STATUS(STATUS_NOT_SUPPORTED, sync2_create(d, D3DDDI_PERIODIC_MONITORED_FENCE, 0, &h, NULL));
    EXPECT_STATUS(STATUS_NOT_SUPPORTED, sync2_create(d, D3DDDI_NATIVE_FENCE, 0, &h, NULL));

    /* CPU notification needs its event. */
    memset(&c, 0, sizeof c);
    c.hDevice = d;
    c.Info.Type = D3DDDI_CPU_NOTIFICATION;
    c.Info.CPUNotification.Event = NULL;
    EXPECT_STATUS(STATUS_INVALID_HANDLE, D3DKMTCreateSynchronizationObject2(&c));
    int efd = eventfd(0, EFD_CLOEXEC);
    c.Info.CPUNotification.Event = D3DKMTLinuxFdToHandle(efd);
    /* differs from Windows: SUCCESS there; this library has no CPU notifications. */
    if (efd >= 0)
        EXPECT_STATUS(STATUS_NOT_SUPPORTED, D3DKMTCreateSynchronizationObject2(&c));
    if (efd >= 0)
        close(efd);

    /* Sharing flags. */
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, sync2_create(d, D3DDDI_SYNCHRONIZATION_MUTEX, 0x2u, &h, NULL));
    /* Shared alone: a local handle and a global one; a second create, another pair (facts 4.3). */
    {
        D3DKMT_HANDLE g1 = 0, g2 = 0, h2 = 0;
        EXPECT_OK(sync2_create(d, D3DDDI_SYNCHRONIZATION_MUTEX, 0x1u, &h, &g1));
        CHECK_LOCAL(h, "Shared hSyncObject");
        CHECK_GLOBAL(g1, "Shared SharedHandle");
        EXPECT_OK(sync2_create(d, D3DDDI_SYNCHRONIZATION_MUTEX, 0x1u, &h2, &g2));
        CHECK(h2 != h && g2 != g1, "two Shared creates: locals 0x%08" PRIX32 "/0x%08" PRIX32 ", globals 0x%08"
              PRIX32 "/0x%08" PRIX32, (uint32_t)h, (uint32_t)h2, (uint32_t)g1, (uint32_t)g2);
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, sync_destroy(g1));  /* a global is not a local handle */
        D3DKMT_OPENSYNCHRONIZATIONOBJECT o;
        memset(&o, 0, sizeof o);
        o.hSharedHandle = PRESET;
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTOpenSynchronizationObject(&o));
        o.hSharedHandle = 0;
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTOpenSynchronizationObject(&o));
        o.hSyncObject = h;
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTOpenSynchronizationObject(&o));
        o.hSharedHandle = g1;
        o.hSyncObject = PRESET;
        EXPECT_OK(D3DKMTOpenSynchronizationObject(&o));
        CHECK_LOCAL(o.hSyncObject, "OpenSynchronizationObject hSyncObject");
        CHECK(o.hSyncObject != h, "OpenSynchronizationObject made a new local handle");
        if (is_local(o.hSyncObject)) {
            EXPECT_OK(sync_destroy(o.hSyncObject));
            EXPECT_STATUS(STATUS_INVALID_PARAMETER, sync_destroy(o.hSyncObject));
        }
        /* Still open while the creator's local lives; gone with the last local. */
        o.hSyncObject = PRESET;
        EXPECT_OK(D3DKMTOpenSynchronizationObject(&o));
        if (is_local(o.hSyncObject))
            EXPECT_OK(sync_destroy(o.hSyncObject));
        if (h)
            EXPECT_OK(sync_destroy(h));
        o.hSyncObject = PRESET;
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTOpenSynchronizationObject(&o));
        if (h2)
            EXPECT_OK(sync_destroy(h2));
    }
    EXPECT_OK(sync2_create(d, D3DDDI_SYNCHRONIZATION_MUTEX, SYNC_SHARED_NT, &h, &shared));
    CHECK_LOCAL(h, "Shared + NtSecuritySharing hSyncObject");
    CHECK(shared == 0, "Shared + NtSecuritySharing: SharedHandle 0x%08" PRIX32 " (preset 0x1eadbeed), expected 0",
          (uint32_t)shared);
    HANDLE sh = NULL;
    if (h) {
        EXPECT_OK(share1(h, NULL, STANDARD_RIGHTS_READ, &sh));
        close_nt(sh);
        EXPECT_OK(sync_destroy(h));
    }
    /* An object made with Shared 0 cannot be shared. */
    EXPECT_OK(sync2_create(d, D3DDDI_SYNCHRONIZATION_MUTEX, 0, &h, NULL));
    if (h) {
        OBJECT_ATTRIBUTES attr;
        InitializeObjectAttributes(&attr, NULL, 0, NULL, NULL);
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, share1(h, &attr, STANDARD_RIGHTS_WRITE, &sh));
        close_nt(sh);
        EXPECT_OK(sync_destroy(h));
    }
    /* Destroy rules. */
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTDestroySynchronizationObject(NULL));
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, sync_destroy(0));
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, sync_destroy(PRESET));
}

/* ------------------------------------------------------------------------ */
/* Sync object sharing and opening (facts 4.7 "Sync objects")               */
/* ------------------------------------------------------------------------ */

static void test_sync_sharing(adapter_t *a)
{
    phase("sync object sharing");
    D3DKMT_HANDLE d = a->hDevice, s = 0, o1 = 0, o2 = 0, o3 = 0, x = 0;
    nt_name_t n, nl, n2, nbad;
    char low[128];
    HANDLE h = NULL, h2 = NULL, hn = NULL, h3 = NULL, h4 = NULL;
    UINT flags = 0;
    char sync_name[128];
    snprintf(sync_name, sizeof sync_name, "%s_Sync", a->base);

    /* A MUTEX sync object exists on every adapter (vgem too). */
    EXPECT_OK(sync2_create(d, D3DDDI_SYNCHRONIZATION_MUTEX, SYNC_SHARED_NT, &s, NULL));
    if (!s)
        return;
    OBJECT_ATTRIBUTES *attr = ntname(&n, "\\BaseNamedObjects\\%s", sync_name);
    EXPECT_OK(share1(s, attr, STANDARD_RIGHTS_WRITE, &h));
    CHECK_NT(h, "ShareObjects(sync object)");
    if (!h) {
        EXPECT_OK(sync_destroy(s));
        return;
    }
    /* An NT handle is not a sync object. */
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, sync_destroy((D3DKMT_HANDLE)(uintptr_t)h));

    /* v1 open: NULL handle, then the handle (no device needed). */
    {
        D3DKMT_OPENSYNCOBJECTFROMNTHANDLE o;
        memset(&o, 0, sizeof o);
        EXPECT_STATUS(STATUS_INVALID_HANDLE, D3DKMTOpenSyncObjectFromNtHandle(&o));
    }
    EXPECT_OK(sync_open1(h, &o1));
    CHECK_LOCAL(o1, "OpenSyncObjectFromNtHandle hSyncObject");

    /* The handle keeps the object alive without the creator's local. */
    EXPECT_OK(sync_destroy(s));
    EXPECT_OK(sync_open1(h, &x));
    CHECK_LOCAL(x, "OpenSyncObjectFromNtHandle after the creator's local was destroyed");
    if (x)
        EXPECT_OK(sync_destroy(x));
    /* A destroyed local cannot be shared. */
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, share1(s, NULL, STANDARD_RIGHTS_READ, &h2));
    close_nt(h2);

    /* v2 open. */
    {
        D3DKMT_OPENSYNCOBJECTFROMNTHANDLE2 o;
        memset(&o, 0, sizeof o);
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTOpenSyncObjectFromNtHandle2(&o));
        o.hNtHandle = h; /* without hDevice */
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTOpenSyncObjectFromNtHandle2(&o));
    }
    EXPECT_OK(open_sync2(d, h, &o2, &flags));
    CHECK_LOCAL(o2, "OpenSyncObjectFromNtHandle2 hSyncObject");
    CHECK(flags == 0, "OpenSyncObjectFromNtHandle2: Flags 0x%x on output (Shared|NtSecuritySharing in), expected 0",
          flags);

    /* Opened objects can be shared again (both opens). */
    if (o2) {
        EXPECT_OK(share1(o2, ntname(&n2, "\\BaseNamedObjects\\%s_2", sync_name), STANDARD_RIGHTS_READ, &h2));
        close_nt(h2);
    }
    if (o1) {
        EXPECT_OK(share1(o1, NULL, STANDARD_RIGHTS_READ, &h2));
        close_nt(h2);
    }

    /* OpenSyncObjectNtHandleFromName. */
    {
        D3DKMT_OPENSYNCOBJECTNTHANDLEFROMNAME o;
        memset(&o, 0, sizeof o);
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTOpenSyncObjectNtHandleFromName(&o));
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTOpenSyncObjectNtHandleFromName(NULL));
    }
    expect_name(STATUS_OBJECT_NAME_NOT_FOUND, 1, STANDARD_RIGHTS_WRITE,
                ntname(&nbad, "\\BaseNamedObjects\\__winetest_invalid_%d", (int)getpid()), "an unknown name");
    OBJECT_ATTRIBUTES *lattr = ntname(&nl, "\\BaseNamedObjects\\%s", lower(low, sizeof low, sync_name));
    expect_name(STATUS_ACCESS_DENIED, 1, 0, lattr, "the lowercase sync name with access 0");
    EXPECT_OK(open_sync_name(STANDARD_RIGHTS_WRITE, lattr, &hn));
    CHECK_NT(hn, "OpenSyncObjectNtHandleFromName");
    /* A sync object's name is not a resource's. */
    expect_name(STATUS_OBJECT_TYPE_MISMATCH, 0, GENERIC_ALL, attr, "a sync object's name as a resource");

    /* A closed handle is invalid; the handle opened by name works. */
    close_nt(h);
    EXPECT_STATUS(STATUS_INVALID_HANDLE, open_sync2(d, h, &x, NULL));
    h = NULL;
    if (hn) {
        EXPECT_OK(open_sync2(d, hn, &o3, NULL));
        CHECK_LOCAL(o3, "sync object opened from the handle opened by name");
        if (o3)
            EXPECT_OK(sync_destroy(o3));
        close_nt(hn);
    }
    /* Every NT handle of the share is closed: the name is gone, and the
     * object, alive through its locals, can be shared again under it. */
    expect_name(STATUS_OBJECT_NAME_NOT_FOUND, 1, STANDARD_RIGHTS_READ, attr, "the name after every handle closed");
    if (o2) {
        EXPECT_OK(share1(o2, attr, STANDARD_RIGHTS_READ, &h3));
        expect_name(STATUS_SUCCESS, 1, STANDARD_RIGHTS_READ, attr, "the name shared again");
        /* differs from Windows: a handle opened by name keeps a Windows name alive; here only the
         * handle ShareObjects returned does (spec "Retirement is synchronous"). */
        EXPECT_OK(open_sync_name(STANDARD_RIGHTS_READ, attr, &h4));
        close_nt(h3);
        expect_name(STATUS_OBJECT_NAME_NOT_FOUND, 1, STANDARD_RIGHTS_READ, attr,
                    "the name with only a handle opened by name open");
        close_nt(h4);
    }
    if (o1)
        EXPECT_OK(sync_destroy(o1));
    if (o2)
        EXPECT_OK(sync_destroy(o2));
}

/* ------------------------------------------------------------------------ */
/* Keyed mutexes (facts 4.4; acquire/release: 3.1, 3.3, 1.8)                */
/* ------------------------------------------------------------------------ */

/* One acquire/release sequence with the v1 or v2 calls, on two locals of one
 * mutex: the creator's and one opened from a [resource, mutex, sync] handle. */
static void keyed_mutex_sequence(int v1, D3DKMT_HANDLE hDevice)
{
    const char *v = v1 ? "v1" : "v2";
    D3DKMT_HANDLE A = 0, B = 0, res = 0, alloc = 0, sync = 0, km = 0;
    UINT64 fence = 0;
    const LONGLONG zero = 0, ten_ms = 10 * MS_100NS;
    /* DXVK: ms * -10000 computed in unsigned 32-bit arithmetic, a small
     * positive value: an absolute time in 1601, long past. */
    const LONGLONG dxvk = (LONGLONG)(uint32_t)(10u * (uint32_t)-10000);
    struct timespec t0;
    HANDLE h = NULL;
    opener_t p;

    EXPECT_OK(create_test_resource(hDevice, &res, &alloc));
    EXPECT_OK(km_create_ex(0, 0, 1, NULL, 0, &A, NULL));
    EXPECT_OK(sync2_create(hDevice, D3DDDI_SYNCHRONIZATION_MUTEX, SYNC_SHARED_NT, &sync, NULL));
    D3DKMT_HANDLE triple[3] = { res, A, sync };
    if (res && A && sync)
        EXPECT_OK(share(3, triple, NULL, GENERIC_ALL, &h));
    if (h) {
        opener_init(&p, hDevice, h, sizeof runtime4, EXTRA_BYTES);
        EXPECT_OK(opener_open(&p));
        B = p.o.hKeyedMutex != PRESET ? p.o.hKeyedMutex : 0;
    }
    if (A && B) {
        /* A fresh mutex is released with its InitialValue: key 0, timeout 0. */
        EXPECT_OK(km_acquire_v(v1, A, 0, &zero, &fence));
        CHECK(fence == 0, "%s: first acquire: FenceValue %" PRIu64 ", expected 0", v, fence);
        /* library: ownership is per local handle; this one already owns it (Wine's model, per thread,
         * would wait and time out). */
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, km_acquire_v(v1, A, 0, &zero, NULL));
        /* Owned: the other local times out at once, also with DXVK's past absolute time. */
        clock_gettime(CLOCK_MONOTONIC, &t0);
        EXPECT_STATUS(STATUS_TIMEOUT, km_acquire_v(v1, B, 0, &zero, NULL));
        EXPECT_STATUS(STATUS_TIMEOUT, km_acquire_v(v1, B, 0, &dxvk, NULL));
        CHECK(elapsed_ms(&t0) < 2000, "%s: timeout 0 and a past absolute timeout took %lld ms", v,
              (long long)elapsed_ms(&t0));
        EXPECT_STATUS(STATUS_TIMEOUT, km_acquire_v(v1, B, 0, &ten_ms, NULL));
        /* Only the owner releases. */
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, km_release_v(v1, B, 1, 7));
        EXPECT_OK(km_release_v(v1, A, 1, 7));
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, km_release_v(v1, A, 1, 8));
        /* Released to key 1: key 0 times out. */
        EXPECT_STATUS(STATUS_TIMEOUT, km_acquire_v(v1, B, 0, &zero, NULL));
        EXPECT_STATUS(STATUS_TIMEOUT, km_acquire_v(v1, A, 0, &dxvk, NULL));
        /* FenceValue of the last release is written back. */
        EXPECT_OK(km_acquire_v(v1, B, 1, &zero, &fence));
        CHECK(fence == 7, "%s: acquire after release(1, 7): FenceValue %" PRIu64 ", expected 7", v, fence);
        EXPECT_OK(km_release_v(v1, B, 0, 8));
        EXPECT_OK(km_acquire_v(v1, A, 0, NULL, &fence)); /* no timeout: free with key 0 */
        CHECK(fence == 8, "%s: acquire after release(0, 8): FenceValue %" PRIu64 ", expected 8", v, fence);
        EXPECT_OK(km_release_v(v1, A, 0, 9));
    }
    if (h) {
        opener_close(&p);
        close_nt(h);
    }
    if (sync)
        EXPECT_OK(sync_destroy(sync));
    if (res)
        EXPECT_OK(destroy_resource(hDevice, res));
    if (A) {
        EXPECT_OK(km_destroy(A));
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, km_acquire_v(v1, A, 0, &zero, NULL));
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, km_release_v(v1, A, 0, 10));
    }
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, km_acquire_v(v1, PRESET, 0, &zero, NULL));

    /* A mutex made by this version's create: InitialValue is the key it starts released to. */
    EXPECT_OK(km_create_ex(v1, 5, 0, NULL, 0, &km, NULL));
    if (km) {
        EXPECT_STATUS(STATUS_TIMEOUT, km_acquire_v(v1, km, 0, &zero, NULL));
        EXPECT_OK(km_acquire_v(v1, km, 5, &zero, &fence));
        CHECK(fence == 0, "%s: InitialValue 5: FenceValue %" PRIu64 ", expected 0", v, fence);
        EXPECT_OK(km_release_v(v1, km, 5, 1));
        EXPECT_OK(km_acquire_v(v1, km, 5, &zero, &fence));
        CHECK(fence == 1, "%s: InitialValue 5, after release(5, 1): FenceValue %" PRIu64, v, fence);
        EXPECT_OK(km_release_v(v1, km, 6, 2));
        EXPECT_OK(km_destroy(km));
    }
}

static void test_keyed_mutex(adapter_t *a)
{
    phase("keyed mutexes");
    D3DKMT_HANDLE km = 0, kmShared = 0, km2 = 0, km2Shared = 0, kmLocal = 0;
    HANDLE sh = NULL;

    /* v1 create: no device. */
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTCreateKeyedMutex(NULL));
    EXPECT_OK(km_create_ex(1, 0, 0, NULL, 0, &km, &kmShared));
    CHECK_LOCAL(km, "CreateKeyedMutex hKeyedMutex");
    CHECK_GLOBAL(kmShared, "CreateKeyedMutex hSharedHandle");
    {
        /* OpenKeyedMutex (facts 4.4): zeroed, a local handle and no global, then the global. */
        D3DKMT_OPENKEYEDMUTEX o = { 0, 0 };
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTOpenKeyedMutex(&o));
        o.hKeyedMutex = km;
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTOpenKeyedMutex(&o));
        o.hSharedHandle = kmShared;
        o.hKeyedMutex = PRESET;
        EXPECT_OK(D3DKMTOpenKeyedMutex(&o));
        CHECK_LOCAL(o.hKeyedMutex, "OpenKeyedMutex hKeyedMutex");
        CHECK(o.hKeyedMutex != km, "OpenKeyedMutex made a new local handle");
        /* A keyed mutex alone cannot be shared, by its local or its global handle. */
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, share1(kmShared, NULL, STANDARD_RIGHTS_ALL, &sh));
        close_nt(sh);
        if (is_local(o.hKeyedMutex))
            EXPECT_OK(km_destroy(o.hKeyedMutex));
        D3DKMT_OPENKEYEDMUTEX2 o2;
        memset(&o2, 0, sizeof o2);
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTOpenKeyedMutex2(&o2));
        /* A mutex without private data: 64 bytes need a buffer, and the size stays as passed. */
        uint8_t buf[64];
        o2.hSharedHandle = kmShared;
        o2.PrivateRuntimeDataSize = sizeof buf;
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTOpenKeyedMutex2(&o2));
        o2.pPrivateRuntimeData = buf;
        EXPECT_OK(D3DKMTOpenKeyedMutex2(&o2));
        CHECK(o2.PrivateRuntimeDataSize == sizeof buf, "OpenKeyedMutex2: PrivateRuntimeDataSize %u, expected 64",
              o2.PrivateRuntimeDataSize);
        if (is_local(o2.hKeyedMutex))
            EXPECT_OK(km_destroy(o2.hKeyedMutex));
    }
    /* Destroy: zeroed, the local, again. */
    {
        D3DKMT_DESTROYKEYEDMUTEX z;
        memset(&z, 0, sizeof z);
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTDestroyKeyedMutex(&z));
    }
    if (km) {
        /* A keyed mutex alone cannot be shared. */
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, share1(km, NULL, STANDARD_RIGHTS_ALL, &sh));
        close_nt(sh);
        EXPECT_OK(km_destroy(km));
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, km_destroy(km));
    }

    /* v2 create. */
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTCreateKeyedMutex2(NULL));
    EXPECT_OK(km_create_ex(0, 0, 1, NULL, 0, &km2, &km2Shared));
    CHECK_LOCAL(km2, "CreateKeyedMutex2 (NtSecuritySharing) hKeyedMutex");
    CHECK(km2Shared == 0, "CreateKeyedMutex2 NtSecuritySharing: hSharedHandle 0x%08" PRIX32
          " (preset 0x1eadbeed), expected 0", (uint32_t)km2Shared);
    /* Without NtSecuritySharing: a global handle, and Windows' private data rules on open. */
    {
        static const uint8_t six[6] = { 1, 2, 3, 4, 5, 6 };
        EXPECT_OK(km_create_ex(0, 0, 0, six, sizeof six, &kmLocal, &km2Shared));
        CHECK_GLOBAL(km2Shared, "CreateKeyedMutex2 without NtSecuritySharing: hSharedHandle");
        D3DKMT_OPENKEYEDMUTEX2 o2;
        uint8_t buf[64];
        memset(&o2, 0, sizeof o2);
        o2.hSharedHandle = km2Shared;
        EXPECT_OK(D3DKMTOpenKeyedMutex2(&o2));  /* size 0, NULL */
        CHECK(o2.PrivateRuntimeDataSize == 0, "OpenKeyedMutex2 size 0: %u written", o2.PrivateRuntimeDataSize);
        if (is_local(o2.hKeyedMutex))
            EXPECT_OK(km_destroy(o2.hKeyedMutex));
        o2.PrivateRuntimeDataSize = sizeof buf;
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTOpenKeyedMutex2(&o2));  /* 64 with NULL */
        memset(buf, 0xcd, sizeof buf);
        o2.pPrivateRuntimeData = buf;
        o2.PrivateRuntimeDataSize = 5;
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTOpenKeyedMutex2(&o2));  /* too small */
        o2.PrivateRuntimeDataSize = 6;
        EXPECT_OK(D3DKMTOpenKeyedMutex2(&o2));
        CHECK(o2.PrivateRuntimeDataSize == 6 && buf[0] == 0xcd,
              "OpenKeyedMutex2 size 6: size %u, buffer[0] 0x%02x (Windows writes neither)", o2.PrivateRuntimeDataSize,
              buf[0]);
        if (is_local(o2.hKeyedMutex))
            EXPECT_OK(km_destroy(o2.hKeyedMutex));
    }
    if (km2) {
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, share1(km2, NULL, STANDARD_RIGHTS_ALL, &sh));
        close_nt(sh);
        EXPECT_OK(km_destroy(km2));
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, km_destroy(km2));
    }
    if (kmLocal) {
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, share1(kmLocal, NULL, STANDARD_RIGHTS_ALL, &sh));
        close_nt(sh);
        EXPECT_OK(km_destroy(kmLocal));
        /* Every local reference is gone: the global no longer opens. */
        D3DKMT_OPENKEYEDMUTEX o = { km2Shared, 0 };
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTOpenKeyedMutex(&o));
    }
    if (kmShared) {
        D3DKMT_OPENKEYEDMUTEX o = { kmShared, 0 };
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTOpenKeyedMutex(&o));
    }

    /* Acquire and release (not in the stored Windows test: Wine's model and DXVK's use). */
    keyed_mutex_sequence(1, a->hDevice);
    keyed_mutex_sequence(0, a->hDevice);
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTAcquireKeyedMutex(NULL));
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTReleaseKeyedMutex(NULL));
}

/* ------------------------------------------------------------------------ */
/* D3DKMTCreateAllocation(2) (facts 4.5)                                    */
/* ------------------------------------------------------------------------ */

/* The Windows test's base case in the library's form: one allocation, no
 * resource. */
typedef struct {
    D3DKMT_CREATEALLOCATION ca;
    D3DDDI_ALLOCATIONINFO2 info2;
    D3DDDI_ALLOCATIONINFO info1;
    alloc_data_t data;
} create_t;

static void create_init(create_t *c, D3DKMT_HANDLE hDevice, int v1, unsigned extra)
{
    memset(c, 0, sizeof *c);
    alloc_data_init(&c->data, extra);
    c->ca.hDevice = hDevice;
    c->ca.hGlobalShare = PRESET;
    c->ca.hPrivateRuntimeResourceHandle = (HANDLE)(uintptr_t)0xdeadbeef;
    c->ca.NumAllocations = 1;
    if (v1) {
        c->info1.hAllocation = PRESET;
        c->info1.pPrivateDriverData = &c->data;
        c->info1.PrivateDriverDataSize = ALLOC_DATA_SIZE(extra);
        c->ca.pAllocationInfo = &c->info1;
    } else {
        c->info2.hAllocation = PRESET;
        c->info2.pPrivateDriverData = &c->data;
        c->info2.PrivateDriverDataSize = ALLOC_DATA_SIZE(extra);
        c->ca.pAllocationInfo2 = &c->info2;
    }
}

static D3DKMT_HANDLE create_alloc_handle(const create_t *c, int v1)
{
    return v1 ? c->info1.hAllocation : c->info2.hAllocation;
}

/* Creates with D3DKMTCreateAllocation (v1 info) or D3DKMTCreateAllocation2. */
static NTSTATUS create_call(create_t *c, int v1)
{
    return v1 ? D3DKMTCreateAllocation(&c->ca) : D3DKMTCreateAllocation2(&c->ca);
}

/* Expects `expected` from a create; destroys whatever a wrong success made. */
static void expect_create(NTSTATUS expected, create_t *c, int v1, const char *what)
{
    NTSTATUS st = create_call(c, v1);
    CHECK(st == expected, "CreateAllocation%s %s: 0x%08" PRIX32 ", expected 0x%08" PRIX32, v1 ? "" : "2", what,
          (uint32_t)st, (uint32_t)expected);
    if (st == STATUS_SUCCESS && expected != STATUS_SUCCESS) {
        D3DKMT_HANDLE al = create_alloc_handle(c, v1);
        if (c->ca.hResource && c->ca.Flags.CreateResource)
            destroy_resource(c->ca.hDevice, c->ca.hResource);
        else
            destroy_alloc(0, c->ca.hDevice, 0, &al, 1);
    }
}

static void test_create_allocation(adapter_t *a)
{
    phase("CreateAllocation");
    D3DKMT_HANDLE d = a->hDevice;
    create_t c;
    D3DKMT_HANDLE res = 0, alloc = 0;

    for (int v1 = 1; v1 >= 0; v1--) {
        const char *v = v1 ? "CreateAllocation" : "CreateAllocation2";
        memset(&c.ca, 0, sizeof c.ca);
        expect_create(STATUS_INVALID_PARAMETER, &c, v1, "zeroed");

        /* Base: no CreateResource. */
        create_init(&c, d, v1, 0);
        EXPECT_OK(create_call(&c, v1));
        CHECK(c.ca.hGlobalShare == 0, "%s: hGlobalShare 0x%08" PRIX32 " (preset 0x1eadbeed), expected 0", v,
              (uint32_t)c.ca.hGlobalShare);
        CHECK(c.ca.hResource == 0, "%s: hResource 0x%08" PRIX32 " without CreateResource", v,
              (uint32_t)c.ca.hResource);
        D3DKMT_HANDLE al = create_alloc_handle(&c, v1);
        CHECK_LOCAL(al, "hAllocation");
        CHECK(c.ca.hPrivateRuntimeResourceHandle == (HANDLE)(uintptr_t)0xdeadbeef,
              "%s: hPrivateRuntimeResourceHandle changed to %p", v, c.ca.hPrivateRuntimeResourceHandle);
        if (al)
            EXPECT_OK(destroy_alloc(0, d, 0, &al, 1));

        /* Driver data (6 bytes after the descriptor) and runtime data without a resource. */
        create_init(&c, d, v1, 6);
        c.ca.pPrivateRuntimeData = runtime4;
        c.ca.PrivateRuntimeDataSize = sizeof runtime4;
        EXPECT_OK(create_call(&c, v1));
        al = create_alloc_handle(&c, v1);
        if (al)
            EXPECT_OK(destroy_alloc(0, d, 0, &al, 1));

        /* Rejections, each from the base state (facts 4.5 table). */
        create_init(&c, d, v1, 0);
        c.ca.hDevice = 0;
        expect_create(STATUS_INVALID_PARAMETER, &c, v1, "hDevice 0");
        create_init(&c, d, v1, 0);
        c.ca.hResource = PRESET;
        expect_create(STATUS_INVALID_HANDLE, &c, v1, "unknown hResource without CreateResource");
        create_init(&c, d, v1, 0);
        c.ca.NumAllocations = 0;
        expect_create(STATUS_INVALID_PARAMETER, &c, v1, "NumAllocations 0");
        create_init(&c, d, v1, 0);
        c.ca.pAllocationInfo2 = NULL;
        expect_create(STATUS_INVALID_PARAMETER, &c, v1, "allocation info NULL");
        /* The library's form of "standard allocation missing / pSystemMem NULL": the descriptor. */
        create_init(&c, d, v1, 0);
        if (v1)
            c.info1.pPrivateDriverData = NULL;
        else
            c.info2.pPrivateDriverData = NULL;
        expect_create(STATUS_INVALID_PARAMETER, &c, v1, "no D3DKMT_LINUX_ALLOCATION_DESC (NULL driver data)");
        create_init(&c, d, v1, 0);
        if (v1)
            c.info1.PrivateDriverDataSize = ALLOC_DATA_SIZE(0) - 1;
        else
            c.info2.PrivateDriverDataSize = ALLOC_DATA_SIZE(0) - 1;
        expect_create(STATUS_INVALID_PARAMETER, &c, v1, "driver data shorter than the descriptor");
        create_init(&c, d, v1, 0);
        c.data.desc.Version = 0;
        expect_create(STATUS_INVALID_PARAMETER, &c, v1, "descriptor Version 0");
        create_init(&c, d, v1, 0);
        c.ca.Flags.CreateShared = 1;
        expect_create(STATUS_INVALID_PARAMETER, &c, v1, "CreateShared without CreateResource");
        create_init(&c, d, v1, 0);
        c.ca.Flags.CreateResource = 1;
        c.ca.hResource = PRESET;
        expect_create(STATUS_INVALID_HANDLE, &c, v1, "CreateResource with an unknown hResource");
        create_init(&c, d, v1, 0);
        c.ca.Flags.CreateResource = 1;
        c.ca.NumAllocations = 0;
        expect_create(STATUS_INVALID_PARAMETER, &c, v1, "CreateResource with NumAllocations 0");
        /* differs from Windows: existing system memory is how Windows makes these; not supported here. */
        create_init(&c, d, v1, 0);
        c.ca.Flags.ExistingSysMem = 1;
        c.ca.Flags.StandardAllocation = 1;
        expect_create(STATUS_NOT_SUPPORTED, &c, v1, "ExistingSysMem + StandardAllocation");

        /* CreateResource: resource and allocation are the next two locals. */
        create_init(&c, d, v1, 0);
        c.ca.Flags.CreateResource = 1;
        EXPECT_OK(create_call(&c, v1));
        res = c.ca.hResource;
        alloc = create_alloc_handle(&c, v1);
        CHECK(c.ca.hGlobalShare == 0, "%s CreateResource: hGlobalShare 0x%08" PRIX32, v,
              (uint32_t)c.ca.hGlobalShare);
        chain_next = 0;
        chain(res, "CreateResource hResource");
        chain(alloc, "CreateResource hAllocation");
        chain_next = 0;
        CHECK(c.ca.hPrivateRuntimeResourceHandle == (HANDLE)(uintptr_t)0xdeadbeef,
              "%s CreateResource: hPrivateRuntimeResourceHandle changed", v);
        /* Not shared: neither the allocation nor the resource can be. */
        HANDLE sh = NULL;
        if (res) {
            EXPECT_STATUS(STATUS_INVALID_PARAMETER, share1(alloc, NULL, STANDARD_RIGHTS_READ, &sh));
            close_nt(sh);
            EXPECT_STATUS(STATUS_INVALID_PARAMETER, share1(res, NULL, STANDARD_RIGHTS_READ, &sh));
            close_nt(sh);
            /* An existing resource in hResource without CreateResource. */
            create_init(&c, d, v1, 0);
            c.ca.hResource = res;
            expect_create(STATUS_INVALID_PARAMETER, &c, v1, "an existing hResource without CreateResource");
            EXPECT_OK(destroy_resource(d, res));
        }

        /* CreateShared alone: a global hGlobalShare, local resource and allocation; not shared by NT handle. */
        create_init(&c, d, v1, 0);
        c.ca.Flags.CreateResource = 1;
        c.ca.Flags.CreateShared = 1;
        EXPECT_OK(create_call(&c, v1));
        CHECK_GLOBAL(c.ca.hGlobalShare, "CreateShared hGlobalShare");
        CHECK_LOCAL(c.ca.hResource, "CreateShared hResource");
        CHECK_LOCAL(create_alloc_handle(&c, v1), "CreateShared hAllocation");
        if (c.ca.hResource) {
            HANDLE sh = NULL;
            D3DKMT_HANDLE al = create_alloc_handle(&c, v1);
            EXPECT_STATUS(STATUS_INVALID_PARAMETER, share1(al, NULL, STANDARD_RIGHTS_READ, &sh));
            close_nt(sh);
            EXPECT_STATUS(STATUS_INVALID_PARAMETER, share1(c.ca.hResource, NULL, STANDARD_RIGHTS_READ, &sh));
            close_nt(sh);
            /* A local resource handle is not a global one. */
            D3DKMT_QUERYRESOURCEINFO q;
            memset(&q, 0, sizeof q);
            q.hDevice = d;
            q.hGlobalShare = c.ca.hResource;
            EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTQueryResourceInfo(&q));
            D3DKMT_OPENRESOURCE o;
            D3DDDI_OPENALLOCATIONINFO2 oa;
            memset(&o, 0, sizeof o);
            memset(&oa, 0, sizeof oa);
            o.hDevice = d;
            o.hGlobalShare = c.ca.hResource;
            o.NumAllocations = 1;
            o.pOpenAllocationInfo2 = &oa;
            EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTOpenResource2(&o));
            EXPECT_OK(destroy_resource(d, c.ca.hResource));
        }

        create_init(&c, d, v1, 0);
        c.ca.Flags.CreateResource = 1;
        c.ca.Flags.CreateShared = 1;
        c.ca.Flags.NtSecuritySharing = 1;
        EXPECT_OK(create_call(&c, v1));
        CHECK(c.ca.hGlobalShare == 0, "%s NtSecuritySharing: hGlobalShare 0x%08" PRIX32 ", expected 0", v,
              (uint32_t)c.ca.hGlobalShare);
        CHECK_LOCAL(c.ca.hResource, "NtSecuritySharing hResource");
        CHECK_LOCAL(create_alloc_handle(&c, v1), "NtSecuritySharing hAllocation");
        if (c.ca.hResource)
            EXPECT_OK(destroy_resource(d, c.ca.hResource));
    }
}

/* ------------------------------------------------------------------------ */
/* Global resources: D3DKMTQueryResourceInfo, D3DKMTOpenResource(2) (facts 4.6) */
/* ------------------------------------------------------------------------ */

static void test_global_resource(adapter_t *a)
{
    phase("global resource");
    static const uint8_t rt[4] = { 7, 8, 9, 10 };
    const unsigned extra = 10;
    D3DKMT_HANDLE d = a->hDevice;
    create_t c;
    create_init(&c, d, 0, extra);
    c.ca.Flags.CreateResource = 1;
    c.ca.Flags.CreateShared = 1;
    c.ca.pPrivateRuntimeData = rt;
    c.ca.PrivateRuntimeDataSize = sizeof rt;
    EXPECT_OK(create_call(&c, 0));
    D3DKMT_HANDLE global = c.ca.hGlobalShare, res = c.ca.hResource;
    CHECK_GLOBAL(global, "hGlobalShare");
    if (!res)
        return;

    /* Query: the real runtime size written back, the buffer untouched. */
    uint8_t buf[0x100];
    memset(buf, 0xcd, sizeof buf);
    D3DKMT_QUERYRESOURCEINFO q;
    memset(&q, 0, sizeof q);
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTQueryResourceInfo(NULL));
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTQueryResourceInfo(&q));
    q.hDevice = d;
    q.hGlobalShare = global;
    q.pPrivateRuntimeData = buf;
    q.PrivateRuntimeDataSize = sizeof buf;
    EXPECT_OK(D3DKMTQueryResourceInfo(&q));
    CHECK(q.PrivateRuntimeDataSize == 4 && q.ResourcePrivateDriverDataSize == 0 && q.NumAllocations == 1 &&
          q.TotalPrivateDriverDataSize == extra, "QueryResourceInfo: runtime %u, resource %u, allocations %u, total %u",
          q.PrivateRuntimeDataSize, q.ResourcePrivateDriverDataSize, q.NumAllocations, q.TotalPrivateDriverDataSize);
    CHECK(buf[0] == 0xcd, "QueryResourceInfo wrote the runtime buffer");

    /* OpenResource (v1): a larger total buffer is fine and rewritten to the real size. */
    uint8_t total[0x1000], allocData[0x400], resData[16];
    D3DDDI_OPENALLOCATIONINFO oa;
    D3DKMT_OPENRESOURCE o;
    memset(&o, 0, sizeof o);
    memset(&oa, 0, sizeof oa);
    memset(buf, 0xcd, sizeof buf);
    memset(allocData, 0xcd, sizeof allocData);
    memset(resData, 0xcd, sizeof resData);
    oa.pPrivateDriverData = allocData;
    oa.PrivateDriverDataSize = sizeof allocData;
    o.hDevice = d;
    o.hGlobalShare = global;
    o.NumAllocations = 1;
    o.pOpenAllocationInfo = &oa;
    o.pPrivateRuntimeData = buf;
    o.PrivateRuntimeDataSize = q.PrivateRuntimeDataSize;
    o.pResourcePrivateDriverData = resData;
    o.ResourcePrivateDriverDataSize = 0;
    o.pTotalPrivateDriverDataBuffer = total;
    o.TotalPrivateDriverDataBufferSize = sizeof total;
    o.hResource = PRESET;
    EXPECT_OK(D3DKMTOpenResource(&o));
    CHECK(o.hGlobalShare == global, "OpenResource changed hGlobalShare");
    CHECK_LOCAL(o.hResource, "OpenResource hResource");
    CHECK(o.PrivateRuntimeDataSize == 4 && o.ResourcePrivateDriverDataSize == 0 && o.NumAllocations == 1 &&
          o.TotalPrivateDriverDataBufferSize == extra, "OpenResource sizes: runtime %u, resource %u, total %u",
          o.PrivateRuntimeDataSize, o.ResourcePrivateDriverDataSize, o.TotalPrivateDriverDataBufferSize);
    CHECK_LOCAL(oa.hAllocation, "OpenResource hAllocation");
    CHECK(oa.PrivateDriverDataSize == extra && allocData[0] == extra_byte(0),
          "OpenResource: allocation driver data %u bytes, first 0x%02x", oa.PrivateDriverDataSize, allocData[0]);
    CHECK(memcmp(buf, rt, sizeof rt) == 0, "OpenResource copied the runtime data");
    CHECK(resData[0] == 0xcd, "OpenResource wrote the resource driver data buffer");
    D3DKMT_HANDLE opened = o.hResource;

    /* Rejections, from the good state with the sizes written back. */
    D3DKMT_OPENRESOURCE bad = o;
    bad.NumAllocations = 0;
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTOpenResource(&bad));
    bad = o;
    bad.PrivateRuntimeDataSize++;
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTOpenResource(&bad));
    bad = o;
    bad.ResourcePrivateDriverDataSize++;
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTOpenResource(&bad));
    bad = o;
    bad.hDevice = 0;
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTOpenResource(&bad));

    /* OpenResource2 with the same fields and the exact total size. */
    D3DDDI_OPENALLOCATIONINFO2 oa2;
    memset(&oa2, 0, sizeof oa2);
    D3DKMT_OPENRESOURCE o2 = o;
    o2.pOpenAllocationInfo2 = &oa2;
    o2.TotalPrivateDriverDataBufferSize = extra;
    o2.TotalPrivateDriverDataBufferSize--;
    EXPECT_STATUS(STATUS_NO_MEMORY, D3DKMTOpenResource2(&o2));
    o2.TotalPrivateDriverDataBufferSize = extra;
    o2.hResource = PRESET;
    EXPECT_OK(D3DKMTOpenResource2(&o2));
    CHECK_LOCAL(o2.hResource, "OpenResource2 hResource");
    CHECK_LOCAL(oa2.hAllocation, "OpenResource2 hAllocation");
    CHECK(oa2.PrivateDriverDataSize == extra && oa2.pPrivateDriverData == total,
          "OpenResource2: the allocation's driver data (%u bytes) points into the total buffer",
          oa2.PrivateDriverDataSize);

    /* The global lives while any local reference does: the creator's goes first. */
    EXPECT_OK(destroy_resource(d, res));
    EXPECT_OK(D3DKMTQueryResourceInfo(&q));
    if (is_local(o2.hResource))
        EXPECT_OK(destroy_resource(d, o2.hResource));
    EXPECT_OK(D3DKMTQueryResourceInfo(&q));
    if (is_local(opened))
        EXPECT_OK(destroy_resource(d, opened));
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTQueryResourceInfo(&q));
    o.hResource = PRESET;
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTOpenResource(&o));
}

/* ------------------------------------------------------------------------ */
/* D3DKMTDestroyAllocation(2) (facts 4.5)                                   */
/* ------------------------------------------------------------------------ */

static void test_destroy_allocation(adapter_t *a)
{
    phase("DestroyAllocation");
    D3DKMT_HANDLE d = a->hDevice;
    for (int v1 = 1; v1 >= 0; v1--) {
        D3DKMT_HANDLE res = 0, al[2] = { 0, 0 }, lone = 0;
        if (v1)
            EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTDestroyAllocation(NULL));
        else
            EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTDestroyAllocation2(NULL));
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, destroy_alloc(v1, 0, 0, NULL, 0));
        /* Only hDevice: nothing to destroy. */
        EXPECT_OK(destroy_alloc(v1, d, 0, NULL, 0));
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, destroy_alloc(v1, d, 0, NULL, 1));
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, destroy_alloc(v1, d, PRESET, NULL, 0));
        D3DKMT_HANDLE bogus = PRESET;
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, destroy_alloc(v1, d, 0, &bogus, 1));

        /* A standalone allocation: destroyed, then unknown. */
        EXPECT_OK(create_standalone(d, &lone));
        if (lone) {
            EXPECT_OK(destroy_alloc(v1, d, 0, &lone, 1));
            EXPECT_STATUS(STATUS_INVALID_PARAMETER, destroy_alloc(v1, d, 0, &lone, 1));
        }

        /* Destroying a resource's allocation leaves the resource. */
        EXPECT_OK(create_test_resource(d, &res, &al[0]));
        if (res) {
            EXPECT_OK(destroy_alloc(v1, d, 0, &al[0], 1));
            EXPECT_STATUS(STATUS_INVALID_PARAMETER, destroy_alloc(v1, d, 0, &al[0], 1));
            EXPECT_OK(destroy_alloc(v1, d, res, NULL, 0));
            EXPECT_STATUS(STATUS_INVALID_PARAMETER, destroy_alloc(v1, d, res, NULL, 0));
        }
        /* hResource with a list: only the listed allocation goes. */
        EXPECT_OK(create_resource_n(d, 2, runtime4, sizeof runtime4, 0, 1, &res, al));
        if (res) {
            EXPECT_OK(destroy_alloc(v1, d, res, &al[0], 1));
            EXPECT_STATUS(STATUS_INVALID_PARAMETER, destroy_alloc(v1, d, 0, &al[0], 1));
            /* the resource and its other allocation are still there */
            CHECK(lock_writable(d, al[1]) == 1, "v%d: the resource's other allocation cannot be locked", v1 ? 1 : 2);
            EXPECT_OK(destroy_alloc(v1, d, res, NULL, 0));
            /* Destroying the resource destroyed its allocations. */
            EXPECT_STATUS(STATUS_INVALID_PARAMETER, destroy_alloc(v1, d, 0, &al[1], 1));
        }
        EXPECT_OK(create_test_resource(d, &res, &al[0]));
        if (res) {
            EXPECT_OK(destroy_alloc(v1, d, res, NULL, 0));
            EXPECT_STATUS(STATUS_INVALID_PARAMETER, destroy_alloc(v1, d, 0, &al[0], 1));
            EXPECT_STATUS(STATUS_INVALID_PARAMETER, destroy_alloc(v1, d, res, NULL, 0));
        }
    }
}

/* ------------------------------------------------------------------------ */
/* D3DKMTShareObjects (facts 4.7 "Resources", "Combined objects"; 5)        */
/* ------------------------------------------------------------------------ */

static void test_share_objects(adapter_t *a)
{
    phase("ShareObjects");
    D3DKMT_HANDLE d = a->hDevice, res = 0, alloc = 0;
    HANDLE h = NULL;
    nt_name_t n;

    EXPECT_OK(create_test_resource(d, &res, &alloc));
    if (!res)
        return;
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, share1(alloc, NULL, STANDARD_RIGHTS_READ, &h));
    close_nt(h);
    OBJECT_ATTRIBUTES *attr = ntname(&n, "\\BaseNamedObjects\\%s_Share", a->base);
    EXPECT_OK(share1(res, attr, STANDARD_RIGHTS_READ, &h));
    CHECK_NT(h, "ShareObjects(resource)");
    close_nt(h);
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, share(0, &res, NULL, STANDARD_RIGHTS_READ, &h));
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, share(2, NULL, NULL, STANDARD_RIGHTS_READ, &h));
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, share1(PRESET, NULL, STANDARD_RIGHTS_READ, &h));
    /* NULL attributes (DXVK), and the access values clients pass (facts 5). */
    static const DWORD accesses[] = { STANDARD_RIGHTS_READ, GENERIC_ALL, 0x80000001u, 0 };
    for (unsigned i = 0; i < sizeof accesses / sizeof accesses[0]; i++) {
        NTSTATUS st = share1(res, NULL, accesses[i], &h);
        CHECK(st == STATUS_SUCCESS, "ShareObjects(resource, NULL attributes, access 0x%08" PRIX32 "): 0x%08" PRIX32,
              (uint32_t)accesses[i], (uint32_t)st);
        close_nt(h);
    }
    /* Length must be sizeof(OBJECT_ATTRIBUTES). */
    OBJECT_ATTRIBUTES bad;
    InitializeObjectAttributes(&bad, NULL, 0, NULL, NULL);
    bad.Length = sizeof bad - 1;
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, share1(res, &bad, STANDARD_RIGHTS_READ, &h));
    close_nt(h);
    bad.Length = 0;
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, share1(res, &bad, STANDARD_RIGHTS_READ, &h));
    close_nt(h);
    /* SecurityDescriptor is not used: DXVK and vkd3d pass a SECURITY_ATTRIBUTES there. */
    struct { DWORD nLength; void *lpSecurityDescriptor; BOOL bInheritHandle; } sa = { 24, NULL, 0 };
    OBJECT_ATTRIBUTES withsd;
    InitializeObjectAttributes(&withsd, NULL, OBJ_CASE_INSENSITIVE, NULL, &sa);
    EXPECT_OK(share1(res, &withsd, GENERIC_ALL, &h));
    close_nt(h);

    /* Combined objects: a MUTEX sync object (Shared + NtSecuritySharing), a
     * keyed mutex with 20 bytes of runtime data (NtSecuritySharing), the resource. */
    D3DKMT_HANDLE sync = 0, km = 0, kmLocal = 0, sync1 = 0;
    uint8_t kmdata[KM_DATA_BYTES];
    for (unsigned i = 0; i < sizeof kmdata; i++)
        kmdata[i] = (uint8_t)(0x30 + i);
    EXPECT_OK(sync2_create(d, D3DDDI_SYNCHRONIZATION_MUTEX, SYNC_SHARED_NT, &sync, NULL));
    EXPECT_OK(km_create_ex(0, 0, 1, kmdata, sizeof kmdata, &km, NULL));
    EXPECT_OK(km_create_ex(0, 0, 0, NULL, 0, &kmLocal, NULL));
    EXPECT_OK(sync1_create(d, D3DDDI_SYNCHRONIZATION_MUTEX, &sync1));
    if (!sync || !km) {
        EXPECT_OK(destroy_resource(d, res));
        return;
    }
    struct {
        UINT count;
        D3DKMT_HANDLE objs[4];
        const char *what;
    } combos[] = {
        { 3, { res, res, res, 0 }, "[res, res, res]" },
        { 2, { res, km, 0, 0 }, "[res, mutex]" },
        { 2, { res, sync, 0, 0 }, "[res, sync]" },
        { 2, { km, sync, 0, 0 }, "[mutex, sync]" },
        { 4, { res, km, sync, sync }, "[res, mutex, sync, sync]" },
        { 3, { res, sync, km, 0 }, "[res, sync, mutex]" },
        { 3, { alloc, km, sync, 0 }, "[allocation, mutex, sync]" },
        { 3, { res, kmLocal, sync, 0 }, "[res, mutex without NtSecuritySharing, sync]" },
        { 3, { res, km, sync1, 0 }, "[res, mutex, v1 sync]" },
    };
    for (unsigned i = 0; i < sizeof combos / sizeof combos[0]; i++) {
        NTSTATUS st = share(combos[i].count, combos[i].objs, NULL, STANDARD_RIGHTS_ALL, &h);
        CHECK(st == STATUS_INVALID_PARAMETER, "ShareObjects%s: 0x%08" PRIX32 ", expected STATUS_INVALID_PARAMETER",
              combos[i].what, (uint32_t)st);
        close_nt(h);
    }
    nt_name_t tn;
    OBJECT_ATTRIBUTES *tattr = ntname(&tn, "\\BaseNamedObjects\\%s_Triple", a->base);
    D3DKMT_HANDLE triple[3] = { res, km, sync };
    EXPECT_OK(share(3, triple, tattr, STANDARD_RIGHTS_ALL, &h));
    CHECK_NT(h, "ShareObjects[res, mutex, sync]");
    /* The name is a resource's. */
    expect_name(STATUS_SUCCESS, 0, GENERIC_ALL, tattr, "the [res, mutex, sync] name");
    expect_name(STATUS_OBJECT_TYPE_MISMATCH, 1, GENERIC_ALL, tattr, "the [res, mutex, sync] name as a sync object");

    /* The NT handle keeps everything alive after the creator's locals go. */
    EXPECT_OK(km_destroy(km));
    EXPECT_OK(sync_destroy(sync));
    EXPECT_OK(destroy_resource(d, res));
    if (kmLocal)
        EXPECT_OK(km_destroy(kmLocal));
    if (sync1)
        EXPECT_OK(sync_destroy(sync1));
    if (!h)
        return;
    D3DKMT_QUERYRESOURCEINFOFROMNTHANDLE q;
    uint8_t buf[0x100];
    memset(buf, 0xcd, sizeof buf);
    EXPECT_OK(query(d, h, buf, sizeof buf, &q));
    CHECK(q.PrivateRuntimeDataSize == sizeof runtime4, "triple query: PrivateRuntimeDataSize %u, expected 4",
          q.PrivateRuntimeDataSize);
    CHECK(q.NumAllocations == 1, "triple query: NumAllocations %u", q.NumAllocations);
    CHECK(q.TotalPrivateDriverDataSize == EXTRA_BYTES, "triple query: TotalPrivateDriverDataSize %u, expected %u",
          q.TotalPrivateDriverDataSize, EXTRA_BYTES);
    CHECK(q.ResourcePrivateDriverDataSize == 0, "triple query: ResourcePrivateDriverDataSize %u",
          q.ResourcePrivateDriverDataSize);
    CHECK(buf[0] == 0xcd && buf[sizeof buf - 1] == 0xcd, "triple query wrote into the runtime buffer");

    opener_t p;
    opener_init(&p, d, h, sizeof runtime4, EXTRA_BYTES);
    p.o.pKeyedMutexPrivateRuntimeData = p.kmdata;
    p.o.KeyedMutexPrivateRuntimeDataSize = KM_DATA_BYTES;
    EXPECT_OK(opener_open(&p));
    CHECK_LOCAL(p.o.hResource, "triple open hResource");
    CHECK_LOCAL(p.o.hKeyedMutex, "triple open hKeyedMutex");
    CHECK_LOCAL(p.o.hSyncObject, "triple open hSyncObject");
    CHECK_LOCAL(p.allocs[0].hAllocation, "triple open hAllocation");
    CHECK(p.o.KeyedMutexPrivateRuntimeDataSize == KM_DATA_BYTES, "triple open: KeyedMutexPrivateRuntimeDataSize %u",
          p.o.KeyedMutexPrivateRuntimeDataSize);
    CHECK(p.allocs[0].PrivateDriverDataSize == EXTRA_BYTES, "triple open: allocation PrivateDriverDataSize %u",
          p.allocs[0].PrivateDriverDataSize);
    CHECK(memcmp(p.runtime, runtime4, sizeof runtime4) == 0, "triple open: runtime data not copied");
    if (p.o.hKeyedMutex && p.o.hKeyedMutex != PRESET) {
        const LONGLONG zero = 0;
        EXPECT_OK(km_acquire_v(0, p.o.hKeyedMutex, 0, &zero, NULL));
        EXPECT_OK(km_release_v(0, p.o.hKeyedMutex, 0, 1));
    }
    /* Each opened local is destroyable. */
    opener_close(&p);
    close_nt(h);
}

/* ------------------------------------------------------------------------ */
/* D3DKMTQueryResourceInfoFromNtHandle (facts 4.7)                          */
/* ------------------------------------------------------------------------ */

static void test_query(adapter_t *a)
{
    phase("QueryResourceInfoFromNtHandle");
    D3DKMT_HANDLE d = a->hDevice, res = 0, alloc = 0;
    HANDLE h = NULL;
    D3DKMT_QUERYRESOURCEINFOFROMNTHANDLE q;
    uint8_t buf[0x108];

    EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTQueryResourceInfoFromNtHandle(NULL));
    EXPECT_OK(create_test_resource(d, &res, &alloc));
    EXPECT_OK(share1(res, NULL, STANDARD_RIGHTS_READ, &h));
    if (!h)
        goto out;
    /* NULL buffer with a large size; every output preset to 0xdeadbeef. */
    EXPECT_OK(query(d, h, NULL, 0xdeadbeef, &q));
    CHECK(q.PrivateRuntimeDataSize == 4, "query: PrivateRuntimeDataSize %u, expected 4", q.PrivateRuntimeDataSize);
    CHECK(q.TotalPrivateDriverDataSize == EXTRA_BYTES,
          "query: TotalPrivateDriverDataSize %u, expected %u (the bytes after the descriptor)",
          q.TotalPrivateDriverDataSize, EXTRA_BYTES);
    CHECK(q.ResourcePrivateDriverDataSize == 0, "query: ResourcePrivateDriverDataSize %u, expected 0",
          q.ResourcePrivateDriverDataSize);
    CHECK(q.NumAllocations == 1, "query: NumAllocations %u, expected 1", q.NumAllocations);
    /* A buffer is never written, whatever its size. */
    static const UINT sizes[] = { 0, 0x100, 0x108, 4 };
    for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        memset(buf, 0xcd, sizeof buf);
        EXPECT_OK(query(d, h, buf, sizes[i], &q));
        CHECK(q.PrivateRuntimeDataSize == 4, "query with a %u-byte buffer: PrivateRuntimeDataSize %u, expected 4",
              sizes[i], q.PrivateRuntimeDataSize);
        int untouched = 1;
        for (unsigned j = 0; j < sizeof buf; j++)
            untouched &= buf[j] == 0xcd;
        CHECK(untouched, "query with a %u-byte buffer wrote into it", sizes[i]);
    }
    close_nt(h);
    EXPECT_OK(destroy_resource(d, res));

    /* Exactly the descriptor: no driver data for openers. */
    EXPECT_OK(create_resource1(d, runtime4, sizeof runtime4, 0, 1, &res, &alloc));
    EXPECT_OK(share1(res, NULL, STANDARD_RIGHTS_READ, &h));
    if (h) {
        EXPECT_OK(query(d, h, NULL, 0, &q));
        CHECK(q.TotalPrivateDriverDataSize == 0, "query, allocation with only the descriptor: "
              "TotalPrivateDriverDataSize %u, expected 0", q.TotalPrivateDriverDataSize);
        close_nt(h);
    }
    /* Two allocations of 10 bytes each. */
    D3DKMT_HANDLE two[2] = { 0, 0 };
    EXPECT_OK(destroy_resource(d, res));
    EXPECT_OK(create_resource_n(d, 2, runtime4, sizeof runtime4, EXTRA_BYTES, 1, &res, two));
    EXPECT_OK(share1(res, NULL, STANDARD_RIGHTS_READ, &h));
    if (h) {
        EXPECT_OK(query(d, h, NULL, 0, &q));
        CHECK(q.NumAllocations == 2, "query, two allocations: NumAllocations %u", q.NumAllocations);
        CHECK(q.TotalPrivateDriverDataSize == 2 * EXTRA_BYTES, "query, two allocations: "
              "TotalPrivateDriverDataSize %u, expected %u", q.TotalPrivateDriverDataSize, 2 * EXTRA_BYTES);
        close_nt(h);
    }
out:
    if (res)
        EXPECT_OK(destroy_resource(d, res));
}

/* ------------------------------------------------------------------------ */
/* D3DKMTOpenResourceFromNtHandle (facts 4.7; 5 item 3)                     */
/* ------------------------------------------------------------------------ */

static void expect_open(NTSTATUS expected, opener_t *p, const char *what)
{
    NTSTATUS st = opener_open(p);
    CHECK(st == expected, "OpenResourceFromNtHandle %s: 0x%08" PRIX32 ", expected 0x%08" PRIX32, what,
          (uint32_t)st, (uint32_t)expected);
    if (st == STATUS_SUCCESS && expected != STATUS_SUCCESS)
        opener_close(p);
}

static void test_open(adapter_t *a)
{
    phase("OpenResourceFromNtHandle");
    D3DKMT_HANDLE d = a->hDevice, res = 0, alloc = 0;
    HANDLE h = NULL;
    opener_t p;

    EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTOpenResourceFromNtHandle(NULL));
    EXPECT_OK(create_test_resource(d, &res, &alloc));
    EXPECT_OK(share1(res, NULL, STANDARD_RIGHTS_READ, &h));
    if (!h)
        goto out;

    opener_init(&p, d, h, sizeof runtime4, EXTRA_BYTES);
    EXPECT_OK(opener_open(&p));
    CHECK_LOCAL(p.o.hResource, "opened hResource (preset 0x1eadbeed)");
    CHECK_LOCAL(p.allocs[0].hAllocation, "opened hAllocation (preset 0x1eadbeed)");
    CHECK(p.o.hKeyedMutex == 0, "open: hKeyedMutex 0x%08" PRIX32 ", expected 0 (preset 0x1eadbeed)",
          (uint32_t)p.o.hKeyedMutex);
    CHECK(p.o.hSyncObject == 0, "open: hSyncObject 0x%08" PRIX32 ", expected 0 (preset 0x1eadbeed)",
          (uint32_t)p.o.hSyncObject);
    CHECK(p.o.KeyedMutexPrivateRuntimeDataSize == 0, "open: KeyedMutexPrivateRuntimeDataSize %u",
          p.o.KeyedMutexPrivateRuntimeDataSize);
    CHECK(p.o.NumAllocations == 1 && p.o.PrivateRuntimeDataSize == 4 && p.o.ResourcePrivateDriverDataSize == 0,
          "open: NumAllocations %u, PrivateRuntimeDataSize %u, ResourcePrivateDriverDataSize %u; expected 1, 4, 0",
          p.o.NumAllocations, p.o.PrivateRuntimeDataSize, p.o.ResourcePrivateDriverDataSize);
    CHECK(p.o.TotalPrivateDriverDataBufferSize == EXTRA_BYTES, "open: TotalPrivateDriverDataBufferSize %u, "
          "expected %u", p.o.TotalPrivateDriverDataBufferSize, EXTRA_BYTES);
    CHECK(memcmp(p.runtime, runtime4, sizeof runtime4) == 0 && p.runtime[4] == 0xcd,
          "open: runtime data not copied exactly");
    CHECK(p.allocs[0].PrivateDriverDataSize == EXTRA_BYTES, "open: allocation PrivateDriverDataSize %u, "
          "expected %u (the bytes after the Linux descriptor)", p.allocs[0].PrivateDriverDataSize, EXTRA_BYTES);
    {
        const uint8_t *dd = p.allocs[0].pPrivateDriverData;
        int inside = dd >= p.total && dd + EXTRA_BYTES <= p.total + sizeof p.total;
        CHECK(inside, "open: allocation pPrivateDriverData %p is not in the total buffer", (const void *)dd);
        int same = inside;
        for (unsigned i = 0; inside && i < EXTRA_BYTES; i++)
            same &= dd[i] == extra_byte(i);
        CHECK(same, "open: the allocation's driver data are not the creator's 10 bytes");
    }
    {
        /* The layout is the library's own query, also on an opened allocation. */
        D3DKMT_LINUX_ALLOCATION_DESC desc;
        memset(&desc, 0xcd, sizeof desc);
        EXPECT_OK(D3DKMTLinuxQueryAllocationDesc(d, p.allocs[0].hAllocation, &desc));
        CHECK(desc.Size == ALLOC_SIZE && desc.DmaBufFd == -1, "LinuxQueryAllocationDesc on an opened allocation: "
              "Size %" PRIu64 ", DmaBufFd %d", (uint64_t)desc.Size, desc.DmaBufFd);
    }
    opener_close(&p);

    /* The rejection table, each from the good state. */
    opener_init(&p, d, h, sizeof runtime4, EXTRA_BYTES);
    p.o.pOpenAllocationInfo2 = NULL;
    expect_open(STATUS_INVALID_PARAMETER, &p, "pOpenAllocationInfo2 NULL");
    opener_init(&p, d, h, sizeof runtime4, EXTRA_BYTES);
    p.o.NumAllocations = 0;
    expect_open(STATUS_INVALID_PARAMETER, &p, "NumAllocations 0");
    opener_init(&p, d, h, sizeof runtime4, EXTRA_BYTES);
    p.o.NumAllocations = 2;
    expect_open(STATUS_INVALID_PARAMETER, &p, "NumAllocations 2 (the resource has 1)");
    opener_init(&p, d, h, sizeof runtime4, EXTRA_BYTES);
    p.o.pPrivateRuntimeData = NULL;
    expect_open(STATUS_INVALID_PARAMETER, &p, "pPrivateRuntimeData NULL");
    opener_init(&p, d, h, sizeof runtime4 + 1, EXTRA_BYTES);
    expect_open(STATUS_INVALID_PARAMETER, &p, "PrivateRuntimeDataSize + 1");
    opener_init(&p, d, h, sizeof runtime4 - 1, EXTRA_BYTES);
    expect_open(STATUS_INVALID_PARAMETER, &p, "PrivateRuntimeDataSize - 1");
    opener_init(&p, d, h, sizeof runtime4, EXTRA_BYTES);
    p.o.pTotalPrivateDriverDataBuffer = NULL;
    expect_open(STATUS_INVALID_PARAMETER, &p, "pTotalPrivateDriverDataBuffer NULL");
    opener_init(&p, d, h, sizeof runtime4, EXTRA_BYTES - 1);
    expect_open(STATUS_NO_MEMORY, &p, "TotalPrivateDriverDataBufferSize - 1");
    opener_init(&p, d, h, sizeof runtime4, 0);
    expect_open(STATUS_NO_MEMORY, &p, "TotalPrivateDriverDataBufferSize 0");
    /* A bigger total buffer is fine; its size is written back as the bytes used. */
    opener_init(&p, d, h, sizeof runtime4, sizeof p.total);
    EXPECT_OK(opener_open(&p));
    CHECK(p.o.TotalPrivateDriverDataBufferSize == EXTRA_BYTES, "open with a 0x400 total buffer: "
          "TotalPrivateDriverDataBufferSize written back as %u, expected %u", p.o.TotalPrivateDriverDataBufferSize,
          EXTRA_BYTES);
    opener_close(&p);
    close_nt(h);
    h = NULL;
    EXPECT_OK(destroy_resource(d, res));
    res = 0;

    /* vkd3d's open of a resource without runtime or driver data: dummy
     * pointers, sizes 0 (facts 2, 5). */
    EXPECT_OK(create_resource1(d, NULL, 0, 0, 1, &res, &alloc));
    EXPECT_OK(share1(res, NULL, GENERIC_ALL, &h));
    if (h) {
        opener_init(&p, d, h, 0, 0);
        EXPECT_OK(opener_open(&p));
        CHECK(p.o.PrivateRuntimeDataSize == 0 && p.o.TotalPrivateDriverDataBufferSize == 0 &&
              p.allocs[0].PrivateDriverDataSize == 0, "open of a resource without data: sizes %u, %u, %u",
              p.o.PrivateRuntimeDataSize, p.o.TotalPrivateDriverDataBufferSize, p.allocs[0].PrivateDriverDataSize);
        CHECK(p.runtime[0] == 0xcd && p.total[0] == 0xcd, "open of a resource without data wrote a buffer");
        CHECK_LOCAL(p.allocs[0].hAllocation, "opened hAllocation");
        opener_close(&p);
    }
out:
    close_nt(h);
    if (res)
        EXPECT_OK(destroy_resource(d, res));
}

/* ------------------------------------------------------------------------ */
/* D3DKMTOpenNtHandleFromName and the name spaces (facts 4.7, 3.1, 3.2)     */
/* ------------------------------------------------------------------------ */

static void test_names(adapter_t *a)
{
    phase("OpenNtHandleFromName");
    D3DKMT_HANDLE d = a->hDevice, res = 0, alloc = 0;
    HANDLE h = NULL, hn = NULL;
    nt_name_t n, nl, x, y;
    char name[128], low[128];
    snprintf(name, sizeof name, "%s", a->base);
    lower(low, sizeof low, name);

    EXPECT_OK(create_test_resource(d, &res, &alloc));
    if (!res)
        return;
    OBJECT_ATTRIBUTES *attr = ntname(&n, "\\BaseNamedObjects\\%s", name);
    OBJECT_ATTRIBUTES *lattr = ntname(&nl, "\\BaseNamedObjects\\%s", low);
    EXPECT_OK(share1(res, attr, STANDARD_RIGHTS_READ, &h));
    {
        D3DKMT_OPENNTHANDLEFROMNAME o;
        memset(&o, 0, sizeof o);
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTOpenNtHandleFromName(&o));
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTOpenNtHandleFromName(NULL));
    }
    expect_name(STATUS_OBJECT_NAME_NOT_FOUND, 0, GENERIC_ALL,
                ntname(&x, "\\BaseNamedObjects\\__winetest_invalid_%d", (int)getpid()), "an unknown name");
    expect_name(STATUS_ACCESS_DENIED, 0, 0, lattr, "the lowercase name with access 0");
    /* GENERIC_ALL is granted although the share had STANDARD_RIGHTS_READ only. */
    EXPECT_OK(open_name(GENERIC_ALL, lattr, &hn));
    CHECK_NT(hn, "OpenNtHandleFromName(GENERIC_ALL)");
    if (hn) {
        expect_open_mode(d, hn, 1, "a handle opened by name with GENERIC_ALL (shared STANDARD_RIGHTS_READ)");
        close_nt(hn);
    }
    if (h)
        expect_open_mode(d, h, 0, "the STANDARD_RIGHTS_READ share itself");
    /* A resource's name is not a sync object's. */
    expect_name(STATUS_OBJECT_TYPE_MISMATCH, 1, GENERIC_ALL, attr, "a resource's name as a sync object");
    /* With OBJ_CASE_INSENSITIVE too; a wrong Length. */
    lattr->Attributes = OBJ_CASE_INSENSITIVE;
    expect_name(STATUS_SUCCESS, 0, GENERIC_ALL, lattr, "the lowercase name with OBJ_CASE_INSENSITIVE");
    lattr->Attributes = 0;
    lattr->Length = sizeof *lattr + 1;
    expect_name(STATUS_INVALID_PARAMETER, 0, GENERIC_ALL, lattr, "OBJECT_ATTRIBUTES with a wrong Length");
    lattr->Length = sizeof *lattr;
    /* \BaseNamedObjects is the global namespace: Global\ finds it, Local\ and a bare name do not. */
    expect_name(STATUS_SUCCESS, 0, GENERIC_ALL, ntname(&x, "Global\\%s", low), "Global\\ of a \\BaseNamedObjects name");
    expect_name(STATUS_OBJECT_NAME_NOT_FOUND, 0, GENERIC_ALL, ntname(&x, "Local\\%s", name),
                "Local\\ of a \\BaseNamedObjects name");
    expect_name(STATUS_OBJECT_NAME_NOT_FOUND, 0, GENERIC_ALL, ntname(&x, "%s", name),
                "the bare name of a \\BaseNamedObjects name");
    close_nt(h);
    h = NULL;

    /* Session paths are the session namespace: Local\, bare, any session number. */
    EXPECT_OK(share1(res, ntname(&y, "\\Sessions\\1\\BaseNamedObjects\\%s_S", name), GENERIC_ALL, &h));
    expect_name(STATUS_SUCCESS, 0, GENERIC_ALL, ntname(&x, "Local\\%s_s", low), "Local\\ of a session path");
    expect_name(STATUS_SUCCESS, 0, GENERIC_ALL, ntname(&x, "%s_S", name), "the bare name of a session path");
    expect_name(STATUS_SUCCESS, 0, GENERIC_ALL, ntname(&x, "\\Sessions\\7\\BaseNamedObjects\\%s_S", low),
                "another session number");
    expect_name(STATUS_OBJECT_NAME_NOT_FOUND, 0, GENERIC_ALL, ntname(&x, "Global\\%s_S", name),
                "Global\\ of a session path");
    expect_name(STATUS_OBJECT_NAME_NOT_FOUND, 0, GENERIC_ALL, ntname(&x, "\\BaseNamedObjects\\%s_S", name),
                "\\BaseNamedObjects of a session path");
    close_nt(h);
    h = NULL;
    /* Global\X is \BaseNamedObjects\X. */
    EXPECT_OK(share1(res, ntname(&y, "Global\\%s_G", name), GENERIC_ALL, &h));
    expect_name(STATUS_SUCCESS, 0, GENERIC_ALL, ntname(&x, "\\BaseNamedObjects\\%s_g", low),
                "\\BaseNamedObjects of a Global\\ name");
    expect_name(STATUS_OBJECT_NAME_NOT_FOUND, 0, GENERIC_ALL, ntname(&x, "Local\\%s_G", name),
                "Local\\ of a Global\\ name");
    close_nt(h);
    h = NULL;
    /* Local\X is not Global\X. */
    EXPECT_OK(share1(res, ntname(&y, "Local\\%s_L", name), GENERIC_ALL, &h));
    expect_name(STATUS_OBJECT_NAME_NOT_FOUND, 0, GENERIC_ALL, ntname(&x, "Global\\%s_L", name),
                "Global\\ of a Local\\ name");
    expect_name(STATUS_SUCCESS, 0, GENERIC_ALL, ntname(&x, "\\Sessions\\1\\BaseNamedObjects\\%s_L", name),
                "the session path of a Local\\ name");
    close_nt(h);
    h = NULL;
    /* Paths that do not exist here (library). */
    expect_name(STATUS_OBJECT_PATH_NOT_FOUND, 0, GENERIC_ALL, ntname(&x, "\\Foo\\%s", name), "\\Foo\\ path");
    expect_name(STATUS_OBJECT_PATH_NOT_FOUND, 0, GENERIC_ALL, ntname(&x, "Local\\a\\%s", name),
                "a \\ inside the object name");

    /* Share, close, open: the name is gone at once, every time. */
    phase("share/close/open-by-name loop");
    int notfound = 0, success = 0, unsuccessful = 0, other = 0;
    NTSTATUS last_other = 0;
    OBJECT_ATTRIBUTES *lp = ntname(&y, "\\BaseNamedObjects\\%s_Loop", name);
    for (int i = 0; i < NAME_LOOPS; i++) {
        HANDLE hs = NULL, ho = NULL;
        NTSTATUS st = share1(res, lp, GENERIC_ALL, &hs);
        if (st != STATUS_SUCCESS) {
            CHECK(0, "loop %d: ShareObjects 0x%08" PRIX32, i, (uint32_t)st);
            break;
        }
        close_nt(hs);
        st = open_name(GENERIC_ALL, lp, &ho);
        if (st == STATUS_OBJECT_NAME_NOT_FOUND)
            notfound++;
        else if (st == STATUS_SUCCESS)
            success++;
        else if (st == STATUS_UNSUCCESSFUL)
            unsuccessful++;
        else {
            other++;
            last_other = st;
        }
        if (ho)
            close(D3DKMTLinuxHandleToFd(ho));
    }
    CHECK(notfound == NAME_LOOPS, "share/close/open loop: %d of %d NOT_FOUND, %d SUCCESS, %d UNSUCCESSFUL, "
          "%d other (last 0x%08" PRIX32 ")", notfound, NAME_LOOPS, success, unsuccessful, other,
          (uint32_t)last_other);
    EXPECT_OK(destroy_resource(d, res));
}

/* ------------------------------------------------------------------------ */
/* Generic access mapping (facts 3.3, 4.10; spec)                           */
/* ------------------------------------------------------------------------ */

static void test_access(adapter_t *a)
{
    phase("access rights");
    D3DKMT_HANDLE d = a->hDevice, res = 0, alloc = 0;
    HANDLE h = NULL;

    EXPECT_OK(create_test_resource(d, &res, &alloc));
    if (!res)
        return;
    static const struct {
        DWORD access;
        int writable;
        const char *what;
    } rmap[] = {
        { GENERIC_READ, 0, "GENERIC_READ" },
        { GENERIC_WRITE, 1, "GENERIC_WRITE" },
        { GENERIC_EXECUTE, 0, "GENERIC_EXECUTE" },
        { GENERIC_ALL, 1, "GENERIC_ALL" },
        { STANDARD_RIGHTS_READ, 0, "STANDARD_RIGHTS_READ" },
        { STANDARD_RIGHTS_READ | SHARED_ALLOCATION_WRITE, 1, "STANDARD_RIGHTS_READ | SHARED_ALLOCATION_WRITE" },
    };
    for (unsigned i = 0; i < sizeof rmap / sizeof rmap[0]; i++) {
        EXPECT_OK(share1(res, NULL, rmap[i].access, &h));
        if (!h)
            continue;
        char what[128];
        snprintf(what, sizeof what, "a resource shared with %s", rmap[i].what);
        expect_open_mode(d, h, rmap[i].writable, what);
        close_nt(h);
    }
    /* Read-only opened, re-shared with GENERIC_ALL: still read-only; the
     * escape refuses it. */
    EXPECT_OK(share1(res, NULL, GENERIC_READ, &h));
    if (h) {
        opener_t p;
        EXPECT_OK(open_exact(d, h, &p));
        close_nt(h);
        h = NULL;
        if (p.o.hResource && p.o.hResource != PRESET) {
            CHECK(lock_writable(d, p.allocs[0].hAllocation) == 0, "a GENERIC_READ open maps writable");
            EXPECT_STATUS(STATUS_ACCESS_DENIED, escape_update(p.o.hResource, runtime4, sizeof runtime4));
            EXPECT_OK(share1(p.o.hResource, NULL, GENERIC_ALL, &h));
            if (h)
                expect_open_mode(d, h, 0, "a read-only opened resource shared again with GENERIC_ALL");
            close_nt(h);
            h = NULL;
            opener_close(&p);
        }
    }
    /* Opened by name with GENERIC_READ from a GENERIC_ALL share: read-only. */
    nt_name_t n;
    OBJECT_ATTRIBUTES *attr = ntname(&n, "\\BaseNamedObjects\\%s_Access", a->base);
    EXPECT_OK(share1(res, attr, GENERIC_ALL, &h));
    if (h) {
        HANDLE hn = NULL;
        EXPECT_OK(open_name(GENERIC_READ, attr, &hn));
        if (hn)
            expect_open_mode(d, hn, 0, "a GENERIC_ALL share opened by name with GENERIC_READ");
        close_nt(hn);
        close_nt(h);
    }
    EXPECT_OK(destroy_resource(d, res));

    if (!a->fences)
        return;
    /* A fence shared alone: GENERIC_READ waits, GENERIC_WRITE signals. */
    static const struct {
        DWORD access;
        int wait, signal;
        const char *what;
    } smap[] = {
        { GENERIC_READ, 1, 0, "GENERIC_READ" },
        { GENERIC_WRITE, 0, 1, "GENERIC_WRITE" },
        { GENERIC_EXECUTE, 0, 0, "GENERIC_EXECUTE" },
        { GENERIC_ALL, 1, 1, "GENERIC_ALL" },
        { STANDARD_RIGHTS_READ, 0, 0, "STANDARD_RIGHTS_READ" },
        { D3DDDI_SYNC_OBJECT_ALL_ACCESS, 1, 1, "D3DDDI_SYNC_OBJECT_ALL_ACCESS" },
    };
    for (unsigned i = 0; i < sizeof smap / sizeof smap[0]; i++) {
        D3DKMT_HANDLE f = 0, o = 0;
        EXPECT_OK(sync2_create(d, D3DDDI_MONITORED_FENCE, SYNC_SHARED_NT, &f, NULL));
        if (!f)
            continue;
        EXPECT_OK(share1(f, NULL, smap[i].access, &h));
        if (h)
            EXPECT_OK(open_sync2(d, h, &o, NULL));
        if (o) {
            NTSTATUS st = sync_wait_now(d, o, 0); /* 0 is reached: never blocks */
            CHECK(st == (smap[i].wait ? STATUS_SUCCESS : STATUS_ACCESS_DENIED),
                  "a fence shared with %s: wait 0x%08" PRIX32 ", expected %s", smap[i].what, (uint32_t)st,
                  smap[i].wait ? "STATUS_SUCCESS" : "STATUS_ACCESS_DENIED");
            st = sync_signal(d, o, 1);
            CHECK(st == (smap[i].signal ? STATUS_SUCCESS : STATUS_ACCESS_DENIED),
                  "a fence shared with %s: signal 0x%08" PRIX32 ", expected %s", smap[i].what, (uint32_t)st,
                  smap[i].signal ? "STATUS_SUCCESS" : "STATUS_ACCESS_DENIED");
            if (st == STATUS_SUCCESS)
                EXPECT_OK(sync_wait_now(d, f, 1)); /* the creator sees the opener's signal */
            EXPECT_OK(sync_destroy(o));
        }
        close_nt(h);
        h = NULL;
        EXPECT_OK(sync_destroy(f));
    }
    /* Opened by name with GENERIC_READ from a GENERIC_ALL share: wait only. */
    {
        D3DKMT_HANDLE f = 0, o = 0;
        HANDLE hn = NULL;
        EXPECT_OK(sync2_create(d, D3DDDI_FENCE, SYNC_SHARED_NT, &f, NULL));
        nt_name_t sn;
        OBJECT_ATTRIBUTES *sattr = ntname(&sn, "\\BaseNamedObjects\\%s_AccessSync", a->base);
        if (f)
            EXPECT_OK(share1(f, sattr, GENERIC_ALL, &h));
        if (h)
            EXPECT_OK(open_sync_name(GENERIC_READ, sattr, &hn));
        if (hn)
            EXPECT_OK(open_sync2(d, hn, &o, NULL));
        if (o) {
            EXPECT_OK(sync_wait_now(d, o, 0));
            EXPECT_STATUS(STATUS_ACCESS_DENIED, sync_signal(d, o, 1));
            EXPECT_OK(sync_destroy(o));
        }
        close_nt(hn);
        close_nt(h);
        h = NULL;
        if (f)
            EXPECT_OK(sync_destroy(f));
    }
}

/* ------------------------------------------------------------------------ */
/* D3DKMTEscape (facts 3.1, 4.8, 5 item 1)                                  */
/* ------------------------------------------------------------------------ */

static void hex(char *out, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", p[i]);
    out[2 * n] = '\0';
}

/* Runs `argv0 escape-child <fd> <LUID> <hex>`; the child checks that handle h
 * holds exactly that runtime data. Returns 1 when the child passed. */
static int run_escape_child(const adapter_t *a, HANDLE h, const char *hexdata)
{
    int cfd = fcntl(D3DKMTLinuxHandleToFd(h), F_DUPFD, 3); /* without FD_CLOEXEC */
    if (cfd < 0) {
        CHECK(0, "F_DUPFD: %s", strerror(errno));
        return 0;
    }
    char fdarg[16], lo[16], hi[16];
    snprintf(fdarg, sizeof fdarg, "%d", cfd);
    snprintf(lo, sizeof lo, "%" PRIu32, (uint32_t)a->info.AdapterLuid.LowPart);
    snprintf(hi, sizeof hi, "%" PRId32, (int32_t)a->info.AdapterLuid.HighPart);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        char *args[] = { (char *)a->argv0, (char *)"escape-child", fdarg, lo, hi, (char *)hexdata, NULL };
        execv("/proc/self/exe", args);
        perror("execv /proc/self/exe");
        _exit(127);
    }
    close(cfd);
    if (pid < 0) {
        CHECK(0, "fork: %s", strerror(errno));
        return 0;
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static int escape_child_main(int fd, LUID luid, const char *hexdata)
{
    who = "escape-child";
    alarm(60);
    D3DKMT_OPENADAPTERFROMLUID oa;
    memset(&oa, 0, sizeof oa);
    oa.AdapterLuid = luid;
    EXPECT_OK(D3DKMTOpenAdapterFromLuid(&oa));
    D3DKMT_HANDLE d = 0;
    if (oa.hAdapter)
        EXPECT_OK(create_device(oa.hAdapter, &d));
    if (!d)
        return 1;
    size_t n = strlen(hexdata) / 2;
    uint8_t want[256];
    for (size_t i = 0; i < n && i < sizeof want; i++) {
        unsigned v = 0;
        sscanf(hexdata + 2 * i, "%2x", &v);
        want[i] = (uint8_t)v;
    }
    HANDLE h = D3DKMTLinuxFdToHandle(fd);
    D3DKMT_QUERYRESOURCEINFOFROMNTHANDLE q;
    EXPECT_OK(query(d, h, NULL, 0, &q));
    CHECK(q.PrivateRuntimeDataSize == n, "child query: PrivateRuntimeDataSize %u, expected %zu",
          q.PrivateRuntimeDataSize, n);
    opener_t p;
    opener_init(&p, d, h, (UINT)n, EXTRA_BYTES);
    EXPECT_OK(opener_open(&p));
    CHECK(p.o.PrivateRuntimeDataSize == n && memcmp(p.runtime, want, n) == 0,
          "child open: the runtime data are not those of the escape");
    opener_close(&p);
    close(fd);
    EXPECT_OK(destroy_device(d));
    EXPECT_OK(close_adapter(oa.hAdapter));
    return failed ? 1 : 0;
}

static void test_escape(adapter_t *a)
{
    phase("Escape");
    D3DKMT_HANDLE d = a->hDevice, res = 0, alloc = 0;
    HANDLE h = NULL;
    D3DKMT_QUERYRESOURCEINFOFROMNTHANDLE q;
    opener_t p;
    static const uint8_t desc6[6] = { 0x11, 0x22, 0x33, 0x44, 0x55, 0x66 };
    char hx[2 * sizeof desc6 + 1];

    EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTEscape(NULL));
    EXPECT_OK(create_test_resource(d, &res, &alloc));
    EXPECT_OK(share1(res, NULL, GENERIC_ALL, &h)); /* shared BEFORE the escape */
    if (!h)
        goto out;
    EXPECT_OK(escape_update(res, desc6, sizeof desc6));
    EXPECT_OK(query(d, h, NULL, 0, &q));
    CHECK(q.PrivateRuntimeDataSize == sizeof desc6, "query after the escape: PrivateRuntimeDataSize %u, "
          "expected %zu", q.PrivateRuntimeDataSize, sizeof desc6);
    opener_init(&p, d, h, sizeof desc6, EXTRA_BYTES);
    EXPECT_OK(opener_open(&p));
    CHECK(memcmp(p.runtime, desc6, sizeof desc6) == 0, "open after the escape: not the escape's runtime data");
    /* The old size is refused now. */
    {
        opener_t old;
        opener_init(&old, d, h, sizeof runtime4, EXTRA_BYTES);
        expect_open(STATUS_INVALID_PARAMETER, &old, "with the runtime size from before the escape");
    }
    /* In another process too. */
    hex(hx, desc6, sizeof desc6);
    CHECK(run_escape_child(a, h, hx), "the child did not see the escape's runtime data");

    /* The escape on an opened (writable) resource updates the same data. */
    if (p.o.hResource && p.o.hResource != PRESET) {
        EXPECT_OK(escape_update(p.o.hResource, runtime4, sizeof runtime4));
        EXPECT_OK(query(d, h, NULL, 0, &q));
        CHECK(q.PrivateRuntimeDataSize == sizeof runtime4, "escape on the opened resource: the creator's handle "
              "reports %u bytes, expected 4", q.PrivateRuntimeDataSize);
    }
    opener_close(&p);

    /* Size 0 clears it. */
    EXPECT_OK(escape_update(res, NULL, 0));
    EXPECT_OK(query(d, h, NULL, 0, &q));
    CHECK(q.PrivateRuntimeDataSize == 0, "query after a 0-byte escape: PrivateRuntimeDataSize %u",
          q.PrivateRuntimeDataSize);
    opener_init(&p, d, h, 0, EXTRA_BYTES);
    EXPECT_OK(opener_open(&p));
    opener_close(&p);
    CHECK(run_escape_child(a, h, ""), "the child did not see the cleared runtime data");

    /* Rejections. */
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, escape_update(PRESET, desc6, sizeof desc6));
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, escape_update(0, desc6, sizeof desc6));
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, escape_update(alloc, desc6, sizeof desc6));
    {
        uint8_t *big = calloc(1, MAX_ESCAPE_DATA + 1);
        if (big) {
            EXPECT_OK(escape_update(res, big, MAX_ESCAPE_DATA));
            EXPECT_STATUS(STATUS_INVALID_PARAMETER, escape_update(res, big, MAX_ESCAPE_DATA + 1));
            free(big);
        }
    }
    {
        /* differs from Wine: Wine answers an unknown escape with STATUS_NO_MEMORY; Windows passes it to
         * the driver. */
        D3DKMT_ESCAPE e;
        memset(&e, 0, sizeof e);
        e.Type = D3DKMT_ESCAPE_DRIVERPRIVATE;
        e.pPrivateDriverData = (void *)desc6;
        e.PrivateDriverDataSize = sizeof desc6;
        e.hContext = res;
        EXPECT_STATUS(STATUS_NOT_SUPPORTED, D3DKMTEscape(&e));
        e.Type = (D3DKMT_ESCAPETYPE)0x80000001u; /* SET_PRESENT_RECT_WINE */
        EXPECT_STATUS(STATUS_NOT_SUPPORTED, D3DKMTEscape(&e));
    }
    /* hAdapter, hDevice and Flags are ignored. */
    {
        D3DKMT_ESCAPE e;
        memset(&e, 0, sizeof e);
        e.hAdapter = PRESET;
        e.hDevice = PRESET;
        e.Flags.Value = 0xffffffffu;
        e.Type = D3DKMT_ESCAPE_UPDATE_RESOURCE_WINE;
        e.pPrivateDriverData = (void *)runtime4;
        e.PrivateDriverDataSize = sizeof runtime4;
        e.hContext = res;
        EXPECT_OK(D3DKMTEscape(&e));
    }
out:
    close_nt(h);
    if (res)
        EXPECT_OK(destroy_resource(d, res));
}

/* ------------------------------------------------------------------------ */
/* Per adapter                                                              */
/* ------------------------------------------------------------------------ */

/* Whether the running kernel is at least major.minor (uname). */
static int kernel_at_least(int major, int minor)
{
    struct utsname name;
    int have_major = 0, have_minor = 0;
    if (uname(&name) != 0 || sscanf(name.release, "%d.%d", &have_major, &have_minor) != 2)
        return 0;
    return have_major > major || (have_major == major && have_minor >= minor);
}

static void test_adapter(const char *argv0, unsigned index, const D3DKMT_ADAPTERINFO *ai)
{
    int failed_before = failed;
    adapter_t a;
    memset(&a, 0, sizeof a);
    a.index = index;
    a.argv0 = argv0;
    a.info = *ai;
    a.info_ok = query_linux_info(ai->hAdapter, &a.li) == STATUS_SUCCESS;
    check(a.info_ok, "adapter %u: QueryAdapterInfo(KMTQAITYPE_LINUX_DRM_INFO) failed", index);
    a.fences = a.info_ok && (a.li.Flags & (D3DKMT_LINUX_ADAPTER_SOFTWARE | D3DKMT_LINUX_ADAPTER_SYNCOBJ_TIMELINE));
    if (a.info_ok) {
        /* Kernel-side async waits need DRM syncobjs: never on the software adapter; on a DRM
         * adapter with syncobjs exactly when the kernel has DRM_IOCTL_SYNCOBJ_EVENTFD (6.6). */
        UINT flags = a.li.Flags;
        int eventfd_flag = (flags & D3DKMT_LINUX_ADAPTER_SYNCOBJ_EVENTFD) != 0;
        check(!eventfd_flag || ((flags & D3DKMT_LINUX_ADAPTER_SYNCOBJ) && !(flags & D3DKMT_LINUX_ADAPTER_SOFTWARE)),
              "adapter %u (%s): SYNCOBJ_EVENTFD without DRM syncobjs", index, a.li.DriverName);
        if ((flags & D3DKMT_LINUX_ADAPTER_SYNCOBJ) && kernel_at_least(6, 6))
            check(eventfd_flag, "adapter %u (%s): DRM syncobjs on Linux 6.6+ but no SYNCOBJ_EVENTFD", index,
                  a.li.DriverName);
    }
    snprintf(a.base, sizeof a.base, "__WineTest_D3DKMT_%d_%u", (int)getpid(), index);

    phase("device");
    EXPECT_OK(create_device(ai->hAdapter, &a.hDevice));
    CHECK_LOCAL(a.hDevice, "hDevice");
    if (a.hDevice) {
        test_basics(&a);
        test_handles(&a);
        test_sync_v1(&a);
        test_sync_v2(&a);
        test_sync_sharing(&a);
        test_keyed_mutex(&a);
        test_create_allocation(&a);
        test_global_resource(&a);
        test_destroy_allocation(&a);
        test_share_objects(&a);
        test_query(&a);
        test_open(&a);
        test_names(&a);
        test_access(&a);
        test_escape(&a);
        phase("device");
        EXPECT_OK(destroy_device(a.hDevice));
    }
    int failures = failed - failed_before;
    printf("adapter %u: %s %s: fences %s: %s", index, a.info_ok ? a.li.DriverName : "?",
           a.info_ok && a.li.RenderNode[0] ? a.li.RenderNode : "-", a.fences ? "yes" : "no (skipped)",
           failures ? "FAILED" : "ok");
    if (failures)
        printf(" (%d failed)", failures);
    printf("\n");
}

/* Things the library may set up once, on first use (a name thread, the list of
 * adapters keyed mutexes take a timeline from), done before the baseline. */
static void warm_up(const D3DKMT_ADAPTERINFO *adapters, ULONG count)
{
    for (ULONG i = 0; i < count; i++) {
        D3DKMT_HANDLE d = 0, res = 0, alloc = 0, km = 0;
        HANDLE h = NULL, hn = NULL;
        nt_name_t n;
        if (create_device(adapters[i].hAdapter, &d) != STATUS_SUCCESS)
            continue;
        if (km_create_ex(0, 0, 1, NULL, 0, &km, NULL) == STATUS_SUCCESS)
            km_destroy(km);
        if (create_test_resource(d, &res, &alloc) == STATUS_SUCCESS) {
            OBJECT_ATTRIBUTES *attr = ntname(&n, "\\BaseNamedObjects\\__WineTest_D3DKMT_%d_warm", (int)getpid());
            if (share1(res, attr, GENERIC_ALL, &h) == STATUS_SUCCESS) {
                if (open_name(GENERIC_ALL, attr, &hn) == STATUS_SUCCESS)
                    close(D3DKMTLinuxHandleToFd(hn));
                close(D3DKMTLinuxHandleToFd(h));
            }
            destroy_resource(d, res);
        }
        destroy_device(d);
    }
}

int main(int argc, char **argv)
{
    if (argc == 6 && strcmp(argv[1], "escape-child") == 0) {
        LUID luid;
        luid.LowPart = (DWORD)strtoul(argv[3], NULL, 10);
        luid.HighPart = (LONG)strtol(argv[4], NULL, 10);
        return escape_child_main(atoi(argv[2]), luid, argv[5]);
    }
    test_start(argc, argv, PHASE_SECONDS);
    ULONG count = 0;
    D3DKMT_ADAPTERINFO *adapters = enum_adapters(&count);
    for (ULONG i = 0; i < count; i++)
        CHECK_LOCAL(adapters[i].hAdapter, "EnumAdapters2 hAdapter");

    phase("warm-up");
    warm_up(adapters, count);
    /* The library's name thread closes a retired name's sockets on its own time. */
    int fds_before, threads_before;
    quiet_counts(&fds_before, &threads_before);

    for (ULONG i = 0; i < count; i++)
        test_adapter(argv[0], (unsigned)i, &adapters[i]);

    phase("baseline");
    int fds_after, threads_after;
    settle(fds_before, threads_before, &fds_after, &threads_after);
    CHECK(fds_after == fds_before, "open descriptors: %d before the tests, %d after", fds_before, fds_after);
    CHECK(threads_after == threads_before, "threads: %d before the tests, %d after", threads_before, threads_after);
    alarm(0);

    close_adapters(adapters, count);
    return test_finish();
}
