import Testing
@testable import LBCore

/// auth_request's decisions without sockets: the subrequest's status as a verdict
/// (ngx_http_auth_request_handler) and how verdicts combine under `satisfy`
/// (ngx_http_core_access_phase), module by module in nginx's order: allow/deny, auth_basic,
/// auth_request.
struct AuthRequestTests {
    static func b(_ s: String) -> [UInt8] { Array(s.utf8) }
    static let bearer = [b("Bearer realm=\"api\"")]

    @Test(arguments: [
        (200, AccessVerdict.allowed), (204, .allowed), (299, .allowed),
        (401, .challenged(bearer)), (403, .forbidden),
        // Anything else is the auth service failing: redirects, 404, 5xx, no response at all.
        (0, .failed(500)), (100, .failed(500)), (301, .failed(500)), (302, .failed(500)), (304, .failed(500)),
        (400, .failed(500)), (404, .failed(500)), (500, .failed(500)), (502, .failed(500)), (504, .failed(500)),
    ])
    func subrequestStatusBecomesAVerdict(status: Int, verdict: AccessVerdict) {
        #expect(AccessDecision.authRequestVerdict(status: status, challenges: AuthRequestTests.bearer) == verdict)
    }

    @Test func aChallengeWithoutWWWAuthenticateIsStillA401() {
        #expect(AccessDecision.authRequestVerdict(status: 401, challenges: []) == .challenged([]))
    }

    /// Runs the modules' verdicts through the phase as the connection does; the outcome.
    static func phase(_ verdicts: [AccessVerdict], any: Bool) -> AccessDecision.Step {
        var code = AccessVerdict.declined
        for v in verdicts {
            let step = AccessDecision.fold(v, into: &code, any: any)
            if step != .next { return step }
        }
        return AccessDecision.conclude(code)
    }

    static let basic401 = AccessVerdict.unauthorized(realm: b("site"))
    static let auth401 = AccessVerdict.challenged(bearer)

    @Test(arguments: [
        // satisfy all: every module with a say must allow; the first refusal answers.
        ([AccessVerdict.declined, .declined, .allowed], false, AccessDecision.Step.pass),
        ([.allowed, .allowed, .allowed], false, .pass),
        ([.allowed, .declined, auth401], false, .answer(auth401)),
        ([.forbidden, .allowed, .allowed], false, .answer(.forbidden)),
        ([.allowed, basic401, .allowed], false, .answer(basic401)),
        ([.allowed, .allowed, .forbidden], false, .answer(.forbidden)),
        ([.declined, .declined, .failed(500)], false, .answer(.failed(500))),
        // satisfy any: one allow is enough; else a 401 wins over a 403.
        ([.allowed, basic401, .failed(500)], true, .pass),
        ([.forbidden, .declined, .allowed], true, .pass),
        ([.forbidden, .declined, .forbidden], true, .answer(.forbidden)),
        ([.forbidden, .declined, auth401], true, .answer(auth401)),
        ([.forbidden, .declined, .failed(500)], true, .answer(.failed(500))),
        ([.declined, .declined, .declined], true, .pass),
        // Both auth modules refuse: both challenges go out, auth_basic's first (as nginx adds them).
        ([.forbidden, basic401, auth401], true, .answer(.challenged([b("Basic realm=\"site\"")] + bearer))),
        ([.declined, basic401, .forbidden], true, .answer(basic401)),
    ])
    func satisfyCombinesTheModulesAsNginx(verdicts: [AccessVerdict], any: Bool, outcome: AccessDecision.Step) {
        #expect(AuthRequestTests.phase(verdicts, any: any) == outcome)
    }
}
