import Foundation
import Glibc
import Testing

/// Request bodies as nginx handles them: read whole before the upstream is contacted
/// (`proxy_request_buffering on`, the default) — in memory up to client_body_buffer_size, then in a
/// temporary file — so a slow upload holds no upstream connection, a chunked body goes upstream
/// with a Content-Length, and a retry resends the body; an upstream that answers before taking
/// the body is relayed; a response head larger than proxy_buffer_size is a 502 at once.
@Suite(.serialized) struct RequestBodyTests {
    static func config(_ upstream: String, extra: String = "") -> String {
        """
        events {}
        http {
            access_log off;
            upstream app { \(upstream) }
            server {
                listen 127.0.0.1:{port};
                proxy_read_timeout 20s;
                proxy_send_timeout 20s;
                client_max_body_size 64m;
                \(extra)
                location / { proxy_pass http://app; }
                location /stream/ { proxy_request_buffering off; proxy_pass http://app/; }
                location /nobody/ { proxy_pass_request_body off; proxy_pass http://app/; }
                location /small/ { client_body_buffer_size 1k; proxy_pass http://app/; }
                location /retry/ {
                    client_body_buffer_size 1k;
                    proxy_next_upstream error non_idempotent;
                    proxy_pass http://app/;
                }
                location /roomy/ { proxy_buffer_size 16k; proxy_pass http://app/; }
            }
        }
        """
    }

    func sha256(_ url: URL) throws -> String {
        let p = try Started(URL(fileURLWithPath: "/usr/bin/sha256sum"), [url.path])
        _ = p.wait(timeout: 30)
        let out = (try? String(contentsOf: p.stdoutURL, encoding: .utf8)) ?? ""
        return String(out.prefix(64))
    }

    func file(_ dir: URL, bytes: Int) throws -> URL {
        let url = dir.appendingPathComponent("body-\(bytes)")
        var bytesOut = [UInt8](repeating: 0, count: bytes)
        for i in 0..<bytes { bytesOut[i] = UInt8(truncatingIfNeeded: i &* 131 &+ i >> 7) }
        try Data(bytesOut).write(to: url)
        return url
    }

