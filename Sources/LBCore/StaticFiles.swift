import Glibc
import LBConfig
import LBHTTP
import LBIO

/// The static file handler: root/alias, index, try_files, validators, sendfile.
extension ClientConnection {
    func serveStatic() {
        // try_files runs first (a POST may end in a FastCGI front controller); only a file
        // served here refuses other methods, as nginx's static module.
        if let tf = ex.server.tryFiles(for: ex.location) {
            runTryFiles(tf)
            return
        }
        serveStaticURI(ex.uri, allowIndex: true)
    }

    /// serveURI for GET and HEAD; 405 for other methods.
    /// As nginx's static and index modules: methods other than GET, HEAD and POST get 405; a POST
    /// is looked up as a GET (a missing file is a 404, a directory without its slash a 301, a
    /// directory's index is reached: `POST /` becomes `/index.php`) and refused only when a
    /// file would be sent.
    func serveStaticURI(_ u: [UInt8], allowIndex: Bool) {
        guard req.method == .get || req.method == .head || req.method == .post else {
            respondError(405)
            return
        }
        serveURI(u, allowIndex: allowIndex)
    }

    /// The file system path for a URI in the current location (root, or alias with the prefix
    /// replaced: `mapURIToPath`), nil for an alias spliced into a dot segment.
    func filePath(for u: [UInt8]) -> [UInt8]? {
        let (root, mapping) = documentRootMapping()
        guard let path = ClientConnection.mapURIToPath(u, root: root, mapping) else { return nil }
        // `location /i { alias /data/w/; }` with `/i../x` would splice `..` into the path: the
        // URI was normalized, so any dot segment here comes from the splice. Refuse it.
        if case .root = mapping { return path }
        return ClientConnection.hasDotSegment(path) ? nil : path
    }

    /// nginx's ngx_http_map_uri_to_path (also `$request_filename`): the document root and the
    /// URI; under an alias, the URI without the prefix of the location that holds it (a nested
    /// location's too, as nginx's inherited `clcf->alias`), and in a regex location the alias
    /// alone. nil for a URI shorter than the alias's location (rewritten).
    func mapURIToPath(_ u: [UInt8]) -> [UInt8]? {
        let (root, mapping) = documentRootMapping()
        return ClientConnection.mapURIToPath(u, root: root, mapping)
    }

    /// How the URI goes under the document root: appended whole (`root`), without the first
    /// `n` octets (`alias` of a prefix or exact location), or not at all (`alias` of a regex
    /// location: the alias is the whole path).
    enum URIMapping { case root, cut(Int), whole }

    static func mapURIToPath(_ u: [UInt8], root: [UInt8], _ mapping: URIMapping) -> [UInt8]? {
        let from: Int
        switch mapping {
        case .root: from = 0
        case .cut(let n): guard u.count >= n else { return nil }; from = n
        case .whole: return root
        }
        // One allocation of the exact size (`root + u[from...]` grew the array and went through
        // the generic append twice).
        let n = u.count - from
        return [UInt8](unsafeUninitializedCapacity: root.count + n) { out, count in
            let base = out.baseAddress!
            root.withUnsafeBufferPointer { base.update(from: $0.baseAddress!, count: $0.count) }
            if n > 0 { u.withUnsafeBufferPointer { (base + root.count).update(from: $0.baseAddress! + from, count: n) } }
            count = root.count + n
        }
    }

    /// The document root here, as nginx's `$document_root`: the root (its trailing `/` dropped
    /// when the config was read, as nginx's), or the alias as written; a relative one made by
    /// variables is under the prefix (ngx_get_full_name); with neither anywhere, `html` under
    /// the prefix.
    func documentRoot() -> [UInt8] { documentRootMapping().0 }

    /// The document root and how the URI maps under it, the location's `docRoot` read once.
    func documentRootMapping() -> ([UInt8], URIMapping) {
        let t: Template
        let mapping: URIMapping
        switch settings.docRoot {
        case .root(let r)?: t = r; mapping = .root
        case .alias(let a, let length)?: t = a; mapping = length.map { .cut($0) } ?? .whole
        case nil: return (Array(joinPath(table.main.prefix, "html").utf8), .root)
        }
        // A text without variables is the config's own array (made absolute when read).
        if t.parts.count == 1, case .literal(let b) = t.parts[0] { return (b, mapping) }
        var r = evaluate(t)
        if case .variable? = t.parts.first, r.first != UInt8(ascii: "/") { r = Array(joinPath(table.main.prefix, String(decoding: r, as: UTF8.self)).utf8) }
        return (r, mapping)
    }

