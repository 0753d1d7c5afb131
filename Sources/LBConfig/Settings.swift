/// `add_header NAME VALUE [always]`.
public struct AddHeader: Sendable, Hashable {
    public let name: String
    /// `name` as the response head writes it, prepared once.
    public let nameBytes: [UInt8]
    public let value: Template
    public let always: Bool

    public init(name: String, value: Template, always: Bool) {
        self.name = name
        nameBytes = Array(name.utf8)
        self.value = value
        self.always = always
    }
}

/// `error_page CODE… [=[RESPONSE]] URI`.
public struct ErrorPage: Sendable, Hashable {
    public var codes: [Int]
    /// `=` alone: take the status of the target; `=N`: answer with N; nil: keep the original code.
    public enum Override: Sendable, Hashable { case keep, fromTarget, code(Int) }
    public var override: Override
    public var target: Template
}

/// `access_log PATH [FORMAT] [buffer=] [flush=] [if=]` or `access_log off`.
public struct AccessLog: Sendable, Hashable {
    public var path: String
    /// The format's name, and the format itself (found at load: `log_format` comes first).
    public var format: String
    public var logFormat: LogFormat
    public var bufferSize: Int?
    public var flushMs: Int?
    public var condition: Template?

    public init(path: String, format: String, logFormat: LogFormat = .combined, bufferSize: Int? = nil, flushMs: Int? = nil,
                condition: Template? = nil) {
        self.path = path
        self.format = format
        self.logFormat = logFormat
        self.bufferSize = bufferSize
        self.flushMs = flushMs
        self.condition = condition
    }
}

/// `error_log FILE [LEVEL]`.
public struct ErrorLog: Sendable, Hashable {
    public enum Level: Int, Sendable, Comparable, CaseIterable {
        case debug = 8, info = 7, notice = 6, warn = 5, error = 4, crit = 3, alert = 2, emerg = 1
        public static func < (a: Level, b: Level) -> Bool { a.rawValue < b.rawValue }
        public var name: String { "\(self)" }
    }
    public var path: String
    public var level: Level

    public init(path: String, level: Level) {
        self.path = path
        self.level = level
    }
}

/// `expires` values.
public enum Expires: Sendable, Hashable {
    case off
    case epoch
    case max
    /// Relative to now (may be negative).
    case modified(ms: Int, fromModification: Bool)
    /// `@15h30m`: a time of day.
    case timeOfDay(ms: Int)
    /// A value with variables (nginx ≥ 1.7.9), made per response and read as the literal form
    /// (`Expires.parse`); `modified` when the directive says so.
    case variable(Template, modified: Bool)

    /// nginx's `ngx_http_parse_expires`: `epoch`, `max`, `off` (not after `modified`), `@TIME`
    /// (a time of day below 24 hours, not after `modified`), or `[+|-]TIME`. Throws the reason
    /// nginx gives for a refused value.
    public static func parse(_ v: String, modified: Bool) throws(ExpiresError) -> Expires {
        if !modified {
            switch v {
            case "epoch": return .epoch
            case "max": return .max
            case "off": return .off
            default: break
            }
        }
        var s = Substring(v)
        var daily = false
        var sign = 1
        if s.hasPrefix("@") {
            if modified { throw ExpiresError(reason: "daily time cannot be used with \"modified\" parameter") }
            daily = true
            s = s.dropFirst()
        } else if s.hasPrefix("+") {
            s = s.dropFirst()
        } else if s.hasPrefix("-") {
            sign = -1
            s = s.dropFirst()
        }
        // ngx_parse_time in seconds: no `ms` unit.
        guard !s.hasSuffix("ms"), let ms = Values.milliseconds(String(s)) else { throw ExpiresError(reason: "invalid value") }
        if daily {
            guard ms <= 86_400_000 else { throw ExpiresError(reason: "daily time value must be less than 24 hours") }
            return .timeOfDay(ms: ms)
        }
        return .modified(ms: sign * ms, fromModification: modified)
    }
}

