import Foundation
import Glibc
import Testing

/// Unix-domain sockets where nginx has them: `listen unix:PATH` (the file made at start, mode
/// 0666, a stale one replaced, kept across reloads, removed at exit), `server unix:PATH` in
/// upstream groups and `proxy_pass http://unix:PATH[:/uri]`, with curl's `--unix-socket` as the
/// client. The unix-domain backends are servers of the same lb (`return` on a unix listener).
@Suite(.serialized) struct UnixSocketTests {
    func socketPath(_ name: String) throws -> String {
        try Harness.tempDirectory().appendingPathComponent(name).path
    }

    func viaUnix(_ path: String, _ uri: String = "/", _ extra: [String] = []) throws -> (status: Int32, out: String, err: String) {
        try curl(["--unix-socket", path] + extra + ["http://localhost\(uri)"])
    }

    func mode(_ path: String) -> mode_t? {
        var st = stat()
        guard lstat(path, &st) == 0 else { return nil }
        return st.st_mode
    }

    func inode(_ path: String) -> UInt? {
        var st = stat()
        guard lstat(path, &st) == 0 else { return nil }
        return UInt(st.st_ino)
    }

    @Test func unixListenerServesWithNginxsAddressVariables() throws {
        let sock = try socketPath("lb.sock")
        let lb = try LB("""
        worker_processes 1;
        events {}
        http {
            server {
                listen 127.0.0.1:{port};
                listen unix:\(sock);
                location / { return 200 "remote=$remote_addr port=[$remote_port] server=$server_addr sport=[$server_port]\\n"; }
            }
        }
        """)
        let r = try viaUnix(sock)
        #expect(r.out == "remote=unix: port=[] server=unix:\(sock) sport=[]\n", "\(r.err)")
        // The socket file as nginx leaves it: a socket anyone may connect to.
        let m = try #require(mode(sock))
        #expect(m & S_IFMT == S_IFSOCK)
        #expect(m & 0o777 == 0o666)
        // TCP on the same server is unchanged.
        let tcp = try curl(["http://127.0.0.1:\(lb.port)/"])
        #expect(tcp.out.hasPrefix("remote=127.0.0.1 port=["))
        #expect(tcp.out.hasSuffix("server=127.0.0.1 sport=[\(lb.port)]\n"))
        lb.stop()
        #expect(mode(sock) == nil, "the socket file is removed at exit")
    }

    /// A socket file nobody accepts on (left by a crash) is replaced; one a live process listens
    /// on is not taken over: lb refuses to start, as nginx does (EADDRINUSE).
    @Test func staleSocketFileIsReplacedButALiveOneIsNot() throws {
        let sock = try socketPath("stale.sock")
        let holder = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(holder) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        _ = withUnsafeMutableBytes(of: &addr.sun_path) { sock.utf8CString.withUnsafeBytes($0.copyMemory) }
        let len = socklen_t(MemoryLayout<sockaddr_un>.size)
        #expect(withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(holder, $0, len) } } == 0)
        #expect(listen(holder, 1) == 0)
        let config = """
        worker_processes 1;
        events {}
        http { server { listen 127.0.0.1:{port}; listen unix:\(sock); location / { return 200 "fresh\\n"; } } }
        """
        // Live: refused, and the holder's file is left alone.
        let refused = try LB(config, waitReady: false)
        #expect(refused.started.wait(timeout: 10))
        #expect(refused.errorLog.contains("Address already in use"), "\(refused.errorLog)")
        #expect(mode(sock) != nil)
        // Stale: the holder is gone, its file stays behind; lb replaces it.
        close(holder)
        #expect(mode(sock).map { $0 & S_IFMT == S_IFSOCK } == true)
        let lb = try LB(config)
        #expect(try viaUnix(sock).out == "fresh\n")
        lb.stop()
    }

