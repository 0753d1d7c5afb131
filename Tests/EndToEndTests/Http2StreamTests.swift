import Foundation
import Glibc
import Testing

/// HTTP/2 streams doing what HTTP/1.1 requests do: trailers both ways as nginx treats them,
/// `limit_rate` and `sub_filter`, and a browser loading the front-end over HTTPS + h2. In
/// `Http2Tests`'s serialized suite.
extension Http2Tests {
    /// Request trailers (HEADERS with END_STREAM after DATA) end the body; their fields go
    /// nowhere, as nginx does with the trailers of a chunked HTTP/1.1 request body (it parses and
    /// drops them). nginx's HTTP/2 refuses them outright (GOAWAY PROTOCOL_ERROR, "client sent
    /// HEADERS frame with incorrect identifier"); RFC 9113 §8.1 allows them, and so does lb.
    @Test func requestTrailersEndTheBodyAndAreNotPassedUpstream() throws {
        let (lb, backend, _) = try Http2Tests.start(server: "location /u/ { proxy_pass http://127.0.0.1:{backend}/; proxy_request_buffering off; }")
        defer { withExtendedLifetime(backend) {} }
        let port = "\(lb.port)"
        // Buffered: sent upstream with content-length.
        let upload = try h2client(["trailers", port, "/p/upload"])
        #expect(upload.hasPrefix("200 ") && upload.contains(#""bytes": 5"#) && upload.contains(#""content_length": "5""#), "\(upload)")
        let headers = try h2client(["trailers", port, "/p/headers"])
        #expect(headers.hasPrefix("200 ") && !headers.contains("x-trailer"), "\(headers)")
        // Unbuffered: chunked upstream, ended without trailer fields.
        let chunked = try h2client(["trailers", port, "/u/upload"])
        #expect(chunked.hasPrefix("200 ") && chunked.contains(#""bytes": 5"#) && chunked.contains(#""transfer_encoding": "chunked""#), "\(chunked)")
    }

    /// nginx's proxy drops the trailers of a chunked upstream response (they are passed only with
    /// `proxy_pass_trailers on`, nginx ≥ 1.27.2, which lb does not have): over HTTP/2 the body
    /// ends with END_STREAM on DATA and no trailing HEADERS.
    @Test func upstreamResponseTrailersAreDroppedOverHTTP2() throws {
        let upstreamPort = freePort()
        let script = """
            import socket, sys
            s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(8)
            while True:
                c, _ = s.accept()
                data = b""
                while b"\\r\\n\\r\\n" not in data:
                    d = c.recv(4096)
                    if not d: break
                    data += d
                c.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Type: text/plain\\r\\nTransfer-Encoding: chunked\\r\\nTrailer: x-checksum\\r\\n"
                          b"Connection: close\\r\\n\\r\\n5\\r\\nhello\\r\\n6\\r\\n world\\r\\n0\\r\\nx-checksum: abc\\r\\n\\r\\n")
                c.close()
            """
        let upstream = try Started(URL(fileURLWithPath: "/usr/bin/python3"), ["-c", script, "\(upstreamPort)"])
        defer { upstream.stop() }
        #expect(waitForPort(upstreamPort))
        let (lb, backend, _) = try Http2Tests.start(server: "location /t/ { proxy_pass http://127.0.0.1:\(upstreamPort)/; }")
        defer { withExtendedLifetime(backend) {} }
        #expect(try h2client(["get-trailers", "\(lb.port)", "/t/x"]) == "200 11 trailers=")
    }

    /// `limit_rate` applies to HTTP/2 streams as to HTTP/1.1 responses: 1 MiB at 200k/s after
    /// 100k takes at least 4.6 s by nginx's arithmetic (≥ 3.5 s allowed for its one-second
    /// burst), static and proxied.
    @Test func limitRateAppliesToHTTP2Streams() throws {
        let (lb, backend, _) = try Http2Tests.start(server: """
            location = /big.bin { limit_rate 200k; limit_rate_after 100k; }
            location /lp/ { proxy_pass http://127.0.0.1:{backend}/; limit_rate 200k; limit_rate_after 100k; }
            """)
        defer { withExtendedLifetime(backend) {} }
        for path in ["/big.bin", "/lp/big?bytes=1048576"] {
            let r = try curl(["--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_version} %{size_download} %{time_total}",
                              "http://127.0.0.1:\(lb.port)\(path)"], timeout: 60)
            let f = r.out.split(separator: " ")
            #expect(f.count == 3 && f[0] == "2" && f[1] == "1048576", "\(path): \(r.out) \(r.err)")
            let seconds = f.count == 3 ? Double(f[2]) ?? 0 : 0
            #expect(seconds >= 3.5, "\(path): 1 MiB at limit_rate 200k after 100k took \(seconds) s over HTTP/2")
        }
    }

