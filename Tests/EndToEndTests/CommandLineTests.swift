import Foundation
import Testing

/// `lb`'s command line, run as a real process: nginx's flags, messages and exit codes.
@Suite struct CommandLineTests {
    @Test(arguments: ["stack.conf", "round-robin.conf", "static.conf", "cache.conf"])
    func everyExamplePassesTest(_ name: String) throws {
        // Under a temporary prefix: `-t` opens (creates) the examples' relative log files there,
        // not in the repository.
        let prefix = try Harness.tempDirectory()
        defer { try? FileManager.default.removeItem(at: prefix) }
        let path = Harness.repositoryRoot.appendingPathComponent("examples/\(name)").path
        let r = try Harness.run("lb", ["-t", "-p", prefix.path, "-c", path])
        #expect(r.status == 0)
        #expect(r.stderr == "lb: the configuration file \(path) syntax is ok\nlb: configuration file \(path) test is successful\n")
    }

    @Test func longTestFlagAndPrefix() throws {
        // A relative -c resolves against -p (a copy of the example in a temporary prefix, where
        // its relative log files are opened).
        let prefix = try Harness.tempDirectory()
        defer { try? FileManager.default.removeItem(at: prefix) }
        try FileManager.default.createDirectory(at: prefix.appendingPathComponent("examples"), withIntermediateDirectories: true)
        for f in ["stack.conf", "mime.types"] {
            try FileManager.default.copyItem(at: Harness.repositoryRoot.appendingPathComponent("examples/\(f)"),
                                             to: prefix.appendingPathComponent("examples/\(f)"))
        }
        let r = try Harness.run("lb", ["--test-config", "-p", prefix.path, "-c", "examples/stack.conf"])
        #expect(r.status == 0 && r.stderr.contains("test is successful"), "\(r.stderr)")
    }

