import Glibc
import LBConfig
import LBHTTP
import LBIO

/// The FastCGI side of one upstream connection for one request: the record decoder and the
/// CGI→HTTP translator. Its output is an HTTP/1.1 response in the connection's `inBuf`, so the
/// proxy's HTTP path (relay, buffering, intercept_errors, retries, cache, gzip, logs) reads a
/// FastCGI answer exactly as it reads an HTTP one.
final class FastCGIUpstream {
    var decoder = FastCGIRecordDecoder()
    var translator: CGIResponseTranslator
    /// Translated bytes waiting to be appended to the connection's buffer.
    var out: [UInt8] = []
    /// A STDERR record's content gathered until the record ends (bounded).
    var stderr: [UInt8] = []
    /// Raw bytes read from the socket.
    var raw = [UInt8](repeating: 0, count: 16 * 1024)
    static let stderrLimit = 4096
    /// `fastcgi_catch_stderr` matched before the response head: the head is invalid.
    var caughtStderr = false

    init(maxHead: Int) { translator = CGIResponseTranslator(maxHead: maxHead) }
}

extension ClientConnection {
    /// `$fastcgi_script_name` and `$fastcgi_path_info` (nginx's ngx_http_fastcgi_split): the
    /// two captures of `fastcgi_split_path_info` over the URI, or the URI and nothing; a script
    /// name ending in `/` gets `fastcgi_index` appended.
    func fastcgiSplit() -> (scriptName: [UInt8], pathInfo: [UInt8]) {
        let f = settings.fastcgi
        var script = ex.uri
        var info: [UInt8] = []
        if let split = f.splitPathInfo, let caps = ex.uri.withUnsafeBytes({ split.regex.captures($0) }), caps.count >= 3 {
            script = caps[1].map { Array(ex.uri[$0]) } ?? []
            info = caps[2].map { Array(ex.uri[$0]) } ?? []
        }
        if script.last == UInt8(ascii: "/"), let index = f.index { script += Array(index.utf8) }
        return (script, info)
    }

