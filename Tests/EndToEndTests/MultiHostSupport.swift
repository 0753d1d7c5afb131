import Foundation
import Glibc
import Synchronization
import Testing

/// Simulated hosts for the multi-host scenarios: Linux network namespaces on a test-only subnet,
/// each joined by a veth pair to a bridge in the root namespace (which is the clients' host).
///
/// Nothing leaves the machine: before anything else the testbed adds a blackhole route for the
/// whole test subnet (10.213.0.0/16) in the root namespace, so a packet for a host whose link
/// is gone is dropped instead of following the default route. Each run takes its own /24 of it,
/// its own names (`lbt<id>…`) and its own blackhole route (same prefix, its own metric), so
/// parallel runs neither collide nor remove each other's safety net.
enum NetNS {
    static let ip = "/usr/sbin/ip"

    /// Why the scenarios cannot run here, or nil when they can.
    static let unavailableReason: String? = {
        if geteuid() != 0 { return "not running as root" }
        if !FileManager.default.isExecutableFile(atPath: ip) { return "\(ip) (iproute2) is missing" }
        if !DNSServer.installed { return "/usr/sbin/dnsmasq is missing (Tests/run.sh installs dnsmasq-base)" }
        let probe = "lbtprobe\(getpid())x\(Int.random(in: 0..<1_000_000))"
        do { _ = try run(["netns", "add", probe]) } catch { return "cannot create a network namespace: \(error)" }
        _ = try? run(["netns", "del", probe])
        return nil
    }()

    static var available: Bool {
        if let why = unavailableReason {
            print("MultiHostTests skipped: \(why)")
            return false
        }
        return true
    }

    /// Runs `ip ARGS` to completion (bounded); throws with its stderr when it fails.
    @discardableResult
    static func run(_ args: [String], timeout: TimeInterval = 10) throws -> String {
        let p = Harness.process()
        p.executableURL = URL(fileURLWithPath: ip)
        p.arguments = args
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        // Polled, not `waitUntilExit()`: that can miss an exit already reaped and hang.
        let deadline = Date().addingTimeInterval(timeout)
        while p.isRunning && Date() < deadline { usleep(2_000) }
        if p.isRunning {
            kill(p.processIdentifier, SIGKILL)
            while p.isRunning { usleep(2_000) }
        }
        let o = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let e = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        guard p.terminationStatus == 0 else { throw HarnessError("ip \(args.joined(separator: " ")): \(e)") }
        return o
    }
}

/// One run's network: a bridge with the clients' address (10.213.N.1) in the root namespace and
/// hosts 10.213.N.2… behind it. `close()` (also from `deinit`) stops every process started on a
/// host by PID, deletes the namespaces, the bridge and the blackhole route, in reverse order.
final class Testbed {
    let id: String
    let octet: Int
    let bridge: String
    private(set) var hosts: [SimHost] = []
    private var cleanups: [() -> Void] = []
    private var closed = false

    init() throws {
        id = String(format: "%04x", Int.random(in: 0..<0x10000))
        bridge = "lbt\(id)br"
        let used = (try? NetNS.run(["-4", "route", "show"])) ?? ""
        var pick = Int.random(in: 2...254)
        for _ in 0..<50 where used.contains("10.213.\(pick).0/24") { pick = Int.random(in: 2...254) }
        octet = pick
        // First of all: nothing for the test subnet may follow the default route.
        let metric = "\(3000 + octet)"
        try NetNS.run(["route", "add", "blackhole", "10.213.0.0/16", "metric", metric])
        cleanups.append { _ = try? NetNS.run(["route", "del", "blackhole", "10.213.0.0/16", "metric", metric]) }
        do {
            try NetNS.run(["link", "add", bridge, "type", "bridge"])
            cleanups.append { [bridge] in _ = try? NetNS.run(["link", "del", bridge]) }
            try NetNS.run(["addr", "add", "\(clientAddress)/24", "dev", bridge])
            try NetNS.run(["link", "set", bridge, "up"])
        } catch {
            close()
            throw error
        }
    }

    /// The root namespace's address on the bridge: where the test's clients connect from.
    var clientAddress: String { "10.213.\(octet).1" }

