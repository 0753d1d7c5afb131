import LBConfig
import LBHTTP
import LBIO

/// Subrequests (nginx's `ngx_http_subrequest` as auth_request uses it): an internal exchange for
/// a URI, routed through the server's locations (internal ones included) and answered by the
/// proxy machinery of Proxy.swift, whose response head is captured instead of written to the
/// client. While it runs, the connection's `ex` is the subrequest (its `parentExchange` is the
/// main request), so every proxy path (tries, timeouts, next upstream, `$upstream_*`) works on
/// its own state; the hooks in Proxy.swift hand its end back here. As nginx's subrequests, it is
/// a GET without a body or arguments, carrying the client's request headers, and it passes no
/// access phase of its own.
extension ClientConnection {
    /// What the subrequest left for the main request.
    struct SubrequestResult {
        /// The response status; the error's (502, 504) when none came.
        var status: Int
        /// Its `WWW-Authenticate` values, in order.
        var challenges: [[UInt8]]
        /// `auth_request_set` values, evaluated in the subrequest (its `$upstream_*`).
        var assignments: [(name: String, value: [UInt8])]
        /// An assignment could not be evaluated (nginx: the main request fails with 500).
        var failed: Bool
    }

    /// Starts the auth subrequest for `uri` of the main request `ex`; it ends in
    /// `authSubrequestDone` (possibly before this returns).
    func startSubrequest(_ uri: [UInt8]) {
        let main: Exchange = ex
        let loc = uri.withUnsafeBytes { main.server.locations.find($0).location } ?? main.server.fallback
        let sub = Exchange(subrequestOf: main, location: loc, uri: uri, startMicros: monotonicMicros())
        switch loc.handler {
        case .proxy(let t) where t.kind == .http:
            ex = sub
            // The main request waits on the subrequest's upstream deadlines (its proxy timeouts).
            worker.loop.setDeadline(self, afterMillis: 0)
            startProxy(t)
        case .return(let r):
            // A location that only returns (`return 204;`): its status is the answer.
            ex = sub
            endSubrequest(status: r.code, challenges: [])
        default:
            log(.error, "auth request to \"\(String(decoding: uri, as: UTF8.self))\" is not proxied: lb's subrequests are answered by proxy_pass or return")
            ex = sub
            endSubrequest(status: 0, challenges: [])
        }
    }

    /// The subrequest's upstream URI: its own URI (the location prefix replaced by proxy_pass's
    /// URI part), never the client's request target or arguments.
    func subrequestUpstreamURI(_ t: ProxyTarget, into out: inout [UInt8]) {
        guard let replacement = t.uri else {
            out = URI.escapePath(ex.uri)
            return
        }
        out = uriWithLocationPrefixReplaced(by: replacement)
    }

    /// The subrequest's response head arrived (after proxy_next_upstream had its say): status and
    /// challenges are kept, the body is not relayed.
    func subrequestAnswered(_ c: UpstreamConnection, headLength: Int) {
        let b = c.inBuf.readableBytes
        ex.upstreamHead.removeAll(keepingCapacity: true)
        ex.upstreamHead.append(contentsOf: UnsafeRawBufferPointer(rebasing: b[0..<headLength]))
        var challenges: [[UInt8]] = []
        for f in ex.attempt.response.headers where f.name.count == 16 && ASCII.equalsLower(b, f.name, "www-authenticate") {
            challenges.append(Array(b[f.value]))
        }
        let r = ex.attempt.response
        let status = r.status
        recordUpstream(status: status)
        releasePeer(failed: false)
        worker.loop.setDeadline(c, afterMillis: 0)
        ex.up = nil
        // The connection goes back to the upstream's keep-alive pool when the whole answer is
        // already here (no body, or its Content-Length bytes came with the head); else it closes
        // rather than wait for a body nobody reads.
        let rest = c.inBuf.readable - headLength
        let whole = status == 204 || status == 304 ? rest == 0 : !r.chunked && r.contentLength == rest
        if whole, let rt = ex.upstreamRuntime, let keepalive = rt.group.keepalive,
           ProxyPolicy.upstreamReusable(pool: true, responseClose: r.close, responseHTTP11: r.versionMinor == 1,
                                        sentConnectionClose: ex.sentConnectionClose, requestComplete: ex.attempt.requestComplete,
                                        unreadBytes: false, peerClosed: c.peerClosed),
           c.requests < rt.group.keepaliveRequests, worker.loop.now - c.createdMillis < Int64(rt.group.keepaliveTimeMs) {
            c.inBuf.clear()
            c.outBuf.clear()
            worker.putIdle(c, keepalive: keepalive, timeoutMs: rt.group.keepaliveTimeoutMs)
        } else {
            c.close()
        }
        ex.responder = .proxy(.idle)
        endSubrequest(status: status, challenges: challenges)
    }

    /// The subrequest got no response (no live peer, every try failed or timed out): its status
    /// is the error's (502, 504), as nginx's.
    func subrequestFailed(_ code: Int) {
        if let c = ex.up {
            c.close()
            ex.up = nil
        }
        releasePeer(failed: false)
        ex.responder = .proxy(.idle)
        endSubrequest(status: code, challenges: [])
    }

    /// The client went away while the subrequest ran: both end, the main request is logged (499).
    func abortSubrequest() {
        if let c = ex.up {
            c.close()
            ex.up = nil
        }
        releasePeer(failed: false)
        ex = ex.parentExchange
        if ex.status == 0 { ex.status = 499 }
        finishLog()
        close()
    }

    /// Evaluates the main request's `auth_request_set` in the subrequest, then hands the result
    /// to the main request.
    func endSubrequest(status: Int, challenges: [[UInt8]]) {
        guard let main = ex.parentExchange else { return }
        var result = SubrequestResult(status: status, challenges: challenges, assignments: [], failed: false)
        for a in main.location.settings.resolved.authRequestSet {
            result.assignments.append((a.name, evaluate(a.value)))
        }
        result.failed = ex.variableFailed
        ex = main
        authSubrequestDone(result)
    }
}
