/// Read-only looks at the shared state pages, for inspection (``HandleReport``).
///
/// An inspector maps a page (``SharedPage/init(opening:minimumSize:magic:version:)``) and reads
/// its words; it does not open the mutex (an open claims a presence slot) or touch the fence.
extension KeyedMutexState {
    /// The protocol's words as they are now.
    struct Snapshot: Hashable, Sendable {
        var owned: Bool
        var abandoned: Bool
        var waiters: Bool
        /// Bumped by every release (the state's low word without its flag bits).
        var generation: UInt32
        /// While owned, the owning open's presence slot (``Presence``); else nil.
        var ownerSlot: UInt32?
        var key: UInt64
        var fenceValue: UInt64
        /// Bytes of private data the mutex can hold, and the last release stored.
        var dataCapacity: Int
        var dataSize: Int
    }

    /// The state of the mutex whose page is `page`, read word by word (the layout in
    /// ``KeyedMutexState``): a snapshot taken during a handoff can mix its two sides, but the
    /// state word itself is one atomic read.
    ///
    /// - Throws: `STATUS_INVALID_PARAMETER` when the page is too small for its private data.
    static func snapshot(of page: SharedPage) throws(NTError) -> Snapshot {
        let state = page.atomic64(8).pointee.load(ordering: .acquiring)
        let capacity = Int(page.atomic32(32).pointee.load(ordering: .relaxed))
        guard capacity <= page.size - dataOffset else {
            throw NTError(.invalidParameter, "keyed mutex state claims more private data than it holds")
        }
        let owner = UInt32(truncatingIfNeeded: state >> 32)
        let owned = state & 1 != 0
        return Snapshot(owned: owned, abandoned: state & 2 != 0, waiters: state & 4 != 0,
                        generation: UInt32(truncatingIfNeeded: (state & 0xFFFF_FFF8) >> 3),
                        ownerSlot: owned && owner > 0 ? owner - 1 : nil,
                        key: page.atomic64(16).pointee.load(ordering: .relaxed),
                        fenceValue: page.atomic64(24).pointee.load(ordering: .relaxed),
                        dataCapacity: capacity,
                        dataSize: min(Int(page.atomic32(36).pointee.load(ordering: .relaxed)), capacity))
    }

    /// Maps the state page of a shared keyed mutex for ``snapshot(of:)``.
    static func inspectionPage(_ descriptor: consuming FileDescriptor) throws(NTError) -> SharedPage {
        try SharedPage(opening: descriptor, minimumSize: dataOffset, magic: magic, version: version)
    }
}
