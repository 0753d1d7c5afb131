@testable import LBHTTP
import Testing

/// The parsers' eight-octets-at-a-time helpers give exactly the answers of their one-octet
/// definitions, for every octet value in every position.
@Suite struct WordAtATimeTests {
    /// Octets that matter: every letter's two cases, the borders of A–Z and a–z, controls, DEL,
    /// the high half.
    static let interesting: [UInt8] = [0x00, 0x09, 0x0A, 0x0D, 0x1F, 0x20, 0x2D, 0x30, 0x39, 0x3F, 0x40, 0x41, 0x4D, 0x5A, 0x5B,
                                       0x5F, 0x60, 0x61, 0x7A, 0x7B, 0x7E, 0x7F, 0x80, 0xC1, 0xDA, 0xE1, 0xFA, 0xFF]

    static func word(_ octets: [UInt8]) -> UInt64 {
        octets.enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
    }

    @Test func loweredLowersEachOctetAsLowerDoes() {
        var rng = SystemRandomNumberGenerator()
        for c in 0...255 {
            for position in 0..<8 {
                var octets = (0..<8).map { _ in Self.interesting.randomElement(using: &rng)! }
                octets[position] = UInt8(c)
                let expected = Self.word(octets.map(ASCII.lower))
                #expect(ASCII.lowered(Self.word(octets)) == expected, "octets \(octets)")
            }
        }
    }

    @Test func hasControlFindsAControlOctetOrDELAnywhere() {
        var rng = SystemRandomNumberGenerator()
        for c in 0...255 {
            for position in 0..<8 {
                var octets = (0..<8).map { _ in UInt8.random(in: 0x20...0x7E, using: &rng) }
                octets[position] = UInt8(c)
                let expected = octets.contains { $0 < 0x20 || $0 == 0x7F }
                #expect(ASCII.hasControl(Self.word(octets)) == expected, "octets \(octets)")
            }
        }
        for _ in 0..<20_000 {
            let octets = (0..<8).map { _ in Self.interesting.randomElement(using: &rng)! }
            #expect(ASCII.hasControl(Self.word(octets)) == octets.contains { $0 < 0x20 || $0 == 0x7F })
        }
    }

    @Test func allNameOctetsIsTrueOnlyForLettersDigitsAndDash() {
        var rng = SystemRandomNumberGenerator()
        let nameOctets = Array(UInt8(ascii: "a")...UInt8(ascii: "z")) + Array(UInt8(ascii: "A")...UInt8(ascii: "Z"))
            + Array(UInt8(ascii: "0")...UInt8(ascii: "9")) + [UInt8(ascii: "-")]
        for c in 0...255 {
            for position in 0..<8 {
                var octets = (0..<8).map { _ in nameOctets.randomElement(using: &rng)! }
                octets[position] = UInt8(c)
                let expected = octets.allSatisfy { ASCII.isLetter($0) || ASCII.isDigit($0) || $0 == UInt8(ascii: "-") }
                #expect(ASCII.allNameOctets(Self.word(octets)) == expected, "octets \(octets)")
            }
        }
    }

    /// Header names, scanned eight octets at a time: where a name ends and which are refused or
    /// marked invalid do not change (a name of each length with each octet in each position).
    @Test func headerNamesEndAndAreJudgedAsOctetByOctet() {
        for length in 1..<20 {
            for position in 0..<length {
                for c: UInt8 in [0x00, 0x20, 0x2C, 0x2D, 0x2E, 0x3A, 0x40, 0x41, 0x5A, 0x5B, 0x5F, 0x60, 0x61, 0x7A, 0x7B, 0x7F, 0x80, 0xFF] {
                    var name = Array(repeating: UInt8(ascii: "n"), count: length)
                    name[position] = c
                    let line = name + Array(": v\r\n".utf8)
                    // Responses: a token, then `:`.
                    let tokenEnd = name.firstIndex { !ASCII.isToken($0) } ?? length
                    let responseOK = tokenEnd > 0 && (tokenEnd == length || name[tokenEnd] == UInt8(ascii: ":"))
                    var i = 0
                    let r = line.withUnsafeBytes { b -> HeaderField? in try? HeadParser.headerLine(b, &i, b.count) }
                    #expect((r != nil) == responseOK, "response name \(name)")
                    if let r, responseOK { #expect(Int(r.nameEnd) == tokenEnd) }
                    // Requests: any octet but controls, space and `:` first; `_` and others mark it invalid.
                    for underscores in [false, true] {
                        let colon = name.firstIndex(of: UInt8(ascii: ":")) ?? length
                        let bad = name[..<colon].contains { $0 <= 0x20 || $0 == 0x7F }
                        let invalid = name[..<colon].contains { !(ASCII.isLetter($0) || ASCII.isDigit($0) || $0 == UInt8(ascii: "-") || ($0 == UInt8(ascii: "_") && underscores)) }
                        var j = 0, marked = false
                        let rules = HeaderNameRules(underscores: underscores)
                        let q = line.withUnsafeBytes { b -> HeaderField? in try? HeadParser.headerLine(b, &j, b.count, names: rules, invalidName: &marked) }
                        #expect((q != nil) == (!bad && colon > 0), "request name \(name)")
                        if q != nil {
                            #expect(Int(q!.nameEnd) == colon)
                            #expect(marked == invalid, "request name \(name), underscores \(underscores)")
                        }
                    }
                }
            }
        }
    }

    @Test func hasNonHostOctetFindsSlashesControlsSpaceAndDEL() {
        var rng = SystemRandomNumberGenerator()
        let bad: (UInt8) -> Bool = { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "\\") || $0 < 0x21 || $0 == 0x7F }
        for c in 0...255 {
            for position in 0..<8 {
                var octets = (0..<8).map { _ in UInt8.random(in: 0x21...0xFF, using: &rng) }
                octets = octets.map { bad($0) ? UInt8(ascii: "a") : $0 }
                octets[position] = UInt8(c)
                #expect(ASCII.hasNonHostOctet(Self.word(octets)) == octets.contains(where: bad), "octets \(octets)")
            }
        }
        // validHost: any length, the bad octet anywhere.
        for length in 1..<30 {
            for position in 0..<length {
                for c: UInt8 in [0x00, 0x20, 0x21, 0x2E, 0x2F, 0x3A, 0x5B, 0x5C, 0x5D, 0x7E, 0x7F, 0x80, 0xFF] {
                    var host = Array(repeating: UInt8(ascii: "h"), count: length)
                    host[position] = c
                    let buffer = [UInt8(ascii: "x")] + host + [UInt8(ascii: "/")]
                    let got = buffer.withUnsafeBytes { HeadParser.validHost($0, 1..<(1 + length)) }
                    #expect(got == !host.contains(where: bad), "host \(host)")
                }
            }
        }
    }

