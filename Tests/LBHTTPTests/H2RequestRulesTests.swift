import Testing
@testable import LBHTTP

/// The request rules' eight-octets-at-a-time checks and single name pass give exactly what the
/// one-octet code before them gave (`H2RequestRulesReference`): the same stream errors (and
/// reasons), the same refusals, the same octets, head and flags, for every octet value in every
/// position of the names and values of a few requests, and for random lists of fields.
@Suite struct H2RequestRulesTests {
    /// Everything a request carries, printed: two requests alike print alike.
    static func describe(_ r: H2Request) -> String {
        "\(r.streamID) \(r.endStream) \(r.chunked) \(r.unusualNames) \(r.scheme) \(r.bytes) \(String(reflecting: r.head))"
    }

    /// What one request list comes to, printed.
    static func outcome(_ make: () throws(H2Error) -> Result<H2Request, HTTPError>) -> String {
        do {
            switch try make() {
            case .success(let r): return "request " + describe(r)
            case .failure(let e): return "refused \(e)"
            }
        } catch {
            return "malformed \(error) \(error.reason)"
        }
    }

    static func compare(_ pairs: [([UInt8], [UInt8])], endStream: Bool, _ why: @autoclosure () -> String) -> (same: Bool, accepted: Bool) {
        var list = HPACKHeaderList()
        for (n, v) in pairs { list.append(name: n, value: v) }
        let new = outcome { () throws(H2Error) in try H2RequestRules.request(list, streamID: 3, endStream: endStream) }
        let old = outcome { () throws(H2Error) in try H2RequestRulesReference.request(list, streamID: 3, endStream: endStream) }
        #expect(new == old, "\(why())")
        return (new == old, new.hasPrefix("request"))
    }

    static func octets(_ pairs: [(String, String)]) -> [([UInt8], [UInt8])] {
        pairs.map { (Array($0.0.utf8), Array($0.1.utf8)) }
    }

    /// Requests whose every octet is replaced in turn: ordinary ones (names of each length the
    /// rules look at), and ones that take the parser's way.
    static let bases: [(String, [(String, String)], Bool)] = [
        ("h2load GET", [(":method", "GET"), (":path", "/s4k"), (":scheme", "http"), (":authority", "127.0.0.1:28511"),
                        ("accept", "*/*"), ("accept-encoding", "gzip, deflate"), ("user-agent", "h2load nghttp2/1.64.0")], true),
        ("POST with cookies, te, expect", [(":method", "POST"), (":scheme", "https"), (":path", "/a?b=c"), (":authority", "ex.org"),
                                           ("cookie", "a=1"), ("te", "trailers"), ("cookie", "b=2"), ("expect", "100-continue"),
                                           ("content-length", "12"), ("x_y", "v")], false),
        ("known names", [(":method", "GET"), (":scheme", "https"), (":path", "/"), ("host", "h.example"), ("range", "bytes=1-2"),
                         ("if-match", "*"), ("if-range", "\"e\""), ("if-none-match", "\"x\""),
                         ("if-modified-since", "Mon, 01 Jan 2024 00:00:00 GMT"), ("if-unmodified-since", "y")], true),
        ("near the connection-specific names", [(":method", "GET"), (":scheme", "https"), (":path", "/"), (":authority", "h"),
                                                ("keep-alivf", "1"), ("upgradf", "u"), ("connectioo", "c"), ("proxy-connectioo", "p"),
                                                ("transfer-encodinf", "t"), ("tf", "trailers")], true),
    ]

    @Test(arguments: 0..<bases.count)
    func everyOctetInEveryPositionIsJudgedAsBefore(_ b: Int) {
        let (why, pairs, endStream) = Self.bases[b]
        let base = Self.octets(pairs)
        var accepted = 0, total = 0
        let fields = base
        #expect(Self.compare(base, endStream: endStream, why).same)
        for f in fields.indices {
            for part in 0..<2 {
                let n = part == 0 ? fields[f].0.count : fields[f].1.count
                for position in 0..<n {
                    for c in 0...255 {
                        var m = fields
                        if part == 0 { m[f].0[position] = UInt8(c) } else { m[f].1[position] = UInt8(c) }
                        let r = Self.compare(m, endStream: endStream, "\(why): field \(f) \(part == 0 ? "name" : "value") [\(position)] = \(c)")
                        if !r.same { return }
                        total += 1
                        if r.accepted { accepted += 1 }
                    }
                }
            }
        }
        // Not vacuous: most replacements are requests, and many are refused.
        #expect(accepted > total / 4 && accepted < total, "\(accepted) of \(total)")
    }

