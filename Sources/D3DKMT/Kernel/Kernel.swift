#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CKMTShims

/// The one layer that calls the kernel.
///
/// Every system call and ioctl the library makes goes through here: `errno` is read here and
/// nowhere else, `EINTR` is retried here, once, and the results come back as Swift values or a
/// thrown ``Errno``. Descriptors come back as owned ``FileDescriptor``s, always close-on-exec.
enum Kernel {
    /// Runs `call` until it does not fail with `EINTR`; a result of -1 throws the current `errno`.
    @inline(__always)
    static func retrying<T: FixedWidthInteger>(_ call: () -> T) throws(Errno) -> T {
        while true {
            let result = call()
            if result != -1 { return result }
            let error = Errno.current
            if error != .interrupted { throw error }
        }
    }

    /// `close(2)`. Errors are ignored on purpose: after close the descriptor is gone either way,
    /// and retrying on `EINTR` could close a descriptor another thread just opened.
    static func close(_ fd: Int32) {
        _ = Glibc.close(fd)
    }

    /// `fcntl(F_DUPFD_CLOEXEC)`.
    static func duplicate(_ fd: Int32) throws(Errno) -> FileDescriptor {
        FileDescriptor(adopting: try retrying { fcntl(fd, F_DUPFD_CLOEXEC, 0) })
    }

    /// `open(2)` with `O_CLOEXEC` added.
    static func open(_ path: String, _ flags: Int32) throws(Errno) -> FileDescriptor {
        FileDescriptor(adopting: try retrying { Glibc.open(path, flags | O_CLOEXEC) })
    }

    /// A new open of the file behind `fd` with `flags` (`open("/proc/self/fd/N")`): a read-only
    /// reopen of a memfd cannot be mapped writable. (dma-bufs cannot be reopened: `ENXIO`.)
    static func reopen(_ fd: Int32, _ flags: Int32) throws(Errno) -> FileDescriptor {
        try open("/proc/self/fd/\(fd)", flags)
    }

    /// `ioctl(2)` with a pointer argument.
    static func ioctl<T>(_ fd: Int32, _ request: UInt, _ argument: inout T) throws(Errno) {
        _ = try retrying { kmt_ioctl(fd, request, &argument) }
    }

    /// `memfd_create(2)` with `MFD_CLOEXEC | MFD_ALLOW_SEALING`.
    static func memfd(name: String) throws(Errno) -> FileDescriptor {
        FileDescriptor(adopting: try retrying {
            kmt_memfd_create(name, kmt_MFD_CLOEXEC | kmt_MFD_ALLOW_SEALING)
        })
    }

    /// `ftruncate(2)`.
    static func truncate(_ fd: Int32, to size: UInt64) throws(Errno) {
        guard let length = off_t(exactly: size) else { throw .invalidArgument }
        _ = try retrying { ftruncate(fd, length) }
    }

    /// `fcntl(F_ADD_SEALS)`.
    static func addSeals(_ fd: Int32, _ seals: Int32) throws(Errno) {
        _ = try retrying { fcntl(fd, kmt_F_ADD_SEALS, seals) }
    }

    /// `fcntl(F_GET_SEALS)`: fails with `EINVAL` on anything but a memfd/shmem file.
    static func seals(_ fd: Int32) throws(Errno) -> Int32 {
        try retrying { fcntl(fd, kmt_F_GET_SEALS) }
    }

    /// `fcntl(F_GETFL)`: the file status flags, of which `O_ACCMODE` tells read/write access.
    static func statusFlags(_ fd: Int32) throws(Errno) -> Int32 {
        try retrying { fcntl(fd, F_GETFL) }
    }

    /// The size of a seekable object (a dma-buf or a memfd): `lseek(fd, 0, SEEK_END)`.
    static func size(_ fd: Int32) throws(Errno) -> UInt64 {
        UInt64(try retrying { lseek(fd, 0, SEEK_END) })
    }

    /// `pread(2)` of up to `buffer.count` bytes at `offset`; returns how many were read.
    static func readAt(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws(Errno) -> Int {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return 0 }
        return try retrying { pread(fd, base, buffer.count, off_t(offset)) }
    }

    /// `pwrite(2)` of all of `bytes` at `offset`.
    static func writeAt(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int) throws(Errno) {
        var done = 0
        while done < bytes.count {
            done += try retrying { pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done)) }
        }
    }

    /// `fstatfs(2)`'s filesystem magic, which tells a dma-buf from a memfd from an anon inode.
    static func filesystemMagic(_ fd: Int32) throws(Errno) -> Int {
        var info = statfs()
        _ = try retrying { fstatfs(fd, &info) }
        return Int(info.f_type)
    }

    /// `fstat(2)`'s file type bits (`S_IFSOCK`, `S_IFCHR`, ...).
    static func fileType(_ fd: Int32) throws(Errno) -> mode_t {
        var info = stat()
        _ = try retrying { fstat(fd, &info) }
        return info.st_mode & S_IFMT
    }

    /// `fstat(2)`'s `st_rdev` for a character device.
    static func deviceNumber(_ fd: Int32) throws(Errno) -> dev_t {
        var info = stat()
        _ = try retrying { fstat(fd, &info) }
        return info.st_rdev
    }

    /// `getsockopt(2)` for an `Int32` option.
    static func socketOption(_ fd: Int32, level: Int32, _ option: Int32) throws(Errno) -> Int32 {
        var value: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        _ = try retrying { getsockopt(fd, level, option, &value, &length) }
        return value
    }

    /// `setsockopt(2)` for an `Int32` option.
    static func setSocketOption(_ fd: Int32, level: Int32, _ option: Int32, _ value: Int32) throws(Errno) {
        var value = value
        _ = try retrying { setsockopt(fd, level, option, &value, socklen_t(MemoryLayout<Int32>.size)) }
    }

    /// The two ends of a socket pair, each with one owner.
    struct SocketPair: ~Copyable {
        var first: FileDescriptor
        var second: FileDescriptor
    }

    /// `socketpair(AF_UNIX, type | SOCK_CLOEXEC)`.
    static func socketPair(type: Int32) throws(Errno) -> SocketPair {
        var fds: [Int32] = [-1, -1]
        _ = try retrying { socketpair(AF_UNIX, type | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) }
        return SocketPair(first: FileDescriptor(adopting: fds[0]), second: FileDescriptor(adopting: fds[1]))
    }

    /// `mmap(2)` of a whole shared object.
    static func mapShared(_ fd: Int32, length: Int, writable: Bool) throws(Errno) -> UnsafeMutableRawPointer {
        let protection = writable ? (PROT_READ | PROT_WRITE) : PROT_READ
        guard let address = mmap(nil, length, protection, MAP_SHARED, fd, 0), address != MAP_FAILED else {
            throw Errno.current
        }
        return address
    }

    /// `munmap(2)`.
    static func unmap(_ address: UnsafeMutableRawPointer, length: Int) {
        _ = munmap(address, length)
    }

    /// The number of open descriptors of this process (`/proc/self/fd`), for leak checks.
    static func openDescriptorCount() -> Int {
        guard let directory = opendir("/proc/self/fd") else { return -1 }
        defer { closedir(directory) }
        var count = 0
        while let entry = readdir(directory) {
            let first = entry.pointee.d_name.0
            if first != UInt8(ascii: ".") { count += 1 }
        }
        return count - 1  // the directory stream's own descriptor
    }
}
