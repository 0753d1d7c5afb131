import Glibc
import LBConfig
import LBHTTP
import LBIO

/// What a request does with its cache zone (nginx's ngx_http_upstream_cache and
/// ngx_http_file_cache): look up, serve a hit with sendfile, wait on the lock, serve stale,
/// revalidate, update in the background, store while relaying, purge.
struct CacheRequest {
    var zone: CacheZoneRuntime
    var key: [UInt8]
    var primary: CacheHash
    /// The hash looked up and stored under (a variant's when the key varies).
    var hash: CacheHash
    /// The entry found, fresh or stale.
    var entry: CacheEntry?
    /// Holds the zone's lock (or updating mark) for `lockHash`.
    var lockHash: CacheHash?
    /// The response must not be stored (`proxy_no_cache`, a lock wait that timed out).
    var noStore = false
    var revalidating = false
    var waitUntil: Int64 = 0
}

extension ClientConnection {
    static let statusHit = Array("HIT".utf8), statusMiss = Array("MISS".utf8), statusExpired = Array("EXPIRED".utf8)
    static let statusStale = Array("STALE".utf8), statusUpdating = Array("UPDATING".utf8)
    static let statusRevalidated = Array("REVALIDATED".utf8), statusBypass = Array("BYPASS".utf8)

    /// Entry point for a proxied location with `proxy_cache`.
    func startCachedProxy(_ t: ProxyTarget, zone: CacheZoneRuntime) {
        let loc = ex.location
        ex.target = t
        if t.variableURLIndex != nil {
            // proxy_pass with variables: the URL is made first (nginx evaluates it before the
            // cache), so the key's `$proxy_host` is the host it names; a miss proxies by it.
            switch resolveVariableTarget(t) { // RewriteProxy.swift
            case .none: return
            case .failed(let status, let message):
                log(.error, message)
                return respondError(status)
            case .group(let r), .address(let r, _, _), .name(let r, _, _, _):
                ex.target = r
            }
        }
        // GET and HEAD are always cacheable methods; others only when proxy_cache_methods says so.
        if req.method != .get && req.method != .head {
            guard req.method == .post && loc.settings.resolved.proxyCacheMethods.contains(.post) else {
                startProxy(t)
                return
            }
        }
        let key = evaluate(loc.settings.resolved.proxyCacheKey)
        let primary = CacheHash(key: key)
        var cr = CacheRequest(zone: zone, key: key, primary: primary, hash: primary)
        if let nc = loc.settings.proxyNoCache, nc.contains(where: { truthy(evaluate($0)) }) { cr.noStore = true }
        ex.cache = cr
        if let b = loc.settings.proxyCacheBypass, b.contains(where: { truthy(evaluate($0)) }) {
            ex.cacheStatus = ClientConnection.statusBypass
            zone.bypassed.add(1, ordering: .relaxed)
            startProxy(t)
            return
        }
        lookupAndDispatch(firstTime: true)
    }

    /// `proxy_cache $var` (`ngx_http_upstream_cache_get`): for a cacheable method, the value names
    /// the zone; empty or `off` proxies without the cache, an unknown name is logged and a 500.
    func startProxyWithCacheNamed(by value: Template, _ t: ProxyTarget) {
        if req.method != .get && req.method != .head {
            guard req.method == .post && settings.resolved.proxyCacheMethods.contains(.post) else { return startProxy(t) }
        }
        let name = String(decoding: evaluate(value), as: UTF8.self)
        if ex.variableFailed { return respondError(500) }
        if name.isEmpty || name == "off" { return startProxy(t) }
        guard let zone = generation.cacheZones[name] else {
            log(.error, "cache \"\(name)\" not found")
            return respondError(500)
        }
        startCachedProxy(t, zone: zone)
    }

    func truthy(_ v: [UInt8]) -> Bool { !v.isEmpty && v != [UInt8(ascii: "0")] }

