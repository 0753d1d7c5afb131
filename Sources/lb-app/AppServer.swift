import Glibc
import LBHTTP
import LBIO

func isIP(_ s: String) -> Bool {
    var a = in_addr()
    var b = in6_addr()
    return inet_pton(AF_INET, s, &a) == 1 || inet_pton(AF_INET6, s, &b) == 1
}

func resolve(_ host: String) -> String? {
    var hints = addrinfo()
    hints.ai_family = AF_INET
    hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
    var res: UnsafeMutablePointer<addrinfo>?
    guard getaddrinfo(host, nil, &hints, &res) == 0, let r = res else { return nil }
    defer { freeaddrinfo(r) }
    var buf = [CChar](repeating: 0, count: 64)
    r.pointee.ai_addr.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sin in
        var a = sin.pointee.sin_addr
        inet_ntop(AF_INET, &a, &buf, 64)
    }
    return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// The HTTP side: one event loop, keep-alive, pipelining; routes as the compose stacks' apps have.
final class AppServer: @unchecked Sendable {
    let bind: String
    let port: Int
    /// `--socket PATH` (or `SOCKET`, as the stack sets for `socket PATH`): listen there instead.
    var socketPath: String?
    let name: String
    let instanceID: String
    let loop: EventLoop
    let store: RESPClient
    var dates = DateCache()

    init(bind: String = "127.0.0.1", port: Int, name: String, storeHost: String, storePort: Int) {
        self.bind = bind
        self.port = port
        self.name = name
        // Stable per instance, shaped like a container id.
        var h: UInt64 = 0xcbf29ce484222325
        for b in "\(name):\(port)".utf8 { h = (h ^ UInt64(b)) &* 0x100000001b3 }
        let hex = String(h, radix: 16)
        instanceID = String((String(repeating: "0", count: 16 - hex.count) + hex).prefix(12))
        do { loop = try EventLoop(index: 0) } catch { fail("\(error)") }
        store = RESPClient(loop: loop, host: storeHost, port: storePort)
    }

