import LBConfig
import LBHTTP

/// How long a response may be cached, decided as nginx's upstream module does: `X-Accel-Expires`
/// over `Cache-Control` over `Expires` over `proxy_cache_valid` (each header unless
/// `proxy_ignore_headers` names it). Pure logic: no I/O, unit-tested directly.
public enum CachePolicy {
    /// What the response headers say, extracted once from the upstream head.
    public struct ResponseInfo: Sendable, Equatable {
        public var status: Int
        public var xAccelExpires: String?
        /// All Cache-Control values, comma-joined.
        public var cacheControl: String?
        public var expires: String?
        public var setCookie = false
        /// The Vary value (all lines joined), or nil.
        public var vary: String?

        public init(status: Int, xAccelExpires: String? = nil, cacheControl: String? = nil, expires: String? = nil,
                    setCookie: Bool = false, vary: String? = nil) {
            self.status = status
            self.xAccelExpires = xAccelExpires
            self.cacheControl = cacheControl
            self.expires = expires
            self.setCookie = setCookie
            self.vary = vary
        }

        /// Reads the headers that matter from a parsed head.
        public init(_ head: ResponseHead, _ bytes: UnsafeRawBufferPointer) {
            status = head.status
            for f in head.headers {
                let n = f.name
                func value() -> String { String(decoding: bytes[f.value], as: UTF8.self) }
                func join(_ old: String?) -> String { old.map { $0 + ", " + value() } ?? value() }
                switch n.count {
                case 15 where ASCII.equalsLower(bytes, n, "x-accel-expires"): xAccelExpires = value()
                case 13 where ASCII.equalsLower(bytes, n, "cache-control"): cacheControl = join(cacheControl)
                case 7 where ASCII.equalsLower(bytes, n, "expires"): expires = value()
                case 10 where ASCII.equalsLower(bytes, n, "set-cookie"): setCookie = true
                case 4 where ASCII.equalsLower(bytes, n, "vary"): vary = join(vary)
                default: break
                }
            }
        }
    }

    /// A cacheable response's lifetime.
    public struct Freshness: Sendable, Equatable {
        /// Wall-clock second until which the entry is fresh.
        public var validUntil: Int
        /// `stale-while-revalidate=N`: seconds after expiry during which the stale entry may be
        /// served while one request updates it.
        public var staleWhileRevalidate: Int = 0
        /// `stale-if-error=N`: seconds after expiry during which the stale entry may be served
        /// when the upstream fails.
        public var staleIfError: Int = 0
    }

    /// The lifetime of a response, or nil when it must not be stored.
    public static func freshness(_ r: ResponseInfo, now: Int, valid: [CacheValid], ignore: IgnoredHeaders) -> Freshness? {
        if r.status < 200 || r.status == 206 { return nil }
        if r.setCookie && !ignore.contains(.setCookie) { return nil }
        var varyNames: [String] = []
        if let v = r.vary, !ignore.contains(.vary) {
            varyNames = varyHeaderNames(v)
            if varyNames.contains("*") { return nil }
        }
        var result = Freshness(validUntil: 0)
        var decided = false
        // X-Accel-Expires: seconds, `@epoch`, 0 = do not cache.
        if let x = r.xAccelExpires?.trimmed, !x.isEmpty, !ignore.contains(.xAccelExpires) {
            if x.hasPrefix("@") {
                guard let t = Int(x.dropFirst()) else { return nil }
                if t <= now { return nil }
                result.validUntil = t
                decided = true
            } else if let n = Int(x) {
                if n <= 0 { return nil }
                result.validUntil = now + n
                decided = true
            }
        }
        if let cc = r.cacheControl, !ignore.contains(.cacheControl) {
            let d = directives(cc)
            if !decided {
                if d["no-cache"] != nil || d["no-store"] != nil || d["private"] != nil { return nil }
                if let s = d["s-maxage"] ?? d["max-age"] {
                    guard let n = Int(s ?? "") else { return nil }
                    if n <= 0 { return nil }
                    result.validUntil = now + n
                    decided = true
                }
            }
            if let s = d["stale-while-revalidate"], let n = Int(s ?? ""), n > 0 {
                result.staleWhileRevalidate = n
                result.staleIfError = n
            }
            if let s = d["stale-if-error"], let n = Int(s ?? ""), n > 0 { result.staleIfError = n }
        }
        if !decided, let e = r.expires, !ignore.contains(.expires) {
            guard let t = DateCache.parse(e.trimmed), t > now else { return nil }
            result.validUntil = t
            decided = true
        }
        if !decided {
            guard let s = validSeconds(r.status, valid) else { return nil }
            result.validUntil = now + s
        }
        return result
    }

    /// `proxy_cache_valid`: the first rule naming the status (empty codes = `any`; the config
    /// compiler turns a rule without codes into 200 301 302).
    public static func validSeconds(_ status: Int, _ valid: [CacheValid]) -> Int? {
        for v in valid {
            if v.codes.isEmpty || v.codes.contains(status) {
                return v.ms > 0 ? max(1, v.ms / 1000) : nil
            }
        }
        return nil
    }

    /// Cache-Control directives, lowercased names → optional value (quotes removed).
    public static func directives(_ v: String) -> [String: String?] {
        var out: [String: String?] = [:]
        for part in v.split(separator: ",") {
            let p = part.trimmed
            if p.isEmpty { continue }
            if let eq = p.firstIndex(of: "=") {
                var val = String(p[p.index(after: eq)...]).trimmed
                if val.hasPrefix("\"") && val.hasSuffix("\"") && val.count >= 2 { val = String(val.dropFirst().dropLast()) }
                out[String(p[..<eq]).trimmed.lowercased()] = .some(val)
            } else {
                out[p.lowercased()] = .some(nil)
            }
        }
        return out
    }

    /// The header names of a Vary value, lowercased, sorted, deduplicated.
    public static func varyHeaderNames(_ v: String) -> [String] {
        Array(Set(v.split(separator: ",").map { $0.trimmed.lowercased() }.filter { !$0.isEmpty })).sorted()
    }
}

extension StringProtocol {
    var trimmed: String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return String(s)
    }
}
