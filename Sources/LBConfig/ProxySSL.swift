import COpenSSL
import Glibc
import Synchronization

/// The `proxy_ssl_*` settings of an http, server or location level (nginx's
/// ngx_http_proxy_module SSL part); unset fields come from the level above, field by field.
public struct ProxySSLSettings: Sendable {
    /// `proxy_ssl_server_name`: send SNI (off by default, as nginx).
    public var serverName: Bool?
    /// `proxy_ssl_name`: the name sent in SNI and checked in the certificate; nil: `$proxy_host`.
    public var name: Template?
    public var verify: Bool?
    public var verifyDepth: Int?
    public var trustedCertificate: TLSFile?
    public var crl: TLSFile?
    public var certificate: TLSFile?
    public var certificateKey: TLSFile?
    /// `proxy_ssl_password_file`: passphrases for an encrypted `proxy_ssl_certificate_key`.
    public var passwordFile: TLSFile?
    public var protocols: [String]?
    public var ciphers: String?
    public var sessionReuse: Bool?
    public var confCommands: [(name: String, value: String, location: SourceLocation)]?

    public init() {}

    public mutating func inherit(from p: ProxySSLSettings) {
        @inline(__always) func m<T>(_ a: inout T?, _ b: T?) { if a == nil { a = b } }
        m(&serverName, p.serverName)
        m(&name, p.name)
        m(&verify, p.verify)
        m(&verifyDepth, p.verifyDepth)
        m(&trustedCertificate, p.trustedCertificate)
        m(&crl, p.crl)
        m(&certificate, p.certificate)
        m(&certificateKey, p.certificateKey)
        m(&passwordFile, p.passwordFile)
        m(&protocols, p.protocols)
        m(&ciphers, p.ciphers)
        m(&sessionReuse, p.sessionReuse)
        if confCommands == nil { confCommands = p.confCommands }
    }

    // nginx's defaults.
    public var effectiveProtocols: [String] { protocols ?? ["TLSv1.2", "TLSv1.3"] }
    public var effectiveCiphers: String { ciphers ?? "DEFAULT" }
    public var effectiveVerifyDepth: Int { verifyDepth ?? 1 }
}

/// The TLS client side of `proxy_pass https://…` locations: an `SSL_CTX` (protocols, ciphers,
/// trusted CAs, client certificate) built at load and shared by every worker thread, and the
/// newest session of each peer (`proxy_ssl_session_reuse`), which new connections to that peer
/// resume. Locations with the same settings (and file contents) share one — across reloads too,
/// while one is alive — so their kept-alive connections pool together and sessions carry over.
/// A pooled upstream connection serves only targets with the same `UpstreamTLS`.
public final class UpstreamTLS: @unchecked Sendable, Hashable {
    public let ctx: OpaquePointer
    /// `proxy_ssl_server_name on`.
    public let sendsServerName: Bool
    /// `proxy_ssl_name`, nil: the host of `proxy_pass`.
    public let name: Template?
    /// `proxy_ssl_verify on`: the certificate must verify and match the name.
    public let verify: Bool
    public let sessionReuse: Bool
    /// The newest session of each peer, by a number given to each peer address ("slot"); one
    /// reference held here.
    private let sessions = Mutex<Sessions>(Sessions())

    struct Sessions: @unchecked Sendable {
        var slots: [String: Int] = [:]
        var newest: [Int: SessionRef] = [:]
    }

    /// An `SSL_SESSION*` (OpenSSL counts its references; sessions are immutable once made).
    struct SessionRef: @unchecked Sendable { let pointer: OpaquePointer }

    public static func == (a: UpstreamTLS, b: UpstreamTLS) -> Bool { a === b }
    public func hash(into h: inout Hasher) { h.combine(ObjectIdentifier(self)) }

    deinit {
        sessions.withLock { for s in $0.newest.values { SSL_SESSION_free(s.pointer) } }
        SSL_CTX_free(ctx)
    }

