import Testing
@testable import LBConfig

/// `open_file_cache` and its three companions: nginx's parameters, errors and merge.
struct OpenFileCacheConfigTests {
    @Test func defaultsAreOffWithValidSixtySecondsMinUsesOneErrorsOff() throws {
        let loc = try #require(load(server("location / { }")).servers[0].locations.find("/"))
        #expect(loc.settings.resolved.openFileCache == nil)
        let on = try #require(load(server("open_file_cache max=100; location / { }")).servers[0].locations.find("/"))
        let s = try #require(on.settings.resolved.openFileCache)
        #expect(s.zone.max == 100 && s.zone.inactiveMs == 60_000 && s.validMs == 60_000 && s.minUses == 1 && !s.errors)
    }

    @Test func parametersInAnyOrderAndTheCompanionsAreRead() throws {
        let t = try load(server("""
            open_file_cache inactive=20s max=5; open_file_cache_valid 2m; open_file_cache_min_uses 3; open_file_cache_errors on;
            location / { }
            """))
        let s = try #require(t.servers[0].locations.find("/")?.settings.resolved.openFileCache)
        #expect(s.zone.max == 5 && s.zone.inactiveMs == 20_000 && s.validMs == 120_000 && s.minUses == 3 && s.errors)
    }

    @Test func locationsInheritingTheDirectiveShareOneCacheAndAnotherOccurrenceIsAnother() throws {
        let t = try load("""
            http {
             open_file_cache max=10;
             server { listen 8080;
              location /a { open_file_cache_valid 1s; }
              location /b { }
              location /c { open_file_cache max=10; }
              location /d { open_file_cache off; }
             }
            }
            """)
        let l = t.servers[0].locations
        let a = try #require(l.find("/a")?.settings.resolved.openFileCache)
        let b = try #require(l.find("/b")?.settings.resolved.openFileCache)
        let c = try #require(l.find("/c")?.settings.resolved.openFileCache)
        #expect(a.zone === b.zone, "one occurrence, one cache")
        #expect(a.validMs == 1000 && b.validMs == 60_000, "valid is the location's own")
        #expect(c.zone !== a.zone)
        #expect(l.find("/d")?.settings.resolved.openFileCache == nil)
    }

    @Test func offWinsWhereverItIsWritten() throws {
        for v in ["off", "off max=5", "max=5 off"] {
            let t = try load(server("open_file_cache \(v); location / { }"))
            #expect(t.servers[0].locations.find("/")?.settings.resolved.openFileCache == nil, "\(v)")
        }
    }

    /// Messages as `nginx -t` (1.22) words them.
    @Test(arguments: [
        ("open_file_cache max=0;", "invalid \"open_file_cache\" parameter \"max=0\" in t.conf:4"),
        ("open_file_cache max=x;", "invalid \"open_file_cache\" parameter \"max=x\" in t.conf:4"),
        ("open_file_cache max=;", "invalid \"open_file_cache\" parameter \"max=\" in t.conf:4"),
        ("open_file_cache foo;", "invalid \"open_file_cache\" parameter \"foo\" in t.conf:4"),
        ("open_file_cache max=10 inactive=500ms;", "invalid \"open_file_cache\" parameter \"inactive=500ms\" in t.conf:4"),
        ("open_file_cache max=1 inactive=;", "invalid \"open_file_cache\" parameter \"inactive=\" in t.conf:4"),
        ("open_file_cache inactive=20s;", "\"open_file_cache\" must have the \"max\" parameter in t.conf:4"),
        ("open_file_cache a b c;", "invalid number of arguments in \"open_file_cache\" directive in t.conf:4"),
        ("open_file_cache max=5;\nopen_file_cache off;", "\"open_file_cache\" directive is duplicate in t.conf:5"),
        ("open_file_cache_valid 500ms;", "\"open_file_cache_valid\" directive invalid value in t.conf:4"),
        ("open_file_cache_valid abc;", "\"open_file_cache_valid\" directive invalid value in t.conf:4"),
        ("open_file_cache_min_uses -1;", "\"open_file_cache_min_uses\" directive invalid number in t.conf:4"),
        ("open_file_cache_min_uses x;", "\"open_file_cache_min_uses\" directive invalid number in t.conf:4"),
        ("open_file_cache_errors maybe;", "invalid value \"maybe\" in \"open_file_cache_errors\" directive, it must be \"on\" or \"off\" in t.conf:4"),
    ])
    func errorsAreNginxs(_ directive: String, _ message: String) {
        #expect(loadError(server(directive)) == message)
    }

    @Test func whatNginxAcceptsLoads() throws {
        for d in ["open_file_cache max=10 inactive=1;", "open_file_cache inactive=0 max=1;", "open_file_cache max=5 max=6;",
                  "open_file_cache_valid 2;", "open_file_cache_min_uses 0;", "open_file_cache_events on;"] {
            #expect(loadError(server(d)) == "no error", "\(d)")
        }
    }
}
