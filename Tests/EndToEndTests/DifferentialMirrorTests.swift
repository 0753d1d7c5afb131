import Foundation
import Glibc
import Testing

/// `mirror` through lb and Debian's nginx side by side: the same requests, then what the mirror
/// backend received from each (method, target, body, the headers the mirror location set) —
/// counts included, so an extra or a missing mirror fails. nginx mirrors again after every
/// internal redirect (an index, an error_page), after try_files, never for a `return`.
@Suite(.serialized, .enabled(if: Differential.available, "needs Debian's nginx at /usr/sbin/nginx"))
struct DifferentialMirrorTests {
    static let config = """
    server {
        listen 127.0.0.1:{port};
        root {root};
        set $who nobody;
        location / { mirror /mirror; proxy_pass http://{backend}/app; }
        location /s/ { mirror /mirror; mirror /mirror2; }
        location /t/ { mirror /mirror; try_files $uri /s/f.txt; }
        location /e/ { mirror /mirror; proxy_pass http://{backend}/status/; proxy_intercept_errors on; error_page 404 /s/f.txt; }
        location /nb/ {
            mirror /mirror-nobody; mirror_request_body off;
            proxy_pass http://{backend}/app;
        }
        location /r/ { mirror /mirror; return 200 "returned\\n"; }
        location /v/ { set $who somebody; mirror /mirror; proxy_pass http://{backend}/app; }
        location /off/ { mirror off; proxy_pass http://{backend}/app; }
        location = /mirror {
            internal;
            proxy_pass http://{backend}/record$request_uri;
            proxy_set_header X-Uri $uri;
            proxy_set_header X-Args $args;
            proxy_set_header X-Method $request_method;
            proxy_set_header X-Who $who;
        }
        location = /mirror2 { internal; proxy_pass http://{backend}/record/two; }
        location = /mirror-nobody {
            internal;
            proxy_pass http://{backend}/record/nobody$request_uri;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
        }
    }
    """

    struct Case: CustomStringConvertible {
        var method = "GET"
        var target: String
        var headers: [String] = []
        var body: [UInt8]? = nil
        var chunked = false
        var status: Int
        /// Mirror requests the backend must see for it (nginx's count).
        var mirrors: Int
        var description: String { "\(method) \(target)\(body.map { " (\($0.count) body bytes\(chunked ? ", chunked" : ""))" } ?? "")" }
    }

