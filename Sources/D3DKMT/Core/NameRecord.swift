#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Synchronization

extension Names {
    /// A name's record: how an opener resolves a name without a round trip to its sharer.
    ///
    /// Next to each name's socket (`n-HASH`) its sharer keeps a symbolic link `r-HASH` whose
    /// target says where the name's two descriptors are in the sharer:
    /// `K1:PID:KIND:ACCESS:OPENERS:DEV:INO:KEEPER:DEV:INO:NAME` (decimal; the access the openers'
    /// handle grants; it and the keeper by descriptor number and `fstat` identity; the canonical
    /// name last). An opener reads
    /// it (`readlink`), opens the process (`pidfd_open`), copies both descriptors (`pidfd_getfd`),
    /// checks that each is the file the record names (so a record read in another pid namespace,
    /// or naming a pid that was reused, or a descriptor number that was closed and reused, is
    /// harmless), judges the named handle's life from the keeper exactly as the name server does
    /// (``NameServer/handleIsOpen(keeper:)``), checks that the openers' handle still holds its
    /// package (`SIOCINQ`), and keeps the openers' handle: the same open file the server would have
    /// sent.
    ///
    /// Anything else (no record, another name or kind in it, a process that is gone, a copy that
    /// is refused, an identity that differs, a handle closed or read out) leaves the lookup to the
    /// name server's socket, which stays the arbiter of truth. Copying another process's
    /// descriptors needs ptrace access to it (the same user, and what Yama, an LSM or seccomp
    /// allow); after `EPERM`, `EACCES` or `ENOSYS` the process stops trying.
    ///
    /// Security: the record lives in the user's private namespace directory, so only that user
    /// (or root) can write or read it, and following it gives nothing a process could not take
    /// itself: whoever may `pidfd_getfd` the sharer can already copy any of its descriptors.
    enum Record {
        /// Room for the longest record (8 fields of at most 20 digits, the longest canonical name)
        /// with bytes to spare, so a cut target is seen as too long.
        private static let capacity = 1536

        /// A record's fields, read from its link.
        struct Fields {
            var pid: Int32
            /// The access the openers' handle grants (its package's `access`).
            var access: UInt32
            var openers: (number: Int32, identity: Kernel.FileIdentity)
            var keeper: (number: Int32, identity: Kernel.FileIdentity)
        }

        /// Writes one name's record (on the sharer's side).
        struct Writer: Sendable {
            /// The record's path (``Names/recordPath(_:in:)``).
            let path: String
            /// The canonical name.
            let name: String
            let kind: Kind
            /// The access the openers' handle grants.
            let access: UInt32
            /// The keeper's descriptor number and identity.
            let keeper: (number: Int32, identity: Kernel.FileIdentity)

            /// Writes (or replaces, in one `rename`) the record for `openers`, the handle openers
            /// get. A record that cannot be written is removed instead: lookups then ask the server.
            func write(openers: BorrowedDescriptor) {
                guard let identity = try? Kernel.fileIdentity(openers) else {
                    Kernel.unlink(path)
                    return
                }
                let pid = Kernel.processID
                let target = "K1:\(pid):\(kind.rawValue):\(access):"
                    + "\(openers.rawValue):\(identity.device):\(identity.inode):"
                    + "\(keeper.number):\(keeper.identity.device):\(keeper.identity.inode):" + name
                let temporary = path + ".\(pid).\(Record.nextTemporary.add(1, ordering: .relaxed).newValue)"
                do throws(Errno) {
                    try Kernel.makeSymbolicLink(target, at: temporary)
                    try Kernel.rename(temporary, to: path)
                } catch {
                    Kernel.unlink(temporary)
                    Kernel.unlink(path)
                }
            }
        }

        /// Numbers the temporary links records are written through.
        private static let nextTemporary = Atomic<UInt64>(0)

        /// Whether this process stopped trying records (pidfds are missing or refused here).
        private static let refusedInProcess = Atomic<Bool>(false)
        private static let refusalMark = "names.record.refused"

        private static var isRefused: Bool {
            #if DEBUG
            if let plan = Kernel.FaultPlan.current { return plan.isMarked(refusalMark) }
            #endif
            return refusedInProcess.load(ordering: .relaxed)
        }

