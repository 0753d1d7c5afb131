/// A request received on an HTTP/2 stream, in the form the HTTP/1 runtime already handles: an
/// HTTP/1.1-form head in `bytes` (`GET /path?q HTTP/1.1`, `host:` from `:authority`, the other
/// fields in order, cookies joined into one `cookie:` line with `"; "` as RFC 9113 §8.2.3 says,
/// and `transfer-encoding: chunked` when a body comes without `content-length`), and `head`,
/// the `RequestHead` `HeadParser.request` makes of those octets, built while they are laid out
/// (no parse). `head.versionMajor` is 2 and `head.versionMinor` 0.
///
/// A class: made once per stream, it goes from the connection's event to the stream and on to
/// the stream connection by reference, never copied. It is only ever touched by the thread
/// that runs its connection. Once the runtime is done with it (`H2Connection.recycle`), its
/// connection may lay a later request out in the same object (`reuse`: every field set anew;
/// only the octets' storage and the header list's capacity are kept).
public final class H2Request: @unchecked Sendable {
    /// The stream the request came on.
    public private(set) var streamID: UInt32
    /// The head, ranges into the octets, as `HeadParser.request` gives it for them with every
    /// header kept whatever its name (`ignore_invalid_headers off`); `applyNameRules` drops what
    /// a server's rules refuse. `head.length` octets from 0 are the head.
    public var head = RequestHead()
    /// `:scheme`'s value (`http` or `https`), as a range of `bytes` after the head.
    public internal(set) var scheme = 0..<0
    /// The request has no body (END_STREAM on its HEADERS).
    public private(set) var endStream: Bool
    /// Some header name has an octet other than `a`–`z`, `0`–`9` and `-`, which a server's
    /// header-name rules may refuse: only then has `applyNameRules` anything to do.
    var unusualNames = false
    /// The HTTP/1.1-form head, then `:scheme`: `count` octets laid out of `capacity`.
    private(set) var octets: UnsafeMutablePointer<UInt8>
    private(set) var capacity: Int
    var count = 0

    /// A request of at most `capacity` octets, to lay out.
    init(streamID: UInt32, endStream: Bool, capacity: Int) {
        self.streamID = streamID
        self.endStream = endStream
        octets = .allocate(capacity: capacity)
        self.capacity = capacity
    }

    /// This object, for a new request of at most `capacity` octets to lay out: every field as
    /// `init` sets it, but `head`, which `layout` replaces whole (it takes the header list's
    /// capacity, emptied). What is kept of the last request is storage, never content: the
    /// octets' allocation (when large enough) and the header list's capacity.
    func reuse(streamID: UInt32, endStream: Bool, capacity: Int) {
        self.streamID = streamID
        self.endStream = endStream
        if capacity > self.capacity {
            octets.deallocate()
            octets = .allocate(capacity: capacity)
            self.capacity = capacity
        }
        count = 0
        scheme = 0..<0
        unusualNames = false
    }

    deinit { octets.deallocate() }

    /// The request's body comes chunk-framed (`transfer-encoding: chunked` was added).
    public var chunked: Bool { head.chunked }

    /// The HTTP/1.1-form head (and `:scheme` after it), for as long as `body` runs.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: octets, count: count))
    }

    /// A copy of the octets (tests, logs).
    public var bytes: [UInt8] { withUnsafeBytes { Array($0) } }

    /// Moves the head out, leaving `head` in its place: no copy of the header list. The two
    /// are exchanged sixteen octets at a time (`H2Octets.exchange`), not by `swap`'s three
    /// whole copies through a temporary.
    public func moveHead(into head: inout RequestHead) {
        withUnsafeMutablePointer(to: &head) { a in
            withUnsafeMutablePointer(to: &self.head) { b in H2Octets.exchange(a, b) }
        }
    }

    /// Drops from `head.headers` the fields whose names `rules` refuse, as `HeadParser.request`
    /// does with them (`ignore_invalid_headers on`: a name of octets other than letters, digits,
    /// `-` and, with `underscores_in_headers on`, `_`). With nginx's default rules and ordinary
    /// names there is nothing to do.
    public func applyNameRules(_ rules: HeaderNameRules) {
        guard unusualNames && rules.ignoreInvalid else { return }
        let b = UnsafeRawBufferPointer(start: octets, count: count)
        head.headers.removeAll { f in
            for i in f.name {
                let c = b[i]
                if !(ASCII.isLetter(c) || ASCII.isDigit(c) || c == UInt8(ascii: "-") || (c == UInt8(ascii: "_") && rules.underscores)) { return true }
            }
            return false
        }
    }
}

