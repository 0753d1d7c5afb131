import Foundation
import Glibc
import Testing

/// Hostile or broken clients hurt nobody else: a slow reader is timed by send_timeout and never
/// blamed on a healthy upstream, a response ended by send_timeout is still logged, and a map
/// that refers to itself fails its request with 500 instead of taking the process down.
@Suite(.serialized) struct HostileClientTests {
    /// A client that will not read for a while: 32 MiB responses are far more than the socket
    /// buffers hold, so lb's writes block. (Shrinking SO_RCVBUF after connect makes the kernel
    /// crawl instead, which would measure the kernel, not lb.)
    func slowClient(port: Int) throws -> RawClient {
        try RawClient(port: port, timeout: 20)
    }

    @Test func aSlowReaderIsNotBlamedOnTheUpstream() throws {
        let b1 = try Backend(name: "b1"), b2 = try Backend(name: "b2")
        let lb = try LB("""
        events {}
        http {
            access_log off;
            upstream two { server 127.0.0.1:\(b1.port) max_fails=1 fail_timeout=30s; server 127.0.0.1:\(b2.port) max_fails=1 fail_timeout=30s; }
            server {
                listen 127.0.0.1:{port};
                proxy_read_timeout 1s;
                send_timeout 20s;
                location / { proxy_pass http://two; }
            }
        }
        """)
        defer { lb.stop() }
        let size = 32 << 20
        let c = try slowClient(port: lb.port)
        defer { c.close() }
        try c.send("GET /big?bytes=\(size) HTTP/1.1\r\nHost: x\r\n\r\n")
        // Read nothing for well over proxy_read_timeout while the upstream has sent all it can.
        usleep(2_500_000)
        // Count the bytes without keeping them (RawClient's buffer is for small responses).
        var got: [UInt8] = []
        var total = 0
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(c.fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            if got.count < 256 { got += chunk[0..<min(n, 256)] }
            total += n
            if let h = got.firstRange(of: Array("\r\n\r\n".utf8)), total >= h.upperBound + size { break }
        }
        let head = String(decoding: got, as: UTF8.self)
        #expect(head.hasPrefix("HTTP/1.1 200 "))
        let headLength = got.firstRange(of: Array("\r\n\r\n".utf8))?.upperBound ?? 0
        #expect(total - headLength == size)
        #expect(!lb.errorLog.contains("upstream timed out"))
        #expect(!lb.errorLog.contains("temporarily disabled"))
        // Both peers still take requests.
        var seen = Set<String>()
        for _ in 0..<6 {
            let n = try RawClient(port: lb.port).get("/who")
            #expect(n.status == 200)
            if let b = n.header("X-Backend") { seen.insert(b) }
        }
        #expect(seen == ["b1", "b2"])
    }

    @Test func aResponseEndedBySendTimeoutIsLogged() throws {
        let b = try Backend(name: "b1")
        let lb = try LB("""
        events {}
        http {
            log_format short "$request $status";
            server {
                listen 127.0.0.1:{port};
                access_log access.log short;
                send_timeout 1s;
                location / { proxy_pass http://127.0.0.1:\(b.port); }
            }
        }
        """)
        defer { lb.stop() }
        let c = try slowClient(port: lb.port)
        defer { c.close() }
        try c.send("GET /big?bytes=\(32 << 20) HTTP/1.1\r\nHost: x\r\n\r\n")
        // Never read: lb gives up after send_timeout and must still write the log line.
        let deadline = Date().addingTimeInterval(10)
        while !lb.file("access.log").contains("GET /big") && Date() < deadline { usleep(50_000) }
        #expect(lb.file("access.log").contains("GET /big?bytes=\(32 << 20) HTTP/1.1 200"))
    }

    @Test func aMapThatRefersToItselfFailsTheRequestNotTheProcess() throws {
        let lb = try LB("""
        events {}
        http {
            access_log off;
            map $http_x $a { default $a; }
            map $http_y $b { default "[$c]"; }
            map $http_y $c { default "<$b>"; }
            server {
                listen 127.0.0.1:{port};
                location /self { return 200 "$a"; }
                location /pair { return 200 "$b"; }
                location /ok { return 200 "fine"; }
            }
        }
        """)
        defer { lb.stop() }
        #expect(try RawClient(port: lb.port).get("/self").status == 500)
        #expect(try RawClient(port: lb.port).get("/pair").status == 500)
        let ok = try RawClient(port: lb.port).get("/ok")
        #expect(ok.status == 200)
        #expect(ok.text == "fine")
        #expect(lb.errorLog.contains("cycle while evaluating variable \"a\""))
    }

