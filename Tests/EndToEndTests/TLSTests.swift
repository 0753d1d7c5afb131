import Foundation
import Glibc
import Testing

/// Throwaway certificates for the TLS tests, made once per run with the openssl command line
/// (Tests/support/make-test-certs.sh): a test CA, ECDSA and RSA certificates for a.test, ECDSA
/// ones for b.test (with its chain) and *.w.test, client certificates, ticket keys.
enum TestCerts {
    static let dir: URL = {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("lb-tls-certs-\(getpid())")
        if !FileManager.default.fileExists(atPath: d.appendingPathComponent("done").path) {
            let p = Harness.process()
            p.executableURL = URL(fileURLWithPath: "/bin/bash")
            p.arguments = [Harness.repositoryRoot.appendingPathComponent("Tests/support/make-test-certs.sh").path, d.path]
            try? p.run()
            p.waitUntilExit()
        }
        return d
    }()

    static func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    /// `ssl_certificate` + key lines for a certificate made by the script.
    static func pair(_ name: String, key: String? = nil) -> String {
        "ssl_certificate \(path("\(name).crt")); ssl_certificate_key \(path("\(key ?? name).key"));"
    }
}

/// Runs a command with `input` on its stdin; stdout and stderr together.
func runTool(_ args: [String], input: String = "", timeout: TimeInterval = 20) throws -> (status: Int32, out: String) {
    let p = Harness.process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = args
    let dir = try Harness.tempDirectory()
    defer { try? FileManager.default.removeItem(at: dir) }
    let outURL = dir.appendingPathComponent("out")
    FileManager.default.createFile(atPath: outURL.path, contents: nil)
    let out = try FileHandle(forWritingTo: outURL)
    defer { try? out.close() }
    p.standardOutput = out
    p.standardError = out
    let stdin = Pipe()
    p.standardInput = stdin
    try p.run()
    stdin.fileHandleForWriting.write(Data(input.utf8))
    try? stdin.fileHandleForWriting.close()
    let deadline = Date().addingTimeInterval(timeout)
    while p.isRunning && Date() < deadline { usleep(5_000) }
    if p.isRunning { p.terminate() }
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: (try? Data(contentsOf: outURL)) ?? Data(), as: UTF8.self))
}

/// `openssl s_client` against lb: one HTTP request (Connection: close) after the handshake, so
/// TLS 1.3 session tickets arrive before it exits.
func sClient(_ port: Int, _ extra: [String], path: String = "/v", host: String = "a.test") throws -> (status: Int32, out: String) {
    let sni = extra.contains("-servername") || extra.contains("-noservername") ? [] : ["-servername", host]
    return try runTool(["openssl", "s_client", "-connect", "127.0.0.1:\(port)", "-CAfile", TestCerts.path("ca.crt"), "-ign_eof",
                        "-alpn", "http/1.1"] + sni + extra,
                input: "GET \(path) HTTP/1.1\r\nHost: \(host)\r\nConnection: close\r\n\r\n")
}

/// HTTPS through lb with real clients: curl, `openssl s_client`, Python's ssl module.
@Suite(.serialized) struct TLSTests {
    static let variables = "location /v { return 200 \"$scheme $https $ssl_protocol $ssl_server_name $ssl_session_reused $ssl_alpn_protocol $server_name\\n\"; }"

    /// a.test (ECDSA + RSA, the default), b.test (a chain file), *.w.test, on one TLS address.
    static func sites(_ extra: String = "", aExtra: String = "") -> String {
        """
        error_log stderr notice;
        events {}
        http {
          access_log off;
          \(extra)
          server {
            listen 127.0.0.1:{port} ssl;
            server_name a.test;
            \(TestCerts.pair("a-ec"))
            \(TestCerts.pair("a-rsa"))
            \(aExtra)
            \(variables)
            location /r { return 301 /elsewhere; }
          }
          server {
            listen 127.0.0.1:{port} ssl;
            server_name b.test;
            ssl_certificate \(TestCerts.path("b-chain.crt")); ssl_certificate_key \(TestCerts.path("b-ec.key"));
            \(variables)
          }
          server {
            listen 127.0.0.1:{port} ssl;
            server_name *.w.test;
            \(TestCerts.pair("w-ec"))
            \(variables)
          }
        }
        """
    }

