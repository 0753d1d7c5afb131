@testable import LBConfig
@testable import LBCore
@testable import LBHTTP
import LBIO
import Testing

/// A finished exchange is kept for a next request (an HTTP/2 stream connection's for its next
/// stream, an HTTP/1.1 connection's by the worker for any connection: `ClientConnection.endExchange`);
/// `Exchange.reset` must make it a new one, field by field.
@Suite struct ExchangeResetTests {
    static let server: VirtualServer = {
        let text = "events {} http { server { listen 127.0.0.1:1; location / { return 200; } location /b { return 204; } } }"
        return try! ConfigLoader(prefix: "/tmp").load(text: text).table.servers[0]
    }()

    /// Every stored field of an exchange and its value, as text (a class reference says
    /// whether it is there, an array its contents, not its capacity).
    static func fields(_ e: Exchange) -> [(String, String)] {
        Mirror(reflecting: e).children.map { ($0.label ?? "?", describe($0.value)) }
    }

    /// A value as text; an object (or an optional one) by identity.
    static func describe(_ v: Any) -> String {
        let m = Mirror(reflecting: v)
        if m.displayStyle == .class { return "\(type(of: v)) \(ObjectIdentifier(v as AnyObject))" }
        if m.displayStyle == .optional, let inner = m.children.first, Mirror(reflecting: inner.value).displayStyle == .class {
            return "some " + describe(inner.value)
        }
        return String(reflecting: v)
    }

    /// An exchange with every field changed from what a new one has.
    static func used() -> Exchange {
        let e = Exchange(server: server, startMicros: 1)
        e.location = server.locations.find(Array("/b".utf8).withUnsafeBytes { $0 }).location ?? server.fallback
        e.uri = Array("/old".utf8)
        e.uriChangesLeft = 3
        e.errorPageUsed = true
        e.status = 502
        e.overrideStatus = 404
        e.bodyBytesSent = 10
        e.rate.limit = 100
        e.rate.sent = 5
        e.responseHeadBytes = 99
        e.headerStarted = true
        e.head.expires = true
        e.head.addHeaders = true
        e.head.connection = .close
        e.headAt = 4
        e.headFieldsAt = 20
        e.requestBody = .length(5)
        e.requestBodyForwarded = 5
        e.requestBodyComplete = false
        e.bodyLimit = 1024
        e.bodyReceived = 5
        e.mirrorResume = .content
        e.clientCloseNoted = true
        e.responder = .local
        e.tried.insert(3)
        e.tries = 2
        e.firstTryMillis = 7
        e.upstreamURI = Array("/up?q=1".utf8)
        e.sentConnectionClose = false
        e.upstreamLog = [UpstreamAttempt(addr: "127.0.0.1:9001", status: 502, time: 1, connect: 1, header: -1, length: 0, sent: 10)]
        e.attempt = Attempt(peer: 1, text: "127.0.0.1:9001", start: 3, headLimit: 100)
        e.attempt.response.status = 502
        e.attempt.response.headers = [HeaderField(nameStart: 0, nameEnd: 4, valueStart: 6, valueEnd: 9)]
        e.gzFinished = true
        e.gzipSizes = (10, 5)
        e.cacheStatus = Array("HIT".utf8)
        e.backgroundUpdatePending = true
        e.inBackground = true
        e.clientGone = true
        e.expiresMtime = 12
        e.expiresEvaluated = .some(nil)
        e.realClient = SocketAddress(ip: "10.0.0.1", port: 1).map(PeerAddress.init)
        e.realIPChecked = true
        e.parentExchange = Exchange(server: server, startMicros: 0)
        e.authVariables = [(name: "user", value: Array("x".utf8))]
        e.contentTypeOverride = "text/x"
        e.keptHeaders = Array("WWW-Authenticate: Basic\r\n".utf8)
        e.rewrite = RewriteState()
        e.rewrite?.vars["x"] = [1]
        e.rewrite?.setCaptures([1, 2], [0..<2], names: [])
        e.rewrite?.args = [3]
        e.rewrite?.uriChanged = true
        e.rewrite?.rewritten = true
        e.rewrite?.validLocation = false
        e.rewrite?.proxyURIAsMade = true
        e.spareRewrite = nil // set by reset below
        e.mapsInProgress = ["m"]
        e.variableCache = ["v": [1]]
        e.variableFailed = true
        e.sentHead = [1, 2]
        e.upstreamHead = [3, 4]
        return e
    }

