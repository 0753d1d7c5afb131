import Foundation
import Glibc
import Testing

/// The bundled stack and the store, driven by real clients (redis-cli, redis-benchmark, curl).
@Suite(.serialized) struct StackTests {
    static func stackConfig(storePort: Int, appPort: Int, scale: Int = 4, fsync: String = "always") -> String {
        """
        worker_processes 1;
        error_log stderr notice;
        events {}
        stack {
            service store { command lb-store --port \(storePort) --dir data --appendfsync \(fsync); ready tcp:127.0.0.1:\(storePort); }
            service app {
                command lb-app --port $port --name app-$instance;
                scale \(scale);
                port \(appPort);
                environment STORE_PORT \(storePort);
                ready http:/health;
            }
        }
        http {
            access_log off;
            upstream app { service app max_fails=1 fail_timeout=1s; keepalive 8; }
            server {
                listen 127.0.0.1:{port};
                location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection "";
                             proxy_set_header X-Real-IP $remote_addr; proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; }
                location = /health-check { return 200 "success"; }
            }
        }
        """
    }

    static func instanceIDs(_ port: Int, _ n: Int) throws -> [String] {
        let c = try RawClient(port: port)
        return try (0..<n).map { _ in
            let obj = try JSONSerialization.jsonObject(with: Data(try c.get("/info").body)) as! [String: Any]
            return obj["instance_id"] as! String
        }
    }

    static func count(_ port: Int) throws -> Int {
        let obj = try JSONSerialization.jsonObject(with: Data(try RawClient(port: port).get("/api/count").body)) as! [String: Any]
        return obj["count"] as! Int
    }

    /// Live children of `parent` running the product `name` (other suites run in parallel).
    static func processes(named name: String, parent: Int32) -> [Int32] {
        let pids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return pids.compactMap(Int32.init).filter { pid in
            guard let cmd = try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8),
                  cmd.hasPrefix(Harness.productsDirectory.appendingPathComponent(name).path),
                  let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return false }
            let fields = stat[stat.index(close, offsetBy: 2)...].split(separator: " ")
            return fields.count > 1 && fields[0] != "Z" && Int32(fields[1]) == parent
        }
    }

    @Test func theStackComesUpBalancesCountsAndStopsCleanly() throws {
        let storePort = freePort(), appPort = freePortRange(4)
        let lb = try LB(Self.stackConfig(storePort: storePort, appPort: appPort))
        let ids = try Self.instanceIDs(lb.port, 8)
        #expect(Set(ids).count == 4)
        #expect(Array(ids[0..<4]) == Array(ids[4..<8]), "round-robin order repeats")
        let info = try JSONSerialization.jsonObject(with: Data(try RawClient(port: lb.port).get("/info").body)) as! [String: Any]
        #expect(info["connecting_ip"] as? String == "127.0.0.1" && info["proxy_ip"] as? String == "127.0.0.1")
        let first = try Self.count(lb.port)
        let second = try Self.count(lb.port)
        #expect(second == first + 1)
        #expect(lb.errorLog.contains("[stack] [app.3] lb-app app-3"))
        // A crashed instance is restarted and rejoins the rotation.
        let lbPID = lb.started.pid
        let victim = try #require(Self.processes(named: "lb-app", parent: lbPID).first)
        kill(victim, SIGKILL)
        var back = false
        for _ in 0..<60 {
            usleep(100_000)
            if lb.errorLog.contains("restarting in"), Set(try Self.instanceIDs(lb.port, 8)).count == 4, Self.processes(named: "lb-app", parent: lbPID).count == 4 { back = true; break }
        }
        #expect(back)
        // Ctrl-C stops everything: no orphans.
        lb.started.signal(SIGINT)
        #expect(lb.started.wait(timeout: 10))
        // The services were reparented or reaped: none is left running with lb's PID as parent,
        // and none is left at all with lb's command line (PR_SET_PDEATHSIG, orderly stop).
        #expect(waitUntil(timeout: 5) { Self.processes(named: "lb-app", parent: lbPID).isEmpty && Self.processes(named: "lb-store", parent: lbPID).isEmpty })
        #expect(waitUntil(timeout: 5) { Self.processes(named: "lb-app", parent: 1).isEmpty && Self.processes(named: "lb-store", parent: 1).isEmpty })
    }

    @Test func counterSurvivesAFullStackRestart() throws {
        let storePort = freePort(), appPort = freePortRange(4)
        let dir = try Harness.tempDirectory()
        let config = Self.stackConfig(storePort: storePort, appPort: appPort, scale: 2)
        let lbPort = freePort()
        func start() throws -> Started {
            try config.replacingOccurrences(of: "{port}", with: "\(lbPort)").write(to: dir.appendingPathComponent("lb.conf"), atomically: true, encoding: .utf8)
            let s = try Started(Harness.productsDirectory.appendingPathComponent("lb"), ["-p", dir.path, "-c", "lb.conf"], cwd: dir)
            guard waitForPort(lbPort, timeout: 20) else { throw HarnessError("stack did not start: \(s.stderr)") }
            return s
        }
        var s = try start()
        var last = 0
        for _ in 0..<5 { last = try Self.count(lbPort) }
        s.signal(SIGTERM)
        #expect(s.wait(timeout: 10))
        s = try start()
        #expect(try Self.count(lbPort) == last + 1)
        s.signal(SIGTERM)
        #expect(s.wait(timeout: 10))
    }

    @Test func scalingUpByReloadAddsInstancesWithoutDroppingRequests() throws {
        let storePort = freePort(), appPort = freePortRange(4)
        let lb = try LB(Self.stackConfig(storePort: storePort, appPort: appPort, scale: 2))
        #expect(Set(try Self.instanceIDs(lb.port, 4)).count == 2)
        let stop = Atomic(false), failures = Atomic(0), total = Atomic(0)
        let port = lb.port
        let g = DispatchGroup()
        g.enter()
        DispatchQueue.global().async {
            defer { g.leave() }
            while !stop.value {
                do {
                    let r = try RawClient(port: port).get("/api/hello")
                    total.add(1)
                    if r.status != 200 { failures.add(1) }
                } catch { failures.add(1) }
            }
        }
        try lb.rewrite(Self.stackConfig(storePort: storePort, appPort: appPort, scale: 4))
        lb.started.signal(SIGHUP)
        var four = false
        for _ in 0..<50 {
            usleep(200_000)
            if Set(try Self.instanceIDs(lb.port, 8)).count == 4 { four = true; break }
        }
        stop.value = true
        g.wait()
        #expect(four)
        #expect(failures.value == 0, "\(failures.value) of \(total.value) failed")
        #expect(Self.processes(named: "lb-app", parent: lb.started.pid).count == 4)
    }
}