    @Test func mirrorsReachTheMirrorLocationAsNginxSendsThem() throws {
        let d = try Differential(Self.config, files: ["s/index.html": "index\n", "s/f.txt": "file\n", "t/here.txt": "here\n"], backend: true)
        let backend = try #require(d.backend)
        let big = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) } // beyond client_body_buffer_size: a temporary file
        let cases = [
            Case(target: "/a/b?x=1", status: 200, mirrors: 1),
            Case(method: "POST", target: "/p?y=2", body: Array("hello body".utf8), status: 200, mirrors: 1),
            Case(method: "POST", target: "/c", body: Array("chunked body".utf8), chunked: true, status: 200, mirrors: 1),
            Case(method: "PUT", target: "/big?z=3", body: big, status: 200, mirrors: 1),
            Case(method: "HEAD", target: "/h", status: 200, mirrors: 1),
            // The index redirect runs the precontent phase again: two passes, two mirrors each.
            Case(target: "/s/", status: 200, mirrors: 4),
            Case(target: "/s/f.txt?q", status: 200, mirrors: 2),
            Case(target: "/s/missing", status: 404, mirrors: 2),
            // try_files first: a file found mirrors here; the fallback mirrors only where it lands.
            Case(target: "/t/here.txt", status: 200, mirrors: 1),
            Case(target: "/t/none.txt", status: 200, mirrors: 2),
            // error_page: mirrored in the location that failed and in the page's location, as GET.
            Case(method: "POST", target: "/e/404", body: Array("form=1".utf8), status: 404, mirrors: 3),
            Case(method: "POST", target: "/nb/x?z", body: Array("unsent".utf8), status: 200, mirrors: 1),
            Case(target: "/r/x", status: 200, mirrors: 0),
            Case(target: "/v/x", status: 200, mirrors: 1),
            Case(target: "/off/x", status: 200, mirrors: 0),
            Case(target: "/mirror", status: 404, mirrors: 0),
        ]
        for c in cases {
            let n = try Self.send(c, port: d.nginxPort)
            let nr = try Self.records(backend.port, count: c.mirrors)
            let l = try Self.send(c, port: d.lb.port)
            let lr = try Self.records(backend.port, count: c.mirrors)
            #expect(n.status == c.status, "\(c): nginx answered \(n.status)")
            #expect(l.status == n.status, "\(c): status lb \(l.status), nginx \(n.status)")
            let nb = d.normalise(n.text, port: d.nginxPort), lbb = d.normalise(l.text, port: d.lb.port)
            #expect(lbb == nb, "\(c): body lb \(lbb.debugDescription), nginx \(nb.debugDescription)")
            #expect(nr.count == c.mirrors, "\(c): nginx made \(nr.count) mirror requests: \(nr)")
            #expect(lr == nr, "\(c): mirror requests\n lb    \(lr)\n nginx \(nr)")
        }
        // Nothing arrived late (a mirror too many for some case).
        usleep(300_000)
        #expect(try Self.records(backend.port, count: 0).isEmpty)
    }

    /// The request as the case says, on its own connection; the body with a Content-Length or
    /// in two chunks.
    static func send(_ c: Case, port: Int) throws -> RawClient.Response {
        let client = try RawClient(port: port)
        var head = "\(c.method) \(c.target) HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nX-Test: \(c.target)\r\n"
        for h in c.headers { head += h + "\r\n" }
        var bytes: [UInt8]
        if let body = c.body {
            if c.chunked {
                head += "Transfer-Encoding: chunked\r\n\r\n"
                bytes = Array(head.utf8)
                let half = body.count / 2
                for part in [body[..<half], body[half...]] where !part.isEmpty {
                    bytes += Array(String(part.count, radix: 16).utf8) + [13, 10] + part + [13, 10]
                }
                bytes += Array("0\r\n\r\n".utf8)
            } else {
                head += "Content-Length: \(body.count)\r\n\r\n"
                bytes = Array(head.utf8) + body
            }
        } else {
            bytes = Array((head + "\r\n").utf8)
        }
        try client.send(bytes)
        return try client.readResponse(head: c.method == "HEAD")
    }

    /// The mirror requests the backend kept, once `count` are there (waiting up to 10 s), each
    /// as one sorted line without the Host header (the servers' upstream names are the same
    /// anyway); taken from the backend, so the next call sees only newer ones.
    static func records(_ port: Int, count: Int) throws -> [String] {
        var got: [[String: Any]] = []
        let deadline = Date().addingTimeInterval(10)
        repeat {
            let r = try RawClient(port: port).get("/records?path=/record")
            got += try JSONSerialization.jsonObject(with: Data(r.body)) as? [[String: Any]] ?? []
            if got.count >= count { break }
            usleep(20_000)
        } while Date() < deadline
        return got.map { r -> String in
            var r = r
            if var h = r["headers"] as? [String: String] {
                h["host"] = nil
                r["headers"] = h
            }
            let data = try! JSONSerialization.data(withJSONObject: r, options: [.sortedKeys])
            return String(decoding: data, as: UTF8.self)
        }.sorted()
    }
}

