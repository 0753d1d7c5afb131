import Glibc
import LBConfig
import LBIO

/// The resolver thread: one per process, started when some upstream has `server … resolve`. It
/// asks DNS for every such line when its answer expires (TTL or `valid=`, plus a second, as
/// nginx), applies the answer to the upstream's balancer under its lock (workers see it at their
/// next pick), starts health-check probes for new members through the workers' task queues, and
/// removes vanished members once their last request finished. Lookups block this thread only
/// (poll with deadlines); no worker loop ever waits for DNS. It follows reloads by reading the
/// current generation on every round.
final class DynamicMembership: @unchecked Sendable {
    unowned let runtime: Runtime
    /// One resolver (and cache) per distinct `resolver` setting.
    var resolvers: [ResolverSpec: DNSResolver] = [:]
    /// When each `server … resolve` line is asked next (monotonic ms), by "upstream id/line".
    var due: [String: Int64] = [:]
    /// Lines whose last lookup failed (to log when they resolve again).
    var failing: Set<String> = []
    var lastPurge: Int64 = 0

    init(runtime: Runtime) { self.runtime = runtime }

    func resolver(for spec: ResolverSpec) -> DNSResolver {
        if let r = resolvers[spec] { return r }
        let servers = spec.servers.compactMap { SocketAddress(ip: $0.host, port: $0.port ?? 53) }
        let transport = UDPTransport(servers: servers, timeoutMs: spec.timeoutMs, stats: runtime.dnsStats)
        let r = DNSResolver(transport: transport, validMs: spec.validMs, ipv4: spec.ipv4, ipv6: spec.ipv6, stats: runtime.dnsStats,
                            now: { monotonicMillis() })
        resolvers[spec] = r
        return r
    }

    func run() {
        while true {
            round()
            usleep(100_000)
        }
    }

    /// One pass over the current generation's dynamic upstreams.
    func round() {
        let gen = runtime.current
        var live: Set<String> = []
        for rt in gen.upstreams where !rt.group.dynamic.isEmpty {
            guard let spec = rt.group.resolver else { continue }
            sweep(rt)
            for (k, server) in rt.group.dynamic.enumerated() {
                let key = "\(rt.id)/\(k)"
                live.insert(key)
                if let d = due[key], d > monotonicMillis() { continue }
                due[key] = refresh(rt, line: k, server, resolver(for: spec), table: gen.table, key: key)
            }
        }
        due = due.filter { live.contains($0.key) }
        failing = failing.filter { live.contains($0) }
        // A reload that changed a `resolver` leaves its old resolver (and cache) unused.
        let specs = Set(gen.upstreams.compactMap { $0.group.dynamic.isEmpty ? nil : $0.group.resolver })
        resolvers = resolvers.filter { specs.contains($0.key) }
        let now = monotonicMillis()
        if now - lastPurge > 60_000 {
            lastPurge = now
            for r in resolvers.values { r.purge() }
        }
    }

    /// Removes members that vanished from DNS once their last request finished.
    func sweep(_ rt: UpstreamRuntime) {
        let gone = rt.balancer.withLock { core -> [String] in core.sweepVanished().map { core.peers[$0].text } }
        for text in gone {
            runtime.errorLog.log(.notice, "upstream \"\(rt.group.name)\": peer \(text) removed (gone from DNS, its requests finished)")
        }
    }

    /// Asks DNS for one line, applies the answer, and returns when to ask again.
    func refresh(_ rt: UpstreamRuntime, line k: Int, _ server: DynamicServer, _ resolver: DNSResolver, table: RoutingTable, key: String) -> Int64 {
        let result: Result<(addresses: [ResolvedAddress], lifetimeMs: Int64), DNSLookupError>
        if server.service != nil {
            result = resolver.service(server.queryName)
        } else {
            result = resolver.addresses(server.name).map { (ips, life) in (ips.map { ResolvedAddress(ip: $0) }, life) }
        }
        let what = server.service.map { "service \($0) of \(server.name)" } ?? server.name
        let now = monotonicMillis()
        let addresses: [ResolvedAddress]
        var next: Int64
        switch result {
        case .success(let (a, life)):
            addresses = a
            // nginx: ask again a second after the answer expires.
            next = now + max(0, life) + 1000
            if failing.remove(key) != nil {
                runtime.errorLog.log(.notice, "\(what) resolved again for upstream \"\(rt.group.name)\"")
            }
        case .failure(let e) where e.isNXDomain:
            // The name is gone: so are its members (nginx does the same).
            addresses = []
            next = now + 1000
            failing.insert(key)
            runtime.errorLog.log(.error, "\(what) could not be resolved \(e) for upstream \"\(rt.group.name)\", its members are removed")
        case .failure(let e):
            // An outage (time-out, SERVFAIL, unreachable servers): keep what DNS said last.
            let kept = rt.balancer.withLock { $0.memberCount(source: k) }
            failing.insert(key)
            runtime.errorLog.log(.error, "\(what) could not be resolved \(e), upstream \"\(rt.group.name)\" keeps its \(kept) last known member(s)")
            return now + Int64(max(rt.group.resolver?.timeoutMs ?? 1000, 1000))
        }
        let (change, texts) = rt.balancer.withLock { core -> (MembershipChange, [Int: (String, Int)]) in
            let c = core.applyResolved(source: k, server: server, addresses: addresses)
            var t: [Int: (String, Int)] = [:]
            for i in c.added + c.draining + c.removed + c.revived + c.updated { t[i] = (core.peers[i].text, core.peers[i].id) }
            return (c, t)
        }
        let name = "upstream \"\(rt.group.name)\""
        for i in change.added {
            runtime.errorLog.log(.notice, "\(name): peer \(texts[i]!.0) added from DNS (\(what), id \(texts[i]!.1))")
            runtime.startProbe(rt, peer: i, table: table, offsetMs: 10)
        }
        for i in change.revived { runtime.errorLog.log(.notice, "\(name): peer \(texts[i]!.0) is back in DNS (\(what))") }
        for i in change.updated { runtime.errorLog.log(.notice, "\(name): peer \(texts[i]!.0) changed weight or priority in DNS (\(what))") }
        for i in change.draining { runtime.errorLog.log(.notice, "\(name): peer \(texts[i]!.0) gone from DNS (\(what)), draining") }
        for i in change.removed { runtime.errorLog.log(.notice, "\(name): peer \(texts[i]!.0) gone from DNS (\(what)), removed") }
        return next
    }
}

extension Runtime {
    /// Starts the resolver thread once some loaded configuration has `server … resolve`.
    func startResolver() {
        guard current.upstreams.contains(where: { !$0.group.dynamic.isEmpty }),
              !dnsStarted.exchange(true, ordering: .relaxed) else { return }
        let service = DynamicMembership(runtime: self)
        do {
            try Threads.start { service.run() }
        } catch {
            dnsStarted.store(false, ordering: .relaxed)
            errorLog.log(.alert, "\(error): no resolver thread; members named with \"resolve\" are not looked up")
        }
    }
}
