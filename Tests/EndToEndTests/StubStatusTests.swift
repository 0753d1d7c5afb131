import Foundation
import Testing

/// `stub_status`: nginx's exact text, with the counters nginx gives for the same connections
/// (checked against Debian's nginx 1.22: an idle connection that never sent a byte and an idle
/// keep-alive one are "Waiting", a connection with half a head is "Reading" and already counts
/// as a request, the status request itself is "Writing").
@Suite struct StubStatusTests {
    static let config = """
    worker_processes 1;
    events {}
    http {
        access_log off;
        server {
            listen 127.0.0.1:{port};
            location = /basic_status { stub_status; }
            location /old { stub_status on; }
            location /vars { return 200 "$connections_active $connections_reading $connections_writing $connections_waiting\n"; }
            location / { return 200 "ok\\n"; }
        }
    }
    """

    /// "Active connections: N \\nserver accepts handled requests\\n A H R \\nReading: r Writing: w Waiting: W \\n"
    func parse(_ text: String) -> [Int]? {
        let pattern = #"^Active connections: (\d+) \nserver accepts handled requests\n (\d+) (\d+) (\d+) \nReading: (\d+) Writing: (\d+) Waiting: (\d+) \n$"#
        guard let re = try? NSRegularExpression(pattern: pattern),
              let m = re.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) else { return nil }
        return (1...7).map { Int((text as NSString).substring(with: m.range(at: $0)))! }
    }

    @Test func countsConnectionsAndRequestsAsNginx() throws {
        let lb = try LB(Self.config)
        let before = try #require(parse(try RawClient(port: lb.port).get("/basic_status").text))
        // Let the connection above close on lb's side before counting.
        #expect(waitUntil { (try? self.parse(RawClient(port: lb.port).get("/basic_status").text)?[0]) == 1 })
        let base = try #require(parse(try RawClient(port: lb.port).get("/basic_status").text))
        #expect(base[1] == base[2], "lb closes no accepted connection for lack of resources")
        let idle = try RawClient(port: lb.port)                    // never sends a byte
        let keepAlive = try RawClient(port: lb.port)
        #expect(try keepAlive.get("/").text == "ok\n")            // then idle, kept alive
        let partial = try RawClient(port: lb.port)
        try partial.send("GET / HTTP/1.1\r\nHo")                  // half a head
        let status = try RawClient(port: lb.port)
        var r = try status.get("/basic_status")
        var statusRequests = 1
        // The half head may not have been read yet when the status request is answered.
        for _ in 0..<50 where parse(r.text)?[4] != 1 {
            usleep(20_000)
            r = try status.get("/basic_status")
            statusRequests += 1
        }
        #expect(r.status == 200)
        #expect(r.header("Content-Type") == "text/plain")
        let c = try #require(parse(r.text), "\(r.text)")
        #expect(c[0] == 4, "active: idle, keep-alive, partial, status")
        #expect(c[1] == base[1] + 4 && c[2] == c[1])
        #expect(c[3] == base[3] + 2 + statusRequests, "requests: keep-alive's, the partial one, the status ones")
        #expect(c[4] == 1 && c[5] == 1 && c[6] == 2, "reading 1, writing 1, waiting 2: \(r.text)")
        #expect(try status.get("/vars").text == "4 1 1 2\n")
        _ = (idle, keepAlive, partial)
        // The pre-1.7.5 form, and only GET and HEAD.
        #expect(parse(try RawClient(port: lb.port).get("/old").text) != nil)
        let post = try RawClient(port: lb.port)
        try post.send("POST /basic_status HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        #expect(try post.readResponse().status == 405)
        _ = before
    }

    @Test func refusedWhereNginxRefusesIt() throws {
        let dir = try Harness.tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let conf = dir.appendingPathComponent("s.conf")
        try "events {}\nhttp { server { location / { stub_status maybe; } } }\n".write(to: conf, atomically: true, encoding: .utf8)
        let r = try Harness.run("lb", ["-t", "-c", conf.path])
        #expect(r.status == 1)
        #expect(r.stderr.contains("\"stub_status\" directive, it must be \"on\" or \"off\" in \(conf.path):2"), "\(r.stderr)")
    }
}
