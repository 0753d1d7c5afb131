/// A `limit_req_zone` or `limit_conn_zone`: a named table shared by every worker thread, bounded by
/// its size, keyed by a template. Kept across reloads while name, kind, key and size stay the same.
public struct LimitZone: Sendable, Hashable {
    public enum Kind: Sendable, Hashable {
        case requests
        case connections

        /// The directive that declares a zone of this kind.
        public var directive: String { self == .requests ? "limit_req_zone" : "limit_conn_zone" }
    }

    public var name: String
    public var kind: Kind
    public var key: Template
    /// Bytes; 0 while only referenced (nginx's placeholder shared zone), an error at the end.
    public var size: Int
    /// Requests per 1000 seconds (nginx's `ctx->rate`: `rate=Nr/s` is N×1000, `Nr/m` is N×1000/60).
    public var rate: Int
    /// Where it was declared, or first referenced.
    public var location: SourceLocation?

    public init(name: String, kind: Kind, key: Template, size: Int, rate: Int, location: SourceLocation?) {
        self.name = name
        self.kind = kind
        self.key = key
        self.size = size
        self.rate = rate
        self.location = location
    }
}

/// One `limit_req zone=NAME [burst=N] [nodelay | delay=N]` of a location.
public struct LimitReqRule: Sendable, Hashable {
    /// Index into `RoutingTable.limitZones`.
    public var zone: Int
    /// Excess allowed, in thousandths of a request (nginx's `burst * 1000`).
    public var burst: Int
    /// Excess served without delay, in thousandths (`delay * 1000`; `nodelay` is unlimited).
    public var delay: Int
}

/// One `limit_conn NAME N` of a location.
public struct LimitConnRule: Sendable, Hashable {
    public var zone: Int
    public var limit: Int
}

/// The preaccess and access phase directives of a level (limit_req, limit_conn, auth_basic,
/// satisfy): inherited field by field as nginx merges each module's loc_conf, arrays whole.
public struct AccessPhaseSettings: Sendable {
    public var limitReq: [LimitReqRule]?
    public var limitReqStatus: Int?
    public var limitReqLogLevel: ErrorLog.Level?
    public var limitReqDryRun: Bool?
    public var limitConn: [LimitConnRule]?
    public var limitConnStatus: Int?
    public var limitConnLogLevel: ErrorLog.Level?
    public var limitConnDryRun: Bool?
    /// `auth_basic "realm"`; `.some(nil)` is `off`.
    public var authBasic: Template??
    public var authBasicUserFile: Template?
    /// `satisfy any` (nil or false: `all`).
    public var satisfyAny: Bool?
    /// `auth_request URI`; `.some(nil)` is `off` (AuthDirectives.swift).
    public var authRequest: [UInt8]??
    /// `auth_request_set` of this level (inherited whole, as nginx merges the array).
    public var authRequestSet: [AuthRequestAssignment]?

    public init() {}

    public mutating func inherit(from p: AccessPhaseSettings) {
        @inline(__always) func m<T>(_ a: inout T?, _ b: T?) { if a == nil { a = b } }
        m(&limitReq, p.limitReq)
        m(&limitReqStatus, p.limitReqStatus)
        m(&limitReqLogLevel, p.limitReqLogLevel)
        m(&limitReqDryRun, p.limitReqDryRun)
        m(&limitConn, p.limitConn)
        m(&limitConnStatus, p.limitConnStatus)
        m(&limitConnLogLevel, p.limitConnLogLevel)
        m(&limitConnDryRun, p.limitConnDryRun)
        if authBasic == nil { authBasic = p.authBasic }
        m(&authBasicUserFile, p.authBasicUserFile)
        m(&satisfyAny, p.satisfyAny)
        if authRequest == nil { authRequest = p.authRequest }
        m(&authRequestSet, p.authRequestSet)
    }

    /// Whether a request in this location has preaccess or auth work to do: false for a config
    /// without limits or auth_basic, whose requests then pay one test.
    @inlinable public var active: Bool {
        if let r = limitReq, !r.isEmpty { return true }
        if let c = limitConn, !c.isEmpty { return true }
        if case .some(.some) = authBasic, authBasicUserFile != nil { return true }
        if case .some(.some) = authRequest { return true }
        return false
    }
}