    /// Finds the entry for the request (its variant when the key varies).
    func lookupCacheEntry() -> CacheEntry? {
        guard var cr = ex.cache else { return nil }
        let now = worker.loop.now
        let (names, found) = cr.zone.index.withLock { ix -> ([String]?, CacheEntry?) in
            let names = ix.varyNames(cr.primary)
            if names == nil { return (nil, ix.lookup(cr.primary, now: now)) }
            return (names, nil)
        }
        var entry = found
        if let names {
            cr.hash = CacheFile.variantHash(key: cr.key, names: names) { headerValue($0) ?? [] }
            let h = cr.hash
            entry = cr.zone.index.withLock { $0.lookup(h, now: now) }
        } else {
            cr.hash = cr.primary
        }
        // Until the loader has finished, a file on disk may not be indexed yet: check it.
        if entry == nil && !cr.zone.loaded.load(ordering: .acquiring),
           let e = CacheFile.read(path: cr.zone.path(for: cr.hash), expecting: cr.hash), e.key == cr.key {
            cr.zone.index.withLock { _ = $0.insert(e, now: now, onlyIfAbsent: true) }
            entry = e
        }
        // Never an entry for another key (an MD5 collision or a foreign file).
        if let e = entry, e.key != cr.key { entry = nil }
        cr.entry = entry
        ex.cache = cr
        return entry
    }

    func lookupAndDispatch(firstTime: Bool) {
        guard let t = ex.target, let zone = ex.cache?.zone else { return }
        let s = ex.location
        let now = worker.loop.now
        let nowSec = wallClock().seconds
        let entry = lookupCacheEntry()
        let lockOn = s.settings.resolved.proxyCacheLock
        let lockAge = Int64(s.settings.resolved.proxyCacheLockAgeMs)
        let hash = ex.cache!.hash
        if let e = entry {
            if e.validUntil > nowSec {
                if serveCached(e, status: ClientConnection.statusHit) { zone.hits.add(1, ordering: .relaxed); return }
                return lookupAndDispatch(firstTime: firstTime) // the file vanished: look again
            }
            // Expired. Another request updating it: serve stale if allowed.
            let useStale = s.settings.resolved.proxyCacheUseStale
            let staleUpdating = useStale.contains(.updating) || nowSec < e.validUntil + e.staleWhileRevalidate
            let locked = zone.index.withLock { $0.tryLock(hash, now: now, maxAgeMs: lockAge) }
            if !locked {
                if staleUpdating, serveCached(e, status: ClientConnection.statusUpdating) { zone.updating.add(1, ordering: .relaxed); return }
                if lockOn && firstTime { return waitForCache() }
                if lockOn && now < ex.cache!.waitUntil { return waitForCache() }
            } else {
                ex.cache!.lockHash = hash
                if s.settings.resolved.proxyCacheBackgroundUpdate && staleUpdating && !req.hasBody {
                    // The client gets the stale entry now; this connection fetches the update after it.
                    ex.backgroundUpdatePending = true
                    if serveCached(e, status: ClientConnection.statusStale) { zone.stale.add(1, ordering: .relaxed); return }
                    ex.backgroundUpdatePending = false
                }
            }
            ex.cacheStatus = ClientConnection.statusExpired
            zone.expired.add(1, ordering: .relaxed)
            ex.cache!.revalidating = s.settings.resolved.proxyCacheRevalidate && (e.etag != nil || e.lastModified != nil)
            startProxy(t)
            return
        }
        // A miss.
        if let minUses = s.settings.proxyCacheMinUses, minUses > 1, firstTime {
            let uses = zone.index.withLock { $0.countUse(hash, now: now) }
            if uses < minUses { ex.cache!.noStore = true }
        }
        let locked = zone.index.withLock { $0.tryLock(hash, now: now, maxAgeMs: lockAge) }
        if locked {
            ex.cache!.lockHash = hash
        } else if lockOn {
            if firstTime { return waitForCache() }
            if now < ex.cache!.waitUntil { return waitForCache() }
            // proxy_cache_lock_timeout: go upstream, but do not store the response (nginx).
            ex.cache!.noStore = true
        }
        ex.cacheStatus = ClientConnection.statusMiss
        zone.misses.add(1, ordering: .relaxed)
        startProxy(t)
    }

