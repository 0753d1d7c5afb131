import Testing
@testable import LBHTTP

/// sub_filter's matcher: each case is what Debian's nginx 1.22.1 answers (`return 200 INPUT` through
/// the same sub_filter lines), and every split of the input gives the same output.
struct SubFilterTests {
    static func run(_ pairs: [(String, String)], once: Bool, _ pieces: [String]) -> String {
        var m = SubFilterMatcher(patterns: pairs.map { Array($0.0.utf8) }, replacements: pairs.map { Array($0.1.utf8) }, once: once)
        var out: [UInt8] = []
        for p in pieces {
            let bytes = Array(p.utf8)
            bytes.withUnsafeBytes { m.feed($0, into: &out) }
        }
        m.finish(into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    static let cases: [([(String, String)], Bool, String, String)] = [
        ([("world", "there")], true, "hello world, world", "hello there, world"),
        ([("world", "there")], false, "hello world, world", "hello there, there"),
        ([("WORLD", "x")], false, "World wOrLd", "x x"),                         // case-insensitive
        ([("abc", "1"), ("ab", "2")], false, "abab abc", "22 1"),               // first pattern in order wins
        ([("ab", "2"), ("abc", "1")], false, "abc", "2c"),
        ([("aab", "X")], false, "aaab", "aX"),                                   // a failed start does not hide the next
        ([("abc", "X")], false, "ababc ab", "abX ab"),                           // a partial match at the end is text
        ([("a", "b"), ("b", "a")], true, "abab", "baab"),                        // once: each pattern once
        ([("<head>", "<head><script/>")], true, "<html><HEAD></head>", "<html><head><script/></head>"),
        ([("x", "")], false, "axbxc", "abc"),
    ]

    @Test func replacesAsNginx() {
        for (pairs, once, input, expected) in Self.cases {
            #expect(Self.run(pairs, once: once, [input]) == expected, "\(pairs) \(input)")
        }
    }

    @Test func everySplitGivesTheSameOutput() {
        for (pairs, once, input, expected) in Self.cases {
            let bytes = Array(input)
            for i in 0...bytes.count {
                #expect(Self.run(pairs, once: once, [String(bytes[..<i]), String(bytes[i...])]) == expected, "\(input) split at \(i)")
            }
            // And byte at a time.
            #expect(Self.run(pairs, once: once, bytes.map { String($0) }) == expected, "\(input) byte at a time")
        }
    }
}
