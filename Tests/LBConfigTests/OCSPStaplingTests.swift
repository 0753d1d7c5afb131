import Testing

@testable import LBConfig

/// The pure parts of OCSP stapling by fetching (nginx's ngx_event_openssl_stapling.c): the
/// responder URL, the request, the responder's HTTP head, the refresh schedule.
struct OCSPStaplingTests {
    func parse(_ url: String, names: [String: [String]] = [:]) -> Result<OCSPResponder, OCSPError> {
        OCSPResponder.parse(url) { names[$0] ?? [] }
    }

    @Test func aResponderURLGivesHostPortAndPathWithNginxsDefaults() throws {
        let r = try parse("http://127.0.0.1:8888/ocsp").get()
        #expect(r.host == "127.0.0.1" && r.port == 8888 && r.uri == "/ocsp" && r.addresses == ["127.0.0.1"])
        let d = try parse("HTTP://ocsp.example.com", names: ["ocsp.example.com": ["192.0.2.7"]]).get()
        #expect(d.host == "ocsp.example.com" && d.port == 80 && d.uri == "/" && d.addresses == ["192.0.2.7"])
        let v6 = try parse("http://[::1]:9/").get()
        #expect(v6.host == "::1" && v6.port == 9 && v6.uri == "/")
    }

    @Test func aBadResponderURLIsRefusedInNginxsWords() {
        #expect(parse("https://ocsp.example.com/") == .failure("invalid URL prefix in OCSP responder \"https://ocsp.example.com/\""))
        #expect(parse("http://ocsp.example.com:99999/") == .failure("invalid port in OCSP responder \"ocsp.example.com:99999/\""))
        #expect(parse("http://:80/") == .failure("no host in OCSP responder \":80/\""))
        #expect(parse("http://ocsp.invalid:8080/") == .failure("host not found in OCSP responder \"ocsp.invalid:8080/\""))
    }

    @Test func theRequestIsAGetWithTheBase64RequestEscapedAsAComponent() {
        #expect(OCSPResponder.base64(Array("foobar".utf8)) == "Zm9vYmFy")
        #expect(OCSPResponder.base64(Array("fooba".utf8)) == "Zm9vYmE=")
        #expect(OCSPResponder.base64([0xFB, 0xFF]) == "+/8=")
        #expect(OCSPResponder.escapeComponent("a+b/c=d-_.~") == "a%2Bb%2Fc%3Dd-_.~")
        let r = OCSPResponder(host: "ocsp.test", port: 8080, uri: "/x", addresses: [])
        #expect(String(decoding: r.request(der: [0xFB, 0xFF]), as: UTF8.self) == "GET /x/%2B%2F8%3D HTTP/1.0\r\nHost: ocsp.test\r\n\r\n")
        let root = OCSPResponder(host: "127.0.0.1", port: 80, uri: "/", addresses: [])
        #expect(String(decoding: root.request(der: Array("foobar".utf8)), as: UTF8.self).hasPrefix("GET /Zm9vYmFy HTTP/1.0\r\n"))
    }

    @Test func theResponderHeadIsReadAsNginxReadsIt() {
        let ok = Array("HTTP/1.0 200 OK\r\nContent-type: application/ocsp-response\r\nContent-Length: 3\r\n\r\nabc".utf8)
        #expect(OCSPHTTPHead.parse(ok) == .complete(code: 200, bodyStart: ok.count - 3))
        // Byte at a time: incomplete until the blank line.
        for k in 0..<(ok.count - 3) { #expect(OCSPHTTPHead.parse(Array(ok[0..<k])) == .incomplete, "at \(k)") }
        #expect(OCSPHTTPHead.parse(Array("HTTP/1.1 404 Not Found\n\n".utf8)) == .complete(code: 404, bodyStart: 24))
        #expect(OCSPHTTPHead.parse(Array("HTTP/1.0 403.1\r\n\r\n".utf8)) == .complete(code: 403, bodyStart: 18))
        #expect(OCSPHTTPHead.parse(Array("SSH-2.0".utf8)) == .invalid("OCSP responder sent invalid response"))
        #expect(OCSPHTTPHead.parse(Array("HTTP/x 200 OK\r\n".utf8)) == .invalid("OCSP responder sent invalid response"))
        #expect(OCSPHTTPHead.parse(Array("HTTP/1.0 200 OK\r\nbad header\r\n\r\n".utf8)) == .invalid("OCSP responder sent invalid response"))
        #expect(OCSPHTTPHead.parse(Array("HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n".utf8))
                == .invalid("OCSP responder sent invalid \"Content-Type\" header: \"text/html\""))
    }

    @Test func aGoodResponseIsRefreshedBeforeItExpiresButNotSoonerThanInFiveMinutesAndAtLeastHourly() {
        let now = 1_000_000
        #expect(OCSPStaple.nextRefresh(valid: now + 7 * 86400, now: now) == now + 3600)
        #expect(OCSPStaple.nextRefresh(valid: now + 1800, now: now) == now + 1500)
        #expect(OCSPStaple.nextRefresh(valid: now + 400, now: now) == now + 300)
        #expect(OCSPStaple.nextRefresh(valid: Int.max, now: now) == now + 3600)
        // After a failure: again in 5 minutes.
        #expect(OCSPStaple.nextRefresh(valid: nil, now: now) == now + 300)
    }

    @Test func theFirstHandshakeThatAsksStartsOneFetchAndGetsNothing() {
        var s = OCSPStapleState()
        #expect(s.handshake(now: 100, canFetch: true) == (nil, true))
        // While it runs, no second fetch; without a fetcher (lb -t), none at all.
        #expect(s.handshake(now: 101, canFetch: true) == (nil, false))
        var idle = OCSPStapleState()
        #expect(idle.handshake(now: 100, canFetch: false) == (nil, false))
        #expect(!idle.loading)
    }

    @Test func aGoodResponseIsStapledUntilItsNextUpdateAndFetchedAgainAfterAnHour() {
        var s = OCSPStapleState()
        _ = s.handshake(now: 100, canFetch: true)
        s.finish(([1, 2, 3], valid: 100 + 86400), now: 100)
        #expect(s.handshake(now: 200, canFetch: true) == ([1, 2, 3], false))
        #expect(s.handshake(now: 100 + 3600, canFetch: true) == ([1, 2, 3], false))
        #expect(s.handshake(now: 100 + 3601, canFetch: true) == ([1, 2, 3], true))
    }

    @Test func afterAFailedFetchTheOldResponseStaysUntilItsNextUpdateAndTheNextFetchIsInFiveMinutes() {
        var s = OCSPStapleState()
        _ = s.handshake(now: 0, canFetch: true)
        s.finish(([7], valid: 1000), now: 0)
        _ = s.handshake(now: 701, canFetch: true)  // due: valid - 300
        s.finish(nil, now: 701)
        #expect(s.handshake(now: 800, canFetch: true) == ([7], false))
        #expect(s.handshake(now: 1000, canFetch: true) == ([7], false))
        // Expired: no staple; the next fetch once 701 + 300 has passed.
        #expect(s.handshake(now: 1001, canFetch: true) == (nil, false))
        #expect(s.handshake(now: 1002, canFetch: true) == (nil, true))
        var fresh = OCSPStapleState()
        _ = fresh.handshake(now: 0, canFetch: true)
        fresh.finish(nil, now: 0)
        #expect(fresh.handshake(now: 300, canFetch: true) == (nil, false))
        #expect(fresh.handshake(now: 301, canFetch: true) == (nil, true))
    }
}
