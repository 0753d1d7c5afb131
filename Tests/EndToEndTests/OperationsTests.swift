import Foundation
import Glibc
import Synchronization
import Testing

/// Active health checks, the status page and its JSON, and Prometheus metrics, over real sockets.
@Suite(.serialized) struct OperationsTests {
    static func config(_ backends: [Backend], healthCheck: String, extra: String = "") -> String {
        let servers = backends.map { "server 127.0.0.1:\($0.port);" }.joined(separator: "\n        ")
        return """
        worker_processes 2;
        error_log stderr info;
        events {}
        http {
            access_log off;
            match hello { status 200; header X-Backend; body ~ "^b[0-9]"; }
            upstream app {
                \(servers)
                \(healthCheck)
            }
            server {
                listen 127.0.0.1:{port};
                location / { proxy_pass http://app; }
                location /lb-status { status; }
                location = /metrics { metrics; }
                \(extra)
            }
        }
        """
    }

    func status(_ lb: LB) throws -> [String: Any] {
        let r = try RawClient(port: lb.port).get("/lb-status?format=json")
        #expect(r.header("Content-Type") == "application/json")
        return try JSONSerialization.jsonObject(with: Data(r.body)) as! [String: Any]
    }

    func peers(_ s: [String: Any]) -> [[String: Any]] {
        ((s["upstreams"] as! [[String: Any]]).first { $0["name"] as? String == "app" }!["peers"]) as! [[String: Any]]
    }

    func waitFor(_ what: String, timeout: TimeInterval, _ cond: () throws -> Bool) rethrows -> TimeInterval? {
        let start = Date()
        while Date().timeIntervalSince(start) < timeout {
            if try cond() { return Date().timeIntervalSince(start) }
            usleep(20_000)
        }
        return nil
    }

