import Foundation
import Glibc
import Testing

/// `fastcgi_pass` and `uwsgi_pass` with variables through lb and Debian's nginx side by side (see
/// `Differential`): the address made per request names an upstream group, an address or a
/// unix-domain socket; what nginx cannot parse is a 500, a name without `resolver` a 502, each
/// with nginx's error-log wording. Backends: php-fpm (TCP and a unix socket) and uWSGI.
@Suite(.serialized, .enabled(if: Differential.available, "needs Debian's nginx at /usr/sbin/nginx"))
struct DifferentialAppServerVariableTests {
    typealias R = Differential.Request

    static let appPHP = """
    <?php echo "php ", $_SERVER['REQUEST_METHOD'], " ", $_SERVER['QUERY_STRING'], "\\n";
    """

    @Test func variablesInFastCGIAndUwsgiPassAreResolvedPerRequestAsNginxDoes() throws {
        let fpm = try PHPFPM(), fpmUnix = try PHPFPM(unixSocket: true), wsgi = try UwsgiServer()
        let deadPort = freePort()
        let examples = Harness.repositoryRoot.appendingPathComponent("examples").path
        // php-fpm's workers (nobody, when the tests run as root) read the script from a directory of their own.
        let scripts = try Harness.tempDirectory()
        defer { try? FileManager.default.removeItem(at: scripts) }
        chmod(scripts.path, 0o755)
        try Self.appPHP.write(to: scripts.appendingPathComponent("app.php"), atomically: true, encoding: .utf8)
        chmod(scripts.appendingPathComponent("app.php").path, 0o644)
        let sock = fpmUnix.socket!
        let d = try Differential("""
        upstream php { server 127.0.0.1:\(fpm.port); }
        upstream wsgi { server 127.0.0.1:\(wsgi.port); }
        map $arg_to $fcgi {
            default 127.0.0.1:\(fpm.port);
            group   php;
            sock    unix:\(sock);
            dead    127.0.0.1:\(deadPort);
        }
        uwsgi_cache_path {root}/../cache-{port} keys_zone=uc:1m;
        server {
            listen 127.0.0.1:{port};
            include \(examples)/fastcgi.conf;
            fastcgi_param SCRIPT_FILENAME \(scripts.path)/app.php;
            include \(examples)/uwsgi_params;
            location /f/ { fastcgi_pass $arg_b; }
            location /m/ { fastcgi_pass $fcgi; }
            location /p/ { fastcgi_pass 127.0.0.1:$arg_p; }
            location /s/ { set $addr 127.0.0.1:\(fpm.port); fastcgi_pass $addr; }
            location /u/ { uwsgi_pass $arg_b; }
            location /us/ { uwsgi_pass uwsgi://$arg_h:\(wsgi.port); }
            location = /uniq { uwsgi_cache uc; uwsgi_cache_key $request_uri; add_header X-Cache $upstream_cache_status; uwsgi_pass $arg_b; }
        }
        """)
        let fp = fpm.port, wp = wsgi.port
        try d.compare([
            // An address, an upstream block by name, a unix socket, a port made alone, `set`.
            R(target: "/f/?b=127.0.0.1:\(fp)", expect: 200),
            R(target: "/f/?b=php", expect: 200),
            R(target: "/f/?b=unix:\(sock)", expect: 200),
            R(target: "/m/?to=x", expect: 200), R(target: "/m/?to=group", expect: 200), R(target: "/m/?to=sock", expect: 200),
            R(target: "/p/?p=\(fp)", method: "POST", expect: 200),
            R(target: "/s/x", expect: 200),
            // uwsgi, with and without its scheme.
            R(target: "/u/?b=127.0.0.1:\(wp)", expect: 200), R(target: "/u/?b=uwsgi://127.0.0.1:\(wp)", expect: 200),
            R(target: "/u/?b=wsgi", expect: 200), R(target: "/us/?h=127.0.0.1", expect: 200),
            // Not an address: 500.
            R(target: "/f/?b=", expect: 500), R(target: "/f/?b=127.0.0.1", expect: 500), R(target: "/f/?b=localhost", expect: 500),
            R(target: "/f/?b=127.0.0.1:99999", expect: 500), R(target: "/f/?b=127.0.0.1:\(fp)/x", expect: 500),
            R(target: "/f/?b=unix:", expect: 500), R(target: "/f/?b=a:b:c", expect: 500), R(target: "/p/?p=", expect: 500),
            R(target: "/u/?b=uwsgi://", expect: 500),
            // A name that is no upstream, with no resolver; an upstream name with a port is a name: 502.
            R(target: "/f/?b=localhost:\(fp)", expect: 502), R(target: "/f/?b=php:80", expect: 502),
            // Nothing listening: 502.
            R(target: "/m/?to=dead", expect: 502), R(target: "/f/?b=unix:\(sock).none", expect: 502),
        ], headers: ["Content-Type"])
        // The cache with a pass made per request: stored, then served.
        for port in [d.nginxPort, d.lb.port] {
            let first = try d.fetch(R(target: "/uniq?b=127.0.0.1:\(wp)"), port: port), second = try d.fetch(R(target: "/uniq?b=127.0.0.1:\(wp)"), port: port)
            #expect(first.status == 200 && first.header("X-Cache") == "MISS" && second.header("X-Cache") == "HIT" && second.text == first.text,
                    "port \(port): \(first.header("X-Cache") ?? "-") \(second.header("X-Cache") ?? "-")")
        }
        for line in ["no host in upstream \"\"", "no port in upstream \"127.0.0.1\"", "no port in upstream \"localhost\"",
                     "invalid port in upstream \"127.0.0.1:99999\"", "invalid host in upstream \"127.0.0.1:\(fp)/x\"",
                     "no path in the unix domain socket in upstream \"unix:\"", "invalid port in upstream \"a:b:c\"",
                     "invalid port in upstream \"127.0.0.1:\"", "invalid host in upstream \"uwsgi://\"",
                     "no resolver defined to resolve localhost", "no resolver defined to resolve php",
                     "connect() failed (111: Connection refused) while connecting to upstream"] {
            #expect(d.nginxErrorLog.contains(line), "nginx: \(line)")
            #expect(d.lbErrorLog.contains(line), "lb: \(line)\n\(d.lbErrorLog.suffix(1500))")
        }
    }
}
