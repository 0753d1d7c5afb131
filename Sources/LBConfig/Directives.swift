/// The directive table: one row per directive and context, as nginx's module command arrays.
extension Compiler {
    static let table: [String: [DirectiveSpec]] = {
        var rows: [DirectiveSpec] = mainDirectives + httpDirectives + serverDirectives + proxyDirectives
            + cacheDirectives + upstreamDirectives + stackDirectives + operationsDirectives + tlsDirectives + resolverDirectives
            + proxySSLDirectives + limitDirectives + authDirectives + fastcgiDirectives + uwsgiDirectives + rewriteDirectives
            + responseDirectives + requestBodyDirectives + cookieFlagsDirectives
        for (name, ctx, args) in acceptedNoOps {
            rows.append(DirectiveSpec(name, ctx, args, repeatable: true, note: "accepted for compatibility; no effect in lb") { _, _ in })
        }
        for (name, ctx, args, replacement) in obsoleteDirectives {
            rows.append(DirectiveSpec(name, ctx, args, repeatable: true, note: "obsolete (as in nginx); ignored with a warning, use \"\(replacement)\"") { c, d in
                c.warnings.append(ConfigError("the \"\(name)\" directive is obsolete, use the \"\(replacement)\" directive instead", at: d.location))
            })
        }
        var t: [String: [DirectiveSpec]] = [:]
        for r in rows { t[r.name, default: []].append(r) }
        return t
    }()

    /// Every row, for documentation.
    public static var allDirectives: [DirectiveSpec] { table.values.flatMap { $0 }.sorted { $0.name < $1.name } }

    /// An inheritable setting written into the current level's `HTTPSettings`.
    static func setting<T>(_ name: String, _ ctx: Contexts = .hsl, _ args: ArgumentShape, default def: String?,
                           _ kp: WritableKeyPath<HTTPSettings, T?>,
                           _ parse: @escaping @Sendable (Compiler, Directive) throws -> T) -> DirectiveSpec {
        nonisolated(unsafe) let kp = kp
        return DirectiveSpec(name, ctx, args, default: def) { c, d in c.settings.s[keyPath: kp] = try parse(c, d) }
    }

    static func setting<T>(_ name: String, _ args: ArgumentShape, default def: String?,
                           _ kp: WritableKeyPath<HTTPSettings, T?>,
                           _ parse: @escaping @Sendable (Compiler, Directive) throws -> T) -> DirectiveSpec {
        setting(name, .hsl, args, default: def, kp, parse)
    }

    static func flagSetting(_ name: String, _ ctx: Contexts = .hsl, default def: String, _ kp: WritableKeyPath<HTTPSettings, Bool?>) -> DirectiveSpec {
        setting(name, ctx, .flag, default: def, kp) { c, d in c.flag(d) }
    }

    static func timeSetting(_ name: String, _ ctx: Contexts = .hsl, default def: String, _ kp: WritableKeyPath<HTTPSettings, Int?>) -> DirectiveSpec {
        setting(name, ctx, .exactly(1), default: def, kp) { c, d in try c.time(d) }
    }

    static func sizeSetting(_ name: String, _ ctx: Contexts = .hsl, default def: String, _ kp: WritableKeyPath<HTTPSettings, Int?>) -> DirectiveSpec {
        setting(name, ctx, .exactly(1), default: def, kp) { c, d in try c.size(d) }
    }

    static func numberSetting(_ name: String, _ ctx: Contexts = .hsl, default def: String, _ kp: WritableKeyPath<HTTPSettings, Int?>) -> DirectiveSpec {
        setting(name, ctx, .exactly(1), default: def, kp) { c, d in try c.number(d) }
    }

    /// A directive whose arguments must each come from a fixed set of words.
    static func wordSet(_ d: Directive, allowed: Set<String>) throws -> Set<String> {
        var out: Set<String> = []
        for a in d.args {
            guard allowed.contains(a.text) else { throw ConfigError("invalid value \"\(a.text)\"", at: a.location) }
            out.insert(a.text)
        }
        if out.contains("off") && out.count > 1 { throw ConfigError("invalid value \"off\"", at: d.location) }
        return out.contains("off") ? [] : out
    }

