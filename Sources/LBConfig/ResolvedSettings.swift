/// The settings the request path reads, with nginx's defaults applied once, when a location or
/// server is frozen (`HTTPSettings.resolve()`, called by `Location` and `VirtualServer`), never
/// per request: no `?? default` on the request path, and stored fields, which another module
/// reads without copying the whole settings struct.
///
/// Each field starts at its documented default; `init(_:)` overwrites it with the merged value
/// when a level set one. CompiledSettingsTests checks both: an empty config yields the defaults,
/// and a config that sets every directive reaches every field.
public struct ResolvedSettings: Sendable {
    public private(set) var index: [Template] = Defaults.index
    public private(set) var defaultType = "text/plain"
    /// Extension (lowercased) to MIME type: the `types` in force over the built-in ones (html,
    /// gif, jpg), which still answer for an extension that `types` does not name.
    public private(set) var types = Defaults.builtinTypes
    public private(set) var keepaliveTimeoutMs = 75_000
    public private(set) var keepaliveRequests = 1000
    /// `keepalive_time`: how long one client connection may serve requests.
    public private(set) var keepaliveTimeMs = 3_600_000
    public private(set) var sendTimeoutMs = 60_000
    public private(set) var clientMaxBodySize = 1024 * 1024
    public private(set) var clientBodyBufferSize = 16 * 1024
    public private(set) var clientBodyTimeoutMs = 60_000
    public private(set) var clientBodyInFileOnly = BodyFileMode.off
    /// Relative to the prefix unless absolute (joined at request time, as before).
    public private(set) var clientBodyTempPath = "client_body_temp"
    public private(set) var clientHeaderTimeoutMs = 60_000
    public private(set) var clientHeaderBufferSize = 1024
    public private(set) var largeClientHeaderBuffers: (count: Int, size: Int) = (4, 8192)
    public private(set) var serverTokens = true
    public private(set) var sendfile = false
    public private(set) var tcpNopush = false
    public private(set) var tcpNodelay = true
    public private(set) var etag = true
    public private(set) var ifModifiedSince = IfModifiedSinceSetting.exact
    public private(set) var disableSymlinks = SymlinkPolicy.off
    /// `open_file_cache` and its lookup settings; nil when off.
    public private(set) var openFileCache: OpenFileCacheSettings? = nil
    public private(set) var autoindex = false
    public private(set) var logNotFound = true
    public private(set) var keepaliveDisable = KeepaliveDisable.msie6
    public private(set) var chunkedTransferEncoding = true
    public private(set) var absoluteRedirect = true
    public private(set) var portInRedirect = true
    public private(set) var serverNameInRedirect = false
    public private(set) var recursiveErrorPages = false
    public private(set) var mergeSlashes = true
    public private(set) var underscoresInHeaders = false
    public private(set) var ignoreInvalidHeaders = true
    public private(set) var rewriteLog = false
    public private(set) var uninitializedVariableWarn = true
    /// `real_ip_header` as a lowercased name (`proxy_protocol` is read from the unresolved field).
    public private(set) var realIPHeader = Defaults.realIPHeader
    public private(set) var realIPRecursive = false
    public private(set) var resolverTimeoutMs = 30_000
    /// The `http2_*` limits (read per connection, from the server that owns it).
    public private(set) var http2MaxConcurrentStreams = 128
    public private(set) var http2RecvBufferSize = 256 * 1024
    public private(set) var http2ChunkSize = 8192
    public private(set) var http2BodyPrereadSize = 65_536

    public private(set) var gzip = false
    /// `gzip_types` and `sub_filter_types`, lowercased at load.
    public private(set) var gzipTypes = Defaults.gzipTypes
    public private(set) var gzipMinLength = 20
    public private(set) var gzipCompLevel = 1
    public private(set) var gzipVary = false
    /// An `expires` other than `off` is configured (the head stage reads it per response; the
    /// value itself, perhaps with variables, only when it applies).
    public private(set) var expires = false
    public private(set) var gzipProxied: GzipProxied = []
    public private(set) var gzipStatic = false
    public private(set) var subFilterTypes: [String] = []
    public private(set) var subFilterOnce = true
    public private(set) var subFilterLastModified = false