/// Fields received after the body (RFC 9113 §8.1), already checked: no pseudo-headers, no
/// upper case, no connection-specific fields.
public struct H2Trailers: Sendable {
    /// The stream the request came on.
    public var streamID: UInt32
    /// The trailer fields.
    public var fields: HPACKHeaderList
}

/// The RFC 9113 §8 rules on request fields, and the conversion to an HTTP/1.1-form head.
///
/// The octets are judged eight at a time (`H2Octets`); only a name or value with an octet out
/// of the ordinary (a control octet, a name octet other than `a`–`z`, `0`–`9`, `-`) is looked at
/// one octet at a time. Each field's name is judged once, in `request`, for both the RFC 9113
/// rules and the header-name rules `layout` reports (`H2Request.unusualNames`).
enum H2RequestRules {
    /// Checks a decoded request header list and builds the request. Throws a stream error
    /// (PROTOCOL_ERROR) for what RFC 9113 calls malformed; returns `.failure` with the status
    /// nginx answers for what its HTTP/1 parser refuses (bad host, TRACE, CONNECT, …), so that
    /// the runtime answers it on the stream.
    /// `spare`: a request the runtime is done with, laid out anew (`H2Request.reuse`) instead of
    /// a new object.
    static func request(_ list: HPACKHeaderList, streamID: UInt32, endStream: Bool, reusing spare: H2Request? = nil) throws(H2Error) -> Result<H2Request, HTTPError> {
        try list.withBytes { (b) throws(H2Error) in
            try list.withFields { (fields) throws(H2Error) in
                try request(b, fields, streamID: streamID, endStream: endStream, reusing: spare)
            }
        }
    }

