import LBConfig
import LBIO
import Synchronization

/// Shared, locked state of one upstream group: the balancer and its peers' addresses.
public final class UpstreamRuntime: Sendable {
    public let group: UpstreamGroup
    /// Peers (with their addresses), health and counters; the runtime API changes them here.
    public let balancer: Mutex<BalancerCore>
    /// Identity for connection pools: pooled connections are keyed by (runtime id, peer).
    public let id: Int
    /// Set when a reload dropped this runtime: its health checks stop.
    public let retired = Atomic<Bool>(false)
    /// Whether its health-check probes have been started.
    let checksStarted = Atomic<Bool>(false)

    init(_ group: UpstreamGroup, id: Int) {
        self.group = group
        self.id = id
        balancer = Mutex(BalancerCore(group))
    }

    /// Whether a reload may keep this runtime (same peers, same policy): health state carries over.
    func sameShape(_ g: UpstreamGroup) -> Bool {
        // The peers as they are now (the API may have changed them; a `state` file reloads them).
        let live = balancer.withLock { $0.livePeers }
        return g.peers == live && g.policy == group.policy && g.keepalive == group.keepalive && g.healthCheck == group.healthCheck
            && g.dynamic == group.dynamic && g.resolver == group.resolver && g.zone == group.zone
    }

    /// A reload that rebuilt this upstream starts it with the members DNS gave the old one (for
    /// the `server … resolve` lines both have), so it serves before its first answer; the resolver
    /// thread then refreshes them at once (nginx's "preresolve").
    func carryDynamicMembers(from old: UpstreamRuntime) {
        let oldDynamic = old.group.dynamic
        let members = old.balancer.withLock { $0.peers.filter { $0.source >= 0 && !$0.removed && !$0.vanished } }
        guard !members.isEmpty else { return }
        balancer.withLock { core in
            for k in group.dynamic.indices {
                let s = group.dynamic[k]
                guard let ok = oldDynamic.firstIndex(where: { $0.name == s.name && $0.port == s.port && $0.service == s.service }) else { continue }
                let carried = members.filter { $0.source == ok }.map {
                    ResolvedAddress(ip: $0.config.address.host, port: $0.config.address.port ?? s.port, weight: $0.weight,
                                    priority: $0.backup ? 1 : 0, target: $0.config.name)
                }
                let change = core.applyResolved(source: k, server: s, addresses: carried)
                // Their health carries over too: a member that was up takes requests at once.
                for i in change.added {
                    guard let was = members.first(where: { $0.source == ok && $0.text == core.peers[i].text }) else { continue }
                    core.peers[i].health = core.healthCheck == nil ? .unchecked : (was.health == .unchecked ? .checking : was.health)
                    core.peers[i].consecutivePasses = was.consecutivePasses
                    core.peers[i].consecutiveFails = was.consecutiveFails
                    core.peers[i].checks = was.checks
                    core.peers[i].lastFailure = was.lastFailure
                    core.peers[i].lastFailureAt = was.lastFailureAt
                }
            }
        }
    }
}

/// One loaded configuration with its runtime state. Connections keep the generation they were
/// accepted under until they finish; a reload installs a new one.
public final class Generation: Sendable {
    public let id: Int
    public let table: RoutingTable
    public let upstreams: [UpstreamRuntime]
    /// Listener address → index in `table.listeners`.
    public let listenerIndex: [HostPort: Int]
    /// Cache zones by name (kept from the previous generation when unchanged).
    public let cacheZones: [String: CacheZoneRuntime]
    /// Per server block (by `VirtualServer.index`): requests by status class. Carried over a
    /// reload for a server with the same names and listen addresses.
    public let serverStats: [ServerStats]
    /// limit_req / limit_conn zones, by `LimitZone` index; kept across reloads when unchanged.
    let limitZones: [LimitZoneRuntime]

    init(id: Int, table: RoutingTable, previous: Generation?, nextUpstreamID: inout Int) {
        self.id = id
        self.table = table
        var ups: [UpstreamRuntime] = []
        for g in table.upstreams {
            if let old = previous?.upstreams.first(where: { $0.group.name == g.name && $0.sameShape(g) }) {
                ups.append(old)
            } else {
                nextUpstreamID += 1
                let rt = UpstreamRuntime(g, id: nextUpstreamID)
                if !g.dynamic.isEmpty, let old = previous?.upstreams.first(where: { $0.group.name == g.name }) {
                    rt.carryDynamicMembers(from: old)
                }
                ups.append(rt)
            }
        }
        upstreams = ups
        var zones: [String: CacheZoneRuntime] = [:]
        for z in table.cacheZones {
            if let old = previous?.cacheZones[z.name], old.sameShape(z) { zones[z.name] = old } else { zones[z.name] = CacheZoneRuntime(z) }
        }
        cacheZones = zones
        limitZones = LimitZoneRuntime.zones(for: table, previous: previous?.limitZones ?? [])
        serverStats = table.servers.map { s in
            if let prev = previous, let old = prev.table.servers.first(where: { $0.names == s.names && $0.location.line == s.location.line }) {
                return prev.serverStats[old.index]
            }
            return ServerStats()
        }
        var idx: [HostPort: Int] = [:]
        for (i, l) in table.listeners.enumerated() { idx[l.address] = i }
        listenerIndex = idx
    }
}
