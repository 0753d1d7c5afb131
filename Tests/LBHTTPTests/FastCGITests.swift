import Testing
@testable import LBHTTP

/// The FastCGI codec without sockets: records and params as nginx encodes them, the decoder fed
/// in every split, and the CGI response turned into the HTTP/1.1 response the proxy relays.
@Suite struct FastCGITests {
    func record(_ type: UInt8, _ content: [UInt8], padding: Int = 0, id: UInt8 = 1) -> [UInt8] {
        [1, type, 0, id, UInt8(content.count >> 8), UInt8(content.count & 0xff), UInt8(padding), 0] + content + [UInt8](repeating: 0, count: padding)
    }

    func end(_ app: UInt32 = 0) -> [UInt8] {
        record(3, [UInt8(app >> 24), UInt8((app >> 16) & 0xff), UInt8((app >> 8) & 0xff), UInt8(app & 0xff), 0, 0, 0, 0])
    }

    /// Feeds `stream` in pieces of `step` bytes; returns the HTTP bytes, the stderr messages and
    /// whether END_REQUEST was seen, or the error message.
    func translate(_ stream: [UInt8], step: Int, maxHead: Int = 4096) -> (http: String, stderr: [String], ended: Bool, error: String?) {
        var d = FastCGIRecordDecoder()
        var t = CGIResponseTranslator(maxHead: maxHead)
        var out: [UInt8] = []
        var errs: [String] = []
        var current: [UInt8] = []
        var i = 0
        do {
            while i < stream.count {
                let piece = Array(stream[i..<min(stream.count, i + step)])
                i += step
                try piece.withUnsafeBytes { p in
                    try d.consume(p) { e in
                        switch e {
                        case .stdout(let r): try t.stdout(UnsafeRawBufferPointer(rebasing: p[r]), into: &out)
                        case .stderr(let r, let last):
                            current += p[r]
                            if last { errs.append(String(decoding: current, as: UTF8.self)); current = [] }
                        case .end: try t.end(into: &out)
                        }
                    }
                }
            }
        } catch let e as FastCGIError {
            return (String(decoding: out, as: UTF8.self), errs, d.ended, e.message)
        } catch { return ("", [], false, "\(error)") }
        return (String(decoding: out, as: UTF8.self), errs, d.ended, nil)
    }

    /// The head, then the payload with chunk framing removed (chunk sizes depend on the split).
    func normalized(_ http: String) -> String {
        var bytes = Array(http.utf8)
        var k = 0
        while k + 3 < bytes.count && !(bytes[k] == 13 && bytes[k + 1] == 10 && bytes[k + 2] == 13 && bytes[k + 3] == 10) { k += 1 }
        guard k + 3 < bytes.count else { return http }
        let head = String(decoding: bytes[0..<(k + 4)], as: UTF8.self)
        guard head.contains("Transfer-Encoding: chunked") else { return http }
        bytes = Array(bytes[(k + 4)...])
        var payload = ""
        var i = 0
        while i < bytes.count {
            var j = i
            while j < bytes.count && bytes[j] != 13 { j += 1 }
            guard let size = Int(String(decoding: bytes[i..<j], as: UTF8.self), radix: 16) else { return head + "<bad chunk>" }
            if size == 0 { return head + payload + "<end>" }
            payload += String(decoding: bytes[(j + 2)..<(j + 2 + size)], as: UTF8.self)
            i = j + 2 + size + 2
        }
        return head + payload
    }

    func sameForEverySplit(_ stream: [UInt8], maxHead: Int = 4096) -> (http: String, stderr: [String], ended: Bool, error: String?) {
        let whole = translate(stream, step: stream.count, maxHead: maxHead)
        for step in [1, 2, 3, 7, 8, 9, 64] {
            let r = translate(stream, step: step, maxHead: maxHead)
            #expect(normalized(r.http) == normalized(whole.http) && r.stderr == whole.stderr && r.ended == whole.ended && r.error == whole.error, "step \(step)")
        }
        return whole
    }

