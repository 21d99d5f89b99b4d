/*
 * gpu_fences.c - the 1.1 entry points through the C ABI of libd3dkmt, on
 * every adapter D3DKMTEnumAdapters2 reports (the GL program Tests/gl/
 * gl_interop.c drives them with a real GPU in the virgl guest):
 *   - layouts: D3DKMT_LINUX_ALLOCATION_DESC2 on create (a new image; what it
 *     refuses), D3DKMTLinuxQueryAllocationDesc2 and the v1 query of the same
 *     allocation; on the software adapter a wrapped memfd with a 4096-byte
 *     header (DataOffset) and two NV12 planes, opened by a "layout" child
 *     (this program re-executed) that gets the planes back and whose Lock2
 *     maps from the data offset;
 *   - GPU fences on DRM adapters with timeline syncobjs: a sync_file (here one
 *     a sync object exported for a value it reached) signals another sync
 *     object's value, which a "wait" child blocked in
 *     WaitForSynchronizationObjectFromCpu sees; a keyed mutex's release value
 *     signalled from a sync_file, and the acquirer's sync_file for it; what
 *     they refuse (values that do not grow, what is not a sync_file, no such
 *     value); on the software adapter every one is STATUS_NOT_SUPPORTED;
 *   - the descriptor count before and after.
 * Output: one line per adapter on stdout, failure details on stderr, and as
 * the last line "N passed, M failed". The exit status is 0 only if nothing
 * failed.
 */
#define _GNU_SOURCE
#include "support/kmt_test.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define FOURCC(a, b, c, d) ((UINT)(a) | ((UINT)(b) << 8) | ((UINT)(c) << 16) | ((UINT)(d) << 24))
#define FOURCC_ABGR8888 FOURCC('A', 'B', '2', '4')
#define FOURCC_NV12 FOURCC('N', 'V', '1', '2')
#define NV12_WIDTH 64u
#define NV12_HEIGHT 32u
#define HEADER 4096u

typedef struct {
    D3DKMT_LINUX_ALLOCATION_DESC2 desc;
    uint8_t tail[4];
} desc2_data_t;
/* The descriptor and our 4 bytes, without the struct's padding. */
#define DESC2_DATA_SIZE ((UINT)(sizeof(D3DKMT_LINUX_ALLOCATION_DESC2) + 4))

static NTSTATUS create_with(D3DKMT_HANDLE hDevice, desc2_data_t *data, UINT size, int shared,
                            D3DKMT_HANDLE *phResource, D3DKMT_HANDLE *phAllocation)
{
    D3DDDI_ALLOCATIONINFO2 info;
    memset(&info, 0, sizeof info);
    info.pPrivateDriverData = data;
    info.PrivateDriverDataSize = size;
    D3DKMT_CREATEALLOCATION create;
    memset(&create, 0, sizeof create);
    create.hDevice = hDevice;
    create.NumAllocations = 1;
    create.pAllocationInfo2 = &info;
    create.Flags.CreateResource = 1;
    create.Flags.CreateShared = create.Flags.NtSecuritySharing = shared ? 1 : 0;
    NTSTATUS st = D3DKMTCreateAllocation2(&create);
    *phResource = st == STATUS_SUCCESS ? create.hResource : 0;
    *phAllocation = st == STATUS_SUCCESS ? info.hAllocation : 0;
    return st;
}

static void image_desc(desc2_data_t *data)
{
    memset(data, 0, sizeof *data);
    data->desc.Version = D3DKMT_LINUX_ALLOCATION_DESC_VERSION_2;
    data->desc.Width = 64;
    data->desc.Height = 32;
    data->desc.Fourcc = FOURCC_ABGR8888;
    data->desc.DmaBufFd = -1;
    memcpy(data->tail, "v2!", 4);
}

