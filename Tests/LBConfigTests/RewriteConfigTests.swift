import Testing
@testable import LBConfig

/// The rewrite module's directives compiled into programs, and nginx's errors for bad input
/// (each message as Debian's nginx 1.22 prints it for the same line).
@Suite struct RewriteConfigTests {
    func location(_ t: RoutingTable, _ uri: String) -> Location { t.servers[0].locations.find(uri)! }

    @Test func directivesBecomeOpsInOrderWithIfBlocksJumpingPastTheirBody() throws {
        let t = try load(server("""
        location /a {
            set $x 1;
            if ($x) { rewrite ^ /b; break; }
            return 200 "done";
        }
        """))
        let p = try #require(location(t, "/a").rewrite)
        #expect(p.ops.count == 5)
        guard case .set(.user("x"), _) = p.ops[0] else { Issue.record("op 0 is \(p.ops[0])"); return }
        guard case .ifBlock(.truthy, let loc, let end) = p.ops[1] else { Issue.record("op 1 is \(p.ops[1])"); return }
        #expect(loc == 0 && end == 4)
        guard case .rewrite(let r) = p.ops[2], case .none = r.flag else { Issue.record("op 2 is \(p.ops[2])"); return }
        guard case .break = p.ops[3], case .return(let ret) = p.ops[4] else { Issue.record("ops 3, 4"); return }
        #expect(ret.code == 200)
        #expect(p.ifLocations.count == 1)
        #expect(t.setVariables == ["x"])
    }

    @Test func replacementArgumentsAndFlagsAreSplitAsNginxCompilesThem() throws {
        let t = try load(server("""
        location /a { rewrite ^/a/(.*)$ /b/$1?x=$1; }
        location /b { rewrite ^ /c?; }
        location /c { rewrite ^ http://h/$1 last; }
        location /d { rewrite ^ /e?k=v redirect; }
        location /e { rewrite ^ $scheme://h permanent; }
        """))
        func rule(_ uri: String) throws -> RewriteRule {
            guard case .rewrite(let r)? = location(t, uri).rewrite?.ops.first else { throw ConfigError("no rule") }
            return r
        }
        let a = try rule("/a")
        #expect(a.replacement.source == "/b/$1" && a.argsPart?.source == "x=$1" && a.addArgs && a.hasQuestion)
        let b = try rule("/b")
        #expect(b.replacement.source == "/c" && b.argsPart == nil && !b.addArgs)
        #expect(try rule("/c").flag == .redirect(302)) // an absolute replacement redirects whatever the flag
        let d = try rule("/d")
        #expect(d.flag == .redirect(302) && d.argsPart == nil && d.replacement.source == "/e?k=v")
        #expect(try rule("/e").flag == .redirect(301))
    }

    @Test func aLocationWithOnlyReturnKeepsItAsItsHandler() throws {
        let t = try load(server("location /a { return 301 /b; }\n return 404;"))
        guard case .return(let r) = location(t, "/a").handler else { Issue.record("handler"); return }
        #expect(r.code == 301)
        #expect(t.servers[0].serverReturn?.code == 404)
        #expect(t.servers[0].rewrite == nil)
    }

    @Test func serversWithoutRewriteDirectivesTakeTheDirectPath() throws {
        let t = try load(server("location / { proxy_pass http://127.0.0.1:9000; }"))
        #expect(!t.servers[0].routesWithRewrites)
        let u = try load(server("location / { proxy_pass http://127.0.0.1:9000; }\n location /x { set $a 1; }"))
        #expect(u.servers[0].routesWithRewrites)
    }

    @Test func anIfBlockInheritsTheLocationAndOverridesWhatItSets() throws {
        let t = try load(server("""
        location /a {
            root /srv;
            add_header X-Outer 1;
            proxy_pass http://127.0.0.1:9000;
            if ($arg_x) { add_header X-Inner 1; }
            if ($arg_y) { root /other; proxy_pass http://127.0.0.1:9001; }
        }
        """))
        let p = try #require(location(t, "/a").rewrite)
        let first = p.ifLocations[0], second = p.ifLocations[1]
        #expect(first.settings.addHeaders?.map(\.name) == ["X-Inner"])
        guard case .proxy(let t1) = first.handler, case .proxy(let t2) = second.handler else { Issue.record("handlers"); return }
        #expect(t1.port == 9000 && t2.port == 9001)
        #expect(second.settings.addHeaders?.map(\.name) == ["X-Outer"])
        guard case .root(let r)? = second.settings.docRoot else { Issue.record("root"); return }
        #expect(r.source == "/other")
    }

