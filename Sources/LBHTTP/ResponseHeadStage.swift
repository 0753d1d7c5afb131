/// The one response-head stage every response passes (a local answer or error page, a static
/// file, a cache hit, a proxied response): nginx's header filters, in the order nginx runs them —
/// not_modified (304/412, only for a 200), headers (`expires`, `add_header` with or without
/// `always`), gzip (whether the body is compressed, and `Vary`), range (206/416, several ranges as
/// multipart/byteranges, `Accept-Ranges`) — then the connection's own field (`Connection`, or none
/// on HTTP/2). Pure: the caller states the response, the request and the location's policy; what
/// the head says is decided here and table-tested without sockets (ResponseHeadStageTests).

/// What produced a response: which of nginx's filters may act on it.
public enum ResponseSource: Sendable, Equatable {
    /// `return`, an error page, the status page: only headers, gzip and the connection.
    case local
    /// A static file: every filter (its validators, its ranges).
    case file
    /// A response from the cache: every filter.
    case cacheHit
    /// A response relayed as it arrives: headers, gzip and the connection.
    case proxied
}

/// The response as its producer knows it, before the filters.
public struct HeadStageResponse: Sendable, Equatable {
    public var status: Int
    public var source: ResponseSource
    /// The body's length, when known (the range filter needs it).
    public var contentLength: Int?
    /// The response passes gzip's own tests (`gzip on`, status, type, not encoded already,
    /// `gzip_min_length`), from `GzipPolicy.responseQualifies`: `Vary` is then due with
    /// `gzip_vary on`, whether or not this client takes gzip.
    public var gzipQualifies: Bool
    /// lb can compress this body where it is (a whole body up to the in-memory bound, or a
    /// relayed stream); false for a precompressed `.gz` file or a body sub_filter rewrites whole.
    public var gzipPossible: Bool
    /// Ranges may be served from this body (a file or cache entry of known length, not `.gz`).
    public var rangesPossible: Bool
    /// A 101 switching protocols (the tunnel's head).
    public var upgrade: Bool

    @inlinable public init(status: Int, source: ResponseSource, contentLength: Int? = nil, gzipQualifies: Bool = false, gzipPossible: Bool = false,
                rangesPossible: Bool = false, upgrade: Bool = false) {
        self.status = status
        self.source = source
        self.contentLength = contentLength
        self.gzipQualifies = gzipQualifies
        self.gzipPossible = gzipPossible
        self.rangesPossible = rangesPossible
        self.upgrade = upgrade
    }
}

/// The request's side of the stage (its conditional and range headers are `decide`'s
/// `conditions`, nil when the request has none of them, as most do not).
public struct HeadStageRequest: Sendable, Equatable {
    public var http10OrLater: Bool
    /// The connection stays open after this response (keep-alive decided by the connection).
    public var keepAlive: Bool
    /// The client speaks HTTP/2: no connection-specific fields.
    public var http2: Bool

    @inlinable public init(http10OrLater: Bool = true, keepAlive: Bool = true, http2: Bool = false) {
        self.http10OrLater = http10OrLater
        self.keepAlive = keepAlive
        self.http2 = http2
    }
}

/// The location's settings the stage reads.
public struct HeadStagePolicy: Sendable, Equatable {
    public var ifModifiedSince: IfModifiedSinceMode
    public var maxRanges: Int?
    public var gzipVary: Bool
    /// An `expires` other than `off` is configured.
    public var expires: Bool

    @inlinable public init(ifModifiedSince: IfModifiedSinceMode = .exact, maxRanges: Int? = nil, gzipVary: Bool = false, expires: Bool = false) {
        self.ifModifiedSince = ifModifiedSince
        self.maxRanges = maxRanges
        self.gzipVary = gzipVary
        self.expires = expires
    }
}

/// What the head says.
public struct HeadDecision: Sendable, Equatable {
    public enum Outcome: Sendable, Equatable {
        /// The response goes out (perhaps as 304, 206).
        case send
        /// 412: the caller answers it as an error (error_page applies).
        case preconditionFailed
        /// 416: the caller answers it as an error, with `Content-Range: bytes */LENGTH`.
        case rangeNotSatisfiable
    }
    /// Which part of the body goes out.
    public enum Body: Sendable, Equatable {
        case whole
        /// None: a 304.
        case none
        case single(Range<Int>)
        case multipart([Range<Int>])
    }
    /// The `Connection` field.
    public enum Connection: Sendable, Equatable {
        case keepAlive
        case close
        case upgrade
        /// HTTP/2: no connection-specific field.
        case omitted
    }