    @Test func aKilledBackendIsMarkedDownByActiveChecksAndComesBackAfterPasses() throws {
        let b1 = try Backend(name: "b1")
        var b2 = try Backend(name: "b2")
        let port2 = b2.port
        let lb = try LB(Self.config([b1, b2], healthCheck: "health_check uri=/hc interval=300ms timeout=200ms fails=2 passes=2 match=hello;"))
        // Clients keep asking the whole time; none may fail.
        let stop = Mutex(false), finished = Mutex(false)
        let results = Mutex<[Int]>([])
        let failures = Mutex<[String]>([])
        let port = lb.port
        let client = Thread {
            while !stop.withLock({ $0 }) {
                var s = -1
                do { s = try RawClient(port: port).get("/n").status } catch {
                    failures.withLock { $0.append("\(Date()): \(error)") }
                }
                if s != 200 && s != -1 { failures.withLock { $0.append("\(Date()): status \(s)") } }
                results.withLock { $0.append(s) }
                usleep(5_000)
            }
            finished.withLock { $0 = true }
        }
        client.start()
        defer { stop.withLock { $0 = true } }
        // Traffic flows and both peers have passed checks before one is killed.
        #expect(waitUntil { results.withLock { $0.count } >= 10 })
        #expect(try waitUntil { try peers(status(lb)).allSatisfy { ($0["health_checks"] as! [[String: Any]]).contains { $0["ok"] as? Bool == true } } })
        b2.stop()
        let killed = Date()
        // Down within interval × fails (+ one timeout and scheduling slack).
        let down = waitFor("down", timeout: 5) { lb.errorLog.contains("peer 127.0.0.1:\(port2) is down") }
        #expect(down != nil)
        let downAfter = Date().timeIntervalSince(killed)
        #expect(downAfter < 0.3 * 2 + 0.2 + 0.5, "marked down after \(downAfter) s")
        let s = try status(lb)
        let p2 = peers(s).first { $0["address"] as? String == "127.0.0.1:\(port2)" }!
        #expect(p2["state"] as? String == "down")
        #expect((p2["last_failure"] as? String ?? "").contains("health check"))
        #expect((p2["health_checks"] as! [[String: Any]]).last?["ok"] as? Bool == false)
        // Back on the same port: up again after 2 passes.
        b2 = try Backend(name: "b2", port: port2)
        let up = waitFor("up", timeout: 5) { lb.errorLog.contains("peer 127.0.0.1:\(port2) is up") }
        #expect(up != nil)
        // Some more traffic with both peers up, then the client stops.
        let sofar = results.withLock { $0.count }
        #expect(waitUntil { results.withLock { $0.count } >= sofar + 10 })
        stop.withLock { $0 = true }
        #expect(waitUntil { finished.withLock { $0 } })
        let all = results.withLock { $0 }
        #expect(all.count > 20)
        #expect(all.allSatisfy { $0 == 200 },
                "failed client requests: \(failures.withLock { $0 }); error log: \(lb.errorLog.split(separator: "\n").filter { !$0.contains("health check") || $0.contains("down") || $0.contains("up") }.suffix(30).joined(separator: "\n"))")
        // Both serve again.
        let names = try (0..<4).map { _ in try RawClient(port: lb.port).get("/").text.prefix(2) }
        #expect(Set(names) == ["b1", "b2"])
        _ = b2
    }

    @Test func aMatchBlockJudgesStatusHeadersAndBody() throws {
        let b1 = try Backend(name: "b1")
        // The check URI answers 503: with the match block (status 200) the peer goes down.
        let lb = try LB(Self.config([b1], healthCheck: "health_check uri=/status/503 interval=200ms fails=1 match=hello;"))
        #expect(waitFor("down", timeout: 3) { lb.errorLog.contains("is down") && lb.errorLog.contains("status 503") } != nil)
        #expect(try RawClient(port: lb.port).get("/").status == 502)
        let s = try status(lb)
        #expect(peers(s)[0]["state"] as? String == "down")
    }

    /// A reload that changes only a `match` block keeps the upstream (and its probes) but judges
    /// by the new block: a peer passing `status 200` goes down under `status 404`.
    @Test func aReloadedMatchBlockJudgesTheNextProbes() throws {
        let b1 = try Backend(name: "b1")
        let config = Self.config([b1], healthCheck: "health_check uri=/hc interval=200ms fails=1 passes=1 match=hello;")
        let lb = try LB(config)
        #expect(waitFor("up", timeout: 5) { (try? RawClient(port: lb.port).get("/").status) == 200 } != nil)
        try lb.rewrite(config.replacingOccurrences(of: "match hello { status 200;", with: "match hello { status 404;"))
        lb.reloadAndWait()
        #expect(waitFor("down", timeout: 5) { lb.errorLog.contains("is down") && lb.errorLog.contains("status 200") } != nil,
                "\(lb.errorLog.suffix(1000))")
        #expect(try RawClient(port: lb.port).get("/").status == 502)
    }

    @Test func mandatoryChecksKeepNewPeersOutUntilTheirFirstPass() throws {
        let b1 = try Backend(name: "b1")
        // The check takes 700 ms to answer: until it passes, the peer is "checking" and gets nothing.
        let lb = try LB(Self.config([b1], healthCheck: "health_check uri=/slow?ms=700 interval=5s timeout=2s mandatory;"))
        #expect(try RawClient(port: lb.port).get("/").status == 502)
        #expect(peers(try status(lb))[0]["state"] as? String == "checking")
        #expect(try b1.stats().requests <= 2) // the probe and this /stats call: no client request reached it
        let up = waitFor("up", timeout: 3) { lb.errorLog.contains("is up") }
        #expect(up != nil)
        #expect(try RawClient(port: lb.port).get("/").status == 200)
        #expect(peers(try status(lb))[0]["state"] as? String == "up")
    }

    @Test func statusJSONReflectsTrafficStatesAndCaches() throws {
        let b1 = try Backend(name: "b1"), b2 = try Backend(name: "b2")
        let cache = try Harness.tempDirectory()
        defer { try? FileManager.default.removeItem(at: cache) }
        let lb = try LB(Self.config([b1, b2], healthCheck: "", extra: """
            location /c/ { proxy_pass http://app/; proxy_cache z; proxy_cache_valid 200 1m; }
        """).replacingOccurrences(of: "access_log off;", with: "access_log off; proxy_cache_path \(cache.path) keys_zone=z:1m;"))
        let c = try RawClient(port: lb.port)
        for i in 0..<20 { #expect(try c.get("/r\(i)").status == 200) }
        for _ in 0..<3 { _ = try c.get("/c/gen?x=1") }
        _ = try c.get("/status/404")
        b2.stop()
        for _ in 0..<4 { _ = try c.get("/after") }
        // A request is counted when it is logged, just after its response went out (possibly on
        // the other worker than the status request): wait for the last one to be counted.
        var s = try status(lb)
        for _ in 0..<50 {
            // Workers count a request when its first bytes arrive; status classes when it is
            // logged: wait for the classes too.
            let served = (s["workers"] as! [[String: Any]]).map { $0["requests"] as! Int }.reduce(0, +)
            let logged = ((s["servers"] as! [[String: Any]])[0]["requests"] as! [String: Int])["2xx"] ?? 0
            if served >= 28 && logged >= 27 { break }
            usleep(20_000)
            s = try status(lb)
        }
        let ps = peers(s)
        let requests = ps.map { $0["requests"] as! Int }.reduce(0, +)
        #expect(requests >= 20 + 1 + 1 + 4) // cache hits never reach a peer
        let dead = ps.first { $0["address"] as? String == "127.0.0.1:\(b2.port)" }!
        #expect((dead["failures"] as! Int) >= 1)
        #expect((dead["last_failure"] as? String ?? "").contains("connect() failed"))
        let live = ps.first { $0["address"] as? String == "127.0.0.1:\(b1.port)" }!
        let rt = live["response_ms"] as! [String: Any]
        #expect(rt["p50"] is Double || rt["p50"] is Int)
        let server = (s["servers"] as! [[String: Any]])[0]
        let classes = server["requests"] as! [String: Int]
        #expect(classes["2xx"]! >= 27)
        #expect(classes["4xx"]! >= 1)
        let zone = (s["caches"] as! [[String: Any]])[0]
        #expect(zone["zone"] as? String == "z")
        #expect(zone["hits"] as? Int == 2)
        #expect(zone["misses"] as? Int == 1)
        #expect(zone["entries"] as? Int == 1)
        let workers = s["workers"] as! [[String: Any]]
        #expect(workers.count == 2)
        #expect(workers.map { $0["requests"] as! Int }.reduce(0, +) >= 28)
    }

    @Test func metricsPassPromtoolAfterTraffic() throws {
        let b1 = try Backend(name: "b1")
        let lb = try LB(Self.config([b1], healthCheck: "health_check uri=/hc interval=200ms;"))
        let c = try RawClient(port: lb.port)
        for _ in 0..<10 { _ = try c.get("/x") }
        // The ten are counted already (logged on this connection before it reads the next request);
        // a check passes within an interval: poll until one has. Each earlier poll is a 2xx itself.
        var r = RawClient.Response(status: -1, headers: [], body: [])
        var polls = 0
        #expect(try waitUntil {
            polls += 1
            r = try c.get("/metrics")
            return r.text.split(separator: "\n").contains { $0.contains("result=\"pass\"}") && !$0.hasSuffix(" 0") }
        })
        #expect(r.status == 200)
        #expect(r.header("Content-Type")?.hasPrefix("text/plain; version=0.0.4") == true)
        let text = r.text
        #expect(text.contains("lb_upstream_peer_requests_total{upstream=\"app\",peer=\"127.0.0.1:\(b1.port)\"} 10"))
        #expect(text.contains("lb_upstream_peer_response_seconds_count{upstream=\"app\",peer=\"127.0.0.1:\(b1.port)\"} 10"))
        #expect(text.contains("lb_server_requests_total{server=\"\",index=\"0\",class=\"2xx\"} \(10 + polls - 1)\n"))
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/promtool") else {
            Issue.record("promtool is not installed (Tests/run.sh installs Debian's prometheus package)")
            return
        }
        let file = try Harness.tempDirectory().appendingPathComponent("metrics.txt")
        try text.write(to: file, atomically: true, encoding: .utf8)
        let p = Harness.process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", "promtool check metrics < '\(file.path)'"]
        let err = Pipe()
        p.standardError = err
        p.standardOutput = err
        try p.run()
        p.waitUntilExit()
        let out = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(p.terminationStatus == 0, "promtool: \(out)")
        #expect(out.isEmpty, "promtool: \(out)")
    }

    /// Headless Chromium renders the status page (its script fetches the JSON) and shows the down
    /// peer; the screenshot is the one docs/operations.md shows (copied there with LB_UPDATE_DOCS=1).
    @Test func theStatusPageRendersInABrowserAndShowsADownPeer() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/chromium") else {
            Issue.record("chromium is not installed (Tests/run.sh installs it)")
            return
        }
        let b1 = try Backend(name: "b1"), b2 = try Backend(name: "b2")
        let lb = try LB(Self.config([b1, b2], healthCheck: "health_check uri=/hc interval=200ms fails=1;"))
        for i in 0..<30 { _ = try RawClient(port: lb.port).get("/p\(i)") }
        b2.stop()
        #expect(waitFor("down", timeout: 3) { lb.errorLog.contains("is down") } != nil)
        let dir = try Harness.tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = "http://127.0.0.1:\(lb.port)/lb-status"
        let dom = try Started(URL(fileURLWithPath: "/usr/bin/chromium"),
                              ["--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=\(dir.path)/u1", "--virtual-time-budget=3000", "--dump-dom", url])
        #expect(dom.wait(timeout: 60))
        let html = (try? String(contentsOf: dom.stdoutURL, encoding: .utf8)) ?? ""
        #expect(html.contains("1 peer down: app 127.0.0.1:\(b2.port)"), "rendered: \(html.prefix(3000))")
        #expect(html.contains("<span class=\"chip down\">down</span>"))
        #expect(html.contains("<span class=\"chip up\">up</span>"))
        let shot = dir.appendingPathComponent("status.png")
        let png = try Started(URL(fileURLWithPath: "/usr/bin/chromium"),
                              ["--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=\(dir.path)/u2", "--virtual-time-budget=3000",
                               "--hide-scrollbars", "--window-size=1200,700", "--screenshot=\(shot.path)", url])
        #expect(png.wait(timeout: 60))
        let data = try Data(contentsOf: shot)
        #expect(data.count > 5000 && data.starts(with: [0x89, 0x50, 0x4E, 0x47]))
        if ProcessInfo.processInfo.environment["LB_UPDATE_DOCS"] == "1" {
            let dest = Harness.repositoryRoot.appendingPathComponent("docs/status-page.png")
            try? FileManager.default.removeItem(at: dest)
            try data.write(to: dest)
        }
    }
}

