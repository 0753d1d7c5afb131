import Glibc
import LBConfig
import LBHTTP
import LBIO

/// The reverse proxy: peer choice, upstream request, response relay, retries (nginx's
/// ngx_http_upstream). Both sockets are edge-triggered; buffers are bounded, and a full buffer
/// stops reading from its source (backpressure in both directions).
extension ClientConnection {
    static let relayBuffer = 64 * 1024
    /// Bytes of a buffered request body moved to the upstream's buffer at a time.
    static let bodyChunk = 32 * 1024

    /// Checks, while the request is still going out, whether the upstream already sent a final
    /// response head; if so the rest of the request is dropped and the response goes to the
    /// client (nginx relays such an answer at once). Neither connection is kept alive after it.
    func upstreamAnsweredEarly(_ c: UpstreamConnection) -> Bool {
        _ = readUpstream(c, limit: ClientConnection.relayBuffer)
        guard c.inBuf.readable > 0 else { return false }
        var probe = ex.attempt.upScanner
        guard let end = try? probe.scan(c.inBuf.readableBytes, isRequest: false),
              let head = try? HeadParser.response(c.inBuf.readableBytes, start: 0, end: end),
              head.status >= 200 else { return false }
        if !ex.requestBodyComplete { closeAfterResponse = true }
        ex.responder = .proxy(.waitingHead)
        worker.loop.setDeadline(c, afterMillis: settings.resolved.proxyReadTimeoutMs)
        worker.loop.setDeadline(self, afterMillis: 0)
        readResponseHead(c)
        return true
    }

    func startProxy(_ t: ProxyTarget, runtime: UpstreamRuntime? = nil) {
        if t.upstream < 0 && runtime == nil { startVariableProxy(t); return } // RewriteProxy.swift
        ex.responder = .proxy(.idle)
        ex.target = t
        ex.upstreamRuntime = runtime ?? generation.upstreams[t.upstream]
        // A new upstream (after an internal redirect too): its peers are all untried.
        ex.tried = TriedSet()
        ex.tries = 0
        buildUpstreamURI(t, into: &ex.upstreamURI)
        ex.firstTryMillis = worker.loop.now
        ex.requestBodyForwarded = 0
        sendContinueIfExpected()
        let inFileOnly = settings.resolved.clientBodyInFileOnly != .off && req.hasBody
        if ex.body == nil && (!ex.requestBodyComplete || inFileOnly) && (settings.resolved.proxyRequestBuffering || !settings.resolved.passesClientBody || inFileOnly) {
            // nginx's default: the whole body first, then the upstream. A slow upload holds no
            // upstream connection, and every try can send the body again.
            startReadingBody()
            return
        }
        nextAttempt()
    }

    /// Reads the whole request body into a fresh `BufferedBody` before going on (the first try,
    /// or the content phase for `mirror`), timed by `client_body_timeout`.
    func startReadingBody() {
        ex.body = makeBufferedBody()
        ex.responder = .proxy(.readingBody)
        worker.loop.setDeadline(self, afterMillis: settings.resolved.clientBodyTimeoutMs)
        readRequestBody()
    }

    /// `Expect: 100-continue` is answered before the body is read (not to subrequests, nor when
    /// the body is here already).
    func sendContinueIfExpected() {
        // An HTTP/2 stream's client gets no interim head (its DATA flows under flow control).
        if req.expectContinue && req.hasBody && !ex.requestBodyComplete && inBuf.readable == 0 && ex.parentExchange == nil && !transport.takesResponseHeads {
            outBuf.append("HTTP/1.1 100 Continue\r\n\r\n")
            flushOut()
        }
    }

    /// Where the request body is buffered: memory up to `client_body_buffer_size`, then a
    /// temporary file (named and kept per `client_body_in_file_only`).
    func makeBufferedBody() -> BufferedBody {
        BufferedBody(memoryLimit: settings.resolved.clientBodyBufferSize,
                     tempDirectory: joinPath(table.main.prefix, settings.resolved.clientBodyTempPath),
                     expected: req.contentLength, named: settings.resolved.clientBodyInFileOnly)
    }

    /// Reads the request body into `ex.body` (decoded when chunked) until it is complete, then
    /// starts the first try (or, read for `mirror`, goes on with the content phase).
    func readRequestBody() {
        guard let body = ex.body else { return }
        while !ex.requestBodyComplete {
            if inBuf.isEmpty {
                if !readable {
                    worker.loop.setDeadline(self, afterMillis: settings.resolved.clientBodyTimeoutMs)
                    return
                }
                if !readClient(limit: ClientConnection.relayBuffer) && inBuf.isEmpty {
                    log(.info, "client prematurely closed connection while reading client request body")
                    abortProxy()
                    return
                }
                if inBuf.isEmpty { return }
            }
            let take: Int
            do {
                // Stored decoded: a chunked body goes upstream with a Content-Length.
                take = try consumeRequestBody(inBuf.readableBytes, decoded: true) { try body.append($0) }
            } catch let e as BufferedBody.StoreError {
                log(.crit, e.message)
                upstreamFailedFatal(500)
                return
            } catch {
                log(.info, "client sent invalid chunked body")
                upstreamFailedFatal(400)
                return
            }
            inBuf.readIndex += take
            ex.bodyReceived += take
            if ex.bodyLimit > 0 && body.length > ex.bodyLimit {
                log(.error, "client intended to send too large chunked body: \(body.length) bytes")
                upstreamFailedFatal(413)
                return
            }
        }
        worker.loop.setDeadline(self, afterMillis: 0)
        ex.responder = .proxy(.idle)
        if let resume = ex.mirrorResume {
            ex.mirrorResume = nil
            mirrorBodyRead(resume) // Mirror.swift
            return
        }
        nextAttempt()
    }

    /// Advances the request body's framing over `avail` and returns how many of its bytes belong
    /// to the body; `sink` gets the payload (the decoded chunks when `decoded`). The body is
    /// complete when `ex.requestBodyComplete` turns true. Throws the framer's HTTPError or what
    /// `sink` throws.
    func consumeRequestBody(_ avail: UnsafeRawBufferPointer, decoded: Bool, _ sink: (UnsafeRawBufferPointer) throws -> Void) throws -> Int {
        switch ex.requestBody {
        case .length(let n):
            let take = min(n, avail.count)
            try sink(UnsafeRawBufferPointer(rebasing: avail[0..<take]))
            ex.requestBody = .length(n - take)
            if n - take == 0 { ex.requestBodyComplete = true }
            return take
        case .chunked(var f):
            var failure: Error?
            let take = try f.consume(avail, data: { r in
                guard decoded, failure == nil else { return }
                do { try sink(UnsafeRawBufferPointer(rebasing: avail[r])) } catch { failure = error }
            })
            if let failure { throw failure }
            if !decoded { try sink(UnsafeRawBufferPointer(rebasing: avail[0..<take])) }
            if f.isDone { ex.requestBodyComplete = true }
            ex.requestBody = .chunked(f)
            return take
        default:
            ex.requestBodyComplete = true
            return 0
        }
    }

