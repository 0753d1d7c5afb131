import CLBShim
import Glibc

/// Thin, non-blocking socket calls on raw file descriptors, all through `syscall`.
public enum Socket {
    /// Opens a listening TCP socket (non-blocking, close-on-exec, SO_REUSEADDR).
    public static func listen(_ address: SocketAddress, backlog: Int32, reusePort: Bool, ipv6Only: Bool = true) throws(IOError) -> Int32 {
        let fd = try syscallChecked("socket") { Glibc.socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        do {
            try setOption(fd, SOL_SOCKET, SO_REUSEADDR, 1)
            if reusePort { try setOption(fd, SOL_SOCKET, SO_REUSEPORT, 1) }
            if address.family == AF_INET6 { try setOption(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, ipv6Only ? 1 : 0) }
            var addr = address
            _ = try syscallChecked("bind") {
                withUnsafePointer(to: &addr.storage) { p in
                    p.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, addr.length) }
                }
            }
            _ = try syscallChecked("listen") { Glibc.listen(fd, backlog) }
        } catch {
            Glibc.close(fd)
            throw error
        }
        return fd
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

    /// Starts a non-blocking connect. Returns the fd; completion is signalled by writability.
    public static func connect(_ address: SocketAddress) throws(IOError) -> (fd: Int32, immediate: Bool) {
        let fd = try syscallChecked("socket") { Glibc.socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        var addr = address
        do {
            try setOption(fd, Int32(IPPROTO_TCP), TCP_NODELAY, 1)
            let r = try syscall("connect") {
                withUnsafePointer(to: &addr.storage) { p in
                    p.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, addr.length) }
                }
            }
            if case .done = r { return (fd, true) }
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
