/// Parsers for nginx's value syntaxes. Each returns nil on bad input; the caller words the error.
public enum Values {
    /// `1024`, `10k`, `8M`, `1g` → bytes (nginx's `ngx_parse_size`/`ngx_parse_offset`).
    public static func size(_ s: String) -> Int? {
        guard let last = s.last else { return nil }
        var mult = 1
        var digits = Substring(s)
        switch last {
        case "k", "K": mult = 1024; digits = digits.dropLast()
        case "m", "M": mult = 1024 * 1024; digits = digits.dropLast()
        case "g", "G": mult = 1024 * 1024 * 1024; digits = digits.dropLast()
        default: break
        }
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int(digits) else { return nil }
        let (r, o) = n.multipliedReportingOverflow(by: mult)
        return o ? nil : r
    }

    /// `500ms`, `30s`, `5m`, `1h30m`, `2d`, `1w`, `1M`, `1y`; a bare number is seconds.
    /// Returns milliseconds (nginx's `ngx_parse_time`).
    public static func milliseconds(_ s: String) -> Int? {
        if s.isEmpty { return nil }
        if s.allSatisfy({ $0.isASCII && $0.isNumber }) {
            guard let n = Int(s) else { return nil }
            return n.multipliedReportingOverflow(by: 1000).overflow ? nil : n * 1000
        }
        var total = 0
        var num: Int? = nil
        var chars = Array(s.utf8)[...]
        var lastUnitRank = Int.max
        while let c = chars.first {
            if c >= 0x30 && c <= 0x39 {
                let d = Int(c - 0x30)
                let (m, o1) = (num ?? 0).multipliedReportingOverflow(by: 10)
                let (a, o2) = m.addingReportingOverflow(d)
                if o1 || o2 { return nil }
                num = a
                chars = chars.dropFirst()
                continue
            }
            guard let n = num else { return nil }
            var unit: Int
            var rank: Int
            switch c {
            case UInt8(ascii: "y"): unit = 365 * 86_400_000; rank = 8
            case UInt8(ascii: "M"): unit = 30 * 86_400_000; rank = 7
            case UInt8(ascii: "w"): unit = 7 * 86_400_000; rank = 6
            case UInt8(ascii: "d"): unit = 86_400_000; rank = 5
            case UInt8(ascii: "h"): unit = 3_600_000; rank = 4
            case UInt8(ascii: "m"):
                if chars.dropFirst().first == UInt8(ascii: "s") {
                    unit = 1; rank = 1
                    chars = chars.dropFirst()
                } else {
                    unit = 60_000; rank = 3
                }
            case UInt8(ascii: "s"): unit = 1000; rank = 2
            default: return nil
            }
            // Units must be written from the largest down, each once (nginx's rule).
            if rank >= lastUnitRank { return nil }
            lastUnitRank = rank
            let (p, o) = n.multipliedReportingOverflow(by: unit)
            if o { return nil }
            total += p
            num = nil
            chars = chars.dropFirst()
        }
        if let n = num { // trailing number without unit counts as seconds
            if lastUnitRank <= 2 { return nil }
            total += n * 1000
        }
        return total
    }

    /// `on` / `off`.
    public static func flag(_ s: String) -> Bool? {
        switch s {
        case "on": return true
        case "off": return false
        default: return nil
        }
    }

    /// A non-negative decimal integer.
    public static func number(_ s: String) -> Int? {
        guard !s.isEmpty, s.utf8.count <= 18, s.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return Int(s)
    }

    /// A TCP port 1…65535.
    public static func port(_ s: String) -> Int? {
        guard let n = number(s), n >= 1, n <= 65535 else { return nil }
        return n
    }
}

