import Foundation
import Glibc
import Testing

/// What the server an SNI name selects decides for HTTP/1.1 over TLS, compared with Debian's
/// nginx on the same configuration: `large_client_header_buffers` of that server limits the
/// request head (nginx's `hc->conf_ctx` after `ngx_http_ssl_servername`), and a head over the
/// limit is nginx's 494 — a 400 with its "Request Header Or Cookie Too Large" page (lb answered 431).
@Suite(.serialized, .enabled(if: Differential.available, "needs Debian's nginx at /usr/sbin/nginx"))
struct TLSServerSettingsTests {
    @Test func theSNIServersHeaderLimitsApplyAndTooLargeIsNginxs400() throws {
        let body = """
        server {
            listen 127.0.0.1:{port} ssl default_server;
            server_name a.test;
            \(TestCerts.pair("a-ec"))
            return 200 "a\\n";
        }
        server {
            listen 127.0.0.1:{port} ssl;
            server_name b.test;
            large_client_header_buffers 2 1k;
            ssl_certificate \(TestCerts.path("b-chain.crt")); ssl_certificate_key \(TestCerts.path("b-ec.key"));
            return 200 "b\\n";
        }
        """
        let d = try Differential(body)
        func get(_ port: Int, sni: String, header: Int) throws -> String {
            let big = String(repeating: "x", count: header)
            let r = try curl(["-s", "-w", "\\n%{http_code}", "--cacert", TestCerts.path("ca.crt"), "--resolve", "\(sni):\(port):127.0.0.1",
                              "-H", "X-Big: \(big)", "https://\(sni):\(port)/"], timeout: 10)
            return d.normalise(r.out, port: port)
        }
        for (sni, size) in [("a.test", 1500), ("b.test", 1500), ("b.test", 500), ("a.test", 9000)] {
            let n = try get(d.nginxPort, sni: sni, header: size), l = try get(d.lb.port, sni: sni, header: size)
            #expect(l == n, "\(sni) with a \(size)-byte header")
        }
        // Pinned: the SNI server's 1k buffers refuse what the default server's 8k take.
        #expect(try get(d.nginxPort, sni: "b.test", header: 1500).hasSuffix("\n400"))
        #expect(try get(d.nginxPort, sni: "a.test", header: 1500).hasSuffix("\n200"))
        #expect(try get(d.lb.port, sni: "a.test", header: 9000).contains("Request Header Or Cookie Too Large"))
    }
}
