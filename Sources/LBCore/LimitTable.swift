import LBConfig
import Synchronization

/// The memory a zone's states take, as nginx's slab allocator gives it: chunks are powers of two
/// (at least 8 bytes), and of `SIZE` a few hundred bytes of pool header, one 24-byte descriptor per
/// 4 KiB page and one page for the zone's own tree head are not states. So a 1 MiB zone keeps
/// about 8,000 `limit_req` states of a 4-byte key (128 bytes each, nginx's documented figure) and
/// 16,000 `limit_conn` states (64 bytes).
struct LimitZoneBudget: Sendable, Equatable {
    static let pageSize = 4096
    /// Bytes that states may take.
    let bytes: Int

    init(zoneSize: Int) {
        let pages = max(0, (zoneSize - 512) / (LimitZoneBudget.pageSize + 24) - 1)
        bytes = pages * LimitZoneBudget.pageSize
    }

    /// nginx's slab chunk for an allocation of `n` bytes.
    static func chunk(_ n: Int) -> Int {
        var c = 8
        while c < n { c <<= 1 }
        return c
    }

    /// One limit_req state: rbtree node head (32 bytes) + ngx_http_limit_req_node_t up to its key (48).
    static func requestState(keyLength: Int) -> Int { chunk(80 + keyLength) }
    /// One limit_conn state: rbtree node head (32) + ngx_http_limit_conn_node_t up to its key (4).
    static func connectionState(keyLength: Int) -> Int { chunk(36 + keyLength) }
}

/// The leaky bucket of ngx_http_limit_req_module, one state per key: `excess` in thousandths of a
/// request, drained at `rate` (requests per 1000 s) since `last` (milliseconds). States are kept
/// most recently used first; when the zone is full the least recently used go (nginx's expire).
/// Pure: time is passed in, nothing is locked here (`LimitReqZone` locks it).
struct LimitReqTable {
    struct State {
        var key: [UInt8]
        var last: Int64
        var excess: Int
        /// Requests between lookup and account holding this state (several limits): never expired.
        var count: Int
        var newer: Int32 = -1
        var older: Int32 = -1
        var cost: Int
    }

    /// What a lookup found.
    enum Lookup: Equatable {
        /// Over the burst: rejected, with the excess it would have had.
        case busy(excess: Int)
        /// The last limit: accounted (the state now holds `excess`).
        case ok(excess: Int)
        /// An earlier limit of several: within its burst, held (count + 1) until `account`.
        case again(excess: Int, state: Int32)
        /// No room for a new state even after evicting ("could not allocate node").
        case noMemory
    }

    private(set) var states: [State] = []
    private var free: [Int32] = []
    private var index: [[UInt8]: Int32] = [:]
    /// Most and least recently used.
    private var newest: Int32 = -1
    private var oldest: Int32 = -1
    let budget: LimitZoneBudget
    private(set) var used = 0

    init(zoneSize: Int) {
        budget = LimitZoneBudget(zoneSize: zoneSize)
    }

    var count: Int { index.count }

    func state(for key: [UInt8]) -> State? { index[key].map { states[Int($0)] } }

    /// nginx's elapsed time since a state's last update: clock steps back up to a minute count as
    /// none, further back as one millisecond.
    static func elapsed(_ now: Int64, since last: Int64) -> Int64 {
        let ms = now &- last
        if ms < -60000 { return 1 }
        return ms < 0 ? 0 : ms
    }

    /// The excess after draining for `ms` at `rate` and adding this request (1000), never below 0.
    static func excess(_ excess: Int, rate: Int, ms: Int64) -> Int {
        max(0, excess - Int(Int64(rate) * ms / 1000) + 1000)
    }

    /// `ngx_http_limit_req_lookup`: `burst` in thousandths; `account` for the last limit of a location.
    mutating func lookup(_ key: [UInt8], now: Int64, rate: Int, burst: Int, account: Bool) -> Lookup {
        if let i = index[key] {
            touch(i)
            let ms = LimitReqTable.elapsed(now, since: states[Int(i)].last)
            let e = LimitReqTable.excess(states[Int(i)].excess, rate: rate, ms: ms)
            if e > burst { return .busy(excess: e) }
            if account {
                states[Int(i)].excess = e
                if ms != 0 { states[Int(i)].last = now }
                return .ok(excess: e)
            }
            states[Int(i)].count += 1
            return .again(excess: e, state: i)
        }
        let cost = LimitZoneBudget.requestState(keyLength: key.count)
        expire(1, now: now, rate: rate)
        if used + cost > budget.bytes {
            expire(0, now: now, rate: rate)
            if used + cost > budget.bytes { return .noMemory }
        }
        let s = State(key: key, last: account ? now : 0, excess: 0, count: account ? 0 : 1, cost: cost)
        let i = insert(s)
        return account ? .ok(excess: 0) : .again(excess: 0, state: i)
    }

