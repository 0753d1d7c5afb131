import CCrypt
import COpenSSL
import Glibc

/// ngx_http_auth_basic_module without I/O: the Authorization header, the htpasswd file's lines,
/// and the password check for every scheme nginx's `ngx_crypt` knows — `{PLAIN}`, `{SHA}`,
/// `{SSHA}`, `$apr1$` (SHA-1 and MD5 from OpenSSL), and anything else through the system's
/// crypt(3) (libxcrypt: yescrypt `$y$`, bcrypt `$2y$`, sha512crypt `$6$`, md5crypt `$1$`, …).
enum AuthBasic {
    /// The user and password of `Authorization: Basic …` (nginx's `ngx_http_auth_basic_user`), or
    /// nil when the header is not Basic credentials (then nginx asks for them: 401).
    static func credentials(_ value: [UInt8]) -> (user: [UInt8], password: [UInt8])? {
        let basic = Array("basic ".utf8)
        guard value.count > basic.count else { return nil }
        for k in 0..<basic.count where value[k] | 0x20 != basic[k] && !(basic[k] == 0x20 && value[k] == 0x20) { return nil }
        var i = basic.count
        while i < value.count && value[i] == 0x20 { i += 1 }
        guard i < value.count, let decoded = base64Decode(value[i...]) else { return nil }
        guard let colon = decoded.firstIndex(of: UInt8(ascii: ":")) else { return nil }
        return (Array(decoded[..<colon]), Array(decoded[(colon + 1)...]))
    }

