/// Walks the directive tree with the schema table and builds the `RoutingTable`.
public final class Compiler {
    let prefix: String
    let resolver: any HostResolver
    var files: [ConfigFile] = []
    /// Non-fatal findings, printed as `[warn]` (nginx: conflicting server names, …).
    public internal(set) var warnings: [ConfigError] = []

    // Main context.
    var workerProcesses: Int? = 1
    var pid: String?
    var mainErrorLogs: [ErrorLog] = []
    var workerConnections = 512
    var daemon = false
    var masterProcess = true
    var user: String?
    var workerRlimitNofile: Int?
    var workerShutdownTimeoutMs: Int?
    var sawHTTP = false
    var sawEvents = false
    /// Log files named in the configuration, with where: a file load opens each (nginx opens them
    /// while reading the configuration, `-t` included) and refuses the configuration if one fails.
    var logFiles: [(path: String, at: SourceLocation)] = []

    // http context.
    let httpSettings = SettingsBox()
    var logFormats: [String: LogFormat] = ["combined": .combined]
    var upstreams: [UpstreamBuilder] = []
    /// `resolver` and `resolver_timeout` at http level (upstreams without their own use them).
    var httpResolver: ResolverSpec?
    var httpResolverTimeoutMs: Int?
    var cacheZones: [CacheZone] = []
    /// `limit_req_zone` / `limit_conn_zone`, and zones referenced before (size 0) (LimitDirectives.swift).
    var limitZones: [LimitZone] = []
    var servers: [ServerBuilder] = []
    var maps: [MapBlock] = []
    var services: [ServiceBuilder] = []
    var sawStack = false
    /// Cache references checked once all zones are known.
    var cacheReferences: [(String, SourceLocation)] = []
    /// Variables used anywhere, checked at the end against map and named-capture names.
    var usedVariables: [(String, SourceLocation)] = []
    var definedVariables: Set<String> = []
    /// Variables assigned by `set` (read before any `set` ran, they warn as nginx).
    var setVariables: Set<String> = []
    /// URLs of `proxy_pass` with variables (and `fastcgi_pass`/`uwsgi_pass` addresses), in the order met.
    var variableProxyURLs: [Template] = []
    /// Whether any template reads `$sent_http_*` or `$upstream_http_*` (the runtime then keeps
    /// copies of response heads for the log).
    var usesResponseHeaderVariables = false

    // Where we are.
    var context: Contexts = .main
    var settings: SettingsBox
    var server: ServerBuilder?
    var locationStack: [LocationBuilder] = []
    var upstream: UpstreamBuilder?
    var matches: [String: MatchBlock] = [:]
    var matchReferences: [(String, SourceLocation)] = []
    var service: ServiceBuilder?

    public init(prefix: String, resolver: any HostResolver = SystemResolver()) {
        self.prefix = prefix
        self.resolver = resolver
        self.settings = httpSettings
    }

    // MARK: - Walking

    /// One block whose directives are being applied: `walk` keeps these on its own stack so that
    /// nested `location`s cost heap, not machine stack.
    struct WalkFrame {
        let directives: [Directive]
        let context: Contexts
        /// Runs when the block's last directive has been applied (or on an error): restores what
        /// `enter` changed.
        let leave: (() -> Void)?
        var next = 0
        var seen: Set<String> = []
    }

    /// The block an `apply` asked `walk` to enter next (see `enter`).
    var enteredBlock: WalkFrame?

    /// Applies every directive of one level, running the generic checks of the schema table.
    /// Blocks handed to `enter` are walked here too, depth first, without recursion.
    func walk(_ directives: [Directive], in ctx: Contexts) throws {
        let saved = context
        var frames = [WalkFrame(directives: directives, context: ctx, leave: nil)]
        defer {
            for f in frames.reversed() { f.leave?() }
            enteredBlock = nil
            context = saved
        }
        while let f = frames.last {
            let top = frames.count - 1
            guard f.next < f.directives.count else {
                frames.removeLast()
                f.leave?()
                continue
            }
            let d = f.directives[f.next]
            frames[top].next += 1
            context = f.context
            let spec = try check(d, in: f.context, seen: &frames[top].seen)
            do {
                try spec.apply(self, d)
            } catch var e as ConfigError {
                if e.location == nil { e.location = d.location }
                throw e
            }
            if let block = enteredBlock {
                enteredBlock = nil
                frames.append(block)
            }
        }
    }

    /// Asks the running `walk` to apply `block` in `ctx` right after the current directive, then to
    /// call `leave`. For blocks that nest without bound (`location`); the others may call `walk`.
    func enter(_ block: [Directive], in ctx: Contexts, leave: @escaping () -> Void) {
        precondition(enteredBlock == nil, "one block per directive")
        enteredBlock = WalkFrame(directives: block, context: ctx, leave: leave)
    }

