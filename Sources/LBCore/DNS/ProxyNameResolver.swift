import Glibc
import LBConfig
import LBIO
import Synchronization

/// Names that a `proxy_pass` with variables gives at request time, resolved through the
/// `resolver` in force (nginx's `ngx_resolve_start` from `ngx_http_upstream_init_request`).
/// Lookups block threads of their own, never a worker loop: a request waits for its answer
/// while its loop serves others. Answers are kept for their TTL (or `valid=`) and read by the
/// loops without waiting; a name asked again while its lookup runs waits for the same answer.
/// Shared by every worker; a thread starts when a lookup finds none idle (at most `maxThreads`,
/// so that a name whose servers never answer holds up only its own requests).
final class ProxyNameResolver: Sendable {
    static let shared = ProxyNameResolver()

    /// One name under one `resolver` setting (its servers, `valid=`, families, timeout).
    struct Key: Hashable, Sendable {
        var spec: ResolverSpec
        var name: String
    }

    typealias Answer = Result<[String], DNSLookupError>
    typealias Done = @Sendable (Answer) -> Void

    private struct State {
        /// Answers still valid: addresses and when they expire (monotonic ms).
        var answers: [Key: (ips: [String], until: Int64)] = [:]
        /// Lookups asked and not yet answered, with everyone waiting for each.
        var waiting: [Key: [Done]] = [:]
        /// Keys in the order asked (the thread's queue).
        var queue: [Key] = []
        var threads = 0
        var idle = 0
        var startFailed = false
        /// The process's DNS counters (status page, metrics), from the first request that asked.
        var stats: DNSStats?
    }

    /// Beyond this many kept answers, the expired ones go (then all, if none had).
    static let maxAnswers = 4096
    static let maxThreads = 8

    private let state = Mutex(State())
    private nonisolated(unsafe) let ready: UnsafeMutablePointer<sem_t>

    private init() {
        ready = .allocate(capacity: 1)
        sem_init(ready, 0, 0)
    }

    /// A kept answer for `name` that is still valid, from any thread without waiting.
    func cached(_ name: String, spec: ResolverSpec, now: Int64 = monotonicMillis()) -> [String]? {
        state.withLock { s in
            guard let a = s.answers[Key(spec: spec, name: ProxyNameResolver.lowercased(name))], a.until > now else { return nil }
            return a.ips
        }
    }

    /// Resolves `name` on the resolver thread; `done` runs there with the addresses or the error.
    /// Lookups count in `stats`.
    func resolve(_ name: String, spec: ResolverSpec, stats: DNSStats, done: @escaping Done) {
        let key = Key(spec: spec, name: ProxyNameResolver.lowercased(name))
        // nil: no thread can run lookups; else whether a thread must start for this one.
        let start: Bool? = state.withLock { s in
            if s.stats == nil { s.stats = stats }
            if s.startFailed { return nil }
            if s.waiting[key] != nil {
                s.waiting[key]!.append(done)
                return false
            }
            s.waiting[key] = [done]
            s.queue.append(key)
            if s.queue.count <= s.idle || s.threads >= ProxyNameResolver.maxThreads { return false }
            s.threads += 1
            return true
        }
        guard let start else {
            done(.failure(.unreachable("no resolver thread")))
            return
        }
        if start {
            do {
                try Threads.start { ProxyNameResolver.shared.run() }
            } catch {
                let stranded: [Done] = state.withLock { s in
                    s.threads -= 1
                    if s.threads > 0 { return [] } // the others will take it
                    s.startFailed = true
                    let all = s.waiting.values.flatMap { $0 }
                    s.waiting.removeAll()
                    s.queue.removeAll()
                    return all
                }
                for d in stranded { d(.failure(.unreachable("no resolver thread"))) }
                return
            }
        }
        sem_post(ready)
    }

    private func run() {
        // Owned by this thread: one DNS client (and its cache) per `resolver` setting.
        var resolvers: [ResolverSpec: DNSResolver] = [:]
        let stats = state.withLock { $0.stats } ?? DNSStats()
        while true {
            state.withLock { $0.idle += 1 }
            while sem_wait(ready) != 0 {}
            let next: Key? = state.withLock { s in
                s.idle -= 1
                return s.queue.isEmpty ? nil : s.queue.removeFirst()
            }
            guard let key = next else { continue }
            let r: DNSResolver
            if let have = resolvers[key.spec] {
                r = have
            } else {
                let servers = key.spec.servers.compactMap { SocketAddress(ip: $0.host, port: $0.port ?? 53) }
                let transport = UDPTransport(servers: servers, timeoutMs: key.spec.timeoutMs, stats: stats)
                r = DNSResolver(transport: transport, validMs: key.spec.validMs, ipv4: key.spec.ipv4, ipv6: key.spec.ipv6,
                                stats: stats, now: { monotonicMillis() })
                if resolvers.count >= 64 { resolvers.removeAll() }
                resolvers[key.spec] = r
            }
            let answer: Answer
            switch r.addresses(key.name) {
            case .success(let (ips, lifetimeMs)) where !ips.isEmpty:
                answer = .success(ips)
                state.withLock { s in
                    if s.answers.count >= ProxyNameResolver.maxAnswers {
                        let now = monotonicMillis()
                        s.answers = s.answers.filter { $0.value.until > now }
                        if s.answers.count >= ProxyNameResolver.maxAnswers { s.answers.removeAll() }
                    }
                    s.answers[key] = (ips, monotonicMillis() + lifetimeMs)
                }
            case .success:
                answer = .failure(.rcode(3)) // no address of the families asked: nginx's "Host not found"
            case .failure(let e):
                answer = .failure(e)
            }
            let waiters = state.withLock { $0.waiting.removeValue(forKey: key) } ?? []
            for d in waiters { d(answer) }
            if r.cache.count > 4096 { r.purge() }
        }
    }

    static func lowercased(_ s: String) -> String { String(decoding: s.utf8.map { $0 >= 65 && $0 <= 90 ? $0 | 0x20 : $0 }, as: UTF8.self) }
}
