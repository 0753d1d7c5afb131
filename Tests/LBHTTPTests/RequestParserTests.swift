import Testing
@testable import LBHTTP

/// Feeds `text` in pieces of `step` bytes; returns the head once complete.
func parseRequest(_ text: String, step: Int = Int.max, scanner: HeadScanner = HeadScanner()) throws -> (RequestHead, [UInt8])? {
    let all = Array(text.utf8)
    var s = scanner
    var have = 0
    while have < all.count {
        have = min(all.count, have + step)
        let end = try Array(all[0..<have]).withUnsafeBytes { b in try s.scan(b, isRequest: true) }
        if let end {
            let h = try all.withUnsafeBytes { b in try HeadParser.request(b, start: s.leadingBytes, end: end) }
            return (h, all)
        }
    }
    return nil
}

func field(_ bytes: [UInt8], _ r: Range<Int>?) -> String? { r.map { String(decoding: bytes[$0], as: UTF8.self) } }

func status(_ text: String) -> Int {
    do {
        _ = try parseRequest(text)
        return 0
    } catch let e as HTTPError { return e.status } catch { return -1 }
}

@Suite struct RequestParserTests {
    static let sample = "POST /api/items?x=1&y=2 HTTP/1.1\r\nHost: example.com:8080\r\nUser-Agent: curl/8\r\nContent-Length: 5\r\nX-Empty:\r\nX-Pad:   spaced value  \r\n\r\nhello"

    @Test(arguments: [1, 2, 3, 7, 64, Int.max])
    func sameResultAtAnySplit(_ step: Int) throws {
        let (h, b) = try #require(try parseRequest(Self.sample, step: step))
        #expect(h.method == .post)
        #expect(field(b, h.targetRange) == "/api/items?x=1&y=2")
        #expect(field(b, h.pathRange) == "/api/items")
        #expect(field(b, h.queryRange) == "x=1&y=2")
        #expect(field(b, h.host) == "example.com:8080")
        #expect(h.contentLength == 5 && !h.chunked && h.keepAlive)
        #expect(h.headers.count == 5)
        #expect(field(b, h.headers[3].value) == "")
        #expect(field(b, h.headers[4].value) == "spaced value")
        #expect(h.length == Self.sample.utf8.count - 5)
    }

    @Test func incompleteHeadNeedsMore() throws {
        #expect(try parseRequest("GET / HTTP/1.1\r\nHost: a\r\n") == nil)
    }

    @Test func versionsAndKeepAlive() throws {
        #expect(try parseRequest("GET / HTTP/1.0\r\n\r\n")!.0.keepAlive == false)
        #expect(try parseRequest("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")!.0.keepAlive == true)
        #expect(try parseRequest("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")!.0.keepAlive == false)
        #expect(try parseRequest("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")!.0.upgrade)
        #expect(try parseRequest("PUT /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")!.0.expectContinue)
    }

    @Test func bareLFLinesAndLeadingBlankLinesAreAccepted() throws {
        let (h, b) = try #require(try parseRequest("\r\n\r\nGET /a HTTP/1.1\nHost: x\n\n"))
        #expect(field(b, h.pathRange) == "/a" && field(b, h.host) == "x")
    }

    @Test func absoluteFormTarget() throws {
        let (h, b) = try #require(try parseRequest("GET http://example.org/p?q HTTP/1.1\r\nHost: other\r\n\r\n"))
        #expect(field(b, h.absoluteHost) == "example.org" && field(b, h.pathRange) == "/p" && field(b, h.queryRange) == "q")
    }