/* A new image with a version 2 descriptor; what version 2 refuses. */
static void test_new_image(D3DKMT_HANDLE hDevice)
{
    desc2_data_t data;
    D3DKMT_HANDLE hResource = 0, hAllocation = 0;
    image_desc(&data);
    EXPECT_OK(create_with(hDevice, &data, DESC2_DATA_SIZE, 0, &hResource, &hAllocation));
    if (hAllocation) {
        D3DKMT_LINUX_ALLOCATION_DESC2 got;
        memset(&got, 0xff, sizeof got);
        EXPECT_OK(D3DKMTLinuxQueryAllocationDesc2(hDevice, hAllocation, &got));
        CHECK(got.Version == D3DKMT_LINUX_ALLOCATION_DESC_VERSION_2 && got.Width == 64 && got.Height == 32 &&
              got.Fourcc == FOURCC_ABGR8888 && got.DmaBufFd == -1 && got.DataOffset == 0 && got.PlaneCount == 1 &&
              got.Planes[0].Offset == 0 && got.Planes[0].Stride == got.Stride &&
              (got.Stride >= 64 * 4 || got.Stride == 0 /* Width * 4: the allocator kept the creator's */) &&
              got.Size >= 64 * 4 * 32 && got.Reserved[0] == 0 && got.Reserved[1] == 0,
              "QueryAllocationDesc2 of a new 64x32 image: %ux%u fourcc 0x%x stride %u, %u planes (0: %u/%u), "
              "data offset %" PRIu64 ", size %" PRIu64, got.Width, got.Height, got.Fourcc, got.Stride, got.PlaneCount,
              got.Planes[0].Offset, got.Planes[0].Stride, (uint64_t)got.DataOffset, (uint64_t)got.Size);
        D3DKMT_LINUX_ALLOCATION_DESC v1;
        memset(&v1, 0, sizeof v1);
        EXPECT_OK(D3DKMTLinuxQueryAllocationDesc(hDevice, hAllocation, &v1));
        CHECK(v1.Version == D3DKMT_LINUX_ALLOCATION_DESC_VERSION && v1.Stride == got.Stride &&
              v1.Modifier == got.Modifier && v1.Size == got.Size,
              "the v1 query of the same allocation: version %u stride %u", v1.Version, v1.Stride);
        EXPECT_OK(destroy_resource(hDevice, hResource));
    }
    /* Refused: too many planes, reserved bits, planes or a data offset on a new allocation, a
     * version 2 descriptor that does not fit the driver data. */
    image_desc(&data);
    data.desc.PlaneCount = 5;
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, create_with(hDevice, &data, DESC2_DATA_SIZE, 0, &hResource, &hAllocation));
    image_desc(&data);
    data.desc.Reserved[1] = 1;
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, create_with(hDevice, &data, DESC2_DATA_SIZE, 0, &hResource, &hAllocation));
    image_desc(&data);
    data.desc.PlaneCount = 1;
    data.desc.Planes[0].Stride = 512;
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, create_with(hDevice, &data, DESC2_DATA_SIZE, 0, &hResource, &hAllocation));
    image_desc(&data);
    data.desc.DataOffset = 4096;
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, create_with(hDevice, &data, DESC2_DATA_SIZE, 0, &hResource, &hAllocation));
    image_desc(&data);
    EXPECT_STATUS(STATUS_INVALID_PARAMETER,
                  create_with(hDevice, &data, sizeof(D3DKMT_LINUX_ALLOCATION_DESC), 0, &hResource, &hAllocation));
}

