import LBConfig
import LBIO

/// One request's peer-choice state: the peers it has already tried (nginx's `tried` bitmap) and
/// where its `hash`/`ip_hash` walk stands. nginx keeps the walk in the request's peer data, so a
/// retry (`proxy_next_upstream`) continues the walk instead of starting it over; so does lb.
public struct TriedSet: Sendable {
    var low: UInt64 = 0
    var high: Set<Int> = []
    /// `hash`: the running sum of rehashes; `ip_hash`: the running hash; `consistent`: the ring point.
    var walkHash: UInt32 = 0
    /// `hash`: how many times the key has been hashed (the next rehash prefix).
    var rehash: UInt32 = 0
    /// Candidates the walk skipped (tried, down, failed out, full); past 20 round-robin decides.
    var walkTries = 0
    var walkStarted = false

    public init() {}

    @inline(__always) public func contains(_ i: Int) -> Bool { i < 64 ? (low >> UInt64(i)) & 1 == 1 : !high.isEmpty && high.contains(i) }
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
    /// For a member found through DNS, its `server … resolve` line (an index into the group's
    /// `dynamic`); -1 for a configured or API-added peer.
    public var source = -1
    /// Gone from DNS while requests were in flight: draining until they finish, then removed.
    public var vanished = false
    /// Its active health-check probe has been started (one per peer).
    public var probed = false
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

    /// `slow_start`: the time its weight takes to grow back, and when that began (loop
    /// milliseconds; 0: not ramping).
    public var slowStartMs = 0
    public var slowStartFrom: Int64 = 0

    /// The weight a pick uses, ×100 (smooth weighted round-robin is scale-invariant, so nginx's
    /// choices are unchanged): the effective weight, or during a slow start its share of the time
    /// elapsed (at least 1, so a recovering peer is not starved).
    @inline(__always)
    static func pickWeight(_ p: UnsafePointer<PeerState>, _ w: Int, _ now: Int64) -> Int {
        let scaled = w &* 100
        let from = p.pointee.slowStartFrom
        guard from != 0, p.pointee.slowStartMs > 0 else { return scaled }
        let elapsed = now - from
        if elapsed >= Int64(p.pointee.slowStartMs) { return scaled }
        return max(1, Int(Int64(scaled) * max(elapsed, 0) / Int64(p.pointee.slowStartMs)))
    }

    /// A slow start begins at `now` (when the peer is configured with one).
    public mutating func beginSlowStart(_ now: Int64) {
        if slowStartMs > 0 { slowStartFrom = max(now, 1) }
    }

