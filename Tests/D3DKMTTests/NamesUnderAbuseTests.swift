import Testing
@testable import D3DKMT
import KMTTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The state letter of process `pid` (`/proc/PID/stat`: R, S, T for stopped, ...).
func processState(_ pid: pid_t) -> Character? {
    let fd = open("/proc/\(pid)/stat", O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    var bytes = [UInt8](repeating: 0, count: 4096)
    let count = read(fd, &bytes, bytes.count)
    Glibc.close(fd)
    guard count > 0 else { return nil }
    let stat = String(decoding: bytes[0..<count], as: UTF8.self)
    guard let end = stat.lastIndex(of: ")") else { return nil }
    return stat[stat.index(after: end)...].split(separator: " ").first?.first
}

/// CPU time (user + system) process `pid` has used, in clock ticks (`/proc/PID/stat`).
func cpuTicks(_ pid: pid_t) -> Int? {
    let fd = open("/proc/\(pid)/stat", O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    var bytes = [UInt8](repeating: 0, count: 4096)
    let count = read(fd, &bytes, bytes.count)
    Glibc.close(fd)
    guard count > 0 else { return nil }
    let stat = String(decoding: bytes[0..<count], as: UTF8.self)
    guard let end = stat.lastIndex(of: ")") else { return nil }
    let fields = stat[stat.index(after: end)...].split(separator: " ")
    // After the command: state is field 3, utime 14 and stime 15.
    guard fields.count > 12, let user = Int(fields[11]), let system = Int(fields[12]) else { return nil }
    return user + system
}

extension D3DKMTSuite {
    /// Names under abuse (#12 item 4): holders of the named handle that write into it, read it or
    /// shut it down; a stopped sharer; names of a `fork()`ed child.
    @Suite struct NamesUnderAbuse {
        /// A holder of the sharer's own named handle writes a thousand messages into it (some
        /// carrying the handle itself, which would pin it), then shuts it down: the sharer neither
        /// spins (its CPU time over the next second stays far below a second) nor retires the name.
        @Test func aHolderWritingToOrShuttingDownANamedHandleNeitherSpinsNorRetiresIt() throws {
            let adapter = try Adapter.open(luid: AdapterInfo.software.luid)
            let name = uniqueName("abuse")
            let peer = try PeerProcess(["share-named", name] + luidArguments(adapter) + ["5"])
            defer { kill(peer.pid, SIGKILL) }
            let line = try #require(peer.readLine())
            let number = try #require(Int32(line.dropFirst("shared=".count)))
            let held = try SharedHandle.copy(fromProcess: peer.pid, descriptor: number)
            let socket = BorrowedDescriptor(unowned: held.rawValue)
            var sent = 0
            for index in 0..<1000 {
                let descriptors = index % 10 == 0 ? [socket] : []
                let bytes = [UInt8](repeating: 0xAB, count: 100)
                if (try? Kernel.send(socket, bytes: bytes, descriptors: descriptors)) != nil {
                    sent += 1
                } else {
                    usleep(1000)  // the sharer reads and drops them; the queue is short
                }
            }
            #expect(sent > 0)
            #expect(status { _ = try SharedHandle.open(name: name) } == .success, "writes retired the name")
            #expect(shutdown(held.rawValue, Int32(SHUT_RDWR)) == 0)
            usleep(100_000)
            #expect(status { _ = try SharedHandle.open(name: name) } == .success, "a shutdown retired the name")
            let before = try #require(cpuTicks(peer.pid))
            usleep(1_000_000)
            let used = try #require(cpuTicks(peer.pid)) - before
            print("names under abuse: the sharer used \(used) ticks of \(sysconf(Int32(_SC_CLK_TCK))) per second "
                  + "after \(sent) writes and a shutdown")
            #expect(used < sysconf(Int32(_SC_CLK_TCK)) / 4, "the sharer spins after a holder's shutdown")
            // The handle opens as before: a shutdown leaves its package queued.
            #expect(status { _ = try adapter.makeDevice().openResource(held) } == .success)
            kill(peer.pid, SIGKILL)
            _ = peer.wait()
            #expect(resolveStatus(name, becomes: .objectNameNotFound) == .objectNameNotFound)
        }

        /// A holder reads the package out of a handle shared without a name (its sending end is
        /// closed, so the socket is at its end of file, not empty): it opens as
        /// `STATUS_INVALID_HANDLE` saying why too (once "bad magic", `STATUS_INVALID_PARAMETER`).
        @Test func readingAPlainHandleSpendsIt() throws {
            let device = try Adapter.open(luid: AdapterInfo.software.luid).makeDevice()
            let resource = try device.createResource(allocations: [(.new(AllocationDescriptor(size: 4096)), [])])
            let handle = try resource.share()
            _ = try Kernel.receiveMessage(BorrowedDescriptor(unowned: handle.rawValue))
            do {
                _ = try device.openResource(handle)
                Issue.record("a spent handle opened")
            } catch {
                #expect(error.status == .invalidHandle)
                #expect(error.reason.contains("read out of the handle"), "\(error.reason)")
            }
        }

        /// A holder reads the package out of the named handle (a read without `MSG_PEEK`): that
        /// handle is spent and opens as `STATUS_INVALID_HANDLE` saying why, but the name still
        /// resolves: openers get handles of their own.
        @Test func readingANamedHandleSpendsItButKeepsTheName() throws {
            let adapter = try Adapter.open(luid: AdapterInfo.software.luid)
            let name = uniqueName("read")
            let peer = try PeerProcess(["share-named", name] + luidArguments(adapter) + ["6"])
            defer { kill(peer.pid, SIGKILL) }
            let line = try #require(peer.readLine())
            let number = try #require(Int32(line.dropFirst("shared=".count)))
            let held = try SharedHandle.copy(fromProcess: peer.pid, descriptor: number)
            _ = try Kernel.receiveMessage(BorrowedDescriptor(unowned: held.rawValue))
            do {
                _ = try adapter.makeDevice().openResource(held)
                Issue.record("a spent handle opened")
            } catch {
                #expect(error.status == .invalidHandle)
                #expect(error.reason.contains("read out of the handle"), "\(error.reason)")
            }
            usleep(100_000)
            let opened = try SharedHandle.open(name: name)
            #expect(status { _ = try adapter.makeDevice().openResource(opened) } == .success)

            // Openers by name get copies of one handle the name keeps: an opener reading the package
            // out of its copy spends that handle for every copy, and the next lookup gets a new one.
            let spent = try SharedHandle.open(name: name)
            _ = try Kernel.receiveMessage(BorrowedDescriptor(unowned: spent.rawValue))
            #expect(status { _ = try adapter.makeDevice().openResource(spent) } == .invalidHandle)
            let again = try SharedHandle.open(name: name)
            #expect(status { _ = try adapter.makeDevice().openResource(again) } == .success)
        }

        /// Runs `body` as an opener that may not take other processes' descriptors (`pidfd_getfd`
        /// refused: `EPERM`), which resolves every name through its sharer's socket.
        static func withoutRecords<R>(_ body: () -> R) -> R {
            Kernel.withFaults([.fail(.pidfdGetfd, Errno(rawValue: EPERM), count: Int.max)]) { _ in body() }
        }

        /// Opening a name whose sharer is stopped (`SIGSTOP`) by its record works, as on Windows
        /// (no round trip to the sharer); without the record (an opener that may not take the
        /// sharer's descriptors: `EPERM`) it fails with `STATUS_IO_TIMEOUT` within the bound
        /// instead of hanging. Sharing the same name meanwhile is `STATUS_OBJECT_NAME_COLLISION`
        /// (the stopped sharer still holds it).
        @Test func aStoppedSharerFailsAnOpenByNameWithinTheBound() throws {
            let adapter = try Adapter.open(luid: AdapterInfo.software.luid)
            let name = uniqueName("stopped")
            let peer = try PeerProcess(["share-named", name] + luidArguments(adapter) + ["7"])
            defer { kill(peer.pid, SIGKILL) }
            #expect(peer.readLine()?.hasPrefix("shared=") == true)
            kill(peer.pid, SIGSTOP)
            // A stop takes effect when each thread next leaves the kernel: wait until it has.
            #expect(eventually { processState(peer.pid) == "T" }, "the sharer did not stop")
            #expect(status { _ = try SharedHandle.open(name: name) } == .success)
            let started = Deadline.now
            #expect(Self.withoutRecords { status { _ = try SharedHandle.open(name: name) } } == .ioTimeout)
            let seconds = Double((Deadline.now.nanoseconds - started.nanoseconds) / 1_000_000) / 1000
            print("names: opening a stopped sharer's name failed after \(seconds) s")
            #expect(seconds < 15, "opening by name is not bounded")
            let resource = try adapter.makeDevice()
                .createResource(allocations: [(.new(AllocationDescriptor(size: 4096)), [])])
            #expect(status { _ = try resource.share(name: name) } == .objectNameCollision)
            kill(peer.pid, SIGCONT)
            #expect(status { _ = try SharedHandle.open(name: name) } == .success)
        }

        /// A sharer out of descriptors (`EMFILE` on every `accept`) neither spins nor answers: its
        /// event thread rests 10 ms between tries, and an opener without the name's record gets
        /// `STATUS_IO_TIMEOUT` within the bound (with the record it opens the name: the sharer
        /// makes no descriptor for it).
        @Test func aSharerOutOfDescriptorsNeitherSpinsNorHangsTheOpener() throws {
            let adapter = try Adapter.open(luid: AdapterInfo.software.luid)
            let name = uniqueName("emfile")
            let peer = try PeerProcess(["share-named-full", name] + luidArguments(adapter) + ["8"])
            defer { kill(peer.pid, SIGKILL) }
            #expect(peer.readLine() == "full")
            #expect(status { _ = try SharedHandle.open(name: name) } == .success)
            let before = try #require(cpuTicks(peer.pid))
            let started = Deadline.now
            #expect(Self.withoutRecords { status { _ = try SharedHandle.open(name: name) } } == .ioTimeout)
            let seconds = Double((Deadline.now.nanoseconds - started.nanoseconds) / 1_000_000) / 1000
            let used = try #require(cpuTicks(peer.pid)) - before
            print("names: a sharer out of descriptors used \(used) ticks in the \(seconds) s an open waited")
            #expect(seconds < 15, "opening by name is not bounded")
            #expect(Double(used) < seconds * Double(sysconf(Int32(_SC_CLK_TCK))) / 4, "the sharer spins on EMFILE")
        }

        /// A `fork()`ed child (no exec) shares names of its own, answered by its own event thread,
        /// and opens its parent's; the parent's names stay the parent's.
        @Test(.enabled(if: getenv("TSAN_OPTIONS") == nil,
                       "ThreadSanitizer stops a child that starts a thread after a multi-threaded fork()"))
        func namesWorkInAForkedChild() throws {
            let adapter = try Adapter.open(luid: AdapterInfo.software.luid)
            let name = uniqueName("fork")
            let peer = try PeerProcess(["fork-named", name] + luidArguments(adapter))
            defer { kill(peer.pid, SIGKILL) }
            // A child that crashes leaves the parent holding the output open: bound the reading.
            let parent = peer.pid
            let watchdog = try EventLoop.shared.after(.after(nanoseconds: 30_000_000_000)) { kill(parent, SIGKILL) }
            defer { EventLoop.shared.cancel(watchdog) }
            var child: pid_t = 0
            var parentOpen = ""
            while let line = peer.readLine(), line != "childshared" {
                if line.hasPrefix("child=") { child = pid_t(line.dropFirst(6)) ?? 0 }
                if line.hasPrefix("parentopen=") { parentOpen = String(line.dropFirst(11)) }
                if line.hasPrefix("error=") { Issue.record("peer: \(line)") }
            }
            #expect(child > 0)
            #expect(parentOpen == "success", "the child could not open its parent's name")
            #expect(status { _ = try SharedHandle.open(name: name + "-child") } == .success)
            #expect(status { _ = try SharedHandle.open(name: name + "-parent") } == .success)
            kill(child, SIGKILL)
            #expect(resolveStatus(name + "-child", becomes: .objectNameNotFound) == .objectNameNotFound)
            #expect(status { _ = try SharedHandle.open(name: name + "-parent") } == .success,
                    "the child's death took its parent's name")
            kill(peer.pid, SIGKILL)
            _ = peer.wait()
        }
    }

    /// `fork()` without `exec` (#12 item 5): a child that destroys its copies of its parent's
    /// objects, and makes and destroys its own on the same device, leaves the parent's alone (on
    /// DRM the child reopens the render node; the parent's GEM and syncobj handles are never
    /// closed by it).
    @Suite struct ForkedChildren {
        @Test(arguments: EventThread.withSyncObjects)
        func aChildDestroyingObjectsLeavesItsParentsAlone(adapter: Adapter) throws {
            let peer = try runPeer(["fork-destroy"] + luidArguments(adapter))
            #expect(peer.exitStatus == 0, "peer said: \(peer.text)")
            #expect(peer.output["child"] == "ok", "the child's own objects failed: \(peer.text)")
            #expect(peer.output["parent"] == "success", "the child broke its parent's objects: \(peer.text)")
        }

        /// The owner of a keyed mutex forks, then dies (`SIGKILL`) while its child lives: the
        /// child's inherited copy of the owner's presence lock was closed at the fork, so waiters
        /// see the death (`STATUS_ABANDONED`) instead of an owner kept alive by its child.
        @Test func anOwnersDeathIsSeenWhileItsForkedChildLives() throws {
            let device = try Adapter.open(luid: AdapterInfo.software.luid).makeDevice()
            let (resource, mutex, sync) = try makeGuardedResource(on: device)
            let handle = try resource.share(keyedMutex: mutex, syncObject: sync)
            let peer = try PeerProcess(["hold-fork", "3"], inherit: [handle.rawValue])
            defer { kill(peer.pid, SIGKILL) }
            var child: pid_t = 0
            while let line = peer.readLine(), line != "acquired" {
                if line.hasPrefix("child=") { child = pid_t(line.dropFirst(6)) ?? 0 }
                if line.hasPrefix("error=") { Issue.record("peer: \(line)") }
            }
            #expect(child > 0)
            #expect(status { _ = try mutex.acquire(key: 0, timeout: .milliseconds(300)) } == .timeout)
            // The owner dies (its descriptors close even before it is reaped); its child lives on.
            kill(peer.pid, SIGKILL)
            #expect(status { _ = try mutex.acquire(key: 0, timeout: .seconds(10)) } == .abandoned,
                    "the owner's forked child hid its death")
            if child > 0 { kill(child, SIGKILL) }  // then the output ends and the peer can be reaped
            _ = peer.wait()
        }
    }
}
