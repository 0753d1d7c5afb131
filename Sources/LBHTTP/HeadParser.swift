import Glibc

/// How request header names are judged (nginx's `underscores_in_headers` and
/// `ignore_invalid_headers`).
public struct HeaderNameRules: Sendable, Equatable {
    /// `_` is a valid name byte (nginx default: no).
    public var underscores: Bool
    /// Headers with invalid names are dropped (nginx default: yes); else kept.
    public var ignoreInvalid: Bool

    public init(underscores: Bool = false, ignoreInvalid: Bool = true) {
        self.underscores = underscores
        self.ignoreInvalid = ignoreInvalid
    }
}

/// Finds the end of an HTTP head in bytes that arrive in pieces, enforcing nginx's size limits
/// while waiting, then parses the complete head at once. Feeding the bytes one at a time or all
/// together gives the same result.
public struct HeadScanner: Sendable {
    /// Longest allowed first line (request line → 414, status line → 502).
    public var maxFirstLine: Int
    /// Longest allowed header line (→ 431).
    public var maxHeaderLine: Int
    /// Longest allowed head in total (→ 431).
    public var maxHead: Int

    private var scanned = 0
    private var lineStart = 0
    private var lineNumber = 0
    private var skippedLeading = 0
    /// The request line's method has been seen whole (its bytes are checked as they arrive).
    private var methodSeen = false

    public init(maxFirstLine: Int = 8192, maxHeaderLine: Int = 8192, maxHead: Int = 32768) {
        self.maxFirstLine = maxFirstLine
        self.maxHeaderLine = maxHeaderLine
        self.maxHead = maxHead
    }

    public mutating func reset() {
        scanned = 0
        lineStart = 0
        lineNumber = 0
        skippedLeading = 0
        methodSeen = false
    }

    /// Bytes before the request line that were skipped: CR and LF, any number, as nginx (and
    /// RFC 9112 §2.2) allows. They count against no limit; the head starts after them.
    public var leadingBytes: Int { skippedLeading }

    /// Forgets the leading CR/LF bytes skipped so far and returns their count, for a caller that
    /// drops them from the front of its buffer (`readIndex += discardLeading()`) so that a client
    /// sending empty lines without end cannot fill it. Scanning then continues on the shortened
    /// buffer as if those bytes had never arrived.
    public mutating func discardLeading() -> Int {
        let k = skippedLeading
        scanned -= k
        lineStart -= k
        skippedLeading = 0
        return k
    }

