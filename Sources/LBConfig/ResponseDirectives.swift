/// A `limit_rate` / `limit_rate_after` value: a size, or variables whose value is read as a size
/// once per request (nginx's `ngx_http_complex_value_size`).
public enum RateSize: Sendable {
    case bytes(Int)
    case variable(Template)
}

/// Directives that shape what goes back to the client: `limit_rate`, `limit_rate_after`.
extension Compiler {
    func rateSize(_ d: Directive) throws -> RateSize {
        if d.args[0].text.contains("$") { return .variable(try template(d.args[0])) }
        return .bytes(try size(d))
    }
}

/// One `sub_filter STRING REPLACEMENT` line (both may hold variables, evaluated per request).
public struct SubFilterPair: Sendable {
    public var match: Template
    public var replacement: Template
}

extension Compiler {
    static let responseDirectives: [DirectiveSpec] = [
        DirectiveSpec("sub_filter", .hsl, .exactly(2), repeatable: true,
                      note: "static, proxied and local responses of the listed types; the body goes out chunked") { c, d in
            guard !d.args[0].text.isEmpty else { throw ConfigError("empty search pattern", at: d.location) }
            if (c.settings.s.subFilters?.count ?? 0) == 255 { throw ConfigError("number of search patterns exceeds 255", at: d.location) }
            let pair = SubFilterPair(match: try c.template(d.args[0]), replacement: try c.template(d.args[1]))
            // Settings hold only this level's lines until inheritance: a level's own list
            // replaces the inherited one, as nginx merges sub_filter.
            c.settings.s.subFilters = (c.settings.s.subFilters ?? []) + [pair]
        },
        flagSetting("sub_filter_once", default: "on", \.subFilterOnce),
        setting("sub_filter_types", .atLeast(1), default: "text/html", \.subFilterTypes) { _, d in d.values },
        flagSetting("sub_filter_last_modified", default: "off", \.subFilterLastModified),
        DirectiveSpec("mirror", .hsl, .exactly(1), repeatable: true, default: "off",
                      note: "a background subrequest to the URI for each request (its response is discarded); several are made in order") { c, d in
            // As nginx: `off` or URIs at one level, never both, and `off` once.
            let current = c.settings.s.mirrors
            if d.args[0].text == "off" {
                if current != nil { throw ConfigError("\"mirror\" directive is duplicate", at: d.location) }
                c.settings.s.mirrors = []
                return
            }
            if current == [] { throw ConfigError("\"mirror\" directive is duplicate", at: d.location) }
            // The URI is taken as written (nginx expands no variables in it).
            c.settings.s.mirrors = (current ?? []) + [Array(d.args[0].text.utf8)]
        },
        flagSetting("mirror_request_body", default: "on", \.mirrorRequestBody),
    ]
}

/// `client_body_in_file_only`: `on` stores every request body in a named file and keeps it,
/// `clean` removes it after the request, `off` (the default) stores only large bodies, unnamed.
public enum BodyFileMode: Sendable {
    case off, on, clean
}

extension Compiler {
    static let requestBodyDirectives: [DirectiveSpec] = [
        setting("client_body_in_file_only", .exactly(1), default: "off", \.clientBodyInFileOnly) { _, d in
            switch d.args[0].text {
            case "on": return .on
            case "clean": return .clean
            case "off": return .off
            default: throw ConfigError("invalid value \"\(d.args[0].text)\"", at: d.args[0].location)
            }
        },
    ]
}
