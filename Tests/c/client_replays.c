/*
 * client_replays.c - replays, through the C ABI of libd3dkmt only, the exact
 * D3DKMT call sequences of the three clients that share resources on Linux:
 * DXVK (d3d11), vkd3d-proton (d3d12) and Wine's Vulkan layer
 * (dlls/win32u/vulkan.c). Each step is checked the way that client checks it
 * and cites the client file and function it comes from. Nothing here is the
 * clients' code: the calls, fields, sizes and statuses were gathered from
 * their sources and written down anew.
 *
 * Build and run:
 *     cc -std=c11 -o client_replays client_replays.c $(pkg-config --cflags --libs d3dkmt)
 *     ./client_replays
 *
 * For every adapter D3DKMTEnumAdapters2 reports, four scenarios, each with
 * two real processes: this one and a copy of itself re-executed as
 *     client_replays <mode> <LUID low> <LUID high> <caps> <mode arguments...>
 * that inherits copies of the NT handles (file descriptors):
 *
 *   1. dxvk: the "Vulkan layer" side creates a 256x256 ARGB8888 shared
 *      allocation, DXVK opens it (initKmtHandles), stores its d3d11 runtime
 *      descriptor with D3DKMTEscape (ExportImageInfo), makes a keyed mutex
 *      with its fence sync object (DxvkKeyedMutex), runs d3d11_initializer's
 *      AcquireSync(0, 0)/ReleaseSync(0) and shares [resource, mutex, sync]
 *      by name (CreateSharedHandle). The child opens it the way
 *      OpenSharedResource1 does, by handle and by the lowercased name, and
 *      the two processes hand the keyed mutex back and forth (keys 0 -> 1
 *      -> 0) checking the data written through D3DKMTLock2 and the fence
 *      values; a contended acquire with DXVK's wrapped timeout returns
 *      STATUS_TIMEOUT.
 *   2. vkd3d: d3d12_device_open_kmt (the adapter is closed at once), a
 *      committed resource exported with a 0x108 d3d12 descriptor, shared
 *      with GENERIC_ALL (by name) and with DXGI_SHARED_RESOURCE_READ|WRITE,
 *      opened by the child as d3d12_device_open_resource_descriptor does; a
 *      shared monitored fence signalled from the CPU in both directions.
 *   3. wine: Wine's Vulkan layer wraps memory the runtime made itself (a
 *      sealed memfd on the software adapter, another allocation's dma-buf on
 *      DRM adapters), shares it by a session name; the importer opens it by
 *      name and by handle and reads and writes the bytes through an mmap of
 *      the exported dma-buf. Semaphores: a DRM timeline syncobj imported
 *      with D3DKMTLinuxImportSyncObjectFd (STATUS_NOT_SUPPORTED on the
 *      software adapter, where a fence made by CreateSynchronizationObject2
 *      stands in), shared by name and opened by name.
 *   4. dxvk-kmt: scenario 1 with global (KMT) handles, a MISC_SHARED texture
 *      without MISC_SHARED_NTHANDLE: the layer's memory and semaphore get
 *      global handles (CreateShared alone, Shared alone), DXVK opens both by
 *      value, makes a keyed mutex with a global hSharedHandle and stores both
 *      globals in the descriptor; the child gets the texture's value on its
 *      command line (GetSharedHandle), queries it with a 0x108 buffer, opens
 *      it, reads mutex_handle and sync_handle from the descriptor, opens them
 *      with D3DKMTOpenKeyedMutex (v1) and D3DKMTOpenSynchronizationObject,
 *      and the keyed mutex goes back and forth; once every local reference is
 *      gone, the values no longer open.
 *
 * On an adapter without timeline syncobjs (vgem) fence sync objects are
 * STATUS_NOT_SUPPORTED: that status is checked and the fence parts are
 * skipped (scenario 1 then bundles a D3DDDI_SYNCHRONIZATION_MUTEX sync object
 * with its keyed mutex, since a fence cannot exist there).
 *
 * Every returned local D3DKMT handle is classified as Wine does:
 * (h & 0xc0000000) != 0 and (h & 0x3f) == 0 (2 for a global handle);
 * every NT handle as DXVK's OpenSharedResource1 does: (h & 0xc0000000) == 0.
 * The parent counts its descriptors and threads before (after a warm-up that
 * starts the library's name thread) and after: they must come back.
 *
 * Output: one line per adapter and scenario on stdout, failure details on
 * stderr, and as the last line "N passed, M failed". The exit status is 0
 * only if nothing failed.
 */
#define _GNU_SOURCE
#include "support/kmt_test.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/dma-buf.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Constants the clients use                                                */
/* ------------------------------------------------------------------------ */

#define RP_DRM_FORMAT_ARGB8888         0x34325241u /* fourcc 'AR24' */
#define RP_DXGI_SHARED_RESOURCE_READ   0x80000000u
#define RP_DXGI_SHARED_RESOURCE_WRITE  0x00000001u
#define RP_DXGI_FORMAT_B8G8R8A8_UNORM  87u
#define RP_D3D11_DIMENSION_TEXTURE2D   3u
#define RP_D3D11_BIND_SHADER_RESOURCE  0x8u
#define RP_D3D11_BIND_RENDER_TARGET    0x20u
#define RP_D3D11_MISC_SHARED_KEYEDMUTEX 0x100u
#define RP_D3D11_MISC_SHARED_NTHANDLE  0x800u
#define RP_D3D12_DIMENSION_BUFFER      1u
#define RP_D3D12_LAYOUT_ROW_MAJOR      1u
#define RP_INVALID_HANDLE              0x1eadbeedu /* Wine's test sentinel: neither local nor global */
#define RP_INFINITE                    0xFFFFFFFFu

#define TEX_WIDTH      256u
#define TEX_HEIGHT     256u
#define TEX_STRIDE     (TEX_WIDTH * 4u)
#define TEX_SIZE       ((UINT64)TEX_STRIDE * TEX_HEIGHT)
#define BUFFER_SIZE    65536u
#define HANDOFF_BYTES  4096u      /* the part of the texture the keyed-mutex rounds write */
#define KM_ROUNDS      8u
#define FENCE_ROUNDS   4u
#define WAIT_MS        15000      /* the only time bound: a wait or timeout must end within 15 s */
#define ONE_SECOND_REL (-10000000LL) /* an NT relative timeout of 1 s */
#define ACQUIRE_TRIES  15         /* 1 s acquires retried on STATUS_TIMEOUT (a slow peer) */
#define PHASE_SECONDS  120
#define CHILD_SECONDS  90

#define CAP_SOFTWARE   1
#define CAP_TIMELINES  2
#define CAP_FENCES     4

/* ------------------------------------------------------------------------ */
/* Runtime descriptors (layouts from DXVK util_gdi.h / vkd3d vkd3d_d3dkmt.h) */
/* ------------------------------------------------------------------------ */

typedef struct {
    UINT size;          /* the whole descriptor's size: 0x68 for d3d11 (also inside d3d12) */
    UINT version;       /* 4 = D3D11, 0 = D3D12 (or 4 with simultaneous access), 1 = D3D9 */
    UINT width, height, format;
    UINT unknown_0, unknown_1;
    UINT keyed_mutex;
    UINT mutex_handle;  /* global handles: 0 when NT-shared */
    UINT sync_handle;
    UINT nt_shared;
    UINT unknown_2, unknown_3, unknown_4;
} rp_dxgi_desc;

typedef struct {
    UINT Width, Height, MipLevels, ArraySize, Format;
    UINT SampleCount, SampleQuality;
    UINT Usage, BindFlags, CPUAccessFlags, MiscFlags;
} rp_texture2d_desc;

typedef struct {
    rp_dxgi_desc dxgi;
    UINT dimension;
    union {
        rp_texture2d_desc texture2d;
        UINT raw[11];
    } u;
} rp_d3d11_desc;

typedef struct {
    UINT Dimension;
    UINT Padding;
    UINT64 Alignment;
    UINT64 Width;
    UINT Height;
    USHORT DepthOrArraySize;
    USHORT MipLevels;
    UINT Format;
    UINT SampleCount, SampleQuality;
    UINT Layout;
    UINT Flags;
    UINT SamplerFeedbackMipRegion[3];
} rp_d3d12_resource_desc1;

typedef struct {
    rp_d3d11_desc d3d11;
    UINT unknown_5[4];
    UINT resource_size;
    UINT unknown_6[7];
    UINT resource_align;
    UINT unknown_7[9];
    union {
        rp_d3d12_resource_desc1 desc1;
        UINT raw[16];
    } u;
    UINT64 unknown_8;
} rp_d3d12_desc;

_Static_assert(sizeof(rp_dxgi_desc) == 0x38, "dxgi header is 0x38 bytes");
_Static_assert(sizeof(rp_d3d11_desc) == 0x68, "d3d11 descriptor is 0x68 bytes");
_Static_assert(sizeof(rp_d3d12_resource_desc1) == 64, "D3D12_RESOURCE_DESC1 is 64 bytes");
_Static_assert(offsetof(rp_d3d12_desc, u) == 0xc0, "d3d12 resource desc at 0xc0");
_Static_assert(sizeof(rp_d3d12_desc) == 0x108, "d3d12 descriptor is 0x108 bytes");

/* SECURITY_ATTRIBUTES: DXVK and vkd3d put a pointer to this (not to the
 * descriptor inside it) in OBJECT_ATTRIBUTES.SecurityDescriptor. */
typedef struct {
    DWORD nLength;
    void *lpSecurityDescriptor;
    BOOL bInheritHandle;
} rp_security_attributes;

/* ------------------------------------------------------------------------ */
/* House keeping                                                            */
/* ------------------------------------------------------------------------ */

/* Wine win32u d3dkmt.c / tests check_d3dkmt_local: a local handle has a high
 * bit and its low 6 bits are 0 (a global one ends in 2). */
static void check_local(D3DKMT_HANDLE h, const char *what)
{
    check(h != 0 && (h & 0xc0000000u) != 0 && (h & 0x3fu) == 0,
          "%s: 0x%08" PRIX32 " is not a local D3DKMT handle%s", what, (uint32_t)h,
          (h & 0x3fu) == 2 ? " (it is a global one)" : "");
}

/* DXVK src/d3d11/d3d11_device.cpp OpenSharedResource1: an NT handle has no
 * bit of 0xc0000000. */
static void check_nt(HANDLE h, const char *what)
{
    uintptr_t v = (uintptr_t)h;
    check(h != NULL && (v & 0xc0000000u) == 0, "%s: %p is not an NT handle", what, h);
}

/* ------------------------------------------------------------------------ */
/* Small wrappers                                                           */
/* ------------------------------------------------------------------------ */

/* DestroyAllocation (v1) of a whole resource, as DXVK and vkd3d free it. */
static NTSTATUS destroy_resource_v1(D3DKMT_HANDLE hDevice, D3DKMT_HANDLE hResource)
{
    D3DKMT_DESTROYALLOCATION d;
    memset(&d, 0, sizeof d);
    d.hDevice = hDevice;
    d.hResource = hResource;
    return D3DKMTDestroyAllocation(&d);
}

/* vkGetMemoryWin32HandleKHR / vkGetSemaphoreWin32HandleKHR return a duplicate
 * of the NT handle Wine's layer keeps (DuplicateHandle = F_DUPFD_CLOEXEC). */
static HANDLE duplicate(HANDLE h)
{
    int fd = fcntl(D3DKMTLinuxHandleToFd(h), F_DUPFD_CLOEXEC, 3);
    check(fd >= 0, "F_DUPFD_CLOEXEC: %s", strerror(errno));
    return fd >= 0 ? D3DKMTLinuxFdToHandle(fd) : NULL;
}

static void fill_desc(D3DKMT_LINUX_ALLOCATION_DESC *d, UINT width, UINT height, UINT fourcc, UINT64 size,
                      int dmabuf)
{
    memset(d, 0, sizeof *d);
    d->Version = D3DKMT_LINUX_ALLOCATION_DESC_VERSION;
    d->Size = size;
    d->Width = width;
    d->Height = height;
    d->Stride = fourcc ? width * 4u : 0;
    d->Fourcc = fourcc;
    d->Modifier = 0; /* DRM_FORMAT_MOD_LINEAR */
    d->DmaBufFd = dmabuf;
}

/* How the Linux library expects a runtime to create memory: one allocation
 * whose private driver data is exactly a D3DKMT_LINUX_ALLOCATION_DESC, no
 * runtime data, no resource driver data. shared != 0 sets CreateResource |
 * CreateShared | NtSecuritySharing (what Wine's d3dkmt_create_resource does
 * for an NT-shared export); 0 makes a plain allocation without a resource. */
static NTSTATUS create_memory(D3DKMT_HANDLE hDevice, const D3DKMT_LINUX_ALLOCATION_DESC *desc, int shared,
                              D3DKMT_HANDLE *phResource, D3DKMT_HANDLE *phAllocation)
{
    D3DKMT_LINUX_ALLOCATION_DESC d = *desc;
    D3DDDI_ALLOCATIONINFO2 info;
    D3DKMT_CREATEALLOCATION ca;
    memset(&info, 0, sizeof info);
    memset(&ca, 0, sizeof ca);
    info.pPrivateDriverData = &d;
    info.PrivateDriverDataSize = sizeof d;
    ca.hDevice = hDevice;
    ca.hGlobalShare = RP_INVALID_HANDLE;
    ca.pPrivateRuntimeData = NULL;
    ca.PrivateRuntimeDataSize = 0;
    ca.pPrivateDriverData = NULL;
    ca.PrivateDriverDataSize = 0;
    ca.NumAllocations = 1;
    ca.pAllocationInfo2 = &info;
    ca.Flags.CreateResource = shared ? 1 : 0;
    ca.Flags.CreateShared = shared ? 1 : 0;
    ca.Flags.NtSecuritySharing = shared ? 1 : 0;
    NTSTATUS st = D3DKMTCreateAllocation2(&ca);
    *phResource = st == STATUS_SUCCESS ? ca.hResource : 0;
    *phAllocation = st == STATUS_SUCCESS ? info.hAllocation : 0;
    if (st == STATUS_SUCCESS) {
        check(ca.hGlobalShare == 0, "CreateAllocation2: hGlobalShare 0x%08" PRIX32 ", expected 0 (NT sharing)",
              (uint32_t)ca.hGlobalShare);
        if (shared)
            check_local(ca.hResource, "CreateAllocation2 hResource");
        check_local(info.hAllocation, "CreateAllocation2 hAllocation");
    }
    return st;
}

