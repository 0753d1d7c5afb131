import COpenSSL
import Glibc

/// A TLS record layer (OpenSSL's `SSL`) over one non-blocking socket: the server side of a client
/// connection. Every call returns at once; `.wouldBlock` means "call again after the next
/// readiness event of either kind" (a read may need the socket writable during a key update, a
/// write may need it readable). The connection is registered edge-triggered for both directions,
/// so retrying on any event is enough.
///
/// Writes use OpenSSL's partial-write and moving-buffer modes: a write that would block has
/// consumed nothing, and the caller retries with the same bytes (or more) from wherever they are
/// now, which is what every out buffer of the runtime does.
public final class TLSStream {
    /// The `SSL*`; freed with the stream.
    public let ssl: OpaquePointer
    public let fd: Int32
    /// The socket BIO's state (owned by the BIO, so by `ssl`): `drained` is cleared at the start
    /// of every handshake step and read, which follow a readiness event or a full read.
    let sock: UnsafeMutablePointer<lb_sock>
    /// The handshake has completed.
    public private(set) var established = false
    /// The first byte was seen to start a TLS record (the caller's plain-HTTP test is done).
    public var detected = false
    /// A fatal error happened (or the peer sent close_notify): no close_notify is sent back.
    public private(set) var failed = false
    /// The last failure, in nginx's words (`SSL_do_handshake() failed (SSL: error:…)`).
    public private(set) var lastError = ""
    /// The last read stopped because OpenSSL had to write first (a key update or alert into a
    /// full send buffer): the next writable event must retry the read.
    public private(set) var readWantsWrite = false
    /// The last write stopped because OpenSSL had to read first: the next readable event must
    /// retry the write.
    public private(set) var writeWantsRead = false

    /// Creates the server side of a TLS connection on `fd` with the listener's default context.
    /// `appData` is kept (unretained) for the context's callbacks (SNI selects the server's context).
    public init?(context: OpaquePointer, fd: Int32, appData: UnsafeMutableRawPointer?) {
        guard let s = SSL_new(context) else { return nil }
        ssl = s
        self.fd = fd
        guard let sock = TLSStream.attach(s, context: context, fd: fd) else {
            SSL_free(s)
            return nil
        }
        self.sock = sock
        SSL_set_ex_data(s, 0, appData)
        SSL_set_accept_state(s)
    }

    /// lb's socket BIO (see `lb_sock` in the shim), or OpenSSL's own when the context asks for
    /// kernel TLS (which needs OpenSSL's socket BIO). Read-ahead lets one `recv` take a whole
    /// record (or several); the BIO's memory of a short `recv` saves the one that would only say
    /// EAGAIN. Returns the BIO's state (nil: failure); `noSock` with OpenSSL's BIO.
    static func attach(_ ssl: OpaquePointer, context: OpaquePointer, fd: Int32) -> UnsafeMutablePointer<lb_sock>? {
        if lb_SSL_CTX_uses_ktls(context) != 0 {
            return SSL_set_fd(ssl, fd) == 1 ? TLSStream.noSock : nil
        }
        guard let m = TLSStream.bioMethod, let sock = lb_SSL_set_sock(ssl, m, fd) else { return nil }
        SSL_set_read_ahead(ssl, 1)
        return sock
    }

    /// The BIO method, made once per process.
    nonisolated(unsafe) static let bioMethod: OpaquePointer? = lb_sock_method_new()
    /// Stands for "OpenSSL's socket BIO": a state nobody else reads, so re-arming it is harmless.
    nonisolated(unsafe) static let noSock: UnsafeMutablePointer<lb_sock> = {
        let p = UnsafeMutablePointer<lb_sock>.allocate(capacity: 1)
        p.initialize(to: lb_sock())
        return p
    }()

