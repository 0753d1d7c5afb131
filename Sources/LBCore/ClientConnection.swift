import Glibc
import LBConfig
import LBHTTP
import LBIO

/// How a message body is delimited.
enum BodyFraming {
    case none
    case length(Int)
    case chunked(ChunkedFramer)
    case untilClose
}

/// Why an upstream attempt failed (nginx's `proxy_next_upstream` conditions).
enum UpstreamFailure {
    case error(String)
    case timeout(String)
    case invalidHeader(String)
    case status(Int)

    var word: String {
        switch self {
        case .error: "error"
        case .timeout: "timeout"
        case .invalidHeader: "invalid_header"
        case .status(let s): "http_\(s)"
        }
    }

    /// The `proxy_next_upstream` / `proxy_cache_use_stale` condition it meets.
    var condition: UpstreamConditions {
        switch self {
        case .error: .error
        case .timeout: .timeout
        case .invalidHeader: .invalidHeader
        case .status(let s): .status(s)
        }
    }
}

/// One upstream attempt, for `$upstream_*` variables (several are listed comma-separated).
struct UpstreamAttempt {
    var addr: String
    var status: Int
    var time: Int64
    var connect: Int64
    var header: Int64
    var length: Int
    var sent: Int
}

/// One client connection: reads requests, routes them, answers locally or proxies, logs, and keeps
/// the connection alive. Every step is driven from epoll readiness (edge-triggered); nothing blocks.
final class ClientConnection: Pollable {
    /// The connection's lifetime: the TLS handshake, waiting for (or reading) a request head, a
    /// request in progress (what answers it is the exchange's `responder`), closed.
    enum State { case handshake, head, exchange, closed }

    /// The worker outlives every connection it owns: no reference counting on this hot field.
    unowned(unsafe) let worker: Worker
    let generation: Generation
    let listener: Int
    let peer: PeerAddress
    let number: Int
    /// The addresses of the PROXY protocol header (`listen … proxy_protocol`); nil without one.
    var proxyProtocol: ProxyProtocolHeader?
    var table: RoutingTable { generation.table }

    var state: State = .head
    /// How bytes reach the client (plain TCP, or TLS over it): all client I/O goes through it.
    var transport: Transport = .tcp
    var readable = false
    var writable = true
    var peerClosed = false
    var inBuf = Buffer()
    var outBuf = Buffer()
    var scanner = HeadScanner()
    /// The current request's head (bytes and parsed form); nil between requests, when it goes
    /// back to the worker's pool. `head` and `req` read it (empty when there is none).
    var requestHead: RequestHeadStorage.Pointer?
    // Addressors, not accessors: `req.method` is one load through the pointer, never a copy of
    // the 340-byte head nor a retain of its header list.
    /// The bytes of the current request head.
    var head: Buffer {
        unsafeAddress { UnsafePointer(RequestHeadStorage.bytes(requestHead ?? ClientConnection.noRequestHead)) }
        unsafeMutableAddress { RequestHeadStorage.bytes(requestHead ?? takeRequestHead()) }
    }
    /// The current request head as parsed (ranges into `head`).
    var req: RequestHead {
        unsafeAddress { UnsafePointer(RequestHeadStorage.parsed(requestHead ?? ClientConnection.noRequestHead)) }
        unsafeMutableAddress { RequestHeadStorage.parsed(requestHead ?? takeRequestHead()) }
    }
    /// What `head` and `req` read between requests: empty, never written.
    nonisolated(unsafe) static let noRequestHead = RequestHeadStorage.allocate()
    private func takeRequestHead() -> RequestHeadStorage.Pointer {
        let h = worker.takeRequestHead()
        requestHead = h
        return h
    }
    var requestsOnConnection = 0
    /// A mirror subrequest's connection (Mirror.swift): not logged, not counted.
    var isMirror = false
    /// The mirrors this connection's requests have in progress (Mirror.swift); nil until one.
    var mirrorCount: MirrorCount?
    /// When the connection was accepted (loop milliseconds), for `keepalive_time`.
    var acceptedMillis: Int64 = 0
    var closeAfterResponse = false
    /// Whether this request's response is under `limit_rate` (RateLimit.swift); nil until its
    /// first write. Kept here, one byte, so an unlimited write pays a single compare.
    var responseLimited: Bool?

    /// The request in progress; nil between requests (an idle connection holds none). The
    /// connection counts as writing from `beginExchange` to `endExchange` or `close`, which say
    /// so (`countWriting`); swapping one exchange for another in between (a subrequest and back,
    /// a cache background update) changes nothing counted. No property observer: it made every
    /// assignment a copy, and `endExchange`'s move impossible.
    var ex: Exchange!
    /// Whether this connection is counted in its worker's stub_status "Writing" / "Reading".
    var countedWriting = false
    var countedReading = false

    @inline(__always) func countWriting(_ now: Bool) {
        if now != countedWriting && !isMirror {
            countedWriting = now
            worker.stats.adjust(worker.stats.writing, by: now ? 1 : -1)
        }
    }

    /// A request begins with its first bytes, as nginx counts it (stub_status, metrics): a
    /// partial head counts at once, a whole one when it is parsed (`headComplete`).
    @inline(__always) func countReading(_ now: Bool) {
        if now != countedReading {
            countedReading = now
            worker.stats.adjust(worker.stats.reading, by: now ? 1 : -1)
            if now { worker.stats.adjust(worker.stats.requests, by: 1) }
        }
    }

    /// The head is complete (or refused): the request counts if its head arrived in one piece.
    @inline(__always) func headComplete() {
        if countedReading {
            countReading(false)
        } else {
            worker.stats.adjust(worker.stats.requests, by: 1)
        }
    }

    /// HEAD sent upstream as GET (`proxy_cache_convert_head`): the body is read, stored, not sent.
    var headConverted: Bool { ex.cache != nil && req.method == .head && settings.resolved.proxyCacheConvertHead }

    convenience init(worker: Worker, fd: Int32, peer: SocketAddress, generation: Generation, listener: Int, number: Int) {
        self.init(worker: worker, fd: fd, peerAddress: PeerAddress(peer), generation: generation, listener: listener, number: number)
    }

