import LBConfig
import LBHTTP
import LBIO

/// nginx's realip module (`ngx_http_get_forwarded_addr`) as a pure function: when the connection
/// comes from a trusted proxy (`set_real_ip_from`), the client is the last address of the header
/// (`real_ip_header`; a list, as X-Forwarded-For); with `real_ip_recursive on`, trusted addresses
/// are skipped from the right. nil leaves the connection's address.
enum RealIP {
    static func resolve(connection: SocketAddress, trusted: [CIDR], value: [UInt8], recursive: Bool) -> SocketAddress? {
        resolve(connectionBytes: connection.ipBytes, trusted: trusted, value: value, recursive: recursive)
    }

    /// - Parameter connectionBytes: the peer's 16 address bytes (IPv4 v4-mapped).
    static func resolve(connectionBytes: [UInt8], trusted: [CIDR], value: [UInt8], recursive: Bool) -> SocketAddress? {
        guard trusted.contains(where: { $0.contains(connectionBytes) }) else { return nil }
        var end = value.count
        var found: SocketAddress?
        while end > 0 {
            // The last item: skip trailing separators, then back to the previous one.
            while end > 0 && (value[end - 1] == UInt8(ascii: ",") || value[end - 1] == 0x20) { end -= 1 }
            var start = end
            while start > 0 && value[start - 1] != UInt8(ascii: ",") && value[start - 1] != 0x20 { start -= 1 }
            guard start < end, let addr = parse(value[start..<end]) else { return found }
            found = addr
            // Recursive: go on only while the address just taken is itself a trusted proxy.
            guard recursive, start > 0, trusted.contains(where: { $0.contains(addr.ipBytes) }) else { return found }
            end = start
        }
        return found
    }

    /// `real_ip_header proxy_protocol`: the header's source address and port, when the connection
    /// comes from a trusted proxy and had a header with addresses (not LOCAL or UNKNOWN).
    static func resolve(connectionBytes: [UInt8], trusted: [CIDR], proxyProtocol: ProxyProtocolHeader?) -> SocketAddress? {
        guard let pp = proxyProtocol, trusted.contains(where: { $0.contains(connectionBytes) }) else { return nil }
        return SocketAddress(ip: pp.sourceAddress, port: pp.sourcePort)
    }

    /// `1.2.3.4`, `1.2.3.4:80`, `::1`, `[::1]:80` (nginx's `ngx_parse_addr_port`: a port is 1-65535,
    /// `[::1]` without one is not an address); port 0 when none.
    static func parse(_ item: ArraySlice<UInt8>) -> SocketAddress? {
        let text = String(decoding: item, as: UTF8.self)
        if let a = SocketAddress(ip: text, port: 0) { return a }
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            let host = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            // As ngx_parse_addr_port: brackets only around an address followed by a port.
            guard rest.hasPrefix(":"), let port = Int(rest.dropFirst()), (1...65535).contains(port) else { return nil }
            return SocketAddress(ip: host, port: port)
        }
        if let colon = text.lastIndex(of: ":"), !text[..<colon].contains(":"),
           let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port) {
            return SocketAddress(ip: String(text[..<colon]), port: port)
        }
        return nil
    }
}
