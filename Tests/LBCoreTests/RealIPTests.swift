import Testing
import LBConfig
import LBIO
import LBHTTP
@testable import LBCore

/// realip's address choice, with answers taken from Debian nginx 1.22.1
/// (`set_real_ip_from 127.0.0.1; set_real_ip_from 10.0.0.0/8;`, connection from 127.0.0.1).
struct RealIPTests {
    static let trusted = [parseCIDR("127.0.0.1")!, parseCIDR("10.0.0.0/8")!]
    static let local = SocketAddress(ip: "127.0.0.1", port: 41004)!

    static func resolve(_ v: String, recursive: Bool = false, from: SocketAddress = local) -> String? {
        guard let a = RealIP.resolve(connection: from, trusted: trusted, value: Array(v.utf8), recursive: recursive) else { return nil }
        return a.port > 0 ? "\(a.ip):\(a.port)" : a.ip
    }

    @Test(arguments: [
        ("203.0.113.9", false, "203.0.113.9"),
        ("garbage", false, nil),
        ("1.1.1.1, 10.0.0.5", false, "10.0.0.5"),
        ("1.1.1.1, 203.0.113.9:8080", false, "203.0.113.9:8080"),
        ("1.1.1.1,203.0.113.7", false, "203.0.113.7"),
        ("1.1.1.1, 10.0.0.5", true, "1.1.1.1"),
        ("1.1.1.1, 2.2.2.2, 10.0.0.5, 10.1.1.1", true, "2.2.2.2"),
        ("10.0.0.7, 10.0.0.5", true, "10.0.0.7"),
        ("garbage, 10.0.0.5", true, "10.0.0.5"),
        ("[2001:db8::1]:443", false, "2001:db8::1:443"),
    ] as [(String, Bool, String?)])
    func theAddressNginxPicks(_ header: String, _ recursive: Bool, _ expected: String?) {
        #expect(Self.resolve(header, recursive: recursive) == expected)
    }

    @Test func anUntrustedPeerIsNeverOverridden() {
        #expect(Self.resolve("203.0.113.9", from: SocketAddress(ip: "192.0.2.1", port: 5)!) == nil)
    }

    /// `real_ip_header proxy_protocol`: the header's source address and port, from a trusted
    /// peer only, and nothing for a header without addresses (LOCAL, UNKNOWN).
    @Test func proxyProtocolSourceFromTrustedPeersOnly() {
        let pp = ProxyProtocolHeader(sourceAddress: "2001:db8::7", sourcePort: 4242, destinationAddress: "::1", destinationPort: 443)
        let a = RealIP.resolve(connectionBytes: Self.local.ipBytes, trusted: Self.trusted, proxyProtocol: pp)
        #expect(a?.description == "[2001:db8::7]:4242")
        let stranger = SocketAddress(ip: "192.0.2.1", port: 1)!
        #expect(RealIP.resolve(connectionBytes: stranger.ipBytes, trusted: Self.trusted, proxyProtocol: pp) == nil)
        #expect(RealIP.resolve(connectionBytes: Self.local.ipBytes, trusted: Self.trusted, proxyProtocol: nil) == nil)
        let unparsable = ProxyProtocolHeader(sourceAddress: "abc", sourcePort: 1, destinationAddress: "::1", destinationPort: 2)
        #expect(RealIP.resolve(connectionBytes: Self.local.ipBytes, trusted: Self.trusted, proxyProtocol: unparsable) == nil)
    }
}
