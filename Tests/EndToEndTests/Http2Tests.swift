import Foundation
import Glibc
import Testing

/// HTTP/2 through lb with real clients: curl (`--http2` over TLS by ALPN,
/// `--http2-prior-knowledge` in cleartext), nghttp, and Python's h2 library and raw frames
/// (Tests/support/h2client.py) for the frame-level cases: floods, refused streams, tiny windows,
/// GOAWAY on reload and on idle timeout.
@Suite(.serialized) struct Http2Tests {
    static let client = Harness.repositoryRoot.appendingPathComponent("Tests/support/h2client.py").path

    /// One server on a TLS address and a cleartext one, both `http2`, proxying /p/ to `backend`.
    static func config(backend: Int, tlsPort: Int, extra: String = "", server: String = "") -> String {
        """
        error_log stderr info;
        events {}
        http {
          log_format h2 '$request $status $server_protocol [$http2] [$ssl_alpn_protocol] $body_bytes_sent';
          access_log access.log h2;
          \(extra)
          server {
            listen 127.0.0.1:{port} http2;
            listen 127.0.0.1:\(tlsPort) ssl http2;
            server_name a.test;
            \(TestCerts.pair("a-ec"))
            root files;
            \(server)
            location /v { return 200 "$scheme $server_protocol $http2 $ssl_alpn_protocol\\n"; }
            location /p/ { proxy_pass http://127.0.0.1:\(backend)/; }
          }
        }
        """
    }

    /// lb with the config above, a backend, and a 1 MiB static file `files/big.bin`.
    static func start(extra: String = "", server: String = "") throws -> (LB, Backend, tlsPort: Int) {
        let backend = try Backend(name: "b1")
        let tlsPort = freePort()
        let lb = try LB(config(backend: backend.port, tlsPort: tlsPort, extra: extra,
                               server: server.replacingOccurrences(of: "{backend}", with: "\(backend.port)")), waitReady: false)
        let files = lb.dir.appendingPathComponent("files")
        try FileManager.default.createDirectory(at: files, withIntermediateDirectories: true)
        var bytes = [UInt8](repeating: 0, count: 1 << 20)
        for i in bytes.indices { bytes[i] = UInt8(truncatingIfNeeded: i &* 2_654_435_761 >> 13) }
        try Data(bytes).write(to: files.appendingPathComponent("big.bin"))
        guard waitForPort(lb.port), waitForPort(tlsPort) else { throw HarnessError("lb did not start: \(lb.errorLog)") }
        return (lb, backend, tlsPort)
    }

