import Foundation
import Glibc
import Testing

/// The auth service of these tests (Tests/support/auth-service.py): answers by the inherited
/// Authorization header.
final class AuthService {
    let port: Int
    let started: Started

    init(port: Int = freePort()) throws {
        self.port = port
        started = try Started(URL(fileURLWithPath: "/usr/bin/env"),
                              ["python3", Harness.repositoryRoot.appendingPathComponent("Tests/support/auth-service.py").path, "\(port)"])
        guard waitForPort(port) else { throw HarnessError("auth service did not start: \(started.stderr)") }
    }

    deinit { started.stop(grace: 0) }
}

/// auth_request and auth_request_set against Debian's nginx: the same config, auth service,
/// backend and requests give the same statuses and headers.
@Suite(.serialized) struct AuthRequestTests {
    /// Error pages as static files (a `return` would skip the access phase).
    static let root: String = {
        let d = try! Harness.tempDirectory()
        for name in ["401b.html", "denied.html"] {
            try! "the \(name) file\n".write(toFile: d.path + "/" + name, atomically: true, encoding: .utf8)
        }
        chmod(d.path, 0o755)
        return d.path
    }()

    /// The protected locations proxy: nginx's `return` ends a request before its access phase.
    static func config(auth: Int, app: Int, down: Int, workers: Int = 2) -> String {
        """
        worker_processes \(workers);
        error_log stderr info;
        events {}
        http {
            access_log off;
            server {
                listen 127.0.0.1:{port};
                root \(root);
                auth_request /auth;
                auth_request_set $user $upstream_http_x_user;
                auth_request_set $seen $upstream_http_x_seen;
                auth_request_set $auth_status $upstream_status;
                add_header X-User $user always;
                add_header X-Seen $seen always;
                add_header X-Auth-Status $auth_status always;
                location / {
                    proxy_set_header X-User $user;
                    proxy_pass http://127.0.0.1:\(app);
                }
                location /open/ { auth_request off; return 200 "open\\n"; }
                location /down/ { auth_request /auth-down; proxy_pass http://127.0.0.1:\(app); }
                location /slow/ { auth_request /auth-slow; proxy_pass http://127.0.0.1:\(app); }
                location /any-allow/ { satisfy any; allow 127.0.0.1; deny all; proxy_pass http://127.0.0.1:\(app); }
                location /any-deny/ { satisfy any; deny all; proxy_pass http://127.0.0.1:\(app); }
                location /all-deny/ { deny all; proxy_pass http://127.0.0.1:\(app); }
                location /page/ { error_page 401 /401.html; proxy_pass http://127.0.0.1:\(app); }
                location = /401.html { auth_request off; return 200 "please log in\\n"; }
                # The targets of these error pages are checked again, as every location a
                # request enters: the service refuses again (the built-in 401 page), or the
                # address is denied (403).
                location /page2/ { error_page 401 /401b.html; proxy_pass http://127.0.0.1:\(app); }
                location /page3/ { error_page 401 /denied.html; proxy_pass http://127.0.0.1:\(app); }
                location = /denied.html { auth_request off; deny all; }
                location = /auth {
                    internal;
                    proxy_pass http://127.0.0.1:\(auth)/check;
                    proxy_pass_request_body off;
                    proxy_set_header Content-Length "";
                    proxy_set_header X-Original-URI $request_uri;
                }
                location = /auth-down { internal; proxy_pass http://127.0.0.1:\(down)/check; }
                location = /auth-slow {
                    internal;
                    proxy_pass http://127.0.0.1:\(auth)/check;
                    proxy_read_timeout 300ms;
                }
            }
        }
        """
    }

    /// Status, the first WWW-Authenticate, the headers set from the subrequest, and Connection.
    static func ask(_ port: Int, _ path: String, token: String?) throws -> String {
        var args = ["-o", "/dev/null", "-D", "-", "http://127.0.0.1:\(port)\(path)"]
        if let token { args = ["-H", "Authorization: Bearer \(token)"] + args }
        let lines = try curl(args).out.split(separator: "\r\n").map(String.init)
        let status = lines.first?.split(separator: " ").dropFirst().first.map(String.init) ?? "none"
        func header(_ name: String) -> String { lines.first { $0.lowercased().hasPrefix(name + ":") } ?? "" }
        return [status, header("www-authenticate"), header("x-user"), header("x-seen"), header("x-auth-status"), header("connection")]
            .joined(separator: " | ")
    }

