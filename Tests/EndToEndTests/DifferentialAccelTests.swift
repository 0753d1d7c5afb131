import Foundation
import Testing

/// An upstream's `X-Accel-Redirect` through lb and Debian's nginx side by side (see
/// `Differential`): the app's body never reaches the client; the URI (or named location) answers
/// instead, as GET unless HEAD, with the headers nginx keeps from the app.
@Suite(.serialized, .enabled(if: Differential.available, "needs Debian's nginx at /usr/sbin/nginx"))
struct DifferentialAccelTests {
    typealias R = Differential.Request

    @Test func xAccelRedirectServesTheTargetInsteadOfTheAppsBody() throws {
        let d = try Differential("""
        server {
            listen 127.0.0.1:{port};
            root {root};
            location /app/ { proxy_pass http://{backend}; }
            location /ignored/ { proxy_pass http://{backend}/app/; proxy_ignore_headers X-Accel-Redirect; }
            location /protected/ { internal; }
            location /echo/ { return 200 "echo uri=$uri args=$args method=$request_method\\n"; }
            location @named { return 200 "named uri=$uri method=$request_method\\n"; }
        }
        """, files: ["protected/file.txt": "the protected file\n", "secret.txt": "secret\n"], backend: true)
        try d.compare([
            // A static file in an internal location, with the app's Content-Type and kept headers.
            R(target: "/app/accel?xa=/protected/file.txt", expect: 200),
            R(target: "/app/accel?xa=/protected/file.txt&ct=text/x-custom", expect: 200),
            // A POST goes on as GET; the target's own arguments; escapes decoded.
            R(target: "/app/accel?xa=/echo/a%253Fb%3Fk%3Dv", method: "POST", expect: 200),
            R(target: "/app/accel?xa=/echo/x%2520y", expect: 200),
            // A named location keeps the method.
            R(target: "/app/accel?xa=@named", method: "POST", expect: 200),
            R(target: "/app/accel?xa=@missing", expect: 500),
            // Unsafe and missing targets are 404.
            R(target: "/app/accel?xa=/protected/../secret.txt", expect: 404),
            R(target: "/app/accel?xa=/protected/%252e%252e/secret.txt", expect: 404),
            R(target: "/app/accel?xa=/protected/none.txt", expect: 404),
            // HEAD stays HEAD.
            R(target: "/app/accel?xa=/protected/file.txt", method: "HEAD", expect: 200),
            // Ignored: the app's answer passes (its X-Accel-* headers hidden).
            R(target: "/ignored/accel?xa=/protected/file.txt", expect: 200),
        ], headers: ["Content-Type", "Set-Cookie", "Content-Disposition", "Cache-Control", "X-Other", "X-Accel-Redirect"])
        #expect(d.lbErrorLog.contains("unsafe URI \"/protected/../secret.txt\" was detected"), "\(d.lbErrorLog.suffix(800))")
        #expect(d.nginxErrorLog.contains("unsafe URI \"/protected/../secret.txt\" was detected"))
    }

    /// `error_page` to a URI turns a request other than HEAD into a GET, as X-Accel-Redirect
    /// does: a POST whose upstream answered 404 gets the static error page (not a 405), and the
    /// target sees `$request_method` GET.
    @Test func errorPageToAURIContinuesAsGET() throws {
        let d = try Differential("""
        server {
            listen 127.0.0.1:{port};
            root {root};
            location /pe/ { proxy_pass http://{backend}/status/; proxy_intercept_errors on; error_page 404 /err.html; }
            location /pm/ { proxy_pass http://{backend}/status/; proxy_intercept_errors on; error_page 404 /echo/from-error; }
            location /echo/ { return 200 "echo uri=$uri method=$request_method\\n"; }
        }
        """, files: ["err.html": "custom not found\n"], backend: true)
        try d.compare([
            R(target: "/pe/404", method: "POST", expect: 404), R(target: "/pe/404", expect: 404),
            R(target: "/pe/404", method: "HEAD", expect: 404),
            R(target: "/pm/404", method: "POST", expect: 404), R(target: "/pm/404", method: "PUT", expect: 404),
        ], headers: ["Content-Type"])
    }
}
