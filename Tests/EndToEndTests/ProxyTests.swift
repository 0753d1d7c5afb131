import Foundation
import Glibc
import Testing

/// lb as a reverse proxy and load balancer, over real loopback sockets, against independent
/// backends (Python's http.server) and real clients (curl, raw sockets).
@Suite(.serialized) struct ProxyTests {
    static func upstreamConfig(_ backends: [Backend], params: [String] = [], policy: String = "", extra: String = "", location: String = "") -> String {
        let servers = backends.enumerated().map { i, b in "server 127.0.0.1:\(b.port)\(i < params.count ? " " + params[i] : "");" }.joined(separator: "\n        ")
        return """
        worker_processes 1;
        error_log stderr info;
        events { worker_connections 1024; }
        http {
            access_log logs/access.log;
            upstream app {
                \(policy)
                \(servers)
                \(extra)
            }
            server {
                listen 127.0.0.1:{port};
                location / {
                    proxy_pass http://app;
                    \(location)
                }
            }
        }
        """
    }

    func backendName(_ r: RawClient.Response) -> String { r.header("X-Backend") ?? "?" }

    @Test func roundRobinDistributesExactlyAcrossFourBackends() throws {
        let backends = try (1...4).map { try Backend(name: "b\($0)") }
        let lb = try LB(Self.upstreamConfig(backends))
        var counts: [String: Int] = [:]
        var order: [String] = []
        let client = try RawClient(port: lb.port)
        for i in 0..<400 {
            let r = try client.get("/n/\(i)")
            #expect(r.status == 200)
            counts[backendName(r), default: 0] += 1
            if i < 8 { order.append(backendName(r)) }
        }
        #expect(counts == ["b1": 100, "b2": 100, "b3": 100, "b4": 100])
        #expect(order == ["b1", "b2", "b3", "b4", "b1", "b2", "b3", "b4"])
    }

    /// `proxy_method` replaces the method sent upstream; `proxy_set_body` replaces the body (with
    /// its own Content-Length), whatever the client sent, which is read and dropped — as nginx.
    @Test func proxyMethodAndSetBodyReplaceWhatGoesUpstream() throws {
        let b = try Backend(name: "m")
        let lb = try LB(Self.upstreamConfig([b], extra: "", location: "").replacingOccurrences(of: "        location / {", with: """
                location /set/ { proxy_method POST; proxy_set_body "name=$arg_n&x=1"; proxy_pass http://app/upload; }
                location /put/ { proxy_method PUT; proxy_pass http://app/headers; }
                location / {
        """))
        func json(_ r: RawClient.Response) throws -> [String: Any] { try JSONSerialization.jsonObject(with: Data(r.body)) as! [String: Any] }
        let body = "name=abc&x=1"
        let digest = "f23bccc5a30df810d1371ba2e5cad2cad1b57277706e75d07db2f5b1e2dd6f86" // sha256 of the body above
        let g = try json(try RawClient(port: lb.port).get("/set/?n=abc"))
        #expect(g["bytes"] as? Int == body.utf8.count)
        #expect(g["sha256"] as? String == digest)
        #expect(g["content_length"] as? String == "\(body.utf8.count)")
        // A client body (here 100 KB, chunked) is read and dropped: the set body goes instead.
        let c = try RawClient(port: lb.port)
        let big = String(repeating: "z", count: 100_000)
        try c.send("POST /set/?n=abc HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\(String(big.utf8.count, radix: 16))\r\n\(big)\r\n0\r\n\r\n")
        let p = try json(try c.readResponse())
        #expect(p["bytes"] as? Int == body.utf8.count)
        #expect(p["transfer_encoding"] is NSNull)
        // The connection stays usable: the dropped body was consumed.
        #expect(try json(try c.get("/put/"))["method"] as? String == "PUT")
    }

