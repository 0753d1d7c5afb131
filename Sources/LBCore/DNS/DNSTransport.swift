import Glibc
import LBIO

/// Queries over UDP to the `resolver` servers in turn, asked again over TCP when the answer comes
/// back truncated. Blocking with deadlines (poll): it runs on the resolver thread, never on a
/// worker loop. Each attempt uses a new socket (a new source port) and a random id; answers with
/// another id or from elsewhere are ignored.
public final class UDPTransport: DNSTransport {
    let servers: [SocketAddress]
    /// `resolver_timeout`: the whole exchange, every retry included.
    let timeoutMs: Int
    let stats: DNSStats
    var next = 0

    public init(servers: [SocketAddress], timeoutMs: Int, stats: DNSStats) {
        self.servers = servers
        self.timeoutMs = timeoutMs
        self.stats = stats
    }

    /// How long one server gets before the next one is asked (nginx resends every 5 s).
    var attemptMs: Int { max(100, min(2000, timeoutMs / max(2, servers.count))) }

    public func exchange(_ query: [UInt8], id: UInt16) -> Result<DNSResponse, DNSLookupError> {
        guard !servers.isEmpty else { return .failure(.unreachable("no name servers")) }
        let deadline = monotonicMillis() + Int64(timeoutMs)
        var refusedInARow = 0
        var lastError = DNSLookupError.timedOut
        var answeredInRound = 0
        while true {
            let now = monotonicMillis()
            if now >= deadline { return .failure(lastError) }
            let server = servers[next % servers.count]
            next &+= 1
            let attemptDeadline = min(deadline, now + Int64(attemptMs))
            switch udpAttempt(query, id: id, server: server, deadline: attemptDeadline) {
            case .answer(let r):
                if r.truncated {
                    stats.tcp.add(1, ordering: .relaxed)
                    return tcpExchange(query, id: id, server: server, deadline: deadline)
                }
                // SERVFAIL, REFUSED, NOTIMP, FORMERR: another server may know better.
                if r.rcode != 0 && r.rcode != 3 && servers.count > 1 {
                    lastError = .rcode(r.rcode)
                    answeredInRound += 1
                    refusedInARow = 0
                    if answeredInRound >= servers.count { return .success(r) }
                    continue
                }
                return .success(r)
            case .refused(let why):
                refusedInARow += 1
                if refusedInARow >= servers.count { return .failure(.unreachable(why)) }
            case .timedOut:
                refusedInARow = 0
            }
        }
    }

    enum Attempt {
        case answer(DNSResponse)
        case refused(String)
        case timedOut
    }

    func udpAttempt(_ query: [UInt8], id: UInt16, server: SocketAddress, deadline: Int64) -> Attempt {
        let fd = socket(server.family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { return .refused(errorText(errno)) }
        defer { Glibc.close(fd) }
        var addr = server
        let rc = withUnsafePointer(to: &addr.storage) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, addr.length) }
        }
        if rc != 0 { return .refused(errorText(errno)) }
        let sent = query.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        if sent != query.count { return .refused(errorText(errno)) }
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let left = deadline - monotonicMillis()
            if left <= 0 { return .timedOut }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let n = poll(&pfd, 1, Int32(left))
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return .timedOut }
            let got = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if got < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                // ICMP port unreachable: nothing listens there.
                return .refused(errorText(errno))
            }
            guard let r = try? DNSMessage.parse(Array(buf[0..<got])), r.id == id else { continue }
            return .answer(r)
        }
    }

    func tcpExchange(_ query: [UInt8], id: UInt16, server: SocketAddress, deadline: Int64) -> Result<DNSResponse, DNSLookupError> {
        let fd: Int32
        do {
            let (f, immediate) = try Socket.connect(server)
            fd = f
            if !immediate {
                guard wait(fd, Int16(POLLOUT), deadline) else { Socket.close(fd); return .failure(.timedOut) }
                let err = Socket.pendingError(fd)
                if err != 0 { Socket.close(fd); return .failure(.unreachable(errorText(err))) }
            }
        } catch {
            return .failure(.unreachable(errorText(error.errno)))
        }
        defer { Socket.close(fd) }
        let framed = [UInt8(query.count >> 8), UInt8(query.count & 0xFF)] + query
        var off = 0
        while off < framed.count {
            let n = framed.withUnsafeBytes { send(fd, $0.baseAddress! + off, $0.count - off, Int32(MSG_NOSIGNAL)) }
            if n > 0 { off += n; continue }
            if n < 0 && (errno == EAGAIN || errno == EINTR) {
                guard wait(fd, Int16(POLLOUT), deadline) else { return .failure(.timedOut) }
                continue
            }
            return .failure(.unreachable(errorText(errno)))
        }
        var got: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16384)
        while true {
            if got.count >= 2 {
                let len = Int(got[0]) << 8 | Int(got[1])
                if got.count >= 2 + len {
                    do {
                        let r = try DNSMessage.parse(Array(got[2..<(2 + len)]))
                        guard r.id == id else { return .failure(.malformed("TCP answer with another id")) }
                        return .success(r)
                    } catch {
                        return .failure(.malformed(error.message))
                    }
                }
            }
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 { got += chunk[0..<n]; continue }
            if n == 0 { return .failure(.malformed("TCP connection closed before the whole answer")) }
            if errno == EAGAIN || errno == EINTR {
                guard wait(fd, Int16(POLLIN), deadline) else { return .failure(.timedOut) }
                continue
            }
            return .failure(.unreachable(errorText(errno)))
        }
    }

    /// Waits for `events` on `fd` until `deadline`; false on time-out.
    func wait(_ fd: Int32, _ events: Int16, _ deadline: Int64) -> Bool {
        while true {
            let left = deadline - monotonicMillis()
            if left <= 0 { return false }
            var pfd = pollfd(fd: fd, events: events, revents: 0)
            let n = poll(&pfd, 1, Int32(left))
            if n < 0 && errno == EINTR { continue }
            return n > 0
        }
    }
}

/// `111: Connection refused`, as nginx writes an errno.
private func errorText(_ e: Int32) -> String { "\(e): \(String(cString: strerror(e)))" }
