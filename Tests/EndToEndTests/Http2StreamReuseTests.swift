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

extension Http2Tests {
    /// A finished exchange is reset and kept by the worker for the next request of any stream
    /// or connection (`ClientConnection.endExchange`, `Exchange.reset`), and a session reuses an
    /// ended stream's connection for a later stream (`H2Stream.parked`): each request leaves
    /// state behind — a `set` variable and an added header, a real client address, rewritten
    /// arguments, a request field, an error_page's status — that the next must not see, whether
    /// it comes on the same connection (`sequence`), on another one (`alternate`: two
    /// connections in turn), or as a plain HTTP/1.1 request after them.
    @Test(arguments: ["sequence", "alternate"])
    func aReusedExchangeKeepsNothingOfTheRequestBeforeIt(_ order: String) throws {
        let (lb, backend, _) = try Http2Tests.start(server: """
            location /set { set $v "leak"; add_header x-one one; return 200 "v=$v"; }
            location /get { return 200 "v=[$v] a=[$http_x_a] ra=[$remote_addr] args=[$args] uri=[$uri]"; }
            set_real_ip_from 127.0.0.1;
            real_ip_header x-real;
            location /rip { return 200 "ra=[$remote_addr]"; }
            location /rw { rewrite ^ /get?changed=1 last; }
            location /err { error_page 404 =299 /get; return 404; }
            """)
        defer { withExtendedLifetime(backend) {} }
        let out = try h2client([order, "\(lb.port)", "/set", "/get", "/rip|x-real:10.9.9.9", "/get", "/rw", "/get",
                                "/get|x-a:1", "/get", "/err", "/get"])
        let clean = "200 v=[] a=[] ra=[127.0.0.1] args=[] uri=[/get] []"
        #expect(out.components(separatedBy: " ; ") == [
            "200 v=leak [x-one:one]", clean,
            "200 ra=[10.9.9.9] []", clean,
            "200 v=[] a=[] ra=[127.0.0.1] args=[changed=1] uri=[/get] []", clean,
            "200 v=[] a=[1] ra=[127.0.0.1] args=[] uri=[/get] []", clean,
            "299 v=[] a=[] ra=[127.0.0.1] args=[] uri=[/get] []", clean,
        ], "\(out)")
        // An HTTP/1.1 request after an HTTP/2 stream that set the real address.
        _ = try h2client(["sequence", "\(lb.port)", "/rip|x-real:10.9.9.9"])
        let plain = try RawClient(port: lb.port).get("/get")
        #expect(plain.status == 200 && plain.text == "v=[] a=[] ra=[127.0.0.1] args=[] uri=[/get]", "\(plain.text)")
    }
}
