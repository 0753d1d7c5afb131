import Glibc

/// Freezing the builders into the immutable `RoutingTable`, with the checks that need the whole
/// configuration (unknown cache zones, empty upstreams, listen conflicts, undefined variables).
extension Compiler {
    func finish() throws -> RoutingTable {
        for (z, loc) in cacheReferences where !cacheZones.contains(where: { $0.name == z }) {
            throw ConfigError("\"proxy_cache\" zone \"\(z)\" is unknown", at: loc)
        }
        for (m, loc) in matchReferences where matches[m] == nil {
            throw ConfigError("match \"\(m)\" not found", at: loc)
        }
        for (name, loc) in usedVariables where !definedVariables.contains(name) {
            throw ConfigError("unknown \"\(name)\" variable", at: loc)
        }
        try checkLimitZones()
        let stack = try buildStack()
        var groups = try buildUpstreams(stack)
        var groupIndex: [String: Int] = [:]
        // Keyed by the lower-cased name: nginx matches upstream names without regard to case.
        for (i, g) in groups.enumerated() { groupIndex[RoutingTable.upstreamKey(g.name)] = i }

        var nextID = 0
        var vservers: [VirtualServer] = []
        for (si, sb) in servers.enumerated() {
            var ss = sb.settings.s
            ss.inherit(from: httpSettings.s)
            let tree = LocationTree()
            var named: [String: Location] = [:]
            for lb in sb.locations {
                let loc = try buildLocation(lb, parent: ss, groups: &groups, index: &groupIndex, nextID: &nextID)
                if case .named(let n) = lb.match { named[n] = loc; continue }
                _ = tree.add(loc)
            }
            tree.freeze()
            let fallback = Location(match: .prefix(""), regex: nil, handler: .static, settings: ss, tryFiles: sb.tryFiles,
                                    internalOnly: false, nested: LocationTree(), location: sb.location, autoRedirect: false, id: -1)
            // A server level with only `return` keeps its direct path; anything else is a program.
            var serverProgram = try finishRewrite(sb.rewrite, parent: ss, parentHandler: .static) { _, pp in
                throw ConfigError("\"proxy_pass\" directive is not allowed here", at: pp.location)
            }
            let serverReturn = sb.returnAction ?? serverProgram?.onlyReturn
            if serverProgram?.onlyReturn != nil { serverProgram = nil }
            vservers.append(VirtualServer(index: si, names: sb.names.isEmpty ? [""] : sb.names, location: sb.location, settings: ss,
                                          serverReturn: serverReturn, serverTryFiles: sb.tryFiles, locations: tree,
                                          named: named, fallback: fallback, rewrite: serverProgram))
        }
        var listeners = try buildListeners()
        let tls = try buildTLS(&listeners)
        let main = MainSettings(workerProcesses: workerProcesses, pid: pid, errorLogs: mainErrorLogs,
                                workerConnections: workerConnections, daemon: daemon, masterProcess: masterProcess,
                                user: user, workerRlimitNofile: workerRlimitNofile,
                                workerShutdownTimeoutMs: workerShutdownTimeoutMs, prefix: prefix)
        return RoutingTable(main: main, listeners: listeners, servers: vservers, upstreams: groups, cacheZones: cacheZones,
                            logFormats: logFormats, maps: maps, stack: stack, files: files,
                            usesResponseHeaderVariables: usesResponseHeaderVariables, matches: matches, tls: tls,
                            limitZones: limitZones, setVariables: setVariables, variableProxyURLs: variableProxyURLs)
    }

    /// A server's settings merged with the http level's (what its listen addresses need).
    func serverSettings(_ si: Int) -> HTTPSettings {
        var ss = servers[si].settings.s
        ss.inherit(from: httpSettings.s)
        return ss
    }

