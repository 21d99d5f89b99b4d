/*
 * share_test.c - cross-process test of D3DKMT resource sharing through the
 * C ABI of libd3dkmt, written against <d3dkmthk.h> only.
 *
 * Build and run:
 *     cc -o share_test share_test.c $(pkg-config --cflags --libs d3dkmt)
 *     ./share_test
 *
 * For every adapter D3DKMTEnumAdapters2 reports, the parent process creates a
 * device and a shared resource of two 64 KiB allocations, writes a pattern
 * into allocation 0, shares the resource as an NT handle (a file descriptor)
 * and re-executes itself as
 *     share_test child <fd> <adapter LUID low part> <adapter LUID high part>
 * with a copy of that descriptor inherited. The child opens the adapter by
 * LUID, opens the resource from the handle, checks the runtime and driver
 * private data and the pattern, and writes a reply into allocation 1, which
 * the parent then checks. The parent also checks that bad calls are refused
 * with the statuses Windows documents, and that 200 share/open/close cycles
 * leave the number of open descriptors unchanged.
 *
 * Then, per adapter, keyed mutexes and sync objects:
 *   - a resource, keyed mutex and monitored fence shared as one handle
 *     (cObjects 3) and handed back and forth PINGPONG_ROUNDS times between
 *     this process and a "pingpong" child: keys 0 -> 1 -> 0, each side
 *     checking the counter the other wrote into the allocation, the
 *     FenceValue and private data of the other's release, and that the sync
 *     object reached that fence value;
 *   - keyed mutex statuses (timeouts, ownership per local handle, data sizes,
 *     bad handles) and abandonment: by destroying while owning, and by a
 *     "hold" child that owns the mutex and is killed with SIGKILL;
 *   - sync objects: types, signal and wait rules, wait-any and wait-all
 *     through eventfds, a monitored fence shared alone and signalled by a
 *     "signal" child while this process waits;
 *   - on DRM adapters with timeline syncobjs: syncobj and sync_file export
 *     and import between two devices.
 * On an adapter without timeline syncobjs (vgem) sync objects cannot be
 * created; that status is checked and the sync parts are skipped.
 *
 * Output: one line per adapter on stdout, failure details on stderr, and as
 * the last line "N passed, M failed". The exit status is 0 only if nothing
 * failed.
 */
#define _GNU_SOURCE
#include <d3dkmthk.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ALLOCATION_SIZE   65536u
#define NUM_ALLOCATIONS   2u
#define RUNTIME_DATA_SIZE 16u
#define RESOURCE_DATA_SIZE 8u
#define LEAK_CYCLES       200
#define SHARE_ACCESS      (STANDARD_RIGHTS_READ | SHARED_ALLOCATION_WRITE)
#define KM_DATA_SIZE      8u      /* keyed mutex private data: one UINT64 */
#define PINGPONG_ROUNDS   1000u
#define SYNC_LEAK_CYCLES  30
#define NO_TIMEOUT        INT64_MIN /* km_acquire: pTimeout NULL (wait for ever) */
#define MS_100NS          (-10000LL) /* one millisecond as an NT relative timeout */

/* Each allocation's private driver data: the descriptor the library reads,
 * followed by bytes of our own that must travel with the allocation. */
typedef struct {
    D3DKMT_LINUX_ALLOCATION_DESC desc;
    uint8_t tail[8];
} alloc_private_t;
#define ALLOC_TAIL_SIZE sizeof(((alloc_private_t *)0)->tail)

static int passed;
static int failed;
static const char *who = "parent";

/* Hang guard of the parent: each phase of the test must end within
 * PHASE_SECONDS, else SIGALRM names the phase and ends the test. */
#define PHASE_SECONDS 90
static const char *volatile current_phase = "start";

static void on_phase_timeout(int sig)
{
    (void)sig;
    static const char a[] = "parent: FAIL: timed out (hung) in phase: ";
    const char *p = current_phase;
    ssize_t ignored = write(2, a, sizeof a - 1);
    ignored = write(2, p, strlen(p));
    ignored = write(2, "\n", 1);
    (void)ignored;
    _exit(124);
}

static void phase(const char *name)
{
    current_phase = name;
    alarm(PHASE_SECONDS);
}

static void check(int ok, const char *fmt, ...)
{
    if (ok) {
        passed++;
        return;
    }
    failed++;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: FAIL: ", who);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* Checks that an NTSTATUS is the expected one. */
#define EXPECT_STATUS(expected, call)                                                   \
    do {                                                                                \
        NTSTATUS st_ = (call);                                                          \
        check(st_ == (expected), "%s:%d: %s returned 0x%08" PRIX32 ", expected 0x%08" \
              PRIX32, __FILE__, __LINE__, #call, (uint32_t)st_, (uint32_t)(expected));   \
    } while (0)

#define EXPECT_OK(call) EXPECT_STATUS(STATUS_SUCCESS, call)

/* ------------------------------------------------------------------------ */
/* Test data                                                                */
/* ------------------------------------------------------------------------ */

static uint8_t pattern_byte(size_t i)
{
    return (uint8_t)((i * 131u + 17u) ^ (i >> 8));
}

static uint8_t reply_byte(size_t i)
{
    return (uint8_t)((i * 73u + 5u) ^ 0x5Au);
}

static void fill_runtime_data(uint8_t *p)
{
    for (unsigned i = 0; i < RUNTIME_DATA_SIZE; i++)
        p[i] = (uint8_t)(0x10u + i);
}

static void fill_resource_data(uint8_t *p)
{
    for (unsigned i = 0; i < RESOURCE_DATA_SIZE; i++)
        p[i] = (uint8_t)(0xA0u + i);
}

static void fill_alloc_private(alloc_private_t *p, unsigned index)
{
    memset(p, 0, sizeof *p);
    p->desc.Version = D3DKMT_LINUX_ALLOCATION_DESC_VERSION;
    p->desc.Flags = 0;
    p->desc.Size = ALLOCATION_SIZE;
    p->desc.Fourcc = 0;
    p->desc.Modifier = 0;
    p->desc.DmaBufFd = -1;
    for (unsigned i = 0; i < sizeof p->tail; i++)
        p->tail[i] = (uint8_t)(0xC0u + index * 16u + i);
}

/* Number of open descriptors of this process. */
static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.')
            n++;
    }
    closedir(d);
    return n - 1; /* opendir's own descriptor */
}

/* ------------------------------------------------------------------------ */
/* Small wrappers                                                           */
/* ------------------------------------------------------------------------ */

static NTSTATUS create_device(D3DKMT_HANDLE hAdapter, D3DKMT_HANDLE *phDevice)
{
    D3DKMT_CREATEDEVICE cd;
    memset(&cd, 0, sizeof cd);
    cd.hAdapter = hAdapter;
    NTSTATUS st = D3DKMTCreateDevice(&cd);
    *phDevice = NT_SUCCESS(st) ? cd.hDevice : 0;
    return st;
}

static NTSTATUS destroy_device(D3DKMT_HANDLE hDevice)
{
    D3DKMT_DESTROYDEVICE dd = { hDevice };
    return D3DKMTDestroyDevice(&dd);
}

static NTSTATUS close_adapter(D3DKMT_HANDLE hAdapter)
{
    D3DKMT_CLOSEADAPTER ca = { hAdapter };
    return D3DKMTCloseAdapter(&ca);
}

/* Destroys a resource and all of its allocations. */
static NTSTATUS destroy_resource(D3DKMT_HANDLE hDevice, D3DKMT_HANDLE hResource)
{
    D3DKMT_DESTROYALLOCATION2 da;
    memset(&da, 0, sizeof da);
    da.hDevice = hDevice;
    da.hResource = hResource;
    da.phAllocationList = NULL;
    da.AllocationCount = 0;
    return D3DKMTDestroyAllocation2(&da);
}

static NTSTATUS lock(D3DKMT_HANDLE hDevice, D3DKMT_HANDLE hAllocation, uint8_t **pp)
{
    D3DKMT_LOCK2 lk;
    memset(&lk, 0, sizeof lk);
    lk.hDevice = hDevice;
    lk.hAllocation = hAllocation;
    NTSTATUS st = D3DKMTLock2(&lk);
    *pp = NT_SUCCESS(st) ? (uint8_t *)lk.pData : NULL;
    return st;
}

static NTSTATUS unlock(D3DKMT_HANDLE hDevice, D3DKMT_HANDLE hAllocation)
{
    D3DKMT_UNLOCK2 ul = { hDevice, hAllocation };
    return D3DKMTUnlock2(&ul);
}

/* Creates a resource of `count` allocations of ALLOCATION_SIZE bytes.
 * shared != 0 sets CreateResource, CreateShared and NtSecuritySharing;
 * otherwise only CreateResource. */
static NTSTATUS create_resource(D3DKMT_HANDLE hDevice, unsigned count, int shared,
                                D3DKMT_HANDLE *phResource, D3DKMT_HANDLE *phAllocations)
{
    uint8_t runtime[RUNTIME_DATA_SIZE];
    uint8_t resdata[RESOURCE_DATA_SIZE];
    alloc_private_t priv[NUM_ALLOCATIONS];
    D3DDDI_ALLOCATIONINFO2 info[NUM_ALLOCATIONS];
    D3DKMT_CREATEALLOCATION ca;

    if (count > NUM_ALLOCATIONS)
        return STATUS_INVALID_PARAMETER;
    fill_runtime_data(runtime);
    fill_resource_data(resdata);
    memset(info, 0, sizeof info);
    for (unsigned i = 0; i < count; i++) {
        fill_alloc_private(&priv[i], i);
        info[i].pPrivateDriverData = &priv[i];
        info[i].PrivateDriverDataSize = sizeof priv[i];
    }

    memset(&ca, 0, sizeof ca);
    ca.hDevice = hDevice;
    ca.hResource = 0;
    ca.pPrivateRuntimeData = runtime;
    ca.PrivateRuntimeDataSize = sizeof runtime;
    ca.pPrivateDriverData = resdata;
    ca.PrivateDriverDataSize = sizeof resdata;
    ca.NumAllocations = count;
    ca.pAllocationInfo2 = info;
    ca.Flags.CreateResource = 1;
    if (shared) {
        ca.Flags.CreateShared = 1;
        ca.Flags.NtSecuritySharing = 1;
    }

    NTSTATUS st = D3DKMTCreateAllocation2(&ca);
    *phResource = NT_SUCCESS(st) ? ca.hResource : 0;
    for (unsigned i = 0; i < count; i++)
        phAllocations[i] = NT_SUCCESS(st) ? info[i].hAllocation : 0;
    return st;
}

/* Buffers for D3DKMTOpenResourceFromNtHandle, sized from the query. */
typedef struct {
    D3DKMT_QUERYRESOURCEINFOFROMNTHANDLE query;
    D3DKMT_OPENRESOURCEFROMNTHANDLE open;
    D3DDDI_OPENALLOCATIONINFO2 allocs[NUM_ALLOCATIONS + 1];
    uint8_t runtime[RUNTIME_DATA_SIZE];
    uint8_t resdata[RESOURCE_DATA_SIZE];
    uint8_t *total;
} open_buffers_t;

/* Queries the sizes and prepares exactly-sized buffers. */
static NTSTATUS query_for_open(D3DKMT_HANDLE hDevice, HANDLE h, open_buffers_t *b)
{
    memset(b, 0, sizeof *b);
    b->query.hDevice = hDevice;
    b->query.hNtHandle = h;
    b->query.pPrivateRuntimeData = NULL;
    b->query.PrivateRuntimeDataSize = 0;
    NTSTATUS st = D3DKMTQueryResourceInfoFromNtHandle(&b->query);
    if (!NT_SUCCESS(st))
        return st;
    b->total = malloc(b->query.TotalPrivateDriverDataSize ? b->query.TotalPrivateDriverDataSize : 1);
    return b->total ? STATUS_SUCCESS : STATUS_NO_MEMORY;
}

/* Fills the open request for `numAllocations` entries and a total buffer of
 * `totalSize` bytes, from a successful query_for_open. */
static void prepare_open(D3DKMT_HANDLE hDevice, HANDLE h, open_buffers_t *b,
                         UINT numAllocations, UINT totalSize)
{
    memset(&b->open, 0, sizeof b->open);
    memset(b->allocs, 0, sizeof b->allocs);
    memset(b->runtime, 0, sizeof b->runtime);
    memset(b->resdata, 0, sizeof b->resdata);
    b->open.hDevice = hDevice;
    b->open.hNtHandle = h;
    b->open.NumAllocations = numAllocations;
    b->open.pOpenAllocationInfo2 = b->allocs;
    b->open.PrivateRuntimeDataSize = RUNTIME_DATA_SIZE;
    b->open.pPrivateRuntimeData = b->runtime;
    b->open.ResourcePrivateDriverDataSize = RESOURCE_DATA_SIZE;
    b->open.pResourcePrivateDriverData = b->resdata;
    b->open.TotalPrivateDriverDataBufferSize = totalSize;
    b->open.pTotalPrivateDriverDataBuffer = b->total;
    b->open.pKeyedMutexPrivateRuntimeData = NULL;
    b->open.KeyedMutexPrivateRuntimeDataSize = 0;
}

static void free_open_buffers(open_buffers_t *b)
{
    free(b->total);
    b->total = NULL;
}

/* ------------------------------------------------------------------------ */
/* Keyed mutex and sync object wrappers                                     */
/* ------------------------------------------------------------------------ */

