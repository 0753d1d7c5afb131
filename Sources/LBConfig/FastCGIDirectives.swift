/// fastcgi_* and uwsgi_*: nginx keeps one upstream configuration per module, so a location that
/// passes to FastCGI reads fastcgi_read_timeout, never proxy_read_timeout. Here each module's
/// directives fill their own `AppServerSettings`; when a location's handler is `fastcgi_pass` or
/// `uwsgi_pass`, `applied(to:)` puts them in the proxy fields the shared runtime reads.

/// What speaks at the other end of a pass: HTTP (`proxy_pass`), FastCGI or uwsgi.
public enum UpstreamKind: Sendable, Hashable {
    case http, fastcgi, uwsgi

    /// The scheme nginx shows for the upstream in logs.
    public var scheme: String {
        switch self {
        case .http: "http"
        case .fastcgi: "fastcgi"
        case .uwsgi: "uwsgi"
        }
    }
}

/// One `fastcgi_param` / `uwsgi_param NAME VALUE [if_not_empty]`.
public struct AppParam: Sendable {
    public let name: [UInt8]
    public let value: Template
    public let ifNotEmpty: Bool
    /// The value is exactly `$content_length` (then a buffered body's real size is sent, as nginx
    /// sets the length after reading a chunked body).
    public let isContentLength: Bool
}

/// `fastcgi_split_path_info REGEX`.
public struct SplitPathInfo: Sendable {
    public let regex: PCRE
}

/// The settings of one app-server module, inherited as nginx merges its loc_conf: nil when not
/// set at a level; `params` replaced whole by a level that sets any.
public struct AppServerSettings: Sendable {
    public var params: [AppParam]?
    public var index: String?
    public var splitPathInfo: SplitPathInfo?
    public var keepConn: Bool?
    public var modifier1: Int?
    public var modifier2: Int?
    public var connectTimeoutMs: Int?
    public var readTimeoutMs: Int?
    public var sendTimeoutMs: Int?
    public var bufferSize: Int?
    public var buffering: Bool?
    public var interceptErrors: Bool?
    public var ignoreClientAbort: Bool?
    public var nextUpstream: UpstreamConditions?
    public var nextUpstreamTries: Int?
    public var nextUpstreamTimeoutMs: Int?
    public var hideHeaders: [String]?
    public var passHeaders: [String]?
    public var ignoreHeaders: IgnoredHeaders?
    /// `fastcgi_catch_stderr`: strings that, found in what the application writes to stderr
    /// before its response head, make the head invalid (next upstream, else 502), as nginx.
    public var catchStderr: [String]?
    public var passRequestHeaders: Bool?
    public var passRequestBody: Bool?
    public var cache: String??
    public var cacheKey: Template?
    public var cacheValid: [CacheValid]?
    public var cacheMethods: CacheMethods?
    public var cacheMinUses: Int?
    public var cacheBypass: [Template]?
    public var noCache: [Template]?
    public var cacheLock: Bool?
    public var cacheLockTimeoutMs: Int?
    public var cacheLockAgeMs: Int?
    public var cacheUseStale: UpstreamConditions?
    public var cacheRevalidate: Bool?
    public var cacheBackgroundUpdate: Bool?

    public init() {}

