import CLBShim
import Glibc
import LBConfig
import Synchronization
import LBIO

/// Runs the processes a `stack { }` block declares: starts them in order and waits until each is
/// ready, prefixes their output, restarts crashed ones with backoff, scales them on reload, and
/// stops them all when lb stops. Children die with lb even on SIGKILL (PR_SET_PDEATHSIG).
public final class Supervisor: @unchecked Sendable {
    /// One running (or restarting) instance of a service.
    final class Instance: @unchecked Sendable {
        let service: String
        let index: Int
        var spec: ServiceSpec
        var pid: Int32 = 0
        var outFD: Int32 = -1
        var pending: [UInt8] = []
        var restarts = 0
        var restartAt: Int64 = 0
        var stopping = false

        init(service: String, index: Int, spec: ServiceSpec) {
            self.service = service
            self.index = index
            self.spec = spec
        }

        var label: String { spec.scale > 1 || index > 0 ? "\(service).\(index + 1)" : service }
        var port: Int? { spec.basePort.map { $0 + index } }
        /// `socket PATH`: the unix-domain socket this instance listens on.
        var socketPath: String? { spec.socketPath(instance: index) }
    }

    let prefix: String
    let log: @Sendable (String) -> Void
    private let state = Mutex<[Instance]>([])
    private var monitorStarted = false
    private let stopping = Atomic<Bool>(false)

    public init(prefix: String, log: @escaping @Sendable (String) -> Void) {
        self.prefix = prefix
        self.log = log
    }

    /// Starts every service in order, each instance ready before the next service starts.
    public func start(_ stack: StackSpec) throws {
        for s in stack.services {
            for i in 0..<s.scale { try launch(Instance(service: s.name, index: i, spec: s), wait: true) }
        }
        startMonitor()
    }

    /// Brings the running set in line with a reloaded stack. New instances are started (and ready)
    /// before this returns; surplus ones are returned to be stopped after the new routing table is in.
    public func apply(_ stack: StackSpec?) throws -> [Int32] {
        let wanted = stack?.services ?? []
        var surplus: [Int32] = []
        let current = state.withLock { $0 }
        for s in wanted {
            let have = current.filter { $0.service == s.name }
            let changed = have.first.map { $0.spec.command != s.command || $0.spec.basePort != s.basePort || $0.spec.socket != s.socket } ?? false
            for inst in have where changed || inst.index >= s.scale {
                inst.stopping = true
                surplus.append(inst.pid)
            }
            for i in 0..<s.scale where changed || !have.contains(where: { $0.index == i }) {
                try launch(Instance(service: s.name, index: i, spec: s), wait: true, replacing: changed)
            }
            for inst in have where !changed { inst.spec.scale = s.scale }
        }
        for inst in current where !wanted.contains(where: { $0.name == inst.service }) {
            inst.stopping = true
            surplus.append(inst.pid)
        }
        if !monitorStarted { startMonitor() }
        return surplus
    }

    /// Stops the given instances (after a reload has moved traffic away from them).
    public func stop(pids: [Int32]) {
        for p in pids where p > 0 { kill(p, SIGTERM) }
    }

    /// Stops everything: SIGTERM, then SIGKILL after `graceMs`.
    public func stopAll(graceMs: Int = 5000) {
        stopping.store(true, ordering: .sequentiallyConsistent)
        let pids = state.withLock { s in s.map(\.pid).filter { $0 > 0 } }
        for p in pids { kill(p, SIGTERM) }
        var waited = 0
        while waited < graceMs {
            let alive = pids.filter { kill($0, 0) == 0 && !reaped($0) }
            if alive.isEmpty { return }
            usleep(50_000)
            waited += 50
        }
        for p in pids { kill(p, SIGKILL) }
    }

    private func reaped(_ pid: Int32) -> Bool {
        var status: Int32 = 0
        return waitpid(pid, &status, WNOHANG) == pid
    }

    // MARK: launching

