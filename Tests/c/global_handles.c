/*
 * global_handles.c - global (KMT) share handles through the C ABI, across
 * real processes, on every adapter: the legacy sharing of D3D9Ex shared
 * surfaces, D3D10/11 MISC_SHARED textures, DXGI GetSharedHandle and Wine's
 * *_KMT Vulkan handle types.
 *
 *   - D3D9Ex flow: a resource made with CreateResource + CreateShared (no
 *     NtSecuritySharing) has a global hGlobalShare; its 32-bit value goes
 *     through a pipe to another process, which queries it (the 0x58-byte
 *     runtime data size comes back, the buffer untouched), opens it with
 *     D3DKMTOpenResource2 and D3DKMTOpenResource, reads back the runtime data
 *     and the creator's pixels, and writes its own;
 *   - lifetime, as on Windows: A creates, B opens by value, A exits (no
 *     destroy), C (this process) still opens the value from B; B exits and
 *     the value no longer opens (STATUS_INVALID_PARAMETER);
 *   - forged, stale and mistyped values (random global-shaped values, a local
 *     handle, a destroyed object's value, another kind's value) are refused
 *     with no descriptor left behind; a new object never gets a stale value;
 *   - keyed mutexes made with D3DKMTCreateKeyedMutex (v1) hand off between
 *     processes that opened them by value, and a holder's death abandons;
 *   - a fence made with Shared alone is signalled in another process that
 *     opened it with D3DKMTOpenSynchronizationObject, and waited on here;
 *   - another user's process cannot open any of the values (as root only).
 */
#define _GNU_SOURCE
#include "support/kmt_test.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <inttypes.h>
#include <unistd.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>

#define D3D9_DESC_SIZE 0x58u
#define PIXEL_CREATOR  0xA5u
#define PIXEL_OPENER   0x5Au

/* A D3D9Ex-style runtime descriptor: 0x58 bytes, its first word its size. */
static void fill_d3d9_desc(uint8_t *p)
{
    for (unsigned i = 0; i < D3D9_DESC_SIZE; i++)
        p[i] = (uint8_t)(0x30 + i);
    uint32_t size = D3D9_DESC_SIZE, version = 1;
    memcpy(p, &size, 4);
    memcpy(p + 4, &version, 4);
}

static int is_global(D3DKMT_HANDLE h)
{
    return (h & 0xc0000000u) == 0xc0000000u && (h & 0x3fu) == 2;
}

/* CreateAllocation2 with CreateResource + CreateShared: one allocation with a
 * tail of driver data and the D3D9 descriptor as runtime data. */
static NTSTATUS create_global_resource(D3DKMT_HANDLE hDevice, D3DKMT_HANDLE *phResource, D3DKMT_HANDLE *phAlloc,
                                       D3DKMT_HANDLE *phGlobal)
{
    alloc_private_t priv;
    fill_alloc_private(&priv, 0);
    uint8_t desc[D3D9_DESC_SIZE];
    fill_d3d9_desc(desc);
    D3DDDI_ALLOCATIONINFO2 info;
    memset(&info, 0, sizeof info);
    info.hAllocation = KMT_PRESET;
    info.pPrivateDriverData = &priv;
    info.PrivateDriverDataSize = sizeof priv;
    D3DKMT_CREATEALLOCATION c;
    memset(&c, 0, sizeof c);
    c.hDevice = hDevice;
    c.hGlobalShare = KMT_PRESET;
    c.pPrivateRuntimeData = desc;
    c.PrivateRuntimeDataSize = sizeof desc;
    c.NumAllocations = 1;
    c.pAllocationInfo2 = &info;
    c.Flags.CreateResource = 1;
    c.Flags.CreateShared = 1;
    NTSTATUS st = D3DKMTCreateAllocation2(&c);
    *phResource = c.hResource;
    *phAlloc = info.hAllocation;
    *phGlobal = c.hGlobalShare;
    return st;
}