/// Why an `expires` value is refused (nginx's wording).
public struct ExpiresError: Error, Equatable {
    public let reason: String
}

/// `if_modified_since`: when an If-Modified-Since date answers 304.
public enum IfModifiedSinceSetting: Sendable, Equatable { case off, exact, before }

/// `disable_symlinks`: whether a path with a symbolic link in it may be served.
/// One `open_file_cache max=N inactive=TIME` occurrence: each worker keeps one cache for it
/// (its identity is the cache's; a reload makes new ones, so a reload starts with empty caches).
public final class OpenFileCacheZone: Sendable, CustomStringConvertible {
    /// Entries kept at most; the least recently used one goes first.
    public let max: Int
    /// Entries not looked up for this long are dropped.
    public let inactiveMs: Int

    public init(max: Int, inactiveMs: Int) {
        self.max = max
        self.inactiveMs = inactiveMs
    }

    public var description: String { "max=\(max) inactive=\(inactiveMs)ms" }
}

/// The open file cache in force for a location and how it looks files up there (nginx's
/// `ngx_open_file_info_t` valid, min_uses and errors).
public struct OpenFileCacheSettings: Sendable, CustomStringConvertible {
    public let zone: OpenFileCacheZone
    /// Information younger than this is used without a system call (`open_file_cache_valid`).
    public let validMs: Int
    /// Lookups of a file before its descriptor is kept open (`open_file_cache_min_uses`).
    public let minUses: Int
    /// Failed lookups are cached too (`open_file_cache_errors`).
    public let errors: Bool

    public init(zone: OpenFileCacheZone, validMs: Int = 60_000, minUses: Int = 1, errors: Bool = false) {
        self.zone = zone
        self.validMs = validMs
        self.minUses = minUses
        self.errors = errors
    }

    public var description: String { "\(zone) valid=\(validMs)ms min_uses=\(minUses) errors=\(errors)" }
}

public enum SymlinkPolicy: Sendable, Hashable {
    case off
    /// Refuse if any component (after `from`, when given) is a symlink.
    case on(from: String?)
    /// Refuse a symlink whose owner differs from its target's.
    case ifNotOwner(from: String?)
}

/// `gzip_disable`: regexes matched against User-Agent (case-insensitive), and nginx's `msie6` mask.
public struct GzipDisable: Sendable {
    public var regexes: [PCRE]
    public var msie6: Bool
}

/// One `proxy_cookie_domain` or `proxy_cookie_path` rule: `from` (variables allowed) or, for
/// `~`/`~*`, `regex` (its captures usable in `to`); how each matches: `cookieRewrite`.
public struct CookieRewrite: Sendable {
    public var from: Template
    public var regex: PCRE? = nil
    public var to: Template
}

/// `allow`/`deny` rule.
public struct AccessRule: Sendable, Hashable {
    public var allow: Bool
    /// nil for `all`.
    public var network: CIDR?
}

/// An IPv4 or IPv6 network.
public struct CIDR: Sendable, Hashable, CustomStringConvertible {
    /// 16 bytes; IPv4 is stored v4-mapped.
    public var address: [UInt8]
    public var prefixLength: Int
    public var description: String

    /// `unix:` in `allow`, `deny` and `set_real_ip_from`: every unix-domain client (whose address
    /// has no bytes), and nothing else.
    public static let unix = CIDR(address: [], prefixLength: 0, description: "unix:")

    public func contains(_ addr: [UInt8]) -> Bool {
        guard addr.count == 16, address.count == 16 else { return addr.isEmpty && address.isEmpty }
        var bits = prefixLength
        var i = 0
        while bits > 0 {
            let mask: UInt8 = bits >= 8 ? 0xFF : ~(0xFF >> UInt8(bits))
            if addr[i] & mask != address[i] & mask { return false }
            bits -= 8
            i += 1
        }
        return true
    }
}

