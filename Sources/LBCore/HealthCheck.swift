import Glibc
import LBConfig
import LBHTTP
import LBIO

/// Active health checks (`health_check` in an upstream): one probe per peer, run on a worker's
/// event loop (peers are spread over the workers), first runs spread over the interval so the
/// peers are not all probed at once. A probe connects, sends `GET uri`, reads the response (at most
/// 64 KiB) and judges it by the `match` block (default: status 200–399). Results go into the
/// shared balancer state under its lock, so every worker sees a state change at once.
///
/// The probes of an upstream that is proxied to over `https://` speak TLS with that location's
/// `proxy_ssl_*` client settings (see `HealthProbeScheme`): the handshake, driven by the same
/// readiness events, and the certificate's verdict come before the request; a failed handshake
/// or verification is a failed probe.
final class HealthProbe: Pollable {
    unowned(unsafe) let worker: Worker
    let runtime: UpstreamRuntime
    let peer: Int
    let spec: HealthCheck
    /// The `match` block as the newest configuration has it: a reload that keeps the upstream
    /// (same peers, same `health_check` line) keeps its probes, while the block may have changed.
    var match: MatchBlock? { spec.match.flatMap { worker.generation.table.matches[$0] } }
    let address: SocketAddress
    let text: String
    let request: [UInt8]
    var buf: [UInt8] = []
    var sent = 0
    var connected = false
    var inFlight = false
    var started: Int64 = 0
    /// How probes speak to the peer (plain, or TLS with a location's settings), as the current
    /// generation says; looked up again when a reload installs a new one (a kept upstream keeps
    /// its probes, while the locations' `proxy_ssl_*` settings may have changed).
    var scheme = HealthProbeScheme.Choice()
    var schemeGeneration = -1
    /// The probe's TLS stream while one is open (over `fd`).
    var stream: TLSStream?
    /// The address as text, for the TLS client's session slot (the proxy's, for the same peer).
    let addressText: String
    static let maxResponse = 64 * 1024

    init(worker: Worker, runtime: UpstreamRuntime, peer: Int, spec: HealthCheck) {
        self.worker = worker
        self.runtime = runtime
        self.peer = peer
        self.spec = spec
        let (addr, p, text) = runtime.balancer.withLock { ($0.peers[peer].address, $0.peers[peer].config, $0.peers[peer].text) }
        var a = addr
        self.text = text
        if let port = spec.port, let alt = SocketAddress(ip: p.address.host, port: port) { a = alt }
        address = a
        addressText = spec.port.map { p.address.host.contains(":") ? "[\(p.address.host)]:\($0)" : "\(p.address.host):\($0)" } ?? text
        let host = p.address.isUnix ? "localhost" : p.address.port.map { "\(p.address.host):\($0)" } ?? p.address.host
        request = Array("GET \(spec.uri) HTTP/1.1\r\nHost: \(host)\r\nUser-Agent: lb-health-check/\(LBVersion.number)\r\nAccept: */*\r\nConnection: close\r\n\r\n".utf8)
        super.init()
        fd = -1
    }

    /// Schedules the first probe `offsetMs` from now.
    func start(offsetMs: Int) {
        worker.loop.schedule(afterMillis: offsetMs) { [self] in probe() }
    }

    func probe() {
        if runtime.retired.load(ordering: .relaxed) { return }
        let peer = self.peer
        if runtime.balancer.withLock({ $0.peers[peer].removed }) { return }
        let gen = worker.runtime.current
        if gen.id != schemeGeneration, let u = gen.upstreams.firstIndex(where: { $0 === runtime }) {
            schemeGeneration = gen.id
            scheme = HealthProbeScheme.choose(gen.table, upstream: u)
        }
        buf.removeAll(keepingCapacity: true)
        sent = 0
        connected = false
        inFlight = true
        started = monotonicMicros()
        do {
            let (fd, immediate) = try Socket.connect(address)
            self.fd = fd
            try worker.loop.register(self, events: EventLoop.readable | EventLoop.writable | EventLoop.edge | EventLoop.hangup)
            worker.loop.setDeadline(self, afterMillis: spec.timeoutMs)
            if immediate {
                connected = true
                advance(readable: false)
            }
        } catch {
            finish(ok: false, detail: "connect() failed (\(error.errno): \(String(cString: strerror(error.errno))))")
        }
    }

