/*
 * rejections.c - bad calls that the C ABI of libd3dkmt (<d3dkmthk.h>) must
 * refuse with the statuses Windows documents, on every adapter
 * D3DKMTEnumAdapters2 reports: sharing no objects or a resource created
 * without NtSecuritySharing, opening with too few allocation entries or a
 * total private driver data buffer one byte short, and querying or opening
 * a descriptor that is not a shared handle (a pipe) or not open at all.
 * (The keyed mutex and sync object rejections are in keyed_mutex.c and
 * sync_objects.c.)
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
#include <string.h>
#include <unistd.h>

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

    /* Sizes whose product overflows 64 bits (#12 item 1: this once trapped, killing the caller):
     * Width = Height = 0xFFFFFFFF with Size and Stride 0 asks for 2^66 bytes. */
    {
        D3DKMT_LINUX_ALLOCATION_DESC desc = { .Version = D3DKMT_LINUX_ALLOCATION_DESC_VERSION,
                                              .Width = 0xFFFFFFFFu, .Height = 0xFFFFFFFFu, .DmaBufFd = -1 };
        D3DDDI_ALLOCATIONINFO2 info = { .pPrivateDriverData = &desc, .PrivateDriverDataSize = sizeof desc };
        D3DKMT_CREATEALLOCATION create = { .hDevice = hDevice, .NumAllocations = 1, .pAllocationInfo2 = &info };
        create.Flags.CreateResource = 1;
        NTSTATUS status = D3DKMTCreateAllocation2(&create);
        check(status == STATUS_INVALID_PARAMETER || status == STATUS_INTEGER_OVERFLOW,
              "CreateAllocation2 with Width = Height = 0xFFFFFFFF: 0x%08x", (unsigned)status);
        check(create.hResource == 0, "the overflowing allocation made a resource");
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


static void test_adapter(kmt_adapter_t *a)
{
    D3DKMT_HANDLE hResource = 0, hAlloc[NUM_ALLOCATIONS] = { 0 };
    EXPECT_OK(create_resource(a->hDevice, NUM_ALLOCATIONS, 1, &hResource, hAlloc));
    check(hResource != 0 && hAlloc[0] != 0 && hAlloc[1] != 0,
          "create: missing resource or allocation handles");
    if (hResource == 0)
        return;
    HANDLE h = NULL;
    EXPECT_OK(D3DKMTShareObjects(1, &hResource, NULL, SHARE_ACCESS, &h));
    check(h != NULL, "share: no handle returned");
    if (h)
        test_rejections(a->hDevice, hResource, h);
    close_handle(h, "shared handle");
    EXPECT_OK(destroy_resource(a->hDevice, hResource));
}

int main(int argc, char **argv)
{
    test_start(argc, argv, 90);
    return run_per_adapter(argv[0], "rejections", test_adapter, NULL);
}