    mutating func inherit(from p: AppServerSettings) {
        @inline(__always) func m<T>(_ a: inout T?, _ b: T?) { if a == nil { a = b } }
        m(&params, p.params)
        m(&index, p.index)
        m(&splitPathInfo, p.splitPathInfo)
        m(&keepConn, p.keepConn)
        m(&modifier1, p.modifier1)
        m(&modifier2, p.modifier2)
        m(&connectTimeoutMs, p.connectTimeoutMs)
        m(&readTimeoutMs, p.readTimeoutMs)
        m(&sendTimeoutMs, p.sendTimeoutMs)
        m(&bufferSize, p.bufferSize)
        m(&buffering, p.buffering)
        m(&interceptErrors, p.interceptErrors)
        m(&ignoreClientAbort, p.ignoreClientAbort)
        m(&nextUpstream, p.nextUpstream)
        m(&nextUpstreamTries, p.nextUpstreamTries)
        m(&nextUpstreamTimeoutMs, p.nextUpstreamTimeoutMs)
        m(&hideHeaders, p.hideHeaders)
        m(&passHeaders, p.passHeaders)
        m(&ignoreHeaders, p.ignoreHeaders)
        m(&catchStderr, p.catchStderr)
        m(&passRequestHeaders, p.passRequestHeaders)
        m(&passRequestBody, p.passRequestBody)
        if cache == nil { cache = p.cache }
        m(&cacheKey, p.cacheKey)
        m(&cacheValid, p.cacheValid)
        m(&cacheMethods, p.cacheMethods)
        m(&cacheMinUses, p.cacheMinUses)
        m(&cacheBypass, p.cacheBypass)
        m(&noCache, p.noCache)
        m(&cacheLock, p.cacheLock)
        m(&cacheLockTimeoutMs, p.cacheLockTimeoutMs)
        m(&cacheLockAgeMs, p.cacheLockAgeMs)
        m(&cacheUseStale, p.cacheUseStale)
        m(&cacheRevalidate, p.cacheRevalidate)
        m(&cacheBackgroundUpdate, p.cacheBackgroundUpdate)
    }

    /// `s` as the proxy runtime should read it for a location passing to this module: every
    /// upstream field is this module's (nginx's defaults where unset), none of proxy_*'s.
    public func applied(to s: HTTPSettings) -> HTTPSettings {
        var o = s
        o.proxyConnectTimeoutMs = connectTimeoutMs
        o.proxyReadTimeoutMs = readTimeoutMs
        o.proxySendTimeoutMs = sendTimeoutMs
        o.proxyBufferSize = bufferSize
        o.proxyBuffering = buffering
        // The body is always read first: FastCGI frames it in STDIN records, uwsgi needs its length.
        o.proxyRequestBuffering = true
        o.proxyInterceptErrors = interceptErrors
        o.proxyIgnoreClientAbort = ignoreClientAbort
        o.proxyNextUpstream = nextUpstream
        o.proxyNextUpstreamTries = nextUpstreamTries
        o.proxyNextUpstreamTimeoutMs = nextUpstreamTimeoutMs
        o.proxyHideHeaders = hideHeaders
        o.proxyPassHeaders = passHeaders
        o.proxyIgnoreHeaders = ignoreHeaders
        o.proxyPassRequestHeaders = passRequestHeaders
        o.proxyPassRequestBody = passRequestBody
        o.proxySetHeaders = nil
        o.proxyHTTPVersion = "1.1"
        // No proxy_redirect or cookie rewriting in these modules: a relative Location stays relative.
        o.proxyRedirectOff = true
        o.proxyRedirects = nil
        o.proxyCookieDomains = nil
        o.proxyCookiePaths = nil
        o.proxyCookieFlags = nil
        o.proxyCache = cache ?? .some(nil)
        o.proxyCacheValue = nil
        o.proxyCacheKey = cacheKey
        o.proxyCacheValid = cacheValid
        o.proxyCacheMethods = cacheMethods
        o.proxyCacheMinUses = cacheMinUses
        o.proxyCacheBypass = cacheBypass
        o.proxyNoCache = noCache
        o.proxyCacheLock = cacheLock
        o.proxyCacheLockTimeoutMs = cacheLockTimeoutMs
        o.proxyCacheLockAgeMs = cacheLockAgeMs
        o.proxyCacheUseStale = cacheUseStale
        o.proxyCacheRevalidate = cacheRevalidate
        o.proxyCacheBackgroundUpdate = cacheBackgroundUpdate
        o.proxyCacheConvertHead = false
        o.proxyCachePurge = nil
        return o
    }
}

