/// The `hAsyncEvent` side of CPU waits: an eventfd the caller passes as the Windows event, and
/// waits that end by signalling it.
enum AsyncWait {
    /// Refuses what is not an eventfd (`/proc/self/fd/N` names `anon_inode:[eventfd]`).
    ///
    /// - Throws: `STATUS_INVALID_PARAMETER`.
    static func checkEventfd(_ fd: Int32) throws(NTError) {
        guard fd >= 0, Kernel.readLink("/proc/self/fd/\(fd)") == "anon_inode:[eventfd]" else {
            throw NTError(.invalidParameter, "descriptor \(fd) is not an eventfd")
        }
    }

    /// Makes the eventfd readable now.
    static func signal(_ fd: Int32) throws(NTError) {
        do {
            try Kernel.eventfdSignal(BorrowedDescriptor(unowned: fd))
        } catch {
            throw error.nt("signalling an eventfd")
        }
    }

    /// Runs `wait` on a helper thread that holds a duplicate of `eventfd` (the caller keeps its
    /// own) and signals it when `wait` returns; when `wait` fails (a device error) the event
    /// stays unsignalled, as a Windows event does when its wait is abandoned.
    static func start(signalling eventfd: Int32,
                      _ wait: @escaping @Sendable () throws(NTError) -> Void) throws(NTError) {
        let event: FileDescriptor
        do {
            event = try Kernel.duplicate(BorrowedDescriptor(unowned: eventfd))
        } catch {
            throw error.nt("duplicating an eventfd")
        }
        let waiter = Waiter(event: event, wait: wait)
        do { try Kernel.detachedThread { waiter.run() } } catch { throw error.nt("starting an async wait") }
    }

    /// The helper thread's state: it owns its eventfd duplicate and, through `wait`, keeps the
    /// objects alive until the wait ends.
    private final class Waiter: Sendable {
        let event: FileDescriptor
        let wait: @Sendable () throws(NTError) -> Void

        init(event: consuming FileDescriptor, wait: @escaping @Sendable () throws(NTError) -> Void) {
            self.event = event
            self.wait = wait
        }

        func run() {
            do {
                try wait()
                try? Kernel.eventfdSignal(event.borrowed)
            } catch {
                // The event stays unsignalled.
            }
        }
    }
}
