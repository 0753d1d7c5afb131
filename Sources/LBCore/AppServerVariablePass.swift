import LBConfig

/// An address made at run time by `fastcgi_pass` / `uwsgi_pass` with variables, read as nginx's
/// `ngx_http_fastcgi_eval` / `ngx_http_uwsgi_eval` read it with `ngx_parse_url`: `unix:PATH`
/// (the rest is the path), `[IPV6][:PORT]` or `HOST[:PORT]`, no URI part, no default port.
enum AppServerAddress: Equatable {
    /// A unix-domain socket (`host` of the HostPort is `unix:PATH`).
    case unix(HostPort)
    /// An address or name; `port` nil when none was given.
    case inet(host: String, port: Int?)
    /// Refused, with nginx's reason and the text it names (`%s in upstream "%V"`), or lb's message.
    case invalid(reason: String, text: String)
    /// `suwsgi://`: the uwsgi protocol over TLS, which lb does not speak.
    case unsupported(String)

    /// Parses `value`; for uwsgi a leading `uwsgi://` (or `suwsgi://`) is the scheme, as nginx.
    static func parse(_ value: String, kind: UpstreamKind) -> AppServerAddress {
        var s = Substring(value)
        if kind == .uwsgi {
            let lower = value.lowercased()
            if value.utf8.count > 8 && lower.hasPrefix("uwsgi://") {
                s = s.dropFirst(8)
            } else if value.utf8.count > 9 && lower.hasPrefix("suwsgi://") {
                return .unsupported("\"suwsgi://\" in \"uwsgi_pass\" is not supported by lb: \"\(value)\"")
            }
        }
        let text = String(s)
        if s.utf8.count >= 5 && s.prefix(5).lowercased() == "unix:" {
            let path = s.dropFirst(5)
            guard let hp = HostPort.unix(path) else {
                return .invalid(reason: path.isEmpty ? "no path in the unix domain socket" : "too long path in the unix domain socket", text: text)
            }
            return .unix(hp)
        }
        let host: Substring
        var portText: Substring?
        if s.first == "[" {
            guard let close = s.firstIndex(of: "]") else { return .invalid(reason: "invalid host", text: text) }
            let after = s[s.index(after: close)...]
            if after.contains("/") { return .invalid(reason: "invalid host", text: text) }
            if !after.isEmpty {
                guard after.first == ":" else { return .invalid(reason: "invalid host", text: text) }
                portText = after.dropFirst()
            }
            host = s[s.index(after: s.startIndex)..<close]
            if !host.contains(":") || !isIPLiteral(String(host)) { return .invalid(reason: "invalid IPv6 address", text: text) }
        } else {
            if s.contains("/") || s.contains("?") { return .invalid(reason: "invalid host", text: text) }
            if let colon = s.firstIndex(of: ":") {
                host = s[..<colon]
                portText = s[s.index(after: colon)...]
            } else {
                host = s
            }
            if host.isEmpty && portText == nil { return .invalid(reason: "no host", text: text) }
        }
        var port: Int?
        if let portText {
            // ngx_atoi: digits only, 1-65535.
            guard !portText.isEmpty, portText.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), portText.utf8.count <= 5,
                  let n = Int(portText), n >= 1 && n <= 65535 else { return .invalid(reason: "invalid port", text: text) }
            port = n
        }
        if host.isEmpty { return .invalid(reason: "no host", text: text) }
        return .inet(host: String(host), port: port)
    }
}

extension ClientConnection {
    /// Where `fastcgi_pass` / `uwsgi_pass` with variables goes for this request
    /// (`ngx_http_upstream_init_request` with `u->resolved`): an upstream group of that name (an
    /// `upstream` block when no port was given, else the group another pass made for that
    /// `host:port`), else the address, else the name through `resolver`. What nginx answers 500
    /// (an address it cannot parse, no port) and 502 (no resolver) is answered the same.
    func appServerVariableTarget(_ t: ProxyTarget, value: String) -> VariableTarget {
        var resolved = t
        resolved.hostHeader = value
        switch AppServerAddress.parse(value, kind: t.kind) {
        case .invalid(let reason, let text):
            return .failed(500, "\(reason) in upstream \"\(text)\"")
        case .unsupported(let message):
            return .failed(500, message)
        case .unix(let hp):
            if let i = table.upstreamIndex[hp.host] {
                resolved.upstream = i
                return .group(resolved)
            }
            return .address(resolved, hp, hostPart: hp.host)
        case .inet(let host, let port):
            guard let port else {
                if let i = table.upstreamIndex[host.lowercased()], !table.upstreams[i].implicit {
                    resolved.upstream = i
                    return .group(resolved)
                }
                return .failed(500, "no port in upstream \"\(host.contains(":") ? "[\(host)]" : host)\"")
            }
            resolved.port = port
            let hp = HostPort(host: host, port: port)
            if let i = table.upstreamIndex["\(host):\(port)".lowercased()] {
                resolved.upstream = i
                return .group(resolved)
            }
            guard isIPLiteral(host) else { return .name(resolved, host: host, port: port, hostPart: hp.description) }
            return .address(resolved, hp, hostPart: hp.description)
        }
    }
}
