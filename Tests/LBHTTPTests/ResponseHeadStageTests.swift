import Testing
@testable import LBHTTP

/// The response-head stage every response passes, table-tested without sockets. The expected
/// heads are Debian nginx 1.22.1's for the same cases (`gzip on; gzip_vary on; gzip_min_length 1;`,
/// a 614-byte text/html file under `root`, `return 200 "…"` and `return 404` with default_type
/// text/html), taken with curl: nginx compresses `return` bodies and error pages, adds Vary to a
/// response that qualifies whether or not the client takes gzip, answers a Range request on a
/// compressed response with the whole compressed body, and turns only a 200 into 304/412.
struct ResponseHeadStageTests {
    static let lm = DateCache.parse("Tue, 01 Dec 2026 04:09:18 GMT")!
    static let etag = Array("\"6b0e486e-266\"".utf8)
    static let v = Validators(lastModified: lm, etag: etag)
    static func b(_ s: String) -> [UInt8] { Array(s.utf8) }

    static func file(_ status: Int = 200, gzip: Bool = false, source: ResponseSource = .file) -> HeadStageResponse {
        HeadStageResponse(status: status, source: source, contentLength: 614, gzipQualifies: gzip,
                          gzipPossible: true, rangesPossible: true)
    }
    static let vary = HeadStagePolicy(gzipVary: true, expires: true)

    /// One row: the response, the request's headers, whether the client takes gzip, and the head expected.
    struct Row: CustomTestStringConvertible, Sendable {
        var name: String
        var response: HeadStageResponse
        var conditions: ConditionalHeaders?
        var takesGzip = false
        var policy = ResponseHeadStageTests.vary
        var outcome = HeadDecision.Outcome.send
        var status: Int
        var body = HeadDecision.Body.whole
        var gzip = false
        var vary = false
        var acceptRanges = false
        var headers = true
        var testDescription: String { name }
    }

    static let rows: [Row] = [
        Row(name: "return 200 qualifies, client takes gzip: compressed, Vary",
            response: HeadStageResponse(status: 200, source: .local, contentLength: 54, gzipQualifies: true, gzipPossible: true),
            takesGzip: true, status: 200, gzip: true, vary: true),
        Row(name: "return 200 qualifies, client does not take gzip: Vary all the same",
            response: HeadStageResponse(status: 200, source: .local, contentLength: 54, gzipQualifies: true, gzipPossible: true),
            status: 200, vary: true),
        Row(name: "error page 404 qualifies: compressed; the headers filter skips a 404",
            response: HeadStageResponse(status: 404, source: .local, contentLength: 153, gzipQualifies: true, gzipPossible: true),
            takesGzip: true, status: 404, gzip: true, vary: true, headers: false),
        Row(name: "a type gzip_types does not list: neither gzip nor Vary",
            response: HeadStageResponse(status: 200, source: .local, contentLength: 54), takesGzip: true, status: 200),
        Row(name: "a file with no conditions: 200, Accept-Ranges",
            response: file(), status: 200, acceptRanges: true),
        Row(name: "a cache hit: no Accept-Ranges of its own",
            response: file(source: .cacheHit), status: 200),
        Row(name: "If-None-Match matches a file: 304, no body, no gzip, no Vary",
            response: file(gzip: true), conditions: ConditionalHeaders(ifNoneMatch: etag), takesGzip: true, status: 304, body: .none),
        Row(name: "If-None-Match matches the weak form: 304",
            response: file(), conditions: ConditionalHeaders(ifNoneMatch: b("W/\"6b0e486e-266\"")), status: 304, body: .none),
        Row(name: "If-Modified-Since equal to Last-Modified: 304",
            response: file(), conditions: ConditionalHeaders(ifModifiedSince: b("Tue, 01 Dec 2026 04:09:18 GMT")), status: 304, body: .none),
        Row(name: "an error page served from a file keeps its 404 whatever the conditions",
            response: file(404), conditions: ConditionalHeaders(ifNoneMatch: etag), status: 404, headers: false),
        Row(name: "If-Match that does not match: 412",
            response: file(), conditions: ConditionalHeaders(ifMatch: b("\"other\"")), outcome: .preconditionFailed, status: 412),
        Row(name: "a proxied 200 is not filtered by the request's conditions",
            response: HeadStageResponse(status: 200, source: .proxied, contentLength: 614),
            conditions: ConditionalHeaders(ifNoneMatch: etag), status: 200),
        Row(name: "Range on a file: 206 with that range",
            response: file(), conditions: ConditionalHeaders(range: b("bytes=0-9")), status: 206, body: .single(0..<10)),
        Row(name: "several ranges: multipart/byteranges",
            response: file(), conditions: ConditionalHeaders(range: b("bytes=0-1,5-6")), status: 206, body: .multipart([0..<2, 5..<7])),
        Row(name: "a range past the end: 416",
            response: file(), conditions: ConditionalHeaders(range: b("bytes=1000-")), outcome: .rangeNotSatisfiable, status: 416),
        Row(name: "Range and a client that takes gzip: the whole body compressed (gzip runs before range)",
            response: file(gzip: true), conditions: ConditionalHeaders(range: b("bytes=0-9")), takesGzip: true,
            status: 200, gzip: true, vary: true),
        Row(name: "Range, qualifies, client does not take gzip: 206 with Vary",
            response: file(gzip: true), conditions: ConditionalHeaders(range: b("bytes=0-9")), status: 206, body: .single(0..<10), vary: true),
        Row(name: "a body lb cannot compress where it is: Vary, no gzip, ranges",
            response: HeadStageResponse(status: 200, source: .file, contentLength: 614, gzipQualifies: true,
                                        gzipPossible: false, rangesPossible: true),
            takesGzip: true, status: 200, vary: true, acceptRanges: true),
        Row(name: "gzip_vary off: no Vary",
            response: file(gzip: true), takesGzip: true, policy: HeadStagePolicy(gzipVary: false), status: 200, gzip: true),
        Row(name: "If-Range that does not match: the whole file",
            response: file(), conditions: ConditionalHeaders(range: b("bytes=0-9"), ifRange: b("\"other\"")), status: 200, acceptRanges: true),
    ]

