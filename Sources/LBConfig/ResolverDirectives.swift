/// `resolver`, `resolver_timeout` and upstream `zone`: the settings of run-time name resolution
/// for `server NAME resolve` (nginx 1.27.3's open-source form).

/// `resolver ADDRESS[:PORT] … [valid=TIME] [ipv4=on|off] [ipv6=on|off]` with its `resolver_timeout`.
public struct ResolverSpec: Sendable, Hashable {
    /// The name servers: IP literals with ports (53 unless written).
    public var servers: [HostPort]
    /// `valid=`: replaces the answers' TTLs.
    public var validMs: Int?
    public var ipv4: Bool
    public var ipv6: Bool
    /// `resolver_timeout` (default 30s): one lookup, every retry included.
    public var timeoutMs: Int

    public init(servers: [HostPort], validMs: Int? = nil, ipv4: Bool = true, ipv6: Bool = true, timeoutMs: Int = 30_000) {
        self.servers = servers
        self.validMs = validMs
        self.ipv4 = ipv4
        self.ipv6 = ipv6
        self.timeoutMs = timeoutMs
    }
}

/// `server NAME[:PORT] resolve` or `server NAME service=SERVICE resolve` in an upstream: members
/// that follow DNS at run time.
public struct DynamicServer: Sendable, Hashable {
    /// The host name as written, without the port.
    public var name: String
    /// The port of every address (A/AAAA); SRV records bring their own.
    public var port: Int
    /// `service=`: resolve SRV records of `srvName`.
    public var service: String?
    /// The server as written (`app.internal:8080`): the peers' name for hashing and logs.
    public var written: String
    public var weight: Int
    /// Whether `weight=` was written (SRV weights apply only when it was not, as nginx).
    public var weightSet: Bool
    public var maxFails: Int
    public var failTimeoutMs: Int
    public var maxConns: Int
    public var backup: Bool
    public var down: Bool
    /// `slow_start=TIME` for the members found (see `Peer.slowStartMs`).
    public var slowStartMs = 0

    /// The name asked for: SRV (nginx: a service without a dot becomes `_SERVICE._tcp.NAME`, one
    /// with a dot is joined as is) or the host name itself.
    public var queryName: String {
        guard let s = service else { return name }
        return s.contains(".") ? "\(s).\(name)" : "_\(s)._tcp.\(name)"
    }
}

extension Compiler {
    static let resolverDirectives: [DirectiveSpec] = [
        DirectiveSpec("resolver", [.http, .server, .location, .upstream], .atLeast(1),
                      note: "name servers for `server … resolve` (http or upstream level)") { c, d in
            let spec = try c.resolverSpec(d)
            switch c.context {
            case .upstream: c.upstream!.resolver = spec
            case .http:
                c.httpResolver = spec
                c.settings.s.resolver = spec
            // For `proxy_pass` with variables naming a host at request time.
            default: c.settings.s.resolver = spec
            }
        },
        DirectiveSpec("resolver_timeout", [.http, .server, .location, .upstream], .exactly(1), default: "30s") { c, d in
            let ms = try c.time(d)
            switch c.context {
            case .upstream: c.upstream!.resolverTimeoutMs = ms
            case .http:
                c.httpResolverTimeoutMs = ms
                c.settings.s.resolverTimeoutMs = ms
            default: c.settings.s.resolverTimeoutMs = ms
            }
        },
        DirectiveSpec("zone", .upstream, .between(1, 2), note: "required for `server … resolve`; lb's upstream state is always shared by its workers") { c, d in
            guard !d.args[0].text.isEmpty else { throw ConfigError("invalid zone name \"\"", at: d.args[0].location) }
            if d.args.count == 2 {
                guard let size = Values.size(d.args[1].text) else {
                    throw ConfigError("invalid zone size \"\(d.args[1].text)\"", at: d.args[1].location)
                }
                if size < 8 * 4096 { throw ConfigError("zone \"\(d.args[0].text)\" is too small", at: d.args[1].location) }
            }
            c.upstream!.zone = d.args[0].text
        },
    ]

    /// nginx's ngx_resolver_create: addresses (names resolved now), `valid=`, `ipv4=`, `ipv6=`.
    func resolverSpec(_ d: Directive) throws -> ResolverSpec {
        var spec = ResolverSpec(servers: [])
        for a in d.args {
            let t = a.text
            if t.hasPrefix("valid=") {
                guard let ms = Values.milliseconds(String(t.dropFirst(6))) else { throw ConfigError("invalid parameter: \(t)", at: a.location) }
                spec.validMs = ms
            } else if t.hasPrefix("ipv4=") || t.hasPrefix("ipv6=") {
                guard let on = Values.flag(String(t.dropFirst(5))) else { throw ConfigError("invalid parameter: \(t)", at: a.location) }
                if t.hasPrefix("ipv4=") { spec.ipv4 = on } else { spec.ipv6 = on }
            } else if t.hasPrefix("status_zone=") {
                throw ConfigError("\"status_zone\" of \"resolver\" is not supported by lb (DNS counters are on the status page)", at: a.location)
            } else {
                guard let hp = HostPort.parse(t, portOnlyAllowed: false), hp.host != "*" else {
                    throw ConfigError("invalid host in resolver \"\(t)\"", at: a.location)
                }
                let addrs = isIPLiteral(hp.host) ? [hp.host] : resolver.resolve(hp.host)
                guard !addrs.isEmpty else { throw ConfigError("host not found in resolver \"\(t)\"", at: a.location) }
                for ip in addrs { spec.servers.append(HostPort(host: ip, port: hp.port ?? 53)) }
            }
        }
        if !spec.ipv4 && !spec.ipv6 { throw ConfigError("\"ipv4\" and \"ipv6\" cannot both be \"off\"", at: d.location) }
        if spec.servers.isEmpty { throw ConfigError("no name servers defined", at: d.location) }
        return spec
    }

    /// The resolver an upstream with `resolve` servers uses: its own, else the http level's, with
    /// `resolver_timeout` likewise (default 30s). nginx's errors when it has none or no zone.
    func upstreamResolver(_ u: UpstreamBuilder) throws -> ResolverSpec? {
        guard !u.dynamic.isEmpty else { return nil }
        let at = "\(u.location.file):\(u.location.line)"
        guard u.zone != nil else {
            throw ConfigError("resolving names at run time requires upstream \"\(u.name)\" in \(at) to be in shared memory")
        }
        guard var spec = u.resolver ?? httpResolver else {
            throw ConfigError("no resolver defined to resolve names at run time in upstream \"\(u.name)\" in \(at)")
        }
        spec.timeoutMs = u.resolverTimeoutMs ?? httpResolverTimeoutMs ?? 30_000
        return spec
    }
}