    public init(_ p: Peer, id: Int) {
        config = p
        slowStartMs = p.slowStartMs
        self.id = id
        address = SocketAddress(p.address) ?? SocketAddress()
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

    /// `usable` for a peer read in place, field by field: a method called on `peers[i]` loads the
    /// whole struct first (its strings, arrays and histogram: a copy with a dozen retains).
    @inline(__always)
    static func usable(_ p: UnsafePointer<PeerState>, _ now: Int64) -> Bool {
        !p.pointee.down && !p.pointee.removed && !p.pointee.draining && p.pointee.health != .down && p.pointee.health != .checking
            && !(p.pointee.maxFails > 0 && p.pointee.fails >= p.pointee.maxFails && now - p.pointee.checked <= Int64(p.pointee.failTimeoutMs))
            && (p.pointee.maxConns == 0 || p.pointee.conns < p.pointee.maxConns)
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
    /// The sum of the primaries' weights (down ones included, as nginx's `total_weight`).
    var primaryWeight = 0
    /// One live primary and no backup (nginx's `peers->single`): it is chosen whatever its failures.
    var single = false
    /// Consistent-hash ring: points sorted by hash, each naming a server (an index into the distinct
    /// `server` names as written; all addresses of one name share its points).
    var ring: [(hash: UInt32, server: Int)]
    /// For each peer, its server's index in `ring` terms (-1 for backups and removed peers).
    var ringServer: [Int]
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
        ringServer = []
        rebuild()
    }

    /// Recomputes the primary/backup sets and the consistent-hash ring from the live peers.
    mutating func rebuild() {
        let live = peers.indices.filter { !peers[$0].removed }
        primaries = live.filter { !peers[$0].backup }
        backups = live.filter { peers[$0].backup }
        primaryWeight = primaries.reduce(0) { $0 + peers[$1].weight }
        single = primaries.count == 1 && backups.isEmpty
        ring = []
        ringServer = [Int](repeating: -1, count: peers.count)
        guard case .hash(_, true) = policy else { return }
        // nginx's ngx_http_upstream_update_chash: 160 points per unit of weight for every primary
        // (down ones too), point = crc32(HOST "\0" PORT PREV_POINT), PREV_POINT little-endian.
        var names: [String: Int] = [:]
        var points: [(hash: UInt32, server: Int, order: Int)] = []
        for i in primaries {
            let name = peers[i].config.name
            let server = names[name] ?? names.count
            names[name] = server
            ringServer[i] = server
            let (host, port) = BalancerCore.ringHostPort(name)
            let base = host + [0] + port
            var prev: UInt32 = 0
            for _ in 0..<(160 * peers[i].weight) {
                var bytes = base
                withUnsafeBytes(of: prev.littleEndian) { bytes += $0 }
                prev = CRC32.checksum(bytes)
                points.append((prev, server, points.count))
            }
        }
        points.sort { $0.hash != $1.hash ? $0.hash < $1.hash : $0.order < $1.order }
        for p in points where ring.last?.hash != p.hash { ring.append((p.hash, p.server)) }
    }

    /// A server as written split as nginx's ring does: `unix:PATH` is all host; else a trailing
    /// `:DIGITS` is the port; else there is no port.
    static func ringHostPort(_ name: String) -> (host: [UInt8], port: [UInt8]) {
        let b = Array(name.utf8)
        if b.count >= 5 && String(decoding: b[0..<5], as: UTF8.self).lowercased() == "unix:" { return (Array(b[5...]), []) }
        var j = b.count
        while j > 0 {
            let c = b[j - 1]
            if c == UInt8(ascii: ":") { return (Array(b[..<(j - 1)]), Array(b[j...])) }
            if c < UInt8(ascii: "0") || c > UInt8(ascii: "9") { break }
            j -= 1
        }
        return (b, [])
    }

    /// Peers neither removed nor down: what `proxy_next_upstream` may try at most (nginx's
    /// `peers->tries`).
    public var liveCount: Int { peers.reduce(0) { $0 + ($1.removed || $1.down ? 0 : 1) } }

    /// Chooses a peer not in `tried` and adds it there; nil means no live peer (502). `tried` also
    /// carries the request's hash walk, so pass the same value to every try of one request.
    /// `clientAddress` (16 bytes, IPv4 v4-mapped) feeds ip_hash; `hashKey` feeds `hash`.
    public mutating func pick(now: Int64, tried: inout TriedSet, clientAddress: [UInt8] = [], hashKey: [UInt8] = []) -> Int? {
        var choice: Int?
        if single {
            choice = singlePeer(now, tried)
        } else {
            switch policy {
            case .roundRobin:
                choice = smoothWeighted(primaries, now, tried)
            case .leastConn:
                choice = leastConn(primaries, now, tried)
            case .ipHash:
                choice = ipHashPick(clientAddress, now, &tried)
            case .hash(_, let consistent):
                choice = consistent ? ringPick(hashKey, now, &tried) : hashPick(hashKey, now, &tried)
            case .random(let two):
                choice = randomPick(now, tried, two: two)
            }
            if choice == nil && !backups.isEmpty {
                choice = policy == .leastConn ? leastConn(backups, now, tried) : smoothWeighted(backups, now, tried)
            }
        }
        // All failed: 502 now, and the peers stay out until their fail_timeout (nginx dropped its
        // "quick recovery" reset in 1.11.5).
        guard let c = choice else { return nil }
        if now - peers[c].checked > Int64(peers[c].failTimeoutMs) { peers[c].checked = now }
        peers[c].conns += 1
        peers[c].requests += 1
        tried.insert(c)
        return c
    }

    /// One try without a retry to follow (the walk state is dropped).
    public mutating func pick(now: Int64, tried: TriedSet, clientAddress: [UInt8] = [], hashKey: [UInt8] = []) -> Int? {
        var t = tried
        return pick(now: now, tried: &t, clientAddress: clientAddress, hashKey: hashKey)
    }

    /// The request on `peer` finished; `failed` per `proxy_next_upstream` rules (nginx's free_peer).
    /// Returns true when this failure took the peer out (for the "temporarily disabled" log line).
    /// The only peer of a group is never taken out (nginx: `peers->single`).
    @discardableResult
    public mutating func release(_ peer: Int, failed: Bool, now: Int64, micros: Int64 = -1, reason: String = "", wallMs: Int64 = 0) -> Bool {
        peers[peer].conns -= 1
        if micros >= 0 { peers[peer].latency.observe(micros) }
        if !reason.isEmpty {
            peers[peer].lastFailure = reason
            peers[peer].lastFailureAt = wallMs
        }
        if failed {
            peers[peer].failures += 1
            if single { return false }
            peers[peer].fails += 1
            peers[peer].accessed = now
            peers[peer].checked = now
            let p = peers[peer]
            if p.maxFails > 0 {
                peers[peer].effectiveWeight -= p.weight / p.maxFails
                if peers[peer].effectiveWeight < 0 { peers[peer].effectiveWeight = 0 }
                // Unavailable for fail_timeout: a slow start begins when it may be tried again.
                if peers[peer].fails == p.maxFails { peers[peer].beginSlowStart(now + Int64(p.failTimeoutMs)) }
                return peers[peer].fails == p.maxFails
            }
            return false
        }
        if peers[peer].accessed < peers[peer].checked { peers[peer].fails = 0 }
        return false
    }

    /// nginx's round-robin with one peer: it is chosen unless down or full, whatever its failures
    /// (`max_fails` never takes the only server out).
    func singlePeer(_ now: Int64, _ tried: TriedSet) -> Int? {
        let i = primaries[0]
        let p = peers[i]
        if tried.contains(i) || p.down || p.draining || p.health == .down || p.health == .checking { return nil }
        if p.maxConns > 0 && p.conns >= p.maxConns { return nil }
        return i
    }

    /// nginx's smooth weighted round-robin (`ngx_http_upstream_get_peer`).
    /// Both walks visit every candidate (as nginx's do), so they read the peers in place, field by
    /// field, through a buffer pointer: `peers[i].usable(now)` copied the whole `PeerState` (its
    /// strings, arrays and histogram; `perf`: `PeerState` value-witness copies and memmove under
    /// `pick`), about 1 ms per request in an upstream of 10,000 members (Tests/bench/dns-scale.sh).
    mutating func smoothWeighted(_ set: [Int], _ now: Int64, _ tried: TriedSet) -> Int? {
        peers.withUnsafeMutableBufferPointer { peers in
            var best = -1
            var total = 0
            for i in set {
                if tried.contains(i) || !PeerState.usable(peers.baseAddress! + i, now) { continue }
                let w = PeerState.pickWeight(peers.baseAddress! + i, peers[i].effectiveWeight, now)
                peers[i].currentWeight += w
                total += w
                if peers[i].effectiveWeight < peers[i].weight { peers[i].effectiveWeight += 1 }
                if best < 0 || peers[i].currentWeight > peers[best].currentWeight { best = i }
            }
            if best < 0 { return nil }
            peers[best].currentWeight -= total
            return best
        }
    }

    /// Fewest active connections relative to weight; ties broken by smooth weighted round-robin.
    mutating func leastConn(_ set: [Int], _ now: Int64, _ tried: TriedSet) -> Int? {
        let (best, ties) = peers.withUnsafeBufferPointer { peers in
            var best = -1
            var ties: [Int] = []
            for i in set {
                if tried.contains(i) || !PeerState.usable(peers.baseAddress! + i, now) { continue }
                let wi = PeerState.pickWeight(peers.baseAddress! + i, peers[i].weight, now)
                let wb = best < 0 ? 1 : PeerState.pickWeight(peers.baseAddress! + best, peers[best].weight, now)
                if best < 0 || peers[i].conns * wb < peers[best].conns * wi {
                    best = i
                    ties = [i]
                } else if peers[i].conns * wb == peers[best].conns * wi {
                    ties.append(i)
                }
            }
            return (best, ties)
        }
        if best < 0 { return nil }
        if ties.count == 1 { return best }
        return smoothWeighted(ties, now, tried)
    }

    /// The primary that weight offset `w` (0 ..< primaryWeight) falls on, down ones included.
    @inline(__always)
    func primary(atWeight w: Int) -> Int {
        var w = w
        for i in primaries {
            if w < peers[i].weight { return i }
            w -= peers[i].weight
        }
        return primaries[primaries.count - 1]
    }

    /// A walk's candidate may take the request: not tried, not down, not failed out, not full.
    @inline(__always)
    func candidate(_ i: Int, _ now: Int64, _ tried: TriedSet) -> Bool { !tried.contains(i) && peers[i].usable(now) }

    /// nginx's ip_hash (ngx_http_upstream_get_ip_hash_peer): hash = 89, then for each of the first
    /// three octets of an IPv4 client (all 16 bytes of IPv6) hash = (hash * 113 + octet) % 6271; the
    /// weighted peer at hash % total weight. A skipped candidate mixes the address in again; after
    /// 20 skips round-robin decides. The walk goes on from where it stopped on a retry.
    mutating func ipHashPick(_ addr: [UInt8], _ now: Int64, _ tried: inout TriedSet) -> Int? {
        if tried.walkTries > 20 || primaryWeight == 0 { return smoothWeighted(primaries, now, tried) }
        if !tried.walkStarted {
            tried.walkHash = 89
            tried.walkStarted = true
        }
        let v4 = addr.count == 16 && addr[10] == 0xFF && addr[11] == 0xFF && (0..<10).allSatisfy { addr[$0] == 0 }
        // No IP address (a unix socket client): nginx hashes three zero bytes.
        let range = addr.count != 16 ? 0..<3 : v4 ? 12..<15 : 0..<16
        var h = tried.walkHash
        while true {
            for k in range { h = (h &* 113 &+ UInt32(addr.count == 16 ? addr[k] : 0)) % 6271 }
            let p = primary(atWeight: Int(h % UInt32(primaryWeight)))
            if candidate(p, now, tried) {
                tried.walkHash = h
                return p
            }
            tried.walkTries += 1
            if tried.walkTries > 20 { return smoothWeighted(primaries, now, tried) }
        }
    }

    /// nginx's `hash KEY` (ngx_http_upstream_get_hash_peer, compatible with Cache::Memcached):
    /// sum += (crc32([REHASH] KEY) >> 16) & 0x7fff, REHASH being the decimal count of earlier
    /// hashes (absent the first time); the weighted peer at sum % total weight. After 20 skipped
    /// candidates, or for an empty key, round-robin decides. A retry continues the walk.
    mutating func hashPick(_ key: [UInt8], _ now: Int64, _ tried: inout TriedSet) -> Int? {
        if tried.walkTries > 20 || key.isEmpty || primaryWeight == 0 { return smoothWeighted(primaries, now, tried) }
        while true {
            var crc = CRC32.initial
            if tried.rehash > 0 { crc = CRC32.update(crc, decimal: tried.rehash) }
            crc = CRC32.update(crc, key)
            tried.walkHash &+= (CRC32.final(crc) >> 16) & 0x7FFF
            tried.rehash += 1
            let p = primary(atWeight: Int(tried.walkHash % UInt32(primaryWeight)))
            if candidate(p, now, tried) { return p }
            tried.walkTries += 1
            if tried.walkTries > 20 { return smoothWeighted(primaries, now, tried) }
        }
    }

    /// nginx's `hash KEY consistent` (ngx_http_upstream_get_chash_peer): the first ring point at or
    /// after crc32(KEY); among that server's usable addresses, smooth weighted round-robin; none:
    /// the next point. After 20 skipped points, or for an empty key, round-robin decides.
    mutating func ringPick(_ key: [UInt8], _ now: Int64, _ tried: inout TriedSet) -> Int? {
        if tried.walkTries > 20 || key.isEmpty { return smoothWeighted(primaries, now, tried) }
        guard !ring.isEmpty else { return nil }
        if !tried.walkStarted {
            let h = CRC32.checksum(key)
            var lo = 0, hi = ring.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if ring[mid].hash < h { lo = mid + 1 } else { hi = mid }
            }
            tried.walkHash = UInt32(lo)
            tried.walkStarted = true
        }
        while true {
            let server = ring[Int(tried.walkHash % UInt32(ring.count))].server
            var best = -1
            var total = 0
            for i in primaries where ringServer[i] == server && candidate(i, now, tried) {
                peers[i].currentWeight += peers[i].effectiveWeight
                total += peers[i].effectiveWeight
                if peers[i].effectiveWeight < peers[i].weight { peers[i].effectiveWeight += 1 }
                if best < 0 || peers[i].currentWeight > peers[best].currentWeight { best = i }
            }
            if best >= 0 {
                peers[best].currentWeight -= total
                return best
            }
            tried.walkHash &+= 1
            tried.walkTries += 1
            if tried.walkTries > 20 { return smoothWeighted(primaries, now, tried) }
        }
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

/// CRC-32 (IEEE), as nginx's `ngx_crc32_long` for `hash`, also in steps (init, update, final).
public enum CRC32 {
    static let table: [UInt32] = (0..<256).map { i -> UInt32 in
        var c = UInt32(i)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    public static let initial: UInt32 = 0xFFFF_FFFF

    @inline(__always)
    public static func update(_ crc: UInt32, byte b: UInt8) -> UInt32 { table[Int((crc ^ UInt32(b)) & 0xFF)] ^ (crc >> 8) }

    public static func update(_ crc: UInt32, _ bytes: [UInt8]) -> UInt32 {
        var c = crc
        for b in bytes { c = update(c, byte: b) }
        return c
    }

    /// Feeds the decimal digits of `n` (nginx's `%ui`) without building a string.
    public static func update(_ crc: UInt32, decimal n: UInt32) -> UInt32 {
        var d: UInt32 = 1
        while d <= n / 10 { d *= 10 }
        var c = crc
        while d > 0 {
            c = update(c, byte: UInt8(ascii: "0") + UInt8((n / d) % 10))
            d /= 10
        }
        return c
    }

    @inline(__always)
    public static func final(_ crc: UInt32) -> UInt32 { crc ^ 0xFFFF_FFFF }

    public static func checksum(_ bytes: [UInt8]) -> UInt32 { final(update(initial, bytes)) }
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
                // Back from an active-check outage (not a new peer's first pass): slow start.
                if p.health == .down { p.beginSlowStart(monotonicMillis()) }
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

    /// The live peers as they would be configured (for the `state` file); members found through
    /// DNS are not configured peers and are left out.
    public var livePeers: [Peer] { peers.filter { !$0.removed && $0.source < 0 }.map(\.config) }
}
