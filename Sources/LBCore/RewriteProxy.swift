import LBConfig
import LBHTTP
import Synchronization

/// `proxy_pass` with variables (nginx's `proxy_lengths`): the URL is made per request; its host
/// names an upstream group when one has that name, else an address (groups of addresses no
/// configuration names are made on first use and kept, a bounded number).
extension ClientConnection {
    /// Resolves a variable target and starts proxying, or answers 500/502 as nginx.
    func startVariableProxy(_ t: ProxyTarget) {
        switch resolveVariableTarget(t) {
        case .none:
            return
        case .failed(let status, let message):
            log(.error, message)
            respondError(status)
        case .group(let resolved):
            startProxy(resolved)
        case .address(let resolved, let address, let hostPart):
            startProxy(resolved, runtime: AdHocUpstreams.runtime([address], name: hostPart))
        case .name(let resolved, let host, let port, let hostPart):
            resolveThenProxy(resolved, host: host, port: port, hostPart: hostPart)
        }
    }

    /// Where a `proxy_pass` with variables goes for this request.
    enum VariableTarget {
        case none
        /// nginx answers `status` and logs `message`.
        case failed(Int, String)
        /// A configured upstream group (`resolved.upstream`).
        case group(ProxyTarget)
        /// An IP address no configuration names.
        case address(ProxyTarget, HostPort, hostPart: String)
        /// A host name no configuration names: resolved through `resolver` at request time.
        case name(ProxyTarget, host: String, port: Int, hostPart: String)
    }

    /// The URL made from the variables, as a target.
    func resolveVariableTarget(_ t: ProxyTarget) -> VariableTarget {
        guard let k = t.variableURLIndex, k < table.variableProxyURLs.count else { return .none }
        let template = table.variableProxyURLs[k]
        let url = String(decoding: evaluate(template), as: UTF8.self)
        if t.kind != .http { return appServerVariableTarget(t, value: url) } // AppServerVariablePass.swift
        switch ProxyURL.parse(url) {
        case .invalid:
            return .failed(500, "invalid URL prefix in \"\(url)\"")
        case .target(let hostPart, let hp, let uri, let https):
            var resolved = t
            // As nginx (`plcf->ssl` is set for every proxy_pass with variables): the location's
            // upstream TLS context was made at load, used when the URL made says https.
            if !https { resolved.tls = nil }
            let defaultPort = https ? 443 : 80
            resolved.hostHeader = hostPart
            resolved.port = hp.port ?? defaultPort
            resolved.uri = uri
            if uri != nil { rewriteState.proxyURIAsMade = true }
            if hp.isUnix {
                // A unix-domain socket: connected directly (as an upstream of that path if one
                // has it), Host `localhost` as nginx sends for unix upstreams.
                resolved.hostHeader = "localhost"
                if let i = table.upstreamIndex[hp.host] { resolved.upstream = i; return .group(resolved) }
                return .address(resolved, hp, hostPart: hostPart)
            }
            if hp.port == nil, let i = table.upstreamIndex[hp.host.lowercased()], !table.upstreams[i].implicit {
                resolved.upstream = i
                resolved.hostHeader = hp.host
                return .group(resolved)
            }
            let port = hp.port ?? defaultPort
            if let i = table.upstreamIndex["\(hp.host):\(port)".lowercased()] {
                resolved.upstream = i
                return .group(resolved)
            }
            guard isIPLiteral(hp.host) else { return .name(resolved, host: hp.host, port: port, hostPart: hostPart) }
            return .address(resolved, HostPort(host: hp.host, port: port), hostPart: hostPart)
        }
    }

    /// A host name that is no upstream: resolved through the `resolver` in force, its addresses
    /// tried in turn as one implicit group (nginx's `ngx_http_upstream_create_round_robin_peer`).
    /// A kept answer is used at once; otherwise the request waits (state `.resolving`) while its
    /// loop serves others. Without a resolver, or when the name cannot be resolved, 502 as nginx.
    func resolveThenProxy(_ t: ProxyTarget, host: String, port: Int, hostPart: String) {
        guard var spec = settings.resolver else {
            log(.error, "no resolver defined to resolve \(host)")
            respondError(502)
            return
        }
        spec.timeoutMs = settings.resolved.resolverTimeoutMs
        if let ips = ProxyNameResolver.shared.cached(host, spec: spec) {
            startProxy(t, runtime: AdHocUpstreams.runtime(ips.map { HostPort(host: $0, port: port) }, name: hostPart))
            return
        }
        ex.responder = .resolving
        worker.loop.setDeadline(self, afterMillis: spec.timeoutMs + 1000)
        let me = ConnectionReference(self)
        let loop = worker.loop
        let token = ObjectIdentifier(ex)
        ProxyNameResolver.shared.resolve(host, spec: spec, stats: worker.runtime.dnsStats) { answer in
            loop.execute {
                me.connection.turn { me.connection.nameResolved(answer, token: token, t, host: host, port: port, hostPart: hostPart) }
            }
        }
    }

