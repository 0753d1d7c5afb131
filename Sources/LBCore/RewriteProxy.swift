import LBConfig
import LBHTTP
import Synchronization

/// `proxy_pass` with variables (nginx's `proxy_lengths`): the URL is made per request; its host
/// names an upstream group when one has that name, else an address (groups of addresses no
/// configuration names are made on first use and kept, a bounded number).
extension ClientConnection {
    /// Resolves a variable target and starts proxying, or answers 500/502 as nginx.
    func startVariableProxy(_ t: ProxyTarget) {
        guard let k = t.variableURLIndex, k < table.variableProxyURLs.count else { return }
        let template = table.variableProxyURLs[k]
        let url = String(decoding: evaluate(template), as: UTF8.self)
        switch ProxyURL.parse(url) {
        case .invalid:
            log(.error, "invalid URL prefix in \"\(url)\"")
            respondError(500)
        case .https:
            log(.error, "\"proxy_pass https://\" with variables is not supported by lb: \"\(url)\"")
            respondError(500)
        case .target(let hostPart, let hp, let uri):
            var resolved = t
            resolved.hostHeader = hostPart
            resolved.port = hp.port ?? 80
            resolved.uri = uri
            if uri != nil { rewriteState.proxyURIAsMade = true }
            if hp.port == nil, let i = table.upstreamIndex[hp.host], !table.upstreams[i].implicit {
                resolved.upstream = i
                resolved.hostHeader = hp.host
                startProxy(resolved)
                return
            }
            let port = hp.port ?? 80
            if let i = table.upstreamIndex["\(hp.host):\(port)"] {
                resolved.upstream = i
                startProxy(resolved)
                return
            }
            guard isIPLiteral(hp.host) else {
                // nginx resolves the name through `resolver`; lb has none for proxy_pass yet.
                log(.error, "no resolver defined to resolve \(hp.host)")
                respondError(502)
                return
            }
            startProxy(resolved, runtime: AdHocUpstreams.runtime(HostPort(host: hp.host, port: port), name: hostPart))
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
