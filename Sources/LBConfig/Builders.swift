/// Mutable builders the compiler fills while walking the directive tree; `Compiler.finish`
/// freezes them into the immutable `RoutingTable`.
final class SettingsBox {
    var s = HTTPSettings()
    /// The `ssl_*` directives (http and server levels only).
    var tls = TLSSettings()
}

final class ServerBuilder {
    let location: SourceLocation
    var listens: [ListenSpec] = []
    var names: [String] = []
    let settings = SettingsBox()
    var returnAction: ReturnAction?
    var tryFiles: TryFiles?
    /// rewrite, return, set, break, if of the server level.
    var rewrite: RewriteBuilder?
    var locations: [LocationBuilder] = []
    /// Exact, prefix and named patterns seen, for `duplicate location`.
    var locationKeys: Set<String> = []

    init(location: SourceLocation) { self.location = location }
}

struct ListenSpec {
    var address: HostPort
    var defaultServer: Bool
    var reuseport: Bool
    var backlog: Int?
    var ipv6only: Bool?
    var location: SourceLocation
    /// `listen … ssl`: TLS on this address (for every server on it, as nginx).
    var ssl = false
    /// `listen … proxy_protocol`: a PROXY protocol header first (for every server on it, as ssl).
    var proxyProtocol = false
    /// `listen … http2`: HTTP/2 on this address (ALPN with ssl, prior knowledge without), for
    /// every server on it, as nginx.
    var http2 = false
    var hasOptions: Bool { reuseport || backlog != nil || ipv6only != nil }
}

final class LocationBuilder {
    let match: Location.Match
    let regex: PCRE?
    let location: SourceLocation
    let settings = SettingsBox()
    var proxyPass: (url: String, location: SourceLocation)?
    var returnAction: ReturnAction?
    var tryFiles: TryFiles?
    var internalOnly = false
    /// rewrite, return, set, break, if of this location (shared with its `if` blocks).
    var rewrite: RewriteBuilder?
    /// The implicit location of an `if` block.
    var isIfBlock = false
    var special: Handler?
    var children: [LocationBuilder] = []
    var childKeys: Set<String> = []

    init(match: Location.Match, regex: PCRE?, location: SourceLocation) {
        self.match = match
        self.regex = regex
        self.location = location
    }

    /// Frees nested builders level by level instead of one recursive deinit per level.
    deinit {
        guard !children.isEmpty else { return }
        var pending = children
        children = []
        while var b = pending.popLast() {
            if isKnownUniquelyReferenced(&b) {
                pending.append(contentsOf: b.children)
                b.children = []
            }
        }
    }
}

final class UpstreamBuilder {
    let name: String
    let location: SourceLocation
    var peers: [Peer] = []
    var policy: UpstreamGroup.Policy = .roundRobin
    var policyLocation: SourceLocation?
    var keepalive: Int?
    var keepaliveTimeoutMs = 60_000
    var keepaliveRequests = 1000
    var keepaliveTimeMs = 3_600_000
    /// The first `slow_start=` of the block (refused with hash, ip_hash and random, as nginx Plus).
    var slowStartLocation: SourceLocation?
    var healthCheck: HealthCheck?
    var statePath: (String, SourceLocation)?
    var service: (name: String, location: SourceLocation, weight: Int, maxFails: Int, failTimeoutMs: Int)?
    /// `server NAME … resolve`: members found through DNS at run time.
    var dynamic: [DynamicServer] = []
    var zone: String?
    var resolver: ResolverSpec?
    var resolverTimeoutMs: Int?

    init(name: String, location: SourceLocation) {
        self.name = name
        self.location = location
    }
}

final class ServiceBuilder {
    let name: String
    let location: SourceLocation
    var command: [String] = []
    var scale = 1
    var basePort: Int?
    /// `socket PATH`: instances listen on unix-domain sockets (`$instance` in the path).
    var socket: (path: String, location: SourceLocation)?
    var environment: [(String, String)] = []
    var ready: String?
    var directory: String?

    init(name: String, location: SourceLocation) {
        self.name = name
        self.location = location
    }
}

/// Resolves upstream and listen host names at load time (never on an event loop).
public protocol HostResolver: Sendable {
    /// Every address of `host`, as IP literals; empty when the name does not resolve.
    func resolve(_ host: String) -> [String]
}