        /// Stops trying records after `error` when it says they cannot work here: pidfds missing
        /// (`ENOSYS`) or copying refused (`EPERM`, `EACCES`: ptrace rules, Yama, an LSM, seccomp).
        /// Each refused try may be logged by an audit system, so there are no more. (While a test's
        /// fault plan is installed the refusal is remembered in the plan instead.)
        private static func note(_ error: Errno) {
            guard error.rawValue == EPERM || error.rawValue == EACCES || error.rawValue == ENOSYS else { return }
            #if DEBUG
            if let plan = Kernel.FaultPlan.current {
                plan.mark(refusalMark)
                return
            }
            #endif
            refusedInProcess.store(true, ordering: .relaxed)
        }

        /// The handle `name` (canonical, of `kind`) resolves to by its record at `path`, or nil
        /// when the record cannot answer (the caller asks the name's server). Every descriptor
        /// taken on the way is closed, on every path, but the one returned.
        ///
        /// - Parameter access: set to the access the returned handle grants.
        static func lookUp(_ path: String, name: String, kind: Kind, access: inout UInt32?) -> SharedHandle? {
            guard !isRefused else { return nil }
            let fields = withUnsafeTemporaryAllocation(byteCount: capacity, alignment: 1) { (buffer) -> Fields? in
                guard let count = try? Kernel.readLink(path, into: buffer), count < buffer.count else { return nil }
                return parse(UnsafeRawBufferPointer(rebasing: buffer[..<count]), name: name, kind: kind)
            }
            guard let fields else { return nil }
            let process: FileDescriptor
            do { process = try Kernel.openProcess(fields.pid) } catch {
                note(error)
                return nil
            }
            guard let openers = copy(fields.openers, from: process.borrowed) else { return nil }
            guard let keeper = copy(fields.keeper, from: process.borrowed) else { return nil }
            guard NameServer.handleIsOpen(keeper: keeper.borrowed) == true,
                  ((try? Kernel.queuedMessageBytes(openers.borrowed)) ?? 0) > 0 else { return nil }
            access = fields.access
            return SharedHandle(openers)
        }

        /// A copy of descriptor `remote.number` of the process `pidfd` names, if it is the file
        /// `remote.identity`.
        private static func copy(_ remote: (number: Int32, identity: Kernel.FileIdentity),
                                 from pidfd: BorrowedDescriptor) -> FileDescriptor? {
            let copied: FileDescriptor
            do { copied = try Kernel.copyDescriptor(remote.number, fromProcess: pidfd) } catch {
                note(error)
                return nil
            }
            guard (try? Kernel.fileIdentity(copied.borrowed)) == remote.identity else { return nil }
            return copied
        }

        /// The fields of `record` when it is a record of `name` (canonical) and `kind`.
        static func parse(_ record: UnsafeRawBufferPointer, name: String, kind: Kind) -> Fields? {
            var index = 0
            // The next decimal field and the `:` after it.
            func field() -> UInt64? {
                var value: UInt64 = 0
                let start = index
                while index < record.count, record[index] != 0x3A {
                    let digit = record[index] &- 0x30
                    guard digit < 10, index - start < 20 else { return nil }
                    let (times, overflow) = value.multipliedReportingOverflow(by: 10)
                    let (sum, carry) = times.addingReportingOverflow(UInt64(digit))
                    guard !overflow, !carry else { return nil }
                    value = sum
                    index += 1
                }
                guard index > start, index < record.count else { return nil }
                index += 1
                return value
            }
            guard record.count > 3, record[0] == 0x4B, record[1] == 0x31, record[2] == 0x3A else { return nil }
            index = 3
            guard let pid = field().flatMap(Int32.init(exactly:)), field() == UInt64(kind.rawValue),
                  let access = field().flatMap(UInt32.init(exactly:)),
                  let openersNumber = field().flatMap(Int32.init(exactly:)),
                  let openersDevice = field(), let openersInode = field(),
                  let keeperNumber = field().flatMap(Int32.init(exactly:)),
                  let keeperDevice = field(), let keeperInode = field(),
                  name.utf8.elementsEqual(record[index...]) else { return nil }
            return Fields(pid: pid, access: access,
                          openers: (openersNumber, Kernel.FileIdentity(device: openersDevice, inode: openersInode)),
                          keeper: (keeperNumber, Kernel.FileIdentity(device: keeperDevice, inode: keeperInode)))
        }
    }
}
