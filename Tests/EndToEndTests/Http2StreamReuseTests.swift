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
    /// A session reuses an ended stream's connection and its exchange for a later stream
    /// (`H2Stream.parked`, the worker's `spareExchanges`, `Exchange.reset`): one stream at a
    /// time on one connection, each request leaving state behind that the next must not see —
    /// a `set` variable and an added header, a real client address, rewritten arguments, a
    /// request field, an error_page's status — and the next showing its own.
    @Test func aReusedStreamConnectionKeepsNothingOfTheRequestBeforeIt() throws {
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
        let out = try h2client(["sequence", "\(lb.port)", "/set", "/get", "/rip|x-real:10.9.9.9", "/get", "/rw", "/get",
                                "/get|x-a:1", "/get", "/err", "/get"])
        let clean = "200 v=[] a=[] ra=[127.0.0.1] args=[] uri=[/get] []"
        #expect(out.components(separatedBy: " ; ") == [
            "200 v=leak [x-one:one]", clean,
            "200 ra=[10.9.9.9] []", clean,
            "200 v=[] a=[] ra=[127.0.0.1] args=[changed=1] uri=[/get] []", clean,
            "200 v=[] a=[1] ra=[127.0.0.1] args=[] uri=[/get] []", clean,
            "299 v=[] a=[] ra=[127.0.0.1] args=[] uri=[/get] []", clean,
        ], "\(out)")
    }

    /// A finished exchange goes to the worker's pool and the next request of any connection
    /// takes it (`ClientConnection.endExchange`): two connections in turn, each request leaving
    /// state behind that the other connection's next request must not see, and a plain
    /// HTTP/1.1 request between them taking the exchange an HTTP/2 stream left.
    @Test func anExchangeAStreamLeftKeepsNothingForAnotherConnection() throws {
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
        let out = try h2client(["alternate", "\(lb.port)", "/set", "/get", "/rip|x-real:10.9.9.9", "/get", "/rw", "/get",
                                "/get|x-a:1", "/get", "/err", "/get"])
        let clean = "200 v=[] a=[] ra=[127.0.0.1] args=[] uri=[/get] []"
        #expect(out.components(separatedBy: " ; ") == [
            "200 v=leak [x-one:one]", clean,
            "200 ra=[10.9.9.9] []", clean,
            "200 v=[] a=[] ra=[127.0.0.1] args=[changed=1] uri=[/get] []", clean,
            "200 v=[] a=[1] ra=[127.0.0.1] args=[] uri=[/get] []", clean,
            "299 v=[] a=[] ra=[127.0.0.1] args=[] uri=[/get] []", clean,
        ], "\(out)")
        // An HTTP/1.1 request after an HTTP/2 stream that set all of it.
        _ = try h2client(["sequence", "\(lb.port)", "/rip|x-real:10.9.9.9"])
        let plain = try RawClient(port: lb.port).get("/get")
        #expect(plain.status == 200 && plain.text == "v=[] a=[] ra=[127.0.0.1] args=[] uri=[/get]", "\(plain.text)")
    }
}