static void fill_km_data(uint8_t *p)
{
    for (unsigned i = 0; i < KM_DATA_SIZE; i++)
        p[i] = (uint8_t)(0xE0u + i);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The current Windows system time (100 ns units since 1601), for absolute
 * NT timeouts. */
static LONGLONG nt_system_time(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (LONGLONG)ts.tv_sec * 10000000LL + ts.tv_nsec / 100 + 116444736000000000LL;
}

/* A keyed mutex released with `key`, created with `size` bytes of private
 * data (NtSecuritySharing, as a runtime that shares it sets). */
static NTSTATUS km_create(UINT64 key, const void *data, UINT size, D3DKMT_HANDLE *ph)
{
    D3DKMT_CREATEKEYEDMUTEX2 c;
    memset(&c, 0, sizeof c);
    c.InitialValue = key;
    c.pPrivateRuntimeData = (void *)data;
    c.PrivateRuntimeDataSize = size;
    c.Flags.NtSecuritySharing = 1;
    NTSTATUS st = D3DKMTCreateKeyedMutex2(&c);
    *ph = st == STATUS_SUCCESS ? c.hKeyedMutex : 0;
    return st;
}

static NTSTATUS km_open(HANDLE h, void *data, UINT size, D3DKMT_HANDLE *ph)
{
    D3DKMT_OPENKEYEDMUTEXFROMNTHANDLE o;
    memset(&o, 0, sizeof o);
    o.hNtHandle = h;
    o.pPrivateRuntimeData = data;
    o.PrivateRuntimeDataSize = size;
    NTSTATUS st = D3DKMTOpenKeyedMutexFromNtHandle(&o);
    *ph = st == STATUS_SUCCESS ? o.hKeyedMutex : 0;
    return st;
}

static NTSTATUS km_destroy(D3DKMT_HANDLE h)
{
    D3DKMT_DESTROYKEYEDMUTEX d = { h };
    return D3DKMTDestroyKeyedMutex(&d);
}

/* timeout: an NT timeout (0 tries, < 0 relative, > 0 absolute) or NO_TIMEOUT
 * for a NULL pTimeout. *pFence (if not NULL) receives FenceValue. */
static NTSTATUS km_acquire(D3DKMT_HANDLE h, UINT64 key, LONGLONG timeout, UINT64 *pFence,
                           void *data, UINT size)
{
    D3DKMT_ACQUIREKEYEDMUTEX2 a;
    LARGE_INTEGER t;
    memset(&a, 0, sizeof a);
    t.QuadPart = timeout;
    a.hKeyedMutex = h;
    a.Key = key;
    a.pTimeout = timeout == NO_TIMEOUT ? NULL : &t;
    a.FenceValue = UINT64_MAX;
    a.pPrivateRuntimeData = data;
    a.PrivateRuntimeDataSize = size;
    NTSTATUS st = D3DKMTAcquireKeyedMutex2(&a);
    if (pFence)
        *pFence = a.FenceValue;
    return st;
}

static NTSTATUS km_release(D3DKMT_HANDLE h, UINT64 key, UINT64 fence, const void *data, UINT size)
{
    D3DKMT_RELEASEKEYEDMUTEX2 r;
    memset(&r, 0, sizeof r);
    r.hKeyedMutex = h;
    r.Key = key;
    r.FenceValue = fence;
    r.pPrivateRuntimeData = (void *)data;
    r.PrivateRuntimeDataSize = size;
    return D3DKMTReleaseKeyedMutex2(&r);
}

/* Creates a D3DDDI_FENCE or D3DDDI_MONITORED_FENCE (or, for the status
 * checks, any other type) starting at `initial`. *pva (if not NULL) receives
 * FenceValueCPUVirtualAddress of a monitored fence. */
static NTSTATUS sync_create(D3DKMT_HANDLE hDevice, D3DDDI_SYNCHRONIZATIONOBJECT_TYPE type,
                            UINT64 initial, D3DKMT_HANDLE *ph, const UINT64 **pva)
{
    D3DKMT_CREATESYNCHRONIZATIONOBJECT2 c;
    memset(&c, 0, sizeof c);
    c.hDevice = hDevice;
    c.Info.Type = type;
    c.Info.Flags.Shared = 1;
    c.Info.Flags.NtSecuritySharing = 1;
    if (type == D3DDDI_MONITORED_FENCE)
        c.Info.MonitoredFence.InitialFenceValue = initial;
    else
        c.Info.Fence.FenceValue = initial;
    NTSTATUS st = D3DKMTCreateSynchronizationObject2(&c);
    *ph = st == STATUS_SUCCESS ? c.hSyncObject : 0;
    if (pva)
        *pva = st == STATUS_SUCCESS && type == D3DDDI_MONITORED_FENCE
            ? (const UINT64 *)c.Info.MonitoredFence.FenceValueCPUVirtualAddress : NULL;
    return st;
}

static NTSTATUS sync_destroy(D3DKMT_HANDLE h)
{
    D3DKMT_DESTROYSYNCHRONIZATIONOBJECT d = { h };
    return D3DKMTDestroySynchronizationObject(&d);
}

static NTSTATUS sync_open2(D3DKMT_HANDLE hDevice, HANDLE h, D3DKMT_HANDLE *ph, const UINT64 **pva)
{
    D3DKMT_OPENSYNCOBJECTFROMNTHANDLE2 o;
    memset(&o, 0, sizeof o);
    o.hNtHandle = h;
    o.hDevice = hDevice;
    NTSTATUS st = D3DKMTOpenSyncObjectFromNtHandle2(&o);
    *ph = st == STATUS_SUCCESS ? o.hSyncObject : 0;
    if (pva)
        *pva = st == STATUS_SUCCESS ? (const UINT64 *)o.MonitoredFence.FenceValueCPUVirtualAddress
                                    : NULL;
    return st;
}

static NTSTATUS sync_signal_flags(D3DKMT_HANDLE hDevice, UINT count, const D3DKMT_HANDLE *hs,
                                  const UINT64 *values, UINT flags)
{
    D3DKMT_SIGNALSYNCHRONIZATIONOBJECTFROMCPU s;
    memset(&s, 0, sizeof s);
    s.hDevice = hDevice;
    s.ObjectCount = count;
    s.ObjectHandleArray = hs;
    s.FenceValueArray = values;
    s.Flags.Value = flags;
    return D3DKMTSignalSynchronizationObjectFromCpu(&s);
}

static NTSTATUS sync_signal(D3DKMT_HANDLE hDevice, D3DKMT_HANDLE h, UINT64 value)
{
    return sync_signal_flags(hDevice, 1, &h, &value, 0);
}

/* efd < 0: a blocking wait (hAsyncEvent NULL); else async through the
 * eventfd. flags: the raw D3DDDI_WAITFORSYNCHRONIZATIONOBJECTFROMCPU_FLAGS. */
static NTSTATUS sync_wait_flags(D3DKMT_HANDLE hDevice, UINT count, const D3DKMT_HANDLE *hs,
                                const UINT64 *values, UINT flags, int efd)
{
    D3DKMT_WAITFORSYNCHRONIZATIONOBJECTFROMCPU w;
    memset(&w, 0, sizeof w);
    w.hDevice = hDevice;
    w.ObjectCount = count;
    w.ObjectHandleArray = hs;
    w.FenceValueArray = values;
    w.hAsyncEvent = efd >= 0 ? D3DKMTLinuxFdToHandle(efd) : NULL;
    w.Flags.Value = flags;
    return D3DKMTWaitForSynchronizationObjectFromCpu(&w);
}

static NTSTATUS sync_wait(D3DKMT_HANDLE hDevice, D3DKMT_HANDLE h, UINT64 value, int efd)
{
    return sync_wait_flags(hDevice, 1, &h, &value, 0, efd);
}

/* Checks that h has reached `value` (it should have: the caller signalled it,
 * or it was the initial value): an async wait through an eventfd must fire
 * within 5 s, and then a blocking wait must return STATUS_SUCCESS. The
 * blocking wait is only made after the eventfd fired, so that a library that
 * does not see the value as reached fails this check instead of hanging the
 * test. Returns 1 when both held. */
static int readable(int fd, int timeout_ms);
static int check_reached(D3DKMT_HANDLE hDevice, D3DKMT_HANDLE h, UINT64 value, const char *what)
{
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (efd < 0) {
        check(0, "eventfd: %s", strerror(errno));
        return 0;
    }
    NTSTATUS st = sync_wait(hDevice, h, value, efd);
    int fired = st == STATUS_SUCCESS && readable(efd, 5000) == 1;
    close(efd);
    check(fired, "%s: an async wait for %" PRIu64 ", a value already reached, did not complete "
          "in 5 s (status 0x%08" PRIX32 ")", what, value, (uint32_t)st);
    if (!fired)
        return 0;
    st = sync_wait(hDevice, h, value, -1);
    check(st == STATUS_SUCCESS, "%s: a blocking wait for %" PRIu64 " returned 0x%08" PRIX32, what,
          value, (uint32_t)st);
    return st == STATUS_SUCCESS;
}

/* The value a monitored fence's CPU address holds (another process may be
 * writing it). */
static UINT64 fence_at(const UINT64 *va)
{
    return va ? __atomic_load_n(va, __ATOMIC_ACQUIRE) : UINT64_MAX;
}

/* 1 if fd becomes readable within timeout_ms, 0 if not, -1 on error. */
static int readable(int fd, int timeout_ms)
{
    struct pollfd p = { .fd = fd, .events = POLLIN, .revents = 0 };
    int n;
    do {
        n = poll(&p, 1, timeout_ms);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return -1;
    return n > 0 && (p.revents & POLLIN) ? 1 : 0;
}

static int new_eventfd(void)
{
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    check(efd >= 0, "eventfd: %s", strerror(errno));
    return efd;
}

/* Reads one byte from a pipe, giving up after timeout_ms; -1 on timeout/EOF. */
static int read_byte(int fd, int timeout_ms)
{
    if (readable(fd, timeout_ms) != 1)
        return -1;
    unsigned char c;
    ssize_t n;
    do {
        n = read(fd, &c, 1);
    } while (n < 0 && errno == EINTR);
    return n == 1 ? c : -1;
}

static void write_byte(int fd, unsigned char c)
{
    ssize_t n;
    do {
        n = write(fd, &c, 1);
    } while (n < 0 && errno == EINTR);
    check(n == 1, "%s: writing to a pipe: %s", who, n < 0 ? strerror(errno) : "short write");
}

/* count_fds(), given up to two seconds to come back to `want`: an async wait
 * of the library ends on a helper thread that closes its copy of the eventfd
 * just after signalling it. */
static int count_fds_settled(int want)
{
    int n = count_fds();
    for (int i = 0; i < 200 && n != want; i++) {
        usleep(10000);
        n = count_fds();
    }
    return n;
}

/* A resource of one allocation, a keyed mutex released with `key` (creation
 * data from fill_km_data) and a monitored fence starting at 0, shared as one
 * handle (cObjects 3). Returns 0 when something could not be made. */
typedef struct {
    D3DKMT_HANDLE hResource, hAllocation, hKeyedMutex, hSync;
    const UINT64 *fenceVA;
    HANDLE h;
} guarded_t;

static int make_guarded(D3DKMT_HANDLE hDevice, UINT64 key, guarded_t *g)
{
    uint8_t kmdata[KM_DATA_SIZE];
    memset(g, 0, sizeof *g);
    fill_km_data(kmdata);
    EXPECT_OK(create_resource(hDevice, 1, 1, &g->hResource, &g->hAllocation));
    EXPECT_OK(km_create(key, kmdata, sizeof kmdata, &g->hKeyedMutex));
    EXPECT_OK(sync_create(hDevice, D3DDDI_MONITORED_FENCE, 0, &g->hSync, &g->fenceVA));
    if (!g->hResource || !g->hKeyedMutex || !g->hSync)
        return 0;
    D3DKMT_HANDLE objs[3] = { g->hResource, g->hKeyedMutex, g->hSync };
    EXPECT_OK(D3DKMTShareObjects(3, objs, NULL, SHARE_ACCESS, &g->h));
    check(g->h != NULL, "ShareObjects(resource, keyed mutex, sync object): no handle");
    return g->h != NULL;
}

static void destroy_guarded(D3DKMT_HANDLE hDevice, guarded_t *g)
{
    if (g->h)
        check(close(D3DKMTLinuxHandleToFd(g->h)) == 0, "close(shared handle): %s",
              strerror(errno));
    if (g->hSync)
        EXPECT_OK(sync_destroy(g->hSync));
    if (g->hKeyedMutex)
        EXPECT_OK(km_destroy(g->hKeyedMutex));
    if (g->hResource)
        EXPECT_OK(destroy_resource(hDevice, g->hResource));
    memset(g, 0, sizeof *g);
}

/* Opens the adapter with this LUID and a device on it (for the children). */
static int open_device_by_luid(LUID luid, D3DKMT_HANDLE *phAdapter, D3DKMT_HANDLE *phDevice)
{
    D3DKMT_OPENADAPTERFROMLUID oa;
    memset(&oa, 0, sizeof oa);
    oa.AdapterLuid = luid;
    *phAdapter = *phDevice = 0;
    EXPECT_OK(D3DKMTOpenAdapterFromLuid(&oa));
    if (oa.hAdapter == 0)
        return 0;
    *phAdapter = oa.hAdapter;
    EXPECT_OK(create_device(oa.hAdapter, phDevice));
    return *phDevice != 0;
}

/* ------------------------------------------------------------------------ */
/* Child process                                                            */
/* ------------------------------------------------------------------------ */

static int child_main(int fd, LUID luid)
{
    who = "child";
    alarm(120); /* a hang must fail the test, not stall it */

    HANDLE h = D3DKMTLinuxFdToHandle(fd);
    D3DKMT_OPENADAPTERFROMLUID oa;
    memset(&oa, 0, sizeof oa);
    oa.AdapterLuid = luid;
    EXPECT_OK(D3DKMTOpenAdapterFromLuid(&oa));
    if (oa.hAdapter == 0)
        return 1;

    D3DKMT_HANDLE hDevice = 0;
    EXPECT_OK(create_device(oa.hAdapter, &hDevice));
    if (hDevice == 0)
        return 1;

    open_buffers_t b;
    EXPECT_OK(query_for_open(hDevice, h, &b));
    check(b.query.NumAllocations == NUM_ALLOCATIONS, "query: NumAllocations %u, expected %u",
          b.query.NumAllocations, NUM_ALLOCATIONS);
    check(b.query.PrivateRuntimeDataSize == RUNTIME_DATA_SIZE,
          "query: PrivateRuntimeDataSize %u, expected %u", b.query.PrivateRuntimeDataSize,
          RUNTIME_DATA_SIZE);
    check(b.query.ResourcePrivateDriverDataSize == RESOURCE_DATA_SIZE,
          "query: ResourcePrivateDriverDataSize %u, expected %u",
          b.query.ResourcePrivateDriverDataSize, RESOURCE_DATA_SIZE);
    /* Only the runtime's bytes after each D3DKMT_LINUX_ALLOCATION_DESC count: the
     * descriptor is the library's input, not driver data an opener receives. */
    check(b.query.TotalPrivateDriverDataSize == NUM_ALLOCATIONS * ALLOC_TAIL_SIZE,
          "query: TotalPrivateDriverDataSize %u, expected %zu",
          b.query.TotalPrivateDriverDataSize, NUM_ALLOCATIONS * ALLOC_TAIL_SIZE);
    if (failed)
        return 1;

    /* As on Windows, the query reports sizes and writes nothing into a buffer it is given. */
    {
        uint8_t rt[RUNTIME_DATA_SIZE], untouched[RUNTIME_DATA_SIZE];
        D3DKMT_QUERYRESOURCEINFOFROMNTHANDLE q2;
        memset(&q2, 0, sizeof q2);
        memset(rt, 0xcd, sizeof rt);
        memset(untouched, 0xcd, sizeof untouched);
        q2.hDevice = hDevice;
        q2.hNtHandle = h;
        q2.pPrivateRuntimeData = rt;
        q2.PrivateRuntimeDataSize = sizeof rt;
        EXPECT_OK(D3DKMTQueryResourceInfoFromNtHandle(&q2));
        check(q2.PrivateRuntimeDataSize == RUNTIME_DATA_SIZE && memcmp(rt, untouched, sizeof rt) == 0,
              "query with a buffer: size %u, or the buffer was written", q2.PrivateRuntimeDataSize);
    }

    UINT total = b.query.TotalPrivateDriverDataSize;
    prepare_open(hDevice, h, &b, NUM_ALLOCATIONS, total);
    EXPECT_OK(D3DKMTOpenResourceFromNtHandle(&b.open));
    D3DKMT_HANDLE hResource = b.open.hResource;
    check(hResource != 0, "open: hResource is 0");
    check(b.open.hKeyedMutex == 0 && b.open.hSyncObject == 0,
          "open: a keyed mutex or sync object was returned, none was shared");
    if (hResource == 0) {
        free_open_buffers(&b);
        return 1;
    }

    uint8_t want_rt[RUNTIME_DATA_SIZE], want_res[RESOURCE_DATA_SIZE];
    fill_runtime_data(want_rt);
    fill_resource_data(want_res);
    check(memcmp(b.runtime, want_rt, sizeof want_rt) == 0, "open: runtime private data differs");
    check(memcmp(b.resdata, want_res, sizeof want_res) == 0,
          "open: resource private driver data differs");
    UINT written = b.open.TotalPrivateDriverDataBufferSize;
    check(written == NUM_ALLOCATIONS * ALLOC_TAIL_SIZE && written <= total,
          "open: TotalPrivateDriverDataBufferSize out %u, expected %zu", written,
          NUM_ALLOCATIONS * ALLOC_TAIL_SIZE);

    /* Each allocation's private driver data lies in the total buffer, where
     * its D3DDDI_OPENALLOCATIONINFO2 entry points, without overlapping the
     * previous one. */
    size_t previous_end = 0;
    for (unsigned i = 0; i < NUM_ALLOCATIONS; i++) {
        const D3DDDI_OPENALLOCATIONINFO2 *a = &b.allocs[i];
        check(a->hAllocation != 0, "open: allocation %u has no handle", i);
        check(a->PrivateDriverDataSize == ALLOC_TAIL_SIZE,
              "open: allocation %u PrivateDriverDataSize %u, expected %zu", i,
              a->PrivateDriverDataSize, ALLOC_TAIL_SIZE);
        const uint8_t *p = (const uint8_t *)a->pPrivateDriverData;
        int inside = p != NULL && p >= b.total && p + a->PrivateDriverDataSize <= b.total + written;
        check(inside, "open: allocation %u pPrivateDriverData %p is not inside the total buffer "
              "%p+%u", i, (const void *)p, (void *)b.total, written);
        if (!inside || a->PrivateDriverDataSize < ALLOC_TAIL_SIZE)
            continue;
        size_t offset = (size_t)(p - b.total);
        check(offset >= previous_end, "open: allocation %u driver data overlaps the previous one",
              i);
        previous_end = offset + a->PrivateDriverDataSize;

        alloc_private_t got, want;
        memcpy(got.tail, p, sizeof got.tail);
        fill_alloc_private(&want, i);
        /* The layout comes from the Linux call, not from the driver data. */
        memset(&got.desc, 0, sizeof got.desc);
        EXPECT_OK(D3DKMTLinuxQueryAllocationDesc(hDevice, a->hAllocation, &got.desc));
        check(got.desc.Version == D3DKMT_LINUX_ALLOCATION_DESC_VERSION,
              "open: allocation %u descriptor Version %u", i, got.desc.Version);
        check(got.desc.Size == ALLOCATION_SIZE, "open: allocation %u descriptor Size %" PRIu64
              ", expected %u", i, (uint64_t)got.desc.Size, ALLOCATION_SIZE);
        check(got.desc.DmaBufFd == -1, "open: allocation %u descriptor DmaBufFd %d, expected -1",
              i, got.desc.DmaBufFd);
        check(memcmp(got.tail, want.tail, sizeof got.tail) == 0,
              "open: allocation %u runtime driver data differs", i);
    }

    if (b.allocs[0].hAllocation != 0) {
        UINT64 size = 0;
        EXPECT_OK(D3DKMTLinuxQueryAllocationSize(hDevice, b.allocs[0].hAllocation, &size));
        check(size == ALLOCATION_SIZE, "opened allocation 0 size %" PRIu64, (uint64_t)size);

        uint8_t *p = NULL;
        EXPECT_OK(lock(hDevice, b.allocs[0].hAllocation, &p));
        if (p) {
            size_t bad = ALLOCATION_SIZE;
            for (size_t i = 0; i < ALLOCATION_SIZE; i++) {
                if (p[i] != pattern_byte(i)) {
                    bad = i;
                    break;
                }
            }
            check(bad == ALLOCATION_SIZE, "allocation 0: pattern differs at byte %zu", bad);
            EXPECT_OK(unlock(hDevice, b.allocs[0].hAllocation));
        }
    }
    if (b.allocs[1].hAllocation != 0) {
        uint8_t *p = NULL;
        EXPECT_OK(lock(hDevice, b.allocs[1].hAllocation, &p));
        if (p) {
            for (size_t i = 0; i < ALLOCATION_SIZE; i++)
                p[i] = reply_byte(i);
            EXPECT_OK(unlock(hDevice, b.allocs[1].hAllocation));
        }
    }

    EXPECT_OK(destroy_resource(hDevice, hResource));
    free_open_buffers(&b);
    EXPECT_OK(destroy_device(hDevice));
    EXPECT_OK(close_adapter(oa.hAdapter));
    close(fd);
    return failed ? 1 : 0;
}

/* "pingpong": the other side of test_pingpong. Opens the resource with its
 * keyed mutex and sync object, then `rounds` times: acquires key 1, checks
 * that FenceValue, the private data and the allocation's counter are what
 * the parent released with (2i+1) and that the sync object reached that
 * value, writes 2i+2, signals the sync object to 2i+2 and releases key 0 with
 * that fence value and private data. */
static int pingpong_main(int fd, LUID luid, unsigned rounds)
{
    who = "pingpong child";
    alarm(120);
    HANDLE h = D3DKMTLinuxFdToHandle(fd);
    D3DKMT_HANDLE hAdapter, hDevice;
    if (!open_device_by_luid(luid, &hAdapter, &hDevice))
        return 1;

    open_buffers_t b;
    EXPECT_OK(query_for_open(hDevice, h, &b));
    if (b.total == NULL)
        return 1;
    check(b.query.NumAllocations == 1, "query: NumAllocations %u, expected 1",
          b.query.NumAllocations);
    uint8_t kmdata[KM_DATA_SIZE + 4], want[KM_DATA_SIZE];
    memset(kmdata, 0, sizeof kmdata);
    fill_km_data(want);
    prepare_open(hDevice, h, &b, 1, b.query.TotalPrivateDriverDataSize);
    b.open.pKeyedMutexPrivateRuntimeData = kmdata;
    b.open.KeyedMutexPrivateRuntimeDataSize = sizeof kmdata;
    EXPECT_OK(D3DKMTOpenResourceFromNtHandle(&b.open));
    D3DKMT_HANDLE hResource = b.open.hResource, hAlloc = b.allocs[0].hAllocation;
    D3DKMT_HANDLE hKM = b.open.hKeyedMutex, hSync = b.open.hSyncObject;
    free_open_buffers(&b);
    check(hResource && hAlloc && hKM && hSync,
          "open: resource %#x allocation %#x keyed mutex %#x sync object %#x (none may be 0)",
          hResource, hAlloc, hKM, hSync);
    check(memcmp(kmdata, want, KM_DATA_SIZE) == 0,
          "open: pKeyedMutexPrivateRuntimeData differs from the creator's data");
    if (!hResource || !hAlloc || !hKM || !hSync)
        return 1;

    unsigned done = 0, bad_fence = 0, bad_data = 0, bad_word = 0, bad_wait = 0;
    NTSTATUS st = STATUS_SUCCESS;
    for (unsigned i = 0; i < rounds; i++) {
        UINT64 fence = 0, data = 0, expect = 2 * (UINT64)i + 1;
        st = km_acquire(hKM, 1, 30000 * MS_100NS, &fence, &data, sizeof data);
        if (st != STATUS_SUCCESS)
            break;
        if (fence != expect)
            bad_fence++;
        if (data != expect)
            bad_data++;
        if (sync_wait(hDevice, hSync, fence, -1) != STATUS_SUCCESS)
            bad_wait++;
        uint8_t *p = NULL;
        st = lock(hDevice, hAlloc, &p);
        if (st != STATUS_SUCCESS)
            break;
        UINT64 word;
        memcpy(&word, p, sizeof word);
        if (word != expect)
            bad_word++;
        expect++;
        memcpy(p, &expect, sizeof expect);
        st = unlock(hDevice, hAlloc);
        if (st == STATUS_SUCCESS)
            st = sync_signal(hDevice, hSync, expect);
        if (st == STATUS_SUCCESS)
            st = km_release(hKM, 0, expect, &expect, sizeof expect);
        if (st != STATUS_SUCCESS)
            break;
        done++;
    }
    check(done == rounds, "stopped after %u of %u rounds with status 0x%08" PRIX32, done, rounds,
          (uint32_t)st);
    check(bad_fence == 0, "%u acquires returned a FenceValue other than the release's", bad_fence);
    check(bad_data == 0, "%u acquires returned private data other than the release's", bad_data);
    check(bad_word == 0, "%u times the allocation did not hold the parent's counter", bad_word);
    check(bad_wait == 0, "%u waits for the acquired fence value failed", bad_wait);

    EXPECT_OK(km_destroy(hKM));
    EXPECT_OK(sync_destroy(hSync));
    EXPECT_OK(destroy_resource(hDevice, hResource));
    EXPECT_OK(destroy_device(hDevice));
    EXPECT_OK(close_adapter(hAdapter));
    close(fd);
    return failed ? 1 : 0;
}

/* "hold": opens the keyed mutex from the handle, acquires key 0 (waiting for
 * ever), writes 'A' to the pipe and waits to be killed. */
static int hold_main(int fd, int pipefd)
{
    who = "hold child";
    alarm(120);
    D3DKMT_HANDLE hKM = 0;
    EXPECT_OK(km_open(D3DKMTLinuxFdToHandle(fd), NULL, 0, &hKM));
    if (hKM == 0)
        return 1;
    close(fd); /* the open keeps the mutex alive */
    EXPECT_OK(km_acquire(hKM, 0, NO_TIMEOUT, NULL, NULL, 0));
    if (failed)
        return 1;
    write_byte(pipefd, 'A');
    for (;;)
        pause();
}

/* "signal": opens the monitored fence shared alone, on a device of the
 * adapter (OpenSyncObjectFromNtHandle2) and without one
 * (OpenSyncObjectFromNtHandle); checks that its CPU address shows `current`;
 * writes 'R' to readyfd; after reading 'G' from gofd and 100 ms, signals
 * `value`. */
static int signal_main(int fd, LUID luid, int readyfd, int gofd, UINT64 current, UINT64 value)
{
    who = "signal child";
    alarm(120);
    HANDLE h = D3DKMTLinuxFdToHandle(fd);
    D3DKMT_HANDLE hAdapter, hDevice;
    if (!open_device_by_luid(luid, &hAdapter, &hDevice))
        return 1;

    D3DKMT_HANDLE hSync = 0, hNoDevice = 0;
    const UINT64 *va = NULL;
    EXPECT_OK(sync_open2(hDevice, h, &hSync, &va));
    check(hSync != 0 && va != NULL, "OpenSyncObjectFromNtHandle2: handle %#x, CPU address %p",
          hSync, (const void *)va);
    check(fence_at(va) == current, "opened fence's CPU address holds %" PRIu64 ", expected %"
          PRIu64, fence_at(va), current);

    D3DKMT_OPENSYNCOBJECTFROMNTHANDLE o;
    memset(&o, 0, sizeof o);
    o.hNtHandle = h;
    EXPECT_OK(D3DKMTOpenSyncObjectFromNtHandle(&o));
    hNoDevice = o.hSyncObject;
    check(hNoDevice != 0 && hNoDevice != hSync, "OpenSyncObjectFromNtHandle: handle %#x",
          hNoDevice);
    if (hNoDevice)
        EXPECT_OK(sync_destroy(hNoDevice));
    close(fd);
    if (!hSync)
        return 1;

    write_byte(readyfd, 'R');
    check(read_byte(gofd, 60000) == 'G', "no go from the parent");
    usleep(100000);
    EXPECT_OK(sync_signal(hDevice, hSync, value));
    check(fence_at(va) == value, "after the signal the CPU address holds %" PRIu64
          ", expected %" PRIu64, fence_at(va), value);
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, sync_signal(hDevice, hSync, value - 1));
    EXPECT_OK(sync_destroy(hSync));
    EXPECT_OK(destroy_device(hDevice));
    EXPECT_OK(close_adapter(hAdapter));
    return failed ? 1 : 0;
}

/* ------------------------------------------------------------------------ */
/* Parent process                                                           */
/* ------------------------------------------------------------------------ */

/* Starts `share_test <mode> <fd> <LUID low> <LUID high> [extra...]` on an
 * inherited copy of the handle; returns its pid or -1. Descriptors named in
 * `extra` must already be inheritable (see inheritable()). */
static pid_t spawn_child(const char *argv0, const char *mode, HANDLE h, LUID luid,
                         const char *extra1, const char *extra2, const char *extra3,
                         const char *extra4)
{
    /* The library's descriptors are close-on-exec; the child gets a dup
     * without the flag. */
    int cfd = fcntl(D3DKMTLinuxHandleToFd(h), F_DUPFD, 3);
    if (cfd < 0) {
        perror("F_DUPFD");
        return -1;
    }
    char fdarg[16], lowarg[16], higharg[16];
    snprintf(fdarg, sizeof fdarg, "%d", cfd);
    snprintf(lowarg, sizeof lowarg, "%" PRIu32, (uint32_t)luid.LowPart);
    snprintf(higharg, sizeof higharg, "%" PRId32, (int32_t)luid.HighPart);

    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        close(cfd);
        return -1;
    }
    if (pid == 0) {
        char *args[] = { (char *)argv0, (char *)mode, fdarg, lowarg, higharg, (char *)extra1,
                         (char *)extra2, (char *)extra3, (char *)extra4, NULL };
        execv("/proc/self/exe", args);
        perror("execv /proc/self/exe");
        _exit(127);
    }
    close(cfd);
    return pid;
}