    /// Waits for the request holding the lock (polled: the holder may be on another worker).
    func waitForCache() {
        ex.responder = .proxy(.cacheWait)
        if ex.cache!.waitUntil == 0 { ex.cache!.waitUntil = worker.loop.now + Int64(settings.resolved.proxyCacheLockTimeoutMs) }
        worker.loop.setDeadline(self, afterMillis: 10)
    }

    func cacheWaitTick() {
        ex.responder = .proxy(.idle)
        lookupAndDispatch(firstTime: false)
    }

    // MARK: serving entries

    /// Sends a stored entry (head from memory, body with sendfile). False when its file is gone
    /// or is no longer the indexed one (nothing has been written then).
    func serveCached(_ e: CacheEntry, status cs: [UInt8]) -> Bool {
        guard let zone = ex.cache?.zone else { return false }
        let file = worker.sharedFile(zone: zone, hash: e.hash, inode: e.inode) {
            let f = open(zone.path(for: e.hash), O_RDONLY | O_CLOEXEC)
            return f >= 0 ? f : nil
        }
        // The file must be the indexed one, whole and still in place: a descriptor held since an
        // earlier hit still reads a file deleted or renamed over since (then it has no links left),
        // and a file rewritten in place has another size or modification time.
        var st = stat()
        guard let file, fstat(file.fd, &st) == 0, CacheFile.isCurrent(st, e) else {
            worker.forgetSharedFile(zone: zone, hash: e.hash)
            zone.index.withLock { $0.forget(e.hash, inode: e.inode) }
            ex.cache?.entry = nil
            return false
        }
        guard e.parsed.status != 0 else {
            worker.forgetSharedFile(zone: zone, hash: e.hash)
            zone.index.withLock { $0.remove(e.hash) }
            return false
        }
        file.users += 1
        let f = file.fd
        if let u = ex.up {
            u.close()
            ex.up = nil
        }
        releasePeer(failed: false)
        ex.responder = .file(FileBody(shared: file)) // held while the head is made
        ex.cacheStatus = cs
        ex.attempt.response = e.parsed
        if !ex.requestBodyComplete { closeAfterResponse = true }
        // The response-head stage answers conditional requests and ranges from the entry (a
        // cache hit allows several ranges), and decides gzip for a whole 200 entry (read back from
        // its file; bounded in size).
        var length = e.bodyLength
        var offset = e.bodyOffset
        let d = decideHead(HeadStageResponse(status: e.status, source: .cacheHit, contentLength: length,
                                             gzipQualifies: settings.resolved.gzip && !hasContentEncoding(e)
                                                 && gzipQualifies(status: e.status, contentEncoding: nil, contentType: entryContentType(e), contentLength: length),
                                             gzipPossible: length <= GzipPolicy.maxInMemory, rangesPossible: true),
                           validators: { Validators(lastModified: e.lastModified.flatMap { DateCache.parse(String(decoding: $0, as: UTF8.self)) }, etag: e.etag) })
        switch d.outcome {
        case .send: break
        case .preconditionFailed:
            closeStaticFile()
            respondError(412)
            return true
        case .rangeNotSatisfiable:
            closeStaticFile()
            respondRangeNotSatisfiable(total: length, vary: d.vary)
            return true
        }
        let code = d.status
        var contentRange: String?
        var ranges: [Range<Int>] = []
        var multipart: RangeFilter.Multipart?
        switch d.body {
        case .whole, .none: break
        case .single(let r):
            contentRange = "bytes \(r.lowerBound)-\(r.upperBound - 1)/\(length)"
            offset += r.lowerBound
            length = r.count
        case .multipart(let rs):
            ranges = rs
            let m = RangeFilter.Multipart(boundary: ClientConnection.nextBoundary(), contentType: entryContentType(e), total: length)
            multipart = m
            length = m.contentLength(rs)
        }
        ex.attempt.response.status = code
        if d.gzip {
            if let packed = compressWholeBody(read: { ClientConnection.readFile(f, offset: offset, length: length) }) {
                e.head.withUnsafeBytes { b in
                    writeResponseHead(b, headLength: b.count, d, chunkedOut: false, upgrade: false,
                                      contentLength: req.method == .head ? nil : packed.count, gzipped: true)
                }
                closeStaticFile()
                outBuf.append(packed)
                ex.bodyBytesSent = packed.count
                flushLocal()
                return true
            }
        }
        e.head.withUnsafeBytes { b in
            writeResponseHead(b, headLength: b.count, d, chunkedOut: false, upgrade: false,
                              contentLength: code == 304 ? nil : length, extra: contentRange.map { "Content-Range: " + $0 + "\r\n" },
                              reasonOverride: code != e.status, contentType: multipart?.headerValue)
        }
        if req.method == .head || code == 304 || length == 0 {
            closeStaticFile()
            flushLocal()
            return true
        }
        ex.bodyBytesSent = 0
        guard case .file(let held) = ex.responder else { preconditionFailure("a cache hit's file is held") }
        if let m = multipart {
            let parts = ranges.map { (m.partHead($0), (e.bodyOffset + $0.lowerBound)..<(e.bodyOffset + $0.upperBound)) }
            ex.responder = .file(FileBody(fd: f, shared: held.shared, offset: 0, remaining: 0,
                                          multipart: MultipartBody(parts: parts, trailer: m.trailer)))
        } else {
            ex.responder = .file(FileBody(fd: f, shared: held.shared, offset: offset, remaining: length, multipart: nil))
        }
        sendStaticBody()
        return true
    }