    static func hasDotSegment(_ p: [UInt8]) -> Bool {
        var i = 0
        while i < p.count {
            if p[i] == UInt8(ascii: "/") || i == 0 {
                let s = p[i] == UInt8(ascii: "/") ? i + 1 : i
                var e = s
                while e < p.count && p[e] != UInt8(ascii: "/") { e += 1 }
                if (e - s == 1 && p[s] == UInt8(ascii: ".")) || (e - s == 2 && p[s] == UInt8(ascii: ".") && p[s + 1] == UInt8(ascii: ".")) { return true }
                i = e
                continue
            }
            i += 1
        }
        return false
    }

    /// What try_files settles on (`ngx_http_try_files_handler`).
    enum TryFilesChoice {
        /// An entry that exists as a file (or, ending in `/`, as a directory): its URI.
        case file([UInt8], directory: Bool)
        /// The last entry `=CODE`.
        case code(Int)
        /// The last entry `@name`.
        case named(String)
        /// The last entry, a URI (with arguments after `?`) for an internal redirect.
        case uri([UInt8])
    }

    /// The first entry that exists as it asks, else the last entry. `trace` (`lb --explain`)
    /// hears each candidate and whether it exists.
    func tryFilesChoice(_ tf: TryFiles, trace: RouteRecorder? = nil) -> TryFilesChoice {
        for e in tf.candidates {
            let candidate = evaluate(e.uri)
            guard let path = filePath(for: candidate) else {
                trace?.record(.note("try_files \"\(e.source)\": \"\(String(decoding: candidate, as: UTF8.self))\" has no file path (alias with ..)"))
                continue
            }
            let isDir = candidate.last == UInt8(ascii: "/")
            let info = probeFile(path).info
            if let trace {
                let kind = info == nil ? "not found" : info?.kind == .directory ? "a directory" : info?.kind == .file ? "a file" : "not a file"
                trace.record(.note("try_files \"\(e.source)\": \(String(decoding: path, as: UTF8.self)) is \(kind)"))
            }
            if let info {
                if isDir && info.kind == .directory { return .file(candidate, directory: true) }
                if !isDir && info.kind == .file { return .file(candidate, directory: false) }
            }
        }
        switch tf.fallback {
        case .code(let code): return .code(code)
        case .named(let name): return .named(name)
        case .uri(let tpl): return .uri(evaluate(tpl))
        }
    }

    func runTryFiles(_ tf: TryFiles) {
        switch tryFilesChoice(tf) {
        case .file(let candidate, let directory):
            ex.uri = candidate
            if ex.location.settings.resolved.mirrors { guard runMirrors(resume: .staticFile(candidate, allowIndex: directory)) else { return } } // Mirror.swift
            serveStaticURI(candidate, allowIndex: directory)
        case .code(let code):
            respondError(code)
        case .named(let name):
            guard let named = ex.server.named[name] else {
                log(.error, "could not find named location \"@\(name)\"")
                respondError(500)
                return
            }
            guard internalRedirect(to: Array(("@" + name).utf8)) else { return }
            enterNamedLocation(named) // Rewrite.swift
        case .uri(let dest):
            // An internal redirect: every phase again with the new URI. As nginx
            // (ngx_http_split_args), the fallback's `?…` becomes the arguments, and a fallback
            // without one leaves none (hence `/index.php?$args` in PHP configs).
            guard internalRedirect(to: dest) else { return }
            let (uri, args) = ClientConnection.splitArgs(dest)
            redirectInternally(to: uri, args: args) // Rewrite.swift
        }
    }

    func statPath(_ path: [UInt8], _ st: inout stat) -> Bool {
        (path + [0]).withUnsafeBufferPointer { p in
            p.withMemoryRebound(to: CChar.self) { stat($0.baseAddress!, &st) == 0 }
        }
    }

    /// The open file cache of this location and how it looks files up here; nil when
    /// `open_file_cache` is off. Under `disable_symlinks` its entries remember the check they
    /// were opened under (`symlinkCheck`), as nginx's.
    var openFileCacheHere: (cache: OpenFileCache, settings: OpenFileCacheSettings)? {
        guard let s = settings.resolved.openFileCache else { return nil }
        return (worker.openFileCache(s.zone), s)
    }

