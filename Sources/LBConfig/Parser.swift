import Glibc

/// One directive of the tree: `name args… ;` or `name args… { children }`.
public struct Directive: Sendable {
    public var name: String
    public var args: [Token]
    /// Children when the directive has a block, nil when it ended with `;`.
    public var block: [Directive]?
    /// The location of the directive's name.
    public var location: SourceLocation
    /// Where a block's closing `}` is (nginx reports errors found after a block there).
    public var blockEnd: SourceLocation?

    public init(name: String, args: [Token], block: [Directive]?, location: SourceLocation) {
        self.name = name
        self.args = args
        self.block = block
        self.location = location
    }

    /// The argument texts.
    public var values: [String] { args.map(\.text) }

    /// Frees a directive tree level by level. Left to Swift, a tree is freed recursively, a chain
    /// of stack frames per nesting level, which a deep enough tree overflows.
    /// Leaves `tree` empty.
    public static func dismantle(_ tree: inout [Directive]) {
        var pending = [tree]
        tree = []
        while var level = pending.popLast() {
            for i in level.indices where level[i].block != nil {
                pending.append(level[i].block!)
                level[i].block = nil
            }
        }
    }
}

/// A file read while loading a configuration (for `lb -T`).
public struct ConfigFile: Sendable {
    public var path: String
    public var text: String
}

/// Limits that keep a hostile or broken configuration from exhausting the loader.
public enum ConfigLimits {
    /// Blocks nested deeper than this are refused (`too deeply nested blocks`). nginx has no such
    /// limit but its recursive parser crashes near 13,000 nested `location`s on an 8 MB stack; lb
    /// accepts more than that and refuses, with a location, what would need an unbounded stack.
    public static let maxBlockDepth = 16_384
    /// The most bytes one configuration may read from its files, all `include`s together (and so
    /// also one file): 64 MiB. nginx has no limit; lb refuses rather than eat memory.
    public static let maxConfigBytes = 64 << 20
}

/// Reads files for the parser. Tests may substitute an in-memory file system.
public protocol ConfigFileSystem: Sendable {
    /// Returns the file's text or throws a `ConfigError` worded like nginx's `open() "x" failed`.
    func read(_ path: String) throws(ConfigError) -> String
    /// Returns the text of a regular file of at most `limit` bytes; throws `"x" is not a regular
    /// file` or `"x" is too large` otherwise. The default checks what `read(_:)` returned.
    func read(_ path: String, limit: Int) throws(ConfigError) -> String
    /// Expands a glob pattern to sorted matching paths.
    func glob(_ pattern: String) -> [String]
    /// Canonical path for cycle detection.
    func canonical(_ path: String) -> String
    /// Opens a log file for appending, creating it (and its directories) if missing, as nginx
    /// opens its logs while reading its configuration; nil on success, else `errno: text`. The default (file systems of tests) succeeds.
    func openForAppend(_ path: String) -> String?
}

extension ConfigFileSystem {
    public func openForAppend(_ path: String) -> String? { nil }

    public func read(_ path: String, limit: Int) throws(ConfigError) -> String {
        let text = try read(path)
        if text.utf8.count > limit { throw ConfigError.tooLarge(path, limit: limit) }
        return text
    }
}

extension ConfigError {
    static func tooLarge(_ path: String, limit: Int) -> ConfigError {
        ConfigError("\"\(path)\" is too large: the configuration files may hold at most \(ConfigLimits.maxConfigBytes >> 20) MiB together")
    }
}

/// The real file system through Glibc.
public struct DiskFileSystem: ConfigFileSystem {
    public init() {}

