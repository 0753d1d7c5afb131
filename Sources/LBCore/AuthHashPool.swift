import Glibc
import LBIO
import Synchronization

/// One password to check against a user file's hash, with what the answer needs.
struct AuthBasicJob: Sendable {
    var user: String
    var password: [UInt8]
    var stored: [UInt8]
    var realm: [UInt8]
}

/// A connection handed to another thread and back to its own loop (`EventLoop.execute`); only
/// ever touched on that loop.
final class ConnectionReference: @unchecked Sendable {
    let connection: ClientConnection
    init(_ c: ClientConnection) { connection = c }
}

/// Threads that run crypt(3) for auth_basic, so that a bcrypt or yescrypt check (tens to hundreds
/// of milliseconds) never holds an event loop: the request waits, the loop serves others. nginx
/// hashes on its worker; this is where lb differs. Shared by every worker; started at first use.
final class AuthHashPool: Sendable {
    static let shared = AuthHashPool(threads: max(1, min(4, sysconf(Int32(_SC_NPROCESSORS_ONLN)))))

    /// Beyond this many waiting checks, a check runs inline on its loop (as nginx's would).
    static let maxQueued = 4096

    private struct Job {
        var password: [UInt8]
        var stored: [UInt8]
        var done: @Sendable (Bool?) -> Void
    }

    private let queue = Mutex<[Job]>([])
    private nonisolated(unsafe) let ready: UnsafeMutablePointer<sem_t>
    private let started: Int

    private init(threads: Int) {
        ready = .allocate(capacity: 1)
        sem_init(ready, 0, 0)
        var n = 0
        for _ in 0..<threads {
            do {
                try Threads.start { AuthHashPool.shared.run() }
                n += 1
            } catch {
                break
            }
        }
        started = n
    }

    /// Whether checks can be handed off (a thread started, and the queue is not flooded).
    var available: Bool { started > 0 && queue.withLock { $0.count } < AuthHashPool.maxQueued }

    /// Checks `password` against `stored` on a pool thread; `done` runs there with the answer.
    func submit(password: [UInt8], stored: [UInt8], done: @escaping @Sendable (Bool?) -> Void) {
        queue.withLock { $0.append(Job(password: password, stored: stored, done: done)) }
        sem_post(ready)
    }

    private func run() {
        while true {
            while sem_wait(ready) != 0 {}
            guard let job = queue.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) else { continue }
            job.done(AuthBasic.verify(password: job.password, stored: job.stored))
        }
    }
}
