import Foundation
import Glibc
import Testing

/// An HTTPS upstream made with Python's ssl module (Tests/support/https-backend.py): it answers
/// every request with JSON about the TLS connection it came on (SNI, version, resumption, the
/// client certificate, connection and handshake counts).
final class HTTPSBackend {
    let port: Int
    let started: Started

    /// `cert` names a pair made by make-test-certs.sh; `clientCA` makes client certificates
    /// verified (optional, or required with `require`).
    init(_ name: String, cert: String = "a-ec", clientCA: String? = nil, require: Bool = false, tls12: Bool = false) throws {
        port = freePort()
        var args = ["python3", Harness.repositoryRoot.appendingPathComponent("Tests/support/https-backend.py").path, "\(port)", name,
                    TestCerts.path("\(cert).crt"), TestCerts.path("\(cert).key")]
        if let clientCA { args.append(TestCerts.path(clientCA)) }
        if require { args.append("require") }
        if tls12 { args.append("--tls12") }
        started = try Started(URL(fileURLWithPath: "/usr/bin/env"), args)
        // "ready" on stdout (a port probe would count as a failed handshake).
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if let out = try? String(contentsOf: started.stdoutURL, encoding: .utf8), out.contains("ready") { return }
            usleep(20_000)
        }
        throw HarnessError("https backend \(name) did not start: \(started.stderr)")
    }

    deinit { started.stop(grace: 0) }
}

/// `proxy_pass https://…` and the `proxy_ssl_*` directives against Python's ssl module.
@Suite(.serialized) struct UpstreamTLSTests {
    struct Seen: Decodable {
        let name: String
        let sni: String?
        let version: String
        let resumed: Bool
        let client: String?
        let connections: Int
        let handshakes: Int
    }

    func config(_ locations: String, http: String = "") -> String {
        """
        error_log stderr info;
        events {}
        http {
          access_log off;
          \(http)
          server {
            listen 127.0.0.1:{port};
            \(locations)
          }
        }
        """
    }

    func get(_ lb: LB, _ path: String) throws -> (status: Int, seen: Seen?) {
        let r = try RawClient(port: lb.port).get(path)
        return (r.status, r.status == 200 ? try JSONDecoder().decode(Seen.self, from: Data(r.body)) : nil)
    }

    var trusted: String { "proxy_ssl_trusted_certificate \(TestCerts.path("ca.crt"));" }

    @Test func proxyPassHTTPSReachesATLSUpstreamWithoutSNIByDefault() throws {
        let b = try HTTPSBackend("one")
        let lb = try LB(config("location / { proxy_pass https://127.0.0.1:\(b.port); }"))
        let r = try get(lb, "/x")
        #expect(r.status == 200)
        #expect(r.seen?.name == "one" && r.seen?.version == "TLSv1.3")
        #expect(r.seen?.sni == nil) // proxy_ssl_server_name is off by default, as nginx
    }

