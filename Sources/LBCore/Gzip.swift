import CZlib
import Glibc
import LBHTTP
import LBIO

/// A streaming gzip compressor over the system zlib (`gzip_comp_level`), producing output into a
/// caller's buffer. One per compressed response; freed with `end()`.
final class GzipStream {
    private var stream = z_stream()
    private var open = false
    private(set) var bytesIn = 0
    private(set) var bytesOut = 0

    /// - Parameter contentLength: the body's length when known: a short body gets a smaller
    ///   window and hash table, as nginx sizes them (less memory, and the same bytes as nginx's).
    init?(level: Int, contentLength: Int? = nil) {
        let (bits, mem) = GzipPolicy.window(contentLength: contentLength)
        guard lb_deflate_init_gzip(&stream, Int32(max(1, min(9, level))), Int32(bits), Int32(mem)) == Z_OK else { return nil }
        open = true
    }

    deinit { end() }

    func end() {
        if open { deflateEnd(&stream); open = false }
    }

    /// Compresses `input` (finishing the stream when `finish`), appending output to `out`.
    func compress(_ input: UnsafeRawBufferPointer, finish: Bool, into out: inout [UInt8]) {
        guard open else { return }
        stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.assumingMemoryBound(to: Bytef.self))
        stream.avail_in = uInt(input.count)
        bytesIn += input.count
        drain(finish ? Z_FINISH : Z_NO_FLUSH, into: &out)
        stream.next_in = nil
    }

    /// Flushes what is buffered so far (Z_SYNC_FLUSH), so a streamed response is not held back.
    func flush(into out: inout [UInt8]) {
        guard open else { return }
        stream.avail_in = 0
        drain(Z_SYNC_FLUSH, into: &out)
    }

    /// Runs deflate until it has consumed the input and has no more output for this flush mode.
    private func drain(_ mode: Int32, into out: inout [UInt8]) {
        var chunk = [UInt8](repeating: 0, count: 16384)
        while true {
            let produced: Int = chunk.withUnsafeMutableBytes { c in
                stream.next_out = c.baseAddress!.assumingMemoryBound(to: Bytef.self)
                stream.avail_out = uInt(c.count)
                _ = deflate(&stream, mode)
                return c.count - Int(stream.avail_out)
            }
            out += chunk[0..<produced]
            bytesOut += produced
            // A full output chunk means deflate may have more; otherwise it is done for now.
            if produced < chunk.count && stream.avail_in == 0 { break }
        }
    }

    /// One-shot compression of a whole body.
    static func compress(_ bytes: [UInt8], level: Int) -> [UInt8]? {
        guard let g = GzipStream(level: level, contentLength: bytes.count) else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count / 3 + 64)
        bytes.withUnsafeBytes { g.compress($0, finish: true, into: &out) }
        g.end()
        return out
    }
}

extension GzipStream {
    /// Decompresses a whole gzip member (tests and diagnostics); nil when invalid.
    static func decompress(_ bytes: [UInt8]) -> [UInt8]? {
        var s = z_stream()
        guard lb_inflate_init_gzip(&s) == Z_OK else { return nil }
        defer { inflateEnd(&s) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        var status: Int32 = Z_OK
        bytes.withUnsafeBytes { input in
            s.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.assumingMemoryBound(to: Bytef.self))
            s.avail_in = uInt(input.count)
            while status == Z_OK {
                let produced: Int = chunk.withUnsafeMutableBytes { c in
                    s.next_out = c.baseAddress!.assumingMemoryBound(to: Bytef.self)
                    s.avail_out = uInt(c.count)
                    status = inflate(&s, Z_NO_FLUSH)
                    return c.count - Int(s.avail_out)
                }
                out += chunk[0..<produced]
                if produced == 0 && status == Z_OK && s.avail_in == 0 { break }
            }
        }
        return status == Z_STREAM_END ? out : nil
    }
}

/// What `gzip_proxied` reads of a response: a proxied response's headers; a file or cache
/// entry of lb's own counts as having both validators and no expiry headers.
struct GzipResponseFacts {
    var expires: String? = nil
    var cacheControl: String? = nil
    var lastModified = true
    var etag = true
}

extension ClientConnection {
    /// gzip's view of a proxied response whose head is `b` (parsed in `response`): whether it
    /// qualifies, and what `gzip_proxied` reads of it.
    func proxiedGzipFacts(_ b: UnsafeRawBufferPointer) -> (qualifies: Bool, facts: GzipResponseFacts) {
        var ce: String?, ct: String?, f = GzipResponseFacts(lastModified: false, etag: false)
        for h in ex.attempt.response.headers {
            let n = h.name
            func v() -> String { String(decoding: b[h.value], as: UTF8.self) }
            switch n.count {
            case 16 where ASCII.equalsLower(b, n, "content-encoding"): ce = v()
            case 12 where ASCII.equalsLower(b, n, "content-type"): ct = v()
            case 13 where ASCII.equalsLower(b, n, "cache-control"): f.cacheControl = v()
            case 7 where ASCII.equalsLower(b, n, "expires"): f.expires = v()
            case 13 where ASCII.equalsLower(b, n, "last-modified"): f.lastModified = true
            case 4 where ASCII.equalsLower(b, n, "etag"): f.etag = true
            default: break
            }
        }
        let q = gzipQualifies(status: ex.attempt.response.status, contentEncoding: ce, contentType: ct, contentLength: ex.attempt.response.contentLength)
        return (q, f)
    }