static NTSTATUS query_global(D3DKMT_HANDLE hDevice, D3DKMT_HANDLE value, D3DKMT_QUERYRESOURCEINFO *q, uint8_t *buf,
                             UINT size)
{
    memset(q, 0, sizeof *q);
    q->hDevice = hDevice;
    q->hGlobalShare = value;
    q->pPrivateRuntimeData = buf;
    q->PrivateRuntimeDataSize = size;
    return D3DKMTQueryResourceInfo(q);
}

/* Opens `value` with D3DKMTOpenResource2 (v1 = 0) or D3DKMTOpenResource, with
 * a runtime buffer of `runtimeSize` and a total driver buffer; returns the
 * status, *phResource and *phAlloc. runtime receives the data. */
static NTSTATUS open_global(int v1, D3DKMT_HANDLE hDevice, D3DKMT_HANDLE value, uint8_t *runtime, UINT runtimeSize,
                            D3DKMT_HANDLE *phResource, D3DKMT_HANDLE *phAlloc, UINT *pDriverSize)
{
    uint8_t total[256], own[256];
    memset(total, 0xcd, sizeof total);
    memset(own, 0xcd, sizeof own);
    D3DDDI_OPENALLOCATIONINFO a1;
    D3DDDI_OPENALLOCATIONINFO2 a2;
    memset(&a1, 0, sizeof a1);
    memset(&a2, 0, sizeof a2);
    a1.pPrivateDriverData = own;
    a1.PrivateDriverDataSize = sizeof own;
    D3DKMT_OPENRESOURCE o;
    memset(&o, 0, sizeof o);
    o.hDevice = hDevice;
    o.hGlobalShare = value;
    o.NumAllocations = 1;
    if (v1)
        o.pOpenAllocationInfo = &a1;
    else
        o.pOpenAllocationInfo2 = &a2;
    o.pPrivateRuntimeData = runtime;
    o.PrivateRuntimeDataSize = runtimeSize;
    o.pTotalPrivateDriverDataBuffer = total;
    o.TotalPrivateDriverDataBufferSize = sizeof total;
    o.hResource = KMT_PRESET;
    NTSTATUS st = v1 ? D3DKMTOpenResource(&o) : D3DKMTOpenResource2(&o);
    *phResource = o.hResource;
    *phAlloc = v1 ? a1.hAllocation : a2.hAllocation;
    if (pDriverSize)
        *pDriverSize = v1 ? a1.PrivateDriverDataSize : a2.PrivateDriverDataSize;
    if (st == STATUS_SUCCESS) {
        alloc_private_t want;
        fill_alloc_private(&want, 0);
        const void *got = v1 ? (const void *)own : a2.pPrivateDriverData;
        UINT gotSize = v1 ? a1.PrivateDriverDataSize : a2.PrivateDriverDataSize;
        CHECK(gotSize == ALLOC_TAIL_SIZE && got && memcmp(got, want.tail, ALLOC_TAIL_SIZE) == 0,
              "OpenResource%s: the allocation's driver data came back (%u bytes)", v1 ? "" : "2", gotSize);
        CHECK(o.TotalPrivateDriverDataBufferSize == ALLOC_TAIL_SIZE, "TotalPrivateDriverDataBufferSize %u",
              o.TotalPrivateDriverDataBufferSize);
    }
    return st;
}

/* ------------------------------------------------------------------------ */
/* Children: <argv0> <mode> <in fd> <out fd> <LUID low> <LUID high> <value>  */
/* ------------------------------------------------------------------------ */

static pid_t spawn_global(const char *argv0, const char *mode, LUID luid, D3DKMT_HANDLE value, int *to_child,
                          int *from_child)
{
    int down[2], up[2];
    if (pipe(down) != 0 || pipe(up) != 0) {
        perror("pipe");
        return -1;
    }
    char in[16], out[16], low[16], high[16], val[16];
    snprintf(in, sizeof in, "%d", down[0]);
    snprintf(out, sizeof out, "%d", up[1]);
    snprintf(low, sizeof low, "%" PRIu32, (uint32_t)luid.LowPart);
    snprintf(high, sizeof high, "%" PRId32, (int32_t)luid.HighPart);
    snprintf(val, sizeof val, "%" PRIu32, (uint32_t)value);
    char *args[] = { (char *)argv0, (char *)mode, in, out, low, high, val, NULL };
    pid_t pid = spawn(args);
    close(down[0]);
    close(up[1]);
    fcntl(down[1], F_SETFD, FD_CLOEXEC);
    fcntl(up[0], F_SETFD, FD_CLOEXEC);
    *to_child = down[1];
    *from_child = up[0];
    return pid;
}

