import LBConfig
import LBHTTP
import LBIO

/// One request, from its head to its last logged byte (nginx's `ngx_http_request_t`, HAProxy's
/// stream): the chosen server and location, the URI and its internal redirects, the status and
/// counters for the log, and the state of whichever responder answers it (proxy, cache, static
/// file). A connection takes one for every request and lets it go when the request is logged;
/// nothing of one request leaks into the next because a finished one is made as a new one by
/// `reset` (every field below is set there) before the worker gives it to the next request of
/// any connection or HTTP/2 stream (`ClientConnection.endExchange`, `begin`).
///
/// The request head itself (`RequestHead` and the bytes it indexes) stays with the HTTP/1.1
/// connection that parsed it, as nginx keeps `header_in` in the connection's buffer.
final class Exchange {
    /// nginx's budget of URI changes per request (`NGX_HTTP_MAX_URI_CHANGES`): internal redirects
    /// (error_page, try_files, index) beyond it answer 500.
    static let maxURIChanges = 10

    var server: VirtualServer
    var location: Location
    /// The normalized URI; changed by internal redirects.
    var uri: [UInt8] = []
    /// Internal redirects left (nginx's `r->uri_changes`).
    var uriChangesLeft = Exchange.maxURIChanges
    /// An `error_page` was applied: nginx applies one per request.
    var errorPageUsed = false
    private(set) var startMicros: Int64
    var status = 0
    /// The status an `error_page` redirect keeps (or sets with `=CODE`) for the page it serves.
    var overrideStatus: Int?
    var bodyBytesSent = 0
    /// `limit_rate` (RateLimit.swift).
    var rate = ResponseRate()
    var responseHeadBytes = 0
    var headerStarted = false
    /// What the response-head stage decided for the head being written (ResponseHeadStage).
    var head = HeadDecision.Fields()
    /// Where the head being written starts in the out buffer, and where its fields start (after
    /// the status line): a pipe that takes heads whole gets the fields from there.
    var headAt = 0
    var headFieldsAt = 0

    // The request body.
    var requestBody: BodyFraming = .none
    /// Request body bytes forwarded so far; replay is possible only while they are still buffered.
    var requestBodyForwarded = 0
    var requestBodyComplete = true
    var bodyLimit = 0
    var bodyReceived = 0
    /// The whole body, when it is read before the upstream is contacted (`proxy_request_buffering`).
    var body: BufferedBody?
    /// The body is being read for `mirror`: where the content phase goes on after it.
    var mirrorResume: ClientConnection.MirrorResume?
    /// The client's close was noted while a response for the cache is fetched (logged once).
    var clientCloseNoted = false

    /// What answers the request now, with the state only it has (`Responder`).
    #if DEBUG
    var responder: Responder = .routing {
        didSet {
            // A file's descriptor, shared handle and parts are released only by `closeStaticFile`,
            // which empties the body before it leaves `.file`.
            guard case .file(let old) = oldValue, old.holdsResources else { return }
            if case .file = responder { return } // the body's state stored back
            assertionFailure("the .file responder was left without closeStaticFile: its file leaks")
        }
    }
    #else
    var responder: Responder = .routing
    #endif

    // Proxy (Proxy.swift): state of the whole proxied request; per-try state is in `attempt`.
    // These outlive the proxy responder (the log's `$upstream_*`, the cache entry, an
    // error_page after a failed try, the background update), so they stay here.
    var target: ProxyTarget?
    var upstreamRuntime: UpstreamRuntime?
    var up: UpstreamConnection?
    var tried = TriedSet()
    var tries = 0
    var firstTryMillis: Int64 = 0
    var upstreamURI: [UInt8] = []
    var sentConnectionClose = true
    /// Every try, for `$upstream_*` (listed comma-separated).
    var upstreamLog: [UpstreamAttempt] = []
    /// The current try: created fresh for every peer tried.
    var attempt = Attempt()
    /// The compressor of a gzipped proxied response, and whether its last chunk is out.
    var gz: GzipStream?
    var gzFinished = false
    /// Bytes into and out of the compressor (gzip header and trailer included, as nginx counts)
    /// once a compressed body is complete (`$gzip_ratio`).
    var gzipSizes: (input: Int, output: Int)?
    /// sub_filter on a proxied response (SubFilterResponse.swift).
    var sub: SubFilterState?

