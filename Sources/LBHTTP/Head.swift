/// A header line as offsets into the head bytes.
public struct HeaderField: Sendable, Equatable {
    public var nameStart: Int32
    public var nameEnd: Int32
    public var valueStart: Int32
    public var valueEnd: Int32

    @inline(__always) public var name: Range<Int> { Int(nameStart)..<Int(nameEnd) }
    @inline(__always) public var value: Range<Int> { Int(valueStart)..<Int(valueEnd) }
}

/// Why a message was refused, with the status nginx answers.
public struct HTTPError: Error, Equatable, Sendable, CustomStringConvertible {
    public var status: Int
    public var reason: String
    public init(_ status: Int, _ reason: String) {
        self.status = status
        self.reason = reason
    }
    public var description: String { "\(status): \(reason)" }
}

/// Well-known request methods (others are kept as text).
public enum Method: UInt8, Sendable {
    case get, head, post, put, delete, options, patch, trace, connect, other

    /// Methods that are safe to retry on another upstream after the request was sent (nginx).
    public var isIdempotent: Bool {
        switch self {
        case .get, .head, .put, .delete, .options, .trace: true
        default: false
        }
    }
}

/// A parsed request head. Ranges index the head bytes the parser was given.
public struct RequestHead: Sendable {
    public var method: Method = .other
    public var methodRange: Range<Int> = 0..<0
    /// The request target as sent (`/a%20b?x=1`).
    public var targetRange: Range<Int> = 0..<0
    /// Path part of the target (no query), still percent-encoded.
    public var pathRange: Range<Int> = 0..<0
    /// Query without `?`, or nil.
    public var queryRange: Range<Int>? = nil
    /// Host from an absolute-form target (`GET http://host/path`), which overrides the Host header.
    public var absoluteHost: Range<Int>? = nil
    /// HTTP/1.x, or 0.9 (major 0, minor 9) for a request line without a version, as nginx.
    public var versionMinor: Int = 1
    public var versionMajor: Int = 1
    public var headers: [HeaderField] = []
    public var host: Range<Int>? = nil
    public var contentLength: Int? = nil
    public var chunked = false
    /// Whether the connection may stay open after this request (version and Connection header).
    public var keepAlive = true
    public var expectContinue = false
    /// `Connection: upgrade` with an `Upgrade` header.
    public var upgrade = false
    /// Bytes of the head including the blank line.
    public var length = 0
    // Known headers found while parsing (the first of each): the filters and handlers read them
    // without searching the header list or comparing names again.
    public var ifModifiedSince: Range<Int>? = nil
    public var ifUnmodifiedSince: Range<Int>? = nil
    public var ifNoneMatch: Range<Int>? = nil
    public var ifMatch: Range<Int>? = nil
    public var range: Range<Int>? = nil
    public var ifRange: Range<Int>? = nil

    public init() {}

    public var hasBody: Bool { chunked || (contentLength ?? 0) > 0 }

    /// An HTTP/0.9 request (`GET /path` alone): no headers, and nginx answers with the body only.
    public var isHTTP09: Bool { versionMajor == 0 }
}

/// A parsed upstream response head.
public struct ResponseHead: Sendable {
    public var status = 0
    /// 1 for HTTP/1.1 and later versions, 0 for HTTP/1.0 (all that framing depends on).
    public var versionMinor = 1
    public var reasonRange: Range<Int> = 0..<0
    public var headers: [HeaderField] = []
    public var contentLength: Int? = nil
    public var chunked = false
    /// `Connection: close`, or HTTP/1.0 without keep-alive.
    public var close = false
    public var length = 0
    /// The value of the (first) `X-Accel-Redirect` field, found while parsing so that a proxied
    /// response without one costs nothing to check.
    public var xAccelRedirect: Range<Int>? = nil

    public init() {}
}

/// ASCII helpers on raw bytes.
public enum ASCII {
    @inline(__always) public static func lower(_ c: UInt8) -> UInt8 { c >= 0x41 && c <= 0x5A ? c | 0x20 : c }

    /// Case-insensitive comparison of a range of `bytes` with a lowercase literal.
    @inline(__always)
    public static func equalsLower(_ bytes: UnsafeRawBufferPointer, _ r: Range<Int>, _ lit: StaticString) -> Bool {
        let n = lit.utf8CodeUnitCount
        guard r.count == n else { return false }
        guard n > 0 else { return true }
        precondition(r.lowerBound >= 0 && r.upperBound <= bytes.count, "range outside the buffer")
        // Eight (or four) octets at a time, lowered together; the last word overlaps the one
        // before it rather than falling back to single octets.
        let a = UnsafeRawPointer(bytes.baseAddress!) + r.lowerBound
        let p = UnsafeRawPointer(lit.utf8Start)
        if n >= 8 {
            var i = 0
            while i + 8 < n {
                if lowered(a.loadUnaligned(fromByteOffset: i, as: UInt64.self)) != p.loadUnaligned(fromByteOffset: i, as: UInt64.self) { return false }
                i += 8
            }
            return lowered(a.loadUnaligned(fromByteOffset: n - 8, as: UInt64.self)) == p.loadUnaligned(fromByteOffset: n - 8, as: UInt64.self)
        }
        if n >= 4 {
            return lowered(UInt64(a.loadUnaligned(as: UInt32.self))) == UInt64(p.loadUnaligned(as: UInt32.self))
                && lowered(UInt64(a.loadUnaligned(fromByteOffset: n - 4, as: UInt32.self))) == UInt64(p.loadUnaligned(fromByteOffset: n - 4, as: UInt32.self))
        }
        for i in 0..<n where lower(a.load(fromByteOffset: i, as: UInt8.self)) != p.load(fromByteOffset: i, as: UInt8.self) { return false }
        return true
    }

