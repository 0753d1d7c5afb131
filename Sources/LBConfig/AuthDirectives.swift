/// ngx_http_auth_basic_module and the core `satisfy` directive.
extension Compiler {
    static let authDirectives: [DirectiveSpec] = [
        DirectiveSpec("auth_basic", .hsl, .exactly(1), default: "off") { c, d in
            c.settings.s.accessPhase.authBasic = d.args[0].text == "off" ? .some(nil) : .some(try c.template(d.args[0]))
        },
        DirectiveSpec("auth_basic_user_file", .hsl, .exactly(1)) { c, d in
            var file = try c.template(d.args[0])
            // Relative to the main file's directory, as nginx's conf prefix.
            if !d.args[0].text.hasPrefix("/") {
                let base = c.confPrefix
                file.parts.insert(.literal(Array((base.hasSuffix("/") ? base : base + "/").utf8)), at: 0)
            }
            c.settings.s.accessPhase.authBasicUserFile = file
        },
        DirectiveSpec("satisfy", .hsl, .exactly(1), default: "all") { c, d in
            switch d.args[0].text {
            case "all": c.settings.s.accessPhase.satisfyAny = false
            case "any": c.settings.s.accessPhase.satisfyAny = true
            default:
                throw ConfigError("invalid value \"\(d.args[0].text)\" in \"satisfy\" directive, it must be \"all\" or \"any\"", at: d.args[0].location)
            }
        },
        DirectiveSpec("auth_request", .hsl, .exactly(1)) { c, d in
            c.settings.s.accessPhase.authRequest = d.args[0].text == "off" ? .some(nil) : .some(Array(d.args[0].text.utf8))
        },
        DirectiveSpec("auth_request_set", .hsl, .exactly(2), repeatable: true) { c, d in
            let name = d.args[0].text
            guard name.hasPrefix("$"), name.count > 1 else {
                throw ConfigError("invalid variable name \"\(name)\"", at: d.args[0].location)
            }
            let variable = String(name.dropFirst())
            c.definedVariables.insert(variable)
            let value = try c.template(d.args[1])
            c.settings.s.accessPhase.authRequestSet = (c.settings.s.accessPhase.authRequestSet ?? []) + [AuthRequestAssignment(name: variable, value: value)]
        },
    ]
}

/// One `auth_request_set $name VALUE`: VALUE is evaluated in the auth subrequest (its
/// `$upstream_*`), and `$name` then reads the result in the main request.
public struct AuthRequestAssignment: Sendable, Hashable {
    public var name: String
    public var value: Template
    public init(name: String, value: Template) {
        self.name = name
        self.value = value
    }
}
