import Foundation
import Glibc
import Testing

/// A differential harness: one `http { }` body run by lb and by Debian's nginx (the reference),
/// each on its own loopback port, with the same backend and document root; the same requests go
/// to both and the answers are compared (status, Location, chosen headers, body).
///
/// The body may use `{port}` (each server's own listen port), `{backend}` (`127.0.0.1:PORT` of a
/// Python backend that answers "NAME PATH" with `X-Backend: NAME`) and `{root}` (a directory
/// with the files given). Differences that are not behaviour are normalised: the listen port in
/// Location headers and the server's name in built-in error pages.
final class Differential {
    static let nginxPath = "/usr/sbin/nginx"
    static var available: Bool { FileManager.default.isExecutableFile(atPath: nginxPath) }

    let dir: URL
    let nginxPort: Int
    let lb: LB
    let nginx: Started
    let backend: Backend?

    /// One request: the target as sent, extra header lines, and optionally the status both must give
    /// (so that a case cannot pass by both servers failing the same way).
    struct Request: CustomStringConvertible {
        var target: String
        var headers: [String] = []
        var method = "GET"
        var expect: Int? = nil
        var host = "localhost"
        var description: String { "\(method) \(target) (Host: \(host))" }
    }

    init(_ body: String, files: [String: String] = [:], executable: [String] = [], backend useBackend: Bool = false) throws {
        dir = try Harness.tempDirectory()
        let root = dir.appendingPathComponent("root")
        let fm = FileManager.default
        try fm.createDirectory(at: root, withIntermediateDirectories: true)
        for (name, text) in files {
            let url = root.appendingPathComponent(name)
            try fm.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            if name.hasSuffix("/") { continue }
            try text.write(to: url, atomically: true, encoding: .utf8)
            if executable.contains(name) { chmod(url.path, 0o755) }
        }
        let be = useBackend ? try Backend(name: "bk") : nil
        backend = be
        func fill(_ s: String, port: Int) -> String {
            var s = s.replacingOccurrences(of: "{port}", with: "\(port)").replacingOccurrences(of: "{root}", with: root.path)
            if let b = be { s = s.replacingOccurrences(of: "{backend}", with: "127.0.0.1:\(b.port)") }
            return s
        }
        let ports = freePortRange(2)
        nginxPort = ports
        let lbPort = ports + 1
        let d = dir.path
        let nginxConf = """
        \(getuid() == 0 ? "user root;" : "")
        error_log \(d)/nginx-error.log notice;
        events {}
        http {
            access_log off;
            client_body_temp_path \(d)/nginx-body;
            proxy_temp_path \(d)/nginx-proxy;
            fastcgi_temp_path \(d)/nginx-fastcgi;
            uwsgi_temp_path \(d)/nginx-uwsgi;
            scgi_temp_path \(d)/nginx-scgi;
        \(fill(body, port: nginxPort))
        }
        """
        try nginxConf.write(to: dir.appendingPathComponent("nginx.conf"), atomically: true, encoding: .utf8)
        nginx = try Started(URL(fileURLWithPath: Differential.nginxPath),
                            ["-p", d, "-c", "\(d)/nginx.conf", "-g", "daemon off; pid \(d)/nginx.pid;"], cwd: dir)
        let lbConf = """
        events {}
        http {
            access_log off;
        \(fill(body, port: lbPort))
        }
        """
        lb = try LB("error_log \(d)/lb-error.log notice;\n" + lbConf, port: lbPort)
        guard waitForPort(nginxPort) else { throw HarnessError("nginx did not start: \(nginx.stderr)") }
    }

    deinit {
        nginx.stop(grace: 5)
        lb.stop()
        try? FileManager.default.removeItem(at: dir)
    }

    /// The error logs so far.
    var nginxErrorLog: String { (try? String(contentsOf: dir.appendingPathComponent("nginx-error.log"), encoding: .utf8)) ?? "" }
    var lbErrorLog: String { (try? String(contentsOf: dir.appendingPathComponent("lb-error.log"), encoding: .utf8)) ?? "" }

    /// Sends one request to a server, on a fresh connection.
    func fetch(_ r: Request, port: Int) throws -> RawClient.Response {
        let c = try RawClient(port: port)
        try c.send("\(r.method) \(r.target) HTTP/1.1\r\nHost: \(r.host)\r\nConnection: close\r\n" + r.headers.map { $0 + "\r\n" }.joined() + "\r\n")
        return try c.readResponse(head: r.method == "HEAD")
    }

    /// Sends each request to both servers and records every difference (and any status other
    /// than the one a request expects).
    func compare(_ requests: [Request], headers: [String] = [], sourceLocation: SourceLocation = #_sourceLocation) throws {
        for r in requests {
            let n = try fetch(r, port: nginxPort)
            let l = try fetch(r, port: lb.port)
            #expect(l.status == n.status, "\(r): status lb \(l.status), nginx \(n.status)", sourceLocation: sourceLocation)
            if let e = r.expect { #expect(n.status == e, "\(r): nginx answered \(n.status), the case expects \(e)", sourceLocation: sourceLocation) }
            let nl = n.header("Location").map { normalise($0, port: nginxPort) }
            let ll = l.header("Location").map { normalise($0, port: lb.port) }
            #expect(ll == nl, "\(r): Location lb \(ll ?? "none"), nginx \(nl ?? "none")", sourceLocation: sourceLocation)
            for h in headers {
                #expect(l.header(h) == n.header(h), "\(r): \(h) lb \(l.header(h) ?? "none"), nginx \(n.header(h) ?? "none")", sourceLocation: sourceLocation)
            }
            let nb = normalise(n.text, port: nginxPort), lbb = normalise(l.text, port: lb.port)
            #expect(lbb == nb, "\(r): body lb \(lbb.debugDescription), nginx \(nb.debugDescription)", sourceLocation: sourceLocation)
        }
    }

    /// The listen port as PORT, and the server's name in built-in pages as SERVER.
    func normalise(_ s: String, port: Int) -> String {
        var s = s.replacingOccurrences(of: ":\(port)", with: ":PORT")
        if let r = s.range(of: "<hr><center>"), let e = s.range(of: "</center>", range: r.upperBound..<s.endIndex) {
            s.replaceSubrange(r.upperBound..<e.lowerBound, with: "SERVER")
        }
        return s
    }
}

/// `gzip -dc`, as an independent decoder of a compressed body.
func gzipDecoded(_ bytes: [UInt8]) throws -> [UInt8] {
    let p = Harness.process()
    p.executableURL = URL(fileURLWithPath: "/bin/gzip")
    p.arguments = ["-dc"]
    let input = Pipe(), output = Pipe()
    p.standardInput = input
    p.standardOutput = output
    try p.run()
    let writer = Thread { input.fileHandleForWriting.write(Data(bytes)); try? input.fileHandleForWriting.close() }
    writer.start()
    let out = output.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return [UInt8](out)
}
