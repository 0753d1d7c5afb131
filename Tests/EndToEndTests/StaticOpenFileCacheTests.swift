import Foundation
import Glibc
import Testing

/// `open_file_cache` over real sockets, lb and Debian's nginx side by side on one document
/// root: what a cached path shows while `open_file_cache_valid` lasts (the old file after a
/// rename, a deleted file still served, a remembered 404) and after; and that the descriptors a
/// worker keeps are bounded by `max`.
@Suite(.serialized) struct StaticOpenFileCacheTests {
    static let body = """
        server {
            listen 127.0.0.1:{port};
            root {root};
            location /c/ { open_file_cache max=10; open_file_cache_valid 2s; }
            location /e/ { open_file_cache max=10; open_file_cache_valid 2s; open_file_cache_errors on; }
            location /n/ { }
            location /m/ { open_file_cache max=3; }
            location /s/ { open_file_cache max=10; disable_symlinks on; }
        }
        """

    static var files: [String: String] {
        var f = ["c/r.txt": "old-r", "c/d.txt": "deleted-but-open", "n/r.txt": "old-n", "e/.keep": "", "s/x.txt": "x"]
        for i in 0..<10 { f["m/f\(i).txt"] = "m\(i)" }
        return f
    }

    func get(_ port: Int, _ path: String) throws -> (Int, String) {
        let c = try RawClient(port: port)
        let r = try c.get(path)
        return (r.status, r.text)
    }

    /// Replaces a file the way deployments do: a new file renamed over the old name (a new inode).
    func replace(_ url: URL, with text: String) throws {
        let tmp = url.deletingLastPathComponent().appendingPathComponent(".tmp-\(url.lastPathComponent)")
        try text.write(to: tmp, atomically: false, encoding: .utf8)
        #expect(rename(tmp.path, url.path) == 0)
    }

    @Test func changesShowOnlyAfterValidAsInNginx() throws {
        guard Differential.available else { return }
        let d = try Differential(Self.body, files: Self.files)
        let root = d.dir.appendingPathComponent("root")
        let servers = [("nginx", d.nginxPort), ("lb", d.lb.port)]
        let start = Date()
        for (name, port) in servers {
            #expect(try get(port, "/c/r.txt") == (200, "old-r"), "\(name)")
            #expect(try get(port, "/c/d.txt") == (200, "deleted-but-open"), "\(name)")
            #expect(try get(port, "/n/r.txt") == (200, "old-n"), "\(name)")
            #expect(try get(port, "/c/late.txt").0 == 404, "\(name)")
            #expect(try get(port, "/e/late.txt").0 == 404, "\(name)")
        }
        try replace(root.appendingPathComponent("c/r.txt"), with: "new-r")
        try replace(root.appendingPathComponent("n/r.txt"), with: "new-n")
        #expect(unlink(root.appendingPathComponent("c/d.txt").path) == 0)
        try "late".write(to: root.appendingPathComponent("c/late.txt"), atomically: true, encoding: .utf8)
        try "late".write(to: root.appendingPathComponent("e/late.txt"), atomically: true, encoding: .utf8)

        // Within valid (nginx counts whole seconds: `valid 2s` lasts at least one).
        for (name, port) in servers {
            #expect(try get(port, "/c/r.txt") == (200, "old-r"), "\(name): the renamed-over file is still the cached one")
            #expect(try get(port, "/c/d.txt") == (200, "deleted-but-open"), "\(name): a deleted file is served from its descriptor")
            #expect(try get(port, "/n/r.txt") == (200, "new-n"), "\(name): without the cache a change shows at once")
            #expect(try get(port, "/c/late.txt") == (200, "late"), "\(name): errors off: a new file is found at once")
            #expect(try get(port, "/e/late.txt").0 == 404, "\(name): errors on: the 404 is remembered")
        }
        #expect(Date().timeIntervalSince(start) < 1, "the checks within valid ran late; they prove nothing")

        // After valid: the new file, the deletion and the created file show (both servers polled
        // together, so that each one's first sight of the new file is timed).
        var changedAt: [String: Date] = [:]
        var settled: Set<String> = []
        let done = try waitUntil(timeout: 6, interval: 0.05) {
            for (name, port) in servers where !settled.contains(name) {
                let r = try get(port, "/c/r.txt")
                if r == (200, "new-r") && changedAt[name] == nil { changedAt[name] = Date() }
                if r == (200, "new-r"), try get(port, "/c/d.txt").0 == 404, try get(port, "/e/late.txt") == (200, "late") { settled.insert(name) }
            }
            return settled.count == servers.count
        }
        #expect(done, "the changes never showed: \(settled) settled")
        for (name, _) in servers {
            let seen = changedAt[name].map { $0.timeIntervalSince(start) } ?? 0
            // lb counts milliseconds (2 s from its lookup); nginx whole seconds (more than 1 s).
            #expect(seen >= (name == "lb" ? 2 : 1), "\(name): the new file showed after \(seen) s, before valid passed")
        }
    }

    /// The descriptors under `root/DIR/` a process holds.
    static func descriptors(of pid: Int32, under dir: String) -> Int {
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []
        return fds.filter { fd in
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(fd)"))?.hasPrefix(dir) ?? false
        }.count
    }

