/// The contexts a directive may appear in.
public struct Contexts: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let main = Contexts(rawValue: 1 << 0)
    public static let events = Contexts(rawValue: 1 << 1)
    public static let http = Contexts(rawValue: 1 << 2)
    public static let server = Contexts(rawValue: 1 << 3)
    public static let location = Contexts(rawValue: 1 << 4)
    public static let upstream = Contexts(rawValue: 1 << 5)
    public static let stack = Contexts(rawValue: 1 << 6)
    public static let service = Contexts(rawValue: 1 << 7)
    public static let limitExcept = Contexts(rawValue: 1 << 8)
    /// The block of an `if` in a server (nginx's `NGX_HTTP_SIF_CONF`) and in a location (`LIF`).
    public static let serverIf = Contexts(rawValue: 1 << 9)
    public static let locationIf = Contexts(rawValue: 1 << 10)

    /// http, server and location: the inheritable directives.
    public static let hsl: Contexts = [.http, .server, .location]
    public static let hs: Contexts = [.http, .server]
    public static let sl: Contexts = [.server, .location]

    var names: [String] {
        var out: [String] = []
        let all: [(Contexts, String)] = [(.main, "main"), (.events, "events"), (.http, "http"), (.server, "server"),
                                         (.location, "location"), (.upstream, "upstream"), (.stack, "stack"),
                                         (.service, "service"), (.limitExcept, "limit_except"),
                                         (.serverIf, "if in server"), (.locationIf, "if in location")]
        for (c, n) in all where contains(c) { out.append(n) }
        return out
    }
}

/// How many arguments a directive takes.
public enum ArgumentShape: Sendable, Hashable {
    case none
    case exactly(Int)
    case between(Int, Int)
    case atLeast(Int)
    /// Exactly one argument, `on` or `off`.
    case flag

    func accepts(_ n: Int) -> Bool {
        switch self {
        case .none: n == 0
        case .exactly(let k): n == k
        case .between(let a, let b): n >= a && n <= b
        case .atLeast(let k): n >= k
        case .flag: n == 1
        }
    }

    var text: String {
        switch self {
        case .none: "none"
        case .exactly(let k): "\(k)"
        case .between(let a, let b): "\(a)–\(b)"
        case .atLeast(let k): "\(k) or more"
        case .flag: "on | off"
        }
    }
}

/// One row of the directive table, in the manner of nginx's `ngx_command_t`: the generic checks
/// (context, argument count, block or not, duplicates) run once in `Compiler.apply`; meaning lives
/// in `apply`.
public struct DirectiveSpec: Sendable {
    public let name: String
    public let contexts: Contexts
    public let args: ArgumentShape
    /// True when the directive takes a `{ }` block.
    public let block: Bool
    /// False when setting it twice at one level is an error (`"x" directive is duplicate`).
    public let repeatable: Bool
    /// The default, as documented (for docs and `lb -h directives`).
    public let defaultValue: String?
    /// What the directive does; a value, not a statement of support, for no-op directives.
    public let note: String?
    let apply: @Sendable (Compiler, Directive) throws -> Void

    init(_ name: String, _ contexts: Contexts, _ args: ArgumentShape, block: Bool = false, repeatable: Bool = false,
         default defaultValue: String? = nil, note: String? = nil,
         _ apply: @escaping @Sendable (Compiler, Directive) throws -> Void) {
        self.name = name
        self.contexts = contexts
        self.args = args
        self.block = block
        self.repeatable = repeatable
        self.defaultValue = defaultValue
        self.note = note
        self.apply = apply
    }
}

/// nginx directives that lb knows but does not implement; they fail with a clear reason rather
/// than "unknown directive".
let unsupportedDirectives: [String: String] = [
    "grpc_pass": "\"grpc_pass\" is not supported by lb; only HTTP/1.x upstreams are",
    "stream": "the \"stream\" module is not supported by lb",
    "mail": "the \"mail\" module is not supported by lb",
]

/// Directives accepted for compatibility that change nothing in lb (documented in configuration.md).
let acceptedNoOps: [(String, Contexts, ArgumentShape)] = [
    ("server_names_hash_bucket_size", .http, .exactly(1)), ("server_names_hash_max_size", .http, .exactly(1)),
    ("types_hash_max_size", .hsl, .exactly(1)), ("types_hash_bucket_size", .hsl, .exactly(1)),
    ("variables_hash_max_size", .http, .exactly(1)), ("variables_hash_bucket_size", .http, .exactly(1)),
    ("proxy_headers_hash_max_size", .hsl, .exactly(1)), ("proxy_headers_hash_bucket_size", .hsl, .exactly(1)),
    ("map_hash_max_size", .http, .exactly(1)), ("map_hash_bucket_size", .http, .exactly(1)),
    ("proxy_temp_path", .hsl, .between(1, 4)),
    ("fastcgi_temp_path", .hsl, .between(1, 4)), ("uwsgi_temp_path", .hsl, .between(1, 4)),
    ("scgi_temp_path", .hsl, .between(1, 4)), ("proxy_buffers", .hsl, .exactly(2)),
    ("proxy_busy_buffers_size", .hsl, .exactly(1)), ("proxy_max_temp_file_size", .hsl, .exactly(1)),
    ("proxy_temp_file_write_size", .hsl, .exactly(1)), ("output_buffers", .hsl, .exactly(2)),
    ("postpone_output", .hsl, .exactly(1)), ("reset_timedout_connection", .hsl, .flag),
    ("lingering_close", .hsl, .exactly(1)), ("lingering_time", .hsl, .exactly(1)), ("lingering_timeout", .hsl, .exactly(1)),
    ("open_file_cache_events", .hsl, .flag), ("log_subrequest", .hsl, .flag),
    ("msie_padding", .hsl, .flag), ("aio", .hsl, .exactly(1)), ("directio", .hsl, .exactly(1)),
    ("send_lowat", .hsl, .exactly(1)), ("proxy_cache_lock_age_ignored", .hsl, .exactly(1)),
    ("pcre_jit", .main, .flag), ("lock_file", .main, .exactly(1)), ("timer_resolution", .main, .exactly(1)),
    ("worker_priority", .main, .exactly(1)), ("worker_cpu_affinity", .main, .atLeast(1)), ("env", .main, .exactly(1)),
    ("thread_pool", .main, .atLeast(2)), ("working_directory", .main, .exactly(1)),
    ("use", .events, .exactly(1)), ("multi_accept", .events, .flag), ("accept_mutex", .events, .flag),
    ("accept_mutex_delay", .events, .exactly(1)), ("worker_aio_requests", .events, .exactly(1)),
    ("gzip_buffers", .hsl, .exactly(2)),
    ("server_tokens_header", .hsl, .exactly(1)), ("sendfile_max_chunk", .hsl, .exactly(1)),
]

/// Directives nginx (since 1.19.7) still reads but ignores, warning that they are obsolete; lb
/// does the same. Name → the directive that replaced it.
let obsoleteDirectives: [(String, Contexts, ArgumentShape, replacement: String)] = [
    ("http2_idle_timeout", .hs, .exactly(1), "keepalive_timeout"),
    ("http2_max_requests", .hs, .exactly(1), "keepalive_requests"),
    ("http2_max_field_size", .hs, .exactly(1), "large_client_header_buffers"),
    ("http2_max_header_size", .hs, .exactly(1), "large_client_header_buffers"),
    ("http2_recv_timeout", .hs, .exactly(1), "client_header_timeout"),
]
