import LBConfig
import LBIO

/// The peers a request has already tried (nginx's `tried` bitmap).
public struct TriedSet: Sendable {
    var low: UInt64 = 0
    var high: Set<Int> = []

    public init() {}

    @inline(__always) public func contains(_ i: Int) -> Bool { i < 64 ? (low >> UInt64(i)) & 1 == 1 : high.contains(i) }
    @inline(__always) public mutating func insert(_ i: Int) { if i < 64 { low |= 1 << UInt64(i) } else { high.insert(i) } }
    public var count: Int { low.nonzeroBitCount + high.count }
}

/// Mutable health and weight state of one peer (shared by all workers).
public struct PeerState: Sendable {
    public var weight: Int
    public var effectiveWeight: Int
    public var currentWeight = 0
    public var fails = 0
    /// When the failure window started (ms).
    public var checked: Int64 = 0
    /// Last failure (ms).
    public var accessed: Int64 = 0
    public var conns = 0
    public var maxFails: Int
    public var failTimeoutMs: Int
    public var maxConns: Int
    public var down: Bool
    public var backup: Bool
    /// The peer as configured (or added by the API), its socket address, and `127.0.0.1:9001`.
    public var config: Peer
    public var address: SocketAddress
    public var text: String
    /// Stable identity for the API (indices never shift: a removed peer stays as a tombstone).
    public var id: Int
    /// Removed by the API: never picked again, not listed.
    public var removed = false
    /// Draining (API): no new requests; those in flight finish.
    public var draining = false
    /// Counters for status and metrics.
    public var requests = 0
    public var failures = 0
    /// Active health-check state (`unchecked` without `health_check`).
    public var health: Health = .unchecked
    public var consecutivePasses = 0
    public var consecutiveFails = 0
    public var checkPasses = 0
    public var checkFails = 0
    /// The last failed request or check: why, and when (wall-clock ms).
    public var lastFailure = ""
    public var lastFailureAt: Int64 = 0
    /// The most recent health checks, oldest first (at most `CheckRecord.kept`).
    public var checks: [CheckRecord] = []
    /// Upstream response times (connect to end of response).
    public var latency = LatencyHistogram()

    public enum Health: String, Sendable {
        /// No active checks configured.
        case unchecked
        /// Waiting for the first passed check (`mandatory`): no traffic yet.
        case checking
        case up
        case down
    }

    public init(_ p: Peer, id: Int) {
        config = p
        self.id = id
        address = SocketAddress(ip: p.address.host, port: p.address.port ?? 80) ?? SocketAddress()
        text = p.address.description
        weight = p.weight
        effectiveWeight = p.weight
        maxFails = p.maxFails
        failTimeoutMs = p.failTimeoutMs
        maxConns = p.maxConns
        down = p.down
        backup = p.backup
    }

    /// Whether passive health checks currently keep this peer out (`max_fails` within `fail_timeout`).
    @inline(__always)
    func failedOut(_ now: Int64) -> Bool {
        maxFails > 0 && fails >= maxFails && now - checked <= Int64(failTimeoutMs)
    }

    @inline(__always)
    func usable(_ now: Int64) -> Bool {
        !down && !removed && !draining && health != .down && health != .checking && !failedOut(now) && (maxConns == 0 || conns < maxConns)
    }

    /// The state shown on the status page and in metrics.
    public func state(_ now: Int64) -> String {
        if down { return "down" }
        if draining { return "draining" }
        switch health {
        case .down: return "down"
        case .checking: return "checking"
        default: break
        }
        if failedOut(now) { return "unavailable" }
        return backup ? "backup" : "up"
    }

}

/// Peer choice for one upstream group: nginx's algorithms over `PeerState`s. Pure logic — the
/// caller holds the lock and supplies the clock.
public struct BalancerCore: Sendable {
    public let policy: UpstreamGroup.Policy
    public var peers: [PeerState]
    var primaries: [Int]
    var backups: [Int]
    /// Consistent-hash ring: (point, peer) sorted by point.
    var ring: [(UInt32, Int)]
    var nextID: Int
    let healthCheck: HealthCheck?
    private var rng = SplitMix(seed: 0x5EED)

