import LBConfig
import LBHTTP
import LBIO

/// nginx's `limit_rate` arithmetic (ngx_http_write_filter_module.c), with no clock and no socket:
/// the caller passes the seconds since the request began and the bytes sent for it so far.
public enum RateLimit {
    /// What the write paths may do now.
    public enum Allowance: Equatable, Sendable {
        /// Send at most this many bytes.
        case send(Int)
        /// Send nothing; try again after this many milliseconds.
        case wait(Int)
    }

    /// nginx's `limit = rate * (now - start_sec + 1) - (sent - after)`: positive, that many bytes
    /// may go; otherwise the connection waits `-limit * 1000 / rate + 1` ms.
    /// - Parameters:
    ///   - rate: `limit_rate` in bytes per second (> 0).
    ///   - after: `limit_rate_after`: bytes sent before the limit applies.
    ///   - elapsedSeconds: whole seconds since the request began (nginx's `ngx_time() - r->start_sec`).
    ///   - sent: bytes sent for this request so far, response head included (nginx's `c->sent`).
    public static func allowance(rate: Int, after: Int, elapsedSeconds: Int, sent: Int) -> Allowance {
        let limit = rate * (elapsedSeconds + 1) - (sent - after)
        if limit <= 0 { return .wait(-limit * 1000 / rate + 1) }
        return .send(limit)
    }

    /// The pause nginx takes after a send: the bytes it sent past `after`, at `rate`, in ms.
    public static func delayAfterSending(rate: Int, after: Int, sentBefore: Int, sentNow: Int) -> Int {
        (max(sentNow - after, 0) - max(sentBefore - after, 0)) * 1000 / rate
    }
}

/// One request's `limit_rate` state (nginx's `r->limit_rate*` and `c->write->delayed`). `limit`
/// is resolved from the location at the first write, as nginx does, unless the upstream's
/// `X-Accel-Limit-Rate` set it first.
struct ResponseRate {
    /// Bytes per second; 0 is unlimited (resolved at the first write: `responseLimited`).
    var limit = 0
    var after = 0
    /// Bytes written for this request (head and body) while limited.
    var sent = 0
    /// Waiting on the rate timer: nothing is written until it fires.
    var delayed = false
}

extension ClientConnection {
    /// The bytes the client may be sent now, or nil when the connection is (now) waiting on the
    /// rate timer. Only called when `responseLimited != false`.
    func rateAllowance() -> Int? {
        if responseLimited == nil && !resolveRate() { return Int.max }
        if responseLimited == false { return Int.max }
        if ex.rate.delayed { return nil }
        let elapsed = Int(worker.loop.now / 1000 - ex.startMicros / 1_000_000)
        switch RateLimit.allowance(rate: ex.rate.limit, after: ex.rate.after, elapsedSeconds: elapsed, sent: ex.rate.sent) {
        case .send(let n): return n
        case .wait(let ms):
            rateDelay(ms)
            return nil
        }
    }

    /// Takes the location's `limit_rate` at the request's first write, as nginx does; true when
    /// the response is limited.
    func resolveRate() -> Bool {
        let ex: Exchange = self.ex // held once, not loaded and counted at each use
        let s = ex.location
        // Read field by field: a `let` of `resolved` copied the whole struct (≈640 instructions
        // per response in the HTTP/2 profile).
        let limit = s.settings.resolved.limitRate, after = s.settings.resolved.limitRateAfter
        let rateLimit = limit >= 0 ? limit : rateValue(s.settings.limitRate)
        ex.rate.limit = rateLimit
        ex.rate.after = after >= 0 ? after : rateValue(s.settings.limitRateAfter)
        responseLimited = rateLimit > 0
        return rateLimit > 0
    }

    /// A `limit_rate`/`limit_rate_after` value for this request: with variables, their value
    /// read as a size (an invalid one is logged, and no limit applies, as nginx).
    func rateValue(_ v: RateSize?) -> Int {
        switch v {
        case nil: return 0
        case .bytes(let n): return n
        case .variable(let t):
            let text = String(decoding: evaluate(t), as: UTF8.self)
            if ex.variableFailed { return 0 }
            guard let n = Values.size(text) else {
                log(.error, "invalid size \"\(text)\"")
                return 0
            }
            return n
        }
    }

    /// Counts `n` bytes written while limited and pauses as nginx does after a send.
    func rateSent(_ n: Int) {
        let before = ex.rate.sent
        ex.rate.sent += n
        let ms = RateLimit.delayAfterSending(rate: ex.rate.limit, after: ex.rate.after, sentBefore: before, sentNow: ex.rate.sent)
        if ms > 0 { rateDelay(ms) }
    }

    /// Waits on the connection's timer; send_timeout does not run meanwhile.
    func rateDelay(_ ms: Int) {
        ex.rate.delayed = true
        worker.loop.setDeadline(self, afterMillis: ms)
    }

    /// The rate timer fired (`clientTimedOut`): writing resumes. Returns false if it was not waiting.
    func rateTimerFired() -> Bool {
        guard let ex, ex.rate.delayed else { return false }
        ex.rate.delayed = false
        writable = true // nginx retries the write; a socket still full says so again
        drive()
        return true
    }

    /// `outBuf` to the client under `limit_rate`: `flushOut`'s limited twin.
    func flushOutLimited(more: Bool) -> Bool {
        while !outBuf.isEmpty {
            guard let cap = rateAllowance() else { return false }
            guard writable else {
                worker.loop.setDeadline(self, afterMillis: settings.resolved.sendTimeoutMs)
                return false
            }
            let count = min(outBuf.readable, cap)
            do {
                switch try transport.write(fd, outBuf.readPointer, count, more: more || count < outBuf.readable) {
                case .done(let n):
                    outBuf.readIndex += n
                    rateSent(n)
                case .wouldBlock:
                    writable = false
                }
            } catch {
                close()
                return false
            }
        }
        outBuf.clear()
        return true
    }

    /// `X-Accel-Limit-Rate: N` from the upstream (bytes per second), unless ignored.
    func acceptAccelLimitRate(_ value: UnsafeRawBufferPointer.SubSequence) {
        if settings.resolved.proxyIgnoreHeaders.contains(.xAccelLimitRate) { return }
        var n = 0
        guard !value.isEmpty else { return }
        for c in value {
            guard c >= 0x30 && c <= 0x39, n < Int.max / 100 else { return }
            n = n * 10 + Int(c - 0x30)
        }
        if responseLimited == nil {
            let after = settings.resolved.limitRateAfter
            ex.rate.after = after >= 0 ? after : rateValue(settings.limitRateAfter)
        }
        ex.rate.limit = n
        responseLimited = n > 0
    }
}