    /// A new host `10.213.N.(number)` in its own namespace, link up.
    func host(_ name: String, number: Int) throws -> SimHost {
        let h = SimHost(testbed: self, name: name, ns: "lbt\(id)-\(name)", veth: "lbt\(id)h\(number)", address: "10.213.\(octet).\(number)")
        try NetNS.run(["netns", "add", h.ns])
        cleanups.append { [ns = h.ns] in _ = try? NetNS.run(["netns", "del", ns]) }
        try NetNS.run(["link", "add", h.veth, "type", "veth", "peer", "name", "eth0", "netns", h.ns])
        cleanups.append { [veth = h.veth] in _ = try? NetNS.run(["link", "del", veth]) }
        try NetNS.run(["link", "set", h.veth, "master", bridge, "up"])
        try NetNS.run(["-n", h.ns, "link", "set", "lo", "up"])
        try NetNS.run(["-n", h.ns, "addr", "add", "\(h.address)/24", "dev", "eth0"])
        try NetNS.run(["-n", h.ns, "link", "set", "eth0", "up"])
        // Stop the host's processes before its namespace goes (cleanups run in reverse).
        cleanups.append { h.stopAll() }
        hosts.append(h)
        return h
    }

    func close() {
        guard !closed else { return }
        closed = true
        for c in cleanups.reversed() { c() }
        cleanups.removeAll()
    }

    deinit { close() }
}

/// A simulated host: a network namespace with one interface (eth0) on the testbed's bridge.
final class SimHost {
    unowned let testbed: Testbed
    let name: String
    let ns: String
    let veth: String
    let address: String
    private(set) var processes: [Started] = []

    init(testbed: Testbed, name: String, ns: String, veth: String, address: String) {
        self.testbed = testbed
        self.name = name
        self.ns = ns
        self.veth = veth
        self.address = address
    }

    /// Starts `executable` (a full path) inside the namespace; `ip netns exec` execs it, so the
    /// PID is the program's own and `stop` reaches it.
    func start(_ executable: String, _ args: [String], cwd: URL? = nil) throws -> Started {
        let s = try Started(URL(fileURLWithPath: NetNS.ip), ["netns", "exec", ns, executable] + args, cwd: cwd)
        processes.append(s)
        return s
    }

    /// Cuts the host off as an unplugged cable would: its interface down, inside its namespace.
    func unplug() throws { try NetNS.run(["-n", ns, "link", "set", "eth0", "down"]) }

    func plug() throws { try NetNS.run(["-n", ns, "link", "set", "eth0", "up"]) }

    /// Stops every process started here (by PID), then any process still in the namespace
    /// (children of ours: nothing else runs in a namespace this run created).
    func stopAll() {
        for p in processes { p.stop(grace: 1) }
        let left = (try? NetNS.run(["netns", "pids", ns])) ?? ""
        for pid in left.split(separator: "\n").compactMap({ Int32($0.trimmingCharacters(in: .whitespaces)) }) { kill(pid, SIGKILL) }
    }

    /// lb-app on this host's address (`bind`: another address, e.g. 127.0.0.1 behind a relay).
    @discardableResult
    func app(name: String, port: Int = 5000, bind: String? = nil, store: String? = nil) throws -> Started {
        var args = ["--bind", bind ?? address, "--port", "\(port)", "--name", name]
        if let store { args += ["--store-host", store, "--store-port", "6379"] }
        let s = try start(Harness.productsDirectory.appendingPathComponent("lb-app").path, args)
        if bind == nil || bind == address {
            guard waitForPort(port, host: address) else { throw HarnessError("lb-app \(name) on \(ns) did not start: \(s.stderr)") }
        } else {
            // Reachable only inside the namespace: wait for its start line.
            guard waitUntil(timeout: 10, { s.stderr.contains("listening on") }) else { throw HarnessError("lb-app \(name) did not start: \(s.stderr)") }
        }
        return s
    }