    public init(_ group: UpstreamGroup) {
        policy = group.policy
        peers = group.peers.enumerated().map { PeerState($1, id: $0 + 1) }
        nextID = group.peers.count + 1
        healthCheck = group.healthCheck
        if let hc = group.healthCheck {
            for i in peers.indices { peers[i].health = hc.mandatory ? .checking : .up }
        }
        primaries = []
        backups = []
        ring = []
        rebuild()
    }

    /// Recomputes the primary/backup sets and the consistent-hash ring from the live peers.
    mutating func rebuild() {
        let live = peers.indices.filter { !peers[$0].removed }
        primaries = live.filter { !peers[$0].backup }
        backups = live.filter { peers[$0].backup }
        if case .hash(_, true) = policy {
            var r: [(UInt32, Int)] = []
            for i in live {
                let p = peers[i].config
                // 160 points per unit of weight, as ketama and nginx do.
                let base = Array("\(p.address.host):\(p.address.port ?? 80)".utf8)
                var prev: UInt32 = 0
                for _ in 0..<(160 * p.weight) {
                    var bytes = base
                    withUnsafeBytes(of: prev.littleEndian) { bytes += $0 }
                    prev = CRC32.checksum(bytes)
                    r.append((prev, i))
                }
            }
            ring = r.sorted { $0.0 < $1.0 }
        } else {
            ring = []
        }
    }

    /// Peers that are not removed (what `proxy_next_upstream` may try at most).
    public var liveCount: Int { peers.reduce(0) { $0 + ($1.removed ? 0 : 1) } }

    /// Chooses a peer not in `tried`; nil means no live peer (502). `clientAddress` (16 bytes) feeds
    /// ip_hash; `hashKey` feeds `hash`.
    public mutating func pick(now: Int64, tried: TriedSet, clientAddress: [UInt8] = [], hashKey: [UInt8] = []) -> Int? {
        var choice: Int?
        switch policy {
        case .roundRobin:
            choice = smoothWeighted(primaries, now, tried)
        case .leastConn:
            choice = leastConn(primaries, now, tried)
        case .ipHash:
            choice = hashPick(ipHashValue(clientAddress), now, tried, rehash: { h, _ in (h &* 113 &+ 6271) % 6271 })
        case .hash(_, let consistent):
            let h = CRC32.checksum(hashKey)
            choice = consistent ? ringPick(h, now, tried) : hashPick(h, now, tried, rehash: { h, n in CRC32.checksum(Array("\(n)".utf8) + withUnsafeBytes(of: h) { Array($0) }) })
        case .random(let two):
            choice = randomPick(now, tried, two: two)
        }
        if choice == nil && !backups.isEmpty {
            choice = policy == .leastConn ? leastConn(backups, now, tried) : smoothWeighted(backups, now, tried)
        }
        guard let c = choice else {
            // All failed: nginx marks them live again for quick recovery and answers 502 now.
            for i in peers.indices { peers[i].fails = 0 }
            return nil
        }
        if now - peers[c].checked > Int64(peers[c].failTimeoutMs) { peers[c].checked = now }
        peers[c].conns += 1
        peers[c].requests += 1
        return c
    }

    /// The request on `peer` finished; `failed` per `proxy_next_upstream` rules (nginx's free_peer).
    /// Returns true when this failure took the peer out (for the "temporarily disabled" log line).
    @discardableResult
    public mutating func release(_ peer: Int, failed: Bool, now: Int64, micros: Int64 = -1, reason: String = "", wallMs: Int64 = 0) -> Bool {
        peers[peer].conns -= 1
        if micros >= 0 { peers[peer].latency.observe(micros) }
        if !reason.isEmpty {
            peers[peer].lastFailure = reason
            peers[peer].lastFailureAt = wallMs
        }
        if failed {
            peers[peer].fails += 1
            peers[peer].failures += 1
            peers[peer].accessed = now
            peers[peer].checked = now
            let p = peers[peer]
            if p.maxFails > 0 {
                peers[peer].effectiveWeight -= p.weight / p.maxFails
                if peers[peer].effectiveWeight < 0 { peers[peer].effectiveWeight = 0 }
                return peers[peer].fails == p.maxFails
            }
            return false
        }
        if peers[peer].accessed < peers[peer].checked { peers[peer].fails = 0 }
        return false
    }

