import Foundation
import Testing

/// The response-head stage (`ResponseHeadStage`) against Debian's nginx, with real requests: one
/// set of filters for every kind of response — `return`, error pages, static files, proxied and
/// cached responses — with gzip, `Vary`, conditional requests, ranges and HEAD answered as nginx
/// answers them. Bodies are compared decoded (`gzip -dc`): lb compresses a whole body in memory
/// and sends its length where nginx streams it chunked (docs/configuration.md, Differences).
@Suite(.serialized, .enabled(if: Differential.available))
struct DifferentialHeadStageTests {
    typealias R = Differential.Request

    static let page: String = "<html>" + String(repeating: "hello world ", count: 50) + "</html>\n"

    @Test func everyKindOfResponseThroughTheSameFilters() throws {
        let d = try Differential("""
        proxy_cache_path {root}/../cache keys_zone=hs:1m;
        server {
            listen 127.0.0.1:{port};
            root {root};
            types { text/html html; text/plain txt; image/png png; }
            gzip on;
            gzip_vary on;
            gzip_min_length 1;
            gzip_types text/plain;
            location = /r { default_type text/html; return 200 "<html>hello hello hello hello hello hello hello</html>"; }
            location = /e { return 404; }
            location = /nogzip { gzip off; default_type text/html; return 200 "<html>plain plain plain</html>"; }
            location /up/ { proxy_pass http://{backend}/; }
            location /cached/ { proxy_pass http://{backend}/; proxy_cache hs; proxy_cache_valid 200 1m; }
        }
        """, files: ["index.html": Self.page, "t.txt": Self.page, "img.png": Self.page], backend: true)
        let gz = "Accept-Encoding: gzip"
        var cases: [R] = []
        for t in ["/r", "/e", "/nogzip", "/index.html", "/t.txt", "/img.png", "/up/a", "/cached/a", "/cached/a"] {
            cases.append(R(target: t))
            cases.append(R(target: t, headers: [gz]))
            cases.append(R(target: t, headers: [gz], method: "HEAD"))
        }
        cases += [
            // gzip runs before the range filter: a client that takes gzip gets the whole body compressed.
            R(target: "/index.html", headers: [gz, "Range: bytes=0-9"]),
            R(target: "/index.html", headers: ["Range: bytes=0-9"], expect: 206),
            R(target: "/index.html", headers: ["Range: bytes=0-1,5-6"], expect: 206),
            R(target: "/index.html", headers: ["Range: bytes=9000-"], expect: 416),
            R(target: "/img.png", headers: [gz, "Range: bytes=3-5"], expect: 206),
            // The not-modified filter runs first: a 304 has neither gzip nor Vary.
            R(target: "/index.html", headers: [gz, "If-Modified-Since: Fri, 01 Jan 2100 00:00:00 GMT"]),
            R(target: "/index.html", headers: [gz, "If-Match: \"nope\""], expect: 412),
            R(target: "/e", headers: [gz, "If-None-Match: *"], expect: 404),
        ]
        let fields = ["Content-Encoding", "Vary", "Accept-Ranges", "Content-Range", "Transfer-Encoding", "Connection"]
        for r in cases {
            let n = try d.fetch(r, port: d.nginxPort), l = try d.fetch(r, port: d.lb.port)
            #expect(l.status == n.status, "\(r) \(r.headers): status lb \(l.status), nginx \(n.status)")
            if let e = r.expect { #expect(n.status == e, "\(r) \(r.headers): nginx answered \(n.status)") }
            for h in fields where !(h == "Transfer-Encoding" && n.header("Content-Encoding") == "gzip") {
                #expect(l.header(h) == n.header(h), "\(r) \(r.headers): \(h) lb \(l.header(h) ?? "none"), nginx \(n.header(h) ?? "none")")
            }
            // A weak ETag for a compressed body, the same strong one otherwise.
            #expect(l.header("ETag")?.hasPrefix("W/") == n.header("ETag")?.hasPrefix("W/"), "\(r) \(r.headers): ETag lb \(l.header("ETag") ?? "none"), nginx \(n.header("ETag") ?? "none")")
            if r.method == "HEAD" {
                #expect(l.header("Content-Length") == n.header("Content-Length"), "\(r) \(r.headers): Content-Length on HEAD")
                continue
            }
            let nb = n.header("Content-Encoding") == "gzip" ? try gzipDecoded(n.body) : n.body
            let lbb = l.header("Content-Encoding") == "gzip" ? try gzipDecoded(l.body) : l.body
            if r.target.hasPrefix("/e") || n.status == 416 || n.status == 412 {
                #expect(d.normalise(String(decoding: lbb, as: UTF8.self), port: d.lb.port) == d.normalise(String(decoding: nb, as: UTF8.self), port: d.nginxPort))
            } else if r.headers.contains(where: { $0.hasPrefix("Range: bytes=0-1,") }) {
                #expect(lbb.count == nb.count, "\(r): multipart bodies of \(lbb.count) and \(nb.count) bytes") // boundaries differ
            } else {
                #expect(lbb == nb, "\(r) \(r.headers): bodies differ (\(lbb.count) and \(nb.count) bytes decoded)")
            }
        }
        // Not vacuous: nginx did compress a `return` body, an error page and a proxied response.
        for t in ["/r", "/e", "/up/a"] {
            #expect(try d.fetch(R(target: t, headers: [gz]), port: d.nginxPort).header("Content-Encoding") == "gzip")
            #expect(try d.fetch(R(target: t, headers: [gz]), port: d.lb.port).header("Content-Encoding") == "gzip")
        }
    }
}
