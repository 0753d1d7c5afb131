import Foundation
import Glibc
import Testing

/// The static handler over real sockets: types, validators, ranges, directories, alias, try_files,
/// gzip_static, and a list of path-traversal attempts.
@Suite(.serialized) struct StaticTests {
    final class Site: @unchecked Sendable {
        let root: URL
        let www: URL
        let lb: LB
        let big: Data

        deinit { try? FileManager.default.removeItem(at: root) }

        init() throws {
            let root = try Harness.tempDirectory()
            let www = root.appendingPathComponent("www")
            self.root = root
            self.www = www
            let fm = FileManager.default
            for d in ["sub", "noindex", "listdir/inner", "gz"] { try fm.createDirectory(at: www.appendingPathComponent(d), withIntermediateDirectories: true) }
            func put(_ path: String, _ text: String) throws { try text.write(to: www.appendingPathComponent(path), atomically: true, encoding: .utf8) }
            try put("index.html", "<h1>home</h1>")
            try put("style.css", "body{}")
            try put("app.js", "let x=1")
            try put("data.unknownext", "?")
            try put("sub/index.html", "sub index")
            try put("sub/page.txt", "sub page")
            try put("noindex/a.txt", "a")
            try put("listdir/b.txt", "bb")
            try put("private.txt", "PRIVATE-IN-WWW")
            try put("gz/t.txt", "plain text")
            try "TOP-SECRET".write(to: root.appendingPathComponent("secret.txt"), atomically: true, encoding: .utf8)
            try "linked".write(to: root.appendingPathComponent("linked.txt"), atomically: true, encoding: .utf8)
            try fm.createSymbolicLink(atPath: www.appendingPathComponent("link.txt").path, withDestinationPath: "../linked.txt")
            var bytes = [UInt8](repeating: 0, count: 1 << 20)
            for i in bytes.indices { bytes[i] = UInt8(truncatingIfNeeded: i &* 7 &+ i >> 9) }
            let big = Data(bytes)
            self.big = big
            try big.write(to: www.appendingPathComponent("big.bin"))
            try Data([0x89, 0x50, 0x4E, 0x47]).write(to: www.appendingPathComponent("img.png"))
            // A precompressed sibling for gzip_static, made by gzip(1).
            let gz = try Started(URL(fileURLWithPath: "/bin/gzip"), ["-kn", www.appendingPathComponent("gz/t.txt").path])
            gz.wait(timeout: 10)
            let w = www.path
            lb = try LB("""
            events {}
            http {
                include \(Harness.repositoryRoot.appendingPathComponent("examples/mime.types").path);
                default_type application/octet-stream;
                access_log off;
                server {
                    listen 127.0.0.1:{port};
                    root \(w);
                    location / { }
                    location /spa/ { try_files $uri $uri/ /index.html; }
                    location /named/ { try_files $uri @fallback; }
                    location @fallback { return 200 "named fallback"; }
                    location /files/ { alias \(w)/sub/; }
                    location /al { alias \(w)/sub/; }
                    location ~ ^/re/(.+)$ { alias \(w)/sub/$1; }
                    location /listing/ { alias \(w)/listdir/; autoindex on; }
                    location /gz/ { gzip_static on; gzip_vary on; }
                    location /missing/ { try_files $uri =404; }
                    location /safe/ { alias \(w)/; disable_symlinks on; }
                }
            }
            """)
        }
    }

    /// A fixture per test (Swift Testing makes a suite instance per test), so the lb it starts
    /// is stopped when the test ends; a static fixture would outlive the test process.
    let site: Site
    init() throws { site = try Site() }
    var port: Int { site.lb.port }

