/// HTTP/2 frame types (RFC 9113 §6). Unknown types are kept as their number and ignored.
public enum H2FrameType: UInt8, Sendable {
    case data = 0x0
    case headers = 0x1
    case priority = 0x2
    case rstStream = 0x3
    case settings = 0x4
    case pushPromise = 0x5
    case ping = 0x6
    case goaway = 0x7
    case windowUpdate = 0x8
    case continuation = 0x9
}

/// Frame flags (RFC 9113 §6); which apply depends on the type.
public enum H2Flags {
    /// DATA and HEADERS: the last frame of the stream from this side.
    public static let endStream: UInt8 = 0x1
    /// SETTINGS and PING.
    public static let ack: UInt8 = 0x1
    /// HEADERS and CONTINUATION: the header block is complete.
    public static let endHeaders: UInt8 = 0x4
    /// DATA and HEADERS: a Pad Length octet and padding.
    public static let padded: UInt8 = 0x8
    /// HEADERS: the 5 octets of the deprecated priority scheme.
    public static let priority: UInt8 = 0x20
}

/// Error codes of RST_STREAM and GOAWAY (RFC 9113 §7).
public enum H2ErrorCode: UInt32, Sendable {
    case noError = 0x0
    case protocolError = 0x1
    case internalError = 0x2
    case flowControlError = 0x3
    case settingsTimeout = 0x4
    case streamClosed = 0x5
    case frameSizeError = 0x6
    case refusedStream = 0x7
    case cancel = 0x8
    case compressionError = 0x9
    case connectError = 0xA
    case enhanceYourCalm = 0xB
    case inadequateSecurity = 0xC
    case http11Required = 0xD
}

/// SETTINGS parameters (RFC 9113 §6.5.2).
public enum H2SettingID: UInt16, Sendable {
    case headerTableSize = 0x1
    case enablePush = 0x2
    case maxConcurrentStreams = 0x3
    case initialWindowSize = 0x4
    case maxFrameSize = 0x5
    case maxHeaderListSize = 0x6
}

/// A protocol error found while reading: of the whole connection (GOAWAY) or of one stream
/// (RST_STREAM), as RFC 9113 §5.4 distinguishes them. `reason` is for the error log.
public enum H2Error: Error, Equatable, Sendable {
    case connection(H2ErrorCode, reason: StaticString)
    case stream(UInt32, H2ErrorCode, reason: StaticString)

    /// Equal kind, stream and code (the reason text is not compared).
    public static func == (a: H2Error, b: H2Error) -> Bool {
        switch (a, b) {
        case (.connection(let x, _), .connection(let y, _)): x == y
        case (.stream(let i, let x, _), .stream(let j, let y, _)): i == j && x == y
        default: false
        }
    }

    /// The code sent in RST_STREAM or GOAWAY.
    public var code: H2ErrorCode {
        switch self {
        case .connection(let c, _), .stream(_, let c, _): c
        }
    }

    /// Why, for the error log.
    public var reason: String {
        switch self {
        case .connection(_, let r), .stream(_, _, let r): r.description
        }
    }
}

/// Protocol constants.
public enum H2 {
    /// The client connection preface (RFC 9113 §3.4).
    public static let preface: [UInt8] = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
    /// Octets of a frame header.
    public static let frameHeaderSize = 9
    /// Initial flow-control window of streams and of the connection (§6.9.2).
    public static let defaultWindow = 65_535
    /// Largest flow-control window (2^31 − 1).
    public static let maxWindow = Int(Int32.max)
    /// SETTINGS_MAX_FRAME_SIZE's initial value and minimum.
    public static let defaultMaxFrameSize = 16_384
    /// SETTINGS_MAX_FRAME_SIZE's maximum.
    public static let maxMaxFrameSize = (1 << 24) - 1

