import Glibc

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
    }

    /// Leading empty lines skipped before the first line (RFC 9112 §2.2).
    public var leadingBytes: Int { skippedLeading }

    /// Returns the head length (through the blank line) when complete, nil when more is needed.
    public mutating func scan(_ b: UnsafeRawBufferPointer, isRequest: Bool) throws(HTTPError) -> Int? {
        var i = scanned
        let n = b.count
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
                if lineNumber == 0 {
                    // Empty lines before the request line are ignored.
                    lineStart = i + 1
                    skippedLeading = lineStart
                    i += 1
                    continue
                }
                scanned = i + 1
                return i + 1
            }
            try checkLine(lineLen)
            lineNumber += 1
            lineStart = i + 1
            i += 1
        }
        scanned = i
        let pending = i - lineStart
        try checkLine(pending)
        if i - skippedLeading > maxHead { throw HTTPError(isRequest ? 431 : 502, "too large head") }
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
    public static func request(_ b: UnsafeRawBufferPointer, start: Int, end: Int) throws(HTTPError) -> RequestHead {
        var h = RequestHead()
        try request(b, start: start, end: end, into: &h)
        return h
    }

    /// Parses into `h`, reusing its header storage (no allocation once warmed up).
    public static func request(_ b: UnsafeRawBufferPointer, start: Int, end: Int, into h: inout RequestHead) throws(HTTPError) {
        var headers: [HeaderField] = []
        swap(&headers, &h.headers)
        headers.removeAll(keepingCapacity: true)
        h = RequestHead()
        swap(&h.headers, &headers)
        h.length = end - start
        var i = start
        // Method.
        let m0 = i
        while i < end && ASCII.isToken(b[i]) { i += 1 }
        guard i > m0, i < end, b[i] == 0x20 else { throw HTTPError(400, "invalid method") }
        h.methodRange = m0..<i
        h.method = method(b, m0..<i)
        while i < end && b[i] == 0x20 { i += 1 }
        // Target.
        let t0 = i
        while i < end && b[i] > 0x20 && b[i] != 0x7F { i += 1 }
        guard i > t0, i < end, b[i] == 0x20 else { throw HTTPError(400, "invalid request target") }
        h.targetRange = t0..<i
        while i < end && b[i] == 0x20 { i += 1 }
        // Version.
        guard end - i >= 8, b[i] == 0x48, b[i + 1] == 0x54, b[i + 2] == 0x54, b[i + 3] == 0x50, b[i + 4] == 0x2F else {
            throw HTTPError(400, "invalid protocol")
        }
        let major = b[i + 5], dot = b[i + 6], minor = b[i + 7]
        guard major >= 0x30 && major <= 0x39, dot == 0x2E, minor >= 0x30 && minor <= 0x39 else { throw HTTPError(400, "invalid version") }
        h.versionMajor = Int(major - 0x30)
        h.versionMinor = Int(minor - 0x30)
        if h.versionMajor != 1 { throw HTTPError(h.versionMajor > 1 ? 505 : 400, "unsupported version") }
        i += 8
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
            let f = try headerLine(b, &i, end)
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
            default:
                break
            }
        }
        h.upgrade = upgradeHeader && connectionUpgrade
        if sawTE && h.contentLength != nil { throw HTTPError(400, "both Content-Length and Transfer-Encoding") }
        if sawTE && h.versionMinor == 0 { throw HTTPError(400, "Transfer-Encoding in HTTP/1.0") }
        if h.host == nil && h.versionMinor >= 1 && h.absoluteHost == nil { throw HTTPError(400, "HTTP/1.1 request without Host header") }
        if let host = h.host, !validHost(b, host) { throw HTTPError(400, "invalid host") }
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
        guard end - i >= 12, b[i] == 0x48, b[i + 1] == 0x54, b[i + 2] == 0x54, b[i + 3] == 0x50, b[i + 4] == 0x2F,
              b[i + 5] == 0x31, b[i + 6] == 0x2E, b[i + 8] == 0x20 else { throw HTTPError(502, "invalid status line") }
        h.versionMinor = b[i + 7] == 0x30 ? 0 : 1
        i += 9
        guard let status = ASCII.decimal(b, i..<(i + 3)), status >= 100, status <= 999 else { throw HTTPError(502, "invalid status") }
        h.status = status
        i += 3
        let r0 = i < end && b[i] == 0x20 ? i + 1 : i
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

    /// Accepts `\r\n` or `\n` at `i`; a bare CR or anything else is an error.
    @inline(__always)
    static func endOfLine(_ b: UnsafeRawBufferPointer, _ i: Int, _ end: Int, status: Int = 400) throws(HTTPError) -> Int {
        if i < end && b[i] == 0x0A { return i + 1 }
        if i + 1 < end && b[i] == 0x0D && b[i + 1] == 0x0A { return i + 2 }
        throw HTTPError(status, "invalid line ending")
    }

    static func headerLine(_ b: UnsafeRawBufferPointer, _ i: inout Int, _ end: Int, status: Int = 400) throws(HTTPError) -> HeaderField {
        if b[i] == 0x20 || b[i] == 0x09 { throw HTTPError(status, "obsolete line folding") }
        let n0 = i
        while i < end && ASCII.isToken(b[i]) { i += 1 }
        guard i > n0, i < end, b[i] == UInt8(ascii: ":") else { throw HTTPError(status, "invalid header name") }
        let n1 = i
        i += 1
        while i < end && (b[i] == 0x20 || b[i] == 0x09) { i += 1 }
        let v0 = i
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

    static func splitTarget(_ b: UnsafeRawBufferPointer, _ h: inout RequestHead) throws(HTTPError) {
        var t = h.targetRange
        if b[t.lowerBound] != UInt8(ascii: "/") {
            if t.count == 1 && b[t.lowerBound] == UInt8(ascii: "*") {
                h.pathRange = t
                return
            }
            // absolute-form: http://host[:port]/path
            guard t.count > 7, ASCII.equalsLower(b, t.lowerBound..<(t.lowerBound + 7), "http://") else {
                throw HTTPError(400, "invalid request target")
            }
            var p = t.lowerBound + 7
            let hs = p
            while p < t.upperBound && b[p] != UInt8(ascii: "/") && b[p] != UInt8(ascii: "?") { p += 1 }
            guard p > hs else { throw HTTPError(400, "invalid host") }
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

    static func validHost(_ b: UnsafeRawBufferPointer, _ r: Range<Int>) -> Bool {
        for i in r {
            let c = b[i]
            if c == UInt8(ascii: "/") || c == UInt8(ascii: "\\") || c < 0x21 || c == 0x7F { return false }
        }
        return true
    }
}
