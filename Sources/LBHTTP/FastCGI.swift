/// FastCGI version 1 as nginx's fastcgi module speaks it: one request at a time per connection,
/// request id 1, role RESPONDER. Pure encoding and decoding; the proxy owns the sockets.
public enum FastCGI {
    public static let version: UInt8 = 1
    public static let headerSize = 8
    /// The largest content of one record.
    public static let maxContent = 65535
    /// `FCGI_KEEP_CONN` in FCGI_BEGIN_REQUEST's flags: the application keeps the connection open.
    public static let keepConnFlag: UInt8 = 1

    public enum RecordType: UInt8, Sendable {
        case beginRequest = 1, abortRequest, endRequest, params, stdin, stdout, stderr, data
        case getValues, getValuesResult, unknownType
    }

    /// Writes a record header (request id 1) at `p`.
    public static func writeHeader(_ type: RecordType, contentLength: Int, padding: Int = 0, at p: UnsafeMutableRawPointer) {
        p.storeBytes(of: version, toByteOffset: 0, as: UInt8.self)
        p.storeBytes(of: type.rawValue, toByteOffset: 1, as: UInt8.self)
        p.storeBytes(of: 0, toByteOffset: 2, as: UInt8.self)
        p.storeBytes(of: 1, toByteOffset: 3, as: UInt8.self)
        p.storeBytes(of: UInt8(truncatingIfNeeded: contentLength >> 8), toByteOffset: 4, as: UInt8.self)
        p.storeBytes(of: UInt8(truncatingIfNeeded: contentLength), toByteOffset: 5, as: UInt8.self)
        p.storeBytes(of: UInt8(truncatingIfNeeded: padding), toByteOffset: 6, as: UInt8.self)
        p.storeBytes(of: 0, toByteOffset: 7, as: UInt8.self)
    }

    /// Appends a record header (request id 1).
    public static func appendHeader(_ type: RecordType, contentLength: Int, padding: Int = 0, into out: inout [UInt8]) {
        out += [version, type.rawValue, 0, 1, UInt8(truncatingIfNeeded: contentLength >> 8),
                UInt8(truncatingIfNeeded: contentLength), UInt8(truncatingIfNeeded: padding), 0]
    }

    /// FCGI_BEGIN_REQUEST for the RESPONDER role.
    public static func appendBeginRequest(keepConn: Bool, into out: inout [UInt8]) {
        appendHeader(.beginRequest, contentLength: 8, into: &out)
        out += [0, 1, keepConn ? keepConnFlag : 0, 0, 0, 0, 0, 0]
    }

    /// Appends one name-value pair (lengths under 128 in one byte, else four with the top bit set).
    public static func appendPair<N: Collection, V: Collection>(name: N, value: V, into out: inout [UInt8])
        where N.Element == UInt8, V.Element == UInt8 {
        func length(_ n: Int) {
            if n < 128 {
                out.append(UInt8(n))
            } else {
                out += [UInt8(truncatingIfNeeded: n >> 24) | 0x80, UInt8(truncatingIfNeeded: n >> 16),
                        UInt8(truncatingIfNeeded: n >> 8), UInt8(truncatingIfNeeded: n)]
            }
        }
        length(name.count)
        length(value.count)
        out += name
        out += value
    }

    /// Appends `payload` as records of `type` (at most 65535 bytes each, padded to 8 bytes as
    /// nginx does). Nothing for an empty payload: the stream's end is an empty record, appended
    /// with `appendHeader(type, contentLength: 0)`.
    public static func appendStream(_ type: RecordType, _ payload: [UInt8], into out: inout [UInt8]) {
        var i = 0
        while i < payload.count {
            let n = min(maxContent, payload.count - i)
            let pad = (8 - n % 8) % 8
            appendHeader(type, contentLength: n, padding: pad, into: &out)
            out += payload[i..<(i + n)]
            out += repeatElement(0, count: pad)
            i += n
        }
    }

    /// Decodes name-value pairs (for tests and tools); nil when malformed.
    public static func decodePairs(_ b: [UInt8]) -> [(name: [UInt8], value: [UInt8])]? {
        var out: [([UInt8], [UInt8])] = []
        var i = 0
        func length() -> Int? {
            guard i < b.count else { return nil }
            if b[i] < 128 { i += 1; return Int(b[i - 1]) }
            guard i + 4 <= b.count else { return nil }
            let n = Int(b[i] & 0x7f) << 24 | Int(b[i + 1]) << 16 | Int(b[i + 2]) << 8 | Int(b[i + 3])
            i += 4
            return n
        }
        while i < b.count {
            guard let nl = length(), let vl = length(), i + nl + vl <= b.count else { return nil }
            out.append((Array(b[i..<(i + nl)]), Array(b[(i + nl)..<(i + nl + vl)])))
            i += nl + vl
        }
        return out
    }
}