/* Reads a 32-bit value the child wrote; 0 on EOF or timeout. */
static D3DKMT_HANDLE read_value(int fd)
{
    uint32_t value = 0;
    size_t got = 0;
    while (got < sizeof value) {
        if (!readable(fd, 20000))
            return 0;
        ssize_t n = read(fd, (char *)&value + got, sizeof value - got);
        if (n <= 0)
            return 0;
        got += (size_t)n;
    }
    return value;
}

static void write_value(int fd, D3DKMT_HANDLE value)
{
    uint32_t v = value;
    if (write(fd, &v, sizeof v) != (ssize_t)sizeof v)
        perror("write");
}

/* D3D9Ex opener: reads the value from the pipe (not the argument), queries,
 * opens with v2 then v1, checks runtime data and the creator's pixels, writes
 * its own, reports 'o', waits for a byte, destroys, exits. */
static int child_d3d9_open(int in, int out, LUID luid)
{
    D3DKMT_HANDLE hAdapter, hDevice;
    if (!start_child("d3d9-open", luid, &hAdapter, &hDevice))
        return 1;
    D3DKMT_HANDLE value = read_value(in);
    CHECK(is_global(value), "the value from the pipe 0x%08" PRIX32 " is a global handle", (uint32_t)value);
    uint8_t buf[0x100];
    memset(buf, 0xcd, sizeof buf);
    D3DKMT_QUERYRESOURCEINFO q;
    EXPECT_OK(query_global(hDevice, value, &q, buf, sizeof buf));
    CHECK(q.PrivateRuntimeDataSize == D3D9_DESC_SIZE, "QueryResourceInfo: PrivateRuntimeDataSize 0x%x, expected 0x58",
          q.PrivateRuntimeDataSize);
    CHECK(buf[0] == 0xcd, "QueryResourceInfo wrote the runtime buffer");
    CHECK(q.NumAllocations == 1 && q.ResourcePrivateDriverDataSize == 0 && q.TotalPrivateDriverDataSize ==
          ALLOC_TAIL_SIZE, "QueryResourceInfo sizes: %u allocations, resource %u, total %u", q.NumAllocations,
          q.ResourcePrivateDriverDataSize, q.TotalPrivateDriverDataSize);
    D3DKMT_HANDLE hRes = 0, hAlloc = 0;
    uint8_t runtime[D3D9_DESC_SIZE], want[D3D9_DESC_SIZE];
    fill_d3d9_desc(want);
    memset(runtime, 0, sizeof runtime);
    EXPECT_OK(open_global(0, hDevice, value, runtime, q.PrivateRuntimeDataSize, &hRes, &hAlloc, NULL));
    CHECK(memcmp(runtime, want, sizeof want) == 0, "OpenResource2: the 0x58-byte runtime data came back");
    CHECK((hRes & 0x3f) == 0 && (hRes & 0xc0000000u), "OpenResource2: hResource 0x%08" PRIX32 " is local",
          (uint32_t)hRes);
    /* A second open of the same value through the v1 call, with size 0 (no copy). */
    D3DKMT_HANDLE hRes1 = 0, hAlloc1 = 0;
    EXPECT_OK(open_global(1, hDevice, value, NULL, 0, &hRes1, &hAlloc1, NULL));
    CHECK(hRes1 != hRes, "two opens are two local resources");
    uint8_t *p = NULL;
    if (hAlloc && lock(hDevice, hAlloc, &p) == STATUS_SUCCESS && p) {
        CHECK(p[0] == PIXEL_CREATOR && p[ALLOCATION_SIZE - 1] == PIXEL_CREATOR,
              "the opener sees the creator's pixels (0x%02x)", p[0]);
        p[1] = PIXEL_OPENER;
        EXPECT_OK(unlock(hDevice, hAlloc));
    } else {
        CHECK(0, "Lock2 of the opened allocation");
    }
    write_byte(out, 'o');
    (void)read_byte(in, 60000);
    if (hRes1)
        EXPECT_OK(destroy_resource(hDevice, hRes1));
    if (hRes)
        EXPECT_OK(destroy_resource(hDevice, hRes));
    destroy_device(hDevice);
    close_adapter(hAdapter);
    return test_finish();
}