    /// `ngx_http_limit_req_account` for one held state: drains, adds this request, releases the hold.
    mutating func account(_ i: Int32, now: Int64, rate: Int) -> Int {
        let ms = LimitReqTable.elapsed(now, since: states[Int(i)].last)
        let e = LimitReqTable.excess(states[Int(i)].excess, rate: rate, ms: ms)
        if ms != 0 { states[Int(i)].last = now }
        states[Int(i)].excess = e
        states[Int(i)].count -= 1
        return e
    }

    /// Releases a hold without accounting (a later limit rejected the request).
    mutating func unlock(_ i: Int32) {
        states[Int(i)].count -= 1
    }

    /// `ngx_http_limit_req_expire`: `n == 1` removes up to two idle, drained states from the old
    /// end; `n == 0` first removes the oldest by force. Stops at a state that is held.
    mutating func expire(_ n: Int, now: Int64, rate: Int) {
        var n = n
        while n < 3 {
            guard oldest >= 0 else { return }
            let i = oldest
            let s = states[Int(i)]
            if s.count != 0 { return }
            if n != 0 {
                let ms = abs(now &- s.last)
                if ms < 60000 { return }
                if s.excess - Int(Int64(rate) * ms / 1000) > 0 { return }
            }
            n += 1
            remove(i)
        }
    }

    // MARK: the recency list

    private mutating func insert(_ s: State) -> Int32 {
        let i: Int32
        if let f = free.popLast() {
            i = f
            states[Int(i)] = s
        } else {
            i = Int32(states.count)
            states.append(s)
        }
        index[s.key] = i
        used += s.cost
        linkNewest(i)
        return i
    }

    private mutating func remove(_ i: Int32) {
        unlink(i)
        index[states[Int(i)].key] = nil
        used -= states[Int(i)].cost
        states[Int(i)].key = []
        free.append(i)
    }

    private mutating func touch(_ i: Int32) {
        guard newest != i else { return }
        unlink(i)
        linkNewest(i)
    }

    private mutating func linkNewest(_ i: Int32) {
        states[Int(i)].newer = -1
        states[Int(i)].older = newest
        if newest >= 0 { states[Int(newest)].newer = i }
        newest = i
        if oldest < 0 { oldest = i }
    }

    private mutating func unlink(_ i: Int32) {
        let s = states[Int(i)]
        if s.newer >= 0 { states[Int(s.newer)].older = s.older } else { newest = s.older }
        if s.older >= 0 { states[Int(s.older)].newer = s.newer } else { oldest = s.newer }
    }
}

/// The connection counts of ngx_http_limit_conn_module: one counter per key, removed when it
/// falls to zero; a new key finds no room when the zone is full.
struct LimitConnTable {
    enum Acquire: Equatable { case passed, rejected, noMemory }

    private(set) var counts: [[UInt8]: Int] = [:]
    let budget: LimitZoneBudget
    private(set) var used = 0

    init(zoneSize: Int) {
        budget = LimitZoneBudget(zoneSize: zoneSize)
    }

    mutating func acquire(_ key: [UInt8], limit: Int) -> Acquire {
        if let n = counts[key] {
            if n >= limit { return .rejected }
            counts[key] = n + 1
            return .passed
        }
        let cost = LimitZoneBudget.connectionState(keyLength: key.count)
        if used + cost > budget.bytes { return .noMemory }
        used += cost
        counts[key] = 1
        return .passed
    }

    mutating func release(_ key: [UInt8]) {
        guard let n = counts[key] else { return }
        if n > 1 {
            counts[key] = n - 1
        } else {
            counts[key] = nil
            used -= LimitZoneBudget.connectionState(keyLength: key.count)
        }
    }
}

/// One zone at run time, shared by every worker thread (locked), kept across reloads while its
/// name, kind, key and size stay the same (then its states carry over, as nginx's shared memory).
final class LimitZoneRuntime: Sendable {
    let zone: LimitZone
    let requests: Mutex<LimitReqTable>
    let connections: Mutex<LimitConnTable>

    init(_ zone: LimitZone) {
        self.zone = zone
        requests = Mutex(LimitReqTable(zoneSize: zone.kind == .requests ? zone.size : 0))
        connections = Mutex(LimitConnTable(zoneSize: zone.kind == .connections ? zone.size : 0))
    }

