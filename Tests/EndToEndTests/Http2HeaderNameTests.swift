import Foundation
import Testing

/// `underscores_in_headers` and `ignore_invalid_headers` judge the names of an HTTP/2 request's
/// fields as they judge HTTP/1.1 header lines (the head is laid out from the fields without a
/// parse; the server's rules drop what they refuse when the stream's request begins).
@Suite(.serialized) struct Http2HeaderNameTests {
    @Test func headerNameRulesApplyToHTTP2FieldsAsToHTTP11Lines() throws {
        let underscores = freePort(), ignoreOff = freePort()
        let lb = try LB("""
            events {}
            http {
              access_log off;
              server { listen 127.0.0.1:{port} http2; location /h { return 200 "[$http_x_foo][$http_x_b_ar][$http_x_c_d]\\n"; } }
              server { listen 127.0.0.1:\(underscores) http2; underscores_in_headers on;
                       location /h { return 200 "[$http_x_foo][$http_x_b_ar][$http_x_c_d]\\n"; } }
              server { listen 127.0.0.1:\(ignoreOff) http2; ignore_invalid_headers off;
                       location /h { return 200 "[$http_x_foo][$http_x_b_ar][$http_x_c_d]\\n"; } }
            }
            """, waitReady: false)
        #expect(waitForPort(lb.port) && waitForPort(underscores) && waitForPort(ignoreOff))
        let fields = ["-H", "X_Foo: u", "-H", "X-B_ar: v", "-H", "X.C@D: w"]
        func get(_ port: Int, http2: Bool) throws -> String {
            try curl([http2 ? "--http2-prior-knowledge" : "--http1.1", "-w", "%{http_version}"] + fields + ["http://127.0.0.1:\(port)/h"]).out
        }
        for http2 in [true, false] {
            let v = http2 ? "2" : "1.1"
            #expect(try get(lb.port, http2: http2) == "[][][]\n" + v)
            #expect(try get(underscores, http2: http2) == "[u][v][]\n" + v)
            #expect(try get(ignoreOff, http2: http2) == "[u][v][]\n" + v)
        }
    }
}
