import Foundation
import Glibc
import Testing

/// Debian's nginx, run with a test's own config in a temp dir on a loopback port (a test
/// instrument: the oracle for differential tests). One process (`master_process off`).
final class NginxPeer {
    static let binary = "/usr/sbin/nginx"
    static var available: Bool { FileManager.default.isExecutableFile(atPath: binary) }

    let dir: URL
    let port: Int
    let started: Started

    /// `config` may use `{port}` and `{dir}`.
    init(_ config: String, port: Int = freePort()) throws {
        dir = try Harness.tempDirectory()
        self.port = port
        let text = "master_process off;\n" + config.replacingOccurrences(of: "{port}", with: "\(port)")
            .replacingOccurrences(of: "{dir}", with: dir.path)
        try text.write(to: dir.appendingPathComponent("nginx.conf"), atomically: true, encoding: .utf8)
        started = try Started(URL(fileURLWithPath: NginxPeer.binary),
                              ["-p", dir.path + "/", "-c", dir.path + "/nginx.conf", "-e", "stderr",
                               "-g", "daemon off; pid \(dir.path)/nginx.pid;"], cwd: dir)
        guard waitForPort(port) else { throw HarnessError("nginx did not start: \(started.stderr)") }
    }

    func stop() { started.stop(grace: 1) }

    deinit {
        started.stop(grace: 1)
        try? FileManager.default.removeItem(at: dir)
    }
}

/// Sends `count` requests at once: every connection is opened first, then every request is
/// written, then the answers are read. Returns the statuses in sending order.
func simultaneous(_ count: Int, port: Int, path: String = "/", headers: [String] = []) throws -> [Int] {
    let clients = try (0..<count).map { _ in try RawClient(port: port) }
    let extra = headers.map { $0 + "\r\n" }.joined()
    let request = "GET \(path) HTTP/1.1\r\nHost: localhost\r\n\(extra)Connection: close\r\n\r\n"
    for c in clients { try c.send(request) }
    return try clients.map { try $0.readResponse().status }
}

/// limit_req and limit_conn against Debian's nginx on the same config: the same requests sent at
/// once get the same number of answers and rejections (counts, not timings).
@Suite(.serialized) struct LimitTests {
    /// A static file answers (nginx's `return` runs before the limits, which then never apply).
    static func config(_ http: String, _ location: String, workers: Int = 4) -> String {
        """
        worker_processes \(workers);
        error_log stderr info;
        events {}
        http {
            access_log off;
            \(http)
            server {
                listen 127.0.0.1:{port};
                server_name localhost;
                root \(docroot);
                location / {
                    \(location)
                    add_header X-Limit-Req "$limit_req_status";
                }
            }
        }
        """
    }

    /// One document root for lb and nginx: `index.html` is `ok`.
    static let docroot: String = {
        let d = try! Harness.tempDirectory()
        try! "ok\n".write(to: d.appendingPathComponent("index.html"), atomically: true, encoding: .utf8)
        chmod(d.path, 0o755)
        return d.path
    }()

    /// Runs the same flood against lb (several worker threads sharing the zone) and nginx.
    func compare(_ http: String, _ location: String, count: Int, path: String = "/",
                 sourceLocation: SourceLocation = #_sourceLocation) throws -> (lb: [Int], nginx: [Int]) {
        let lb = try LB(LimitTests.config(http, location))
        defer { lb.stop() }
        let lbStatuses = try simultaneous(count, port: lb.port, path: path)
        guard NginxPeer.available else {
            Issue.record("Debian's nginx is not installed (apt-get install -y nginx-light)", sourceLocation: sourceLocation)
            return (lbStatuses, [])
        }
        let nginx = try NginxPeer(LimitTests.config(http, location, workers: 1))
        defer { nginx.stop() }
        let nginxStatuses = try simultaneous(count, port: nginx.port, path: path)
        return (lbStatuses, nginxStatuses)
    }

    static func tally(_ s: [Int]) -> [Int: Int] { s.reduce(into: [:]) { $0[$1, default: 0] += 1 } }

