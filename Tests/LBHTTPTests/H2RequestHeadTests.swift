import Testing
@testable import LBHTTP

/// The HTTP/2 request head is laid out from the decoded fields and its `RequestHead` made at the
/// same time, without a parse: it must be what `HeadParser.request` makes of the same octets,
/// under every header-name rule, with and without the chunked framing added for a body without
/// `content-length`, and refuse what the parser refuses with the same status and reason.
struct H2RequestHeadTests {
    static let allRules = [HeaderNameRules(), HeaderNameRules(underscores: true), HeaderNameRules(ignoreInvalid: false),
                           HeaderNameRules(underscores: true, ignoreInvalid: false)]

    /// A decoded header list as the HPACK decoder gives it.
    static func list(_ pairs: [(String, String)]) -> HPACKHeaderList {
        var l = HPACKHeaderList()
        for (name, value) in pairs { l.append(name: Array(name.utf8), value: Array(value.utf8)) }
        return l
    }

    /// The HTTP/1.1 form written independently of the code under test: request line, `host`
    /// from `:authority` (a `host` field beside it dropped), the fields in order with every
    /// `cookie` joined at the first, `transfer-encoding: chunked` when there is a body without
    /// `content-length`, the blank line.
    static func http1(_ pairs: [(String, String)], endStream: Bool) -> [UInt8] {
        let pseudo = Dictionary(pairs.filter { $0.0.hasPrefix(":") }, uniquingKeysWith: { a, _ in a })
        let regular = pairs.filter { !$0.0.hasPrefix(":") }
        var s = "\(pseudo[":method"]!) \(pseudo[":path"]!) HTTP/1.1\r\n"
        if let a = pseudo[":authority"] { s += "host: \(a)\r\n" }
        let cookies = regular.filter { $0.0 == "cookie" }.map(\.1)
        var cookieDone = false
        for (name, value) in regular {
            if name == "host" && pseudo[":authority"] != nil { continue }
            if name == "cookie" && cookies.count > 1 {
                if !cookieDone { s += "cookie: \(cookies.joined(separator: "; "))\r\n" }
                cookieDone = true
                continue
            }
            s += "\(name): \(value)\r\n"
        }
        if !endStream && !regular.contains(where: { $0.0 == "content-length" }) { s += "transfer-encoding: chunked\r\n" }
        return Array((s + "\r\n").utf8)
    }

    static let cases: [(String, [(String, String)], endStream: Bool)] = [
        ("plain GET", TestClient.get("/index.html?x=1") + [("accept", "*/*"), ("user-agent", "curl/8")], true),
        ("cookies joined, the last empty; host beside :authority dropped",
         TestClient.get() + [("cookie", "a=1"), ("host", "other"), ("accept", "*/*"), ("cookie", "b=2"), ("cookie", "")], true),
        ("names with _ . ~ (kept or dropped by the rules)",
         TestClient.get() + [("x_forwarded", "1"), ("a.b", "2"), ("x~y", "3"), ("x-ok", "4")], true),
        ("chunked body with an underscore name", TestClient.post() + [("x_token", "t"), ("accept", "*/*")], false),
        ("body with content-length", TestClient.post(length: 5), false),
        ("content-length 0 and END_STREAM", TestClient.post(length: 0), true),
        ("host from a field", [(":method", "GET"), (":scheme", "http"), (":path", "/"), ("host", "example.com:8080")], true),
        ("known headers, the first of each",
         TestClient.get() + [("if-modified-since", "Mon, 01 Jan 2024 00:00:00 GMT"), ("if-modified-since", "x"), ("range", "bytes=0-1"),
                             ("expect", "100-Continue"), ("if-none-match", "\"e\""), ("if-match", "*"), ("if-range", "\"e\""),
                             ("if-unmodified-since", "y")], true),
        ("absolute-form :path", TestClient.get("http://example.com:81/a%20b?q=1&r"), true),
        ("method of _ and -", [(":method", "M-SEARCH_X"), (":scheme", "https"), (":path", "/?"), (":authority", "[::1]:443")], true),
        (":authority with white space around it", TestClient.get(authority: " example.com\t"), true),
        ("empty :authority", TestClient.get(authority: ""), true),
        ("empty value, tab inside a value", TestClient.get() + [("x-empty", ""), ("x-tab", "a\tb")], true),
        // Refused as HTTP/1.1 refuses them.
        ("no host at all", [(":method", "GET"), (":scheme", "https"), (":path", "/")], true),
        ("two host fields", [(":method", "GET"), (":scheme", "https"), (":path", "/"), ("host", "a"), ("host", "b")], true),
        ("invalid host", TestClient.get(authority: "a\\b"), true),
        ("invalid host in a field", [(":method", "GET"), (":scheme", "https"), (":path", "/"), ("host", "a b")], true),
        ("TRACE", [(":method", "TRACE"), (":scheme", "https"), (":path", "/"), (":authority", "x")], true),
        ("TRACE with a bad host: 400 first", [(":method", "TRACE"), (":scheme", "https"), (":path", "/"), (":authority", "a/b")], true),
        ("asterisk :path", TestClient.get("*"), true),
        ("lower-case method", [(":method", "get"), (":scheme", "https"), (":path", "/"), (":authority", "x")], true),
        ("space in :path", TestClient.get("/a b"), true),
        ("control octet in a value", TestClient.get() + [("x-a", "1\u{1}2")], true),
        ("DEL in a value before a bad host", TestClient.get(authority: "a/b") + [("x-a", "1\u{7F}")], true),
        ("control octet in :authority", TestClient.get(authority: "a\u{1}b"), true),
    ]

