import LBConfig

/// `proxy_ignore_client_abort on` (and `fastcgi_`/`uwsgi_ignore_client_abort`), as nginx: a
/// client that closes its connection does not end the upstream request. nginx then does not
/// watch the client at all while it waits for the upstream (no `…check_broken_connection`): the
/// response head and body are written as usual, so a client that only half-closed still gets
/// them, and the request is logged with the upstream's status. Only a write that fails shows the
/// client is gone; then, as nginx's `ngx_http_upstream_process_request`, a response being stored
/// in the cache is read to its end (nothing more is written; the entry is published, the
/// upstream connection may go back to its pool), and any other response ends there, its upstream
/// connection closed. With `off`, a client that goes away while lb waits ends the request (499);
/// one that goes once the head is out ends it too, unless the response is being stored, which is
/// read to its end as with `on` (`storesAfterClientAbort`).
extension ClientConnection {
    /// The location keeps the upstream request going when the client goes away (never for a
    /// background cache update or an auth subrequest, which have no client of their own).
    var ignoresClientAbort: Bool {
        settings.resolved.proxyIgnoreClientAbort && !ex.inBackground && ex.parentExchange == nil
    }

    /// The client closed (or half-closed) its side while the upstream request is under way and
    /// nothing of the response was written: nginx's `ngx_http_upstream_check_broken_connection`
    /// (with EPOLLRDHUP) ends the request with 499 and closes the upstream connection — unless
    /// the response is for the cache, which is still fetched and stored (only noted in the log).
    func clientClosedWhileWaiting() {
        guard !ex.clientCloseNoted, !ex.headerStarted else { return }
        if ex.cache != nil && ex.up != nil {
            ex.clientCloseNoted = true
            log(.info, "epoll_wait() reported that client prematurely closed connection")
            return
        }
        log(.info, "epoll_wait() reported that client prematurely closed connection" + (ex.up != nil ? ", so upstream connection is closed too" : ""))
        abortProxy()
    }

    /// The upstream's head arrived for an HTTP/1 client already seen closed while lb waited,
    /// with no event since to report it (its FIN came with the request, or was read with other
    /// bytes): nginx, told by EPOLLRDHUP, has already taken it as `clientClosedWhileWaiting`
    /// (499, or for the cache, the response fetched but its head failing, nothing stored).
    /// True when the request ended here.
    func clientGoneBeforeHead() -> Bool {
        guard peerClosed, !transport.isHTTP2, !ignoresClientAbort, !ex.clientCloseNoted, !ex.headerStarted else { return false }
        clientClosedWhileWaiting()
        return state == .closed
    }

    /// An HTTP/2 client reset the stream (RST_STREAM, a browser's navigation away), or its whole
    /// connection went (closed by the client, failed, or ended by a connection error:
    /// `H2Session.abortStreams`): nginx's client abort (`c->error`, then the request's read
    /// handler). A request waiting for its upstream goes on under `proxy_ignore_client_abort on`
    /// — its response head then fails to go out and the request ends there, logged with the
    /// upstream's status and nothing stored, as nginx's HTTP/2 header filter fails on a closed
    /// stream — and with `off` ends now (499) unless its response is for the cache
    /// (`clientClosedWhileWaiting`). A response under way ends now, unless it is being stored in
    /// the cache, which is read to its end (with `on` or `off`, as nginx); a request not yet
    /// answered is logged 499 (nginx logs every request). A connection with no request under way
    /// ends.
    func clientReset() {
        guard state != .closed else { return }
        guard let ex else {
            close()
            return
        }
        if case .proxy(let phase) = ex.responder {
            switch phase {
            case .connecting, .sending, .waitingHead, .cacheWait:
                if !ignoresClientAbort { clientClosedWhileWaiting() } // 499, or goes on for the cache
            case .relaying:
                // The head went out: as nginx's event pipe after a failed write
                // (`downstream_error`), a response being stored is read to its end and stored,
                // whatever proxy_ignore_client_abort says; any other ends now.
                if storesAfterClientAbort, let c = ex.up {
                    readRestForCache(c)
                } else {
                    abortProxy()
                }
            case .idle, .readingBody:
                abortProxy()
            }
            return
        }
        switch ex.responder {
        case .local, .file:
            if ex.headerStarted { finishLog() }
        case .routing, .delayed, .resolving:
            if !ex.inBackground && ex.parentExchange == nil {
                if ex.status == 0 { ex.status = 499 }
                finishLog()
            }
        case .proxy, .tunnel, .apiBody:
            break
        }
        close()
    }

