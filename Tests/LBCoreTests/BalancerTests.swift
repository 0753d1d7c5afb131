import Testing
@testable import LBConfig
@testable import LBCore

func group(_ weights: [Int], policy: UpstreamGroup.Policy = .roundRobin, backup: Set<Int> = [], maxFails: Int = 1, failTimeoutMs: Int = 10_000) -> UpstreamGroup {
    let peers = weights.enumerated().map { i, w in
        Peer(address: HostPort(host: "127.0.0.\(i + 1)", port: 8000 + i), name: "p\(i)", weight: w, maxFails: maxFails,
             failTimeoutMs: failTimeoutMs, maxConns: 0, backup: backup.contains(i), down: false)
    }
    return UpstreamGroup(name: "g", peers: peers, policy: policy, keepalive: nil, keepaliveTimeoutMs: 60_000,
                         keepaliveRequests: 100, location: SourceLocation(file: "t", line: 1, column: 1), implicit: false, service: nil)
}

/// An upstream as configured in the nginx reference run, with where nginx sent each request
/// (Tests/LBCoreTests/NginxBalancerVectors.swift, written by Tests/support/nginx-balancer-vectors.py).
struct NginxVectorSet: Sendable, CustomTestStringConvertible {
    let name: String
    /// `hash KEY`, `hash KEY consistent` or `ip_hash`.
    let policy: String
    /// As written in the `upstream` block; peers on 127.7.0.2 refuse connections (max_fails=0).
    let servers: [(name: String, weight: Int, down: Bool, maxFails: Int)]
    /// One line per request, in order: `KEY -> I,J,…` (the peers tried, by index into `servers`).
    let vectors: String

    var testDescription: String { name }

    func upstream() throws -> UpstreamGroup {
        let peers = servers.map { s in
            Peer(address: HostPort(host: String(s.name.split(separator: ":")[0]), port: s.name.contains(":") ? Int(s.name.split(separator: ":")[1])! : 80),
                 name: s.name, weight: s.weight, maxFails: s.maxFails, failTimeoutMs: 10_000, maxConns: 0, backup: false, down: s.down)
        }
        let key = try Template(parsing: "$http_x_key")
        let p: UpstreamGroup.Policy = policy == "ip_hash" ? .ipHash : .hash(key, consistent: policy.hasSuffix("consistent"))
        return UpstreamGroup(name: name, peers: peers, policy: p, keepalive: nil, keepaliveTimeoutMs: 60_000, keepaliveRequests: 100,
                             location: SourceLocation(file: "t", line: 1, column: 1), implicit: false, service: nil)
    }

    /// (key, peers tried) in request order.
    var requests: [(key: String, tried: [Int])] {
        vectors.split(separator: "\n").map { line in
            let parts = line.split(separator: " -> ", omittingEmptySubsequences: false)
            return (String(parts[0]), parts[1].split(separator: ",").map { Int($0)! })
        }
    }
}

/// A client address as lb's listener gives it (IPv4 v4-mapped, 16 bytes).
func clientAddress(_ dotted: String) -> [UInt8] {
    [UInt8](repeating: 0, count: 10) + [0xFF, 0xFF] + dotted.split(separator: ".").map { UInt8($0)! }
}

/// Picks `n` times, releasing each immediately as a success.
func sequence(_ b: inout BalancerCore, _ n: Int, now: Int64 = 1000) -> [Int] {
    (0..<n).map { _ in
        let p = b.pick(now: now, tried: TriedSet())!
        b.release(p, failed: false, now: now)
        return p
    }
}

@Suite struct BalancerTests {
    @Test func smoothWeightedRoundRobinMatchesNginx() {
        var b = BalancerCore(group([5, 1, 1]))
        // nginx's documented sequence for weights {5, 1, 1}: a a b a c a a
        #expect(sequence(&b, 7) == [0, 0, 1, 0, 2, 0, 0])
        #expect(sequence(&b, 7) == [0, 0, 1, 0, 2, 0, 0])
    }

    @Test func equalWeightsRotateStrictly() {
        var b = BalancerCore(group([1, 1, 1, 1]))
        #expect(sequence(&b, 8) == [0, 1, 2, 3, 0, 1, 2, 3])
    }

    @Test func failuresTakeAPeerOutForFailTimeoutThenItIsProbed() {
        var b = BalancerCore(group([1, 1], maxFails: 2, failTimeoutMs: 10_000))
        let p = b.pick(now: 1000, tried: TriedSet())!
        b.release(p, failed: true, now: 1000)
        #expect(b.peers[p].fails == 1)
        let q = b.pick(now: 1001, tried: TriedSet())!
        b.release(q, failed: false, now: 1001)
        // A second failure of p within fail_timeout takes it out.
        var tried = TriedSet()
        tried.insert(1 - p)
        let again = b.pick(now: 1002, tried: tried)!
        #expect(again == p)
        #expect(b.release(again, failed: true, now: 1002) == true)
        #expect(sequence(&b, 6, now: 2000).allSatisfy { $0 != p })
        // After fail_timeout one request probes it; a success brings it back fully.
        let afterWindow = sequence(&b, 4, now: 12_100)
        #expect(afterWindow.contains(p))
        #expect(b.peers[p].fails == 0)
    }