    /// `lower` applied to each of the eight octets of `w` (A–Z get 0x20; nothing else changes,
    /// octets from 0x80 on included): within each octet, the low seven bits plus 0x3F carry into
    /// the high bit from `A` on, plus 0x25 from `[` on; no sum crosses into the next octet.
    @inline(__always) public static func lowered(_ w: UInt64) -> UInt64 {
        let low7 = w & 0x7F7F_7F7F_7F7F_7F7F
        let fromA = low7 &+ 0x3F3F_3F3F_3F3F_3F3F
        let pastZ = low7 &+ 0x2525_2525_2525_2525
        let upper = fromA & ~pastZ & ~w & 0x8080_8080_8080_8080
        return w | (upper >> 2)
    }

    /// Whether each of the eight octets of `w` is a letter, a digit or `-` (the octets of
    /// nearly every header name, valid under any name rule): per octet, range checks on the low
    /// seven bits whose sums stay within the octet, and nothing from 0x80 on.
    @inline(__always) public static func allNameOctets(_ w: UInt64) -> Bool {
        let x = w & 0x7F7F_7F7F_7F7F_7F7F
        let letter = octetsWithin(x | 0x2020_2020_2020_2020, 0x61, 0x7A)
        let named = letter | octetsWithin(x, 0x30, 0x39) | octetsWithin(x, 0x2D, 0x2D)
        return named & ~w & 0x8080_8080_8080_8080 == 0x8080_8080_8080_8080
    }

    /// Whether any of the eight octets of `w` may not stand in a Host (nginx: `/`, `\\`,
    /// controls and space, DEL; octets from 0x80 on may).
    @inline(__always) public static func hasNonHostOctet(_ w: UInt64) -> Bool {
        let x = w & 0x7F7F_7F7F_7F7F_7F7F
        let bad = octetsWithin(x, 0x00, 0x20) | octetsWithin(x, 0x2F, 0x2F) | octetsWithin(x, 0x5C, 0x5C) | octetsWithin(x, 0x7F, 0x7F)
        return bad & ~w & 0x8080_8080_8080_8080 != 0
    }

    /// The high bit of each octet of `x` (seven-bit octets) set when it lies in `lo...hi`: the
    /// sums stay within each octet, so no octet's answer depends on another's.
    @inline(__always) static func octetsWithin(_ x: UInt64, _ lo: UInt64, _ hi: UInt64) -> UInt64 {
        let ones: UInt64 = 0x0101_0101_0101_0101
        return (x &+ (0x80 - lo) &* ones) & ~(x &+ (0x7F - hi) &* ones)
    }

    /// Whether any of the eight octets of `w` is a control octet of a header value's kind —
    /// below 0x20 (TAB, CR and LF too) or 0x7F: then the caller looks at them one by one.
    @inline(__always) public static func hasControl(_ w: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101, high: UInt64 = 0x8080_8080_8080_8080
        let below20 = (w &- 0x20 &* ones) & ~w & high
        let del = w ^ (0x7F &* ones)
        let is7F = (del &- ones) & ~del & high
        return below20 | is7F != 0
    }

    /// Whether a comma-separated header value contains `token` (case-insensitive).
    public static func containsToken(_ bytes: UnsafeRawBufferPointer, _ r: Range<Int>, _ lit: StaticString) -> Bool {
        var start = r.lowerBound
        while start < r.upperBound {
            var end = start
            while end < r.upperBound && bytes[end] != UInt8(ascii: ",") { end += 1 }
            var a = start, b = end
            while a < b && (bytes[a] == 0x20 || bytes[a] == 0x09) { a += 1 }
            while b > a && (bytes[b - 1] == 0x20 || bytes[b - 1] == 0x09) { b -= 1 }
            if equalsLower(bytes, a..<b, lit) { return true }
            start = end + 1
        }
        return false
    }

    /// tchar of RFC 9110, as two 64-bit masks (bytes 0–63, 64–127): no table to load or
    /// initialize lazily on the parsers' inner loops.
    @inline(__always) public static func isToken(_ c: UInt8) -> Bool {
        if c < 64 { return (0x03ff6cfa00000000 as UInt64) >> UInt64(c) & 1 != 0 }
        if c < 128 { return (0x57ffffffc7fffffe as UInt64) >> UInt64(c - 64) & 1 != 0 }
        return false
    }

    @inline(__always) public static func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }

    @inline(__always) public static func isLetter(_ c: UInt8) -> Bool { (c | 0x20) >= 0x61 && (c | 0x20) <= 0x7A }

    /// Parses a decimal in the range, nil on any non-digit or overflow.
    public static func decimal(_ bytes: UnsafeRawBufferPointer, _ r: Range<Int>) -> Int? {
        guard !r.isEmpty, r.count <= 18 else { return nil }
        var v = 0
        for i in r {
            let c = bytes[i]
            guard c >= 0x30 && c <= 0x39 else { return nil }
            v = v * 10 + Int(c - 0x30)
        }
        return v
    }
}
