import Testing
@testable import LBHTTP

/// Feeds `bytes` the way the runtime reads a client: a buffer that holds at most `capacity`
/// bytes, filled `step` bytes at a time; after each scan that needs more, the leading CR/LF
/// bytes the scanner skipped are dropped from the buffer's front when `discard` is set.
/// Returns the parsed head, or nil when no progress is possible (the buffer is full).
func parseBounded(_ bytes: [UInt8], capacity: Int, step: Int, discard: Bool = true) throws -> (RequestHead, [UInt8])? {
    var scanner = HeadScanner()
    var buffer: [UInt8] = []
    var at = 0
    while true {
        let take = min(step, capacity - buffer.count, bytes.count - at)
        buffer += bytes[at..<(at + take)]
        at += take
        if let end = try buffer.withUnsafeBytes({ b in try scanner.scan(b, isRequest: true) }) {
            let h = try buffer.withUnsafeBytes { b in try HeadParser.request(b, start: scanner.leadingBytes, end: end) }
            return (h, buffer)
        }
        if discard { buffer.removeFirst(scanner.discardLeading()) }
        if take == 0 { return nil }
    }
}

/// The error a request gets, or nil when it parses; fed `step` bytes at a time.
func refusal(_ text: String, step: Int = Int.max) -> HTTPError? {
    do {
        _ = try parseRequest(text, step: step)
        return nil
    } catch let e as HTTPError { return e } catch { return HTTPError(-1, "\(error)") }
}

/// Request heads that Debian's nginx 1.22.1 answers in a particular way (each case was sent to
/// it as raw bytes; the expected status is what it answered).
@Suite struct RequestHeadHardeningTests {
    @Test(arguments: ["get", "Get", "gET", "GET1", "G.T", "GE:T"])
    func methodsWithOtherThanUpperCaseLettersAreRefused(_ method: String) {
        #expect(refusal("\(method) / HTTP/1.1\r\nHost: a\r\n\r\n") == HTTPError(400, "invalid method"))
    }

    @Test func methodsMayUseUnderscoreAndHyphen() throws {
        let (h, b) = try #require(try parseRequest("M-SEARCH / HTTP/1.1\r\nHost: a\r\n\r\n"))
        #expect(h.method == .other && field(b, h.methodRange) == "M-SEARCH")
        #expect(refusal("FOO_BAR / HTTP/1.1\r\nHost: a\r\n\r\n") == nil)
    }

    @Test(arguments: [1, 3, Int.max])
    func traceAndConnectAreNotAllowed(_ step: Int) {
        #expect(refusal("TRACE / HTTP/1.1\r\nHost: a\r\n\r\n", step: step) == HTTPError(405, "TRACE method"))
        #expect(refusal("TRACE /proxy/x HTTP/1.0\r\n\r\n", step: step)?.status == 405)
        #expect(refusal("CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n", step: step) == HTTPError(405, "CONNECT method"))
    }

    /// nginx checks the method last: what is wrong with the headers wins.
    @Test(arguments: [
        "TRACE / HTTP/1.1\r\n\r\n",
        "TRACE / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n",
        "CONNECT host:443 HTTP/1.1\r\nHost: a\r\n\r\n",
    ])
    func badHeadersOfTraceAndConnectAre400(_ text: String) {
        #expect(refusal(text)?.status == 400)
    }

    @Test(arguments: [
        "GET http://user@host/ HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET http://user:pw@host/ HTTP/1.1\r\n\r\n",
        "GET http://user@host/ HTTP/1.0\r\n\r\n",
        "GET http://host_x/ HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET http:host/ HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET http:/// HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET 1http://host/ HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET http://host:8o/ HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET http://[::1/ HTTP/1.1\r\nHost: a\r\n\r\n",
        "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
    ])
    func absoluteTargetsWithUserinfoOrOddHostsAreRefused(_ text: String) {
        #expect(refusal(text)?.status == 400)
    }

    @Test func absoluteFormStillNeedsHostInHTTP11() throws {
        #expect(refusal("GET http://host/ HTTP/1.1\r\n\r\n") == HTTPError(400, "HTTP/1.1 request without \"Host\" header"))
        let (h, b) = try #require(try parseRequest("GET http://host/p HTTP/1.0\r\n\r\n"))
        #expect(field(b, h.absoluteHost) == "host" && h.host == nil && field(b, h.pathRange) == "/p")
    }

