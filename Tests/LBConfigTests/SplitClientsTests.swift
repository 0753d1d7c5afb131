import Testing
@testable import LBConfig

/// split_clients: MurmurHash2 and the part bounds, with placements read from Debian's nginx 1.22
/// (`split_clients "${arg_k}" $fine { 0.01% 0; 0.01% 1; … 0.01% 9999; }` answers the hash's
/// ten-thousandth, and the documented example's shares answer a, b, c or d).
struct SplitClientsTests {
    /// 10000 parts of 0.01%: the value is the index of the ten-thousandth holding the hash.
    static let fine: SplitClients = {
        guard case .success(let b) = SplitClients.bounds(Array(repeating: 1, count: 10_000)) else { fatalError() }
        return SplitClients(parts: b.enumerated().map { (bound: $0.element, value: Array("\($0.offset)".utf8)) })
    }()

    @Test(arguments: [
        ("", "0"), ("a", "5719"), ("ab", "1040"), ("abc", "755"), ("abcd", "1505"), ("abcde", "3712"),
        ("127.0.0.1", "7112"), ("hello%20world", "2320"), ("key0", "6282"), ("key199", "1367"),
    ])
    func murmurHashPlacesKeysInNginxsTenThousandth(_ key: String, _ nginx: String) {
        #expect(String(decoding: Self.fine.value(for: Array(key.utf8)), as: UTF8.self) == nginx)
    }

    @Test func murmurHashMatchesTheReferenceForEmptyInput() {
        #expect(SplitClients.murmurHash2([]) == 0)
    }

    @Test(arguments: [
        ("", "a"), ("a", "d"), ("ab", "b"), ("abc", "a"), ("abcd", "b"), ("abcde", "d"), ("127.0.0.1", "d"),
        ("hello%20world", "b"), ("key0", "d"), ("key199", "b"),
    ])
    func documentedSharesPickAsNginx(_ key: String, _ nginx: String) throws {
        let t = try load("events {}\nhttp {\nsplit_clients \"${arg_k}\" $v { 10% a; 20.5% b; 0.25% c; * d; }\nserver { listen 80; }\n}\n")
        let split = try #require(t.maps.first { $0.variable == "v" }?.splitClients)
        #expect(String(decoding: split.value(for: Array(key.utf8)), as: UTF8.self) == nginx)
    }

    @Test func sharesBelowOneHundredLeaveTheRestEmpty() {
        // "abc", "abcde", "127.0.0.1" fell outside 33.33% + 33.33% in nginx (key + "x").
        guard case .success(let b) = SplitClients.bounds([3333, 3333]) else { Issue.record("refused"); return }
        let s = SplitClients(parts: [(b[0], Array("one".utf8)), (b[1], Array("two".utf8))])
        #expect(s.value(for: Array("abcx".utf8)) == [])
        #expect(s.value(for: Array("ax".utf8)) == Array("two".utf8))
        #expect(s.value(for: Array("key0x".utf8)) == Array("one".utf8))
    }

    @Test(arguments: [("10", 1000), ("20.5", 2050), ("0.01", 1), ("100", 10000), ("33.33", 3333)])
    func percentagesAreHundredths(_ text: String, _ value: Int) {
        #expect(SplitClients.hundredths(Substring(text)) == value)
    }

    @Test(arguments: ["0.001", "6x", "", "1.2.3", "-5"])
    func malformedPercentagesAreRefused(_ text: String) {
        #expect(SplitClients.hundredths(Substring(text)) == nil)
    }

    @Test(arguments: [
        (" 60% a;\n 50% b;\n", "percent total is greater than 100% in t.conf:6"),
        (" * a;\n 10% b;\n", "percent total is greater than 100% in t.conf:6"),
        (" 6x% a;\n", "invalid percent value \"6x%\" in t.conf:4"),
        (" 0.001% a;\n", "invalid percent value \"0.001%\" in t.conf:4"),
        (" 0% a;\n", "invalid percent value \"0%\" in t.conf:4"),
    ])
    func refusedAsNginxRefusesIt(_ body: String, _ message: String) {
        #expect(loadError("events {}\nhttp {\nsplit_clients \"$uri\" $v {\n\(body)}\n}\n") == message)
    }
}
