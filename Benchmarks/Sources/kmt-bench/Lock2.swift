#if canImport(Glibc)
import Glibc
#endif
import CBenchSupport
import D3DKMT

// lock2-cycle: Allocation.lock() (what D3DKMTLock2 calls) → one byte written in every page →
// Allocation.unlock(), on an allocation of the adapter; next to raw code keeping its own mapping
// of a buffer made the raw way and bracketing the same touches with the same sync ioctls
// (DMA_BUF_IOCTL_SYNC start/end on a dma-buf; nothing on a memfd).

func lock2Row(_ target: Target, size: UInt64, label: String) -> Row {
    let name = "lock2-cycle \(label)"
    let unit = "µs/op"
    do {
        let allocation = try target.device.createAllocation(.new(AllocationDescriptor(size: size)))
        let fd = try target.raw.makeBuffer(size: size)
        defer { close(fd) }
        guard let map = kb_map(fd, Int(size)) else { throw BenchError("mmap of the raw buffer") }
        defer { kb_unmap(map, Int(size)) }
        let dmaBuf: Int32 = target.raw.isSoftware ? -1 : fd
        let sides = target.sides([
            Side(name: "ours") { n in
                for _ in 0..<n {
                    let address = try allocation.lock()
                    kb_touch_pages(address, Int(size))
                    allocation.unlock()
                }
            },
            Side(name: "raw") { n in
                for _ in 0..<n { try check(kb_sync_touch(map, Int(size), dmaBuf), "raw sync and touch") }
            },
        ])
        let result = try measure(sides, target.config)
        return target.row(name, ours: result["ours"].map { $0 / 1000 }, raw: result["raw"].map { $0 / 1000 },
                          unit: unit, goal: 1.2)
    } catch {
        return target.failed(name, unit: unit, goal: 1.2, error)
    }
}