extension Compiler {
    /// The directive rows of one app-server module (`fastcgi` or `uwsgi`), built from one table
    /// so the two never drift apart.
    static func appServerDirectives(_ p: String, _ kp: WritableKeyPath<HTTPSettings, AppServerSettings>) -> [DirectiveSpec] {
        nonisolated(unsafe) let kp = kp
        func field<T>(_ f: WritableKeyPath<AppServerSettings, T?>) -> WritableKeyPath<HTTPSettings, T?> { kp.appending(path: f) }
        let kind: UpstreamKind = p == "fastcgi" ? .fastcgi : .uwsgi
        var rows: [DirectiveSpec] = [
            DirectiveSpec("\(p)_pass", [.location], .exactly(1)) { c, d in
                guard let l = c.locationStack.last else { throw ConfigError("\"\(d.name)\" directive is not allowed here", at: d.location) }
                if l.proxyPass != nil { throw ConfigError("\"\(d.name)\" directive is duplicate", at: d.location) }
                l.proxyPass = ("\(kind.scheme)://\(d.args[0].text)", d.args[0].location)
                if d.args[0].text.contains("$") { _ = try c.template(d.args[0]) } // variables checked as everywhere
            },
            DirectiveSpec("\(p)_param", .hsl, .between(2, 3), repeatable: true) { c, d in
                if d.args.count == 3 && d.args[2].text != "if_not_empty" {
                    throw ConfigError("invalid parameter \"\(d.args[2].text)\"", at: d.args[2].location)
                }
                let v = try c.template(d.args[1])
                let param = AppParam(name: Array(d.args[0].text.utf8), value: v, ifNotEmpty: d.args.count == 3,
                                     isContentLength: v.parts == [.variable(.contentLength)])
                c.settings.s[keyPath: kp].params = (c.settings.s[keyPath: kp].params ?? []) + [param]
            },
            timeSetting("\(p)_connect_timeout", default: "60s", field(\.connectTimeoutMs)),
            timeSetting("\(p)_read_timeout", default: "60s", field(\.readTimeoutMs)),
            timeSetting("\(p)_send_timeout", default: "60s", field(\.sendTimeoutMs)),
            sizeSetting("\(p)_buffer_size", default: "4k", field(\.bufferSize)),
            flagSetting("\(p)_buffering", default: "on", field(\.buffering)),
            flagSetting("\(p)_intercept_errors", default: "off", field(\.interceptErrors)),
            flagSetting("\(p)_ignore_client_abort", default: "off", field(\.ignoreClientAbort)),
            flagSetting("\(p)_pass_request_headers", default: "on", field(\.passRequestHeaders)),
            flagSetting("\(p)_pass_request_body", default: "on", field(\.passRequestBody)),
            setting("\(p)_next_upstream", .atLeast(1), default: "error timeout", field(\.nextUpstream)) { _, d in
                UpstreamConditions(words: try wordSet(d, allowed: nextUpstreamWords))
            },
            numberSetting("\(p)_next_upstream_tries", default: "0", field(\.nextUpstreamTries)),
            timeSetting("\(p)_next_upstream_timeout", default: "0", field(\.nextUpstreamTimeoutMs)),
            DirectiveSpec("\(p)_hide_header", .hsl, .exactly(1), repeatable: true) { c, d in
                c.settings.s[keyPath: kp].hideHeaders = (c.settings.s[keyPath: kp].hideHeaders ?? []) + [d.args[0].text.lowercased()]
            },
            DirectiveSpec("\(p)_pass_header", .hsl, .exactly(1), repeatable: true) { c, d in
                c.settings.s[keyPath: kp].passHeaders = (c.settings.s[keyPath: kp].passHeaders ?? []) + [d.args[0].text.lowercased()]
            },
            setting("\(p)_ignore_headers", .atLeast(1), default: nil, field(\.ignoreHeaders)) { _, d in
                try keywords(d, IgnoredHeaders.words)
            },
            // The cache, through the same zones as proxy_cache (`fastcgi_cache_path` declares one too).
            DirectiveSpec("\(p)_cache_path", .http, .atLeast(2), repeatable: true) { c, d in try c.compileCachePath(d) },
            DirectiveSpec("\(p)_cache", .hsl, .exactly(1), default: "off") { c, d in
                let z = d.args[0].text
                if z == "off" { c.settings.s[keyPath: kp].cache = .some(nil); return }
                if z.contains("$") { throw ConfigError("variables in \"\(d.name)\" are not supported by lb", at: d.args[0].location) }
                c.cacheReferences.append((z, d.args[0].location))
                c.settings.s[keyPath: kp].cache = .some(z)
            },
            setting("\(p)_cache_key", .exactly(1), default: nil, field(\.cacheKey)) { c, d in try c.template(d.args[0]) },
            DirectiveSpec("\(p)_cache_valid", .hsl, .atLeast(1), repeatable: true) { c, d in
                c.settings.s[keyPath: kp].cacheValid = (c.settings.s[keyPath: kp].cacheValid ?? []) + [try c.cacheValid(d)]
            },
            setting("\(p)_cache_methods", .atLeast(1), default: "GET HEAD", field(\.cacheMethods)) { _, d in
                try keywords(d, CacheMethods.words).union([.get, .head])
            },
            numberSetting("\(p)_cache_min_uses", default: "1", field(\.cacheMinUses)),
            DirectiveSpec("\(p)_cache_bypass", .hsl, .atLeast(1), repeatable: true) { c, d in
                for a in d.args { c.settings.s[keyPath: kp].cacheBypass = (c.settings.s[keyPath: kp].cacheBypass ?? []) + [try c.template(a)] }
            },
            DirectiveSpec("\(p)_no_cache", .hsl, .atLeast(1), repeatable: true) { c, d in
                for a in d.args { c.settings.s[keyPath: kp].noCache = (c.settings.s[keyPath: kp].noCache ?? []) + [try c.template(a)] }
            },
            flagSetting("\(p)_cache_lock", default: "off", field(\.cacheLock)),
            timeSetting("\(p)_cache_lock_timeout", default: "5s", field(\.cacheLockTimeoutMs)),
            timeSetting("\(p)_cache_lock_age", default: "5s", field(\.cacheLockAgeMs)),
            setting("\(p)_cache_use_stale", .atLeast(1), default: "off", field(\.cacheUseStale)) { _, d in
                UpstreamConditions(words: try wordSet(d, allowed: ["off", "error", "timeout", "invalid_header", "updating", "http_500", "http_502",
                                                                   "http_503", "http_504", "http_403", "http_404", "http_429"]))
            },
            flagSetting("\(p)_cache_revalidate", default: "off", field(\.cacheRevalidate)),
            flagSetting("\(p)_cache_background_update", default: "off", field(\.cacheBackgroundUpdate)),
        ]
        // Accepted as nginx does; lb's relay buffer is its own (documented in configuration.md).
        for (name, args) in [("buffers", ArgumentShape.exactly(2)), ("busy_buffers_size", .exactly(1)), ("max_temp_file_size", .exactly(1)),
                             ("temp_file_write_size", .exactly(1)), ("request_buffering", .flag), ("force_ranges", .flag),
                             ("limit_rate", .exactly(1)), ("socket_keepalive", .flag), ("store", .exactly(1)), ("store_access", .between(1, 3))] {
            rows.append(DirectiveSpec("\(p)_\(name)", .hsl, args, note: "accepted for compatibility; no effect in lb") { _, _ in })
        }
        if kind == .fastcgi {
            rows += [
                setting("fastcgi_index", [.http, .server, .location], .exactly(1), default: nil, field(\.index)) { _, d in d.args[0].text },
                flagSetting("fastcgi_keep_conn", default: "off", field(\.keepConn)),
                DirectiveSpec("fastcgi_split_path_info", .location, .exactly(1)) { c, d in
                    let re = try compileRegex(d.args[0].text, caseless: false, at: d.args[0].location)
                    c.settings.s.fastcgi.splitPathInfo = SplitPathInfo(regex: re)
                },
                DirectiveSpec("fastcgi_catch_stderr", .hsl, .exactly(1), repeatable: true) { c, d in
                    c.settings.s.fastcgi.catchStderr = (c.settings.s.fastcgi.catchStderr ?? []) + [d.args[0].text]
                },
            ]
        } else {
            func modifier(_ name: String, _ f: WritableKeyPath<AppServerSettings, Int?>) -> DirectiveSpec {
                numberSetting(name, default: "0", field(f))
            }
            rows += [modifier("uwsgi_modifier1", \.modifier1), modifier("uwsgi_modifier2", \.modifier2)]
        }
        return rows
    }