/* A sync object from D3DKMTCreateSynchronizationObject2; shared sets
 * Shared | NtSecuritySharing. */
static NTSTATUS rp_sync_create(D3DKMT_HANDLE hDevice, D3DDDI_SYNCHRONIZATIONOBJECT_TYPE type, int shared,
                               D3DKMT_HANDLE *ph)
{
    D3DKMT_HANDLE sharedHandle = 0;
    NTSTATUS st = sync_create_ex(hDevice, type, shared ? SYNC_SHARED_NT : 0, 0, ph, NULL, &sharedHandle);
    if (st == STATUS_SUCCESS) {
        check_local(*ph, "CreateSynchronizationObject2 hSyncObject");
        /* NT sharing makes no global handle; without Shared, Windows does not write SharedHandle. */
        if (shared)
            check(sharedHandle == 0, "CreateSynchronizationObject2 Shared | NtSecuritySharing: SharedHandle 0x%08"
                  PRIX32 ", expected 0", (uint32_t)sharedHandle);
    }
    return st;
}

static NTSTATUS rp_sync_open1(HANDLE h, D3DKMT_HANDLE *ph)
{
    NTSTATUS st = sync_open1(h, ph);
    if (st == STATUS_SUCCESS)
        check_local(*ph, "OpenSyncObjectFromNtHandle hSyncObject");
    return st;
}

/* Flags preset to Shared | NtSecuritySharing: the call writes Flags 0. */
static NTSTATUS rp_sync_open2(D3DKMT_HANDLE hDevice, HANDLE h, D3DKMT_HANDLE *ph)
{
    UINT flags = 0;
    NTSTATUS st = sync_open2_ex(hDevice, h, SYNC_SHARED_NT, ph, NULL, &flags);
    if (st == STATUS_SUCCESS) {
        check_local(*ph, "OpenSyncObjectFromNtHandle2 hSyncObject");
        check(flags == 0, "OpenSyncObjectFromNtHandle2: Flags 0x%x written, expected 0", flags);
    }
    return st;
}

/* D3DKMTWaitForSynchronizationObjectFromCpu, bounded: through an eventfd
 * that must become readable within WAIT_MS (else STATUS_TIMEOUT). */
static NTSTATUS rp_sync_wait(D3DKMT_HANDLE hDevice, D3DKMT_HANDLE h, UINT64 value)
{
    return sync_wait_bounded(hDevice, h, value, WAIT_MS);
}

/* DXVK src/dxvk/dxvk_image.cpp DxvkKeyedMutex AcquireSync: the timeout is the
 * DWORD milliseconds times -10000 in 32-bit unsigned arithmetic, zero-extended
 * into QuadPart. */
static LONGLONG dxvk_timeout(uint32_t ms)
{
    uint32_t t = ms * (uint32_t)-10000;
    return (LONGLONG)(uint64_t)t;
}

/* D3DKMTAcquireKeyedMutex (v1): DXVK always passes a timeout. */
static NTSTATUS rp_km_acquire(D3DKMT_HANDLE h, UINT64 key, LONGLONG quad, UINT64 *pFence)
{
    return km_acquire_ex(1, h, key, quad, UINT64_MAX, pFence, NULL, 0);
}

static NTSTATUS rp_km_release(D3DKMT_HANDLE h, UINT64 key, UINT64 fence)
{
    return km_release_ex(1, h, key, fence, NULL, 0);
}

/* ------------------------------------------------------------------------ */
/* Names and attributes                                                     */
/* ------------------------------------------------------------------------ */

static unsigned name_counter;

/* `\Sessions\1\BaseNamedObjects\<unique>`: the session path DXVK, vkd3d and
 * Wine prefix to an application's name. */
static void session_name(char *buf, size_t size, const char *tag, unsigned adapter)
{
    snprintf(buf, size, "\\Sessions\\1\\BaseNamedObjects\\D3DKMTReplay-%s-%d-%u-%u", tag, (int)getpid(), adapter,
             ++name_counter);
}

static NTSTATUS open_by_name(const char *name, ULONG attributes, DWORD access, HANDLE *ph)
{
    nt_name_t n;
    return open_name(access, make_attributes(&n, name, attributes, NULL), ph);
}

static NTSTATUS open_sync_by_name(const char *name, ULONG attributes, DWORD access, HANDLE *ph)
{
    nt_name_t n;
    return open_sync_name(access, make_attributes(&n, name, attributes, NULL), ph);
}

/* Once the last copy of the shared handle is closed, the name is gone. */
static void check_retired(const char *name, int sync)
{
    HANDLE h = NULL;
    NTSTATUS st = sync ? open_sync_by_name(name, OBJ_CASE_INSENSITIVE, GENERIC_ALL, &h)
                       : open_by_name(name, OBJ_CASE_INSENSITIVE, GENERIC_ALL, &h);
    check(st == STATUS_OBJECT_NAME_NOT_FOUND, "%s after its last handle closed: open by name returned 0x%08"
          PRIX32 ", expected STATUS_OBJECT_NAME_NOT_FOUND", name, (uint32_t)st);
    if (h)
        close(D3DKMTLinuxHandleToFd(h));
}

/* ------------------------------------------------------------------------ */
/* Opening resources                                                        */
/* ------------------------------------------------------------------------ */

typedef struct {
    D3DKMT_HANDLE hResource, hAllocation, hKeyedMutex, hSyncObject;
    UINT runtimeSize;           /* PrivateRuntimeDataSize written back */
    UINT totalSize;             /* TotalPrivateDriverDataBufferSize written back */
    UINT kmSize;                /* KeyedMutexPrivateRuntimeDataSize written back */
} opened_t;

/* D3DKMTOpenResourceFromNtHandle with NumAllocations 1 and the given runtime
 * buffer and size; the total driver data buffer is a 1-byte dummy of size 0
 * (DXVK and vkd3d); no keyed mutex data. The out handles are preset to
 * Wine's sentinel so that a call that leaves them is seen. */
static NTSTATUS open_resource(D3DKMT_HANDLE hDevice, HANDLE h, void *runtime, UINT runtimeSize, opened_t *o)
{
    static uint8_t dummy;
    D3DDDI_OPENALLOCATIONINFO2 alloc;
    D3DKMT_OPENRESOURCEFROMNTHANDLE op;
    memset(&alloc, 0, sizeof alloc);
    memset(&op, 0, sizeof op);
    memset(o, 0, sizeof *o);
    op.hDevice = hDevice;
    op.hNtHandle = h;
    op.NumAllocations = 1;
    op.pOpenAllocationInfo2 = &alloc;
    op.PrivateRuntimeDataSize = runtimeSize;
    op.pPrivateRuntimeData = runtime ? runtime : &dummy;
    op.ResourcePrivateDriverDataSize = 0;
    op.pResourcePrivateDriverData = NULL;
    op.TotalPrivateDriverDataBufferSize = 0;
    op.pTotalPrivateDriverDataBuffer = &dummy;
    op.hResource = RP_INVALID_HANDLE;
    op.hKeyedMutex = RP_INVALID_HANDLE;
    op.hSyncObject = RP_INVALID_HANDLE;
    op.pKeyedMutexPrivateRuntimeData = NULL;
    op.KeyedMutexPrivateRuntimeDataSize = 0;
    NTSTATUS st = D3DKMTOpenResourceFromNtHandle(&op);
    if (st != STATUS_SUCCESS)
        return st;
    o->hResource = op.hResource;
    o->hAllocation = alloc.hAllocation;
    o->hKeyedMutex = op.hKeyedMutex;
    o->hSyncObject = op.hSyncObject;
    o->runtimeSize = op.PrivateRuntimeDataSize;
    o->totalSize = op.TotalPrivateDriverDataBufferSize;
    o->kmSize = op.KeyedMutexPrivateRuntimeDataSize;
    check_local(op.hResource, "OpenResourceFromNtHandle hResource");
    check_local(alloc.hAllocation, "OpenResourceFromNtHandle pOpenAllocationInfo2[0].hAllocation");
    check(alloc.PrivateDriverDataSize == 0, "OpenResourceFromNtHandle: allocation PrivateDriverDataSize %u, "
          "expected 0 (the creator gave only the Linux descriptor)", alloc.PrivateDriverDataSize);
    check(op.TotalPrivateDriverDataBufferSize == 0, "OpenResourceFromNtHandle: TotalPrivateDriverDataBufferSize "
          "%u written back, expected 0", op.TotalPrivateDriverDataBufferSize);
    if (op.hKeyedMutex)
        check_local(op.hKeyedMutex, "OpenResourceFromNtHandle hKeyedMutex");
    if (op.hSyncObject)
        check_local(op.hSyncObject, "OpenResourceFromNtHandle hSyncObject");
    return st;
}

/* DXVK src/dxvk/dxvk_memory.cpp initKmtHandles / vkd3d libs/vkd3d/d3dkmt.c
 * d3d12_resource_open_export_kmt: the exporter opens its own memory's NT
 * handle with dummies of size 0; a bundled mutex or sync is "unexpected". */
static void open_export(D3DKMT_HANDLE hDevice, HANDLE layer, opened_t *o, const char *client)
{
    HANDLE h = duplicate(layer);
    NTSTATUS st = open_resource(hDevice, h, NULL, 0, o);
    check(st == STATUS_SUCCESS, "%s: OpenResourceFromNtHandle of its own export (sizes 0, dummy buffers) "
          "returned 0x%08" PRIX32, client, (uint32_t)st);
    if (st == STATUS_SUCCESS) {
        check(o->hKeyedMutex == 0 && o->hSyncObject == 0, "%s: the export open returned keyed mutex 0x%08" PRIX32
              " and sync 0x%08" PRIX32 ", expected 0 and 0", client, (uint32_t)o->hKeyedMutex,
              (uint32_t)o->hSyncObject);
        check(o->runtimeSize == 0, "%s: empty runtime data opened as %u bytes", client, o->runtimeSize);
    }
    close_handle(h, "vkGetMemoryWin32HandleKHR duplicate");
}

static void check_layout(D3DKMT_HANDLE hDevice, D3DKMT_HANDLE hAllocation, UINT width, UINT height, UINT fourcc,
                         UINT64 size, const char *what)
{
    D3DKMT_LINUX_ALLOCATION_DESC d;
    memset(&d, 0xcd, sizeof d);
    NTSTATUS st = D3DKMTLinuxQueryAllocationDesc(hDevice, hAllocation, &d);
    check(st == STATUS_SUCCESS, "%s: D3DKMTLinuxQueryAllocationDesc returned 0x%08" PRIX32, what, (uint32_t)st);
    if (st != STATUS_SUCCESS)
        return;
    check(d.Version == D3DKMT_LINUX_ALLOCATION_DESC_VERSION && d.Size == size && d.Width == width &&
          d.Height == height && d.Fourcc == fourcc && d.Modifier == 0 && d.DmaBufFd == -1 &&
          (fourcc == 0 || d.Stride == width * 4u),
          "%s: layout v%u size %" PRIu64 " %ux%u stride %u fourcc 0x%08x modifier 0x%" PRIx64 " fd %d, expected "
          "size %" PRIu64 " %ux%u fourcc 0x%08x linear fd -1", what, d.Version, (uint64_t)d.Size, d.Width, d.Height,
          d.Stride, d.Fourcc, (uint64_t)d.Modifier, d.DmaBufFd, (uint64_t)size, width, height, fourcc);
}

static uint8_t round_byte(UINT64 value, size_t i)
{
    return (uint8_t)(value * 7u + i * 13u + (i >> 8));
}

static void write_round(uint8_t *p, UINT64 value)
{
    memcpy(p, &value, sizeof value);
    for (size_t i = sizeof value; i < HANDOFF_BYTES; i++)
        p[i] = round_byte(value, i);
}

/* 1 if the handoff region holds `value`'s pattern. */
static int holds_round(const uint8_t *p, UINT64 value)
{
    UINT64 word;
    memcpy(&word, p, sizeof word);
    if (word != value)
        return 0;
    for (size_t i = sizeof value; i < HANDOFF_BYTES; i++) {
        if (p[i] != round_byte(value, i))
            return 0;
    }
    return 1;
}

static uint8_t buffer_byte(unsigned seed, size_t i)
{
    return (uint8_t)((i * 131u + seed * 17u) ^ (i >> 9));
}

static size_t first_mismatch(const uint8_t *p, size_t from, size_t to, unsigned seed)
{
    for (size_t i = from; i < to; i++) {
        if (p[i] != buffer_byte(seed, i))
            return i;
    }
    return to;
}

static void fill_buffer(uint8_t *p, size_t from, size_t to, unsigned seed)
{
    for (size_t i = from; i < to; i++)
        p[i] = buffer_byte(seed, i);
}

