/*
 * kmt_test.c - the shared harness and D3DKMT helpers of the C ABI test
 * programs (see kmt_test.h). Compiled into every test program of Tests/c.
 */
#define _GNU_SOURCE
#include "kmt_test.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int passed;
int failed;
const char *who = "parent";
const char *volatile current_phase = "start";
static unsigned phase_seconds = 90;

/* ------------------------------------------------------------------------ */
/* Harness                                                                  */
/* ------------------------------------------------------------------------ */

static void on_phase_timeout(int sig)
{
    (void)sig;
    static const char a[] = ": FAIL: timed out (hung) in phase: ";
    const char *p = current_phase;
    ssize_t ignored = write(2, who, strlen(who));
    ignored = write(2, a, sizeof a - 1);
    ignored = write(2, p, strlen(p));
    ignored = write(2, "\n", 1);
    (void)ignored;
    _exit(124);
}

void test_start(int argc, char **argv, unsigned seconds)
{
    if (argc != 1) {
        fprintf(stderr, "usage: %s\n", argv[0]);
        exit(2);
    }
    phase_seconds = seconds;
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGALRM, on_phase_timeout);
    signal(SIGPIPE, SIG_IGN);
}

int test_finish(void)
{
    alarm(0);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

void phase(const char *name)
{
    current_phase = name;
    alarm(phase_seconds);
}

static void report(const char *file, int line, const char *fmt, va_list ap)
{
    fprintf(stderr, "%s: FAIL: [%s] ", who, current_phase);
    if (file)
        fprintf(stderr, "%s:%d: ", file, line);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void check(int ok, const char *fmt, ...)
{
    if (ok) {
        passed++;
        return;
    }
    failed++;
    va_list ap;
    va_start(ap, fmt);
    report(NULL, 0, fmt, ap);
    va_end(ap);
}

void check_at(const char *file, int line, int ok, const char *fmt, ...)
{
    if (ok) {
        passed++;
        return;
    }
    failed++;
    va_list ap;
    va_start(ap, fmt);
    report(file, line, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------------ */
/* Process state and time                                                   */
/* ------------------------------------------------------------------------ */

int count_fds(void)
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

int count_threads(void)
{
    FILE *f = fopen("/proc/self/status", "re");
    if (!f)
        return -1;
    char line[256];
    int n = -1;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "Threads: %d", &n) == 1)
            break;
    }
    fclose(f);
    return n;
}

void settle(int want_fds, int want_threads, int *fds, int *threads)
{
    int t = want_threads < 0 ? want_threads : count_threads();
    int f = count_fds();
    for (int i = 0; i < 300 && (f != want_fds || t != want_threads); i++) {
        usleep(10000);
        f = count_fds();
        t = want_threads < 0 ? want_threads : count_threads();
    }
    *fds = f;
    if (threads)
        *threads = t;
}

int count_fds_settled(int want)
{
    int fds;
    settle(want, -1, &fds, NULL);
    return fds;
}

void quiet_counts(int *fds, int *threads)
{
    *fds = count_fds();
    *threads = count_threads();
    for (int i = 0, still = 0; i < 250 && still < 10; i++) {
        usleep(20000);
        int f = count_fds(), t = count_threads();
        still = f == *fds && t == *threads ? still + 1 : 0;
        *fds = f;
        *threads = t;
    }
}

int warmed_up_fds(D3DKMT_HANDLE hDevice)
{
    D3DKMT_HANDLE km = 0;
    EXPECT_OK(km_create(0, NULL, 0, &km));
    if (km)
        EXPECT_OK(km_destroy(km));
    /* A v1 keyed mutex has a global handle, served by the event thread: that starts it. */
    km = 0;
    EXPECT_OK(km_create_ex(1, 0, 0, NULL, 0, &km, NULL));
    if (km)
        EXPECT_OK(km_destroy(km));
    if (hDevice) {
        D3DKMT_HANDLE hResource = 0, hAllocation = 0;
        EXPECT_OK(create_resource(hDevice, 1, 0, &hResource, &hAllocation));
        if (hResource)
            EXPECT_OK(destroy_resource(hDevice, hResource));
    }
    /* The library's event thread (names, async waits) lives as long as the process once started,
     * with two descriptors of its own: started here by one async wait, on the first adapter with
     * fences. */
    ULONG count = 0;
    D3DKMT_ADAPTERINFO *adapters = enum_adapters(&count);
    int started = 0;
    for (ULONG i = 0; adapters && i < count && !started; i++) {
        D3DKMT_HANDLE device = 0, hFence = 0;
        if (create_device(adapters[i].hAdapter, &device) != STATUS_SUCCESS)
            continue;
        if (sync_create(device, D3DDDI_MONITORED_FENCE, 0, &hFence, NULL) == STATUS_SUCCESS) {
            int efd = new_eventfd();
            started = sync_wait(device, hFence, 1, efd) == STATUS_SUCCESS &&
                      sync_signal(device, hFence, 1) == STATUS_SUCCESS && readable(efd, 5000);
            close(efd);
            sync_destroy(hFence);
        }
        destroy_device(device);
    }
    check(started, "warming up: no adapter ran an async wait");
    close_adapters(adapters, count);
    /* The event thread drops the finished wait (and with it the device it kept) just after
     * signalling: count once the numbers are still. */
    int fds, threads;
    quiet_counts(&fds, &threads);
    return fds;
}

uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* 100 ns units since 1601. */
LONGLONG nt_system_time(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (LONGLONG)ts.tv_sec * 10000000LL + ts.tv_nsec / 100 + 116444736000000000LL;
}

int readable(int fd, int timeout_ms)
{
    struct pollfd p = { .fd = fd, .events = POLLIN, .revents = 0 };
    uint64_t end = now_ns() + (uint64_t)timeout_ms * 1000000u;
    for (;;) {
        uint64_t now = now_ns();
        int left = now >= end ? 0 : (int)((end - now) / 1000000u);
        int n = poll(&p, 1, left);
        if (n >= 0)
            return n > 0 && (p.revents & POLLIN) ? 1 : 0;
        if (errno != EINTR)
            return -1;
    }
}

int new_eventfd(void)
{
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    check(efd >= 0, "eventfd: %s", strerror(errno));
    return efd;
}

int read_byte(int fd, int timeout_ms)
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

void write_byte(int fd, unsigned char c)
{
    ssize_t n;
    do {
        n = write(fd, &c, 1);
    } while (n < 0 && errno == EINTR);
    check(n == 1, "%s: writing to a pipe: %s", who, n < 0 ? strerror(errno) : "short write");
}

/* ------------------------------------------------------------------------ */
/* Children                                                                 */
/* ------------------------------------------------------------------------ */

int inheritable(int fd, char *buf, size_t size)
{
    if (fd < 0) {
        snprintf(buf, size, "-1");
        return -1;
    }
    int copy = fcntl(fd, F_DUPFD, 3);
    check(copy >= 0, "F_DUPFD: %s", strerror(errno));
    snprintf(buf, size, "%d", copy);
    return copy;
}

pid_t spawn(char *const args[])
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return -1;
    }
    if (pid == 0) {
        execv("/proc/self/exe", args);
        perror("execv /proc/self/exe");
        _exit(127);
    }
    return pid;
}