    /// `proxy_protocol on`: every new upstream connection starts with a PROXY v1 header naming
    /// the client; such a connection is never reused for another request (keepalive or not). The
    /// upstream here is lb itself on a `listen … proxy_protocol` address.
    @Test func proxyProtocolTowardsTheUpstream() throws {
        let back = freePort()
        let lb = try LB("""
        events {}
        http {
            access_log off;
            upstream pp { server 127.0.0.1:\(back); keepalive 4; }
            server {
                listen 127.0.0.1:{port};
                location / { proxy_protocol on; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_pass http://pp; }
                location /plain/ { proxy_pass http://127.0.0.1:\(back)/; }
            }
            server {
                listen 127.0.0.1:\(back) proxy_protocol;
                location / { return 200 "$proxy_protocol_addr $proxy_protocol_port $proxy_protocol_server_port $connection\\n"; }
            }
        }
        """)
        guard waitForPort(back) else { throw HarnessError("no back port") }
        let c = try RawClient(port: lb.port)
        var connections: Set<String> = []
        for _ in 0..<3 {
            let f = try c.get("/x").text.split(separator: " ")
            #expect(f.count == 4)
            #expect(f.first == "127.0.0.1")
            #expect(Int(f[1]) ?? 0 > 0)
            #expect(f[2] == "\(lb.port)", "the address the client reached")
            connections.insert(String(f[3]))
        }
        #expect(connections.count == 3, "a new upstream connection for each request")
        // Without it, the back server (which expects a header) refuses the connection: 502.
        #expect(try c.get("/plain/").status == 502)
    }

