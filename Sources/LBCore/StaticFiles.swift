import Glibc
import LBConfig
import LBHTTP
import LBIO

/// The static file handler: root/alias, index, try_files, validators, sendfile.
extension ClientConnection {
    func serveStatic() {
        guard req.method == .get || req.method == .head else {
            respondError(405)
            return
        }
        if let tf = location.tryFiles ?? (location === server.fallback ? server.serverTryFiles : nil) {
            runTryFiles(tf)
            return
        }
        serveURI(uri, allowIndex: true)
    }

    /// The file system path for a URI in the current location (root, or alias with the prefix replaced).
    func filePath(for u: [UInt8]) -> [UInt8]? {
        switch settings.docRoot {
        case .alias(let t)?:
            let alias = evaluate(t)
            if case .regex = location.match { return alias }
            var prefixLen = 0
            if case .prefix(let p) = location.match { prefixLen = p.utf8.count }
            if case .prefixNoRegex(let p) = location.match { prefixLen = p.utf8.count }
            if case .exact(let p) = location.match { prefixLen = p.utf8.count }
            guard u.count >= prefixLen else { return nil }
            return alias + u[prefixLen...]
        case .root(let t)?:
            return evaluate(t) + u
        case nil:
            return Array((table.main.prefix + "/html").utf8) + u
        }
    }

    func runTryFiles(_ entries: [String]) {
        for e in entries.dropLast() {
            guard let tpl = try? Template(parsing: e) else { continue }
            let candidate = evaluate(tpl)
            guard let path = filePath(for: candidate) else { continue }
            var st = stat()
            let isDir = candidate.last == UInt8(ascii: "/")
            if statPath(path, &st) {
                let dir = (st.st_mode & S_IFMT) == S_IFDIR
                if isDir && dir {
                    uri = candidate
                    serveURI(candidate, allowIndex: true)
                    return
                }
                if !isDir && (st.st_mode & S_IFMT) == S_IFREG {
                    uri = candidate
                    serveURI(candidate, allowIndex: false)
                    return
                }
            }
        }
        let last = entries.last!
        if last.hasPrefix("=") {
            respondError(Int(last.dropFirst()) ?? 404)
        } else if last.hasPrefix("@") {
            guard let named = server.named[String(last.dropFirst())] else { respondError(500); return }
            location = named
            switch named.handler {
            case .proxy(let t): startProxy(t)
            case .return(let r): runReturn(r)
            default: serveURI(uri, allowIndex: true)
            }
        } else {
            // Internal redirect: match locations again with the new URI.
            guard let tpl = try? Template(parsing: last) else { respondError(500); return }
            let target = evaluate(tpl)
            uri = Array(target.split(separator: UInt8(ascii: "?"), maxSplits: 1, omittingEmptySubsequences: false).first ?? [])
            guard let loc = uri.withUnsafeBytes({ server.locations.find($0).location }) else {
                location = server.fallback
                serveURI(uri, allowIndex: true)
                return
            }
            location = loc
            switch loc.handler {
            case .proxy(let t): startProxy(t)
            case .return(let r): runReturn(r)
            case .static: if loc.tryFiles != nil && loc.tryFiles! != entries { runTryFiles(loc.tryFiles!) } else { serveURI(uri, allowIndex: true) }
            default: respondError(404)
            }
        }
    }

    func statPath(_ path: [UInt8], _ st: inout stat) -> Bool {
        (path + [0]).withUnsafeBufferPointer { p in
            p.withMemoryRebound(to: CChar.self) { stat($0.baseAddress!, &st) == 0 }
        }
    }

    func serveURI(_ u: [UInt8], allowIndex: Bool) {
        guard let path = filePath(for: u) else { respondError(404); return }
        var st = stat()
        guard statPath(path, &st) else {
            let e = errno
            if e == EACCES { respondError(403) } else {
                if e == ENOENT || e == ENOTDIR { log(.error, "open() \"\(String(decoding: path, as: UTF8.self))\" failed (2: No such file or directory)") }
                respondError(404)
            }
            return
        }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            if u.last != UInt8(ascii: "/") {
                redirect(301, to: String(decoding: u, as: UTF8.self) + "/" + queryString())
                return
            }
            guard allowIndex else { respondError(404); return }
            for idx in settings.effectiveIndex {
                let name = evaluate(idx)
                var ist = stat()
                if statPath(path + name, &ist), (ist.st_mode & S_IFMT) == S_IFREG {
                    uri = u + name
                    sendFile(path + name, ist)
                    return
                }
            }
            log(.error, "directory index of \"\(String(decoding: path, as: UTF8.self))\" is forbidden")
            respondError(403)
            return
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else { respondError(404); return }
        sendFile(path, st)
    }

