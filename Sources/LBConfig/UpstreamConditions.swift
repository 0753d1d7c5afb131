/// The conditions of `proxy_next_upstream` and `proxy_cache_use_stale`, compiled from their
/// keywords into a bit set at load (nginx's `NGX_HTTP_UPSTREAM_FT_*` masks): the runtime tests a
/// failure with one AND, never by building or comparing words.
public struct UpstreamConditions: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let error = UpstreamConditions(rawValue: 1 << 0)
    public static let timeout = UpstreamConditions(rawValue: 1 << 1)
    public static let invalidHeader = UpstreamConditions(rawValue: 1 << 2)
    public static let http500 = UpstreamConditions(rawValue: 1 << 3)
    public static let http502 = UpstreamConditions(rawValue: 1 << 4)
    public static let http503 = UpstreamConditions(rawValue: 1 << 5)
    public static let http504 = UpstreamConditions(rawValue: 1 << 6)
    public static let http403 = UpstreamConditions(rawValue: 1 << 7)
    public static let http404 = UpstreamConditions(rawValue: 1 << 8)
    public static let http429 = UpstreamConditions(rawValue: 1 << 9)
    /// proxy_next_upstream: a non-idempotent request (POST, LOCK, PATCH) may be retried.
    public static let nonIdempotent = UpstreamConditions(rawValue: 1 << 10)
    /// proxy_cache_use_stale: a stale entry may answer while it is being updated.
    public static let updating = UpstreamConditions(rawValue: 1 << 11)
    /// proxy_next_upstream denied (accepted as nginx does; lb has no denying module yet).
    public static let denied = UpstreamConditions(rawValue: 1 << 12)

    static let words: [String: UpstreamConditions] = [
        "error": .error, "timeout": .timeout, "invalid_header": .invalidHeader, "http_500": .http500,
        "http_502": .http502, "http_503": .http503, "http_504": .http504, "http_403": .http403,
        "http_404": .http404, "http_429": .http429, "non_idempotent": .nonIdempotent, "updating": .updating,
        "denied": .denied,
    ]

    /// The condition of one keyword; nil for an unknown one.
    public static func word(_ w: String) -> UpstreamConditions? { words[w] }

    /// The condition an upstream status answers to (`http_502` for 502), or [] for none.
    public static func status(_ code: Int) -> UpstreamConditions {
        switch code {
        case 500: .http500
        case 502: .http502
        case 503: .http503
        case 504: .http504
        case 403: .http403
        case 404: .http404
        case 429: .http429
        default: []
        }
    }

    /// The union of keywords (the caller checked them); `off` alone is the empty set.
    public init(words: Set<String>) {
        self = words.reduce(into: []) { $0.formUnion(UpstreamConditions.words[$1] ?? []) }
    }
}
