// The second process of the cross-process tests and of `kmt selftest`. The tests spawn it with a
// shared handle inherited as a descriptor; it reports by exit status and by `key=value` lines.
//
//   KMTTestPeer open FD LUIDLOW LUIDHIGH SEED
//       Opens the resource shared as descriptor FD on the adapter with that LUID, checks every
//       allocation holds TestPattern(SEED), writes TestPattern(SEED + 1) into each, prints
//       runtime=HEX, driver=HEX, allocation.N=SIZE:HEX-OF-DRIVER-DATA and exits 0.
//   KMTTestPeer status FD LUIDLOW LUIDHIGH
//       Tries to open it and prints status=0xXXXXXXXX (always exits 0 unless it crashed).
//   KMTTestPeer share SOCKETFD LUIDLOW LUIDHIGH SEED
//       Creates a 2-allocation resource holding TestPattern(SEED), shares it, sends the handle
//       over the socket SOCKETFD with SCM_RIGHTS and exits (the sharer is gone before any open).
//   KMTTestPeer adapters
//       Prints luid=... driver=... for every adapter.
//   KMTTestPeer pingpong FD LUIDLOW LUIDHIGH COUNT
//       Opens the resource + keyed mutex + sync object shared as FD. COUNT times: acquires key 1,
//       checks the first u64 of allocation 0 is 2i+1 and the fence value 2i+1, writes 2i+2,
//       releases to key 0 with fence 2i+2. Then signals the sync object to COUNT and prints
//       handoffs=COUNT.
//   KMTTestPeer hold FD
//       Opens the keyed mutex shared as FD, acquires key 0, prints "acquired" and sleeps until
//       killed.
//   KMTTestPeer hold-fork FD
//       As hold, then fork()s without exec: the child prints child=PID and sleeps until killed
//       (it inherits the owner's descriptors); the parent prints "acquired" and sleeps.
//   KMTTestPeer signal FD LUIDLOW LUIDHIGH VALUE DELAYMS
//       Opens the sync object shared as FD, sleeps DELAYMS, signals VALUE, prints signalled=VALUE.
//   KMTTestPeer open-named NAME LUIDLOW LUIDHIGH SEED
//       Opens the resource named NAME in this user's namespace and does what `open` does.
//   KMTTestPeer share-named NAME LUIDLOW LUIDHIGH SEED
//       Shares a 2-allocation resource holding TestPattern(SEED) under NAME, prints "shared",
//       and sleeps until killed.
//   KMTTestPeer open-global VALUE LUIDLOW LUIDHIGH SEED
//       Opens the resource whose global share handle is VALUE, checks and writes the pattern as
//       `open` does, prints runtime=HEX, then keeps the resource until a line (or end of input) on
//       stdin, and prints status=STATUS of opening VALUE once more after dropping it.
//   KMTTestPeer share-global LUIDLOW LUIDHIGH SEED
//       Creates a 1-allocation resource (8 KiB) holding TestPattern(SEED) with a global share
//       handle and runtime data "global", prints value=VALUE, and exits at a line (or end of
//       input) on stdin, without destroying anything.
//   KMTTestPeer scribble FD LUIDLOW LUIDHIGH VALUE DELAYMS
//       Opens the software sync object shared as FD and, as a hostile holder of its page would,
//       keeps its sleeping-waiters word at 0 and, after DELAYMS, stores VALUE as its value without
//       bumping the sequence or waking anyone (a lost wake-up); prints scribbled=VALUE.
//   KMTTestPeer noproc LUIDLOW LUIDHIGH
//       Run where /proc is not mounted (see noproc-run): prints, for each call that needs /proc,
//       NAME=STATUS and NAME.proc=yes|no (whether the failure text names /proc): keyedmutex
//       (KeyedMutex.create), asyncwait (SyncObject.notify), readonly (opening a resource shared
//       without write access), and plain=STATUS of sharing and opening a resource read-write.
//   KMTTestPeer noproc-run ARGS...
//       Runs this peer with ARGS in a new mount namespace with an empty tmpfs on /proc (root only).
//   KMTTestPeer fill WHAT CAP RAISE
//       As user 65534 when run as root (so the kernel's per-user limit on descriptors in flight
//       applies), with the soft RLIMIT_NOFILE at 1024 (or the hard limit, if lower) and, with
//       RAISE 1, D3DKMT_RAISE_NOFILE=1: makes 4 KiB software resources and shares each, keeping
//       every handle (and, with WHAT "resources", every resource too), until a call fails or CAP
//       are live; prints live=N, status=STATUS (of the failing call, or success), soft=LIMIT.
//   KMTTestPeer fork-destroy LUIDLOW LUIDHIGH
//       Makes a fence (value 1) and a resource on the adapter, then fork()s without exec. The
//       child destroys its copies of both, makes, signals, maps and destroys objects of its own on
//       the same device, and exits (child=STATUS of that, as its exit status 0 or 1); then the
//       parent signals its fence to 2, reads it back and maps and writes its allocation, printing
//       child=ok|failed and parent=STATUS.
//   KMTTestPeer fork-named NAME LUIDLOW LUIDHIGH SEED
//       Shares a resource under NAME-parent (starting the event thread), then fork()s without
//       exec. The child shares one under NAME-child, prints child=PID, parentopen=STATUS (opening
//       NAME-parent by name) and "childshared", and sleeps until killed; so does the parent.
//   KMTTestPeer share-named-full NAME LUIDLOW LUIDHIGH SEED
//       As share-named, then lowers its RLIMIT_NOFILE to its highest open descriptor and fills
//       every number below it, so that its event thread cannot accept a connection (EMFILE);
//       prints "full" and sleeps.
//   KMTTestPeer other-user UID NAME PATH
//       Drops to user UID (needs root), then prints lookup=STATUS of NAME in its own namespace
//       and connect=EACCES|success|errno N of connecting to the socket PATH (another user's
//       name) directly.
//   KMTTestPeer map-write FD LUIDLOW LUIDHIGH
//       Opens the resource shared as FD and prints write=STATUS of mapping allocation 0
//       writable, read=STATUS of mapping it read-only, and rawwrite=STATUS of a writable mmap
//       of its exported descriptor.
//   KMTTestPeer lock-write FD LUIDLOW LUIDHIGH SEED
//       Opens the resource shared as FD; locks allocation 0 (Allocation.lock, what D3DKMTLock2
//       calls), checks it holds TestPattern(SEED), writes TestPattern(SEED + 1) unless it opened
//       read-only, unlocks; locks again and prints same=yes|no (the same address), then
//       perms=RWXP (its line of /proc/self/maps) and unlocks.
//   KMTTestPeer fd-limit FD LUIDLOW LUIDHIGH
//       Lowers RLIMIT_NOFILE to 2 above the descriptors open now, tries to open the resource
//       shared as FD, and prints status=STATUS and leaked=N (descriptors left open by the
//       failure).
//   KMTTestPeer acquire FD TIMEOUTMS
//       Opens the keyed mutex shared as FD, tries to acquire key 0 for TIMEOUTMS, prints status=.
//   KMTTestPeer pidns MODE ARGS...
//       Runs MODE in a new pid namespace (root only), dying with this process.
//   KMTTestPeer wait FD LUIDLOW LUIDHIGH VALUE
//       Opens the sync object shared as FD, prints "waiting", waits (30 s at most) until it
//       reaches VALUE, prints waited=VALUE.
//   KMTTestPeer guarded NAME LUIDLOW LUIDHIGH
//       Shares under NAME a resource (allocation 0: 64x16 XR24 stride 256, modifier 0; allocation 1:
//       4096 bytes; runtime data 5 bytes, resource driver data 3, allocation driver data 2 + 1),
//       with a keyed mutex (initial key 0, 4 bytes of runtime data) and a monitored fence, prints
//       shared=FD (the handle's descriptor here), then obeys one command per line on stdin, each
//       answered by one line: "acquire KEY" (10 s at most) -> acquired=FENCEVALUE; "release KEY
//       FENCEVALUE" -> released=KEY; "signal VALUE" -> signalled=VALUE; anything else or end of
//       input exits. A failure prints error=... and exits 1.
import D3DKMT
import KMTTestSupport
#if canImport(Glibc)
import Glibc
#endif