    /// How much of `b` matches the preface: `.complete` (all 24 octets), `.partial` (a prefix
    /// of it, wait for more) or `.mismatch` (not HTTP/2; an HTTP/1 request is refused at its
    /// first octet that differs).
    public static func checkPreface(_ b: UnsafeRawBufferPointer) -> PrefaceCheck {
        let n = min(b.count, preface.count)
        for i in 0..<n where b[i] != preface[i] { return .mismatch }
        return n == preface.count ? .complete : .partial
    }

    /// Result of `checkPreface`.
    public enum PrefaceCheck: Sendable { case complete, partial, mismatch }
}

/// The 9-octet frame header (RFC 9113 §4.1).
public struct H2FrameHeader: Sendable, Equatable {
    /// Payload length.
    public var length: Int
    /// The raw type octet; `type` is nil for unknown (ignored) types.
    public var rawType: UInt8
    /// Flags (`H2Flags`).
    public var flags: UInt8
    /// Stream identifier, 0 for the connection.
    public var streamID: UInt32

    /// A header of a known type.
    public init(length: Int, type: H2FrameType, flags: UInt8 = 0, streamID: UInt32) {
        self.length = length
        self.rawType = type.rawValue
        self.flags = flags
        self.streamID = streamID
    }

    /// A header of any type octet.
    public init(length: Int, rawType: UInt8, flags: UInt8, streamID: UInt32) {
        self.length = length
        self.rawType = rawType
        self.flags = flags
        self.streamID = streamID
    }

    /// The type, nil when unknown (such frames are ignored, §4.1).
    public var type: H2FrameType? { H2FrameType(rawValue: rawType) }

    @inline(__always) public func has(_ flag: UInt8) -> Bool { flags & flag != 0 }

    /// Reads a header from the first 9 octets of `b` (the reserved bit of the id is dropped).
    @inline(__always)
    public static func read(_ b: UnsafeRawBufferPointer, at i: Int = 0) -> H2FrameHeader {
        let length = Int(b[i]) << 16 | Int(b[i + 1]) << 8 | Int(b[i + 2])
        let sid = (UInt32(b[i + 5]) << 24 | UInt32(b[i + 6]) << 16 | UInt32(b[i + 7]) << 8 | UInt32(b[i + 8])) & 0x7FFF_FFFF
        return H2FrameHeader(length: length, rawType: b[i + 3], flags: b[i + 4], streamID: sid)
    }
}

/// A complete frame found in the caller's buffer: its header and where its payload lies.
public struct H2Frame: Sendable, Equatable {
    /// The 9-octet header.
    public var header: H2FrameHeader
    /// Payload octets as a range of the buffer given to `H2FrameParser.next`.
    public var payload: Range<Int>
    /// Octets of the buffer this frame takes (header included): drop them once handled.
    public var end: Int { payload.upperBound }
}

/// Finds frames in bytes that arrive in pieces. It copies nothing: the caller keeps unread
/// bytes in its buffer (as it does for HTTP/1 heads) and calls `next` again when more arrive;
/// a frame is returned once all its octets are there, so feeding one octet at a time or all
/// at once gives the same frames. A header announcing more than `maxFrameSize` is refused as
/// soon as its 9 octets are in, before the payload is waited for (RFC 9113 §4.2).
public struct H2FrameParser: Sendable {
    /// Our SETTINGS_MAX_FRAME_SIZE: the largest payload the peer may send.
    public var maxFrameSize: Int

    /// - Parameter maxFrameSize: the SETTINGS_MAX_FRAME_SIZE we advertised.
    public init(maxFrameSize: Int = H2.defaultMaxFrameSize) {
        self.maxFrameSize = maxFrameSize
    }