pid_t spawn_child(const char *argv0, const char *mode, HANDLE h, LUID luid, const char *extra1,
                  const char *extra2, const char *extra3, const char *extra4)
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
    char *args[] = { (char *)argv0, (char *)mode, fdarg, lowarg, higharg, (char *)extra1,
                     (char *)extra2, (char *)extra3, (char *)extra4, NULL };
    pid_t pid = spawn(args);
    close(cfd);
    return pid;
}

int child_args(int argc, char **argv, int *fd, LUID *luid)
{
    if (argc < 5)
        return 0;
    luid->LowPart = (DWORD)strtoul(argv[3], NULL, 10);
    luid->HighPart = (LONG)strtol(argv[4], NULL, 10);
    *fd = atoi(argv[2]);
    return 1;
}

int wait_child(pid_t pid)
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

void check_child_exit(const char *mode, int status)
{
    if (status != -1 && WIFSIGNALED(status))
        fprintf(stderr, "%s: %s child killed by signal %d\n", who, mode, WTERMSIG(status));
    check(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "%s child did not exit with status 0 (wait status 0x%x)", mode, status);
}

/* ------------------------------------------------------------------------ */
/* Adapters, devices, allocations                                           */
/* ------------------------------------------------------------------------ */

D3DKMT_ADAPTERINFO *enum_adapters(ULONG *count)
{
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
        exit(1);
    }
    ea.NumAdapters = capacity;
    ea.pAdapters = adapters;
    EXPECT_OK(D3DKMTEnumAdapters2(&ea));
    *count = ea.NumAdapters <= capacity ? ea.NumAdapters : 0;
    check(*count > 0, "EnumAdapters2 returned no adapters (there is always a software one)");
    return adapters;
}