    /// `peerAddress`: an HTTP/2 stream's connection takes its session's, made once.
    init(worker: Worker, fd: Int32, peerAddress: PeerAddress, generation: Generation, listener: Int, number: Int) {
        self.worker = worker
        self.peer = peerAddress
        self.generation = generation
        self.listener = listener
        self.number = number
        super.init()
        self.fd = fd
        let large = defaultServer.settings.resolved.largeClientHeaderBuffers
        scanner = HeadScanner(maxFirstLine: large.size, maxHeaderLine: large.size, maxHead: large.count * large.size)
    }

    deinit {
        inBuf.release()
        outBuf.release()
        if let h = requestHead { RequestHeadStorage.free(h) }
    }

    /// The connection is between requests (or closing): its request head goes back to the pool.
    func releaseRequestHead() {
        if let h = requestHead {
            requestHead = nil
            worker.putRequestHead(h)
        }
    }

    /// The settings in force: the matched location's (merged from server and http). Yielded, not
    /// copied: the struct is large and read many times per request.
    var settings: HTTPSettings {
        _read { yield ex.location.settings }
    }

    /// The client as the request sees it: the address `real_ip_header` gave (from a trusted proxy),
    /// else the connection's peer. Access rules, logs, `$remote_addr` and `ip_hash` use it.
    var clientAddress: PeerAddress { ex?.realClient ?? peer }

    /// The listener's default server: its settings rule the connection until a TLS handshake
    /// names another (`connectionServer`).
    var defaultServer: VirtualServer { table.servers[table.listeners[listener].defaultServer] }

    /// The server whose settings rule the connection: after a TLS handshake, the one the SNI
    /// name selects (nginx's `hc->conf_ctx`, set by `ngx_http_ssl_servername`), else the
    /// default server — HTTP/1.1 head limits and header timeout, and an HTTP/2 session's
    /// SETTINGS, limits, keep-alive and send_timeout. Each request still picks its own server
    /// by Host (`:authority`).
    var connectionServer: VirtualServer {
        guard var name = transport.tls?.serverName?.lowercased() else { return defaultServer }
        while name.hasSuffix(".") { name.removeLast() }
        return table.server(for: listener, host: name)
    }

    /// The head limits and header timeout of `connectionServer` (after the handshake named it).
    func applyConnectionServerLimits() {
        let large = connectionServer.settings.resolved.largeClientHeaderBuffers
        scanner = HeadScanner(maxFirstLine: large.size, maxHeaderLine: large.size, maxHead: large.count * large.size)
    }

    /// Starts a fresh exchange for a request that has begun (or an error answered before one
    /// could be parsed), on the listener's default server until routing picks another.
    func beginExchange() {
        if let spare = worker.spareExchanges.popLast() {
            spare.begin(server: defaultServer, startMicros: monotonicMicros())
            ex = spare
        } else {
            ex = Exchange(server: defaultServer, startMicros: monotonicMicros())
            if var storage = worker.spareExchangeStorage.popLast() { ex.adopt(&storage) }
        }
        countWriting(state != .closed)
        state = .exchange
        responseLimited = nil
    }

    /// Ends the exchange. Held by nothing else, it is reset at once (what it holds of the request
    /// goes) and kept by the worker for the next request of any connection or HTTP/2 stream, the
    /// last one finished first: still in the processor's caches, where an exchange kept per
    /// stream connection was not (64 HTTP/2 connections with 10 streams each cycle through 640
    /// of them; callgrind with a 1 MiB last-level cache counted 50 misses there per `return`
    /// request, 28 with the worker's). Beyond the worker's bound, or from a connection of an
    /// older configuration (whose objects it would keep), its arrays' capacity goes back
    /// (never their contents).
    func endExchange() {
        // Moved out, not copied and cleared.
        var taken: Exchange? = nil
        swap(&taken, &ex)
        guard taken != nil else { return }
        countWriting(false)
        guard isKnownUniquelyReferenced(&taken), let done = taken.take() else { return }
        if worker.spareExchanges.count < Worker.maxSpareExchanges && generation === worker.generation {
            done.reset(server: done.server, startMicros: 0)
            worker.spareExchanges.append(done)
        } else if worker.spareExchangeStorage.count < Worker.maxSpareBuffers {
            worker.spareExchangeStorage.append(done.takeStorage())
        }
    }

    func start() {
        acceptedMillis = worker.loop.now
        worker.live[number] = self
        do {
            try worker.loop.register(self, events: EventLoop.readable | EventLoop.writable | EventLoop.edge | EventLoop.hangup)
        } catch {
            Socket.close(fd)
            worker.connectionClosed()
            return
        }
        worker.loop.setDeadline(self, afterMillis: defaultServer.settings.resolved.clientHeaderTimeoutMs)
        readable = true // data may already be waiting
        drive()
    }

    // MARK: events

    override func ready(_ events: UInt32) {
        if events & EventLoop.readable != 0 { readable = true }
        if events & EventLoop.writable != 0 { writable = true }
        if events & (EventLoop.hangup | EventLoop.error) != 0 {
            peerClosed = true
            readable = true
        }
        // A TLS read may wait for writability and a write for readability (rare: only when
        // OpenSSL said so); during the handshake any event retries it.
        if case .tls(let s) = transport {
            if !s.established || (s.readWantsWrite && events & EventLoop.writable != 0) { readable = true }
            if !s.established || (s.writeWantsRead && events & EventLoop.readable != 0) { writable = true }
        }
        drive()
    }

    override func timedOut() {
        turn { clientTimedOut() }
    }

    func clientTimedOut() {
        if rateTimerFired() { return }
        if let ex, ex.inBackground { return } // the upstream side has its own deadlines
        switch state {
        case .head:
            if inBuf.readable > 0 {
                // nginx answers 408 when a request was started, and closes silently when idle.
                beginExchange()
                log(.info, "client timed out (110: Connection timed out) while reading client request headers")
                writeErrorAndClose(408)
            } else {
                close()
            }
        case .exchange:
            exchangeTimedOut()
        case .handshake, .closed:
            close()
        }
    }