    @Test func aFinRightAfterAPartialHeadIsNeverMissed() throws {
        // An upstream that sends half a response head and closes at once (the FIN often arrives
        // with the bytes): every request gets 502 at once, never a wait for proxy_read_timeout.
        let port = freePort()
        let script = """
        import socket
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", \(port))); s.listen(64); print("ready", flush=True)
        while True:
            c, _ = s.accept()
            c.recv(65536)
            c.sendall(b"HTTP/1.1 200 OK\\r\\nContent-")
            c.close()
        """
        let half = try Started(URL(fileURLWithPath: "/usr/bin/env"), ["python3", "-c", script])
        defer { half.stop(grace: 0) }
        #expect(waitForPort(port))
        let lb = try LB("""
        events {}
        http {
            access_log off;
            server {
                listen 127.0.0.1:{port};
                proxy_read_timeout 30s;
                client_header_timeout 30s;
                location / { proxy_pass http://127.0.0.1:\(port); }
            }
        }
        """)
        defer { lb.stop() }
        for i in 0..<30 {
            let c = try RawClient(port: lb.port, timeout: 5)
            #expect(try c.get("/x\(i)").status == 502, "request \(i)")
        }
        // A client's partial head followed by its FIN: lb closes at once, not after the timeout.
        for i in 0..<10 {
            let c = try RawClient(port: lb.port, timeout: 5)
            try c.send("GET /partial HTTP/1.1\r\nHost: x\r\nX-Half: ")
            shutdown(c.fd, Int32(SHUT_WR))
            let t0 = Date()
            #expect(c.isClosedByPeer(), "client \(i)")
            #expect(Date().timeIntervalSince(t0) < 4, "client \(i)")
        }
    }

    @Test func realIPFromTrustedProxiesAsNginx() throws {
        // Expected answers are Debian nginx 1.22.1's for the same servers (see RealIPTests).
        let dir = try Harness.tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try "hi".write(to: dir.appendingPathComponent("f.txt"), atomically: true, encoding: .utf8)
        let p2 = freePort(), p3 = freePort()
        let lb = try LB("""
        events {}
        http {
            access_log off;
            server {
                listen 127.0.0.1:{port};
                set_real_ip_from 127.0.0.1; set_real_ip_from 10.0.0.0/8;
                location /xri { return 200 "$remote_addr|$realip_remote_addr|$remote_port"; }
            }
            server {
                listen 127.0.0.1:\(p2);
                set_real_ip_from 127.0.0.1; set_real_ip_from 10.0.0.0/8;
                real_ip_header X-Forwarded-For;
                location /xff { return 200 "$remote_addr|$realip_remote_addr|$remote_port"; }
                location /deny2 { deny 203.0.113.9; alias \(dir.path)/; }
                location /pxff { return 200 "$proxy_add_x_forwarded_for"; }
            }
            server {
                listen 127.0.0.1:\(p3);
                set_real_ip_from 127.0.0.1; set_real_ip_from 10.0.0.0/8;
                real_ip_header X-Forwarded-For; real_ip_recursive on;
                location /rec { return 200 "$remote_addr|$realip_remote_addr"; }
            }
        }
        """)
        defer { lb.stop() }
        #expect(waitForPort(p2) && waitForPort(p3))
        func get(_ port: Int, _ path: String, _ header: String) throws -> RawClient.Response {
            try RawClient(port: port).get(path, headers: [header])
        }
        #expect(try get(lb.port, "/xri", "X-Real-IP: 203.0.113.9").text == "203.0.113.9|127.0.0.1|")
        #expect(try get(lb.port, "/xri", "X-Real-IP: garbage").text.hasPrefix("127.0.0.1|127.0.0.1|"))
        #expect(try get(p2, "/xff", "X-Forwarded-For: 1.1.1.1, 10.0.0.5").text == "10.0.0.5|127.0.0.1|")
        #expect(try get(p2, "/xff", "X-Forwarded-For: 1.1.1.1, 203.0.113.9:8080").text == "203.0.113.9|127.0.0.1|8080")
        #expect(try get(p3, "/rec", "X-Forwarded-For: 1.1.1.1, 2.2.2.2, 10.0.0.5, 10.1.1.1").text == "2.2.2.2|127.0.0.1")
        #expect(try get(p3, "/rec", "X-Forwarded-For: 10.0.0.7, 10.0.0.5").text == "10.0.0.7|127.0.0.1")
        #expect(try get(p2, "/deny2/f.txt", "X-Forwarded-For: 203.0.113.9").status == 403)
        #expect(try get(p2, "/deny2/f.txt", "X-Forwarded-For: 203.0.113.10").status == 200)
        #expect(try get(p2, "/pxff", "X-Forwarded-For: 1.1.1.1, 203.0.113.9").text == "1.1.1.1, 203.0.113.9, 203.0.113.9")
    }
}
