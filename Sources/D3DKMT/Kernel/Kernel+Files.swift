#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CKMTShims

/// Files, memfds and their seals, mappings, paths and directories.
extension Kernel {
    /// `fcntl(F_DUPFD_CLOEXEC)` (``Call/dup``).
    static func duplicate(_ fd: BorrowedDescriptor) throws(Errno) -> FileDescriptor {
        FileDescriptor(adopting: try retrying(.dup) { fcntl(fd.rawValue, F_DUPFD_CLOEXEC, 0) })
    }

    /// `open(2)` with `O_CLOEXEC` added.
    static func open(_ path: String, _ flags: Int32) throws(Errno) -> FileDescriptor {
        FileDescriptor(adopting: try retrying(.open) { Glibc.open(path, flags | O_CLOEXEC) })
    }

    /// `open(2)` with `O_CLOEXEC` added and a creation `mode` (for `O_CREAT`).
    static func open(_ path: String, _ flags: Int32, mode: mode_t) throws(Errno) -> FileDescriptor {
        FileDescriptor(adopting: try retrying(.open) { Glibc.open(path, flags | O_CLOEXEC, mode) })
    }

    /// A new open of the file behind `fd` with `flags` (`open("/proc/self/fd/N")`): a read-only
    /// reopen of a memfd cannot be mapped writable. (dma-bufs cannot be reopened: `ENXIO`.)
    static func reopen(_ fd: BorrowedDescriptor, _ flags: Int32) throws(Errno) -> FileDescriptor {
        try open("/proc/self/fd/\(fd)", flags)
    }

    /// Whether `/proc/self/fd` is there (`access(2)`): what reopening a descriptor and naming its
    /// kind (``readLink(_:)`` of `/proc/self/fd/N`) need. Not subject to the fault seam.
    static var hasProcSelf: Bool { access("/proc/self/fd", F_OK) == 0 }

    /// `memfd_create(2)` with `MFD_CLOEXEC | MFD_ALLOW_SEALING`. The name is a literal, passed as
    /// it is stored (a `String` would be converted first).
    static func memfd(name: StaticString) throws(Errno) -> FileDescriptor {
        FileDescriptor(adopting: try retrying(.memfd) {
            name.utf8Start.withMemoryRebound(to: CChar.self, capacity: name.utf8CodeUnitCount + 1) {
                kmt_memfd_create($0, kmt_MFD_CLOEXEC | kmt_MFD_ALLOW_SEALING)
            }
        })
    }

    /// The memfd seals (`F_SEAL_*`) the library sets and checks. (Computed: a stored `static let`
    /// of a C constant costs a `swift_once` on every use.)
    static var sealSeal: Int32 { kmt_F_SEAL_SEAL }
    static var sealShrink: Int32 { kmt_F_SEAL_SHRINK }
    static var sealGrow: Int32 { kmt_F_SEAL_GROW }

    /// `ftruncate(2)`.
    static func truncate(_ fd: BorrowedDescriptor, to size: UInt64) throws(Errno) {
        guard let length = off_t(exactly: size) else { throw .invalidArgument }
        _ = try retrying(.ftruncate) { ftruncate(fd.rawValue, length) }
    }

    /// `fcntl(F_ADD_SEALS)`.
    static func addSeals(_ fd: BorrowedDescriptor, _ seals: Int32) throws(Errno) {
        _ = try retrying(.fcntl) { fcntl(fd.rawValue, kmt_F_ADD_SEALS, seals) }
    }

    /// `fcntl(F_GET_SEALS)`: fails with `EINVAL` on anything but a memfd/shmem file.
    static func seals(_ fd: BorrowedDescriptor) throws(Errno) -> Int32 {
        try retrying(.fcntl) { fcntl(fd.rawValue, kmt_F_GET_SEALS) }
    }

    /// `fcntl(F_GETFL)`: the file status flags, of which `O_ACCMODE` tells read/write access.
    static func statusFlags(_ fd: BorrowedDescriptor) throws(Errno) -> Int32 {
        try retrying(.fcntl) { fcntl(fd.rawValue, F_GETFL) }
    }

    /// The size of a seekable object (a dma-buf or a memfd): `lseek(fd, 0, SEEK_END)`.
    static func size(_ fd: BorrowedDescriptor) throws(Errno) -> UInt64 {
        UInt64(try retrying(.lseek) { lseek(fd.rawValue, 0, SEEK_END) })
    }

