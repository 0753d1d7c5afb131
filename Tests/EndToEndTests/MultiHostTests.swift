import Foundation
import Glibc
import Synchronization
import Testing

/// lb across hosts: each host a network namespace on a test-only subnet (MultiHostSupport.swift),
/// running the real lb, lb-app, lb-store and dnsmasq; faults are real link cuts and real kills,
/// under client load from the root namespace with every client error counted.
@Suite(.serialized, .enabled(if: NetNS.available, "needs root and network namespaces (ip netns add); CI runs as root"))
struct MultiHostTests {
    /// The http block the scenarios share; `upstream` is the upstream's body.
    func lbConfig(resolver: String? = nil, upstream: String, proxy: String = "", extra: String = "", http: String = "") -> String {
        """
        error_log stderr notice;
        events {}
        http {
            access_log off;
            \(http)
            \(resolver.map { "resolver \($0):53 valid=1s ipv6=off; resolver_timeout 1s;" } ?? "")
            upstream pool { zone pool 64k; \(upstream) }
            server {
                listen {addr}:8080;
                \(extra)
                location / { proxy_pass http://pool; \(proxy) }
                location /lb-api/ { api; allow 10.213.0.0/16; deny all; }
            }
        }
        """
    }

    @Test func appHostsFoundThroughDNSJoinAndLeaveWithoutAFailedRequest() throws {
        let bed = try Testbed()
        defer { bed.close() }
        let dnsHost = try bed.host("dns", number: 2)
        let lbHost = try bed.host("lb", number: 3)
        let lbAddress = lbHost.address
        var apps: [SimHost] = []
        for n in 1...4 {
            let h = try bed.host("app\(n)", number: 10 + n)
            try h.app(name: "app\(n)")
            apps.append(h)
        }
        func records(_ hosts: [SimHost]) -> String { hosts.map { "\($0.address) app.test\n" }.joined() }
        let dns = try HostDNS(on: dnsHost, hosts: records(Array(apps[0..<3])))
        let lb = try HostLB(on: lbHost, lbConfig(resolver: dnsHost.address, upstream: "server app.test:5000 resolve;",
                                                  proxy: "proxy_connect_timeout 1s;"))
        func members() -> Set<String> { Set(lb.peers().keys) }
        func addresses(_ hosts: [SimHost]) -> Set<String> { Set(hosts.map { "\($0.address):5000" }) }
        #expect(waitUntil(timeout: 10) { members() == addresses(Array(apps[0..<3])) }, "members: \(members()), log: \(lb.errorLog)")

        let load = ClientLoad(threads: 3, path: "/", targets: { [(lbAddress, 8080)] }, judge: appName)
        defer { load.stop() }
        #expect(waitUntil(timeout: 10) { (1...3).allSatisfy { load.count("app\($0)") > 0 } }, "\(load.counts.withLock { $0 })")

        // A fourth host joins through DNS alone.
        try dns.change(records(apps))
        #expect(waitUntil(timeout: 10) { members() == addresses(apps) }, "members: \(members())")
        #expect(waitUntil(timeout: 10) { load.count("app4") >= 20 }, "\(load.counts.withLock { $0 })")

        // The first leaves: out of DNS, and once lb has let it go, its app stops (a scale-down).
        try dns.change(records(Array(apps[1...])))
        #expect(waitUntil(timeout: 10) { members() == addresses(Array(apps[1...])) }, "members: \(members())")
        let app1Final = load.count("app1")
        apps[0].stopAll()
        load.run(for: 1)
        load.stop()
        #expect(load.count("app1") <= app1Final + 3, "app1 kept getting requests after it left DNS")
        #expect((2...4).allSatisfy { load.count("app\($0)") > 0 })
        #expect(load.failureList.isEmpty, "\(load.failureList.count) failed request(s): \(load.failureList.prefix(5))")
        print("multi-host DNS membership: \(load.total) requests, \(load.failureList.count) failed, per instance \(load.counts.withLock { $0 })")
        #expect(lb.errorLog.contains("peer \(apps[3].address):5000 added from DNS (app.test"), "\(lb.errorLog)")
        #expect(lb.errorLog.contains("peer \(apps[0].address):5000 gone from DNS (app.test)"), "\(lb.errorLog)")
    }

