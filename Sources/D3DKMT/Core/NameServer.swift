#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Synchronization

/// The process's name service, on its event thread (``EventLoop``): answers every connection to
/// the listening sockets of the names this process published with a reply and a new handle, and
/// retires each entry when it is done. An entry is retired one of two ways:
///
/// - by its **keeper**, the sending end of the sharer's handle: when every copy of that handle is
///   closed (the kernel drops its queued package and reports an error on the keeper). A holder
///   that shuts the handle down (`shutdown(2)`) hangs the keeper up too, but the package is still
///   queued (`SIOCOUTQ`), so the name lives; what a holder writes into the handle is read and
///   dropped here, so neither spins the thread nor pins descriptors;
/// - or **explicitly**, by ``remove(_:)``, for entries without a keeper (a global share handle,
///   retired when its last local reference is destroyed).
///
/// Retiring removes the socket's path first, then closes the listener, so waiting connections
/// are hung up unanswered (not found) and the name can be taken again at once.
final class NameServer: Sendable {
    static let shared = NameServer()

    /// Names an entry, for ``remove(_:)``.
    struct EntryID: Hashable, Sendable {
        let value: UInt64
    }

    /// One served socket and what it answers with.
    private final class Entry: Sendable {
        let id: EntryID
        let path: String
        /// The name's record (``Names/Record``), removed with the entry; nil without one.
        let recordPath: String?
        let listener: FileDescriptor
        /// The keeper, when the entry has one (0 or 1 descriptors).
        let keeper: FileDescriptorList
        let reply: [UInt8]
        /// Calls its argument with the handle each opener gets a copy of.
        let lendHandle: @Sendable (_ send: (BorrowedDescriptor) -> Void) throws(NTError) -> Void
        let tokens = ForkSafeMutex<(listener: EventLoop.Token?, keeper: EventLoop.Token?)>((nil, nil))
        let retired = Atomic<Bool>(false)

        init(id: EntryID, path: String, recordPath: String?, listener: consuming FileDescriptor,
             keeper: consuming FileDescriptor?, reply: [UInt8],
             lendHandle: @escaping @Sendable (_ send: (BorrowedDescriptor) -> Void) throws(NTError) -> Void) {
            let kept = FileDescriptorList(capacity: 1)
            switch consume keeper {
            case .some(let keeper): kept.append(keeper)
            case .none: break
            }
            self.id = id
            self.path = path
            self.recordPath = recordPath
            self.listener = listener
            self.keeper = kept
            self.reply = reply
            self.lendHandle = lendHandle
        }

        /// Whether the sharer's handle still has a copy open somewhere (always, without a keeper).
        var keeperAlive: Bool {
            guard keeper.count == 1 else { return true }
            // A keeper that cannot be looked at is taken as alive: the name stays.
            return NameServer.handleIsOpen(keeper: keeper.borrow(0)) ?? true
        }
    }

    /// Whether the handle whose sending end is `keeper` still has a copy open somewhere (`poll`
    /// with no events asked, then `SIOCOUTQ`). A hang-up with an error is the last close with the
    /// package queued; a hang-up alone is a `shutdown(2)` while the package is still queued
    /// (alive), or the last close of a handle whose package a holder had read out of it
    /// (`SIOCOUTQ` 0: gone). Also how a name's record lookup judges the name (``Names/Record``).
    /// Nil when the keeper cannot be looked at (`poll` failed).
    static func handleIsOpen(keeper: BorrowedDescriptor) -> Bool? {
        guard let events = try? Kernel.poll([keeper], events: 0, until: .now)[0] else { return nil }
        guard events & Int16(POLLHUP | POLLERR) != 0 else { return true }
        if events & Int16(POLLERR) != 0 { return false }
        return ((try? Kernel.unsentBytes(keeper)) ?? 0) > 0
    }

    private struct State {
        var owner: Int32 = 0
        var nextID: UInt64 = 1
        var entries: [EntryID: Entry] = [:]
    }

    private let state = ForkSafeMutex(State())

    /// How long a listener rests after a failed `accept` (out of descriptors or memory): the
    /// connection stays queued and is answered after, and the thread does not spin meanwhile.
    static let acceptBackoff: Int64 = 10_000_000

