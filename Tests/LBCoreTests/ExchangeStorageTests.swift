@testable import LBConfig
@testable import LBCore
@testable import LBHTTP
import Testing

/// A finished exchange hands its arrays' capacity to the next one (the worker keeps them, as it
/// keeps I/O buffers), and a new upstream try keeps the header array's capacity: never contents.
@Suite struct ExchangeStorageTests {
    static let server: VirtualServer = {
        let text = "events {} http { server { listen 127.0.0.1:1; location / { return 200; } } }"
        return try! ConfigLoader(prefix: "/tmp").load(text: text).table.servers[0]
    }()

    static func used() -> Exchange {
        let e = Exchange(server: server, startMicros: 1)
        e.uri = Array("/old/request".utf8)
        e.upstreamURI = Array("/old/upstream?q=1".utf8)
        e.upstreamLog = [UpstreamAttempt(addr: "127.0.0.1:9001", status: 502, time: 1, connect: 1, header: -1, length: 0, sent: 10)]
        e.attempt.response.headers = Array(repeating: HeaderField(nameStart: 0, nameEnd: 4, valueStart: 6, valueEnd: 9), count: 20)
        return e
    }

    @Test func aNewExchangeGetsTheCapacityButNoneOfTheContents() {
        let old = Self.used()
        let capacities = (old.uri.capacity, old.upstreamURI.capacity, old.upstreamLog.capacity, old.attempt.response.headers.capacity)
        var storage = old.takeStorage()
        #expect(old.uri.isEmpty && old.upstreamURI.isEmpty && old.upstreamLog.isEmpty && old.attempt.response.headers.isEmpty)

        let next = Exchange(server: Self.server, startMicros: 2)
        next.adopt(&storage)
        #expect(next.uri.isEmpty)
        #expect(next.upstreamURI.isEmpty)
        #expect(next.upstreamLog.isEmpty)
        #expect(next.attempt.response.headers.isEmpty)
        #expect(next.uri.capacity >= capacities.0)
        #expect(next.upstreamURI.capacity >= capacities.1)
        #expect(next.upstreamLog.capacity >= capacities.2)
        #expect(next.attempt.response.headers.capacity >= capacities.3)
        #expect(next.startMicros == 2 && next.status == 0 && next.tries == 0)
    }

    @Test func aRestartedTryIsFreshButForTheHeaderArraysCapacity() {
        var a = Attempt(peer: 3, text: "127.0.0.1:9003", start: 10, headLimit: 4096)
        a.response.headers = Array(repeating: HeaderField(nameStart: 0, nameEnd: 4, valueStart: 6, valueEnd: 9), count: 20)
        a.response.status = 502
        a.requestSent = true
        a.upstreamBodyBytes = 99
        a.failureReason = "connection refused"
        let capacity = a.response.headers.capacity

        a.restart(peer: 1, text: "127.0.0.1:9001", start: 20, headLimit: 8192)
        #expect(a.peerIndex == 1 && a.peerText == "127.0.0.1:9001" && a.attemptStart == 20)
        #expect(a.response.headers.isEmpty && a.response.headers.capacity >= capacity)
        #expect(a.response.status == 0)
        #expect(!a.requestSent && a.upstreamBodyBytes == 0 && a.failureReason.isEmpty)
        #expect(a.upScanner.maxHead == 8192)
    }
}
