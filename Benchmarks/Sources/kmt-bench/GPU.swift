#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CBenchSupport
import D3DKMT

// Issue 13's rows, on adapters with virgl 3D (the default VM guest):
//
// gpu-fence-handoff: one GPU-to-GPU handoff through a keyed mutex, as a runtime makes it: the
// releaser puts its GPU work's sync_file at the release's fence value and releases, the acquirer
// acquires and takes a sync_file of that value for its GPU to wait on (two opens of the mutex in
// one process; the "GPU work" is a signalled sync_file, so this measures the calls, not a GPU).
// Raw: the same fences with bare libdrm calls on one timeline (import the sync_file into a
// temporary binary syncobj and transfer it to the point; transfer the point out and export it).
//
// gbm-allocate-share: a 64x64 ABGR8888 image allocated through the library (GBM) and shared as a
// handle, then dropped; raw: gbm_bo_create + PRIME export + a socketpair carrying it with
// SCM_RIGHTS, closed.

let gpuRowNames = ["gpu-fence-handoff", "gbm-allocate-share"]

func gpuRows(_ target: Target) -> [Row] {
    let wanted = gpuRowNames.filter(target.config.wants(row:))
    guard !wanted.isEmpty else { return [] }
    guard target.info.capabilities.contains(.virgl3D), !target.raw.isSoftware else {
        let why = "needs a GPU Mesa drives (a virgl virtio-gpu here): \(target.info.driverName) has none"
        return [target.notApplicable("gpu-fence-handoff", unit: "ns/handoff", goal: 1.2, why: why),
                target.notApplicable("gbm-allocate-share", unit: "ns/op", goal: nil, why: why)]
            .filter { wanted.contains($0.name) }
    }
    var rows: [Row] = []
    if wanted.contains("gpu-fence-handoff") { rows.append(fenceHandoffRow(target)) }
    if wanted.contains("gbm-allocate-share") { rows.append(gbmRow(target)) }
    return rows
}

private func fenceHandoffRow(_ target: Target) -> Row {
    let name = "gpu-fence-handoff"
    do {
        let fd = target.raw.render
        let done = try check(kb_signalled_sync_file(fd), "a signalled sync_file")
        defer { close(done) }
        let releaser = try KeyedMutex.create(initialKey: 0, timelineOn: target.device)
        let resource = try target.device.createResource(
            allocations: [(source: .new(AllocationDescriptor(size: 4096)), extraDriverData: [])])
        let syncObject = try target.device.createSyncObject(.fence)
        let handle = try resource.share(keyedMutex: releaser, syncObject: syncObject)
        let acquirer = try KeyedMutex.open(handle)
        var value: UInt64 = 0
        var timeline: UInt32 = 0
        try check(kb_syncobj_create(fd, &timeline), "syncobj")
        defer { kb_syncobj_destroy(fd, timeline) }
        var rawBase: UInt64 = 0
        let sides = target.sides([
            Side(name: "ours") { n in
                for _ in 0..<n {
                    value += 1
                    _ = try releaser.acquire(key: 0)
                    try releaser.signal(fenceValue: value, whenSignalled: done, on: target.device)
                    try releaser.release(key: 1, fenceValue: value)
                    let acquired = try acquirer.acquire(key: 1)
                    _ = try acquirer.exportSyncFile(fenceValue: acquired.fenceValue, on: target.device)
                    try acquirer.release(key: 0, fenceValue: acquired.fenceValue)
                }
            },
            Side(name: "raw") { n in
                try check(kb_gpu_fence_handoff(fd, timeline, done, rawBase, n), "raw fence handoff")
                rawBase += UInt64(n)
            },
        ])
        let result = try measure(sides, target.config)
        _ = consume handle
        return target.row(name, ours: result["ours"], raw: result["raw"], unit: "ns/handoff", goal: 1.2,
                          note: "one process, two opens; the GPU work is a signalled sync_file")
    } catch {
        return target.failed(name, unit: "ns/handoff", goal: 1.2, error)
    }
}

private func gbmRow(_ target: Target) -> Row {
    let name = "gbm-allocate-share"
    do {
        let fd = target.raw.render
        guard let gbm = kb_gbm_device(fd) else { throw BenchError("gbm_create_device failed") }
        defer { kb_gbm_device_destroy(gbm) }
        let image = AllocationDescriptor(width: 64, height: 64, fourcc: AllocationDescriptor.fourccABGR8888)
        let sides = target.sides([
            Side(name: "ours") { n in
                for _ in 0..<n {
                    let resource = try target.device.createResource(
                        allocations: [(source: .new(image), extraDriverData: [])])
                    _ = try resource.share()
                }
            },
            Side(name: "raw") { n in
                try check(kb_gbm_allocate_share(gbm, fd, 64, 64, n), "raw GBM allocate + share")
            },
        ])
        let result = try measure(sides, target.config)
        return target.row(name, ours: result["ours"], raw: result["raw"], unit: "ns/op", goal: nil,
                          note: "64x64 ABGR8888 through GBM; ours also makes the resource and its share package")
    } catch {
        return target.failed(name, unit: "ns/op", goal: nil, error)
    }
}
