import Foundation
import Glibc
import Testing

/// OCSP stapling beyond the good response of TLSTests: what `ssl_stapling_verify` does (nothing
/// to a response from `ssl_stapling_file`, as in nginx — Debian's nginx is the oracle here) and
/// `ssl_stapling on` without a file for a certificate without an OCSP URL (fetching: OCSPFetchTests). Responses are made offline with `openssl ocsp` from an
/// index file, signed by the test CA or by another one.
@Suite(.serialized) struct TLSStaplingTests {
    /// DER responses about a.test's ECDSA certificate unless said otherwise: `revoked` (signed
    /// by the CA), `wrong-signer` (good, signed by the other CA, so it fails verification
    /// against the CA), `other-cert` (good, about b.test's certificate).
    static let responses: URL = {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("lb-ocsp-\(getpid())")
        try? FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        func serial(_ cert: String) -> String {
            let out = (try? runTool(["openssl", "x509", "-in", TestCerts.path(cert), "-noout", "-serial"]).out) ?? ""
            return String(out.split(separator: "=").last ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let a = serial("a-ec.crt"), b = serial("b-ec.crt")
        let indexes = [
            "revoked": "R\t301231000000Z\t201231000000Z,keyCompromise\t\(a)\tunknown\t/CN=a.test\n",
            "good": "V\t301231000000Z\t\t\(a)\tunknown\t/CN=a.test\n",
            "b": "V\t301231000000Z\t\t\(b)\tunknown\t/CN=b.test\n",
        ]
        for (name, text) in indexes { try? text.write(to: d.appendingPathComponent("\(name).txt"), atomically: true, encoding: .utf8) }
        func make(_ out: String, index: String, signer: String, cert: String) {
            _ = try? runTool(["openssl", "ocsp", "-index", d.appendingPathComponent("\(index).txt").path,
                              "-rsigner", TestCerts.path("\(signer).crt"), "-rkey", TestCerts.path("\(signer).key"),
                              "-CA", TestCerts.path("ca.crt"), "-issuer", TestCerts.path("ca.crt"), "-cert", TestCerts.path(cert),
                              "-respout", d.appendingPathComponent("\(out).der").path, "-ndays", "1"])
        }
        make("revoked", index: "revoked", signer: "ca", cert: "a-ec.crt")
        make("wrong-signer", index: "good", signer: "other-ca", cert: "a-ec.crt")
        make("other-cert", index: "b", signer: "ca", cert: "b-ec.crt")
        return d
    }()

    static func response(_ name: String) -> String { responses.appendingPathComponent("\(name).der").path }

    /// One TLS server for a.test with `stapling` lines; `{port}` filled by the runner.
    static func server(_ stapling: String) -> String {
        """
        server { listen 127.0.0.1:{port} ssl; server_name a.test; \(TestCerts.pair("a-ec"))
                 \(stapling)
                 location / { return 200 "ok\\n"; } }
        """
    }

    /// Debian's nginx with the same server (skipped where it is not installed).
    final class Nginx {
        let port = freePort()
        let started: Started
        let dir: URL

        init(_ server: String) throws {
            dir = try Harness.tempDirectory()
            let conf = """
                error_log \(dir.path)/error.log notice;
                events {}
                http {
                  access_log off;
                  \(server.replacingOccurrences(of: "{port}", with: "\(port)"))
                }
                """
            try conf.write(to: dir.appendingPathComponent("nginx.conf"), atomically: true, encoding: .utf8)
            started = try Started(URL(fileURLWithPath: Differential.nginxPath),
                                  ["-p", dir.path, "-c", "\(dir.path)/nginx.conf", "-g", "daemon off; pid \(dir.path)/nginx.pid;"], cwd: dir)
            guard waitForPort(port) else { throw HarnessError("nginx did not start: \(started.stderr)") }
        }

        var errorLog: String { (try? String(contentsOf: dir.appendingPathComponent("error.log"), encoding: .utf8)) ?? "" }

        deinit {
            started.stop(grace: 5)
            try? FileManager.default.removeItem(at: dir)
        }
    }

    /// The stapled response as `openssl s_client -status` prints it: its status, the serial it
    /// is about and the certificate status; nil when none was sent.
    func stapled(_ port: Int) throws -> (serial: String, status: String)? {
        let out = try sClient(port, ["-status"]).out
        if out.contains("OCSP response: no response sent") { return nil }
        guard out.contains("OCSP Response Status: successful") else { return nil }
        let lines = out.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        let serial = lines.first { $0.hasPrefix("Serial Number: ") && $0.count > 15 }.map { String($0.dropFirst(15)) } ?? ""
        let status = lines.first { $0.hasPrefix("Cert Status: ") }.map { String($0.dropFirst(13)) } ?? ""
        return (serial, status)
    }

    var verifyOn: String { "ssl_stapling_verify on; ssl_trusted_certificate \(TestCerts.path("ca.crt"));" }

    @Test(arguments: ["revoked", "wrong-signer", "other-cert"])
    func aFileResponseIsStapledUncheckedEvenWithStaplingVerifyAsInNginx(_ name: String) throws {
        let server = Self.server("ssl_stapling on; ssl_stapling_file \(Self.response(name)); \(verifyOn)")
        let lb = try LB("error_log stderr info; events {} http { access_log off; \(server) }")
        let seen = try stapled(lb.port)
        #expect(seen != nil, "lb stapled nothing")
        #expect(seen?.status == (name == "revoked" ? "revoked" : "good"))
        // The response is sent as the file has it (about b.test's certificate for other-cert).
        let b = try runTool(["openssl", "x509", "-in", TestCerts.path("b-ec.crt"), "-noout", "-serial"]).out
        #expect(b.contains(seen?.serial ?? "?") == (name == "other-cert"))
        #expect(!lb.errorLog.lowercased().contains("ocsp"))
        guard Differential.available else { return }
        let nginx = try Nginx(server)
        let reference = try stapled(nginx.port)
        #expect(reference?.serial == seen?.serial && reference?.status == seen?.status, "nginx: \(String(describing: reference))")
        #expect(!nginx.errorLog.lowercased().contains("ocsp"))
    }

    @Test func staplingWithoutAFileWarnsAsNginxWhenTheCertificateNamesNoResponder() throws {
        let lb = try LB("error_log stderr info; events {} http { access_log off;\n\(Self.server("ssl_stapling on; \(verifyOn)")) }")
        let warning = "\"ssl_stapling\" ignored, no OCSP responder URL in the certificate \"\(TestCerts.path("a-ec.crt"))\""
        #expect(lb.errorLog.contains("[warn] \(warning)"), "\(lb.errorLog)")
        #expect(try stapled(lb.port) == nil)
        // The handshake and the request are unaffected.
        #expect(try sClient(lb.port, ["-status"]).out.contains("ok"))
        guard Differential.available else { return }
        let nginx = try Nginx(Self.server("ssl_stapling on; \(verifyOn)"))
        #expect(nginx.started.stderr.contains("[warn] ") && nginx.started.stderr.contains(warning), "\(nginx.started.stderr)")
    }
}
