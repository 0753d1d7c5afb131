/// `split_clients STRING $var { 10% a; 20.5% b; * c; }` (ngx_http_split_clients_module): the
/// evaluated STRING's MurmurHash2 picks the part whose share of the 32-bit hash space holds it.
public struct SplitClients: Sendable {
    /// Upper hash bounds (exclusive, cumulative) and values; a bound of 0 takes every hash left.
    public var parts: [(bound: UInt32, value: [UInt8])]

    /// The value for an evaluated key; empty when the shares sum below 100% and none holds it.
    public func value(for key: [UInt8]) -> [UInt8] {
        let h = SplitClients.murmurHash2(key)
        for p in parts where h < p.bound || p.bound == 0 { return p.value }
        return []
    }

    /// nginx's `ngx_murmur_hash2` (MurmurHash2, seed 0, little-endian blocks).
    public static func murmurHash2(_ data: [UInt8]) -> UInt32 {
        let m: UInt32 = 0x5bd1_e995
        var h = UInt32(truncatingIfNeeded: data.count)
        var i = 0
        while data.count - i >= 4 {
            var k = UInt32(data[i]) | UInt32(data[i + 1]) << 8 | UInt32(data[i + 2]) << 16 | UInt32(data[i + 3]) << 24
            k &*= m
            k ^= k >> 24
            k &*= m
            h &*= m
            h ^= k
            i += 4
        }
        let rest = data.count - i
        if rest == 3 { h ^= UInt32(data[i + 2]) << 16 }
        if rest >= 2 { h ^= UInt32(data[i + 1]) << 8 }
        if rest >= 1 {
            h ^= UInt32(data[i])
            h &*= m
        }
        h ^= h >> 13
        h &*= m
        h ^= h >> 15
        return h
    }

    /// nginx's `ngx_atofp(text, len, 2)`: a percentage in hundredths ("20.5" → 2050); nil when
    /// it is not a plain decimal with at most two fractional digits.
    public static func hundredths(_ text: Substring) -> Int? {
        guard !text.isEmpty else { return nil }
        var value = 0
        var fraction: Int?
        for c in text {
            if c == "." {
                if fraction != nil { return nil }
                fraction = 0
                continue
            }
            guard let d = c.wholeNumberValue, c.isASCII else { return nil }
            if let f = fraction {
                if f == 2 { return nil }
                fraction = f + 1
            }
            value = value * 10 + d
            if value > Int(Int32.max) { return nil }
        }
        for _ in 0..<(2 - (fraction ?? 0)) { value *= 10 }
        return value
    }

    /// The cumulative bounds from shares in hundredths of a percent (0 for `*`), or the index
    /// of the part that takes the total past 100%.
    public static func bounds(_ shares: [Int]) -> Result<[UInt32], OverflowAt> {
        var sum = 0
        var last: UInt64 = 0
        var out: [UInt32] = []
        for (i, share) in shares.enumerated() {
            sum = share != 0 ? sum + share : 10_000
            if sum > 10_000 { return .failure(OverflowAt(index: i)) }
            if sum == 10_000 || share == 0 {
                out.append(0)
                continue
            }
            last = (last + UInt64(share) * 0xffff_ffff / 10_000) & 0xffff_ffff
            out.append(UInt32(last))
        }
        return .success(out)
    }

    public struct OverflowAt: Error { public var index: Int }
}

extension Compiler {
    func compileSplitClients(_ d: Directive) throws {
        let source = try template(d.args[0])
        var v = d.args[1].text
        guard v.hasPrefix("$"), v.count > 1 else { throw ConfigError("invalid variable name \"\(v)\"", at: d.args[1].location) }
        v.removeFirst()
        try checkDefinable(v, at: d.location)
        definedVariables.insert(v)
        var shares: [Int] = []
        var values: [[UInt8]] = []
        for e in d.block! {
            if e.block != nil { throw ConfigError("unexpected \"{\"", at: e.location) }
            if e.name == "*" {
                shares.append(0)
            } else {
                guard e.name.hasSuffix("%"), let n = SplitClients.hundredths(e.name.dropLast()), n != 0 else {
                    throw ConfigError("invalid percent value \"\(e.name)\"", at: e.location)
                }
                shares.append(n)
            }
            values.append(Array((e.args.first?.text ?? "").utf8)) // nginx takes `10%;` too
        }
        switch SplitClients.bounds(shares) {
        case .failure:
            // nginx reports it at the block's closing brace.
            throw ConfigError("percent total is greater than 100%", at: d.blockEnd ?? d.location)
        case .success(let bounds):
            let split = SplitClients(parts: Array(zip(bounds, values)).map { (bound: $0.0, value: $0.1) })
            maps.removeAll { $0.variable == v }
            maps.append(MapBlock(source: source, variable: v, defaultValue: Template(literal: ""), exact: [:], regexes: [],
                                 hostnames: false, splitClients: split))
        }
    }
}
