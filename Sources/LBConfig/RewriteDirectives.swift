/// The rewrite module's directives (`ngx_http_rewrite_module.c`): `rewrite`, `return`, `set`,
/// `break`, `if`, `rewrite_log`, `uninitialized_variable_warn`.
extension Compiler {
    /// Where rewrite-phase directives may appear: server, location and the blocks of `if`.
    static let rewriteContexts: Contexts = [.server, .location, .serverIf, .locationIf]

    static let rewriteDirectives: [DirectiveSpec] = [
        DirectiveSpec("rewrite", rewriteContexts, .between(2, 3), repeatable: true) { c, d in
            c.rewriteBuilder().append(.rewrite(try c.compileRewrite(d)), d)
        },
        DirectiveSpec("return", rewriteContexts, .between(1, 2), repeatable: true) { c, d in
            c.rewriteBuilder().append(.return(try c.compileReturn(d)), d)
        },
        DirectiveSpec("break", rewriteContexts, .none, repeatable: true) { c, d in
            c.rewriteBuilder().append(.break, d)
        },
        DirectiveSpec("set", rewriteContexts, .exactly(2), repeatable: true) { c, d in
            let name = d.args[0].text
            guard name.hasPrefix("$"), name.count > 1 else {
                throw ConfigError("invalid variable name \"\(name)\"", at: d.args[0].location)
            }
            let bare = String(name.dropFirst())
            let target: SetTarget
            switch Variable.resolve(bare) {
            case .named: target = .user(bare)
            case .args: target = .args
            default: throw ConfigError("the duplicate \"\(bare)\" variable", at: d.args[0].location)
            }
            if case .user(let n) = target {
                c.definedVariables.insert(n)
                c.setVariables.insert(n)
            }
            let value = try c.template(d.args[1])
            c.rewriteBuilder().append(.set(target, value), d)
        },
        DirectiveSpec("if", [.server, .location], .atLeast(1), block: true, repeatable: true) { c, d in
            try c.compileIf(d)
        },
        flagSetting("rewrite_log", [.http, .server, .location, .serverIf, .locationIf], default: "off", \.rewriteLog),
        flagSetting("uninitialized_variable_warn", [.http, .server, .location, .serverIf, .locationIf], default: "on",
                    \.uninitializedVariableWarn),
    ]

    /// Directives of other modules nginx allows inside an `if` of a location (`NGX_HTTP_LIF_CONF`)
    /// and lb knows; there they apply to the implicit location of the block.
    static let locationIfDirectives: Set<String> = [
        "proxy_pass", "add_header", "expires", "root", "access_log", "error_page", "gzip", "sendfile",
        "limit_rate", "limit_rate_after", "charset", "source_charset", "override_charset",
    ]

    /// The program being built: the current location's (an `if` block shares its location's), else
    /// the server's.
    func rewriteBuilder() -> RewriteBuilder {
        if let l = locationStack.last {
            if l.rewrite == nil { l.rewrite = RewriteBuilder() }
            return l.rewrite!
        }
        if server!.rewrite == nil { server!.rewrite = RewriteBuilder() }
        return server!.rewrite!
    }

    func compileRewrite(_ d: Directive) throws -> RewriteRule {
        let re = try compileRegex(d.args[0].text, caseless: false, at: d.args[0].location)
        defineNamedCaptures(re)
        var replacement = d.args[1].text
        if replacement.isEmpty { throw ConfigError("empty replacement", at: d.args[1].location) }
        var addArgs = true
        if replacement.hasSuffix("?") {
            // The last "?" drops the original arguments.
            replacement.removeLast()
            addArgs = false
        }
        var flag = RewriteRule.Flag.none
        if replacement.hasPrefix("http://") || replacement.hasPrefix("https://") || replacement.hasPrefix("$scheme") {
            flag = .redirect(302)
        }
        if d.args.count == 3 {
            switch d.args[2].text {
            case "last": if case .none = flag { flag = .last }
            case "break": if case .none = flag { flag = .break }
            case "redirect": flag = .redirect(302)
            case "permanent": flag = .redirect(301)
            default: throw ConfigError("invalid parameter \"\(d.args[2].text)\"", at: d.args[2].location)
            }
        }
        let redirect: Bool
        if case .redirect = flag { redirect = true } else { redirect = false }
        let hasQuestion = replacement.contains("?")
        var uriToken = d.args[1]
        uriToken.text = replacement
        var argsPart: Template? = nil
        if !redirect, let q = replacement.firstIndex(of: "?") {
            uriToken.text = String(replacement[..<q])
            var argsToken = d.args[1]
            argsToken.text = String(replacement[replacement.index(after: q)...])
            argsPart = try template(argsToken)
        }
        return RewriteRule(regex: re, replacement: try template(uriToken), argsPart: argsPart, hasQuestion: hasQuestion,
                           addArgs: addArgs, flag: flag, pattern: d.args[0].text)
    }

