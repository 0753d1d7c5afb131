import Glibc
import LBConfig
import LBHTTP
import LBIO

/// A request to explain (`lb -t --explain 'GET http://host/path?x=1' -H 'Name: value'`).
public struct ExplainRequest: Sendable {
    public var method: String
    /// The Host header as sent (with the port when the URL had one).
    public var host: String
    /// The port the URL names; nil: the first listener serves.
    public var port: Int?
    /// The origin-form target (`/path?x=1`).
    public var target: String
    public var headers: [(name: String, value: String)]
    /// The client address (realip, geo, allow/deny, `$remote_addr`).
    public var client: String

    /// Parses `[METHOD] http://host[:port]/path[?args]` (method GET when omitted), `Name: value`
    /// headers and an optional client IP address.
    public static func parse(_ line: String, headers: [String] = [], client: String? = nil) throws(ExplainError) -> ExplainRequest {
        let words = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        let method: String, url: String
        switch words.count {
        case 1: (method, url) = ("GET", words[0])
        case 2: (method, url) = (words[0], words[1])
        default: throw ExplainError("invalid request \"\(line)\": expected \"METHOD http://host/path\"")
        }
        guard !method.isEmpty, method.utf8.allSatisfy({ $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }) else {
            throw ExplainError("invalid method \"\(method)\" in \"\(line)\"")
        }
        let rest: Substring
        if url.hasPrefix("http://") { rest = url.dropFirst(7) } else if url.hasPrefix("https://") { rest = url.dropFirst(8) } else {
            throw ExplainError("invalid URL \"\(url)\": expected http://host/path")
        }
        let slash = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? rest.endIndex
        let authority = String(rest[..<slash])
        var target = String(rest[slash...])
        if let hash = target.firstIndex(of: "#") { target = String(target[..<hash]) }
        if target.isEmpty { target = "/" } else if target.hasPrefix("?") { target = "/" + target }
        guard !authority.isEmpty, let hp = HostPort.parse(authority, portOnlyAllowed: false), !hp.host.isEmpty else {
            throw ExplainError("invalid host in URL \"\(url)\"")
        }
        guard target.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw ExplainError("invalid URL \"\(url)\": spaces and control characters must be escaped")
        }
        var parsedHeaders: [(name: String, value: String)] = []
        for h in headers {
            guard let colon = h.firstIndex(of: ":"), colon != h.startIndex else { throw ExplainError("invalid header \"\(h)\": expected \"Name: value\"") }
            let name = String(h[..<colon])
            guard name.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: ":") }) else { throw ExplainError("invalid header name in \"\(h)\"") }
            parsedHeaders.append((name, String(h[h.index(after: colon)...]).trimmingSpaces()))
        }
        let clientIP = client ?? "127.0.0.1"
        guard SocketAddress(ip: clientIP, port: 1) != nil else { throw ExplainError("invalid client address \"\(clientIP)\"") }
        return ExplainRequest(method: method, host: authority, port: hp.port, target: target, headers: parsedHeaders, client: clientIP)
    }
}

/// A request that cannot be explained (malformed, or no listener for it).
public struct ExplainError: Error, CustomStringConvertible {
    public var description: String
    init(_ message: String) { description = message }
}

extension String {
    fileprivate func trimmingSpaces() -> String {
        var s = self[...]
        while s.first == " " || s.first == "\t" { s = s.dropFirst() }
        while s.last == " " || s.last == "\t" { s = s.dropLast() }
        return String(s)
    }
}