    @Test func triedPeersAreSkippedAndExhaustionIsNil() {
        var b = BalancerCore(group([1, 1]))
        var tried = TriedSet()
        let a = b.pick(now: 0, tried: tried)!
        tried.insert(a)
        let c = b.pick(now: 0, tried: tried)!
        #expect(c != a)
        tried.insert(c)
        #expect(b.pick(now: 0, tried: tried) == nil)
    }

    @Test func backupServesOnlyWhenPrimariesAreOut() {
        var b = BalancerCore(group([1, 1, 1], backup: [2], maxFails: 1))
        #expect(sequence(&b, 6).allSatisfy { $0 != 2 })
        for p in [0, 1] {
            var t = TriedSet()
            t.insert(1 - p)
            let x = b.pick(now: 5000, tried: t)!
            b.release(x, failed: true, now: 5000)
        }
        #expect(sequence(&b, 3, now: 5001) == [2, 2, 2])
    }

    @Test func downPeersAreNeverChosen() {
        var g = group([1, 1, 1])
        g.peers[1].down = true
        var b = BalancerCore(g)
        #expect(!sequence(&b, 9).contains(1))
    }

    @Test func leastConnPrefersIdlePeers() {
        var b = BalancerCore(group([1, 1, 1], policy: .leastConn))
        let first = b.pick(now: 0, tried: TriedSet())!
        let second = b.pick(now: 0, tried: TriedSet())!
        let third = b.pick(now: 0, tried: TriedSet())!
        #expect(Set([first, second, third]) == [0, 1, 2])
        b.release(second, failed: false, now: 0)
        #expect(b.pick(now: 0, tried: TriedSet()) == second)
    }

    @Test func ipHashIsStickyPerClientNetwork() {
        var b = BalancerCore(group([1, 1, 1, 1], policy: .ipHash))
        let x = b.pick(now: 0, tried: TriedSet(), clientAddress: clientAddress("10.1.2.3"))!
        for last in [4, 99, 250] {
            #expect(b.pick(now: 0, tried: TriedSet(), clientAddress: clientAddress("10.1.2.\(last)")) == x)
        }
        var seen = Set<Int>()
        for third in 0..<64 { seen.insert(b.pick(now: 0, tried: TriedSet(), clientAddress: clientAddress("10.1.\(third).1"))!) }
        #expect(seen.count == 4)
    }