    // Cache (Cache/ProxyCache.swift).
    var cacheStatus: [UInt8] = []
    var cache: CacheRequest?
    var cacheWriter: CacheWriter?
    /// A stale response is going out; the update is fetched after it on this connection.
    var backgroundUpdatePending = false
    /// Fetching a background update: nothing is written to the client, nothing logged.
    var inBackground = false
    /// The client went away while the response was relayed and `proxy_ignore_client_abort` keeps
    /// the upstream request going: the rest is read for the cache only (IgnoreClientAbort.swift).
    var clientGone = false

    // Static files (StaticFiles.swift): the body being sent is the `.file` responder's.
    /// The file's modification time for `expires modified …` (static responses only).
    var expiresMtime: Int?
    /// The value of an `expires` with variables, once evaluated for this response (`.some(nil)`:
    /// none applies).
    var expiresEvaluated: Expires??
    /// The client's address from `real_ip_header` (realip), when a trusted proxy sent one.
    var realClient: PeerAddress?
    /// realip has run for this request (once per request, as nginx: in its post-read phase with
    /// the server's settings, else in preaccess with the location's).
    var realIPChecked = false
    /// limit_req / limit_conn / auth_basic results and held counts (LimitPhase.swift); nil when
    /// the location has none of them.
    var accessState: AccessPhaseState?
    /// An auth_request subrequest (Subrequest.swift): the main request it runs for. Its response
    /// head is captured, never written to the client; nothing of it is logged.
    var parentExchange: Exchange?
    /// `auth_request_set` results (AuthRequest.swift): `$name` reads them when no `map` defines it.
    var authVariables: [(name: String, value: [UInt8])] = []
    /// The Content-Type an upstream's X-Accel-Redirect response named, for the file served after it.
    var contentTypeOverride: String?
    /// Header lines every response head of this request carries (an access phase's
    /// WWW-Authenticate), also the page of an error_page redirect, as nginx keeps `headers_out`.
    var keptHeaders: [UInt8] = []

    /// The rewrite module's state (set variables, captures, changed arguments); nil until a
    /// rewrite program or a capture needs it.
    var rewrite: RewriteState?
    /// The state a finished request of this (reset) exchange left, reset, for the next request's
    /// `rewriteState` instead of a new object.
    var spareRewrite: RewriteState?

    /// Maps being evaluated (cycle detection), and whether a variable could not be evaluated.
    var mapsInProgress: [String] = []
    /// Values of map-like variables (map, geo, split_clients) already evaluated in this request.
    var variableCache: [String: [UInt8]] = [:]
    var variableFailed = false

    /// Copies of the response heads (client-facing and upstream's), kept only when a template
    /// reads `$sent_http_*` or `$upstream_http_*`.
    var sentHead: [UInt8] = []
    var upstreamHead: [UInt8] = []

    init(server: VirtualServer, startMicros: Int64) {
        self.server = server
        self.location = server.fallback
        self.startMicros = startMicros
    }

    /// A reset exchange taken for a new request: its server (and so its location) and start.
    @inline(__always)
    func begin(server: VirtualServer, startMicros: Int64) {
        if self.server !== server {
            self.server = server
            location = server.fallback
        }
        self.startMicros = startMicros
    }

