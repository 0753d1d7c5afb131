import Glibc
import LBConfig
import LBHTTP
import LBIO

/// One HTTP/2 connection (docs/http2.md): owns the socket and its transport (TCP, or TLS after
/// ALPN chose h2), the `H2Connection` state machine, and one stream connection per request.
///
/// A stream connection is a `ClientConnection` whose transport is `.stream(H2Stream)`: it reads its
/// request as HTTP/1.1 octets made from the HTTP/2 request, and what it writes as an HTTP/1.1
/// response is turned back into HEADERS and DATA frames on this session (Apache's mod_http2
/// does the same). So proxying, the cache, static files, gzip, `return`, `error_page`, the
/// status page and the API work over HTTP/2 without a second implementation. A stream
/// connection never touches the socket: it ends after one response.
final class H2Session: Pollable {
    /// The mirror subrequests this connection's streams have in progress (Mirror.swift).
    let mirrorCount = MirrorCount()
    /// The worker outlives every connection it owns.
    unowned(unsafe) let worker: Worker
    let generation: Generation
    let listener: Int
    let peer: PeerAddress
    let number: Int
    var table: RoutingTable { generation.table }

    var transport: Transport
    var conn: H2Connection
    var inBuf = Buffer()
    var events: [H2Event] = []
    /// Open streams (those whose stream connection has not closed).
    var streams = H2StreamTable<H2Stream>()
    /// Streams whose writes wait for the output to drain (`outputHighWater`).
    var waitingForOutput: [H2Stream] = []
    /// Stream connections to start or wake once the frames read have been handled.
    var wakes: [(H2Stream, UInt32)] = []
    /// Streams that ended, for this connection's next streams (`startStream`): one is taken only
    /// when nothing else holds it (its stream connection is gone) and is then reset whole
    /// (`H2Stream.begin`). Each keeps its last stream connection (`H2Stream.parked`), taken
    /// again on the same terms and reset whole too (`ClientConnection.reuseForStream`). Emptied
    /// when the connection goes idle (`releaseIdleMemory`) or closes (`dropSpareStreams`).
    var spareStreams: [H2Stream] = []
    static let maxSpareStreams = 32

    var readable = true
    var writable = true
    var peerClosed = false
    /// The client connection is over (`close`): nothing more is read or written, the session is
    /// out of the loop and has no timer. Its socket stays open until its last stream ends
    /// (`released`).
    var closed = false
    /// The socket is closed and the session has left the worker (`releaseWhenDone`).
    var released = false
    var inDrive = false
    /// A write to the socket failed: the session closes at the next chance (never inside a
    /// stream's write, whose caller goes on with it).
    var writeFailed = false
    /// GOAWAY written, write side shut: reading and dropping what the client still sends until
    /// it closes, so that our last frames are not destroyed by a reset (nginx's lingering close).
    var lingering = false
    /// The end-of-turn and idle-memory state, in the byte the flags above leave free (an idle
    /// connection's size is the point of the idle-memory rules).
    struct Marks: OptionSet {
        let rawValue: UInt8
        /// In the worker's end-of-turn list (`Worker.h2EndOfTurn`): output framed or a stream
        /// closed outside the session's drive, written and settled once the loop turn ends.
        static let turnQueued = Marks(rawValue: 1)
        /// The connection had a moment without streams before. The first one frees the buffers
        /// grown by requests at once (a client that made its requests and went quiet, the idle
        /// case, holds nothing); from the second burst on, the connection is taken as busy and
        /// frees them only after `idleMemoryDelayMs` without streams.
        static let wasIdle = Marks(rawValue: 2)
        /// The timer armed is the idle-memory one (`idleMemoryDelayMs`), not keepalive_timeout.
        static let idleMemoryTimer = Marks(rawValue: 4)
    }
    var marks: Marks = []
    var requests = 0
    // Stored in 32 bits, two to a word: an idle connection is no larger for `spareStreams`
    // and `H2Connection.spareRequests`.
    private let keepaliveRequests32: Int32
    private let recvBufferSize32: Int32
    private let keepaliveTimeout32: Int32
    private let sendTimeout32: Int32
    var keepaliveRequests: Int { Int(keepaliveRequests32) }
    var recvBufferSize: Int { Int(recvBufferSize32) }
    var keepaliveTimeoutMs: Int { Int(keepaliveTimeout32) }
    var sendTimeoutMs: Int { Int(sendTimeout32) }

    /// A stream's write waits while this much output is not yet written to the socket.
    static let outputHighWater = 256 * 1024
    /// Output framed outside the session's drive is written at the end of the loop turn, or at
    /// once when this much is pending: below the high-water mark, so that a stream waits only
    /// for a socket that refused output (whose writable event wakes it), never for the turn's end.
    static let writeAtOnce = 64 * 1024
    /// A connection without streams keeps the buffers grown by its requests (the HPACK literal
    /// cache, the encode and output buffers, the event arrays) this long, so that a busy one
    /// does not free and regrow them between bursts; then frees them (`releaseIdleMemory`).
    static let idleMemoryDelayMs = 100