    static let fastcgiDirectives = appServerDirectives("fastcgi", \.fastcgi)
    static let uwsgiDirectives = appServerDirectives("uwsgi", \.uwsgi)
}

extension Compiler {
    /// The handler and settings of a location whose pass is `fastcgi_pass` or `uwsgi_pass` (nil
    /// for `proxy_pass`). The address is an upstream block's name or `host:port`; a name without
    /// a port must be an upstream block (nginx's "no port in upstream").
    func appServerTarget(_ pp: (url: String, location: SourceLocation), for b: LocationBuilder, settings s: HTTPSettings,
                         groups: inout [UpstreamGroup], index: inout [String: Int]) throws -> (Handler, HTTPSettings)? {
        let kind: UpstreamKind
        var addr: String
        if pp.url.hasPrefix("fastcgi://") {
            kind = .fastcgi
            addr = String(pp.url.dropFirst(10))
        } else if pp.url.hasPrefix("uwsgi://") {
            kind = .uwsgi
            addr = String(pp.url.dropFirst(8))
            if addr.hasPrefix("uwsgi://") { addr = String(addr.dropFirst(8)) }
            if addr.hasPrefix("suwsgi://") {
                throw ConfigError("\"suwsgi://\" in \"uwsgi_pass\" is not supported by lb", at: pp.location)
            }
        } else {
            return nil
        }
        if pp.url.contains("$") { return try appServerVariableTarget(pp, kind: kind, settings: s) }
        if !addr.hasPrefix("unix:"), let hp = HostPort.parse(addr, portOnlyAllowed: false), hp.port == nil {
            if let i = index[hp.host.lowercased()], !groups[i].implicit {} else {
                throw ConfigError("no port in upstream \"\(addr)\"", at: pp.location)
            }
        }
        // The address goes through proxy_pass's parser (an upstream name, host:port, or
        // unix:PATH); the connection itself is the same for all three.
        var target = try proxyTarget("http://" + addr, at: pp.location, for: b, groups: &groups, index: &index)
        target.kind = kind
        let module = kind == .fastcgi ? s.fastcgi : s.uwsgi
        if case .some(.some) = module.cache, module.cacheKey == nil {
            throw ConfigError("no \"\(kind.scheme)_cache_key\" for \"\(kind.scheme)_cache\"", at: pp.location)
        }
        return (.proxy(target), module.applied(to: s))
    }

    /// `fastcgi_pass` / `uwsgi_pass` with variables (nginx's `fastcgi_lengths`): the address is
    /// made per request and read as nginx's `ngx_http_fastcgi_eval` reads it (LBCore's
    /// AppServerVariablePass.swift); the text as written, a `uwsgi://` prefix included, is the template.
    private func appServerVariableTarget(_ pp: (url: String, location: SourceLocation), kind: UpstreamKind,
                                         settings s: HTTPSettings) throws -> (Handler, HTTPSettings) {
        let written = String(pp.url.dropFirst(kind.scheme.count + 3))
        variableProxyURLs.append(try Template(parsing: written))
        var target = ProxyTarget(upstream: -variableProxyURLs.count, hostHeader: "", port: 0, uri: nil)
        target.kind = kind
        let module = kind == .fastcgi ? s.fastcgi : s.uwsgi
        if case .some(.some) = module.cache, module.cacheKey == nil {
            throw ConfigError("no \"\(kind.scheme)_cache_key\" for \"\(kind.scheme)_cache\"", at: pp.location)
        }
        return (.proxy(target), module.applied(to: s))
    }
}