    /// `proxy_http_version 1.1` (else 1.0).
    public private(set) var proxyHTTP11 = false
    public private(set) var proxyConnectTimeoutMs = 60_000
    public private(set) var proxyReadTimeoutMs = 60_000
    public private(set) var proxySendTimeoutMs = 60_000
    public private(set) var proxyNextUpstream: UpstreamConditions = [.error, .timeout]
    public private(set) var proxyNextUpstreamTries = 0
    public private(set) var proxyNextUpstreamTimeoutMs = 0
    public private(set) var proxyBuffering = true
    public private(set) var proxyBufferSize = 4096
    public private(set) var proxyRequestBuffering = true
    public private(set) var proxyInterceptErrors = false
    public private(set) var proxyPassRequestHeaders = true
    public private(set) var proxyPassRequestBody = true
    /// Whether the client's request body goes upstream (not with `proxy_pass_request_body off`,
    /// nor with `proxy_set_body`, whose body replaces it).
    public private(set) var passesClientBody = true
    public private(set) var proxyProtocol = false
    public private(set) var proxyRedirectOff = false
    /// `proxy_hide_header` / `proxy_pass_header` names (lowercased at load).
    public private(set) var proxyHideHeaders = HeaderNames([])
    public private(set) var proxyPassHeaders = HeaderNames([])
    public private(set) var proxyIgnoreHeaders: IgnoredHeaders = []
    public private(set) var proxyCookieDomains: [CookieRewrite] = []
    public private(set) var proxyCookiePaths: [CookieRewrite] = []
    public private(set) var proxyCookieFlags: [CookieFlagsRule] = []
    /// `proxy_ignore_client_abort` (also the fastcgi_/uwsgi_ forms, copied here by their location).
    public private(set) var proxyIgnoreClientAbort = false
    /// `mirror_request_body`.
    public private(set) var mirrorRequestBody = true
    /// `gzip_http_version 1.0`.
    public private(set) var gzipHTTP10 = false
    /// Whether `mirror` names URIs here (one byte for the request path to test).
    public private(set) var mirrors = false
    /// `limit_rate` / `limit_rate_after` when written as sizes (0: none); -1 when the value has
    /// variables, read per request from the settings.
    public private(set) var limitRate = 0
    public private(set) var limitRateAfter = 0
    /// Cache zone name, or nil when caching is off.
    public private(set) var cacheZone: String? = nil
    public private(set) var proxyCacheKey = Defaults.cacheKey
    public private(set) var proxyCacheMethods: CacheMethods = [.get, .head]
    public private(set) var proxyCacheValid: [CacheValid] = []
    public private(set) var proxyCacheUseStale: UpstreamConditions = []
    public private(set) var proxyCacheLock = false
    public private(set) var proxyCacheLockTimeoutMs = 5000
    public private(set) var proxyCacheLockAgeMs = 5000
    public private(set) var proxyCacheRevalidate = false
    public private(set) var proxyCacheBackgroundUpdate = false
    public private(set) var proxyCacheConvertHead = true

    public private(set) var limitReqStatus = 503
    public private(set) var limitConnStatus = 503
    public private(set) var limitReqLogLevel = ErrorLog.Level.error
    /// nginx logs delays one level below rejections (`info` stays `info`).
    public private(set) var limitReqDelayLogLevel = ErrorLog.Level.warn
    public private(set) var limitConnLogLevel = ErrorLog.Level.error
    public private(set) var authRequestSet: [AuthRequestAssignment] = []

    /// nginx's defaults.
    public init() {}