    @Test func burstNodelayAdmitsAsManyAsNginx() throws {
        let r = try compare("limit_req_zone $binary_remote_addr zone=one:1m rate=1r/s;", "limit_req zone=one burst=5 nodelay;", count: 20)
        #expect(LimitTests.tally(r.lb) == [200: 6, 503: 14])
        #expect(LimitTests.tally(r.lb) == LimitTests.tally(r.nginx))
    }

    @Test func delayedRequestsWaitAndAreServedAsInNginx() throws {
        // 10r/s burst=4: one at once, four after 100–400 ms on the loop's timer, the rest 503.
        let r = try compare("limit_req_zone $binary_remote_addr zone=one:1m rate=10r/s;", "limit_req zone=one burst=4;", count: 12)
        #expect(LimitTests.tally(r.lb) == [200: 5, 503: 7])
        #expect(LimitTests.tally(r.lb) == LimitTests.tally(r.nginx))
    }

    @Test func delayParameterAndCustomStatusAsNginx() throws {
        let r = try compare("limit_req_zone $binary_remote_addr zone=one:1m rate=10r/s;",
                            "limit_req zone=one burst=6 delay=3; limit_req_status 429;", count: 15)
        #expect(LimitTests.tally(r.lb) == [200: 7, 429: 8])
        #expect(LimitTests.tally(r.lb) == LimitTests.tally(r.nginx))
    }

    @Test func severalZonesEachLimitAsInNginx() throws {
        // Per address burst 8, per server burst 3: the tighter one decides.
        let r = try compare("""
            limit_req_zone $binary_remote_addr zone=ip:1m rate=1r/s;
            limit_req_zone $server_name zone=srv:1m rate=1r/s;
            """, "limit_req zone=ip burst=8 nodelay; limit_req zone=srv burst=3 nodelay;", count: 10)
        #expect(LimitTests.tally(r.lb) == [200: 4, 503: 6])
        #expect(LimitTests.tally(r.lb) == LimitTests.tally(r.nginx))
    }

    @Test func aLocationThatReturnsIsNotLimitedAsInNginx() throws {
        // nginx's `return` runs in the rewrite phase, before limit_req: every request is answered.
        let config = LimitTests.config("limit_req_zone $binary_remote_addr zone=one:1m rate=1r/s;", "limit_req zone=one nodelay; return 204;")
        let lb = try LB(config)
        defer { lb.stop() }
        let ours = try simultaneous(5, port: lb.port)
        #expect(ours == [204, 204, 204, 204, 204])
        guard NginxPeer.available else { Issue.record("Debian's nginx is not installed"); return }
        let nginx = try NginxPeer(config.replacingOccurrences(of: "worker_processes 4;", with: "worker_processes 1;"))
        defer { nginx.stop() }
        #expect(try simultaneous(5, port: nginx.port) == ours)
    }

    @Test func aClientThatLeavesDuringItsDelayEndsTheRequest() throws {
        let lb = try LB(LimitTests.config("limit_req_zone $binary_remote_addr zone=one:1m rate=2r/s;", "limit_req zone=one burst=5;")
            .replacingOccurrences(of: "access_log off;", with: "access_log stderr;"))
        defer { lb.stop() }
        #expect(try RawClient(port: lb.port).get("/").status == 200)
        let waiting = try RawClient(port: lb.port)
        try waiting.send("GET /gone HTTP/1.1\r\nHost: localhost\r\n\r\n")
        #expect(waitUntil { lb.errorLog.contains("delaying request, excess: ") })
        waiting.close()
        #expect(waitUntil { lb.errorLog.contains("\"GET /gone HTTP/1.1\" 499 ") })
    }

    @Test func dryRunRejectsNothing() throws {
        let r = try compare("limit_req_zone $binary_remote_addr zone=one:1m rate=1r/s;",
                            "limit_req zone=one burst=1 nodelay; limit_req_dry_run on;", count: 6)
        #expect(LimitTests.tally(r.lb) == [200: 6])
        #expect(LimitTests.tally(r.lb) == LimitTests.tally(r.nginx))
    }