    /// Random lists from names and values that matter to the rules, in any order.
    @Test func randomFieldListsAreJudgedAsBefore() {
        let names = [":method", ":path", ":scheme", ":authority", ":status", ":", "", "host", "cookie", "content-length", "te",
                     "connection", "keep-alive", "upgrade", "transfer-encoding", "expect", "range", "if-range", "if-match",
                     "x_under", "X-Upper", "a.b", "x~y", "accept", "user-agent", "h\u{7F}", "a b", "a:b", "\u{80}x",
                     "if-modified-since", "if-none-match", "if-unmodified-since", "proxy-connection", "content-lengtH"]
        let values = ["", "GET", "POST", "CONNECT", "TRACE", "get", "M-SEARCH_X", "/", "/a b", "/x?y", "*", "http://h:1/p?q",
                      "http", "https", "example.com", "a@b", "a/b", " a", "a ", "a\tb", "\ta", "a\u{1}b", "a\u{7F}", "a\u{0}b",
                      "a\rb", "a\nb", "0", "12", "012", "-1", "x1", "trailers", "TRAILERS", "100-continue", "100-Continue",
                      "[::1]:443", "h\u{80}", "12345678901234567890", "a=1", "b=2"]
        var rng = SplitMix(state: 0x2EC5)
        var accepted = 0
        for round in 0..<20_000 {
            var pairs: [(String, String)] = []
            if rng.below(3) > 0 {
                pairs = [(":method", ["GET", "POST", "HEAD"][rng.below(3)]), (":scheme", "https"), (":path", "/p"), (":authority", "ex.org")]
                for i in pairs.indices.reversed() { pairs.swapAt(i, rng.below(i + 1)) }
                pairs.removeLast(rng.below(2))
            }
            for _ in 0..<rng.below(7) {
                let pair = (names[rng.below(names.count)], values[rng.below(values.count)])
                pairs.insert(pair, at: rng.below(2) == 0 ? pairs.count : rng.below(pairs.count + 1))
            }
            let r = Self.compare(Self.octets(pairs), endStream: rng.below(2) == 0, "round \(round): \(pairs)")
            if !r.same { return }
            if r.accepted { accepted += 1 }
        }
        #expect(accepted > 1000)
    }

    // MARK: The word tests and helpers

    static func word(_ octets: [UInt8]) -> UInt64 {
        octets.enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
    }