void close_adapters(D3DKMT_ADAPTERINFO *adapters, ULONG count)
{
    for (ULONG i = 0; i < count; i++)
        EXPECT_OK(close_adapter(adapters[i].hAdapter));
    free(adapters);
}

NTSTATUS query_linux_info(D3DKMT_HANDLE hAdapter, D3DKMT_LINUX_ADAPTER_INFO *li)
{
    D3DKMT_QUERYADAPTERINFO qa;
    memset(li, 0, sizeof *li);
    memset(&qa, 0, sizeof qa);
    qa.hAdapter = hAdapter;
    qa.Type = KMTQAITYPE_LINUX_DRM_INFO;
    qa.pPrivateDriverData = li;
    qa.PrivateDriverDataSize = sizeof *li;
    NTSTATUS st = D3DKMTQueryAdapterInfo(&qa);
    if (st == STATUS_SUCCESS) {
        li->DriverName[sizeof li->DriverName - 1] = '\0';
        li->RenderNode[sizeof li->RenderNode - 1] = '\0';
        li->PrimaryNode[sizeof li->PrimaryNode - 1] = '\0';
        li->BusInfo[sizeof li->BusInfo - 1] = '\0';
    }
    return st;
}

NTSTATUS open_adapter(LUID luid, D3DKMT_HANDLE *ph)
{
    D3DKMT_OPENADAPTERFROMLUID oa;
    memset(&oa, 0, sizeof oa);
    oa.AdapterLuid = luid;
    NTSTATUS st = D3DKMTOpenAdapterFromLuid(&oa);
    *ph = st == STATUS_SUCCESS ? oa.hAdapter : 0;
    return st;
}

NTSTATUS close_adapter(D3DKMT_HANDLE hAdapter)
{
    D3DKMT_CLOSEADAPTER ca = { hAdapter };
    return D3DKMTCloseAdapter(&ca);
}

NTSTATUS create_device(D3DKMT_HANDLE hAdapter, D3DKMT_HANDLE *ph)
{
    D3DKMT_CREATEDEVICE cd;
    memset(&cd, 0, sizeof cd);
    cd.hAdapter = hAdapter;
    cd.hDevice = KMT_PRESET;
    NTSTATUS st = D3DKMTCreateDevice(&cd);
    *ph = st == STATUS_SUCCESS ? cd.hDevice : 0;
    return st;
}

NTSTATUS destroy_device(D3DKMT_HANDLE hDevice)
{
    D3DKMT_DESTROYDEVICE dd = { hDevice };
    return D3DKMTDestroyDevice(&dd);
}

int open_device_by_luid(LUID luid, D3DKMT_HANDLE *phAdapter, D3DKMT_HANDLE *phDevice)
{
    *phDevice = 0;
    EXPECT_OK(open_adapter(luid, phAdapter));
    if (*phAdapter == 0)
        return 0;
    EXPECT_OK(create_device(*phAdapter, phDevice));
    return *phDevice != 0;
}

