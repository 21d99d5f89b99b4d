#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Synchronization

/// The process's name thread: answers lookups of the names this process published and retires
/// each name when its handle's last copy closes. Started with the first published name.
final class NameServer: Sendable {
    static let shared = NameServer()

    /// One published name (or global share value) and the descriptors that serve it, closed when
    /// it is retired.
    final class Entry: Sendable {
        let name: String
        let kind: Names.Kind
        let path: String
        let listener: FileDescriptor
        /// For a name: the sending end of the sharer's handle, which hangs up when every copy of
        /// the handle is closed. Nil for an entry retired only by ``NameServer/remove(_:)``.
        let keeper: FileDescriptor?
        /// The keeper lent to `poll`, when there is one.
        var keeperDescriptor: BorrowedDescriptor? {
            switch keeper {
            case .some(let descriptor): return descriptor.borrowed
            case .none: return nil
            }
        }
        /// A handle to the same objects, duplicated for each opener.
        let served: SharedHandle
        /// Set by ``NameServer/remove(_:)``: no connection is answered any more.
        let removed = Atomic<Bool>(false)

        init(name: String, kind: Names.Kind, path: String, listener: consuming FileDescriptor,
             keeper: consuming FileDescriptor?, served: consuming SharedHandle) {
            self.name = name
            self.kind = kind
            self.path = path
            self.listener = listener
            self.keeper = keeper
            self.served = served
        }
    }

    private let entries = Mutex<[Entry]>([])
    /// The eventfd that wakes the thread when a name is added; made with the thread.
    private let wake = Mutex<FileDescriptor?>(nil)

    func add(_ entry: Entry) throws(NTError) {
        let wakeFD: Int32 = try wake.withLock { (wake) throws(NTError) -> Int32 in
            if let running = wake?.rawValue { return running }
            do throws(Errno) {
                let made = try Kernel.eventfd()
                let number = made.rawValue
                wake = consume made
                do throws(Errno) { try Kernel.detachedThread { NameServer.shared.serve() } } catch {
                    wake = nil
                    throw error
                }
                return number
            } catch {
                throw error.nt("starting the name thread")
            }
        }
        entries.withLock { $0.append(entry) }
        try? Kernel.eventfdSignal(BorrowedDescriptor(unowned: wakeFD))
    }

    /// Retires `entry` now: its socket is unlinked before this returns (a later lookup finds
    /// nothing), no connection is answered any more, and the thread closes its descriptors.
    func remove(_ entry: Entry) {
        guard !entry.removed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        Kernel.unlink(entry.path)
        if let wakeFD = wake.withLock({ $0?.borrowed }) { try? Kernel.eventfdSignal(wakeFD) }
    }

    private func serve() {
        guard let wakeFD = wake.withLock({ $0?.borrowed }) else { return }
        while true {
            // Entries removed since the last look go first: a removal's wake-up may have been
            // drained along with an earlier one, and nothing else would end the poll for them.
            for entry in entries.withLock({ $0 }) where entry.removed.load(ordering: .acquiring) { retire(entry) }
            let current = entries.withLock { $0 }
            // Each entry's listener, then its keeper when it has one.
            var descriptors = [wakeFD]
            var firstIndex: [Int] = []
            for entry in current {
                firstIndex.append(descriptors.count)
                descriptors.append(entry.listener.borrowed)
                if let keeper = entry.keeperDescriptor { descriptors.append(keeper) }
            }
            guard let events = try? Kernel.poll(descriptors, until: .never) else { continue }
            if events[0] != 0 { Kernel.eventfdDrain(wakeFD) }
            for (index, entry) in current.enumerated() {
                if entry.removed.load(ordering: .acquiring) {
                    retire(entry)
                    continue
                }
                let listenerEvents = events[firstIndex[index]]
                if entry.keeperDescriptor != nil, events[firstIndex[index] + 1] & Int16(POLLHUP | POLLERR) != 0 {
                    retire(entry)
                    continue
                }
                guard listenerEvents & Int16(POLLIN) != 0 else { continue }
                let connection: FileDescriptor
                do { connection = try Kernel.accept(entry.listener.borrowed) } catch {
                    // Out of descriptors (EMFILE) or memory: the listener stays readable, so wait a
                    // little instead of spinning; the opener waits for its answer meanwhile.
                    _ = try? Kernel.poll([], until: .after(nanoseconds: 10_000_000))
                    continue
                }
                // The opener connected after whatever close came before it, and a close of the
                // last copy hangs the keeper up at once (a removal marks the entry at once):
                // looking again here makes retirement synchronous with that close.
                if entry.removed.load(ordering: .acquiring) {
                    retire(entry)
                    continue
                }
                if let keeper = entry.keeperDescriptor, let now = try? Kernel.poll([keeper], events: 0, until: .now),
                   now[0] & Int16(POLLHUP | POLLERR) != 0 {
                    retire(entry)
                    continue  // the connection closes unanswered: not found
                }
                try? Kernel.send(connection.borrowed, bytes: Names.reply(name: entry.name, kind: entry.kind),
                                 descriptors: [entry.served.borrowed])
            }
        }
    }

    /// Every copy of the sharer's handle is closed: the name goes. The socket is removed before
    /// any waiting connection is hung up, so a sharer that sees the hang-up can take the name.
    private func retire(_ entry: Entry) {
        if !entry.removed.load(ordering: .acquiring) { Kernel.unlink(entry.path) }
        entries.withLock { list in list.removeAll { $0 === entry } }
    }
}
