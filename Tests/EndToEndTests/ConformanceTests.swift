import Foundation
import Glibc
import Testing

/// Directives nginx configs use to change what clients see (redirect Locations, error_page
/// recursion, header-name rules, merge_slashes, chunked_transfer_encoding, keepalive_disable,
/// charset, gzip_disable, proxy_cookie_*, log_not_found), through real sockets. Every expected
/// value below was observed from Debian's nginx 1.22.1 with the same configuration (its listen
/// ports written as PORT here).
@Suite(.serialized) struct ConformanceTests {
    final class Site: @unchecked Sendable {
        let root: URL
        let lb: LB
        let backend: Backend
        let headers: Int, ignoreOff: Int, charsetPort: Int, cookies: Int

        deinit { try? FileManager.default.removeItem(at: root) }

        init() throws {
            root = try Harness.tempDirectory()
            let fm = FileManager.default
            for d in ["d", "sub"] { try fm.createDirectory(at: root.appendingPathComponent(d), withIntermediateDirectories: true) }
            try "<p>hello</p>\n".write(to: root.appendingPathComponent("index.html"), atomically: true, encoding: .utf8)
            try "hi\n".write(to: root.appendingPathComponent("d/index.html"), atomically: true, encoding: .utf8)
            try (String(repeating: "x", count: 2000) + "\n").write(to: root.appendingPathComponent("big.txt"), atomically: true, encoding: .utf8)
            backend = try Backend(name: "bk")
            let base = freePortRange(4)
            (headers, ignoreOff, charsetPort, cookies) = (base, base + 1, base + 2, base + 3)
            let r = root.path
            lb = try LB("""
            events {}
            http {
              access_log off;
              types { text/html html; text/plain txt; }
              server {
                listen 127.0.0.1:{port};
                server_name a.test b.test;
                root \(r);
                location /r { return 301 /target; }
                location /abs-off { absolute_redirect off; return 301 /x; }
                location /pir-off { port_in_redirect off; return 301 /x; }
                location /snir { server_name_in_redirect on; return 301 /x; }
                location /d2/ { absolute_redirect off; alias \(r)/; }
                location /h { return 200 "[$http_x_foo][$http_x_b_ar]\\n"; }
                location /ms { return 200 "[$uri]\\n"; }
                location /rec { recursive_error_pages on; error_page 404 /rec2; return 404; }
                location /rec2 { error_page 404 = /rec3; return 404; }
                location /rec3 { return 200 "rec3\\n"; }
                location /norec { error_page 404 /norec2; return 404; }
                location /norec2 { error_page 404 = /rec3; return 404; }
                location /px/ { proxy_pass http://127.0.0.1:{port}/loc/; }
                location /pxoff/ { proxy_pass http://127.0.0.1:{port}/loc/; absolute_redirect off; }
                location /loc/ { return 302 http://127.0.0.1:{port}/loc/next; }
                location /ck/ { proxy_pass http://127.0.0.1:\(cookies)/; proxy_cookie_domain back.test front.test; proxy_cookie_path /one/ /two/; }
                location /chk/ { proxy_pass http://127.0.0.1:\(backend.port)/; proxy_http_version 1.1; chunked_transfer_encoding off; }
                location /chkgz/ { proxy_pass http://127.0.0.1:\(backend.port)/; proxy_http_version 1.1; chunked_transfer_encoding off;
                                   gzip on; gzip_types text/plain; }
                location /post { return 200 "p\\n"; }
                location /post-none { keepalive_disable none; return 200 "p\\n"; }
                location /ksaf { keepalive_disable safari; return 200 "p\\n"; }
                location /lnf/ { log_not_found off; }
              }
              server {
                listen 127.0.0.1:\(headers);
                underscores_in_headers on;
                merge_slashes off;
                location /h { return 200 "[$http_x_foo][$http_x_b_ar]\\n"; }
                location /ms { return 200 "[$uri]\\n"; }
              }
              server {
                listen 127.0.0.1:\(ignoreOff);
                ignore_invalid_headers off;
                location /h { return 200 "[$http_x_foo][$http_x_b_ar][$http_x_c_d]\\n"; }
              }
              server {
                listen 127.0.0.1:\(charsetPort);
                root \(r);
                charset utf-8;
                location /t { return 200 "t\\n"; }
                location /ct/ { charset_types application/json; location /ct/j { default_type application/json; return 200 "{}"; } location /ct/t { return 200 t; } }
                location /cstar/ { charset_types *; default_type image/x-thing; return 200 i; }
                location /px { proxy_pass http://127.0.0.1:\(cookies)/; }
                location /gzd { gzip on; gzip_types text/plain; gzip_disable "curl|foo"; alias \(r)/big.txt; }
                location /gzm { gzip on; gzip_types text/plain; gzip_disable msie6; alias \(r)/big.txt; }
              }
              server {
                listen 127.0.0.1:\(cookies);
                location / {
                  add_header Set-Cookie "a=1; Domain=back.test; Path=/one/x; HttpOnly";
                  add_header Set-Cookie "b=2; path=/one/; domain=.BACK.test";
                  add_header Set-Cookie "c=3;Path=/other;domain=x.back.test";
                  return 200 ok;
                }
                location /html { default_type text/html; return 200 ok; }
                location /cs { default_type "text/html; charset=latin1"; return 200 ok; }
              }
            }
            """, port: freePort())
            for p in [headers, ignoreOff, charsetPort, cookies] { guard waitForPort(p) else { throw HarnessError("lb port \(p) not ready: \(lb.errorLog)") } }
        }
    }