int start_child(const char *name, LUID luid, D3DKMT_HANDLE *phAdapter, D3DKMT_HANDLE *phDevice)
{
    who = name;
    alarm(120);
    return open_device_by_luid(luid, phAdapter, phDevice);
}

NTSTATUS destroy_alloc(int v1, D3DKMT_HANDLE hDevice, D3DKMT_HANDLE hResource, const D3DKMT_HANDLE *list,
                       UINT count)
{
    if (v1) {
        D3DKMT_DESTROYALLOCATION d;
        memset(&d, 0, sizeof d);
        d.hDevice = hDevice;
        d.hResource = hResource;
        d.phAllocationList = list;
        d.AllocationCount = count;
        return D3DKMTDestroyAllocation(&d);
    }
    D3DKMT_DESTROYALLOCATION2 d;
    memset(&d, 0, sizeof d);
    d.hDevice = hDevice;
    d.hResource = hResource;
    d.phAllocationList = list;
    d.AllocationCount = count;
    return D3DKMTDestroyAllocation2(&d);
}

NTSTATUS destroy_resource(D3DKMT_HANDLE hDevice, D3DKMT_HANDLE hResource)
{
    return destroy_alloc(0, hDevice, hResource, NULL, 0);
}

NTSTATUS lock(D3DKMT_HANDLE hDevice, D3DKMT_HANDLE hAllocation, uint8_t **pp)
{
    D3DKMT_LOCK2 lk;
    memset(&lk, 0, sizeof lk);
    lk.hDevice = hDevice;
    lk.hAllocation = hAllocation;
    NTSTATUS st = D3DKMTLock2(&lk);
    *pp = st == STATUS_SUCCESS ? (uint8_t *)lk.pData : NULL;
    return st;
}

NTSTATUS unlock(D3DKMT_HANDLE hDevice, D3DKMT_HANDLE hAllocation)
{
    D3DKMT_UNLOCK2 ul = { hDevice, hAllocation };
    return D3DKMTUnlock2(&ul);
}

void close_handle(HANDLE h, const char *what)
{
    if (h)
        check(close(D3DKMTLinuxHandleToFd(h)) == 0, "close(%s): %s", what, strerror(errno));
}

void fill_runtime_data(uint8_t *p)
{
    for (unsigned i = 0; i < RUNTIME_DATA_SIZE; i++)
        p[i] = (uint8_t)(0x10u + i);
}

void fill_resource_data(uint8_t *p)
{
    for (unsigned i = 0; i < RESOURCE_DATA_SIZE; i++)
        p[i] = (uint8_t)(0xA0u + i);
}

void fill_alloc_private(alloc_private_t *p, unsigned index)
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

void fill_km_data(uint8_t *p)
{
    for (unsigned i = 0; i < KM_DATA_SIZE; i++)
        p[i] = (uint8_t)(0xE0u + i);
}

NTSTATUS create_resource(D3DKMT_HANDLE hDevice, unsigned count, int shared, D3DKMT_HANDLE *phResource,
                         D3DKMT_HANDLE *phAllocations)
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

NTSTATUS query_for_open(D3DKMT_HANDLE hDevice, HANDLE h, open_buffers_t *b)
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

void prepare_open(D3DKMT_HANDLE hDevice, HANDLE h, open_buffers_t *b, UINT numAllocations, UINT totalSize)
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

void free_open_buffers(open_buffers_t *b)
{
    free(b->total);
    b->total = NULL;
}

/* ------------------------------------------------------------------------ */
/* Keyed mutexes                                                            */
/* ------------------------------------------------------------------------ */

