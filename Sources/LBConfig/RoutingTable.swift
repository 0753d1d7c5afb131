/// The compiled configuration: typed, immutable, shared by every event loop, swapped whole on reload.
public final class RoutingTable: Sendable {
    public let main: MainSettings
    /// One entry per distinct listening address.
    public let listeners: [Listener]
    public let servers: [VirtualServer]
    public let upstreams: [UpstreamGroup]
    public let upstreamIndex: [String: Int]
    public let cacheZones: [CacheZone]
    /// `limit_req_zone` / `limit_conn_zone`, indexed by `LimitReqRule.zone` / `LimitConnRule.zone`.
    public let limitZones: [LimitZone]
    /// `match` blocks for health checks, by name.
    public let matches: [String: MatchBlock]
    public let logFormats: [String: LogFormat]
    public let maps: [MapBlock]
    /// The lb-specific `stack { … }` block, when present.
    public let stack: StackSpec?
    /// Some template reads `$sent_http_*` or `$upstream_http_*`.
    public let usesResponseHeaderVariables: Bool
    /// The main config file and every file it included, in reading order.
    public let files: [ConfigFile]
    /// Variables that `set` assigns somewhere (unset, they read empty with a warning).
    public let setVariables: Set<String>
    /// The URLs of `proxy_pass` directives with variables, and the addresses of `fastcgi_pass` /
    /// `uwsgi_pass` with variables as written (see `ProxyTarget.variableURLIndex`).
    public let variableProxyURLs: [Template]
    /// TLS contexts by server index (nil: the server has no certificate).
    public let tls: [TLSContext?]

    init(main: MainSettings, listeners: [Listener], servers: [VirtualServer], upstreams: [UpstreamGroup],
         cacheZones: [CacheZone], logFormats: [String: LogFormat], maps: [MapBlock], stack: StackSpec?, files: [ConfigFile],
         usesResponseHeaderVariables: Bool = false, matches: [String: MatchBlock] = [:], tls: [TLSContext?] = [], limitZones: [LimitZone] = [],
         setVariables: Set<String> = [], variableProxyURLs: [Template] = []) {
        self.limitZones = limitZones
        self.tls = tls
        self.setVariables = setVariables
        self.variableProxyURLs = variableProxyURLs
        self.usesResponseHeaderVariables = usesResponseHeaderVariables
        self.matches = matches
        self.main = main
        self.listeners = listeners
        self.servers = servers
        self.upstreams = upstreams
        var idx: [String: Int] = [:]
        for (i, u) in upstreams.enumerated() { idx[RoutingTable.upstreamKey(u.name)] = i }
        self.upstreamIndex = idx
        self.cacheZones = cacheZones
        self.logFormats = logFormats
        self.maps = maps
        self.stack = stack
        self.files = files
    }

    public func upstream(named name: String) -> UpstreamGroup? {
        upstreamIndex[RoutingTable.upstreamKey(name)].map { upstreams[$0] }
    }

    /// The key an upstream name is found by: upstream names match without regard to case, as
    /// nginx's (`ngx_http_upstream_add`); a unix-domain socket's path keeps its case.
    public static func upstreamKey(_ name: String) -> String {
        name.hasPrefix("unix:") ? name : name.lowercased()
    }

    /// Chooses the virtual server for a request that arrived on `listener` with `host` (lowercased,
    /// port stripped): exact name, longest leading wildcard, longest trailing wildcard, first
    /// regex, then the listener's default server — nginx's order.
    public func server(for listener: Int, host: String) -> VirtualServer {
        let l = listeners[listener]
        if !host.isEmpty, let i = l.names.find(host) { return servers[i] }
        return servers[l.defaultServer]
    }
}

/// Main-context settings (`worker_processes`, `pid`, `events`, …).
public struct MainSettings: Sendable {
    /// nil means `auto` (one per core).
    public var workerProcesses: Int?
    public var pid: String?
    public var errorLogs: [ErrorLog]
    public var workerConnections: Int
    public var daemon: Bool
    public var masterProcess: Bool
    public var user: String?
    public var workerRlimitNofile: Int?
    public var workerShutdownTimeoutMs: Int?
    public var prefix: String
}

