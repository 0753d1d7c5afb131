import Glibc

/// The DNS record types lb asks for and follows.
public enum DNSType: UInt16, Sendable {
    case a = 1
    case cname = 5
    case soa = 6
    case aaaa = 28
    case srv = 33
}

/// The data of one resource record, for the types lb reads; others are kept as `.other`.
public enum DNSRecordData: Sendable, Hashable {
    /// An IPv4 or IPv6 address as text (`127.0.0.1`, `::1`).
    case address(String)
    case cname(String)
    case srv(priority: UInt16, weight: UInt16, port: UInt16, target: String)
    /// SOA: only the negative-caching time (RFC 2308: the record's `minimum`).
    case soa(minimum: UInt32)
    case other
}

/// One resource record. Names are lowercased and have no trailing dot.
public struct DNSRecord: Sendable, Equatable {
    public var name: String
    public var type: UInt16
    public var ttl: UInt32
    public var data: DNSRecordData

    public init(name: String, type: UInt16, ttl: UInt32, data: DNSRecordData) {
        self.name = name
        self.type = type
        self.ttl = ttl
        self.data = data
    }
}

/// Why a message could not be read.
public struct DNSParseError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ m: String) { message = m }
    public var description: String { message }
}

/// A parsed DNS response: header bits, the question, and the three record sections.
public struct DNSResponse: Sendable, Equatable {
    public var id: UInt16
    /// TC: the answer did not fit in the UDP datagram; ask again over TCP.
    public var truncated: Bool
    /// 0 no error, 1 FORMERR, 2 SERVFAIL, 3 NXDOMAIN, 4 NOTIMP, 5 REFUSED.
    public var rcode: Int
    public var questionName: String
    public var questionType: UInt16
    public var answers: [DNSRecord]
    public var authority: [DNSRecord]
    public var additional: [DNSRecord]
}

/// The DNS message codec (RFC 1035): queries built, responses parsed with name compression.
/// Pure: no sockets, no clock.
public enum DNSMessage {
    /// A standard query (RD set) for one name and type. Nil for a name that is not a valid DNS name
    /// (an empty label, a label over 63 bytes, over 255 bytes in all).
    public static func query(id: UInt16, name: String, type: DNSType) -> [UInt8]? {
        var out: [UInt8] = [UInt8(id >> 8), UInt8(id & 0xFF), 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]
        guard let encoded = encodeName(name) else { return nil }
        out += encoded
        out += [UInt8(type.rawValue >> 8), UInt8(type.rawValue & 0xFF), 0, 1]
        return out
    }

    /// A name in wire form: length-prefixed labels and a zero byte.
    static func encodeName(_ name: String) -> [UInt8]? {
        var n = Array(name.utf8)
        if n.last == UInt8(ascii: ".") { n.removeLast() }
        guard !n.isEmpty, n.count <= 253 else { return nil }
        var out: [UInt8] = []
        for label in n.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false) {
            guard !label.isEmpty, label.count <= 63 else { return nil }
            out.append(UInt8(label.count))
            out += label
        }
        out.append(0)
        return out
    }

    /// Parses a response. Throws on anything malformed: short header, a name running past the
    /// end, compression pointers that loop or point forward, record data shorter than its type
    /// needs.
    public static func parse(_ b: [UInt8]) throws(DNSParseError) -> DNSResponse {
        guard b.count >= 12 else { throw DNSParseError("short DNS header (\(b.count) bytes)") }
        func u16(_ i: Int) -> Int { Int(b[i]) << 8 | Int(b[i + 1]) }
        func u32(_ i: Int) -> UInt32 { UInt32(b[i]) << 24 | UInt32(b[i + 1]) << 16 | UInt32(b[i + 2]) << 8 | UInt32(b[i + 3]) }
        let id = UInt16(u16(0))
        let flags = u16(2)
        guard flags & 0x8000 != 0 else { throw DNSParseError("not a response (QR bit clear)") }
        let qd = u16(4), an = u16(6), ns = u16(8), ar = u16(10)
        guard qd == 1 else { throw DNSParseError("\(qd) questions in the response, expected 1") }
        var i = 12
        let qname = try readName(b, &i)
        guard i + 4 <= b.count else { throw DNSParseError("question runs past the end") }
        let qtype = UInt16(u16(i))
        i += 4
        func records(_ n: Int) throws(DNSParseError) -> [DNSRecord] {
            var out: [DNSRecord] = []
            out.reserveCapacity(n)
            for _ in 0..<n {
                let name = try readName(b, &i)
                guard i + 10 <= b.count else { throw DNSParseError("record header runs past the end") }
                let type = UInt16(u16(i))
                let ttl = u32(i + 4)
                let len = u16(i + 8)
                i += 10
                guard i + len <= b.count else { throw DNSParseError("record data runs past the end") }
                let data: DNSRecordData
                switch DNSType(rawValue: type) {
                case .a?:
                    guard len == 4 else { throw DNSParseError("A record of \(len) bytes") }
                    data = .address("\(b[i]).\(b[i + 1]).\(b[i + 2]).\(b[i + 3])")
                case .aaaa?:
                    guard len == 16 else { throw DNSParseError("AAAA record of \(len) bytes") }
                    var a = in6_addr()
                    withUnsafeMutableBytes(of: &a) { $0.copyBytes(from: b[i..<(i + 16)]) }
                    var buf = [CChar](repeating: 0, count: 64)
                    inet_ntop(AF_INET6, &a, &buf, 64)
                    data = .address(String(cString: buf))
                case .cname?:
                    var j = i
                    data = .cname(try readName(b, &j))
                    guard j <= i + len else { throw DNSParseError("CNAME runs past its record") }
                case .srv?:
                    guard len >= 7 else { throw DNSParseError("SRV record of \(len) bytes") }
                    var j = i + 6
                    let target = try readName(b, &j)
                    guard j <= i + len else { throw DNSParseError("SRV target runs past its record") }
                    data = .srv(priority: UInt16(u16(i)), weight: UInt16(u16(i + 2)), port: UInt16(u16(i + 4)), target: target)
                case .soa?:
                    guard len >= 22 else { throw DNSParseError("SOA record of \(len) bytes") }
                    data = .soa(minimum: u32(i + len - 4))
                default:
                    data = .other
                }
                i += len
                out.append(DNSRecord(name: name, type: type, ttl: ttl, data: data))
            }
            return out
        }
        let answers = try records(an)
        let authority = try records(ns)
        let additional = try records(ar)
        return DNSResponse(id: id, truncated: flags & 0x0200 != 0, rcode: flags & 0x000F, questionName: qname, questionType: qtype,
                           answers: answers, authority: authority, additional: additional)
    }

    /// Reads a possibly compressed name at `i` and moves `i` past it (past the first pointer when
    /// there is one). Pointers must point backwards, so they cannot loop.
    static func readName(_ b: [UInt8], _ i: inout Int) throws(DNSParseError) -> String {
        var out: [UInt8] = []
        var p = i
        var jumped = false
        var limit = p
        while true {
            guard p < b.count else { throw DNSParseError("name runs past the end") }
            let len = Int(b[p])
            if len == 0 {
                p += 1
                break
            }
            switch len & 0xC0 {
            case 0xC0:
                guard p + 1 < b.count else { throw DNSParseError("name runs past the end") }
                let target = (len & 0x3F) << 8 | Int(b[p + 1])
                guard target < limit else { throw DNSParseError("compression pointer does not point backwards") }
                if !jumped { i = p + 2 }
                jumped = true
                limit = target
                p = target
            case 0x00:
                guard p + 1 + len <= b.count else { throw DNSParseError("label runs past the end") }
                if !out.isEmpty { out.append(UInt8(ascii: ".")) }
                for c in b[(p + 1)...(p + len)] { out.append(c >= 0x41 && c <= 0x5A ? c | 0x20 : c) }
                guard out.count <= 255 else { throw DNSParseError("name longer than 255 bytes") }
                p += 1 + len
            default:
                throw DNSParseError("unknown label type 0x\(String(len & 0xC0, radix: 16))")
            }
        }
        if !jumped { i = p }
        return String(decoding: out, as: UTF8.self)
    }
}

