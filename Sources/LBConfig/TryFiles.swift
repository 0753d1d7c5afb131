/// `try_files FILE… LAST`, compiled at load: every candidate's template parsed once, the last
/// entry classified once (`=CODE`, `@name` or a URI), so the runtime only evaluates and stats
/// (nginx's `ngx_http_try_files_handler` reads its compiled `try_files` array the same way).
/// A class: a location without try_files pays one nil test, and one with it one retain.
public final class TryFiles: Sendable, Equatable {
    /// One candidate: a URI (a directory when it ends in `/` once evaluated).
    public struct Candidate: Sendable {
        /// The entry as written (for `lb --explain`).
        public let source: String
        public let uri: Template
    }

    /// What the last entry does when no candidate exists.
    public enum Fallback: Sendable {
        /// `=CODE`: answer with CODE.
        case code(Int)
        /// `@name`: go to the named location.
        case named(String)
        /// A URI (with arguments after `?`) for an internal redirect.
        case uri(Template)
    }

    public let candidates: [Candidate]
    public let fallback: Fallback
    /// The entries as written, in order (the last one included).
    public let entries: [String]

    /// Compiles the directive's arguments; `template` parses one entry (reporting errors with
    /// the entry's FILE:LINE). `=CODE` must name a status 100–599.
    init(_ args: [Token], template: (Token) throws -> Template) throws {
        let last = args.last!
        var code: Int?
        if last.text.hasPrefix("=") {
            guard let c = Values.number(String(last.text.dropFirst())), (100...599).contains(c) else {
                throw ConfigError("invalid code \"\(last.text)\"", at: last.location)
            }
            code = c
        }
        // Every entry is a template (variables are checked and recorded), the last one too.
        let templates = try args.map(template)
        candidates = zip(args.dropLast(), templates).map { Candidate(source: $0.text, uri: $1) }
        if let code {
            fallback = .code(code)
        } else if last.text.hasPrefix("@") {
            fallback = .named(String(last.text.dropFirst()))
        } else {
            fallback = .uri(templates.last!)
        }
        entries = args.map(\.text)
    }

    public static func == (a: TryFiles, b: TryFiles) -> Bool { a.entries == b.entries }
}
