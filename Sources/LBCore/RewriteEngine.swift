import LBConfig
import LBHTTP

/// What one request carries of the rewrite module (nginx keeps it in `ngx_http_request_t`):
/// `set` variables and named captures, the captures of the last regex match, the arguments once a
/// rewrite changed them, and the flags the proxy and the location search read. Created only for
/// requests of servers that use the rewrite module.
final class RewriteState {
    /// `set` variables and named captures, by name.
    var vars: [String: [UInt8]] = [:]
    /// The subject of the last successful regex match and its capture ranges (index 0: the whole
    /// match). Empty after a failed match, as nginx resets `r->ncaptures`.
    var captureSubject: [UInt8] = []
    var captures: [Range<Int>?] = []
    /// The arguments (`$args`) once a rewrite or `set $args` changed them; nil: the request's own.
    var args: [UInt8]?
    /// A rewrite changed the URI and the location must be searched again (`r->uri_changed`).
    var uriChanged = false
    /// A rewrite happened: the request is internal (reaches `internal` locations) and its original
    /// target is no longer what is proxied (`r->valid_unparsed_uri == 0`).
    var rewritten = false
    /// False after `rewrite … break` (or `break` after a change): `proxy_pass` then sends the whole
    /// URI without replacing the location's prefix (`r->valid_location`).
    var validLocation = true
    /// The target came from `proxy_pass` with variables and a URI part: that URI goes as made.
    var proxyURIAsMade = false

    init() {}

    /// Remembers the captures of a match.
    /// Every match replaces the captures, one without groups too (nginx 1.22: `$1` is then empty).
    func setCaptures(_ subject: [UInt8], _ ranges: [Range<Int>?], names: [(name: String, group: Int)]) {
        captureSubject = subject
        captures = ranges
        for (n, g) in names where g < ranges.count {
            vars[n] = ranges[g].map { Array(subject[$0]) } ?? []
        }
    }

    func clearCaptures() {
        captureSubject.removeAll(keepingCapacity: true)
        captures.removeAll(keepingCapacity: true)
    }

    /// `$N`: empty when the last match had no such group.
    func capture(_ n: Int) -> ArraySlice<UInt8> {
        guard n < captures.count, let r = captures[n] else { return [] }
        return captureSubject[r]
    }
}

/// What the engine needs from the request: variable values, the current URI, file tests and the
/// log. `ClientConnection` is the real host; tests use a plain object.
protocol RewriteHost: AnyObject {
    var rewriteState: RewriteState { get }
    /// The current (decoded) URI; rewrites replace it.
    var currentURI: [UInt8] { get set }
    /// The request's arguments as they stand (`$args`).
    var currentArgs: [UInt8] { get }
    /// The raw request path had `%` or `+` (nginx's `quoted_uri`/`plus_in_uri`): captures copied
    /// into a redirect or into arguments are then escaped.
    var requestURIWasQuoted: Bool { get }
    /// `rewrite_log on` in the configuration in force.
    var rewriteLogEnabled: Bool { get }
    func evaluateTemplate(_ t: Template) -> [UInt8]
    func fileTest(_ path: [UInt8], _ test: FileTest) -> Bool
    /// A notice-level line (rewrite_log), or an error-level one.
    func rewriteNotice(_ message: String)
    func rewriteError(_ message: String)
}

/// How a rewrite program ended.
enum RewriteOutcome: Equatable {
    /// The program ran to its end (or `last`): search the locations again when the URI changed.
    case done
    /// `break` (directive or flag): stay in the location, go on to the content.
    case stop
    /// `return`: answer with it (its text still to be evaluated).
    case respond(ReturnAction)
    /// A redirecting rewrite: status and the Location value.
    case redirect(Int, [UInt8])
    /// 500 (a zero-length rewritten URI).
    case failure
}

