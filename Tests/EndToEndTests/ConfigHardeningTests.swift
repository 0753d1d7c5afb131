import Foundation
import Glibc
import Testing

/// Configurations built to hurt the loader, given to a real lb: at start (`-t`) and by reload.
@Suite(.serialized) struct ConfigHardeningTests {
    /// A server whose answer comes from the innermost of `levels` nested `location /` blocks;
    /// location k (from 1) is on line 6 + k, at block depth 2 + k. Notices go to stderr.
    static func nested(_ levels: Int, answer: String) -> String {
        "error_log stderr notice;\nevents {}\nhttp {\n    access_log off;\n    server {\n        listen 127.0.0.1:{port};\n"
            + String(repeating: "location / {\n", count: levels) + "return 200 \"\(answer)\";\n"
            + String(repeating: "}\n", count: levels) + "    }\n}\n"
    }

    /// Waits (bounded) until lb's error log contains `text`.
    func waitForLog(_ lb: LB, _ text: String, timeout: TimeInterval = 60) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if lb.errorLog.contains(text) { return true }
            if !lb.started.isRunning { return false }
            usleep(20_000)
        }
        return false
    }

    @Test func reloadIntoAHundredThousandNestedBlocksKeepsTheOldConfigServing() throws {
        let lb = try LB(Self.nested(1, answer: "old"))
        #expect(try RawClient(port: lb.port).get("/").text == "old")

        try lb.rewrite(Self.nested(100_000, answer: "new"))
        lb.started.signal(SIGHUP)
        #expect(waitForLog(lb, "reload failed, the previous configuration keeps serving"))
        #expect(lb.errorLog.contains("too deeply nested blocks (more than 16384 levels) in \(lb.configURL.path):16389"))
        #expect(lb.started.isRunning)
        #expect(try RawClient(port: lb.port).get("/").text == "old")

        // What nginx accepts is taken: 3,000 levels load, are searched by the workers, and are
        // freed when the next reload replaces them.
        try lb.rewrite(Self.nested(3000, answer: "deep"))
        lb.started.signal(SIGHUP)
        #expect(waitForLog(lb, "configuration reloaded (generation 2)"))
        #expect(try RawClient(port: lb.port).get("/a/b").text == "deep")
        try lb.rewrite(Self.nested(1, answer: "back"))
        lb.started.signal(SIGHUP)
        #expect(waitForLog(lb, "configuration reloaded (generation 3)"))
        #expect(try RawClient(port: lb.port).get("/").text == "back")
        #expect(lb.started.isRunning)
    }

    @Test func testFlagRefusesDevZeroAsTheConfigOrAnInclude() throws {
        let r = try Harness.run("lb", ["-t", "-c", "/dev/zero"])
        #expect(r.status == 1)
        #expect(r.stderr == "lb: [emerg] \"/dev/zero\" is not a regular file\nlb: configuration file /dev/zero test failed\n")

        let dir = try Harness.tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let conf = dir.appendingPathComponent("lb.conf")
        try "events {}\nhttp {\n    include /dev/zero;\n}\n".write(to: conf, atomically: true, encoding: .utf8)
        let i = try Harness.run("lb", ["-t", "-c", conf.path])
        #expect(i.status == 1)
        #expect(i.stderr.hasPrefix("lb: [emerg] \"/dev/zero\" is not a regular file in \(conf.path):3\n"))
    }

    @Test func testFlagAcceptsWhatNginxAcceptsAndRefusesPastTheLimit() throws {
        let dir = try Harness.tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let ok = dir.appendingPathComponent("ok.conf"), deep = dir.appendingPathComponent("deep.conf")
        try Self.nested(3000, answer: "x").replacingOccurrences(of: "{port}", with: "8080").write(to: ok, atomically: true, encoding: .utf8)
        try Self.nested(100_000, answer: "x").replacingOccurrences(of: "{port}", with: "8080").write(to: deep, atomically: true, encoding: .utf8)
        let r = try Harness.run("lb", ["-t", "-c", ok.path])
        #expect(r.status == 0 && r.stderr.contains("test is successful"))
        let d = try Harness.run("lb", ["-t", "-c", deep.path])
        #expect(d.status == 1)
        #expect(d.stderr.hasPrefix("lb: [emerg] too deeply nested blocks (more than 16384 levels) in \(deep.path):16389\n"))
    }
}
