/// RESP2 request parsing and reply encoding (pure; no I/O).
public enum RESP {
    public enum ParseError: Error, Equatable {
        case protocolError(String)
    }

    /// Parses one command (a RESP array of bulk strings, or an inline command line) from `b`.
    /// Returns the arguments and the bytes consumed, or nil when more input is needed.
    public static func parseCommand(_ b: UnsafeRawBufferPointer) throws(ParseError) -> (args: [[UInt8]], consumed: Int)? {
        var args: [[UInt8]] = []
        guard let used = try parseCommand(b, into: &args) else { return nil }
        return (args, used)
    }

    /// Like `parseCommand`, reusing `args`' arrays (no allocation for an argument whose previous
    /// buffer nobody else holds). Returns the bytes consumed, or nil when more input is needed
    /// (`args` is then unspecified).
    public static func parseCommand(_ b: UnsafeRawBufferPointer, into args: inout [[UInt8]]) throws(ParseError) -> Int? {
        guard !b.isEmpty else { return nil }
        if b[0] != UInt8(ascii: "*") {
            guard let (a, used) = try parseInline(b) else { return nil }
            args = a
            return used
        }
        guard let (count, afterCount) = try readInteger(b, from: 1) else { return nil }
        if count > 1024 * 1024 { throw .protocolError("invalid multibulk length") }
        if count <= 0 { args.removeAll(keepingCapacity: true); return afterCount }
        var i = afterCount
        var n = 0
        for _ in 0..<count {
            guard i < b.count else { return nil }
            guard b[i] == UInt8(ascii: "$") else {
                throw .protocolError("expected '$', got '\(String(decoding: [b[i]], as: UTF8.self))'")
            }
            guard let (len, afterLen) = try readInteger(b, from: i + 1) else { return nil }
            if len < 0 || len > 512 * 1024 * 1024 { throw .protocolError("invalid bulk length") }
            guard afterLen + len + 2 <= b.count else { return nil }
            guard b[afterLen + len] == 0x0D, b[afterLen + len + 1] == 0x0A else { throw .protocolError("invalid bulk terminator") }
            let src = UnsafeRawBufferPointer(rebasing: b[afterLen..<(afterLen + len)])
            if n < args.count {
                args[n].removeAll(keepingCapacity: true)
                args[n].append(contentsOf: src)
            } else {
                args.append(Array(src))
            }
            n += 1
            i = afterLen + len + 2
        }
        if args.count > n { args.removeLast(args.count - n) }
        return i
    }

    /// `123\r\n` starting at `from`; nil when the line is incomplete.
    static func readInteger(_ b: UnsafeRawBufferPointer, from: Int) throws(ParseError) -> (Int, Int)? {
        var i = from
        var v = 0
        var neg = false
        if i < b.count && b[i] == UInt8(ascii: "-") { neg = true; i += 1 }
        let start = i
        while i < b.count && b[i] >= 0x30 && b[i] <= 0x39 {
            v = v * 10 + Int(b[i] - 0x30)
            if v > Int(Int32.max) { throw .protocolError("invalid length") }
            i += 1
        }
        // Checked before waiting for the line end: a number may not be longer complete than it
        // may grow while incomplete, or the answer would depend on how the bytes arrived.
        if i - from > 12 { throw .protocolError("invalid length") }
        guard i + 1 < b.count else { return nil }
        guard i > start, b[i] == 0x0D, b[i + 1] == 0x0A else { throw .protocolError("invalid length") }
        return (neg ? -v : v, i + 2)
    }