    /// `request` on the list's octets and field ranges.
    static func request(_ b: UnsafeRawBufferPointer, _ fields: UnsafeBufferPointer<HeaderField>, streamID: UInt32, endStream: Bool,
                        reusing spare: H2Request?) throws(H2Error) -> Result<H2Request, HTTPError> {
        @inline(__always) func malformed(_ reason: StaticString) -> H2Error { .stream(streamID, .protocolError, reason: reason) }
        var method: Range<Int>? = nil, scheme: Range<Int>? = nil, path: Range<Int>? = nil, authority: Range<Int>? = nil
        var pseudoCount = 0
        var cookieCount = 0
        var contentLength: Int? = nil
        // Some regular value has a control octet (other than HT) or DEL, which the HTTP/1 rules
        // refuse: only then does `layout` look at each value's octets again.
        var controlInValues = false
        // Some regular name has an octet other than `a`–`z`, `0`–`9`, `-`.
        var unusualNames = false
        var k = 0
        // Pseudo-headers, all before the first regular field (a later one is malformed below).
        while k < fields.count {
            let f = fields[k]
            let name = f.name, value = f.value
            guard !name.isEmpty && b[name.lowerBound] == UInt8(ascii: ":") else { break }
            // RFC 9113 §8.2.1, as nginx: no NUL, CR or LF in any value — a pseudo-header
            // must not smuggle lines into the request head.
            if H2Octets.anyWord(b, value, H2Octets.hasControl) {
                for i in value where b[i] == 0 || b[i] == 0x0A || b[i] == 0x0D {
                    throw malformed("NUL, CR or LF in a pseudo-header value")
                }
            }
            switch name.count {
            case 5 where equals(b, name, ":path"):
                if path != nil { throw malformed("duplicate :path") }
                path = value
            case 7 where equals(b, name, ":method"):
                if method != nil { throw malformed("duplicate :method") }
                method = value
            case 7 where equals(b, name, ":scheme"):
                if scheme != nil { throw malformed("duplicate :scheme") }
                scheme = value
            case 10 where equals(b, name, ":authority"):
                if authority != nil { throw malformed("duplicate :authority") }
                authority = value
            default:
                throw malformed("unknown or response pseudo-header")
            }
            k += 1
        }
        pseudoCount = k
        while k < fields.count {
            let f = fields[k]
            k += 1
            let name = f.name, value = f.value
            if !name.isEmpty && b[name.lowerBound] == UInt8(ascii: ":") { throw malformed("pseudo-header after a regular field") }
            let check = try checkRegular(b, f, streamID)
            if check.control { controlInValues = true }
            if check.unusualName { unusualNames = true }
            switch name.count {
            case 6 where equals(b, name, "cookie"): cookieCount += 1
            case 14 where equals(b, name, "content-length"):
                guard let v = ASCII.decimal(b, value) else { throw malformed("invalid content-length") }
                if let old = contentLength, old != v { throw malformed("conflicting content-length") }
                contentLength = v
            default: break
            }
        }
        guard let method else { throw malformed("no :method") }
        if equals(b, method, "CONNECT") {
            // nginx answers CONNECT with 405 (no tunnels); RFC 9113 §8.5's form is checked first.
            if scheme != nil || path != nil || authority == nil { throw malformed("CONNECT with :scheme or :path, or without :authority") }
            return .failure(HTTPError(405, "CONNECT method"))
        }
        guard let scheme, let path else { throw malformed("no :scheme or :path") }
        guard !path.isEmpty else { throw malformed("empty :path") }
        if let authority, H2Octets.anyWord(b, authority, H2Octets.hasAt) {
            throw malformed(":authority with userinfo") // RFC 9113 §8.3.1
        }
        if endStream, let cl = contentLength, cl != 0 { throw malformed("content-length without a body") }

        let chunked = !endStream && contentLength == nil
        return layout(b, fields, regularFrom: pseudoCount, streamID: streamID, endStream: endStream, method: method, path: path,
                      authority: authority, scheme: scheme, cookieCount: cookieCount, contentLength: contentLength, chunked: chunked,
                      controlInValues: controlInValues, unusualNames: unusualNames, reusing: spare)
    }

    /// How `HeadParser.request` reads a header name when every header is kept: the fields' names
    /// are judged later, by the server's rules (`H2Request.applyNameRules`).
    static let keepAllNames = HeaderNameRules(underscores: true, ignoreInvalid: false)

    /// Lays out the HTTP/1.1-form head and makes, at the same time, the `RequestHead`
    /// `HeadParser.request` would make of it: the same ranges, known headers and refusals (the
    /// first in the parser's order). Only a request line or `:authority` the parser would split
    /// differently from the fields (white space, control octets, a method of other octets than
    /// `A`–`Z`, `_`, `-`) is parsed instead, once, from the laid-out octets.
    /// The fields from `regularFrom` on are the regular ones, checked by `request` (names and
    /// values by RFC 9113 §8.2: no white space at a value's ends); `unusualNames`, whether some
    /// name has an octet other than `a`–`z`, `0`–`9`, `-`.
    static func layout(_ src: UnsafeRawBufferPointer, _ fields: UnsafeBufferPointer<HeaderField>, regularFrom: Int, streamID: UInt32,
                       endStream: Bool, method: Range<Int>, path: Range<Int>, authority: Range<Int>?, scheme: Range<Int>,
                       cookieCount: Int, contentLength: Int?, chunked: Bool, controlInValues: Bool, unusualNames: Bool,
                       reusing spare: H2Request?) -> Result<H2Request, HTTPError> {
        var odd = method.isEmpty || H2Octets.anyWord(src, method, H2Octets.hasNonMethodOctet)
            || H2Octets.anyWord(src, path, H2Octets.hasSpaceOrControl)
        if let authority, H2Octets.anyWord(src, authority, H2Octets.hasSpaceOrControl) { odd = true }

        // At most: every name and value once, 4 octets per field (": ", CR LF; a joined cookie
        // needs less), the request line's 12, `host: ` and CR LF, the chunked line and the blank line.
        let bound = src.count + 4 * fields.count + 50
        let request: H2Request
        if let spare {
            spare.reuse(streamID: streamID, endStream: endStream, capacity: bound)
            request = spare
        } else {
            request = H2Request(streamID: streamID, endStream: endStream, capacity: bound)
        }
        // The head is made in the request's own (no copy of it when done), from a new one that
        // keeps only the capacity of the reused request's header list.
        var headers: [HeaderField] = []
        swap(&headers, &request.head.headers)
        request.head = RequestHead()
        if !headers.isEmpty { headers.removeAll(keepingCapacity: true) }
        headers.reserveCapacity(fields.count - regularFrom + 2)
        swap(&headers, &request.head.headers)
        if let failure = layOut(&request.head, request, src, fields, regularFrom: regularFrom, method: method, path: path,
                                authority: authority, scheme: scheme, cookieCount: cookieCount, contentLength: contentLength,
                                chunked: chunked, controlInValues: controlInValues, odd: odd, bound: bound) {
            return .failure(failure)
        }
        request.unusualNames = odd || unusualNames
        return .success(request)
    }