/// `lb -t --explain`: routes a synthetic request through the routing code of real requests (the
/// server lookup, the rewrite engine, the location search, try_files, the proxy's URI and cache
/// key) with a `RouteRecorder` attached, and prints each decision with where it was configured.
/// Nothing is started: no socket, no thread, no log file; the one connection object is never
/// registered with a loop, and the handler is described instead of run.
public enum RouteExplainer {
    public static func explain(_ request: ExplainRequest, table: RoutingTable) throws(ExplainError) -> String {
        var out: [String] = []
        func say(_ s: String) { out.append(s) }

        // The listener: by the URL's port, else the first.
        let listenerIndex: Int
        if let p = request.port {
            guard let i = table.listeners.firstIndex(where: { $0.address.port == p }) else {
                throw ExplainError("no listener on port \(p) (listening on \(table.listeners.map { "\($0.address)" }.joined(separator: ", ")))")
            }
            listenerIndex = i
        } else {
            guard !table.listeners.isEmpty else { throw ExplainError("the configuration has no listener") }
            listenerIndex = 0
        }
        let listener = table.listeners[listenerIndex]

        let runtime = Runtime(table: table, loader: ConfigLoader(prefix: table.main.prefix), configPath: "")
        let worker: Worker
        do { worker = try Worker(index: 0, runtime: runtime) } catch { throw ExplainError("\(error)") }
        let peer = SocketAddress(ip: request.client, port: 50000)!
        let conn = ClientConnection(worker: worker, fd: -1, peer: peer, generation: runtime.current, listener: listenerIndex, number: 0)
        defer {
            conn.endExchange()
            conn.releaseRequestHead()
        }

        // The request head, parsed by the parser of real requests.
        var headText = "\(request.method) \(request.target) HTTP/1.1\r\nHost: \(request.host)\r\n"
        for h in request.headers { headText += "\(h.name): \(h.value)\r\n" }
        headText += "\r\n"
        let bytes = Array(headText.utf8)
        conn.head.clear()
        bytes.withUnsafeBytes { conn.head.append($0) }
        let defaultServer = table.servers[listener.defaultServer]
        do {
            try HeadParser.request(conn.head.readableBytes, start: 0, end: conn.head.readable, into: &conn.req,
                                   names: HeaderNameRules(underscores: defaultServer.settings.resolved.underscoresInHeaders,
                                                          ignoreInvalid: defaultServer.settings.resolved.ignoreInvalidHeaders))
        } catch {
            throw ExplainError("invalid request: \(error.reason) (lb would answer \(error.status))")
        }
        conn.requestsOnConnection = 1
        conn.beginExchange()
        let ex = conn.ex!

        say("request: \(request.method) \(request.target), Host: \(request.host), client \(request.client)"
            + request.headers.map { ", \($0.name): \($0.value)" }.joined())
        say("listener: \(listener.address)\(listener.sslLocation != nil ? " ssl" : "")"
            + (request.port == nil ? " (the first listener; give http://host:PORT/ to choose another)" : " (port \(request.port!))"))

        // find-virtual-server, as ClientConnection.beginRequest does it.
        let hostBytes = conn.hostForServerLookup()
        let defaultText = "default server of \(listener.address)"
        if listener.serverCount <= 1 {
            ex.server = defaultServer
            say("server: \(describe(ex.server)): the only server on this listener")
        } else if hostBytes.isEmpty {
            ex.server = defaultServer
            say("server: \(describe(ex.server)): no Host, the \(defaultText)")
        } else {
            let host = String(decoding: hostBytes, as: UTF8.self)
            if let found = listener.names.lookup(host) {
                ex.server = table.servers[found.server]
                let why = switch found.match {
                case .exact(let n): "exact name \"\(n)\""
                case .leadingWildcard(let n): "wildcard name \"*\(n)\" (the longest leading wildcard; no exact name)"
                case .trailingWildcard(let n): "wildcard name \"\(n)*\" (the longest trailing wildcard; no exact or leading wildcard name)"
                case .regex(let p): "regex name \"~\(p)\" (the first matching regex; no exact or wildcard name)"
                }
                say("server: \(describe(ex.server)): host \"\(host)\" matches \(why)")
            } else {
                ex.server = defaultServer
                say("server: \(describe(ex.server)): no server_name matches \"\(host)\": the \(defaultText)")
            }
        }
        ex.location = ex.server.fallback

        guard URI.normalize(UnsafeRawBufferPointer(rebasing: conn.head.readableBytes[conn.req.pathRange]), into: &ex.uri,
                            mergeSlashes: defaultServer.settings.resolved.mergeSlashes) else {
            say("answer: 400 (the URI does not normalize: \"..\" above the root, or an invalid escape)")
            return out.joined(separator: "\n") + "\n"
        }
        say("uri: \(text(ex.uri))" + (conn.currentArgs.isEmpty ? "" : ", args: \(text(conn.currentArgs))"))
        if let trusted = ex.server.fallback.settings.realIPFrom {
            ex.realIPChecked = true
            conn.applyRealIP(trusted)
            say("realip (server level, \(ex.server.location)): client address \(conn.clientAddress.ip)")
        }
        if let r = ex.server.serverReturn {
            say("server-level return\(DirectiveIndex(table: table).at(["return"], from: ex.server.location)), in \(describe(ex.server)):")
            describeReturn(r, conn: conn, say: say)
            return out.joined(separator: "\n") + "\n"
        }

        let index = DirectiveIndex(table: table)
        // The rewrite and find-config phases: the function real requests run.
        let trace = RouteRecorder()
        let decision = conn.resolveRoute(trace: trace)
        describe(trace, uri: ex.uri, server: ex.server, say: say)
        switch decision {
        case .found: break
        case .answer(let outcome):
            switch outcome {
            case .respond(let r): describeReturn(r, conn: conn, say: say)
            case .redirect(let code, let url): say("answer: \(code) redirect, Location: \(text(conn.absoluteLocation(url)))")
            case .failure: say("answer: 500")
            case .done, .stop: break
            }
            return out.joined(separator: "\n") + "\n"
        case .autoRedirect(let r):
            say("answer: 301 to \(r.pattern): \(describe(r)) has proxy_pass and ends with \"/\" (nginx's auto redirect)")
            return out.joined(separator: "\n") + "\n"
        case .internalOnly:
            say("answer: 404: \(describe(ex.location)) is internal")
            return out.joined(separator: "\n") + "\n"
        case .bodyTooLarge(let n):
            say("answer: 413: a body of \(n) bytes is over client_max_body_size")
            return out.joined(separator: "\n") + "\n"
        case .cycle:
            say("answer: 500: rewrite or internal redirection cycle (more than \(Exchange.maxURIChanges) URI changes)")
            return out.joined(separator: "\n") + "\n"
        }
        if ex.location.internalOnly && ex.rewrite?.rewritten != true {
            say("answer: 404: \(describe(ex.location)) is internal")
            return out.joined(separator: "\n") + "\n"
        }
        let configuration = ex.location === ex.server.fallback ? "the server's own settings (\(ex.server.location))" : describe(ex.location)
        say("configuration: \(configuration)" + (ex.rewrite?.rewritten == true ? ", uri \(text(ex.uri))" + (conn.currentArgs.isEmpty ? "" : "?\(text(conn.currentArgs))") : ""))

        // The access phase.
        if !ex.realIPChecked, let trusted = ex.location.settings.realIPFrom {
            ex.realIPChecked = true
            conn.applyRealIP(trusted)
            say("realip (\(configuration)): client address \(conn.clientAddress.ip)")
        }
        describeAccess(conn: conn, table: table, index: index, where: configuration, say: say)

        // The content phase.
        describeHandler(conn: conn, table: table, index: index, say: say, depth: 0)
        return out.joined(separator: "\n") + "\n"
    }