/// A listening socket and the servers that share it.
public struct Listener: Sendable {
    public var address: HostPort
    public var reuseport: Bool
    public var backlog: Int
    public var ipv6only: Bool
    /// Index into `RoutingTable.servers`.
    public var defaultServer: Int
    /// Name lookup for the servers on this listener.
    public var names: ServerNameTable
    /// How many servers share this listener (1: no Host lookup needed).
    public var serverCount: Int
    /// Where `listen … ssl` made this address TLS; nil for plain HTTP.
    public var sslLocation: SourceLocation? = nil
    /// The servers on this address, by index.
    public var servers: [Int] = []
    /// `listen … http2` on this address.
    public var http2 = false
    /// Cleartext HTTP/2 with prior knowledge (`listen … http2` or the default server's
    /// `http2 on` on an address without ssl): a connection whose first octets are the HTTP/2
    /// preface is HTTP/2, any other is HTTP/1.1 (nginx ≥ 1.25.1).
    public var http2Cleartext = false
    /// SNI selection and the handshake's first context, for a TLS address.
    public var tls: TLSListener? = nil
    /// `listen … proxy_protocol`: every connection starts with a PROXY protocol header (before
    /// TLS on a TLS address); one without is closed.
    public var proxyProtocol = false
}

/// A `server { }` block.
public final class VirtualServer: Sendable {
    public let index: Int
    public let names: [String]
    public let location: SourceLocation
    public let settings: HTTPSettings
    /// A server-level `return` (runs before location matching, as nginx's rewrite phase does).
    public let serverReturn: ReturnAction?
    public let serverTryFiles: TryFiles?
    public let locations: LocationTree
    /// Named locations (`@name`) of this server.
    public let named: [String: Location]
    /// What a request for which no location matches gets (the server-level settings).
    public let fallback: Location
    /// The server level's rewrite directives (run once, before the location search).
    public let rewrite: RewriteProgram?
    /// The request path must go through the rewrite module: a rewrite program here or in a
    /// location, or a regex location with named captures. False costs nothing per request.
    public let routesWithRewrites: Bool
    /// The `server_name ~REGEX` names that capture: matched again against the Host once this
    /// server is chosen, their captures (`$1`, named ones) become the request's.
    public let capturingNames: [PCRE]

    init(index: Int, names: [String], location: SourceLocation, settings: HTTPSettings, serverReturn: ReturnAction?, serverTryFiles: TryFiles?, locations: LocationTree, named: [String: Location], fallback: Location,
         rewrite: RewriteProgram? = nil) {
        self.rewrite = rewrite
        capturingNames = names.compactMap { n in
            guard n.hasPrefix("~"), let re = try? PCRE(String(n.dropFirst()), caseless: true), re.captureCount > 0 else { return nil }
            return re
        }
        routesWithRewrites = rewrite != nil || !capturingNames.isEmpty
            || locations.all.contains { $0.rewrite != nil || !($0.regex?.names.isEmpty ?? true) }
        self.index = index
        self.names = names
        self.location = location
        var settings = settings
        settings.resolve()
        self.settings = settings
        self.serverReturn = serverReturn
        self.serverTryFiles = serverTryFiles
        self.locations = locations
        self.named = named
        self.fallback = fallback
    }

    /// The try_files in force in `location`: its own, or the server's for the server's own
    /// settings (a request no location matched).
    public func tryFiles(for location: Location) -> TryFiles? {
        location.tryFiles ?? (location === fallback ? serverTryFiles : nil)
    }
}

/// `return CODE [TEXT|URL]` or `return URL`.
public struct ReturnAction: Sendable, Hashable {
    public var code: Int
    public var text: Template?

    public init(code: Int, text: Template?) {
        self.code = code
        self.text = text
    }
}

/// A `location` block, with its settings merged from the server and http levels.
public final class Location: Sendable {
    public enum Match: Sendable, Hashable {
        case exact(String)
        case prefix(String)
        /// `^~`: a prefix that, when longest, stops the regex search.
        case prefixNoRegex(String)
        case regex(String, caseless: Bool)
        case named(String)
    }

    public let match: Match
    public let regex: PCRE?
    public let handler: Handler
    public let settings: HTTPSettings
    public let tryFiles: TryFiles?
    public let internalOnly: Bool
    /// The nested locations (`deinit` empties the tree to free deep nesting level by level).
    public let nested: LocationTree
    public let location: SourceLocation
    /// nginx's auto redirect: a prefix ending in `/` with proxy_pass answers the slashless URI with 301.
    public let autoRedirect: Bool
    /// Stable id (depth-first order) for tests and logs.
    public let id: Int
    /// `proxy_set_header` compiled for the request path: names lowercased once, not per request.
    public let proxyHeaders: [ProxyHeader]
    public let proxySetsHost: Bool
    public let proxySetsConnection: Bool
    /// The location's rewrite directives, run after it is found; nil when it has none.
    public let rewrite: RewriteProgram?
    /// `settings.accessPhase.active`, computed once (reading it through `settings` copies the
    /// access phase's settings on every request).
    public let accessPhaseActive: Bool

