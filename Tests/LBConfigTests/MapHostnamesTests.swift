import Testing
@testable import LBConfig

/// `map … { hostnames; … }`: wildcard keys matched as nginx's combined hash (exact, then the
/// longest leading wildcard, then the longest trailing one). Expected values and errors are
/// Debian's nginx 1.22 answers for the same map (`map $arg_h $m`, `return 200 $m`; `nginx -t`).
struct MapHostnamesTests {
    static let block = """
    map $arg_h $m {
        hostnames;
        default none;
        example.com exact;
        *.example.com star;
        .example.org dot;
        *.a.example.org star-a;
        www.example.* tail;
        www.example.com.* tail2;
    }
    """

    /// The key whose value a name gets, as the runtime looks it up (exact, then wildcards).
    static func lookup(_ m: MapBlock, _ name: String) -> String {
        var n = name.lowercased()
        if m.hostnames && n.hasSuffix(".") { n.removeLast() }
        if let t = m.exact[n] ?? m.wildcards?.find(n[...]) { return t.source }
        return m.defaultValue.source
    }

    @Test(arguments: [
        ("example.com", "exact"), ("EXAMPLE.com.", "exact"), ("www.example.com", "star"), ("a.b.example.com", "star"),
        ("example.org", "dot"), ("x.example.org", "dot"), ("a.example.org", "dot"), ("z.a.example.org", "star-a"),
        ("www.example.net", "tail"), ("www.example", "none"), ("www.example.com.au", "tail2"),
        ("www.example.com.x.y", "tail2"), ("", "none"), (".", "none"), ("example.com..", "none"), ("org", "none"),
    ])
    func wildcardKeysMatchAsNginxsHash(_ name: String, _ nginx: String) throws {
        let t = try load("events {}\nhttp {\n\(Self.block)\nserver { listen 80; }\n}\n")
        let m = try #require(t.maps.first { $0.variable == "m" })
        #expect(Self.lookup(m, name) == nginx)
    }

    @Test func keysBeforeHostnamesAreExactStrings() throws {
        let t = try load("events {}\nhttp {\nmap $arg_h $m { *.example.com a; hostnames; .example.com b; }\nserver { listen 80; }\n}\n")
        let m = try #require(t.maps.first { $0.variable == "m" })
        #expect(Self.lookup(m, "*.example.com") == "a")
        #expect(Self.lookup(m, "www.example.com") == "b")
    }

    @Test func withoutHostnamesAWildcardIsAPlainKey() throws {
        let t = try load("events {}\nhttp {\nmap $arg_h $m { *.example.com a; default d; }\nserver { listen 80; }\n}\n")
        let m = try #require(t.maps.first { $0.variable == "m" })
        #expect(m.wildcards == nil)
        #expect(Self.lookup(m, "www.example.com") == "d")
        #expect(Self.lookup(m, "*.example.com") == "a")
    }

    @Test(arguments: [
        ("hostnames; example.com a; .example.com b;", "conflicting parameter \".example.com\""),
        ("hostnames; .EXAMPLE.com b; example.com a;", "conflicting parameter \"example.com\""),
        ("hostnames; *.example.com a; .example.com b;", "conflicting parameter \".example.com\""),
        ("hostnames; www.example.* a; www.EXAMPLE.* b;", "conflicting parameter \"www.example.*\""),
        ("hostnames; \\*.x.com a; *.x.com b;", "conflicting parameter \"*.x.com\""),
        ("hostnames; *.*.com a;", "invalid hostname or wildcard \"*.*.com\""),
        ("hostnames; www.*.com a;", "invalid hostname or wildcard \"www.*.com\""),
        ("hostnames; a..com a;", "invalid hostname or wildcard \"a..com\""),
        ("hostnames; * a;", "invalid hostname or wildcard \"*\""),
        ("*.example.com a; hostnames; .example.com b;", "no error"),
        ("volatile; hostnames; default x;", "no error"),
    ])
    func keyErrorsAreNginxs(_ body: String, _ nginx: String) {
        let e = loadError("events {}\nhttp {\nmap $host $m { \(body) }\nserver { listen 80; }\n}\n")
        #expect(e == (nginx == "no error" ? nginx : nginx + " in t.conf:3"))
    }

    @Test func volatileIsKeptOnTheMap() throws {
        let t = try load("events {}\nhttp {\nmap $host $a { volatile; default x; }\nmap $host $b { default y; }\nserver { listen 80; }\n}\n")
        #expect(t.maps.first { $0.variable == "a" }?.volatile == true)
        #expect(t.maps.first { $0.variable == "b" }?.volatile == false)
    }
}
