import Foundation
import Glibc
import Testing

/// Cache faults as an operator meets them: a disk that fills up, and entry files deleted or
/// replaced behind lb's back. The client is always answered in full from the upstream, failed
/// writes are logged as nginx logs them, and a file that is no longer the stored entry is a miss,
/// never a HIT served from a descriptor lb still holds.
@Suite(.serialized) struct CacheFaultTests {
    /// One worker, so the request after a fault reaches the worker holding the entry's descriptor.
    static func config(_ b: Backend, cacheDir: String) -> String {
        """
        worker_processes 1;
        error_log stderr info;
        events {}
        http {
            access_log off;
            proxy_cache_path \(cacheDir) levels=1:2 keys_zone=z:1m;
            upstream app { server 127.0.0.1:\(b.port) max_fails=0; }
            server {
                listen 127.0.0.1:{port};
                location / {
                    proxy_pass http://app;
                    proxy_cache z;
                    proxy_cache_valid 200 1m;
                    add_header X-Cache $upstream_cache_status;
                }
            }
        }
        """
    }

    /// Whether a tmpfs can be mounted here (root with CAP_SYS_ADMIN): the way to get a full disk.
    static let canMountTmpfs: Bool = {
        guard let dir = try? Harness.tempDirectory() else { return false }
        defer { try? FileManager.default.removeItem(at: dir) }
        guard mountTinyTmpfs(dir.path) else { return false }
        umount(dir.path)
        return true
    }()

    /// Mounts a 64 KiB tmpfs at `path` (a disk that fills up at once).
    static func mountTinyTmpfs(_ path: String) -> Bool {
        "size=64k".withCString { mount("tmpfs", path, "tmpfs", 0, $0) } == 0
    }

    /// The entry file of a key under levels=1:2 (named by the key's MD5, as nginx names it).
    func entryPath(_ dir: URL, key: String) -> String {
        let md5 = md5Hex(key)
        return dir.path + "/" + String(md5.suffix(1)) + "/" + String(md5.suffix(3).prefix(2)) + "/" + md5
    }