    /// Returns the head length (through the blank line) when complete, nil when more is needed.
    /// An HTTP/0.9 request line (`GET /path` with no version) is a complete head by itself.
    /// As nginx, a request line is refused as soon as its method or version is seen to be
    /// invalid (a TLS handshake or `get /` is a 400 at once, not after a timeout).
    public mutating func scan(_ b: UnsafeRawBufferPointer, isRequest: Bool) throws(HTTPError) -> Int? {
        var i = scanned
        let n = b.count
        if isRequest && lineNumber == 0 {
            if i == lineStart {
                // Before the request line: CR and LF bytes are skipped one by one (nginx's sw_start).
                while i < n && (b[i] == 0x0D || b[i] == 0x0A) { i += 1 }
                lineStart = i
                skippedLeading = i
            }
            var k = i
            // Only as far as the line may reach: past it, bytes arriving one at a time meet the
            // length limit (414) first, and the whole buffer at once must give the same answer.
            let methodEnd = min(n, lineStart + maxFirstLine + 1)
            while !methodSeen && k < methodEnd {
                if b[k] == 0x20 && k > lineStart {
                    methodSeen = true
                } else if !HeadParser.isMethodByte(b[k]) {
                    throw HTTPError(400, "invalid method")
                }
                k += 1
            }
        }
        while i < n {
            // Jump to the next LF with memchr (vectorized) instead of testing every byte.
            guard let hit = memchr(b.baseAddress! + i, 0x0A, n - i) else {
                i = n
                break
            }
            i = b.baseAddress!.distance(to: UnsafeRawPointer(hit))
            var lineLen = i - lineStart
            if lineLen > 0 && b[i - 1] == 0x0D { lineLen -= 1 }
            if lineLen == 0 {
                // The same total the checks below apply while the head is incomplete.
                if lineStart - skippedLeading > maxHead { throw HTTPError(isRequest ? 431 : 502, "too large head") }
                scanned = i + 1
                return i + 1
            }
            try checkLine(lineLen)
            if isRequest && lineNumber == 0 {
                let lineEnd = lineStart + lineLen
                guard let v = HeadParser.versionStart(b, lineStart, lineEnd) else {
                    // HTTP/0.9 (or a line the parser will refuse): no headers follow, answer now.
                    scanned = i + 1
                    return i + 1
                }
                var k = try HeadParser.requestVersion(b, v, lineEnd).next
                while k < lineEnd && b[k] == 0x20 { k += 1 }
                if k < lineEnd { throw HTTPError(400, "invalid line ending") }
            }
            lineNumber += 1
            lineStart = i + 1
            i += 1
        }
        scanned = i
        // A CR at the end may start the line ending: it does not count yet (a line of exactly the
        // limit followed by CRLF passes whether its bytes come together or one at a time).
        let cr = i > lineStart && b[i - 1] == 0x0D ? 1 : 0
        try checkLine(i - lineStart - cr)
        if i - cr - skippedLeading > maxHead { throw HTTPError(isRequest ? 431 : 502, "too large head") }
        return nil
    }

    private func checkLine(_ len: Int) throws(HTTPError) {
        if lineNumber == 0 {
            if len > maxFirstLine { throw HTTPError(414, "too long request line") }
        } else if len > maxHeaderLine {
            throw HTTPError(431, "too long header line")
        }
    }
}

/// Parses complete heads. Every ambiguity that could let two parsers disagree about where a
/// message ends is refused (request smuggling): CL with TE, differing CL, bad chunk framing,
/// obs-fold, whitespace before the colon, bare CR, control characters.
public enum HeadParser {
    /// Parses `b[start..<end]` (end includes the blank line) as a request head.
    public static func request(_ b: UnsafeRawBufferPointer, start: Int, end: Int, names: HeaderNameRules = HeaderNameRules()) throws(HTTPError) -> RequestHead {
        var h = RequestHead()
        try request(b, start: start, end: end, into: &h, names: names)
        return h
    }

