import Foundation
import Glibc
import Testing

/// auth_basic and satisfy against Debian's nginx: the same htpasswd file (every scheme), the same
/// config, the same curl requests give the same statuses and challenges.
@Suite(.serialized) struct AuthTests {
    /// Each user's password is `secret`; hashes from `openssl passwd` and libxcrypt.
    static let users: [(String, String)] = [
        ("apr1", "$apr1$saltsalt$LrttParrLPdxvgutaSXWJ0"),
        ("md5", "$1$abcdefgh$cHJi5PXp/ki/ktXzqlk6I1"),
        ("sha256", "$5$abcdefgh$gruCpC7VkOTspMQTTSAR8mtlO9Upms.fwqE5y16JVM."),
        ("sha512", "$6$abcdefghijklmnop$J/AWykHqo2Tx5UtavGnFc3ytI33la50JpzLTarSWVhkIXK6wOjNwwZjsrIw2UgmrER2EKrSHCeQyAINEEXAk1/"),
        ("bcrypt", "$2y$05$abcdefghijklmnopqrstuuOQiyCxlgf/oeuTqixKmWdcYUh4Hjl0a"),
        ("yescrypt", "$y$j9T$abcdefgh$IUWJt2doU4Kf6E/JP1UkAT3S5O3Q7SSA8SJirXIlEu9"),
        ("sha1", "{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ="),
        ("plain", "{PLAIN}secret"),
    ]

    /// The document root and the user file, shared by lb and nginx.
    static let root: String = {
        let d = try! Harness.tempDirectory()
        for sub in ["", "/open", "/any", "/all", "/missing"] {
            try? FileManager.default.createDirectory(atPath: d.path + sub, withIntermediateDirectories: true)
            try! "ok\n".write(toFile: d.path + sub + "/index.html", atomically: true, encoding: .utf8)
        }
        let lines = ["# users for lb's AuthTests"] + users.map { "\($0.0):\($0.1)" } + ["commented:{PLAIN}secret:a comment"]
        try! (lines.joined(separator: "\n") + "\n").write(toFile: d.path + "/htpasswd", atomically: true, encoding: .utf8)
        chmod(d.path, 0o755)
        return d.path
    }()

    static var config: String {
        """
        worker_processes 2;
        error_log stderr info;
        events {}
        http {
            access_log off;
            server {
                listen 127.0.0.1:{port};
                root \(root);
                auth_basic "Closed \\"site\\"";
                auth_basic_user_file \(root)/htpasswd;
                add_header X-User "$remote_user" always;
                location / { }
                location /open/ { auth_basic off; }
                location /any/ { satisfy any; deny all; }
                location /all/ { deny all; }
                location /missing/ { auth_basic_user_file \(root)/nothing-here; }
                location /local/ { satisfy any; allow 127.0.0.1; deny all; alias \(root)/open/; }
            }
        }
        """
    }

    /// Status, WWW-Authenticate and X-User of one curl request.
    static func ask(_ port: Int, _ path: String, user: String? = nil) throws -> String {
        var args = ["-o", "/dev/null", "-D", "-", "http://127.0.0.1:\(port)\(path)"]
        if let user { args = ["-u", user] + args }
        let r = try curl(args)
        let lines = r.out.split(separator: "\r\n").map(String.init)
        let status = lines.first?.split(separator: " ").dropFirst().first.map(String.init) ?? "none"
        let challenge = lines.first { $0.lowercased().hasPrefix("www-authenticate:") } ?? ""
        let xuser = lines.first { $0.lowercased().hasPrefix("x-user:") } ?? ""
        return [status, challenge, xuser].joined(separator: " | ")
    }

    static let cases: [(String, String?)] = users.flatMap { [("/", "\($0.0):secret"), ("/", "\($0.0):wrong")] } + [
        ("/", nil), ("/", "nobody:secret"), ("/", "commented:secret"), ("/open/", nil),
        ("/any/", nil), ("/any/", "sha1:secret"), ("/any/", "sha1:bad"),
        ("/all/", nil), ("/all/", "plain:secret"),
        ("/missing/", "plain:secret"), ("/local/", nil),
    ]

    @Test func answersAsNginxForEverySchemeAndSatisfyMode() throws {
        let lb = try LB(AuthTests.config)
        defer { lb.stop() }
        let lbAnswers = try AuthTests.cases.map { try AuthTests.ask(lb.port, $0.0, user: $0.1) }
        // What the answers are, so that agreement with nginx cannot hide a common failure.
        #expect(lbAnswers[0] == "200 |  | X-User: apr1")
        #expect(lbAnswers[1] == "401 | WWW-Authenticate: Basic realm=\"Closed \"site\"\" | X-User: apr1")
        #expect(lbAnswers.prefix(AuthTests.users.count * 2).enumerated().allSatisfy { $0.element.hasPrefix($0.offset % 2 == 0 ? "200" : "401") })
        guard NginxPeer.available else {
            Issue.record("Debian's nginx is not installed")
            return
        }
        let nginx = try NginxPeer(AuthTests.config)
        defer { nginx.stop() }
        for (k, c) in AuthTests.cases.enumerated() {
            let theirs = try AuthTests.ask(nginx.port, c.0, user: c.1)
            #expect(lbAnswers[k] == theirs, "\(c.0) as \(c.1 ?? "nobody")")
        }
        #expect(lb.errorLog.contains("user \"apr1\": password mismatch"))
        #expect(lb.errorLog.contains("user \"nobody\" was not found in \"\(AuthTests.root)/htpasswd\""))
    }

    @Test func aSlowHashDoesNotHoldTheEventLoop() throws {
        // bcrypt cost 12 (most of a second here) on lb's only worker thread: a request to another
        // location on the same loop is answered while that check is still running.
        let dir = try Harness.tempDirectory()
        let file = dir.appendingPathComponent("users").path
        try "slow:$2y$12$abcdefghijklmnopqrstuuvhqlfa3SToYAWnpQD0wYcoxAD7y2cEy\n".write(toFile: file, atomically: true, encoding: .utf8)
        let lb = try LB(AuthTests.config.replacingOccurrences(of: "\(AuthTests.root)/htpasswd", with: file)
            .replacingOccurrences(of: "worker_processes 2;", with: "worker_processes 1;"))
        defer { lb.stop() }
        let slow = try RawClient(port: lb.port)
        try slow.send("GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Basic \(Data("slow:slow".utf8).base64EncodedString())\r\n\r\n")
        #expect(try RawClient(port: lb.port).get("/open/").status == 200)
        // The slow check had not answered yet: nothing is waiting on its connection.
        var pending = pollfd(fd: slow.fd, events: Int16(POLLIN), revents: 0)
        #expect(poll(&pending, 1, 0) == 0)
        #expect(try slow.readResponse().status == 200)
    }

    @Test func theUserFileIsReadOnEveryRequest() throws {
        let dir = try Harness.tempDirectory()
        let file = dir.appendingPathComponent("users").path
        try "alice:{PLAIN}one\n".write(toFile: file, atomically: true, encoding: .utf8)
        let lb = try LB(AuthTests.config.replacingOccurrences(of: "\(AuthTests.root)/htpasswd", with: file))
        defer { lb.stop() }
        #expect(try AuthTests.ask(lb.port, "/", user: "alice:one").hasPrefix("200"))
        try "alice:{PLAIN}two\n".write(toFile: file, atomically: true, encoding: .utf8)
        #expect(try AuthTests.ask(lb.port, "/", user: "alice:one").hasPrefix("401"))
        #expect(try AuthTests.ask(lb.port, "/", user: "alice:two").hasPrefix("200"))
    }
}
