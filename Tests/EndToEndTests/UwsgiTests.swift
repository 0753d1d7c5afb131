import Foundation
import Glibc
import Testing

/// Debian's uWSGI with its Python 3 plugin (a test instrument) running a small WSGI app on a
/// loopback port (uwsgi protocol), in the foreground; stopped by PID.
final class UwsgiServer {
    let port: Int
    let dir: URL
    let started: Started

    static let app = """
    import hashlib, os
    def application(env, start_response):
        path = env.get('PATH_INFO', '')
        if path == '/post':
            n = int(env.get('CONTENT_LENGTH') or 0)
            body = env['wsgi.input'].read(n)
            start_response('200 OK', [('Content-Type', 'text/plain')])
            return [("%d %s\\n" % (len(body), hashlib.md5(body).hexdigest())).encode()]
        if path == '/missing':
            start_response('404 Not Found', [('Content-Type', 'text/plain')])
            return [b'nope\\n']
        if path == '/big':
            start_response('200 OK', [('Content-Type', 'application/octet-stream')])
            return [b'0123456789abcdef' * (5 * 1024 * 1024 // 16)]
        if path == '/uniq':
            start_response('200 OK', [('Content-Type', 'text/plain'), ('Cache-Control', 'max-age=60')])
            return [os.urandom(8).hex().encode() + b'\\n']
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [("wsgi %s %s %s %s %s %s\\n" % (env.get('REQUEST_METHOD', '-'), path, env.get('QUERY_STRING', ''),
                 env.get('HTTP_X_TEST', '-'), env.get('APP_MODE', '-'), env.get('UWSGI_EXTRA', '-'))).encode()]
    """

    init() throws {
        port = freePort()
        dir = try Harness.tempDirectory()
        let app = dir.appendingPathComponent("app.py")
        try Self.app.write(to: app, atomically: true, encoding: .utf8)
        started = try Started(URL(fileURLWithPath: "/usr/bin/uwsgi"),
                              ["--plugin", "python3", "--socket", "127.0.0.1:\(port)", "--wsgi-file", app.path,
                               "--master", "--processes", "1", "--die-on-term", "--buffer-size", "32768"], cwd: dir)
        guard waitForPort(port) else { throw HarnessError("uwsgi did not start: \(started.stderr)") }
    }

    deinit {
        started.stop()
        try? FileManager.default.removeItem(at: dir)
    }
}

/// A WSGI app behind lb through uwsgi_pass, against Debian's uWSGI: the environ from
/// uwsgi_params and the client's headers, the app's status, a several-megabyte POST body, a
/// large response, uwsgi_param overriding and uwsgi_cache.
@Suite(.serialized) struct UwsgiTests {
    struct Stack {
        let app: UwsgiServer
        let lb: LB
    }

    func stack() throws -> Stack {
        let app = try UwsgiServer()
        let examples = Harness.repositoryRoot.appendingPathComponent("examples").path
        let lb = try LB("""
        events {}
        http {
            access_log off;
            uwsgi_cache_path cache keys_zone=uc:1m;
            upstream wsgi { server 127.0.0.1:\(app.port); }
            server {
                listen 127.0.0.1:{port};
                client_max_body_size 64m;
                include \(examples)/uwsgi_params;
                uwsgi_param APP_MODE server-level;
                location / { uwsgi_read_timeout 30s; uwsgi_pass wsgi; }
                location /extra { uwsgi_param UWSGI_EXTRA yes; uwsgi_pass 127.0.0.1:\(app.port); }
                location = /uniq {
                    uwsgi_cache uc;
                    uwsgi_cache_key $request_uri;
                    add_header X-Cache $upstream_cache_status always;
                    uwsgi_pass wsgi;
                }
            }
        }
        """)
        return Stack(app: app, lb: lb)
    }

    func url(_ s: Stack, _ path: String) -> String { "http://127.0.0.1:\(s.lb.port)\(path)" }

    @Test func environCarriesParamsAndClientHeaders() throws {
        let s = try stack()
        #expect(try curl(["-H", "X-Test: yes", url(s, "/hello?x=1")]).out == "wsgi GET /hello x=1 yes server-level -\n")
        // A level with its own uwsgi_param replaces the inherited list, as nginx.
        let extra = try curl([url(s, "/extra")]).out
        #expect(extra.hasPrefix("wsgi ") && extra.hasSuffix(" - yes\n") && !extra.contains("server-level"))
    }

    @Test func applicationStatusPassesThrough() throws {
        let s = try stack()
        let r = try curl(["-i", url(s, "/missing")])
        #expect(r.out.hasPrefix("HTTP/1.1 404 Not Found\r\n"))
        #expect(r.out.hasSuffix("\r\n\r\nnope\n"))
    }

    @Test func postBodyOfSeveralMegabytesReachesTheApp() throws {
        let s = try stack()
        let file = s.app.dir.appendingPathComponent("upload.bin")
        var bytes = [UInt8](repeating: 0, count: 6_000_000)
        for i in bytes.indices { bytes[i] = UInt8(truncatingIfNeeded: i &* 2654435761 >> 11) }
        try Data(bytes).write(to: file)
        #expect(try curl(["--data-binary", "@" + file.path, url(s, "/post")]).out == "6000000 \(md5sum(file))\n")
        #expect(try curl(["-H", "Transfer-Encoding: chunked", "--data-binary", "@" + file.path, url(s, "/post")]).out == "6000000 \(md5sum(file))\n")
    }

    @Test func largeResponseArrivesWhole() throws {
        let s = try stack()
        let out = s.app.dir.appendingPathComponent("big.out")
        let r = try curl(["-o", out.path, "-w", "%{http_code} %{size_download}", url(s, "/big")])
        #expect(r.out == "200 5242880")
        let data = try Data(contentsOf: out)
        #expect(data.suffix(16) == Data("0123456789abcdef".utf8))
    }

    @Test func uwsgiCacheServesTheSecondRequest() throws {
        let s = try stack()
        let first = try curl(["-i", url(s, "/uniq")])
        let second = try curl(["-i", url(s, "/uniq")])
        #expect(first.out.contains("X-Cache: MISS"))
        #expect(second.out.contains("X-Cache: HIT"))
        let body = { (r: String) in r.components(separatedBy: "\r\n\r\n").last ?? "" }
        #expect(!body(first.out).isEmpty && body(first.out) == body(second.out))
    }
}