/* CPU access to an exported dma-buf is bracketed by DMA_BUF_IOCTL_SYNC (a
 * memfd does not know the ioctl; that is fine). */
static void dmabuf_sync(int fd, int end)
{
    struct dma_buf_sync s = { .flags = DMA_BUF_SYNC_RW | (end ? DMA_BUF_SYNC_END : DMA_BUF_SYNC_START) };
    (void)ioctl(fd, DMA_BUF_IOCTL_SYNC, &s);
}

/* ------------------------------------------------------------------------ */
/* Children                                                                 */
/* ------------------------------------------------------------------------ */

/* A child's last words: its own counts (the parent counts its exit status). */
static int child_done(void)
{
    printf("    %s: %d passed, %d failed\n", who, passed, failed);
    return failed ? 1 : 0;
}

typedef struct {
    unsigned index;
    LUID luid;
    D3DKMT_HANDLE hAdapter;     /* from EnumAdapters2 */
    int caps;                   /* CAP_* */
    char driver[64];
} adapter_t;

static void luid_args(const adapter_t *a, char *low, char *high, char *caps)
{
    snprintf(low, 16, "%" PRIu32, (uint32_t)a->luid.LowPart);
    snprintf(high, 16, "%" PRId32, (int32_t)a->luid.HighPart);
    snprintf(caps, 16, "%d", a->caps);
}

/* The child's side of d3d12_device_open_kmt / DXVK's adapter and device. */
static int child_device(LUID luid, int close_adapter_now, D3DKMT_HANDLE *phAdapter, D3DKMT_HANDLE *phDevice)
{
    *phAdapter = *phDevice = 0;
    EXPECT_OK(open_adapter(luid, phAdapter));
    if (!*phAdapter)
        return 0;
    check_local(*phAdapter, "OpenAdapterFromLuid hAdapter");
    EXPECT_OK(create_device(*phAdapter, phDevice));
    if (*phDevice)
        check_local(*phDevice, "CreateDevice hDevice");
    if (close_adapter_now) {
        EXPECT_OK(close_adapter(*phAdapter));
        *phAdapter = 0;
    }
    return *phDevice != 0;
}

/* ======================================================================== */
/* Scenario 1: DXVK d3d11 shared texture with a keyed mutex (NT handles)    */
/* ======================================================================== */

static void expected_d3d11_desc(rp_d3d11_desc *d)
{
    memset(d, 0, sizeof *d);
    /* DXVK src/d3d11/d3d11_texture.cpp ExportImageInfo: header size 0x68,
     * version 4, keyed_mutex and nt_shared from the misc flags, global mutex
     * and sync handles 0 (NT-shared); width, height and format left 0. */
    d->dxgi.size = sizeof *d;
    d->dxgi.version = 4;
    d->dxgi.keyed_mutex = 1;
    d->dxgi.nt_shared = 1;
    d->dimension = RP_D3D11_DIMENSION_TEXTURE2D;
    d->u.texture2d.Width = TEX_WIDTH;
    d->u.texture2d.Height = TEX_HEIGHT;
    d->u.texture2d.MipLevels = 1;
    d->u.texture2d.ArraySize = 1;
    d->u.texture2d.Format = RP_DXGI_FORMAT_B8G8R8A8_UNORM;
    d->u.texture2d.SampleCount = 1;
    d->u.texture2d.SampleQuality = 0;
    d->u.texture2d.Usage = 0; /* D3D11_USAGE_DEFAULT */
    d->u.texture2d.BindFlags = RP_D3D11_BIND_SHADER_RESOURCE | RP_D3D11_BIND_RENDER_TARGET;
    d->u.texture2d.CPUAccessFlags = 0;
    d->u.texture2d.MiscFlags = RP_D3D11_MISC_SHARED_KEYEDMUTEX | RP_D3D11_MISC_SHARED_NTHANDLE;
}

/* One DXVK AcquireSync(key_in)/work/ReleaseSync(key_out) with a real 1 s
 * relative timeout (retried while the peer is slow): the acquired FenceValue
 * must be `expect` (the peer's release), the semaphore is waited for it, the
 * texture must hold the peer's round, the next round is written, the
 * semaphore signalled to FenceValue + 1 and the mutex released with it. */
static int dxvk_round(D3DKMT_HANDLE hDevice, D3DKMT_HANDLE km, D3DKMT_HANDLE sem, D3DKMT_HANDLE alloc,
                      UINT64 key_in, UINT64 key_out, UINT64 expect, unsigned *retries, int release)
{
    UINT64 fence = 0;
    NTSTATUS st = STATUS_TIMEOUT;
    for (int i = 0; i < ACQUIRE_TRIES && st == STATUS_TIMEOUT; i++) {
        st = rp_km_acquire(km, key_in, ONE_SECOND_REL, &fence);
        if (st == STATUS_TIMEOUT)
            (*retries)++;
    }
    /* DXVK src/dxvk/dxvk_image.cpp DxvkKeyedMutex::AcquireSync: 0 is success. */
    check(st == STATUS_SUCCESS, "AcquireKeyedMutex(key %" PRIu64 ", -1 s) returned 0x%08" PRIX32, key_in,
          (uint32_t)st);
    if (st != STATUS_SUCCESS)
        return 0;
    check(fence == expect, "AcquireKeyedMutex(key %" PRIu64 "): FenceValue %" PRIu64 ", expected the peer's "
          "release %" PRIu64, key_in, fence, expect);
    if (sem)
        EXPECT_OK(rp_sync_wait(hDevice, sem, fence));
    uint8_t *p = NULL;
    EXPECT_OK(lock(hDevice, alloc, &p));
    if (p) {
        check(holds_round(p, expect), "the texture does not hold round %" PRIu64 " written by the peer", expect);
        if (release)
            write_round(p, fence + 1);
        EXPECT_OK(unlock(hDevice, alloc));
    }
    if (!release)
        return 1;
    /* DxvkKeyedMutex::ReleaseSync: signal the semaphore to m_fenceValue + 1,
     * then release with that FenceValue. */
    if (sem)
        EXPECT_OK(sync_signal(hDevice, sem, fence + 1));
    st = rp_km_release(km, key_out, fence + 1);
    check(st == STATUS_SUCCESS, "ReleaseKeyedMutex(key %" PRIu64 ", fence %" PRIu64 ") returned 0x%08" PRIX32,
          key_out, fence + 1, (uint32_t)st);
    return st == STATUS_SUCCESS;
}

/* The child: DXVK src/d3d11/d3d11_device.cpp OpenSharedResource1 on the
 * inherited handle and on the handle opened by the lowercased name, then the
 * keyed-mutex rounds. argv: fd, lowercased name, go fd, ready fd. */
static int dxvk_child(LUID luid, int caps, int fd, const char *name, int gofd, int readyfd)
{
    who = "dxvk child";
    current_phase = "dxvk child";
    alarm(CHILD_SECONDS);
    int fences = (caps & CAP_FENCES) != 0;
    D3DKMT_HANDLE hAdapter, hDevice;
    /* DXVK src/dxvk/dxvk_adapter.cpp / dxvk_device.cpp: OpenAdapterFromLuid, CreateDevice. */
    if (!child_device(luid, 0, &hAdapter, &hDevice))
        return 1;

    rp_d3d11_desc want;
    expected_d3d11_desc(&want);
    D3DKMT_HANDLE km[2] = { 0, 0 }, sem[2] = { 0, 0 }, layer_res = 0, layer_alloc = 0;
    HANDLE inherited = D3DKMTLinuxFdToHandle(fd);
    for (int pass = 0; pass < 2; pass++) {
        const char *how = pass == 0 ? "inherited handle" : "handle opened by the lowercased name";
        HANDLE h = inherited;
        if (pass == 1) {
            /* D3DKMTOpenNtHandleFromName with the lowercased name (Attributes 0:
             * names are case-insensitive regardless) and GENERIC_ALL. */
            h = NULL;
            EXPECT_OK(open_by_name(name, 0, GENERIC_ALL, &h));
            if (!h)
                break;
        }
        check_nt(h, how);

        /* OpenSharedResource1 step 1: QueryResourceInfoFromNtHandle with the
         * 0x108 union and size 0x108; status 0; the real size written back,
         * within 0x38..0x108; the buffer not touched. */
        uint8_t rt[0x108];
        memset(rt, 0xcd, sizeof rt);
        D3DKMT_QUERYRESOURCEINFOFROMNTHANDLE q;
        memset(&q, 0, sizeof q);
        q.hDevice = hDevice;
        q.hNtHandle = h;
        q.pPrivateRuntimeData = rt;
        q.PrivateRuntimeDataSize = sizeof rt;
        NTSTATUS st = D3DKMTQueryResourceInfoFromNtHandle(&q);
        check(st == STATUS_SUCCESS, "%s: QueryResourceInfoFromNtHandle(0x108 buffer) returned 0x%08" PRIX32, how,
              (uint32_t)st);
        if (st != STATUS_SUCCESS)
            continue;
        check(q.PrivateRuntimeDataSize == sizeof(rp_d3d11_desc), "%s: query wrote PrivateRuntimeDataSize 0x%x, "
              "expected 0x68", how, q.PrivateRuntimeDataSize);
        check(q.PrivateRuntimeDataSize >= 0x38 && q.PrivateRuntimeDataSize <= 0x108, "%s: runtime size 0x%x is "
              "outside DXVK's 0x38..0x108", how, q.PrivateRuntimeDataSize);
        check(q.NumAllocations == 1, "%s: query NumAllocations %u", how, q.NumAllocations);
        check(q.TotalPrivateDriverDataSize == 0 && q.ResourcePrivateDriverDataSize == 0,
              "%s: query driver data sizes %u/%u, expected 0/0", how, q.TotalPrivateDriverDataSize,
              q.ResourcePrivateDriverDataSize);
        size_t touched = sizeof rt;
        for (size_t i = 0; i < sizeof rt; i++) {
            if (rt[i] != 0xcd) {
                touched = i;
                break;
            }
        }
        check(touched == sizeof rt, "%s: QueryResourceInfoFromNtHandle wrote the runtime buffer (byte %zu)", how,
              touched);

        /* Step 2: OpenResourceFromNtHandle with the exact size and a 1-byte
         * dummy total buffer of size 0; no keyed mutex data. */
        opened_t o;
        UINT size = q.PrivateRuntimeDataSize <= sizeof rt ? q.PrivateRuntimeDataSize : (UINT)sizeof rt;
        st = open_resource(hDevice, h, rt, size, &o);
        check(st == STATUS_SUCCESS, "%s: OpenResourceFromNtHandle(runtime 0x%x, total 0) returned 0x%08" PRIX32,
              how, size, (uint32_t)st);
        if (st != STATUS_SUCCESS)
            continue;
        check(o.runtimeSize == sizeof(rp_d3d11_desc), "%s: open wrote PrivateRuntimeDataSize 0x%x", how,
              o.runtimeSize);
        check(o.kmSize == 0, "%s: KeyedMutexPrivateRuntimeDataSize %u, expected 0 (none)", how, o.kmSize);
        check(o.hKeyedMutex != 0 && o.hSyncObject != 0, "%s: hKeyedMutex 0x%08" PRIX32 " hSyncObject 0x%08" PRIX32
              ", both expected (shared as three objects)", how, (uint32_t)o.hKeyedMutex, (uint32_t)o.hSyncObject);

        /* ConvertRuntimeDescriptor (D3D11): size >= 0x68, dxgi.size == 0x68,
         * version 4, TEXTURE2D only. */
        rp_d3d11_desc got;
        memcpy(&got, rt, sizeof got);
        check(o.runtimeSize >= 0x68 && got.dxgi.size == 0x68 && got.dxgi.version == 4 &&
              got.dimension == RP_D3D11_DIMENSION_TEXTURE2D, "%s: descriptor size 0x%x dxgi.size 0x%x version %u "
              "dimension %u: ConvertRuntimeDescriptor would reject it", how, o.runtimeSize, got.dxgi.size,
              got.dxgi.version, got.dimension);
        check(memcmp(&got, &want, sizeof got) == 0, "%s: the d3d11 descriptor differs from the one the escape "
              "stored", how);
        check(got.dxgi.keyed_mutex == 1 && got.dxgi.nt_shared == 1 && got.u.texture2d.Width == TEX_WIDTH &&
              got.u.texture2d.Height == TEX_HEIGHT, "%s: keyed_mutex %u nt_shared %u %ux%u", how,
              got.dxgi.keyed_mutex, got.dxgi.nt_shared, got.u.texture2d.Width, got.u.texture2d.Height);
        /* The Linux library tells the layout (the layer needs it for import). */
        check_layout(hDevice, o.hAllocation, TEX_WIDTH, TEX_HEIGHT, RP_DRM_FORMAT_ARGB8888, TEX_SIZE, how);

        /* Step 3: DestroyAllocation (v1) straight away. */
        EXPECT_OK(destroy_resource_v1(hDevice, o.hResource));

        /* Step 4: the sync object is shared again with NULL attributes and
         * GENERIC_ALL, a semaphore is imported from that handle (Wine's layer:
         * OpenSyncObjectFromNtHandle2), the handle closed and the opened sync
         * object destroyed. */
        if (o.hSyncObject) {
            HANDLE sh = NULL;
            st = D3DKMTShareObjects(1, &o.hSyncObject, NULL, GENERIC_ALL, &sh);
            check(st == STATUS_SUCCESS, "%s: ShareObjects(1, hSyncObject, NULL, GENERIC_ALL) returned 0x%08" PRIX32,
                  how, (uint32_t)st);
            if (sh) {
                check_nt(sh, "the re-shared sync object");
                EXPECT_OK(rp_sync_open2(hDevice, sh, &sem[pass]));
                close_handle(sh, "re-shared sync object");
            }
            if (sem[pass] && (caps & CAP_TIMELINES)) {
                /* The layer takes the host timeline from it. */
                int sfd = -1;
                EXPECT_OK(D3DKMTLinuxExportSyncObjectFd(sem[pass], &sfd));
                if (sfd >= 0)
                    close(sfd);
            }
            EXPECT_OK(sync_destroy(o.hSyncObject));
        }
        /* Step 5: the keyed mutex is kept as the mutex's local handle. */
        km[pass] = o.hKeyedMutex;

        /* The memory itself: Wine's layer imports the NT handle (its own open,
         * the runtime data passed with its exact size); its bundled mutex and
         * sync are not needed here. */
        if (pass == 0) {
            opened_t l;
            uint8_t rt2[sizeof(rp_d3d11_desc)];
            EXPECT_OK(open_resource(hDevice, h, rt2, sizeof rt2, &l));
            layer_res = l.hResource;
            layer_alloc = l.hAllocation;
            if (l.hKeyedMutex)
                EXPECT_OK(km_destroy(l.hKeyedMutex));
            if (l.hSyncObject)
                EXPECT_OK(sync_destroy(l.hSyncObject));
        }
        if (pass == 1)
            close_handle(h, "handle opened by name");
    }

    /* The keyed-mutex rounds: acquire key 1, release key 0. */
    unsigned retries = 0;
    int ok = km[0] && layer_alloc && (!fences || sem[0]);
    for (unsigned r = 0; ok && r < KM_ROUNDS; r++)
        ok = dxvk_round(hDevice, km[0], fences ? sem[0] : 0, layer_alloc, 1, 0, 2 * (UINT64)r + 2, &retries, 1);
    if (retries)
        printf("    dxvk child: %u acquires waited more than 1 s\n", retries);

    /* Contention: the parent owns the mutex now. */
    check(read_byte(gofd, WAIT_MS) == 'g', "no go from the parent for the contended acquire");
    if (km[0]) {
        check(dxvk_timeout(1000) == 4284967296LL && dxvk_timeout(RP_INFINITE) == 10000 && dxvk_timeout(0) == 0,
              "DXVK's timeout arithmetic: %lld %lld %lld", (long long)dxvk_timeout(1000),
              (long long)dxvk_timeout(RP_INFINITE), (long long)dxvk_timeout(0));
        const uint32_t ms[3] = { 1000, RP_INFINITE, 0 };
        const UINT64 keys[3] = { 0, 0, 1 };
        for (int i = 0; i < 3; i++) {
            /* AcquireSync(key, ms) while the other process owns the mutex:
             * QuadPart is a small positive (absolute, long past) time:
             * STATUS_TIMEOUT (WAIT_TIMEOUT) promptly. */
            uint64_t t0 = now_ns();
            UINT64 fence = 0;
            NTSTATUS st = rp_km_acquire(km[0], keys[i], dxvk_timeout(ms[i]), &fence);
            double sec = (double)(now_ns() - t0) / 1e9;
            check(st == STATUS_TIMEOUT, "contended AcquireKeyedMutex(key %" PRIu64 ", ms %" PRIu32 " -> QuadPart %lld)"
                  " returned 0x%08" PRIX32 ", expected STATUS_TIMEOUT", keys[i], ms[i], (long long)dxvk_timeout(ms[i]),
                  (uint32_t)st);
            check(sec < WAIT_MS / 1000.0, "contended acquire took %.1f s", sec);
            if (st == STATUS_SUCCESS)
                rp_km_release(km[0], keys[i], fence);
        }
        /* ReleaseSync by a process that does not own it fails (Wine:
         * STATUS_INVALID_PARAMETER; DXVK: DXGI_ERROR_INVALID_CALL). */
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, rp_km_release(km[0], 0, 12345));
    }
    write_byte(readyfd, 'r');

    for (int i = 0; i < 2; i++) {
        if (km[i])
            EXPECT_OK(km_destroy(km[i]));
        if (sem[i])
            EXPECT_OK(sync_destroy(sem[i]));
    }
    if (layer_res)
        EXPECT_OK(destroy_resource(hDevice, layer_res));
    close(fd);
    close(gofd);
    close(readyfd);
    EXPECT_OK(destroy_device(hDevice));
    EXPECT_OK(close_adapter(hAdapter));
    return child_done();
}

