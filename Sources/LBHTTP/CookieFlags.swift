/// The flags `proxy_cookie_flags` sets or removes on an upstream Set-Cookie (nginx ≥ 1.19.3's
/// `ngx_http_proxy_cookie_flags_masks`): a set of words, read without case, that nginx ORs together.
public struct CookieFlagSet: OptionSet, Sendable, Hashable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let secure = CookieFlagSet(rawValue: 1 << 0)
    public static let noSecure = CookieFlagSet(rawValue: 1 << 1)
    public static let httpOnly = CookieFlagSet(rawValue: 1 << 2)
    public static let noHttpOnly = CookieFlagSet(rawValue: 1 << 3)
    public static let sameSiteStrict = CookieFlagSet(rawValue: 1 << 4)
    public static let sameSiteLax = CookieFlagSet(rawValue: 1 << 5)
    public static let sameSiteNone = CookieFlagSet(rawValue: 1 << 6)
    public static let noSameSite = CookieFlagSet(rawValue: 1 << 7)

    static let words: [(String, CookieFlagSet)] = [
        ("secure", .secure), ("nosecure", .noSecure), ("httponly", .httpOnly), ("nohttponly", .noHttpOnly),
        ("samesite=strict", .sameSiteStrict), ("samesite=lax", .sameSiteLax), ("samesite=none", .sameSiteNone),
        ("nosamesite", .noSameSite),
    ]

    static let sameSites: [(CookieFlagSet, String, String)] = [
        (.sameSiteStrict, "strict", "Strict"), (.sameSiteLax, "lax", "Lax"), (.sameSiteNone, "none", "None"),
    ]

    /// One word's flag; nil for anything else (nginx ignores it, logging at debug level only).
    public static func parse(_ word: some StringProtocol) -> CookieFlagSet? {
        let w = word.lowercased()
        return words.first { $0.0 == w }?.1
    }

    /// nginx's `ngx_http_proxy_edit_cookie_flags` on a cookie's attributes (the first is the
    /// cookie itself): the first Secure/HttpOnly attribute satisfies `secure`/`httponly`, and
    /// `nosecure`/`nohttponly` remove them all; the first SameSite attribute is set to the
    /// wanted value (rewritten as `SameSite=Strict|Lax|None` unless it already says so without
    /// case), `nosamesite` removes them all; flags still wanted are appended in the order
    /// Secure, HttpOnly, SameSite. Removed attributes are nil.
    public func edit(_ attrs: inout [(key: Substring, value: Substring?)?]) {
        var f = self
        for i in attrs.indices.dropFirst() {
            guard let a = attrs[i] else { continue }
            switch a.key.lowercased() {
            case "secure":
                if f.contains(.secure) { f.remove(.secure) } else if f.contains(.noSecure) { attrs[i] = nil }
            case "httponly":
                if f.contains(.httpOnly) { f.remove(.httpOnly) } else if f.contains(.noHttpOnly) { attrs[i] = nil }
            case "samesite":
                if let (flag, word, shown) = CookieFlagSet.sameSites.first(where: { f.contains($0.0) }) {
                    f.remove(flag)
                    if (a.value ?? "").lowercased() != word { attrs[i] = ("SameSite", Substring(shown)) }
                } else if f.contains(.noSameSite) {
                    attrs[i] = nil
                }
            default: continue
            }
        }
        if f.contains(.secure) { attrs.append(("Secure", nil)) }
        if f.contains(.httpOnly) { attrs.append(("HttpOnly", nil)) }
        if f.contains(.sameSiteStrict) {
            attrs.append(("SameSite", "Strict"))
        } else if f.contains(.sameSiteLax) {
            attrs.append(("SameSite", "Lax"))
        } else if f.contains(.sameSiteNone) {
            attrs.append(("SameSite", "None"))
        }
    }
}
