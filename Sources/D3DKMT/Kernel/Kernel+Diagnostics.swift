#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

extension Kernel {
    /// `write(2)` of `text` to standard error, best effort (a report must never fail a call, so
    /// it bypasses the fault seam and ignores errors).
    static func writeStandardError(_ text: String) {
        var bytes = Array(text.utf8)
        var done = 0
        while done < bytes.count {
            let written = bytes.withUnsafeMutableBytes { raw in write(2, raw.baseAddress! + done, raw.count - done) }
            if written > 0 {
                done += written
            } else if written < 0 && errno == EINTR {
                continue
            } else {
                return
            }
        }
        bytes.removeAll()
    }
}