    /// The connection's deadline passed while a request is in progress: what it means depends on
    /// what answers it.
    func exchangeTimedOut() {
        guard let ex else { close(); return }
        switch ex.responder {
        case .proxy(.cacheWait):
            cacheWaitTick()
        case .proxy(let phase):
            if phase == .readingBody || (phase == .sending && !ex.requestBodyComplete && writable && (ex.up?.outBuf.isEmpty ?? true)) {
                log(.info, "client timed out (110: Connection timed out) while reading client request body")
                if !ex.headerStarted { writeErrorAndClose(408) } else { close() }
            } else {
                log(.info, "client timed out (110: Connection timed out) while sending response to client")
                abortProxy() // logged, as nginx logs a response ended by send_timeout
            }
        case .local, .file:
            log(.info, "client timed out (110: Connection timed out) while sending response to client")
            if ex.headerStarted { finishLog() }
            close()
        case .delayed:
            limitDelayElapsed()
        case .resolving:
            resolvingTimedOut()
        case .routing, .tunnel, .apiBody:
            close()
        }
    }

    /// Waiting for a next request with nothing buffered: safe to close on a graceful stop.
    var isIdle: Bool { state == .head && inBuf.isEmpty }

    var inDrive = false
    var driveAgain = false

    /// Runs an event handler (upstream readiness, a timer) as one turn of the drive loop: a
    /// request that ends inside it starts the next pipelined one only after it has returned, so no
    /// handler ever finds a different exchange (or none) when the call below it returns.
    @inline(__always)
    func turn(_ handler: () -> Void) {
        worker.loop.assertInLoop()
        if inDrive {
            handler()
            return
        }
        inDrive = true
        driveAgain = false
        handler()
        inDrive = false
        if driveAgain && state != .closed { drive() }
        if case .stream(let p) = transport { p.turnEnded() }
    }

    /// Advances whatever the connection is doing as far as it can without blocking. Re-entrant
    /// calls (a finished request starting the next pipelined one) become loop turns, not recursion.
    func drive() {
        worker.loop.assertInLoop()
        if inDrive {
            driveAgain = true
            return
        }
        inDrive = true
        repeat {
            driveAgain = false
            switch state {
            case .handshake: driveHandshake()
            case .head: readHead()
            case .exchange:
                switch ex.responder {
                case .local: flushLocal()
                case .file: sendStaticBody()
                case .proxy(let phase): proxyClientEvent(phase)
                case .tunnel: pumpTunnel()
                case .apiBody(let length): readAPIBody(length)
                case .routing, .delayed, .resolving: break
                }
            case .closed: break
            }
        } while driveAgain && state != .closed
        inDrive = false
        if case .stream(let p) = transport { p.turnEnded() }
    }

    // MARK: reading requests

    /// Reads what the socket has into `inBuf`, up to `limit` buffered bytes. Returns false on EOF/error.
    @discardableResult
    func readClient(limit: Int) -> Bool {
        while readable && inBuf.readable < limit {
            if inBuf.base == nil { worker.prepare(&inBuf) }
            if inBuf.writableTail < 1024 {
                inBuf.compact()
                if inBuf.writableTail < 1024 { inBuf.reserve(min(max(inBuf.capacity * 2, 4096), max(limit, 4096) + 1024)) }
            }
            let room = min(inBuf.writableTail, max(limit - inBuf.readable, 1))
            do {
                switch try transport.read(fd, inBuf.writePointer, room) {
                case .done(0):
                    readable = false
                    peerClosed = true
                    return false
                case .done(let n):
                    inBuf.writeIndex += n
                    if n < room { readable = false }
                case .wouldBlock:
                    readable = false
                }
            } catch {
                readable = false
                peerClosed = true
                return false
            }
        }
        return true
    }

    func readHead() {
        let limit = scanner.maxHead + 4096
        let alive = readClient(limit: limit)
        if inBuf.isEmpty {
            // Nothing arrived: an idle keep-alive connection holds no buffer (the pool makes the
            // next acquire free of malloc), nor OpenSSL's on TLS.
            worker.recycle(&inBuf)
            releaseIdleTLSBuffers()
        }
        // Cleartext HTTP/2 (`listen … http2` without ssl): the preface instead of a request line.
        if inBuf.readable > 0 && requestsOnConnection == 0 && table.listeners[listener].http2Cleartext && takeH2Preface(alive: alive) { return }
        if inBuf.readable > 0 {
            do {
                guard let end = try scanner.scan(inBuf.readableBytes, isRequest: true) else {
                    // Empty lines before a request line (nginx skips them) leave the buffer, so
                    // that any number of them cannot fill it.
                    if scanner.leadingBytes > 0 {
                        inBuf.readIndex += scanner.discardLeading()
                        if readable { driveAgain = true }
                    }
                    countReading(inBuf.readable > 0)
                    // The client closed after part of a head (its FIN came with the bytes): no
                    // more will come, and no other readiness edge either.
                    if !alive || (peerClosed && !readable) { close() }
                    return
                }
                headComplete()
                let startOffset = scanner.leadingBytes
                head.clear()
                head.append(UnsafeRawBufferPointer(rebasing: inBuf.readableBytes[startOffset..<end]))
                inBuf.readIndex += end
                scanner.reset()
                // Field by field: a copy of the whole settings struct costs ~1,500 instructions.
                let server = defaultServer
                try HeadParser.request(head.readableBytes, start: 0, end: head.readable, into: &req,
                                       names: HeaderNameRules(underscores: server.settings.resolved.underscoresInHeaders,
                                                              ignoreInvalid: server.settings.resolved.ignoreInvalidHeaders))
                beginRequest()
            } catch {
                // Both the scanner and the parser throw only HTTPError (typed throws).
                headComplete()
                beginExchange()
                req = RequestHead()
                head.clear()
                log(.info, "client sent invalid request: \(error.reason)")
                if error.status == 431 {
                    // nginx's 494: a header line or the head over large_client_header_buffers
                    // is a 400 with its own page ("Request Header Or Cookie Too Large").
                    closeAfterResponse = true
                    respond(400, contentType: "text/html", body: Status.specialPage(494, serverTokens: settings.resolved.serverTokens))
                } else {
                    writeErrorAndClose(error.status)
                }
            }
            return
        }
        if !alive { close() }
    }

