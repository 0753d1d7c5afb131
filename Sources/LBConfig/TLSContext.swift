import COpenSSL
import Glibc
import Synchronization

/// One server's TLS context (OpenSSL's `SSL_CTX`): its certificates, protocols, session cache and
/// ticket keys. Built once per loaded configuration, at load (so `lb -t` and a reload check every
/// file), and shared by every worker thread (an `SSL_CTX` is thread-safe for `SSL_new`, and its
/// session cache is locked). A reload builds new ones; connections keep theirs to the end.
public final class TLSContext: @unchecked Sendable {
    /// The `SSL_CTX*`.
    public let ctx: OpaquePointer
    /// `ssl_reject_handshake on`: handshakes that select this server are refused.
    public let rejectHandshake: Bool
    /// `ssl_verify_client`: how requests on this server treat the client's certificate.
    public let verifyClient: TLSVerifyClient
    public let settings: TLSSettings
    /// `ssl_session_ticket_key` material, owned here (the context's app data points at it).
    private var ticketKeys: UnsafeMutableRawPointer?
    /// `ssl_stapling_file`: the DER OCSP response handed to clients that ask.
    private(set) var stapling: [UInt8]?
    /// `ssl_stapling on` without a file: one staple per certificate that has an issuer and a
    /// responder, fetched at run time.
    public private(set) var staples: [OCSPStaple] = []
    /// The `[warn]` lines of building this context (nginx's, which name no FILE:LINE).
    public private(set) var warnings: [ConfigError] = []
    /// Certificates whose paths name `$ssl_server_name`: loaded at each handshake (nginx's
    /// certificate callback), with `ssl_password_file`'s passphrases.
    private(set) var perHandshake: [(cert: CertificatePath, key: CertificatePath)] = []
    private(set) var passwords: [[UInt8]]?

    deinit {
        SSL_CTX_free(ctx)
        free(ticketKeys)
    }

