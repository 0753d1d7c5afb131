import Glibc
import LBConfig
import LBHTTP
import LBIO

/// What the preaccess and access phases leave on a request (nginx's `r->main->limit_*_status`
/// and the limit_conn cleanups of its pool): the `$limit_*_status` values, the authenticated
/// user, and the connection counts it holds until it ends. Created only for a location with
/// limits or auth_basic.
final class AccessPhaseState {
    var limitReqStatus: LimitReqStatus?
    var limitConnStatus: LimitConnStatus?
    /// The limit_conn counts this request holds (released when it ends).
    var held: [(zone: LimitZoneRuntime, key: [UInt8])] = []
    /// A password is being hashed off the loop; the access phase's verdict so far.
    var hashing = false
    var pendingAccess: (code: AccessVerdict, any: Bool)?

    /// Gives back every limit_conn count (request end; idempotent).
    func release() {
        for h in held { h.zone.connections.withLock { $0.release(h.key) } }
        held.removeAll()
    }

    deinit { release() }
}

/// The result of one access module (nginx's handler return codes in the access phase).
enum AccessVerdict: Equatable {
    /// The module has nothing to say (no rule matched, auth_basic off).
    case declined
    case allowed
    case forbidden
    /// 401 with `WWW-Authenticate: Basic realm="…"`.
    case unauthorized(realm: [UInt8])
    /// 401 with these `WWW-Authenticate` values (auth_request's subrequest's; maybe none).
    case challenged([[UInt8]])
    case failed(Int)
}

extension ClientConnection {
    /// Runs limit_req, limit_conn (preaccess), then allow/deny and auth_basic combined by
    /// `satisfy` (access), as nginx orders them. Returns true when the content phase may run now;
    /// false when the request was answered, or waits on a timer (limit_req's delay).
    func runAccessPhase() -> Bool {
        // nginx's `return` ends the request in the rewrite phase, before limits and access checks
        // run: a location that returns is neither limited nor authenticated there either.
        if case .return = ex.location.handler { return true }
        // An internal redirect runs the phase again with the state so far: limit_req and
        // limit_conn count once per request (`r->main->limit_req_status`), the access checks
        // run for every location entered.
        let state = ex.accessState ?? AccessPhaseState()
        ex.accessState = state
        let p = ex.location.settings.accessPhase
        guard state.limitReqStatus == nil, let rules = p.limitReq, !rules.isEmpty else { return runLimitConnAndAccess() }
        var inputs: [LimitReqDecision.Input] = []
        inputs.reserveCapacity(rules.count)
        for r in rules {
            let z = generation.limitZones[r.zone]
            inputs.append(.init(zone: z, burst: r.burst, delay: r.delay, key: evaluate(z.zone.key)))
        }
        if ex.variableFailed {
            respondError(500)
            return false
        }
        let dry = p.limitReqDryRun == true
        let dryText = dry ? ", dry run" : ""
        switch LimitReqDecision.decide(inputs, now: monotonicMillis()) {
        case .declined:
            break
        case .passed:
            state.limitReqStatus = .passed
        case .rejected(let excess, let limit):
            log(settings.resolved.limitReqLogLevel, "limiting requests\(dryText), excess: \(ClientConnection.thousandths(excess)) by zone \"\(inputs[limit].zone.zone.name)\"")
            state.limitReqStatus = dry ? .rejectedDryRun : .rejected
            if !dry {
                respondError(settings.resolved.limitReqStatus)
                return false
            }
        case .noMemory(let limit):
            log(.alert, "could not allocate node in limit_req zone \"\(inputs[limit].zone.zone.name)\"")
            state.limitReqStatus = dry ? .rejectedDryRun : .rejected
            if !dry {
                respondError(settings.resolved.limitReqStatus)
                return false
            }
        case .delayed(let ms, let excess, let limit):
            log(settings.resolved.limitReqDelayLogLevel, "delaying request\(dryText), excess: \(ClientConnection.thousandths(excess)), by zone \"\(inputs[limit].zone.zone.name)\"")
            state.limitReqStatus = dry ? .delayedDryRun : .delayed
            if !dry {
                // The request waits on the loop's timer (clientTimedOut → limitDelayElapsed);
                // reads wait too, as nginx's test_reading does not consume them.
                ex.responder = .delayed
                worker.loop.setDeadline(self, afterMillis: ms)
                return false
            }
        }
        return runLimitConnAndAccess()
    }

