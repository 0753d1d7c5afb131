import Glibc

/// The one place lb starts threads: a detached POSIX thread running a closure, with
/// `pthread_create`'s result checked (a thread that could not start is an error the caller sees,
/// never a silently missing worker). Threads are started from here, not from closures written in
/// `main.swift`, which Swift 6 would infer as main-actor isolated (STYLE.md).
public enum Threads {
    /// `pthread_create` failed (EAGAIN: a thread limit; ENOMEM).
    public struct StartError: Error, CustomStringConvertible {
        public let errno: Int32
        public var description: String { "pthread_create() failed (\(errno): \(String(cString: strerror(errno))))" }
    }

    private final class Box: @unchecked Sendable {
        let body: @Sendable () -> Void
        init(_ b: @escaping @Sendable () -> Void) { body = b }
    }

    /// Starts a detached thread running `body`.
    public static func start(_ body: @escaping @Sendable () -> Void) throws(StartError) {
        let box = Unmanaged.passRetained(Box(body))
        var tid = pthread_t()
        let r = pthread_create(&tid, nil, { arg in
            let b = Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue()
            b.body()
            return nil
        }, box.toOpaque())
        guard r == 0 else {
            box.release()
            throw StartError(errno: r)
        }
        pthread_detach(tid)
    }
}