    /// lb-store on this host's address, port 6379, without persistence (the process lives on).
    @discardableResult
    func store() throws -> Started {
        let dir = try Harness.tempDirectory()
        let s = try start(Harness.productsDirectory.appendingPathComponent("lb-store").path,
                          ["--bind", address, "--port", "6379", "--dir", dir.path, "--appendonly", "no"])
        guard waitForPort(6379, host: address) else { throw HarnessError("lb-store on \(ns) did not start: \(s.stderr)") }
        return s
    }

    /// A TCP relay on this host's address that holds every chunk from the client for `delayMs`
    /// before passing it on to `target` (this kernel has no netem: latency in user space).
    @discardableResult
    func delayingRelay(port: Int, to target: String, _ targetPort: Int, delayMs: Int) throws -> Started {
        let s = try start("/usr/bin/env", ["python3", "-c", relayScript, address, "\(port)", target, "\(targetPort)", "\(delayMs)"])
        guard waitForPort(port, host: address) else { throw HarnessError("relay on \(ns) did not start: \(s.stderr)") }
        return s
    }
}

/// Listens on argv[1]:argv[2], forwards to argv[3]:argv[4]; client→server chunks wait argv[5] ms.
let relayScript = """
import socket, sys, threading, time
lhost, lport, thost, tport, delay = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5]) / 1000.0
def pipe(src, dst, wait):
    try:
        while True:
            b = src.recv(65536)
            if not b: break
            if wait: time.sleep(wait)
            dst.sendall(b)
    except OSError: pass
    for s in (src, dst):
        try: s.shutdown(socket.SHUT_RDWR)
        except OSError: pass
def serve(c):
    try: u = socket.create_connection((thost, tport))
    except OSError: c.close(); return
    threading.Thread(target=pipe, args=(c, u, delay), daemon=True).start()
    pipe(u, c, 0)
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind((lhost, lport)); l.listen(256)
while True:
    c, _ = l.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""

/// Runs dnsmasq (argv[1:]) as a child and stays its parent, passing on SIGHUP and SIGTERM.
///
/// Started directly, dnsmasq closes every inherited descriptor, among them the one Foundation's
/// `Process` watches to learn that a child ended; Foundation then takes dnsmasq for exited and
/// blocks its one reaping thread in `wait4(dnsmasq)` until dnsmasq really exits, and no other
/// child of the test process is reaped meanwhile (`isRunning` stays true for every exited one).
/// This keeper holds that descriptor instead; dnsmasq starts with no signal blocked (the test
/// runner may block them, and dnsmasq would never see SIGHUP) and dies with the keeper
/// (PR_SET_PDEATHSIG), so a SIGKILL to the keeper's PID ends both.
let dnsmasqKeeper = """
import ctypes, signal, subprocess, sys
signal.pthread_sigmask(signal.SIG_SETMASK, [])
libc = ctypes.CDLL(None, use_errno=True)
child = subprocess.Popen(sys.argv[1:], close_fds=True, preexec_fn=lambda: libc.prctl(1, signal.SIGKILL))
for s in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
    signal.signal(s, lambda n, f: child.send_signal(n))
