import Foundation
import Glibc
import Testing

/// A whole HTTP/2 connection that goes while its streams still run (its client closes it, or
/// makes a connection error): each stream is a client abort (DifferentialClientAbortTests
/// compares that with nginx), and under `proxy_ignore_client_abort on` the session outlives its
/// client, out of the event loop, until the last of those streams ends. Then its socket is
/// closed, once: nothing is left open, lb goes on serving, and a graceful stop waits for them.
@Suite(.serialized) struct Http2ConnectionCloseTests {
    static let client = Harness.repositoryRoot.appendingPathComponent("Tests/support/h2client.py").path

    static func start() throws -> (LB, Backend) {
        let backend = try Backend(name: "b1")
        let lb = try LB("""
        error_log stderr info;
        events {}
        http {
          log_format t '$request_uri $status up=$upstream_status';
          access_log access.log t;
          server {
            listen 127.0.0.1:{port} http2;
            location /on/ { proxy_ignore_client_abort on; proxy_pass http://127.0.0.1:\(backend.port)/; }
            location /off/ { proxy_pass http://127.0.0.1:\(backend.port)/; }
            location /v { return 200 "v\\n"; }
          }
        }
        """)
        return (lb, backend)
    }

    static func h2client(_ args: [String]) throws -> String {
        try runTool(["/usr/bin/python3", client] + args, timeout: 30).out.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static func accessLog(_ lb: LB) -> [String] { lb.file("access.log").split(separator: "\n").map(String.init) }

    static func openFiles(_ pid: Int32) -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1
    }

    /// Connections closed by their clients, and connections their clients broke (GOAWAY
    /// FRAME_SIZE_ERROR), each with a stream whose upstream request goes on (`on`) and one that
    /// ends at once (`off`): every stream is logged as nginx logs it, and once the last has ended
    /// lb holds as many descriptors as before (each session's socket closed, no upstream
    /// connection left); a request on a new connection is answered.
    @Test func aConnectionsSocketIsClosedOnceItsLastStreamHasEnded() throws {
        let (lb, backend) = try Self.start()
        defer { withExtendedLifetime(backend) {} }
        let pid = lb.started.pid
        // The access log open, an upstream request made and its connection closed: the baseline.
        #expect(try Self.h2client(["get", "\(lb.port)", "/v"]).hasPrefix("200 "))
        #expect(try Self.h2client(["get", "\(lb.port)", "/on/slow?ms=1"]).hasPrefix("200 "))
        #expect(waitUntil { Self.accessLog(lb).count == 2 })
        let baseline = Self.openFiles(pid)
        #expect(baseline > 0)
        var expected: [String] = []
        for i in 0..<3 {
            for how in ["close", "error"] {
                let on = "/on/slow?ms=400&\(how)\(i)", off = "/off/slow?ms=400&\(how)\(i)"
                let out = try Self.h2client([how, "\(lb.port)", on, off])
                #expect(out.hasPrefix(how == "close" ? "closed" : "goaway 6 closed"), "\(how): \(out)")
                expected += ["\(on) 200 up=200", "\(off) 499 up=-"]
            }
        }
        #expect(waitUntil(timeout: 20) { Self.accessLog(lb).count == 2 + expected.count }, "\(Self.accessLog(lb))")
        #expect(Self.accessLog(lb).dropFirst(2).sorted() == expected.sorted(), "\(Self.accessLog(lb))")
        #expect(waitUntil(timeout: 10) { Self.openFiles(pid) == baseline }, "\(Self.openFiles(pid)) descriptors open, \(baseline) before")
        #expect(try Self.h2client(["get", "\(lb.port)", "/v"]).hasPrefix("200 "))
        #expect(!lb.errorLog.contains("Bad file descriptor"), "\(lb.errorLog)")
    }

    /// A reload while the stream of a connection its client closed still waits for its upstream
    /// (`proxy_ignore_client_abort on`): the stream runs to its end and is logged, its socket is
    /// then closed, and the new configuration serves.
    @Test func aReloadLeavesTheStreamsOfAConnectionItsClientClosedRunning() throws {
        let (lb, backend) = try Self.start()
        let pid = lb.started.pid
        #expect(try Self.h2client(["get", "\(lb.port)", "/on/slow?ms=1"]).hasPrefix("200 "))
        #expect(waitUntil { Self.accessLog(lb).count == 1 })
        let baseline = Self.openFiles(pid)
        var out = ""
        try waitForArrival(at: [backend]) { out = try Self.h2client(["close", "\(lb.port)", "/on/slow?ms=800"]) }
        #expect(out == "closed")
        #expect(lb.reloadAndWait())
        #expect(waitUntil(timeout: 10) { Self.accessLog(lb).count == 2 }, "\(Self.accessLog(lb))")
        #expect(Self.accessLog(lb).last == "/on/slow?ms=800 200 up=200", "\(Self.accessLog(lb))")
        #expect(waitUntil(timeout: 10) { Self.openFiles(pid) == baseline }, "\(Self.openFiles(pid)) descriptors open, \(baseline) before")
        #expect(try Self.h2client(["get", "\(lb.port)", "/v"]).hasPrefix("200 "))
    }

    /// A graceful stop (SIGQUIT) while the stream of a connection its client closed still waits
    /// for its upstream (`proxy_ignore_client_abort on`): the stream runs to its end and is
    /// logged, then the worker exits.
    @Test func aGracefulStopWaitsForTheStreamsOfAConnectionItsClientClosed() throws {
        let (lb, backend) = try Self.start()
        var out = ""
        try waitForArrival(at: [backend]) { out = try Self.h2client(["close", "\(lb.port)", "/on/slow?ms=800"]) }
        #expect(out == "closed")
        lb.started.signal(SIGQUIT)
        #expect(lb.started.wait(timeout: 10), "lb did not stop: \(lb.errorLog)")
        #expect(Self.accessLog(lb) == ["/on/slow?ms=800 200 up=200"], "\(Self.accessLog(lb))")
    }
}