/* Lifetime A: creates the resource, writes its pixels and the value, then
 * waits for a byte and exits without destroying anything. */
static int child_create(int in, int out, LUID luid)
{
    D3DKMT_HANDLE hAdapter, hDevice;
    if (!start_child("lifetime-create", luid, &hAdapter, &hDevice))
        return 1;
    D3DKMT_HANDLE hRes = 0, hAlloc = 0, value = 0;
    EXPECT_OK(create_global_resource(hDevice, &hRes, &hAlloc, &value));
    uint8_t *p = NULL;
    if (lock(hDevice, hAlloc, &p) == STATUS_SUCCESS && p) {
        memset(p, PIXEL_CREATOR, ALLOCATION_SIZE);
        unlock(hDevice, hAlloc);
    }
    write_value(out, value);
    (void)read_byte(in, 60000);
    _exit(test_finish());  /* no destroy: the process's death ends its reference */
}

/* Lifetime B: opens the value, checks the pixels, reports 'o', waits, exits. */
static int child_hold(int in, int out, LUID luid, D3DKMT_HANDLE value)
{
    D3DKMT_HANDLE hAdapter, hDevice;
    if (!start_child("lifetime-hold", luid, &hAdapter, &hDevice))
        return 1;
    D3DKMT_HANDLE hRes = 0, hAlloc = 0;
    EXPECT_OK(open_global(0, hDevice, value, NULL, 0, &hRes, &hAlloc, NULL));
    uint8_t *p = NULL;
    if (hAlloc && lock(hDevice, hAlloc, &p) == STATUS_SUCCESS && p) {
        CHECK(p[0] == PIXEL_CREATOR, "the holder sees the creator's pixels");
        unlock(hDevice, hAlloc);
    }
    write_byte(out, hRes ? 'o' : 'x');
    (void)read_byte(in, 60000);
    _exit(test_finish());
}

/* Keyed mutex by value: opens it with D3DKMTOpenKeyedMutex, acquires key 0,
 * releases key 1 with fence 5; then (after a byte) acquires key 2 and dies
 * owning it. */
static int child_km(int in, int out, LUID luid, D3DKMT_HANDLE value)
{
    D3DKMT_HANDLE hAdapter, hDevice;  /* a keyed mutex needs none; the child's name and alarm */
    if (!start_child("km", luid, &hAdapter, &hDevice))
        return 1;
    D3DKMT_OPENKEYEDMUTEX o = { value, KMT_PRESET };
    EXPECT_OK(D3DKMTOpenKeyedMutex(&o));
    EXPECT_OK(km_acquire_ex(1, o.hKeyedMutex, 0, -5000 * 10000LL, 0, NULL, NULL, 0));
    EXPECT_OK(km_release_ex(1, o.hKeyedMutex, 1, 5, NULL, 0));
    write_byte(out, 'r');
    (void)read_byte(in, 60000);
    EXPECT_OK(km_acquire_ex(1, o.hKeyedMutex, 2, -5000 * 10000LL, 0, NULL, NULL, 0));
    write_byte(out, 'a');
    (void)read_byte(in, 60000);
    _exit(test_finish());  /* dies owning it */
}

