/*
 * fuzz_support.h: what the fuzz harness cannot write in Swift (the CMSG_* macros, memfd seals).
 * Every function returns -1 with errno set on failure, like the system calls it wraps.
 */
#ifndef KMT_FUZZ_SUPPORT_H
#define KMT_FUZZ_SUPPORT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Seal bits (F_SEAL_*), for fuzz_memfd. */
enum {
    FUZZ_SEAL_SEAL = 1,
    FUZZ_SEAL_SHRINK = 2,
    FUZZ_SEAL_GROW = 4,
    FUZZ_SEAL_WRITE = 8,
};

/* A close-on-exec memfd of `size` bytes holding `contents` (at most `size` of them) at offset 0,
 * with `seals` added (0: none). */
int fuzz_memfd(uint64_t size, const void *contents, size_t contents_size, int seals);

/* A close-on-exec eventfd. */
int fuzz_eventfd(void);

/* A close-on-exec pipe. */
int fuzz_pipe(int fds[2]);

/* A close-on-exec AF_UNIX SOCK_SEQPACKET socket pair. */
int fuzz_seqpacket_pair(int fds[2]);

/* sendmsg of one datagram of `size` bytes with `count` descriptors attached as SCM_RIGHTS
 * (count 0: none). Returns the bytes sent. */
ssize_t fuzz_send(int socket, const void *bytes, size_t size, const int *fds, int count);

/* recvmsg with MSG_PEEK | MSG_DONTWAIT | MSG_CMSG_CLOEXEC of the first datagram queued on
 * `socket`: its bytes into `buffer` (at most `capacity`), the descriptors that came with it into
 * `fds` (at most `max_fds`; `*count` receives how many). The caller closes them. Returns the
 * datagram's full length (MSG_TRUNC), which may exceed `capacity`. */
ssize_t fuzz_peek(int socket, void *buffer, size_t capacity, int *fds, int max_fds, int *count);

/* Open descriptors of this process (/proc/self/fd), -1 when it cannot be read. */
int fuzz_open_descriptor_count(void);

/* libFuzzer's driver (compiler-rt, LLVM 12 and later), for a program with its own main. */
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif
