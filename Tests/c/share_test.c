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
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define ALLOCATION_SIZE   65536u
#define NUM_ALLOCATIONS   2u
#define RUNTIME_DATA_SIZE 16u
#define RESOURCE_DATA_SIZE 8u
#define LEAK_CYCLES       200
#define SHARE_ACCESS      (STANDARD_RIGHTS_READ | SHARED_ALLOCATION_WRITE)

/* Each allocation's private driver data: the descriptor the library reads,
 * followed by bytes of our own that must travel with the allocation. */
typedef struct {
    D3DKMT_LINUX_ALLOCATION_DESC desc;
    uint8_t tail[8];
} alloc_private_t;

static int passed;
static int failed;
static const char *who = "parent";

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
    check(b.query.TotalPrivateDriverDataSize >= NUM_ALLOCATIONS * sizeof(alloc_private_t),
          "query: TotalPrivateDriverDataSize %u, expected at least %zu",
          b.query.TotalPrivateDriverDataSize, NUM_ALLOCATIONS * sizeof(alloc_private_t));
    if (failed)
        return 1;

    /* The runtime data can also be read through the query. */
    {
        uint8_t rt[RUNTIME_DATA_SIZE], want[RUNTIME_DATA_SIZE];
        D3DKMT_QUERYRESOURCEINFOFROMNTHANDLE q2;
        memset(&q2, 0, sizeof q2);
        memset(rt, 0, sizeof rt);
        q2.hDevice = hDevice;
        q2.hNtHandle = h;
        q2.pPrivateRuntimeData = rt;
        q2.PrivateRuntimeDataSize = sizeof rt;
        EXPECT_OK(D3DKMTQueryResourceInfoFromNtHandle(&q2));
        fill_runtime_data(want);
        check(q2.PrivateRuntimeDataSize == RUNTIME_DATA_SIZE && memcmp(rt, want, sizeof rt) == 0,
              "query with a buffer: runtime data differs");
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
    check(written >= NUM_ALLOCATIONS * sizeof(alloc_private_t) && written <= total,
          "open: TotalPrivateDriverDataBufferSize out %u, expected %zu..%u", written,
          NUM_ALLOCATIONS * sizeof(alloc_private_t), total);

    /* Each allocation's private driver data lies in the total buffer, where
     * its D3DDDI_OPENALLOCATIONINFO2 entry points, without overlapping the
     * previous one. */
    size_t previous_end = 0;
    for (unsigned i = 0; i < NUM_ALLOCATIONS; i++) {
        const D3DDDI_OPENALLOCATIONINFO2 *a = &b.allocs[i];
        check(a->hAllocation != 0, "open: allocation %u has no handle", i);
        check(a->PrivateDriverDataSize == sizeof(alloc_private_t),
              "open: allocation %u PrivateDriverDataSize %u, expected %zu", i,
              a->PrivateDriverDataSize, sizeof(alloc_private_t));
        const uint8_t *p = (const uint8_t *)a->pPrivateDriverData;
        int inside = p != NULL && p >= b.total && p + a->PrivateDriverDataSize <= b.total + written;
        check(inside, "open: allocation %u pPrivateDriverData %p is not inside the total buffer "
              "%p+%u", i, (const void *)p, (void *)b.total, written);
        if (!inside || a->PrivateDriverDataSize < sizeof(alloc_private_t))
            continue;
        size_t offset = (size_t)(p - b.total);
        check(offset >= previous_end, "open: allocation %u driver data overlaps the previous one",
              i);
        previous_end = offset + a->PrivateDriverDataSize;

        alloc_private_t got, want;
        memcpy(&got, p, sizeof got);
        fill_alloc_private(&want, i);
        check(got.desc.Version == D3DKMT_LINUX_ALLOCATION_DESC_VERSION,
              "open: allocation %u descriptor Version %u", i, got.desc.Version);
        check(got.desc.Size == ALLOCATION_SIZE, "open: allocation %u descriptor Size %" PRIu64
              ", expected %u", i, (uint64_t)got.desc.Size, ALLOCATION_SIZE);
        check(got.desc.DmaBufFd == -1, "open: allocation %u descriptor DmaBufFd %d, expected -1",
              i, got.desc.DmaBufFd);
        check(memcmp(got.tail, want.tail, sizeof got.tail) == 0,
              "open: allocation %u runtime bytes after the descriptor differ", i);
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

/* ------------------------------------------------------------------------ */
/* Parent process                                                           */
/* ------------------------------------------------------------------------ */

/* Runs the child on a copy of the handle; returns its wait status or -1. */
static int run_child(const char *argv0, HANDLE h, LUID luid)
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
        char *args[] = { (char *)argv0, (char *)"child", fdarg, lowarg, higharg, NULL };
        execv("/proc/self/exe", args);
        perror("execv /proc/self/exe");
        _exit(127);
    }
    close(cfd);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            perror("waitpid");
            return -1;
        }
    }
    return status;
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

        /* A total private driver data buffer one byte short: same status. */
        prepare_open(hDevice, h, &b, NUM_ALLOCATIONS, total - 1);
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTOpenResourceFromNtHandle(&b.open));
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
            if (D3DKMTOpenResourceFromNtHandle(&b.open) != STATUS_INVALID_PARAMETER)
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

static void test_adapter(const char *argv0, unsigned index, const D3DKMT_ADAPTERINFO *ai)
{
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
    if (argc == 5 && strcmp(argv[1], "child") == 0) {
        LUID luid;
        luid.LowPart = (DWORD)strtoul(argv[3], NULL, 10);
        luid.HighPart = (LONG)strtol(argv[4], NULL, 10);
        return child_main(atoi(argv[2]), luid);
    }
    if (argc != 1) {
        fprintf(stderr, "usage: %s\n", argv[0]);
        return 2;
    }

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

    for (ULONG i = 0; i < count; i++)
        test_adapter(argv[0], (unsigned)i, &adapters[i]);

    for (ULONG i = 0; i < count; i++)
        EXPECT_OK(close_adapter(adapters[i].hAdapter));
    free(adapters);

    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