    // MARK: the trace

    static func describe(_ trace: RouteRecorder, uri: [UInt8], server: VirtualServer, say: (String) -> Void) {
        var searchURI = uri
        // The URI each search ran with: the request's, then each rewrite's.
        var pendingURI: [UInt8]? = nil
        for e in trace.events {
            switch e {
            case .rewritePhase(let loc):
                say("rewrite phase, \(loc.map { describe($0) } ?? "server level"):")
            case .rewriteStep(let origin, let detail, let u, let args):
                say("  \(origin.location): \(text(origin.text)): \(text(detail)) -> uri \(text(u))" + (args.isEmpty ? "" : "?\(text(args))"))
                pendingURI = u
            case .enteredIf:
                break
            case .searchAgain(let u, let left):
                say("  the URI changed: locations are searched again with \(text(u)) (\(left) URI changes left)")
                searchURI = u
            case .searchLevel(let parent):
                if let p = pendingURI { searchURI = p; pendingURI = nil }
                if let parent {
                    say("  nested locations of \(describe(parent)):")
                } else {
                    say("location search for \(text(searchURI)) (nginx's order: exact =, longest prefix, then regexes in order unless that prefix is ^~):")
                }
            case .exactMatch(let l):
                say("    exact: \(describe(l)) equals the URI: the search ends here")
            case .longestPrefix(let l, let level):
                let tree = level?.nested ?? server.locations
                if tree.locations.contains(where: { if case .exact = $0.match { true } else { false } }) {
                    say("    exact: no location = equals the URI")
                }
                let regexes = tree.locations.contains { if case .regex = $0.match { true } else { false } }
                if let l {
                    let noRegex = if case .prefixNoRegex = l.match { true } else { false }
                    say("    longest prefix: \(describe(l))" + (noRegex ? " (^~: no regex is tried)" : regexes ? " (remembered; the regexes are tried first)" : ""))
                } else {
                    say("    longest prefix: none matches")
                }
            case .regexesSkipped(_, let because):
                say("    regexes skipped: the longest prefix \(describe(because)) is ^~")
            case .regexTried(let l, let matched):
                say("    regex: \(describe(l)): " + (matched ? "matches: the search ends here" : "no match"))
            case .chosen(let l):
                say("  chosen: " + (l.map { describe($0) } ?? "no location matches: the server's own settings"))
            case .autoRedirect(let l):
                say("  \(text(searchURI)) + \"/\" is \(describe(l)), which has proxy_pass: redirect 301")
            case .note(let n):
                say("  \(n)")
            }
        }
    }