/* NV12 with a header, wrapped from a sealed memfd: its layout reaches a child. */
static void test_wrapped_nv12(const char *argv0, const D3DKMT_ADAPTERINFO *ai, D3DKMT_HANDLE hDevice)
{
    size_t bytes = HEADER + NV12_WIDTH * NV12_HEIGHT * 3 / 2;
    int memfd = memfd_create("nv12", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    CHECK(memfd >= 0 && ftruncate(memfd, (off_t)bytes) == 0 &&
          fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) == 0, "a sealed memfd: %s", strerror(errno));
    uint8_t *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    CHECK(p != MAP_FAILED, "mapping the memfd");
    if (p == MAP_FAILED)
        return;
    memset(p, 0xAB, HEADER);
    memset(p + HEADER, 0x5C, bytes - HEADER);
    munmap(p, bytes);
    desc2_data_t data;
    memset(&data, 0, sizeof data);
    data.desc.Version = D3DKMT_LINUX_ALLOCATION_DESC_VERSION_2;
    data.desc.Width = NV12_WIDTH;
    data.desc.Height = NV12_HEIGHT;
    data.desc.Stride = NV12_WIDTH;
    data.desc.Fourcc = FOURCC_NV12;
    data.desc.DmaBufFd = memfd;
    data.desc.DataOffset = HEADER;
    data.desc.PlaneCount = 2;
    data.desc.Planes[0].Offset = HEADER;
    data.desc.Planes[0].Stride = NV12_WIDTH;
    data.desc.Planes[1].Offset = HEADER + NV12_WIDTH * NV12_HEIGHT;
    data.desc.Planes[1].Stride = NV12_WIDTH;
    D3DKMT_HANDLE hResource = 0, hAllocation = 0;
    EXPECT_OK(create_with(hDevice, &data, DESC2_DATA_SIZE, 1, &hResource, &hAllocation));
    close(memfd);
    if (!hResource)
        return;
    HANDLE shared = NULL;
    EXPECT_OK(D3DKMTShareObjects(1, &hResource, NULL, SHARE_ACCESS, &shared));
    pid_t child = spawn_child(argv0, "layout", shared, ai->AdapterLuid, NULL, NULL, NULL, NULL);
    CHECK(child > 0, "started the layout child");
    check_child_exit("layout", wait_child(child));
    close_handle(shared, "the NV12 handle");
    EXPECT_OK(destroy_resource(hDevice, hResource));
}

static int layout_main(int fd, LUID luid)
{
    D3DKMT_HANDLE hAdapter, hDevice;
    if (!start_child("layout child", luid, &hAdapter, &hDevice))
        return 1;
    HANDLE h = D3DKMTLinuxFdToHandle(fd);
    open_buffers_t b;
    EXPECT_OK(query_for_open(hDevice, h, &b));
    prepare_open(hDevice, h, &b, 1, b.query.TotalPrivateDriverDataSize);
    b.open.PrivateRuntimeDataSize = b.query.PrivateRuntimeDataSize;
    b.open.ResourcePrivateDriverDataSize = b.query.ResourcePrivateDriverDataSize;
    EXPECT_OK(D3DKMTOpenResourceFromNtHandle(&b.open));
    D3DKMT_HANDLE hAllocation = b.allocs[0].hAllocation;
    D3DKMT_LINUX_ALLOCATION_DESC2 got;
    memset(&got, 0, sizeof got);
    EXPECT_OK(D3DKMTLinuxQueryAllocationDesc2(hDevice, hAllocation, &got));
    CHECK(got.Fourcc == FOURCC_NV12 && got.PlaneCount == 2 && got.DataOffset == HEADER &&
          got.Planes[0].Offset == HEADER && got.Planes[1].Offset == HEADER + NV12_WIDTH * NV12_HEIGHT &&
          got.Planes[1].Stride == NV12_WIDTH && got.Size == NV12_WIDTH * NV12_HEIGHT * 3 / 2,
          "the opener's NV12 layout: %u planes, data offset %" PRIu64 ", plane 1 at %u, size %" PRIu64,
          got.PlaneCount, (uint64_t)got.DataOffset, got.Planes[1].Offset, (uint64_t)got.Size);
    CHECK(b.open.TotalPrivateDriverDataBufferSize == 4 && memcmp(b.total, "\0\0\0\0", 4) == 0,
          "the opener's driver data is the creator's 4 bytes after the version 2 descriptor (%u)",
          b.open.TotalPrivateDriverDataBufferSize);
    uint8_t *p = NULL;
    EXPECT_OK(lock(hDevice, hAllocation, &p));
    CHECK(p && p[0] == 0x5C && p[NV12_WIDTH * NV12_HEIGHT * 3 / 2 - 1] == 0x5C,
          "Lock2 maps from the data offset (first byte 0x%02x)", p ? p[0] : 0);
    if (p)
        EXPECT_OK(unlock(hDevice, hAllocation));
    EXPECT_OK(destroy_resource(hDevice, b.open.hResource));
    free_open_buffers(&b);
    close(fd);
    destroy_device(hDevice);
    close_adapter(hAdapter);
    return test_finish();
}

