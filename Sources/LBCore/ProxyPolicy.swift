import LBConfig

/// The proxy's decisions as pure functions of their inputs (nginx's `ngx_http_upstream_next`,
/// `ngx_http_upstream_process_header` and keep-alive rules), unit-tested without sockets. The
/// proxy gathers the facts, asks, and performs what the answer says.
enum ProxyPolicy {
    /// What is known about a request when a try failed.
    struct RetryFacts: Equatable {
        /// The failure's condition (`error`, `timeout`, `http_502`…).
        var failure: UpstreamConditions
        /// Peers tried so far, and peers that could be tried at all.
        var tried: Int
        var live: Int
        var tries: Int
        var elapsedMs: Int64
        /// Bytes of the request reached the peer (then only idempotent requests are retried,
        /// unless `non_idempotent`), and whether its body can be sent again.
        var requestSent: Bool
        var idempotent: Bool
        var bodyReplayable: Bool
    }

    /// `proxy_next_upstream`, `_tries`, `_timeout`.
    struct RetryLimits: Equatable {
        var conditions: UpstreamConditions
        var maxTries: Int
        var timeoutMs: Int
    }

    /// Whether another peer is tried (else the failure is answered: 502/504, or the status).
    static func mayRetry(_ f: RetryFacts, _ l: RetryLimits) -> Bool {
        guard l.conditions.contains(f.failure), !f.failure.isEmpty else { return false }
        return canTryAgain(f, l)
    }

    /// The limits alone (an `http_XXX` status is retried only while this holds; else it passes).
    static func canTryAgain(_ f: RetryFacts, _ l: RetryLimits) -> Bool {
        if f.tried >= f.live { return false }
        if l.maxTries > 0 && f.tries >= l.maxTries { return false }
        if l.timeoutMs > 0 && f.elapsedMs >= Int64(l.timeoutMs) { return false }
        if f.requestSent {
            if !f.idempotent && !l.conditions.contains(.nonIdempotent) { return false }
            if !f.bodyReplayable { return false }
        }
        return true
    }

    /// How a response body is delimited, as far as the relay needs to know.
    enum Framing: Equatable {
        case none
        case length(Int)
        case chunked
        case untilClose
    }

    /// How an upstream response is relayed.
    struct RelayPlan: Equatable {
        var framing: Framing
        /// The upstream's chunked body is decoded as it passes (HTTP/1.0 and 0.9 clients, gzip).
        var dechunk: Bool
        /// The client gets `Transfer-Encoding: chunked`.
        var chunkedOut: Bool
        /// The client connection stays open after the response.
        var keepAlive: Bool
    }

    /// - Parameters:
    ///   - bodyless: HEAD (not converted to GET for the cache), 204, 304, 1xx: no body follows.
    ///   - http10Client: the client speaks HTTP/1.0 or 0.9 (no chunked encoding).
    ///   - gzip: the body is compressed on the way (its length is unknown).
    ///   - chunking: `chunked_transfer_encoding` (off: a body of unknown length goes out unframed
    ///     and the close ends it).
    ///   - keepAliveAllowed: the connection may stay open as far as the request is concerned.
    static func relayPlan(bodyless: Bool, upstreamChunked: Bool, contentLength: Int?, http10Client: Bool,
                          gzip: Bool, chunking: Bool = true, keepAliveAllowed: Bool) -> RelayPlan {
        if bodyless { return RelayPlan(framing: .none, dechunk: false, chunkedOut: false, keepAlive: keepAliveAllowed) }
        let canChunk = chunking && !http10Client
        if upstreamChunked {
            // Decoded when the client cannot take chunks or the bytes change (gzip).
            return RelayPlan(framing: .chunked, dechunk: !canChunk || gzip, chunkedOut: canChunk, keepAlive: keepAliveAllowed && canChunk)
        }
        if let n = contentLength {
            // A compressed body has a new, unknown length: chunked, or ended by the close.
            return RelayPlan(framing: .length(n), dechunk: false, chunkedOut: gzip && canChunk,
                             keepAlive: keepAliveAllowed && (!gzip || canChunk))
        }
        // Until the upstream closes: compressed and chunked output can keep the connection;
        // otherwise the close ends the body for the client too.
        return RelayPlan(framing: .untilClose, dechunk: false, chunkedOut: gzip && canChunk, keepAlive: keepAliveAllowed && gzip && canChunk)
    }

    /// Whether an upstream connection goes back to the keep-alive pool after a response.
    static func upstreamReusable(pool: Bool, responseClose: Bool, responseHTTP11: Bool, sentConnectionClose: Bool,
                                 requestComplete: Bool, unreadBytes: Bool, peerClosed: Bool) -> Bool {
        pool && !responseClose && responseHTTP11 && !sentConnectionClose && requestComplete && !unreadBytes && !peerClosed
    }
}