/* Fence by value: opens it with D3DKMTOpenSynchronizationObject and signals 7. */
static int child_fence(int in, int out, LUID luid, D3DKMT_HANDLE value)
{
    D3DKMT_HANDLE hAdapter, hDevice;
    if (!start_child("fence", luid, &hAdapter, &hDevice))
        return 1;
    D3DKMT_OPENSYNCHRONIZATIONOBJECT o;
    memset(&o, 0, sizeof o);
    o.hSharedHandle = value;
    o.hSyncObject = KMT_PRESET;
    EXPECT_OK(D3DKMTOpenSynchronizationObject(&o));
    (void)read_byte(in, 60000);
    EXPECT_OK(sync_signal(hDevice, o.hSyncObject, 7));
    write_byte(out, 's');
    (void)read_byte(in, 60000);
    EXPECT_OK(sync_destroy(o.hSyncObject));
    destroy_device(hDevice);
    close_adapter(hAdapter);
    return test_finish();
}

/* Another user: the values of this test's user do not open. */
static int child_other_user(int in, int out, LUID luid)
{
    if (setgid(65534) != 0 || setuid(65534) != 0) {
        perror("setuid");
        return 1;
    }
    unsetenv("XDG_RUNTIME_DIR");
    D3DKMT_HANDLE resourceValue = read_value(in), mutexValue = read_value(in);
    D3DKMT_HANDLE hAdapter, hDevice;
    if (!start_child("other-user", luid, &hAdapter, &hDevice))
        return 1;
    D3DKMT_QUERYRESOURCEINFO q;
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, query_global(hDevice, resourceValue, &q, NULL, 0));
    D3DKMT_HANDLE hRes = 0, hAlloc = 0;
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, open_global(0, hDevice, resourceValue, NULL, 0, &hRes, &hAlloc, NULL));
    D3DKMT_OPENKEYEDMUTEX o = { mutexValue, 0 };
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTOpenKeyedMutex(&o));
    write_byte(out, 'd');
    destroy_device(hDevice);
    close_adapter(hAdapter);
    return test_finish();
}

/* ------------------------------------------------------------------------ */
/* The tests                                                                */
/* ------------------------------------------------------------------------ */

static void test_d3d9ex_flow(kmt_adapter_t *a)
{
    phase("D3D9Ex flow");
    D3DKMT_HANDLE hRes = 0, hAlloc = 0, value = 0;
    EXPECT_OK(create_global_resource(a->hDevice, &hRes, &hAlloc, &value));
    CHECK(is_global(value), "hGlobalShare 0x%08" PRIX32 " has the global shape (0xc0000000 set, low bits 2)",
          (uint32_t)value);
    if (!hRes)
        return;
    /* Windows: a resource made with CreateShared alone is not shared by NT handle. */
    HANDLE nt = NULL;
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTShareObjects(1, &hRes, NULL, GENERIC_ALL, &nt));
    uint8_t *p = NULL;
    if (lock(a->hDevice, hAlloc, &p) == STATUS_SUCCESS && p) {
        memset(p, PIXEL_CREATOR, ALLOCATION_SIZE);
        unlock(a->hDevice, hAlloc);
    }
    int to = -1, from = -1;
    pid_t pid = spawn_global(a->argv0, "d3d9-open", a->ai->AdapterLuid, 0, &to, &from);
    write_value(to, value);  /* the D3D9Ex way: the 32-bit value through a pipe */
    CHECK(read_byte(from, 60000) == 'o', "the other process opened the value");
    if (lock(a->hDevice, hAlloc, &p) == STATUS_SUCCESS && p) {
        CHECK(p[1] == PIXEL_OPENER, "the creator sees the opener's write (0x%02x)", p[1]);
        unlock(a->hDevice, hAlloc);
    }
    write_byte(to, 'q');
    check_child_exit("d3d9-open", wait_child(pid));
    close(to);
    close(from);
    EXPECT_OK(destroy_resource(a->hDevice, hRes));
    D3DKMT_QUERYRESOURCEINFO q;
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, query_global(a->hDevice, value, &q, NULL, 0));
}

