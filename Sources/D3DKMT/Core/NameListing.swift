#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Listing the live names of the caller's namespace (`kmt names`).
///
/// The sockets in the namespace directory are named by hashes, so the names themselves come from
/// the name threads: each socket is connected to, and a live name's thread answers as it answers
/// a lookup (``Names/reply(name:kind:)``: its canonical name and kind, a handle attached, which
/// is closed at once). A stale socket (its sharer died) refuses the connection; a retired one
/// hangs up unanswered. Neither is listed, and nothing is changed: listing is a lookup of every
/// name, and lookups do not affect a name's lifetime.
extension Names {
    /// One live name: its canonical form (`S:` or `G:` and the name folded to upper case) and the
    /// kind of object it names.
    struct Listed: Hashable, Sendable {
        var canonicalName: String
        var kind: Kind
    }

    /// How long a listing waits for one name thread to answer (a hung sharer is skipped).
    static let listingPatience: Int64 = 2_000_000_000

    /// Every name of the caller's namespace whose sharer answers, in canonical-name order.
    ///
    /// - Throws: `STATUS_ACCESS_DENIED` when the namespace directory is not the caller's own
    ///   private one.
    static func live() throws(NTError) -> [Listed] {
        let directory = try directory()
        var found: [Listed] = []
        for entry in Kernel.directoryEntries(directory) where entry.hasPrefix("n-") {
            let path = directory + "/" + entry
            guard let listed = ask(path), socketPath(listed.canonicalName, in: directory) == path else { continue }
            found.append(listed)
        }
        return found.sorted { $0.canonicalName < $1.canonicalName }
    }

    /// The answer of the name thread listening at `path`, or nil when none answers.
    private static func ask(_ path: String) -> Listed? {
        guard let connection = try? Kernel.connect(to: path),
              let ready = try? Kernel.poll([connection.borrowed], until: .after(nanoseconds: listingPatience)),
              ready[0] & Int16(POLLIN) != 0 else {
            return nil
        }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 8)
        defer { buffer.deallocate() }
        // The handle that comes with the answer is closed with `message`.
        guard let message = try? Kernel.receive(connection.borrowed, into: buffer, peek: false),
              !message.dataTruncated else {
            return nil
        }
        var reader = ByteReader(UnsafeRawBufferPointer(rebasing: buffer[0..<message.byteCount]))
        guard reader.read(UInt32.self) == 0x4E54_4D4B, let rawKind = reader.read(UInt32.self),
              let kind = Kind(rawValue: rawKind), let name = reader.readBlob(reader.remaining) else {
            return nil
        }
        return Listed(canonicalName: String(decoding: name, as: UTF8.self), kind: kind)
    }
}
