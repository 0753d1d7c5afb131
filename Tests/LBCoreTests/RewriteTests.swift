import Testing
import LBConfig
@testable import LBCore

/// The rewrite engine without sockets: a host object holds the URI, arguments and a few
/// variables; programs come from real configurations. Expected values are nginx 1.22's for the
/// same directives (see also Tests/EndToEndTests/DifferentialTests.swift).
@Suite struct RewriteTests {
    final class Host: RewriteHost {
        let rewriteState = RewriteState()
        var currentURI: [UInt8]
        var original: [UInt8]
        var quoted = false
        var files: [String: FileTest] = [:]
        var notices: [String] = []
        var logging = false
        init(_ uri: String, args: String = "") {
            currentURI = Array(uri.utf8)
            original = Array(args.utf8)
        }
        var currentArgs: [UInt8] { rewriteState.args ?? original }
        var requestURIWasQuoted: Bool { quoted }
        var rewriteLogEnabled: Bool { logging }
        func evaluateTemplate(_ t: Template) -> [UInt8] {
            var out: [UInt8] = []
            for p in t.parts {
                switch p {
                case .literal(let b): out += b
                case .variable(.uri): out += currentURI
                case .variable(.args): out += currentArgs
                case .variable(.capture(let n)): out += rewriteState.capture(n)
                case .variable(.arg(let name)):
                    for pair in String(decoding: currentArgs, as: UTF8.self).split(separator: "&") where pair.hasPrefix(name + "=") {
                        out += Array(pair.dropFirst(name.count + 1).utf8)
                    }
                case .variable(.named(let n)): out += rewriteState.vars[n] ?? []
                default: break
                }
            }
            return out
        }
        func fileTest(_ path: [UInt8], _ test: FileTest) -> Bool {
            guard let kind = files[String(decoding: path, as: UTF8.self)] else { return false }
            switch test {
            case .exists: return true
            case .executable: return kind == .executable || kind == .directory
            case .plain: return kind == .plain || kind == .executable
            case .directory: return kind == .directory
            }
        }
        func rewriteNotice(_ message: String) { notices.append(message) }
        func rewriteError(_ message: String) { notices.append("error: " + message) }
        var uri: String { String(decoding: currentURI, as: UTF8.self) }
        var args: String { String(decoding: currentArgs, as: UTF8.self) }
    }

    /// The program of `location /` in a server with these directives.
    func program(_ directives: String) throws -> RewriteProgram {
        let table = try ConfigLoader(prefix: "/p").load(text: "http { server { listen 8080; location / {\n\(directives)\n} } }", file: "t.conf").table
        return try #require(table.servers[0].locations.find("/")?.rewrite)
    }

    func run(_ directives: String, _ host: Host) throws -> RewriteOutcome {
        RewriteEngine.run(try program(directives), host: host) { _ in }
    }

    @Test func capturesFillTheReplacementAndNoFlagGoesOn() throws {
        let h = Host("/a/b/c")
        #expect(try run("rewrite ^/(\\w+)/(\\w+)/(\\w+)$ /$3/$2/$1; rewrite ^/c/(.*)$ /done/$1;", h) == .done)
        #expect(h.uri == "/done/b/a")
        #expect(h.rewriteState.uriChanged && h.rewriteState.rewritten && h.rewriteState.validLocation)
    }

    @Test func lastStopsTheProgramAndBreakStaysInTheLocation() throws {
        let h = Host("/x")
        #expect(try run("rewrite ^ /y last; rewrite ^ /z;", h) == .done)
        #expect(h.uri == "/y" && h.rewriteState.uriChanged)
        let b = Host("/x")
        #expect(try run("rewrite ^ /y break; rewrite ^ /z;", b) == .stop)
        #expect(b.uri == "/y" && !b.rewriteState.uriChanged && !b.rewriteState.validLocation)
        let plain = Host("/x")
        #expect(try run("break; rewrite ^ /z;", plain) == .stop)
        #expect(plain.uri == "/x" && plain.rewriteState.validLocation)
    }

    @Test func argumentsAreAppendedReplacedOrDropped() throws {
        let keep = Host("/p", args: "q=1")
        _ = try run("rewrite ^ /n?added=1;", keep)
        #expect(keep.uri == "/n" && keep.args == "added=1&q=1")
        let drop = Host("/p", args: "q=1")
        _ = try run("rewrite ^ /n?;", drop)
        #expect(drop.args == "")
        let replace = Host("/p", args: "q=1")
        _ = try run("rewrite ^/(.*)$ /n?x=$1?;", replace)
        #expect(replace.args == "x=p")
        let untouched = Host("/p", args: "q=1")
        _ = try run("rewrite ^ /n;", untouched)
        #expect(untouched.args == "q=1" && untouched.rewriteState.args == nil)
    }