    /// Builds the client context in nginx's order (ngx_http_proxy_set_ssl): protocols, ciphers,
    /// client certificate, verification; `proxy_ssl_conf_command` last.
    init(_ s: ProxySSLSettings, at location: SourceLocation) throws(ConfigError) {
        guard let ctx = SSL_CTX_new(TLS_client_method()) else {
            throw ConfigError("SSL_CTX_new() failed (\(TLSContext.queue()))", at: location)
        }
        self.ctx = ctx
        sendsServerName = s.serverName ?? false
        name = s.name
        verify = s.verify ?? false
        sessionReuse = s.sessionReuse ?? true

        var options = lb_server_options() // no compression, no renegotiation
        let protocols = Set(s.effectiveProtocols)
        let noProtocol: [(String, lb_op)] = [("SSLv3", LB_OP_NO_SSLv3), ("TLSv1", LB_OP_NO_TLSv1), ("TLSv1.1", LB_OP_NO_TLSv1_1),
                                             ("TLSv1.2", LB_OP_NO_TLSv1_2), ("TLSv1.3", LB_OP_NO_TLSv1_3)]
        for (word, op) in noProtocol where !protocols.contains(word) { options |= lb_op(op) }
        _ = lb_SSL_CTX_set_options(ctx, options)
        _ = lb_SSL_CTX_set_mode(ctx, Int(SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS))
        if SSL_CTX_set_cipher_list(ctx, s.effectiveCiphers) != 1 {
            throw ConfigError("SSL_CTX_set_cipher_list(\"\(s.effectiveCiphers)\") failed (\(TLSContext.queue()))", at: location)
        }
        if let cert = s.certificate {
            guard let key = s.certificateKey else {
                throw ConfigError("no \"proxy_ssl_certificate_key\" is defined for certificate \"\(cert.path)\"", at: cert.location)
            }
            let passwords = try s.passwordFile.map { f throws(ConfigError) in try TLSContext.readPasswords(f) }
            try TLSContext.useCertificate(ctx, cert, key: key, passwords: passwords)
        }
        if verify {
            guard let t = s.trustedCertificate else {
                throw ConfigError("no proxy_ssl_trusted_certificate for proxy_ssl_verify", at: location)
            }
            guard SSL_CTX_load_verify_locations(ctx, t.path, nil) == 1 else {
                throw ConfigError("SSL_CTX_load_verify_locations(\"\(t.path)\") failed (\(TLSContext.queue()))", at: t.location)
            }
            // As nginx: the handshake completes whatever the verdict, which is read afterwards
            // (so that the error log can say what failed).
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, tlsVerifyCallback)
            SSL_CTX_set_verify_depth(ctx, Int32(s.effectiveVerifyDepth))
            if let crl = s.crl {
                guard let store = SSL_CTX_get_cert_store(ctx), let lookup = X509_STORE_add_lookup(store, X509_LOOKUP_file()),
                      X509_load_crl_file(lookup, crl.path, X509_FILETYPE_PEM) >= 1 else {
                    throw ConfigError("X509_LOOKUP_load_file(\"\(crl.path)\") failed (\(TLSContext.queue()))", at: crl.location)
                }
                _ = X509_STORE_set_flags(store, UInt(X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL))
            }
        }
        if sessionReuse {
            _ = lb_SSL_CTX_set_session_cache_mode(ctx, Int(SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE))
            SSL_CTX_sess_set_new_cb(ctx, upstreamNewSessionCallback)
        } else {
            _ = lb_SSL_CTX_set_session_cache_mode(ctx, Int(SSL_SESS_CACHE_OFF))
            _ = lb_SSL_CTX_set_options(ctx, lb_op(LB_OP_NO_TICKET))
        }
        if let commands = s.confCommands, !commands.isEmpty {
            try TLSContext.apply(commands, to: ctx, server: false, at: location)
        }
        ERR_clear_error()
    }

    /// Prepares a new connection's `SSL` for the peer at `address`: sends SNI when asked (never
    /// for an IP address, as RFC 6066 and nginx say), offers the peer's newest session, and
    /// remembers the peer's slot for the session callback.
    public func prepare(_ ssl: OpaquePointer, address: String, name: String) {
        if sendsServerName && !name.isEmpty && !isIPLiteral(name) { _ = lb_SSL_set_tlsext_host_name(ssl, name) }
        guard sessionReuse else { return }
        let slot = sessions.withLock { s -> Int in
            let slot: Int
            if let known = s.slots[address] { slot = known } else {
                slot = s.slots.count
                s.slots[address] = slot
            }
            if let sess = s.newest[slot] { _ = SSL_set_session(ssl, sess.pointer) } // takes its own reference
            return slot
        }
        SSL_set_ex_data(ssl, 0, Unmanaged.passUnretained(self).toOpaque())
        SSL_set_ex_data(ssl, 1, UnsafeMutableRawPointer(bitPattern: slot + 1))
    }

    /// Keeps `session` (whose reference the caller gives) as the newest of the peer in `slot`.
    func store(_ session: OpaquePointer, slot: Int) {
        let new = SessionRef(pointer: session)
        let old = sessions.withLock { s in s.newest.updateValue(new, forKey: slot) }
        if let old { SSL_SESSION_free(old.pointer) }
    }

    /// The context for a location's settings: one alive in this process that was built from
    /// the same settings and file contents, else a new one.
    static func shared(_ s: ProxySSLSettings, at location: SourceLocation) throws(ConfigError) -> UpstreamTLS {
        guard let key = fingerprint(s) else { return try UpstreamTLS(s, at: location) }
        if let alive = registry.withLock({ $0[key]?.tls }) { return alive }
        let made = try UpstreamTLS(s, at: location)
        // Two loads at once (tests load configurations in parallel) may both have built one:
        // the first registered wins, so every holder of these settings shares one context.
        return registry.withLock { r in
            if let alive = r[key]?.tls { return alive }
            r = r.filter { $0.value.tls != nil }
            r[key] = Weak(tls: made)
            return made
        }
    }

    struct Weak: @unchecked Sendable { weak var tls: UpstreamTLS? }
    static let registry = Mutex<[String: Weak]>([:])

    /// Every setting (not where it was written) and each named file's path and SHA-256; nil
    /// when a file cannot be read (building the context then reports it).
    static func fingerprint(_ s: ProxySSLSettings) -> String? {
        var out = "upstream"
        for child in Mirror(reflecting: s).children {
            let text: String?
            if let f = child.value as? TLSFile {
                text = TLSContext.digest(f)
            } else if let commands = child.value as? [(name: String, value: String, location: SourceLocation)] {
                text = commands.map { "\($0.name)=\($0.value)" }.joined(separator: ",")
            } else {
                text = String(describing: child.value)
            }
            guard let text else { return nil }
            out += "\n\(child.label ?? "?") \(text)"
        }
        return out
    }

    /// After the handshake, with `proxy_ssl_verify on`: nil when the certificate verified and
    /// matches `name`, else nginx's error line.
    public func verdict(_ ssl: OpaquePointer, name: String) -> String? {
        guard verify else { return nil }
        guard let cert = SSL_get1_peer_certificate(ssl) else {
            return "upstream sent no required SSL certificate"
        }
        defer { X509_free(cert) }
        let r = SSL_get_verify_result(ssl)
        if r != X509_V_OK {
            return "upstream SSL certificate verify error: (\(r):\(String(cString: X509_verify_cert_error_string(r))))"
        }
        let matches = isIPLiteral(name)
            ? X509_check_ip_asc(cert, name, 0) == 1
            : X509_check_host(cert, name, name.utf8.count, 0, nil) == 1
        return matches ? nil : "upstream SSL certificate does not match \"\(name)\""
    }

    /// A name for SNI and the certificate check without its port (`host:port`, `[v6]:port`,
    /// `[v6]`), as nginx strips it from `proxy_ssl_name`.
    public static func nameWithoutPort(_ raw: String) -> String {
        var name = raw
        if name.hasPrefix("[") {
            if let close = name.firstIndex(of: "]") { name = String(name[name.index(after: name.startIndex)..<close]) }
        } else if let colon = name.lastIndex(of: ":") {
            name = String(name[..<colon])
        }
        return name
    }

    /// The name a health probe sends in SNI and checks in the certificate, where there is no
    /// request: `proxy_ssl_name` with `$proxy_host` and `$proxy_port` as the location's
    /// `proxy_pass` gives them and every other variable empty; without `proxy_ssl_name`,
    /// `$proxy_host` (the upstream's name for `proxy_pass https://NAME`). Port removed.
    public func probeName(proxyHost: String, proxyPort: Int) -> String {
        guard let name else { return UpstreamTLS.nameWithoutPort(proxyHost) }
        var out: [UInt8] = []
        for part in name.parts {
            switch part {
            case .literal(let b): out += b
            case .variable(.proxyHost): out += Array(proxyHost.utf8)
            case .variable(.proxyPort): out += Array(String(proxyPort).utf8)
            case .variable: break
            }
        }
        return UpstreamTLS.nameWithoutPort(String(decoding: out, as: UTF8.self))
    }

    /// Whether the upstream connection's session was resumed (for tests and logs).
    public static func resumed(_ ssl: OpaquePointer) -> Bool { lb_SSL_session_reused(ssl) == 1 }
}