    func sameShape(_ z: LimitZone) -> Bool {
        z.name == zone.name && z.kind == zone.kind && z.size == zone.size && z.key == zone.key
    }

    /// The zones of a new generation: the previous one's where unchanged (a new rate applies to
    /// the kept states, as in nginx where the rate is configuration, not shared memory).
    static func zones(for table: RoutingTable, previous: [LimitZoneRuntime]) -> [LimitZoneRuntime] {
        table.limitZones.map { z in
            if let old = previous.first(where: { $0.sameShape(z) }) {
                return old.zone.rate == z.rate ? old : LimitZoneRuntime(keeping: old, rate: z)
            }
            return LimitZoneRuntime(z)
        }
    }

    /// The same states under a new declaration (only the rate differs).
    private init(keeping old: LimitZoneRuntime, rate z: LimitZone) {
        zone = z
        requests = Mutex(old.requests.withLock { $0 })
        connections = Mutex(old.connections.withLock { $0 })
    }
}

/// `$limit_req_status` values (nginx's order).
enum LimitReqStatus: UInt8 {
    case passed = 1, delayed, rejected, delayedDryRun, rejectedDryRun

    var text: String {
        switch self {
        case .passed: "PASSED"
        case .delayed: "DELAYED"
        case .rejected: "REJECTED"
        case .delayedDryRun: "DELAYED_DRY_RUN"
        case .rejectedDryRun: "REJECTED_DRY_RUN"
        }
    }
}

/// `$limit_conn_status` values.
enum LimitConnStatus: UInt8 {
    case passed = 1, rejected, rejectedDryRun

    var text: String {
        switch self {
        case .passed: "PASSED"
        case .rejected: "REJECTED"
        case .rejectedDryRun: "REJECTED_DRY_RUN"
        }
    }
}

/// `ngx_http_limit_req_handler` over a location's limits, in order, without I/O: which limit
/// decides, whether the request passes, waits or is rejected, and with what excess.
enum LimitReqDecision: Equatable {
    /// No limit applied (every key empty).
    case declined
    case passed
    /// Wait `ms` milliseconds; `limit` is the index of the limit that set the longest delay.
    case delayed(ms: Int, excess: Int, limit: Int)
    /// Over the burst of limit `limit`.
    case rejected(excess: Int, limit: Int)
    /// Limit `limit`'s zone has no room for a new state.
    case noMemory(limit: Int)

    /// One limit of a location with its request's key (empty: not accounted).
    struct Input {
        var zone: LimitZoneRuntime
        var burst: Int
        var delay: Int
        var key: [UInt8]
    }

    static func decide(_ limits: [Input], now: Int64) -> LimitReqDecision {
        var held: [(limit: Int, state: Int32)] = []
        var rc: LimitReqTable.Lookup? = nil
        var n = 0
        var deciding = 0
        while n < limits.count {
            deciding = n
            let l = limits[n]
            if l.key.isEmpty || l.key.count > 65535 {
                n += 1
                continue
            }
            let rate = l.zone.zone.rate
            let r = l.zone.requests.withLock { $0.lookup(l.key, now: now, rate: rate, burst: l.burst, account: n == limits.count - 1) }
            rc = r
            guard case .again(_, let s) = r else { break }
            held.append((n, s))
            n += 1
        }
        guard let rc else { return .declined }
        var excess = 0
        switch rc {
        case .busy(let e):
            unlock(held, limits)
            return .rejected(excess: e, limit: deciding)
        case .noMemory:
            unlock(held, limits)
            return .noMemory(limit: deciding)
        case .again: excess = 0
        case .ok(let e): excess = e
        }
        // ngx_http_limit_req_account: the deciding limit's delay, then every held one's, accounted
        // now; the longest wins.
        let d = limits[deciding]
        var maxDelay = excess <= d.delay ? 0 : (excess - d.delay) * 1000 / d.zone.zone.rate
        var limit = deciding
        for h in held.reversed() {
            let l = limits[h.limit]
            let rate = l.zone.zone.rate
            let e = l.zone.requests.withLock { $0.account(h.state, now: now, rate: rate) }
            guard e > l.delay else { continue }
            let delay = (e - l.delay) * 1000 / rate
            if delay > maxDelay {
                maxDelay = delay
                excess = e
                limit = h.limit
            }
        }
        return maxDelay == 0 ? .passed : .delayed(ms: maxDelay, excess: excess, limit: limit)
    }

    private static func unlock(_ held: [(limit: Int, state: Int32)], _ limits: [Input]) {
        for h in held { limits[h.limit].zone.requests.withLock { $0.unlock(h.state) } }
    }
}