    // MARK: the access phase

    static func describeAccess(conn: ClientConnection, table: RoutingTable, index: DirectiveIndex, where configuration: String, say: (String) -> Void) {
        let s = conn.ex.location.settings
        let blk = block(conn)
        let phase = s.accessPhase
        var any = false
        if let rules = s.accessRules {
            any = true
            let ok = conn.allowed(rules)
            let matched = rules.first { r in r.network.map { $0.contains(conn.clientAddress.ipBytes) } ?? true }
            let which = matched.map { "\($0.allow ? "allow" : "deny") \($0.network.map { "\($0)" } ?? "all")" } ?? "no rule matches"
            say("access: allow/deny\(index.at(["allow", "deny"], from: blk)): \(which): client \(conn.clientAddress.ip) is \(ok ? "allowed" : phase.satisfyAny == true ? "denied by this check" : "denied (403)")")
        }
        if let rules = phase.limitReq, !rules.isEmpty {
            any = true
            for r in rules where r.zone < table.limitZones.count {
                let z = table.limitZones[r.zone]
                let key = String(decoding: conn.evaluate(z.key), as: UTF8.self)
                say("access: limit_req\(index.at(["limit_req"], from: blk)) zone=\(z.name) burst=\(r.burst / 1000) (zone at \(z.location.map { "\($0)" } ?? "?"), key \"\(key)\", rate \(Double(z.rate) / 1000) r/s)")
            }
        }
        if let rules = phase.limitConn, !rules.isEmpty {
            any = true
            for r in rules where r.zone < table.limitZones.count {
                let z = table.limitZones[r.zone]
                say("access: limit_conn\(index.at(["limit_conn"], from: blk)) zone=\(z.name) (zone at \(z.location.map { "\($0)" } ?? "?"))")
            }
        }
        if case .some(.some(let realm)) = phase.authBasic {
            any = true
            say("access: auth_basic\(index.at(["auth_basic"], from: blk)) \"\(String(decoding: conn.evaluate(realm), as: UTF8.self))\""
                + (phase.authBasicUserFile.map { ", user file \(String(decoding: conn.evaluate($0), as: UTF8.self))" } ?? ""))
        }
        if case .some(.some(let uri)) = phase.authRequest {
            any = true
            say("access: auth_request\(index.at(["auth_request"], from: blk)) \(text(uri)) (a subrequest decides: 2xx allows, 401/403 refuse)")
        }
        if any && phase.satisfyAny == true { say("access: satisfy any (one passing check is enough)") }
        if !any { say("access: no rules") }
    }

