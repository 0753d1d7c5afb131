/// The decisions nginx's header filters make for every response, whatever produced it (a static
/// file, a cache hit, a proxied or local answer): the not-modified filter (conditional requests,
/// only on a 200) and the range filter (206, several ranges as multipart/byteranges, 416). Pure:
/// the caller hands in the response's validators and the request's headers; what to write is
/// decided here and table-tested without sockets.

/// nginx's `if_modified_since`: when a `If-Modified-Since` date answers 304.
public enum IfModifiedSinceMode: Sendable, Equatable {
    /// Never.
    case off
    /// Only when the date is exactly the response's Last-Modified (nginx's default).
    case exact
    /// When the date is the Last-Modified or later.
    case before
}

/// A request's conditional and range headers, raw.
public struct ConditionalHeaders: Sendable, Equatable {
    public var ifMatch: [UInt8]?
    public var ifNoneMatch: [UInt8]?
    public var ifModifiedSince: [UInt8]?
    public var ifUnmodifiedSince: [UInt8]?
    public var range: [UInt8]?
    public var ifRange: [UInt8]?

    public init(ifMatch: [UInt8]? = nil, ifNoneMatch: [UInt8]? = nil, ifModifiedSince: [UInt8]? = nil,
                ifUnmodifiedSince: [UInt8]? = nil, range: [UInt8]? = nil, ifRange: [UInt8]? = nil) {
        self.ifMatch = ifMatch
        self.ifNoneMatch = ifNoneMatch
        self.ifModifiedSince = ifModifiedSince
        self.ifUnmodifiedSince = ifUnmodifiedSince
        self.range = range
        self.ifRange = ifRange
    }
}

/// What the response is known by: its Last-Modified (seconds) and ETag (with quotes, maybe `W/`).
public struct Validators: Sendable, Equatable {
    public var lastModified: Int?
    public var etag: [UInt8]?
    public init(lastModified: Int?, etag: [UInt8]?) {
        self.lastModified = lastModified
        self.etag = etag
    }
}

/// nginx's not_modified filter.
public enum NotModifiedFilter {
    public enum Outcome: Sendable, Equatable {
        /// The response goes as it is.
        case pass
        /// 304, without body.
        case notModified
        /// 412.
        case preconditionFailed
    }

    /// Only a 200 is ever turned into 304 or 412 (an error page keeps its status).
    public static func evaluate(status: Int, validators v: Validators, request r: ConditionalHeaders,
                                mode: IfModifiedSinceMode = .exact) -> Outcome {
        guard status == 200 else { return .pass }
        if let ius = r.ifUnmodifiedSince {
            // Unknown Last-Modified or an unparsable date fail the precondition, as nginx.
            guard let lm = v.lastModified, let t = date(ius), t >= lm else { return .preconditionFailed }
        }
        if let im = r.ifMatch, !matches(im, etag: v.etag, weak: false) { return .preconditionFailed }
        guard r.ifModifiedSince != nil || r.ifNoneMatch != nil else { return .pass }
        if let ims = r.ifModifiedSince, modified(ims, lastModified: v.lastModified, mode: mode) { return .pass }
        if let inm = r.ifNoneMatch, !matches(inm, etag: v.etag, weak: true) { return .pass }
        return .notModified
    }

    /// nginx's `ngx_http_test_if_modified`: true when the response counts as modified.
    static func modified(_ value: [UInt8], lastModified: Int?, mode: IfModifiedSinceMode) -> Bool {
        guard let lm = lastModified, mode != .off else { return true }
        guard let ims = date(value) else { return true }
        if ims == lm { return false }
        return mode == .exact || ims < lm
    }

    /// nginx's `ngx_http_test_if_match`: `*`, or one of the listed tags equal to the response's
    /// (with `weak`, a listed `W/` prefix is ignored).
    public static func matches(_ header: [UInt8], etag: [UInt8]?, weak: Bool) -> Bool {
        guard let etag else { return false }
        if header == [UInt8(ascii: "*")] { return true }
        var i = 0
        let end = header.count
        while i < end {
            if weak && end - i > 2 && header[i] == UInt8(ascii: "W") && header[i + 1] == UInt8(ascii: "/") { i += 2 }
            if etag.count > end - i { return false }
            if header[i..<(i + etag.count)].elementsEqual(etag) {
                var k = i + etag.count
                while k < end && (header[k] == 0x20 || header[k] == 0x09) { k += 1 }
                if k == end || header[k] == UInt8(ascii: ",") { return true }
            }
            while i < end && header[i] != UInt8(ascii: ",") { i += 1 }
            while i < end && (header[i] == 0x20 || header[i] == 0x09 || header[i] == UInt8(ascii: ",")) { i += 1 }
        }
        return false
    }

    static func date(_ v: [UInt8]) -> Int? { DateCache.parse(String(decoding: v, as: UTF8.self)) }
}

/// nginx's range filter.
public enum RangeFilter {
    public enum Outcome: Sendable, Equatable {
        /// The whole body, as a 200.
        case whole
        /// 206 with one Content-Range (half-open byte range).
        case single(Range<Int>)
        /// 206 multipart/byteranges.
        case multipart([Range<Int>])
        /// 416 with `Content-Range: bytes */LENGTH`.
        case unsatisfiable
    }