    /// nginx's smooth weighted round-robin (`ngx_http_upstream_get_peer`).
    mutating func smoothWeighted(_ set: [Int], _ now: Int64, _ tried: TriedSet) -> Int? {
        var best = -1
        var total = 0
        for i in set {
            if tried.contains(i) || !peers[i].usable(now) { continue }
            peers[i].currentWeight += peers[i].effectiveWeight
            total += peers[i].effectiveWeight
            if peers[i].effectiveWeight < peers[i].weight { peers[i].effectiveWeight += 1 }
            if best < 0 || peers[i].currentWeight > peers[best].currentWeight { best = i }
        }
        if best < 0 { return nil }
        peers[best].currentWeight -= total
        return best
    }

    /// Fewest active connections relative to weight; ties broken by smooth weighted round-robin.
    mutating func leastConn(_ set: [Int], _ now: Int64, _ tried: TriedSet) -> Int? {
        var best = -1
        var ties: [Int] = []
        for i in set {
            if tried.contains(i) || !peers[i].usable(now) { continue }
            if best < 0 || peers[i].conns * peers[best].weight < peers[best].conns * peers[i].weight {
                best = i
                ties = [i]
            } else if peers[i].conns * peers[best].weight == peers[best].conns * peers[i].weight {
                ties.append(i)
            }
        }
        if best < 0 { return nil }
        if ties.count == 1 { return best }
        return smoothWeighted(ties, now, tried)
    }

    /// nginx's ip_hash: the first three octets of IPv4 (all of IPv6).
    func ipHashValue(_ addr: [UInt8]) -> UInt32 {
        guard addr.count == 16 else { return 89 }
        let isV4 = addr[0..<10].allSatisfy { $0 == 0 } && addr[10] == 0xFF && addr[11] == 0xFF
        let octets = isV4 ? Array(addr[12..<15]) : addr
        var h: UInt32 = 89
        for o in octets { h = (h &* 113 &+ UInt32(o)) % 6271 }
        return h
    }

    /// Weighted hash choice with up to 20 rehashes, then round-robin, as nginx's ip_hash/hash.
    mutating func hashPick(_ start: UInt32, _ now: Int64, _ tried: TriedSet, rehash: (UInt32, Int) -> UInt32) -> Int? {
        let total = primaries.reduce(0) { $0 + peers[$1].weight }
        guard total > 0 else { return nil }
        var h = start
        for attempt in 0..<20 {
            var w = Int(h % UInt32(total))
            var chosen = primaries[0]
            for i in primaries {
                w -= peers[i].weight
                if w < 0 { chosen = i; break }
            }
            if !tried.contains(chosen) && peers[chosen].usable(now) { return chosen }
            h = rehash(h, attempt + 1)
        }
        return smoothWeighted(primaries, now, tried)
    }

    /// Consistent hashing: the first usable peer clockwise from the key's point.
    func ringPick(_ h: UInt32, _ now: Int64, _ tried: TriedSet) -> Int? {
        guard !ring.isEmpty else { return nil }
        var lo = 0, hi = ring.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if ring[mid].0 < h { lo = mid + 1 } else { hi = mid }
        }
        for k in 0..<ring.count {
            let p = ring[(lo + k) % ring.count].1
            if !tried.contains(p) && peers[p].usable(now) { return p }
        }
        return nil
    }

    mutating func randomPick(_ now: Int64, _ tried: TriedSet, two: Bool) -> Int? {
        let live = primaries.filter { !tried.contains($0) && peers[$0].usable(now) }
        guard !live.isEmpty else { return nil }
        func one() -> Int {
            let total = live.reduce(0) { $0 + peers[$1].weight }
            var w = Int(rng.next() % UInt64(total))
            for i in live {
                w -= peers[i].weight
                if w < 0 { return i }
            }
            return live[0]
        }
        let a = one()
        guard two, live.count > 1 else { return a }
        var b = one()
        if b == a { b = live[(live.firstIndex(of: a)! + 1) % live.count] }
        return peers[a].conns * peers[b].weight <= peers[b].conns * peers[a].weight ? a : b
    }
}

