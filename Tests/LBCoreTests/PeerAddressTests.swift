@testable import LBCore
import LBIO
import Glibc
import Testing

/// The compact client address every connection keeps says what the socket address it came from says.
@Suite struct PeerAddressTests {
    @Test(arguments: ["127.0.0.1", "10.1.2.3", "255.255.255.255", "::1", "2001:db8::7", "fe80::1:2:3:4", "::ffff:192.0.2.9", "::"])
    func peerAddressAgreesWithTheSocketAddress(_ ip: String) throws {
        let a = try #require(SocketAddress(ip: ip, port: 54321))
        let p = PeerAddress(a)
        #expect(p.ip == a.ip)
        #expect(p.ipBytes == a.ipBytes)
        #expect(p.port == 54321)
    }

    @Test func v4MappedAddressesAreShownAsIPv4AsNginxDoes() throws {
        let p = PeerAddress(try #require(SocketAddress(ip: "::ffff:192.0.2.9", port: 80)))
        #expect(p.ip == "192.0.2.9")
        #expect(PeerAddress(try #require(SocketAddress(ip: "192.0.2.9", port: 80))).ipBytes == p.ipBytes)
    }

    @Test func theAddressIsSmallerThanASocketAddress() {
        #expect(MemoryLayout<PeerAddress>.size <= 24)
        #expect(MemoryLayout<SocketAddress>.size > 100)
    }

    /// A unix-domain client has no IP: `unix:` and port 0 as nginx's `$remote_addr` and
    /// `$remote_port`, and no address bytes (no network rule matches it; `unix:` does).
    @Test func unixClientIsUnixWithoutAddressBytes() throws {
        var client = SocketAddress()
        client.storage.ss_family = sa_family_t(AF_UNIX)
        client.length = socklen_t(MemoryLayout<sa_family_t>.size)
        let p = PeerAddress(client)
        #expect(p.ip == "unix:" && p.port == 0 && p.ipBytes.isEmpty)
        let named = try #require(SocketAddress(unixPath: "/run/x.sock"))
        #expect(named.ip == "unix:/run/x.sock" && named.description == "unix:/run/x.sock" && named.port == 0)
        #expect(SocketAddress(unixPath: "") == nil)
        #expect(SocketAddress(unixPath: "/" + String(repeating: "a", count: 107)) == nil)
        #expect(SocketAddress(unixPath: "/" + String(repeating: "a", count: 106))?.unixPath?.count == 107)
    }
}