    /// The client went away once the response head was out and the response is being stored in
    /// the cache (not for a background update or a subrequest, which have no client of their
    /// own): the rest is read for the entry, with proxy_ignore_client_abort on or off, as nginx's
    /// `u->cacheable` keeps both its check of a broken connection and its event pipe's failed
    /// write from ending the request.
    var storesAfterClientAbort: Bool {
        ex.cacheWriter != nil && !ex.inBackground && ex.parentExchange == nil
    }

    /// A write to the client failed while relaying: true when the rest of the response is read
    /// for the cache (`storesAfterClientAbort`), false when the caller ends the request. Never
    /// for an HTTP/2 stream its client reset before the head went out: nginx's header filter
    /// fails there first, and the entry is not stored (one reset after it is `clientReset`'s).
    /// Nor for a client whose close was seen while lb waited for the head (`off`,
    /// `clientClosedWhileWaiting`): nginx marks that connection failed (`c->error`), so sending
    /// the head fails and the entry is not stored.
    func keepReadingForCache(_ c: UpstreamConnection) -> Bool {
        guard storesAfterClientAbort, !ex.clientCloseNoted else { return false }
        if case .stream(let p) = transport, p.broken { return false }
        readRestForCache(c)
        return true
    }

    /// The client is gone and the response is being stored: the rest is read into the entry,
    /// nothing more is written, and the request then completes as any other.
    func readRestForCache(_ c: UpstreamConnection) {
        ex.clientGone = true
        closeAfterResponse = true
        outBuf.clear()
        // Only the upstream is timed now (proxy_read_timeout), never the client.
        worker.loop.setDeadline(self, afterMillis: 0)
        readForCacheOnly(c)
    }

    /// A response that ended early (its client gone, its upstream closed or timed out mid-body)
    /// still shows its try in `$upstream_status`, `$upstream_addr` and the rest, as nginx keeps
    /// `u->state` from the response head on (lb released the peer, which took it off the list).
    func recordAttemptCutShort() {
        guard ex.upstreamRuntime != nil, ex.attempt.headerDone > 0, !ex.attempt.recorded, !ex.attempt.peerText.isEmpty else { return }
        ex.upstreamLog.append(currentUpstreamAttempt(status: ex.attempt.response.status))
        ex.attempt.recorded = true
    }

    /// Reads the upstream response to its end into the cache entry, writing nothing to the
    /// client; then the request completes as any other (logged, the upstream connection pooled
    /// when it may be). A premature end, an invalid body or an entry given up closes the
    /// upstream connection, as a failed relay does.
    func readForCacheOnly(_ c: UpstreamConnection) {
        while true {
            let before = ex.attempt.relayable
            validateRelayable(c)
            guard ex.up != nil else { return } // an invalid chunked body ended the request
            teeToCache(c, from: before)
            guard ex.cacheWriter != nil else {
                // The entry was given up (a write error): nothing is left to read for.
                releasePeer(failed: false)
                abortProxy()
                return
            }
            // Consumed, sent nowhere.
            c.inBuf.readIndex += ex.attempt.relayable
            ex.attempt.relayable = 0
            if ex.attempt.responseComplete {
                completeProxy()
                return
            }
            if c.readable {
                let alive = readUpstream(c, limit: ClientConnection.relayBuffer)
                worker.loop.setDeadline(c, afterMillis: settings.resolved.proxyReadTimeoutMs)
                if c.inBuf.readable > 0 { continue }
                if alive && !c.peerClosed { continue }
            }
            if c.peerClosed && c.inBuf.readable == 0 {
                if upstreamClosedWithNothingLeft() { continue }
                return
            }
            if c.deadline == 0 { worker.loop.setDeadline(c, afterMillis: settings.resolved.proxyReadTimeoutMs) }
            return
        }
    }
}