/* Waits for a child; returns its wait status or -1. */
static int wait_child(pid_t pid)
{
    int status = 0;
    if (pid < 0)
        return -1;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            perror("waitpid");
            return -1;
        }
    }
    return status;
}

/* Checks that a child exited with status 0. */
static void check_child_exit(const char *mode, int status)
{
    if (status != -1 && WIFSIGNALED(status))
        fprintf(stderr, "%s: %s child killed by signal %d\n", who, mode, WTERMSIG(status));
    check(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "%s child did not exit with status 0 (wait status 0x%x)", mode, status);
}

/* Runs the child on a copy of the handle; returns its wait status or -1. */
static int run_child(const char *argv0, HANDLE h, LUID luid)
{
    return wait_child(spawn_child(argv0, "child", h, luid, NULL, NULL, NULL, NULL));
}

/* A copy of fd that a child inherits (no FD_CLOEXEC), as a decimal string in
 * buf. Returns the copy or -1. */
static int inheritable(int fd, char *buf, size_t size)
{
    int copy = fcntl(fd, F_DUPFD, 3);
    check(copy >= 0, "F_DUPFD: %s", strerror(errno));
    snprintf(buf, size, "%d", copy);
    return copy;
}

/* Bad calls: each must be refused with the documented status. */
static void test_rejections(D3DKMT_HANDLE hDevice, D3DKMT_HANDLE hResource, HANDLE h)
{
    HANDLE dummy = NULL;

    /* No objects. */
    EXPECT_STATUS(STATUS_INVALID_PARAMETER,
                  D3DKMTShareObjects(0, &hResource, NULL, SHARE_ACCESS, &dummy));
    if (dummy != NULL)
        close(D3DKMTLinuxHandleToFd(dummy));

    /* A resource created without NtSecuritySharing cannot be shared. */
    {
        D3DKMT_HANDLE hPrivate = 0, hPrivAlloc[NUM_ALLOCATIONS] = { 0 };
        EXPECT_OK(create_resource(hDevice, 1, 0, &hPrivate, hPrivAlloc));
        if (hPrivate != 0) {
            dummy = NULL;
            EXPECT_STATUS(STATUS_INVALID_PARAMETER,
                          D3DKMTShareObjects(1, &hPrivate, NULL, SHARE_ACCESS, &dummy));
            if (dummy != NULL)
                close(D3DKMTLinuxHandleToFd(dummy));
            EXPECT_OK(destroy_resource(hDevice, hPrivate));
        }
    }

    open_buffers_t b;
    EXPECT_OK(query_for_open(hDevice, h, &b));
    if (b.total != NULL) {
        UINT total = b.query.TotalPrivateDriverDataSize;

        /* Too few D3DDDI_OPENALLOCATIONINFO2 entries. Microsoft documents only
         * STATUS_INVALID_PARAMETER ("parameters were validated and determined
         * to be incorrect") as a failure of D3DKMTOpenResourceFromNtHandle. */
        prepare_open(hDevice, h, &b, NUM_ALLOCATIONS - 1, total);
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTOpenResourceFromNtHandle(&b.open));
        check(b.open.hResource == 0, "open with too few allocations returned a resource");
        if (b.open.hResource != 0)
            destroy_resource(hDevice, b.open.hResource);

        /* A total private driver data buffer one byte short: STATUS_NO_MEMORY, as Windows. */
        prepare_open(hDevice, h, &b, NUM_ALLOCATIONS, total - 1);
        EXPECT_STATUS(STATUS_NO_MEMORY, D3DKMTOpenResourceFromNtHandle(&b.open));
        check(b.open.hResource == 0, "open with a short buffer returned a resource");
        if (b.open.hResource != 0)
            destroy_resource(hDevice, b.open.hResource);
    }

    /* A descriptor that is open but is not a shared D3DKMT handle (a pipe):
     * a handle of the wrong kind. Microsoft documents STATUS_INVALID_PARAMETER
     * as the failure of both calls, so that is what we require here; we keep
     * STATUS_INVALID_HANDLE for values that are not open descriptors at all
     * (Windows' object manager returns STATUS_INVALID_HANDLE for a handle value
     * that names nothing). */
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) == 0) {
        HANDLE ph = D3DKMTLinuxFdToHandle(pfd[0]);
        D3DKMT_QUERYRESOURCEINFOFROMNTHANDLE q;
        memset(&q, 0, sizeof q);
        q.hDevice = hDevice;
        q.hNtHandle = ph;
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTQueryResourceInfoFromNtHandle(&q));
        if (b.total != NULL) {
            prepare_open(hDevice, ph, &b, NUM_ALLOCATIONS, b.query.TotalPrivateDriverDataSize);
            EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTOpenResourceFromNtHandle(&b.open));
        }

        /* A descriptor number that is not open. It is taken high (a copy of
         * the pipe at >= 900, then closed) so that nothing the library opens
         * meanwhile can reuse it. */
        int gone = fcntl(pfd[0], F_DUPFD_CLOEXEC, 900);
        close(pfd[0]);
        close(pfd[1]);
        if (gone >= 0) {
            close(gone);
            memset(&q, 0, sizeof q);
            q.hDevice = hDevice;
            q.hNtHandle = D3DKMTLinuxFdToHandle(gone);
            EXPECT_STATUS(STATUS_INVALID_HANDLE, D3DKMTQueryResourceInfoFromNtHandle(&q));
        }
    } else {
        check(0, "pipe2: %s", strerror(errno));
    }
    free_open_buffers(&b);
}