    /// This exchange, finished and held by nothing else, as `init(server:startMicros:)` makes a
    /// new one with the storage of an earlier exchange adopted (`adopt`): every field set anew;
    /// what is kept is the capacity of `ExchangeStorage`'s arrays, never a content. A field added
    /// to the class is added here too (ExchangeResetTests compares a reset exchange with a new
    /// one, field by field, and lists the fields).
    func reset(server: VirtualServer, startMicros: Int64) {
        // Looked at before they are replaced, as the large values below: a store of the same
        // object, or an empty array's truncation, still costs its reference counting.
        if self.server !== server { self.server = server }
        if location !== server.fallback { location = server.fallback }
        uri.removeAll(keepingCapacity: true)
        uriChangesLeft = Exchange.maxURIChanges
        errorPageUsed = false
        self.startMicros = startMicros
        status = 0
        overrideStatus = nil
        bodyBytesSent = 0
        rate = ResponseRate()
        responseHeadBytes = 0
        headerStarted = false
        head = HeadDecision.Fields()
        headAt = 0
        headFieldsAt = 0
        if case .none = requestBody {} else { requestBody = .none }
        requestBodyForwarded = 0
        requestBodyComplete = true
        bodyLimit = 0
        bodyReceived = 0
        if body != nil { body = nil }
        if mirrorResume != nil { mirrorResume = nil }
        clientCloseNoted = false
        responder = .routing
        // Large optional values: looked at before they are replaced (a `return` or a static
        // answer never set them; the replacement copies and destroys them whole).
        if case .some = target { target = nil }
        if upstreamRuntime != nil { upstreamRuntime = nil }
        if up != nil { up = nil }
        tried = TriedSet()
        tries = 0
        firstTryMillis = 0
        if !upstreamURI.isEmpty { upstreamURI.removeAll(keepingCapacity: true) }
        sentConnectionClose = true
        if !upstreamLog.isEmpty { upstreamLog.removeAll(keepingCapacity: true) }
        var headers: [HeaderField] = []
        swap(&headers, &attempt.response.headers)
        headers.removeAll(keepingCapacity: true)
        attempt = Attempt()
        swap(&headers, &attempt.response.headers)
        if gz != nil { gz = nil }
        gzFinished = false
        gzipSizes = nil
        if sub != nil { sub = nil }
        if !cacheStatus.isEmpty { cacheStatus = [] }
        if case .some = cache { cache = nil }
        if cacheWriter != nil { cacheWriter = nil }
        backgroundUpdatePending = false
        inBackground = false
        clientGone = false
        expiresMtime = nil
        expiresEvaluated = nil
        realClient = nil
        realIPChecked = false
        if accessState != nil { accessState = nil }
        if parentExchange != nil { parentExchange = nil }
        if !authVariables.isEmpty { authVariables = [] }
        if contentTypeOverride != nil { contentTypeOverride = nil }
        if !keptHeaders.isEmpty { keptHeaders = [] }
        if var r = rewrite {
            rewrite = nil
            if isKnownUniquelyReferenced(&r) {
                r.reset()
                spareRewrite = r
            }
        }
        if !mapsInProgress.isEmpty { mapsInProgress = [] }
        if !variableCache.isEmpty { variableCache = [:] }
        variableFailed = false
        if !sentHead.isEmpty { sentHead = [] }
        if !upstreamHead.isEmpty { upstreamHead = [] }
    }

    /// Takes the emptied arrays of an earlier exchange (capacity only), so a request allocates
    /// none of them; see `ExchangeStorage`. Called once, right after `init`.
    func adopt(_ s: inout ExchangeStorage) {
        swap(&s.uri, &uri)
        swap(&s.upstreamURI, &upstreamURI)
        swap(&s.upstreamLog, &upstreamLog)
        swap(&s.responseHeaders, &attempt.response.headers)
    }

    /// Moves the arrays out (this exchange is finished and dropped) and empties them.
    func takeStorage() -> ExchangeStorage {
        var s = ExchangeStorage()
        swap(&s.uri, &uri)
        swap(&s.upstreamURI, &upstreamURI)
        swap(&s.upstreamLog, &upstreamLog)
        swap(&s.responseHeaders, &attempt.response.headers)
        s.uri.removeAll(keepingCapacity: true)
        s.upstreamURI.removeAll(keepingCapacity: true)
        s.upstreamLog.removeAll(keepingCapacity: true)
        s.responseHeaders.removeAll(keepingCapacity: true)
        return s
    }

