/// A key: bytes hashed in one call (an `[UInt8]` would feed the hasher byte by byte).
public struct Key: Hashable, Sendable {
    public let bytes: [UInt8]

    @inline(__always) public init(_ bytes: [UInt8]) { self.bytes = bytes }

    @inline(__always) public func hash(into h: inout Hasher) {
        bytes.withUnsafeBytes { h.combine(bytes: $0) }
    }

    @inline(__always) public static func == (a: Key, b: Key) -> Bool { a.bytes == b.bytes }
}

/// The store's data: keys with string, hash, list or set values and optional expiry, and the
/// commands that act on them, as Redis documents them. Pure: time is passed in.
public struct Keyspace {
    public enum Value {
        case string([UInt8])
        case hash([[UInt8]: [UInt8]])
        case list([[UInt8]])
        case set(Set<[UInt8]>)

        var typeName: String {
            switch self {
            case .string: "string"
            case .hash: "hash"
            case .list: "list"
            case .set: "set"
            }
        }
    }

    public struct Entry {
        public var value: Value
        /// Absolute expiry in ms (0: none).
        public var expireAt: Int64
    }

    public internal(set) var entries: [Key: Entry] = [:]
    /// Keys that carry a TTL, for active expiry.
    var volatile: Set<Key> = []
    public var stats = Stats()

    public struct Stats {
        public var commands = 0
        public var expired = 0
        public var hits = 0
        public var misses = 0
    }

    public init() {}

    public var count: Int { entries.count }
    public var expiresCount: Int { volatile.count }

    /// The outcome of a command: the reply, and what to append to the AOF (empty for reads).
    public struct Outcome {
        public var reply = ReplyWriter()
        public var log: [[[UInt8]]] = []
        /// The command is logged to the AOF as it was received (most writes): no record array built.
        public var logAsReceived = false

        public init() {}
    }

    static let wrongType = "WRONGTYPE Operation against a key holding the wrong kind of value"
    static let notInteger = "ERR value is not an integer or out of range"
    static let syntax = "ERR syntax error"

    // MARK: access with lazy expiry

    mutating func live(_ key: [UInt8], _ now: Int64) -> Entry? {
        let key = Key(key)
        guard let e = entries[key] else { return nil }
        if e.expireAt != 0 && e.expireAt <= now {
            entries[key] = nil
            volatile.remove(key)
            stats.expired += 1
            return nil
        }
        return e
    }

    mutating func put(_ key: [UInt8], _ v: Value, keepTTL: Bool = false) {
        let key = Key(key)
        // One hash lookup in the common cases (the TTL set is touched only if the key had one).
        if keepTTL, let i = entries.index(forKey: key) {
            entries.values[i].value = v
        } else if let old = entries.updateValue(Entry(value: v, expireAt: 0), forKey: key), old.expireAt != 0 {
            volatile.remove(key)
        }
    }

    mutating func remove(_ key: [UInt8]) -> Bool {
        let key = Key(key)
        volatile.remove(key)
        return entries.removeValue(forKey: key) != nil
    }

    mutating func setExpire(_ key: [UInt8], _ at: Int64) {
        let key = Key(key)
        entries[key]?.expireAt = at
        if at == 0 { volatile.remove(key) } else { volatile.insert(key) }
    }

    /// Active expiry: removes up to `limit` expired keys; returns them (for the AOF's DELs).
    public mutating func expireSome(now: Int64, limit: Int = 64) -> [[UInt8]] {
        var gone: [[UInt8]] = []
        for k in volatile.prefix(limit * 4) {
            if let e = entries[k], e.expireAt != 0, e.expireAt <= now {
                entries[k] = nil
                volatile.remove(k)
                gone.append(k.bytes)
                stats.expired += 1
                if gone.count >= limit { break }
            }
        }
        return gone
    }

    // MARK: helpers

    static let setName = Array("SET".utf8)