/// `proxy_cache_valid [code…|any] TIME`.
public struct CacheValid: Sendable, Hashable {
    /// Empty means `any`.
    public var codes: [Int]
    public var ms: Int
}

/// The directives that http, server and location blocks share and inherit (nginx's loc_conf).
/// Each field is nil when not set at its level; `inherit(from:)` fills the gaps from the parent,
/// and array-valued directives (`proxy_set_header`, `add_header`, `error_page`, …) are replaced
/// whole when a level sets any of them, never merged, exactly as nginx does.
public struct HTTPSettings: Sendable {
    public var docRoot: DocRoot?
    /// `proxy_ssl_*` (merged field by field in its own `inherit`).
    public var proxySSL = ProxySSLSettings()
    /// `fastcgi_*` and `uwsgi_*` (merged field by field in their own `inherit`).
    public var fastcgi = AppServerSettings()
    public var uwsgi = AppServerSettings()
    public var index: [Template]?
    public var defaultType: String?
    public var types: [String: String]?
    public var accessLogs: [AccessLog]?
    public var accessLogOff: Bool?
    public var errorLog: ErrorLog?
    public var sendfile: Bool?
    public var tcpNopush: Bool?
    public var tcpNodelay: Bool?
    public var keepaliveTimeoutMs: Int?
    public var keepaliveHeaderSeconds: Int?
    public var keepaliveRequests: Int?
    /// `keepalive_time`: how long one client connection may serve requests.
    public var keepaliveTimeMs: Int?
    public var sendTimeoutMs: Int?
    /// `limit_rate` (bytes per second, 0 = none) and `limit_rate_after` (bytes sent unthrottled).
    public var limitRate: RateSize?
    public var limitRateAfter: RateSize?
    /// `sub_filter` pairs (a level's own list replaces the inherited one), `sub_filter_once`,
    /// `sub_filter_types` (besides text/html), `sub_filter_last_modified`.
    public var subFilters: [SubFilterPair]?
    public var subFilterOnce: Bool?
    public var subFilterTypes: [String]?
    public var subFilterLastModified: Bool?
    /// `mirror`: the URIs of the mirror subrequests made for each request (`[]`: `mirror off`).
    public var mirrors: [[UInt8]]?
    /// `mirror_request_body`: the client's body is read first and goes to the mirrors too.
    public var mirrorRequestBody: Bool?
    /// `client_body_in_file_only`: every buffered request body goes to a named file.
    public var clientBodyInFileOnly: BodyFileMode?
    public var clientMaxBodySize: Int?
    public var clientBodyBufferSize: Int?
    public var clientBodyTempPath: String?
    public var clientBodyTimeoutMs: Int?
    public var clientHeaderTimeoutMs: Int?
    /// `http2 on|off` (nginx ≥ 1.25; http, server) and the `http2_*` limits (docs/http2.md).
    public var http2: Bool?
    public var http2MaxConcurrentStreams: Int?
    public var http2RecvBufferSize: Int?
    public var http2ChunkSize: Int?
    public var http2BodyPrereadSize: Int?
    public var clientHeaderBufferSize: Int?
    public var largeClientHeaderBuffers: (count: Int, size: Int)?
    public var serverTokens: Bool?
    public var addHeaders: [AddHeader]?
    public var expires: Expires?
    public var errorPages: [ErrorPage]?
    public var accessRules: [AccessRule]?
    /// limit_req, limit_conn, auth_basic, satisfy (LimitSettings.swift).
    public var accessPhase = AccessPhaseSettings()
    /// `set_real_ip_from`, `real_ip_header` (lowercased), `real_ip_recursive`.
    public var realIPFrom: [CIDR]?
    public var realIPHeader: String?
    public var realIPRecursive: Bool?
    /// `rewrite_log` (notice-level lines for each rewrite step) and `uninitialized_variable_warn`.
    public var rewriteLog: Bool?
    public var uninitializedVariableWarn: Bool?
    public var autoindex: Bool?
    public var etag: Bool?
    public var ifModifiedSince: IfModifiedSinceSetting?
    public var maxRanges: Int?
    public var gzip: Bool?
    public var gzipTypes: [String]?
    public var gzipMinLength: Int?
    public var gzipCompLevel: Int?
    public var gzipVary: Bool?
    public var gzipProxied: GzipProxied?
    public var gzipStatic: Bool?
    /// `gzip_http_version 1.0`: HTTP/1.0 requests are gzipped too (their proxied bodies then end
    /// with the connection's close).
    public var gzipHTTP10: Bool?
    public var proxySetHeaders: [(name: String, value: Template)]?
    public var proxyHideHeaders: [String]?
    public var proxyPassHeaders: [String]?
    public var proxyHTTPVersion: String?
    public var proxyConnectTimeoutMs: Int?
    public var proxyReadTimeoutMs: Int?
    public var proxySendTimeoutMs: Int?
    public var proxyNextUpstream: UpstreamConditions?
    public var proxyNextUpstreamTries: Int?
    public var proxyNextUpstreamTimeoutMs: Int?
    public var proxyBuffering: Bool?
    public var proxyBufferSize: Int?
    public var proxyRequestBuffering: Bool?
    public var proxyInterceptErrors: Bool?
    /// `proxy_ignore_client_abort` (and the fastcgi_/uwsgi_ ones, through `applied(to:)`).
    public var proxyIgnoreClientAbort: Bool?
    public var proxyPassRequestHeaders: Bool?
    public var proxyPassRequestBody: Bool?
    /// `proxy_protocol on`: each new upstream connection starts with a PROXY protocol v1 header
    /// naming the client (nginx has it in its stream module; lb offers it to HTTP proxying too).
    public var proxyProtocol: Bool?
    /// `proxy_method`: the method sent upstream instead of the client's.
    public var proxyMethod: Template?
    /// `proxy_set_body`: the body sent upstream instead of the client's (which is read and dropped).
    public var proxySetBody: Template?
    public var proxyRedirectOff: Bool?
    /// Explicit `proxy_redirect FROM TO` pairs (replacing the default rule when present).
    public var proxyRedirects: [(from: String, to: String)]?
    public var proxyIgnoreHeaders: IgnoredHeaders?
    public var proxyCache: String??
    /// `proxy_cache $var`: the zone named per request (`proxyCache` then holds the value's
    /// source); inherited together with `proxyCache`.
    public var proxyCacheValue: Template?
    /// `resolver` in force here (http, server, location): names in a `proxy_pass` with variables
    /// are resolved through it at request time.
    public var resolver: ResolverSpec?
    /// `resolver_timeout` in force here (default 30s).
    public var resolverTimeoutMs: Int?
    public var proxyCacheKey: Template?
    public var proxyCacheValid: [CacheValid]?
    public var proxyCacheMethods: CacheMethods?
    public var proxyCacheMinUses: Int?
    public var proxyCacheBypass: [Template]?
    public var proxyNoCache: [Template]?
    public var proxyCacheLock: Bool?
    public var proxyCacheLockTimeoutMs: Int?
    public var proxyCacheLockAgeMs: Int?
    public var proxyCacheUseStale: UpstreamConditions?
    public var proxyCacheRevalidate: Bool?
    public var proxyCacheBackgroundUpdate: Bool?
    public var proxyCacheConvertHead: Bool?
    /// Clients allowed to PURGE (empty: PURGE is not handled, it is proxied like any method).
    public var proxyCachePurge: [AccessRule]?
    /// `open_file_cache max=N [inactive=TIME]`: the cache of that occurrence (locations that
    /// inherit it share it, as nginx's pointer); `.some(nil)` for `open_file_cache off`.
    public var openFileCache: OpenFileCacheZone??
    /// `open_file_cache_valid`, `open_file_cache_min_uses`, `open_file_cache_errors`: how this
    /// location looks files up in the cache in force (merged each on its own, as nginx).
    public var openFileCacheValidMs: Int?
    public var openFileCacheMinUses: Int?
    public var openFileCacheErrors: Bool?
    public var disableSymlinks: SymlinkPolicy?
    /// Location headers of lb's own redirects (nginx's header filter): made absolute, with the
    /// listening port, and with the server's first name instead of the Host header.
    public var absoluteRedirect: Bool?
    public var portInRedirect: Bool?
    public var serverNameInRedirect: Bool?
    /// error_page may apply again to the answer of an error_page target.
    public var recursiveErrorPages: Bool?
    /// 404s of missing files are written to the error log.
    public var logNotFound: Bool?
    /// Adjacent slashes of the request URI are merged (read from the listener's default server).
    public var mergeSlashes: Bool?
    /// Responses of unknown length go chunked to HTTP/1.1 clients; off: unframed, then closed.
    public var chunkedTransferEncoding: Bool?
    /// Request header names with `_` are valid (read from the listener's default server).
    public var underscoresInHeaders: Bool?
    /// Request headers with invalid names are dropped (on) or kept (off).
    public var ignoreInvalidHeaders: Bool?
    /// `charset NAME`: appended to Content-Type of the charset types lacking one; `.some(nil)` is off.
    public var charset: CharsetName??
    /// `charset_types`: the MIME types (lowercased) the charset is added to, besides text/html.
    public var charsetTypes: Set<String>?
    /// `gzip_disable`: User-Agent regexes (and the `msie6` mask) for which gzip is off.
    public var gzipDisable: GzipDisable?
    /// `proxy_cookie_domain` / `proxy_cookie_path` rewrites of upstream Set-Cookie attributes;
    /// empty when `off`.
    public var proxyCookieDomains: [CookieRewrite]?
    public var proxyCookiePaths: [CookieRewrite]?
    /// `proxy_cookie_flags` rules (CookieFlags.swift); empty when `off`.
    public var proxyCookieFlags: [CookieFlagsRule]?
    /// `keepalive_disable`: the browser classes (`msie6`, `safari`) whose keep-alive is turned off.
    public var keepaliveDisable: KeepaliveDisable?

