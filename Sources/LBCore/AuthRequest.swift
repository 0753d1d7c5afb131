import LBConfig
import LBHTTP
import LBIO

/// ngx_http_auth_request_module's decisions, without sockets: what a subrequest's status means,
/// and how the access modules' verdicts combine under `satisfy` (ngx_http_core_access_phase).
enum AccessDecision {
    /// What the phase does after one module's verdict.
    enum Step: Equatable {
        /// Ask the next module (or end the phase with the verdict so far).
        case next
        /// The content phase runs now (`satisfy any` with a module allowing).
        case pass
        /// The request is answered with this verdict.
        case answer(AccessVerdict)
    }

    /// The auth subrequest's status as a verdict: 2xx allows, 401 challenges with the
    /// subrequest's `WWW-Authenticate` values, 403 forbids, anything else (3xx, 404, 5xx, the
    /// 502 or 504 of no response at all) is a 500.
    static func authRequestVerdict(status: Int, challenges: [[UInt8]]) -> AccessVerdict {
        switch status {
        case 200..<300: .allowed
        case 401: .challenged(challenges)
        case 403: .forbidden
        default: .failed(500)
        }
    }

    /// Folds one module's verdict into the phase's `code` (nginx's `r->access_code`): with
    /// `satisfy all` a refusal answers at once; with `satisfy any` an allow passes, a refusal is
    /// remembered (a 401 wins over a 403 and keeps its challenges; a later 401 adds its own, as
    /// nginx adds every module's WWW-Authenticate to the response). Errors answer either way.
    static func fold(_ v: AccessVerdict, into code: inout AccessVerdict, any: Bool) -> Step {
        switch v {
        case .declined:
            return .next
        case .allowed:
            return any ? .pass : .next
        case .forbidden, .unauthorized, .challenged:
            if !any { return .answer(v) }
            switch (code, v) {
            case (.unauthorized(let realm), .challenged(let more)):
                code = .challenged([basicChallenge(realm)] + more)
            case (.challenged(let first), .challenged(let more)):
                code = .challenged(first + more)
            case (.challenged(let first), .unauthorized(let realm)):
                code = .challenged(first + [basicChallenge(realm)])
            case (.unauthorized, _), (.challenged, _):
                break
            default:
                code = v
            }
            return .next
        case .failed:
            return .answer(v)
        }
    }

    /// The end of the phase: no module refused (or none had a say) passes, else the remembered
    /// refusal answers.
    static func conclude(_ code: AccessVerdict) -> Step {
        code == .declined ? .pass : .answer(code)
    }

    /// `Basic realm="…"`, auth_basic's challenge.
    static func basicChallenge(_ realm: [UInt8]) -> [UInt8] {
        Array("Basic realm=\"".utf8) + realm + [UInt8(ascii: "\"")]
    }
}

extension ClientConnection {
    /// auth_request, the access phase's last module (nginx runs the access handlers in reverse
    /// registration order: allow/deny, auth_basic, auth_request). Returns true when the content
    /// phase may run now; false when the request was answered or waits on the subrequest.
    func runAuthRequest(code: AccessVerdict, any: Bool) -> Bool {
        guard case .some(.some(let uri)) = ex.location.settings.accessPhase.authRequest, let state = ex.accessState else {
            return concludeAccess(code)
        }
        state.pendingAccess = (code, any)
        startSubrequest(uri)
        return false
    }

    /// The subrequest ended: its assignments are set (also when it refused, as nginx does, so an
    /// error_page sees them), then its verdict joins the phase's.
    func authSubrequestDone(_ r: SubrequestResult) {
        guard let accessState = ex.accessState, let pending = accessState.pendingAccess else { return }
        accessState.pendingAccess = nil
        ex.responder = .routing
        if r.failed {
            respondError(500)
            return
        }
        for (name, value) in r.assignments {
            ex.authVariables.removeAll { $0.name == name }
            ex.authVariables.append((name, value))
        }
        let verdict = AccessDecision.authRequestVerdict(status: r.status, challenges: r.challenges)
        if case .failed = verdict { log(.error, "auth request unexpected status: \(r.status)") }
        var code = pending.code
        switch AccessDecision.fold(verdict, into: &code, any: pending.any) {
        case .pass: resumeAfterAccess()
        case .answer(let v): answerAccess(v)
        case .next: if concludeAccess(code) { resumeAfterAccess() }
        }
    }

    /// The access phase passed after waiting: the content phase.
    func resumeAfterAccess() {
        runContentPhase()
    }

    /// `$name` of an `auth_request_set`, when the subrequest set it; returns whether it did.
    @discardableResult
    func appendAuthRequestVariable(_ name: String, to out: inout [UInt8]) -> Bool {
        guard let ex, let v = ex.authVariables.first(where: { $0.name == name }) else { return false }
        out += v.value
        return true
    }
}