    /// Standard base64 with padding (nginx's `ngx_decode_base64`: stops at `=`, refuses other bytes).
    static func base64Decode(_ s: ArraySlice<UInt8>) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(s.count * 3 / 4)
        var acc: UInt32 = 0, bits = 0
        var end = s.endIndex
        while end > s.startIndex && s[end - 1] == UInt8(ascii: "=") { end -= 1 }
        guard s.count - (end - s.startIndex) <= 2 else { return nil }
        for c in s[s.startIndex..<end] {
            let v: UInt8
            switch c {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): v = c - UInt8(ascii: "A")
            case UInt8(ascii: "a")...UInt8(ascii: "z"): v = c - UInt8(ascii: "a") + 26
            case UInt8(ascii: "0")...UInt8(ascii: "9"): v = c - UInt8(ascii: "0") + 52
            case UInt8(ascii: "+"): v = 62
            case UInt8(ascii: "/"): v = 63
            default: return nil
            }
            acc = acc << 6 | UInt32(v)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: acc >> UInt32(bits)))
            }
        }
        if (end - s.startIndex) % 4 == 1 { return nil }
        return out
    }

    static func base64Encode(_ b: [UInt8]) -> [UInt8] {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        var out: [UInt8] = []
        var i = 0
        while i < b.count {
            let n = min(3, b.count - i)
            var v = UInt32(b[i]) << 16
            if n > 1 { v |= UInt32(b[i + 1]) << 8 }
            if n > 2 { v |= UInt32(b[i + 2]) }
            for k in 0..<4 { out.append(k <= n ? alphabet[Int(v >> UInt32(18 - 6 * k)) & 63] : UInt8(ascii: "=")) }
            i += 3
        }
        return out
    }

    /// The stored hash of `user` in an htpasswd file's bytes, as nginx reads it: lines
    /// `user:hash[:comment]`, `#` and CR-led lines skipped, the hash ending at LF, CR or `:`.
    static func storedHash(of user: [UInt8], in file: [UInt8]) -> [UInt8]? {
        var i = 0
        while i < file.count {
            var end = i
            while end < file.count && file[end] != 0x0A { end += 1 }
            defer { i = end + 1 }
            let line = file[i..<end]
            guard let first = line.first, first != UInt8(ascii: "#"), first != 0x0D else { continue }
            guard line.count > user.count, line[i..<(i + user.count)].elementsEqual(user), line[i + user.count] == UInt8(ascii: ":") else { continue }
            var h = i + user.count + 1
            let start = h
            while h < end && file[h] != 0x0D && file[h] != UInt8(ascii: ":") { h += 1 }
            return Array(file[start..<h])
        }
        return nil
    }

    /// Whether `password` matches `stored`; nil when the hash cannot be computed (nginx: 500).
    static func verify(password: [UInt8], stored: [UInt8]) -> Bool? {
        guard let computed = hash(password: password, setting: stored) else { return nil }
        return constantTimeEqual(computed, stored)
    }

    /// Whether `stored` goes to crypt(3) (not one of nginx's own schemes, which cost at most a
    /// millisecond).
    static func usesSystemCrypt(_ stored: [UInt8]) -> Bool {
        for p in ["{PLAIN}", "{SHA}", "{SSHA}", "$apr1$"] where stored.starts(with: Array(p.utf8)) { return false }
        return true
    }

    /// nginx's `ngx_crypt`: the hash of `password` in the scheme (and with the salt) of `setting`.
    static func hash(password: [UInt8], setting: [UInt8]) -> [UInt8]? {
        func starts(_ p: String) -> Bool { setting.starts(with: Array(p.utf8)) }
        if starts("{PLAIN}") { return Array("{PLAIN}".utf8) + password }
        if starts("{SHA}") { return Array("{SHA}".utf8) + base64Encode(digest(password, EVP_sha1())) }
        if starts("{SSHA}") {
            guard let raw = base64Decode(setting[6...]), raw.count > 20 else { return nil }
            let salt = Array(raw[20...])
            return Array("{SSHA}".utf8) + base64Encode(digest(password + salt, EVP_sha1()) + salt)
        }
        if starts("$apr1$") { return apr1(password: password, setting: setting) }
        return systemCrypt(password: password, setting: setting)
    }

    static func digest(_ data: [UInt8], _ md: OpaquePointer?) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var len: UInt32 = 0
        _ = data.withUnsafeBytes { EVP_Digest($0.baseAddress, $0.count, &out, &len, md, nil) }
        return Array(out[0..<Int(len)])
    }

    /// Apache's MD5-crypt with the `$apr1$` magic: 1,002 MD5 digests composed as Apache does.
    static func apr1(password pw: [UInt8], setting: [UInt8]) -> [UInt8] {
        let magic = Array("$apr1$".utf8)
        var salt = Array(setting[magic.count...].prefix(8))
        if let d = salt.firstIndex(of: UInt8(ascii: "$")) { salt = Array(salt[..<d]) }
        let md5 = EVP_md5()
        var alt = digest(pw + salt + pw, md5)
        var ctx = pw + magic + salt
        var left = pw.count
        while left > 0 {
            ctx += alt[0..<min(left, 16)]
            left -= 16
        }
        var i = pw.count
        while i > 0 {
            ctx.append(i & 1 != 0 ? 0 : pw.first ?? 0)
            i >>= 1
        }
        alt = digest(ctx, md5)
        for r in 0..<1000 {
            var c: [UInt8] = r & 1 != 0 ? pw : alt
            if r % 3 != 0 { c += salt }
            if r % 7 != 0 { c += pw }
            c += r & 1 != 0 ? alt : pw
            alt = digest(c, md5)
        }
        let itoa64 = Array("./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".utf8)
        var out = magic + salt + [UInt8(ascii: "$")]
        func to64(_ v: UInt32, _ n: Int) {
            var v = v
            for _ in 0..<n {
                out.append(itoa64[Int(v & 0x3F)])
                v >>= 6
            }
        }
        for (a, b, c) in [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)] {
            to64(UInt32(alt[a]) << 16 | UInt32(alt[b]) << 8 | UInt32(alt[c]), 4)
        }
        to64(UInt32(alt[11]), 2)
        return out
    }

    /// crypt(3) of the system's libxcrypt (crypt_rn: reentrant, its state on the heap, not shared).
    static func systemCrypt(password: [UInt8], setting: [UInt8]) -> [UInt8]? {
        let data = UnsafeMutablePointer<crypt_data>.allocate(capacity: 1)
        defer {
            memset(data, 0, MemoryLayout<crypt_data>.size) // the password's traces, as nginx's explicit_memzero
            data.deallocate()
        }
        memset(data, 0, MemoryLayout<crypt_data>.size)
        let phrase = password.map { CChar(bitPattern: $0) } + [0]
        let salt = setting.map { CChar(bitPattern: $0) } + [0]
        guard let r = crypt_rn(phrase, salt, data, Int32(MemoryLayout<crypt_data>.size)) else { return nil }
        let result = Array(UnsafeBufferPointer(start: UnsafeRawPointer(r).assumingMemoryBound(to: UInt8.self), count: strlen(r)))
        // libxcrypt's failure token starts with `*`: never a match.
        if result.first == UInt8(ascii: "*") { return nil }
        return result
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var d: UInt8 = 0
        for k in 0..<a.count { d |= a[k] ^ b[k] }
        return d == 0
    }
}