    @Test func redirectsCarryTheArgumentsAndEscapeCapturesOfQuotedURIs() throws {
        #expect(try run("rewrite ^/(.*)$ /t/$1 permanent;", Host("/a", args: "b=c")) == .redirect(301, Array("/t/a?b=c".utf8)))
        #expect(try run("rewrite ^/(.*)$ http://h/x?y=$1;", Host("/a", args: "b=c")) == .redirect(302, Array("http://h/x?y=a&b=c".utf8)))
        #expect(try run("rewrite ^/(.*)$ https://h/$1? redirect;", Host("/a", args: "b=c")) == .redirect(302, Array("https://h/a".utf8)))
        let q = Host("/a b?c")
        q.quoted = true
        // nginx: the capture escaped as an argument, then %XX of printable characters decoded
        // up to the first "?" ("%20" stays; "%3F" turns back into "?" and ends the decoding).
        #expect(try run("rewrite ^/(.*)$ http://h/$1 redirect;", q) == .redirect(302, Array("http://h/a%20b?c".utf8)))
    }

    @Test func setIfAndReturnRunInOrder() throws {
        let h = Host("/", args: "v=7")
        guard case .respond(let r) = try run("set $a x$arg_v; if ($a = x7) { set $b yes; } return 200 \"$a $b\";", h) else {
            Issue.record("no return")
            return
        }
        #expect(r.code == 200)
        #expect(h.rewriteState.vars["a"] == Array("x7".utf8) && h.rewriteState.vars["b"] == Array("yes".utf8))
    }

    @Test(arguments: [
        ("if ($arg_a) { return 200; }", "a=1", true), ("if ($arg_a) { return 200; }", "a=0", false),
        ("if ($arg_a) { return 200; }", "", false), ("if ($arg_a = x) { return 200; }", "a=x", true),
        ("if ($arg_a != x) { return 200; }", "a=x", false), ("if ($arg_a ~ ^X) { return 200; }", "a=xy", false),
        ("if ($arg_a ~* ^X) { return 200; }", "a=xy", true), ("if ($arg_a !~ ^X) { return 200; }", "a=xy", true),
        ("if ($arg_a !~* ^X) { return 200; }", "a=xy", false),
    ])
    func conditionsFollowNginxsTruth(_ directives: String, _ args: String, _ holds: Bool) throws {
        let outcome = try run(directives, Host("/", args: args))
        #expect((outcome != .done) == holds)
    }

    @Test func fileTestsAskTheHost() throws {
        let h = Host("/")
        h.files = ["/f": .plain, "/d": .directory, "/x": .executable]
        func holds(_ cond: String) throws -> Bool { try run("if (\(cond)) { return 200; }", h) != .done }
        #expect(try holds("-f /f") && !(try holds("-f /d")) && (try holds("!-f /d")))
        #expect(try holds("-d /d") && !(try holds("-d /f")) && (try holds("!-d /nope")))
        #expect(try holds("-e /f") && !(try holds("-e /nope")) && (try holds("!-e /nope")))
        #expect(try holds("-x /x") && (try holds("-x /d")) && !(try holds("-x /f")) && (try holds("!-x /f")))
    }

    @Test func regexConditionCapturesAreSeenLaterAndAFailedMatchClearsThem() throws {
        let h = Host("/item/42")
        _ = try run("if ($uri ~ ^/item/(?<id>\\d+)$) { set $got $1-$id; } if ($uri ~ nomatch) { } set $after [$1];", h)
        #expect(h.rewriteState.vars["got"] == Array("42-42".utf8))
        #expect(h.rewriteState.vars["after"] == Array("[]".utf8))
    }

    @Test func theLastHoldingIfGivesTheConfiguration() throws {
        let p = try program("set $t 1; if ($t) { add_header X-First 1; } if ($t) { add_header X-Second 2; } if ($arg_none) { add_header X-Third 3; }")
        var entered: [Location] = []
        _ = RewriteEngine.run(p, host: Host("/")) { entered.append($0) }
        #expect(entered.count == 2)
        #expect(entered.last?.settings.addHeaders?.map(\.name) == ["X-Second"])
    }

    @Test func rewriteLogLinesAreNginxs() throws {
        let h = Host("/p/x", args: "a=1")
        h.logging = true
        _ = try run("rewrite ^/q$ /no; rewrite ^/p/(.*)$ /q/$1 last;", h)
        #expect(h.notices == ["\"^/q$\" does not match \"/p/x\"", "\"^/p/(.*)$\" matches \"/p/x\"", "rewritten data: \"/q/x\", args: \"a=1\""])
    }

    @Test func anEmptyRewrittenURIFails() throws {
        let h = Host("/")
        #expect(try run("rewrite ^/(.*)$ $1;", h) == .failure)
        #expect(h.notices.contains("error: the rewritten URI has a zero length"))
    }