    /// The first complete frame at `b[start...]`, nil when more octets are needed.
    @inline(__always)
    public func next(_ b: UnsafeRawBufferPointer, from start: Int = 0) throws(H2Error) -> H2Frame? {
        guard b.count - start >= H2.frameHeaderSize else { return nil }
        let h = H2FrameHeader.read(b, at: start)
        if h.length > maxFrameSize { throw .connection(.frameSizeError, reason: "frame larger than SETTINGS_MAX_FRAME_SIZE") }
        let p = start + H2.frameHeaderSize
        guard b.count - p >= h.length else { return nil }
        return H2Frame(header: h, payload: p..<p + h.length)
    }

    // MARK: Payloads (each checks its frame's layout; RFC 9113 §6)

    /// DATA: the data without padding.
    public static func dataPayload(_ f: H2Frame, _ b: UnsafeRawBufferPointer) throws(H2Error) -> Range<Int> {
        if f.header.streamID == 0 { throw .connection(.protocolError, reason: "DATA on stream 0") }
        return try unpadded(f, b)
    }

    /// HEADERS: the header block fragment without padding and priority fields; the priority's
    /// dependency is returned so that a stream depending on itself can be refused (§5.3.1).
    public static func headersPayload(_ f: H2Frame, _ b: UnsafeRawBufferPointer) throws(H2Error) -> (fragment: Range<Int>, dependency: UInt32?) {
        if f.header.streamID == 0 { throw .connection(.protocolError, reason: "HEADERS on stream 0") }
        var r = try unpadded(f, b)
        var dependency: UInt32? = nil
        if f.header.has(H2Flags.priority) {
            guard r.count >= 5 else { throw .connection(.frameSizeError, reason: "HEADERS too short for its priority") }
            dependency = readUInt32(b, r.lowerBound) & 0x7FFF_FFFF
            r = r.lowerBound + 5..<r.upperBound
        }
        return (r, dependency)
    }

    /// Strips the Pad Length octet and the padding of a PADDED frame.
    @inline(__always)
    static func unpadded(_ f: H2Frame, _ b: UnsafeRawBufferPointer) throws(H2Error) -> Range<Int> {
        guard f.header.has(H2Flags.padded) else { return f.payload }
        guard f.payload.count >= 1 else { throw .connection(.frameSizeError, reason: "padded frame without Pad Length") }
        let pad = Int(b[f.payload.lowerBound])
        guard pad < f.payload.count else { throw .connection(.protocolError, reason: "padding longer than the payload") }
        return f.payload.lowerBound + 1..<f.payload.upperBound - pad
    }

    /// PRIORITY: parsed for its layout and the self-dependency rule, then ignored (RFC 9113
    /// deprecates the priority scheme).
    public static func checkPriority(_ f: H2Frame, _ b: UnsafeRawBufferPointer) throws(H2Error) {
        if f.header.streamID == 0 { throw .connection(.protocolError, reason: "PRIORITY on stream 0") }
        guard f.payload.count == 5 else { throw .stream(f.header.streamID, .frameSizeError, reason: "PRIORITY of wrong length") }
        if readUInt32(b, f.payload.lowerBound) & 0x7FFF_FFFF == f.header.streamID {
            throw .stream(f.header.streamID, .protocolError, reason: "stream depends on itself")
        }
    }

    /// RST_STREAM: the error code.
    public static func rstStreamCode(_ f: H2Frame, _ b: UnsafeRawBufferPointer) throws(H2Error) -> UInt32 {
        if f.header.streamID == 0 { throw .connection(.protocolError, reason: "RST_STREAM on stream 0") }
        guard f.payload.count == 4 else { throw .connection(.frameSizeError, reason: "RST_STREAM of wrong length") }
        return readUInt32(b, f.payload.lowerBound)
    }

    /// SETTINGS: checks the layout; `forEachSetting` then reads the parameters.
    public static func checkSettings(_ f: H2Frame) throws(H2Error) {
        if f.header.streamID != 0 { throw .connection(.protocolError, reason: "SETTINGS on a stream") }
        if f.header.has(H2Flags.ack) {
            guard f.payload.isEmpty else { throw .connection(.frameSizeError, reason: "SETTINGS ACK with a payload") }
        } else if f.payload.count % 6 != 0 {
            throw .connection(.frameSizeError, reason: "SETTINGS length not a multiple of 6")
        }
    }

