/*
 * kmt_shims.h: the little C that Swift cannot import by itself.
 *
 * Swift imports this header without _GNU_SOURCE, so it declares only `kmt_` names; shims.c,
 * compiled with _GNU_SOURCE, defines them from glibc's and libdrm's own declarations:
 *
 * - constants behind _GNU_SOURCE (memfd flags, seals) or behind function-like macros (ioctl
 *   request numbers built with _IOWR/DRM_IOWR), as `extern const`;
 * - functions behind _GNU_SOURCE (memfd_create, accept4), variadic in C (ioctl), macros
 *   (sendmsg/recvmsg with SCM_RIGHTS, whose control messages only the CMSG_* macros pack), or
 *   not wrapped by glibc (futex, futex_waitv);
 * - `struct kmt_drm_syncobj_eventfd`, which Debian 12's libdrm headers do not have yet.
 *
 * Nothing here has logic beyond packing a control message: the Swift kernel layer
 * (Sources/D3DKMT/Kernel) owns errno handling, EINTR and deadlines.
 */
#ifndef KMT_SHIMS_H
#define KMT_SHIMS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/eventfd.h> /* eventfd(2), which Swift's Glibc module leaves out */
#include <sys/statfs.h>  /* fstatfs(2), likewise */
#include <time.h>
#include <linux/futex.h>
#include <linux/dma-buf.h> /* struct dma_buf_sync, dma_buf_export_sync_file, DMA_BUF_SYNC_* */

/* ---- memfd and seals -------------------------------------------------------------------------- */

extern const unsigned int kmt_MFD_CLOEXEC;
extern const unsigned int kmt_MFD_ALLOW_SEALING;
extern const int kmt_F_ADD_SEALS;
extern const int kmt_F_GET_SEALS;
extern const int kmt_F_SEAL_SEAL;
extern const int kmt_F_SEAL_SHRINK;
extern const int kmt_F_SEAL_GROW;

/* Open file description locks (F_OFD_GETLK, F_OFD_SETLK; Linux 3.15). */
extern const int kmt_F_OFD_GETLK;
extern const int kmt_F_OFD_SETLK;

/* memfd_create(2). */
int kmt_memfd_create(const char *name, unsigned int flags);
/* prctl(PR_SET_NAME): names the calling thread (at most 15 bytes kept); prctl is variadic. */
int kmt_set_thread_name(const char *name);

/* Filesystem magics (statfs f_type, <linux/magic.h>) that tell what kind of object an fd is. */
extern const long kmt_DMA_BUF_MAGIC;   /* dma-buf fs */
extern const long kmt_TMPFS_MAGIC;     /* memfd */
extern const long kmt_HUGETLBFS_MAGIC; /* memfd with MFD_HUGETLB */

/* ---- sockets ---------------------------------------------------------------------------------- */

/* accept4(2) with SOCK_CLOEXEC. */
int kmt_accept_cloexec(int fd);
/* accept4(2) with SOCK_CLOEXEC | SOCK_NONBLOCK. */
int kmt_accept_nonblocking(int fd);
/* SOCK_NONBLOCK, for socket(2)'s type. */
extern const int kmt_SOCK_NONBLOCK;

/* The most descriptors one SCM_RIGHTS message carries (SCM_MAX_FD). */
#define KMT_MAX_RIGHTS 253

/* sendmsg(2) of one datagram of `length` bytes at `data` with the `count` (at most KMT_MAX_RIGHTS)
 * descriptors at `fds` as one SCM_RIGHTS control message (none when `count` is 0), built on the
 * stack with the CMSG_* macros. Returns what sendmsg returns. */
long kmt_send_rights(int fd, const void *data, size_t length, const int *fds, size_t count, int flags);

/* recvmsg(2) of one datagram into `data`, with control space for `room` (at most KMT_MAX_RIGHTS)
 * descriptors: those that arrived in SCM_RIGHTS messages are stored at `fds`, their number at
 * `*count`, recvmsg's msg_flags (MSG_TRUNC, MSG_CTRUNC) at `*message_flags`. Returns what recvmsg
 * returns (`*count` and `*message_flags` are then set only when it is not -1). */
long kmt_receive_rights(int fd, void *data, size_t length, int flags, int *fds, size_t room, size_t *count,
                        int *message_flags);

/* SIOCOUTQ: bytes a socket sent that are not yet freed (a unix socket's message still queued at
 * its peer). */
extern const unsigned long kmt_SIOCOUTQ;
/* SIOCINQ: for a unix datagram or seqpacket socket, the length of the first queued message (0
 * when none is). */
extern const unsigned long kmt_SIOCINQ;

/* ---- epoll ------------------------------------------------------------------------------------ */

