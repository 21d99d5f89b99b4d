#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Makes a shared NT handle: a socket pair, the package sent once into one end with the objects'
/// descriptors, the sending end closed. What remains is the handle.
enum SharedPackageWriter {
    /// A new handle and the sending end of its socket pair, which reports a hang-up once every
    /// copy of the handle is closed (what a name waits for).
    struct Written: ~Copyable {
        var handle: SharedHandle
        var sender: FileDescriptor
    }

    /// A new handle holding `package` with `descriptors` attached.
    ///
    /// - Throws: `STATUS_INVALID_PARAMETER` for a package too large; the kernel's status when the
    ///   socket pair cannot be made or the descriptors sent (`STATUS_TOO_MANY_OPENED_FILES`).
    static func write(_ package: SharePackage, descriptors: [Int32]) throws(NTError) -> SharedHandle {
        try write(package, allocations: package.allocations, descriptors: descriptors)
    }

    /// As ``write(_:descriptors:)``, with `allocations` as the package's allocation records.
    static func write(_ package: SharePackage, allocations: some Collection<SharePackage.AllocationRecord>,
                      descriptors: some Collection<Int32>) throws(NTError) -> SharedHandle {
        // Nothing can be sent into the handle once the other end is closed.
        let written = try writeKeepingSender(package, allocations: allocations, descriptors: descriptors)
        return written.handle
    }

    /// As ``write(_:descriptors:)``, keeping the sending end.
    static func writeKeepingSender(_ package: SharePackage, descriptors: [Int32]) throws(NTError) -> Written {
        try writeKeepingSender(package, allocations: package.allocations, descriptors: descriptors)
    }

    /// As ``write(_:allocations:descriptors:)``, keeping the sending end. The package is encoded
    /// into temporary memory (the stack, for most) and sent from there.
    static func writeKeepingSender(_ package: SharePackage,
                                   allocations: some Collection<SharePackage.AllocationRecord>,
                                   descriptors: some Collection<Int32>) throws(NTError) -> Written {
        try package.withEncoded(allocations: allocations) { (bytes) throws(NTError) -> Written in
            do throws(Errno) {
                let pair = try Kernel.socketPair(type: Int32(SOCK_SEQPACKET.rawValue))
                let handle = pair.first, sender = pair.second
                if bytes.count > 64 * 1024 {
                    // Large packages need a larger send buffer than the default; the kernel caps it.
                    try? Kernel.setSocketOption(sender.borrowed, level: SOL_SOCKET, SO_SNDBUF,
                                                Int32(2 * SharePackage.maximumSize))
                }
                try Kernel.send(sender.borrowed, bytes, descriptors: descriptors)
                return Written(handle: SharedHandle(handle), sender: sender)
            } catch {
                throw error.nt("creating a shared handle")
            }
        }
    }
}

/// Reads a shared NT handle: checks that the descriptor is one of ours, peeks at the package
/// (leaving it queued for the next opener) and validates it.
enum SharedPackageReader {
    /// A validated package and the descriptors that came with it, owned: whatever the caller
    /// does not take is closed.
    struct Opened {
        /// The package; each of its allocation records has its ``SharePackage/AllocationRecord/buffer``.
        var package: SharePackage
        let descriptors: ReceivedDescriptors
        /// The resource's runtime data page, when the package has one: it takes the received
        /// descriptor, so it is asked for at most once per open. Made only for a caller that needs
        /// the runtime data: opening a sync object or a keyed mutex, or asking the access, skips it.
        func runtimeDataPage() throws(NTError) -> RuntimeDataPage? {
            guard package.runtimeDataPageIndex != SharePackage.noDescriptor else { return nil }
            return try RuntimeDataPage.open(descriptors.take(Int(package.runtimeDataPageIndex)))
        }

        /// The resource's runtime private data as it is now (at most once per open, as
        /// ``runtimeDataPage()``).
        func runtimeData() throws(NTError) -> [UInt8] {
            try RuntimeDataPage.load(try runtimeDataPage()) ?? package.runtimeData
        }
    }

    /// The package alone; its descriptors are closed at once.
    static func read(_ handle: Int32) throws(NTError) -> SharePackage {
        try open(handle).package
    }

    static func open(_ handle: Int32) throws(NTError) -> Opened {
        guard handle >= 0 else { throw NTError(.invalidHandle, "not a descriptor") }
        do {
            // getsockopt answers ENOTSOCK for anything that is not a socket: no fstat needed.
            guard try Kernel.socketOption(BorrowedDescriptor(unowned: handle), level: SOL_SOCKET, SO_DOMAIN) == AF_UNIX,
                  try Kernel.socketOption(BorrowedDescriptor(unowned: handle), level: SOL_SOCKET, SO_TYPE)
                      == Int32(SOCK_SEQPACKET.rawValue)
            else { throw NTError(.invalidParameter, "descriptor \(handle) is not a shared NT handle") }
        } catch let error as Errno {
            if error.rawValue == ENOTSOCK {
                throw NTError(.invalidParameter, "descriptor \(handle) is not a shared NT handle")
            }
            throw NTError(error == .badFileDescriptor ? .invalidHandle : NTStatus(error),
                          "descriptor \(handle): \(error)")
        } catch let error as NTError {
            throw error
        } catch {
            throw NTError(.unsuccessful, "\(error)")
        }

        // Most packages are small and carry few descriptors: the first peek reads into buffers on the
        // stack, and one that did not fit is peeked again with room for the largest package and for
        // SCM_MAX_FD descriptors (the first peek's descriptors are closed).
        if let opened = try withPackageBuffer(large: false, { (buffer) throws(NTError) in
            try peek(handle, into: buffer, large: false)
        }) {
            return opened
        }
        return try withPackageBuffer(large: true) { (buffer) throws(NTError) in
            try peek(handle, into: buffer, large: true)!
        }
    }