static void test_lifetime(kmt_adapter_t *a)
{
    phase("lifetime");
    int fds, threads;
    quiet_counts(&fds, &threads);  /* a retired holding's socket closes on the name thread */
    int toA = -1, fromA = -1, toB = -1, fromB = -1;
    pid_t creator = spawn_global(a->argv0, "lifetime-create", a->ai->AdapterLuid, 0, &toA, &fromA);
    D3DKMT_HANDLE value = read_value(fromA);
    CHECK(is_global(value), "A's value 0x%08" PRIX32 " is global", (uint32_t)value);
    pid_t holder = spawn_global(a->argv0, "lifetime-hold", a->ai->AdapterLuid, value, &toB, &fromB);
    CHECK(read_byte(fromB, 60000) == 'o', "B opened A's value");
    write_byte(toA, 'q');
    check_child_exit("lifetime-create", wait_child(creator));
    /* A is gone; B still holds it: C (this process) opens it from B. */
    D3DKMT_HANDLE hRes = 0, hAlloc = 0;
    uint8_t runtime[D3D9_DESC_SIZE], want[D3D9_DESC_SIZE];
    fill_d3d9_desc(want);
    EXPECT_OK(open_global(0, a->hDevice, value, runtime, sizeof runtime, &hRes, &hAlloc, NULL));
    if (hRes) {
        CHECK(memcmp(runtime, want, sizeof want) == 0, "C read the runtime data after A exited");
        uint8_t *p = NULL;
        if (lock(a->hDevice, hAlloc, &p) == STATUS_SUCCESS && p) {
            CHECK(p[0] == PIXEL_CREATOR, "C sees A's pixels after A exited");
            unlock(a->hDevice, hAlloc);
        }
        EXPECT_OK(destroy_resource(a->hDevice, hRes));
    }
    write_byte(toB, 'q');
    check_child_exit("lifetime-hold", wait_child(holder));
    /* Nobody holds it any more. */
    D3DKMT_QUERYRESOURCEINFO q;
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, query_global(a->hDevice, value, &q, NULL, 0));
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, open_global(0, a->hDevice, value, NULL, 0, &hRes, &hAlloc, NULL));
    close(toA);
    close(fromA);
    close(toB);
    close(fromB);
    int after_fds, after_threads;
    settle(fds, threads, &after_fds, &after_threads);
    CHECK(after_fds == fds && after_threads == threads, "after the lifetime test: %d descriptors and %d threads, "
          "before %d and %d", after_fds, after_threads, fds, threads);
}

static void test_forged(kmt_adapter_t *a)
{
    phase("forged values");
    D3DKMT_HANDLE hRes = 0, hAlloc = 0, value = 0;
    EXPECT_OK(create_global_resource(a->hDevice, &hRes, &hAlloc, &value));
    D3DKMT_HANDLE km = 0, kmValue = 0;
    EXPECT_OK(km_create_ex(1, 0, 0, NULL, 0, &km, &kmValue));
    CHECK(is_global(kmValue), "CreateKeyedMutex: hSharedHandle 0x%08" PRIX32 " is global", (uint32_t)kmValue);
    int fds, threads;
    quiet_counts(&fds, &threads);
    D3DKMT_HANDLE forged[8] = { 0, KMT_PRESET, hRes, hAlloc, kmValue, 0xc0000002u, 0xfffffffeu, 0 };
    unsigned n = 7;
    srand((unsigned)now_ns());
    forged[n++] = 0xc0000002u | ((uint32_t)rand() & 0xffffffu) << 6;
    D3DKMT_QUERYRESOURCEINFO q;
    for (unsigned i = 0; i < n; i++) {
        if (forged[i] == value)
            continue;
        D3DKMT_HANDLE r = 0, al = 0;
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, query_global(a->hDevice, forged[i], &q, NULL, 0));
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, open_global(0, a->hDevice, forged[i], NULL, 0, &r, &al, NULL));
        D3DKMT_OPENSYNCHRONIZATIONOBJECT os;
        memset(&os, 0, sizeof os);
        os.hSharedHandle = forged[i];
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTOpenSynchronizationObject(&os));
        if (forged[i] != kmValue) {
            D3DKMT_OPENKEYEDMUTEX ok = { forged[i], 0 };
            EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTOpenKeyedMutex(&ok));
        }
    }
    /* The resource's value through the other kinds' calls. */
    D3DKMT_OPENKEYEDMUTEX ok = { value, 0 };
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTOpenKeyedMutex(&ok));
    int after = count_fds();
    CHECK(after == fds, "descriptors after forged opens: %d, before %d", after, fds);
    (void)threads;
    /* Stale: once destroyed, the values do not open, and new objects get new values. */
    EXPECT_OK(destroy_resource(a->hDevice, hRes));
    EXPECT_OK(km_destroy(km));
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, query_global(a->hDevice, value, &q, NULL, 0));
    D3DKMT_OPENKEYEDMUTEX stale = { kmValue, 0 };
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTOpenKeyedMutex(&stale));
    D3DKMT_HANDLE hRes2 = 0, hAlloc2 = 0, value2 = 0;
    EXPECT_OK(create_global_resource(a->hDevice, &hRes2, &hAlloc2, &value2));
    CHECK(value2 != value && value2 != kmValue, "a new resource got a stale value 0x%08" PRIX32, (uint32_t)value2);
    if (hRes2)
        EXPECT_OK(destroy_resource(a->hDevice, hRes2));
}

