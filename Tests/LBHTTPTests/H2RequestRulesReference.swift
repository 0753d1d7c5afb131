@testable import LBHTTP

/// `H2RequestRules` as it was before its word-at-a-time checks and single name pass (commit
/// 80565a7), kept verbatim as the definition the fast paths must match: `H2RequestRulesTests`
/// compares the two over many header lists.
enum H2RequestRulesReference {
    /// Checks a decoded request header list and builds the request. Throws a stream error
    /// (PROTOCOL_ERROR) for what RFC 9113 calls malformed; returns `.failure` with the status
    /// nginx answers for what its HTTP/1 parser refuses (bad host, TRACE, CONNECT, …), so that
    /// the runtime answers it on the stream.
    /// `spare`: a request the runtime is done with, laid out anew (`H2Request.reuse`) instead of
    /// a new object.
    static func request(_ list: HPACKHeaderList, streamID: UInt32, endStream: Bool, reusing spare: H2Request? = nil) throws(H2Error) -> Result<H2Request, HTTPError> {
        let malformed = { (reason: StaticString) -> H2Error in .stream(streamID, .protocolError, reason: reason) }
        var method: Range<Int>? = nil, scheme: Range<Int>? = nil, path: Range<Int>? = nil, authority: Range<Int>? = nil
        var sawRegular = false
        var cookieCount = 0
        var contentLength: Int? = nil
        // Some regular value has a control octet (other than HT) or DEL, which the HTTP/1 rules
        // refuse: only then does `layout` look at each value's octets again.
        var controlInValues = false
        try list.bytes.withBytes { (b) throws(H2Error) in
            for f in list.fields {
                let name = f.name, value = f.value
                if !name.isEmpty && b[name.lowerBound] == UInt8(ascii: ":") {
                    if sawRegular { throw malformed("pseudo-header after a regular field") }
                    // RFC 9113 §8.2.1, as nginx: no NUL, CR or LF in any value — a pseudo-header
                    // must not smuggle lines into the request head.
                    for i in value where b[i] == 0 || b[i] == 0x0A || b[i] == 0x0D {
                        throw malformed("NUL, CR or LF in a pseudo-header value")
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
                    continue
                }
                sawRegular = true
                if try checkRegular(b, f, streamID) { controlInValues = true }
                switch name.count {
                case 6 where equals(b, name, "cookie"): cookieCount += 1
                case 14 where equals(b, name, "content-length"):
                    guard let v = ASCII.decimal(b, value) else { throw malformed("invalid content-length") }
                    if let old = contentLength, old != v { throw malformed("conflicting content-length") }
                    contentLength = v
                default: break
                }
            }
        }
        guard let method else { throw malformed("no :method") }
        let isConnect = list.bytes.withUnsafeBytes { b in equals(b, method, "CONNECT") }
        if isConnect {
            // nginx answers CONNECT with 405 (no tunnels); RFC 9113 §8.5's form is checked first.
            if scheme != nil || path != nil || authority == nil { throw malformed("CONNECT with :scheme or :path, or without :authority") }
            return .failure(HTTPError(405, "CONNECT method"))
        }
        guard let scheme, let path else { throw malformed("no :scheme or :path") }
        guard !path.isEmpty else { throw malformed("empty :path") }
        if let authority, list.bytes[authority].contains(UInt8(ascii: "@")) {
            throw malformed(":authority with userinfo") // RFC 9113 §8.3.1
        }
        if endStream, let cl = contentLength, cl != 0 { throw malformed("content-length without a body") }

        let chunked = !endStream && contentLength == nil
        return list.bytes.withUnsafeBytes { src in
            layout(src, list.fields, streamID: streamID, endStream: endStream, method: method, path: path, authority: authority,
                   scheme: scheme, cookieCount: cookieCount, contentLength: contentLength, chunked: chunked,
                   controlInValues: controlInValues, reusing: spare)
        }
    }

    /// How `HeadParser.request` reads a header name when every header is kept: the fields' names
    /// are judged later, by the server's rules (`H2Request.applyNameRules`).
    static let keepAllNames = HeaderNameRules(underscores: true, ignoreInvalid: false)

    /// Lays out the HTTP/1.1-form head and makes, at the same time, the `RequestHead`
    /// `HeadParser.request` would make of it: the same ranges, known headers and refusals (the
    /// first in the parser's order). Only a request line or `:authority` the parser would split
    /// differently from the fields (white space, control octets, a method of other octets than
    /// `A`–`Z`, `_`, `-`) is parsed instead, once, from the laid-out octets.
    static func layout(_ src: UnsafeRawBufferPointer, _ fields: [HeaderField], streamID: UInt32, endStream: Bool,
                       method: Range<Int>, path: Range<Int>, authority: Range<Int>?, scheme: Range<Int>,
                       cookieCount: Int, contentLength: Int?, chunked: Bool, controlInValues: Bool = true,
                       reusing spare: H2Request? = nil) -> Result<H2Request, HTTPError> {
        var odd = method.isEmpty
        for i in method where !HeadParser.isMethodByte(src[i]) { odd = true; break }
        for i in path where src[i] <= 0x20 || src[i] == 0x7F { odd = true; break }
        if let authority { for i in authority where src[i] <= 0x20 || src[i] == 0x7F { odd = true; break } }

        var failure: HTTPError? = nil
        var unusualNames = odd
        var headEnd = 0
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
        var h = RequestHead()
        swap(&h.headers, &request.head.headers) // the capacity of a reused request's list
        if !h.headers.isEmpty { h.headers.removeAll(keepingCapacity: true) }
        h.headers.reserveCapacity(fields.count + 1)
        do {
            var w = Writer(p: request.octets, src: src.baseAddress!.assumingMemoryBound(to: UInt8.self))
            var out: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: w.p, count: w.n) }
            func fail(_ e: HTTPError) { if failure == nil { failure = e } }

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
                do throws(HTTPError) { try HeadParser.splitTarget(out, &h) } catch { fail(error) }
            }