    override func ready(_ events: UInt32) {
        guard inFlight else { return }
        if !connected && events & (EventLoop.writable | EventLoop.error | EventLoop.hangup) != 0 {
            let err = Socket.pendingError(fd)
            if err != 0 {
                finish(ok: false, detail: "connect() failed (\(err): \(String(cString: strerror(err))))")
                return
            }
            connected = true
        }
        if connected { advance(readable: events & (EventLoop.readable | EventLoop.hangup) != 0) }
    }

    /// After the connection is made: the TLS handshake (when the probe speaks TLS), then the
    /// request, then the response as it comes.
    func advance(readable: Bool) {
        var readable = readable
        if let tls = scheme.tls {
            if stream == nil && !startTLS(tls) { return }
            if let s = stream, !s.established {
                guard handshake(s, tls) else { return }
                readable = true // OpenSSL may hold bytes already; a read that finds none is cheap
            }
        }
        if sent < request.count { send() }
        if inFlight && (readable || stream != nil) { receive() }
    }

    /// The TLS client stream on the connected socket, with the location's context, SNI and
    /// the peer's session to resume (shared with the proxy's connections to the same peer).
    func startTLS(_ tls: UpstreamTLS) -> Bool {
        let name = scheme.name
        let address = addressText
        guard let s = TLSStream(clientContext: tls.ctx, fd: fd, prepare: { ssl in tls.prepare(ssl, address: address, name: name) }) else {
            finish(ok: false, detail: "SSL_new() failed (\(TLSError.queue())) while SSL handshaking")
            return false
        }
        stream = s
        return true
    }

    /// One handshake step; true once the handshake is done and the certificate passed
    /// `proxy_ssl_verify` (the same verdict as the proxy's). False while it waits, or after
    /// failing the probe.
    func handshake(_ s: TLSStream, _ tls: UpstreamTLS) -> Bool {
        do {
            guard case .done = try s.handshake() else { return false }
        } catch {
            finish(ok: false, detail: "\(error) while SSL handshaking")
            return false
        }
        if let problem = tls.verdict(s.ssl, name: scheme.name) {
            finish(ok: false, detail: "\(problem) while SSL handshaking")
            return false
        }
        return true
    }

    override func timedOut() {
        guard inFlight else { return }
        let during = !connected ? " while connecting" : stream.map { $0.established ? "" : " while SSL handshaking" } ?? ""
        finish(ok: false, detail: "timed out after \(spec.timeoutMs) ms\(during)")
    }

    func send() {
        while sent < request.count {
            let r: IOResult<Int>?
            if let s = stream {
                do {
                    r = try request.withUnsafeBytes { p throws(TLSError) in try s.write(p.baseAddress! + sent, p.count - sent) }
                } catch {
                    finish(ok: false, detail: "\(error)")
                    return
                }
            } else {
                r = request.withUnsafeBytes { p in try? Socket.write(fd, p.baseAddress! + sent, p.count - sent) }
            }
            switch r {
            case .done(let n)?: sent += n
            case .wouldBlock?: return
            case nil:
                finish(ok: false, detail: "send() failed")
                return
            }
        }
    }

    /// One read from the socket or the TLS stream: nil on an error (a TLS error's words kept
    /// in `tlsError` for the verdict).
    func read(_ p: UnsafeMutableRawBufferPointer) -> IOResult<Int>? {
        guard let s = stream else { return try? Socket.read(fd, p.baseAddress!, p.count) }
        do { return try s.read(p.baseAddress!, p.count) } catch {
            tlsError = error.description
            return nil
        }
    }
    var tlsError = ""

