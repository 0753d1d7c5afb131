import Glibc

/// `getaddrinfo`-based resolution, as nginx does at configuration time.
public struct SystemResolver: HostResolver {
    public init() {}

    public func resolve(_ host: String) -> [String] {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var res: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &res) == 0, let first = res else { return [] }
        defer { freeaddrinfo(first) }
        var out: [String] = []
        var p: UnsafeMutablePointer<addrinfo>? = first
        var buf = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        while let a = p {
            if a.pointee.ai_family == AF_INET {
                a.pointee.ai_addr.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sin in
                    var addr = sin.pointee.sin_addr
                    inet_ntop(AF_INET, &addr, &buf, socklen_t(buf.count))
                }
            } else if a.pointee.ai_family == AF_INET6 {
                a.pointee.ai_addr.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin in
                    var addr = sin.pointee.sin6_addr
                    inet_ntop(AF_INET6, &addr, &buf, socklen_t(buf.count))
                }
            } else {
                p = a.pointee.ai_next
                continue
            }
            let s = String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if !out.contains(s) { out.append(s) }
            p = a.pointee.ai_next
        }
        return out
    }
}

/// Whether a string is an IPv4 or IPv6 literal.
public func isIPLiteral(_ s: String) -> Bool {
    var v4 = in_addr()
    var v6 = in6_addr()
    return inet_pton(AF_INET, s, &v4) == 1 || inet_pton(AF_INET6, s, &v6) == 1
}

/// Parses `1.2.3.4`, `10.0.0.0/8`, `::1`, `fd00::/8` into a network (IPv4 as v4-mapped IPv6).
public func parseCIDR(_ s: String) -> CIDR? {
    if s == "unix:" { return .unix }
    let parts = s.split(separator: "/", omittingEmptySubsequences: false)
    guard parts.count <= 2, let addrPart = parts.first else { return nil }
    var v4 = in_addr()
    var v6 = in6_addr()
    var bytes: [UInt8]
    var maxLen: Int
    var offset = 0
    if inet_pton(AF_INET, String(addrPart), &v4) == 1 {
        bytes = [UInt8](repeating: 0, count: 10) + [0xFF, 0xFF] + withUnsafeBytes(of: v4) { Array($0) }
        maxLen = 32
        offset = 96
    } else if inet_pton(AF_INET6, String(addrPart), &v6) == 1 {
        bytes = withUnsafeBytes(of: v6) { Array($0) }
        maxLen = 128
    } else {
        return nil
    }
    var len = maxLen
    if parts.count == 2 {
        guard let n = Values.number(String(parts[1])), n <= maxLen else { return nil }
        len = n
    }
    return CIDR(address: bytes, prefixLength: len + offset, description: s)
}