    /// Parses into `h`, reusing its header storage (no allocation once warmed up).
    public static func request(_ b: UnsafeRawBufferPointer, start: Int, end: Int, into h: inout RequestHead,
                               names: HeaderNameRules = HeaderNameRules()) throws(HTTPError) {
        var headers: [HeaderField] = []
        swap(&headers, &h.headers)
        headers.removeAll(keepingCapacity: true)
        h = RequestHead()
        swap(&h.headers, &headers)
        h.length = end - start
        var i = start
        // Method: nginx allows upper-case letters, `_` and `-` only (`get` is refused).
        let m0 = i
        while i < end && isMethodByte(b[i]) { i += 1 }
        guard i > m0, i < end, b[i] == 0x20 else { throw HTTPError(400, "invalid method") }
        h.methodRange = m0..<i
        h.method = method(b, m0..<i)
        while i < end && b[i] == 0x20 { i += 1 }
        // Target.
        let t0 = i
        while i < end && b[i] > 0x20 && b[i] != 0x7F { i += 1 }
        guard i > t0, i < end, b[i] == 0x20 || b[i] == 0x0D || b[i] == 0x0A else { throw HTTPError(400, "invalid request target") }
        h.targetRange = t0..<i
        while i < end && b[i] == 0x20 { i += 1 }
        if i < end && (b[i] == 0x0D || b[i] == 0x0A) {
            // HTTP/0.9: `GET /path` and the line ends; no headers, and only GET (nginx).
            guard h.method == .get else { throw HTTPError(400, "invalid method in HTTP/0.9 request") }
            h.versionMajor = 0
            h.versionMinor = 9
            h.keepAlive = false
            let lineEnd = i
            i = try endOfLine(b, i, end)
            h.length = i - start
            try splitTarget(b, &h)
            // nginx ends an absolute target's host or port only at a space, `/` or `?`:
            // `GET http://host` followed by the line end is refused.
            if h.absoluteHost?.upperBound == lineEnd { throw HTTPError(400, "invalid request") }
            return
        }
        let version = try requestVersion(b, i, end)
        h.versionMajor = 1
        h.versionMinor = version.minor
        i = version.next
        while i < end && b[i] == 0x20 { i += 1 }
        i = try endOfLine(b, i, end)
        try splitTarget(b, &h)
        h.keepAlive = h.versionMinor >= 1
        // Headers.
        var sawTE = false
        var upgradeHeader = false
        var connectionUpgrade = false
        if h.headers.capacity < 16 { h.headers.reserveCapacity(16) }
        while i < end {
            if b[i] == 0x0D || b[i] == 0x0A { break }
            var invalidName = false
            let f = try headerLine(b, &i, end, names: names, invalidName: &invalidName)
            // nginx drops a header whose name it finds invalid (ignore_invalid_headers on), or
            // keeps it as any other (off).
            if invalidName && names.ignoreInvalid { continue }
            h.headers.append(f)
            let name = f.name, value = f.value
            switch name.count {
            case 4 where ASCII.equalsLower(b, name, "host"):
                if h.host != nil { throw HTTPError(400, "duplicate Host header") }
                h.host = value
            case 14 where ASCII.equalsLower(b, name, "content-length"):
                guard let v = ASCII.decimal(b, value) else { throw HTTPError(400, "invalid Content-Length") }
                if let old = h.contentLength, old != v { throw HTTPError(400, "conflicting Content-Length") }
                h.contentLength = v
            case 17 where ASCII.equalsLower(b, name, "transfer-encoding"):
                if sawTE { throw HTTPError(400, "duplicate Transfer-Encoding") }
                sawTE = true
                guard ASCII.equalsLower(b, value, "chunked") else { throw HTTPError(501, "unsupported Transfer-Encoding") }
                h.chunked = true
            case 10 where ASCII.equalsLower(b, name, "connection"):
                if ASCII.containsToken(b, value, "close") { h.keepAlive = false }
                if ASCII.containsToken(b, value, "keep-alive") && h.versionMinor == 0 { h.keepAlive = true }
                if ASCII.containsToken(b, value, "upgrade") { connectionUpgrade = true }
            case 6 where ASCII.equalsLower(b, name, "expect"):
                if ASCII.equalsLower(b, value, "100-continue") { h.expectContinue = h.versionMinor >= 1 }
            case 7 where ASCII.equalsLower(b, name, "upgrade"):
                upgradeHeader = true
            case 17 where ASCII.equalsLower(b, name, "if-modified-since"):
                if h.ifModifiedSince == nil { h.ifModifiedSince = value }
            case 19 where ASCII.equalsLower(b, name, "if-unmodified-since"):
                if h.ifUnmodifiedSince == nil { h.ifUnmodifiedSince = value }
            case 13 where ASCII.equalsLower(b, name, "if-none-match"):
                if h.ifNoneMatch == nil { h.ifNoneMatch = value }
            case 8 where ASCII.equalsLower(b, name, "if-match"):
                if h.ifMatch == nil { h.ifMatch = value }
            case 5 where ASCII.equalsLower(b, name, "range"):
                if h.range == nil { h.range = value }
            case 8 where ASCII.equalsLower(b, name, "if-range"):
                if h.ifRange == nil { h.ifRange = value }
            default:
                break
            }
        }
        h.upgrade = upgradeHeader && connectionUpgrade
        if sawTE && h.contentLength != nil { throw HTTPError(400, "both Content-Length and Transfer-Encoding") }
        if sawTE && h.versionMinor == 0 { throw HTTPError(400, "Transfer-Encoding in HTTP/1.0") }
        // nginx wants Host in HTTP/1.1 even when the target is in absolute form.
        if h.host == nil && h.versionMinor >= 1 { throw HTTPError(400, "HTTP/1.1 request without \"Host\" header") }
        if let host = h.host, !validHost(b, host) { throw HTTPError(400, "invalid host") }
        // Checked last, as nginx does: a TRACE with a bad header is a 400, not a 405.
        if h.method == .trace { throw HTTPError(405, "TRACE method") }
        if h.method == .connect { throw HTTPError(405, "CONNECT method") }
    }