    /// Serves the stale entry for an upstream failure when `proxy_cache_use_stale` (or the
    /// response's `stale-if-error`) allows it.
    func serveStaleOnFailure(_ condition: UpstreamConditions) -> Bool {
        guard !ex.inBackground, let cr = ex.cache, let e = cr.entry, !ex.headerStarted else { return false }
        let nowSec = wallClock().seconds
        // stale-if-error covers errors, timeouts, invalid heads and 5xx (RFC 5861).
        let staleIfError: UpstreamConditions = [.error, .timeout, .invalidHeader, .http500, .http502, .http503, .http504]
        let allowed = settings.resolved.proxyCacheUseStale.contains(condition)
            || (nowSec < e.validUntil + e.staleIfError && staleIfError.contains(condition))
        guard allowed else { return false }
        if serveCached(e, status: ClientConnection.statusStale) {
            cr.zone.stale.add(1, ordering: .relaxed)
            return true
        }
        return false
    }

    // MARK: storing

    /// After the upstream head: a 304 to our revalidation refreshes the entry; a cacheable
    /// response starts a writer. Returns true when the response was answered from the cache.
    func cacheResponseHead(_ c: UpstreamConnection, headLength: Int) -> Bool {
        guard let cr = ex.cache else { return false }
        let b = c.inBuf.readableBytes
        let info = CachePolicy.ResponseInfo(ex.attempt.response, UnsafeRawBufferPointer(rebasing: b[0..<headLength]))
        let nowSec = wallClock().seconds
        if ex.attempt.response.status == 304, cr.revalidating, var e = cr.entry {
            let fresh = CachePolicy.freshness(CachePolicy.ResponseInfo(status: 200, xAccelExpires: info.xAccelExpires,
                                                                       cacheControl: info.cacheControl, expires: info.expires),
                                              now: nowSec, valid: settings.resolved.proxyCacheValid, ignore: settings.resolved.proxyIgnoreHeaders)
                ?? CachePolicy.Freshness(validUntil: nowSec + (CachePolicy.validSeconds(e.status, settings.resolved.proxyCacheValid) ?? 0))
            e.validUntil = fresh.validUntil
            e.staleWhileRevalidate = fresh.staleWhileRevalidate
            e.staleIfError = fresh.staleIfError
            if fresh.validUntil > nowSec { storeFreshness(&e) }
            c.inBuf.readIndex += headLength
            finishUpstreamWithoutBody(c)
            cr.zone.revalidated.add(1, ordering: .relaxed)
            if ex.inBackground { endBackground(); return true }
            if serveCached(e, status: ClientConnection.statusRevalidated) { return true }
            // The file went away meanwhile: nothing to send but an error.
            proxyError(502)
            return true
        }
        let statusCondition = UpstreamConditions.status(ex.attempt.response.status)
        if let e = cr.entry, !statusCondition.isEmpty && settings.resolved.proxyCacheUseStale.contains(statusCondition) || (ex.attempt.response.status >= 500 && nowSec < e.validUntil + e.staleIfError && [500, 502, 503, 504].contains(ex.attempt.response.status)) {
            c.inBuf.readIndex += headLength
            recordUpstream(status: ex.attempt.response.status)
            releasePeer(failed: false)
            c.close()
            ex.up = nil
            if ex.inBackground { endBackground(); return true }
            if serveStaleOnFailure(statusCondition) || serveStaleOnFailure(.error) { return true }
            proxyError(502)
            return true
        }
        guard !cr.noStore, ex.attempt.response.status != 304,
              let fresh = CachePolicy.freshness(info, now: nowSec, valid: settings.resolved.proxyCacheValid, ignore: settings.resolved.proxyIgnoreHeaders) else {
            return false
        }
        // The head as stored: the upstream's, without framing and hop-by-hop headers.
        var stored: [UInt8] = []
        stored.reserveCapacity(headLength)
        var lineEnd = 0
        while lineEnd < headLength && b[lineEnd] != 0x0A { lineEnd += 1 }
        stored += b[0...lineEnd]
        if stored.count < 2 || stored[stored.count - 2] != 0x0D { stored.insert(0x0D, at: stored.count - 1) }
        for f in ex.attempt.response.headers {
            let n = f.name
            switch n.count {
            case 10 where ASCII.equalsLower(b, n, "connection"), 10 where ASCII.equalsLower(b, n, "keep-alive"): continue
            case 17 where ASCII.equalsLower(b, n, "transfer-encoding"): continue
            case 14 where ASCII.equalsLower(b, n, "content-length"): continue
            default: break
            }
            stored += b[n.lowerBound..<f.value.upperBound]
            stored += [0x0D, 0x0A]
        }
        stored += [0x0D, 0x0A]
        var hash = cr.primary
        var names: [String] = []
        if let v = info.vary, !settings.resolved.proxyIgnoreHeaders.contains(.vary) {
            names = CachePolicy.varyHeaderNames(v)
            if !names.isEmpty { hash = CacheFile.variantHash(key: cr.key, names: names) { headerValue($0) ?? [] } }
        }
        let entry = CacheEntry(hash: hash, primary: cr.primary, key: cr.key, varyNames: names, head: stored, status: ex.attempt.response.status,
                               bodyOffset: 0, bodyLength: 0, validUntil: fresh.validUntil, staleWhileRevalidate: fresh.staleWhileRevalidate,
                               staleIfError: fresh.staleIfError, inode: 0)
        let w = CacheWriter(zone: cr.zone, entry: entry, created: nowSec)
        if w.failed {
            cacheWriteFailed(w)
            return false
        }
        if ex.attempt.response.chunked && !ex.attempt.dechunk { w.framer = ChunkedFramerBox() }
        ex.cacheWriter = w
        return false
    }

