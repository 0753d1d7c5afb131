/// What the routing code decided for one request, step by step, for `lb -t --explain`
/// (LBCore's Explain.swift prints it). The routing functions take a recorder only on the explain
/// path: the request path calls them without one (a generic no-op, specialized away), so
/// recording costs real requests nothing.
public final class RouteRecorder {
    public private(set) var events: [RouteEvent] = []

    public init() {}

    public func record(_ e: RouteEvent) { events.append(e) }
}

/// One decision of the routing code.
public enum RouteEvent {
    /// The location search of one level began (`parent` nil: the server's own locations).
    case searchLevel(parent: Location?)
    /// An exact (`=`) location equals the URI and ends the search.
    case exactMatch(Location)
    /// The longest matching prefix of the level (nil: no prefix location matches).
    case longestPrefix(Location?, level: Location?)
    /// The regexes of `level` are not tried: its longest prefix is `^~`.
    case regexesSkipped(level: Location?, because: Location)
    /// A regex location was tried.
    case regexTried(Location, matched: Bool)
    /// The search's result (nil: no location matches; the server's settings serve).
    case chosen(Location?)
    /// nginx's auto redirect of `/p` to `/p/` for a prefix location with proxy_pass.
    case autoRedirect(Location)
    /// A rewrite program starts (`location` nil: the server level's).
    case rewritePhase(location: Location?)
    /// One rewrite-phase directive ran; `detail` says what it did, `uri`/`args` are the state after it.
    case rewriteStep(RewriteOrigin, detail: String, uri: [UInt8], args: [UInt8])
    /// `if` whose condition holds takes its block's configuration.
    case enteredIf(Location)
    /// The URI changed: the locations are searched again (budget left).
    case searchAgain(uri: [UInt8], changesLeft: Int)
    /// A note from the routing code (an answer it gives, a check that failed).
    case note(String)
}

/// Where a rewrite-phase directive was written, and how.
public struct RewriteOrigin: Sendable {
    public var location: SourceLocation
    /// The directive as written (`rewrite ^/a(.*) /b$1 last`, `if ($x = 1)`).
    public var text: String

    public init(location: SourceLocation, text: String) {
        self.location = location
        self.text = text
    }
}

/// Receives the location search's decisions: `RouteRecorder` on the explain path, a no-op otherwise.
protocol LocationObserver {
    func event(_ e: @autoclosure () -> RouteEvent)
}

/// The request path's observer: nothing, inlined away.
struct NoLocationObserver: LocationObserver {
    @inline(__always) func event(_ e: @autoclosure () -> RouteEvent) {}
}

extension RouteRecorder: LocationObserver {
    func event(_ e: @autoclosure () -> RouteEvent) { record(e()) }
}

/// How `server_name` matched a Host (nginx's order: exact, leading wildcard, trailing wildcard, regex).
public enum ServerNameMatch: Sendable, Equatable {
    case exact(String)
    /// `*.example.com` or `.example.com` (stored as `.example.com`).
    case leadingWildcard(String)
    /// `www.example.*` (stored as `www.example.`).
    case trailingWildcard(String)
    case regex(String)
}
