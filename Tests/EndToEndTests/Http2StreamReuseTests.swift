import Testing

/// A session reuses the objects of ended streams for its next streams (H2Session.spareStreams):
/// nothing of one stream may reach the next. In `Http2Tests`'s serialized suite.
extension Http2Tests {
    /// One stream at a time on one connection, so that each new stream finds the last one's
    /// object free: a POST whose body comes chunk-framed from its stream (no content-length;
    /// buffered by the proxy, sent with one), a GET without a body to the
    /// same upstream path, a local `return`. Each upload answer must show exactly this stream's
    /// body (a GET after a POST: none, not chunked), each response its own status and body.
    @Test func aStreamKeepsNothingOfTheStreamBeforeItOnTheSameConnection() throws {
        let (lb, backend, _) = try Http2Tests.start()
        defer { withExtendedLifetime(backend) {} }
        let rounds = 6
        let out = try h2client(["reuse", "\(lb.port)", "\(rounds)"])
        var expected: [String] = []
        for i in 0..<rounds {
            expected.append("200:\(7 * i + 3):None:same") // buffered: sent with content-length
            expected.append("200:0:None:same")
            expected.append("200:http HTTP/2.0 h2c")
        }
        #expect(out == expected.joined(separator: " "), "\(out)")
    }
}
