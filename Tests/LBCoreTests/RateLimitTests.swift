import Testing
@testable import LBCore

/// `limit_rate` arithmetic, as ngx_http_write_filter_module.c computes it, for
/// `limit_rate 200k; limit_rate_after 100k;` (204800 and 102400 bytes).
struct RateLimitTests {
    static let rate = 204_800
    static let after = 102_400

    @Test func firstSecondAllowsOneSecondOfRatePlusTheFreeBytes() {
        #expect(RateLimit.allowance(rate: Self.rate, after: Self.after, elapsedSeconds: 0, sent: 0) == .send(307_200))
    }

    @Test func overdrawnConnectionWaitsForTheDeficitAtTheRatePlusOneMillisecond() {
        // 200 bytes over in second 0: -(-200) * 1000 / 204800 + 1 = 1 ms.
        #expect(RateLimit.allowance(rate: Self.rate, after: Self.after, elapsedSeconds: 0, sent: 307_400) == .wait(1))
        // A whole second's worth over: 1000 + 1 ms.
        #expect(RateLimit.allowance(rate: Self.rate, after: Self.after, elapsedSeconds: 0, sent: 512_000) == .wait(1001))
        // Exactly at the limit is not an allowance (nginx tests `limit <= 0`).
        #expect(RateLimit.allowance(rate: Self.rate, after: Self.after, elapsedSeconds: 0, sent: 307_200) == .wait(1))
    }

    @Test func eachElapsedSecondAddsOneSecondOfRate() {
        #expect(RateLimit.allowance(rate: Self.rate, after: Self.after, elapsedSeconds: 1, sent: 307_400) == .send(204_600))
        #expect(RateLimit.allowance(rate: Self.rate, after: Self.after, elapsedSeconds: 4, sent: 307_400) == .send(204_600 + 3 * 204_800))
    }

    @Test func sendingPausesForTheBytesPastLimitRateAfter() {
        // 307400 bytes sent from 0: 205000 of them past the free 102400 → 1000 ms (integer ms).
        #expect(RateLimit.delayAfterSending(rate: Self.rate, after: Self.after, sentBefore: 0, sentNow: 307_400) == 1000)
        // Entirely within limit_rate_after: no pause.
        #expect(RateLimit.delayAfterSending(rate: Self.rate, after: Self.after, sentBefore: 0, sentNow: 102_400) == 0)
        // Less than a millisecond's worth rounds down to none, as nginx's integer division.
        #expect(RateLimit.delayAfterSending(rate: Self.rate, after: 0, sentBefore: 1000, sentNow: 1100) == 0)
        #expect(RateLimit.delayAfterSending(rate: Self.rate, after: 0, sentBefore: 0, sentNow: 204_800) == 1000)
    }

    @Test func withoutLimitRateAfterEveryByteCounts() {
        #expect(RateLimit.allowance(rate: 1000, after: 0, elapsedSeconds: 0, sent: 0) == .send(1000))
        #expect(RateLimit.allowance(rate: 1000, after: 0, elapsedSeconds: 0, sent: 1500) == .wait(501))
    }
}
