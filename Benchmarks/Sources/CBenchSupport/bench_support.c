#define _GNU_SOURCE
#include "bench_support.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <sched.h>
#include <linux/dma-buf.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <xf86drm.h>
#include <drm.h>
#include <drm_mode.h>
#include <virtgpu_drm.h>
#include <gbm.h>

/* ---- clock and process statistics ------------------------------------------------------- */

uint64_t kb_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int kb_count_fds(void) {
    DIR *dir = opendir("/proc/self/fd");
    if (!dir) return -errno;
    int count = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        if (entry->d_name[0] != '.') count++;
    }
    closedir(dir);
    return count - 1; /* the directory's own descriptor */
}

static long kib_line(const char *path, const char *key) {
    FILE *file = fopen(path, "re");
    if (!file) return -1;
    char line[256];
    size_t keylen = strlen(key);
    long value = -1;
    while (fgets(line, sizeof line, file)) {
        if (strncmp(line, key, keylen) == 0 && line[keylen] == ':') {
            value = strtol(line + keylen + 1, NULL, 10);
            break;
        }
    }
    fclose(file);
    return value;
}

void kb_trim_heap(void) { malloc_trim(0); }

long kb_status_kib(const char *key) { return kib_line("/proc/self/status", key); }
long kb_meminfo_kib(const char *key) { return kib_line("/proc/meminfo", key); }

long kb_raise_fd_limit(long want) {
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return -errno;
    if ((long)limit.rlim_cur >= want) return (long)limit.rlim_cur;
    struct rlimit raised = { (rlim_t)want, limit.rlim_max > (rlim_t)want ? limit.rlim_max : (rlim_t)want };
    if (setrlimit(RLIMIT_NOFILE, &raised) != 0) {
        raised.rlim_cur = limit.rlim_max < (rlim_t)want ? limit.rlim_max : (rlim_t)want;
        raised.rlim_max = limit.rlim_max;
        setrlimit(RLIMIT_NOFILE, &raised);
    }
    getrlimit(RLIMIT_NOFILE, &limit);
    return (long)limit.rlim_cur;
}

long kb_fd_limit(void) {
    struct rlimit limit;
    return getrlimit(RLIMIT_NOFILE, &limit) == 0 ? (long)limit.rlim_cur : -errno;
}

int kb_allowed_cpus(int *cpus, int max) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0) return -errno;
    int count = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE && count < max; cpu++) {
        if (CPU_ISSET(cpu, &set)) cpus[count++] = cpu;
    }
    return count;
}

int kb_pin_to_cpu(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof set, &set) == 0 ? 0 : -errno;
}

void kb_line_buffered_stdout(void) { setvbuf(stdout, NULL, _IOLBF, 0); }

void kb_log(const char *text) {
    fprintf(stderr, "%s\n", text);
    fflush(stderr);
}

int kb_pipe(int fds[2]) {
    return pipe2(fds, O_CLOEXEC) == 0 ? 0 : -errno;
}

/* ---- messages with descriptors ------------------------------------------------------------ */

#define KB_MAX_FDS 16

int kb_send(int sock, const void *bytes, size_t len, const int *fds, int nfds) {
    if (nfds < 0 || nfds > KB_MAX_FDS) return -EINVAL;
    union {
        char buf[CMSG_SPACE(sizeof(int) * KB_MAX_FDS)];
        struct cmsghdr align;
    } control;
    struct iovec iov = { (void *)bytes, len };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (nfds > 0) {
        memset(&control, 0, sizeof control);
        msg.msg_control = control.buf;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
        struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
        memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * (size_t)nfds);
    }
    for (;;) {
        ssize_t sent = sendmsg(sock, &msg, MSG_NOSIGNAL);
        if (sent >= 0) return 0;
        if (errno != EINTR) return -errno;
    }
}

