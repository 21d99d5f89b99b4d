/*
 * kmt_test.h - the harness every C ABI test program shares, and the D3DKMT
 * helpers more than one of them calls. Written against <d3dkmthk.h> only.
 *
 * Harness: check() and the EXPECT_* / CHECK macros count passed and failed
 * checks; phase() arms a hang guard (SIGALRM names the phase and ends the
 * program); count_fds() / count_threads() / settle() / quiet_counts() compare
 * the process's descriptors and threads with a baseline; spawn_child() re-runs
 * this program (/proc/self/exe) as a child on an inherited copy of a handle.
 *
 * D3DKMT helpers: adapters, devices, resources (the shared two-allocation
 * resource of the sharing tests, with its private data), lock, open buffers,
 * keyed mutexes (v1 and v2), sync objects, names, and the per-adapter loop of
 * the feature programs (sharing, rejections, keyed_mutex, sync_objects).
 *
 * Every program prints failure details on stderr and, as its last line,
 * "N passed, M failed" (test_finish()); it exits 0 only if nothing failed.
 */
#ifndef KMT_TEST_H
#define KMT_TEST_H

#include <d3dkmthk.h>

#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ------------------------------------------------------------------------ */
/* Harness                                                                  */
/* ------------------------------------------------------------------------ */

extern int passed;
extern int failed;
extern const char *who;                  /* "parent", or the child's name */
extern const char *volatile current_phase;

/* For the parent (no arguments, else usage and exit status 2): line-buffered
 * stdout, the phase hang guard of `phase_seconds` per phase, SIGPIPE ignored
 * (a child that dies must not kill us through a pipe). */
void test_start(int argc, char **argv, unsigned phase_seconds);
/* Prints "N passed, M failed"; returns the exit status. */
int test_finish(void);
void phase(const char *name);

