#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CKMTShims
import Synchronization

/// This process, other processes, threads and the environment.
extension Kernel {
    /// The effective user id.
    static var userID: uid_t { geteuid() }

    /// `getenv(3)`: the value of environment variable `name`, nil when it is not set.
    static func environment(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }

    /// `sched_yield(2)`: lets another thread (or process) run before a spinning loop looks again.
    static func yield() {
        _ = sched_yield()
    }

    /// Runs `body` on a new detached thread (`pthread_create`, ``Call/thread``) called `name`
    /// (`PR_SET_NAME`: at most 15 bytes).
    static func detachedThread(named name: String, _ body: @escaping @Sendable () -> Void) throws(Errno) {
        try checkFault(.thread)
        let box = Unmanaged.passRetained(ThreadBody {
            // The thread's name (`/proc/self/task/TID/comm`, at most 15 bytes), for ps, gdb and tests.
            _ = name.withCString { kmt_set_thread_name($0) }
            body()
        })
        var thread = pthread_t()
        let result = pthread_create(&thread, nil, { argument in
            let body = Unmanaged<ThreadBody>.fromOpaque(argument!).takeRetainedValue()
            body.run()
            return nil
        }, box.toOpaque())
        guard result == 0 else {
            box.release()
            throw Errno(rawValue: result)
        }
        pthread_detach(thread)
    }
}

private final class ThreadBody: Sendable {
    let run: @Sendable () -> Void
    init(_ run: @escaping @Sendable () -> Void) { self.run = run }
}

/// A plain pthread mutex, for what must be held across `fork()`: `pthread_atfork` handlers lock
/// and unlock it outside any Swift scope, which `Synchronization.Mutex` cannot do.
final class ForkGuard: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    init() {
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
    }

    func lock() { pthread_mutex_lock(mutex) }
    func unlock() { pthread_mutex_unlock(mutex) }
}

extension Kernel {
    /// `pthread_atfork(3)`: `prepare` runs in the forking thread before `fork()`, `parent` and
    /// `child` after it in each process. Handlers stay registered for the life of the process.
    static func atFork(prepare: @escaping @convention(c) () -> Void, parent: @escaping @convention(c) () -> Void,
                       child: @escaping @convention(c) () -> Void) {
        _ = pthread_atfork(prepare, parent, child)
    }
}

/// A value behind a plain pthread mutex (`PTHREAD_MUTEX_NORMAL`): the library's lock, used instead
/// of `Synchronization.Mutex`, whose Linux implementation records its owner by a thread id that
/// goes stale in a `fork()`ed child (the child's main thread then crashes the first time another
/// thread waits for a lock it holds). ThreadSanitizer sees these locks, too. Also for state held
/// across calls that may block in the kernel (an allocation's CPU access waits in
/// `DMA_BUF_IOCTL_SYNC`), and, in the C ABI, its handle table (package access).
package final class ForkSafeMutex<Value: ~Copyable>: @unchecked Sendable {
    /// The mutex, and after it the value, in one allocation of the lock's own. Behind pointers, not
    /// in a stored `var`: the value's accesses are the lock's to guard, and a class property would
    /// cost a dynamic exclusivity check on every `withLock`.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let value: UnsafeMutablePointer<Value>

    /// Where the value starts after the mutex.
    private static var valueOffset: Int {
        let alignment = MemoryLayout<Value>.alignment
        return (MemoryLayout<pthread_mutex_t>.stride + alignment - 1) / alignment * alignment
    }

    package init(_ value: consuming Value) {
        let memory = UnsafeMutableRawPointer.allocate(
            byteCount: Self.valueOffset + MemoryLayout<Value>.size,
            alignment: max(MemoryLayout<pthread_mutex_t>.alignment, MemoryLayout<Value>.alignment))
        mutex = memory.bindMemory(to: pthread_mutex_t.self, capacity: 1)
        pthread_mutex_init(mutex, nil)
        self.value = (memory + Self.valueOffset).bindMemory(to: Value.self, capacity: 1)
        self.value.initialize(to: value)
    }

    deinit {
        value.deinitialize(count: 1)
        pthread_mutex_destroy(mutex)
        UnsafeMutableRawPointer(mutex).deallocate()
    }

    /// Runs `body` with the value, the lock held.
    package func withLock<R: ~Copyable, E: Error>(_ body: (inout Value) throws(E) -> R) throws(E) -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value.pointee)
    }
}

extension Kernel {
    /// `getrlimit(RLIMIT_NOFILE)`: the soft and hard limits on open descriptors.
    static func descriptorLimits() -> (soft: UInt64, hard: UInt64) {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return (0, 0) }
        return (UInt64(limit.rlim_cur), UInt64(limit.rlim_max))
    }

    /// `setrlimit(RLIMIT_NOFILE)` with the soft limit `soft` (the hard limit unchanged).
    static func setDescriptorSoftLimit(_ soft: UInt64) throws(Errno) {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { throw .current }
        limit.rlim_cur = rlim_t(soft)
        guard setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { throw .current }
    }
}
