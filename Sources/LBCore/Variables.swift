import Glibc
import LBConfig
import LBHTTP
import LBIO

/// Variable values for templates (`proxy_set_header`, `add_header`, `return`, logs), read straight
/// from the request's bytes.
extension ClientConnection {
    func evaluate(_ t: Template) -> [UInt8] {
        // A text without variables (`return 200 "ok"`, most add_header values) is the config's
        // own array, shared: no copy.
        if t.parts.count == 1, case .literal(let b) = t.parts[0] { return b }
        var out: [UInt8] = []
        for p in t.parts {
            switch p {
            case .literal(let b): out += b
            case .variable(let v): append(v, to: &out)
            }
        }
        return out
    }

    /// `dashOrUnderscore`: a `-` of `lname` also matches `_` in the header's name (nginx's `$http_*`
    /// for headers it does not know, seen with `underscores_in_headers on`).
    func headerValue(_ lname: String, dashOrUnderscore: Bool = false) -> [UInt8]? {
        let hb = head.readableBytes
        let name = Array(lname.utf8)
        var result: [UInt8]? = nil
        for f in req.headers where f.name.count == name.count {
            var same = true
            for k in 0..<name.count where ASCII.lower(hb[f.name.lowerBound + k]) != name[k] {
                if dashOrUnderscore && name[k] == UInt8(ascii: "-") && hb[f.name.lowerBound + k] == UInt8(ascii: "_") { continue }
                same = false
                break
            }
            if same {
                // Repeated headers are joined as nginx does for most (cookies with "; ").
                if result == nil { result = Array(hb[f.value]) } else { result! += Array((lname == "cookie" ? "; " : ", ").utf8) + hb[f.value] }
            }
        }
        return result
    }