    /// limit_req's delay is over: the request goes on through the phases after limit_req. (A
    /// deadline while a password is hashed is an old one: the hash's answer resumes the request.)
    func limitDelayElapsed() {
        if ex?.accessState?.hashing == true { return }
        if peerClosed {
            // nginx's test_reading during the delay: the client went away, the request ends (499).
            log(.info, "client prematurely closed connection")
            ex.status = 499
            finishLog()
            close()
            return
        }
        ex.responder = .routing
        if runLimitConnAndAccess() { runContentPhase() }
    }

    /// `1.500` for 1500 thousandths (nginx's `%ui.%03ui` of an excess).
    static func thousandths(_ v: Int) -> String {
        let f = v % 1000
        return "\(v / 1000).\(f < 10 ? "00" : f < 100 ? "0" : "")\(f)"
    }

    /// limit_conn (the rest of preaccess), then the access phase.
    func runLimitConnAndAccess() -> Bool {
        let p = ex.location.settings.accessPhase
        if let rules = p.limitConn, !rules.isEmpty, let state = ex.accessState, state.limitConnStatus == nil {
            let dry = p.limitConnDryRun == true
            for r in rules {
                let z = generation.limitZones[r.zone]
                let key = evaluate(z.zone.key)
                if ex.variableFailed {
                    respondError(500)
                    return false
                }
                if key.isEmpty { continue }
                if key.count > 255 {
                    log(.error, "the value of the \"\(z.zone.key.source)\" key is more than 255 bytes: \"\(String(decoding: key, as: UTF8.self))\"")
                    continue
                }
                state.limitConnStatus = .passed
                let outcome = z.connections.withLock { $0.acquire(key, limit: r.limit) }
                if outcome == .passed {
                    state.held.append((z, key))
                    continue
                }
                if outcome == .rejected {
                    log(settings.resolved.limitConnLogLevel, "limiting connections\(dry ? ", dry run," : "") by zone \"\(z.zone.name)\"")
                } else {
                    log(.crit, "ngx_slab_alloc() failed: no memory in limit_conn zone \"\(z.zone.name)\"")
                }
                state.release()
                state.limitConnStatus = dry ? .rejectedDryRun : .rejected
                if dry { break }
                respondError(settings.resolved.limitConnStatus)
                return false
            }
        }
        return runAccess(p)
    }

    /// The access phase: allow/deny, then auth_basic; `satisfy all` needs every module that has a
    /// say to allow, `satisfy any` one (401 wins over 403 when none does), as nginx's
    /// `ngx_http_core_access_phase`. A crypt(3) hash (bcrypt, yescrypt: tens to hundreds of
    /// milliseconds) is computed on the hashing threads, the request waiting as for a delay.
    func runAccess(_ p: AccessPhaseSettings) -> Bool {
        let any = p.satisfyAny == true
        var code: AccessVerdict = .declined
        if let done = combine(accessRuleVerdict(any: any), into: &code, any: any) { return done }
        let auth: AccessVerdict
        switch authBasicCheck(p) {
        case .verdict(let v): auth = v
        case .hash(let job):
            guard let state = ex.accessState, AuthHashPool.shared.available else {
                auth = authBasicVerdict(job, ok: AuthBasic.verify(password: job.password, stored: job.stored))
                break
            }
            state.pendingAccess = (code, any)
            state.hashing = true
            ex.responder = .delayed
            let loop = worker.loop
            let me = ConnectionReference(self)
            let token = ObjectIdentifier(state)
            AuthHashPool.shared.submit(password: job.password, stored: job.stored) { ok in
                loop.execute { me.connection.turn { me.connection.authHashed(job, ok: ok, token: token) } }
            }
            return false
        }
        return finishAccess(auth, code: code, any: any)
    }