    @Test func limitReqStatusVariableNamesTheOutcome() throws {
        let lb = try LB(LimitTests.config("limit_req_zone $binary_remote_addr zone=one:1m rate=1r/s;",
                                          "limit_req zone=one burst=1 nodelay; limit_req_dry_run on;"))
        defer { lb.stop() }
        let got = try (0..<3).map { _ in try RawClient(port: lb.port).get("/").header("X-Limit-Req") }
        #expect(got == ["PASSED", "PASSED", "REJECTED_DRY_RUN"])
        #expect(lb.errorLog.contains("limiting requests, dry run, excess: ") && lb.errorLog.contains(" by zone \"one\", client: 127.0.0.1"))
    }

    @Test func emptyKeyIsNotLimited() throws {
        let r = try compare("limit_req_zone $http_x_client zone=one:1m rate=1r/s;", "limit_req zone=one nodelay;", count: 8)
        #expect(LimitTests.tally(r.lb) == [200: 8])
        #expect(LimitTests.tally(r.lb) == LimitTests.tally(r.nginx))
    }

    @Test func limitConnCountsRequestsInProgressAsNginx() throws {
        let backend = try Backend(name: "slow")
        let http = "limit_conn_zone $binary_remote_addr zone=addr:1m; upstream app { server 127.0.0.1:\(backend.port); }"
        func config(workers: Int) -> String {
            """
            worker_processes \(workers);
            error_log stderr info;
            events {}
            http {
                access_log off;
                \(http)
                server {
                    listen 127.0.0.1:{port};
                    location / { limit_conn addr 2; proxy_pass http://app; }
                }
            }
            """
        }
        let lb = try LB(config(workers: 4))
        defer { lb.stop() }
        let lbStatuses = try simultaneous(6, port: lb.port, path: "/slow?ms=1500")
        #expect(LimitTests.tally(lbStatuses) == [200: 2, 503: 4])
        #expect(lb.errorLog.contains("limiting connections by zone \"addr\""))
        // Released at each request's end: the next ones pass again, also on a kept-alive connection.
        let c = try RawClient(port: lb.port)
        #expect(try c.get("/slow?ms=1").status == 200)
        #expect(try c.get("/slow?ms=1").status == 200)
        guard NginxPeer.available else { Issue.record("Debian's nginx is not installed"); return }
        let nginx = try NginxPeer(config(workers: 1))
        defer { nginx.stop() }
        #expect(LimitTests.tally(try simultaneous(6, port: nginx.port, path: "/slow?ms=1500")) == LimitTests.tally(lbStatuses))
    }

    @Test func zoneStatesSurviveAReloadWhenTheZoneIsUnchanged() throws {
        let zone = "limit_req_zone $binary_remote_addr zone=one:1m rate=1r/m;"
        let lb = try LB("error_log stderr notice;\n" + LimitTests.config(zone, "limit_req zone=one burst=2 nodelay;").replacingOccurrences(of: "error_log stderr info;", with: ""))
        defer { lb.stop() }
        #expect(LimitTests.tally(try simultaneous(5, port: lb.port)) == [200: 3, 503: 2])
        // Same zone, another location body: the bucket is still full.
        try lb.rewrite("error_log stderr notice;\n" + LimitTests.config(zone, "limit_req zone=one burst=2 nodelay; add_header X-Gen 2;").replacingOccurrences(of: "error_log stderr info;", with: ""))
        lb.reloadAndWait()
        #expect(try RawClient(port: lb.port).get("/").status == 503)
        // A new size is a new zone (as nginx's shared memory): empty.
        try lb.rewrite("error_log stderr notice;\n" + LimitTests.config(zone.replacingOccurrences(of: ":1m", with: ":2m"), "limit_req zone=one burst=2 nodelay;").replacingOccurrences(of: "error_log stderr info;", with: ""))
        lb.reloadAndWait()
        #expect(try RawClient(port: lb.port).get("/").status == 200)
    }
}
