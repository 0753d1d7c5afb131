import Glibc

/// An IPv4, IPv6 or unix-domain socket address, stored inline (a `sockaddr_un` fits in the
/// `sockaddr_storage`: the type and the TCP paths stay as they were).
public struct SocketAddress: Sendable, Hashable, CustomStringConvertible {
    public var storage: sockaddr_storage
    public var length: socklen_t

    public init() {
        storage = sockaddr_storage()
        length = socklen_t(MemoryLayout<sockaddr_storage>.size)
    }

    /// Parses an IP literal and port.
    public init?(ip: String, port: Int) {
        self.init()
        var v4 = sockaddr_in()
        if inet_pton(AF_INET, ip, &v4.sin_addr) == 1 {
            v4.sin_family = sa_family_t(AF_INET)
            v4.sin_port = in_port_t(UInt16(port).bigEndian)
            withUnsafeMutableBytes(of: &storage) { dst in withUnsafeBytes(of: v4) { dst.copyMemory(from: $0) } }
            length = socklen_t(MemoryLayout<sockaddr_in>.size)
            return
        }
        var v6 = sockaddr_in6()
        if inet_pton(AF_INET6, ip, &v6.sin6_addr) == 1 {
            v6.sin6_family = sa_family_t(AF_INET6)
            v6.sin6_port = in_port_t(UInt16(port).bigEndian)
            withUnsafeMutableBytes(of: &storage) { dst in withUnsafeBytes(of: v6) { dst.copyMemory(from: $0) } }
            length = socklen_t(MemoryLayout<sockaddr_in6>.size)
            return
        }
        return nil
    }

    /// A unix-domain address (`listen unix:PATH`, `server unix:PATH`); nil when the path does
    /// not fit in `sun_path` (107 bytes and a NUL) or is empty.
    public init?(unixPath path: String) {
        self.init()
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: sockaddr_un().sun_path)
        guard !bytes.isEmpty, bytes.count < capacity, !bytes.contains(0) else { return nil }
        var un = sockaddr_un()
        un.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &un.sun_path) { $0.copyBytes(from: bytes) }
        withUnsafeMutableBytes(of: &storage) { dst in withUnsafeBytes(of: un) { dst.copyMemory(from: $0) } }
        length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + 1)
    }

    public var family: Int32 { Int32(storage.ss_family) }

    public var isUnix: Bool { family == AF_UNIX }

    /// The path of a unix-domain address ("" for an unnamed one, as a connecting client's);
    /// nil for IP addresses.
    public var unixPath: String? {
        guard isUnix else { return nil }
        let pathOffset = MemoryLayout<sa_family_t>.size
        let n = max(0, Int(length) - pathOffset)
        return withUnsafeBytes(of: storage) { raw in
            String(decoding: raw[pathOffset..<(pathOffset + n)].prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    /// The port (0 for a unix-domain address).
    public var port: Int {
        if isUnix { return 0 }
        return withUnsafeBytes(of: storage) { raw in
            Int(UInt16(bigEndian: raw.load(fromByteOffset: 2, as: UInt16.self)))
        }
    }

    /// The IP as text (`127.0.0.1`, `::1`; v4-mapped IPv6 shown as IPv4, as nginx does);
    /// `unix:PATH` for a unix-domain address (`unix:` for an unnamed client, as nginx's
    /// `$remote_addr`).
    public var ip: String {
        if let path = unixPath { return "unix:" + path }
        var buf = [CChar](repeating: 0, count: 64)
        withUnsafeBytes(of: storage) { raw in
            if family == AF_INET {
                var a = raw.load(fromByteOffset: 4, as: in_addr.self)
                inet_ntop(AF_INET, &a, &buf, 64)
            } else {
                var a = raw.load(fromByteOffset: 8, as: in6_addr.self)
                let bytes = withUnsafeBytes(of: a) { Array($0) }
                if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF {
                    var v4 = in_addr()
                    withUnsafeMutableBytes(of: &v4) { $0.copyBytes(from: bytes[12..<16]) }
                    inet_ntop(AF_INET, &v4, &buf, 64)
                } else {
                    inet_ntop(AF_INET6, &a, &buf, 64)
                }
            }
        }
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// 16 bytes (IPv4 as v4-mapped IPv6), for allow/deny and hashing; none for unix-domain.
    public var ipBytes: [UInt8] {
        if isUnix { return [] }
        return withUnsafeBytes(of: storage) { raw in
            if family == AF_INET {
                return [UInt8](repeating: 0, count: 10) + [0xFF, 0xFF] + Array(raw[4..<8])
            }
            return Array(raw[8..<24])
        }
    }

    public var description: String { isUnix ? ip : family == AF_INET6 && !ip.contains(".") ? "[\(ip)]:\(port)" : "\(ip):\(port)" }

    public static func == (a: SocketAddress, b: SocketAddress) -> Bool { a.description == b.description }
    public func hash(into h: inout Hasher) { h.combine(description) }
}