    /// Inline commands (`PING\r\n`, as telnet users type them), split on spaces with quotes.
    static func parseInline(_ b: UnsafeRawBufferPointer) throws(ParseError) -> (args: [[UInt8]], consumed: Int)? {
        var end = 0
        while end < b.count && b[end] != 0x0A { end += 1 }
        guard end < b.count else {
            if b.count > 64 * 1024 { throw .protocolError("too big inline request") }
            return nil
        }
        var lineEnd = end
        if lineEnd > 0 && b[lineEnd - 1] == 0x0D { lineEnd -= 1 }
        var args: [[UInt8]] = []
        var cur: [UInt8] = []
        var inWord = false
        var quote: UInt8 = 0
        var i = 0
        while i < lineEnd {
            let c = b[i]
            if quote != 0 {
                if c == quote { quote = 0 } else if c == UInt8(ascii: "\\") && quote == UInt8(ascii: "\"") && i + 1 < lineEnd {
                    i += 1
                    switch b[i] {
                    case UInt8(ascii: "n"): cur.append(0x0A)
                    case UInt8(ascii: "r"): cur.append(0x0D)
                    case UInt8(ascii: "t"): cur.append(0x09)
                    default: cur.append(b[i])
                    }
                } else { cur.append(c) }
            } else if c == 0x20 || c == 0x09 {
                if inWord { args.append(cur); cur = []; inWord = false }
            } else if (c == UInt8(ascii: "\"") || c == UInt8(ascii: "'")) && !inWord {
                quote = c
                inWord = true
            } else {
                cur.append(c)
                inWord = true
            }
            i += 1
        }
        if quote != 0 { throw .protocolError("unbalanced quotes in request") }
        if inWord { args.append(cur) }
        return (args, end + 1)
    }
}

/// Builds replies into a byte array without intermediate strings.
public struct ReplyWriter {
    public var bytes: [UInt8] = []

    public init() {}

    @inline(__always) mutating func raw(_ s: StaticString) {
        bytes.append(contentsOf: UnsafeBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    @inline(__always) public mutating func decimal(_ v: Int) {
        if v < 0 { bytes.append(UInt8(ascii: "-")) }
        var n = v.magnitude
        var tmp: (UInt64, UInt64, UInt64) = (0, 0, 0)
        var len = 0
        withUnsafeMutableBytes(of: &tmp) { t in
            repeat {
                t[23 - len] = UInt8(truncatingIfNeeded: 0x30 + n % 10)
                n /= 10
                len += 1
            } while n > 0
            bytes.append(contentsOf: t[(24 - len)...])
        }
    }

    public mutating func simple(_ s: String) {
        bytes.append(UInt8(ascii: "+"))
        bytes.append(contentsOf: s.utf8)
        raw("\r\n")
    }
    public mutating func ok() { raw("+OK\r\n") }
    public mutating func error(_ s: String) {
        bytes.append(UInt8(ascii: "-"))
        bytes.append(contentsOf: s.utf8)
        raw("\r\n")
    }
    /// An error reply from bytes (texts that quote what the client sent, byte for byte).
    public mutating func error(_ b: [UInt8]) {
        bytes.append(UInt8(ascii: "-"))
        bytes.append(contentsOf: b)
        raw("\r\n")
    }
    public mutating func integer(_ v: Int) {
        bytes.append(UInt8(ascii: ":"))
        decimal(v)
        raw("\r\n")
    }
    public mutating func bulk(_ v: [UInt8]) {
        bytes.append(UInt8(ascii: "$"))
        decimal(v.count)
        raw("\r\n")
        bytes.append(contentsOf: v)
        raw("\r\n")
    }
    public mutating func bulk(_ s: String) { bulk(Array(s.utf8)) }
    public mutating func null() { raw("$-1\r\n") }
    public mutating func nullArray() { raw("*-1\r\n") }
    public mutating func arrayHeader(_ n: Int) {
        bytes.append(UInt8(ascii: "*"))
        decimal(n)
        raw("\r\n")
    }
    public mutating func array(_ items: [[UInt8]]) {
        arrayHeader(items.count)
        for i in items { bulk(i) }
    }
}

/// Encodes a command as a RESP array (for the append-only file and clients).
public func encodeCommand(_ args: [[UInt8]]) -> [UInt8] {
    var w = ReplyWriter()
    w.array(args)
    return w.bytes
}