    /// `layout`'s octets and head, laid out in `request` (its head is `h`): the first refusal, or nil.
    @inline(__always)
    static func layOut(_ h: inout RequestHead, _ request: H2Request, _ src: UnsafeRawBufferPointer, _ fields: UnsafeBufferPointer<HeaderField>,
                       regularFrom: Int, method: Range<Int>, path: Range<Int>, authority: Range<Int>?, scheme: Range<Int>,
                       cookieCount: Int, contentLength: Int?, chunked: Bool, controlInValues: Bool, odd: Bool, bound: Int) -> HTTPError? {
        var failure: HTTPError? = nil
        var w = Writer(p: request.octets, src: src.baseAddress!.assumingMemoryBound(to: UInt8.self))
        let out = UnsafeRawBufferPointer(start: w.p, count: bound)

        // Request line.
        w.put(method)
        h.methodRange = 0..<w.n
        w.put(0x20)
        let t0 = w.n
        w.put(path)
        h.targetRange = t0..<w.n
        w.put(" HTTP/1.1\r\n")
        if !odd {
            h.method = HeadParser.method(out, h.methodRange)
            do throws(HTTPError) { try HeadParser.splitTarget(out, &h) } catch { failure = error }
        }

        if let authority {
            let n0 = w.n
            w.put("host: ")
            let v0 = w.n
            w.put(authority)
            if !odd { line(out, n0..<(n0 + 4), trim(out, v0..<w.n), controlInValues, &h, &failure) }
            w.put("\r\n")
        }
        var firstCookie = true
        var k = regularFrom
        while k < fields.count {
            let f = fields[k]
            k += 1
            let name = f.name
            if authority != nil && equals(src, name, "host") { continue }
            if cookieCount > 1 && equals(src, name, "cookie") {
                if firstCookie {
                    firstCookie = false
                    let n0 = w.n
                    w.put("cookie: ")
                    let v0 = w.n
                    var joined = 0
                    for c in fields[k - 1..<fields.count] where equals(src, c.name, "cookie") {
                        if joined > 0 { w.put("; ") }
                        w.put(c.value)
                        joined += 1
                    }
                    if !odd { line(out, n0..<(n0 + 6), trim(out, v0..<w.n), controlInValues, &h, &failure) }
                    w.put("\r\n")
                }
                continue
            }
            let n0 = w.n
            w.put(name)
            let n1 = w.n
            w.put(": ")
            let v0 = w.n
            w.put(f.value)
            // No white space at the ends of a regular field's value (`checkRegular`): no trim.
            if !odd { line(out, n0..<n1, v0..<w.n, controlInValues, &h, &failure) }
            w.put("\r\n")
        }
        if chunked {
            // The body comes chunk-framed (H2Stream.appendBody): as an HTTP/1.1 client says it.
            let n0 = w.n
            w.put("transfer-encoding: chunked")
            h.headers.append(HeaderField(nameStart: Int32(n0), nameEnd: Int32(n0 + 17), valueStart: Int32(n0 + 19), valueEnd: Int32(w.n)))
            h.chunked = true
            w.put("\r\n")
        }
        w.put("\r\n")
        let headEnd = w.n
        w.put(scheme)
        request.scheme = headEnd..<w.n
        precondition(w.n <= bound)
        request.count = w.n

        if odd {
            do throws(HTTPError) {
                try HeadParser.request(UnsafeRawBufferPointer(start: w.p, count: headEnd), start: 0, end: headEnd, into: &h, names: keepAllNames)
            } catch {
                if failure == nil { failure = error }
            }
        } else {
            h.length = headEnd
            h.contentLength = contentLength
            // After the header lines, in the parser's order.
            if h.host == nil {
                if failure == nil { failure = HTTPError(400, "HTTP/1.1 request without \"Host\" header") }
            } else if let host = h.host, H2Octets.anyWord(out, host, ASCII.hasNonHostOctet) { // !HeadParser.validHost
                if failure == nil { failure = HTTPError(400, "invalid host") }
            }
            if h.method == .trace && failure == nil { failure = HTTPError(405, "TRACE method") }
        }
        if failure == nil {
            h.versionMajor = 2
            h.versionMinor = 0
            h.keepAlive = true
        }
        return failure
    }

