import Testing
@testable import LBConfig

@Suite struct ParserTests {
    func parse(_ s: String, files: [String: String] = [:]) throws(ConfigError) -> [Directive] {
        var p = Parser(fileSystem: MemoryFS(files: files), includeBase: "/etc/lb")
        return try p.parseText(s, file: "main.conf")
    }

    func error(_ s: String, files: [String: String] = [:]) -> String {
        do { _ = try parse(s, files: files); return "no error" } catch { return error.description }
    }

    @Test func buildsTree() throws {
        let d = try parse("a 1 2;\nb { c 3; d { } }\n")
        #expect(d.count == 2)
        #expect(d[0].name == "a" && d[0].values == ["1", "2"] && d[0].block == nil)
        #expect(d[1].block?.count == 2 && d[1].block?[1].block?.isEmpty == true)
    }

    @Test(arguments: [
        ("a;\n}\n", "unexpected \"}\" in main.conf:2"),
        ("a {\n b;\n", "unexpected end of file, expecting \"}\" in main.conf:3"),
        ("a {\n b c\n", "unexpected end of file, expecting \";\" or \"}\" in main.conf:3"),
        ("a b\n}", "unexpected \"}\" in main.conf:2"),
        ("\n\n;", "unexpected \";\" in main.conf:3"),
        ("x;\n{ }", "unexpected \"{\" in main.conf:2"),
        ("include;", "invalid number of arguments in \"include\" directive in main.conf:1"),
    ])
    func structuralErrorsPointAtTheLine(_ input: String, _ expected: String) {
        #expect(error(input) == expected)
    }

    @Test func includeGlobExpandsInPlaceAndSorted() throws {
        let files = ["/etc/lb/conf.d/b.conf": "b;", "/etc/lb/conf.d/a.conf": "a;", "/etc/lb/other.txt": "x;"]
        let d = try parse("first;\ninclude conf.d/*.conf;\nlast;", files: files)
        #expect(d.map(\.name) == ["first", "a", "b", "last"])
        #expect(d[1].location.file == "/etc/lb/conf.d/a.conf")
    }

    @Test func includeGlobWithNoMatchIsFine() throws {
        #expect(try parse("include conf.d/*.conf;").isEmpty)
    }

    @Test func missingIncludeIsAnErrorAtTheIncludeLine() {
        #expect(error("a;\ninclude missing.conf;") == "open() \"/etc/lb/missing.conf\" failed (2: No such file or directory) in main.conf:2")
    }

    @Test func includeCycleIsReported() {
        let files = ["/etc/lb/a.conf": "include b.conf;", "/etc/lb/b.conf": "x;\ninclude a.conf;"]
        var p = Parser(fileSystem: MemoryFS(files: files), includeBase: "/etc/lb")
        do {
            _ = try p.parseFile("/etc/lb/a.conf")
            Issue.record("no error")
        } catch {
            #expect(error.description == "include cycle: \"/etc/lb/a.conf\" -> \"/etc/lb/b.conf\" -> \"/etc/lb/a.conf\" in /etc/lb/b.conf:2")
        }
    }

    @Test func errorsInIncludedFilesNameThatFile() {
        let files = ["/etc/lb/conf.d/x.conf": "ok;\n\nbad }"]
        #expect(error("include conf.d/x.conf;", files: files) == "unexpected \"}\" in /etc/lb/conf.d/x.conf:3")
    }
}
