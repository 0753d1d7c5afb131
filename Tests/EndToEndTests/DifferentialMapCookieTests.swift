import Foundation
import Testing

/// `include` inside `map` compared with Debian's nginx on the same configuration: the answers
/// (see `Differential`), and `-t`'s errors for the same files.
@Suite(.serialized, .enabled(if: Differential.available, "needs Debian's nginx at /usr/sbin/nginx"))
struct DifferentialMapIncludeTests {
    /// A user-agent map kept in separate files (a glob and a plain include), as real
    /// configurations keep their bot lists: strings match without case, regexes in order, a
    /// regex's named capture is a variable, and the default comes from the map block itself.
    @Test func aMapFromIncludedFilesAnswersAsNginx() throws {
        let d = try Differential("""
        map $http_user_agent $bot {
            default none;
            include {root}/maps/*.map;
            include {root}/last.map;
        }
        server {
            listen 127.0.0.1:{port};
            location / { return 200 "bot=$bot os=$os\\n"; }
        }
        """, files: [
            "maps/a-bots.map": "~*googlebot google;\n~*bingbot bing;\n",
            "maps/b-tools.map": "curl/8.0 curl;\n\"Wget/1.21\" wget;\n~^Mozilla/5\\.0\\s\\((?<os>[A-Za-z]+) browser-$os;\n",
            "last.map": "# kept apart\n~. other;\n",
        ])
        let agents = ["Googlebot/2.1", "Mozilla/5.0 (compatible; bingbot/2.0)", "curl/8.0", "CURL/8.0", "Wget/1.21",
                      "Mozilla/5.0 (Linux x86_64)", "lynx", ""]
        try d.compare(agents.map { Differential.Request(target: "/", headers: $0.isEmpty ? [] : ["User-Agent: \($0)"], expect: 200) })
        // Pinned, so that both answering the default cannot pass.
        let r = try d.fetch(Differential.Request(target: "/", headers: ["User-Agent: Mozilla/5.0 (Linux x86_64)"]), port: d.lb.port)
        #expect(r.text == "bot=browser-Linux os=Linux\n")
        #expect(try d.fetch(Differential.Request(target: "/", headers: ["User-Agent: CURL/8.0"]), port: d.lb.port).text == "bot=curl os=\n")
    }

    /// The `[emerg]` message of a failed `-t` (nginx: `DATE [emerg] PID#TID: MESSAGE`; lb:
    /// `lb: [emerg] MESSAGE`), or "ok".
    static func emerg(_ stderr: String) -> String {
        guard let line = stderr.split(separator: "\n").first(where: { $0.contains("[emerg] ") }) else { return "ok" }
        var m = line[line.range(of: "[emerg] ")!.upperBound...]
        if let colon = m.range(of: ": "), m[..<colon.lowerBound].allSatisfy({ $0.isNumber || $0 == "#" }) { m = m[colon.upperBound...] }
        return String(m)
    }

    /// `nginx -t` and `lb -t` on the same files in one directory (the prefix of both, so relative
    /// includes resolve alike); the `[emerg]` message of each.
    func check(_ files: [String: String]) throws -> (nginx: String, lb: String) {
        let dir = try Harness.tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        for (name, text) in files {
            let url = dir.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try text.write(to: url, atomically: true, encoding: .utf8)
        }
        let conf = dir.appendingPathComponent("nginx.conf").path
        let n = try Started(URL(fileURLWithPath: Differential.nginxPath),
                            ["-t", "-q", "-e", "stderr", "-p", dir.path, "-c", conf, "-g", "pid \(dir.path)/nginx.pid;"], cwd: dir)
        #expect(n.wait(timeout: 30))
        let l = try Harness.run("lb", ["-t", "-p", dir.path, "-c", conf])
        return (Self.emerg(n.stderr).replacingOccurrences(of: dir.path, with: "DIR"),
                Self.emerg(l.stderr).replacingOccurrences(of: dir.path, with: "DIR"))
    }

