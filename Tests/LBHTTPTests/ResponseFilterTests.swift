import Testing
@testable import LBHTTP

/// The not-modified and range filters, table-tested. Expected answers are Debian nginx 1.22.1's
/// for a 15-byte static file (taken with curl against `root html; location / { }`).
struct ResponseFilterTests {
    static let lm = DateCache.parse("Mon, 30 Nov 2026 17:35:43 GMT")!
    static let v = Validators(lastModified: lm, etag: Array("\"6b0db3ef-f\"".utf8))
    static func b(_ s: String) -> [UInt8] { Array(s.utf8) }

    @Test(arguments: [
        // (If-Modified-Since, expected): nginx's default `if_modified_since exact`.
        ("Mon, 30 Nov 2026 17:35:43 GMT", NotModifiedFilter.Outcome.notModified),
        ("Fri, 01 Jan 2100 00:00:00 GMT", .pass),
        ("Mon, 01 Jan 2001 00:00:00 GMT", .pass),
        ("not a date", .pass),
    ])
    func ifModifiedSinceIsExactByDefault(_ date: String, _ expected: NotModifiedFilter.Outcome) {
        #expect(NotModifiedFilter.evaluate(status: 200, validators: Self.v, request: ConditionalHeaders(ifModifiedSince: Self.b(date))) == expected)
    }

    @Test func ifModifiedSinceBeforeAndOff() {
        let future = ConditionalHeaders(ifModifiedSince: Self.b("Fri, 01 Jan 2100 00:00:00 GMT"))
        #expect(NotModifiedFilter.evaluate(status: 200, validators: Self.v, request: future, mode: .before) == .notModified)
        let same = ConditionalHeaders(ifModifiedSince: Self.b("Mon, 30 Nov 2026 17:35:43 GMT"))
        #expect(NotModifiedFilter.evaluate(status: 200, validators: Self.v, request: same, mode: .off) == .pass)
    }

    @Test(arguments: [404, 206, 301, 500])
    func onlyA200IsEverTurnedInto304Or412(_ status: Int) {
        let r = ConditionalHeaders(ifMatch: Self.b("\"nope\""), ifNoneMatch: Self.b("*"))
        #expect(NotModifiedFilter.evaluate(status: status, validators: Self.v, request: r) == .pass)
    }

    @Test(arguments: [
        ("\"6b0db3ef-f\"", true), ("*", true), ("\"a\", \"6b0db3ef-f\"", true), ("W/\"6b0db3ef-f\"", true),
        ("\"6b0db3ef-f\"x", false), ("\"other\"", false), ("", false),
    ])
    func ifNoneMatchComparesTagsWeakly(_ header: String, _ notModified: Bool) {
        let r = ConditionalHeaders(ifNoneMatch: Self.b(header))
        #expect(NotModifiedFilter.evaluate(status: 200, validators: Self.v, request: r) == (notModified ? .notModified : .pass))
    }

    @Test func preconditionsFailWith412() {
        #expect(NotModifiedFilter.evaluate(status: 200, validators: Self.v, request: ConditionalHeaders(ifMatch: Self.b("\"nope\""))) == .preconditionFailed)
        #expect(NotModifiedFilter.evaluate(status: 200, validators: Self.v, request: ConditionalHeaders(ifMatch: Self.b("W/\"6b0db3ef-f\""))) == .preconditionFailed)
        #expect(NotModifiedFilter.evaluate(status: 200, validators: Self.v, request: ConditionalHeaders(ifMatch: Self.b("\"6b0db3ef-f\""))) == .pass)
        let old = ConditionalHeaders(ifUnmodifiedSince: Self.b("Mon, 01 Jan 2001 00:00:00 GMT"))
        #expect(NotModifiedFilter.evaluate(status: 200, validators: Self.v, request: old) == .preconditionFailed)
        let later = ConditionalHeaders(ifUnmodifiedSince: Self.b("Fri, 01 Jan 2100 00:00:00 GMT"))
        #expect(NotModifiedFilter.evaluate(status: 200, validators: Self.v, request: later) == .pass)
        // Without a Last-Modified the precondition cannot hold.
        #expect(NotModifiedFilter.evaluate(status: 200, validators: Validators(lastModified: nil, etag: nil), request: later) == .preconditionFailed)
    }

