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
        case .address(let resolved, let address):
            startProxy(resolved, runtime: AdHocUpstreams.runtime(address, name: resolved.hostHeader))
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
        case address(ProxyTarget, HostPort)
    }

    /// The URL made from the variables, as a target.
    func resolveVariableTarget(_ t: ProxyTarget) -> VariableTarget {
        guard let k = t.variableURLIndex, k < table.variableProxyURLs.count else { return .none }
        let template = table.variableProxyURLs[k]
        let url = String(decoding: evaluate(template), as: UTF8.self)
        switch ProxyURL.parse(url) {
        case .invalid:
            return .failed(500, "invalid URL prefix in \"\(url)\"")
        case .https:
            return .failed(500, "\"proxy_pass https://\" with variables is not supported by lb: \"\(url)\"")
        case .target(let hostPart, let hp, let uri):
            var resolved = t
            resolved.hostHeader = hostPart
            resolved.port = hp.port ?? 80
            resolved.uri = uri
            if uri != nil { rewriteState.proxyURIAsMade = true }
            if hp.port == nil, let i = table.upstreamIndex[hp.host], !table.upstreams[i].implicit {
                resolved.upstream = i
                resolved.hostHeader = hp.host
                return .group(resolved)
            }
            let port = hp.port ?? 80
            if let i = table.upstreamIndex["\(hp.host):\(port)"] {
                resolved.upstream = i
                return .group(resolved)
            }
            // nginx resolves the name through `resolver`; lb has none for proxy_pass yet.
            guard isIPLiteral(hp.host) else { return .failed(502, "no resolver defined to resolve \(hp.host)") }
            return .address(resolved, HostPort(host: hp.host, port: port))
        }
    }
}

/// The parts of a `proxy_pass` URL made at run time.
enum ProxyURL: Equatable {
    case target(hostPart: String, HostPort, uri: String?)
    case https
    case invalid

    static func parse(_ url: String) -> ProxyURL {
        if url.hasPrefix("https://") { return .https }
        guard url.hasPrefix("http://") else { return .invalid }
        let rest = url.dropFirst(7)
        let slash = rest.firstIndex(where: { $0 == "/" || $0 == "?" })
        let hostPart = String(slash.map { rest[..<$0] } ?? rest)
        guard let hp = HostPort.parse(hostPart, portOnlyAllowed: false), !hp.host.isEmpty, hp.host != "*" else { return .invalid }
        var uri = slash.map { String(rest[$0...]) }
        if uri?.hasPrefix("?") == true { uri = "/" + uri! }
        return .target(hostPart: hostPart, hp, uri: uri)
    }
}

/// Runtimes of addresses reached only through `proxy_pass` with variables: kept so that their
/// peer state and pooled connections last across requests; at most `limit`, then started afresh.
enum AdHocUpstreams {
    static let limit = 256
    private static let table = Mutex<(next: Int, runtimes: [HostPort: UpstreamRuntime])>((1 << 40, [:]))

    static func runtime(_ address: HostPort, name: String) -> UpstreamRuntime {
        table.withLock { t in
            if let r = t.runtimes[address] { return r }
            if t.runtimes.count >= limit { t.runtimes.removeAll() }
            t.next += 1
            let r = UpstreamRuntime(UpstreamGroup.adHoc(address, name: name), id: t.next)
            t.runtimes[address] = r
            return r
        }
    }
}
