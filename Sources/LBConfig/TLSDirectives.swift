/// A file named by a TLS directive, with where it was named (for `… in FILE:LINE`).
public struct TLSFile: Sendable, Hashable {
    public var path: String
    public var location: SourceLocation
    /// A certificate or key path with `$ssl_server_name`: made per handshake (`path` is the
    /// text as written, relative ones under the configuration's directory).
    public var perHandshake: CertificatePath?
}

/// An `ssl_certificate`/`ssl_certificate_key` path with variables, made at each handshake from
/// the connection (nginx's certificate callback). lb takes `$ssl_server_name` there, the
/// variable such configurations use; the name is the SNI one as validated (lowercased, no `/`,
/// `\\` or `..`), empty without SNI.
public struct CertificatePath: Sendable, Hashable {
    public enum Part: Sendable, Hashable {
        case literal(String)
        case serverName
    }
    public var parts: [Part]

    public func path(serverName: String) -> String {
        parts.map { if case .literal(let s) = $0 { s } else { serverName } }.joined()
    }
}

/// `ssl_session_cache`.
public enum TLSSessionCache: Sendable, Hashable {
    /// `off`: sessions are not reused (and the client is told so).
    case off
    /// `none` (nginx's default): the client is told sessions may be reused, none is stored.
    case none
    /// `builtin[:N]` and/or `shared:NAME:SIZE`: one cache per context, shared by every worker
    /// thread (OpenSSL's internal cache, locked); `sessions` is its capacity.
    case on(sessions: Int)
}

/// `ssl_verify_client`.
public enum TLSVerifyClient: String, Sendable, Hashable {
    case off, on, optional
    case optionalNoCA = "optional_no_ca"
}

/// The TLS settings of an http or server level (nginx's `ngx_http_ssl_srv_conf_t`); a server's
/// unset fields come from http. Arrays (certificates, keys, commands) are replaced whole.
public struct TLSSettings: Sendable {
    public var certificates: [TLSFile]?
    public var keys: [TLSFile]?
    public var protocols: [String]?
    public var ciphers: String?
    public var preferServerCiphers: Bool?
    public var ecdhCurve: String?
    public var dhparam: TLSFile?
    public var sessionCache: TLSSessionCache?
    public var sessionTimeoutSeconds: Int?
    public var sessionTickets: Bool?
    public var ticketKeys: [TLSFile]?
    public var bufferSize: Int?
    public var confCommands: [(name: String, value: String, location: SourceLocation)]?
    public var rejectHandshake: Bool?
    public var verifyClient: TLSVerifyClient?
    public var verifyClientLocation: SourceLocation?
    public var verifyDepth: Int?
    public var clientCertificate: TLSFile?
    public var trustedCertificate: TLSFile?
    public var crl: TLSFile?
    public var stapling: Bool?
    /// Where `ssl_stapling` was written (for its warning).
    public var staplingLocation: SourceLocation?
    public var staplingFile: TLSFile?
    public var staplingVerify: Bool?
    /// `ssl_stapling_responder`: overrides the certificates' OCSP URL.
    public var staplingResponder: String?
    /// The server's `resolver` (with its `resolver_timeout`), for responders named by host name;
    /// set when the server's context is built, not by an ssl_* directive.
    public var staplingResolver: ResolverSpec?
    /// The deprecated `ssl on;` (nginx ≤ 1.25.0), and where it was written: a listener whose
    /// default server has it speaks TLS, as `listen … ssl`.
    public var enabled: Bool?
    public var enabledLocation: SourceLocation?
    /// `ssl_password_file`: passphrases for encrypted keys, one per line, tried in turn.
    public var passwordFile: TLSFile?

    public init() {}

