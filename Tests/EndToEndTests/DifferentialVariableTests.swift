import Foundation
import Testing

/// Variables that only an access log can show, compared with Debian's nginx on the same
/// configuration (see `Differential`): each server logs to its own file and the lines must match.
@Suite(.serialized, .enabled(if: Differential.available, "needs Debian's nginx at /usr/sbin/nginx"))
struct DifferentialVariableTests {
    /// `$gzip_ratio` (input over compressed output, as nginx prints it) for compressed static
    /// files — a short one too, which nginx compresses with a smaller window — and empty for one
    /// that went out uncompressed; `$request_body` of a proxied request whose body
    /// was read into memory, empty for a request without one.
    @Test func gzipRatioAndRequestBodyAreLoggedAsNginxLogsThem() throws {
        var text = ""
        for i in 0..<700 { text += "line \(i): the quick brown fox \(i * 7919 % 1000) jumps\n" }
        let d = try Differential("""
        log_format v 'R=$gzip_ratio B=$request_body U=$uri';
        server {
            listen 127.0.0.1:{port};
            root {root};
            access_log {root}/../log-{port}.txt v;
            gzip on;
            gzip_types text/plain;
            location /up { proxy_pass http://{backend}; }
        }
        """, files: ["big.txt": text, "small.txt": String(text.prefix(3000))], backend: true)
        /// One request on its own connection, closed before returning (nginx logs a request
        /// only once its lingering close is over).
        func send(_ port: Int, _ request: String) throws -> RawClient.Response {
            let c = try RawClient(port: port)
            try c.send(request)
            return try c.readResponse()
        }
        func exchange(_ port: Int) throws -> [String] {
            let zipped = try send(port, "GET /big.txt HTTP/1.1\r\nHost: localhost\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n")
            #expect(zipped.status == 200 && zipped.header("Content-Encoding") == "gzip", "port \(port): \(zipped.status) \(zipped.header("Content-Encoding") ?? "identity")")
            #expect(try send(port, "GET /big.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").status == 200)
            // 3,000 bytes: nginx compresses it with a 4 KiB window (bits 12) and a smaller hash.
            #expect(try send(port, "GET /small.txt HTTP/1.1\r\nHost: localhost\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n").header("Content-Encoding") == "gzip")
            #expect(try send(port, "POST /up HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 13\r\nConnection: close\r\n\r\nname=lb&x=1+2").status == 200)
            let log = d.dir.appendingPathComponent("log-\(port).txt")
            var lines: [String] = []
            let deadline = Date().addingTimeInterval(5)
            while Date() < deadline {
                lines = ((try? String(contentsOf: log, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
                if lines.count >= 4 { break }
                usleep(50_000)
            }
            return lines
        }
        let fromNginx = try exchange(d.nginxPort), fromLB = try exchange(d.lb.port)
        #expect(fromLB == fromNginx, "nginx error log: \(d.nginxErrorLog.suffix(600))")
        // Pinned, so that both logging nothing cannot pass.
        #expect(fromNginx.count == 4 && !fromNginx[0].hasPrefix("R=- ") && !fromNginx[2].hasPrefix("R=- "), "\(fromNginx)")
        #expect(fromNginx.last == "R=- B=name=lb&x=1+2 U=/up", "\(fromNginx)")
    }

    /// `gzip_http_version 1.0`: HTTP/1.0 requests are gzipped too — a static file whole with a
    /// Content-Length, a proxied body unframed to the close (no chunks for HTTP/1.0).
    @Test func gzipForHTTP10Clients() throws {
        var text = ""
        for i in 0..<500 { text += "line \(i): the quick brown fox \(i * 7919 % 1000) jumps\n" }
        let d = try Differential("""
        server {
            listen 127.0.0.1:{port};
            root {root};
            gzip on;
            gzip_types text/plain;
            gzip_http_version 1.0;
            location /up/ { proxy_pass http://{backend}/chunked?parts=400&; gzip_types *; }
            location /eleven/ { gzip_http_version 1.1; alias {root}/; }
        }
        """, files: ["big.txt": text], backend: true)
        func fetch(_ port: Int, _ target: String) throws -> RawClient.Response {
            let c = try RawClient(port: port)
            try c.send("GET \(target) HTTP/1.0\r\nHost: localhost\r\nAccept-Encoding: gzip\r\n\r\n")
            return try c.readResponse()
        }
        for target in ["/big.txt", "/up/x", "/eleven/big.txt"] {
            let n = try fetch(d.nginxPort, target), l = try fetch(d.lb.port, target)
            #expect(n.status == 200 && l.status == 200, "\(target): nginx \(n.status), lb \(l.status)")
            for h in ["Content-Encoding", "Transfer-Encoding", "Connection"] {
                #expect(l.header(h) == n.header(h), "\(target): \(h) lb \(l.header(h) ?? "none"), nginx \(n.header(h) ?? "none")")
            }
            // A static file is compressed whole, with a Content-Length, where nginx streams it
            // (docs/configuration.md, Differences): compared for the proxied body only.
            if target == "/up/x" { #expect(l.header("Content-Length") == nil && n.header("Content-Length") == nil) }
            let nb = n.header("Content-Encoding") == "gzip" ? try gzipDecoded(n.body) : n.body
            let lbb = l.header("Content-Encoding") == "gzip" ? try gzipDecoded(l.body) : l.body
            #expect(lbb == nb && !nb.isEmpty, "\(target): bodies differ (\(lbb.count) and \(nb.count) bytes decoded)")
        }
        #expect(try fetch(d.nginxPort, "/big.txt").header("Content-Encoding") == "gzip") // the case is not vacuous
    }

    /// Upstream names match without regard to case (nginx's `ngx_strncasecmp`), for a literal
    /// `proxy_pass` and for one made by variables at request time.
    @Test func upstreamNamesMatchWithoutRegardToCase() throws {
        let d = try Differential("""
        upstream Apps { server {backend}; }
        server {
            listen 127.0.0.1:{port};
            location /lit/ { proxy_pass http://apps; }
            location /var/ { set $u APPS; proxy_pass http://$u; }
        }
        """, backend: true)
        try d.compare([Differential.Request(target: "/lit/a", expect: 200), Differential.Request(target: "/var/b?x=1", expect: 200)])
    }

    /// `charset $variable`: the value names the charset of each response (empty: none added).
    @Test func charsetFromAVariable() throws {
        let d = try Differential("""
        map $arg_cs $cs { default utf-8; latin koi8-r; none ""; }
        server {
            listen 127.0.0.1:{port};
            root {root};
            charset $cs;
            location /r { default_type text/plain; return 200 "r\\n"; }
            location /redir { return 302 /elsewhere; }
        }
        """, files: ["page.html": "<p>page</p>\n", "data.bin": "bin\n"])
        try d.compare([
            Differential.Request(target: "/page.html", expect: 200), Differential.Request(target: "/page.html?cs=latin", expect: 200),
            Differential.Request(target: "/page.html?cs=none", expect: 200), Differential.Request(target: "/r?cs=latin", expect: 200),
            Differential.Request(target: "/data.bin", expect: 200), Differential.Request(target: "/redir", expect: 302),
            Differential.Request(target: "/missing", expect: 404),
        ], headers: ["Content-Type"])
    }

    /// `proxy_cache` in front of a `proxy_pass` with variables: the key's `$proxy_host` is the
    /// host the URL made names (a group, an address), a second request is a HIT, and a bypass
    /// still goes where the variables say.
    @Test func proxyCacheWithVariablesInProxyPass() throws {
        let d = try Differential("""
        upstream pool { server {backend}; }
        map $arg_to $dest { default pool; direct {backend}; }
        proxy_cache_path {root}/../cache-{port} keys_zone=cv:1m;
        server {
            listen 127.0.0.1:{port};
            location /cv/ {
                proxy_pass http://$dest;
                proxy_cache cv;
                proxy_cache_valid 200 1m;
                proxy_cache_bypass $arg_nocache;
                add_header X-Cache $upstream_cache_status;
                add_header X-Proxy-Host $proxy_host;
            }
        }
        """, backend: true)
        try d.compare([
            Differential.Request(target: "/cv/a?k=1", expect: 200), Differential.Request(target: "/cv/a?k=1", expect: 200),
            Differential.Request(target: "/cv/a?k=1&to=direct", expect: 200), Differential.Request(target: "/cv/a?k=1&to=direct", expect: 200),
            Differential.Request(target: "/cv/a?k=1&nocache=1", expect: 200),
        ], headers: ["X-Cache", "X-Backend"])
        // The made host is in the key: the address form is its own entry.
        let r = try RawClient(port: d.lb.port).get("/cv/a?k=1&to=direct")
        #expect(r.header("X-Cache") == "HIT" && r.header("X-Proxy-Host") == "127.0.0.1:\(d.backend!.port)")
    }
}

/// Keep-alive decided by the location, as nginx's ngx_http_update_location_config: a location's
/// `keepalive_timeout 0` and `keepalive_requests` end the connection after its response, with
/// `Connection: close` (lb said keep-alive, then closed).
@Suite(.serialized, .enabled(if: Differential.available, "needs Debian's nginx at /usr/sbin/nginx"))
struct DifferentialKeepaliveTests {
    @Test func aLocationsKeepaliveSettingsDecideTheConnectionHeader() throws {
        let d = try Differential("""
        server {
            listen 127.0.0.1:{port};
            keepalive_requests 100;
            location /none/ { keepalive_timeout 0; return 200 "none\\n"; }
            location /two/ { keepalive_requests 2; return 200 "two\\n"; }
            location / { return 200 "default\\n"; }
        }
        """)
        func connectionHeaders(_ port: Int, _ paths: [String]) throws -> [String] {
            let c = try RawClient(port: port)
            var out: [String] = []
            for p in paths {
                try c.send("GET \(p) HTTP/1.1\r\nHost: localhost\r\n\r\n")
                let r = try c.readResponse()
                out.append("\(r.status) \(r.header("Connection") ?? "-")")
                if r.header("Connection") == "close" { break }
            }
            return out
        }
        for paths in [["/", "/none/x", "/"], ["/", "/two/a", "/two/b"], ["/two/a", "/", "/"]] {
            let n = try connectionHeaders(d.nginxPort, paths), l = try connectionHeaders(d.lb.port, paths)
            #expect(l == n, "\(paths)")
            #expect(n.last?.hasSuffix("close") == true || paths == ["/two/a", "/", "/"], "\(paths): nginx \(n)")
        }
    }
}

/// Named captures of a regex `server_name` in a server-level `return` (the usual "redirect every
/// subdomain" block): nginx takes them when it finds the server, before any rewrite directive.
@Suite(.serialized, .enabled(if: Differential.available, "needs Debian's nginx at /usr/sbin/nginx"))
struct DifferentialServerNameTests {
    @Test func aServerLevelReturnSeesTheServerNamesCaptures() throws {
        let d = try Differential("""
        server {
            listen 127.0.0.1:{port};
            server_name ~^(?<sub>\\w+)\\.regex\\.test$;
            return 301 https://$sub.example.com$request_uri;
        }
        server {
            listen 127.0.0.1:{port};
            server_name ~^(\\w+)\\.numbered\\.test$;
            return 200 "first=$1\\n";
        }
        """)
        try d.compare([
            .init(target: "/p?x=1", expect: 301, host: "foo.regex.test"),
            .init(target: "/", expect: 200, host: "bar.numbered.test"),
        ])
    }
}

/// An upstream's chunked response with trailer fields reaches an HTTP/1.1 client without them,
/// as nginx's proxy sends it (no `proxy_pass_trailers` in 1.22): the same bytes from both.
@Suite(.serialized, .enabled(if: Differential.available, "needs Debian's nginx at /usr/sbin/nginx"))
struct DifferentialTrailerTests {
    @Test func upstreamTrailersAreNotPassedOn() throws {
        let d = try Differential("""
        server {
            listen 127.0.0.1:{port};
            location / { proxy_pass http://{backend}; proxy_http_version 1.1; }
        }
        """, backend: true)
        /// The chunked body as payload and trailer section (how the bytes are cut into chunks is
        /// each server's business: nginx re-chunks what it has read at once).
        func body(_ port: Int) throws -> (payload: String, trailers: String) {
            let c = try RawClient(port: port)
            try c.send("GET /chunked?parts=2&trailer=1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            var all: [UInt8] = []
            var buf = [UInt8](repeating: 0, count: 4096)
            func decoded() -> (String, String)? {
                // Bytes, not String: "\r\n" is one Character in Swift.
                func find(_ pat: [UInt8], from: Int) -> Int? {
                    guard all.count >= pat.count else { return nil }
                    var k = from
                    while k + pat.count <= all.count {
                        if Array(all[k..<(k + pat.count)]) == pat { return k }
                        k += 1
                    }
                    return nil
                }
                let crlf: [UInt8] = [13, 10]
                guard let h = find(crlf + crlf, from: 0) else { return nil }
                var at = h + 4
                var payload: [UInt8] = []
                while let eol = find(crlf, from: at) {
                    guard let size = Int(String(decoding: all[at..<eol], as: UTF8.self), radix: 16) else { return nil }
                    at = eol + 2
                    if size == 0 {
                        if all.count >= at + 2 && Array(all[at..<(at + 2)]) == crlf { return (String(decoding: payload, as: UTF8.self), "") }
                        guard let end = find(crlf + crlf, from: at) else { return nil }
                        return (String(decoding: payload, as: UTF8.self), String(decoding: all[at..<end], as: UTF8.self))
                    }
                    guard all.count >= at + size + 2 else { return nil }
                    payload += all[at..<(at + size)]
                    at += size + 2
                }
                return nil
            }
            while decoded() == nil {
                let n = recv(c.fd, &buf, buf.count, 0)
                if n <= 0 { break }
                all += buf[0..<n]
            }
            return decoded() ?? ("", "incomplete: \(String(decoding: all, as: UTF8.self))")
        }
        let fromNginx = try body(d.nginxPort), fromLB = try body(d.lb.port)
        #expect(fromLB.payload == fromNginx.payload && fromLB.trailers == fromNginx.trailers, "lb \(fromLB), nginx \(fromNginx)")
        #expect(fromNginx.payload == "part0;part1;" && fromNginx.trailers.isEmpty, "\(fromNginx)")
    }
}
