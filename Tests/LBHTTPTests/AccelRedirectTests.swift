import Testing
@testable import LBHTTP

/// `X-Accel-Redirect` values as nginx's `ngx_http_parse_unsafe_uri` takes or refuses them.
@Suite struct AccelRedirectTests {
    func target(_ s: String) -> String? {
        AccelRedirect.target(Array(s.utf8)).map { String(decoding: $0.uri, as: UTF8.self) + "|" + String(decoding: $0.args, as: UTF8.self) }
    }

    @Test func urisAndArgumentsAreSplitAtTheFirstQuestionMark() {
        #expect(target("/protected/file.txt") == "/protected/file.txt|")
        #expect(target("/x?a=1&b=?") == "/x|a=1&b=?")
        #expect(target("/x?") == "/x|")
        #expect(target("relative/path") == "relative/path|")
    }

    @Test func escapesInTheURIAreDecodedAndArgumentsKeptAsWritten() {
        #expect(target("/a%20b/%41?q=%20") == "/a b/A|q=%20")
        #expect(target("/bad%zz") == "/badzz|")       // a % before a non-hex byte is dropped
        #expect(target("/bad%4z") == "/bad|")         // %X before a non-hex byte: both dropped
        #expect(target("/end%") == "/end|")
        #expect(target("/end%4") == "/end|")
    }

    @Test func unsafeValuesAreRefused() {
        for v in ["", "?x=1", "..", "../etc/passwd", "/a/../b", "/a/..", "/%2e%2e/etc", "/a%2f..%2fb", "/nul%00byte", "%2e%2e"] {
            #expect(target(v) == nil, "\(v)")
        }
        // Dots that are not a whole segment are fine.
        #expect(target("/a/..b/c.../...") == "/a/..b/c.../...|")
        #expect(target("/a/.hidden") == "/a/.hidden|")
    }
}