static void scenario_dxvk(const char *argv0, const adapter_t *a)
{
    int fences = (a->caps & CAP_FENCES) != 0;
    D3DKMT_HANDLE hAdapter = 0, hDevice = 0;
    /* DXVK src/dxvk/dxvk_adapter.cpp: OpenAdapterFromLuid sets only the LUID;
     * dxvk_device.cpp: CreateDevice sets only hAdapter. */
    EXPECT_OK(open_adapter(a->luid, &hAdapter));
    if (!hAdapter)
        return;
    check_local(hAdapter, "OpenAdapterFromLuid hAdapter");
    EXPECT_OK(create_device(hAdapter, &hDevice));
    if (!hDevice) {
        EXPECT_OK(close_adapter(hAdapter));
        return;
    }
    check_local(hDevice, "CreateDevice hDevice");

    /* The Vulkan layer (Wine dlls/win32u/vulkan.c vkAllocateMemory with an NT
     * export, d3dkmt_create_resource): the memory as the Linux library
     * expects it, then its NT handle (create_shared_resource_handle, no name:
     * OBJ_CASE_INSENSITIVE and no ObjectName; default access GENERIC_ALL). */
    D3DKMT_LINUX_ALLOCATION_DESC desc;
    fill_desc(&desc, TEX_WIDTH, TEX_HEIGHT, RP_DRM_FORMAT_ARGB8888, 0, -1);
    D3DKMT_HANDLE layer_res = 0, layer_alloc = 0;
    EXPECT_OK(create_memory(hDevice, &desc, 1, &layer_res, &layer_alloc));
    HANDLE layer_mem = NULL;
    nt_name_t unnamed;
    if (layer_res)
        EXPECT_OK(D3DKMTShareObjects(1, &layer_res, make_attributes(&unnamed, NULL, OBJ_CASE_INSENSITIVE, NULL),
                                     GENERIC_ALL, &layer_mem));
    if (layer_mem)
        check_nt(layer_mem, "the layer's memory handle");

    /* DXVK src/dxvk/dxvk_memory.cpp DxvkResourceAllocation::initKmtHandles. */
    opened_t dx;
    memset(&dx, 0, sizeof dx);
    if (layer_mem)
        open_export(hDevice, layer_mem, &dx, "DXVK initKmtHandles");
    if (dx.hAllocation)
        check_layout(hDevice, dx.hAllocation, TEX_WIDTH, TEX_HEIGHT, RP_DRM_FORMAT_ARGB8888, TEX_SIZE,
                     "DXVK's opened texture");

    /* DXVK src/dxvk/dxvk_image.cpp DxvkKeyedMutex: the sync object first (a
     * DxvkFence: the layer's exported timeline semaphore, here
     * CreateSynchronizationObject2 D3DDDI_FENCE Shared|NtSecuritySharing,
     * shared by the layer), opened by dxvk_fence.cpp initKmtHandles with
     * OpenSyncObjectFromNtHandle (v1) and the NT handle closed. */
    D3DKMT_HANDLE layer_sync = 0, dxvk_sync = 0, km = 0;
    if (fences) {
        EXPECT_OK(rp_sync_create(hDevice, D3DDDI_FENCE, 1, &layer_sync));
    } else {
        /* vgem: no fences; a mutex sync object is bundled instead. */
        EXPECT_STATUS(STATUS_NOT_SUPPORTED, rp_sync_create(hDevice, D3DDDI_FENCE, 1, &layer_sync));
        if (layer_sync)
            sync_destroy(layer_sync);
        layer_sync = 0;
        EXPECT_OK(rp_sync_create(hDevice, D3DDDI_SYNCHRONIZATION_MUTEX, 1, &layer_sync));
    }
    if (layer_sync) {
        HANDLE sh = NULL;
        EXPECT_OK(D3DKMTShareObjects(1, &layer_sync, make_attributes(&unnamed, NULL, OBJ_CASE_INSENSITIVE, NULL),
                                     GENERIC_ALL, &sh));
        if (sh) {
            check_nt(sh, "the layer's semaphore handle");
            HANDLE dup = duplicate(sh);
            EXPECT_OK(rp_sync_open1(dup, &dxvk_sync));
            close_handle(dup, "vkGetSemaphoreWin32HandleKHR duplicate");
            close_handle(sh, "the layer's semaphore handle");
        }
    }
    /* Then D3DKMTCreateKeyedMutex2: InitialValue 0, NtSecuritySharing, no
     * runtime data, no device; status 0. */
    {
        D3DKMT_CREATEKEYEDMUTEX2 c;
        memset(&c, 0, sizeof c);
        c.InitialValue = 0;
        c.hSharedHandle = RP_INVALID_HANDLE;
        c.Flags.NtSecuritySharing = 1;
        EXPECT_OK(D3DKMTCreateKeyedMutex2(&c));
        km = c.hKeyedMutex;
        check_local(km, "CreateKeyedMutex2 hKeyedMutex");
        check(c.hSharedHandle == 0, "CreateKeyedMutex2: hSharedHandle 0x%08" PRIX32 ", expected 0",
              (uint32_t)c.hSharedHandle);
    }

    /* DXVK src/d3d11/d3d11_texture.cpp D3D11CommonTexture::ExportImageInfo:
     * D3DKMTEscape (zeroed struct) Type UPDATE_RESOURCE_WINE, hContext = the
     * local resource, the raw 0x68 descriptor; 0 is success. */
    rp_d3d11_desc d11;
    expected_d3d11_desc(&d11);
    if (dx.hResource) {
        D3DKMT_ESCAPE e;
        memset(&e, 0, sizeof e);
        e.Type = D3DKMT_ESCAPE_UPDATE_RESOURCE_WINE;
        e.hContext = dx.hResource;
        e.pPrivateDriverData = &d11;
        e.PrivateDriverDataSize = sizeof d11;
        EXPECT_OK(D3DKMTEscape(&e));
    }

    /* src/d3d11/d3d11_initializer.cpp: AcquireSync(0, 0), initialise,
     * ReleaseSync(0). Acquire key 0 with QuadPart 0 on the fresh mutex: 0 and
     * FenceValue 0; the semaphore signalled to 1 and released with 1. */
    if (km) {
        UINT64 fence = UINT64_MAX;
        EXPECT_OK(rp_km_acquire(km, 0, dxvk_timeout(0), &fence));
        check(fence == 0, "initializer AcquireSync(0, 0): FenceValue %" PRIu64 ", expected 0", fence);
        if (fences && dxvk_sync)
            EXPECT_OK(rp_sync_wait(hDevice, dxvk_sync, 0));
        uint8_t *p = NULL;
        if (dx.hAllocation)
            EXPECT_OK(lock(hDevice, dx.hAllocation, &p));
        if (p) {
            write_round(p, 1);
            EXPECT_OK(unlock(hDevice, dx.hAllocation));
        }
        if (fences && dxvk_sync)
            EXPECT_OK(sync_signal(hDevice, dxvk_sync, 1));
        EXPECT_OK(rp_km_release(km, 0, 1));
    }

    /* src/d3d11/d3d11_resource.cpp D3D11DXGIResource::CreateSharedHandle:
     * [resource, keyed mutex, sync], a session name + OBJ_CASE_INSENSITIVE,
     * SecurityDescriptor = the SECURITY_ATTRIBUTES pointer, GENERIC_ALL. */
    char name[160], lowered[160];
    session_name(name, sizeof name, "Dxvk", a->index);
    lower(lowered, sizeof lowered, name);
    rp_security_attributes sa = { sizeof sa, NULL, FALSE };
    nt_name_t named;
    HANDLE h = NULL;
    if (dx.hResource && km && dxvk_sync) {
        D3DKMT_HANDLE objs[3] = { dx.hResource, km, dxvk_sync };
        EXPECT_OK(D3DKMTShareObjects(3, objs, make_attributes(&named, name, OBJ_CASE_INSENSITIVE, &sa),
                                     GENERIC_ALL, &h));
    }
    if (h)
        check_nt(h, "CreateSharedHandle (three objects)");

    /* The other process: OpenSharedResource1 and the keyed-mutex rounds. */
    int go[2] = { -1, -1 }, ready[2] = { -1, -1 };
    pid_t pid = -1;
    if (h && pipe2(go, O_CLOEXEC) == 0 && pipe2(ready, O_CLOEXEC) == 0) {
        char low[16], high[16], caps[16], fdarg[16], goarg[16], readyarg[16];
        luid_args(a, low, high, caps);
        int cfd = inheritable(D3DKMTLinuxHandleToFd(h), fdarg, sizeof fdarg);
        int cgo = inheritable(go[0], goarg, sizeof goarg);
        int cready = inheritable(ready[1], readyarg, sizeof readyarg);
        char *args[] = { (char *)argv0, "dxvk", low, high, caps, fdarg, lowered, goarg, readyarg, NULL };
        pid = spawn(args);
        check(pid > 0, "could not start the dxvk child");
        close(cfd);
        close(cgo);
        close(cready);
    }

    /* This side: acquire key 0, release key 1; the child the other way. */
    unsigned retries = 0;
    int ok = pid > 0 && km && dx.hAllocation;
    for (unsigned r = 0; ok && r < KM_ROUNDS; r++)
        ok = dxvk_round(hDevice, km, fences ? dxvk_sync : 0, dx.hAllocation, 0, 1, 2 * (UINT64)r + 1, &retries, 1);
    /* Take the mutex once more (the child's last round) and hold it while
     * the child tries a contended acquire with DXVK's wrapped timeouts. */
    if (ok)
        ok = dxvk_round(hDevice, km, fences ? dxvk_sync : 0, dx.hAllocation, 0, 1, 2 * (UINT64)KM_ROUNDS + 1,
                        &retries, 0);
    if (pid > 0) {
        write_byte(go[1], 'g');
        check(read_byte(ready[0], 2 * WAIT_MS) == 'r', "the dxvk child did not finish its contended acquires");
        if (ok) {
            if (fences && dxvk_sync)
                EXPECT_OK(sync_signal(hDevice, dxvk_sync, 2 * (UINT64)KM_ROUNDS + 2));
            EXPECT_OK(rp_km_release(km, 0, 2 * (UINT64)KM_ROUNDS + 2));
        }
        check_child_exit("dxvk", wait_child(pid));
    }
    printf("    dxvk: %u keyed-mutex rounds each way%s%s\n", KM_ROUNDS, fences ? "" : " (no fences: semaphore waits "
           "skipped)", retries ? " (some acquires waited more than 1 s)" : "");
    for (int i = 0; i < 2; i++) {
        if (go[i] >= 0)
            close(go[i]);
        if (ready[i] >= 0)
            close(ready[i]);
    }

    /* Teardown: DXVK destroys its locals; the layer its own. */
    close_handle(h, "CreateSharedHandle handle");
    if (h)
        check_retired(name, 0);
    if (km)
        EXPECT_OK(km_destroy(km));
    if (dxvk_sync)
        EXPECT_OK(sync_destroy(dxvk_sync));
    if (layer_sync)
        EXPECT_OK(sync_destroy(layer_sync));
    if (dx.hResource)
        EXPECT_OK(destroy_resource_v1(hDevice, dx.hResource)); /* ~DxvkResourceAllocation */
    close_handle(layer_mem, "the layer's memory handle");
    if (layer_res)
        EXPECT_OK(destroy_resource(hDevice, layer_res));
    EXPECT_OK(destroy_device(hDevice));
    EXPECT_OK(close_adapter(hAdapter));
}

