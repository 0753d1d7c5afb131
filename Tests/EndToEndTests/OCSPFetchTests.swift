import Foundation
import Glibc
import Testing

/// OCSP stapling by fetching (`ssl_stapling on` without `ssl_stapling_file`), end to end and
/// offline: a PKI of our own (a root, an intermediate issuer, leaves whose OCSP URL is
/// http://127.0.0.1:PORT/), `openssl ocsp` as the responder, `openssl s_client -status` as the
/// client, Debian's nginx as the oracle for what is stapled and what is logged.
@Suite(.serialized) struct OCSPFetchTests {
    /// The fixture's files: `root` (self-signed, the trusted certificate), `issuer` (an
    /// intermediate signed by root), `leaf.crt` (leaf + issuer: the issuer comes from the chain;
    /// its OCSP URL names `aiaPort`), `direct.crt` (signed by root, no chain, no OCSP URL: the
    /// issuer comes from `ssl_trusted_certificate`), `rogue` (a self-signed signer nobody trusts);
    /// `good.txt`, `revoked.txt`, `direct.txt`: `openssl ocsp` index files.
    struct PKI {
        let dir: URL
        let aiaPort: Int
        func path(_ name: String) -> String { dir.appendingPathComponent(name).path }
    }

    static let pki: PKI = {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lb-ocsp-fetch-\(getpid())")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let port = freePortRange(1)
        let script = """
            set -e
            cd '\(dir.path)'
            key() { openssl ecparam -name prime256v1 -genkey -noout -out $1.key; }
            printf '[ca]\\nbasicConstraints=critical,CA:TRUE\\nkeyUsage=critical,keyCertSign,cRLSign\\n[leaf]\\nbasicConstraints=CA:FALSE\\nsubjectAltName=DNS:a.test\\nauthorityInfoAccess=OCSP;URI:http://127.0.0.1:\(port)/\\n[direct]\\nbasicConstraints=CA:FALSE\\nsubjectAltName=DNS:a.test\\n' > ext.cnf
            key root; openssl req -x509 -new -key root.key -subj /CN=OCSP-Root -days 3650 -out root.crt
            key rogue; openssl req -x509 -new -key rogue.key -subj /CN=Rogue -days 3650 -out rogue.crt
            key issuer; openssl req -new -key issuer.key -subj /CN=OCSP-Issuer -out issuer.csr
            openssl x509 -req -in issuer.csr -CA root.crt -CAkey root.key -CAcreateserial -days 3650 -extfile ext.cnf -extensions ca -out issuer.crt
            key leaf; openssl req -new -key leaf.key -subj /CN=a.test -out leaf.csr
            openssl x509 -req -in leaf.csr -CA issuer.crt -CAkey issuer.key -CAcreateserial -days 365 -extfile ext.cnf -extensions leaf -out leaf-only.crt
            cat leaf-only.crt issuer.crt > leaf.crt
            openssl x509 -req -in leaf.csr -CA root.crt -CAkey root.key -CAcreateserial -days 365 -extfile ext.cnf -extensions direct -out direct.crt
            s=$(openssl x509 -in leaf-only.crt -noout -serial | cut -d= -f2)
            d=$(openssl x509 -in direct.crt -noout -serial | cut -d= -f2)
            printf 'V\\t301231000000Z\\t\\t%s\\tunknown\\t/CN=a.test\\n' $s > good.txt
            printf 'R\\t301231000000Z\\t201231000000Z,keyCompromise\\t%s\\tunknown\\t/CN=a.test\\n' $s > revoked.txt
            printf 'V\\t301231000000Z\\t\\t%s\\tunknown\\t/CN=a.test\\n' $d > direct.txt
            echo $s > leaf.serial
            """
        _ = try? runTool(["bash", "-c", script], timeout: 60)
        return PKI(dir: dir, aiaPort: port)
    }()

