import CLBShim
import Glibc

/// Thin, non-blocking socket calls on raw file descriptors, all through `syscall`.
public enum Socket {
    /// Opens a listening TCP socket (non-blocking, close-on-exec, SO_REUSEADDR), or a unix-domain
    /// one: its file is made mode 0666 as nginx does, and a stale file (a socket nobody listens on,
    /// left by a crash) is replaced; a live one is not (`EADDRINUSE`, as nginx).
    public static func listen(_ address: SocketAddress, backlog: Int32, reusePort: Bool, ipv6Only: Bool = true) throws(IOError) -> Int32 {
        let fd = try syscallChecked("socket") { Glibc.socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        do throws(IOError) {
            if !address.isUnix { try setOption(fd, SOL_SOCKET, SO_REUSEADDR, 1) }
            if reusePort { try setOption(fd, SOL_SOCKET, SO_REUSEPORT, 1) }
            if address.family == AF_INET6 { try setOption(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, ipv6Only ? 1 : 0) }
            do throws(IOError) {
                try bind(fd, address)
            } catch where error.errno == EADDRINUSE && address.isUnix && removeStaleUnixSocket(address) {
                try bind(fd, address)
            }
            if let path = address.unixPath { _ = chmod(path, 0o666) }
            _ = try syscallChecked("listen") { Glibc.listen(fd, backlog) }
        } catch {
            Glibc.close(fd)
            throw error
        }
        return fd
    }

    private static func bind(_ fd: Int32, _ address: SocketAddress) throws(IOError) {
        var addr = address
        _ = try syscallChecked("bind") {
            withUnsafePointer(to: &addr.storage) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, addr.length) }
            }
        }
    }

    /// Unlinks the socket file of `address` when it is a socket and nobody accepts on it (a
    /// blocking connect is refused at once); true when it was removed.
    private static func removeStaleUnixSocket(_ address: SocketAddress) -> Bool {
        guard let path = address.unixPath, !path.isEmpty else { return false }
        var st = stat()
        guard lstat(path, &st) == 0, st.st_mode & S_IFMT == S_IFSOCK else { return false }
        let probe = Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard probe >= 0 else { return false }
        defer { Glibc.close(probe) }
        var addr = address
        let r = withUnsafePointer(to: &addr.storage) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(probe, $0, addr.length) }
        }
        guard r != 0, errno == ECONNREFUSED else { return false }
        return unlink(path) == 0
    }

    /// Removes the file of a unix-domain listening address (at exit, or when a reload drops it).
    public static func removeUnixSocketFile(_ address: SocketAddress) {
        if let path = address.unixPath, !path.isEmpty { unlink(path) }
    }

    /// Accepts one connection; `.wouldBlock` when the queue is empty.
    @inline(__always)
    public static func accept(_ fd: Int32, peer: inout SocketAddress) throws(IOError) -> IOResult<Int32> {
        peer.length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        return try syscall("accept4") {
            withUnsafeMutablePointer(to: &peer.storage) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) { lb_accept4(fd, $0, &peer.length) }
            }
        }
    }

    /// Starts a non-blocking connect (TCP, or unix-domain for a `unix:` address). Returns the fd;
    /// completion is signalled by writability.
    public static func connect(_ address: SocketAddress) throws(IOError) -> (fd: Int32, immediate: Bool) {
        let fd = try syscallChecked("socket") { Glibc.socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        var addr = address
        do throws(IOError) {
            if !address.isUnix { try setOption(fd, Int32(IPPROTO_TCP), TCP_NODELAY, 1) }
            let r = try syscall("connect") {
                withUnsafePointer(to: &addr.storage) { p in
                    p.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, addr.length) }
                }
            }
            if case .done = r { return (fd, true) }
            // A unix-domain connect never is in progress: EAGAIN means the listener's backlog is
            // full, an error (as nginx reports it), not a wait for writability.
            if address.isUnix { throw IOError("connect", errno: EAGAIN) }
            return (fd, false)
        } catch {
            Glibc.close(fd)
            throw error
        }
    }

    /// The pending error of a socket (after a non-blocking connect).
    public static func pendingError(_ fd: Int32) -> Int32 {
        var err: Int32 = 0
        var len = socklen_t(4)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
        return err
    }

    public static func setOption(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: Int32) throws(IOError) {
        var v = value
        _ = try syscallChecked("setsockopt") { setsockopt(fd, level, name, &v, socklen_t(4)) }
    }

    @inline(__always)
    public static func read(_ fd: Int32, _ buf: UnsafeMutableRawPointer, _ count: Int) throws(IOError) -> IOResult<Int> {
        try syscall("recv") { Glibc.read(fd, buf, count) }
    }

    @inline(__always)
    public static func write(_ fd: Int32, _ buf: UnsafeRawPointer, _ count: Int) throws(IOError) -> IOResult<Int> {
        try syscall("send") { Glibc.send(fd, buf, count, Int32(MSG_NOSIGNAL)) }
    }

    /// Writes with MSG_MORE: the kernel holds a partial segment for what follows (a response head
    /// before its sendfile body goes out in one segment instead of two).
    @inline(__always)
    public static func writeMore(_ fd: Int32, _ buf: UnsafeRawPointer, _ count: Int) throws(IOError) -> IOResult<Int> {
        try syscall("send") { Glibc.send(fd, buf, count, Int32(MSG_NOSIGNAL) | Int32(MSG_MORE)) }
    }

    /// Writes two buffers in one call.
    @inline(__always)
    public static func writev(_ fd: Int32, _ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) throws(IOError) -> IOResult<Int> {
        var iov = (iovec(iov_base: UnsafeMutableRawPointer(mutating: a.baseAddress), iov_len: a.count),
                   iovec(iov_base: UnsafeMutableRawPointer(mutating: b.baseAddress), iov_len: b.count))
        return try withUnsafeMutablePointer(to: &iov) { p throws(IOError) in
            try p.withMemoryRebound(to: iovec.self, capacity: 2) { v throws(IOError) in
                try syscall("writev") { Glibc.writev(fd, v, 2) }
            }
        }
    }

    /// Sends file bytes with sendfile(2).
    public static func sendfile(_ out: Int32, _ file: Int32, offset: inout Int, count: Int) throws(IOError) -> IOResult<Int> {
        var off = off_t(offset)
        let r = try syscall("sendfile") { Glibc.sendfile(out, file, &off, count) }
        offset = Int(off)
        return r
    }

    public static func localAddress(_ fd: Int32) -> SocketAddress {
        var a = SocketAddress()
        withUnsafeMutablePointer(to: &a.storage) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = getsockname(fd, $0, &a.length) }
        }
        return a
    }

    public static func close(_ fd: Int32) {
        _ = Glibc.close(fd)
    }

    /// Closes with RST (SO_LINGER 0), for connections in an unknown state.
    public static func abort(_ fd: Int32) {
        var l = linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, socklen_t(MemoryLayout<linger>.size))
        _ = Glibc.close(fd)
    }
}