/* Share, query, open, destroy and close many times, with failing opens in
 * between: no descriptor may be left behind. */
static void test_no_leaks(D3DKMT_HANDLE hDevice, D3DKMT_HANDLE hResource)
{
    int before = count_fds();
    int errors = 0;
    for (int cycle = 0; cycle < LEAK_CYCLES && errors == 0; cycle++) {
        HANDLE h = NULL;
        if (D3DKMTShareObjects(1, &hResource, NULL, SHARE_ACCESS, &h) != STATUS_SUCCESS || !h) {
            errors++;
            break;
        }
        open_buffers_t b;
        if (query_for_open(hDevice, h, &b) != STATUS_SUCCESS) {
            errors++;
        } else {
            UINT total = b.query.TotalPrivateDriverDataSize;
            prepare_open(hDevice, h, &b, NUM_ALLOCATIONS, total - 1);
            if (D3DKMTOpenResourceFromNtHandle(&b.open) != STATUS_NO_MEMORY)
                errors++;
            prepare_open(hDevice, h, &b, NUM_ALLOCATIONS - 1, total);
            if (D3DKMTOpenResourceFromNtHandle(&b.open) != STATUS_INVALID_PARAMETER)
                errors++;
            prepare_open(hDevice, h, &b, NUM_ALLOCATIONS, total);
            if (D3DKMTOpenResourceFromNtHandle(&b.open) != STATUS_SUCCESS)
                errors++;
            else if (destroy_resource(hDevice, b.open.hResource) != STATUS_SUCCESS)
                errors++;
        }
        free_open_buffers(&b);
        if (close(D3DKMTLinuxHandleToFd(h)) != 0)
            errors++;
        if (errors)
            fprintf(stderr, "%s: leak test: cycle %d failed\n", who, cycle);
    }
    check(errors == 0, "leak test: calls failed");
    int after = count_fds();
    check(before >= 0 && before == after, "leak test: %d descriptors before %d cycles, %d after",
          before, LEAK_CYCLES, after);
}

/* ------------------------------------------------------------------------ */
/* Keyed mutexes and sync objects (parent)                                  */
/* ------------------------------------------------------------------------ */

/* Keyed mutex ping-pong with a "pingpong" child (see pingpong_main). */
static void test_pingpong(const char *argv0, const D3DKMT_ADAPTERINFO *ai, D3DKMT_HANDLE hDevice)
{
    guarded_t g;
    if (!make_guarded(hDevice, 0, &g)) {
        destroy_guarded(hDevice, &g);
        return;
    }
    check(g.fenceVA != NULL && fence_at(g.fenceVA) == 0,
          "monitored fence: CPU address %p, holding %" PRIu64 ", expected 0",
          (const void *)g.fenceVA, fence_at(g.fenceVA));

    char rounds_arg[16];
    snprintf(rounds_arg, sizeof rounds_arg, "%u", PINGPONG_ROUNDS);
    uint64_t start = now_ns();
    pid_t pid = spawn_child(argv0, "pingpong", g.h, ai->AdapterLuid, rounds_arg, NULL, NULL, NULL);
    check(pid > 0, "could not start the pingpong child");

    uint8_t initial[KM_DATA_SIZE];
    fill_km_data(initial);
    unsigned done = 0, bad_fence = 0, bad_data = 0, bad_word = 0, bad_wait = 0, bad_va = 0;
    NTSTATUS st = STATUS_SUCCESS;
    for (unsigned i = 0; pid > 0 && i <= PINGPONG_ROUNDS; i++) {
        UINT64 fence = 0, data = 0, expect = 2 * (UINT64)i;
        st = km_acquire(g.hKeyedMutex, 0, 30000 * MS_100NS, &fence, &data, sizeof data);
        if (st != STATUS_SUCCESS)
            break;
        /* Before the first release: fence value 0 and the creation data. */
        if (fence != expect)
            bad_fence++;
        if (i == 0 ? memcmp(&data, initial, sizeof data) != 0 : data != expect)
            bad_data++;
        /* Wait for the fence value the acquire returned, as a runtime's GPU
         * work would. The first is the fence's initial value, 0: checked so
         * that a library that misses it fails instead of hanging. */
        if (i == 0 ? !check_reached(hDevice, g.hSync, fence, "ping-pong, first acquire")
                   : sync_wait(hDevice, g.hSync, fence, -1) != STATUS_SUCCESS)
            bad_wait++;
        if (fence_at(g.fenceVA) != expect)
            bad_va++;
        uint8_t *p = NULL;
        st = lock(hDevice, g.hAllocation, &p);
        if (st != STATUS_SUCCESS)
            break;
        UINT64 word;
        memcpy(&word, p, sizeof word);
        if (word != expect)
            bad_word++;
        if (i == PINGPONG_ROUNDS) {
            /* The last acquire only checks the child's last round. */
            st = unlock(hDevice, g.hAllocation);
            if (st == STATUS_SUCCESS)
                st = km_release(g.hKeyedMutex, 0, expect, NULL, 0);
            if (st == STATUS_SUCCESS)
                done++;
            break;
        }
        expect++;
        memcpy(p, &expect, sizeof expect);
        st = unlock(hDevice, g.hAllocation);
        if (st == STATUS_SUCCESS)
            st = sync_signal(hDevice, g.hSync, expect);
        if (st == STATUS_SUCCESS)
            st = km_release(g.hKeyedMutex, 1, expect, &expect, sizeof expect);
        if (st != STATUS_SUCCESS)
            break;
        done++;
    }
    check(done == PINGPONG_ROUNDS + 1, "ping-pong stopped after %u of %u acquires with status "
          "0x%08" PRIX32, done, PINGPONG_ROUNDS + 1, (uint32_t)st);
    check(bad_fence == 0, "%u acquires returned a FenceValue other than the child's release",
          bad_fence);
    check(bad_data == 0, "%u acquires returned private data other than the child's release",
          bad_data);
    check(bad_word == 0, "%u times the allocation did not hold the child's counter", bad_word);
    check(bad_wait == 0, "%u waits for the acquired fence value failed", bad_wait);
    check(bad_va == 0, "%u times the monitored fence's CPU address did not hold the acquired "
          "fence value", bad_va);
    if (pid > 0 && done != PINGPONG_ROUNDS + 1)
        kill(pid, SIGKILL);
    check_child_exit("pingpong", wait_child(pid));
    printf("  ping-pong: %u handoffs each way in %.0f ms\n", PINGPONG_ROUNDS,
           (double)(now_ns() - start) / 1e6);
    destroy_guarded(hDevice, &g);
}

