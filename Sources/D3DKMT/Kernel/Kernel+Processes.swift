#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Synchronization

/// This process, other processes, threads and the environment.
extension Kernel {
    /// This process's id, cached (the keyed mutex reads it on every acquire and release); a
    /// `fork` child starts again from `getpid()`.
    static var processID: Int32 {
        let cached = cachedProcessID.load(ordering: .relaxed)
        if cached != 0 { return cached }
        _ = forkHandlerInstalled
        let pid = getpid()
        cachedProcessID.store(pid, ordering: .relaxed)
        return pid
    }

    private static let forkHandlerInstalled: Bool = {
        pthread_atfork(nil, nil, { cachedProcessID.store(0, ordering: .relaxed) }) == 0
    }()

    /// The effective user id.
    static var userID: uid_t { geteuid() }

    /// `getenv(3)`: the value of environment variable `name`, nil when it is not set.
    static func environment(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }

    /// Whether process `pid` is still running: it exists (`kill(pid, 0)`: `ESRCH` means gone,
    /// `EPERM` that it belongs to someone else) and is not a zombie waiting to be reaped (state
    /// `Z` or `X` in `/proc/PID/stat`), which can never release anything again.
    static func processRunning(_ pid: Int32) -> Bool {
        guard pid > 0 else { return false }
        let exists: Bool
        if let fault = injectedFault(.kill) {
            exists = fault != Errno(rawValue: ESRCH)
        } else {
            exists = kill(pid, 0) == 0 || Errno.current != Errno(rawValue: ESRCH)
        }
        guard exists else { return false }
        // "pid (comm) S ...": the state follows the last ')' (comm may hold anything).
        guard let stat = readSmallFile("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")") else {
            return true
        }
        let state = stat[stat.index(after: close)...].drop { $0 == " " }.first
        return state != "Z" && state != "X"
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

/// ``Kernel/processID``'s cache; 0 until read, and again in a `fork` child.
private let cachedProcessID = Atomic<Int32>(0)

private final class ThreadBody: Sendable {
    let run: @Sendable () -> Void
    init(_ run: @escaping @Sendable () -> Void) { self.run = run }
}
