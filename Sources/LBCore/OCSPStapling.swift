import Glibc
import LBConfig
import LBIO

/// Fetches OCSP responses for `ssl_stapling on` without `ssl_stapling_file` (nginx's
/// `ngx_ssl_stapling_update` and `ngx_ssl_ocsp_request`…`_verify`). One dispatcher thread per
/// process waits for staples that handshakes found due and gives each fetch a thread of its own
/// (fetches run side by side, as nginx's do on its event loop); a fetch blocks only its thread —
/// DNS through the `resolver` with `resolver_timeout`, then an HTTP/1.0 GET with nginx's 60 s
/// connect, send and read timeouts (poll) — and publishes the response under the staple's lock.
/// No worker loop ever waits for a responder.
struct OCSPFetcher: Sendable {
    let log: ErrorLogger
    let dnsStats: DNSStats
    /// nginx's `staple->timeout`: connecting, sending and each wait for the answer.
    static let timeoutMs: Int32 = 60_000
    /// nginx reads the answer into one 16 KiB buffer.
    static let maxResponse = 16384

    func run() {
        while true {
            let staple = OCSPFetchQueue.next()
            do throws(Threads.StartError) {
                try Threads.start { [self] in fetch(staple) }
            } catch {
                log.log(.alert, "\(error) while requesting certificate status, certificate: \"\(staple.name)\"")
                staple.finish(nil, now: wallClock().seconds)
            }
        }
    }

    /// nginx's log context: `while requesting certificate status, responder: H, peer: A, certificate: "F"`.
    final class Context {
        let staple: OCSPStaple
        let log: ErrorLogger
        var peer: String?
        init(_ s: OCSPStaple, _ log: ErrorLogger) { staple = s; self.log = log }
        func say(_ level: ErrorLog.Level, _ m: String) {
            var line = m + " while requesting certificate status, responder: \(staple.responder.host)"
            if let peer { line += ", peer: \(peer)" }
            line += ", certificate: \"\(staple.name)\""
            log.log(level, line)
        }
    }

    func fetch(_ staple: OCSPStaple) {
        let c = Context(staple, log)
        let outcome = answer(staple, c).flatMap { code, body -> (response: [UInt8], valid: Int)? in
            switch staple.check(code: code, body: body) {
            case .success(let valid): return (body, valid)
            case .failure(let r):
                if let level = r.level { c.say(level, r.message) }
                return nil
            }
        }
        staple.finish(outcome, now: wallClock().seconds)
    }

    /// The responder's status and body, or nil (logged) when no address gave a whole answer.
    func answer(_ staple: OCSPStaple, _ c: Context) -> (Int, [UInt8])? {
        let request: [UInt8]
        switch staple.requestDER() {
        case .success(let der): request = staple.responder.request(der: der)
        case .failure(let m):
            c.say(.crit, m.message)
            return nil
        }
        guard let ips = addresses(staple, c) else { return nil }
        for ip in ips {
            guard let addr = SocketAddress(ip: ip, port: staple.responder.port) else { continue }
            c.peer = addr.description
            switch exchange(addr, request, c) {
            case .answer(let code, let body): return (code, body)
            case .next: continue
            case .stop: return nil
            }
        }
        return nil
    }

    /// The responder's addresses: an IP literal as is; a name through the server's `resolver`,
    /// else (nginx's warning) the addresses it had at load.
    func addresses(_ staple: OCSPStaple, _ c: Context) -> [String]? {
        let host = staple.responder.host
        if isIPLiteral(host) { return [host] }
        guard let spec = staple.resolver else {
            c.say(.warn, "no resolver defined to resolve \(host)")
            return staple.responder.addresses
        }
        let servers = spec.servers.compactMap { SocketAddress(ip: $0.host, port: $0.port ?? 53) }
        let transport = UDPTransport(servers: servers, timeoutMs: spec.timeoutMs, stats: dnsStats)
        let resolver = DNSResolver(transport: transport, validMs: spec.validMs, ipv4: spec.ipv4, ipv6: spec.ipv6, stats: dnsStats,
                                   now: { monotonicMillis() })
        switch resolver.addresses(host) {
        case .success(let r) where !r.ips.isEmpty: return r.ips
        case .success: c.say(.error, "\(host) could not be resolved (3: Host not found)")
        case .failure(let e): c.say(.error, "\(host) could not be resolved \(e)")
        }
        return nil
    }