    /// `value` without the spaces and tabs at its ends, as the HTTP/1 parser takes a value.
    @inline(__always)
    static func trim(_ b: UnsafeRawBufferPointer, _ value: Range<Int>) -> Range<Int> {
        var v0 = value.lowerBound, v1 = value.upperBound
        while v0 < v1 && (b[v0] == 0x20 || b[v0] == 0x09) { v0 += 1 }
        while v1 > v0 && (b[v1 - 1] == 0x20 || b[v1 - 1] == 0x09) { v1 -= 1 }
        return v0..<v1
    }

    /// One header line laid out (its value trimmed): what the parser does with it.
    @inline(__always)
    static func line(_ b: UnsafeRawBufferPointer, _ name: Range<Int>, _ value: Range<Int>, _ controlInValues: Bool,
                     _ h: inout RequestHead, _ failure: inout HTTPError?) {
        if controlInValues && failure == nil {
            for i in value {
                let c = b[i]
                if (c < 0x20 && c != 0x09) || c == 0x7F { failure = HTTPError(400, "invalid header value"); break }
            }
        }
        h.headers.append(HeaderField(nameStart: Int32(name.lowerBound), nameEnd: Int32(name.upperBound),
                                     valueStart: Int32(value.lowerBound), valueEnd: Int32(value.upperBound)))
        switch name.count {
        case 4 where equals(b, name, "host"):
            if h.host != nil && failure == nil { failure = HTTPError(400, "duplicate Host header") }
            h.host = value
        case 6 where equals(b, name, "expect"):
            if ASCII.equalsLower(b, value, "100-continue") { h.expectContinue = true }
        case 17 where equals(b, name, "if-modified-since"):
            if h.ifModifiedSince == nil { h.ifModifiedSince = value }
        case 19 where equals(b, name, "if-unmodified-since"):
            if h.ifUnmodifiedSince == nil { h.ifUnmodifiedSince = value }
        case 13 where equals(b, name, "if-none-match"):
            if h.ifNoneMatch == nil { h.ifNoneMatch = value }
        case 8 where equals(b, name, "if-match"):
            if h.ifMatch == nil { h.ifMatch = value }
        case 5 where equals(b, name, "range"):
            if h.range == nil { h.range = value }
        case 8 where equals(b, name, "if-range"):
            if h.ifRange == nil { h.ifRange = value }
        default:
            break
        }
    }

    /// Lays octets out in the head being built.
    struct Writer {
        let p: UnsafeMutablePointer<UInt8>
        /// The decoded fields' octets.
        let src: UnsafePointer<UInt8>
        var n = 0

        @inline(__always) mutating func put(_ r: Range<Int>) {
            H2Octets.copy(src + r.lowerBound, to: p + n, count: r.count)
            n += r.count
        }

