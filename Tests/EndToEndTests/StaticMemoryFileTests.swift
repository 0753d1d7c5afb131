import Foundation
import Glibc
import Testing

/// `open_file_cache` holds a small kept file in memory for the responses that must see its
/// bytes (TLS, HTTP/2), watched by inotify: an edit in place shows at once, whole, with its new
/// length, well within `open_file_cache_valid`, over h2, h2c and HTTP/1.1 with or without TLS
/// (cleartext HTTP/1.1 sends from the descriptor, but the watch renews its information); a file
/// beyond 16 KiB is not held (read from its descriptor as before).
@Suite(.serialized) struct StaticMemoryFileTests {
    static func start() throws -> (LB, tls: Int, files: URL) {
        let tls = freePort()
        let lb = try LB("""
            worker_processes 1;
            error_log stderr info;
            events {}
            http {
              access_log off;
              server {
                listen 127.0.0.1:{port} http2;
                listen 127.0.0.1:\(tls) ssl http2;
                server_name a.test;
                \(TestCerts.pair("a-ec"))
                root files;
                location /m/ { open_file_cache max=10; open_file_cache_valid 60s; }
                location /rl/ { open_file_cache max=10; limit_rate 4k; }
              }
            }
            """, waitReady: false)
        let files = lb.dir.appendingPathComponent("files/m")
        try FileManager.default.createDirectory(at: files, withIntermediateDirectories: true)
        guard waitForPort(lb.port), waitForPort(tls) else { throw HarnessError("lb did not start: \(lb.errorLog)") }
        return (lb, tls, files)
    }