    func sendFile(_ path: [UInt8], _ st: stat) {
        let fd = (path + [0]).withUnsafeBufferPointer { p in
            p.withMemoryRebound(to: CChar.self) { open($0.baseAddress!, O_RDONLY | O_CLOEXEC | O_NONBLOCK) }
        }
        guard fd >= 0 else {
            respondError(errno == EACCES ? 403 : 404)
            return
        }
        let size = Int(st.st_size)
        let mtime = Int(st.st_mtim.tv_sec)
        let etag = "\"\(String(mtime, radix: 16))-\(String(size, radix: 16))\""
        // Conditional requests: If-None-Match, then If-Modified-Since (nginx's order).
        var notModified = false
        if let inm = headerValue("if-none-match") {
            let v = String(decoding: inm, as: UTF8.self)
            notModified = v == "*" || v.split(separator: ",").contains { $0.trimmingCharacters() == etag || $0.trimmingCharacters() == "W/" + etag }
        } else if let ims = headerValue("if-modified-since"), let t = DateCache.parse(String(decoding: ims, as: UTF8.self)) {
            notModified = t >= mtime
        }
        if !requestBodyComplete { closeAfterResponse = true }
        outBuf.clear()
        if notModified {
            Glibc.close(fd)
            writeHeadStart(304)
            outBuf.append("Last-Modified: ")
            outBuf.append(string: DateCache.httpDate(mtime))
            outBuf.append("\r\nETag: ")
            outBuf.append(string: etag)
            outBuf.append("\r\n")
            writeHeadEnd(keepAlive: !closeAfterResponse)
            state = .local
            flushLocal()
            return
        }
        let code = overrideStatus ?? 200
        overrideStatus = nil
        writeHeadStart(code)
        outBuf.append("Content-Type: ")
        outBuf.append(string: contentTypeForURI())
        outBuf.append("\r\nContent-Length: ")
        outBuf.append(decimal: size)
        outBuf.append("\r\nLast-Modified: ")
        outBuf.append(string: DateCache.httpDate(mtime))
        outBuf.append("\r\n")
        if settings.effectiveEtag {
            outBuf.append("ETag: ")
            outBuf.append(string: etag)
            outBuf.append("\r\n")
        }
        outBuf.append("Accept-Ranges: bytes\r\n")
        appendExpires(mtime)
        writeHeadEnd(keepAlive: !closeAfterResponse)
        state = .local
        if req.method == .head || size == 0 {
            Glibc.close(fd)
            flushLocal()
            return
        }
        staticFile = fd
        staticOffset = 0
        staticRemaining = size
        sendStaticBody()
    }

    func appendExpires(_ mtime: Int) {
        guard let e = settings.expires else { return }
        let now = wallClock().seconds
        var at: Int
        switch e {
        case .off: return
        case .epoch:
            outBuf.append("Expires: Thu, 01 Jan 1970 00:00:01 GMT\r\nCache-Control: no-cache\r\n")
            return
        case .max:
            outBuf.append("Expires: Thu, 31 Dec 2037 23:55:55 GMT\r\nCache-Control: max-age=315360000\r\n")
            return
        case .modified(let ms, let fromModification):
            at = (fromModification ? mtime : now) + ms / 1000
        case .timeOfDay(let ms):
            at = now - now % 86400 + ms / 1000
            if at <= now { at += 86400 }
        }
        outBuf.append("Expires: ")
        outBuf.append(string: DateCache.httpDate(at))
        let maxAge = at - now
        outBuf.append(string: maxAge <= 0 ? "\r\nCache-Control: no-cache\r\n" : "\r\nCache-Control: max-age=\(maxAge)\r\n")
    }

    func sendStaticBody() {
        guard flushOut() else { return }
        guard let f = staticFile else { finishRequest(); return }
        while staticRemaining > 0 {
            guard writable else {
                worker.loop.setDeadline(self, afterMillis: settings.effectiveSendTimeoutMs)
                return
            }
            do {
                switch try Socket.sendfile(fd, f, offset: &staticOffset, count: min(staticRemaining, 1 << 20)) {
                case .done(0):
                    staticRemaining = 0 // file shrank
                    closeAfterResponse = true
                case .done(let n):
                    staticRemaining -= n
                    bodyBytesSent += n
                case .wouldBlock:
                    writable = false
                }
            } catch {
                closeStaticFile()
                close()
                return
            }
        }
        worker.loop.setDeadline(self, afterMillis: 0)
        closeStaticFile()
        finishRequest()
    }

    func closeStaticFile() {
        if let f = staticFile {
            Glibc.close(f)
            staticFile = nil
        }
    }
}

extension Substring {
    func trimmingCharacters() -> String {
        var s = self
        while s.first == " " { s = s.dropFirst() }
        while s.last == " " { s = s.dropLast() }
        return String(s)
    }
}
