/*
 * The definitions behind kmt_shims.h. Compiled with _GNU_SOURCE (Package.swift's cSettings), so
 * glibc's own memfd_create, accept4 and F_*_SEALS are used, and with libdrm's uapi headers
 * (found through CLibDRM's pkg-config) for the DRM request numbers.
 */
#ifndef _GNU_SOURCE
#error "shims.c needs _GNU_SOURCE (set in Package.swift)"
#endif

#include "kmt_shims.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/magic.h>
#include <linux/sockios.h>
#include <drm.h>
#include <drm_mode.h>
#include <virtgpu_drm.h>

/* ---- memfd and seals -------------------------------------------------------------------------- */

const unsigned int kmt_MFD_CLOEXEC = MFD_CLOEXEC;
const unsigned int kmt_MFD_ALLOW_SEALING = MFD_ALLOW_SEALING;
const int kmt_F_ADD_SEALS = F_ADD_SEALS;
const int kmt_F_GET_SEALS = F_GET_SEALS;
const int kmt_F_SEAL_SEAL = F_SEAL_SEAL;
const int kmt_F_SEAL_SHRINK = F_SEAL_SHRINK;
const int kmt_F_SEAL_GROW = F_SEAL_GROW;
const int kmt_F_OFD_GETLK = F_OFD_GETLK;
const int kmt_F_OFD_SETLK = F_OFD_SETLK;

int kmt_memfd_create(const char *name, unsigned int flags) { return memfd_create(name, flags); }
int kmt_set_thread_name(const char *name) { return prctl(PR_SET_NAME, (unsigned long)name, 0, 0, 0); }

const long kmt_DMA_BUF_MAGIC = DMA_BUF_MAGIC;
const long kmt_TMPFS_MAGIC = TMPFS_MAGIC;
const long kmt_HUGETLBFS_MAGIC = HUGETLBFS_MAGIC;

/* ---- sockets ---------------------------------------------------------------------------------- */

int kmt_accept_cloexec(int fd) { return accept4(fd, NULL, NULL, SOCK_CLOEXEC); }
int kmt_accept_nonblocking(int fd) { return accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK); }
const int kmt_SOCK_NONBLOCK = SOCK_NONBLOCK;

const unsigned long kmt_SIOCOUTQ = SIOCOUTQ;
const unsigned long kmt_SIOCINQ = SIOCINQ;

/* ---- epoll ------------------------------------------------------------------------------------ */

int kmt_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int kmt_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t key) {
    struct epoll_event event = { .events = events, .data.u64 = key };
    return epoll_ctl(epfd, op, fd, &event);
}

int kmt_epoll_wait(int epfd, uint32_t *events, uint64_t *keys, int max, int timeout_ms) {
    struct epoll_event ready[64];
    if (max > 64) max = 64;
    int count = epoll_wait(epfd, ready, max, timeout_ms);
    for (int i = 0; i < count; i++) {
        events[i] = ready[i].events;
        keys[i] = ready[i].data.u64;
    }
    return count;
}

const int kmt_EPOLL_CTL_ADD = EPOLL_CTL_ADD;
const int kmt_EPOLL_CTL_MOD = EPOLL_CTL_MOD;
const int kmt_EPOLL_CTL_DEL = EPOLL_CTL_DEL;
const uint32_t kmt_EPOLLIN = EPOLLIN;
const uint32_t kmt_EPOLLOUT = EPOLLOUT;
const uint32_t kmt_EPOLLERR = EPOLLERR;
const uint32_t kmt_EPOLLHUP = EPOLLHUP;
const uint32_t kmt_EPOLLET = EPOLLET;


long kmt_send_rights(int fd, const void *data, size_t length, const int *fds, size_t count, int flags) {
    union {
        char bytes[CMSG_SPACE(sizeof(int) * KMT_MAX_RIGHTS)];
        struct cmsghdr align;
    } control;
    struct iovec vector = { (void *)data, length };
    struct msghdr message = { .msg_iov = &vector, .msg_iovlen = 1 };
    if (count > KMT_MAX_RIGHTS) {
        errno = EINVAL;
        return -1;
    }
    if (count > 0) {
        message.msg_control = control.bytes;
        message.msg_controllen = CMSG_SPACE(sizeof(int) * count);
        memset(control.bytes, 0, message.msg_controllen);
        struct cmsghdr *header = CMSG_FIRSTHDR(&message);
        header->cmsg_level = SOL_SOCKET;
        header->cmsg_type = SCM_RIGHTS;
        header->cmsg_len = CMSG_LEN(sizeof(int) * count);
        memcpy(CMSG_DATA(header), fds, sizeof(int) * count);
    }
    return sendmsg(fd, &message, flags);
}