    /// SIGHUP keeps the socket (same file, same inode, still served with the new config); a reload
    /// that drops the listen removes the file.
    @Test func reloadKeepsTheSocketAndRemovesADroppedOne() throws {
        let sock = try socketPath("keep.sock")
        let config = { (text: String, unix: Bool) in """
        worker_processes 1;
        error_log stderr notice;
        events {}
        http { server { listen 127.0.0.1:{port}; \(unix ? "listen unix:\(sock);" : "") location / { return 200 "\(text)\\n"; } } }
        """ }
        let lb = try LB(config("one", true))
        #expect(try viaUnix(sock).out == "one\n")
        let before = try #require(inode(sock))
        try lb.rewrite(config("two", true))
        lb.reloadAndWait()
        #expect(inode(sock) == before)
        #expect(try viaUnix(sock).out == "two\n")
        try lb.rewrite(config("three", false))
        lb.reloadAndWait()
        #expect(mode(sock) == nil)
        #expect(try curl(["http://127.0.0.1:\(lb.port)/"]).out == "three\n")
    }

    /// An upstream group of unix-domain servers: weights, `$upstream_addr` as `unix:PATH`, and a
    /// dead one (no file) passed over with its failure counted, as a refused TCP peer would be.
    @Test func upstreamOfUnixServersBalancesByWeightAndSkipsADeadOne() throws {
        let a = try socketPath("a.sock"), b = try socketPath("b.sock"), dead = try socketPath("dead.sock")
        let lb = try LB("""
        worker_processes 1;
        events {}
        http {
            log_format up "$upstream_addr";
            upstream app {
                server unix:\(a) weight=2;
                server unix:\(b);
            }
            upstream withdead {
                server unix:\(dead) max_fails=1 fail_timeout=30s;
                server unix:\(a);
            }
            server { listen unix:\(a); location / { return 200 "a"; } }
            server { listen unix:\(b); location / { return 200 "b"; } }
            server {
                listen 127.0.0.1:{port};
                access_log logs/up.log up;
                location / { proxy_pass http://app; }
                location /dead/ { proxy_pass http://withdead; }
            }
        }
        """)
        let client = try RawClient(port: lb.port)
        var seq = ""
        for _ in 0..<6 {
            let r = try client.get("/")
            #expect(r.status == 200)
            seq += r.text
        }
        // Smooth weighted round-robin for {2,1}: a b a, twice.
        #expect(seq == "abaaba")
        let first = try client.get("/dead/")
        #expect(first.status == 200 && first.text == "a")
        // max_fails=1: the dead server is out for fail_timeout; the next request goes straight to a.
        #expect(try client.get("/dead/").text == "a")
        let ua = "unix:\(a)", ub = "unix:\(b)"
        let want = [ua, ub, ua, ua, ub, ua, "unix:\(dead), \(ua)", ua]
        #expect(waitUntil { lb.file("logs/up.log").split(separator: "\n").count == want.count })
        #expect(lb.file("logs/up.log").split(separator: "\n").map(String.init) == want)
        #expect(lb.errorLog.contains("connect() failed (2: No such file or directory)"), "\(lb.errorLog)")
    }

    /// Active health checks probe unix-domain servers too: the one whose check fails goes down and
    /// traffic stays on the healthy one.
    @Test func healthChecksProbeUnixServers() throws {
        let good = try socketPath("good.sock"), bad = try socketPath("bad.sock")
        let lb = try LB("""
        worker_processes 1;
        error_log stderr info;
        events {}
        http {
            upstream app {
                server unix:\(good);
                server unix:\(bad);
                health_check uri=/hc interval=200ms fails=1 passes=1;
            }
            server { listen unix:\(good); location / { return 200 "good"; } }
            server { listen unix:\(bad); location / { return 200 "bad"; } location /hc { return 503; } }
            server { listen 127.0.0.1:{port}; location / { proxy_pass http://app; } }
        }
        """)
        #expect(waitUntil(timeout: 5) { lb.errorLog.contains("peer unix:\(bad) is down") }, "\(lb.errorLog)")
        #expect(!lb.errorLog.contains("peer unix:\(good) is down"))
        let client = try RawClient(port: lb.port)
        #expect(try (0..<4).map { _ in try client.get("/").text } == ["good", "good", "good", "good"])
    }