NTSTATUS km_create_ex(int v1, UINT64 initial, int nt, const void *data, UINT size, D3DKMT_HANDLE *ph,
                      D3DKMT_HANDLE *pShared)
{
    NTSTATUS st;
    D3DKMT_HANDLE h, shared;
    if (v1) {
        D3DKMT_CREATEKEYEDMUTEX c;
        memset(&c, 0, sizeof c);
        c.InitialValue = initial;
        c.hKeyedMutex = c.hSharedHandle = KMT_PRESET;
        st = D3DKMTCreateKeyedMutex(&c);
        h = c.hKeyedMutex;
        shared = c.hSharedHandle;
    } else {
        D3DKMT_CREATEKEYEDMUTEX2 c;
        memset(&c, 0, sizeof c);
        c.InitialValue = initial;
        c.hKeyedMutex = c.hSharedHandle = KMT_PRESET;
        c.pPrivateRuntimeData = (void *)data;
        c.PrivateRuntimeDataSize = size;
        c.Flags.NtSecuritySharing = nt ? 1 : 0;
        st = D3DKMTCreateKeyedMutex2(&c);
        h = c.hKeyedMutex;
        shared = c.hSharedHandle;
    }
    *ph = st == STATUS_SUCCESS ? h : 0;
    if (pShared)
        *pShared = shared;
    return st;
}

NTSTATUS km_create(UINT64 key, const void *data, UINT size, D3DKMT_HANDLE *ph)
{
    return km_create_ex(0, key, 1, data, size, ph, NULL);
}

NTSTATUS km_open(HANDLE h, void *data, UINT size, D3DKMT_HANDLE *ph)
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

NTSTATUS km_destroy(D3DKMT_HANDLE h)
{
    D3DKMT_DESTROYKEYEDMUTEX d = { h };
    return D3DKMTDestroyKeyedMutex(&d);
}

NTSTATUS km_acquire_ex(int v1, D3DKMT_HANDLE h, UINT64 key, LONGLONG timeout, UINT64 fence_preset,
                       UINT64 *pFence, void *data, UINT size)
{
    LARGE_INTEGER t;
    t.QuadPart = timeout;
    NTSTATUS st;
    UINT64 fence;
    if (v1) {
        D3DKMT_ACQUIREKEYEDMUTEX a;
        memset(&a, 0, sizeof a);
        a.hKeyedMutex = h;
        a.Key = key;
        a.pTimeout = timeout == NO_TIMEOUT ? NULL : &t;
        a.FenceValue = fence_preset;
        st = D3DKMTAcquireKeyedMutex(&a);
        fence = a.FenceValue;
    } else {
        D3DKMT_ACQUIREKEYEDMUTEX2 a;
        memset(&a, 0, sizeof a);
        a.hKeyedMutex = h;
        a.Key = key;
        a.pTimeout = timeout == NO_TIMEOUT ? NULL : &t;
        a.FenceValue = fence_preset;
        a.pPrivateRuntimeData = data;
        a.PrivateRuntimeDataSize = size;
        st = D3DKMTAcquireKeyedMutex2(&a);
        fence = a.FenceValue;
    }
    if (pFence)
        *pFence = fence;
    return st;
}

NTSTATUS km_acquire(D3DKMT_HANDLE h, UINT64 key, LONGLONG timeout, UINT64 *pFence, void *data, UINT size)
{
    return km_acquire_ex(0, h, key, timeout, UINT64_MAX, pFence, data, size);
}

NTSTATUS km_release_ex(int v1, D3DKMT_HANDLE h, UINT64 key, UINT64 fence, const void *data, UINT size)
{
    if (v1) {
        D3DKMT_RELEASEKEYEDMUTEX r;
        memset(&r, 0, sizeof r);
        r.hKeyedMutex = h;
        r.Key = key;
        r.FenceValue = fence;
        return D3DKMTReleaseKeyedMutex(&r);
    }
    D3DKMT_RELEASEKEYEDMUTEX2 r;
    memset(&r, 0, sizeof r);
    r.hKeyedMutex = h;
    r.Key = key;
    r.FenceValue = fence;
    r.pPrivateRuntimeData = (void *)data;
    r.PrivateRuntimeDataSize = size;
    return D3DKMTReleaseKeyedMutex2(&r);
}

NTSTATUS km_release(D3DKMT_HANDLE h, UINT64 key, UINT64 fence, const void *data, UINT size)
{
    return km_release_ex(0, h, key, fence, data, size);
}

/* ------------------------------------------------------------------------ */
/* Sync objects                                                             */
/* ------------------------------------------------------------------------ */