static void test_keyed_mutex(kmt_adapter_t *a)
{
    phase("keyed mutex by value");
    D3DKMT_HANDLE km = 0, value = 0;
    EXPECT_OK(km_create_ex(1, 0, 0, NULL, 0, &km, &value));
    if (!km)
        return;
    /* Windows: a keyed mutex alone, or with a global handle, is not shared by NT handle. */
    HANDLE nt = NULL;
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTShareObjects(1, &km, NULL, GENERIC_ALL, &nt));
    /* A second local reference in this process, through OpenKeyedMutex2. */
    uint8_t data[16];
    D3DKMT_OPENKEYEDMUTEX2 o2;
    memset(&o2, 0, sizeof o2);
    o2.hSharedHandle = value;
    o2.pPrivateRuntimeData = data;
    o2.PrivateRuntimeDataSize = sizeof data;
    EXPECT_OK(D3DKMTOpenKeyedMutex2(&o2));
    CHECK(o2.PrivateRuntimeDataSize == sizeof data, "OpenKeyedMutex2 left PrivateRuntimeDataSize as passed");
    o2.pPrivateRuntimeData = NULL;
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTOpenKeyedMutex2(&o2));
    int to = -1, from = -1;
    pid_t pid = spawn_global(a->argv0, "km", a->ai->AdapterLuid, value, &to, &from);
    CHECK(read_byte(from, 60000) == 'r', "the other process acquired and released by value");
    UINT64 fence = 0;
    EXPECT_OK(km_acquire_ex(1, km, 1, -5000 * 10000LL, 0, &fence, NULL, 0));
    CHECK(fence == 5, "Acquire after the other process's release: FenceValue %" PRIu64 ", expected 5", fence);
    EXPECT_OK(km_release_ex(1, km, 2, 6, NULL, 0));
    write_byte(to, 'g');
    CHECK(read_byte(from, 60000) == 'a', "the other process acquired key 2");
    write_byte(to, 'q');
    check_child_exit("km", wait_child(pid));
    EXPECT_STATUS(STATUS_ABANDONED, km_acquire_ex(1, o2.hKeyedMutex, 3, -5000 * 10000LL, 0, NULL, NULL, 0));
    close(to);
    close(from);
    EXPECT_OK(km_destroy(o2.hKeyedMutex));
    EXPECT_OK(km_destroy(km));
}