    /// nginx's worker processes (children of its master).
    static func children(of pid: Int32) -> [Int32] {
        let all = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return all.compactMap(Int32.init).filter { p in
            guard let s = try? String(contentsOfFile: "/proc/\(p)/status", encoding: .utf8) else { return false }
            return s.split(separator: "\n").contains { $0 == "PPid:\t\(pid)" }
        }
    }

    @Test func keptDescriptorsAreBoundedByMax() throws {
        guard Differential.available else { return }
        let d = try Differential(Self.body, files: Self.files)
        let m = d.dir.appendingPathComponent("root/m/").path
        let s = d.dir.appendingPathComponent("root/s/").path
        for port in [d.nginxPort, d.lb.port] {
            for i in 0..<10 { #expect(try get(port, "/m/f\(i).txt") == (200, "m\(i)")) }
            #expect(try get(port, "/s/x.txt") == (200, "x"))
        }
        let workers = Self.children(of: d.nginx.pid)
        #expect(workers.count == 1)
        #expect(workers.map { Self.descriptors(of: $0, under: m) } == [3], "nginx keeps max=3")
        #expect(Self.descriptors(of: d.lb.started.pid, under: m) == 3, "lb keeps max=3 (the three most recent)")
        // Under disable_symlinks too, the checked descriptor is kept.
        #expect(workers.map { Self.descriptors(of: $0, under: s) } == [1])
        #expect(Self.descriptors(of: d.lb.started.pid, under: s) == 1)
    }

    @Test func aReloadStartsWithEmptyCaches() throws {
        let root = try Harness.tempDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        try "v1".write(to: root.appendingPathComponent("f.txt"), atomically: true, encoding: .utf8)
        let lb = try LB("""
            error_log stderr notice;
            events {}
            http {
                access_log off;
                open_file_cache max=10;
                open_file_cache_valid 1h;
                server { listen 127.0.0.1:{port}; root \(root.path); location / { } }
            }
            """)
        #expect(try get(lb.port, "/f.txt") == (200, "v1"))
        try replace(root.appendingPathComponent("f.txt"), with: "v2")
        #expect(try get(lb.port, "/f.txt") == (200, "v1"), "cached for an hour")
        #expect(Self.descriptors(of: lb.started.pid, under: root.path) == 1)
        lb.reloadAndWait()
        #expect(try get(lb.port, "/f.txt") == (200, "v2"), "the new generation's cache is empty")
        #expect(Self.descriptors(of: lb.started.pid, under: root.path) == 1, "the old generation's descriptor was closed")
    }

    /// Every way the static handler ends a response (whole, ranges, multipart, HEAD, 304, 412,
    /// gzip_static, sub_filter, index, try_files, 404, 301) answers as nginx's with the cache on,
    /// on a miss and on hits; afterwards lb still holds exactly one descriptor per file sent (a
    /// response that gave its shared descriptor back twice, or never, would show here).
    @Test func everyStaticAnswerMatchesNginxWithTheCacheOn() throws {
        guard Differential.available else { return }
        let d = try Differential("""
            open_file_cache max=100;
            server {
                listen 127.0.0.1:{port};
                root {root};
                location /gz/ { gzip_static on; }
                location /sf/ { sub_filter needle pin; sub_filter_types text/plain; }
                location /spa/ { try_files $uri $uri/ /index.html; }
            }
            """, files: ["index.html": "home", "a.txt": "0123456789", "sub/index.html": "sub index",
                         "gz/t.txt": "plain", "gz/t.txt.gz": "not really gzip", "sf/h.txt": "a needle here"])
        let first = try d.fetch(.init(target: "/a.txt"), port: d.nginxPort)
        let etag = try #require(first.header("ETag"))
        let requests: [Differential.Request] = [
            .init(target: "/a.txt", expect: 200),
            .init(target: "/a.txt", headers: ["Range: bytes=2-4"], expect: 206),
            .init(target: "/a.txt", headers: ["Range: bytes=0-0,5-6"], expect: 206),
            .init(target: "/a.txt", method: "HEAD", expect: 200),
            .init(target: "/a.txt", headers: ["If-None-Match: \(etag)"], expect: 304),
            .init(target: "/a.txt", headers: ["If-Match: \"other\""], expect: 412),
            .init(target: "/a.txt", headers: ["Range: bytes=50-"], expect: 416),
            .init(target: "/gz/t.txt", headers: ["Accept-Encoding: gzip"], expect: 200),
            .init(target: "/gz/t.txt", expect: 200),
            .init(target: "/sf/h.txt", expect: 200),
            .init(target: "/", expect: 200),
            .init(target: "/sub/", expect: 200),
            .init(target: "/sub", expect: 301),
            .init(target: "/spa/deep", expect: 200),
            .init(target: "/nope.txt", expect: 404),
        ]
        for _ in 0..<3 {
            // Built-in error pages name the server (their lengths differ): headers of files only.
            try d.compare(requests.filter { $0.expect! < 300 }, headers: ["Content-Type", "Content-Length", "Content-Range", "Content-Encoding", "ETag"])
            try d.compare(requests.filter { $0.expect! >= 300 }, headers: ["Content-Type", "Content-Range"])
        }
        // a.txt, gz/t.txt.gz, gz/t.txt, sf/h.txt, index.html, sub/index.html: one kept descriptor each.
        let root = d.dir.appendingPathComponent("root").path + "/"
        #expect(Self.descriptors(of: d.lb.started.pid, under: root) == 6)
        #expect(Self.children(of: d.nginx.pid).map { Self.descriptors(of: $0, under: root) } == [6])
    }
}