    // MARK: routing

    func beginRequest() {
        requestsOnConnection += 1
        beginExchange()
        do {
            // Held once in this block, not loaded and counted at each use (an answer given here
            // ends the exchange while it is held: it is then not kept for the next stream).
            let ex: Exchange = self.ex
            // Server by Host (absolute-form target wins), lowercased, port stripped.
            let hb = head.readableBytes
            var hostBytes: [UInt8] = []
            let table = self.table
            if table.listeners[listener].serverCount > 1, let r = req.absoluteHost ?? req.host {
                var end = r.upperBound
                if hb[r.lowerBound] != UInt8(ascii: "[") {
                    var k = r.lowerBound
                    while k < r.upperBound && hb[k] != UInt8(ascii: ":") { k += 1 }
                    end = k
                }
                hostBytes = hb[r.lowerBound..<end].map { ASCII.lower($0) }
                while hostBytes.last == UInt8(ascii: ".") { hostBytes.removeLast() }
            }
            let server = hostBytes.isEmpty ? table.servers[table.listeners[listener].defaultServer]
                : table.server(for: listener, host: String(decoding: hostBytes, as: UTF8.self))
            ex.server = server
            ex.location = server.fallback
            if table.listeners[listener].tls != nil, let refusal = tlsRequestRefusal() {
                respondTLSRefusal(refusal)
                return
            }
            // Keep-alive accounting.
            if !req.keepAlive || requestsOnConnection >= server.settings.resolved.keepaliveRequests || generation !== worker.generation || worker.draining {
                closeAfterResponse = true
            }
            guard URI.normalize(UnsafeRawBufferPointer(rebasing: hb[req.pathRange]), into: &ex.uri, mergeSlashes: defaultServer.settings.resolved.mergeSlashes) else {
                log(.info, "client sent invalid request URI")
                writeErrorAndClose(400)
                return
            }
            ex.requestBody = req.chunked ? .chunked(ChunkedFramer()) : (req.contentLength ?? 0) > 0 ? .length(req.contentLength!) : .none
            ex.requestBodyComplete = !req.hasBody
            if let trusted = server.fallback.settings.realIPFrom {
                // nginx's post-read phase: realip with the server's settings, before any rewrite.
                ex.realIPChecked = true
                applyRealIP(trusted)
            }
        }
        runPhases()
    }

    /// nginx's phases from the server rewrite phase on (where `ngx_http_internal_redirect` starts
    /// a request again): the server's rewrite directives, the location search and the location's
    /// own, then access and content. `named`: a named location entered (`ngx_http_named_location`
    /// starts at the location's rewrite phase).
    func runPhases(named: Location? = nil) {
        if named == nil, let r = ex.server.serverReturn {
            // The name's captures first: nginx takes them when it finds the server.
            if !ex.server.capturingNames.isEmpty && ex.rewrite?.rewritten != true { captureServerName(ex.server.capturingNames) }
            ex.location = ex.server.fallback
            runReturn(r)
            return
        }
        if ex.server.routesWithRewrites {
            guard routeWithRewrites(named: named) else { return } // Rewrite.swift
        } else if let named {
            ex.location = named
        } else {
            if let r = ex.uri.withUnsafeBytes({ ex.server.locations.autoRedirect($0) }) {
                ex.location = r
                let args = currentArgs
                redirect(301, to: r.pattern + (args.isEmpty ? "" : "?" + String(decoding: args, as: UTF8.self)))
                return
            }
            let found = ex.uri.withUnsafeBytes { ex.server.locations.find($0).location }
            ex.location = found ?? ex.server.fallback
        }
        locationKeepaliveChecks()
        if ex.location.internalOnly && ex.rewrite?.rewritten != true {
            respondError(404)
            return
        }
        if !ex.realIPChecked, let trusted = ex.location.settings.realIPFrom {
            ex.realIPChecked = true
            applyRealIP(trusted)
        }
        if isMirror {
            // nginx's subrequests pass no access phase: the main request passed it.
        } else if ex.location.accessPhaseActive {
            guard runAccessPhase() else { return } // limits, auth (LimitPhase.swift)
        } else if let rules = ex.location.settings.accessRules, !allowed(rules) {
            log(.error, "access forbidden by rule")
            respondError(403)
            return
        }
        runContentPhase()
    }

    /// What follows the access phase: the body size check, then the location's handler.
    func runContentPhase() {
        let maxBody = ex.location.settings.resolved.clientMaxBodySize
        if maxBody > 0, let cl = req.contentLength, cl > maxBody {
            log(.error, "client intended to send too large body: \(cl) bytes")
            closeAfterResponse = true
            respondError(413)
            return
        }
        ex.bodyLimit = maxBody
        if let purge = ex.location.settings.proxyCachePurge, !purge.isEmpty, isPurgeRequest() {
            handlePurge(purge)
            return
        }
        // nginx's precontent phase: try_files (the static handler's, before the mirrors), then
        // the mirror subrequests. A location's `return` runs in the rewrite phase, before both.
        if ex.location.settings.resolved.mirrors {
            switch ex.location.handler {
            case .return: break
            case .static where ex.server.tryFiles(for: ex.location) != nil: break
            default: guard runMirrors(resume: .content) else { return } // Mirror.swift
            }
        }
        runContentHandler()
    }

    /// The content phase's handler.
    func runContentHandler() {
        switch ex.location.handler {
        case .return(let r): runReturn(r)
        case .proxy(let t):
            if let name = ex.location.settings.resolved.cacheZone {
                if let v = ex.location.settings.proxyCacheValue { return startProxyWithCacheNamed(by: v, t) } // ProxyCache.swift
                if let zone = generation.cacheZones[name] { return startCachedProxy(t, zone: zone) }
            }
            startProxy(t)
        case .static: serveStatic()
        case .status: serveStatus()
        case .stubStatus: serveStubStatus()
        case .metrics: serveMetrics()
        case .api: startAPI()
        }
    }