    /// How `disable_symlinks` applies to `path` here (`ngx_http_set_disable_symlinks`).
    func symlinkCheck(_ path: [UInt8]) -> SymlinkCheck {
        switch settings.resolved.disableSymlinks {
        case .off: return .off
        case .on(let f): return SymlinkCheck.forPath(path, mode: .on, from: f.map(disableSymlinksFrom))
        case .ifNotOwner(let f): return SymlinkCheck.forPath(path, mode: .ifNotOwner, from: f.map(disableSymlinksFrom))
        }
    }

    /// The value of `disable_symlinks from=`: the document root for `$document_root` and
    /// `$realpath_root`, else the text.
    func disableSymlinksFrom(_ f: String) -> [UInt8] {
        guard f == "$document_root" || f == "$realpath_root" else { return Array(f.utf8) }
        return documentRoot()
    }

    /// A path's information (an index, try_files or gzip_static probe, the static handler's
    /// stat): through the open file cache when one is on, else one stat(2) (under
    /// `disable_symlinks`, the checked open, fstat and close).
    func probeFile(_ path: [UInt8]) -> FileLookup {
        if let (cache, s) = openFileCacheHere {
            return cache.lookup(path, now: worker.loop.now, validMs: s.validMs, minUses: s.minUses, errors: s.errors, descriptor: false, symlinks: symlinkCheck(path))
        }
        switch FileSystemCalls.system.stat(path, symlinkCheck(path)) {
        case .success(let info): return .found(info, nil)
        case .failure(let e): return .failed(e.code)
        }
    }

    func serveURI(_ u: [UInt8], allowIndex: Bool) {
        guard let path = filePath(for: u) else { respondError(404); return }
        // The directory's lookup when the index module made it (not made twice).
        var dirLookup: FileLookup?
        // nginx's index module runs before the static one, for a URI ending in `/`: the first
        // index that exists — an absolute one untested, even for a directory that is not there —
        // is an internal redirect, with the arguments, so that its own location answers it.
        if allowIndex && u.last == UInt8(ascii: "/") {
            for idx in settings.resolved.index {
                let name = evaluate(idx)
                if ex.variableFailed { respondError(500); return }
                if name.first != UInt8(ascii: "/"), case .failed(let e) = probeFile(path + name) {
                    // As nginx's index module (ngx_http_index_handler): an index refused by
                    // disable_symlinks is a 403; one under a path that is not a directory, too
                    // long or not accessible answers at once; on the first one not there the
                    // directory is tested (not there: a 404 naming the index); then the next.
                    if e == ELOOP || e == EMLINK { respondError(403); return }
                    if e == ENOTDIR || e == ENAMETOOLONG || e == EACCES {
                        indexError(path + name, e)
                        return
                    }
                    if dirLookup == nil {
                        let lookup = probeFile(path)
                        if case .failed(let d) = lookup {
                            if d == ENOENT {
                                indexError(path + name, d)
                                return
                            }
                            if d != EACCES {
                                log(.crit, "stat() \"\(String(decoding: path, as: UTF8.self))\" failed (\(d): \(String(cString: strerror(d))))")
                                respondError(500)
                                return
                            }
                        }
                        dirLookup = lookup
                    }
                    if e == ENOENT { continue }
                    log(.crit, "open() \"\(String(decoding: path + name, as: UTF8.self))\" failed (\(e): \(String(cString: strerror(e))))")
                    respondError(500)
                    return
                }
                let dest = name.first == UInt8(ascii: "/") ? name : u + name
                guard internalRedirect(to: dest) else { return }
                redirectInternally(to: dest, args: currentArgs) // Rewrite.swift
                return
            }
        }
        let info: FileInfo
        switch dirLookup ?? probeFile(path) {
        case .found(let i, _): info = i
        case .failed(let e):
            let status = OpenFileCache.status(openError: e)
            if status == 404 && settings.resolved.logNotFound { log(.error, "open() \"\(String(decoding: path, as: UTF8.self))\" failed (\(e): \(String(cString: strerror(e))))") }
            respondError(status)
            return
        }
        if info.kind == .directory {
            if u.last != UInt8(ascii: "/") {
                redirect(301, to: String(decoding: u, as: UTF8.self) + "/" + queryString())
                return
            }
            guard allowIndex else { respondError(404); return }
            if settings.resolved.autoindex && req.method != .post {
                autoindex(path, uri: u)
                return
            }
            log(.error, "directory index of \"\(String(decoding: path, as: UTF8.self))\" is forbidden")
            respondError(403)
            return
        }
        guard info.kind == .file else { respondError(404); return }
        if req.method == .post {
            respondError(405)
            return
        }
        sendFile(path, info)
    }