    /// The client's side of gzip for a response that qualifies: Accept-Encoding, the version
    /// `gzip_http_version` allows, `gzip_disable`, and `gzip_proxied` for a request through a proxy.
    func clientTakesGzip(_ f: GzipResponseFacts) -> Bool {
        requestAcceptsGzip() && proxiedAllowsGzip(expires: f.expires, cacheControl: f.cacheControl, lastModified: f.lastModified, etag: f.etag)
    }

    /// The request's side of gzip (Accept-Encoding, the HTTP version, gzip_disable). A HEAD and
    /// a range request are answered as nginx does: gzip's headers on the HEAD, the whole body
    /// compressed instead of the range.
    func requestAcceptsGzip() -> Bool {
        if let off = settings.gzipDisable, let ua = headerValue("user-agent") {
            // gzip_disable: the msie6 mask, or any regex matching User-Agent.
            if off.msie6 && UserAgentClass(ua).msie6 { return false }
            for re in off.regexes where ua.withUnsafeBytes({ re.matches($0) }) { return false }
        }
        return GzipPolicy.requestAccepts(acceptEncoding: headerValue("accept-encoding").map { String(decoding: $0, as: UTF8.self) },
                                  http11: req.versionMinor >= 1 || (settings.resolved.gzipHTTP10 && !req.isHTTP09),
                                  head: false, range: false)
    }

    /// `gzip_proxied` for this request and a response with these headers.
    func proxiedAllowsGzip(expires: String?, cacheControl: String?, lastModified: Bool, etag: Bool) -> Bool {
        GzipPolicy.proxiedAllows(requestHasVia: headerValue("via") != nil, requestHasAuthorization: headerValue("authorization") != nil,
                                 rules: settings.resolved.gzipProxied, expires: expires, cacheControl: cacheControl,
                                 lastModified: lastModified, etag: etag, now: wallClock().seconds)
    }

    /// Compresses the validated upstream bytes into `outBuf` as one chunk (bounded: only while the
    /// client has taken what was there), and closes the stream after the last byte.
    func gzipRelayable(_ c: UpstreamConnection, _ g: GzipStream) {
        var out: [UInt8] = []
        if ex.attempt.relayable > 0 && outBuf.readable < ClientConnection.relayBuffer, let base = c.inBuf.base {
            g.compress(UnsafeRawBufferPointer(start: base + c.inBuf.readIndex, count: ex.attempt.relayable), finish: false, into: &out)
            c.inBuf.readIndex += ex.attempt.relayable
            ex.attempt.relayable = 0
            // Nothing more to read right now: flush, so a slow stream is not held back.
            if !c.readable && !ex.attempt.responseComplete { g.flush(into: &out) }
        }
        var finishing = false
        if ex.attempt.responseComplete && ex.attempt.relayable == 0 && !ex.gzFinished {
            g.compress(UnsafeRawBufferPointer(start: nil, count: 0), finish: true, into: &out)
            ex.gzFinished = true
            ex.gzipSizes = (g.bytesIn, g.bytesOut)
            finishing = true
        }
        appendTransformedBody(out, finishing: finishing)
    }

    /// Queues body bytes a filter made (gzip, sub_filter) for the client: one chunk, or raw
    /// bytes with `chunked_transfer_encoding off` (the end is then the connection's close); the
    /// last chunk when `finishing`.
    func appendTransformedBody(_ out: [UInt8], finishing: Bool) {
        // As the relay plan decided: no chunks for an HTTP/1.0 client (the close ends the body).
        let chunked = settings.resolved.chunkedTransferEncoding && req.versionMinor >= 1 && !req.isHTTP09
        if !out.isEmpty {
            if outBuf.base == nil { worker.prepare(&outBuf) }
            if chunked {
                outBuf.append(string: String(out.count, radix: 16))
                outBuf.append("\r\n")
            }
            outBuf.append(out)
            if chunked { outBuf.append("\r\n") }
        }
        if finishing && chunked { outBuf.append("0\r\n\r\n") }
    }
}

extension ClientConnection {
    /// A body lb has whole (a static file, a cache entry), compressed when the stage decided
    /// gzip; nil when it cannot be read or compressed (it then goes as it is). A HEAD says gzip
    /// without a length (as nginx): nothing is read or compressed, the result is empty.
    func compressWholeBody(read: () -> [UInt8]?) -> [UInt8]? {
        if req.method == .head { return [] }
        guard let body = read(), let z = GzipStream.compress(body, level: settings.resolved.gzipCompLevel) else { return nil }
        ex.gzipSizes = (body.count, z.count)
        return z
    }

    /// 416 for a range past the end of a `total`-byte body (a file, a cache entry), as an error
    /// the location's error_page may take: `Content-Range: bytes */TOTAL`, and the Vary gzip's
    /// filter set before the range filter refused (`vary`).
    func respondRangeNotSatisfiable(total: Int, vary: Bool) {
        var extra = Buffer()
        extra.append(string: "Content-Range: bytes */\(total)\r\n")
        if vary { extra.append("Vary: Accept-Encoding\r\n") }
        respond(416, contentType: "text/html", body: Status.page(416, serverTokens: settings.resolved.serverTokens), extraHeaders: extra.readableBytes)
        extra.release()
    }

    /// Reads `length` bytes at `offset` of a file (bounded by `GzipPolicy.maxInMemory`).
    static func readFile(_ fd: Int32, offset: Int, length: Int) -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: length)
        var done = 0
        let ok = out.withUnsafeMutableBytes { p -> Bool in
            while done < length {
                let n = pread(fd, p.baseAddress! + done, length - done, off_t(offset + done))
                if n <= 0 { if n < 0 && errno == EINTR { continue }; return false }
                done += n
            }
            return true
        }
        return ok ? out : nil
    }
}