    /// Builds the context of a server, nginx's order: protocols and options, certificates and
    /// keys, ciphers, curves, DH, sessions, tickets, client verification, stapling, then
    /// `ssl_conf_command` last. Errors are worded as nginx's `[emerg]` lines, with FILE:LINE.
    init(_ s: TLSSettings, server: Int, at location: SourceLocation) throws(ConfigError) {
        guard let ctx = SSL_CTX_new(TLS_server_method()) else {
            throw ConfigError("SSL_CTX_new() failed (\(TLSContext.queue()))", at: location)
        }
        self.ctx = ctx
        rejectHandshake = s.rejectHandshake ?? false
        verifyClient = s.effectiveVerifyClient
        settings = s
        var ticketKeys: UnsafeMutableRawPointer? = nil
        var stapling: [UInt8]? = nil
        var staples: [OCSPStaple] = []
        var warnings: [ConfigError] = []
        defer {
            self.ticketKeys = ticketKeys
            self.stapling = stapling
            self.staples = staples
            self.warnings = warnings
        }
        var options = lb_server_options()
        let protocols = Set(s.effectiveProtocols)
        let noProtocol: [(String, lb_op)] = [("SSLv3", LB_OP_NO_SSLv3), ("TLSv1", LB_OP_NO_TLSv1), ("TLSv1.1", LB_OP_NO_TLSv1_1),
                                             ("TLSv1.2", LB_OP_NO_TLSv1_2), ("TLSv1.3", LB_OP_NO_TLSv1_3)]
        for (word, op) in noProtocol where !protocols.contains(word) { options |= lb_op(op) }
        if s.preferServerCiphers == true { options |= lb_op(LB_OP_CIPHER_SERVER_PREFERENCE) }
        if !s.effectiveSessionTickets { options |= lb_op(LB_OP_NO_TICKET) }
        _ = lb_SSL_CTX_set_options(ctx, options)
        // A blocked write consumed nothing and may be retried from wherever the bytes are now;
        // idle connections give their record buffers back.
        _ = lb_SSL_CTX_set_mode(ctx, Int(SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS))

        let certs = s.certificates ?? []
        let keys = s.keys ?? []
        var loaded: [(x509: OpaquePointer, name: String)] = []
        let passwords = try s.passwordFile.map { f throws(ConfigError) in try TLSContext.readPasswords(f) }
        self.passwords = passwords
        let variable = certs.contains { $0.perHandshake != nil } || keys.contains { $0.perHandshake != nil }
        for (i, cert) in certs.enumerated() {
            guard i < keys.count else {
                throw ConfigError("no \"ssl_certificate_key\" is defined for certificate \"\(cert.path)\"", at: cert.location)
            }
            if variable {
                // As nginx: with variables in any of them, every pair is loaded per handshake.
                let fixed = { (f: TLSFile) in f.perHandshake ?? CertificatePath(parts: [.literal(f.path)]) }
                perHandshake.append((fixed(cert), fixed(keys[i])))
                continue
            }
            try TLSContext.useCertificate(ctx, cert, key: keys[i], passwords: passwords)
            if let x509 = SSL_CTX_get0_certificate(ctx) { loaded.append((x509, cert.path)) }
        }

        if SSL_CTX_set_cipher_list(ctx, s.effectiveCiphers) != 1 {
            throw ConfigError("SSL_CTX_set_cipher_list(\"\(s.effectiveCiphers)\") failed (\(TLSContext.queue()))", at: location)
        }
        let curve = s.effectiveEcdhCurve
        if curve != "auto" && lb_SSL_CTX_set1_groups_list(ctx, curve) != 1 {
            throw ConfigError("SSL_CTX_set1_curves_list(\"\(curve)\") failed (\(TLSContext.queue()))", at: location)
        }
        if let dh = s.dhparam {
            guard let bio = BIO_new_file(dh.path, "r") else {
                throw ConfigError("BIO_new_file(\"\(dh.path)\") failed (\(TLSContext.queue()))", at: dh.location)
            }
            defer { BIO_free(bio) }
            guard let pkey = PEM_read_bio_Parameters(bio, nil) else {
                throw ConfigError("PEM_read_bio_DHparams(\"\(dh.path)\") failed (\(TLSContext.queue()))", at: dh.location)
            }
            if SSL_CTX_set0_tmp_dh_pkey(ctx, pkey) != 1 {
                EVP_PKEY_free(pkey)
                throw ConfigError("SSL_CTX_set0_tmp_dh_pkey(\"\(dh.path)\") failed (\(TLSContext.queue()))", at: dh.location)
            }
        }

        // Sessions. The id context keeps one server's sessions from resuming on another.
        var sid = Array("lb:\(server)".utf8)
        _ = SSL_CTX_set_session_id_context(ctx, &sid, UInt32(sid.count))
        switch s.effectiveSessionCache {
        case .off:
            _ = lb_SSL_CTX_set_session_cache_mode(ctx, Int(SSL_SESS_CACHE_OFF))
        case .none:
            _ = lb_SSL_CTX_set_session_cache_mode(ctx, Int(SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL_STORE))
            _ = lb_SSL_CTX_sess_set_cache_size(ctx, 1)
        case .on(let n):
            _ = lb_SSL_CTX_set_session_cache_mode(ctx, Int(SSL_SESS_CACHE_SERVER))
            _ = lb_SSL_CTX_sess_set_cache_size(ctx, max(1, n))
        }
        _ = SSL_CTX_set_timeout(ctx, Int(s.effectiveSessionTimeoutSeconds))
        if s.effectiveSessionTickets, let files = s.ticketKeys, !files.isEmpty {
            let p = try TLSContext.loadTicketKeys(files)
            ticketKeys = p
            _ = lb_SSL_CTX_use_ticket_keys(ctx, p.assumingMemoryBound(to: lb_ticket_keys.self))
        }

        _ = lb_SSL_CTX_set_max_send_fragment(ctx, min(16384, max(512, s.effectiveBufferSize)))
        SSL_CTX_set_alpn_select_cb(ctx, tlsALPNCallback, nil)
        _ = lb_SSL_CTX_set_tlsext_servername_callback(ctx, tlsServerNameCallback)
        if !perHandshake.isEmpty {
            // The context outlives every SSL made from it: unretained is enough.
            SSL_CTX_set_cert_cb(ctx, tlsCertificateCallback, Unmanaged.passUnretained(self).toOpaque())
        }

        try TLSContext.setUpClientVerification(ctx, s, at: location)

        if s.stapling == true, let f = s.staplingFile {
            guard let der = readWholeFile(f.path) else {
                throw ConfigError("open() \"\(f.path)\" failed (\(errno): \(String(cString: strerror(errno))))", at: f.location)
            }
            let ok = der.withUnsafeBufferPointer { b -> Bool in
                var p: UnsafePointer<UInt8>? = b.baseAddress
                guard let resp = d2i_OCSP_RESPONSE(nil, &p, b.count) else { return false }
                OCSP_RESPONSE_free(resp)
                return true
            }
            guard ok else { throw ConfigError("d2i_OCSP_RESPONSE(\"\(f.path)\") failed (\(TLSContext.queue()))", at: f.location) }
            stapling = der
            _ = lb_SSL_CTX_set_tlsext_status_cb(ctx, tlsStatusCallback)
        } else if s.stapling == true {
            if s.effectiveVerifyClient == .off, let t = s.trustedCertificate {
                // nginx loads it whatever ssl_verify_client says; stapling finds issuers in it.
                guard SSL_CTX_load_verify_locations(ctx, t.path, nil) == 1 else {
                    throw ConfigError("SSL_CTX_load_verify_locations(\"\(t.path)\") failed (\(TLSContext.queue()))", at: t.location)
                }
            }
            for (x509, name) in loaded {
                switch TLSContext.staple(ctx, x509, name: name, s) {
                case .success(let staple): staples.append(staple)
                case .failure(let w): warnings.append(w)
                }
            }
            _ = lb_SSL_CTX_set_tlsext_status_cb(ctx, tlsStatusCallback)
        }

        if let commands = s.confCommands, !commands.isEmpty {
            try TLSContext.apply(commands, to: ctx, server: true, at: location)
        }
        ERR_clear_error()
    }

