#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
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

    /// Runs `body` on a new detached thread (`pthread_create`, ``Call/thread``).
    static func detachedThread(_ body: @escaping @Sendable () -> Void) throws(Errno) {
        try checkFault(.thread)
        let box = Unmanaged.passRetained(ThreadBody(body))
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
