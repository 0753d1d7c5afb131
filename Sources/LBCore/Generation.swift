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

    init(id: Int, table: RoutingTable, previous: Generation?, nextUpstreamID: inout Int) {
        self.id = id
        self.table = table
        var ups: [UpstreamRuntime] = []
        for g in table.upstreams {
            if let old = previous?.upstreams.first(where: { $0.group.name == g.name && $0.sameShape(g) }) {
                ups.append(old)
            } else {
                nextUpstreamID += 1
                ups.append(UpstreamRuntime(g, id: nextUpstreamID))
            }
        }
        upstreams = ups
        var zones: [String: CacheZoneRuntime] = [:]
        for z in table.cacheZones {
            if let old = previous?.cacheZones[z.name], old.sameShape(z) { zones[z.name] = old } else { zones[z.name] = CacheZoneRuntime(z) }
        }
        cacheZones = zones
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