    /// `$upstream_addr` / `$upstream_status` in add_header include the try that answered (and
    /// the failed ones before it), as nginx's do at header time.
    @Test func upstreamVariablesInAddHeaderNameTheAnsweringPeer() throws {
        let good = try Backend(name: "g")
        let dead = freePort()
        let lb = try LB(Self.upstreamConfig([], extra: "server 127.0.0.1:\(dead); server 127.0.0.1:\(good.port);",
                                            location: "add_header X-Up $upstream_addr; add_header X-St $upstream_status;"))
        var sawFailover = false
        for _ in 0..<4 {
            let r = try RawClient(port: lb.port).get("/u")
            #expect(r.status == 200)
            let up = r.header("X-Up") ?? "", st = r.header("X-St") ?? ""
            #expect(up.hasSuffix("127.0.0.1:\(good.port)"), "\(up)")
            #expect(st.hasSuffix("200"), "\(st)")
            if up == "127.0.0.1:\(dead), 127.0.0.1:\(good.port)" { sawFailover = true; #expect(st == "502, 200") }
        }
        #expect(sawFailover, "round-robin tried the dead peer first at least once")
    }

    /// `$upstream_cookie_NAME` (the cookie NAME the upstream's Set-Cookie fields set) and
    /// `$upstream_http_NAME` in add_header, as nginx evaluates them at header time.
    @Test func upstreamCookieVariables() throws {
        let back = freePort()
        let lb = try LB("""
        events {}
        http {
            access_log off;
            server {
                listen 127.0.0.1:{port};
                location / {
                    proxy_pass http://127.0.0.1:\(back);
                    add_header X-A "[$upstream_cookie_a]";
                    add_header X-B "[$upstream_cookie_b]";
                    add_header X-None "[$upstream_cookie_zz]";
                    add_header X-H "[$upstream_http_x_thing]";
                }
            }
            server {
                listen 127.0.0.1:\(back);
                location / {
                    add_header X-Thing "thing value";
                    add_header Set-Cookie "a=1; Path=/";
                    add_header Set-Cookie "b=two; HttpOnly";
                    return 200 "ok\\n";
                }
            }
        }
        """)
        guard waitForPort(back) else { throw HarnessError("no back port") }
        let r = try RawClient(port: lb.port).get("/x")
        #expect(r.header("X-A") == "[1]")
        #expect(r.header("X-B") == "[two]")
        #expect(r.header("X-None") == "[]")
        #expect(r.header("X-H") == "[thing value]", "$upstream_http_* in add_header reads this response")
    }

    @Test func weightsAreObserved() throws {
        let backends = try ["a", "b", "c"].map { try Backend(name: $0) }
        let lb = try LB(Self.upstreamConfig(backends, params: ["weight=5", "", ""]))
        let client = try RawClient(port: lb.port)
        let seq = try (0..<14).map { _ in backendName(try client.get("/")) }
        // nginx's smooth weighted round-robin for {5,1,1}: a a b a c a a, twice.
        #expect(seq == ["a", "a", "b", "a", "c", "a", "a", "a", "a", "b", "a", "c", "a", "a"])
    }

    @Test func forwardedHeadersAsTheBackendSeesThem() throws {
        let b = try Backend(name: "h")
        let lb = try LB(Self.upstreamConfig([b], location: """
            proxy_set_header Host $host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        """))
        let r = try curl(["-H", "X-Forwarded-For: 10.9.8.7", "-H", "Keep-Alive: 300", "-A", "lb-test/1.0", "http://127.0.0.1:\(lb.port)/headers?x=1"])
        let obj = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as! [String: Any]
        let h = obj["headers"] as! [String: String]
        #expect(h["host"] == "127.0.0.1")
        #expect(h["x-real-ip"] == "127.0.0.1")
        #expect(h["x-forwarded-for"] == "10.9.8.7, 127.0.0.1")
        #expect(h["x-forwarded-proto"] == "http")
        #expect(h["user-agent"] == "lb-test/1.0")
        #expect(h["connection"] == "close") // nginx's default towards upstreams
        #expect(h["keep-alive"] == nil) // hop-by-hop, removed
        #expect(obj["path"] as? String == "/headers?x=1")
        #expect(obj["version"] as? String == "HTTP/1.0") // proxy_http_version default
    }

    @Test func defaultHostIsTheProxyHostAndURIPartsReplaceThePrefix() throws {
        let b = try Backend(name: "u")
        let lb = try LB("""
        events {}
        http {
            access_log off;
            server {
                listen 127.0.0.1:{port};
                location /api/ { proxy_pass http://127.0.0.1:\(b.port)/v2/; }
                location /raw/ { proxy_pass http://127.0.0.1:\(b.port); }
            }
        }
        """)
        let c = try RawClient(port: lb.port)
        let a = try c.get("/api/items/7?q=%20x")
        #expect(a.text == "u /v2/items/7?q=%20x")
        let raw = try c.get("/raw/a%2Fb/../c")
        #expect(raw.text == "u /raw/a%2Fb/../c") // no URI part: the request URI passes unchanged
        let h = try c.get("/api/headers")
        _ = h
        let redirect = try c.get("/api")
        #expect(redirect.status == 301 && redirect.header("Location")?.hasSuffix("/api/") == true)
    }

    @Test func failoverWhenABackendDiesHasNoClientVisibleErrors() throws {
        let backends = try (1...3).map { try Backend(name: "f\($0)") }
        let lb = try LB(Self.upstreamConfig(backends))
        let c = try RawClient(port: lb.port)
        for i in 0..<30 { #expect(try c.get("/warm/\(i)").status == 200) }
        backends[1].stop()
        var names: Set<String> = []
        for i in 0..<60 {
            let r = try c.get("/after/\(i)")
            #expect(r.status == 200)
            names.insert(backendName(r))
        }
        #expect(names == ["f1", "f3"])
        #expect(lb.errorLog.contains("connect() failed (111: Connection refused) while connecting to upstream"))
        #expect(lb.errorLog.contains("upstream: \"http://127.0.0.1:\(backends[1].port)/after/"))
        let log = lb.file("logs/access.log")
        #expect(log.contains("\"GET /after/") )
    }

    @Test func backupServesOnlyWhenPrimariesAreDown() throws {
        let p1 = try Backend(name: "p1"), p2 = try Backend(name: "p2"), bk = try Backend(name: "bk")
        let lb = try LB(Self.upstreamConfig([p1, p2, bk], params: ["", "", "backup"]))
        let c = try RawClient(port: lb.port)
        let before = try Set((0..<10).map { _ in backendName(try c.get("/")) })
        #expect(before == ["p1", "p2"])
        p1.stop()
        p2.stop()
        let after = try (0..<6).map { _ in try c.get("/") }
        #expect(after.allSatisfy { $0.status == 200 && backendName($0) == "bk" })
    }

    @Test func allBackendsDownIs502AndSlowBackendIs504() throws {
        let b = try Backend(name: "s")
        let deadPort = freePort()
        let lb = try LB("""
        events {}
        http {
            access_log off;
            upstream dead { server 127.0.0.1:\(deadPort); }
            server {
                listen 127.0.0.1:{port};
                location /dead { proxy_pass http://dead; }
                location /slow { proxy_pass http://127.0.0.1:\(b.port); proxy_read_timeout 300ms; }
            }
        }
        """)
        let c = try RawClient(port: lb.port)
        let r = try c.get("/dead")
        #expect(r.status == 502 && r.text.contains("<title>502 Bad Gateway</title>"))
        let t0 = Date()
        let s = try c.get("/slow?ms=2000")
        #expect(s.status == 504 && s.text.contains("504 Gateway Time-out"))
        #expect(Date().timeIntervalSince(t0) < 1.5)
        #expect(lb.errorLog.contains("upstream timed out (110: Connection timed out) while reading response header from upstream"))
    }

    @Test func nonIdempotentRequestsAreNotRetriedAfterBeingSent() throws {
        let a = try Backend(name: "a"), b = try Backend(name: "b")
        let lb = try LB(Self.upstreamConfig([a, b], location: "proxy_next_upstream error timeout http_503;"))
        let c = try RawClient(port: lb.port)
        // GET answered 503 by the first peer moves to the second.
        let g = try c.get("/status/503")
        #expect(g.status == 503) // both answer 503: the last response passes through
        try c.send("POST /status/503 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
        let p = try c.readResponse()
        #expect(p.status == 503)
        let stats = try a.stats().requests + b.stats().requests
        #expect(stats == 3 + 2) // GET tried twice, POST once; each /stats call counts itself
    }

    @Test func upstreamKeepaliveReusesConnections() throws {
        let b = try Backend(name: "k")
        let lb = try LB(Self.upstreamConfig([b], extra: "keepalive 8;", location: "proxy_http_version 1.1;\nproxy_set_header Connection \"\";"))
        let c = try RawClient(port: lb.port)
        for i in 0..<50 { #expect(try c.get("/k/\(i)").status == 200) }
        let s = try b.stats()
        #expect(s.requests >= 50)
        #expect(s.connections <= 3, "expected reuse, got \(s.connections) upstream connections for 50 requests")
    }

    /// The upstream block's keepalive_requests and keepalive_time end a pooled connection's life:
    /// 5 requests each → 20 requests take 4 connections; a 300 ms lifetime → a new one after it.
    @Test func upstreamKeepaliveRequestsAndTimeEndPooledConnections() throws {
        let b = try Backend(name: "kr")
        let lb = try LB(Self.upstreamConfig([b], extra: "keepalive 8; keepalive_requests 5;",
                                            location: "proxy_http_version 1.1;\nproxy_set_header Connection \"\";"))
        // Each /stats call is one connection of its own (as the harness's readiness probe was).
        let base = try b.stats().connections
        let c = try RawClient(port: lb.port)
        for i in 0..<20 { #expect(try c.get("/kr/\(i)").status == 200) }
        let n = try b.stats().connections - base - 1
        #expect(n == 4, "20 requests, 5 per upstream connection: \(n) connections")
        let t = try Backend(name: "kt")
        let lb2 = try LB(Self.upstreamConfig([t], extra: "keepalive 8; keepalive_time 300ms;",
                                             location: "proxy_http_version 1.1;\nproxy_set_header Connection \"\";"))
        let base2 = try t.stats().connections
        let c2 = try RawClient(port: lb2.port)
        for i in 0..<5 { #expect(try c2.get("/kt/\(i)").status == 200) }
        #expect(try t.stats().connections - base2 - 1 == 1)
        usleep(400_000)
        for i in 0..<5 { #expect(try c2.get("/kt/\(i)").status == 200) }
        // The old connection served one more request after its time was up, then closed: one new.
        let m = try t.stats().connections - base2 - 2
        #expect(m == 2, "\(m) connections")
    }

    /// The client side's keepalive_time: a connection older than it gets `Connection: close`.
    @Test func clientKeepaliveTimeClosesOldConnections() throws {
        let lb = try LB("""
        events {}
        http { access_log off; server { listen 127.0.0.1:{port}; keepalive_time 300ms; location / { return 200 ok; } } }
        """)
        let c = try RawClient(port: lb.port)
        #expect(try c.get("/").header("Connection") == "keep-alive")
        usleep(400_000)
        let r = try c.get("/")
        #expect(r.status == 200 && r.header("Connection") == "close")
    }

    @Test func withoutKeepaliveEachRequestOpensAConnection() throws {
        let b = try Backend(name: "n")
        let lb = try LB(Self.upstreamConfig([b]))
        let c = try RawClient(port: lb.port)
        for i in 0..<10 { _ = try c.get("/n/\(i)") }
        #expect(try b.stats().connections >= 10)
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() throws {
        let b = try Backend(name: "pp")
        let lb = try LB(Self.upstreamConfig([b]))
        let c = try RawClient(port: lb.port)
        try c.send((0..<10).map { "GET /p/\($0) HTTP/1.1\r\nHost: x\r\n\r\n" }.joined())
        for i in 0..<10 {
            let r = try c.readResponse()
            #expect(r.text == "pp /p/\(i)")
        }
    }

    @Test func chunkedResponsesPassThroughAndAreDechunkedForHTTP10() throws {
        let b = try Backend(name: "ch")
        let lb = try LB(Self.upstreamConfig([b]))
        let c = try RawClient(port: lb.port)
        let r = try c.get("/chunked?parts=5")
        #expect(r.header("Transfer-Encoding") == "chunked")
        #expect(r.text == "part0;part1;part2;part3;part4;")
        let c10 = try RawClient(port: lb.port)
        try c10.send("GET /chunked?parts=3 HTTP/1.0\r\n\r\n")
        let r10 = try c10.readResponse()
        #expect(r10.header("Transfer-Encoding") == nil)
        #expect(r10.text == "part0;part1;part2;")
    }

    @Test(arguments: [
        "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost : x\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\rX: y\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n",
    ])
    func smugglingVectorsAreRefused(_ raw: String) throws {
        let b = try Backend(name: "sm")
        let lb = try LB(Self.upstreamConfig([b]))
        let c = try RawClient(port: lb.port)
        try c.send(raw + "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n")
        let r = try c.readResponse()
        #expect(r.status == 400 || r.status == 501)
        #expect(r.header("Connection") == "close")
        #expect(c.isClosedByPeer())
        #expect(try b.stats().requests == 0 || !lb.file("logs/access.log").contains("/smuggled"))
    }

    @Test func slowClientsGet408() throws {
        let lb = try LB("""
        events {}
        http {
            access_log off;
            client_header_timeout 500ms;
            server { listen 127.0.0.1:{port}; location / { return 200 "ok"; } }
        }
        """)
        let c = try RawClient(port: lb.port)
        try c.send("GET / HTTP/1.1\r\nHost: x\r\n")
        let r = try c.readResponse()
        #expect(r.status == 408)
        #expect(c.isClosedByPeer())
    }

    @Test func returnErrorPagesAndHead() throws {
        let lb = try LB("""
        events {}
        http {
            access_log off;
            server {
                listen 127.0.0.1:{port};
                location = /health-check { return 200 "success"; }
                location /gone { return 410; }
                location /moved { return 301 /new; }
                location /teapot { return 418 "short and stout"; }
                location / { return 404; }
                error_page 404 /custom404;
                location = /custom404 { return 404 "custom not found"; }
            }
        }
        """)
        let c = try RawClient(port: lb.port)
        let h = try c.get("/health-check")
        #expect(h.status == 200 && h.text == "success" && h.header("Server") == "lb/0.1.0" && h.header("Date") != nil)
        #expect(try c.get("/gone").status == 410)
        let m = try c.get("/moved", host: "example.test:8080")
        // As nginx: the Host header's name, the listening port (not the Host header's).
        #expect(m.status == 301 && m.header("Location") == "http://example.test:\(lb.port)/new")
        #expect(try c.get("/teapot").text == "short and stout")
        let nf = try c.get("/nothing-here")
        #expect(nf.status == 404 && nf.text == "custom not found")
        try c.send("HEAD /health-check HTTP/1.1\r\nHost: x\r\n\r\n")
        let head = try c.readResponse(head: true)
        #expect(head.status == 200 && head.header("Content-Length") == "7")
        #expect(try c.get("/health-check").text == "success") // the HEAD left no body behind
    }

    @Test func largeTransfersStreamInBoundedMemory() throws {
        let b = try Backend(name: "big")
        let lb = try LB(Self.upstreamConfig([b], location: "client_max_body_size 0;"))
        let size = 100 * 1024 * 1024
        let dir = try Harness.tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let down = try curl(["-o", dir.appendingPathComponent("down").path, "-w", "%{http_code} %{size_download}", "http://127.0.0.1:\(lb.port)/big?bytes=\(size)"], timeout: 120)
        #expect(down.out == "200 \(size)")
        // Upload 100 MB of known content and compare the backend's digest.
        let upFile = dir.appendingPathComponent("up")
        FileManager.default.createFile(atPath: upFile.path, contents: nil)
        let h = try FileHandle(forWritingTo: upFile)
        let block = Data((0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        for _ in 0..<100 { h.write(block) }
        try h.close()
        let up = try curl(["--data-binary", "@" + upFile.path, "-H", "Content-Type: application/octet-stream", "http://127.0.0.1:\(lb.port)/upload"], timeout: 120)
        let obj = try JSONSerialization.jsonObject(with: Data(up.out.utf8)) as! [String: Any]
        #expect(obj["bytes"] as? Int == size)
        let rss = residentKB(lb.started.pid)
        #expect(rss < 64 * 1024, "lb RSS \(rss) KiB after 100 MB each way")
    }

    @Test func reloadUnderLoadDropsNothingAndInvalidReloadKeepsServing() throws {
        let a = try Backend(name: "ra"), b = try Backend(name: "rb")
        let lb = try LB(Self.upstreamConfig([a]))
        let stop = Atomic(false)
        let failures = Atomic(0), total = Atomic(0)
        let port = lb.port
        let group = DispatchGroup()
        for _ in 0..<4 {
            group.enter()
            DispatchQueue.global().async {
                defer { group.leave() }
                while !stop.value {
                    do {
                        let c = try RawClient(port: port, timeout: 5)
                        for _ in 0..<20 where !stop.value {
                            let r = try c.get("/x")
                            total.add(1)
                            if r.status != 200 { failures.add(1) }
                            if r.header("Connection") == "close" { break }
                        }
                    } catch {
                        failures.add(1)
                    }
                }
            }
        }
        /// Lets traffic run until `n` more requests completed (bounded), so every reload happens
        /// under load however slow the machine is.
        func awaitTraffic(_ n: Int) {
            let target = total.value + n
            for _ in 0..<200 where total.value < target { usleep(20_000) }
        }
        awaitTraffic(40)
        // Add the second backend and reload, twice, under load.
        try lb.rewrite(Self.upstreamConfig([a, b]))
        lb.reloadAndWait()
        awaitTraffic(30)
        try lb.rewrite("this is { not valid")
        lb.reloadAndWait()
        awaitTraffic(31)
        stop.value = true
        group.wait()
        #expect(failures.value == 0, "\(failures.value) failed of \(total.value)")
        #expect(total.value > 100)
        #expect(try b.stats().requests > 0, "the reloaded upstream list took effect")
        #expect(lb.errorLog.contains("reload failed, the previous configuration keeps serving"))
        #expect(try RawClient(port: lb.port).get("/after").status == 200)
    }

    @Test func sigquitFinishesInFlightRequestsThenExits() throws {
        let b = try Backend(name: "q")
        let lb = try LB(Self.upstreamConfig([b]))
        let c = try RawClient(port: lb.port)
        try waitForArrival(at: [b]) { try c.send("GET /slow?ms=700 HTTP/1.1\r\nHost: x\r\n\r\n") }
        lb.started.signal(SIGQUIT)
        let r = try c.readResponse()
        #expect(r.status == 200 && r.text == "q slow")
        #expect(lb.started.wait(timeout: 5))
        #expect(lb.started.process.terminationStatus == 0)
    }

    @Test func dashSReloadAndStopUseThePidFile() throws {
        let lb = try LB("events {}\nhttp { access_log off; server { listen 127.0.0.1:{port}; location / { return 200 \"one\"; } } }")
        #expect(try RawClient(port: lb.port).get("/").text == "one")
        try lb.rewrite("events {}\nhttp { access_log off; server { listen 127.0.0.1:{port}; location / { return 200 \"two\"; } } }")
        let r = try Harness.run("lb", ["-p", lb.dir.path, "-c", "lb.conf", "-s", "reload"], cwd: lb.dir)
        #expect(r.status == 0)
        var text = ""
        for _ in 0..<50 {
            text = try RawClient(port: lb.port).get("/").text
            if text == "two" { break }
            usleep(50_000)
        }
        #expect(text == "two")
        let s = try Harness.run("lb", ["-p", lb.dir.path, "-c", "lb.conf", "-s", "stop"], cwd: lb.dir)
        #expect(s.status == 0)
        #expect(lb.started.wait(timeout: 5))
    }
}

/// Resident set size of a process in KiB (from /proc).
func residentKB(_ pid: Int32) -> Int {
    guard let s = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return -1 }
    for line in s.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        return Int(line.split(separator: " ").dropFirst().first ?? "") ?? -1
    }
    return -1
}

/// A tiny lock-protected box for test threads.
final class Atomic<T>: @unchecked Sendable {
    private var v: T
    private let lock = NSLock()
    init(_ v: T) { self.v = v }
    var value: T {
        get { lock.lock(); defer { lock.unlock() }; return v }
        set { lock.lock(); v = newValue; lock.unlock() }
    }
}

extension Atomic where T == Int {
    func add(_ n: Int) { lock.lock(); v += n; lock.unlock() }
}
