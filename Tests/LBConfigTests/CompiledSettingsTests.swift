import Testing
@testable import LBConfig

/// Settings are compiled at load: `try_files` entries parsed once, defaults resolved once,
/// keyword lists as bit sets, header names prepared once.
struct CompiledSettingsTests {
    @Test func tryFilesEntriesAreParsedAtLoad() throws {
        let t = try load(server("""
            location /a { try_files $uri $uri/ /index.php?$args; }
            location /b { try_files $uri @back; }
            location /c { try_files $uri =418; }
            location @back { return 204; }
            """))
        let a = try #require(t.servers[0].locations.find("/a")?.tryFiles)
        #expect(a.candidates.map(\.source) == ["$uri", "$uri/"])
        #expect(a.candidates.map(\.uri.source) == ["$uri", "$uri/"])
        guard case .uri(let u) = a.fallback else { Issue.record("fallback \(a.fallback)"); return }
        #expect(u.source == "/index.php?$args")
        guard case .named("back") = try #require(t.servers[0].locations.find("/b")?.tryFiles).fallback else {
            Issue.record("not the named fallback"); return
        }
        guard case .code(418) = try #require(t.servers[0].locations.find("/c")?.tryFiles).fallback else {
            Issue.record("not the code fallback"); return
        }
    }

    @Test func serverLevelTryFilesIsCompiledToo() throws {
        let t = try load(server("try_files $uri /fallback;"))
        let tf = try #require(t.servers[0].serverTryFiles)
        #expect(tf.entries == ["$uri", "/fallback"])
        guard case .uri(let u) = tf.fallback else { Issue.record("fallback \(tf.fallback)"); return }
        #expect(u.isLiteral)
    }

    @Test func invalidTryFilesEntryIsALoadErrorWithItsLine() {
        #expect(loadError(server("location / {\ntry_files ${uri $uri/ =404; }")) == "the closing bracket in \"uri\" variable is missing in t.conf:5")
        #expect(loadError(server("location / {\ntry_files $uri $nosuch; }")) == "unknown \"nosuch\" variable in t.conf:5")
        #expect(loadError(server("location / {\ntry_files $uri =99; }")) == "invalid code \"=99\" in t.conf:5")
        #expect(loadError(server("location / {\ntry_files $uri =4x4; }")) == "invalid code \"=4x4\" in t.conf:5")
    }
}
