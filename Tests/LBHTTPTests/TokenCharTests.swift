import Testing
@testable import LBHTTP

/// `ASCII.isToken` (bit masks) against RFC 9110's tchar, for every byte value.
struct TokenCharTests {
    @Test func everyByteIsATokenCharExactlyWhenRFC9110SaysSo() {
        let specials = Set("!#$%&'*+-.^_`|~".utf8)
        for b in 0...255 {
            let c = UInt8(b)
            let tchar = (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || specials.contains(c)
            #expect(ASCII.isToken(c) == tchar, "byte \(b)")
        }
    }
}