    /// `openssl ocsp` answering on a loopback port from an index file, signed by `signer` on
    /// behalf of `ca`; stopped by PID at the end of the test.
    final class Responder {
        let started: Started
        let port: Int
        init(index: String, signer: String, ca: String, port: Int) throws {
            let p = OCSPFetchTests.pki
            self.port = port
            started = try Started(URL(fileURLWithPath: "/usr/bin/env"),
                                  ["openssl", "ocsp", "-index", p.path(index), "-port", "\(port)", "-rsigner", p.path("\(signer).crt"),
                                   "-rkey", p.path("\(signer).key"), "-CA", p.path("\(ca).crt"), "-nmin", "60", "-ignore_err"])
            // Ready when it says so (a probe connection would hold up this one-at-a-time server).
            let ready = waitUntil(timeout: 10) { [started] in started.stderr.contains("waiting for OCSP client connections") }
            guard ready else { throw HarnessError("openssl ocsp did not start: \(started.stderr)") }
        }
        /// Requests answered so far (the responder logs each one's first line).
        var requests: Int {
            let out = started.stderr + ((try? String(contentsOf: started.stdoutURL, encoding: .utf8)) ?? "")
            return out.components(separatedBy: "Received request").count - 1
        }
        deinit { started.stop(grace: 0) }
    }

    /// One TLS server for a.test with `lines`; `{port}` filled by the runner.
    static func server(cert: String = "leaf.crt", _ lines: String) -> String {
        """
        server { listen 127.0.0.1:{port} ssl; server_name a.test;
                 ssl_certificate \(pki.path(cert)); ssl_certificate_key \(pki.path("leaf.key"));
                 \(lines)
                 location / { return 200 "ok\\n"; } }
        """
    }

    static func lbConfig(_ server: String, _ http: String = "") -> String {
        "error_log stderr info; events {} http { access_log off; \(http)\n\(server) }"
    }

    var verifyOn: String { "ssl_stapling on; ssl_stapling_verify on; ssl_trusted_certificate \(Self.pki.path("root.crt"));" }

    /// What `openssl s_client -status` saw: the certificate status of the stapled response, nil
    /// when none was sent; and whether the request through the connection was answered.
    func handshake(_ port: Int) throws -> (status: String?, served: Bool) {
        let out = try sClient(port, ["-status"], path: "/").out
        let served = out.contains("\nok")
        guard !out.contains("OCSP response: no response sent"), out.contains("OCSP Response Status: successful") else { return (nil, served) }
        let line = out.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.first { $0.hasPrefix("Cert Status: ") }
        return (line.map { String($0.dropFirst(13)) }, served)
    }

    /// Handshakes until one gets a staple (the first one that asks only starts the fetch, as in nginx).
    func stapledStatus(_ port: Int) throws -> String? {
        var seen: String? = nil
        try waitUntil(timeout: 15, interval: 0.1) {
            seen = try handshake(port).status
            return seen != nil
        }
        return seen
    }

    func logTail(_ pki: PKI, port: Int, cert: String = "leaf.crt") -> String {
        " while requesting certificate status, responder: 127.0.0.1, peer: 127.0.0.1:\(port), certificate: \"\(pki.path(cert))\""
    }

    @Test func aGoodResponseFetchedFromTheCertificatesResponderIsStapledAsByNginx() throws {
        let p = Self.pki
        let responder = try Responder(index: "good.txt", signer: "issuer", ca: "issuer", port: p.aiaPort)
        let lb = try LB(Self.lbConfig(Self.server(verifyOn)))
        // The first handshake that asks gets nothing and starts the fetch.
        let first = try handshake(lb.port)
        #expect(first.status == nil && first.served)
        #expect(try stapledStatus(lb.port) == "good", "\(lb.errorLog) responder: \(responder.started.stderr) \((try? String(contentsOf: responder.started.stdoutURL, encoding: .utf8)) ?? "")")
        #expect(responder.requests == 1)
        #expect(!lb.errorLog.contains("[error]"), "\(lb.errorLog)")
        // Later handshakes get the same response without asking again (refreshed in an hour).
        #expect(try handshake(lb.port).status == "good")
        #expect(responder.requests == 1)
        guard Differential.available else { return }
        let nginx = try TLSStaplingTests.Nginx(Self.server(verifyOn))
        #expect(try handshake(nginx.port).status == nil)
        #expect(try stapledStatus(nginx.port) == "good")
    }