    /// Calls `body` with each (identifier, value) pair of a SETTINGS payload.
    @inline(__always)
    public static func forEachSetting(_ f: H2Frame, _ b: UnsafeRawBufferPointer, _ body: (UInt16, UInt32) throws(H2Error) -> Void) throws(H2Error) {
        var i = f.payload.lowerBound
        while i + 6 <= f.payload.upperBound {
            try body(UInt16(b[i]) << 8 | UInt16(b[i + 1]), readUInt32(b, i + 2))
            i += 6
        }
    }

    /// PING: checks the layout (8 octets on stream 0).
    public static func checkPing(_ f: H2Frame) throws(H2Error) {
        if f.header.streamID != 0 { throw .connection(.protocolError, reason: "PING on a stream") }
        guard f.payload.count == 8 else { throw .connection(.frameSizeError, reason: "PING of wrong length") }
    }

    /// GOAWAY: last stream id and error code.
    public static func goaway(_ f: H2Frame, _ b: UnsafeRawBufferPointer) throws(H2Error) -> (lastStreamID: UInt32, code: UInt32) {
        if f.header.streamID != 0 { throw .connection(.protocolError, reason: "GOAWAY on a stream") }
        guard f.payload.count >= 8 else { throw .connection(.frameSizeError, reason: "GOAWAY too short") }
        return (readUInt32(b, f.payload.lowerBound) & 0x7FFF_FFFF, readUInt32(b, f.payload.lowerBound + 4))
    }

    /// WINDOW_UPDATE: the increment (1…2^31−1). A zero increment is an error of the stream it
    /// names, or of the connection on stream 0 (§6.9).
    public static func windowIncrement(_ f: H2Frame, _ b: UnsafeRawBufferPointer) throws(H2Error) -> Int {
        guard f.payload.count == 4 else { throw .connection(.frameSizeError, reason: "WINDOW_UPDATE of wrong length") }
        let inc = Int(readUInt32(b, f.payload.lowerBound) & 0x7FFF_FFFF)
        if inc == 0 {
            if f.header.streamID == 0 { throw .connection(.protocolError, reason: "WINDOW_UPDATE of 0 on the connection") }
            throw .stream(f.header.streamID, .protocolError, reason: "WINDOW_UPDATE of 0")
        }
        return inc
    }

    @inline(__always)
    static func readUInt32(_ b: UnsafeRawBufferPointer, _ i: Int) -> UInt32 {
        UInt32(b[i]) << 24 | UInt32(b[i + 1]) << 16 | UInt32(b[i + 2]) << 8 | UInt32(b[i + 3])
    }
}

/// Writes frames at the end of a byte buffer (the connection's output).
public enum H2FrameWriter {
    @inline(__always)
    public static func header(_ length: Int, _ type: H2FrameType, _ flags: UInt8, _ streamID: UInt32, into out: inout [UInt8]) {
        // Made on the stack and appended at once (nine single appends cost nine uniqueness checks).
        let id = streamID & 0x7FFF_FFFF
        let h: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (
            UInt8(truncatingIfNeeded: length >> 16), UInt8(truncatingIfNeeded: length >> 8), UInt8(truncatingIfNeeded: length),
            type.rawValue, flags,
            UInt8(truncatingIfNeeded: id >> 24), UInt8(truncatingIfNeeded: id >> 16), UInt8(truncatingIfNeeded: id >> 8), UInt8(truncatingIfNeeded: id))
        withUnsafeBytes(of: h) { out.appendRaw($0) }
    }

    @inline(__always)
    static func appendUInt32(_ v: UInt32, into out: inout [UInt8]) {
        out.append(UInt8(truncatingIfNeeded: v >> 24))
        out.append(UInt8(truncatingIfNeeded: v >> 16))
        out.append(UInt8(truncatingIfNeeded: v >> 8))
        out.append(UInt8(truncatingIfNeeded: v))
    }

