import COpenSSL
import Testing
@testable import LBCore

/// auth_basic's pieces without sockets: the Authorization header, htpasswd lines as nginx reads
/// them, and every hash scheme. Vectors from `openssl passwd` (an implementation apart from
/// libxcrypt and from lb's apr1), OpenBSD's bcrypt test vector, and libxcrypt's own yescrypt
/// (which Debian's nginx, using the same crypt(3), accepts too: AuthTests in EndToEndTests).
struct AuthBasicTests {
    static func b(_ s: String) -> [UInt8] { Array(s.utf8) }

    @Test(arguments: [
        ("$apr1$saltsalt$LrttParrLPdxvgutaSXWJ0", "secret"),          // openssl passwd -apr1 -salt saltsalt
        ("$1$abcdefgh$cHJi5PXp/ki/ktXzqlk6I1", "secret"),               // openssl passwd -1
        ("$5$abcdefgh$gruCpC7VkOTspMQTTSAR8mtlO9Upms.fwqE5y16JVM.", "secret"), // openssl passwd -5
        ("$6$abcdefghijklmnop$J/AWykHqo2Tx5UtavGnFc3ytI33la50JpzLTarSWVhkIXK6wOjNwwZjsrIw2UgmrER2EKrSHCeQyAINEEXAk1/", "secret"), // -6
        ("$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", "U*U"), // OpenBSD bcrypt vector
        ("$2y$05$abcdefghijklmnopqrstuuOQiyCxlgf/oeuTqixKmWdcYUh4Hjl0a", "secret"),
        ("$y$j9T$abcdefgh$IUWJt2doU4Kf6E/JP1UkAT3S5O3Q7SSA8SJirXIlEu9", "secret"),
        ("{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=", "secret"),                 // printf secret | openssl dgst -sha1 -binary | base64
        ("{PLAIN}secret", "secret"),
    ])
    func everySchemeVerifiesItsPasswordAndRefusesAnother(stored: String, password: String) {
        #expect(AuthBasic.verify(password: AuthBasicTests.b(password), stored: AuthBasicTests.b(stored)) == true)
        #expect(AuthBasic.verify(password: AuthBasicTests.b(password + "x"), stored: AuthBasicTests.b(stored)) == false)
    }

    @Test func apr1IsApacheMD5CryptWithItsMagic() {
        #expect(AuthBasic.apr1(password: AuthBasicTests.b("secret"), setting: AuthBasicTests.b("$apr1$saltsalt$")) == AuthBasicTests.b("$apr1$saltsalt$LrttParrLPdxvgutaSXWJ0"))
    }

    @Test func saltedSHAUsesTheSaltAfterTheDigest() {
        // {SSHA}: base64(SHA1(password + salt) + salt).
        let salt: [UInt8] = [1, 2, 3, 4]
        let stored = AuthBasicTests.b("{SSHA}") + AuthBasic.base64Encode(AuthBasic.digest(AuthBasicTests.b("pw") + salt, EVP_sha1()) + salt)
        #expect(AuthBasic.verify(password: AuthBasicTests.b("pw"), stored: stored) == true)
        #expect(AuthBasic.verify(password: AuthBasicTests.b("pW"), stored: stored) == false)
    }

    @Test func anUnknownSchemeIsAnErrorNotAMatch() {
        #expect(AuthBasic.verify(password: AuthBasicTests.b("x"), stored: AuthBasicTests.b("$9$nonsense")) != true)
    }

    @Test func basicCredentialsAreDecodedAtTheFirstColon() {
        let c = AuthBasic.credentials(AuthBasicTests.b("Basic " + "YWxpY2U6b3BlbjpzZXNhbWU="))  // alice:open:sesame
        #expect(c?.user == AuthBasicTests.b("alice") && c?.password == AuthBasicTests.b("open:sesame"))
        #expect(AuthBasic.credentials(AuthBasicTests.b("basic   YTpi"))?.user == AuthBasicTests.b("a"))
        #expect(AuthBasic.credentials(AuthBasicTests.b("Bearer YTpi")) == nil)
        #expect(AuthBasic.credentials(AuthBasicTests.b("Basic YWxpY2U=")) == nil) // no colon
        #expect(AuthBasic.credentials(AuthBasicTests.b("Basic ***")) == nil)
    }

    @Test func htpasswdLinesAreReadAsNginxReadsThem() {
        let file = AuthBasicTests.b("# comment\n\nbob:{PLAIN}b\r\nalice:$apr1$x$y:comment\nalicia:{PLAIN}z\ncarol:{PLAIN}c")
        #expect(AuthBasic.storedHash(of: AuthBasicTests.b("alice"), in: file) == AuthBasicTests.b("$apr1$x$y"))
        #expect(AuthBasic.storedHash(of: AuthBasicTests.b("bob"), in: file) == AuthBasicTests.b("{PLAIN}b"))
        #expect(AuthBasic.storedHash(of: AuthBasicTests.b("carol"), in: file) == AuthBasicTests.b("{PLAIN}c"))
        #expect(AuthBasic.storedHash(of: AuthBasicTests.b("ali"), in: file) == nil)
        #expect(AuthBasic.storedHash(of: AuthBasicTests.b("# comment"), in: file) == nil)
    }
}
