import CLBShim
import Glibc

/// An error from a system call: the call's name and errno.
public struct IOError: Error, CustomStringConvertible, Sendable {
    public let call: String
    public let errno: Int32

    public init(_ call: String, errno: Int32) {
        self.call = call
        self.errno = errno
    }

    /// nginx's form: `connect() failed (111: Connection refused)`.
    public var description: String { "\(call)() failed (\(errno): \(String(cString: strerror(errno))))" }
}

/// The result of a non-blocking call.
public enum IOResult<T> {
    case done(T)
    case wouldBlock
}

/// The one wrapper around system calls: retries EINTR, maps EAGAIN to `.wouldBlock`, throws
/// `IOError` for anything else.
@inline(__always)
public func syscall<T: FixedWidthInteger>(_ name: String, _ body: () -> T) throws(IOError) -> IOResult<T> {
    while true {
        let r = body()
        if r >= 0 { return .done(r) }
        let e = errno
        if e == EINTR { continue }
        if e == EAGAIN || e == EWOULDBLOCK || e == EINPROGRESS { return .wouldBlock }
        throw IOError(name, errno: e)
    }
}

/// For calls that must not block and are not expected to (close, setsockopt, …).
@inline(__always)
public func syscallChecked<T: FixedWidthInteger>(_ name: String, _ body: () -> T) throws(IOError) -> T {
    while true {
        let r = body()
        if r >= 0 { return r }
        let e = errno
        if e == EINTR { continue }
        throw IOError(name, errno: e)
    }
}

/// Monotonic milliseconds (coarse clock: cheap, ~1–4 ms resolution).
@inline(__always)
public func monotonicMillis() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts)
    return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
}

/// Precise monotonic time in microseconds, for request timing.
@inline(__always)
public func monotonicMicros() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1000
}

/// Wall-clock seconds and milliseconds (logs, Date headers).
public func wallClock() -> (seconds: Int, millis: Int) {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return (Int(ts.tv_sec), Int(ts.tv_nsec / 1_000_000))
}
