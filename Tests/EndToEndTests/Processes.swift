import Foundation
import Glibc
import Testing

/// A free TCP port on 127.0.0.1 (bind to 0, read it back, release it).
func freePort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = 0
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    withUnsafeMutablePointer(to: &addr) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { a in
            _ = bind(fd, a, len)
            _ = getsockname(fd, a, &len)
        }
    }
    return Int(UInt16(bigEndian: addr.sin_port))
}

/// `count` consecutive free ports below the kernel's ephemeral range (so ports that other tests
/// get from `freePort()` cannot collide with them).
func freePortRange(_ count: Int) -> Int {
    for _ in 0..<200 {
        let base = Int.random(in: 20000..<(32000 - count))
        var ok = true
        for p in base..<(base + count) {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            addr.sin_port = UInt16(p).bigEndian
            let r = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            close(fd)
            if r != 0 { ok = false; break }
        }
        if ok { return base }
    }
    return 20000
}

/// Waits until something accepts TCP connections on the port.
func waitForPort(_ port: Int, timeout: TimeInterval = 10) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if let c = try? RawClient(port: port, timeout: 1) {
            c.close()
            return true
        }
        usleep(20_000)
    }
    return false
}

/// A process the test started; stopped by PID when the test ends.
final class Started {
    let process: ChildProcess
    let stderrURL: URL
    let stdoutURL: URL

    init(_ executable: URL, _ args: [String], cwd: URL? = nil, env: [String: String]? = nil) throws {
        process = Harness.process()
        process.executableURL = executable
        process.arguments = args
        if let cwd { process.currentDirectoryURL = cwd }
        if let env { process.environment = ProcessInfo.processInfo.environment.merging(env) { $1 } }
        let dir = try Harness.tempDirectory()
        stderrURL = dir.appendingPathComponent("stderr")
        stdoutURL = dir.appendingPathComponent("stdout")
        FileManager.default.createFile(atPath: stderrURL.path, contents: nil)
        FileManager.default.createFile(atPath: stdoutURL.path, contents: nil)
        process.standardError = try FileHandle(forWritingTo: stderrURL)
        process.standardOutput = try FileHandle(forWritingTo: stdoutURL)
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }
    var stderr: String { (try? String(contentsOf: stderrURL, encoding: .utf8)) ?? "" }

    func signal(_ sig: Int32) { if process.isRunning { kill(pid, sig) } }

    /// Waits for exit (bounded); returns whether it exited.
    @discardableResult
    func wait(timeout: TimeInterval) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        return !process.isRunning
    }

    /// SIGTERM, then SIGKILL after a grace period.
    func stop(grace: TimeInterval = 2) {
        guard process.isRunning else { return }
        kill(pid, SIGTERM)
        if !wait(timeout: grace) { kill(pid, SIGKILL); wait(timeout: 5) }
    }

    deinit { stop() }
}

/// The Python test backend (Tests/support/backend.py).
final class Backend {
    let port: Int
    let name: String
    let started: Started

    init(name: String, port: Int = freePort()) throws {
        self.port = port
        self.name = name
        started = try Started(URL(fileURLWithPath: "/usr/bin/env"),
                              ["python3", Harness.repositoryRoot.appendingPathComponent("Tests/support/backend.py").path, "\(port)", name])
        guard waitForPort(port) else { throw HarnessError("backend \(name) did not start: \(started.stderr)") }
    }

    /// Kills the backend outright (a crash, as far as lb can tell).
    func stop() { started.stop(grace: 0) }

    deinit { started.stop(grace: 0) }

    /// Connections accepted and requests served, from the backend's own count.
    func stats() throws -> (connections: Int, requests: Int) {
        let r = try RawClient(port: port).get("/stats")
        let obj = try JSONSerialization.jsonObject(with: Data(r.body)) as! [String: Int]
        return (obj["connections"]!, obj["requests"]!)
    }
}

struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// A running lb with a config written for the test.
final class LB {
    let dir: URL
    let port: Int
    let started: Started
    let configURL: URL