    @Test(arguments: 0..<cases.count)
    func headIsWhatTheParserMakesOfTheSameOctets(_ k: Int) throws {
        let (why, pairs, endStream) = Self.cases[k]
        let expectedBytes = Self.http1(pairs, endStream: endStream)
        for rules in Self.allRules {
            let result = try H2RequestRules.request(Self.list(pairs), streamID: 1, endStream: endStream)
            let parsed = Result { () throws(HTTPError) in
                try expectedBytes.withBytes { (b) throws(HTTPError) in try HeadParser.request(b, start: 0, end: b.count, names: rules) }
            }
            switch (result, parsed) {
            case (.success(let r), .success(var expected)):
                #expect(Array(r.bytes[..<r.scheme.lowerBound]) == expectedBytes, "\(why)")
                #expect(String(decoding: r.bytes[r.scheme], as: UTF8.self) == pairs.first { $0.0 == ":scheme" }?.1, "\(why)")
                #expect(r.chunked == (!endStream && r.head.contentLength == nil), "\(why)")
                r.applyNameRules(rules)
                expected.versionMajor = 2
                expected.versionMinor = 0
                #expect(String(reflecting: r.head) == String(reflecting: expected), "\(why) \(rules)")
            case (.failure(let e), .failure(let expected)):
                #expect(e == expected, "\(why)")
            default:
                Issue.record("\(why) \(rules): \(result) but the parser: \(parsed)")
            }
        }
    }

    @Test func theCasesCoverWhatTheRulesChange() throws {
        // Not vacuous: the header list depends on the rules, and chunked framing is added.
        let pairs = TestClient.get() + [("x_forwarded", "1"), ("a.b", "2")]
        let counts = try Self.allRules.map { rules -> Int in
            guard case .success(let r) = try H2RequestRules.request(Self.list(pairs), streamID: 1, endStream: true) else { return -1 }
            r.applyNameRules(rules)
            return r.head.headers.count
        }
        #expect(counts == [1, 2, 3, 3])
        guard case .success(let post) = try H2RequestRules.request(Self.list(TestClient.post()), streamID: 1, endStream: false) else {
            Issue.record("POST refused")
            return
        }
        #expect(post.head.chunked && post.head.headers.count == 2)
    }

    @Test(arguments: [":path", ":method", ":authority", ":scheme"])
    func aPseudoHeaderWithCRLFOrNULIsMalformed(_ name: String) {
        for bad in ["\r\nx-smuggled: 1", "a\nb", "a\u{0}b"] {
            var pairs = TestClient.get()
            pairs = pairs.map { $0.0 == name ? ($0.0, $0.1 + bad) : $0 }
            #expect(throws: H2Error.self, "\(name) with \(bad.debugDescription)") {
                _ = try H2RequestRules.request(Self.list(pairs), streamID: 1, endStream: true)
            }
        }
        // The same request without the bad octets is accepted (the case is not vacuous).
        #expect(throws: Never.self) { _ = try H2RequestRules.request(Self.list(TestClient.get()), streamID: 1, endStream: true) }
    }
}