    /// One certificate's staple in fetch mode (nginx's `ngx_ssl_stapling_certificate`): its
    /// issuer, from the chain sent with it, else from the context's store
    /// (`ssl_trusted_certificate`), and its responder, `ssl_stapling_responder` else the
    /// certificate's OCSP URL. Without either, nginx's warning, and this certificate is not stapled.
    static func staple(_ ctx: OpaquePointer, _ cert: OpaquePointer, name: String, _ s: TLSSettings,
                       resolve: (String) -> [String] = SystemResolver().resolve) -> Result<OCSPStaple, ConfigError> {
        func ignored(_ why: String) -> Result<OCSPStaple, ConfigError> { .failure(ConfigError("\"ssl_stapling\" ignored, \(why)")) }
        ERR_clear_error()
        defer { ERR_clear_error() }
        guard let store = SSL_CTX_get_cert_store(ctx) else { return ignored("SSL_CTX_get_cert_store() failed") }
        let chain = lb_SSL_CTX_chain_of(ctx, cert)
        var issuer: OpaquePointer? = nil
        for i in 0..<lb_sk_X509_num(chain) {
            if let c = lb_sk_X509_value(chain, i), X509_check_issued(c, cert) == X509_V_OK {
                _ = X509_up_ref(c)
                issuer = c
                break
            }
        }
        if issuer == nil, let sctx = X509_STORE_CTX_new() {
            defer { X509_STORE_CTX_free(sctx) }
            if X509_STORE_CTX_init(sctx, store, nil, nil) == 1 {
                var found: OpaquePointer? = nil
                if X509_STORE_CTX_get1_issuer(&found, sctx, cert) == 1 { issuer = found }
            }
        }
        guard let issuer else { return ignored("issuer certificate not found for certificate \"\(name)\"") }
        var url: String
        if let r = s.staplingResponder {
            url = r
        } else {
            var buf = [CChar](repeating: 0, count: 2048)
            guard lb_X509_first_ocsp_url(cert, &buf, buf.count) == 1 else {
                X509_free(issuer)
                return ignored("no OCSP responder URL in the certificate \"\(name)\"")
            }
            url = String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        switch OCSPResponder.parse(url, resolve: resolve) {
        case .failure(let why):
            X509_free(issuer)
            return ignored("\(why.message) in the certificate \"\(name)\"")
        case .success(let responder):
            return .success(OCSPStaple(cert: cert, issuer: issuer, chain: chain, store: store, name: name, responder: responder,
                                       verify: s.staplingVerify ?? false, resolver: s.staplingResolver))
        }
    }

    /// `ssl_conf_command` / `proxy_ssl_conf_command`: OpenSSL configuration commands on a context
    /// (server or client side), each refused with its own line.
    static func apply(_ commands: [(name: String, value: String, location: SourceLocation)], to ctx: OpaquePointer,
                      server: Bool, at location: SourceLocation) throws(ConfigError) {
        guard let cctx = SSL_CONF_CTX_new() else { throw ConfigError("SSL_CONF_CTX_new() failed", at: location) }
        defer { SSL_CONF_CTX_free(cctx) }
        let side = UInt32(server ? SSL_CONF_FLAG_SERVER : SSL_CONF_FLAG_CLIENT)
        _ = SSL_CONF_CTX_set_flags(cctx, UInt32(SSL_CONF_FLAG_FILE | SSL_CONF_FLAG_CERTIFICATE | SSL_CONF_FLAG_SHOW_ERRORS) | side)
        SSL_CONF_CTX_set_ssl_ctx(cctx, ctx)
        for c in commands where SSL_CONF_cmd(cctx, c.name, c.value) <= 0 {
            throw ConfigError("SSL_CONF_cmd(\"\(c.name)\", \"\(c.value)\") failed (\(TLSContext.queue()))", at: c.location)
        }
        if SSL_CONF_CTX_finish(cctx) != 1 {
            throw ConfigError("SSL_CONF_finish() failed (\(TLSContext.queue()))", at: location)
        }
    }

    /// Loads one certificate (with the chain after it in the file) and its key, in nginx's steps
    /// and words. A key that does not match its certificate is refused here (nginx would only
    /// notice when a client picks that certificate).
    /// `ssl_password_file` as nginx reads it (`ngx_ssl_read_password_file`): one passphrase per
    /// line (a CR before the LF dropped, empty lines skipped; none at all: one empty passphrase).
    static func readPasswords(_ f: TLSFile) throws(ConfigError) -> [[UInt8]] {
        guard let bytes = readWholeFile(f.path) else {
            throw ConfigError("open() \"\(f.path)\" failed (\(errno): \(String(cString: strerror(errno))))", at: f.location)
        }
        var out: [[UInt8]] = []
        for var line in bytes.split(separator: 0x0A, omittingEmptySubsequences: false) {
            if line.count >= 4096 { throw ConfigError("too long line in \"\(f.path)\"", at: f.location) }
            if line.last == 0x0D { line = line.dropLast() }
            if !line.isEmpty { out.append(Array(line)) }
        }
        return out.isEmpty ? [[]] : out
    }

    /// The private key of `bio`: with each passphrase in turn, else with none (an encrypted key
    /// then fails here instead of OpenSSL asking a terminal for one).
    static func readPrivateKey(_ bio: OpaquePointer, passwords: [[UInt8]]?) -> OpaquePointer? {
        let tries = passwords ?? [[]]
        for (i, p) in tries.enumerated() {
            let pkey = (p + [0]).withUnsafeBufferPointer { b in
                PEM_read_bio_PrivateKey(bio, nil, nil, UnsafeMutableRawPointer(mutating: b.baseAddress))
            }
            if pkey != nil || i == tries.count - 1 { return pkey }
            ERR_clear_error()
            _ = BIO_ctrl(bio, BIO_CTRL_RESET, 0, nil)
        }
        return nil
    }

    static func useCertificate(_ ctx: OpaquePointer, _ cert: TLSFile, key: TLSFile, passwords: [[UInt8]]? = nil) throws(ConfigError) {
        ERR_clear_error()
        guard let bio = BIO_new_file(cert.path, "r") else {
            throw ConfigError("cannot load certificate \"\(cert.path)\": BIO_new_file() failed (\(queue()))", at: cert.location)
        }
        defer { BIO_free(bio) }
        guard let x509 = PEM_read_bio_X509_AUX(bio, nil, nil, nil) else {
            throw ConfigError("cannot load certificate \"\(cert.path)\": PEM_read_bio_X509_AUX() failed (\(queue()))", at: cert.location)
        }
        defer { X509_free(x509) }
        guard SSL_CTX_use_certificate(ctx, x509) == 1 else {
            throw ConfigError("SSL_CTX_use_certificate(\"\(cert.path)\") failed (\(queue()))", at: cert.location)
        }
        // The rest of the file is the chain, for this certificate.
        while true {
            guard let extra = PEM_read_bio_X509(bio, nil, nil, nil) else {
                let e = ERR_peek_last_error()
                if lb_err_lib(e) == ERR_LIB_PEM && lb_err_reason(e) == PEM_R_NO_START_LINE {
                    ERR_clear_error()
                    break
                }
                throw ConfigError("cannot load certificate \"\(cert.path)\": PEM_read_bio_X509() failed (\(queue()))", at: cert.location)
            }
            guard lb_SSL_CTX_add0_chain_cert(ctx, extra) == 1 else {
                X509_free(extra)
                throw ConfigError("cannot load certificate \"\(cert.path)\": SSL_CTX_add0_chain_cert() failed (\(queue()))", at: cert.location)
            }
        }
        guard let kbio = BIO_new_file(key.path, "r") else {
            throw ConfigError("cannot load certificate key \"\(key.path)\": BIO_new_file() failed (\(queue()))", at: key.location)
        }
        defer { BIO_free(kbio) }
        guard let pkey = readPrivateKey(kbio, passwords: passwords) else {
            throw ConfigError("cannot load certificate key \"\(key.path)\": PEM_read_bio_PrivateKey() failed (\(queue()))", at: key.location)
        }
        defer { EVP_PKEY_free(pkey) }
        guard X509_check_private_key(x509, pkey) == 1, SSL_CTX_use_PrivateKey(ctx, pkey) == 1 else {
            throw ConfigError("SSL_CTX_use_PrivateKey(\"\(key.path)\") failed (\(queue()))", at: key.location)
        }
    }

    /// `ssl_session_ticket_key` files: 48 bytes (name, AES-128 key, HMAC key) or 80 bytes
    /// (name, HMAC key, AES-256 key), nginx's layouts.
    static func loadTicketKeys(_ files: [TLSFile]) throws(ConfigError) -> UnsafeMutableRawPointer {
        let stride = MemoryLayout<lb_ticket_key>.stride
        let header = MemoryLayout<lb_ticket_keys>.size
        let p = calloc(1, header + stride * files.count)!
        let keys = p.assumingMemoryBound(to: lb_ticket_keys.self)
        keys.pointee.count = Int32(files.count)
        for (i, f) in files.enumerated() {
            guard let b = readWholeFile(f.path) else {
                let e = errno
                free(p)
                throw ConfigError("open() \"\(f.path)\" failed (\(e): \(String(cString: strerror(e))))", at: f.location)
            }
            guard b.count == 48 || b.count == 80 else {
                free(p)
                throw ConfigError("\"\(f.path)\" must be 48 or 80 bytes", at: f.location)
            }
            var k = lb_ticket_key()
            withUnsafeMutableBytes(of: &k.name) { $0.copyBytes(from: b[0..<16]) }
            if b.count == 48 {
                withUnsafeMutableBytes(of: &k.aes) { $0.copyBytes(from: b[16..<32]) }
                withUnsafeMutableBytes(of: &k.hmac) { $0.copyBytes(from: b[32..<48]) }
                k.aesLength = 16
            } else {
                withUnsafeMutableBytes(of: &k.hmac) { $0.copyBytes(from: b[16..<48]) }
                withUnsafeMutableBytes(of: &k.aes) { $0.copyBytes(from: b[48..<80]) }
                k.aesLength = 32
            }
            (p + header + i * stride).storeBytes(of: k, as: lb_ticket_key.self)
        }
        return p
    }

    /// `ssl_verify_client`, `ssl_client_certificate`, `ssl_trusted_certificate`, `ssl_verify_depth`, `ssl_crl`.
    static func setUpClientVerification(_ ctx: OpaquePointer, _ s: TLSSettings, at location: SourceLocation) throws(ConfigError) {
        let mode = s.effectiveVerifyClient
        if mode == .off { return }
        if mode != .optionalNoCA && s.clientCertificate == nil && s.trustedCertificate == nil {
            throw ConfigError("no ssl_client_certificate for ssl_verify_client", at: s.verifyClientLocation ?? location)
        }
        // The handshake never fails on a bad certificate: the request is answered 400 (495/496),
        // as nginx does, so the callback accepts everything and the result is read later.
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, tlsVerifyCallback)
        SSL_CTX_set_verify_depth(ctx, Int32(s.effectiveVerifyDepth))
        if let ca = s.clientCertificate {
            guard SSL_CTX_load_verify_locations(ctx, ca.path, nil) == 1 else {
                throw ConfigError("SSL_CTX_load_verify_locations(\"\(ca.path)\") failed (\(queue()))", at: ca.location)
            }
            // The names sent in the CertificateRequest.
            ERR_clear_error()
            guard let names = SSL_load_client_CA_file(ca.path) else {
                throw ConfigError("SSL_load_client_CA_file(\"\(ca.path)\") failed (\(queue()))", at: ca.location)
            }
            SSL_CTX_set_client_CA_list(ctx, names)
        }
        if let t = s.trustedCertificate {
            guard SSL_CTX_load_verify_locations(ctx, t.path, nil) == 1 else {
                throw ConfigError("SSL_CTX_load_verify_locations(\"\(t.path)\") failed (\(queue()))", at: t.location)
            }
        }
        if let crl = s.crl {
            guard let store = SSL_CTX_get_cert_store(ctx), let lookup = X509_STORE_add_lookup(store, X509_LOOKUP_file()) else {
                throw ConfigError("X509_STORE_add_lookup() failed (\(queue()))", at: crl.location)
            }
            guard X509_load_crl_file(lookup, crl.path, X509_FILETYPE_PEM) >= 1 else {
                throw ConfigError("X509_LOOKUP_load_file(\"\(crl.path)\") failed (\(queue()))", at: crl.location)
            }
            _ = X509_STORE_set_flags(store, UInt(X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL))
        }
        ERR_clear_error()
    }

