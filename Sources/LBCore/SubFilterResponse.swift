import Glibc
import LBConfig
import LBHTTP
import LBIO

/// One response's sub_filter (ngx_http_sub_filter_module): the matcher and whether its end is out.
final class SubFilterState {
    var matcher: SubFilterMatcher
    var finished = false
    init(_ matcher: SubFilterMatcher) { self.matcher = matcher }
}

/// Whether sub_filter applies to a response of this type: text/html always, the
/// `sub_filter_types` besides, `*` any (nginx's `ngx_http_test_content_type`).
func subFilterTypeQualifies(_ contentType: String?, types: [String]) -> Bool {
    if types.contains("*") { return true }
    guard let ct = contentType else { return false }
    var bare = ct.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
    while bare.first == " " || bare.first == "\t" { bare = bare.dropFirst() }
    while bare.last == " " || bare.last == "\t" { bare = bare.dropLast() }
    let t = bare.lowercased()
    return t == "text/html" || types.contains(t) // `types` lowercased at load
}

extension ClientConnection {
    /// The sub_filter for a response about to start, or nil when none applies (no `sub_filter`
    /// here, an empty body, or a type not listed). Match strings and replacements are evaluated now.
    func subFilterFor(contentType: String?, contentLength: Int?) -> SubFilterState? {
        guard let pairs = settings.subFilters, contentLength != 0,
              subFilterTypeQualifies(contentType, types: settings.resolved.subFilterTypes) else { return nil }
        var patterns: [[UInt8]] = []
        var replacements: [[UInt8]] = []
        for p in pairs {
            let m = evaluate(p.match)
            guard !m.isEmpty else { continue }
            patterns.append(m)
            replacements.append(evaluate(p.replacement))
        }
        guard !patterns.isEmpty else { return nil }
        return SubFilterState(SubFilterMatcher(patterns: patterns, replacements: replacements, once: settings.resolved.subFilterOnce))
    }

    /// `sub_filter_last_modified off` (the default) drops Last-Modified and ETag; `on` keeps
    /// Last-Modified and weakens ETag.
    var subFilterKeepsValidators: Bool { settings.resolved.subFilterLastModified }

    /// Filters the validated upstream bytes into `outBuf` as one chunk (then through gzip when it
    /// also applies), and ends the stream after the last byte. The proxied twin of `gzipRelayable`.
    func subFilterRelayable(_ c: UpstreamConnection, _ s: SubFilterState) {
        var out: [UInt8] = []
        var consumed = false
        if ex.attempt.relayable > 0 && outBuf.readable < ClientConnection.relayBuffer, let base = c.inBuf.base {
            s.matcher.feed(UnsafeRawBufferPointer(start: base + c.inBuf.readIndex, count: ex.attempt.relayable), into: &out)
            c.inBuf.readIndex += ex.attempt.relayable
            ex.attempt.relayable = 0
            consumed = true
        }
        var finishing = false
        if ex.attempt.responseComplete && ex.attempt.relayable == 0 && !s.finished {
            s.matcher.finish(into: &out)
            s.finished = true
            finishing = true
        }
        if let g = ex.gz, consumed || finishing {
            var z: [UInt8] = []
            out.withUnsafeBytes { g.compress($0, finish: finishing, into: &z) }
            // Flushed only after new input (an empty flush would emit a block every turn).
            if !finishing && !c.readable { g.flush(into: &z) }
            if finishing {
                ex.gzFinished = true
                ex.gzipSizes = (g.bytesIn, g.bytesOut)
            }
            out = z
        }
        appendTransformedBody(out, finishing: finishing)
        ex.bodyBytesSent += out.count
    }

    /// A static file under sub_filter: read whole (up to gzip's in-memory bound), filtered, sent
    /// chunked with no Content-Length, with the head the stage decided (`d`). Returns false when
    /// the file cannot be read (it then goes as it is). The caller closes the file.
    func sendStaticSubFiltered(fd: Int32, size: Int, _ s: SubFilterState, _ d: HeadDecision, contentType: String, lastModified: [UInt8], etag: String?) -> Bool {
        guard let body = ClientConnection.readFile(fd, offset: 0, length: size) else { return false }
        var out: [UInt8] = []
        body.withUnsafeBytes { s.matcher.feed($0, into: &out) }
        s.matcher.finish(into: &out)
        var d = d
        let chunked = req.versionMinor >= 1 && !req.isHTTP09 && settings.resolved.chunkedTransferEncoding
        if !chunked {
            closeAfterResponse = true
            d.bodyEndsWithClose()
        }
        writeHeadStart(d)
        outBuf.append("Content-Type: ")
        outBuf.append(string: contentType)
        outBuf.append("\r\n")
        if chunked { outBuf.append("Transfer-Encoding: chunked\r\n") }
        if subFilterKeepsValidators {
            outBuf.append("Last-Modified: ")
            outBuf.append(lastModified)
            outBuf.append("\r\n")
            if let e = etag {
                outBuf.append("ETag: ")
                outBuf.append(string: GzipPolicy.weakened(e))
                outBuf.append("\r\n")
            }
        }
        appendVary(d.vary)
        writeHeadEnd()
        if req.method != .head {
            appendBody(out, chunked: chunked)
            ex.bodyBytesSent = out.count
        }
        ex.responder = .local
        flushLocal()
        return true
    }

    /// A local response body (`return`, error pages) under sub_filter, or nil when none applies.
    func subFilteredLocalBody(_ body: [UInt8], contentType: String) -> [UInt8]? {
        guard let s = subFilterFor(contentType: contentType, contentLength: body.count) else { return nil }
        var out: [UInt8] = []
        body.withUnsafeBytes { s.matcher.feed($0, into: &out) }
        s.matcher.finish(into: &out)
        return out
    }

    /// A whole body, as one chunk and the last chunk, or raw.
    func appendBody(_ body: [UInt8], chunked: Bool) {
        if chunked {
            if !body.isEmpty {
                outBuf.append(string: String(body.count, radix: 16))
                outBuf.append("\r\n")
                outBuf.append(body)
                outBuf.append("\r\n")
            }
            outBuf.append("0\r\n\r\n")
        } else {
            outBuf.append(body)
        }
    }
}
