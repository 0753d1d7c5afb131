import Foundation
import Glibc
import Testing

/// Request and response heads that Debian's nginx (1.22.1) answers in a particular way, sent to
/// lb as raw bytes; each expectation is what nginx answered to the same bytes.
@Suite(.serialized) struct HeadHardeningTests {
    static func config(_ backend: Backend) -> String {
        """
        worker_processes 1;
        error_log stderr info;
        events { worker_connections 64; }
        http {
            access_log off;
            server {
                listen 127.0.0.1:{port};
                location / { proxy_pass http://127.0.0.1:\(backend.port); }
            }
        }
        """
    }

    /// Sends `bytes` and reads everything until lb closes the connection (or 5 s pass).
    func exchange(_ lb: LB, _ bytes: [UInt8]) throws -> [UInt8] {
        let c = try RawClient(port: lb.port, timeout: 5)
        try c.send(bytes)
        while c.fill() {}
        return c.buffer
    }

    func text(_ b: [UInt8]) -> String { String(decoding: b, as: UTF8.self) }

    @Test func traceIsNotAllowedAndNeverForwarded() throws {
        let backend = try Backend(name: "b")
        let lb = try LB(Self.config(backend))
        let before = try backend.stats().requests
        let c = try RawClient(port: lb.port)
        try c.send("TRACE /x HTTP/1.1\r\nHost: a\r\n\r\n")
        let r = try c.readResponse()
        #expect(r.status == 405 && r.header("Connection") == "close" && r.header("Content-Type") == "text/html")
        #expect(r.text.contains("<title>405 Not Allowed</title>"))
        #expect(c.isClosedByPeer())
        // The control: a GET on the same path does reach the backend.
        #expect(try RawClient(port: lb.port).get("/x").text == "b /x")
        #expect(try backend.stats().requests == before + 2) // the GET and this /stats
    }

    @Test func lowerCaseMethodIsABadRequest() throws {
        let backend = try Backend(name: "b")
        let lb = try LB(Self.config(backend))
        let c = try RawClient(port: lb.port)
        try c.send("get / HTTP/1.1\r\nHost: a\r\n\r\n")
        let r = try c.readResponse()
        #expect(r.status == 400 && r.header("Connection") == "close")
        #expect(c.isClosedByPeer())
    }

    /// nginx relays such a response as HTTP/0.9 (raw bytes, no head of its own); lb answers 502
    /// rather than pass on a status line it cannot read.
    @Test func fourDigitUpstreamStatusIsABadGateway() throws {
        let backend = try Backend(name: "b")
        let lb = try LB(Self.config(backend))
        #expect(try RawClient(port: lb.port).get("/status/200").status == 200)
        let before = try backend.stats().requests
        let r = try RawClient(port: lb.port).get("/status/2000") // Python writes "HTTP/1.1 2000 "
        #expect(r.status == 502)
        #expect(try backend.stats().requests == before + 2) // it was asked (and this /stats)
    }

    @Test func fortyKilobytesOfEmptyLinesThenARequestIsServed() throws {
        let backend = try Backend(name: "b")
        let lb = try LB(Self.config(backend))
        let request = Array(String(repeating: "\r\n", count: 20480).utf8) + Array("GET /after HTTP/1.1\r\nHost: a\r\n\r\n".utf8)
        // lb drops the skipped bytes as they arrive (HeadScanner.discardLeading()): otherwise the
        // read buffer fills with empty lines and the request waits for client_header_timeout.
        let c = try RawClient(port: lb.port, timeout: 5)
        try c.send(request)
        let r = try c.readResponse()
        #expect(r.status == 200 && r.text == "b /after")
    }

    @Test func http09RequestIsAnsweredAtOnce() throws {
        let backend = try Backend(name: "b")
        let lb = try LB(Self.config(backend))
        let all = try exchange(lb, Array("GET /old\r\n".utf8))
        // Without waiting for headers that an HTTP/0.9 client never sends: the body arrives and
        // the connection is closed.
        #expect(text(all).hasSuffix("b /old"))
        // nginx answers with the body only (a chunked upstream response decoded).
        let chunked = try exchange(lb, Array("GET /chunked?parts=2\r\n".utf8))
        #expect(text(all) == "b /old")
        #expect(text(chunked) == "part0;part1;")
        let refused = try exchange(lb, Array("POST /old\r\n".utf8))
        #expect(text(refused).contains("<title>400 Bad Request</title>"))
    }
}
