/// proxy_*, proxy_cache_*, upstream and lb's stack directives.
extension Compiler {
    /// `proxy_cookie_domain|path off` or `FROM TO`, as nginx's proxy module reads them:
    /// - literal FROM (variables allowed): a domain equals the Domain value without its leading
    ///   dot (no case; the dot is kept), a path is a prefix of the Path value (with case); a leading
    ///   `.` of a domain pair is dropped;
    /// - `~REGEX`: searched in the whole attribute value, leading dot included; a match replaces
    ///   the whole value by TO, where its captures (`$1`, named ones) may appear. Domains always
    ///   match without case (nginx drops the `~` only, so `~*` is a bad pattern there); paths: `~`
    ///   with case, `~*` without.
    /// The first rule that matches an attribute rewrites it.
    func cookieRewrite(_ d: Directive, _ current: [CookieRewrite]?, domain: Bool) throws -> [CookieRewrite] {
        if d.args.count == 1 {
            guard d.args[0].text == "off" else { throw ConfigError("invalid parameter \"\(d.args[0].text)\"", at: d.args[0].location) }
            if current != nil { throw ConfigError("\"\(d.name)\" directive is duplicate", at: d.location) }
            return []
        }
        if let current, current.isEmpty { throw ConfigError("\"\(d.name)\" directive is duplicate", at: d.location) }
        var from = d.args[0], to = d.args[1]
        if from.text.hasPrefix("~") {
            var pattern = from.text.dropFirst()
            var caseless = domain
            if !domain && pattern.hasPrefix("*") {
                pattern = pattern.dropFirst()
                caseless = true
            }
            let re = try compileRegex(String(pattern), caseless: caseless, at: from.location)
            defineNamedCaptures(re)
            return (current ?? []) + [CookieRewrite(from: Template(literal: from.text), regex: re, to: try template(to))]
        }
        if domain && from.text.hasPrefix(".") { from.text.removeFirst() }
        if domain && to.text.hasPrefix(".") { to.text.removeFirst() }
        return (current ?? []) + [CookieRewrite(from: try template(from), to: try template(to))]
    }

    static let nextUpstreamWords: Set<String> = ["off", "error", "timeout", "invalid_header", "http_500", "http_502", "http_503",
                                                "http_504", "http_403", "http_404", "http_429", "non_idempotent", "denied"]

