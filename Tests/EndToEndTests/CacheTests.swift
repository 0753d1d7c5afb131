import Foundation
import Glibc
import Synchronization
import Testing

/// proxy_cache over real sockets: lb in front of the Python backend, whose /gen route sets the
/// caching headers from its query and numbers its responses per URL (`n=1`, `n=2`, …), so a body
/// shows which upstream response it came from and /counts shows how many reached the upstream.
@Suite(.serialized) struct CacheTests {
    static func config(_ b: Backend, cacheDir: String, zone: String = "keys_zone=z:1m", location: String = "", extra: String = "") -> String {
        """
        worker_processes 2;
        error_log stderr info;
        events {}
        http {
            access_log logs/access.log;
            proxy_cache_path \(cacheDir) levels=1:2 \(zone);
            upstream app { server 127.0.0.1:\(b.port) max_fails=0; }
            server {
                listen 127.0.0.1:{port};
                location / {
                    proxy_pass http://app;
                    proxy_cache z;
                    proxy_cache_valid 200 1m;
                    add_header X-Cache $upstream_cache_status;
                    \(location)
                }
                \(extra)
            }
        }
        """
    }

    func cacheDir() throws -> URL { try Harness.tempDirectory() }

    func counts(_ b: Backend) throws -> [String: Int] {
        let r = try RawClient(port: b.port).get("/counts")
        return try JSONSerialization.jsonObject(with: Data(r.body)) as! [String: Int]
    }

    func get(_ lb: LB, _ path: String, headers: [String] = []) throws -> RawClient.Response {
        try RawClient(port: lb.port).get(path, headers: headers)
    }

    /// Files under the cache directory (entries; not the temp directory).
    func entryFiles(_ dir: URL) -> [URL] {
        let e = FileManager.default.enumerator(at: dir, includingPropertiesForKeys: [.isRegularFileKey])
        var out: [URL] = []
        while let u = e?.nextObject() as? URL {
            if u.path.contains("/.lb-temp/") { continue }
            if (try? u.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true { out.append(u) }
        }
        return out
    }

    @Test func missThenHitWithTheSameBodyAndOneUpstreamRequest() throws {
        let b = try Backend(name: "c")
        let dir = try cacheDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let lb = try LB(Self.config(b, cacheDir: dir.path))
        let first = try get(lb, "/gen?size=5000")
        #expect(first.status == 200)
        #expect(first.header("X-Cache") == "MISS")
        for _ in 0..<5 {
            let again = try get(lb, "/gen?size=5000")
            #expect(again.header("X-Cache") == "HIT")
            #expect(again.body == first.body)
            #expect(again.header("Content-Length") == "5000")
            #expect(again.header("X-Backend") == "c")
        }
        #expect(try counts(b)["/gen?size=5000"] == 1)
        // A real client (curl) gets the same bytes from the cache.
        let c = try curl(["http://127.0.0.1:\(lb.port)/gen?size=5000"])
        #expect(Array(c.out.utf8) == first.body)
        // The file is named by the MD5 of the key under levels=1:2, as nginx names it.
        let key = "httpapp/gen?size=5000"
        let md5 = md5Hex(key)
        let files = entryFiles(dir).map(\.lastPathComponent)
        #expect(files.contains(md5))
        let f = entryFiles(dir).first { $0.lastPathComponent == md5 }!
        #expect(f.deletingLastPathComponent().lastPathComponent == String(md5.suffix(3).prefix(2)))
        #expect(f.deletingLastPathComponent().deletingLastPathComponent().lastPathComponent == String(md5.suffix(1)))
    }

    func md5Hex(_ s: String) -> String {
        let p = Harness.process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["md5sum"]
        let input = Pipe(), output = Pipe()
        p.standardInput = input
        p.standardOutput = output
        try? p.run()
        input.fileHandleForWriting.write(Data(s.utf8))
        try? input.fileHandleForWriting.close()
        p.waitUntilExit()
        return String(String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).prefix(32))
    }

