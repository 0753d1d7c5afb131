import Foundation
import Glibc
import Testing

/// A TCP server that accepts connections, reads what the client sends first (a ClientHello)
/// and closes: a peer that drops every TLS handshake. Prints "ready" once listening.
final class HandshakeDropper {
    let port: Int
    let started: Started

    init() throws {
        port = freePort()
        let script = """
            import socket
            s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", \(port))); s.listen(64); print("ready", flush=True)
            while True:
                c, _ = s.accept(); c.recv(4096); c.close()
            """
        started = try Started(URL(fileURLWithPath: "/usr/bin/env"), ["python3", "-c", script])
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if let out = try? String(contentsOf: started.stdoutURL, encoding: .utf8), out.contains("ready") { return }
            usleep(20_000)
        }
        throw HarnessError("handshake dropper did not start: \(started.stderr)")
    }

    deinit { started.stop(grace: 0) }
}

/// `health_check` in an upstream that is proxied to over `https://`: the probes speak TLS with
/// the location's `proxy_ssl_*` settings (Tests/support/https-backend.py as the peers).
@Suite(.serialized) struct HealthCheckTLSTests {
    /// The backend answers JSON about the connection; this match block passes only when the
    /// probe came over TLS with SNI a.test.
    func config(_ peers: [Int], location: String, check: String = "health_check uri=/hc interval=200ms timeout=1s match=sni;",
                extra: String = "") -> String {
        """
        worker_processes 2;
        error_log stderr info;
        events {}
        http {
          access_log off;
          match sni { status 200; body ~ "\\"sni\\": \\"a.test\\""; }
          upstream app {
            \(peers.map { "server 127.0.0.1:\($0);" }.joined(separator: " "))
            \(check)
          }
          server {
            listen 127.0.0.1:{port};
            \(location)
            location /lb-status { status; }
            \(extra)
          }
        }
        """
    }

    var verifyA: String {
        "proxy_ssl_server_name on; proxy_ssl_name a.test; proxy_ssl_verify on; proxy_ssl_trusted_certificate \(TestCerts.path("ca.crt"));"
    }

    func peers(_ lb: LB) throws -> [String: [String: Any]] {
        let r = try RawClient(port: lb.port).get("/lb-status?format=json")
        let s = try JSONSerialization.jsonObject(with: Data(r.body)) as! [String: Any]
        let app = (s["upstreams"] as! [[String: Any]]).first { $0["name"] as? String == "app" }!
        var out: [String: [String: Any]] = [:]
        for p in app["peers"] as! [[String: Any]] { out[p["address"] as! String] = p }
        return out
    }

    func checks(_ p: [String: Any]?) -> [Bool] {
        ((p?["health_checks"] as? [[String: Any]]) ?? []).compactMap { $0["ok"] as? Bool }
    }

    @Test func probesOfAnHTTPSUpstreamSpeakTLSWithTheLocationsSNIAndVerification() throws {
        let b = try HTTPSBackend("one")
        let lb = try LB(config([b.port], location: "location / { proxy_pass https://app; \(verifyA) }"))
        let key = "127.0.0.1:\(b.port)"
        // Passes need a TLS handshake (Python refuses plain HTTP) carrying SNI a.test (the match block).
        #expect(waitUntil(timeout: 10) { checks((try? peers(lb))?[key]).filter { $0 }.count >= 2 })
        let p = try peers(lb)[key]
        #expect(p?["health"] as? String == "up")
        #expect(!checks(p).contains(false))
        let r = try RawClient(port: lb.port).get("/x")
        #expect(r.status == 200 && r.text.contains("\"name\": \"one\""))
    }

    @Test func aPeerWhoseCertificateFailsVerificationIsMarkedDownAndGetsNoRequests() throws {
        let bad = try HTTPSBackend("bad", cert: "b-ec") // a certificate for b.test
        let good = try HTTPSBackend("good", cert: "a-ec")
        let lb = try LB(config([bad.port, good.port], location: "location / { proxy_pass https://app; \(verifyA) }"))
        #expect(waitUntil(timeout: 10) { lb.errorLog.contains("peer 127.0.0.1:\(bad.port) is down") })
        #expect(lb.errorLog.contains("upstream SSL certificate does not match \"a.test\" while SSL handshaking"))
        let ps = try peers(lb)
        #expect(ps["127.0.0.1:\(bad.port)"]?["health"] as? String == "down")
        #expect(ps["127.0.0.1:\(good.port)"]?["health"] as? String != "down")
        // Requests go to the good peer only: no request of a client meets the bad one.
        let failuresBefore = ps["127.0.0.1:\(bad.port)"]?["failures"] as? Int
        for _ in 0..<6 {
            let r = try RawClient(port: lb.port).get("/x")
            #expect(r.status == 200 && r.text.contains("\"name\": \"good\""))
        }
        #expect(try peers(lb)["127.0.0.1:\(bad.port)"]?["failures"] as? Int == failuresBefore)
    }

    @Test func anUntrustedCertificateFailsTheProbeWithNginxsVerifyError() throws {
        let b = try HTTPSBackend("one")
        let lb = try LB(config([b.port], location: """
            location / { proxy_pass https://app; proxy_ssl_name a.test; proxy_ssl_verify on;
                         proxy_ssl_trusted_certificate \(TestCerts.path("other-ca.crt")); }
            """, check: "health_check uri=/hc interval=200ms timeout=1s;"))
        #expect(waitUntil(timeout: 10) { lb.errorLog.contains("peer 127.0.0.1:\(b.port) is down") })
        // (21: "unable to verify the first certificate": the peer sends no chain, and no CA here signed it)
        #expect(lb.errorLog.contains("last: upstream SSL certificate verify error: (21:unable to verify the first certificate) while SSL handshaking"))
        #expect(try RawClient(port: lb.port).get("/x").status == 502)
    }

