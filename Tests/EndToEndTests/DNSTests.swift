import Foundation
import Glibc
import Synchronization
import Testing

/// Debian's dnsmasq as the test's DNS server: authoritative for `.test` (`--local`), answering
/// from an `--addn-hosts` file the test rewrites (SIGHUP makes dnsmasq read it again) and from
/// `--srv-host` records, on a loopback port, TTL 1 s. No upstream servers: nothing leaves the host.
final class DNSServer {
    let port: Int
    let dir: URL
    let hostsURL: URL
    var started: Started?
    let srv: [String]

    init(hosts: String, srv: [String] = [], port: Int = freePort()) throws {
        self.port = port
        self.srv = srv
        dir = try Harness.tempDirectory()
        // dnsmasq run as root drops to "nobody", which must read the hosts file.
        chmod(dir.path, 0o755)
        hostsURL = dir.appendingPathComponent("hosts")
        try setHosts(hosts)
        try start()
    }

    static var installed: Bool { FileManager.default.isExecutableFile(atPath: "/usr/sbin/dnsmasq") }

    func start() throws {
        let args = ["--keep-in-foreground", "--no-resolv", "--no-hosts", "--port=\(port)", "--listen-address=127.0.0.1",
                    "--bind-interfaces", "--addn-hosts=\(hostsURL.path)", "--local=/test/", "--local-ttl=1", "--pid-file=",
                    "--log-facility=-"] + srv.map { "--srv-host=\($0)" }
        // Through a keeper that stays its parent (see `dnsmasqKeeper`): started directly, dnsmasq
        // would stall the reaping of every other child of the test process while it runs.
        let s = try Started(URL(fileURLWithPath: "/usr/bin/env"), ["python3", "-c", dnsmasqKeeper, "/usr/sbin/dnsmasq"] + args)
        started = s
        guard waitForPort(port) else { throw HarnessError("dnsmasq did not start: \(s.stderr)") }
    }

    func setHosts(_ text: String) throws {
        try text.write(to: hostsURL, atomically: true, encoding: .utf8)
        chmod(hostsURL.path, 0o644)
    }

    /// Rewrites the hosts file and has dnsmasq read it again.
    func change(_ hosts: String) throws {
        try setHosts(hosts)
        started?.signal(SIGHUP)
    }

    func stop() { started?.stop(grace: 2) }

    deinit {
        stop()
        try? FileManager.default.removeItem(at: dir)
    }
}

/// A test backend (Tests/support/backend.py) bound to another loopback address.
final class HostBackend {
    let host: String
    let port: Int
    let name: String
    let started: Started

    init(host: String, port: Int, name: String) throws {
        self.host = host
        self.port = port
        self.name = name
        started = try Started(URL(fileURLWithPath: "/usr/bin/env"),
                              ["python3", Harness.repositoryRoot.appendingPathComponent("Tests/support/backend.py").path, "\(port)", name, host])
        let ok = waitUntil(timeout: 10, interval: 0.02) { started.stdout.contains("ready") }
        guard ok else { throw HarnessError("backend \(name) on \(host):\(port) did not start: \(started.stderr)") }
    }

    deinit { started.stop(grace: 0) }
}

extension Started {
    var stdout: String { (try? String(contentsOf: stdoutURL, encoding: .utf8)) ?? "" }
}

/// Requests sent one after another through lb on a keep-alive connection from another thread,
/// counting the answers per backend and every failure (a status other than 200, or no answer).
final class LoadLoop: @unchecked Sendable {
    let port: Int
    let stopFlag = Mutex<Bool>(false)
    let counts = Mutex<[String: Int]>([:])
    let failures = Mutex<[String]>([])
    let finished = Mutex<Bool>(false)

    init(port: Int) {
        self.port = port
        let thread = Thread { [self] in run() }
        thread.start()
    }