    @Test func aRevokedStatusIsNotStapledAndIsLoggedAsNginxLogsIt() throws {
        let p = Self.pki
        let port = freePort()
        let responder = try Responder(index: "revoked.txt", signer: "issuer", ca: "issuer", port: port)
        let lines = "\(verifyOn) ssl_stapling_responder http://127.0.0.1:\(port)/;"
        let lb = try LB(Self.lbConfig(Self.server(lines)))
        let expected = "[error] " // level, then the pid
        let line = "certificate status \"revoked\" in the OCSP response" + logTail(p, port: port)
        _ = try handshake(lb.port)
        #expect(waitUntil(timeout: 15) { lb.errorLog.contains(line) }, "\(lb.errorLog)")
        #expect(lb.errorLog.split(separator: "\n").contains { $0.contains(expected) && $0.hasSuffix(line) })
        let after = try handshake(lb.port)
        #expect(after.status == nil && after.served)
        #expect(responder.requests == 1, "the next fetch waits 5 minutes")
        guard Differential.available else { return }
        let nginx = try TLSStaplingTests.Nginx(Self.server(lines))
        _ = try handshake(nginx.port)
        #expect(waitUntil(timeout: 15) { nginx.errorLog.contains(line) }, "\(nginx.errorLog)")
        #expect(try handshake(nginx.port).status == nil)
    }

    @Test func aResponderThatIsDownStaplesNothingAndLbKeepsServing() throws {
        let p = Self.pki
        let port = freePort()  // nothing listens there
        let lines = "\(verifyOn) ssl_stapling_responder http://127.0.0.1:\(port)/;"
        let lb = try LB(Self.lbConfig(Self.server(lines)))
        let first = try handshake(lb.port)
        #expect(first.status == nil && first.served)
        let refused = "recv() failed (111: Connection refused)" + logTail(p, port: port)
        let closed = "OCSP responder prematurely closed connection" + logTail(p, port: port)
        #expect(waitUntil(timeout: 15) { lb.errorLog.contains(closed) }, "\(lb.errorLog)")
        #expect(lb.errorLog.contains(refused))
        let again = try handshake(lb.port)
        #expect(again.status == nil && again.served)
        guard Differential.available else { return }
        let nginx = try TLSStaplingTests.Nginx(Self.server(lines))
        _ = try handshake(nginx.port)
        #expect(waitUntil(timeout: 15) { nginx.errorLog.contains(closed) }, "\(nginx.errorLog)")
        #expect(nginx.errorLog.contains(refused))
    }

    @Test(arguments: [true, false])
    func aResponseSignedByAnUntrustedKeyIsStapledOnlyWithoutStaplingVerify(_ verify: Bool) throws {
        let p = Self.pki
        let port = freePort()
        let responder = try Responder(index: "good.txt", signer: "rogue", ca: "issuer", port: port)
        let lines = "ssl_stapling on; ssl_stapling_verify \(verify ? "on" : "off"); ssl_trusted_certificate \(p.path("root.crt"));"
            + " ssl_stapling_responder http://127.0.0.1:\(port)/;"
        let lb = try LB(Self.lbConfig(Self.server(lines)))
        let line = "OCSP_basic_verify() failed (SSL: error:13800065:OCSP routines::certificate verify error:Verify error: self-signed certificate)"
            + logTail(p, port: port)
        if verify {
            _ = try handshake(lb.port)
            #expect(waitUntil(timeout: 15) { lb.errorLog.contains(line) }, "\(lb.errorLog)")
            #expect(try handshake(lb.port).status == nil)
        } else {
            #expect(try stapledStatus(lb.port) == "good")
            #expect(!lb.errorLog.contains("OCSP"))
        }
        #expect(responder.requests == 1)
        guard Differential.available else { return }
        let nginx = try TLSStaplingTests.Nginx(Self.server(lines))
        if verify {
            _ = try handshake(nginx.port)
            #expect(waitUntil(timeout: 15) { nginx.errorLog.contains(line) }, "\(nginx.errorLog)")
            #expect(try handshake(nginx.port).status == nil)
        } else {
            #expect(try stapledStatus(nginx.port) == "good")
        }
    }