    func md5Hex(_ s: String) -> String {
        let p = Harness.process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["md5sum"]
        let input = Pipe(), output = Pipe()
        p.standardInput = input
        p.standardOutput = output
        try? p.run()
        input.fileHandleForWriting.write(Data(s.utf8))
        try? input.fileHandleForWriting.close()
        p.waitUntilExit()
        return String(String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).prefix(32))
    }

    /// Descriptors lb holds on files that have been deleted under `dir` (what keeps a file
    /// system busy and its space allocated).
    func deletedFilesHeld(by lb: LB, under dir: URL) -> [String] {
        let fdDir = "/proc/\(lb.started.pid)/fd"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: fdDir)) ?? []
        return names.compactMap { try? FileManager.default.destinationOfSymbolicLink(atPath: fdDir + "/" + $0) }
            .filter { $0.hasPrefix(dir.path) && $0.hasSuffix(" (deleted)") }
    }

    func modified(_ path: String) -> timespec? {
        var st = stat()
        return stat(path, &st) == 0 ? st.st_mtim : nil
    }

    /// A disk too small for the response: the client still gets every byte from the upstream,
    /// the error log has nginx's `write() "…" failed (28: No space left on device)` at crit, and
    /// nothing half-written is left or served.
    @Test(.enabled(if: canMountTmpfs, "needs root with CAP_SYS_ADMIN to mount a 64 KiB tmpfs as a full disk"))
    func aFullDiskIsLoggedAndTheClientStillGetsTheWholeResponse() throws {
        let b = try Backend(name: "c")
        let dir = try Harness.tempDirectory()
        try #require(Self.mountTinyTmpfs(dir.path))
        let lb = try LB(Self.config(b, cacheDir: dir.path))
        defer {
            lb.stop()
            umount(dir.path)
            try? FileManager.default.removeItem(at: dir)
        }
        // The cache works on this disk: a small response is stored and hit.
        #expect(try RawClient(port: lb.port).get("/gen?small=1&size=1000").header("X-Cache") == "MISS")
        let small = try RawClient(port: lb.port).get("/gen?small=1&size=1000")
        #expect(small.header("X-Cache") == "HIT")
        #expect(small.body.count == 1000)

        // 256 KiB into 64 KiB: the write fails half way.
        let size = 256 * 1024
        for n in 1...2 {
            let r = try RawClient(port: lb.port).get("/gen?big=1&size=\(size)")
            #expect(r.status == 200)
            #expect(r.header("X-Cache") == "MISS") // never stored, so never a HIT
            #expect(r.body.count == size)
            let expected = Array("c /gen?big=1&size=\(size) n=\(n)\n".utf8)
            #expect(Array(r.body.prefix(expected.count)) == expected)
            #expect(r.body.dropFirst(expected.count).allSatisfy { $0 == UInt8(ascii: ".") })
        }
        let lines = lb.errorLog.split(separator: "\n").filter { $0.contains("No space left on device") }
        #expect(lines.count == 2, "error log: \(lb.errorLog.suffix(2000))")
        for l in lines {
            #expect(l.contains("[crit]"))
            #expect(l.contains("write() \"\(dir.path)/.lb-temp/"))
            #expect(l.contains("failed (28: No space left on device)"))
            #expect(l.contains("request: \"GET /gen?big=1&size=\(size) HTTP/1.1\""))
        }
        // The failed temporary files are gone: the disk is not left full.
        let temps = (try? FileManager.default.contentsOfDirectory(atPath: dir.path + "/.lb-temp")) ?? []
        #expect(temps.isEmpty)
        #expect(!FileManager.default.fileExists(atPath: entryPath(dir, key: "httpapp/gen?big=1&size=\(size)")))
        // The small entry is still served.
        #expect(try RawClient(port: lb.port).get("/gen?small=1&size=1000").header("X-Cache") == "HIT")
    }

    /// `rm` of an entry's file while lb holds it open from earlier hits: the next request is a
    /// MISS, the descriptor is closed, and the fresh response is stored again.
    @Test func aDeletedEntryFileIsAMissAndIsStoredAgain() throws {
        let b = try Backend(name: "c")
        let dir = try Harness.tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let lb = try LB(Self.config(b, cacheDir: dir.path))
        let client = try RawClient(port: lb.port)
        #expect(try client.get("/gen?size=5000").header("X-Cache") == "MISS")
        let hit = try client.get("/gen?size=5000")
        #expect(hit.header("X-Cache") == "HIT") // the worker now holds the file open
        #expect(String(decoding: hit.body.prefix(64), as: UTF8.self).contains("n=1"))

        let path = entryPath(dir, key: "httpapp/gen?size=5000")
        try #require(unlink(path) == 0)
        let after = try client.get("/gen?size=5000")
        #expect(after.header("X-Cache") == "MISS")
        #expect(String(decoding: after.body.prefix(64), as: UTF8.self).contains("n=2"))
        #expect(after.body.count == 5000)
        #expect(deletedFilesHeld(by: lb, under: dir).isEmpty)
        // Stored again, under the same name, and served from it.
        #expect(FileManager.default.fileExists(atPath: path))
        let again = try client.get("/gen?size=5000")
        #expect(again.header("X-Cache") == "HIT")
        #expect(again.body == after.body)
    }

    /// A deleted entry nobody asks for again: its descriptor is still closed within a bounded
    /// time (idle shared descriptors are closed after 5 s, checked every 5 s).
    @Test func aDeletedEntryFileIsNotHeldOpen() throws {
        let b = try Backend(name: "c")
        let dir = try Harness.tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let lb = try LB(Self.config(b, cacheDir: dir.path))
        #expect(try RawClient(port: lb.port).get("/gen?idle=1&size=5000").header("X-Cache") == "MISS")
        #expect(try RawClient(port: lb.port).get("/gen?idle=1&size=5000").header("X-Cache") == "HIT")
        try #require(unlink(entryPath(dir, key: "httpapp/gen?idle=1&size=5000")) == 0)
        #expect(deletedFilesHeld(by: lb, under: dir).count == 1) // held, so the wait below proves something
        #expect(waitUntil(timeout: 15, interval: 0.1) { deletedFilesHeld(by: lb, under: dir).isEmpty })
    }

    /// Another file renamed over the entry's (what `mv` or an rsync does): the next request is a
    /// MISS, never the old entry from the descriptor lb held.
    @Test func anEntryFileReplacedByRenameIsNeverServedAsTheOldEntry() throws {
        let b = try Backend(name: "c")
        let dir = try Harness.tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let lb = try LB(Self.config(b, cacheDir: dir.path))
        let client = try RawClient(port: lb.port)
        #expect(try client.get("/gen?mv=1&size=5000").header("X-Cache") == "MISS")
        #expect(try client.get("/gen?mv=1&size=5000").header("X-Cache") == "HIT")

        let path = entryPath(dir, key: "httpapp/gen?mv=1&size=5000")
        let other = path + ".new"
        try Data(repeating: UInt8(ascii: "x"), count: 5000).write(to: URL(fileURLWithPath: other))
        try #require(rename(other, path) == 0)
        let after = try client.get("/gen?mv=1&size=5000")
        #expect(after.header("X-Cache") == "MISS")
        #expect(String(decoding: after.body.prefix(64), as: UTF8.self).contains("n=2"))
        #expect(deletedFilesHeld(by: lb, under: dir).isEmpty)
        let again = try client.get("/gen?mv=1&size=5000")
        #expect(again.header("X-Cache") == "HIT")
        #expect(again.body == after.body)
    }

    /// The entry's file rewritten in place with the same size (what `cp` over it does): same
    /// inode, same size, new contents. The next request is a MISS, never the old head with
    /// the new bytes.
    @Test func anEntryFileRewrittenInPlaceIsNeverServedAsTheOldEntry() throws {
        let b = try Backend(name: "c")
        let dir = try Harness.tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let lb = try LB(Self.config(b, cacheDir: dir.path))
        let client = try RawClient(port: lb.port)
        #expect(try client.get("/gen?cp=1&size=5000").header("X-Cache") == "MISS")
        #expect(try client.get("/gen?cp=1&size=5000").header("X-Cache") == "HIT")

        let path = entryPath(dir, key: "httpapp/gen?cp=1&size=5000")
        let before = try #require(modified(path))
        let size = try #require(FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
        // Overwrite every byte without truncating; repeated until the clock has moved on (file
        // times have the kernel's tick as granularity), so the rewrite is visible in the mtime.
        #expect(waitUntil(timeout: 5) {
            let fd = open(path, O_WRONLY)
            guard fd >= 0 else { return false }
            defer { close(fd) }
            let junk = [UInt8](repeating: UInt8(ascii: "y"), count: size)
            guard write(fd, junk, size) == size else { return false }
            guard let now = modified(path) else { return false }
            return now.tv_sec != before.tv_sec || now.tv_nsec != before.tv_nsec
        })
        let after = try client.get("/gen?cp=1&size=5000")
        #expect(after.header("X-Cache") == "MISS")
        #expect(after.body.count == 5000)
        #expect(String(decoding: after.body.prefix(64), as: UTF8.self).contains("n=2"))
        let servedRewrittenBytes = after.body.contains(UInt8(ascii: "y"))
        #expect(!servedRewrittenBytes)
        let again = try client.get("/gen?cp=1&size=5000")
        #expect(again.header("X-Cache") == "HIT")
        #expect(again.body == after.body)
    }
}
