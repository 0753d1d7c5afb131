import COpenSSL
import Glibc
import LBConfig
import LBIO

/// TLS to upstreams (`proxy_pass https://…`, nginx's ngx_http_upstream_ssl_*): the handshake
/// is part of connecting (under `proxy_connect_timeout`, as in nginx), driven by the same
/// readiness events; a failed handshake or verification is a connect error, so it fails over to
/// the next peer and ends in 502 when none is left.
extension ClientConnection {
    /// Gives a new upstream connection its TLS stream when the target is `https://`. False
    /// (after failing the try) when OpenSSL cannot make one.
    func startUpstreamTLS(_ c: UpstreamConnection, _ t: ProxyTarget) -> Bool {
        guard let tls = t.tls else { return true }
        c.upstreamTLS = tls
        let name = upstreamTLSName(t, tls)
        let address = ex.attempt.peerText
        guard let s = TLSStream(clientContext: tls.ctx, fd: c.fd, prepare: { ssl in tls.prepare(ssl, address: address, name: name) }) else {
            upstreamFailed(.error("SSL_new() failed (\(TLSError.queue())) while SSL handshaking to upstream"))
            return false
        }
        c.transport = .tls(s)
        return true
    }

    /// Advances the upstream handshake; true once it is done and the certificate passed
    /// `proxy_ssl_verify`. False while it waits for the socket, or after failing the try.
    func driveUpstreamHandshake(_ c: UpstreamConnection) -> Bool {
        guard let s = c.transport.tls, let t = ex.target, let tls = t.tls else { return true }
        if s.established { return true }
        do {
            guard case .done = try s.handshake() else { return false }
        } catch {
            upstreamFailed(.error("\(error) while SSL handshaking to upstream"))
            return false
        }
        if let problem = tls.verdict(s.ssl, name: upstreamTLSName(t, tls)) {
            upstreamFailed(.error("\(problem) while SSL handshaking to upstream"))
            return false
        }
        return true
    }

    /// `proxy_ssl_name` (default `$proxy_host`), without a port, as nginx.
    func upstreamTLSName(_ t: ProxyTarget, _ tls: UpstreamTLS) -> String {
        UpstreamTLS.nameWithoutPort(tls.name.map { String(decoding: evaluate($0), as: UTF8.self) } ?? t.hostHeader)
    }
}
