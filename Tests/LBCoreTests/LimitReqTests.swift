import Testing
import LBConfig
import LBIO
@testable import LBCore

/// The leaky bucket of ngx_http_limit_req_module (lookup, account, expire), with nginx's numbers:
/// excess in thousandths of a request, rate in requests per 1000 s, time in milliseconds.
struct LimitReqTests {
    static func zone(rate: Int, size: Int = 1 << 20, name: String = "one") -> LimitZoneRuntime {
        LimitZoneRuntime(LimitZone(name: name, kind: .requests, key: Template(literal: "k"), size: size, rate: rate, location: nil))
    }

    static func decide(_ z: LimitZoneRuntime, burst: Int, delay: Int, key: String = "10.0.0.1", at now: Int64) -> LimitReqDecision {
        LimitReqDecision.decide([.init(zone: z, burst: burst * 1000, delay: delay * 1000, key: Array(key.utf8))], now: now)
    }

    static let nodelay = Int.max / 1000

    @Test func burstWithNodelayAdmitsBurstPlusOneOfASimultaneousFlood() {
        // rate=1r/s burst=5 nodelay, 20 requests in the same millisecond: nginx admits 6.
        let z = LimitReqTests.zone(rate: 1000)
        let outcomes = (0..<20).map { _ in LimitReqTests.decide(z, burst: 5, delay: LimitReqTests.nodelay, at: 100_000) }
        #expect(outcomes.filter { $0 == .passed }.count == 6)
        #expect(outcomes[6] == .rejected(excess: 6000, limit: 0))
        #expect(z.requests.withLock { $0.state(for: Array("10.0.0.1".utf8))?.excess } == 5000)
    }

    @Test func withoutNodelayTheBurstIsDelayedOneIntervalPerExcessRequest() {
        let z = LimitReqTests.zone(rate: 1000)
        #expect(LimitReqTests.decide(z, burst: 3, delay: 0, at: 100_000) == .passed)
        #expect(LimitReqTests.decide(z, burst: 3, delay: 0, at: 100_000) == .delayed(ms: 1000, excess: 1000, limit: 0))
        #expect(LimitReqTests.decide(z, burst: 3, delay: 0, at: 100_000) == .delayed(ms: 2000, excess: 2000, limit: 0))
        #expect(LimitReqTests.decide(z, burst: 3, delay: 0, at: 100_000) == .delayed(ms: 3000, excess: 3000, limit: 0))
        #expect(LimitReqTests.decide(z, burst: 3, delay: 0, at: 100_000) == .rejected(excess: 4000, limit: 0))
    }