    @Test(arguments: rows)
    func headsAsNginxMakesThem(_ row: Row) {
        let d = ResponseHeadStage.decide(row.response, HeadStageRequest(), row.policy, conditions: row.conditions,
                                         validators: { Self.v }, clientTakesGzip: { row.takesGzip })
        #expect(d.outcome == row.outcome)
        #expect(d.status == row.status)
        if row.outcome == .send {
            #expect(d.body == row.body)
            #expect(d.gzip == row.gzip)
            #expect(d.vary == row.vary)
            #expect(d.acceptRanges == row.acceptRanges)
            #expect(d.addHeaders == row.headers)
            #expect(d.expires == (row.headers && row.policy.expires))
        }
    }

    @Test(arguments: [(200, true), (201, true), (204, true), (206, true), (301, true), (304, true), (308, true),
                      (400, false), (404, false), (500, false), (502, false)])
    func expiresAndAddHeaderWithoutAlwaysFollowTheStatus(_ status: Int, _ applies: Bool) {
        let d = ResponseHeadStage.decide(HeadStageResponse(status: status, source: .local), HeadStageRequest(),
                                         HeadStagePolicy(expires: true), clientTakesGzip: { true })
        #expect(d.expires == applies)
        #expect(d.addHeaders == applies)
    }

    @Test func expiresNeedsAConfiguredExpires() {
        let d = ResponseHeadStage.decide(HeadStageResponse(status: 200, source: .local), HeadStageRequest(), HeadStagePolicy(),
                                         clientTakesGzip: { true })
        #expect(!d.expires)
        #expect(d.addHeaders)
    }

    @Test func theConnectionFieldFollowsTheConnection() {
        func connection(_ q: HeadStageRequest, upgrade: Bool = false) -> HeadDecision.Connection {
            ResponseHeadStage.decide(HeadStageResponse(status: upgrade ? 101 : 200, source: .proxied, upgrade: upgrade), q,
                                     HeadStagePolicy(), clientTakesGzip: { false }).connection
        }
        #expect(connection(HeadStageRequest(keepAlive: true)) == .keepAlive)
        #expect(connection(HeadStageRequest(keepAlive: false)) == .close)
        #expect(connection(HeadStageRequest(), upgrade: true) == .upgrade)
        #expect(connection(HeadStageRequest(keepAlive: false, http2: true)) == .omitted)
        var d = HeadDecision(status: 200)
        d.bodyEndsWithClose()
        #expect(d.connection == .close)
        d.connection = .omitted
        d.bodyEndsWithClose()
        #expect(d.connection == .omitted) // HTTP/2 ends a body with END_STREAM, not a close
    }

    @Test func theClientIsAskedAboutGzipOnlyWhenTheResponseQualifies() {
        var asked = 0
        _ = ResponseHeadStage.decide(HeadStageResponse(status: 200, source: .local, gzipPossible: true), HeadStageRequest(),
                                     HeadStagePolicy(), clientTakesGzip: { asked += 1; return true })
        #expect(asked == 0)
        _ = ResponseHeadStage.decide(HeadStageResponse(status: 200, source: .local, gzipQualifies: true, gzipPossible: true),
                                     HeadStageRequest(), HeadStagePolicy(), clientTakesGzip: { asked += 1; return true })
        #expect(asked == 1)
    }
}