    static let literals: [StaticString] = ["a", "te", "etag", "date", "range", "server", "upgrade", "location", "x-accel-",
                                            "keep-alive", "connection", "set-cookie", "content-type", "cache-control",
                                            "last-modified", "content-length", "transfer-encoding", "x-accel-limit-rate", "100-continue"]

    /// The definition the fast path must keep: same length, and each octet lowered equals the literal's.
    static func reference(_ bytes: [UInt8], _ lit: StaticString) -> Bool {
        let l = Array(UnsafeBufferPointer(start: lit.utf8Start, count: lit.utf8CodeUnitCount))
        return bytes.count == l.count && zip(bytes, l).allSatisfy { ASCII.lower($0) == $1 }
    }

    @Test func equalsLowerMatchesItsDefinitionForEveryLengthAndOctet() {
        var rng = SystemRandomNumberGenerator()
        for lit in Self.literals {
            let l = Array(UnsafeBufferPointer(start: lit.utf8Start, count: lit.utf8CodeUnitCount))
            // The literal itself in random case, then with each position replaced by each octet.
            for position in 0..<l.count {
                for c in 0...255 {
                    var v = l.map { Bool.random(using: &rng) && $0 >= 0x61 && $0 <= 0x7A ? $0 - 0x20 : $0 }
                    v[position] = UInt8(c)
                    // Placed at an offset in a larger buffer, as header names sit in a head.
                    let pad = Int.random(in: 0...9, using: &rng)
                    let buffer = Array(repeating: UInt8(0x41), count: pad) + v + Array(repeating: UInt8(0x41), count: 3)
                    let got = buffer.withUnsafeBytes { ASCII.equalsLower($0, pad..<(pad + v.count), lit) }
                    #expect(got == Self.reference(v, lit), "\(v) vs \(lit)")
                }
            }
            // Other lengths never match.
            let longer = l + [0x61]
            #expect(!longer.withUnsafeBytes { ASCII.equalsLower($0, 0..<longer.count, lit) })
            #expect(!l.withUnsafeBytes { ASCII.equalsLower($0, 0..<(l.count - 1), lit) } || l.count == 0)
        }
        #expect([UInt8]().withUnsafeBytes { ASCII.equalsLower($0, 0..<0, "") })
    }

    /// The value loop as it was, one octet at a time: where the value ends, and whether the
    /// line is refused.
    static func referenceValue(_ b: [UInt8], from v0: Int) -> (end: Int, refused: Bool) {
        var i = v0
        while i < b.count {
            let c = b[i]
            if c == 0x0D || c == 0x0A { break }
            if (c < 0x20 && c != 0x09) || c == 0x7F { return (i, true) }
            i += 1
        }
        return (i, false)
    }

    /// A header line's value, scanned eight octets at a time: a control octet anywhere ends or
    /// refuses it exactly where the one-octet loop did.
    @Test func headerValuesEndAndAreRefusedWhereTheOneOctetLoopSaid() {
        for length in 0..<40 {
            for position in 0..<max(1, length) {
                for c: UInt8 in [0x00, 0x01, 0x09, 0x0A, 0x0D, 0x1F, 0x7F, 0x80, 0xFF, 0x20, 0x41] {
                    var value = Array(repeating: UInt8(ascii: "v"), count: length)
                    if length > 0 { value[position] = c }
                    let line = Array("X-Name: ".utf8) + value + [0x0D, 0x0A]
                    var v0 = 8
                    while v0 < line.count && (line[v0] == 0x20 || line[v0] == 0x09) { v0 += 1 }
                    let (stop, refused) = Self.referenceValue(line, from: v0)
                    var i = 0
                    let result = line.withUnsafeBytes { b -> Result<HeaderField, HTTPError> in
                        do throws(HTTPError) { return .success(try HeadParser.headerLine(b, &i, b.count)) } catch { return .failure(error) }
                    }
                    switch result {
                    case .success(let f):
                        #expect(!refused, "accepted \(value)")
                        var e = stop
                        while e > v0 && (line[e - 1] == 0x20 || line[e - 1] == 0x09) { e -= 1 }
                        #expect(Int(f.valueEnd) == e, "value \(value): \(f)")
                    case .failure(let err):
                        // Refused for the control octet, or for a CR where the value stopped not followed by LF.
                        let badEnd = line[stop] == 0x0D && (stop + 1 >= line.count || line[stop + 1] != 0x0A)
                        #expect(refused || badEnd, "refused \(value): \(err)")
                    }
                }
            }
        }
    }
}
