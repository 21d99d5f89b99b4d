#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A descriptor lent for the length of a call: its number, valid while its owner keeps it open,
/// and nothing else. It never closes anything: every `Kernel` function takes descriptors this way.
/// A ``FileDescriptor`` lends itself with ``FileDescriptor/borrowed``; a number owned elsewhere (a
/// C caller's `HANDLE`, a descriptor inherited by a tool) becomes one with ``init(unowned:)``.
public struct BorrowedDescriptor: Hashable, Sendable, CustomStringConvertible {
    /// The descriptor number.
    public let rawValue: Int32

    /// A descriptor whose owner is someone else, who keeps it open while this value is used.
    public init(unowned rawValue: Int32) { self.rawValue = rawValue }

    public var description: String { "\(rawValue)" }
}

/// An open file descriptor with exactly one owner.
///
/// `FileDescriptor` is `~Copyable`: it is moved, never copied, and its `deinit` closes it. To hand
/// the descriptor to code that takes ownership of a raw `Int32` (the C ABI returning an NT handle,
/// `SCM_RIGHTS`), call ``take()``; to keep it and give out another, call ``duplicate()``.
public struct FileDescriptor: ~Copyable, Sendable {
    /// The descriptor number. Valid for as long as this value lives.
    public let rawValue: Int32

    /// This descriptor lent to a call; valid while this value lives.
    public var borrowed: BorrowedDescriptor { BorrowedDescriptor(unowned: rawValue) }

    /// Takes ownership of `rawValue`, which must be an open descriptor nobody else closes.
    public init(adopting rawValue: Int32) {
        precondition(rawValue >= 0, "FileDescriptor(adopting:) needs an open descriptor")
        self.rawValue = rawValue
    }

    /// Gives up ownership: the caller must close the returned descriptor.
    public consuming func take() -> Int32 {
        let value = rawValue
        discard self
        return value
    }

    /// A new close-on-exec descriptor for the same open file (`fcntl(F_DUPFD_CLOEXEC)`).
    ///
    /// - Throws: `EMFILE` when the process is out of descriptors.
    public borrowing func duplicate() throws(Errno) -> FileDescriptor {
        try Kernel.duplicate(BorrowedDescriptor(unowned: rawValue))
    }

    deinit {
        Kernel.close(rawValue)
    }
}

/// Descriptors owned together: a growable collection of ``FileDescriptor``s (the standard
/// library's arrays cannot hold `~Copyable` elements). Each one can be borrowed by index
/// (``subscript(_:)`` gives its number while the list owns it) or moved out once (``take(_:)``);
/// whatever is still held when the list goes is closed.
///
/// A reference: copies of a list are the same list, which closes what it holds when the last
/// copy goes. One allocation (``Storage``).
struct FileDescriptorList: @unchecked Sendable {
    /// The list itself: a `ManagedBuffer` whose tail holds the first `capacity` numbers and whose
    /// header is reached through a pointer (no exclusivity check on every access); a list that
    /// outgrows them moves its numbers to memory of their own. (Sendable through the list, which
    /// is `@unchecked`: like the class it replaced, it is shared only where its users lock.)
    final class Storage: ManagedBuffer<Slots, Int32> {
        deinit {
            withUnsafeMutablePointers { slots, inline in
                for index in 0..<slots.pointee.count where slots.pointee.numbers[index] >= 0 {
                    Kernel.close(slots.pointee.numbers[index])
                }
                if slots.pointee.numbers != inline { slots.pointee.numbers.deallocate() }
            }
            // The header is deinitialized by ManagedBuffer; the numbers are plain integers.
        }
    }

    /// The descriptor numbers (-1 in a slot whose descriptor was taken), how many slots are used
    /// and how many there is room for.
    struct Slots {
        var numbers: UnsafeMutablePointer<Int32>
        var count = 0
        var capacity: Int
    }

    private let storage: Storage

    /// An empty list with room for `capacity` descriptors before it grows.
    init(capacity: Int = 4) {
        let made = Storage.create(minimumCapacity: max(capacity, 1)) { buffer in
            Slots(numbers: buffer.withUnsafeMutablePointerToElements { $0 }, capacity: buffer.capacity)
        }
        storage = unsafeDowncast(made, to: Storage.self)
    }

    /// A list that owns every one of `numbers`, open descriptors nobody else closes.
    init(adopting numbers: [Int32]) {
        self.init(capacity: numbers.count)
        for number in numbers { append(FileDescriptor(adopting: number)) }
    }

    private var slots: UnsafeMutablePointer<Slots> { storage.withUnsafeMutablePointerToHeader { $0 } }

    /// The number of slots, taken ones included.
    var count: Int { slots.pointee.count }

    /// Adds `descriptor` at the end; returns its index.
    @discardableResult
    func append(_ descriptor: consuming FileDescriptor) -> Int {
        let number = descriptor.take()
        return storage.withUnsafeMutablePointers { slots, inline in
            if slots.pointee.count == slots.pointee.capacity {
                let grown = UnsafeMutablePointer<Int32>.allocate(capacity: slots.pointee.capacity * 2)
                grown.moveInitialize(from: slots.pointee.numbers, count: slots.pointee.count)
                if slots.pointee.numbers != inline { slots.pointee.numbers.deallocate() }
                slots.pointee.numbers = grown
                slots.pointee.capacity *= 2
            }
            let index = slots.pointee.count
            slots.pointee.numbers[index] = number
            slots.pointee.count += 1
            return index
        }
    }

    /// The number of descriptor `index`, still owned by the list.
    ///
    /// - Precondition: it was not taken.
    subscript(_ index: Int) -> Int32 {
        let slots = self.slots
        precondition(index >= 0 && index < slots.pointee.count, "descriptor \(index) is not in the list")
        let number = slots.pointee.numbers[index]
        precondition(number >= 0, "descriptor \(index) was already taken")
        return number
    }

    /// The number of descriptor `index`, still owned by the list (``subscript(_:)``).
    func peek(_ index: Int) -> Int32 { self[index] }

    /// Descriptor `index` lent to a call, still owned by the list.
    func borrow(_ index: Int) -> BorrowedDescriptor { BorrowedDescriptor(unowned: self[index]) }

    /// Whether descriptor `index` is still in the list (not taken).
    func isPresent(_ index: Int) -> Bool {
        let slots = self.slots
        precondition(index >= 0 && index < slots.pointee.count, "descriptor \(index) is not in the list")
        return slots.pointee.numbers[index] >= 0
    }

    /// Moves descriptor `index` out of the list. Each index can be taken once.
    func take(_ index: Int) -> FileDescriptor {
        let number = self[index]
        slots.pointee.numbers[index] = -1
        return FileDescriptor(adopting: number)
    }
}
