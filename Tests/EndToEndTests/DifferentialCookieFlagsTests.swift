import Foundation
import Testing

/// `proxy_cookie_flags` side by side with Debian's nginx (1.22): upstream Set-Cookie fields as
/// both pass them on.
@Suite(.serialized, .enabled(if: Differential.available, "needs Debian's nginx at /usr/sbin/nginx"))
struct DifferentialCookieFlagsTests {
    func cookies(_ d: Differential, _ path: String, _ fields: [String], port: Int, query extra: String = "") throws -> [String] {
        let query = fields.map { "c=" + $0.addingPercentEncoding(withAllowedCharacters: .alphanumerics)! }.joined(separator: "&") + extra
        let r = try d.fetch(Differential.Request(target: path + "?" + query), port: port)
        #expect(r.status == 200)
        return r.headers.filter { ["set-cookie", "x-captures"].contains($0.0.lowercased()) }.map { "\($0.0): \($0.1)" }
    }

    /// Flags added, kept, replaced and removed; the first rule whose cookie matches (name without
    /// case, or a caseless regex whose captures become the request's) applies; words that are not
    /// flags ignored; flags from variables; with the domain and path rules before them; `off`
    /// in a location; inherited from the server.
    @Test func cookieFlagsEditSetCookieAsNginx() throws {
        let d = try Differential("""
        map $arg_f $flag { default ""; s secure; l samesite=lax; }
        server {
            listen 127.0.0.1:{port};
            proxy_cookie_flags inherited httponly;
            location /p/ {
                proxy_pass http://{backend}/setcookie;
                proxy_cookie_flags sess secure httponly samesite=strict;
                proxy_cookie_flags ~^(tr)ack(?<n>\\d*)$ nosecure nohttponly nosamesite;
                proxy_cookie_flags ~^b samesite=none bogus;
                proxy_cookie_flags Both secure samesite=lax;
                proxy_cookie_flags var $flag;
                proxy_cookie_flags nothing bogus;
                proxy_cookie_path /old/ /new/;
                add_header X-Captures "$1|$n";
            }
            location /inherit/ { proxy_pass http://{backend}/setcookie; }
            location /off/ { proxy_pass http://{backend}/setcookie; proxy_cookie_flags off; }
        }
        """, backend: true)
        let fields = [
            "sess=1", "SESS=2; Path=/", "sess=3; Secure; HttpOnly; SameSite=Strict", "sess=4; secure;samesite=lax; path=/old/x",
            "sess=5; SameSite=STRICT; SameSite=None", "track=1; Secure; secure; HttpOnly; SameSite=Lax; samesite; Path=/",
            "track7=x; Path=/old/", "b=1", "bee=2; SameSite", "both=3; Secure; samesite=LAX",
            "var=1", "nothing=1; Path=/old/a", "other=1;Path=/old/z ; Secure", "flag; Secure", "sess=6;  Max-Age = 3 ;",
        ]
        for path in ["/p/", "/inherit/", "/off/"] {
            let n = try cookies(d, path, fields, port: d.nginxPort), l = try cookies(d, path, fields, port: d.lb.port)
            #expect(l == n, "\(path): nginx error log: \(d.nginxErrorLog.suffix(400))")
            #expect(n.count >= fields.count, "\(n)")
        }
        for f in ["s", "l", "x"] {
            let fields = ["var=1; Secure", "var=2; SameSite=Strict", "VAR=3"]
            let n = try cookies(d, "/p/", fields, port: d.nginxPort, query: "&f=" + f)
            #expect(try cookies(d, "/p/", fields, port: d.lb.port, query: "&f=" + f) == n, "f=\(f)")
        }
        // Pinned, so that both passing the fields unchanged cannot pass.
        #expect(try cookies(d, "/p/", ["track5=x; Secure; SameSite=Lax"], port: d.lb.port) == ["Set-Cookie: track5=x", "X-Captures: tr|5"])
        #expect(try cookies(d, "/p/", ["SESS=2; Path=/"], port: d.lb.port)
            == ["Set-Cookie: SESS=2; Path=/; Secure; HttpOnly; SameSite=Strict", "X-Captures: |"])
    }
}
