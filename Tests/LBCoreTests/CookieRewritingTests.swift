import Testing
import LBConfig
@testable import LBCore

/// `proxy_cookie_domain` / `proxy_cookie_path` with regexes, without sockets: the rules come from
/// a real configuration, the host is the rewrite tests' plain object. Every expected value is what
/// nginx 1.22.1 sent for the same directives and the same upstream Set-Cookie fields (also
/// compared live in Tests/EndToEndTests/DifferentialCookieTests.swift).
@Suite struct CookieRewritingTests {
    func rules(_ directives: String) throws -> (domains: [CookieRewrite], paths: [CookieRewrite]) {
        let table = try ConfigLoader(prefix: "/p").load(text: "http { server { listen 8080; location / {\n\(directives)\n} } }", file: "t.conf").table
        let s = try #require(table.servers[0].locations.find("/")?.settings)
        return (s.proxyCookieDomains ?? [], s.proxyCookiePaths ?? [])
    }

    func rewrite(_ cookies: [String], _ directives: String, host: RewriteTests.Host = RewriteTests.Host("/")) throws -> [String] {
        let r = try rules(directives)
        return cookies.map { CookieRewriting.rewrite($0, domains: r.domains, paths: r.paths, host: host) ?? $0 }
    }

    let typical = """
    proxy_cookie_path ~*^/app(/.*)?$ /$1;
    proxy_cookie_path ~^/Case/(?<rest>.*)$ /c/$rest;
    proxy_cookie_path /lit/ /literal/;
    proxy_cookie_domain ~\\.(?P<sl_domain>[-0-9a-z]+\\.[a-z]+)$ $sl_domain;
    proxy_cookie_domain back.test front.test;
    """

    @Test func regexRulesReplaceTheWholeValueWithTheirCaptures() throws {
        let h = RewriteTests.Host("/")
        #expect(try rewrite([
            "a=1; Path=/app/x; Domain=.www.example.com", // the domain regex sees the leading dot
            "b=2; path=/APP",                            // ~*: no case; an unset group is empty
            "c=3; Path=/Case/z/y",                       // a named capture
            "d=4; Path=/case/z",                         // ~: with case, so no match
            "e=5;Domain=back.test;Path=/lit/a",          // literal rules still work beside them
            "f=6; domain=WWW.Example.COM",               // domain regexes never heed case
            "g=7; Path=/appx",                           // anchored: no match, left as it came
        ], typical, host: h) == [
            "a=1; Path=//x; Domain=example.com",
            "b=2; path=/",
            "c=3; Path=/c/z/y",
            "d=4; Path=/case/z",
            "e=5; Domain=front.test; Path=/literal/a",
            "f=6; domain=Example.COM",
            "g=7; Path=/appx",
        ])
        // The last match's captures stay the request's, as nginx's add_header $1 then shows.
        #expect(String(decoding: h.rewriteState.capture(1), as: UTF8.self) == "Example.COM")
        #expect(h.rewriteState.vars["sl_domain"] == Array("Example.COM".utf8))
    }

    @Test func theFirstMatchingRuleWinsAndEveryAttributeIsTried() throws {
        let directives = """
        proxy_cookie_path ~^/nocap$ /x$1y;
        proxy_cookie_path ~^/first(.*) /1st$1;
        proxy_cookie_path ~^/fir(.*) /2nd$1;
        proxy_cookie_path ~^/(?<a>[a-z]+)/(?<b>[a-z]+)$ /$b/$a$uri;
        proxy_cookie_domain ~^\\.(.+)$ dot.$1;
        proxy_cookie_domain ~(sub)\\.(example)\\.org$ .$2.$1;
        """
        #expect(try rewrite([
            "a=1; Path=/nocap",                                          // no groups: $1 is empty
            "b=2;Path=/firstx;Domain=.a.b;Domain=SUB.example.ORG",       // each Domain on its own
            "flag; Path=/first",                                         // no NAME=VALUE first: untouched
            "c=3; Path=/ab/cd",                                          // variables beside captures ($host live)
            "d=4; Path=/zz; Domain=x.y",                                 // nothing matches
            "x=1;path=/fir;  domain = .q.r  ",                           // trimmed, then rewritten
        ], directives, host: RewriteTests.Host("/u")) == [
            "a=1; Path=/xy",
            "b=2; Path=/1stx; Domain=dot.a.b; Domain=.example.SUB",
            "flag; Path=/first",
            "c=3; Path=/cd/ab/u",
            "d=4; Path=/zz; Domain=x.y",
            "x=1; path=/2nd; domain=dot.q.r",
        ])
    }

    /// A cookie no rule changes is not rebuilt (its spacing stays); a match rebuilds it even when
    /// the new value is the old one, as nginx does.
    @Test func onlyAMatchRebuildsTheField() throws {
        let r = try rules("proxy_cookie_path ~^/same$ /same;")
        #expect(CookieRewriting.rewrite("a=1;Path=/other", domains: r.domains, paths: r.paths, host: RewriteTests.Host("/")) == nil)
        #expect(CookieRewriting.rewrite("a=1;Path=/same", domains: r.domains, paths: r.paths, host: RewriteTests.Host("/")) == "a=1; Path=/same")
    }
}
