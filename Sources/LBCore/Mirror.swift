import LBConfig
import LBHTTP
import LBIO

/// nginx's mirror module: for each request that reaches the content phase of a location with
/// `mirror URI`, a background subrequest to that URI, whose response is read and discarded.
///
/// A mirror is a `ClientConnection` of its own over a `MirrorPipe` (the transport seam HTTP/2
/// streams use): it is handed the main request's head (method, target, headers; the body
/// whole when `mirror_request_body` is on) and starts as an internal redirect to the mirror URI
/// with the main request's arguments, in the main request's server. So the mirror location runs
/// every phase but access (nginx skips access for subrequests) and answers with any handler —
/// `proxy_pass http://backend$request_uri` sends the client's original target, as nginx's
/// subrequests keep `$request_uri`. Everything it writes is dropped; it is not logged and not
/// counted in stub_status. It runs beside the main request (which does not wait for it) and
/// ends by its own timeouts; a worker runs at most `worker_connections` of them at once.
final class MirrorPipe: StreamPipe {
    unowned(unsafe) let worker: Worker
    let mainTLS: TLSStream?
    let http2: Bool
    /// The mirror's connection, held here (the pipe is held by the worker) until it closes.
    var conn: ClientConnection?
    /// The mirrors in progress for the client connection this one came from.
    let siblings: MirrorCount

    init(worker: Worker, tls: TLSStream?, http2: Bool, siblings: MirrorCount) {
        self.worker = worker
        mainTLS = tls
        self.http2 = http2
        self.siblings = siblings
        siblings.inFlight += 1
        super.init()
    }

    override var tls: TLSStream? { mainTLS }
    override var isHTTP2: Bool { http2 }

    /// Nothing more to read: the head was handed over parsed, the body (if any) buffered.
    override func read(_ buf: UnsafeMutableRawPointer, _ count: Int) -> IOResult<Int> { .wouldBlock }

    /// The response head is dropped whole, unmade into octets.
    override var takesResponseHeads: Bool { true }

    /// The response is discarded as it is written.
    override func write(_ buf: UnsafeRawPointer, _ count: Int) -> IOResult<Int> { .done(count) }

    override func writev(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> IOResult<Int> { .done(a.count + b.count) }

    override func connectionClosed() {
        conn = nil
        siblings.inFlight -= 1
        worker.mirrors.removeValue(forKey: ObjectIdentifier(self))
    }
}

/// How many mirror subrequests one client connection has in progress. The main request does not
/// wait for its mirrors, so without a bound one keep-alive client could start them faster than
/// a slow mirror target ends them; nginx's bound is that the connection's next request waits.
final class MirrorCount {
    var inFlight = 0
    /// Per client connection; further mirrors are skipped (logged) until some end.
    static let perConnection = 32
}

extension ClientConnection {
    /// Where the content phase goes on after the request body was read for the mirrors.
    enum MirrorResume {
        /// The location's handler (`runContentPhase` after its mirror step).
        case content
        /// The file try_files settled on.
        case staticFile([UInt8], allowIndex: Bool)
    }

    /// nginx's mirror handler in the precontent phase: makes the location's mirror subrequests.
    /// Returns false when the request body must be read first (then the content phase goes on
    /// from `resume` once it is complete).
    func runMirrors(resume: MirrorResume) -> Bool {
        guard let uris = ex.location.settings.mirrors, !uris.isEmpty,
              !isMirror, ex.parentExchange == nil, !ex.inBackground else { return true }
        let withBody = ex.location.settings.resolved.mirrorRequestBody
        if withBody && !ex.requestBodyComplete {
            // As nginx: the whole body is read before the mirrors and the handler start.
            ex.mirrorResume = resume
            sendContinueIfExpected()
            ex.responder = .proxy(.idle)
            startReadingBody() // Proxy.swift; ends in `mirrorBodyRead`
            return false
        }
        // A body streamed to an upstream already (proxy_request_buffering off, then an internal
        // redirect) is gone: the mirror goes without it.
        let body = withBody && req.hasBody ? ex.body : nil
        for uri in uris { startMirror(uri, body: body) }
        return true
    }

