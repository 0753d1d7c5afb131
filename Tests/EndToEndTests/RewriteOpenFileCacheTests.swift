import Foundation
import Glibc
import Testing

/// The rewrite module's file tests (`-f`, `-d`, `-e`, `-x`), `autoindex` and `disable_symlinks`
/// with `open_file_cache`, lb and Debian's nginx side by side on one document root: what a test
/// sees while `open_file_cache_valid` lasts and after, what exists, and that a path opened
/// where symlinks are allowed is not served where they are refused.
@Suite(.serialized) struct RewriteOpenFileCacheTests {
    func get(_ port: Int, _ path: String) throws -> (Int, String) {
        let c = try RawClient(port: port)
        let r = try c.get(path)
        return (r.status, r.text)
    }

    static let cached = "open_file_cache max=10; open_file_cache_valid 2s;"

    @Test func fileTestsSeeTheCacheUntilValidPassesAsInNginx() throws {
        guard Differential.available else { return }
        let d = try Differential("""
            server {
                listen 127.0.0.1:{port};
                root {root};
                location /f/ { \(Self.cached) if (!-f $request_filename) { return 404; } }
                location /t/ { \(Self.cached) if (-f $request_filename) { return 200 "file"; } return 200 "none"; }
                location /d/ { \(Self.cached) if (-d $request_filename) { return 200 "dir"; } return 200 "none"; }
                location /e/ { \(Self.cached) open_file_cache_errors on; if (-e $request_filename) { return 200 "exists"; } return 200 "none"; }
                location /n/ { if (-f $request_filename) { return 200 "file"; } return 200 "none"; }
                location /m/ { \(Self.cached) open_file_cache_min_uses 2; if (-f $request_filename) { return 200 "file"; } return 200 "none"; }
            }
            """, files: ["f/a.txt": "served", "t/b.txt": "b", "d/sub/x": "x", "e/.keep": "", "n/c.txt": "c", "m/once.txt": "o"])
        let root = d.dir.appendingPathComponent("root").path
        let servers = [("nginx", d.nginxPort), ("lb", d.lb.port)]
        let start = Date()
        for (name, port) in servers {
            #expect(try get(port, "/f/a.txt") == (200, "served"), "\(name)")
            #expect(try get(port, "/t/b.txt") == (200, "file"), "\(name)")
            #expect(try get(port, "/d/sub") == (200, "dir"), "\(name)")
            #expect(try get(port, "/e/late") == (200, "none"), "\(name)")
            #expect(try get(port, "/n/c.txt") == (200, "file"), "\(name)")
            #expect(try get(port, "/m/once.txt") == (200, "file"), "\(name)")
        }
        for f in ["f/a.txt", "t/b.txt", "d/sub/x", "n/c.txt", "m/once.txt"] { #expect(unlink(root + "/" + f) == 0) }
        #expect(rmdir(root + "/d/sub") == 0)
        try "late".write(toFile: root + "/e/late", atomically: true, encoding: .utf8)

        // Within valid (nginx counts whole seconds: `valid 2s` lasts at least one).
        for (name, port) in servers {
            #expect(try get(port, "/f/a.txt") == (200, "served"), "\(name): a deleted file still passes !-f, and is sent from its descriptor")
            #expect(try get(port, "/t/b.txt") == (200, "file"), "\(name): a deleted file is still a file")
            #expect(try get(port, "/d/sub") == (200, "dir"), "\(name): a removed directory is still one")
            #expect(try get(port, "/e/late") == (200, "none"), "\(name): errors on: not there is remembered")
            #expect(try get(port, "/n/c.txt") == (200, "none"), "\(name): without the cache a deletion shows at once")
            #expect(try get(port, "/m/once.txt") == (200, "none"), "\(name): used fewer than min_uses times, a file is opened again each time")
        }
        #expect(Date().timeIntervalSince(start) < 1, "the checks within valid ran late; they prove nothing")

        // After valid, every change shows.
        var settled: Set<String> = []
        let done = try waitUntil(timeout: 6, interval: 0.05) {
            for (name, port) in servers where !settled.contains(name) {
                if try get(port, "/t/b.txt") == (200, "none"), try get(port, "/f/a.txt").0 == 404,
                   try get(port, "/d/sub") == (200, "none"), try get(port, "/e/late") == (200, "exists") {
                    settled.insert(name)
                }
            }
            return settled.count == servers.count
        }
        #expect(done, "the changes never showed: \(settled) settled")
        #expect(Date().timeIntervalSince(start) >= 1, "the changes showed before valid passed")
    }

    /// What `-f`, `-d`, `-e` and `-x` say of a file, an executable, a directory with and
    /// without its execute bit, a FIFO and nothing, with the cache and without.
    @Test func fileTestKindsMatchNginx() throws {
        guard Differential.available else { return }
        let tests = """
            set $r "";
            if (-f $request_filename) { set $r "${r}f"; }
            if (-d $request_filename) { set $r "${r}d"; }
            if (-e $request_filename) { set $r "${r}e"; }
            if (-x $request_filename) { set $r "${r}x"; }
            if (!-e $request_filename) { set $r "${r}!e"; }
            return 200 "[$r]";
            """
        var files: [String: String] = [:]
        for dir in ["c", "p"] {
            files["\(dir)/plain.txt"] = "p"
            files["\(dir)/run.sh"] = "#!/bin/sh"
            files["\(dir)/dir/x"] = ""
            files["\(dir)/closed/x"] = ""
        }
        let d = try Differential("""
            server {
                listen 127.0.0.1:{port};
                root {root};
                location /c/ { \(Self.cached) \(tests) }
                location /p/ { \(tests) }
            }
            """, files: files, executable: ["c/run.sh", "p/run.sh"])
        let root = d.dir.appendingPathComponent("root").path
        for dir in ["c", "p"] {
            #expect(mkfifo(root + "/\(dir)/fifo", 0o644) == 0)
            #expect(chmod(root + "/\(dir)/closed", 0o644) == 0)
        }
        let cases = [("plain.txt", "[fe]"), ("run.sh", "[fex]"), ("dir", "[dex]"), ("closed", "[de]"), ("fifo", "[!e]"), ("none", "[!e]")]
        for _ in 0..<2 { // a miss, then a hit
            for dir in ["c", "p"] {
                for (name, expected) in cases {
                    let n = try get(d.nginxPort, "/\(dir)/\(name)")
                    #expect(n == (200, expected), "nginx /\(dir)/\(name)")
                    #expect(try get(d.lb.port, "/\(dir)/\(name)") == n, "lb /\(dir)/\(name)")
                }
            }
        }
    }

    @Test func autoindexListsTheDirectoryAsItIsNowAsInNginx() throws {
        guard Differential.available else { return }
        let d = try Differential("""
            server {
                listen 127.0.0.1:{port};
                root {root};
                location /ai/ { autoindex on; open_file_cache max=10; open_file_cache_valid 1h; }
            }
            """, files: ["ai/one/a.txt": "a", "ai/gone/b.txt": "b"])
        let root = d.dir.appendingPathComponent("root").path
        let servers = [("nginx", d.nginxPort), ("lb", d.lb.port)]
        for (name, port) in servers {
            let (status, body) = try get(port, "/ai/one/")
            #expect(status == 200 && body.contains("a.txt") && !body.contains("new.txt"), "\(name)")
            #expect(try get(port, "/ai/gone/").0 == 200, "\(name)")
        }
        try "n".write(toFile: root + "/ai/one/new.txt", atomically: true, encoding: .utf8)
        #expect(unlink(root + "/ai/gone/b.txt") == 0 && rmdir(root + "/ai/gone") == 0)
        for (name, port) in servers {
            let (status, body) = try get(port, "/ai/one/")
            #expect(status == 200 && body.contains("new.txt"), "\(name): the listing is not cached")
            // The cache still says directory; the listing finds none.
            #expect(try get(port, "/ai/gone/").0 == 404, "\(name)")
        }
    }

    /// One cache shared by a location that allows symlinks and one that refuses them.
    @Test func disableSymlinksWithTheCacheAsInNginx() throws {
        guard Differential.available else { return }
        let d = try Differential("""
            open_file_cache max=10;
            open_file_cache_valid 2s;
            server {
                listen 127.0.0.1:{port};
                root {root};
                location /a/ { alias {root}/w/; }
                location /s/ { alias {root}/w/; disable_symlinks on; }
                location /sf/ { disable_symlinks on; if (-f $request_filename) { return 200 "file"; } return 200 "none"; }
                location /sn/ { disable_symlinks on; open_file_cache off; if (-f $request_filename) { return 200 "file"; } return 200 "none"; }
                location /st/ { alias {root}/w/; disable_symlinks on; open_file_cache off; try_files $uri /w-fallback; }
                location = /w-fallback { return 200 "fallback"; }
                location /si/ { disable_symlinks on; autoindex on; }
            }
            """, files: ["w/real.txt": "real", "w/swap.txt": "old", "w/sub/in.txt": "in", "sf/real.txt": "", "sn/real.txt": "", "si/real.html": ""])
        let w = d.dir.appendingPathComponent("root/w").path
        for dir in ["w", "sf", "sn"] { #expect(symlink("real.txt", d.dir.path + "/root/\(dir)/link.txt") == 0) }
        #expect(symlink("sub", w + "/dlink") == 0)
        #expect(symlink("real.html", d.dir.path + "/root/si/index.html") == 0)
        let servers = [("nginx", d.nginxPort), ("lb", d.lb.port)]
        let start = Date()
        for (name, port) in servers {
            #expect(try get(port, "/a/link.txt") == (200, "real"), "\(name): allowed here")
            #expect(try get(port, "/s/link.txt").0 == 403, "\(name): the entry opened under /a/ is not served under /s/")
            #expect(try get(port, "/sf/link.txt") == (200, "none"), "\(name): a refused symlink is no file")
            #expect(try get(port, "/sf/real.txt") == (200, "file"), "\(name)")
            #expect(try get(port, "/sn/link.txt") == (200, "none"), "\(name): without the cache too")
            #expect(try get(port, "/sn/real.txt") == (200, "file"), "\(name)")
            #expect(try get(port, "/si/").0 == 403, "\(name): a refused index is a 403, not the next index or a listing")
            #expect(try get(port, "/st/link.txt") == (200, "fallback"), "\(name): try_files passes a refused symlink by")
            #expect(try get(port, "/a/dlink/in.txt") == (200, "in"), "\(name)")
            #expect(try get(port, "/s/dlink/in.txt").0 == 404, "\(name): a symlinked directory on the way (O_NOFOLLOW|O_DIRECTORY: ENOTDIR)")
            #expect(try get(port, "/s/swap.txt") == (200, "old"), "\(name)")
        }
        // swap.txt becomes a symlink: the entry opened and checked under /s/ stays valid.
        #expect(unlink(w + "/swap.txt") == 0 && symlink("real.txt", w + "/swap.txt") == 0)
        for (name, port) in servers {
            #expect(try get(port, "/s/swap.txt") == (200, "old"), "\(name): within valid, the checked descriptor is served")
            #expect(try get(port, "/a/link.txt") == (200, "real"), "\(name)")
            #expect(try get(port, "/s/link.txt").0 == 403, "\(name): a refused symlink stays refused")
        }
        #expect(Date().timeIntervalSince(start) < 1, "the checks within valid ran late; they prove nothing")
        var settled: Set<String> = []
        let done = try waitUntil(timeout: 6, interval: 0.05) {
            for (name, port) in servers where try get(port, "/s/swap.txt").0 == 403 { settled.insert(name) }
            return settled.count == servers.count
        }
        #expect(done, "the symlink was never refused: \(settled)")
        // The file test's refusal is logged at crit, as nginx logs it.
        let refused = "[crit]"
        let line = "openat() \"\(d.dir.path)/root/sf/link.txt\" failed (40: Too many levels of symbolic links)"
        for (name, log) in [("nginx", d.nginxErrorLog), ("lb", d.lbErrorLog)] {
            #expect(log.split(separator: "\n").contains { $0.contains(refused) && $0.contains(line) }, "\(name): \(log)")
        }
    }
}