    func append(_ v: Variable, to out: inout [UInt8]) {
        let hb = head.readableBytes
        switch v {
        case .host:
            if let r = req.absoluteHost ?? req.host {
                var e = r.upperBound
                if hb[r.lowerBound] != UInt8(ascii: "[") {
                    var k = r.lowerBound
                    while k < r.upperBound && hb[k] != UInt8(ascii: ":") { k += 1 }
                    e = k
                }
                out += hb[r.lowerBound..<e].map { ASCII.lower($0) }
            } else if let n = ex.server.names.first, !n.isEmpty, !n.hasPrefix("~"), !n.contains("*") {
                out += Array(n.utf8)
            }
            // Else empty, as nginx's $host without a Host (HTTP/1.0) on a server with no name.
        case .remoteAddr: out += Array(clientAddress.ip.utf8)
        case .binaryRemoteAddr: clientAddress.appendBinary(to: &out)
        case .remotePort: let p = clientAddress.port; if p > 0 { out += Array("\(p)".utf8) }
        case .realipRemoteAddr: out += Array(peer.ip.utf8)
        case .realipRemotePort: out += Array("\(peer.port)".utf8)
        case .remoteUser: appendRemoteUser(to: &out)
        case .scheme: out += transport.tls == nil ? Array("http".utf8) : Array("https".utf8)
        case .https: if transport.tls != nil { out += Array("on".utf8) }
        case .requestURI: if head.readable > 0 { out += hb[req.targetRange] }
        case .uri, .documentURI: out += ex.uri
        case .args, .queryString:
            if let a = ex.rewrite?.args { out += a } else if let q = req.queryRange { out += hb[q] }
        case .isArgs:
            if let a = ex.rewrite?.args { if !a.isEmpty { out.append(UInt8(ascii: "?")) } } else if req.queryRange != nil { out.append(UInt8(ascii: "?")) }
        case .request: out += requestLine()
        case .requestMethod: if head.readable > 0 { out += hb[req.methodRange] }
        case .serverName: out += Array((ex.server.names.first ?? "").utf8)
        case .serverPort: if let p = table.listeners[listener].address.port { out += Array("\(p)".utf8) } // none on unix:
        case .serverAddr: out += Array(Socket.localAddress(fd).ip.utf8)
        case .serverProtocol:
            if transport.isHTTP2 { out += Array("HTTP/2.0".utf8) } else { out += Array("HTTP/\(req.versionMajor).\(req.versionMinor)".utf8) }
        case .http2: if transport.isHTTP2 { out += Array((transport.tls == nil ? "h2c" : "h2").utf8) }
        case .hostname: out += Array(Runtime.hostname.utf8)
        case .connectionsActive: out += Array(String(stubStatusCounters().active).utf8)
        case .connectionsReading: out += Array(String(stubStatusCounters().reading).utf8)
        case .connectionsWriting: out += Array(String(stubStatusCounters().writing).utf8)
        case .connectionsWaiting: out += Array(String(stubStatusCounters().waiting).utf8)
        case .status: out += Array("\(ex.status)".utf8)
        case .timeLocal: worker.dates.update(wallClock().seconds); out += worker.dates.logTime
        case .timeISO8601: worker.dates.update(wallClock().seconds); out += worker.dates.iso8601
        case .msec:
            let (s, ms) = wallClock()
            out += Array("\(s).\(ms < 10 ? "00" : ms < 100 ? "0" : "")\(ms)".utf8)
        case .requestTime: out += Array(seconds(monotonicMicros() - ex.startMicros).utf8)
        case .requestLength: out += Array("\(req.length + ex.bodyReceived)".utf8)
        case .requestID:
            var g = SystemRandomNumberGenerator()
            for _ in 0..<2 {
                let h = String(g.next(), radix: 16)
                out += Array((String(repeating: "0", count: 16 - h.count) + h).utf8)
            }
        case .pid: out += Array("\(getpid())".utf8)
        case .connection: out += Array("\(number)".utf8)
        case .connectionRequests: out += Array("\(requestsOnConnection)".utf8)
        case .bodyBytesSent: out += Array("\(ex.bodyBytesSent)".utf8)
        case .bytesSent: out += Array("\(ex.bodyBytesSent + ex.responseHeadBytes)".utf8)
        case .contentLength: if let r = req.contentLength { out += Array("\(r)".utf8) }
        case .contentType: if let v = headerValue("content-type") { out += v }
        // As nginx's: the root or alias (StaticFiles.swift), resolved by realpath(3) for
        // $realpath_root, and the path the static handler would open for $request_filename.
        case .documentRoot: out += documentRoot()
        case .realpathRoot: appendRealpathRoot(to: &out)
        case .requestFilename: if let p = mapURIToPath(ex.uri) { out += p }
        case .pipe: out.append(UInt8(ascii: "."))
        case .proxyAddXForwardedFor:
            if let x = headerValue("x-forwarded-for") { out += x + Array(", ".utf8) }
            out += Array(clientAddress.ip.utf8)
        case .proxyHost: if let t = ex.target { out += Array(t.hostHeader.utf8) }
        case .proxyPort: if let t = ex.target { out += Array("\(t.port)".utf8) }
        case .fastcgiScriptName: out += fastcgiSplit().scriptName
        case .fastcgiPathInfo: out += fastcgiSplit().pathInfo
        case .upstreamAddr: joinUpstream(&out) { $0.addr }
        case .upstreamStatus: joinUpstream(&out) { "\($0.status)" }
        case .upstreamResponseTime: joinUpstream(&out) { self.seconds($0.time) }
        case .upstreamConnectTime: joinUpstream(&out) { $0.connect < 0 ? "-" : self.seconds($0.connect) }
        case .upstreamHeaderTime: joinUpstream(&out) { $0.header < 0 ? "-" : self.seconds($0.header) }
        case .upstreamResponseLength, .upstreamBytesReceived: joinUpstream(&out) { "\($0.length)" }
        case .upstreamBytesSent: joinUpstream(&out) { "\($0.sent)" }
        case .upstreamCacheStatus: out += ex.cacheStatus
        case .nginxVersion: out += Array(LBVersion.number.utf8)
        case .gzipRatio: if let (i, o) = ex.gzipSizes, let r = GzipPolicy.ratio(input: i, output: o) { out += Array(r.utf8) }
        case .limitReqStatus, .limitConnStatus: appendLimitStatus(v, to: &out)
        case .requestCompletion: if ex.status > 0 && ex.status != 499 { out += Array("OK".utf8) }
        case .requestBody: if let b = ex.body, let m = b.inMemory { out += m }
        case .requestBodyFile: if let p = ex.body?.path { out += Array(p.utf8) }
        case .proxyProtocolAddr: if let pp = proxyProtocol { out += Array(pp.sourceAddress.utf8) }
        case .proxyProtocolPort: if let pp = proxyProtocol { out += Array("\(pp.sourcePort)".utf8) }
        case .proxyProtocolServerAddr: if let pp = proxyProtocol { out += Array(pp.destinationAddress.utf8) }
        case .proxyProtocolServerPort: if let pp = proxyProtocol { out += Array("\(pp.destinationPort)".utf8) }
        case .sslProtocol, .sslCipher, .sslServerName, .sslSessionReused, .sslSessionID, .sslAlpnProtocol,
             .sslClientVerify, .sslClientSDN, .sslClientIDN, .sslClientSerial, .sslClientFingerprint,
             .sslClientEscapedCert, .sslClientCert:
            appendTLSVariable(v, to: &out)
        case .httpHeader(let name): if let v = headerValue(name, dashOrUnderscore: true) { out += v }
        case .sentHeader(let name): if let v = ClientConnection.header(name, in: ex.sentHead) { out += v }
        case .upstreamHeader(let name): if let v = ClientConnection.header(name, in: ex.upstreamHead) { out += v }
        case .upstreamCookie(let name): if let v = ClientConnection.setCookie(name, in: ex.upstreamHead) { out += v }
        case .arg(let name):
            if let a = ex.rewrite?.args { out += argument(name, in: a) } else if let q = req.queryRange { out += argument(name, in: Array(hb[q])) }
        case .cookie(let name):
            if let c = headerValue("cookie") { out += cookie(name, in: c) }
        case .capture(let i):
            if let st = ex.rewrite { out += st.capture(i); break }
            if case .regex = ex.location.match, let re = ex.location.regex,
               let caps = ex.uri.withUnsafeBytes({ re.captures($0) }), i < caps.count, let r = caps[i] {
                out += ex.uri[r]
            }
        case .named(let name):
            if let v = ex.rewrite?.vars[name] { out += v; break }
            guard let m = table.maps.first(where: { $0.variable == name }) else {
                if appendAuthRequestVariable(name, to: &out) { break }
                if table.setVariables.contains(name), settings.resolved.uninitializedVariableWarn {
                    log(.warn, "using uninitialized \"\(name)\" variable")
                }
                break
            }
            // A map whose value refers back to itself (directly or through other maps): nginx
            // logs the cycle and fails the request with 500.
            if ex.mapsInProgress.contains(name) {
                if !ex.variableFailed { log(.error, "cycle while evaluating variable \"\(name)\"") }
                ex.variableFailed = true
                break
            }
            // Evaluated once per request (nginx caches a variable's value in the request) unless
            // the map is `volatile`: a second use neither re-evaluates nor re-sets captures.
            if !m.volatile, let cached = ex.variableCache[name] { out += cached; break }
            ex.mapsInProgress.append(name)
            let value = evaluateMap(m)
            ex.mapsInProgress.removeLast()
            if !m.volatile && !ex.variableFailed { ex.variableCache[name] = value }
            out += value
        }
    }