    private func buildStack() throws -> StackSpec? {
        guard sawStack else { return nil }
        var used: [Int: String] = [:]
        for s in services {
            if let (path, loc) = s.socket {
                if s.basePort != nil { throw ConfigError("service \"\(s.name)\" has both \"port\" and \"socket\"", at: loc) }
                if s.scale > 1 && !path.contains("$instance") {
                    throw ConfigError("the \"socket\" of service \"\(s.name)\" needs \"$instance\" for \"scale\" \(s.scale)", at: loc)
                }
                for i in 0..<s.scale {
                    let one = path.replacing("$instance", with: "\(i + 1)")
                    guard HostPort.unix(Substring(one)) != nil else { throw ConfigError("too long path in the unix domain socket \"\(one)\"", at: loc) }
                }
            }
            guard let base = s.basePort else { continue }
            for p in base..<(base + s.scale) {
                if let other = used[p] { throw ConfigError("port \(p) of service \"\(s.name)\" is already used by service \"\(other)\"", at: s.location) }
                used[p] = s.name
            }
        }
        return StackSpec(services: services.map {
            ServiceSpec(name: $0.name, command: $0.command, scale: $0.scale, basePort: $0.basePort, environment: $0.environment,
                        ready: $0.ready, directory: $0.directory, location: $0.location, socket: $0.socket?.path)
        })
    }

    private func buildUpstreams(_ stack: StackSpec?) throws -> [UpstreamGroup] {
        var out: [UpstreamGroup] = []
        for u in upstreams {
            var peers = u.peers
            if let (path, loc) = u.statePath, fileExists(path) {
                peers = try readStateFile(path, upstream: u.name, at: loc)
            }
            if let svc = u.service {
                guard let s = stack?.services.first(where: { $0.name == svc.name }) else {
                    throw ConfigError("unknown service \"\(svc.name)\" in upstream \"\(u.name)\"", at: svc.location)
                }
                // `socket PATH`: the instances' unix-domain sockets.
                for i in 0..<(s.socket != nil ? s.scale : 0) {
                    let hp = HostPort.unix(Substring(s.socketPath(instance: i)!))!
                    peers.append(Peer(address: hp, name: hp.host, weight: svc.weight, maxFails: svc.maxFails,
                                      failTimeoutMs: svc.failTimeoutMs, maxConns: 0, backup: false, down: false))
                }
                guard let base = s.basePort ?? (s.socket != nil ? 0 : nil) else {
                    throw ConfigError("service \"\(svc.name)\" has no \"port\" for upstream \"\(u.name)\"", at: svc.location)
                }
                for i in 0..<(s.socket != nil ? 0 : s.scale) {
                    peers.append(Peer(address: HostPort(host: "127.0.0.1", port: base + i), name: "127.0.0.1:\(base + i)",
                                      weight: svc.weight, maxFails: svc.maxFails, failTimeoutMs: svc.failTimeoutMs,
                                      maxConns: 0, backup: false, down: false))
                }
            }
            if peers.isEmpty && u.dynamic.isEmpty { throw ConfigError("no servers are inside upstream", at: u.location) }
            let resolverSpec = try upstreamResolver(u)
            switch u.policy {
            case .ipHash, .hash, .random:
                if let at = u.slowStartLocation {
                    throw ConfigError("balancing method does not support \"slow_start\" in upstream \"\(u.name)\"", at: at)
                }
                if peers.contains(where: \.backup) || u.dynamic.contains(where: \.backup) {
                    throw ConfigError("balancing method does not support \"backup\" servers in upstream \"\(u.name)\"", at: u.policyLocation ?? u.location)
                }
            default: break
            }
            var group = UpstreamGroup(name: u.name, peers: peers, policy: u.policy, keepalive: u.keepalive,
                                      keepaliveTimeoutMs: u.keepaliveTimeoutMs, keepaliveRequests: u.keepaliveRequests,
                                      location: u.location, implicit: false, service: u.service?.name, healthCheck: u.healthCheck,
                                      statePath: u.statePath?.0, dynamic: u.dynamic, resolver: resolverSpec, zone: u.zone)
            group.keepaliveTimeMs = u.keepaliveTimeMs
            out.append(group)
        }
        return out
    }