func fail(_ message: String) -> Never {
    print("error=\(message)")
    exit(1)
}

/// The status `body` ends with, as text (`success` or the NTSTATUS's name).
func statusText(_ body: () throws -> Void) -> String {
    let ended = status(body)
    return ended == .success ? "success" : "\(ended)"
}

/// Connects a SOCK_SEQPACKET socket to `path`: "success" or the errno's name.
func connectStatus(_ path: String) -> String {
    let fd = socket(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8.prefix(107))) }
    let result = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
        }
    }
    return result == 0 ? "success" : (errno == EACCES ? "EACCES" : "errno \(errno)")
}

/// Open descriptors of this process.
/// The arguments; where /proc is not mounted (noproc-run), the runtime cannot read them, so they
/// come in KMT_PEER_ARGUMENTS (space-separated) instead.
let arguments = CommandLine.arguments.count >= 2 ? CommandLine.arguments
    : ["KMTTestPeer"] + (getenv("KMT_PEER_ARGUMENTS").map { String(cString: $0) } ?? "")
        .split(separator: " ").map(String.init)
guard arguments.count >= 2 else { fail("usage: KMTTestPeer open|status|share|adapters ...") }

func argument(_ index: Int) -> Int64 {
    guard arguments.count > index, let value = Int64(arguments[index]) else { fail("bad argument \(index)") }
    return value
}