/// gzip with nginx's meaning, checked with curl --compressed (a real client's gzip decoder).
@Suite(.serialized) struct GzipTests {
    static func config(_ b: Backend, www: String, cache: String) -> String {
        """
        worker_processes 1;
        error_log stderr info;
        events {}
        http {
            access_log off;
            types { text/css css; text/html html; application/javascript js; image/png png; }
            gzip on;
            gzip_types text/plain text/css application/javascript;
            gzip_min_length 256;
            gzip_vary on;
            gzip_comp_level 5;
            proxy_cache_path \(cache) keys_zone=z:1m;
            upstream app { server 127.0.0.1:\(b.port); }
            server {
                listen 127.0.0.1:{port};
                location / { proxy_pass http://app; }
                location /c/ { proxy_pass http://app/; proxy_cache z; proxy_cache_valid 200 1m; add_header X-Cache $upstream_cache_status; }
                location /www/ { alias \(www)/; }
                location /off/ { gzip off; proxy_pass http://app/; }
            }
        }
        """
    }

    func headers(_ out: String) -> [String: String] {
        var h: [String: String] = [:]
        for line in out.split(separator: "\r\n") where line.contains(":") {
            let parts = line.split(separator: ":", maxSplits: 1)
            h[parts[0].lowercased()] = parts[1].trimmingCharacters(in: .whitespaces)
        }
        return h
    }

