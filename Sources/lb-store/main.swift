// lb-store: a Redis-protocol (RESP2) server for the bundled stack. redis-cli and redis-benchmark
// talk to it; so does lb-app. One event loop; an append-only file for persistence.
import Glibc
import LBIO
import LBStore

struct Config {
    var port = 6379
    var bind = "127.0.0.1"
    var dir = "."
    var requirePass: String?
    var appendOnly = true
    var fsync = AppendOnlyFile.Fsync.everysec
    var appendFilename = "appendonly.aof"
    /// Adaptive busy polling window limit in microseconds (0: always block in epoll_wait).
    var busyPollMicros: Int64 = 50
}

func fail(_ s: String) -> Never {
    fputsStderr("lb-store: \(s)\n")
    exit(1)
}

func fputsStderr(_ s: String) {
    _ = s.withCString { write(2, $0, strlen($0)) }
}

func log(_ s: String) {
    let (sec, ms) = wallClock()
    fputsStderr("\(getpid()):M \(sec).\(ms < 10 ? "00" : ms < 100 ? "0" : "")\(ms) * \(s)\n")
}

var config = Config()
var argv = Array(CommandLine.arguments.dropFirst())
while !argv.isEmpty {
    let a = argv.removeFirst()
    func value() -> String {
        guard !argv.isEmpty else { fail("option \(a) needs a value") }
        return argv.removeFirst()
    }
    switch a {
    case "--port": config.port = Int(value()) ?? 0
    case "--bind": config.bind = value()
    case "--dir": config.dir = value()
    case "--requirepass": config.requirePass = value()
    case "--appendonly": config.appendOnly = value() != "no"
    case "--appendfilename": config.appendFilename = value()
    case "--appendfsync":
        guard let f = AppendOnlyFile.Fsync(rawValue: value()) else { fail("--appendfsync takes always, everysec or no") }
        config.fsync = f
    case "--busy-poll":
        guard let us = Int64(value()), (0...10_000).contains(us) else { fail("--busy-poll takes microseconds, 0 to 10000") }
        config.busyPollMicros = us
    case "-h", "--help":
        print("usage: lb-store [--port 6379] [--bind 127.0.0.1] [--dir .] [--requirepass PASS] [--appendonly yes|no] [--appendfsync always|everysec|no] [--busy-poll 50]")
        exit(0)
    default: fail("unknown option \(a)")
    }
}
guard (1...65535).contains(config.port) else { fail("invalid port") }
mkdir(config.dir, 0o755)
guard chdir(config.dir) == 0 else { fail("can't chdir to \(config.dir)") }

let server = StoreServer(config: config)
server.start()