struct SplitMix: Sendable {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// CRC-32 (IEEE), as nginx's `ngx_crc32_long` for `hash`.
public enum CRC32 {
    static let table: [UInt32] = (0..<256).map { i -> UInt32 in
        var c = UInt32(i)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes { c = table[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }
}


/// One active health check's result.
public struct CheckRecord: Sendable {
    public static let kept = 20
    /// Wall-clock ms.
    public var at: Int64
    public var ok: Bool
    public var detail: String
    public var micros: Int64
}

/// Response times in fixed buckets (Prometheus's default buckets, in seconds), with percentiles
/// estimated within a bucket.
public struct LatencyHistogram: Sendable {
    public static let bounds: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
    /// Counts per bucket (not cumulative); the last is +Inf.
    public var counts = [Int](repeating: 0, count: 12)
    public var sumMicros: Int64 = 0
    public var total = 0

    public mutating func observe(_ micros: Int64) {
        let s = Double(micros) / 1e6
        var i = 0
        while i < LatencyHistogram.bounds.count && s > LatencyHistogram.bounds[i] { i += 1 }
        counts[i] += 1
        sumMicros += micros
        total += 1
    }

    /// The q-quantile in ms (linear within the bucket), nil without observations.
    public func quantileMs(_ q: Double) -> Double? {
        guard total > 0 else { return nil }
        let rank = q * Double(total)
        var seen = 0.0
        for (i, c) in counts.enumerated() where c > 0 {
            if seen + Double(c) >= rank {
                let lo = i == 0 ? 0 : LatencyHistogram.bounds[i - 1]
                let hi = i < LatencyHistogram.bounds.count ? LatencyHistogram.bounds[i] : LatencyHistogram.bounds.last! * 2
                return (lo + (hi - lo) * max(0, min(1, (rank - seen) / Double(c)))) * 1000
            }
            seen += Double(c)
        }
        return nil
    }
}

extension BalancerCore {
    /// Records an active check; returns the new health when this result changed it (hysteresis:
    /// `fails` consecutive failures take a peer down, `passes` consecutive passes bring it up).
    public mutating func recordCheck(_ peer: Int, ok: Bool, detail: String, wallMs: Int64, micros: Int64, fails: Int, passes: Int) -> PeerState.Health? {
        var p = peers[peer]
        p.checks.append(CheckRecord(at: wallMs, ok: ok, detail: detail, micros: micros))
        if p.checks.count > CheckRecord.kept { p.checks.removeFirst(p.checks.count - CheckRecord.kept) }
        var changed: PeerState.Health?
        if ok { p.checkPasses += 1 } else { p.checkFails += 1 }
        if ok {
            p.consecutivePasses += 1
            p.consecutiveFails = 0
            if p.health != .up && p.consecutivePasses >= (p.health == .checking ? 1 : passes) {
                p.health = .up
                // Back from an active-check outage: passive failures from before do not count.
                p.fails = 0
                changed = .up
            }
        } else {
            p.consecutiveFails += 1
            p.consecutivePasses = 0
            p.lastFailure = "health check: " + detail
            p.lastFailureAt = wallMs
            if p.health != .down && p.consecutiveFails >= fails {
                p.health = .down
                changed = .down
            }
        }
        peers[peer] = p
        return changed
    }
}

/// Changes made by the runtime API (all under the upstream's lock, so every worker sees them at
/// its next pick). Indices never shift: a removed peer stays as a tombstone.
extension BalancerCore {
    public func index(ofID id: Int) -> Int? { peers.firstIndex { $0.id == id && !$0.removed } }

    public func index(ofAddress a: String) -> Int? { peers.firstIndex { $0.text == a && !$0.removed } }

    /// Adds a peer; it starts as `checking` when the group has a `health_check` (a new peer gets
    /// traffic only after its first passed check), else up.
    public mutating func add(_ p: Peer) -> Int {
        var s = PeerState(p, id: nextID)
        nextID += 1
        if healthCheck != nil { s.health = .checking }
        peers.append(s)
        rebuild()
        return peers.count - 1
    }

    public mutating func remove(_ i: Int) {
        peers[i].removed = true
        rebuild()
    }

    public mutating func setWeight(_ i: Int, _ w: Int) {
        peers[i].weight = w
        peers[i].effectiveWeight = w
        peers[i].currentWeight = 0
        peers[i].config.weight = w
        rebuild()
    }

    public mutating func setDown(_ i: Int, _ down: Bool) {
        peers[i].down = down
        peers[i].config.down = down
    }

    public mutating func setDraining(_ i: Int, _ draining: Bool) { peers[i].draining = draining }

    /// The live peers as they would be configured (for the `state` file).
    public var livePeers: [Peer] { peers.filter { !$0.removed }.map(\.config) }
}
