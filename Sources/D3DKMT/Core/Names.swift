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
        /// Only global share handles name a keyed mutex alone (``GlobalShares``).
        case keyedMutex = 3
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

    /// The object directories a name may start with, as Windows spells them (compared without
    /// case). The user has one session here: every `\Sessions\<n>\BaseNamedObjects\` is it.
    private static let sessionPrefix = "\\SESSIONS\\"
    private static let baseNamedObjects = "\\BASENAMEDOBJECTS\\"

    /// The key a name is published and looked up under: its namespace (`S` for the user's
    /// session: `\Sessions\<n>\BaseNamedObjects\X`, `Local\X` and a bare `X`; `G` for
    /// `Global\X` and `\BaseNamedObjects\X`), then the object's name folded to upper case one
    /// UTF-16 unit at a time, as Windows' object manager compares names (`OBJ_CASE_INSENSITIVE`,
    /// which all clients pass).
    ///
    /// - Throws: `STATUS_OBJECT_NAME_INVALID` for an empty or overlong name, or an empty object
    ///   name after its directory; `STATUS_OBJECT_PATH_NOT_FOUND` for a directory that does not
    ///   exist here (any other `\` path, or a `\` inside the object name).
    static func canonical(_ name: String) throws(NTError) -> String {
        try validate(name)
        let folded = fold(name)
        var namespace = "S"
        var leaf = Substring(folded)
        if leaf.hasPrefix(sessionPrefix) {
            let rest = leaf.dropFirst(sessionPrefix.count)
            let digits = rest.prefix { $0.isASCII && $0.isNumber }
            guard !digits.isEmpty, rest.dropFirst(digits.count).hasPrefix(baseNamedObjects) else {
                throw NTError(.objectPathNotFound, "\"\(name)\": no such object directory")
            }
            leaf = rest.dropFirst(digits.count + baseNamedObjects.count)
        } else if leaf.hasPrefix(baseNamedObjects) {
            namespace = "G"
            leaf = leaf.dropFirst(baseNamedObjects.count)
        } else if leaf.hasPrefix("GLOBAL\\") {
            namespace = "G"
            leaf = leaf.dropFirst(7)
        } else if leaf.hasPrefix("LOCAL\\") {
            leaf = leaf.dropFirst(6)
        } else if leaf.hasPrefix("\\") {
            throw NTError(.objectPathNotFound, "\"\(name)\": no such object directory")
        }
        guard !leaf.isEmpty else { throw NTError(.objectNameInvalid, "\"\(name)\" names a directory, not an object") }
        guard !leaf.contains("\\") else { throw NTError(.objectPathNotFound, "\"\(name)\": no such object directory") }
        return namespace + ":" + leaf
    }

    /// Upper case, one UTF-16 unit at a time (a unit whose upper case is not one unit stays).
    private static func fold(_ name: String) -> String {
        var units: [UInt16] = []
        units.reserveCapacity(name.utf16.count)
        for scalar in name.unicodeScalars {
            let upper = scalar.properties.uppercaseMapping.unicodeScalars
            if scalar.value <= 0xFFFF, upper.count == 1, let only = upper.first, only.value <= 0xFFFF {
                units.append(UInt16(only.value))
            } else {
                units.append(contentsOf: String(scalar).utf16)
            }
        }
        return String(decoding: units, as: UTF16.self)
    }

    /// The caller's namespace directory, created if needed and checked to be private.
    ///
    /// - Throws: `STATUS_ACCESS_DENIED` when the directory is not the caller's own private one.
    static func directory() throws(NTError) -> String {
        let uid = Kernel.userID
        var base = "/tmp"
        var leaf = "d3dkmt-\(uid)"
        if let runtime = Kernel.environment("XDG_RUNTIME_DIR"), runtime.hasPrefix("/"),
           let status = try? Kernel.pathStatus(runtime), status.owner == uid, status.mode & S_IFMT == S_IFDIR,
           status.mode & 0o077 == 0 {
            base = runtime
            leaf = "d3dkmt"
        }
        let path = base + "/" + leaf
        let status: (owner: UInt32, mode: UInt32)
        do throws(Errno) {
            try Kernel.makeDirectory(path, mode: 0o700)
            let found = try Kernel.pathStatus(path)
            status = (UInt32(found.owner), UInt32(found.mode))
        } catch {
            throw NTError(.accessDenied, "name directory \(path): \(error)")
        }
        guard status.mode & UInt32(S_IFMT) == UInt32(S_IFDIR), status.owner == UInt32(uid),
              status.mode & 0o077 == 0 else {
            throw NTError(.accessDenied, "\(path) is not a private directory of user \(uid)")
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
    static func publish(_ displayName: String, kind: Kind, package: SharePackage,
                        descriptors: [Int32]) throws(NTError) -> SharedHandle {
        let name = try canonical(displayName)
        let path = socketPath(name, in: try directory())
        guard path.utf8.count <= Kernel.maximumSocketPathLength else {
            throw NTError(.objectNameInvalid, "the name directory's path is too long for a socket")
        }
        // The handle the caller gets, whose last close retires the name (its sender hangs up then),
        // and the name thread's own handle, which it hands to openers.
        let written = try SharedPackageWriter.writeKeepingSender(package, descriptors: descriptors)
        let served = try SharedPackageWriter.write(package, descriptors: descriptors)
        let listener = try bindName(path, name: name)
        try NameServer.shared.add(NameServer.Entry(name: name, kind: kind, path: path, listener: listener,
                                                   keeper: written.sender, served: served))
        return written.handle
    }

    /// Binds the name's socket. A socket already there is live (its name thread answers a
    /// connection with a handle: `STATUS_OBJECT_NAME_COLLISION`), retired (its thread saw the
    /// last handle close, removed the socket, and hung up without answering), or stale (its
    /// sharer died: nobody listens, so it is replaced).
    private static func bindName(_ path: String, name: String) throws(NTError) -> FileDescriptor {
        for _ in 0..<3 {
            do {
                return try Kernel.listen(at: path)
            } catch let error where error == Errno(rawValue: EADDRINUSE) {
                guard let connection = try? Kernel.connect(to: path) else {
                    Kernel.unlink(path)
                    continue
                }
                if (try? answer(connection.rawValue)) != nil {
                    throw NTError(.objectNameCollision, "the name is in use")
                }
            } catch {
                throw error.nt("publishing a name")
            }
        }
        throw NTError(.objectNameCollision, "the name is in use")
    }

    /// The handle a name thread sends on `connection` (its reply's kind and name, unchecked), or
    /// nil when it hangs up without one (the name was retired).
    struct Reply: ~Copyable {
        var kind: UInt32
        var name: [UInt8]
        var handle: SharedHandle
    }

    static func answer(_ connection: Int32) throws(NTError) -> Reply? {
        // The sharer's name thread answers at once; a sharer that hangs is as good as gone.
        let ready: [Int16]
        do {
            ready = try Kernel.poll([BorrowedDescriptor(unowned: connection)],
                                    until: .after(nanoseconds: 10_000_000_000))
        } catch {
            throw error.nt("waiting for a name's answer")
        }
        guard ready[0] != 0 else { return nil }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 8)
        defer { buffer.deallocate() }
        let message: Kernel.ReceivedMessage
        do { message = try Kernel.receive(BorrowedDescriptor(unowned: connection), into: buffer, peek: false) } catch {
            // A hang-up without an answer: the name was retired.
            if error.rawValue == ECONNRESET || error.rawValue == EPIPE { return nil }
            throw error.nt("reading a name's answer")
        }
        var reader = ByteReader(UnsafeRawBufferPointer(rebasing: buffer[0..<message.byteCount]))
        guard message.descriptors.count == 1, !message.dataTruncated,
              reader.read(UInt32.self) == 0x4E54_4D4B, let rawKind = reader.read(UInt32.self),
              let answered = reader.readBlob(reader.remaining)
        else { return nil }
        return Reply(kind: rawKind, name: answered, handle: SharedHandle(message.descriptors.take(0)))
    }

    /// Resolves `name` in the caller's namespace to a new handle. Synchronous with the sharer's
    /// close: once the last copy of the named handle is closed, every lookup is not found.
    ///
    /// - Throws: `STATUS_OBJECT_NAME_NOT_FOUND`; `STATUS_OBJECT_TYPE_MISMATCH` when the name is of
    ///   the other kind; `STATUS_OBJECT_NAME_INVALID`, `STATUS_OBJECT_PATH_NOT_FOUND`;
    ///   `STATUS_ACCESS_DENIED` for an unsafe namespace directory.
    static func resolve(_ displayName: String, kind: Kind) throws(NTError) -> SharedHandle {
        let name = try canonical(displayName)
        let path = socketPath(name, in: try directory())
        let connection: FileDescriptor
        do { connection = try Kernel.connect(to: path) } catch {
            switch error.rawValue {
            case ENOENT, ECONNREFUSED, ENAMETOOLONG:
                throw NTError(.objectNameNotFound, "no object is named \"\(displayName)\"")
            case EACCES, EPERM: throw NTError(.accessDenied, "the name's socket: \(error)")
            default: throw error.nt("looking up a name")
            }
        }
        guard let reply = try answer(connection.rawValue), reply.name == Array(name.utf8) else {
            throw NTError(.objectNameNotFound, "no object is named \"\(displayName)\"")
        }
        guard reply.kind == kind.rawValue else {
            throw NTError(.objectTypeMismatch, "\"\(displayName)\" names a "
                                               + "\(reply.kind == Kind.resource.rawValue ? "resource" : "sync object")")
        }
        return reply.handle
    }
}