    func receive() {
        var chunk = [UInt8](repeating: 0, count: 16384)
        while inFlight {
            let r = chunk.withUnsafeMutableBytes { p in read(p) }
            switch r {
            case .done(0)?:
                evaluate(complete: true)
                return
            case .done(let n)?:
                buf += chunk[0..<n]
                if buf.count >= HealthProbe.maxResponse || responseComplete() {
                    evaluate(complete: true)
                    return
                }
            case .wouldBlock?:
                return
            case nil:
                if !buf.isEmpty {
                    evaluate(complete: true)
                } else {
                    finish(ok: false, detail: stream == nil ? "recv() failed (connection reset)" : tlsError)
                }
                return
            }
        }
    }

    /// Whether a Content-Length response has arrived whole (no need to wait for the close).
    func responseComplete() -> Bool {
        buf.withUnsafeBytes { b in
            var scanner = HeadScanner(maxFirstLine: 8192, maxHeaderLine: 8192, maxHead: 32768)
            guard let end = try? scanner.scan(b, isRequest: false), let h = try? HeadParser.response(b, start: 0, end: end),
                  let cl = h.contentLength else { return false }
            return b.count - end >= cl
        }
    }

    func evaluate(complete: Bool) {
        let verdict: (Bool, String) = buf.withUnsafeBytes { b in
            var scanner = HeadScanner(maxFirstLine: 8192, maxHeaderLine: 8192, maxHead: 32768)
            guard let end = try? scanner.scan(b, isRequest: false), let h = try? HeadParser.response(b, start: 0, end: end) else {
                return (false, b.isEmpty ? "connection closed without a response" : "invalid response header")
            }
            let status = h.status
            let statusOK = match?.statusPasses(status) ?? (200...399).contains(status)
            if !statusOK { return (false, "status \(status)") }
            if let m = match {
                for (name, test) in m.headers {
                    var value: String?
                    for f in h.headers where String(decoding: b[f.name], as: UTF8.self).lowercased() == name {
                        value = String(decoding: b[f.value], as: UTF8.self)
                    }
                    let pass: Bool
                    switch test {
                    case .present: pass = value != nil
                    case .absent: pass = value == nil
                    case .equals(let v): pass = value == v
                    case .notEquals(let v): pass = value != v
                    case .matches(let re): pass = value.map { re.matches($0) } ?? false
                    case .notMatches(let re): pass = !(value.map { re.matches($0) } ?? false)
                    }
                    if !pass { return (false, "header \(name) does not match") }
                }
                if let (re, negated) = m.body {
                    let body = UnsafeRawBufferPointer(rebasing: b[end...])
                    if re.matches(body) == negated { return (false, "body does not match") }
                }
            }
            return (true, "status \(status)")
        }
        finish(ok: verdict.0, detail: verdict.1)
    }

    func finish(ok: Bool, detail: String) {
        inFlight = false
        if fd >= 0 {
            worker.loop.setDeadline(self, afterMillis: 0)
            worker.loop.deregister(self)
            stream?.shutdown() // close_notify after a completed exchange
            stream = nil
            Socket.close(fd)
            fd = -1
        }
        tlsError = ""
        let micros = monotonicMicros() - started
        let wall = Int64(wallClock().seconds) * 1000 + Int64(wallClock().millis)
        let spec = self.spec, peer = self.peer
        let change = runtime.balancer.withLock {
            $0.recordCheck(peer, ok: ok, detail: detail, wallMs: wall, micros: micros, fails: spec.fails, passes: spec.passes)
        }
        let name = "upstream \"\(runtime.group.name)\" peer \(text)"
        switch change {
        case .down?: worker.runtime.errorLog.log(.warn, "\(name) is down: health check failed \(spec.fails) time(s), last: \(detail)", worker: worker.index)
        case .up?: worker.runtime.errorLog.log(.notice, "\(name) is up: health check passed (\(detail))", worker: worker.index)
        default: break
        }
        if runtime.retired.load(ordering: .relaxed) { return }
        worker.loop.schedule(afterMillis: spec.intervalMs) { [self] in probe() }
    }
}