    /// `open_file_cache off | max=N [inactive=TIME]` as nginx reads it: parameters in any order,
    /// `off` anywhere wins (after every parameter was checked), `max` is required otherwise.
    static func openFileCacheZone(_ d: Directive) throws -> OpenFileCacheZone? {
        var max = 0
        var inactiveMs = 60_000
        var off = false
        for a in d.args {
            let t = a.text
            if t.hasPrefix("max=") {
                let v = t.dropFirst(4)
                if !v.isEmpty, v.allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int(v), n > 0 { max = n; continue }
            } else if t.hasPrefix("inactive=") {
                if let ms = seconds(String(t.dropFirst(9))) { inactiveMs = ms; continue }
            } else if t == "off" {
                off = true
                continue
            }
            throw ConfigError("invalid \"open_file_cache\" parameter \"\(t)\"", at: d.location)
        }
        if off { return nil }
        guard max > 0 else { throw ConfigError("\"open_file_cache\" must have the \"max\" parameter", at: d.location) }
        return OpenFileCacheZone(max: max, inactiveMs: inactiveMs)
    }

    /// A time in whole seconds (nginx's `ngx_parse_time` for seconds: no `ms`), in milliseconds.
    static func seconds(_ s: String) -> Int? {
        s.contains("ms") ? nil : Values.milliseconds(s)
    }

    // MARK: main and events

    static let mainDirectives: [DirectiveSpec] = [
        DirectiveSpec("worker_processes", .main, .exactly(1), default: "1") { c, d in
            if d.args[0].text == "auto" { c.workerProcesses = nil; return }
            let n = try c.number(d)
            guard n >= 1 else { throw c.invalidValue(d) }
            c.workerProcesses = n
        },
        DirectiveSpec("pid", .main, .exactly(1), default: "none (lb writes no pid file unless asked)") { c, d in
            c.pid = d.args[0].text == "off" ? nil : c.fullPath(d.args[0].text)
        },
        DirectiveSpec("error_log", [.main, .http, .server, .location], .between(1, 2), repeatable: true, default: "stderr error") { c, d in
            let log = try c.errorLog(d)
            if c.context == .main { c.mainErrorLogs.append(log) } else { c.settings.s.errorLog = log }
        },
        DirectiveSpec("daemon", .main, .flag, default: "off", note: "lb always runs in the foreground; \"on\" is accepted and ignored") { c, d in c.daemon = c.flag(d) },
        DirectiveSpec("master_process", .main, .flag, default: "on", note: "accepted; lb is always one process with worker threads") { c, d in c.masterProcess = c.flag(d) },
        DirectiveSpec("user", .main, .between(1, 2), note: "accepted; lb does not change user") { c, d in c.user = d.args[0].text },
        DirectiveSpec("worker_rlimit_nofile", .main, .exactly(1)) { c, d in c.workerRlimitNofile = try c.number(d) },
        DirectiveSpec("worker_shutdown_timeout", .main, .exactly(1)) { c, d in c.workerShutdownTimeoutMs = try c.time(d) },
        DirectiveSpec("load_module", .main, .exactly(1), repeatable: true, note: "lb has no dynamic modules: a warning, and the module's directives stay unknown") { c, d in
            c.warnings.append(ConfigError("module \"\(d.args[0].text)\" is not loaded: lb has no dynamic modules", at: d.location))
        },
        DirectiveSpec("events", .main, .none, block: true) { c, d in
            c.sawEvents = true
            try c.walk(d.block!, in: .events)
        },
        DirectiveSpec("worker_connections", .events, .exactly(1), default: "512") { c, d in
            let n = try c.number(d)
            guard n >= 1 else { throw c.invalidValue(d) }
            c.workerConnections = n
        },
        DirectiveSpec("http", .main, .none, block: true) { c, d in
            c.sawHTTP = true
            c.settings = c.httpSettings
            try c.walk(d.block!, in: .http)
        },
    ]

    func errorLog(_ d: Directive) throws -> ErrorLog {
        var level = ErrorLog.Level.error
        if d.args.count == 2 {
            guard let l = ErrorLog.Level.allCases.first(where: { $0.name == d.args[1].text }) else {
                throw ConfigError("invalid log level \"\(d.args[1].text)\"", at: d.args[1].location)
            }
            level = l
        }
        let p = d.args[0].text
        if p == "stderr" || p.hasPrefix("syslog:") { return ErrorLog(path: p, level: level) }
        logFiles.append((fullPath(p), d.args[0].location))
        return ErrorLog(path: fullPath(p), level: level)
    }

    // MARK: http-wide settings