    /// curl with --compressed: (headers, decoded body).
    func fetch(_ url: String, _ extra: [String] = []) throws -> ([String: String], Data) {
        let dir = try Harness.tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let body = dir.appendingPathComponent("body")
        let r = try curl(["--compressed", "-D", "-", "-o", body.path] + extra + [url])
        return (headers(r.out), (try? Data(contentsOf: body)) ?? Data())
    }

    @Test func proxiedAndStaticResponsesRoundTrip() throws {
        let b = try Backend(name: "g")
        let www = try Harness.tempDirectory(), cache = try Harness.tempDirectory()
        defer { try? FileManager.default.removeItem(at: www); try? FileManager.default.removeItem(at: cache) }
        let css = String(repeating: "body { margin: 0; padding: 0; color: #333; }\n", count: 200)
        try css.write(to: www.appendingPathComponent("site.css"), atomically: true, encoding: .utf8)
        try Data(repeating: 7, count: 5000).write(to: www.appendingPathComponent("logo.png"))
        let lb = try LB(Self.config(b, www: www.path, cache: cache.path))
        let base = "http://127.0.0.1:\(lb.port)"
        // Proxied, with a length: compressed, chunked, Vary, and the same bytes after decoding.
        let plain = try RawClient(port: b.port).get("/gen?size=20000").body
        let (h1, d1) = try fetch(base + "/gen?size=20000")
        #expect(h1["content-encoding"] == "gzip")
        #expect(h1["transfer-encoding"] == "chunked")
        #expect(h1["content-length"] == nil)
        #expect(h1["vary"] == "Accept-Encoding")
        #expect(Array(d1).count == 20000)
        // The same bytes as the uncompressed response (apart from the backend's request counter).
        #expect(Array(d1.suffix(19000)) == Array(plain.suffix(19000)))
        #expect(String(decoding: d1.prefix(18), as: UTF8.self) == "g /gen?size=20000 ")
        // Proxied, chunked upstream of 300 KB (several compressed chunks).
        let (h2, d2) = try fetch(base + "/gen?size=300000&chunked=1")
        #expect(h2["content-encoding"] == "gzip")
        #expect(d2.count == 300000)
        #expect(d2.suffix(10) == Data(repeating: UInt8(ascii: "."), count: 10))
        // What went over the wire really is gzip, and smaller.
        let raw = try RawClient(port: lb.port).get("/gen?size=20000", headers: ["Accept-Encoding: gzip"])
        #expect(Array(raw.body.prefix(2)) == [0x1F, 0x8B])
        #expect(raw.body.count < 2000)
        // The chunked, compressed response keeps the connection usable: two more on it.
        let k = try RawClient(port: lb.port)
        for _ in 0..<2 {
            let r = try k.get("/gen?size=30000&chunked=1", headers: ["Accept-Encoding: gzip"])
            #expect(r.status == 200 && Array(r.body.prefix(2)) == [0x1F, 0x8B])
        }
        // Static: compressed whole, Content-Length of the compressed bytes, weak ETag.
        let (h3, d3) = try fetch(base + "/www/site.css")
        #expect(h3["content-encoding"] == "gzip")
        #expect(h3["etag"]?.hasPrefix("W/\"") == true)
        #expect(String(decoding: d3, as: UTF8.self) == css)
        let rawCSS = try RawClient(port: lb.port).get("/www/site.css", headers: ["Accept-Encoding: gzip"])
        #expect(Int(rawCSS.header("Content-Length") ?? "") == rawCSS.body.count)
        #expect(rawCSS.body.count < css.utf8.count / 5)
        // A cache hit is compressed too, from the stored (uncompressed) entry.
        _ = try fetch(base + "/c/gen?size=9000")
        let (h4, d4) = try fetch(base + "/c/gen?size=9000")
        #expect(h4["x-cache"] == "HIT")
        #expect(h4["content-encoding"] == "gzip")
        #expect(d4.count == 9000)
    }