    /// nginx's `http2_*` directives (of the server that owns the connection: `connectionServer`)
    /// as the state machine's limits.
    static func config(_ s: HTTPSettings) -> H2Config {
        var c = H2Config()
        c.maxConcurrentStreams = max(1, s.resolved.http2MaxConcurrentStreams)
        c.initialWindowSize = min(max(0, s.resolved.http2BodyPrereadSize), H2.maxWindow)
        c.chunkSize = max(1, s.resolved.http2ChunkSize)
        let large = s.resolved.largeClientHeaderBuffers
        c.maxHeaderListSize = large.count * large.size
        c.maxHeaderBlockSize = large.count * large.size
        c.maxFieldSize = large.size
        return c
    }

    /// Takes over an accepted connection that turned out to speak HTTP/2 (its socket,
    /// transport and the octets already read).
    init(from c: ClientConnection) {
        worker = c.worker
        generation = c.generation
        listener = c.listener
        peer = c.peer
        number = c.number
        transport = c.transport
        let s = c.connectionServer.settings
        conn = H2Connection(config: H2Session.config(s))
        func clamped(_ v: Int) -> Int32 { Int32(clamping: v) }
        keepaliveRequests32 = clamped(s.resolved.keepaliveRequests)
        keepaliveTimeout32 = clamped(s.resolved.keepaliveTimeoutMs)
        sendTimeout32 = clamped(s.resolved.sendTimeoutMs)
        recvBufferSize32 = clamped(max(s.resolved.http2RecvBufferSize, H2.frameHeaderSize + H2.defaultMaxFrameSize + 4096))
        super.init()
        fd = c.fd
        swap(&inBuf, &c.inBuf)
    }


    func start() {
        worker.h2Sessions[number] = self
        do {
            try worker.loop.register(self, events: EventLoop.readable | EventLoop.writable | EventLoop.edge | EventLoop.hangup)
        } catch {
            close()
            return
        }
        readable = true
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
        if case .tls(let s) = transport {
            if s.readWantsWrite && events & EventLoop.writable != 0 { readable = true }
            if s.writeWantsRead && events & EventLoop.readable != 0 { writable = true }
        }
        drive()
    }

    override func timedOut() {
        guard !closed else { return }
        if lingering || (conn.pendingOutputCount > 0 && !writable) || conn.isClosed {
            // send_timeout with output unread, or the end of a lingering close.
            close()
            return
        }
        if streams.isEmpty {
            if marks.contains(.idleMemoryTimer) {
                // Idle for `idleMemoryDelayMs`: the request buffers go; keepalive_timeout runs on
                // (from the start of the idle time).
                marks.remove(.idleMemoryTimer)
                releaseIdleMemory()
                worker.loop.setDeadline(self, afterMillis: keepaliveTimeoutMs - H2Session.idleMemoryDelayMs)
                return
            }
            // keepalive_timeout on an idle connection: GOAWAY, then close.
            conn.goAway()
            drive()
        }
    }

    /// Graceful stop (reload, worker shutdown): GOAWAY; the streams in flight finish.
    func goAway() {
        guard !closed else { return }
        conn.goAway()
        if !inDrive { drive() }
    }

    /// Reads, handles frames, starts and wakes streams, writes; as far as the socket allows.
    func drive() {
        guard !closed, !inDrive else { return }
        worker.loop.assertInLoop()
        inDrive = true
        while !closed {
            if lingering {
                linger()
                break
            }
            var progress = false
            if readable && !conn.isClosed && readInput() { progress = true }
            if inBuf.readable > 0 && !conn.isClosed {
                events.removeAll(keepingCapacity: true)
                let input = inBuf.readableBytes
                let used = conn.receive(input, events: &events)
                for e in events { handle(e, input) }
                events.removeAll(keepingCapacity: true) // no request held here: recycled once begun
                inBuf.readIndex += used
                if used > 0 { progress = true }
            }
            if inBuf.isEmpty && inBuf.base != nil { worker.recycle(&inBuf) }
            flush()
            runWakes()
            flush()
            if writeFailed || (peerClosed && !readable && inBuf.isEmpty) {
                close()
                break
            }
            if !progress { break }
        }
        inDrive = false
        if !closed && !lingering { settle() }
    }

