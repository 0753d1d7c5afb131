import Glibc
import LBConfig
import LBIO

/// A connection to an upstream peer. While a request uses it, events go to its owner; idle in a
/// worker's pool, any event (the peer closed it, or sent garbage) closes it.
final class UpstreamConnection: Pollable {
    /// The worker outlives every connection it owns: no reference counting on this hot field.
    unowned(unsafe) let worker: Worker
    let upstreamID: Int
    let peerIndex: Int
    let address: SocketAddress
    /// The request using this connection; nil while pooled.
    unowned(unsafe) var owner: ClientConnection?
    var pooled = false
    var connected = false
    var readable = false
    var writable = false
    var peerClosed = false
    var closed = false
    var inBuf = Buffer()
    var outBuf = Buffer()
    var requests = 0
    /// When it was connected (loop milliseconds), for the upstream's `keepalive_time`.
    var createdMillis: Int64 = 0
    /// Every read and write goes through it: plain TCP, or TLS for `proxy_pass https://`.
    var transport: Transport = .tcp
    /// The location's TLS client settings this connection was made with (nil: plain); a pooled
    /// connection serves only requests whose target has the same.
    var upstreamTLS: UpstreamTLS?
    /// The current request's FastCGI decoding (nil for HTTP and uwsgi upstreams).
    var fastcgi: FastCGIUpstream?

    init(worker: Worker, fd: Int32, upstreamID: Int, peerIndex: Int, address: SocketAddress) {
        self.worker = worker
        self.upstreamID = upstreamID
        self.peerIndex = peerIndex
        self.address = address
        super.init()
        self.fd = fd
        worker.upstreamConnections += 1
    }

    deinit {
        inBuf.release()
        outBuf.release()
    }

    /// Still worth reusing: not closed by the peer and nothing unread. An idle pooled connection
    /// stays registered with the loop, so a close or stray bytes from the peer arrive as an event
    /// (and close it) before it can be taken again — no extra syscall per reuse.
    var isUsable: Bool { !closed && !peerClosed && !readable }

    override func ready(_ events: UInt32) {
        if events & EventLoop.readable != 0 { readable = true }
        if events & EventLoop.writable != 0 { writable = true }
        if events & (EventLoop.hangup | EventLoop.error) != 0 {
            peerClosed = true
            readable = true
        }
        if case .tls(let s) = transport {
            if s.readWantsWrite && events & EventLoop.writable != 0 { readable = true }
            if s.writeWantsRead && events & EventLoop.readable != 0 { writable = true }
        }
        if let o = owner {
            o.turn { o.upstreamEvent() }
        } else if pooled && (readable || peerClosed) {
            worker.removeIdle(self)
            close()
        }
    }

    override func timedOut() {
        if let o = owner {
            o.turn { o.upstreamTimedOut() }
        } else if pooled {
            worker.removeIdle(self)
            close()
        }
    }

    /// Whether a pooled connection may carry a request to `target`: made with the same TLS
    /// settings (or both plain). Otherwise it is closed, and the caller connects anew.
    func suits(_ target: ProxyTarget) -> Bool {
        if upstreamTLS === target.tls { return true }
        close()
        return false
    }

    func close() {
        guard !closed else { return }
        closed = true
        worker.loop.deregister(self)
        transport.tls?.shutdown() // close_notify, unless the handshake never finished or failed
        Socket.close(fd)
        inBuf.release()
        outBuf.release()
        owner = nil
        worker.upstreamConnections -= 1
        worker.connectionSlotFreed()
    }
}
