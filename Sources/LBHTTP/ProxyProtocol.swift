import Glibc

/// The addresses a PROXY protocol header carries (`listen … proxy_protocol`): the client's
/// (`$proxy_protocol_addr`, `$proxy_protocol_port`) and the one it connected to
/// (`$proxy_protocol_server_addr`, `$proxy_protocol_server_port`). Addresses are text as nginx keeps
/// them: v1's as sent, v2's formatted (`192.0.2.1`, `2001:db8::1`).
public final class ProxyProtocolHeader: Sendable, Equatable, CustomStringConvertible {
    public let sourceAddress: String
    public let sourcePort: Int
    public let destinationAddress: String
    public let destinationPort: Int
    /// v2's TLVs after the addresses, unparsed (empty for v1).
    public let tlvs: [UInt8]

    public init(sourceAddress: String, sourcePort: Int, destinationAddress: String, destinationPort: Int, tlvs: [UInt8] = []) {
        self.sourceAddress = sourceAddress
        self.sourcePort = sourcePort
        self.destinationAddress = destinationAddress
        self.destinationPort = destinationPort
        self.tlvs = tlvs
    }

    public static func == (a: ProxyProtocolHeader, b: ProxyProtocolHeader) -> Bool {
        a.sourceAddress == b.sourceAddress && a.sourcePort == b.sourcePort && a.destinationAddress == b.destinationAddress
            && a.destinationPort == b.destinationPort && a.tlvs == b.tlvs
    }

    public var description: String { "\(sourceAddress):\(sourcePort) -> \(destinationAddress):\(destinationPort)" }
}

/// nginx's PROXY protocol reader (`ngx_proxy_protocol_read`, src/core/ngx_proxy_protocol.c) as a
/// pure function of the bytes received so far. nginx parses what its first read brought; this
/// one also says when a header is still incomplete, so a header split over reads is read whole.
///
/// - v1: `PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n`, at most 107 bytes; `PROXY UNKNOWN…\r\n`
///   is accepted without addresses. Addresses are checked as nginx does (hex digits, `.`, `:`).
/// - v2: the 12-byte signature, version 2, a 16-bit length; the LOCAL command and families or
///   transports other than TCP over IPv4/IPv6 are accepted without addresses (the connection is
///   the proxy's own); TLVs are kept. A header longer than 4,096 bytes is refused (nginx's
///   `NGX_PROXY_PROTOCOL_MAX_HEADER`).
public enum ProxyProtocol {
    /// What the bytes so far are.
    public enum Result: Equatable {
        /// A prefix of a header that may still be valid: read more.
        case incomplete
        /// A header of `length` bytes; nil addresses for LOCAL, UNKNOWN and unsupported families.
        case header(ProxyProtocolHeader?, length: Int)
        /// Not a PROXY protocol header (or a broken one): nginx logs the reason and closes.
        case invalid(String)
    }

