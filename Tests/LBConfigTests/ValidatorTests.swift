import Testing
@testable import LBConfig

/// Every error the schema and compiler report, with the exact line of the offending token.
@Suite struct ValidatorTests {
    @Test(arguments: [
        // unknown directive, with a hint when one is close
        ("http {\n server {\n  location / {\n   proxy_pas http://a;\n  }\n }\n}", "unknown directive \"proxy_pas\" (did you mean \"proxy_pass\"?) in t.conf:4"),
        ("frobnicate on;", "unknown directive \"frobnicate\" in t.conf:1"),
        // context
        ("http {\n listen 80;\n}", "\"listen\" directive is not allowed here in t.conf:2"),
        ("events {\n}\nworker_connections 10;", "\"worker_connections\" directive is not allowed here in t.conf:3"),
        ("http {\n upstream u {\n  server 127.0.0.1:1;\n  root /x;\n }\n}", "\"root\" directive is not allowed here in t.conf:4"),
        // argument counts
        ("http {\n server {\n  listen;\n }\n}", "invalid number of arguments in \"listen\" directive in t.conf:3"),
        ("worker_processes 1 2;", "invalid number of arguments in \"worker_processes\" directive in t.conf:1"),
        ("http {\n sendfile;\n}", "invalid number of arguments in \"sendfile\" directive in t.conf:2"),
        // block or not
        ("http;", "directive \"http\" has no opening \"{\" in t.conf:1"),
        ("http {\n sendfile on { }\n}", "directive \"sendfile\" is not terminated by \";\" in t.conf:2"),
        // duplicates
        ("http {\n upstream pool { server 127.0.0.1:1; }\n\n upstream pool { server 127.0.0.1:2; }\n}", "duplicate upstream \"pool\" in t.conf:4"),
        ("http {\n upstream Pool { server 127.0.0.1:1; }\n upstream pOOL { server 127.0.0.1:2; }\n}", "duplicate upstream \"pOOL\" in t.conf:3"),
        ("http {\n server {\n  location /a { }\n  location /a { }\n }\n}", "duplicate location \"/a\" in t.conf:4"),
        ("http {\n server {\n  location /a { }\n  location ^~ /a { }\n }\n}", "duplicate location \"/a\" in t.conf:4"),
        ("http {\n server {\n  location @x { }\n  location @x { }\n }\n}", "duplicate location \"@x\" in t.conf:4"),
        ("http {\n sendfile on;\n sendfile off;\n}", "\"sendfile\" directive is duplicate in t.conf:3"),
        ("http {\n}\nhttp {\n}", "\"http\" directive is duplicate in t.conf:3"),
        // references resolved at the end
        ("http {\n server {\n  listen 80;\n  proxy_cache x;\n }\n}", "\"proxy_cache\" zone \"x\" is unknown in t.conf:4"),
        ("http {\n upstream empty {\n }\n}", "no servers are inside upstream in t.conf:2"),
        // values
        ("http {\n sendfile yes;\n}", "invalid value \"yes\" in \"sendfile\" directive, it must be \"on\" or \"off\" in t.conf:2"),
        ("http {\n client_max_body_size 10x;\n}", "\"client_max_body_size\" directive invalid value in t.conf:2"),
        ("http {\n proxy_read_timeout 5q;\n}", "\"proxy_read_timeout\" directive invalid value in t.conf:2"),
        ("http {\n server {\n  listen 99999;\n }\n}", "invalid port in \"99999\" of the \"listen\" directive in t.conf:3"),
        ("http {\n upstream u {\n  server 127.0.0.1:1 weight=0;\n }\n}", "invalid parameter \"weight=0\" in t.conf:3"),
        ("http {\n upstream u {\n  server 127.0.0.1:1 wieght=2;\n }\n}", "invalid parameter \"wieght=2\" in t.conf:3"),
        ("http {\n server {\n  location / { return abc; }\n }\n}", "invalid return code \"abc\" in t.conf:3"),
        ("http {\n server {\n  location ~ \"(unclosed\" { }\n }\n}", "pcre2_compile() failed: missing closing parenthesis in \"(unclosed\" in t.conf:3"),
        ("http {\n upstream u {\n  server nosuchhost:80;\n }\n}", "host not found in upstream \"nosuchhost:80\" in t.conf:3"),
        ("http {\n server {\n  location / {\n   proxy_pass http://nosuch;\n  }\n }\n}", "host not found in upstream \"nosuch\" in t.conf:4"),
        ("http {\n access_log /x nosuchformat;\n}", "unknown log format \"nosuchformat\" in t.conf:2"),
        ("http {\n server {\n  add_header X $nosuchvar;\n }\n}", "unknown \"nosuchvar\" variable in t.conf:3"),
        ("http {\n server {\n  listen 80 default_server;\n }\n server {\n  listen 80 default_server;\n }\n}", "a duplicate default server for 0.0.0.0:80 in t.conf:6"),
        // location nesting
        ("http {\n server {\n  location /a {\n   location /b { }\n  }\n }\n}", "location \"/b\" is outside location \"/a\" in t.conf:4"),
        ("http {\n server {\n  location = /a {\n   location /a/b { }\n  }\n }\n}", "location \"/a/b\" cannot be inside the exact location \"/a\" in t.conf:4"),
        ("http {\n server {\n  location ~ ^/x {\n   proxy_pass http://127.0.0.1:1/y;\n  }\n }\n}", "\"proxy_pass\" cannot have URI part in location given by regular expression, or inside named location, or inside \"if\" statement, or inside \"limit_except\" block in t.conf:4"),
        // lb refuses what it does not do, clearly
        ("http {\n server {\n  listen 443 ssl;\n }\n}", "no \"ssl_certificate\" is defined for the \"listen ... ssl\" directive in t.conf:3"),
        ("http {\n server {\n  if ($x) { }\n }\n}", "unknown \"x\" variable in t.conf:3"),
    ])
    func errorsAreWordedAsNginxAndPointAtTheLine(_ config: String, _ expected: String) {
        #expect(loadError(config) == expected)
    }