    /// Creates the client side of a TLS connection on `fd` (an upstream connection), from a
    /// client context; `prepare` sets SNI, the session to resume and the callbacks' data before
    /// the first handshake step.
    public init?(clientContext: OpaquePointer, fd: Int32, prepare: (OpaquePointer) -> Void) {
        guard let s = SSL_new(clientContext) else { return nil }
        ssl = s
        self.fd = fd
        guard let sock = TLSStream.attach(s, context: clientContext, fd: fd) else {
            SSL_free(s)
            return nil
        }
        self.sock = sock
        detected = true
        prepare(s)
        SSL_set_connect_state(s)
    }

    deinit { SSL_free(ssl) }

    /// Advances the handshake: `.done(())` once it has completed.
    public func handshake() throws(TLSError) -> IOResult<Void> {
        if established { return .done(()) }
        sock.pointee.drained = 0
        lb_err_clear()
        let r = SSL_do_handshake(ssl)
        if r == 1 {
            established = true
            return .done(())
        }
        return try blocked(r, "SSL_do_handshake")
    }

    /// Reads up to `count` plaintext bytes; `.done(0)` is the end of the stream (close_notify or
    /// the peer's FIN). Reads record after record until `count` is filled or the socket is
    /// drained, so a short read means the same as on TCP: wait for the next readiness event.
    @inline(__always)
    public func read(_ buf: UnsafeMutableRawPointer, _ count: Int) throws(TLSError) -> IOResult<Int> {
        var total = 0
        sock.pointee.drained = 0
        while total < count {
            var n = 0
            lb_err_clear()
            let r = SSL_read_ex(ssl, buf + total, count - total, &n)
            if r == 1 {
                total += n
                // The socket is drained and OpenSSL holds no bytes: another SSL_read could only
                // say "want read". Stop here and save the call.
                if sock.pointee.drained != 0 && SSL_has_pending(ssl) == 0 { return .done(total) }
                continue
            }
            let e = SSL_get_error(ssl, 0)
            if e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE {
                readWantsWrite = e == SSL_ERROR_WANT_WRITE
                return total > 0 ? .done(total) : .wouldBlock
            }
            if e == SSL_ERROR_ZERO_RETURN {
                failed = true // the peer closed: nothing to answer
                return .done(total)
            }
            if total > 0 { return .done(total) } // the error surfaces on the next call
            failed = true
            if e == SSL_ERROR_SYSCALL && errno == 0 { return .done(0) }
            let err = TLSError(call: "SSL_read", detail: TLSError.queue(errno: e == SSL_ERROR_SYSCALL ? errno : 0))
            lastError = err.description
            throw err
        }
        return .done(total)
    }

    /// Writes up to `count` bytes as TLS records (at least one record's worth when it can).
    @inline(__always)
    public func write(_ buf: UnsafeRawPointer, _ count: Int) throws(TLSError) -> IOResult<Int> {
        if count == 0 { return .done(0) }
        var n = 0
        lb_err_clear()
        let r = SSL_write_ex(ssl, buf, count, &n)
        if r == 1 { return .done(n) }
        writeWantsRead = SSL_get_error(ssl, r) == SSL_ERROR_WANT_READ
        if sock.pointee.drained != 0 && writeWantsRead {
            // A write that needs the peer's bytes (never in practice: renegotiation is off) must
            // not wait on a stale "drained".
            sock.pointee.drained = 0
            lb_err_clear()
            let r = SSL_write_ex(ssl, buf, count, &n)
            if r == 1 { return .done(n) }
            return try blocked(r, "SSL_write")
        }
        return try blocked(r, "SSL_write")
    }

    /// Writes two buffers as one stream. While the first is short, both leave in one record
    /// (copied into a per-thread scratch buffer): a response head and its first body bytes cost
    /// one record and one `send`, as `writev` does on TCP. Retries present at least as many bytes
    /// as the blocked call did, as OpenSSL requires.
    @inline(__always)
    public func writev(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) throws(TLSError) -> IOResult<Int> {
        if b.isEmpty { return try a.isEmpty ? .done(0) : write(a.baseAddress!, a.count) }
        if a.isEmpty { return try write(b.baseAddress!, b.count) }
        let record = TLSStream.recordSize
        if a.count >= record { return try write(a.baseAddress!, a.count) }
        let scratch = TLSStream.scratch()
        let fromB = min(b.count, record - a.count)
        scratch.copyMemory(from: a.baseAddress!, byteCount: a.count)
        (scratch + a.count).copyMemory(from: b.baseAddress!, byteCount: fromB)
        return try write(scratch, a.count + fromB)
    }

