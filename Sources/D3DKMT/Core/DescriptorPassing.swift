/// Sends a copy of `descriptor` over the connected `AF_UNIX` socket `socket` (`SCM_RIGHTS`), with
/// a one-byte payload. The caller keeps its own descriptor.
///
/// This is how a shared NT handle usually travels to another process.
public func sendDescriptor(_ descriptor: Int32, over socket: Int32) throws(NTError) {
    // The payload and the descriptor from the stack: nothing is allocated.
    let payload: UInt8 = 0x4B
    do throws(Errno) {
        try withUnsafeBytes(of: payload) { (bytes) throws(Errno) in
            try withUnsafePointer(to: descriptor) { (number) throws(Errno) in
                try Kernel.send(BorrowedDescriptor(unowned: socket), bytes,
                                descriptors: UnsafeBufferPointer(start: number, count: 1))
            }
        }
    } catch {
        throw error.nt("sending a descriptor")
    }
}

/// Receives one descriptor sent with ``sendDescriptor(_:over:)``, blocking until it arrives.
/// Any extra descriptors that came along are closed.
public func receiveDescriptor(over socket: Int32) throws(NTError) -> FileDescriptor {
    let received: ReceivedDescriptors
    do {
        received = try Kernel.receiveMessage(BorrowedDescriptor(unowned: socket))
    } catch {
        throw error.nt("receiving a descriptor")
    }
    guard received.count >= 1 else { throw NTError(.invalidParameter, "no descriptor arrived") }
    return received.take(0)
}
