import Foundation
import Testing

extension Http2Tests {
    /// A connection whose streams come back in bursts keeps the buffers its requests grew between
    /// them, and frees them once it stays idle (`H2Session.idleMemoryDelayMs`): the first stream
    /// after such a pause is answered as the ones before it (the HPACK tables stay, the literal
    /// cache is filled again), and the idle-memory timer is not the keepalive timer: the
    /// connection ends with GOAWAY keepalive_timeout after its last response, not at the
    /// idle-memory delay.
    @Test func aConnectionThatPausesBetweenBurstsIsAnsweredAndEndsAtKeepaliveTimeout() throws {
        let (lb, backend, _) = try Http2Tests.start(extra: "keepalive_timeout 1s;")
        defer { withExtendedLifetime(backend) {} }
        // Three streams one after the other, the third after 0.3 s idle (past the 0.1 s delay).
        let out = try h2client(["bursts", "\(lb.port)", "3", "0.3", "/v"])
        let answer = "200/text/plain/19"
        #expect(out.hasPrefix("\(answer) \(answer) \(answer) goaway 0 after "), "\(out)")
        #expect(out.hasSuffix(" closed"), "\(out)")
        let after = Double(out.split(separator: " ").dropLast().last ?? "") ?? 0
        #expect(after >= 0.9, "GOAWAY \(after) s after the last response, keepalive_timeout is 1 s: \(out)")
    }
}