/* Keyed mutex statuses, in this process, with a second open of the mutex. */
static void test_keyed_mutex_statuses(D3DKMT_HANDLE hDevice)
{
    guarded_t g;
    if (!make_guarded(hDevice, 0, &g)) {
        destroy_guarded(hDevice, &g);
        return;
    }
    D3DKMT_HANDLE km = g.hKeyedMutex, km2 = 0, km3 = 0;
    uint8_t want[KM_DATA_SIZE], got[KM_DATA_SIZE];
    fill_km_data(want);

    /* A second open returns the creation data; a short buffer is refused. */
    memset(got, 0, sizeof got);
    EXPECT_OK(km_open(g.h, got, sizeof got, &km2));
    check(km2 != 0 && km2 != km, "second open: handle %#x", km2);
    check(memcmp(got, want, sizeof got) == 0, "OpenKeyedMutexFromNtHandle: private data differs");
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, km_open(g.h, got, KM_DATA_SIZE - 1, &km3));
    check(km3 == 0, "an open with a short buffer returned a handle");
    EXPECT_OK(km_open(g.h, NULL, 0, &km3));
    if (km3)
        EXPECT_OK(km_destroy(km3));
    {
        D3DKMT_OPENKEYEDMUTEX2 o;
        memset(&o, 0, sizeof o);
        o.hSharedHandle = 0x40000001u;
        EXPECT_STATUS(STATUS_NOT_SUPPORTED, D3DKMTOpenKeyedMutex2(&o));
        check(o.hKeyedMutex == 0, "OpenKeyedMutex2 returned a handle");
    }

    /* Wrong key: a try, a relative timeout, absolute ones. */
    EXPECT_STATUS(STATUS_TIMEOUT, km_acquire(km, 1, 0, NULL, NULL, 0));
    uint64_t t0 = now_ns();
    EXPECT_STATUS(STATUS_TIMEOUT, km_acquire(km, 1, 20 * MS_100NS, NULL, NULL, 0));
    uint64_t waited = now_ns() - t0;
    check(waited >= 19000000u && waited < 10000000000u,
          "a 20 ms relative timeout returned after %.1f ms", (double)waited / 1e6);
    t0 = now_ns();
    EXPECT_STATUS(STATUS_TIMEOUT, km_acquire(km, 1, nt_system_time() + 300000, NULL, NULL, 0));
    waited = now_ns() - t0;
    check(waited >= 20000000u && waited < 10000000000u,
          "an absolute timeout 30 ms ahead returned after %.1f ms", (double)waited / 1e6);
    t0 = now_ns();
    EXPECT_STATUS(STATUS_TIMEOUT, km_acquire(km, 1, 1, NULL, NULL, 0));
    check(now_ns() - t0 < 5000000000u, "an absolute timeout in the past did not return at once");

    /* Right key, a try: succeeds with fence value 0 and the creation data. */
    UINT64 fence = 1;
    memset(got, 0, sizeof got);
    EXPECT_OK(km_acquire(km, 0, 0, &fence, got, sizeof got));
    check(fence == 0, "first acquire: FenceValue %" PRIu64 ", expected 0", fence);
    check(memcmp(got, want, sizeof got) == 0, "first acquire: private data differs");
    /* Owned: not again through this handle, not through the other, and only
     * this handle can release it. */
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, km_acquire(km, 0, 0, NULL, NULL, 0));
    EXPECT_STATUS(STATUS_TIMEOUT, km_acquire(km2, 0, 0, NULL, NULL, 0));
    EXPECT_STATUS(STATUS_TIMEOUT, km_acquire(km2, 0, 10 * MS_100NS, NULL, NULL, 0));
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, km_release(km2, 1, 0, NULL, 0));
    /* Private data larger than the creation data, or NULL with a size. */
    {
        uint8_t big[KM_DATA_SIZE + 1];
        memset(big, 0x55, sizeof big);
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, km_release(km, 1, 0, big, sizeof big));
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, km_release(km, 1, 0, NULL, 4));
    }
    /* Still owned after the refused releases. */
    EXPECT_STATUS(STATUS_TIMEOUT, km_acquire(km2, 0, 0, NULL, NULL, 0));
    EXPECT_STATUS(STATUS_TIMEOUT, km_acquire(km2, 1, 0, NULL, NULL, 0));

    /* Release to key 7 with fence 42 and 4 bytes: the other handle gets them. */
    EXPECT_OK(km_release(km, 7, 42, "abcd", 4));
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, km_release(km, 8, 0, NULL, 0)); /* no longer owns */
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, km_acquire(km2, 7, 0, NULL, got, KM_DATA_SIZE - 1));
    memset(got, 0, sizeof got);
    fence = 0;
    EXPECT_OK(km_acquire(km2, 7, 0, &fence, got, sizeof got));
    check(fence == 42, "acquire after release(7, 42): FenceValue %" PRIu64, fence);
    check(memcmp(got, "abcd", 4) == 0, "acquire after release(7, 42): private data differs");
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, km_release(km, 0, 0, NULL, 0));
    EXPECT_OK(km_release(km2, 0, 43, NULL, 0));
    EXPECT_OK(km_acquire(km, 0, 0, &fence, NULL, 0));
    check(fence == 43, "acquire after release(0, 43): FenceValue %" PRIu64, fence);
    EXPECT_OK(km_release(km, 0, 44, NULL, 0));

    /* NULL arguments and handles that name no keyed mutex. */
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTCreateKeyedMutex2(NULL));
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTOpenKeyedMutex2(NULL));
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTOpenKeyedMutexFromNtHandle(NULL));
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTDestroyKeyedMutex(NULL));
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTAcquireKeyedMutex2(NULL));
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTReleaseKeyedMutex2(NULL));
    const D3DKMT_HANDLE bogus[] = { 0, 0x12345678u, 0x7FFFFFFFu, hDevice, g.hSync, g.hResource };
    for (size_t i = 0; i < sizeof bogus / sizeof bogus[0]; i++) {
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, km_acquire(bogus[i], 0, 0, NULL, NULL, 0));
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, km_release(bogus[i], 0, 0, NULL, 0));
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, km_destroy(bogus[i]));
    }

    /* Creation: unknown flags and NULL data with a size are refused; the
     * shared handle is 0; a mutex starts released with InitialValue. */
    {
        D3DKMT_CREATEKEYEDMUTEX2 c;
        memset(&c, 0, sizeof c);
        c.Flags.Value = 2;
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTCreateKeyedMutex2(&c));
        check(c.hKeyedMutex == 0, "create with unknown flags returned a handle");
        memset(&c, 0, sizeof c);
        c.PrivateRuntimeDataSize = 4;
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTCreateKeyedMutex2(&c));
        memset(&c, 0, sizeof c);
        c.InitialValue = 5;
        c.hSharedHandle = 0x1234;
        c.Flags.NtSecuritySharing = 1;
        EXPECT_OK(D3DKMTCreateKeyedMutex2(&c));
        check(c.hSharedHandle == 0, "CreateKeyedMutex2: hSharedHandle %#x, expected 0",
              c.hSharedHandle);
        if (c.hKeyedMutex) {
            EXPECT_STATUS(STATUS_TIMEOUT, km_acquire(c.hKeyedMutex, 0, 0, NULL, NULL, 0));
            EXPECT_OK(km_acquire(c.hKeyedMutex, 5, 0, &fence, NULL, 0));
            check(fence == 0, "new mutex: FenceValue %" PRIu64, fence);
            EXPECT_STATUS(STATUS_INVALID_PARAMETER, km_release(c.hKeyedMutex, 6, 0, "x", 1));
            EXPECT_OK(km_release(c.hKeyedMutex, 6, 0, NULL, 0));
            EXPECT_OK(km_destroy(c.hKeyedMutex));
            EXPECT_STATUS(STATUS_INVALID_PARAMETER, km_destroy(c.hKeyedMutex));
            EXPECT_STATUS(STATUS_INVALID_PARAMETER, km_acquire(c.hKeyedMutex, 6, 0, NULL, NULL, 0));
        }
    }

    /* Opening a keyed mutex from handles that hold none. */
    {
        HANDLE hres = NULL;
        EXPECT_OK(D3DKMTShareObjects(1, &g.hResource, NULL, SHARE_ACCESS, &hres));
        km3 = 0;
        if (hres) {
            EXPECT_STATUS(STATUS_INVALID_PARAMETER, km_open(hres, NULL, 0, &km3));
            close(D3DKMTLinuxHandleToFd(hres));
        }
        int pfd[2];
        if (pipe2(pfd, O_CLOEXEC) == 0) {
            EXPECT_STATUS(STATUS_INVALID_PARAMETER,
                          km_open(D3DKMTLinuxFdToHandle(pfd[0]), NULL, 0, &km3));
            close(pfd[0]);
            close(pfd[1]);
        }
        check(km3 == 0, "a keyed mutex was opened from a handle without one");
    }

    /* ShareObjects: the three objects only in the order resource, keyed
     * mutex, sync object; a keyed mutex is not shared alone. */
    {
        HANDLE bad = NULL;
        D3DKMT_HANDLE wrong[3] = { g.hResource, g.hSync, g.hKeyedMutex };
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTShareObjects(3, wrong, NULL, SHARE_ACCESS, &bad));
        D3DKMT_HANDLE two[2] = { g.hResource, g.hKeyedMutex };
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTShareObjects(2, two, NULL, SHARE_ACCESS, &bad));
        EXPECT_STATUS(STATUS_INVALID_PARAMETER,
                      D3DKMTShareObjects(1, &g.hKeyedMutex, NULL, SHARE_ACCESS, &bad));
        check(bad == NULL, "a refused ShareObjects returned a handle");
        if (bad)
            close(D3DKMTLinuxHandleToFd(bad));
    }

    /* OpenResourceFromNtHandle on the three-object handle, in this process:
     * it returns the keyed mutex and sync object; a short keyed mutex data
     * buffer is refused. */
    {
        open_buffers_t b;
        EXPECT_OK(query_for_open(hDevice, g.h, &b));
        if (b.total) {
            UINT total = b.query.TotalPrivateDriverDataSize;
            uint8_t kmdata[KM_DATA_SIZE];
            prepare_open(hDevice, g.h, &b, 1, total);
            b.open.pKeyedMutexPrivateRuntimeData = kmdata;
            b.open.KeyedMutexPrivateRuntimeDataSize = KM_DATA_SIZE - 1;
            EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTOpenResourceFromNtHandle(&b.open));
            check(b.open.hResource == 0 && b.open.hKeyedMutex == 0 && b.open.hSyncObject == 0,
                  "a refused open returned handles");

            prepare_open(hDevice, g.h, &b, 1, total);
            memset(kmdata, 0, sizeof kmdata);
            b.open.pKeyedMutexPrivateRuntimeData = kmdata;
            b.open.KeyedMutexPrivateRuntimeDataSize = sizeof kmdata;
            EXPECT_OK(D3DKMTOpenResourceFromNtHandle(&b.open));
            check(b.open.hKeyedMutex != 0 && b.open.hSyncObject != 0,
                  "open: hKeyedMutex %#x hSyncObject %#x", b.open.hKeyedMutex,
                  b.open.hSyncObject);
            check(memcmp(kmdata, want, sizeof kmdata) == 0,
                  "open: pKeyedMutexPrivateRuntimeData differs");
            if (b.open.hKeyedMutex) {
                /* It is the same mutex: released with key 0 and fence 44. */
                EXPECT_OK(km_acquire(b.open.hKeyedMutex, 0, 0, &fence, NULL, 0));
                check(fence == 44, "opened mutex: FenceValue %" PRIu64 ", expected 44", fence);
                EXPECT_OK(km_release(b.open.hKeyedMutex, 0, 45, NULL, 0));
                EXPECT_OK(km_destroy(b.open.hKeyedMutex));
            }
            if (b.open.hSyncObject) {
                /* The same sync object too: a signal through it is seen here. */
                EXPECT_OK(sync_signal(hDevice, b.open.hSyncObject, 3));
                check(fence_at(g.fenceVA) == 3, "signal through the opened sync object: the "
                      "creator's CPU address holds %" PRIu64, fence_at(g.fenceVA));
                EXPECT_OK(sync_destroy(b.open.hSyncObject));
            }
            if (b.open.hResource)
                EXPECT_OK(destroy_resource(hDevice, b.open.hResource));
        }
        free_open_buffers(&b);
    }

    if (km2)
        EXPECT_OK(km_destroy(km2));
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, km_destroy(km2));
    destroy_guarded(hDevice, &g);
}

/* SIGCHLD during the abandonment test: reap the killed holder at once, as a
 * program with a SIGCHLD handler does, so that it is gone, not a zombie. */
static volatile sig_atomic_t holder_pid;
static volatile sig_atomic_t holder_reaped;
static volatile sig_atomic_t holder_status;

static void on_sigchld(int sig)
{
    (void)sig;
    int saved = errno, status = 0;
    if (holder_pid > 0 && waitpid((pid_t)holder_pid, &status, WNOHANG) == (pid_t)holder_pid) {
        holder_status = status;
        holder_reaped = 1;
    }
    errno = saved;
}

/* Starts a "hold" child on g->h and waits until it owns the mutex. */
static pid_t start_holder(const char *argv0, const D3DKMT_ADAPTERINFO *ai, guarded_t *g)
{
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0) {
        check(0, "pipe2: %s", strerror(errno));
        return -1;
    }
    char warg[16];
    int w = inheritable(pfd[1], warg, sizeof warg);
    pid_t pid = w < 0 ? -1 : spawn_child(argv0, "hold", g->h, ai->AdapterLuid, warg, NULL, NULL, NULL);
    if (w >= 0)
        close(w);
    close(pfd[1]);
    int c = pid > 0 ? read_byte(pfd[0], 60000) : -1;
    close(pfd[0]);
    check(c == 'A', "the hold child did not report owning the mutex");
    if (c != 'A' && pid > 0) {
        kill(pid, SIGKILL);
        wait_child(pid);
        pid = -1;
    }
    return pid;
}

