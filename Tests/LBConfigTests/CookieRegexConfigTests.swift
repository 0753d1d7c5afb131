import Testing
@testable import LBConfig

/// How `proxy_cookie_domain` and `proxy_cookie_path` read a regex, as nginx's proxy module does
/// (errors compared with `nginx -t` 1.22.1).
@Suite struct CookieRegexConfigTests {
    func location(_ directives: String) throws -> HTTPSettings {
        let t = try load(server("location / {\n\(directives)\n}"))
        return try #require(t.servers[0].locations.find("/")?.settings)
    }

    @Test func pathRegexesHeedCaseUnlessStarredAndDomainRegexesNever() throws {
        let s = try location("""
        proxy_cookie_path ~^/Case(/.*)$ /c$1;
        proxy_cookie_path ~*^/app(/.*)?$ /$1;
        proxy_cookie_path /lit/ /literal/;
        proxy_cookie_domain ~\\.(?P<sl_domain>[-0-9a-z]+\\.[a-z]+)$ $sl_domain;
        proxy_cookie_domain .back.test .front.test;
        """)
        let paths = try #require(s.proxyCookiePaths), domains = try #require(s.proxyCookieDomains)
        #expect(paths.map { $0.regex?.pattern } == ["^/Case(/.*)$", "^/app(/.*)?$", nil])
        #expect(paths.map { $0.regex?.caseless } == [false, true, nil])
        #expect(paths[2].from.description == "/lit/")
        #expect(domains[0].regex?.pattern == "\\.(?P<sl_domain>[-0-9a-z]+\\.[a-z]+)$" && domains[0].regex?.caseless == true)
        // A literal domain pair loses its leading dots; a regex rule's replacement keeps its own.
        #expect(domains[1].regex == nil && domains[1].from.description == "back.test" && domains[1].to.description == "front.test")
        #expect(try location("proxy_cookie_domain ~x .y;").proxyCookieDomains?[0].to.description == ".y")
    }

    /// A named capture is a variable the replacement (and anything else) may use.
    @Test func namedCapturesBecomeVariables() throws {
        #expect(throws: Never.self) { try location("proxy_cookie_domain ~(?<d>[a-z]+)$ $d; add_header X-D $d;") }
        #expect(loadError(server("location / { proxy_cookie_path ~^/(.*)$ /$1$nope; }")) == "unknown \"nope\" variable in t.conf:4")
    }

    @Test(arguments: [
        // nginx drops only the `~` of a domain regex: `~*` leaves a pattern starting with `*`.
        ("proxy_cookie_domain ~*foo bar;", "pcre2_compile() failed: quantifier does not follow a repeatable item in \"*foo\" at \"*foo\" in t.conf:4"),
        ("proxy_cookie_path ~*(foo bar;", "pcre2_compile() failed: missing closing parenthesis in \"(foo\" in t.conf:4"),
        ("proxy_cookie_path ~a b; proxy_cookie_path off;", "\"proxy_cookie_path\" directive is duplicate in t.conf:4"),
        ("proxy_cookie_domain off; proxy_cookie_domain ~a b;", "\"proxy_cookie_domain\" directive is duplicate in t.conf:4"),
    ])
    func badRulesAreRefusedAsNginxRefusesThem(directives: String, expected: String) {
        #expect(loadError(server("location / { \(directives) }")) == expected)
    }
}

/// `proxy_cookie_flags` as nginx 1.22's `-t` reads it.
struct CookieFlagsConfigTests {
    @Test(arguments: [
        ("proxy_cookie_flags one;", "invalid parameter \"one\" in t.conf:3"),
        ("proxy_cookie_flags off; proxy_cookie_flags a secure;", "\"proxy_cookie_flags\" directive is duplicate in t.conf:3"),
        ("proxy_cookie_flags a secure; proxy_cookie_flags off;", "\"proxy_cookie_flags\" directive is duplicate in t.conf:3"),
        ("proxy_cookie_flags off; proxy_cookie_flags off;", "\"proxy_cookie_flags\" directive is duplicate in t.conf:3"),
        ("proxy_cookie_flags a 1 2 3 4;", "invalid number of arguments in \"proxy_cookie_flags\" directive in t.conf:3"),
        ("proxy_cookie_flags;", "invalid number of arguments in \"proxy_cookie_flags\" directive in t.conf:3"),
        ("proxy_cookie_flags one foo;", "no error"),
        ("proxy_cookie_flags ~^s(?<n>.) secure; proxy_cookie_flags $host httponly nosamesite;", "no error"),
    ])
    func directiveErrorsAreNginxs(_ line: String, _ nginx: String) {
        #expect(loadError("events {}\nhttp {\n\(line)\nserver { listen 80; }\n}\n") == nginx)
    }

    @Test func rulesAccumulateAndLocationsInheritThem() throws {
        let t = try load("events {}\nhttp {\nproxy_cookie_flags a secure;\nproxy_cookie_flags ~^b httponly;\nserver { listen 80; location / { } location /off/ { proxy_cookie_flags off; } }\n}\n")
        let s = t.server(for: 0, host: "localhost")
        let rules = try #require(s.locations.find("/x")?.settings.proxyCookieFlags)
        #expect(rules.count == 2 && rules[0].regex == nil && rules[1].regex != nil)
        #expect(s.locations.find("/off/")?.settings.proxyCookieFlags?.isEmpty == true)
    }
}