    /// Rewrites an entry's freshness in its file and in the index (a revalidation). The file's new
    /// modification time goes into the index with it, so hits keep recognising the file.
    func storeFreshness(_ e: inout CacheEntry) {
        guard let zone = ex.cache?.zone else { return }
        let path = zone.path(for: e.hash)
        var modified: Int64?
        let f = open(path, O_WRONLY | O_CLOEXEC)
        if f >= 0 {
            var st = stat()
            // Only the indexed file: one replaced since is not rewritten (its hit becomes a miss).
            if fstat(f, &st) == 0, CacheFile.isCurrent(st, e) {
                var v = Int64(e.validUntil).littleEndian
                let n = withUnsafeBytes(of: &v) { pwrite(f, $0.baseAddress, 8, off_t(CacheFile.validUntilOffset)) }
                if n != 8 {
                    log(.crit, "pwrite() \"\(path)\" failed (\(n < 0 ? errno : ENOSPC): \(String(cString: strerror(n < 0 ? errno : ENOSPC))))")
                } else if fstat(f, &st) == 0 {
                    modified = CacheFile.modifiedTime(st)
                }
            }
            Glibc.close(f)
        } else if errno != ENOENT {
            log(.crit, "open() \"\(path)\" failed (\(errno): \(String(cString: strerror(errno))))")
        }
        if let modified { e.modified = modified }
        let refreshed = e
        zone.index.withLock { $0.refresh(refreshed.hash, validUntil: refreshed.validUntil, staleWhileRevalidate: refreshed.staleWhileRevalidate,
                                         staleIfError: refreshed.staleIfError, modified: modified) }
    }