    @Test(arguments: [
        ("location / { if $x { } }", "invalid condition \"$x\" in t.conf:4"),
        ("location / { if ($x { } }", "invalid condition \"$x\" in t.conf:4"),
        ("location / { if ($uri ~ a b) { } }", "invalid condition \"$uri\" in t.conf:4"),
        ("location / { if ($uri <> a) { } }", "unexpected \"<>\" in condition in t.conf:4"),
        ("location / { if (-q /x) { } }", "invalid condition \"-q\" in t.conf:4"),
        ("location / { if (-f) { } }", "invalid condition \"-f\" in t.conf:4"),
        ("location / { if (x) { } }", "invalid condition \"x\" in t.conf:4"),
        ("location / { if ($uri ~ \"(\") { } }", "pcre2_compile() failed: missing closing parenthesis in \"(\" in t.conf:4"),
        ("location / { rewrite ^ \"\"; }", "empty replacement in t.conf:4"),
        ("location / { rewrite ^ /x lst; }", "invalid parameter \"lst\" in t.conf:4"),
        ("location / { rewrite ( /x; }", "pcre2_compile() failed: missing closing parenthesis in \"(\" in t.conf:4"),
        ("location / { set x 1; }", "invalid variable name \"x\" in t.conf:4"),
        ("location / { set $uri 1; }", "the duplicate \"uri\" variable in t.conf:4"),
        ("location / { return $uri; }", "invalid return code \"$uri\" in t.conf:4"),
        ("location / { if ($uri) { if ($uri) { } } }", "\"if\" directive is not allowed here in t.conf:4"),
        ("location / { if ($uri) { proxy_set_header A b; } }", "\"proxy_set_header\" directive is not allowed here in t.conf:4"),
        ("location / { if ($uri) { proxy_pass http://127.0.0.1:9/x; } }", "\"proxy_pass\" cannot have URI part in location given by regular expression, or inside named location, or inside \"if\" statement, or inside \"limit_except\" block in t.conf:4"),
        ("if ($uri) { root /x; }", "\"root\" directive is not allowed here in t.conf:4"),
        ("location / { return 200 $undefined_thing; }", "unknown \"undefined_thing\" variable in t.conf:4"),
        ("rewrite_log maybe;", "invalid value \"maybe\" in \"rewrite_log\" directive, it must be \"on\" or \"off\" in t.conf:4"),
    ])
    func badInputIsRefusedWithNginxsWords(_ body: String, _ expected: String) {
        #expect(loadError(server(body)) == expected)
    }

    @Test func proxyPassWithVariablesIsResolvedPerRequest() throws {
        let t = try load(server("location ~ ^/(.*)$ { proxy_pass http://$host/$1; }"))
        guard case .proxy(let target) = t.servers[0].locations.find("/x")!.handler else { Issue.record("handler"); return }
        #expect(target.variableURLIndex == 0 && t.variableProxyURLs.map(\.source) == ["http://$host/$1"])
        // The scheme too is made per request: the location's upstream TLS context is ready.
        let s = try load(server("location / { proxy_pass $arg_scheme://$host; proxy_cache_key $proxy_host$uri; }"))
        guard case .proxy(let v) = s.servers[0].locations.find("/")!.handler else { Issue.record("handler"); return }
        #expect(v.variableURLIndex == 0 && v.tls != nil)
        #expect(loadError(server("location / { proxy_pass http://$nope; }")) == "unknown \"nope\" variable in t.conf:4")
    }

    @Test func variablesSetAnywhereAreKnownEverywhere() throws {
        // Used in a log format and a header before the `set` that defines it, as nginx allows.
        _ = try load("""
        http {
            log_format f "$tag";
            server { listen 8080; add_header X-Tag $tag; location / { set $tag a; } }
        }
        """)
        // Named captures of an if regex and of a rewrite are variables too.
        _ = try load(server("location / { if ($uri ~ (?<part>.+)) { } rewrite (?<rest>.*) /$rest; return 200 $part; }"))
    }
}