    @Test func skippedWhenItMustNotApply() throws {
        let b = try Backend(name: "g")
        let www = try Harness.tempDirectory(), cache = try Harness.tempDirectory()
        defer { try? FileManager.default.removeItem(at: www); try? FileManager.default.removeItem(at: cache) }
        try String(repeating: "x", count: 10000).write(to: www.appendingPathComponent("big.css"), atomically: true, encoding: .utf8)
        try Data(repeating: 7, count: 5000).write(to: www.appendingPathComponent("logo.png"))
        let lb = try LB(Self.config(b, www: www.path, cache: cache.path))
        let c = try RawClient(port: lb.port)
        let ae = ["Accept-Encoding: gzip, deflate"]
        // Small (below gzip_min_length), excluded type, already encoded (never twice), gzip off.
        #expect(c.get2("/gen?size=100", ae).header("Content-Encoding") == nil)
        #expect(c.get2("/gen?size=5000&ct=image/png", ae).header("Content-Encoding") == nil)
        let enc = c.get2("/gen?size=5000&ce=br", ae)
        #expect(enc.header("Content-Encoding") == "br")
        #expect(enc.body.count == 5000)
        #expect(c.get2("/off/gen?size=5000", ae).header("Content-Encoding") == nil)
        #expect(c.get2("/www/logo.png", ae).header("Content-Encoding") == nil)
        // No Accept-Encoding, or q=0: identity.
        #expect(c.get2("/gen?size=5000", []).header("Content-Encoding") == nil)
        #expect(c.get2("/gen?size=5000", ["Accept-Encoding: gzip;q=0"]).header("Content-Encoding") == nil)
        // A range of a compressed body is never served: as nginx (its gzip filter runs before the
        // range filter, DifferentialHeadStageTests), a client that takes gzip gets the whole body
        // compressed; one that does not gets its range, plain.
        let whole = c.get2("/www/big.css", ae + ["Range: bytes=0-99"])
        #expect(whole.status == 200)
        #expect(whole.header("Content-Encoding") == "gzip")
        #expect(whole.header("Content-Range") == nil)
        let r = c.get2("/www/big.css", ["Range: bytes=0-99"])
        #expect(r.status == 206)
        #expect(r.header("Content-Encoding") == nil)
        #expect(r.body.count == 100)
        // HTTP/1.0 (gzip_http_version 1.1): not compressed.
        let old = try RawClient(port: lb.port)
        try old.send("GET /gen?size=5000 HTTP/1.0\r\nAccept-Encoding: gzip\r\n\r\n")
        #expect(try old.readResponse().header("Content-Encoding") == nil)
    }
}