    @Test func beginRequestCarriesTheResponderRoleAndKeepConnFlag() {
        var o: [UInt8] = []
        FastCGI.appendBeginRequest(keepConn: true, into: &o)
        #expect(o == [1, 1, 0, 1, 0, 8, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0])
        o = []
        FastCGI.appendBeginRequest(keepConn: false, into: &o)
        #expect(o[10] == 0)
    }

    @Test func pairsUseOneByteLengthsBelow128AndFourAbove() {
        var p: [UInt8] = []
        FastCGI.appendPair(name: Array("A".utf8), value: Array("bc".utf8), into: &p)
        #expect(p == [1, 2, 65, 98, 99])
        p = []
        let long = [UInt8](repeating: 120, count: 300)
        FastCGI.appendPair(name: Array("N".utf8), value: long, into: &p)
        #expect(Array(p[0..<5]) == [1, 0x80, 0, 1, 44])
        let back = FastCGI.decodePairs(p)
        #expect(back?.count == 1 && back?[0].value == long)
    }

    @Test func streamsSplitAt65535BytesAndPadToEight() {
        var o: [UInt8] = []
        FastCGI.appendStream(.params, [UInt8](repeating: 7, count: 70000), into: &o)
        // 65535 + pad 1, then 4465 + pad 7.
        #expect(Array(o[0..<8]) == [1, 4, 0, 1, 0xff, 0xff, 1, 0])
        let second = 8 + 65535 + 1
        #expect(Array(o[second..<(second + 8)]) == [1, 4, 0, 1, 0x11, 0x71, 7, 0])
        #expect(o.count == second + 8 + 4465 + 7)
        var none: [UInt8] = []
        FastCGI.appendStream(.stdin, [], into: &none)
        #expect(none.isEmpty)
    }

    @Test func statusHeaderBecomesTheStatusLineAndTheBodyIsChunked() {
        let body = Array("Status: 404 Not Found\r\nContent-Type: text/html\r\n\r\nnope".utf8)
        let r = sameForEverySplit(record(6, body, padding: 4) + record(6, []) + end())
        #expect(r.error == nil && r.ended)
        #expect(r.http == "HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nnope\r\n0\r\n\r\n")
    }

    @Test func aBareStatusCodeGetsItsReasonPhrase() {
        let r = sameForEverySplit(record(6, Array("Status: 503\n\n".utf8)) + end())
        #expect(r.http.hasPrefix("HTTP/1.1 503 Service Temporarily Unavailable\r\n"))
    }

    @Test func locationWithoutStatusIs302AndStaysRelative() {
        let r = sameForEverySplit(record(6, Array("Location: /elsewhere\r\n\r\n".utf8)) + end())
        #expect(r.http == "HTTP/1.1 302 Moved Temporarily\r\nLocation: /elsewhere\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    }

    @Test func noStatusIs200AndBareLineFeedsAreAccepted() {
        let r = sameForEverySplit(record(6, Array("X-A: 1\n\nhello".utf8)) + record(6, Array(" world".utf8)) + end())
        #expect(r.http == "HTTP/1.1 200 OK\r\nX-A: 1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
                || r.http.hasPrefix("HTTP/1.1 200 OK\r\nX-A: 1\r\nTransfer-Encoding: chunked\r\n\r\n"))
        #expect(normalized(r.http) == "HTTP/1.1 200 OK\r\nX-A: 1\r\nTransfer-Encoding: chunked\r\n\r\nhello world<end>")
    }

    @Test func contentLengthFromTheApplicationKeepsTheBodyUnframed() {
        let r = sameForEverySplit(record(6, Array("Content-Length: 5\r\n\r\nhello".utf8)) + end())
        #expect(r.http == "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
    }

    @Test func headerSplitAcrossRecordsIsJoined() {
        let r = sameForEverySplit(record(6, Array("Status: 2".utf8)) + record(6, Array("01 Created\r\nX-Y: z\r\n\r\n".utf8)) + end())
        #expect(r.http.hasPrefix("HTTP/1.1 201 Created\r\nX-Y: z\r\n"))
    }

