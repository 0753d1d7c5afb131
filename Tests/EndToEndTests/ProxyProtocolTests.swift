import Foundation
import Glibc
import Testing

/// A running HAProxy (Debian's package, a test instrument) in TCP mode in front of lb, passing
/// each client connection with a PROXY protocol header (`send-proxy` or `send-proxy-v2`).
final class HAProxy {
    let port: Int
    let started: Started

    convenience init(to lbPort: Int, send: String, port: Int = freePort()) throws {
        try self.init(server: "127.0.0.1:\(lbPort)", send: send, port: port)
    }

    /// `server`: `HOST:PORT`, or the path of a unix-domain socket.
    init(server: String, send: String, port: Int = freePort()) throws {
        self.port = port
        let dir = try Harness.tempDirectory()
        let cfg = dir.appendingPathComponent("haproxy.cfg")
        try """
        global
            maxconn 100
        defaults
            mode tcp
            timeout connect 5s
            timeout client 30s
            timeout server 30s
        frontend f
            bind 127.0.0.1:\(port)
            default_backend b
        backend b
            server lb \(server) \(send)

        """.write(to: cfg, atomically: true, encoding: .utf8)
        started = try Started(URL(fileURLWithPath: "/usr/sbin/haproxy"), ["-db", "-f", cfg.path])
        guard waitUntil(timeout: 10, { !started.isRunning || (try? RawClient(port: port, timeout: 1)) != nil }), started.isRunning else { throw HarnessError("haproxy did not start: \(started.stderr)") }
    }

    deinit { started.stop() }
}

/// `listen … proxy_protocol`: the PROXY protocol header (v1 and v2, from HAProxy and from raw
/// sockets), `$proxy_protocol_*`, `real_ip_header proxy_protocol`, TLS after the header, and
/// connections without a valid header closed as nginx closes them.
@Suite(.serialized) struct ProxyProtocolTests {
    static let show = "pp=$proxy_protocol_addr:$proxy_protocol_port server=$proxy_protocol_server_addr:$proxy_protocol_server_port remote=$remote_addr realip=$realip_remote_addr"

    static func config(_ listen: String = "proxy_protocol", extra: String = "", location: String = "") -> String {
        """
        worker_processes 1;
        error_log stderr info;
        events {}
        http {
            \(extra)
            server {
                listen 127.0.0.1:{port} \(listen);
                location / { \(location) return 200 "\(show)\\n"; }
            }
        }
        """
    }

    /// A client from 127.0.0.2 through HAProxy: the header carries that address and the client's
    /// port; `$remote_addr` stays HAProxy's (127.0.0.1) without realip.
    @Test(arguments: ["send-proxy", "send-proxy-v2"])
    func haproxyHeaderGivesTheClientsAddresses(_ send: String) throws {
        let lb = try LB(Self.config())
        let hap = try HAProxy(to: lb.port, send: send)
        let client = try RawClient(port: hap.port, source: "127.0.0.2")
        let localPort = Self.localPort(client.fd)
        let r = try client.get("/")
        #expect(r.status == 200)
        #expect(r.text == "pp=127.0.0.2:\(localPort) server=127.0.0.1:\(hap.port) remote=127.0.0.1 realip=127.0.0.1\n")
        // Keep-alive: the header is read once, the second request on the connection has the same.
        #expect(try client.get("/").text == r.text)
    }

    /// `real_ip_header proxy_protocol`: from a trusted proxy the client is the header's source
    /// (address and port); from an untrusted one the connection's peer stays.
    @Test func realIPFromTheHeaderOnlyForTrustedProxies() throws {
        // At http level: nginx's realip runs in its post-read phase, before the rewrite phase's
        // `return` (a location-level realip runs in preaccess, after a `return` has answered).
        let lb = try LB(Self.config(extra: "set_real_ip_from 127.0.0.1; real_ip_header proxy_protocol;", location: "add_header X-Port $remote_port;"))
        let hap = try HAProxy(to: lb.port, send: "send-proxy-v2")
        let client = try RawClient(port: hap.port, source: "127.0.0.2")
        let localPort = Self.localPort(client.fd)
        let r = try client.get("/")
        #expect(r.text == "pp=127.0.0.2:\(localPort) server=127.0.0.1:\(hap.port) remote=127.0.0.2 realip=127.0.0.1\n")
        #expect(r.header("X-Port") == "\(localPort)")
        let untrusted = try LB(Self.config(extra: "set_real_ip_from 10.0.0.0/8; real_ip_header proxy_protocol;"))
        let hap2 = try HAProxy(to: untrusted.port, send: "send-proxy-v2")
        let u = try RawClient(port: hap2.port, source: "127.0.0.2").get("/")
        #expect(u.text.hasPrefix("pp=127.0.0.2:"))
        #expect(u.text.hasSuffix("remote=127.0.0.1 realip=127.0.0.1\n"), "\(u.text)")
        // In the location only: the location's `return` answers before realip would run, as nginx.
        let located = try LB(Self.config(location: "set_real_ip_from 127.0.0.1; real_ip_header proxy_protocol;"))
        let hap3 = try HAProxy(to: located.port, send: "send-proxy-v2")
        let l = try RawClient(port: hap3.port, source: "127.0.0.2").get("/")
        #expect(l.text.hasSuffix("remote=127.0.0.1 realip=127.0.0.1\n"), "\(l.text)")
    }

