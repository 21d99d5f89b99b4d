#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Synchronization

/// Named shared handles: a namespace per user that other users cannot reach.
///
/// The namespace is a directory only its user can enter: `$XDG_RUNTIME_DIR/d3dkmt` when that is
/// the caller's own private runtime directory, else `/tmp/d3dkmt-UID`; it must be owned by the
/// caller and closed to everyone else (mode 0700), or every name call is `STATUS_ACCESS_DENIED`.
/// Each name is a listening `SOCK_SEQPACKET` socket there, named by a hash of the name. The
/// sharing process's name thread answers each connection with the full name and a handle to the
/// objects; the opener checks the name (hash collisions cannot alias) and keeps the handle.
///
/// Lifetime: a name resolves while its sharer process lives and some process still holds the
/// handle `ShareObjects` returned for it (or a duplicate of it). When the last copy of that
/// handle closes, the name is removed; handles already opened by name stay valid. A sharer that
/// dies leaves a stale socket, which lookups treat as not found and a new share of the name
/// replaces.
enum Names {
    /// The most UTF-16 code units a name may have.
    static let maximumLength = 256

    enum Kind: UInt32 {
        case resource = 1
        case syncObject = 2
    }

    /// Checks a name: 1...256 UTF-16 code units, valid UTF-16, no NUL.
    ///
    /// - Throws: `STATUS_OBJECT_NAME_INVALID`.
    static func validate(_ name: String) throws(NTError) {
        let units = name.utf16.count
        guard units > 0, units <= maximumLength, !name.utf8.contains(0) else {
            throw NTError(.objectNameInvalid, "a name has 1 to \(maximumLength) UTF-16 code units and no NUL")
        }
    }

    /// The caller's namespace directory, created if needed and checked to be private.
    ///
    /// - Throws: `STATUS_ACCESS_DENIED` when the directory is not the caller's own private one.
    static func directory() throws(NTError) -> String {
        let uid = Kernel.userID
        var base = "/tmp"
        var leaf = "d3dkmt-\(uid)"
        if let runtime = getenv("XDG_RUNTIME_DIR").map({ String(cString: $0) }), runtime.hasPrefix("/"),
           let status = try? Kernel.pathStatus(runtime), status.owner == uid, status.mode & S_IFMT == S_IFDIR, status.mode & 0o077 == 0 {
            base = runtime
            leaf = "d3dkmt"
        }
        let path = base + "/" + leaf
        do {
            try Kernel.makeDirectory(path, mode: 0o700)
            let status = try Kernel.pathStatus(path)
            guard status.mode & S_IFMT == S_IFDIR, status.owner == uid, status.mode & 0o077 == 0 else {
                throw NTError(.accessDenied, "\(path) is not a private directory of user \(uid)")
            }
        } catch let error as Errno {
            throw NTError(.accessDenied, "name directory \(path): \(error)")
        } catch let error as NTError {
            throw error
        } catch {
            throw NTError(.unsuccessful, "\(error)")
        }
        return path
    }