    @Test func headIsAnsweredFromAGetEntryAndFillsOne() throws {
        let b = try Backend(name: "c")
        let dir = try cacheDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let lb = try LB(Self.config(b, cacheDir: dir.path))
        // HEAD first: sent upstream as GET (proxy_cache_convert_head), so the entry has the body.
        let client = try RawClient(port: lb.port)
        try client.send("HEAD /gen?h=1&size=700 HTTP/1.1\r\nHost: x\r\n\r\n")
        let h = try client.readResponse(head: true)
        #expect(h.header("X-Cache") == "MISS")
        #expect(h.header("Content-Length") == "700")
        let g = try client.get("/gen?h=1&size=700")
        #expect(g.header("X-Cache") == "HIT")
        #expect(g.body.count == 700)
        try client.send("HEAD /gen?h=1&size=700 HTTP/1.1\r\nHost: x\r\n\r\n")
        let h2 = try client.readResponse(head: true)
        #expect(h2.header("X-Cache") == "HIT")
        #expect(h2.header("Content-Length") == "700")
        // The connection is still in step: one more request on it.
        #expect(try client.get("/gen?h=1&size=700").body == g.body)
        #expect(try counts(b)["/gen?h=1&size=700"] == 1)
    }

    @Test func expiredAfterValidityThenFreshAgain() throws {
        let b = try Backend(name: "c")
        let dir = try cacheDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let lb = try LB(Self.config(b, cacheDir: dir.path).replacingOccurrences(of: "proxy_cache_valid 200 1m;", with: "proxy_cache_valid 200 3s;"))
        #expect(try get(lb, "/gen?e=1").header("X-Cache") == "MISS")
        #expect(try get(lb, "/gen?e=1").header("X-Cache") == "HIT")
        // 3 s of validity: room for a loaded machine between the MISS and the HIT.
        Thread.sleep(forTimeInterval: 3.5)
        let r = try get(lb, "/gen?e=1")
        #expect(r.header("X-Cache") == "EXPIRED")
        #expect(r.text.contains("n=2"))
        let again = try get(lb, "/gen?e=1")
        #expect(again.header("X-Cache") == "HIT")
        #expect(again.text.contains("n=2"))
    }

    @Test func staleIsServedWhenTheUpstreamIsDown() throws {
        let b = try Backend(name: "c")
        let dir = try cacheDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let lb = try LB(Self.config(b, cacheDir: dir.path, location: "proxy_cache_use_stale error timeout http_500;",
                                    extra: """
                                    location /nostale/ {
                                        proxy_pass http://app/;
                                        proxy_cache z;
                                        proxy_cache_valid 200 1s;
                                        add_header X-Cache $upstream_cache_status;
                                    }
                                    """).replacingOccurrences(of: "proxy_cache_valid 200 1m;", with: "proxy_cache_valid 200 1s;"))
        #expect(try get(lb, "/gen?s=1").header("X-Cache") == "MISS")
        #expect(try get(lb, "/nostale/gen?s=2").header("X-Cache") == "MISS")
        b.stop()
        Thread.sleep(forTimeInterval: 2.2)
        let r = try get(lb, "/gen?s=1")
        #expect(r.status == 200)
        #expect(r.header("X-Cache") == "STALE")
        #expect(r.text.contains("n=1"))
        // Without proxy_cache_use_stale, an expired entry is not served: 502.
        let n = try get(lb, "/nostale/gen?s=2")
        #expect(n.status == 502)
    }

    @Test func staleOnUpstream500WhenConfigured() throws {
        let b = try Backend(name: "c")
        let dir = try cacheDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        // The same key answered 200 (fresh for a second: X-Accel-Expires), then, after a reload,
        // 500: the stale 200 is served for it.
        func conf(_ upstreamURI: String) -> String {
            Self.config(b, cacheDir: dir.path, extra: """
                location = /flip {
                    proxy_pass http://app\(upstreamURI);
                    proxy_cache z;
                    proxy_cache_key flip;
                    proxy_cache_use_stale http_500;
                    add_header X-Cache $upstream_cache_status;
                }
            """)
        }
        let lb = try LB(conf("/gen?xae=1&status=200"))
        let first = try get(lb, "/flip")
        #expect(first.header("X-Cache") == "MISS")
        try lb.rewrite(conf("/gen?status=500"))
        let reloads = lb.reloadsLogged
        let reload = try Harness.run("lb", ["-p", lb.dir.path, "-c", "lb.conf", "-s", "reload"], cwd: lb.dir)
        #expect(reload.status == 0)
        lb.waitForReload(since: reloads)
        // Time for the entry to expire (X-Accel-Expires: 1).
        Thread.sleep(forTimeInterval: 2.2)
        let r = try get(lb, "/flip")
        #expect(r.status == 200)
        #expect(r.header("X-Cache") == "STALE")
        #expect(r.body == first.body)
        #expect(try counts(b)["/gen?status=500"] == 1)
    }

