import Testing
import LBHTTP

/// The PROXY protocol v1 header lb sends upstream (`proxy_protocol on`), and that lb's own
/// parser reads back as the same addresses.
struct ProxyProtocolWriterTests {
    @Test func familiesAsNginxWritesThem() {
        #expect(ProxyProtocolWriter.v1(clientIP: "192.0.2.7", clientPort: 51234, localIP: "127.0.0.1", localPort: 8080)
                == "PROXY TCP4 192.0.2.7 127.0.0.1 51234 8080\r\n")
        #expect(ProxyProtocolWriter.v1(clientIP: "2001:db8::1", clientPort: 1, localIP: "::1", localPort: 443)
                == "PROXY TCP6 2001:db8::1 ::1 1 443\r\n")
        // A v4-mapped local address (dual-stack listener) still makes TCP4.
        #expect(ProxyProtocolWriter.v1(clientIP: "10.0.0.1", clientPort: 2, localIP: "::ffff:10.0.0.2", localPort: 80)
                == "PROXY TCP4 10.0.0.1 10.0.0.2 2 80\r\n")
        // Unix clients, or mixed families: UNKNOWN.
        #expect(ProxyProtocolWriter.v1(clientIP: "unix:", clientPort: 0, localIP: "unix:/run/lb.sock", localPort: 0) == "PROXY UNKNOWN\r\n")
        #expect(ProxyProtocolWriter.v1(clientIP: "10.0.0.1", clientPort: 2, localIP: "2001:db8::2", localPort: 80) == "PROXY UNKNOWN\r\n")
    }
}
