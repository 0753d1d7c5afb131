import Testing
@testable import LBHTTP

/// Cases the request-head fuzz target (Tests/fuzz/http_request.swift) found where the scanner's
/// answer depended on how the bytes were split: each must give one answer for every split.
@Suite struct ScanSplitTests {
    static let limits = HeadScanner(maxFirstLine: 64, maxHeaderLine: 64, maxHead: 200)

    func outcome(_ text: String, step: Int) -> String {
        do {
            guard let (h, _) = try parseRequest(text, step: step, scanner: Self.limits) else { return "incomplete" }
            return "head of \(h.length) bytes"
        } catch let e as HTTPError { return "\(e.status)" } catch { return "\(error)" }
    }

    func sameForEverySplit(_ text: String) -> String {
        let whole = outcome(text, step: Int.max)
        for step in [1, 2, 3, 7, 64] { #expect(outcome(text, step: step) == whole, "step \(step)") }
        return whole
    }

    /// A method longer than the request line may be is 414 however it arrives, even when a byte
    /// no method may hold comes after the limit (the whole buffer used to answer 400).
    @Test func overlongMethodWithABadByteLaterIs414() {
        #expect(sameForEverySplit(String(repeating: "G", count: 80) + "\u{7F} / HTTP/1.1\r\n\r\n") == "414")
        #expect(sameForEverySplit("GE\u{7F}" + String(repeating: "G", count: 80)) == "400")
    }

    /// A request line of exactly the limit followed by CRLF passes even when the CR arrives alone
    /// (one byte at a time used to count it and answer 414).
    @Test func lineOfExactlyTheLimitPassesWhenItsCRArrivesAlone() {
        let line = "GET /" + String(repeating: "a", count: 64 - 14) + " HTTP/1.1"
        #expect(line.utf8.count == 64)
        #expect(sameForEverySplit(line + "\r\nHost: a\r\n\r\n") == "head of 77 bytes")
        #expect(sameForEverySplit(line + "a\r\nHost: a\r\n\r\n") == "414")
    }

    /// A head over the total limit is 431 also when it arrives whole (it used to pass when its
    /// blank line came in the same read).
    @Test func headOverTheTotalLimitIs431HoweverItArrives() {
        let head = { (n: Int) in "GET / HTTP/1.1\r\nHost: a\r\n" + String(repeating: "X-A: 123456789\r\n", count: n) + "\r\n" }
        #expect(sameForEverySplit(head(10)) == "head of 187 bytes")
        #expect(sameForEverySplit(head(11)) == "431")
    }
}