    public var pattern: String {
        switch match {
        case .exact(let s), .prefix(let s), .prefixNoRegex(let s), .regex(let s, _), .named(let s): s
        }
    }

    init(match: Match, regex: PCRE?, handler: Handler, settings: HTTPSettings, tryFiles: TryFiles?, internalOnly: Bool, nested: LocationTree, location: SourceLocation, autoRedirect: Bool, id: Int,
         rewrite: RewriteProgram? = nil) {
        self.rewrite = rewrite
        self.match = match
        self.regex = regex
        self.handler = handler
        var settings = settings
        settings.resolve()
        self.settings = settings
        accessPhaseActive = settings.accessPhase.active
        self.tryFiles = tryFiles
        self.internalOnly = internalOnly
        self.nested = nested
        self.location = location
        self.autoRedirect = autoRedirect
        self.id = id
        let sets = settings.proxySetHeaders ?? []
        proxyHeaders = sets.map { ProxyHeader(name: Array($0.name.utf8), lowerName: Array($0.name.lowercased().utf8), value: $0.value) }
        proxySetsHost = proxyHeaders.contains { $0.lowerName == Array("host".utf8) }
        proxySetsConnection = proxyHeaders.contains { $0.lowerName == Array("connection".utf8) }
    }

    /// Frees nested locations level by level: left to Swift, each level of a deeply nested tree
    /// costs a chain of stack frames on whichever thread drops the last generation.
    deinit {
        guard !nested.locations.isEmpty else { return }
        var pending = nested.locations
        nested.locations = []
        while var l = pending.popLast() {
            if isKnownUniquelyReferenced(&l) {
                pending.append(contentsOf: l.nested.locations)
                l.nested.locations = []
            }
        }
    }
}

/// One `proxy_set_header`, ready for the request path.
public struct ProxyHeader: Sendable {
    public let name: [UInt8]
    public let lowerName: [UInt8]
    public let value: Template
    /// The value when it has no variables.
    public let literal: [UInt8]?
    public let isConnection: Bool

    init(name: [UInt8], lowerName: [UInt8], value: Template) {
        self.name = name
        self.lowerName = lowerName
        self.value = value
        literal = value.isLiteral ? value.literalBytes : nil
        isConnection = lowerName == Array("connection".utf8)
    }
}

/// What a location does with a request.
public enum Handler: Sendable {
    case proxy(ProxyTarget)
    case `return`(ReturnAction)
    case `static`
    /// lb extensions (operations issue): status page, metrics, runtime API.
    case status
    case metrics
    case api
    /// nginx's `stub_status`: the connection and request counters, in nginx's exact text.
    case stubStatus

    /// A location's `return`: it answers in the rewrite phase, before try_files and mirrors.
    public var isReturn: Bool {
        if case .return = self { return true }
        return false
    }
}

/// A `proxy_pass` target.
public struct ProxyTarget: Sendable, Hashable {
    /// Index into `RoutingTable.upstreams` (a direct address gets an implicit group, as nginx).
    public var upstream: Int
    /// The `http://host:port` part as written, for `$proxy_host` and `Host`.
    public var hostHeader: String
    public var port: Int
    /// The URI part after the host (`/` or `/v1/`), nil when none: then the request URI passes unchanged.
    public var uri: String?
    /// `proxy_pass https://…`: the location's TLS client context and `proxy_ssl_*` settings.
    public var tls: UpstreamTLS? = nil
    /// HTTP, FastCGI (`fastcgi_pass`) or uwsgi (`uwsgi_pass`).
    public var kind: UpstreamKind = .http
    /// A pass with variables: `upstream` is then `-(k + 1)` for the URL (or app-server address)
    /// `RoutingTable.variableProxyURLs[k]`, made per request (kept out of this struct, which every
    /// proxied request copies).
    public var variableURLIndex: Int? { upstream < 0 ? -upstream - 1 : nil }
}

/// An `upstream { }` block (or the implicit group of a direct `proxy_pass`).
public struct UpstreamGroup: Sendable {
    public enum Policy: Sendable, Hashable {
        case roundRobin
        case leastConn
        case ipHash
        case hash(Template, consistent: Bool)
        case random(two: Bool)
    }

