@testable import LBConfig
@testable import LBCore
import Testing

@Suite struct APIJSONTests {
    func parse(_ s: String) -> [String: APIValue]? {
        if case .success(let o) = parseFlatJSONObject(Array(s.utf8)) { return o }
        return nil
    }

    @Test func flatObjectsParseAndEverythingElseIsRefused() {
        #expect(parse("{}") == [:])
        #expect(parse(" { \"address\" : \"127.0.0.1:9005\", \"weight\": 2, \"down\": false, \"x\": null } ") ==
                ["address": .string("127.0.0.1:9005"), "weight": .int(2), "down": .bool(false), "x": .null])
        #expect(parse("{\"a\": \"q\\\"uote\\\\\"}") == ["a": .string("q\"uote\\")])
        #expect(parse("{\"n\": -5}") == ["n": .int(-5)])
        for bad in ["", "[]", "{", "{\"a\"}", "{\"a\": }", "{\"a\": 1,}", "{\"a\": 1} x", "{a: 1}", "{\"a\": 1.5}", "{\"a\": {\"b\": 1}}", "{\"a\": tru}"] {
            #expect(parse(bad) == nil, "\(bad)")
        }
    }
}

@Suite struct HealthStateTests {
    func core(mandatory: Bool = false) -> BalancerCore {
        var g = group([1, 1])
        g.healthCheck = HealthCheck(mandatory: mandatory, location: SourceLocation(file: "t", line: 1, column: 1))
        return BalancerCore(g)
    }

    @Test func hysteresisTakesPeersDownAndBackUp() {
        var c = core()
        #expect(c.peers[0].health == .up)
        #expect(c.recordCheck(0, ok: false, detail: "x", wallMs: 1, micros: 1, fails: 2, passes: 2) == nil)
        #expect(c.recordCheck(0, ok: false, detail: "x", wallMs: 2, micros: 1, fails: 2, passes: 2) == .down)
        // A down peer is never picked.
        for _ in 0..<4 { #expect(c.pick(now: 0, tried: TriedSet()).map { c.release($0, failed: false, now: 0); return $0 } == 1) }
        #expect(c.recordCheck(0, ok: true, detail: "ok", wallMs: 3, micros: 1, fails: 2, passes: 2) == nil)
        #expect(c.recordCheck(0, ok: true, detail: "ok", wallMs: 4, micros: 1, fails: 2, passes: 2) == .up)
        #expect(c.peers[0].checks.map(\.ok) == [false, false, true, true])
        #expect(c.peers[0].lastFailure == "health check: x")
    }

    @Test func mandatoryPeersWaitForTheirFirstPass() {
        var c = core(mandatory: true)
        #expect(c.peers[0].state(0) == "checking")
        #expect(c.pick(now: 0, tried: TriedSet()) == nil)
        #expect(c.recordCheck(1, ok: true, detail: "ok", wallMs: 1, micros: 1, fails: 1, passes: 3) == .up)
        #expect(c.pick(now: 0, tried: TriedSet()) == 1)
    }

    @Test func apiChangesKeepIndicesStable() {
        var c = BalancerCore(group([1, 1]))
        let added = c.add(Peer(address: HostPort(host: "127.0.0.9", port: 9), name: "127.0.0.9:9", weight: 1, maxFails: 1,
                               failTimeoutMs: 1000, maxConns: 0, backup: false, down: false))
        #expect(added == 2 && c.peers[2].id == 3)
        c.remove(0)
        #expect(c.liveCount == 2)
        #expect(c.index(ofID: 1) == nil && c.index(ofID: 3) == 2)
        c.setDraining(1, true)
        var picks: Set<Int> = []
        for _ in 0..<6 { if let p = c.pick(now: 0, tried: TriedSet()) { picks.insert(p); c.release(p, failed: false, now: 0) } }
        #expect(picks == [2])
        #expect(c.livePeers.map(\.name) == ["p1", "127.0.0.9:9"])
    }

    @Test func matchBlockStatusRules() {
        var m = MatchBlock(name: "m")
        #expect(m.statusPasses(200) && m.statusPasses(399) && !m.statusPasses(404))
        m.statuses = [(200...299, false), (204...204, true)]
        #expect(m.statusPasses(200) && !m.statusPasses(204) && !m.statusPasses(301))
        m.statuses = [(500...599, true)]
        #expect(m.statusPasses(404) && !m.statusPasses(503))
    }

    @Test func latencyQuantilesComeFromTheBuckets() {
        var h = LatencyHistogram()
        #expect(h.quantileMs(0.5) == nil)
        for _ in 0..<90 { h.observe(3_000) }     // 3 ms: the 5 ms bucket
        for _ in 0..<10 { h.observe(400_000) }   // 400 ms: the 500 ms bucket
        #expect(h.total == 100 && h.sumMicros == 90 * 3_000 + 10 * 400_000)
        #expect(h.quantileMs(0.5)! <= 5)
        #expect(h.quantileMs(0.99)! > 250 && h.quantileMs(0.99)! <= 500)
    }
}
