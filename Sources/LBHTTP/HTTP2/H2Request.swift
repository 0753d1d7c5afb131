/// A request received on an HTTP/2 stream, in the form the HTTP/1 runtime already handles: a
/// `RequestHead` whose ranges index `bytes`, an HTTP/1.1-form head built from the fields
/// (`GET /path?q HTTP/1.1`, `host:` from `:authority`, the other fields in order, cookies
/// joined into one `cookie:` line with `"; "` as RFC 9113 §8.2.3 says). `head.versionMajor`
/// is 2 and `head.versionMinor` 0.
public struct H2Request: Sendable {
    /// The stream the request came on.
    public var streamID: UInt32
    /// The head, parsed by `HeadParser.request` from `bytes`.
    public var head: RequestHead
    /// The HTTP/1.1-form head (and `:scheme` after it).
    public var bytes: [UInt8]
    /// `:scheme`'s value (`http` or `https`), as a range of `bytes` after the head.
    public var scheme: Range<Int>
    /// The request has no body (END_STREAM on its HEADERS).
    public var endStream: Bool
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
enum H2RequestRules {
    /// Checks a decoded request header list and builds the request. Throws a stream error
    /// (PROTOCOL_ERROR) for what RFC 9113 calls malformed; returns `.failure` with the status
    /// nginx answers for what its HTTP/1 parser refuses (bad host, TRACE, CONNECT, …), so that
    /// the runtime answers it on the stream.
    static func request(_ list: HPACKHeaderList, streamID: UInt32, endStream: Bool) throws(H2Error) -> Result<H2Request, HTTPError> {
        let malformed = { (reason: StaticString) -> H2Error in .stream(streamID, .protocolError, reason: reason) }
        var method: Range<Int>? = nil, scheme: Range<Int>? = nil, path: Range<Int>? = nil, authority: Range<Int>? = nil
        var sawRegular = false
        var cookieCount = 0
        var contentLength: Int? = nil
        try list.bytes.withBytes { (b) throws(H2Error) in
            for f in list.fields {
                let name = f.name, value = f.value
                if !name.isEmpty && b[name.lowerBound] == UInt8(ascii: ":") {
                    if sawRegular { throw malformed("pseudo-header after a regular field") }
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
                try checkRegular(b, f, streamID)
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

        // The HTTP/1.1-form head.
        var out: [UInt8] = []
        out.reserveCapacity(list.bytes.count + 8 * list.fields.count + 32)
        out.append(contentsOf: list.bytes[method])
        out.append(0x20)
        out.append(contentsOf: list.bytes[path])
        out.append(contentsOf: " HTTP/1.1\r\n".utf8)
        if let authority {
            out.append(contentsOf: "host: ".utf8)
            out.append(contentsOf: list.bytes[authority])
            out.append(contentsOf: "\r\n".utf8)
        }
        var firstCookie = true
        list.bytes.withUnsafeBytes { b in
            for f in list.fields {
                if b[f.name.lowerBound] == UInt8(ascii: ":") { continue }
                if authority != nil && equals(b, f.name, "host") { continue }
                if cookieCount > 1 && equals(b, f.name, "cookie") {
                    if firstCookie {
                        out.append(contentsOf: "cookie: ".utf8)
                        firstCookie = false
                        var k = 0
                        for c in list.fields where equals(b, c.name, "cookie") {
                            if k > 0 { out.append(0x3B); out.append(0x20) }
                            out.append(contentsOf: list.bytes[c.value])
                            k += 1
                        }
                        out.append(contentsOf: "\r\n".utf8)
                    }
                    continue
                }
                out.append(contentsOf: list.bytes[f.name])
                out.append(0x3A)
                out.append(0x20)
                out.append(contentsOf: list.bytes[f.value])
                out.append(0x0D)
                out.append(0x0A)
            }
        }
        out.append(0x0D)
        out.append(0x0A)
        let headEnd = out.count
        out.append(contentsOf: list.bytes[scheme])
        let schemeRange = headEnd..<out.count
        do {
            var head = try out.withBytes { (b) throws(HTTPError) in try HeadParser.request(b, start: 0, end: headEnd) }
            head.versionMajor = 2
            head.versionMinor = 0
            head.keepAlive = true
            return .success(H2Request(streamID: streamID, head: head, bytes: out, scheme: schemeRange, endStream: endStream))
        } catch {
            return .failure(error)
        }
    }

    /// Trailers: no pseudo-headers, and the rules of regular fields.
    static func checkTrailers(_ list: HPACKHeaderList, streamID: UInt32) throws(H2Error) {
        try list.bytes.withBytes { (b) throws(H2Error) in
            for f in list.fields {
                if !f.name.isEmpty && b[f.name.lowerBound] == UInt8(ascii: ":") {
                    throw .stream(streamID, .protocolError, reason: "pseudo-header in trailers")
                }
                try checkRegular(b, f, streamID)
            }
        }
    }

    /// RFC 9113 §8.2.1–8.2.2: a name of lower-case visible octets other than `:`, a value
    /// without NUL, CR or LF and without white space at its ends, and no connection-specific
    /// field (`te` only as `trailers`).
    @inline(__always)
    static func checkRegular(_ b: UnsafeRawBufferPointer, _ f: HeaderField, _ streamID: UInt32) throws(H2Error) {
        let name = f.name, value = f.value
        if name.isEmpty { throw .stream(streamID, .protocolError, reason: "empty field name") }
        for i in name {
            let c = b[i]
            if c <= 0x20 || (c >= 0x41 && c <= 0x5A) || c >= 0x7F || c == UInt8(ascii: ":") {
                throw .stream(streamID, .protocolError, reason: "invalid or upper-case field name")
            }
        }
        for i in value {
            let c = b[i]
            if c == 0 || c == 0x0A || c == 0x0D { throw .stream(streamID, .protocolError, reason: "NUL, CR or LF in a field value") }
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
    }

    @inline(__always)
    static func equals(_ b: UnsafeRawBufferPointer, _ r: Range<Int>, _ lit: StaticString) -> Bool {
        guard r.count == lit.utf8CodeUnitCount else { return false }
        let p = lit.utf8Start
        for k in 0..<r.count where b[r.lowerBound + k] != p[k] { return false }
        return true
    }
}
