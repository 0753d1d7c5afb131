/// server and location directives: listen, names, locations, files, responses.
extension Compiler {
    static let serverDirectives: [DirectiveSpec] = [
        DirectiveSpec("listen", .server, .atLeast(1), repeatable: true, default: "*:80") { c, d in try c.compileListen(d) },
        DirectiveSpec("server_name", .server, .atLeast(1), repeatable: true, default: "\"\"") { c, d in
            for a in d.args {
                if a.text.hasPrefix("~") {
                    c.defineNamedCaptures(try compileRegex(String(a.text.dropFirst()), caseless: true, at: a.location))
                } else if a.text.contains("*") && !(a.text.hasPrefix("*.") || a.text.hasSuffix(".*")) {
                    throw ConfigError("invalid server name or wildcard \"\(a.text)\"", at: a.location)
                }
                c.server!.names.append(a.text)
            }
        },
        DirectiveSpec("location", .sl, .between(1, 2), block: true, repeatable: true) { c, d in try c.compileLocation(d) },
        DirectiveSpec("root", .hsl, .exactly(1), default: "html") { c, d in
            if c.context == .location, case .alias = c.settings.s.docRoot {
                throw ConfigError("\"root\" directive is duplicate, \"alias\" directive was specified earlier", at: d.location)
            }
            var t = d.args[0]
            if !t.text.hasPrefix("/") && !t.text.hasPrefix("$") { t.text = c.fullPath(t.text) }
            // nginx drops a root's trailing `/` as it reads it (`root /srv/www/;` is `/srv/www`,
            // `$document_root` too); the URI brings its own.
            if t.text.hasSuffix("/") { t.text.removeLast() }
            c.settings.s.docRoot = .root(try c.template(t))
        },
        DirectiveSpec("alias", .location, .exactly(1)) { c, d in
            if case .root = c.settings.s.docRoot {
                throw ConfigError("\"alias\" directive is duplicate, \"root\" directive was specified earlier", at: d.location)
            }
            if case .named = c.locationStack.last!.match {
                throw ConfigError("\"alias\" directive cannot be used inside the named location", at: d.location)
            }
            var t = d.args[0]
            if !t.text.hasPrefix("/") && !t.text.hasPrefix("$") { t.text = c.fullPath(t.text) }
            let length: Int? = switch c.locationStack.last!.match {
            case .prefix(let p), .prefixNoRegex(let p), .exact(let p): p.utf8.count
            case .regex, .named: nil
            }
            c.settings.s.docRoot = .alias(try c.template(t), locationLength: length)
        },
        setting("index", .atLeast(1), default: "index.html", \.index) { c, d in
            try d.args.map { a in
                guard !a.text.isEmpty else { throw ConfigError("index \"\" in \"index\" directive is invalid", at: a.location) }
                return try c.template(a)
            }
        },
        DirectiveSpec("try_files", .sl, .atLeast(2)) { c, d in
            let tf = try TryFiles(d.args, template: c.template)
            if let l = c.locationStack.last { l.tryFiles = tf } else { c.server!.tryFiles = tf }
        },
        DirectiveSpec("error_page", .hsl, .atLeast(2), repeatable: true) { c, d in
            var args = d.args
            let target = args.removeLast()
            var override = ErrorPage.Override.keep
            if let o = args.last, o.text.hasPrefix("=") {
                args.removeLast()
                if o.text == "=" { override = .fromTarget } else {
                    guard let code = Values.number(String(o.text.dropFirst())), (100...599).contains(code) else {
                        throw ConfigError("invalid value \"\(o.text)\"", at: o.location)
                    }
                    override = .code(code)
                }
            }
            guard !args.isEmpty else { throw ConfigError("invalid number of arguments in \"error_page\" directive", at: d.location) }
            var codes: [Int] = []
            for a in args {
                guard let code = Values.number(a.text), (300...599).contains(code) else {
                    throw ConfigError("value \"\(a.text)\" must be between 300 and 599", at: a.location)
                }
                codes.append(code)
            }
            let page = ErrorPage(codes: codes, override: override, target: try c.template(target))
            c.appendArray(\.errorPages, page)
        },
        DirectiveSpec("add_header", .hsl, .between(2, 3), repeatable: true) { c, d in
            if d.args.count == 3 && d.args[2].text != "always" {
                throw ConfigError("invalid parameter \"\(d.args[2].text)\"", at: d.args[2].location)
            }
            let h = AddHeader(name: d.args[0].text, value: try c.template(d.args[1]), always: d.args.count == 3)
            c.appendArray(\.addHeaders, h)
        },
        DirectiveSpec("expires", .hsl, .between(1, 2), default: "off") { c, d in
            c.settings.s.expires = try c.compileExpires(d)
        },
        DirectiveSpec("internal", .location, .none) { c, _ in c.locationStack.last!.internalOnly = true },
        DirectiveSpec("allow", [.http, .server, .location, .limitExcept], .exactly(1), repeatable: true) { c, d in try c.accessRule(d, allow: true) },
        // ngx_http_realip_module: the client address from a header sent by trusted proxies.
        DirectiveSpec("set_real_ip_from", .hsl, .exactly(1), repeatable: true) { c, d in
            let v = d.args[0].text
            guard let n = parseCIDR(v) else { throw ConfigError("invalid parameter \"\(v)\"", at: d.args[0].location) }
            c.appendArray(\.realIPFrom, n)
        },
        setting("real_ip_header", .exactly(1), default: "X-Real-IP", \.realIPHeader) { _, d in
            let v = d.args[0].text
            return v.lowercased()
        },
        flagSetting("real_ip_recursive", default: "off", \.realIPRecursive),
        DirectiveSpec("deny", [.http, .server, .location, .limitExcept], .exactly(1), repeatable: true) { c, d in try c.accessRule(d, allow: false) },
        flagSetting("autoindex", default: "off", \.autoindex),
        flagSetting("etag", default: "on", \.etag),
        DirectiveSpec("limit_except", .location, .atLeast(1), block: true, note: "accepted; allow/deny inside apply to the location") { c, d in
            try c.walk(d.block!, in: .limitExcept)
        },
    ]

