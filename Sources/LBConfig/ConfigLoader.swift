/// Loads a configuration file into a `RoutingTable`: the one entry point for `lb`, reload and tests.
public struct ConfigLoader {
    /// The directory that relative paths (root, logs, cache, pid) resolve against; nginx's `-p`.
    public var prefix: String
    /// Directives given with `-g`, applied before the file as nginx does.
    public var globalDirectives: String?
    public var fileSystem: any ConfigFileSystem
    public var resolver: any HostResolver

    public init(prefix: String, globalDirectives: String? = nil, fileSystem: any ConfigFileSystem = DiskFileSystem(),
                resolver: any HostResolver = SystemResolver()) {
        self.prefix = prefix
        self.globalDirectives = globalDirectives
        self.fileSystem = fileSystem
        self.resolver = resolver
    }

    /// The result of a successful load.
    public struct Loaded: Sendable {
        public var table: RoutingTable
        public var warnings: [ConfigError]
    }

    /// Reads, parses, validates and compiles `path`. Includes resolve against the file's directory.
    public func load(path: String) throws(ConfigError) -> Loaded {
        let fullPath = path.hasPrefix("/") ? path : joinPath(prefix, path)
        var parser = Parser(fileSystem: fileSystem, includeBase: directoryOf(fullPath))
        var directives: [Directive] = []
        if let g = globalDirectives {
            directives = try parser.parseText(g, file: "command line")
        }
        do {
            directives += try parser.parseFile(fullPath)
        } catch {
            Directive.dismantle(&directives)
            throw error
        }
        return try compile(&directives, files: parser.files, asFile: fullPath)
    }

    /// Parses and compiles config text (tests, `-g` only configs).
    public func load(text: String, file: String = "test.conf") throws(ConfigError) -> Loaded {
        var parser = Parser(fileSystem: fileSystem, includeBase: prefix)
        var directives = try parser.parseText(text, file: file)
        return try compile(&directives, files: [ConfigFile(path: file, text: text)] + parser.files)
    }

    /// Compiles the tree, then frees it level by level (it may be deeply nested).
    /// A configuration file (`asFile`, not text from a test) is checked as nginx checks one: it
    /// has an `events` block, and every log file it names can be opened (created if missing).
    private func compile(_ directives: inout [Directive], files: [ConfigFile], asFile: String? = nil) throws(ConfigError) -> Loaded {
        defer { Directive.dismantle(&directives) }
        let c = Compiler(prefix: prefix, resolver: resolver)
        c.files = files
        do {
            try c.walk(directives, in: .main)
            if let path = asFile {
                guard c.sawEvents else { throw ConfigError("no \"events\" section in configuration file \(path)") }
                for log in c.logFiles {
                    if let failure = fileSystem.openForAppend(log.path) {
                        throw ConfigError("open() \"\(log.path)\" failed (\(failure))", at: log.at)
                    }
                }
            }
            let table = try c.finish()
            return Loaded(table: table, warnings: c.warnings)
        } catch var e as ConfigError {
            e.earlierWarnings = c.warnings
            throw e
        } catch {
            var e = ConfigError("\(error)")
            e.earlierWarnings = c.warnings
            throw e
        }
    }
}
