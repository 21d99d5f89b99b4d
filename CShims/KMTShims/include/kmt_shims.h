/*
 * kmt_shims.h: the little C that Swift cannot import by itself.
 *
 * - ioctl request numbers (the _IOWR macros are not importable), as constants;
 * - the CMSG_* macros for SCM_RIGHTS, as inline functions;
 * - futex(2), which glibc does not wrap.
 *
 * Nothing here has logic: the Swift kernel layer (Sources/D3DKMT/Kernel) owns errno handling,
 * EINTR and deadlines. Every symbol is prefixed `kmt_`.
 */
#ifndef KMT_SHIMS_H
#define KMT_SHIMS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <time.h>
#include <sys/statfs.h>
#include <sys/eventfd.h>
#include <linux/futex.h>
#include <linux/memfd.h>
#include <linux/dma-buf.h>
#include <linux/sync_file.h>

/* ---- DRM uapi (drm.h, drm_mode.h, virtgpu_drm.h), the parts we use -------------------------- */

struct kmt_drm_mode_create_dumb {
    uint32_t height;
    uint32_t width;
    uint32_t bpp;
    uint32_t flags;
    uint32_t handle;
    uint32_t pitch;
    uint64_t size;
};

struct kmt_drm_mode_destroy_dumb {
    uint32_t handle;
};

struct kmt_drm_gem_close {
    uint32_t handle;
    uint32_t pad;
};

struct kmt_drm_virtgpu_resource_create {
    uint32_t target;
    uint32_t format;
    uint32_t bind;
    uint32_t width;
    uint32_t height;
    uint32_t depth;
    uint32_t array_size;
    uint32_t last_level;
    uint32_t nr_samples;
    uint32_t flags;
    uint32_t bo_handle;
    uint32_t res_handle;
    uint32_t size;
    uint32_t stride;
};

/* drm.h (6.6+): DRM_IOCTL_SYNCOBJ_EVENTFD. */
struct kmt_drm_syncobj_eventfd {
    uint32_t handle;
    uint32_t flags;
    uint64_t point;
    int32_t fd;
    uint32_t pad;
};

/* vgem_drm.h: fences a test can attach to a buffer and signal by hand. */
struct kmt_drm_vgem_fence_attach {
    uint32_t handle;
    uint32_t flags;     /* 1: VGEM_FENCE_WRITE */
    uint32_t out_fence;
    uint32_t pad;
};

struct kmt_drm_vgem_fence_signal {
    uint32_t fence;
    uint32_t flags;
};

#define KMT_DRM_IOCTL_BASE 'd'
#define KMT_DRM_COMMAND_BASE 0x40

static const unsigned long kmt_DRM_IOCTL_GEM_CLOSE =
    _IOW(KMT_DRM_IOCTL_BASE, 0x09, struct kmt_drm_gem_close);
static const unsigned long kmt_DRM_IOCTL_MODE_CREATE_DUMB =
    _IOWR(KMT_DRM_IOCTL_BASE, 0xB2, struct kmt_drm_mode_create_dumb);
static const unsigned long kmt_DRM_IOCTL_MODE_DESTROY_DUMB =
    _IOWR(KMT_DRM_IOCTL_BASE, 0xB4, struct kmt_drm_mode_destroy_dumb);
static const unsigned long kmt_DRM_IOCTL_VIRTGPU_RESOURCE_CREATE =
    _IOWR(KMT_DRM_IOCTL_BASE, KMT_DRM_COMMAND_BASE + 0x04, struct kmt_drm_virtgpu_resource_create);

static const unsigned long kmt_DRM_IOCTL_SYNCOBJ_EVENTFD =
    _IOWR(KMT_DRM_IOCTL_BASE, 0xCF, struct kmt_drm_syncobj_eventfd);
static const unsigned long kmt_DRM_IOCTL_VGEM_FENCE_ATTACH =
    _IOWR(KMT_DRM_IOCTL_BASE, KMT_DRM_COMMAND_BASE + 0x01, struct kmt_drm_vgem_fence_attach);
static const unsigned long kmt_DRM_IOCTL_VGEM_FENCE_SIGNAL =
    _IOW(KMT_DRM_IOCTL_BASE, KMT_DRM_COMMAND_BASE + 0x02, struct kmt_drm_vgem_fence_signal);

/* ---- dma-buf ---------------------------------------------------------------------------------- */

static const unsigned long kmt_DMA_BUF_IOCTL_SYNC = DMA_BUF_IOCTL_SYNC;
static const unsigned long kmt_DMA_BUF_IOCTL_EXPORT_SYNC_FILE = DMA_BUF_IOCTL_EXPORT_SYNC_FILE;
static const uint64_t kmt_DMA_BUF_SYNC_READ = DMA_BUF_SYNC_READ;
static const uint64_t kmt_DMA_BUF_SYNC_WRITE = DMA_BUF_SYNC_WRITE;
static const uint64_t kmt_DMA_BUF_SYNC_START = DMA_BUF_SYNC_START;
static const uint64_t kmt_DMA_BUF_SYNC_END = DMA_BUF_SYNC_END;