    // MARK: the content phase

    static func describeHandler(conn: ClientConnection, table: RoutingTable, index: DirectiveIndex, say: (String) -> Void, depth: Int) {
        let ex = conn.ex!
        let blk = block(conn)
        let loc = ex.location
        let here = loc === ex.server.fallback ? "the server's own settings (\(ex.server.location))" : describe(loc)
        if let mirrors = loc.settings.mirrors, !mirrors.isEmpty, !loc.handler.isReturn {
            say("mirror\(index.at(["mirror"], from: blk)): \(mirrors.map(text).joined(separator: ", ")) (background subrequests with the request's arguments, answers discarded; request body \(!loc.settings.resolved.mirrorRequestBody ? "not sent" : "read first and sent"))")
        }
        switch loc.handler {
        case .return(let r):
            say("handler: return, in \(here)")
            describeReturn(r, conn: conn, say: say)
        case .proxy(var t):
            let directive = t.kind == .http ? "proxy_pass" : "\(t.kind.scheme)_pass"
            let written = index.at([directive], from: blk)
            var madeURL: String? = nil
            if t.variableURLIndex != nil {
                switch conn.resolveVariableTarget(t) {
                case .none: say("handler: \(directive)\(written) with variables, in \(here): no URL"); return
                case .failed(let code, let message): say("handler: \(directive)\(written) with variables, in \(here): \(message): answer \(code)"); return
                case .group(let resolved):
                    if let k = t.variableURLIndex, k < table.variableProxyURLs.count {
                        madeURL = "  with variables: \(table.variableProxyURLs[k].source) is \(text(conn.evaluate(table.variableProxyURLs[k]))), an upstream group"
                    }
                    t = resolved
                case .name(_, let host, let port, _):
                    say("handler: \(directive)\(written) with variables, in \(here) -> \(host):\(port), a name no upstream group has: resolved through `resolver` when a request comes (502 without one)")
                    return
                case .address(let resolved, let address, _):
                    say("handler: \(directive)\(written) with variables, in \(here) -> address \(address) (no upstream group has this name)")
                    if let k = t.variableURLIndex, k < table.variableProxyURLs.count {
                        say("  \(table.variableProxyURLs[k].source) is \(text(conn.evaluate(table.variableProxyURLs[k])))")
                    }
                    ex.target = resolved
                    describeUpstreamRequest(resolved, conn: conn, table: table, index: index, say: say)
                    return
                }
            }
            let g = table.upstreams[t.upstream]
            if g.implicit {
                say("handler: \(directive) \(t.hostHeader)\(written), in \(here): address(es) \(g.peers.map(\.name).joined(separator: ", "))")
                describePeers(g, say: say)
            } else {
                say("handler: \(directive)\(written), in \(here) -> upstream \"\(g.name)\" (\(g.location)), balancing: \(policy(g.policy, conn: conn))")
                if let madeURL { say(madeURL) }
                describePeers(g, say: say)
            }
            ex.target = t
            describeUpstreamRequest(t, conn: conn, table: table, index: index, say: say)
        case .static:
            let s = loc.settings
            let rootText: String = switch s.docRoot {
            case .root(let t)?: "root \(String(decoding: conn.evaluate(t), as: UTF8.self))\(index.at(["root", "alias"], from: blk))"
            case .alias(let t, _)?: "alias \(String(decoding: conn.evaluate(t), as: UTF8.self))\(index.at(["root", "alias"], from: blk))"
            case nil: "root html (the default, under the prefix)"
            }
            say("handler: static files, in \(here), \(rootText)")
            if let tf = ex.server.tryFiles(for: loc) {
                describeTryFiles(tf, conn: conn, table: table, index: index, say: say, depth: depth)
                return
            }
            describeStaticURI(ex.uri, allowIndex: true, conn: conn, index: index, say: say)
        case .status: say("handler: status page, in \(here)")
        case .metrics: say("handler: metrics, in \(here)")
        case .api: say("handler: runtime API, in \(here)")
        case .stubStatus: say("handler: stub_status, in \(here)")
        }
    }