    @Test func anUnpluggedAppHostCostsNoClientAnErrorAndIsMarkedDown() throws {
        let bed = try Testbed()
        defer { bed.close() }
        let lbHost = try bed.host("lb", number: 3)
        let lbAddress = lbHost.address
        var apps: [SimHost] = []
        for n in 1...3 {
            let h = try bed.host("app\(n)", number: 10 + n)
            try h.app(name: "app\(n)")
            apps.append(h)
        }
        let servers = apps.map { "server \($0.address):5000;" }.joined(separator: " ")
        let lb = try HostLB(on: lbHost, lbConfig(upstream: servers + " health_check uri=/ interval=200ms timeout=300ms fails=1 passes=1;",
                                                  proxy: "proxy_connect_timeout 300ms; proxy_read_timeout 1s; proxy_next_upstream error timeout;"))
        let victim = "\(apps[2].address):5000"
        #expect(waitUntil(timeout: 10) { lb.peers().values.allSatisfy { $0 == "up" } && lb.peers().count == 3 }, "\(lb.peers())")

        let load = ClientLoad(threads: 3, path: "/", targets: { [(lbAddress, 8080)] }, judge: appName)
        defer { load.stop() }
        #expect(waitUntil(timeout: 10) { (1...3).allSatisfy { load.count("app\($0)") > 0 } }, "\(load.counts.withLock { $0 })")
        let before = load.total

        let unplugged = Date()
        try apps[2].unplug()
        var down = false
        waitUntil(timeout: 10) { down = lb.peers()[victim] == "down"; return down }
        let markedDown = Date().timeIntervalSince(unplugged)
        #expect(down, "lb did not mark \(victim) down: \(lb.peers()), log: \(lb.errorLog)")
        let app3AtDown = load.count("app3")
        load.run(for: 1.5)
        load.stop()
        print("multi-host unplug: lb marked the unplugged host down \(Int(markedDown * 1000)) ms after the cut; \(load.total) requests, "
              + "\(load.failureList.count) failed, slowest \(Int(load.slowest.withLock { $0 } * 1000)) ms")
        #expect(markedDown < 10)
        #expect(load.total > before + 20, "the load stalled: \(load.total) answers, \(before) before the cut")
        #expect(load.count("app3") == app3AtDown)
        #expect(load.failureList.isEmpty, "\(load.failureList.count) failed request(s): \(load.failureList.prefix(5)); log: \(String(lb.errorLog.suffix(2000)))")
    }

    @Test func leastConnSendsLessToAHostBehind50msOfLatency() throws {
        let bed = try Testbed()
        defer { bed.close() }
        let lbHost = try bed.host("lb", number: 3)
        let lbAddress = lbHost.address
        let fast1 = try bed.host("app1", number: 11), fast2 = try bed.host("app2", number: 12), slow = try bed.host("app3", number: 13)
        try fast1.app(name: "app1")
        try fast2.app(name: "app2")
        // The slow host's app listens inside it only; the relay in front adds 50 ms per request.
        try slow.app(name: "app3", bind: "127.0.0.1")
        try slow.delayingRelay(port: 5000, to: "127.0.0.1", 5000, delayMs: 50)
        let t0 = Date()
        #expect(appName(try RawClient(port: 5000, host: slow.address).get("/")).isOK)
        let direct = Date().timeIntervalSince(t0)
        #expect(direct >= 0.05, "the relay did not delay: \(direct) s")

        let servers = [fast1, fast2, slow].map { "server \($0.address):5000;" }.joined(separator: " ")
        let lb = try HostLB(on: lbHost, lbConfig(upstream: "least_conn; " + servers))
        let load = ClientLoad(threads: 6, path: "/", targets: { [(lbAddress, 8080)] }, judge: appName)
        defer { load.stop() }
        #expect(waitUntil(timeout: 10) { load.total >= 300 }, "\(load.counts.withLock { $0 })")
        load.run(for: 2)
        load.stop()
        let c = load.counts.withLock { $0 }
        print("multi-host least_conn with 50 ms in front of app3: \(c)")
        let s = c["app3"] ?? 0
        #expect(s > 0, "the slow host got nothing: \(c)")
        #expect(s * 2 < (c["app1"] ?? 0) && s * 2 < (c["app2"] ?? 0), "least_conn did not favour the fast hosts: \(c)")
        #expect(load.failureList.isEmpty, "\(load.failureList.prefix(5)); log: \(String(lb.errorLog.suffix(1000)))")
    }

    @Test func theStoreHostUnpluggedMeans503sThenRecoveryWithNoAcknowledgedWriteLost() throws {
        let bed = try Testbed()
        defer { bed.close() }
        let storeHost = try bed.host("store", number: 20)
        let lbHost = try bed.host("lb", number: 3)
        let lbAddress = lbHost.address
        try storeHost.store()
        let a1 = try bed.host("app1", number: 11), a2 = try bed.host("app2", number: 12)
        try a1.app(name: "app1", store: storeHost.address)
        try a2.app(name: "app2", store: storeHost.address)
        // lb probes the apps' /health (a PING to the store) all along; an app whose store is away
        // answers it 503 and is still alive. (Those probes are also what kept lb-app waiting on
        // a store that had stopped answering: each new command pushed the reply deadline away.)
        let lb = try HostLB(on: lbHost, lbConfig(upstream: "server \(a1.address):5000; server \(a2.address):5000; "
                                                  + "health_check uri=/health interval=200ms timeout=3s fails=3 match=alive;",
                                                  http: "match alive { status 200 503; }"))

        // /api/count: INCR visits through an app; a 200 acknowledges the write and names its count.
        let tally = PhasedTally()
        let load = ClientLoad(threads: 3, path: "/api/count", targets: { [(lbAddress, 8080)] }) { r in
            let p = tally.phase.withLock { $0 }
            tally.seen.withLock { $0[p, default: [:]][r.status, default: 0] += 1 }
            if r.status == 503 { return .ok("503") }
            guard r.status == 200, let obj = try? JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any],
                  let n = obj["count"] as? Int else { return .failed("status \(r.status): \(r.text.prefix(200))") }
            return .ok("200", value: n)
        }
        defer { load.stop() }
        #expect(waitUntil(timeout: 10) { load.count("200") >= 50 }, "\(load.counts.withLock { $0 }) \(load.failureList.prefix(3))")