    /// nginx's `ngx_http_index_error`: an index not accessible is a 403 (`"…" is forbidden`),
    /// else a 404 (`"…" is not found`, unless `log_not_found off`), naming the index's path.
    func indexError(_ file: [UInt8], _ e: Int32) {
        let text = "\"\(String(decoding: file, as: UTF8.self))\" is \(e == EACCES ? "forbidden" : "not found") (\(e): \(String(cString: strerror(e))))"
        if e == EACCES {
            log(.error, text)
            respondError(403)
            return
        }
        if settings.resolved.logNotFound { log(.error, text) }
        respondError(404)
    }

    /// nginx's `disable_symlinks`: lstat every component below `from` (the document root when
    /// `from=$document_root`, else the whole path); any symlink (or one owned by someone else than
    /// its target, for `if_not_owner`) refuses the request.
    func symlinkRefused(_ path: [UInt8]) -> Bool {
        let policy = settings.resolved.disableSymlinks
        var from: String?
        var ownerOnly = false
        switch policy {
        case .off: return false
        case .on(let f): from = f
        case .ifNotOwner(let f): from = f; ownerOnly = true
        }
        var start = 1
        if let f = from {
            let rootBytes = disableSymlinksFrom(f)
            if path.starts(with: rootBytes) { start = rootBytes.count }
        }
        var i = start
        while i <= path.count {
            if i == path.count || path[i] == UInt8(ascii: "/") {
                if i > 0 {
                    var ls = stat()
                    let prefixPath = Array(path[0..<i]) + [0]
                    let ok = prefixPath.withUnsafeBufferPointer { p in p.withMemoryRebound(to: CChar.self) { lstat($0.baseAddress!, &ls) == 0 } }
                    if ok && (ls.st_mode & S_IFMT) == S_IFLNK {
                        if !ownerOnly { return true }
                        var ts = stat()
                        let tok = prefixPath.withUnsafeBufferPointer { p in p.withMemoryRebound(to: CChar.self) { stat($0.baseAddress!, &ts) == 0 } }
                        if !tok || ts.st_uid != ls.st_uid { return true }
                    }
                }
            }
            i += 1
        }
        return false
    }

