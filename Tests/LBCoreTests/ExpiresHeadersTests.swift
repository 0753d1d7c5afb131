import Testing
import LBConfig
@testable import LBCore

/// `expires` as headers, at a fixed time (nginx's `ngx_http_set_expires`; the values are what
/// nginx 1.22 sends for the same settings, see DifferentialTests' expires case).
@Suite struct ExpiresHeadersTests {
    let now = 1_000_000_000 // Sun, 09 Sep 2001 01:46:40 GMT

    func v(_ e: Expires, mtime: Int? = nil) -> (expires: String, cacheControl: String)? {
        ExpiresHeaders.values(e, now: now, mtime: mtime ?? now)
    }

    @Test func keywordsHaveFixedValues() {
        #expect(v(.epoch)! == ("Thu, 01 Jan 1970 00:00:01 GMT", "no-cache"))
        #expect(v(.max)! == ("Thu, 31 Dec 2037 23:55:55 GMT", "max-age=315360000"))
        #expect(v(.off) == nil)
    }

    @Test func relativeTimesCountFromNowOrTheModification() {
        #expect(v(.modified(ms: 3_600_000, fromModification: false))! == ("Sun, 09 Sep 2001 02:46:40 GMT", "max-age=3600"))
        #expect(v(.modified(ms: 3_600_000, fromModification: true), mtime: now - 600)! == ("Sun, 09 Sep 2001 02:36:40 GMT", "max-age=3000"))
        // Modified long ago: the date is past, so no-cache.
        #expect(v(.modified(ms: 60_000, fromModification: true), mtime: now - 600)! == ("Sun, 09 Sep 2001 01:37:40 GMT", "no-cache"))
    }

    @Test func zeroIsNowAndNegativeIsNoCache() {
        #expect(v(.modified(ms: 0, fromModification: false))! == ("Sun, 09 Sep 2001 01:46:40 GMT", "max-age=0"))
        #expect(v(.modified(ms: -1000, fromModification: false))! == ("Sun, 09 Sep 2001 01:46:39 GMT", "no-cache"))
    }

    @Test func timeOfDayIsItsNextOccurrence() {
        #expect(v(.timeOfDay(ms: 2 * 3_600_000))! == ("Sun, 09 Sep 2001 02:00:00 GMT", "max-age=800"))
        #expect(v(.timeOfDay(ms: 3_600_000))! == ("Mon, 10 Sep 2001 01:00:00 GMT", "max-age=83600"))
    }
}