    /// Serves `listener`, a listening socket bound at `path`: each connection gets `reply` with a
    /// copy of the handle `lendHandle` lends attached (`SCM_RIGHTS`), then is closed. The entry is
    /// retired when `keeper` (the sending end of the sharer's handle) reports the handle's last
    /// close, or by ``remove(_:)``; retiring removes `recordPath` (the name's record) too, and so
    /// does a failure here.
    ///
    /// - Throws: the kernel's status when the event thread cannot start or watch the sockets.
    func add(path: String, recordPath: String? = nil, listener: consuming FileDescriptor,
             keeper: consuming FileDescriptor?, reply: [UInt8],
             lendHandle: @escaping @Sendable (_ send: (BorrowedDescriptor) -> Void) throws(NTError) -> Void)
        throws(NTError) -> EntryID {
        var inherited: [EntryID: Entry] = [:]
        let id = state.withLock { state in
            if state.owner != Kernel.processID {
                // A fork()ed child: the parent serves its own names.
                inherited = state.entries
                state = State(owner: Kernel.processID)
            }
            let id = EntryID(value: state.nextID)
            state.nextID += 1
            return id
        }
        inherited.removeAll()
        let entry = Entry(id: id, path: path, recordPath: recordPath, listener: listener, keeper: keeper,
                          reply: reply, lendHandle: lendHandle)
        let loop = EventLoop.shared
        do throws(NTError) {
            let listening = try loop.watch(entry.listener.borrowed, .readable) { _ in
                NameServer.shared.answer(entry)
            }
            entry.tokens.withLock { $0.listener = listening }
            if entry.keeper.count == 1 {
                let keeping = try loop.watch(entry.keeper.borrow(0), [.readable, .edgeTriggered]) { events in
                    NameServer.shared.keeperEvent(entry, events)
                }
                entry.tokens.withLock { $0.keeper = keeping }
            }
        } catch {
            cancelTokens(entry)
            if let recordPath { Kernel.unlink(recordPath) }
            Kernel.unlink(path)
            throw error
        }
        state.withLock { $0.entries[id] = entry }
        // A handle closed before the keeper was watched reported its hang-up to nobody.
        if !entry.keeperAlive { retire(entry) }
        return id
    }

    /// Retires an entry now: its path is removed, then its sockets closed. Removing an entry
    /// already retired (or of the parent, in a `fork()`ed child) does nothing.
    func remove(_ id: EntryID) {
        guard let entry = state.withLock({ $0.owner == Kernel.processID ? $0.entries[id] : nil }) else { return }
        retire(entry)
    }

    /// The live entries of this process.
    var count: Int { state.withLock { $0.owner == Kernel.processID ? $0.entries.count : 0 } }

    /// A connection waits on `entry`'s listener: answered, unless the handle's last copy closed
    /// before it connected (looking at the keeper first makes retirement synchronous with that
    /// close: the opener connected after it, and gets not found).
    private func answer(_ entry: Entry) {
        guard !entry.retired.load(ordering: .acquiring) else { return }
        let connection: FileDescriptor
        do { connection = try Kernel.accept(entry.listener.borrowed, nonBlocking: true) } catch {
            guard error != .wouldBlock else { return }
            // Out of descriptors (EMFILE) or memory: the connection stays queued. Stop watching for
            // a little instead of spinning; the opener waits for its answer meanwhile.
            guard let token = entry.tokens.withLock({ $0.listener }) else { return }
            EventLoop.shared.update(token, [])
            _ = try? EventLoop.shared.after(.after(nanoseconds: Self.acceptBackoff)) {
                EventLoop.shared.update(token, .readable)
            }
            return
        }
        guard entry.keeperAlive else {
            retire(entry)
            return  // the connection closes unanswered: not found
        }
        let socket = connection.borrowed
        // A handle that cannot be lent leaves the connection closed unanswered.
        try? entry.lendHandle { handle in try? Kernel.send(socket, bytes: entry.reply, descriptors: [handle]) }
    }

    /// The keeper hung up or has messages a holder wrote into the handle: those are read and
    /// dropped (with any descriptors they carry, which could otherwise pin the handle), then the
    /// handle's life is judged.
    private func keeperEvent(_ entry: Entry, _ events: EventLoop.Events) {
        guard entry.keeper.count == 1, !entry.retired.load(ordering: .acquiring) else { return }
        // Edge-triggered: read until nothing is left, at most a bounded number per wake-up.
        for _ in 0..<256 where (try? Kernel.discardMessage(entry.keeper.borrow(0))) == true {}
        if !entry.keeperAlive { retire(entry) }
    }

    /// Retires `entry` once: record and path, then event registrations, then (with the last
    /// reference) its descriptors. The record goes first: once the path is gone another process
    /// may take the name and write its own record.
    private func retire(_ entry: Entry) {
        guard !entry.retired.exchange(true, ordering: .acquiringAndReleasing) else { return }
        if let recordPath = entry.recordPath { Kernel.unlink(recordPath) }
        Kernel.unlink(entry.path)
        cancelTokens(entry)
        let removed = state.withLock { $0.entries.removeValue(forKey: entry.id) }
        _ = removed  // released outside the lock
    }

    private func cancelTokens(_ entry: Entry) {
        let tokens = entry.tokens.withLock { tokens in
            defer { tokens = (nil, nil) }
            return tokens
        }
        if let token = tokens.listener { EventLoop.shared.cancel(token) }
        if let token = tokens.keeper { EventLoop.shared.cancel(token) }
    }
}