    /// A hash computed off the loop is back: the access phase ends as it would have inline.
    func authHashed(_ job: AuthBasicJob, ok: Bool?, token: ObjectIdentifier) {
        guard state == .exchange, let ex, case .delayed = ex.responder, let s = ex.accessState, ObjectIdentifier(s) == token, s.hashing,
              let pending = s.pendingAccess else { return }
        s.hashing = false
        ex.responder = .routing
        if finishAccess(authBasicVerdict(job, ok: ok), code: pending.code, any: pending.any) { resumeAfterAccess() }
    }

    /// Folds one module's verdict into the phase's; returns whether the phase is over (true: go
    /// on to the content phase; false: answered), nil to ask the next module.
    func combine(_ v: AccessVerdict, into code: inout AccessVerdict, any: Bool) -> Bool? {
        switch AccessDecision.fold(v, into: &code, any: any) {
        case .next: return nil
        case .pass: return true
        case .answer(let a):
            answerAccess(a)
            return false
        }
    }

    /// auth_basic's verdict joins the phase's; auth_request (AuthRequest.swift) comes last.
    func finishAccess(_ auth: AccessVerdict, code: AccessVerdict, any: Bool) -> Bool {
        var code = code
        if let done = combine(auth, into: &code, any: any) { return done }
        return runAuthRequest(code: code, any: any)
    }

    /// The end of the access phase: true when nothing refused, else the refusal is answered.
    func concludeAccess(_ code: AccessVerdict) -> Bool {
        if code != .declined {
            if code == .forbidden { log(.error, "access forbidden by rule") }
            answerAccess(code)
            return false
        }
        return true
    }

    /// allow/deny in order; the first matching rule decides (ngx_http_access_module).
    func accessRuleVerdict(any: Bool) -> AccessVerdict {
        guard let rules = ex.location.settings.accessRules else { return .declined }
        let addr = clientAddress.ipBytes
        for r in rules where r.network?.contains(addr) ?? true {
            if r.allow { return .allowed }
            if !any { log(.error, "access forbidden by rule") }
            return .forbidden
        }
        return .declined
    }

    func answerAccess(_ v: AccessVerdict) {
        switch v {
        case .forbidden: respondError(403)
        case .failed(let c):
            // nginx's own 500 ends the connection too (ngx_http_special_response_handler).
            if c == 500 { closeAfterResponse = true }
            respondError(c)
        case .unauthorized(let realm): answerChallenge([AccessDecision.basicChallenge(realm)])
        case .challenged(let values): answerChallenge(values)
        case .declined, .allowed: break
        }
    }

    /// 401 with these WWW-Authenticate values; they stay on the response when an error_page for
    /// 401 answers instead (nginx keeps headers_out across the redirect).
    func answerChallenge(_ values: [[UInt8]]) {
        var kept: [UInt8] = []
        for v in values {
            kept += Array("WWW-Authenticate: ".utf8)
            kept += v
            kept += [0x0D, 0x0A]
        }
        ex.keptHeaders = kept
        respondError(401)
    }

    /// What auth_basic needs: a verdict now, or a password checked against a stored hash.
    enum AuthBasicStep {
        case verdict(AccessVerdict)
        case hash(AuthBasicJob)
    }