    @Test(arguments: [
        ("bytes=0-1", RangeFilter.Outcome.single(0..<2)),
        ("bytes=-3", .single(12..<15)),
        ("bytes=10-", .single(10..<15)),
        ("bytes=10-100", .single(10..<15)),
        ("bytes=20-", .unsatisfiable),
        ("bytes=5-2", .unsatisfiable),
        ("bytes=0-1,3-4", .multipart([0..<2, 3..<5])),
        ("bytes=0-4,2-6", .multipart([0..<5, 2..<7])),
        ("bytes=0-10,5-14", .whole),
        ("bytes=x", .unsatisfiable),
        ("bytes=-0", .unsatisfiable),
        ("bytes=0-0,-1", .multipart([0..<1, 14..<15])),
        ("bytes= 1 - 2 ", .single(1..<3)),
        ("bytes=1-2,20-30", .single(1..<3)),
        ("bytes=0-,1-", .whole),
        ("items=0-1", .whole),
        ("bytes=3-2,20-", .unsatisfiable),
    ])
    func rangesAsNginxAnswersThem(_ header: String, _ expected: RangeFilter.Outcome) {
        let r = ConditionalHeaders(range: Self.b(header))
        #expect(RangeFilter.evaluate(status: 200, contentLength: 15, validators: Self.v, request: r) == expected)
    }

    @Test func rangesNeedA200AndAKnownLengthAndAMatchingIfRange() {
        let r = ConditionalHeaders(range: Self.b("bytes=0-1"))
        #expect(RangeFilter.evaluate(status: 404, contentLength: 15, validators: Self.v, request: r) == .whole)
        #expect(RangeFilter.evaluate(status: 200, contentLength: nil, validators: Self.v, request: r) == .whole)
        #expect(RangeFilter.evaluate(status: 200, contentLength: 15, validators: Self.v, request: r, allowed: false) == .whole)
        var ir = r
        ir.ifRange = Self.b("\"6b0db3ef-f\"")
        #expect(RangeFilter.evaluate(status: 200, contentLength: 15, validators: Self.v, request: ir) == .single(0..<2))
        ir.ifRange = Self.b("\"other\"")
        #expect(RangeFilter.evaluate(status: 200, contentLength: 15, validators: Self.v, request: ir) == .whole)
        ir.ifRange = Self.b("Mon, 30 Nov 2026 17:35:43 GMT")
        #expect(RangeFilter.evaluate(status: 200, contentLength: 15, validators: Self.v, request: ir) == .single(0..<2))
        ir.ifRange = Self.b("Mon, 30 Nov 2026 17:35:44 GMT")
        #expect(RangeFilter.evaluate(status: 200, contentLength: 15, validators: Self.v, request: ir) == .whole)
        let two = ConditionalHeaders(range: Self.b("bytes=0-1,3-4"))
        #expect(RangeFilter.evaluate(status: 200, contentLength: 15, validators: Self.v, request: two, singleOnly: true) == .whole)
        #expect(RangeFilter.evaluate(status: 200, contentLength: 15, validators: Self.v, request: two, maxRanges: 1) == .whole)
        #expect(RangeFilter.evaluate(status: 200, contentLength: 15, validators: Self.v, request: r, maxRanges: 0) == .whole)
    }

    @Test func multipartFramingHasNginxsLength() {
        // nginx: 196 bytes for bytes=0-1,3-4 of a 15-byte text/html file, 202 for 0-4,2-6.
        let m = RangeFilter.Multipart(boundary: 1, contentType: "text/html", total: 15)
        #expect(m.boundary == "00000000000000000001")
        #expect(m.contentLength([0..<2, 3..<5]) == 196)
        #expect(m.contentLength([0..<5, 2..<7]) == 202)
        #expect(String(decoding: m.partHead(0..<2), as: UTF8.self) == "\r\n--00000000000000000001\r\nContent-Type: text/html\r\nContent-Range: bytes 0-1/15\r\n\r\n")
        #expect(String(decoding: m.trailer, as: UTF8.self) == "\r\n--00000000000000000001--\r\n")
    }
}