    /// Reads what the socket has (up to the buffer's room). False when nothing came.
    func readInput() -> Bool {
        if inBuf.base == nil { worker.prepare(&inBuf) }
        if inBuf.writableTail < 4096 {
            inBuf.compact()
            if inBuf.writableTail < H2.frameHeaderSize + conn.config.maxFrameSize && inBuf.capacity < recvBufferSize {
                inBuf.reserve(min(recvBufferSize, max(inBuf.capacity * 2, inBuf.readable + H2.frameHeaderSize + conn.config.maxFrameSize + 1024)))
            }
        }
        let room = inBuf.writableTail
        guard room > 0 else { return false }
        do {
            switch try transport.read(fd, inBuf.writePointer, room) {
            case .done(0):
                readable = false
                peerClosed = true
                return false
            case .done(let n):
                inBuf.writeIndex += n
                if n < room { readable = false }
                return true
            case .wouldBlock:
                readable = false
                return false
            }
        } catch {
            readable = false
            peerClosed = true
            return false
        }
    }

    func handle(_ e: H2Event, _ input: UnsafeRawBufferPointer) {
        switch e {
        case .request(let r):
            startStream(r)
        case .rejected(let sid, let error):
            answer(sid, status: error.status)
        case .data(let sid, let payload, let end):
            guard let st = streams[sid] else {
                conn.consumed(streamID: sid, payload.count)
                return
            }
            st.appendBody(UnsafeRawBufferPointer(rebasing: input[payload]), end: end)
            wakes.append((st, EventLoop.readable))
        case .trailers(let t):
            if let st = streams[t.streamID] {
                st.appendBody(UnsafeRawBufferPointer(start: nil, count: 0), end: true)
                wakes.append((st, EventLoop.readable))
            }
        case .reset(let sid, _):
            // The client gave the stream up: nginx's client abort. The stream connection decides
            // what ends (`ClientConnection.clientReset`); under `proxy_ignore_client_abort on`
            // its upstream request goes on, the stream sending nothing more and counted among
            // the open ones until it ends.
            // A stream reset before it began (its HEADERS came in the same read) is dropped
            // unrun — nginx would have run it — so that a rapid-reset flood reaches no upstream.
            guard let st = streams[sid] else { break }
            if st.request != nil { st.conn?.close() } else { st.resetByPeer() }
        case .windowOpened(let sid):
            if let st = streams[sid] { wakes.append((st, EventLoop.writable)) }
        case .goaway(let code, let reason):
            let el = worker.runtime.errorLog
            if el.enabled(.info) {
                el.log(.info, "client sent an HTTP/2 connection error: \(reason), GOAWAY \(code), client: \(peer.ip)",
                       connection: number, worker: worker.index)
            }
        case .peerGoAway:
            break // no new streams; the session closes once the open ones are done (settle)
        }
    }

    /// A new stream: its stream connection, started once the frames read are handled.
    func startStream(_ r: H2Request) {
        if requests >= keepaliveRequests {
            // Beyond keepalive_requests (streams that came in the same read as the last one):
            // refused, so the client retries them on a new connection.
            conn.reset(streamID: r.streamID, code: .refusedStream)
            return
        }
        if streams.count >= conn.config.maxConcurrentStreams {
            // Streams the client reset whose exchange goes on (proxy_ignore_client_abort) still
            // count, as nginx's do: the frame layer no longer sees them.
            conn.reset(streamID: r.streamID, code: .refusedStream)
            return
        }
        requests += 1
        let st: H2Stream
        var spareConnection: ClientConnection? = nil
        if var s = spareStreams.popLast() {
            // The last stream connection of this object, unless anything still holds it (a
            // timer, an upstream connection): then it is left to them, and so is the stream.
            // Moved, not copied and cleared: no reference counting.
            var parked: ClientConnection? = nil
            swap(&parked, &s.parked)
            if isKnownUniquelyReferenced(&parked) {
                swap(&spareConnection, &parked)
                spareConnection.unsafelyUnwrapped.reuseForStream() // lets go of the stream object
            }
            if isKnownUniquelyReferenced(&s) {
                s.begin(r)
                st = s
            } else {
                st = H2Stream(session: self, request: r)
            }
        } else {
            st = H2Stream(session: self, request: r)
        }
        let c = spareConnection ?? ClientConnection(worker: worker, fd: fd, peerAddress: peer, generation: generation, listener: listener, number: number)
        c.mirrorCount = mirrorCount // the mirror bound is per client connection, across its streams
        // `$connection_requests`: the streams opened on the connection so far, this one
        // included, as nginx counts them (the stream connection adds its own request).
        c.requestsOnConnection = requests - 1
        c.transport = .stream(st)
        c.state = .head
        c.readable = true
        st.conn = c
        streams[r.streamID] = st
        wakes.append((st, EventLoop.readable))
        // keepalive_requests, a reload or a graceful stop: this one is the last stream.
        if requests >= keepaliveRequests || generation !== worker.generation || worker.draining { conn.goAway() }
    }

