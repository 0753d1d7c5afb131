import Foundation
import Glibc
import Testing

/// Debian's php-fpm (a test instrument), started with its own config in a temp dir, listening on
/// a loopback port in the foreground; stopped by PID.
final class PHPFPM {
    let port: Int
    let dir: URL
    let started: Started
    /// The unix-domain socket it listens on instead of the port, when asked for one.
    let socket: String?

    init(unixSocket: Bool = false) throws {
        port = freePort()
        dir = try Harness.tempDirectory()
        socket = unixSocket ? dir.appendingPathComponent("php-fpm.sock").path : nil
        let root = getuid() == 0
        let conf = """
        [global]
        error_log = \(dir.path)/fpm.log
        daemonize = no
        [www]
        \(root ? "user = nobody\ngroup = nogroup" : "")
        listen = \(socket ?? "127.0.0.1:\(port)")
        \(unixSocket ? "listen.mode = 0666" : "")
        pm = static
        pm.max_children = 2
        php_admin_flag[log_errors] = on
        php_admin_value[post_max_size] = 64M
        php_admin_value[upload_max_filesize] = 64M
        php_admin_value[output_buffering] = 0
        php_admin_value[max_input_vars] = 100000
        """
        let path = dir.appendingPathComponent("php-fpm.conf")
        try conf.write(to: path, atomically: true, encoding: .utf8)
        // Debian names the binary after the PHP version (php-fpm8.2 on bookworm).
        let binary = ((try? FileManager.default.contentsOfDirectory(atPath: "/usr/sbin")) ?? [])
            .filter { $0.hasPrefix("php-fpm") }.sorted().last ?? "php-fpm"
        started = try Started(URL(fileURLWithPath: "/usr/sbin/" + binary), ["-F"] + (root ? ["-R"] : []) + ["-y", path.path, "-p", dir.path])
        if let socket {
            guard waitUntil(timeout: 20, { FileManager.default.fileExists(atPath: socket) }) else { throw HarnessError("php-fpm did not start: \(started.stderr)") }
        } else {
            guard waitForPort(port) else { throw HarnessError("php-fpm did not start: \(started.stderr)") }
        }
    }

    deinit {
        started.stop()
        try? FileManager.default.removeItem(at: dir)
    }
}

/// Established TCP connections from this host to `port` on 127.0.0.1, by local port
/// (/proc/net/tcp: lb's connections to the application server).
func establishedLocalPorts(to port: Int) -> [Int] {
    // Read with cat: /proc files report size 0, and a whole-file read may then see nothing.
    guard let p = try? Started(URL(fileURLWithPath: "/bin/cat"), ["/proc/net/tcp"]), p.wait(timeout: 10),
          let text = try? String(contentsOf: p.stdoutURL, encoding: .utf8) else { return [] }
    var out: [Int] = []
    for line in text.split(separator: "\n").dropFirst() {
        let f = line.split(separator: " ")
        guard f.count > 3, f[3] == "01" else { continue }
        let local = f[1].split(separator: ":"), remote = f[2].split(separator: ":")
        guard remote.count == 2, Int(remote[1], radix: 16) == port, local.count == 2, let lp = Int(local[1], radix: 16) else { continue }
        out.append(lp)
    }
    return out
}

func md5sum(_ url: URL) -> String {
    guard let p = try? Started(URL(fileURLWithPath: "/usr/bin/md5sum"), [url.path]) else { return "" }
    _ = p.wait(timeout: 30)
    return String(((try? String(contentsOf: p.stdoutURL, encoding: .utf8)) ?? "").prefix(32))
}