    /// Where an error in or around an included map file is reported, and in what words.
    @Test func includeErrorsInsideMapAreReportedAsNginxReportsThem() throws {
        func conf(_ mapBody: String) -> String {
            "events {}\nhttp {\n map $http_user_agent $bot {\n  default none;\n\(mapBody)\n }\n server { listen 127.0.0.1:1; }\n}\n"
        }
        let cases: [(String, [String: String], String)] = [
            ("  include maps/*.map;", ["maps/a.map": "a 1;\n", "maps/b.map": "b 2;\nA 3;\n"], "conflicting parameter \"a\" in DIR/maps/b.map:2"),
            ("  include bots.map;", ["bots.map": "a b c;\n"], "invalid number of the map parameters in DIR/bots.map:1"),
            ("  include bots.map;", ["bots.map": "x 1;\ndefault y;\n"], "duplicate default map parameter in DIR/bots.map:2"),
            ("  include bots.map;", ["bots.map": "x 1;\ny 2\n"], "unexpected end of file, expecting \";\" or \"}\" in DIR/bots.map:3"),
            ("  include bots.map;", ["bots.map": "x 1; }\n"], "unexpected \"}\" in DIR/bots.map:1"),
            ("  include missing.map;", [:], "open() \"DIR/missing.map\" failed (2: No such file or directory) in DIR/nginx.conf:5"),
            ("  include bots.map extra;", [:], "invalid number of the map parameters in DIR/nginx.conf:5"),
            ("  \"include\" bots.map;", ["bots.map": "x 1;\n"], "ok"),
            ("  include none/*.map;", [:], "ok"),
        ]
        for (body, files, expected) in cases {
            var all = files
            all["nginx.conf"] = conf(body)
            let r = try check(all)
            #expect(r.nginx == expected, "nginx, for \(body)")
            #expect(r.lb == r.nginx, "for \(body)")
        }
        // split_clients takes no include, in either.
        let split = try check(["nginx.conf": "events {}\nhttp {\n split_clients $remote_addr $v {\n  include parts;\n }\n}\n", "parts": "* a;\n"])
        #expect(split.nginx == "invalid percent value \"include\" in DIR/nginx.conf:4" && split.lb == split.nginx)
        // A bad regex in an included file: lb names its own line, nginx the include's.
        let regex = try check(["nginx.conf": conf("  include bots.map;"), "bots.map": "x 1;\n~(a b;\n"])
        #expect(regex.nginx == "pcre2_compile() failed: missing closing parenthesis in \"(a\" in DIR/nginx.conf:5")
        #expect(regex.lb == "pcre2_compile() failed: missing closing parenthesis in \"(a\" in DIR/bots.map:2")
    }
}

/// Regexes in `proxy_cookie_domain` / `proxy_cookie_path`, compared with Debian's nginx on the
/// same configuration (see `Differential`).
@Suite(.serialized, .enabled(if: Differential.available, "needs Debian's nginx at /usr/sbin/nginx"))
struct DifferentialCookieTests {
    /// Each upstream Set-Cookie field as both servers pass it on (in order), and the headers
    /// that show the request's captures after the rewrite.
    func cookies(_ d: Differential, _ fields: [String], port: Int) throws -> [String] {
        let query = fields.map { "c=" + $0.addingPercentEncoding(withAllowedCharacters: .alphanumerics)! }.joined(separator: "&")
        let r = try d.fetch(Differential.Request(target: "/p/?" + query), port: port)
        #expect(r.status == 200)
        return r.headers.filter { ["set-cookie", "x-captures"].contains($0.0.lowercased()) }.map { "\($0.0): \($0.1)" }
    }

    @Test func cookieRegexesRewriteAsNginx() throws {
        let d = try Differential("""
        server {
            listen 127.0.0.1:{port};
            location /p/ {
                proxy_pass http://{backend}/setcookie;
                proxy_cookie_path ~*^/app(/.*)?$ /$1;
                proxy_cookie_path ~^/Case/(?<rest>.*)$ /c/$rest;
                proxy_cookie_path ~^/first(.*) /1st$1;
                proxy_cookie_path ~^/fir(.*) /2nd$1;
                proxy_cookie_path ~^/(?<a>[a-z]+)/(?<b>[a-z]+)$ /$b/$a/$host;
                proxy_cookie_path /lit/ /literal/;
                proxy_cookie_domain ~\\.(?P<sl_domain>[-0-9a-z]+\\.[a-z]+)$ $sl_domain;
                proxy_cookie_domain ~^(sub)\\.(example)\\.org$ .$2.$1;
                proxy_cookie_domain back.test front.test;
                add_header X-Captures "$1|$2|$sl_domain|$a|$b";
            }
        }
        """, backend: true)
        let cases: [[String]] = [
            ["a=1; Path=/app/x; Domain=.www.example.com", "b=2; path=/APP", "c=3; Path=/Case/z/y", "d=4; Path=/case/z",
             "e=5;Domain=back.test;Path=/lit/a", "f=6; domain=WWW.Example.COM", "g=7; Path=/appx"],
            ["b=2;Path=/firstx;Domain=sub.example.org;Domain=SUB.example.ORG", "flag; Path=/first", "c=3; Path=/ab/cd",
             "x=1;path=/fir;  domain = nomatch  "],
            ["plain=1; Path=/none; Domain=elsewhere"],
        ]
        for fields in cases {
            let n = try cookies(d, fields, port: d.nginxPort), l = try cookies(d, fields, port: d.lb.port)
            #expect(l == n, "nginx error log: \(d.nginxErrorLog.suffix(400))")
            #expect(n.count == fields.count + 1, "\(n)")
        }
        // Pinned, so that both passing the fields unchanged cannot pass.
        #expect(try cookies(d, ["a=1; Path=/app/x; Domain=.www.example.com"], port: d.lb.port)
            == ["Set-Cookie: a=1; Path=//x; Domain=example.com", "X-Captures: example.com||example.com||"])
    }
}