    static let proxyDirectives: [DirectiveSpec] = [
        // Whether a client that goes away ends the upstream request (LBCore's IgnoreClientAbort.swift).
        flagSetting("proxy_ignore_client_abort", default: "off", \.proxyIgnoreClientAbort),
        DirectiveSpec("proxy_pass", [.location, .limitExcept], .exactly(1)) { c, d in
            guard let l = c.locationStack.last else { throw ConfigError("\"proxy_pass\" directive is not allowed here", at: d.location) }
            l.proxyPass = (d.args[0].text, d.args[0].location)
            if d.args[0].text.contains("$") { _ = try c.template(d.args[0]) } // variables checked as everywhere
        },
        DirectiveSpec("proxy_set_header", .hsl, .exactly(2), repeatable: true,
                      default: "Host $proxy_host; Connection close;") { c, d in
            let v = try c.template(d.args[1])
            c.settings.s.proxySetHeaders = (c.settings.s.proxySetHeaders ?? []) + [(d.args[0].text, v)]
        },
        DirectiveSpec("proxy_hide_header", .hsl, .exactly(1), repeatable: true) { c, d in c.appendArray(\.proxyHideHeaders, d.args[0].text.lowercased()) },
        DirectiveSpec("proxy_pass_header", .hsl, .exactly(1), repeatable: true) { c, d in c.appendArray(\.proxyPassHeaders, d.args[0].text.lowercased()) },
        setting("proxy_http_version", .exactly(1), default: "1.0", \.proxyHTTPVersion) { _, d in
            guard ["1.0", "1.1"].contains(d.args[0].text) else { throw ConfigError("invalid value \"\(d.args[0].text)\" in \"proxy_http_version\" directive", at: d.args[0].location) }
            return d.args[0].text
        },
        timeSetting("proxy_connect_timeout", default: "60s", \.proxyConnectTimeoutMs),
        timeSetting("proxy_read_timeout", default: "60s", \.proxyReadTimeoutMs),
        timeSetting("proxy_send_timeout", default: "60s", \.proxySendTimeoutMs),
        setting("proxy_next_upstream", .atLeast(1), default: "error timeout", \.proxyNextUpstream) { _, d in
            UpstreamConditions(words: try wordSet(d, allowed: nextUpstreamWords))
        },
        numberSetting("proxy_next_upstream_tries", default: "0", \.proxyNextUpstreamTries),
        timeSetting("proxy_next_upstream_timeout", default: "0", \.proxyNextUpstreamTimeoutMs),
        flagSetting("proxy_buffering", default: "on", \.proxyBuffering),
        sizeSetting("proxy_buffer_size", default: "4k", \.proxyBufferSize),
        flagSetting("proxy_request_buffering", default: "on", \.proxyRequestBuffering),
        flagSetting("proxy_intercept_errors", default: "off", \.proxyInterceptErrors),
        DirectiveSpec("proxy_redirect", .hsl, .between(1, 2), repeatable: true, default: "default") { c, d in
            if d.args.count == 1 {
                switch d.args[0].text {
                case "off": c.settings.s.proxyRedirectOff = true
                case "default": c.settings.s.proxyRedirectOff = false
                default: throw ConfigError("invalid parameter \"\(d.args[0].text)\"", at: d.args[0].location)
                }
                return
            }
            c.settings.s.proxyRedirects = (c.settings.s.proxyRedirects ?? []) + [(d.args[0].text, d.args[1].text)]
        },
        DirectiveSpec("proxy_cookie_domain", .hsl, .between(1, 2), repeatable: true, default: "off") { c, d in
            c.settings.s.proxyCookieDomains = try c.cookieRewrite(d, c.settings.s.proxyCookieDomains, domain: true)
        },
        DirectiveSpec("proxy_cookie_path", .hsl, .between(1, 2), repeatable: true, default: "off") { c, d in
            c.settings.s.proxyCookiePaths = try c.cookieRewrite(d, c.settings.s.proxyCookiePaths, domain: false)
        },
        flagSetting("proxy_pass_request_headers", default: "on", \.proxyPassRequestHeaders),
        flagSetting("proxy_pass_request_body", default: "on", \.proxyPassRequestBody),
        flagSetting("proxy_protocol", default: "off", \.proxyProtocol),
        setting("proxy_method", .exactly(1), default: "the client's method", \.proxyMethod) { c, d in try c.template(d.args[0]) },
        setting("proxy_set_body", .exactly(1), default: "the client's body", \.proxySetBody) { c, d in try c.template(d.args[0]) },
        setting("proxy_ignore_headers", .atLeast(1), default: "none", \.proxyIgnoreHeaders) { _, d in
            try keywords(d, IgnoredHeaders.words)
        },
    ]

    static let cacheDirectives: [DirectiveSpec] = [
        DirectiveSpec("proxy_cache_path", .http, .atLeast(2), repeatable: true) { c, d in try c.compileCachePath(d) },
        DirectiveSpec("proxy_cache", .hsl, .exactly(1), default: "off") { c, d in
            let z = d.args[0].text
            if z == "off" { c.settings.s.proxyCache = .some(nil); return }
            let t = try c.template(d.args[0])
            if !t.variables.isEmpty {
                // As nginx: the zone is looked up per request (an unknown one is a 500 then).
                c.settings.s.proxyCache = .some(z)
                c.settings.s.proxyCacheValue = t
                return
            }
            c.cacheReferences.append((z, d.args[0].location))
            c.settings.s.proxyCache = .some(z)
        },
        setting("proxy_cache_key", .exactly(1), default: "$scheme$proxy_host$request_uri", \.proxyCacheKey) { c, d in try c.template(d.args[0]) },
        DirectiveSpec("proxy_cache_valid", .hsl, .atLeast(1), repeatable: true) { c, d in
            c.appendArray(\.proxyCacheValid, try c.cacheValid(d))
        },
        setting("proxy_cache_methods", .atLeast(1), default: "GET HEAD", \.proxyCacheMethods) { _, d in
            try keywords(d, CacheMethods.words).union([.get, .head])
        },
        numberSetting("proxy_cache_min_uses", default: "1", \.proxyCacheMinUses),
        DirectiveSpec("proxy_cache_bypass", .hsl, .atLeast(1), repeatable: true) { c, d in
            for a in d.args { c.appendArray(\.proxyCacheBypass, try c.template(a)) }
        },
        DirectiveSpec("proxy_no_cache", .hsl, .atLeast(1), repeatable: true) { c, d in
            for a in d.args { c.appendArray(\.proxyNoCache, try c.template(a)) }
        },
        flagSetting("proxy_cache_lock", default: "off", \.proxyCacheLock),
        timeSetting("proxy_cache_lock_timeout", default: "5s", \.proxyCacheLockTimeoutMs),
        timeSetting("proxy_cache_lock_age", default: "5s", \.proxyCacheLockAgeMs),
        setting("proxy_cache_use_stale", .atLeast(1), default: "off", \.proxyCacheUseStale) { _, d in
            UpstreamConditions(words: try wordSet(d, allowed: ["off", "error", "timeout", "invalid_header", "updating", "http_500", "http_502",
                                                               "http_503", "http_504", "http_403", "http_404", "http_429"]))
        },
        flagSetting("proxy_cache_revalidate", default: "off", \.proxyCacheRevalidate),
        flagSetting("proxy_cache_background_update", default: "off", \.proxyCacheBackgroundUpdate),
        flagSetting("proxy_cache_convert_head", default: "on", \.proxyCacheConvertHead),
        // lb extension: `proxy_cache_purge ADDRESS|CIDR|all … | off` — PURGE requests from these
        // clients remove entries; everyone else gets 403.
        setting("proxy_cache_purge", .atLeast(1), default: "off", \.proxyCachePurge) { _, d in
            if d.args.count == 1 && d.args[0].text == "off" { return [] }
            return try d.args.map { a -> AccessRule in
                if a.text == "all" { return AccessRule(allow: true, network: nil) }
                guard let n = parseCIDR(a.text) else { throw ConfigError("invalid address \"\(a.text)\" in \"proxy_cache_purge\"", at: a.location) }
                return AccessRule(allow: true, network: n)
            }
        },
    ]