    /// This thread's OpenSSL error queue in nginx's form (`SSL: error:… error:…`).
    static func queue() -> String {
        var parts: [String] = []
        var buf = [CChar](repeating: 0, count: 512)
        while lb_err_next(&buf, buf.count) != 0 {
            parts.append(String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        return parts.isEmpty ? "SSL: unknown error" : "SSL: " + parts.joined(separator: " ")
    }
}

extension TLSContext {
    /// The context for a server: the one already alive in this process when it was built from
    /// the same settings and the same file contents for the same server, else a new one. So a
    /// reload that leaves a server's TLS configuration alone keeps its context, and with it the
    /// session cache and the ticket keys (nginx keeps its shared zone across reloads); a renewed
    /// certificate file differs in content, so new handshakes get it at once.
    static func shared(_ s: TLSSettings, server: Int, at location: SourceLocation) throws(ConfigError) -> TLSContext {
        guard let key = fingerprint(s, server: server) else { return try TLSContext(s, server: server, at: location) }
        if let alive = registry.withLock({ $0[key]?.context }) { return alive }
        let made = try TLSContext(s, server: server, at: location)
        registry.withLock { r in
            r = r.filter { $0.value.context != nil }
            r[key] = WeakContext(context: made)
        }
        return made
    }

    /// A file as its path and the SHA-256 of its bytes; nil when it cannot be read.
    static func digest(_ f: TLSFile) -> String? {
        guard let bytes = readWholeFile(f.path) else { return nil }
        var md = [UInt8](repeating: 0, count: 32)
        var len: UInt32 = 0
        guard EVP_Digest(bytes, bytes.count, &md, &len, EVP_sha256(), nil) == 1 else { return nil }
        return f.path + "@" + md.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }

    struct WeakContext: @unchecked Sendable { weak var context: TLSContext? }
    static let registry = Mutex<[String: WeakContext]>([:])

    /// What a context is built from: every setting (where directives were written does not
    /// count), and each named file as its path and the SHA-256 of its bytes. Nil when a file
    /// cannot be read (building the context then reports it).
    static func fingerprint(_ s: TLSSettings, server: Int) -> String? {
        var out = "server \(server)"
        let file = digest
        for child in Mirror(reflecting: s).children {
            let name = child.label ?? "?"
            let text: String?
            if let f = child.value as? TLSFile {
                text = file(f)
            } else if let files = child.value as? [TLSFile] {
                let parts = files.map(file)
                text = parts.contains(nil) ? nil : parts.map { $0! }.joined(separator: ",")
            } else if let commands = child.value as? [(name: String, value: String, location: SourceLocation)] {
                text = commands.map { "\($0.name)=\($0.value)" }.joined(separator: ",")
            } else if child.value is SourceLocation {
                continue
            } else {
                text = String(describing: child.value)
            }
            guard let text else { return nil }
            out += "\n\(name) \(text)"
        }
        return out
    }
}

/// The TLS side of one listening address: which server (and so which context) a handshake's
/// SNI name selects, by the same rules as Host — exact, wildcard, regex, default server.
/// Connections point their `SSL`'s app data at it.
public final class TLSListener: @unchecked Sendable {
    public let names: ServerNameTable
    public let defaultServer: Int
    /// Contexts by server index (nil: that server has no certificate of its own).
    public let contexts: [TLSContext?]
    /// The context a handshake starts with: the default server's.
    public let defaultContext: TLSContext
    /// Whether ALPN offers h2, by server index (`listen … http2` on this address, or the
    /// server's `http2 on`); empty: never.
    public let http2: [Bool]

    init(names: ServerNameTable, defaultServer: Int, contexts: [TLSContext?], defaultContext: TLSContext, http2: [Bool] = []) {
        self.names = names
        self.defaultServer = defaultServer
        self.contexts = contexts
        self.defaultContext = defaultContext
        self.http2 = http2
    }

    /// The server an SNI name selects (the default server without one).
    func server(for name: String?) -> Int {
        var server = defaultServer
        if var n = name?.lowercased() {
            while n.hasSuffix(".") { n.removeLast() }
            if !n.isEmpty, let i = names.find(n) { server = i }
        }
        return server
    }

    /// The context for an SNI name (nil: keep the default server's).
    func context(for name: String?) -> TLSContext? {
        contexts[server(for: name)]
    }

    /// Whether h2 may be chosen for a handshake with this SNI name.
    func offersH2(for name: String?) -> Bool {
        guard !http2.isEmpty else { return false }
        let s = server(for: name)
        return s < http2.count && http2[s]
    }
}

/// ALPN (RFC 7301): h2 when the client offers it and HTTP/2 is on for the server the SNI name
/// selected (the SNI callback runs first), else http/1.1 (or http/1.0); a client that offers
/// neither is refused, as nginx does.
let tlsALPNCallback: @convention(c) (OpaquePointer?, UnsafeMutablePointer<UnsafePointer<UInt8>?>?, UnsafeMutablePointer<UInt8>?,
                                     UnsafePointer<UInt8>?, UInt32, UnsafeMutableRawPointer?) -> Int32 = { ssl, out, outlen, input, inlen, _ in
    guard let ssl, let out, let outlen, let input else { return SSL_TLSEXT_ERR_ALERT_FATAL }
    var h2 = false
    if let p = SSL_get_ex_data(ssl, 0) {
        let listener = Unmanaged<TLSListener>.fromOpaque(p).takeUnretainedValue()
        if !listener.http2.isEmpty {
            h2 = listener.offersH2(for: SSL_get_servername(ssl, Int32(TLSEXT_NAMETYPE_host_name)).map { String(cString: $0) })
        }
    }
    // The client's list, in its order of preference: h2 (when on), else the first HTTP/1.x.
    var i = 0
    var http1: Int? = nil
    while i < Int(inlen) {
        let n = Int(input[i])
        guard i + 1 + n <= Int(inlen) else { break }
        let p = input + i + 1
        if h2 && n == 2 && p[0] == UInt8(ascii: "h") && p[1] == UInt8(ascii: "2") {
            out.pointee = p
            outlen.pointee = 2
            return SSL_TLSEXT_ERR_OK
        }
        if http1 == nil && n == 8 && (0..<8).allSatisfy({ p[$0] == Array("http/1.1".utf8)[$0] || p[$0] == Array("http/1.0".utf8)[$0] }) {
            http1 = i
        }
        i += 1 + n
    }
    guard let at = http1 else { return SSL_TLSEXT_ERR_ALERT_FATAL }
    out.pointee = input + at + 1
    outlen.pointee = 8
    return SSL_TLSEXT_ERR_OK
}

/// SNI: switches the connection to the selected server's context, or refuses the handshake when
/// that server says `ssl_reject_handshake on`. Also called without SNI (the default server).
let tlsServerNameCallback: @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int32>?, UnsafeMutableRawPointer?) -> Int32 = { ssl, alert, _ in
    guard let ssl, let p = SSL_get_ex_data(ssl, 0) else { return SSL_TLSEXT_ERR_OK }
    let listener = Unmanaged<TLSListener>.fromOpaque(p).takeUnretainedValue()
    let name = SSL_get_servername(ssl, Int32(TLSEXT_NAMETYPE_host_name)).map { String(cString: $0) }
    guard let chosen = listener.context(for: name) else { return SSL_TLSEXT_ERR_OK }
    if chosen.rejectHandshake {
        alert?.pointee = Int32(SSL_AD_UNRECOGNIZED_NAME)
        return SSL_TLSEXT_ERR_ALERT_FATAL
    }
    if chosen.ctx != SSL_get_SSL_CTX(ssl) {
        _ = SSL_set_SSL_CTX(ssl, chosen.ctx)
        // What SSL_set_SSL_CTX does not carry over (as nginx does it).
        SSL_set_verify(ssl, SSL_CTX_get_verify_mode(chosen.ctx), SSL_CTX_get_verify_callback(chosen.ctx))
        SSL_set_verify_depth(ssl, lb_SSL_CTX_get_verify_depth(chosen.ctx))
        _ = SSL_clear_options(ssl, SSL_get_options(ssl) & ~SSL_CTX_get_options(chosen.ctx))
        _ = SSL_set_options(ssl, SSL_CTX_get_options(chosen.ctx))
    }
    return SSL_TLSEXT_ERR_OK
}

/// Client certificates: the handshake goes on whatever the verdict (the request is answered
/// 400 later, as nginx does); the verdict stays in the connection for `$ssl_client_verify`.
let tlsVerifyCallback: @convention(c) (Int32, OpaquePointer?) -> Int32 = { _, _ in 1 }

/// OCSP stapling: the response goes to clients that ask for it — the one from
/// `ssl_stapling_file`, else the fetched one of the chosen certificate while it is valid (the
/// first handshake to find it due queues a fetch, as in nginx).
let tlsStatusCallback: @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?) -> Int32 = { ssl, _ in
    guard let ssl, let ctx = SSL_get_SSL_CTX(ssl), let p = SSL_get_ex_data(ssl, 0) else { return SSL_TLSEXT_ERR_NOACK }
    let listener = Unmanaged<TLSListener>.fromOpaque(p).takeUnretainedValue()
    guard let owner = (listener.contexts.first { $0?.ctx == ctx } ?? nil) ?? (listener.defaultContext.ctx == ctx ? listener.defaultContext : nil) else {
        return SSL_TLSEXT_ERR_NOACK
    }
    var fetched: [UInt8]? = nil
    if owner.stapling == nil, let cert = SSL_get_certificate(ssl), let staple = owner.staples.first(where: { $0.cert == cert }) {
        fetched = staple.response(now: time(nil))
    }
    guard let der = owner.stapling ?? fetched else { return SSL_TLSEXT_ERR_NOACK }
    // OpenSSL frees the copy it is given.
    guard let copy = OPENSSL_malloc_copy(der) else { return SSL_TLSEXT_ERR_NOACK }
    _ = lb_SSL_set_tlsext_status_ocsp_resp(ssl, copy, der.count)
    return SSL_TLSEXT_ERR_OK
}