    func sendFile(_ requestedPath: [UInt8], _ requestedInfo: FileInfo) {
        // With the open file cache, its checked opens refuse (and a cached entry is served
        // unchecked while valid, as nginx's).
        if openFileCacheHere == nil && symlinkRefused(requestedPath) {
            log(.error, "\"\(String(decoding: requestedPath, as: UTF8.self))\" has a symbolic link (disable_symlinks)")
            respondError(403)
            return
        }
        var path = requestedPath
        var info = requestedInfo
        var gzipped = false
        if settings.resolved.gzipStatic {
            let accepts = headerValue("accept-encoding").map { String(decoding: $0, as: UTF8.self).contains("gzip") } ?? false
            if accepts, let g = probeFile(path + Array(".gz".utf8)).info, g.kind == .file {
                path += Array(".gz".utf8)
                info = g
                gzipped = true
            }
        }
        // The file: a descriptor from the open file cache (shared, released when the response
        // is done; its information is the descriptor's own), else open(2) as it comes.
        let fd: Int32
        var shared: SharedFile?
        if let (cache, s) = openFileCacheHere {
            switch cache.lookup(path, now: worker.loop.now, validMs: s.validMs, minUses: s.minUses, errors: s.errors, descriptor: true, symlinks: symlinkCheck(path)) {
            case .found(let i, let f?):
                fd = f.fd
                shared = f
                info = i
            case .found:
                respondError(404) // no longer a regular file
                return
            case .failed(let e):
                respondError(OpenFileCache.status(openError: e))
                return
            }
        } else {
            fd = (path + [0]).withUnsafeBufferPointer { p in
                p.withMemoryRebound(to: CChar.self) { open($0.baseAddress!, O_RDONLY | O_CLOEXEC | O_NONBLOCK) }
            }
            guard fd >= 0 else {
                respondError(errno == EACCES ? 403 : 404)
                return
            }
        }
        /// Closes the file, or gives a shared one back (a response that ends before its body).
        func closeFile() {
            if let shared { worker.releaseSharedFile(shared) } else { Glibc.close(fd) }
        }
        let size = info.size
        let mtime = info.mtime
        // Formatted validators and type, cached per worker for an unchanged (path, mtime, size).
        let meta = worker.fileMeta(path: path, mtime: mtime, size: size, type: { self.contentTypeForURI() })
        let etag = meta.etag
        // An X-Accel-Redirect's Content-Type stands for the file's own (nginx: the upstream's
        // header is copied before the redirect, and the static module keeps a type already set).
        let baseType = ex.contentTypeOverride ?? meta.type
        let type = withCharset(baseType)
        if !ex.requestBodyComplete { closeAfterResponse = true }
        // Under sub_filter the file is rewritten whole: no ranges, no length (SubFilterResponse.swift).
        let sub = !gzipped && settings.subFilters != nil && size <= GzipPolicy.maxInMemory ? subFilterFor(contentType: type, contentLength: size) : nil
        // The response-head stage: 304/412 (only for what would be a 200, never an error page),
        // the headers filter, gzip (a qualifying file is compressed whole in memory), ranges.
        let status = ex.overrideStatus ?? 200
        ex.overrideStatus = nil
        let d = decideHead(HeadStageResponse(status: status, source: .file, contentLength: size,
                                             gzipQualifies: !gzipped && gzipQualifies(status: status, contentEncoding: nil, contentType: baseType, contentLength: size),
                                             gzipPossible: sub == nil && size <= GzipPolicy.maxInMemory, rangesPossible: !gzipped && sub == nil),
                           validators: { Validators(lastModified: mtime, etag: self.settings.resolved.etag ? Array(etag.utf8) : nil) })
        switch d.outcome {
        case .send: break
        case .preconditionFailed:
            closeFile()
            respond(412, contentType: "text/html", body: Status.page(412, serverTokens: settings.resolved.serverTokens))
            return
        case .rangeNotSatisfiable:
            closeFile()
            respondRangeNotSatisfiable(total: size, vary: d.vary)
            return
        }
        outBuf.clear()
        // gzip_static tells caches the file has a compressed form, whatever this client took.
        let vary = d.vary || (settings.resolved.gzipVary && settings.resolved.gzipStatic)
        if d.status == 304 {
            closeFile()
            writeHeadStart(d)
            appendValidators(meta)
            writeHeadEnd()
            ex.responder = .local
            flushLocal()
            return
        }
        if let sub, sendStaticSubFiltered(fd: fd, size: size, sub, d, contentType: type, lastModified: meta.lastModified,
                                          etag: settings.resolved.etag ? etag : nil) {
            closeFile()
            return
        }
        if d.gzip {
            if let packed = compressWholeBody(read: { ClientConnection.readFile(fd, offset: 0, length: size) }) {
                closeFile()
                writeHeadStart(d)
                outBuf.append("Content-Type: ")
                outBuf.append(string: type)
                if req.method != .head {
                    outBuf.append("\r\nContent-Length: ")
                    outBuf.append(decimal: packed.count)
                }
                outBuf.append("\r\nContent-Encoding: gzip\r\n")
                appendVary(vary)
                outBuf.append("Last-Modified: ")
                outBuf.append(meta.lastModified)
                outBuf.append("\r\n")
                if settings.resolved.etag {
                    outBuf.append("ETag: ")
                    outBuf.append(string: GzipPolicy.weakened(etag))
                    outBuf.append("\r\n")
                }
                ex.expiresMtime = mtime
                writeHeadEnd()
                outBuf.append(packed)
                ex.bodyBytesSent = packed.count
                ex.responder = .local
                flushLocal()
                return
            }
        }
        var ranges: [Range<Int>] = []
        switch d.body {
        case .single(let r): ranges = [r]
        case .multipart(let rs): ranges = rs
        case .whole, .none: break
        }
        let range: (start: Int, end: Int)? = ranges.count == 1 ? (ranges[0].lowerBound, ranges[0].upperBound - 1) : nil
        let multipart = ranges.count > 1 ? RangeFilter.Multipart(boundary: ClientConnection.nextBoundary(), contentType: type, total: size) : nil
        let length = multipart?.contentLength(ranges) ?? range.map { $0.end - $0.start + 1 } ?? size
        writeHeadStart(d)
        outBuf.append("Content-Type: ")
        outBuf.append(string: multipart?.headerValue ?? type)
        outBuf.append("\r\nContent-Length: ")
        outBuf.append(decimal: length)
        if let r = range {
            outBuf.append(string: "\r\nContent-Range: bytes \(r.start)-\(r.end)/\(size)")
        }
        if gzipped {
            outBuf.append("\r\nContent-Encoding: gzip")
        }
        outBuf.append("\r\n")
        appendVary(vary)
        appendValidators(meta)
        if d.acceptRanges { outBuf.append("Accept-Ranges: bytes\r\n") } // nginx's range filter, on 200s only
        ex.expiresMtime = mtime // `expires` is added with the other configured headers
        writeHeadEnd()
        ex.responder = .local
        if req.method == .head || length == 0 {
            closeFile()
            flushLocal()
            return
        }
        ex.bodyBytesSent = 0
        if let m = multipart {
            // Each part: its head from memory, then its bytes from the file; the trailer last.
            ex.responder = .file(FileBody(fd: fd, shared: shared.map { .passRetained($0) }, offset: 0, remaining: 0,
                                          multipart: MultipartBody(parts: ranges.map { (m.partHead($0), $0) }, trailer: m.trailer)))
        } else {
            ex.responder = .file(FileBody(fd: fd, shared: shared.map { .passRetained($0) }, offset: range?.start ?? 0, remaining: length, multipart: nil))
        }
        // tcp_nopush: cork the socket so the head and the file go out in full segments (nginx).
        if settings.resolved.tcpNopush && settings.resolved.sendfile && transport.canSendfile {
            transport.cork(self.fd, true) // self.fd: the socket; `fd` here is the file
            corked = true
        }
        sendStaticBody()
    }