    @Test func backgroundUpdateServesStaleThenUpdating() throws {
        let b = try Backend(name: "c")
        let dir = try cacheDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let lb = try LB(Self.config(b, cacheDir: dir.path, location: """
            proxy_cache_use_stale updating;
            proxy_cache_background_update on;
        """).replacingOccurrences(of: "proxy_cache_valid 200 1m;", with: "proxy_cache_valid 200 3s;"))
        #expect(try get(lb, "/gen?ms=1500").header("X-Cache") == "MISS")
        Thread.sleep(forTimeInterval: 3.6)
        // The first request after expiry gets the stale entry at once, as nginx answers it
        // (STALE); curl closes its connection right after, and the update goes on …
        let c = try curl(["-D", "-", "http://127.0.0.1:\(lb.port)/gen?ms=1500"])
        #expect(c.out.contains("X-Cache: STALE"))
        #expect(c.out.contains("n=1"))
        // … and while the update is in flight, others get the stale entry as UPDATING.
        let u = try get(lb, "/gen?ms=1500")
        #expect(u.header("X-Cache") == "UPDATING")
        #expect(u.text.contains("n=1"))
        // Until the update lands (the upstream takes 1.5 s: room for a loaded machine) the answer stays UPDATING.
        var h = u
        #expect(try waitUntil { h = try get(lb, "/gen?ms=1500"); return h.header("X-Cache") == "HIT" })
        #expect(h.text.contains("n=2"))
        #expect(try counts(b)["/gen?ms=1500"] == 2)
    }

    @Test func revalidatedWithA304FromTheUpstream() throws {
        let b = try Backend(name: "c")
        let dir = try cacheDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let lb = try LB(Self.config(b, cacheDir: dir.path, location: "proxy_cache_revalidate on;")
            .replacingOccurrences(of: "proxy_cache_valid 200 1m;", with: "proxy_cache_valid 200 1s;"))
        let first = try get(lb, "/gen?etag=v1")
        #expect(first.header("X-Cache") == "MISS")
        Thread.sleep(forTimeInterval: 2.2)
        let r = try get(lb, "/gen?etag=v1")
        #expect(r.status == 200)
        #expect(r.header("X-Cache") == "REVALIDATED")
        #expect(r.body == first.body)
        #expect(try get(lb, "/gen?etag=v1").header("X-Cache") == "HIT")
        // Two upstream requests: the original and the conditional one (answered 304).
        #expect(try counts(b)["/gen?etag=v1"] == 2)
        // A client's own conditional request is answered from the entry.
        let nm = try get(lb, "/gen?etag=v1", headers: ["If-None-Match: \"v1\""])
        #expect(nm.status == 304)
    }

    @Test func setCookieAndPrivateAreNeverShared() throws {
        let b = try Backend(name: "c")
        let dir = try cacheDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let lb = try LB(Self.config(b, cacheDir: dir.path))
        for path in ["/gen?cookie=1", "/gen?cc=private,max-age=60", "/gen?cc=no-store", "/gen?cc=max-age=0", "/gen?xae=0"] {
            let a = try get(lb, path)
            let c = try get(lb, path)
            #expect(a.header("X-Cache") == "MISS", "\(path)")
            #expect(c.header("X-Cache") == "MISS", "\(path)")
            #expect(a.body != c.body, "\(path)")
        }
        // X-Accel-Expires wins over Cache-Control: private.
        #expect(try get(lb, "/gen?xae=60&cc=private").header("X-Cache") == "MISS")
        #expect(try get(lb, "/gen?xae=60&cc=private").header("X-Cache") == "HIT")
        // s-maxage over max-age=0.
        #expect(try get(lb, "/gen?cc=s-maxage%3D60,max-age%3D0").header("X-Cache") == "MISS")
        #expect(try get(lb, "/gen?cc=s-maxage%3D60,max-age%3D0").header("X-Cache") == "HIT")
    }