        try storeHost.unplug()
        tally.phase.withLock { $0 = 1 }
        let cut = Date()
        #expect(waitUntil(timeout: 10) { load.count("503") > 0 }, "no 503 while the store was cut off: \(load.counts.withLock { $0 })")
        let first503 = Date().timeIntervalSince(cut)
        load.run(for: 2)

        try storeHost.plug()
        tally.phase.withLock { $0 = 2 }
        let plugged = Date()
        #expect(waitUntil(timeout: 15) { (tally.seen.withLock { $0[2]?[200] } ?? 0) >= 20 }, "the apps did not recover: \(tally.seen.withLock { $0 })")
        let recovered = Date().timeIntervalSince(plugged)
        load.stop()
        print("multi-host store cut: first 503 \(Int(first503 * 1000)) ms after the cut, 200s again \(Int(recovered * 1000)) ms after "
              + "plugging back; answers by phase (0 before, 1 cut, 2 back) and status: \(tally.seen.withLock { $0 })")

        #expect(load.failureList.isEmpty, "\(load.failureList.count) unexpected answers: \(load.failureList.prefix(5)); log: \(String(lb.errorLog.suffix(1000)))")
        // Every acknowledged INCR has its own count (none acknowledged twice, none rolled back),
        // and the counter is past all of them.
        let acked = load.values.withLock { $0 }
        #expect(Set(acked).count == acked.count, "a count was acknowledged twice")
        let after = try RawClient(port: 8080, host: lbHost.address).get("/api/count")
        let final = (try? JSONSerialization.jsonObject(with: Data(after.body)) as? [String: Any])?["count"] as? Int ?? -1
        #expect(after.status == 200 && final > (acked.max() ?? 0), "counter \(final) after \(acked.count) acknowledged writes up to \(acked.max() ?? 0)")
    }

    @Test func twoLBHostsBehindOneNameShareClientsAndSurviveOneKilled() throws {
        let bed = try Testbed()
        defer { bed.close() }
        let dnsHost = try bed.host("dns", number: 2)
        let a1 = try bed.host("app1", number: 11), a2 = try bed.host("app2", number: 12)
        try a1.app(name: "app1")
        try a2.app(name: "app2")
        let l1 = try bed.host("lb1", number: 4), l2 = try bed.host("lb2", number: 5)
        let upstream = "server \(a1.address):5000; server \(a2.address):5000;"
        let lb1 = try HostLB(on: l1, lbConfig(upstream: upstream, extra: "add_header X-LB lb1;"))
        let lb2 = try HostLB(on: l2, lbConfig(upstream: upstream, extra: "add_header X-LB lb2;"))
        _ = lb2
        // Held to the end: its deinit deletes the hosts file, which dnsmasq may not have read yet.
        let dns = try HostDNS(on: dnsHost, hosts: "\(l1.address) lb.test\n\(l2.address) lb.test\n")
        defer { withExtendedLifetime(dns) {} }
        let dnsAddress = dnsHost.address
        #expect(Set(resolveA("lb.test", server: dnsAddress)) == [l1.address, l2.address])

        // Each request: resolve the name, try the addresses in random order, the next on failure.
        let load = ClientLoad(threads: 4, path: "/", keepAlive: false, timeout: 3, targets: {
            resolveA("lb.test", server: dnsAddress).shuffled().map { ($0, 8080) }
        }) { r in
            guard r.status == 200, let who = r.header("X-LB") else { return .failed("status \(r.status): \(r.text.prefix(200))") }
            return .ok(who)
        }
        defer { load.stop() }
        #expect(waitUntil(timeout: 10) { load.total >= 200 })
        let spread = load.counts.withLock { $0 }
        let total = spread.values.reduce(0, +)
        #expect((spread["lb1"] ?? 0) * 5 > total && (spread["lb2"] ?? 0) * 5 > total, "clients did not spread over both: \(spread)")

        lb1.started.signal(SIGKILL)
        #expect(lb1.started.wait(timeout: 5))
        let lb2Before = load.count("lb2")
        load.run(for: 2)
        load.stop()
        let retried = load.retries.withLock { $0 }
        print("multi-host two lbs: before the kill \(spread); after \(load.counts.withLock { $0 }); \(retried) request(s) retried on the other lb")
        #expect(load.count("lb2") > lb2Before + 50)
        #expect(retried > 0, "no client met the killed lb")
        #expect(load.failureList.isEmpty, "\(load.failureList.count) failed request(s): \(load.failureList.prefix(5))")
    }
}

/// Answers by phase of a scenario: phase → status → count.
final class PhasedTally: Sendable {
    let phase = Mutex<Int>(0)
    let seen = Mutex<[Int: [Int: Int]]>([:])
}

extension Outcome {
    var isOK: Bool { if case .ok = self { true } else { false } }
}