    static let tests: [(String, @Sendable (UInt64) -> Bool, @Sendable (UInt8) -> Bool)] = [
        ("control", H2Octets.hasControl, { $0 < 0x20 || $0 == 0x7F }),
        ("non-lower-name", H2Octets.hasNonLowerNameOctet, { !(($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D) }),
        ("non-method", H2Octets.hasNonMethodOctet, { !HeadParser.isMethodByte($0) }),
        ("space-or-control", H2Octets.hasSpaceOrControl, { $0 <= 0x20 || $0 == 0x7F }),
        ("at", H2Octets.hasAt, { $0 == 0x40 }),
        // `HeadParser.validHost`'s octets, as `layout` scans a Host with it.
        ("non-host", ASCII.hasNonHostOctet, { $0 == 0x2F || $0 == 0x5C || $0 < 0x21 || $0 == 0x7F }),
    ]

    @Test func eachWordTestFindsItsOctetsAnywhereAndNothingElse() {
        var rng = SplitMix(state: 0x0C7E)
        for (why, test, octet) in Self.tests {
            let plain = (0...255).map(UInt8.init).filter { !octet($0) }
            for c in 0...255 {
                for position in 0..<8 {
                    var o = (0..<8).map { _ in plain[rng.below(plain.count)] }
                    o[position] = UInt8(c)
                    #expect(test(Self.word(o)) == octet(UInt8(c)), "\(why) \(o)")
                }
            }
            for _ in 0..<20_000 {
                let o = (0..<8).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                #expect(test(Self.word(o)) == o.contains(where: octet), "\(why) \(o)")
            }
        }
    }

    /// `anyWord` over ranges of every length up to 24, at an offset in a larger buffer whose
    /// octets around the range are of the kind looked for (they must not count).
    @Test func anyWordLooksAtTheRangeOnly() {
        for (why, test, octet) in Self.tests {
            let plain = (0...255).map(UInt8.init).first { !octet($0) }!
            let other = (0...255).map(UInt8.init).first(where: octet)!
            for length in 0...24 {
                for position in 0..<max(length, 1) {
                    for c in 0...255 {
                        var r = [UInt8](repeating: plain, count: length)
                        if length > 0 { r[position] = UInt8(c) }
                        let buffer = [UInt8](repeating: other, count: 9) + r + [UInt8](repeating: other, count: 9)
                        let got = buffer.withUnsafeBytes { H2Octets.anyWord($0, 9..<(9 + length), test) }
                        #expect(got == r.contains(where: octet), "\(why) \(r)")
                    }
                }
            }
        }
    }

    static let literals: [StaticString] = ["", "a", "te", "host", "range", "cookie", ":method", "if-range", "CONNECT", "connection",
                                           "keep-alive", "if-none-match", "content-length", "proxy-connection", "transfer-encoding",
                                           "if-modified-since", "if-unmodified-since"]

    @Test func equalsIsOctetForOctetEquality() {
        for lit in Self.literals {
            let l = Array(UnsafeBufferPointer(start: lit.utf8Start, count: lit.utf8CodeUnitCount))
            let pad = [UInt8](repeating: 0x41, count: 5)
            for position in 0..<l.count {
                for c in 0...255 {
                    var v = l
                    v[position] = UInt8(c)
                    let buffer = pad + v + pad
                    let got = buffer.withUnsafeBytes { H2RequestRules.equals($0, 5..<(5 + v.count), lit) }
                    #expect(got == (v == l), "\(v) vs \(lit)")
                }
            }
            let same = pad + l + pad
            #expect(same.withUnsafeBytes { H2RequestRules.equals($0, 5..<(5 + l.count), lit) })
            #expect(!same.withUnsafeBytes { H2RequestRules.equals($0, 5..<(6 + l.count), lit) })
            if !l.isEmpty { #expect(!same.withUnsafeBytes { H2RequestRules.equals($0, 5..<(4 + l.count), lit) }) }
        }
    }

    /// `moveHead` exchanges the two heads whole, header lists included (each still counted
    /// once: both live on and are changed after).
    @Test func moveHeadExchangesTheHeads() throws {
        let pairs = TestClient.get("/x?y") + [("if-range", "\"e\""), ("accept", "*/*")]
        var list = HPACKHeaderList()
        for (n, v) in Self.octets(pairs) { list.append(name: n, value: v) }
        guard case .success(let r) = try H2RequestRules.request(list, streamID: 1, endStream: true) else {
            Issue.record("refused")
            return
        }
        let before = String(reflecting: r.head)
        var other = RequestHead()
        other.headers = [HeaderField(nameStart: 1, nameEnd: 2, valueStart: 3, valueEnd: 4)]
        other.host = 5..<9
        other.method = .post
        let otherBefore = String(reflecting: other)
        r.moveHead(into: &other)
        #expect(String(reflecting: other) == before && String(reflecting: r.head) == otherBefore)
        other.headers.append(HeaderField(nameStart: 0, nameEnd: 0, valueStart: 0, valueEnd: 0))
        r.head.headers.removeAll()
        #expect(other.headers.count == 4 && r.head.headers.isEmpty)
    }

    @Test func copyCopiesExactlyTheOctetsAsked() {
        var rng = SplitMix(state: 0xC0B1)
        for n in 0...70 {
            let src = (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            var dst = [UInt8](repeating: 0xEE, count: n + 16)
            src.withUnsafeBufferPointer { s in
                dst.withUnsafeMutableBufferPointer { d in
                    H2Octets.copy(s.baseAddress ?? UnsafePointer(d.baseAddress!), to: d.baseAddress! + 8, count: n)
                }
            }
            #expect(Array(dst[8..<(8 + n)]) == src, "length \(n)")
            #expect(dst[..<8].allSatisfy { $0 == 0xEE } && dst[(8 + n)...].allSatisfy { $0 == 0xEE }, "length \(n): outside written")
        }
    }
}