    /// A request nginx's HTTP/1 rules refuse (bad Host, TRACE, CONNECT…): its error page.
    func answer(_ sid: UInt32, status: Int) {
        let body = Status.page(status, serverTokens: false)
        worker.dates.update(wallClock().seconds)
        let date = String(decoding: worker.dates.httpDate, as: UTF8.self)
        guard conn.sendHeaders(streamID: sid, status: status, fields: [("server", "lb"), ("date", date), ("content-type", "text/html"),
                                                                       ("content-length", "\(body.count)")], endStream: false) else { return }
        _ = body.withUnsafeBytes { conn.sendData(streamID: sid, $0, endStream: true) }
    }

    /// Starts and wakes the stream connections the frames asked for.
    func runWakes() {
        while !wakes.isEmpty {
            // The batch is swapped out, not copied; its capacity comes back when no wake was added.
            var batch: [(H2Stream, UInt32)] = []
            swap(&batch, &wakes)
            for (st, bits) in batch {
                guard let c = st.conn, c.state != .closed else { continue }
                if let r = st.request {
                    st.request = nil
                    c.beginH2Request(r)
                    conn.recycle(r) // its head went to the stream connection
                } else {
                    c.ready(bits)
                }
            }
            batch.removeAll(keepingCapacity: true)
            if wakes.isEmpty { swap(&batch, &wakes) }
        }
        if !waitingForOutput.isEmpty && conn.pendingOutputCount < H2Session.outputHighWater / 2 {
            let waiting = waitingForOutput
            waitingForOutput.removeAll()
            for st in waiting {
                st.waitingForOutput = false
                if let c = st.conn, c.state != .closed { c.ready(EventLoop.writable) }
            }
        }
    }

    // MARK: output

    /// Writes the pending frames to the socket as far as it takes them. Never closes nor wakes
    /// anything (it runs inside streams' writes).
    func flush() {
        guard !closed, !writeFailed, writable, conn.pendingOutputCount > 0 else { return }
        let fd = self.fd
        let transport = self.transport
        var blocked = false
        var failed = false
        conn.writePendingOutput { bytes in
            var done = 0
            while done < bytes.count {
                do {
                    switch try transport.write(fd, bytes.baseAddress! + done, bytes.count - done) {
                    case .done(let n): done += n
                    case .wouldBlock:
                        blocked = true
                        return done
                    }
                } catch {
                    failed = true
                    return done
                }
            }
            return done
        }
        if blocked { writable = false }
        if failed { writeFailed = true }
    }

    /// A stream framed output: written by the drive loop that is running, or at the end of the
    /// loop turn (`endOfTurn`) together with what the turn's other responses framed (an upstream's
    /// readiness, a timer); at once when `writeAtOnce` octets are pending.
    func outputAdded() {
        if conn.pendingOutputCount >= H2Session.writeAtOnce { flush() }
        if !inDrive { queueForEndOfTurn() }
    }

    /// Puts the session in the worker's end-of-turn list, once.
    func queueForEndOfTurn() {
        guard !marks.contains(.turnQueued) else { return }
        marks.insert(.turnQueued)
        worker.h2EndOfTurn.append(self)
    }

    /// The loop turn ended (`Worker.endOfTurn`) with output or a stream's close since the
    /// session's last drive: writes, closes or arms the timer (`settle`). Streams waiting for the
    /// output to drain are woken when the write took it below half the high-water mark.
    func endOfTurn() {
        marks.remove(.turnQueued)
        if closed {
            releaseWhenDone()
            return
        }
        guard !lingering else { return }
        if !waitingForOutput.isEmpty {
            flush()
            if writable && conn.pendingOutputCount < H2Session.outputHighWater / 2 {
                drive() // wakes them (runWakes), writes, settles
                return
            }
        }
        settle()
    }

    /// A stream's write found the output above the high-water mark: it is woken when it drains.
    func waitForOutput(_ st: H2Stream) {
        guard !st.waitingForOutput else { return }
        st.waitingForOutput = true
        waitingForOutput.append(st)
    }

    /// A stream connection closed: its stream ends (RST_STREAM unless its response was
    /// complete), and the session may be done.
    func streamClosed(_ st: H2Stream) {
        // One table operation on the usual path: the entry is taken out (and put back if it is
        // not this stream's).
        guard let entry = streams.removeValue(forKey: st.id) else { return }
        guard entry === st else {
            streams[st.id] = entry
            return
        }
        let c = st.conn
        st.conn = nil
        st.finishOnClose()
        if !closed && spareStreams.count < H2Session.maxSpareStreams {
            // The two hold each other (the connection's transport is the stream) until
            // `startStream` takes them or `dropSpareStreams` lets them go.
            st.parked = c
            spareStreams.append(st)
        }
        // After `close`, the last stream to end releases the socket at the end of the turn (not
        // here, inside its stream connection's close).
        if closed || !inDrive { queueForEndOfTurn() }
    }

