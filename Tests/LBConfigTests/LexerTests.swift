import Testing
@testable import LBConfig

@Suite struct LexerTests {
    func kinds(_ s: String) throws -> [String] {
        try Lexer.tokenize(s, file: "f").map { t in
            switch t.kind {
            case .word: t.quoted ? "q:\(t.text)" : "w:\(t.text)"
            case .semicolon: ";"
            case .blockStart: "{"
            case .blockEnd: "}"
            case .endOfFile: "EOF"
            }
        }
    }

    @Test func splitsWordsAndStructure() throws {
        #expect(try kinds("a b;c{d}") == ["w:a", "w:b", ";", "w:c", "{", "w:d}", "EOF"])
        #expect(try kinds("x { y; }") == ["w:x", "{", "w:y", ";", "}", "EOF"])
    }

    @Test func commentsOnlyAtTokenStart() throws {
        #expect(try kinds("a # c ; {\nb;") == ["w:a", "w:b", ";", "EOF"])
        #expect(try kinds("a#b;") == ["w:a#b", ";", "EOF"])
        #expect(try kinds("# ünïcødé comment ✓\nx;") == ["w:x", ";", "EOF"])
    }

    @Test func quotesAndEscapes() throws {
        #expect(try kinds(#"a "b c" 'd;e';"#) == ["w:a", "q:b c", "q:d;e", ";", "EOF"])
        #expect(try kinds(#"a "q\"x\\y\tz";"#) == ["w:a", "q:q\"x\\y\tz", ";", "EOF"])
        #expect(try kinds(#"a "\.jpg";"#) == ["w:a", #"q:\.jpg"#, ";", "EOF"])
        #expect(try kinds(#"a \;b;"#) == ["w:a", #"w:\;b"#, ";", "EOF"]) // kept as written, as nginx
        #expect(try kinds("a '';") == ["w:a", "q:", ";", "EOF"])
    }

    @Test func variablesInBracesDoNotOpenBlocks() throws {
        #expect(try kinds("a ${host}x;") == ["w:a", "w:${host}x", ";", "EOF"])
        // An unquoted brace ends the word, which is why nginx regexes with {n} must be quoted.
        #expect(try kinds("location ~ ^/a{2}$ {}") == ["w:location", "w:~", "w:^/a", "{", "w:2}$", "{", "}", "EOF"])
        #expect(try kinds("location ~ \"^/a{2}$\" {}") == ["w:location", "w:~", "q:^/a{2}$", "{", "}", "EOF"])
    }

    @Test func whitespaceOfAnyKind() throws {
        #expect(try kinds("a\tb\r\nc ;  \r\n") == ["w:a", "w:b", "w:c", ";", "EOF"])
    }

    @Test func positionsAreFileLineColumn() throws {
        let t = try Lexer.tokenize("a;\n  bb cc;\r\n\n d;", file: "x.conf")
        #expect(t[2].text == "bb" && t[2].location == SourceLocation(file: "x.conf", line: 2, column: 3))
        #expect(t[3].location.line == 2 && t[3].location.column == 6)
        #expect(t[5].text == "d" && t[5].location.line == 4)
        let q = try Lexer.tokenize("a \"multi\nline\" b;", file: "f")
        #expect(q[2].text == "b" && q[2].location.line == 2)
    }

    @Test func textAfterClosingQuoteIsAnError() {
        #expect(throws: ConfigError("unexpected \"x\"", at: SourceLocation(file: "f", line: 1, column: 6))) {
            try Lexer.tokenize("a \"b\"x;", file: "f")
        }
    }

    @Test func unterminatedQuoteIsAnError() {
        #expect(throws: ConfigError.self) { try Lexer.tokenize("a \"b;\n", file: "f") }
    }
}
