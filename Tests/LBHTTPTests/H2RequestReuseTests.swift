import Testing
@testable import LBHTTP

/// A connection lays a new request out in a request object the runtime is done with
/// (`H2Connection.recycle`, `H2Request.reuse`): the result must be what a new object gives for the
/// same fields, whatever the object held before — another request's octets, head and flags, and
/// the stale head a stream connection's `moveHead` left in it.
struct H2RequestReuseTests {
    typealias Case = (String, [(String, String)], endStream: Bool)

    /// Everything a request carries, printed: two requests alike print alike.
    static func describe(_ r: H2Request) -> String {
        "\(r.streamID) \(r.endStream) \(r.chunked) \(r.unusualNames) \(r.scheme) \(r.bytes) \(String(reflecting: r.head))"
    }

    static func make(_ c: Case, streamID: UInt32, reusing spare: H2Request? = nil) throws -> Result<H2Request, HTTPError> {
        try H2RequestRules.request(H2RequestHeadTests.list(c.1), streamID: streamID, endStream: c.endStream, reusing: spare)
    }

    @Test(arguments: 0..<H2RequestHeadTests.cases.count)
    func aReusedRequestIsWhatANewOneIs(_ k: Int) throws {
        let next = H2RequestHeadTests.cases[k]
        let fresh = try Self.make(next, streamID: 7)
        var reusedSome = false
        for (j, before) in H2RequestHeadTests.cases.enumerated() {
            guard case .success(let old) = try Self.make(before, streamID: 1) else { continue }
            // As a stream connection takes the head: the object is left with the head the
            // connection had (here another request's, not cleared).
            let other = H2RequestHeadTests.cases[(j + 1) % H2RequestHeadTests.cases.count]
            var taken = RequestHead()
            if case .success(let o) = try Self.make(other, streamID: 3) { o.moveHead(into: &taken) }
            old.applyNameRules(HeaderNameRules())
            old.moveHead(into: &taken)
            let reused = try Self.make(next, streamID: 7, reusing: old)
            switch (fresh, reused) {
            case (.success(let a), .success(let b)):
                #expect(b === old, "the object is reused")
                #expect(Self.describe(b) == Self.describe(a), "\(next.0) after \(before.0)")
                reusedSome = true
            case (.failure(let a), .failure(let b)):
                #expect(a == b, "\(next.0) after \(before.0)")
            default:
                Issue.record("\(next.0) after \(before.0): \(reused) but new: \(fresh)")
            }
        }
        if case .success = fresh { #expect(reusedSome) }
    }

    /// The runtime's hand-back: kept while small.
    @Test func aConnectionKeepsSmallRequestsItsRuntimeGaveBack() throws {
        var c = H2Connection(config: H2Config())
        guard case .success(let small) = try Self.make(H2RequestHeadTests.cases[0], streamID: 1) else { return }
        c.recycle(small)
        #expect(c.spareRequests.count == 1)
        let big = TestClient.get() + [("x-big", String(repeating: "b", count: H2Connection.maxSpareRequestCapacity))]
        guard case .success(let large) = try Self.make(("big", big, true), streamID: 3) else { return }
        c.recycle(large)
        #expect(c.spareRequests.count == 1, "a large request's storage is not kept")
    }
}