    /// An auth subrequest of `main` for `uri` in `location` (Subrequest.swift): same server and
    /// client, no request body, its own upstream state.
    init(subrequestOf main: Exchange, location: Location, uri: [UInt8], startMicros: Int64) {
        server = main.server
        self.location = location
        self.uri = uri
        self.startMicros = startMicros
        realClient = main.realClient
        parentExchange = main
    }

    /// The background update that follows a stale response: a new exchange for the same request
    /// and cache entry, logged nowhere and written to no client.
    init(backgroundUpdateOf e: Exchange) {
        server = e.server
        location = e.location
        uri = e.uri
        startMicros = e.startMicros
        target = e.target
        upstreamRuntime = e.upstreamRuntime
        upstreamURI = e.upstreamURI
        cache = e.cache
        rewrite = e.rewrite // the same request: its variables and arguments
        realClient = e.realClient
        inBackground = true
    }
}

/// What answers a request, and the state only that answer has (nginx's content handler with
/// its `r->ctx`; as SwiftNIO's state machines, an enum whose cases carry their data, so the data
/// of one cannot be read in another). An exchange starts `routing` and each handler sets its
/// case; the connection's `drive()` and timeouts dispatch on it.
enum Responder {
    /// The phases run (rewrite, access, content): no handler has taken the request yet.
    case routing
    /// limit_req holds the request on a timer, or an auth_basic hash is computed off the loop
    /// (LimitPhase.swift).
    case delayed
    /// A `proxy_pass` with variables waits for its host's addresses (RewriteProxy.swift).
    case resolving
    /// A response made in `outBuf` (return, error page, API, status, compressed file) being flushed.
    case local
    /// A static file or a cache hit's body going out after the head in `outBuf`.
    case file(FileBody)
    /// Proxied (Proxy.swift); per-try state is the exchange's `attempt`, replaced whole by every try.
    case proxy(ProxyPhase)
    /// An upgraded connection (WebSocket) relayed both ways with `ex.up`.
    case tunnel
    /// The API reads a request body of `length` bytes (API.swift).
    case apiBody(length: Int)

    /// Where a proxied request is.
    enum ProxyPhase {
        /// Between steps (the body read, a try being chosen, a cache lookup polled).
        case idle
        /// The whole request body is read before the first try (`proxy_request_buffering`), or
        /// for `mirror`.
        case readingBody
        case connecting
        case sending
        case waitingHead
        case relaying
        /// Polling a cache lock another request holds (`proxy_cache_lock`).
        case cacheWait
    }

    /// The phase of a proxied request; nil when the request is not proxied.
    var proxyPhase: ProxyPhase? {
        if case .proxy(let p) = self { return p }
        return nil
    }
}

/// The body of a static file or cache hit: its descriptor, where it stands, and for
/// multipart/byteranges the parts still to send. A plain value, so that `Responder` is one too
/// (setting or matching a case is a few stores, never a retain, release or outlined copy on a
/// request's path): the shared handle and the parts are held unmanaged and, as the descriptor,
/// released together by `closeStaticFile`, the only way out of `.file`.
struct FileBody {
    /// The file; nil while a cache hit's head is made (its shared handle is held already).
    var fd: Int32?
    /// Set when `fd` is a worker's shared file — a proxy_cache entry's or one kept by an open
    /// file cache (released, not closed); one reference held.
    var shared: Unmanaged<SharedFile>?
    var offset = 0
    var remaining = 0
    /// multipart/byteranges: the parts still to send and the trailer; one reference held.
    var multipart: Unmanaged<MultipartBody>?

    /// Parts of a multipart body are still to send.
    var hasParts: Bool { multipart.map { !$0.takeUnretainedValue().parts.isEmpty } ?? false }