    /// The request for a FastCGI or uwsgi upstream in `c.outBuf`: the params (fastcgi_param /
    /// uwsgi_param, then the client's headers as HTTP_*), framed for the protocol. The body
    /// follows from `sendRequest` (always buffered first for these upstreams).
    func buildAppServerRequest(_ c: UpstreamConnection) {
        let kind = ex.target!.kind
        let module = kind == .fastcgi ? settings.fastcgi : settings.uwsgi
        var pairs: [UInt8] = []
        pairs.reserveCapacity(1024)
        var names: Set<[UInt8]> = []
        let bodyLength = ex.body?.length
        var tooLong = false
        func add(_ name: [UInt8], _ value: [UInt8]) {
            if kind == .fastcgi {
                FastCGI.appendPair(name: name, value: value, into: &pairs)
            } else if !Uwsgi.appendVar(name: name, value: value, into: &pairs) {
                tooLong = true
            }
        }
        for p in module.params ?? [] {
            names.insert(p.name)
            var v: [UInt8]
            if p.isContentLength, let n = bodyLength { v = Array("\(n)".utf8) } else { v = evaluate(p.value) }
            if p.ifNotEmpty && v.isEmpty { continue }
            add(p.name, v)
        }
        if settings.resolved.proxyPassRequestHeaders {
            let hb = head.readableBytes
            // Each header once as HTTP_NAME (same-named headers joined, as nginx 1.23+), unless a
            // param of that name was set (`fastcgi_param HTTP_PROXY ""` hides the client's Proxy).
            var order: [[UInt8]] = []
            var values: [[UInt8]: [UInt8]] = [:]
            for f in req.headers {
                var name: [UInt8] = Array("HTTP_".utf8)
                var valid = true
                for i in f.name {
                    let b = hb[i]
                    switch b {
                    case UInt8(ascii: "a")...UInt8(ascii: "z"): name.append(b - 32)
                    case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): name.append(b)
                    case UInt8(ascii: "-"): name.append(UInt8(ascii: "_"))
                    default: valid = false
                    }
                }
                if !valid || names.contains(name) { continue }
                let value = Array(hb[f.value])
                if let old = values[name] {
                    values[name] = old + Array((name == Array("HTTP_COOKIE".utf8) ? "; " : ", ").utf8) + value
                } else {
                    values[name] = value
                    order.append(name)
                }
            }
            for n in order { add(n, values[n]!) }
        }
        var o: [UInt8] = []
        let keepConn = module.keepConn == true
        switch kind {
        case .fastcgi:
            FastCGI.appendBeginRequest(keepConn: keepConn, into: &o)
            FastCGI.appendStream(.params, pairs, into: &o)
            FastCGI.appendHeader(.params, contentLength: 0, into: &o)
            // No body: the empty STDIN record ends the request now; else after the body.
            if bodyLength ?? 0 == 0 || !settings.resolved.proxyPassRequestBody {
                FastCGI.appendHeader(.stdin, contentLength: 0, into: &o)
                ex.attempt.bodyOffset = bodyLength ?? 0
            }
            ex.sentConnectionClose = !keepConn
            c.fastcgi = FastCGIUpstream(maxHead: settings.resolved.proxyBufferSize)
        case .uwsgi:
            guard !tooLong, let h = Uwsgi.header(varsSize: pairs.count, modifier1: UInt8(clamping: module.modifier1 ?? 0),
                                                 modifier2: UInt8(clamping: module.modifier2 ?? 0)) else {
                log(.alert, "uwsgi request is too big: \(pairs.count)")
                ex.variableFailed = true
                return
            }
            o = h + pairs
            // The response is read until the application closes the connection.
            ex.sentConnectionClose = true
            c.fastcgi = nil
        case .http:
            break
        }
        c.outBuf.clear()
        c.outBuf.append(o)
    }

    /// Moves the next piece of the buffered body into `c.outBuf` as one FCGI_STDIN record, and
    /// the empty record that ends the stream after the last. False when the body could not be read.
    func fillFastCGIStdin(_ c: UpstreamConnection, _ body: BufferedBody) -> Bool {
        c.outBuf.clear()
        c.outBuf.reserve(ClientConnection.bodyChunk + 2 * FastCGI.headerSize)
        let room = min(c.outBuf.writableTail - 2 * FastCGI.headerSize, ClientConnection.bodyChunk, FastCGI.maxContent)
        let start = c.outBuf.writePointer
        let n = body.read(at: ex.attempt.bodyOffset, into: start + FastCGI.headerSize, max: room)
        guard n > 0 else { return false }
        FastCGI.writeHeader(.stdin, contentLength: n, at: start)
        c.outBuf.writeIndex += FastCGI.headerSize + n
        ex.attempt.bodyOffset += n
        if ex.attempt.bodyOffset >= body.length {
            FastCGI.writeHeader(.stdin, contentLength: 0, at: c.outBuf.writePointer)
            c.outBuf.writeIndex += FastCGI.headerSize
        }
        return true
    }

    /// `readUpstream` for a FastCGI connection: reads records and appends their translation to
    /// `c.inBuf`. STDERR goes to the error log as nginx words it. False on EOF or a protocol
    /// error (logged), as a closed connection.
    func readFastCGI(_ c: UpstreamConnection, _ f: FastCGIUpstream, limit: Int) -> Bool {
        while c.readable && c.inBuf.readable < limit {
            let got: Int
            do {
                let r = try f.raw.withUnsafeMutableBytes { try c.transport.read(c.fd, $0.baseAddress!, $0.count) }
                switch r {
                case .done(0):
                    c.readable = false
                    c.peerClosed = true
                    return false
                case .done(let n):
                    got = n
                    if n < f.raw.count { c.readable = false }
                case .wouldBlock:
                    c.readable = false
                    return true
                }
            } catch {
                c.readable = false
                c.peerClosed = true
                return false
            }
            do {
                try f.raw.withUnsafeBytes { all in
                    let input = UnsafeRawBufferPointer(rebasing: all[0..<got])
                    try f.decoder.consume(input) { event in
                        switch event {
                        case .stdout(let r):
                            try f.translator.stdout(UnsafeRawBufferPointer(rebasing: input[r]), into: &f.out)
                        case .stderr(let r, let last):
                            let room = FastCGIUpstream.stderrLimit - f.stderr.count
                            if room > 0 { f.stderr += input[r].prefix(room) }
                            // nginx checks the patterns (case-sensitive) while the head is read.
                            if !f.translator.headDone, let patterns = settings.fastcgi.catchStderr,
                               patterns.contains(where: { p in !p.isEmpty && f.stderr.firstRange(of: Array(p.utf8)) != nil }) {
                                f.caughtStderr = true
                                logFastCGIStderr(f)
                                throw FastCGIError("upstream sent invalid header")
                            }
                            if last { logFastCGIStderr(f) }
                        case .end:
                            try f.translator.end(into: &f.out)
                        }
                    }
                }
            } catch {
                let message = (error as? FastCGIError)?.message ?? "\(error)"
                // A caught stderr is reported by readResponseHead, as an invalid head.
                if !f.caughtStderr {
                    log(.error, message + (f.translator.headDone ? " while reading upstream" : " while reading response header from upstream"))
                }
                c.readable = false
                c.peerClosed = true
                appendTranslated(c, f)
                return false
            }
            appendTranslated(c, f)
        }
        return true
    }

    private func appendTranslated(_ c: UpstreamConnection, _ f: FastCGIUpstream) {
        guard !f.out.isEmpty else { return }
        if c.inBuf.writableTail < f.out.count { c.inBuf.compact() }
        c.inBuf.append(f.out)
        f.out.removeAll(keepingCapacity: true)
    }

    /// "FastCGI sent in stderr" at error level, the message without its trailing newlines,
    /// spaces and dots (nginx's trim).
    private func logFastCGIStderr(_ f: FastCGIUpstream) {
        var m = f.stderr[...]
        while let l = m.last, l == 10 || l == 13 || l == 32 || l == UInt8(ascii: ".") { m = m.dropLast() }
        f.stderr.removeAll(keepingCapacity: true)
        let phase = f.translator.headDone ? "reading upstream" : "reading response header from upstream"
        log(.error, "FastCGI sent in stderr: \"\(String(decoding: m, as: UTF8.self))\" while \(phase)")
    }
}
