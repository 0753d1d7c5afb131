import LBIO
import Testing

/// The adaptive busy-poll window (haltpoll's policy): grows after short blocks, shrinks after
/// idle gaps, never polls when disabled.
@Suite struct BusyPollTests {
    @Test func growsFromZeroOnShortBlocksUpToTheLimit() {
        var p = BusyPoll(maxMicros: 50)
        #expect(p.windowMicros == 0)
        p.blocked(for: 30)
        #expect(p.windowMicros == 12)
        p.blocked(for: 30)
        #expect(p.windowMicros == 24)
        p.blocked(for: 10)
        #expect(p.windowMicros == 48)
        p.blocked(for: 50)
        #expect(p.windowMicros == 50)
        p.blocked(for: 1)
        #expect(p.windowMicros == 50)
    }

    @Test func shrinksToZeroOnIdleGaps() {
        var p = BusyPoll(maxMicros: 50)
        for _ in 0..<5 { p.blocked(for: 5) }
        #expect(p.windowMicros == 50)
        p.blocked(for: 1_000)
        #expect(p.windowMicros == 25)
        p.blocked(for: 51)
        #expect(p.windowMicros == 12)
        p.blocked(for: 1_000_000)
        #expect(p.windowMicros == 0)
        // An idle loop (1 s blocks on its timer) stays at zero.
        for _ in 0..<10 { p.blocked(for: 1_000_000) }
        #expect(p.windowMicros == 0)
    }

    @Test func disabledNeverPolls() {
        var p = BusyPoll(maxMicros: 0)
        #expect(!p.enabled)
        for _ in 0..<10 { p.blocked(for: 1) }
        #expect(p.windowMicros == 0)
        #expect(BusyPoll(maxMicros: -5).maxMicros == 0)
    }
}
