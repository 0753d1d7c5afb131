import COpenSSL
import Glibc
import LBConfig
import LBHTTP
import LBIO

/// The TLS side of a client connection on a `listen … ssl` address: the handshake (before the
/// first request head), plain HTTP sent to the TLS port (nginx's 497), client certificates
/// (495/496) and the `$ssl_*` variables.
extension ClientConnection {
    /// Makes the connection TLS before it starts: the handshake runs first, with the listener's
    /// default server's context until SNI selects another.
    func startTLS(_ l: TLSListener) {
        state = .handshake
        guard let s = TLSStream(context: l.defaultContext.ctx, fd: fd, appData: Unmanaged.passUnretained(l).toOpaque()) else {
            worker.runtime.errorLog.log(.alert, "SSL_new() failed (\(TLSError.queue()))", connection: number, worker: worker.index)
            return // no stream: `driveHandshake` closes
        }
        transport = .tls(s)
    }

    /// Advances the handshake as far as the socket allows; on success the connection reads its
    /// first request head. The deadline is `client_header_timeout`, set at start, as in nginx.
    func driveHandshake() {
        guard let s = transport.tls else {
            close()
            return
        }
        if !s.established && !s.detected {
            // nginx's test: a first byte that cannot start a TLS record means plain HTTP.
            var b: UInt8 = 0
            let n = recv(fd, &b, 1, Int32(MSG_PEEK))
            if n < 0 {
                if errno == EAGAIN || errno == EINTR { return }
                close()
                return
            }
            if n == 0 {
                close()
                return
            }
            if b != 0x16 && b & 0x80 == 0 {
                transport = .tcp
                state = .head
                readable = true
                driveAgain = true
                return
            }
            s.detected = true
        }
        do {
            switch try s.handshake() {
            case .done:
                if s.alpnIsH2 { return becomeH2() } // ALPN chose h2: an HTTP/2 session takes the socket
                s.keepBuffersWhileBusy()
                if s.serverName != nil { applyConnectionServerLimits() }
                state = .head
                readable = true
                driveAgain = true
            case .wouldBlock:
                return
            }
        } catch {
            let el = worker.runtime.errorLog
            if el.enabled(.info) {
                el.log(.info, "\(error) while SSL handshaking, client: \(peer.ip), server: \(table.listeners[listener].address)",
                       connection: number, worker: worker.index)
            }
            close()
        }
    }

    /// The connection waits for its next request with nothing buffered: OpenSSL's record buffers
    /// (about 17 KB to read, as much to write) go back to the allocator, so an idle keep-alive
    /// connection holds only its session and keys. The next read or write allocates them again.
    @inline(__always)
    func releaseIdleTLSBuffers() {
        if case .tls(let s) = transport { s.releaseBuffers() }
    }

    /// What a request on a TLS address must be refused with before routing, as nginx does: 497
    /// (plain HTTP), 421 (a Host other than the SNI name on a server that verifies clients), 495
    /// (the client certificate failed verification), 496 (`ssl_verify_client on` and none was
    /// sent). Nil: go on.
    func tlsRequestRefusal() -> Int? {
        guard transport.hasTLS else {
            log(.info, "client sent plain HTTP request to HTTPS port")
            return 497
        }
        // The usual case, a server that does not verify clients, without taking the TLS stream.
        let index = ex.server.index
        let contexts = table.tls
        guard index < contexts.count, let ctx = contexts[index], ctx.verifyClient != .off, let s = transport.tls else { return nil }
        // A Host other than the SNI name must not reach a server that verifies clients: its
        // verification happened (or not) under another server's settings.
        if let sni = s.serverName, let h = req.host {
            var host = head.readableBytes[h].map { ASCII.lower($0) }
            if host.first != UInt8(ascii: "["), let colon = host.firstIndex(of: UInt8(ascii: ":")) { host.removeSubrange(colon...) }
            while host.last == UInt8(ascii: ".") { host.removeLast() }
            if host != Array(sni.lowercased().utf8) {
                log(.info, "client attempted to request the server name different from the one that was negotiated")
                return 421
            }
        }
        // A session resumed from another server's handshake carries that server's verdict.
        if s.sessionReused && s.sessionServerName?.lowercased() != s.serverName?.lowercased() {
            log(.info, "client resumed a TLS session of another server name")
            return 421
        }
        let (present, code) = s.clientCertificateResult
        if present && code != 0 /* X509_V_OK */ && !(ctx.verifyClient == .optionalNoCA && ClientConnection.optionalVerifyErrors.contains(code)) {
            log(.info, "client SSL certificate verify error: (\(code):\(s.clientVerify.dropFirst(7)))")
            return 495
        }
        if ctx.verifyClient == .on && !present {
            log(.info, "client sent no required SSL certificate")
            return 496
        }
        return nil
    }