NTSTATUS sync_create_ex(D3DKMT_HANDLE hDevice, D3DDDI_SYNCHRONIZATIONOBJECT_TYPE type, UINT flags, UINT64 initial,
                        D3DKMT_HANDLE *ph, const UINT64 **pva, D3DKMT_HANDLE *pShared)
{
    D3DKMT_CREATESYNCHRONIZATIONOBJECT2 c;
    memset(&c, 0, sizeof c);
    c.hDevice = hDevice;
    c.Info.Type = type;
    c.Info.Flags.Value = flags;
    c.Info.SharedHandle = KMT_PRESET;
    c.hSyncObject = KMT_PRESET;
    if (type == D3DDDI_MONITORED_FENCE)
        c.Info.MonitoredFence.InitialFenceValue = initial;
    else
        c.Info.Fence.FenceValue = initial;
    NTSTATUS st = D3DKMTCreateSynchronizationObject2(&c);
    *ph = st == STATUS_SUCCESS ? c.hSyncObject : 0;
    if (pva)
        *pva = st == STATUS_SUCCESS && type == D3DDDI_MONITORED_FENCE
            ? (const UINT64 *)c.Info.MonitoredFence.FenceValueCPUVirtualAddress : NULL;
    if (pShared)
        *pShared = c.Info.SharedHandle;
    return st;
}

NTSTATUS sync_create(D3DKMT_HANDLE hDevice, D3DDDI_SYNCHRONIZATIONOBJECT_TYPE type, UINT64 initial,
                     D3DKMT_HANDLE *ph, const UINT64 **pva)
{
    return sync_create_ex(hDevice, type, SYNC_SHARED_NT, initial, ph, pva, NULL);
}

NTSTATUS sync_destroy(D3DKMT_HANDLE h)
{
    D3DKMT_DESTROYSYNCHRONIZATIONOBJECT d = { h };
    return D3DKMTDestroySynchronizationObject(&d);
}

NTSTATUS sync_open1(HANDLE h, D3DKMT_HANDLE *ph)
{
    D3DKMT_OPENSYNCOBJECTFROMNTHANDLE o;
    memset(&o, 0, sizeof o);
    o.hNtHandle = h;
    o.hSyncObject = KMT_PRESET;
    NTSTATUS st = D3DKMTOpenSyncObjectFromNtHandle(&o);
    *ph = st == STATUS_SUCCESS ? o.hSyncObject : 0;
    return st;
}

NTSTATUS sync_open2_ex(D3DKMT_HANDLE hDevice, HANDLE h, UINT flags, D3DKMT_HANDLE *ph, const UINT64 **pva,
                       UINT *pFlags)
{
    D3DKMT_OPENSYNCOBJECTFROMNTHANDLE2 o;
    memset(&o, 0, sizeof o);
    o.hNtHandle = h;
    o.hDevice = hDevice;
    o.Flags.Value = flags;
    o.hSyncObject = KMT_PRESET;
    NTSTATUS st = D3DKMTOpenSyncObjectFromNtHandle2(&o);
    *ph = st == STATUS_SUCCESS ? o.hSyncObject : 0;
    if (pva)
        *pva = st == STATUS_SUCCESS ? (const UINT64 *)o.MonitoredFence.FenceValueCPUVirtualAddress : NULL;
    if (pFlags)
        *pFlags = o.Flags.Value;
    return st;
}

NTSTATUS sync_open2(D3DKMT_HANDLE hDevice, HANDLE h, D3DKMT_HANDLE *ph, const UINT64 **pva)
{
    return sync_open2_ex(hDevice, h, 0, ph, pva, NULL);
}

NTSTATUS sync_signal_flags(D3DKMT_HANDLE hDevice, UINT count, const D3DKMT_HANDLE *hs, const UINT64 *values,
                           UINT flags)
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

NTSTATUS sync_signal(D3DKMT_HANDLE hDevice, D3DKMT_HANDLE h, UINT64 value)
{
    return sync_signal_flags(hDevice, 1, &h, &value, 0);
}

