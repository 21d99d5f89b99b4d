/*
 * sharing.c - a resource shared across processes through the C ABI of
 * libd3dkmt (<d3dkmthk.h>), on every adapter D3DKMTEnumAdapters2 reports.
 *
 * Per adapter, this process creates a device and a shared resource of two
 * 64 KiB allocations, checks its size and dma-buf export, writes a pattern
 * into allocation 0, shares the resource as an NT handle (a close-on-exec
 * file descriptor) and re-executes itself as
 *     sharing child <fd> <adapter LUID low part> <adapter LUID high part>
 * with a copy of that descriptor inherited. The child opens the adapter by
 * LUID, queries and opens the resource from the handle, checks the runtime
 * and driver private data, the allocation layout and the pattern, and writes
 * a reply into allocation 1, which the parent then checks. Then 200 share /
 * query / open (refused and accepted) / close cycles must leave the number
 * of open descriptors unchanged.
 *
 * Output: one line per adapter on stdout, failure details on stderr, and as
 * the last line "N passed, M failed". The exit status is 0 only if nothing
 * failed.
 */
#define _GNU_SOURCE
#include "support/kmt_test.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define LEAK_CYCLES 200


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
/* Parent process                                                           */
/* ------------------------------------------------------------------------ */

static void test_adapter(kmt_adapter_t *a)
{
    D3DKMT_HANDLE hDevice = a->hDevice;
    D3DKMT_HANDLE hResource = 0, hAlloc[NUM_ALLOCATIONS] = { 0 };
    EXPECT_OK(create_resource(hDevice, NUM_ALLOCATIONS, 1, &hResource, hAlloc));
    check(hResource != 0 && hAlloc[0] != 0 && hAlloc[1] != 0,
          "create: missing resource or allocation handles");
    if (hResource == 0 || hAlloc[0] == 0 || hAlloc[1] == 0)
        return;

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

    check_child_exit("sharing", wait_child(spawn_child(a->argv0, "child", h, a->ai->AdapterLuid, NULL, NULL,
                                                       NULL, NULL)));

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

    phase("share/open/close leaks");
    test_no_leaks(hDevice, hResource);
    close_handle(h, "shared handle");

destroy_resource:
    EXPECT_OK(destroy_resource(hDevice, hResource));
}

int main(int argc, char **argv)
{
    int fd;
    LUID luid;
    if (argc == 5 && strcmp(argv[1], "child") == 0 && child_args(argc, argv, &fd, &luid))
        return child_main(fd, luid);
    test_start(argc, argv, 90);
    return run_per_adapter(argv[0], "sharing a resource", test_adapter, NULL);
}