    let site: Site
    init() throws { site = try Site() }
    var port: Int { site.lb.port }

    func ask(_ port: Int, _ request: String) throws -> RawClient.Response {
        let c = try RawClient(port: port)
        try c.send(request)
        return try c.readResponse()
    }

    func get(_ path: String, host: String = "x", port: Int? = nil, headers: [String] = []) throws -> RawClient.Response {
        try ask(port ?? self.port, "GET \(path) HTTP/1.1\r\nHost: \(host)\r\n" + headers.map { $0 + "\r\n" }.joined() + "Connection: close\r\n\r\n")
    }

    @Test func redirectLocationsAreBuiltAsNginx() throws {
        // Host header lowercased, without its port and trailing dot; the listening port.
        #expect(try get("/r", host: "X.Test.:9999").header("Location") == "http://x.test:\(port)/target")
        // No Host: the local address.
        #expect(try ask(port, "GET /r HTTP/1.0\r\n\r\n").header("Location") == "http://127.0.0.1:\(port)/target")
        #expect(try get("/abs-off", host: "x.test:9999").header("Location") == "/x")
        #expect(try get("/pir-off", host: "x.test:9999").header("Location") == "http://x.test/x")
        #expect(try get("/snir", host: "x.test:9999").header("Location") == "http://a.test:\(port)/x")
        // The directory redirect, with the query string, and under absolute_redirect off.
        let dir = try get("/d?a=1", host: "x.test")
        #expect(dir.status == 301 && dir.header("Location") == "http://x.test:\(port)/d/?a=1")
        #expect(try get("/d2/d", host: "x.test").header("Location") == "/d2/d/")
        // A proxied Location rewritten by proxy_redirect default to `/…` is made absolute too.
        #expect(try get("/px/", host: "x.test").header("Location") == "http://x.test:\(port)/px/next")
        #expect(try get("/pxoff/", host: "x.test").header("Location") == "/pxoff/next")
    }

    @Test func recursiveErrorPagesLetTheTargetsErrorPageApply() throws {
        let rec = try get("/rec")
        #expect(rec.status == 200 && rec.text == "rec3\n")
        let once = try get("/norec")
        #expect(once.status == 404 && once.text.contains("404 Not Found"))
    }

    @Test func headerNamesWithUnderscoresOrInvalidBytesAreDroppedByDefault() throws {
        let underscores = ["X_Foo: u", "X-B_ar: v"]
        #expect(try get("/h", headers: underscores).text == "[][]\n")
        #expect(try get("/h", port: site.headers, headers: underscores).text == "[u][v]\n")
        #expect(try get("/h", port: site.ignoreOff, headers: underscores + ["X.C@D: w"]).text == "[u][v][]\n")
        // A name byte outside the token set: dropped, not a 400.
        let odd = try get("/h", headers: ["X{Foo: u"])
        #expect(odd.status == 200 && odd.text == "[][]\n")
    }

    @Test func mergeSlashesOffKeepsThemInTheURI() throws {
        #expect(try get("/ms//a//b/../c").text == "[/ms/a/c]\n")
        #expect(try get("/ms//a//b/../c", port: site.headers).text == "[/ms//a//c]\n")
        #expect(try get("/ms//a//b//../c//", port: site.headers).text == "[/ms//a//b/c//]\n")
    }