/* ======================================================================== */
/* Scenario 2: vkd3d-proton d3d12 shared committed resource + shared fence  */
/* ======================================================================== */

static void expected_d3d12_desc(rp_d3d12_desc *d)
{
    memset(d, 0, sizeof *d);
    /* vkd3d libs/vkd3d/d3dkmt.c d3d12_resource_open_export_kmt: dxgi.size
     * 0x68 (the d3d11 size), nt_shared 1, version 0 (no render target or
     * simultaneous access), desc1 = the resource's D3D12_RESOURCE_DESC1. */
    d->d3d11.dxgi.size = sizeof(rp_d3d11_desc);
    d->d3d11.dxgi.version = 0;
    d->d3d11.dxgi.nt_shared = 1;
    d->resource_size = BUFFER_SIZE;
    d->resource_align = BUFFER_SIZE;
    d->u.desc1.Dimension = RP_D3D12_DIMENSION_BUFFER;
    d->u.desc1.Alignment = BUFFER_SIZE;
    d->u.desc1.Width = BUFFER_SIZE;
    d->u.desc1.Height = 1;
    d->u.desc1.DepthOrArraySize = 1;
    d->u.desc1.MipLevels = 1;
    d->u.desc1.Format = 0;
    d->u.desc1.SampleCount = 1;
    d->u.desc1.Layout = RP_D3D12_LAYOUT_ROW_MAJOR;
}

/* The child: vkd3d libs/vkd3d/d3dkmt.c d3d12_device_open_resource_descriptor
 * on the two resource handles, then the fence. argv: fd1, fd2, fence fd. */
static int vkd3d_child(LUID luid, int caps, int fd1, int fd2, int fdf)
{
    who = "vkd3d child";
    current_phase = "vkd3d child";
    alarm(CHILD_SECONDS);
    (void)caps;
    D3DKMT_HANDLE hAdapter, hDevice;
    /* d3d12_device_open_kmt: OpenAdapterFromLuid, CreateDevice, CloseAdapter at once. */
    if (!child_device(luid, 1, &hAdapter, &hDevice))
        return 1;

    rp_d3d12_desc want;
    expected_d3d12_desc(&want);
    const int fds[2] = { fd1, fd2 };
    for (int i = 0; i < 2; i++) {
        const char *how = i == 0 ? "handle shared with GENERIC_ALL" : "handle shared with DXGI_SHARED_RESOURCE_RW";
        HANDLE h = D3DKMTLinuxFdToHandle(fds[i]);
        check_nt(h, how); /* not KMT: (h & 0xc0000000) == 0 */
        /* QueryResourceInfoFromNtHandle with a 0x108 buffer and size 0x108:
         * STATUS_SUCCESS; a size outside 0x38..0x108 would be E_NOTIMPL. */
        uint8_t rt[0x108];
        memset(rt, 0xcd, sizeof rt);
        D3DKMT_QUERYRESOURCEINFOFROMNTHANDLE q;
        memset(&q, 0, sizeof q);
        q.hDevice = hDevice;
        q.hNtHandle = h;
        q.pPrivateRuntimeData = rt;
        q.PrivateRuntimeDataSize = sizeof rt;
        NTSTATUS st = D3DKMTQueryResourceInfoFromNtHandle(&q);
        check(st == STATUS_SUCCESS, "%s: QueryResourceInfoFromNtHandle returned 0x%08" PRIX32, how, (uint32_t)st);
        if (st != STATUS_SUCCESS)
            continue;
        check(q.PrivateRuntimeDataSize == 0x108 && q.NumAllocations == 1, "%s: query size 0x%x NumAllocations %u, "
              "expected 0x108 and 1", how, q.PrivateRuntimeDataSize, q.NumAllocations);
        int untouched = 1;
        for (size_t j = 0; j < sizeof rt; j++)
            untouched &= rt[j] == 0xcd;
        check(untouched, "%s: the query wrote the runtime buffer", how);
        /* OpenResourceFromNtHandle with the exact size, NumAllocations 1,
         * TotalPrivateDriverDataBufferSize 0 and a dummy pointer. */
        opened_t o;
        UINT size = q.PrivateRuntimeDataSize <= sizeof rt ? q.PrivateRuntimeDataSize : (UINT)sizeof rt;
        st = open_resource(hDevice, h, rt, size, &o);
        check(st == STATUS_SUCCESS, "%s: OpenResourceFromNtHandle returned 0x%08" PRIX32, how, (uint32_t)st);
        if (st != STATUS_SUCCESS)
            continue;
        /* A bundled mutex or sync would be destroyed ("Ignoring"): none here. */
        check(o.hKeyedMutex == 0 && o.hSyncObject == 0, "%s: a keyed mutex or sync object came with the resource",
              how);
        if (o.hKeyedMutex)
            km_destroy(o.hKeyedMutex);
        if (o.hSyncObject)
            sync_destroy(o.hSyncObject);
        /* The size used is the one the open wrote back: 0x108 with dxgi.size
         * 0x68 and version 0 (or 4) is the D3D12 descriptor. */
        rp_d3d12_desc got;
        memcpy(&got, rt, sizeof got);
        check(o.runtimeSize == 0x108 && got.d3d11.dxgi.size == 0x68 &&
              (got.d3d11.dxgi.version == 0 || got.d3d11.dxgi.version == 4),
              "%s: descriptor size 0x%x dxgi.size 0x%x version %u: not a D3D12 descriptor", how, o.runtimeSize,
              got.d3d11.dxgi.size, got.d3d11.dxgi.version);
        check(got.d3d11.dxgi.version == 0, "%s: version %u, expected 0", how, got.d3d11.dxgi.version);
        check(memcmp(&got, &want, sizeof got) == 0, "%s: the d3d12 descriptor differs from the escape's", how);
        check_layout(hDevice, o.hAllocation, 0, 0, 0, BUFFER_SIZE, how);
        /* Then DestroyAllocation(hDevice, hResource). */
        EXPECT_OK(destroy_resource_v1(hDevice, o.hResource));

        /* The memory through the layer's own import (runtime data with its
         * exact size): the parent's bytes, and a reply through the second
         * handle (0x80000001 grants SHARED_ALLOCATION_WRITE). */
        opened_t l;
        uint8_t rt2[0x108];
        EXPECT_OK(open_resource(hDevice, h, rt2, sizeof rt2, &l));
        uint8_t *p = NULL;
        if (l.hAllocation)
            EXPECT_OK(lock(hDevice, l.hAllocation, &p));
        if (p) {
            size_t bad = first_mismatch(p, 0, BUFFER_SIZE / 2, 21);
            check(bad == BUFFER_SIZE / 2, "%s: the parent's bytes differ at %zu", how, bad);
            if (i == 1)
                fill_buffer(p, BUFFER_SIZE / 2, BUFFER_SIZE, 22);
            EXPECT_OK(unlock(hDevice, l.hAllocation));
        }
        if (l.hResource)
            EXPECT_OK(destroy_resource(hDevice, l.hResource));
        close(fds[i]);
    }

    if (fdf >= 0) {
        /* The shared fence: OpenSyncObjectFromNtHandle (v1, no device) as
         * d3d12_shared_fence_open_export_kmt opens, and
         * OpenSyncObjectFromNtHandle2 as the layer imports it. */
        HANDLE hf = D3DKMTLinuxFdToHandle(fdf);
        check_nt(hf, "the shared fence");
        D3DKMT_HANDLE s1 = 0, s2 = 0;
        EXPECT_OK(rp_sync_open1(hf, &s1));
        EXPECT_OK(rp_sync_open2(hDevice, hf, &s2));
        for (unsigned r = 0; s1 && s2 && r < FENCE_ROUNDS; r++) {
            NTSTATUS st = rp_sync_wait(hDevice, s2, 2 * (UINT64)r + 1);
            check(st == STATUS_SUCCESS, "waiting for the parent's fence value %u returned 0x%08" PRIX32, 2 * r + 1,
                  (uint32_t)st);
            if (st != STATUS_SUCCESS)
                break;
            EXPECT_OK(rp_sync_wait(hDevice, s1, 2 * (UINT64)r + 1));
            EXPECT_OK(sync_signal(hDevice, s2, 2 * (UINT64)r + 2));
        }
        if (s1)
            EXPECT_OK(sync_destroy(s1));
        if (s2)
            EXPECT_OK(sync_destroy(s2));
        close(fdf);
    }
    EXPECT_OK(destroy_device(hDevice)); /* the adapter was closed long ago */
    return child_done();
}

