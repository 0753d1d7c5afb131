import Testing
@testable import LBHTTP

/// The PROXY protocol reader (nginx's ngx_proxy_protocol_read) fed bytes without sockets: every
/// prefix of a valid header is incomplete, the whole header gives its addresses and length, and
/// a broken one is refused as soon as a byte shows it.
@Suite struct ProxyProtocolTests {
    static let signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]

    func v2(command: UInt8 = 0x21, family: UInt8 = 0x11, body: [UInt8]) -> [UInt8] {
        Self.signature + [command, family, UInt8(body.count >> 8), UInt8(body.count & 0xFF)] + body
    }

    /// Every strict prefix of `bytes` is incomplete; the whole (with anything after it) is the header.
    func readEveryWay(_ bytes: [UInt8], then rest: [UInt8] = Array("GET / HTTP/1.1\r\n".utf8)) -> ProxyProtocol.Result {
        for k in 0..<bytes.count {
            #expect(ProxyProtocol.parse(Array(bytes[0..<k])) == .incomplete, "prefix of \(k) bytes")
        }
        let whole = ProxyProtocol.parse(bytes)
        #expect(ProxyProtocol.parse(bytes + rest) == whole, "followed by the request")
        return whole
    }

    func isInvalid(_ r: ProxyProtocol.Result) -> Bool {
        if case .invalid = r { return true }
        return false
    }

    @Test func v1TCP4GivesBothAddressesAndPorts() {
        let h = Array("PROXY TCP4 192.0.2.1 198.51.100.2 51234 443\r\n".utf8)
        #expect(readEveryWay(h) == .header(ProxyProtocolHeader(sourceAddress: "192.0.2.1", sourcePort: 51234,
                                                               destinationAddress: "198.51.100.2", destinationPort: 443),
                                           length: h.count))
    }

    @Test func v1TCP6KeepsTheAddressTextAsSent() {
        let h = Array("PROXY TCP6 2001:db8::1 ::1 65535 0\r\n".utf8)
        #expect(readEveryWay(h) == .header(ProxyProtocolHeader(sourceAddress: "2001:db8::1", sourcePort: 65535,
                                                               destinationAddress: "::1", destinationPort: 0),
                                           length: h.count))
    }

    @Test func v1UnknownIsAcceptedWithoutAddresses() {
        let h = Array("PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n".utf8)
        #expect(readEveryWay(h) == .header(nil, length: h.count))
        #expect(readEveryWay(Array("PROXY UNKNOWN\r\n".utf8)) == .header(nil, length: 15))
    }

    /// The longest v1 header (107 bytes, the spec's worst case) passes; without its line end by the
    /// 107th byte a header is broken.
    @Test func v1LongerThan107BytesIsBroken() {
        let longest = Array("PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n".utf8)
        #expect(longest.count == 107)
        #expect(readEveryWay(longest) == .header(nil, length: 107))
        let over = Array("PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 655351 65535\r\n".utf8)
        #expect(isInvalid(ProxyProtocol.parse(over)))
        #expect(isInvalid(ProxyProtocol.parse(Array(over[0..<107]))))
        #expect(ProxyProtocol.parse(Array(over[0..<106])) == .incomplete)
    }

    @Test(arguments: [
        "GET / HTTP/1.1\r\n",                              // no header at all
        "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",              // unknown protocol
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",                // LF without CR
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX\n",             // CR not followed by LF
        "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",          // port out of range
        "PROXY TCP4 1.2.3.4 5.6.7.8  2\r\n",               // empty port
        "PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",             // sign in a port
        "PROXY TCP4 1.2.3.4\r\n",                          // missing fields
        "PROXY TCP4 host.example 5.6.7.8 1 2\r\n",         // a name is not an address
        "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",              // the keyword is case-sensitive
        "PROXY UNKNOWN\n",                                 // UNKNOWN still needs CRLF
        "\u{16}\u{03}\u{01}\u{02}\u{00}",                  // a TLS ClientHello without header
    ])
    func brokenV1HeadersAreRefused(_ text: String) {
        #expect(isInvalid(ProxyProtocol.parse(Array(text.utf8))), "\(text.debugDescription)")
    }

    /// A wrong byte is seen at once: no waiting for more of a header that cannot be one.
    @Test func aWrongFirstByteIsRefusedWithoutWaiting() {
        #expect(isInvalid(ProxyProtocol.parse(Array("G".utf8))))
        #expect(isInvalid(ProxyProtocol.parse(Array("PROXX".utf8))))
        #expect(isInvalid(ProxyProtocol.parse([0x0D, 0x0A, 0x0D, 0x0B])))
        #expect(ProxyProtocol.parse(Array("PROX".utf8)) == .incomplete)
        #expect(ProxyProtocol.parse([]) == .incomplete)
    }

    @Test func brokenHeaderMessageQuotesTheLineAsNginxDoes() {
        #expect(ProxyProtocol.parse(Array("GET / HTTP/1.1\r\nHost: a\r\n\r\n".utf8)) == .invalid("broken header: \"GET / HTTP/1.1\""))
    }

    @Test func v2TCPOverIPv4() {
        let body: [UInt8] = [192, 0, 2, 1, 198, 51, 100, 2, 0xC8, 0x22, 0x01, 0xBB]
        #expect(readEveryWay(v2(body: body)) == .header(ProxyProtocolHeader(sourceAddress: "192.0.2.1", sourcePort: 51234,
                                                                           destinationAddress: "198.51.100.2", destinationPort: 443),
                                                       length: 28))
    }

    @Test func v2TCPOverIPv6KeepsTLVs() {
        var body = [UInt8](repeating: 0, count: 36)
        body[0] = 0x20; body[1] = 0x01; body[2] = 0x0d; body[3] = 0xb8; body[15] = 1 // 2001:db8::1
        body[31] = 1                                                                  // ::1
        body[32] = 0x00; body[33] = 0x50; body[34] = 0x1F; body[35] = 0x90
        let tlv: [UInt8] = [0x02, 0x00, 0x03, 0x61, 0x62, 0x63] // AUTHORITY "abc"
        let h = v2(family: 0x21, body: body + tlv)
        #expect(readEveryWay(h) == .header(ProxyProtocolHeader(sourceAddress: "2001:db8::1", sourcePort: 80,
                                                               destinationAddress: "::1", destinationPort: 8080, tlvs: tlv),
                                           length: 16 + 42))
    }

    /// LOCAL (the proxy's own health check), UNSPEC, unix and UDP carry no client address: the
    /// header is skipped and the connection is the proxy's, as nginx does.
    @Test func v2LocalAndUnsupportedFamiliesHaveNoAddresses() {
        let inet = [UInt8](repeating: 1, count: 12)
        #expect(readEveryWay(v2(command: 0x20, family: 0x00, body: [])) == .header(nil, length: 16))
        #expect(readEveryWay(v2(command: 0x20, family: 0x11, body: inet)) == .header(nil, length: 28))
        #expect(readEveryWay(v2(family: 0x00, body: [])) == .header(nil, length: 16))
        #expect(readEveryWay(v2(family: 0x31, body: [UInt8](repeating: 0, count: 216))) == .header(nil, length: 232))
        #expect(readEveryWay(v2(family: 0x12, body: inet)) == .header(nil, length: 28))
    }

    @Test func v2BrokenHeadersAreRefused() {
        // Version 1 in the binary form.
        #expect(ProxyProtocol.parse(Self.signature + [0x11, 0x11, 0, 0]) == .invalid("unknown PROXY protocol version: 1"))
        // TCP over IPv4 with fewer address bytes than the family needs.
        #expect(isInvalid(ProxyProtocol.parse(v2(body: [1, 2, 3, 4, 5, 6, 7, 8, 0, 1]))))
        // Longer than nginx's 4,096-byte limit: refused from its fixed part, not awaited.
        #expect(isInvalid(ProxyProtocol.parse(Self.signature + [0x21, 0x11, 0x10, 0x00])))
        #expect(readEveryWay(v2(family: 0x00, body: [UInt8](repeating: 0, count: 4080))) == .header(nil, length: 4096))
    }
}