    static let httpDirectives: [DirectiveSpec] = [
        // Several `types` blocks at one level add up, as in nginx (`include mime.types;` followed by
        // a `types { … }` of one's own); an extension named twice takes the later type, with a warning.
        DirectiveSpec("types", .hsl, .none, block: true, repeatable: true,
                      default: "text/html html; image/gif gif; image/jpeg jpg;") { c, d in
            var t = c.settings.s.types ?? [:]
            for e in d.block! {
                if e.block != nil { throw ConfigError("unexpected \"{\"", at: e.location) }
                if e.args.isEmpty { throw ConfigError("invalid number of arguments in \"types\" directive", at: e.location) }
                for ext in e.args {
                    let key = ext.text.lowercased()
                    if let previous = t[key] {
                        c.warnings.append(ConfigError("duplicate extension \"\(ext.text)\", content type: \"\(e.name)\", previous content type: \"\(previous)\"", at: ext.location))
                    }
                    t[key] = e.name
                }
            }
            c.settings.s.types = t
        },
        setting("default_type", .exactly(1), default: "text/plain", \.defaultType) { _, d in d.args[0].text },
        DirectiveSpec("log_format", .http, .atLeast(2), repeatable: true) { c, d in
            let name = d.args[0].text
            if c.logFormats[name] != nil { throw ConfigError("duplicate \"log_format\" name \"\(name)\"", at: d.args[0].location) }
            var parts = Array(d.args.dropFirst())
            var escape = LogFormat.Escape.default
            if let f = parts.first, f.text.hasPrefix("escape=") {
                switch f.text.dropFirst(7) {
                case "default": escape = .default
                case "json": escape = .json
                case "none": escape = .none
                default: throw ConfigError("unknown log format escaping \"\(f.text.dropFirst(7))\"", at: f.location)
                }
                parts.removeFirst()
            }
            guard !parts.isEmpty else { throw ConfigError("invalid number of arguments in \"log_format\" directive", at: d.location) }
            var tpl = Template(literal: "")
            tpl.source = parts.map(\.text).joined()
            for p in parts { tpl.parts += try c.template(p).parts }
            c.logFormats[name] = LogFormat(name: name, escape: escape, template: tpl)
        },
        DirectiveSpec("access_log", .hsl, .atLeast(1), repeatable: true, default: "logs/access.log combined") { c, d in
            if d.args[0].text == "off" {
                guard d.args.count == 1 else { throw ConfigError("invalid parameter \"\(d.args[1].text)\"", at: d.args[1].location) }
                c.settings.s.accessLogOff = true
                c.settings.s.accessLogs = []
                return
            }
            var format = "combined"
            var buffer: Int? = nil, flush: Int? = nil, cond: Template? = nil
            for (i, a) in d.args.enumerated().dropFirst() {
                if a.text.hasPrefix("buffer=") {
                    guard let b = Values.size(String(a.text.dropFirst(7))) else { throw ConfigError("invalid buffer size \"\(a.text)\"", at: a.location) }
                    buffer = b
                } else if a.text.hasPrefix("flush=") {
                    guard let f = Values.milliseconds(String(a.text.dropFirst(6))) else { throw ConfigError("invalid flush time \"\(a.text)\"", at: a.location) }
                    flush = f
                } else if a.text.hasPrefix("if=") {
                    var t = a
                    t.text = String(a.text.dropFirst(3))
                    cond = try c.template(t)
                } else if a.text == "gzip" || a.text.hasPrefix("gzip=") {
                    throw ConfigError("gzip-compressed access logs are not supported by lb", at: a.location)
                } else if i == 1 {
                    format = a.text
                } else {
                    throw ConfigError("invalid parameter \"\(a.text)\"", at: a.location)
                }
            }
            guard let logFormat = c.logFormats[format] else { throw ConfigError("unknown log format \"\(format)\"", at: d.args[1].location) }
            let p = d.args[0].text
            if !(p == "stderr" || p == "/dev/stdout" || p.hasPrefix("syslog:") || p.contains("$")) {
                c.logFiles.append((c.fullPath(p), d.args[0].location))
            }
            let log = AccessLog(path: p == "stderr" || p == "/dev/stdout" || p.hasPrefix("syslog:") ? p : c.fullPath(p),
                                format: format, logFormat: logFormat, bufferSize: buffer, flushMs: flush, condition: cond)
            if c.settings.s.accessLogOff == true { c.settings.s.accessLogOff = nil; c.settings.s.accessLogs = [] }
            c.settings.s.accessLogs = (c.settings.s.accessLogs ?? []) + [log]
        },
        flagSetting("sendfile", default: "off", \.sendfile),
        flagSetting("tcp_nopush", default: "off", \.tcpNopush),
        flagSetting("tcp_nodelay", default: "on", \.tcpNodelay),
        flagSetting("http2", .hs, default: "off", \.http2),
        numberSetting("http2_max_concurrent_streams", .hs, default: "128", \.http2MaxConcurrentStreams),
        sizeSetting("http2_recv_buffer_size", .http, default: "256k", \.http2RecvBufferSize),
        sizeSetting("http2_chunk_size", default: "8k", \.http2ChunkSize),
        sizeSetting("http2_body_preread_size", .hs, default: "64k", \.http2BodyPrereadSize),
        DirectiveSpec("keepalive_timeout", .hsl, .between(1, 2), default: "75s") { c, d in
            c.settings.s.keepaliveTimeoutMs = try c.time(d)
            if d.args.count == 2 { c.settings.s.keepaliveHeaderSeconds = try c.time(d, 1) / 1000 }
        },
        numberSetting("keepalive_requests", default: "1000", \.keepaliveRequests),
        timeSetting("keepalive_time", default: "1h", \.keepaliveTimeMs),
        timeSetting("send_timeout", default: "60s", \.sendTimeoutMs),
        timeSetting("client_body_timeout", default: "60s", \.clientBodyTimeoutMs),
        timeSetting("client_header_timeout", .hs, default: "60s", \.clientHeaderTimeoutMs),
        sizeSetting("client_max_body_size", default: "1m", \.clientMaxBodySize),
        sizeSetting("client_body_buffer_size", default: "16k", \.clientBodyBufferSize),
        // Request bodies larger than client_body_buffer_size go to anonymous files here (the
        // levels arguments are accepted; lb's files have no names to spread over directories).
        setting("client_body_temp_path", .between(1, 4), default: "client_body_temp", \.clientBodyTempPath) { c, d in
            for a in d.args.dropFirst() where Int(a.text).map({ !(1...2).contains($0) }) ?? true {
                throw ConfigError("invalid value \"\(a.text)\" in \"client_body_temp_path\" directive", at: a.location)
            }
            return d.args[0].text
        },
        sizeSetting("client_header_buffer_size", .hs, default: "1k", \.clientHeaderBufferSize),
        DirectiveSpec("large_client_header_buffers", .hs, .exactly(2), default: "4 8k") { c, d in
            let n = try c.number(d), s = try c.size(d, 1)
            guard n >= 1, s >= 16 else { throw c.invalidValue(d) }
            c.settings.s.largeClientHeaderBuffers = (n, s)
        },
        DirectiveSpec("server_tokens", .hsl, .exactly(1), default: "on") { c, d in
            switch d.args[0].text {
            case "on", "build": c.settings.s.serverTokens = true
            case "off": c.settings.s.serverTokens = false
            default: throw ConfigError("invalid value \"\(d.args[0].text)\" in \"server_tokens\" directive, it must be \"on\", \"off\" or \"build\"", at: d.args[0].location)
            }
        },
        flagSetting("gzip", default: "off", \.gzip),
        setting("gzip_types", .atLeast(1), default: "text/html", \.gzipTypes) { _, d in d.values },
        sizeSetting("gzip_min_length", default: "20", \.gzipMinLength),
        setting("gzip_comp_level", .exactly(1), default: "1", \.gzipCompLevel) { c, d in
            let n = try c.number(d)
            guard (1...9).contains(n) else { throw ConfigError("the \"gzip_comp_level\" value must be between 1 and 9", at: d.args[0].location) }
            return n
        },
        flagSetting("gzip_vary", default: "off", \.gzipVary),
        setting("gzip_disable", .atLeast(1), default: "none", \.gzipDisable) { _, d in
            var g = GzipDisable(regexes: [], msie6: false)
            for a in d.args {
                if a.text == "msie6" { g.msie6 = true; continue }
                g.regexes.append(try compileRegex(a.text, caseless: true, at: a.location))
            }
            return g
        },
        setting("gzip_http_version", .exactly(1), default: "1.1", \.gzipHTTP10) { _, d in
            switch d.args[0].text {
            case "1.1": return false
            case "1.0": return true
            default: throw ConfigError("invalid value \"\(d.args[0].text)\" in \"gzip_http_version\" directive", at: d.args[0].location)
            }
        },
        setting("gzip_proxied", .atLeast(1), default: "off", \.gzipProxied) { _, d in
            try keywords(d, GzipProxied.words)
        },
        setting("gzip_static", .exactly(1), default: "off", \.gzipStatic) { _, d in
            guard ["on", "off", "always"].contains(d.args[0].text) else { throw ConfigError("invalid value \"\(d.args[0].text)\"", at: d.args[0].location) }
            return d.args[0].text != "off"
        },
        setting("if_modified_since", .exactly(1), default: "exact", \.ifModifiedSince) { _, d in
            switch d.args[0].text {
            case "off": return .off
            case "exact": return .exact
            case "before": return .before
            default: throw ConfigError("invalid value \"\(d.args[0].text)\" in \"if_modified_since\" directive, it must be \"off\", \"exact\" or \"before\"", at: d.args[0].location)
            }
        },
        numberSetting("max_ranges", default: "unlimited", \.maxRanges),
        flagSetting("absolute_redirect", default: "on", \.absoluteRedirect),
        flagSetting("port_in_redirect", default: "on", \.portInRedirect),
        flagSetting("server_name_in_redirect", default: "off", \.serverNameInRedirect),
        flagSetting("recursive_error_pages", default: "off", \.recursiveErrorPages),
        flagSetting("log_not_found", default: "on", \.logNotFound),
        flagSetting("merge_slashes", .hs, default: "on", \.mergeSlashes),
        flagSetting("chunked_transfer_encoding", default: "on", \.chunkedTransferEncoding),
        flagSetting("underscores_in_headers", .hs, default: "off", \.underscoresInHeaders),
        flagSetting("ignore_invalid_headers", .hs, default: "on", \.ignoreInvalidHeaders),
        DirectiveSpec("charset", .hsl, .exactly(1), default: "off",
                      note: "adds `; charset=NAME` to Content-Type of text/html, text/xml, text/plain, text/vnd.wap.wml, application/javascript and application/rss+xml responses that name none") { c, d in
            let v = d.args[0].text
            if v.hasPrefix("$") {
                // As nginx: one variable, whose value names the charset per response.
                c.settings.s.charset = .some(.variable(try c.template(d.args[0])))
                return
            }
            c.settings.s.charset = .some(v == "off" ? nil : .name(v))
        },
        setting("charset_types", .atLeast(1), default: "text/html text/xml text/plain text/vnd.wap.wml application/javascript application/rss+xml", \.charsetTypes) { _, d in
            Set(d.args.map { $0.text.lowercased() })
        },
        DirectiveSpec("source_charset", .hsl, .exactly(1)) { _, d in
            throw ConfigError("\"source_charset\" is not supported by lb: it converts no charsets (\"charset\" only names one in Content-Type)", at: d.location)
        },
        setting("limit_rate", .exactly(1), default: "0", \.limitRate) { c, d in try c.rateSize(d) },
        setting("limit_rate_after", .exactly(1), default: "0", \.limitRateAfter) { c, d in try c.rateSize(d) },
        setting("keepalive_disable", .atLeast(1), default: "msie6", \.keepaliveDisable) { _, d in
            try keywords(d, KeepaliveDisable.words)
        },
        setting("open_file_cache", .between(1, 2), default: "off", \.openFileCache) { _, d in try openFileCacheZone(d) },
        setting("open_file_cache_valid", .exactly(1), default: "60s", \.openFileCacheValidMs) { c, d in
            guard let ms = seconds(d.args[0].text) else { throw c.invalidValue(d) }
            return ms
        },
        setting("open_file_cache_min_uses", .exactly(1), default: "1", \.openFileCacheMinUses) { _, d in
            guard let n = Int(d.args[0].text), n >= 0, d.args[0].text.allSatisfy({ $0.isASCII && $0.isNumber }) else {
                throw ConfigError("\"\(d.name)\" directive invalid number", at: d.location)
            }
            return n
        },
        flagSetting("open_file_cache_errors", default: "off", \.openFileCacheErrors),
        setting("disable_symlinks", .between(1, 2), default: "off", \.disableSymlinks) { _, d in
            guard ["on", "off", "if_not_owner"].contains(d.args[0].text) else { throw ConfigError("invalid value \"\(d.args[0].text)\"", at: d.args[0].location) }
            if d.args.count == 2 {
                guard d.args[1].text.hasPrefix("from=") else { throw ConfigError("invalid parameter \"\(d.args[1].text)\"", at: d.args[1].location) }
            }
            switch d.args[0].text {
            case "on": return .on(from: d.args.count == 2 ? String(d.args[1].text.dropFirst(5)) : nil)
            case "if_not_owner": return .ifNotOwner(from: d.args.count == 2 ? String(d.args[1].text.dropFirst(5)) : nil)
            default: return .off
            }
        },
        DirectiveSpec("map", .http, .exactly(2), block: true, repeatable: true) { c, d in try c.compileMap(d) },
        DirectiveSpec("geo", .http, .between(1, 2), block: true, repeatable: true) { c, d in try c.compileGeo(d) },
        DirectiveSpec("split_clients", .http, .exactly(2), block: true, repeatable: true) { c, d in try c.compileSplitClients(d) },
        DirectiveSpec("upstream", .http, .exactly(1), block: true, repeatable: true) { c, d in
            let name = d.args[0].text
            if c.upstreams.contains(where: { $0.name.lowercased() == name.lowercased() }) { throw ConfigError("duplicate upstream \"\(name)\"", at: d.location) }
            let u = UpstreamBuilder(name: name, location: d.location)
            c.upstreams.append(u)
            c.upstream = u
            defer { c.upstream = nil }
            try c.walk(d.block!, in: .upstream)
        },
        DirectiveSpec("server", .http, .none, block: true, repeatable: true) { c, d in
            let s = ServerBuilder(location: d.location)
            c.servers.append(s)
            c.server = s
            let saved = c.settings
            c.settings = s.settings
            defer { c.server = nil; c.settings = saved }
            try c.walk(d.block!, in: .server)
        },
    ]