static void scenario_vkd3d(const char *argv0, const adapter_t *a)
{
    int fences = (a->caps & CAP_FENCES) != 0;
    /* vkd3d libs/vkd3d/d3dkmt.c d3d12_device_open_kmt: OpenAdapterFromLuid,
     * CreateDevice, CloseAdapter immediately; the device is used on. */
    D3DKMT_HANDLE hAdapter = 0, hDevice = 0;
    EXPECT_OK(open_adapter(a->luid, &hAdapter));
    if (!hAdapter)
        return;
    EXPECT_OK(create_device(hAdapter, &hDevice));
    EXPECT_OK(close_adapter(hAdapter));
    if (!hDevice)
        return;
    check_local(hDevice, "CreateDevice hDevice");

    /* The layer's memory (as in scenario 1) and its NT handle. */
    D3DKMT_LINUX_ALLOCATION_DESC desc;
    fill_desc(&desc, 0, 0, 0, BUFFER_SIZE, -1);
    D3DKMT_HANDLE layer_res = 0, layer_alloc = 0;
    EXPECT_OK(create_memory(hDevice, &desc, 1, &layer_res, &layer_alloc));
    HANDLE layer_mem = NULL;
    nt_name_t unnamed;
    if (layer_res)
        EXPECT_OK(D3DKMTShareObjects(1, &layer_res, make_attributes(&unnamed, NULL, OBJ_CASE_INSENSITIVE, NULL),
                                     GENERIC_ALL, &layer_mem));

    /* d3d12_resource_open_export_kmt: OpenResourceFromNtHandle with dummies
     * and size 0, then the escape with the 0x108 descriptor (vkd3d ignores
     * its status; it must be 0 here). */
    opened_t vk;
    memset(&vk, 0, sizeof vk);
    if (layer_mem)
        open_export(hDevice, layer_mem, &vk, "vkd3d d3d12_resource_open_export_kmt");
    rp_d3d12_desc d12;
    expected_d3d12_desc(&d12);
    if (vk.hResource) {
        D3DKMT_ESCAPE e;
        memset(&e, 0, sizeof e);
        e.Type = D3DKMT_ESCAPE_UPDATE_RESOURCE_WINE;
        e.hContext = vk.hResource;
        e.pPrivateDriverData = &d12;
        e.PrivateDriverDataSize = sizeof d12;
        EXPECT_OK(D3DKMTEscape(&e));
    }
    uint8_t *p = NULL;
    if (vk.hAllocation)
        EXPECT_OK(lock(hDevice, vk.hAllocation, &p));
    if (p) {
        fill_buffer(p, 0, BUFFER_SIZE, 21);
        EXPECT_OK(unlock(hDevice, vk.hAllocation));
    }

    /* libs/vkd3d/device.c d3d12_device_CreateSharedHandle: ShareObjects(1,
     * resource) with the application's access passed through: GENERIC_ALL
     * by a session name, and DXGI_SHARED_RESOURCE_READ|WRITE without one. */
    char name[160], fence_name[160];
    session_name(name, sizeof name, "Vkd3dResource", a->index);
    session_name(fence_name, sizeof fence_name, "Vkd3dFence", a->index);
    rp_security_attributes sa = { sizeof sa, NULL, FALSE };
    nt_name_t named;
    HANDLE h1 = NULL, h2 = NULL, hf = NULL;
    if (vk.hResource) {
        EXPECT_OK(D3DKMTShareObjects(1, &vk.hResource, make_attributes(&named, name, OBJ_CASE_INSENSITIVE, &sa),
                                     GENERIC_ALL, &h1));
        EXPECT_OK(D3DKMTShareObjects(1, &vk.hResource, make_attributes(&unnamed, NULL, 0, &sa),
                                     RP_DXGI_SHARED_RESOURCE_READ | RP_DXGI_SHARED_RESOURCE_WRITE, &h2));
        check_nt(h1, "CreateSharedHandle(GENERIC_ALL)");
        check_nt(h2, "CreateSharedHandle(DXGI_SHARED_RESOURCE_READ|WRITE)");
    }

    /* The shared fence: the layer's exported D3D12_FENCE semaphore (here a
     * CreateSynchronizationObject2 monitored fence, Shared|NtSecuritySharing,
     * shared by the layer), opened by d3d12_shared_fence_open_export_kmt with
     * OpenSyncObjectFromNtHandle (v1), the NT handle closed; then
     * CreateSharedHandle shares kmt_local with GENERIC_ALL by name. */
    D3DKMT_HANDLE layer_sync = 0, fence_local = 0;
    if (fences) {
        EXPECT_OK(rp_sync_create(hDevice, D3DDDI_MONITORED_FENCE, 1, &layer_sync));
    } else {
        EXPECT_STATUS(STATUS_NOT_SUPPORTED, rp_sync_create(hDevice, D3DDDI_MONITORED_FENCE, 1, &layer_sync));
        if (layer_sync)
            sync_destroy(layer_sync);
        layer_sync = 0;
    }
    if (layer_sync) {
        HANDLE sh = NULL;
        EXPECT_OK(D3DKMTShareObjects(1, &layer_sync, make_attributes(&unnamed, NULL, OBJ_CASE_INSENSITIVE, NULL),
                                     GENERIC_ALL, &sh));
        if (sh) {
            HANDLE dup = duplicate(sh);
            EXPECT_OK(rp_sync_open1(dup, &fence_local));
            close_handle(dup, "vkGetSemaphoreWin32HandleKHR duplicate");
            close_handle(sh, "the layer's fence handle");
        }
        if (fence_local) {
            EXPECT_OK(D3DKMTShareObjects(1, &fence_local, make_attributes(&named, fence_name, OBJ_CASE_INSENSITIVE,
                                                                          &sa), GENERIC_ALL, &hf));
            check_nt(hf, "CreateSharedHandle(fence)");
        }
    }

    pid_t pid = -1;
    if (h1 && h2) {
        char low[16], high[16], caps[16], a1[16], a2[16], af[16];
        luid_args(a, low, high, caps);
        int c1 = inheritable(D3DKMTLinuxHandleToFd(h1), a1, sizeof a1);
        int c2 = inheritable(D3DKMTLinuxHandleToFd(h2), a2, sizeof a2);
        int cf = inheritable(hf ? D3DKMTLinuxHandleToFd(hf) : -1, af, sizeof af);
        char *args[] = { (char *)argv0, "vkd3d", low, high, caps, a1, a2, af, NULL };
        pid = spawn(args);
        check(pid > 0, "could not start the vkd3d child");
        close(c1);
        close(c2);
        if (cf >= 0)
            close(cf);
    }
    /* The fence from the CPU: this side signals odd values (on the layer's
     * semaphore), the child answers with the next even one (waited for on
     * vkd3d's own local). */
    for (unsigned r = 0; pid > 0 && hf && r < FENCE_ROUNDS; r++) {
        EXPECT_OK(sync_signal(hDevice, layer_sync, 2 * (UINT64)r + 1));
        NTSTATUS st = rp_sync_wait(hDevice, fence_local, 2 * (UINT64)r + 2);
        check(st == STATUS_SUCCESS, "waiting for the child's fence value %u returned 0x%08" PRIX32, 2 * r + 2,
              (uint32_t)st);
        if (st != STATUS_SUCCESS)
            break;
    }
    if (pid > 0)
        check_child_exit("vkd3d", wait_child(pid));
    p = NULL;
    if (vk.hAllocation)
        EXPECT_OK(lock(hDevice, vk.hAllocation, &p));
    if (p) {
        size_t bad = first_mismatch(p, BUFFER_SIZE / 2, BUFFER_SIZE, 22);
        check(bad == BUFFER_SIZE, "the vkd3d child's reply differs at byte %zu", bad);
        EXPECT_OK(unlock(hDevice, vk.hAllocation));
    }
    printf("    vkd3d: resource opened by two handles%s\n", hf ? ", fence signalled both ways" :
           " (no fences: fence skipped)");

    close_handle(h1, "resource handle (GENERIC_ALL)");
    close_handle(h2, "resource handle (READ|WRITE)");
    close_handle(hf, "fence handle");
    if (h1)
        check_retired(name, 0);
    if (hf)
        check_retired(fence_name, 1);
    if (fence_local)
        EXPECT_OK(sync_destroy(fence_local));
    if (layer_sync)
        EXPECT_OK(sync_destroy(layer_sync));
    if (vk.hResource)
        EXPECT_OK(destroy_resource_v1(hDevice, vk.hResource));
    close_handle(layer_mem, "the layer's memory handle");
    if (layer_res)
        EXPECT_OK(destroy_resource(hDevice, layer_res));
    EXPECT_OK(destroy_device(hDevice)); /* the status is ignored by vkd3d; 0 here */
}

/* ======================================================================== */
/* Scenario 3: Wine's Vulkan layer (dlls/win32u/vulkan.c)                   */
/* ======================================================================== */

/* The importer: vkAllocateMemory with an NT import by name
 * (open_shared_resource_from_name) and by handle, and
 * vkImportSemaphoreWin32HandleKHR by name. argv: memory name, semaphore name
 * or "-", inherited memory fd. */
static int wine_child(LUID luid, int caps, const char *mem_name, const char *sem_name, int memfd)
{
    who = "wine child";
    current_phase = "wine child";
    alarm(CHILD_SECONDS);
    D3DKMT_HANDLE hAdapter, hDevice;
    if (!child_device(luid, 0, &hAdapter, &hDevice))
        return 1;

    for (int pass = 0; pass < 2; pass++) {
        const char *how = pass == 0 ? "memory opened by name" : "memory opened by the inherited handle";
        HANDLE h = NULL;
        if (pass == 0) {
            /* OpenNtHandleFromName: the session-prefixed name, OBJ_OPENIF,
             * GENERIC_ALL. */
            EXPECT_OK(open_by_name(mem_name, OBJ_OPENIF, GENERIC_ALL, &h));
        } else {
            h = duplicate(D3DKMTLinuxFdToHandle(memfd)); /* NtDuplicateObject */
        }
        if (!h)
            continue;
        check_nt(h, how);
        /* d3dkmt_open_resource: the runtime data is empty (size 0). */
        opened_t o;
        NTSTATUS st = open_resource(hDevice, h, NULL, 0, &o);
        check(st == STATUS_SUCCESS, "%s: OpenResourceFromNtHandle returned 0x%08" PRIX32, how, (uint32_t)st);
        if (st == STATUS_SUCCESS) {
            check(o.runtimeSize == 0 && o.hKeyedMutex == 0 && o.hSyncObject == 0, "%s: runtime %u, mutex 0x%08"
                  PRIX32 ", sync 0x%08" PRIX32 ", expected none", how, o.runtimeSize, (uint32_t)o.hKeyedMutex,
                  (uint32_t)o.hSyncObject);
            check_layout(hDevice, o.hAllocation, 0, 0, 0, BUFFER_SIZE, how);
            /* d3dkmt_object_get_fd: the host fd, imported into the host
             * Vulkan; the bytes through an mmap of it. */
            int dfd = -1;
            EXPECT_OK(D3DKMTLinuxExportAllocationDmaBuf(hDevice, o.hAllocation, &dfd));
            if (dfd >= 0) {
                int fl = fcntl(dfd, F_GETFD);
                check(fl >= 0 && (fl & FD_CLOEXEC), "%s: the exported fd is not close-on-exec", how);
                uint8_t *p = mmap(NULL, BUFFER_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, dfd, 0);
                check(p != MAP_FAILED, "%s: mmap of the exported fd: %s", how, strerror(errno));
                if (p != MAP_FAILED) {
                    dmabuf_sync(dfd, 0);
                    size_t bad = first_mismatch(p, 0, BUFFER_SIZE / 2, 31);
                    check(bad == BUFFER_SIZE / 2, "%s: the exporter's bytes differ at %zu", how, bad);
                    if (pass == 0)
                        fill_buffer(p, BUFFER_SIZE / 2, BUFFER_SIZE, 32);
                    dmabuf_sync(dfd, 1);
                    munmap(p, BUFFER_SIZE);
                }
                close(dfd);
            }
            EXPECT_OK(destroy_resource(hDevice, o.hResource));
        }
        close_handle(h, how);
    }
    close(memfd);

    if (strcmp(sem_name, "-") != 0) {
        /* OpenSyncObjectNtHandleFromName (GENERIC_ALL, OBJ_OPENIF), then
         * d3dkmt_open_sync: OpenSyncObjectFromNtHandle2. */
        HANDLE hs = NULL;
        D3DKMT_HANDLE s = 0;
        EXPECT_OK(open_sync_by_name(sem_name, OBJ_OPENIF, GENERIC_ALL, &hs));
        if (hs) {
            check_nt(hs, "semaphore opened by name");
            EXPECT_OK(rp_sync_open2(hDevice, hs, &s));
            close_handle(hs, "semaphore handle");
        }
        if (s && (caps & CAP_TIMELINES)) {
            /* The host timeline semaphore is imported from the syncobj. */
            int sfd = -1;
            EXPECT_OK(D3DKMTLinuxExportSyncObjectFd(s, &sfd));
            if (sfd >= 0)
                close(sfd);
        }
        if (s) {
            NTSTATUS st = rp_sync_wait(hDevice, s, 5);
            check(st == STATUS_SUCCESS, "waiting for the exporter's value 5 returned 0x%08" PRIX32, (uint32_t)st);
            EXPECT_OK(sync_signal(hDevice, s, 6));
            EXPECT_OK(sync_destroy(s));
        }
    }
    EXPECT_OK(destroy_device(hDevice));
    EXPECT_OK(close_adapter(hAdapter));
    return child_done();
}

