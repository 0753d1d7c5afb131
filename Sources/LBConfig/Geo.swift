import Glibc

/// `geo [$address] $variable { … }` (ngx_http_geo_module, as nginx 1.22 has it): a value chosen by
/// a client address. Compiled at load into one of two immutable tables, read per request:
///
/// - networks (the default): CIDR entries for IPv4 and IPv6, longest prefix wins, as nginx's
///   radix trees (one for IPv4, one for IPv6; a v4-mapped IPv6 address is looked up as IPv4);
/// - `ranges`: `A-B value` IPv4 ranges, kept as nginx keeps them, per /16 in sorted, disjoint
///   pieces (a range may be added inside an earlier one, which it splits; never across one).
///
/// An address that is not IP (a unix-domain client, a variable that is not an address) is looked
/// up as 255.255.255.255, as nginx does (`INADDR_NONE`).
public struct GeoBlock: Sendable {
    /// Whether the address comes from the block's first argument (evaluated as the map's source);
    /// otherwise it is the connection's (as `$remote_addr`, after realip).
    public var addressFromVariable: Bool
    /// `proxy` networks: from one of them, the address is taken from X-Forwarded-For.
    public var proxies: [CIDR]
    public var proxyRecursive: Bool
    public var table: Table

    public enum Table: Sendable {
        case networks(GeoNetworks)
        case ranges(GeoRanges)
    }

    /// The value for an address: 16 bytes (IPv4 v4-mapped), or nil for one that is not IP.
    public func value(for address: [UInt8]?) -> [UInt8] {
        switch table {
        case .networks(let n): return n.value(for: address)
        case .ranges(let r): return r.value(for: GeoBlock.ipv4(address) ?? 0xFFFF_FFFF)
        }
    }

    /// The IPv4 address of 16 v4-mapped bytes; nil for IPv6 or none.
    static func ipv4(_ a: [UInt8]?) -> UInt32? {
        guard let a, a.count == 16, a[0..<10].allSatisfy({ $0 == 0 }), a[10] == 0xFF, a[11] == 0xFF else { return nil }
        return UInt32(a[12]) << 24 | UInt32(a[13]) << 16 | UInt32(a[14]) << 8 | UInt32(a[15])
    }

    /// nginx's `ngx_parse_addr`, for an address taken from a variable: an IPv4 literal as
    /// `ngx_inet_addr` reads it, else an IPv6 literal; nil for anything else (ports, brackets).
    public static func parseAddress(_ text: [UInt8]) -> [UInt8]? {
        if let v4 = inetAddr(text[...]) {
            return [UInt8](repeating: 0, count: 10) + [0xFF, 0xFF, UInt8(v4 >> 24), UInt8(v4 >> 16 & 0xFF), UInt8(v4 >> 8 & 0xFF), UInt8(v4 & 0xFF)]
        }
        return inet6(text[...])
    }

    /// nginx's `ngx_inet_addr`: digits and exactly three dots, each octet at most 255 (an empty
    /// octet is 0). 255.255.255.255 is INADDR_NONE there, so nil here too.
    public static func inetAddr(_ text: ArraySlice<UInt8>) -> UInt32? {
        var addr: UInt32 = 0, octet: UInt32 = 0, dots = 0
        for c in text {
            if c >= 0x30 && c <= 0x39 {
                octet = octet * 10 + UInt32(c - 0x30)
                if octet > 255 { return nil }
            } else if c == UInt8(ascii: ".") {
                addr = addr << 8 &+ octet
                octet = 0
                dots += 1
                if dots > 3 { return nil }
            } else {
                return nil
            }
        }
        guard dots == 3 else { return nil }
        let a = addr << 8 | octet
        return a == 0xFFFF_FFFF ? nil : a
    }

    /// An IPv6 literal's 16 bytes (inet_pton, close to nginx's `ngx_inet6_addr`).
    static func inet6(_ text: ArraySlice<UInt8>) -> [UInt8]? {
        guard text.contains(UInt8(ascii: ":")), text.count < 64 else { return nil }
        var a = in6_addr()
        let s = String(decoding: text, as: UTF8.self)
        guard inet_pton(AF_INET6, s, &a) == 1 else { return nil }
        return withUnsafeBytes(of: a) { Array($0) }
    }