    func run() {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGPIPE)
        pthread_sigmask(SIG_BLOCK, &set, nil)
        guard let addr = socketPath.map({ SocketAddress(unixPath: $0) }) ?? SocketAddress(ip: bind, port: port) else { fail("bad address") }
        let fd: Int32
        do { fd = try Socket.listen(addr, backlog: 1024, reusePort: false) } catch { fail("can't listen on \(addr): \(error)") }
        let l = AppListener(app: self)
        l.fd = fd
        do { try loop.register(l, events: EventLoop.readable) } catch { fail("\(error)") }
        _ = "lb-app \(name) (instance \(instanceID)) listening on \(addr), store \(store.host):\(store.port)\n".withCString { write(2, $0, strlen($0)) }
        loop.run()
    }

    func json(_ pairs: [(String, Any?)]) -> String {
        func enc(_ v: Any?) -> String {
            switch v {
            case nil: return "null"
            case let i as Int: return "\(i)"
            case let s as String:
                var o = "\""
                for c in s.unicodeScalars {
                    switch c {
                    case "\"": o += "\\\""
                    case "\\": o += "\\\\"
                    case "\n": o += "\\n"
                    default: if c.value < 0x20 { o += "\\u00" + (c.value < 16 ? "0" : "") + String(c.value, radix: 16) } else { o.unicodeScalars.append(c) }
                    }
                }
                return o + "\""
            default: return "null"
            }
        }
        return "{" + pairs.map { "\(enc($0.0)): \(enc($0.1))" }.joined(separator: ", ") + "}"
    }

    /// Routes a request; `respond` may be called later (store replies, /slow).
    func handle(_ r: AppRequest, _ respond: @escaping (Int, String, String) -> Void) {
        switch r.path {
        case "/":
            respond(200, "text/plain", "Hello World! I am \(name) (instance \(instanceID))\n")
        case "/info", "/api/info":
            respond(200, "application/json", json([("connecting_ip", r.header("x-real-ip") ?? r.peer), ("proxy_ip", r.header("x-forwarded-for")),
                                                  ("host", r.header("host")), ("user_agent", r.header("user-agent")),
                                                  ("instance_id", instanceID), ("instance", name)]) + "\n")
        case "/api/hello":
            respond(200, "text/plain", "Hello, World!\n")
        case "/count", "/api/count":
            let html = r.path == "/count"
            store.send(["INCR", "visits"]) { [self] reply in
                guard case .integer(let n) = reply else {
                    respond(503, "application/json", json([("error", "store unavailable"), ("instance_id", instanceID)]) + "\n")
                    return
                }
                if html {
                    respond(200, "text/html", "<!doctype html><html><head><title>Visits</title></head><body><h1>Hello! This page has been viewed \(n) times.</h1><p>Served by \(name) (\(instanceID)).</p></body></html>\n")
                } else {
                    respond(200, "application/json", json([("count", n), ("instance_id", instanceID), ("instance", name)]) + "\n")
                }
            }
        case "/visits/reset":
            store.send(["SET", "visits", "0"]) { [self] reply in
                if case .simple = reply { respond(200, "application/json", json([("count", 0), ("instance_id", instanceID)]) + "\n") } else {
                    respond(503, "application/json", json([("error", "store unavailable")]) + "\n")
                }
            }
        case "/cache-me":
            let (s, ms) = wallClock()
            dates.update(s)
            respond(200, "text/plain", "This response was generated at \(String(decoding: dates.httpDate, as: UTF8.self)) (+\(ms) ms) by \(name) (instance \(instanceID)).\n")
        case "/health":
            store.send(["PING"]) { [self] reply in
                if case .simple(let s) = reply, s == "PONG" { respond(200, "application/json", json([("status", "ok"), ("store", "up"), ("instance_id", instanceID)]) + "\n") } else {
                    respond(503, "application/json", json([("status", "degraded"), ("store", "down"), ("instance_id", instanceID)]) + "\n")
                }
            }
        case "/slow":
            let ms = min(max(Int(r.query("ms") ?? "1000") ?? 1000, 0), 60_000)
            loop.schedule(afterMillis: ms) { [self] in respond(200, "text/plain", "slept \(ms) ms on \(name)\n") }
        case "/fail":
            respond(500, "application/json", json([("error", "this endpoint always fails"), ("instance_id", instanceID)]) + "\n")
        default:
            respond(404, "text/plain", "not found\n")
        }
    }
}

/// What a handler sees of a request.
struct AppRequest {
    var method: String
    var path: String
    var queryString: String
    var headers: [(String, String)]
    var peer: String

    func header(_ n: String) -> String? { headers.first { $0.0 == n }?.1 }

    func query(_ k: String) -> String? {
        for pair in queryString.split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1)
            if kv.first.map(String.init) == k { return kv.count > 1 ? String(kv[1]) : "" }
        }
        return nil
    }
}

final class AppListener: Pollable {
    unowned(unsafe) let app: AppServer
    init(app: AppServer) { self.app = app }
    override func ready(_ events: UInt32) {
        var peer = SocketAddress()
        for _ in 0..<64 {
            guard case .done(let fd)? = try? Socket.accept(self.fd, peer: &peer) else { return }
            try? Socket.setOption(fd, 6, 1, 1)
            let c = AppConnection(app: app, fd: fd, peer: peer.ip)
            do { try app.loop.register(c, events: EventLoop.readable | EventLoop.writable | EventLoop.edge | EventLoop.hangup) } catch {
                Socket.close(fd)
                continue
            }
            c.readable = true
            c.drive()
        }
    }
}

/// One HTTP client connection of the app: requests are answered in order (pipelining-safe).
final class AppConnection: Pollable {
    unowned(unsafe) let app: AppServer
    let peer: String
    var inBuf = Buffer()
    var outBuf = Buffer()
    var scanner = HeadScanner()
    var readable = false
    var writable = true
    var closed = false
    var waiting = false
    var closeAfter = false

    init(app: AppServer, fd: Int32, peer: String) {
        self.app = app
        self.peer = peer
        super.init()
        self.fd = fd
    }

