/*
 * bench_support.h: the raw primitives the D3DKMT benchmarks compare the library with, and the
 * little plumbing the harness needs (clock, SCM_RIGHTS messages, process statistics).
 *
 * The raw loops are whole loops in C, so that the "raw" column is the bare kernel primitive,
 * with no Swift in it. Functions return 0 (or a count / descriptor) on success and -errno on
 * failure.
 */
#ifndef KMT_BENCH_SUPPORT_H
#define KMT_BENCH_SUPPORT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- clock and process statistics ------------------------------------------------------- */

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t kb_now_ns(void);

/* Open descriptors of this process (entries of /proc/self/fd), or -errno. */
int kb_count_fds(void);

/* A "Key:   123 kB" line of /proc/self/status (e.g. "VmRSS"), in KiB; -1 when absent. */
long kb_status_kib(const char *key);

/* malloc_trim(0): freed heap memory goes back to the kernel, so that VmRSS grows again with
 * what is allocated next (growth measured after an earlier phase freed its objects). */
void kb_trim_heap(void);

/* A line of /proc/meminfo (e.g. "Slab"), in KiB; -1 when absent. */
long kb_meminfo_kib(const char *key);

/* Raises RLIMIT_NOFILE: the soft limit to `want` (and the hard one too, when allowed).
 * Returns the soft limit in force afterwards. */
long kb_raise_fd_limit(long want);

/* The RLIMIT_NOFILE soft limit. */
long kb_fd_limit(void);

/* The CPUs this process may run on, in order, into `cpus` (at most `max`); returns the count. */
int kb_allowed_cpus(int *cpus, int max);

/* Pins the calling process (and what it spawns later) to one CPU. */
int kb_pin_to_cpu(int cpu);

/* Makes standard output line-buffered (in order with standard error on one pipe). */
void kb_line_buffered_stdout(void);

/* Writes a line to standard error. */
void kb_log(const char *text);

/* pipe2(O_CLOEXEC). */
int kb_pipe(int fds[2]);

/* ---- messages with descriptors (SCM_RIGHTS) ------------------------------------------------ */

/* sendmsg of `len` bytes with `nfds` descriptors (at most 16). */
int kb_send(int sock, const void *bytes, size_t len, const int *fds, int nfds);

/* recvmsg into `bytes` (MSG_CMSG_CLOEXEC); the descriptors that came go to `fds` (at most
 * `maxfds`, the rest are closed), their number to `*nfds`. Returns the byte count (0 at EOF). */
ssize_t kb_recv(int sock, void *bytes, size_t cap, int *fds, int maxfds, int *nfds);

/* ---- futex ---------------------------------------------------------------------------------- */

/* Ping-pong on one shared word, the bare futex handoff: `rounds` times, wait until
 * *word == mine (FUTEX_WAIT while it is not), then store `theirs` and FUTEX_WAKE. */
int kb_futex_pingpong(uint32_t *word, uint32_t mine, uint32_t theirs, long rounds);

/* A fence as a bare futex counter: raise *word to `value` and wake its waiters. */
void kb_futex_fence_signal(uint32_t *word, uint32_t value);
/* Wait until *word >= value. */
void kb_futex_fence_wait(uint32_t *word, uint32_t value);

/* Fence ping-pong on two counters: for i in 1...rounds (values base+i), either signal `out`
 * then wait for `in` (first = 1), or wait for `in` then signal `out` (first = 0). */
void kb_futex_fence_pingpong(uint32_t *out, uint32_t *in, uint32_t base, long rounds, int first);

/* ---- pipes ---------------------------------------------------------------------------------- */

/* Pipe ping-pong: `rounds` times, either write a byte to `wfd` then read one from `rfd`
 * (first = 1), or read then write (first = 0). */
int kb_pipe_pingpong(int rfd, int wfd, long rounds, int first);

/* ---- buffers --------------------------------------------------------------------------------- */

/* A memfd of `size` bytes sealed against shrinking and growing: what a software-adapter
 * allocation is. Returns the descriptor (close-on-exec) or -errno. */
int kb_memfd_buffer(uint64_t size);

/* Opens a DRM node read-write, close-on-exec. */
int kb_drm_open(const char *path);

/* A new buffer of at least `size` bytes as a dma-buf descriptor, made the way the library makes
 * one: on virtio-gpu a 2D RESOURCE_CREATE on the render node, elsewhere a dumb buffer on the
 * primary node `card`, exported with PRIME; the creating handle is closed (the dma-buf holds
 * the buffer). */
int kb_drm_buffer(int render, int card, int virtio, uint64_t size);

/* virtio-gpu: waits until the host has processed every command queued so far (a new resource,
 * DRM_IOCTL_VIRTGPU_WAIT on it: the control queue completes in order). After freeing thousands
 * of buffers, the host is still destroying them and, under TCG, takes the guest's CPU while it
 * does; measurements wait for that first. Returns 0 or -errno. */
int kb_virtio_settle(int render);

/* drmPrimeFDToHandle, the GEM handle to `*handle`. */
int kb_prime_import(int render, int dmabuf, uint32_t *handle);

/* DRM_IOCTL_GEM_CLOSE. */
void kb_gem_close(int fd, uint32_t handle);

/* Size of a descriptor's file (fstat; lseek(SEEK_END) for dma-bufs). */
int64_t kb_fd_size(int fd);

