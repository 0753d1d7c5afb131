import Glibc
import LBConfig
import LBHTTP

extension RewriteState {
    /// As `init()` makes a new one (an exchange's state kept for its next request,
    /// `Exchange.reset`); the capacity of its arrays is kept, never a content.
    func reset() {
        if !vars.isEmpty { vars.removeAll() }
        if !captureSubject.isEmpty { captureSubject.removeAll(keepingCapacity: true) }
        if !captures.isEmpty { captures.removeAll(keepingCapacity: true) }
        if args != nil { args = nil }
        uriChanged = false
        rewritten = false
        validLocation = true
        proxyURIAsMade = false
    }
}

/// The rewrite module on a request: nginx's server-rewrite, find-config, rewrite and post-rewrite
/// phases (`ngx_http_core_module.c`), for servers that use it (`routesWithRewrites`).
extension ClientConnection: RewriteHost {
    var rewriteState: RewriteState {
        if let s = ex.rewrite { return s }
        let s: RewriteState
        if let spare = ex.spareRewrite {
            ex.spareRewrite = nil
            s = spare
        } else {
            s = RewriteState()
        }
        ex.rewrite = s
        return s
    }

    var currentURI: [UInt8] {
        get { ex.uri }
        set { ex.uri = newValue }
    }

    var currentArgs: [UInt8] {
        if let a = ex.rewrite?.args { return a }
        guard let q = req.queryRange else { return [] }
        return Array(head.readableBytes[q])
    }

    var requestURIWasQuoted: Bool {
        head.readableBytes[req.pathRange].contains { $0 == UInt8(ascii: "%") || $0 == UInt8(ascii: "+") }
    }

    var rewriteLogEnabled: Bool { settings.resolved.rewriteLog }

    func evaluateTemplate(_ t: Template) -> [UInt8] { evaluate(t) }

    /// `-f`, `-d`, `-e`, `-x` (`ngx_http_script_file_code`): the path looked up as the static
    /// handler looks files up here — through the location's open file cache when it is on (a
    /// deleted file still tests as one while `open_file_cache_valid` lasts; errors are cached
    /// per `open_file_cache_errors`), under its `disable_symlinks` check (a refused symlink
    /// does not exist). Only regular files and directories exist (not a FIFO, socket or
    /// device); `-x` is the owner's execute bit, directories too. A failed lookup is false
    /// (true negated), logged at `crit` unless the path is simply not there.
    func fileTest(_ path: [UInt8], _ test: FileTest) -> Bool {
        let found: FileLookup
        let check = symlinkCheck(path)
        let cache = openFileCacheHere
        if let (cache, s) = cache {
            // As nginx's: an open (that counts as a use, and keeps the descriptor from
            // `min_uses` on), not a probe; the descriptor is given back at once.
            found = cache.lookup(path, now: worker.loop.now, validMs: s.validMs, minUses: s.minUses, errors: s.errors, descriptor: true, symlinks: check)
            if case .found(_, let f?) = found { worker.releaseSharedFile(f) }
        } else {
            switch FileSystemCalls.system.stat(path, check) {
            case .success(let i): found = .found(i, nil)
            case .failure(let e): found = .failed(e.code)
            }
        }
        let info: FileInfo
        switch found {
        case .found(let i, _): info = i
        case .failed(let e):
            if e != ENOENT && e != ENOTDIR && e != ENAMETOOLONG {
                let call = check.mode != .off ? "openat()" : cache != nil ? "open()" : "stat()"
                log(.crit, "\(call) \"\(String(decoding: path, as: UTF8.self))\" failed (\(e): \(String(cString: strerror(e))))")
            }
            return false
        }
        switch test {
        case .plain: return info.kind == .file
        case .directory: return info.kind == .directory
        case .exists: return info.kind != .other
        case .executable: return info.executable
        }
    }

    func rewriteNotice(_ message: String) { log(.notice, message) }
    func rewriteError(_ message: String) { log(.error, message) }