sys.exit(child.wait())
"""

/// Waits until something accepts TCP connections on host:port.
func waitForPort(_ port: Int, host: String, timeout: TimeInterval = 10) -> Bool {
    waitUntil(timeout: timeout, interval: 0.02) {
        guard let c = try? RawClient(port: port, timeout: 1, host: host) else { return false }
        c.close()
        return true
    }
}

/// dnsmasq on a simulated host, port 53, authoritative for `.test`, TTL 1 s, answering from a
/// hosts file the test rewrites (SIGHUP: read it again). No upstream servers.
final class HostDNS {
    let host: SimHost
    let dir: URL
    let hostsURL: URL
    let started: Started

    init(on host: SimHost, hosts: String) throws {
        self.host = host
        dir = try Harness.tempDirectory()
        chmod(dir.path, 0o755) // dnsmasq drops to "nobody", which must read the hosts file
        hostsURL = dir.appendingPathComponent("hosts")
        try hosts.write(to: hostsURL, atomically: true, encoding: .utf8)
        chmod(hostsURL.path, 0o644)
        let args = ["--keep-in-foreground", "--no-resolv", "--no-hosts", "--port=53", "--listen-address=\(host.address)",
                    "--bind-interfaces", "--addn-hosts=\(hostsURL.path)", "--local=/test/", "--local-ttl=1", "--pid-file=",
                    "--log-facility=-"]
        started = try host.start("/usr/bin/env", ["python3", "-c", dnsmasqKeeper, "/usr/sbin/dnsmasq"] + args)
        guard waitForPort(53, host: host.address) else { throw HarnessError("dnsmasq did not start: \(started.stderr)") }
        // Ready when it answers from the hosts file, not merely when it listens.
        if let name = hosts.split(separator: "\n").first?.split(separator: " ").last.map(String.init) {
            let address = host.address
            guard waitUntil(timeout: 5, interval: 0.05, { !resolveA(name, server: address, timeoutMs: 200).isEmpty }) else {
                throw HarnessError("dnsmasq does not answer for \(name): \(started.stderr)")
            }
        }
    }

    func change(_ hosts: String) throws {
        try hosts.write(to: hostsURL, atomically: true, encoding: .utf8)
        chmod(hostsURL.path, 0o644)
        started.signal(SIGHUP)
    }

    deinit { try? FileManager.default.removeItem(at: dir) }
}

/// lb on a simulated host. `config` may use `{addr}` for the host's address.
final class HostLB {
    let host: SimHost
    let dir: URL
    let port: Int
    let started: Started

    init(on host: SimHost, port: Int = 8080, _ config: String) throws {
        self.host = host
        self.port = port
        dir = try Harness.tempDirectory()
        try config.replacingOccurrences(of: "{addr}", with: host.address)
            .write(to: dir.appendingPathComponent("lb.conf"), atomically: true, encoding: .utf8)
        started = try host.start(Harness.productsDirectory.appendingPathComponent("lb").path, ["-p", dir.path, "-c", "lb.conf"], cwd: dir)
        guard waitForPort(port, host: host.address) else { throw HarnessError("lb on \(host.ns) did not start: \(started.stderr)") }
    }

    var errorLog: String { started.stderr }

    /// The upstream's peers from the runtime API: address → state ("up", "down", …).
    func peers(_ upstream: String = "pool") -> [String: String] {
        guard let r = try? RawClient(port: port, timeout: 2, host: host.address).get("/lb-api/upstreams/\(upstream)"),
              let obj = try? JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any],
              let list = obj["peers"] as? [[String: Any]] else { return [:] }
        var out: [String: String] = [:]
        for p in list { if let a = p["address"] as? String { out[a] = p["state"] as? String ?? "?" } }
        return out
    }

    deinit { try? FileManager.default.removeItem(at: dir) }
}

/// What one response meant to a load client.
enum Outcome {
    /// Counted under the key (e.g. the instance that answered), with an optional value.
    case ok(String, value: Int? = nil)
    case failed(String)
}

/// Client load from the root namespace: `threads` clients sending GET `path` back to back until
/// stopped. `targets` gives the addresses to try, in order, for each request (a client that
/// retries goes on to the next one after a connection-level error; the others stop at the first);
/// `judge` turns a response into an outcome. Everything is counted.
final class ClientLoad: @unchecked Sendable {
    let counts = Mutex<[String: Int]>([:])
    let values = Mutex<[Int]>([])
    let failures = Mutex<[String]>([])
    let retries = Mutex<Int>(0)
    let slowest = Mutex<Double>(0)
    private let stopFlag = Mutex<Bool>(false)
    private let running = Mutex<Int>(0)

    init(threads: Int, path: String, keepAlive: Bool = true, timeout: Int = 5,
         targets: @escaping @Sendable () -> [(host: String, port: Int)], judge: @escaping @Sendable (RawClient.Response) -> Outcome) {
        running.withLock { $0 = threads }
        for _ in 0..<threads {
            Thread { [self] in
                var client: RawClient?
                var clientHost = ""
                while !stopFlag.withLock({ $0 }) {
                    let t0 = Date()
                    var lastError = ""
                    var answered: RawClient.Response?
                    for (i, t) in targets().enumerated() {
                        if i > 0 { retries.withLock { $0 += 1 } }
                        do {
                            if client == nil || clientHost != t.host {
                                client = try RawClient(port: t.port, timeout: timeout, host: t.host)
                                clientHost = t.host
                            }
                            let r = try client!.get(path, headers: keepAlive ? [] : ["Connection: close"])
                            if !keepAlive || r.header("Connection")?.lowercased() == "close" { client = nil }
                            answered = r
                            break
                        } catch {
                            lastError = "\(t.host): \(error)"
                            client = nil
                        }
                    }
                    let took = Date().timeIntervalSince(t0)
                    slowest.withLock { $0 = max($0, took) }
                    guard let r = answered else {
                        failures.withLock { $0.append(lastError.isEmpty ? "no address to try" : lastError) }
                        continue
                    }
                    switch judge(r) {
                    case .ok(let key, let value):
                        counts.withLock { $0[key, default: 0] += 1 }
                        if let value { values.withLock { $0.append(value) } }
                    case .failed(let why):
                        failures.withLock { $0.append(why) }
                    }
                }
                running.withLock { $0 -= 1 }
            }.start()
        }
    }

    func count(_ key: String) -> Int { counts.withLock { $0[key] ?? 0 } }
    var total: Int { counts.withLock { $0.values.reduce(0, +) } }
    var failureList: [String] { failures.withLock { $0 } }

    /// Lets the load run for `seconds` (the scenarios' "a few seconds of load").
    func run(for seconds: TimeInterval) { usleep(useconds_t(seconds * 1_000_000)) }

    func stop() {
        stopFlag.withLock { $0 = true }
        waitUntil(timeout: 15) { running.withLock { $0 } == 0 }
    }
}

/// lb-app's `/` answer names the instance: "Hello World! I am NAME (instance ID)".
func appName(_ r: RawClient.Response) -> Outcome {
    guard r.status == 200, let rest = r.text.components(separatedBy: "I am ").dropFirst().first,
          let name = rest.split(separator: " ").first else { return .failed("status \(r.status): \(r.text.prefix(200))") }
    return .ok(String(name))
}

/// The IPv4 addresses of `name` (A records) from a DNS server: one UDP query, as a client's
/// stub resolver would send it.
func resolveA(_ name: String, server: String, timeoutMs: Int = 1000) -> [String] {
    let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
    guard fd >= 0 else { return [] }
    defer { close(fd) }
    var tv = timeval(tv_sec: timeoutMs / 1000, tv_usec: Int((timeoutMs % 1000) * 1000))
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    let qid = UInt16.random(in: 0...UInt16.max)
    var q: [UInt8] = [UInt8(qid >> 8), UInt8(qid & 0xff), 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]
    for label in name.split(separator: ".") { q.append(UInt8(label.utf8.count)); q += Array(label.utf8) }
    q += [0, 0, 1, 0, 1]
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr(server)
    addr.sin_port = UInt16(53).bigEndian
    let sent = withUnsafePointer(to: &addr) { a in
        a.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, q, q.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard sent == q.count else { return [] }
    var b = [UInt8](repeating: 0, count: 4096)
    let n = recv(fd, &b, b.count, 0)
    guard n > 12, b[0] == q[0], b[1] == q[1] else { return [] }
    let count = Int(b[6]) << 8 | Int(b[7])
    func skipName(_ i: inout Int) {
        while i < n {
            let l = Int(b[i])
            if l == 0 { i += 1; return }
            if l & 0xc0 == 0xc0 { i += 2; return }
            i += 1 + l
        }
    }
    var i = 12
    skipName(&i)
    i += 4
    var out: [String] = []
    for _ in 0..<count {
        skipName(&i)
        guard i + 10 <= n else { break }
        let type = Int(b[i]) << 8 | Int(b[i + 1])
        let len = Int(b[i + 8]) << 8 | Int(b[i + 9])
        i += 10
        if type == 1 && len == 4 && i + 4 <= n { out.append("\(b[i]).\(b[i + 1]).\(b[i + 2]).\(b[i + 3])") }
        i += len
    }
    return out
}