    /// The keep-alive decisions nginx's find-config phase makes for the location found:
    /// `keepalive_disable` and `keepalive_time` (a connection older than it serves no next request).
    func locationKeepaliveChecks() {
        // nginx's ngx_http_update_location_config: the location's keepalive_timeout 0 and
        // keepalive_requests end keep-alive for this response (`Connection: close`).
        if !closeAfterResponse && (ex.location.settings.resolved.keepaliveTimeoutMs == 0
                                   || requestsOnConnection >= ex.location.settings.resolved.keepaliveRequests) {
            closeAfterResponse = true
        }
        if !closeAfterResponse && keepaliveDisabledForUserAgent() { closeAfterResponse = true }
        if !closeAfterResponse && worker.loop.now - acceptedMillis > Int64(ex.location.settings.resolved.keepaliveTimeMs) {
            closeAfterResponse = true
        }
    }

    /// `keepalive_disable`: no keep-alive after POSTs from MSIE 4–6, or for Safari, as nginx.
    /// The default (`msie6`) concerns POSTs only: other requests return before the User-Agent is
    /// looked for.
    func keepaliveDisabledForUserAgent() -> Bool {
        let off = ex.location.settings.resolved.keepaliveDisable
        if off.isEmpty || (req.method != .post && !off.contains(.safari)) { return false }
        guard let ua = headerValue("user-agent") else { return false }
        let c = UserAgentClass(ua)
        return (c.msie6 && req.method == .post && off.contains(.msie6)) || (c.safari && off.contains(.safari))
    }

    /// realip: the client address from the configured header, when the peer is trusted.
    func applyRealIP(_ trusted: [CIDR]) {
        if settings.realIPHeader == "proxy_protocol" {
            ex.realClient = RealIP.resolve(connectionBytes: peer.ipBytes, trusted: trusted, proxyProtocol: proxyProtocol).map(PeerAddress.init)
            return
        }
        let name = settings.resolved.realIPHeader
        let hb = head.readableBytes
        // Every field of that name, in order, as one list (nginx joins X-Forwarded-For fields).
        var value: [UInt8] = []
        for f in req.headers where name.contains(hb, f.name) {
            if !value.isEmpty { value.append(UInt8(ascii: ",")) }
            value += hb[f.value]
        }
        guard !value.isEmpty else { return }
        ex.realClient = RealIP.resolve(connectionBytes: peer.ipBytes, trusted: trusted, value: value,
                                       recursive: settings.resolved.realIPRecursive).map(PeerAddress.init)
    }

    func allowed(_ rules: [AccessRule]) -> Bool {
        let addr = clientAddress.ipBytes
        for r in rules {
            if let n = r.network { if n.contains(addr) { return r.allow } } else { return r.allow }
        }
        return true
    }

    func queryString() -> String {
        guard let q = req.queryRange else { return "" }
        return "?" + String(decoding: head.readableBytes[q], as: UTF8.self)
    }

    // MARK: local responses

    func runReturn(_ r: ReturnAction) {
        if r.code == 444 {
            ex.status = 444
            finishLog()
            close()
            return
        }
        if [301, 302, 303, 307, 308].contains(r.code), let t = r.text {
            let url = evaluate(t)
            if ex.variableFailed { respondError(500); return }
            redirect(r.code, to: String(decoding: url, as: UTF8.self))
            return
        }
        if let t = r.text {
            let body = evaluate(t)
            if ex.variableFailed { respondError(500); return }
            respond(r.code, contentType: ex.contentTypeOverride ?? contentTypeForURI(), body: body)
        } else if r.code < 400 {
            // nginx: below 400, `return CODE` sends an empty body, not an error page.
            respond(r.code, contentType: ex.contentTypeOverride ?? contentTypeForURI(), body: [])
        } else {
            respondError(r.code)
        }
    }

    /// The host of an absolute redirect, as nginx's header filter: the server's first name with
    /// `server_name_in_redirect`, else the Host header (lowercased, no port), else the local address.
    func hostForRedirect() -> [UInt8] {
        if settings.resolved.serverNameInRedirect { return Array((ex.server.names.first ?? "").utf8) }
        if let h = req.absoluteHost ?? req.host {
            let host = HeaderRewrites.hostWithoutPort(head.readableBytes[h])
            if !host.isEmpty { return host }
        }
        return Array(Socket.localAddress(fd).ip.utf8)
    }

    /// A Location that starts with `/` made absolute (`absolute_redirect`), with the listening
    /// port unless it is 80 or `port_in_redirect` is off; any other value as it is.
    func absoluteLocation(_ location: [UInt8]) -> [UInt8] {
        guard location.first == UInt8(ascii: "/"), settings.resolved.absoluteRedirect else { return location }
        return HeaderRewrites.absoluteLocation(location, host: hostForRedirect(), port: table.listeners[listener].address.port ?? 80,
                                               portInRedirect: settings.resolved.portInRedirect, https: transport.tls != nil)
    }

    func redirect(_ code: Int, to url: String) {
        var extra = Buffer()
        extra.append("Location: ")
        extra.append(absoluteLocation(Array(url.utf8)))
        extra.append("\r\n")
        respond(code, contentType: "text/html", body: Status.page(code, serverTokens: settings.resolved.serverTokens), extraHeaders: extra.readableBytes)
        extra.release()
    }

    func contentTypeForURI() -> String {
        if let dot = ex.uri.lastIndex(of: UInt8(ascii: ".")), !ex.uri[dot...].contains(UInt8(ascii: "/")) {
            let ext = String(decoding: ex.uri[(dot + 1)...].map { ASCII.lower($0) }, as: UTF8.self)
            if let t = settings.resolved.types[ext] { return t }
        }
        return settings.resolved.defaultType
    }

    /// The Server line with the version (`server_tokens on`), made once.
    static let serverWithVersion = Array("\r\nServer: \(LBVersion.product)\r\nDate: ".utf8)

    /// `charset NAME` applied to a Content-Type (nginx's charset filter, without conversion).
    func withCharset(_ contentType: String) -> String {
        guard case .some(.some(let c)) = settings.charset else { return contentType }
        // As nginx: none on a 301 or 302 (old browsers took the redirect's charset for the page's).
        if ex.status == 301 || ex.status == 302 { return contentType }
        let name: String
        switch c {
        case .name(let n): name = n
        case .variable(let t):
            name = String(decoding: evaluate(t), as: UTF8.self)
            if name.isEmpty { return contentType } // nginx writes no `; charset=` for an empty name
        }
        return HeaderRewrites.contentTypeWithCharset(contentType, charset: name, types: settings.charsetTypes) ?? contentType
    }