    @Test func stderrRecordsAreReportedWholeBetweenStdout() {
        let r = sameForEverySplit(record(7, Array("PHP message: oops\n".utf8), padding: 6) + record(6, Array("\r\n\r\nok".utf8))
                                  + record(7, Array("second".utf8)) + end())
        #expect(r.stderr == ["PHP message: oops\n", "second"])
        #expect(r.error == nil)
    }

    @Test func invalidStatusIsAnInvalidHeader() {
        let r = sameForEverySplit(record(6, Array("Status: abc\r\n\r\n".utf8)) + end())
        #expect(r.error == "upstream sent invalid status \"abc\"")
    }

    @Test func endBeforeTheHeaderEndsIsAPrematureClose() {
        let r = sameForEverySplit(record(6, Array("X-A: 1\r\n".utf8)) + end())
        #expect(r.error == "upstream prematurely closed FastCGI stdout")
    }

    @Test func headerLargerThanTheBufferIsTooBig() {
        let r = sameForEverySplit(record(6, Array(("X-Big: " + String(repeating: "a", count: 200) + "\r\n\r\n").utf8)) + end(), maxHead: 100)
        #expect(r.error == "upstream sent too big header")
    }

    @Test func wrongVersionTypeOrRequestIdIsRefused() {
        var bad = record(6, Array("\r\n".utf8))
        bad[0] = 2
        #expect(translate(bad, step: 100).error == "upstream sent unsupported FastCGI protocol version: 2")
        #expect(translate(record(5, []), step: 100).error == "upstream sent invalid FastCGI record type: 5")
        #expect(translate(record(6, [], id: 2), step: 100).error == "upstream sent unexpected FastCGI request id low byte: 2")
    }

    @Test func bytesAfterEndRequestAreAnError() {
        let r = translate(record(6, Array("\r\n".utf8)) + end() + record(6, Array("x".utf8)), step: 1000)
        #expect(r.ended && r.error != nil)
    }

    @Test func headerNamesMustBeTokens() {
        let r = sameForEverySplit(record(6, Array("Bad Header: 1\r\n\r\n".utf8)) + end())
        #expect(r.error?.hasPrefix("upstream sent invalid header") == true)
    }

    /// Found by the fastcgi fuzz target: a header fault after the status line must leave no
    /// half-written head behind.
    @Test func aBadContentLengthLeavesNoPartialHead() {
        let r = sameForEverySplit(record(6, Array("Content-Length: \n\n5hello".utf8)) + end())
        #expect(r.error == "upstream sent invalid \"Content-Length\" header" && r.http.isEmpty)
    }

    /// Found by the fastcgi fuzz target: control bytes in a value are refused here, as the HTTP
    /// head parser would refuse the translated head.
    @Test func controlBytesInAHeaderValueAreInvalid() {
        let r = sameForEverySplit(record(6, Array("Location: /e\u{0}x\r\n\r\n".utf8)) + end())
        #expect(r.error?.hasPrefix("upstream sent invalid header") == true && r.http.isEmpty)
    }

    /// Found by the fastcgi fuzz target (-O): a header ending one or two bytes past the limit
    /// was accepted whole but too big byte at a time; the limit counts the blank line now.
    @Test func theHeaderLimitIsTheSameHoweverTheBytesArrive() {
        let head = "X-A: " + String(repeating: "a", count: 91) + "\r\n\r\n" // 100 bytes
        #expect(sameForEverySplit(record(6, Array(head.utf8)) + end(), maxHead: 100).error == nil)
        #expect(sameForEverySplit(record(6, Array(head.utf8)) + end(), maxHead: 99).error == "upstream sent too big header")
        #expect(sameForEverySplit(record(6, Array(head.utf8)) + end(), maxHead: 98).error == "upstream sent too big header")
    }

    /// PHP sends `Content-type`; nginx's clients see `Content-Type` (compared with nginx 1.22).
    @Test func contentTypeIsSpelledAsNginxSendsIt() {
        let r = sameForEverySplit(record(6, Array("Content-type: text/html; charset=UTF-8\r\n\r\nx".utf8)) + end())
        #expect(r.http.hasPrefix("HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=UTF-8\r\n"))
    }
}