/// What only lb can show about `mirror`: the main request never waits for its mirrors, mirrors
/// are neither logged nor counted, and an HTTP/2 request is mirrored as HTTP/2.
@Suite(.serialized) struct MirrorTests {
    /// A port that accepts connections (the kernel completes them) and never answers.
    final class SilentPort {
        let fd: Int32
        let port: Int
        init() throws {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            self.fd = fd
            var a = sockaddr_in()
            a.sin_family = sa_family_t(AF_INET)
            a.sin_addr.s_addr = inet_addr("127.0.0.1")
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            let ok = withUnsafeMutablePointer(to: &a) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && listen(fd, 64) == 0 && getsockname(fd, $0, &len) == 0 }
            }
            guard ok else { throw HarnessError("silent port: errno \(errno)") }
            port = Int(UInt16(bigEndian: a.sin_port))
        }
        deinit { close(fd) }
    }

    @Test func aMirrorThatNeverAnswersHoldsNeitherTheResponseNorTheNextRequest() throws {
        let silent = try SilentPort()
        let backend = try Backend(name: "main")
        let lb = try LB("""
        error_log stderr info;
        events {}
        http {
            access_log logs/access.log;
            server {
                listen 127.0.0.1:{port};
                location / { mirror /mirror; proxy_pass http://127.0.0.1:\(backend.port); }
                location = /mirror { internal; proxy_pass http://127.0.0.1:\(silent.port); proxy_read_timeout 1s; }
                location = /status { stub_status; access_log off; }
            }
        }
        """)
        let c = try RawClient(port: lb.port, timeout: 5)
        for i in 1...3 {
            try c.send("GET /k\(i) HTTP/1.1\r\nHost: localhost\r\n\r\n")
            let r = try c.readResponse()
            #expect(r.status == 200 && r.text == "main /k\(i)", "request \(i): \(r.status) \(r.text)")
        }
        // One connection may not pile up mirrors faster than they end: past 32 in progress, a
        // request is answered and its mirror skipped (logged), not queued.
        let burst = try RawClient(port: lb.port, timeout: 5)
        for i in 1...40 {
            try burst.send("GET /b\(i) HTTP/1.1\r\nHost: localhost\r\n\r\n")
            #expect(try burst.readResponse().status == 200, "burst request \(i)")
        }
        #expect(lb.errorLog.contains("not made: 32 mirror subrequests of this connection are in progress"), "\(lb.errorLog.suffix(600))")
        // Each mirror ends by its own proxy_read_timeout, logged as the subrequest it is.
        let deadline = Date().addingTimeInterval(10)
        while lb.errorLog.components(separatedBy: "upstream timed out").count - 1 < 3 && Date() < deadline { usleep(50_000) }
        #expect(lb.errorLog.components(separatedBy: "upstream timed out").count - 1 >= 3, "\(lb.errorLog.suffix(1500))")
        #expect(lb.errorLog.contains("request: \"GET /k1 HTTP/1.1\", subrequest: \"/mirror\""), "\(lb.errorLog.suffix(1500))")
        // Only the 43 requests were logged and counted (nginx logs no subrequest).
        let log = lb.file("logs/access.log").split(separator: "\n")
        #expect(log.count == 43 && log.allSatisfy { !$0.contains("/mirror") }, "\(log)")
        let status = try RawClient(port: lb.port).get("/status").text
        // accepts, handled, requests: this one is the 44th request (the mirrors are not counted).
        let counters = status.split(separator: "\n").dropFirst(2).first?.split(separator: " ") ?? []
        #expect(counters.count == 3 && counters[2] == "44", "\(status)")
    }

    @Test func anHTTP2RequestIsMirroredAsHTTP2() throws {
        let backend = try Backend(name: "bk")
        let lb = try LB("""
        events {}
        http {
            access_log off;
            server {
                listen 127.0.0.1:{port} http2;
                location / { mirror /mirror; proxy_pass http://127.0.0.1:\(backend.port); }
                location = /mirror {
                    internal;
                    proxy_pass http://127.0.0.1:\(backend.port)/record$request_uri;
                    proxy_set_header X-Protocol "$server_protocol $http2";
                }
            }
        }
        """)
        let r = try curl(["--http2-prior-knowledge", "--data-binary", "h2 body", "http://127.0.0.1:\(lb.port)/up?q=1"])
        #expect(r.out == "bk /up?q=1", "\(r.err)")
        let records = try DifferentialMirrorTests.records(backend.port, count: 1)
        #expect(records.count == 1)
        let rec = records.first ?? ""
        #expect(rec.contains("\"target\":\"\\/record\\/up?q=1\"") || rec.contains("\"target\":\"/record/up?q=1\""), "\(rec)")
        #expect(rec.contains("\"x-protocol\":\"HTTP\\/2.0 h2c\"") || rec.contains("\"x-protocol\":\"HTTP/2.0 h2c\""), "\(rec)")
        #expect(rec.contains("\"bytes\":7") && rec.contains("\"method\":\"POST\""), "\(rec)")
    }
}