    /// The resolver answered for the request waiting on it (if it still is).
    func nameResolved(_ answer: ProxyNameResolver.Answer, token: ObjectIdentifier, _ t: ProxyTarget, host: String, port: Int,
                      hostPart: String) {
        guard state == .exchange, let ex, case .resolving = ex.responder, ObjectIdentifier(ex) == token else { return }
        ex.responder = .routing
        switch answer {
        case .success(let ips):
            startProxy(t, runtime: AdHocUpstreams.runtime(ips.map { HostPort(host: $0, port: port) }, name: hostPart))
        case .failure(let e):
            // No server answering at all: nginx keeps asking until resolver_timeout, then says so.
            if case .unreachable = e {
                log(.error, "\(host) could not be resolved \(DNSLookupError.timedOut)")
            } else {
                log(.error, "\(host) could not be resolved \(e)")
            }
            respondError(502)
        }
    }

    /// `resolver_timeout` passed with no answer (the lookup queued behind others): as nginx, 502.
    func resolvingTimedOut() {
        ex.responder = .routing
        log(.error, "name could not be resolved (110: Operation timed out)")
        respondError(502)
    }
}

/// The parts of a `proxy_pass` URL made at run time.
enum ProxyURL: Equatable {
    case target(hostPart: String, HostPort, uri: String?, https: Bool)
    case invalid

    static func parse(_ url: String) -> ProxyURL {
        let https = url.hasPrefix("https://")
        guard https || url.hasPrefix("http://") else { return .invalid }
        let rest = url.dropFirst(https ? 8 : 7)
        if rest.utf8.count >= 5 && rest.prefix(5).lowercased() == "unix:" {
            // `http://unix:PATH` and `http://unix:PATH:/uri`: the path ends at the next colon
            // (nginx's ngx_parse_unix_domain_url).
            let afterScheme = rest.dropFirst(5)
            let end = afterScheme.firstIndex(of: ":") ?? afterScheme.endIndex
            guard let hp = HostPort.unix(afterScheme[..<end]) else { return .invalid }
            let uri = end == afterScheme.endIndex ? nil : String(afterScheme[afterScheme.index(after: end)...])
            return .target(hostPart: "unix:" + afterScheme[..<end], hp, uri: uri.flatMap { $0.isEmpty ? nil : $0 }, https: https)
        }
        let slash = rest.firstIndex(where: { $0 == "/" || $0 == "?" })
        let hostPart = String(slash.map { rest[..<$0] } ?? rest)
        guard let hp = HostPort.parse(hostPart, portOnlyAllowed: false), !hp.host.isEmpty, hp.host != "*" else { return .invalid }
        var uri = slash.map { String(rest[$0...]) }
        if uri?.hasPrefix("?") == true { uri = "/" + uri! }
        return .target(hostPart: hostPart, hp, uri: uri, https: https)
    }
}

/// Runtimes of addresses reached only through `proxy_pass` with variables: kept so that their
/// peer state and pooled connections last across requests; at most `limit`, then started afresh.
enum AdHocUpstreams {
    static let limit = 256
    private static let table = Mutex<(next: Int, runtimes: [[HostPort]: UpstreamRuntime])>((1 << 40, [:]))

    /// The runtime of these addresses (one, or every address a name resolved to).
    static func runtime(_ addresses: [HostPort], name: String) -> UpstreamRuntime {
        table.withLock { t in
            if let r = t.runtimes[addresses] { return r }
            if t.runtimes.count >= limit { t.runtimes.removeAll() }
            t.next += 1
            let r = UpstreamRuntime(UpstreamGroup.adHoc(addresses, name: name), id: t.next)
            t.runtimes[addresses] = r
            return r
        }
    }
}