    @Test func failingConfigPrintsEmergWithFileAndLine() throws {
        let dir = try Harness.tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let conf = dir.appendingPathComponent("bad.conf")
        try "events {}\nhttp {\n  server {\n    listen 8080;\n    location / { proxy_pas http://x; }\n  }\n}\n".write(to: conf, atomically: true, encoding: .utf8)
        let r = try Harness.run("lb", ["-t", "-c", conf.path])
        #expect(r.status == 1)
        #expect(r.stderr == """
        lb: [emerg] unknown directive "proxy_pas" (did you mean "proxy_pass"?) in \(conf.path):5
        lb: configuration file \(conf.path) test failed

        """)
    }

    /// As `nginx -t`: the warnings met before the error are printed before its `[emerg]`.
    @Test func warningsBeforeAnErrorArePrintedFirst() throws {
        let dir = try Harness.tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let conf = dir.appendingPathComponent("bad.conf")
        try "events {}\nhttp {\n  types { text/html html; text/plain html; }\n  server { listen 8080; bogus on; }\n}\n".write(to: conf, atomically: true, encoding: .utf8)
        let r = try Harness.run("lb", ["-t", "-c", conf.path])
        #expect(r.status == 1)
        #expect(r.stderr == """
        lb: [warn] duplicate extension "html", content type: "text/plain", previous content type: "text/html" in \(conf.path):3
        lb: [emerg] unknown directive "bogus" in \(conf.path):4
        lb: configuration file \(conf.path) test failed

        """)
    }

    /// A reload's warnings go to the error log, as nginx writes them there.
    @Test func aReloadLogsItsWarnings() throws {
        let config = """
        events {}
        error_log stderr notice;
        http { access_log off; server { listen 127.0.0.1:{port}; location / { return 200 "v1\\n"; } } }
        """
        let lb = try LB(config)
        try lb.rewrite(config.replacingOccurrences(of: "access_log off;", with: "access_log off; types { text/html html; text/plain html; }")
                             .replacingOccurrences(of: "v1", with: "v2"))
        lb.reloadAndWait()
        #expect(try RawClient(port: lb.port).get("/").text == "v2\n")
        #expect(lb.errorLog.contains("[warn]") && lb.errorLog.contains("duplicate extension \"html\""), "\(lb.errorLog.suffix(800))")
    }

    /// As `nginx -t`: a configuration file without an `events` block is refused.
    @Test func aFileWithoutEventsIsRefused() throws {
        let dir = try Harness.tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let conf = dir.appendingPathComponent("noevents.conf")
        try "http {\n  server { listen 127.0.0.1:8080; }\n}\n".write(to: conf, atomically: true, encoding: .utf8)
        let r = try Harness.run("lb", ["-t", "-c", conf.path])
        #expect(r.status == 1)
        #expect(r.stderr.contains("[emerg] no \"events\" section in configuration file \(conf.path)"))
        #expect(r.stderr.contains("test failed"))
    }

    /// Log files are opened while the configuration is read (`-t` too): one that cannot be opened —
    /// here its directory would have to be made inside a regular file — is an error with FILE:LINE;
    /// missing directories that can be made are made, as lb's runtime makes them.
    @Test func logFilesThatCannotBeOpenedFailTheTest() throws {
        let dir = try Harness.tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("plain")
        try "x".write(to: file, atomically: true, encoding: .utf8)
        let conf = dir.appendingPathComponent("logs.conf")
        for (directive, line) in [("error_log \(file.path)/sub/error.log;", 2), ("http { access_log \(file.path)/sub/access.log; }", 2)] {
            try "events {}\n\(directive)\n".write(to: conf, atomically: true, encoding: .utf8)
            let r = try Harness.run("lb", ["-t", "-c", conf.path])
            #expect(r.status == 1)
            #expect(r.stderr.contains("[emerg] open() \"\(file.path)/sub/"), "\(r.stderr)")
            #expect(r.stderr.contains("failed (20: Not a directory) in \(conf.path):\(line)"), "\(r.stderr)")
        }
        try "events {}\nhttp { access_log \(dir.path)/new/deeper/access.log; }\n".write(to: conf, atomically: true, encoding: .utf8)
        let ok = try Harness.run("lb", ["-t", "-c", conf.path])
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent("new/deeper/access.log").path))
        // A variable in the path: opened per request, not while reading the configuration.
        try "events {}\nhttp { access_log \(file.path)/$host.log; }\n".write(to: conf, atomically: true, encoding: .utf8)
        #expect(try Harness.run("lb", ["-t", "-c", conf.path]).status == 0)
    }

    /// A reload into a configuration whose log cannot be opened keeps the running one serving.
    @Test func aReloadIntoAnUnopenableLogKeepsServing() throws {
        let config = """
        events {}
        error_log stderr notice;
        http { access_log off; server { listen 127.0.0.1:{port}; location / { return 200 "old\\n"; } } }
        """
        let lb = try LB(config)
        let plain = lb.configURL.deletingLastPathComponent().appendingPathComponent("plain")
        try "x".write(to: plain, atomically: true, encoding: .utf8)
        try lb.rewrite(config.replacingOccurrences(of: "access_log off;", with: "access_log \(plain.path)/x/a.log;")
                             .replacingOccurrences(of: "old", with: "new"))
        lb.reloadAndWait()
        #expect(lb.errorLog.contains("reload failed, the previous configuration keeps serving"))
        #expect(lb.errorLog.contains("Not a directory"))
        #expect(try RawClient(port: lb.port).get("/").text == "old\n")
    }

    @Test func dumpExpandsIncludes() throws {
        let dir = try Harness.tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("conf.d"), withIntermediateDirectories: true)
        try "events {}\nhttp {\n include conf.d/*.conf;\n}\n".write(to: dir.appendingPathComponent("main.conf"), atomically: true, encoding: .utf8)
        try "server { listen 8080; }\n".write(to: dir.appendingPathComponent("conf.d/site.conf"), atomically: true, encoding: .utf8)
        let r = try Harness.run("lb", ["-T", "-c", dir.appendingPathComponent("main.conf").path])
        #expect(r.status == 0)
        #expect(r.stdout.contains("# configuration file \(dir.path)/main.conf:\nevents {}\nhttp {"))
        #expect(r.stdout.contains("# configuration file \(dir.path)/conf.d/site.conf:\nserver { listen 8080; }"))
    }

    @Test func globalDirectivesApplyBeforeTheFile() throws {
        let dir = try Harness.tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let conf = dir.appendingPathComponent("a.conf")
        try "worker_processes 2;\nevents {}\n".write(to: conf, atomically: true, encoding: .utf8)
        let ok = try Harness.run("lb", ["-t", "-q", "-g", "daemon off;", "-c", conf.path])
        #expect(ok.status == 0 && ok.stderr.isEmpty)
        let dup = try Harness.run("lb", ["-t", "-g", "worker_processes 1;", "-c", conf.path])
        #expect(dup.status == 1 && dup.stderr.contains("\"worker_processes\" directive is duplicate in \(conf.path):1"))
    }

    @Test func missingFileAndBadFlags() throws {
        let r = try Harness.run("lb", ["-t", "-c", "/nonexistent/lb.conf"])
        #expect(r.status == 1 && r.stderr.hasPrefix("lb: [emerg] open() \"/nonexistent/lb.conf\" failed (2: No such file or directory)"))
        let bad = try Harness.run("lb", ["-x"])
        #expect(bad.status == 1 && bad.stderr.contains("invalid option: \"x\""))
        let noArg = try Harness.run("lb", ["-c"])
        #expect(noArg.status == 1 && noArg.stderr.contains("option \"-c\" requires file name"))
        let sig = try Harness.run("lb", ["-s", "bogus"])
        #expect(sig.status == 1)
    }

    @Test func versionAndHelp() throws {
        let v = try Harness.run("lb", ["-v"])
        #expect(v.status == 0 && v.stderr.hasPrefix("lb version: lb/"))
        let h = try Harness.run("lb", ["-h"])
        #expect(h.status == 0 && h.stdout.contains("-t,--test-config"))
    }
}

extension CommandLineTests {
    @Test func startupErrorsGoToTheDashEFile() throws {
        let dir = try Harness.tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let log = dir.appendingPathComponent("startup.log")
        let r = try Harness.run("lb", ["-t", "-e", log.path, "-c", dir.appendingPathComponent("missing.conf").path])
        #expect(r.status == 1 && r.stderr.isEmpty)
        let text = try String(contentsOf: log, encoding: .utf8)
        #expect(text.contains("[emerg] open()") && text.contains("test failed"))
    }

    /// `-e` with a relative path (and `-c`) resolve against `-p`, never the current directory.
    @Test func relativeDashEResolvesAgainstThePrefix() throws {
        let dir = try Harness.tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("logs"), withIntermediateDirectories: true)
        let r = try Harness.run("lb", ["-t", "-p", dir.path, "-e", "logs/startup.log", "-c", "missing.conf"])
        #expect(r.status == 1 && r.stderr.isEmpty, "\(r.stderr)")
        let text = try String(contentsOf: dir.appendingPathComponent("logs/startup.log"), encoding: .utf8)
        #expect(text.contains("open() \"\(dir.path)/missing.conf\" failed"), "\(text)")
    }
}

extension CommandLineTests {
    /// `lb -t --explain`: after the test's messages, the route of the request on stdout (each
    /// decision with FILE:LINE), exit 0; nothing is started and nothing is written to the prefix.
    @Test func explainPrintsTheRouteOfARequest() throws {
        let dir = try Harness.tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let conf = dir.appendingPathComponent("lb.conf")
        let port = freePort()
        try """
        events {}
        http {
            upstream app { server 127.0.0.1:9; }
            server {
                listen 127.0.0.1:\(port);
                server_name example.com;
                location / { return 404; }
                location /api/ {
                    if ($http_x_beta) { rewrite ^/api/(.*)$ /beta/$1 last; }
                    proxy_pass http://app/v1/;
                }
                location /beta/ { proxy_pass http://app; }
            }
            server { listen 127.0.0.1:\(port); server_name other.test; return 444; }
        }

        """.write(to: conf, atomically: true, encoding: .utf8)
        let before = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
        let r = try Harness.run("lb", ["-t", "-p", dir.path, "-c", conf.path, "--explain", "GET http://example.com/api/users?id=7"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("test is successful"))
        for line in ["server: server example.com (\(conf.path):4): host \"example.com\" matches exact name \"example.com\"",
                     "chosen: location /api/ (\(conf.path):8)",
                     "\(conf.path):9: if ($http_x_beta): false: skips its block",
                     "handler: proxy_pass at \(conf.path):10, in location /api/ (\(conf.path):8) -> upstream \"app\" (\(conf.path):3), balancing: weighted round-robin",
                     "request sent: GET /v1/users?id=7"] {
            #expect(r.stdout.contains(line), "missing \(line) in:\n\(r.stdout)")
        }
        // A header changes the route: the if holds, the rewrite searches the locations again.
        let beta = try Harness.run("lb", ["-tq", "-p", dir.path, "-c", conf.path, "--explain", "GET http://example.com/api/users", "-H", "X-Beta: 1"])
        #expect(beta.status == 0 && beta.stderr.isEmpty, "\(beta.stderr)")
        #expect(beta.stdout.contains("chosen: location /beta/ (\(conf.path):12)"), "\(beta.stdout)")
        #expect(beta.stdout.contains("request sent: GET /beta/users"), "\(beta.stdout)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == before)
    }

    @Test func aMalformedExplainRequestIsAnError() throws {
        let dir = try Harness.tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let conf = dir.appendingPathComponent("lb.conf")
        try "events {}\nhttp { server { listen 127.0.0.1:\(freePort()); } }\n".write(to: conf, atomically: true, encoding: .utf8)
        let r = try Harness.run("lb", ["-t", "-c", conf.path, "--explain", "GET /no-scheme"])
        #expect(r.status == 1)
        #expect(r.stderr.contains("[emerg] --explain: invalid URL \"/no-scheme\": expected http://host/path"), "\(r.stderr)")
        let port = try Harness.run("lb", ["-t", "-c", conf.path, "--explain", "GET http://h:1/"])
        #expect(port.status == 1 && port.stderr.contains("no listener on port 1"), "\(port.stderr)")
    }
}