    /// Sends close_notify once (best effort, never waits for the peer's), unless the connection
    /// failed or never completed its handshake.
    public func shutdown() {
        guard established && !failed else {
            SSL_set_quiet_shutdown(ssl, 1)
            return
        }
        ERR_clear_error()
        _ = SSL_shutdown(ssl)
        ERR_clear_error()
    }

    // MARK: connection facts for variables

    /// `TLSv1.3`, `TLSv1.2`, …
    public var protocolName: String { String(cString: SSL_get_version(ssl)) }
    /// The negotiated cipher (OpenSSL's name).
    public var cipherName: String {
        guard let c = SSL_get_current_cipher(ssl), let n = SSL_CIPHER_get_name(c) else { return "" }
        return String(cString: n)
    }
    /// The name the client sent in SNI, or nil.
    public var serverName: String? {
        guard let n = SSL_get_servername(ssl, Int32(TLSEXT_NAMETYPE_host_name)) else { return nil }
        return String(cString: n)
    }
    /// The SNI name the session was first established under (differs from `serverName` when a
    /// client resumes, on one server, a session made on another).
    public var sessionServerName: String? {
        guard let sess = SSL_get_session(ssl), let n = SSL_SESSION_get0_hostname(sess) else { return nil }
        return String(cString: n)
    }
    /// Whether the session was resumed (session id or ticket).
    public var sessionReused: Bool { lb_SSL_session_reused(ssl) == 1 }
    /// The session id in hex (TLS 1.2 session ids; TLS 1.3 reports its ticket session's id).
    public var sessionID: String {
        guard let sess = SSL_get_session(ssl) else { return "" }
        var len: UInt32 = 0
        guard let p = SSL_SESSION_get_id(sess, &len) else { return "" }
        return hex(UnsafeRawBufferPointer(start: p, count: Int(len)))
    }
    /// ALPN chose h2: the connection speaks HTTP/2.
    public var alpnIsH2: Bool {
        var p: UnsafePointer<UInt8>? = nil
        var len: UInt32 = 0
        SSL_get0_alpn_selected(ssl, &p, &len)
        guard let p, len == 2 else { return false }
        return p[0] == UInt8(ascii: "h") && p[1] == UInt8(ascii: "2")
    }

    /// The protocol chosen by ALPN (`http/1.1`), or empty.
    public var alpnProtocol: String {
        var p: UnsafePointer<UInt8>? = nil
        var len: UInt32 = 0
        SSL_get0_alpn_selected(ssl, &p, &len)
        guard let p, len > 0 else { return "" }
        return String(decoding: UnsafeBufferPointer(start: p, count: Int(len)), as: UTF8.self)
    }

    // MARK: the client's certificate (mTLS)

    /// nginx's `$ssl_client_verify`: `NONE`, `SUCCESS`, or `FAILED:reason`.
    public var clientVerify: String {
        guard let cert = SSL_get1_peer_certificate(ssl) else { return "NONE" }
        X509_free(cert)
        let r = SSL_get_verify_result(ssl)
        if r == X509_V_OK { return "SUCCESS" }
        return "FAILED:" + String(cString: X509_verify_cert_error_string(r))
    }

    /// Whether the client sent a certificate, and the verification's result code (X509_V_OK = 0).
    public var clientCertificateResult: (present: Bool, code: Int) {
        guard let cert = SSL_get1_peer_certificate(ssl) else { return (false, 0) }
        X509_free(cert)
        return (true, SSL_get_verify_result(ssl))
    }