    public mutating func inherit(from p: TLSSettings) {
        @inline(__always) func m<T>(_ a: inout T?, _ b: T?) { if a == nil { a = b } }
        m(&certificates, p.certificates)
        m(&keys, p.keys)
        m(&protocols, p.protocols)
        m(&ciphers, p.ciphers)
        m(&preferServerCiphers, p.preferServerCiphers)
        m(&ecdhCurve, p.ecdhCurve)
        m(&dhparam, p.dhparam)
        m(&sessionCache, p.sessionCache)
        m(&sessionTimeoutSeconds, p.sessionTimeoutSeconds)
        m(&sessionTickets, p.sessionTickets)
        m(&ticketKeys, p.ticketKeys)
        m(&bufferSize, p.bufferSize)
        if confCommands == nil { confCommands = p.confCommands }
        m(&rejectHandshake, p.rejectHandshake)
        if verifyClient == nil { verifyClient = p.verifyClient; verifyClientLocation = p.verifyClientLocation }
        m(&verifyDepth, p.verifyDepth)
        m(&clientCertificate, p.clientCertificate)
        m(&trustedCertificate, p.trustedCertificate)
        m(&crl, p.crl)
        if stapling == nil { stapling = p.stapling; staplingLocation = p.staplingLocation }
        m(&staplingFile, p.staplingFile)
        m(&staplingVerify, p.staplingVerify)
        m(&staplingResponder, p.staplingResponder)
        m(&staplingResolver, p.staplingResolver)
        if enabled == nil { enabled = p.enabled; enabledLocation = p.enabledLocation }
        m(&passwordFile, p.passwordFile)
    }

    // nginx's defaults.
    public var effectiveProtocols: [String] { protocols ?? ["TLSv1.2", "TLSv1.3"] }
    /// nginx's `HIGH:!aNULL:!MD5` without the suites that authenticate with an HMAC (CBC, which
    /// testssl.sh reports as LUCKY13): TLS 1.2 gets AEAD suites only. lb's one deliberate
    /// difference from nginx's defaults; `ssl_ciphers HIGH:!aNULL:!MD5;` restores nginx's.
    public static let defaultCiphers = "HIGH:!aNULL:!MD5:!SHA1:!SHA256:!SHA384"
    public var effectiveCiphers: String { ciphers ?? TLSSettings.defaultCiphers }
    public var effectiveEcdhCurve: String { ecdhCurve ?? "auto" }
    public var effectiveSessionCache: TLSSessionCache { sessionCache ?? .none }
    public var effectiveSessionTimeoutSeconds: Int { sessionTimeoutSeconds ?? 300 }
    public var effectiveSessionTickets: Bool { sessionTickets ?? true }
    public var effectiveBufferSize: Int { bufferSize ?? 16384 }
    public var effectiveVerifyClient: TLSVerifyClient { verifyClient ?? .off }
    public var effectiveVerifyDepth: Int { verifyDepth ?? 1 }
}

/// The `ssl_*` directives (nginx's ngx_http_ssl_module): http and server levels.
extension Compiler {
    static let protocolWords = ["SSLv2", "SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"]

    static func tls<T>(_ name: String, _ args: ArgumentShape, default def: String?, _ kp: WritableKeyPath<TLSSettings, T?>,
                       _ parse: @escaping @Sendable (Compiler, Directive) throws -> T) -> DirectiveSpec {
        nonisolated(unsafe) let kp = kp
        return DirectiveSpec(name, .hs, args, default: def) { c, d in c.settings.tls[keyPath: kp] = try parse(c, d) }
    }

    static func tlsFlag(_ name: String, default def: String, _ kp: WritableKeyPath<TLSSettings, Bool?>) -> DirectiveSpec {
        tls(name, .flag, default: def, kp) { c, d in c.flag(d) }
    }

    static func tlsFile(_ name: String, _ kp: WritableKeyPath<TLSSettings, TLSFile?>) -> DirectiveSpec {
        tls(name, .exactly(1), default: nil, kp) { c, d in try c.tlsFile(d.args[0]) }
    }