/* lock2-cycle: one byte written in every 4 KiB page of map[0, len). */
void kb_touch_pages(void *map, size_t len);
/* mmap(MAP_SHARED, read-write) of fd's first len bytes; NULL on failure. */
void *kb_map(int fd, size_t len);
void kb_unmap(void *map, size_t len);
/* One raw CPU access cycle on a kept mapping: DMA_BUF_IOCTL_SYNC start (dmabuf >= 0), the
 * touches, DMA_BUF_IOCTL_SYNC end; 0 or -errno. */
int kb_sync_touch(void *map, size_t len, int dmabuf);

/* ---- the share-open syscall floor ----------------------------------------------------------
 * The system calls the library's share-open makes, with no work between them: what the
 * shared-handle design costs the kernel. Profiling aid for the share-open rows. */

/* Sharer: the resource's runtime data page (a memfd sized to 128 KiB, its 64-byte header
 * written, sealed), a SOCK_SEQPACKET socket pair, `len` package bytes with the page and `buffer`
 * sent into it, the sending end closed, the handle sent over `control` and closed, the page
 * closed. */
int kb_floor_share(int control, int buffer, const void *package, size_t len);

/* Opener: checks the handle (SO_DOMAIN, SO_TYPE), peeks the package and its descriptors
 * (MSG_PEEK), classifies the buffer (fstatfs, F_GET_SEALS for a memfd) and sizes it (lseek);
 * on DRM (`render` >= 0) imports it and closes the GEM handle; checks the runtime data page
 * the same way and reads its header; closes everything. */
int kb_floor_open(int handle, int render);

/* ---- DRM timeline syncobjs (libdrm) -------------------------------------------------------- */

int kb_syncobj_create(int fd, uint32_t *handle);
int kb_syncobj_export(int fd, uint32_t handle);          /* descriptor or -errno */
int kb_syncobj_import(int fd, int syncobj, uint32_t *handle);
void kb_syncobj_destroy(int fd, uint32_t handle);

/* Timeline ping-pong: for i in 1...rounds (points base+i), drmSyncobjTimelineSignal `out` then
 * drmSyncobjTimelineWait(WAIT_FOR_SUBMIT) for `in` (first = 1), or wait then signal. */
int kb_syncobj_pingpong(int fd, uint32_t out, uint32_t in, uint64_t base, long rounds, int first);

/* ---- GPU fences and GBM (issue 13) ------------------------------------------------------- */

/* A sync_file that has signalled (a signalled binary syncobj's fence): the stand-in for finished
 * GPU work. Descriptor or -errno. */
int kb_signalled_sync_file(int fd);

/* The raw GPU-to-GPU handoff through a timeline, `rounds` times (points base+1...): the producer
 * side puts `sync_file`'s fence at the point (temporary binary syncobj: IMPORT_SYNC_FILE, TRANSFER
 * to the timeline, destroy), the consumer side takes the point's fence out as a sync_file
 * (temporary binary: TRANSFER from the timeline, EXPORT_SYNC_FILE, destroy) and closes it. */
int kb_gpu_fence_handoff(int fd, uint32_t timeline, int sync_file, uint64_t base, long rounds);

/* Raw GBM allocate + share, `rounds` times: gbm_bo_create (width x height ABGR8888, linear,
 * rendering), PRIME export read-write of its handle, a socketpair and a sendmsg of the dma-buf with
 * SCM_RIGHTS (what a handle is: a message queued in a socket), all closed, gbm_bo_destroy.
 * `device` is kb_gbm_device(gbm_fd), made once outside the measured rounds. */
void *kb_gbm_device(int fd);                 /* gbm_create_device, NULL when GBM cannot serve fd */
void kb_gbm_device_destroy(void *device);
int kb_gbm_allocate_share(void *device, int gbm_fd, uint32_t width, uint32_t height, long rounds);

/* open-by-name's floor: the name protocol in C. The sharer's side serves copies of `handle` on
 * a listening socket from a thread of its own, as the library's event thread serves a name; the
 * opener's side checks the directory, connects, waits for the reply, receives the copy and closes
 * the connection. kb_name_floor_lookup returns the received descriptor or -errno. */
struct kb_name_floor;
struct kb_name_floor *kb_name_floor_start(int handle);
const char *kb_name_floor_path(const struct kb_name_floor *floor);
void kb_name_floor_stop(struct kb_name_floor *floor);
int kb_name_floor_lookup(const char *path);

/* open-by-name's fast floor: a lookup without a round trip, in C. The sharer's side publishes a
 * record (a symlink whose target is "pid:fd:dev:ino:fd:dev:ino": the handle's and a keeper's
 * descriptor numbers and identities); the opener's side checks the directory, reads the record,
 * pidfd_open(pid), pidfd_getfd for both descriptors, fstat checks each against the record, polls
 * the keeper (alive: no hang-up), SIOCINQ on the handle (a package queued), closes the keeper and
 * the pidfd. kb_name_fast_floor_lookup returns the handle's copy or -errno. */
struct kb_name_fast_floor;
struct kb_name_fast_floor *kb_name_fast_floor_start(int handle);
const char *kb_name_fast_floor_path(const struct kb_name_fast_floor *floor);
void kb_name_fast_floor_stop(struct kb_name_fast_floor *floor);
int kb_name_fast_floor_lookup(const char *path);

#endif