/// PHP behind lb through FastCGI, against Debian's php-fpm: a front controller reached through
/// try_files, `Status:` and `Location:` headers, multi-megabyte POST bodies (urlencoded and
/// multipart), large and streamed responses, PHP's stderr in lb's error log, one upstream
/// connection reused across requests, fastcgi_split_path_info, and fastcgi_cache.
@Suite(.serialized) struct FastCGITests {
    static let indexPHP = """
    <?php
    $p = parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH);
    if ($p === '/app/') { echo "script ", $_SERVER['X_SCRIPT'], " [", $_SERVER['X_INFO'], "]\n"; exit; }
    if (str_starts_with($p, '/missing')) { header('Status: 404 Not Found'); echo "nope\\n"; exit; }
    if ($p === '/go') { header('Location: /elsewhere'); exit; }
    if (str_starts_with($p, '/err')) { error_log("something bad happened"); echo "logged\\n"; exit; }
    if ($p === '/big') { echo str_repeat("0123456789abcdef", 5 * 1024 * 1024 / 16); exit; }
    if ($p === '/form') { $a = $_POST['a'] ?? ''; echo strlen($a), " ", md5($a), " ", $_POST['b'] ?? '-', "\\n"; exit; }
    if ($p === '/upload') { $f = $_FILES['file']; echo $f['size'], " ", md5_file($f['tmp_name']), " ", $_POST['note'] ?? '-', "\\n"; exit; }
    if ($p === '/raw') { $b = file_get_contents('php://input'); echo strlen($b), " ", md5($b), " ", $_SERVER['CONTENT_LENGTH'], "\\n"; exit; }
    header('Content-Type: text/plain');
    echo "front ", $_SERVER['SCRIPT_NAME'], " ", $_SERVER['REQUEST_URI'], " [", $_SERVER['PATH_INFO'] ?? '', "] ", $_SERVER['QUERY_STRING'], " ", $_SERVER['REQUEST_METHOD'], " ", $_SERVER['HTTP_X_TEST'] ?? '-', "\\n";
    """

    static let streamPHP = """
    <?php
    echo "first\\n"; flush();
    $m = $_GET['marker'] ?? '';
    for ($i = 0; $i < 2000 && !file_exists($m); $i++) usleep(10000);
    echo "second\\n";
    """

    static let waitPHP = """
    <?php
    $m = $_GET['marker'] ?? '';
    for ($i = 0; $i < 2000 && !file_exists($m); $i++) usleep(10000);
    echo "late\n";
    """

    static let uniqPHP = """
    <?php echo uniqid('', true), "\\n";
    """

    /// php-fpm, a document root readable by its workers, and lb in front.
    struct Stack {
        let fpm: PHPFPM
        let root: URL
        let lb: LB
        /// A port nothing listens on: the first server of the `flaky` upstream.
        let deadPort: Int
    }

    /// `fastcgi_pass unix:PATH`: php-fpm on a unix-domain socket (Debian's own default).
    @Test func phpFPMOnAUnixSocket() throws {
        let fpm = try PHPFPM(unixSocket: true)
        let root = try Harness.tempDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        chmod(root.path, 0o755)
        try Self.indexPHP.write(to: root.appendingPathComponent("index.php"), atomically: true, encoding: .utf8)
        chmod(root.appendingPathComponent("index.php").path, 0o644)
        let examples = Harness.repositoryRoot.appendingPathComponent("examples").path
        let lb = try LB("""
        events {}
        http {
            access_log off;
            server {
                listen 127.0.0.1:{port};
                root \(root.path);
                location / { try_files $uri /index.php?$args; }
                location ~ \\.php$ { include \(examples)/fastcgi.conf; fastcgi_pass unix:\(fpm.socket!); }
            }
        }
        """)
        let r = try RawClient(port: lb.port).get("/some/route?x=1")
        #expect(r.status == 200)
        #expect(r.text.hasPrefix("front /index.php /some/route?x=1"), "\(r.text)")
        let m = try RawClient(port: lb.port).get("/missing")
        #expect(m.status == 404 && m.text == "nope\n")
    }

