import Testing
import LBConfig
@testable import LBCore

/// The proxy's decisions without sockets: retries, relay framing, upstream keep-alive.
struct ProxyPolicyTests {
    static let defaults = ProxyPolicy.RetryLimits(conditions: [.error, .timeout], maxTries: 0, timeoutMs: 0)
    static func facts(_ failure: UpstreamConditions, tried: Int = 1, live: Int = 3, tries: Int = 1, elapsedMs: Int64 = 0,
                      sent: Bool = false, idempotent: Bool = true, replayable: Bool = true) -> ProxyPolicy.RetryFacts {
        .init(failure: failure, tried: tried, live: live, tries: tries, elapsedMs: elapsedMs, requestSent: sent,
              idempotent: idempotent, bodyReplayable: replayable)
    }

    @Test func retriesOnlyTheConfiguredConditions() {
        #expect(ProxyPolicy.mayRetry(Self.facts(.error), Self.defaults))
        #expect(ProxyPolicy.mayRetry(Self.facts(.timeout), Self.defaults))
        #expect(!ProxyPolicy.mayRetry(Self.facts(.invalidHeader), Self.defaults))
        #expect(!ProxyPolicy.mayRetry(Self.facts(.http502), Self.defaults))
        #expect(!ProxyPolicy.mayRetry(Self.facts([]), Self.defaults))
        let off = ProxyPolicy.RetryLimits(conditions: [], maxTries: 0, timeoutMs: 0)
        #expect(!ProxyPolicy.mayRetry(Self.facts(.error), off))
    }

    @Test func limitsEndRetries() {
        #expect(!ProxyPolicy.mayRetry(Self.facts(.error, tried: 3, live: 3), Self.defaults))
        let tries = ProxyPolicy.RetryLimits(conditions: [.error], maxTries: 2, timeoutMs: 0)
        #expect(ProxyPolicy.mayRetry(Self.facts(.error, tries: 1), tries))
        #expect(!ProxyPolicy.mayRetry(Self.facts(.error, tries: 2), tries))
        let time = ProxyPolicy.RetryLimits(conditions: [.error], maxTries: 0, timeoutMs: 500)
        #expect(ProxyPolicy.mayRetry(Self.facts(.error, elapsedMs: 499), time))
        #expect(!ProxyPolicy.mayRetry(Self.facts(.error, elapsedMs: 500), time))
    }

    @Test func aSentNonIdempotentRequestIsRetriedOnlyWithNonIdempotent() {
        #expect(ProxyPolicy.mayRetry(Self.facts(.error, sent: false, idempotent: false), Self.defaults))
        #expect(!ProxyPolicy.mayRetry(Self.facts(.error, sent: true, idempotent: false), Self.defaults))
        let ni = ProxyPolicy.RetryLimits(conditions: [.error, .nonIdempotent], maxTries: 0, timeoutMs: 0)
        #expect(ProxyPolicy.mayRetry(Self.facts(.error, sent: true, idempotent: false), ni))
        // A body that is gone cannot be sent again.
        #expect(!ProxyPolicy.mayRetry(Self.facts(.error, sent: true, replayable: false), Self.defaults))
    }

    @Test func keywordsCompileToConditions() {
        #expect(UpstreamConditions(words: ["error", "timeout"]) == [.error, .timeout])
        #expect(UpstreamConditions(words: ["http_502", "non_idempotent"]) == [.http502, .nonIdempotent])
        #expect(UpstreamConditions(words: []) == [])
        #expect(UpstreamConditions.status(503) == .http503)
        #expect(UpstreamConditions.status(200) == [])
        #expect(UpstreamConditions.status(501) == [])
    }

    @Test(arguments: [
        // (bodyless, chunked, length, http10, gzip) → framing, dechunk, chunkedOut, keepAlive
        (true, false, 10, false, false, ProxyPolicy.RelayPlan(framing: .none, dechunk: false, chunkedOut: false, keepAlive: true)),
        (false, false, 10, false, false, .init(framing: .length(10), dechunk: false, chunkedOut: false, keepAlive: true)),
        (false, true, nil, false, false, .init(framing: .chunked, dechunk: false, chunkedOut: true, keepAlive: true)),
        (false, true, nil, true, false, .init(framing: .chunked, dechunk: true, chunkedOut: false, keepAlive: false)),
        (false, true, nil, false, true, .init(framing: .chunked, dechunk: true, chunkedOut: true, keepAlive: true)),
        (false, false, nil, false, false, .init(framing: .untilClose, dechunk: false, chunkedOut: false, keepAlive: false)),
        (false, false, nil, false, true, .init(framing: .untilClose, dechunk: false, chunkedOut: true, keepAlive: true)),
        (false, false, 10, false, true, .init(framing: .length(10), dechunk: false, chunkedOut: true, keepAlive: true)),
    ] as [(Bool, Bool, Int?, Bool, Bool, ProxyPolicy.RelayPlan)])
    func relayFraming(_ bodyless: Bool, _ chunked: Bool, _ length: Int?, _ http10: Bool, _ gzip: Bool, _ expected: ProxyPolicy.RelayPlan) {
        #expect(ProxyPolicy.relayPlan(bodyless: bodyless, upstreamChunked: chunked, contentLength: length, http10Client: http10,
                                      gzip: gzip, keepAliveAllowed: true) == expected)
        // A connection that must close stays closing whatever the framing.
        #expect(!ProxyPolicy.relayPlan(bodyless: bodyless, upstreamChunked: chunked, contentLength: length, http10Client: http10,
                                       gzip: gzip, keepAliveAllowed: false).keepAlive)
    }

    @Test func upstreamConnectionsArePooledOnlyWhenClean() {
        func reusable(_ change: (inout [String: Bool]) -> Void) -> Bool {
            var f = ["pool": true, "close": false, "http11": true, "sentClose": false, "complete": true, "unread": false, "closed": false]
            change(&f)
            return ProxyPolicy.upstreamReusable(pool: f["pool"]!, responseClose: f["close"]!, responseHTTP11: f["http11"]!,
                                                sentConnectionClose: f["sentClose"]!, requestComplete: f["complete"]!,
                                                unreadBytes: f["unread"]!, peerClosed: f["closed"]!)
        }
        #expect(reusable { _ in })
        for (key, bad) in [("pool", false), ("close", true), ("http11", false), ("sentClose", true), ("complete", false), ("unread", true), ("closed", true)] {
            #expect(!reusable { $0[key] = bad }, "\(key)")
        }
    }
}
