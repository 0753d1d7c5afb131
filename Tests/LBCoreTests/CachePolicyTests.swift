@testable import LBConfig
@testable import LBCore
import LBHTTP
import Testing

@Suite struct MD5Tests {
    @Test func rfc1321TestSuite() {
        let vectors = [
            ("", "d41d8cd98f00b204e9800998ecf8427e"),
            ("a", "0cc175b9c0f1b6a831c399e269772661"),
            ("abc", "900150983cd24fb0d6963f7d28e17f72"),
            ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
            ("abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"),
            ("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", "d174ab98d277d9f5a5611c2c9f419d9f"),
            ("12345678901234567890123456789012345678901234567890123456789012345678901234567890", "57edf4a22be3c955ac49da2e2107b67a"),
        ]
        for (input, hex) in vectors { #expect(MD5.hex(MD5.digest(Array(input.utf8))) == hex, "\(input)") }
        // Lengths around the 56/64-byte padding boundary.
        #expect(MD5.hex(MD5.digest([UInt8](repeating: 0x61, count: 55))) == "ef1772b6dff9a122358552954ad0df65")
        #expect(MD5.hex(MD5.digest([UInt8](repeating: 0x61, count: 56))) == "3b0c8ac703f828b04c6c197006d17218")
        #expect(MD5.hex(MD5.digest([UInt8](repeating: 0x61, count: 64))) == "014842d480b571495a4a0363793f7367")
    }

    @Test func hashRoundTripsThroughItsFileName() {
        let h = CacheHash(key: Array("httpapp/hello?x=1".utf8))
        #expect(h.description == "a579e8118d5ac3256d804c4cc2952db0")
        #expect(CacheHash(hex: h.description) == h)
        #expect(CacheHash(hex: "A579E8118D5AC3256D804C4CC2952DB0") == nil)
        #expect(CacheHash(hex: "a579e8118d5ac3256d804c4cc2952db") == nil)
        #expect(CacheHash(hex: "index.html") == nil)
    }
}

@Suite struct CachePolicyTests {
    typealias Info = CachePolicy.ResponseInfo
    let now = 1_000_000
    let valid = [CacheValid(codes: [200, 301, 302], ms: 600_000), CacheValid(codes: [404], ms: 60_000)]

    func fresh(_ i: Info, valid v: [CacheValid]? = nil, ignore: IgnoredHeaders = []) -> Int? {
        CachePolicy.freshness(i, now: now, valid: v ?? valid, ignore: ignore).map { $0.validUntil - now }
    }

    @Test func proxyCacheValidFirstMatchWins() {
        #expect(fresh(Info(status: 200)) == 600)
        #expect(fresh(Info(status: 404)) == 60)
        #expect(fresh(Info(status: 500)) == nil)
        #expect(fresh(Info(status: 500), valid: [CacheValid(codes: [], ms: 5000)]) == 5) // any
        #expect(fresh(Info(status: 200), valid: [CacheValid(codes: [200], ms: 0), CacheValid(codes: [], ms: 5000)]) == nil)
        #expect(fresh(Info(status: 200), valid: []) == nil)
        #expect(fresh(Info(status: 206)) == nil)
    }

    @Test func xAccelExpiresOverCacheControlOverExpires() {
        #expect(fresh(Info(status: 200, xAccelExpires: "30", cacheControl: "max-age=100", expires: "Thu, 01 Jan 2037 00:00:00 GMT")) == 30)
        #expect(fresh(Info(status: 200, xAccelExpires: "0", cacheControl: "max-age=100")) == nil)
        #expect(fresh(Info(status: 200, xAccelExpires: "@\(now + 77)")) == 77)
        #expect(fresh(Info(status: 200, xAccelExpires: "@\(now - 1)")) == nil)
        // X-Accel-Expires also overrides Cache-Control: private (nginx).
        #expect(fresh(Info(status: 200, xAccelExpires: "30", cacheControl: "private")) == 30)
        #expect(fresh(Info(status: 200, cacheControl: "max-age=100", expires: "Thu, 01 Jan 2037 00:00:00 GMT")) == 100)
        let e = DateCache.httpDate(now + 50)
        #expect(fresh(Info(status: 200, expires: e)) == 50)
        #expect(fresh(Info(status: 200, expires: DateCache.httpDate(now - 50))) == nil)
        #expect(fresh(Info(status: 200, expires: "0")) == nil)
        // Ignored headers fall through to the next rule.
        #expect(fresh(Info(status: 200, xAccelExpires: "30", cacheControl: "max-age=100"), ignore: .xAccelExpires) == 100)
        #expect(fresh(Info(status: 200, cacheControl: "no-store"), ignore: .cacheControl) == 600)
        #expect(fresh(Info(status: 200, cacheControl: "max-age=100", expires: e), ignore: [.cacheControl, .expires]) == 600)
    }