    func compileCachePath(_ d: Directive) throws {
        let path = fullPath(d.args[0].text)
        var levels: [Int] = []
        var zone: (String, Int)? = nil
        var maxSize: Int? = nil
        var inactive = 600_000
        var useTemp = true
        for a in d.args.dropFirst() {
            let t = a.text
            func value(_ p: String) -> String? { t.hasPrefix(p) ? String(t.dropFirst(p.count)) : nil }
            if let v = value("levels=") {
                let parts = v.split(separator: ":", omittingEmptySubsequences: false)
                guard (1...3).contains(parts.count), parts.allSatisfy({ $0 == "1" || $0 == "2" }) else {
                    throw ConfigError("invalid \"levels\" \"\(v)\"", at: a.location)
                }
                levels = parts.map { Int($0)! }
            } else if let v = value("keys_zone=") {
                let parts = v.split(separator: ":", omittingEmptySubsequences: false)
                guard parts.count == 2, !parts[0].isEmpty, let size = Values.size(String(parts[1])), size >= 8192 else {
                    throw ConfigError("invalid keys zone size \"\(t)\"", at: a.location)
                }
                zone = (String(parts[0]), size)
            } else if let v = value("max_size=") {
                guard let s = Values.size(v) else { throw ConfigError("invalid max_size value \"\(t)\"", at: a.location) }
                maxSize = s
            } else if let v = value("inactive=") {
                guard let ms = Values.milliseconds(v) else { throw ConfigError("invalid inactive value \"\(t)\"", at: a.location) }
                inactive = ms
            } else if let v = value("use_temp_path=") {
                guard let f = Values.flag(v) else { throw ConfigError("invalid use_temp_path value \"\(v)\", it must be \"on\" or \"off\"", at: a.location) }
                useTemp = f
            } else if ["min_free=", "manager_files=", "manager_sleep=", "manager_threshold=", "loader_files=", "loader_sleep=",
                        "loader_threshold=", "purger=", "purger_files=", "purger_sleep=", "purger_threshold="].contains(where: { t.hasPrefix($0) }) {
                continue
            } else {
                throw ConfigError("invalid parameter \"\(t)\"", at: a.location)
            }
        }
        guard let (name, size) = zone else { throw ConfigError("\"proxy_cache_path\" must have \"keys_zone\" parameter", at: d.location) }
        if cacheZones.contains(where: { $0.name == name }) { throw ConfigError("duplicate zone \"\(name)\"", at: d.location) }
        if cacheZones.contains(where: { $0.path == path }) { throw ConfigError("duplicate cache path \"\(path)\"", at: d.location) }
        cacheZones.append(CacheZone(name: name, path: path, levels: levels, keysZoneSize: size, maxSize: maxSize,
                                    inactiveMs: inactive, useTempPath: useTemp, location: d.location))
    }

