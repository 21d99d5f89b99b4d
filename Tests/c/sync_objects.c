/*
 * sync_objects.c - sync objects through the C ABI of libd3dkmt
 * (<d3dkmthk.h>), on every adapter D3DKMTEnumAdapters2 reports:
 *   - types: which exist, which are STATUS_NOT_SUPPORTED, which need an event;
 *   - signal and wait rules: initial values, forward signals only, counts,
 *     NULL arrays, flags, handles of another kind or device, a non-eventfd
 *     hAsyncEvent;
 *   - wait-any and wait-all of two objects through eventfds;
 *   - a monitored fence shared alone, opened by a "signal" child (this
 *     program re-executed as `sync_objects signal <fd> <LUID low> <LUID high>
 *     <ready fd> <go fd> <current> <value>`) that signals it while this
 *     process waits, blocking and through an eventfd;
 *   - on DRM adapters with timeline syncobjs: syncobj and sync_file export and
 *     import between two devices, and no open on adapters without timelines;
 *     on the software adapter: export and import are STATUS_NOT_SUPPORTED;
 *   - the descriptor count before and after, and 30 cycles of sharing and
 *     opening keyed mutexes and sync objects with refused opens and async
 *     waits in between that must leave no descriptor behind.
 * On an adapter without timeline syncobjs (vgem) sync objects cannot be
 * created; that status is checked and the rest is skipped.
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
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#define SYNC_LEAK_CYCLES 30

/* ------------------------------------------------------------------------ */
/* Child process                                                            */
/* ------------------------------------------------------------------------ */


/* "signal": opens the monitored fence shared alone, on a device of the
 * adapter (OpenSyncObjectFromNtHandle2) and without one
 * (OpenSyncObjectFromNtHandle); checks that its CPU address shows `current`;
 * writes 'R' to readyfd; after reading 'G' from gofd and 100 ms, signals
 * `value`. */
static int signal_main(int fd, LUID luid, int readyfd, int gofd, UINT64 current, UINT64 value)
{
    HANDLE h = D3DKMTLinuxFdToHandle(fd);
    D3DKMT_HANDLE hAdapter, hDevice;
    if (!start_child("signal child", luid, &hAdapter, &hDevice))
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

/* Devices on the adapters other than `index` that cannot take a DRM
 * timeline syncobj (the software adapter, DRM devices without timelines). */
static unsigned devices_without_timelines(const D3DKMT_ADAPTERINFO *adapters, ULONG count,
                                          unsigned index, D3DKMT_HANDLE *devices)
{
    unsigned n = 0;
    for (ULONG i = 0; i < count; i++) {
        D3DKMT_LINUX_ADAPTER_INFO li;
        if (i == index || query_linux_info(adapters[i].hAdapter, &li) != STATUS_SUCCESS)
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

static void test_adapter(kmt_adapter_t *a)
{
    D3DKMT_HANDLE *others = calloc(a->count ? a->count : 1, sizeof *others);
    unsigned nothers = others ? devices_without_timelines(a->adapters, a->count, a->index, others) : 0;
    int software;
    if (!sync_objects_supported(a, "sync object tests", &software))
        goto out;

    int before = warmed_up_fds(a->hDevice);
    phase("sync objects");
    test_sync_objects(a->argv0, a->ai, a->hDevice);
    phase("sync object export and import");
    if (software)
        test_sync_no_interop(a->hDevice);
    else
        test_sync_interop(a->ai, a->hDevice, others, nothers);
    int after = count_fds_settled(before);
    check(before >= 0 && before == after, "sync object tests: %d descriptors before, %d after", before, after);
    phase("keyed mutex and sync object leaks");
    test_sync_leaks(a->hDevice);

out:
    for (unsigned i = 0; i < nothers; i++)
        EXPECT_OK(destroy_device(others[i]));
    free(others);
}

int main(int argc, char **argv)
{
    int fd;
    LUID luid;
    if (argc == 9 && strcmp(argv[1], "signal") == 0 && child_args(argc, argv, &fd, &luid))
        return signal_main(fd, luid, atoi(argv[5]), atoi(argv[6]), strtoull(argv[7], NULL, 10),
                           strtoull(argv[8], NULL, 10));
    test_start(argc, argv, 90);
    return run_per_adapter(argv[0], "sync objects", test_adapter, NULL);
}