    /// Every open stream ends as if its client had reset it (`H2Stream.resetByPeer`): nothing
    /// more is sent on it, and its stream connection decides what else ends
    /// (`ClientConnection.clientReset`), as nginx's `fc->error` on each stream when the whole
    /// connection goes. A stream already reset is left as it is; one whose request has not begun
    /// (its HEADERS came in the same read) is dropped unrun, as a reset one is.
    func abortStreams() {
        for st in Array(streams.values) where !st.broken {
            if st.request != nil { st.conn?.close() } else { st.resetByPeer() }
        }
    }

    /// After a drive, or at the end of a turn with a stream's output or close: writes, closes
    /// when nothing is left to do, arms the right timer.
    func settle() {
        flush()
        if writeFailed {
            close()
            return
        }
        if conn.isClosed && !streams.isEmpty {
            // Connection error: GOAWAY is out; each stream ends as its client's reset would end
            // it, and the socket goes once they are done (nginx's `ngx_http_v2_finalize_connection`).
            abortStreams()
        }
        let ending = conn.isClosed || conn.goingAway || conn.peerWentAway
        if ending && streams.isEmpty && conn.pendingOutputCount == 0 {
            startLingering()
            return
        }
        marks.remove(.idleMemoryTimer)
        if conn.pendingOutputCount > 0 && !writable {
            worker.loop.setDeadline(self, afterMillis: sendTimeoutMs)
        } else if streams.isEmpty {
            // keepalive_timeout counts from here; a connection that stays idle frees its request
            // buffers first (timedOut), one with a next burst right behind keeps them (after its
            // first burst, when they go at once: `Marks.wasIdle`).
            let first = !marks.contains(.wasIdle)
            marks.insert(.wasIdle)
            if conn.pendingOutputCount > 0 {
                worker.loop.setDeadline(self, afterMillis: keepaliveTimeoutMs)
            } else if first || keepaliveTimeoutMs <= H2Session.idleMemoryDelayMs {
                releaseIdleMemory()
                worker.loop.setDeadline(self, afterMillis: keepaliveTimeoutMs)
            } else {
                marks.insert(.idleMemoryTimer)
                worker.loop.setDeadline(self, afterMillis: H2Session.idleMemoryDelayMs)
            }
        } else {
            worker.loop.setDeadline(self, afterMillis: 0)
        }
    }

    /// An idle connection keeps its HPACK tables and windows, not the arrays grown by requests.
    func releaseIdleMemory() {
        conn.releaseIdleMemory()
        events = []
        wakes = []
        dropSpareStreams()
    }

    /// Lets go of the spare streams and their stream connections (breaking the cycle between each
    /// pair).
    func dropSpareStreams() {
        for st in spareStreams { st.parked = nil }
        spareStreams = []
    }

    /// Everything is written: shut our side and drop what the client still sends, for at most
    /// a second, so that it reads our GOAWAY before the connection goes.
    func startLingering() {
        guard !lingering else { return }
        lingering = true
        transport.tls?.shutdown()
        _ = Glibc.shutdown(fd, Int32(SHUT_WR))
        worker.loop.setDeadline(self, afterMillis: 1000)
        readable = true
        linger()
    }

