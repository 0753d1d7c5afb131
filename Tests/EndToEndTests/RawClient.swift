import Foundation
import Glibc

/// A minimal blocking HTTP/1.1 client over a raw socket, for what curl cannot do: exact bytes,
/// pipelining, keep-alive control, half-sent requests.
final class RawClient {
    let fd: Int32
    var buffer: [UInt8] = []

    struct Response {
        var status: Int
        var headers: [(String, String)]
        var body: [UInt8]
        var text: String { String(decoding: body, as: UTF8.self) }
        func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name.lowercased() }?.1 }
    }

    init(port: Int, timeout: Int = 10, source: String? = nil, host: String = "127.0.0.1") throws {
        _ = Harness.ignoreSIGPIPE
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var tv = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        if let source {
            var s = sockaddr_in()
            s.sin_family = sa_family_t(AF_INET)
            s.sin_addr.s_addr = inet_addr(source)
            _ = withUnsafePointer(to: &s) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr(host)
        addr.sin_port = UInt16(port).bigEndian
        let r = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        if r != 0 {
            close()
            throw HarnessError("connect failed: \(errno)")
        }
    }

    deinit { close() }

    private var closed = false
    func close() {
        if !closed { Glibc.close(fd); closed = true }
    }

    func send(_ s: String) throws { try send(Array(s.utf8)) }

    func send(_ bytes: [UInt8]) throws {
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { throw HarnessError("send failed: \(errno)") }
            off += n
        }
    }

    /// Reads more bytes; false at EOF or timeout.
    func fill() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n <= 0 { return false }
        buffer += chunk[0..<n]
        return true
    }

    /// True when the server closed the connection (EOF) with nothing more to read.
    func isClosedByPeer() -> Bool {
        if !buffer.isEmpty { return false }
        return !fill() && buffer.isEmpty
    }

    /// Reads one response (Content-Length, chunked, or until close).
    func readResponse(head: Bool = false) throws -> Response {
        var headEnd: Int?
        while headEnd == nil {
            if let r = buffer.firstRange(of: Array("\r\n\r\n".utf8)) { headEnd = r.upperBound; break }
            guard fill() else { throw HarnessError("connection closed before a response head (have \(buffer.count) bytes)") }
        }
        let headText = String(decoding: buffer[0..<headEnd!], as: UTF8.self)
        buffer.removeFirst(headEnd!)
        var lines = headText.components(separatedBy: "\r\n").filter { !$0.isEmpty }
        guard !lines.isEmpty else { throw HarnessError("empty response head") }
        let statusLine = lines.removeFirst()
        let parts = statusLine.split(separator: " ")
        guard parts.count >= 2, let status = Int(parts[1]) else { throw HarnessError("bad status line: \(statusLine)") }
        var headers: [(String, String)] = []
        for l in lines {
            guard let i = l.firstIndex(of: ":") else { throw HarnessError("bad header line: \(l)") }
            headers.append((String(l[..<i]), l[l.index(after: i)...].trimmingCharacters(in: .whitespaces)))
        }
        let resp = Response(status: status, headers: headers, body: [])
        if head || status == 204 || status == 304 || (status >= 100 && status < 200) { return resp }
        var body: [UInt8] = []
        if let cl = resp.header("Content-Length").flatMap(Int.init) {
            while buffer.count < cl { guard fill() else { throw HarnessError("short body") } }
            body = Array(buffer[0..<cl])
            buffer.removeFirst(cl)
        } else if resp.header("Transfer-Encoding")?.lowercased() == "chunked" {
            while true {
                while buffer.firstRange(of: [13, 10]) == nil { guard fill() else { throw HarnessError("short chunk") } }
                let r = buffer.firstRange(of: [13, 10])!
                guard let size = Int(String(decoding: buffer[0..<r.lowerBound], as: UTF8.self).split(separator: ";").first ?? "", radix: 16) else {
                    throw HarnessError("bad chunk size")
                }
                buffer.removeFirst(r.upperBound)
                if size == 0 {
                    while buffer.firstRange(of: [13, 10]) == nil { guard fill() else { break } }
                    buffer.removeFirst(2)
                    break
                }
                while buffer.count < size + 2 { guard fill() else { throw HarnessError("short chunk data") } }
                body += buffer[0..<size]
                buffer.removeFirst(size + 2)
            }
        } else {
            while fill() {}
            body = buffer
            buffer = []
        }
        var out = resp
        out.body = body
        return out
    }

    func get(_ path: String, host: String = "localhost", headers: [String] = []) throws -> Response {
        try send("GET \(path) HTTP/1.1\r\nHost: \(host)\r\n" + headers.map { $0 + "\r\n" }.joined() + "\r\n")
        return try readResponse()
    }
}
