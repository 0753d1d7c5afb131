/// Answers kept for their TTL (or the resolver's `valid=`), keyed by name and type. Pure: the
/// caller passes the time (monotonic ms), so tests advance a clock instead of sleeping.
public struct DNSCache: Sendable {
    struct Key: Hashable {
        var name: String
        var type: UInt16
    }

    struct Entry {
        var result: Result<[DNSRecordData], DNSLookupError>
        var expires: Int64
    }

    var entries: [Key: Entry] = [:]
    /// `resolver … valid=TIME`: replaces every TTL (positive and negative).
    public let validMs: Int?

    public init(validMs: Int? = nil) { self.validMs = validMs }

    public var count: Int { entries.count }

    /// How long an answer with TTL `ttl` seconds is kept, in ms.
    public func lifetimeMs(ttl: UInt32) -> Int64 { validMs.map(Int64.init) ?? Int64(ttl) * 1000 }

    /// Keeps an answer (records, possibly none) or an NXDOMAIN; other errors (SERVFAIL, time-outs)
    /// are never kept, so the next lookup asks again. A lifetime of 0 keeps nothing.
    public mutating func store(_ name: String, _ type: DNSType, _ result: Result<[DNSRecordData], DNSLookupError>, ttl: UInt32, now: Int64) {
        if case .failure(let e) = result, !e.isNXDomain { return }
        let life = lifetimeMs(ttl: ttl)
        guard life > 0 else { return }
        entries[Key(name: lowercasedName(name), type: type.rawValue)] = Entry(result: result, expires: now + life)
    }

    /// The kept answer and the ms it has left, or nil when there is none or it expired.
    public func lookup(_ name: String, _ type: DNSType, now: Int64) -> (result: Result<[DNSRecordData], DNSLookupError>, remainingMs: Int64)? {
        guard let e = entries[Key(name: lowercasedName(name), type: type.rawValue)], e.expires > now else { return nil }
        return (e.result, e.expires - now)
    }

    /// Drops expired entries.
    public mutating func purge(now: Int64) {
        entries = entries.filter { $0.value.expires > now }
    }
}
