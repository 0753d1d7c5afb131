import Foundation
import Testing

/// `ssl_conf_command Options KTLS`: lb hands the socket to OpenSSL's own socket BIO, which asks
/// the kernel for TLS offload after the handshake. Where the kernel has no `tls` ULP (this
/// machine's: /proc/sys/net/ipv4/tcp_available_ulp lists only mptcp) OpenSSL keeps encrypting in
/// user space; either way responses must arrive whole.
@Suite(.serialized) struct TLSKernelOptionTests {
    @Test func theKTLSOptionServesFilesAndKeepAliveRequests() throws {
        let dir = try Harness.tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 11) }
        try Data(file).write(to: dir.appendingPathComponent("f.bin"))
        let lb = try LB("""
        events {}
        http {
          access_log off;
          sendfile on;
          server {
            listen 127.0.0.1:{port} ssl;
            server_name a.test;
            \(TestCerts.pair("a-ec"))
            ssl_conf_command Options KTLS;
            root \(dir.path);
            location /r { return 200 "$ssl_protocol\\n"; }
          }
        }
        """)
        let out = dir.appendingPathComponent("got.bin")
        // Two requests on one connection: a file larger than a record, then a short answer.
        let r = try curl(["--cacert", TestCerts.path("ca.crt"), "--resolve", "a.test:\(lb.port):127.0.0.1",
                          "https://a.test:\(lb.port)/f.bin", "-o", out.path,
                          "https://a.test:\(lb.port)/r", "-w", "%{num_connects}"])
        #expect(r.status == 0, "\(r.err)")
        #expect(try Data(contentsOf: out) == Data(file))
        // `-w` after each transfer: one connect, then none (the second request reused it).
        #expect(r.out == "1TLSv1.3\n0", "\(r.out)")
    }
}