static void test_abandonment(const char *argv0, const D3DKMT_ADAPTERINFO *ai, D3DKMT_HANDLE hDevice)
{
    guarded_t g;

    /* 1. Destroying an open that owns the mutex abandons it for the other
     *    opens, and for opens made later. */
    if (make_guarded(hDevice, 0, &g)) {
        D3DKMT_HANDLE km2 = 0, km3 = 0;
        EXPECT_OK(km_open(g.h, NULL, 0, &km2));
        EXPECT_OK(km_acquire(km2, 0, 0, NULL, NULL, 0));
        EXPECT_OK(km_destroy(km2));
        uint64_t t0 = now_ns();
        EXPECT_STATUS(STATUS_ABANDONED, km_acquire(g.hKeyedMutex, 0, 5000 * MS_100NS, NULL, NULL, 0));
        check(now_ns() - t0 < 4000000000u, "acquiring a mutex abandoned by destroy took %.0f ms",
              (double)(now_ns() - t0) / 1e6);
        EXPECT_STATUS(STATUS_ABANDONED, km_acquire(g.hKeyedMutex, 3, 0, NULL, NULL, 0));
        EXPECT_STATUS(STATUS_ABANDONED, km_release(g.hKeyedMutex, 0, 0, NULL, 0));
        EXPECT_OK(km_open(g.h, NULL, 0, &km3));
        if (km3) {
            EXPECT_STATUS(STATUS_ABANDONED, km_acquire(km3, 0, NO_TIMEOUT, NULL, NULL, 0));
            EXPECT_OK(km_destroy(km3));
        }
    }
    destroy_guarded(hDevice, &g);

    /* 2. An owner killed with SIGKILL while this process is blocked in an
     *    acquire without timeout: the acquire returns STATUS_ABANDONED. A
     *    helper process (fork, no exec) kills the holder 300 ms after we
     *    start waiting; our SIGCHLD handler reaps it. */
    if (make_guarded(hDevice, 0, &g)) {
        pid_t holder = start_holder(argv0, ai, &g);
        if (holder > 0) {
            EXPECT_STATUS(STATUS_TIMEOUT, km_acquire(g.hKeyedMutex, 0, 0, NULL, NULL, 0));
            EXPECT_STATUS(STATUS_TIMEOUT, km_acquire(g.hKeyedMutex, 0, 20 * MS_100NS, NULL, NULL, 0));

            struct sigaction sa, old;
            memset(&sa, 0, sizeof sa);
            sa.sa_handler = on_sigchld;
            sa.sa_flags = SA_RESTART;
            sigemptyset(&sa.sa_mask);
            holder_reaped = 0;
            holder_status = 0;
            holder_pid = holder;
            sigaction(SIGCHLD, &sa, &old);

            fflush(stdout);
            fflush(stderr);
            pid_t killer = fork();
            if (killer == 0) {
                struct timespec ts = { 0, 300000000 };
                nanosleep(&ts, NULL);
                kill(holder, SIGKILL);
                _exit(0);
            }
            check(killer > 0, "fork: %s", strerror(errno));
            if (killer < 0)
                kill(holder, SIGKILL); /* no blocked waiter then, but no hang either */
            uint64_t t0 = now_ns();
            EXPECT_STATUS(STATUS_ABANDONED,
                          km_acquire(g.hKeyedMutex, 0, killer > 0 ? NO_TIMEOUT : 3000 * MS_100NS,
                                     NULL, NULL, 0));
            double ms = (double)(now_ns() - t0) / 1e6;
            wait_child(killer);
            sigaction(SIGCHLD, &old, NULL);
            holder_pid = 0;
            int status = holder_reaped ? holder_status : wait_child(holder);
            check(status != -1 && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                  "the hold child was not killed by SIGKILL (wait status 0x%x)", status);
            printf("  abandonment by a killed owner seen after %.0f ms\n", ms);
            /* For good, for any key, and for release. */
            EXPECT_STATUS(STATUS_ABANDONED, km_acquire(g.hKeyedMutex, 0, 0, NULL, NULL, 0));
            EXPECT_STATUS(STATUS_ABANDONED, km_acquire(g.hKeyedMutex, 9, NO_TIMEOUT, NULL, NULL, 0));
            EXPECT_STATUS(STATUS_ABANDONED, km_release(g.hKeyedMutex, 0, 0, NULL, 0));
        }
    }
    destroy_guarded(hDevice, &g);

    /* 3. An owner killed and not yet reaped (a zombie: it has terminated, but
     *    its parent, this process, has not called waitpid yet). It owns
     *    nothing any more: an acquire must report the abandonment (bounded
     *    here at 3 s so that a failure does not hang the test). */
    if (make_guarded(hDevice, 0, &g)) {
        pid_t holder = start_holder(argv0, ai, &g);
        if (holder > 0) {
            kill(holder, SIGKILL);
            siginfo_t si;
            memset(&si, 0, sizeof si);
            while (waitid(P_PID, (id_t)holder, &si, WEXITED | WNOWAIT) < 0 && errno == EINTR)
                ;
            check(si.si_pid == holder && si.si_code == CLD_KILLED, "the hold child did not die");
            EXPECT_STATUS(STATUS_ABANDONED, km_acquire(g.hKeyedMutex, 0, 3000 * MS_100NS, NULL, NULL, 0));
            wait_child(holder);
            EXPECT_STATUS(STATUS_ABANDONED, km_acquire(g.hKeyedMutex, 0, 3000 * MS_100NS, NULL, NULL, 0));
        }
    }
    destroy_guarded(hDevice, &g);
}

/* Sync object creation, signal and wait rules, wait-any and wait-all, and a
 * monitored fence shared alone and signalled by a "signal" child. */
static void test_sync_objects(const char *argv0, const D3DKMT_ADAPTERINFO *ai, D3DKMT_HANDLE hDevice)
{
    /* Types. */
    {
        static const D3DDDI_SYNCHRONIZATIONOBJECT_TYPE unsupported[] = {
            D3DDDI_PERIODIC_MONITORED_FENCE, D3DDDI_NATIVE_FENCE };
        static const D3DDDI_SYNCHRONIZATIONOBJECT_TYPE gpuOnly[] = {
            D3DDDI_SYNCHRONIZATION_MUTEX, D3DDDI_SEMAPHORE };
        static const unsigned unknown[] = { 0, D3DDDI_SYNCHRONIZATION_TYPE_LIMIT, 100 };
        D3DKMT_HANDLE hs;
        for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++) {
            EXPECT_STATUS(STATUS_NOT_SUPPORTED, sync_create(hDevice, unsupported[i], 0, &hs, NULL));
            check(hs == 0, "type %d: a handle was returned", (int)unsupported[i]);
        }
        /* A CPU notification needs its event (Windows: STATUS_INVALID_HANDLE without one). */
        EXPECT_STATUS(STATUS_INVALID_HANDLE, sync_create(hDevice, D3DDDI_CPU_NOTIFICATION, 0, &hs, NULL));
        /* Mutexes and semaphores exist, as on Windows, but the CPU calls are for fences. */
        for (size_t i = 0; i < sizeof gpuOnly / sizeof gpuOnly[0]; i++) {
            EXPECT_OK(sync_create(hDevice, gpuOnly[i], 0, &hs, NULL));
            if (hs == 0)
                continue;
            EXPECT_STATUS(STATUS_INVALID_PARAMETER, sync_signal(hDevice, hs, 1));
            EXPECT_STATUS(STATUS_INVALID_PARAMETER, sync_wait(hDevice, hs, 1, -1));
            EXPECT_OK(sync_destroy(hs));
        }
        for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++)
            EXPECT_STATUS(STATUS_INVALID_PARAMETER,
                          sync_create(hDevice, (D3DDDI_SYNCHRONIZATIONOBJECT_TYPE)unknown[i], 0,
                                      &hs, NULL));
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTCreateSynchronizationObject2(NULL));
        EXPECT_STATUS(STATUS_INVALID_PARAMETER,
                      sync_create(0x12345678u, D3DDDI_FENCE, 0, &hs, NULL));
    }

    D3DKMT_HANDLE F = 0, M = 0;
    const UINT64 *mva = NULL;
    EXPECT_OK(sync_create(hDevice, D3DDDI_FENCE, 3, &F, NULL));
    EXPECT_OK(sync_create(hDevice, D3DDDI_MONITORED_FENCE, 5, &M, &mva));
    check(mva != NULL && fence_at(mva) == 5, "monitored fence created at 5: CPU address %p "
          "holds %" PRIu64, (const void *)mva, fence_at(mva));
    if (!F || !M || !mva)
        goto out;

    /* Initial values, and values below them, are reached. */
    check_reached(hDevice, F, 3, "fence created at 3");
    check_reached(hDevice, F, 1, "fence created at 3");
    check_reached(hDevice, M, 5, "monitored fence created at 5");
    {
        D3DKMT_HANDLE Z = 0, ZM = 0;
        EXPECT_OK(sync_create(hDevice, D3DDDI_FENCE, 0, &Z, NULL));
        EXPECT_OK(sync_create(hDevice, D3DDDI_MONITORED_FENCE, 0, &ZM, NULL));
        if (Z) {
            check_reached(hDevice, Z, 0, "fence created at 0");
            EXPECT_OK(sync_destroy(Z));
        }
        if (ZM) {
            check_reached(hDevice, ZM, 0, "monitored fence created at 0");
            EXPECT_OK(sync_destroy(ZM));
        }
    }

    /* Signals: forward, the same value again, never back. */
    EXPECT_OK(sync_signal(hDevice, M, 7));
    check(fence_at(mva) == 7, "after signalling 7 the CPU address holds %" PRIu64, fence_at(mva));
    check_reached(hDevice, M, 7, "monitored fence signalled to 7");
    check_reached(hDevice, M, 6, "monitored fence signalled to 7");
    EXPECT_OK(sync_signal(hDevice, M, 7));
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, sync_signal(hDevice, M, 6));
    {
        D3DDDICB_SIGNALFLAGS rewind;
        memset(&rewind, 0, sizeof rewind);
        rewind.AllowFenceRewind = 1;
        UINT64 two = 2;
        EXPECT_STATUS(STATUS_NOT_SUPPORTED, sync_signal_flags(hDevice, 1, &M, &two, rewind.Value));
    }
    check(fence_at(mva) == 7, "after refused signals the CPU address holds %" PRIu64,
          fence_at(mva));

    /* Counts, NULL arrays, flags, handles of another kind or device. */
    {
        D3DKMT_HANDLE many[D3DDDI_MAX_OBJECT_SIGNALED + 1];
        UINT64 values[D3DDDI_MAX_OBJECT_SIGNALED + 1];
        for (unsigned i = 0; i <= D3DDDI_MAX_OBJECT_SIGNALED; i++) {
            many[i] = M;
            values[i] = 7;
        }
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, sync_signal_flags(hDevice, 0, many, values, 0));
        EXPECT_STATUS(STATUS_INVALID_PARAMETER,
                      sync_signal_flags(hDevice, D3DDDI_MAX_OBJECT_SIGNALED + 1, many, values, 0));
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, sync_signal_flags(hDevice, 1, NULL, values, 0));
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, sync_signal_flags(hDevice, 1, many, NULL, 0));
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, sync_wait_flags(hDevice, 0, many, values, 0, -1));
        EXPECT_STATUS(STATUS_INVALID_PARAMETER,
                      sync_wait_flags(hDevice, D3DDDI_MAX_OBJECT_SIGNALED + 1, many, values, 0, -1));
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, sync_wait_flags(hDevice, 1, NULL, values, 0, -1));
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, sync_wait_flags(hDevice, 1, many, NULL, 0, -1));
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, sync_wait_flags(hDevice, 1, many, values, 2, -1));
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTSignalSynchronizationObjectFromCpu(NULL));
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTWaitForSynchronizationObjectFromCpu(NULL));
        const D3DKMT_HANDLE bogus[] = { 0, 0x12345678u, hDevice };
        for (size_t i = 0; i < sizeof bogus / sizeof bogus[0]; i++) {
            EXPECT_STATUS(STATUS_INVALID_PARAMETER, sync_signal(hDevice, bogus[i], 9));
            EXPECT_STATUS(STATUS_INVALID_PARAMETER, sync_wait(hDevice, bogus[i], 1, -1));
            EXPECT_STATUS(STATUS_INVALID_PARAMETER, sync_destroy(bogus[i]));
        }
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, sync_signal(0, M, 9));

        /* Objects of another device (of the same adapter) are refused. */
        D3DKMT_HANDLE hDevice2 = 0;
        EXPECT_OK(create_device(ai->hAdapter, &hDevice2));
        if (hDevice2) {
            EXPECT_STATUS(STATUS_INVALID_PARAMETER, sync_signal(hDevice2, M, 9));
            EXPECT_STATUS(STATUS_INVALID_PARAMETER, sync_wait(hDevice2, M, 1, -1));
            EXPECT_OK(destroy_device(hDevice2));
        }
        check(fence_at(mva) == 7, "after refused calls the CPU address holds %" PRIu64,
              fence_at(mva));

        /* An hAsyncEvent that is not an eventfd. */
        int pfd[2];
        if (pipe2(pfd, O_CLOEXEC) == 0) {
            EXPECT_STATUS(STATUS_INVALID_PARAMETER, sync_wait(hDevice, M, 100, pfd[0]));
            close(pfd[0]);
            close(pfd[1]);
        }
    }

    /* Wait-any and wait-all of two objects through eventfds. Only waits that
     * are already satisfied block. */
    {
        D3DKMT_HANDLE A = 0, B = 0;
        const UINT64 *bva = NULL;
        EXPECT_OK(sync_create(hDevice, D3DDDI_FENCE, 0, &A, NULL));
        EXPECT_OK(sync_create(hDevice, D3DDDI_MONITORED_FENCE, 0, &B, &bva));
        int eany = new_eventfd(), eall = new_eventfd(), edone = new_eventfd();
        if (A && B && eany >= 0 && eall >= 0 && edone >= 0) {
            D3DKMT_HANDLE ab[2] = { A, B };
            UINT64 ones[2] = { 1, 1 };
            D3DDDI_WAITFORSYNCHRONIZATIONOBJECTFROMCPU_FLAGS any;
            memset(&any, 0, sizeof any);
            any.WaitAny = 1;
            EXPECT_OK(sync_wait_flags(hDevice, 2, ab, ones, any.Value, eany));
            EXPECT_OK(sync_wait_flags(hDevice, 2, ab, ones, 0, eall));
            check(readable(eany, 0) == 0, "wait-any eventfd readable before any signal");
            check(readable(eall, 0) == 0, "wait-all eventfd readable before any signal");

            EXPECT_OK(sync_signal(hDevice, A, 1));
            int any_fired = readable(eany, 10000) == 1;
            check(any_fired, "wait-any eventfd not readable after A reached 1");
            check(readable(eall, 100) == 0, "wait-all eventfd readable when only A reached 1");
            /* Blocking waits only once the eventfd showed they are satisfied. */
            if (any_fired)
                EXPECT_OK(sync_wait_flags(hDevice, 2, ab, ones, any.Value, -1));

            EXPECT_OK(sync_signal(hDevice, B, 1));
            int all_fired = readable(eall, 10000) == 1;
            check(all_fired, "wait-all eventfd not readable after A and B reached 1");
            if (all_fired)
                EXPECT_OK(sync_wait_flags(hDevice, 2, ab, ones, 0, -1));
            check(fence_at(bva) == 1, "B's CPU address holds %" PRIu64 ", expected 1",
                  fence_at(bva));
            uint64_t count = 0;
            check(read(eall, &count, sizeof count) == (ssize_t)sizeof count && count > 0,
                  "reading the wait-all eventfd");

            /* One call signals both; a wait for values already reached makes
             * the eventfd readable at once. */
            UINT64 next[2] = { 2, 3 };
            EXPECT_OK(sync_signal_flags(hDevice, 2, ab, next, 0));
            check(fence_at(bva) == 3, "after signalling {2, 3} B's CPU address holds %" PRIu64,
                  fence_at(bva));
            EXPECT_OK(sync_wait_flags(hDevice, 2, ab, next, 0, edone));
            check(readable(edone, 10000) == 1, "an async wait for reached values did not fire");
        }
        if (eany >= 0)
            close(eany);
        if (eall >= 0)
            close(eall);
        if (edone >= 0)
            close(edone);
        if (A)
            EXPECT_OK(sync_destroy(A));
        if (B)
            EXPECT_OK(sync_destroy(B));
    }

    /* M shared alone, opened by a "signal" child that signals 10 while we
     * are blocked waiting for it; an async wait fires too. */
    {
        HANDLE hm = NULL;
        EXPECT_OK(D3DKMTShareObjects(1, &M, NULL, D3DDDI_SYNC_OBJECT_ALL_ACCESS, &hm));
        if (!hm)
            goto out;
        /* It holds no resource or keyed mutex. */
        D3DKMT_QUERYRESOURCEINFOFROMNTHANDLE q;
        memset(&q, 0, sizeof q);
        q.hDevice = hDevice;
        q.hNtHandle = hm;
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTQueryResourceInfoFromNtHandle(&q));
        D3DKMT_HANDLE none = 0;
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, km_open(hm, NULL, 0, &none));
        /* A second open in this process shares the value. */
        D3DKMT_HANDLE M2 = 0;
        const UINT64 *m2va = NULL;
        EXPECT_OK(sync_open2(hDevice, hm, &M2, &m2va));
        check(m2va != NULL && fence_at(m2va) == 7, "second open: CPU address %p holds %" PRIu64,
              (const void *)m2va, fence_at(m2va));

        int efd = new_eventfd();
        if (efd >= 0) {
            EXPECT_OK(sync_wait(hDevice, M, 10, efd));
            check(readable(efd, 0) == 0, "eventfd readable before the fence reached 10");
        }
        int ready[2] = { -1, -1 }, go[2] = { -1, -1 };
        if (pipe2(ready, O_CLOEXEC) != 0 || pipe2(go, O_CLOEXEC) != 0)
            check(0, "pipe2: %s", strerror(errno));
        char rarg[16], garg[16];
        int rw = ready[1] >= 0 ? inheritable(ready[1], rarg, sizeof rarg) : -1;
        int gr = go[0] >= 0 ? inheritable(go[0], garg, sizeof garg) : -1;
        pid_t pid = rw >= 0 && gr >= 0
            ? spawn_child(argv0, "signal", hm, ai->AdapterLuid, rarg, garg, "7", "10") : -1;
        if (rw >= 0)
            close(rw);
        if (gr >= 0)
            close(gr);
        if (ready[1] >= 0)
            close(ready[1]);
        if (go[0] >= 0)
            close(go[0]);
        int r = pid > 0 ? read_byte(ready[0], 60000) : -1;
        check(r == 'R', "the signal child did not get ready");
        if (r == 'R') {
            check(fence_at(mva) == 7, "before the child's signal the CPU address holds %" PRIu64,
                  fence_at(mva));
            if (efd >= 0)
                check(readable(efd, 0) == 0, "eventfd readable before the child's signal");
            write_byte(go[1], 'G');
            EXPECT_OK(sync_wait(hDevice, M, 10, -1));
            check(fence_at(mva) == 10, "after the wait for 10 the CPU address holds %" PRIu64,
                  fence_at(mva));
            check(fence_at(m2va) == 10, "after the wait for 10 the second open's CPU address "
                  "holds %" PRIu64, fence_at(m2va));
            if (efd >= 0)
                check(readable(efd, 10000) == 1, "eventfd not readable after the child's signal");
        } else if (pid > 0) {
            kill(pid, SIGKILL);
        }
        check_child_exit("signal", wait_child(pid));
        if (r != 'R' && efd >= 0)
            sync_signal(hDevice, M, 10); /* let the async wait end */
        if (efd >= 0)
            close(efd);
        if (ready[0] >= 0)
            close(ready[0]);
        if (go[1] >= 0)
            close(go[1]);
        if (M2)
            EXPECT_OK(sync_destroy(M2));
        close(D3DKMTLinuxHandleToFd(hm));
    }