    @Test func cacheControlRules() {
        for v in ["no-cache", "no-store", "private", "max-age=0", "public, max-age=0", "s-maxage=0, max-age=60", "Private, max-age=60", "max-age=abc"] {
            #expect(fresh(Info(status: 200, cacheControl: v)) == nil, "\(v)")
        }
        #expect(fresh(Info(status: 200, cacheControl: "s-maxage=60, max-age=0")) == 60)
        #expect(fresh(Info(status: 200, cacheControl: "public, max-age=\"45\"")) == 45)
        #expect(fresh(Info(status: 200, cacheControl: "public")) == 600)
        // Cache-Control max-age applies whatever the status, as in nginx.
        #expect(fresh(Info(status: 500, cacheControl: "max-age=5")) == 5)
        let f = CachePolicy.freshness(Info(status: 200, cacheControl: "max-age=10, stale-while-revalidate=20, stale-if-error=300"), now: now, valid: valid, ignore: [])
        #expect(f?.staleWhileRevalidate == 20)
        #expect(f?.staleIfError == 300)
        let g = CachePolicy.freshness(Info(status: 200, cacheControl: "max-age=10, stale-while-revalidate=20"), now: now, valid: valid, ignore: [])
        #expect(g?.staleIfError == 20)
    }

    @Test func setCookieAndVary() {
        #expect(fresh(Info(status: 200, setCookie: true)) == nil)
        #expect(fresh(Info(status: 200, setCookie: true), ignore: .setCookie) == 600)
        #expect(fresh(Info(status: 200, vary: "*")) == nil)
        #expect(fresh(Info(status: 200, vary: "Accept, *")) == nil)
        #expect(fresh(Info(status: 200, vary: "*"), ignore: .vary) == 600)
        #expect(fresh(Info(status: 200, vary: "Accept-Encoding")) == 600)
        #expect(CachePolicy.varyHeaderNames("Accept-Encoding, accept-language ,Accept-Encoding") == ["accept-encoding", "accept-language"])
    }
}

@Suite struct CacheIndexTests {
    func entry(_ key: String, size: Int = 1000, valid: Int = 100) -> CacheEntry {
        let h = CacheHash(key: Array(key.utf8))
        return CacheEntry(hash: h, primary: h, key: Array(key.utf8), varyNames: [], head: Array("HTTP/1.1 200 OK\r\n\r\n".utf8), status: 200,
                          bodyOffset: 100, bodyLength: size - 100, validUntil: valid, staleWhileRevalidate: 0, staleIfError: 0, inode: 1)
    }

    @Test func leastRecentlyUsedIsEvictedBeyondMaxSize() {
        var ix = CacheIndex(memoryLimit: 1 << 20, maxSize: 3000)
        for k in ["a", "b", "c"] { ix.insert(entry(k), now: 1) }
        #expect(ix.count == 3)
        let touched = ix.lookup(CacheHash(key: Array("a".utf8)), now: 2) // a is now the most recent
        #expect(touched != nil)
        ix.insert(entry("d"), now: 3)
        #expect(ix.count == 3)
        #expect(ix.peek(CacheHash(key: Array("b".utf8))) == nil)
        #expect(ix.peek(CacheHash(key: Array("a".utf8))) != nil)
        #expect(ix.diskBytes == 3000)
        #expect(ix.removed.map { String(decoding: $0.key, as: UTF8.self) } == ["b"])
        #expect(ix.entriesOldestFirst.map { String(decoding: $0.key, as: UTF8.self) } == ["c", "a", "d"])
    }

    @Test func theKeysZoneBoundsMemory() {
        var ix = CacheIndex(memoryLimit: 8192, maxSize: nil)
        for i in 0..<1000 { ix.insert(entry("key-\(i)"), now: Int64(i)) }
        #expect(ix.memoryBytes <= 8192)
        #expect(ix.count > 10)
        #expect(ix.count < 1000)
        #expect(ix.peek(CacheHash(key: Array("key-999".utf8))) != nil)
        #expect(ix.peek(CacheHash(key: Array("key-0".utf8))) == nil)
    }

    @Test func replacingAnEntryQueuesNothingAndKeepsTotalsRight() {
        var ix = CacheIndex(memoryLimit: 1 << 20, maxSize: nil)
        ix.insert(entry("a", size: 1000), now: 1)
        ix.insert(entry("a", size: 5000), now: 2)
        #expect(ix.count == 1)
        #expect(ix.diskBytes == 5000)
        #expect(ix.removed.isEmpty)
        // The loader does not overwrite what live traffic indexed.
        let inserted = ix.insert(entry("a", size: 10), now: 3, onlyIfAbsent: true)
        #expect(!inserted)
        #expect(ix.diskBytes == 5000)
    }