    /// A network as nginx's geo reads it (`ngx_http_geo_cidr_value`: `ngx_ptocidr`, with
    /// 255.255.255.255 taken as itself): nil when invalid; `meaningless` when bits beyond the
    /// prefix were set (nginx warns and clears them).
    public struct Network: Sendable, Hashable {
        public var v6: Bool
        /// IPv4 in the top 32 bits of `hi`.
        public var hi: UInt64
        public var lo: UInt64
        public var prefix: Int
        public var meaningless = false

        /// As an lb `CIDR` (IPv4 v4-mapped), for `proxy`.
        public func cidr(_ text: String) -> CIDR {
            var bytes = [UInt8](repeating: 0, count: 16)
            if v6 {
                for i in 0..<8 { bytes[i] = UInt8(hi >> (56 - 8 * UInt64(i)) & 0xFF); bytes[8 + i] = UInt8(lo >> (56 - 8 * UInt64(i)) & 0xFF) }
                return CIDR(address: bytes, prefixLength: prefix, description: text)
            }
            bytes[10] = 0xFF
            bytes[11] = 0xFF
            for i in 0..<4 { bytes[12 + i] = UInt8(hi >> (56 - 8 * UInt64(i)) & 0xFF) }
            return CIDR(address: bytes, prefixLength: prefix + 96, description: text)
        }
    }

    public static func parseNetwork(_ text: String) -> Network? {
        let b = Array(text.utf8)
        if text == "255.255.255.255" { return Network(v6: false, hi: 0xFFFF_FFFF << 32, lo: 0, prefix: 32) }
        let slash = b.firstIndex(of: UInt8(ascii: "/"))
        let addrPart = b[..<(slash ?? b.count)]
        var net: Network
        if let v4 = inetAddr(addrPart) {
            net = Network(v6: false, hi: UInt64(v4) << 32, lo: 0, prefix: 32)
        } else if let v6 = inet6(addrPart) {
            var hi: UInt64 = 0, lo: UInt64 = 0
            for i in 0..<8 { hi = hi << 8 | UInt64(v6[i]); lo = lo << 8 | UInt64(v6[8 + i]) }
            net = Network(v6: true, hi: hi, lo: lo, prefix: 128)
        } else {
            return nil
        }
        guard let slash else { return net }
        // ngx_atoi: one or more digits, nothing else.
        let digits = b[(slash + 1)...]
        guard !digits.isEmpty, digits.count < 10, digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        let n = digits.reduce(0) { $0 * 10 + Int($1 - 0x30) }
        guard n <= (net.v6 ? 128 : 32) else { return nil }
        net.prefix = n
        let (mh, ml) = GeoNetworks.mask(n)
        if net.hi & ~mh != 0 || net.lo & ~ml != 0 { net.meaningless = true }
        net.hi &= mh
        net.lo &= ml
        return net
    }
}

/// The networks of a `geo` block: one table per prefix length and family, searched from the
/// longest prefix, which is what nginx's radix tree lookup returns.
public struct GeoNetworks: Sendable {
    struct Key: Hashable, Sendable {
        var hi: UInt64
        var lo: UInt64
        var prefix: Int
    }

    var v4: [Key: [UInt8]] = [:]
    var v6: [Key: [UInt8]] = [:]
    /// The prefix lengths present, longest first, and how many networks each has.
    var v4Prefixes: [Int] = []
    var v6Prefixes: [Int] = []
    var v4Counts: [Int: Int] = [:]
    var v6Counts: [Int: Int] = [:]

    public init() {}

    /// The high and low masks of a prefix length counted from the top of 128 bits (IPv4 lives
    /// in the top 32 bits of the high word).
    static func mask(_ prefix: Int) -> (UInt64, UInt64) {
        let hi: UInt64 = prefix >= 64 ? ~0 : prefix == 0 ? 0 : ~0 << UInt64(64 - prefix)
        let lo: UInt64 = prefix <= 64 ? 0 : prefix >= 128 ? ~0 : ~0 << UInt64(128 - prefix)
        return (hi, lo)
    }

    static func key(_ n: GeoBlock.Network) -> Key { Key(hi: n.hi, lo: n.lo, prefix: n.prefix) }

    /// Adds a network; its previous value when it was already there (nginx: `duplicate network`,
    /// the new value replaces it).
    @discardableResult
    public mutating func insert(_ n: GeoBlock.Network, _ value: [UInt8]) -> [UInt8]? {
        let k = GeoNetworks.key(n)
        let old = n.v6 ? v6.updateValue(value, forKey: k) : v4.updateValue(value, forKey: k)
        if old == nil {
            if n.v6 { GeoNetworks.count(n.prefix, +1, &v6Counts, &v6Prefixes) } else { GeoNetworks.count(n.prefix, +1, &v4Counts, &v4Prefixes) }
        }
        return old
    }