    /// The generic checks of the schema table; returns the row that applies.
    private func check(_ d: Directive, in ctx: Contexts, seen: inout Set<String>) throws(ConfigError) -> DirectiveSpec {
        guard let specs = Compiler.table[d.name] else {
            if let why = unsupportedDirectives[d.name] { throw ConfigError(why, at: d.location) }
            var msg = "unknown directive \"\(d.name)\""
            if let hint = Compiler.suggestion(for: d.name) { msg += " (did you mean \"\(hint)\"?)" }
            throw ConfigError(msg, at: d.location)
        }
        // Inside a location's `if`, the directives nginx allows there apply as in the location.
        let lookup: Contexts = ctx == .locationIf && Compiler.locationIfDirectives.contains(d.name) ? .location : ctx
        guard let spec = specs.first(where: { $0.contexts.contains(lookup) }) else {
            throw ConfigError("\"\(d.name)\" directive is not allowed here", at: d.location)
        }
        if spec.block && d.block == nil {
            throw ConfigError("directive \"\(d.name)\" has no opening \"{\"", at: d.location)
        }
        if !spec.block && d.block != nil {
            throw ConfigError("directive \"\(d.name)\" is not terminated by \";\"", at: d.location)
        }
        guard spec.args.accepts(d.args.count) else {
            throw ConfigError("invalid number of arguments in \"\(d.name)\" directive", at: d.location)
        }
        if case .flag = spec.args, Values.flag(d.args[0].text) == nil {
            throw ConfigError("invalid value \"\(d.args[0].text)\" in \"\(d.name)\" directive, it must be \"on\" or \"off\"", at: d.args[0].location)
        }
        if !spec.repeatable {
            if seen.contains(d.name) { throw ConfigError("\"\(d.name)\" directive is duplicate", at: d.location) }
            seen.insert(d.name)
        }
        return spec
    }

    /// Names longer than this get no "did you mean" hint (no directive name is nearly this long).
    static let maxSuggestedNameLength = 64

    /// The closest known directive name, for "did you mean" hints.
    static func suggestion(for name: String) -> String? {
        let a = Array(name.utf8)
        guard a.count <= maxSuggestedNameLength else { return nil }
        var best: (String, Int)? = nil
        for known in table.keys {
            let limit = max(1, min(3, known.count / 4))
            guard let d = editDistance(a, Array(known.utf8), atMost: limit) else { continue }
            if best == nil || d < best!.1 || (d == best!.1 && known < best!.0) {
                best = (known, d)
            }
        }
        return best?.0
    }

    /// Levenshtein distance of `a` and `b` when it is at most `limit`, else nil; gives up as soon
    /// as a whole row exceeds the limit.
    static func editDistance(_ a: [UInt8], _ b: [UInt8], atMost limit: Int) -> Int? {
        if abs(a.count - b.count) > limit { return nil }
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var prev = Array(0...b.count)
        var cur = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            cur[0] = i
            var rowMin = i
            for j in 1...b.count {
                cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
                rowMin = min(rowMin, cur[j])
            }
            if rowMin > limit { return nil }
            swap(&prev, &cur)
        }
        return prev[b.count] <= limit ? prev[b.count] : nil
    }

    // MARK: - Value helpers (nginx's wording)

    func invalidValue(_ d: Directive, _ t: Token? = nil) -> ConfigError {
        ConfigError("\"\(d.name)\" directive invalid value", at: (t ?? d.args.first)?.location ?? d.location)
    }

    func size(_ d: Directive, _ i: Int = 0) throws -> Int {
        guard let v = Values.size(d.args[i].text) else { throw invalidValue(d, d.args[i]) }
        return v
    }

    func time(_ d: Directive, _ i: Int = 0) throws -> Int {
        guard let v = Values.milliseconds(d.args[i].text) else { throw invalidValue(d, d.args[i]) }
        return v
    }

    func number(_ d: Directive, _ i: Int = 0) throws -> Int {
        guard let v = Values.number(d.args[i].text) else {
            throw ConfigError("invalid value \"\(d.args[i].text)\" in \"\(d.name)\" directive", at: d.args[i].location)
        }
        return v
    }

    func flag(_ d: Directive, _ i: Int = 0) -> Bool { Values.flag(d.args[i].text) ?? false }

    func template(_ t: Token) throws -> Template {
        let tpl: Template
        do { tpl = try Template(parsing: t.text) } catch { throw ConfigError(error.message, at: t.location) }
        for v in tpl.variables {
            switch v {
            case .named(let n): usedVariables.append((n, t.location))
            case .sentHeader, .upstreamHeader, .upstreamCookie: usesResponseHeaderVariables = true
            default: break
            }
        }
        return tpl
    }

    /// A path relative to the prefix (nginx's `ngx_conf_full_name`).
    func fullPath(_ p: String) -> String { joinPath(prefix, p) }

    func defineNamedCaptures(_ re: PCRE) {
        for (n, _) in re.names { definedVariables.insert(n) }
    }
}