    /// Array-valued inheritable settings are replaced as a whole by the first entry at a level.
    func appendArray<T>(_ kp: WritableKeyPath<HTTPSettings, [T]?>, _ v: T) {
        settings.s[keyPath: kp] = (settings.s[keyPath: kp] ?? []) + [v]
    }

    func accessRule(_ d: Directive, allow: Bool) throws {
        let v = d.args[0].text
        var rule = AccessRule(allow: allow, network: nil)
        if v != "all" {
            guard let n = parseCIDR(v) else { throw ConfigError("invalid parameter \"\(v)\"", at: d.args[0].location) }
            rule.network = n
        }
        appendArray(\.accessRules, rule)
    }

    func compileReturn(_ d: Directive) throws -> ReturnAction {
        let first = d.args[0].text
        if d.args.count == 1, let code = Values.number(first) {
            guard code <= 999 else { throw ConfigError("invalid return code \"\(first)\"", at: d.args[0].location) }
            return ReturnAction(code: code, text: nil)
        }
        if d.args.count == 1 {
            // `return URL;` is a 302 to an absolute URL.
            guard first.hasPrefix("http://") || first.hasPrefix("https://") || first.hasPrefix("$scheme") else {
                throw ConfigError("invalid return code \"\(first)\"", at: d.args[0].location)
            }
            return ReturnAction(code: 302, text: try template(d.args[0]))
        }
        guard let code = Values.number(first), code <= 999 else {
            throw ConfigError("invalid return code \"\(first)\"", at: d.args[0].location)
        }
        return ReturnAction(code: code, text: try template(d.args[1]))
    }

    /// `expires [modified] TIME|epoch|max|off`; a value with variables is read per response.
    func compileExpires(_ d: Directive) throws -> Expires {
        var modified = false
        if d.args.count == 2 {
            guard d.args[0].text == "modified" else { throw invalidValue(d, d.args[0]) }
            modified = true
        }
        let arg = d.args[d.args.count - 1]
        let t = try template(arg)
        if !t.variables.isEmpty { return .variable(t, modified: modified) }
        do {
            return try Expires.parse(arg.text, modified: modified)
        } catch {
            throw ConfigError("\"expires\" directive \(error.reason)", at: arg.location)
        }
    }

