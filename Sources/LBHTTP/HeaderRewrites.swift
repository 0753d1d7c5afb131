/// Pure header rules nginx applies on the way out (header filter, charset filter, proxy cookie
/// rewrites) and the User-Agent classes its core module keys some behaviour on.

/// The browser classes nginx derives from User-Agent (`ngx_http_user_agent`), for
/// `keepalive_disable` and `gzip_disable msie6`.
public struct UserAgentClass: Sendable, Equatable {
    /// MSIE 4, 5, or 6 without SV1 (and not Opera pretending to be it).
    public var msie6 = false
    /// Safari on Mac OS X (not MSIE, Opera, Gecko or Chrome).
    public var safari = false

    public init(_ ua: some Collection<UInt8>) {
        let b = Array(ua)
        var msie = false
        if let m = UserAgentClass.find(b, "MSIE ", from: 0), m + 7 < b.count {
            msie = true
            if b[m + 6] == UInt8(ascii: ".") {
                switch b[m + 5] {
                case UInt8(ascii: "4"), UInt8(ascii: "5"): msie6 = true
                case UInt8(ascii: "6"): msie6 = UserAgentClass.find(b, "SV1", from: m + 8) == nil
                default: break
                }
            }
        }
        let opera = UserAgentClass.find(b, "Opera", from: 0) != nil
        if opera { msie = false; msie6 = false }
        if !msie && !opera && UserAgentClass.find(b, "Gecko/", from: 0) == nil && UserAgentClass.find(b, "Chrome/", from: 0) == nil {
            safari = UserAgentClass.find(b, "Safari/", from: 0) != nil && UserAgentClass.find(b, "Mac OS X", from: 0) != nil
        }
    }

    static func find(_ b: [UInt8], _ needle: String, from: Int) -> Int? {
        let n = Array(needle.utf8)
        guard from <= b.count, b.count - from >= n.count else { return nil }
        var i = from
        while i + n.count <= b.count {
            if b[i] == n[0] && Array(b[i..<(i + n.count)]) == n { return i }
            i += 1
        }
        return nil
    }
}

public enum HeaderRewrites {
    /// nginx's header filter for a Location that starts with `/` (absolute_redirect on):
    /// `http://HOST[:PORT]PATH`, the port left out when it is 80 or `port_in_redirect` is off.
    /// - Parameter https: the request came over TLS (`https://`, and 443 is the port left out).
    public static func absoluteLocation(_ location: [UInt8], host: [UInt8], port: Int, portInRedirect: Bool, https: Bool = false) -> [UInt8] {
        var out = Array((https ? "https://" : "http://").utf8) + host
        if portInRedirect && port != (https ? 443 : 80) { out += Array(":\(port)".utf8) }
        return out + location
    }

    /// The host part of a Host header as nginx keeps it (`r->headers_in.server`): lowercased,
    /// without the port and trailing dots.
    public static func hostWithoutPort(_ h: some Collection<UInt8>) -> [UInt8] {
        var b = Array(h)
        if b.first == UInt8(ascii: "[") {
            if let close = b.firstIndex(of: UInt8(ascii: "]")) { b = Array(b[...close]) }
        } else if let colon = b.firstIndex(of: UInt8(ascii: ":")) {
            b = Array(b[..<colon])
        }
        while b.last == UInt8(ascii: ".") { b.removeLast() }
        return b.map { ASCII.lower($0) }
    }

    /// The types `charset` applies to by default (nginx's `charset_types`).
    public static let charsetTypes: Set<String> = ["text/html", "text/xml", "text/plain", "text/vnd.wap.wml",
                                                   "application/javascript", "application/rss+xml"]

    /// nginx's charset filter without conversion: `TYPE; charset=NAME` when the type is one of
    /// `charsetTypes` and names no charset yet; nil leaves the Content-Type as it is.
    /// `types` is `charset_types` when configured (text/html always counts, `*` is any type).
    public static func contentTypeWithCharset(_ contentType: String, charset: String, types: Set<String>? = nil) -> String? {
        let parts = contentType.split(separator: ";", omittingEmptySubsequences: false)
        let bare = parts[0].trimmingSpaces.lowercased()
        if let types {
            guard bare == "text/html" || types.contains(bare) || types.contains("*") else { return nil }
        } else {
            guard charsetTypes.contains(bare) else { return nil }
        }
        for p in parts.dropFirst() where p.trimmingSpaces.lowercased().hasPrefix("charset=") { return nil }
        return contentType + "; charset=" + charset
    }

    /// The Set-Cookie attributes `proxy_cookie_domain` and `proxy_cookie_path` rewrite.
    public enum CookieAttribute: Sendable { case domain, path }