    /// Answers with an error status: `error_page` if configured, else nginx's built-in page.
    /// As `ngx_http_special_response_handler`: the status becomes this error's (an earlier
    /// error_page's status no longer holds), and an error_page target is an internal redirect
    /// that runs every phase again; its response goes out with the error's status unless the
    /// page says `=` (the target's) or `=CODE`.
    func respondError(_ code: Int) {
        ex.overrideStatus = nil
        // nginx applies error_page once per request, and only while URI changes are left.
        // With recursive_error_pages, the target's own error_page may apply again (until the URI
        // changes run out).
        if !ex.errorPageUsed, ex.uriChangesLeft > 0, let pages = settings.errorPages, let page = pages.first(where: { $0.codes.contains(code) }) {
            if !settings.resolved.recursiveErrorPages { ex.errorPageUsed = true }
            let dest = evaluate(page.target)
            if dest.first == UInt8(ascii: "@") || dest.first == UInt8(ascii: "/") {
                switch page.override {
                case .keep: ex.overrideStatus = code
                case .fromTarget: ex.overrideStatus = nil
                case .code(let c): ex.overrideStatus = c
                }
            }
            if dest.first == UInt8(ascii: "@") {
                guard let named = ex.server.named[String(decoding: dest.dropFirst(), as: UTF8.self)] else {
                    log(.error, "could not find named location \"\(String(decoding: dest, as: UTF8.self))\"")
                    ex.overrideStatus = nil
                    respond(500, contentType: "text/html", body: Status.page(500, serverTokens: settings.resolved.serverTokens))
                    return
                }
                guard internalRedirect(to: dest) else { return }
                enterNamedLocation(named) // Rewrite.swift
                return
            } else if dest.first == UInt8(ascii: "/") {
                changeMethodToGET()
                guard internalRedirect(to: dest) else { return }
                let (uri, args) = ClientConnection.splitArgs(dest)
                redirectInternally(to: uri, args: args) // Rewrite.swift
                return
            } else if !dest.isEmpty {
                var c = 302
                if case .code(let o) = page.override, [301, 302, 303, 307, 308].contains(o) { c = o }
                redirect(c, to: String(decoding: dest, as: UTF8.self))
                return
            }
        }
        respond(code, contentType: "text/html", body: Status.page(code, serverTokens: settings.resolved.serverTokens))
    }

    /// nginx's internal redirects to a URI by `error_page` and `X-Accel-Redirect`: a request other
    /// than HEAD goes on as GET (`$request_method`, the static handler, a proxied request line).
    /// The name is laid after the head's bytes, so every reader of the method range sees GET.
    func changeMethodToGET() {
        guard head.readable > 0, req.method != .head, req.method != .get else { return }
        let start = head.readable
        head.append("GET")
        req.methodRange = start..<(start + 3)
        req.method = .get
    }

    /// Spends one of the request's URI changes on an internal redirect (error_page, try_files,
    /// index). Out of them, nginx logs the cycle and answers 500; then this returns false.
    func internalRedirect(to dest: [UInt8]) -> Bool {
        ex.uriChangesLeft -= 1
        if ex.uriChangesLeft > 0 { return true }
        let how = dest.first == UInt8(ascii: "@") ? "redirect to named location" : "internally redirecting to"
        log(.error, "rewrite or internal redirection cycle while \(how) \"\(String(decoding: dest, as: UTF8.self))\"")
        ex.overrideStatus = nil
        ex.errorPageUsed = true
        respondError(500)
        return false
    }

    func writeErrorAndClose(_ code: Int) {
        closeAfterResponse = true
        respond(code, contentType: "text/html", body: Status.page(code, serverTokens: settings.resolved.serverTokens))
    }

    /// The response-head stage (`ResponseHeadStage`, pure) for this request: the request's
    /// conditional headers, keep-alive and protocol, the location's policy, and — asked only when
    /// the response qualifies for gzip — whether the client takes gzip.
    func decideHead(_ r: HeadStageResponse, gzipFacts: GzipResponseFacts = GzipResponseFacts(),
                    validators: () -> Validators = { Validators(lastModified: nil, etag: nil) }) -> HeadDecision {
        let q = HeadStageRequest(http10OrLater: req.versionMajor >= 1, keepAlive: !closeAfterResponse, http2: transport.isHTTP2)
        let p = HeadStagePolicy(ifModifiedSince: ifModifiedSinceMode, maxRanges: settings.maxRanges, gzipVary: settings.resolved.gzipVary,
                                expires: settings.resolved.expires)
        return ResponseHeadStage.decide(r, q, p, conditions: hasConditionalHeaders ? conditionalHeaders() : nil, validators: validators,
                                        clientTakesGzip: { clientTakesGzip(gzipFacts) })
    }

    /// Whether a response qualifies for gzip (`gzip on`, status, type, not encoded, min length).
    func gzipQualifies(status: Int, contentEncoding: String?, contentType: String?, contentLength: Int?) -> Bool {
        settings.resolved.gzip && GzipPolicy.responseQualifies(status: status, contentEncoding: contentEncoding, contentType: contentType,
                                                               contentLength: contentLength, types: settings.resolved.gzipTypes,
                                                               minLength: settings.resolved.gzipMinLength)
    }

    /// Starts the response head the stage decided: status line, Server, Date.
    func writeHeadStart(_ d: HeadDecision, reason: UnsafeRawBufferPointer? = nil) {
        let ex: Exchange = self.ex // held once here, not loaded and counted at each use
        let code = d.status
        ex.status = code
        ex.head = d.fields
        ex.headerStarted = true
        worker.prepare(&outBuf)
        worker.dates.update(wallClock().seconds)
        ex.headAt = outBuf.readable
        outBuf.append("HTTP/1.1 ")
        outBuf.append(decimal: code)
        outBuf.append(byte: 0x20)
        if let reason { outBuf.append(reason) } else { outBuf.append(string: Status.reason(code)) }
        ex.headFieldsAt = outBuf.readable + 2 // after the status line's CR LF
        if settings.resolved.serverTokens { outBuf.append(ClientConnection.serverWithVersion) } else { outBuf.append("\r\nServer: lb\r\nDate: ") }
        outBuf.append(worker.dates.httpDate)
        outBuf.append("\r\n")
    }

