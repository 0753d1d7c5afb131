import Testing
@testable import LBHTTP

/// The pure rules behind absolute_redirect, charset, proxy_cookie_*, keepalive_disable /
/// gzip_disable msie6, merge_slashes and the header-name rules. Expected values were observed
/// with Debian's nginx 1.22.1 (or read from its source where noted).
@Suite struct HeaderRewriteTests {
    @Test func absoluteLocationAddsHostAndListeningPortUnless80() {
        func loc(_ l: String, _ host: String, _ port: Int, _ pir: Bool) -> String {
            String(decoding: HeaderRewrites.absoluteLocation(Array(l.utf8), host: Array(host.utf8), port: port, portInRedirect: pir), as: UTF8.self)
        }
        #expect(loc("/target", "x.test", 18081, true) == "http://x.test:18081/target")
        #expect(loc("/target", "x.test", 80, true) == "http://x.test/target")
        #expect(loc("/x", "x.test", 18081, false) == "http://x.test/x")
    }

    @Test(arguments: [("X.Test.:9999", "x.test"), ("[::1]:9999", "[::1]"), ("example.org", "example.org"), ("A.B..", "a.b")])
    func redirectHostIsTheHostHeaderLowercasedWithoutPort(_ header: String, _ host: String) {
        #expect(String(decoding: HeaderRewrites.hostWithoutPort(Array(header.utf8)), as: UTF8.self) == host)
    }

    @Test func charsetIsAddedToCharsetTypesThatNameNone() {
        #expect(HeaderRewrites.contentTypeWithCharset("text/html", charset: "utf-8") == "text/html; charset=utf-8")
        #expect(HeaderRewrites.contentTypeWithCharset("text/plain", charset: "utf-8") == "text/plain; charset=utf-8")
        #expect(HeaderRewrites.contentTypeWithCharset("application/javascript", charset: "koi8-r") == "application/javascript; charset=koi8-r")
        // charset_types: text/html always, the listed types, `*` for any; the defaults no longer.
        #expect(HeaderRewrites.contentTypeWithCharset("text/html", charset: "utf-8", types: ["application/json"]) == "text/html; charset=utf-8")
        #expect(HeaderRewrites.contentTypeWithCharset("application/json", charset: "utf-8", types: ["application/json"]) == "application/json; charset=utf-8")
        #expect(HeaderRewrites.contentTypeWithCharset("text/plain", charset: "utf-8", types: ["application/json"]) == nil)
        #expect(HeaderRewrites.contentTypeWithCharset("image/png", charset: "utf-8", types: ["*"]) == "image/png; charset=utf-8")
        // Already named (override_charset off): unchanged. Not a charset type: unchanged.
        #expect(HeaderRewrites.contentTypeWithCharset("text/html; charset=latin1", charset: "utf-8") == nil)
        #expect(HeaderRewrites.contentTypeWithCharset("image/png", charset: "utf-8") == nil)
        #expect(HeaderRewrites.contentTypeWithCharset("application/json", charset: "utf-8") == nil)
    }

    /// nginx 1.22.1 with `proxy_cookie_domain back.test front.test; proxy_cookie_path /one/ /two/;`.
    @Test func setCookieDomainAndPathAreRewrittenAsNginx() {
        let d = [(from: "back.test", to: "front.test")], p = [(from: "/one/", to: "/two/")]
        #expect(HeaderRewrites.rewriteSetCookie("a=1; Domain=back.test; Path=/one/x; HttpOnly", domains: d, paths: p)
            == "a=1; Domain=front.test; Path=/two/x; HttpOnly")
        // A leading dot is kept, the domain compared without case.
        #expect(HeaderRewrites.rewriteSetCookie("b=2; path=/one/; domain=.BACK.test", domains: d, paths: p) == "b=2; path=/two/; domain=.front.test")
        // Nothing matches: the header is left exactly as it came.
        #expect(HeaderRewrites.rewriteSetCookie("c=3;Path=/other;domain=x.back.test", domains: d, paths: p) == nil)
        // Something matches: attributes are joined again with "; ".
        #expect(HeaderRewrites.rewriteSetCookie("c=3;Path=/one/;domain=x.back.test", domains: d, paths: p) == "c=3; Path=/two/; domain=x.back.test")
        // Paths compare with case.
        #expect(HeaderRewrites.rewriteSetCookie("c=3; Path=/ONE/", domains: [], paths: p) == nil)
        // No name=value first: left alone.
        #expect(HeaderRewrites.rewriteSetCookie("flag; Path=/one/", domains: [], paths: p) == nil)
    }

    /// User-Agent classes as ngx_http_user_agent derives them.
    @Test(arguments: [
        ("Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)", true, false),
        ("Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1; SV1)", false, false),
        ("Mozilla/4.0 (compatible; MSIE 5.5; Windows 98)", true, false),
        ("Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 6.0)", false, false),
        ("Opera/9.0 (compatible; MSIE 6.0; Windows NT 5.1)", false, false),
        ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15", false, true),
        ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36", false, false),
        ("curl/8.0", false, false),
    ])
    func userAgentClassesAsNginx(_ ua: String, _ msie6: Bool, _ safari: Bool) {
        let c = UserAgentClass(Array(ua.utf8))
        #expect(c.msie6 == msie6 && c.safari == safari)
    }

    /// `[$uri]` answered by nginx 1.22.1 with merge_slashes on and off.
    @Test(arguments: [
        ("/ms//a//b/../c", true, "/ms/a/c"),
        ("/ms//a//b/../c", false, "/ms//a//c"),
        ("/ms//a//b//../c//", false, "/ms//a//b/c//"),
        ("/ms/a//", false, "/ms/a//"),
        ("/a//b", false, "/a//b"),
    ])
    func mergeSlashesOffKeepsEmptySegments(_ path: String, _ merge: Bool, _ expected: String) {
        var out: [UInt8] = []
        let ok = Array(path.utf8).withUnsafeBytes { URI.normalize($0, into: &out, mergeSlashes: merge) }
        #expect(ok && String(decoding: out, as: UTF8.self) == expected)
    }

    @Test func invalidHeaderNamesAreDroppedOrKeptAsNginx() throws {
        let text = "GET / HTTP/1.1\r\nHost: x\r\nX_Foo: u\r\nX.C@D: w\r\nX{Y: z\r\nX-Ok: v\r\n\r\n"
        func names(_ rules: HeaderNameRules) throws -> [String] {
            let all = Array(text.utf8)
            let h = try all.withUnsafeBytes { b in try HeadParser.request(b, start: 0, end: b.count, names: rules) }
            return h.headers.map { String(decoding: all[$0.name], as: UTF8.self) }
        }
        #expect(try names(HeaderNameRules()) == ["Host", "X-Ok"])
        #expect(try names(HeaderNameRules(underscores: true)) == ["Host", "X_Foo", "X-Ok"])
        #expect(try names(HeaderNameRules(ignoreInvalid: false)) == ["Host", "X_Foo", "X.C@D", "X{Y", "X-Ok"])
        // A space or control byte in a name is still a 400.
        let bad = Array("GET / HTTP/1.1\r\nHost: x\r\nX Y: z\r\n\r\n".utf8)
        #expect(throws: HTTPError.self) { try bad.withUnsafeBytes { b in try HeadParser.request(b, start: 0, end: b.count) } }
    }
}