ssize_t kb_recv(int sock, void *bytes, size_t cap, int *fds, int maxfds, int *nfds) {
    union {
        char buf[CMSG_SPACE(sizeof(int) * KB_MAX_FDS)];
        struct cmsghdr align;
    } control;
    struct iovec iov = { bytes, cap };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                          .msg_controllen = sizeof control.buf };
    ssize_t got;
    do {
        got = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    } while (got < 0 && errno == EINTR);
    if (got < 0) return -errno;
    *nfds = 0;
    for (struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg); cmsg; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
        if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS) continue;
        int count = (int)((cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        int received[KB_MAX_FDS];
        memcpy(received, CMSG_DATA(cmsg), sizeof(int) * (size_t)count);
        for (int i = 0; i < count; i++) {
            if (*nfds < maxfds) fds[(*nfds)++] = received[i];
            else close(received[i]);
        }
    }
    return got;
}

/* ---- futex ---------------------------------------------------------------------------------- */

static long futex(uint32_t *word, int op, uint32_t value) {
    return syscall(SYS_futex, word, op, value, NULL, NULL, 0);
}

int kb_futex_pingpong(uint32_t *word, uint32_t mine, uint32_t theirs, long rounds) {
    _Atomic uint32_t *atomic = (_Atomic uint32_t *)word;
    for (long i = 0; i < rounds; i++) {
        uint32_t seen;
        while ((seen = atomic_load_explicit(atomic, memory_order_acquire)) != mine) {
            futex(word, FUTEX_WAIT, seen);
        }
        atomic_store_explicit(atomic, theirs, memory_order_release);
        futex(word, FUTEX_WAKE, INT_MAX);
    }
    return 0;
}

void kb_futex_fence_signal(uint32_t *word, uint32_t value) {
    atomic_store_explicit((_Atomic uint32_t *)word, value, memory_order_release);
    futex(word, FUTEX_WAKE, INT_MAX);
}

void kb_futex_fence_wait(uint32_t *word, uint32_t value) {
    uint32_t seen;
    while ((seen = atomic_load_explicit((_Atomic uint32_t *)word, memory_order_acquire)) < value) {
        futex(word, FUTEX_WAIT, seen);
    }
}

void kb_futex_fence_pingpong(uint32_t *out, uint32_t *in, uint32_t base, long rounds, int first) {
    for (long i = 1; i <= rounds; i++) {
        uint32_t value = base + (uint32_t)i;
        if (first) {
            kb_futex_fence_signal(out, value);
            kb_futex_fence_wait(in, value);
        } else {
            kb_futex_fence_wait(in, value);
            kb_futex_fence_signal(out, value);
        }
    }
}

/* ---- pipes ---------------------------------------------------------------------------------- */

static int read_byte(int fd) {
    char byte;
    for (;;) {
        ssize_t got = read(fd, &byte, 1);
        if (got == 1) return 0;
        if (got == 0) return -EPIPE;
        if (errno != EINTR) return -errno;
    }
}

static int write_byte(int fd) {
    char byte = 'p';
    for (;;) {
        ssize_t put = write(fd, &byte, 1);
        if (put == 1) return 0;
        if (put < 0 && errno != EINTR) return -errno;
    }
}

int kb_pipe_pingpong(int rfd, int wfd, long rounds, int first) {
    for (long i = 0; i < rounds; i++) {
        int error;
        if (first) {
            if ((error = write_byte(wfd)) || (error = read_byte(rfd))) return error;
        } else {
            if ((error = read_byte(rfd)) || (error = write_byte(wfd))) return error;
        }
    }
    return 0;
}

/* ---- buffers --------------------------------------------------------------------------------- */

int kb_memfd_buffer(uint64_t size) {
    int fd = memfd_create("kmt-bench-raw", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) return -errno;
    if (ftruncate(fd, (off_t)size) != 0 ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
        int error = -errno;
        close(fd);
        return error;
    }
    return fd;
}