    func stack() throws -> Stack {
        let fpm = try PHPFPM()
        let deadPort = freePort()
        let root = try Harness.tempDirectory()
        chmod(root.path, 0o755)
        try Self.indexPHP.write(to: root.appendingPathComponent("index.php"), atomically: true, encoding: .utf8)
        try Self.streamPHP.write(to: root.appendingPathComponent("stream.php"), atomically: true, encoding: .utf8)
        try Self.uniqPHP.write(to: root.appendingPathComponent("uniq.php"), atomically: true, encoding: .utf8)
        try Self.waitPHP.write(to: root.appendingPathComponent("wait.php"), atomically: true, encoding: .utf8)
        try "body { }\n".write(to: root.appendingPathComponent("style.css"), atomically: true, encoding: .utf8)
        try "custom 404\n".write(to: root.appendingPathComponent("404.html"), atomically: true, encoding: .utf8)
        for f in ["index.php", "stream.php", "uniq.php", "wait.php", "style.css", "404.html"] { chmod(root.appendingPathComponent(f).path, 0o644) }
        let examples = Harness.repositoryRoot.appendingPathComponent("examples").path
        let lb = try LB("""
        events {}
        http {
            access_log off;
            fastcgi_cache_path cache keys_zone=fc:1m;
            upstream php { server 127.0.0.1:\(fpm.port); keepalive 4; }
            upstream flaky { server 127.0.0.1:\(deadPort); server 127.0.0.1:\(fpm.port); }
            server {
                listen 127.0.0.1:{port};
                root \(root.path);
                client_max_body_size 64m;
                location / { try_files $uri /index.php?$args; }
                location = /404.html { internal; }
                location = /missing-intercepted {
                    include \(examples)/fastcgi.conf;
                    fastcgi_param SCRIPT_FILENAME $document_root/index.php;
                    fastcgi_intercept_errors on;
                    error_page 404 /404.html;
                    fastcgi_pass php;
                }
                location = /missing-passed {
                    include \(examples)/fastcgi.conf;
                    fastcgi_param SCRIPT_FILENAME $document_root/index.php;
                    error_page 404 /404.html;
                    fastcgi_pass php;
                }
                location = /wait.php {
                    proxy_read_timeout 60s;
                    include \(examples)/fastcgi.conf;
                    fastcgi_read_timeout 1s;
                    fastcgi_pass php;
                }
                location = /app/ {
                    include \(examples)/fastcgi.conf;
                    fastcgi_index index.php;
                    fastcgi_param SCRIPT_FILENAME $document_root/index.php;
                    fastcgi_param X_SCRIPT $fastcgi_script_name;
                    fastcgi_param X_INFO $fastcgi_path_info;
                    fastcgi_pass php;
                }
                location ~ ^/err-(caught|other)$ {
                    include \(examples)/fastcgi.conf;
                    fastcgi_param SCRIPT_FILENAME $document_root/index.php;
                    fastcgi_catch_stderr "nothing like it";
                    fastcgi_catch_stderr "something bad";
                    fastcgi_pass php;
                    location ~ other { include \(examples)/fastcgi.conf; fastcgi_param SCRIPT_FILENAME $document_root/index.php;
                                       fastcgi_catch_stderr "not in it"; fastcgi_pass php; }
                }
                location = /retry {
                    include \(examples)/fastcgi.conf;
                    fastcgi_param SCRIPT_FILENAME $document_root/index.php;
                    fastcgi_pass flaky;
                }
                location = /uniq.php {
                    include \(examples)/fastcgi.conf;
                    fastcgi_cache fc;
                    fastcgi_cache_key $request_uri;
                    fastcgi_cache_valid 200 1m;
                    add_header X-Cache $upstream_cache_status always;
                    fastcgi_pass php;
                }
                location ~ [^/]\\.php(/|$) {
                    fastcgi_split_path_info ^(.+?\\.php)(/.*)$;
                    include \(examples)/fastcgi.conf;
                    fastcgi_param PATH_INFO $fastcgi_path_info;
                    fastcgi_keep_conn on;
                    fastcgi_read_timeout 30s;
                    fastcgi_pass php;
                }
            }
        }
        """)
        return Stack(fpm: fpm, root: root, lb: lb, deadPort: deadPort)
    }

    func url(_ s: Stack, _ path: String) -> String { "http://127.0.0.1:\(s.lb.port)\(path)" }

    @Test func shippedPHPAndUwsgiExamplesPassTheConfigTest() throws {
        for f in ["examples/php.conf", "examples/uwsgi.conf"] {
            let r = try Harness.run("lb", ["-t", "-p", Harness.repositoryRoot.path, "-c", f])
            #expect(r.status == 0 && r.stderr.contains("test is successful"), "\(f): \(r.stderr)")
        }
    }

    @Test func frontControllerAnswersEveryPathThatIsNotAFile() throws {
        let s = try stack()
        let r = try curl(["-H", "X-Test: yes", url(s, "/some/page?a=1&b=2")])
        #expect(r.out == "front /index.php /some/page?a=1&b=2 [] a=1&b=2 GET yes\n")
        // A file that exists is served by lb itself.
        #expect(try curl([url(s, "/style.css")]).out == "body { }\n")
        // A POST to a route that is no file reaches PHP (try_files before the static handler).
        #expect(try curl(["-d", "x=1", url(s, "/post/here")]).out.hasPrefix("front /index.php /post/here [] "))
    }