    /// Removes a network; false when it was not there (nginx: `no network "…" to delete`).
    public mutating func delete(_ n: GeoBlock.Network) -> Bool {
        let k = GeoNetworks.key(n)
        if n.v6 {
            guard v6.removeValue(forKey: k) != nil else { return false }
            GeoNetworks.count(n.prefix, -1, &v6Counts, &v6Prefixes)
        } else {
            guard v4.removeValue(forKey: k) != nil else { return false }
            GeoNetworks.count(n.prefix, -1, &v4Counts, &v4Prefixes)
        }
        return true
    }

    static func count(_ p: Int, _ delta: Int, _ counts: inout [Int: Int], _ list: inout [Int]) {
        let c = counts[p, default: 0] + delta
        counts[p] = c
        if c == 0 { list.removeAll { $0 == p } } else if c == 1 && delta > 0 { list.append(p); list.sort(by: >) }
    }

    /// The value of the longest prefix holding the address (16 bytes, IPv4 v4-mapped; nil for
    /// one that is not IP, looked up as 255.255.255.255); empty when none does.
    public func value(for address: [UInt8]?) -> [UInt8] {
        if let a = address, a.count == 16, GeoBlock.ipv4(a) == nil {
            var hi: UInt64 = 0, lo: UInt64 = 0
            for i in 0..<8 { hi = hi << 8 | UInt64(a[i]); lo = lo << 8 | UInt64(a[8 + i]) }
            return GeoNetworks.find(hi, lo, in: v6, prefixes: v6Prefixes)
        }
        let ip = GeoBlock.ipv4(address) ?? 0xFFFF_FFFF
        return GeoNetworks.find(UInt64(ip) << 32, 0, in: v4, prefixes: v4Prefixes)
    }

    static func find(_ hi: UInt64, _ lo: UInt64, in table: [Key: [UInt8]], prefixes: [Int]) -> [UInt8] {
        for p in prefixes {
            let (mh, ml) = mask(p)
            if let v = table[Key(hi: hi & mh, lo: lo & ml, prefix: p)] { return v }
        }
        return []
    }
}

/// The ranges of a `geo` block with `ranges`, as nginx keeps them: for each /16, sorted disjoint
/// pieces `start...end` of its low 16 bits.
public struct GeoRanges: Sendable {
    public struct Piece: Sendable, Equatable {
        public var start: UInt16
        public var end: UInt16
        public var value: [UInt8]
    }

    var buckets: [UInt16: [Piece]] = [:]
    public var defaultValue: [UInt8]? = nil

    public init() {}

    public enum AddResult: Equatable {
        /// Added; `replaced` has the old value of each /16 piece that had the same bounds
        /// (nginx warns `duplicate range` for each, and the new value replaces it).
        case added(replaced: [[UInt8]])
        /// It crosses this existing piece (nginx: `range "…" overlaps "A-B"`); nothing sensible is left.
        case overlaps(String)
    }

    /// Adds `start...end` (start ≤ end) as nginx's `ngx_http_geo_add_range`: per /16, a piece
    /// wholly inside an existing one splits it; the same bounds replace its value; anything
    /// else crossing one is an overlap.
    public mutating func add(_ start: UInt32, _ end: UInt32, _ value: [UInt8]) -> AddResult {
        var replaced: [[UInt8]] = []
        var n = start
        while true {
            let h = UInt16(n >> 16)
            let s = n == start ? UInt16(n & 0xFFFF) : 0
            let e: UInt16 = (n | 0xFFFF) > end ? UInt16(end & 0xFFFF) : 0xFFFF
            if let overlap = GeoRanges.add(s, e, h, value, to: &buckets[h, default: []], replaced: &replaced) { return .overlaps(overlap) }
            if h == 0xFFFF { break }
            n = (n &+ 0x10000) & 0xFFFF_0000
            if n > end || n == 0 { break }
        }
        return .added(replaced: replaced)
    }

