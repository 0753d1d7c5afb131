import Foundation
import Testing

/// The index module's answers and error lines for a URI ending in `/` that names no directory,
/// compared with Debian's nginx (see `Differential`): a directory that is not there (404,
/// `"…/index.html" is not found`), a file taken for a directory (404, ENOTDIR), a directory
/// without an index (403, `directory index of … is forbidden`), and `log_not_found off`.
@Suite(.serialized, .enabled(if: Differential.available, "needs Debian's nginx at /usr/sbin/nginx"))
struct DifferentialIndexTests {
    /// The `[error]` lines of a log that name `needle`, without time, process and connection
    /// numbers and with the test's directory as ROOT.
    static func lines(_ log: String, _ needle: String, root: String) -> [String] {
        log.split(separator: "\n").filter { $0.contains("[error]") && $0.contains(needle) }.map { line in
            var l = String(line.drop { $0 != "]" }.dropFirst()) // after the time and "[error"
            if let star = l.range(of: "*") { l = String(l[star.lowerBound...]) }
            l = l.drop { $0 != " " }.description // the connection number
            return l.replacingOccurrences(of: root, with: "ROOT").components(separatedBy: ", client:")[0]
        }
    }

    @Test func missingDirectoriesAnswerAndLogAsNginxsIndexModule() throws {
        let d = try Differential("""
        server {
            listen 127.0.0.1:{port};
            root {root};
            location /quiet/ { log_not_found off; }
        }
        """, files: ["file.txt": "f\n", "empty/.keep": "", "quiet/.keep": ""])
        try d.compare([
            .init(target: "/nodir/", expect: 404),
            .init(target: "/nodir/deeper/", expect: 404),
            .init(target: "/file.txt/", expect: 404),
            .init(target: "/empty/", expect: 403),
            .init(target: "/quiet/nodir/", expect: 404),
        ])
        let root = d.dir.appendingPathComponent("root").path
        for needle in ["/nodir/index.html", "/nodir/deeper/index.html", "/file.txt/index.html", "/empty/", "/quiet/"] {
            let n = Self.lines(d.nginxErrorLog, needle, root: root)
            let l = Self.lines(d.lbErrorLog, needle, root: root)
            #expect(l == n, "\(needle): lb \(l), nginx \(n)")
        }
        #expect(Self.lines(d.nginxErrorLog, "/nodir/index.html", root: root).first?.contains("\"ROOT/nodir/index.html\" is not found (2: No such file or directory)") == true,
                "\(d.nginxErrorLog.suffix(600))")
        #expect(Self.lines(d.lbErrorLog, "/quiet/", root: root).isEmpty)
    }
}
