import Glibc
import LBConfig
import LBHTTP
import LBIO
import Synchronization

/// nginx-style error log: `2026/11/23 19:30:11 [error] 1234#0: *5 message`. Writes are rare
/// (state changes and failures), so they go out at once under a lock.
public final class ErrorLogger: Sendable {
    struct Sink {
        var fd: Int32
        var path: String
        var level: ErrorLog.Level
    }

    private let sinks = Mutex<[Sink]>([])
    private let pid = Int(getpid())

    public init() {}

    /// Opens (or reopens, for `-s reopen`) the configured files; stderr when none.
    public func configure(_ logs: [ErrorLog]) {
        let list = logs.isEmpty ? [ErrorLog(path: "stderr", level: .error)] : logs
        var new: [Sink] = []
        for l in list {
            if l.path == "stderr" {
                new.append(Sink(fd: 2, path: l.path, level: l.level))
            } else {
                let fd = open(l.path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
                if fd >= 0 { new.append(Sink(fd: fd, path: l.path, level: l.level)) } else {
                    new.append(Sink(fd: 2, path: "stderr", level: l.level))
                }
            }
        }
        let old = sinks.withLock { s in
            let o = s
            s = new
            return o
        }
        for s in old where s.fd > 2 { close(s.fd) }
    }

    public func enabled(_ level: ErrorLog.Level) -> Bool {
        sinks.withLock { s in s.contains { level <= $0.level } }
    }

    /// Writes a stack line (service output, lifecycle) to every sink whatever its level.
    public func write(raw message: String) {
        let (sec, _) = wallClock()
        let bytes = Array("\(DateCache.civilString(sec)) [stack] \(message)\n".utf8)
        sinks.withLock { s in
            for sink in s { _ = bytes.withUnsafeBytes { Glibc.write(sink.fd, $0.baseAddress, $0.count) } }
        }
    }

    /// Logs a line; `connection` is nginx's `*N` connection number (0 for none).
    public func log(_ level: ErrorLog.Level, _ message: String, connection: Int = 0, worker: Int = 0) {
        let (sec, _) = wallClock()
        let c = DateCache.civilString(sec)
        var line = "\(c) [\(level.name)] \(pid)#\(worker): "
        if connection > 0 { line += "*\(connection) " }
        line += message + "\n"
        let bytes = Array(line.utf8)
        sinks.withLock { s in
            for sink in s where level <= sink.level {
                _ = bytes.withUnsafeBytes { Glibc.write(sink.fd, $0.baseAddress, $0.count) }
            }
        }
    }
}

extension DateCache {
    /// `2026/11/23 19:30:11`, the error log's time format.
    static func civilString(_ t: Int) -> String {
        let c = civil(t)
        func two(_ v: Int) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(c.year)/\(two(c.month))/\(two(c.day)) \(two(c.hour)):\(two(c.minute)):\(two(c.second))"
    }
}
