import CLBShim
import Glibc
import Synchronization

/// Something registered with an event loop: a socket with a handler. Subclassed by connections
/// and listeners (class dispatch, no existentials on the hot path).
open class Pollable {
    public final var fd: Int32 = -1
    /// Bumped on every registration so events for a reused fd number are ignored.
    final var generation: UInt32 = 0
    /// 0 when no timeout is armed; otherwise the monotonic ms at which `timedOut()` runs.
    public final var deadline: Int64 = 0
    final var timerQueuedAt: Int64 = 0

    public init() {}

    /// Called with the epoll event bits.
    open func ready(_ events: UInt32) {}

    /// Called when `deadline` passes.
    open func timedOut() {}
}

/// One epoll instance, run by one thread: the loop owns every connection registered with it.
public final class EventLoop: @unchecked Sendable {
    public let epfd: Int32
    private let wakeFD: Int32
    private let wakePollable = Pollable()
    private var handlers: [Pollable?] = []
    private var timers = TimerHeap()
    private let tasks = Mutex<[@Sendable () -> Void]>([])
    private var running = true
    /// Cached monotonic time, refreshed once per loop turn.
    public private(set) var now: Int64 = monotonicMillis()
    /// Called once per loop turn after events (flush buffered logs, run deferred work).
    public var onTurn: (() -> Void)?
    public let index: Int
    public private(set) var thread: pthread_t?
    /// Adaptive busy polling before blocking (off unless set; see `BusyPoll`).
    public var busyPoll = BusyPoll(maxMicros: 0)

    public init(index: Int) throws(IOError) {
        self.index = index
        epfd = try syscallChecked("epoll_create1") { lb_epoll_create() }
        wakeFD = try syscallChecked("eventfd") { lb_eventfd() }
        wakePollable.fd = wakeFD
        _ = try syscallChecked("epoll_ctl") { lb_epoll_ctl(epfd, EPOLL_CTL_ADD, wakeFD, UInt32(EPOLLIN.rawValue), UInt64(UInt32.max)) }
    }

    deinit {
        Glibc.close(epfd)
        Glibc.close(wakeFD)
    }

    // Literal values (Linux ABI) so they fold into the callers instead of a lazy global.
    public static var readable: UInt32 { 0x001 }       // EPOLLIN
    public static var writable: UInt32 { 0x004 }       // EPOLLOUT
    public static var error: UInt32 { 0x008 }          // EPOLLERR
    public static var hangup: UInt32 { 0x2010 }        // EPOLLRDHUP | EPOLLHUP
    public static var exclusive: UInt32 { 1 << 28 }    // EPOLLEXCLUSIVE
    public static var edge: UInt32 { 1 << 31 }         // EPOLLET

    /// Registers `p` (whose `fd` is set) for `events`.
    public func register(_ p: Pollable, events: UInt32) throws(IOError) {
        let fd = Int(p.fd)
        if fd >= handlers.count { handlers.append(contentsOf: repeatElement(nil, count: max(fd + 1 - handlers.count, handlers.count))) }
        p.generation &+= 1
        handlers[fd] = p
        let data = UInt64(UInt32(fd)) | (UInt64(p.generation) << 32)
        do {
            _ = try syscallChecked("epoll_ctl") { lb_epoll_ctl(epfd, EPOLL_CTL_ADD, p.fd, events, data) }
        } catch {
            handlers[fd] = nil
            throw error
        }
    }

    /// Changes the event mask of a registered pollable.
    public func modify(_ p: Pollable, events: UInt32) {
        let data = UInt64(UInt32(p.fd)) | (UInt64(p.generation) << 32)
        _ = lb_epoll_ctl(epfd, EPOLL_CTL_MOD, p.fd, events, data)
    }

    /// Removes `p` from the loop (before its fd is closed).
    public func deregister(_ p: Pollable) {
        let fd = Int(p.fd)
        guard fd >= 0, fd < handlers.count, handlers[fd] === p else { return }
        _ = lb_epoll_ctl(epfd, EPOLL_CTL_DEL, p.fd, 0, 0)
        handlers[fd] = nil
        p.deadline = 0
    }

    /// Arms (or moves) `p`'s timeout; 0 disarms. O(1) unless the deadline moves earlier.
    @inline(__always)
    public func setDeadline(_ p: Pollable, afterMillis ms: Int) {
        if ms <= 0 { p.deadline = 0; return }
        let d = now + Int64(ms)
        p.deadline = d
        if p.timerQueuedAt == 0 || d < p.timerQueuedAt {
            p.timerQueuedAt = d
            timers.push(TimerEntry(at: d, target: p))
        }
    }

