import Glibc
import LBConfig
import LBIO

/// A client's address as a connection keeps it: the 16 address bytes (IPv4 as v4-mapped IPv6)
/// and the port, 18 bytes where a `SocketAddress` (a `sockaddr_storage`) takes 132. Every
/// connection holds one for its whole life, idle or not; the text form is made when asked for.
/// A unix-domain client (`listen unix:…`) has no address: `unix:`, port 0, no bytes, as nginx.
struct PeerAddress {
    private var address: (UInt64, UInt64)
    private var portNumber: UInt16
    private var isUnix: Bool

    init(_ a: SocketAddress) {
        var words: (UInt64, UInt64) = (0, 0)
        isUnix = a.isUnix
        if !isUnix {
            let bytes = a.ipBytes
            withUnsafeMutableBytes(of: &words) { $0.copyBytes(from: bytes) }
        }
        address = words
        portNumber = UInt16(truncatingIfNeeded: a.port)
    }

    var port: Int { Int(portNumber) }

    /// 16 bytes (IPv4 as v4-mapped IPv6), for allow/deny and hashing; as `SocketAddress.ipBytes`
    /// (none for a unix-domain client: no network rule matches it, ip_hash hashes zeros).
    var ipBytes: [UInt8] { isUnix ? [] : withUnsafeBytes(of: address) { Array($0) } }

    /// The IP as text (`127.0.0.1`, `::1`; v4-mapped IPv6 shown as IPv4, as nginx does); `unix:`
    /// for a unix-domain client (nginx's `$remote_addr` for one).
    var ip: String {
        if isUnix { return "unix:" }
        var buf = [CChar](repeating: 0, count: 64)
        _ = withUnsafeBytes(of: address) { b in
            if b[0..<10].allSatisfy({ $0 == 0 }) && b[10] == 0xFF && b[11] == 0xFF {
                inet_ntop(AF_INET, b.baseAddress! + 12, &buf, 64)
            } else {
                inet_ntop(AF_INET6, b.baseAddress!, &buf, 64)
            }
        }
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

extension SocketAddress {
    /// The socket address of a configured address (`listen`, `server`, `proxy_pass`, and any
    /// other upstream such as `fastcgi_pass`): an IP literal with its port (`defaultPort` when none
    /// was written), or the path of `unix:PATH`. `Socket.connect` and `Socket.listen` take either.
    init?(_ hp: HostPort, defaultPort: Int = 80) {
        if let path = hp.unixPath {
            self.init(unixPath: path)
        } else {
            self.init(ip: hp.host, port: hp.port ?? defaultPort)
        }
    }
}