extension RawClient {
    /// GET with extra headers, failing the test on a transport error.
    func get2(_ path: String, _ headers: [String]) -> Response {
        (try? get(path, headers: headers)) ?? Response(status: -1, headers: [], body: [])
    }
}

/// The runtime upstream API over real sockets (curl and raw clients).
@Suite(.serialized) struct APITests {
    static func config(_ first: Backend, statePath: String, allow: String = "allow 127.0.0.1; deny all;") -> String {
        """
        worker_processes 2;
        error_log stderr info;
        events {}
        http {
            access_log off;
            upstream app {
                server 127.0.0.1:\(first.port) max_fails=0;
                state \(statePath);
            }
            server {
                listen 127.0.0.1:{port};
                location / { proxy_pass http://app; }
                location /lb-api/ { api; \(allow) }
                location /no-rules/ { api; }
            }
        }
        """
    }

    func api(_ lb: LB, _ method: String, _ path: String, _ body: String? = nil, source: String? = nil) throws -> (Int, [String: Any]) {
        let c = try RawClient(port: lb.port, source: source)
        var req = "\(method) /lb-api\(path) HTTP/1.1\r\nHost: x\r\n"
        if let body { req += "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)" } else { req += "\r\n" }
        try c.send(req)
        let r = try c.readResponse()
        let obj = (try? JSONSerialization.jsonObject(with: Data(r.body))) as? [String: Any] ?? [:]
        return (r.status, obj)
    }