int kb_drm_open(const char *path) {
    int fd = open(path, O_RDWR | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

static int drm_ioctl(int fd, unsigned long request, void *arg) {
    int result;
    do {
        result = ioctl(fd, request, arg);
    } while (result == -1 && (errno == EINTR || errno == EAGAIN));
    return result == -1 ? -errno : 0;
}

void kb_gem_close(int fd, uint32_t handle) {
    struct drm_gem_close request = { .handle = handle };
    drm_ioctl(fd, DRM_IOCTL_GEM_CLOSE, &request);
}

int kb_drm_buffer(int render, int card, int virtio, uint64_t size) {
    /* The library's geometry: 1024 pixels of 4 bytes a row, enough rows for `size`. */
    uint32_t rows = (uint32_t)((size + 4095) / 4096);
    int owner;
    uint32_t handle;
    int error;
    if (virtio) {
        struct drm_virtgpu_resource_create request = {
            .target = 2, .format = 1, .bind = 2, .width = 1024, .height = rows, .depth = 1,
            .array_size = 1, .size = rows * 4096u, .stride = 4096,
        };
        if ((error = drm_ioctl(render, DRM_IOCTL_VIRTGPU_RESOURCE_CREATE, &request))) return error;
        owner = render;
        handle = request.bo_handle;
    } else {
        struct drm_mode_create_dumb request = { .height = rows, .width = 1024, .bpp = 32 };
        if ((error = drm_ioctl(card, DRM_IOCTL_MODE_CREATE_DUMB, &request))) return error;
        owner = card;
        handle = request.handle;
    }
    int dmabuf = -1;
    error = drmPrimeHandleToFD(owner, handle, DRM_CLOEXEC | DRM_RDWR, &dmabuf);
    kb_gem_close(owner, handle);
    return error ? -errno : dmabuf;
}

int kb_virtio_settle(int render) {
    struct drm_virtgpu_resource_create request = {
        .target = 2, .format = 1, .bind = 2, .width = 1024, .height = 1, .depth = 1,
        .array_size = 1, .size = 4096, .stride = 4096,
    };
    int error = drm_ioctl(render, DRM_IOCTL_VIRTGPU_RESOURCE_CREATE, &request);
    if (error) return error;
    struct drm_virtgpu_3d_wait wait = { .handle = request.bo_handle };
    error = drm_ioctl(render, DRM_IOCTL_VIRTGPU_WAIT, &wait);
    kb_gem_close(render, request.bo_handle);
    return error;
}

int kb_prime_import(int render, int dmabuf, uint32_t *handle) {
    return drmPrimeFDToHandle(render, dmabuf, handle) ? -errno : 0;
}

int64_t kb_fd_size(int fd) {
    struct stat st;
    if (fstat(fd, &st) != 0) return -errno;
    if (S_ISREG(st.st_mode) && st.st_size > 0) return st.st_size;
    off_t end = lseek(fd, 0, SEEK_END);
    if (end < 0) return -errno;
    lseek(fd, 0, SEEK_SET);
    return end;
}

/* ---- lock2-cycle: CPU access through a kept mapping ------------------------------------------ */

void kb_touch_pages(void *map, size_t len) {
    volatile uint8_t *p = map;
    for (size_t offset = 0; offset < len; offset += 4096) p[offset] = (uint8_t)(p[offset] + 1);
}

void *kb_map(int fd, size_t len) {
    void *map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    return map == MAP_FAILED ? NULL : map;
}

void kb_unmap(void *map, size_t len) { munmap(map, len); }

int kb_sync_touch(void *map, size_t len, int dmabuf) {
    struct dma_buf_sync sync = { .flags = DMA_BUF_SYNC_START | DMA_BUF_SYNC_RW };
    if (dmabuf >= 0 && ioctl(dmabuf, DMA_BUF_IOCTL_SYNC, &sync) != 0) return -errno;
    kb_touch_pages(map, len);
    sync.flags = DMA_BUF_SYNC_END | DMA_BUF_SYNC_RW;
    if (dmabuf >= 0 && ioctl(dmabuf, DMA_BUF_IOCTL_SYNC, &sync) != 0) return -errno;
    return 0;
}

/* ---- the share-open syscall floor ---------------------------------------------------------- */

int kb_floor_share(int control, int buffer, const void *package, size_t len) {
    /* The resource's runtime data page: a sealed 128 KiB memfd with a 64-byte header. */
    int page = memfd_create("d3dkmt-runtime-data", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (page < 0) return -errno;
    static const char header[64] = { 'K', 'R', 'M', 'T', 1 };
    int error = 0;
    if (ftruncate(page, 128 * 1024) != 0 || pwrite(page, header, sizeof header, 0) != (ssize_t)sizeof header ||
        fcntl(page, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW) != 0) {
        error = -errno;
    }
    int pair[2];
    if (!error && socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) error = -errno;
    if (!error) {
        int fds[2] = { page, buffer };
        error = kb_send(pair[1], package, len, fds, 2);
        close(pair[1]);
        if (!error) error = kb_send(control, "K", 1, &pair[0], 1);
        close(pair[0]);
    }
    close(page);
    return error;
}

/* The checks of one received memfd or dma-buf: fstatfs, F_GET_SEALS (a memfd), lseek. */
static int floor_check(int fd, int memfd) {
    struct statfs fs;
    if (fstatfs(fd, &fs) != 0) return -errno;
    if (memfd && fcntl(fd, F_GET_SEALS) < 0) return -errno;
    if (lseek(fd, 0, SEEK_END) < 0) return -errno;
    return 0;
}

int kb_floor_open(int handle, int render) {
    int value;
    socklen_t length = sizeof value;
    int error = 0;
    if (getsockopt(handle, SOL_SOCKET, SO_DOMAIN, &value, &length) != 0 ||
        getsockopt(handle, SOL_SOCKET, SO_TYPE, &value, &length) != 0) {
        error = -EINVAL;
    }
    char package[4096];
    union {
        char buf[CMSG_SPACE(sizeof(int) * KB_MAX_FDS)];
        struct cmsghdr align;
    } control;
    struct iovec iov = { package, sizeof package };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                          .msg_controllen = sizeof control.buf };
    if (!error && recvmsg(handle, &msg, MSG_PEEK | MSG_CMSG_CLOEXEC | MSG_DONTWAIT) < 0) error = -errno;
    int fds[2] = { -1, -1 };
    struct cmsghdr *cmsg = error ? NULL : CMSG_FIRSTHDR(&msg);
    if (cmsg && cmsg->cmsg_type == SCM_RIGHTS && cmsg->cmsg_len >= CMSG_LEN(sizeof fds))
        memcpy(fds, CMSG_DATA(cmsg), sizeof fds);
    int page = fds[0], buffer = fds[1];
    if (buffer >= 0 && page >= 0) {
        if (!error) error = floor_check(buffer, render < 0);
        if (!error && render >= 0) {
            uint32_t gem;
            if ((error = kb_prime_import(render, buffer, &gem)) == 0) kb_gem_close(render, gem);
        }
        /* The runtime data page: checked, then its header read (empty data: one read). */
        char header[16];
        if (!error) error = floor_check(page, 1);
        if (!error && pread(page, header, sizeof header, 0) != (ssize_t)sizeof header) error = -EIO;
    } else if (!error) {
        error = -EBADMSG;
    }
    if (page >= 0) close(page);
    if (buffer >= 0) close(buffer);
    close(handle);
    return error;
}

/* ---- DRM timeline syncobjs ------------------------------------------------------------------ */

int kb_syncobj_create(int fd, uint32_t *handle) {
    return drmSyncobjCreate(fd, 0, handle) ? -errno : 0;
}

int kb_syncobj_export(int fd, uint32_t handle) {
    int out = -1;
    return drmSyncobjHandleToFD(fd, handle, &out) ? -errno : out;
}

int kb_syncobj_import(int fd, int syncobj, uint32_t *handle) {
    return drmSyncobjFDToHandle(fd, syncobj, handle) ? -errno : 0;
}

void kb_syncobj_destroy(int fd, uint32_t handle) { drmSyncobjDestroy(fd, handle); }

int kb_syncobj_pingpong(int fd, uint32_t out, uint32_t in, uint64_t base, long rounds, int first) {
    for (long i = 1; i <= rounds; i++) {
        uint64_t point = base + (uint64_t)i;
        for (int step = 0; step < 2; step++) {
            int error;
            if ((step == 0) == (first != 0)) {
                error = drmSyncobjTimelineSignal(fd, &out, &point, 1);
            } else {
                uint32_t handle = in;
                error = drmSyncobjTimelineWait(fd, &handle, &point, 1, INT64_MAX,
                                               DRM_SYNCOBJ_WAIT_FLAGS_WAIT_FOR_SUBMIT, NULL);
            }
            if (error) return -errno;
        }
    }
    return 0;
}

/* ---- GPU fences and GBM ------------------------------------------------------------------- */

int kb_signalled_sync_file(int fd) {
    uint32_t handle = 0;
    if (drmSyncobjCreate(fd, DRM_SYNCOBJ_CREATE_SIGNALED, &handle)) return -errno;
    int out = -1;
    int error = drmSyncobjExportSyncFile(fd, handle, &out) ? -errno : 0;
    drmSyncobjDestroy(fd, handle);
    return error ? error : out;
}

int kb_gpu_fence_handoff(int fd, uint32_t timeline, int sync_file, uint64_t base, long rounds) {
    for (long i = 1; i <= rounds; i++) {
        uint64_t point = base + (uint64_t)i;
        uint32_t in = 0, out = 0;
        int file = -1;
        if (drmSyncobjCreate(fd, 0, &in)) return -errno;
        int error = drmSyncobjImportSyncFile(fd, in, sync_file) || drmSyncobjTransfer(fd, timeline, point, in, 0, 0);
        drmSyncobjDestroy(fd, in);
        if (error) return -errno;
        if (drmSyncobjCreate(fd, 0, &out)) return -errno;
        error = drmSyncobjTransfer(fd, out, 0, timeline, point, 0) || drmSyncobjExportSyncFile(fd, out, &file);
        drmSyncobjDestroy(fd, out);
        if (error) return -errno;
        close(file);
    }
    return 0;
}

void *kb_gbm_device(int fd) { return gbm_create_device(fd); }

void kb_gbm_device_destroy(void *device) { gbm_device_destroy(device); }

int kb_gbm_allocate_share(void *device, int gbm_fd, uint32_t width, uint32_t height, long rounds) {
    int error = 0;
    for (long i = 0; i < rounds && !error; i++) {
        struct gbm_bo *bo = gbm_bo_create(device, width, height, GBM_FORMAT_ABGR8888,
                                          GBM_BO_USE_RENDERING | GBM_BO_USE_LINEAR);
        if (!bo) { error = -EINVAL; break; }
        int dmabuf = -1;
        if (drmPrimeHandleToFD(gbm_fd, gbm_bo_get_handle(bo).u32, DRM_CLOEXEC | DRM_RDWR, &dmabuf)) {
            error = -errno;
        } else {
            char byte = 0;
            struct iovec iov = { &byte, 1 };
            char control[CMSG_SPACE(sizeof(int))];
            memset(control, 0, sizeof control);
            struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control,
                                  .msg_controllen = sizeof control };
            struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
            cmsg->cmsg_level = SOL_SOCKET;
            cmsg->cmsg_type = SCM_RIGHTS;
            cmsg->cmsg_len = CMSG_LEN(sizeof(int));
            memcpy(CMSG_DATA(cmsg), &dmabuf, sizeof(int));
            int pair[2];
            if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair)) {
                error = -errno;
            } else {
                if (sendmsg(pair[0], &msg, MSG_NOSIGNAL) < 0) error = -errno;
                close(pair[0]);
                close(pair[1]);
            }
            close(dmabuf);
        }
        gbm_bo_destroy(bo);
    }
    return error;
}

