import Glibc

/// The byte stream of a client connection: every read and write of one goes through its
/// transport, never straight to the socket. Plain TCP today; TLS (a record layer over the same
/// socket) is one more case. An enum of concrete kinds rather than a protocol existential: the
/// hot path pays one predictable switch, no dynamic dispatch or boxing.
///
/// `.wouldBlock` means "call again after the next readiness event of either kind" (a TLS read
/// may need the socket to become writable, and the reverse).
public enum Transport {
    /// Plain TCP on the connection's socket.
    case tcp
    /// TLS records over the connection's socket (OpenSSL's record layer; `listen … ssl`).
    case tls(TLSStream)
    /// A byte stream carried by something other than a socket of its own: one HTTP/2 stream of a
    /// connection whose socket another object owns (reads give the stream's request as HTTP/1.1
    /// octets, writes take an HTTP/1.1 response and frame it: LBCore's `H2Stream`), or a mirror
    /// subrequest whose response nobody reads (`MirrorPipe`). The descriptor passed to the calls
    /// is not used.
    case stream(StreamPipe)

    /// The TLS stream, when the connection is TLS (an HTTP/2 stream's is its connection's).
    public var tls: TLSStream? {
        switch self {
        case .tcp: nil
        case .tls(let s): s
        case .stream(let p): p.tls
        }
    }

    /// Whether the connection is TLS, without taking the stream (a reference count).
    public var hasTLS: Bool {
        switch self {
        case .tcp: false
        case .tls: true
        case .stream(let p): p.hasTLS
        }
    }

    /// Whether the client speaks HTTP/2 (a stream of an HTTP/2 connection, or a mirror of one).
    public var isHTTP2: Bool {
        if case .stream(let p) = self { return p.isHTTP2 }
        return false
    }

    /// Whether a response head goes to the pipe whole (`StreamPipe.responseHead`) instead of as
    /// HTTP/1.1 octets: an HTTP/2 stream, a mirror.
    public var takesResponseHeads: Bool {
        if case .stream(let p) = self { return p.takesResponseHeads }
        return false
    }

    /// Whether file bytes may go straight from the page cache to the socket (`sendfile`): not
    /// through a record layer that has to encrypt them, nor into HTTP/2 frames.
    public var canSendfile: Bool {
        switch self {
        case .tcp: true
        case .tls, .stream: false
        }
    }

    /// Reads up to `count` bytes; `.done(0)` is the end of the stream.
    @inline(__always)
    public func read(_ fd: Int32, _ buf: UnsafeMutableRawPointer, _ count: Int) throws(IOError) -> IOResult<Int> {
        switch self {
        case .tcp: try Socket.read(fd, buf, count)
        case .tls(let s): try s.io { () throws(TLSError) in try s.read(buf, count) }
        case .stream(let p): p.read(buf, count)
        }
    }

    /// Writes up to `count` bytes. `more` says that more bytes follow at once (MSG_MORE on TCP:
    /// a response head leaves in the same segment as the first body bytes).
    @inline(__always)
    public func write(_ fd: Int32, _ buf: UnsafeRawPointer, _ count: Int, more: Bool = false) throws(IOError) -> IOResult<Int> {
        switch self {
        case .tcp: return more ? try Socket.writeMore(fd, buf, count) : try Socket.write(fd, buf, count)
        case .tls(let s): return try s.io { () throws(TLSError) in try s.write(buf, count) }
        case .stream(let p):
            if p.broken { throw IOError("write", errno: EPIPE) }
            return p.write(buf, count)
        }
    }

    /// Writes two buffers as one stream (a response head and the body bytes after it).
    @inline(__always)
    public func writev(_ fd: Int32, _ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) throws(IOError) -> IOResult<Int> {
        switch self {
        case .tcp: return try Socket.writev(fd, a, b)
        case .tls(let s): return try s.io { () throws(TLSError) in try s.writev(a, b) }
        case .stream(let p):
            if p.broken { throw IOError("writev", errno: EPIPE) }
            return p.writev(a, b)
        }
    }