    func compileMap(_ d: Directive) throws {
        let source = try template(d.args[0])
        var v = d.args[1].text
        guard v.hasPrefix("$"), v.count > 1 else { throw ConfigError("invalid variable name \"\(v)\"", at: d.args[1].location) }
        v.removeFirst()
        try checkDefinable(v, at: d.location)
        definedVariables.insert(v)
        var def = Template(literal: "")
        var exact: [String: Template] = [:]
        var regexes: [(PCRE, Template)] = []
        var hostnames = false, hasDefault = false, volatile = false
        var wildcards = HostnameWildcards()
        // Entries of included files are here too, each at its own FILE:LINE (the parser reads
        // `include FILE` inside `map` as nginx's map handler does).
        for e in d.block! {
            if e.block != nil { throw ConfigError("unexpected \"{\"", at: e.location) }
            if e.args.isEmpty {
                switch e.name {
                case "hostnames": hostnames = true; continue
                case "volatile": volatile = true; continue
                default: throw ConfigError("invalid number of the map parameters", at: e.location)
                }
            }
            guard e.args.count == 1 else { throw ConfigError("invalid number of the map parameters", at: e.location) }
            var valTok = e.args[0]
            valTok.location = e.location
            let value = try template(valTok)
            if e.name == "default" {
                if hasDefault { throw ConfigError("duplicate default map parameter", at: e.location) }
                hasDefault = true
                def = value
            } else if e.name.hasPrefix("~") {
                let caseless = e.name.hasPrefix("~*")
                let re = try compileRegex(String(e.name.dropFirst(caseless ? 2 : 1)), caseless: caseless, at: e.location)
                defineNamedCaptures(re)
                regexes.append((re, value))
            } else {
                let raw = e.name.hasPrefix("\\") ? String(e.name.dropFirst()) : e.name
                // nginx matches strings without (ASCII) case: keys are kept lowercased.
                var key = String(decoding: raw.utf8.map { $0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0 }, as: UTF8.self)
                if hostnames {
                    // Keys after `hostnames` may be wildcards (HostnameWildcards.swift).
                    switch wildcards.add(raw, value, exact: exact) {
                    case .added: continue
                    case .invalid: throw ConfigError("invalid hostname or wildcard \"\(raw)\"", at: e.location)
                    case .conflict(let k): throw ConfigError("conflicting parameter \"\(k)\"", at: e.location)
                    case .exact(let k): key = k
                    }
                }
                if exact[key] != nil || wildcards.conflicts(exact: key) {
                    throw ConfigError("conflicting parameter \"\(key)\"", at: e.location)
                }
                exact[key] = value
            }
        }
        // A later map (or geo, split_clients) of the same variable replaces the earlier, as in nginx.
        maps.removeAll { $0.variable == v }
        maps.append(MapBlock(source: source, variable: v, defaultValue: def, exact: exact, regexes: regexes, hostnames: hostnames,
                             wildcards: wildcards.isEmpty ? nil : wildcards, volatile: volatile))
    }
}
