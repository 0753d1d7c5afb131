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
        let p = lit.utf8Start
        var i = 0
        while i < n {
            if lower(bytes[r.lowerBound + i]) != p[i] { return false }
            i += 1
        }
        return true
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