    func compileListen(_ d: Directive) throws {
        let a = d.args[0]
        var parsed = HostPort.parse(a.text, portOnlyAllowed: true)
        if a.text.hasPrefix("unix:") {
            let path = a.text.dropFirst(5)
            guard let unix = HostPort.unix(path) else {
                throw ConfigError("\(path.isEmpty ? "no" : "too long") path in the unix domain socket in \"\(a.text)\" of the \"listen\" directive", at: a.location)
            }
            parsed = unix
        }
        guard var hp = parsed else {
            throw ConfigError("invalid port in \"\(a.text)\" of the \"listen\" directive", at: a.location)
        }
        if hp.port == nil && !hp.isUnix {
            // `listen 127.0.0.1;` means port 80.
            hp.port = 80
        }
        if hp.host == "*" { hp.host = "0.0.0.0" }
        var spec = ListenSpec(address: hp, defaultServer: false, reuseport: false, backlog: nil, ipv6only: nil, location: d.location)
        for p in d.args.dropFirst() {
            let t = p.text
            switch t {
            case "default_server", "default": spec.defaultServer = true
            case "reuseport": spec.reuseport = true
            case "bind", "deferred": break
            case "ssl": spec.ssl = true
            case "http2": spec.http2 = true
            case "proxy_protocol": spec.proxyProtocol = true
            case "quic":
                throw ConfigError("the \"\(t)\" listen parameter is not supported by lb", at: p.location)
            default:
                if t.hasPrefix("backlog=") {
                    guard let n = Values.number(String(t.dropFirst(8))), n > 0 else { throw ConfigError("invalid backlog \"\(t.dropFirst(8))\"", at: p.location) }
                    spec.backlog = n
                } else if t.hasPrefix("ipv6only=") {
                    guard let f = Values.flag(String(t.dropFirst(9))) else { throw ConfigError("invalid ipv6only flags \"\(t.dropFirst(9))\"", at: p.location) }
                    spec.ipv6only = f
                } else if t.hasPrefix("rcvbuf=") || t.hasPrefix("sndbuf=") || t.hasPrefix("so_keepalive=") || t.hasPrefix("fastopen=") || t.hasPrefix("setfib=") || t.hasPrefix("accept_filter=") {
                    continue
                } else {
                    throw ConfigError("invalid parameter \"\(t)\"", at: p.location)
                }
            }
        }
        // A host name listens on every address it resolves to, as nginx does.
        if !isIPLiteral(hp.host) && hp.host != "0.0.0.0" && !hp.isUnix {
            let addrs = resolver.resolve(hp.host)
            guard !addrs.isEmpty else { throw ConfigError("host not found in \"\(a.text)\" of the \"listen\" directive", at: a.location) }
            for addr in addrs {
                var s = spec
                s.address = HostPort(host: addr, port: hp.port)
                server!.listens.append(s)
            }
            return
        }
        server!.listens.append(spec)
    }

    func compileLocation(_ d: Directive) throws {
        var modifier = ""
        var pattern: String
        var patternToken = d.args[0]
        if d.args.count == 2 {
            modifier = d.args[0].text
            pattern = d.args[1].text
            patternToken = d.args[1]
        } else {
            let t = d.args[0].text
            pattern = t
            for m in ["^~", "~*", "=", "~"] where t.hasPrefix(m) && t.count > m.count && !t.hasPrefix("@") {
                modifier = m
                pattern = String(t.dropFirst(m.count))
                break
            }
        }
        let match: Location.Match
        var regex: PCRE? = nil
        switch modifier {
        case "=": match = .exact(pattern)
        case "^~": match = .prefixNoRegex(pattern)
        case "~", "~*":
            regex = try compileRegex(pattern, caseless: modifier == "~*", at: patternToken.location)
            defineNamedCaptures(regex!)
            match = .regex(pattern, caseless: modifier == "~*")
        case "":
            match = pattern.hasPrefix("@") ? .named(String(pattern.dropFirst())) : .prefix(pattern)
        default:
            throw ConfigError("invalid location modifier \"\(modifier)\"", at: d.args[0].location)
        }
        if let parent = locationStack.last {
            switch parent.match {
            case .exact(let p): throw ConfigError("location \"\(pattern)\" cannot be inside the exact location \"\(p)\"", at: d.location)
            case .named(let p): throw ConfigError("location \"\(pattern)\" cannot be inside the named location \"@\(p)\"", at: d.location)
            default: break
            }
            if case .named = match { throw ConfigError("named location \"\(pattern)\" can be on the server level only", at: d.location) }
            switch (parent.match, match) {
            case (.prefix(let p), .prefix(let c)), (.prefix(let p), .prefixNoRegex(let c)), (.prefix(let p), .exact(let c)),
                 (.prefixNoRegex(let p), .prefix(let c)), (.prefixNoRegex(let p), .prefixNoRegex(let c)), (.prefixNoRegex(let p), .exact(let c)):
                if !c.hasPrefix(p) { throw ConfigError("location \"\(c)\" is outside location \"\(p)\"", at: d.location) }
            default: break
            }
        }
        let key: String?
        switch match {
        case .exact(let p): key = "=" + p
        case .prefix(let p), .prefixNoRegex(let p): key = "/" + p
        case .named(let p): key = "@" + p
        case .regex: key = nil
        }
        if let key {
            let inserted = locationStack.last.map { $0.childKeys.insert(key).inserted } ?? server!.locationKeys.insert(key).inserted
            if !inserted {
                throw ConfigError("duplicate location \"\(key.hasPrefix("@") ? "@" : "")\(pattern.hasPrefix("@") ? String(pattern.dropFirst()) : pattern)\"", at: d.location)
            }
        }
        let l = LocationBuilder(match: match, regex: regex, location: d.location)
        if let parent = locationStack.last { parent.children.append(l) } else { server!.locations.append(l) }
        locationStack.append(l)
        let saved = settings
        settings = l.settings
        // Nested locations nest without bound: the walk enters the block itself, no recursion.
        enter(d.block!, in: .location) { [unowned self] in
            locationStack.removeLast()
            settings = saved
        }
    }
}
