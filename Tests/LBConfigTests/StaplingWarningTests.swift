import Testing

@testable import LBConfig

/// `ssl_stapling on` without `ssl_stapling_file` is ignored with a warning (lb does not fetch
/// OCSP responses); with a file, or off, there is none.
struct StaplingWarningTests {
    let server = SourceLocation(file: "lb.conf", line: 9, column: 1)

    func settings(_ directives: (inout TLSSettings) -> Void) -> TLSSettings {
        var s = TLSSettings()
        directives(&s)
        return s
    }

    @Test func staplingWithoutAFileWarnsAtTheDirective() {
        let at = SourceLocation(file: "lb.conf", line: 12, column: 5)
        let w = TLSContext.warnings(settings { $0.stapling = true; $0.staplingLocation = at }, at: server)
        #expect(w.map(\.message) == ["\"ssl_stapling\" ignored, lb does not fetch OCSP responses (use \"ssl_stapling_file\")"])
        #expect(w.first?.location == at)
    }

    @Test func anInheritedStaplingWarnsWhereTheHTTPLevelSaysIt() {
        let http = SourceLocation(file: "lb.conf", line: 3, column: 5)
        var s = TLSSettings()
        s.inherit(from: settings { $0.stapling = true; $0.staplingLocation = http })
        #expect(TLSContext.warnings(s, at: server).first?.location == http)
    }

    @Test func aFileOrStaplingOffWarnsNothing() {
        let file = TLSFile(path: "/x.der", location: server)
        #expect(TLSContext.warnings(settings { $0.stapling = true; $0.staplingFile = file; $0.staplingVerify = true }, at: server).isEmpty)
        #expect(TLSContext.warnings(settings { $0.stapling = false }, at: server).isEmpty)
        #expect(TLSContext.warnings(TLSSettings(), at: server).isEmpty)
    }
}