    @Test func theIssuerComesFromTheTrustedCertificateWhenTheChainLacksIt() throws {
        let port = freePort()
        let responder = try Responder(index: "direct.txt", signer: "root", ca: "root", port: port)
        let lb = try LB(Self.lbConfig(Self.server(cert: "direct.crt", "\(verifyOn) ssl_stapling_responder http://127.0.0.1:\(port)/;")))
        #expect(try stapledStatus(lb.port) == "good")
        #expect(responder.requests == 1)
    }

    @Test func certificatesWithoutIssuerOrResponderAreNotStapledWithNginxsWarnings() throws {
        let p = Self.pki
        // No ssl_trusted_certificate: direct.crt's issuer (root) is nowhere; leaf.crt's issuer is in its chain.
        let noIssuer = "\"ssl_stapling\" ignored, issuer certificate not found for certificate \"\(p.path("direct.crt"))\""
        let lb = try LB(Self.lbConfig(Self.server(cert: "direct.crt", "ssl_stapling on;")))
        #expect(lb.errorLog.contains("[warn] " + noIssuer), "\(lb.errorLog)")
        #expect(try handshake(lb.port).status == nil)
        // With the root trusted, direct.crt has an issuer but no OCSP URL.
        let noURL = "\"ssl_stapling\" ignored, no OCSP responder URL in the certificate \"\(p.path("direct.crt"))\""
        let lb2 = try LB(Self.lbConfig(Self.server(cert: "direct.crt", verifyOn)))
        #expect(lb2.errorLog.contains("[warn] " + noURL), "\(lb2.errorLog)")
        let badPrefix = "\"ssl_stapling\" ignored, invalid URL prefix in OCSP responder \"https://127.0.0.1/\" in the certificate \"\(p.path("leaf.crt"))\""
        let lb3 = try LB(Self.lbConfig(Self.server("\(verifyOn) ssl_stapling_responder https://127.0.0.1/;")))
        #expect(lb3.errorLog.contains("[warn] " + badPrefix), "\(lb3.errorLog)")
        guard Differential.available else { return }
        for (server, warning) in [(Self.server(cert: "direct.crt", "ssl_stapling on;"), noIssuer), (Self.server(cert: "direct.crt", verifyOn), noURL),
                                  (Self.server("\(verifyOn) ssl_stapling_responder https://127.0.0.1/;"), badPrefix)] {
            let nginx = try TLSStaplingTests.Nginx(server)
            #expect(nginx.started.stderr.contains("[warn] ") && nginx.started.stderr.contains(warning), "\(nginx.started.stderr)")
        }
    }

    @Test func aReloadKeepsTheFetchedResponse() throws {
        let port = freePort()
        let responder = try Responder(index: "good.txt", signer: "issuer", ca: "issuer", port: port)
        let lines = "\(verifyOn) ssl_stapling_responder http://127.0.0.1:\(port)/;"
        let lb = try LB("error_log stderr notice; events {} http { access_log off;\n\(Self.server(lines)) }")
        #expect(try stapledStatus(lb.port) == "good")
        // The responder goes away; a reload that rebuilds the server's context (another session
        // timeout) still staples at the first handshake after it, without asking again.
        responder.started.stop(grace: 0)
        try lb.rewrite("error_log stderr notice; events {} http { access_log off; ssl_session_timeout 7m;\n\(Self.server(lines)) }")
        #expect(lb.reloadAndWait())
        #expect(try handshake(lb.port).status == "good")
        #expect(responder.requests == 1)
    }