    @Test func aPeerThatClosesDuringTheHandshakeIsMarkedDown() throws {
        let dropper = try HandshakeDropper()
        let good = try HTTPSBackend("good")
        let lb = try LB(config([dropper.port, good.port], location: "location / { proxy_pass https://app; \(verifyA) }"))
        #expect(waitUntil(timeout: 10) { lb.errorLog.contains("peer 127.0.0.1:\(dropper.port) is down") })
        let line = lb.errorLog.split(separator: "\n").first { $0.contains("peer 127.0.0.1:\(dropper.port) is down") }.map(String.init) ?? ""
        #expect(line.contains("SSL_do_handshake() failed") && line.contains("while SSL handshaking"), "\(line)")
        #expect(try peers(lb)["127.0.0.1:\(good.port)"]?["health"] as? String != "down")
        for _ in 0..<4 {
            let r = try RawClient(port: lb.port).get("/x")
            #expect(r.status == 200 && r.text.contains("\"name\": \"good\""))
        }
    }

    @Test func probesSendTheLocationsClientCertificate() throws {
        let b = try HTTPSBackend("mtls", clientCA: "ca.crt", require: true)
        let client = "proxy_ssl_certificate \(TestCerts.path("client.crt")); proxy_ssl_certificate_key \(TestCerts.path("client.key"));"
        let with = try LB(config([b.port], location: "location / { proxy_pass https://app; \(verifyA) \(client) }"))
        #expect(waitUntil(timeout: 10) { checks((try? peers(with))?["127.0.0.1:\(b.port)"]).contains(true) })
        #expect(!checks(try peers(with)["127.0.0.1:\(b.port)"]).contains(false))
        let without = try LB(config([b.port], location: "location / { proxy_pass https://app; \(verifyA) }"))
        #expect(waitUntil(timeout: 10) { without.errorLog.contains("peer 127.0.0.1:\(b.port) is down") })
    }

    @Test func aGroupProxiedToOverBothSchemesIsProbedAsItsFirstLocationSays() throws {
        let b = try HTTPSBackend("one")
        // The first location proxies over https: probes speak TLS, and lb says so once.
        let lb = try LB(config([b.port], location: "location / { proxy_pass https://app; \(verifyA) }",
                               extra: "location /plain { proxy_pass http://app; }"))
        #expect(waitUntil(timeout: 10) { checks((try? peers(lb))?["127.0.0.1:\(b.port)"]).contains(true) })
        #expect(lb.errorLog.contains("upstream \"app\" is proxied to over both http and https: its health checks use https as the location in"))
        // The first one plain: the probes speak plain HTTP to the TLS peer and fail.
        let plainFirst = try LB(config([b.port], location: "location /plain { proxy_pass http://app; }",
                                       check: "health_check uri=/hc interval=200ms timeout=1s;",
                                       extra: "location / { proxy_pass https://app; \(verifyA) }"))
        #expect(waitUntil(timeout: 10) { plainFirst.errorLog.contains("peer 127.0.0.1:\(b.port) is down") })
        #expect(plainFirst.errorLog.contains("its health checks use http as the location in"))
    }
    @Test func aReloadThatChangesTheLocationsTLSSettingsChangesTheKeptProbes() throws {
        let b = try HTTPSBackend("one")
        let wrongName = "proxy_ssl_name b.test; proxy_ssl_verify on; proxy_ssl_trusted_certificate \(TestCerts.path("ca.crt"));"
        let lb = try LB(config([b.port], location: "location / { proxy_pass https://app; \(wrongName) }",
                               check: "health_check uri=/hc interval=200ms timeout=1s;"))
        #expect(waitUntil(timeout: 10) { lb.errorLog.contains("peer 127.0.0.1:\(b.port) is down") })
        #expect(lb.errorLog.contains("upstream SSL certificate does not match \"b.test\""))
        // Same peers and health_check: the upstream (and its probes) are kept; the name is new.
        try lb.rewrite(config([b.port], location: "location / { proxy_pass https://app; \(verifyA) }",
                              check: "health_check uri=/hc interval=200ms timeout=1s;"))
        lb.started.signal(SIGHUP)
        #expect(waitUntil(timeout: 10) { lb.errorLog.contains("configuration reloaded") })
        #expect(waitUntil(timeout: 10) { lb.errorLog.contains("peer 127.0.0.1:\(b.port) is up") })
        // The same probes (their history spans the reload: failed before it, passed after).
        let history = checks(try peers(lb)["127.0.0.1:\(b.port)"])
        #expect(history.first == false && history.last == true)
        #expect(try RawClient(port: lb.port).get("/x").status == 200)
    }
    @Test func portProbesAnotherPortOverTLSToo() throws {
        let b = try HTTPSBackend("checks")
        let served = freePort() // nothing listens there: only the probes' port answers
        let lb = try LB(config([served], location: "location / { proxy_pass https://app; \(verifyA) }",
                               check: "health_check uri=/hc port=\(b.port) interval=200ms timeout=1s match=sni;"))
        #expect(waitUntil(timeout: 10) { checks((try? peers(lb))?["127.0.0.1:\(served)"]).filter { $0 }.count >= 2 })
        #expect(!checks(try peers(lb)["127.0.0.1:\(served)"]).contains(false))
    }
}