void check(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void check_at(const char *file, int line, int ok, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* A check with its source file and line. */
#define CHECK(cond, ...) check_at(__FILE__, __LINE__, (cond), __VA_ARGS__)

/* Checks that an NTSTATUS is the expected one. */
#define EXPECT_STATUS(expected, call)                                                           \
    do {                                                                                        \
        NTSTATUS st_ = (call);                                                                  \
        check(st_ == (expected), "%s:%d: %s returned 0x%08" PRIX32 ", expected 0x%08" PRIX32, \
              __FILE__, __LINE__, #call, (uint32_t)st_, (uint32_t)(expected));                  \
    } while (0)

#define EXPECT_OK(call) EXPECT_STATUS(STATUS_SUCCESS, call)

#define KMT_PRESET   0x1eadbeedu   /* Wine's and the Windows test's "invalid" handle preset */
#define NO_TIMEOUT   INT64_MIN     /* km_acquire: pTimeout NULL (wait for ever) */
#define MS_100NS     (-10000LL)    /* one millisecond as an NT relative timeout */
#define SHARE_ACCESS (STANDARD_RIGHTS_READ | SHARED_ALLOCATION_WRITE)

/* ------------------------------------------------------------------------ */
/* Process state and time                                                   */
/* ------------------------------------------------------------------------ */

int count_fds(void);      /* open descriptors of this process */
int count_threads(void);  /* threads of this process */
/* Descriptors and threads (want_threads < 0: descriptors only), given up to
 * 3 s to come back to the baseline: a library helper thread that ends an
 * async wait closes its copy of the eventfd just after signalling it. */
void settle(int want_fds, int want_threads, int *fds, int *threads);
int count_fds_settled(int want);
/* The baseline: descriptors and threads once they have held still for
 * 200 ms (up to 5 s). */
void quiet_counts(int *fds, int *threads);
/* count_fds() after a keyed mutex has been created and destroyed once, and
 * (hDevice non-zero) an allocation on hDevice: the library may open things on
 * first use (the adapter list a keyed mutex takes its timeline from; the
 * event thread, with its epoll set and wake-up eventfd, started here by a
 * keyed mutex with a global handle; a device's allocator, GBM, which keeps
 * its descriptors while the device lives). */
int warmed_up_fds(D3DKMT_HANDLE hDevice);

uint64_t now_ns(void);
LONGLONG nt_system_time(void);  /* Windows system time, for absolute NT timeouts */

/* 1 if fd becomes readable within timeout_ms, 0 if not, -1 on error. */
int readable(int fd, int timeout_ms);
int new_eventfd(void);          /* an EFD_CLOEXEC | EFD_NONBLOCK eventfd, checked */
int read_byte(int fd, int timeout_ms);  /* -1 on timeout or EOF */
void write_byte(int fd, unsigned char c);

/* ------------------------------------------------------------------------ */
/* Children                                                                 */
/* ------------------------------------------------------------------------ */

/* A copy of fd that a child inherits (no FD_CLOEXEC), as a decimal string in
 * buf; -1 (unchecked) for fd < 0. */
int inheritable(int fd, char *buf, size_t size);
/* execv("/proc/self/exe", args) in a fork; returns the pid or -1. */
pid_t spawn(char *const args[]);
/* Starts `<argv0> <mode> <fd> <LUID low> <LUID high> [extra...]` on an
 * inherited copy of h (the extras may be NULL); returns its pid or -1. */
pid_t spawn_child(const char *argv0, const char *mode, HANDLE h, LUID luid, const char *extra1,
                  const char *extra2, const char *extra3, const char *extra4);
/* For the child: argv[2..4] of spawn_child; 0 if there are too few. */
int child_args(int argc, char **argv, int *fd, LUID *luid);
int wait_child(pid_t pid);      /* the wait status, or -1 */
void check_child_exit(const char *mode, int status);

/* ------------------------------------------------------------------------ */
/* Adapters, devices, allocations                                           */
/* ------------------------------------------------------------------------ */

/* D3DKMTEnumAdapters2 twice (sizes, then the list), checked, in phase
 * "enumerating adapters"; never NULL. */
D3DKMT_ADAPTERINFO *enum_adapters(ULONG *count);
void close_adapters(D3DKMT_ADAPTERINFO *adapters, ULONG count);
/* KMTQAITYPE_LINUX_DRM_INFO, with its strings terminated. */
NTSTATUS query_linux_info(D3DKMT_HANDLE hAdapter, D3DKMT_LINUX_ADAPTER_INFO *li);

NTSTATUS open_adapter(LUID luid, D3DKMT_HANDLE *ph);
NTSTATUS close_adapter(D3DKMT_HANDLE hAdapter);
NTSTATUS create_device(D3DKMT_HANDLE hAdapter, D3DKMT_HANDLE *ph);
NTSTATUS destroy_device(D3DKMT_HANDLE hDevice);
/* Opens the adapter with this LUID and a device on it, checked (children). */
int open_device_by_luid(LUID luid, D3DKMT_HANDLE *phAdapter, D3DKMT_HANDLE *phDevice);
/* A child's start: `who` is `name`, a 120 s alarm (a hang must fail the
 * test, not stall it), then open_device_by_luid. */
int start_child(const char *name, LUID luid, D3DKMT_HANDLE *phAdapter, D3DKMT_HANDLE *phDevice);
/* D3DKMTDestroyAllocation (v1) or D3DKMTDestroyAllocation2 of a list, or of a
 * whole resource (list NULL, count 0). */
NTSTATUS destroy_alloc(int v1, D3DKMT_HANDLE hDevice, D3DKMT_HANDLE hResource, const D3DKMT_HANDLE *list,
                       UINT count);
NTSTATUS destroy_resource(D3DKMT_HANDLE hDevice, D3DKMT_HANDLE hResource);
NTSTATUS lock(D3DKMT_HANDLE hDevice, D3DKMT_HANDLE hAllocation, uint8_t **pp);
NTSTATUS unlock(D3DKMT_HANDLE hDevice, D3DKMT_HANDLE hAllocation);
/* close() of an NT handle's descriptor, checked; nothing for NULL. */
void close_handle(HANDLE h, const char *what);

/* The shared resource of the sharing, rejection and keyed mutex tests. */
#define ALLOCATION_SIZE    65536u
#define NUM_ALLOCATIONS    2u
#define RUNTIME_DATA_SIZE  16u
#define RESOURCE_DATA_SIZE 8u
#define KM_DATA_SIZE       8u      /* keyed mutex private data: one UINT64 */

/* Each allocation's private driver data: the descriptor the library reads,
 * followed by bytes of our own that must travel with the allocation. */
typedef struct {
    D3DKMT_LINUX_ALLOCATION_DESC desc;
    uint8_t tail[8];
} alloc_private_t;
#define ALLOC_TAIL_SIZE sizeof(((alloc_private_t *)0)->tail)

void fill_runtime_data(uint8_t *p);
void fill_resource_data(uint8_t *p);
void fill_alloc_private(alloc_private_t *p, unsigned index);
void fill_km_data(uint8_t *p);

/* Creates a resource of `count` allocations of ALLOCATION_SIZE bytes.
 * shared != 0 sets CreateResource, CreateShared and NtSecuritySharing;
 * otherwise only CreateResource. */
NTSTATUS create_resource(D3DKMT_HANDLE hDevice, unsigned count, int shared, D3DKMT_HANDLE *phResource,
                         D3DKMT_HANDLE *phAllocations);

/* Buffers for D3DKMTOpenResourceFromNtHandle, sized from the query. */
typedef struct {
    D3DKMT_QUERYRESOURCEINFOFROMNTHANDLE query;
    D3DKMT_OPENRESOURCEFROMNTHANDLE open;
    D3DDDI_OPENALLOCATIONINFO2 allocs[NUM_ALLOCATIONS + 1];
    uint8_t runtime[RUNTIME_DATA_SIZE];
    uint8_t resdata[RESOURCE_DATA_SIZE];
    uint8_t *total;
} open_buffers_t;

/* Queries the sizes and prepares exactly-sized buffers. */
NTSTATUS query_for_open(D3DKMT_HANDLE hDevice, HANDLE h, open_buffers_t *b);
/* Fills the open request for `numAllocations` entries and a total buffer of
 * `totalSize` bytes, from a successful query_for_open. */
void prepare_open(D3DKMT_HANDLE hDevice, HANDLE h, open_buffers_t *b, UINT numAllocations, UINT totalSize);
void free_open_buffers(open_buffers_t *b);

/* ------------------------------------------------------------------------ */
/* Keyed mutexes                                                            */
/* ------------------------------------------------------------------------ */

/* v1 (D3DKMTCreateKeyedMutex) or v2; v2 with nt sets NtSecuritySharing. The
 * out handles are preset to KMT_PRESET; *pShared (if not NULL) receives
 * hSharedHandle. */
NTSTATUS km_create_ex(int v1, UINT64 initial, int nt, const void *data, UINT size, D3DKMT_HANDLE *ph,
                      D3DKMT_HANDLE *pShared);
/* A v2 keyed mutex released with `key`, with `size` bytes of private data
 * (NtSecuritySharing, as a runtime that shares it sets). */
NTSTATUS km_create(UINT64 key, const void *data, UINT size, D3DKMT_HANDLE *ph);
NTSTATUS km_open(HANDLE h, void *data, UINT size, D3DKMT_HANDLE *ph);
NTSTATUS km_destroy(D3DKMT_HANDLE h);
/* timeout: an NT timeout (0 tries, < 0 relative, > 0 absolute) or NO_TIMEOUT
 * for a NULL pTimeout. FenceValue is preset to `fence_preset`; *pFence (if
 * not NULL) receives it. km_acquire: v2 with a fence preset of UINT64_MAX. */
NTSTATUS km_acquire_ex(int v1, D3DKMT_HANDLE h, UINT64 key, LONGLONG timeout, UINT64 fence_preset,
                       UINT64 *pFence, void *data, UINT size);
NTSTATUS km_acquire(D3DKMT_HANDLE h, UINT64 key, LONGLONG timeout, UINT64 *pFence, void *data, UINT size);
/* v1 (no private data) or v2. */
NTSTATUS km_release_ex(int v1, D3DKMT_HANDLE h, UINT64 key, UINT64 fence, const void *data, UINT size);
NTSTATUS km_release(D3DKMT_HANDLE h, UINT64 key, UINT64 fence, const void *data, UINT size);

/* ------------------------------------------------------------------------ */
/* Sync objects                                                             */
/* ------------------------------------------------------------------------ */

#define SYNC_SHARED_NT 0x3u /* D3DDDI_SYNCHRONIZATIONOBJECT_FLAGS Shared | NtSecuritySharing */

/* D3DKMTCreateSynchronizationObject2 of `type` with the raw `flags`, starting
 * at `initial`; hSyncObject and SharedHandle are preset to KMT_PRESET. *pva
 * (if not NULL) receives a monitored fence's FenceValueCPUVirtualAddress,
 * *pShared (if not NULL) SharedHandle. */
NTSTATUS sync_create_ex(D3DKMT_HANDLE hDevice, D3DDDI_SYNCHRONIZATIONOBJECT_TYPE type, UINT flags, UINT64 initial,
                        D3DKMT_HANDLE *ph, const UINT64 **pva, D3DKMT_HANDLE *pShared);
/* Shared | NtSecuritySharing. */
NTSTATUS sync_create(D3DKMT_HANDLE hDevice, D3DDDI_SYNCHRONIZATIONOBJECT_TYPE type, UINT64 initial,
                     D3DKMT_HANDLE *ph, const UINT64 **pva);
NTSTATUS sync_destroy(D3DKMT_HANDLE h);
/* D3DKMTOpenSyncObjectFromNtHandle, hSyncObject preset to KMT_PRESET. */
NTSTATUS sync_open1(HANDLE h, D3DKMT_HANDLE *ph);
/* D3DKMTOpenSyncObjectFromNtHandle2 with Flags preset to `flags`; *pva and
 * *pFlags (if not NULL) receive the CPU address and the Flags written. */
NTSTATUS sync_open2_ex(D3DKMT_HANDLE hDevice, HANDLE h, UINT flags, D3DKMT_HANDLE *ph, const UINT64 **pva,
                       UINT *pFlags);
NTSTATUS sync_open2(D3DKMT_HANDLE hDevice, HANDLE h, D3DKMT_HANDLE *ph, const UINT64 **pva);
NTSTATUS sync_signal_flags(D3DKMT_HANDLE hDevice, UINT count, const D3DKMT_HANDLE *hs, const UINT64 *values,
                           UINT flags);
NTSTATUS sync_signal(D3DKMT_HANDLE hDevice, D3DKMT_HANDLE h, UINT64 value);
/* efd < 0: a blocking wait (hAsyncEvent NULL); else async through the
 * eventfd. flags: the raw D3DDDI_WAITFORSYNCHRONIZATIONOBJECTFROMCPU_FLAGS. */
NTSTATUS sync_wait_flags(D3DKMT_HANDLE hDevice, UINT count, const D3DKMT_HANDLE *hs, const UINT64 *values,
                         UINT flags, int efd);
NTSTATUS sync_wait(D3DKMT_HANDLE hDevice, D3DKMT_HANDLE h, UINT64 value, int efd);
/* A wait through an eventfd that must become readable within timeout_ms, else
 * STATUS_TIMEOUT: a library that misses a value fails instead of hanging. */
NTSTATUS sync_wait_bounded(D3DKMT_HANDLE hDevice, D3DKMT_HANDLE h, UINT64 value, int timeout_ms);
/* Checks that h has reached `value`: an async wait through an eventfd must
 * fire within 5 s, and then a blocking wait must return STATUS_SUCCESS.
 * Returns 1 when both held. */
int check_reached(D3DKMT_HANDLE hDevice, D3DKMT_HANDLE h, UINT64 value, const char *what);
/* The value a monitored fence's CPU address holds (another process may be
 * writing it); UINT64_MAX for NULL. */
UINT64 fence_at(const UINT64 *va);

/* A resource of one allocation, a keyed mutex released with `key` (creation
 * data from fill_km_data) and a monitored fence starting at 0, shared as one
 * handle (cObjects 3). make_guarded returns 0 when something could not be
 * made; destroy_guarded destroys what was. */
typedef struct {
    D3DKMT_HANDLE hResource, hAllocation, hKeyedMutex, hSync;
    const UINT64 *fenceVA;
    HANDLE h;
} guarded_t;

int make_guarded(D3DKMT_HANDLE hDevice, UINT64 key, guarded_t *g);
void destroy_guarded(D3DKMT_HANDLE hDevice, guarded_t *g);

/* ------------------------------------------------------------------------ */
/* Names                                                                    */
/* ------------------------------------------------------------------------ */

typedef struct {
    WCHAR buffer[300];
    UNICODE_STRING string;
    OBJECT_ATTRIBUTES attributes;
} nt_name_t;

/* OBJECT_ATTRIBUTES naming `name` (NULL: no name) as DXVK, vkd3d and Wine
 * build them: Length = bytes without the terminator, MaximumLength = Length
 * + 2. */
OBJECT_ATTRIBUTES *make_attributes(nt_name_t *n, const char *name, ULONG attributes, void *sd);
/* ASCII lowercase of s into buf; returns buf. */
const char *lower(char *buf, size_t size, const char *s);
/* D3DKMTOpenNtHandleFromName / D3DKMTOpenSyncObjectNtHandleFromName, the out
 * handle preset to KMT_PRESET. */
NTSTATUS open_name(DWORD access, OBJECT_ATTRIBUTES *oa, HANDLE *ph);
NTSTATUS open_sync_name(DWORD access, OBJECT_ATTRIBUTES *oa, HANDLE *ph);

/* ------------------------------------------------------------------------ */
/* The per-adapter loop of the feature programs                             */
/* ------------------------------------------------------------------------ */

typedef struct {
    const char *argv0;
    unsigned index;
    const D3DKMT_ADAPTERINFO *ai;         /* this adapter */
    const D3DKMT_ADAPTERINFO *adapters;   /* all of them (EnumAdapters2) */
    ULONG count;
    D3DKMT_LINUX_ADAPTER_INFO li;
    int info_ok;                          /* li was queried */
    D3DKMT_HANDLE hDevice;                /* a device on this adapter */
} kmt_adapter_t;

/* For every adapter of EnumAdapters2: queries its Linux info (checked),
 * creates a device, calls test(a) in phase `phase_name`, destroys the device
 * and prints one line for the adapter. Then calls after(adapters, count) (if
 * not NULL), closes the adapters and returns test_finish(). */
int run_per_adapter(const char *argv0, const char *phase_name, void (*test)(kmt_adapter_t *a),
                    void (*after)(const D3DKMT_ADAPTERINFO *adapters, ULONG count));

/* Sync objects need the software adapter or timeline syncobjs. On an adapter
 * without (vgem) creation is STATUS_NOT_SUPPORTED (checked): prints that
 * `what` is skipped and returns 0. *software receives whether this is the
 * software adapter. */
int sync_objects_supported(const kmt_adapter_t *a, const char *what, int *software);

#endif