    static let tlsDirectives: [DirectiveSpec] = [
        DirectiveSpec("ssl", .hs, .flag, default: "off",
                      note: "deprecated, as in nginx 1.22 (a warning): a listener whose default server has `ssl on` speaks TLS") { c, d in
            c.warnings.append(ConfigError("the \"ssl\" directive is deprecated, use the \"listen ... ssl\" directive instead", at: d.location))
            c.settings.tls.enabled = c.flag(d)
            c.settings.tls.enabledLocation = d.location
        },
        DirectiveSpec("ssl_certificate", .hs, .exactly(1), repeatable: true, note: "several per server (ECDSA and RSA side by side); the client's signature algorithms choose") { c, d in
            c.settings.tls.certificates = (c.settings.tls.certificates ?? []) + [try c.tlsFile(d.args[0], perHandshake: true)]
        },
        DirectiveSpec("ssl_certificate_key", .hs, .exactly(1), repeatable: true) { c, d in
            c.settings.tls.keys = (c.settings.tls.keys ?? []) + [try c.tlsFile(d.args[0], perHandshake: true)]
        },
        tls("ssl_protocols", .atLeast(1), default: "TLSv1.2 TLSv1.3", \.protocols) { _, d in
            var out: [String] = []
            for a in d.args {
                guard protocolWords.contains(a.text) else { throw ConfigError("invalid value \"\(a.text)\"", at: a.location) }
                out.append(a.text)
            }
            return out
        },
        tls("ssl_ciphers", .exactly(1), default: TLSSettings.defaultCiphers, \.ciphers) { _, d in d.args[0].text },
        tlsFlag("ssl_prefer_server_ciphers", default: "off", \.preferServerCiphers),
        tls("ssl_ecdh_curve", .exactly(1), default: "auto", \.ecdhCurve) { _, d in d.args[0].text },
        tlsFile("ssl_dhparam", \.dhparam),
        tls("ssl_session_cache", .between(1, 2), default: "none", \.sessionCache) { c, d in try c.sessionCache(d) },
        tls("ssl_session_timeout", .exactly(1), default: "5m", \.sessionTimeoutSeconds) { c, d in try c.time(d) / 1000 },
        tlsFlag("ssl_session_tickets", default: "on", \.sessionTickets),
        DirectiveSpec("ssl_session_ticket_key", .hs, .exactly(1), repeatable: true, note: "48- or 80-byte files; the first encrypts, all decrypt") { c, d in
            c.settings.tls.ticketKeys = (c.settings.tls.ticketKeys ?? []) + [try c.tlsFile(d.args[0])]
        },
        tls("ssl_buffer_size", .exactly(1), default: "16k", \.bufferSize) { c, d in try c.size(d) },
        DirectiveSpec("ssl_conf_command", .hs, .exactly(2), repeatable: true, note: "OpenSSL SSL_CONF_cmd, applied last (e.g. Options KTLS)") { c, d in
            c.settings.tls.confCommands = (c.settings.tls.confCommands ?? []) + [(d.args[0].text, d.args[1].text, d.location)]
        },
        tlsFlag("ssl_reject_handshake", default: "off", \.rejectHandshake),
        DirectiveSpec("ssl_verify_client", .hs, .exactly(1), default: "off") { c, d in
            guard let v = TLSVerifyClient(rawValue: d.args[0].text) else {
                throw ConfigError("invalid value \"\(d.args[0].text)\"", at: d.args[0].location)
            }
            c.settings.tls.verifyClient = v
            c.settings.tls.verifyClientLocation = d.location
        },
        tls("ssl_verify_depth", .exactly(1), default: "1", \.verifyDepth) { c, d in try c.number(d) },
        tlsFile("ssl_client_certificate", \.clientCertificate),
        tlsFile("ssl_trusted_certificate", \.trustedCertificate),
        tlsFile("ssl_crl", \.crl),
        DirectiveSpec("ssl_stapling", .hs, .flag, default: "off", note: "responses from ssl_stapling_file, else fetched from the certificate's OCSP responder") { c, d in
            c.settings.tls.stapling = c.flag(d)
            c.settings.tls.staplingLocation = d.location
        },
        tlsFile("ssl_stapling_file", \.staplingFile),
        // As in nginx, checks fetched responses only, not one from ssl_stapling_file (docs/tls.md, OCSP stapling).
        tlsFlag("ssl_stapling_verify", default: "off", \.staplingVerify),
        tls("ssl_stapling_responder", .exactly(1), default: nil, \.staplingResponder) { _, d in d.args[0].text },
        tlsFile("ssl_password_file", \.passwordFile),
        DirectiveSpec("ssl_early_data", .hs, .flag, default: "off") { _, d in
            if d.args[0].text == "on" { throw ConfigError("TLS 1.3 early data (\"ssl_early_data on\") is not supported by lb", at: d.location) }
        },
        DirectiveSpec("ssl_ocsp", .hs, .exactly(1), default: "off") { _, d in
            if d.args[0].text != "off" { throw ConfigError("\"ssl_ocsp\" is not supported by lb", at: d.location) }
        },
    ]

