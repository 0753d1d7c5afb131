/// nginx's URI normalization for location matching: percent-decoding, merged slashes, `.` and
/// `..` segments resolved. nil means the request is invalid (400): a bad escape, an encoded NUL,
/// or `..` above the root.
public enum URI {
    /// Normalizes into `out`, reusing its storage; false when the URI is invalid. Paths with no
    /// `%`, no `//` and no `/.` (nearly all) are copied as they are.
    public static func normalize(_ path: UnsafeRawBufferPointer, into out: inout [UInt8], mergeSlashes: Bool = true) -> Bool {
        let n = path.count
        var simple = n > 0 && path[0] == UInt8(ascii: "/")
        if simple {
            var prev: UInt8 = 0
            for i in 0..<n {
                let c = path[i]
                if c == UInt8(ascii: "%") || c == 0 || (prev == UInt8(ascii: "/") && ((mergeSlashes && c == UInt8(ascii: "/")) || c == UInt8(ascii: "."))) {
                    simple = false
                    break
                }
                prev = c
            }
        }
        if simple {
            out.removeAll(keepingCapacity: true)
            out.append(contentsOf: path)
            return true
        }
        guard let r = normalize(path, mergeSlashes: mergeSlashes) else { return false }
        out = r
        return true
    }

    /// With `mergeSlashes` off (nginx's `merge_slashes off`), an empty segment is kept, and `..`
    /// removes it as it would any other.
    public static func normalize(_ path: UnsafeRawBufferPointer, mergeSlashes: Bool = true) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(path.count)
        var i = 0
        let n = path.count
        // Decode first, then resolve segments on the decoded bytes (so %2e%2e is "..").
        var decoded: [UInt8] = []
        decoded.reserveCapacity(n)
        var needsWork = false
        while i < n {
            let c = path[i]
            if c == UInt8(ascii: "%") {
                guard i + 2 < n, let h = hex(path[i + 1]), let l = hex(path[i + 2]) else { return nil }
                let v = UInt8(h << 4 | l)
                if v == 0 { return nil }
                decoded.append(v)
                i += 3
                needsWork = true
                continue
            }
            if c == 0 { return nil }
            if c == UInt8(ascii: ".") || c == UInt8(ascii: "/") { needsWork = true }
            decoded.append(c)
            i += 1
        }
        guard decoded.first == UInt8(ascii: "/") else { return decoded.isEmpty ? [UInt8(ascii: "/")] : nil }
        if !needsWork { return decoded }
        // Resolve segments.
        var segStarts: [Int] = []
        var j = 0
        let m = decoded.count
        while j < m {
            // decoded[j] == "/"
            var k = j + 1
            while k < m && decoded[k] != UInt8(ascii: "/") { k += 1 }
            let seg = decoded[(j + 1)..<k]
            let last = k == m
            if seg.isEmpty {
                if last {
                    out.append(UInt8(ascii: "/")) // trailing slash kept; merged slashes dropped
                } else if !mergeSlashes {
                    segStarts.append(out.count)
                    out.append(UInt8(ascii: "/"))
                }
            } else if seg.count == 1 && seg.first == UInt8(ascii: ".") {
                if last { out.append(UInt8(ascii: "/")) }
            } else if seg.count == 2 && seg.first == UInt8(ascii: ".") && seg.last == UInt8(ascii: ".") {
                guard let s = segStarts.popLast() else { return nil }
                out.removeSubrange(s...)
                if last { out.append(UInt8(ascii: "/")) }
            } else {
                segStarts.append(out.count)
                out.append(UInt8(ascii: "/"))
                out.append(contentsOf: seg)
            }
            j = k
        }
        if out.isEmpty { out.append(UInt8(ascii: "/")) }
        return out
    }

    /// The value of a hex digit (either case), nil for any other byte.
    @inline(__always)
    public static func hex(_ c: UInt8) -> Int? {
        switch c {
        case 0x30...0x39: Int(c - 0x30)
        case 0x41...0x46: Int(c - 0x41 + 10)
        case 0x61...0x66: Int(c - 0x61 + 10)
        default: nil
        }
    }

    /// `ngx_unescape_uri`, byte for byte: every `%XX` decoded; a `%` before a non-hex byte is
    /// dropped (the byte kept), a `%X` before a non-hex byte is dropped with it, as is a `%` or `%X`
    /// at the end. `redirect` (NGX_UNESCAPE_REDIRECT): the first `?`, written or decoded from a
    /// `%3f`/`%3F` with a letter digit, ends the decoding (the rest is kept as written), and a `%XX`
    /// standing for a byte outside `%`…DEL (exclusive) is kept as written.
    public static func unescape(_ s: [UInt8], redirect: Bool) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(s.count)
        var i = 0
        while i < s.count {
            let c = s[i]
            i += 1
            if redirect && c == UInt8(ascii: "?") { out.append(c); break }
            guard c == UInt8(ascii: "%") else { out.append(c); continue }
            guard i < s.count else { break }
            guard let high = hex(s[i]) else { out.append(s[i]); i += 1; continue }
            i += 1
            guard i < s.count else { break }
            guard let low = hex(s[i]) else { i += 1; continue }
            let ch = UInt8(high << 4 | low)
            i += 1
            guard redirect else { out.append(ch); continue }
            if ch == UInt8(ascii: "?") && s[i - 1] > UInt8(ascii: "9") { out.append(ch); break }
            if ch > UInt8(ascii: "%") && ch < 0x7F { out.append(ch) } else { out += s[(i - 3)..<i] }
        }
        if i < s.count { out += s[i...] }
        return out
    }

    /// Percent-encodes what a path may not carry raw (nginx's escape for proxy_pass URIs).
    public static func escapePath(_ p: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(p.count)
        let digits = Array("0123456789ABCDEF".utf8)
        for c in p {
            if c <= 0x20 || c >= 0x7F || c == UInt8(ascii: "%") || c == UInt8(ascii: "?") || c == UInt8(ascii: "#") || c == UInt8(ascii: "\"") {
                out.append(UInt8(ascii: "%"))
                out.append(digits[Int(c >> 4)])
                out.append(digits[Int(c & 15)])
            } else {
                out.append(c)
            }
        }
        return out
    }
}