    func rotation(_ lb: LB, _ n: Int) throws -> [String] {
        let c = try RawClient(port: lb.port)
        return try (0..<n).map { _ in String(try c.get("/who").text.prefix(2)) }
    }

    @Test func addDrainRemoveApplyAtOnceAndSurviveReloadAndRestart() throws {
        let b1 = try Backend(name: "b1"), b2 = try Backend(name: "b2"), b3 = try Backend(name: "b3")
        let dir = try Harness.tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let state = dir.appendingPathComponent("app.state").path
        let conf = Self.config(b1, statePath: state)
        var lb: LB? = try LB(conf)
        #expect(Set(try rotation(lb!, 4)) == ["b1"])
        // Add: in the rotation from the next request, on every worker (new connections each time).
        let (s1, p2) = try api(lb!, "POST", "/upstreams/app/peers", "{\"address\": \"127.0.0.1:\(b2.port)\", \"weight\": 1}")
        #expect(s1 == 201)
        let id2 = p2["id"] as! Int
        let mixed = try (0..<8).map { _ in String(try RawClient(port: lb!.port).get("/who").text.prefix(2)) }
        #expect(Set(mixed) == ["b1", "b2"])
        // Weight 3: b2 gets three of every four.
        #expect(try api(lb!, "PATCH", "/upstreams/app/peers/\(id2)", "{\"weight\": 3}").0 == 200)
        let weighted = try rotation(lb!, 8)
        #expect(weighted.filter { $0 == "b2" }.count == 6)
        // Drain: a request in flight on b2 finishes; new ones avoid b2.
        #expect(try api(lb!, "PATCH", "/upstreams/app/peers/\(id2)", "{\"weight\": 1}").0 == 200)
        let slow = try RawClient(port: lb!.port)
        var inFlight: RawClient.Response?
        for _ in 0..<4 where inFlight == nil {
            // Which peer took it shows only at the end; drain b2 while it may be running.
            try waitForArrival(at: [b1, b2]) { try slow.send("GET /slow?ms=600 HTTP/1.1\r\nHost: x\r\n\r\n") }
            let (ds, dp) = try api(lb!, "PATCH", "/upstreams/app/peers/\(id2)", "{\"drain\": true}")
            #expect(ds == 200 && dp["state"] as? String == "draining")
            let r = try slow.readResponse()
            #expect(r.status == 200)
            if r.text.hasPrefix("b2") { inFlight = r }
            #expect(try api(lb!, "PATCH", "/upstreams/app/peers/\(id2)", "{\"drain\": false}").0 == 200)
        }
        #expect(inFlight != nil, "no slow request landed on b2 while it was draining")
        #expect(try api(lb!, "PATCH", "/upstreams/app/peers/\(id2)", "{\"drain\": true}").0 == 200)
        #expect(Set(try rotation(lb!, 6)) == ["b1"])
        // Remove b2, add b3; the state file holds the result.
        #expect(try api(lb!, "DELETE", "/upstreams/app/peers/\(id2)").0 == 200)
        #expect(try api(lb!, "POST", "/upstreams/app/peers", "{\"address\": \"127.0.0.1:\(b3.port)\"}").0 == 201)
        #expect(Set(try rotation(lb!, 6)) == ["b1", "b3"])
        let saved = try String(contentsOfFile: state, encoding: .utf8)
        #expect(saved.contains("server 127.0.0.1:\(b3.port)") && !saved.contains("127.0.0.1:\(b2.port)"))
        // A reload re-reads the config and keeps the API's peers (from the state file).
        let reloads = lb!.reloadsLogged
        let reload = try Harness.run("lb", ["-p", lb!.dir.path, "-c", "lb.conf", "-s", "reload"], cwd: lb!.dir)
        #expect(reload.status == 0)
        lb!.waitForReload(since: reloads)
        #expect(Set(try rotation(lb!, 6)) == ["b1", "b3"])
        // So does a restart.
        lb!.stop()
        lb = nil
        let again = try LB(conf)
        #expect(Set(try rotation(again, 6)) == ["b1", "b3"])
        let (ls, list) = try api(again, "GET", "/upstreams/app")
        #expect(ls == 200)
        #expect((list["peers"] as! [[String: Any]]).map { $0["address"] as! String }.sorted() == ["127.0.0.1:\(b1.port)", "127.0.0.1:\(b3.port)"].sorted())
    }

