/// One token of nginx's config syntax.
public struct Token: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// A word or a quoted string; `text` holds it unescaped.
        case word
        case semicolon
        case blockStart
        case blockEnd
        case endOfFile
    }

    public var kind: Kind
    public var text: String
    /// True when the word was written in single or double quotes.
    public var quoted: Bool
    public var location: SourceLocation
}

/// Splits config text into tokens with nginx's rules (see `ngx_conf_read_token`):
/// whitespace separates words; `;`, `{` and `}` are structure only at the start of a token;
/// `#` starts a comment only at the start of a token; quotes with `\"`, `\'`, `\\`, `\t`, `\r`,
/// `\n` escapes; a backslash outside quotes protects the next character; `${var}` does not open
/// a block.
public struct Lexer {
    private let bytes: [UInt8]
    private let file: String
    private var pos = 0
    private var line = 1
    private var lineStart = 0

    public init(text: String, file: String) {
        self.bytes = Array(text.utf8)
        self.file = file
    }

    public init(bytes: [UInt8], file: String) {
        self.bytes = bytes
        self.file = file
    }

    /// Tokenizes the whole input, ending with an `.endOfFile` token.
    public static func tokenize(_ text: String, file: String) throws(ConfigError) -> [Token] {
        var lexer = Lexer(text: text, file: file)
        return try lexer.all()
    }

    public mutating func all() throws(ConfigError) -> [Token] {
        var tokens: [Token] = []
        tokens.reserveCapacity(bytes.count / 4)
        while true {
            let t = try next()
            tokens.append(t)
            if t.kind == .endOfFile { return tokens }
        }
    }

    private func here(_ at: Int) -> SourceLocation {
        SourceLocation(file: file, line: line, column: at - lineStart + 1)
    }

    private static func isSpace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 || c == 0x0D || c == 0x0A }

    private mutating func advanceLine(_ c: UInt8) {
        if c == 0x0A {
            line += 1
            lineStart = pos
        }
    }

    /// Returns the next token.
    public mutating func next() throws(ConfigError) -> Token {
        // Skip whitespace and comments.
        while pos < bytes.count {
            let c = bytes[pos]
            if Lexer.isSpace(c) {
                pos += 1
                advanceLine(c)
                continue
            }
            if c == UInt8(ascii: "#") {
                while pos < bytes.count && bytes[pos] != 0x0A { pos += 1 }
                continue
            }
            break
        }
        guard pos < bytes.count else {
            return Token(kind: .endOfFile, text: "", quoted: false, location: here(pos))
        }
        let start = pos
        let loc = here(start)
        let c = bytes[pos]
        switch c {
        case UInt8(ascii: ";"):
            pos += 1
            return Token(kind: .semicolon, text: ";", quoted: false, location: loc)
        case UInt8(ascii: "{"):
            pos += 1
            return Token(kind: .blockStart, text: "{", quoted: false, location: loc)
        case UInt8(ascii: "}"):
            pos += 1
            return Token(kind: .blockEnd, text: "}", quoted: false, location: loc)
        case UInt8(ascii: "\""), UInt8(ascii: "'"):
            return try quotedWord(quote: c, location: loc)
        default:
            return try bareWord(location: loc)
        }
    }

    private mutating func quotedWord(quote: UInt8, location: SourceLocation) throws(ConfigError) -> Token {
        pos += 1
        var out: [UInt8] = []
        while true {
            guard pos < bytes.count else {
                throw ConfigError("unexpected end of file, expecting \";\" or \"}\"", at: here(pos))
            }
            let c = bytes[pos]
            if c == UInt8(ascii: "\\"), pos + 1 < bytes.count {
                consumeEscape(into: &out)
                continue
            }
            pos += 1
            if c == quote { break }
            out.append(c)
            advanceLine(c)
        }
        // nginx demands a separator right after a closing quote.
        if pos < bytes.count {
            let n = bytes[pos]
            if !(Lexer.isSpace(n) || n == UInt8(ascii: ";") || n == UInt8(ascii: "{") || n == UInt8(ascii: ")")) {
                throw ConfigError("unexpected \"\(String(decoding: [n], as: UTF8.self))\"", at: here(pos))
            }
        }
        return Token(kind: .word, text: String(decoding: out, as: UTF8.self), quoted: true, location: location)
    }

    private mutating func bareWord(location: SourceLocation) throws(ConfigError) -> Token {
        // Fast path: a word without backslashes is a slice of the input.
        let start = pos
        var variable = false
        while pos < bytes.count {
            let c = bytes[pos]
            if c == UInt8(ascii: "{") && variable {
                pos += 1
                variable = false
                // Copy through the closing brace of ${name}.
                while pos < bytes.count && bytes[pos] != UInt8(ascii: "}") && !Lexer.isSpace(bytes[pos]) { pos += 1 }
                if pos < bytes.count && bytes[pos] == UInt8(ascii: "}") { pos += 1 }
                continue
            }
            variable = false
            if c == UInt8(ascii: "\\") {
                pos = start
                return try escapedWord(location: location)
            }
            if Lexer.isSpace(c) || c == UInt8(ascii: ";") || c == UInt8(ascii: "{") { break }
            if c == UInt8(ascii: "$") { variable = true }
            pos += 1
        }
        return Token(kind: .word, text: String(decoding: bytes[start..<pos], as: UTF8.self), quoted: false, location: location)
    }

    private mutating func escapedWord(location: SourceLocation) throws(ConfigError) -> Token {
        var out: [UInt8] = []
        var variable = false
        while pos < bytes.count {
            let c = bytes[pos]
            if c == UInt8(ascii: "{") && variable {
                out.append(c)
                pos += 1
                variable = false
                while pos < bytes.count && bytes[pos] != UInt8(ascii: "}") && !Lexer.isSpace(bytes[pos]) {
                    out.append(bytes[pos])
                    pos += 1
                }
                if pos < bytes.count && bytes[pos] == UInt8(ascii: "}") {
                    out.append(bytes[pos])
                    pos += 1
                }
                continue
            }
            variable = false
            if c == UInt8(ascii: "\\") {
                if pos + 1 < bytes.count {
                    consumeEscape(into: &out)
                } else {
                    out.append(c)
                    pos += 1
                }
                continue
            }
            if Lexer.isSpace(c) || c == UInt8(ascii: ";") || c == UInt8(ascii: "{") { break }
            if c == UInt8(ascii: "$") { variable = true }
            out.append(c)
            pos += 1
        }
        return Token(kind: .word, text: String(decoding: out, as: UTF8.self), quoted: false, location: location)
    }

    private mutating func consumeEscape(into out: inout [UInt8]) {
        let n = bytes[pos + 1]
        Lexer.unescape(n, into: &out)
        pos += 2
        if n == 0x0A {
            line += 1
            lineStart = pos
        }
    }

    /// nginx's unescaping: `\"`, `\'`, `\\` lose the backslash; `\t`, `\r`, `\n` become controls;
    /// any other pair is kept as written (so regexes like `\.` survive).
    private static func unescape(_ c: UInt8, into out: inout [UInt8]) {
        switch c {
        case UInt8(ascii: "\""), UInt8(ascii: "'"), UInt8(ascii: "\\"): out.append(c)
        case UInt8(ascii: "t"): out.append(0x09)
        case UInt8(ascii: "r"): out.append(0x0D)
        case UInt8(ascii: "n"): out.append(0x0A)
        default:
            out.append(UInt8(ascii: "\\"))
            out.append(c)
        }
    }
}