/* ------------------------------------------------------------------------ */
/* GPU fences                                                               */
/* ------------------------------------------------------------------------ */

static int wait_main(int fd, LUID luid, UINT64 value)
{
    D3DKMT_HANDLE hAdapter, hDevice;
    if (!start_child("wait child", luid, &hAdapter, &hDevice))
        return 1;
    D3DKMT_HANDLE hSync = 0;
    EXPECT_OK(sync_open2(hDevice, D3DKMTLinuxFdToHandle(fd), &hSync, NULL));
    EXPECT_OK(sync_wait(hDevice, hSync, value, -1)); /* blocks; the 120 s alarm bounds it */
    EXPECT_OK(sync_destroy(hSync));
    close(fd);
    destroy_device(hDevice);
    close_adapter(hAdapter);
    return test_finish();
}

static void test_gpu_fences(const char *argv0, const D3DKMT_ADAPTERINFO *ai, D3DKMT_HANDLE hDevice)
{
    /* A sync_file: what a sync object exports for a value it reached. */
    D3DKMT_HANDLE hSource = 0, hTarget = 0;
    EXPECT_OK(sync_create(hDevice, D3DDDI_FENCE, 0, &hSource, NULL));
    EXPECT_OK(sync_create(hDevice, D3DDDI_MONITORED_FENCE, 0, &hTarget, NULL));
    EXPECT_OK(sync_signal(hDevice, hSource, 3));
    int syncFile = -1;
    EXPECT_OK(D3DKMTLinuxExportSyncFile(hSource, 3, &syncFile));
    if (syncFile < 0)
        return;

    /* A CPU waiter in another process wakes when the sync_file's fence puts the value there. */
    HANDLE shared = NULL;
    EXPECT_OK(D3DKMTShareObjects(1, &hTarget, NULL, GENERIC_ALL, &shared));
    pid_t child = spawn_child(argv0, "wait", shared, ai->AdapterLuid, "5", NULL, NULL, NULL);
    CHECK(child > 0, "started the wait child");
    usleep(100000);
    EXPECT_OK(D3DKMTLinuxSignalSyncObjectFromSyncFile(hTarget, 5, syncFile));
    check_child_exit("wait", wait_child(child));
    EXPECT_OK(sync_wait_bounded(hDevice, hTarget, 5, 5000));
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTLinuxSignalSyncObjectFromSyncFile(hTarget, 5, syncFile));
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTLinuxSignalSyncObjectFromSyncFile(hTarget, 4, syncFile));
    EXPECT_STATUS(STATUS_INVALID_HANDLE, D3DKMTLinuxSignalSyncObjectFromSyncFile(hTarget, 6, -1));
    int pipes[2];
    CHECK(pipe2(pipes, O_CLOEXEC) == 0, "pipe2");
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTLinuxSignalSyncObjectFromSyncFile(hTarget, 6, pipes[0]));
    EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTLinuxSignalSyncObjectFromSyncFile(0x1eadbeed, 6, syncFile));
    close_handle(shared, "the sync object's handle");

    /* A keyed mutex's release value from a sync_file; the acquirer's sync_file for it. */
    guarded_t g;
    if (make_guarded(hDevice, 0, &g)) {
        D3DKMT_HANDLE hOther = 0;
        uint8_t kmdata[KM_DATA_SIZE];
        EXPECT_OK(km_open(g.h, kmdata, sizeof kmdata, &hOther));
        UINT64 fence = 0;
        EXPECT_OK(km_acquire(g.hKeyedMutex, 0, NO_TIMEOUT, &fence, NULL, 0));
        EXPECT_OK(D3DKMTLinuxSignalKeyedMutexFromSyncFile(hDevice, g.hKeyedMutex, 1, syncFile));
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTLinuxSignalKeyedMutexFromSyncFile(hDevice, g.hKeyedMutex, 1,
                                                                                        syncFile));
        EXPECT_OK(km_release(g.hKeyedMutex, 1, 1, NULL, 0));
        EXPECT_OK(km_acquire(hOther, 1, -10000000LL, &fence, NULL, 0));
        CHECK(fence == 1, "acquired with fence value %" PRIu64 ", expected 1", (uint64_t)fence);
        int waitFile = -1;
        EXPECT_OK(D3DKMTLinuxExportKeyedMutexSyncFile(hDevice, hOther, fence, &waitFile));
        CHECK(waitFile >= 0 && readable(waitFile, 5000) == 1, "the acquirer's sync_file signals");
        if (waitFile >= 0)
            close(waitFile);
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTLinuxExportKeyedMutexSyncFile(hDevice, hOther, 9, &waitFile));
        EXPECT_STATUS(STATUS_INVALID_PARAMETER, D3DKMTLinuxExportKeyedMutexSyncFile(hDevice, hOther, 1, NULL));
        EXPECT_OK(km_release(hOther, 0, 1, NULL, 0));
        EXPECT_OK(km_destroy(hOther));
        destroy_guarded(hDevice, &g);
    }
    close(pipes[0]);
    close(pipes[1]);
    close(syncFile);
    EXPECT_OK(sync_destroy(hSource));
    EXPECT_OK(sync_destroy(hTarget));
}

