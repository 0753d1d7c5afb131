import Testing
@testable import LBConfig
@testable import LBCore

/// `slow_start=TIME`: a peer coming back gets a share of requests that grows with the time since
/// it came back, to its full weight after TIME; nginx's choices are unchanged otherwise.
@Suite struct SlowStartTests {
    func slowGroup(_ ms: Int, policy: UpstreamGroup.Policy = .roundRobin) -> UpstreamGroup {
        var g = group([1, 1], policy: policy, maxFails: 1, failTimeoutMs: 1_000)
        g.peers[1].slowStartMs = ms
        return g
    }

    func share(_ b: inout BalancerCore, peer: Int, now: Int64, n: Int = 1_000) -> Double {
        Double(sequence(&b, n, now: now).filter { $0 == peer }.count) / Double(n)
    }

    @Test func aPeerBackFromFailTimeoutRampsUpOverSlowStart() {
        var b = BalancerCore(slowGroup(10_000))
        // Peer 1 fails once (max_fails=1): out for fail_timeout (1 s), then ramping for 10 s.
        var tried = TriedSet()
        tried.insert(0)
        let p = b.pick(now: 1_000, tried: tried)!
        #expect(p == 1)
        #expect(b.release(p, failed: true, now: 1_000) == true)
        #expect(share(&b, peer: 1, now: 1_500) == 0, "inside fail_timeout")
        // 10% into the ramp: weight 0.1 against 1 → about 1 request in 11.
        let early = share(&b, peer: 1, now: 2_000 + 1_000)
        #expect(early > 0.05 && early < 0.14, "\(early)")
        // Half way: 0.5 against 1 → a third.
        let half = share(&b, peer: 1, now: 2_000 + 5_000)
        #expect(half > 0.28 && half < 0.38, "\(half)")
        // Over: an equal share again.
        #expect(share(&b, peer: 1, now: 2_000 + 10_000) == 0.5)
    }

    @Test func withoutSlowStartTheSequenceIsNginxs() {
        var b = BalancerCore(group([5, 1, 1]))
        #expect(sequence(&b, 7) == [0, 0, 1, 0, 2, 0, 0])
    }

    @Test func leastConnUsesTheRampedWeight() {
        var b = BalancerCore(slowGroup(10_000, policy: .leastConn))
        b.peers[1].beginSlowStart(10_000)
        // Hold the picks open: least_conn balances connections by weight; peer 1 at 10% of its
        // weight gets about a tenth of peer 0's connections.
        var counts = [0, 0]
        for _ in 0..<110 { counts[b.pick(now: 11_000, tried: TriedSet())!] += 1 }
        #expect(counts[1] >= 5 && counts[1] <= 15, "\(counts)")
    }
}

extension SlowStartTests {
    /// A member that joins through DNS ramps up; the first members of an empty upstream do not
    /// (they would all ramp alike).
    @Test func membersJoiningThroughDNSRampUp() {
        var s = dynamicServer()
        s.slowStartMs = 30_000
        var core = BalancerCore(emptyGroup(dynamic: [s]))
        _ = core.applyResolved(source: 0, server: s, addresses: ips("10.0.0.1"))
        #expect(core.peers[0].slowStartFrom == 0)
        let c = core.applyResolved(source: 0, server: s, addresses: ips("10.0.0.1", "10.0.0.2"))
        #expect(c.added == [1])
        let from = core.peers[1].slowStartFrom
        #expect(from > 0 && core.peers[1].slowStartMs == 30_000)
        // 1% into its ramp it gets about 1 request in 100.
        let n = sequence(&core, 1_000, now: from + 300).filter { $0 == 1 }.count
        #expect(n >= 1 && n <= 20, "\(n)")
    }

    /// Back from an active health-check outage (down → up), not on a new peer's first pass.
    @Test func backFromAHealthCheckOutageRampsUp() {
        var g = slowGroup(10_000)
        g.healthCheck = HealthCheck(location: SourceLocation(file: "t", line: 1, column: 1))
        var core = BalancerCore(g)
        _ = core.recordCheck(1, ok: true, detail: "200", wallMs: 0, micros: 1, fails: 1, passes: 1)
        #expect(core.peers[1].slowStartFrom == 0)
        _ = core.recordCheck(1, ok: false, detail: "503", wallMs: 0, micros: 1, fails: 1, passes: 1)
        #expect(core.recordCheck(1, ok: true, detail: "200", wallMs: 0, micros: 1, fails: 1, passes: 1) == .up)
        #expect(core.peers[1].slowStartFrom > 0)
    }
}