/// The outcome of asking for one name and type, after CNAMEs are followed.
public enum DNSLookupError: Error, Sendable, Equatable, CustomStringConvertible {
    /// RCODE from the server (2 SERVFAIL, 3 NXDOMAIN, 5 REFUSED, …).
    case rcode(Int)
    case timedOut
    /// No server could be reached (every one refused the connection).
    case unreachable(String)
    case malformed(String)

    /// nginx's form: `(3: Host not found)`, `(110: Operation timed out)`.
    public var description: String {
        switch self {
        case .rcode(let c):
            let names = [1: "Format error", 2: "Server failure", 3: "Host not found", 4: "Unimplemented", 5: "Operation refused"]
            return "(\(c): \(names[c] ?? "Unknown error"))"
        case .timedOut: return "(110: Operation timed out)"
        case .unreachable(let why): return "(\(why))"
        case .malformed(let why): return "(malformed response: \(why))"
        }
    }

    public var isNXDomain: Bool { self == .rcode(3) }
}

extension DNSResponse {
    /// The records of `type` that answer `name`, following a CNAME chain inside the answer section
    /// (at most 8 links), and the smallest TTL along the chain. For NXDOMAIN and other error codes,
    /// the error. A name with no records of the type (NODATA) is an empty success.
    public func records(for name: String, type: DNSType) -> Result<(records: [DNSRecordData], ttl: UInt32), DNSLookupError> {
        if rcode == 3 { return .failure(.rcode(3)) }
        if rcode != 0 { return .failure(.rcode(rcode)) }
        var current = lowercasedName(name)
        var ttl = UInt32.max
        var hops = 0
        while true {
            var out: [DNSRecordData] = []
            var alias: String?
            for r in answers where r.name == current {
                if r.type == type.rawValue {
                    out.append(r.data)
                    ttl = min(ttl, r.ttl)
                } else if r.type == DNSType.cname.rawValue, case .cname(let target) = r.data {
                    alias = target
                    ttl = min(ttl, r.ttl)
                }
            }
            if !out.isEmpty || alias == nil { return .success((out, out.isEmpty ? negativeTTL : ttl)) }
            hops += 1
            if hops > 8 { return .failure(.malformed("CNAME chain longer than 8")) }
            current = alias!
        }
    }

    /// How long an answer with nothing in it may be kept (RFC 2308: the SOA's TTL capped by its
    /// minimum); 0 without an SOA.
    public var negativeTTL: UInt32 {
        for r in authority where r.type == DNSType.soa.rawValue {
            if case .soa(let minimum) = r.data { return min(r.ttl, minimum) }
        }
        return 0
    }
}

/// A DNS name as compared: lowercased ASCII, no trailing dot.
public func lowercasedName(_ s: String) -> String {
    var b = Array(s.utf8)
    if b.last == UInt8(ascii: ".") { b.removeLast() }
    for k in b.indices where b[k] >= 0x41 && b[k] <= 0x5A { b[k] |= 0x20 }
    return String(decoding: b, as: UTF8.self)
}