    /// What the connection's head writer needs after the stage: plain values, kept by the
    /// exchange for the head being written.
    public struct Fields: Sendable, Equatable {
        /// `expires` adds Expires and Cache-Control (and replaces an upstream's).
        public var expires = false
        /// Every `add_header` applies; false: only those marked `always`.
        public var addHeaders = false
        public var connection: Connection = .keepAlive
        @inlinable public init() {}
    }

    public var outcome: Outcome = .send
    public var status: Int
    public var body: Body = .whole
    /// The body is gzipped: Content-Encoding, a weak ETag, no length of the original.
    public var gzip = false
    /// `Vary: Accept-Encoding`.
    public var vary = false
    /// `Accept-Ranges: bytes`.
    public var acceptRanges = false
    public var fields = Fields()

    public var expires: Bool {
        @inlinable get { fields.expires }
        @inlinable set { fields.expires = newValue }
    }
    public var addHeaders: Bool {
        @inlinable get { fields.addHeaders }
        @inlinable set { fields.addHeaders = newValue }
    }
    public var connection: Connection {
        @inlinable get { fields.connection }
        @inlinable set { fields.connection = newValue }
    }

    @inlinable public init(status: Int) { self.status = status }

    /// The body's framing (decided after the stage, from the gzip decision) ends it with the
    /// connection's close: the head says `Connection: close` (HTTP/2 has no such field).
    @inlinable public mutating func bodyEndsWithClose() {
        if connection == .keepAlive { connection = .close }
    }
}

/// Statuses nginx's headers filter (`expires`, `add_header` without `always`) acts on.
@inlinable public func isHeaderFilterStatus(_ s: Int) -> Bool {
    switch s {
    case 200, 201, 204, 206, 301, 302, 303, 304, 307, 308: true
    default: false
    }
}

public enum ResponseHeadStage {
    /// Runs the filters on one response head. `clientTakesGzip` (Accept-Encoding, the HTTP
    /// version `gzip_http_version` allows, `gzip_disable`, `gzip_proxied` for a request through a
    /// proxy) is asked only when the response qualifies, so most requests never parse those headers.
    /// `conditions`: the request's conditional and range headers (nil: none); `validators`: the
    /// response's Last-Modified and ETag (asked only when there are conditions).
    @inlinable public static func decide(_ r: HeadStageResponse, _ q: HeadStageRequest, _ p: HeadStagePolicy,
                              conditions: ConditionalHeaders? = nil, validators: () -> Validators = { Validators(lastModified: nil, etag: nil) },
                              clientTakesGzip: () -> Bool) -> HeadDecision {
        var d = HeadDecision(status: r.status)
        let filtered = r.source == .file || r.source == .cacheHit
        let v = filtered && conditions != nil ? validators() : Validators(lastModified: nil, etag: nil)
        // not_modified: only a 200, only for a response with its own validators.
        if filtered, let c = conditions {
            switch NotModifiedFilter.evaluate(status: r.status, validators: v, request: c, mode: p.ifModifiedSince) {
            case .pass: break
            case .notModified:
                d.status = 304
                d.body = .none
            case .preconditionFailed:
                d.outcome = .preconditionFailed
                d.status = 412
                return d
            }
        }
        // headers: by the status the response has at this point (a later 206 counts as its 200).
        let headersApply = isHeaderFilterStatus(d.status)
        d.expires = p.expires && headersApply
        d.addHeaders = headersApply
        // gzip: a 304 has no body to compress; a response that qualifies varies by Accept-Encoding.
        if r.gzipQualifies && d.status != 304 && !r.upgrade {
            d.vary = p.gzipVary
            d.gzip = r.gzipPossible && clientTakesGzip()
        }
        // range: after gzip (a compressed body has no length to take ranges of).
        if filtered && d.status == 200 && !d.gzip && r.rangesPossible {
            d.acceptRanges = r.source == .file
            if let c = conditions, c.range != nil {
                switch RangeFilter.evaluate(status: 200, http10OrLater: q.http10OrLater, contentLength: r.contentLength,
                                            validators: v, request: c, maxRanges: p.maxRanges) {
                case .whole: break
                case .single(let range):
                    d.status = 206
                    d.body = .single(range)
                    d.acceptRanges = false
                case .multipart(let ranges):
                    d.status = 206
                    d.body = .multipart(ranges)
                    d.acceptRanges = false
                case .unsatisfiable:
                    d.outcome = .rangeNotSatisfiable
                    d.status = 416
                    d.acceptRanges = false
                    return d
                }
            }
        }
        d.connection = q.http2 ? .omitted : r.upgrade ? .upgrade : q.keepAlive ? .keepAlive : .close
        return d
    }
}