    /// `pread(2)` of up to `buffer.count` bytes at `offset`; returns how many were read.
    static func readAt(_ fd: BorrowedDescriptor, into buffer: UnsafeMutableRawBufferPointer,
                       at offset: Int) throws(Errno) -> Int {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return 0 }
        return try retrying(.pread) { pread(fd.rawValue, base, buffer.count, off_t(offset)) }
    }

    /// `pwrite(2)` of all of `bytes` at `offset`.
    static func writeAt(_ fd: BorrowedDescriptor, _ bytes: UnsafeRawBufferPointer, at offset: Int) throws(Errno) {
        var done = 0
        while done < bytes.count {
            done += try retrying(.pwrite) {
                pwrite(fd.rawValue, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
            }
        }
    }

    /// The `statfs` filesystem magics (``filesystemMagic(_:)``) of the objects the library tells
    /// apart.
    static var dmaBufMagic: Int { Int(kmt_DMA_BUF_MAGIC) }
    static var tmpfsMagic: Int { Int(kmt_TMPFS_MAGIC) }
    static var hugetlbfsMagic: Int { Int(kmt_HUGETLBFS_MAGIC) }

    /// `fstatfs(2)`'s filesystem magic, which tells a dma-buf from a memfd from an anon inode.
    static func filesystemMagic(_ fd: BorrowedDescriptor) throws(Errno) -> Int {
        var info = statfs()
        _ = try retrying(.fstatfs) { fstatfs(fd.rawValue, &info) }
        return Int(info.f_type)
    }

    /// `fstat(2)`'s `st_rdev` for a character device.
    static func deviceNumber(_ fd: BorrowedDescriptor) throws(Errno) -> dev_t {
        var info = stat()
        _ = try retrying(.fstat) { fstat(fd.rawValue, &info) }
        return info.st_rdev
    }

    /// `mmap(2)` of a whole shared object, or of `length` bytes at `offset` (a DRM node's fake
    /// offset for one GEM object).
    static func mapShared(_ fd: BorrowedDescriptor, length: Int, writable: Bool,
                          offset: UInt64 = 0) throws(Errno) -> UnsafeMutableRawPointer {
        try checkFault(.mmap)
        let protection = writable ? (PROT_READ | PROT_WRITE) : PROT_READ
        guard let address = mmap(nil, length, protection, MAP_SHARED, fd.rawValue, off_t(Int64(bitPattern: offset))),
              address != MAP_FAILED else {
            throw Errno.current
        }
        return address
    }

    /// `munmap(2)`. Not subject to the fault seam (its result is ignored).
    static func unmap(_ address: UnsafeMutableRawPointer, length: Int) {
        _ = munmap(address, length)
    }

    /// Reads a small text file (sysfs, procfs), trimmed; nil if it cannot be read.
    static func readSmallFile(_ path: String) -> String? {
        guard let file = try? open(path, O_RDONLY) else { return nil }
        var buffer = [UInt8](repeating: 0, count: 256)
        let count = buffer.withUnsafeMutableBytes { raw in
            (try? retrying(.read) { read(file.rawValue, raw.baseAddress, raw.count) }) ?? -1
        }
        guard count > 0 else { return nil }
        let text = String(decoding: buffer[0..<count], as: UTF8.self)
        let trimmed = text.drop { $0.isWhitespace }
        return String(trimmed.reversed().drop { $0.isWhitespace }.reversed())
    }

    /// `readlink(2)`, nil if it fails.
    static func readLink(_ path: String) -> String? {
        if injectedFault(.readlink) != nil { return nil }
        var buffer = [CChar](repeating: 0, count: 4096)
        let count = readlink(path, &buffer, buffer.count - 1)
        guard count > 0 else { return nil }
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The names in a directory, without `.` and `..`; empty if it cannot be read.
    static func directoryEntries(_ path: String) -> [String] {
        if injectedFault(.open) != nil { return [] }
        guard let directory = opendir(path) else { return [] }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// The number of open descriptors of this process (`/proc/self/fd`), for leak checks. Not
    /// subject to the fault seam: it is what tests of the seam count with.
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

    /// `mkdir(2)`; an existing entry is not an error (the caller checks what it is).
    static func makeDirectory(_ path: String, mode: mode_t) throws(Errno) {
        try checkFault(.mkdir)
        if mkdir(path, mode) != 0, Errno.current != Errno(rawValue: EEXIST) { throw Errno.current }
    }

    /// `lstat(2)`: owner, mode and type of a path (symbolic links are not followed).
    static func pathStatus(_ path: String) throws(Errno) -> (owner: uid_t, mode: mode_t) {
        var status = stat()
        _ = try retrying(.lstat) { lstat(path, &status) }
        return (status.st_uid, status.st_mode)
    }

    /// `rmdir(2)`, ignoring errors (a directory that is not empty stays; not subject to the fault
    /// seam).
    static func removeDirectory(_ path: String) {
        _ = Glibc.rmdir(path)
    }

    /// `unlink(2)`, ignoring errors (not subject to the fault seam).
    static func unlink(_ path: String) {
        _ = Glibc.unlink(path)
    }
}