/* ---- the name protocol's floor (open-by-name) ------------------------------------------------ */

#include <poll.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/un.h>

struct kb_name_floor {
    int listener, handle, stop, epoll;
    char path[108];
    pthread_t thread;
};

/* The sharer's side: an epoll thread that accepts each connection, sends it a copy of the handle
 * (the reply as ours spells it) and closes it, as the library's event thread does for a name. */
static void *name_floor_serve(void *context) {
    struct kb_name_floor *floor = context;
    static const char reply[] = "KMTN\1\0\0\0S:KMT-BENCH-NAME-FLOOR";
    for (;;) {
        struct epoll_event event;
        int ready = epoll_wait(floor->epoll, &event, 1, -1);
        if (ready < 0 && errno == EINTR) continue;
        if (ready < 1 || event.data.fd == floor->stop) return NULL;
        int connection = accept4(floor->listener, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (connection < 0) continue;
        kb_send(connection, reply, sizeof reply - 1, &floor->handle, 1);
        close(connection);
    }
}

struct kb_name_floor *kb_name_floor_start(int handle) {
    struct kb_name_floor *floor = calloc(1, sizeof *floor);
    if (!floor) return NULL;
    snprintf(floor->path, sizeof floor->path, "/tmp/kmt-bench-name-floor-%d", (int)getpid());
    unlink(floor->path);
    struct sockaddr_un address = { .sun_family = AF_UNIX };
    memcpy(address.sun_path, floor->path, strlen(floor->path) + 1);
    floor->handle = handle;
    floor->listener = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    floor->stop = eventfd(0, EFD_CLOEXEC);
    floor->epoll = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event listen_event = { .events = EPOLLIN, .data.fd = floor->listener };
    struct epoll_event stop_event = { .events = EPOLLIN, .data.fd = floor->stop };
    if (floor->listener < 0 || floor->stop < 0 || floor->epoll < 0 ||
        bind(floor->listener, (struct sockaddr *)&address, sizeof address) != 0 || listen(floor->listener, 64) != 0 ||
        epoll_ctl(floor->epoll, EPOLL_CTL_ADD, floor->listener, &listen_event) != 0 ||
        epoll_ctl(floor->epoll, EPOLL_CTL_ADD, floor->stop, &stop_event) != 0 ||
        pthread_create(&floor->thread, NULL, name_floor_serve, floor) != 0) {
        if (floor->listener >= 0) close(floor->listener);
        if (floor->stop >= 0) close(floor->stop);
        if (floor->epoll >= 0) close(floor->epoll);
        unlink(floor->path);
        free(floor);
        return NULL;
    }
    return floor;
}

const char *kb_name_floor_path(const struct kb_name_floor *floor) { return floor->path; }

void kb_name_floor_stop(struct kb_name_floor *floor) {
    uint64_t one = 1;
    if (write(floor->stop, &one, sizeof one) != (ssize_t)sizeof one) return;  /* the thread stays */
    pthread_join(floor->thread, NULL);
    close(floor->listener);
    close(floor->stop);
    close(floor->epoll);
    unlink(floor->path);
    free(floor);
}

int kb_name_floor_lookup(const char *path) {
    /* What ours does besides: the namespace directory's check (lstat). */
    struct stat directory;
    char parent[108];
    snprintf(parent, sizeof parent, "%s", path);
    char *slash = strrchr(parent, '/');
    if (slash) *slash = 0;
    if (lstat(parent, &directory) != 0) return -errno;
    int connection = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (connection < 0) return -errno;
    struct sockaddr_un address = { .sun_family = AF_UNIX };
    snprintf(address.sun_path, sizeof address.sun_path, "%s", path);
    int error = 0;
    if (connect(connection, (struct sockaddr *)&address, sizeof address) != 0) error = -errno;
    struct pollfd ready = { .fd = connection, .events = POLLIN };
    if (!error && poll(&ready, 1, 5000) != 1) error = -ETIMEDOUT;
    char reply[256];
    int fd = -1, count = 0;
    if (!error) {
        ssize_t got = kb_recv(connection, reply, sizeof reply, &fd, 1, &count);
        if (got < 0) error = (int)got;
    }
    close(connection);
    if (error) return error;
    return count == 1 ? fd : -EPROTO;
}

#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <linux/sockios.h>

struct kb_name_fast_floor {
    int keeper[2];
    char path[108];
};

struct kb_name_fast_floor *kb_name_fast_floor_start(int handle) {
    struct kb_name_fast_floor *floor = calloc(1, sizeof *floor);
    if (!floor) return NULL;
    snprintf(floor->path, sizeof floor->path, "/tmp/kmt-bench-name-fast-floor-%d", (int)getpid());
    unlink(floor->path);
    struct stat handle_status, keeper_status;
    char record[160];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, floor->keeper) != 0) {
        free(floor);
        return NULL;
    }
    if (fstat(handle, &handle_status) != 0 || fstat(floor->keeper[0], &keeper_status) != 0 ||
        snprintf(record, sizeof record, "%d:%d:%llu:%llu:%d:%llu:%llu", (int)getpid(), handle,
                 (unsigned long long)handle_status.st_dev, (unsigned long long)handle_status.st_ino,
                 floor->keeper[0], (unsigned long long)keeper_status.st_dev,
                 (unsigned long long)keeper_status.st_ino) >= (int)sizeof record ||
        symlink(record, floor->path) != 0) {
        close(floor->keeper[0]);
        close(floor->keeper[1]);
        free(floor);
        return NULL;
    }
    return floor;
}