    /// `$realpath_root`: the document root with its symbolic links resolved (realpath(3)). A root
    /// that cannot be resolved is logged at crit and the value is empty, as nginx's. (nginx hands
    /// realpath the root as written, so `root /;`, whose document root is empty, resolves `/`.)
    func appendRealpathRoot(to out: inout [UInt8]) {
        var root = documentRoot()
        if root.isEmpty { root = [UInt8(ascii: "/")] }
        let resolved: UnsafeMutablePointer<CChar>? = (root + [0]).withUnsafeBufferPointer { p in
            p.withMemoryRebound(to: CChar.self) { realpath($0.baseAddress!, nil) }
        }
        guard let resolved else {
            let e = errno
            log(.crit, "realpath() \"\(String(decoding: root, as: UTF8.self))\" failed (\(e): \(String(cString: strerror(e))))")
            return
        }
        out += UnsafeRawBufferPointer(start: resolved, count: strlen(resolved))
        free(resolved)
    }

    /// The value of cookie `name` (case-sensitive) set by a raw response head's Set-Cookie fields,
    /// as nginx's `$upstream_cookie_NAME`: the first field whose `NAME=VALUE` pair names it.
    static func setCookie(_ name: String, in head: [UInt8]) -> [UInt8]? {
        let key = Array("set-cookie".utf8), want = Array(name.utf8)
        for line in head.split(separator: 0x0A, omittingEmptySubsequences: true).dropFirst() {
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon - line.startIndex == key.count,
                  line[line.startIndex..<colon].map(ASCII.lower).elementsEqual(key) else { continue }
            var v = line[(colon + 1)...]
            while v.first == 0x20 || v.first == 0x09 { v = v.dropFirst() }
            let pair = v.prefix { $0 != UInt8(ascii: ";") && $0 != 0x0D }
            guard let eq = pair.firstIndex(of: UInt8(ascii: "=")) else { continue }
            var n = pair[pair.startIndex..<eq]
            while n.last == 0x20 || n.last == 0x09 { n = n.dropLast() }
            if n.elementsEqual(want) {
                var value = pair[(eq + 1)...]
                while value.first == 0x20 { value = value.dropFirst() }
                while value.last == 0x20 || value.last == 0x09 { value = value.dropLast() }
                return Array(value)
            }
        }
        return nil
    }

