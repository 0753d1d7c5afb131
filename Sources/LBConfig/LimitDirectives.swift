/// ngx_http_limit_req_module and ngx_http_limit_conn_module: zones and their limits.
extension Compiler {
    static let limitDirectives: [DirectiveSpec] = [
        DirectiveSpec("limit_req_zone", .http, .between(3, 4), repeatable: true) { c, d in try c.declareLimitZone(d, kind: .requests) },
        DirectiveSpec("limit_conn_zone", .http, .exactly(2), repeatable: true) { c, d in try c.declareLimitZone(d, kind: .connections) },
        DirectiveSpec("limit_req", .hsl, .between(1, 3), repeatable: true) { c, d in try c.limitReq(d) },
        DirectiveSpec("limit_conn", .hsl, .exactly(2), repeatable: true) { c, d in try c.limitConn(d) },
        DirectiveSpec("limit_req_status", .hsl, .exactly(1), default: "503") { c, d in c.settings.s.accessPhase.limitReqStatus = try c.limitStatus(d) },
        DirectiveSpec("limit_conn_status", .hsl, .exactly(1), default: "503") { c, d in c.settings.s.accessPhase.limitConnStatus = try c.limitStatus(d) },
        DirectiveSpec("limit_req_log_level", .hsl, .exactly(1), default: "error") { c, d in c.settings.s.accessPhase.limitReqLogLevel = try c.limitLogLevel(d) },
        DirectiveSpec("limit_conn_log_level", .hsl, .exactly(1), default: "error") { c, d in c.settings.s.accessPhase.limitConnLogLevel = try c.limitLogLevel(d) },
        DirectiveSpec("limit_req_dry_run", .hsl, .flag, default: "off") { c, d in c.settings.s.accessPhase.limitReqDryRun = c.flag(d) },
        DirectiveSpec("limit_conn_dry_run", .hsl, .flag, default: "off") { c, d in c.settings.s.accessPhase.limitConnDryRun = c.flag(d) },
    ]

    /// nginx's smallest shared zone: 8 pages.
    static let minimumLimitZoneSize = 8 * 4096

    /// `limit_req_zone KEY zone=NAME:SIZE rate=R` / `limit_conn_zone KEY zone=NAME:SIZE`.
    func declareLimitZone(_ d: Directive, kind: LimitZone.Kind) throws {
        let key = try template(d.args[0])
        var name = "", size = 0, rate = 1, scale = 1
        var zoneToken: Token?
        for a in d.args.dropFirst() {
            let v = a.text
            if v.hasPrefix("zone=") {
                let spec = v.dropFirst(5)
                guard let colon = spec.firstIndex(of: ":"), let s = Values.size(String(spec[spec.index(after: colon)...])) else {
                    throw ConfigError("invalid zone size \"\(v)\"", at: a.location)
                }
                guard s >= Compiler.minimumLimitZoneSize else { throw ConfigError("zone \"\(v)\" is too small", at: a.location) }
                name = String(spec[..<colon])
                size = s
                zoneToken = a
            } else if kind == .requests && v.hasPrefix("rate=") {
                var digits = v.dropFirst(5)
                if digits.hasSuffix("r/s") { digits = digits.dropLast(3) } else if digits.hasSuffix("r/m") { digits = digits.dropLast(3); scale = 60 }
                guard let r = Values.number(String(digits)), r > 0, r <= Int.max / 1000 else { throw ConfigError("invalid rate \"\(v)\"", at: a.location) }
                rate = r
            } else if kind == .requests && v == "sync" {
                throw ConfigError("\"sync\" is not supported by lb: zones are shared by the worker threads of one lb, not synchronized across a cluster (nginx Plus)", at: a.location)
            } else {
                throw ConfigError("invalid parameter \"\(v)\"", at: a.location)
            }
        }
        guard let zt = zoneToken, !name.isEmpty else { throw ConfigError("\"\(d.name)\" must have \"zone\" parameter", at: d.location) }
        if d.args.count > (kind == .requests ? 3 : 2) { throw ConfigError("invalid number of arguments in \"\(d.name)\" directive", at: d.location) }
        let i = try limitZoneIndex(name, kind: kind, at: zt.location)
        if limitZones[i].size != 0 {
            throw ConfigError("\(d.name) \"\(name)\" is already bound to key \"\(limitZones[i].key.source)\"", at: d.location)
        }
        limitZones[i] = LimitZone(name: name, kind: kind, key: key, size: size, rate: rate * 1000 / scale, location: d.location)
    }