const char *kb_name_fast_floor_path(const struct kb_name_fast_floor *floor) { return floor->path; }

void kb_name_fast_floor_stop(struct kb_name_fast_floor *floor) {
    unlink(floor->path);
    close(floor->keeper[0]);
    close(floor->keeper[1]);
    free(floor);
}

/* A copy of descriptor `number` of the process behind `pidfd` if it is the file (`device`, `inode`). */
static int name_fast_floor_take(int pidfd, int number, unsigned long long device, unsigned long long inode) {
    int fd = (int)syscall(SYS_pidfd_getfd, pidfd, number, 0);
    if (fd < 0) return -errno;
    struct stat status;
    if (fstat(fd, &status) != 0 || status.st_dev != device || status.st_ino != inode) {
        close(fd);
        return -ESTALE;
    }
    return fd;
}

int kb_name_fast_floor_lookup(const char *path) {
    struct stat directory;
    char parent[108];
    snprintf(parent, sizeof parent, "%s", path);
    char *slash = strrchr(parent, '/');
    if (slash) *slash = 0;
    if (lstat(parent, &directory) != 0) return -errno;
    char record[160];
    ssize_t length = readlink(path, record, sizeof record - 1);
    if (length < 0) return -errno;
    record[length] = 0;
    int pid, handle_number, keeper_number;
    unsigned long long handle_device, handle_inode, keeper_device, keeper_inode;
    if (sscanf(record, "%d:%d:%llu:%llu:%d:%llu:%llu", &pid, &handle_number, &handle_device, &handle_inode,
               &keeper_number, &keeper_device, &keeper_inode) != 7) return -EPROTO;
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pidfd < 0) return -errno;
    int handle = name_fast_floor_take(pidfd, handle_number, handle_device, handle_inode);
    int keeper = handle < 0 ? -1 : name_fast_floor_take(pidfd, keeper_number, keeper_device, keeper_inode);
    close(pidfd);
    int error = handle < 0 ? handle : keeper < 0 ? keeper : 0;
    if (!error) {
        struct pollfd hangup = { .fd = keeper, .events = 0 };
        int queued = 0;
        if (poll(&hangup, 1, 0) != 0) error = -EPIPE;
        else if (ioctl(handle, SIOCINQ, &queued) != 0 || queued == 0) error = -ENODATA;
    }
    if (keeper >= 0) close(keeper);
    if (error && handle >= 0) close(handle);
    return error ? error : handle;
}