    func run() {
        var client: RawClient?
        while !stopFlag.withLock({ $0 }) {
            do {
                if client == nil { client = try RawClient(port: port) }
                let r = try client!.get("/load")
                // keepalive_requests: lb closes after its 1000th response on one connection.
                if r.header("Connection")?.lowercased() == "close" { client = nil }
                if r.status == 200, let b = r.header("X-Backend") {
                    counts.withLock { $0[b, default: 0] += 1 }
                } else {
                    failures.withLock { $0.append("status \(r.status): \(r.text)") }
                }
            } catch {
                failures.withLock { $0.append("\(error)") }
                client = nil
            }
        }
        finished.withLock { $0 = true }
    }

    func count(_ backend: String) -> Int { counts.withLock { $0[backend] ?? 0 } }

    func stop() {
        stopFlag.withLock { $0 = true }
        waitUntil(timeout: 10) { finished.withLock { $0 } }
    }
}

/// `server NAME resolve` and `server NAME service=… resolve`: upstream membership that follows
/// DNS at run time, without a reload, against a real DNS server.
@Suite(.serialized) struct DNSTests {
    func config(dns: Int, upstream: String) -> String {
        """
        error_log stderr notice;
        events {}
        http {
            access_log off;
            resolver 127.0.0.1:\(dns) ipv6=off;
            resolver_timeout 1s;
            upstream pool { zone pool 64k; \(upstream) }
            server {
                listen 127.0.0.1:{port};
                location / { proxy_pass http://pool; }
                location /lb-api/ { api; allow 127.0.0.1; deny all; }
                location = /metrics { metrics; }
            }
        }
        """
    }