    func https(_ lb: LB, _ host: String, _ path: String, _ extra: [String] = []) throws -> (status: Int32, out: String, err: String) {
        try curl(["--cacert", TestCerts.path("ca.crt"), "--resolve", "\(host):\(lb.port):127.0.0.1"] + extra + ["https://\(host):\(lb.port)\(path)"])
    }

    @Test func curlVerifiesTheCertificateAndSeesTLSVariables() throws {
        let lb = try LB(TLSTests.sites())
        let r = try https(lb, "a.test", "/v")
        #expect(r.status == 0, "\(r.err)")
        #expect(r.out == "https on TLSv1.3 a.test . http/1.1 a.test\n")
        // A name the certificate does not carry fails curl's verification: the check is real.
        let wrong = try https(lb, "nosuch.test", "/v")
        #expect(wrong.status != 0 && wrong.out.isEmpty)
    }

    @Test func sniSelectsTheServerCertificateByServerNameRules() throws {
        let lb = try LB(TLSTests.sites())
        // Exact name, with the chain from the file: curl trusts only the CA.
        let b = try https(lb, "b.test", "/v")
        #expect(b.status == 0 && b.out == "https on TLSv1.3 b.test . http/1.1 b.test\n", "\(b.err)")
        // Wildcard.
        let w = try https(lb, "x.w.test", "/v")
        #expect(w.status == 0 && w.out == "https on TLSv1.3 x.w.test . http/1.1 *.w.test\n", "\(w.err)")
        // No SNI: the default server's certificate.
        let none = try sClient(lb.port, ["-noservername"])
        #expect(none.out.contains("subject=CN = a.test"))
        let sb = try sClient(lb.port, ["-servername", "b.test"], host: "b.test")
        #expect(sb.out.contains("subject=CN = b.test") && sb.out.contains("Verify return code: 0 (ok)"))
    }

    @Test func ecdsaAndRSACertificatesSideBySide() throws {
        let lb = try LB(TLSTests.sites())
        let rsa = try sClient(lb.port, ["-servername", "a.test", "-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"])
        #expect(rsa.out.contains("Server public key is 2048 bit") && rsa.out.contains("Cipher is ECDHE-RSA-AES128-GCM-SHA256"))
        let ec = try sClient(lb.port, ["-servername", "a.test", "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"])
        #expect(ec.out.contains("Server public key is 256 bit") && ec.out.contains("Cipher is ECDHE-ECDSA-AES128-GCM-SHA256"))
        #expect(ec.out.contains("Verify return code: 0 (ok)") && rsa.out.contains("Verify return code: 0 (ok)"))
    }

    @Test func protocolVersionsFollowSslProtocols() throws {
        let lb = try LB(TLSTests.sites())
        #expect(try sClient(lb.port, ["-tls1_2"]).out.contains("TLSv1.2 a.test"))
        #expect(try sClient(lb.port, ["-tls1_3"]).out.contains("TLSv1.3 a.test"))
        let old = try sClient(lb.port, ["-tls1_1"])
        #expect(!old.out.contains("HTTP/1.1 200") && old.status != 0)
        let only13 = try LB(TLSTests.sites("ssl_protocols TLSv1.3;"))
        let refused = try sClient(only13.port, ["-tls1_2"])
        #expect(!refused.out.contains("HTTP/1.1 200") && refused.out.contains("alert protocol version"))
    }

    @Test(arguments: [
        ("-tls1_2", "ssl_session_cache shared:SSL:1m; ssl_session_tickets off;"),
        ("-tls1_2", ""),
        ("-tls1_3", "ssl_session_cache shared:SSL:1m; ssl_session_tickets off;"),
        ("-tls1_3", ""),
    ])
    func sessionsResumeWithIDsAndWithTickets(_ version: String, _ settings: String) throws {
        let lb = try LB(TLSTests.sites(settings))
        let dir = try Harness.tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let sess = dir.appendingPathComponent("sess").path
        let first = try sClient(lb.port, [version, "-servername", "a.test", "-sess_out", sess])
        #expect(first.out.contains(" a.test . http/1.1"), "\(first.out)")
        let again = try sClient(lb.port, [version, "-servername", "a.test", "-sess_in", sess])
        #expect(again.out.contains("Reused, TLSv1."), "\(again.out)")
        #expect(again.out.contains(" a.test r http/1.1"))
    }