    /// Freezes a location and its nested ones, depth first with an explicit stack (nesting has no
    /// small bound). Ids are given in pre-order; a location is built after its nested ones.
    private func buildLocation(_ root: LocationBuilder, parent: HTTPSettings, groups: inout [UpstreamGroup],
                               index: inout [String: Int], nextID: inout Int) throws -> Location {
        struct Pending {
            let builder: LocationBuilder
            let settings: HTTPSettings
            let id: Int
            var nested = LocationTree()
            var nextChild = 0
        }
        func start(_ b: LocationBuilder, inheriting parent: HTTPSettings) -> Pending {
            var s = b.settings.s
            s.inherit(from: parent)
            defer { nextID += 1 }
            return Pending(builder: b, settings: s, id: nextID)
        }
        var stack = [start(root, inheriting: parent)]
        while true {
            let top = stack.count - 1
            let b = stack[top].builder
            if stack[top].nextChild < b.children.count {
                let child = b.children[stack[top].nextChild]
                stack[top].nextChild += 1
                stack.append(start(child, inheriting: stack[top].settings))
                continue
            }
            let p = stack.removeLast()
            p.nested.freeze()
            let loc = try finishLocation(p.builder, settings: p.settings, nested: p.nested, id: p.id, groups: &groups, index: &index)
            if stack.isEmpty { return loc }
            _ = stack[stack.count - 1].nested.add(loc)
        }
    }

    private func finishLocation(_ b: LocationBuilder, settings: HTTPSettings, nested: LocationTree, id: Int,
                                groups: inout [UpstreamGroup], index: inout [String: Int]) throws -> Location {
        var handler: Handler = .static
        var s = settings
        var autoRedirect = false
        // A location whose only rewrite directive is `return` also answers it as its handler
        // (error_page and try_files reach it that way); the program runs it in the rewrite phase.
        if let r = b.returnAction ?? b.rewrite.flatMap({ RewriteProgram(ops: $0.ops).onlyReturn }) {
            handler = .return(r)
        } else if let special = b.special {
            handler = special
        } else if let pp = b.proxyPass, let app = try appServerTarget(pp, for: b, settings: s, groups: &groups, index: &index) {
            (handler, s) = app
        } else if let pp = b.proxyPass {
            var target = try proxyTarget(pp.url, at: pp.location, for: b, groups: &groups, index: &index)
            // With variables the scheme is known per request: the context is ready for https.
            if pp.url.hasPrefix("https://") || target.variableURLIndex != nil { target.tls = try UpstreamTLS.shared(s.proxySSL, at: pp.location) }
            handler = .proxy(target)
            if case .prefix(let p) = b.match, p.hasSuffix("/"), p.count > 1 { autoRedirect = true }
            if case .prefixNoRegex(let p) = b.match, p.hasSuffix("/"), p.count > 1 { autoRedirect = true }
        }
        let program = try finishRewrite(b.rewrite, parent: s, parentHandler: handler) { ib, pp in
            var target = try proxyTarget(pp.url, at: pp.location, for: ib, groups: &groups, index: &index)
            if pp.url.hasPrefix("https://") || target.variableURLIndex != nil {
                var si = ib.settings.s
                si.inherit(from: s)
                target.tls = try UpstreamTLS.shared(si.proxySSL, at: pp.location)
            }
            return target
        }
        return Location(match: b.match, regex: b.regex, handler: handler, settings: s, tryFiles: b.tryFiles,
                        internalOnly: b.internalOnly, nested: nested, location: b.location, autoRedirect: autoRedirect, id: id,
                        rewrite: program)
    }