    /// One /16's part of `add`, on its pieces in place; the crossed piece when it overlaps one.
    static func add(_ start: UInt16, _ end: UInt16, _ h: UInt16, _ value: [UInt8], to a: inout [Piece], replaced: inout [[UInt8]]) -> String? {
        var s = start, e = end
        var i = a.count
        var placed = false
        while i > 0 {
            i -= 1
            if e < a[i].start { continue }
            if s > a[i].end {
                a.insert(Piece(start: s, end: e, value: value), at: i + 1)
            } else if s == a[i].start && e == a[i].end {
                replaced.append(a[i].value)
                a[i].value = value
            } else if s > a[i].start && e < a[i].end {
                let old = a[i]
                a[i].end = s - 1
                a.insert(contentsOf: [Piece(start: s, end: e, value: value), Piece(start: e + 1, end: old.end, value: old.value)], at: i + 1)
            } else if s == a[i].start && e < a[i].end {
                a[i].start = e + 1
                a.insert(Piece(start: s, end: e, value: value), at: i)
            } else if s > a[i].start && e == a[i].end {
                a[i].end = s - 1
                a.insert(Piece(start: s, end: e, value: value), at: i + 1)
            } else {
                s = a[i].start
                e = a[i].end
                return "\(h >> 8).\(h & 0xFF).\(s >> 8).\(s & 0xFF)-\(h >> 8).\(h & 0xFF).\(e >> 8).\(e & 0xFF)"
            }
            placed = true
            break
        }
        if !placed { a.insert(Piece(start: s, end: e, value: value), at: 0) }
        return nil
    }

    /// Deletes `start...end` as nginx's `ngx_http_geo_delete_range`: in each /16 the piece with
    /// exactly those bounds; false when one of them had none (nginx warns `no address range`).
    public mutating func delete(_ start: UInt32, _ end: UInt32) -> Bool {
        var found = true
        var n = start
        while true {
            let h = UInt16(n >> 16)
            let s = n == start ? UInt16(n & 0xFFFF) : 0
            let e: UInt16 = (n | 0xFFFF) > end ? UInt16(end & 0xFFFF) : 0xFFFF
            if let i = buckets[h]?.firstIndex(where: { $0.start == s && $0.end == e }) {
                buckets[h]!.remove(at: i)
            } else {
                found = false
            }
            if h == 0xFFFF { break }
            n = (n &+ 0x10000) & 0xFFFF_0000
            if n > end || n == 0 { break }
        }
        return found
    }

    /// The value of the piece holding the address, else the default (empty when none).
    public func value(for address: UInt32) -> [UInt8] {
        if let a = buckets[UInt16(address >> 16)] {
            let low = UInt16(address & 0xFFFF)
            for p in a where low >= p.start && low <= p.end { return p.value }
        }
        return defaultValue ?? []
    }
}

extension Compiler {
    /// Built-in variables nginx lets a map, geo or split_clients define again (its changeable ones).
    static let changeableBuiltins: Set<String> = ["args", "limit_rate", "proxy_host", "proxy_port"]

    /// nginx's `ngx_http_add_variable` for a map-like block's variable: a built-in one that is
    /// not changeable is `the duplicate "NAME" variable` (prefixed ones, `$http_…`, are not built-in
    /// names there).
    func checkDefinable(_ name: String, at location: SourceLocation) throws {
        if Variable.simple[name] != nil && !Compiler.changeableBuiltins.contains(name) && !name.hasPrefix("ssl_") {
            throw ConfigError("the duplicate \"\(name)\" variable", at: location)
        }
        // nginx lets such a block replace a changeable built-in (`$args`, `$ssl_…`) or define a
        // name of a prefixed family (`$http_x`, `$arg_x`, `$cookie_x`…); lb reads those itself,
        // so it refuses rather than answer with the built-in value.
        let builtin: Bool
        if case .named = Variable.resolve(name) { builtin = false } else { builtin = true }
        if builtin {
            throw ConfigError("defining the built-in variable \"$\(name)\" in a map, geo or split_clients block is not supported by lb", at: location)
        }
    }