        @inline(__always) mutating func put(_ s: StaticString) {
            (p + n).initialize(from: s.utf8Start, count: s.utf8CodeUnitCount)
            n += s.utf8CodeUnitCount
        }

        @inline(__always) mutating func put(_ c: UInt8) {
            p[n] = c
            n += 1
        }
    }

    /// Trailers: no pseudo-headers, and the rules of regular fields.
    static func checkTrailers(_ list: HPACKHeaderList, streamID: UInt32) throws(H2Error) {
        try list.withBytes { (b) throws(H2Error) in
            try list.withFields { (fields) throws(H2Error) in
                for f in fields {
                    if !f.name.isEmpty && b[f.name.lowerBound] == UInt8(ascii: ":") {
                        throw .stream(streamID, .protocolError, reason: "pseudo-header in trailers")
                    }
                    _ = try checkRegular(b, f, streamID)
                }
            }
        }
    }

    /// RFC 9113 §8.2.1–8.2.2: a name of lower-case visible octets other than `:`, a value
    /// without NUL, CR or LF and without white space at its ends, and no connection-specific
    /// field (`te` only as `trailers`). Returns whether the value has a control octet other than
    /// HT (allowed here, refused by the HTTP/1 rules) or DEL, and whether the name has an octet
    /// other than `a`–`z`, `0`–`9` and `-` (which a server's name rules may refuse).
    @inline(__always)
    static func checkRegular(_ b: UnsafeRawBufferPointer, _ f: HeaderField, _ streamID: UInt32) throws(H2Error) -> (control: Bool, unusualName: Bool) {
        let name = f.name, value = f.value
        if name.isEmpty { throw .stream(streamID, .protocolError, reason: "empty field name") }
        var unusualName = false
        if H2Octets.anyWord(b, name, H2Octets.hasNonLowerNameOctet) {
            unusualName = true
            for i in name {
                let c = b[i]
                if c <= 0x20 || (c >= 0x41 && c <= 0x5A) || c >= 0x7F || c == UInt8(ascii: ":") {
                    throw .stream(streamID, .protocolError, reason: "invalid or upper-case field name")
                }
            }
        }
        var control = false
        if H2Octets.anyWord(b, value, H2Octets.hasControl) {
            for i in value {
                let c = b[i]
                if c < 0x20 || c == 0x7F {
                    if c == 0 || c == 0x0A || c == 0x0D { throw .stream(streamID, .protocolError, reason: "NUL, CR or LF in a field value") }
                    if c != 0x09 { control = true }
                }
            }
        }
        if !value.isEmpty {
            let first = b[value.lowerBound], last = b[value.upperBound - 1]
            if first == 0x20 || first == 0x09 || last == 0x20 || last == 0x09 {
                throw .stream(streamID, .protocolError, reason: "white space around a field value")
            }
        }
        switch name.count {
        case 2 where equals(b, name, "te"):
            if !ASCII.equalsLower(b, value, "trailers") { throw .stream(streamID, .protocolError, reason: "te other than trailers") }
        case 7 where equals(b, name, "upgrade"),
             10 where equals(b, name, "connection") || equals(b, name, "keep-alive"),
             16 where equals(b, name, "proxy-connection"),
             17 where equals(b, name, "transfer-encoding"):
            throw .stream(streamID, .protocolError, reason: "connection-specific field")
        default: break
        }
        return (control, unusualName)
    }

    /// Whether the octets of `r` are those of `lit`: eight at a time (the last word overlapping
    /// the one before it), or under eight as one word each (`H2Octets.tail`, which for a given
    /// length differs whenever an octet does).
    @inline(__always)
    static func equals(_ b: UnsafeRawBufferPointer, _ r: Range<Int>, _ lit: StaticString) -> Bool {
        let n = lit.utf8CodeUnitCount
        guard r.count == n else { return false }
        guard n > 0 else { return true }
        let a = b.baseAddress! + r.lowerBound
        let p = UnsafeRawPointer(lit.utf8Start)
        if n < 8 { return H2Octets.tail(a, n) == H2Octets.tail(p, n) }
        var i = 0
        while i + 8 < n {
            if a.loadUnaligned(fromByteOffset: i, as: UInt64.self) != p.loadUnaligned(fromByteOffset: i, as: UInt64.self) { return false }
            i += 8
        }
        return a.loadUnaligned(fromByteOffset: n - 8, as: UInt64.self) == p.loadUnaligned(fromByteOffset: n - 8, as: UInt64.self)
    }
}

