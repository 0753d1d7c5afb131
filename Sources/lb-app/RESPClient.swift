import Glibc
import LBIO

/// A reply from the store.
enum RESPReply {
    case simple(String)
    case error(String)
    case integer(Int)
    case bulk([UInt8]?)
    case array([RESPReply]?)
    /// The store could not be reached.
    case unavailable
}

/// A non-blocking RESP client on the app's event loop: one connection, pipelined commands,
/// callbacks in order; reconnects on the next command after a failure.
final class RESPClient: Pollable {
    let loop: EventLoop
    let host: String
    let port: Int
    var connected = false
    var connecting = false
    var writable = false
    var out: [UInt8] = []
    var inBuf: [UInt8] = []
    var pending: [(RESPReply) -> Void] = []

    init(loop: EventLoop, host: String, port: Int) {
        self.loop = loop
        self.host = host
        self.port = port
    }

    func send(_ args: [String], _ done: @escaping (RESPReply) -> Void) {
        if fd < 0 && !connect() {
            done(.unavailable)
            return
        }
        out += Array("*\(args.count)\r\n".utf8)
        for a in args {
            let b = Array(a.utf8)
            out += Array("$\(b.count)\r\n".utf8) + b + [13, 10]
        }
        // The deadline is the oldest pending command's: arming it again on every command would
        // push it away for as long as commands keep coming, and a store that stopped answering
        // (its host cut off) would then hold every request instead of failing it in 2 s.
        if pending.isEmpty { loop.setDeadline(self, afterMillis: 2000) }
        pending.append(done)
        flush()
    }

    func connect() -> Bool {
        guard let addr = SocketAddress(ip: host, port: port), let (fd, immediate) = try? Socket.connect(addr) else { return false }
        self.fd = fd
        do { try loop.register(self, events: EventLoop.readable | EventLoop.writable | EventLoop.edge | EventLoop.hangup) } catch {
            Socket.close(fd)
            self.fd = -1
            return false
        }
        connecting = !immediate
        connected = immediate
        writable = immediate
        return true
    }

    override func ready(_ events: UInt32) {
        if events & (EventLoop.hangup | EventLoop.error) != 0 && events & EventLoop.readable == 0 {
            reset()
            return
        }
        if events & EventLoop.writable != 0 {
            if connecting {
                if Socket.pendingError(fd) != 0 { reset(); return }
                connecting = false
                connected = true
            }
            writable = true
            flush()
        }
        if events & EventLoop.readable != 0 { read() }
    }

    override func timedOut() { if !pending.isEmpty { reset() } }

    func flush() {
        while connected && writable && !out.isEmpty {
            let r = out.withUnsafeBytes { try? Socket.write(fd, $0.baseAddress!, $0.count) }
            switch r {
            case .done(let n)?: out.removeFirst(n)
            case .wouldBlock?: writable = false
            case nil: reset(); return
            }
        }
    }

    func read() {
        var chunk = [UInt8](repeating: 0, count: 16384)
        while true {
            let r = chunk.withUnsafeMutableBytes { try? Socket.read(fd, $0.baseAddress!, $0.count) }
            switch r {
            case .done(0)?, nil:
                reset()
                return
            case .done(let n)?:
                inBuf += chunk[0..<n]
                if n < chunk.count { parseReplies(); return }
            case .wouldBlock?:
                parseReplies()
                return
            }
        }
    }

    func parseReplies() {
        var i = 0
        while !pending.isEmpty, let (reply, next) = parse(inBuf, i) {
            i = next
            let cb = pending.removeFirst()
            cb(reply)
        }
        inBuf.removeFirst(i)
        // Replies came: the next pending command gets its own 2 s from now.
        if i > 0 { loop.setDeadline(self, afterMillis: pending.isEmpty ? 0 : 2000) }
    }

    func parse(_ b: [UInt8], _ at: Int) -> (RESPReply, Int)? {
        guard at < b.count else { return nil }
        var e = at
        while e + 1 < b.count && !(b[e] == 13 && b[e + 1] == 10) { e += 1 }
        guard e + 1 < b.count else { return nil }
        let line = String(decoding: b[(at + 1)..<e], as: UTF8.self)
        let next = e + 2
        switch b[at] {
        case UInt8(ascii: "+"): return (.simple(line), next)
        case UInt8(ascii: "-"): return (.error(line), next)
        case UInt8(ascii: ":"): return (.integer(Int(line) ?? 0), next)
        case UInt8(ascii: "$"):
            let n = Int(line) ?? -1
            if n < 0 { return (.bulk(nil), next) }
            guard next + n + 2 <= b.count else { return nil }
            return (.bulk(Array(b[next..<(next + n)])), next + n + 2)
        case UInt8(ascii: "*"):
            let n = Int(line) ?? -1
            if n < 0 { return (.array(nil), next) }
            var items: [RESPReply] = []
            var p = next
            for _ in 0..<n {
                guard let (r, q) = parse(b, p) else { return nil }
                items.append(r)
                p = q
            }
            return (.array(items), p)
        default:
            return (.error("protocol error"), b.count)
        }
    }

    /// Fails what is pending and drops the connection; the next command reconnects.
    func reset() {
        if fd >= 0 {
            loop.deregister(self)
            Socket.close(fd)
            fd = -1
        }
        connected = false
        connecting = false
        out.removeAll()
        inBuf.removeAll()
        let cbs = pending
        pending.removeAll()
        for cb in cbs { cb(.unavailable) }
    }
}
