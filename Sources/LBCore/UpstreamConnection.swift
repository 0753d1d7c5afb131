import Glibc
import LBIO

/// A connection to an upstream peer. While a request uses it, events go to its owner; idle in a
/// worker's pool, any event (the peer closed it, or sent garbage) closes it.
final class UpstreamConnection: Pollable {
    unowned let worker: Worker
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

    init(worker: Worker, fd: Int32, upstreamID: Int, peerIndex: Int, address: SocketAddress) {
        self.worker = worker
        self.upstreamID = upstreamID
        self.peerIndex = peerIndex
        self.address = address
        super.init()
        self.fd = fd
    }

    deinit {
        inBuf.release()
        outBuf.release()
    }

    /// Still worth reusing: not closed by the peer, nothing unread.
    var isUsable: Bool {
        if closed || peerClosed { return false }
        // A pooled connection must have nothing pending: peek without consuming.
        var b: UInt8 = 0
        let n = recv(fd, &b, 1, Int32(MSG_PEEK | MSG_DONTWAIT))
        if n == 0 { return false }
        if n > 0 { return false }
        return errno == EAGAIN || errno == EWOULDBLOCK
    }

    override func ready(_ events: UInt32) {
        if events & EventLoop.readable != 0 { readable = true }
        if events & EventLoop.writable != 0 { writable = true }
        if events & (EventLoop.hangup | EventLoop.error) != 0 {
            peerClosed = true
            readable = true
        }
        if let o = owner {
            o.upstreamEvent()
        } else if pooled && (readable || peerClosed) {
            worker.removeIdle(self)
            close()
        }
    }

    override func timedOut() {
        if let o = owner {
            o.upstreamTimedOut()
        } else if pooled {
            worker.removeIdle(self)
            close()
        }
    }

    func close() {
        guard !closed else { return }
        closed = true
        worker.loop.deregister(self)
        Socket.close(fd)
        inBuf.release()
        outBuf.release()
        owner = nil
    }
}
