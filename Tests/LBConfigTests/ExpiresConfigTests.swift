import Testing
@testable import LBConfig

/// `expires` read as nginx's `ngx_http_parse_expires` reads it, at load time for a literal and
/// per response for a value with variables (the errors as Debian's nginx 1.22 prints them).
@Suite struct ExpiresConfigTests {
    @Test func literalValuesParseAsNginxDoes() throws {
        #expect(try Expires.parse("epoch", modified: false) == .epoch)
        #expect(try Expires.parse("max", modified: false) == .max)
        #expect(try Expires.parse("off", modified: false) == .off)
        #expect(try Expires.parse("1h", modified: false) == .modified(ms: 3_600_000, fromModification: false))
        #expect(try Expires.parse("-1h", modified: false) == .modified(ms: -3_600_000, fromModification: false))
        #expect(try Expires.parse("+30m", modified: true) == .modified(ms: 1_800_000, fromModification: true))
        #expect(try Expires.parse("@15h30m", modified: false) == .timeOfDay(ms: 55_800_000))
        #expect(try Expires.parse("@24h", modified: false) == .timeOfDay(ms: 86_400_000))
    }

    @Test func refusedValuesCarryNginxReasons() {
        func reason(_ v: String, _ modified: Bool) -> String? {
            do { _ = try Expires.parse(v, modified: modified); return nil } catch { return error.reason }
        }
        #expect(reason("@1h", true) == "daily time cannot be used with \"modified\" parameter")
        #expect(reason("@25h", false) == "daily time value must be less than 24 hours")
        #expect(reason("epoch", true) == "invalid value") // the keywords are not times after `modified`
        #expect(reason("1ms", false) == "invalid value")
        #expect(reason("bogus", false) == "invalid value")
        #expect(reason("", false) == "invalid value")
    }

    @Test func directiveWithVariablesIsKeptForEachResponse() throws {
        let t = try load(server("""
        location /v { expires $arg_e; }
        location /m { expires modified $arg_e; }
        location /l { expires 1h; }
        """))
        let find = { (u: String) in t.servers[0].locations.find(u)!.settings.expires }
        guard case .variable(let tv, modified: false)? = find("/v") else { Issue.record("\(String(describing: find("/v")))"); return }
        #expect(tv.source == "$arg_e")
        guard case .variable(_, modified: true)? = find("/m") else { Issue.record("\(String(describing: find("/m")))"); return }
        #expect(find("/l") == .modified(ms: 3_600_000, fromModification: false))
    }

    @Test func badLiteralsAreRefusedWithFileAndLine() {
        #expect(loadError(server("expires modified @1h;")).contains("\"expires\" directive daily time cannot be used with \"modified\" parameter in t.conf:"))
        #expect(loadError(server("expires @25h;")).contains("\"expires\" directive daily time value must be less than 24 hours in t.conf:"))
        #expect(loadError(server("expires now 1h;")).contains("\"expires\" directive invalid value in t.conf:"))
        #expect(loadError(server("expires modified epoch;")).contains("\"expires\" directive invalid value in t.conf:"))
    }
}