    /// Sends file bytes; only when `canSendfile`.
    @inline(__always)
    public func sendfile(_ fd: Int32, _ file: Int32, offset: inout Int, count: Int) throws(IOError) -> IOResult<Int> {
        switch self {
        case .tcp: try Socket.sendfile(fd, file, offset: &offset, count: count)
        case .tls, .stream: throw IOError("sendfile", errno: EINVAL) // callers check canSendfile
        }
    }

    /// Holds partial segments until uncorked (TCP_CORK), around a head + sendfile body.
    public func cork(_ fd: Int32, _ on: Bool) {
        if case .stream = self { return } // the connection's socket is not the stream's to cork
        // On TLS too: records written while corked leave in full segments.
        try? Socket.setOption(fd, 6 /* IPPROTO_TCP */, 3 /* TCP_CORK */, on ? 1 : 0)
    }
}

/// A byte stream carried inside a connection (an HTTP/2 stream, a mirror subrequest): what
/// `Transport.stream` reads and writes. A class with overridable methods (one vtable call), so that LBIO knows nothing of
/// HTTP/2; LBCore's `H2Stream` is the implementation.
open class StreamPipe {
    public init() {}

    /// The client gave the stream up (HTTP/2 RST_STREAM): writes fail from now on (EPIPE), as a
    /// socket's do once its peer has gone, and the exchange ends the way a failed write ends it.
    public final var broken = false

    /// The TLS stream of the connection carrying this one, if any (`$ssl_*`, `$scheme`).
    open var tls: TLSStream? { nil }
    /// Whether `tls` is there, without taking it.
    open var hasTLS: Bool { tls != nil }

    /// Whether the client speaks HTTP/2 (`$server_protocol`, `$http2`, the logged request line).
    open var isHTTP2: Bool { false }

    /// The stream connection closed: the pipe's owner lets go of it.
    open func connectionClosed() {}

    /// Whether the pipe takes each response head whole (`responseHead`) rather than as HTTP/1.1
    /// octets through `write`: the response-writer side of the seam (an HTTP/2 stream makes
    /// HEADERS of it; a mirror drops it).
    open var takesResponseHeads: Bool { false }

    /// A response head, when `takesResponseHeads`: its status and its fields as `Name: value`
    /// CR LF lines (the connection-specific ones already left out by the head stage); `headOnly`:
    /// the answer to a HEAD request (no body follows, whatever the fields say). The body's
    /// octets follow through `write`, framed as the fields say (Content-Length, chunked, or
    /// until the connection closes).
    open func responseHead(status: Int, fields: UnsafeRawBufferPointer, headOnly: Bool) {}

    /// The connection's turn (an event it handled) is over: output the pipe held back so that
    /// it could leave with what followed goes now.
    open func turnEnded() {}

    /// Request octets; `.done(0)` is the end (no more requests on this stream).
    open func read(_ buf: UnsafeMutableRawPointer, _ count: Int) -> IOResult<Int> { .done(0) }

    /// Response octets; fewer than `count` (or `.wouldBlock`) when flow control says wait.
    open func write(_ buf: UnsafeRawPointer, _ count: Int) -> IOResult<Int> { .wouldBlock }

    /// Two buffers as one stream.
    open func writev(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> IOResult<Int> {
        var total = 0
        if !a.isEmpty {
            guard case .done(let n) = write(a.baseAddress!, a.count) else { return .wouldBlock }
            total = n
            if n < a.count { return .done(n) }
        }
        if !b.isEmpty, case .done(let n) = write(b.baseAddress!, b.count) { total += n }
        return total == 0 && a.count + b.count > 0 ? .wouldBlock : .done(total)
    }
}

extension TLSStream {
    /// The stream's calls with their failures as the transport's `IOError` (EPROTO; OpenSSL's
    /// words stay in `lastError`).
    @inline(__always)
    func io(_ body: () throws(TLSError) -> IOResult<Int>) throws(IOError) -> IOResult<Int> {
        do { return try body() } catch { throw IOError(error.call, errno: EPROTO) }
    }
}
