#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A pthread mutex, for state held across calls that may block in the kernel (an allocation's
/// CPU access waits in `DMA_BUF_IOCTL_SYNC`) and for the C ABI's handle table. Not
/// `Synchronization.Mutex`: on Linux that spins in user space before sleeping (most of the CPU time
/// of eight threads calling the C ABI on two cores went there), and ThreadSanitizer does not see it
/// as synchronisation, so every access under it was reported as a race and real races could not be
/// told apart.
package final class PThreadMutex: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    package init() {
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Runs `body` holding the mutex.
    package func withLock<R: ~Copyable, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }
}
