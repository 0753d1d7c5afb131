import Foundation
import Testing

/// `include` inside `map`, and regexes in `proxy_cookie_domain` / `proxy_cookie_path`, compared
/// with Debian's nginx on the same configuration (see `Differential`).
@Suite(.serialized, .enabled(if: Differential.available, "needs Debian's nginx at /usr/sbin/nginx"))
struct DifferentialCookieTests {
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
