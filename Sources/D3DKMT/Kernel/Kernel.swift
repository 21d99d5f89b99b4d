#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CKMTShims

/// The one layer that calls the kernel.
///
/// Every system call and ioctl the library makes goes through here: `errno` is read here and
/// nowhere else, `EINTR` is retried here, and the results come back as Swift values or a thrown
/// ``Errno``. Descriptors come back as owned ``FileDescriptor``s, always close-on-exec.
///
/// One file per family: files and memory (`Kernel+Files`), time (`Kernel+Time`), processes and
/// threads (`Kernel+Processes`), futexes, sockets, `SCM_RIGHTS` messages, eventfd and poll
/// (`Kernel+Events`), DRM and dma-buf ioctls, syncobjs. In DEBUG builds every wrapper first asks
/// the fault seam (`Kernel+Faults`) whether a test planned a failure for its ``Call``.
enum Kernel {
    /// The syscall families the fault seam tells apart: one per system call (or ioctl family).
    enum Call: Hashable, Sendable, CaseIterable {
        case open, dup, memfd, ftruncate, fcntl, lseek, pread, pwrite, read, write
        case fstat, fstatfs, lstat, mkdir, mmap, readlink, symlink, rename
        case socket, socketpair, sockopt, bind, listen, connect, accept, sendmsg, recvmsg
        case poll, eventfd, epoll, futex, futexWaitv, ioctl, thread
        case pidfdOpen, pidfdGetfd
    }

    /// The fault seam: the error a test planned for the next `call` on this task, if any. Always
    /// nil, and compiled away, in release builds.
    @inline(__always)
    static func injectedFault(_ call: Call) -> Errno? {
        #if DEBUG
        return FaultPlan.current?.next(call)
        #else
        return nil
        #endif
    }

    /// Throws the error a test planned for `call`; a planned `EINTR` is taken as an interrupted
    /// call that the wrapper restarts, so it is consumed and skipped.
    @inline(__always)
    static func checkFault(_ call: Call) throws(Errno) {
        #if DEBUG
        while let fault = injectedFault(call) {
            if fault != .interrupted { throw fault }
        }
        #endif
    }

    /// Runs `body` (system call `call`) until it does not fail with `EINTR`; a result of -1
    /// throws the current `errno`. A fault planned for `call` fails it the same way.
    @inline(__always)
    static func retrying<T: FixedWidthInteger>(_ call: Call, _ body: () -> T) throws(Errno) -> T {
        while true {
            if let fault = injectedFault(call) {
                if fault == .interrupted { continue }
                throw fault
            }
            let result = body()
            if result != -1 { return result }
            let error = Errno.current
            if error != .interrupted { throw error }
        }
    }


    /// `close(2)`. Errors are ignored on purpose: after close the descriptor is gone either way,
    /// and retrying on `EINTR` could close a descriptor another thread just opened. Closing a
    /// descriptor that is not open (`EBADF`: a double close, which may have closed someone
    /// else's descriptor) traps in DEBUG builds. Not subject to the fault seam.
    static func close(_ fd: Int32) {
        let result = Glibc.close(fd)
        #if DEBUG
        if result == -1 && errno == EBADF {
            assertionFailure("close(\(fd)): not an open descriptor (closed twice?)")
        }
        #else
        _ = result
        #endif
    }

    /// `close(2)` in a `fork()`ed child's `pthread_atfork` handler: nothing but the system call
    /// (no check, no allocation).
    static func closeInForkedChild(_ fd: Int32) {
        _ = Glibc.close(fd)
    }

    /// `ioctl(2)` with a pointer argument (``Call/ioctl``).
    static func ioctl<T>(_ fd: BorrowedDescriptor, _ request: UInt, _ argument: inout T) throws(Errno) {
        _ = try withUnsafeMutablePointer(to: &argument) { (pointer) throws(Errno) -> Int32 in
            try retrying(.ioctl) { kmt_ioctl(fd.rawValue, request, UnsafeMutableRawPointer(pointer)) }
        }
    }
}