    static let upstreamDirectives: [DirectiveSpec] = [
        DirectiveSpec("server", .upstream, .atLeast(1), repeatable: true) { c, d in try c.compileUpstreamServer(d) },
        DirectiveSpec("least_conn", .upstream, .none) { c, d in try c.setPolicy(.leastConn, d) },
        DirectiveSpec("ip_hash", .upstream, .none) { c, d in try c.setPolicy(.ipHash, d) },
        DirectiveSpec("hash", .upstream, .between(1, 2)) { c, d in
            if d.args.count == 2 && d.args[1].text != "consistent" {
                throw ConfigError("invalid parameter \"\(d.args[1].text)\"", at: d.args[1].location)
            }
            try c.setPolicy(.hash(try c.template(d.args[0]), consistent: d.args.count == 2), d)
        },
        DirectiveSpec("random", .upstream, .between(0, 2)) { c, d in
            if let a = d.args.first, a.text != "two" { throw ConfigError("invalid parameter \"\(a.text)\"", at: a.location) }
            try c.setPolicy(.random(two: !d.args.isEmpty), d)
        },
        DirectiveSpec("keepalive", .upstream, .exactly(1)) { c, d in
            let n = try c.number(d)
            guard n >= 1 else { throw c.invalidValue(d) }
            c.upstream!.keepalive = n
        },
        DirectiveSpec("keepalive_timeout", .upstream, .exactly(1), default: "60s") { c, d in c.upstream!.keepaliveTimeoutMs = try c.time(d) },
        DirectiveSpec("keepalive_requests", .upstream, .exactly(1), default: "1000") { c, d in c.upstream!.keepaliveRequests = try c.number(d) },
        DirectiveSpec("keepalive_time", .upstream, .exactly(1), default: "1h") { c, d in c.upstream!.keepaliveTimeMs = try c.time(d) },
        DirectiveSpec("service", .upstream, .between(1, 4), note: "lb: the peers are the instances of a stack service") { c, d in
            var weight = 1, maxFails = 1, failTimeout = 10_000
            for a in d.args.dropFirst() {
                if let v = a.text.split(separator: "=", maxSplits: 1).last, a.text.hasPrefix("weight="), let n = Values.number(String(v)), n >= 1 { weight = n }
                else if a.text.hasPrefix("max_fails="), let n = Values.number(String(a.text.dropFirst(10))) { maxFails = n }
                else if a.text.hasPrefix("fail_timeout="), let t = Values.milliseconds(String(a.text.dropFirst(13))) { failTimeout = t }
                else { throw ConfigError("invalid parameter \"\(a.text)\"", at: a.location) }
            }
            c.upstream!.service = (d.args[0].text, d.args[0].location, weight, maxFails, failTimeout)
        },
    ]

    func setPolicy(_ p: UpstreamGroup.Policy, _ d: Directive) throws {
        let u = upstream!
        if u.policyLocation != nil { throw ConfigError("load balancing method redefined", at: d.location) }
        u.policy = p
        u.policyLocation = d.location
    }

    func compileUpstreamServer(_ d: Directive) throws {
        let a = d.args[0]
        let hp: HostPort
        switch HostPort.upstream(a.text) {
        case .success(let parsed): hp = parsed
        case .failure(let why): throw ConfigError("\(why) in upstream \"\(a.text)\"", at: a.location)
        }
        var weight = 1, maxFails = 1, failTimeout = 10_000, maxConns = 0
        var backup = false, down = false, resolve = false, weightSet = false, slowStart = 0
        var service: String?
        for p in d.args.dropFirst() {
            let t = p.text
            func num(_ prefix: String) throws -> Int {
                guard let n = Values.number(String(t.dropFirst(prefix.count))) else { throw ConfigError("invalid parameter \"\(t)\"", at: p.location) }
                return n
            }
            if t.hasPrefix("weight=") {
                weight = try num("weight=")
                weightSet = true
                guard weight >= 1 else { throw ConfigError("invalid parameter \"\(t)\"", at: p.location) }
            } else if t.hasPrefix("max_fails=") {
                maxFails = try num("max_fails=")
            } else if t.hasPrefix("fail_timeout=") {
                guard let ms = Values.milliseconds(String(t.dropFirst(13))) else { throw ConfigError("invalid parameter \"\(t)\"", at: p.location) }
                failTimeout = ms
            } else if t.hasPrefix("max_conns=") {
                maxConns = try num("max_conns=")
            } else if t == "backup" {
                backup = true
            } else if t == "down" {
                down = true
            } else if t == "resolve" {
                resolve = true
            } else if t.hasPrefix("service=") {
                guard t.count > 8 else { throw ConfigError("service is empty", at: p.location) }
                service = String(t.dropFirst(8))
            } else if t.hasPrefix("slow_start=") {
                guard let ms = Values.milliseconds(String(t.dropFirst(11))) else { throw ConfigError("invalid parameter \"\(t)\"", at: p.location) }
                slowStart = ms
                upstream!.slowStartLocation = upstream!.slowStartLocation ?? p.location
            } else if t.hasPrefix("route=") {
                continue
            } else {
                throw ConfigError("invalid parameter \"\(t)\"", at: p.location)
            }
        }
        if hp.isUnix {
            // A unix-domain member: one fixed address (`resolve` changes nothing, as for an IP).
            var peer = Peer(address: hp, name: a.text, weight: weight, maxFails: maxFails,
                            failTimeoutMs: failTimeout, maxConns: maxConns, backup: backup, down: down)
            peer.slowStartMs = slowStart
            upstream!.peers.append(peer)
            return
        }
        if service != nil && !resolve {
            throw ConfigError("service upstream \"\(a.text)\" requires \"resolve\" parameter", at: a.location)
        }
        if service != nil && hp.port != nil { throw ConfigError("service upstream \"\(a.text)\" may not have port", at: a.location) }
        if service != nil && isIPLiteral(hp.host) { throw ConfigError("service upstream \"\(a.text)\" requires domain name", at: a.location) }
        let port = hp.port ?? 80
        // `resolve` with a name: DNS at run time (an IP literal stays a fixed server, as nginx).
        if resolve && !isIPLiteral(hp.host) {
            var server = DynamicServer(name: hp.host, port: port, service: service, written: a.text, weight: weight,
                                       weightSet: weightSet, maxFails: maxFails, failTimeoutMs: failTimeout,
                                       maxConns: maxConns, backup: backup, down: down)
            server.slowStartMs = slowStart
            upstream!.dynamic.append(server)
            return
        }
        let addrs = isIPLiteral(hp.host) ? [hp.host] : resolver.resolve(hp.host)
        guard !addrs.isEmpty else { throw ConfigError("host not found in upstream \"\(a.text)\"", at: a.location) }
        for addr in addrs {
            var peer = Peer(address: HostPort(host: addr, port: port), name: a.text, weight: weight, maxFails: maxFails,
                            failTimeoutMs: failTimeout, maxConns: maxConns, backup: backup, down: down)
            peer.slowStartMs = slowStart
            upstream!.peers.append(peer)
        }
    }