    /// Where `name` lives in `directory`.
    static func socketPath(_ name: String, in directory: String) -> String {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in name.utf8 { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        let hex = String(hash, radix: 16)
        return directory + "/n-" + String(repeating: "0", count: 16 - hex.count) + hex
    }

    /// The reply a name thread sends: 'KMTN', the kind, the name in UTF-8; the handle attached.
    static func reply(name: String, kind: Kind) -> [UInt8] {
        var writer = ByteWriter(capacity: 16 + name.utf8.count)
        writer.append(UInt32(0x4E54_4D4B))
        writer.append(kind.rawValue)
        writer.append(Array(name.utf8))
        return writer.bytes
    }

    /// Publishes `name` for the objects of `package`/`descriptors`: the returned handle is the
    /// sharer's, and the name lives while copies of it do.
    ///
    /// - Throws: `STATUS_OBJECT_NAME_COLLISION` when a live name of this user has it;
    ///   `STATUS_OBJECT_NAME_INVALID`; `STATUS_ACCESS_DENIED` for an unsafe directory.
    static func publish(_ name: String, kind: Kind, package: SharePackage, descriptors: [Int32]) throws(NTError) -> SharedHandle {
        try validate(name)
        let path = socketPath(name, in: try directory())
        guard path.utf8.count <= Kernel.maximumSocketPathLength else {
            throw NTError(.objectNameInvalid, "the name directory's path is too long for a socket")
        }
        // The handle the caller gets, whose last close retires the name (`keeper` hangs up then),
        // and the name thread's own handle, which it hands to openers.
        var keeper: OwnedDescriptor?
        let handle = try SharedPackageWriter.write(package, descriptors: descriptors, keptSender: &keeper)
        let served = OwnedDescriptor(FileDescriptor(adopting: try SharedPackageWriter.write(package, descriptors: descriptors).take()))
        let listener: FileDescriptor
        do {
            listener = try bindName(path, name: name)
        } catch let error as NTError {
            throw error
        } catch {
            throw NTError(.unsuccessful, "\(error)")
        }
        try NameServer.shared.add(NameServer.Entry(
            name: name, kind: kind, path: path, listener: OwnedDescriptor(listener),
            keeper: keeper!, served: served))
        return handle
    }

    private static func bindName(_ path: String, name: String) throws(NTError) -> FileDescriptor {
        for _ in 0..<2 {
            do {
                return try Kernel.listen(at: path)
            } catch let error where error == Errno(rawValue: EADDRINUSE) {
                // Live (someone answers) or stale (the sharer died): only a stale one is replaced.
                if (try? Kernel.connect(to: path)) != nil {
                    throw NTError(.objectNameCollision, "the name is in use")
                }
                Kernel.unlink(path)
            } catch {
                throw error.nt("publishing a name")
            }
        }
        throw NTError(.objectNameCollision, "the name is in use")
    }

    /// Resolves `name` in the caller's namespace to a new handle.
    ///
    /// - Throws: `STATUS_OBJECT_NAME_NOT_FOUND`; `STATUS_OBJECT_TYPE_MISMATCH` when the name is of
    ///   the other kind; `STATUS_OBJECT_NAME_INVALID`; `STATUS_ACCESS_DENIED`.
    static func resolve(_ name: String, kind: Kind) throws(NTError) -> SharedHandle {
        try validate(name)
        let path = socketPath(name, in: try directory())
        let connection: FileDescriptor
        do { connection = try Kernel.connect(to: path) } catch {
            switch error.rawValue {
            case ENOENT, ECONNREFUSED, ENAMETOOLONG: throw NTError(.objectNameNotFound, "no object is named \"\(name)\"")
            case EACCES, EPERM: throw NTError(.accessDenied, "the name's socket: \(error)")
            default: throw error.nt("looking up a name")
            }
        }
        // The sharer's name thread answers at once; a sharer that hangs is as good as gone.
        guard let ready = try? Kernel.poll([connection.rawValue], until: .after(nanoseconds: 10_000_000_000)), ready[0] != 0 else {
            throw NTError(.objectNameNotFound, "the sharer of \"\(name)\" does not answer")
        }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 8)
        defer { buffer.deallocate() }
        let message: Kernel.ReceivedMessage
        do { message = try Kernel.receive(connection.rawValue, into: buffer, peek: false) } catch { throw error.nt("reading a name's answer") }
        var reader = ByteReader(UnsafeRawBufferPointer(rebasing: buffer[0..<message.byteCount]))
        guard message.descriptors.count == 1, !message.dataTruncated,
              reader.read(UInt32.self) == 0x4E54_4D4B, let rawKind = reader.read(UInt32.self),
              let answered = reader.readBlob(reader.remaining), answered == Array(name.utf8)
        else { throw NTError(.objectNameNotFound, "no object is named \"\(name)\"") }
        guard rawKind == kind.rawValue else {
            throw NTError(.objectTypeMismatch, "\"\(name)\" names a \(rawKind == Kind.resource.rawValue ? "resource" : "sync object")")
        }
        return SharedHandle(message.descriptors.take(0))
    }
}

/// The process's name thread: answers lookups of the names this process published and retires
/// each name when its handle's last copy closes. Started with the first published name.
final class NameServer: Sendable {
    static let shared = NameServer()

    struct Entry: Sendable {
        let name: String
        let kind: Names.Kind
        let path: String
        let listener: OwnedDescriptor
        /// The sending end of the sharer's handle: hangs up when every copy of the handle is closed.
        let keeper: OwnedDescriptor
        /// A handle to the same objects, duplicated for each opener.
        let served: OwnedDescriptor
    }

    private let entries = Mutex<[Entry]>([])
    private let wake = Mutex<OwnedDescriptor?>(nil)

    func add(_ entry: Entry) throws(NTError) {
        let wakeFD: Int32 = try wake.withLock { (wake) throws(NTError) -> Int32 in
            if wake == nil {
                do throws(Errno) {
                    wake = OwnedDescriptor(try Kernel.eventfd())
                    try Kernel.detachedThread { NameServer.shared.serve() }
                } catch {
                    wake = nil
                    throw error.nt("starting the name thread")
                }
            }
            return wake!.rawValue
        }
        entries.withLock { $0.append(entry) }
        try? Kernel.eventfdSignal(wakeFD)
    }

    private func serve() {
        guard let wakeFD = wake.withLock({ $0?.rawValue }) else { return }
        while true {
            let current = entries.withLock { $0 }
            let descriptors = [wakeFD] + current.flatMap { [$0.listener.rawValue, $0.keeper.rawValue] }
            guard let events = try? Kernel.poll(descriptors, until: .never) else { continue }
            if events[0] != 0 {
                var counter: UInt64 = 0
                _ = read(wakeFD, &counter, 8)
            }
            for (index, entry) in current.enumerated() {
                let listenerEvents = events[1 + 2 * index], keeperEvents = events[2 + 2 * index]
                if keeperEvents & Int16(POLLHUP | POLLERR) != 0 {
                    // Every copy of the sharer's handle is closed: the name goes.
                    Kernel.unlink(entry.path)
                    entries.withLock { list in list.removeAll { $0.listener === entry.listener } }
                    continue
                }
                if listenerEvents & Int16(POLLIN) != 0, let connection = try? Kernel.accept(entry.listener.rawValue) {
                    try? Kernel.send(connection.rawValue, bytes: Names.reply(name: entry.name, kind: entry.kind), descriptors: [entry.served.rawValue])
                }
            }
        }
    }
}