    static func describeTryFiles(_ tf: TryFiles, conn: ClientConnection, table: RoutingTable, index: DirectiveIndex, say: (String) -> Void, depth: Int) {
        let ex = conn.ex!
        say("  try_files \(tf.entries.joined(separator: " "))\(index.at(["try_files"], from: block(conn))):")
        let trace = RouteRecorder()
        let choice = conn.tryFilesChoice(tf, trace: trace)
        for case .note(let n) in trace.events { say("    \(n)") }
        switch choice {
        case .file(let candidate, let directory):
            say("  serves \(text(candidate))" + (directory ? " (a directory: its index)" : ""))
            ex.uri = candidate
            describeStaticURI(candidate, allowIndex: directory, conn: conn, index: index, say: say)
        case .code(let code):
            say("  none exists: answer \(code)")
        case .named(let name):
            guard let named = ex.server.named[name] else { say("  none exists: named location @\(name) does not exist: answer 500"); return }
            ex.uriChangesLeft -= 1 // as ClientConnection.internalRedirect
            guard ex.uriChangesLeft > 0 else { say("  answer: 500: rewrite or internal redirection cycle"); return }
            say("  none exists: internal redirect to \(describe(named))")
            ex.location = named
            if depth < 3 { describeHandler(conn: conn, table: table, index: index, say: say, depth: depth + 1) }
        case .uri(let dest):
            say("  none exists: internal redirect to \(text(dest))")
            ex.uriChangesLeft -= 1 // as ClientConnection.internalRedirect
            guard ex.uriChangesLeft > 0 else { say("  answer: 500: rewrite or internal redirection cycle"); return }
            let parts = dest.split(separator: UInt8(ascii: "?"), maxSplits: 1, omittingEmptySubsequences: false)
            ex.uri = Array(parts.first ?? [])
            conn.rewriteState.args = parts.count > 1 ? Array(parts[1]) : []
            let search = RouteRecorder()
            let found = ex.uri.withUnsafeBytes { ex.server.locations.find($0, trace: search).location }
            describe(search, uri: ex.uri, server: ex.server, say: say)
            ex.location = found ?? ex.server.fallback
            guard depth < 3 else { return }
            if case .static = ex.location.handler, ex.location.tryFiles == tf {
                say("handler: static files, in \(describe(ex.location))")
                describeStaticURI(ex.uri, allowIndex: true, conn: conn, index: index, say: say)
                return
            }
            describeHandler(conn: conn, table: table, index: index, say: say, depth: depth + 1)
        }
    }

