import Testing
@testable import LBConfig
@testable import LBCore

func dynamicServer(_ name: String = "app.test", port: Int = 8080, service: String? = nil, weight: Int? = nil,
                   backup: Bool = false) -> DynamicServer {
    DynamicServer(name: name, port: port, service: service, written: service == nil ? "\(name):\(port)" : name, weight: weight ?? 1,
                  weightSet: weight != nil, maxFails: 1, failTimeoutMs: 10_000, maxConns: 0, backup: backup, down: false)
}

func emptyGroup(policy: UpstreamGroup.Policy = .roundRobin, dynamic: [DynamicServer]) -> UpstreamGroup {
    var g = UpstreamGroup(name: "g", peers: [], policy: policy, keepalive: nil, keepaliveTimeoutMs: 60_000, keepaliveRequests: 100,
                          location: SourceLocation(file: "t", line: 1, column: 1), implicit: false, service: nil)
    g.dynamic = dynamic
    return g
}

func ips(_ list: String...) -> [ResolvedAddress] { list.map { ResolvedAddress(ip: $0) } }

@Suite struct DynamicMembersTests {
    /// The addresses a group would take requests on now, in pick order over `n` requests.
    func picks(_ core: inout BalancerCore, _ n: Int) -> [String] {
        (0..<n).compactMap { _ in
            guard let i = core.pick(now: 0, tried: TriedSet()) else { return nil }
            core.release(i, failed: false, now: 0)
            return core.peers[i].text
        }
    }

    @Test func newAddressesJoinAndVanishedIdleOnesLeave() {
        let s = dynamicServer()
        var core = BalancerCore(emptyGroup(dynamic: [s]))
        #expect(core.pick(now: 0, tried: TriedSet()) == nil)
        let c1 = core.applyResolved(source: 0, server: s, addresses: ips("10.0.0.1", "10.0.0.2"))
        #expect(c1.added == [0, 1])
        #expect(Set(picks(&core, 4)) == ["10.0.0.1:8080", "10.0.0.2:8080"])
        let c2 = core.applyResolved(source: 0, server: s, addresses: ips("10.0.0.2", "10.0.0.3"))
        #expect(c2.added == [2] && c2.removed == [0] && c2.draining.isEmpty)
        #expect(Set(picks(&core, 4)) == ["10.0.0.2:8080", "10.0.0.3:8080"])
        // The same answer again changes nothing.
        #expect(core.applyResolved(source: 0, server: s, addresses: ips("10.0.0.3", "10.0.0.2")).isEmpty)
    }

    @Test func unchangedMembersKeepTheirPeerAndState() {
        let s = dynamicServer()
        var core = BalancerCore(emptyGroup(dynamic: [s]))
        _ = core.applyResolved(source: 0, server: s, addresses: ips("10.0.0.1", "10.0.0.2"))
        let i = core.index(ofAddress: "10.0.0.2:8080")!
        let id = core.peers[i].id
        _ = core.pick(now: 0, tried: TriedSet())
        core.peers[i].fails = 1
        core.peers[i].requests = 7
        _ = core.applyResolved(source: 0, server: s, addresses: ips("10.0.0.2", "10.0.0.9"))
        #expect(core.index(ofAddress: "10.0.0.2:8080") == i)
        #expect(core.peers[i].id == id && core.peers[i].fails == 1 && core.peers[i].requests == 7)
    }

    @Test func vanishedMemberWithRequestsInFlightDrainsThenGoes() {
        let s = dynamicServer()
        var core = BalancerCore(emptyGroup(dynamic: [s]))
        _ = core.applyResolved(source: 0, server: s, addresses: ips("10.0.0.1", "10.0.0.2"))
        let busy = core.index(ofAddress: "10.0.0.1:8080")!
        core.peers[busy].conns = 1
        let c = core.applyResolved(source: 0, server: s, addresses: ips("10.0.0.2"))
        #expect(c.draining == [busy] && c.removed.isEmpty)
        #expect(core.peers[busy].state(0) == "draining")
        #expect(Set(picks(&core, 3)) == ["10.0.0.2:8080"])
        #expect(core.sweepVanished().isEmpty)
        core.release(busy, failed: false, now: 0)
        #expect(core.sweepVanished() == [busy])
        #expect(core.index(ofAddress: "10.0.0.1:8080") == nil)
    }

    @Test func memberBackInDNSWhileDrainingIsRevived() {
        let s = dynamicServer()
        var core = BalancerCore(emptyGroup(dynamic: [s]))
        _ = core.applyResolved(source: 0, server: s, addresses: ips("10.0.0.1", "10.0.0.2"))
        core.peers[0].conns = 1
        _ = core.applyResolved(source: 0, server: s, addresses: ips("10.0.0.2"))
        let c = core.applyResolved(source: 0, server: s, addresses: ips("10.0.0.1", "10.0.0.2"))
        #expect(c.revived == [0] && c.added.isEmpty)
        #expect(!core.peers[0].draining && !core.peers[0].vanished)
    }

