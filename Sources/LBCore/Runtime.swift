import Glibc
import LBConfig
import LBHTTP
import LBIO
import LBStack
import Synchronization

/// Starts the worker loops, owns the listening sockets, and handles signals: reload (HUP),
/// fast stop (TERM, INT), graceful stop (QUIT), log reopening (USR1).
public final class Runtime: @unchecked Sendable {
    public let errorLog = ErrorLogger()
    /// Wall-clock second lb started (status page uptime).
    public let startedAt = wallClock().seconds
    /// DNS lookups of `server … resolve` members (the resolver thread counts them).
    public let dnsStats = DNSStats()
    let dnsStarted = Atomic<Bool>(false)
    let loader: ConfigLoader
    let configPath: String
    private let generationBox: Mutex<Generation>
    private var generationCount = 1
    private var nextUpstreamID = 0
    public private(set) var workers: [Worker] = []
    /// Listening sockets per address: one shared by every worker (EPOLLEXCLUSIVE), or with
    /// `reuseport` one per worker (the kernel spreads connections over them).
    private var listenerFDs: [HostPort: [Int32]] = [:]
    private var workerCount = 1
    private let finishedWorkers = Atomic<Int>(0)
    let defaultAccessLog: String
    /// Where requests log without an `access_log` in force (made once, not per request).
    let defaultAccessLogs: [AccessLog]
    private var pidPath: String
    /// The processes of the `stack { }` block, when the config has one.
    private var supervisor: Supervisor?
    /// Instances a reload made surplus: stopped once traffic has moved off them.
    private var pendingStops: [([Int32], Int64)] = []

    public static let hostname: String = {
        var buf = [CChar](repeating: 0, count: 256)
        gethostname(&buf, 255)
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }()

    public var current: Generation { generationBox.withLock { $0 } }

    public init(table: RoutingTable, loader: ConfigLoader, configPath: String) {
        self.loader = loader
        self.configPath = configPath
        var next = 0
        generationBox = Mutex(Generation(id: 1, table: table, previous: nil, nextUpstreamID: &next))
        nextUpstreamID = next
        defaultAccessLog = joinPath(table.main.prefix, "logs/access.log")
        defaultAccessLogs = [AccessLog(path: defaultAccessLog, format: "combined")]
        pidPath = Runtime.pidPath(table)
    }

    /// The pid file lb writes (`pid` directive, default `logs/lb.pid` under the prefix).
    public static func pidPath(_ t: RoutingTable) -> String { t.main.pid ?? joinPath(t.main.prefix, "logs/lb.pid") }