/// Eight-octets-at-a-time scans of a range of octets, for the request rules: each test says
/// whether any of a word's eight octets is of some kind (as `ASCII.hasControl`), and `anyWord`
/// applies it to a range of any length. They give the answers of the one-octet definitions
/// (`H2OctetsTests`).
enum H2Octets {
    /// Whether `test` holds for some word of the octets of `r`: eight at a time, the last word
    /// overlapping the one before it, or a range under eight octets read as one word (`tail`).
    @inline(__always)
    static func anyWord(_ b: UnsafeRawBufferPointer, _ r: Range<Int>, _ test: (UInt64) -> Bool) -> Bool {
        let n = r.count
        guard n > 0 else { return false }
        let a = b.baseAddress! + r.lowerBound
        var i = 0
        while i + 8 < n {
            if test(a.loadUnaligned(fromByteOffset: i, as: UInt64.self)) { return true }
            i += 8
        }
        return test(n >= 8 ? a.loadUnaligned(fromByteOffset: n - 8, as: UInt64.self) : tail(a, n))
    }

    /// The `n` (1…7) octets at `a` as one word, filled out with the octets themselves (two
    /// overlapping loads: each octet at least once, none from outside the range). A "some octet
    /// is of this kind" test gives the same answer on it as on the octets; and for one length,
    /// two such words are equal only when the octets are.
    @inline(__always)
    static func tail(_ a: UnsafeRawPointer, _ n: Int) -> UInt64 {
        if n >= 4 {
            return UInt64(a.loadUnaligned(as: UInt32.self)) | UInt64(a.loadUnaligned(fromByteOffset: n - 4, as: UInt32.self)) << 32
        }
        if n >= 2 {
            let x = UInt64(a.loadUnaligned(as: UInt16.self)) | UInt64(a.loadUnaligned(fromByteOffset: n - 2, as: UInt16.self)) << 16
            return x | x << 32
        }
        return UInt64(a.load(as: UInt8.self)) &* ones
    }

    static let ones: UInt64 = 0x0101_0101_0101_0101
    static let high: UInt64 = 0x8080_8080_8080_8080

    /// Some octet is a control octet (below 0x20, HT, CR and LF included) or DEL.
    @inline(__always) static func hasControl(_ w: UInt64) -> Bool { ASCII.hasControl(w) }

    /// Some octet is not `a`–`z`, `0`–`9` or `-`.
    @inline(__always) static func hasNonLowerNameOctet(_ w: UInt64) -> Bool {
        let x = w & 0x7F7F_7F7F_7F7F_7F7F
        let named = ASCII.octetsWithin(x, 0x61, 0x7A) | ASCII.octetsWithin(x, 0x30, 0x39) | ASCII.octetsWithin(x, 0x2D, 0x2D)
        return named & ~w & high != high
    }

    /// Some octet is not `A`–`Z`, `_` or `-` (`HeadParser.isMethodByte`).
    @inline(__always) static func hasNonMethodOctet(_ w: UInt64) -> Bool {
        let x = w & 0x7F7F_7F7F_7F7F_7F7F
        let method = ASCII.octetsWithin(x, 0x41, 0x5A) | ASCII.octetsWithin(x, 0x5F, 0x5F) | ASCII.octetsWithin(x, 0x2D, 0x2D)
        return method & ~w & high != high
    }

    /// Some octet is a space, a control octet or DEL (where the HTTP/1 parser would split a
    /// request line or a Host differently).
    @inline(__always) static func hasSpaceOrControl(_ w: UInt64) -> Bool {
        let x = w & 0x7F7F_7F7F_7F7F_7F7F
        return (ASCII.octetsWithin(x, 0x00, 0x20) | ASCII.octetsWithin(x, 0x7F, 0x7F)) & ~w & high != 0
    }