    @Test func badInputIsRefusedAndNothingIsHalfApplied() throws {
        let b1 = try Backend(name: "b1")
        let dir = try Harness.tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let lb = try LB(Self.config(b1, statePath: dir.appendingPathComponent("s").path))
        let (_, list) = try api(lb, "GET", "/upstreams")
        let peer = ((list["upstreams"] as! [[String: Any]])[0]["peers"] as! [[String: Any]])[0]
        let id = peer["id"] as! Int
        // A valid weight with an invalid drain: 400, and the weight is not changed.
        let (s, e) = try api(lb, "PATCH", "/upstreams/app/peers/\(id)", "{\"weight\": 5, \"drain\": \"yes\"}")
        #expect(s == 400)
        #expect(e["error"] is String)
        let (_, after) = try api(lb, "GET", "/upstreams/app/peers/\(id)")
        #expect(after["weight"] as? Int == 1)
        #expect(try api(lb, "POST", "/upstreams/app/peers", "{\"address\": \"example.com:80\"}").0 == 400)
        #expect(try api(lb, "POST", "/upstreams/app/peers", "{\"address\": \"127.0.0.1:1\", \"bogus\": 1}").0 == 400)
        #expect(try api(lb, "POST", "/upstreams/app/peers", "not json").0 == 400)
        #expect(try api(lb, "POST", "/upstreams/app/peers", "{\"address\": \"127.0.0.1:\(b1.port)\"}").0 == 409)
        #expect(try api(lb, "GET", "/upstreams/nope").0 == 404)
        #expect(try api(lb, "DELETE", "/upstreams/app/peers/99").0 == 404)
        #expect(try api(lb, "PUT", "/upstreams/app").0 == 405)
        // Still one peer, still serving.
        let (_, final) = try api(lb, "GET", "/upstreams/app")
        #expect((final["peers"] as! [[String: Any]]).count == 1)
        #expect(try RawClient(port: lb.port).get("/").status == 200)
    }

    @Test func refusedFromAnAddressNotAllowedAndWithoutRules() throws {
        let b1 = try Backend(name: "b1")
        let dir = try Harness.tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let lb = try LB(Self.config(b1, statePath: dir.appendingPathComponent("s").path))
        #expect(try api(lb, "GET", "/upstreams", source: "127.0.0.1").0 == 200)
        // 127.0.0.2 is loopback too, but not allowed.
        #expect(try api(lb, "GET", "/upstreams", source: "127.0.0.2").0 == 403)
        #expect(try api(lb, "POST", "/upstreams/app/peers", "{\"address\": \"127.0.0.1:2\"}", source: "127.0.0.2").0 == 403)
        // An api location without allow/deny refuses everyone.
        let c = try RawClient(port: lb.port)
        #expect(try c.get("/no-rules/upstreams").status == 403)
        let (_, list) = try api(lb, "GET", "/upstreams/app")
        #expect((list["peers"] as! [[String: Any]]).count == 1)
    }
}