    func proxyTarget(_ url: String, at loc: SourceLocation, for b: LocationBuilder, groups: inout [UpstreamGroup],
                             index: inout [String: Int]) throws -> ProxyTarget {
        let tls = url.hasPrefix("https://")
        if url.contains("$") {
            // Resolved per request (RewriteProxy.swift in LBCore); a URI part is allowed anywhere.
            variableProxyURLs.append(try Template(parsing: url))
            return ProxyTarget(upstream: -variableProxyURLs.count, hostHeader: "", port: 80, uri: nil)
        }
        guard tls || url.hasPrefix("http://") else { throw ConfigError("invalid URL prefix in \"\(url)\"", at: loc) }
        let defaultPort = tls ? 443 : 80
        let rest = url.dropFirst(tls ? 8 : 7)
        // `http://unix:PATH` and `http://unix:PATH:/uri` (nginx's ngx_parse_unix_domain_url: the
        // path ends at the next colon).
        let unixEnd = rest.hasPrefix("unix:") ? rest.dropFirst(5).firstIndex(of: ":") ?? rest.endIndex : nil
        let slash = unixEnd.map { $0 == rest.endIndex ? nil : rest.index(after: $0) } ?? rest.firstIndex(of: "/")
        let hostPart = String(unixEnd.map { rest[..<$0] } ?? slash.map { rest[..<$0] } ?? rest)
        let uri = slash.map { String(rest[$0...]) }
        if let unixEnd {
            let path = rest[rest.index(rest.startIndex, offsetBy: 5)..<unixEnd]
            guard let hp = HostPort.unix(path) else {
                throw ConfigError("\(path.isEmpty ? "no" : "too long") path in the unix domain socket in upstream \"\(rest)\"", at: loc)
            }
            return try unixProxyTarget(hp, uri: uri, at: loc, for: b, groups: &groups, index: &index)
        }
        if uri != nil {
            switch b.match {
            case .regex, .named:
                throw ConfigError("\"proxy_pass\" cannot have URI part in location given by regular expression, or inside named location, or inside \"if\" statement, or inside \"limit_except\" block", at: loc)
            default: break
            }
        }
        guard let hp = HostPort.parse(hostPart, portOnlyAllowed: false), hp.host != "*" else {
            throw ConfigError("invalid host in \"\(url)\"", at: loc)
        }
        if hp.port == nil, let i = index[hp.host.lowercased()], !groups[i].implicit {
            return ProxyTarget(upstream: i, hostHeader: hp.host, port: defaultPort, uri: uri)
        }
        let port = hp.port ?? defaultPort
        let key = "\(hp.host):\(port)"
        let header = port == defaultPort ? hp.description : HostPort(host: hp.host, port: port).description
        if let i = index[key.lowercased()] { return ProxyTarget(upstream: i, hostHeader: header, port: port, uri: uri) }
        let addrs = isIPLiteral(hp.host) ? [hp.host] : resolver.resolve(hp.host)
        guard !addrs.isEmpty else { throw ConfigError("host not found in upstream \"\(hostPart)\"", at: loc) }
        let peers = addrs.map {
            Peer(address: HostPort(host: $0, port: port), name: hostPart, weight: 1, maxFails: 1, failTimeoutMs: 10_000,
                 maxConns: 0, backup: false, down: false)
        }
        groups.append(UpstreamGroup(name: key, peers: peers, policy: .roundRobin, keepalive: nil, keepaliveTimeoutMs: 60_000,
                                    keepaliveRequests: 1000, location: loc, implicit: true, service: nil))
        index[key.lowercased()] = groups.count - 1
        return ProxyTarget(upstream: groups.count - 1, hostHeader: header, port: port, uri: uri)
    }

