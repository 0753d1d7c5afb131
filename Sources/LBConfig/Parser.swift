import Glibc

/// One directive of the tree: `name args… ;` or `name args… { children }`.
public struct Directive: Sendable {
    public var name: String
    public var args: [Token]
    /// Children when the directive has a block, nil when it ended with `;`.
    public var block: [Directive]?
    /// The location of the directive's name.
    public var location: SourceLocation

    public init(name: String, args: [Token], block: [Directive]?, location: SourceLocation) {
        self.name = name
        self.args = args
        self.block = block
        self.location = location
    }

    /// The argument texts.
    public var values: [String] { args.map(\.text) }
}

/// A file read while loading a configuration (for `lb -T`).
public struct ConfigFile: Sendable {
    public var path: String
    public var text: String
}

/// Reads files for the parser. Tests may substitute an in-memory file system.
public protocol ConfigFileSystem: Sendable {
    /// Returns the file's text or throws a `ConfigError` worded like nginx's `open() "x" failed`.
    func read(_ path: String) throws(ConfigError) -> String
    /// Expands a glob pattern to sorted matching paths.
    func glob(_ pattern: String) -> [String]
    /// Canonical path for cycle detection.
    func canonical(_ path: String) -> String
}

/// The real file system through Glibc.
public struct DiskFileSystem: ConfigFileSystem {
    public init() {}

    public func read(_ path: String) throws(ConfigError) -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            let e = errno
            throw ConfigError("open() \"\(path)\" failed (\(e): \(String(cString: strerror(e))))")
        }
        defer { close(fd) }
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                let e = errno
                throw ConfigError("read() \"\(path)\" failed (\(e): \(String(cString: strerror(e))))")
            }
            if n == 0 { break }
            data.append(contentsOf: chunk[0..<n])
        }
        return String(decoding: data, as: UTF8.self)
    }

    public func glob(_ pattern: String) -> [String] {
        var g = glob_t()
        defer { globfree(&g) }
        guard Glibc.glob(pattern, 0, nil, &g) == 0 else { return [] }
        var out: [String] = []
        for i in 0..<Int(g.gl_pathc) {
            if let p = g.gl_pathv[i] { out.append(String(cString: p)) }
        }
        return out.sorted()
    }

    public func canonical(_ path: String) -> String {
        guard let r = realpath(path, nil) else { return path }
        defer { free(r) }
        return String(cString: r)
    }
}

/// Builds the directive tree from tokens, expanding `include` in place as nginx does.
public struct Parser {
    let fs: any ConfigFileSystem
    /// Directory against which relative `include` paths resolve (nginx: the main config's directory).
    let includeBase: String
    /// Every file read, in order.
    public private(set) var files: [ConfigFile] = []
    private var includeStack: [String] = []

    public init(fileSystem: any ConfigFileSystem = DiskFileSystem(), includeBase: String) {
        self.fs = fileSystem
        self.includeBase = includeBase
    }

    /// Parses a file (and its includes) into a directive list.
    public mutating func parseFile(_ path: String, from: SourceLocation? = nil) throws(ConfigError) -> [Directive] {
        let text: String
        do {
            text = try fs.read(path)
        } catch {
            throw ConfigError(error.message, at: from)
        }
        files.append(ConfigFile(path: path, text: text))
        includeStack.append(fs.canonical(path))
        defer { includeStack.removeLast() }
        return try parseText(text, file: path)
    }

    /// Parses text as if it were a file named `file` (used for `-g` and tests).
    public mutating func parseText(_ text: String, file: String) throws(ConfigError) -> [Directive] {
        let tokens = try Lexer.tokenize(text, file: file)
        var index = 0
        return try parseBlock(tokens, &index, nested: nil)
    }

    private mutating func parseBlock(_ tokens: [Token], _ i: inout Int, nested opener: Token?) throws(ConfigError) -> [Directive] {
        var out: [Directive] = []
        var args: [Token] = []
        while true {
            let t = tokens[i]
            i += 1
            switch t.kind {
            case .word:
                args.append(t)
            case .semicolon:
                guard let name = args.first else { throw ConfigError("unexpected \";\"", at: t.location) }
                let rest = Array(args.dropFirst())
                if name.text == "include" && !name.quoted {
                    guard rest.count == 1 else {
                        throw ConfigError("invalid number of arguments in \"include\" directive", at: name.location)
                    }
                    out.append(contentsOf: try include(rest[0]))
                } else {
                    out.append(Directive(name: name.text, args: rest, block: nil, location: name.location))
                }
                args.removeAll(keepingCapacity: true)
            case .blockStart:
                guard let name = args.first else { throw ConfigError("unexpected \"{\"", at: t.location) }
                let children = try parseBlock(tokens, &i, nested: t)
                out.append(Directive(name: name.text, args: Array(args.dropFirst()), block: children, location: name.location))
                args.removeAll(keepingCapacity: true)
            case .blockEnd:
                if !args.isEmpty || opener == nil { throw ConfigError("unexpected \"}\"", at: t.location) }
                return out
            case .endOfFile:
                if !args.isEmpty {
                    throw ConfigError("unexpected end of file, expecting \";\" or \"}\"", at: t.location)
                }
                if opener != nil { throw ConfigError("unexpected end of file, expecting \"}\"", at: t.location) }
                i -= 1
                return out
            }
        }
    }

    private mutating func include(_ arg: Token) throws(ConfigError) -> [Directive] {
        let pattern = arg.text.hasPrefix("/") ? arg.text : joinPath(includeBase, arg.text)
        let isGlob = pattern.contains(where: { $0 == "*" || $0 == "?" || $0 == "[" })
        let paths = isGlob ? fs.glob(pattern) : [pattern]
        var out: [Directive] = []
        for path in paths {
            let canon = fs.canonical(path)
            if let first = includeStack.firstIndex(of: canon) {
                let chain = includeStack[first...].map { "\"\($0)\"" }.joined(separator: " -> ")
                throw ConfigError("include cycle: \(chain) -> \"\(canon)\"", at: arg.location)
            }
            out.append(contentsOf: try parseFile(path, from: arg.location))
        }
        return out
    }
}

/// Joins a directory and a relative path.
public func joinPath(_ base: String, _ rel: String) -> String {
    if rel.hasPrefix("/") || base.isEmpty { return rel }
    return base.hasSuffix("/") ? base + rel : base + "/" + rel
}

/// The directory part of a path (`.` when there is none).
public func directoryOf(_ path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "." }
    if slash == path.startIndex { return "/" }
    return String(path[..<slash])
}
