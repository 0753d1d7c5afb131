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
    enum State { case head, local, proxy, tunnel, apiBody, closed }
    enum Phase { case idle, connecting, sending, waitingHead, relaying, cacheWait }

    /// The worker outlives every connection it owns: no reference counting on this hot field.
    unowned(unsafe) let worker: Worker
    let generation: Generation
    let listener: Int
    let peer: SocketAddress
    let number: Int
    var table: RoutingTable { generation.table }

    var state: State = .head
    var readable = false
    var writable = true
    var peerClosed = false
    var inBuf = Buffer()
    var outBuf = Buffer()
    var head = Buffer()
    var scanner = HeadScanner()
    var req = RequestHead()
    var requestsOnConnection = 0
    var closeAfterResponse = false

    // Per request.
    var server: VirtualServer!
    var location: Location!
    var uri: [UInt8] = []
    var startMicros: Int64 = 0
    var status = 0
    var bodyBytesSent = 0
    var responseHeadBytes = 0
    var localBodySent = false
    var headerStarted = false
    var requestBody: BodyFraming = .none
    /// Request body bytes forwarded so far; replay is possible only while they are still buffered.
    var requestBodyForwarded = 0
    var requestBodyComplete = true
    var bodyLimit = 0
    var bodyReceived = 0

    // Proxy.
    var phase: Phase = .idle
    var target: ProxyTarget?
    var upstreamRuntime: UpstreamRuntime?
    var up: UpstreamConnection?
    var peerIndex = -1
    var tried = TriedSet()
    var tries = 0
    var firstTryMillis: Int64 = 0
    var upstreamURI: [UInt8] = []
    var requestSent = false
    var sentConnectionClose = true
    var upstreamLog: [UpstreamAttempt] = []
    var attemptStart: Int64 = 0
    var connectDone: Int64 = 0
    var headerDone: Int64 = 0
    var response = ResponseHead()
    var responseFraming: BodyFraming = .none
    var upScanner = HeadScanner(maxFirstLine: 4096, maxHeaderLine: 8192, maxHead: 64 * 1024)
    /// Bytes at the front of the upstream buffer that are validated body ready for the client.
    var relayable = 0
    /// Bytes of the upstream buffer (after `relayable`) already checked by the chunk framer.
    var dechunk = false
    var responseComplete = false
    var upstreamBodyBytes = 0
    /// Bytes written to the upstream in this attempt (`$upstream_bytes_sent`).
    var upstreamBytesSent = 0
    var cacheStatus: [UInt8] = []
    /// Why the current upstream attempt failed (for the peer's `last_failure`).
    var failureReason = ""
    /// `127.0.0.1:9001` of the peer of the current attempt.
    var peerText = ""
    /// The compressor of a gzipped proxied response, and whether its last chunk is out.
    var gz: GzipStream?
    var gzFinished = false
    // Cache (Cache/ProxyCache.swift).
    var cache: CacheRequest?
    var cacheWriter: CacheWriter?
    /// A stale response is going out; the update is fetched after it on this connection.
    var backgroundUpdatePending = false
    /// Fetching a background update: nothing is written to the client, nothing logged.
    var inBackground = false
    /// HEAD sent upstream as GET (`proxy_cache_convert_head`): the body is read, stored, not sent.
    var headConverted: Bool { cache != nil && req.method == .head && settings.proxyCacheConvertHead != false }

    init(worker: Worker, fd: Int32, peer: SocketAddress, generation: Generation, listener: Int, number: Int) {
        self.worker = worker
        self.peer = peer
        self.generation = generation
        self.listener = listener
        self.number = number
        super.init()
        self.fd = fd
        let defaultServer = generation.table.servers[generation.table.listeners[listener].defaultServer]
        server = defaultServer
        location = defaultServer.fallback
        let large = defaultServer.settings.effectiveLargeClientHeaderBuffers
        scanner = HeadScanner(maxFirstLine: large.size, maxHeaderLine: large.size, maxHead: large.count * large.size)
    }

    deinit {
        inBuf.release()
        outBuf.release()
        head.release()
    }

    /// The settings in force: the matched location's (merged from server and http). Yielded, not
    /// copied: the struct is large and read many times per request.
    var settings: HTTPSettings {
        _read { yield location.settings }
    }

    func start() {
        worker.live[number] = self
        do {
            try worker.loop.register(self, events: EventLoop.readable | EventLoop.writable | EventLoop.edge | EventLoop.hangup)
        } catch {
            Socket.close(fd)
            worker.connectionClosed()
            return
        }
        worker.loop.setDeadline(self, afterMillis: settings.effectiveClientHeaderTimeoutMs)
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
        drive()
    }

    override func timedOut() {
        if inBackground { return } // the upstream side has its own deadlines
        if state == .proxy && phase == .cacheWait {
            cacheWaitTick()
            return
        }
        switch state {
        case .head:
            if inBuf.readable > 0 {
                // nginx answers 408 when a request was started, and closes silently when idle.
                status = 408
                log(.info, "client timed out (110: Connection timed out) while reading client request headers")
                writeErrorAndClose(408)
            } else {
                close()
            }
        case .proxy:
            if phase == .sending && !requestBodyComplete && writable && (up?.outBuf.isEmpty ?? true) {
                log(.info, "client timed out (110: Connection timed out) while reading client request body")
                if !headerStarted { writeErrorAndClose(408) } else { close() }
            } else {
                log(.info, "client timed out (110: Connection timed out) while sending response to client")
                close()
            }
        default:
            close()
        }
    }

    /// Waiting for a next request with nothing buffered: safe to close on a graceful stop.
    var isIdle: Bool { state == .head && inBuf.isEmpty }

    var inDrive = false
    var driveAgain = false

    /// Advances whatever the connection is doing as far as it can without blocking. Re-entrant
    /// calls (a finished request starting the next pipelined one) become loop turns, not recursion.
    func drive() {
        if inDrive {
            driveAgain = true
            return
        }
        inDrive = true
        repeat {
            driveAgain = false
            switch state {
            case .head: readHead()
            case .local: flushLocal()
            case .proxy: proxyClientEvent()
            case .tunnel: pumpTunnel()
            case .apiBody: readAPIBody()
            case .closed: break
            }
        } while driveAgain && state != .closed
        inDrive = false
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
                switch try Socket.read(fd, inBuf.writePointer, room) {
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
            // next acquire free of malloc).
            worker.recycle(&inBuf)
        }
        if inBuf.readable > 0 {
            do {
                guard let end = try scanner.scan(inBuf.readableBytes, isRequest: true) else {
                    if !alive { close() }
                    return
                }
                let startOffset = scanner.leadingBytes
                head.clear()
                head.append(UnsafeRawBufferPointer(rebasing: inBuf.readableBytes[startOffset..<end]))
                inBuf.readIndex += end
                scanner.reset()
                try HeadParser.request(head.readableBytes, start: 0, end: head.readable, into: &req)
                beginRequest()
            } catch let e as HTTPError {
                startMicros = monotonicMicros()
                req = RequestHead()
                head.clear()
                log(.info, "client sent invalid request: \(e.reason)")
                writeErrorAndClose(e.status)
            } catch {
                close()
            }
            return
        }
        if !alive { close() }
    }

    // MARK: routing

    func beginRequest() {
        requestsOnConnection += 1
        startMicros = monotonicMicros()
        status = 0
        bodyBytesSent = 0
        responseHeadBytes = 0
        headerStarted = false
        upstreamLog.removeAll(keepingCapacity: true)
        cacheStatus = []
        expiresMtime = nil
        if table.usesResponseHeaderVariables {
            sentHead.removeAll(keepingCapacity: true)
            upstreamHead.removeAll(keepingCapacity: true)
        }
        tries = 0
        tried = TriedSet()
        // Server by Host (absolute-form target wins), lowercased, port stripped.
        let hb = head.readableBytes
        var hostBytes: [UInt8] = []
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
        server = hostBytes.isEmpty ? table.servers[table.listeners[listener].defaultServer]
            : table.server(for: listener, host: String(decoding: hostBytes, as: UTF8.self))
        location = server.fallback
        // Keep-alive accounting.
        if !req.keepAlive || requestsOnConnection >= server.settings.effectiveKeepaliveRequests || generation !== worker.generation || worker.draining {
            closeAfterResponse = true
        }
        guard URI.normalize(UnsafeRawBufferPointer(rebasing: hb[req.pathRange]), into: &uri) else {
            log(.info, "client sent invalid request URI")
            writeErrorAndClose(400)
            return
        }
        requestBody = req.chunked ? .chunked(ChunkedFramer()) : (req.contentLength ?? 0) > 0 ? .length(req.contentLength!) : .none
        requestBodyComplete = !req.hasBody
        bodyReceived = 0
        if let r = server.serverReturn {
            location = server.fallback
            runReturn(r)
            return
        }
        if let r = uri.withUnsafeBytes({ server.locations.autoRedirect($0) }) {
            location = r
            redirect(301, to: r.pattern + queryString())
            return
        }
        let found = uri.withUnsafeBytes { server.locations.find($0).location }
        location = found ?? server.fallback
        if location.internalOnly {
            respondError(404)
            return
        }
        if let rules = location.settings.accessRules, !allowed(rules) {
            log(.error, "access forbidden by rule")
            respondError(403)
            return
        }
        let maxBody = location.settings.effectiveClientMaxBodySize
        if maxBody > 0, let cl = req.contentLength, cl > maxBody {
            log(.error, "client intended to send too large body: \(cl) bytes")
            closeAfterResponse = true
            respondError(413)
            return
        }
        bodyLimit = maxBody
        if let purge = location.settings.proxyCachePurge, !purge.isEmpty, isPurgeRequest() {
            handlePurge(purge)
            return
        }
        switch location.handler {
        case .return(let r): runReturn(r)
        case .proxy(let t):
            if let name = location.settings.cacheZone, let zone = generation.cacheZones[name] {
                startCachedProxy(t, zone: zone)
            } else {
                startProxy(t)
            }
        case .static: serveStatic()
        case .status: serveStatus()
        case .metrics: serveMetrics()
        case .api: startAPI()
        }
    }

    func allowed(_ rules: [AccessRule]) -> Bool {
        let addr = peer.ipBytes
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
            status = 444
            finishLog()
            close()
            return
        }
        if [301, 302, 303, 307, 308].contains(r.code), let t = r.text {
            var url = evaluate(t)
            if url.first == UInt8(ascii: "/") { url = Array("http://".utf8) + hostForRedirect() + url }
            redirect(r.code, to: String(decoding: url, as: UTF8.self))
            return
        }
        if let t = r.text {
            let body = evaluate(t)
            respond(r.code, contentType: contentTypeForURI(), body: body)
        } else {
            respondError(r.code)
        }
    }

    func hostForRedirect() -> [UInt8] {
        if let h = req.host { return Array(head.readableBytes[h]) }
        let l = table.listeners[listener].address
        return Array("\(l.host == "0.0.0.0" ? "localhost" : l.description)".utf8)
    }

    func redirect(_ code: Int, to url: String) {
        var extra = Buffer()
        extra.append("Location: ")
        extra.append(string: url)
        extra.append("\r\n")
        respond(code, contentType: "text/html", body: Status.page(code, serverTokens: settings.effectiveServerTokens), extraHeaders: extra)
        extra.release()
    }

    func contentTypeForURI() -> String {
        let s = settings
        if let dot = uri.lastIndex(of: UInt8(ascii: ".")), !uri[dot...].contains(UInt8(ascii: "/")) {
            let ext = String(decoding: uri[(dot + 1)...].map { ASCII.lower($0) }, as: UTF8.self)
            if let t = s.types?[ext] ?? ClientConnection.builtinTypes[ext] { return t }
        }
        return s.effectiveDefaultType
    }

    static let builtinTypes = ["html": "text/html", "gif": "image/gif", "jpg": "image/jpeg"]

    /// Answers with an error status: `error_page` if configured, else nginx's built-in page.
    func respondError(_ code: Int) {
        if let pages = settings.errorPages, let page = pages.first(where: { $0.codes.contains(code) }), requestsOnConnection < 100 {
            let target = evaluate(page.target)
            if target.first == UInt8(ascii: "@"), let named = server.named[String(decoding: target.dropFirst(), as: UTF8.self)] {
                location = named
                if case .return(let r) = named.handler { runReturn(r); return }
                if case .proxy(let t) = named.handler { startProxy(t); return }
            } else if target.first == UInt8(ascii: "/") {
                // Internal redirect to the URI, keeping the error status unless `=` says otherwise.
                uri = target
                if let loc = uri.withUnsafeBytes({ server.locations.find($0).location }) {
                    location = loc
                    switch loc.handler {
                    case .return(let r):
                        if case .code(let c) = page.override { runReturn(ReturnAction(code: c, text: r.text)); return }
                        runReturn(r)
                        return
                    case .static:
                        overrideStatus = page.override == .keep ? code : nil
                        if case .code(let c) = page.override { overrideStatus = c }
                        serveStatic()
                        return
                    default: break
                    }
                }
            } else if target.starts(with: Array("http".utf8)) {
                redirect(302, to: String(decoding: target, as: UTF8.self))
                return
            }
        }
        respond(code, contentType: "text/html", body: Status.page(code, serverTokens: settings.effectiveServerTokens))
    }

    var overrideStatus: Int?

    func writeErrorAndClose(_ code: Int) {
        closeAfterResponse = true
        respond(code, contentType: "text/html", body: Status.page(code, serverTokens: settings.effectiveServerTokens))
    }

    /// Starts the response head: status line, Server, Date, Content-Type, Content-Length, Connection.
    func writeHeadStart(_ code: Int, reason: UnsafeRawBufferPointer? = nil) {
        status = code
        headerStarted = true
        worker.prepare(&outBuf)
        worker.dates.update(wallClock().seconds)
        outBuf.append("HTTP/1.1 ")
        outBuf.append(decimal: code)
        outBuf.append(byte: 0x20)
        if let reason { outBuf.append(reason) } else { outBuf.append(string: Status.reason(code)) }
        outBuf.append(settings.effectiveServerTokens ? "\r\nServer: lb/0.1.0\r\nDate: " : "\r\nServer: lb\r\nDate: ")
        outBuf.append(worker.dates.httpDate)
        outBuf.append("\r\n")
    }

    func writeHeadEnd(keepAlive: Bool) {
        addConfiguredHeaders()
        if !keepAlive { outBuf.append("Connection: close\r\n") } else if req.versionMinor == 0 { outBuf.append("Connection: keep-alive\r\n") } else { outBuf.append("Connection: keep-alive\r\n") }
        outBuf.append("\r\n")
        responseHeadBytes = outBuf.readable
        keepSentHead()
    }

    /// Keeps the head just written (for `$sent_http_*`) when the config needs it.
    func keepSentHead() {
        guard table.usesResponseHeaderVariables else { return }
        sentHead.removeAll(keepingCapacity: true)
        sentHead.append(contentsOf: outBuf.readableBytes)
    }

    /// Statuses that `add_header` (without `always`) and `expires` apply to, as nginx.
    static func isHeaderFilterStatus(_ s: Int) -> Bool {
        switch s {
        case 200, 201, 204, 206, 301, 302, 303, 304, 307, 308: true
        default: false
        }
    }

    /// Whether `expires` adds its headers to this response (then the upstream's are dropped).
    var expiresApplies: Bool {
        guard let e = settings.expires, e != .off else { return false }
        return ClientConnection.isHeaderFilterStatus(status)
    }

    func addConfiguredHeaders() {
        if expiresApplies { appendExpires(expiresMtime ?? wallClock().seconds) }
        guard let adds = settings.addHeaders else { return }
        let always = ClientConnection.isHeaderFilterStatus(status)
        for h in adds where always || h.always {
            let v = evaluate(h.value)
            if v.isEmpty { continue }
            outBuf.append(string: h.name)
            outBuf.append(": ")
            outBuf.append(v)
            outBuf.append("\r\n")
        }
    }

    func respond(_ code: Int, contentType: String, body: [UInt8], extraHeaders: Buffer? = nil) {
        let code = overrideStatus ?? code
        overrideStatus = nil
        // A request body that has not fully arrived cannot be skipped cheaply: close after answering.
        if !requestBodyComplete {
            if case .length(let n) = requestBody, inBuf.readable >= n {
                inBuf.readIndex += n
                requestBodyComplete = true
            } else {
                closeAfterResponse = true
            }
        }
        outBuf.clear()
        writeHeadStart(code)
        outBuf.append("Content-Type: ")
        outBuf.append(string: contentType)
        outBuf.append("\r\nContent-Length: ")
        outBuf.append(decimal: body.count)
        outBuf.append("\r\n")
        if let e = extraHeaders { outBuf.append(e.readableBytes) }
        writeHeadEnd(keepAlive: !closeAfterResponse)
        if req.method != .head { outBuf.append(body) }
        bodyBytesSent = req.method == .head ? 0 : body.count
        state = .local
        flushLocal()
    }

    /// Writes `outBuf` to the client; returns true when it is empty. Closes on error.
    @discardableResult
    func flushOut(more: Bool = false) -> Bool {
        while !outBuf.isEmpty {
            guard writable else {
                worker.loop.setDeadline(self, afterMillis: settings.effectiveSendTimeoutMs)
                return false
            }
            do {
                switch try (more ? Socket.writeMore(fd, outBuf.readPointer, outBuf.readable) : Socket.write(fd, outBuf.readPointer, outBuf.readable)) {
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
        if staticFile != nil {
            sendStaticBody()
            return
        }
        if flushOut() { finishRequest() }
    }

    // MARK: finishing

    func finishRequest() {
        if !inBackground { finishLog() }
        if backgroundUpdatePending {
            backgroundUpdatePending = false
            startBackgroundUpdate()
            return
        }
        inBackground = false
        if cache != nil { endCacheRequest() }
        if closeAfterResponse || peerClosed || worker.draining {
            close()
            return
        }
        // Ready for the next request (pipelined bytes may already be here).
        state = .head
        phase = .idle
        target = nil
        upstreamRuntime = nil
        if inBuf.isEmpty {
            // Between requests a connection holds no I/O buffers: they go back to the worker.
            worker.recycle(&inBuf)
            head.clear()
            if head.capacity > 4096 { head.release() }
            worker.recycle(&outBuf)
            worker.loop.setDeadline(self, afterMillis: settings.effectiveKeepaliveTimeoutMs)
        } else {
            worker.loop.setDeadline(self, afterMillis: settings.effectiveClientHeaderTimeoutMs)
        }
        readable = true
        drive()
    }

    func close() {
        guard state != .closed else { return }
        state = .closed
        inBackground = false
        gz?.end()
        gz = nil
        if cache != nil { endCacheRequest() }
        if let u = up {
            releasePeer(failed: false)
            u.close()
            up = nil
        }
        closeStaticFile()
        worker.loop.deregister(self)
        Socket.close(fd)
        worker.recycle(&inBuf)
        worker.recycle(&outBuf)
        head.release()
        worker.live[number] = nil
        worker.connectionClosed()
    }

    func log(_ level: ErrorLog.Level, _ message: String) {
        let el = worker.runtime.errorLog
        guard el.enabled(level) else { return }
        var m = message + ", client: \(peer.ip), server: \(server?.names.first ?? ""), request: \"\(String(decoding: requestLine(), as: UTF8.self))\""
        if let u = currentUpstreamText { m += ", upstream: \"\(u)\"" }
        if let h = req.host { m += ", host: \"\(String(decoding: head.readableBytes[h], as: UTF8.self))\"" }
        el.log(level, m, connection: number, worker: worker.index)
    }

    var currentUpstreamText: String? {
        guard upstreamRuntime != nil, peerIndex >= 0 else { return nil }
        return "http://\(peerText)\(String(decoding: upstreamURI, as: UTF8.self))"
    }

    func requestLine() -> [UInt8] {
        guard head.readable > 0, req.targetRange.upperBound > 0 else { return [] }
        var e = 0
        let b = head.readableBytes
        while e < b.count && b[e] != 0x0D && b[e] != 0x0A { e += 1 }
        return Array(b[0..<e])
    }

    // Static file state (StaticFiles.swift).
    var staticFile: Int32?
    /// Set when `staticFile` belongs to the worker's shared cache-file table (not closed here).
    var staticShared: SharedFile?
    var staticOffset = 0
    var staticRemaining = 0
    var corked = false
    /// The file's modification time for `expires modified …` (static responses only).
    var expiresMtime: Int?
    /// Copies of the response heads (client-facing and upstream's), kept only when a template
    /// reads `$sent_http_*` or `$upstream_http_*`.
    var sentHead: [UInt8] = []
    var upstreamHead: [UInt8] = []
}