    /// `proxy_pass http://unix:PATH[:/uri]`: an implicit group of one unix-domain peer, sent
    /// `Host: localhost` as nginx does.
    private func unixProxyTarget(_ hp: HostPort, uri: String?, at loc: SourceLocation, for b: LocationBuilder,
                                 groups: inout [UpstreamGroup], index: inout [String: Int]) throws -> ProxyTarget {
        if uri != nil {
            switch b.match {
            case .regex, .named:
                throw ConfigError("\"proxy_pass\" cannot have URI part in location given by regular expression, or inside named location, or inside \"if\" statement, or inside \"limit_except\" block", at: loc)
            default: break
            }
        }
        let key = hp.host
        if let i = index[key] { return ProxyTarget(upstream: i, hostHeader: "localhost", port: 80, uri: uri) }
        let peer = Peer(address: hp, name: hp.host, weight: 1, maxFails: 1, failTimeoutMs: 10_000, maxConns: 0, backup: false, down: false)
        groups.append(UpstreamGroup(name: key, peers: [peer], policy: .roundRobin, keepalive: nil, keepaliveTimeoutMs: 60_000,
                                    keepaliveRequests: 1000, location: loc, implicit: true, service: nil))
        index[key] = groups.count - 1
        return ProxyTarget(upstream: groups.count - 1, hostHeader: "localhost", port: 80, uri: uri)
    }

    private func buildListeners() throws -> [Listener] {
        struct Entry {
            var address: HostPort
            var servers: [Int] = []
            var defaultServer: Int?
            var options: ListenSpec?
            var ssl: SourceLocation?
            var proxyProtocol = false
            var http2 = false
        }
        var entries: [Entry] = []
        var byAddr: [HostPort: Int] = [:]
        for (si, s) in servers.enumerated() {
            let listens = s.listens.isEmpty
                ? [ListenSpec(address: HostPort(host: "0.0.0.0", port: 80), defaultServer: false, reuseport: false, backlog: nil, ipv6only: nil, location: s.location)]
                : s.listens
            for l in listens {
                let ei: Int
                if let i = byAddr[l.address] { ei = i } else {
                    entries.append(Entry(address: l.address))
                    ei = entries.count - 1
                    byAddr[l.address] = ei
                }
                if entries[ei].servers.contains(si) {
                    throw ConfigError("duplicate listen \(l.address)", at: l.location)
                }
                entries[ei].servers.append(si)
                if l.ssl && entries[ei].ssl == nil { entries[ei].ssl = l.location }
                if l.proxyProtocol { entries[ei].proxyProtocol = true }
                if l.http2 { entries[ei].http2 = true }
                if l.defaultServer {
                    if entries[ei].defaultServer != nil { throw ConfigError("a duplicate default server for \(l.address)", at: l.location) }
                    entries[ei].defaultServer = si
                }
                if l.hasOptions {
                    if entries[ei].options != nil { throw ConfigError("duplicate listen options for \(l.address)", at: l.location) }
                    entries[ei].options = l
                }
            }
        }
        var out: [Listener] = []
        for e in entries {
            var names = ServerNameTable()
            var seen: Set<String> = []
            for si in e.servers {
                for n in servers[si].names {
                    let key = n.lowercased()
                    if key.isEmpty { continue }
                    if seen.contains(key) {
                        warnings.append(ConfigError("conflicting server name \"\(n)\" on \(e.address), ignored", at: servers[si].location))
                        continue
                    }
                    seen.insert(key)
                    do { try names.add(n, server: si) } catch { throw ConfigError(error.message, at: servers[si].location) }
                }
            }
            let o = e.options
            // `ssl on;` in the default server makes the address TLS (nginx 1.22's `sscf->enable`
            // of the connection's default server).
            var ssl = e.ssl
            if ssl == nil {
                let t = serverTLS(e.defaultServer ?? e.servers[0])
                if t.enabled == true { ssl = t.enabledLocation }
            }
            out.append(Listener(address: e.address, reuseport: o?.reuseport ?? false, backlog: o?.backlog ?? 511,
                                ipv6only: o?.ipv6only ?? true, defaultServer: e.defaultServer ?? e.servers[0], names: names,
                                serverCount: e.servers.count, sslLocation: ssl, servers: e.servers,
                                http2: e.http2,
                                http2Cleartext: ssl == nil && (e.http2 || serverSettings(e.defaultServer ?? e.servers[0]).http2 == true),
                                proxyProtocol: e.proxyProtocol))
        }
        return out
    }

