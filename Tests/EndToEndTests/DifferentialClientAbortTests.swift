import Foundation
import Glibc
import Testing

/// `proxy_ignore_client_abort on` through lb and Debian's nginx side by side (see `Differential`):
/// a client sends its request to a slow upstream and closes at once. The upstream request goes
/// on; the response is written as usual and the request logged with the upstream's status. A
/// small response completes (its upstream connection goes back to the pool); a large one fails
/// on its next write: stored in the cache, it is still read to its end (the next request is a
/// HIT and the upstream saw one request), otherwise its upstream connection is closed. With
/// `off` the response is not stored.
@Suite(.serialized, .enabled(if: Differential.available, "needs Debian's nginx at /usr/sbin/nginx"))
struct DifferentialClientAbortTests {
    typealias R = Differential.Request

    /// A server's access log (`access-PORT.log`), its port written as PORT.
    static func logLines(_ d: Differential, _ port: Int) -> [String] {
        let text = (try? String(contentsOf: d.dir.appendingPathComponent("access-\(port).log"), encoding: .utf8)) ?? ""
        return text.split(separator: "\n").map { $0.replacingOccurrences(of: "who=\(port)", with: "who=PORT") }
    }

    /// How many times the backend was asked for `path`.
    static func upstreamCount(_ backend: Backend, _ path: String) throws -> Int {
        let r = try RawClient(port: backend.port).get("/counts")
        let obj = try JSONSerialization.jsonObject(with: Data(r.body)) as! [String: Int]
        return obj[path] ?? 0
    }

    @Test func ignoreClientAbortReadsTheUpstreamResponseAsNginxDoes() throws {
        let d = try Differential("""
        log_format t '$request_uri $status cache=$upstream_cache_status up=$upstream_status';
        proxy_cache_path {root}/../cache-{port} keys_zone=z:1m;
        upstream be { server {backend}; keepalive 4; }
        server {
            listen 127.0.0.1:{port};
            access_log {root}/../access-{port}.log t;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            add_header X-Cache $upstream_cache_status;
            location /on/ { proxy_ignore_client_abort on; proxy_pass http://be/; }
            location /con/ { proxy_ignore_client_abort on; proxy_cache z; proxy_pass http://be/; }
            location /coff/ { proxy_cache z; proxy_pass http://be/; }
        }
        """, backend: true)
        let backend = d.backend!
        func logLines(_ port: Int) -> [String] { Self.logLines(d, port) }
        /// Sends the request, closes at once, and waits until the server has logged it (its own
        /// line: the request before may be logged later than its response arrived).
        func abandon(_ port: Int, _ target: String) throws {
            let mine = target.replacingOccurrences(of: "who=\(port)", with: "who=PORT") + " "
            let c = try RawClient(port: port)
            try c.send("GET \(target) HTTP/1.1\r\nHost: localhost\r\n\r\n")
            c.close()
            #expect(waitUntil(timeout: 20) { logLines(port).contains { $0.hasPrefix(mine) } }, "port \(port): \(target) was not logged")
        }
        func count(_ path: String) throws -> Int { try Self.upstreamCount(backend, path) }
        /// Upstream connections opened since `since` (the backend's count less its own /stats ones).
        func opened(since: Int) throws -> (Int, Int) {
            let now = try backend.stats().connections
            return (now - since - 1, now)
        }
        func run(_ port: Int) throws -> [String] {
            let who = "who=\(port)"
            // A small response: written, logged 200, and its upstream connection is kept.
            var mark = try backend.stats().connections
            try abandon(port, "/on/slow?ms=300&\(who)")
            #expect(try d.fetch(R(target: "/on/slow?ms=1&\(who)"), port: port).status == 200)
            var new: Int
            (new, mark) = try opened(since: mark)
            #expect(new == 1, "port \(port): \(new) upstream connections for two requests, the pooled one not reused")
            // A large one not cached: the failed write ends it, and its connection is closed.
            try abandon(port, "/on/gen?ms=300&size=4000000&\(who)")
            #expect(try d.fetch(R(target: "/on/slow?ms=1&again&\(who)"), port: port).status == 200)
            (new, mark) = try opened(since: mark)
            #expect(new == 1, "port \(port): \(new) upstream connections opened, expected one after a closed one")
            // A large one being cached: read to its end and stored.
            let cached = "/gen?ms=300&size=4000000&cc=max-age=60&\(who)"
            try abandon(port, "/con" + cached)
            let hit = try d.fetch(R(target: "/con" + cached), port: port)
            #expect(hit.status == 200 && hit.header("X-Cache") == "HIT" && hit.body.count == 4_000_000,
                    "port \(port): \(hit.status) \(hit.header("X-Cache") ?? "-") \(hit.body.count) bytes")
            #expect(try count(cached) == 1)
            // Without the directive: not stored.
            let notCached = "/gen?ms=300&size=4000000&cc=max-age=60&off&\(who)"
            try abandon(port, "/coff" + notCached)
            #expect(try d.fetch(R(target: "/coff" + notCached), port: port).header("X-Cache") == "MISS")
            #expect(try count(notCached) == 2)
            return logLines(port)
        }
        // The `off` line too: a client seen closed before the head ends the request, or for the
        // cache only its head (nothing stored), whether its FIN came with the request or later.
        let fromNginx = try run(d.nginxPort), fromLB = try run(d.lb.port)
        #expect(fromLB.count == fromNginx.count, "lb \(fromLB)\nnginx \(fromNginx)")
        #expect(fromNginx.filter { $0.hasPrefix("/coff/gen?ms=300&size=4000000&cc=max-age=60&off&who=PORT 200 cache=MISS up=200") }.count == 2, "\(fromNginx)")
        for (l, n) in zip(fromLB, fromNginx) { #expect(l == n, "log lines differ") }
        #expect(fromNginx.first == "/on/slow?ms=300&who=PORT 200 cache=- up=200", "\(fromNginx)")
        // Cut short by the failed write, the try is still logged.
        #expect(fromNginx.contains("/on/gen?ms=300&size=4000000&who=PORT 200 cache=- up=200"), "\(fromNginx)")
        #expect(fromNginx.contains("/con/gen?ms=300&size=4000000&cc=max-age=60&who=PORT 200 cache=MISS up=200"), "\(fromNginx)")
    }

