/// nginx's rewrite module, compiled: the `rewrite`, `return`, `set`, `break` and `if` directives of
/// one server or location as a flat list of operations, run in order by the engine in LBCore
/// (`RewriteEngine`). As in nginx (`ngx_http_rewrite_module.c`), the directives inside an `if`
/// block belong to the enclosing list; a false condition jumps past them.
///
/// A class, made once at load: as a struct (three storages) it was copied, three references
/// counted up and down, at each request that ran it.
public final class RewriteProgram: Sendable {
    public let ops: [RewriteOp]
    /// The implicit locations of the `if` blocks of a location (nginx's "noname" locations): when
    /// a condition holds, the request takes that block's configuration. Referenced by index from
    /// `RewriteOp.ifBlock`.
    public let ifLocations: [Location]
    /// Where each op was written, by op index (read only by `lb --explain`).
    public let origins: [RewriteOrigin]

    public init(ops: [RewriteOp], ifLocations: [Location] = [], origins: [RewriteOrigin] = []) {
        self.ops = ops
        self.ifLocations = ifLocations
        self.origins = origins
    }

    /// The single `return` of a program that has nothing else: lb answers it as the location's
    /// handler, the same in effect.
    public var onlyReturn: ReturnAction? {
        guard ops.count == 1, ifLocations.isEmpty, case .return(let r) = ops[0] else { return nil }
        return r
    }
}

/// One operation of a rewrite program.
public enum RewriteOp: Sendable {
    case rewrite(RewriteRule)
    /// `return CODE [TEXT]`, `return URL`.
    case `return`(ReturnAction)
    /// `set $name value`; `$args` is the one built-in variable it may change.
    case set(SetTarget, Template)
    /// `break`: ends the rewrite phase, staying in the location.
    case `break`
    /// `if (condition) {`: when false, continue at `end` (the index after the block). When true,
    /// `location` (an index into `ifLocations`) becomes the request's configuration.
    case ifBlock(RewriteCondition, location: Int?, end: Int)
}

/// What `set` assigns.
public enum SetTarget: Sendable, Hashable {
    case user(String)
    case args
}

/// `rewrite REGEX REPLACEMENT [FLAG]`.
public struct RewriteRule: Sendable {
    public enum Flag: Sendable, Hashable {
        /// No flag: go on with the next directive.
        case none
        /// `last`: stop, and search the locations again with the new URI.
        case last
        /// `break`: stop, and stay in this location.
        case `break`
        /// `redirect` (302), `permanent` (301), or an absolute replacement (302).
        case redirect(Int)
    }

    public let regex: PCRE
    /// The replacement up to its first `?` (all of it for a redirect).
    public let replacement: Template
    /// The part after the first `?` of a non-redirect replacement: the new arguments.
    public let argsPart: Template?
    /// The replacement has a `?` (a redirect then adds the original arguments with `&`).
    public let hasQuestion: Bool
    /// No trailing `?`: the original arguments are kept (appended).
    public let addArgs: Bool
    public let flag: Flag
    public let pattern: String

    public var isRedirect: Bool { if case .redirect = flag { true } else { false } }
}

/// The condition of an `if`.
public enum RewriteCondition: Sendable {
    /// `if ($var)`: false when empty or "0".
    case truthy(Template)
    /// `=` / `!=`.
    case equal(Template, Template, negate: Bool)
    /// `~`, `~*`, `!~`, `!~*`; captures of a match are seen by later directives.
    case regex(Template, PCRE, negate: Bool)
    /// `-f`, `-d`, `-e`, `-x` and their `!` forms.
    case file(Template, FileTest, negate: Bool)
}

public enum FileTest: Sendable, Hashable {
    case plain, directory, exists, executable
}

extension UpstreamGroup {
    /// The group of one address a `proxy_pass` with variables names at run time (nginx connects
    /// to such an address directly, with the defaults of an implicit upstream).
    /// Several addresses (a name resolved at request time) are peers of one group, tried in turn.
    public static func adHoc(_ addresses: [HostPort], name: String) -> UpstreamGroup {
        UpstreamGroup(name: addresses.count == 1 ? (addresses[0].isUnix ? addresses[0].host : "\(addresses[0].host):\(addresses[0].port ?? 80)") : name,
                      peers: addresses.map {
                          Peer(address: $0, name: name, weight: 1, maxFails: 1, failTimeoutMs: 10_000, maxConns: 0, backup: false, down: false)
                      },
                      policy: .roundRobin, keepalive: nil, keepaliveTimeoutMs: 60_000, keepaliveRequests: 1000,
                      location: SourceLocation(file: "", line: 0, column: 0), implicit: true, service: nil)
    }
}