    /// A server's TLS settings with the http level's.
    private func serverTLS(_ si: Int) -> TLSSettings {
        var t = servers[si].settings.tls
        t.inherit(from: httpSettings.tls)
        return t
    }

    /// Builds a TLS context for every server on a `listen … ssl` address and every server with
    /// certificates (so that `-t` checks them all, as nginx does), then gives each TLS listener
    /// its SNI table. Returns the contexts by server index.
    private func buildTLS(_ listeners: inout [Listener]) throws -> [TLSContext?] {
        var onTLSPort = Set<Int>()
        for l in listeners where l.sslLocation != nil { onTLSPort.formUnion(l.servers) }
        var contexts: [TLSContext?] = Array(repeating: nil, count: servers.count)
        for (si, sb) in servers.enumerated() {
            var t = serverTLS(si)
            if t.enabled == true && (t.certificates ?? []).isEmpty, let at = t.enabledLocation {
                throw ConfigError("no \"ssl_certificate\" is defined for the \"ssl\" directive", at: at)
            }
            if t.stapling == true, t.staplingFile == nil, let r = serverSettings(si).resolver {
                t.staplingResolver = r
                t.staplingResolver?.timeoutMs = serverSettings(si).resolverTimeoutMs ?? 30_000
            }
            let certs = t.certificates ?? []
            guard onTLSPort.contains(si) || !certs.isEmpty else { continue }
            if certs.isEmpty && t.rejectHandshake != true {
                // Only the server whose own listen says ssl must have one (nginx's rule).
                if let l = sb.listens.first(where: \.ssl) {
                    throw ConfigError("no \"ssl_certificate\" is defined for the \"listen ... ssl\" directive", at: l.location)
                }
                continue
            }
            contexts[si] = try TLSContext.shared(t, server: si, at: sb.location)
            warnings += contexts[si]?.warnings ?? []
        }
        for i in listeners.indices {
            guard let at = listeners[i].sslLocation else { continue }
            let l = listeners[i]
            guard let ctx = contexts[l.defaultServer] else {
                throw ConfigError("no \"ssl_certificate\" is defined for the \"listen ... ssl\" directive", at: at)
            }
            // ALPN offers h2 for `listen … http2`, or per server (the one SNI selects) with `http2 on`.
            let h2 = l.servers.count == 0 ? [] : (0..<servers.count).map { l.http2 || serverSettings($0).http2 == true }
            listeners[i].tls = TLSListener(names: l.names, defaultServer: l.defaultServer, contexts: contexts, defaultContext: ctx, http2: h2)
        }
        return contexts
    }
}

extension Compiler {
    /// Reads an upstream's `state` file: `server` lines in nginx syntax (what the API writes).
    func readStateFile(_ path: String, upstream name: String, at loc: SourceLocation) throws -> [Peer] {
        var parser = Parser(includeBase: directoryOf(path))
        let directives = try parser.parseFile(path, from: loc)
        let saved = upstream
        let temp = UpstreamBuilder(name: name, location: loc)
        upstream = temp
        defer { upstream = saved }
        for d in directives {
            guard d.name == "server", d.block == nil, !d.args.isEmpty else {
                throw ConfigError("unexpected \"\(d.name)\" in state file (only \"server\" lines)", at: d.location)
            }
            try compileUpstreamServer(d)
        }
        return temp.peers
    }
}

func fileExists(_ path: String) -> Bool {
    var st = stat()
    return stat(path, &st) == 0
}