    /// - Parameters:
    ///   - allowed: the producer allows ranges (static files and cache hits; proxied responses
    ///     only with `proxy_force_ranges`).
    ///   - singleOnly: several ranges get the whole body (nginx's `single_range`).
    ///   - maxRanges: `max_ranges` (nil: no limit; 0 disables ranges).
    public static func evaluate(status: Int, http10OrLater: Bool = true, contentLength: Int?, validators v: Validators,
                                request r: ConditionalHeaders, allowed: Bool = true, singleOnly: Bool = false,
                                maxRanges: Int? = nil) -> Outcome {
        guard allowed, http10OrLater, status == 200, let length = contentLength, let range = r.range else { return .whole }
        guard range.count >= 7, range[0..<6].map(ASCII.lower).elementsEqual("bytes=".utf8) else { return .whole }
        if let ir = r.ifRange {
            if ir.count >= 2 && ir.last == UInt8(ascii: "\"") {
                guard let etag = v.etag, etag == ir else { return .whole }
            } else {
                guard let lm = v.lastModified, NotModifiedFilter.date(ir) == lm else { return .whole }
            }
        }
        let outcome = parse(range[6...], length: length, maxRanges: maxRanges ?? Int(Int32.max))
        if case .multipart(let ranges) = outcome, singleOnly || ranges.count == 1 {
            return singleOnly && ranges.count > 1 ? .whole : .single(ranges[0])
        }
        return outcome
    }

    /// nginx's `ngx_http_range_parse` over what follows `bytes=`.
    static func parse(_ spec: ArraySlice<UInt8>, length: Int, maxRanges: Int) -> Outcome {
        var p = spec.startIndex
        let end = spec.endIndex
        func at(_ i: Int) -> UInt8 { i < end ? spec[i] : 0 }
        func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }
        var ranges: [Range<Int>] = []
        var size = 0
        var left = maxRanges
        let cutoff = Int.max / 10, cutlim = Int.max % 10
        while true {
            var start = 0, last = 0
            var suffix = false
            var open = false
            while at(p) == 0x20 { p += 1 }
            if at(p) != UInt8(ascii: "-") {
                guard isDigit(at(p)) else { return .unsatisfiable }
                while isDigit(at(p)) {
                    let d = Int(at(p) - 0x30)
                    if start >= cutoff && (start > cutoff || d > cutlim) { return .unsatisfiable }
                    start = start * 10 + d
                    p += 1
                }
                while at(p) == 0x20 { p += 1 }
                guard at(p) == UInt8(ascii: "-") else { return .unsatisfiable }
                p += 1
                while at(p) == 0x20 { p += 1 }
                if at(p) == UInt8(ascii: ",") || p >= end { open = true }
            } else {
                suffix = true
                p += 1
            }
            var stop = length
            if !open {
                guard isDigit(at(p)) else { return .unsatisfiable }
                while isDigit(at(p)) {
                    let d = Int(at(p) - 0x30)
                    if last >= cutoff && (last > cutoff || d > cutlim) { return .unsatisfiable }
                    last = last * 10 + d
                    p += 1
                }
                while at(p) == 0x20 { p += 1 }
                guard at(p) == UInt8(ascii: ",") || p >= end else { return .unsatisfiable }
                if suffix {
                    start = last < length ? length - last : 0
                    last = length - 1
                }
                stop = last >= length ? length : last + 1
            }
            if start < stop {
                ranges.append(start..<stop)
                if size > Int.max - (stop - start) { return .unsatisfiable }
                size += stop - start
                if left == 0 { return .whole }
                left -= 1
            } else if start == 0 {
                return .whole
            }
            guard at(p) == UInt8(ascii: ",") else { break }
            p += 1
        }
        if ranges.isEmpty { return .unsatisfiable }
        if size > length { return .whole }
        return .multipart(ranges)
    }

    /// The framing of a multipart/byteranges body: the part heads, the closing boundary, and
    /// the total length (for Content-Length), as nginx writes them.
    public struct Multipart: Sendable {
        public let boundary: String
        public let contentType: String?
        public let total: Int

        public init(boundary: UInt64, contentType: String?, total: Int) {
            let digits = String(boundary)
            self.boundary = String(repeating: "0", count: max(0, 20 - digits.count)) + digits
            self.contentType = contentType
            self.total = total
        }

        /// `multipart/byteranges; boundary=…`
        public var headerValue: String { "multipart/byteranges; boundary=" + boundary }

        /// What goes before a part's bytes.
        public func partHead(_ r: Range<Int>) -> [UInt8] {
            var s = "\r\n--" + boundary + "\r\n"
            if let t = contentType { s += "Content-Type: " + t + "\r\n" }
            s += "Content-Range: bytes \(r.lowerBound)-\(r.upperBound - 1)/\(total)\r\n\r\n"
            return Array(s.utf8)
        }

        /// What closes the body.
        public var trailer: [UInt8] { Array(("\r\n--" + boundary + "--\r\n").utf8) }

        /// The body's length for these ranges.
        public func contentLength(_ ranges: [Range<Int>]) -> Int {
            ranges.reduce(trailer.count) { $0 + partHead($1).count + $1.count }
        }
    }
}