/// How the probes of an upstream speak: `health_check` sits in the upstream block, so the
/// locations that proxy to the group say it, as NGINX Plus's `health_check` uses the settings of
/// the location it is written in. The first location, in configuration order (servers in order,
/// each server's locations depth first, a location's `if` blocks right after it), whose
/// `proxy_pass` names the group decides: `https://` makes the probes speak TLS with that
/// location's `proxy_ssl_*` settings (one client context with it, so sessions are shared with
/// its connections), `http://` plain HTTP, none found (only variables name it) plain HTTP. A
/// group proxied to over both schemes is probed as that first location says, and `mixed` tells
/// the runtime to warn once.
struct HealthProbeScheme {
    struct Choice {
        /// The TLS client context, nil: plain HTTP.
        var tls: UpstreamTLS?
        /// SNI and certificate name (`proxy_ssl_name` without a request; see `UpstreamTLS.probeName`).
        var name = ""
        /// The location block (or `if` block) that decided.
        var decidedBy: SourceLocation?
        /// Other locations proxy to the group with the other scheme.
        var mixed = false
    }

    static func choose(_ table: RoutingTable, upstream: Int) -> Choice {
        var choice = Choice()
        var seenTLS = false, seenPlain = false
        for server in table.servers {
            for loc in server.locations.all {
                for l in [loc] + (loc.rewrite?.ifLocations ?? []) {
                    guard case .proxy(let t) = l.handler, t.upstream == upstream, t.kind == .http else { continue }
                    if choice.decidedBy == nil {
                        choice.decidedBy = l.location
                        choice.tls = t.tls
                        if let tls = t.tls { choice.name = tls.probeName(proxyHost: t.hostHeader, proxyPort: t.port) }
                    }
                    if t.tls != nil { seenTLS = true } else { seenPlain = true }
                }
            }
        }
        choice.mixed = seenTLS && seenPlain
        return choice
    }
}

extension Runtime {
    /// Starts the probes of every upstream with `health_check` in `gen` that has none running yet.
    func startHealthChecks(_ gen: Generation) {
        guard !workers.isEmpty else { return }
        for rt in gen.upstreams {
            guard let spec = rt.group.healthCheck, !rt.checksStarted.exchange(true, ordering: .relaxed) else { continue }
            let n = rt.balancer.withLock { $0.peers.count }
            if let u = gen.upstreams.firstIndex(where: { $0 === rt }) {
                let scheme = HealthProbeScheme.choose(gen.table, upstream: u)
                if scheme.mixed, let at = scheme.decidedBy {
                    errorLog.log(.warn, "upstream \"\(rt.group.name)\" is proxied to over both http and https: its health checks use \(scheme.tls == nil ? "http" : "https") as the location in \(at.file):\(at.line) does")
                }
            }
            for p in 0..<n {
                // Spread the first probes over the interval (no thundering herd), the first soon.
                startProbe(rt, peer: p, table: gen.table, offsetMs: 50 + spec.intervalMs * p / max(1, n))
            }
        }
    }

    /// Starts the probe of one peer (also for a peer the API added).
    func startProbe(_ rt: UpstreamRuntime, peer p: Int, table: RoutingTable, offsetMs: Int) {
        guard let spec = rt.group.healthCheck, !workers.isEmpty else { return }
        // One probe per peer, whoever asks first (start, the API, DNS membership).
        guard rt.balancer.withLock({ core -> Bool in
            if core.peers[p].probed { return false }
            core.peers[p].probed = true
            return true
        }) else { return }
        let w = workers[(rt.id + p) % workers.count]
        w.loop.execute { [w] in
            HealthProbe(worker: w, runtime: rt, peer: p, spec: spec).start(offsetMs: offsetMs)
        }
    }
}