    @Test func setCookieDomainAndPathAreRewritten() throws {
        let r = try get("/ck/")
        #expect(r.headers.filter { $0.0 == "Set-Cookie" }.map(\.1) == [
            "a=1; Domain=front.test; Path=/two/x; HttpOnly",
            "b=2; path=/two/; domain=.front.test",
            "c=3;Path=/other;domain=x.back.test",
        ])
    }

    @Test func chunkedTransferEncodingOffSendsUnframedAndCloses() throws {
        let c = try RawClient(port: port)
        try c.send("GET /chk/chunked?parts=3 HTTP/1.1\r\nHost: x\r\n\r\n")
        let r = try c.readResponse()
        #expect(r.status == 200 && r.header("Transfer-Encoding") == nil && r.header("Content-Length") == nil)
        #expect(r.header("Connection") == "close" && r.text == "part0;part1;part2;")
        let g = try RawClient(port: port)
        try g.send("GET /chkgz/gen?ct=text/plain&size=3000 HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n")
        let z = try g.readResponse()
        #expect(z.header("Content-Encoding") == "gzip" && z.header("Transfer-Encoding") == nil && z.header("Connection") == "close")
        #expect(Array(z.body.prefix(2)) == [0x1F, 0x8B])
    }

    @Test func keepaliveDisableClosesForOldMSIEPostsAndSafari() throws {
        let msie6 = "User-Agent: Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)"
        func connection(_ method: String, _ path: String, _ ua: String) throws -> String? {
            try ask(port, "\(method) \(path) HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\(ua)\r\n\r\n").header("Connection")
        }
        #expect(try connection("POST", "/post", msie6) == "close")
        #expect(try connection("POST", "/post", "User-Agent: Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1; SV1)") == "keep-alive")
        #expect(try connection("GET", "/post", msie6) == "keep-alive")
        #expect(try connection("POST", "/post-none", msie6) == "keep-alive")
        let safari = "User-Agent: Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15"
        #expect(try connection("GET", "/ksaf", safari) == "close")
        #expect(try connection("GET", "/post", safari) == "keep-alive")
    }

    @Test func charsetNamesItselfInContentType() throws {
        let p = site.charsetPort
        #expect(try get("/t", port: p).header("Content-Type") == "text/plain; charset=utf-8")
        #expect(try get("/index.html", port: p).header("Content-Type") == "text/html; charset=utf-8")
        #expect(try get("/nope", port: p).header("Content-Type") == "text/html; charset=utf-8")
        // Proxied: added when the upstream names none, left when it names one.
        #expect(try get("/px", port: p).header("Content-Type") == "text/plain; charset=utf-8")
        #expect(try get("/px/html", port: p).header("Content-Type") == "text/html; charset=utf-8")
        #expect(try get("/px/cs", port: p).header("Content-Type") == "text/html; charset=latin1")
        // charset_types: the listed types (text/html always), the defaults no longer; `*` is any.
        #expect(try get("/ct/j", port: p).header("Content-Type") == "application/json; charset=utf-8")
        #expect(try get("/ct/t", port: p).header("Content-Type") == "text/plain")
        #expect(try get("/cstar/", port: p).header("Content-Type") == "image/x-thing; charset=utf-8")
        // Not set: nothing added.
        #expect(try get("/ms").header("Content-Type") == "text/plain")
    }

    @Test func gzipDisableMatchesUserAgentWithoutCase() throws {
        let p = site.charsetPort
        #expect(try get("/gzd", port: p, headers: ["Accept-Encoding: gzip", "User-Agent: Curl/8"]).header("Content-Encoding") == nil)
        #expect(try get("/gzd", port: p, headers: ["Accept-Encoding: gzip", "User-Agent: wget"]).header("Content-Encoding") == "gzip")
        #expect(try get("/gzm", port: p, headers: ["Accept-Encoding: gzip", "User-Agent: Mozilla/4.0 (compatible; MSIE 5.5; Windows 98)"]).header("Content-Encoding") == nil)
    }

    @Test func logNotFoundOffKeepsMissingFilesOutOfTheErrorLog() throws {
        #expect(try get("/lnf/zzz").status == 404)
        #expect(try get("/qqq").status == 404)
        let logged = waitUntil { site.lb.errorLog.contains("qqq\" failed (2: No such file or directory)") }
        #expect(logged)
        #expect(!site.lb.errorLog.contains("zzz"))
    }
}