    /// The body is read: the mirrors start and the content phase goes on.
    func mirrorBodyRead(_ resume: MirrorResume) {
        ex.responder = .routing // the content phase goes on
        guard runMirrors(resume: resume) else { return }
        switch resume {
        case .content: runContentHandler()
        case .staticFile(let uri, let allowIndex): serveStaticURI(uri, allowIndex: allowIndex)
        }
    }

    /// One mirror subrequest to `uri`.
    func startMirror(_ uri: [UInt8], body: BufferedBody?) {
        let siblings = mirrorCount ?? MirrorCount()
        mirrorCount = siblings
        // Bounded per connection and per worker (half of worker_connections: the rest stays for
        // clients and their upstreams), so that mirrors can never starve the requests they copy.
        guard siblings.inFlight < MirrorCount.perConnection, worker.mirrors.count < max(1, worker.workerConnections / 2) else {
            let why = siblings.inFlight >= MirrorCount.perConnection
                ? "\(siblings.inFlight) mirror subrequests of this connection are in progress"
                : "\(worker.mirrors.count) mirror subrequests are in progress (half of worker_connections)"
            log(.error, "mirror subrequest to \"\(String(decoding: uri, as: UTF8.self))\" not made: \(why)")
            return
        }
        let pipe = MirrorPipe(worker: worker, tls: transport.tls, http2: transport.isHTTP2,
                              siblings: siblings)
        let c = ClientConnection(worker: worker, fd: fd, peerAddress: peer, generation: generation, listener: listener, number: number)
        c.isMirror = true
        c.transport = .stream(pipe)
        c.proxyProtocol = proxyProtocol
        c.acceptedMillis = acceptedMillis
        pipe.conn = c
        worker.mirrors[ObjectIdentifier(pipe)] = pipe
        c.beginMirror(head: mirrorHead(body: body), of: ex, uri: uri, args: currentArgs,
                      vars: ex.rewrite?.vars, body: body)
    }

    /// The main request's head as the mirror parses it: the method (GET after an error_page
    /// redirect), the original target, every header but the body's framing, and the length of
    /// the body it carries.
    func mirrorHead(body: BufferedBody?) -> [UInt8] {
        let b = head.readableBytes
        var out: [UInt8] = []
        out.reserveCapacity(req.length + 32)
        out += b[req.methodRange]
        out.append(0x20)
        out += b[req.targetRange]
        out += Array(" HTTP/1.\(req.versionMajor == 1 ? req.versionMinor : 0)\r\n".utf8)
        for f in req.headers {
            let n = f.name
            if (n.count == 14 && ASCII.equalsLower(b, n, "content-length")) || (n.count == 17 && ASCII.equalsLower(b, n, "transfer-encoding")) { continue }
            out += b[n]
            out += [0x3A, 0x20]
            out += b[f.value]
            out += [0x0D, 0x0A]
        }
        if let body {
            out += Array("Content-Length: \(body.length)\r\n".utf8)
        }
        out += [0x0D, 0x0A]
        return out
    }

    /// Starts this mirror connection's only request: the head parsed, then an internal redirect
    /// to `uri` in the main request's server.
    func beginMirror(head bytes: [UInt8], of main: Exchange, uri: [UInt8], args: [UInt8], vars: [String: [UInt8]]?, body: BufferedBody?) {
        inDrive = true
        driveAgain = false
        head.clear()
        bytes.withUnsafeBytes { head.append($0) }
        do {
            try HeadParser.request(head.readableBytes, start: 0, end: head.readable, into: &req,
                                   names: HeaderNameRules(underscores: true, ignoreInvalid: true))
        } catch {
            inDrive = false
            close()
            return
        }
        req.upgrade = false // a mirror never becomes a tunnel
        requestsOnConnection = 1
        closeAfterResponse = true
        beginExchange()
        ex.server = main.server
        ex.location = main.server.fallback
        ex.realClient = main.realClient
        ex.realIPChecked = true
        ex.body = body
        ex.requestBody = .none
        ex.requestBodyComplete = true
        if let vars { rewriteState.vars = vars } // nginx's subrequests share the main request's variables
        redirectInternally(to: uri, args: args) // Rewrite.swift: every phase from the server's rewrites on
        inDrive = false
        if driveAgain && state != .closed { drive() }
    }
}