    @Test func nxdomainEmptiesOnlyItsOwnLine() {
        let a = dynamicServer("a.test"), b = dynamicServer("b.test")
        var core = BalancerCore(emptyGroup(dynamic: [a, b]))
        _ = core.applyResolved(source: 0, server: a, addresses: ips("10.0.0.1"))
        _ = core.applyResolved(source: 1, server: b, addresses: ips("10.0.0.1", "10.0.0.2"))
        #expect(core.liveCount == 3)
        _ = core.applyResolved(source: 0, server: a, addresses: [])
        #expect(core.memberCount(source: 0) == 0 && core.memberCount(source: 1) == 2)
    }

    @Test func srvGivesPortsWeightsAndBackups() {
        let s = dynamicServer(service: "http")
        var core = BalancerCore(emptyGroup(dynamic: [s]))
        _ = core.applyResolved(source: 0, server: s, addresses: [
            ResolvedAddress(ip: "10.0.0.1", port: 9001, weight: 5, priority: 10, target: "a.test"),
            ResolvedAddress(ip: "10.0.0.2", port: 9002, weight: 1, priority: 10, target: "b.test"),
            ResolvedAddress(ip: "10.0.0.3", port: 9003, weight: 1, priority: 20, target: "c.test"),
        ])
        #expect(core.peers.map(\.text) == ["10.0.0.1:9001", "10.0.0.2:9002", "10.0.0.3:9003"])
        #expect(core.peers.map(\.weight) == [5, 1, 1])
        #expect(core.peers.map(\.backup) == [false, false, true])
        #expect(core.peers.map(\.config.name) == ["a.test", "b.test", "c.test"])
        // Smooth weighted round-robin over the primaries only.
        #expect(picks(&core, 6).filter { $0 == "10.0.0.1:9001" }.count == 5)
        // A new SRV weight changes the peer in place.
        let c = core.applyResolved(source: 0, server: s, addresses: [
            ResolvedAddress(ip: "10.0.0.1", port: 9001, weight: 2, priority: 10, target: "a.test"),
            ResolvedAddress(ip: "10.0.0.2", port: 9002, weight: 1, priority: 10, target: "b.test"),
        ])
        #expect(c.updated == [0] && c.removed == [2] && core.peers[0].weight == 2)
    }

    @Test func weightOnTheLineOverridesSRVAndHashMethodsDropBackups() {
        let s = dynamicServer(service: "http", weight: 3)
        var core = BalancerCore(emptyGroup(policy: .random(two: false), dynamic: [s]))
        _ = core.applyResolved(source: 0, server: s, addresses: [
            ResolvedAddress(ip: "10.0.0.1", port: 9001, weight: 5, priority: 0, target: "a.test"),
            ResolvedAddress(ip: "10.0.0.3", port: 9003, weight: 1, priority: 1, target: "c.test"),
        ])
        #expect(core.peers.map(\.text) == ["10.0.0.1:9001"])
        #expect(core.peers[0].weight == 3)
    }

    @Test func newMembersWaitForTheirFirstCheckUnderHealthChecks() {
        let s = dynamicServer()
        var g = emptyGroup(dynamic: [s])
        g.healthCheck = HealthCheck(location: SourceLocation(file: "t", line: 1, column: 1))
        var core = BalancerCore(g)
        _ = core.applyResolved(source: 0, server: s, addresses: ips("10.0.0.1"))
        #expect(core.peers[0].health == .checking)
        #expect(core.pick(now: 0, tried: TriedSet()) == nil)
    }

    @Test func dnsMembersAreNotWrittenToTheStateFile() {
        let s = dynamicServer()
        var g = emptyGroup(dynamic: [s])
        g.peers = [Peer(address: HostPort(host: "10.9.9.9", port: 80), name: "10.9.9.9:80", weight: 1, maxFails: 1, failTimeoutMs: 10_000,
                        maxConns: 0, backup: false, down: false)]
        var core = BalancerCore(g)
        _ = core.applyResolved(source: 0, server: s, addresses: ips("10.0.0.1"))
        #expect(core.livePeers.map(\.address.host) == ["10.9.9.9"])
    }

    @Test func rebuiltUpstreamStartsWithTheOldMembersAndTheirHealth() {
        let s = dynamicServer()
        var g = emptyGroup(dynamic: [s, dynamicServer("gone.test")])
        g.healthCheck = HealthCheck(location: SourceLocation(file: "t", line: 1, column: 1))
        let old = UpstreamRuntime(g, id: 1)
        old.balancer.withLock { core in
            _ = core.applyResolved(source: 0, server: s, addresses: ips("10.0.0.1", "10.0.0.2"))
            _ = core.applyResolved(source: 1, server: dynamicServer("gone.test"), addresses: ips("10.0.0.3"))
            core.peers[0].health = .up
            core.peers[1].health = .down
        }
        // The reloaded config keeps the first line (with a new weight) and drops the second.
        var g2 = emptyGroup(dynamic: [dynamicServer(weight: 4)])
        g2.healthCheck = g.healthCheck
        g2.keepalive = 2
        let new = UpstreamRuntime(g2, id: 2)
        new.carryDynamicMembers(from: old)
        let carried = new.balancer.withLock { $0.peers.map { ($0.text, $0.health, $0.weight, $0.source) } }
        #expect(carried.map(\.0) == ["10.0.0.1:8080", "10.0.0.2:8080"])
        #expect(carried.map(\.1) == [.up, .down])
        #expect(carried.allSatisfy { $0.2 == 4 && $0.3 == 0 })
    }
}