long kmt_receive_rights(int fd, void *data, size_t length, int flags, int *fds, size_t room, size_t *count,
                        int *message_flags) {
    union {
        char bytes[CMSG_SPACE(sizeof(int) * KMT_MAX_RIGHTS)];
        struct cmsghdr align;
    } control;
    struct iovec vector = { data, length };
    if (room > KMT_MAX_RIGHTS) room = KMT_MAX_RIGHTS;
    struct msghdr message = { .msg_iov = &vector, .msg_iovlen = 1, .msg_control = control.bytes,
                              .msg_controllen = CMSG_SPACE(sizeof(int) * room) };
    ssize_t received = recvmsg(fd, &message, flags);
    if (received < 0) return -1;
    size_t got = 0;
    for (struct cmsghdr *header = CMSG_FIRSTHDR(&message); header; header = CMSG_NXTHDR(&message, header)) {
        if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS) continue;
        size_t arrived = (header->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t index = 0; index < arrived; index++) {
            int number;
            memcpy(&number, CMSG_DATA(header) + index * sizeof(int), sizeof number);
            /* The control space holds `room`, so the kernel installs no more; were it to, the
             * extra ones are closed rather than lost. */
            if (got < room) fds[got++] = number; else close(number);
        }
    }
    *count = got;
    *message_flags = message.msg_flags;
    return received;
}

/* ---- ioctl ------------------------------------------------------------------------------------ */

int kmt_ioctl(int fd, unsigned long request, void *arg) { return ioctl(fd, request, arg); }

const unsigned long kmt_DMA_BUF_IOCTL_SYNC = DMA_BUF_IOCTL_SYNC;
const unsigned long kmt_DMA_BUF_IOCTL_EXPORT_SYNC_FILE = DMA_BUF_IOCTL_EXPORT_SYNC_FILE;

const unsigned long kmt_DRM_IOCTL_GEM_CLOSE = DRM_IOCTL_GEM_CLOSE;
const unsigned long kmt_DRM_IOCTL_MODE_CREATE_DUMB = DRM_IOCTL_MODE_CREATE_DUMB;
const unsigned long kmt_DRM_IOCTL_VIRTGPU_RESOURCE_CREATE = DRM_IOCTL_VIRTGPU_RESOURCE_CREATE;
const unsigned long kmt_DRM_IOCTL_VIRTGPU_GETPARAM = DRM_IOCTL_VIRTGPU_GETPARAM;
const unsigned long kmt_DRM_IOCTL_VIRTGPU_TRANSFER_FROM_HOST = DRM_IOCTL_VIRTGPU_TRANSFER_FROM_HOST;
const unsigned long kmt_DRM_IOCTL_VIRTGPU_TRANSFER_TO_HOST = DRM_IOCTL_VIRTGPU_TRANSFER_TO_HOST;
const unsigned long kmt_DRM_IOCTL_VIRTGPU_WAIT = DRM_IOCTL_VIRTGPU_WAIT;
const unsigned long kmt_DRM_IOCTL_VIRTGPU_MAP = DRM_IOCTL_VIRTGPU_MAP;
const unsigned long kmt_DRM_IOCTL_VIRTGPU_RESOURCE_INFO = DRM_IOCTL_VIRTGPU_RESOURCE_INFO;

#ifdef DRM_IOCTL_SYNCOBJ_EVENTFD
_Static_assert(sizeof(struct drm_syncobj_eventfd) == sizeof(struct kmt_drm_syncobj_eventfd),
               "struct kmt_drm_syncobj_eventfd differs from drm.h's");
const unsigned long kmt_DRM_IOCTL_SYNCOBJ_EVENTFD = DRM_IOCTL_SYNCOBJ_EVENTFD;
#else
const unsigned long kmt_DRM_IOCTL_SYNCOBJ_EVENTFD = DRM_IOWR(0xCF, struct kmt_drm_syncobj_eventfd);
#endif

/* ---- futex ------------------------------------------------------------------------------------ */

long kmt_futex_wait(uint32_t *address, uint32_t expected, const struct timespec *deadline, int shared) {
    int op = FUTEX_WAIT_BITSET | (shared ? 0 : FUTEX_PRIVATE_FLAG);
    return syscall(SYS_futex, address, op, expected, deadline, NULL, FUTEX_BITSET_MATCH_ANY);
}

long kmt_futex_wait_for(uint32_t *address, uint32_t expected, int64_t nanoseconds, int shared) {
    struct timespec timeout = {.tv_sec = nanoseconds / 1000000000, .tv_nsec = nanoseconds % 1000000000};
    int op = FUTEX_WAIT | (shared ? 0 : FUTEX_PRIVATE_FLAG);
    return syscall(SYS_futex, address, op, expected, &timeout, NULL, 0);
}

long kmt_futex_wake(uint32_t *address, int count, int shared) {
    int op = FUTEX_WAKE | (shared ? 0 : FUTEX_PRIVATE_FLAG);
    return syscall(SYS_futex, address, op, count, NULL, NULL, 0);
}

const uint32_t kmt_FUTEX_32 = FUTEX_32;

long kmt_futex_waitv(kmt_futex_waitv_entry *waiters, unsigned int count, const struct timespec *deadline) {
    return syscall(SYS_futex_waitv, waiters, count, 0, deadline, CLOCK_MONOTONIC);
}