    /// A cache file could not be written (full or read-only disk): nginx logs the failed call at
    /// `crit`; the response is still relayed to the client, only not stored.
    func cacheWriteFailed(_ w: CacheWriter) {
        w.abort()
        if let f = w.failure { log(.crit, f + " while reading upstream") }
    }

    /// The upstream's answer had no body (a 304): release the connection as a completed exchange.
    func finishUpstreamWithoutBody(_ c: UpstreamConnection) {
        guard let rt = ex.upstreamRuntime else { return }
        recordUpstream(status: ex.attempt.response.status)
        let reusable = rt.group.keepalive != nil && !ex.attempt.response.close && ex.attempt.response.versionMinor == 1 && !ex.sentConnectionClose
            && c.inBuf.readable == 0 && !c.peerClosed && ex.requestBodyComplete
        releasePeer(failed: false)
        ex.up = nil
        worker.loop.setDeadline(c, afterMillis: 0)
        if reusable {
            c.inBuf.clear()
            c.outBuf.clear()
            worker.putIdle(c, keepalive: rt.group.keepalive!, timeoutMs: rt.group.keepaliveTimeoutMs)
        } else {
            c.close()
        }
    }

    /// Copies newly validated body bytes (`from` ..< `relayable` of the upstream buffer) into the entry file.
    func teeToCache(_ c: UpstreamConnection, from: Int) {
        guard let w = ex.cacheWriter, ex.attempt.relayable > from, let base = c.inBuf.base else { return }
        let region = UnsafeRawBufferPointer(start: base + c.inBuf.readIndex + from, count: ex.attempt.relayable - from)
        if let box = w.framer {
            do {
                _ = try box.framer.consume(region) { r in w.appendBody(UnsafeRawBufferPointer(rebasing: region[r])) }
            } catch {
                w.failed = true
            }
        } else {
            w.appendBody(region)
        }
        if w.failed {
            cacheWriteFailed(w)
            ex.cacheWriter = nil
        }
    }

    /// The response is complete: publish the entry.
    func commitCacheWriter() {
        guard let w = ex.cacheWriter else { return }
        ex.cacheWriter = nil
        guard let zone = ex.cache?.zone else { w.abort(); return }
        if case .length(let n) = ex.attempt.responseFraming, n != 0 { w.abort(); return }
        guard let e = w.commit() else {
            cacheWriteFailed(w)
            return
        }
        let now = worker.loop.now
        // Entries this evicts are unlinked by the cache manager, not on this loop.
        zone.index.withLock { ix in
            ix.insert(e, now: now)
            ix.clearUses(e.primary)
        }
        zone.stores.add(1, ordering: .relaxed)
    }

    /// Releases the lock and drops an unfinished entry file (every end of a cached request).
    func endCacheRequest() {
        if let w = ex.cacheWriter {
            w.abort()
            ex.cacheWriter = nil
        }
        if let cr = ex.cache, let h = cr.lockHash {
            cr.zone.index.withLock { $0.unlock(h) }
        }
        ex.cache = nil
        ex.backgroundUpdatePending = false
    }