    @Test func proxyURLsMadeAtRunTimeSplitIntoHostAndURI() {
        #expect(ProxyURL.parse("http://pool") == .target(hostPart: "pool", HostPort(host: "pool", port: nil), uri: nil, https: false))
        #expect(ProxyURL.parse("http://10.0.0.1:81/a?b") == .target(hostPart: "10.0.0.1:81", HostPort(host: "10.0.0.1", port: 81), uri: "/a?b", https: false))
        #expect(ProxyURL.parse("http://h?x=1") == .target(hostPart: "h", HostPort(host: "h", port: nil), uri: "/?x=1", https: false))
        #expect(ProxyURL.parse("https://h") == .target(hostPart: "h", HostPort(host: "h", port: nil), uri: nil, https: true))
        #expect(ProxyURL.parse("https://h:8443/x") == .target(hostPart: "h:8443", HostPort(host: "h", port: 8443), uri: "/x", https: true))
        #expect(ProxyURL.parse("ftp://h") == .invalid)
        #expect(ProxyURL.parse("http://unix:/run/a.sock") == .target(hostPart: "unix:/run/a.sock", HostPort(host: "unix:/run/a.sock", port: nil), uri: nil, https: false))
        #expect(ProxyURL.parse("http://unix:/run/a.sock:/x?y") == .target(hostPart: "unix:/run/a.sock", HostPort(host: "unix:/run/a.sock", port: nil), uri: "/x?y", https: false))
        #expect(ProxyURL.parse("http://unix:") == .invalid)
        #expect(ProxyURL.parse("http://") == .invalid)
        #expect(ProxyURL.parse("ftp://h") == .invalid)
    }

    /// What `fastcgi_pass` / `uwsgi_pass` with variables make of a value, as nginx's ngx_parse_url
    /// (no URI part, no default port); reasons in nginx's words.
    @Test(arguments: [
        ("127.0.0.1:9000", AppServerAddress.inet(host: "127.0.0.1", port: 9000)),
        ("php", .inet(host: "php", port: nil)),
        ("[::1]:9000", .inet(host: "::1", port: 9000)),
        ("unix:/run/php.sock", .unix(HostPort(host: "unix:/run/php.sock", port: nil))),
        ("UNIX:/a:b", .unix(HostPort(host: "unix:/a:b", port: nil))),
        ("", .invalid(reason: "no host", text: "")),
        (":9000", .invalid(reason: "no host", text: ":9000")),
        ("h:", .invalid(reason: "invalid port", text: "h:")),
        ("h:0", .invalid(reason: "invalid port", text: "h:0")),
        ("h:65536", .invalid(reason: "invalid port", text: "h:65536")),
        ("a:b:c", .invalid(reason: "invalid port", text: "a:b:c")),
        ("h:1/x", .invalid(reason: "invalid host", text: "h:1/x")),
        ("h?x", .invalid(reason: "invalid host", text: "h?x")),
        ("[::1", .invalid(reason: "invalid host", text: "[::1")),
        ("[name]:1", .invalid(reason: "invalid IPv6 address", text: "[name]:1")),
        ("unix:", .invalid(reason: "no path in the unix domain socket", text: "unix:")),
    ])
    func appServerAddressesParseAsNginx(_ value: String, _ expected: AppServerAddress) {
        #expect(AppServerAddress.parse(value, kind: .fastcgi) == expected)
    }

    @Test func uwsgiAddressesMayCarryTheirScheme() {
        #expect(AppServerAddress.parse("uwsgi://127.0.0.1:3031", kind: .uwsgi) == .inet(host: "127.0.0.1", port: 3031))
        #expect(AppServerAddress.parse("UWSGI://h:1", kind: .uwsgi) == .inet(host: "h", port: 1))
        // Only with something after it (nginx: longer than the prefix), and only for uwsgi.
        #expect(AppServerAddress.parse("uwsgi://", kind: .uwsgi) == .invalid(reason: "invalid host", text: "uwsgi://"))
        #expect(AppServerAddress.parse("uwsgi://h:1", kind: .fastcgi) == .invalid(reason: "invalid host", text: "uwsgi://h:1"))
        if case .unsupported = AppServerAddress.parse("suwsgi://h:1", kind: .uwsgi) {} else { Issue.record("suwsgi") }
    }

    @Test func redirectUnescapingKeepsReservedAndControlBytesEncoded() {
        #expect(URIEscape.unescapeRedirect(Array("/a%41%20%25%2F?%41".utf8)) == Array("/aA%20%25/?%41".utf8))
        #expect(URIEscape.unescapeRedirect(Array("/%zz%4z%3f%41".utf8)) == Array("/zz?%41".utf8))
        // A control byte after `%` is not a digit (0x10 | 0x20 looked like "0" and the
        // subtraction trapped); nginx drops the `%` and keeps the byte.
        #expect(URIEscape.unescapeRedirect([0x2F, 0x25, 0x10, 0x41]) == [0x2F, 0x10, 0x41])
        #expect(URIEscape.unescapeRedirect([0x2F, 0x25, 0x34, 0x19]) == [0x2F])
        #expect(URIEscape.args(Array("a b&c+d?é".utf8)) == Array("a%20b%26c%2Bd%3F%C3%A9".utf8))
    }
}