    @Test func suggestionsOnlyWhenClose() {
        #expect(Compiler.suggestion(for: "proxy_pas") == "proxy_pass")
        #expect(Compiler.suggestion(for: "upstrem") == "upstream")
        #expect(Compiler.suggestion(for: "worker_connection") == "worker_connections")
        #expect(Compiler.suggestion(for: "zzzzzzzz") == nil)
    }

    @Test func valueParsers() {
        #expect(Values.size("10K") == 10240)
        #expect(Values.size("8m") == 8 * 1024 * 1024)
        #expect(Values.size("1g") == 1 << 30)
        #expect(Values.size("512") == 512)
        #expect(Values.size("k") == nil && Values.size("1.5m") == nil && Values.size("") == nil)
        #expect(Values.milliseconds("500ms") == 500)
        #expect(Values.milliseconds("30s") == 30_000)
        #expect(Values.milliseconds("60") == 60_000)
        #expect(Values.milliseconds("1h") == 3_600_000)
        #expect(Values.milliseconds("1h30m") == 5_400_000)
        #expect(Values.milliseconds("1d") == 86_400_000)
        #expect(Values.milliseconds("2w") == 14 * 86_400_000)
        #expect(Values.milliseconds("5x") == nil && Values.milliseconds("30m1h") == nil && Values.milliseconds("") == nil)
        #expect(HostPort.parse("[::1]:8080", portOnlyAllowed: true) == HostPort(host: "::1", port: 8080))
        #expect(HostPort.parse("80", portOnlyAllowed: true) == HostPort(host: "*", port: 80))
        #expect(HostPort.parse("127.0.0.1:9001", portOnlyAllowed: false) == HostPort(host: "127.0.0.1", port: 9001))
        #expect(HostPort.parse("app", portOnlyAllowed: false) == HostPort(host: "app", port: nil))
        #expect(HostPort.parse("a:b:c", portOnlyAllowed: false) == nil)
        #expect(HostPort.parse("[::1", portOnlyAllowed: false) == nil)
    }

    @Test func cidrMatching() throws {
        let net = try #require(parseCIDR("10.1.0.0/16"))
        let inside = try #require(parseCIDR("10.1.200.3")).address
        let outside = try #require(parseCIDR("10.2.0.1")).address
        #expect(net.contains(inside) && !net.contains(outside))
        let v6 = try #require(parseCIDR("fd00::/8"))
        #expect(v6.contains(try #require(parseCIDR("fd12::1")).address))
        #expect(parseCIDR("10.0.0.0/33") == nil && parseCIDR("nope") == nil)
    }
}

/// The reference in docs/configuration.md covers every directive of the schema table.
@Suite struct DocumentationTests {
    @Test func everyDirectiveIsDocumented() throws {
        var url = #filePath
        while !url.hasSuffix("/Tests") { url = directoryOf(url) }
        let docs = try DiskFileSystem().read(directoryOf(url) + "/docs/configuration.md")
        let missing = Compiler.allDirectives.map(\.name).filter { !docs.contains("`\($0)`") }
        #expect(missing.isEmpty, "undocumented: \(Set(missing).sorted())")
    }
}