out:
    if (F) {
        EXPECT_OK(sync_destroy(F));
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, sync_destroy(F));
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, sync_signal(hDevice, F, 4));
    }
    if (M)
        EXPECT_OK(sync_destroy(M));
}

/* Waits for h >= value on hDevice through an eventfd, for at most 10 s. */
static int wait_via_eventfd(D3DKMT_HANDLE hDevice, D3DKMT_HANDLE h, UINT64 value)
{
    int efd = new_eventfd();
    if (efd < 0)
        return 0;
    int ok = sync_wait(hDevice, h, value, efd) == STATUS_SUCCESS && readable(efd, 10000) == 1;
    close(efd);
    return ok;
}

/* DRM adapters with timeline syncobjs: a sync object exported as a syncobj
 * fd and imported on a second device is the same fence; a sync_file for a
 * reached value imports as a fence at 1. `other` lists devices of other
 * adapters, which cannot take this adapter's syncobj. */
static void test_sync_interop(const D3DKMT_ADAPTERINFO *ai, D3DKMT_HANDLE hDevice,
                              const D3DKMT_HANDLE *other, unsigned nother)
{
    D3DKMT_HANDLE hDevice2 = 0, X = 0, Y = 0, Z = 0;
    EXPECT_OK(create_device(ai->hAdapter, &hDevice2));
    EXPECT_OK(sync_create(hDevice, D3DDDI_FENCE, 0, &X, NULL));
    if (!hDevice2 || !X)
        goto out;

    int sfd = -1;
    EXPECT_OK(D3DKMTLinuxExportSyncObjectFd(X, &sfd));
    check(sfd >= 0, "ExportSyncObjectFd: fd %d", sfd);
    if (sfd >= 0) {
        int fl = fcntl(sfd, F_GETFD);
        check(fl >= 0 && (fl & FD_CLOEXEC), "exported syncobj fd is not close-on-exec");
        EXPECT_OK(D3DKMTLinuxImportSyncObjectFd(hDevice2, sfd, D3DKMT_LINUX_IMPORT_SYNCOBJ, &Y));
        close(sfd);
    }
    if (Y) {
        EXPECT_OK(sync_signal(hDevice, X, 3));
        check(wait_via_eventfd(hDevice2, Y, 3), "the imported syncobj did not see X reach 3");
        EXPECT_OK(sync_signal(hDevice2, Y, 4));
        check(wait_via_eventfd(hDevice, X, 4), "X did not see the imported syncobj reach 4");
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, sync_signal(hDevice, X, 2));
    }

    int ffd = -1;
    EXPECT_OK(D3DKMTLinuxExportSyncFile(X, 4, &ffd));
    check(ffd >= 0, "ExportSyncFile: fd %d", ffd);
    if (ffd >= 0) {
        int fl = fcntl(ffd, F_GETFD);
        check(fl >= 0 && (fl & FD_CLOEXEC), "exported sync_file fd is not close-on-exec");
        EXPECT_OK(D3DKMTLinuxImportSyncObjectFd(hDevice2, ffd, D3DKMT_LINUX_IMPORT_SYNC_FILE, &Z));
        close(ffd);
    }
    if (Z) {
        check(wait_via_eventfd(hDevice2, Z, 1), "the imported sync_file did not reach 1");
        EXPECT_OK(sync_wait(hDevice2, Z, 1, -1));
    }
    ffd = -1;
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTLinuxExportSyncFile(X, 100, &ffd));
    check(ffd == -1, "a refused ExportSyncFile returned fd %d", ffd);
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTLinuxExportSyncObjectFd(X, NULL));
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTLinuxExportSyncObjectFd(0x12345678u, &sfd));

    /* Descriptors that are not what Kind says, and unknown kinds. */
    {
        int pfd[2];
        D3DKMT_HANDLE bad = 0;
        if (pipe2(pfd, O_CLOEXEC) == 0) {
            EXPECT_STATUS(STATUS_INVALID_PARAMETER,
                          D3DKMTLinuxImportSyncObjectFd(hDevice2, pfd[0], D3DKMT_LINUX_IMPORT_SYNCOBJ, &bad));
            EXPECT_STATUS(STATUS_INVALID_PARAMETER,
                          D3DKMTLinuxImportSyncObjectFd(hDevice2, pfd[0], D3DKMT_LINUX_IMPORT_SYNC_FILE, &bad));
            EXPECT_STATUS(STATUS_INVALID_PARAMETER,
                          D3DKMTLinuxImportSyncObjectFd(hDevice2, pfd[0], 7, &bad));
            close(pfd[0]);
            close(pfd[1]);
        }
        check(bad == 0, "a refused import returned a handle");
    }

    /* This adapter's syncobj cannot be opened on another adapter's device
     * that has no timeline syncobjs, or on the software adapter. */
    {
        HANDLE hx = NULL;
        EXPECT_OK(D3DKMTShareObjects(1, &X, NULL, D3DDDI_SYNC_OBJECT_ALL_ACCESS, &hx));
        for (unsigned i = 0; hx && i < nother; i++) {
            D3DKMT_HANDLE opened = 0;
            EXPECT_STATUS(STATUS_NOT_SUPPORTED, sync_open2(other[i], hx, &opened, NULL));
            if (opened)
                sync_destroy(opened);
        }
        if (hx)
            close(D3DKMTLinuxHandleToFd(hx));
    }

out:
    if (Z)
        EXPECT_OK(sync_destroy(Z));
    if (Y)
        EXPECT_OK(sync_destroy(Y));
    if (X)
        EXPECT_OK(sync_destroy(X));
    if (hDevice2)
        EXPECT_OK(destroy_device(hDevice2));
}

/* The software adapter has no DRM syncobjs to export or import. */
static void test_sync_no_interop(D3DKMT_HANDLE hDevice)
{
    D3DKMT_HANDLE X = 0, Y = 0;
    int fd = -1;
    EXPECT_OK(sync_create(hDevice, D3DDDI_FENCE, 1, &X, NULL));
    if (!X)
        return;
    EXPECT_STATUS(STATUS_NOT_SUPPORTED, D3DKMTLinuxExportSyncObjectFd(X, &fd));
    EXPECT_STATUS(STATUS_NOT_SUPPORTED, D3DKMTLinuxExportSyncFile(X, 1, &fd));
    check(fd == -1, "a refused export returned fd %d", fd);
    int efd = new_eventfd();
    if (efd >= 0) {
        EXPECT_STATUS(STATUS_NOT_SUPPORTED,
                      D3DKMTLinuxImportSyncObjectFd(hDevice, efd, D3DKMT_LINUX_IMPORT_SYNCOBJ, &Y));
        EXPECT_STATUS(STATUS_NOT_SUPPORTED,
                      D3DKMTLinuxImportSyncObjectFd(hDevice, efd, D3DKMT_LINUX_IMPORT_SYNC_FILE, &Y));
        close(efd);
    }
    check(Y == 0, "a refused import returned a handle");
    EXPECT_OK(sync_destroy(X));
}

/* Sharing and opening keyed mutexes and sync objects, with refused opens in
 * between, and async waits: no descriptor may be left behind. */
static void test_sync_leaks(D3DKMT_HANDLE hDevice)
{
    int before = count_fds();
    int errors = 0;
    for (int cycle = 0; cycle < SYNC_LEAK_CYCLES && errors == 0; cycle++) {
        guarded_t g;
        memset(&g, 0, sizeof g);
        int failed_before = failed;
        if (!make_guarded(hDevice, 0, &g)) {
            errors++;
        } else {
            D3DKMT_HANDLE km = 0, s = 0;
            uint8_t small[KM_DATA_SIZE - 1];
            if (km_open(g.h, small, sizeof small, &km) != STATUS_INVALID_PARAMETER)
                errors++;
            if (km_open(g.h, NULL, 0, &km) != STATUS_SUCCESS ||
                km_acquire(km, 0, 0, NULL, NULL, 0) != STATUS_SUCCESS ||
                km_release(km, 1, 1, NULL, 0) != STATUS_SUCCESS || km_destroy(km) != STATUS_SUCCESS)
                errors++;
            if (sync_open2(hDevice, g.h, &s, NULL) != STATUS_SUCCESS || sync_destroy(s) != STATUS_SUCCESS)
                errors++;
            open_buffers_t b;
            if (query_for_open(hDevice, g.h, &b) != STATUS_SUCCESS) {
                errors++;
            } else {
                uint8_t kmdata[KM_DATA_SIZE];
                prepare_open(hDevice, g.h, &b, 1, b.query.TotalPrivateDriverDataSize);
                b.open.pKeyedMutexPrivateRuntimeData = kmdata;
                b.open.KeyedMutexPrivateRuntimeDataSize = sizeof kmdata - 1;
                if (D3DKMTOpenResourceFromNtHandle(&b.open) != STATUS_INVALID_PARAMETER)
                    errors++;
                b.open.KeyedMutexPrivateRuntimeDataSize = sizeof kmdata;
                if (D3DKMTOpenResourceFromNtHandle(&b.open) != STATUS_SUCCESS ||
                    km_destroy(b.open.hKeyedMutex) != STATUS_SUCCESS ||
                    sync_destroy(b.open.hSyncObject) != STATUS_SUCCESS ||
                    destroy_resource(hDevice, b.open.hResource) != STATUS_SUCCESS)
                    errors++;
            }
            free_open_buffers(&b);
            /* An async wait that completes. */
            int efd = eventfd(0, EFD_CLOEXEC);
            if (efd < 0 || sync_wait(hDevice, g.hSync, 1, efd) != STATUS_SUCCESS ||
                sync_signal(hDevice, g.hSync, 1) != STATUS_SUCCESS || readable(efd, 10000) != 1)
                errors++;
            if (efd >= 0)
                close(efd);
        }
        destroy_guarded(hDevice, &g);
        if (failed != failed_before)
            errors++;
        if (errors)
            fprintf(stderr, "%s: sync leak test: cycle %d failed\n", who, cycle);
    }
    check(errors == 0, "sync leak test: calls failed");
    int after = count_fds_settled(before);
    check(before >= 0 && before == after, "sync leak test: %d descriptors before %d cycles, %d "
          "after", before, SYNC_LEAK_CYCLES, after);
}

/* Keyed mutexes and sync objects on one adapter. `others` are devices of the
 * other adapters. */