func OPENSSL_malloc_copy(_ b: [UInt8]) -> UnsafeMutablePointer<UInt8>? {
    guard let p = CRYPTO_malloc(b.count, "lb", 0) else { return nil }
    b.withUnsafeBytes { p.copyMemory(from: $0.baseAddress!, byteCount: b.count) }
    return p.assumingMemoryBound(to: UInt8.self)
}

/// A whole small file (certificates' companions: ticket keys, OCSP responses), or nil with errno set.
func readWholeFile(_ path: String) -> [UInt8]? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var out: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = read(fd, &buf, buf.count)
        if n < 0 { if errno == EINTR { continue } else { return nil } }
        if n == 0 { return out }
        out += buf[0..<n]
        if out.count > 1 << 20 { errno = EFBIG; return nil }
    }
}

/// Certificates named with `$ssl_server_name` (nginx's `ngx_http_ssl_certificate`): at each
/// handshake, the paths are made from the SNI name — validated as nginx validates a host
/// (lowercased; refused with `/`, `\\`, NUL or `..`) — and the certificate chain and key read
/// from disk (`ssl_password_file` applies). A file that cannot be read fails the handshake, with
/// OpenSSL's words in the connection's log line.
let tlsCertificateCallback: @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?) -> Int32 = { ssl, arg in
    guard let ssl, let arg else { return 0 }
    let context = Unmanaged<TLSContext>.fromOpaque(arg).takeUnretainedValue()
    let raw = SSL_get_servername(ssl, Int32(TLSEXT_NAMETYPE_host_name)).map { String(cString: $0) } ?? ""
    guard let name = TLSContext.validatedServerName(raw) else { return 0 }
    for pair in context.perHandshake {
        guard TLSContext.useConnectionCertificate(ssl, cert: pair.cert.path(serverName: name), key: pair.key.path(serverName: name),
                                                  passwords: context.passwords) else { return 0 }
    }
    return 1
}