    func linger() {
        var scratch = (UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        while true {
            let n = withUnsafeMutableBytes(of: &scratch) { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 { continue }
            if n < 0 && (errno == EAGAIN || errno == EINTR) { return }
            close()
            return
        }
    }

    /// The client connection is over: the client closed it or its socket failed, send_timeout
    /// passed with output unread, or a lingering close ended. Nothing more is read or written;
    /// each stream still open ends as if its client had reset it (`abortStreams`), as nginx's
    /// `ngx_http_v2_finalize_connection` treats every stream as a client abort: under
    /// `proxy_ignore_client_abort on` its upstream request runs to its end and is logged with the
    /// upstream's status, with `off` it ends now (499). The socket stays open, out of the loop,
    /// until the last of them ends (`releaseWhenDone`), as nginx keeps its connection while
    /// streams are processing: their stream connections still read its addresses, and its
    /// number cannot go to another connection meanwhile. The worker counts the connection until
    /// then, so a graceful stop waits for those streams.
    func close() {
        guard !closed else { return }
        closed = true
        worker.loop.deregister(self) // no more events
        worker.loop.setDeadline(self, afterMillis: 0)
        waitingForOutput.removeAll()
        wakes.removeAll()
        dropSpareStreams() // they hold the session
        if !lingering { transport.tls?.shutdown() }
        abortStreams()
        releaseWhenDone()
    }

    /// After `close`, once no stream is left: the socket is closed (here only, once) and the
    /// session leaves the worker.
    func releaseWhenDone() {
        guard closed, !released, streams.isEmpty else { return }
        released = true
        dropSpareStreams() // streams that ended since `close` are not kept, but to be sure
        Socket.close(fd)
        worker.recycle(&inBuf)
        worker.h2Sessions[number] = nil
        worker.connectionClosed()
    }

    deinit { inBuf.release() }
}

/// One HTTP/2 stream as its stream connection sees it through `Transport.stream`: reads give the
/// request as HTTP/1.1 octets (the head made by `H2Request`, then the DATA, with
/// `Transfer-Encoding: chunked` when the client sent no `content-length`); writes take the
/// HTTP/1.1 response the exchange writes and frame it: the head as HEADERS, the body (by
/// Content-Length, dechunked, or until the stream connection closes) as DATA within the flow
/// control windows. A write that cannot be framed now returns `.wouldBlock`; the stream
/// connection is woken by `.windowOpened` or when the session's output drains.
///
/// A session reuses the object of a stream that ended for a later stream of the same connection
/// (`H2Session.spareStreams`), only once nothing else holds it; `begin` then sets every field
/// below as for a new object.
final class H2Stream: StreamPipe {
    let session: H2Session
    private(set) var id: UInt32 = 0
    /// The stream connection; nil once it closed.
    var conn: ClientConnection?
    /// While the object is spare (`H2Session.spareStreams`): its last stream connection, closed,
    /// for the next stream (`H2Session.startStream`).
    var parked: ClientConnection?
    private(set) var chunkedRequest = false

    // Request side.
    /// The request, until its stream connection begins it (`beginH2Request`): its head goes
    /// to the exchange as laid out, with its `RequestHead`, never through `read` nor a parse.
    var request: H2Request?
    /// Body octets for the stream connection to read (chunk-framed when `chunkedRequest`).
    var input: [UInt8] = []
    var inputAt = 0
    /// Body octets given to the stream connection's buffer but not yet back to the client
    /// (WINDOW_UPDATE): the stream window bounds what waits here.
    var uncredited = 0

    // Response side.
    enum Response {
        /// No head yet (`responseHead` starts the response).
        case head
        /// Content-Length: octets left.
        case length(Int)
        /// Chunked: in a size line (value so far; in an extension).
        case chunkSize(Int, Bool)
        case chunkData(Int)
        /// The CRLF after a chunk's data.
        case chunkDataEnd
        /// Trailer lines after the last chunk (length of the current line).
        case trailer(Int)
        /// No length: the body ends when the stream connection closes.
        case untilClose
        /// END_STREAM sent (or the stream is gone): more octets are dropped.
        case done
    }
    var response = Response.head {
        // The response is complete: the stream connection ends when its request does, as an
        // HTTP/1.1 connection whose client left (not idle in keep-alive, holding a timer).
        didSet { if case .done = response { conn?.peerClosed = true } }
    }
    var waitingForOutput = false

    init(session: H2Session, request r: H2Request) {
        self.session = session
        super.init()
        begin(r)
    }

    /// The stream's state for the request `r`, as a new object has it: every field that is not
    /// the session is set here (a reused object keeps nothing of its last stream; the capacity
    /// of its body array neither).
    func begin(_ r: H2Request) {
        id = r.streamID
        chunkedRequest = r.chunked
        conn = nil
        parked = nil
        request = r
        input = []
        inputAt = 0
        uncredited = 0
        response = .head
        waitingForOutput = false
        headPending = false
        broken = false
    }

    /// The client reset the stream (RST_STREAM): nothing more is sent on it, its writes fail
    /// (the exchange ends as after a failed write), and its stream connection decides what else
    /// ends.
    func resetByPeer() {
        broken = true
        headPending = false
        response = .done
        conn?.clientReset()
    }

    override var tls: TLSStream? { session.transport.tls }
    override var hasTLS: Bool { session.transport.hasTLS }
    override var isHTTP2: Bool { true }
    override func connectionClosed() { session.streamClosed(self) }

    // MARK: request

    func appendBody(_ bytes: UnsafeRawBufferPointer, end: Bool) {
        if !bytes.isEmpty {
            if chunkedRequest {
                input.append(contentsOf: String(bytes.count, radix: 16).utf8)
                input.append(contentsOf: [0x0D, 0x0A])
                input.append(contentsOf: bytes)
                input.append(contentsOf: [0x0D, 0x0A])
            } else {
                input.append(contentsOf: bytes)
            }
            uncredited += bytes.count
        }
        if end && chunkedRequest { input.append(contentsOf: "0\r\n\r\n".utf8) }
    }

    override func read(_ buf: UnsafeMutableRawPointer, _ count: Int) -> IOResult<Int> {
        let available = input.count - inputAt
        if available > 0 {
            let n = min(available, count)
            input.withUnsafeBytes { buf.copyMemory(from: $0.baseAddress! + inputAt, byteCount: n) }
            inputAt += n
            if inputAt == input.count {
                input.removeAll(keepingCapacity: true)
                inputAt = 0
            }
            if uncredited > 0 {
                let c = inputAt == 0 ? uncredited : min(uncredited, n)
                uncredited -= c
                session.conn.consumed(streamID: id, c)
                session.outputAdded()
            }
            return .done(n)
        }
        // After the response, the stream connection looks for a next request: there is none.
        if case .done = response { return .done(0) }
        return .wouldBlock
    }

    // MARK: response

    override func write(_ buf: UnsafeRawPointer, _ count: Int) -> IOResult<Int> {
        let used = frame(UnsafeRawBufferPointer(start: buf, count: count))
        if used > 0 || headPending {
            headPending = false
            session.outputAdded()
        }
        return used == 0 && count > 0 ? .wouldBlock : .done(used)
    }

    /// A response head and the body octets after it: framed together, written once.
    override func writev(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> IOResult<Int> {
        var used = frame(a)
        if used == a.count && !b.isEmpty { used += frame(b) }
        if used > 0 || headPending {
            headPending = false
            session.outputAdded()
        }
        return used == 0 && a.count + b.count > 0 ? .wouldBlock : .done(used)
    }

    /// Frames what it can of `b`; returns how many octets it took.
    func frame(_ b: UnsafeRawBufferPointer) -> Int {
        var at = 0
        while at < b.count {
            switch response {
            case .head:
                // Body octets before any head: the exchange broke the writer's contract.
                session.conn.reset(streamID: id, code: .internalError)
                response = .done
                return b.count
            case .length(let left):
                let n = min(left, b.count - at)
                guard let sent = sendBody(b, at, n, endStream: n == left) else { return b.count }
                at += sent
                response = sent == left ? .done : .length(left - sent)
                if sent < n { return at }
            case .untilClose:
                let n = b.count - at
                guard let sent = sendBody(b, at, n, endStream: false) else { return b.count }
                at += sent
                if sent < n { return at }
            case .chunkSize(let value, let ext):
                let c = b[at]
                at += 1
                if c == 0x0A {
                    response = value == 0 ? .trailer(0) : .chunkData(value)
                } else if c == 0x0D || c == 0x20 || c == 0x09 {
                    continue
                } else if !ext, let d = H2Stream.hexDigit(c) {
                    response = .chunkSize(value * 16 + d, false)
                } else {
                    response = .chunkSize(value, true)
                }
            case .chunkData(let left):
                let n = min(left, b.count - at)
                guard let sent = sendBody(b, at, n, endStream: false) else { return b.count }
                at += sent
                response = sent == left ? .chunkDataEnd : .chunkData(left - sent)
                if sent < n { return at }
            case .chunkDataEnd:
                if b[at] == 0x0A { response = .chunkSize(0, false) }
                at += 1
            case .trailer(let length):
                let c = b[at]
                at += 1
                if c == 0x0A {
                    if length == 0 {
                        _ = session.conn.sendData(streamID: id, UnsafeRawBufferPointer(start: nil, count: 0), endStream: true)
                        response = .done
                    } else {
                        response = .trailer(0)
                    }
                } else if c != 0x0D {
                    response = .trailer(length + 1)
                }
            case .done:
                return b.count
            }
        }
        return at
    }

    static func hexDigit(_ c: UInt8) -> Int? {
        switch c {
        case 0x30...0x39: Int(c - 0x30)
        case 0x41...0x46: Int(c - 0x41 + 10)
        case 0x61...0x66: Int(c - 0x61 + 10)
        default: nil
        }
    }

    /// DATA for `n` octets of `b` from `at`, as far as the windows and the session's output
    /// allow. Nil: the stream is gone (reset), its octets are dropped.
    func sendBody(_ b: UnsafeRawBufferPointer, _ at: Int, _ n: Int, endStream: Bool) -> Int? {
        if n == 0 && !endStream { return 0 }
        if session.conn.pendingOutputCount >= H2Session.outputHighWater {
            session.waitForOutput(self)
            return 0
        }
        guard let sent = session.conn.sendData(streamID: id, UnsafeRawBufferPointer(rebasing: b[at..<(at + n)]), endStream: endStream) else {
            response = .done
            return nil
        }
        return sent
    }

    override var takesResponseHeads: Bool { true }

    /// The response head, whole (the response-writer seam): HEADERS from the status and the
    /// fields, and how the body that follows through `write` is delimited. A head after the
    /// response (a cache's background update) or an interim one is not sent.
    override func responseHead(status: Int, fields b: UnsafeRawBufferPointer, headOnly: Bool) {
        guard case .head = response, status >= 200 else { return }
        guard session.conn.beginHeaders(streamID: id, status: status) else {
            response = .done
            return
        }
        // The block is lb's own, a line per field: encoded and read for the framing in one pass.
        let framing = session.conn.addHeaderLines(b)
        let chunked = framing.chunked, length = framing.contentLength
        let noBody = headOnly || status == 204 || status == 304 || (!chunked && length == 0)
        _ = session.conn.endHeaders(streamID: id, endStream: noBody)
        if noBody {
            response = .done
            session.outputAdded()
            return
        } else if chunked {
            response = .chunkSize(0, false)
        } else if let length {
            response = .length(length)
        } else {
            response = .untilClose
        }
        // The body's first octets usually follow in this turn: HEADERS go out with them, in one
        // write; if none come, at the end of the turn (`turnEnded`).
        headPending = true
    }

    /// HEADERS framed but not yet written (no body octets followed them yet).
    var headPending = false

    override func turnEnded() {
        if headPending {
            headPending = false
            session.outputAdded()
        }
    }

    /// The stream connection closed: a body delimited by the close ends here; a response cut
    /// short (an upstream that failed mid-body, a timeout) resets the stream.
    func finishOnClose() {
        switch response {
        case .done: break
        case .untilClose:
            _ = session.conn.sendData(streamID: id, UnsafeRawBufferPointer(start: nil, count: 0), endStream: true)
        default:
            session.conn.reset(streamID: id, code: .internalError)
        }
        response = .done
        waitingForOutput = false
    }
}

extension ClientConnection {
    /// A stream connection that closed and that nothing else holds, for a next stream of its
    /// session: every field as `init` and `H2Session.startStream` leave a new one, but for the
    /// session's own values (worker, generation, listener, peer, number, socket), which are the
    /// same. Its exchange, if a reset stream left one, goes back to the worker (`endExchange`).
    /// It lets go of its stream object.
    func reuseForStream() {
        assert(state == .closed)
        // A stream the client reset, or a session closing, closed its connection in the middle of
        // its exchange (`close`, not `finishRequest`): that exchange ends here.
        endExchange()
        deadline = 0
        countReading(false)
        countWriting(false)
        proxyProtocol = nil
        state = .head
        transport = .tcp
        readable = false
        writable = true
        peerClosed = false
        if inBuf.base != nil { worker.recycle(&inBuf) }
        if outBuf.base != nil { worker.recycle(&outBuf) }
        inBuf.clear()
        outBuf.clear()
        scanner.reset()
        releaseRequestHead()
        requestsOnConnection = 0
        isMirror = false
        acceptedMillis = 0
        closeAfterResponse = false
        responseLimited = nil
        inDrive = false
        driveAgain = false
        corked = false
    }

    /// Hands the connection to an HTTP/2 session (ALPN chose h2, or the cleartext preface came):
    /// the session takes the socket, the transport and the octets read; this object ends
    /// without closing anything.
    func becomeH2() {
        let s = H2Session(from: self)
        worker.loop.deregister(self)
        worker.live[number] = nil
        transport = .tcp
        state = .closed
        worker.recycle(&outBuf)
        releaseRequestHead()
        s.start()
    }

    /// An HTTP/2 stream's request begins (its first wake): the head `H2Request` laid out from
    /// the decoded fields, with the `RequestHead` made while it was laid out, becomes the
    /// connection's request as `readHead` would have made it from the same octets, without going
    /// through `read`, the scanner or a parse; the server's header-name rules
    /// (`underscores_in_headers`, `ignore_invalid_headers`) drop what they refuse. Its version
    /// is HTTP/1.1, as the octets say: the exchange answers an HTTP/2 stream as an HTTP/1.1
    /// keep-alive request. The body, if any, is read through the transport.
    func beginH2Request(_ r: H2Request) {
        guard state == .head else { return }
        inDrive = true // as readHead runs: inside drive
        driveAgain = false
        headComplete()
        head.clear()
        r.withUnsafeBytes { b in head.append(UnsafeRawBufferPointer(rebasing: b[0..<r.scheme.lowerBound])) }
        let server = defaultServer
        r.applyNameRules(HeaderNameRules(underscores: server.settings.resolved.underscoresInHeaders,
                                         ignoreInvalid: server.settings.resolved.ignoreInvalidHeaders))
        // Moved, not copied: the request keeps the connection's empty head, freed with it.
        r.moveHead(into: &req)
        req.versionMajor = 1
        req.versionMinor = 1
        beginRequest()
        inDrive = false
        if driveAgain && state != .closed { drive() }
        if case .stream(let p) = transport { p.turnEnded() }
    }

    /// Cleartext HTTP/2 with prior knowledge: true when the connection went to HTTP/2 (or
    /// waits for the rest of a preface); false for HTTP/1.1.
    func takeH2Preface(alive: Bool) -> Bool {
        let b = inBuf.readableBytes
        let preface = H2.preface
        for i in 0..<min(b.count, preface.count) where b[i] != preface[i] { return false }
        if b.count < preface.count {
            if !alive || (peerClosed && !readable) { close() }
            return true
        }
        becomeH2()
        return true
    }
}