    @Test func inactiveEntriesAreRemoved() {
        var ix = CacheIndex(memoryLimit: 1 << 20, maxSize: nil)
        ix.insert(entry("old"), now: 0)
        ix.insert(entry("new"), now: 500)
        ix.expireInactive(now: 1000, inactiveMs: 600)
        #expect(ix.count == 1)
        #expect(ix.peek(CacheHash(key: Array("new".utf8))) != nil)
        #expect(ix.removed.count == 1)
    }

    @Test func lockHasOneHolderUntilReleasedOrOld() {
        var ix = CacheIndex(memoryLimit: 1 << 20, maxSize: nil)
        let h = CacheHash(key: Array("k".utf8))
        let first = ix.tryLock(h, now: 0, maxAgeMs: 5000)
        let second = ix.tryLock(h, now: 100, maxAgeMs: 5000)
        #expect(first && !second)
        #expect(ix.isLocked(h, now: 100, maxAgeMs: 5000))
        // proxy_cache_lock_age: a holder older than that lets one more request through.
        let old = ix.tryLock(h, now: 5001, maxAgeMs: 5000)
        #expect(old)
        ix.unlock(h)
        #expect(!ix.isLocked(h, now: 5002, maxAgeMs: 5000))
        let again = ix.tryLock(h, now: 5003, maxAgeMs: 5000)
        #expect(again)
    }

    @Test func minUsesCountsPerKey() {
        var ix = CacheIndex(memoryLimit: 1 << 20, maxSize: nil)
        let h = CacheHash(key: Array("k".utf8))
        let a = ix.countUse(h, now: 0), b = ix.countUse(h, now: 1)
        #expect(a == 1 && b == 2)
        ix.clearUses(h)
        let c = ix.countUse(h, now: 2)
        #expect(c == 1)
    }

    @Test func purgeByPrimaryRemovesEveryVariant() {
        var ix = CacheIndex(memoryLimit: 1 << 20, maxSize: nil)
        let key = Array("page".utf8)
        let primary = CacheHash(key: key)
        for lang in ["en", "fr"] {
            var e = entry("page")
            e.hash = CacheFile.variantHash(key: key, names: ["accept-language"]) { _ in Array(lang.utf8) }
            e.varyNames = ["accept-language"]
            ix.insert(e, now: 1)
        }
        ix.insert(entry("other"), now: 1)
        #expect(ix.varyNames(primary) == ["accept-language"])
        let purged = ix.removeAll { $0.primary == primary }
        #expect(purged == 2)
        #expect(ix.count == 1)
        #expect(ix.varyNames(primary) == nil)
    }
}

@Suite struct CacheFileTests {
    @Test func headerRoundTripsAndRejectsDamage() {
        let key = Array("httpapp/x".utf8)
        let h = CacheHash(key: key)
        var e = CacheEntry(hash: h, primary: h, key: key, varyNames: ["accept"], head: Array("HTTP/1.1 200 OK\r\nETag: \"1\"\r\n\r\n".utf8),
                           status: 200, bodyOffset: 0, bodyLength: 5, validUntil: 1234, staleWhileRevalidate: 7, staleIfError: 9, inode: 0)
        let header = CacheFile.encodeHeader(e, created: 1000)
        e.bodyOffset = header.count
        let file = header + Array("hello".utf8)
        let d = CacheFile.decode(file, fileSize: file.count, inode: 42)
        #expect(d?.key == key)
        #expect(d?.varyNames == ["accept"])
        #expect(d?.validUntil == 1234)
        #expect(d?.staleWhileRevalidate == 7)
        #expect(d?.staleIfError == 9)
        #expect(d?.bodyOffset == header.count)
        #expect(d?.bodyLength == 5)
        #expect(d?.inode == 42)
        #expect(d?.etag == Array("\"1\"".utf8))
        // Truncated, extended, foreign, or with a key that does not hash to the stored hash.
        #expect(CacheFile.decode(file, fileSize: file.count - 1, inode: 1) == nil)
        #expect(CacheFile.decode(file, fileSize: file.count + 1, inode: 1) == nil)
        #expect(CacheFile.decode(Array("HTTP/1.1 200 OK\r\n\r\nhello".utf8), fileSize: 24, inode: 1) == nil)
        var tampered = file
        tampered[CacheFile.fixedLength] ^= 0x20
        #expect(CacheFile.decode(tampered, fileSize: tampered.count, inode: 1) == nil)
        #expect(CacheFile.decode(Array(file.prefix(40)), fileSize: file.count, inode: 1) == nil)
    }
}