    @Test(arguments: [
        ("https://host/", "host", "/", nil),
        ("HTTP://HOST/a", "HOST", "/a", nil),
        ("h2c+x.y://host/", "host", "/", nil),
        ("http://[::1]:80/x", "[::1]:80", "/x", nil),
        ("http://[]/", "[]", "/", nil),
        ("http://host:/", "host:", "/", nil),
        ("http://a.b-c.d:8080/", "a.b-c.d:8080", "/", nil),
        ("http://host?x", "host", "", "x"),
        ("http://host", "host", "", nil),
    ] as [(String, String, String, String?)])
    func absoluteTargetsNginxAccepts(_ target: String, _ host: String, _ path: String, _ query: String?) throws {
        let (h, b) = try #require(try parseRequest("GET \(target) HTTP/1.1\r\nHost: a\r\n\r\n"))
        #expect(field(b, h.absoluteHost) == host && field(b, h.pathRange) == path && field(b, h.queryRange) == query)
    }

    @Test(arguments: [1, 2, Int.max])
    func http09RequestLineIsACompleteHead(_ step: Int) throws {
        let text = "GET /index.html\r\nGET / HTTP/1.1\r\n"
        let (h, b) = try #require(try parseRequest(text, step: step))
        #expect(h.isHTTP09 && h.versionMajor == 0 && h.versionMinor == 9 && !h.keepAlive)
        #expect(field(b, h.pathRange) == "/index.html" && h.headers.isEmpty && h.length == 17)
    }

    @Test(arguments: ["GET /  \n", "GET /?q\r\n", "GET http://host/\r\n", "GET http://host \r\n"])
    func http09FormsNginxServes(_ text: String) throws {
        let (h, _) = try #require(try parseRequest(text, step: 1))
        #expect(h.isHTTP09)
    }

    @Test(arguments: [
        ("POST /\r\n", "invalid method in HTTP/0.9 request"),
        ("HEAD /\r\n", "invalid method in HTTP/0.9 request"),
        ("TRACE /\r\n", "invalid method in HTTP/0.9 request"),
        ("GET\r\n", "invalid method"),
        ("GET \r\n", "invalid request target"),
        ("GET http://host\r\n", "invalid request"),
        ("GET http://host:80\r\n", "invalid request"),
    ])
    func http09RefusalsComeAtOnce(_ text: String, _ reason: String) {
        // Byte at a time: the error comes with the line's LF, no blank line needed.
        #expect(refusal(text, step: 1) == HTTPError(400, reason))
    }

    @Test func aVersionedRequestLineStillWaitsForHeaders() throws {
        #expect(try parseRequest("GET / HTTP/1.1\r\n", step: 1) == nil)
        #expect(try parseRequest("GET / HTTP/1.1  \r\nHost: a\r\n", step: 1) == nil)
    }

    /// nginx refuses a request line at the first byte it cannot read; lb at the latest when
    /// the line ends, never after waiting for headers that will not come.
    @Test(arguments: [
        ("get", HTTPError(400, "invalid method")),
        ("\u{16}\u{03}\u{01}", HTTPError(400, "invalid method")), // a TLS handshake
        (" GET", HTTPError(400, "invalid method")),
        ("\r\nGET\t/", HTTPError(400, "invalid method")),
        ("GET / FOO\r\n", HTTPError(400, "invalid protocol")),
        ("GET / HTTP/2.0\r\n", HTTPError(505, "unsupported version")),
        ("GET / HTTP/1.x\r\n", HTTPError(400, "invalid version")),
        ("GET / HTTP/1.1 x\r\n", HTTPError(400, "invalid line ending")),
        ("GET / HTTP/1.1\rx\n", HTTPError(400, "invalid line ending")),
    ])
    func badRequestLinesAreRefusedWithoutWaitingForHeaders(_ text: String, _ error: HTTPError) {
        for step in [1, 2, Int.max] {
            #expect(refusal(text, step: step) == error)
            // With the head complete, the parser gives the same answer.
            #expect(refusal(text + "Host: a\r\n\r\n") == error)
        }
    }

    @Test(arguments: [
        ("HTTP/1.10", 10), ("HTTP/1.1  ", 1), ("HTTP/1.0", 0), ("HTTP/1.999", 999),
    ])
    func versionsNginxAccepts(_ version: String, _ minor: Int) throws {
        let (h, _) = try #require(try parseRequest("GET / \(version)\r\nHost: a\r\n\r\n"))
        #expect(h.versionMajor == 1 && h.versionMinor == minor)
    }

    @Test(arguments: [
        ("HTTP/2", 505), ("HTTP/10.1", 505), ("HTTP/3.0", 505), ("HTTP/0.9", 400), ("HTTP/1.", 400),
        ("HTTP/1.1000", 400), ("HTTP/1.1x", 400), ("HTTP/01.1", 400),
    ])
    func versionsNginxRefuses(_ version: String, _ status: Int) {
        #expect(refusal("GET / \(version)\r\nHost: a\r\n\r\n")?.status == status)
    }

