import Testing
@testable import D3DKMT
import KMTTestSupport
#if canImport(Glibc)
import Glibc
#endif

extension D3DKMTSuite {
    /// How many live shared objects one user holds at the common soft `RLIMIT_NOFILE` of 1024, and
    /// the opt-in raise `D3DKMT_RAISE_NOFILE=1` (#12 item 9). The peer runs as user 65534 when the
    /// tests run as root, so the kernel's per-user limit on descriptors in flight applies.
    @Suite struct DescriptorLimits {
        /// Keeping each resource and its handle: three descriptors open per object (the buffer,
        /// the runtime data page, the handle), so about 1024 / 3, and the failure is
        /// `STATUS_TOO_MANY_OPENED_FILES`.
        @Test func resourcesAndHandlesAtTheSoftLimit() throws {
            let peer = try runPeer(["fill", "resources", "100000", "0"])
            #expect(peer.exitStatus == 0, "peer said: \(peer.text)")
            let live = Int(peer.output["live"] ?? "") ?? 0
            print("descriptor limit: \(live) live shared resources (resource and handle kept) at soft 1024: "
                  + (peer.output["status"] ?? "?"))
            #expect(peer.output["status"] == "\(NTStatus.tooManyOpenedFiles)")
            #expect(live > 300 && live < 1024)
        }

        /// Keeping only the handles: one descriptor open per object, but two in flight in its
        /// socket (the buffer and the runtime data page), which the kernel counts per user against
        /// the soft limit: about 1024 / 2, and the failure is `STATUS_INSUFFICIENT_RESOURCES`
        /// (root is exempt from the in-flight limit).
        @Test func handlesAloneAtTheSoftLimit() throws {
            let peer = try runPeer(["fill", "handles", "100000", "0"])
            #expect(peer.exitStatus == 0, "peer said: \(peer.text)")
            let live = Int(peer.output["live"] ?? "") ?? 0
            print("descriptor limit: \(live) live shared handles (resources closed) at soft 1024: "
                  + (peer.output["status"] ?? "?"))
            #expect(live > 450 && live < 1024)
            #expect(peer.output["status"] == "\(NTStatus.insufficientResources)"
                    || peer.output["status"] == "\(NTStatus.tooManyOpenedFiles)")
        }

        /// With `D3DKMT_RAISE_NOFILE=1` the first device raises the soft limit to the hard one, so
        /// the same process holds 1,500 resources and handles (where the hard limit allows it).
        @Test func theOptInRaisesTheSoftLimitToTheHardOne() throws {
            let hard = Kernel.descriptorLimits().hard
            let peer = try runPeer(["fill", "resources", "1500", "1"])
            #expect(peer.exitStatus == 0, "peer said: \(peer.text)")
            #expect(peer.output["soft"] == "\(hard)", "the soft limit was not raised to the hard \(hard)")
            if hard >= 6000 {
                #expect(peer.output["live"] == "1500")
                #expect(peer.output["status"] == "success")
            }
        }
    }
}
