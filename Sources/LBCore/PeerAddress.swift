import Glibc
import LBIO

/// A client's address as a connection keeps it: the 16 address bytes (IPv4 as v4-mapped IPv6)
/// and the port, 18 bytes where a `SocketAddress` (a `sockaddr_storage`) takes 132. Every
/// connection holds one for its whole life, idle or not; the text form is made when asked for.
struct PeerAddress {
    private var address: (UInt64, UInt64)
    private var portNumber: UInt16

    init(_ a: SocketAddress) {
        var words: (UInt64, UInt64) = (0, 0)
        let bytes = a.ipBytes
        withUnsafeMutableBytes(of: &words) { $0.copyBytes(from: bytes) }
        address = words
        portNumber = UInt16(truncatingIfNeeded: a.port)
    }

    var port: Int { Int(portNumber) }

    /// 16 bytes (IPv4 as v4-mapped IPv6), for allow/deny and hashing; as `SocketAddress.ipBytes`.
    var ipBytes: [UInt8] { withUnsafeBytes(of: address) { Array($0) } }

    /// The IP as text (`127.0.0.1`, `::1`; v4-mapped IPv6 shown as IPv4, as nginx does).
    var ip: String {
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
