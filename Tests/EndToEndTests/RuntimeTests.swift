import Foundation
import Glibc
import Testing

/// Balancing policies, virtual hosts, logs and connection limits, end to end.
@Suite(.serialized) struct RuntimeTests {
    @Test func websocketUpgradeTunnelsBothWays() throws {
        let b = try Backend(name: "ws")
        let lb = try LB("""
        events {}
        http {
            access_log off;
            map $http_upgrade $connection_upgrade { default upgrade; '' close; }
            server {
                listen 127.0.0.1:{port};
                location /ws {
                    proxy_pass http://127.0.0.1:\(b.port);
                    proxy_http_version 1.1;
                    proxy_set_header Upgrade $http_upgrade;
                    proxy_set_header Connection $connection_upgrade;
                }
            }
        }
        """)
        let c = try RawClient(port: lb.port)
        try c.send("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        let r = try c.readResponse(head: true)
        #expect(r.status == 101)
        #expect(r.header("Sec-WebSocket-Accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        #expect(r.header("Upgrade") == "websocket")
        for msg in ["hello", String(repeating: "z", count: 100_000), "bye"] {
            try c.send(msg)
            var got: [UInt8] = c.buffer
            c.buffer = []
            while got.count < msg.utf8.count {
                guard c.fill() else { break }
                got += c.buffer
                c.buffer = []
            }
            #expect(String(decoding: got, as: UTF8.self) == msg)
        }
    }

    @Test func leastConnAvoidsTheBusyPeer() throws {
        let a = try Backend(name: "a"), b = try Backend(name: "b")
        let lb = try LB(ProxyTests.upstreamConfig([a, b], policy: "least_conn;"))
        // Occupy one peer with a slow request, then the others all go to the idle one.
        let slow = try RawClient(port: lb.port)
        try waitForArrival(at: [a, b]) { try slow.send("GET /slow?ms=2500 HTTP/1.1\r\nHost: x\r\n\r\n") }
        let c = try RawClient(port: lb.port)
        let names = try (0..<6).map { _ in try c.get("/fast").header("X-Backend") ?? "?" }
        let busy = try slow.readResponse().header("X-Backend")
        #expect(Set(names).count == 1)
        #expect(names.first != busy)
    }

    @Test func ipHashKeepsAClientOnOnePeer() throws {
        let backends = try (1...3).map { try Backend(name: "i\($0)") }
        let lb = try LB(ProxyTests.upstreamConfig(backends, policy: "ip_hash;"))
        var names: Set<String> = []
        for _ in 0..<12 { names.insert(try RawClient(port: lb.port).get("/").header("X-Backend") ?? "?") }
        #expect(names.count == 1)
    }

    @Test func consistentHashMovesAFifthOfKeysWhenAPeerIsAdded() throws {
        let backends = try (1...5).map { try Backend(name: "c\($0)") }
        let lb = try LB(ProxyTests.upstreamConfig(Array(backends.prefix(4)), policy: "hash $request_uri consistent;"))
        let c = try RawClient(port: lb.port)
        let before = try (0..<200).map { try c.get("/key/\($0)").header("X-Backend") ?? "?" }
        try lb.rewrite(ProxyTests.upstreamConfig(backends, policy: "hash $request_uri consistent;"))
        lb.reloadAndWait()
        let c2 = try RawClient(port: lb.port)
        let after = try (0..<200).map { try c2.get("/key/\($0)").header("X-Backend") ?? "?" }
        let moved = zip(before, after).filter { $0 != $1 }
        #expect(moved.allSatisfy { $0.1 == "c5" }, "keys may only move to the new peer")
        #expect(moved.count > 20 && moved.count < 70, "moved \(moved.count) of 200")
    }

    @Test func virtualServersBySelectedHostAndDefault() throws {
        let lb = try LB("""
        events {}
        http {
            access_log off;
            server { listen 127.0.0.1:{port}; server_name a.test; return 200 "a"; }
            server { listen 127.0.0.1:{port} default_server; server_name b.test; return 200 "b"; }
            server { listen 127.0.0.1:{port}; server_name *.wild.test; return 200 "wild"; }
            server { listen 127.0.0.1:{port}; server_name ~^api(\\d+)\\.test$; return 200 "regex"; }
        }
        """)
        let c = try RawClient(port: lb.port)
        #expect(try c.get("/", host: "a.test").text == "a")
        #expect(try c.get("/", host: "A.TEST:\(lb.port)").text == "a")
        #expect(try c.get("/", host: "x.wild.test").text == "wild")
        #expect(try c.get("/", host: "api12.test").text == "regex")
        #expect(try c.get("/", host: "unknown.test").text == "b")
        try c.send("GET http://a.test/ HTTP/1.1\r\nHost: b.test\r\n\r\n")
        #expect(try c.readResponse().text == "a") // absolute-form wins over Host
    }

    @Test func accessLogFormatListsEveryUpstreamAttempt() throws {
        let live = try Backend(name: "live")
        let dead = freePort()
        let lb = try LB("""
        events {}
        http {
            log_format up '$remote_addr "$request" $status $body_bytes_sent '
                          'ua="$http_user_agent" up=$upstream_addr us=$upstream_status host=$host';
            access_log logs/up.log up;
            upstream app { server 127.0.0.1:\(dead); server 127.0.0.1:\(live.port); }
            server { listen 127.0.0.1:{port}; location / { proxy_pass http://app; } }
        }
        """)
        let r = try curl(["-A", "tester \"quoted\"", "http://127.0.0.1:\(lb.port)/logged"])
        #expect(r.out == "live /logged")
        var log = ""
        for _ in 0..<50 {
            log = lb.file("logs/up.log")
            if !log.isEmpty { break }
            usleep(20_000)
        }
        #expect(log == "127.0.0.1 \"GET /logged HTTP/1.1\" 200 12 ua=\"tester \\x22quoted\\x22\" up=127.0.0.1:\(dead), 127.0.0.1:\(live.port) us=502, 200 host=127.0.0.1\n")
    }

    @Test func sigusr1ReopensLogFiles() throws {
        let lb = try LB("events {}\nhttp { access_log logs/a.log; server { listen 127.0.0.1:{port}; return 200 \"ok\"; } }")
        _ = try RawClient(port: lb.port).get("/one")
        #expect(waitUntil { lb.file("logs/a.log").contains("GET /one") })
        let logs = lb.dir.appendingPathComponent("logs")
        try FileManager.default.moveItem(at: logs.appendingPathComponent("a.log"), to: logs.appendingPathComponent("a.log.1"))
        lb.started.signal(SIGUSR1)
        // The worker reopens by path (creating the file) on its own thread, before it serves anything else.
        #expect(waitUntil { FileManager.default.fileExists(atPath: logs.appendingPathComponent("a.log").path) })
        _ = try RawClient(port: lb.port).get("/two")
        #expect(waitUntil { lb.file("logs/a.log").contains("GET /two") })
        #expect(lb.file("logs/a.log.1").contains("GET /one"))
        #expect(lb.file("logs/a.log").contains("GET /two"))
        #expect(!lb.file("logs/a.log").contains("GET /one"))
    }

    @Test func keepaliveRequestsAndBodyLimits() throws {
        let b = try Backend(name: "lim")
        let lb = try LB("""
        events {}
        http {
            access_log off;
            keepalive_requests 3;
            client_max_body_size 1k;
            server { listen 127.0.0.1:{port}; location / { proxy_pass http://127.0.0.1:\(b.port); } }
        }
        """)
        let c = try RawClient(port: lb.port)
        #expect(try c.get("/1").header("Connection") == "keep-alive")
        #expect(try c.get("/2").header("Connection") == "keep-alive")
        #expect(try c.get("/3").header("Connection") == "close")
        #expect(c.isClosedByPeer())
        let big = try RawClient(port: lb.port)
        try big.send("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n")
        let r = try big.readResponse()
        #expect(r.status == 413 && r.text.contains("413 Request Entity Too Large"))
        #expect(try b.stats().requests == 3 + 1) // the 413 never reached the backend; /stats counts itself
    }
}

extension RuntimeTests {
    @Test func reuseportGivesEachWorkerItsOwnListener() throws {
        let b = try Backend(name: "rp")
        let lb = try LB("""
        worker_processes 2;
        events {}
        http {
            access_log off;
            server { listen 127.0.0.1:{port} reuseport; location / { proxy_pass http://127.0.0.1:\(b.port); } }
        }
        """)
        let fds = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(lb.started.pid)/fd")
        let sockets = fds.compactMap { try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(lb.started.pid)/fd/\($0)") }
            .filter { $0.hasPrefix("socket:") }
        // Two listening sockets for the one address (plus epoll/eventfd, which are not sockets).
        // The second worker's socket may be a moment behind the first one the harness waited for.
        var listening: [Substring] = []
        let deadline = Date().addingTimeInterval(5)
        repeat {
            listening = try String(contentsOfFile: "/proc/net/tcp", encoding: .utf8).split(separator: "\n")
                .filter { $0.contains(String(format: ":%04X 00000000:0000 0A", lb.port)) }
            if listening.count < 2 { usleep(20_000) }
        } while listening.count < 2 && Date() < deadline
        #expect(listening.count == 2)
        #expect(sockets.count >= 2)
        for i in 0..<40 { #expect(try RawClient(port: lb.port).get("/r/\(i)").status == 200) }
    }
}

extension RuntimeTests {
    @Test func namedErrorPagesAndTimeouts() throws {
        let dead = freePort()
        let lb = try LB("""
        events {}
        http {
            access_log off;
            keepalive_timeout 400ms;
            client_body_timeout 400ms;
            server {
                listen 127.0.0.1:{port};
                location / {
                    proxy_pass http://127.0.0.1:\(dead);
                    error_page 502 @fallback;
                }
                location @fallback { return 200 "fallback page"; }
                location /upload { proxy_pass http://127.0.0.1:\(dead); }
            }
        }
        """)
        let c = try RawClient(port: lb.port)
        let r = try c.get("/anything")
        // The page keeps the error's status (no `=`): Debian nginx 1.22.1 answers 502 too.
        #expect(r.status == 502 && r.text == "fallback page")
        // An idle keep-alive connection is closed after keepalive_timeout.
        let t0 = Date()
        #expect(c.isClosedByPeer())
        #expect(Date().timeIntervalSince(t0) < 2)
        // A request body that stops arriving: 408 after client_body_timeout.
        let b = try Backend(name: "body")
        try lb.rewrite("""
        error_log stderr notice;
        events {}
        http {
            access_log off;
            client_body_timeout 400ms;
            server { listen 127.0.0.1:{port}; location / { proxy_pass http://127.0.0.1:\(b.port); } }
        }
        """)
        lb.reloadAndWait()
        let slow = try RawClient(port: lb.port)
        try slow.send("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly part")
        let t1 = Date()
        let resp = try slow.readResponse()
        #expect(resp.status == 408)
        #expect(Date().timeIntervalSince(t1) < 3)
        #expect(slow.isClosedByPeer())
    }
}

extension RuntimeTests {
    @Test func logsSeeSentAndUpstreamResponseHeaders() throws {
        let b = try Backend(name: "hdr")
        let lb = try LB("""
        events {}
        http {
            log_format h '$status type=$sent_http_content_type backend=$upstream_http_x_backend len=$sent_http_content_length sent=$upstream_bytes_sent';
            access_log logs/h.log h;
            server {
                listen 127.0.0.1:{port};
                location / { proxy_pass http://127.0.0.1:\(b.port); }
                location = /local { return 200 "x"; }
            }
        }
        """)
        let c = try RawClient(port: lb.port)
        _ = try c.get("/p")
        _ = try c.get("/local")
        var log = ""
        for _ in 0..<50 {
            log = lb.file("logs/h.log")
            if log.split(separator: "\n").count >= 2 { break }
            usleep(20_000)
        }
        let lines = log.split(separator: "\n").map(String.init)
        #expect(lines.count == 2)
        #expect(lines.first?.hasPrefix("200 type=text/plain backend=hdr len=6 sent=") == true)
        // The request head lb sent upstream: "GET /p HTTP/1.0", Host, Connection: close, …
        let sent = Int(lines.first?.split(separator: "=").last ?? "") ?? 0
        #expect(sent > 40 && sent < 400)
        #expect(lines.last == "200 type=text/plain backend=- len=1 sent=-")
    }
}

extension RuntimeTests {
    @Test func proxyRedirectRewritesUpstreamLocations() throws {
        let b = try Backend(name: "rd")
        let lb = try LB("""
        events {}
        http {
            access_log off;
            upstream app { server 127.0.0.1:\(b.port); }
            server {
                listen 127.0.0.1:{port};
                location / { proxy_pass http://app; }
                location /sub/ { proxy_pass http://app/; }
                location /off/ { proxy_pass http://app/; proxy_redirect off; }
                location /pair/ { proxy_pass http://app/; proxy_redirect http://elsewhere/ /moved/; }
            }
        }
        """)
        let c = try RawClient(port: lb.port)
        // A rewritten Location that starts with `/` is made absolute (absolute_redirect), as nginx.
        #expect(try c.get("/redirect?to=http://app/next").header("Location") == "http://localhost:\(lb.port)/next")
        #expect(try c.get("/sub/redirect?to=http://app/next").header("Location") == "http://localhost:\(lb.port)/sub/next")
        #expect(try c.get("/off/redirect?to=http://app/next").header("Location") == "http://app/next")
        #expect(try c.get("/pair/redirect?to=http://elsewhere/x").header("Location") == "http://localhost:\(lb.port)/moved/x")
        #expect(try c.get("/redirect?to=https://example.org/").header("Location") == "https://example.org/")
    }
}

extension RuntimeTests {
    /// Mutated and truncated requests over real sockets: lb answers or closes, and keeps serving.
    @Test func mutatedRequestsNeverTakeLbDown() throws {
        let b = try Backend(name: "fz")
        let lb = try LB("""
        events {}
        http {
            access_log off;
            client_header_timeout 300ms;
            client_body_timeout 300ms;
            server {
                listen 127.0.0.1:{port};
                location / { proxy_pass http://127.0.0.1:\(b.port); proxy_read_timeout 2s; }
                location = /r { return 200 "ok"; }
                location ~ ^/re/(.*)$ { return 200 "$1"; }
            }
        }
        """)
        let seeds = [
            "GET /r HTTP/1.1\r\nHost: x\r\n\r\n",
            "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
            "POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            "GET /re/a%20b?x=1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
            "GET http://h/chunked?parts=2 HTTP/1.1\r\nHost: y\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
        ]
        let specials = Array(" \r\n:%/.?#\0\t\u{7f}-;".utf8)
        let port = lb.port
        // Four clients at once: truncated requests each wait out a 300 ms timeout.
        DispatchQueue.concurrentPerform(iterations: 4) { lane in
          var rng = SystemRandomNumberGenerator()
          for i in stride(from: lane, to: 300, by: 4) {
            var bytes = Array(seeds[i % seeds.count].utf8)
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                let k = Int.random(in: 0..<bytes.count, using: &rng)
                switch Int.random(in: 0..<4, using: &rng) {
                case 0: bytes[k] = UInt8.random(in: 0...255, using: &rng)
                case 1: bytes.insert(specials.randomElement(using: &rng)!, at: k)
                case 2: bytes.remove(at: k)
                default: bytes = Array(bytes[0..<k])
                }
                if bytes.isEmpty { bytes = [0x47] }
            }
            guard let c = try? RawClient(port: port, timeout: 2) else { continue }
            try? c.send(bytes)
            _ = try? c.readResponse()
            c.close()
          }
        }
        #expect(lb.started.isRunning)
        #expect(try RawClient(port: lb.port).get("/r").text == "ok")
    }
}

/// A raw IPv6 loopback client (the harness's RawClient is IPv4).
func getOverIPv6(port: Int, path: String) throws -> String {
    let fd = socket(AF_INET6, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var tv = timeval(tv_sec: 5, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    var a = sockaddr_in6()
    a.sin6_family = sa_family_t(AF_INET6)
    a.sin6_port = UInt16(port).bigEndian
    inet_pton(AF_INET6, "::1", &a.sin6_addr)
    let ok = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
    guard ok == 0 else { throw HarnessError("connect [::1]:\(port) failed") }
    let req = "GET \(path) HTTP/1.0\r\nHost: v6\r\n\r\n"
    _ = req.withCString { send(fd, $0, strlen($0), 0) }
    var out: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = recv(fd, &buf, buf.count, 0)
        if n <= 0 { break }
        out += buf[0..<n]
    }
    return String(decoding: out, as: UTF8.self)
}

extension RuntimeTests {
    @Test func ipv6ListenerAndIPv6Upstream() throws {
        let v6port = freePort()
        let upstream = try LB("events {}\nhttp { access_log off; server { listen [::1]:{port}; return 200 \"from v6 upstream\"; } }", port: v6port, waitReady: false)
        #expect(waitUntil { (try? getOverIPv6(port: v6port, path: "/"))?.hasSuffix("from v6 upstream") == true })
        let lb = try LB("""
        events {}
        http {
            access_log off;
            server { listen 127.0.0.1:{port}; listen [::1]:{port}; location / { proxy_pass http://[::1]:\(v6port); } }
        }
        """)
        #expect(try RawClient(port: lb.port).get("/").text == "from v6 upstream")
        #expect(try getOverIPv6(port: lb.port, path: "/").hasSuffix("from v6 upstream"))
        _ = upstream
    }

    @Test func expectContinueGetsAnInterimResponseBeforeTheBody() throws {
        let b = try Backend(name: "ec")
        let lb = try LB("events {}\nhttp { access_log off; server { listen 127.0.0.1:{port}; location / { proxy_pass http://127.0.0.1:\(b.port); } } }")
        let c = try RawClient(port: lb.port)
        try c.send("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        let interim = try c.readResponse(head: true)
        #expect(interim.status == 100)
        try c.send("hello")
        let r = try c.readResponse()
        #expect(r.status == 200 && r.text.contains("\"bytes\": 5"))
    }

    @Test func maxConnsAndNextUpstreamTries() throws {
        let a = try Backend(name: "a"), b = try Backend(name: "b")
        let lb = try LB("""
        events {}
        http {
            access_log off;
            upstream capped { server 127.0.0.1:\(a.port) max_conns=1; server 127.0.0.1:\(b.port); }
            upstream once { server 127.0.0.1:\(a.port); server 127.0.0.1:\(b.port); }
            server {
                listen 127.0.0.1:{port};
                location /capped/ { proxy_pass http://capped/; }
                location /once/ { proxy_pass http://once/; proxy_next_upstream error timeout http_503; proxy_next_upstream_tries 1; }
                location /twice/ { proxy_pass http://once/; proxy_next_upstream error timeout http_503; }
            }
        }
        """)
        // While `a` holds its one allowed connection, every other request goes to `b`. Which peer
        // the held request lands on depends on the rotation, so try until it is `a`.
        let c = try RawClient(port: lb.port)
        var checked = false
        for _ in 0..<4 where !checked {
            let hold = try RawClient(port: lb.port)
            try waitForArrival(at: [a, b]) { try hold.send("GET /capped/slow?ms=800 HTTP/1.1\r\nHost: x\r\n\r\n") }
            let during = try (0..<4).map { _ in try c.get("/capped/x").header("X-Backend") ?? "?" }
            if try hold.readResponse().header("X-Backend") == "a" {
                #expect(during == ["b", "b", "b", "b"], "\(during)")
                checked = true
            }
        }
        #expect(checked)
        // With tries 1, a 503 passes through without asking the second peer.
        let before = try a.stats().requests + b.stats().requests
        #expect(try c.get("/once/status/503").status == 503)
        let after = try a.stats().requests + b.stats().requests
        #expect(after - before == 1 + 2) // one proxied request; the two /stats calls count themselves
        // Without the limit the same 503 is retried on the other peer.
        let before2 = try a.stats().requests + b.stats().requests
        #expect(try c.get("/twice/status/503").status == 503)
        let after2 = try a.stats().requests + b.stats().requests
        #expect(after2 - before2 == 2 + 2)
    }
}

extension RuntimeTests {
    @Test func expiresAppliesToLocalAndProxiedResponses() throws {
        let b = try Backend(name: "ex")
        let lb = try LB("""
        events {}
        http {
            access_log off;
            server {
                listen 127.0.0.1:{port};
                location = /local { expires 1h; return 200 "x"; }
                location = /nocache { expires -1; return 200 "x"; }
                location = /missing { expires 1h; return 404; }
                location / { expires 30s; proxy_pass http://127.0.0.1:\(b.port); }
            }
        }
        """)
        let c = try RawClient(port: lb.port)
        let local = try c.get("/local")
        #expect(local.header("Cache-Control") == "max-age=3600" && local.header("Expires") != nil)
        #expect(try c.get("/nocache").header("Cache-Control") == "no-cache")
        let missing = try c.get("/missing")
        #expect(missing.status == 404 && missing.header("Cache-Control") == nil)
        let proxied = try c.get("/cc")
        #expect(proxied.headers.filter { $0.0.lowercased() == "cache-control" }.map(\.1) == ["max-age=30"])
        #expect(proxied.headers.filter { $0.0.lowercased() == "expires" }.count == 1)
        #expect(proxied.header("Expires") != "Thu, 01 Jan 2037 00:00:00 GMT")
    }
}