/// A fault in what a FastCGI application sent, worded as nginx logs it.
public struct FastCGIError: Error, Sendable, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
}

/// Splits an application's byte stream into its records, as a value: feed bytes in any pieces;
/// events name ranges of the bytes just fed. Only STDOUT, STDERR and END_REQUEST are valid
/// from an application (nginx's checks and messages).
public struct FastCGIRecordDecoder: Sendable {
    public enum Event: Equatable, Sendable {
        /// Part of a STDOUT record's content.
        case stdout(Range<Int>)
        /// Part of a STDERR record's content; `last` when the record's content ends here.
        case stderr(Range<Int>, last: Bool)
        /// FCGI_END_REQUEST.
        case end(appStatus: UInt32, protocolStatus: UInt8)
    }

    enum State: Sendable {
        case header
        case content(type: FastCGI.RecordType, remaining: Int, padding: Int)
        case padding(Int)
        case ended
    }

    var state = State.header
    /// The bytes of a header (or END_REQUEST body) not yet complete.
    var partial: [UInt8] = []

    public init() {}

    /// True once FCGI_END_REQUEST arrived.
    public var ended: Bool { if case .ended = state { return true }; return false }

    /// Consumes all of `input` (bytes after END_REQUEST are an error), calling `event` in order.
    public mutating func consume(_ input: UnsafeRawBufferPointer, _ event: (Event) throws -> Void) throws {
        var i = 0
        let n = input.count
        while i < n {
            switch state {
            case .ended:
                throw FastCGIError("upstream sent unexpected FastCGI record after the end of the request")
            case .header:
                var h: [UInt8]
                if partial.isEmpty && n - i >= FastCGI.headerSize {
                    h = Array(input[i..<(i + FastCGI.headerSize)])
                    i += FastCGI.headerSize
                } else {
                    let take = min(FastCGI.headerSize - partial.count, n - i)
                    partial += input[i..<(i + take)]
                    i += take
                    if partial.count < FastCGI.headerSize { return }
                    h = partial
                    partial = []
                }
                guard h[0] == FastCGI.version else {
                    throw FastCGIError("upstream sent unsupported FastCGI protocol version: \(h[0])")
                }
                guard let type = FastCGI.RecordType(rawValue: h[1]), type == .stdout || type == .stderr || type == .endRequest else {
                    throw FastCGIError("upstream sent invalid FastCGI record type: \(h[1])")
                }
                guard h[2] == 0 else { throw FastCGIError("upstream sent unexpected FastCGI request id high byte: \(h[2])") }
                guard h[3] == 1 else { throw FastCGIError("upstream sent unexpected FastCGI request id low byte: \(h[3])") }
                let length = Int(h[4]) << 8 | Int(h[5])
                if type == .endRequest && length < 8 {
                    throw FastCGIError("upstream sent invalid FastCGI end request record")
                }
                if type == .stderr && length == 0 {
                    state = h[6] > 0 ? .padding(Int(h[6])) : .header
                    continue
                }
                state = .content(type: type, remaining: length, padding: Int(h[6]))
                if length == 0 {
                    state = h[6] > 0 ? .padding(Int(h[6])) : .header
                    // An empty STDOUT record ends the stream: nothing to report.
                }
            case .content(let type, let remaining, let padding):
                let take = min(remaining, n - i)
                let left = remaining - take
                switch type {
                case .stdout:
                    try event(.stdout(i..<(i + take)))
                case .stderr:
                    try event(.stderr(i..<(i + take), last: left == 0))
                default: // END_REQUEST: its 8-byte body (more is padding-like and ignored)
                    partial += input[i..<(i + take)]
                }
                i += take
                if left > 0 {
                    state = .content(type: type, remaining: left, padding: padding)
                    return
                }
                if type == .endRequest {
                    let b = partial
                    partial = []
                    let app = UInt32(b[0]) << 24 | UInt32(b[1]) << 16 | UInt32(b[2]) << 8 | UInt32(b[3])
                    state = padding > 0 ? .padding(-padding) : .ended
                    try event(.end(appStatus: app, protocolStatus: b[4]))
                    continue
                }
                state = padding > 0 ? .padding(padding) : .header
            case .padding(let p):
                // A negative count is the padding after END_REQUEST: then the request has ended.
                let want = abs(p)
                let take = min(want, n - i)
                i += take
                if take < want {
                    state = .padding(p < 0 ? -(want - take) : want - take)
                    return
                }
                state = p < 0 ? .ended : .header
            }
        }
    }
}