    /// The URI sent upstream: unchanged without a URI part; else the location prefix replaced.
    func buildUpstreamURI(_ t: ProxyTarget, into out: inout [UInt8]) {
        if ex.parentExchange != nil { subrequestUpstreamURI(t, into: &out); return }
        if ex.rewrite != nil && rewrittenUpstreamURI(t, into: &out) { return } // Rewrite.swift
        let hb = head.readableBytes
        guard let replacement = t.uri else {
            out.removeAll(keepingCapacity: true)
            if req.absoluteHost != nil {
                out.append(contentsOf: UnsafeRawBufferPointer(rebasing: hb[req.pathRange]))
                if let q = req.queryRange { out.append(UInt8(ascii: "?")); out.append(contentsOf: UnsafeRawBufferPointer(rebasing: hb[q])) }
                if out.isEmpty { out.append(UInt8(ascii: "/")) }
                return
            }
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: hb[req.targetRange]))
            return
        }
        out = uriWithLocationPrefixReplaced(by: replacement)
        if let q = req.queryRange { out += [UInt8(ascii: "?")] + hb[q] }
    }

    /// The URI with the part the location's prefix matched replaced by `replacement` (a
    /// `proxy_pass` URI part), escaped; a regex location replaces nothing.
    func uriWithLocationPrefixReplaced(by replacement: String) -> [UInt8] {
        var prefixLen = 0
        switch ex.location.match {
        case .prefix(let p), .prefixNoRegex(let p), .exact(let p): prefixLen = min(p.utf8.count, ex.uri.count)
        default: prefixLen = 0
        }
        return Array(replacement.utf8) + URI.escapePath(Array(ex.uri[prefixLen...]))
    }

    func nextAttempt() {
        guard let rt = ex.upstreamRuntime else { return }
        let now = worker.loop.now
        var clientAddr: [UInt8] = []
        var key: [UInt8] = []
        switch rt.group.policy {
        case .ipHash: clientAddr = clientAddress.ipBytes
        case .hash(let t, _): key = evaluate(t)
        default: break
        }
        var walk = ex.tried
        let chosen = rt.balancer.withLock { core -> (Int, SocketAddress, String)? in
            guard let p = core.pick(now: now, tried: &walk, clientAddress: clientAddr, hashKey: key) else { return nil }
            return (p, core.peers[p].address, core.peers[p].text)
        }
        guard let (p, addr, text) = chosen else {
            ex.attempt.peerIndex = -1
            if ex.tries == 0 { log(.error, "no live upstreams while connecting to upstream") }
            if ex.upstreamLog.isEmpty || ex.tries == 0 { ex.upstreamLog.append(UpstreamAttempt(addr: rt.group.name, status: 502, time: 0, connect: -1, header: -1, length: 0, sent: 0)) }
            if ex.cache != nil && serveStaleOnFailure(.error) { return }
            proxyError(502)
            return
        }
        ex.tried = walk
        ex.tries += 1
        ex.attempt.restart(peer: p, text: text, start: monotonicMicros(), headLimit: settings.resolved.proxyBufferSize)
        // A pooled keep-alive connection first.
        if rt.group.keepalive != nil, let c = worker.takeIdle(upstream: rt.id, peer: p), c.suits(ex.target!) {
            c.pooled = false
            c.owner = self
            c.requests += 1
            ex.up = c
            ex.attempt.connectDone = ex.attempt.attemptStart
            ex.responder = .proxy(.sending)
            buildUpstreamRequest(c)
            if ex.variableFailed { upstreamFailedFatal(500); return }
            worker.loop.setDeadline(c, afterMillis: settings.resolved.proxySendTimeoutMs)
            upstreamEvent()
            return
        }
        guard worker.roomForConnection() else {
            log(.alert, "\(worker.workerConnections) worker_connections are not enough while connecting to upstream")
            releasePeer(failed: false)
            proxyError(500)
            return
        }
        do {
            let (fd, immediate) = try Socket.connect(addr)
            let c = UpstreamConnection(worker: worker, fd: fd, upstreamID: rt.id, peerIndex: p, address: addr)
            c.owner = self
            c.requests = 1
            c.createdMillis = worker.loop.now
            ex.up = c
            try worker.loop.register(c, events: EventLoop.readable | EventLoop.writable | EventLoop.edge | EventLoop.hangup)
            ex.responder = .proxy(.connecting)
            if !startUpstreamTLS(c, ex.target!) { return }
            if immediate { c.writable = true }
            buildUpstreamRequest(c)
            if ex.variableFailed { upstreamFailedFatal(500); return }
            worker.loop.setDeadline(c, afterMillis: settings.resolved.proxyConnectTimeoutMs)
            if immediate { upstreamEvent() }
        } catch {
            ex.up?.close()
            ex.up = nil
            upstreamFailed(.error("connect() failed (\(error.errno): \(String(cString: strerror(error.errno)))) while connecting to upstream"))
        }
    }

    /// Writes the request head for the upstream into its out buffer (nginx's header rules).
    func buildUpstreamRequest(_ c: UpstreamConnection) {
        if ex.target!.kind != .http { buildAppServerRequest(c); return }
        c.fastcgi = nil
        let hb = head.readableBytes
        let http11 = settings.resolved.proxyHTTP11 || req.chunked
        var o = Buffer()
        swap(&o, &c.outBuf)
        o.clear()
        o.reserve(512 + head.readable)
        if settings.resolved.proxyProtocol && c.requests == 1 {
            // A new connection: the PROXY protocol header first, naming the client (after realip)
            // and the address it reached.
            let local = Socket.localAddress(fd), client = clientAddress
            o.append(string: ProxyProtocolWriter.v1(clientIP: client.ip, clientPort: client.port, localIP: local.ip, localPort: local.port))
        }
        if let m = settings.proxyMethod {
            o.append(evaluate(m))
        } else if headConverted || ex.parentExchange != nil {
            o.append("GET") // nginx's subrequests are GETs
        } else {
            o.append(UnsafeRawBufferPointer(rebasing: hb[req.methodRange]))
        }
        o.append(byte: 0x20)
        o.append(ex.upstreamURI)
        o.append(http11 ? " HTTP/1.1\r\n" : " HTTP/1.0\r\n")
        // proxy_set_header (or nginx's defaults), then the client's other headers.
        let loc = ex.location
        ex.sentConnectionClose = !loc.proxySetsConnection
        for h in loc.proxyHeaders {
            if let lit = h.literal {
                if lit.isEmpty { continue }
                if h.isConnection { ex.sentConnectionClose = lit.withUnsafeBytes { ASCII.containsToken($0, 0..<lit.count, "close") } }
                o.append(h.name)
                o.append(": ")
                o.append(lit)
            } else {
                let v = evaluate(h.value)
                if v.isEmpty { continue }
                if h.isConnection { ex.sentConnectionClose = v.withUnsafeBytes { ASCII.containsToken($0, 0..<v.count, "close") } }
                o.append(h.name)
                o.append(": ")
                o.append(v)
            }
            o.append("\r\n")
        }
        if !loc.proxySetsHost {
            o.append("Host: ")
            o.append(string: ex.target!.hostHeader)
            o.append("\r\n")
        }
        if !loc.proxySetsConnection {
            o.append("Connection: close\r\n")
        }
        let caching = ex.cache != nil
        if caching, let cr = ex.cache, cr.revalidating, let e = cr.entry {
            // proxy_cache_revalidate: ask the upstream whether the stale entry is still good.
            if let tag = e.etag { o.append("If-None-Match: "); o.append(tag); o.append("\r\n") }
            if let lm = e.lastModified { o.append("If-Modified-Since: "); o.append(lm); o.append("\r\n") }
        }
        if settings.resolved.proxyPassRequestHeaders {
            for f in req.headers {
                let n = f.name
                if caching {
                    // The client's validators and ranges are answered from the cache, not passed
                    // (nginx's proxy cache headers).
                    switch n.count {
                    case 17 where ASCII.equalsLower(hb, n, "if-modified-since"), 19 where ASCII.equalsLower(hb, n, "if-unmodified-since"),
                         13 where ASCII.equalsLower(hb, n, "if-none-match"), 8 where ASCII.equalsLower(hb, n, "if-match"),
                         5 where ASCII.equalsLower(hb, n, "range"), 8 where ASCII.equalsLower(hb, n, "if-range"): continue
                    default: break
                    }
                }
                switch n.count {
                case 4 where ASCII.equalsLower(hb, n, "host"): continue
                case 10 where ASCII.equalsLower(hb, n, "connection"), 10 where ASCII.equalsLower(hb, n, "keep-alive"): continue
                case 2 where ASCII.equalsLower(hb, n, "te"): continue
                case 6 where ASCII.equalsLower(hb, n, "expect"): continue
                case 7 where ASCII.equalsLower(hb, n, "upgrade"): continue
                case 14 where ASCII.equalsLower(hb, n, "content-length"): continue
                case 17 where ASCII.equalsLower(hb, n, "transfer-encoding"): continue
                default: break
                }
                if !loc.proxyHeaders.isEmpty {
                    var skip = false
                    for h in loc.proxyHeaders where h.lowerName.count == n.count {
                        let name = h.lowerName
                        var same = true
                        for k in 0..<name.count where ASCII.lower(hb[n.lowerBound + k]) != name[k] { same = false; break }
                        if same { skip = true; break }
                    }
                    if skip { continue }
                }
                o.append(UnsafeRawBufferPointer(rebasing: hb[n.lowerBound..<f.value.upperBound]))
                o.append("\r\n")
            }
        }
        if let setBody = settings.proxySetBody {
            // proxy_set_body: this body, whatever the client sent (read and dropped).
            let body = evaluate(setBody)
            o.append("Content-Length: ")
            o.append(decimal: body.count)
            o.append("\r\n\r\n")
            o.append(body)
            swap(&o, &c.outBuf)
            o.release()
            return
        } else if !settings.resolved.passesClientBody || ex.parentExchange != nil {
            // No body upstream, so no framing header either.
        } else if let body = ex.body {
            o.append("Content-Length: ")
            o.append(decimal: body.length)
            o.append("\r\n")
        } else if req.chunked {
            o.append("Transfer-Encoding: chunked\r\n")
        } else if let cl = req.contentLength, req.method != .get || cl > 0 {
            o.append("Content-Length: ")
            o.append(decimal: cl)
            o.append("\r\n")
        }
        o.append("\r\n")
        swap(&o, &c.outBuf)
        o.release()
    }

    // MARK: events from either side

    func proxyClientEvent(_ phase: Responder.ProxyPhase) {
        switch phase {
        case .readingBody:
            readRequestBody()
        case .sending:
            if readable && !ex.requestBodyComplete {
                upstreamEvent()
            } else if peerClosed && !ex.inBackground && !ignoresClientAbort {
                clientClosedWhileWaiting()
            }
        case .relaying:
            relay()
        case .waitingHead, .connecting, .idle, .cacheWait:
            // Note a client that went away; the upstream side drives progress.
            if peerClosed && !ex.inBackground && !ignoresClientAbort { clientClosedWhileWaiting() } // IgnoreClientAbort.swift
        }
    }

    func upstreamEvent() {
        let phase: Responder.ProxyPhase
        switch ex.responder {
        case .proxy(let p): phase = p
        case .tunnel: pumpTunnel(); return
        default: return
        }
        guard let c = ex.up else { return }
        switch phase {
        case .connecting:
            if !c.connected {
                guard c.writable || c.peerClosed else { return }
                let err = Socket.pendingError(c.fd)
                if err != 0 {
                    upstreamFailed(.error("connect() failed (\(err): \(String(cString: strerror(err)))) while connecting to upstream"))
                    return
                }
                c.connected = true
            }
            if c.upstreamTLS != nil && !driveUpstreamHandshake(c) { return }
            ex.attempt.connectDone = monotonicMicros()
            ex.responder = .proxy(.sending)
            worker.loop.setDeadline(c, afterMillis: settings.resolved.proxySendTimeoutMs)
            fallthrough
        case .sending:
            sendRequest(c)
        case .waitingHead:
            readResponseHead(c)
        case .relaying:
            relay()
        case .idle, .cacheWait, .readingBody:
            break
        }
    }

    func upstreamTimedOut() {
        let phase: Responder.ProxyPhase
        switch ex.responder {
        case .proxy(let p): phase = p
        case .tunnel: phase = .relaying // as a relayed body: nginx's "while reading upstream"
        default: return
        }
        switch phase {
        case .connecting:
            upstreamFailed(.timeout("upstream timed out (110: Connection timed out) while \(ex.up?.connected == true ? "SSL handshaking" : "connecting") to upstream"))
        case .sending:
            upstreamFailed(.timeout("upstream timed out (110: Connection timed out) while sending request to upstream"))
        case .waitingHead:
            upstreamFailed(.timeout("upstream timed out (110: Connection timed out) while reading response header from upstream"))
        case .relaying:
            log(.error, "upstream timed out (110: Connection timed out) while reading upstream")
            releasePeer(failed: true)
            abortProxy()
        case .idle, .cacheWait, .readingBody:
            break
        }
    }

    /// Sends the head and whatever body is available; moves on to waiting for the response.
    func sendRequest(_ c: UpstreamConnection) {
        // An upstream may answer before it has the whole request (a 413 to a large upload).
        if c.readable || c.peerClosed, upstreamAnsweredEarly(c) { return }
        while true {
            if !c.outBuf.isEmpty {
                guard c.writable else { return }
                do {
                    switch try c.transport.write(c.fd, c.outBuf.readPointer, c.outBuf.readable) {
                    case .done(let n):
                        c.outBuf.readIndex += n
                        ex.attempt.upstreamBytesSent += n
                        ex.attempt.requestSent = true
                        worker.loop.setDeadline(c, afterMillis: settings.resolved.proxySendTimeoutMs)
                    case .wouldBlock:
                        c.writable = false
                        worker.loop.setDeadline(c, afterMillis: settings.resolved.proxySendTimeoutMs)
                        return
                    }
                } catch {
                    // A peer that answered and closed without reading the rest: its answer may
                    // be waiting even though no readiness event has told us yet.
                    c.readable = true
                    if upstreamAnsweredEarly(c) { return }
                    upstreamFailed(.error("\(error) while sending request to upstream"))
                    return
                }
                continue
            }
            // A buffered body: from memory or its file, a bounded chunk at a time, from the start
            // on every try.
            if let body = ex.body, settings.resolved.passesClientBody, ex.attempt.bodyOffset < body.length {
                if ex.target!.kind == .fastcgi {
                    guard fillFastCGIStdin(c, body) else {
                        log(.crit, "the buffered request body could not be read back")
                        upstreamFailedFatal(500)
                        return
                    }
                    continue
                }
                c.outBuf.clear()
                c.outBuf.reserve(ClientConnection.bodyChunk)
                let n = body.read(at: ex.attempt.bodyOffset, into: c.outBuf.writePointer, max: min(c.outBuf.writableTail, ClientConnection.bodyChunk))
                guard n > 0 else {
                    log(.crit, "the buffered request body could not be read back")
                    upstreamFailedFatal(500)
                    return
                }
                c.outBuf.writeIndex += n
                ex.attempt.bodyOffset += n
                continue
            }
            if ex.requestBodyComplete { break }
            // Move request body bytes from the client into the upstream buffer (bounded).
            if inBuf.isEmpty {
                if !readable {
                    // Waiting on the client's body: only the client is timed (client_body_timeout);
                    // a slow upload is never blamed on the upstream.
                    worker.loop.setDeadline(self, afterMillis: settings.resolved.clientBodyTimeoutMs)
                    worker.loop.setDeadline(c, afterMillis: 0)
                    return
                }
                if !readClient(limit: ClientConnection.relayBuffer) && inBuf.isEmpty {
                    abortProxy()
                    return
                }
                if inBuf.isEmpty { return }
            }
            let avail = inBuf.readableBytes
            let take: Int
            do {
                // Streamed as it came, chunk framing included.
                take = try consumeRequestBody(avail, decoded: false) { _ in }
            } catch {
                log(.info, "client sent invalid chunked body")
                upstreamFailedFatal(400)
                return
            }
            ex.bodyReceived += take
            if ex.bodyLimit > 0 && ex.bodyReceived > ex.bodyLimit + 64 && req.chunked {
                log(.error, "client intended to send too large chunked body")
                upstreamFailedFatal(413)
                return
            }
            c.outBuf.compact()
            c.outBuf.append(UnsafeRawBufferPointer(rebasing: avail[0..<take]))
            inBuf.readIndex += take
            ex.requestBodyForwarded += take
            worker.loop.setDeadline(self, afterMillis: 0)
        }
        ex.responder = .proxy(.waitingHead)
        ex.attempt.requestComplete = true
        worker.loop.setDeadline(c, afterMillis: settings.resolved.proxyReadTimeoutMs)
        if c.readable { readResponseHead(c) }
    }

    /// Reads from the upstream into its buffer; false on EOF or error.
    func readUpstream(_ c: UpstreamConnection, limit: Int) -> Bool {
        if let f = c.fastcgi { return readFastCGI(c, f, limit: limit) }
        while c.readable && c.inBuf.readable < limit {
            if c.inBuf.writableTail < 2048 {
                c.inBuf.compact()
                if c.inBuf.writableTail < 2048 { c.inBuf.reserve(min(max(c.inBuf.capacity * 2, 16384), limit + 2048)) }
            }
            let room = min(c.inBuf.writableTail, limit - c.inBuf.readable)
            if room <= 0 { break }
            do {
                switch try c.transport.read(c.fd, c.inBuf.writePointer, room) {
                case .done(0):
                    c.readable = false
                    c.peerClosed = true
                    return false
                case .done(let n):
                    c.inBuf.writeIndex += n
                    if n < room { c.readable = false }
                case .wouldBlock:
                    c.readable = false
                }
            } catch {
                c.readable = false
                c.peerClosed = true
                return false
            }
        }
        return true
    }

    /// The upstream closed before its whole response head: nginx's premature close, or, when
    /// `fastcgi_catch_stderr` caught the application's stderr, an invalid header.
    func headClosedFailure(_ c: UpstreamConnection) -> UpstreamFailure {
        c.fastcgi?.caughtStderr == true
            ? .invalidHeader("upstream sent invalid header while reading response header from upstream")
            : .error("upstream prematurely closed connection while reading response header from upstream")
    }

    func readResponseHead(_ c: UpstreamConnection) {
        // The head must fit proxy_buffer_size (the scanner's limits); read at least one byte more
        // than that, so a head too big is seen at once instead of waiting for more.
        let limit = max(ClientConnection.relayBuffer, settings.resolved.proxyBufferSize + 1)
        while true {
            let alive = readUpstream(c, limit: limit)
            if c.inBuf.readable > 0 {
                do {
                    guard let end = try ex.attempt.upScanner.scan(c.inBuf.readableBytes, isRequest: false) else {
                        // A FIN that came with the last bytes (EPOLLRDHUP) ends the head too: the
                        // short read drained the socket, and no other readiness edge will come.
                        if !alive || (c.peerClosed && !c.readable) {
                            upstreamFailed(headClosedFailure(c))
                        }
                        return
                    }
                    try HeadParser.response(c.inBuf.readableBytes, start: 0, end: end, into: &ex.attempt.response)
                    ex.attempt.upScanner.reset()
                    if ex.attempt.response.status >= 100 && ex.attempt.response.status < 200 && ex.attempt.response.status != 101 {
                        c.inBuf.readIndex += end // interim response: skip it
                        continue
                    }
                    ex.attempt.headerDone = monotonicMicros()
                    handleResponseHead(c, headLength: end)
                } catch {
                    // The scanner's size limits are proxy_buffer_size ("too large head", "too long …").
                    upstreamFailed(.invalidHeader(error.reason.hasPrefix("too")
                        ? "upstream sent too big header while reading response header from upstream"
                        : "upstream sent invalid header while reading response header from upstream"))
                }
                return
            }
            if !alive || (c.peerClosed && !c.readable) {
                upstreamFailed(headClosedFailure(c))
            }
            return
        }
    }

    func handleResponseHead(_ c: UpstreamConnection, headLength: Int) {
        if clientGoneBeforeHead() { return } // IgnoreClientAbort.swift
        // Fields read through the location, not a copy of its settings (a copy retains every
        // reference in the struct: about 1,000 instructions a request, measured).
        let loc: Location = ex.location
        let code = ex.attempt.response.status
        // proxy_next_upstream http_XXX: only while another try is possible, else the response passes.
        let next = loc.settings.resolved.proxyNextUpstream
        let statusCondition = UpstreamConditions.status(code)
        if !statusCondition.isEmpty, next.contains(statusCondition), canRetry() {
            c.inBuf.readIndex += headLength
            upstreamFailed(.status(code))
            return
        }
        // proxy_intercept_errors: a status of 300 or more that an error_page names is answered by
        // that error_page instead of the upstream's response (nginx's intercept_errors).
        if code >= 300, loc.settings.resolved.proxyInterceptErrors, let pages = loc.settings.errorPages, pages.contains(where: { $0.codes.contains(code) }) {
            c.inBuf.readIndex += headLength
            recordUpstream(status: code)
            releasePeer(failed: false)
            c.close()
            ex.up = nil
            ex.responder = .proxy(.idle)
            respondError(code)
            return
        }
        if ex.parentExchange != nil { subrequestAnswered(c, headLength: headLength); return }
        if let target = accelRedirectTarget(c.inBuf.readableBytes) {
            followAccelRedirect(c, headLength: headLength, to: target)
            return
        }
        if ex.cache != nil && cacheResponseHead(c, headLength: headLength) { return }
        let b = c.inBuf.readableBytes
        let noBody = (req.method == .head && !headConverted) || code == 204 || code == 304 || (code >= 100 && code < 200)
        // An error_page redirect's status (nginx's `r->err_status`) replaces the upstream's.
        let status = ex.overrideStatus ?? code
        let overridden = ex.overrideStatus != nil
        ex.overrideStatus = nil
        if code == 101 {
            if req.upgrade {
                let d = decideHead(HeadStageResponse(status: status, source: .proxied, upgrade: true))
                writeResponseHead(b, headLength: headLength, d, chunkedOut: false, upgrade: true, reasonOverride: overridden)
                c.inBuf.readIndex += headLength
                startTunnel(c)
                return
            }
            upstreamFailed(.invalidHeader("upstream sent unexpected 101 response"))
            return
        }
        // chunked_transfer_encoding off: a body of unknown length goes out unframed, then the
        // connection closes (gzip output included), as nginx.
        let chunking = loc.settings.resolved.chunkedTransferEncoding
        // The response-head stage: gzip (the body compressed as it passes, sent chunked to
        // HTTP/1.1 clients), Vary, expires, add_header, Connection.
        // A HEAD is answered with the head a GET would have (gzip's fields, no length), as nginx.
        let headOnly = req.method == .head && !headConverted
        let gz = (!noBody || headOnly) && !ex.inBackground && loc.settings.resolved.gzip
            ? proxiedGzipFacts(UnsafeRawBufferPointer(rebasing: b[0..<headLength])) : (qualifies: false, facts: GzipResponseFacts())
        var d = decideHead(HeadStageResponse(status: status, source: .proxied, contentLength: ex.attempt.response.contentLength,
                                             gzipQualifies: gz.qualifies, gzipPossible: true), gzipFacts: gz.facts)
        if d.gzip, !noBody, let g = GzipStream(level: loc.settings.resolved.gzipCompLevel, contentLength: ex.attempt.response.contentLength) {
            ex.gz = g
            ex.gzFinished = false
        }
        if !noBody && !ex.inBackground && loc.settings.subFilters != nil {
            ex.sub = subFilterFor(contentType: ClientConnection.header("content-type", in: Array(b[0..<headLength])).map { String(decoding: $0, as: UTF8.self) },
                                  contentLength: ex.attempt.response.contentLength)
        }
        let plan = ProxyPolicy.relayPlan(bodyless: noBody, upstreamChunked: ex.attempt.response.chunked,
                                         contentLength: ex.attempt.response.contentLength,
                                         http10Client: req.versionMinor == 0 || req.isHTTP09, gzip: ex.gz != nil || ex.sub != nil,
                                         chunking: chunking, keepAliveAllowed: !closeAfterResponse)
        switch plan.framing {
        case .none: ex.attempt.responseFraming = .none
        case .length(let n): ex.attempt.responseFraming = .length(n)
        case .chunked: ex.attempt.responseFraming = .chunked(ChunkedFramer())
        case .untilClose: ex.attempt.responseFraming = .untilClose
        }
        ex.attempt.dechunk = plan.dechunk
        if !plan.keepAlive {
            closeAfterResponse = true
            d.bodyEndsWithClose()
        }
        writeResponseHead(b, headLength: headLength, d, chunkedOut: plan.chunkedOut, upgrade: false, reasonOverride: overridden,
                          gzipped: ex.gz != nil || (d.gzip && noBody))
        c.inBuf.readIndex += headLength
        if noBody { ex.attempt.responseFraming = .none }
        ex.responder = .proxy(.relaying)
        ex.attempt.relayable = 0
        worker.loop.setDeadline(c, afterMillis: loc.settings.resolved.proxyReadTimeoutMs)
        relay()
    }

    /// The value of the upstream's `X-Accel-Redirect`, unless `proxy_ignore_headers` (or
    /// `fastcgi_`/`uwsgi_ignore_headers`) names it.
    func accelRedirectTarget(_ b: UnsafeRawBufferPointer) -> [UInt8]? {
        guard let r = ex.attempt.response.xAccelRedirect, !r.isEmpty else { return nil }
        if settings.resolved.proxyIgnoreHeaders.contains(.xAccelRedirect) { return nil }
        return Array(b[r])
    }

    /// `X-Accel-Redirect` (nginx's `ngx_http_upstream_process_headers`): the upstream's answer is
    /// dropped and its connection closed; Content-Type, Set-Cookie (through proxy_cookie_*),
    /// Content-Disposition, Cache-Control and Expires are kept for the response that follows, as
    /// is `X-Accel-Limit-Rate`; then an internal redirect to the URI (a request other than HEAD
    /// goes on as GET) or to the `@named` location (method kept). An unsafe URI is a 404.
    func followAccelRedirect(_ c: UpstreamConnection, headLength: Int, to value: [UInt8]) {
        let b = c.inBuf.readableBytes
        var kept: [UInt8] = []
        func keep(_ name: StaticString, _ v: some Sequence<UInt8>) {
            kept.append(contentsOf: UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
            kept += Array(": ".utf8)
            kept.append(contentsOf: v)
            kept += Array("\r\n".utf8)
        }
        for f in ex.attempt.response.headers {
            let n = f.name
            switch n.count {
            case 12 where ASCII.equalsLower(b, n, "content-type"): ex.contentTypeOverride = String(decoding: b[f.value], as: UTF8.self)
            case 10 where ASCII.equalsLower(b, n, "set-cookie"): keep("Set-Cookie", rewrittenCookie(b[f.value]).map { Array($0.utf8) } ?? Array(b[f.value]))
            case 19 where ASCII.equalsLower(b, n, "content-disposition"): keep("Content-Disposition", b[f.value])
            case 13 where ASCII.equalsLower(b, n, "cache-control"): keep("Cache-Control", b[f.value])
            case 7 where ASCII.equalsLower(b, n, "expires"): keep("Expires", b[f.value])
            case 18 where ASCII.equalsLower(b, n, "x-accel-limit-rate"): acceptAccelLimitRate(b[f.value])
            default: break
            }
        }
        c.inBuf.readIndex += headLength
        recordUpstream(status: ex.attempt.response.status)
        releasePeer(failed: false)
        c.close()
        ex.up = nil
        ex.responder = .proxy(.idle)
        ex.keptHeaders += kept
        if value.first == UInt8(ascii: "@") {
            guard let named = ex.server.named[String(decoding: value.dropFirst(), as: UTF8.self)] else {
                log(.error, "could not find named location \"\(String(decoding: value, as: UTF8.self))\"")
                respondError(500)
                return
            }
            guard internalRedirect(to: value) else { return }
            enterNamedLocation(named)
            return
        }
        guard let (uri, args) = AccelRedirect.target(value) else {
            log(.error, "unsafe URI \"\(String(decoding: value, as: UTF8.self))\" was detected")
            respondError(404)
            return
        }
        changeMethodToGET()
        guard internalRedirect(to: uri) else { return }
        redirectInternally(to: uri, args: args)
    }

    /// The client's response head from the upstream's: nginx hides Server, Date, Connection,
    /// Keep-Alive, X-Accel-*, and what `proxy_hide_header` names; adds its own Server and Date.
    func writeResponseHead(_ b: UnsafeRawBufferPointer, headLength: Int, _ d: HeadDecision, chunkedOut: Bool, upgrade: Bool,
                           contentLength: Int? = nil, extra: String? = nil, reasonOverride: Bool = false, gzipped: Bool = false,
                           contentType: String? = nil) {
        // Kept before add_header is evaluated: `$upstream_http_*` and `$upstream_cookie_*` there
        // read this response's head, as nginx's do.
        if table.usesResponseHeaderVariables {
            ex.upstreamHead.removeAll(keepingCapacity: true)
            ex.upstreamHead.append(contentsOf: UnsafeRawBufferPointer(rebasing: b[0..<headLength]))
        }
        outBuf.clear()
        writeHeadStart(d, reason: reasonOverride ? nil : UnsafeRawBufferPointer(rebasing: b[ex.attempt.response.reasonRange]))
        _ = resolveExpires(upstreamHead: UnsafeRawBufferPointer(rebasing: b[0..<headLength])) // `expires $var`, before its headers go

        let hide = settings.resolved.proxyHideHeaders
        let pass = settings.resolved.proxyPassHeaders
        for f in ex.attempt.response.headers {
            let n = f.name
            switch n.count {
            case 4 where ASCII.equalsLower(b, n, "date"):
                if !pass.contains(lowercased: "date") { continue }
            case 6 where ASCII.equalsLower(b, n, "server"):
                if !pass.contains(lowercased: "server") { continue }
            case 10 where ASCII.equalsLower(b, n, "connection"), 10 where ASCII.equalsLower(b, n, "keep-alive"): continue
            case 17 where ASCII.equalsLower(b, n, "transfer-encoding"): continue
            case 14 where ASCII.equalsLower(b, n, "content-length"):
                if ex.attempt.response.chunked || gzipped || contentLength != nil || ex.sub != nil { continue }
            case 13 where ex.sub != nil && ASCII.equalsLower(b, n, "last-modified"):
                if !subFilterKeepsValidators { continue }
            case 4 where ASCII.equalsLower(b, n, "etag"):
                if ex.sub != nil && !subFilterKeepsValidators { continue }
                if gzipped || ex.sub != nil {
                    outBuf.append("ETag: ")
                    outBuf.append(string: GzipPolicy.weakened(String(decoding: b[f.value], as: UTF8.self)))
                    outBuf.append("\r\n")
                    continue
                }
            case 7 where ASCII.equalsLower(b, n, "upgrade"):
                if !upgrade { continue }
            case 12 where ASCII.equalsLower(b, n, "content-type"):
                if let t = contentType {
                    outBuf.append("Content-Type: ")
                    outBuf.append(string: withCharset(t))
                    outBuf.append("\r\n")
                    continue
                }
                if case .some(.some) = settings.charset {
                    let t = String(decoding: b[f.value], as: UTF8.self)
                    let c = withCharset(t)
                    if c != t {
                        outBuf.append("Content-Type: ")
                        outBuf.append(string: c)
                        outBuf.append("\r\n")
                        continue
                    }
                }
            case 7 where ASCII.equalsLower(b, n, "expires"):
                if expiresApplies { continue } // replaced by ours, as nginx's expires does
            case 13 where ASCII.equalsLower(b, n, "cache-control"):
                if expiresApplies { continue }
            case 18 where ASCII.equalsLower(b, n, "x-accel-limit-rate"):
                acceptAccelLimitRate(b[f.value])
                continue
            default:
                if n.count > 8 && ASCII.equalsLower(b, n.lowerBound..<(n.lowerBound + 8), "x-accel-") { continue }
            }
            if !hide.isEmpty && hide.contains(b, n) { continue }
            if n.count == 8, ASCII.equalsLower(b, n, "location"), let rewritten = redirectedLocation(Array(b[f.value])) {
                outBuf.append("Location: ")
                outBuf.append(absoluteLocation(rewritten)) // a rewritten `/…` goes through absolute_redirect, as nginx
                outBuf.append("\r\n")
                continue
            }
            if n.count == 10, ASCII.equalsLower(b, n, "set-cookie"), let cookie = rewrittenCookie(b[f.value]) {
                outBuf.append("Set-Cookie: ")
                outBuf.append(string: cookie)
                outBuf.append("\r\n")
                continue
            }
            outBuf.append(UnsafeRawBufferPointer(rebasing: b[n.lowerBound..<f.value.upperBound]))
            outBuf.append("\r\n")
        }
        if chunkedOut { outBuf.append("Transfer-Encoding: chunked\r\n") }
        if gzipped { outBuf.append("Content-Encoding: gzip\r\n") }
        appendVary(d.vary)
        if let n = contentLength {
            outBuf.append("Content-Length: ")
            outBuf.append(decimal: n)
            outBuf.append("\r\n")
        }
        if let e = extra { outBuf.append(string: e) }
        writeHeadEnd()
    }

    /// `proxy_cookie_domain` / `proxy_cookie_path` / `proxy_cookie_flags` on one upstream Set-Cookie value; nil leaves it.
    func rewrittenCookie(_ value: Slice<UnsafeRawBufferPointer>) -> String? {
        let domains = settings.resolved.proxyCookieDomains, paths = settings.resolved.proxyCookiePaths
        let flags = settings.resolved.proxyCookieFlags
        if domains.isEmpty && paths.isEmpty && flags.isEmpty { return nil }
        return CookieRewriting.rewrite(String(decoding: value, as: UTF8.self), domains: domains, paths: paths, flags: flags, host: self)
    }

    /// `proxy_redirect`: explicit pairs, or nginx's `default` — the proxy_pass URL (with its URI
    /// part, or `/`) replaced by the location's prefix. nil leaves the header as it is.
    func redirectedLocation(_ value: [UInt8]) -> [UInt8]? {
        if settings.resolved.proxyRedirectOff { return nil }
        let text = String(decoding: value, as: UTF8.self)
        if let pairs = settings.proxyRedirects {
            for (from, to) in pairs where text.hasPrefix(from) { return Array((to + text.dropFirst(from.count)).utf8) }
            return nil
        }
        guard let t = ex.target else { return nil }
        var prefix = ""
        switch ex.location.match {
        case .prefix(let p), .prefixNoRegex(let p), .exact(let p): prefix = p
        default: break
        }
        let from = (t.tls == nil ? "http://" : "https://") + t.hostHeader + (t.uri ?? "/")
        let to = t.uri == nil ? "/" : prefix
        guard text.hasPrefix(from) else { return nil }
        return Array((to + text.dropFirst(from.count)).utf8)
    }

    /// Moves body bytes upstream → client until done, the client stops taking them, or the upstream runs dry.
    func relay() {
        guard let c = ex.up else { return }
        if ex.clientGone { return readForCacheOnly(c) } // IgnoreClientAbort.swift
        while true {
            // 1. Validate newly read bytes against the framing (and copy them into the cache entry).
            let before = ex.attempt.relayable
            validateRelayable(c)
            if ex.cacheWriter != nil {
                teeToCache(c, from: before)
                // Published before the last bytes reach the client: a client that has the whole
                // response and asks again finds the entry.
                if ex.attempt.responseComplete { commitCacheWriter() }
            }
            guard ex.up != nil else { return }
            if ex.inBackground { outBuf.clear() }
            if let s = ex.sub { subFilterRelayable(c, s) } else if let g = ex.gz { gzipRelayable(c, g) }
            if (ex.inBackground || headConverted) && ex.attempt.relayable > 0 && outBuf.isEmpty {
                // Read for the cache only: consumed without being sent.
                c.inBuf.readIndex += ex.attempt.relayable
                ex.attempt.relayable = 0
            }
            // 2. Write head + validated body in one writev.
            if !outBuf.isEmpty || ex.attempt.relayable > 0 {
                var cap = Int.max
                if responseLimited != false && !ex.inBackground {
                    guard let allowed = rateAllowance() else { worker.loop.setDeadline(c, afterMillis: 0); return }
                    cap = allowed
                }
                guard writable else {
                    waitForClient(c)
                    return
                }
                let head = cap < outBuf.readable ? UnsafeRawBufferPointer(rebasing: outBuf.readableBytes[..<cap]) : outBuf.readableBytes
                let body = UnsafeRawBufferPointer(start: c.inBuf.base.map { $0 + c.inBuf.readIndex },
                                                  count: min(ex.inBackground || headConverted || ex.gz != nil || ex.sub != nil ? 0 : ex.attempt.relayable, cap - head.count))
                do {
                    switch try transport.writev(fd, head, body) {
                    case .done(let n):
                        let fromHead = min(n, outBuf.readable)
                        outBuf.readIndex += fromHead
                        let fromBody = n - fromHead
                        c.inBuf.readIndex += fromBody
                        ex.attempt.relayable -= fromBody
                        ex.bodyBytesSent += fromBody
                        if outBuf.isEmpty { outBuf.clear() }
                        worker.loop.setDeadline(self, afterMillis: 0)
                        if cap != Int.max { rateSent(n) }
                    case .wouldBlock:
                        writable = false
                        waitForClient(c)
                        return
                    }
                } catch {
                    log(.info, "\(error) while sending to client")
                    if keepReadingForCache(c) { return } // IgnoreClientAbort.swift
                    releasePeer(failed: false)
                    abortProxy()
                    return
                }
                continue
            }
            if ex.attempt.responseComplete {
                completeProxy()
                return
            }
            // 3. Read more from the upstream when the buffer has drained.
            if c.readable {
                let alive = readUpstream(c, limit: ClientConnection.relayBuffer)
                worker.loop.setDeadline(c, afterMillis: settings.resolved.proxyReadTimeoutMs)
                if !alive && c.inBuf.readable == 0 {
                    if upstreamClosedWithNothingLeft() { continue }
                    return
                }
                if c.inBuf.readable > ex.attempt.relayable { continue }
            }
            if c.peerClosed && c.inBuf.readable == ex.attempt.relayable {
                // (A complete response returned above.)
                if upstreamClosedWithNothingLeft() { continue }
                return
            }
            // Waiting for the upstream: now it is timed (proxy_read_timeout), the client is not.
            if c.deadline == 0 { worker.loop.setDeadline(c, afterMillis: settings.resolved.proxyReadTimeoutMs) }
            return
        }
    }

    /// The client is not taking bytes: only the client is timed now (send_timeout), as nginx
    /// times the upstream only while it waits for the upstream; a slow reader never makes a
    /// healthy peer look timed out.
    func waitForClient(_ c: UpstreamConnection) {
        worker.loop.setDeadline(self, afterMillis: settings.resolved.sendTimeoutMs)
        worker.loop.setDeadline(c, afterMillis: 0)
    }

    /// Extends `relayable` over newly read upstream bytes per the response framing.
    func validateRelayable(_ c: UpstreamConnection) {
        let pending = c.inBuf.readable - ex.attempt.relayable
        guard pending > 0 || !ex.attempt.responseComplete else { return }
        switch ex.attempt.responseFraming {
        case .none:
            ex.attempt.responseComplete = true
        case .length(let n):
            let take = min(n, pending)
            ex.attempt.relayable += take
            ex.attempt.upstreamBodyBytes += take
            ex.attempt.responseFraming = .length(n - take)
            if n - take == 0 { ex.attempt.responseComplete = true }
        case .untilClose:
            ex.attempt.relayable += pending
            ex.attempt.upstreamBodyBytes += pending
        case .chunked(var f):
            guard pending > 0 else { return }
            let start = c.inBuf.readIndex + ex.attempt.relayable
            let region = UnsafeRawBufferPointer(start: c.inBuf.base! + start, count: pending)
            do {
                if ex.attempt.dechunk {
                    var dst = start
                    let base = c.inBuf.base!
                    let n = try f.consume(region, data: { r in
                        memmove(base + dst, base + start + r.lowerBound, r.count)
                        dst += r.count
                    })
                    let payload = dst - start
                    // Drop the framing bytes between the payload and the unconsumed rest.
                    let restStart = start + n
                    let rest = c.inBuf.writeIndex - restStart
                    if rest > 0 { memmove(base + dst, base + restStart, rest) }
                    c.inBuf.writeIndex = dst + rest
                    ex.attempt.relayable += payload
                    ex.attempt.upstreamBodyBytes += payload
                } else {
                    // Passed on chunked as it came, but for trailer fields: nginx's proxy drops
                    // them (no `proxy_pass_trailers` before 1.27.2), so they are cut out here.
                    var trailers: [Range<Int>] = []
                    let n = try f.consume(region, trailer: { trailers.append($0) })
                    var dropped = 0
                    let base = c.inBuf.base!
                    for r in trailers { // in order; each moved left by what went before it
                        let from = start + r.lowerBound - dropped
                        memmove(base + from, base + from + r.count, c.inBuf.writeIndex - (from + r.count))
                        c.inBuf.writeIndex -= r.count
                        dropped += r.count
                    }
                    ex.attempt.relayable += n - dropped
                    ex.attempt.upstreamBodyBytes += n - dropped
                }
            } catch {
                log(.error, "upstream sent invalid chunked response while reading upstream")
                ex.attempt.responseFraming = .chunked(f)
                releasePeer(failed: false)
                abortProxy()
                return
            }
            ex.attempt.responseFraming = .chunked(f)
            if f.isDone { ex.attempt.responseComplete = true }
        }
    }

    func completeProxy() {
        guard let c = ex.up, let rt = ex.upstreamRuntime else { return }
        recordUpstream(status: ex.attempt.response.status)
        let reusable = ProxyPolicy.upstreamReusable(pool: rt.group.keepalive != nil, responseClose: ex.attempt.response.close,
                                                    responseHTTP11: ex.attempt.response.versionMinor == 1, sentConnectionClose: ex.sentConnectionClose,
                                                    requestComplete: ex.requestBodyComplete && ex.attempt.requestComplete,
                                                    unreadBytes: c.inBuf.readable != ex.attempt.relayable, peerClosed: c.peerClosed)
        releasePeer(failed: false)
        ex.up = nil
        worker.loop.setDeadline(c, afterMillis: 0)
        // keepalive_requests and keepalive_time of the upstream block: a connection that has
        // served enough closes instead of going back to the pool.
        // A connection that began with one client's PROXY protocol header serves no other client.
        if reusable && ex.attempt.relayable == 0 && c.fastcgi?.decoder.ended != false && c.requests < rt.group.keepaliveRequests
            && !settings.resolved.proxyProtocol
            && worker.loop.now - c.createdMillis < Int64(rt.group.keepaliveTimeMs) {
            c.inBuf.clear()
            c.outBuf.clear()
            worker.putIdle(c, keepalive: rt.group.keepalive!, timeoutMs: rt.group.keepaliveTimeoutMs)
        } else {
            c.close()
        }
        ex.responder = .proxy(.idle)
        if ex.cacheWriter != nil { commitCacheWriter() }
        if let g = ex.gz {
            ex.bodyBytesSent = g.bytesOut
            g.end()
            ex.gz = nil
        }
        finishRequest()
    }

    func recordUpstream(status code: Int) {
        guard ex.upstreamRuntime != nil, ex.attempt.peerIndex >= 0 else { return }
        ex.upstreamLog.append(currentUpstreamAttempt(status: code))
        ex.attempt.recorded = true
    }

    /// The try in progress as `$upstream_*` show it (at header time the variables include it,
    /// as nginx's do: `add_header X-Upstream $upstream_addr` names the peer that answered).
    func currentUpstreamAttempt(status code: Int) -> UpstreamAttempt {
        let now = monotonicMicros()
        return UpstreamAttempt(addr: ex.attempt.peerText, status: code, time: now - ex.attempt.attemptStart,
                               connect: ex.attempt.connectDone > 0 ? ex.attempt.connectDone - ex.attempt.attemptStart : -1,
                               header: ex.attempt.headerDone > 0 ? ex.attempt.headerDone - ex.attempt.attemptStart : -1, length: ex.attempt.upstreamBodyBytes,
                               sent: ex.attempt.upstreamBytesSent)
    }

    /// Releases the current peer to the balancer (once per attempt).
    func releasePeer(failed: Bool) {
        guard let rt = ex.upstreamRuntime, ex.attempt.peerIndex >= 0 else { return }
        let p = ex.attempt.peerIndex
        let now = worker.loop.now
        let micros = ex.attempt.attemptStart > 0 ? monotonicMicros() - ex.attempt.attemptStart : -1
        let reason = ex.attempt.failureReason
        ex.attempt.failureReason = ""
        let wall = reason.isEmpty ? 0 : Int64(wallClock().seconds) * 1000
        let disabled = rt.balancer.withLock { $0.release(p, failed: failed, now: now, micros: micros, reason: reason, wallMs: wall) }
        if disabled {
            worker.runtime.errorLog.log(.warn, "upstream server temporarily disabled while connecting to upstream, client: \(peer.ip), upstream: \"http://\(ex.attempt.peerText)\"", connection: number, worker: worker.index)
        }
        ex.attempt.peerIndex = -1
    }

    /// Whether `proxy_next_upstream` may try another peer now.
    func canRetry(_ failure: UpstreamConditions? = nil) -> Bool {
        guard let rt = ex.upstreamRuntime else { return false }
        // A buffered body is always there again; a streamed one only while still in the buffer.
        let replayable = ex.requestBodyForwarded == 0 || inBuf.readIndex >= ex.requestBodyForwarded
        let facts = ProxyPolicy.RetryFacts(failure: failure ?? [], tried: ex.tried.count, live: rt.balancer.withLock { $0.liveCount },
                                           tries: ex.tries, elapsedMs: worker.loop.now - ex.firstTryMillis,
                                           requestSent: ex.attempt.requestSent, idempotent: req.method.isIdempotent,
                                           bodyReplayable: replayable)
        let limits = ProxyPolicy.RetryLimits(conditions: settings.resolved.proxyNextUpstream, maxTries: settings.resolved.proxyNextUpstreamTries,
                                             timeoutMs: settings.resolved.proxyNextUpstreamTimeoutMs)
        guard failure == nil ? ProxyPolicy.canTryAgain(facts, limits) : ProxyPolicy.mayRetry(facts, limits) else { return false }
        if ex.attempt.requestSent && ex.requestBodyForwarded > 0 { _ = replayBody() }
        return true
    }

    /// Rewinds the request body for another attempt when it is still in the buffer.
    func replayBody() -> Bool {
        guard inBuf.readIndex >= ex.requestBodyForwarded else { return false }
        inBuf.readIndex -= ex.requestBodyForwarded
        ex.requestBodyForwarded = 0
        ex.requestBodyComplete = !req.hasBody
        ex.requestBody = req.chunked ? .chunked(ChunkedFramer()) : (req.contentLength ?? 0) > 0 ? .length(req.contentLength!) : .none
        ex.bodyReceived = 0
        return true
    }

    /// An attempt failed: log it, count it against the peer, and try the next one or answer 502/504.
    func upstreamFailed(_ f: UpstreamFailure) {
        let message: String
        var countsAsFailure = true
        switch f {
        case .error(let m), .timeout(let m), .invalidHeader(let m): message = m
        case .status(let s):
            message = ""
            countsAsFailure = s != 403 && s != 404
        }
        if !message.isEmpty { log(.error, message) }
        ex.attempt.failureReason = message.isEmpty ? f.word : message
        let code: Int
        switch f {
        case .timeout: code = 504
        case .status(let s): code = s
        default: code = 502
        }
        recordUpstream(status: ex.attempt.headerDone > 0 ? code : (code == 504 ? 504 : 502))
        releasePeer(failed: countsAsFailure)
        if let c = ex.up {
            c.close()
            ex.up = nil
        }
        if canRetry(f.condition) {
            nextAttempt()
            return
        }
        if ex.cache != nil && serveStaleOnFailure(f.condition) { return }
        proxyError(code >= 500 ? code : 502)
    }

    /// A client-side fault while proxying (bad body): answer it and close.
    func upstreamFailedFatal(_ code: Int) {
        if ex.inBackground { endBackground(); return }
        if ex.parentExchange != nil { subrequestFailed(code); return }
        releasePeer(failed: false)
        ex.up?.close()
        ex.up = nil
        closeAfterResponse = true
        if ex.headerStarted { close() } else { respondError(code) }
    }

    /// The upstream closed with nothing left to relay: the end of a body delimited by the close
    /// (true: the response is complete, relaying goes on), else nginx's premature-close error and
    /// the request ends (false).
    func upstreamClosedWithNothingLeft() -> Bool {
        if case .untilClose = ex.attempt.responseFraming {
            ex.attempt.responseComplete = true
            return true
        }
        log(.error, "upstream prematurely closed connection while reading upstream")
        releasePeer(failed: false)
        abortProxy()
        return false
    }

    func proxyError(_ code: Int) {
        if ex.inBackground { endBackground(); return }
        if ex.parentExchange != nil { subrequestFailed(code); return }
        ex.responder = .proxy(.idle)
        if ex.headerStarted {
            close()
            return
        }
        if !ex.requestBodyComplete { closeAfterResponse = true }
        respondError(code)
    }

    /// The client went away or the stream broke after the head: close both sides.
    func abortProxy() {
        if ex.inBackground { endBackground(); return }
        if ex.parentExchange != nil { abortSubrequest(); return }
        if let c = ex.up {
            c.close()
            ex.up = nil
        }
        releasePeer(failed: false)
        recordAttemptCutShort() // IgnoreClientAbort.swift
        if ex.status == 0 { ex.status = 499 }
        finishLog()
        close()
    }

    // MARK: Upgrade tunnels (WebSocket)

    func startTunnel(_ c: UpstreamConnection) {
        ex.responder = .tunnel
        worker.loop.setDeadline(c, afterMillis: settings.resolved.proxyReadTimeoutMs)
        worker.loop.setDeadline(self, afterMillis: 0)
        // Any client bytes after the head belong to the new protocol.
        if !inBuf.isEmpty {
            c.outBuf.append(inBuf.readableBytes)
            inBuf.clear()
        }
        pumpTunnel()
    }

    func pumpTunnel() {
        guard let c = ex.up else { close(); return }
        var progress = true
        while progress {
            progress = false
            // upstream → client
            if !outBuf.isEmpty && writable {
                if flushOutTunnel() { progress = true }
            }
            if outBuf.isEmpty && !c.inBuf.isEmpty {
                outBuf.append(c.inBuf.readableBytes)
                c.inBuf.clear()
                progress = true
            }
            if c.inBuf.isEmpty && outBuf.readable < ClientConnection.relayBuffer && c.readable {
                _ = readUpstream(c, limit: ClientConnection.relayBuffer)
                if !c.inBuf.isEmpty { progress = true }
            }
            // client → upstream
            if !c.outBuf.isEmpty && c.writable {
                do {
                    switch try c.transport.write(c.fd, c.outBuf.readPointer, c.outBuf.readable) {
                    case .done(let n):
                        c.outBuf.readIndex += n
                        if c.outBuf.isEmpty { c.outBuf.clear() }
                        progress = true
                    case .wouldBlock: c.writable = false
                    }
                } catch { abortTunnel(); return }
            }
            if c.outBuf.readable < ClientConnection.relayBuffer && readable {
                _ = readClient(limit: ClientConnection.relayBuffer)
                if !inBuf.isEmpty {
                    c.outBuf.append(inBuf.readableBytes)
                    inBuf.clear()
                    progress = true
                }
            }
        }
        if (peerClosed && inBuf.isEmpty && c.outBuf.isEmpty) || (c.peerClosed && c.inBuf.isEmpty && outBuf.isEmpty) {
            abortTunnel()
            return
        }
        worker.loop.setDeadline(c, afterMillis: settings.resolved.proxyReadTimeoutMs)
    }

    func flushOutTunnel() -> Bool {
        do {
            switch try transport.write(fd, outBuf.readPointer, outBuf.readable) {
            case .done(let n):
                outBuf.readIndex += n
                ex.bodyBytesSent += n
                if outBuf.isEmpty { outBuf.clear() }
                return true
            case .wouldBlock:
                writable = false
                return false
            }
        } catch {
            abortTunnel()
            return false
        }
    }

    func abortTunnel() {
        recordUpstream(status: 101)
        releasePeer(failed: false)
        ex.up?.close()
        ex.up = nil
        finishLog()
        close()
    }
}