static void test_sync_and_keyed_mutexes(const char *argv0, unsigned index,
                                        const D3DKMT_ADAPTERINFO *ai,
                                        const D3DKMT_LINUX_ADAPTER_INFO *li, int info_ok,
                                        D3DKMT_HANDLE hDevice, const D3DKMT_HANDLE *others,
                                        unsigned nothers)
{
    /* Sync objects need the software adapter or timeline syncobjs. */
    int software = info_ok && (li->Flags & D3DKMT_LINUX_ADAPTER_SOFTWARE);
    int timelines = info_ok && (li->Flags & D3DKMT_LINUX_ADAPTER_SYNCOBJ_TIMELINE);
    D3DKMT_HANDLE probe = 0;
    NTSTATUS st = sync_create(hDevice, D3DDDI_MONITORED_FENCE, 0, &probe, NULL);
    if (!software && !timelines) {
        EXPECT_STATUS(STATUS_NOT_SUPPORTED, st);
        D3DKMT_HANDLE fence = 0;
        EXPECT_STATUS(STATUS_NOT_SUPPORTED, sync_create(hDevice, D3DDDI_FENCE, 0, &fence, NULL));
        printf("  adapter %u (%s): no timeline syncobjs: sync object creation is "
               "STATUS_NOT_SUPPORTED as documented; keyed mutex and sync object tests skipped\n",
               index, info_ok ? li->DriverName : "?");
        if (probe)
            sync_destroy(probe);
        if (fence)
            sync_destroy(fence);
        return;
    }
    EXPECT_OK(st);
    if (probe)
        EXPECT_OK(sync_destroy(probe));

    /* The library may open things once, on first use (the adapter list a
     * keyed mutex takes its timeline from): do that before counting. */
    {
        D3DKMT_HANDLE km = 0;
        EXPECT_OK(km_create(0, NULL, 0, &km));
        if (km)
            EXPECT_OK(km_destroy(km));
    }
    int before = count_fds();

    phase("keyed mutex ping-pong");
    test_pingpong(argv0, ai, hDevice);
    phase("keyed mutex statuses");
    test_keyed_mutex_statuses(hDevice);
    phase("keyed mutex abandonment");
    test_abandonment(argv0, ai, hDevice);
    phase("sync objects");
    test_sync_objects(argv0, ai, hDevice);
    phase("sync object export and import");
    if (software)
        test_sync_no_interop(hDevice);
    else
        test_sync_interop(ai, hDevice, others, nothers);
    int after = count_fds_settled(before);
    check(before >= 0 && before == after, "keyed mutex and sync object tests: %d descriptors "
          "before, %d after", before, after);
    phase("keyed mutex and sync object leaks");
    test_sync_leaks(hDevice);
}

/* D3DKMTLinuxExportKeyedMutexTimelineFd: a keyed mutex has a DRM timeline
 * when the machine has an adapter with timeline syncobjs, and not otherwise. */
static void test_keyed_mutex_timeline(const D3DKMT_ADAPTERINFO *adapters, ULONG count)
{
    D3DKMT_HANDLE timeline_adapter = 0;
    for (ULONG i = 0; i < count && !timeline_adapter; i++) {
        D3DKMT_LINUX_ADAPTER_INFO li;
        D3DKMT_QUERYADAPTERINFO qa;
        memset(&li, 0, sizeof li);
        memset(&qa, 0, sizeof qa);
        qa.hAdapter = adapters[i].hAdapter;
        qa.Type = KMTQAITYPE_LINUX_DRM_INFO;
        qa.pPrivateDriverData = &li;
        qa.PrivateDriverDataSize = sizeof li;
        if (D3DKMTQueryAdapterInfo(&qa) == STATUS_SUCCESS &&
            (li.Flags & D3DKMT_LINUX_ADAPTER_SYNCOBJ_TIMELINE))
            timeline_adapter = adapters[i].hAdapter;
    }
    int before = count_fds();
    D3DKMT_HANDLE km = 0;
    EXPECT_OK(km_create(0, NULL, 0, &km));
    if (!km)
        return;
    int fd = -1;
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTLinuxExportKeyedMutexTimelineFd(km, NULL));
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTLinuxExportKeyedMutexTimelineFd(0x12345678u, &fd));
    if (!timeline_adapter) {
        EXPECT_STATUS(STATUS_NOT_SUPPORTED, D3DKMTLinuxExportKeyedMutexTimelineFd(km, &fd));
        check(fd == -1, "a refused export returned fd %d", fd);
        printf("keyed mutex timeline: no adapter with timeline syncobjs, export is "
               "STATUS_NOT_SUPPORTED\n");
    } else {
        EXPECT_OK(D3DKMTLinuxExportKeyedMutexTimelineFd(km, &fd));
        check(fd >= 0, "ExportKeyedMutexTimelineFd: fd %d", fd);
        if (fd >= 0) {
            int fl = fcntl(fd, F_GETFD);
            check(fl >= 0 && (fl & FD_CLOEXEC), "keyed mutex timeline fd is not close-on-exec");
            /* It is a timeline syncobj that a device with timelines imports. */
            D3DKMT_HANDLE hDevice = 0, hSync = 0;
            EXPECT_OK(create_device(timeline_adapter, &hDevice));
            if (hDevice) {
                EXPECT_OK(D3DKMTLinuxImportSyncObjectFd(hDevice, fd, D3DKMT_LINUX_IMPORT_SYNCOBJ, &hSync));
                if (hSync)
                    EXPECT_OK(sync_destroy(hSync));
                EXPECT_OK(destroy_device(hDevice));
            }
            close(fd);
        }
        printf("keyed mutex timeline: exported and imported\n");
    }
    EXPECT_OK(km_destroy(km));
    int after = count_fds();
    check(before == after, "keyed mutex timeline: %d descriptors before, %d after", before, after);
}

static void print_adapter_line(unsigned index, const D3DKMT_ADAPTERINFO *ai,
                               const D3DKMT_LINUX_ADAPTER_INFO *li, int info_ok, int failures)
{
    printf("adapter %u: luid %08" PRIX32 ":%08" PRIX32 " %s %s %s: %s", index,
           (uint32_t)ai->AdapterLuid.HighPart, (uint32_t)ai->AdapterLuid.LowPart,
           info_ok ? li->DriverName : "?",
           info_ok && li->RenderNode[0] ? li->RenderNode : "-",
           info_ok && li->BusInfo[0] ? li->BusInfo : "-",
           failures ? "FAILED" : "ok");
    if (failures)
        printf(" (%d failed)", failures);
    printf("\n");
}

/* Devices on the adapters other than `index` that cannot take a DRM
 * timeline syncobj (the software adapter, DRM devices without timelines). */
static unsigned devices_without_timelines(const D3DKMT_ADAPTERINFO *adapters, ULONG count,
                                          unsigned index, D3DKMT_HANDLE *devices)
{
    unsigned n = 0;
    for (ULONG i = 0; i < count; i++) {
        D3DKMT_LINUX_ADAPTER_INFO li;
        D3DKMT_QUERYADAPTERINFO qa;
        memset(&li, 0, sizeof li);
        memset(&qa, 0, sizeof qa);
        qa.hAdapter = adapters[i].hAdapter;
        qa.Type = KMTQAITYPE_LINUX_DRM_INFO;
        qa.pPrivateDriverData = &li;
        qa.PrivateDriverDataSize = sizeof li;
        if (i == index || D3DKMTQueryAdapterInfo(&qa) != STATUS_SUCCESS)
            continue;
        if ((li.Flags & D3DKMT_LINUX_ADAPTER_SOFTWARE) ||
            !(li.Flags & D3DKMT_LINUX_ADAPTER_SYNCOBJ_TIMELINE)) {
            D3DKMT_HANDLE d = 0;
            EXPECT_OK(create_device(adapters[i].hAdapter, &d));
            if (d)
                devices[n++] = d;
        }
    }
    return n;
}

static void test_adapter(const char *argv0, unsigned index, const D3DKMT_ADAPTERINFO *adapters,
                         ULONG count)
{
    const D3DKMT_ADAPTERINFO *ai = &adapters[index];
    int failed_before = failed;

    D3DKMT_LINUX_ADAPTER_INFO li;
    memset(&li, 0, sizeof li);
    D3DKMT_QUERYADAPTERINFO qa;
    memset(&qa, 0, sizeof qa);
    qa.hAdapter = ai->hAdapter;
    qa.Type = KMTQAITYPE_LINUX_DRM_INFO;
    qa.pPrivateDriverData = &li;
    qa.PrivateDriverDataSize = sizeof li;
    NTSTATUS st = D3DKMTQueryAdapterInfo(&qa);
    EXPECT_OK(st);
    int info_ok = NT_SUCCESS(st);
    if (info_ok) {
        li.DriverName[sizeof li.DriverName - 1] = '\0';
        li.RenderNode[sizeof li.RenderNode - 1] = '\0';
        li.PrimaryNode[sizeof li.PrimaryNode - 1] = '\0';
        li.BusInfo[sizeof li.BusInfo - 1] = '\0';
        check(li.Version == D3DKMT_LINUX_ADAPTER_INFO_VERSION, "adapter info Version %u",
              li.Version);
    }

    D3DKMT_HANDLE hDevice = 0;
    EXPECT_OK(create_device(ai->hAdapter, &hDevice));
    if (hDevice == 0)
        goto out;

    D3DKMT_HANDLE hResource = 0, hAlloc[NUM_ALLOCATIONS] = { 0 };
    EXPECT_OK(create_resource(hDevice, NUM_ALLOCATIONS, 1, &hResource, hAlloc));
    check(hResource != 0 && hAlloc[0] != 0 && hAlloc[1] != 0,
          "create: missing resource or allocation handles");
    if (hResource == 0 || hAlloc[0] == 0 || hAlloc[1] == 0)
        goto destroy_device;

    {
        UINT64 size = 0;
        EXPECT_OK(D3DKMTLinuxQueryAllocationSize(hDevice, hAlloc[0], &size));
        check(size == ALLOCATION_SIZE, "allocation 0 size %" PRIu64, (uint64_t)size);

        int dfd = -1;
        EXPECT_OK(D3DKMTLinuxExportAllocationDmaBuf(hDevice, hAlloc[0], &dfd));
        check(dfd >= 0, "exported dma-buf fd %d", dfd);
        if (dfd >= 0) {
            int fl = fcntl(dfd, F_GETFD);
            check(fl >= 0 && (fl & FD_CLOEXEC), "exported dma-buf fd is not close-on-exec");
            close(dfd);
        }
    }

    uint8_t *p = NULL;
    EXPECT_OK(lock(hDevice, hAlloc[0], &p));
    if (p) {
        for (size_t i = 0; i < ALLOCATION_SIZE; i++)
            p[i] = pattern_byte(i);
        EXPECT_OK(unlock(hDevice, hAlloc[0]));
    }

    HANDLE h = NULL;
    EXPECT_OK(D3DKMTShareObjects(1, &hResource, NULL, SHARE_ACCESS, &h));
    check(h != NULL, "share: no handle returned");
    if (h == NULL)
        goto destroy_resource;
    {
        int fl = fcntl(D3DKMTLinuxHandleToFd(h), F_GETFD);
        check(fl >= 0 && (fl & FD_CLOEXEC), "shared handle fd is not close-on-exec");
    }

    int status = run_child(argv0, h, ai->AdapterLuid);
    if (status != -1 && WIFSIGNALED(status))
        fprintf(stderr, "%s: child killed by signal %d\n", who, WTERMSIG(status));
    check(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "child did not exit with status 0 (wait status 0x%x)", status);

    p = NULL;
    EXPECT_OK(lock(hDevice, hAlloc[1], &p));
    if (p) {
        size_t bad = ALLOCATION_SIZE;
        for (size_t i = 0; i < ALLOCATION_SIZE; i++) {
            if (p[i] != reply_byte(i)) {
                bad = i;
                break;
            }
        }
        check(bad == ALLOCATION_SIZE, "allocation 1: the child's reply differs at byte %zu", bad);
        EXPECT_OK(unlock(hDevice, hAlloc[1]));
    }

    test_rejections(hDevice, hResource, h);
    test_no_leaks(hDevice, hResource);

    {
        D3DKMT_HANDLE *others = calloc(count ? count : 1, sizeof *others);
        unsigned nothers = others ? devices_without_timelines(adapters, count, index, others) : 0;
        test_sync_and_keyed_mutexes(argv0, index, ai, &li, info_ok, hDevice, others, nothers);
        for (unsigned i = 0; i < nothers; i++)
            EXPECT_OK(destroy_device(others[i]));
        free(others);
    }

    check(close(D3DKMTLinuxHandleToFd(h)) == 0, "close(shared handle): %s", strerror(errno));

destroy_resource:
    EXPECT_OK(destroy_resource(hDevice, hResource));
destroy_device:
    EXPECT_OK(destroy_device(hDevice));
out:
    print_adapter_line(index, ai, &li, info_ok, failed - failed_before);
}

int main(int argc, char **argv)
{
    if (argc >= 5) {
        LUID luid;
        luid.LowPart = (DWORD)strtoul(argv[3], NULL, 10);
        luid.HighPart = (LONG)strtol(argv[4], NULL, 10);
        int fd = atoi(argv[2]);
        if (argc == 5 && strcmp(argv[1], "child") == 0)
            return child_main(fd, luid);
        if (argc == 6 && strcmp(argv[1], "pingpong") == 0)
            return pingpong_main(fd, luid, (unsigned)strtoul(argv[5], NULL, 10));
        if (argc == 6 && strcmp(argv[1], "hold") == 0)
            return hold_main(fd, atoi(argv[5]));
        if (argc == 9 && strcmp(argv[1], "signal") == 0)
            return signal_main(fd, luid, atoi(argv[5]), atoi(argv[6]),
                               strtoull(argv[7], NULL, 10), strtoull(argv[8], NULL, 10));
    }
    if (argc != 1) {
        fprintf(stderr, "usage: %s\n", argv[0]);
        return 2;
    }
    /* A hang must fail the test, not stall it; a child that dies must not
     * kill us through a pipe. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGALRM, on_phase_timeout);
    signal(SIGPIPE, SIG_IGN);
    phase("enumerating adapters");

    D3DKMT_ENUMADAPTERS2 ea;
    memset(&ea, 0, sizeof ea);
    ea.pAdapters = NULL;
    EXPECT_OK(D3DKMTEnumAdapters2(&ea));
    ULONG capacity = ea.NumAdapters;
    check(capacity > 0, "EnumAdapters2 reports room for no adapters");

    D3DKMT_ADAPTERINFO *adapters = calloc(capacity ? capacity : 1, sizeof *adapters);
    if (!adapters) {
        perror("calloc");
        return 1;
    }
    ea.NumAdapters = capacity;
    ea.pAdapters = adapters;
    EXPECT_OK(D3DKMTEnumAdapters2(&ea));
    ULONG count = ea.NumAdapters <= capacity ? ea.NumAdapters : 0;
    check(count > 0, "EnumAdapters2 returned no adapters (there is always a software one)");

    for (ULONG i = 0; i < count; i++) {
        phase("sharing a resource");
        test_adapter(argv[0], (unsigned)i, adapters, count);
    }
    phase("keyed mutex timeline");
    test_keyed_mutex_timeline(adapters, count);
    alarm(0);

    for (ULONG i = 0; i < count; i++)
        EXPECT_OK(close_adapter(adapters[i].hAdapter));
    free(adapters);

    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
