/// A variable that a value template can name; resolved at load so the runtime never compares names.
public enum Variable: Sendable, Hashable {
    case host, remoteAddr, remotePort, remoteUser, binaryRemoteAddr, realipRemoteAddr, realipRemotePort
    case scheme, https, requestURI, uri, documentURI, args, queryString, isArgs, request, requestMethod
    case serverName, serverPort, serverAddr, serverProtocol, hostname, status
    /// stub_status's counters as variables (nginx's `$connections_*`).
    case connectionsActive, connectionsReading, connectionsWriting, connectionsWaiting
    case timeLocal, timeISO8601, msec, requestTime, requestLength, requestID, pid, connection, connectionRequests
    case bodyBytesSent, bytesSent, contentLength, contentType, documentRoot, realpathRoot, requestFilename, pipe
    case proxyAddXForwardedFor, proxyHost, proxyPort
    case fastcgiScriptName, fastcgiPathInfo
    case upstreamAddr, upstreamStatus, upstreamResponseTime, upstreamConnectTime, upstreamHeaderTime
    case upstreamResponseLength, upstreamCacheStatus, upstreamBytesReceived, upstreamBytesSent
    case nginxVersion, gzipRatio, requestCompletion, requestBody, requestBodyFile
    /// The addresses of the connection's PROXY protocol header (empty without one).
    case proxyProtocolAddr, proxyProtocolPort, proxyProtocolServerAddr, proxyProtocolServerPort
    /// `$limit_req_status`, `$limit_conn_status` (LimitRuntime.swift).
    case limitReqStatus, limitConnStatus
    /// `$http2`: `h2` (over TLS), `h2c` (cleartext) or empty.
    case http2
    /// TLS facts of the client connection (empty on plain HTTP).
    case sslProtocol, sslCipher, sslServerName, sslSessionReused, sslSessionID, sslAlpnProtocol
    case sslClientVerify, sslClientSDN, sslClientIDN, sslClientSerial, sslClientFingerprint, sslClientEscapedCert, sslClientCert
    /// `$http_NAME`: a request header; the name is lowercased with `_` as `-`.
    case httpHeader(String)
    /// `$sent_http_NAME`: a response header.
    case sentHeader(String)
    /// `$upstream_cookie_NAME`: the cookie NAME an upstream sets (its Set-Cookie fields).
    case upstreamCookie(String)
    /// `$upstream_http_NAME`: an upstream response header.
    case upstreamHeader(String)
    /// `$arg_NAME`: a query argument.
    case arg(String)
    /// `$cookie_NAME`.
    case cookie(String)
    /// `$1`…`$9`: a capture of the last regex match.
    case capture(Int)
    /// A variable defined by `map` or a named regex capture.
    case named(String)

    static let simple: [String: Variable] = [
        "host": .host, "remote_addr": .remoteAddr, "remote_port": .remotePort, "remote_user": .remoteUser,
        "binary_remote_addr": .binaryRemoteAddr, "realip_remote_addr": .realipRemoteAddr,
        "realip_remote_port": .realipRemotePort, "scheme": .scheme, "https": .https, "request_uri": .requestURI,
        "uri": .uri, "document_uri": .documentURI, "args": .args, "query_string": .queryString, "is_args": .isArgs,
        "request": .request, "request_method": .requestMethod, "server_name": .serverName, "server_port": .serverPort,
        "server_addr": .serverAddr, "server_protocol": .serverProtocol, "hostname": .hostname, "status": .status,
        "time_local": .timeLocal, "time_iso8601": .timeISO8601, "msec": .msec, "request_time": .requestTime,
        "request_length": .requestLength, "request_id": .requestID, "pid": .pid, "connection": .connection,
        "connection_requests": .connectionRequests, "body_bytes_sent": .bodyBytesSent, "bytes_sent": .bytesSent,
        "content_length": .contentLength, "content_type": .contentType, "document_root": .documentRoot,
        "realpath_root": .realpathRoot, "request_filename": .requestFilename, "pipe": .pipe,
        "proxy_add_x_forwarded_for": .proxyAddXForwardedFor, "proxy_host": .proxyHost, "proxy_port": .proxyPort,
        "fastcgi_script_name": .fastcgiScriptName, "fastcgi_path_info": .fastcgiPathInfo,
        "upstream_addr": .upstreamAddr, "upstream_status": .upstreamStatus,
        "upstream_response_time": .upstreamResponseTime, "upstream_connect_time": .upstreamConnectTime,
        "upstream_header_time": .upstreamHeaderTime, "upstream_response_length": .upstreamResponseLength,
        "upstream_cache_status": .upstreamCacheStatus, "upstream_bytes_received": .upstreamBytesReceived,
        "upstream_bytes_sent": .upstreamBytesSent, "nginx_version": .nginxVersion, "gzip_ratio": .gzipRatio,
        "request_completion": .requestCompletion, "request_body": .requestBody, "request_body_file": .requestBodyFile,
        "proxy_protocol_addr": .proxyProtocolAddr, "proxy_protocol_port": .proxyProtocolPort,
        "proxy_protocol_server_addr": .proxyProtocolServerAddr, "proxy_protocol_server_port": .proxyProtocolServerPort,
        "limit_req_status": .limitReqStatus, "limit_conn_status": .limitConnStatus,
        "http2": .http2,
        "ssl_protocol": .sslProtocol, "ssl_cipher": .sslCipher, "ssl_server_name": .sslServerName,
        "ssl_session_reused": .sslSessionReused, "ssl_session_id": .sslSessionID, "ssl_alpn_protocol": .sslAlpnProtocol,
        "ssl_client_verify": .sslClientVerify, "ssl_client_s_dn": .sslClientSDN, "ssl_client_i_dn": .sslClientIDN,
        "ssl_client_serial": .sslClientSerial, "ssl_client_fingerprint": .sslClientFingerprint,
        "ssl_client_escaped_cert": .sslClientEscapedCert, "ssl_client_cert": .sslClientCert,
        "connections_active": .connectionsActive, "connections_reading": .connectionsReading,
        "connections_writing": .connectionsWriting, "connections_waiting": .connectionsWaiting,
    ]