    /// An HTTP/1.1 client that closes once it has the response head, while a slow upstream still
    /// sends the body: a response being stored in the cache is read to its end and stored, with
    /// `proxy_ignore_client_abort on` or `off` (nginx's `u->cacheable`: its check of a broken
    /// connection and its event pipe's failed write both go on for the cache). The next request
    /// is a HIT and the upstream was asked once. lb dropped the entry with `off`.
    @Test func anHTTP11ClientThatLeavesMidBodyLeavesTheResponseStored() throws {
        let d = try Differential("""
        log_format t '$request_uri $status cache=$upstream_cache_status up=$upstream_status';
        proxy_cache_path {root}/../cache-{port} keys_zone=z:1m;
        upstream be { server {backend}; keepalive 4; }
        server {
            listen 127.0.0.1:{port};
            access_log {root}/../access-{port}.log t;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            add_header X-Cache $upstream_cache_status;
            location /con/ { proxy_ignore_client_abort on; proxy_cache z; proxy_pass http://be/; }
            location /coff/ { proxy_cache z; proxy_pass http://be/; }
        }
        """, backend: true)
        let backend = d.backend!
        func server(_ port: Int) -> String { port == d.lb.port ? "lb" : "nginx" }
        func run(_ port: Int) throws -> [String] {
            for mode in ["con", "coff"] {
                // 400 KB in four writes 150 ms apart: the client is gone before the second.
                let path = "/gen?size=400000&gap=150&cc=max-age=60&\(mode)&who=\(port)"
                let c = try RawClient(port: port)
                try c.send("GET /\(mode)\(path) HTTP/1.1\r\nHost: localhost\r\n\r\n")
                while !c.buffer.starts(with: Array("HTTP/1.1 200".utf8)) || c.buffer.firstRange(of: Array("\r\n\r\n".utf8)) == nil {
                    guard c.fill() else { break }
                }
                let head = String(decoding: c.buffer.prefix(12), as: UTF8.self)
                #expect(head == "HTTP/1.1 200", "\(server(port)) \(mode): \(head)")
                c.close()
                let mine = "/\(mode)\(path.replacingOccurrences(of: "who=\(port)", with: "who=PORT")) "
                #expect(waitUntil(timeout: 20) { Self.logLines(d, port).contains { $0.hasPrefix(mine) } }, "\(server(port)) \(mode): not logged")
                let again = try d.fetch(R(target: "/\(mode)\(path)"), port: port)
                #expect(again.status == 200 && again.header("X-Cache") == "HIT" && again.body.count == 400_000,
                        "\(server(port)) \(mode): \(again.status) \(again.header("X-Cache") ?? "-") \(again.body.count) bytes")
                #expect(try Self.upstreamCount(backend, path) == 1, "\(server(port)) \(mode): the upstream was asked again")
            }
            return Self.logLines(d, port)
        }
        let fromNginx = try run(d.nginxPort), fromLB = try run(d.lb.port)
        #expect(fromLB == fromNginx, "lb \(fromLB)\nnginx \(fromNginx)")
        #expect(fromNginx.count == 4, "\(fromNginx)")
    }

    /// Over HTTP/2 a client gives a request up with RST_STREAM (a browser does so on every
    /// navigation away), not by closing its connection. As nginx: with `proxy_ignore_client_abort
    /// on` the upstream request goes on and the request is logged with the upstream's status;
    /// its head then cannot go out on the closed stream, so the request ends there and a
    /// response for the cache is not stored. With `off` the reset ends the request at once
    /// (499), unless its response is for the cache, which nginx lets go on to the head too. lb
    /// dropped such a request unlogged, and ended its upstream request whatever the setting. A
    /// stream reset after its head went out, its response being stored, is read to its end and
    /// stored, with `on` or `off` (lb dropped the entry).
    @Test func anHTTP2StreamResetByItsClientIsAClientAbort() throws {
        let d = try Differential("""
        log_format t '$request_uri $status cache=$upstream_cache_status up=$upstream_status';
        proxy_cache_path {root}/../cache-{port} keys_zone=z:1m;
        upstream be { server {backend}; keepalive 4; }
        server {
            listen 127.0.0.1:{port} http2;
            access_log {root}/../access-{port}.log t;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            location /on/ { proxy_ignore_client_abort on; proxy_pass http://be/; }
            location /off/ { proxy_pass http://be/; }
            location /con/ { proxy_ignore_client_abort on; proxy_cache z; proxy_pass http://be/; }
            location /coff/ { proxy_cache z; proxy_pass http://be/; }
        }
        """, backend: true)
        let backend = d.backend!
        let client = Harness.repositoryRoot.appendingPathComponent("Tests/support/h2client.py").path
        func logLines(_ port: Int) -> [String] { Self.logLines(d, port) }
        func logged(_ port: Int, _ target: String) -> Bool {
            let mine = target.replacingOccurrences(of: "who=\(port)", with: "who=PORT") + " "
            return waitUntil(timeout: 20) { logLines(port).contains { $0.hasPrefix(mine) } }
        }
        func cancel(_ port: Int, _ target: String) throws {
            let out = try runTool(["/usr/bin/python3", client, "cancel", "\(port)", target, "0.5"]).out
            #expect(out.contains("cancelled"), "port \(port): \(out)")
            #expect(logged(port, target), "port \(port): \(target) was not logged")
        }
        func get(_ port: Int, _ target: String) throws {
            let out = try runTool(["/usr/bin/python3", client, "get", "\(port)", target]).out
            #expect(out.hasPrefix("200 "), "port \(port): \(target): \(out)")
            #expect(logged(port, target), "port \(port): \(target) was not logged")
        }
        func count(_ path: String) throws -> Int { try Self.upstreamCount(backend, path) }
        func run(_ port: Int) throws -> [String] {
            let who = "who=\(port)"
            try cancel(port, "/on/slow?ms=300&\(who)")
            try cancel(port, "/off/slow?ms=300&\(who)")
            let cached = "/gen?ms=300&size=100000&cc=max-age=60&\(who)"
            try cancel(port, "/con" + cached)
            try get(port, "/con" + cached)
            #expect(try count(cached) == 2, "port \(port): stored though its head never went out")
            let notCached = "/gen?ms=300&size=100000&cc=max-age=60&off&\(who)"
            try cancel(port, "/coff" + notCached)
            try get(port, "/coff" + notCached)
            #expect(try count(notCached) == 2, "port \(port): stored though the client reset the stream (off)")
            // Reset mid-body (the head went out, the stream window holds the rest): a response
            // being stored is read to its end and stored, with `on` or `off`.
            for mode in ["con", "coff"] {
                let midBody = "/gen?size=3000000&cc=max-age=60&mid&\(mode)&\(who)"
                let out = try runTool(["/usr/bin/python3", client, "abort-after-head", "\(port)", "reset", "/" + mode + midBody]).out
                #expect(out.hasPrefix("aborted 200"), "port \(port): \(out)")
                #expect(logged(port, "/" + mode + midBody), "port \(port): \(mode) was not logged")
                try get(port, "/" + mode + midBody)
                #expect(try count(midBody) == 1, "port \(port): \(mode): not stored though its head went out")
            }
            return logLines(port)
        }
        let fromNginx = try run(d.nginxPort), fromLB = try run(d.lb.port)
        #expect(fromLB == fromNginx, "lb \(fromLB)\nnginx \(fromNginx)")
        #expect(fromNginx.first == "/on/slow?ms=300&who=PORT 200 cache=- up=200", "\(fromNginx)")
        #expect(fromNginx.contains { $0.hasPrefix("/off/slow?ms=300&who=PORT 499 ") }, "\(fromNginx)")
    }

    /// A whole HTTP/2 connection that goes while its streams wait for a slow upstream (the client
    /// closes its socket, or makes a connection error that has the server send GOAWAY): nginx
    /// treats every stream as a client abort (`ngx_http_v2_finalize_connection`), exactly as a
    /// reset of that stream. With `proxy_ignore_client_abort on` each upstream request runs to
    /// its end and is logged with the upstream's status (nothing stored for the cache: the head
    /// cannot go out); with `off` each ends at once, logged 499, unless its response is for the
    /// cache. lb closed every stream's exchange at once, unlogged, whatever the setting. A
    /// response being stored whose head went out is read to its end and stored, with `on` or
    /// `off`, as after a reset.
    @Test func anHTTP2ConnectionThatGoesIsAClientAbortOnEachOfItsStreams() throws {
        let d = try Differential("""
        log_format t '$request_uri $status cache=$upstream_cache_status up=$upstream_status';
        proxy_cache_path {root}/../cache-{port} keys_zone=z:1m;
        upstream be { server {backend}; keepalive 4; }
        server {
            listen 127.0.0.1:{port} http2;
            access_log {root}/../access-{port}.log t;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            location /on/ { proxy_ignore_client_abort on; proxy_pass http://be/; }
            location /off/ { proxy_pass http://be/; }
            location /con/ { proxy_ignore_client_abort on; proxy_cache z; proxy_pass http://be/; }
            location /coff/ { proxy_cache z; proxy_pass http://be/; }
        }
        """, backend: true)
        let backend = d.backend!
        let client = Harness.repositoryRoot.appendingPathComponent("Tests/support/h2client.py").path
        func server(_ port: Int) -> String { port == d.lb.port ? "lb" : "nginx" }
        func logLines(_ port: Int) -> [String] { Self.logLines(d, port) }
        func logged(_ port: Int, _ target: String) -> Bool {
            let mine = target.replacingOccurrences(of: "who=\(port)", with: "who=PORT") + " "
            return waitUntil(timeout: 20) { logLines(port).contains { $0.hasPrefix(mine) } }
        }
        /// The client's `how` ("close" or "error") with one stream per target, all on one
        /// connection; returns once each target is logged.
        func abandon(_ port: Int, _ how: String, _ targets: [String]) throws {
            let out = try runTool(["/usr/bin/python3", client, how, "\(port)"] + targets).out
            #expect(out.hasPrefix(how == "close" ? "closed" : "goaway 6 closed"), "\(server(port)): \(how): \(out)")
            for t in targets { #expect(logged(port, t), "\(server(port)): \(t) was not logged") }
        }
        func get(_ port: Int, _ target: String) throws {
            let out = try runTool(["/usr/bin/python3", client, "get", "\(port)", target]).out
            #expect(out.hasPrefix("200 "), "\(server(port)): \(target): \(out)")
            #expect(logged(port, target), "\(server(port)): \(target) was not logged")
        }
        func count(_ path: String) throws -> Int { try Self.upstreamCount(backend, path) }
        /// The log lines, and how many times the backend was asked for each slow path.
        func run(_ port: Int) throws -> ([String], [Int]) {
            let who = "who=\(port)"
            // Two streams on one connection each time, ending one after the other (the log's
            // order); their upstream paths (the location's prefix dropped) tell them apart.
            var slow: [String] = []
            for (how, tags) in [("close", ["a", "b"]), ("error", ["e", "f"])] {
                for mode in ["on", "off"] {
                    let paths = zip(tags, [300, 600]).map { "/gen?ms=\($1)&size=10&\(mode)&\($0)&\(who)" }
                    try abandon(port, how, paths.map { "/" + mode + $0 })
                    slow += paths
                }
            }
            let cached = "/gen?ms=300&size=100000&cc=max-age=60&\(who)"
            try abandon(port, "close", ["/con" + cached])
            try get(port, "/con" + cached)
            #expect(try count(cached) == 2, "\(server(port)): stored though its head never went out")
            let notCached = "/gen?ms=300&size=100000&cc=max-age=60&off&\(who)"
            try abandon(port, "close", ["/coff" + notCached])
            try get(port, "/coff" + notCached)
            #expect(try count(notCached) == 2, "\(server(port)): stored though the client closed the connection (off)")
            // Closed mid-body (the head went out, the stream window holds the rest): a response
            // being stored is read to its end and stored, with `on` or `off`.
            for mode in ["con", "coff"] {
                let midBody = "/gen?size=3000000&cc=max-age=60&mid&\(mode)&\(who)"
                let out = try runTool(["/usr/bin/python3", client, "abort-after-head", "\(port)", "close", "/" + mode + midBody]).out
                #expect(out.hasPrefix("aborted 200"), "\(server(port)): \(out)")
                #expect(logged(port, "/" + mode + midBody), "\(server(port)): \(mode) was not logged")
                try get(port, "/" + mode + midBody)
                #expect(try count(midBody) == 1, "\(server(port)): \(mode): not stored though its head went out")
            }
            return (logLines(port), try slow.map { try count($0) })
        }
        let (fromNginx, nginxCounts) = try run(d.nginxPort), (fromLB, lbCounts) = try run(d.lb.port)
        // Sorted: the two `off` streams of a connection end together, in each server's own order.
        #expect(fromLB.sorted() == fromNginx.sorted(), "lb \(fromLB)\nnginx \(fromNginx)")
        // Every stream's upstream request was made, once.
        #expect(lbCounts == nginxCounts && nginxCounts == Array(repeating: 1, count: 8), "lb \(lbCounts) nginx \(nginxCounts)")
        for s in ["a", "b", "e", "f"] {
            #expect(fromNginx.contains { $0.hasPrefix("/on/gen?") && $0.hasSuffix("&on&\(s)&who=PORT 200 cache=- up=200") }, "\(s): \(fromNginx)")
            #expect(fromNginx.contains { $0.hasPrefix("/off/gen?") && $0.contains("&off&\(s)&who=PORT 499 ") }, "\(s): \(fromNginx)")
        }
    }

    /// With `off` (the default), a client that closes — or only half-closes — while the upstream
    /// is slow to answer ends the request at once: no response, 499 in the log, the upstream
    /// connection closed (nginx's check of a broken connection, with EPOLLRDHUP).
    @Test func aClientThatClosesWhileWaitingEndsTheRequest() throws {
        let d = try Differential("""
        log_format t '$request_uri $status';
        server {
            listen 127.0.0.1:{port};
            access_log {root}/../access-{port}.log t;
            location / { proxy_pass http://{backend}; }
        }
        """, backend: true)
        for port in [d.nginxPort, d.lb.port] {
            for how in ["half", "full"] {
                let c = try RawClient(port: port)
                let start = Date()
                try c.send("GET /slow?ms=3000&\(how) HTTP/1.1\r\nHost: localhost\r\n\r\n")
                usleep(100_000)
                if how == "half" {
                    shutdown(c.fd, Int32(SHUT_WR))
                    #expect(c.isClosedByPeer(), "port \(port): the connection stays open")
                    #expect(Date().timeIntervalSince(start) < 2.5, "port \(port): closed only after the upstream answered")
                } else {
                    c.close()
                }
            }
            let log = d.dir.appendingPathComponent("access-\(port).log")
            #expect(waitUntil(timeout: 10) {
                let lines = ((try? String(contentsOf: log, encoding: .utf8)) ?? "").split(separator: "\n")
                return lines.count == 2
            }, "port \(port)")
            let lines = ((try? String(contentsOf: log, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init).sorted()
            #expect(lines == ["/slow?ms=3000&full 499", "/slow?ms=3000&half 499"], "port \(port): \(lines)")
        }
    }

    /// A client that only half-closes (shuts down its sending side) still gets the response:
    /// with `on`, nginx does not watch the client while it waits for the upstream.
    @Test func aHalfClosedClientStillGetsTheResponse() throws {
        let d = try Differential("""
        server {
            listen 127.0.0.1:{port};
            location / { proxy_ignore_client_abort on; proxy_pass http://{backend}; }
        }
        """, backend: true)
        for port in [d.nginxPort, d.lb.port] {
            let c = try RawClient(port: port)
            try c.send("GET /slow?ms=200 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            shutdown(c.fd, Int32(SHUT_WR))
            let r = try c.readResponse()
            #expect(r.status == 200 && r.text == "bk slow", "port \(port): \(r.status) \(r.text)")
        }
    }

    /// `fastcgi_ignore_client_abort on` with `fastcgi_cache`, against php-fpm: a large response
    /// whose client left is still read to its end and stored.
    @Test func fastCGIIgnoreClientAbortStoresTheResponse() throws {
        let fpm = try PHPFPM()
        let scripts = try Harness.tempDirectory()
        defer { try? FileManager.default.removeItem(at: scripts) }
        chmod(scripts.path, 0o755)
        try "<?php usleep(300000); header('Content-Type: text/plain'); echo str_repeat('x', 4000000);\n"
            .write(to: scripts.appendingPathComponent("big.php"), atomically: true, encoding: .utf8)
        chmod(scripts.appendingPathComponent("big.php").path, 0o644)
        let examples = Harness.repositoryRoot.appendingPathComponent("examples").path
        let d = try Differential("""
        log_format t '$request_uri $status cache=$upstream_cache_status';
        fastcgi_cache_path {root}/../cache-{port} keys_zone=f:1m;
        server {
            listen 127.0.0.1:{port};
            access_log {root}/../access-{port}.log t;
            include \(examples)/fastcgi.conf;
            fastcgi_param SCRIPT_FILENAME \(scripts.path)/big.php;
            fastcgi_cache f;
            fastcgi_cache_key $request_uri;
            fastcgi_cache_valid 200 1m;
            add_header X-Cache $upstream_cache_status;
            location /on/ { fastcgi_ignore_client_abort on; fastcgi_pass 127.0.0.1:\(fpm.port); }
            location /off/ { fastcgi_pass 127.0.0.1:\(fpm.port); }
        }
        """)
        /// Lines logged for `path` (each request waits for its own: the one before may be logged
        /// later than its response arrived).
        func logged(_ port: Int, _ path: String) -> Int {
            ((try? String(contentsOf: d.dir.appendingPathComponent("access-\(port).log"), encoding: .utf8)) ?? "")
                .split(separator: "\n").filter { $0.hasPrefix(path + " ") }.count
        }
        for port in [d.nginxPort, d.lb.port] {
            for (path, expected) in [("/on/", "HIT"), ("/off/", "MISS")] {
                let before = logged(port, path)
                let c = try RawClient(port: port)
                try c.send("GET \(path) HTTP/1.1\r\nHost: localhost\r\n\r\n")
                c.close()
                #expect(waitUntil(timeout: 20) { logged(port, path) > before }, "port \(port): \(path) was not logged")
                let r = try d.fetch(R(target: path), port: port)
                #expect(r.status == 200 && r.header("X-Cache") == expected && r.body.count == 4_000_000,
                        "\(port == d.lb.port ? "lb" : "nginx") \(path): \(r.status) \(r.header("X-Cache") ?? "-") \(r.body.count) bytes")
            }
        }
    }
}