    /// nginx-style directory listing for `autoindex on`. As nginx's autoindex module, the
    /// directory is read as it is now, never through the open file cache (which may still
    /// hold it as a directory: gone since, it is a 404).
    func autoindex(_ dirPath: [UInt8], uri u: [UInt8]) {
        guard let d = (dirPath + [0]).withUnsafeBufferPointer({ p in p.withMemoryRebound(to: CChar.self) { opendir($0.baseAddress!) } }) else {
            let e = errno
            let status = e == ENOENT || e == ENOTDIR || e == ENAMETOOLONG ? 404 : e == EACCES ? 403 : 500
            log(status == 500 ? .crit : .error, "opendir() \"\(String(decoding: dirPath, as: UTF8.self))\" failed (\(e): \(String(cString: strerror(e))))")
            respondError(status)
            return
        }
        var entries: [(name: String, dir: Bool, size: Int, mtime: Int)] = []
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name.hasPrefix(".") { continue }
            var st = stat()
            guard statPath(dirPath + Array(name.utf8), &st) else { continue }
            entries.append((name, (st.st_mode & S_IFMT) == S_IFDIR, Int(st.st_size), Int(st.st_mtim.tv_sec)))
        }
        closedir(d)
        entries.sort { ($0.dir ? 0 : 1, $0.name) < ($1.dir ? 0 : 1, $1.name) }
        func esc(_ s: String) -> String {
            s.replacing("&", with: "&amp;").replacing("<", with: "&lt;").replacing(">", with: "&gt;").replacing("\"", with: "&quot;")
        }
        let title = esc(String(decoding: u, as: UTF8.self))
        var html = "<html>\r\n<head><title>Index of \(title)</title></head>\r\n<body>\r\n<h1>Index of \(title)</h1><hr><pre><a href=\"../\">../</a>\r\n"
        for e in entries {
            let shown = e.name + (e.dir ? "/" : "")
            let href = String(decoding: URI.escapePath(Array(shown.utf8)), as: UTF8.self)
            let pad = String(repeating: " ", count: max(1, 51 - shown.count))
            let c = DateCache.civil(e.mtime)
            func two(_ v: Int) -> String { v < 10 ? "0\(v)" : "\(v)" }
            let date = "\(two(c.day))-\(["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"][c.month - 1])-\(c.year) \(two(c.hour)):\(two(c.minute))"
            let sizeText = e.dir ? "-" : "\(e.size)"
            html += "<a href=\"\(href)\">\(esc(shown))</a>\(pad)\(date)\(String(repeating: " ", count: max(1, 20 - sizeText.count)))\(sizeText)\r\n"
        }
        html += "</pre><hr></body>\r\n</html>\r\n"
        respond(200, contentType: "text/html", body: Array(html.utf8))
    }

    /// The Expires and Cache-Control of `expires` (`ExpiresHeaders`).
    func appendExpires(_ e: Expires, mtime: Int) {
        guard let v = ExpiresHeaders.values(e, now: wallClock().seconds, mtime: mtime) else { return }
        outBuf.append("Expires: ")
        outBuf.append(string: v.expires)
        outBuf.append("\r\nCache-Control: ")
        outBuf.append(string: v.cacheControl)
        outBuf.append("\r\n")
    }

    /// Last-Modified and (unless `etag off`) ETag of a file.
    func appendValidators(_ meta: Worker.FileMeta) {
        outBuf.append("Last-Modified: ")
        outBuf.append(meta.lastModified)
        outBuf.append("\r\n")
        if settings.resolved.etag {
            outBuf.append("ETag: ")
            outBuf.append(string: meta.etag)
            outBuf.append("\r\n")
        }
    }

    /// Sends the `.file` responder's body after the head in `outBuf`: the file by sendfile (or
    /// through `outBuf` on TLS), a multipart body part by part. Works on a copy of the body's
    /// state (a plain value), stored back before anything that may close the connection (which
    /// closes the file) and before it returns to wait.
    func sendStaticBody() {
        guard case .file(var b) = ex.responder else {
            assertionFailure("sendStaticBody without a file responder")
            return
        }
        // A body held in memory (an open file cache's small file, whole or one range) goes with
        // the head: one write for both (on TLS one record), no read. Where sendfile works it is
        // copied only when it fits beside the head as the buffer is (measured: copying 4 KiB
        // into a grown buffer cost more than the call it saved); a larger one goes by writev.
        if b.remaining > 0, b.multipart == nil, let held = b.shared, let content = held.takeUnretainedValue().content,
           b.offset + b.remaining <= content.count {
            if !transport.canSendfile || outBuf.writableTail >= b.remaining {
                let n = b.remaining
                content.withUnsafeBytes { outBuf.append(UnsafeRawBufferPointer(rebasing: $0[b.offset..<(b.offset + n)])) }
                b.offset += n
                b.remaining = 0
                ex.bodyBytesSent += n
                ex.responder = .file(b)
            } else if writable && !outBuf.isEmpty && (responseLimited == false || (responseLimited == nil && !resolveRate())) {
                // Larger than the room beside the head, on a socket sendfile works on, with no
                // limit_rate: head and body leave in one writev, without a copy; what the socket
                // did not take goes on below (the head's rest, then the file by sendfile).
                do {
                    let r = try content.withUnsafeBytes { c throws(IOError) in
                        try transport.writev(fd, UnsafeRawBufferPointer(start: outBuf.readPointer, count: outBuf.readable),
                                             UnsafeRawBufferPointer(rebasing: c[b.offset..<(b.offset + b.remaining)]))
                    }
                    switch r {
                    case .done(let n):
                        let head = min(n, outBuf.readable)
                        outBuf.readIndex += head
                        b.offset += n - head
                        b.remaining -= n - head
                        ex.bodyBytesSent += n - head
                    case .wouldBlock:
                        writable = false
                    }
                } catch {
                    closeStaticFile()
                    close()
                    return
                }
                ex.responder = .file(b)
            }
        }
        // The head goes with MSG_MORE: it leaves in the same segment as the first file bytes.
        guard flushOut(more: (b.remaining > 0 || b.hasParts) && !corked) else { return }
        guard let f = b.fd else { closeStaticFile(); finishRequest(); return }
        while b.remaining > 0 || b.multipart != nil {
            if b.remaining == 0, let held = b.multipart {
                // multipart/byteranges: the next part's head, or the closing boundary.
                let m = held.takeUnretainedValue()
                worker.prepare(&outBuf)
                if !m.parts.isEmpty {
                    let (partHead, r) = m.parts.removeFirst()
                    outBuf.append(partHead)
                    ex.bodyBytesSent += partHead.count
                    b.offset = r.lowerBound
                    b.remaining = r.count
                } else {
                    outBuf.append(m.trailer)
                    ex.bodyBytesSent += m.trailer.count
                    b.multipart = nil
                    held.release()
                }
                ex.responder = .file(b)
                guard flushOut(more: b.remaining > 0 && !corked) else { return }
                continue
            }
            guard writable else {
                ex.responder = .file(b)
                worker.loop.setDeadline(self, afterMillis: settings.resolved.sendTimeoutMs)
                return
            }
            if !transport.canSendfile {
                // A transport that must see the bytes (TLS): the file goes through the out
                // buffer, one bounded chunk at a time.
                if outBuf.isEmpty {
                    worker.prepare(&outBuf)
                    outBuf.clear()
                    // On TLS a file larger than a pool block (4 KiB) goes in full records (16 KiB
                    // chunks): a quarter of the reads, records and sends.
                    if case .tls = transport, b.remaining > outBuf.capacity { outBuf.reserve(16384) }
                    let want = min(b.remaining, outBuf.writableTail)
                    let n: Int
                    if let held = b.shared, let content = held.takeUnretainedValue().content {
                        // An open file cache's copy in memory (the file as its head says).
                        n = min(want, content.count - b.offset)
                        if n > 0 { content.withUnsafeBytes { outBuf.writePointer.copyMemory(from: $0.baseAddress! + b.offset, byteCount: n) } }
                    } else {
                        n = pread(f, outBuf.writePointer, want, off_t(b.offset))
                    }
                    if n <= 0 {
                        b.remaining = 0 // file shrank
                        closeAfterResponse = true
                        break
                    }
                    outBuf.writeIndex += n
                    b.offset += n
                    b.remaining -= n
                    ex.bodyBytesSent += n
                }
                ex.responder = .file(b)
                guard flushOut() else { return }
                continue
            }
            var cap = 1 << 20
            if responseLimited != false {
                guard let allowed = rateAllowance() else {
                    ex.responder = .file(b)
                    return
                }
                cap = min(cap, allowed)
            }
            do {
                switch try transport.sendfile(fd, f, offset: &b.offset, count: min(b.remaining, cap)) {
                case .done(0):
                    b.remaining = 0 // file shrank
                    closeAfterResponse = true
                case .done(let n):
                    b.remaining -= n
                    ex.bodyBytesSent += n
                    if responseLimited == true { rateSent(n) }
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
        if corked {
            transport.cork(fd, false) // uncork: the last partial segment goes now
            corked = false
        }
        finishRequest()
    }

    /// Closes (or, a cache file, releases) the `.file` responder's file; the response goes on as
    /// a local one (what `outBuf` holds).
    func closeStaticFile() {
        guard case .file(let b) = ex.responder else { return }
        #if DEBUG
        ex.responder = .file(FileBody()) // released below (the debug check of `Exchange.responder`)
        #endif
        ex.responder = .local
        b.multipart?.release()
        if let shared = b.shared {
            worker.releaseSharedFile(shared.takeRetainedValue())
        } else if let f = b.fd {
            Glibc.close(f)
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

/// nginx's `ngx_http_set_expires`, without sockets: the Expires date and Cache-Control value of
/// an `expires` setting at a given time.
enum ExpiresHeaders {
    /// A relative time counts from `now`, or from `mtime` with `modified`; `0` is now with
    /// `max-age=0`; a negative time or one in the past is `no-cache`; `@TIME` is its next
    /// occurrence (UTC). Nil for `off` (and for a value with variables not yet evaluated).
    static func values(_ e: Expires, now: Int, mtime: Int) -> (expires: String, cacheControl: String)? {
        let at: Int
        let maxAge: Int
        var negative = false
        switch e {
        case .off, .variable: return nil
        case .epoch: return ("Thu, 01 Jan 1970 00:00:01 GMT", "no-cache")
        case .max: return ("Thu, 31 Dec 2037 23:55:55 GMT", "max-age=315360000")
        case .modified(let ms, let fromModification):
            let t = ms / 1000
            if t == 0 { return (DateCache.httpDate(now), "max-age=0") }
            negative = t < 0
            at = (fromModification ? mtime : now) + t
            maxAge = at - now
        case .timeOfDay(let ms):
            at = nextLocalTime(ofDay: ms / 1000, after: now)
            maxAge = at - now
        }
        return (DateCache.httpDate(at), negative || maxAge < 0 ? "no-cache" : "max-age=\(maxAge)")
    }

    /// The next moment the local clock shows `seconds` past midnight, after `now` (nginx's
    /// `ngx_next_time`: today's if still ahead, else tomorrow's, through mktime so that daylight
    /// saving changes count).
    static func nextLocalTime(ofDay seconds: Int, after now: Int) -> Int {
        var t = time_t(now)
        var tm = Glibc.tm()
        localtime_r(&t, &tm)
        tm.tm_hour = Int32(seconds / 3600)
        tm.tm_min = Int32(seconds % 3600 / 60)
        tm.tm_sec = Int32(seconds % 60)
        let today = Int(mktime(&tm))
        if today != -1 && today > now { return today }
        tm.tm_mday += 1
        let tomorrow = Int(mktime(&tm))
        return tomorrow != -1 ? tomorrow : now - now % 86400 + seconds + 86400
    }
}