    /// Replays nginx's reference run: every request, in order, on one balancer (nginx's round-robin
    /// fallback is stateful), retrying like the proxy while the chosen peer refuses connections.
    @Test(arguments: nginxBalancerVectors)
    func hashingPicksThePeersNginxPicksInItsRetryOrder(_ set: NginxVectorSet) throws {
        var b = BalancerCore(try set.upstream())
        let dead = Set(set.servers.indices.filter { set.servers[$0].name.hasPrefix("127.7.0.2:") })
        var retried = 0, fellBack = 0, atTheTwentyFirst = 0, used = Set<Int>()
        let requests = set.requests
        #expect(requests.count >= 50)
        for (key, expected) in requests {
            var tried = TriedSet()
            var got: [Int] = []
            let address = set.policy == "ip_hash" ? clientAddress(key) : []
            while let p = b.pick(now: 1000, tried: &tried, clientAddress: address, hashKey: Array(key.utf8)) {
                got.append(p)
                b.release(p, failed: dead.contains(p), now: 1000)
                if !dead.contains(p) || tried.count >= b.liveCount { break }
            }
            #expect(got == expected, "key \"\(key)\"")
            if got.count > 1 { retried += 1 }
            if tried.walkTries > 20 || key.isEmpty { fellBack += 1 }
            if tried.walkTries == 20 && got.count == 1 { atTheTwentyFirst += 1 }
            used.insert(got.last ?? -1)
        }
        // The sets are built to exercise what their names say.
        if !dead.isEmpty { #expect(retried > 0) }
        if set.name.hasSuffix("FallbackToRoundRobin") {
            #expect(fellBack > 0 && fellBack < requests.count)
            #expect(atTheTwentyFirst > 0, "the 20-skip boundary is exercised")
        }
        #expect(used == Set(set.servers.indices.filter { !set.servers[$0].down && !dead.contains($0) }))
    }

    /// nginx's `peers->single`: one server (an upstream of one, or `proxy_pass http://ADDR`) is
    /// never taken out by max_fails, so the request after a failure is tried again, not
    /// answered "no live upstreams".
    @Test func theOnlyPeerIsTriedAgainAfterItFails() throws {
        let key = try Template(parsing: "$request_uri")
        let policies: [UpstreamGroup.Policy] = [.roundRobin, .leastConn, .ipHash, .hash(key, consistent: false),
                                                .hash(key, consistent: true), .random(two: false)]
        for policy in policies {
            var b = BalancerCore(group([1], policy: policy, maxFails: 1))
            for now: Int64 in [1000, 1001, 1002] {
                var tried = TriedSet()
                let p = b.pick(now: now, tried: &tried, clientAddress: clientAddress("10.0.0.1"), hashKey: Array("/k".utf8))
                #expect(p == 0, "\(policy)")
                // No "upstream server temporarily disabled", and it stays up.
                #expect(b.release(0, failed: true, now: now) == false)
                #expect(b.peers[0].state(now) == "up")
                // The request itself is not retried on the same peer.
                #expect(tried.count >= b.liveCount)
                #expect(b.pick(now: now, tried: &tried) == nil)
            }
            #expect(b.peers[0].failures == 3)
        }
    }

    @Test func theOnlyPeerStillHonoursDownAndMaxConns() {
        var g = group([1])
        g.peers[0].down = true
        var b = BalancerCore(g)
        #expect(b.pick(now: 0, tried: TriedSet()) == nil)
        g.peers[0].down = false
        g.peers[0].maxConns = 1
        b = BalancerCore(g)
        #expect(b.pick(now: 0, tried: TriedSet()) == 0)
        #expect(b.pick(now: 0, tried: TriedSet()) == nil)
    }

    @Test func twoPeersAreStillTakenOutByMaxFails() {
        var b = BalancerCore(group([1, 1], maxFails: 1))
        var tried = TriedSet()
        let p = b.pick(now: 1000, tried: &tried)!
        #expect(b.release(p, failed: true, now: 1000) == true)
        #expect(sequence(&b, 4, now: 1001).allSatisfy { $0 != p })
    }

    @Test func allPeersFailedOutStayOutUntilFailTimeout() {
        // nginx dropped the "quick recovery" reset (1.11.5): no live upstreams until fail_timeout.
        var b = BalancerCore(group([1, 1], maxFails: 1, failTimeoutMs: 10_000))
        for p in [0, 1] {
            var t = TriedSet()
            t.insert(1 - p)
            b.release(b.pick(now: 1000, tried: t)!, failed: true, now: 1000)
        }
        #expect(b.pick(now: 2000, tried: TriedSet()) == nil)
        #expect(b.pick(now: 3000, tried: TriedSet()) == nil)
        #expect(b.pick(now: 11_001, tried: TriedSet()) != nil)
    }

    @Test func downPeersAreNotCountedAsRetries() {
        var g = group([1, 1, 1])
        g.peers[1].down = true
        #expect(BalancerCore(g).liveCount == 2)
    }

    @Test func consistentRingSplitsServerNamesAsNginxDoes() {
        #expect(BalancerCore.ringHostPort("127.0.0.1:8080") == (Array("127.0.0.1".utf8), Array("8080".utf8)))
        #expect(BalancerCore.ringHostPort("backend") == (Array("backend".utf8), []))
        #expect(BalancerCore.ringHostPort("[::1]:81") == (Array("[::1]".utf8), Array("81".utf8)))
        #expect(BalancerCore.ringHostPort("[::1]") == (Array("[::1]".utf8), []))
        #expect(BalancerCore.ringHostPort("unix:/tmp/s") == (Array("/tmp/s".utf8), []))
    }

    @Test func consistentHashMovesAboutOneNthOfKeysWhenAServerIsAdded() throws {
        let key = try Template(parsing: "$request_uri")
        var four = BalancerCore(group([1, 1, 1, 1], policy: .hash(key, consistent: true)))
        var five = BalancerCore(group([1, 1, 1, 1, 1], policy: .hash(key, consistent: true)))
        var moved = 0
        let n = 10_000
        var perPeer = [Int](repeating: 0, count: 5)
        for k in 0..<n {
            let bytes = Array("/item/\(k)".utf8)
            let a = four.pick(now: 0, tried: TriedSet(), hashKey: bytes)!
            let b = five.pick(now: 0, tried: TriedSet(), hashKey: bytes)!
            perPeer[b] += 1
            if a != b {
                moved += 1
                #expect(b == 4, "a key may only move to the new server")
            }
        }
        // Ideal share is 1/5 = 20%; allow the spread of a 160-point ring.
        #expect(Double(moved) / Double(n) > 0.12 && Double(moved) / Double(n) < 0.28)
        #expect(perPeer.allSatisfy { $0 > n / 10 })
    }

    @Test func plainHashIsStable() throws {
        let key = try Template(parsing: "$request_uri")
        var b = BalancerCore(group([1, 1, 1], policy: .hash(key, consistent: false)))
        let k = Array("/x".utf8)
        let first = b.pick(now: 0, tried: TriedSet(), hashKey: k)
        for _ in 0..<5 { #expect(b.pick(now: 0, tried: TriedSet(), hashKey: k) == first) }
    }

    @Test func crc32KnownValue() {
        #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
        #expect(CRC32.final(CRC32.update(CRC32.update(CRC32.initial, decimal: 1234), Array("56789".utf8))) == 0xCBF4_3926)
        #expect(CRC32.final(CRC32.update(CRC32.initial, decimal: 0)) == CRC32.checksum(Array("0".utf8)))
    }
}