/// A host and port as written in `listen`, `server` or `proxy_pass`, or a unix-domain socket
/// (`unix:PATH`: `host` is the whole `unix:PATH`, `port` nil).
public struct HostPort: Sendable, Hashable, CustomStringConvertible {
    /// The host as written: an IPv4 or IPv6 literal (without brackets), `*`, a name, or `unix:PATH`.
    public var host: String
    public var port: Int?

    public var isIPv6: Bool { !isUnix && host.contains(":") }

    /// `unix:PATH`.
    public var isUnix: Bool { host.hasPrefix("unix:") }

    /// The path of `unix:PATH`; nil for an IP address or a name.
    public var unixPath: String? { isUnix ? String(host.dropFirst(5)) : nil }

    /// `unix:PATH`, with the checks nginx's `ngx_parse_unix_domain_url` makes: a path, no longer
    /// than `sun_path` holds (107 bytes); nil when it is not.
    public static func unix(_ path: Substring) -> HostPort? {
        guard !path.isEmpty, path.utf8.count < 108 else { return nil }
        return HostPort(host: "unix:" + path, port: nil)
    }

    public init(host: String, port: Int?) {
        self.host = host
        self.port = port
    }

    public var description: String {
        let h = isIPv6 ? "[\(host)]" : host
        if let port { return "\(h):\(port)" }
        return h
    }

    /// An upstream address as `server`, `proxy_pass`, `fastcgi_pass` and `uwsgi_pass` take it:
    /// `unix:PATH`, or `HOST[:PORT]` / `[IPV6][:PORT]` (no `*`). On failure, nginx's reason, to which
    /// callers add where it was (` in upstream "TEXT"`).
    public static func upstream(_ s: String) -> Result<HostPort, UpstreamAddressError> {
        if s.hasPrefix("unix:") {
            let path = s.dropFirst(5)
            guard let hp = unix(path) else { return .failure(path.isEmpty ? .noUnixPath : .unixPathTooLong) }
            return .success(hp)
        }
        guard let hp = parse(s, portOnlyAllowed: false), hp.host != "*" else { return .failure(.invalidHost) }
        return .success(hp)
    }

    /// Parses `host:port`, `[v6]:port`, `host`, `[v6]`, or (when `portOnlyAllowed`) a bare port.
    public static func parse(_ s: String, portOnlyAllowed: Bool) -> HostPort? {
        if s.isEmpty { return nil }
        if portOnlyAllowed, let p = Values.number(s) {
            guard p >= 1 && p <= 65535 else { return nil }
            return HostPort(host: "*", port: p)
        }
        if s.hasPrefix("[") {
            guard let close = s.firstIndex(of: "]") else { return nil }
            let host = String(s[s.index(after: s.startIndex)..<close])
            guard !host.isEmpty, host.contains(":") else { return nil }
            let rest = s[s.index(after: close)...]
            if rest.isEmpty { return HostPort(host: host, port: nil) }
            guard rest.first == ":", let p = Values.port(String(rest.dropFirst())) else { return nil }
            return HostPort(host: host, port: p)
        }
        let parts = s.split(separator: ":", omittingEmptySubsequences: false)
        if parts.count == 1 { return validHost(s) ? HostPort(host: s, port: nil) : nil }
        if parts.count == 2 {
            guard let p = Values.port(String(parts[1])), validHost(String(parts[0])) else { return nil }
            return HostPort(host: String(parts[0]), port: p)
        }
        return nil
    }

    private static func validHost(_ h: String) -> Bool {
        if h.isEmpty { return false }
        return h.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x2E || c == 0x2D || c == 0x5F || c == 0x2A
        }
    }
}

/// Why `HostPort.upstream` refused an address, in nginx's words.
public enum UpstreamAddressError: Error, Sendable, CustomStringConvertible {
    case noUnixPath, unixPathTooLong, invalidHost

    public var description: String {
        switch self {
        case .noUnixPath: "no path in the unix domain socket"
        case .unixPathTooLong: "too long path in the unix domain socket"
        case .invalidHost: "invalid host"
        }
    }
}