    enum Exchange {
        case answer(code: Int, body: [UInt8])
        /// This address failed (logged): try the next one.
        case next
        /// Give up (logged).
        case stop
    }

    static func errnoText(_ e: Int32) -> String { "(\(e): \(String(cString: strerror(e))))" }

    /// One HTTP/1.0 exchange with one address, nginx's steps and log lines: `connect() to A
    /// failed`, `recv() failed`, `send() failed`, `OCSP responder timed out`, `OCSP responder
    /// prematurely closed connection`, `OCSP responder sent invalid response`. As on nginx's
    /// event loop, readability is looked at before writability, so a refused connection shows
    /// as `recv() failed (111: Connection refused)`.
    func exchange(_ addr: SocketAddress, _ request: [UInt8], _ c: Context) -> Exchange {
        let fd = socket(addr.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else {
            c.say(.alert, "socket() failed \(OCSPFetcher.errnoText(errno))")
            return .stop
        }
        defer { close(fd) }
        var a = addr
        let r = withUnsafePointer(to: &a.storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, a.length) }
        }
        if r != 0 && errno != EINPROGRESS {
            c.say(.error, "connect() to \(addr) failed \(OCSPFetcher.errnoText(errno))")
            return .next
        }
        var sent = 0
        var response: [UInt8] = []
        var headDone = false
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            var p = pollfd(fd: fd, events: Int16(POLLIN) | (sent < request.count ? Int16(POLLOUT) : 0), revents: 0)
            let n = poll(&p, 1, OCSPFetcher.timeoutMs)
            if n < 0 {
                if errno == EINTR { continue }
                c.say(.alert, "poll() failed \(OCSPFetcher.errnoText(errno))")
                return .stop
            }
            if n == 0 {
                c.say(.error, "OCSP responder timed out (110: Connection timed out)")
                return .next
            }
            if p.revents & Int16(POLLIN | POLLERR | POLLHUP) != 0 {
                // nginx's read handler: read until EAGAIN, an error or the end.
                var ended = false
                while true {
                    let room = min(chunk.count, OCSPFetcher.maxResponse - response.count)
                    if room == 0 { ended = true; break }
                    let got = recv(fd, &chunk, room, 0)
                    if got > 0 {
                        response += chunk[0..<got]
                        if !headDone {
                            switch OCSPHTTPHead.parse(response) {
                            case .incomplete: break
                            case .complete: headDone = true
                            case .invalid(let m):
                                c.say(.error, m)
                                return .next
                            }
                        }
                        continue
                    }
                    if got == 0 { ended = true; break }
                    if errno == EINTR { continue }
                    if errno == EAGAIN || errno == EWOULDBLOCK { break }
                    c.say(.error, "recv() failed \(OCSPFetcher.errnoText(errno))")
                    ended = true
                    break
                }
                if ended {
                    if case .complete(let code, let start) = OCSPHTTPHead.parse(response) {
                        return .answer(code: code, body: Array(response[start...]))
                    }
                    c.say(.error, "OCSP responder prematurely closed connection")
                    return .next
                }
            }
            if sent < request.count && p.revents & Int16(POLLOUT) != 0 {
                let w = request.withUnsafeBytes { send(fd, $0.baseAddress! + sent, request.count - sent, Int32(MSG_NOSIGNAL)) }
                if w > 0 {
                    sent += w
                } else if w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR {
                    c.say(.error, "send() failed \(OCSPFetcher.errnoText(errno))")
                    return .next
                }
            }
        }
    }
}

extension Runtime {
    /// Starts the OCSP fetcher once, when a loaded configuration staples by fetching (at start
    /// and after each reload; a reload needs nothing else: contexts kept by it keep their
    /// responses, rebuilt ones start with the response of the staple they replace).
    func startOCSPStapling() {
        guard OCSPStaple.configured.load(ordering: .relaxed), !OCSPFetchQueue.running.exchange(true, ordering: .relaxed) else { return }
        let fetcher = OCSPFetcher(log: errorLog, dnsStats: dnsStats)
        do throws(Threads.StartError) {
            try Threads.start { fetcher.run() }
        } catch {
            OCSPFetchQueue.running.store(false, ordering: .relaxed)
            errorLog.log(.alert, "\(error): no OCSP fetcher thread; \"ssl_stapling\" staples nothing")
        }
    }
}