/// The store alone, against redis-cli and redis-benchmark.
@Suite(.serialized) struct StoreTests {
    static func redisCLI(_ port: Int, _ args: [String]) throws -> String {
        let p = try Started(URL(fileURLWithPath: "/usr/bin/env"), ["redis-cli", "-p", "\(port)"] + args)
        if !p.wait(timeout: 20) { p.stop() }
        return ((try? String(contentsOf: p.stdoutURL, encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static func startStore(_ dir: URL, port: Int, fsync: String = "always") throws -> Started {
        let s = try Started(Harness.productsDirectory.appendingPathComponent("lb-store"), ["--port", "\(port)", "--dir", dir.path, "--appendfsync", fsync])
        guard waitForPort(port) else { throw HarnessError("store did not start: \(s.stderr)") }
        return s
    }

    @Test func redisCLIWorksAgainstTheStore() throws {
        let dir = try Harness.tempDirectory()
        let port = freePort()
        let s = try Self.startStore(dir, port: port)
        defer { s.stop() }
        #expect(try Self.redisCLI(port, ["PING"]) == "PONG")
        #expect(try Self.redisCLI(port, ["SET", "greeting", "hello world"]) == "OK")
        #expect(try Self.redisCLI(port, ["GET", "greeting"]) == "hello world")
        #expect(try Self.redisCLI(port, ["INCR", "n"]) == "1")
        #expect(try Self.redisCLI(port, ["INCRBY", "n", "41"]) == "42")
        #expect(try Self.redisCLI(port, ["EXPIRE", "n", "100"]) == "1")
        let ttl = Int(try Self.redisCLI(port, ["TTL", "n"])) ?? -99
        #expect(ttl > 95 && ttl <= 100)
        #expect(try Self.redisCLI(port, ["FOO", "bar"]) == "ERR unknown command 'FOO', with args beginning with: 'bar'")
        #expect(try Self.redisCLI(port, ["LPUSH", "greeting", "x"]) == "WRONGTYPE Operation against a key holding the wrong kind of value")
        #expect(try Self.redisCLI(port, ["INCR", "greeting"]) == "ERR value is not an integer or out of range")
        #expect(try Self.redisCLI(port, ["SET", "tmp", "v", "PX", "100"]) == "OK")
        usleep(300_000)
        #expect(try Self.redisCLI(port, ["EXISTS", "tmp"]) == "0")
        #expect(try Self.redisCLI(port, ["HSET", "h", "a", "1", "b", "2"]) == "2")
        #expect(try Self.redisCLI(port, ["HGETALL", "h"]) == "a\n1\nb\n2")
        #expect(try Self.redisCLI(port, ["INFO", "keyspace"]).contains("db0:keys=3"))
    }

    @Test func redisBenchmarkCompletesWithoutErrors() throws {
        let dir = try Harness.tempDirectory()
        let port = freePort()
        let s = try Self.startStore(dir, port: port, fsync: "everysec")
        defer { s.stop() }
        let p = try Started(URL(fileURLWithPath: "/usr/bin/env"), ["redis-benchmark", "-p", "\(port)", "-q", "-n", "20000", "-t", "set,get,incr,lpush,lpop,sadd,hset,mset"])
        #expect(p.wait(timeout: 120))
        let out = (try? String(contentsOf: p.stdoutURL, encoding: .utf8)) ?? ""
        #expect(p.process.terminationStatus == 0)
        #expect(out.contains("SET:") && out.contains("GET:") && out.contains("INCR:") && out.contains("requests per second"))
        #expect(!out.lowercased().contains("error"), "\(out)")
        // Busy polling (on by default) stops once the load does: an idle store uses no CPU.
        func cpuTicks() -> Int {
            let stat = (try? String(contentsOfFile: "/proc/\(s.pid)/stat", encoding: .utf8)) ?? ""
            let fields = stat.split(separator: ")").last?.split(separator: " ") ?? []
            return fields.count > 12 ? (Int(fields[11]) ?? 0) + (Int(fields[12]) ?? 0) : -1
        }
        usleep(200_000)
        let before = cpuTicks()
        usleep(1_000_000)
        let idle = cpuTicks() - before
        #expect(before >= 0 && idle <= 5, "idle store used \(idle) of 100 ticks in a second")
    }

    @Test func busyPollOptionIsValidated() throws {
        let s = try Started(Harness.productsDirectory.appendingPathComponent("lb-store"), ["--port", "\(freePort())", "--busy-poll", "fast"])
        #expect(s.wait(timeout: 10))
        #expect(s.process.terminationStatus == 1)
        #expect(s.stderr.contains("--busy-poll takes microseconds"))
    }

    @Test func sigkillUnderAppendfsyncAlwaysLosesNoAcknowledgedIncr() throws {
        let dir = try Harness.tempDirectory()
        let port = freePort()
        let s = try Self.startStore(dir, port: port, fsync: "always")
        let c = try RawClient(port: port)
        var acked = 0
        for _ in 0..<300 {
            try c.send("*2\r\n$4\r\nINCR\r\n$7\r\ncounter\r\n")
            while !c.buffer.contains(0x0A) { guard c.fill() else { break } }
            if let nl = c.buffer.firstIndex(of: 0x0A) {
                acked = Int(String(decoding: c.buffer[1..<(nl - 1)], as: UTF8.self)) ?? acked
                c.buffer.removeSubrange(...nl)
            }
        }
        kill(s.pid, SIGKILL)
        s.wait(timeout: 5)
        let again = try Self.startStore(dir, port: port)
        defer { again.stop() }
        #expect(acked == 300)
        #expect(Int(try Self.redisCLI(port, ["GET", "counter"])) == acked)
    }

    @Test func aTruncatedAOFTailIsRepaired() throws {
        let dir = try Harness.tempDirectory()
        let port = freePort()
        let good = "*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n*3\r\n$3\r\nSET\r\n$1\r\nb\r\n$1\r\n2\r\n"
        try (good + "*3\r\n$3\r\nSET\r\n$1\r\nc\r\n$3\r\nxy").write(to: dir.appendingPathComponent("appendonly.aof"), atomically: true, encoding: .utf8)
        let s = try Self.startStore(dir, port: port)
        defer { s.stop() }
        #expect(try Self.redisCLI(port, ["MGET", "a", "b", "c"]) == "1\n2") // c was the torn write
        #expect(s.stderr.contains("short read while loading the AOF file"))
        let size = (try FileManager.default.attributesOfItem(atPath: dir.appendingPathComponent("appendonly.aof").path)[.size] as? Int) ?? -1
        #expect(size >= good.utf8.count && size < good.utf8.count + 40)
    }

    @Test func lbAppWorksAgainstARealRedisServerToo() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/redis-server") else {
            Issue.record("redis-server is not installed (Tests/run.sh installs it)")
            return
        }
        let dir = try Harness.tempDirectory()
        let redisPort = freePort(), appPort = freePort()
        let redis = try Started(URL(fileURLWithPath: "/usr/bin/redis-server"), ["--port", "\(redisPort)", "--bind", "127.0.0.1", "--save", "", "--dir", dir.path])
        defer { redis.stop() }
        #expect(waitForPort(redisPort))
        let app = try Started(Harness.productsDirectory.appendingPathComponent("lb-app"), ["--port", "\(appPort)", "--name", "compat"],
                              env: ["REDIS_HOST": "127.0.0.1", "REDIS_PORT": "\(redisPort)"])
        defer { app.stop() }
        #expect(waitForPort(appPort))
        let c = try RawClient(port: appPort)
        #expect(try c.get("/health").status == 200)
        let a = try JSONSerialization.jsonObject(with: Data(try c.get("/api/count").body)) as! [String: Any]
        let b = try JSONSerialization.jsonObject(with: Data(try c.get("/api/count").body)) as! [String: Any]
        #expect((b["count"] as! Int) == (a["count"] as! Int) + 1)
        #expect(try Self.redisCLI(redisPort, ["GET", "visits"]) == "\(b["count"] as! Int)")
    }
}

extension StackTests {
    /// Debian's chromium, headless, loads the front-end through lb; the rendered DOM (after the
    /// page's JavaScript ran) shows an instance id and a counter.
    @Test func theFrontEndRendersInAHeadlessBrowser() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/chromium") else {
            Issue.record("chromium is not installed (Tests/run.sh installs it)")
            return
        }
        let storePort = freePort(), appPort = freePortRange(4)
        let www = Harness.repositoryRoot.appendingPathComponent("examples/www").path
        let config = Self.stackConfig(storePort: storePort, appPort: appPort, scale: 2)
            .replacingOccurrences(of: "location = /health-check", with: "location /api/ { proxy_pass http://app; }\n location = /index.html { root \(www); }\n location ~ \\.(css|js)$ { root \(www); }\n location = /health-check")
            .replacingOccurrences(of: "location / { proxy_pass", with: "location = / { root \(www); try_files /index.html =404; }\n location /x-unused { proxy_pass")
        let lb = try LB(config)
        let dir = try Harness.tempDirectory()
        let p = try Started(URL(fileURLWithPath: "/usr/bin/chromium"),
                            ["--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=\(dir.path)", "--virtual-time-budget=5000",
                             "--dump-dom", "http://127.0.0.1:\(lb.port)/"])
        #expect(p.wait(timeout: 60))
        let dom = (try? String(contentsOf: p.stdoutURL, encoding: .utf8)) ?? ""
        let id = dom.firstRange(of: #/id="instance-id">([0-9a-f]{12})</code>/#)
        let count = dom.firstRange(of: #/id="count">([0-9]+)</p>/#)
        #expect(id != nil, "no instance id in the rendered page: \(dom.prefix(2000))")
        #expect(count != nil, "no counter in the rendered page")
        #expect(dom.contains("app-1") || dom.contains("app-2"))
    }
}

extension StoreTests {
    @Test func backgroundRewriteCompactsTheAOFAndKeepsConcurrentWrites() throws {
        let dir = try Harness.tempDirectory()
        let port = freePort()
        let s = try Self.startStore(dir, port: port, fsync: "everysec")
        let c = try RawClient(port: port)
        func cmd(_ parts: [String]) throws {
            try c.send("*\(parts.count)\r\n" + parts.map { "$\($0.utf8.count)\r\n\($0)\r\n" }.joined())
            while !c.buffer.contains(0x0A) { guard c.fill() else { break } }
            if let nl = c.buffer.firstIndex(of: 0x0A) { c.buffer.removeSubrange(...nl) }
        }
        for i in 0..<3000 { try cmd(["SET", "same", "value-\(i)"]) }
        for i in 0..<50 { try cmd(["SET", "k\(i)", "\(i)"]) }
        // Every acknowledged command is in the file already (written before its reply goes out).
        let aof = dir.appendingPathComponent("appendonly.aof").path
        let before = (try FileManager.default.attributesOfItem(atPath: aof)[.size] as? Int) ?? 0
        #expect(try Self.redisCLI(port, ["BGREWRITEAOF"]) == "Background append only file rewriting started")
        for i in 0..<100 { try cmd(["INCR", "during"]); _ = i }
        var done = false
        for _ in 0..<50 {
            usleep(100_000)
            if s.stderr.contains("rewriting terminated with success") { done = true; break }
        }
        #expect(done)
        try cmd(["SET", "after", "yes"])
        let after = (try FileManager.default.attributesOfItem(atPath: aof)[.size] as? Int) ?? 0
        #expect(after < before / 10, "AOF \(before) → \(after) bytes")
        s.signal(SIGKILL)
        s.wait(timeout: 5)
        let again = try Self.startStore(dir, port: port)
        defer { again.stop() }
        #expect(try Self.redisCLI(port, ["MGET", "same", "k49", "during", "after"]) == "value-2999\n49\n100\nyes")
    }
}

extension StackTests {
    @Test func killingLbWithSIGKILLLeavesNoServicesBehind() throws {
        let storePort = freePort(), appPort = freePortRange(4)
        let lb = try LB(Self.stackConfig(storePort: storePort, appPort: appPort, scale: 2))
        let pid = lb.started.pid
        let children = Self.processes(named: "lb-app", parent: pid) + Self.processes(named: "lb-store", parent: pid)
        #expect(children.count == 3)
        kill(pid, SIGKILL)
        lb.started.wait(timeout: 5)
        var gone = false
        for _ in 0..<50 {
            usleep(100_000)
            if children.allSatisfy({ kill($0, 0) != 0 || Self.isZombie($0) }) { gone = true; break }
        }
        #expect(gone, "services outlived a SIGKILLed lb")
    }

    static func isZombie(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return true }
        return stat[stat.index(close, offsetBy: 2)...].hasPrefix("Z")
    }
}

extension StackTests {
    /// examples/stack.conf itself (only its ports and paths moved): /cache-me is generated once
    /// by an app instance and then served by lb's cache, as the front-end's cache card shows.
    @Test func theExampleStackCachesTheHotPage() throws {
        let storePort = freePort(), appPort = freePortRange(4)
        let examples = Harness.repositoryRoot.appendingPathComponent("examples").path
        let text = try String(contentsOfFile: examples + "/stack.conf", encoding: .utf8)
            .replacingOccurrences(of: "6380", with: "\(storePort)")
            .replacingOccurrences(of: "port 9001;", with: "port \(appPort);")
            .replacingOccurrences(of: "listen 8000 default_server;", with: "listen 127.0.0.1:{port} default_server;")
            .replacingOccurrences(of: "include       mime.types;", with: "include \(examples)/mime.types;")
            .replacingOccurrences(of: "root  examples/www;", with: "root \(examples)/www;")
            .replacingOccurrences(of: "worker_processes auto;", with: "worker_processes 2;")
        let lb = try LB(text)
        let first = try RawClient(port: lb.port).get("/cache-me")
        #expect(first.status == 200)
        #expect(first.header("X-Cache-Status") == "MISS")
        #expect(first.text.contains("This response was generated at"))
        for _ in 0..<4 {
            let r = try RawClient(port: lb.port).get("/cache-me")
            #expect(r.header("X-Cache-Status") == "HIT")
            #expect(r.body == first.body)
        }
        // The rest of the stack is unaffected: round-robin, static front-end, lb's own answer.
        #expect(Set(try Self.instanceIDs(lb.port, 8)).count == 4)
        #expect(try RawClient(port: lb.port).get("/").text.contains("<html"))
        #expect(try RawClient(port: lb.port).get("/health-check").text == "success")
        // Its status page sees the four instances checked and up, and the cache zone's hits.
        let status = try JSONSerialization.jsonObject(with: Data(try RawClient(port: lb.port).get("/lb-status?format=json").body)) as! [String: Any]
        let app = (status["upstreams"] as! [[String: Any]]).first { $0["name"] as? String == "app" }!
        let peers = app["peers"] as! [[String: Any]]
        #expect(peers.count == 4 && peers.allSatisfy { $0["state"] as? String == "up" })
        let zone = (status["caches"] as! [[String: Any]]).first!
        #expect(zone["hits"] as? Int == 4)
        // Text goes out gzipped to a client that asks for it.
        let gz = try RawClient(port: lb.port).get("/style.css", headers: ["Accept-Encoding: gzip"])
        #expect(gz.header("Content-Encoding") == "gzip")
        lb.started.signal(SIGINT)
        #expect(lb.started.wait(timeout: 10))
    }
}
