import LBConfig
import LBHTTP

/// `proxy_cookie_domain` and `proxy_cookie_path` on an upstream Set-Cookie value, as nginx's
/// `ngx_http_proxy_rewrite_cookie_value`: for each Domain or Path attribute the rules are tried in
/// order and the first that matches rewrites it (`cookieRewrite` in LBConfig says how a literal
/// and a regex rule match). A regex match's captures become the request's, as nginx's
/// `ngx_http_regex_exec` leaves them: `$1` and named captures in the replacement (and in what is
/// evaluated after it) are this match's. Generic over the host so that it runs without sockets.
enum CookieRewriting {
    /// The rewritten Set-Cookie value; nil when no rule matched (the header is left as it came).
    static func rewrite<H: RewriteHost>(_ value: String, domains: [CookieRewrite], paths: [CookieRewrite],
                                        flags: [CookieFlagsRule] = [], host: H) -> String? {
        HeaderRewrites.rewriteSetCookie(value, rewrite: { attribute, v in
            switch attribute {
            case .domain: apply(domains, to: v, domain: true, host: host)
            case .path: apply(paths, to: v, domain: false, host: host)
            }
        }, flags: flags.isEmpty ? nil : { name in self.flags(flags, cookie: name, host: host) })
    }

    /// `proxy_cookie_flags`, as nginx's `ngx_http_proxy_rewrite_cookie_flags`: the first rule
    /// whose cookie matches the name (a regex match sets the request's captures; a name compares
    /// without case) gives the flags, its words evaluated now; none: no flags.
    static func flags<H: RewriteHost>(_ rules: [CookieFlagsRule], cookie name: Substring, host: H) -> CookieFlagSet {
        let subject = Array(name.utf8)
        for rule in rules {
            if let re = rule.regex {
                guard let caps = subject.withUnsafeBytes({ re.captures($0) }) else { continue }
                host.rewriteState.setCaptures(subject, caps, names: re.names)
            } else {
                let want = host.evaluateTemplate(rule.cookie)
                guard want.count == subject.count, zip(want, subject).allSatisfy({ ASCII.lower($0) == ASCII.lower($1) }) else { continue }
            }
            var f: CookieFlagSet = []
            for t in rule.flags {
                if let flag = CookieFlagSet.parse(String(decoding: host.evaluateTemplate(t), as: UTF8.self)) { f.insert(flag) }
            }
            return f
        }
        return []
    }

    /// The first matching rule's new value for one attribute value, or nil.
    static func apply<H: RewriteHost>(_ rules: [CookieRewrite], to value: Substring, domain: Bool, host: H) -> String? {
        for rule in rules {
            if let re = rule.regex {
                let subject = Array(value.utf8)
                guard let caps = subject.withUnsafeBytes({ re.captures($0) }) else { continue }
                host.rewriteState.setCaptures(subject, caps, names: re.names)
                return String(decoding: host.evaluateTemplate(rule.to), as: UTF8.self)
            }
            // The replacement is evaluated only for a rule that matches, as nginx does.
            let from = host.evaluateTemplate(rule.from)
            let literal = domain ? HeaderRewrites.cookieDomain : HeaderRewrites.cookiePath
            guard literal(value, from, []) != nil else { continue }
            return literal(value, from, host.evaluateTemplate(rule.to))
        }
        return nil
    }
}
