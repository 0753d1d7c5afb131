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
        func addr(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) -> [UInt8] { [UInt8](repeating: 0, count: 10) + [0xFF, 0xFF, a, b, c, d] }
        let x = b.pick(now: 0, tried: TriedSet(), clientAddress: addr(10, 1, 2, 3))!
        for last in [4, 99, 250] as [UInt8] {
            #expect(b.pick(now: 0, tried: TriedSet(), clientAddress: addr(10, 1, 2, last)) == x)
        }
        var seen = Set<Int>()
        for third in 0..<64 { seen.insert(b.pick(now: 0, tried: TriedSet(), clientAddress: addr(10, 1, UInt8(third), 1))!) }
        #expect(seen.count == 4)
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
    }
}