NTSTATUS sync_wait_flags(D3DKMT_HANDLE hDevice, UINT count, const D3DKMT_HANDLE *hs, const UINT64 *values,
                         UINT flags, int efd)
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

NTSTATUS sync_wait(D3DKMT_HANDLE hDevice, D3DKMT_HANDLE h, UINT64 value, int efd)
{
    return sync_wait_flags(hDevice, 1, &h, &value, 0, efd);
}

NTSTATUS sync_wait_bounded(D3DKMT_HANDLE hDevice, D3DKMT_HANDLE h, UINT64 value, int timeout_ms)
{
    int efd = eventfd(0, EFD_CLOEXEC);
    if (efd < 0)
        return STATUS_NO_MEMORY;
    NTSTATUS st = sync_wait(hDevice, h, value, efd);
    if (st == STATUS_SUCCESS && readable(efd, timeout_ms) != 1)
        st = STATUS_TIMEOUT;
    close(efd);
    return st;
}

int check_reached(D3DKMT_HANDLE hDevice, D3DKMT_HANDLE h, UINT64 value, const char *what)
{
    /* The blocking wait is only made after the eventfd fired, so that a
     * library that does not see the value as reached fails this check
     * instead of hanging the test. */
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

UINT64 fence_at(const UINT64 *va)
{
    return va ? __atomic_load_n(va, __ATOMIC_ACQUIRE) : UINT64_MAX;
}

int make_guarded(D3DKMT_HANDLE hDevice, UINT64 key, guarded_t *g)
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

void destroy_guarded(D3DKMT_HANDLE hDevice, guarded_t *g)
{
    close_handle(g->h, "shared handle");
    if (g->hSync)
        EXPECT_OK(sync_destroy(g->hSync));
    if (g->hKeyedMutex)
        EXPECT_OK(km_destroy(g->hKeyedMutex));
    if (g->hResource)
        EXPECT_OK(destroy_resource(hDevice, g->hResource));
    memset(g, 0, sizeof *g);
}

/* ------------------------------------------------------------------------ */
/* Names                                                                    */
/* ------------------------------------------------------------------------ */

OBJECT_ATTRIBUTES *make_attributes(nt_name_t *n, const char *name, ULONG attributes, void *sd)
{
    memset(n, 0, sizeof *n);
    PUNICODE_STRING us = NULL;
    if (name) {
        size_t len = strlen(name);
        if (len >= sizeof n->buffer / sizeof n->buffer[0])
            len = sizeof n->buffer / sizeof n->buffer[0] - 1;
        for (size_t i = 0; i < len; i++)
            n->buffer[i] = (WCHAR)(unsigned char)name[i];
        n->string.Buffer = n->buffer;
        n->string.Length = (USHORT)(len * 2);
        n->string.MaximumLength = (USHORT)(len * 2 + 2);
        us = &n->string;
    }
    InitializeObjectAttributes(&n->attributes, us, attributes, NULL, sd);
    return &n->attributes;
}

const char *lower(char *buf, size_t size, const char *s)
{
    size_t i = 0;
    for (; s[i] && i + 1 < size; i++)
        buf[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] - 'A' + 'a' : s[i]);
    buf[i] = '\0';
    return buf;
}

NTSTATUS open_name(DWORD access, OBJECT_ATTRIBUTES *oa, HANDLE *ph)
{
    D3DKMT_OPENNTHANDLEFROMNAME o;
    memset(&o, 0, sizeof o);
    o.dwDesiredAccess = access;
    o.pObjAttrib = oa;
    o.hNtHandle = (HANDLE)(uintptr_t)KMT_PRESET;
    NTSTATUS st = D3DKMTOpenNtHandleFromName(&o);
    *ph = st == STATUS_SUCCESS ? o.hNtHandle : NULL;
    return st;
}