    /// A canonical decimal as Redis's `string2ll` accepts it: optional `-`, no `+`, no leading
    /// zeros, no `-0`, within Int64.
    public static func int(_ b: [UInt8]) -> Int? {
        let n = b.count
        guard n > 0, n <= 20 else { return nil }
        var i = 0
        let negative = b[0] == UInt8(ascii: "-")
        if negative { i = 1; if n == 1 { return nil } }
        if b[i] == UInt8(ascii: "0") { return n == i + 1 && !negative ? 0 : nil }
        var v: UInt64 = 0
        while i < n {
            let d = b[i] &- 0x30
            guard d <= 9 else { return nil }
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (s, o2) = m.addingReportingOverflow(UInt64(d))
            if o1 || o2 { return nil }
            v = s
            i += 1
        }
        if negative { return v <= UInt64(Int64.max) + 1 ? Int(truncatingIfNeeded: 0 &- v) : nil }
        return v <= UInt64(Int64.max) ? Int(v) : nil
    }

    /// Decimal digits of an integer, without going through String.
    static func digits(_ v: Int) -> [UInt8] {
        var w = ReplyWriter()
        w.decimal(v)
        return w.bytes
    }

    /// The command name uppercased (a small string: no heap allocation for names ≤ 15 bytes).
    public static func upper(_ b: [UInt8]) -> String {
        String(unsafeUninitializedCapacity: b.count) { out in
            for (i, c) in b.enumerated() { out[i] = c >= 0x61 && c <= 0x7A ? c - 32 : c }
            return b.count
        }
    }

    /// Glob match as Redis's `stringmatchlen` (`*`, `?`, `[...]`, `\\`).
    static func glob(_ p: ArraySlice<UInt8>, _ s: ArraySlice<UInt8>) -> Bool {
        var p = p, s = s
        while let c = p.first {
            switch c {
            case UInt8(ascii: "*"):
                while p.first == UInt8(ascii: "*") { p = p.dropFirst() }
                if p.isEmpty { return true }
                while true {
                    if glob(p, s) { return true }
                    if s.isEmpty { return false }
                    s = s.dropFirst()
                }
            case UInt8(ascii: "?"):
                guard !s.isEmpty else { return false }
                s = s.dropFirst()
                p = p.dropFirst()
            case UInt8(ascii: "["):
                guard let ch = s.first else { return false }
                p = p.dropFirst()
                var not = false
                if p.first == UInt8(ascii: "^") { not = true; p = p.dropFirst() }
                var matched = false
                while let x = p.first, x != UInt8(ascii: "]") {
                    if x == UInt8(ascii: "\\"), p.count > 1 {
                        p = p.dropFirst()
                        if p.first == ch { matched = true }
                        p = p.dropFirst()
                    } else if p.count >= 3, p[p.startIndex + 1] == UInt8(ascii: "-") {
                        let lo = min(x, p[p.startIndex + 2]), hi = max(x, p[p.startIndex + 2])
                        if ch >= lo && ch <= hi { matched = true }
                        p = p.dropFirst(3)
                    } else {
                        if x == ch { matched = true }
                        p = p.dropFirst()
                    }
                }
                if p.first == UInt8(ascii: "]") { p = p.dropFirst() }
                if not { matched.toggle() }
                guard matched else { return false }
                s = s.dropFirst()
            case UInt8(ascii: "\\") where p.count > 1:
                p = p.dropFirst()
                guard s.first == p.first else { return false }
                p = p.dropFirst()
                s = s.dropFirst()
            default:
                guard s.first == c else { return false }
                p = p.dropFirst()
                s = s.dropFirst()
            }
        }
        return s.isEmpty
    }

    /// Keys matching a glob, for KEYS and SCAN.
    public mutating func keys(matching pattern: [UInt8], now: Int64) -> [[UInt8]] {
        let all = entries.keys.map(\.bytes)
        return all.filter { live($0, now) != nil && Keyspace.glob(pattern[...], $0[...]) }
    }
}

extension Keyspace {
    /// Glob matching for CONFIG GET and friends.
    public static func matches(pattern: [UInt8], _ s: [UInt8]) -> Bool { glob(pattern[...], s[...]) }
}
