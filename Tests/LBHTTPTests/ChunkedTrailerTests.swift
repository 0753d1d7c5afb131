import Testing
@testable import LBHTTP

/// The trailer fields of a chunked body, reported so that a relay can cut them out.
@Suite struct ChunkedTrailerTests {
    /// Feeds `body` in pieces of `step` bytes; returns the bytes left after cutting the reported
    /// trailer ranges out, and whether the body ended.
    func withoutTrailers(_ body: String, step: Int) throws -> (String, Bool) {
        let bytes = Array(body.utf8)
        var f = ChunkedFramer()
        var kept: [UInt8] = []
        var at = 0
        while at < bytes.count && !f.isDone {
            let piece = Array(bytes[at..<min(bytes.count, at + step)])
            var cut: [Range<Int>] = []
            let n = try piece.withUnsafeBytes { try f.consume($0) { _ in } trailer: { cut.append($0) } }
            var i = 0
            for r in cut {
                #expect(r.lowerBound >= i && r.upperBound <= n)
                kept += piece[i..<r.lowerBound]
                i = r.upperBound
            }
            kept += piece[i..<n]
            at += n
        }
        return (String(decoding: kept, as: UTF8.self), f.isDone)
    }

    @Test func trailerFieldsAreReportedWhateverTheSplit() throws {
        let body = "5\r\nhello\r\n0\r\nX-Checksum: abc\r\nX-Second: two\r\n\r\n"
        for step in 1...body.utf8.count {
            let (kept, done) = try withoutTrailers(body, step: step)
            #expect(kept == "5\r\nhello\r\n0\r\n\r\n", "step \(step)")
            #expect(done)
        }
    }

    @Test func aBodyWithoutTrailersReportsNone() throws {
        let body = "3\r\nabc\r\n0\r\n\r\n"
        for step in 1...body.utf8.count {
            let (kept, done) = try withoutTrailers(body, step: step)
            #expect(kept == body && done)
        }
    }
}