/// Runs rewrite programs as nginx's script engine does (`ngx_http_script.c`): in order, an `if`
/// whose condition fails jumping past its block, the captures of each regex match visible to the
/// directives after it.
enum RewriteEngine {
    /// Runs `program`; `enterIf` is called with the implicit location of each `if` whose condition
    /// holds (the request takes that configuration).
    /// `trace` (only `lb --explain` passes one) hears every directive run, with the URI after it.
    static func run<H: RewriteHost>(_ program: RewriteProgram, host: H, trace: RouteRecorder? = nil, enterIf: (Location) -> Void) -> RewriteOutcome {
        let state = host.rewriteState
        var pc = 0
        let ops = program.ops
        func step(_ detail: String) {
            guard let trace, pc < program.origins.count else { return }
            trace.record(.rewriteStep(program.origins[pc], detail: detail, uri: host.currentURI, args: host.currentArgs))
        }
        while pc < ops.count {
            switch ops[pc] {
            case .rewrite(let rule):
                let uri = host.currentURI
                guard let caps = uri.withUnsafeBytes({ rule.regex.captures($0) }) else {
                    if host.rewriteLogEnabled { host.rewriteNotice("\"\(rule.pattern)\" does not match \"\(text(uri))\"") }
                    state.clearCaptures()
                    if trace != nil { step("does not match \"\(text(uri))\"") }
                    pc += 1
                    continue
                }
                if host.rewriteLogEnabled { host.rewriteNotice("\"\(rule.pattern)\" matches \"\(text(uri))\"") }
                state.setCaptures(uri, caps, names: rule.regex.names)
                if case .redirect(let code) = rule.flag {
                    let target = redirectTarget(rule, host: host)
                    if trace != nil { step("matches \"\(text(uri))\": redirect \(code) to \"\(text(target))\"") }
                    return .redirect(code, target)
                }
                state.rewritten = true
                if case .break = rule.flag {
                    state.validLocation = false
                    state.uriChanged = false
                } else {
                    state.uriChanged = true
                }
                let newURI = expand(rule.replacement, host: host, escapeCaptures: false)
                let oldArgs = host.currentArgs
                if let a = rule.argsPart {
                    var args = expand(a, host: host, escapeCaptures: host.requestURIWasQuoted)
                    if rule.addArgs && !oldArgs.isEmpty { args.append(UInt8(ascii: "&")); args += oldArgs }
                    state.args = args
                } else if !rule.addArgs {
                    state.args = []
                }
                if host.rewriteLogEnabled {
                    host.rewriteNotice("rewritten data: \"\(text(newURI))\", args: \"\(text(host.currentArgs))\"")
                }
                if newURI.isEmpty {
                    host.rewriteError("the rewritten URI has a zero length")
                    if trace != nil { step("matches \"\(text(uri))\": the rewritten URI has a zero length (500)") }
                    return .failure
                }
                host.currentURI = newURI
                if trace != nil {
                    let then = switch rule.flag {
                    case .last: "; last: the locations are searched again"
                    case .break: "; break: stays in this location, rewrite phase ends"
                    default: ""
                    }
                    step("matches \"\(text(uri))\"\(then)")
                }
                switch rule.flag {
                case .last: return .done
                case .break: return .stop
                default: pc += 1
                }
            case .return(let r):
                if trace != nil { step("answers \(r.code)") }
                return .respond(r)
            case .set(let target, let value):
                let v = host.evaluateTemplate(value)
                switch target {
                case .user(let name): state.vars[name] = v
                case .args: state.args = v
                }
                if trace != nil { step("= \"\(text(v))\"") }
                pc += 1
            case .break:
                if state.uriChanged {
                    state.validLocation = false
                    state.uriChanged = false
                }
                if trace != nil { step("rewrite phase ends, stays in this location") }
                return .stop
            case .ifBlock(let cond, let loc, let end):
                if test(cond, host: host) {
                    if trace != nil { step(loc == nil ? "true" : "true: the request takes this block's configuration") }
                    if let loc { enterIf(program.ifLocations[loc]); trace?.record(.enteredIf(program.ifLocations[loc])) }
                    pc += 1
                } else {
                    if trace != nil { step("false: skips its block") }
                    pc = end
                }
            }
        }
        return .done
    }

