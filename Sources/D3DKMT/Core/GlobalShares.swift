#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Synchronization

/// Global (KMT) share handles: 32-bit values that name a shared resource, keyed mutex or sync
/// object in any process of the user, the way `hGlobalShare` and `hSharedHandle` do on Windows.
///
/// There is no kernel object for "a number that names descriptors", and no daemon: every process
/// that holds a local reference to such an object serves its value. The registry lives in the
/// user's private name directory (``Names/directory()``):
///
/// - `g-counter`: the last value index handed out, read and advanced under an OFD lock, so values
///   are unique per user and reused only after 2^24 - 1 others (a stale value does not name a new
///   object for a long while).
/// - `g-XXXXXXXX/` (the value in hex): one listening `SOCK_SEQPACKET` socket per holding process,
///   named by a random token. Its name thread answers a connection as it answers a name lookup:
///   the value (as the reply's name), the kind, and a shared handle to the objects attached.
///
/// An opener connects to the holders one by one and takes the first answer; the objects then
/// live in the opener too, so it starts serving the value itself. The creator may exit and a
/// third process still opens the value from whoever holds it. When a process's last local
/// reference goes (``GlobalShare`` is released), its socket is unlinked before the call returns;
/// when a process dies the kernel closes its listener, and the first lookup that finds the socket
/// refusing connections removes it. Once no process of the user holds the object, the value no
/// longer opens (`STATUS_INVALID_PARAMETER`, as on Windows). Another user's processes cannot
/// enter the directory: values are per user, where Windows' are system-wide.
enum GlobalShares {
    /// The value shape Windows gives global handles: bits 31 and 30 set, the low 6 bits 2.
    static func isGlobal(_ value: UInt32) -> Bool {
        value & 0xC000_0000 == 0xC000_0000 && value & 0x3F == 2 && index(of: value) != 0
    }

    /// Values carry a 24-bit index (bits 6...29), never 0.
    static let indexLimit: UInt32 = 1 << 24

    static func value(index: UInt32) -> UInt32 { 0xC000_0000 | index << 6 | 2 }

    static func index(of value: UInt32) -> UInt32 { (value >> 6) & (indexLimit - 1) }

