import Testing
@testable import LBConfig

/// `include` inside blocks whose lines are entries (`map`, `types`, `split_clients`), as nginx 1.22
/// reads them: the map and types handlers include files whose lines become entries of the block;
/// split_clients knows no include. Errors were compared with `nginx -t` on the same files.
@Suite struct MapIncludeTests {
    /// A user-agent map kept in its own file, as real configurations do.
    let bots = "~*googlebot yes;\n~*bingbot  yes;\ncurl curl;\n"

    func map(_ body: String, files: [String: String]) throws -> MapBlock {
        let t = try load("http {\n map $http_user_agent $bot {\n\(body)\n }\n server { listen 80; add_header X-Bot $bot; }\n}\n", files: files)
        return try #require(t.maps.first { $0.variable == "bot" })
    }

    @Test func anIncludedFilesLinesAreEntriesOfTheMap() throws {
        let m = try map("default no;\ninclude bots.map;\nWget wget;", files: ["/p/bots.map": bots])
        #expect(m.defaultValue.literalBytes == Array("no".utf8))
        #expect(m.regexes.map { $0.0.pattern } == ["googlebot", "bingbot"])
        #expect(m.regexes.allSatisfy { $0.0.caseless })
        // Strings match without case, as nginx's map hash: keys are kept lowercased.
        #expect(m.exact.keys.sorted() == ["curl", "wget"])
    }

    /// nginx compares the word, not how it was written: a quoted "include" includes too.
    @Test func aQuotedIncludeIncludesAsInNginx() throws {
        let m = try map("\"include\" bots.map;", files: ["/p/bots.map": bots])
        #expect(m.exact.keys.sorted() == ["curl"])
        #expect(try load("http {\n \"include\" m.conf;\n server { listen 80; add_header X $q; }\n}",
                         files: ["/p/m.conf": "map $uri $q { default 1; }"]).maps.count == 1)
    }

    @Test func globsIncludeEveryMatchInSortedOrderAndMayMatchNothing() throws {
        let files = ["/p/maps/b.map": "b 2;", "/p/maps/a.map": "a 1;\ndefault d;"]
        let m = try map("include maps/*.map;\ninclude none/*.map;", files: files)
        #expect(m.exact.keys.sorted() == ["a", "b"])
        #expect(m.defaultValue.literalBytes == Array("d".utf8))
        // Absolute paths too; and an included file may include again.
        let n = try map("include /etc/lb/outer.map;", files: ["/etc/lb/outer.map": "x 1;\ninclude inner.map;", "/p/inner.map": "y 2;"])
        #expect(n.exact.keys.sorted() == ["x", "y"])
    }

    /// Each error names the file and line where nginx names it.
    @Test(arguments: [
        // A bad entry inside the included file: that file's own line.
        ("include bots.map;", "a b c;", "invalid number of the map parameters in /p/bots.map:1"),
        ("include bots.map;", "a 1;\nb 2;\na 3;", "conflicting parameter \"a\" in /p/bots.map:3"),
        ("curl 1;\ninclude bots.map;", "CURL 2;", "conflicting parameter \"curl\" in /p/bots.map:1"),
        ("default x;\ninclude bots.map;", "default y;", "duplicate default map parameter in /p/bots.map:1"),
        ("include bots.map;", "a b", "unexpected end of file, expecting \";\" or \"}\" in /p/bots.map:1"),
        ("include bots.map;", "a b; }", "unexpected \"}\" in /p/bots.map:1"),
        ("include bots.map;", "a { b; }", "unexpected \"{\" in /p/bots.map:1"),
        ("include bots.map;", "~(a b;", "pcre2_compile() failed: missing closing parenthesis in \"(a\" in /p/bots.map:1"),
        ("include bots.map;", "a $nope;", "unknown \"nope\" variable in /p/bots.map:1"),
        // The include itself: where it is written.
        ("include missing.map;", "", "open() \"/p/missing.map\" failed (2: No such file or directory) in t.conf:3"),
        // `include` in any other shape is a map entry of the wrong shape, as nginx's map handler says.
        ("include bots.map extra;", "", "invalid number of the map parameters in t.conf:3"),
        ("include;", "", "invalid number of the map parameters in t.conf:3"),
        // An include cycle through map entries is reported, not followed (nginx follows it until
        // it runs out of file descriptors).
        ("include bots.map;", "a 1;\ninclude bots.map;", "include cycle: \"/p/bots.map\" -> \"/p/bots.map\" in /p/bots.map:2"),
    ])
    func errorsPointAtTheirFileAndLine(body: String, file: String, expected: String) {
        #expect(loadError("http {\n map $http_user_agent $bot {\n\(body)\n }\n server { listen 80; add_header X-Bot $bot; }\n}\n",
                          files: ["/p/bots.map": file]) == expected)
    }

    /// split_clients hands every line to its own handler, which knows no include: nginx reads the
    /// word as a percentage.
    @Test func splitClientsTakesNoInclude() {
        let conf = "http {\n split_clients $remote_addr $v {\n include parts.conf;\n }\n server { listen 80; add_header X $v; }\n}\n"
        #expect(loadError(conf, files: ["/p/parts.conf": "50% a;\n* b;"]) == "invalid percent value \"include\" in t.conf:3")
        // From a file included at http level, the error is in that file.
        #expect(loadError("http {\n include sc.conf;\n server { listen 80; add_header X $v; }\n}\n",
                          files: ["/p/sc.conf": "split_clients $remote_addr $v {\n include parts.conf;\n}"])
            == "invalid percent value \"include\" in /p/sc.conf:2")
    }

    /// `types` includes as nginx's types handler does (mime.types kept apart, extended in place).
    @Test func typesIncludeFilesOfTypes() throws {
        let t = try load("http {\n types {\n include more.types;\n text/x-own own;\n }\n server { listen 80; }\n}\n",
                         files: ["/p/more.types": "text/x-foo foo bar;"])
        #expect(t.servers[0].settings.types?["foo"] == "text/x-foo")
        #expect(t.servers[0].settings.types?["own"] == "text/x-own")
        #expect(loadError("http {\n types {\n include a b;\n }\n}\n") == "invalid number of arguments in \"include\" directive in t.conf:3")
    }
}