/// A new client session (TLS 1.2 after the handshake, TLS 1.3 with each ticket): kept as its
/// peer's newest, so the next connection to that peer resumes it.
let upstreamNewSessionCallback: @convention(c) (OpaquePointer?, OpaquePointer?) -> Int32 = { ssl, session in
    guard let ssl, let session, let p = SSL_get_ex_data(ssl, 0), let peer = SSL_get_ex_data(ssl, 1) else { return 0 }
    let tls = Unmanaged<UpstreamTLS>.fromOpaque(p).takeUnretainedValue()
    tls.store(session, slot: Int(bitPattern: peer) - 1)
    return 1 // the reference is ours now
}

/// The `proxy_ssl_*` directives: http, server and location levels.
extension Compiler {
    static func proxySSL<T>(_ name: String, _ args: ArgumentShape, default def: String?, _ kp: WritableKeyPath<ProxySSLSettings, T?>,
                            _ parse: @escaping @Sendable (Compiler, Directive) throws -> T) -> DirectiveSpec {
        nonisolated(unsafe) let kp = kp
        return DirectiveSpec(name, .hsl, args, default: def) { c, d in c.settings.s.proxySSL[keyPath: kp] = try parse(c, d) }
    }

    static func proxySSLFlag(_ name: String, default def: String, _ kp: WritableKeyPath<ProxySSLSettings, Bool?>) -> DirectiveSpec {
        proxySSL(name, .flag, default: def, kp) { c, d in c.flag(d) }
    }