    /// Chooses the location through the rewrite module: the server's program once, then the
    /// location search and the location's program, again while a rewrite changes the URI (within
    /// the request's budget of URI changes). Returns false when the request was answered.
    /// A named location (`named`) is entered at its own program, as `ngx_http_named_location`
    /// does: no server program, no search.
    func routeWithRewrites(named: Location? = nil) -> Bool {
        switch resolveRoute(named: named, trace: nil) {
        case .found:
            return true
        case .answer(let outcome):
            return answer(outcome)
        case .autoRedirect(let r):
            ex.location = r
            let args = currentArgs
            redirect(301, to: r.pattern + (args.isEmpty ? "" : "?" + String(decoding: args, as: UTF8.self)))
        case .internalOnly:
            respondError(404)
        case .bodyTooLarge(let cl):
            log(.error, "client intended to send too large body: \(cl) bytes")
            closeAfterResponse = true
            respondError(413)
        case .cycle:
            log(.error, "rewrite or internal redirection cycle while processing \"\(String(decoding: ex.uri, as: UTF8.self))\"")
            ex.location = ex.server.fallback
            respondError(500)
        }
        return false
    }

    /// How the rewrite and find-config phases ended.
    enum RouteDecision {
        /// `ex.location` serves the request.
        case found
        /// A `return`, a redirecting rewrite or a failure answers.
        case answer(RewriteOutcome)
        /// nginx's auto redirect to the location's `/p/`.
        case autoRedirect(Location)
        /// The location is `internal` and the request is not.
        case internalOnly
        /// `client_max_body_size` of the location found refuses the declared body.
        case bodyTooLarge(Int)
        /// The budget of URI changes ran out.
        case cycle
    }

    /// The decisions of `routeWithRewrites`, without answering: `ex.location`, `ex.uri` and the
    /// rewrite state are left as the request would have them. `trace` (`lb --explain`) hears each step.
    func resolveRoute(named: Location? = nil, trace: RouteRecorder?) -> RouteDecision {
        // Held once for the whole search (no exchange ends inside it), not loaded and counted
        // at every use of `ex`.
        let ex: Exchange = self.ex
        let server = ex.server
        if named == nil {
            // Once per request: an internal redirect keeps the captures the name gave.
            if !server.capturingNames.isEmpty && ex.rewrite?.rewritten != true { captureServerName(server.capturingNames) }
            if let p = server.rewrite {
                ex.location = server.fallback
                trace?.record(.rewritePhase(location: nil))
                let outcome = RewriteEngine.run(p, host: self, trace: trace) { _ in }
                if case .done = outcome {} else if case .stop = outcome {} else { return .answer(outcome) }
                ex.rewrite?.uriChanged = false
            }
        }
        var entered = named
        while true {
            let found: Location?
            if let n = entered {
                entered = nil
                found = n
                ex.location = n
            } else {
                if let r = ex.uri.withUnsafeBytes({ server.locations.autoRedirect($0) }) {
                    trace?.record(.autoRedirect(r))
                    return .autoRedirect(r)
                }
                found = ex.uri.withUnsafeBytes { uri in
                    if let trace { server.locations.find(uri, trace: trace).location } else { server.locations.find(uri).location }
                }
                ex.location = found ?? server.fallback
            }
            if let loc = found, let re = loc.regex, ex.rewrite != nil || loc.rewrite != nil || !re.names.isEmpty {
                // The location's regex match gives the captures the directives after it see.
                if let caps = ex.uri.withUnsafeBytes({ re.captures($0) }) {
                    rewriteState.setCaptures(ex.uri, caps, names: re.names)
                }
            }
            if ex.location.internalOnly && ex.rewrite?.rewritten != true { return .internalOnly }
            guard let p = found?.rewrite else { return .found }
            locationKeepaliveChecks()
            let maxBody = ex.location.settings.resolved.clientMaxBodySize
            if maxBody > 0, let cl = req.contentLength, cl > maxBody { return .bodyTooLarge(cl) }
            trace?.record(.rewritePhase(location: found))
            // Not escaping: no capture list (an unowned one costs a reference count on each use).
            let outcome = RewriteEngine.run(p, host: self, trace: trace) { self.ex.location = $0 }
            switch outcome {
            case .stop:
                return .found
            case .done:
                guard let st = ex.rewrite, st.uriChanged else { return .found }
                st.uriChanged = false
                ex.uriChangesLeft -= 1
                if ex.uriChangesLeft < 0 { return .cycle }
                trace?.record(.searchAgain(uri: ex.uri, changesLeft: ex.uriChangesLeft))
            default:
                return .answer(outcome)
            }
        }
    }

