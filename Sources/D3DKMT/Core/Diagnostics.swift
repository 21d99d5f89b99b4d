/// What the library reports about its own calls, for runtime authors debugging them.
public enum Diagnostics {
    /// `D3DKMT_DEBUG`, read once when first asked: unset (or empty, or `0`) reports nothing;
    /// `calls` reports every C ABI call; anything else (`1`) reports each failing call with its
    /// status and reason. Reports go to standard error.
    public enum Trace: Sendable {
        case off, failures, calls
    }

    public static let trace: Trace = {
        switch Kernel.environment("D3DKMT_DEBUG") {
        case nil, "", "0": return .off
        case "calls": return .calls
        default: return .failures
        }
    }()

    /// Writes `line` and a newline to standard error in one `write(2)`.
    public static func report(_ line: String) {
        Kernel.writeStandardError(line + "\n")
    }
}

extension Diagnostics {
    /// How many descriptors this process has open (`/proc/self/fd`), or -1 without `/proc`: what
    /// leak checks compare before and after.
    public static func openDescriptorCount() -> Int { Kernel.openDescriptorCount() }
}