    /// Request smuggling and malformed messages: all refused, with nginx's status.
    @Test(arguments: [
        ("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1e3\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n  folded\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: a\r\nX-Bad : v\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: a\r\nX: a\u{0}b\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
        ("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        ("GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400),
        ("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
        ("GET / HTTX/1.1\r\nHost: a\r\n\r\n", 400),
        ("G@T / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("GET  HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("GET nopath HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\n: empty-name\r\n\r\n", 400),
    ])
    func refused(_ text: String, _ expected: Int) {
        #expect(status(text) == expected)
    }

    @Test func sizeLimitsAreEnforcedWhileWaiting() {
        let limits = HeadScanner(maxFirstLine: 64, maxHeaderLine: 64, maxHead: 200)
        let longURI = "GET /" + String(repeating: "a", count: 100)
        #expect(throws: HTTPError(414, "too long request line")) { try parseRequest(longURI, step: 10, scanner: limits) }
        let longHeader = "GET / HTTP/1.1\r\nX: " + String(repeating: "b", count: 100)
        #expect(throws: HTTPError(431, "too long header line")) { try parseRequest(longHeader, step: 1, scanner: limits) }
        let many = "GET / HTTP/1.1\r\n" + String(repeating: "X-A: 1234567890\r\n", count: 20)
        #expect(throws: HTTPError(431, "too large head")) { try parseRequest(many, step: 5, scanner: limits) }
    }
}

@Suite struct ResponseParserTests {
    func parse(_ s: String) throws -> ResponseHead? {
        let a = Array(s.utf8)
        var sc = HeadScanner()
        guard let end = try a.withUnsafeBytes({ b in try sc.scan(b, isRequest: false) }) else { return nil }
        return try a.withUnsafeBytes { b in try HeadParser.response(b, start: 0, end: end) }
    }

    @Test func framing() throws {
        let a = try #require(try parse("HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n"))
        #expect(a.status == 200 && a.contentLength == 12 && !a.chunked && !a.close)
        let b = try #require(try parse("HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"))
        #expect(b.status == 404 && b.chunked && b.close)
        let c = try #require(try parse("HTTP/1.0 200 OK\r\n\r\n"))
        #expect(c.close && c.contentLength == nil)
        let d = try #require(try parse("HTTP/1.1 204 \r\n\r\n"))
        #expect(d.status == 204)
    }

    @Test func malformedIs502() {
        #expect(throws: HTTPError.self) { try parse("HTTP/1.1 2x0 OK\r\n\r\n") }
        #expect(throws: HTTPError.self) { try parse("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n") }
        #expect(throws: HTTPError.self) { try parse("ICY 200 OK\r\n\r\n") }
    }
}

@Suite struct ChunkedTests {
    func run(_ s: String, step: Int) throws -> (consumed: Int, payload: String, done: Bool) {
        let a = Array(s.utf8)
        var f = ChunkedFramer()
        var payload: [UInt8] = []
        var at = 0
        while at < a.count && !f.isDone {
            let end = min(a.count, at + step)
            let piece = Array(a[at..<end])
            let n = try piece.withUnsafeBytes { b in try f.consume(b) { payload += piece[$0] } }
            at += n
            if n < piece.count { break }
        }
        return (at, String(decoding: payload, as: UTF8.self), f.isDone)
    }

    @Test(arguments: [1, 2, 5, 1000])
    func decodesAtAnySplitAndStopsAtTheEnd(_ step: Int) throws {
        let body = "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\n"
        let r = try run(body + "GET /next", step: step)
        #expect(r.payload == "hello world" && r.done && r.consumed == body.utf8.count)
    }

    @Test(arguments: ["x\r\n", "5\nhello\r\n0\r\n\r\n", "5\r\nhelloXX0\r\n\r\n", "ffffffffffffffff\r\n", "\r\n", "-1\r\n", "5 \r\nhello\r\n0\r\n\n"])
    func malformedFramingIsRefused(_ body: String) {
        #expect(throws: HTTPError.self) { try run(body, step: 1) }
    }
}

@Suite struct URITests {
    func norm(_ s: String) -> String? {
        Array(s.utf8).withUnsafeBytes { URI.normalize($0) }.map { String(decoding: $0, as: UTF8.self) }
    }

    @Test(arguments: [
        ("/", "/"), ("/a/b", "/a/b"), ("//a///b", "/a/b"), ("/a/./b", "/a/b"), ("/a/../b", "/b"), ("/a/b/..", "/a/"),
        ("/a/%2e%2E/b", "/b"), ("/%61%62c", "/abc"), ("/a%20b", "/a b"), ("/a/", "/a/"), ("/.", "/"),
    ])
    func normalizes(_ input: String, _ expected: String) {
        #expect(norm(input) == expected)
    }

    @Test(arguments: ["/..", "/../etc/passwd", "/a/../../b", "/%2e%2e/x", "/a%00b", "/a%zz", "/a%2", "rel"])
    func refuses(_ input: String) {
        #expect(norm(input) == nil)
    }

    @Test func httpDates() {
        var d = DateCache()
        d.update(784_111_777)
        #expect(String(decoding: d.httpDate, as: UTF8.self) == "Sun, 06 Nov 1994 08:49:37 GMT")
        #expect(String(decoding: d.logTime, as: UTF8.self) == "06/Nov/1994:08:49:37 +0000")
        #expect(DateCache.parse("Sun, 06 Nov 1994 08:49:37 GMT") == 784_111_777)
        d.update(951_782_400) // leap day 2000
        #expect(String(decoding: d.httpDate, as: UTF8.self) == "Tue, 29 Feb 2000 00:00:00 GMT")
    }
}
