/// lb's operations directives: active health checks (`health_check` in an upstream, `match`
/// blocks), and the status, metrics and API location handlers.

/// `health_check [uri=] [interval=] [timeout=] [fails=] [passes=] [match=] [port=] [mandatory]`.
public struct HealthCheck: Sendable, Hashable {
    public var uri = "/"
    public var intervalMs = 5000
    public var timeoutMs = 2000
    public var fails = 1
    public var passes = 1
    public var match: String?
    public var port: Int?
    /// New peers receive no traffic until their first passed check.
    public var mandatory = false
    public var location: SourceLocation
}

/// `match NAME { status …; header …; body …; }`: what a passing health check response looks like.
public struct MatchBlock: Sendable {
    public enum HeaderTest: Sendable {
        case present
        case absent
        case equals(String)
        case notEquals(String)
        case matches(PCRE)
        case notMatches(PCRE)
    }
    public var name: String
    /// Status codes or ranges; empty means 200–399. `!` entries exclude.
    public var statuses: [(range: ClosedRange<Int>, negated: Bool)] = []
    public var headers: [(name: String, test: HeaderTest)] = []
    public var body: (regex: PCRE, negated: Bool)?

    public func statusPasses(_ s: Int) -> Bool {
        if statuses.isEmpty { return (200...399).contains(s) }
        let positives = statuses.filter { !$0.negated }
        if statuses.contains(where: { $0.negated && $0.range.contains(s) }) { return false }
        return positives.isEmpty || positives.contains { $0.range.contains(s) }
    }
}

extension Compiler {
    static let operationsDirectives: [DirectiveSpec] = [
        DirectiveSpec("health_check", .upstream, .between(0, 8)) { c, d in
            var h = HealthCheck(location: d.location)
            for a in d.args {
                let t = a.text
                func value(_ p: String) -> String? { t.hasPrefix(p) ? String(t.dropFirst(p.count)) : nil }
                func positive(_ v: String) throws -> Int {
                    guard let n = Values.number(v), n > 0 else { throw ConfigError("invalid \"health_check\" parameter \"\(t)\"", at: a.location) }
                    return n
                }
                func ms(_ v: String) throws -> Int {
                    guard let n = Values.milliseconds(v), n > 0 else { throw ConfigError("invalid \"health_check\" parameter \"\(t)\"", at: a.location) }
                    return n
                }
                if let v = value("uri=") {
                    guard v.hasPrefix("/") else { throw ConfigError("invalid \"health_check\" uri \"\(v)\"", at: a.location) }
                    h.uri = v
                } else if let v = value("interval=") { h.intervalMs = try ms(v) }
                else if let v = value("timeout=") { h.timeoutMs = try ms(v) }
                else if let v = value("fails=") { h.fails = try positive(v) }
                else if let v = value("passes=") { h.passes = try positive(v) }
                else if let v = value("match=") { h.match = v; c.matchReferences.append((v, a.location)) }
                else if let v = value("port=") {
                    guard let p = Values.number(v), (1...65535).contains(p) else { throw ConfigError("invalid \"health_check\" port \"\(v)\"", at: a.location) }
                    h.port = p
                } else if t == "mandatory" { h.mandatory = true }
                else { throw ConfigError("invalid \"health_check\" parameter \"\(t)\"", at: a.location) }
            }
            if c.upstream!.healthCheck != nil { throw ConfigError("\"health_check\" directive is duplicate", at: d.location) }
            c.upstream!.healthCheck = h
        },
        DirectiveSpec("match", .http, .exactly(1), block: true, repeatable: true) { c, d in try c.compileMatch(d) },
        DirectiveSpec("state", .upstream, .exactly(1), note: "lb: where the runtime API keeps this upstream's servers") { c, d in
            c.upstream!.statePath = (c.fullPath(d.args[0].text), d.location)
        },
        DirectiveSpec("status", .location, .none, note: "lb: the live status page (HTML, and JSON with ?format=json)") { c, d in
            c.locationStack.last!.special = .status
        },
        DirectiveSpec("stub_status", [.server, .location], .between(0, 1)) { c, d in
            // `stub_status on;` is the form of nginx before 1.7.5, still accepted by it.
            if d.args.count == 1 && d.args[0].text != "on" && d.args[0].text != "off" {
                throw ConfigError("invalid value \"\(d.args[0].text)\" in \"stub_status\" directive, it must be \"on\" or \"off\"", at: d.args[0].location)
            }
            if d.args.first?.text == "off" { return }
            guard let l = c.locationStack.last else {
                throw ConfigError("\"stub_status\" directive is not supported by lb at server level; put it in a location", at: d.location)
            }
            l.special = .stubStatus
        },
        DirectiveSpec("metrics", .location, .none, note: "lb: Prometheus metrics") { c, d in
            c.locationStack.last!.special = .metrics
        },
        DirectiveSpec("api", .location, .none, note: "lb: the runtime upstream API") { c, d in
            c.locationStack.last!.special = .api
        },
    ]

    func compileMatch(_ d: Directive) throws {
        let name = d.args[0].text
        if matches[name] != nil { throw ConfigError("duplicate match \"\(name)\"", at: d.args[0].location) }
        var m = MatchBlock(name: name)
        for e in d.block! {
            if e.block != nil { throw ConfigError("unexpected \"{\"", at: e.location) }
            switch e.name {
            case "status":
                guard !e.args.isEmpty else { throw ConfigError("invalid number of arguments in \"status\" directive", at: e.location) }
                for a in e.args {
                    var t = Substring(a.text)
                    let neg = t.hasPrefix("!")
                    if neg { t = t.dropFirst() }
                    let parts = t.split(separator: "-", omittingEmptySubsequences: false)
                    guard (1...2).contains(parts.count), let lo = Int(parts[0]), let hi = Int(parts.last!), (100...599).contains(lo), (lo...599).contains(hi) else {
                        throw ConfigError("invalid status \"\(a.text)\" in match \"\(name)\"", at: a.location)
                    }
                    m.statuses.append((lo...hi, neg))
                }
            case "header":
                // header NAME; header ! NAME; header NAME = V; header NAME != V; header NAME ~ RE; header NAME !~ RE
                let args = e.args.map(\.text)
                switch args.count {
                case 1: m.headers.append((args[0].lowercased(), .present))
                case 2 where args[0] == "!": m.headers.append((args[1].lowercased(), .absent))
                case 3:
                    let n = args[0].lowercased()
                    switch args[1] {
                    case "=": m.headers.append((n, .equals(args[2])))
                    case "!=": m.headers.append((n, .notEquals(args[2])))
                    case "~": m.headers.append((n, .matches(try compileRegex(args[2], caseless: false, at: e.args[2].location))))
                    case "!~": m.headers.append((n, .notMatches(try compileRegex(args[2], caseless: false, at: e.args[2].location))))
                    default: throw ConfigError("invalid operator \"\(args[1])\" in match \"\(name)\"", at: e.args[1].location)
                    }
                default: throw ConfigError("invalid number of arguments in \"header\" directive", at: e.location)
                }
            case "body":
                guard e.args.count == 2, e.args[0].text == "~" || e.args[0].text == "!~" else {
                    throw ConfigError("invalid \"body\" test in match \"\(name)\" (body ~ \"regex\" or body !~ \"regex\")", at: e.location)
                }
                m.body = (try compileRegex(e.args[1].text, caseless: false, at: e.args[1].location), e.args[0].text == "!~")
            default:
                throw ConfigError("unknown directive \"\(e.name)\" in match \"\(name)\"", at: e.location)
            }
        }
        matches[name] = m
    }
}