    deinit {
        inBuf.release()
        outBuf.release()
    }

    override func ready(_ events: UInt32) {
        if events & EventLoop.readable != 0 { readable = true }
        if events & EventLoop.writable != 0 { writable = true }
        if events & (EventLoop.hangup | EventLoop.error) != 0 { readable = true }
        drive()
    }

    override func timedOut() { close() }

    func drive() {
        while !closed {
            if !waiting && readable && outBuf.readable < 1 << 20 {
                if inBuf.writableTail < 2048 {
                    inBuf.compact()
                    if inBuf.writableTail < 2048 { inBuf.reserve(max(inBuf.capacity * 2, 8192)) }
                }
                switch try? Socket.read(fd, inBuf.writePointer, inBuf.writableTail) {
                case .done(0)?, nil:
                    if outBuf.isEmpty && !waiting { close(); return }
                    readable = false
                    closeAfter = true
                case .done(let n)?:
                    inBuf.writeIndex += n
                    if n < inBuf.writableTail { readable = false }
                case .wouldBlock?:
                    readable = false
                }
            }
            if !waiting { nextRequest() }
            if !flush() { return }
            if closeAfter && !waiting && outBuf.isEmpty { close(); return }
            if waiting || !readable { return }
        }
    }

    func nextRequest() {
        guard inBuf.readable > 0 else { return }
        do {
            guard let end = try scanner.scan(inBuf.readableBytes, isRequest: true) else { return }
            let b = inBuf.readableBytes
            let start = scanner.leadingBytes
            let h = try HeadParser.request(b, start: start, end: end)
            // Ranges are relative to `start`; re-slice the head.
            let head = UnsafeRawBufferPointer(rebasing: b[start..<end])
            func str(_ r: Range<Int>) -> String { String(decoding: head[r], as: UTF8.self) }
            var headers: [(String, String)] = []
            for f in h.headers { headers.append((str(f.name).lowercased(), str(f.value))) }
            let req = AppRequest(method: str(h.methodRange), path: str(h.pathRange), queryString: h.queryRange.map(str) ?? "",
                                 headers: headers, peer: peer)
            var bodyLen = h.contentLength ?? 0
            if h.chunked { bodyLen = 0; closeAfter = true }
            guard inBuf.readable >= end + bodyLen else { return } // wait for the small body
            inBuf.readIndex += end + bodyLen
            scanner.reset()
            if !h.keepAlive { closeAfter = true }
            let keepAlive = !closeAfter
            let isHead = h.method == .head
            waiting = true
            app.handle(req) { [self] status, type, body in
                guard !closed else { return }
                write(status: status, type: type, body: body, keepAlive: keepAlive, head: isHead)
                waiting = false
                drive()
            }
        } catch {
            // The scanner and the head parser throw only HTTPError (typed throws).
            write(status: error.status, type: "text/plain", body: "bad request\n", keepAlive: false, head: false)
            closeAfter = true
            inBuf.clear()
        }
    }

    func write(status: Int, type: String, body: String, keepAlive: Bool, head: Bool) {
        app.dates.update(wallClock().seconds)
        let bytes = Array(body.utf8)
        outBuf.append(string: "HTTP/1.1 \(status) \(Status.reason(status))\r\nServer: lb-app\r\nDate: ")
        outBuf.append(app.dates.httpDate)
        outBuf.append(string: "\r\nContent-Type: \(type)\r\nContent-Length: \(bytes.count)\r\nX-Instance-Id: \(app.instanceID)\r\n")
        outBuf.append(keepAlive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n")
        if !head { outBuf.append(bytes) }
    }

    func flush() -> Bool {
        while !outBuf.isEmpty {
            guard writable else { return false }
            switch try? Socket.write(fd, outBuf.readPointer, outBuf.readable) {
            case .done(let n)?: outBuf.readIndex += n
            case .wouldBlock?: writable = false; return false
            case nil: close(); return false
            }
        }
        outBuf.clear()
        return true
    }

    func close() {
        guard !closed else { return }
        closed = true
        app.loop.deregister(self)
        Socket.close(fd)
    }
}