    /// Runs until stopped; returns the process exit status.
    public func run() -> Int32 {
        let table = current.table
        errorLog.configure(table.main.errorLogs)
        blockSignals()
        if let n = table.main.workerRlimitNofile {
            var rl = rlimit(rlim_cur: rlim_t(n), rlim_max: rlim_t(n))
            setrlimit(Int32(RLIMIT_NOFILE.rawValue), &rl)
        }
        makeDirectory(directoryOf(defaultAccessLog))
        for l in table.servers.flatMap({ $0.settings.accessLogs ?? [] }) { makeDirectory(directoryOf(l.path)) }
        workerCount = max(1, table.main.workerProcesses ?? Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        if let stack = table.stack {
            let log = errorLog
            let sup = Supervisor(prefix: table.main.prefix) { log.write(raw: $0) }
            supervisor = sup
            do {
                try sup.start(stack)
            } catch {
                errorLog.log(.emerg, "\(error)")
                sup.stopAll()
                return 1
            }
        }
        do {
            try openListeners(table)
        } catch {
            errorLog.log(.emerg, error.description)
            supervisor?.stopAll()
            return 1
        }
        do {
            for i in 0..<workerCount { workers.append(try Worker(index: i, runtime: self)) }
        } catch {
            errorLog.log(.emerg, "\(error)")
            return 1
        }
        do {
            for w in workers {
                w.addListeners(listenerFDs(for: w.index, listenerFDs))
                try Threads.start { [w] in
                    w.loop.run()
                    self.finishedWorkers.add(1, ordering: .sequentiallyConsistent)
                }
            }
        } catch {
            errorLog.log(.emerg, "\(error) while starting worker threads")
            supervisor?.stopAll()
            return 1
        }
        writePid()
        startCacheManager()
        startHealthChecks(current)
        startResolver()
        startOCSPStapling()
        errorLog.log(.notice, "\(LBVersion.product) started, \(workers.count) worker thread(s), listening on \(listenerFDs.keys.map(\.description).sorted().joined(separator: ", "))")
        let status = signalLoop()
        supervisor?.stopAll()
        removeUnixSockets(listenerFDs.keys)
        removePid()
        return status
    }

    /// nginx's cache loader and manager in one thread: loads each zone's entries from disk in the
    /// background (start-up is not delayed), then once a second removes `inactive` entries and
    /// unlinks the files of removed ones. No worker loop ever walks a cache directory.
    private func startCacheManager() {
        guard !current.table.cacheZones.isEmpty else { return }
        let log = errorLog
        do throws(Threads.StartError) {
            try Threads.start { [self] in
                cacheManagerLoop(log)
            }
        } catch {
            log.log(.alert, "\(error): the cache manager did not start; cache zones stay empty until a restart")
        }
    }

    private func cacheManagerLoop(_ log: ErrorLogger) {
        while true {
            for z in current.cacheZones.values.sorted(by: { $0.zone.name < $1.zone.name }) {
                if !z.loaded.load(ordering: .acquiring) { z.load { log.log($0, $1) } }
                z.maintain()
            }
            usleep(200_000)
        }
    }

    private func makeDirectory(_ path: String) {
        var st = stat()
        if stat(path, &st) == 0 { return }
        makeDirectory(directoryOf(path))
        mkdir(path, 0o755)
    }

    /// nginx's words for a listening socket that could not be opened:
    /// `bind() to unix:/run/lb.sock failed (98: Address already in use)`.
    struct ListenError: Error, CustomStringConvertible {
        let address: HostPort
        let errno: Int32
        var description: String { "bind() to \(address) failed (\(errno): \(String(cString: strerror(errno))))" }
    }

    private func openListeners(_ table: RoutingTable) throws(ListenError) {
        for l in table.listeners where listenerFDs[l.address] == nil {
            guard let addr = SocketAddress(l.address) else { continue }
            var fds: [Int32] = []
            do {
                // A unix-domain path binds once (a second bind of the path is EADDRINUSE).
                for _ in 0..<(l.reuseport && !l.address.isUnix ? workerCount : 1) {
                    fds.append(try Socket.listen(addr, backlog: Int32(l.backlog), reusePort: l.reuseport, ipv6Only: l.ipv6only))
                }
                listenerFDs[l.address] = fds
            } catch {
                for fd in fds { close(fd) }
                throw ListenError(address: l.address, errno: error.errno)
            }
        }
    }

    /// The sockets worker `i` watches: the shared one, or its own `reuseport` one.
    private func listenerFDs(for i: Int, _ map: [HostPort: [Int32]]) -> [(Int32, HostPort)] {
        map.map { addr, fds in (fds.count > 1 ? fds[i % fds.count] : fds[0], addr) }
    }

    private func writePid() {
        makeDirectory(directoryOf(pidPath))
        let text = "\(getpid())\n"
        let fd = open(pidPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        if fd >= 0 {
            _ = text.withCString { write(fd, $0, strlen($0)) }
            close(fd)
        }
    }

    private func removePid() { unlink(pidPath) }

    /// Deletes the files of `listen unix:` sockets, at exit or when a reload drops them (nginx's
    /// `ngx_close_listening_sockets` and "deleting socket" of `ngx_init_cycle`).
    private func removeUnixSockets<S: Sequence<HostPort>>(_ addresses: S) {
        for a in addresses where a.isUnix {
            if let s = SocketAddress(a) { Socket.removeUnixSocketFile(s) }
        }
    }

    // MARK: signals

    private static let handled: [Int32] = [SIGHUP, SIGTERM, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGPIPE, SIGCHLD]

    private func blockSignals() {
        var set = sigset_t()
        sigemptyset(&set)
        for s in Runtime.handled { sigaddset(&set, s) }
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    private func signalLoop() -> Int32 {
        var set = sigset_t()
        sigemptyset(&set)
        for s in Runtime.handled { sigaddset(&set, s) }
        var pendingClose: [(Int32, Int64)] = []
        var stopDeadline: Int64 = 0
        while true {
            var ts = timespec(tv_sec: 0, tv_nsec: 200_000_000)
            let sig = sigtimedwait(&set, nil, &ts)
            let now = monotonicMillis()
            // Listener sockets removed by a reload close once workers have let go of them.
            pendingClose.removeAll { fd, at in
                if now - at > 1000 { close(fd); return true }
                return false
            }
            pendingStops.removeAll { pids, at in
                if now - at > 2000 { supervisor?.stop(pids: pids); return true }
                return false
            }
            if stopDeadline > 0 {
                if finishedWorkers.load(ordering: .sequentiallyConsistent) == workers.count { return 0 }
                if now > stopDeadline {
                    errorLog.log(.notice, "graceful shutdown timed out, exiting")
                    return 0
                }
            }
            switch sig {
            case SIGHUP:
                pendingClose += reload().map { ($0, now) }
            case SIGTERM, SIGINT:
                errorLog.log(.notice, "signal \(sig) received, exiting")
                for w in workers { w.loop.execute { w.flushLogs() } }
                usleep(50_000)
                return 0
            case SIGQUIT:
                errorLog.log(.notice, "signal \(sig) (SIGQUIT) received, shutting down gracefully")
                for w in workers { w.loop.execute { w.drain() } }
                let limit = current.table.main.workerShutdownTimeoutMs ?? 60_000
                stopDeadline = now + Int64(limit)
            case SIGUSR1:
                errorLog.log(.notice, "signal \(sig) (SIGUSR1) received, reopening logs")
                errorLog.configure(current.table.main.errorLogs)
                for w in workers { w.loop.execute { w.reopenLogs() } }
            default:
                break
            }
        }
    }

    /// Loads the config again; on success installs it and returns listener fds to close.
    func reload() -> [Int32] {
        errorLog.log(.notice, "signal 1 (SIGHUP) received from \(configPath), reconfiguring")
        let loaded: ConfigLoader.Loaded
        do {
            loaded = try loader.load(path: configPath)
        } catch {
            for w in error.earlierWarnings { errorLog.log(.warn, "\(w)") }
            errorLog.log(.emerg, "\(error)")
            errorLog.log(.alert, "reload failed, the previous configuration keeps serving")
            return []
        }
        // As nginx, a reload's warnings go to the error log (at start they went to stderr).
        for w in loaded.warnings { errorLog.log(.warn, "\(w)") }
        let table = loaded.table
        if table.stack != nil || supervisor != nil {
            if supervisor == nil {
                let log = errorLog
                supervisor = Supervisor(prefix: table.main.prefix) { log.write(raw: $0) }
            }
            do {
                let surplus = try supervisor!.apply(table.stack)
                if !surplus.isEmpty { pendingStops.append((surplus, monotonicMillis())) }
            } catch {
                errorLog.log(.emerg, "\(error)")
                errorLog.log(.alert, "reload failed, the previous configuration keeps serving")
                return []
            }
        }
        let before = Set(listenerFDs.keys)
        do {
            try openListeners(table)
        } catch {
            errorLog.log(.emerg, error.description)
            errorLog.log(.alert, "reload failed, the previous configuration keeps serving")
            return []
        }
        let wanted = Set(table.listeners.map(\.address))
        let added = listenerFDs.filter { !before.contains($0.key) }
        let removedKeys = listenerFDs.keys.filter { !wanted.contains($0) }
        let removed = removedKeys.flatMap { listenerFDs[$0] ?? [] }
        for k in removedKeys { listenerFDs[k] = nil }
        removeUnixSockets(removedKeys)
        generationCount += 1
        let gen = Generation(id: generationCount, table: table, previous: current, nextUpstreamID: &nextUpstreamID)
        for old in current.upstreams where !gen.upstreams.contains(where: { $0 === old }) {
            old.retired.store(true, ordering: .relaxed)
        }
        generationBox.withLock { $0 = gen }
        startHealthChecks(gen)
        startResolver()
        startOCSPStapling()
        errorLog.configure(table.main.errorLogs)
        for w in workers {
            let mine = listenerFDs(for: w.index, added)
            w.loop.execute {
                w.generation = gen
                w.addListeners(mine)
                w.removeListeners(removed)
            }
        }
        errorLog.log(.notice, "configuration reloaded (generation \(gen.id))")
        return removed
    }
}


/// Sends a signal to the running lb named by the config's pid file (`lb -s`).
public func sendSignal(_ name: String, table: RoutingTable) -> (ok: Bool, message: String) {
    let path = Runtime.pidPath(table)
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return (false, "open() \"\(path)\" failed (\(errno): \(String(cString: strerror(errno))))") }
    var buf = [UInt8](repeating: 0, count: 32)
    let n = read(fd, &buf, 31)
    close(fd)
    let text = String(decoding: buf[0..<max(0, n)], as: UTF8.self).filter { $0.isNumber }
    guard let pid = Int32(text), pid > 0 else { return (false, "invalid PID number \"\(text)\" in \"\(path)\"") }
    let sig: Int32
    switch name {
    case "stop": sig = SIGTERM
    case "quit": sig = SIGQUIT
    case "reopen": sig = SIGUSR1
    case "reload": sig = SIGHUP
    default: return (false, "invalid signal \"\(name)\"")
    }
    if kill(pid, sig) != 0 { return (false, "kill(\(pid), \(sig)) failed (\(errno): \(String(cString: strerror(errno))))") }
    return (true, "")
}
