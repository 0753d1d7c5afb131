/// Where a token came from: file (as given or resolved) and 1-based line and column.
public struct SourceLocation: Sendable, Hashable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int

    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }

    public var description: String { "\(file):\(line)" }
}

/// A configuration error worded as nginx words it: `unknown directive "x" in FILE:LINE`.
public struct ConfigError: Error, Sendable, CustomStringConvertible, Equatable {
    /// The message without the location, e.g. `unknown directive "proxy_pas"`.
    public var message: String
    /// Where it happened, when the error belongs to a place in a file.
    public var location: SourceLocation?
    /// The `[warn]` lines of the load up to this error: nginx prints them before the `[emerg]`.
    public var earlierWarnings: [ConfigError] = []

    public init(_ message: String, at location: SourceLocation? = nil) {
        self.message = message
        self.location = location
    }

    /// The same error: message and place (the warnings before it are not part of it).
    public static func == (a: ConfigError, b: ConfigError) -> Bool { a.message == b.message && a.location == b.location }

    /// `message in file:line`, the form nginx prints after `[emerg]`.
    public var description: String {
        if let location { return "\(message) in \(location.file):\(location.line)" }
        return message
    }
}