    func h2client(_ args: [String], timeout: TimeInterval = 30) throws -> String {
        try runTool(["/usr/bin/python3", Http2Tests.client] + args, timeout: timeout).out.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func sha256(of command: String) throws -> String {
        String(try runTool(["bash", "-c", command + " 2>/dev/null | sha256sum"], timeout: 60).out.prefix(64))
    }

    func https(_ port: Int, _ path: String, _ extra: [String], host: String = "a.test") throws -> (status: Int32, out: String, err: String) {
        try curl(["--cacert", TestCerts.path("ca.crt"), "--resolve", "\(host):\(port):127.0.0.1", "-w", "|%{http_version}"] + extra
                 + ["https://\(host):\(port)\(path)"])
    }

    @Test func curlNegotiatesH2ByALPNAndHTTP11StillWorksOnTheSameAddress() throws {
        let (lb, backend, tls) = try Http2Tests.start()
        defer { withExtendedLifetime(backend) {} }
        let h2 = try https(tls, "/v", ["--http2"])
        #expect(h2.status == 0 && h2.out == "https HTTP/2.0 h2 h2\n|2", "\(h2.err)")
        let h1 = try https(tls, "/v", ["--http1.1"])
        #expect(h1.status == 0 && h1.out == "https HTTP/1.1  http/1.1\n|1.1", "\(h1.err)")
        let h2c = try curl(["--http2-prior-knowledge", "-w", "|%{http_version}", "http://127.0.0.1:\(lb.port)/v"])
        #expect(h2c.out == "http HTTP/2.0 h2c \n|2", "\(h2c.err)")
        let plain = try curl(["-w", "|%{http_version}", "http://127.0.0.1:\(lb.port)/v"])
        #expect(plain.out == "http HTTP/1.1  \n|1.1", "\(plain.err)")
        // The access log sees HTTP/2 requests as nginx writes them.
        #expect(waitUntil { lb.file("access.log").split(separator: "\n").count == 4 })
        let log = lb.file("access.log")
        #expect(log.contains("GET /v HTTP/2.0 200 HTTP/2.0 [h2] [h2] 21\n"), "\(log)")
        #expect(log.contains("GET /v HTTP/2.0 200 HTTP/2.0 [h2c] [-] 19\n"), "\(log)")
        #expect(log.contains("GET /v HTTP/1.1 200 HTTP/1.1 [-] [http/1.1] 25\n"), "\(log)")
    }

    @Test func http2OnOffersH2OnlyToTheServerTheSNINameSelects() throws {
        let lb = try LB("""
            error_log stderr info;
            events {}
            http {
              access_log off;
              server {
                listen 127.0.0.1:{port} ssl;
                server_name a.test;
                http2 on;
                \(TestCerts.pair("a-ec"))
                location / { return 200 "a $server_protocol\\n"; }
              }
              server {
                listen 127.0.0.1:{port} ssl;
                server_name b.test;
                ssl_certificate \(TestCerts.path("b-chain.crt")); ssl_certificate_key \(TestCerts.path("b-ec.key"));
                location / { return 200 "b $server_protocol\\n"; }
              }
            }
            """)
        let a = try https(lb.port, "/", ["--http2"], host: "a.test")
        #expect(a.out == "a HTTP/2.0\n|2", "\(a.err)")
        let b = try https(lb.port, "/", ["--http2"], host: "b.test")
        #expect(b.out == "b HTTP/1.1\n|1.1", "\(b.err)")
    }

    @Test func proxiedBodiesAndStaticFilesFlowThroughSmallWindows() throws {
        // Request bodies through a 1 KiB stream window, responses read through 1 KiB and 100-octet ones.
        let (lb, backend, tls) = try Http2Tests.start(server: "http2_body_preread_size 1k;")
        let big = lb.dir.appendingPathComponent("files/big.bin").path
        let expected = try sha256(of: "cat \(big)")
        let post = try curl(["--http2-prior-knowledge", "--data-binary", "@\(big)", "http://127.0.0.1:\(lb.port)/p/upload"], timeout: 60)
        #expect(post.out.contains("\"bytes\": 1048576") && post.out.contains(expected), "\(post.out) \(post.err)")
        // Without content-length: sent upstream with one (buffered), as nginx.
        let chunked = try https(tls, "/p/upload", ["--http2", "-H", "content-length:", "-H", "transfer-encoding: chunked", "--data-binary", "@\(big)"])
        #expect(chunked.out.contains("\"bytes\": 1048576") && chunked.out.contains(expected), "\(chunked.out) \(chunked.err)")
        // A 1 MiB proxied response with a 1 KiB stream window (nghttp), the same octets as direct.
        let direct = try sha256(of: "curl -s 'http://127.0.0.1:\(backend.port)/big?bytes=1048576'")
        #expect(try sha256(of: "nghttp -w 10 'http://127.0.0.1:\(lb.port)/p/big?bytes=1048576'") == direct)
        #expect(try sha256(of: "nghttp -w 10 'https://127.0.0.1:\(tls)/p/big?bytes=1048576'") == direct)
        // A static file through a 100-octet window (Python's h2).
        #expect(try h2client(["get", "\(lb.port)", "/big.bin", "100"]) == "200 1048576 \(expected)")
        #expect(try h2client(["get", "\(lb.port)", "/p/chunked?parts=3"]).hasPrefix("200 18 "))
        // HEAD: headers alone, with the length.
        let head = try curl(["--http2-prior-knowledge", "-sI", "http://127.0.0.1:\(lb.port)/big.bin"])
        #expect(head.out.hasPrefix("HTTP/2 200") && head.out.contains("content-length: 1048576"), "\(head.out)")
    }

    @Test func cacheGzipErrorPagesAndTheStatusPageAnswerOverHTTP2() throws {
        let (lb, backend, _) = try Http2Tests.start(extra: "proxy_cache_path cache keys_zone=z:1m;", server: """
            error_page 404 /oops;
            location = /oops { return 404 "custom not found\\n"; }
            location /c/ { proxy_pass http://127.0.0.1:{backend}/; proxy_cache z; proxy_cache_valid 200 1m; add_header X-Cache $upstream_cache_status; }
            location /g/ { proxy_pass http://127.0.0.1:{backend}/; gzip on; gzip_types application/json; gzip_min_length 1; }
            location /status { status; }
            """)
        defer { withExtendedLifetime(backend) {} }
        let h2 = ["--http2-prior-knowledge", "-D", "-"]
        let base = "http://127.0.0.1:\(lb.port)"
        #expect(try curl(h2 + ["\(base)/c/x"]).out.contains("x-cache: MISS"))
        let hit = try curl(h2 + ["\(base)/c/x"]).out
        #expect(hit.hasPrefix("HTTP/2 200") && hit.contains("x-cache: HIT") && hit.hasSuffix("b1 /x"), "\(hit)")
        let missing = try curl(h2 + ["\(base)/nope"]).out
        #expect(missing.hasPrefix("HTTP/2 404") && missing.hasSuffix("custom not found\n"), "\(missing)")
        let status = try curl(["--http2-prior-knowledge", "-w", "|%{http_code}", "\(base)/status"]).out
        #expect(status.contains("<title>lb status</title>") && status.hasSuffix("|200"))
        // gzip output is chunked on HTTP/1.1: over HTTP/2 it is DATA frames, decoded by curl.
        let gz = try curl(["--http2-prior-knowledge", "--compressed", "-D", "-", "\(base)/g/headers"]).out
        #expect(gz.contains("content-encoding: gzip") && gz.contains("\"headers\": {"), "\(gz)")
    }

    @Test func manyConcurrentStreamsOnOneConnection() throws {
        let (lb, backend, tls) = try Http2Tests.start()
        defer { withExtendedLifetime(backend) {} }
        let r = try runTool(["h2load", "-n", "400", "-c", "2", "-m", "20", "https://127.0.0.1:\(tls)/v", "https://127.0.0.1:\(tls)/p/x"], timeout: 60)
        #expect(r.out.contains("400 succeeded, 0 failed, 0 errored"), "\(r.out) \(lb.errorLog.suffix(3000)) \(lb.file("access.log").suffix(2000))")
        #expect(r.out.contains("Application protocol: h2"), "\(r.out)")
    }

    @Test func rapidResetEndsWithEnhanceYourCalmWhileOtherClientsAreServed() throws {
        let (lb, backend, _) = try Http2Tests.start()
        let before = try backend.stats().requests
        let flood = try Started(URL(fileURLWithPath: "/usr/bin/python3"), [Http2Tests.client, "rapid-reset", "\(lb.port)", "300", "/p/slow?ms=2000"])
        // Another client is answered while the flood is on.
        for _ in 0..<5 {
            let r = try curl(["--http2-prior-knowledge", "http://127.0.0.1:\(lb.port)/v"])
            #expect(r.out == "http HTTP/2.0 h2c \n", "\(r.err)")
        }
        #expect(flood.wait(timeout: 20))
        let out = (try? String(contentsOf: flood.stdoutURL, encoding: .utf8)) ?? ""
        #expect(out.hasPrefix("goaway 11 "), "\(out) \(flood.stderr)") // ENHANCE_YOUR_CALM
        // The flood did not go upstream: streams reset before they ran never reach the backend.
        let passed = try backend.stats().requests - before - 1 // the stats request itself
        #expect(passed < 30, "\(passed) of 300 reset streams reached the backend")
        #expect(lb.errorLog.contains("too many streams reset by the client"))
    }

    @Test func continuationFloodIsCutBeforeDecoding() throws {
        let (lb, backend, _) = try Http2Tests.start()
        defer { withExtendedLifetime(backend) {} }
        #expect(try h2client(["continuation-flood", "\(lb.port)"]) == "goaway 11")
        #expect(try curl(["--http2-prior-knowledge", "http://127.0.0.1:\(lb.port)/v"]).out == "http HTTP/2.0 h2c \n")
    }

    /// SETTINGS, PING, WINDOW_UPDATE, PRIORITY and empty-DATA floods (frames that cost work and
    /// earn no response): GOAWAY ENHANCE_YOUR_CALM once the control-frame budget is spent, and
    /// other clients are answered meanwhile.
    @Test(arguments: ["ping", "settings", "window-update", "priority", "empty-data"])
    func controlFrameFloodsEndWithEnhanceYourCalm(_ kind: String) throws {
        let (lb, backend, _) = try Http2Tests.start()
        defer { withExtendedLifetime(backend) {} }
        // empty-data: on a proxied POST whose body never ends (buffered: no upstream yet).
        #expect(try h2client(["control-flood", "\(lb.port)", kind, "12000", "/p/upload"]) == "goaway 11")
        #expect(try curl(["--http2-prior-knowledge", "http://127.0.0.1:\(lb.port)/v"]).out == "http HTTP/2.0 h2c \n")
    }

    @Test func streamsBeyondTheConcurrencyLimitAreRefused() throws {
        let (lb, backend, _) = try Http2Tests.start(server: "http2_max_concurrent_streams 4;")
        defer { withExtendedLifetime(backend) {} }
        #expect(try h2client(["refuse", "\(lb.port)", "6", "/p/slow?ms=300"]) == "ok=4 refused=2")
    }

    /// Streams the client reset whose upstream requests go on (`proxy_ignore_client_abort on`)
    /// still count toward the limit, as nginx's: resetting is no way around it.
    @Test func streamsResetButStillRunningCountTowardTheConcurrencyLimit() throws {
        let (lb, backend, _) = try Http2Tests.start(server: "http2_max_concurrent_streams 4; proxy_ignore_client_abort on;")
        defer { withExtendedLifetime(backend) {} }
        #expect(try h2client(["reset-then-more", "\(lb.port)", "4", "/p/slow?ms=2000"]) == "ok=0 refused=4")
        // Once they end, the connection's streams are free again: another client is served at once.
        #expect(try curl(["--http2-prior-knowledge", "http://127.0.0.1:\(lb.port)/v"]).out == "http HTTP/2.0 h2c \n")
    }

    @Test func reloadSendsGoAwayAndFinishesTheStreamInFlight() throws {
        let (lb, backend, _) = try Http2Tests.start()
        var client: Started?
        try waitForArrival(at: [backend]) {
            client = try Started(URL(fileURLWithPath: "/usr/bin/python3"), [Http2Tests.client, "reload-inflight", "\(lb.port)", "/p/slow?ms=800"])
        }
        #expect(lb.reloadAndWait())
        let c = try #require(client)
        #expect(c.wait(timeout: 20))
        let out = (try? String(contentsOf: c.stdoutURL, encoding: .utf8)) ?? ""
        #expect(out == "sent\n200 goaway=0 ended closed\n", "\(out) \(c.stderr)")
    }

    @Test func gracefulStopSendsGoAwayAndFinishesTheStreamInFlight() throws {
        let (lb, backend, _) = try Http2Tests.start()
        var client: Started?
        try waitForArrival(at: [backend]) {
            client = try Started(URL(fileURLWithPath: "/usr/bin/python3"), [Http2Tests.client, "reload-inflight", "\(lb.port)", "/p/slow?ms=800"])
        }
        lb.started.signal(SIGQUIT)
        let c = try #require(client)
        #expect(c.wait(timeout: 20))
        let out = (try? String(contentsOf: c.stdoutURL, encoding: .utf8)) ?? ""
        #expect(out == "sent\n200 goaway=0 ended closed\n", "\(out) \(c.stderr)")
        #expect(lb.started.wait(timeout: 10), "lb did not stop: \(lb.errorLog)")
    }

    @Test func aClientThatOpensNoWindowIsCutBySendTimeout() throws {
        let (lb, backend, _) = try Http2Tests.start(extra: "send_timeout 1s;")
        defer { withExtendedLifetime(backend) {} }
        let out = try h2client(["zero-window", "\(lb.port)", "/big.bin"])
        #expect(out.hasPrefix("reset 2 after "), "\(out)") // INTERNAL_ERROR, the response cut
        #expect(lb.errorLog.contains("client timed out (110: Connection timed out) while sending response to client"), "\(lb.errorLog)")
        // Error-log lines name the protocol the client spoke.
        #expect(lb.errorLog.contains("request: \"GET /big.bin HTTP/2.0\""), "\(lb.errorLog)")
        #expect(try curl(["--http2-prior-knowledge", "http://127.0.0.1:\(lb.port)/v"]).out == "http HTTP/2.0 h2c \n")
    }

    @Test func keepaliveRequestsEndsTheConnectionWithGoAwayAfterThatManyStreams() throws {
        let (lb, backend, _) = try Http2Tests.start(extra: "keepalive_requests 2;")
        defer { withExtendedLifetime(backend) {} }
        // Streams 1 and 3 are served; 5, read with them, is refused (REFUSED_STREAM: retried elsewhere).
        #expect(try h2client(["many", "\(lb.port)", "3", "/v"]) == "ok=2 goaway=5/0 closed")
    }

    @Test func idleConnectionsCloseWithGoAwayAfterKeepaliveTimeout() throws {
        let (lb, backend, _) = try Http2Tests.start(extra: "keepalive_timeout 1s;")
        defer { withExtendedLifetime(backend) {} }
        #expect(try h2client(["idle", "\(lb.port)"]) == "goaway 0 closed")
    }
}