    @Test func noSessionCacheAndNoTicketsMeansNoResumption() throws {
        let lb = try LB(TLSTests.sites("ssl_session_tickets off;"))
        let dir = try Harness.tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let sess = dir.appendingPathComponent("sess").path
        _ = try sClient(lb.port, ["-tls1_2", "-sess_out", sess])
        let again = try sClient(lb.port, ["-tls1_2", "-sess_in", sess])
        #expect(again.out.contains("New, TLSv1.2") && again.out.contains(" a.test . http/1.1"))
    }

    @Test func ticketKeysRotateOnReload() throws {
        let k1 = "ssl_session_ticket_key \(TestCerts.path("ticket1.key"));"
        let k2 = "ssl_session_ticket_key \(TestCerts.path("ticket2.key"));"
        let lb = try LB(TLSTests.sites(k1))
        let dir = try Harness.tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let sess = dir.appendingPathComponent("sess").path
        _ = try sClient(lb.port, ["-tls1_2", "-sess_out", sess])
        // The new key encrypts, the old one still decrypts: the ticket made with it resumes.
        try lb.rewrite(TLSTests.sites(k2 + k1))
        lb.started.signal(SIGHUP)
        #expect(waitForLog(lb, "configuration reloaded (generation 2)"))
        #expect(try sClient(lb.port, ["-tls1_2", "-sess_in", sess]).out.contains("Reused, TLSv1.2"))
        // Once the old key is gone, its tickets are refused (a full handshake).
        try lb.rewrite(TLSTests.sites(k2))
        lb.started.signal(SIGHUP)
        #expect(waitForLog(lb, "configuration reloaded (generation 3)"))
        #expect(try sClient(lb.port, ["-tls1_2", "-sess_in", sess]).out.contains("New, TLSv1.2"))
    }

    @Test func rejectHandshakeRefusesUnknownNames() throws {
        let lb = try LB("""
        events {}
        http {
          access_log off;
          server { listen 127.0.0.1:{port} ssl default_server; ssl_reject_handshake on; }
          server { listen 127.0.0.1:{port} ssl; server_name a.test; \(TestCerts.pair("a-ec")) \(TLSTests.variables) }
        }
        """)
        let unknown = try sClient(lb.port, ["-servername", "other.test"])
        #expect(unknown.out.contains("unrecognized name") && !unknown.out.contains("HTTP/1.1 200"))
        let none = try sClient(lb.port, ["-noservername"])
        #expect(!none.out.contains("HTTP/1.1 200"))
        let known = try https(lb, "a.test", "/v")
        #expect(known.status == 0 && known.out == "https on TLSv1.3 a.test . http/1.1 a.test\n", "\(known.err)")
    }

    @Test func plainHTTPToTheTLSPortIsAnswered400() throws {
        let lb = try LB(TLSTests.sites())
        let r = try curl(["-i", "http://127.0.0.1:\(lb.port)/v"])
        #expect(r.out.hasPrefix("HTTP/1.1 400 Bad Request\r\n"))
        #expect(r.out.contains("Connection: close\r\n"))
        #expect(r.out.contains("<center>The plain HTTP request was sent to HTTPS port</center>"))
        // error_page 497 sends such clients to https.
        let redirecting = try LB(TLSTests.sites(aExtra: "error_page 497 https://$host:$server_port$request_uri;"))
        let red = try curl(["-i", "http://127.0.0.1:\(redirecting.port)/v?x=1"])
        #expect(red.out.hasPrefix("HTTP/1.1 302"))
        #expect(red.out.contains("Location: https://127.0.0.1:\(redirecting.port)/v?x=1\r\n"))
    }

    @Test func redirectsNameHTTPS() throws {
        let lb = try LB(TLSTests.sites())
        let r = try https(lb, "a.test", "/r", ["-i"])
        #expect(r.out.contains("Location: https://a.test:\(lb.port)/elsewhere\r\n"), "\(r.out)")
    }

