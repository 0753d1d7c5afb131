import Testing
@testable import LBHTTP

/// `large_client_header_buffers` on HTTP/2 as nginx applies it (ngx_http_v2_state_field_len,
/// ngx_http_v2_state_process_header): one string literal longer than a buffer, or a list longer
/// than all of them, ends the connection with GOAWAY ENHANCE_YOUR_CALM.
@Suite struct H2HeaderLimitTests {
    static func config() -> H2Config {
        var c = H2Config()
        c.maxFieldSize = 1024
        c.maxHeaderListSize = 4096
        c.maxHeaderBlockSize = 4096
        return c
    }

    /// A raw literal: 7-bit prefix length, then the octets.
    static func literal(_ name: String, _ value: [UInt8], huffmanLength: Bool = false) -> [UInt8] {
        var out: [UInt8] = [0x00]
        HPACKCoding.writeInteger(name.utf8.count, prefixBits: 7, flags: 0, into: &out)
        out += Array(name.utf8)
        HPACKCoding.writeInteger(value.count, prefixBits: 7, flags: huffmanLength ? 0x80 : 0, into: &out)
        return out + value
    }

    static let get: [UInt8] = [0x82, 0x86, 0x84, 0x41, 0x01, 0x61] // GET http / authority "a"

    @Test func oneFieldLongerThanABufferEndsTheConnection() {
        var c = TestClient(config: Self.config())
        let block = Self.get + Self.literal("x-long", [UInt8](repeating: 0x61, count: 1025))
        #expect(c.send(rawFrame(.headers, flags: H2Flags.endHeaders | H2Flags.endStream, stream: 1, block)) == [.goaway(.enhanceYourCalm)])
    }

    @Test func fieldsUpToABufferAreAccepted() {
        var c = TestClient(config: Self.config())
        let block = Self.get + Self.literal("x-long", [UInt8](repeating: 0x61, count: 1024))
        #expect(c.send(rawFrame(.headers, flags: H2Flags.endHeaders | H2Flags.endStream, stream: 1, block)).count == 1)
    }

    /// nginx measures the literal as sent: Huffman octets that decode longer than a buffer pass
    /// (the list cap still holds).
    @Test func theLimitAppliesToTheLiteralAsSent() {
        var c = TestClient(config: Self.config())
        // '0' is 5 bits in Huffman: 1000 octets of 0x00 are 1600 '0's.
        let block = Self.get + Self.literal("x-h", [UInt8](repeating: 0x00, count: 1000), huffmanLength: true)
        let seen = c.send(rawFrame(.headers, flags: H2Flags.endHeaders | H2Flags.endStream, stream: 1, block))
        #expect(seen.count == 1 && seen.first.map { if case .request = $0 { true } else { false } } == true, "\(seen)")
    }

    /// A literal that fits a buffer but not what is left of the list: ENHANCE_YOUR_CALM too (it
    /// was COMPRESSION_ERROR).
    @Test func aLiteralPastTheListCapIsEnhanceYourCalm() {
        var c = TestClient(config: Self.config())
        var block = Self.get
        for i in 0..<4 { block += Self.literal("x-\(i)", [UInt8](repeating: 0x61, count: 1000)) }
        #expect(c.send(rawFrame(.headers, flags: H2Flags.endHeaders | H2Flags.endStream, stream: 1, block)) == [.goaway(.enhanceYourCalm)])
    }
}
