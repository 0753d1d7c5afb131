import Foundation
import Testing

/// `$request_filename`, `$document_root` and `$realpath_root` compared with Debian's nginx (see
/// `Differential`) in every kind of location that maps a URI to a file: alias in prefix, exact
/// and regex locations (with and without captures), root as written, through a symbolic link and
/// made of variables, and neither (the default `html` under the prefix); an alias inherited by
/// nested locations, which still replaces its own location's prefix (for static files too).
@Suite(.serialized, .enabled(if: Differential.available, "needs Debian's nginx at /usr/sbin/nginx"))
struct DifferentialPathVariableTests {
    static let show = #"return 200 "$request_filename|$document_root|$realpath_root\n";"#

    @Test func pathVariablesUnderAliasRootAndNeitherAreNginxs() throws {
        let d = try Differential("""
        server {
            listen 127.0.0.1:{port};
            location /a/ { alias {root}/data/w/; \(Self.show) }
            location /b { alias {root}/data/w; \(Self.show) }
            location = /e { alias {root}/data/w/f.txt; \(Self.show) }
            location ~ ^/re/(.*)$ { alias {root}/data/w/$1; \(Self.show) }
            location ~ ^/rn/ { alias {root}/data/w/; \(Self.show) }
            location /l/ { alias {root}/link/x/; \(Self.show) }
            location /r/ { root {root}/link/; \(Self.show) }
            location /v/ { set $d {root}/link; root $d/x; \(Self.show) }
            location /rel/ { set $d rel-root; root $d; \(Self.show) }
            location /none/ { \(Self.show) }
            # Nested: the alias replaces its own location's prefix (nginx inherits its length).
            location /p/ {
                alias {root}/data/w/;
                location /p/q/ { \(Self.show) }
                location ~ ^/p/.*\\.show$ { \(Self.show) }
                location ~ \\.txt$ { add_header X-Nested 1; }
            }
            location /if/ {
                alias {root}/data/w/;
                if (-f $request_filename) { return 200 "a file\\n"; }
                return 200 "no file\\n";
            }
        }
        """, files: ["data/w/f.txt": "w\n", "real/x/f.txt": "x\n"])
        let root = d.dir.appendingPathComponent("root")
        // `link` → `real`: only $realpath_root resolves it.
        try FileManager.default.createSymbolicLink(atPath: root.appendingPathComponent("link").path, withDestinationPath: root.appendingPathComponent("real").path)
        let targets = ["/a/f.txt", "/a/", "/b/f.txt", "/e", "/re/f.txt", "/rn/f.txt", "/l/f.txt", "/r/x/f.txt", "/v/f.txt",
                       "/rel/z", "/none/z", "/if/f.txt", "/if/nope.txt", "/p/q/z", "/p/x.show",
                       "/p/f.txt"]
        var answers: [String: String] = [:]
        for t in targets {
            let n = try d.fetch(.init(target: t), port: d.nginxPort), l = try d.fetch(.init(target: t), port: d.lb.port)
            #expect(n.status == 200 && l.status == 200, "\(t): nginx \(n.status), lb \(l.status)")
            // Each server's own prefix (the default root, a relative root) as PREFIX.
            let nb = n.text.replacingOccurrences(of: d.dir.path, with: "PREFIX")
            let lbb = l.text.replacingOccurrences(of: d.lb.dir.path, with: "PREFIX").replacingOccurrences(of: d.dir.path, with: "PREFIX")
            #expect(lbb == nb, "\(t): lb \(lbb.debugDescription), nginx \(nb.debugDescription)")
            answers[t] = nb
        }
        // Pinned from nginx, so that both answering the same wrong thing cannot pass.
        #expect(answers["/a/f.txt"] == "PREFIX/root/data/w/f.txt|PREFIX/root/data/w/|PREFIX/root/data/w\n")
        #expect(answers["/rn/f.txt"] == "PREFIX/root/data/w/|PREFIX/root/data/w/|PREFIX/root/data/w\n")
        #expect(answers["/r/x/f.txt"] == "PREFIX/root/link/r/x/f.txt|PREFIX/root/link|PREFIX/root/real\n")
        #expect(answers["/none/z"] == "PREFIX/html/none/z|PREFIX/html|\n")
        #expect(answers["/if/f.txt"] == "a file\n" && answers["/if/nope.txt"] == "no file\n")
        #expect(answers["/p/q/z"] == "PREFIX/root/data/w/q/z|PREFIX/root/data/w/|PREFIX/root/data/w\n")
        // A static file through a nested regex location (lb answered 301 to `/p/f.txt/`).
        #expect(answers["/p/f.txt"] == "w\n")
        // A root realpath(3) cannot resolve: an empty value and a crit line, in both.
        for log in [d.nginxErrorLog, d.lbErrorLog] {
            #expect(log.contains("[crit]") && log.contains("realpath() \"") && log.contains("/rel-root\" failed (2: No such file or directory)"), "\(log.suffix(800))")
        }
    }
}