NTSTATUS open_sync_name(DWORD access, OBJECT_ATTRIBUTES *oa, HANDLE *ph)
{
    D3DKMT_OPENSYNCOBJECTNTHANDLEFROMNAME o;
    memset(&o, 0, sizeof o);
    o.dwDesiredAccess = access;
    o.pObjAttrib = oa;
    o.hNtHandle = (HANDLE)(uintptr_t)KMT_PRESET;
    NTSTATUS st = D3DKMTOpenSyncObjectNtHandleFromName(&o);
    *ph = st == STATUS_SUCCESS ? o.hNtHandle : NULL;
    return st;
}

/* ------------------------------------------------------------------------ */
/* The per-adapter loop                                                     */
/* ------------------------------------------------------------------------ */

static void print_adapter_line(const kmt_adapter_t *a, int checks, int failures)
{
    const D3DKMT_LINUX_ADAPTER_INFO *li = &a->li;
    printf("adapter %u: luid %08" PRIX32 ":%08" PRIX32 " %s %s %s: %s (%d checks", a->index,
           (uint32_t)a->ai->AdapterLuid.HighPart, (uint32_t)a->ai->AdapterLuid.LowPart,
           a->info_ok ? li->DriverName : "?", a->info_ok && li->RenderNode[0] ? li->RenderNode : "-",
           a->info_ok && li->BusInfo[0] ? li->BusInfo : "-", failures ? "FAILED" : "ok", checks);
    if (failures)
        printf(", %d failed", failures);
    printf(")\n");
}

int run_per_adapter(const char *argv0, const char *phase_name, void (*test)(kmt_adapter_t *a),
                    void (*after)(const D3DKMT_ADAPTERINFO *adapters, ULONG count))
{
    ULONG count = 0;
    D3DKMT_ADAPTERINFO *adapters = enum_adapters(&count);
    for (ULONG i = 0; i < count; i++) {
        int passed_before = passed, failed_before = failed;
        kmt_adapter_t a;
        memset(&a, 0, sizeof a);
        a.argv0 = argv0;
        a.index = (unsigned)i;
        a.ai = &adapters[i];
        a.adapters = adapters;
        a.count = count;
        phase(phase_name);
        NTSTATUS st = query_linux_info(a.ai->hAdapter, &a.li);
        EXPECT_OK(st);
        a.info_ok = st == STATUS_SUCCESS;
        if (a.info_ok)
            check(a.li.Version == D3DKMT_LINUX_ADAPTER_INFO_VERSION, "adapter info Version %u", a.li.Version);
        EXPECT_OK(create_device(a.ai->hAdapter, &a.hDevice));
        if (a.hDevice) {
            test(&a);
            phase(phase_name);
            EXPECT_OK(destroy_device(a.hDevice));
        }
        print_adapter_line(&a, passed - passed_before + failed - failed_before, failed - failed_before);
    }
    if (after)
        after(adapters, count);
    close_adapters(adapters, count);
    return test_finish();
}

int sync_objects_supported(const kmt_adapter_t *a, const char *what, int *software)
{
    int timelines = a->info_ok && (a->li.Flags & D3DKMT_LINUX_ADAPTER_SYNCOBJ_TIMELINE);
    *software = a->info_ok && (a->li.Flags & D3DKMT_LINUX_ADAPTER_SOFTWARE);
    D3DKMT_HANDLE probe = 0;
    NTSTATUS st = sync_create(a->hDevice, D3DDDI_MONITORED_FENCE, 0, &probe, NULL);
    if (!*software && !timelines) {
        EXPECT_STATUS(STATUS_NOT_SUPPORTED, st);
        D3DKMT_HANDLE fence = 0;
        EXPECT_STATUS(STATUS_NOT_SUPPORTED, sync_create(a->hDevice, D3DDDI_FENCE, 0, &fence, NULL));
        printf("  adapter %u (%s): no timeline syncobjs: sync object creation is STATUS_NOT_SUPPORTED as "
               "documented; %s skipped\n", a->index, a->info_ok ? a->li.DriverName : "?", what);
        if (probe)
            sync_destroy(probe);
        if (fence)
            sync_destroy(fence);
        return 0;
    }
    EXPECT_OK(st);
    if (probe)
        EXPECT_OK(sync_destroy(probe));
    return 1;
}