    @Test(arguments: [("/", "text/html", "<h1>home</h1>"), ("/style.css", "text/css", "body{}"), ("/app.js", "text/javascript", "let x=1"),
                      ("/img.png", "image/png", nil), ("/data.unknownext", "application/octet-stream", "?"), ("/sub/", "text/html", "sub index")])
    func contentAndTypes(_ path: String, _ type: String, _ body: String?) throws {
        let r = try RawClient(port: port).get(path)
        #expect(r.status == 200)
        #expect(r.header("Content-Type") == type)
        if let body { #expect(r.text == body) }
        #expect(r.header("Accept-Ranges") == "bytes" && r.header("ETag") != nil && r.header("Last-Modified") != nil)
    }

    @Test func conditionalRequests() throws {
        let c = try RawClient(port: port)
        let first = try c.get("/style.css")
        let etag = try #require(first.header("ETag"))
        let lm = try #require(first.header("Last-Modified"))
        #expect(try c.get("/style.css", headers: ["If-None-Match: \(etag)"]).status == 304)
        #expect(try c.get("/style.css", headers: ["If-None-Match: \"other\""]).status == 200)
        #expect(try c.get("/style.css", headers: ["If-Modified-Since: \(lm)"]).status == 304)
        #expect(try c.get("/style.css", headers: ["If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT"]).status == 200)
    }

    @Test func rangesAndIfRange() throws {
        let c = try RawClient(port: port)
        let all = [UInt8](site.big)
        let a = try c.get("/big.bin", headers: ["Range: bytes=0-9"])
        #expect(a.status == 206 && a.body == Array(all[0..<10]) && a.header("Content-Range") == "bytes 0-9/1048576")
        let b = try c.get("/big.bin", headers: ["Range: bytes=-5"])
        #expect(b.status == 206 && b.body == Array(all[(all.count - 5)...]))
        let tail = try c.get("/big.bin", headers: ["Range: bytes=1048570-"])
        #expect(tail.status == 206 && tail.body.count == 6)
        let bad = try c.get("/big.bin", headers: ["Range: bytes=2000000-"])
        #expect(bad.status == 416 && bad.header("Content-Range") == "bytes */1048576")
        let etag = try #require(a.header("ETag"))
        #expect(try c.get("/big.bin", headers: ["Range: bytes=0-9", "If-Range: \(etag)"]).status == 206)
        let stale = try c.get("/big.bin", headers: ["Range: bytes=0-9", "If-Range: \"stale\""])
        #expect(stale.status == 200 && stale.body.count == all.count)
        // Several ranges: multipart/byteranges, framed as nginx frames them.
        let multi = try c.get("/big.bin", headers: ["Range: bytes=0-1,5-6"])
        #expect(multi.status == 206)
        let type = try #require(multi.header("Content-Type"))
        #expect(type.hasPrefix("multipart/byteranges; boundary="))
        let boundary = String(type.dropFirst("multipart/byteranges; boundary=".count))
        var expected = Array("\r\n--\(boundary)\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 0-1/1048576\r\n\r\n".utf8)
        expected += all[0..<2]
        expected += Array("\r\n--\(boundary)\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 5-6/1048576\r\n\r\n".utf8)
        expected += all[5..<7]
        expected += Array("\r\n--\(boundary)--\r\n".utf8)
        #expect(multi.body == expected)
        #expect(multi.header("Content-Length") == "\(expected.count)")
        // Ranges that overlap past the file's size are answered whole, as nginx does.
        #expect(try c.get("/big.bin", headers: ["Range: bytes=0-1048575,0-1048575"]).status == 200)
        // The connection still works after a multipart body.
        #expect(try c.get("/big.bin", headers: ["Range: bytes=0-0"]).body == [all[0]])
    }

    @Test func conditionalsAsNginx() throws {
        let c = try RawClient(port: port)
        let first = try c.get("/style.css")
        let lm = try #require(first.header("Last-Modified"))
        let etag = try #require(first.header("ETag"))
        // if_modified_since exact (nginx's default): only the very date is not modified.
        #expect(try c.get("/style.css", headers: ["If-Modified-Since: \(lm)"]).status == 304)
        #expect(try c.get("/style.css", headers: ["If-Modified-Since: Fri, 01 Jan 2100 00:00:00 GMT"]).status == 200)
        #expect(try c.get("/style.css", headers: ["If-None-Match: \(etag)"]).status == 304)
        #expect(try c.get("/style.css", headers: ["If-None-Match: \"other\", W/\(etag)"]).status == 304)
        #expect(try c.get("/style.css", headers: ["If-Match: \"other\""]).status == 412)
        #expect(try c.get("/style.css", headers: ["If-Unmodified-Since: Mon, 01 Jan 2001 00:00:00 GMT"]).status == 412)
        #expect(try c.get("/style.css", headers: ["If-Match: \(etag)"]).status == 200)
    }

    @Test func headNotFoundMethodsAndDirectories() throws {
        let c = try RawClient(port: port)
        try c.send("HEAD /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        let h = try c.readResponse(head: true)
        #expect(h.status == 200 && h.header("Content-Length") == "1048576")
        #expect(try c.get("/nope.html").status == 404)
        try c.send("POST /index.html HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        #expect(try c.readResponse().status == 405)
        let redirect = try c.get("/sub")
        #expect(redirect.status == 301 && redirect.header("Location") == "http://localhost:\(port)/sub/") // absolute, as nginx
        #expect(try c.get("/noindex/").status == 403)
        let listing = try c.get("/listing/")
        #expect(listing.status == 200 && listing.text.contains("<a href=\"b.txt\">b.txt</a>") && listing.text.contains("<a href=\"inner/\">inner/</a>"))
    }

    @Test func aliasTryFilesAndNamedFallbacks() throws {
        let c = try RawClient(port: port)
        #expect(try c.get("/files/page.txt").text == "sub page")
        #expect(try c.get("/re/page.txt").text == "sub page")
        #expect(try c.get("/spa/deep/route").text == "<h1>home</h1>")
        #expect(try c.get("/named/x").text == "named fallback")
        #expect(try c.get("/missing/x").status == 404)
    }

    @Test func symlinksAreFollowedUnlessDisabled() throws {
        let c = try RawClient(port: port)
        #expect(try c.get("/link.txt").text == "linked") // nginx's default: disable_symlinks off
        #expect(try c.get("/safe/link.txt").status == 403)
        #expect(try c.get("/safe/style.css").status == 200)
    }

    @Test func oneMebibyteIsByteIdenticalThroughCurl() throws {
        let dir = try Harness.tempDirectory()
        let out = dir.appendingPathComponent("big.bin")
        let r = try curl(["-o", out.path, "http://127.0.0.1:\(port)/big.bin"])
        #expect(r.status == 0)
        #expect(try Data(contentsOf: out) == site.big)
    }

    @Test func gzipStaticServesThePrecompressedFile() throws {
        let c = try RawClient(port: port)
        let z = try c.get("/gz/t.txt", headers: ["Accept-Encoding: gzip, br"])
        #expect(z.header("Content-Encoding") == "gzip" && z.header("Vary") == "Accept-Encoding" && z.body.first == 0x1f)
        let plain = try c.get("/gz/t.txt")
        #expect(plain.header("Content-Encoding") == nil && plain.text == "plain text")
        let viaCurl = try curl(["--compressed", "http://127.0.0.1:\(port)/gz/t.txt"])
        #expect(viaCurl.out == "plain text")
    }

    @Test(arguments: [
        "/../secret.txt", "/%2e%2e/secret.txt", "/%2E%2E/secret.txt", "/..%2fsecret.txt", "/..%2Fsecret.txt",
        "/%2e%2e%2fsecret.txt", "/sub/../../secret.txt", "/sub/%2e%2e/%2e%2e/secret.txt", "/%252e%252e/secret.txt",
        "/..\\secret.txt", "/..%5csecret.txt", "/%c0%ae%c0%ae/secret.txt", "/%c0%2e%c0%2e/secret.txt", "/.%2e/secret.txt",
        "/%2e./secret.txt", "/al../private.txt", "/al../../secret.txt", "/files/../../secret.txt", "/files/%2e%2e/%2e%2e/secret.txt",
        "/secret.txt%00.html", "/%00", "//../secret.txt", "/./../secret.txt", "/re/..%2f..%2fsecret.txt", "/re/x/../../../secret.txt",
        "/files/..%2f..%2fsecret.txt", "/listing/../../secret.txt", "/gz/%2e%2e%2f%2e%2e%2fsecret.txt",
    ])
    func traversalIsRefused(_ path: String) throws {
        let c = try RawClient(port: port)
        try c.send("GET \(path) HTTP/1.1\r\nHost: x\r\n\r\n")
        let r = try c.readResponse()
        #expect(!r.text.contains("TOP-SECRET") && !r.text.contains("PRIVATE-IN-WWW"), "\(path) leaked: \(r.status)")
        #expect(r.status == 400 || r.status == 403 || r.status == 404, "\(path) → \(r.status)")
    }
}
