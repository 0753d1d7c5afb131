@testable import LBCore
import LBConfig
import Testing

@Suite struct GzipPolicyTests {
    /// nginx's arithmetic (ngx_http_gzip_ratio_variable): integer division, two decimals, the
    /// third rounding half up, carrying into the whole part.
    @Test func shortBodiesGetNginxsSmallerWindow() {
        #expect(GzipPolicy.window(contentLength: nil) == (15, 8))
        #expect(GzipPolicy.window(contentLength: 100_000) == (15, 8))
        #expect(GzipPolicy.window(contentLength: 16_384 - 262) == (15, 8))
        #expect(GzipPolicy.window(contentLength: 16_384 - 263) == (14, 7))
        #expect(GzipPolicy.window(contentLength: 3_000) == (12, 5))
        #expect(GzipPolicy.window(contentLength: 1) == (9, 2))
    }

    @Test func gzipRatioIsPrintedAsNginxPrintsIt() {
        #expect(GzipPolicy.ratio(input: 17, output: 8) == "2.13")     // 2.125
        #expect(GzipPolicy.ratio(input: 1000, output: 1000) == "1.00")
        #expect(GzipPolicy.ratio(input: 1999, output: 1000) == "2.00")  // 1.999 → 2.00
        #expect(GzipPolicy.ratio(input: 3, output: 100) == "0.03")
        #expect(GzipPolicy.ratio(input: 123_456, output: 1_000) == "123.46")
        #expect(GzipPolicy.ratio(input: 10, output: 0) == nil)
    }

    @Test func acceptEncoding() {
        func ok(_ v: String?, http11: Bool = true, head: Bool = false, range: Bool = false) -> Bool {
            GzipPolicy.requestAccepts(acceptEncoding: v, http11: http11, head: head, range: range)
        }
        #expect(ok("gzip, deflate, br"))
        #expect(ok("br;q=1.0, GZIP;q=0.5"))
        #expect(ok("*"))
        #expect(!ok("gzip;q=0"))
        #expect(!ok("br, deflate"))
        #expect(!ok(nil))
        #expect(!ok("gzip", http11: false))
        #expect(!ok("gzip", head: true))
        #expect(!ok("gzip", range: true))
    }

    @Test func responseSide() {
        func q(_ status: Int = 200, ce: String? = nil, ct: String? = "text/html; charset=utf-8", len: Int? = 1000, types: [String] = ["text/css"], min: Int = 20) -> Bool {
            GzipPolicy.responseQualifies(status: status, contentEncoding: ce, contentType: ct, contentLength: len, types: types, minLength: min)
        }
        #expect(q())
        #expect(q(ct: "text/css"))
        #expect(!q(ct: "image/png"))
        #expect(q(ct: "image/png", types: ["*"]))
        #expect(!q(ce: "gzip"))
        #expect(q(ce: "identity"))
        #expect(!q(len: 10))
        #expect(q(len: nil))
        #expect(q(404))
        #expect(!q(206))
        #expect(!q(301))
        #expect(!q(ct: nil))
        #expect(q(ct: nil, types: ["*"])) // nginx: `gzip_types *` passes a response without Content-Type
    }

    @Test func gzipProxied() {
        func p(_ via: Bool, _ rules: GzipProxied, auth: Bool = false, expires: String? = nil, cc: String? = nil, lm: Bool = true, etag: Bool = true) -> Bool {
            GzipPolicy.proxiedAllows(requestHasVia: via, requestHasAuthorization: auth, rules: rules, expires: expires, cacheControl: cc,
                                     lastModified: lm, etag: etag, now: 2_000_000_000)
        }
        #expect(p(false, []))
        #expect(!p(true, []))
        #expect(!p(true, GzipProxied.words["off"]!))
        #expect(p(true, .any))
        #expect(p(true, .noCache, cc: "no-cache"))
        #expect(!p(true, .noCache, cc: "max-age=5"))
        #expect(p(true, .private, cc: "private, max-age=5"))
        #expect(p(true, .auth, auth: true))
        #expect(p(true, .noEtag, etag: false))
        #expect(p(true, .expired, expires: "Thu, 01 Jan 1970 00:00:00 GMT"))
    }

    @Test func compressedBytesRoundTripThroughZlib() {
        let text = Array(String(repeating: "lb compresses this line. ", count: 400).utf8)
        let gz = GzipStream.compress(text, level: 6)!
        #expect(gz.count < text.count / 10)
        #expect(Array(gz.prefix(2)) == [0x1F, 0x8B]) // gzip magic
        #expect(GzipStream.decompress(gz) == text)
        // Streamed in pieces with a sync flush in the middle: the same bytes come back.
        let g = GzipStream(level: 1)!
        var out: [UInt8] = []
        text[0..<3000].withUnsafeBytes { g.compress($0, finish: false, into: &out) }
        g.flush(into: &out)
        text[3000...].withUnsafeBytes { g.compress($0, finish: true, into: &out) }
        #expect(GzipStream.decompress(out) == text)
        #expect(GzipPolicy.weakened("\"abc\"") == "W/\"abc\"")
        #expect(GzipPolicy.weakened("W/\"abc\"") == "W/\"abc\"")
    }
}