    /// Whether an `if` condition holds; a regex match keeps its captures.
    static func test<H: RewriteHost>(_ cond: RewriteCondition, host: H) -> Bool {
        switch cond {
        case .truthy(let t):
            return isTrue(host.evaluateTemplate(t))
        case .equal(let a, let b, let negate):
            return (host.evaluateTemplate(a) == host.evaluateTemplate(b)) != negate
        case .regex(let t, let re, let negate):
            let subject = host.evaluateTemplate(t)
            if let caps = subject.withUnsafeBytes({ re.captures($0) }) {
                if host.rewriteLogEnabled { host.rewriteNotice("\"\(re.pattern)\" matches \"\(text(subject))\"") }
                host.rewriteState.setCaptures(subject, caps, names: re.names)
                return !negate
            }
            if host.rewriteLogEnabled { host.rewriteNotice("\"\(re.pattern)\" does not match \"\(text(subject))\"") }
            host.rewriteState.clearCaptures()
            return negate
        case .file(let t, let kind, let negate):
            return host.fileTest(host.evaluateTemplate(t), kind) != negate
        }
    }

    /// nginx's truth of a value: anything but empty or "0".
    static func isTrue(_ v: [UInt8]) -> Bool { !(v.isEmpty || v == [UInt8(ascii: "0")]) }

    /// A template with `$N` taken from the last match; captures escaped as arguments when asked.
    static func expand<H: RewriteHost>(_ t: Template, host: H, escapeCaptures: Bool) -> [UInt8] {
        var out: [UInt8] = []
        for p in t.parts {
            switch p {
            case .literal(let b): out += b
            case .variable(.capture(let n)):
                let c = host.rewriteState.capture(n)
                if escapeCaptures { out += URIEscape.args(c) } else { out += c }
            case .variable:
                out += host.evaluateTemplate(Template(parts: [p], source: ""))
            }
        }
        return out
    }

    /// The Location of a redirecting rewrite (`ngx_http_script_regex_end_code`): captures escaped
    /// when the request URI was, `%XX` of printable characters decoded, the arguments appended.
    static func redirectTarget<H: RewriteHost>(_ rule: RewriteRule, host: H) -> [UInt8] {
        var url = URIEscape.unescapeRedirect(expand(rule.replacement, host: host, escapeCaptures: host.requestURIWasQuoted))
        let args = host.currentArgs
        if rule.addArgs && !args.isEmpty {
            url.append(rule.hasQuestion ? UInt8(ascii: "&") : UInt8(ascii: "?"))
            url += args
        }
        if host.rewriteLogEnabled { host.rewriteNotice("rewritten redirect: \"\(text(url))\"") }
        return url
    }

    static func text<C: Collection<UInt8>>(_ b: C) -> String { String(decoding: b, as: UTF8.self) }
}

/// The escaping nginx's script engine applies (`ngx_escape_uri`, `ngx_unescape_uri`).
enum URIEscape {
    /// NGX_ESCAPE_ARGS: controls, space, `"#%&'+;<>?\^`{|}`, DEL and non-ASCII become `%XX`.
    static func args<C: Collection<UInt8>>(_ s: C) -> [UInt8] {
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(s.count)
        for c in s {
            if needsArgsEscape(c) {
                out += [UInt8(ascii: "%"), hex[Int(c >> 4)], hex[Int(c & 15)]]
            } else {
                out.append(c)
            }
        }
        return out
    }

    static func needsArgsEscape(_ c: UInt8) -> Bool {
        if c < 0x20 || c >= 0x7F { return true }
        switch c {
        case UInt8(ascii: " "), UInt8(ascii: "\""), UInt8(ascii: "#"), UInt8(ascii: "%"), UInt8(ascii: "&"),
             UInt8(ascii: "+"), UInt8(ascii: ";"), UInt8(ascii: "<"), UInt8(ascii: ">"), UInt8(ascii: "?"),
             UInt8(ascii: "\\"), UInt8(ascii: "^"), UInt8(ascii: "`"), UInt8(ascii: "{"), UInt8(ascii: "|"),
             UInt8(ascii: "}"):
            return true
        default:
            return false
        }
    }

    /// NGX_UNESCAPE_REDIRECT, byte for byte as `ngx_unescape_uri`: up to the first `?` (written or
    /// decoded), a `%XX` is decoded when it stands for a character above `%` and below DEL and kept
    /// as written otherwise; a malformed escape loses its `%` (and a bad second digit, both bytes).
    static func unescapeRedirect(_ s: [UInt8]) -> [UInt8] { URI.unescape(s, redirect: true) }
}