    static func hex(_ value: UInt32) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 8 - digits.count) + digits
    }

    /// The name a holder answers with.
    static func replyName(_ value: UInt32) -> String { "global:" + hex(value) }

    static func holdersDirectory(_ value: UInt32, in base: String) -> String { base + "/g-" + hex(value) }

    /// The user's name directory, checked once per process (``Names/directory()``) and again when
    /// it has gone (a holder's socket cannot be made in it).
    private static let base = ForkSafeMutex<String?>(nil)

    private static func baseDirectory(checkAgain: Bool = false) throws(NTError) -> String {
        if !checkAgain, let known = base.withLock({ $0 }) { return known }
        let checked = try Names.directory()
        base.withLock { $0 = checked }
        return checked
    }

    /// The socket names of this process's holdings: a random prefix drawn once, and a count.
    private static let tokens = ForkSafeMutex<(prefix: UInt64, next: UInt64)>((0, 0))

    private static func nextToken() -> String {
        let (prefix, count) = tokens.withLock { (tokens) -> (UInt64, UInt64) in
            if tokens.prefix == 0 { tokens.prefix = UInt64.random(in: 1...UInt64.max) }
            tokens.next += 1
            return (tokens.prefix, tokens.next)
        }
        return String(prefix, radix: 16) + "-" + String(count, radix: 16)
    }

    /// This process's holdings, by value: the served entry and how many local references use it.
    /// A `fork()`ed child starts with none: what it inherited is the parent's to serve (the
    /// objects it inherited open only from the parent or another holder, and a value it opens is
    /// served by the child itself).
    private static let holdings = ForkSafeMutex<(owner: Int32, byValue: [UInt32: (holding: Holding, references: Int)])>(
        (0, [:]))

    private static func withHeld<R>(_ body: (inout [UInt32: (holding: Holding, references: Int)]) -> R) -> R {
        let process = Kernel.processID
        return holdings.withLock { state in
            if state.owner != process { state = (process, [:]) }
            return body(&state.byValue)
        }
    }

    /// One process's serving of one value: its entry in the name service and the handle each
    /// opener gets a duplicate of.
    final class Holding: Sendable {
        let value: UInt32
        let kind: Names.Kind
        let served: SharedHandle
        let directory: String
        let entry = ForkSafeMutex<NameServer.EntryID?>(nil)

        init(value: UInt32, kind: Names.Kind, served: consuming SharedHandle, directory: String) {
            self.value = value
            self.kind = kind
            self.served = served
            self.directory = directory
        }

        /// Stops serving: the socket is gone when this returns.
        func retire() {
            if let id = entry.withLock({ $0.take() }) { NameServer.shared.remove(id) }
        }
    }

    /// Gives the objects `handle` holds a new value, served by this process from now on
    /// (`D3DKMTCreateAllocation` with `CreateShared` alone, `D3DKMTCreateKeyedMutex(2)` without
    /// `NtSecuritySharing`, `D3DKMTCreateSynchronizationObject2` with `Shared` alone).
    ///
    /// - Throws: `STATUS_ACCESS_DENIED` for an unsafe name directory; the kernel's status when the
    ///   registry cannot be written or the socket made.
    static func create(_ kind: Names.Kind, serving handle: consuming SharedHandle) throws(NTError) -> GlobalShare {
        let base = try baseDirectory()
        let value = try allocateValue(in: base)
        let holding = try publish(value, kind: kind, serving: handle, in: base)
        withHeld { $0[value] = (holding, 1) }
        return GlobalShare(value: value, kind: kind)
    }

    /// Opens `value` (`D3DKMTOpenResource(2)`, `D3DKMTQueryResourceInfo`, `D3DKMTOpenKeyedMutex(2)`,
    /// `D3DKMTOpenSynchronizationObject`): runs `body` on a handle to its objects and, when `body`
    /// succeeds and `reference` is true, returns a new local reference (this process then serves
    /// the value too). A value this process holds is opened from its own handle, without asking
    /// anyone.
    ///
    /// - Throws: `STATUS_INVALID_PARAMETER` when `value` is not a global handle's shape, no process
    ///   of this user holds it (never made, or its last reference gone), or it names another kind
    ///   of object; what `body` throws; the kernel's status when this process cannot serve it.
    static func open<R>(_ value: UInt32, kind: Names.Kind, reference: Bool = true,
                        _ body: (borrowing SharedHandle) throws(NTError) -> R) throws(NTError) -> (R, GlobalShare?) {
        guard isGlobal(value) else {
            throw NTError(.invalidParameter, "0x\(hex(value)) is not a global D3DKMT handle")
        }
        // Held here: open from our own handle, the reference taken first so the holding stays.
        let local: Holding? = withHeld { held in
            guard let found = held[value] else { return nil }
            if reference { held[value] = (found.holding, found.references + 1) }
            return found.holding
        }
        if let local {
            let share = reference ? GlobalShare(value: value, kind: local.kind) : nil
            guard local.kind == kind else { throw kindMismatch(value, local.kind, kind) }
            return (try body(local.served), share)
        }
        let base = try baseDirectory()
        let handle = try lookup(value, kind: kind, in: base)
        let result = try body(handle)
        guard reference else { return (result, nil) }
        let holding = try publish(value, kind: kind, serving: handle, in: base)
        let extra: Holding? = withHeld { held in
            guard let found = held[value] else {
                held[value] = (holding, 1)
                return nil
            }
            // Another thread of this process opened it meanwhile: one holding serves both.
            held[value] = (found.holding, found.references + 1)
            return holding
        }
        extra?.retire()
        return (result, GlobalShare(value: value, kind: kind))
    }

    /// Drops one local reference; the last one stops this process serving the value (its socket
    /// is gone when this returns).
    static func release(_ value: UInt32) {
        let retired: Holding? = withHeld { held in
            guard let found = held[value] else { return nil }
            guard found.references <= 1 else {
                held[value] = (found.holding, found.references - 1)
                return nil
            }
            held[value] = nil
            found.holding.retire()
            return found.holding
        }
        if let retired { Kernel.removeDirectory(retired.directory) }  // when no other holder is left
    }

    private static func kindMismatch(_ value: UInt32, _ found: Names.Kind, _ asked: Names.Kind) -> NTError {
        NTError(.invalidParameter, "global handle 0x\(hex(value)) names a \(found), not a \(asked)")
    }

    /// Binds this process's socket for `value` and hands it to the name thread.
    private static func publish(_ value: UInt32, kind: Names.Kind, serving handle: consuming SharedHandle,
                                in base: String) throws(NTError) -> Holding {
        let directory = holdersDirectory(value, in: base)
        var listener: FileDescriptor?
        var path = ""
        for _ in 0..<4 {
            do throws(Errno) {
                try Kernel.makeDirectory(directory, mode: 0o700)
                path = directory + "/" + nextToken()
                listener = try Kernel.listen(at: path)
                break
            } catch where error.rawValue == ENOENT || error.rawValue == EADDRINUSE {
                // The value's directory was removed by a holder leaving (or the name directory by
                // a cleaner: it is made again), or a fork()ed sibling took the same token.
                if error.rawValue == ENOENT, (try? baseDirectory(checkAgain: true)) == nil { break }
                continue
            } catch {
                throw error.nt("serving a global handle")
            }
        }
        guard let listener = listener.take() else {
            throw NTError(.insufficientResources, "no socket could be bound for global handle 0x\(hex(value))")
        }
        let holding = Holding(value: value, kind: kind, served: handle, directory: directory)
        let id = try NameServer.shared.add(path: path, listener: listener, keeper: nil,
                                           reply: Names.reply(name: replyName(value), kind: kind)) { send in
            send(holding.served.descriptor.borrowed)
        }
        holding.entry.withLock { $0 = id }
        return holding
    }

    /// How long a lookup waits for each holder before asking the next one; holders that have
    /// not answered by then are all waited for together, until ``Names/patience`` in all.
    static let holderPatience: Int64 = 500_000_000

    /// Asks the holders of `value` for a handle, removing the sockets of holders that died. A
    /// holder that takes no connection or does not answer (stopped, wedged) is passed over: the
    /// whole lookup is bounded by ``Names/patience``.
    ///
    /// - Throws: `STATUS_INVALID_PARAMETER` when no holder answers with one; `STATUS_IO_TIMEOUT`
    ///   when holders exist but none answered in time.
    private static func lookup(_ value: UInt32, kind: Names.Kind, in base: String) throws(NTError) -> SharedHandle {
        let directory = holdersDirectory(value, in: base)
        let deadline = Deadline.after(nanoseconds: Names.patience)
        let waiting = FileDescriptorList()
        var wedged = false
        // One holder after the other, each for a little while.
        for entry in Kernel.directoryEntries(directory) {
            let path = directory + "/" + entry
            let connection: FileDescriptor
            do { connection = try Kernel.connect(to: path, nonBlocking: true) } catch {
                if error.rawValue == ECONNREFUSED { Kernel.unlink(path) }  // its holder died
                if error.rawValue == EAGAIN { wedged = true }  // its backlog is full: not accepting
                continue
            }
            if let handle = try answer(connection.borrowed, value, kind,
                                       until: min(deadline, .after(nanoseconds: holderPatience))) {
                return handle
            }
            if (try? Kernel.poll([connection.borrowed], events: 0, until: .now)[0]) == 0 {
                waiting.append(connection)  // not answered yet: maybe later
            }
        }
        // Then the slow ones together, until the deadline.
        while Deadline.now < deadline {
            let open = (0..<waiting.count).filter { waiting.isPresent($0) }
            guard !open.isEmpty else { break }
            guard let ready = try? Kernel.poll(open.map(waiting.borrow), until: deadline) else { break }
            for (slot, events) in zip(open, ready) where events != 0 {
                let connection = waiting.take(slot)
                if let handle = try answer(connection.borrowed, value, kind, until: .now) { return handle }
            }
            if ready.allSatisfy({ $0 == 0 }) { break }
        }
        if wedged || (0..<waiting.count).contains(where: waiting.isPresent) {
            throw NTError(.ioTimeout, "no holder of global handle 0x\(hex(value)) answered in "
                                      + "\(Names.patience / 1_000_000_000) s (stopped or wedged)")
        }
        Kernel.removeDirectory(directory)
        throw NTError(.invalidParameter, "global handle 0x\(hex(value)) is not open in any process of this user")
    }

    /// The handle a holder answers `connection` with, nil when it did not by `deadline` or hung up
    /// (retired while asked).
    ///
    /// - Throws: `STATUS_INVALID_PARAMETER` when the holder says the value is another kind.
    private static func answer(_ connection: BorrowedDescriptor, _ value: UInt32, _ kind: Names.Kind,
                               until deadline: Deadline) throws(NTError) -> SharedHandle? {
        guard let reply = try? Names.answer(connection, until: deadline),
              reply.name == Array(replyName(value).utf8), let answered = Names.Kind(rawValue: reply.kind) else {
            return nil
        }
        guard answered == kind else { throw kindMismatch(value, answered, kind) }
        return reply.handle
    }

    /// Whether any process still serves `value` (a connection is answered or at least accepted).
    private static func isHeld(_ value: UInt32, in base: String) -> Bool {
        let directory = holdersDirectory(value, in: base)
        for entry in Kernel.directoryEntries(directory) {
            let path = directory + "/" + entry
            do {
                _ = try Kernel.connect(to: path, nonBlocking: true)
                return true
            } catch {
                if error.rawValue == ECONNREFUSED { Kernel.unlink(path) }
                if error.rawValue == EAGAIN { return true }  // alive, its backlog full
            }
        }
        return false
    }

    /// `g-counter`, open and locked (an OFD lock on its first byte, released when it closes).
    ///
    /// - Throws: `STATUS_IO_TIMEOUT` when another process holds the lock for ``Names/patience``.
    private static func lockedCounter(in base: String) throws(NTError) -> FileDescriptor {
        let counter: FileDescriptor
        do { counter = try Kernel.open(base + "/g-counter", O_RDWR | O_CREAT, mode: 0o600) } catch {
            throw error.nt("opening the global handle counter")
        }
        let deadline = Deadline.after(nanoseconds: Names.patience)
        while true {
            do {
                if try Kernel.tryLockByte(counter.borrowed, at: 0) { return counter }
            } catch {
                throw error.nt("locking the global handle counter")
            }
            guard Deadline.now < deadline else {
                throw NTError(.ioTimeout, "another process holds the global handle counter (stopped or wedged)")
            }
            _ = try? Kernel.poll([], until: .after(nanoseconds: 1_000_000))
        }
    }

    /// The next free value of this user: the counter in `g-counter` advanced under an OFD lock
    /// (skipping, after a wrap, values some process still holds). A process stopped while it holds
    /// the lock delays the others by at most ``Names/patience``.
    ///
    /// - Throws: `STATUS_IO_TIMEOUT` when the lock stays taken that long; the kernel's status when
    ///   the counter cannot be read or written.
    private static func allocateValue(in base: String) throws(NTError) -> UInt32 {
        let counter = try lockedCounter(in: base)  // unlocked when it closes
        do throws(Errno) {
            var last: UInt32 = 0
            let count = try withUnsafeMutableBytes(of: &last) { (bytes) throws(Errno) -> Int in
                try Kernel.readAt(counter.borrowed, into: bytes, at: 0)
            }
            if count != 4 { last = 0 }
            var index = last
            for _ in 0..<64 {
                index = index % (indexLimit - 1) + 1
                let value = value(index: index)
                guard isHeld(value, in: base) else {
                    var stored = index
                    try withUnsafeBytes(of: &stored) { (bytes) throws(Errno) in
                        try Kernel.writeAt(counter.borrowed, bytes, at: 0)
                    }
                    return value
                }
            }
            throw Errno(rawValue: ENOSPC)
        } catch {
            throw error.nt("allocating a global handle")
        }
    }
}