    /// `geo [$address] $variable { … }`, entry by entry as nginx's `ngx_http_geo` reads them
    /// (included files' entries arrive inline, each at its own FILE:LINE).
    func compileGeo(_ d: Directive) throws {
        var nameTok = d.args[d.args.count - 1]
        guard nameTok.text.hasPrefix("$") else { throw ConfigError("invalid variable name \"\(nameTok.text)\"", at: nameTok.location) }
        var source = Template(literal: "")
        if d.args.count == 2 {
            guard d.args[0].text.hasPrefix("$") else { throw ConfigError("invalid variable name \"\(d.args[0].text)\"", at: d.args[0].location) }
            source = try template(d.args[0])
        }
        nameTok.text.removeFirst()
        let v = nameTok.text
        try checkDefinable(v, at: d.location)
        definedVariables.insert(v)

        // Mutated in place (entries may be hundreds of thousands): no copies per entry.
        var networks = GeoNetworks(), sawNetwork = false
        var ranges = GeoRanges(), rangesMode = false
        var proxies: [CIDR] = []
        var recursive = false
        func warn(_ m: String, _ e: Directive) { warnings.append(ConfigError(m, at: e.location)) }
        func network(_ t: String, _ e: Directive) throws -> GeoBlock.Network {
            guard let n = GeoBlock.parseNetwork(t) else { throw ConfigError("invalid network \"\(t)\"", at: e.location) }
            if n.meaningless { warn("low address bits of \(t) are meaningless", e) }
            return n
        }
        for e in d.block! {
            if e.block != nil { throw ConfigError("unexpected \"{\"", at: e.location) }
            if e.args.isEmpty && e.name == "ranges" {
                // nginx: any network entry (default and delete too) has made its radix tree.
                if sawNetwork {
                    throw ConfigError("the \"ranges\" directive must be the first directive inside \"geo\" block", at: e.location)
                }
                rangesMode = true
                continue
            }
            if e.args.isEmpty && e.name == "proxy_recursive" { recursive = true; continue }
            guard e.args.count == 1 else { throw ConfigError("invalid number of the geo parameters", at: e.location) }
            let arg = e.args[0].text
            if e.name == "proxy" {
                proxies.append(try network(arg, e).cidr(arg))
                continue
            }
            if rangesMode {
                try addRange(e, to: &ranges, warn: warn)
                continue
            }
            sawNetwork = true
            if e.name == "default" {
                let value = Array(arg.utf8)
                for v6 in [false, true] {
                    if let old = networks.insert(GeoBlock.Network(v6: v6, hi: 0, lo: 0, prefix: 0), value) {
                        warn("duplicate network \"default\", value: \"\(arg)\", old value: \"\(String(decoding: old, as: UTF8.self))\"", e)
                    }
                }
            } else if e.name == "delete" {
                if !networks.delete(try network(arg, e)) { warn("no network \"\(arg)\" to delete", e) }
            } else {
                let net = try network(e.name, e)
                if let old = networks.insert(net, Array(arg.utf8)) {
                    warn("duplicate network \"\(e.name)\", value: \"\(arg)\", old value: \"\(String(decoding: old, as: UTF8.self))\"", e)
                }
            }
        }
        let table: GeoBlock.Table = rangesMode ? .ranges(ranges) : .networks(networks)
        let geo = GeoBlock(addressFromVariable: d.args.count == 2, proxies: proxies, proxyRecursive: recursive, table: table)
        // A later block for the same variable replaces an earlier one, as in nginx.
        maps.removeAll { $0.variable == v }
        maps.append(MapBlock(source: source, variable: v, defaultValue: Template(literal: ""), exact: [:], regexes: [],
                             hostnames: false, geo: geo))
    }

    /// One entry of a `ranges` geo block: `default V`, `delete A-B` or `A-B V`.
    private func addRange(_ e: Directive, to r: inout GeoRanges, warn: (String, Directive) -> Void) throws {
        let arg = e.args[0].text
        if e.name == "default" {
            if let old = r.defaultValue {
                warn("duplicate default geo range value: \"\(arg)\", old value: \"\(String(decoding: old, as: UTF8.self))\"", e)
            }
            r.defaultValue = Array(arg.utf8)
            return
        }
        let net = e.name == "delete" ? arg : e.name
        let b = Array(net.utf8)
        guard let dash = b.firstIndex(of: UInt8(ascii: "-")),
              let start = GeoBlock.inetAddr(b[..<dash]), let end = GeoBlock.inetAddr(b[(dash + 1)...]), start <= end else {
            throw ConfigError("invalid range \"\(net)\"", at: e.location)
        }
        if e.name == "delete" {
            if !r.delete(start, end) { warn("no address range \"\(net)\" to delete", e) }
            return
        }
        switch r.add(start, end, Array(arg.utf8)) {
        case .added(let replaced):
            for old in replaced {
                warn("duplicate range \"\(net)\", value: \"\(arg)\", old value: \"\(String(decoding: old, as: UTF8.self))\"", e)
            }
        case .overlaps(let other):
            throw ConfigError("range \"\(net)\" overlaps \"\(other)\"", at: e.location)
        }
    }
}