    /// SETTINGS with the given parameters.
    public static func settings(_ params: [(H2SettingID, UInt32)], into out: inout [UInt8]) {
        header(params.count * 6, .settings, 0, 0, into: &out)
        for (id, v) in params {
            out.append(UInt8(id.rawValue >> 8))
            out.append(UInt8(id.rawValue & 0xFF))
            appendUInt32(v, into: &out)
        }
    }

    /// SETTINGS with ACK and no payload.
    public static func settingsAck(into out: inout [UInt8]) {
        header(0, .settings, H2Flags.ack, 0, into: &out)
    }

    /// PING (an ACK echoes the peer's 8 octets).
    public static func ping(_ opaque: UnsafeRawBufferPointer, ack: Bool, into out: inout [UInt8]) {
        header(8, .ping, ack ? H2Flags.ack : 0, 0, into: &out)
        out.append(contentsOf: opaque.prefix(8))
    }

    /// GOAWAY with the last stream id we processed and the code, no debug data.
    public static func goaway(lastStreamID: UInt32, code: H2ErrorCode, into out: inout [UInt8]) {
        header(8, .goaway, 0, 0, into: &out)
        appendUInt32(lastStreamID & 0x7FFF_FFFF, into: &out)
        appendUInt32(code.rawValue, into: &out)
    }

    /// RST_STREAM of one stream.
    public static func rstStream(_ streamID: UInt32, code: H2ErrorCode, into out: inout [UInt8]) {
        header(4, .rstStream, 0, streamID, into: &out)
        appendUInt32(code.rawValue, into: &out)
    }

    /// WINDOW_UPDATE of a stream, or of the connection on stream 0.
    public static func windowUpdate(_ streamID: UInt32, increment: Int, into out: inout [UInt8]) {
        header(4, .windowUpdate, 0, streamID, into: &out)
        appendUInt32(UInt32(increment) & 0x7FFF_FFFF, into: &out)
    }

    /// One DATA frame carrying `data` (which must fit the peer's frame size).
    public static func data(_ streamID: UInt32, _ data: UnsafeRawBufferPointer, endStream: Bool, into out: inout [UInt8]) {
        header(data.count, .data, endStream ? H2Flags.endStream : 0, streamID, into: &out)
        out.appendRaw(data)
    }

    /// A header block split into HEADERS and CONTINUATION frames of at most `maxFrameSize`.
    public static func headers(_ streamID: UInt32, block: UnsafeRawBufferPointer, endStream: Bool, maxFrameSize: Int, into out: inout [UInt8]) {
        var i = 0
        var first = true
        repeat {
            let n = min(maxFrameSize, block.count - i)
            let last = i + n == block.count
            var flags: UInt8 = last ? H2Flags.endHeaders : 0
            if first && endStream { flags |= H2Flags.endStream }
            header(n, first ? .headers : .continuation, flags, streamID, into: &out)
            out.appendRaw(UnsafeRawBufferPointer(rebasing: block[i..<i + n]))
            i += n
            first = false
        } while i < block.count
    }
}

extension Array where Element == UInt8 {
    /// Appends raw octets as typed ones: one copy (a raw buffer, as a plain Sequence, costs
    /// ≈100 instructions more per call).
    @inline(__always)
    mutating func appendRaw(_ b: UnsafeRawBufferPointer) {
        if !b.isEmpty { b.withMemoryRebound(to: UInt8.self) { append(contentsOf: $0) } }
    }

    /// `withUnsafeBytes` that keeps a typed error (`withUnsafeBufferPointer` does, the other
    /// does not).
    @inline(__always)
    func withBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try withUnsafeBufferPointer { (p) throws(E) -> R in try body(UnsafeRawBufferPointer(p)) }
    }
}