    static let stackDirectives: [DirectiveSpec] = [
        DirectiveSpec("stack", .main, .none, block: true, note: "lb: the processes lb supervises") { c, d in
            c.sawStack = true
            try c.walk(d.block!, in: .stack)
        },
        DirectiveSpec("service", .stack, .exactly(1), block: true, repeatable: true) { c, d in
            let name = d.args[0].text
            if c.services.contains(where: { $0.name == name }) { throw ConfigError("duplicate service \"\(name)\"", at: d.location) }
            let s = ServiceBuilder(name: name, location: d.location)
            c.services.append(s)
            c.service = s
            defer { c.service = nil }
            try c.walk(d.block!, in: .service)
            if s.command.isEmpty { throw ConfigError("service \"\(name)\" has no \"command\"", at: d.location) }
        },
        DirectiveSpec("command", .service, .atLeast(1)) { c, d in c.service!.command = d.values },
        DirectiveSpec("scale", .service, .exactly(1), default: "1") { c, d in
            let n = try c.number(d)
            guard (1...256).contains(n) else { throw c.invalidValue(d) }
            c.service!.scale = n
        },
        DirectiveSpec("port", .service, .exactly(1)) { c, d in
            guard let p = Values.port(d.args[0].text) else { throw c.invalidValue(d) }
            c.service!.basePort = p
        },
        DirectiveSpec("socket", .service, .exactly(1)) { c, d in
            c.service!.socket = (c.fullPath(d.args[0].text), d.args[0].location)
        },
        DirectiveSpec("environment", .service, .exactly(2), repeatable: true) { c, d in c.service!.environment.append((d.args[0].text, d.args[1].text)) },
        DirectiveSpec("ready", .service, .exactly(1)) { c, d in c.service!.ready = d.args[0].text },
        DirectiveSpec("directory", .service, .exactly(1)) { c, d in c.service!.directory = c.fullPath(d.args[0].text) },
    ]
}

extension Compiler {
    /// `*_cache_valid [CODE…|any] TIME`: the codes (none for `any`; 200 301 302 when none are
    /// named) and the time, with nginx's errors.
    func cacheValid(_ d: Directive) throws -> CacheValid {
        let ms = try time(d, d.args.count - 1)
        var codes: [Int] = []
        for a in d.args.dropLast() {
            if a.text == "any" { codes = []; break }
            guard let n = Values.number(a.text), (100...599).contains(n) else { throw ConfigError("invalid value \"\(a.text)\"", at: a.location) }
            codes.append(n)
        }
        if d.args.count == 1 { codes = [200, 301, 302] }
        return CacheValid(codes: codes, ms: ms)
    }
}
