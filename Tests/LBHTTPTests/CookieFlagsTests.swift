import Testing
@testable import LBHTTP

/// `proxy_cookie_flags`' edit of one Set-Cookie value, without sockets; the expected fields are
/// what Debian's nginx 1.22 sent for the same upstream fields.
struct CookieFlagsTests {
    static func edit(_ value: String, _ words: [String]) -> String? {
        let f = words.compactMap { CookieFlagSet.parse($0) }.reduce(CookieFlagSet()) { $0.union($1) }
        return HeaderRewrites.rewriteSetCookie(value, rewrite: { _, _ in nil }, flags: { _ in f })
    }

    static let all = ["secure", "httponly", "samesite=strict"]
    static let none = ["nosecure", "nohttponly", "nosamesite"]

    @Test(arguments: [
        ("sess=1", all, "sess=1; Secure; HttpOnly; SameSite=Strict"),
        ("sess=3; Secure; HttpOnly; SameSite=Strict", all, "sess=3; Secure; HttpOnly; SameSite=Strict"),
        ("sess=4; secure;samesite=lax; path=/x", all, "sess=4; secure; SameSite=Strict; path=/x; HttpOnly"),
        ("sess=5; SameSite=STRICT; SameSite=None", all, "sess=5; SameSite=STRICT; SameSite=None; Secure; HttpOnly"),
        ("track=1; Secure; secure; HttpOnly; SameSite=Lax; samesite; Path=/", none, "track=1; Path=/"),
        ("bee=2; SameSite", ["samesite=none", "bogus"], "bee=2; SameSite=None"),
        ("both=3; Secure; samesite=LAX", ["secure", "samesite=lax"], "both=3; Secure; samesite=LAX"),
        ("sess=6;  Max-Age = 3 ;", all, "sess=6; Max-Age=3; ; Secure; HttpOnly; SameSite=Strict"),
        ("x=1", ["SECURE", "SameSite=Lax"], "x=1; Secure; SameSite=Lax"),
    ] as [(String, [String], String)])
    func flagsEditTheCookieAsNginx(_ field: String, _ words: [String], _ nginx: String) {
        #expect(Self.edit(field, words) == nginx)
    }

    @Test func noFlagsOrNoCookieLeaveTheFieldAlone() {
        #expect(Self.edit("var=1", ["bogus"]) == nil)
        #expect(Self.edit("flag; Secure", Self.all) == nil)
    }
}
