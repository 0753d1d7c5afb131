/// The PROXY protocol v1 header lb sends to an upstream (`proxy_protocol on`), as nginx's stream
/// module writes it (`ngx_proxy_protocol_write`): `PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n`, or
/// `PROXY UNKNOWN\r\n` when the addresses are not both IP of one family.
public enum ProxyProtocolWriter {
    /// `client` and `local` are textual addresses (`127.0.0.1`, `::1`, `unix:`); an IPv4 address
    /// mapped into IPv6 (`::ffff:a.b.c.d`) counts as IPv4, so a dual-stack listener still says TCP4.
    public static func v1(clientIP: String, clientPort: Int, localIP: String, localPort: Int) -> String {
        func v4(_ s: String) -> String? {
            let t = s.lowercased().hasPrefix("::ffff:") && s.contains(".") ? String(s.dropFirst(7)) : s
            return !t.contains(":") && t.split(separator: ".").count == 4 ? t : nil
        }
        func v6(_ s: String) -> String? { s.contains(":") && !s.hasPrefix("unix:") ? s : nil }
        if let c = v4(clientIP), let l = v4(localIP) {
            return "PROXY TCP4 \(c) \(l) \(clientPort) \(localPort)\r\n"
        }
        if let c = v6(clientIP), let l = v6(localIP) {
            return "PROXY TCP6 \(c) \(l) \(clientPort) \(localPort)\r\n"
        }
        return "PROXY UNKNOWN\r\n"
    }
}