    public static let v1MaxLength = 107
    public static let maxLength = 4096
    static let v1Prefix = Array("PROXY ".utf8)
    static let v2Signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]

    /// Parses the start of a connection's bytes.
    public static func parse(_ b: UnsafeRawBufferPointer) -> Result {
        if b.isEmpty { return .incomplete }
        if b[0] == v2Signature[0] {
            let n = min(b.count, v2Signature.count)
            for i in 0..<n where b[i] != v2Signature[i] { return broken(b) }
            if b.count < 16 { return .incomplete }
            return parseV2(b)
        }
        let n = min(b.count, v1Prefix.count)
        for i in 0..<n where b[i] != v1Prefix[i] { return broken(b) }
        // The line ends at the first LF; without one in 107 bytes the header is broken.
        guard let lf = b.prefix(v1MaxLength).firstIndex(of: 0x0A) else {
            return b.count >= v1MaxLength ? broken(b) : .incomplete
        }
        return parseV1(UnsafeRawBufferPointer(rebasing: b[0...lf]))
    }

    /// Convenience for tests and fuzzing.
    public static func parse(_ bytes: [UInt8]) -> Result {
        bytes.withUnsafeBytes { parse($0) }
    }

    /// nginx logs `broken header: "…"` with the bytes up to the first CR or LF.
    static func broken(_ b: UnsafeRawBufferPointer) -> Result {
        let line = b.prefix { $0 != 0x0D && $0 != 0x0A }.prefix(v1MaxLength)
        return .invalid("broken header: \"\(String(decoding: line, as: UTF8.self))\"")
    }

    /// One whole v1 line, LF included.
    static func parseV1(_ line: UnsafeRawBufferPointer) -> Result {
        var p = v1Prefix.count
        let end = line.count
        func matches(_ word: String) -> Bool {
            let w = Array(word.utf8)
            return end - p >= w.count && line[p..<(p + w.count)].elementsEqual(w)
        }
        if matches("UNKNOWN") {
            // Anything up to CRLF; a lone LF is not a line end.
            guard end >= 2, line[end - 2] == 0x0D else { return broken(line) }
            return .header(nil, length: end)
        }
        guard matches("TCP4 ") || matches("TCP6 ") else { return broken(line) }
        p += 5
        guard let src = address(line, &p), let dst = address(line, &p),
              let sport = port(line, &p, until: 0x20), let dport = port(line, &p, until: 0x0D),
              p < end, line[p] == 0x0A else { return broken(line) }
        return .header(ProxyProtocolHeader(sourceAddress: src, sourcePort: sport, destinationAddress: dst, destinationPort: dport),
                       length: p + 1)
    }

    /// An address up to its space: hex digits, `.` and `:` only (nginx's check; the value is
    /// parsed as an IP where it is used, by realip).
    static func address(_ b: UnsafeRawBufferPointer, _ p: inout Int) -> String? {
        let start = p
        while p < b.count {
            let c = b[p]
            p += 1
            if c == 0x20 { return String(decoding: b[start..<(p - 1)], as: UTF8.self) }
            let ok = c == UInt8(ascii: ":") || c == UInt8(ascii: ".") || (c >= 0x30 && c <= 0x39)
                || (c | 0x20 >= UInt8(ascii: "a") && c | 0x20 <= UInt8(ascii: "f"))
            if !ok { return nil }
        }
        return nil
    }

    /// Decimal digits up to `sep`, 0…65535 (nginx's `ngx_atoi`: at least one digit, digits only).
    static func port(_ b: UnsafeRawBufferPointer, _ p: inout Int, until sep: UInt8) -> Int? {
        let start = p
        var n = 0
        while p < b.count {
            let c = b[p]
            p += 1
            if c == sep { return p - 1 > start ? n : nil }
            guard c >= 0x30 && c <= 0x39 else { return nil }
            n = n * 10 + Int(c - 0x30)
            if n > 65535 { return nil }
        }
        return nil
    }

    /// A v2 header; at least its 16 fixed bytes are there.
    static func parseV2(_ b: UnsafeRawBufferPointer) -> Result {
        let version = b[12] >> 4, command = b[12] & 0x0F
        guard version == 2 else { return .invalid("unknown PROXY protocol version: \(version)") }
        let len = Int(b[14]) << 8 | Int(b[15])
        let total = 16 + len
        guard total <= maxLength else { return .invalid("header is too large") }
        if b.count < total { return .incomplete }
        // LOCAL (health checks of the proxy itself), or a command nginx does not know: no addresses.
        guard command == 1 else { return .header(nil, length: total) }
        let family = b[13] >> 4, transport = b[13] & 0x0F
        guard transport == 1 else { return .header(nil, length: total) }
        let body = UnsafeRawBufferPointer(rebasing: b[16..<total])
        let addressLength: Int
        switch family {
        case 1: addressLength = 4
        case 2: addressLength = 16
        default: return .header(nil, length: total) // AF_UNSPEC, AF_UNIX
        }
        let fixed = 2 * addressLength + 4
        guard body.count >= fixed else { return .invalid("header is too short for its address family") }
        let src = text(UnsafeRawBufferPointer(rebasing: body[0..<addressLength]))
        let dst = text(UnsafeRawBufferPointer(rebasing: body[addressLength..<(2 * addressLength)]))
        let sport = Int(body[2 * addressLength]) << 8 | Int(body[2 * addressLength + 1])
        let dport = Int(body[2 * addressLength + 2]) << 8 | Int(body[2 * addressLength + 3])
        return .header(ProxyProtocolHeader(sourceAddress: src, sourcePort: sport, destinationAddress: dst, destinationPort: dport,
                                           tlvs: Array(body[fixed...])), length: total)
    }

    /// An IPv4 (4 bytes) or IPv6 (16 bytes) address as text.
    static func text(_ a: UnsafeRawBufferPointer) -> String {
        var buf = [CChar](repeating: 0, count: 64)
        _ = inet_ntop(a.count == 4 ? AF_INET : AF_INET6, a.baseAddress!, &buf, 64)
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