    @Test(arguments: ["\r\r\n", "\r", "\n\r\n\r", "\n\n\n"])
    func anyLeadingCRAndLFBytesAreSkipped(_ prefix: String) throws {
        for step in [1, 2, Int.max] {
            let (h, b) = try #require(try parseRequest(prefix + "GET /a HTTP/1.1\r\nHost: x\r\n\r\n", step: step))
            #expect(field(b, h.pathRange) == "/a" && h.length == 28)
        }
    }

    @Test(arguments: [1, 1000, 4096])
    func fortyKilobytesOfEmptyLinesFitABoundedBuffer(_ step: Int) throws {
        let request = Array(String(repeating: "\r\n", count: 20480).utf8) + Array("GET /a HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
        let capacity = HeadScanner().maxHead + 4096 // what lb's ClientConnection holds while reading a head
        let (h, b) = try #require(try parseBounded(request, capacity: capacity, step: step))
        #expect(field(b, h.pathRange) == "/a" && field(b, h.host) == "x")
        // The control: a reader that does not drop them is stuck with a full buffer.
        #expect(try parseBounded(request, capacity: capacity, step: step, discard: false) == nil)
    }

    @Test func discardingMidLineKeepsTheLinesPosition() throws {
        var scanner = HeadScanner()
        var buffer = Array("\r\n\n\rGET / HT".utf8)
        #expect(try buffer.withUnsafeBytes { b in try scanner.scan(b, isRequest: true) } == nil)
        #expect(scanner.discardLeading() == 4 && scanner.leadingBytes == 0)
        buffer.removeFirst(4)
        buffer += Array("TP/1.1\r\nHost: a\r\n\r\n".utf8)
        let end = try #require(try buffer.withUnsafeBytes { b in try scanner.scan(b, isRequest: true) })
        #expect(end == buffer.count)
        let h = try buffer.withUnsafeBytes { b in try HeadParser.request(b, start: scanner.leadingBytes, end: end) }
        #expect(h.method == .get && h.versionMinor == 1)
    }

    @Test func leadingEmptyLinesCountAgainstNoLimit() throws {
        let limits = HeadScanner(maxFirstLine: 64, maxHeaderLine: 64, maxHead: 100)
        let text = String(repeating: "\r\n", count: 500) + "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
        #expect(try parseRequest(text, step: 7, scanner: limits) != nil)
    }
}

@Suite struct StatusLineHardeningTests {
    func parse(_ s: String, step: Int = Int.max) throws -> ResponseHead? {
        let all = Array(s.utf8)
        var scanner = HeadScanner()
        var have = 0
        while have < all.count {
            have = min(all.count, have + step)
            let end = try Array(all[0..<have]).withUnsafeBytes { b in try scanner.scan(b, isRequest: false) }
            if let end { return try all.withUnsafeBytes { b in try HeadParser.response(b, start: 0, end: end) } }
        }
        return nil
    }

    /// nginx passes these through as an HTTP/0.9 response ("upstream sent no valid HTTP/1.0
    /// header"); lb refuses them with 502 rather than relay a head it cannot read.
    @Test(arguments: [
        "HTTP/1.1 2000 OK", "HTTP/1.1 20 OK", "HTTP/1.1 200OK", "HTTP/1.1 2x0 OK", "HTTP/0.9 200 OK",
        "http/1.1 200 OK", "HTTP/1.1", "HTTP/1.1 ", "HTTP/11 200 OK", "HTTP/1.1000 200 OK", "ICY 200 OK",
    ])
    func statusLinesThatAreNotHTTP1AreRefused(_ line: String) {
        for step in [1, Int.max] {
            #expect(throws: HTTPError(502, "upstream sent no valid HTTP/1.0 header")) { try parse(line + "\r\nContent-Length: 3\r\n\r\n", step: step) }
        }
    }

    @Test(arguments: [
        ("HTTP/1.1  200 OK", 200, "OK", 1), ("HTTP/2.0 200 OK", 200, "OK", 1), ("HTTP/1.12 200 OK", 200, "OK", 1),
        ("HTTP/1.1 200", 200, "", 1), ("HTTP/1.1 403.1 X", 403, ".1 X", 1), ("HTTP/1.1 999 Odd", 999, "Odd", 1),
        ("HTTP/1.0 204 No Content", 204, "No Content", 0),
    ])
    func statusLinesNginxAccepts(_ line: String, _ status: Int, _ reason: String, _ minor: Int) throws {
        let text = line + "\r\nContent-Length: 0\r\n\r\n"
        let h = try #require(try parse(text, step: 1))
        let bytes = Array(text.utf8)
        #expect(h.status == status && field(bytes, h.reasonRange) == reason && h.versionMinor == minor && h.close == (minor == 0))
    }
}