    func json(_ s: String) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(s.utf8))) as? [String: Any] ?? [:]
    }

    @Test func aSlowUploadReachesTheUpstreamOnlyWhenComplete() throws {
        let b = try Backend(name: "b1")
        let lb = try LB(Self.config("server 127.0.0.1:\(b.port);"))
        defer { lb.stop() }
        let before = try b.stats().connections
        let c = try RawClient(port: lb.port, timeout: 20)
        let body = [UInt8](repeating: 0x61, count: 100_000)
        try c.send("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.count)\r\n\r\n")
        try c.send(Array(body[0..<50_000]))
        usleep(500_000) // an uploader that pauses mid-body
        // The stats request itself is one connection; the upload made none.
        #expect(try b.stats().connections == before + 1)
        try c.send(Array(body[50_000...]))
        let r = try c.readResponse()
        #expect(r.status == 200)
        #expect(json(r.text)["bytes"] as? Int == body.count)

        // With proxy_request_buffering off the upstream is contacted before the body is complete.
        let mid = try b.stats().connections
        let s = try RawClient(port: lb.port, timeout: 20)
        try s.send("POST /stream/upload HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.count)\r\n\r\n")
        try s.send(Array(body[0..<50_000]))
        var contacted = false
        let deadline = Date().addingTimeInterval(5)
        while !contacted && Date() < deadline {
            contacted = try b.stats().connections >= mid + 2
            if !contacted { usleep(20_000) }
        }
        #expect(contacted)
        try s.send(Array(body[50_000...]))
        #expect(try s.readResponse().status == 200)
    }

    @Test func aChunkedUploadGoesUpstreamWholeWithAContentLength() throws {
        let b = try Backend(name: "b1")
        let lb = try LB(Self.config("server 127.0.0.1:\(b.port);"))
        defer { lb.stop() }
        let dir = try Harness.tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        // 3 MB through a 1 KiB memory buffer: the body goes through a temporary file.
        let f = try file(dir, bytes: 3_000_000)
        let r = try curl(["-H", "Transfer-Encoding: chunked", "--data-binary", "@" + f.path, "http://127.0.0.1:\(lb.port)/small/upload"], timeout: 60)
        let o = json(r.out)
        #expect(o["bytes"] as? Int == 3_000_000)
        #expect(o["sha256"] as? String == (try sha256(f)))
        #expect(o["content_length"] as? String == "3000000")
        #expect(o["transfer_encoding"] is NSNull)
    }

    @Test func aRetryResendsTheBufferedBody() throws {
        let closer = try Backend(name: "closer"), good = try Backend(name: "good")
        // round robin starts with the closer: it reads the body and hangs up without an answer.
        let lb = try LB(Self.config("server 127.0.0.1:\(closer.port) max_fails=0; server 127.0.0.1:\(good.port) max_fails=0;"))
        defer { lb.stop() }
        let dir = try Harness.tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let f = try file(dir, bytes: 200_000)
        let digest = try sha256(f)
        for _ in 0..<4 {
            let r = try curl(["--data-binary", "@" + f.path, "http://127.0.0.1:\(lb.port)/retry/upload"], timeout: 30)
            let o = json(r.out)
            #expect(o["bytes"] as? Int == 200_000, "\(r.out)")
            #expect(o["sha256"] as? String == digest)
        }
        // The closer did get (and drop) some of them.
        #expect(lb.errorLog.contains("upstream prematurely closed connection while reading response header from upstream"))
    }

    @Test(arguments: ["/reject?status=413", "/stream/reject?status=413"])
    func anEarlyAnswerToALargeUploadIsRelayed(_ path: String) throws {
        let b = try Backend(name: "b1")
        let lb = try LB(Self.config("server 127.0.0.1:\(b.port);"))
        defer { lb.stop() }
        let dir = try Harness.tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let f = try file(dir, bytes: 20 << 20)
        let r = try curl(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--data-binary", "@" + f.path, "http://127.0.0.1:\(lb.port)\(path)"], timeout: 15)
        #expect(r.out == "413", "\(lb.errorLog)")
        #expect(!lb.errorLog.contains("timed out"))
    }

    @Test func anUpstreamHeadLargerThanProxyBufferSizeIs502AtOnce() throws {
        let b = try Backend(name: "b1")
        let lb = try LB(Self.config("server 127.0.0.1:\(b.port) max_fails=0;"))
        defer { lb.stop() }
        let c = try RawClient(port: lb.port, timeout: 10)
        #expect(try c.get("/bighead?bytes=6000").status == 502)
        let deadline = Date().addingTimeInterval(5)
        while !lb.errorLog.contains("too big header") && Date() < deadline { usleep(20_000) }
        #expect(lb.errorLog.contains("upstream sent too big header while reading response header from upstream"))
        // proxy_buffer_size raises the limit.
        let roomy = try RawClient(port: lb.port, timeout: 10).get("/roomy/bighead?bytes=6000")
        #expect(roomy.status == 200)
        #expect(roomy.header("X-Big")?.count == 6000)
    }

    @Test func proxyPassRequestBodyOffSendsNoBody() throws {
        let b = try Backend(name: "b1")
        let lb = try LB(Self.config("server 127.0.0.1:\(b.port);"))
        defer { lb.stop() }
        let r = try curl(["--data-binary", "hello body", "http://127.0.0.1:\(lb.port)/nobody/upload"], timeout: 10)
        let o = json(r.out)
        #expect(o["bytes"] as? Int == 0, "\(r.out)")
        #expect(o["content_length"] is NSNull)
    }

    @Test func proxyInterceptErrorsHandsNamedStatusesToErrorPage() throws {
        // Expected answers are Debian nginx 1.22.1's for the same config.
        let b = try Backend(name: "b1")
        let lb = try LB("""
        events {}
        http {
            access_log off;
            server {
                listen 127.0.0.1:{port};
                location / { proxy_pass http://127.0.0.1:\(b.port); proxy_intercept_errors on; error_page 404 /custom404; error_page 502 = @fallback; }
                location /pass/ { proxy_pass http://127.0.0.1:\(b.port)/; error_page 404 /custom404; }
                location = /custom404 { return 200 "custom"; }
                location @fallback { return 200 "fallback"; }
            }
        }
        """)
        defer { lb.stop() }
        let c = try RawClient(port: lb.port)
        let r404 = try c.get("/status/404")
        #expect(r404.status == 404 && r404.text == "custom")
        let r500 = try c.get("/status/500")
        #expect(r500.status == 500 && r500.text == "b1 status")
        let r502 = try c.get("/status/502")
        #expect(r502.status == 200 && r502.text == "fallback")
        let pass = try c.get("/pass/status/404")
        #expect(pass.status == 404 && pass.text == "b1 status")
    }
}
