import Foundation
import Glibc
import Testing

/// examples/tls.conf as written (ports, paths and the certificate swapped for the test's): the
/// stack's front-end over HTTPS in headless Chromium, which trusts the test CA by its SPKI hash
/// only, and the HTTP port's redirect to HTTPS.
@Suite(.serialized) struct TLSBrowserTests {
    /// The example file with the test's ports and files; `{port}` is the HTTPS port.
    static func exampleConfig(httpPort: Int, storePort: Int, appPort: Int, chain: String) throws -> String {
        let root = Harness.repositoryRoot
        var text = try String(contentsOf: root.appendingPathComponent("examples/tls.conf"), encoding: .utf8)
        let swaps: [(String, String)] = [
            ("worker_processes auto;", "worker_processes 1;"),
            ("pid logs/lb.pid;", ""),
            ("include       mime.types;", "include \(root.appendingPathComponent("examples/mime.types").path);"),
            ("access_log    logs/access.log;", "access_log off;"),
            ("6380", "\(storePort)"),
            ("port 9001;", "port \(appPort);"),
            ("scale 4;", "scale 2;"),
            ("listen 8000 default_server;", "listen 127.0.0.1:\(httpPort) default_server;"),
            ("listen 8443 ssl default_server;", "listen 127.0.0.1:{port} ssl default_server;"),
            (":8443$request_uri", ":{port}$request_uri"),
            ("server_name localhost;", "server_name a.test;"),
            ("certs/localhost.crt", chain),
            ("certs/localhost.key", TestCerts.path("a-ec.key")),
            ("root  examples/www;", "root \(root.appendingPathComponent("examples/www").path);"),
        ]
        for (from, to) in swaps {
            guard text.contains(from) else { throw HarnessError("examples/tls.conf no longer contains \(from)") }
            text = text.replacingOccurrences(of: from, with: to)
        }
        return text
    }

    /// base64(SHA-256(SubjectPublicKeyInfo)) of a certificate, as Chromium's
    /// --ignore-certificate-errors-spki-list wants it (computed with the openssl command line).
    static func spkiHash(_ cert: String) throws -> String {
        let r = try runTool(["sh", "-c", "openssl x509 -in '\(cert)' -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64"])
        return r.out.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func chromium(_ dir: URL, _ name: String, _ args: [String], url: String) throws -> Started {
        try Started(URL(fileURLWithPath: "/usr/bin/chromium"),
                    ["--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=\(dir.path)/\(name)", "--virtual-time-budget=5000",
                     "--host-resolver-rules=MAP a.test 127.0.0.1"] + args + [url])
    }

    @Test func theFrontEndLoadsOverHTTPSTrustingTheTestCAByItsSPKIHash() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/chromium") else {
            Issue.record("chromium is not installed (Tests/run.sh installs it)")
            return
        }
        let dir = try Harness.tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        // The certificate followed by its chain, as a real one comes.
        let chain = dir.appendingPathComponent("a.test.chain.crt").path
        let leaf = try String(contentsOfFile: TestCerts.path("a-ec.crt"), encoding: .utf8)
        let ca = try String(contentsOfFile: TestCerts.path("ca.crt"), encoding: .utf8)
        try (leaf + ca).write(toFile: chain, atomically: true, encoding: .utf8)
        let httpPort = freePort(), storePort = freePort(), appPort = freePortRange(2)
        let lb = try LB(try Self.exampleConfig(httpPort: httpPort, storePort: storePort, appPort: appPort, chain: chain))
        let site = "https://a.test:\(lb.port)/"

        // Port 8000's job: a redirect to the same URL over HTTPS.
        let r = try RawClient(port: httpPort).get("/api/count?x=1", host: "a.test")
        #expect(r.status == 301 && r.header("Location") == "https://a.test:\(lb.port)/api/count?x=1")

        let caHash = try Self.spkiHash(TestCerts.path("ca.crt"))
        #expect(caHash.count == 44)
        let p = try chromium(dir, "u1", ["--ignore-certificate-errors-spki-list=\(caHash)", "--dump-dom"], url: site)
        #expect(p.wait(timeout: 90))
        let dom = (try? String(contentsOf: p.stdoutURL, encoding: .utf8)) ?? ""
        // The page's script fetched /api/… over the same HTTPS origin and rendered the answers.
        #expect(dom.firstRange(of: #/id="instance-id">([0-9a-f]{12})</code>/#) != nil, "no instance id in the rendered page: \(dom.prefix(2000))")
        #expect(dom.firstRange(of: #/id="count">([0-9]+)</p>/#) != nil, "no counter in the rendered page")

        // Trusting another CA's key instead: Chromium refuses the certificate, no page at all.
        let otherHash = try Self.spkiHash(TestCerts.path("other-ca.crt"))
        let refused = try chromium(dir, "u2", ["--ignore-certificate-errors-spki-list=\(otherHash)", "--dump-dom"], url: site)
        #expect(refused.wait(timeout: 90))
        let nothing = (try? String(contentsOf: refused.stdoutURL, encoding: .utf8)) ?? ""
        #expect(!nothing.contains("instance-id"), "the page loaded without trusting the CA: \(nothing.prefix(500))")

        // And a screenshot of the page over HTTPS (copied to docs/ with LB_UPDATE_DOCS=1).
        let shot = dir.appendingPathComponent("tls.png")
        let png = try chromium(dir, "u3", ["--ignore-certificate-errors-spki-list=\(caHash)", "--hide-scrollbars",
                                           "--window-size=1200,800", "--screenshot=\(shot.path)"], url: site)
        #expect(png.wait(timeout: 90))
        let data = try Data(contentsOf: shot)
        #expect(data.count > 5000 && data.starts(with: [0x89, 0x50, 0x4E, 0x47]))
        if ProcessInfo.processInfo.environment["LB_UPDATE_DOCS"] == "1" {
            let dest = Harness.repositoryRoot.appendingPathComponent("docs/tls-front-end.png")
            try? FileManager.default.removeItem(at: dest)
            try data.write(to: dest)
        }
    }
}
