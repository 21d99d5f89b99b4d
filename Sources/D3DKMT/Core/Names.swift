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
/// sharing process's event thread (``NameServer``) answers each connection with the full name
/// and a handle to the objects; the opener checks the name (hash collisions cannot alias) and
/// keeps the handle.
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
    private static let sessionPrefix: StaticString = "\\SESSIONS\\"
    private static let baseNamedObjects: StaticString = "\\BASENAMEDOBJECTS\\"

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
        var folded = fold(name)
        // The directories are ASCII: compared and cut as UTF-8 bytes.
        let parsed = folded.withUTF8 { (bytes) -> Result<(String, Int), NTError> in
            func starts(with prefix: StaticString, at offset: Int) -> Bool {
                prefix.withUTF8Buffer { prefix in
                    bytes.count - offset >= prefix.count
                        && zip(bytes[offset...], prefix).allSatisfy { $0 == $1 }
                }
            }
            var namespace = "S", start = 0
            if starts(with: sessionPrefix, at: 0) {
                var end = sessionPrefix.utf8CodeUnitCount
                while end < bytes.count, (0x30...0x39).contains(bytes[end]) { end += 1 }
                guard end > sessionPrefix.utf8CodeUnitCount, starts(with: baseNamedObjects, at: end) else {
                    return .failure(NTError(.objectPathNotFound, "\"\(name)\": no such object directory"))
                }
                start = end + baseNamedObjects.utf8CodeUnitCount
            } else if starts(with: baseNamedObjects, at: 0) {
                (namespace, start) = ("G", baseNamedObjects.utf8CodeUnitCount)
            } else if starts(with: "GLOBAL\\", at: 0) {
                (namespace, start) = ("G", 7)
            } else if starts(with: "LOCAL\\", at: 0) {
                start = 6
            } else if starts(with: "\\", at: 0) {
                return .failure(NTError(.objectPathNotFound, "\"\(name)\": no such object directory"))
            }
            guard start < bytes.count else {
                return .failure(NTError(.objectNameInvalid, "\"\(name)\" names a directory, not an object"))
            }
            guard !bytes[start...].contains(0x5C) else {
                return .failure(NTError(.objectPathNotFound, "\"\(name)\": no such object directory"))
            }
            return .success((namespace, start))
        }
        let (namespace, leafStart) = try parsed.get()
        return namespace + ":" + String(decoding: folded.utf8.dropFirst(leafStart), as: UTF8.self)
    }

    /// Upper case, one UTF-16 unit at a time (a unit whose upper case is not one unit stays).
    private static func fold(_ name: String) -> String {
        // Names are nearly always ASCII: a-z become A-Z, byte by byte.
        var name = name
        if let ascii = name.withUTF8({ (bytes) -> String? in
            guard !bytes.contains(where: { $0 >= 0x80 }) else { return nil }
            return String(unsafeUninitializedCapacity: bytes.count) { folded in
                for (index, byte) in bytes.enumerated() {
                    folded[index] = (0x61...0x7A).contains(byte) ? byte - 0x20 : byte
                }
                return bytes.count
            }
        }) {
            return ascii
        }
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
        var leaf = "d3dkmt-" + String(uid)
        if let runtime = Kernel.environment("XDG_RUNTIME_DIR"), runtime.hasPrefix("/"),
           let status = try? Kernel.pathStatus(runtime), status.owner == uid, status.mode & S_IFMT == S_IFDIR,
           status.mode & 0o077 == 0 {
            base = runtime
            leaf = "d3dkmt"
        }
        let path = base + "/" + leaf
        let status: (owner: UInt32, mode: UInt32)
        do throws(Errno) {
            // Made once: every later call finds it.
            let found: (owner: uid_t, mode: mode_t)
            do { found = try Kernel.pathStatus(path) } catch where error.rawValue == ENOENT {
                try Kernel.makeDirectory(path, mode: 0o700)
                found = try Kernel.pathStatus(path)
            }
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

    /// Where `name` lives in `directory`: its listening socket.
    static func socketPath(_ name: String, in directory: String) -> String {
        path(.socket, hash(name), in: directory)
    }

    /// Where `name`'s record lives in `directory` (``Record``), next to its socket.
    static func recordPath(_ name: String, in directory: String) -> String {
        path(.record, hash(name), in: directory)
    }

    /// The two files of a name in the namespace directory.
    enum File: UInt8 {
        /// `n-HASH`: the listening socket.
        case socket = 0x6E
        /// `r-HASH`: the record.
        case record = 0x72
    }

    /// The 64-bit FNV-1a hash of `name`'s UTF-8.
    static func hash(_ name: String) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in name.utf8 { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        return hash
    }

    /// `directory/n-HASH` or `directory/r-HASH`: the hash as 16 lower-case hexadecimal digits.
    static func path(_ file: File, _ hash: UInt64, in directory: String) -> String {
        let leaf = String(unsafeUninitializedCapacity: 19) { bytes in
            bytes[0] = 0x2F
            bytes[1] = file.rawValue
            bytes[2] = 0x2D
            for index in 0..<16 {
                let digit = UInt8(truncatingIfNeeded: hash >> (60 - 4 * index)) & 0xF
                bytes[3 + index] = digit < 10 ? 0x30 + digit : 0x57 + digit
            }
            return 19
        }
        return directory + leaf
    }

    /// The reply a name thread sends: 'KMTN', the kind, the name in UTF-8; the handle attached.
    static func reply(name: String, kind: Kind) -> [UInt8] {
        ByteWriter.bytes(count: 8 + name.utf8.count) { writer in
            writer.append(UInt32(0x4E54_4D4B))
            writer.append(kind.rawValue)
            writer.append(name.utf8)
        }
    }

    /// Publishes `name` for the objects of `package`/`descriptors`: the returned handle is the
    /// sharer's, and the name lives while copies of it do.
    ///
    /// - Throws: `STATUS_OBJECT_NAME_COLLISION` when a live name of this user has it;
    ///   `STATUS_OBJECT_NAME_INVALID`; `STATUS_ACCESS_DENIED` for an unsafe directory.
    static func publish(_ displayName: String, kind: Kind, package: SharePackage,
                        descriptors: [Int32]) throws(NTError) -> SharedHandle {
        let name = try canonical(displayName)
        let directory = try directory()
        let path = socketPath(name, in: directory)
        guard path.utf8.count <= Kernel.maximumSocketPathLength else {
            throw NTError(.objectNameInvalid, "the name directory's path is too long for a socket")
        }
        // The handle the caller gets, whose last close retires the name (its sender reports it),
        // and the objects' descriptors, held open (not in flight) by the name service, from which
        // each opener gets a handle of its own.
        let written = try SharedPackageWriter.writeKeepingSender(package, descriptors: descriptors)
        let held = FileDescriptorList(capacity: descriptors.count)
        for descriptor in descriptors {
            do { held.append(try Kernel.duplicate(BorrowedDescriptor(unowned: descriptor))) } catch {
                throw error.nt("keeping a named handle's descriptors")
            }
        }
        // The record (the fast lookup's) names the keeper and the openers' handle by number and
        // identity; without the keeper's identity there is no record, and every lookup asks.
        let keeper = written.sender.borrowed
        let record = (try? Kernel.fileIdentity(keeper)).map {
            Record.Writer(path: recordPath(name, in: directory), name: name, kind: kind, access: package.access,
                          keeper: (keeper.rawValue, $0))
        }
        let openers = try OpenersHandle(package: package, held: held, record: record)
        let listener = try bindName(path, name: name)
        // The name is this process's now: its record replaces any a dead sharer left.
        openers.writeRecord()
        _ = try NameServer.shared.add(path: path, recordPath: record?.path, listener: listener,
                                      keeper: written.sender,
                                      reply: reply(name: name, kind: kind)) { (send) throws(NTError) in
            try openers.lend(send)
        }
        return written.handle
    }

    /// The handle openers of a name get copies of (sent with `SCM_RIGHTS`): a second handle to the
    /// named objects, apart from the sharer's so that openers' copies do not keep the name alive
    /// (``SharedHandle/open(name:access:)`` then grants the access asked for). Made with the
    /// name, and again when a holder read its package out of it (a read without `MSG_PEEK`); the
    /// name's record is written again with it.
    final class OpenersHandle: Sendable {
        private let package: SharePackage
        /// The objects' descriptors, for making the handle again.
        private let held: FileDescriptorList
        private let record: Record.Writer?
        private let current: ForkSafeMutex<SharedHandle>

        /// - Parameter record: writes the name's record; nil for a name without one.
        /// - Throws: the kernel's status when the handle cannot be made.
        init(package: SharePackage, held: FileDescriptorList, record: Record.Writer?) throws(NTError) {
            self.package = package
            self.held = held
            self.record = record
            current = ForkSafeMutex(try Self.make(package, held))
        }

        /// Writes the name's record for the current handle (a record that cannot be written is
        /// left out: lookups ask the name's server instead).
        func writeRecord() {
            guard let record else { return }
            current.withLock { record.write(openers: $0.descriptor.borrowed) }
        }

        private static func make(_ package: SharePackage, _ held: FileDescriptorList) throws(NTError) -> SharedHandle {
            try SharedPackageWriter.write(package, descriptors: (0..<held.count).map { held[$0] })
        }

        /// Calls `send` with the handle (made again first if it was spent), under the handle's lock.
        ///
        /// - Throws: the kernel's status when a spent handle cannot be made again.
        func lend(_ send: (BorrowedDescriptor) -> Void) throws(NTError) {
            try current.withLock { (current) throws(NTError) in
                if !Self.holdsPackage(current) {
                    current = try Self.make(package, held)
                    record?.write(openers: current.descriptor.borrowed)
                }
                send(current.descriptor.borrowed)
            }
        }

        /// Whether the handle's package is still queued in it (`SIOCINQ`; at its end of file after
        /// a read-out, the socket polls readable all the same).
        private static func holdsPackage(_ handle: borrowing SharedHandle) -> Bool {
            ((try? Kernel.queuedMessageBytes(handle.descriptor.borrowed)) ?? 0) > 0
        }
    }

    /// How long opening by name waits, in all, for a name's sharer to take the connection and
    /// answer: a stopped or wedged sharer gives `STATUS_IO_TIMEOUT` after this.
    static let patience: Int64 = 5_000_000_000

    /// Connects to the name's socket without blocking: a listener whose backlog is full (its
    /// process stopped accepting) is tried again every 10 ms until `deadline`.
    ///
    /// - Throws: `STATUS_OBJECT_NAME_NOT_FOUND` when nothing listens; `STATUS_IO_TIMEOUT` when
    ///   the listener's queue stays full until the deadline; `STATUS_ACCESS_DENIED`.
    private static func connect(_ path: String, _ displayName: String,
                                until deadline: Deadline) throws(NTError) -> FileDescriptor {
        while true {
            do { return try Kernel.connect(to: path, nonBlocking: true) } catch {
                switch error.rawValue {
                case ENOENT, ECONNREFUSED, ENAMETOOLONG:
                    throw NTError(.objectNameNotFound, "no object is named \"\(displayName)\"")
                case EACCES, EPERM: throw NTError(.accessDenied, "the name's socket: \(error)")
                case EAGAIN where Deadline.now < deadline:
                    _ = try? Kernel.poll([], until: min(deadline, .after(nanoseconds: 10_000_000)))
                case EAGAIN:
                    throw NTError(.ioTimeout, "the sharer of \"\(displayName)\" does not take connections "
                                              + "(stopped or wedged)")
                default: throw error.nt("looking up a name")
                }
            }
        }
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
                let deadline = Deadline.after(nanoseconds: patience)
                let connection: FileDescriptor
                do { connection = try connect(path, name, until: deadline) } catch {
                    guard error.status == .objectNameNotFound else {
                        // A sharer that does not answer still holds the name.
                        throw NTError(.objectNameCollision, "the name is in use (\(error.reason))")
                    }
                    Kernel.unlink(path)
                    continue
                }
                let live: Bool
                do throws(NTError) { live = try answer(connection.borrowed, until: deadline) != nil } catch {
                    throw NTError(.objectNameCollision, "the name is in use (\(error.reason))")
                }
                if live { throw NTError(.objectNameCollision, "the name is in use") }
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

    /// - Throws: `STATUS_IO_TIMEOUT` when the sharer has not answered by `deadline`.
    static func answer(_ connection: BorrowedDescriptor, until deadline: Deadline) throws(NTError) -> Reply? {
        let ready: [Int16]
        do {
            ready = try Kernel.poll([connection], until: deadline)
        } catch {
            throw error.nt("waiting for a name's answer")
        }
        guard ready[0] != 0 else {
            throw NTError(.ioTimeout, "the name's sharer did not answer in \(patience / 1_000_000_000) s "
                                      + "(stopped or wedged)")
        }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 8)
        defer { buffer.deallocate() }
        let message: Kernel.ReceivedMessage
        do { message = try Kernel.receive(connection, into: buffer, peek: false) } catch {
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
    ///
    /// A lookup first tries the name's record (``Record/lookUp(_:name:kind:)``: no round trip to
    /// the sharer); when that cannot answer, it asks the sharer's name server over the socket.
    static func resolve(_ displayName: String, kind: Kind) throws(NTError) -> SharedHandle {
        var access: UInt32?
        return try resolve(displayName, kind: kind, access: &access)
    }

    /// As ``resolve(_:kind:)``, for a handle that grants `access` (``SharedHandle/granting(_:)``:
    /// a new handle when the one found grants other access).
    static func resolve(_ displayName: String, kind: Kind, granting access: UInt32) throws(NTError) -> SharedHandle {
        var granted: UInt32?
        let handle = try resolve(displayName, kind: kind, access: &granted)
        // The record said what the handle grants: no need to read its package for it.
        if granted == access { return handle }
        return try handle.granting(access)
    }

    /// As ``resolve(_:kind:)``; `access` is set to the access the handle grants when the lookup
    /// knows it without reading the handle's package (a record's), else left nil.
    private static func resolve(_ displayName: String, kind: Kind,
                                access: inout UInt32?) throws(NTError) -> SharedHandle {
        let name = try canonical(displayName)
        let directory = try directory()
        let hash = hash(name)
        if let handle = Record.lookUp(path(.record, hash, in: directory), name: name, kind: kind, access: &access) {
            return handle
        }
        let path = path(.socket, hash, in: directory)
        let deadline = Deadline.after(nanoseconds: patience)
        let connection = try connect(path, displayName, until: deadline)
        guard let reply = try answer(connection.borrowed, until: deadline), reply.name == Array(name.utf8) else {
            throw NTError(.objectNameNotFound, "no object is named \"\(displayName)\"")
        }
        guard reply.kind == kind.rawValue else {
            throw NTError(.objectTypeMismatch, "\"\(displayName)\" names a "
                                               + "\(reply.kind == Kind.resource.rawValue ? "resource" : "sync object")")
        }
        return reply.handle
    }
}