    @Test func aResetExchangeIsANewOneButForItsArraysCapacity() throws {
        let e = Self.used()
        let dirty = Self.fields(e)
        let uriCapacity = e.uri.capacity, headersCapacity = e.attempt.response.headers.capacity
        e.reset(server: Self.server, startMicros: 2)
        let fresh = Self.fields(Exchange(server: Self.server, startMicros: 2))
        let reset = Self.fields(e)
        #expect(reset.map(\.0) == fresh.map(\.0))
        for (r, f) in zip(reset, fresh) where r.0 != "spareRewrite" { #expect(r.1 == f.1, "\(r.0) after reset: \(r.1), new: \(f.1)") }
        // The rewrite state is kept for the next request, reset as a new one.
        let spare = try #require(e.spareRewrite)
        #expect(Mirror(reflecting: spare).children.map { String(reflecting: $0.value) }
                == Mirror(reflecting: RewriteState()).children.map { String(reflecting: $0.value) })
        // `used()` changes every field but the server (the same one) and those holding runtime
        // objects a unit test cannot make (reset sets them to nil): a field it leaves alone
        // proves nothing about `reset`.
        let runtimeObjects: Set = ["server", "spareRewrite", "body", "target", "upstreamRuntime", "up", "gz", "sub", "cache", "cacheWriter", "accessState"]
        for (d, f) in zip(dirty, fresh) where !runtimeObjects.contains(d.0) { #expect(d.1 != f.1, "used() leaves \(d.0) as a new exchange has it") }
        #expect(e.uri.capacity >= uriCapacity && e.attempt.response.headers.capacity >= headersCapacity)
    }

    /// A reset exchange the worker kept, taken by a connection of another server (`begin`): a
    /// new exchange of that server, its location that server's.
    @Test func aKeptExchangeBegunForAnotherServerIsANewOneOfIt() {
        let other = try! ConfigLoader(prefix: "/tmp").load(text: "events {} http { server { listen 127.0.0.1:2; location / { return 200; } } }").table.servers[0]
        let e = Self.used()
        e.reset(server: Self.server, startMicros: 0)
        e.begin(server: other, startMicros: 7)
        let fresh = Self.fields(Exchange(server: other, startMicros: 7))
        for (r, f) in zip(Self.fields(e), fresh) where r.0 != "spareRewrite" { #expect(r.1 == f.1, "\(r.0) after begin: \(r.1), new: \(f.1)") }
        e.reset(server: other, startMicros: 0)
        e.begin(server: Self.server, startMicros: 8)
        #expect(e.server === Self.server && e.location === Self.server.fallback && e.startMicros == 8)
    }

    /// The fields `reset` sets. A field added to `Exchange` fails this test until `reset` (and
    /// `used()` above) set it too.
    @Test func resetKnowsEveryFieldOfAnExchange() {
        let labels = Self.fields(Exchange(server: Self.server, startMicros: 0)).map(\.0)
        #expect(labels == [
            "server", "location", "uri", "uriChangesLeft", "errorPageUsed", "startMicros", "status", "overrideStatus",
            "bodyBytesSent", "rate", "responseHeadBytes", "headerStarted", "head", "headAt", "headFieldsAt", "requestBody",
            "requestBodyForwarded", "requestBodyComplete", "bodyLimit", "bodyReceived", "body", "mirrorResume",
            "clientCloseNoted", "responder", "target", "upstreamRuntime", "up", "tried", "tries", "firstTryMillis",
            "upstreamURI", "sentConnectionClose", "upstreamLog", "attempt", "gz", "gzFinished", "gzipSizes", "sub",
            "cacheStatus", "cache", "cacheWriter", "backgroundUpdatePending", "inBackground", "clientGone", "expiresMtime",
            "expiresEvaluated", "realClient", "realIPChecked", "accessState", "parentExchange", "authVariables",
            "contentTypeOverride", "keptHeaders", "rewrite", "spareRewrite", "mapsInProgress", "variableCache", "variableFailed",
            "sentHead", "upstreamHead",
        ], "\(labels)")
    }
}

extension ExchangeResetTests {
    /// The fields `RewriteState.reset` sets: a field added to the class fails this test until
    /// `reset` (and the test above) set it too.
    @Test func rewriteStateResetKnowsEveryField() {
        #expect(Mirror(reflecting: RewriteState()).children.map { $0.label ?? "?" }
                == ["vars", "captureSubject", "captures", "args", "uriChanged", "rewritten", "validLocation", "proxyURIAsMade"])
    }
}