    /// `Vary: Accept-Encoding` when the stage (or gzip_static) says so.
    func appendVary(_ due: Bool) {
        if due { outBuf.append("Vary: Accept-Encoding\r\n") }
    }

    /// Ends the head: the configured headers and the connection field the stage decided. Then
    /// the response writer takes it: an HTTP/1.1 connection sends the octets with the body that
    /// follows; a pipe that takes heads whole (an HTTP/2 stream) gets the status and the fields,
    /// and only the body goes through `write`.
    func writeHeadEnd() {
        addConfiguredHeaders()
        let ex: Exchange = self.ex
        switch ex.head.connection {
        case .keepAlive: outBuf.append("Connection: keep-alive\r\n")
        case .close: outBuf.append("Connection: close\r\n")
        case .upgrade: outBuf.append("Connection: upgrade\r\n")
        case .omitted: break
        }
        if case .stream(let p) = transport, p.takesResponseHeads {
            ex.responseHeadBytes = outBuf.readable - ex.headAt
            keepSentHead()
            let b = outBuf.readableBytes
            p.responseHead(status: ex.status, fields: UnsafeRawBufferPointer(rebasing: b[ex.headFieldsAt..<b.count]), headOnly: req.method == .head)
            outBuf.writeIndex = outBuf.readIndex + ex.headAt // the head went whole; what was before it stays
            return
        }
        outBuf.append("\r\n")
        if req.isHTTP09 { outBuf.clear() } // an HTTP/0.9 response is the body alone
        ex.responseHeadBytes = outBuf.readable
        keepSentHead()
    }

    /// Keeps the head just written (for `$sent_http_*`) when the config needs it.
    func keepSentHead() {
        guard table.usesResponseHeaderVariables else { return }
        ex.sentHead.removeAll(keepingCapacity: true)
        ex.sentHead.append(contentsOf: outBuf.readableBytes)
    }

    /// Whether `expires` adds its headers to this response (then the upstream's are dropped).
    var expiresApplies: Bool { responseExpires != nil }

    /// The `expires` of this response, nil when none applies (the stage decided by status): the
    /// configured one, or the value of one with variables, evaluated once per response as the
    /// head is made (nginx's headers filter): `$sent_http_*` then reads the head so far. A value
    /// nginx would refuse, or `off`, adds nothing and keeps an upstream's own headers.
    var responseExpires: Expires? { resolveExpires(upstreamHead: nil) }

    /// `responseExpires`, for a proxied response: `$sent_http_*` reads the upstream's head.
    func resolveExpires(upstreamHead: UnsafeRawBufferPointer?) -> Expires? {
        guard ex.head.expires, let e = settings.expires, e != .off else { return nil }
        guard case .variable(let t, let modified) = e else { return e }
        if let done = ex.expiresEvaluated { return done }
        if table.usesResponseHeaderVariables {
            if let h = upstreamHead {
                ex.sentHead.removeAll(keepingCapacity: true)
                ex.sentHead.append(contentsOf: h)
            } else {
                keepSentHead()
            }
        }
        let v = String(decoding: evaluate(t), as: UTF8.self)
        let r = (try? Expires.parse(v, modified: modified)).flatMap { $0 == .off ? nil : $0 }
        ex.expiresEvaluated = .some(r)
        return r
    }

    func addConfiguredHeaders() {
        if !ex.keptHeaders.isEmpty { outBuf.append(ex.keptHeaders) }
        if let e = responseExpires { appendExpires(e, mtime: ex.expiresMtime ?? wallClock().seconds) }
        guard let adds = settings.addHeaders else { return }
        // `$sent_http_*` in a value reads the head made so far, as nginx's headers filter does.
        if table.usesResponseHeaderVariables { keepSentHead() }
        let all = ex.head.addHeaders
        for h in adds where all || h.always {
            let v = evaluate(h.value)
            if v.isEmpty { continue }
            outBuf.append(h.nameBytes)
            outBuf.append(": ")
            outBuf.append(v)
            outBuf.append("\r\n")
        }
    }

    func respond(_ code: Int, contentType: String, body: [UInt8], extraHeaders: UnsafeRawBufferPointer? = nil) {
        var body = settings.subFilters == nil ? body : subFilteredLocalBody(body, contentType: contentType) ?? body
        let code = ex.overrideStatus ?? code
        ex.overrideStatus = nil
        // A request body that has not fully arrived cannot be skipped cheaply: close after answering.
        if !ex.requestBodyComplete {
            if case .length(let n) = ex.requestBody, inBuf.readable >= n {
                inBuf.readIndex += n
                ex.requestBodyComplete = true
            } else {
                closeAfterResponse = true
            }
        }
        // 204 has no body (RFC 9110 §15.3.5): as nginx, no Content-Type, no Content-Length and
        // no body, whatever text `return 204 "…"` names.
        let noContent = code == 204
        let d = decideHead(HeadStageResponse(status: code, source: .local, contentLength: body.count,
                                             gzipQualifies: !noContent && gzipQualifies(status: code, contentEncoding: nil, contentType: contentType, contentLength: body.count),
                                             gzipPossible: body.count <= GzipPolicy.maxInMemory))
        // gzip, as nginx's filter does for `return` and error pages; a HEAD says so without a length.
        var gzipped = false
        if d.gzip, let z = compressWholeBody(read: { body }) {
            body = z
            gzipped = true
        }
        outBuf.clear()
        writeHeadStart(d)
        if !noContent {
            outBuf.append("Content-Type: ")
            outBuf.append(string: withCharset(contentType))
            if !gzipped || req.method != .head {
                outBuf.append("\r\nContent-Length: ")
                outBuf.append(decimal: body.count)
            }
            outBuf.append("\r\n")
        }
        if gzipped { outBuf.append("Content-Encoding: gzip\r\n") }
        appendVary(d.vary)
        if let e = extraHeaders { outBuf.append(e) }
        writeHeadEnd()
        if req.method != .head && !noContent { outBuf.append(body) }
        ex.bodyBytesSent = req.method == .head || noContent ? 0 : body.count
        ex.responder = .local
        flushLocal()
    }