    @Test func theQueryIsPartOfTheKey() throws {
        let b = try Backend(name: "c")
        let dir = try cacheDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let lb = try LB(Self.config(b, cacheDir: dir.path))
        let a = try get(lb, "/gen?q=1"), c = try get(lb, "/gen?q=2")
        #expect(a.header("X-Cache") == "MISS")
        #expect(c.header("X-Cache") == "MISS")
        #expect(try get(lb, "/gen?q=1").body == a.body)
        #expect(try get(lb, "/gen?q=2").body == c.body)
        #expect(a.body != c.body)
    }

    @Test func varyKeepsOneVariantPerRequestHeaderValue() throws {
        let b = try Backend(name: "c")
        let dir = try cacheDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let lb = try LB(Self.config(b, cacheDir: dir.path))
        let p = "/gen?vary=Accept-Language"
        let en = try get(lb, p, headers: ["Accept-Language: en"])
        let fr = try get(lb, p, headers: ["Accept-Language: fr"])
        #expect(en.header("X-Cache") == "MISS")
        #expect(fr.header("X-Cache") == "MISS")
        #expect(en.text.contains("Accept-Language=en"))
        #expect(fr.text.contains("Accept-Language=fr"))
        let en2 = try get(lb, p, headers: ["Accept-Language: en"])
        let fr2 = try get(lb, p, headers: ["Accept-Language: fr"])
        #expect(en2.header("X-Cache") == "HIT")
        #expect(fr2.header("X-Cache") == "HIT")
        #expect(en2.body == en.body)
        #expect(fr2.body == fr.body)
        // Vary: * is never stored.
        #expect(try get(lb, "/gen?vary=*").header("X-Cache") == "MISS")
        #expect(try get(lb, "/gen?vary=*").header("X-Cache") == "MISS")
    }

    @Test func fiftyConcurrentMissesCostOneUpstreamRequestWithTheLock() throws {
        let b = try Backend(name: "c")
        let dir = try cacheDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let lb = try LB(Self.config(b, cacheDir: dir.path, location: "proxy_cache_lock on;"))
        let results = Mutex<[(Int, String?, [UInt8])]>([])
        let port = lb.port
        DispatchQueue.concurrentPerform(iterations: 50) { _ in
            if let r = try? RawClient(port: port).get("/gen?ms=400&size=2000") { results.withLock { $0.append((r.status, r.header("X-Cache"), r.body)) } }
        }
        let all = results.withLock { $0 }
        #expect(all.count == 50)
        #expect(all.allSatisfy { $0.0 == 200 && $0.2 == all[0].2 })
        #expect(all.filter { $0.1 == "MISS" }.count == 1)
        #expect(try counts(b)["/gen?ms=400&size=2000"] == 1)
    }

    @Test func entriesAreServedAfterARestartWithTheUpstreamDown() throws {
        let b = try Backend(name: "c")
        let dir = try cacheDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let conf = Self.config(b, cacheDir: dir.path)
        var lb: LB? = try LB(conf)
        let bodies = try (0..<20).map { try get(lb!, "/gen?r=\($0)&size=3000").body }
        lb!.stop()
        b.stop()
        lb = nil
        let again = try LB(conf)
        for i in 0..<20 {
            let r = try get(again, "/gen?r=\(i)&size=3000")
            #expect(r.status == 200)
            #expect(r.header("X-Cache") == "HIT")
            #expect(r.body == bodies[i])
        }
        #expect(again.errorLog.contains("20 entries loaded") || again.errorLog.contains("entries loaded"))
    }