    /// `proxy_pass http://unix:PATH:/uri` replaces the location prefix with the URI;
    /// `proxy_pass http://unix:PATH` passes the request URI unchanged. Both send `Host: localhost`.
    @Test func proxyPassToAUnixURLWithAndWithoutURI() throws {
        let app = try socketPath("app.sock")
        let lb = try LB("""
        worker_processes 1;
        events {}
        http {
            server { listen unix:\(app); location / { return 200 "uri=$request_uri host=$host\\n"; } }
            server {
                listen 127.0.0.1:{port};
                location /with/ { proxy_pass http://unix:\(app):/inner/; }
                location /plain/ { proxy_pass http://unix:\(app); }
                location /var/ { set $sock \(app); proxy_pass http://unix:$sock:/v$uri$is_args$args; }
                location /varplain/ { proxy_pass http://unix:$arg_s; }
            }
        }
        """)
        #expect(try curl(["http://127.0.0.1:\(lb.port)/with/x?q=1"]).out == "uri=/inner/x?q=1 host=localhost\n")
        #expect(try curl(["http://127.0.0.1:\(lb.port)/plain/y"]).out == "uri=/plain/y host=localhost\n")
        // With variables too, as nginx: the path up to the next colon, Host `localhost`.
        #expect(try curl(["http://127.0.0.1:\(lb.port)/var/z?k=2"]).out == "uri=/v/var/z?k=2 host=localhost\n")
        #expect(try curl(["http://127.0.0.1:\(lb.port)/varplain/w?s=\(app)"]).out == "uri=/varplain/w?s=\(app) host=localhost\n")
        #expect(try curl(["-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(lb.port)/varplain/w?s="]).out == "500")
    }

    /// The stack's app instances on unix-domain sockets (`socket PATH` with `$instance`, as
    /// gunicorn's `--bind unix:`): each started on its own socket, ready when it accepts there,
    /// and the upstream's `service` members are those sockets.
    @Test func stackInstancesListenOnUnixSockets() throws {
        let dir = try Harness.tempDirectory().path
        let lb = try LB("""
        worker_processes 1;
        error_log stderr notice;
        events {}
        stack {
            service app {
                command lb-app --socket $socket --name app-$instance --store-port 1;
                scale 2;
                socket \(dir)/app-$instance.sock;
            }
        }
        http {
            log_format up "$upstream_addr";
            upstream app { service app; }
            server { listen 127.0.0.1:{port}; access_log logs/up.log up; location / { proxy_pass http://app; } }
        }
        """)
        let client = try RawClient(port: lb.port)
        let names = try (0..<4).map { _ in try client.get("/").text }
        #expect(names.filter { $0.hasPrefix("Hello World! I am app-1 ") }.count == 2, "\(names)")
        #expect(names.filter { $0.hasPrefix("Hello World! I am app-2 ") }.count == 2, "\(names)")
        #expect(mode("\(dir)/app-1.sock").map { $0 & S_IFMT == S_IFSOCK } == true)
        #expect(waitUntil { lb.file("logs/up.log").split(separator: "\n").count == 4 })
        #expect(Set(lb.file("logs/up.log").split(separator: "\n").map(String.init)) == ["unix:\(dir)/app-1.sock", "unix:\(dir)/app-2.sock"])
    }

    @Test func badUnixAddressesAreRefusedAtLoad() throws {
        func check(_ line: String, text: String? = nil) throws -> String {
            let dir = try Harness.tempDirectory()
            try (text ?? "events {} http { \(line) }").write(to: dir.appendingPathComponent("t.conf"), atomically: true, encoding: .utf8)
            return try Harness.run("lb", ["-t", "-p", dir.path, "-c", "t.conf"]).stderr
        }
        #expect(try check("server { listen unix:; }").contains("no path in the unix domain socket in \"unix:\" of the \"listen\" directive"))
        let long = "/" + String(repeating: "x", count: 120)
        #expect(try check("server { listen unix:\(long); }").contains("too long path in the unix domain socket"))
        #expect(try check("upstream u { server unix:; } server { listen 1; }").contains("no path in the unix domain socket in upstream \"unix:\""))
        // A stack service with several instances needs one socket each.
        let stack = "events {} stack { service a { command lb-app; scale 2; socket /tmp/a.sock; } } http { }"
        #expect(try check("", text: stack).contains("the \"socket\" of service \"a\" needs \"$instance\" for \"scale\" 2"))
    }
}