    /// Writes `outBuf` to the client; returns true when it is empty. Closes on error.
    @discardableResult
    func flushOut(more: Bool = false) -> Bool {
        if responseLimited != false, responseLimited == true || resolveRate() { return flushOutLimited(more: more) }
        while !outBuf.isEmpty {
            guard writable else {
                worker.loop.setDeadline(self, afterMillis: settings.resolved.sendTimeoutMs)
                return false
            }
            do {
                switch try transport.write(fd, outBuf.readPointer, outBuf.readable, more: more) {
                case .done(let n):
                    outBuf.readIndex += n
                case .wouldBlock:
                    writable = false
                }
            } catch {
                close()
                return false
            }
        }
        outBuf.clear()
        return true
    }

    func flushLocal() {
        if case .file = ex.responder {
            sendStaticBody()
            return
        }
        if flushOut() { finishRequest() }
    }

    // MARK: finishing

    func finishRequest() {
        do {
            // Held once in this block, not loaded and counted at each use; not past it, where
            // `endExchange` keeps the object for reuse only if nothing else holds it.
            let ex: Exchange = self.ex
            if !ex.inBackground { finishLog() }
            ex.accessState?.release()
            if ex.backgroundUpdatePending {
                ex.backgroundUpdatePending = false
                startBackgroundUpdate()
                return
            }
            if ex.cache != nil { endCacheRequest() }
        }
        let keepaliveTimeout = settings.resolved.keepaliveTimeoutMs
        if closeAfterResponse || peerClosed || worker.draining {
            close()
            // The exchange ends as at a keep-alive: its arrays' capacity goes back to the worker
            // (every HTTP/2 stream's connection ends here, after its one response).
            endExchange()
            return
        }
        // Ready for the next request (pipelined bytes may already be here); the exchange ends.
        endExchange()
        state = .head
        if inBuf.isEmpty {
            // Between requests a connection holds no I/O buffers: they go back to the worker.
            worker.recycle(&inBuf)
            releaseRequestHead()
            worker.recycle(&outBuf)
            worker.loop.setDeadline(self, afterMillis: keepaliveTimeout)
        } else {
            worker.loop.setDeadline(self, afterMillis: connectionServer.settings.resolved.clientHeaderTimeoutMs)
        }
        // A plain TCP socket whose last read came up short (or heard EAGAIN) has nothing more
        // until its next readiness event, which sets `readable` again: a read now would only hear
        // EAGAIN (nginx's `rev->ready`). TLS may hold decrypted bytes already read from the
        // socket, and a stream pipe learns its end by reading: those read once more.
        if case .tcp = transport {} else { readable = true }
        drive()
    }

    func close() {
        guard state != .closed else { return }
        state = .closed
        countReading(false)
        countWriting(false)
        if let ex {
            ex.accessState?.release()
            ex.inBackground = false
            ex.gz?.end()
            ex.gz = nil
            ex.body = nil // its temporary file goes now (client_body_in_file_only clean)
            if ex.cache != nil { endCacheRequest() }
            if let u = ex.up {
                releasePeer(failed: false)
                u.close()
                ex.up = nil
            }
            closeStaticFile()
        }
        if case .stream(let p) = transport { return closeStream(p) } // an HTTP/2 stream or a mirror: the socket is not its own
        worker.loop.deregister(self)
        transport.tls?.shutdown() // close_notify
        Socket.close(fd)
        worker.recycle(&inBuf)
        worker.recycle(&outBuf)
        releaseRequestHead()
        worker.live[number] = nil
        worker.connectionClosed()
    }

    /// A connection over a stream pipe closes (an HTTP/2 stream, a mirror subrequest): the
    /// socket is not its own; only the stream ends.
    func closeStream(_ p: StreamPipe) {
        worker.loop.setDeadline(self, afterMillis: 0)
        worker.recycle(&inBuf)
        worker.recycle(&outBuf)
        releaseRequestHead()
        p.connectionClosed()
    }

    func log(_ level: ErrorLog.Level, _ message: String) {
        let el = worker.runtime.errorLog
        guard el.enabled(level) else { return }
        var m = message + ", client: \(clientAddress.ip), server: \((ex?.server ?? defaultServer).names.first ?? ""), request: \"\(String(decoding: requestLine(), as: UTF8.self))\""
        if let ex, ex.parentExchange != nil || isMirror { m += ", subrequest: \"\(String(decoding: ex.uri, as: UTF8.self))\"" }
        if let u = currentUpstreamText { m += ", upstream: \"\(u)\"" }
        if let h = req.host { m += ", host: \"\(String(decoding: head.readableBytes[h], as: UTF8.self))\"" }
        el.log(level, m, connection: number, worker: worker.index)
    }

    var currentUpstreamText: String? {
        guard let ex, ex.upstreamRuntime != nil, ex.attempt.peerIndex >= 0 else { return nil }
        let kind = ex.target?.kind ?? .http
        return "\(ex.target?.tls == nil ? kind.scheme : "https")://\(ex.attempt.peerText)\(kind == .http ? String(decoding: ex.upstreamURI, as: UTF8.self) : "")"
    }

    func requestLine() -> [UInt8] {
        guard head.readable > 0, req.targetRange.upperBound > 0 else { return [] }
        var e = 0
        let b = head.readableBytes
        while e < b.count && b[e] != 0x0D && b[e] != 0x0A { e += 1 }
        var line = Array(b[0..<e])
        // An HTTP/2 stream's head was made in HTTP/1.1 form: logs say what the client spoke.
        if transport.isHTTP2, line.count >= 8 { line.replaceSubrange((line.count - 8)..., with: "HTTP/2.0".utf8) }
        return line
    }

    /// The socket is corked (TCP_CORK) while a static head and its file go out (`tcp_nopush`).
    var corked = false
}