    // MARK: background update

    /// After the stale response went out: fetch the update on this connection (nginx does it as a
    /// subrequest of the same connection). Nothing more is written to the client.
    func startBackgroundUpdate() {
        guard let t = ex.target, ex.cache != nil else { return }
        ex = Exchange(backgroundUpdateOf: ex)
        ex.cacheStatus = ClientConnection.statusExpired
        ex.cache!.revalidating = settings.resolved.proxyCacheRevalidate && (ex.cache!.entry?.etag != nil || ex.cache!.entry?.lastModified != nil)
        // A `proxy_pass` with variables goes where the response came from (its runtime kept).
        startProxy(t, runtime: t.variableURLIndex != nil ? ex.upstreamRuntime : nil)
    }

    /// The background update ended (stored, refused or failed): carry on with the connection.
    func endBackground() {
        if let c = ex.up {
            c.close()
            ex.up = nil
        }
        releasePeer(failed: false)
        ex.responder = .proxy(.idle)
        outBuf.clear()
        finishRequest()
    }

    // MARK: purge

    func isPurgeRequest() -> Bool {
        req.method == .other && ASCII.equalsLower(head.readableBytes, req.methodRange, "purge")
    }

    /// `PURGE /uri`: removes the entry for the request's key (all its variants), or every key
    /// starting with the key when it ends in `*`. Only clients `proxy_cache_purge` lists.
    func handlePurge(_ rules: [AccessRule]) {
        let addr = peer.ipBytes
        guard rules.contains(where: { $0.network?.contains(addr) ?? true }) else {
            log(.error, "purge forbidden by proxy_cache_purge")
            respondError(403)
            return
        }
        var zoneName = settings.resolved.cacheZone
        if let v = settings.proxyCacheValue { zoneName = String(decoding: evaluate(v), as: UTF8.self) } // `proxy_cache $var`
        guard let name = zoneName, let zone = generation.cacheZones[name] else {
            respondError(404)
            return
        }
        if case .proxy(let t) = ex.location.handler { ex.target = t }
        var key = evaluate(settings.resolved.proxyCacheKey)
        var n = 0
        if key.last == UInt8(ascii: "*") {
            key.removeLast()
            let prefix = key
            n = zone.index.withLock { $0.removeAll { $0.key.starts(with: prefix) } }
        } else {
            let primary = CacheHash(key: key)
            n = zone.index.withLock { $0.removeAll { $0.primary == primary } }
        }
        var body = Array("{\"purged\": \(n), \"key\": \"".utf8)
        for b in key {
            if b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") { body.append(UInt8(ascii: "\\")) }
            if b >= 0x20 { body.append(b) }
        }
        body += Array("\"}\n".utf8)
        respond(n > 0 ? 200 : 404, contentType: "application/json", body: body)
    }
}

extension CacheEntry {
    /// A header value of the stored head (lowercase name).
    func headValue(_ lname: StaticString) -> [UInt8]? {
        head.withUnsafeBytes { b -> [UInt8]? in
            for f in parsed.headers where ASCII.equalsLower(b, f.name, lname) { return Array(b[f.value]) }
            return nil
        }
    }
    var etag: [UInt8]? { headValue("etag") }
    var contentEncoding: [UInt8]? { headValue("content-encoding") }
    var contentType: [UInt8]? { headValue("content-type") }
    var lastModified: [UInt8]? { headValue("last-modified") }
}

extension ClientConnection {
    func entryContentType(_ e: CacheEntry) -> String { e.contentType.map { String(decoding: $0, as: UTF8.self) } ?? "" }
    func hasContentEncoding(_ e: CacheEntry) -> Bool {
        guard let v = e.contentEncoding else { return false }
        let t = String(decoding: v, as: UTF8.self).trimmed.lowercased()
        return !t.isEmpty && t != "identity"
    }
}