    /// The merged values of `s`, defaults where no level set one.
    init(_ s: HTTPSettings) {
        @inline(__always) func v<T>(_ field: inout T, _ value: T?) { if let value { field = value } }
        v(&index, s.index)
        v(&defaultType, s.defaultType)
        if let t = s.types { types = Defaults.builtinTypes.merging(t) { _, configured in configured } }
        v(&keepaliveTimeoutMs, s.keepaliveTimeoutMs)
        v(&keepaliveRequests, s.keepaliveRequests)
        v(&keepaliveTimeMs, s.keepaliveTimeMs)
        v(&sendTimeoutMs, s.sendTimeoutMs)
        v(&clientMaxBodySize, s.clientMaxBodySize)
        v(&clientBodyBufferSize, s.clientBodyBufferSize)
        v(&clientBodyTimeoutMs, s.clientBodyTimeoutMs)
        v(&clientBodyInFileOnly, s.clientBodyInFileOnly)
        v(&clientBodyTempPath, s.clientBodyTempPath)
        v(&clientHeaderTimeoutMs, s.clientHeaderTimeoutMs)
        v(&clientHeaderBufferSize, s.clientHeaderBufferSize)
        if let l = s.largeClientHeaderBuffers { largeClientHeaderBuffers = l }
        v(&serverTokens, s.serverTokens)
        v(&sendfile, s.sendfile)
        v(&tcpNopush, s.tcpNopush)
        v(&tcpNodelay, s.tcpNodelay)
        v(&etag, s.etag)
        v(&ifModifiedSince, s.ifModifiedSince)
        v(&disableSymlinks, s.disableSymlinks)
        if case let zone?? = s.openFileCache {
            openFileCache = OpenFileCacheSettings(zone: zone, validMs: s.openFileCacheValidMs ?? 60_000,
                                                  minUses: s.openFileCacheMinUses ?? 1, errors: s.openFileCacheErrors ?? false)
        }
        v(&autoindex, s.autoindex)
        v(&logNotFound, s.logNotFound)
        v(&keepaliveDisable, s.keepaliveDisable)
        v(&chunkedTransferEncoding, s.chunkedTransferEncoding)
        v(&absoluteRedirect, s.absoluteRedirect)
        v(&portInRedirect, s.portInRedirect)
        v(&serverNameInRedirect, s.serverNameInRedirect)
        v(&recursiveErrorPages, s.recursiveErrorPages)
        v(&mergeSlashes, s.mergeSlashes)
        v(&underscoresInHeaders, s.underscoresInHeaders)
        v(&ignoreInvalidHeaders, s.ignoreInvalidHeaders)
        v(&rewriteLog, s.rewriteLog)
        v(&uninitializedVariableWarn, s.uninitializedVariableWarn)
        if let h = s.realIPHeader { realIPHeader = HeaderNames([h]) }
        v(&realIPRecursive, s.realIPRecursive)
        v(&resolverTimeoutMs, s.resolverTimeoutMs)
        v(&http2MaxConcurrentStreams, s.http2MaxConcurrentStreams)
        v(&http2RecvBufferSize, s.http2RecvBufferSize)
        v(&http2ChunkSize, s.http2ChunkSize)
        v(&http2BodyPrereadSize, s.http2BodyPrereadSize)

        v(&gzip, s.gzip)
        if let t = s.gzipTypes { gzipTypes = t.map { $0.lowercased() } }
        v(&gzipMinLength, s.gzipMinLength)
        v(&gzipCompLevel, s.gzipCompLevel)
        v(&gzipVary, s.gzipVary)
        if let e = s.expires { expires = e != .off }
        v(&gzipProxied, s.gzipProxied)
        v(&gzipStatic, s.gzipStatic)
        if let t = s.subFilterTypes { subFilterTypes = t.map { $0.lowercased() } }
        v(&subFilterOnce, s.subFilterOnce)
        v(&subFilterLastModified, s.subFilterLastModified)

        if let v = s.proxyHTTPVersion { proxyHTTP11 = v == "1.1" }
        v(&proxyConnectTimeoutMs, s.proxyConnectTimeoutMs)
        v(&proxyReadTimeoutMs, s.proxyReadTimeoutMs)
        v(&proxySendTimeoutMs, s.proxySendTimeoutMs)
        v(&proxyNextUpstream, s.proxyNextUpstream)
        v(&proxyNextUpstreamTries, s.proxyNextUpstreamTries)
        v(&proxyNextUpstreamTimeoutMs, s.proxyNextUpstreamTimeoutMs)
        v(&proxyBuffering, s.proxyBuffering)
        v(&proxyBufferSize, s.proxyBufferSize)
        v(&proxyRequestBuffering, s.proxyRequestBuffering)
        v(&proxyInterceptErrors, s.proxyInterceptErrors)
        v(&proxyPassRequestHeaders, s.proxyPassRequestHeaders)
        v(&proxyPassRequestBody, s.proxyPassRequestBody)
        passesClientBody = proxyPassRequestBody && s.proxySetBody == nil
        v(&proxyProtocol, s.proxyProtocol)
        v(&proxyRedirectOff, s.proxyRedirectOff)
        if let h = s.proxyHideHeaders { proxyHideHeaders = HeaderNames(h) }
        if let h = s.proxyPassHeaders { proxyPassHeaders = HeaderNames(h) }
        v(&proxyIgnoreHeaders, s.proxyIgnoreHeaders)
        v(&proxyCookieDomains, s.proxyCookieDomains)
        v(&proxyCookiePaths, s.proxyCookiePaths)
        v(&proxyCookieFlags, s.proxyCookieFlags)
        v(&proxyIgnoreClientAbort, s.proxyIgnoreClientAbort)
        v(&mirrorRequestBody, s.mirrorRequestBody)
        v(&gzipHTTP10, s.gzipHTTP10)
        mirrors = !(s.mirrors ?? []).isEmpty
        for (field, value) in [(\ResolvedSettings.limitRate, s.limitRate), (\ResolvedSettings.limitRateAfter, s.limitRateAfter)] {
            switch value {
            case .bytes(let n)?: self[keyPath: field] = n
            case .variable?: self[keyPath: field] = -1
            case nil: break
            }
        }
        cacheZone = s.proxyCache ?? nil
        v(&proxyCacheKey, s.proxyCacheKey)
        v(&proxyCacheMethods, s.proxyCacheMethods)
        v(&proxyCacheValid, s.proxyCacheValid)
        v(&proxyCacheUseStale, s.proxyCacheUseStale)
        v(&proxyCacheLock, s.proxyCacheLock)
        v(&proxyCacheLockTimeoutMs, s.proxyCacheLockTimeoutMs)
        v(&proxyCacheLockAgeMs, s.proxyCacheLockAgeMs)
        v(&proxyCacheRevalidate, s.proxyCacheRevalidate)
        v(&proxyCacheBackgroundUpdate, s.proxyCacheBackgroundUpdate)
        v(&proxyCacheConvertHead, s.proxyCacheConvertHead)

        let a = s.accessPhase
        v(&limitReqStatus, a.limitReqStatus)
        v(&limitConnStatus, a.limitConnStatus)
        v(&limitReqLogLevel, a.limitReqLogLevel)
        limitReqDelayLogLevel = limitReqLogLevel == .info ? .info : ErrorLog.Level(rawValue: limitReqLogLevel.rawValue + 1) ?? .info
        v(&limitConnLogLevel, a.limitConnLogLevel)
        v(&authRequestSet, a.authRequestSet)
    }
}

extension HTTPSettings {
    /// Fills `resolved` from the merged fields (once the merge with the enclosing levels is
    /// done; `Location` and `VirtualServer` call it as they freeze their settings).
    public mutating func resolve() { resolved = ResolvedSettings(self) }
}