    /// lb creates missing log directories (nginx does not): only a directory that cannot be
    /// created, or a file that cannot be opened, fails.
    public func openForAppend(_ path: String) -> String? {
        func makeDirectory(_ dir: String) {
            var st = stat()
            if dir.isEmpty || dir == "/" || stat(dir, &st) == 0 { return }
            makeDirectory(directoryOf(dir))
            mkdir(dir, 0o755)
        }
        makeDirectory(directoryOf(path))
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0o644)
        if fd < 0 {
            let e = errno
            return "\(e): \(String(cString: strerror(e)))"
        }
        close(fd)
        return nil
    }

    public func read(_ path: String) throws(ConfigError) -> String {
        try read(path, limit: ConfigLimits.maxConfigBytes)
    }

    /// Refuses anything but a regular file (a FIFO would block, `/dev/zero` never ends, a
    /// directory fails to read) and reads at most `limit` bytes.
    public func read(_ path: String, limit: Int) throws(ConfigError) -> String {
        // O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused just below.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        if fd < 0 {
            let e = errno
            throw ConfigError("open() \"\(path)\" failed (\(e): \(String(cString: strerror(e))))")
        }
        defer { close(fd) }
        var st = stat()
        if fstat(fd, &st) != 0 {
            let e = errno
            throw ConfigError("fstat() \"\(path)\" failed (\(e): \(String(cString: strerror(e))))")
        }
        guard st.st_mode & S_IFMT == S_IFREG else { throw ConfigError("\"\(path)\" is not a regular file") }
        if Int(st.st_size) > limit { throw ConfigError.tooLarge(path, limit: limit) }
        var data: [UInt8] = []
        data.reserveCapacity(Int(st.st_size))
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                let e = errno
                throw ConfigError("read() \"\(path)\" failed (\(e): \(String(cString: strerror(e))))")
            }
            if n == 0 { break }
            // The file may have grown since fstat.
            if data.count + n > limit { throw ConfigError.tooLarge(path, limit: limit) }
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
///
/// The parser keeps its own stacks of open blocks and of files being read instead of recursing,
/// so nesting depth costs heap, not machine stack; blocks deeper than `ConfigLimits.maxBlockDepth`
/// are refused with their location.
public struct Parser {
    let fs: any ConfigFileSystem
    /// Directory against which relative `include` paths resolve (nginx: the main config's directory).
    let includeBase: String
    /// Every file read, in order.
    public private(set) var files: [ConfigFile] = []
    /// Bytes read from files so far (all against `ConfigLimits.maxConfigBytes`).
    private var bytesRead = 0

    public init(fileSystem: any ConfigFileSystem = DiskFileSystem(), includeBase: String) {
        self.fs = fileSystem
        self.includeBase = includeBase
    }

    /// A block whose `}` has not been seen yet.
    private struct OpenBlock {
        var name: Token
        var args: [Token]
        var children: [Directive] = []
    }

    /// A file (or text) being read; `include` pushes one, its end pops it.
    private struct Source {
        var tokens: [Token]
        var index = 0
        /// Canonical path for cycle detection; nil for text that is not a file.
        var canonical: String?
        /// Blocks open when this source started: its `}` may not close them, its end must not
        /// leave more open.
        var baseDepth: Int
        /// Files the same `include` matched that are still to be read, and where it was written.
        var pendingPaths: ArraySlice<String> = []
        var includedFrom: SourceLocation?
    }

    /// Parses a file (and its includes) into a directive list.
    public mutating func parseFile(_ path: String, from: SourceLocation? = nil) throws(ConfigError) -> [Directive] {
        let source = try open(path, from: from, baseDepth: 0)
        return try parse(source)
    }

    /// Parses text as if it were a file named `file` (used for `-g` and tests).
    public mutating func parseText(_ text: String, file: String) throws(ConfigError) -> [Directive] {
        try parse(Source(tokens: try Lexer.tokenize(text, file: file), canonical: nil, baseDepth: 0))
    }

    private mutating func open(_ path: String, from: SourceLocation?, baseDepth: Int) throws(ConfigError) -> Source {
        let text: String
        do {
            text = try fs.read(path, limit: ConfigLimits.maxConfigBytes - bytesRead)
        } catch {
            throw ConfigError(error.message, at: from)
        }
        bytesRead += text.utf8.count
        files.append(ConfigFile(path: path, text: text))
        return Source(tokens: try Lexer.tokenize(text, file: path), canonical: fs.canonical(path), baseDepth: baseDepth,
                      includedFrom: from)
    }

    /// The directives parsed so far: the top level, and the blocks still open.
    private struct Tree {
        var top: [Directive] = []
        var blocks: [OpenBlock] = []

        mutating func append(_ d: Directive) {
            if blocks.isEmpty { top.append(d) } else { blocks[blocks.count - 1].children.append(d) }
        }
    }

    private mutating func parse(_ first: Source) throws(ConfigError) -> [Directive] {
        var tree = Tree()
        do {
            try parse(first, into: &tree)
            return tree.top
        } catch {
            Directive.dismantle(&tree.top)
            for i in tree.blocks.indices { Directive.dismantle(&tree.blocks[i].children) }
            throw error
        }
    }