    /// The fields above with nginx's defaults applied, for the request path: filled by
    /// `resolve()` once the merge is done (ResolvedSettings.swift).
    public internal(set) var resolved = ResolvedSettings()

    public init() {}

    /// Fills every unset field from `parent` (nginx's merge of a location with its server and http).
    public mutating func inherit(from p: HTTPSettings) {
        @inline(__always) func m<T>(_ a: inout T?, _ b: T?) { if a == nil { a = b } }
        m(&docRoot, p.docRoot)
        m(&proxyCookieFlags, p.proxyCookieFlags)
        proxySSL.inherit(from: p.proxySSL)
        fastcgi.inherit(from: p.fastcgi)
        uwsgi.inherit(from: p.uwsgi)
        m(&index, p.index)
        m(&defaultType, p.defaultType)
        m(&types, p.types)
        m(&errorLog, p.errorLog)
        m(&sendfile, p.sendfile)
        m(&tcpNopush, p.tcpNopush)
        m(&tcpNodelay, p.tcpNodelay)
        m(&keepaliveTimeoutMs, p.keepaliveTimeoutMs)
        m(&keepaliveHeaderSeconds, p.keepaliveHeaderSeconds)
        m(&keepaliveRequests, p.keepaliveRequests)
        m(&keepaliveTimeMs, p.keepaliveTimeMs)
        m(&sendTimeoutMs, p.sendTimeoutMs)
        m(&limitRate, p.limitRate)
        m(&limitRateAfter, p.limitRateAfter)
        m(&subFilters, p.subFilters)
        m(&subFilterOnce, p.subFilterOnce)
        m(&subFilterTypes, p.subFilterTypes)
        m(&subFilterLastModified, p.subFilterLastModified)
        m(&mirrors, p.mirrors)
        m(&mirrorRequestBody, p.mirrorRequestBody)
        m(&clientBodyInFileOnly, p.clientBodyInFileOnly)
        m(&clientMaxBodySize, p.clientMaxBodySize)
        m(&clientBodyBufferSize, p.clientBodyBufferSize)
        m(&clientBodyTempPath, p.clientBodyTempPath)
        m(&clientBodyTimeoutMs, p.clientBodyTimeoutMs)
        m(&clientHeaderTimeoutMs, p.clientHeaderTimeoutMs)
        m(&http2, p.http2)
        m(&http2MaxConcurrentStreams, p.http2MaxConcurrentStreams)
        m(&http2RecvBufferSize, p.http2RecvBufferSize)
        m(&http2ChunkSize, p.http2ChunkSize)
        m(&http2BodyPrereadSize, p.http2BodyPrereadSize)
        m(&clientHeaderBufferSize, p.clientHeaderBufferSize)
        m(&serverTokens, p.serverTokens)
        m(&addHeaders, p.addHeaders)
        m(&expires, p.expires)
        m(&errorPages, p.errorPages)
        m(&accessRules, p.accessRules)
        accessPhase.inherit(from: p.accessPhase)
        m(&realIPFrom, p.realIPFrom)
        m(&realIPHeader, p.realIPHeader)
        m(&realIPRecursive, p.realIPRecursive)
        m(&autoindex, p.autoindex)
        m(&etag, p.etag)
        m(&rewriteLog, p.rewriteLog)
        m(&uninitializedVariableWarn, p.uninitializedVariableWarn)
        m(&gzip, p.gzip)
        m(&gzipTypes, p.gzipTypes)
        m(&gzipMinLength, p.gzipMinLength)
        m(&gzipCompLevel, p.gzipCompLevel)
        m(&gzipVary, p.gzipVary)
        m(&gzipProxied, p.gzipProxied)
        m(&gzipStatic, p.gzipStatic)
        m(&gzipHTTP10, p.gzipHTTP10)
        m(&proxyHideHeaders, p.proxyHideHeaders)
        m(&proxyPassHeaders, p.proxyPassHeaders)
        m(&proxyHTTPVersion, p.proxyHTTPVersion)
        m(&proxyConnectTimeoutMs, p.proxyConnectTimeoutMs)
        m(&proxyReadTimeoutMs, p.proxyReadTimeoutMs)
        m(&proxySendTimeoutMs, p.proxySendTimeoutMs)
        m(&proxyNextUpstream, p.proxyNextUpstream)
        m(&proxyNextUpstreamTries, p.proxyNextUpstreamTries)
        m(&proxyNextUpstreamTimeoutMs, p.proxyNextUpstreamTimeoutMs)
        m(&proxyBuffering, p.proxyBuffering)
        m(&proxyBufferSize, p.proxyBufferSize)
        m(&proxyRequestBuffering, p.proxyRequestBuffering)
        m(&proxyInterceptErrors, p.proxyInterceptErrors)
        m(&proxyIgnoreClientAbort, p.proxyIgnoreClientAbort)
        m(&proxyPassRequestHeaders, p.proxyPassRequestHeaders)
        m(&proxyPassRequestBody, p.proxyPassRequestBody)
        m(&proxyProtocol, p.proxyProtocol)
        m(&proxyMethod, p.proxyMethod)
        m(&proxySetBody, p.proxySetBody)
        m(&proxyRedirectOff, p.proxyRedirectOff)
        if proxyRedirects == nil { proxyRedirects = p.proxyRedirects }
        m(&proxyIgnoreHeaders, p.proxyIgnoreHeaders)
        m(&proxyCacheKey, p.proxyCacheKey)
        m(&proxyCacheValid, p.proxyCacheValid)
        m(&proxyCacheMethods, p.proxyCacheMethods)
        m(&proxyCacheMinUses, p.proxyCacheMinUses)
        m(&proxyCacheBypass, p.proxyCacheBypass)
        m(&proxyNoCache, p.proxyNoCache)
        m(&proxyCacheLock, p.proxyCacheLock)
        m(&proxyCacheLockTimeoutMs, p.proxyCacheLockTimeoutMs)
        m(&proxyCacheLockAgeMs, p.proxyCacheLockAgeMs)
        m(&proxyCacheUseStale, p.proxyCacheUseStale)
        m(&proxyCacheRevalidate, p.proxyCacheRevalidate)
        m(&proxyCacheBackgroundUpdate, p.proxyCacheBackgroundUpdate)
        m(&proxyCacheConvertHead, p.proxyCacheConvertHead)
        m(&proxyCachePurge, p.proxyCachePurge)
        m(&openFileCache, p.openFileCache)
        m(&openFileCacheValidMs, p.openFileCacheValidMs)
        m(&openFileCacheMinUses, p.openFileCacheMinUses)
        m(&openFileCacheErrors, p.openFileCacheErrors)
        m(&disableSymlinks, p.disableSymlinks)
        m(&ifModifiedSince, p.ifModifiedSince)
        m(&maxRanges, p.maxRanges)
        m(&absoluteRedirect, p.absoluteRedirect)
        m(&portInRedirect, p.portInRedirect)
        m(&serverNameInRedirect, p.serverNameInRedirect)
        m(&recursiveErrorPages, p.recursiveErrorPages)
        m(&logNotFound, p.logNotFound)
        m(&mergeSlashes, p.mergeSlashes)
        m(&chunkedTransferEncoding, p.chunkedTransferEncoding)
        m(&underscoresInHeaders, p.underscoresInHeaders)
        m(&ignoreInvalidHeaders, p.ignoreInvalidHeaders)
        if charset == nil { charset = p.charset }
        m(&charsetTypes, p.charsetTypes)
        m(&gzipDisable, p.gzipDisable)
        m(&proxyCookieDomains, p.proxyCookieDomains)
        m(&proxyCookiePaths, p.proxyCookiePaths)
        m(&keepaliveDisable, p.keepaliveDisable)
        if accessLogs == nil && accessLogOff == nil { accessLogs = p.accessLogs; accessLogOff = p.accessLogOff }
        if largeClientHeaderBuffers == nil { largeClientHeaderBuffers = p.largeClientHeaderBuffers }
        if proxySetHeaders == nil { proxySetHeaders = p.proxySetHeaders }
        if proxyCache == nil { proxyCache = p.proxyCache; proxyCacheValue = p.proxyCacheValue }
        m(&resolver, p.resolver)
        m(&resolverTimeoutMs, p.resolverTimeoutMs)
    }
}

/// `root` or `alias` (they inherit together).
public enum DocRoot: Sendable, Hashable {
    case root(Template)
    /// `locationLength`: the length of the prefix or exact location that holds the alias, which
    /// the alias replaces in the URI, in its nested locations too (nginx's `clcf->alias`); nil
    /// in a regex location, where the alias is the whole path.
    case alias(Template, locationLength: Int?)
}

/// Default values built once (a literal as a property's default would be rebuilt for every settings value).
enum Defaults {
    static let index = [Template(literal: "index.html")]
    static let cacheKey = try! Template(parsing: "$scheme$proxy_host$request_uri")
    static let gzipTypes = ["text/html"]
    static let builtinTypes = ["html": "text/html", "gif": "image/gif", "jpg": "image/jpeg"]
    static let realIPHeader = HeaderNames(["x-real-ip"])
}

/// `charset NAME` or `charset $variable` (its value read per response).
public enum CharsetName: Sendable {
    case name(String)
    case variable(Template)
}