    /// Verification failures `optional_no_ca` lets through (an unknown or self-signed issuer).
    /// X509_V_ERR_: UNABLE_TO_GET_ISSUER_CERT (2), DEPTH_ZERO_SELF_SIGNED_CERT (18),
    /// SELF_SIGNED_CERT_IN_CHAIN (19), UNABLE_TO_GET_ISSUER_CERT_LOCALLY (20),
    /// UNABLE_TO_VERIFY_LEAF_SIGNATURE (21), CERT_UNTRUSTED (27).
    static let optionalVerifyErrors: Set<Int> = [2, 18, 19, 20, 21, 27]

    /// Answers 495/496/497: through `error_page` when one names the code, else nginx's 400 page
    /// with the reason. The connection closes after it, as nginx's does.
    func respondTLSRefusal(_ code: Int) {
        closeAfterResponse = true
        if code == 421 {
            respondError(421)
            return
        }
        if let pages = settings.errorPages, pages.contains(where: { $0.codes.contains(code) }) {
            respondError(code)
            return
        }
        respond(400, contentType: "text/html", body: Status.specialPage(code, serverTokens: settings.resolved.serverTokens))
    }

    /// `$ssl_*`: empty on plain HTTP, as nginx.
    func appendTLSVariable(_ v: Variable, to out: inout [UInt8]) {
        guard let s = transport.tls else { return }
        let text: String
        switch v {
        case .sslProtocol: text = s.protocolName
        case .sslCipher: text = s.cipherName
        case .sslServerName: text = s.serverName ?? ""
        case .sslSessionReused: text = s.sessionReused ? "r" : "."
        case .sslSessionID: text = s.sessionID
        case .sslAlpnProtocol: text = s.alpnProtocol
        case .sslClientVerify: text = s.clientVerify
        case .sslClientSDN: text = s.clientName(issuer: false)
        case .sslClientIDN: text = s.clientName(issuer: true)
        case .sslClientSerial: text = s.clientSerial
        case .sslClientFingerprint: text = s.clientFingerprint
        case .sslClientEscapedCert: text = ClientConnection.escapeComponent(s.clientPEM)
        case .sslClientCert:
            // nginx's deprecated form: every line after the first starts with a tab.
            var pem = s.clientPEM
            if pem.hasSuffix("\n") { pem.removeLast() }
            text = pem.replacing("\n", with: "\n\t")
        default: return
        }
        out += Array(text.utf8)
    }

    /// Percent-encodes everything but unreserved characters (nginx's NGX_ESCAPE_URI_COMPONENT).
    static func escapeComponent(_ s: String) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.append(b)
            default:
                out += [UInt8(ascii: "%"), hex[Int(b >> 4)], hex[Int(b & 15)]]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

extension TLSStream {
    /// Keeps OpenSSL's record buffers from one read or write to the next while the connection is
    /// busy (the contexts set `SSL_MODE_RELEASE_BUFFERS`, which frees the read buffer whenever it
    /// empties and the write buffer after every write, and allocates them again for the next
    /// call); `releaseBuffers` frees them when the connection goes idle instead.
    func keepBuffersWhileBusy() {
        _ = lb_SSL_clear_mode(ssl, Int(SSL_MODE_RELEASE_BUFFERS))
    }

    /// Frees the read and write record buffers (`SSL_free_buffers`). OpenSSL refuses, harmlessly
    /// (false), while either holds bytes: a record read ahead or not yet consumed, a write not
    /// yet sent.
    @inline(__always) @discardableResult
    func releaseBuffers() -> Bool {
        SSL_free_buffers(ssl) == 1
    }
}