    /// A one-off timer not tied to a connection.
    public func schedule(afterMillis ms: Int, _ body: @escaping () -> Void) {
        let t = CallbackTimer(body)
        setDeadline(t, afterMillis: ms)
    }

    /// Traps in debug builds when called off this loop's thread (NIO's `preconditionInEventLoop`):
    /// a connection never leaves its loop. Free in release builds.
    @inline(__always)
    public func assertInLoop(file: StaticString = #fileID, line: UInt = #line) {
        assert(thread.map { pthread_equal($0, pthread_self()) != 0 } ?? true, "used off its event loop's thread", file: file, line: line)
    }

    /// Runs `task` on this loop's thread (from any thread).
    public func execute(_ task: @escaping @Sendable () -> Void) {
        tasks.withLock { $0.append(task) }
        var one: UInt64 = 1
        _ = Glibc.write(wakeFD, &one, 8)
    }

    /// Stops the loop after the current turn (call on the loop thread, or through `execute`).
    public func stop() { running = false }

    /// Runs until `stop()`; call on the thread that owns this loop.
    public func run() {
        thread = pthread_self()
        let capacity = 512
        let events = UnsafeMutablePointer<epoll_event>.allocate(capacity: capacity)
        defer { events.deallocate() }
        while running {
            now = monotonicMillis()
            var timeout: Int32 = 1000
            if let next = timers.peek?.at {
                timeout = Int32(max(0, min(Int64(1000), next - now)))
            }
            let n = busyPoll.enabled && timeout > 0
                ? pollThenWait(events, capacity, timeout)
                : lb_epoll_wait(epfd, events, Int32(capacity), timeout)
            now = monotonicMillis()
            if n > 0 {
                for i in 0..<Int(n) {
                    let ev = events + i
                    let data = lb_epoll_event_data(ev)
                    let bits = lb_epoll_event_events(ev)
                    let fd = Int(UInt32(truncatingIfNeeded: data))
                    if fd == Int(UInt32.max) {
                        drainTasks()
                        continue
                    }
                    guard fd < handlers.count, let p = handlers[fd], p.generation == UInt32(truncatingIfNeeded: data >> 32) else { continue }
                    p.ready(bits)
                }
            }
            runTimers()
            onTurn?()
        }
    }

    /// Polls for the current window, yielding the core between polls to anything else runnable on
    /// it (measured: no throughput cost against polling without the yield), then blocks; how long
    /// the block took adapts the window.
    private func pollThenWait(_ events: UnsafeMutablePointer<epoll_event>, _ capacity: Int, _ timeout: Int32) -> Int32 {
        if busyPoll.windowMicros > 0 {
            let until = monotonicMicros() + busyPoll.windowMicros
            repeat {
                let n = lb_epoll_wait(epfd, events, Int32(capacity), 0)
                if n != 0 { return n }
                sched_yield()
            } while monotonicMicros() < until
        }
        let start = monotonicMicros()
        let n = lb_epoll_wait(epfd, events, Int32(capacity), timeout)
        busyPoll.blocked(for: monotonicMicros() - start)
        return n
    }

    private func drainTasks() {
        var v: UInt64 = 0
        _ = Glibc.read(wakeFD, &v, 8)
        let pending = tasks.withLock { t -> [@Sendable () -> Void] in
            let out = t
            t.removeAll()
            return out
        }
        for t in pending { t() }
    }

    private func runTimers() {
        while let top = timers.peek, top.at <= now {
            timers.pop()
            let p = top.target
            if p.timerQueuedAt == top.at { p.timerQueuedAt = 0 }
            if p.deadline == 0 { continue }
            if p.deadline > now {
                if p.timerQueuedAt == 0 || p.deadline < p.timerQueuedAt {
                    p.timerQueuedAt = p.deadline
                    timers.push(TimerEntry(at: p.deadline, target: p))
                }
                continue
            }
            p.deadline = 0
            p.timedOut()
        }
    }
}

final class CallbackTimer: Pollable {
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
    override func timedOut() { body() }
}

struct TimerEntry {
    var at: Int64
    var target: Pollable
}

/// A binary min-heap of timer entries; stale entries are skipped when popped.
struct TimerHeap {
    private var items: [TimerEntry] = []

    var peek: TimerEntry? { items.first }
    var count: Int { items.count }

    mutating func push(_ e: TimerEntry) {
        items.append(e)
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            if items[parent].at <= items[i].at { break }
            items.swapAt(parent, i)
            i = parent
        }
    }

    mutating func pop() {
        let last = items.removeLast()
        guard !items.isEmpty else { return }
        items[0] = last
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < items.count && items[l].at < items[m].at { m = l }
            if r < items.count && items[r].at < items[m].at { m = r }
            if m == i { break }
            items.swapAt(m, i)
            i = m
        }
    }
}
