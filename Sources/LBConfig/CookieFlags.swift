/// One `proxy_cookie_flags COOKIE FLAG…` rule: the cookie's name (variables allowed, compared
/// without case) or, with `~`, a regex (always without case, as nginx compiles it) whose match
/// sets the request's captures; the flags are templates read at each response (nginx ignores a
/// word that is not a flag).
public struct CookieFlagsRule: Sendable {
    public var cookie: Template
    public var regex: PCRE? = nil
    public var flags: [Template]
}

extension Compiler {
    static let cookieFlagsDirectives: [DirectiveSpec] = [
        // `off | COOKIE FLAG…` (nginx ≥ 1.19.3): rules in order, the first whose cookie matches
        // applies; `off` and rules at one level exclude each other (`is duplicate`).
        DirectiveSpec("proxy_cookie_flags", .hsl, .between(1, 4), repeatable: true, default: "off") { c, d in
            let current = c.settings.s.proxyCookieFlags
            if let current, current.isEmpty { throw ConfigError("\"\(d.name)\" directive is duplicate", at: d.location) }
            if d.args.count == 1 {
                guard d.args[0].text == "off" else { throw ConfigError("invalid parameter \"\(d.args[0].text)\"", at: d.args[0].location) }
                if current != nil { throw ConfigError("\"\(d.name)\" directive is duplicate", at: d.location) }
                c.settings.s.proxyCookieFlags = []
                return
            }
            var rule: CookieFlagsRule
            let cookie = d.args[0]
            if cookie.text.hasPrefix("~") {
                let re = try compileRegex(String(cookie.text.dropFirst()), caseless: true, at: cookie.location)
                c.defineNamedCaptures(re)
                rule = CookieFlagsRule(cookie: Template(literal: cookie.text), regex: re, flags: [])
            } else {
                rule = CookieFlagsRule(cookie: try c.template(cookie), flags: [])
            }
            rule.flags = try d.args.dropFirst().map { try c.template($0) }
            c.settings.s.proxyCookieFlags = (current ?? []) + [rule]
        },
    ]
}