    static let cases: [(String, String?)] = [
        ("/x?a=1", "good"), ("/x", "forbidden"), ("/x", "moved"), ("/x", nil), ("/x", "slow-1"),
        ("/open/", nil), ("/down/", "good"), ("/slow/", "slow-2000"),
        ("/any-allow/", "forbidden"), ("/any-deny/", "good"), ("/any-deny/", "forbidden"), ("/any-deny/", nil),
        ("/all-deny/", "good"), ("/page/", nil), ("/page/", "good"), ("/page2/", nil), ("/page3/", nil),
    ]

    @Test func answersAsNginxForEveryAuthServiceAnswer() throws {
        let auth = try AuthService()
        let app = try Backend(name: "app")
        let config = AuthRequestTests.config(auth: auth.port, app: app.port, down: freePort())
        let lb = try LB(config)
        defer { lb.stop() }
        let ours = try AuthRequestTests.cases.map { try AuthRequestTests.ask(lb.port, $0.0, token: $0.1) }
        // What the answers are, so that agreement with nginx cannot hide a common failure.
        #expect(ours[0] == "200 |  | X-User: alice | X-Seen: GET /check content-length=- x-original-uri=/x?a=1 | X-Auth-Status: 200 | Connection: keep-alive")
        #expect(ours[1].hasPrefix("403 |  |  | X-Seen: GET /check"))
        #expect(ours[2].hasPrefix("500 |  |  | X-Seen: GET /check") && ours[2].hasSuffix("X-Auth-Status: 302 | Connection: close"))
        #expect(ours[3].hasPrefix("401 | WWW-Authenticate: Bearer realm=\"lb\" |"))
        #expect(ours[6].hasPrefix("500 |") && ours[6].contains("X-Auth-Status: 502"))
        #expect(ours[7].hasPrefix("500 |") && ours[7].contains("X-Auth-Status: 504"))
        #expect(ours[8].hasPrefix("200 |  |  |  |  |")) // allowed by address: no subrequest at all
        #expect(ours[13].hasPrefix("401 | WWW-Authenticate: Bearer realm=\"lb\" |")) // error_page keeps it
        #expect(ours[15].hasPrefix("401 | WWW-Authenticate: Bearer realm=\"lb\" |"))
        #expect(ours[16].hasPrefix("403 | WWW-Authenticate: Bearer realm=\"lb\" |")) // the challenge stays, as in nginx
        let page2 = try curl(["http://127.0.0.1:\(lb.port)/page2/"]).out
        #expect(page2.contains("<title>401 ") && !page2.contains("401b.html file"))
        #expect(lb.errorLog.contains("auth request unexpected status: 302"))
        #expect(lb.errorLog.contains("upstream timed out (110: Connection timed out) while reading response header from upstream"))
        #expect(lb.errorLog.contains("auth request unexpected status: 502") && lb.errorLog.contains("auth request unexpected status: 504"))
        #expect(lb.errorLog.contains("while connecting to upstream, client: 127.0.0.1, server: , request: \"GET /down/ HTTP/1.1\", subrequest: \"/auth-down\", upstream: "))

        // The user reaches the upstream (proxy_set_header) and the body of the auth answer never
        // reaches the client; every challenge is passed (nginx ≥ 1.23.0; Debian's 1.22 passes one).
        let seen = try curl(["-H", "Authorization: Bearer good", "http://127.0.0.1:\(lb.port)/headers"]).out
        #expect(seen.contains("\"x-user\": \"alice\"") && seen.contains("\"authorization\": \"Bearer good\""))
        let challenged = try curl(["-D", "-", "http://127.0.0.1:\(lb.port)/x"]).out
        #expect(challenged.contains("WWW-Authenticate: Bearer realm=\"lb\"\r\nWWW-Authenticate: Basic realm=\"fallback\"\r\n"))
        #expect(!challenged.contains("auth service body"))

        guard NginxPeer.available else {
            Issue.record("Debian's nginx is not installed")
            return
        }
        let nginx = try NginxPeer(config)
        defer { nginx.stop() }
        for (k, c) in AuthRequestTests.cases.enumerated() {
            let theirs = try AuthRequestTests.ask(nginx.port, c.0, token: c.1)
            #expect(ours[k] == theirs, "\(c.0) with \(c.1 ?? "no token")")
        }
    }