/* The software adapter has no kernel timelines: every GPU-fence call says so. */
static void test_software_refuses(D3DKMT_HANDLE hDevice)
{
    D3DKMT_HANDLE hSync = 0, hMutex = 0;
    EXPECT_OK(sync_create(hDevice, D3DDDI_FENCE, 0, &hSync, NULL));
    EXPECT_OK(km_create(0, NULL, 0, &hMutex));
    int pipes[2];
    CHECK(pipe2(pipes, O_CLOEXEC) == 0, "pipe2");
    EXPECT_STATUS(STATUS_NOT_SUPPORTED, D3DKMTLinuxSignalSyncObjectFromSyncFile(hSync, 1, pipes[0]));
    EXPECT_STATUS(STATUS_NOT_SUPPORTED, D3DKMTLinuxSignalKeyedMutexFromSyncFile(hDevice, hMutex, 1, pipes[0]));
    int fd = -1;
    EXPECT_STATUS(STATUS_NOT_SUPPORTED, D3DKMTLinuxExportKeyedMutexSyncFile(hDevice, hMutex, 1, &fd));
    close(pipes[0]);
    close(pipes[1]);
    EXPECT_OK(km_destroy(hMutex));
    EXPECT_OK(sync_destroy(hSync));
}

static void test_adapter(kmt_adapter_t *a)
{
    int software = a->info_ok && (a->li.Flags & D3DKMT_LINUX_ADAPTER_SOFTWARE);
    int timelines = a->info_ok && (a->li.Flags & D3DKMT_LINUX_ADAPTER_SYNCOBJ_TIMELINE);
    int before = warmed_up_fds(a->hDevice);
    phase("version 2 layouts");
    test_new_image(a->hDevice);
    if (software)
        test_wrapped_nv12(a->argv0, a->ai, a->hDevice);
    phase("GPU fences");
    if (software)
        test_software_refuses(a->hDevice);
    else if (timelines)
        test_gpu_fences(a->argv0, a->ai, a->hDevice);
    else
        printf("  %s: no timeline syncobjs, GPU fences skipped\n", a->li.DriverName);
    int after = count_fds_settled(before);
    check(before >= 0 && before == after, "gpu_fences: %d descriptors before, %d after", before, after);
}

int main(int argc, char **argv)
{
    int fd;
    LUID luid;
    if (argc == 5 && strcmp(argv[1], "layout") == 0 && child_args(argc, argv, &fd, &luid))
        return layout_main(fd, luid);
    if (argc == 6 && strcmp(argv[1], "wait") == 0 && child_args(argc, argv, &fd, &luid))
        return wait_main(fd, luid, strtoull(argv[5], NULL, 10));
    test_start(argc, argv, 90);
    return run_per_adapter(argv[0], "GPU fences and layouts", test_adapter, NULL);
}