    /// A header's value in a raw response head (status line first), or nil.
    static func header(_ lname: String, in head: [UInt8]) -> [UInt8]? {
        let name = Array(lname.utf8)
        var lines = head.split(separator: 0x0A, omittingEmptySubsequences: true).dropFirst()
        while let line = lines.popFirst() {
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon - line.startIndex == name.count else { continue }
            var same = true
            for (k, c) in line[line.startIndex..<colon].enumerated() where ASCII.lower(c) != name[k] { same = false; break }
            guard same else { continue }
            var v = line[(colon + 1)...]
            while v.first == 0x20 || v.first == 0x09 { v = v.dropFirst() }
            while v.last == 0x0D || v.last == 0x20 { v = v.dropLast() }
            return Array(v)
        }
        return nil
    }

    func joinUpstream(_ out: inout [UInt8], _ f: (UpstreamAttempt) -> String) {
        var list = ex.upstreamLog
        if ex.upstreamRuntime != nil && ex.attempt.peerIndex >= 0 && !ex.attempt.recorded {
            list.append(currentUpstreamAttempt(status: ex.attempt.response.status))
        }
        if list.isEmpty {
            out.append(UInt8(ascii: "-"))
            return
        }
        out += Array(list.map(f).joined(separator: ", ").utf8)
    }

    func seconds(_ micros: Int64) -> String {
        let ms = max(0, micros / 1000)
        let frac = ms % 1000
        return "\(ms / 1000).\(frac < 10 ? "00" : frac < 100 ? "0" : "")\(frac)"
    }