    /// nginx's `ngx_http_proxy_rewrite_cookie` around its rules: the cookie is split at `;` into
    /// attributes trimmed of spaces; every Domain and Path attribute with a value (names without
    /// case) goes to `rewrite`, which returns the new value or nil to keep it. Nothing rewritten:
    /// nil (the header goes out unchanged); else the attributes joined again with `; `. A cookie
    /// whose first part has no `=` is left alone.
    /// `flags` (`proxy_cookie_flags`, after the attribute rules, as nginx): given the cookie's
    /// name, the flags to apply; a non-empty set edits the attributes (`CookieFlagSet.edit`) and
    /// the cookie is joined again even when they already were as wanted, as nginx does.
    public static func rewriteSetCookie(_ value: String, rewrite: (CookieAttribute, Substring) -> String?,
                                        flags: ((Substring) -> CookieFlagSet)? = nil) -> String? {
        var attrs: [(key: Substring, value: Substring?)] = value.split(separator: ";", omittingEmptySubsequences: false).map { a in
            if let eq = a.firstIndex(of: "=") {
                return (a[..<eq].trimmingSpaces, a[a.index(after: eq)...].trimmingSpaces)
            }
            return (a.trimmingSpaces, nil)
        }
        guard attrs.first?.value != nil else { return nil }
        var changed = false
        for i in attrs.indices.dropFirst() {
            guard let v = attrs[i].value else { continue }
            let key = attrs[i].key.lowercased()
            let attribute: CookieAttribute
            switch key {
            case "domain": attribute = .domain
            case "path": attribute = .path
            default: continue
            }
            if let new = rewrite(attribute, v) {
                attrs[i].value = Substring(new)
                changed = true
            }
        }
        var edited: [(key: Substring, value: Substring?)?] = attrs
        if let flags, case let f = flags(attrs[0].key), !f.isEmpty {
            f.edit(&edited)
            changed = true
        }
        guard changed else { return nil }
        var out = ""
        for (i, a) in edited.enumerated() {
            guard let a else { continue }
            if i > 0 { out += "; " }
            out += a.key
            if let v = a.value { out += "=" + v }
        }
        return out
    }

    /// A literal `proxy_cookie_domain FROM TO` on one Domain value (nginx's domain handler): the
    /// value without its leading dot equals FROM, compared without ASCII case; the dot is kept.
    public static func cookieDomain(_ value: Substring, from: [UInt8], to: [UInt8]) -> String? {
        var v = Array(value.utf8)
        let dot = v.first == UInt8(ascii: ".")
        if dot { v.removeFirst() }
        guard v.count == from.count, zip(v, from).allSatisfy({ ASCII.lower($0) == ASCII.lower($1) }) else { return nil }
        return String(decoding: (dot ? [UInt8(ascii: ".")] : []) + to, as: UTF8.self)
    }

    /// A literal `proxy_cookie_path FROM TO` on one Path value (nginx's complex handler): FROM is
    /// a case-sensitive prefix, replaced by TO.
    public static func cookiePath(_ value: Substring, from: [UInt8], to: [UInt8]) -> String? {
        let v = Array(value.utf8)
        guard v.count >= from.count, v[..<from.count].elementsEqual(from) else { return nil }
        return String(decoding: to + v[from.count...], as: UTF8.self)
    }

    /// `rewriteSetCookie` with literal rules (the first that matches an attribute wins).
    public static func rewriteSetCookie(_ value: String, domains: [(from: String, to: String)], paths: [(from: String, to: String)]) -> String? {
        rewriteSetCookie(value) { attribute, v in
            switch attribute {
            case .domain: domains.lazy.compactMap { cookieDomain(v, from: Array($0.from.utf8), to: Array($0.to.utf8)) }.first
            case .path: paths.lazy.compactMap { cookiePath(v, from: Array($0.from.utf8), to: Array($0.to.utf8)) }.first
            }
        }
    }
}

extension Substring {
    /// Without leading and trailing spaces (nginx trims spaces only, not tabs, in these places).
    var trimmingSpaces: Substring {
        var s = self
        while s.first == " " { s.removeFirst() }
        while s.last == " " { s.removeLast() }
        return s
    }
}

/// An upstream's `X-Accel-Redirect` value as nginx reads it (`ngx_http_parse_unsafe_uri`).
public enum AccelRedirect {
    /// The URI and arguments of a value that is not `@name`: split at the first `?`, the URI
    /// `%`-decoded, and nil (nginx: "unsafe URI … was detected", 404) when it is empty, starts with
    /// `?`, holds a NUL, or has a `..` segment at its start or after a `/` — before or after the
    /// decoding. Arguments are kept as written.
    public static func target(_ value: [UInt8]) -> (uri: [UInt8], args: [UInt8])? {
        guard let first = value.first, first != UInt8(ascii: "?") else { return nil }
        var uri = value, args: [UInt8] = []
        if let q = value.firstIndex(of: UInt8(ascii: "?")) {
            uri = Array(value[..<q])
            args = Array(value[(q + 1)...])
        }
        guard isSafe(uri) else { return nil }
        if uri.contains(UInt8(ascii: "%")) {
            uri = unescape(uri)
            guard !uri.isEmpty, isSafe(uri) else { return nil }
        }
        return (uri, args)
    }

    /// No NUL, and no `..` segment at the start or after a `/` (`../x`, `/../`, a final `/..`).
    static func isSafe(_ u: [UInt8]) -> Bool {
        let dot = UInt8(ascii: "."), slash = UInt8(ascii: "/")
        if u.count >= 2, u[0] == dot, u[1] == dot, u.count == 2 || u[2] == slash { return false }
        var i = 0
        while i < u.count {
            if u[i] == 0 { return false }
            if u[i] == slash, u.count - i > 2, u[i + 1] == dot, u[i + 2] == dot, u.count - i == 3 || u[i + 3] == slash { return false }
            i += 1
        }
        return true
    }

    /// `ngx_unescape_uri` with no type flags (`URI.unescape`).
    static func unescape(_ s: [UInt8]) -> [UInt8] { URI.unescape(s, redirect: false) }
}