    /// How many descriptors the first, small peek has room for.
    private static let smallPeekDescriptors = 32

    /// Runs `body` with a buffer for a package: 1 KiB on the stack, or (`large`) the largest
    /// package on the heap.
    private static func withPackageBuffer<R>(
        large: Bool, _ body: (UnsafeMutableRawBufferPointer) throws(NTError) -> R
    ) throws(NTError) -> R {
        guard large else { return try withUnsafeTemporaryAllocation(byteCount: 1024, alignment: 8, body) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: SharePackage.maximumSize, alignment: 8)
        defer { buffer.deallocate() }
        return try body(buffer)
    }

    /// One peek at the package queued on `handle`, read into `buffer` with room for a few
    /// descriptors or (`large`) for `SCM_MAX_FD`, then validated.
    ///
    /// - Returns: nil when a small peek was too small for the package or its descriptors.
    private static func peek(_ handle: Int32, into buffer: UnsafeMutableRawBufferPointer,
                             large: Bool) throws(NTError) -> Opened? {
        let message: Kernel.ReceivedMessage
        do {
            message = try Kernel.receive(BorrowedDescriptor(unowned: handle), into: buffer, peek: true,
                                         maximumDescriptors: large ? Kernel.maximumDescriptorsPerMessage
                                                                   : smallPeekDescriptors)
        } catch {
            if error == .wouldBlock {
                // The package stays queued for the handle's life unless a holder read it out
                // without MSG_PEEK: the handle is spent, as a closed NT handle is.
                throw NTError(.invalidHandle, "descriptor \(handle) holds no package: it was read out of the "
                                              + "handle (a read without MSG_PEEK by a holder), or never sent")
            }
            throw error.nt("reading a shared handle")
        }
        // End of file: the package was read out and the sending end is closed (every handle but
        // a named one, whose sending end the name keeps: that one answers EAGAIN above).
        if message.byteCount == 0 && message.descriptors.count == 0 && !message.dataTruncated {
            throw NTError(.invalidHandle, "descriptor \(handle) holds no package: it was read out of the "
                                          + "handle (a read without MSG_PEEK by a holder)")
        }
        if !large && (message.dataTruncated || message.descriptorsTruncated) {
            return nil  // `message.descriptors` closes this peek's descriptors
        }
        guard !message.dataTruncated else {
            throw NTError(.invalidParameter, "shared handle package is larger than any we make")
        }
        // The control buffer holds SCM_MAX_FD descriptors, so a cut-short list means this
        // process could not take them all (RLIMIT_NOFILE); the ones it got are closed.
        guard !message.descriptorsTruncated else {
            throw NTError(.tooManyOpenedFiles, "this process cannot open the shared handle's descriptors "
                                               + "(RLIMIT_NOFILE)")
        }
        do {
            var package = try SharePackage.decode(UnsafeRawBufferPointer(rebasing: buffer[0..<message.byteCount]),
                                                  descriptorCount: message.descriptors.count)
            try checkSyncobjs(package, message.descriptors)
            try checkAllocations(&package, message.descriptors)
            return Opened(package: consume package, descriptors: message.descriptors)
        } catch let error as SharePackage.DecodeError {
            switch error {
            case .malformed(let why): throw NTError(.invalidParameter, "invalid shared handle: \(why)")
            case .unsupported(let why): throw NTError(.notSupported, why)
            }
        } catch let error as NTError {
            throw error
        } catch {
            throw NTError(.unsuccessful, "\(error)")
        }
    }
}

extension SharedPackageReader {
    /// Each allocation's descriptor must be a dma-buf or a memfd holding at least the bytes the
    /// package claims: a peer cannot pass off a pipe as a buffer, or make a mapping run past the
    /// end of one. An image's dma-buf may hold fewer (a virgl texture whose contents live on the
    /// host has a page of guest memory): ``Allocation/map(writable:)`` then refuses to map it.
    /// Each record gets what its descriptor was measured to be.
    static func checkAllocations(_ package: inout SharePackage, _ descriptors: ReceivedDescriptors) throws(NTError) {
        for index in package.allocations.indices {
            let fd = descriptors.peek(Int(package.allocations[index].descriptorIndex))
            let kind = try BufferKind(classifying: fd)
            let size: UInt64
            do {
                size = try Kernel.size(BorrowedDescriptor(unowned: fd))
            } catch {
                throw error.nt("sizing a shared buffer")
            }
            let claimed = package.allocations[index].size
            guard size >= claimed || (kind == .dmaBuf && package.allocations[index].layout.isImage) else {
                throw NTError(.invalidParameter, "shared buffer holds \(size) bytes, package says \(claimed)")
            }
            package.allocations[index].buffer = SharePackage.MeasuredBuffer(kind: kind, size: size)
        }
    }

    /// The keyed mutex's timeline and the sync object's syncobj must be DRM syncobj files: a peer
    /// cannot make us import a pipe or a dma-buf as one. (State pages are checked when mapped.)
    static func checkSyncobjs(_ package: SharePackage, _ descriptors: ReceivedDescriptors) throws(NTError) {
        func check(_ index: UInt32?) throws(NTError) {
            guard let index, index != SharePackage.noDescriptor else { return }
            guard Kernel.isSyncobj(descriptors.borrow(Int(index))) else {
                if let missing = NTError.withoutProc("telling a DRM syncobj") { throw missing }
                throw NTError(.invalidParameter, "invalid shared handle: descriptor \(index) is not a DRM syncobj")
            }
        }
        try check(package.keyedMutex?.syncobjDescriptorIndex)
        try check(package.syncObject?.syncobjDescriptorIndex)
    }
}