            /// One header line laid out: what the parser does with it.
            func line(_ name: Range<Int>, _ value: Range<Int>) {
                guard !odd else { return }
                let b = out
                var v0 = value.lowerBound, v1 = value.upperBound
                while v0 < v1 && (b[v0] == 0x20 || b[v0] == 0x09) { v0 += 1 }
                while v1 > v0 && (b[v1 - 1] == 0x20 || b[v1 - 1] == 0x09) { v1 -= 1 }
                let value = v0..<v1
                if controlInValues {
                    for i in value {
                        let c = b[i]
                        if (c < 0x20 && c != 0x09) || c == 0x7F { fail(HTTPError(400, "invalid header value")) }
                    }
                }
                h.headers.append(HeaderField(nameStart: Int32(name.lowerBound), nameEnd: Int32(name.upperBound),
                                             valueStart: Int32(v0), valueEnd: Int32(v1)))
                switch name.count {
                case 4 where equals(b, name, "host"):
                    if h.host != nil { fail(HTTPError(400, "duplicate Host header")) }
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

            if let authority {
                let n0 = w.n
                w.put("host: ")
                let v0 = w.n
                w.put(authority)
                line(n0..<(n0 + 4), v0..<w.n)
                w.put("\r\n")
            }
            var firstCookie = true
            for f in fields {
                let name = f.name
                if src[name.lowerBound] == UInt8(ascii: ":") { continue }
                if authority != nil && equals(src, name, "host") { continue }
                if cookieCount > 1 && equals(src, name, "cookie") {
                    if firstCookie {
                        firstCookie = false
                        let n0 = w.n
                        w.put("cookie: ")
                        let v0 = w.n
                        var k = 0
                        for c in fields where equals(src, c.name, "cookie") {
                            if k > 0 { w.put("; ") }
                            w.put(c.value)
                            k += 1
                        }
                        line(n0..<(n0 + 6), v0..<w.n)
                        w.put("\r\n")
                    }
                    continue
                }
                if !unusualNames {
                    for i in name {
                        let c = src[i]
                        if !((c >= 0x61 && c <= 0x7A) || (c >= 0x30 && c <= 0x39) || c == UInt8(ascii: "-")) { unusualNames = true; break }
                    }
                }
                let n0 = w.n
                w.put(name)
                let n1 = w.n
                w.put(": ")
                let v0 = w.n
                w.put(f.value)
                line(n0..<n1, v0..<w.n)
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
            headEnd = w.n
            w.put(scheme)
            request.scheme = headEnd..<w.n
            assert(w.n <= bound)
            request.count = w.n

            if odd {
                do throws(HTTPError) {
                    try HeadParser.request(UnsafeRawBufferPointer(start: w.p, count: headEnd), start: 0, end: headEnd, into: &h, names: keepAllNames)
                } catch {
                    fail(error)
                }
            } else {
                h.length = headEnd
                h.contentLength = contentLength
                // After the header lines, in the parser's order.
                if h.host == nil {
                    fail(HTTPError(400, "HTTP/1.1 request without \"Host\" header"))
                } else if let host = h.host, !HeadParser.validHost(out, host) {
                    fail(HTTPError(400, "invalid host"))
                }
                if h.method == .trace { fail(HTTPError(405, "TRACE method")) }
            }
            if failure == nil {
                h.versionMajor = 2
                h.versionMinor = 0
                h.keepAlive = true
                request.unusualNames = unusualNames
                swap(&request.head, &h)
            }
        }
        if let failure { return .failure(failure) }
        return .success(request)
    }

    /// Lays octets out in the head being built.
    struct Writer {
        let p: UnsafeMutablePointer<UInt8>
        /// The decoded fields' octets.
        let src: UnsafePointer<UInt8>
        var n = 0

        @inline(__always) mutating func put(_ r: Range<Int>) {
            (p + n).initialize(from: src + r.lowerBound, count: r.count)
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
        try list.bytes.withBytes { (b) throws(H2Error) in
            for f in list.fields {
                if !f.name.isEmpty && b[f.name.lowerBound] == UInt8(ascii: ":") {
                    throw .stream(streamID, .protocolError, reason: "pseudo-header in trailers")
                }
                _ = try checkRegular(b, f, streamID)
            }
        }
    }

    /// RFC 9113 §8.2.1–8.2.2: a name of lower-case visible octets other than `:`, a value
    /// without NUL, CR or LF and without white space at its ends, and no connection-specific
    /// field (`te` only as `trailers`). Returns whether the value has a control octet other than
    /// HT (allowed here, refused by the HTTP/1 rules) or DEL.
    @inline(__always)
    static func checkRegular(_ b: UnsafeRawBufferPointer, _ f: HeaderField, _ streamID: UInt32) throws(H2Error) -> Bool {
        let name = f.name, value = f.value
        if name.isEmpty { throw .stream(streamID, .protocolError, reason: "empty field name") }
        for i in name {
            let c = b[i]
            if c <= 0x20 || (c >= 0x41 && c <= 0x5A) || c >= 0x7F || c == UInt8(ascii: ":") {
                throw .stream(streamID, .protocolError, reason: "invalid or upper-case field name")
            }
        }
        var control = false
        for i in value {
            let c = b[i]
            if c < 0x20 || c == 0x7F {
                if c == 0 || c == 0x0A || c == 0x0D { throw .stream(streamID, .protocolError, reason: "NUL, CR or LF in a field value") }
                if c != 0x09 { control = true }
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
        return control
    }

    @inline(__always)
    static func equals(_ b: UnsafeRawBufferPointer, _ r: Range<Int>, _ lit: StaticString) -> Bool {
        guard r.count == lit.utf8CodeUnitCount else { return false }
        let p = lit.utf8Start
        for k in 0..<r.count where b[r.lowerBound + k] != p[k] { return false }
        return true
    }
}