    static func proxySSLFile(_ name: String, _ kp: WritableKeyPath<ProxySSLSettings, TLSFile?>) -> DirectiveSpec {
        proxySSL(name, .exactly(1), default: nil, kp) { c, d in try c.tlsFile(d.args[0]) }
    }

    static let proxySSLDirectives: [DirectiveSpec] = [
        proxySSLFlag("proxy_ssl_server_name", default: "off", \.serverName),
        proxySSL("proxy_ssl_name", .exactly(1), default: "$proxy_host", \.name) { c, d in try c.template(d.args[0]) },
        proxySSLFlag("proxy_ssl_verify", default: "off", \.verify),
        proxySSL("proxy_ssl_verify_depth", .exactly(1), default: "1", \.verifyDepth) { c, d in try c.number(d) },
        proxySSLFile("proxy_ssl_trusted_certificate", \.trustedCertificate),
        proxySSLFile("proxy_ssl_crl", \.crl),
        proxySSLFile("proxy_ssl_certificate", \.certificate),
        proxySSLFile("proxy_ssl_certificate_key", \.certificateKey),
        proxySSL("proxy_ssl_protocols", .atLeast(1), default: "TLSv1.2 TLSv1.3", \.protocols) { _, d in
            var out: [String] = []
            for a in d.args {
                guard protocolWords.contains(a.text) else { throw ConfigError("invalid value \"\(a.text)\"", at: a.location) }
                out.append(a.text)
            }
            return out
        },
        proxySSL("proxy_ssl_ciphers", .exactly(1), default: "DEFAULT", \.ciphers) { _, d in d.args[0].text },
        proxySSLFlag("proxy_ssl_session_reuse", default: "on", \.sessionReuse),
        DirectiveSpec("proxy_ssl_conf_command", .hsl, .exactly(2), repeatable: true, note: "OpenSSL SSL_CONF_cmd for upstream connections, applied last") { c, d in
            c.settings.s.proxySSL.confCommands = (c.settings.s.proxySSL.confCommands ?? []) + [(d.args[0].text, d.args[1].text, d.location)]
        },
        proxySSLFile("proxy_ssl_password_file", \.passwordFile),
    ]
}