    /// On a TLS listener the header comes before the ClientHello: HAProxy passes the TLS bytes
    /// through (TCP mode) after its header, curl verifies lb's certificate end to end.
    @Test(arguments: ["send-proxy", "send-proxy-v2"])
    func headerBeforeTLSHandshake(_ send: String) throws {
        let lb = try LB(Self.config("ssl proxy_protocol", extra: TestCerts.pair("a-ec")))
        let hap = try HAProxy(to: lb.port, send: send)
        let r = try curl(["--cacert", TestCerts.path("ca.crt"), "--resolve", "a.test:\(hap.port):127.0.0.1", "https://a.test:\(hap.port)/"])
        #expect(r.status == 0, "\(r.err) \(lb.errorLog)")
        #expect(r.out.hasPrefix("pp=127.0.0.1:"), "\(r.out)")
        #expect(r.out.contains(" server=127.0.0.1:\(hap.port) remote=127.0.0.1"))
    }

    /// HAProxy in front of a unix-domain listener (a common pairing): the header brings the TCP
    /// client's address over the unix socket, where the connection itself has none.
    @Test func haproxyToAUnixListener() throws {
        let sock = try Harness.tempDirectory().appendingPathComponent("pp.sock").path
        let lb = try LB("""
        worker_processes 1;
        events {}
        http {
            server {
                listen 127.0.0.1:{port};
                listen unix:\(sock) proxy_protocol;
                set_real_ip_from unix:;
                real_ip_header proxy_protocol;
                location / { return 200 "\(Self.show)\\n"; }
            }
        }
        """)
        _ = lb
        let hap = try HAProxy(server: sock, send: "send-proxy-v2")
        let client = try RawClient(port: hap.port, source: "127.0.0.2")
        let localPort = Self.localPort(client.fd)
        #expect(try client.get("/").text == "pp=127.0.0.2:\(localPort) server=127.0.0.1:\(hap.port) remote=127.0.0.2 realip=unix:\n")
    }

    /// Raw sockets: a header split over several writes is read whole; the bytes after it in the
    /// same write are the request.
    @Test func headerSplitOverWritesAndFollowedByTheRequest() throws {
        let lb = try LB(Self.config())
        let c = try RawClient(port: lb.port)
        try c.send("PROXY TCP6 2001:db8::7 ")
        usleep(20_000) // let lb see the first part alone (an ordering hint, not a readiness wait)
        try c.send("::1 4242 ")
        usleep(20_000)
        try c.send("443\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
        let r = try c.readResponse()
        #expect(r.text == "pp=2001:db8::7:4242 server=::1:443 remote=127.0.0.1 realip=127.0.0.1\n")
        // v2 LOCAL (a proxy's own health check): accepted, no addresses.
        let local = try RawClient(port: lb.port)
        try local.send([0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, 0x20, 0x00, 0x00, 0x00]
                       + Array("GET / HTTP/1.1\r\nHost: a\r\n\r\n".utf8))
        #expect(try local.readResponse().text == "pp=: server=: remote=127.0.0.1 realip=127.0.0.1\n")
    }

    /// No header, a broken one, or one too long: the connection is closed without a response, and
    /// the error log says why in nginx's words.
    @Test(arguments: [
        "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 99999 80\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "PROXY UNKNOWN " + String(repeating: "x", count: 120) + "\r\n",
    ])
    func connectionsWithoutAValidHeaderAreClosed(_ bytes: String) throws {
        let lb = try LB(Self.config())
        let c = try RawClient(port: lb.port)
        try c.send(bytes)
        #expect(c.isClosedByPeer())
        #expect(lb.errorLog.contains("broken header: \""), "\(lb.errorLog)")
        // The listener still serves a correct client.
        let ok = try RawClient(port: lb.port)
        try ok.send("PROXY TCP4 192.0.2.9 192.0.2.1 1000 80\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(try ok.readResponse().text.hasPrefix("pp=192.0.2.9:1000 "))
    }

    /// A connection that sends nothing is closed after `client_header_timeout`.
    @Test func silentConnectionTimesOut() throws {
        let lb = try LB(Self.config(extra: "client_header_timeout 1s;"))
        let c = try RawClient(port: lb.port)
        try c.send("PROXY TCP4 1.2")
        #expect(c.isClosedByPeer())
        #expect(lb.errorLog.contains("client timed out (110: Connection timed out) while reading PROXY protocol"))
    }

    static func localPort(_ fd: Int32) -> Int {
        var a = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: a.sin_port))
    }
}