    /// Parses `b[start..<end]` as a response head.
    public static func response(_ b: UnsafeRawBufferPointer, start: Int, end: Int) throws(HTTPError) -> ResponseHead {
        var h = ResponseHead()
        try response(b, start: start, end: end, into: &h)
        return h
    }

    /// Parses into `h`, reusing its header storage.
    public static func response(_ b: UnsafeRawBufferPointer, start: Int, end: Int, into h: inout ResponseHead) throws(HTTPError) {
        var headers: [HeaderField] = []
        swap(&headers, &h.headers)
        headers.removeAll(keepingCapacity: true)
        h = ResponseHead()
        swap(&h.headers, &headers)
        if h.headers.capacity < 16 { h.headers.reserveCapacity(16) }
        h.length = end - start
        var i = start
        // nginx's grammar: `HTTP/` major `.` minor, spaces, exactly three digits, then a space,
        // `.` (IIS's `403.1`) or the end of the line. Anything else is not an HTTP/1 response.
        let invalid = HTTPError(502, "upstream sent no valid HTTP/1.0 header")
        guard end - i >= 5, b[i] == 0x48, b[i + 1] == 0x54, b[i + 2] == 0x54, b[i + 3] == 0x50, b[i + 4] == 0x2F else { throw invalid }
        i += 5
        guard i < end, b[i] != 0x30, let major = digits(b, i, end), major.next < end, b[major.next] == 0x2E,
              let minor = digits(b, major.next + 1, end), minor.next < end, b[minor.next] == 0x20 else { throw invalid }
        // Only "before 1.1" matters (the connection is then closed after the response).
        h.versionMinor = major.value * 1000 + minor.value >= 1001 ? 1 : 0
        i = minor.next
        while i < end && b[i] == 0x20 { i += 1 }
        guard end - i >= 3, let status = ASCII.decimal(b, i..<(i + 3)) else { throw invalid }
        i += 3
        guard i < end, b[i] == 0x20 || b[i] == 0x2E || b[i] == 0x0D || b[i] == 0x0A else { throw invalid }
        guard status >= 100 else { throw HTTPError(502, "invalid status") }
        h.status = status
        let r0 = b[i] == 0x20 ? i + 1 : i
        var r1 = r0
        while r1 < end && b[r1] != 0x0D && b[r1] != 0x0A { r1 += 1 }
        h.reasonRange = r0..<r1
        i = try endOfLine(b, r1, end, status: 502)
        h.close = h.versionMinor == 0
        var sawTE = false
        while i < end {
            if b[i] == 0x0D || b[i] == 0x0A { break }
            let f = try headerLine(b, &i, end, status: 502)
            h.headers.append(f)
            let name = f.name, value = f.value
            switch name.count {
            case 14 where ASCII.equalsLower(b, name, "content-length"):
                guard let v = ASCII.decimal(b, value) else { throw HTTPError(502, "invalid Content-Length") }
                if let old = h.contentLength, old != v { throw HTTPError(502, "conflicting Content-Length") }
                h.contentLength = v
            case 17 where ASCII.equalsLower(b, name, "transfer-encoding"):
                sawTE = true
                if ASCII.containsToken(b, value, "chunked") { h.chunked = true } else { throw HTTPError(502, "unsupported Transfer-Encoding") }
            case 10 where ASCII.equalsLower(b, name, "connection"):
                if ASCII.containsToken(b, value, "close") { h.close = true }
                if ASCII.containsToken(b, value, "keep-alive") && h.versionMinor == 0 { h.close = false }
            case 16 where h.xAccelRedirect == nil && ASCII.equalsLower(b, name, "x-accel-redirect"):
                h.xAccelRedirect = value
            default:
                break
            }
        }
        if sawTE { h.contentLength = nil } // RFC 9112 §6.3: TE overrides CL; the message is then framed by chunks
    }