    /// Some octet is `@`.
    @inline(__always) static func hasAt(_ w: UInt64) -> Bool {
        let x = w ^ (0x40 &* ones)
        return (x &- ones) & ~x & high != 0
    }

    /// Exchanges the values at `a` and `b` (the same or disjoint) octet for octet, sixteen at a
    /// time: for a type whose values move with their octets (bitwise-takable: a reference
    /// inside goes along, counted once on each side as before), the `swap` of its values.
    @inline(__always)
    static func exchange<T>(_ a: UnsafeMutablePointer<T>, _ b: UnsafeMutablePointer<T>) {
        precondition(_isBitwiseTakable(T.self), "values that do not move with their octets")
        let x = UnsafeMutableRawPointer(a), y = UnsafeMutableRawPointer(b)
        let n = MemoryLayout<T>.size
        var i = 0
        while i + 16 <= n {
            let u = x.loadUnaligned(fromByteOffset: i, as: SIMD2<UInt64>.self), v = y.loadUnaligned(fromByteOffset: i, as: SIMD2<UInt64>.self)
            x.storeBytes(of: v, toByteOffset: i, as: SIMD2<UInt64>.self)
            y.storeBytes(of: u, toByteOffset: i, as: SIMD2<UInt64>.self)
            i += 16
        }
        while i < n {
            let u = x.load(fromByteOffset: i, as: UInt8.self), v = y.load(fromByteOffset: i, as: UInt8.self)
            x.storeBytes(of: v, toByteOffset: i, as: UInt8.self)
            y.storeBytes(of: u, toByteOffset: i, as: UInt8.self)
            i += 1
        }
    }

    /// Copies `count` octets: up to 32 with overlapping loads and stores of words (the first
    /// and last two, or one, or a half or quarter word), which stay within both ranges; more
    /// with `memcpy`. All loads come before the stores.
    @inline(__always)
    static func copy(_ from: UnsafePointer<UInt8>, to: UnsafeMutablePointer<UInt8>, count n: Int) {
        let s = UnsafeRawPointer(from), d = UnsafeMutableRawPointer(to)
        if n > 32 {
            d.copyMemory(from: s, byteCount: n)
        } else if n > 16 {
            let a = s.loadUnaligned(as: UInt64.self), b = s.loadUnaligned(fromByteOffset: 8, as: UInt64.self)
            let c = s.loadUnaligned(fromByteOffset: n - 16, as: UInt64.self), e = s.loadUnaligned(fromByteOffset: n - 8, as: UInt64.self)
            d.storeBytes(of: a, as: UInt64.self)
            d.storeBytes(of: b, toByteOffset: 8, as: UInt64.self)
            d.storeBytes(of: c, toByteOffset: n - 16, as: UInt64.self)
            d.storeBytes(of: e, toByteOffset: n - 8, as: UInt64.self)
        } else if n >= 8 {
            let a = s.loadUnaligned(as: UInt64.self), b = s.loadUnaligned(fromByteOffset: n - 8, as: UInt64.self)
            d.storeBytes(of: a, as: UInt64.self)
            d.storeBytes(of: b, toByteOffset: n - 8, as: UInt64.self)
        } else if n >= 4 {
            let a = s.loadUnaligned(as: UInt32.self), b = s.loadUnaligned(fromByteOffset: n - 4, as: UInt32.self)
            d.storeBytes(of: a, as: UInt32.self)
            d.storeBytes(of: b, toByteOffset: n - 4, as: UInt32.self)
        } else if n >= 2 {
            let a = s.loadUnaligned(as: UInt16.self), b = s.loadUnaligned(fromByteOffset: n - 2, as: UInt16.self)
            d.storeBytes(of: a, as: UInt16.self)
            d.storeBytes(of: b, toByteOffset: n - 2, as: UInt16.self)
        } else if n == 1 {
            d.storeBytes(of: s.load(as: UInt8.self), as: UInt8.self)
        }
    }
}