    /// `proxy_pass` with variables: the scheme made per request picks TLS (nginx prepares every
    /// such location for https); `$proxy_host` is the made host (the SNI name); with
    /// `proxy_cache` the key sees it and a second request is a HIT.
    @Test func aSchemeMadeByVariablesReachesTLSAndPlainUpstreams() throws {
        let tls = try HTTPSBackend("tls")
        let plain = try Backend(name: "plain")
        let lb = try LB(config("""
            location / {
                proxy_pass $arg_s://$arg_h;
                proxy_ssl_server_name on;
                proxy_cache c;
                proxy_cache_valid 200 1m;
                proxy_cache_key $scheme://$proxy_host$uri;
                add_header X-Cache $upstream_cache_status always;
                add_header X-Key "$proxy_host";
            }
            """, http: "proxy_cache_path cache keys_zone=c:1m; upstream secure { server 127.0.0.1:\(tls.port); }"))
        let viaTLS = try RawClient(port: lb.port).get("/x?s=https&h=secure")
        #expect(viaTLS.status == 200 && viaTLS.header("X-Cache") == "MISS", "\(viaTLS.status) \(viaTLS.text) \(lb.errorLog.suffix(800))")
        let seen = try? JSONDecoder().decode(Seen.self, from: Data(viaTLS.body))
        #expect(seen?.name == "tls" && seen?.sni == "secure", "\(viaTLS.text)")
        #expect(viaTLS.header("X-Key") == "secure")
        let again = try RawClient(port: lb.port).get("/x?s=https&h=secure")
        #expect(again.header("X-Cache") == "HIT" && again.text == viaTLS.text)
        let viaPlain = try RawClient(port: lb.port).get("/x?s=http&h=127.0.0.1:\(plain.port)")
        #expect(viaPlain.status == 200 && viaPlain.text == "plain /x?s=http&h=127.0.0.1:\(plain.port)" && viaPlain.header("X-Cache") == "MISS",
                "\(viaPlain.status) \(viaPlain.text)")
        // A scheme that is neither: nginx's 500 with its words.
        #expect(try RawClient(port: lb.port).get("/x?s=ftp&h=127.0.0.1:1").status == 500)
        #expect(lb.errorLog.contains("invalid URL prefix in \"ftp://127.0.0.1:1\""))
    }

    @Test func verifiedUpstreamWithSNIAndName() throws {
        let b = try HTTPSBackend("one")
        let lb = try LB(config("""
            location / { proxy_pass https://127.0.0.1:\(b.port); proxy_ssl_verify on; \(trusted)
                         proxy_ssl_name a.test; proxy_ssl_server_name on; }
            """))
        let r = try get(lb, "/x")
        #expect(r.status == 200 && r.seen?.sni == "a.test")
    }

    @Test func anUntrustedCertificateIs502WithNginxsWords() throws {
        let b = try HTTPSBackend("one")
        let lb = try LB(config("""
            location / { proxy_pass https://127.0.0.1:\(b.port); proxy_ssl_verify on; proxy_ssl_name a.test;
                         proxy_ssl_trusted_certificate \(TestCerts.path("other-ca.crt")); }
            """))
        #expect(try get(lb, "/x").status == 502)
        #expect(lb.errorLog.contains("upstream SSL certificate verify error: (") && lb.errorLog.contains("while SSL handshaking to upstream"))
    }

    @Test func aCertificateForAnotherNameIs502() throws {
        let b = try HTTPSBackend("one")
        let lb = try LB(config("""
            location / { proxy_pass https://127.0.0.1:\(b.port); proxy_ssl_verify on; \(trusted) proxy_ssl_name b.test; }
            """))
        #expect(try get(lb, "/x").status == 502)
        #expect(lb.errorLog.contains("upstream SSL certificate does not match \"b.test\" while SSL handshaking to upstream"))
    }

    @Test func aFailedVerificationFailsOverToTheNextPeer() throws {
        let bad = try HTTPSBackend("bad", cert: "b-ec")  // a certificate for b.test
        let good = try HTTPSBackend("good", cert: "a-ec")
        let lb = try LB(config("""
            location / { proxy_pass https://u; proxy_ssl_verify on; \(trusted) proxy_ssl_name a.test; }
            """, http: "upstream u { server 127.0.0.1:\(bad.port); server 127.0.0.1:\(good.port); }"))
        for _ in 0..<4 {
            let r = try get(lb, "/x")
            #expect(r.status == 200 && r.seen?.name == "good")
        }
        #expect(lb.errorLog.contains("upstream SSL certificate does not match \"a.test\""))
    }

    @Test func aClientCertificateIsSentWhenConfigured() throws {
        let b = try HTTPSBackend("mtls", clientCA: "ca.crt", require: true)
        let without = try LB(config("location / { proxy_pass https://127.0.0.1:\(b.port); }"))
        #expect(try get(without, "/x").status == 502)
        let with = try LB(config("""
            location / { proxy_pass https://127.0.0.1:\(b.port);
                         proxy_ssl_certificate \(TestCerts.path("client.crt")); proxy_ssl_certificate_key \(TestCerts.path("client.key")); }
            """))
        let r = try get(with, "/x")
        #expect(r.status == 200 && r.seen?.client == "client.test")
    }

    @Test func newConnectionsResumeThePeersSession() throws {
        let b = try HTTPSBackend("one")
        let lb = try LB(config("location / { proxy_pass https://127.0.0.1:\(b.port); }"))
        let first = try get(lb, "/1"), second = try get(lb, "/2")
        #expect(first.seen?.resumed == false && second.seen?.resumed == true)
        #expect(second.seen?.handshakes == 2) // a new connection each time (no keepalive): resumed, not reused

        let b2 = try HTTPSBackend("two")
        let off = try LB(config("location / { proxy_pass https://127.0.0.1:\(b2.port); proxy_ssl_session_reuse off; }"))
        _ = try get(off, "/1")
        #expect(try get(off, "/2").seen?.resumed == false)
    }

    @Test func sessionsResumeOverTLS12Too() throws {
        let b = try HTTPSBackend("one", tls12: true)
        let lb = try LB(config("location / { proxy_pass https://127.0.0.1:\(b.port); }"))
        let first = try get(lb, "/1"), second = try get(lb, "/2")
        #expect(first.seen?.version == "TLSv1.2" && first.seen?.resumed == false && second.seen?.resumed == true)
    }

    @Test func keptAliveTLSConnectionsAreReused() throws {
        let b = try HTTPSBackend("one")
        let lb = try LB(config("""
            location /tls { proxy_pass https://u; proxy_http_version 1.1; proxy_set_header Connection ""; }
            """, http: "upstream u { server 127.0.0.1:\(b.port); keepalive 4; }"))
        let seen = try (0..<3).map { _ in try get(lb, "/tls").seen }
        #expect(seen.map { $0?.handshakes } == [1, 1, 1])
    }

    @Test func locationsWithTheSameSettingsShareKeptAliveConnections() throws {
        let b = try HTTPSBackend("one")
        let lb = try LB(config("""
            location /a { proxy_pass https://u; proxy_http_version 1.1; proxy_set_header Connection ""; }
            location /b { proxy_pass https://u; proxy_http_version 1.1; proxy_set_header Connection ""; }
            location /c { proxy_pass https://u; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_ssl_protocols TLSv1.2; }
            """, http: "upstream u { server 127.0.0.1:\(b.port); keepalive 4; }"))
        let seen = try ["/a", "/b", "/a", "/b"].map { try get(lb, $0).seen }
        #expect(seen.map { $0?.handshakes } == [1, 1, 1, 1])
        // Other TLS settings: not that connection (a new one, TLS 1.2).
        let c = try get(lb, "/c").seen
        #expect(c?.handshakes == 2 && c?.version == "TLSv1.2")
    }

    @Test func proxySSLProtocolsLimitTheUpstreamVersion() throws {
        let b = try HTTPSBackend("one")
        let lb = try LB(config("location / { proxy_pass https://127.0.0.1:\(b.port); proxy_ssl_protocols TLSv1.2; }"))
        #expect(try get(lb, "/x").seen?.version == "TLSv1.2")
    }

    @Test func aPlainHTTPUpstreamSpeakingToAnHTTPSTargetIs502() throws {
        let plain = try Backend(name: "plain")
        let lb = try LB(config("location / { proxy_pass https://127.0.0.1:\(plain.port); }"))
        #expect(try get(lb, "/x").status == 502)
        #expect(lb.errorLog.contains("SSL_do_handshake() failed") && lb.errorLog.contains("while SSL handshaking to upstream"))
    }
}