    /// The client certificate's subject or issuer in RFC 2253 form (`CN=client,O=Test`).
    public func clientName(issuer: Bool) -> String {
        withPeer { cert in
            guard let name = issuer ? X509_get_issuer_name(cert) : X509_get_subject_name(cert) else { return "" }
            return bioString { bio in _ = X509_NAME_print_ex(bio, name, 0, lb_xn_flag_rfc2253()) }
        }
    }

    /// The client certificate's serial number in hex.
    public var clientSerial: String {
        withPeer { cert in bioString { bio in _ = i2a_ASN1_INTEGER(bio, X509_get_serialNumber(cert)) } }
    }

    /// SHA-1 of the client certificate (DER), lowercase hex, as nginx.
    public var clientFingerprint: String {
        withPeer { cert in
            var md = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
            var len: UInt32 = 0
            guard X509_digest(cert, EVP_sha1(), &md, &len) == 1 else { return "" }
            return hex(UnsafeRawBufferPointer(start: md, count: Int(len))).lowercased()
        }
    }

    /// The client certificate in PEM.
    public var clientPEM: String {
        withPeer { cert in bioString { bio in _ = PEM_write_bio_X509(bio, cert) } }
    }

    private func withPeer(_ body: (OpaquePointer) -> String) -> String {
        guard let cert = SSL_get1_peer_certificate(ssl) else { return "" }
        defer { X509_free(cert) }
        return body(cert)
    }

    private func bioString(_ write: (OpaquePointer) -> Void) -> String {
        guard let bio = BIO_new(BIO_s_mem()) else { return "" }
        defer { BIO_free(bio) }
        write(bio)
        var p: UnsafeMutablePointer<CChar>? = nil
        let n = BIO_ctrl(bio, BIO_CTRL_INFO, 0, &p)
        guard let p, n > 0 else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: p, count: n), as: UTF8.self)
    }

    // MARK: internals

    /// The largest TLS record's plaintext: the coalescing limit of `writev`.
    static let recordSize = 16384

    nonisolated(unsafe) static var scratchKey: pthread_key_t = {
        var k = pthread_key_t()
        pthread_key_create(&k) { free($0) }
        return k
    }()

    /// One record-sized buffer per thread (each event loop has its own), made on first use.
    @inline(__always)
    static func scratch() -> UnsafeMutableRawPointer {
        let key = scratchKey
        if let p = pthread_getspecific(key) { return p }
        let p = malloc(recordSize)!
        pthread_setspecific(key, p)
        return p
    }

    private func blocked<T>(_ r: Int32, _ call: String) throws(TLSError) -> IOResult<T> {
        let e = SSL_get_error(ssl, r)
        if e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE { return .wouldBlock }
        failed = true
        let err = TLSError(call: call, detail: TLSError.queue(errno: e == SSL_ERROR_SYSCALL ? errno : 0))
        lastError = err.description
        throw err
    }

    private func hex(_ b: UnsafeRawBufferPointer) -> String {
        let digits = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(b.count * 2)
        for x in b {
            out.append(digits[Int(x >> 4)])
            out.append(digits[Int(x & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// A TLS failure, in nginx's words: `SSL_do_handshake() failed (SSL: error:0A00006B:SSL
/// routines::bad key share)`.
public struct TLSError: Error, CustomStringConvertible, Sendable {
    public let call: String
    public let detail: String

    public init(call: String, detail: String) {
        self.call = call
        self.detail = detail
    }

    public var description: String { "\(call)() failed\(detail.isEmpty ? "" : " (\(detail))")" }

    /// Drains OpenSSL's error queue of this thread into `SSL: error:… error:…` (or the errno).
    public static func queue(errno e: Int32 = 0) -> String {
        var parts: [String] = []
        var buf = [CChar](repeating: 0, count: 512)
        while lb_err_next(&buf, buf.count) != 0 {
            parts.append(String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        if parts.isEmpty {
            return e != 0 ? "\(e): \(String(cString: strerror(e)))" : ""
        }
        return "SSL: " + parts.joined(separator: " ")
    }
}