    /// `config` may use `{port}` for the listen port.
    init(_ config: String, port: Int = freePort(), waitReady: Bool = true) throws {
        dir = try Harness.tempDirectory()
        self.port = port
        configURL = dir.appendingPathComponent("lb.conf")
        try config.replacingOccurrences(of: "{port}", with: "\(port)").write(to: configURL, atomically: true, encoding: .utf8)
        started = try Started(Harness.productsDirectory.appendingPathComponent("lb"), ["-p", dir.path, "-c", "lb.conf"], cwd: dir)
        if waitReady {
            guard waitForPort(port) else { throw HarnessError("lb did not start: \(started.stderr)") }
        }
    }

    func rewrite(_ config: String) throws {
        try config.replacingOccurrences(of: "{port}", with: "\(port)").write(to: configURL, atomically: true, encoding: .utf8)
    }

    var errorLog: String { started.stderr }

    func file(_ name: String) -> String { (try? String(contentsOf: dir.appendingPathComponent(name), encoding: .utf8)) ?? "" }

    func stop() { started.stop() }

    deinit { try? FileManager.default.removeItem(at: dir) }
}

/// Runs curl (a real client) and returns stdout.
func curl(_ args: [String], timeout: TimeInterval = 30) throws -> (status: Int32, out: String, err: String) {
    let p = try Started(URL(fileURLWithPath: "/usr/bin/env"), ["curl", "-sS"] + args)
    if !p.wait(timeout: timeout) { p.stop() }
    let out = (try? String(contentsOf: p.stdoutURL, encoding: .utf8)) ?? ""
    return (p.process.terminationStatus, out, p.stderr)
}

/// Polls `condition` (every `interval` seconds) until it holds or `timeout` seconds passed;
/// returns whether it held. The bounded wait for readiness that replaces fixed sleeps.
@discardableResult
func waitUntil(timeout: TimeInterval = 10, interval: TimeInterval = 0.01, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while true {
        if try condition() { return true }
        if Date() >= deadline { return false }
        usleep(useconds_t(interval * 1_000_000))
    }
}

extension LB {
    /// Reloads the error log has reported as finished, successful ("configuration reloaded
    /// (generation N)", a notice: the config needs `error_log stderr notice;` or `info`) or not
    /// ("reload failed", an alert).
    var reloadsLogged: Int {
        errorLog.split(separator: "\n").filter {
            $0.contains("configuration reloaded (generation ") || $0.contains("reload failed, the previous configuration keeps serving")
        }.count
    }

    /// Waits until the error log reports more finished reloads than `before` (from
    /// `reloadsLogged`, read before the reload was asked for); records an issue on timeout.
    @discardableResult
    func waitForReload(since before: Int, timeout: TimeInterval = 10, sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
        let done = waitUntil(timeout: timeout) { reloadsLogged > before }
        if !done {
            Issue.record("no reload reported in the error log within \(timeout) s (does the config log notices?): \(errorLog.suffix(2000))",
                         sourceLocation: sourceLocation)
        }
        return done
    }

    /// Sends SIGHUP and waits until the error log reports the reload finished (see `reloadsLogged`).
    @discardableResult
    func reloadAndWait(timeout: TimeInterval = 10, sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
        let before = reloadsLogged
        started.signal(SIGHUP)
        return waitForReload(since: before, timeout: timeout, sourceLocation: sourceLocation)
    }
}

/// Runs `send` (which starts a request through lb), then waits until one of `backends` has
/// begun a request that is not one of these polls' own `/stats` requests (each counts itself).
/// Records an issue and returns false on timeout.
@discardableResult
func waitForArrival(at backends: [Backend], timeout: TimeInterval = 10, sourceLocation: SourceLocation = #_sourceLocation,
                    _ send: () throws -> Void) throws -> Bool {
    func total() throws -> Int { try backends.reduce(0) { $0 + (try $1.stats().requests) } }
    let base = try total()
    try send()
    var polls = 0
    let arrived = try waitUntil(timeout: timeout) {
        polls += 1
        return try total() - base - polls * backends.count > 0
    }
    if !arrived { Issue.record("no request reached the backends within \(timeout) s", sourceLocation: sourceLocation) }
    return arrived
}