    /// The upstream's peers from the runtime API: address → (id, state, weight).
    func peers(_ lb: LB) -> [String: (id: Int, state: String, weight: Int)] {
        guard let r = try? RawClient(port: lb.port).get("/lb-api/upstreams/pool"),
              let obj = try? JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any],
              let list = obj["peers"] as? [[String: Any]] else { return [:] }
        var out: [String: (Int, String, Int)] = [:]
        for p in list {
            out[p["address"] as! String] = (p["id"] as! Int, p["state"] as! String, p["weight"] as! Int)
        }
        return out
    }

    func addresses(_ lb: LB) -> Set<String> { Set(peers(lb).keys) }

    @Test func membersJoinAndLeaveAsDNSChangesWithoutReloadOrFailedRequests() throws {
        guard DNSServer.installed else { Issue.record("dnsmasq is not installed (Tests/run.sh installs Debian's dnsmasq-base)"); return }
        let port = freePort()
        let b1 = try HostBackend(host: "127.0.0.11", port: port, name: "b1")
        let b2 = try HostBackend(host: "127.0.0.12", port: port, name: "b2")
        let b3 = try HostBackend(host: "127.0.0.13", port: port, name: "b3")
        _ = (b1, b2, b3)
        let dns = try DNSServer(hosts: "127.0.0.11 app.test\n127.0.0.12 app.test\n")
        let lb = try LB(config(dns: dns.port, upstream: "server app.test:\(port) resolve;"))
        let first: Set = ["127.0.0.11:\(port)", "127.0.0.12:\(port)"]
        #expect(waitUntil(timeout: 10) { addresses(lb) == first }, "members: \(addresses(lb)), log: \(lb.errorLog)")
        let idOfB2 = peers(lb)["127.0.0.12:\(port)"]?.id

        let load = LoadLoop(port: lb.port)
        #expect(waitUntil(timeout: 10) { load.count("b1") > 0 && load.count("b2") > 0 })
        // b3 joins, b1 leaves: one edit of the hosts file, no reload of lb.
        try dns.change("127.0.0.12 app.test\n127.0.0.13 app.test\n")
        let second: Set = ["127.0.0.12:\(port)", "127.0.0.13:\(port)"]
        #expect(waitUntil(timeout: 10) { addresses(lb) == second }, "members: \(addresses(lb)), log: \(lb.errorLog)")
        let b1Final = load.count("b1")
        #expect(waitUntil(timeout: 10) { load.count("b3") >= 20 })
        // b1 took no new request after it left (the one in flight then, if any, finished); b2
        // kept its peer (same id: its balancer and health state carried on).
        #expect(load.count("b1") <= b1Final + 1)
        #expect(peers(lb)["127.0.0.12:\(port)"]?.id == idOfB2)
        load.stop()
        let failures = load.failures.withLock { $0 }
        #expect(failures.isEmpty, "failed requests: \(failures.prefix(5))")
        #expect(!lb.errorLog.contains("configuration reloaded"))
        #expect(lb.errorLog.contains("peer 127.0.0.13:\(port) added from DNS (app.test"))
        #expect(lb.errorLog.contains("peer 127.0.0.11:\(port) gone from DNS (app.test)"))

        // The name removed from DNS altogether (NXDOMAIN): its members go, and lb says so.
        try dns.change("127.0.0.99 other.test\n")
        #expect(waitUntil(timeout: 10) { addresses(lb).isEmpty }, "members: \(addresses(lb))")
        #expect(lb.errorLog.contains("app.test could not be resolved (3: Host not found)"))
        #expect(try RawClient(port: lb.port).get("/").status == 502)
    }

    @Test func healthChecksCoverMembersFromDNSAndAReloadKeepsThem() throws {
        guard DNSServer.installed else { Issue.record("dnsmasq is not installed (Tests/run.sh installs Debian's dnsmasq-base)"); return }
        let port = freePort()
        let h1 = try HostBackend(host: "127.0.0.41", port: port, name: "h1")
        let h2 = try HostBackend(host: "127.0.0.42", port: port, name: "h2")
        _ = h1
        let dns = try DNSServer(hosts: "127.0.0.41 app.test\n127.0.0.42 app.test\n")
        let upstream = "server app.test:\(port) resolve; health_check interval=300ms fails=1 passes=1;"
        let lb = try LB(config(dns: dns.port, upstream: upstream))
        let a1 = "127.0.0.41:\(port)", a2 = "127.0.0.42:\(port)"
        // Both members were probed (a new member waits for its first passed check).
        #expect(waitUntil(timeout: 10) { peers(lb).mapValues(\.state).sorted { $0.key < $1.key }.map(\.value) == ["up", "up"] },
                "peers: \(peers(lb)), log: \(lb.errorLog)")
        h2.started.signal(SIGKILL)
        #expect(waitUntil(timeout: 10) { peers(lb)[a2]?.state == "down" }, "peers: \(peers(lb))")
        // A reload that rebuilds the upstream (keepalive added) starts it with the members DNS
        // gave the old one, in their health (unit-tested in DynamicMembersTests): requests go on
        // at once, to h1 only, and h2 stays down.
        try lb.rewrite(config(dns: dns.port, upstream: upstream + " keepalive 2;"))
        #expect(lb.reloadAndWait())
        #expect(try RawClient(port: lb.port).get("/").header("X-Backend") == "h1")
        #expect(peers(lb)[a1]?.state == "up")
        #expect(waitUntil(timeout: 10) { peers(lb)[a2]?.state == "down" }, "peers: \(peers(lb))")
    }

    @Test func anAnswerTooBigForUDPIsAskedAgainOverTCP() throws {
        guard DNSServer.installed else { Issue.record("dnsmasq is not installed (Tests/run.sh installs Debian's dnsmasq-base)"); return }
        // 40 A records do not fit a 512-byte UDP answer: dnsmasq sends 30 with TC set.
        let hosts = (1...40).map { "127.0.1.\($0) many.test\n" }.joined()
        let dns = try DNSServer(hosts: hosts)
        let lb = try LB(config(dns: dns.port, upstream: "server many.test:9 resolve;"))
        #expect(waitUntil(timeout: 10) { addresses(lb).count == 40 }, "members: \(addresses(lb).count), log: \(lb.errorLog)")
        #expect(addresses(lb) == Set((1...40).map { "127.0.1.\($0):9" }))
        let metrics = try RawClient(port: lb.port).get("/metrics").text
        let tcp = metrics.split(separator: "\n").first { $0.hasPrefix("lb_dns_tcp_retries_total ") }
        #expect(tcp.flatMap { Int($0.split(separator: " ")[1]) } ?? 0 >= 1, "\(tcp ?? "no lb_dns_tcp_retries_total")")
    }

    @Test func srvRecordsGivePortsAndWeights() throws {
        guard DNSServer.installed else { Issue.record("dnsmasq is not installed (Tests/run.sh installs Debian's dnsmasq-base)"); return }
        let p1 = freePort(), p2 = freePort()
        let s1 = try HostBackend(host: "127.0.0.21", port: p1, name: "s1")
        let s2 = try HostBackend(host: "127.0.0.22", port: p2, name: "s2")
        _ = (s1, s2)
        let dns = try DNSServer(hosts: "127.0.0.21 s1.test\n127.0.0.22 s2.test\n",
                                srv: ["_http._tcp.app.test,s1.test,\(p1),0,3", "_http._tcp.app.test,s2.test,\(p2),0,1"])
        let lb = try LB(config(dns: dns.port, upstream: "server app.test service=http resolve;"))
        let want: Set = ["127.0.0.21:\(p1)", "127.0.0.22:\(p2)"]
        #expect(waitUntil(timeout: 10) { addresses(lb) == want }, "members: \(addresses(lb)), log: \(lb.errorLog)")
        let ps = peers(lb)
        #expect(ps["127.0.0.21:\(p1)"]?.weight == 3 && ps["127.0.0.22:\(p2)"]?.weight == 1)
        // Smooth weighted round-robin over SRV weights 3:1.
        var seen: [String: Int] = [:]
        let c = try RawClient(port: lb.port)
        for _ in 0..<8 {
            let r = try c.get("/")
            #expect(r.status == 200)
            seen[r.header("X-Backend") ?? "?", default: 0] += 1
        }
        #expect(seen == ["s1": 6, "s2": 2])
    }

    @Test func dnsOutageKeepsTheLastKnownMembers() throws {
        guard DNSServer.installed else { Issue.record("dnsmasq is not installed (Tests/run.sh installs Debian's dnsmasq-base)"); return }
        let port = freePort()
        let b1 = try HostBackend(host: "127.0.0.31", port: port, name: "o1")
        let b2 = try HostBackend(host: "127.0.0.32", port: port, name: "o2")
        _ = (b1, b2)
        let dns = try DNSServer(hosts: "127.0.0.31 app.test\n127.0.0.32 app.test\n")
        let lb = try LB(config(dns: dns.port, upstream: "server app.test:\(port) resolve;"))
        let both: Set = ["127.0.0.31:\(port)", "127.0.0.32:\(port)"]
        #expect(waitUntil(timeout: 10) { addresses(lb) == both }, "members: \(addresses(lb)), log: \(lb.errorLog)")
        dns.stop()
        #expect(waitUntil(timeout: 15) { lb.errorLog.contains("upstream \"pool\" keeps its 2 last known member(s)") }, "log: \(lb.errorLog)")
        #expect(addresses(lb) == both)
        let c = try RawClient(port: lb.port)
        var seen: Set<String> = []
        for _ in 0..<4 {
            let r = try c.get("/")
            #expect(r.status == 200)
            seen.insert(r.header("X-Backend") ?? "?")
        }
        #expect(seen == ["o1", "o2"])
        // DNS back (on the same port) with one member fewer: lb follows again.
        try dns.setHosts("127.0.0.32 app.test\n")
        try dns.start()
        #expect(waitUntil(timeout: 15) { addresses(lb) == ["127.0.0.32:\(port)"] }, "members: \(addresses(lb)), log: \(lb.errorLog)")
        #expect(lb.errorLog.contains("app.test resolved again for upstream \"pool\""))
    }
}
