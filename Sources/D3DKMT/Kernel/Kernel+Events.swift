#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CKMTShims

/// eventfds (the Windows event of an async wait, the name thread's wake-up) and `poll(2)`.
extension Kernel {
    /// `eventfd(2)`, close-on-exec and non-blocking.
    static func eventfd() throws(Errno) -> FileDescriptor {
        let flags = Int32(EFD_CLOEXEC | EFD_NONBLOCK)
        return FileDescriptor(adopting: try retrying(.eventfd) { CKMTShims.eventfd(0, flags) })
    }

    /// Adds 1 to an eventfd's counter, making it readable: the Windows event of an async wait.
    static func eventfdSignal(_ fd: BorrowedDescriptor) throws(Errno) {
        var one: UInt64 = 1
        _ = try retrying(.write) { write(fd.rawValue, &one, MemoryLayout<UInt64>.size) }
    }

    /// Reads (and so resets) an eventfd's counter; nothing to read (`EAGAIN` on a non-blocking
    /// eventfd) and every other error are ignored.
    static func eventfdDrain(_ fd: BorrowedDescriptor) {
        var counter: UInt64 = 0
        _ = try? retrying(.read) { read(fd.rawValue, &counter, MemoryLayout<UInt64>.size) }
    }

    /// `poll(2)` until one of `descriptors` has an event or `deadline`; the `revents` of each.
    /// `EINTR` restarts it with the time that is left.
    static func poll(
        _ descriptors: [BorrowedDescriptor], events: Int16 = Int16(POLLIN), until deadline: Deadline
    ) throws(Errno) -> [Int16] {
        var entries = descriptors.map { pollfd(fd: $0.rawValue, events: events, revents: 0) }
        while true {
            if let fault = injectedFault(.poll) {
                if fault == .interrupted { continue }
                throw fault
            }
            let result = Glibc.poll(&entries, nfds_t(entries.count), deadline.pollTimeout)
            if result >= 0 { return entries.map(\.revents) }
            if Errno.current != .interrupted { throw .current }
        }
    }

    /// `poll(2)` for readability until `deadline`; true when readable.
    static func waitReadable(_ fd: BorrowedDescriptor, until deadline: Deadline) throws(Errno) -> Bool {
        try poll([fd], until: deadline)[0] & Int16(POLLIN) != 0
    }
}