static void scenario_wine(const char *argv0, const adapter_t *a)
{
    int software = (a->caps & CAP_SOFTWARE) != 0;
    int timelines = (a->caps & CAP_TIMELINES) != 0;
    int fences = (a->caps & CAP_FENCES) != 0;
    D3DKMT_HANDLE hDevice = 0;
    EXPECT_OK(create_device(a->hAdapter, &hDevice));
    if (!hDevice)
        return;

    /* The host memory the runtime made itself: a sealed memfd on the
     * software adapter, another allocation's dma-buf on a DRM adapter. */
    int host = -1;
    D3DKMT_HANDLE throwaway_res = 0, throwaway_alloc = 0;
    if (software) {
        host = memfd_create("client-replays-wine", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        check(host >= 0, "memfd_create: %s", strerror(errno));
        if (host >= 0) {
            check(ftruncate(host, BUFFER_SIZE) == 0, "ftruncate: %s", strerror(errno));
            check(fcntl(host, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) == 0, "F_ADD_SEALS: %s",
                  strerror(errno));
        }
    } else {
        D3DKMT_LINUX_ALLOCATION_DESC td;
        fill_desc(&td, 0, 0, 0, BUFFER_SIZE, -1);
        EXPECT_OK(create_memory(hDevice, &td, 0, &throwaway_res, &throwaway_alloc));
        if (throwaway_alloc)
            EXPECT_OK(D3DKMTLinuxExportAllocationDmaBuf(hDevice, throwaway_alloc, &host));
    }
    uint8_t *map = MAP_FAILED;
    if (host >= 0) {
        map = mmap(NULL, BUFFER_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, host, 0);
        check(map != MAP_FAILED, "mmap of the host memory: %s", strerror(errno));
        if (map != MAP_FAILED) {
            dmabuf_sync(host, 0);
            fill_buffer(map, 0, BUFFER_SIZE / 2, 31);
            memset(map + BUFFER_SIZE / 2, 0, BUFFER_SIZE / 2);
            dmabuf_sync(host, 1);
        }
    }

    /* vkAllocateMemory export: d3dkmt_create_resource(fd): CreateAllocation2
     * wrapping the fd (DmaBufFd >= 0), CreateResource|CreateShared|
     * NtSecuritySharing, empty runtime data; create_shared_resource_handle:
     * a session name, OBJ_CASE_INSENSITIVE, default access GENERIC_ALL. */
    D3DKMT_HANDLE res = 0, alloc = 0;
    if (host >= 0) {
        D3DKMT_LINUX_ALLOCATION_DESC d;
        fill_desc(&d, 0, 0, 0, BUFFER_SIZE, host);
        EXPECT_OK(create_memory(hDevice, &d, 1, &res, &alloc));
    }
    if (alloc)
        check_layout(hDevice, alloc, 0, 0, 0, BUFFER_SIZE, "the wrapped host memory");
    char mem_name[160], sem_name[160];
    session_name(mem_name, sizeof mem_name, "WineMemory", a->index);
    session_name(sem_name, sizeof sem_name, "WineSemaphore", a->index);
    nt_name_t named;
    HANDLE hm = NULL;
    if (res) {
        EXPECT_OK(D3DKMTShareObjects(1, &res, make_attributes(&named, mem_name, OBJ_CASE_INSENSITIVE, NULL),
                                     GENERIC_ALL, &hm));
        check_nt(hm, "vkAllocateMemory export");
    }

    /* vkCreateSemaphore export: d3dkmt_create_sync(fd) with the host
     * timeline's syncobj: D3DKMTLinuxImportSyncObjectFd (a host fence made
     * and exported first), ShareObjects by name with GENERIC_ALL. */
    D3DKMT_HANDLE host_fence = 0, sem = 0;
    HANDLE hsem = NULL;
    if (timelines) {
        EXPECT_OK(rp_sync_create(hDevice, D3DDDI_FENCE, 0, &host_fence));
        int sfd = -1;
        if (host_fence)
            EXPECT_OK(D3DKMTLinuxExportSyncObjectFd(host_fence, &sfd));
        if (sfd >= 0) {
            EXPECT_OK(D3DKMTLinuxImportSyncObjectFd(hDevice, sfd, D3DKMT_LINUX_IMPORT_SYNCOBJ, &sem));
            if (sem)
                check_local(sem, "D3DKMTLinuxImportSyncObjectFd hSyncObject");
            close(sfd);
        }
    } else {
        /* No syncobjs to import: STATUS_NOT_SUPPORTED (an eventfd stands in
         * for the descriptor). On the software adapter a shared fence from
         * CreateSynchronizationObject2 is the semaphore instead. */
        int efd = eventfd(0, EFD_CLOEXEC);
        D3DKMT_HANDLE y = 0;
        if (efd >= 0) {
            EXPECT_STATUS(STATUS_NOT_SUPPORTED, D3DKMTLinuxImportSyncObjectFd(hDevice, efd,
                                                                              D3DKMT_LINUX_IMPORT_SYNCOBJ, &y));
            close(efd);
        }
        check(y == 0, "a refused import returned a handle");
        if (fences) {
            EXPECT_OK(rp_sync_create(hDevice, D3DDDI_FENCE, 1, &sem));
            int sfd = -1;
            if (sem)
                EXPECT_STATUS(STATUS_NOT_SUPPORTED, D3DKMTLinuxExportSyncObjectFd(sem, &sfd));
            if (sfd >= 0)
                close(sfd);
        } else {
            EXPECT_STATUS(STATUS_NOT_SUPPORTED, rp_sync_create(hDevice, D3DDDI_FENCE, 1, &sem));
            if (sem)
                sync_destroy(sem);
            sem = 0;
        }
    }
    if (sem) {
        EXPECT_OK(D3DKMTShareObjects(1, &sem, make_attributes(&named, sem_name, OBJ_CASE_INSENSITIVE, NULL),
                                     GENERIC_ALL, &hsem));
        check_nt(hsem, "vkCreateSemaphore export");
    }

    pid_t pid = -1;
    if (hm) {
        char low[16], high[16], caps[16], fdarg[16];
        luid_args(a, low, high, caps);
        int cfd = inheritable(D3DKMTLinuxHandleToFd(hm), fdarg, sizeof fdarg);
        char *args[] = { (char *)argv0, "wine", low, high, caps, mem_name, hsem ? sem_name : "-", fdarg, NULL };
        pid = spawn(args);
        check(pid > 0, "could not start the wine child");
        close(cfd);
    }
    if (pid > 0 && hsem) {
        /* The host signals 5 (the syncobj itself on DRM); the importer
         * answers 6. */
        EXPECT_OK(sync_signal(hDevice, host_fence ? host_fence : sem, 5));
        NTSTATUS st = rp_sync_wait(hDevice, sem, 6);
        check(st == STATUS_SUCCESS, "waiting for the importer's value 6 returned 0x%08" PRIX32, (uint32_t)st);
        if (host_fence)
            EXPECT_OK(rp_sync_wait(hDevice, host_fence, 6));
    }
    if (pid > 0)
        check_child_exit("wine", wait_child(pid));
    if (map != MAP_FAILED) {
        dmabuf_sync(host, 0);
        size_t bad = first_mismatch(map, BUFFER_SIZE / 2, BUFFER_SIZE, 32);
        check(bad == BUFFER_SIZE, "the importer's bytes differ at %zu (seen through the host memory)", bad);
        dmabuf_sync(host, 1);
        munmap(map, BUFFER_SIZE);
    }
    printf("    wine: %s wrapped, opened by name and handle%s\n", software ? "sealed memfd" : "dma-buf",
           !hsem ? " (no semaphore)" : timelines ? ", imported syncobj shared by name" :
           ", fence (syncobj import not supported) shared by name");

    close_handle(hm, "memory handle");
    close_handle(hsem, "semaphore handle");
    if (hm)
        check_retired(mem_name, 0);
    if (hsem)
        check_retired(sem_name, 1);
    if (sem)
        EXPECT_OK(sync_destroy(sem));
    if (host_fence)
        EXPECT_OK(sync_destroy(host_fence));
    if (res)
        EXPECT_OK(destroy_resource(hDevice, res));
    if (host >= 0)
        close(host);
    if (throwaway_alloc) {
        D3DKMT_DESTROYALLOCATION2 d;
        memset(&d, 0, sizeof d);
        d.hDevice = hDevice;
        d.phAllocationList = &throwaway_alloc;
        d.AllocationCount = 1;
        EXPECT_OK(D3DKMTDestroyAllocation2(&d));
    }
    EXPECT_OK(destroy_device(hDevice));
}

/* ======================================================================== */
/* Scenario 4: DXVK d3d11 shared texture with a keyed mutex, global handles */
/* ======================================================================== */

/* D3D11 MISC_SHARED | MISC_SHARED_KEYEDMUTEX without MISC_SHARED_NTHANDLE:
 * Wine's Vulkan layer exports the memory and the semaphore as OPAQUE_WIN32_KMT
 * (d3dkmt_create_resource / d3dkmt_create_sync with a global handle), DXVK
 * opens both by value (initKmtHandles), makes a keyed mutex with a global
 * hSharedHandle, and puts both globals in the runtime descriptor; the other
 * process gets the texture's value (IDXGIResource::GetSharedHandle) and opens
 * everything by value (d3d11_device.cpp OpenSharedResource, KMT path). */
static void expected_d3d11_kmt_desc(rp_d3d11_desc *d, UINT mutex_handle, UINT sync_handle)
{
    expected_d3d11_desc(d);
    d->dxgi.nt_shared = 0;
    d->dxgi.mutex_handle = mutex_handle;
    d->dxgi.sync_handle = sync_handle;
    d->u.texture2d.MiscFlags = RP_D3D11_MISC_SHARED_KEYEDMUTEX;
}

static int is_global_handle(D3DKMT_HANDLE h)
{
    return (h & 0xc0000000u) == 0xc0000000u && (h & 0x3fu) == 2;
}

/* D3DKMTOpenResource2 of a global handle as DXVK and the layer make it: one
 * zeroed allocation info, the runtime buffer and size given, no driver buffers. */
static NTSTATUS open_by_value(D3DKMT_HANDLE hDevice, D3DKMT_HANDLE value, void *runtime, UINT size,
                              D3DKMT_HANDLE *phResource, D3DKMT_HANDLE *phAllocation, UINT *pSize)
{
    D3DDDI_OPENALLOCATIONINFO2 alloc;
    D3DKMT_OPENRESOURCE o;
    memset(&alloc, 0, sizeof alloc);
    memset(&o, 0, sizeof o);
    o.hDevice = hDevice;
    o.hGlobalShare = value;
    o.NumAllocations = 1;
    o.pOpenAllocationInfo2 = &alloc;
    o.pPrivateRuntimeData = runtime;
    o.PrivateRuntimeDataSize = size;
    NTSTATUS st = D3DKMTOpenResource2(&o);
    *phResource = st == STATUS_SUCCESS ? o.hResource : 0;
    *phAllocation = st == STATUS_SUCCESS ? alloc.hAllocation : 0;
    if (pSize)
        *pSize = o.PrivateRuntimeDataSize;
    if (st == STATUS_SUCCESS) {
        check_local(o.hResource, "OpenResource2 hResource");
        check_local(alloc.hAllocation, "OpenResource2 hAllocation");
    }
    return st;
}

/* The child: OpenSharedResource on the value, then the keyed-mutex rounds.
 * argv: the texture's value, ready fd. */
static int dxvk_kmt_child(LUID luid, int caps, D3DKMT_HANDLE value, int readyfd)
{
    who = "dxvk kmt child";
    current_phase = "dxvk kmt child";
    alarm(CHILD_SECONDS);
    int fences = (caps & CAP_FENCES) != 0;
    D3DKMT_HANDLE hAdapter, hDevice;
    if (!child_device(luid, 0, &hAdapter, &hDevice))
        return 1;
    check(is_global_handle(value), "GetSharedHandle gave 0x%08" PRIX32 ", not a global handle", (uint32_t)value);
    /* QueryResourceInfo with a 0x108 buffer and size 0x108: the real size comes back. */
    uint8_t buf[0x108];
    memset(buf, 0xcd, sizeof buf);
    D3DKMT_QUERYRESOURCEINFO q;
    memset(&q, 0, sizeof q);
    q.hDevice = hDevice;
    q.hGlobalShare = value;
    q.pPrivateRuntimeData = buf;
    q.PrivateRuntimeDataSize = sizeof buf;
    EXPECT_OK(D3DKMTQueryResourceInfo(&q));
    check(q.PrivateRuntimeDataSize == sizeof(rp_d3d11_desc) && q.NumAllocations == 1,
          "QueryResourceInfo: PrivateRuntimeDataSize 0x%x, NumAllocations %u", q.PrivateRuntimeDataSize,
          q.NumAllocations);
    /* OpenResource2 with the queried size, read the descriptor, DestroyAllocation at once. */
    D3DKMT_HANDLE res = 0, alloc = 0;
    UINT size = 0;
    EXPECT_OK(open_by_value(hDevice, value, buf, q.PrivateRuntimeDataSize, &res, &alloc, &size));
    rp_d3d11_desc got;
    memcpy(&got, buf, sizeof got);
    check(size == sizeof got && got.dxgi.size == sizeof got && got.dxgi.version == 4 && got.dxgi.keyed_mutex == 1 &&
          got.dxgi.nt_shared == 0, "the descriptor: size 0x%x/0x%x, version %u, keyed_mutex %u, nt_shared %u", size,
          got.dxgi.size, got.dxgi.version, got.dxgi.keyed_mutex, got.dxgi.nt_shared);
    check(is_global_handle(got.dxgi.mutex_handle) && is_global_handle(got.dxgi.sync_handle),
          "the descriptor's mutex_handle 0x%08" PRIX32 " and sync_handle 0x%08" PRIX32 " are global handles",
          (uint32_t)got.dxgi.mutex_handle, (uint32_t)got.dxgi.sync_handle);
    if (res)
        EXPECT_OK(destroy_resource_v1(hDevice, res));
    /* The Vulkan import of the KMT memory (Wine d3dkmt_open_resource(global)). */
    EXPECT_OK(open_by_value(hDevice, value, NULL, 0, &res, &alloc, NULL));
    /* The semaphore imported from sync_handle (open_sync(global)), then OpenKeyedMutex (v1). */
    D3DKMT_OPENSYNCHRONIZATIONOBJECT os;
    memset(&os, 0, sizeof os);
    os.hSharedHandle = got.dxgi.sync_handle;
    EXPECT_OK(D3DKMTOpenSynchronizationObject(&os));
    D3DKMT_OPENKEYEDMUTEX ok = { got.dxgi.mutex_handle, 0 };
    EXPECT_OK(D3DKMTOpenKeyedMutex(&ok));
    check_local(ok.hKeyedMutex, "OpenKeyedMutex hKeyedMutex");
    unsigned retries = 0;
    int good = res && alloc && ok.hKeyedMutex && os.hSyncObject;
    for (unsigned r = 0; good && r < KM_ROUNDS; r++)
        good = dxvk_round(hDevice, ok.hKeyedMutex, fences ? os.hSyncObject : 0, alloc, 1, 0, 2 * (UINT64)r + 2,
                          &retries, 1);
    write_byte(readyfd, 'r');
    if (ok.hKeyedMutex)
        EXPECT_OK(km_destroy(ok.hKeyedMutex));
    if (os.hSyncObject)
        EXPECT_OK(sync_destroy(os.hSyncObject));
    if (res)
        EXPECT_OK(destroy_resource_v1(hDevice, res));
    EXPECT_OK(destroy_device(hDevice));
    EXPECT_OK(close_adapter(hAdapter));
    return child_done();
}

static void scenario_dxvk_kmt(const char *argv0, const adapter_t *a)
{
    int fences = (a->caps & CAP_FENCES) != 0;
    D3DKMT_HANDLE hAdapter = 0, hDevice = 0;
    EXPECT_OK(open_adapter(a->luid, &hAdapter));
    if (!hAdapter)
        return;
    EXPECT_OK(create_device(hAdapter, &hDevice));
    if (!hDevice) {
        EXPECT_OK(close_adapter(hAdapter));
        return;
    }

    /* The layer: vkAllocateMemory with an OPAQUE_WIN32_KMT export (CreateResource +
     * CreateShared, no NtSecuritySharing, empty runtime data): a global hGlobalShare. */
    D3DKMT_LINUX_ALLOCATION_DESC desc;
    fill_desc(&desc, TEX_WIDTH, TEX_HEIGHT, RP_DRM_FORMAT_ARGB8888, 0, -1);
    D3DDDI_ALLOCATIONINFO2 info;
    D3DKMT_CREATEALLOCATION ca;
    memset(&info, 0, sizeof info);
    memset(&ca, 0, sizeof ca);
    info.pPrivateDriverData = &desc;
    info.PrivateDriverDataSize = sizeof desc;
    ca.hDevice = hDevice;
    ca.hGlobalShare = RP_INVALID_HANDLE;
    ca.NumAllocations = 1;
    ca.pAllocationInfo2 = &info;
    ca.Flags.CreateResource = 1;
    ca.Flags.CreateShared = 1;
    EXPECT_OK(D3DKMTCreateAllocation2(&ca));
    D3DKMT_HANDLE layer_res = ca.hResource, global = ca.hGlobalShare;
    check(is_global_handle(global), "the layer's hGlobalShare 0x%08" PRIX32 " is not global", (uint32_t)global);

    /* DXVK initKmtHandles, KMT type: OpenResource2 by value with no runtime data. */
    D3DKMT_HANDLE dx_res = 0, dx_alloc = 0;
    if (layer_res)
        EXPECT_OK(open_by_value(hDevice, global, NULL, 0, &dx_res, &dx_alloc, NULL));

    /* The DxvkFence: the layer's semaphore with a global handle, opened by
     * dxvk_fence.cpp initKmtHandles with OpenSynchronizationObject. */
    D3DKMT_HANDLE layer_sync = 0, sync_global = 0, dxvk_sync = 0;
    EXPECT_OK(sync_create_ex(hDevice, fences ? D3DDDI_FENCE : D3DDDI_SYNCHRONIZATION_MUTEX, 0x1u, 0, &layer_sync,
                             NULL, &sync_global));
    check(is_global_handle(sync_global), "Shared alone: SharedHandle 0x%08" PRIX32 " is not global",
          (uint32_t)sync_global);
    if (layer_sync) {
        D3DKMT_OPENSYNCHRONIZATIONOBJECT os;
        memset(&os, 0, sizeof os);
        os.hSharedHandle = sync_global;
        EXPECT_OK(D3DKMTOpenSynchronizationObject(&os));
        dxvk_sync = os.hSyncObject;
    }
    /* CreateKeyedMutex2 without NtSecuritySharing: a global hSharedHandle. */
    D3DKMT_CREATEKEYEDMUTEX2 c;
    memset(&c, 0, sizeof c);
    c.hSharedHandle = RP_INVALID_HANDLE;
    EXPECT_OK(D3DKMTCreateKeyedMutex2(&c));
    D3DKMT_HANDLE km = c.hKeyedMutex;
    check(is_global_handle(c.hSharedHandle), "CreateKeyedMutex2: hSharedHandle 0x%08" PRIX32 " is not global",
          (uint32_t)c.hSharedHandle);

    /* ExportImageInfo: the descriptor with both globals, through the escape. */
    rp_d3d11_desc d11;
    expected_d3d11_kmt_desc(&d11, c.hSharedHandle, sync_global);
    if (dx_res) {
        D3DKMT_ESCAPE e;
        memset(&e, 0, sizeof e);
        e.Type = D3DKMT_ESCAPE_UPDATE_RESOURCE_WINE;
        e.hContext = dx_res;
        e.pPrivateDriverData = &d11;
        e.PrivateDriverDataSize = sizeof d11;
        EXPECT_OK(D3DKMTEscape(&e));
    }
    /* d3d11_initializer: AcquireSync(0, 0), initialise, ReleaseSync(0) with fence 1. */
    if (km && dx_alloc) {
        UINT64 fence = UINT64_MAX;
        EXPECT_OK(rp_km_acquire(km, 0, dxvk_timeout(0), &fence));
        uint8_t *p = NULL;
        EXPECT_OK(lock(hDevice, dx_alloc, &p));
        if (p) {
            write_round(p, 1);
            EXPECT_OK(unlock(hDevice, dx_alloc));
        }
        if (fences && dxvk_sync)
            EXPECT_OK(sync_signal(hDevice, dxvk_sync, 1));
        EXPECT_OK(rp_km_release(km, 0, 1));
    }

    /* GetSharedHandle: the value, given to the other process on its command line. */
    int ready[2] = { -1, -1 };
    pid_t pid = -1;
    if (dx_res && km && dxvk_sync && pipe2(ready, O_CLOEXEC) == 0) {
        char low[16], high[16], caps[16], valarg[16], readyarg[16];
        luid_args(a, low, high, caps);
        snprintf(valarg, sizeof valarg, "%" PRIu32, (uint32_t)global);
        int cready = inheritable(ready[1], readyarg, sizeof readyarg);
        char *args[] = { (char *)argv0, "dxvk-kmt", low, high, caps, valarg, readyarg, NULL };
        pid = spawn(args);
        check(pid > 0, "could not start the dxvk kmt child");
        close(cready);
    }
    unsigned retries = 0;
    int ok = pid > 0;
    for (unsigned r = 0; ok && r < KM_ROUNDS; r++)
        ok = dxvk_round(hDevice, km, fences ? dxvk_sync : 0, dx_alloc, 0, 1, 2 * (UINT64)r + 1, &retries, 1);
    if (pid > 0) {
        check(read_byte(ready[0], 2 * WAIT_MS) == 'r', "the dxvk kmt child did not finish its rounds");
        check_child_exit("dxvk-kmt", wait_child(pid));
    }
    if (ok)
        ok = dxvk_round(hDevice, km, fences ? dxvk_sync : 0, dx_alloc, 0, 1, 2 * (UINT64)KM_ROUNDS + 1, &retries, 0);
    printf("    dxvk (global handles): %u keyed-mutex rounds each way%s\n", KM_ROUNDS,
           fences ? "" : " (no fences: semaphore waits skipped)");
    for (int i = 0; i < 2; i++)
        if (ready[i] >= 0)
            close(ready[i]);
    if (ok && km)
        EXPECT_OK(rp_km_release(km, 0, 2 * (UINT64)KM_ROUNDS + 2));
    if (km)
        EXPECT_OK(km_destroy(km));
    if (dxvk_sync)
        EXPECT_OK(sync_destroy(dxvk_sync));
    if (layer_sync)
        EXPECT_OK(sync_destroy(layer_sync));
    if (dx_res)
        EXPECT_OK(destroy_resource_v1(hDevice, dx_res));
    if (layer_res)
        EXPECT_OK(destroy_resource(hDevice, layer_res));
    /* Every local reference is gone: the values no longer open. */
    D3DKMT_QUERYRESOURCEINFO q;
    memset(&q, 0, sizeof q);
    q.hDevice = hDevice;
    q.hGlobalShare = global;
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTQueryResourceInfo(&q));
    D3DKMT_OPENKEYEDMUTEX gone = { c.hSharedHandle, 0 };
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTOpenKeyedMutex(&gone));
    EXPECT_OK(destroy_device(hDevice));
    EXPECT_OK(close_adapter(hAdapter));
}