    /// `sub_filter` rewrites HTTP/2 responses as HTTP/1.1 ones: proxied, `return` and a static file.
    @Test func subFilterAppliesToHTTP2Streams() throws {
        let (lb, backend, _) = try Http2Tests.start(server: """
            location /s/ { proxy_pass http://127.0.0.1:{backend}/; sub_filter 'b1' 'B-ONE'; sub_filter_types text/plain; }
            location = /sr { default_type text/html; sub_filter 'world' 'there'; return 200 "hello world\\n"; }
            location = /page.html { sub_filter 'world' 'there'; sub_filter_types *; }
            """)
        defer { withExtendedLifetime(backend) {} }
        try "<p>hello world</p>\n".write(to: lb.dir.appendingPathComponent("files/page.html"), atomically: true, encoding: .utf8)
        let base = "http://127.0.0.1:\(lb.port)"
        let proxied = try curl(["--http2-prior-knowledge", "-w", "|%{http_version}", "\(base)/s/x"])
        #expect(proxied.out == "B-ONE /x|2", "\(proxied.out) \(proxied.err)")
        let returned = try curl(["--http2-prior-knowledge", "-w", "|%{http_version}", "\(base)/sr"])
        #expect(returned.out == "hello there\n|2", "\(returned.out) \(returned.err)")
        let file = try curl(["--http2-prior-knowledge", "-w", "|%{http_version}", "\(base)/page.html"])
        #expect(file.out == "<p>hello there</p>\n|2", "\(file.out) \(file.err)")
        // The same over HTTP/1.1, for comparison.
        #expect(try curl(["\(base)/s/x"]).out == "B-ONE /x")
    }

    /// Headless Chromium loads the stack's front-end (examples/tls.conf) over HTTPS with h2 on
    /// the listener, trusting the test CA by its SPKI hash only; the page, its script and the
    /// API calls the script makes all went over HTTP/2, by lb's access log.
    @Test func chromiumLoadsTheFrontEndOverHTTPSAndHTTP2() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/chromium") else {
            Issue.record("chromium is not installed (Tests/run.sh installs it)")
            return
        }
        let dir = try Harness.tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let chain = dir.appendingPathComponent("a.test.chain.crt").path
        let leaf = try String(contentsOfFile: TestCerts.path("a-ec.crt"), encoding: .utf8)
        let ca = try String(contentsOfFile: TestCerts.path("ca.crt"), encoding: .utf8)
        try (leaf + ca).write(toFile: chain, atomically: true, encoding: .utf8)
        let httpPort = freePort(), storePort = freePort(), appPort = freePortRange(2)
        var config = try TLSBrowserTests.exampleConfig(httpPort: httpPort, storePort: storePort, appPort: appPort, chain: chain)
        for (from, to) in [("listen 127.0.0.1:{port} ssl default_server;", "listen 127.0.0.1:{port} ssl http2 default_server;"),
                           ("access_log off;", "log_format h2 '$request $status $server_protocol $http2'; access_log access.log h2;")] {
            // The first one (the http block's access_log; a location's comes later).
            let at = try #require(config.range(of: from))
            config.replaceSubrange(at, with: to)
        }
        let lb = try LB(config)
        let caHash = try TLSBrowserTests.spkiHash(TestCerts.path("ca.crt"))
        let p = try Started(URL(fileURLWithPath: "/usr/bin/chromium"),
                            ["--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=\(dir.path)/u", "--virtual-time-budget=5000",
                             "--host-resolver-rules=MAP a.test 127.0.0.1", "--ignore-certificate-errors-spki-list=\(caHash)", "--dump-dom",
                             "https://a.test:\(lb.port)/"])
        #expect(p.wait(timeout: 90))
        let dom = (try? String(contentsOf: p.stdoutURL, encoding: .utf8)) ?? ""
        #expect(dom.firstRange(of: #/id="instance-id">([0-9a-f]{12})</code>/#) != nil, "no instance id in the rendered page: \(dom.prefix(2000))")
        #expect(dom.firstRange(of: #/id="count">([0-9]+)</p>/#) != nil, "no counter in the rendered page")
        // Every request Chromium made went over h2: the page, the script and the API calls.
        #expect(waitUntil { lb.file("access.log").contains("GET /api/count HTTP/2.0 200") })
        let lines = lb.file("access.log").split(separator: "\n")
        for want in ["GET / HTTP/2.0 200 HTTP/2.0 h2", "GET /app.js HTTP/2.0 200 HTTP/2.0 h2",
                     "GET /api/info HTTP/2.0 200 HTTP/2.0 h2", "GET /api/count HTTP/2.0 200 HTTP/2.0 h2"] {
            #expect(lines.contains { $0 == want }, "no \"\(want)\" in \(lines)")
        }
        #expect(lines.allSatisfy { $0.hasSuffix(" HTTP/2.0 h2") }, "\(lines)")
    }
}