    @Test func staticFilesAndProxiedResponsesArriveWhole() throws {
        let backend = try Backend(name: "b1")
        let dir = try Harness.tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        var bytes = [UInt8](repeating: 0, count: 3 * 1024 * 1024 + 17)
        var g = SystemRandomNumberGenerator()
        for i in bytes.indices { bytes[i] = UInt8.random(in: 0...255, using: &g) }
        try Data(bytes).write(to: dir.appendingPathComponent("big.bin"))
        let lb = try LB("""
        events {}
        http {
          access_log off;
          sendfile on; tcp_nopush on;
          server {
            listen 127.0.0.1:{port} ssl;
            server_name a.test;
            \(TestCerts.pair("a-ec"))
            root \(dir.path);
            location /app/ { proxy_pass http://127.0.0.1:\(backend.port)/; proxy_set_header X-Forwarded-Proto $scheme; }
          }
        }
        """)
        let out = dir.appendingPathComponent("got.bin")
        let r = try https(lb, "a.test", "/big.bin", ["-o", out.path])
        #expect(r.status == 0, "\(r.err)")
        #expect(try Data(contentsOf: out) == Data(bytes))
        // Proxied: a request body up, a large body down (head and body through writev), and
        // X-Forwarded-Proto from $scheme.
        let up = try https(lb, "a.test", "/app/upload", ["--data-binary", String(repeating: "x", count: 100_000)])
        #expect(up.status == 0 && up.out.contains("\"bytes\": 100000"), "\(up.out) \(up.err)")
        let down = try https(lb, "a.test", "/app/big?bytes=2000000", ["-o", out.path])
        let got = try Data(contentsOf: out)
        #expect(down.status == 0 && got == Data(repeating: UInt8(ascii: "x"), count: 2_000_000))
        let headers = try https(lb, "a.test", "/app/headers")
        #expect(headers.out.contains("\"x-forwarded-proto\": \"https\""), "\(headers.out)")
    }

    @Test func pythonSSLClientGetsCloseNotify() throws {
        let lb = try LB(TLSTests.sites())
        // suppress_ragged_eofs=False: a close without close_notify would raise SSLEOFError.
        let script = """
        import socket, ssl, sys
        ctx = ssl.create_default_context(cafile=sys.argv[2])
        ctx.set_alpn_protocols(["http/1.1"])
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))), server_hostname="a.test", suppress_ragged_eofs=False)
        s.sendall(b"GET /v HTTP/1.1\\r\\nHost: a.test\\r\\nConnection: close\\r\\n\\r\\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        print(s.version(), data.split(b"\\r\\n\\r\\n", 1)[1].decode().strip())
        """
        let r = try runTool(["python3", "-c", script, "\(lb.port)", TestCerts.path("ca.crt")])
        #expect(r.out == "TLSv1.3 https on TLSv1.3 a.test . http/1.1 a.test\n", "\(r.out)")
    }