    @Test func aTruncatedOrForeignFileIsNeverServed() throws {
        let b = try Backend(name: "c")
        let dir = try cacheDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let conf = Self.config(b, cacheDir: dir.path)
        var lb: LB? = try LB(conf)
        _ = try get(lb!, "/gen?t=1&size=4000")
        _ = try get(lb!, "/gen?t=2&size=4000")
        lb!.stop()
        lb = nil
        let md5a = md5Hex("httpapp/gen?t=1&size=4000"), md5b = md5Hex("httpapp/gen?t=2&size=4000")
        let files = entryFiles(dir)
        // One entry truncated (as a crash in the middle of a copy would leave it) …
        let fa = files.first { $0.lastPathComponent == md5a }!
        let h = try FileHandle(forWritingTo: fa)
        try h.truncate(atOffset: 3000)
        try h.close()
        // … and one replaced by a foreign file under the same name.
        let fb = files.first { $0.lastPathComponent == md5b }!
        try Data("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nevil!".utf8).write(to: fb)
        let again = try LB(conf)
        let a = try get(again, "/gen?t=1&size=4000")
        #expect(a.header("X-Cache") == "MISS")
        #expect(a.text.contains("n=2"))
        #expect(a.body.count == 4000)
        let c = try get(again, "/gen?t=2&size=4000")
        #expect(c.header("X-Cache") == "MISS")
        #expect(!c.text.contains("evil"))
        // A file truncated while lb runs is not served either.
        let fa2 = entryFiles(dir).first { $0.lastPathComponent == md5a }!
        let h2 = try FileHandle(forWritingTo: fa2)
        try h2.truncate(atOffset: 100)
        try h2.close()
        let d = try get(again, "/gen?t=1&size=4000")
        #expect(d.header("X-Cache") == "MISS")
        #expect(d.text.contains("n=3"))
    }