/// A process's local reference to a global share value (`hGlobalShare`, `hSharedHandle`): while
/// any lives, the process serves the value to other processes of the user. Released when the
/// object holding it (a ``Resource``, ``KeyedMutex`` or ``SyncObject``) goes.
public final class GlobalShare: Sendable {
    /// The 32-bit value: bits 31 and 30 set, the low 6 bits 2 (how clients tell it from a local
    /// `D3DKMT_HANDLE`).
    public let value: UInt32
    let kind: Names.Kind

    init(value: UInt32, kind: Names.Kind) {
        self.value = value
        self.kind = kind
    }

    deinit {
        GlobalShares.release(value)
    }
}

/// An object's slot for its ``GlobalShare``: set once (at creation or when opened by value), kept
/// until the object goes. Inline in the object, an atomic: no lock and no allocation for the many
/// objects that never have a global handle.
struct GlobalReference: ~Copyable, Sendable {
    private let share = Atomic<Unmanaged<GlobalShare>?>(nil)

    /// Keeps `share` (the first one given; a later one is dropped).
    func set(_ new: GlobalShare?) {
        guard let new else { return }
        let retained = Unmanaged.passRetained(new)
        if !share.compareExchange(expected: nil, desired: retained, ordering: .acquiringAndReleasing).exchanged {
            retained.release()
        }
    }

    /// The value, when there is a share.
    var value: UInt32? { share.load(ordering: .acquiring)?.takeUnretainedValue().value }

    deinit { share.load(ordering: .acquiring)?.release() }
}
