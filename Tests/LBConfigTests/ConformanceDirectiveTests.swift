import Testing
@testable import LBConfig

/// Directives that change what users see either take effect or are refused at load with a
/// reason; their defaults (what stock configs write) still load.
@Suite struct ConformanceDirectiveTests {
    @Test(arguments: [
        ("limit_rate $nosuch;", "unknown \"nosuch\" variable in t.conf:4"),
        ("mirror /m;\nmirror off;", "\"mirror\" directive is duplicate in t.conf:5"),
        ("mirror off;\nmirror /m;", "\"mirror\" directive is duplicate in t.conf:5"),
        ("mirror off;\nmirror off;", "\"mirror\" directive is duplicate in t.conf:5"),
        ("mirror_request_body maybe;", "invalid value \"maybe\" in \"mirror_request_body\" directive, it must be \"on\" or \"off\" in t.conf:4"),
        ("source_charset koi8-r;", "\"source_charset\" is not supported by lb: it converts no charsets (\"charset\" only names one in Content-Type) in t.conf:4"),
        ("gzip_http_version 2;", "invalid value \"2\" in \"gzip_http_version\" directive in t.conf:4"),
        ("proxy_cookie_path off;\nproxy_cookie_path /a /b;", "\"proxy_cookie_path\" directive is duplicate in t.conf:5"),
        ("proxy_cookie_path on;", "invalid parameter \"on\" in t.conf:4"),
        ("keepalive_disable opera;", "invalid value \"opera\" in t.conf:4"),
        ("absolute_redirect on;\nabsolute_redirect off;", "\"absolute_redirect\" directive is duplicate in t.conf:5"),
    ])
    func refusedWithAReasonThatPointsAtTheLine(_ directive: String, _ expected: String) {
        #expect(loadError(server(directive)) == expected)
    }

    @Test func defaultsOfStockConfigsStillLoad() throws {
        _ = try load(server("""
        limit_rate 0; gzip_http_version 1.1; keepalive_disable msie6; charset off; satisfy all;
        absolute_redirect on; port_in_redirect on; server_name_in_redirect off; merge_slashes on;
        chunked_transfer_encoding on; underscores_in_headers off; ignore_invalid_headers on;
        log_not_found on; recursive_error_pages off; proxy_cookie_domain off; proxy_cookie_path off;
        """))
    }

    /// `mirror` URIs of one level replace the inherited list (several in order); `off` below
    /// a level that mirrors turns them off, as nginx merges them.
    @Test func mirrorsAreListedPerLevelAndInherited() throws {
        let t = try load("""
        http {
         mirror /all;
         server {
          listen 8080;
          mirror_request_body off;
          location /a { }
          location /b { mirror /one; mirror /two; }
          location /c { mirror off; }
         }
        }
        """)
        let s = t.server(for: 0, host: "localhost")
        let a = try #require(s.locations.find("/a")), b = try #require(s.locations.find("/b")), c = try #require(s.locations.find("/c"))
        #expect(a.settings.mirrors == [Array("/all".utf8)] && a.settings.mirrorRequestBody == false)
        #expect(b.settings.mirrors == [Array("/one".utf8), Array("/two".utf8)])
        #expect(c.settings.mirrors == [])
    }

    @Test func settingsAreCompiledAndInherited() throws {
        let t = try load("""
        http {
         charset utf-8;
         absolute_redirect off;
         gzip_disable msie6 "curl|wget";
         proxy_cookie_domain .back.test .front.test;
         server {
          listen 8080;
          underscores_in_headers on;
          merge_slashes off;
          keepalive_disable safari;
          location /a { port_in_redirect off; recursive_error_pages on; charset off; chunked_transfer_encoding off; }
         }
        }
        """)
        let s = t.server(for: 0, host: "localhost")
        #expect(s.settings.underscoresInHeaders == true && s.settings.mergeSlashes == false)
        let a = try #require(s.locations.find("/a"))
        #expect(a.settings.absoluteRedirect == false && a.settings.portInRedirect == false)
        #expect(a.settings.recursiveErrorPages == true && a.settings.chunkedTransferEncoding == false)
        #expect({ if case .some(nil) = a.settings.charset { true } else { false } }())
        #expect({ if case .some(.name("utf-8")) = s.settings.charset { true } else { false } }())
        #expect(a.settings.resolved.keepaliveDisable == .safari)
        let g = try #require(a.settings.gzipDisable)
        #expect(g.msie6 && g.regexes.count == 1 && g.regexes[0].matches("Curl/8") && !g.regexes[0].matches("Mozilla"))
        let cookie = try #require(a.settings.proxyCookieDomains?.first)
        #expect(cookie.from.description == "back.test" && cookie.to.description == "front.test")
    }
}