    /// `ngx_http_internal_redirect` once the URI change is spent (`internalRedirect(to:)`): the new
    /// URI and arguments, the request internal (it reaches `internal` locations, and its own
    /// target is no longer what is proxied), then every phase again from the server's rewrite
    /// directives: the location search, the location's rewrite directives, access and content.
    func redirectInternally(to uri: [UInt8], args: [UInt8]) {
        ex.uri = uri
        let st = rewriteState
        st.args = args
        st.rewritten = true
        st.validLocation = true
        st.uriChanged = false
        st.proxyURIAsMade = false
        ex.location = ex.server.fallback
        runPhases()
    }

    /// `ngx_http_named_location` once the URI change is spent: the same URI and arguments, the
    /// named location's rewrite directives, access and content.
    func enterNamedLocation(_ named: Location) {
        let st = rewriteState
        st.rewritten = true
        st.uriChanged = false
        st.proxyURIAsMade = false
        runPhases(named: named)
    }

    /// A URI with its arguments split off at the first `?` (`ngx_http_split_args`).
    static func splitArgs(_ dest: [UInt8]) -> (uri: [UInt8], args: [UInt8]) {
        guard let q = dest.firstIndex(of: UInt8(ascii: "?")) else { return (dest, []) }
        return (Array(dest[..<q]), Array(dest[(q + 1)...]))
    }

    /// nginx's find-virtual-server: the regex name that chose the server captures from the Host
    /// (lowercased, without port or trailing dot).
    func captureServerName(_ names: [PCRE]) {
        guard req.absoluteHost != nil || req.host != nil else { return }
        let host = hostForServerLookup()
        for re in names {
            if let caps = host.withUnsafeBytes({ re.captures($0) }) {
                rewriteState.setCaptures(host, caps, names: re.names)
                return
            }
        }
    }

    /// The Host as find-virtual-server uses it: the absolute-form target's host first, lowercased,
    /// without port or trailing dots (as ClientConnection.beginRequest computes it).
    func hostForServerLookup() -> [UInt8] {
        guard let r = req.absoluteHost ?? req.host else { return [] }
        let hb = head.readableBytes
        var end = r.upperBound
        if hb[r.lowerBound] != UInt8(ascii: "[") {
            var k = r.lowerBound
            while k < r.upperBound && hb[k] != UInt8(ascii: ":") { k += 1 }
            end = k
        }
        var host = hb[r.lowerBound..<end].map { ASCII.lower($0) }
        while host.last == UInt8(ascii: ".") { host.removeLast() }
        return host
    }

    /// Answers a `return`, a redirecting rewrite or a failure; always false (answered).
    private func answer(_ outcome: RewriteOutcome) -> Bool {
        switch outcome {
        case .respond(let r): runReturn(r)
        case .redirect(let code, let url): redirect(code, to: String(decoding: url, as: UTF8.self))
        case .failure: respondError(500)
        case .done, .stop: return true
        }
        return false
    }

    /// The URI sent upstream after a rewrite (nginx's proxy module once `valid_unparsed_uri` is
    /// off): the new URI escaped, the location's prefix replaced only while the location is still
    /// valid (not after `break`), and the current arguments. False: the usual rules apply.
    func rewrittenUpstreamURI(_ t: ProxyTarget, into out: inout [UInt8]) -> Bool {
        // proxy_pass with variables and a URI part: that URI is sent as it is, arguments and all.
        if ex.rewrite?.proxyURIAsMade == true, let u = t.uri {
            out.removeAll(keepingCapacity: true)
            out += Array(u.utf8)
            return true
        }
        // `set $args` also invalidates the request's own target (nginx's valid_unparsed_uri).
        guard let st = ex.rewrite, st.rewritten || st.args != nil else { return false }
        out.removeAll(keepingCapacity: true)
        var prefixLen = 0
        if let u = t.uri, st.validLocation {
            switch ex.location.match {
            case .prefix(let p), .prefixNoRegex(let p), .exact(let p): prefixLen = min(p.utf8.count, ex.uri.count)
            default: prefixLen = 0
            }
            out += Array(u.utf8)
        }
        out += URI.escapePath(Array(ex.uri[prefixLen...]))
        let args = currentArgs
        if !args.isEmpty {
            out.append(UInt8(ascii: "?"))
            out += args
        }
        return true
    }
}