    /// Resolves a name written after `$`; `named` for names that only a `map` or a regex can define.
    public static func resolve(_ name: String) -> Variable {
        if let v = simple[name] { return v }
        if let d = Int(name), name.allSatisfy({ $0.isNumber }) { return .capture(d) }
        func suffix(_ p: String) -> String? { name.hasPrefix(p) && name.count > p.count ? String(name.dropFirst(p.count)) : nil }
        if let h = suffix("http_") { return .httpHeader(h.lowercased().replacingOccurrences("_", "-")) }
        if let h = suffix("sent_http_") { return .sentHeader(h.lowercased().replacingOccurrences("_", "-")) }
        if let h = suffix("upstream_http_") { return .upstreamHeader(h.lowercased().replacingOccurrences("_", "-")) }
        if let c = suffix("upstream_cookie_") { return .upstreamCookie(c) }
        if let a = suffix("arg_") { return .arg(a) }
        if let c = suffix("cookie_") { return .cookie(c) }
        return .named(name)
    }
}

extension String {
    func replacingOccurrences(_ a: Character, _ b: Character) -> String {
        String(map { $0 == a ? b : $0 })
    }
}

/// A value with variables, as in `proxy_set_header X-Real-IP $remote_addr;`.
public struct Template: Sendable, Hashable, CustomStringConvertible {
    public enum Part: Sendable, Hashable {
        case literal([UInt8])
        case variable(Variable)
    }

    public var parts: [Part]
    /// The text as written.
    public var source: String

    public var description: String { source }

    /// True when the template has no variables.
    public var isLiteral: Bool { parts.allSatisfy { if case .literal = $0 { true } else { false } } }

    /// The literal text of a template without variables.
    public var literalBytes: [UInt8] {
        var out: [UInt8] = []
        for case .literal(let b) in parts { out += b }
        return out
    }

    /// Every variable the template uses.
    public var variables: [Variable] {
        parts.compactMap { if case .variable(let v) = $0 { v } else { nil } }
    }

    public init(parts: [Part], source: String) {
        self.parts = parts
        self.source = source
    }

    public init(literal: String) {
        self.source = literal
        self.parts = literal.isEmpty ? [] : [.literal(Array(literal.utf8))]
    }

    /// Parses `$name` and `${name}`. Throws `invalid variable name` for `$` alone or an unclosed brace.
    public init(parsing s: String) throws(ConfigError) {
        source = s
        parts = []
        let b = Array(s.utf8)
        var lit: [UInt8] = []
        var i = 0
        func isNameByte(_ c: UInt8) -> Bool {
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x5F
        }
        while i < b.count {
            let c = b[i]
            guard c == UInt8(ascii: "$") else {
                lit.append(c)
                i += 1
                continue
            }
            i += 1
            var name: [UInt8] = []
            if i < b.count && b[i] == UInt8(ascii: "{") {
                i += 1
                while i < b.count && b[i] != UInt8(ascii: "}") { name.append(b[i]); i += 1 }
                guard i < b.count else { throw ConfigError("the closing bracket in \"\(String(decoding: name, as: UTF8.self))\" variable is missing") }
                i += 1
            } else if i < b.count && b[i] >= 0x30 && b[i] <= 0x39 {
                name.append(b[i]) // $1…$9: one digit, as nginx
                i += 1
            } else {
                while i < b.count && isNameByte(b[i]) { name.append(b[i]); i += 1 }
            }
            guard !name.isEmpty else { throw ConfigError("invalid variable name") }
            if !lit.isEmpty { parts.append(.literal(lit)); lit = [] }
            parts.append(.variable(Variable.resolve(String(decoding: name, as: UTF8.self))))
        }
        if !lit.isEmpty { parts.append(.literal(lit)) }
    }
}