    @Test func evictionKeepsTheCacheUnderMaxSize() throws {
        let b = try Backend(name: "c")
        let dir = try cacheDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let lb = try LB(Self.config(b, cacheDir: dir.path, zone: "keys_zone=z:1m max_size=100k"))
        for i in 0..<12 { #expect(try get(lb, "/gen?ev=\(i)&size=20000").header("X-Cache") == "MISS") }
        // The newest are hits, the oldest were evicted.
        #expect(try get(lb, "/gen?ev=11&size=20000").header("X-Cache") == "HIT")
        #expect(try get(lb, "/gen?ev=0&size=20000").header("X-Cache") == "MISS")
        // The cache manager unlinks evicted files within a moment.
        var total = 0
        for _ in 0..<20 {
            Thread.sleep(forTimeInterval: 0.2)
            total = entryFiles(dir).reduce(0) { $0 + ((try? $1.resourceValues(forKeys: [.fileSizeKey]).fileSize) ?? 0) }
            if total <= 100 * 1024 { break }
        }
        #expect(total <= 100 * 1024)
        #expect(total >= 60 * 1024)
    }

    @Test func purgeIsAllowedOnlyFromConfiguredAddresses() throws {
        let b = try Backend(name: "c")
        let dir = try cacheDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let lb = try LB(Self.config(b, cacheDir: dir.path, location: "proxy_cache_purge 127.0.0.1 ::1;", extra: """
            location /locked/ {
                proxy_pass http://app/;
                proxy_cache z;
                proxy_cache_valid 200 1m;
                proxy_cache_purge 10.0.0.0/8;
                add_header X-Cache $upstream_cache_status;
            }
        """))
        _ = try get(lb, "/gen?p=1")
        _ = try get(lb, "/gen?p=2")
        _ = try get(lb, "/gen?other=1")
        #expect(try get(lb, "/gen?p=1").header("X-Cache") == "HIT")
        let client = try RawClient(port: lb.port)
        try client.send("PURGE /gen?p=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        let p = try client.readResponse()
        #expect(p.status == 200)
        #expect(p.text.contains("\"purged\": 1"))
        #expect(try get(lb, "/gen?p=1").header("X-Cache") == "MISS")
        // A prefix wildcard.
        try client.send("PURGE /gen?p* HTTP/1.1\r\nHost: x\r\n\r\n")
        let w = try client.readResponse()
        #expect(w.status == 200)
        #expect(w.text.contains("\"purged\": 2"))
        #expect(try get(lb, "/gen?p=2").header("X-Cache") == "MISS")
        #expect(try get(lb, "/gen?other=1").header("X-Cache") == "HIT")
        // Nothing to purge: 404.
        try client.send("PURGE /gen?none HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try client.readResponse().status == 404)
        // Refused from an address that is not listed, and the entry stays.
        _ = try get(lb, "/locked/gen?l=1")
        try client.send("PURGE /locked/gen?l=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try client.readResponse().status == 403)
        #expect(try get(lb, "/locked/gen?l=1").header("X-Cache") == "HIT")
    }

    @Test func bypassNoCacheMinUsesInactiveAndRanges() throws {
        let b = try Backend(name: "c")
        let dir = try cacheDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let lb = try LB(Self.config(b, cacheDir: dir.path, zone: "keys_zone=z:1m inactive=1s", location: """
            proxy_cache_bypass $http_x_refresh;
            proxy_no_cache $http_x_private;
        """, extra: """
            location /twice/ {
                proxy_pass http://app/;
                proxy_cache z;
                proxy_cache_valid 200 1m;
                proxy_cache_min_uses 2;
                add_header X-Cache $upstream_cache_status;
            }
        """))
        // proxy_cache_bypass: fetched anyway (BYPASS), and the fresh response replaces the entry.
        let first = try get(lb, "/gen?b=1")
        #expect(first.header("X-Cache") == "MISS")
        let bypassed = try get(lb, "/gen?b=1", headers: ["X-Refresh: 1"])
        #expect(bypassed.header("X-Cache") == "BYPASS")
        #expect(bypassed.text.contains("n=2"))
        let after = try get(lb, "/gen?b=1")
        #expect(after.header("X-Cache") == "HIT")
        #expect(after.text.contains("n=2"))
        // "0" does not bypass.
        #expect(try get(lb, "/gen?b=1", headers: ["X-Refresh: 0"]).header("X-Cache") == "HIT")
        // proxy_no_cache: not stored.
        #expect(try get(lb, "/gen?nc=1", headers: ["X-Private: yes"]).header("X-Cache") == "MISS")
        #expect(try get(lb, "/gen?nc=1").header("X-Cache") == "MISS")
        // proxy_cache_min_uses 2: stored on the second request.
        #expect(try get(lb, "/twice/gen?m=1").header("X-Cache") == "MISS")
        #expect(try get(lb, "/twice/gen?m=1").header("X-Cache") == "MISS")
        #expect(try get(lb, "/twice/gen?m=1").header("X-Cache") == "HIT")
        // A single range is answered from the entry (the upstream never sees the Range header).
        let full = try get(lb, "/gen?rg=1&size=1000")
        let part = try get(lb, "/gen?rg=1&size=1000", headers: ["Range: bytes=10-19"])
        #expect(part.status == 206)
        #expect(part.header("Content-Range") == "bytes 10-19/1000")
        #expect(part.body == Array(full.body[10..<20]))
        #expect(try get(lb, "/gen?rg=1&size=1000", headers: ["Range: bytes=5000-"]).status == 416)
        // inactive=1s: an entry nobody asked for in a second is removed (and its file unlinked).
        Thread.sleep(forTimeInterval: 1.8)
        #expect(try get(lb, "/gen?rg=1&size=1000").header("X-Cache") == "MISS")
        #expect(try counts(b)["/gen?rg=1&size=1000"] == 2)
    }

    @Test func aKilledLbLeavesNoEntryForAResponseInFlight() throws {
        let b = try Backend(name: "c")
        let dir = try cacheDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let conf = Self.config(b, cacheDir: dir.path)
        var lb: LB? = try LB(conf)
        // A client that reads only the head: the 8 MB body stalls in flight (backpressure), half
        // written to the temporary file.
        let slow = try RawClient(port: lb!.port)
        try slow.send("GET /gen?k=1&size=8000000 HTTP/1.1\r\nHost: x\r\n\r\n")
        _ = slow.fill()
        let temp = dir.appendingPathComponent(".lb-temp")
        var partial: [String] = []
        #expect(waitUntil { partial = (try? FileManager.default.contentsOfDirectory(atPath: temp.path)) ?? []; return !partial.isEmpty })
        #expect(partial.count == 1)
        #expect(entryFiles(dir).isEmpty)
        lb!.started.signal(SIGKILL)
        _ = lb!.started.wait(timeout: 5)
        lb = nil
        slow.close()
        let again = try LB(conf)
        let r = try get(again, "/gen?k=1&size=8000000")
        #expect(r.header("X-Cache") == "MISS")
        #expect(r.body.count == 8_000_000)
        #expect(try get(again, "/gen?k=1&size=8000000").header("X-Cache") == "HIT")
        // The leftover temporary file was removed at start-up.
        let left = (try? FileManager.default.contentsOfDirectory(atPath: temp.path)) ?? []
        #expect(!left.contains(partial.first ?? "-"))
    }
}
