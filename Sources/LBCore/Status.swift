import LBConfig
import LBHTTP
import LBIO

/// The status page (`status;`), its JSON (`?format=json`), and Prometheus metrics (`metrics;`),
/// built from the shared state: balancer peers (under their locks), cache zone counters, server
/// and worker counters (atomics). Nothing here is on the request hot path of other locations.
struct JSONWriter {
    var out: [UInt8] = []

    mutating func raw(_ s: String) { out += Array(s.utf8) }

    mutating func string(_ s: String) {
        out.append(UInt8(ascii: "\""))
        for u in s.utf8 {
            switch u {
            case UInt8(ascii: "\""): out += Array("\\\"".utf8)
            case UInt8(ascii: "\\"): out += Array("\\\\".utf8)
            case 0x0A: out += Array("\\n".utf8)
            case 0x0D: out += Array("\\r".utf8)
            case 0x09: out += Array("\\t".utf8)
            case 0..<0x20: out += Array(String(format: u).utf8)
            default: out.append(u)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    mutating func number(_ d: Double?) {
        guard let d, d.isFinite else { raw("null"); return }
        raw(d == d.rounded() && abs(d) < 1e15 ? String(Int(d)) : String((d * 1000).rounded() / 1000))
    }
}

private extension String {
    init(format u: UInt8) {
        let hex = Array("0123456789abcdef".utf8)
        self = "\\u00" + String(decoding: [hex[Int(u >> 4)], hex[Int(u & 15)]], as: UTF8.self)
    }
}

extension ClientConnection {
    /// A snapshot of everything the status page shows, as JSON (documented in docs/operations.md).
    func statusJSON() -> [UInt8] {
        let rt = worker.runtime
        let gen = worker.generation
        let now = worker.loop.now
        let wall = wallClock()
        var j = JSONWriter()
        j.raw("{\"version\":\"\(LBVersion.product)\",\"generation\":\(gen.id),\"time\":\(wall.seconds),\"uptime_s\":\(wall.seconds - rt.startedAt),")
        j.raw("\"hostname\":")
        j.string(Runtime.hostname)
        // Workers.
        j.raw(",\"workers\":[")
        for (i, w) in rt.workers.enumerated() {
            if i > 0 { j.raw(",") }
            j.raw("{\"index\":\(w.index),\"connections\":\(w.stats.connections.load(ordering: .relaxed)),\"accepted\":\(w.stats.accepted.load(ordering: .relaxed)),\"requests\":\(w.stats.requests.load(ordering: .relaxed))}")
        }
        // Server blocks.
        j.raw("],\"servers\":[")
        for (i, s) in gen.table.servers.enumerated() {
            if i > 0 { j.raw(",") }
            let counts = gen.serverStats[s.index].byClass
            j.raw("{\"index\":\(s.index),\"names\":[")
            for (k, n) in s.names.enumerated() { if k > 0 { j.raw(",") }; j.string(n) }
            j.raw("],\"requests\":{")
            for (k, (c, n)) in counts.enumerated() { if k > 0 { j.raw(",") }; j.raw("\"\(c)\":\(n)") }
            j.raw("},\"total\":\(counts.reduce(0) { $0 + $1.1 })}")
        }
        // Upstreams and peers.
        j.raw("],\"upstreams\":[")
        var first = true
        for u in gen.upstreams {
            if !first { j.raw(",") }
            first = false
            let core = u.balancer.withLock { $0 }
            j.raw("{\"name\":")
            j.string(u.group.name)
            j.raw(",\"policy\":")
            j.string(policyName(u.group.policy))
            j.raw(",\"implicit\":\(u.group.implicit),\"health_check\":")
            if let hc = u.group.healthCheck {
                j.raw("{\"uri\":")
                j.string(hc.uri)
                j.raw(",\"interval_ms\":\(hc.intervalMs),\"timeout_ms\":\(hc.timeoutMs),\"fails\":\(hc.fails),\"passes\":\(hc.passes),\"mandatory\":\(hc.mandatory)}")
            } else {
                j.raw("null")
            }
            j.raw(",\"peers\":[")
            for (pi, p) in core.peers.filter({ !$0.removed }).enumerated() {
                if pi > 0 { j.raw(",") }
                j.raw("{\"id\":\(p.id),\"address\":")
                j.string(p.text)
                j.raw(",\"name\":")
                j.string(p.config.name)
                j.raw(",\"state\":")
                j.string(p.state(now))
                j.raw(",\"health\":")
                j.string(p.health.rawValue)
                j.raw(",\"weight\":\(p.weight),\"backup\":\(p.backup),\"active\":\(p.conns),\"requests\":\(p.requests),\"failures\":\(p.failures),")
                j.raw("\"last_failure\":")
                if p.lastFailure.isEmpty { j.raw("null") } else { j.string(p.lastFailure) }
                j.raw(",\"last_failure_at\":\(p.lastFailureAt > 0 ? String(p.lastFailureAt / 1000) : "null"),\"response_ms\":{\"p50\":")
                j.number(p.latency.quantileMs(0.5))
                j.raw(",\"p90\":")
                j.number(p.latency.quantileMs(0.9))
                j.raw(",\"p99\":")
                j.number(p.latency.quantileMs(0.99))
                j.raw(",\"count\":\(p.latency.total)},\"health_checks\":[")
                for (ci, c) in p.checks.enumerated() {
                    if ci > 0 { j.raw(",") }
                    j.raw("{\"at\":\(c.at / 1000),\"ok\":\(c.ok),\"ms\":")
                    j.number(Double(c.micros) / 1000)
                    j.raw(",\"detail\":")
                    j.string(c.detail)
                    j.raw("}")
                }
                j.raw("]}")
            }
            j.raw("]}")
        }
        // Cache zones.
        j.raw("],\"caches\":[")
        for (i, z) in gen.cacheZones.values.sorted(by: { $0.zone.name < $1.zone.name }).enumerated() {
            if i > 0 { j.raw(",") }
            let s = z.snapshot
            j.raw("{\"zone\":")
            j.string(s.name)
            j.raw(",\"entries\":\(s.entries),\"size\":\(s.diskBytes),\"max_size\":\(s.maxSize.map(String.init) ?? "null"),\"keys_zone_used\":\(s.memoryBytes),")
            j.raw("\"hits\":\(s.hits),\"misses\":\(s.misses),\"stale\":\(s.stale),\"updating\":\(s.updating),\"revalidated\":\(s.revalidated),\"expired\":\(s.expired),\"bypassed\":\(s.bypassed),\"stored\":\(s.stores)}")
        }
        j.raw("]}\n")
        return j.out
    }

    func policyName(_ p: UpstreamGroup.Policy) -> String {
        switch p {
        case .roundRobin: "round_robin"
        case .leastConn: "least_conn"
        case .ipHash: "ip_hash"
        case .hash(_, let c): c ? "hash_consistent" : "hash"
        case .random(let two): two ? "random_two" : "random"
        }
    }

    /// `status;` — the HTML page, or the JSON with `?format=json` (or a path ending in `.json`).
    func serveStatus() {
        let wantsJSON = queryString().contains("format=json") || ex.uri.suffix(5) == Array(".json".utf8)
        if wantsJSON {
            var extra = Buffer()
            extra.append("Cache-Control: no-store\r\n")
            respond(200, contentType: "application/json", body: statusJSON(), extraHeaders: extra.readableBytes)
            extra.release()
        } else {
            respond(200, contentType: "text/html; charset=utf-8", body: StatusPage.html)
        }
    }

    /// nginx's `stub_status` counters, summed over the workers: active connections, accepted and
    /// handled connections, requests, and the active ones split into reading a request head,
    /// writing (a request in progress) and waiting (idle keep-alive or not yet sent a byte).
    func stubStatusCounters() -> (active: Int, accepts: Int, handled: Int, requests: Int, reading: Int, writing: Int, waiting: Int) {
        var active = 0, accepts = 0, requests = 0, reading = 0, writing = 0
        for w in worker.runtime.workers {
            active += w.stats.connections.load(ordering: .relaxed)
            accepts += w.stats.accepted.load(ordering: .relaxed)
            requests += w.stats.requests.load(ordering: .relaxed)
            reading += w.stats.reading.load(ordering: .relaxed)
            writing += w.stats.writing.load(ordering: .relaxed)
        }
        // Each counter is read on its own: clamp what a concurrent change could make negative.
        let waiting = max(0, active - reading - writing)
        // lb closes no accepted connection for lack of resources: handled equals accepts.
        return (active, accepts, accepts, requests, reading, writing, waiting)
    }

    /// `stub_status;` — nginx's exact text, which monitoring tools parse (GET and HEAD only).
    func serveStubStatus() {
        guard req.method == .get || req.method == .head else {
            respondError(405)
            return
        }
        let c = stubStatusCounters()
        let text = "Active connections: \(c.active) \nserver accepts handled requests\n \(c.accepts) \(c.handled) \(c.requests) \nReading: \(c.reading) Writing: \(c.writing) Waiting: \(c.waiting) \n"
        respond(200, contentType: "text/plain", body: Array(text.utf8))
    }

    /// `metrics;` — Prometheus text exposition format 0.0.4.
    func serveMetrics() {
        respond(200, contentType: "text/plain; version=0.0.4; charset=utf-8", body: Array(metricsText().utf8))
    }

    func metricsText() -> String {
        let rt = worker.runtime
        let gen = worker.generation
        let now = worker.loop.now
        var m = ""
        func esc(_ s: String) -> String {
            var o = ""
            for c in s {
                switch c {
                case "\\": o += "\\\\"
                case "\"": o += "\\\""
                case "\n": o += "\\n"
                default: o.append(c)
                }
            }
            return o
        }
        func family(_ name: String, _ type: String, _ help: String) { m += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n" }
        family("lb_up", "gauge", "Whether lb is running (always 1).")
        m += "lb_up 1\n"
        family("lb_start_time_seconds", "gauge", "Unix time lb started.")
        m += "lb_start_time_seconds \(rt.startedAt)\n"
        family("lb_config_generation", "gauge", "Configuration generation (1 at start, +1 per reload).")
        m += "lb_config_generation \(gen.id)\n"
        family("lb_worker_connections", "gauge", "Open client connections per worker thread.")
        for w in rt.workers { m += "lb_worker_connections{worker=\"\(w.index)\"} \(w.stats.connections.load(ordering: .relaxed))\n" }
        family("lb_worker_accepted_total", "counter", "Client connections accepted per worker thread.")
        for w in rt.workers { m += "lb_worker_accepted_total{worker=\"\(w.index)\"} \(w.stats.accepted.load(ordering: .relaxed))\n" }
        family("lb_worker_requests_total", "counter", "Requests handled per worker thread.")
        for w in rt.workers { m += "lb_worker_requests_total{worker=\"\(w.index)\"} \(w.stats.requests.load(ordering: .relaxed))\n" }
        family("lb_server_requests_total", "counter", "Requests per server block and status class.")
        for s in gen.table.servers {
            let name = esc(s.names.first ?? "")
            for (c, n) in gen.serverStats[s.index].byClass { m += "lb_server_requests_total{server=\"\(name)\",index=\"\(s.index)\",class=\"\(c)\"} \(n)\n" }
        }
        // Every peer of every upstream with its label set, taken once under each upstream's lock.
        let peers = gen.upstreams.flatMap { u in
            u.balancer.withLock { $0.peers.filter { !$0.removed } }.map { (labels: "upstream=\"\(esc(u.group.name))\",peer=\"\($0.text)\"", peer: $0, checked: u.group.healthCheck != nil) }
        }
        func perPeer(_ name: String, _ type: String, _ help: String, _ value: (PeerState) -> String) {
            family(name, type, help)
            for p in peers { m += "\(name){\(p.labels)} \(value(p.peer))\n" }
        }
        perPeer("lb_upstream_peer_up", "gauge", "1 when the peer can take requests (not down, not failed out, not checking).") {
            $0.state(now) == "up" || $0.state(now) == "backup" ? "1" : "0"
        }
        perPeer("lb_upstream_peer_active_connections", "gauge", "Requests in flight to the peer.") { "\($0.conns)" }
        perPeer("lb_upstream_peer_weight", "gauge", "Configured weight of the peer.") { "\($0.weight)" }
        perPeer("lb_upstream_peer_requests_total", "counter", "Requests sent to the peer.") { "\($0.requests)" }
        perPeer("lb_upstream_peer_failures_total", "counter", "Failed attempts on the peer (proxy_next_upstream conditions).") { "\($0.failures)" }
        family("lb_upstream_peer_health_checks_total", "counter", "Active health checks by result (of the ones kept in memory since start).")
        for p in peers where p.checked {
            m += "lb_upstream_peer_health_checks_total{\(p.labels),result=\"pass\"} \(p.peer.checkPasses)\n"
            m += "lb_upstream_peer_health_checks_total{\(p.labels),result=\"fail\"} \(p.peer.checkFails)\n"
        }
        family("lb_upstream_peer_response_seconds", "histogram", "Upstream response time (connect to the end of the response).")
        for (labels, p, _) in peers {
            var cumulative = 0
            for (b, bound) in LatencyHistogram.bounds.enumerated() {
                cumulative += p.latency.counts[b]
                m += "lb_upstream_peer_response_seconds_bucket{\(labels),le=\"\(bound)\"} \(cumulative)\n"
            }
            m += "lb_upstream_peer_response_seconds_bucket{\(labels),le=\"+Inf\"} \(p.latency.total)\n"
            m += "lb_upstream_peer_response_seconds_sum{\(labels)} \(Double(p.latency.sumMicros) / 1e6)\n"
            m += "lb_upstream_peer_response_seconds_count{\(labels)} \(p.latency.total)\n"
        }
        let zones = gen.cacheZones.values.sorted { $0.zone.name < $1.zone.name }.map(\.snapshot)
        family("lb_cache_requests_total", "counter", "Cache lookups by $upstream_cache_status.")
        for z in zones {
            for (st, n) in [("hit", z.hits), ("miss", z.misses), ("stale", z.stale), ("updating", z.updating), ("revalidated", z.revalidated), ("expired", z.expired), ("bypass", z.bypassed)] {
                m += "lb_cache_requests_total{zone=\"\(esc(z.name))\",status=\"\(st)\"} \(n)\n"
            }
        }
        family("lb_cache_entries", "gauge", "Entries in the cache zone's index.")
        for z in zones { m += "lb_cache_entries{zone=\"\(esc(z.name))\"} \(z.entries)\n" }
        family("lb_cache_size_bytes", "gauge", "Bytes of the zone's entry files on disk.")
        for z in zones { m += "lb_cache_size_bytes{zone=\"\(esc(z.name))\"} \(z.diskBytes)\n" }
        let dns = rt.dnsStats
        family("lb_dns_queries_total", "counter", "DNS queries sent for upstream members found through DNS (server … resolve).")
        m += "lb_dns_queries_total \(dns.queries.load(ordering: .relaxed))\n"
        family("lb_dns_tcp_retries_total", "counter", "DNS queries asked again over TCP after a truncated UDP answer.")
        m += "lb_dns_tcp_retries_total \(dns.tcp.load(ordering: .relaxed))\n"
        family("lb_dns_errors_total", "counter", "DNS lookups that failed, by kind.")
        m += "lb_dns_errors_total{kind=\"timeout\"} \(dns.timeouts.load(ordering: .relaxed))\n"
        m += "lb_dns_errors_total{kind=\"nxdomain\"} \(dns.nxdomain.load(ordering: .relaxed))\n"
        m += "lb_dns_errors_total{kind=\"other\"} \(dns.failures.load(ordering: .relaxed))\n"
        return m
    }
}
