/// Keyword lists compiled into bit sets at load (nginx's `ngx_conf_set_bitmask_slot`): the
/// runtime tests a keyword with one AND, never by comparing words. `UpstreamConditions`
/// (`proxy_next_upstream`, `proxy_cache_use_stale`) is the same kind of set.

/// `proxy_ignore_headers` (and `fastcgi_`/`uwsgi_ignore_headers`): upstream response headers
/// whose processing is disabled (nginx's `ngx_http_upstream_ignore_headers_masks`).
public struct IgnoredHeaders: OptionSet, Sendable, Hashable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let xAccelRedirect = IgnoredHeaders(rawValue: 1 << 0)
    public static let xAccelExpires = IgnoredHeaders(rawValue: 1 << 1)
    public static let xAccelLimitRate = IgnoredHeaders(rawValue: 1 << 2)
    public static let xAccelBuffering = IgnoredHeaders(rawValue: 1 << 3)
    public static let xAccelCharset = IgnoredHeaders(rawValue: 1 << 4)
    public static let expires = IgnoredHeaders(rawValue: 1 << 5)
    public static let cacheControl = IgnoredHeaders(rawValue: 1 << 6)
    public static let setCookie = IgnoredHeaders(rawValue: 1 << 7)
    public static let vary = IgnoredHeaders(rawValue: 1 << 8)

    /// The directive's keywords, as nginx spells them.
    public static let words: [String: IgnoredHeaders] = [
        "X-Accel-Redirect": .xAccelRedirect, "X-Accel-Expires": .xAccelExpires, "X-Accel-Limit-Rate": .xAccelLimitRate,
        "X-Accel-Buffering": .xAccelBuffering, "X-Accel-Charset": .xAccelCharset, "Expires": .expires,
        "Cache-Control": .cacheControl, "Set-Cookie": .setCookie, "Vary": .vary,
    ]
}

/// `proxy_cache_methods` (and `fastcgi_`/`uwsgi_cache_methods`): GET and HEAD are always in it.
public struct CacheMethods: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let get = CacheMethods(rawValue: 1 << 0)
    public static let head = CacheMethods(rawValue: 1 << 1)
    public static let post = CacheMethods(rawValue: 1 << 2)

    public static let words: [String: CacheMethods] = ["GET": .get, "HEAD": .head, "POST": .post]
}

/// `keepalive_disable`: the browser classes whose keep-alive is turned off (`none`: no class).
public struct KeepaliveDisable: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// MSIE 4–6, after a POST.
    public static let msie6 = KeepaliveDisable(rawValue: 1 << 0)
    public static let safari = KeepaliveDisable(rawValue: 1 << 1)

    public static let words: [String: KeepaliveDisable] = ["none": [], "msie6": .msie6, "safari": .safari]
}

/// `gzip_proxied`: which responses to requests that came through a proxy (with `Via`) are
/// gzipped; empty is `off`.
public struct GzipProxied: OptionSet, Sendable, Hashable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let expired = GzipProxied(rawValue: 1 << 0)
    public static let noCache = GzipProxied(rawValue: 1 << 1)
    public static let noStore = GzipProxied(rawValue: 1 << 2)
    public static let `private` = GzipProxied(rawValue: 1 << 3)
    public static let noLastModified = GzipProxied(rawValue: 1 << 4)
    public static let noEtag = GzipProxied(rawValue: 1 << 5)
    public static let auth = GzipProxied(rawValue: 1 << 6)
    public static let any = GzipProxied(rawValue: 1 << 7)

    public static let words: [String: GzipProxied] = [
        "off": [], "expired": .expired, "no-cache": .noCache, "no-store": .noStore, "private": .private,
        "no_last_modified": .noLastModified, "no_etag": .noEtag, "auth": .auth, "any": .any,
    ]
}

/// Header names prepared at load for the request path: lowercased ASCII bytes, matched against
/// a raw header name without building a string.
public struct HeaderNames: Sendable, Equatable, CustomStringConvertible {
    /// The names, lowercased.
    public let names: [[UInt8]]

    public init(_ names: [String]) { self.names = names.map { Array($0.lowercased().utf8) } }

    public var isEmpty: Bool { names.isEmpty }
    public var description: String { "\(names.map { String(decoding: $0, as: UTF8.self) })" }

    /// Whether `name` (any case) is one of the names.
    public func contains(_ bytes: UnsafeRawBufferPointer, _ name: Range<Int>) -> Bool {
        search: for n in names where n.count == name.count {
            for i in 0..<n.count {
                let c = bytes[name.lowerBound + i]
                if (c >= 65 && c <= 90 ? c | 0x20 : c) != n[i] { continue search }
            }
            return true
        }
        return false
    }

    /// Whether a lowercased name is one of the names.
    public func contains(lowercased name: StaticString) -> Bool {
        let p = UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount)
        return contains(p, 0..<p.count)
    }
}

extension Compiler {
    /// A keyword list as its bit set; unknown words are refused (`invalid value`), as is `off`
    /// with other words.
    static func keywords<T: OptionSet>(_ d: Directive, _ words: [String: T]) throws -> T where T.Element == T {
        try wordSet(d, allowed: Set(words.keys)).reduce(into: T()) { $0.formUnion(words[$1]!) }
    }
}