extension TLSContext {
    /// An SNI name as nginx's `ngx_http_validate_host` accepts it for `$ssl_server_name`:
    /// lowercased, a trailing dot dropped; nil when it holds `/`, `\\`, NUL or two dots in a row.
    static func validatedServerName(_ s: String) -> String? {
        var out = s.lowercased()
        if out.contains("/") || out.contains("\\") || out.contains("\0") || out.contains("..") { return nil }
        while out.hasSuffix(".") { out.removeLast() }
        return out
    }

    /// One certificate (with the chain after it in its file) and its key, for this connection.
    static func useConnectionCertificate(_ ssl: OpaquePointer, cert: String, key: String, passwords: [[UInt8]]?) -> Bool {
        guard let bio = BIO_new_file(cert, "r") else { return false }
        defer { BIO_free(bio) }
        guard let x509 = PEM_read_bio_X509_AUX(bio, nil, nil, nil) else { return false }
        defer { X509_free(x509) }
        guard SSL_use_certificate(ssl, x509) == 1 else { return false }
        while let extra = PEM_read_bio_X509(bio, nil, nil, nil) {
            // SSL_add0_chain_cert: the connection takes this reference.
            guard SSL_ctrl(ssl, SSL_CTRL_CHAIN_CERT, 0, UnsafeMutableRawPointer(extra)) == 1 else {
                X509_free(extra)
                return false
            }
        }
        ERR_clear_error() // the end of the chain is a "no start line"
        guard let kbio = BIO_new_file(key, "r") else { return false }
        defer { BIO_free(kbio) }
        guard let pkey = readPrivateKey(kbio, passwords: passwords) else { return false }
        defer { EVP_PKEY_free(pkey) }
        return SSL_use_PrivateKey(ssl, pkey) == 1
    }
}
