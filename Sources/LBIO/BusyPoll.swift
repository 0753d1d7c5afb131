/// Adaptive busy polling: how long an event loop polls (epoll_wait with a zero timeout) before it
/// blocks. Pure logic; `EventLoop` feeds it what happened.
///
/// Why: when a loop blocks in epoll_wait, the next client write has to wake it (the kernel's
/// wakeup, an IPI to the sleeping core), and that cost is paid by the writer — on loopback, by the
/// client. Under dense request/response traffic a loop that polls through short gaps is never
/// asleep when a request lands. The policy is the one of Linux's haltpoll cpuidle governor and KVM
/// halt polling: the window grows when a block turned out short (a poll that long would have caught
/// the event) and shrinks when a block was long (the gap was idle time, polling would have wasted
/// it). So an idle or lightly loaded loop never polls, and a failed poll costs at most one window.
public struct BusyPoll: Sendable, Equatable {
    /// The largest window, in microseconds; 0 disables polling.
    public let maxMicros: Int64
    /// The first window after growing from zero.
    public let startMicros: Int64
    /// The current window: poll this long before blocking.
    public private(set) var windowMicros: Int64 = 0

    public init(maxMicros: Int64) {
        self.maxMicros = max(0, maxMicros)
        startMicros = max(1, self.maxMicros / 4)
    }

    public var enabled: Bool { maxMicros > 0 }

    /// The loop polled for the whole window and then blocked for `blockedMicros` until an event
    /// (or its timer) arrived.
    public mutating func blocked(for blockedMicros: Int64) {
        guard enabled else { return }
        if blockedMicros <= maxMicros {
            // A longer poll would have caught it: grow (doubling, as haltpoll's grow factor 2).
            windowMicros = windowMicros == 0 ? startMicros : min(maxMicros, windowMicros * 2)
        } else {
            // An idle gap: polling through it would have been waste. Halve, and stop below start.
            windowMicros /= 2
            if windowMicros < startMicros { windowMicros = 0 }
        }
    }
}