/* ------------------------------------------------------------------------ */
/* Parent                                                                   */
/* ------------------------------------------------------------------------ */

/* The library starts one name thread (with its descriptor) with the first
 * name a process publishes, and may open things on the first keyed mutex:
 * do both once before counting. */
static void warm_up(D3DKMT_HANDLE hAdapter)
{
    D3DKMT_HANDLE hDevice = 0, res = 0, alloc = 0, km = 0;
    EXPECT_OK(create_device(hAdapter, &hDevice));
    if (!hDevice)
        return;
    D3DKMT_LINUX_ALLOCATION_DESC d;
    fill_desc(&d, 0, 0, 0, 4096, -1);
    EXPECT_OK(create_memory(hDevice, &d, 1, &res, &alloc));
    char name[160];
    session_name(name, sizeof name, "WarmUp", 0);
    nt_name_t n;
    HANDLE h = NULL;
    if (res)
        EXPECT_OK(D3DKMTShareObjects(1, &res, make_attributes(&n, name, OBJ_CASE_INSENSITIVE, NULL), GENERIC_ALL, &h));
    close_handle(h, "warm-up handle");
    if (h) {
        /* Poll (up to 5 s) until the name is gone. */
        NTSTATUS st = STATUS_SUCCESS;
        for (int i = 0; i < 500; i++) {
            HANDLE o = NULL;
            st = open_by_name(name, OBJ_CASE_INSENSITIVE, GENERIC_ALL, &o);
            if (o)
                close(D3DKMTLinuxHandleToFd(o));
            if (st == STATUS_OBJECT_NAME_NOT_FOUND)
                break;
            usleep(10000);
        }
        check(st == STATUS_OBJECT_NAME_NOT_FOUND, "warm-up name not retired: 0x%08" PRIX32, (uint32_t)st);
    }
    if (res)
        EXPECT_OK(destroy_resource(hDevice, res));
    D3DKMT_CREATEKEYEDMUTEX2 c;
    memset(&c, 0, sizeof c);
    c.Flags.NtSecuritySharing = 1;
    EXPECT_OK(D3DKMTCreateKeyedMutex2(&c));
    km = c.hKeyedMutex;
    if (km)
        EXPECT_OK(km_destroy(km));
    EXPECT_OK(destroy_device(hDevice));
}

static void query_caps(adapter_t *a)
{
    D3DKMT_LINUX_ADAPTER_INFO li;
    NTSTATUS st = query_linux_info(a->hAdapter, &li);
    EXPECT_OK(st);
    a->caps = 0;
    snprintf(a->driver, sizeof a->driver, "?");
    if (st != STATUS_SUCCESS)
        return;
    snprintf(a->driver, sizeof a->driver, "%s", li.DriverName);
    if (li.Flags & D3DKMT_LINUX_ADAPTER_SOFTWARE)
        a->caps |= CAP_SOFTWARE;
    if (li.Flags & D3DKMT_LINUX_ADAPTER_SYNCOBJ_TIMELINE)
        a->caps |= CAP_TIMELINES;
    if (a->caps)
        a->caps |= CAP_FENCES;
}

int main(int argc, char **argv)
{
    if (argc >= 5) {
        LUID luid;
        luid.LowPart = (DWORD)strtoul(argv[2], NULL, 10);
        luid.HighPart = (LONG)strtol(argv[3], NULL, 10);
        int caps = atoi(argv[4]);
        signal(SIGPIPE, SIG_IGN);
        if (argc == 9 && strcmp(argv[1], "dxvk") == 0)
            return dxvk_child(luid, caps, atoi(argv[5]), argv[6], atoi(argv[7]), atoi(argv[8]));
        if (argc == 8 && strcmp(argv[1], "vkd3d") == 0)
            return vkd3d_child(luid, caps, atoi(argv[5]), atoi(argv[6]), atoi(argv[7]));
        if (argc == 8 && strcmp(argv[1], "wine") == 0)
            return wine_child(luid, caps, argv[5], argv[6], atoi(argv[7]));
        if (argc == 7 && strcmp(argv[1], "dxvk-kmt") == 0)
            return dxvk_kmt_child(luid, caps, (D3DKMT_HANDLE)strtoul(argv[5], NULL, 10), atoi(argv[6]));
    }
    test_start(argc, argv, PHASE_SECONDS);
    ULONG count = 0;
    D3DKMT_ADAPTERINFO *infos = enum_adapters(&count);
    adapter_t *adapters = calloc(count ? count : 1, sizeof *adapters);
    if (!adapters) {
        perror("calloc");
        return 1;
    }
    D3DKMT_HANDLE software = 0;
    for (ULONG i = 0; i < count; i++) {
        adapters[i].index = (unsigned)i;
        adapters[i].luid = infos[i].AdapterLuid;
        adapters[i].hAdapter = infos[i].hAdapter;
        check_local(infos[i].hAdapter, "EnumAdapters2 hAdapter");
        query_caps(&adapters[i]);
        if (adapters[i].caps & CAP_SOFTWARE)
            software = adapters[i].hAdapter;
    }

    phase("warm-up");
    warm_up(software ? software : (count ? adapters[0].hAdapter : 0));
    int fds_before, threads_before;
    quiet_counts(&fds_before, &threads_before);

    for (ULONG i = 0; i < count; i++) {
        const adapter_t *a = &adapters[i];
        static const char *const names[4] = { "dxvk d3d11 keyed-mutex texture", "vkd3d-proton d3d12 resource+fence",
                                               "wine vulkan layer memory+semaphore",
                                               "dxvk d3d11 keyed-mutex texture (global handles)" };
        for (int s = 0; s < 4; s++) {
            int before = failed;
            phase(names[s]);
            printf("adapter %u (%s%s%s): %s\n", a->index, a->driver, a->caps & CAP_TIMELINES ? ", timelines" : "",
                   a->caps & CAP_FENCES ? "" : ", no fences", names[s]);
            if (s == 0)
                scenario_dxvk(argv[0], a);
            else if (s == 1)
                scenario_vkd3d(argv[0], a);
            else if (s == 2)
                scenario_wine(argv[0], a);
            else
                scenario_dxvk_kmt(argv[0], a);
            printf("  -> %s", failed == before ? "ok" : "FAILED");
            if (failed != before)
                printf(" (%d failed)", failed - before);
            printf("\n");
        }
    }

    phase("descriptor and thread count");
    int fds_after, threads_after;
    settle(fds_before, threads_before, &fds_after, &threads_after);
    check(fds_before >= 0 && fds_after == fds_before, "descriptors: %d before the replays, %d after", fds_before,
          fds_after);
    check(threads_before > 0 && threads_after == threads_before, "threads: %d before the replays, %d after",
          threads_before, threads_after);
    alarm(0);

    free(adapters);
    close_adapters(infos, count);
    return test_finish();
}