    @Test func handshakeTimesOutAfterClientHeaderTimeout() throws {
        let lb = try LB(TLSTests.sites("client_header_timeout 1s;"))
        let c = try RawClient(port: lb.port, timeout: 10)
        defer { c.close() }
        // Half a ClientHello, then silence: lb closes once client_header_timeout passes.
        try c.send([0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        #expect(c.isClosedByPeer())
    }

    @Test func staplesTheOCSPResponseFromAFile() throws {
        let lb = try LB("""
        events {}
        http {
          access_log off;
          server { listen 127.0.0.1:{port} ssl; server_name a.test; \(TestCerts.pair("a-ec"))
                   ssl_stapling on; ssl_stapling_file \(TestCerts.path("a-ocsp.der")); \(TLSTests.variables) }
        }
        """)
        let asked = try sClient(lb.port, ["-status"])
        #expect(asked.out.contains("OCSP Response Status: successful") && asked.out.contains("Cert Status: good"), "\(asked.out)")
        // Only to clients that ask.
        #expect(!(try sClient(lb.port, []).out.contains("OCSP Response")))
    }

    // MARK: client certificates

    static func mtls(_ mode: String, _ extra: String = "") -> String {
        """
        events {}
        http {
          access_log off;
          server {
            listen 127.0.0.1:{port} ssl;
            server_name a.test;
            \(TestCerts.pair("a-ec"))
            ssl_verify_client \(mode);
            ssl_client_certificate \(TestCerts.path("ca.crt"));
            \(extra)
            location / { return 200 "$ssl_client_verify|$ssl_client_s_dn|$ssl_client_i_dn\\n"; }
          }
        }
        """
    }

    @Test func clientCertificatesAreVerified() throws {
        let lb = try LB(TLSTests.mtls("on"))
        let client = ["--cert", TestCerts.path("client.crt"), "--key", TestCerts.path("client.key")]
        let ok = try https(lb, "a.test", "/", client)
        #expect(ok.out == "SUCCESS|CN=client.test|CN=lb test CA\n", "\(ok.err)")
        let none = try https(lb, "a.test", "/", ["-i"])
        #expect(none.out.hasPrefix("HTTP/1.1 400") && none.out.contains("<center>No required SSL certificate was sent</center>"))
        let stranger = try https(lb, "a.test", "/", ["-i", "--cert", TestCerts.path("stranger.crt"), "--key", TestCerts.path("stranger.key")])
        #expect(stranger.out.hasPrefix("HTTP/1.1 400") && stranger.out.contains("<center>The SSL certificate error</center>"))
        // A Host other than the verified SNI name: 421, as nginx.
        let misdirected = try https(lb, "a.test", "/", client + ["-i", "-H", "Host: b.test"])
        #expect(misdirected.out.hasPrefix("HTTP/1.1 421 Misdirected Request"), "\(misdirected.out)")
    }

    @Test func optionalClientCertificates() throws {
        let optional = try LB(TLSTests.mtls("optional"))
        #expect(try https(optional, "a.test", "/").out == "NONE||\n")
        let noCA = try LB(TLSTests.mtls("optional_no_ca"))
        let stranger = try https(noCA, "a.test", "/", ["--cert", TestCerts.path("stranger.crt"), "--key", TestCerts.path("stranger.key")])
        #expect(stranger.out.hasPrefix("FAILED:") && stranger.out.contains("|CN=stranger.test|CN=other CA"), "\(stranger.out)")
        // error_page sees 495 and 496.
        let pages = try LB(TLSTests.mtls("on", "error_page 496 =403 /nocert; location = /nocert { return 403 \"no certificate\\n\"; }"))
        let r = try https(pages, "a.test", "/", ["-i"])
        #expect(r.out.hasPrefix("HTTP/1.1 403") && r.out.hasSuffix("no certificate\n"), "\(r.out)")
    }

    @Test(arguments: ["-tls1_2", "-tls1_3"])
    func aSessionVerifiedOnOneServerDoesNotOpenAnother(_ version: String) throws {
        let lb = try LB("""
        events {}
        http {
          access_log off;
          ssl_session_cache shared:SSL:1m;
          server { listen 127.0.0.1:{port} ssl; server_name a.test; \(TestCerts.pair("a-ec"))
                   ssl_verify_client on; ssl_client_certificate \(TestCerts.path("other-ca.crt"));
                   location / { return 200 "a $ssl_client_verify\\n"; } }
          server { listen 127.0.0.1:{port} ssl; server_name b.test; ssl_certificate \(TestCerts.path("b-chain.crt")); ssl_certificate_key \(TestCerts.path("b-ec.key"));
                   ssl_verify_client on; ssl_client_certificate \(TestCerts.path("ca.crt"));
                   location / { return 200 "b $ssl_client_verify\\n"; } }
        }
        """)
        let dir = try Harness.tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let sess = dir.appendingPathComponent("sess").path
        let b = try sClient(lb.port, [version, "-cert", TestCerts.path("client.crt"), "-key", TestCerts.path("client.key"), "-sess_out", sess],
                            path: "/", host: "b.test")
        #expect(b.out.contains("b SUCCESS"))
        // The client's certificate is good for b.test only; resuming that session on a.test
        // must not carry b's verdict over.
        let a = try sClient(lb.port, [version, "-sess_in", sess], path: "/", host: "a.test")
        #expect(a.out.contains("HTTP/1.1 421 Misdirected Request") && !a.out.contains("a SUCCESS"), "\(a.out)")
    }

    // MARK: loading

    func test(_ config: String) throws -> Harness.Result {
        let dir = try Harness.tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let conf = dir.appendingPathComponent("t.conf")
        try config.write(to: conf, atomically: true, encoding: .utf8)
        var r = try Harness.run("lb", ["-t", "-c", conf.path])
        r.stderr = r.stderr.replacingOccurrences(of: conf.path, with: "t.conf").replacingOccurrences(of: TestCerts.dir.path + "/", with: "")
        return r
    }

    @Test(arguments: [
        ("ssl_certificate /nonexistent.crt; ssl_certificate_key KEY;",
         "lb: [emerg] cannot load certificate \"/nonexistent.crt\": BIO_new_file() failed (SSL: error:80000002:system library::No such file or directory:calling fopen(/nonexistent.crt, r) error:10000080:BIO routines::no such file) in t.conf:1"),
        ("ssl_certificate KEY; ssl_certificate_key KEY;",
         "lb: [emerg] cannot load certificate \"a-ec.key\": PEM_read_bio_X509_AUX() failed (SSL: error:0480006C:PEM routines::no start line:Expecting: TRUSTED CERTIFICATE) in t.conf:1"),
        ("ssl_certificate CERT; ssl_certificate_key CERT;",
         "lb: [emerg] cannot load certificate key \"a-ec.crt\": PEM_read_bio_PrivateKey() failed (SSL: error:1E08010C:DECODER routines::unsupported:No supported data to decode. Input type: PEM) in t.conf:1"),
        ("ssl_certificate CERT; ssl_certificate_key OTHERKEY;",
         "lb: [emerg] SSL_CTX_use_PrivateKey(\"b-ec.key\") failed (SSL: error:05800074:x509 certificate routines::key values mismatch) in t.conf:1"),
        ("ssl_certificate CERT;", "lb: [emerg] no \"ssl_certificate_key\" is defined for certificate \"a-ec.crt\" in t.conf:1"),
        ("", "lb: [emerg] no \"ssl_certificate\" is defined for the \"listen ... ssl\" directive in t.conf:1"),
        // As nginx: the deprecation warning first, then the error (checked below the table).
        ("ssl on;", "lb: [warn] the \"ssl\" directive is deprecated, use the \"listen ... ssl\" directive instead in t.conf:1"),
        ("ssl_certificate CERT; ssl_certificate_key KEY; ssl_ciphers FOO;",
         "lb: [emerg] SSL_CTX_set_cipher_list(\"FOO\") failed (SSL: error:0A0000B9:SSL routines::no cipher match) in t.conf:1"),
        ("ssl_certificate CERT; ssl_certificate_key KEY; ssl_protocols TLSv1.4;", "lb: [emerg] invalid value \"TLSv1.4\" in t.conf:1"),
        ("ssl_certificate CERT; ssl_certificate_key KEY; ssl_session_cache shared:X:1k;", "lb: [emerg] session cache \"shared:X:1k\" is too small in t.conf:1"),
        ("ssl_certificate CERT; ssl_certificate_key KEY; ssl_session_ticket_key CERT;", "lb: [emerg] \"a-ec.crt\" must be 48 or 80 bytes in t.conf:1"),
        ("ssl_certificate CERT; ssl_certificate_key KEY; ssl_conf_command Foo bar;",
         "lb: [emerg] SSL_CONF_cmd(\"Foo\", \"bar\") failed (SSL: error:0A000182:SSL routines::unknown cmd name:cmd=Foo) in t.conf:1"),
        ("ssl_certificate CERT; ssl_certificate_key KEY; ssl_verify_client on;", "lb: [emerg] no ssl_client_certificate for ssl_verify_client in t.conf:1"),
    ])
    func loadErrorsAreNginxsWithFileAndLine(_ directives: String, _ expected: String) throws {
        let text = directives.replacingOccurrences(of: "OTHERKEY", with: TestCerts.path("b-ec.key"))
            .replacingOccurrences(of: "CERT", with: TestCerts.path("a-ec.crt")).replacingOccurrences(of: "KEY", with: TestCerts.path("a-ec.key"))
        let r = try test("events {} http { server { listen 127.0.0.1:1 ssl; \(text) } }\n")
        #expect(r.status == 1)
        #expect(r.stderr.split(separator: "\n").first.map(String.init) == expected)
        if directives == "ssl on;" {
            #expect(r.stderr.contains("lb: [emerg] no \"ssl_certificate\" is defined for the \"ssl\" directive in t.conf:1"), "\(r.stderr)")
        }
    }

    /// The deprecated `ssl on;` (nginx 1.22 still takes it, with a warning): the address of a
    /// default server that has it speaks TLS; `-t` warns as nginx does.
    @Test func sslOnMakesTheDefaultServersAddressTLS() throws {
        let conf = """
        error_log stderr notice;
        events {}
        http {
            access_log off;
            server { listen 127.0.0.1:{port}; server_name a.test; ssl on; \(TestCerts.pair("a-ec")) location / { return 200 "tls $https\\n"; } }
        }
        """
        let lb = try LB(conf)
        let r = try https(lb, "a.test", "/")
        #expect(r.status == 0 && r.out == "tls on\n", "\(r.err)")
        let plain = try? RawClient(port: lb.port).get("/")
        #expect(plain?.status == 400, "plain HTTP to a TLS address: nginx's 400 \"plain HTTP request was sent to HTTPS port\"")
        let t = try test("events {} http { server { listen 127.0.0.1:1; ssl on; \(TestCerts.pair("a-ec")) } }\n")
        #expect(t.status == 0 && t.stderr.contains("[warn] the \"ssl\" directive is deprecated, use the \"listen ... ssl\" directive instead in t.conf:1"), "\(t.stderr)")
    }

    /// `ssl_password_file`: an encrypted key is opened with the passphrases in turn (a wrong one
    /// first); without the right one, nginx's error.
    @Test func anEncryptedKeyOpensWithThePasswordFile() throws {
        let dir = try Harness.tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let key = dir.appendingPathComponent("enc.key").path
        let made = try runTool(["openssl", "pkey", "-in", TestCerts.path("a-ec.key"), "-aes256", "-passout", "pass:s3cret", "-out", key])
        #expect(made.status == 0, "\(made.out)")
        try "wrong\r\n\ns3cret\n".write(toFile: dir.appendingPathComponent("pw").path, atomically: true, encoding: .utf8)
        try "nope\n".write(toFile: dir.appendingPathComponent("bad").path, atomically: true, encoding: .utf8)
        let site = { (pw: String?) in
            """
            events {}
            http {
                access_log off;
                server { listen 127.0.0.1:{port} ssl; server_name a.test; ssl_certificate \(TestCerts.path("a-ec.crt")); ssl_certificate_key \(key);
                         \(pw.map { "ssl_password_file \(dir.appendingPathComponent($0).path);" } ?? "") location / { return 200 "ok\\n"; } }
            }
            """
        }
        let lb = try LB(site("pw"))
        let r = try https(lb, "a.test", "/")
        #expect(r.status == 0 && r.out == "ok\n", "\(r.err)")
        let bad = try test(site("bad").replacingOccurrences(of: "{port}", with: "1"))
        #expect(bad.status == 1 && bad.stderr.contains("cannot load certificate key \"\(key)\": PEM_read_bio_PrivateKey() failed"), "\(bad.stderr)")
        let none = try test(site(nil).replacingOccurrences(of: "{port}", with: "1"))
        #expect(none.status == 1 && none.stderr.contains("PEM_read_bio_PrivateKey() failed"), "\(none.stderr)")
    }

    /// `ssl_certificate $ssl_server_name.crt;` (nginx ≥ 1.15.9): the certificate and key are
    /// read at each handshake for the name the client sent; a name without files, a name that
    /// is no valid host (`..`), and no name at all fail the handshake; `-t` reads none of them.
    @Test func certificatesNamedPerHandshakeBySNI() throws {
        let dir = try Harness.tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let fm = FileManager.default
        for (name, pair) in [("a.test", "a-ec"), ("b.test", "b-chain")] {
            try fm.copyItem(atPath: TestCerts.path("\(pair).crt"), toPath: dir.appendingPathComponent("\(name).crt").path)
            try fm.copyItem(atPath: TestCerts.path("\(pair == "b-chain" ? "b-ec" : pair).key"), toPath: dir.appendingPathComponent("\(name).key").path)
        }
        let conf = """
        error_log stderr info;
        events {}
        http {
            access_log off;
            server {
                listen 127.0.0.1:{port} ssl;
                ssl_certificate \(dir.path)/$ssl_server_name.crt;
                ssl_certificate_key \(dir.path)/${ssl_server_name}.key;
                location / { return 200 "$ssl_server_name\\n"; }
            }
        }
        """
        let lb = try LB(conf)
        let a = try https(lb, "a.test", "/")
        #expect(a.status == 0 && a.out == "a.test\n", "\(a.err)")
        let b = try https(lb, "b.test", "/")
        #expect(b.status == 0 && b.out == "b.test\n", "\(b.err)")
        // A certificate added after the start is found at its first handshake.
        try fm.copyItem(atPath: TestCerts.path("a-ec.crt"), toPath: dir.appendingPathComponent("c.test.crt").path)
        try fm.copyItem(atPath: TestCerts.path("a-ec.key"), toPath: dir.appendingPathComponent("c.test.key").path)
        let c = try https(lb, "c.test", "/", ["-k"])
        #expect(c.status == 0 && c.out == "c.test\n", "\(c.err)")
        #expect(try https(lb, "none.test", "/", ["-k"]).status != 0)
        let traversal = try runTool(["openssl", "s_client", "-connect", "127.0.0.1:\(lb.port)", "-servername", "..", "-brief"], input: "")
        #expect(!traversal.out.contains("CONNECTION ESTABLISHED"), "\(traversal.out)")
        // The files are not read at load: `-t` passes while none exists yet for a name.
        let t = try test(conf.replacingOccurrences(of: "{port}", with: "1"))
        #expect(t.status == 0, "\(t.stderr)")
        let refused = try test("events {} http { server { listen 127.0.0.1:1 ssl; ssl_certificate /c/$host.crt; ssl_certificate_key /c/k.key; } }\n")
        #expect(refused.status == 1 && refused.stderr.contains("only $ssl_server_name may name a certificate per handshake in lb"), "\(refused.stderr)")
    }

    @Test func aGoodConfigurationPassesTest() throws {
        let r = try test("events {} http { ssl_session_cache shared:SSL:10m; ssl_session_ticket_key \(TestCerts.path("ticket48.key")); server { listen 127.0.0.1:1 ssl; \(TestCerts.pair("a-ec")) ssl_ecdh_curve X25519:prime256v1; ssl_conf_command Options PrioritizeChaCha; } }\n")
        #expect(r.status == 0, "\(r.stderr)")
    }

    @Test func failedReloadKeepsServingTheOldCertificates() throws {
        let lb = try LB(TLSTests.sites())
        try lb.rewrite(TLSTests.sites().replacingOccurrences(of: TestCerts.path("b-chain.crt"), with: "/nonexistent.crt"))
        lb.started.signal(SIGHUP)
        #expect(waitForLog(lb, "reload failed, the previous configuration keeps serving"))
        #expect(lb.errorLog.contains("cannot load certificate \"/nonexistent.crt\""))
        let b = try https(lb, "b.test", "/v")
        #expect(b.status == 0 && b.out == "https on TLSv1.3 b.test . http/1.1 b.test\n")
    }

    @Test(arguments: [
        ("-tls1_2", "ssl_session_cache shared:SSL:1m; ssl_session_tickets off;"),
        ("-tls1_3", ""), // tickets under the random keys the context made at start
    ])
    func sessionsSurviveAReloadThatLeavesTLSAlone(_ version: String, _ settings: String) throws {
        let lb = try LB(TLSTests.sites(settings))
        let dir = try Harness.tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let sess = dir.appendingPathComponent("sess").path
        _ = try sClient(lb.port, [version, "-sess_out", sess])
        // Something else changes; the TLS settings and files do not.
        try lb.rewrite(TLSTests.sites(settings + " keepalive_timeout 30s;"))
        lb.started.signal(SIGHUP)
        #expect(waitForLog(lb, "configuration reloaded (generation 2)"))
        #expect(try sClient(lb.port, [version, "-sess_in", sess]).out.contains("Reused, TLSv1."))
        // A changed TLS setting makes a new context: its cache starts empty, its keys are new.
        try lb.rewrite(TLSTests.sites(settings + " ssl_session_timeout 10m;"))
        lb.started.signal(SIGHUP)
        #expect(waitForLog(lb, "configuration reloaded (generation 3)"))
        #expect(try sClient(lb.port, [version, "-sess_in", sess]).out.contains("New, TLSv1."))
    }

    @Test func aRenewedCertificateFileIsServedAfterReload() throws {
        let dir = try Harness.tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let crt = dir.appendingPathComponent("site.crt").path, key = dir.appendingPathComponent("site.key").path
        func install(_ name: String) throws {
            try? FileManager.default.removeItem(atPath: crt)
            try? FileManager.default.removeItem(atPath: key)
            try FileManager.default.copyItem(atPath: TestCerts.path("\(name).crt"), toPath: crt)
            try FileManager.default.copyItem(atPath: TestCerts.path("\(name).key"), toPath: key)
        }
        try install("a-ec")
        let conf = "error_log stderr notice; events {} http { server { listen 127.0.0.1:{port} ssl; ssl_certificate \(crt); ssl_certificate_key \(key); location / { return 200; } } }"
        let lb = try LB(conf)
        #expect(try sClient(lb.port, ["-tls1_3"], path: "/").out.contains("Server public key is 256 bit"))
        // Same paths, same directives, new contents (a renewal): the new certificate, at once.
        try install("a-rsa")
        lb.started.signal(SIGHUP)
        #expect(waitForLog(lb, "configuration reloaded (generation 2)"))
        #expect(try sClient(lb.port, ["-tls1_3"], path: "/").out.contains("Server public key is 2048 bit"))
    }

    func waitForLog(_ lb: LB, _ text: String, timeout: TimeInterval = 30) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if lb.errorLog.contains(text) { return true }
            usleep(20_000)
        }
        return false
    }
}