    /// ngx_http_auth_basic_module's handler up to the hash. The user file is read on every
    /// request, as nginx does (a changed file applies at once), on the loop thread (a small
    /// local file; nginx reads it there too).
    func authBasicCheck(_ p: AccessPhaseSettings) -> AuthBasicStep {
        guard case .some(.some(let realmTemplate)) = p.authBasic, let fileTemplate = p.authBasicUserFile else { return .verdict(.declined) }
        let realm = evaluate(realmTemplate)
        if realm.elementsEqual("off".utf8) { return .verdict(.declined) }
        guard let header = headerValue("authorization"), let cred = AuthBasic.credentials(header) else {
            log(.info, "no user/password was provided for basic authentication")
            return .verdict(.unauthorized(realm: realm))
        }
        let path = String(decoding: evaluate(fileTemplate), as: UTF8.self)
        let file: [UInt8]
        switch ClientConnection.readWholeFile(path) {
        case .success(let bytes): file = bytes
        case .failure(let e):
            let err = e.code
            log(err == ENOENT ? .error : .crit, "open() \"\(path)\" failed (\(err): \(String(cString: strerror(err))))")
            return .verdict(err == ENOENT ? .forbidden : .failed(500))
        }
        let user = String(decoding: cred.user, as: UTF8.self)
        guard let stored = AuthBasic.storedHash(of: cred.user, in: file) else {
            log(.error, "user \"\(user)\" was not found in \"\(path)\"")
            return .verdict(.unauthorized(realm: realm))
        }
        let job = AuthBasicJob(user: user, password: cred.password, stored: stored, realm: realm)
        // nginx's own schemes cost at most a millisecond: checked here. crypt(3) goes to the pool.
        if !AuthBasic.usesSystemCrypt(stored) {
            return .verdict(authBasicVerdict(job, ok: AuthBasic.verify(password: cred.password, stored: stored)))
        }
        return .hash(job)
    }

    func authBasicVerdict(_ job: AuthBasicJob, ok: Bool?) -> AccessVerdict {
        guard let ok else { return .failed(500) }
        if !ok {
            log(.error, "user \"\(job.user)\": password mismatch")
            return .unauthorized(realm: job.realm)
        }
        return .allowed
    }

    static func readWholeFile(_ path: String) -> Result<[UInt8], Int32Error> {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { return .failure(Int32Error(errno)) }
        defer { Glibc.close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, 4096) }
            if n < 0 {
                if errno == EINTR { continue }
                return .failure(Int32Error(errno))
            }
            if n == 0 { break }
            out += chunk[0..<n]
        }
        return .success(out)
    }

    /// `$limit_req_status`, `$limit_conn_status`: empty until the module ran.
    func appendLimitStatus(_ v: Variable, to out: inout [UInt8]) {
        guard let s = ex?.accessState else { return }
        if v == .limitReqStatus, let r = s.limitReqStatus { out += Array(r.text.utf8) }
        if v == .limitConnStatus, let c = s.limitConnStatus { out += Array(c.text.utf8) }
    }

    /// `$remote_user`: the user of Basic credentials, sent whether or not auth_basic checked them
    /// (nginx decodes the header for the variable alone).
    func appendRemoteUser(to out: inout [UInt8]) {
        let hb = head.readableBytes
        for f in req.headers where f.name.count == 13 {
            guard hb[f.name].map(ASCII.lower).elementsEqual("authorization".utf8) else { continue }
            if let c = AuthBasic.credentials(Array(hb[f.value])) { out += c.user }
            return
        }
    }
}

/// An errno value as an Error (the user file's open and read).
struct Int32Error: Error, Equatable {
    let code: Int32
    init(_ c: Int32) { code = c }
}

extension PeerAddress {
    /// `$binary_remote_addr`: 4 bytes for IPv4 (also when held v4-mapped), 16 for IPv6.
    func appendBinary(to out: inout [UInt8]) {
        let b = ipBytes
        if b[0..<10].allSatisfy({ $0 == 0 }) && b[10] == 0xFF && b[11] == 0xFF {
            out += b[12..<16]
        } else {
            out += b
        }
    }
}