    private mutating func parse(_ first: Source, into tree: inout Tree) throws(ConfigError) {
        var sources = [first]
        var args: [Token] = []
        while true {
            let s = sources.count - 1
            let t = sources[s].tokens[sources[s].index]
            sources[s].index += 1
            switch t.kind {
            case .word:
                args.append(t)
            case .semicolon:
                guard let name = args.first else { throw ConfigError("unexpected \";\"", at: t.location) }
                let rest = Array(args.dropFirst())
                args.removeAll(keepingCapacity: true)
                if name.text == "include" && Parser.expandsInclude(in: tree.blocks.last?.name.text, arguments: rest.count) {
                    guard rest.count == 1 else {
                        throw ConfigError("invalid number of arguments in \"include\" directive", at: name.location)
                    }
                    var paths = includePaths(rest[0])[...]
                    guard let path = paths.popFirst() else { continue }
                    try checkCycle(path, sources, at: rest[0].location)
                    var source = try open(path, from: rest[0].location, baseDepth: tree.blocks.count)
                    source.pendingPaths = paths
                    sources.append(source)
                } else {
                    tree.append(Directive(name: name.text, args: rest, block: nil, location: name.location))
                }
            case .blockStart:
                guard let name = args.first else { throw ConfigError("unexpected \"{\"", at: t.location) }
                if tree.blocks.count >= ConfigLimits.maxBlockDepth {
                    throw ConfigError("too deeply nested blocks (more than \(ConfigLimits.maxBlockDepth) levels)", at: name.location)
                }
                tree.blocks.append(OpenBlock(name: name, args: Array(args.dropFirst())))
                args.removeAll(keepingCapacity: true)
            case .blockEnd:
                if !args.isEmpty || tree.blocks.count == sources[s].baseDepth { throw ConfigError("unexpected \"}\"", at: t.location) }
                let b = tree.blocks.removeLast()
                var block = Directive(name: b.name.text, args: b.args, block: b.children, location: b.name.location)
                block.blockEnd = t.location
                tree.append(block)
            case .endOfFile:
                if !args.isEmpty {
                    throw ConfigError("unexpected end of file, expecting \";\" or \"}\"", at: t.location)
                }
                if tree.blocks.count > sources[s].baseDepth { throw ConfigError("unexpected end of file, expecting \"}\"", at: t.location) }
                let done = sources.removeLast()
                if sources.isEmpty { return }
                // The next file of the same include, if its glob matched more.
                var paths = done.pendingPaths
                if let path = paths.popFirst(), let from = done.includedFrom {
                    try checkCycle(path, sources, at: from)
                    var source = try open(path, from: from, baseDepth: tree.blocks.count)
                    source.pendingPaths = paths
                    sources.append(source)
                }
            }
        }
    }

    /// Whether `include` (quoted or not: nginx compares the word) reads a file in this block.
    /// Most blocks are read by nginx's parser, which includes anywhere. The lines of `map`,
    /// `types` and `split_clients` go to the block's own handler instead: `map` includes only
    /// `include FILE` (any other shape is a bad entry: `invalid number of the map parameters`),
    /// `split_clients` never (`invalid percent value "include"`), `types` as the parser does;
    /// `geo` as `map` (nginx 1.22 reads no glob there: lb does, as later nginx).
    /// An included file's lines are then entries of the block, errors at their own FILE:LINE.
    static func expandsInclude(in block: String?, arguments: Int) -> Bool {
        switch block {
        case "split_clients": return false
        case "map", "geo": return arguments == 1
        default: return true
        }
    }

    /// The files an `include` names: its glob's sorted matches, or the one path.
    private func includePaths(_ arg: Token) -> [String] {
        let pattern = arg.text.hasPrefix("/") ? arg.text : joinPath(includeBase, arg.text)
        let isGlob = pattern.contains(where: { $0 == "*" || $0 == "?" || $0 == "[" })
        return isGlob ? fs.glob(pattern) : [pattern]
    }

    private func checkCycle(_ path: String, _ sources: [Source], at location: SourceLocation) throws(ConfigError) {
        let canon = fs.canonical(path)
        let chain = sources.compactMap(\.canonical)
        if let first = chain.firstIndex(of: canon) {
            let shown = chain[first...].map { "\"\($0)\"" }.joined(separator: " -> ")
            throw ConfigError("include cycle: \(shown) -> \"\(canon)\"", at: location)
        }
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