    @Test func statusAndLocationHeadersBecomeTheResponseStatus() throws {
        let s = try stack()
        let missing = try curl(["-i", url(s, "/missing")])
        #expect(missing.out.hasPrefix("HTTP/1.1 404 Not Found\r\n"))
        #expect(missing.out.hasSuffix("\r\n\r\nnope\n"))
        #expect(!missing.out.lowercased().contains("\nstatus:"))
        let go = try curl(["-i", url(s, "/go")])
        #expect(go.out.hasPrefix("HTTP/1.1 302 "))
        #expect(go.out.contains("\r\nLocation: /elsewhere\r\n"))
    }

    @Test func urlencodedPostOfSeveralMegabytesReachesPHP() throws {
        let s = try stack()
        let value = String(repeating: "abcdefghij", count: 300_000)
        let file = s.root.appendingPathComponent("form.txt")
        try ("a=" + value + "&b=2").write(to: file, atomically: true, encoding: .utf8)
        let valueFile = s.root.appendingPathComponent("value.txt")
        try value.write(to: valueFile, atomically: true, encoding: .utf8)
        let r = try curl(["--data-binary", "@" + file.path, "-H", "Content-Type: application/x-www-form-urlencoded", url(s, "/form")])
        #expect(r.out == "3000000 \(md5sum(valueFile)) 2\n")
    }

    @Test func multipartUploadOfSeveralMegabytesReachesPHP() throws {
        let s = try stack()
        let file = s.root.appendingPathComponent("upload.bin")
        var bytes = [UInt8](repeating: 0, count: 6_000_000)
        for i in bytes.indices { bytes[i] = UInt8(truncatingIfNeeded: i &* 2654435761 >> 13) }
        try Data(bytes).write(to: file)
        let r = try curl(["-F", "file=@" + file.path, "-F", "note=hi", url(s, "/upload")])
        #expect(r.out == "6000000 \(md5sum(file)) hi\n")
        // A chunked upload goes to PHP with its real CONTENT_LENGTH.
        let chunked = try curl(["-H", "Transfer-Encoding: chunked", "-H", "Content-Type: application/octet-stream",
                                "--data-binary", "@" + file.path, url(s, "/raw")])
        #expect(chunked.out == "6000000 \(md5sum(file)) 6000000\n")
    }

    @Test func interceptErrorsAnswersWithTheErrorPage() throws {
        let s = try stack()
        let intercepted = try curl(["-i", url(s, "/missing-intercepted")])
        #expect(intercepted.out.hasPrefix("HTTP/1.1 404 ") && intercepted.out.hasSuffix("\r\n\r\ncustom 404\n"))
        // Without fastcgi_intercept_errors the application's own 404 body passes.
        let passed = try curl(["-i", url(s, "/missing-passed")])
        #expect(passed.out.hasPrefix("HTTP/1.1 404 ") && passed.out.hasSuffix("\r\n\r\nnope\n"))
    }

    @Test func nextUpstreamMovesPastAPeerThatRefuses() throws {
        let s = try stack()
        for _ in 0..<4 {
            #expect(try curl(["-o", "/dev/null", "-w", "%{http_code}", url(s, "/retry")]).out == "200")
        }
        #expect(waitUntil { s.lb.errorLog.contains("connect() failed (111: Connection refused) while connecting to upstream") })
        #expect(s.lb.errorLog.contains("upstream: \"fastcgi://127.0.0.1:\(s.deadPort)\""))
    }

    @Test func fastcgiReadTimeoutAnswers504() throws {
        let s = try stack()
        let marker = s.root.appendingPathComponent("never")
        // fastcgi_read_timeout (1s) applies, not the location's proxy_read_timeout (60s).
        #expect(try curl(["-o", "/dev/null", "-w", "%{http_code}", url(s, "/wait.php?marker=\(marker.path)")]).out == "504")
        #expect(waitUntil { s.lb.errorLog.contains("upstream timed out (110: Connection timed out) while reading response header from upstream") })
        _ = FileManager.default.createFile(atPath: marker.path, contents: nil) // lets the PHP worker go
    }