    /// The body and the Content-Length header of one request (`proto`: h2, h2c or h1 over TLS).
    func fetch(_ lb: LB, tls: Int, _ path: String, _ proto: String) throws -> (body: String, length: Int?) {
        let head = lb.dir.appendingPathComponent("head.txt").path
        var args = ["-sS", "-D", head]
        switch proto {
        case "h2c": args += ["--http2-prior-knowledge", "http://127.0.0.1:\(lb.port)\(path)"]
        case "plain": args += ["--http1.1", "http://127.0.0.1:\(lb.port)\(path)"]
        default:
            args += ["--cacert", TestCerts.path("ca.crt"), "--resolve", "a.test:\(tls):127.0.0.1",
                     proto == "h2" ? "--http2" : "--http1.1", "https://a.test:\(tls)\(path)"]
        }
        let r = try curl(args)
        let headers = (try? String(contentsOfFile: head, encoding: .utf8)) ?? ""
        let length = headers.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
            .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) }
        return (r.out, length)
    }

    /// Writes `text` into the existing file at offset 0 (same inode), truncating it first or not.
    func writeInPlace(_ url: URL, _ text: String, truncate: Bool) {
        let fd = open(url.path, O_WRONLY | (truncate ? O_TRUNC : 0))
        precondition(fd >= 0)
        _ = Array(text.utf8).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
    }

    /// The inotify watches `pid` holds (its descriptors' fdinfo, one `inotify wd:` line each).
    static func watches(of pid: Int32) -> Int {
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fdinfo")) ?? []
        return fds.reduce(0) { n, fd in
            let info = (try? String(contentsOfFile: "/proc/\(pid)/fdinfo/\(fd)", encoding: .utf8)) ?? ""
            return n + info.split(separator: "\n").filter { $0.hasPrefix("inotify wd:") }.count
        }
    }

    @Test func anEditInPlaceShowsAtOnceWholeWithItsNewLength() throws {
        let (lb, tls, files) = try Self.start()
        let a = files.appendingPathComponent("a.txt")
        try "first version\n".write(to: a, atomically: false, encoding: .utf8)
        for proto in ["h2", "h2c", "h1", "plain"] {
            #expect(try fetch(lb, tls: tls, "/m/a.txt", proto) == ("first version\n", 14), "\(proto)")
        }
        #expect(Self.watches(of: lb.started.pid) == 1, "the held file is watched")

        // The same size, then longer, then shorter: each seen within a second or two although
        // `open_file_cache_valid` is 60 s, with a Content-Length that matches.
        let edits: [(String, Bool)] = [("FIRST VERSION\n", false), ("first version, and a longer second line\n", false), ("short\n", true)]
        for (text, truncate) in edits {
            writeInPlace(a, text, truncate: truncate)
            for proto in ["h2", "h2c", "h1", "plain"] {
                var last: (String, Int?) = ("", nil)
                let seen = try waitUntil(timeout: 5, interval: 0.05) {
                    last = try fetch(lb, tls: tls, "/m/a.txt", proto)
                    return last.0 == text
                }
                #expect(seen, "\(proto): \(last) after writing \(text.debugDescription)")
                #expect(last.1 == text.utf8.count, "\(proto): the length is the new file's: \(last)")
            }
        }
    }

    /// A held file sent from memory (with its head, in one write): a range, two ranges
    /// (multipart, from the descriptor), HEAD and a conditional GET, over each protocol.
    @Test func rangesHeadAndConditionalsFromMemory() throws {
        let (lb, tls, files) = try Self.start()
        try "0123456789abcdef".write(to: files.appendingPathComponent("r.txt"), atomically: false, encoding: .utf8)
        for proto in ["plain", "h1", "h2", "h2c"] {
            let base: [String] = proto == "plain" ? ["--http1.1"] : proto == "h2c" ? ["--http2-prior-knowledge"]
                : ["--cacert", TestCerts.path("ca.crt"), "--resolve", "a.test:\(tls):127.0.0.1", proto == "h2" ? "--http2" : "--http1.1"]
            let url = proto == "plain" || proto == "h2c" ? "http://127.0.0.1:\(lb.port)/m/r.txt" : "https://a.test:\(tls)/m/r.txt"
            #expect(try curl(base + ["-s", url]).out == "0123456789abcdef", "\(proto)")
            let one = try curl(base + ["-s", "-r", "2-5", "-w", "|%{http_code}", url])
            #expect(one.out == "2345|206", "\(proto): \(one)")
            let two = try curl(base + ["-s", "-r", "0-1,14-15", "-w", "|%{http_code}", url])
            #expect(two.out.contains("\r\n\r\n01\r\n") && two.out.contains("\r\n\r\nef\r\n") && two.out.hasSuffix("|206"), "\(proto): \(two)")
            let head = try curl(base + ["-s", "-I", url])
            #expect(head.out.lowercased().contains("content-length: 16"), "\(proto): \(head)")
            let etag = head.out.split(separator: "\r\n").first { $0.lowercased().hasPrefix("etag:") }.map { String($0.dropFirst(5)).trimmingCharacters(in: .whitespaces) } ?? ""
            let cond = try curl(base + ["-s", "-H", "If-None-Match: \(etag)", "-w", "|%{http_code}", url])
            #expect(cond.out == "|304", "\(proto): \(cond)")
        }
        #expect(Self.watches(of: lb.started.pid) == 1)
    }

    /// `limit_rate` holds for a body sent from memory with its head: 12,000 octets at 4k a
    /// second take two seconds (the first 4k at once, as nginx), over HTTPS/1.1, h2 and
    /// cleartext HTTP/1.1 (there not in one writev: sendfile, limited).
    @Test func limitRateHoldsForAFileSentFromMemory() throws {
        let (lb, tls, files) = try Self.start()
        let dir = files.deletingLastPathComponent().appendingPathComponent("rl")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var bytes = [UInt8](repeating: 0, count: 12000)
        for i in bytes.indices { bytes[i] = UInt8(truncatingIfNeeded: i &* 7 >> 2) }
        try Data(bytes).write(to: dir.appendingPathComponent("f.bin"))
        for proto in ["--http1.1", "--http2", "plain"] {
            let out = lb.dir.appendingPathComponent("rl.bin").path
            let start = Date()
            let r = proto == "plain" ? try curl(["-s", "--http1.1", "-o", out, "http://127.0.0.1:\(lb.port)/rl/f.bin"])
                : try curl(["-s", "--cacert", TestCerts.path("ca.crt"), "--resolve", "a.test:\(tls):127.0.0.1", proto,
                            "-o", out, "https://a.test:\(tls)/rl/f.bin"])
            let took = Date().timeIntervalSince(start)
            #expect(r.status == 0 && (try? Data(contentsOf: URL(fileURLWithPath: out))) == Data(bytes), "\(proto): \(r.err)")
            #expect(took >= 1.5, "\(proto): 12,000 octets at 4k a second took \(took) s")
        }
        #expect(Self.watches(of: lb.started.pid) == 1, "the file was held in memory")
    }

    @Test func onlySmallFilesAreHeld() throws {
        let (lb, tls, files) = try Self.start()
        var big = [UInt8](repeating: 0, count: 16384 + 1)
        for i in big.indices { big[i] = UInt8(truncatingIfNeeded: i &* 31 >> 3) }
        try Data(big).write(to: files.appendingPathComponent("big.bin"))
        try Data(big[..<16384]).write(to: files.appendingPathComponent("edge.bin"))
        for name in ["big.bin", "edge.bin"] {
            let r = try curl(["--cacert", TestCerts.path("ca.crt"), "--resolve", "a.test:\(tls):127.0.0.1", "--http2",
                              "-o", lb.dir.appendingPathComponent(name).path, "https://a.test:\(tls)/m/\(name)"])
            #expect(r.status == 0, "\(r.err)")
        }
        #expect(try Data(contentsOf: lb.dir.appendingPathComponent("big.bin")) == Data(big))
        #expect(try Data(contentsOf: lb.dir.appendingPathComponent("edge.bin")) == Data(big[..<16384]))
        #expect(Self.watches(of: lb.started.pid) == 1, "16 KiB is held, one byte more is not")
        // Cleartext HTTP/1.1 sends a held file larger than the room beside the head with it in one
        // writev: whole, and one range of it.
        let plain = lb.dir.appendingPathComponent("plain.bin").path
        #expect(try curl(["-s", "--http1.1", "-o", plain, "http://127.0.0.1:\(lb.port)/m/edge.bin"]).status == 0)
        #expect(try Data(contentsOf: URL(fileURLWithPath: plain)) == Data(big[..<16384]))
        #expect(try curl(["-s", "--http1.1", "-r", "1000-9999", "-o", plain, "http://127.0.0.1:\(lb.port)/m/edge.bin"]).status == 0)
        #expect(try Data(contentsOf: URL(fileURLWithPath: plain)) == Data(big[1000...9999]))
        writeInPlace(files.appendingPathComponent("edge.bin"), "x", truncate: true)
        #expect(try waitUntil(timeout: 5, interval: 0.05) { try fetch(lb, tls: tls, "/m/edge.bin", "h2") == ("x", 1) })
    }
}
