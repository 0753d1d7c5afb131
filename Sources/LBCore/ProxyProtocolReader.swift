import Glibc
import LBConfig
import LBHTTP
import LBIO

/// Reads the PROXY protocol header of a connection accepted on a `listen … proxy_protocol`
/// address, before anything else (a TLS ClientHello comes after it), then hands the socket to a
/// `ClientConnection` with the header's addresses. As nginx's TLS path does, the bytes are peeked
/// (`MSG_PEEK`) and only the header is consumed, so what follows is read by the connection as if
/// it came first. A broken header, or none within `client_header_timeout`, closes the connection.
/// Only these listeners pay for it: other accepts go straight to `Worker.admit`.
final class ProxyProtocolReader: Pollable {
    unowned(unsafe) let worker: Worker
    let peer: SocketAddress
    let generation: Generation
    let listener: Int
    let number: Int

    init(worker: Worker, fd: Int32, peer: SocketAddress, generation: Generation, listener: Int, number: Int) {
        self.worker = worker
        self.peer = peer
        self.generation = generation
        self.listener = listener
        self.number = number
        super.init()
        self.fd = fd
    }

    func start() {
        do {
            try worker.loop.register(self, events: EventLoop.readable | EventLoop.edge | EventLoop.hangup)
        } catch {
            fail(nil)
            return
        }
        let server = generation.table.servers[generation.table.listeners[listener].defaultServer]
        worker.loop.setDeadline(self, afterMillis: server.settings.resolved.clientHeaderTimeoutMs)
        read(hangup: false)
    }

    override func ready(_ events: UInt32) {
        read(hangup: events & (EventLoop.hangup | EventLoop.error) != 0)
    }

    override func timedOut() {
        fail("client timed out (110: Connection timed out) while reading PROXY protocol", level: .info)
    }

    private func read(hangup: Bool) {
        let result: ProxyProtocol.Result? = withUnsafeTemporaryAllocation(byteCount: ProxyProtocol.maxLength, alignment: 1) { buf in
            let n = recv(fd, buf.baseAddress, buf.count, Int32(MSG_PEEK))
            if n < 0 {
                if errno == EAGAIN || errno == EINTR { return hangup ? .invalid("") : nil }
                return .invalid("")
            }
            if n == 0 { return .invalid("") }
            return ProxyProtocol.parse(UnsafeRawBufferPointer(rebasing: buf[0..<n]))
        }
        switch result {
        case nil: return
        case .incomplete:
            if hangup { fail("client closed connection while reading PROXY protocol", level: .info) }
        case .invalid(let why):
            // Read what was peeked, as nginx has when it refuses: the close is then a FIN, not
            // the reset that unread bytes would cause.
            _ = withUnsafeTemporaryAllocation(byteCount: ProxyProtocol.maxLength, alignment: 1) { buf in
                recv(fd, buf.baseAddress, buf.count, Int32(MSG_DONTWAIT))
            }
            fail(why.isEmpty ? nil : why)
        case .header(let header, let length):
            // Consume exactly the header: the rest stays for the connection (or the handshake).
            let taken = withUnsafeTemporaryAllocation(byteCount: length, alignment: 1) { buf in
                recv(fd, buf.baseAddress, length, 0)
            }
            guard taken == length else {
                fail(nil)
                return
            }
            worker.loop.deregister(self)
            worker.clients -= 1
            worker.admit(fd: fd, peer: peer, generation: generation, listener: listener, number: number, proxyProtocol: header)
        }
    }

    /// Closes the connection; `why` goes to the error log (nginx logs a broken header at `error`).
    private func fail(_ why: String?, level: ErrorLog.Level = .error) {
        if let why {
            let l = generation.table.listeners[listener].address
            worker.runtime.errorLog.log(level, "\(why), client: \(PeerAddress(peer).ip), server: \(l)", connection: number, worker: worker.index)
        }
        worker.loop.deregister(self)
        Socket.close(fd)
        worker.connectionClosed()
    }
}