    @inline(__always)
    static func method(_ b: UnsafeRawBufferPointer, _ r: Range<Int>) -> Method {
        switch r.count {
        case 3:
            if b[r.lowerBound] == 0x47 && b[r.lowerBound + 1] == 0x45 && b[r.lowerBound + 2] == 0x54 { return .get }
            if b[r.lowerBound] == 0x50 && b[r.lowerBound + 1] == 0x55 && b[r.lowerBound + 2] == 0x54 { return .put }
        case 4:
            if equals(b, r, "HEAD") { return .head }
            if equals(b, r, "POST") { return .post }
        case 5:
            if equals(b, r, "PATCH") { return .patch }
            if equals(b, r, "TRACE") { return .trace }
        case 6:
            if equals(b, r, "DELETE") { return .delete }
        case 7:
            if equals(b, r, "OPTIONS") { return .options }
            if equals(b, r, "CONNECT") { return .connect }
        default: break
        }
        return .other
    }

    @inline(__always)
    static func equals(_ b: UnsafeRawBufferPointer, _ r: Range<Int>, _ lit: StaticString) -> Bool {
        guard r.count == lit.utf8CodeUnitCount else { return false }
        for k in 0..<r.count where b[r.lowerBound + k] != lit.utf8Start[k] { return false }
        return true
    }

    /// The bytes nginx allows in a method: `A`–`Z`, `_`, `-`.
    @inline(__always)
    static func isMethodByte(_ c: UInt8) -> Bool { (c >= 0x41 && c <= 0x5A) || c == 0x5F || c == 0x2D }

    /// One to three decimal digits at `i` (nginx's limit for version numbers), nil when none.
    @inline(__always)
    static func digits(_ b: UnsafeRawBufferPointer, _ i: Int, _ end: Int) -> (value: Int, next: Int)? {
        var k = i, v = 0
        while k < end && k - i < 3 && ASCII.isDigit(b[k]) {
            v = v * 10 + Int(b[k] - 0x30)
            k += 1
        }
        if k < end && ASCII.isDigit(b[k]) { return nil }
        return k > i ? (v, k) : nil
    }

    /// Where the third part of a request line (without its line ending) starts: the protocol
    /// version after the method and the target. nil when there is none: HTTP/0.9 (or invalid),
    /// which nginx answers at once instead of waiting for headers.
    static func versionStart(_ b: UnsafeRawBufferPointer, _ start: Int, _ end: Int) -> Int? {
        let base = b.baseAddress!
        guard let sp1 = memchr(base + start, 0x20, end - start) else { return nil }
        var i = base.distance(to: UnsafeRawPointer(sp1))
        while i < end && b[i] == 0x20 { i += 1 }
        guard i < end, let sp2 = memchr(base + i, 0x20, end - i) else { return nil }
        i = base.distance(to: UnsafeRawPointer(sp2))
        while i < end && b[i] == 0x20 { i += 1 }
        return i < end ? i : nil
    }