/* epoll_create1(EPOLL_CLOEXEC). */
int kmt_epoll_create(void);
/* epoll_ctl(2) with `events` and a 64-bit `key` as the event's data (struct epoll_event is packed
 * on x86-64, so Swift never builds one). */
int kmt_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t key);
/* epoll_wait(2) into two parallel arrays of up to `max` entries. */
int kmt_epoll_wait(int epfd, uint32_t *events, uint64_t *keys, int max, int timeout_ms);
extern const int kmt_EPOLL_CTL_ADD;
extern const int kmt_EPOLL_CTL_MOD;
extern const int kmt_EPOLL_CTL_DEL;
extern const uint32_t kmt_EPOLLIN;
extern const uint32_t kmt_EPOLLOUT;
extern const uint32_t kmt_EPOLLERR;
extern const uint32_t kmt_EPOLLHUP;
extern const uint32_t kmt_EPOLLET;

/* ---- ioctl ------------------------------------------------------------------------------------ */

/* ioctl(2), which is variadic in C. */
int kmt_ioctl(int fd, unsigned long request, void *arg);

/* dma-buf (<linux/dma-buf.h>). */
extern const unsigned long kmt_DMA_BUF_IOCTL_SYNC;
extern const unsigned long kmt_DMA_BUF_IOCTL_EXPORT_SYNC_FILE;

/* DRM (libdrm's drm.h, drm_mode.h, virtgpu_drm.h; the structs come from CLibDRM). */
extern const unsigned long kmt_DRM_IOCTL_GEM_CLOSE;
extern const unsigned long kmt_DRM_IOCTL_MODE_CREATE_DUMB;
extern const unsigned long kmt_DRM_IOCTL_VIRTGPU_RESOURCE_CREATE;

/* drm.h of Linux 6.6 / libdrm 2.4.117: DRM_IOCTL_SYNCOBJ_EVENTFD (Debian 12 has neither). */
struct kmt_drm_syncobj_eventfd {
    uint32_t handle;
    uint32_t flags;
    uint64_t point;
    int32_t fd;
    uint32_t pad;
};
extern const unsigned long kmt_DRM_IOCTL_SYNCOBJ_EVENTFD;

/* virtio-gpu (virtgpu_drm.h): parameters, 3D transfers and waits (the structs come from CLibDRM). */
extern const unsigned long kmt_DRM_IOCTL_VIRTGPU_GETPARAM;
extern const unsigned long kmt_DRM_IOCTL_VIRTGPU_TRANSFER_FROM_HOST;
extern const unsigned long kmt_DRM_IOCTL_VIRTGPU_TRANSFER_TO_HOST;
extern const unsigned long kmt_DRM_IOCTL_VIRTGPU_WAIT;
extern const unsigned long kmt_DRM_IOCTL_VIRTGPU_MAP;
extern const unsigned long kmt_DRM_IOCTL_VIRTGPU_RESOURCE_INFO;

/* ---- GBM (Mesa's libgbm, loaded with dlopen by the kernel layer, Kernel+GBM.swift) ------------- */

/* gbm_bo_get_handle returns this union by value (gbm.h's union gbm_bo_handle), which Swift cannot
 * declare itself; the kernel layer calls the dlsym'd function through this type. Types only. */
typedef union kmt_gbm_bo_handle {
    void *ptr;
    int32_t s32;
    uint32_t u32;
    int64_t s64;
    uint64_t u64;
} kmt_gbm_bo_handle;
typedef kmt_gbm_bo_handle (*kmt_gbm_bo_get_handle_function)(void *bo);

/* ---- futex ------------------------------------------------------------------------------------ */

/* FUTEX_WAIT_BITSET with an absolute CLOCK_MONOTONIC deadline (NULL: wait forever); `shared`
 * 0 adds FUTEX_PRIVATE_FLAG. */
long kmt_futex_wait(uint32_t *address, uint32_t expected, const struct timespec *deadline, int shared);

/* FUTEX_WAIT for at most `nanoseconds` (relative, so no clock is read here; the kernel restarts an
 * interrupted wait with the time left); `shared` 0 adds FUTEX_PRIVATE_FLAG. */
long kmt_futex_wait_for(uint32_t *address, uint32_t expected, int64_t nanoseconds, int shared);

/* FUTEX_WAKE of up to `count` waiters. */
long kmt_futex_wake(uint32_t *address, int count, int shared);

/* futex_waitv(2) (Linux 5.16): wait until any of `count` futex words is woken, with an absolute
 * CLOCK_MONOTONIC deadline (NULL: forever). */
typedef struct futex_waitv kmt_futex_waitv_entry;
extern const uint32_t kmt_FUTEX_32; /* shared (no FUTEX_PRIVATE_FLAG): across processes */
long kmt_futex_waitv(kmt_futex_waitv_entry *waiters, unsigned int count, const struct timespec *deadline);

#endif /* KMT_SHIMS_H */
