import Foundation
import Testing
import LBConfig
@testable import LBCore

/// `lb -t --explain` without sockets: real configurations, a synthetic request routed through the
/// routing code with a recorder, and the printed decisions (with their FILE:LINE) checked. The
/// configuration's first `http` line is line 3 of `t.conf`.
@Suite struct ExplainTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var name: String
        var http: [String]
        var request: String
        var headers: [String] = []
        var client: String? = nil
        var expected: [String]
        var absent: [String] = []
        var testDescription: String { name }
    }

    /// A directory with `a.txt` and `dir/index.html`, for root, try_files and index.
    static let docroot: String = {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("lb-explain-\(getpid())").path
        try? FileManager.default.createDirectory(atPath: d + "/dir", withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: d + "/a.txt", contents: Data("a".utf8))
        FileManager.default.createFile(atPath: d + "/dir/index.html", contents: Data("i".utf8))
        return d
    }()

    static func explain(_ c: Case) throws -> String {
        let text = "events {}\nhttp {\n" + c.http.joined(separator: "\n") + "\n}\n"
        let table = try ConfigLoader(prefix: docroot).load(text: text, file: "t.conf").table
        return try RouteExplainer.explain(ExplainRequest.parse(c.request, headers: c.headers, client: c.client), table: table)
    }

    static let locations = [
        "server {",                                   // 3
        "  listen 127.0.0.1:18080;",                  // 4
        "  location = /a { return 200 exact; }",      // 5
        "  location /a { return 200 prefix; }",       // 6
        "  location ^~ /s/ { return 200 noregex; }",  // 7
        "  location ~ ^/a { return 200 regex1; }",    // 8
        "  location ~* \\.PNG$ { return 200 regex2; }", // 9
        "  location /n/ { location ~ \\.txt$ { return 200 nested; } return 200 outer; }", // 10
        "}",
    ]

    static let servers = [
        "server { listen 127.0.0.1:18080; server_name a.test; return 200 a; }",                  // 3
        "server { listen 127.0.0.1:18080; server_name *.w.test; return 200 w; }",                // 4
        "server { listen 127.0.0.1:18080; server_name www.t.*; return 200 t; }",                 // 5
        "server { listen 127.0.0.1:18080; server_name ~^r\\d+\\.test$; return 200 r; }",         // 6
        "server { listen 127.0.0.1:18080 default_server; server_name d.test; return 200 d; }",   // 7
        "server { listen 127.0.0.1:18081; return 200 other; }",                                  // 8
    ]

    static let rewrites = [
        "server {",                                              // 3
        "  listen 127.0.0.1:18080;",                             // 4
        "  rewrite ^/old/(.*)$ /new/$1 last;",                   // 5
        "  location /new/ {",                                    // 6
        "    rewrite ^/new/(.*)$ /final/$1 break;",              // 7
        "    proxy_pass http://127.0.0.1:9000/up/;",             // 8
        "  }",                                                   // 9
        "  location /r/ { rewrite ^/r/(.*)$ /elsewhere/$1 permanent; }", // 10
        "  location /if/ {",                                     // 11
        "    if ($http_x_flag = on) { return 403; }",            // 12
        "    if ($arg_id ~ ^(\\d+)$) { set $n $1; }",            // 13
        "    return 200 \"id=$n\";",                             // 14
        "  }",                                                   // 15
        "  location /loop/ { rewrite ^/loop/(.*)$ /loop/$1 last; }", // 16
        "}",
    ]

    static let files = [
        "server {",                                                          // 3
        "  listen 127.0.0.1:18080;",                                         // 4
        "  root \(docroot);",                                                // 5
        "  location / { try_files $uri $uri/ @fallback; }",                  // 6
        "  location @fallback { return 200 fb; }",                           // 7
        "  location /eq/ { try_files $uri =404; }",                          // 8
        "  location /php/ { try_files $uri /index.php?$args; }",            // 9
        "  location ~ \\.php$ { fastcgi_pass 127.0.0.1:9000; }",             // 10
        "}",
    ]

    static let proxies = [
        "upstream back { hash $arg_user consistent; server 127.0.0.1:9001; server 127.0.0.1:9002 weight=3; }", // 3
        "proxy_cache_path \(docroot)/cache keys_zone=zz:1m;",                 // 4
        "server {",                                                          // 5
        "  listen 127.0.0.1:18080;",                                         // 6
        "  location /api/ {",                                                // 7
        "    proxy_pass http://back/v2/;",                                   // 8
        "    proxy_cache zz;",                                               // 9
        "    proxy_cache_key \"$host$uri$is_args$args\";",                   // 10
        "  }",                                                               // 11
        "  location /plain/ { proxy_pass http://127.0.0.1:9003; }",          // 12
        "  location /private/ { allow 10.0.0.0/8; deny all; proxy_pass http://back; }", // 13
        "}",
    ]

    static let variables = [
        "upstream beta { server 127.0.0.1:9100; }",                                          // 3
        "map $http_x_backend $target { default 127.0.0.1:9200; b beta; }",                   // 4
        "server {",                                                                           // 5
        "  listen 127.0.0.1:18080;",                                                          // 6
        "  location /a/ {",                                                                   // 7
        "    if ($http_x_beta) { proxy_pass http://beta; }",                                  // 8
        "    proxy_pass http://127.0.0.1:9000;",                                              // 9
        "  }",                                                                                // 10
        "  location /v/ { proxy_pass http://$target; }",                                      // 11
        "  location /any/ { satisfy any; allow 127.0.0.1; deny all; auth_basic \"zone\"; auth_basic_user_file /nonexistent; }", // 12
        "}",
        "server { listen 127.0.0.1:18081; return 302 /elsewhere$uri; }",                      // 14
    ]

    static let cases: [Case] = [
        Case(name: "an if that holds gives its block's proxy_pass", http: variables, request: "GET http://h/a/x", headers: ["X-Beta: 1"],
             expected: ["t.conf:8: if ($http_x_beta): true: the request takes this block's configuration",
                        "configuration: the if block (t.conf:8) of location /a/",
                        "handler: proxy_pass at t.conf:8, in the if block (t.conf:8) of location /a/ -> upstream \"beta\" (t.conf:3)"]),
        Case(name: "an if that fails keeps the location's proxy_pass", http: variables, request: "GET http://h/a/x",
             expected: ["t.conf:8: if ($http_x_beta): false", "handler: proxy_pass 127.0.0.1:9000 at t.conf:9, in location /a/ (t.conf:7)"]),
        Case(name: "proxy_pass with variables naming an upstream group", http: variables, request: "GET http://h/v/x", headers: ["X-Backend: b"],
             expected: ["-> upstream \"beta\" (t.conf:3)", "with variables: http://$target is http://beta, an upstream group"]),
        Case(name: "proxy_pass with variables naming an address", http: variables, request: "GET http://h/v/x",
             expected: ["with variables, in location /v/ (t.conf:11) -> address 127.0.0.1:9200", "http://$target is http://127.0.0.1:9200"]),
        Case(name: "satisfy any: a failed allow/deny is one check of several", http: variables, request: "GET http://h/any/", client: "10.0.0.1",
             expected: ["access: allow/deny at t.conf:12: deny all: client 10.0.0.1 is denied by this check",
                        "access: auth_basic at t.conf:12 \"zone\", user file /nonexistent", "access: satisfy any"]),
        Case(name: "a server-level return answers before any location", http: variables, request: "GET http://h:18081/x",
             expected: ["server-level return at t.conf:14", "answer: 302 redirect, Location: http://h:18081/elsewhere/x"],
             absent: ["location search"]),

        Case(name: "an exact location ends the search before prefixes and regexes", http: locations, request: "GET http://h/a",
             expected: ["exact: location = /a (t.conf:5) equals the URI: the search ends here", "answer: 200 with body \"exact\""],
             absent: ["regex:", "longest prefix:"]),
        Case(name: "a regex wins over the longest prefix", http: locations, request: "GET http://h/ab",
             expected: ["exact: no location = equals the URI",
                        "longest prefix: location /a (t.conf:6) (remembered; the regexes are tried first)",
                        "regex: location ~ ^/a (t.conf:8): matches: the search ends here",
                        "chosen: location ~ ^/a (t.conf:8)", "answer: 200 with body \"regex1\""]),
        Case(name: "a ^~ longest prefix skips the regexes", http: locations, request: "GET http://h/s/x.png",
             expected: ["longest prefix: location ^~ /s/ (t.conf:7) (^~: no regex is tried)",
                        "regexes skipped: the longest prefix location ^~ /s/ (t.conf:7) is ^~", "answer: 200 with body \"noregex\""],
             absent: ["regex: location"]),
        Case(name: "regexes are tried in order, ~* without case", http: locations, request: "GET http://h/X.png",
             expected: ["regex: location ~ ^/a (t.conf:8): no match", "regex: location ~* \\.PNG$ (t.conf:9): matches",
                        "answer: 200 with body \"regex2\""]),
        Case(name: "nested regexes of the longest prefix are tried", http: locations, request: "GET http://h/n/f.txt",
             expected: ["nested locations of location /n/ (t.conf:10):", "regex: location ~ \\.txt$ (t.conf:10): matches",
                        "answer: 200 with body \"nested\""]),
        Case(name: "no location: the server's own settings serve", http: locations, request: "GET http://h/zzz",
             expected: ["longest prefix: none matches", "chosen: no location matches: the server's own settings",
                        "handler: static files, in the server's own settings (t.conf:3)"]),

        Case(name: "exact server name (the Host lowercased)", http: servers, request: "GET http://A.test/",
             expected: ["server: server a.test (t.conf:3): host \"a.test\" matches exact name \"a.test\"", "answer: 200 with body \"a\""]),
        Case(name: "leading wildcard server name", http: servers, request: "GET http://x.y.w.test/",
             expected: ["server: server *.w.test (t.conf:4): host \"x.y.w.test\" matches wildcard name \"*.w.test\""]),
        Case(name: "trailing wildcard server name", http: servers, request: "GET http://www.t.org/",
             expected: ["server: server www.t.* (t.conf:5): host \"www.t.org\" matches wildcard name \"www.t.*\""]),
        Case(name: "regex server name", http: servers, request: "GET http://r12.test/",
             expected: ["server: server ~^r\\d+\\.test$ (t.conf:6): host \"r12.test\" matches regex name \"~^r\\d+\\.test$\""]),
        Case(name: "no name matches: the default server", http: servers, request: "GET http://unknown.test/",
             expected: ["server: server d.test (t.conf:7): no server_name matches \"unknown.test\": the default server of 127.0.0.1:18080",
                        "answer: 200 with body \"d\""]),
        Case(name: "the URL's port picks the listener", http: servers, request: "GET http://a.test:18081/",
             expected: ["listener: 127.0.0.1:18081 (port 18081)", "the only server on this listener", "answer: 200 with body \"other\""]),

        Case(name: "rewrite last searches again; break stays; proxy_pass then sends the whole URI", http: rewrites,
             request: "GET http://h/old/p?q=1",
             expected: ["rewrite phase, server level:",
                        "t.conf:5: rewrite ^/old/(.*)$ /new/$1 last: matches \"/old/p\"; last: the locations are searched again -> uri /new/p?q=1",
                        "location search for /new/p", "chosen: location /new/ (t.conf:6)",
                        "t.conf:7: rewrite ^/new/(.*)$ /final/$1 break: matches \"/new/p\"; break: stays in this location, rewrite phase ends -> uri /final/p?q=1",
                        "handler: proxy_pass 127.0.0.1:9000 at t.conf:8, in location /new/ (t.conf:6)",
                        "request sent: GET /final/p?q=1"]),
        Case(name: "rewrite permanent redirects with the arguments", http: rewrites, request: "GET http://h/r/x?y=2",
             expected: ["t.conf:10: rewrite ^/r/(.*)$ /elsewhere/$1 permanent: matches \"/r/x\": redirect 301 to \"/elsewhere/x?y=2\"",
                        "answer: 301 redirect, Location: http://h:18080/elsewhere/x?y=2"]),
        Case(name: "if conditions see headers and arguments; captures feed set", http: rewrites, request: "GET http://h/if/?id=42",
             headers: ["X-Flag: off"],
             expected: ["t.conf:12: if ($http_x_flag = on): false: skips its block",
                        "t.conf:13: if ($arg_id ~ ^(\\d+)$): true", "t.conf:13: set $n $1: = \"42\"",
                        "t.conf:14: return 200 id=$n: answers 200", "answer: 200 with body \"id=42\""]),
        Case(name: "an if that holds answers", http: rewrites, request: "GET http://h/if/", headers: ["X-Flag: on"],
             expected: ["t.conf:12: if ($http_x_flag = on): true", "t.conf:12: return 403: answers 403", "answer: 403 (error page)"]),
        Case(name: "a rewrite loop ends with 500 after 10 URI changes", http: rewrites, request: "GET http://h/loop/x",
             expected: ["(0 URI changes left)", "answer: 500: rewrite or internal redirection cycle"]),

        Case(name: "try_files serves the first existing file", http: files, request: "GET http://h/a.txt",
             expected: ["try_files \"$uri\": \(docroot)/a.txt is a file", "file \(docroot)/a.txt: exists: served"]),
        Case(name: "try_files $uri/ serves a directory's index", http: files, request: "GET http://h/dir",
             expected: ["try_files \"$uri/\": \(docroot)/dir/ is a directory", "index \(docroot)/dir/index.html (default): exists: served",
                        "handler: static files, in location / (t.conf:6), root \(docroot) at t.conf:5", "try_files $uri $uri/ @fallback at t.conf:6:"]),
        Case(name: "try_files falls back to a named location", http: files, request: "GET http://h/missing",
             expected: ["try_files \"$uri\": \(docroot)/missing is not found", "none exists: internal redirect to location @fallback (t.conf:7)",
                        "answer: 200 with body \"fb\""]),
        Case(name: "try_files =404", http: files, request: "GET http://h/eq/missing", expected: ["none exists: answer 404"]),
        Case(name: "try_files falls back to a URI: the locations are searched again", http: files, request: "GET http://h/php/x?a=1",
             expected: ["none exists: internal redirect to /index.php?a=1", "regex: location ~ \\.php$ (t.conf:10): matches",
                        "handler: fastcgi_pass 127.0.0.1:9000 at t.conf:10, in location ~ \\.php$ (t.conf:10)"]),

        Case(name: "proxy_pass with a URI part, upstream policy, peers and cache key", http: proxies, request: "GET http://h/api/users?user=bob",
             expected: ["handler: proxy_pass at t.conf:8, in location /api/ (t.conf:7) -> upstream \"back\" (t.conf:3), balancing: hash $arg_user consistent (key \"bob\")",
                        "peer 127.0.0.1:9002 (127.0.0.1:9002) weight=3",
                        "request sent: GET /v2/users?user=bob (the URI part /v2/ replaces the location's match)",
                        "cache: proxy_cache at t.conf:9 zone \"zz\" (t.conf:4, \(docroot)/cache), key \"h/api/users?user=bob\" (proxy_cache_key $host$uri$is_args$args at t.conf:10)"]),
        Case(name: "proxy_pass without a URI sends the request's own", http: proxies, request: "GET http://h/plain/a%20b?x",
             expected: ["request sent: GET /plain/a%20b?x (proxy_pass without a URI: the request's own)"]),
        Case(name: "allow matches the client", http: proxies, request: "GET http://h/private/", client: "10.1.2.3",
             expected: ["access: allow/deny at t.conf:13: allow 10.0.0.0/8: client 10.1.2.3 is allowed"]),
        Case(name: "deny all refuses other clients", http: proxies, request: "GET http://h/private/", client: "192.168.1.1",
             expected: ["deny all: client 192.168.1.1 is denied (403)"]),
        Case(name: "mirrors are listed before the handler, not for a return", http: [
                "server {", "  listen 127.0.0.1:18080;", "  mirror /m1;",
                "  location /p/ { mirror /m2; mirror /m3; mirror_request_body off; proxy_pass http://127.0.0.1:9000; }",
                "  location /r/ { return 204; }", "}"],
             request: "GET http://h/p/x",
             expected: ["mirror at t.conf:6: /m2, /m3 (background subrequests with the request's arguments, answers discarded; request body not sent)"],
             absent: ["/m1"]),
        Case(name: "a return location makes no mirrors", http: ["server {", "  listen 127.0.0.1:18080;", "  mirror /m1;", "  location /r/ { return 204; }", "}"],
             request: "GET http://h/r/x", expected: ["answer: 204"], absent: ["mirror"]),
    ]

    @Test(arguments: cases)
    func explainsTheRoute(_ c: Case) throws {
        let out = try Self.explain(c)
        for e in c.expected { #expect(out.contains(e), "missing \(e) in:\n\(out)") }
        for a in c.absent { #expect(!out.contains(a), "unexpected \(a) in:\n\(out)") }
    }

    @Test func malformedRequestsAreRefused() {
        for bad in ["", "GET", "GET http://", "get http://h/", "GET http://h/ HTTP/1.1", "GET ftp://h/", "GET http://h/a b"] {
            #expect(throws: ExplainError.self, "\(bad)") { try ExplainRequest.parse(bad) }
        }
        #expect(throws: ExplainError.self) { try ExplainRequest.parse("GET http://h/", headers: ["NoColon"]) }
        #expect(throws: ExplainError.self) { try ExplainRequest.parse("GET http://h/", client: "not-an-ip") }
    }

    @Test func aPortWithoutListenerIsAnError() throws {
        let c = Case(name: "", http: Self.servers, request: "GET http://h:9/", expected: [])
        #expect(throws: ExplainError.self) { try Self.explain(c) }
    }

    @Test func theMethodDefaultsToGetAndTheTargetToSlash() throws {
        let r = try ExplainRequest.parse("http://Host:81")
        #expect(r.method == "GET" && r.target == "/" && r.host == "Host:81" && r.port == 81 && r.client == "127.0.0.1")
    }
}