    /// The index of a zone, declared or not yet (nginx adds a zero-size placeholder, checked at the end).
    func limitZoneIndex(_ name: String, kind: LimitZone.Kind, at loc: SourceLocation) throws -> Int {
        if let i = limitZones.firstIndex(where: { $0.name == name }) {
            guard limitZones[i].kind == kind else {
                throw ConfigError("the shared memory zone \"\(name)\" is already declared for a different use", at: loc)
            }
            return i
        }
        limitZones.append(LimitZone(name: name, kind: kind, key: Template(literal: ""), size: 0, rate: 0, location: loc))
        return limitZones.count - 1
    }

    /// Zones referenced by `limit_req` / `limit_conn` but never declared (called by `finish`).
    func checkLimitZones() throws {
        for z in limitZones where z.size == 0 {
            throw ConfigError("zero size shared memory zone \"\(z.name)\"", at: z.location)
        }
    }

    func limitReq(_ d: Directive) throws {
        var zone: Int?
        var burst = 0, delay = 0
        for a in d.args {
            let v = a.text
            if v.hasPrefix("zone=") {
                zone = try limitZoneIndex(String(v.dropFirst(5)), kind: .requests, at: a.location)
            } else if v.hasPrefix("burst=") {
                guard let n = Values.number(String(v.dropFirst(6))), n > 0, n <= Int.max / 1000 else { throw ConfigError("invalid burst value \"\(v)\"", at: a.location) }
                burst = n
            } else if v.hasPrefix("delay=") {
                guard let n = Values.number(String(v.dropFirst(6))), n > 0, n <= Int.max / 1000 else { throw ConfigError("invalid delay value \"\(v)\"", at: a.location) }
                delay = n
            } else if v == "nodelay" {
                delay = Int.max / 1000
            } else {
                throw ConfigError("invalid parameter \"\(v)\"", at: a.location)
            }
        }
        guard let zone else { throw ConfigError("\"limit_req\" must have \"zone\" parameter", at: d.location) }
        var rules = settingsAtThisLevel(\.limitReq)
        if rules.contains(where: { $0.zone == zone }) { throw ConfigError("\"limit_req\" directive is duplicate", at: d.location) }
        rules.append(LimitReqRule(zone: zone, burst: burst * 1000, delay: delay * 1000))
        settings.s.accessPhase.limitReq = rules
    }

    func limitConn(_ d: Directive) throws {
        let zone = try limitZoneIndex(d.args[0].text, kind: .connections, at: d.args[0].location)
        guard let n = Values.number(d.args[1].text), n > 0 else {
            throw ConfigError("invalid number of connections \"\(d.args[1].text)\"", at: d.args[1].location)
        }
        guard n <= 65535 else { throw ConfigError("connection limit must be less 65536", at: d.args[1].location) }
        var rules = settingsAtThisLevel(\.limitConn)
        if rules.contains(where: { $0.zone == zone }) { throw ConfigError("\"limit_conn\" directive is duplicate", at: d.location) }
        rules.append(LimitConnRule(zone: zone, limit: n))
        settings.s.accessPhase.limitConn = rules
    }

    /// The rules set at the level being compiled (a level's list replaces the inherited one whole).
    private func settingsAtThisLevel<T>(_ kp: WritableKeyPath<AccessPhaseSettings, [T]?>) -> [T] {
        settings.s.accessPhase[keyPath: kp] ?? []
    }

    func limitStatus(_ d: Directive) throws -> Int {
        let code = try number(d)
        guard code >= 400 && code <= 599 else { throw ConfigError("value must be between 400 and 599", at: d.args[0].location) }
        return code
    }

    func limitLogLevel(_ d: Directive) throws -> ErrorLog.Level {
        switch d.args[0].text {
        case "info": return .info
        case "notice": return .notice
        case "warn": return .warn
        case "error": return .error
        default:
            throw ConfigError("invalid value \"\(d.args[0].text)\" in \"\(d.name)\" directive, it must be \"info\", \"notice\", \"warn\" or \"error\"", at: d.args[0].location)
        }
    }
}
