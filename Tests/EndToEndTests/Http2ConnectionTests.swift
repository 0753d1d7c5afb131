import Foundation
import Glibc
import Testing

/// HTTP/2 connection-level behaviour checked against nginx (src/http/v2/ngx_http_v2.c): the
/// header-list cap against HPACK bombs, `$connection_requests` per stream, the settings of the
/// server the SNI name selects, and frames on closed streams. In `Http2Tests`'s serialized suite.
extension Http2Tests {
    /// The peak resident memory of a process since `resetPeak` (VmHWM), in KiB.
    static func peakKiB(_ pid: Int32) -> Int {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]) ?? 0
        }
        return 0
    }

    /// Resets VmHWM to the current RSS (clear_refs 5, Linux ≥ 4.0).
    static func resetPeak(_ pid: Int32) -> Bool {
        (try? "5".write(toFile: "/proc/\(pid)/clear_refs", atomically: false, encoding: .utf8)) != nil
    }

    /// nginx stops a header list longer than `large_client_header_buffers` (number × size), or one
    /// field longer than a buffer, with GOAWAY ENHANCE_YOUR_CALM, a connection error ("client sent
    /// too large header", ngx_http_v2_state_process_header; "… header field",
    /// ngx_http_v2_state_field_len). A bomb of one-octet references to a 2,000-octet table
    /// entry (30,000 of them: 61 MB decoded) ends the same way, costs lb no memory to speak of,
    /// never reaches the upstream, and other clients are answered meanwhile.
    @Test func hpackBombIsStoppedByLargeClientHeaderBuffersBeforeTheUpstream() throws {
        let (lb, backend, _) = try Http2Tests.start()
        let port = "\(lb.port)"
        let before = try backend.stats().requests
        // 13 fields of 2,006 octets (26 KB decoded) fit the default 4 × 8k: answered upstream.
        #expect(try h2client(["hpack-bomb", port, "/p/headers", "2000", "12"]) == "200")
        // 17 (34 KB) do not.
        #expect(try h2client(["hpack-bomb", port, "/p/headers", "2000", "16"]) == "goaway 11")
        #expect(lb.errorLog.contains("header list larger than the limit"), "\(lb.errorLog.suffix(2000))")
        // One field longer than one buffer (8k) as sent: "client sent too large header field" in nginx.
        #expect(try h2client(["hpack-bomb", port, "/p/headers", "8100", "0"]) == "200")
        #expect(try h2client(["hpack-bomb", port, "/p/headers", "8200", "0"]) == "goaway 11")
        #expect(lb.errorLog.contains("header field larger than the limit"), "\(lb.errorLog.suffix(2000))")

        let pid = lb.started.pid
        try #require(Http2Tests.resetPeak(pid), "cannot reset VmHWM of lb")
        let peakBefore = Http2Tests.peakKiB(pid)
        let bomb = try Started(URL(fileURLWithPath: "/usr/bin/python3"), [Http2Tests.client, "hpack-bomb", port, "/p/bomb", "2000", "30000"])
        for _ in 0..<3 {
            #expect(try curl(["--http2-prior-knowledge", "http://127.0.0.1:\(port)/v"]).out == "http HTTP/2.0 h2c \n")
        }
        #expect(bomb.wait(timeout: 30))
        let out = (try? String(contentsOf: bomb.stdoutURL, encoding: .utf8)) ?? ""
        #expect(out == "goaway 11\n", "\(out) \(bomb.stderr)")
        let grown = Http2Tests.peakKiB(pid) - peakBefore
        #expect(grown < 16 * 1024, "lb's peak RSS grew by \(grown) KiB for a 61 MB header list")
        // Only the requests that fitted went upstream (the stats request counts itself).
        #expect(try backend.stats().requests - before - 1 == 2)
    }

    /// nginx counts each stream as one more request of the connection (ngx_http_v2_create_stream:
    /// `h2c->connection->requests++` after ngx_http_create_request counted it on the stream's
    /// copy): `$connection_requests` is 1, 2, 3… by stream, `$connection` the same for all.
    @Test func connectionRequestsCountsTheStreamsOfAConnection() throws {
        let (lb, backend, _) = try Http2Tests.start(server: #"location /n { return 200 "$connection $connection_requests\n"; }"#)
        defer { withExtendedLifetime(backend) {} }
        func streams() throws -> [(sid: Int, connection: String, requests: Int)] {
            try h2client(["bodies", "\(lb.port)", "4", "/n"]).split(separator: "\n").map { line in
                let f = line.split(separator: " ")
                return (Int(f[0]) ?? 0, String(f[1]), Int(f[2]) ?? 0)
            }
        }
        let first = try streams()
        #expect(first.map(\.sid) == [1, 3, 5, 7])
        #expect(first.map(\.requests) == [1, 2, 3, 4])
        #expect(Set(first.map(\.connection)).count == 1)
        let second = try streams()
        #expect(second.map(\.requests) == [1, 2, 3, 4])
        #expect(Set(second.map(\.connection)).count == 1 && second[0].connection != first[0].connection)
    }

    /// nginx takes a connection's HTTP/2 settings (SETTINGS, the concurrency and header limits,
    /// keepalive) from `hc->conf_ctx` (ngx_http_v2_init, ngx_http_v2_state_headers), which
    /// ngx_http_ssl_servername points at the server the SNI name selected: not the address's
    /// default server's.
    @Test func connectionSettingsComeFromTheServerTheSNINameSelects() throws {
        let lb = try LB("""
            error_log stderr info;
            events {}
            http {
              access_log off;
              server {
                listen 127.0.0.1:{port} ssl http2;
                server_name a.test;
                \(TestCerts.pair("a-ec"))
                location / { return 200 "a\\n"; }
              }
              server {
                listen 127.0.0.1:{port} ssl http2;
                server_name b.test;
                ssl_certificate \(TestCerts.path("b-chain.crt")); ssl_certificate_key \(TestCerts.path("b-ec.key"));
                http2_max_concurrent_streams 5;
                http2_body_preread_size 1k;
                large_client_header_buffers 2 1k;
                location / { return 200 "b\\n"; }
              }
            }
            """)
        let a = try h2client(["tls-settings", "\(lb.port)", "a.test", TestCerts.path("ca.crt")])
        #expect(a == "enable_push=0 max_concurrent_streams=128 initial_window_size=65536 max_frame_size=16384 max_header_list_size=32768", "\(a)")
        let b = try h2client(["tls-settings", "\(lb.port)", "b.test", TestCerts.path("ca.crt")])
        #expect(b == "enable_push=0 max_concurrent_streams=5 initial_window_size=1024 max_frame_size=16384 max_header_list_size=2048", "\(b)")
    }

    /// Empty DATA frames on streams already answered and closed: each used to earn an RST_STREAM
    /// (STREAM_CLOSED) for free, spread over more streams than lb remembers, so the flood was
    /// bounded only by the client's rate. They cost the control-frame budget now: GOAWAY
    /// ENHANCE_YOUR_CALM, while other clients are answered. (nginx ignores DATA on closed streams
    /// and ends such a flood by its ratio of frame octets to payload: "http2 flood detected".)
    @Test func emptyDataOnClosedStreamsIsAFloodLikeTheOthers() throws {
        let (lb, backend, _) = try Http2Tests.start()
        defer { withExtendedLifetime(backend) {} }
        let flood = try Started(URL(fileURLWithPath: "/usr/bin/python3"), [Http2Tests.client, "closed-data-flood", "\(lb.port)", "40000", "/v"])
        for _ in 0..<3 {
            #expect(try curl(["--http2-prior-knowledge", "http://127.0.0.1:\(lb.port)/v"]).out == "http HTTP/2.0 h2c \n")
        }
        #expect(flood.wait(timeout: 30))
        let out = (try? String(contentsOf: flood.stdoutURL, encoding: .utf8)) ?? ""
        #expect(out.hasPrefix("goaway 11 "), "\(out) \(flood.stderr)")
        #expect(lb.errorLog.contains("control frame flood"))
        #expect(try curl(["--http2-prior-knowledge", "http://127.0.0.1:\(lb.port)/v"]).out == "http HTTP/2.0 h2c \n")
    }
}
