#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CKMTShims

/// Descriptors received together (one `SCM_RIGHTS` message), owned as a group: each one is taken
/// out with ``FileDescriptorList/take(_:)`` or closed when the group is dropped, so a receive that
/// fails half-way through validation leaks nothing.
typealias ReceivedDescriptors = FileDescriptorList

extension Kernel {
    /// The most descriptors one `SCM_RIGHTS` message can carry (`SCM_MAX_FD` in the kernel).
    static let maximumDescriptorsPerMessage = 253

    /// `sendmsg(2)` of one datagram carrying `descriptors` with `SCM_RIGHTS`.
    static func send(_ socket: BorrowedDescriptor, bytes: [UInt8], descriptors: [BorrowedDescriptor]) throws(Errno) {
        let result: Result<Void, Errno> = bytes.withUnsafeBytes { payload in
            Result { () throws(Errno) in try send(socket, payload, descriptors: descriptors.lazy.map { $0.rawValue }) }
        }
        try result.get()
    }

    /// `sendmsg(2)` of one datagram, `bytes` (which must fit the socket's send buffer whole), carrying
    /// copies of the open descriptors numbered `descriptors` (borrowed; at most
    /// ``maximumDescriptorsPerMessage``) with `SCM_RIGHTS`. The control buffer is on the stack;
    /// nothing is allocated.
    ///
    /// - Throws: what `sendmsg` fails with; `EINVAL` when fewer bytes went than were given.
    static func send(_ socket: BorrowedDescriptor, _ bytes: UnsafeRawBufferPointer,
                     descriptors: some Collection<Int32>) throws(Errno) {
        let count = descriptors.count
        precondition(count <= maximumDescriptorsPerMessage)
        func send(_ numbers: UnsafeBufferPointer<Int32>) throws(Errno) -> Int {
            try retrying(.sendmsg) {
                kmt_send_rights(socket.rawValue, bytes.baseAddress, bytes.count, numbers.baseAddress, numbers.count,
                                Int32(MSG_NOSIGNAL))
            }
        }
        // Numbers already side by side (an array, a buffer) go as they are; others via the stack.
        let direct = descriptors.withContiguousStorageIfAvailable { numbers in
            Result { () throws(Errno) in try send(numbers) }
        }
        let sent: Int
        if let direct {
            sent = try direct.get()
        } else {
            sent = try withUnsafeTemporaryAllocation(of: Int32.self, capacity: max(count, 1)) {
                (numbers) throws(Errno) -> Int in
                let filled = numbers.initialize(fromContentsOf: descriptors)
                return try send(UnsafeBufferPointer(rebasing: numbers[0..<filled]))
            }
        }
        guard sent == bytes.count else { throw .invalidArgument }
    }

    /// What one `recvmsg(2)` delivered.
    struct ReceivedMessage {
        /// Bytes written into the buffer.
        var byteCount: Int
        /// The datagram was longer than the buffer (`MSG_TRUNC`).
        var dataTruncated: Bool
        /// Some descriptors were dropped for lack of control space (`MSG_CTRUNC`).
        var descriptorsTruncated: Bool
        /// Every descriptor that arrived, close-on-exec, owned by the caller.
        var descriptors: ReceivedDescriptors
    }

    /// `recvmsg(2)` with `MSG_CMSG_CLOEXEC`, and with `peek`, `MSG_PEEK | MSG_DONTWAIT`: reads the
    /// first datagram queued on `socket` without removing it. Linux installs fresh copies of its
    /// `SCM_RIGHTS` descriptors on every peek, so the same message can be read again and again.
    ///
    /// The control buffer has room for `maximumDescriptors` descriptors; more set
    /// ``ReceivedMessage/descriptorsTruncated`` (a peek installs none of those: they stay queued).
    ///
    /// - Throws: `EAGAIN` when peeking and nothing is queued; other `recvmsg` errors as they come.
    static func receive(
        _ socket: BorrowedDescriptor, into buffer: UnsafeMutableRawBufferPointer, peek: Bool,
        maximumDescriptors: Int = maximumDescriptorsPerMessage
    ) throws(Errno) -> ReceivedMessage {
        let flags = Int32(MSG_CMSG_CLOEXEC) | (peek ? Int32(MSG_PEEK) | Int32(MSG_DONTWAIT) : 0)
        let room = min(max(maximumDescriptors, 0), maximumDescriptorsPerMessage)
        // The numbers land on the stack and are owned by the list before anything else happens,
        // so that none leaks whatever the checks decide.
        return try withUnsafeTemporaryAllocation(of: Int32.self, capacity: max(room, 1)) {
            (numbers) throws(Errno) -> ReceivedMessage in
            var count = 0
            var messageFlags: Int32 = 0
            let received = try retrying(.recvmsg) {
                kmt_receive_rights(socket.rawValue, buffer.baseAddress, buffer.count, flags, numbers.baseAddress,
                                   room, &count, &messageFlags)
            }
            let descriptors = ReceivedDescriptors(capacity: count)
            for index in 0..<count { descriptors.append(FileDescriptor(adopting: numbers[index])) }
            return ReceivedMessage(
                byteCount: received,
                dataTruncated: messageFlags & Int32(MSG_TRUNC) != 0,
                descriptorsTruncated: messageFlags & Int32(MSG_CTRUNC) != 0,
                descriptors: descriptors
            )
        }
    }
}

extension Kernel {
    /// Receives (and removes) one datagram or stream chunk from `socket`, blocking, and returns
    /// the descriptors that came with it.
    static func receiveMessage(_ socket: BorrowedDescriptor) throws(Errno) -> ReceivedDescriptors {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 8)
        defer { buffer.deallocate() }
        let message = try receive(socket, into: buffer, peek: false)
        guard message.byteCount > 0 || message.descriptors.count > 0 else {
            throw Errno(rawValue: ECONNRESET)
        }
        return message.descriptors
    }
}

extension Kernel {
    /// Reads and drops the first message queued on `socket` without blocking (`MSG_DONTWAIT`),
    /// closing any descriptors it carried.
    ///
    /// - Returns: false when nothing was queued (`EAGAIN`) or the peer is gone (end of file).
    static func discardMessage(_ socket: BorrowedDescriptor) throws(Errno) -> Bool {
        let flags = Int32(MSG_CMSG_CLOEXEC) | Int32(MSG_DONTWAIT) | Int32(MSG_TRUNC)
        // A few bytes of the message (MSG_TRUNC: the rest is dropped with it) and room for every
        // descriptor it may carry, on the stack.
        return try withUnsafeTemporaryAllocation(byteCount: 64, alignment: 8) { (buffer) throws(Errno) -> Bool in
            try withUnsafeTemporaryAllocation(of: Int32.self, capacity: maximumDescriptorsPerMessage) {
                (numbers) throws(Errno) -> Bool in
                var count = 0
                var messageFlags: Int32 = 0
                let received: Int
                do throws(Errno) {
                    received = try retrying(.recvmsg) {
                        kmt_receive_rights(socket.rawValue, buffer.baseAddress, buffer.count, flags,
                                           numbers.baseAddress, maximumDescriptorsPerMessage, &count, &messageFlags)
                    }
                } catch where error == .wouldBlock {
                    return false
                }
                for index in 0..<count { close(numbers[index]) }
                return received > 0 || count > 0
            }
        }
    }
}
