import Synchronization

/// Sends one query and returns its response: the I/O side of `DNSResolver`, replaced by canned
/// answers in tests.
public protocol DNSTransport: AnyObject {
    /// Sends `query` (whose id is `id`) and returns the response with that id — over UDP, asked
    /// again over TCP when truncated — or why there is none.
    func exchange(_ query: [UInt8], id: UInt16) -> Result<DNSResponse, DNSLookupError>
}

/// Counters of one process's DNS traffic (status page and metrics read them).
public final class DNSStats: Sendable {
    public let queries = Atomic<Int>(0)
    /// Queries asked again over TCP after a truncated UDP answer.
    public let tcp = Atomic<Int>(0)
    public let timeouts = Atomic<Int>(0)
    public let nxdomain = Atomic<Int>(0)
    /// SERVFAIL, REFUSED and other error codes, unreachable servers, malformed answers.
    public let failures = Atomic<Int>(0)
    public init() {}

    func count(_ e: DNSLookupError) {
        switch e {
        case .timedOut: timeouts.add(1, ordering: .relaxed)
        case .rcode(3): nxdomain.add(1, ordering: .relaxed)
        default: failures.add(1, ordering: .relaxed)
        }
    }
}

/// One address a name stands for, with what SRV said about it.
public struct ResolvedAddress: Sendable, Hashable {
    public var ip: String
    /// From SRV; 0 for A/AAAA (the `server` line's port applies).
    public var port: Int
    public var weight: Int
    public var priority: Int
    /// The SRV target name (empty for A/AAAA).
    public var target: String

    public init(ip: String, port: Int = 0, weight: Int = 1, priority: Int = 0, target: String = "") {
        self.ip = ip
        self.port = port
        self.weight = weight
        self.priority = priority
        self.target = target
    }
}

/// Name lookups through a cache: A and AAAA (as `ipv4=`/`ipv6=` allow), SRV with its targets'
/// addresses, CNAME chains followed. Not thread-safe: one resolver thread owns it. The clock is
/// injected (monotonic ms).
public final class DNSResolver {
    let transport: any DNSTransport
    public private(set) var cache: DNSCache
    let ipv4: Bool
    let ipv6: Bool
    let now: () -> Int64
    public let stats: DNSStats

    public init(transport: any DNSTransport, validMs: Int?, ipv4: Bool = true, ipv6: Bool = true, stats: DNSStats = DNSStats(),
                now: @escaping () -> Int64) {
        self.transport = transport
        cache = DNSCache(validMs: validMs)
        self.ipv4 = ipv4
        self.ipv6 = ipv6
        self.stats = stats
        self.now = now
    }

    /// The records of one type for `name`, from the cache or the server, and how long they stay
    /// valid (ms).
    public func lookup(_ name: String, _ type: DNSType) -> Result<(records: [DNSRecordData], lifetimeMs: Int64), DNSLookupError> {
        let t = now()
        if let hit = cache.lookup(name, type, now: t) {
            return hit.result.map { ($0, hit.remainingMs) }
        }
        let id = UInt16.random(in: 0...UInt16.max)
        guard let query = DNSMessage.query(id: id, name: name, type: type) else { return .failure(.malformed("invalid name \"\(name)\"")) }
        stats.queries.add(1, ordering: .relaxed)
        let response: DNSResponse
        switch transport.exchange(query, id: id) {
        case .failure(let e):
            stats.count(e)
            return .failure(e)
        case .success(let r):
            response = r
        }
        guard response.questionName == lowercasedName(name), response.questionType == type.rawValue else {
            let e = DNSLookupError.malformed("the answer is for another question")
            stats.count(e)
            return .failure(e)
        }
        let t2 = now()
        switch response.records(for: name, type: type) {
        case .success(let (records, ttl)):
            cache.store(name, type, .success(records), ttl: ttl, now: t2)
            if type == .srv { keepAdditionalAddresses(response, now: t2) }
            return .success((records, cache.lifetimeMs(ttl: ttl)))
        case .failure(let e):
            stats.count(e)
            if e.isNXDomain { cache.store(name, type, .failure(e), ttl: response.negativeTTL, now: t2) }
            return .failure(e)
        }
    }

    /// The A/AAAA records an SRV answer brought along, kept so its targets need no query of their own.
    func keepAdditionalAddresses(_ r: DNSResponse, now t: Int64) {
        var groups: [String: (records: [DNSRecordData], ttl: UInt32)] = [:]
        for rec in r.additional where rec.type == DNSType.a.rawValue || rec.type == DNSType.aaaa.rawValue {
            let key = "\(rec.type) \(rec.name)"
            var g = groups[key] ?? ([], UInt32.max)
            g.records.append(rec.data)
            g.ttl = min(g.ttl, rec.ttl)
            groups[key] = g
        }
        for (key, g) in groups {
            let parts = key.split(separator: " ", maxSplits: 1)
            let type: DNSType = parts[0] == "1" ? .a : .aaaa
            cache.store(String(parts[1]), type, .success(g.records), ttl: g.ttl, now: t)
        }
    }

    /// Every address of `name` (A first, then AAAA) and how long the answer is valid. An error
    /// other than NXDOMAIN for either type is the result (the caller keeps what it had); NXDOMAIN
    /// for every type asked is NXDOMAIN.
    public func addresses(_ name: String) -> Result<(ips: [String], lifetimeMs: Int64), DNSLookupError> {
        var ips: [String] = []
        var seen: Set<String> = []  // not `ips.contains`: quadratic in the records (2,500 and more in large pools)
        var life = Int64.max
        var nx = 0
        var asked = 0
        for (on, type) in [(ipv4, DNSType.a), (ipv6, DNSType.aaaa)] where on {
            asked += 1
            switch lookup(name, type) {
            case .success(let (records, l)):
                life = min(life, l)
                for case .address(let ip) in records where seen.insert(ip).inserted { ips.append(ip) }
            case .failure(let e):
                if !e.isNXDomain { return .failure(e) }
                nx += 1
            }
        }
        if nx == asked { return .failure(.rcode(3)) }
        return .success((ips, life == .max ? 0 : life))
    }

    /// An SRV name's targets resolved to addresses, with their ports, weights and priorities. A
    /// target that does not exist (NXDOMAIN) contributes nothing; any other failure is the result.
    public func service(_ srvName: String) -> Result<(addresses: [ResolvedAddress], lifetimeMs: Int64), DNSLookupError> {
        let records: [DNSRecordData]
        var life: Int64
        switch lookup(srvName, .srv) {
        case .success(let (r, l)):
            records = r
            life = l
        case .failure(let e):
            return .failure(e)
        }
        var out: [ResolvedAddress] = []
        for case .srv(let priority, let weight, let port, let target) in records {
            // "." as target: the service is decidedly not available at this name (RFC 2782).
            if target.isEmpty { continue }
            switch addresses(target) {
            case .success(let (ips, l)):
                life = min(life, l)
                for ip in ips {
                    out.append(ResolvedAddress(ip: ip, port: Int(port), weight: max(1, Int(weight)), priority: Int(priority), target: target))
                }
            case .failure(let e):
                if !e.isNXDomain { return .failure(e) }
            }
        }
        return .success((out, life))
    }

    /// Drops expired cache entries.
    public func purge() { cache.purge(now: now()) }
}