static void test_fence(kmt_adapter_t *a)
{
    phase("fence by value");
    int software = 0;
    if (!sync_objects_supported(a, "fences by global handle", &software))
        return;
    D3DKMT_HANDLE h = 0, value = 0;
    EXPECT_OK(sync_create_ex(a->hDevice, D3DDDI_MONITORED_FENCE, 0x1u, 0, &h, NULL, &value));
    CHECK(is_global(value), "Shared alone: SharedHandle 0x%08" PRIX32 " is global", (uint32_t)value);
    if (!h)
        return;
    HANDLE nt = NULL;
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTShareObjects(1, &h, NULL, GENERIC_ALL, &nt));
    int to = -1, from = -1;
    pid_t pid = spawn_global(a->argv0, "fence", a->ai->AdapterLuid, value, &to, &from);
    write_byte(to, 'g');
    CHECK(read_byte(from, 60000) == 's', "the other process signalled by value");
    CHECK(check_reached(a->hDevice, h, 7, "the fence the other process signalled"), "fence reached 7");
    write_byte(to, 'q');
    check_child_exit("fence", wait_child(pid));
    close(to);
    close(from);
    EXPECT_OK(sync_destroy(h));
    D3DKMT_OPENSYNCHRONIZATIONOBJECT o;
    memset(&o, 0, sizeof o);
    o.hSharedHandle = value;
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTOpenSynchronizationObject(&o));
}

static void test_other_user(kmt_adapter_t *a)
{
    phase("another user");
    if (a->info_ok && a->li.RenderNode[0])
        return;  /* once, on the software adapter: a DRM node may not be open to user nobody */
    if (geteuid() != 0) {
        printf("SKIPPED (not counted): another user's process needs root to start\n");
        return;
    }
    D3DKMT_HANDLE hRes = 0, hAlloc = 0, value = 0, km = 0, kmValue = 0;
    EXPECT_OK(create_global_resource(a->hDevice, &hRes, &hAlloc, &value));
    EXPECT_OK(km_create_ex(1, 0, 0, NULL, 0, &km, &kmValue));
    int to = -1, from = -1;
    pid_t pid = spawn_global(a->argv0, "other-user", a->ai->AdapterLuid, 0, &to, &from);
    write_value(to, value);
    write_value(to, kmValue);
    CHECK(read_byte(from, 60000) == 'd', "the other user's process tried the values");
    check_child_exit("other-user", wait_child(pid));
    close(to);
    close(from);
    if (hRes)
        EXPECT_OK(destroy_resource(a->hDevice, hRes));
    if (km)
        EXPECT_OK(km_destroy(km));
}

static void test_adapter(kmt_adapter_t *a)
{
    test_d3d9ex_flow(a);
    test_lifetime(a);
    test_forged(a);
    test_keyed_mutex(a);
    test_fence(a);
    test_other_user(a);
}

int main(int argc, char **argv)
{
    if (argc >= 7 && strcmp(argv[1], "d3d9-open") && strcmp(argv[1], "lifetime-create") &&
        strcmp(argv[1], "lifetime-hold") && strcmp(argv[1], "km") && strcmp(argv[1], "fence") &&
        strcmp(argv[1], "other-user")) {
        fprintf(stderr, "unknown child mode %s\n", argv[1]);
        return 2;
    }
    if (argc >= 7) {
        test_start(1, argv, 60);
        int in = atoi(argv[2]), out = atoi(argv[3]);
        LUID luid = { (DWORD)strtoul(argv[4], NULL, 10), (LONG)strtol(argv[5], NULL, 10) };
        D3DKMT_HANDLE value = (D3DKMT_HANDLE)strtoul(argv[6], NULL, 10);
        if (!strcmp(argv[1], "d3d9-open"))
            return child_d3d9_open(in, out, luid);
        if (!strcmp(argv[1], "lifetime-create"))
            return child_create(in, out, luid);
        if (!strcmp(argv[1], "lifetime-hold"))
            return child_hold(in, out, luid, value);
        if (!strcmp(argv[1], "km"))
            return child_km(in, out, luid, value);
        if (!strcmp(argv[1], "fence"))
            return child_fence(in, out, luid, value);
        return child_other_user(in, out, luid);
    }
    test_start(argc, argv, 120);
    return run_per_adapter(argv[0], "global handles", test_adapter, NULL);
}