    @Test func largeResponseArrivesWhole() throws {
        let s = try stack()
        let out = s.root.appendingPathComponent("big.out")
        let r = try curl(["-o", out.path, "-w", "%{http_code} %{size_download}", url(s, "/big")])
        #expect(r.out == "200 5242880")
        let data = try Data(contentsOf: out)
        #expect(data.prefix(16) == Data("0123456789abcdef".utf8) && data.suffix(16) == Data("0123456789abcdef".utf8))
    }

    @Test func flushedOutputIsStreamedBeforeTheScriptEnds() throws {
        let s = try stack()
        let marker = s.root.appendingPathComponent("marker")
        let c = try RawClient(port: s.lb.port, timeout: 20)
        defer { c.close() }
        try c.send("GET /stream.php?marker=\(marker.path) HTTP/1.1\r\nHost: x\r\n\r\n")
        // The first line arrives while PHP is still waiting for the marker (blocking reads,
        // bounded by the socket timeout).
        func text() -> String { String(decoding: c.buffer, as: UTF8.self) }
        while !text().contains("first\n") { guard c.fill() else { break } }
        #expect(text().contains("first\n"))
        #expect(!text().contains("second"))
        FileManager.default.createFile(atPath: marker.path, contents: nil)
        while !text().contains("second\n") { guard c.fill() else { break } }
        #expect(text().contains("second\n"))
    }

    @Test func phpStderrIsLoggedAsNginxDoes() throws {
        let s = try stack()
        #expect(try curl([url(s, "/err")]).out == "logged\n")
        #expect(waitUntil { s.lb.errorLog.contains("[error]") && s.lb.errorLog.contains("FastCGI sent in stderr: \"PHP message: something bad happened\" while reading response header from upstream") })
        #expect(s.lb.errorLog.contains("upstream: \"fastcgi://127.0.0.1:\(s.fpm.port)\""))
    }

    /// `fastcgi_catch_stderr`: a string found in what PHP writes to stderr before its head makes
    /// the head invalid — 502 (`invalid_header` is not in the default fastcgi_next_upstream), with
    /// nginx's log lines; a string not found changes nothing.
    @Test func catchStderrTurnsAMatchingMessageInto502() throws {
        let s = try stack()
        let caught = try curl(["-s", "-o", "/dev/null", "-w", "%{http_code}", url(s, "/err-caught")])
        #expect(caught.out == "502", "\(s.lb.errorLog.suffix(600))")
        #expect(waitUntil { s.lb.errorLog.contains("upstream sent invalid header while reading response header from upstream") })
        #expect(try curl([url(s, "/err-other")]).out == "logged\n")
    }

    @Test func keepConnReusesOneUpstreamConnection() throws {
        let s = try stack()
        var ports: Set<Int> = []
        for i in 0..<5 {
            #expect(try curl([url(s, "/index.php?n=\(i)")]).out.hasPrefix("front /index.php"))
            let open = establishedLocalPorts(to: s.fpm.port)
            #expect(open.count == 1)
            ports.formUnion(open)
        }
        #expect(ports.count == 1)
    }

    @Test func splitPathInfoSetsScriptNameAndPathInfo() throws {
        let s = try stack()
        #expect(try curl([url(s, "/index.php/extra/path?q=1")]).out == "front /index.php /index.php/extra/path?q=1 [/extra/path] q=1 GET -\n")
    }

    @Test func fastcgiIndexCompletesAScriptNameEndingInSlash() throws {
        let s = try stack()
        #expect(try curl([url(s, "/app/")]).out == "script /app/index.php []\n")
    }

    @Test func fastcgiCacheServesTheSecondRequest() throws {
        let s = try stack()
        let first = try curl(["-i", url(s, "/uniq.php")])
        let second = try curl(["-i", url(s, "/uniq.php")])
        #expect(first.out.contains("X-Cache: MISS"))
        #expect(second.out.contains("X-Cache: HIT"))
        let body = { (r: String) in r.components(separatedBy: "\r\n\r\n").last ?? "" }
        #expect(!body(first.out).isEmpty && body(first.out) == body(second.out))
    }
}