    /// Whether it holds a descriptor or a reference that `closeStaticFile` must release.
    var holdsResources: Bool { fd != nil || shared != nil || multipart != nil }

    /// A body that holds nothing (released).
    init() {}

    /// A cache hit's file, held while its head is made.
    init(shared: SharedFile) {
        self.shared = .passRetained(shared)
    }

    /// A file being sent; `shared` is the hit's handle taken over from `init(shared:)`.
    init(fd: Int32, shared: Unmanaged<SharedFile>?, offset: Int, remaining: Int, multipart: MultipartBody?) {
        self.fd = fd
        self.shared = shared
        self.offset = offset
        self.remaining = remaining
        self.multipart = multipart.map { .passRetained($0) }
    }
}

/// The parts of a multipart/byteranges body still to send (head bytes, file range), and the
/// closing boundary.
final class MultipartBody {
    var parts: [([UInt8], Range<Int>)]
    var trailer: [UInt8]

    init(parts: [([UInt8], Range<Int>)], trailer: [UInt8]) {
        self.parts = parts
        self.trailer = trailer
    }
}

/// The capacity of a finished exchange's per-request arrays, kept by the worker for the next
/// exchange (as it keeps I/O buffers): every array is empty, so no content of one request reaches
/// another, but a proxied request allocates none of them (measured: 4 of the 6 mallocs per
/// request a fresh exchange cost; docs/performance.md, "Runtime by lifetime").
struct ExchangeStorage {
    var uri: [UInt8] = []
    var upstreamURI: [UInt8] = []
    var upstreamLog: [UpstreamAttempt] = []
    var responseHeaders: [HeaderField] = []
}

/// One try at one upstream peer (nginx's `u->state`): created fresh by every try, so no timing,
/// framing or parser state of a failed try reaches the next.
struct Attempt {
    /// The peer's index in the balancer, or -1 once it was released (or when none was picked).
    var peerIndex = -1
    /// `127.0.0.1:9001` of the peer.
    var peerText = ""
    var attemptStart: Int64 = 0
    var connectDone: Int64 = 0
    var headerDone: Int64 = 0
    var requestSent = false
    /// This try is in `upstreamLog` already (`recordUpstream`).
    var recorded = false
    /// The whole request (head and body) went out on this try.
    var requestComplete = false
    /// Bytes of a buffered request body handed to the upstream's buffer on this try.
    var bodyOffset = 0
    var response = ResponseHead()
    var responseFraming: BodyFraming = .none
    var upScanner = HeadScanner(maxFirstLine: 4096, maxHeaderLine: 8192, maxHead: 64 * 1024)
    /// Bytes at the front of the upstream buffer that are validated body ready for the client.
    var relayable = 0
    /// The upstream's chunked body is decoded as it passes (gzip, HTTP/1.0 clients).
    var dechunk = false
    var responseComplete = false
    var upstreamBodyBytes = 0
    /// Bytes written to the upstream in this try (`$upstream_bytes_sent`).
    var upstreamBytesSent = 0
    /// Why this try failed (for the peer's `last_failure`).
    var failureReason = ""

    init() {}

    /// Starts the next try in place: a fresh attempt, but for the capacity (never the contents)
    /// of the response's header array.
    mutating func restart(peer: Int, text: String, start: Int64, headLimit: Int) {
        var headers: [HeaderField] = []
        swap(&headers, &response.headers)
        headers.removeAll(keepingCapacity: true)
        self = Attempt(peer: peer, text: text, start: start, headLimit: headLimit)
        swap(&headers, &response.headers)
    }

    /// - Parameter headLimit: `proxy_buffer_size`, the largest response head accepted.
    init(peer: Int, text: String, start: Int64, headLimit: Int) {
        peerIndex = peer
        peerText = text
        attemptStart = start
        upScanner = HeadScanner(maxFirstLine: headLimit, maxHeaderLine: headLimit, maxHead: headLimit)
    }
}