    func argument(_ name: String, in query: [UInt8]) -> [UInt8] {
        for pair in query.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
            let kv = pair.split(separator: UInt8(ascii: "="), maxSplits: 1, omittingEmptySubsequences: false)
            if kv.count >= 1, String(decoding: kv[0], as: UTF8.self).lowercased() == name.lowercased() {
                return kv.count == 2 ? Array(kv[1]) : []
            }
        }
        return []
    }

    func cookie(_ name: String, in header: [UInt8]) -> [UInt8] {
        for part in header.split(separator: UInt8(ascii: ";")) {
            var p = part[...]
            while p.first == 0x20 { p = p.dropFirst() }
            let kv = p.split(separator: UInt8(ascii: "="), maxSplits: 1, omittingEmptySubsequences: false)
            if kv.count == 2, String(decoding: kv[0], as: UTF8.self) == name { return Array(kv[1]) }
        }
        return []
    }

    func evaluateMap(_ m: MapBlock) -> [UInt8] {
        if let geo = m.geo { return evaluateGeo(geo, source: m.source) }
        var src = evaluate(m.source)
        if let split = m.splitClients { return split.value(for: src) }
        // A `hostnames` map looks the name up without one trailing dot.
        if m.hostnames && src.last == UInt8(ascii: ".") { src.removeLast() }
        // Strings match without (ASCII) case, as nginx's map hash (keys are stored lowercased).
        let low = String(decoding: src.map(ASCII.lower), as: UTF8.self)
        if let v = m.exact[low] { return evaluate(v) }
        if let w = m.wildcards, let v = w.find(low[...]) { return evaluate(v) }
        for (re, v) in m.regexes where src.withUnsafeBytes({ re.matches($0) }) {
            // nginx's ngx_http_regex_exec: the match's captures ($1, named ones) become the request's.
            if let caps = src.withUnsafeBytes({ re.captures($0) }) { rewriteState.setCaptures(src, caps, names: re.names) }
            return evaluate(v)
        }
        return evaluate(m.defaultValue)
    }

    // MARK: access log

    /// Writes the access log line(s) for the finished request.
    func finishLog() {
        if isMirror { return } // as nginx's subrequests (log_subrequest off)
        generation.serverStats[ex.server.index].count(ex.status)
        if settings.accessLogOff == true { return }
        let logs = settings.accessLogs ?? worker.runtime.defaultAccessLogs
        for l in logs {
            if let cond = l.condition {
                let v = evaluate(cond)
                if v.isEmpty || v == [UInt8(ascii: "0")] { continue }
            }
            let fmt = l.logFormat
            let f = worker.accessLog(l.path)
            if let size = l.bufferSize { f.bufferLimit = size }
            if let ms = l.flushMs { f.flushEveryMs = Int64(ms) }
            for p in fmt.template.parts {
                switch p {
                case .literal(let b): f.buf.append(b)
                case .variable(let v):
                    var val: [UInt8] = []
                    append(v, to: &val)
                    if val.isEmpty {
                        if fmt.escape != .json { f.buf.append(byte: UInt8(ascii: "-")) }
                    } else {
                        appendEscaped(val, fmt.escape, &f.buf)
                    }
                }
            }
            f.buf.append(byte: 0x0A)
            if f.buf.readable >= f.bufferLimit { f.flush() }
        }
    }

    /// nginx's log escaping: `"`, `\` and bytes outside printable ASCII as `\xHH` (default), or JSON.
    func appendEscaped(_ v: [UInt8], _ e: LogFormat.Escape, _ out: inout Buffer) {
        let hex = Array("0123456789ABCDEF".utf8)
        for c in v {
            switch e {
            case .none:
                out.append(byte: c)
            case .default:
                if c == UInt8(ascii: "\"") || c == UInt8(ascii: "\\") || c < 0x20 || c >= 0x7F {
                    out.append("\\x")
                    out.append(byte: hex[Int(c >> 4)])
                    out.append(byte: hex[Int(c & 15)])
                } else {
                    out.append(byte: c)
                }
            case .json:
                if c == UInt8(ascii: "\"") || c == UInt8(ascii: "\\") {
                    out.append(byte: UInt8(ascii: "\\"))
                    out.append(byte: c)
                } else if c < 0x20 {
                    out.append("\\u00")
                    out.append(byte: hex[Int(c >> 4)])
                    out.append(byte: hex[Int(c & 15)])
                } else {
                    out.append(byte: c)
                }
            }
        }
    }
}
