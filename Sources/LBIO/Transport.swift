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

    /// The TLS stream, when the connection is TLS.
    public var tls: TLSStream? {
        if case .tls(let s) = self { return s }
        return nil
    }

    /// Whether file bytes may go straight from the page cache to the socket (`sendfile`): not
    /// through a record layer that has to encrypt them.
    public var canSendfile: Bool {
        switch self {
        case .tcp: true
        case .tls: false
        }
    }

    /// Reads up to `count` bytes; `.done(0)` is the end of the stream.
    @inline(__always)
    public func read(_ fd: Int32, _ buf: UnsafeMutableRawPointer, _ count: Int) throws(IOError) -> IOResult<Int> {
        switch self {
        case .tcp: try Socket.read(fd, buf, count)
        case .tls(let s): try s.io { () throws(TLSError) in try s.read(buf, count) }
        }
    }

    /// Writes up to `count` bytes. `more` says that more bytes follow at once (MSG_MORE on TCP:
    /// a response head leaves in the same segment as the first body bytes).
    @inline(__always)
    public func write(_ fd: Int32, _ buf: UnsafeRawPointer, _ count: Int, more: Bool = false) throws(IOError) -> IOResult<Int> {
        switch self {
        case .tcp: more ? try Socket.writeMore(fd, buf, count) : try Socket.write(fd, buf, count)
        case .tls(let s): try s.io { () throws(TLSError) in try s.write(buf, count) }
        }
    }

    /// Writes two buffers as one stream (a response head and the body bytes after it).
    @inline(__always)
    public func writev(_ fd: Int32, _ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) throws(IOError) -> IOResult<Int> {
        switch self {
        case .tcp: try Socket.writev(fd, a, b)
        case .tls(let s): try s.io { () throws(TLSError) in try s.writev(a, b) }
        }
    }

    /// Sends file bytes; only when `canSendfile`.
    @inline(__always)
    public func sendfile(_ fd: Int32, _ file: Int32, offset: inout Int, count: Int) throws(IOError) -> IOResult<Int> {
        switch self {
        case .tcp: try Socket.sendfile(fd, file, offset: &offset, count: count)
        case .tls: throw IOError("sendfile", errno: EINVAL) // callers check canSendfile
        }
    }

    /// Holds partial segments until uncorked (TCP_CORK), around a head + sendfile body.
    public func cork(_ fd: Int32, _ on: Bool) {
        // On TLS too: records written while corked leave in full segments.
        try? Socket.setOption(fd, 6 /* IPPROTO_TCP */, 3 /* TCP_CORK */, on ? 1 : 0)
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