/// Turns a CGI response (the STDOUT stream: header lines, an empty line, the body) into an
/// HTTP/1.1 response the proxy's HTTP path reads unchanged: `Status:` becomes the status line
/// (a `Location:` without it is 302, else 200, as nginx), and a body without Content-Length is
/// framed chunked, ended by the application's END_REQUEST.
public struct CGIResponseTranslator: Sendable {
    enum State: Sendable {
        case head
        case chunked
        case raw
        case done
    }

    var state = State.head
    var head: [UInt8] = []
    /// Where the next unparsed header line starts in `head`.
    var lineStart = 0
    let maxHead: Int

    /// - Parameter maxHead: the largest header accepted (`fastcgi_buffer_size`).
    public init(maxHead: Int) { self.maxHead = maxHead }

    /// True once the header has been translated.
    public var headDone: Bool { if case .head = state { return false }; return true }

    /// Takes STDOUT bytes; appends the translated HTTP bytes to `out`.
    public mutating func stdout(_ data: UnsafeRawBufferPointer, into out: inout [UInt8]) throws {
        guard !data.isEmpty else { return }
        switch state {
        case .head:
            head += data
            try parseHead(into: &out)
        case .chunked:
            appendChunk(data, into: &out)
        case .raw:
            out += data
        case .done:
            break
        }
    }

    /// The application ended the request: closes the chunked body. Throws when the header never ended.
    public mutating func end(into out: inout [UInt8]) throws {
        switch state {
        case .head: throw FastCGIError("upstream prematurely closed FastCGI stdout")
        case .chunked: out += Array("0\r\n\r\n".utf8)
        case .raw, .done: break
        }
        state = .done
    }

    mutating func appendChunk(_ data: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        guard !data.isEmpty else { return }
        out += Array(String(data.count, radix: 16).utf8)
        out += [13, 10]
        out += data
        out += [13, 10]
    }

    mutating func parseHead(into out: inout [UInt8]) throws {
        // Find the empty line that ends the header.
        var end = -1
        var i = lineStart
        while let nl = head[i...].firstIndex(of: 10) {
            var lineEnd = nl
            if lineEnd > i && head[lineEnd - 1] == 13 { lineEnd -= 1 }
            if lineEnd == i { end = nl + 1; break }
            i = nl + 1
        }
        lineStart = i
        if end < 0 {
            if head.count > maxHead { throw FastCGIError("upstream sent too big header") }
            return
        }
        if end > maxHead { throw FastCGIError("upstream sent too big header") }
        var fields: [(name: ArraySlice<UInt8>, value: ArraySlice<UInt8>)] = []
        var start = 0
        while start < end {
            let nl = head[start..<end].firstIndex(of: 10)!
            var lineEnd = nl
            if lineEnd > start && head[lineEnd - 1] == 13 { lineEnd -= 1 }
            defer { start = nl + 1 }
            if lineEnd == start { break }
            let line = head[start..<lineEnd]
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon > line.startIndex,
                  line[line.startIndex..<colon].allSatisfy(CGIResponseTranslator.isTokenByte) else {
                throw FastCGIError("upstream sent invalid header: \"\(String(decoding: line.prefix(64), as: UTF8.self))\"")
            }
            var v = line[(colon + 1)...]
            while let f = v.first, f == 32 || f == 9 { v = v.dropFirst() }
            while let l = v.last, l == 32 || l == 9 { v = v.dropLast() }
            // Control bytes (NUL, a bare CR) would not survive the HTTP head parser either.
            guard !v.contains(where: { ($0 < 0x20 && $0 != 0x09) || $0 == 0x7F }) else {
                throw FastCGIError("upstream sent invalid header: \"\(String(decoding: line.prefix(64), as: UTF8.self))\"")
            }
            fields.append((line[line.startIndex..<colon], v))
        }
        func named(_ n: String) -> ArraySlice<UInt8>? {
            let lower = Array(n.utf8)
            return fields.first(where: { $0.name.count == lower.count && zip($0.name, lower).allSatisfy { ($0 | 0x20) == $1 } })?.value
        }
        var statusLine: [UInt8]
        if let s = named("status") {
            guard s.count >= 3, s.prefix(3).allSatisfy({ $0 >= 48 && $0 <= 57 }), s.count == 3 || s[s.startIndex + 3] == 32 else {
                throw FastCGIError("upstream sent invalid status \"\(String(decoding: s, as: UTF8.self))\"")
            }
            let code = s.prefix(3).reduce(0) { $0 * 10 + Int($1 - 48) }
            guard code >= 100 else { throw FastCGIError("upstream sent invalid status \"\(String(decoding: s, as: UTF8.self))\"") }
            statusLine = s.count > 3 ? Array(s) : Array("\(code) \(Status.reason(code))".utf8)
        } else if named("location") != nil {
            statusLine = Array("302 Moved Temporarily".utf8)
        } else {
            statusLine = Array("200 OK".utf8)
        }
        // Built apart and appended whole: a fault in a later line leaves no half head behind.
        var h = Array("HTTP/1.1 ".utf8)
        h += statusLine
        h += [13, 10]
        var hasLength = false
        for f in fields {
            switch f.name.count {
            case 6 where CGIResponseTranslator.equalsLower(f.name, "status"): continue
            case 10 where CGIResponseTranslator.equalsLower(f.name, "connection"),
                 10 where CGIResponseTranslator.equalsLower(f.name, "keep-alive"),
                 17 where CGIResponseTranslator.equalsLower(f.name, "transfer-encoding"): continue
            case 14 where CGIResponseTranslator.equalsLower(f.name, "content-length"):
                guard !hasLength, !f.value.isEmpty, f.value.count < 19, f.value.allSatisfy({ $0 >= 48 && $0 <= 57 }) else {
                    throw FastCGIError("upstream sent invalid \"Content-Length\" header")
                }
                hasLength = true
            case 12 where CGIResponseTranslator.equalsLower(f.name, "content-type"):
                // nginx writes this one itself, so PHP's `Content-type` reaches clients as `Content-Type`.
                h += Array("Content-Type: ".utf8)
                h += f.value
                h += [13, 10]
                continue
            default: break
            }
            h += f.name
            h += [58, 32]
            h += f.value
            h += [13, 10]
        }
        if !hasLength { h += Array("Transfer-Encoding: chunked\r\n".utf8) }
        h += [13, 10]
        out += h
        state = hasLength ? .raw : .chunked
        let rest = head[end...]
        head = []
        lineStart = 0
        if !rest.isEmpty {
            try Array(rest).withUnsafeBytes { try stdout($0, into: &out) }
        }
    }