    @Test func aSlowAuthServiceDoesNotHoldTheEventLoop() throws {
        // One worker thread: while the auth service takes its time over one request, another
        // client is answered on the same loop, and then the first one is.
        let auth = try AuthService()
        let app = try Backend(name: "app")
        let lb = try LB(AuthRequestTests.config(auth: auth.port, app: app.port, down: freePort(), workers: 1))
        defer { lb.stop() }
        let slow = try RawClient(port: lb.port)
        try slow.send("GET /x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer slow-1500\r\n\r\n")
        #expect(try RawClient(port: lb.port).get("/open/").status == 200)
        var pending = pollfd(fd: slow.fd, events: Int16(POLLIN), revents: 0)
        #expect(poll(&pending, 1, 0) == 0) // the slow one has not been answered yet
        let r = try slow.readResponse()
        #expect(r.status == 200)
        #expect(r.headers.contains { $0.0.lowercased() == "x-user" && $0.1 == "slow" })
    }

    @Test func aClientLeavingDuringTheSubrequestEndsBoth() throws {
        let auth = try AuthService()
        let app = try Backend(name: "app")
        let lb = try LB(AuthRequestTests.config(auth: auth.port, app: app.port, down: freePort(), workers: 1))
        defer { lb.stop() }
        let gone = try RawClient(port: lb.port)
        try gone.send("GET /x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer slow-500\r\n\r\n")
        gone.close()
        // The connection was closed and logged; the worker goes on serving.
        #expect(try RawClient(port: lb.port).get("/open/").status == 200)
        let next = try RawClient(port: lb.port)
        try next.send("GET /x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer good\r\n\r\n")
        #expect(try next.readResponse().status == 200)
        #expect(lb.started.isRunning && !lb.errorLog.contains("Fatal error"))
    }

    @Test func theAuthServiceConnectionIsKeptAliveInItsUpstreamPool() throws {
        let auth = try AuthService()
        let root = try Harness.tempDirectory()
        try "x\n".write(to: root.appendingPathComponent("x"), atomically: true, encoding: .utf8)
        chmod(root.path, 0o755)
        let lb = try LB("""
            worker_processes 1;
            error_log stderr info;
            events {}
            http {
                access_log off;
                upstream auth { server 127.0.0.1:\(auth.port); keepalive 4; }
                server {
                    listen 127.0.0.1:{port};
                    location / {
                        auth_request /auth;
                        auth_request_set $served $upstream_http_x_connection_requests;
                        add_header X-Served $served always;
                        root \(root.path);
                    }
                    location = /auth {
                        internal;
                        proxy_pass http://auth/check;
                        proxy_http_version 1.1;
                        proxy_set_header Connection "";
                    }
                }
            }
            """)
        defer { lb.stop() }
        // Each client request makes a subrequest: the count on the pooled connection grows
        // instead of starting again at 1.
        let client = try RawClient(port: lb.port)
        var served: [String] = []
        for _ in 0..<3 {
            let r = try client.get("/x", headers: ["Authorization: Bearer good"])
            #expect(r.status == 200)
            served.append(r.headers.first { $0.0.lowercased() == "x-served" }?.1 ?? "")
        }
        #expect(served == ["1", "2", "3"])
    }

    @Test func aRequestBodyWaitsForTheVerdictThenReachesTheUpstreamWhole() throws {
        // curl sends `Expect: 100-continue` for a body this size: the 100 comes from the main
        // request's proxy, after the verdict; the subrequest is a GET without body or length.
        let auth = try AuthService()
        let app = try Backend(name: "app")
        let lb = try LB(AuthRequestTests.config(auth: auth.port, app: app.port, down: freePort()))
        defer { lb.stop() }
        let file = try Harness.tempDirectory().appendingPathComponent("body")
        let body = Data((0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7) })
        try body.write(to: file)
        let r = try curl(["-D", "-", "-H", "Authorization: Bearer good", "--data-binary", "@" + file.path, "http://127.0.0.1:\(lb.port)/upload"])
        #expect(r.out.contains("\"bytes\": 300000"))
        #expect(r.out.contains("X-Seen: GET /check content-length=- x-original-uri=/upload"))
        let refused = try curl(["-o", "/dev/null", "-w", "%{http_code}", "-H", "Authorization: Bearer forbidden",
                                "--data-binary", "@" + file.path, "http://127.0.0.1:\(lb.port)/upload"])
        #expect(refused.out == "403")
    }
}
