/*
 * keyed_mutex.c - keyed mutexes through the C ABI of libd3dkmt
 * (<d3dkmthk.h>), on every adapter D3DKMTEnumAdapters2 reports:
 *   - ping-pong: a resource, keyed mutex and monitored fence shared as one
 *     handle (cObjects 3) and handed back and forth PINGPONG_ROUNDS times
 *     between this process and a "pingpong" child (this program re-executed
 *     as `keyed_mutex pingpong <fd> <LUID low> <LUID high> <rounds>`): keys
 *     0 -> 1 -> 0, each side checking the counter the other wrote into the
 *     allocation, the FenceValue and private data of the other's release,
 *     and that the sync object reached that fence value;
 *   - statuses: timeouts (a try, relative, absolute), ownership per local
 *     handle, private data sizes, NULL arguments and bad handles, creation
 *     flags, opens from handles without a mutex, the ShareObjects order, and
 *     OpenResourceFromNtHandle on the three-object handle;
 *   - abandonment: by destroying while owning, by a "hold" child that owns
 *     the mutex and is killed with SIGKILL while this process waits, and by
 *     a killed owner not yet reaped;
 *   - the descriptor count before and after all of that;
 *   - once for the machine: D3DKMTLinuxExportKeyedMutexTimelineFd.
 * The guarded objects need a monitored fence: on an adapter without timeline
 * syncobjs (vgem) that status is checked and the per-adapter parts are
 * skipped.
 *
 * Output: one line per adapter on stdout, failure details on stderr, and as
 * the last line "N passed, M failed". The exit status is 0 only if nothing
 * failed.
 */
#define _GNU_SOURCE
#include "support/kmt_test.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PINGPONG_ROUNDS 1000u

/* ------------------------------------------------------------------------ */
/* Child processes                                                          */
/* ------------------------------------------------------------------------ */

/* "pingpong": the other side of test_pingpong. Opens the resource with its
 * keyed mutex and sync object, then `rounds` times: acquires key 1, checks
 * that FenceValue, the private data and the allocation's counter are what
 * the parent released with (2i+1) and that the sync object reached that
 * value, writes 2i+2, signals the sync object to 2i+2 and releases key 0 with
 * that fence value and private data. */
static int pingpong_main(int fd, LUID luid, unsigned rounds)
{
    HANDLE h = D3DKMTLinuxFdToHandle(fd);
    D3DKMT_HANDLE hAdapter, hDevice;
    if (!start_child("pingpong child", luid, &hAdapter, &hDevice))
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


/* ------------------------------------------------------------------------ */
/* Parent process                                                           */
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
        o.hSharedHandle = 0x40000001u;  /* not a global handle's shape (see global_handles.c) */
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTOpenKeyedMutex2(&o));
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
        /* A size far past the mutex's (and the buffer's) is refused before anything is read
         * (the api fuzzer found a release that copied it first). */
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, km_release(km, 1, 0, big, 0x40000000u));
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
        {
            uint8_t small[16] = { 0 };
            c.pPrivateRuntimeData = small;
            c.PrivateRuntimeDataSize = 0x40000000u;  /* more than a keyed mutex takes: not read */
            EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTCreateKeyedMutex2(&c));
            check(c.hKeyedMutex == 0, "create with oversized data returned a handle");
        }
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

/* D3DKMTLinuxExportKeyedMutexTimelineFd: a keyed mutex has a DRM timeline
 * when the machine has an adapter with timeline syncobjs, and not otherwise. */
static void test_keyed_mutex_timeline(const D3DKMT_ADAPTERINFO *adapters, ULONG count)
{
    D3DKMT_HANDLE timeline_adapter = 0;
    for (ULONG i = 0; i < count && !timeline_adapter; i++) {
        D3DKMT_LINUX_ADAPTER_INFO li;
        if (query_linux_info(adapters[i].hAdapter, &li) == STATUS_SUCCESS &&
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

static void test_adapter(kmt_adapter_t *a)
{
    int software;
    if (!sync_objects_supported(a, "keyed mutex tests", &software))
        return;
    (void)software;

    int before = warmed_up_fds(a->hDevice);

    phase("keyed mutex ping-pong");
    test_pingpong(a->argv0, a->ai, a->hDevice);
    phase("keyed mutex statuses");
    test_keyed_mutex_statuses(a->hDevice);
    phase("keyed mutex abandonment");
    test_abandonment(a->argv0, a->ai, a->hDevice);
    int after = count_fds_settled(before);
    check(before >= 0 && before == after, "keyed mutex tests: %d descriptors before, %d after", before, after);
}

static void after_adapters(const D3DKMT_ADAPTERINFO *adapters, ULONG count)
{
    phase("keyed mutex timeline");
    test_keyed_mutex_timeline(adapters, count);
}

int main(int argc, char **argv)
{
    int fd;
    LUID luid;
    if (child_args(argc, argv, &fd, &luid)) {
        if (argc == 6 && strcmp(argv[1], "pingpong") == 0)
            return pingpong_main(fd, luid, (unsigned)strtoul(argv[5], NULL, 10));
        if (argc == 6 && strcmp(argv[1], "hold") == 0)
            return hold_main(fd, atoi(argv[5]));
    }
    test_start(argc, argv, 90);
    return run_per_adapter(argv[0], "keyed mutexes", test_adapter, after_adapters);
}