    private func resolveProgram(_ name: String) -> String? {
        if name.contains("/") { return name.hasPrefix("/") ? name : joinPath(prefix, name) }
        var candidates: [String] = []
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buf, 4095)
        if n > 0 { candidates.append(joinPath(directoryOf(String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)), name)) }
        if let path = getenv("PATH") {
            for d in String(cString: path).split(separator: ":") { candidates.append(joinPath(String(d), name)) }
        }
        return candidates.first { access($0, X_OK) == 0 }
    }

    private func launch(_ inst: Instance, wait: Bool, replacing: Bool = false) throws {
        let s = inst.spec
        func expand(_ a: String) -> String {
            var r = a.replacing("$instance", with: "\(inst.index + 1)")
            r = r.replacing("$name", with: s.name)
            if let p = inst.port { r = r.replacing("$port", with: "\(p)") }
            if let p = inst.socketPath { r = r.replacing("$socket", with: p) }
            return r
        }
        let args = s.command.map(expand)
        guard let program = resolveProgram(args[0]) else {
            throw StackError("service \"\(s.name)\": program \"\(args[0])\" not found beside lb or on PATH")
        }
        var env: [String] = []
        var e = environ
        while let p = e.pointee {
            env.append(String(cString: p))
            e += 1
        }
        for (k, v) in s.environment { env.append("\(k)=\(expand(v))") }
        if let p = inst.port { env.append("PORT=\(p)") }
        if let p = inst.socketPath { env.append("SOCKET=\(p)") }
        env.append("INSTANCE_NAME=\(s.name)-\(inst.index + 1)")
        var fds: [Int32] = [0, 0]
        guard lb_pipe_cloexec(&fds) == 0 else { throw StackError("pipe2() failed (\(errno))") }
        let pid = withCStrings([program] + args.dropFirst()) { argv in
            withCStrings(env) { envp in
                lb_spawn(program, argv, envp, s.directory, fds[1])
            }
        }
        close(fds[1])
        guard pid > 0 else {
            close(fds[0])
            throw StackError("fork() failed for service \"\(s.name)\" (\(errno))")
        }
        _ = fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK)
        inst.pid = pid
        inst.outFD = fds[0]
        state.withLock { list in
            if let i = list.firstIndex(where: { $0.service == inst.service && $0.index == inst.index && !$0.stopping }), !replacing {
                list[i] = inst
            } else {
                list.append(inst)
            }
        }
        log("service \(inst.label) started (pid \(pid)): \(args.joined(separator: " "))")
        if wait { try waitReady(inst) }
    }

    private func waitReady(_ inst: Instance) throws {
        let deadline = monotonic() + 15_000
        let check = inst.spec.ready ?? (inst.port.map { "tcp:127.0.0.1:\($0)" } ?? inst.socketPath.map { "unix:\($0)" } ?? "")
        if check.isEmpty { return }
        while monotonic() < deadline {
            drainOutput()
            var status: Int32 = 0
            if waitpid(inst.pid, &status, WNOHANG) == inst.pid {
                throw StackError("service \(inst.label) exited during start-up (status \(status >> 8))")
            }
            if probe(check, inst) {
                log("service \(inst.label) is ready")
                return
            }
            usleep(50_000)
        }
        throw StackError("service \(inst.label) did not become ready within 15 s (\(check))")
    }

    /// `tcp:HOST:PORT` and `unix:PATH` connect; `http:/PATH` must answer 2xx on the instance's port.
    private func probe(_ check: String, _ inst: Instance) -> Bool {
        if check.hasPrefix("unix:") {
            guard let addr = SocketAddress(unixPath: String(check.dropFirst(5))),
                  let (fd, _) = try? Socket.connect(addr) else { return false }
            Socket.close(fd)
            return true
        }
        if check.hasPrefix("tcp:") {
            let hp = check.dropFirst(4)
            guard let colon = hp.lastIndex(of: ":"), let port = Int(hp[hp.index(after: colon)...]) else { return false }
            return tcpCheck(String(hp[..<colon]), port, request: nil)
        }
        if check.hasPrefix("http:"), let port = inst.port {
            return tcpCheck("127.0.0.1", port, request: "GET \(check.dropFirst(5)) HTTP/1.0\r\nHost: localhost\r\n\r\n")
        }
        return true
    }

    private func tcpCheck(_ host: String, _ port: Int, request: String?) -> Bool {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = UInt16(port).bigEndian
        guard inet_pton(AF_INET, host, &addr.sin_addr) == 1 else { return false }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        defer { close(fd) }
        var tv = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let ok = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } } == 0
        guard ok, let request else { return ok }
        _ = request.withCString { send(fd, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
        var buf = [UInt8](repeating: 0, count: 32)
        let n = recv(fd, &buf, 32, 0)
        guard n >= 12 else { return false }
        return buf[9] == UInt8(ascii: "2")
    }

    // MARK: monitoring

    private func startMonitor() {
        final class Box: @unchecked Sendable { let s: Supervisor; init(_ s: Supervisor) { self.s = s } }
        let box = Box(self)
        do {
            try Threads.start { box.s.monitor() }
            monitorStarted = true
        } catch {
            log("lb: \(error): services are not monitored (no restarts, no output)\n")
        }
    }

    private func monitor() {
        while true {
            drainOutput(waitMs: 100)
            if stopping.load(ordering: .sequentiallyConsistent) { continue }
            reapAndRestart()
        }
    }

    private func reapAndRestart() {
        let now = monotonic()
        let list = state.withLock { $0 }
        for inst in list {
            if inst.pid > 0 {
                var status: Int32 = 0
                let r = waitpid(inst.pid, &status, WNOHANG)
                guard r == inst.pid else { continue }
                drainOutput()
                let how = (status & 0x7F) == 0 ? "exited with status \((status >> 8) & 0xFF)" : "killed by signal \(status & 0x7F)"
                inst.pid = 0
                if inst.stopping {
                    log("service \(inst.label) \(how) (stopped)")
                    if inst.outFD >= 0 { close(inst.outFD); inst.outFD = -1 }
                    state.withLock { $0.removeAll { $0 === inst } }
                    continue
                }
                let delay = min(30_000, 500 << min(inst.restarts, 6))
                inst.restarts += 1
                inst.restartAt = now + Int64(delay)
                log("service \(inst.label) \(how), restarting in \(delay) ms")
            } else if inst.restartAt > 0 && now >= inst.restartAt && !inst.stopping {
                inst.restartAt = 0
                if inst.outFD >= 0 { close(inst.outFD); inst.outFD = -1 }
                do { try launch(inst, wait: false) } catch { log("\(error)") }
            }
        }
    }

    /// Copies children's output to lb's log, each line prefixed with `[service.N]`.
    private func drainOutput(waitMs: Int32 = 0) {
        let list = state.withLock { $0 }.filter { $0.outFD >= 0 }
        var pfds = list.map { pollfd(fd: $0.outFD, events: Int16(POLLIN), revents: 0) }
        if pfds.isEmpty {
            if waitMs > 0 { usleep(UInt32(waitMs) * 1000) }
            return
        }
        guard poll(&pfds, nfds_t(pfds.count), waitMs) > 0 else { return }
        var buf = [UInt8](repeating: 0, count: 8192)
        for (i, p) in pfds.enumerated() where p.revents != 0 {
            let inst = list[i]
            while true {
                let n = read(inst.outFD, &buf, buf.count)
                if n <= 0 { break }
                inst.pending += buf[0..<n]
            }
            while let nl = inst.pending.firstIndex(of: 0x0A) {
                log("[\(inst.label)] " + String(decoding: inst.pending[..<nl], as: UTF8.self))
                inst.pending.removeSubrange(...nl)
            }
        }
    }

    private func monotonic() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }
}

public struct StackError: Error, CustomStringConvertible {
    public var description: String
    init(_ d: String) { description = d }
}

/// Calls `body` with a NULL-terminated C array of strings.
func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
    var ptrs: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    ptrs.append(nil)
    defer { for p in ptrs { free(p) } }
    return ptrs.withUnsafeBufferPointer { body($0.baseAddress!) }
}
