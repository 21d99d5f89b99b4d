/// The opt-in raise of the descriptor limit (#12 item 9): with `D3DKMT_RAISE_NOFILE=1` in the
/// environment, the first device a process makes (`D3DKMTCreateDevice`, `Adapter.makeDevice`)
/// raises its soft `RLIMIT_NOFILE` to the hard limit, once.
///
/// Every live shared object costs descriptors twice: open in the processes that hold it, and in
/// flight in its handle's socket, which Linux counts against the sender's soft limit for the
/// whole user (`too_many_unix_fds`). At the common soft limit of 1024 a process holds about 1,000
/// handles (measured in `DescriptorLimitTests`); the hard limit is commonly 524,288 (systemd) or
/// 4,096. Raising the soft limit is safe for programs that never pass descriptors above 1023 to
/// `select(2)`, which is why it is not the default: a library must not change what its process
/// may `select` on unasked.
enum DescriptorLimit {
    /// Whether `D3DKMT_RAISE_NOFILE` asks for the raise (`1`, `yes` or `true`).
    static var asked: Bool {
        switch Kernel.environment("D3DKMT_RAISE_NOFILE") {
        case "1", "yes", "true": return true
        default: return false
        }
    }

    /// The limits before and after the raise, when one was asked for and made (nil otherwise).
    static let raised: (before: UInt64, after: UInt64)? = {
        guard asked else { return nil }
        let (soft, hard) = Kernel.descriptorLimits()
        guard soft < hard else { return (soft, soft) }
        do { try Kernel.setDescriptorSoftLimit(hard) } catch { return nil }
        return (soft, hard)
    }()
}
