import Testing
@testable import LBStore

/// A case the RESP fuzz target (Tests/fuzz/resp.swift) found where the parser's answer depended on
/// how the bytes arrived.
@Suite struct RESPSplitTests {
    /// The outcome of reading `text` with the buffer grown `step` bytes at a time.
    func outcome(_ text: String, step: Int) -> String {
        let all = Array(text.utf8)
        var have = 0
        while have < all.count {
            have = min(all.count, have + step)
            do {
                if let (args, used) = try all[0..<have].withUnsafeBytes({ b throws(RESP.ParseError) in try RESP.parseCommand(b) }) {
                    return "\(args.count) arguments, \(used) bytes"
                }
            } catch {
                return "\(error)"
            }
        }
        return "incomplete"
    }

    /// A length of more than 12 characters was refused while its line was incomplete but
    /// accepted (`$0000000000000000\r\n` is 0) when the line ending came in the same read.
    @Test(arguments: ["*1\r\n$0000000000000003\r\nabc\r\n", "*00000000000001\r\n$1\r\nx\r\n", "*1\r\n$-00000000000001\r\n"])
    func overlongLengthsAreRefusedHoweverTheyArrive(_ text: String) {
        let whole = outcome(text, step: Int.max)
        #expect(whole == "\(RESP.ParseError.protocolError("invalid length"))")
        for step in [1, 2, 5] { #expect(outcome(text, step: step) == whole, "step \(step)") }
    }

    @Test func lengthsOfTwelveCharactersStillParse() {
        let text = "*1\r\n$000000000003\r\nabc\r\n"
        #expect(outcome(text, step: Int.max) == "1 arguments, \(text.utf8.count) bytes")
        #expect(outcome(text, step: 1) == outcome(text, step: Int.max))
    }
}
