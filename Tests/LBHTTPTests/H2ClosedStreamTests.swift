import Testing
@testable import LBHTTP

/// Frames on streams that are already closed: never free, so a flood of them ends like the
/// other control-frame floods.
@Suite struct H2ClosedStreamTests {
    /// 40 streams answered in full (more than the connection remembers as recently reset), then
    /// empty DATA frames on them in turn: each used to earn an RST_STREAM STREAM_CLOSED for
    /// nothing; now each costs the control-frame budget.
    @Test func emptyDataOnAnsweredStreamsCostsTheControlFrameBudget() {
        var config = H2Config()
        config.controlFrameBudget = 100
        var c = TestClient(config: config)
        let ids = (0..<40).map { UInt32(1 + 2 * $0) }
        for id in ids {
            c.send(c.headers(id, TestClient.get()))
            c.conn.sendHeaders(streamID: id, status: 204, fields: [], endStream: true)
        }
        _ = c.output()
        #expect(c.conn.activeStreams == 0)
        var seen: [Seen] = []
        var resets = 0
        for _ in 0..<5 {
            for id in ids where !c.conn.isClosed {
                seen += c.send(rawFrame(.data, stream: id, []))
                resets += c.outputSummary().filter { $0.hasPrefix("rstStream") }.count
            }
        }
        #expect(seen == [.goaway(.enhanceYourCalm)])
        #expect(resets <= 100, "\(resets) RST_STREAM frames for a budget of 100")
    }

    /// DATA still in flight when we ended the stream early (RST_STREAM NO_ERROR) is ignored, and
    /// costs nothing when it carries octets (a client that was uploading is not a flood).
    @Test func bodyInFlightAfterAnEarlyResponseIsIgnoredFreely() {
        var config = H2Config()
        config.controlFrameBudget = 10
        var c = TestClient(config: config)
        c.send(c.headers(1, TestClient.post(), endStream: false))
        c.conn.sendHeaders(streamID: 1, status: 413, fields: [], endStream: true)
        #expect(c.outputSummary() == ["headers 1 END_STREAM", "rstStream 1 noError"])
        var seen: [Seen] = []
        for _ in 0..<50 { seen += c.send(rawFrame(.data, stream: 1, [1, 2, 3])) }
        #expect(seen.isEmpty)
        #expect(!c.conn.isClosed)
        #expect(c.outputSummary().allSatisfy { $0.hasPrefix("windowUpdate 0") })
    }
}
