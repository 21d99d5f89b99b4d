#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CKMTShims

/// `epoll(7)`: what the process's one event thread (``EventLoop``) waits on. Every call is
/// ``Call/epoll`` for the fault seam.
extension Kernel {
    /// What an epoll registration asks for and what `epoll_wait` reports (`EPOLL*` bits).
    struct EpollEvents: OptionSet, Sendable, Hashable {
        let rawValue: UInt32
        init(rawValue: UInt32) { self.rawValue = rawValue }

        /// `EPOLLIN`
        static let readable = EpollEvents(rawValue: kmt_EPOLLIN)
        /// `EPOLLOUT`
        static let writable = EpollEvents(rawValue: kmt_EPOLLOUT)
        /// `EPOLLERR`: always reported, never needs asking for.
        static let error = EpollEvents(rawValue: kmt_EPOLLERR)
        /// `EPOLLHUP`: always reported, never needs asking for.
        static let hangUp = EpollEvents(rawValue: kmt_EPOLLHUP)
        /// `EPOLLET`: report a condition when it arises, not for as long as it lasts.
        static let edgeTriggered = EpollEvents(rawValue: kmt_EPOLLET)
    }

    /// `epoll_create1(EPOLL_CLOEXEC)`.
    static func epollCreate() throws(Errno) -> FileDescriptor {
        FileDescriptor(adopting: try retrying(.epoll) { kmt_epoll_create() })
    }

    /// `EPOLL_CTL_ADD` of `fd` with `events`; `key` comes back with its events.
    static func epollAdd(_ epoll: BorrowedDescriptor, _ fd: BorrowedDescriptor, events: EpollEvents,
                         key: UInt64) throws(Errno) {
        _ = try retrying(.epoll) { kmt_epoll_ctl(epoll.rawValue, kmt_EPOLL_CTL_ADD, fd.rawValue, events.rawValue, key) }
    }

    /// `EPOLL_CTL_MOD`: new `events` for a registered `fd`.
    static func epollModify(_ epoll: BorrowedDescriptor, _ fd: BorrowedDescriptor, events: EpollEvents,
                            key: UInt64) throws(Errno) {
        _ = try retrying(.epoll) { kmt_epoll_ctl(epoll.rawValue, kmt_EPOLL_CTL_MOD, fd.rawValue, events.rawValue, key) }
    }

    /// `EPOLL_CTL_DEL`; errors are ignored (not subject to the fault seam): a descriptor that is
    /// no longer registered is what the caller wants.
    static func epollRemove(_ epoll: BorrowedDescriptor, _ fd: BorrowedDescriptor) {
        _ = kmt_epoll_ctl(epoll.rawValue, kmt_EPOLL_CTL_DEL, fd.rawValue, 0, 0)
    }

    /// `epoll_wait(2)` until an event or `deadline`: up to 64 (events, key) pairs, none at the
    /// deadline. `EINTR` returns no events (the caller's loop looks at its deadlines again).
    static func epollWait(_ epoll: BorrowedDescriptor, until deadline: Deadline) throws(Errno)
        -> [(events: EpollEvents, key: UInt64)] {
        if let fault = injectedFault(.epoll) {
            if fault == .interrupted { return [] }
            throw fault
        }
        // On the stack: nothing on the heap lives only in a thread that sleeps here (LeakSanitizer
        // took such buffers of an event thread still waiting at exit for leaks).
        let received = withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 64) { events in
            withUnsafeTemporaryAllocation(of: UInt64.self, capacity: 64) { keys in
                let count = kmt_epoll_wait(epoll.rawValue, events.baseAddress, keys.baseAddress, 64,
                                           deadline.pollTimeout)
                guard count >= 0 else { return Result<[(events: EpollEvents, key: UInt64)], Errno>.failure(.current) }
                return .success((0..<Int(count)).map { (EpollEvents(rawValue: events[$0]), keys[$0]) })
            }
        }
        switch received {
        case .success(let events): return events
        case .failure(let error) where error == .interrupted: return []
        case .failure(let error): throw error
        }
    }

    /// Bytes `socket` sent that its peer has not freed yet (`SIOCOUTQ`): for a unix socket, the
    /// messages still queued on the other end.
    static func unsentBytes(_ socket: BorrowedDescriptor) throws(Errno) -> Int {
        var bytes: Int32 = 0
        try ioctl(socket, kmt_SIOCOUTQ, &bytes)
        return Int(bytes)
    }

    /// The length of the first message queued on `socket` (`SIOCINQ`, for a unix datagram or
    /// seqpacket socket): 0 when none is.
    static func queuedMessageBytes(_ socket: BorrowedDescriptor) throws(Errno) -> Int {
        var bytes: Int32 = 0
        try ioctl(socket, kmt_SIOCINQ, &bytes)
        return Int(bytes)
    }

    /// `getpid(2)`: which process this is now (it changes in a `fork()`ed child).
    static var processID: pid_t { getpid() }
}