    @Test(arguments: [true, false])
    func aResponderNamedByHostIsResolvedByTheResolverElseItsLoadTimeAddressesServeWithAWarning(_ withResolver: Bool) throws {
        guard !withResolver || DNSServer.installed else { return }
        let p = Self.pki
        let port = freePort()
        let responder = try Responder(index: "good.txt", signer: "issuer", ca: "issuer", port: port)
        let dns = withResolver ? try DNSServer(hosts: "127.0.0.1 localhost\n") : nil
        let resolver = dns.map { "resolver 127.0.0.1:\($0.port) ipv6=off;" } ?? ""
        let lines = "\(verifyOn) ssl_stapling_responder http://localhost:\(port)/; \(resolver)"
        let lb = try LB(Self.lbConfig(Self.server(lines)))
        #expect(try stapledStatus(lb.port) == "good", "\(lb.errorLog)")
        #expect(responder.requests == 1)
        let warning = "[warn] "
        let noResolver = "no resolver defined to resolve localhost while requesting certificate status, responder: localhost, certificate: \"\(p.path("leaf.crt"))\""
        #expect(lb.errorLog.split(separator: "\n").contains { $0.contains(warning) && $0.hasSuffix(noResolver) } == !withResolver, "\(lb.errorLog)")
        guard Differential.available, !withResolver else { return }
        let nginx = try TLSStaplingTests.Nginx(Self.server(lines))
        #expect(try stapledStatus(nginx.port) == "good")
        #expect(nginx.errorLog.contains(noResolver), "\(nginx.errorLog)")
    }

    /// An HTTP server that answers every request with `answer` and closes (HTTP/1.0); it
    /// prints "ready" once listening and counts the requests it answered on its stdout.
    final class NotAResponder {
        let started: Started
        let port = freePort()
        init(_ answer: String) throws {
            let script = """
                import socket, sys
                s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(8); print("ready", flush=True)
                while True:
                    c, _ = s.accept(); c.recv(65536); c.sendall(sys.argv[2].encode()); c.close(); print("answered", flush=True)
                """
            started = try Started(URL(fileURLWithPath: "/usr/bin/env"), ["python3", "-c", script, "\(port)", answer])
            let ready = waitUntil(timeout: 10) { [started] in ((try? String(contentsOf: started.stdoutURL, encoding: .utf8)) ?? "").contains("ready") }
            guard ready else { throw HarnessError("the test server did not start: \(started.stderr)") }
        }
        var answered: Int { ((try? String(contentsOf: started.stdoutURL, encoding: .utf8)) ?? "").components(separatedBy: "answered").count - 1 }
        deinit { started.stop(grace: 0) }
    }

    @Test func anAnswerThatIsNotAnOCSPResponseIsRefusedAsByNginx() throws {
        let p = Self.pki
        // A wrong Content-Type is logged; a status other than 200 is dropped without a line.
        for (answer, line) in [("HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n<html>", "OCSP responder sent invalid \"Content-Type\" header: \"text/html\""),
                               ("HTTP/1.0 404 Not Found\r\n\r\n", nil), ("SSH-2.0-OpenSSH\r\n", "OCSP responder sent invalid response")] {
            let server = try NotAResponder(answer)
            let lines = "\(verifyOn) ssl_stapling_responder http://127.0.0.1:\(server.port)/;"
            let lb = try LB(Self.lbConfig(Self.server(lines)))
            _ = try handshake(lb.port)
            #expect(waitUntil(timeout: 15) { server.answered == 1 })
            if let line {
                #expect(waitUntil(timeout: 15) { lb.errorLog.contains(line + logTail(p, port: server.port)) }, "\(lb.errorLog)")
            }
            let after = try handshake(lb.port)
            #expect(after.status == nil && after.served)
            #expect(server.answered == 1)
            guard Differential.available else { continue }
            let nginx = try TLSStaplingTests.Nginx(Self.server(lines))
            _ = try handshake(nginx.port)
            #expect(waitUntil(timeout: 15) { server.answered == 2 })
            if let line {
                #expect(waitUntil(timeout: 15) { nginx.errorLog.contains(line + logTail(p, port: server.port)) }, "\(nginx.errorLog)")
            }
            #expect(try handshake(nginx.port).status == nil)
            if line == nil {
                // Neither logs anything about it.
                #expect(!lb.errorLog.contains("OCSP") && !nginx.errorLog.contains("OCSP") && !nginx.errorLog.contains("[error]"))
            }
        }
    }
}