    /// `HTTP/1.x` at `i` as nginx reads it: a major version other than 1 is 505, the minor
    /// version has one to three digits. Returns the minor version and the index after it.
    static func requestVersion(_ b: UnsafeRawBufferPointer, _ i: Int, _ end: Int) throws(HTTPError) -> (minor: Int, next: Int) {
        guard end - i >= 5, b[i] == 0x48, b[i + 1] == 0x54, b[i + 2] == 0x54, b[i + 3] == 0x50, b[i + 4] == 0x2F else {
            throw HTTPError(400, "invalid protocol")
        }
        let d = i + 5
        guard d < end, b[d] >= 0x31, b[d] <= 0x39 else { throw HTTPError(400, "invalid version") }
        if b[d] != 0x31 || (d + 1 < end && ASCII.isDigit(b[d + 1])) { throw HTTPError(505, "unsupported version") }
        guard d + 1 < end, b[d + 1] == 0x2E, let minor = digits(b, d + 2, end) else { throw HTTPError(400, "invalid version") }
        return (minor.value, minor.next)
    }

    /// Accepts `\r\n` or `\n` at `i`; a bare CR or anything else is an error.
    @inline(__always)
    static func endOfLine(_ b: UnsafeRawBufferPointer, _ i: Int, _ end: Int, status: Int = 400) throws(HTTPError) -> Int {
        if i < end && b[i] == 0x0A { return i + 1 }
        if i + 1 < end && b[i] == 0x0D && b[i + 1] == 0x0A { return i + 2 }
        throw HTTPError(status, "invalid line ending")
    }

    static func headerLine(_ b: UnsafeRawBufferPointer, _ i: inout Int, _ end: Int, status: Int = 400) throws(HTTPError) -> HeaderField {
        var unused = false
        return try headerLine(b, &i, end, status: status, names: nil, invalidName: &unused)
    }

    /// One header line. Without `names` (responses) the name must be a token. With them (requests),
    /// as nginx's parser: letters, digits and `-` are valid, `_` when `underscores` allows it;
    /// a control byte, space or `:` first is a 400; anything else marks the name invalid.
    static func headerLine(_ b: UnsafeRawBufferPointer, _ i: inout Int, _ end: Int, status: Int = 400,
                           names: HeaderNameRules?, invalidName: inout Bool) throws(HTTPError) -> HeaderField {
        if b[i] == 0x20 || b[i] == 0x09 { throw HTTPError(status, "obsolete line folding") }
        let n0 = i
        // Eight octets at a time while all are letters, digits or `-` (valid whatever the rules).
        if let base = b.baseAddress, end <= b.count {
            while i + 8 <= end && ASCII.allNameOctets(base.loadUnaligned(fromByteOffset: i, as: UInt64.self)) { i += 8 }
        }
        if let names {
            while i < end && b[i] != UInt8(ascii: ":") {
                let c = b[i]
                if c <= 0x20 || c == 0x7F { throw HTTPError(status, "invalid header name") }
                if !(ASCII.isLetter(c) || ASCII.isDigit(c) || c == UInt8(ascii: "-") || (c == UInt8(ascii: "_") && names.underscores)) {
                    invalidName = true
                }
                i += 1
            }
        } else {
            while i < end && ASCII.isToken(b[i]) { i += 1 }
        }
        guard i > n0, i < end, b[i] == UInt8(ascii: ":") else { throw HTTPError(status, "invalid header name") }
        let n1 = i
        i += 1
        while i < end && (b[i] == 0x20 || b[i] == 0x09) { i += 1 }
        let v0 = i
        // Eight octets at a time while none is a control octet (the line's end is one).
        if let base = b.baseAddress, end <= b.count {
            while i + 8 <= end && !ASCII.hasControl(base.loadUnaligned(fromByteOffset: i, as: UInt64.self)) { i += 8 }
        }
        while i < end {
            let c = b[i]
            if c == 0x0D || c == 0x0A { break }
            if (c < 0x20 && c != 0x09) || c == 0x7F { throw HTTPError(status, "invalid header value") }
            i += 1
        }
        var v1 = i
        while v1 > v0 && (b[v1 - 1] == 0x20 || b[v1 - 1] == 0x09) { v1 -= 1 }
        i = try endOfLine(b, i, end, status: status)
        return HeaderField(nameStart: Int32(n0), nameEnd: Int32(n1), valueStart: Int32(v0), valueEnd: Int32(v1))
    }