    public var name: String
    public var peers: [Peer]
    public var policy: Policy
    public var keepalive: Int?
    public var keepaliveTimeoutMs: Int
    public var keepaliveRequests: Int
    /// `keepalive_time`: how long one upstream connection may serve requests (default 1h).
    public var keepaliveTimeMs = 3_600_000
    public var location: SourceLocation
    public var implicit: Bool
    /// `stack` service that supplies the peers (`server service:app;`), if any.
    public var service: String?
    /// Active health checks (`health_check`), if configured.
    public var healthCheck: HealthCheck? = nil
    /// `state FILE`: the servers as the runtime API left them (read at load when it exists).
    public var statePath: String? = nil
    /// `server NAME … resolve`: members that follow DNS (their peers are added at run time).
    public var dynamic: [DynamicServer] = []
    /// The resolver the dynamic members use (nil without any).
    public var resolver: ResolverSpec? = nil
    /// `zone NAME [SIZE]`.
    public var zone: String? = nil
}

/// A server in an upstream group.
public struct Peer: Sendable, Hashable {
    /// The resolved address (IP literal and port).
    public var address: HostPort
    /// The name as written (`app:5000`), for logs and hashing as nginx does.
    public var name: String
    public var weight: Int
    public var maxFails: Int
    public var failTimeoutMs: Int
    public var maxConns: Int
    public var backup: Bool
    public var down: Bool
    /// `slow_start=TIME` (nginx Plus): after coming back (health check passed, fail_timeout over,
    /// joined through DNS) the weight grows from almost nothing to `weight` over this time.
    public var slowStartMs = 0

    public init(address: HostPort, name: String, weight: Int, maxFails: Int, failTimeoutMs: Int, maxConns: Int, backup: Bool, down: Bool) {
        self.address = address
        self.name = name
        self.weight = weight
        self.maxFails = maxFails
        self.failTimeoutMs = failTimeoutMs
        self.maxConns = maxConns
        self.backup = backup
        self.down = down
    }
}

/// `proxy_cache_path … keys_zone=NAME:SIZE`.
public struct CacheZone: Sendable, Hashable {
    public var name: String
    public var path: String
    public var levels: [Int]
    public var keysZoneSize: Int
    public var maxSize: Int?
    public var inactiveMs: Int
    public var useTempPath: Bool
    public var location: SourceLocation
}

/// `log_format NAME [escape=…] STRING…`.
public struct LogFormat: Sendable, Hashable {
    public var name: String
    public enum Escape: Sendable, Hashable { case `default`, json, none }
    public var escape: Escape
    public var template: Template

    public static let combined = LogFormat(
        name: "combined", escape: .default,
        template: try! Template(parsing: "$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent \"$http_referer\" \"$http_user_agent\""))
}

/// `map SOURCE $VAR { … }`.
public struct MapBlock: Sendable {
    public var source: Template
    public var variable: String
    public var defaultValue: Template
    public var exact: [String: Template]
    public var regexes: [(PCRE, Template)]
    public var hostnames: Bool
    /// Set for a `split_clients` block (SplitClients.swift): the hash of `source` picks the value.
    public var splitClients: SplitClients? = nil
    /// Set for a `geo` block (Geo.swift): the client's address (or `source`'s) picks the value.
    public var geo: GeoBlock? = nil
    /// `hostnames` keys with wildcards (HostnameWildcards.swift), tried after `exact`.
    public var wildcards: HostnameWildcards? = nil
    /// `volatile`: evaluated at each use; otherwise once per request, as nginx caches variables.
    public var volatile = false
}

/// The lb-specific `stack { service NAME { … } }` block.
public struct StackSpec: Sendable {
    public var services: [ServiceSpec]
}

/// One supervised service of the stack.
public struct ServiceSpec: Sendable {
    public var name: String
    public var command: [String]
    public var scale: Int
    /// First port; instance i listens on `basePort + i`.
    public var basePort: Int?
    public var environment: [(String, String)]
    public var ready: String?
    public var directory: String?
    public var location: SourceLocation
    /// `socket PATH` (absolute, `$instance` not yet filled in): instances listen on unix-domain
    /// sockets instead of ports.
    public var socket: String? = nil

    /// The unix-domain socket path of instance `index` (0-based), with `socket PATH`.
    public func socketPath(instance index: Int) -> String? {
        socket.map { $0.replacing("$instance", with: "\(index + 1)") }
    }
}
