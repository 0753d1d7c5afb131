import LBConfig
import LBIO

/// What one DNS answer changed in an upstream's membership (indices into `BalancerCore.peers`).
public struct MembershipChange: Sendable, Equatable {
    /// New peers (they need a health-check probe when the group has `health_check`).
    public var added: [Int] = []
    /// Gone from DNS with requests in flight: draining, removed once those finish.
    public var draining: [Int] = []
    /// Gone from DNS and idle: removed now.
    public var removed: [Int] = []
    /// Back in DNS while still draining: taking requests again.
    public var revived: [Int] = []
    /// Same address, new weight or backup flag (SRV): changed in place, balancer state kept.
    public var updated: [Int] = []

    public var isEmpty: Bool { added.isEmpty && draining.isEmpty && removed.isEmpty && revived.isEmpty && updated.isEmpty }
}

/// Membership that follows DNS (`server NAME resolve`), applied under the upstream's lock like the
/// runtime API's changes: unchanged addresses keep their peer (id, counters, health, passive
/// failures), new ones join, vanished ones drain. Pure: the resolver thread supplies the answer.
extension BalancerCore {
    /// The peers `server` (the group's `dynamic[source]`) stands for now that DNS answered
    /// `addresses` (NXDOMAIN: none). For SRV, the records with the lowest priority are primaries
    /// and the others backups (dropped where the balancing method has no backups); the SRV weight
    /// applies unless the line sets `weight=`, as nginx.
    public mutating func applyResolved(source: Int, server: DynamicServer, addresses: [ResolvedAddress]) -> MembershipChange {
        var change = MembershipChange()
        let backupsAllowed: Bool
        switch policy {
        case .ipHash, .hash, .random: backupsAllowed = false
        default: backupsAllowed = true
        }
        let minPriority = addresses.map(\.priority).min() ?? 0
        // The wanted peers, by address text (first occurrence wins).
        var wanted: [(text: String, peer: Peer)] = []
        var seen: Set<String> = []
        for a in addresses {
            let isService = server.service != nil
            let backup = server.backup || (isService && a.priority != minPriority)
            if backup && !backupsAllowed { continue }
            let port = isService ? a.port : server.port
            let hp = HostPort(host: a.ip, port: port)
            let text = hp.description
            if !seen.insert(text).inserted { continue }
            let weight = isService && !server.weightSet ? a.weight : server.weight
            var peer = Peer(address: hp, name: isService ? a.target : server.written, weight: weight, maxFails: server.maxFails,
                            failTimeoutMs: server.failTimeoutMs, maxConns: server.maxConns, backup: backup, down: server.down)
            peer.slowStartMs = server.slowStartMs
            wanted.append((text, peer))
        }
        var existing: [String: Int] = [:]
        for i in peers.indices where peers[i].source == source && !peers[i].removed { existing[peers[i].text] = i }
        let wantedTexts = Set(wanted.map(\.text))
        var reshaped = false
        for (text, i) in existing where !wantedTexts.contains(text) {
            guard !peers[i].vanished else { continue }
            if peers[i].conns == 0 {
                peers[i].removed = true
                change.removed.append(i)
            } else {
                peers[i].vanished = true
                peers[i].draining = true
                change.draining.append(i)
            }
            reshaped = true
        }
        for (text, p) in wanted {
            if let i = existing[text] {
                if peers[i].vanished {
                    peers[i].vanished = false
                    peers[i].draining = false
                    change.revived.append(i)
                }
                if peers[i].weight != p.weight || peers[i].backup != p.backup || peers[i].config.name != p.name {
                    peers[i].weight = p.weight
                    peers[i].effectiveWeight = p.weight
                    peers[i].currentWeight = 0
                    peers[i].backup = p.backup
                    peers[i].config = p
                    change.updated.append(i)
                    reshaped = true
                }
                continue
            }
            var s = PeerState(p, id: nextID)
            nextID += 1
            s.source = source
            // A member joining an upstream that already has some ramps up (slow_start).
            if peers.contains(where: { !$0.removed }) { s.beginSlowStart(monotonicMillis()) }
            if healthCheck != nil { s.health = .checking }
            peers.append(s)
            change.added.append(peers.count - 1)
            reshaped = true
        }
        if reshaped { rebuild() }
        change.removed.sort()
        change.draining.sort()
        return change
    }

    /// Removes members that vanished from DNS and have no request left; returns their indices.
    public mutating func sweepVanished() -> [Int] {
        var out: [Int] = []
        for i in peers.indices where peers[i].vanished && !peers[i].removed && peers[i].conns == 0 {
            peers[i].removed = true
            out.append(i)
        }
        if !out.isEmpty { rebuild() }
        return out
    }

    /// How many live members `source` has (for the log when DNS fails and they are kept).
    public func memberCount(source: Int) -> Int {
        peers.reduce(0) { $0 + ($1.source == source && !$1.removed && !$1.vanished ? 1 : 0) }
    }
}