/* Filesystem magics (statfs f_type) used to tell what kind of object an fd is. */
static const long kmt_DMA_BUF_MAGIC = 0x444d4142;      /* dma-buf fs */
static const long kmt_ANON_INODE_FS_MAGIC = 0x09041934; /* DRM syncobj fds, eventfds */
static const long kmt_TMPFS_MAGIC = 0x01021994;        /* memfd */
static const long kmt_HUGETLBFS_MAGIC = 0x958458f6;     /* memfd with MFD_HUGETLB */

/* ---- memfd and seals (glibc hides them behind _GNU_SOURCE) ----------------------------------- */

static const unsigned int kmt_MFD_CLOEXEC = MFD_CLOEXEC;
static const unsigned int kmt_MFD_ALLOW_SEALING = MFD_ALLOW_SEALING;
/* <linux/fcntl.h> values; that header cannot be included next to glibc's <fcntl.h>. */
static const int kmt_F_ADD_SEALS = 1024 + 9;
static const int kmt_F_GET_SEALS = 1024 + 10;
static const int kmt_F_SEAL_SEAL = 0x0001;
static const int kmt_F_SEAL_SHRINK = 0x0002;
static const int kmt_F_SEAL_GROW = 0x0004;
static const int kmt_F_SEAL_WRITE = 0x0008;

static inline int kmt_memfd_create(const char *name, unsigned int flags) {
    return (int)syscall(SYS_memfd_create, name, flags);
}

/* ---- eventfd (the Windows event of an async wait) ------------------------------------------ */

static inline int kmt_eventfd(void) { return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }
static inline int kmt_eventfd_signal(int fd) { return eventfd_write(fd, 1); }

/* ---- ioctl, which is variadic in C ------------------------------------------------------------- */

static inline int kmt_ioctl(int fd, unsigned long request, void *arg) {
    return ioctl(fd, request, arg);
}

/* accept4(2) with SOCK_CLOEXEC (glibc declares accept4 only under _GNU_SOURCE). */
static inline int kmt_accept_cloexec(int fd) {
    return (int)syscall(SYS_accept4, fd, NULL, NULL, SOCK_CLOEXEC);
}

/* ---- SCM_RIGHTS ---------------------------------------------------------------------------------- */

static inline size_t kmt_cmsg_space(size_t data_length) { return CMSG_SPACE(data_length); }
static inline size_t kmt_cmsg_len(size_t data_length) { return CMSG_LEN(data_length); }
static inline struct cmsghdr *kmt_cmsg_firsthdr(struct msghdr *msg) { return CMSG_FIRSTHDR(msg); }
static inline struct cmsghdr *kmt_cmsg_nxthdr(struct msghdr *msg, struct cmsghdr *cmsg) {
    return CMSG_NXTHDR(msg, cmsg);
}
static inline unsigned char *kmt_cmsg_data(struct cmsghdr *cmsg) { return CMSG_DATA(cmsg); }

/* ---- futex --------------------------------------------------------------------------------------- */

/* FUTEX_WAIT_BITSET with an absolute CLOCK_MONOTONIC deadline (NULL: wait forever). */
static inline long kmt_futex_wait(uint32_t *address, uint32_t expected, const struct timespec *deadline,
                                  int shared) {
    int op = FUTEX_WAIT_BITSET | (shared ? 0 : FUTEX_PRIVATE_FLAG);
    return syscall(SYS_futex, address, op, expected, deadline, NULL, FUTEX_BITSET_MATCH_ANY);
}

static inline long kmt_futex_wake(uint32_t *address, int count, int shared) {
    int op = FUTEX_WAKE | (shared ? 0 : FUTEX_PRIVATE_FLAG);
    return syscall(SYS_futex, address, op, count, NULL, NULL, 0);
}

/* futex_waitv(2) (Linux 5.16): wait until any of `count` shared 32-bit futex words is woken,
 * with an absolute CLOCK_MONOTONIC deadline (NULL: forever). */
typedef struct futex_waitv kmt_futex_waitv_entry;
static const uint32_t kmt_FUTEX_32 = FUTEX_32; /* shared (no FUTEX_PRIVATE_FLAG): across processes */
#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449
#endif
static inline long kmt_futex_waitv(kmt_futex_waitv_entry *waiters, unsigned int count,
                                   const struct timespec *deadline) {
    return syscall(SYS_futex_waitv, waiters, count, 0, deadline, CLOCK_MONOTONIC);
}

static inline long kmt_gettid(void) { return syscall(SYS_gettid); }

#endif /* KMT_SHIMS_H */
