#define _GNU_SOURCE
#include "fuzz_support.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

int fuzz_memfd(uint64_t size, const void *contents, size_t contents_size, int seals) {
    int fd = memfd_create("kmt-fuzz", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) return -1;
    if (ftruncate(fd, (off_t)size) != 0) goto fail;
    if (contents_size > size) contents_size = (size_t)size;
    size_t written = 0;
    while (written < contents_size) {
        ssize_t n = pwrite(fd, (const char *)contents + written, contents_size - written, (off_t)written);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) goto fail;
        written += (size_t)n;
    }
    if (seals != 0 && fcntl(fd, F_ADD_SEALS, seals) != 0) goto fail;
    return fd;
fail: {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
}

int fuzz_eventfd(void) { return eventfd(0, EFD_CLOEXEC); }

int fuzz_pipe(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

int fuzz_seqpacket_pair(int fds[2]) { return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds); }

ssize_t fuzz_send(int socket, const void *bytes, size_t size, const int *fds, int count) {
    struct iovec vector = { .iov_base = (void *)bytes, .iov_len = size };
    struct msghdr message = { .msg_iov = &vector, .msg_iovlen = 1 };
    union {
        struct cmsghdr header;
        char space[CMSG_SPACE(sizeof(int) * 8)];
    } control;
    if (count < 0 || count > 8) { errno = EINVAL; return -1; }
    if (count > 0) {
        memset(&control, 0, sizeof control);
        message.msg_control = control.space;
        message.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)count);
        struct cmsghdr *header = CMSG_FIRSTHDR(&message);
        header->cmsg_level = SOL_SOCKET;
        header->cmsg_type = SCM_RIGHTS;
        header->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)count);
        memcpy(CMSG_DATA(header), fds, sizeof(int) * (size_t)count);
    }
    ssize_t sent;
    do sent = sendmsg(socket, &message, MSG_NOSIGNAL); while (sent < 0 && errno == EINTR);
    return sent;
}

ssize_t fuzz_peek(int socket, void *buffer, size_t capacity, int *fds, int max_fds, int *count) {
    struct iovec vector = { .iov_base = buffer, .iov_len = capacity };
    union {
        struct cmsghdr header;
        char space[CMSG_SPACE(sizeof(int) * 253)];
    } control;
    struct msghdr message = { .msg_iov = &vector, .msg_iovlen = 1, .msg_control = control.space,
                              .msg_controllen = sizeof control.space };
    *count = 0;
    ssize_t received;
    do received = recvmsg(socket, &message, MSG_PEEK | MSG_DONTWAIT | MSG_TRUNC | MSG_CMSG_CLOEXEC);
    while (received < 0 && errno == EINTR);
    if (received < 0) return -1;
    for (struct cmsghdr *header = CMSG_FIRSTHDR(&message); header; header = CMSG_NXTHDR(&message, header)) {
        if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS) continue;
        size_t n = (header->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(header) + i * sizeof(int), sizeof fd);
            if (*count < max_fds) fds[(*count)++] = fd; else close(fd);
        }
    }
    return received;
}

int fuzz_open_descriptor_count(void) {
    DIR *directory = opendir("/proc/self/fd");
    if (!directory) return -1;
    int count = 0;
    struct dirent *entry;
    while ((entry = readdir(directory)) != NULL) {
        if (entry->d_name[0] != '.') count++;
    }
    closedir(directory);
    return count - 1; /* the directory stream's own descriptor */
}