    /// Splits the target into path and query. Origin form (`/p?q`) or absolute form as nginx
    /// reads it: a scheme (`http`, `https`, any letters, digits, `+`, `-`, `.` after a letter),
    /// `://`, a host of letters, digits, `.` and `-` or an IP literal in brackets, an optional
    /// `:port`, then `/`, `?` or the end. Userinfo (`user@host`) and anything else is refused.
    static func splitTarget(_ b: UnsafeRawBufferPointer, _ h: inout RequestHead) throws(HTTPError) {
        var t = h.targetRange
        if b[t.lowerBound] != UInt8(ascii: "/") {
            let bad = HTTPError(400, "invalid request")
            var p = t.lowerBound
            guard ASCII.isLetter(b[p]) else { throw bad }
            while p < t.upperBound && (ASCII.isLetter(b[p]) || ASCII.isDigit(b[p]) || b[p] == 0x2B || b[p] == 0x2D || b[p] == 0x2E) { p += 1 }
            guard t.upperBound - p >= 3, b[p] == UInt8(ascii: ":"), b[p + 1] == UInt8(ascii: "/"), b[p + 2] == UInt8(ascii: "/") else { throw bad }
            p += 3
            let hs = p
            if p < t.upperBound && b[p] == UInt8(ascii: "[") {
                p += 1
                while p < t.upperBound && isIPLiteralByte(b[p]) { p += 1 }
                guard p < t.upperBound, b[p] == UInt8(ascii: "]") else { throw bad }
                p += 1
            } else {
                while p < t.upperBound && (ASCII.isLetter(b[p]) || ASCII.isDigit(b[p]) || b[p] == 0x2E || b[p] == 0x2D) { p += 1 }
            }
            guard p > hs else { throw HTTPError(400, "invalid host in request line") }
            if p < t.upperBound && b[p] == UInt8(ascii: ":") {
                p += 1
                while p < t.upperBound && ASCII.isDigit(b[p]) { p += 1 }
            }
            guard p == t.upperBound || b[p] == UInt8(ascii: "/") || b[p] == UInt8(ascii: "?") else { throw bad }
            h.absoluteHost = hs..<p
            if p == t.upperBound || b[p] == UInt8(ascii: "?") {
                // No path: treat as "/".
                h.pathRange = p..<p
                if p < t.upperBound { h.queryRange = (p + 1)..<t.upperBound }
                return
            }
            t = p..<t.upperBound
        }
        var q = t.lowerBound
        while q < t.upperBound && b[q] != UInt8(ascii: "?") { q += 1 }
        h.pathRange = t.lowerBound..<q
        if q < t.upperBound { h.queryRange = (q + 1)..<t.upperBound }
    }

    /// Bytes of an IP literal (`[::1]`): digits, letters, `:` and RFC 3986's unreserved and
    /// sub-delims characters, as nginx.
    @inline(__always)
    static func isIPLiteralByte(_ c: UInt8) -> Bool {
        if ASCII.isLetter(c) || ASCII.isDigit(c) { return true }
        switch c {
        case UInt8(ascii: ":"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"),
             UInt8(ascii: "!"), UInt8(ascii: "$"), UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "("), UInt8(ascii: ")"),
             UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: ","), UInt8(ascii: ";"), UInt8(ascii: "="): return true
        default: return false
        }
    }

    static func validHost(_ b: UnsafeRawBufferPointer, _ r: Range<Int>) -> Bool {
        var start = r.lowerBound
        if let base = b.baseAddress, r.lowerBound >= 0, r.upperBound <= b.count {
            while start + 8 <= r.upperBound {
                if ASCII.hasNonHostOctet(base.loadUnaligned(fromByteOffset: start, as: UInt64.self)) { return false }
                start += 8
            }
        }
        for i in start..<r.upperBound {
            let c = b[i]
            if c == UInt8(ascii: "/") || c == UInt8(ascii: "\\") || c < 0x21 || c == 0x7F { return false }
        }
        return true
    }
}