    /// `if (condition) { … }`: the condition becomes an op whose false branch jumps past the
    /// block; in a location, the block is also an implicit location the request takes when the
    /// condition holds.
    func compileIf(_ d: Directive) throws {
        let condition = try compileCondition(d)
        let program = rewriteBuilder()
        let opIndex = program.ops.count
        if let parent = locationStack.last {
            let implicit = LocationBuilder(match: parent.match, regex: parent.regex, location: d.location)
            implicit.rewrite = program
            implicit.isIfBlock = true
            let ifIndex = program.ifBlocks.count
            program.ifBlocks.append(implicit)
            program.append(.ifBlock(condition, location: ifIndex, end: -1), d)
            locationStack.append(implicit)
            let saved = settings
            settings = implicit.settings
            enter(d.block!, in: .locationIf) { [unowned self] in
                locationStack.removeLast()
                settings = saved
                program.ops[opIndex] = .ifBlock(condition, location: ifIndex, end: program.ops.count)
            }
        } else {
            program.append(.ifBlock(condition, location: nil, end: -1), d)
            enter(d.block!, in: .serverIf) {
                program.ops[opIndex] = .ifBlock(condition, location: nil, end: program.ops.count)
            }
        }
    }

    /// The condition in nginx's grammar (`ngx_http_rewrite_if_condition`), with its errors.
    func compileCondition(_ d: Directive) throws -> RewriteCondition {
        var args = d.args
        guard let first = args.first, first.text.hasPrefix("(") else {
            throw ConfigError("invalid condition \"\(d.args.first?.text ?? "")\"", at: d.location)
        }
        if first.text == "(" { args.removeFirst() } else { args[0].text.removeFirst() }
        guard let last = args.last, last.text.hasSuffix(")") else {
            throw ConfigError("invalid condition \"\(args.last?.text ?? d.args[0].text)\"", at: d.location)
        }
        if last.text == ")" { args.removeLast() } else { args[args.count - 1].text.removeLast() }
        guard let subject = args.first else { throw ConfigError("invalid condition \"\(d.args[0].text)\"", at: d.location) }
        let p = subject.text
        if p.count > 1 && p.hasPrefix("$") {
            guard args.count == 1 || args.count == 3 else {
                throw ConfigError("invalid condition \"\(p)\"", at: d.location)
            }
            let variable = try template(subject)
            if args.count == 1 { return .truthy(variable) }
            let op = args[1].text
            switch op {
            case "=", "!=":
                return .equal(variable, try template(args[2]), negate: op == "!=")
            case "~", "~*", "!~", "!~*":
                let re = try compileRegex(args[2].text, caseless: op.hasSuffix("*"), at: args[2].location)
                defineNamedCaptures(re)
                return .regex(variable, re, negate: op.hasPrefix("!"))
            default:
                throw ConfigError("unexpected \"\(op)\" in condition", at: d.location)
            }
        }
        let tests: [String: FileTest] = ["f": .plain, "d": .directory, "e": .exists, "x": .executable]
        if (p.count == 2 && p.hasPrefix("-")) || (p.count == 3 && p.hasPrefix("!-")) {
            guard args.count == 2 else { throw ConfigError("invalid condition \"\(p)\"", at: d.location) }
            guard let kind = tests[String(p.last!)] else { throw ConfigError("invalid condition \"\(p)\"", at: d.location) }
            return .file(try template(args[1]), kind, negate: p.hasPrefix("!"))
        }
        throw ConfigError("invalid condition \"\(p)\"", at: d.location)
    }

    /// Freezes a location's rewrite program: its `if` blocks become implicit locations that
    /// inherit the location's merged settings and its `proxy_pass` unless they set their own.
    func finishRewrite(_ b: RewriteBuilder?, parent settings: HTTPSettings, parentHandler: Handler,
                       makeTarget: (LocationBuilder, (url: String, location: SourceLocation)) throws -> ProxyTarget) throws -> RewriteProgram? {
        guard let b else { return nil }
        var ifLocations: [Location] = []
        for ib in b.ifBlocks {
            var s = ib.settings.s
            s.inherit(from: settings)
            var handler = parentHandler
            if case .return = parentHandler { handler = .static }
            if let pp = ib.proxyPass {
                let t = try makeTarget(ib, pp)
                if t.uri != nil {
                    throw ConfigError("\"proxy_pass\" cannot have URI part in location given by regular expression, or inside named location, or inside \"if\" statement, or inside \"limit_except\" block", at: pp.location)
                }
                handler = .proxy(t)
            }
            ifLocations.append(Location(match: ib.match, regex: ib.regex, handler: handler, settings: s, tryFiles: nil,
                                        internalOnly: false, nested: LocationTree(), location: ib.location,
                                        autoRedirect: false, id: -1))
        }
        return RewriteProgram(ops: b.ops, ifLocations: ifLocations, origins: b.origins)
    }
}

/// A rewrite program being compiled (one per server and location; an `if` block adds to its
/// location's).
final class RewriteBuilder {
    var ops: [RewriteOp] = []
    /// Where each op was written (`RewriteProgram.origins`).
    var origins: [RewriteOrigin] = []

    func append(_ op: RewriteOp, _ d: Directive) {
        ops.append(op)
        origins.append(RewriteOrigin(location: d.location, text: ([d.name] + d.args.map(\.text)).joined(separator: " ")))
    }
    /// The `if` blocks of a location, in order: their implicit locations.
    var ifBlocks: [LocationBuilder] = []
}