    /// A file argument: relative paths name files under the configuration's directory, as
    /// nginx's conf prefix does. Variables only where nginx loads the file per handshake
    /// (`perHandshake`: ssl_certificate and ssl_certificate_key).
    func tlsFile(_ t: Token, perHandshake: Bool = false) throws -> TLSFile {
        if t.text.contains("$") {
            guard perHandshake else {
                throw ConfigError("variables in \"\(t.text)\" are not supported by lb", at: t.location)
            }
            let tpl = try template(t)
            var parts: [CertificatePath.Part] = []
            if !t.text.hasPrefix("/") { parts.append(.literal(confPrefix.hasSuffix("/") ? confPrefix : confPrefix + "/")) }
            for p in tpl.parts {
                switch p {
                case .literal(let b): parts.append(.literal(String(decoding: b, as: UTF8.self)))
                case .variable(let v):
                    guard case .sslServerName = v else {
                        throw ConfigError("only $ssl_server_name may name a certificate per handshake in lb (\"\(t.text)\")", at: t.location)
                    }
                    parts.append(.serverName)
                }
            }
            return TLSFile(path: t.text, location: t.location, perHandshake: CertificatePath(parts: parts))
        }
        let path = t.text.hasPrefix("/") ? t.text : joinPath(confPrefix, t.text)
        return TLSFile(path: path, location: t.location)
    }

    /// The directory relative TLS file names resolve against: the main file's (nginx's conf prefix).
    var confPrefix: String {
        if let f = files.first, f.path.hasPrefix("/") { return directoryOf(f.path) }
        return prefix
    }

    func sessionCache(_ d: Directive) throws -> TLSSessionCache {
        var sessions = 0
        for a in d.args {
            let v = a.text
            if v == "off" || v == "none" {
                guard d.args.count == 1 else { throw ConfigError("invalid session cache \"\(v)\"", at: a.location) }
                return v == "off" ? .off : .none
            }
            if v == "builtin" {
                sessions = max(sessions, 20480) // OpenSSL's (and nginx's) builtin default
            } else if v.hasPrefix("builtin:") {
                guard let n = Values.number(String(v.dropFirst(8))) else { throw ConfigError("invalid session cache \"\(v)\"", at: a.location) }
                sessions = max(sessions, n)
            } else if v.hasPrefix("shared:") {
                let parts = v.split(separator: ":", omittingEmptySubsequences: false)
                guard parts.count == 3, !parts[1].isEmpty, let bytes = Values.size(String(parts[2])) else {
                    throw ConfigError("invalid session cache \"\(v)\"", at: a.location)
                }
                guard bytes >= 8 * 4096 else { throw ConfigError("session cache \"\(v)\" is too small", at: a.location) }
                // nginx: one megabyte holds about 4000 sessions.
                sessions = max(sessions, bytes / 256)
            } else {
                throw ConfigError("invalid session cache \"\(v)\"", at: a.location)
            }
        }
        return .on(sessions: sessions)
    }
}