    static func isTokenByte(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
        case UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"),
             UInt8(ascii: "%"), UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "^"),
             UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"): true
        default: false
        }
    }

    static func equalsLower(_ a: ArraySlice<UInt8>, _ lower: StaticString) -> Bool {
        guard a.count == lower.utf8CodeUnitCount else { return false }
        let p = lower.utf8Start
        var k = 0
        for b in a {
            let l = b >= 65 && b <= 90 ? b | 0x20 : b
            if l != p[k] { return false }
            k += 1
        }
        return true
    }
}

/// The request head of the uwsgi protocol: modifier1, the vars' size (little-endian 16 bits),
/// modifier2, then each var as a 16-bit little-endian length and bytes, name then value.
public enum Uwsgi {
    /// Appends one var; false when a name or value is longer than 65535 bytes.
    @discardableResult
    public static func appendVar<N: Collection, V: Collection>(name: N, value: V, into out: inout [UInt8]) -> Bool
        where N.Element == UInt8, V.Element == UInt8 {
        guard name.count <= 65535, value.count <= 65535 else { return false }
        out += [UInt8(truncatingIfNeeded: name.count), UInt8(truncatingIfNeeded: name.count >> 8)]
        out += name
        out += [UInt8(truncatingIfNeeded: value.count), UInt8(truncatingIfNeeded: value.count >> 8)]
        out += value
        return true
    }

    /// The 4-byte packet header for `varsSize` bytes of vars; nil when they exceed 65535 bytes.
    public static func header(varsSize: Int, modifier1: UInt8, modifier2: UInt8) -> [UInt8]? {
        guard varsSize <= 65535 else { return nil }
        return [modifier1, UInt8(truncatingIfNeeded: varsSize), UInt8(truncatingIfNeeded: varsSize >> 8), modifier2]
    }

    /// Decodes a packet's vars (for tests and tools); nil when malformed.
    public static func decode(_ b: [UInt8]) -> (modifier1: UInt8, modifier2: UInt8, vars: [(name: [UInt8], value: [UInt8])])? {
        guard b.count >= 4 else { return nil }
        let size = Int(b[1]) | Int(b[2]) << 8
        guard b.count >= 4 + size else { return nil }
        var i = 4
        var vars: [([UInt8], [UInt8])] = []
        func field() -> [UInt8]? {
            guard i + 2 <= 4 + size else { return nil }
            let n = Int(b[i]) | Int(b[i + 1]) << 8
            i += 2
            guard i + n <= 4 + size else { return nil }
            defer { i += n }
            return Array(b[i..<(i + n)])
        }
        while i < 4 + size {
            guard let k = field(), let v = field() else { return nil }
            vars.append((k, v))
        }
        return (b[0], b[3], vars)
    }
}