    /// What the static module does with `u` (StaticFiles.swift's serveStaticURI and serveURI).
    static func describeStaticURI(_ u: [UInt8], allowIndex: Bool, conn: ClientConnection, index: DirectiveIndex, say: (String) -> Void) {
        guard conn.req.method == .get || conn.req.method == .head else {
            say("  answer: 405 (the static module serves GET and HEAD only)")
            return
        }
        guard let path = conn.filePath(for: u) else { say("  answer: 404 (alias would splice \"..\")"); return }
        var st = stat()
        guard conn.statPath(path, &st) else {
            say("  file \(text(path)): not found: answer 404")
            return
        }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            if u.last != UInt8(ascii: "/") {
                say("  file \(text(path)): a directory: redirect 301 to \(text(u))/")
                return
            }
            guard allowIndex else { say("  \(text(path)): a directory: answer 404"); return }
            for idx in conn.settings.resolved.index {
                let name = conn.evaluate(idx)
                var ist = stat()
                let found = conn.statPath(path + name, &ist) && (ist.st_mode & S_IFMT) == S_IFREG
                say("  index \(text(path + name))\(index.at(["index"], from: block(conn), fallback: " (default)")): \(found ? "exists: served" : "not found")")
                if found { return }
            }
            say(conn.settings.resolved.autoindex ? "  no index file: autoindex lists the directory" : "  no index file: answer 403")
            return
        }
        say("  file \(text(path)): " + ((st.st_mode & S_IFMT) == S_IFREG ? "exists: served" : "not a regular file: answer 404"))
    }

    static func describeUpstreamRequest(_ t: ProxyTarget, conn: ClientConnection, table: RoutingTable, index: DirectiveIndex, say: (String) -> Void) {
        let ex = conn.ex!
        let blk = block(conn)
        if t.kind == .http {
            var uri: [UInt8] = []
            conn.buildUpstreamURI(t, into: &uri)
            say("  request sent: \(conn.req.method == .get ? "GET" : String(decoding: conn.head.readableBytes[conn.req.methodRange], as: UTF8.self)) \(text(uri))"
                + (t.uri == nil ? " (proxy_pass without a URI: the request's own)" : " (the URI part \(t.uri!) replaces the location's match)"))
        }
        if let name = ex.location.settings.resolved.cacheZone {
            let zone = table.cacheZones.first { $0.name == name }
            let key = conn.evaluate(ex.location.settings.resolved.proxyCacheKey)
            say("  cache: proxy_cache\(index.at(["proxy_cache"], from: blk)) zone \"\(name)\"" + (zone.map { " (\($0.location), \($0.path))" } ?? "")
                + ", key \"\(text(key))\" (proxy_cache_key \(ex.location.settings.resolved.proxyCacheKey.source)\(index.at(["proxy_cache_key"], from: blk, fallback: ", the default")))")
        }
    }

    static func describePeers(_ g: UpstreamGroup, say: (String) -> Void) {
        for p in g.peers {
            var flags = ["weight=\(p.weight)", "max_fails=\(p.maxFails)"]
            if p.maxConns > 0 { flags.append("max_conns=\(p.maxConns)") }
            if p.backup { flags.append("backup") }
            if p.down { flags.append("down") }
            say("  peer \(p.name) (\(p.address)) \(flags.joined(separator: " "))")
        }
        for d in g.dynamic { say("  peer \(d.name) resolve (addresses from DNS at run time)") }
        if let s = g.service { say("  peers of stack service \"\(s)\"") }
    }

    static func policy(_ p: UpstreamGroup.Policy, conn: ClientConnection) -> String {
        switch p {
        case .roundRobin: "weighted round-robin"
        case .leastConn: "least_conn"
        case .ipHash: "ip_hash (client \(conn.clientAddress.ip))"
        case .hash(let t, let consistent): "hash \(t.source)\(consistent ? " consistent" : "") (key \"\(text(conn.evaluate(t)))\")"
        case .random(let two): two ? "random two" : "random"
        }
    }

    static func describeReturn(_ r: ReturnAction, conn: ClientConnection, say: (String) -> Void) {
        if r.code == 444 {
            say("answer: 444: the connection is closed without a response")
        } else if [301, 302, 303, 307, 308].contains(r.code), let t = r.text {
            say("answer: \(r.code) redirect, Location: \(text(conn.absoluteLocation(conn.evaluate(t))))")
        } else if let t = r.text {
            say("answer: \(r.code) with body \"\(text(conn.evaluate(t)))\"")
        } else {
            say("answer: \(r.code)" + (r.code < 400 ? " with an empty body" : " (error page)"))
        }
    }

    // MARK: names

    /// The block whose settings the request has: its location, or the server.
    static func block(_ conn: ClientConnection) -> SourceLocation {
        conn.ex.location === conn.ex.server.fallback ? conn.ex.server.location : conn.ex.location.location
    }

    static func describe(_ s: VirtualServer) -> String {
        "server \(s.names.map { $0.isEmpty ? "\"\"" : $0 }.joined(separator: " ")) (\(s.location))"
    }

    static func describe(_ l: Location) -> String {
        let m = switch l.match {
        case .exact(let p): "location = \(p)"
        case .prefix(let p): "location \(p)"
        case .prefixNoRegex(let p): "location ^~ \(p)"
        case .regex(let p, let caseless): "location \(caseless ? "~*" : "~") \(p)"
        case .named(let n): "location @\(n)"
        }
        // An `if` block of a location: its implicit location (id -1, the `if`'s FILE:LINE).
        if l.id == -1, !l.pattern.isEmpty { return "the if block (\(l.location)) of \(m)" }
        return "\(m) (\(l.location))"
    }

    /// Bytes for the terminal: control characters escaped (`\\n`, `\\xHH`).
    static func text<C: Collection<UInt8>>(_ b: C) -> String {
        let hex = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for c in b {
            switch c {
            case 0x0A: out += Array("\\n".utf8)
            case 0x0D: out += Array("\\r".utf8)
            case 0x09: out += Array("\\t".utf8)
            case 0..<0x20, 0x7F: out += [UInt8(ascii: "\\"), UInt8(ascii: "x"), hex[Int(c >> 4)], hex[Int(c & 15)]]
            default: out.append(c)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func text(_ s: String) -> String { text(Array(s.utf8)) }
}

/// Where directives were written, for the lines of `--explain` that name a setting rather than a
/// block: the configuration parsed again from the texts lb read (includes too), directives listed
/// by the block that holds them. A setting is found in its block or the nearest enclosing one,
/// where inheritance would find it.
struct DirectiveIndex {
    struct Entry {
        var name: String
        var args: [String]
        var location: SourceLocation
    }

    /// The main context's key.
    static let top = SourceLocation(file: "", line: 0, column: 0)
    private var children: [SourceLocation: [Entry]] = [:]
    private var parent: [SourceLocation: SourceLocation] = [:]

    /// The files lb read, served from memory (includes resolve among them).
    private struct ReadFiles: ConfigFileSystem {
        var files: [String: String]
        func read(_ path: String) throws(ConfigError) -> String {
            guard let t = files[path] else { throw ConfigError("open() \"\(path)\" failed") }
            return t
        }
        func glob(_ pattern: String) -> [String] { files.keys.filter { fnmatch(pattern, $0, FNM_PATHNAME) == 0 }.sorted() }
        func canonical(_ path: String) -> String { path }
    }

    init(table: RoutingTable) {
        guard let main = table.files.first else { return }
        var byPath: [String: String] = [:]
        for f in table.files { byPath[f.path] = f.text }
        var parser = Parser(fileSystem: ReadFiles(files: byPath), includeBase: directoryOf(main.path))
        guard var tree = try? parser.parseText(main.text, file: main.path) else { return }
        var pending: [(block: SourceLocation, directives: [Directive])] = [(Self.top, tree)]
        while let (block, directives) = pending.popLast() {
            for d in directives {
                children[block, default: []].append(Entry(name: d.name, args: d.values, location: d.location))
                if let inner = d.block {
                    parent[d.location] = block
                    pending.append((d.location, inner))
                }
            }
        }
        pending = []
        Directive.dismantle(&tree)
    }

    /// The first directive named one of `names` in `block` or the nearest block around it.
    func nearest(_ names: Set<String>, from block: SourceLocation) -> Entry? {
        var b: SourceLocation? = block
        while let current = b {
            if let e = children[current]?.first(where: { names.contains($0.name) }) { return e }
            b = parent[current]
        }
        return nil
    }

    /// ` at FILE:LINE` of that directive, or `fallback` when none is written.
    func at(_ names: Set<String>, from block: SourceLocation, fallback: String = "") -> String {
        nearest(names, from: block).map { " at \($0.location)" } ?? fallback
    }
}