func device(luidLow: Int64, luidHigh: Int64) -> Device {
    do {
        let adapter = try Adapter.open(luid: LUID(lowPart: UInt32(truncatingIfNeeded: luidLow),
                                                  highPart: Int32(truncatingIfNeeded: luidHigh)))
        return try adapter.makeDevice()
    } catch {
        fail("\(error)")
    }
}

switch arguments[1] {
case "adapters":
    for adapter in Adapter.enumerate() {
        print("luid=\(adapter.info.luid.lowPart):\(adapter.info.luid.highPart) driver=\(adapter.info.driverName)")
    }

case "open":
    let handle = SharedHandle(adopting: Int32(argument(2)))
    let device = device(luidLow: argument(3), luidHigh: argument(4))
    let seed = UInt32(argument(5))
    do {
        let info = try device.resourceInfo(handle)
        let resource = try device.openResource(handle)
        guard info.allocationCount == resource.allocations.count else {
            fail("info says \(info.allocationCount) allocations, open gave \(resource.allocations.count)")
        }
        print("runtime=\(hex(resource.runtimeData))")
        print("driver=\(hex(resource.driverData))")
        for (index, allocation) in resource.allocations.enumerated() {
            print("allocation.\(index)=\(allocation.size):\(hex(allocation.driverData))")
            let mapping = try allocation.map()
            if let offset = TestPattern.firstMismatch(UnsafeRawBufferPointer(mapping.bytes), seed: seed,
                                                      allocation: index) {
                fail("allocation \(index) differs from the sharer's pattern at byte \(offset)")
            }
            TestPattern.fill(mapping.bytes, seed: seed + 1, allocation: index)
        }
    } catch {
        fail("\(error)")
    }

case "status":
    let handle = SharedHandle(adopting: Int32(argument(2)))
    let device = device(luidLow: argument(3), luidHigh: argument(4))
    do {
        _ = try device.openResource(handle)
        print("status=0x00000000")
    } catch {
        print("status=0x" + String(UInt32(bitPattern: error.status.rawValue), radix: 16, uppercase: true))
    }

case "share":
    let socket = Int32(argument(2))
    let device = device(luidLow: argument(3), luidHigh: argument(4))
    let seed = UInt32(argument(5))
    do {
        let resource = try device.createResource(
            allocations: [(.new(AllocationDescriptor(size: 65536)), []), (.new(AllocationDescriptor(size: 4096)), [])],
            runtimeData: [1, 2, 3], driverData: [4, 5])
        for (index, allocation) in resource.allocations.enumerated() {
            let mapping = try allocation.map()
            TestPattern.fill(mapping.bytes, seed: seed, allocation: index)
        }
        let handle = try resource.share()
        try sendDescriptor(handle.rawValue, over: socket)
    } catch {
        fail("\(error)")
    }

case "pingpong":
    let handle = SharedHandle(adopting: Int32(argument(2)))
    let device = device(luidLow: argument(3), luidHigh: argument(4))
    let count = UInt64(argument(5))
    do {
        let resource = try device.openResource(handle)
        guard let mutex = resource.keyedMutex, let sync = resource.syncObject else {
            fail("no keyed mutex or sync object in the handle")
        }
        let mapping = try resource.allocations[0].map()
        let word = mapping.baseAddress.assumingMemoryBound(to: UInt64.self)
        for round in 0..<count {
            let acquired = try mutex.acquire(key: 1, timeout: .seconds(60))
            guard word.pointee == 2 * round + 1 else {
                fail("round \(round): buffer holds \(word.pointee), expected \(2 * round + 1)")
            }
            guard acquired.fenceValue == 2 * round + 1 else {
                fail("round \(round): fence value \(acquired.fenceValue)")
            }
            word.pointee = 2 * round + 2
            try mutex.release(key: 0, fenceValue: 2 * round + 2)
        }
        try sync.signal(count)
        print("handoffs=\(count)")
    } catch {
        fail("\(error)")
    }

case "hold":
    let handle = SharedHandle(adopting: Int32(argument(2)))
    do {
        let mutex = try KeyedMutex.open(handle)
        _ = try mutex.acquire(key: 0, timeout: .seconds(60))
        print("acquired")
        fflush(nil)
        while true { pause() }
    } catch {
        fail("\(error)")
    }

case "hold-fork":
    let handle = SharedHandle(adopting: Int32(argument(2)))
    do {
        let mutex = try KeyedMutex.open(handle)
        _ = try mutex.acquire(key: 0, timeout: .seconds(60))
        fflush(nil)
        let child = fork()
        if child == 0 {
            print("child=\(getpid())")
            fflush(nil)
            while true { pause() }
        }
        usleep(100_000)
        print("acquired")
        fflush(nil)
        while true { pause() }
    } catch {
        fail("\(error)")
    }

case "acquire":
    // acquire FD TIMEOUTMS: opens the keyed mutex shared as FD, tries key 0 for TIMEOUTMS, prints
    // status=STATUS.
    let handle = SharedHandle(adopting: Int32(argument(2)))
    let milliseconds = argument(3)
    print("status=" + statusText {
        let mutex = try KeyedMutex.open(handle)
        _ = try mutex.acquire(key: 0, timeout: .milliseconds(milliseconds))
    })

case "pidns":
    // pidns MODE ARGS...: runs this peer's MODE in a new pid namespace (needs root), where it is
    // pid 1: util-linux's unshare(1) makes it, and kills it when it is killed itself.
    guard arguments.count >= 3 else { fail("usage: pidns MODE ARGS...") }
    let command = ["unshare", "--pid", "--fork", "--kill-child", arguments[0]] + Array(arguments[2...])
    var argv = command.map { strdup($0) } + [nil]
    execv("/usr/bin/unshare", &argv)
    fail("execv /usr/bin/unshare: errno \(errno)")

case "signal":
    let handle = SharedHandle(adopting: Int32(argument(2)))
    let device = device(luidLow: argument(3), luidHigh: argument(4))
    do {
        let object = try device.openSyncObject(handle)
        usleep(UInt32(argument(6)) * 1000)
        try object.signal(UInt64(argument(5)))
        print("signalled=\(argument(5))")
    } catch {
        fail("\(error)")
    }

case "share-named-full":
    let device = device(luidLow: argument(3), luidHigh: argument(4))
    do {
        let resource = try device.createResource(allocations: [(.new(AllocationDescriptor(size: 4096)), [])])
        _ = try resource.share(name: arguments[2]).take()  // kept open until killed
        var highest: Int32 = 0
        for fd in 0..<Int32(4096) where fcntl(fd, F_GETFD) >= 0 { highest = fd }
        var limit = rlimit(rlim_cur: rlim_t(highest + 1), rlim_max: rlim_t(highest + 1))
        guard setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { fail("setrlimit") }
        while open("/dev/null", O_RDONLY | O_CLOEXEC) >= 0 {}  // every number below the limit taken
        print("full")
        fflush(nil)
        while true { pause() }
    } catch {
        fail("\(error)")
    }

case "open-named", "share-named":
    let name = arguments[2]
    let device = device(luidLow: argument(3), luidHigh: argument(4))
    let seed = UInt32(argument(5))
    do {
        if arguments[1] == "share-named" {
            let resource = try device.createResource(allocations: [(.new(AllocationDescriptor(size: 8192)), [])])
            let mapping = try resource.allocations[0].map()
            TestPattern.fill(mapping.bytes, seed: seed, allocation: 0)
            // Kept open (never closed) until the process is killed: the name lives while it is.
            let kept = try resource.share(name: name).take()
            print("shared=\(kept)")
            fflush(nil)
            while true { pause() }
        }
        let handle = try SharedHandle.open(name: name)
        let resource = try device.openResource(handle)
        for (index, allocation) in resource.allocations.enumerated() {
            let mapping = try allocation.map()
            if let offset = TestPattern.firstMismatch(UnsafeRawBufferPointer(mapping.bytes), seed: seed,
                                                      allocation: index) {
                fail("allocation \(index) differs from the sharer's pattern at byte \(offset)")
            }
            TestPattern.fill(mapping.bytes, seed: seed + 1, allocation: index)
        }
        print("opened=\(resource.allocations.count)")
    } catch {
        fail("\(error)")
    }

case "open-global", "share-global":
    do {
        if arguments[1] == "share-global" {
            let device = device(luidLow: argument(2), luidHigh: argument(3))
            let resource = try device.createResource(allocations: [(.new(AllocationDescriptor(size: 8192)), [])],
                                                     runtimeData: Array("global".utf8), shareable: false,
                                                     globalShare: true)
            let mapping = try resource.allocations[0].map()
            TestPattern.fill(mapping.bytes, seed: UInt32(argument(4)), allocation: 0)
            print("value=\(resource.globalHandle ?? 0)")
            fflush(nil)
            _ = readLine()
            _exit(0)  // the process's end is its resource's (no destructors, no leak check)
        }
        let value = UInt32(argument(2))
        let device = device(luidLow: argument(3), luidHigh: argument(4))
        let seed = UInt32(argument(5))
        var resource: Resource? = try device.openResource(globalHandle: value)
        print("runtime=\(hex(resource!.runtimeData))")
        let mapping = try resource!.allocations[0].map()
        if let offset = TestPattern.firstMismatch(UnsafeRawBufferPointer(mapping.bytes), seed: seed, allocation: 0) {
            fail("allocation 0 differs from the sharer's pattern at byte \(offset)")
        }
        TestPattern.fill(mapping.bytes, seed: seed + 1, allocation: 0)
        _ = consume mapping
        print("opened")
        fflush(nil)
        _ = readLine()
        resource = nil
        print("status=\(statusText { _ = try device.resourceInfo(globalHandle: value) })")
    } catch {
        fail("\(error)")
    }

case "scribble":
    let handle = SharedHandle(adopting: Int32(argument(2)))
    let device = device(luidLow: argument(3), luidHigh: argument(4))
    do {
        let object = try device.openSyncObject(handle)
        guard let valueAddress = object.fenceValueAddress else { fail("not a monitored fence") }
        // The page: u32 sequence at 8, u32 sleepers at 12, u64 value at 16 (FenceState).
        let value = UnsafeMutableRawPointer(mutating: valueAddress)
        let sleepers = (value - 4).assumingMemoryBound(to: UInt32.self)
        let end = argument(6) / 5
        for _ in 0..<end {
            sleepers.pointee = 0
            usleep(5000)
        }
        sleepers.pointee = 0
        value.storeBytes(of: UInt64(argument(5)), as: UInt64.self)
        print("scribbled=\(argument(5))")
    } catch {
        fail("\(error)")
    }

case "noproc-run":
    let script = "mount -t tmpfs none /proc && exec \"$0\""
    setenv("KMT_PEER_ARGUMENTS", arguments[2...].joined(separator: " "), 1)
    let command = ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", script, arguments[0]]
    var argv = command.map { strdup($0) } + [nil]
    execv("/usr/bin/unshare", &argv)
    fail("execv /usr/bin/unshare: errno \(errno)")

case "noproc":
    let device = device(luidLow: argument(2), luidHigh: argument(3))
    func report(_ name: String, _ body: () throws(NTError) -> Void) {
        do {
            try body()
            print("\(name)=success")
        } catch {
            print("\(name)=\(error.status)")
            print("\(name).proc=\(error.reason.contains("/proc") ? "yes" : "no")")
        }
    }
    report("keyedmutex") { () throws(NTError) in _ = try KeyedMutex.create(initialKey: 0) }
    report("asyncwait") { () throws(NTError) in
        let fence = try device.createSyncObject(.monitoredFence)
        try SyncObject.notify(eventfd: 0, when: [(fence, 1)])
    }
    report("readonly") { () throws(NTError) in
        let resource = try device.createResource(allocations: [(.new(AllocationDescriptor(size: 4096)), [])])
        _ = try device.openResource(try resource.share(access: 0x0002_0000))  // READ_CONTROL alone
    }
    report("plain") { () throws(NTError) in
        let resource = try device.createResource(allocations: [(.new(AllocationDescriptor(size: 4096)), [])])
        _ = try device.openResource(try resource.share())
    }

case "fill":
    let keepResources = arguments[2] == "resources"
    let cap = Int(argument(3))
    if geteuid() == 0 {
        guard setgroups(0, nil) == 0, setgid(65534) == 0, setuid(65534) == 0 else { fail("cannot drop to 65534") }
    }
    var limit = rlimit()
    getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    limit.rlim_cur = min(1024, limit.rlim_max)
    setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    if argument(4) == 1 { setenv("D3DKMT_RAISE_NOFILE", "1", 1) }
    var resources: [Resource] = []
    var handles: [Int32] = []
    var ended = "success"
    do {
        let device = try Adapter.open(luid: AdapterInfo.software.luid).makeDevice()
        while handles.count < cap {
            let resource = try device.createResource(allocations: [(.new(AllocationDescriptor(size: 4096)), [])])
            handles.append(try resource.share().take())
            if keepResources { resources.append(resource) }
        }
    } catch {
        ended = "\(error.status)"
    }
    getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    print("live=\(handles.count)")
    print("status=\(ended)")
    print("soft=\(limit.rlim_cur)")
    _ = resources.count

case "fork-destroy":
    let device = device(luidLow: argument(2), luidHigh: argument(3))
    var fence: SyncObject?
    var resource: Resource?
    do {
        fence = try device.createSyncObject(.fence, initialValue: 1)
        resource = try device.createResource(allocations: [(.new(AllocationDescriptor(size: 4096)), [])])
    } catch {
        fail("\(error)")
    }
    fflush(nil)
    let child = fork()
    guard child >= 0 else { fail("fork: errno \(errno)") }
    if child == 0 {
        fence = nil
        resource = nil
        let ok = status {
            let own = try device.createSyncObject(.fence)
            try own.signal(3)
            let mine = try device.createResource(allocations: [(.new(AllocationDescriptor(size: 4096)), [])])
            let mapping = try mine.allocations[0].map()
            mapping.bytes[0] = 7
        } == .success
        _exit(ok ? 0 : 1)
    }
    var childStatus: Int32 = 0
    while waitpid(child, &childStatus, 0) < 0 && errno == EINTR {}
    print("child=" + (childStatus == 0 ? "ok" : "failed"))
    print("parent=" + statusText {
        try fence!.signal(2)
        guard try fence!.currentValue() == 2 else { throw NTError(.unsuccessful, "the fence did not reach 2") }
        let mapping = try resource!.allocations[0].map()
        mapping.bytes[0] = 9
    })

case "fork-named":
    let name = arguments[2]
    let device = device(luidLow: argument(3), luidHigh: argument(4))
    do {
        let resource = try device.createResource(allocations: [(.new(AllocationDescriptor(size: 4096)), [])])
        // Both handles are kept open (taken, never closed) until the processes are killed.
        _ = try resource.share(name: name + "-parent").take()
        fflush(nil)
        let child = fork()
        guard child >= 0 else { fail("fork: errno \(errno)") }
        if child == 0 {
            let own = try device.createResource(allocations: [(.new(AllocationDescriptor(size: 4096)), [])])
            _ = try own.share(name: name + "-child").take()
            print("child=\(getpid())")
            print("parentopen=" + statusText { _ = try SharedHandle.open(name: name + "-parent") })
            print("childshared")
            fflush(nil)
            while true { pause() }
        }
        while true { pause() }
    } catch {
        fail("\(error)")
    }

case "other-user":
    let uid = UInt32(argument(2))
    guard setgroups(0, nil) == 0, setgid(uid) == 0, setuid(uid) == 0 else { fail("cannot drop to uid \(uid)") }
    print("lookup=" + statusText { _ = try SharedHandle.open(name: arguments[3]) })
    print("connect=" + connectStatus(arguments[4]))

case "map-write":
    let handle = SharedHandle(adopting: Int32(argument(2)))
    let device = device(luidLow: argument(3), luidHigh: argument(4))
    do {
        let allocation = try device.openResource(handle).allocations[0]
        print("write=" + statusText { _ = try allocation.map(writable: true) })
        print("read=" + statusText { _ = try allocation.map(writable: false) })
        let exported = try allocation.exportDescriptor()
        let address = mmap(nil, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, exported.rawValue, 0)
        print("rawwrite=" + (address == MAP_FAILED ? (errno == EACCES ? "accessDenied" : "errno\(errno)") : "mapped"))
    } catch {
        fail("\(error)")
    }

case "lock-write":
    let handle = SharedHandle(adopting: Int32(argument(2)))
    let device = device(luidLow: argument(3), luidHigh: argument(4))
    let seed = UInt32(argument(5))
    do {
        let allocation = try device.openResource(handle).allocations[0]
        let count = Int(allocation.size)
        let first = try allocation.lock()
        if let offset = TestPattern.firstMismatch(UnsafeRawBufferPointer(start: first, count: count), seed: seed,
                                                  allocation: 0) {
            fail("the lock shows something else than the sharer wrote at byte \(offset)")
        }
        if !allocation.isReadOnly {
            TestPattern.fill(UnsafeMutableRawBufferPointer(start: first, count: count), seed: seed + 1, allocation: 0)
        }
        allocation.unlock()
        let again = try allocation.lock()
        print("same=" + (again == first ? "yes" : "no"))
        // The mapping's line of /proc/self/maps: "START-END PERMS ...".
        var perms = "none"
        if let maps = fopen("/proc/self/maps", "r") {
            var line: UnsafeMutablePointer<CChar>? = nil
            var capacity = 0
            let address = UInt(bitPattern: again)
            while getline(&line, &capacity, maps) > 0, let line {
                let fields = String(cString: line).split(separator: " ")
                let range = fields[0].split(separator: "-").compactMap { UInt($0, radix: 16) }
                if fields.count > 1, range.count == 2, range[0] <= address, address < range[1] {
                    perms = String(fields[1])
                    break
                }
            }
            free(line)
            fclose(maps)
        }
        print("perms=" + perms)
        allocation.unlock()
    } catch {
        fail("\(error)")
    }

case "fd-limit":
    let handle = SharedHandle(adopting: Int32(argument(2)))
    // Descriptors the test runner let slip into this process would leave gaps below the limit;
    // closed before the device opens its own.
    for fd in 4..<1024 { close(Int32(fd)) }
    let device = device(luidLow: argument(3), luidHigh: argument(4))
    let before = openDescriptorCount()
    var limit = rlimit(rlim_cur: rlim_t(before + 2), rlim_max: rlim_t(before + 2))
    guard setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { fail("setrlimit") }
    print("limit=\(before + 2)")
    print("status=" + statusText { _ = try device.openResource(handle) })
    print("leaked=\(openDescriptorCount() - before)")

case "wait":
    let handle = SharedHandle(adopting: Int32(argument(2)))
    let device = device(luidLow: argument(3), luidHigh: argument(4))
    do {
        let object = try device.openSyncObject(handle)
        print("waiting")
        fflush(nil)
        try SyncObject.wait(for: [(object, UInt64(argument(5)))], timeout: .seconds(30))
        print("waited=\(argument(5))")
    } catch {
        fail("\(error)")
    }

case "guarded":
    let name = arguments[2]
    let device = device(luidLow: argument(3), luidHigh: argument(4))
    do {
        let image = AllocationDescriptor(width: 64, height: 16, stride: 256, fourcc: 0x3432_5258)  // XR24
        let resource = try device.createResource(
            allocations: [(.new(image), [0xA0, 0xA1]), (.new(AllocationDescriptor(size: 4096)), [0xB0])],
            runtimeData: [1, 2, 3, 4, 5], driverData: [6, 7, 8])
        let mutex = try KeyedMutex.create(initialKey: 0, runtimeData: [0, 0, 0, 0])
        let fence = try device.createSyncObject(.monitoredFence)
        let handle = try resource.share(keyedMutex: mutex, syncObject: fence, name: name)
        print("shared=\(handle.rawValue)")
        fflush(nil)
        while let line = readLine() {
            let words = line.split(separator: " ").map(String.init)
            switch (words.first, words.count) {
            case ("acquire", 2):
                print("acquired=\(try mutex.acquire(key: UInt64(words[1]) ?? 0, timeout: .seconds(10)).fenceValue)")
            case ("release", 3):
                try mutex.release(key: UInt64(words[1]) ?? 0, fenceValue: UInt64(words[2]) ?? 0)
                print("released=\(words[1])")
            case ("signal", 2):
                try fence.signal(UInt64(words[1]) ?? 0)
                print("signalled=\(words[1])")
            default:
                exit(0)
            }
            fflush(nil)
        }
        _ = consume handle
    } catch {
        fail("\(error)")
    }

default:
    fail("unknown command \(arguments[1])")
}
exit(0)