    @Test func delayParameterServesThatManyWithoutWaiting() {
        // burst=5 delay=2 at 2r/s: excess up to 2.000 passes, then (excess − 2000) × 1000 / rate.
        let z = LimitReqTests.zone(rate: 2000)
        let got = (0..<7).map { _ in LimitReqTests.decide(z, burst: 5, delay: 2, at: 100_000) }
        #expect(got == [.passed, .passed, .passed, .delayed(ms: 500, excess: 3000, limit: 0), .delayed(ms: 1000, excess: 4000, limit: 0),
                        .delayed(ms: 1500, excess: 5000, limit: 0), .rejected(excess: 6000, limit: 0)])
    }

    @Test func excessDrainsAtTheRateInMilliseconds() {
        // 10r/s: 150 ms drain 1.500; the request itself adds 1.000.
        var t = LimitReqTable(zoneSize: 1 << 20)
        let k = Array("a".utf8)
        #expect(t.lookup(k, now: 1000, rate: 10_000, burst: 10_000, account: true) == .ok(excess: 0))
        for _ in 0..<3 { _ = t.lookup(k, now: 1000, rate: 10_000, burst: 10_000, account: true) }
        #expect(t.state(for: k)?.excess == 3000)
        #expect(t.lookup(k, now: 1150, rate: 10_000, burst: 10_000, account: true) == .ok(excess: 2500))
        #expect(t.state(for: k)?.last == 1150)
        // Drained past zero: the request's own 1.000 is drained too (nginx clamps the sum at 0).
        #expect(t.lookup(k, now: 60_000, rate: 10_000, burst: 10_000, account: true) == .ok(excess: 0))
        #expect(t.lookup(k, now: 60_050, rate: 10_000, burst: 10_000, account: true) == .ok(excess: 500))
    }

    @Test func perMinuteRatesUseIntegerThousandths() {
        // rate=30r/m is 500 per 1000 s: one request per 2 s drains exactly.
        #expect(LimitReqTable.excess(1000, rate: 500, ms: 2000) == 1000)
        #expect(LimitReqTable.excess(1000, rate: 500, ms: 1999) == 1001)
        // rate=1r/m is 16 (1000/60 truncated), as nginx.
        #expect(LimitReqTable.excess(0, rate: 16, ms: 60_000) == 40)
    }

    @Test func clockStepsBackCountAsNoTimeOrOneMillisecond() {
        #expect(LimitReqTable.elapsed(1000, since: 1500) == 0)
        #expect(LimitReqTable.elapsed(1000, since: 70_000) == 1)
        #expect(LimitReqTable.elapsed(5000, since: 1000) == 4000)
    }

    @Test func emptyKeyIsNotAccounted() {
        let z = LimitReqTests.zone(rate: 1000)
        #expect(LimitReqTests.decide(z, burst: 0, delay: 0, key: "", at: 1000) == .declined)
        #expect(z.requests.withLock { $0.count } == 0)
    }

    @Test func severalLimitsAccountEveryOneAndTheLongestDelayWins() {
        let perIP = LimitReqTests.zone(rate: 1000, name: "ip")
        let perServer = LimitReqTests.zone(rate: 10_000, name: "server")
        func both(_ now: Int64) -> LimitReqDecision {
            LimitReqDecision.decide([.init(zone: perIP, burst: 10_000, delay: 0, key: Array("1.2.3.4".utf8)),
                                     .init(zone: perServer, burst: 10_000, delay: 0, key: Array("s".utf8))], now: now)
        }
        #expect(both(100_000) == .passed)
        // ip: excess 1.000 → 1000 ms; server: 1.000 at 10r/s → 100 ms. The longer one, by zone "ip".
        #expect(both(100_000) == .delayed(ms: 1000, excess: 1000, limit: 0))
        #expect(perIP.requests.withLock { $0.state(for: Array("1.2.3.4".utf8))?.count } == 0)
        #expect(perServer.requests.withLock { $0.state(for: Array("s".utf8))?.excess } == 1000)
    }

    @Test func aRejectionByALaterLimitLeavesTheEarlierOnesUnaccounted() {
        let first = LimitReqTests.zone(rate: 1000, name: "a")
        let second = LimitReqTests.zone(rate: 1000, name: "b")
        let limits: [LimitReqDecision.Input] = [.init(zone: first, burst: 5000, delay: LimitReqTests.nodelay, key: [1]),
                                                .init(zone: second, burst: 0, delay: 0, key: [2])]
        #expect(LimitReqDecision.decide(limits, now: 100_000) == .passed)
        #expect(LimitReqDecision.decide(limits, now: 100_000) == .rejected(excess: 1000, limit: 1))
        // "a" was held, then unlocked without accounting: its excess is still that of request 1.
        let a = first.requests.withLock { $0.state(for: [1]) }
        #expect(a?.excess == 0 && a?.count == 0)
    }

    @Test func aFullZoneEvictsTheLeastRecentlyUsedState() {
        // 32 KiB: 6 pages of 128-byte states (4-byte keys) = 192 states.
        var t = LimitReqTable(zoneSize: 32768)
        #expect(t.budget.bytes / LimitZoneBudget.requestState(keyLength: 4) == 192)
        for i in 0..<192 { _ = t.lookup([0, 0, 0, UInt8(i)], now: 1000, rate: 1000, burst: 0, account: true) }
        #expect(t.count == 192)
        // Key 0 is used again: key 1 is now the oldest, and goes for the new key.
        _ = t.lookup([0, 0, 0, 0], now: 1001, rate: 1000, burst: 5000, account: true)
        #expect(t.lookup([1, 0, 0, 0], now: 1001, rate: 1000, burst: 0, account: true) == .ok(excess: 0))
        #expect(t.count == 192)
        #expect(t.state(for: [0, 0, 0, 1]) == nil)
        #expect(t.state(for: [0, 0, 0, 0]) != nil)
    }

    @Test func idleDrainedStatesExpireAfterAMinute() {
        var t = LimitReqTable(zoneSize: 1 << 20)
        _ = t.lookup([1], now: 1000, rate: 1000, burst: 0, account: true)
        _ = t.lookup([2], now: 1000, rate: 1000, burst: 0, account: true)
        _ = t.lookup([3], now: 60_999, rate: 1000, burst: 0, account: true)
        #expect(t.count == 3) // idle for less than a minute: kept
        _ = t.lookup([4], now: 61_001, rate: 1000, burst: 0, account: true)
        // Every new state first expires up to two idle, drained ones from the old end.
        #expect(t.state(for: [1]) == nil && t.state(for: [2]) == nil)
        #expect(t.count == 2)
    }

    @Test func aFullZoneWhoseOldestStateIsHeldCannotAllocate() {
        var t = LimitReqTable(zoneSize: 32768)
        guard case .again = t.lookup([0, 0, 0, 0], now: 1000, rate: 1000, burst: 0, account: false) else {
            Issue.record("expected a held state")
            return
        }
        for i in 1..<192 { _ = t.lookup([0, 0, 0, UInt8(i)], now: 1000, rate: 1000, burst: 0, account: true) }
        #expect(t.lookup([9, 9, 9, 9], now: 1000, rate: 1000, burst: 0, account: true) == .noMemory)
    }

    @Test func zonesSurviveAReloadWhenNameKindKeyAndSizeAreUnchanged() throws {
        func table(_ text: String) throws -> RoutingTable {
            try ConfigLoader(prefix: "/tmp").load(text: "events {} http { \(text) server { listen 127.0.0.1:1; location / { limit_req zone=one; } } }").table
        }
        let a = try table("limit_req_zone $binary_remote_addr zone=one:1m rate=1r/s;")
        let first = LimitZoneRuntime.zones(for: a, previous: [])
        _ = first[0].requests.withLock { $0.lookup([1], now: 1, rate: 1000, burst: 0, account: true) }
        let same = LimitZoneRuntime.zones(for: try table("limit_req_zone $binary_remote_addr zone=one:1m rate=1r/s;"), previous: first)
        #expect(same[0] === first[0])
        let newRate = LimitZoneRuntime.zones(for: try table("limit_req_zone $binary_remote_addr zone=one:1m rate=5r/s;"), previous: first)
        #expect(newRate[0] !== first[0] && newRate[0].requests.withLock { $0.count } == 1 && newRate[0].zone.rate == 5000)
        let resized = LimitZoneRuntime.zones(for: try table("limit_req_zone $binary_remote_addr zone=one:2m rate=1r/s;"), previous: first)
        #expect(resized[0].requests.withLock { $0.count } == 0)
    }

    @Test func limitConnCountsPerKeyAndForgetsAKeyAtZero() {
        var t = LimitConnTable(zoneSize: 32768)
        #expect(t.acquire([1], limit: 2) == .passed)
        #expect(t.acquire([1], limit: 2) == .passed)
        #expect(t.acquire([1], limit: 2) == .rejected)
        t.release([1])
        #expect(t.acquire([1], limit: 2) == .passed)
        t.release([1]); t.release([1])
        #expect(t.counts.isEmpty && t.used == 0)
        // 6 pages of 64-byte states: 384 keys, then no room (nginx: no LRU for limit_conn).
        for i in 0..<384 { #expect(t.acquire([0, 0, UInt8(i >> 8), UInt8(i & 0xFF)], limit: 1) == .passed) }
        #expect(t.acquire([7, 7, 7, 7], limit: 1) == .noMemory)
    }

    @Test func binaryRemoteAddrIsFourBytesForIPv4AndSixteenForIPv6() {
        var v4: [UInt8] = [], v6: [UInt8] = []
        PeerAddress(SocketAddress(ip: "192.0.2.7", port: 1)!).appendBinary(to: &v4)
        PeerAddress(SocketAddress(ip: "2001:db8::1", port: 1)!).appendBinary(to: &v6)
        #expect(v4 == [192, 0, 2, 7])
        #expect(v6 == [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [1])
    }

    @Test func limitStatusTextsAreNginxs() {
        #expect([LimitReqStatus.passed, .delayed, .rejected, .delayedDryRun, .rejectedDryRun].map(\.text)
                == ["PASSED", "DELAYED", "REJECTED", "DELAYED_DRY_RUN", "REJECTED_DRY_RUN"])
        #expect([LimitConnStatus.passed, .rejected, .rejectedDryRun].map(\.text) == ["PASSED", "REJECTED", "REJECTED_DRY_RUN"])
    }
}
