import Glibc

/// Limits and settings of one server-side HTTP/2 connection (nginx's `http2_*` directives).
public struct H2Config: Sendable {
    /// `http2_max_concurrent_streams`: SETTINGS_MAX_CONCURRENT_STREAMS; more → REFUSED_STREAM.
    public var maxConcurrentStreams = 128
    /// `http2_body_preread_size`: each stream's receive window (SETTINGS_INITIAL_WINDOW_SIZE).
    public var initialWindowSize = 65_536
    /// The connection's receive window, opened by WINDOW_UPDATE right after our SETTINGS (nginx
    /// opens it fully; the streams' windows bound what is buffered).
    public var connectionWindowSize = H2.maxWindow
    /// SETTINGS_MAX_FRAME_SIZE we accept. The runtime's read buffer must hold 9 + this.
    public var maxFrameSize = H2.defaultMaxFrameSize
    /// SETTINGS_HEADER_TABLE_SIZE: the HPACK table the client may use for its requests.
    public var headerTableSize = 4096
    /// `large_client_header_buffers` (number × size): cap on a decoded request header list
    /// (advertised as SETTINGS_MAX_HEADER_LIST_SIZE); beyond it, GOAWAY ENHANCE_YOUR_CALM as nginx.
    public var maxHeaderListSize = 32_768
    /// `large_client_header_buffers`'s size: cap on one name or value as sent (HPACK string
    /// literal); beyond it, GOAWAY ENHANCE_YOUR_CALM as nginx ("client sent too large header
    /// field").
    public var maxFieldSize = 8192
    /// Cap on a compressed header block (HEADERS + CONTINUATION) before it is decoded
    /// (CONTINUATION floods, CVE-2024-27316); beyond it, GOAWAY ENHANCE_YOUR_CALM.
    public var maxHeaderBlockSize = 32_768
    /// `http2_chunk_size`: the largest DATA frame we send.
    public var chunkSize = 8192
    /// The HPACK dynamic table our encoder uses for responses (at most what the client
    /// allows). 0, the default, as nginx and HAProxy: response fields are literals (static
    /// names indexed, Huffman when shorter), which costs no memory per connection and no table
    /// search per field; 4096 makes repeated response fields one octet each.
    public var responseTableSize = 0
    /// Streams the client may reset while we were still working on them (rapid reset,
    /// CVE-2023-44487), net of the streams completed normally; beyond it, GOAWAY
    /// ENHANCE_YOUR_CALM.
    public var resetBudget = 200
    /// SETTINGS, PING, PRIORITY, WINDOW_UPDATE, empty DATA or CONTINUATION and unknown frames the
    /// client may send, net of the frames of response we send (one back per HEADERS or DATA);
    /// beyond it, GOAWAY ENHANCE_YOUR_CALM.
    public var controlFrameBudget = 10_000
    /// While this much output waits to be written, `receive` reads no further frames (a client
    /// that sends PINGs but does not read the answers cannot grow our buffer).
    public var outboundHighWater = 1 << 20

    /// nginx's defaults.
    public init() {}
}

/// What the connection tells the runtime, appended by `receive(_:events:)`.
public enum H2Event: Sendable {
    /// A new request. Its body follows in `.data` events unless `endStream`.
    case request(H2Request)
    /// A new stream whose request nginx's HTTP/1 rules refuse (bad host, TRACE, CONNECT…): the
    /// runtime answers `error.status` on it with `sendHeaders` (the stream exists).
    case rejected(streamID: UInt32, HTTPError)
    /// Body octets of a stream: `payload` indexes the buffer given to `receive` (valid until the
    /// runtime drops those octets). Call `consumed(streamID:_:)` once they are taken, to reopen
    /// the stream's window. `endStream`: the body is complete (the payload may be empty).
    case data(streamID: UInt32, payload: Range<Int>, endStream: Bool)
    /// Trailers; the body is complete.
    case trailers(H2Trailers)
    /// The stream is gone (reset by the client, or by us for a stream error): drop its work.
    case reset(streamID: UInt32, H2ErrorCode)
    /// A stream whose `sendData` returned less than asked may send again.
    case windowOpened(streamID: UInt32)
    /// We sent GOAWAY for a connection error: write the pending output, then close.
    case goaway(H2ErrorCode, reason: StaticString)
    /// The client sent GOAWAY: no new streams will come; close when the streams are done.
    case peerGoAway(lastStreamID: UInt32, code: UInt32)
}

/// The server side of one HTTP/2 connection as a value: bytes in, events and output bytes out,
/// no I/O (as NIO's state machines). The runtime feeds what it reads to `receive`, acts on the
/// events, answers with `sendHeaders` / `sendData`, and writes `pendingOutput`.
///
/// Errors follow RFC 9113 §5.4: a stream error resets one stream (RST_STREAM) and the
/// connection goes on; a connection error writes GOAWAY with the last stream id and ends it.
public struct H2Connection: Sendable {
    /// Where the connection is. Data that exists only in one state lives in its case.
    enum State: Sendable {
        /// Waiting for the 24-octet client preface.
        case preface
        /// Preface read: the first frame must be SETTINGS.
        case firstSettings
        /// Frames.
        case frames
        /// In a header block: only CONTINUATION frames of this stream may come.
        case continuation(HeaderBlock)
        /// GOAWAY sent for a connection error; nothing more is read.
        case closed(H2ErrorCode)
    }

    /// A header block being collected from HEADERS and CONTINUATION frames (the fragments are in
    /// `blockBuffer`, owned by the connection so that its capacity is reused).
    struct HeaderBlock: Sendable {
        var streamID: UInt32
        var endStream: Bool
        var selfDependent: Bool
    }

    /// One stream the runtime knows (RFC 9113 §5.1: open or half-closed; closed streams are
    /// removed).
    struct Stream: Sendable {
        /// The client sent END_STREAM (half-closed remote).
        var remoteClosed: Bool
        /// We sent the response headers.
        var headersSent = false
        /// What we may still send (flow control, §6.9).
        var sendWindow: Int
        /// What the client may still send before our next WINDOW_UPDATE.
        var recvWindow: Int
        /// Octets received and consumed, not yet given back.
        var unacked = 0
        var contentLength: Int?
        var received = 0
        /// `sendData` came short: tell the runtime when the window opens.
        var blocked = false
    }

    /// The limits this connection was made with.
    public let config: H2Config
    /// The connection's receive window size in force (never below the protocol's default).
    let connectionWindowTarget: Int
    var state: State = .preface
    var streams = H2StreamTable<Stream>()
    /// Highest stream id the client opened (GOAWAY's last stream id).
    public private(set) var lastClientStreamID: UInt32 = 0
    var decoder: HPACKDecoder
    var encoder: HPACKEncoder
    var parser: H2FrameParser
    /// Reused: the decoded header list, the header block being collected, the block being encoded.
    var fields = HPACKHeaderList()
    var blockBuffer: [UInt8] = []
    /// The response header block being encoded (`beginHeaders` … `endHeaders`): its first
    /// `encodeCount` octets. Its count is its room: fields are written in place (one
    /// uniqueness check and one copy each, no growth), not appended.
    var encodeBuffer: [UInt8] = []
    var encodeCount = 0
    /// The dynamic-table encoder's output for one field, copied into the block.
    var encodeScratch: [UInt8] = []
    /// Requests the runtime is done with (`recycle`), for the next requests' layout: one is taken
    /// only when nothing else holds it.
    var spareRequests: [H2Request] = []
    static let maxSpareRequests = 32
    /// A spare request's octets at most this large (a large head's storage is not kept).
    static let maxSpareRequestCapacity = 8192
    var output: [UInt8] = []
    var outputStart = 0
    /// The output's capacity when the connection last went idle (at most 64 KiB), reserved again
    /// at the next response: a busy connection that pauses between bursts does not grow its
    /// output from nothing, copy by copy, after each pause (an idle one still holds none).
    var outputCapacityWhenBusy = 0

    // Peer settings.
    var peerInitialWindow = H2.defaultWindow
    var peerMaxFrameSize = H2.defaultMaxFrameSize
    /// The client acknowledged our SETTINGS: our initial window is in force.
    var settingsAcked = false
    var connectionSendWindow = H2.defaultWindow
    var connectionRecvWindow = H2.defaultWindow

    /// Streams recently reset (by us: frames still in flight are ignored; by the client: more
    /// frames are STREAM_CLOSED), as id | 1<<31 when the client reset it.
    var recentlyReset = [UInt32](repeating: 0, count: 32)
    var recentlyResetNext = 0

    // Flood accounting.
    var resetsCharged = 0
    var controlFramesCharged = 0
    /// We sent GOAWAY for a graceful stop: streams above `lastClientStreamID` at that moment
    /// are ignored, and so are their frames.
    public private(set) var goingAway = false
    var goAwayLastStreamID: UInt32 = .max
    /// The client sent GOAWAY.
    public private(set) var peerWentAway = false

    /// Starts a connection: our SETTINGS (and the connection window's WINDOW_UPDATE) are in the
    /// output at once, as a server may send them before the client's preface arrives.
    public init(config: H2Config = H2Config()) {
        self.config = config
        connectionWindowTarget = min(max(config.connectionWindowSize, H2.defaultWindow), H2.maxWindow)
        decoder = HPACKDecoder(maxTableSize: config.headerTableSize, maxHeaderListSize: config.maxHeaderListSize, maxFieldSize: config.maxFieldSize)
        encoder = HPACKEncoder(capacity: config.responseTableSize, peerTableSize: 4096)
        parser = H2FrameParser(maxFrameSize: config.maxFrameSize)
        var settings: [(H2SettingID, UInt32)] = [
            (.maxConcurrentStreams, UInt32(config.maxConcurrentStreams)),
            (.initialWindowSize, UInt32(config.initialWindowSize)),
            (.maxFrameSize, UInt32(config.maxFrameSize)),
            (.maxHeaderListSize, UInt32(config.maxHeaderListSize)),
            (.enablePush, 0),
        ]
        if decoder.maxTableSize != 4096 { settings.append((.headerTableSize, UInt32(decoder.maxTableSize))) }
        H2FrameWriter.settings(settings, into: &output)
        if connectionWindowTarget > H2.defaultWindow {
            H2FrameWriter.windowUpdate(0, increment: connectionWindowTarget - H2.defaultWindow, into: &output)
            connectionRecvWindow = connectionWindowTarget
        }
    }

    // MARK: Output

    /// Octets waiting to be written.
    public var pendingOutputCount: Int { output.count - outputStart }

    /// Calls `write` with the pending output; it returns how many octets it wrote.
    public mutating func writePendingOutput(_ write: (UnsafeRawBufferPointer) -> Int) {
        guard pendingOutputCount > 0 else { return }
        let n = output.withUnsafeBytes { b in write(UnsafeRawBufferPointer(rebasing: b[outputStart...])) }
        outputStart += n
        if outputStart == output.count {
            output.removeAll(keepingCapacity: true)
            outputStart = 0
        } else if outputStart > 65_536 {
            output.removeFirst(outputStart)
            outputStart = 0
        }
    }

    /// Moves the pending output to the caller (tests; a runtime that writes whole buffers).
    public mutating func takeOutput() -> [UInt8] {
        defer { output.removeAll(keepingCapacity: true); outputStart = 0 }
        return Array(output[outputStart...])
    }

    /// Streams open or half-closed.
    public var activeStreams: Int { streams.count }

    /// The connection ended with a connection error (GOAWAY sent).
    public var isClosed: Bool { if case .closed = state { true } else { false } }

    /// Whether responses may still be framed: until a connection error (a client's header
    /// block in progress does not stop our output).
    var canSend: Bool { !isClosed }

    /// The runtime is done with `r` (its head was taken): a later request may be laid out in it.
    public mutating func recycle(_ r: H2Request) {
        if spareRequests.count < H2Connection.maxSpareRequests && r.capacity <= H2Connection.maxSpareRequestCapacity {
            spareRequests.append(r)
        }
    }

    /// Frees buffers grown by earlier requests while no stream is active (idle connections).
    public mutating func releaseIdleMemory() {
        guard streams.isEmpty, case .frames = state else { return }
        fields = HPACKHeaderList()
        blockBuffer = []
        encodeBuffer = []
        encodeCount = 0
        encodeScratch = []
        spareRequests = []
        if pendingOutputCount == 0 {
            if output.capacity > 0 { outputCapacityWhenBusy = min(output.capacity, 65_536) }
            output = []
            outputStart = 0
        }
    }

    // MARK: Input

    /// Reads the frames complete in `input`, appending events. Returns how many octets were
    /// used: the runtime keeps the rest (an incomplete frame) and calls again when more arrive,
    /// or after writing output if it stopped at `outboundHighWater`. `.data` payload ranges
    /// index `input`.
    public mutating func receive(_ input: UnsafeRawBufferPointer, events: inout [H2Event]) -> Int {
        var at = 0
        while true {
            if case .closed = state { return input.count }
            if pendingOutputCount >= config.outboundHighWater { return at }
            if case .preface = state {
                switch H2.checkPreface(UnsafeRawBufferPointer(rebasing: input[at...])) {
                case .partial: return at
                case .mismatch:
                    connectionError(.connection(.protocolError, reason: "invalid connection preface"), events: &events)
                    return input.count
                case .complete:
                    at += H2.preface.count
                    state = .firstSettings
                }
            }
            let frame: H2Frame
            do {
                guard let f = try parser.next(input, from: at) else { return at }
                frame = f
            } catch {
                connectionError(error, events: &events)
                return input.count
            }
            at = frame.end
            do {
                try handle(frame, input, events: &events)
            } catch {
                switch error {
                case .connection: connectionError(error, events: &events)
                case .stream(let id, let code, _): resetStream(id, code, events: &events)
                }
            }
        }
    }

    mutating func handle(_ f: H2Frame, _ b: UnsafeRawBufferPointer, events: inout [H2Event]) throws(H2Error) {
        let h = f.header
        switch state {
        case .firstSettings:
            guard h.type == .settings, !h.has(H2Flags.ack) else {
                throw .connection(.protocolError, reason: "first frame is not SETTINGS")
            }
            state = .frames
        case .continuation(let block):
            guard h.type == .continuation else { throw .connection(.protocolError, reason: "frame inside a header block") }
            guard h.streamID == block.streamID else { throw .connection(.protocolError, reason: "CONTINUATION of another stream") }
            if f.payload.isEmpty && !h.has(H2Flags.endHeaders) { try chargeControlFrame() }
            try appendFragment(f.payload, b)
            if h.has(H2Flags.endHeaders) {
                state = .frames
                var buffer: [UInt8] = []
                swap(&buffer, &blockBuffer)
                defer {
                    buffer.removeAll(keepingCapacity: true)
                    swap(&buffer, &blockBuffer)
                }
                try buffer.withBytes { (bb) throws(H2Error) in
                    try headerBlock(block, bb, events: &events)
                }
            }
            return
        case .frames: break
        case .preface, .closed: return
        }
        guard let type = h.type else {
            try chargeControlFrame() // unknown frame type: ignored (§4.1), but not free
            return
        }
        switch type {
        case .data: try data(f, b, events: &events)
        case .headers: try headers(f, b, events: &events)
        case .priority:
            try chargeControlFrame()
            try H2FrameParser.checkPriority(f, b)
        case .rstStream: try rstStream(f, b, events: &events)
        case .settings: try settings(f, b, events: &events)
        case .pushPromise: throw .connection(.protocolError, reason: "PUSH_PROMISE from a client")
        case .ping:
            try H2FrameParser.checkPing(f)
            if !h.has(H2Flags.ack) {
                try chargeControlFrame()
                H2FrameWriter.ping(UnsafeRawBufferPointer(rebasing: b[f.payload]), ack: true, into: &output)
            }
        case .goaway:
            let g = try H2FrameParser.goaway(f, b)
            peerWentAway = true
            events.append(.peerGoAway(lastStreamID: g.lastStreamID, code: g.code))
        case .windowUpdate: try windowUpdate(f, b, events: &events)
        case .continuation: throw .connection(.protocolError, reason: "CONTINUATION without HEADERS")
        }
    }

    // MARK: Frames

    mutating func data(_ f: H2Frame, _ b: UnsafeRawBufferPointer, events: inout [H2Event]) throws(H2Error) {
        let sid = f.header.streamID
        let payload = try H2FrameParser.dataPayload(f, b)
        let endStream = f.header.has(H2Flags.endStream)
        // The whole frame counts against the windows, padding included (§6.9.1).
        let length = f.payload.count
        connectionRecvWindow -= length
        if connectionRecvWindow < 0 { throw .connection(.flowControlError, reason: "DATA beyond the connection window") }
        if connectionRecvWindow < connectionWindowTarget / 2 {
            H2FrameWriter.windowUpdate(0, increment: connectionWindowTarget - connectionRecvWindow, into: &output)
            connectionRecvWindow = connectionWindowTarget
        }
        guard var s = streams[sid] else {
            if sid > lastClientStreamID { throw .connection(.protocolError, reason: "DATA on an idle stream") }
            if wasReset(sid, byClient: false) || sid > goAwayLastStreamID {
                // In flight when we reset the stream: ignored, but an empty one was never data.
                if payload.isEmpty { try chargeControlFrame() }
                return
            }
            // Each earns an RST_STREAM: a flood over more closed streams than we remember is
            // a control-frame flood.
            try chargeControlFrame()
            throw .stream(sid, .streamClosed, reason: "DATA on a closed stream")
        }
        if s.remoteClosed {
            try chargeControlFrame()
            throw .stream(sid, .streamClosed, reason: "DATA after END_STREAM")
        }
        s.recvWindow -= length
        if s.recvWindow < 0 { throw .stream(sid, .flowControlError, reason: "DATA beyond the stream window") }
        s.received += payload.count
        // Padding is never consumed by the runtime: give it back now.
        s.unacked += length - payload.count
        if let cl = s.contentLength {
            if s.received > cl || (endStream && s.received != cl) { throw .stream(sid, .protocolError, reason: "DATA does not match content-length") }
        }
        if payload.isEmpty && !endStream { try chargeControlFrame() }
        if endStream { s.remoteClosed = true }
        streams[sid] = s
        events.append(.data(streamID: sid, payload: payload, endStream: endStream))
    }

    mutating func headers(_ f: H2Frame, _ b: UnsafeRawBufferPointer, events: inout [H2Event]) throws(H2Error) {
        let sid = f.header.streamID
        let p = try H2FrameParser.headersPayload(f, b)
        if sid & 1 == 0 { throw .connection(.protocolError, reason: "HEADERS on an even stream id") }
        let block = HeaderBlock(streamID: sid, endStream: f.header.has(H2Flags.endStream), selfDependent: p.dependency == sid)
        if f.header.has(H2Flags.endHeaders) {
            try headerBlock(block, UnsafeRawBufferPointer(rebasing: b[p.fragment]), events: &events)
        } else {
            blockBuffer.removeAll(keepingCapacity: true)
            try appendFragment(p.fragment, b)
            state = .continuation(block)
        }
    }

    mutating func appendFragment(_ r: Range<Int>, _ b: UnsafeRawBufferPointer) throws(H2Error) {
        if blockBuffer.count + r.count > config.maxHeaderBlockSize {
            throw .connection(.enhanceYourCalm, reason: "header block larger than the limit")
        }
        blockBuffer.appendRaw(UnsafeRawBufferPointer(rebasing: b[r]))
    }

    /// A complete header block: a new request, or trailers.
    mutating func headerBlock(_ block: HeaderBlock, _ bytes: UnsafeRawBufferPointer, events: inout [H2Event]) throws(H2Error) {
        let sid = block.streamID
        // Decoded whatever becomes of the stream, to keep the HPACK tables in step.
        do {
            try decoder.decode(bytes, into: &fields)
        } catch {
            // As nginx: a list or one field beyond large_client_header_buffers is
            // ENHANCE_YOUR_CALM ("client sent too large header", "… header field").
            if error == .headerListTooLarge || error == .stringTooLong { throw .connection(.enhanceYourCalm, reason: "header list larger than the limit") }
            if error == .fieldTooLong { throw .connection(.enhanceYourCalm, reason: "header field larger than the limit") }
            throw .connection(.compressionError, reason: "invalid header block")
        }
        if var s = streams[sid] {
            // Trailers.
            if s.remoteClosed { throw .stream(sid, .streamClosed, reason: "HEADERS after END_STREAM") }
            if !block.endStream { throw .stream(sid, .protocolError, reason: "trailers without END_STREAM") }
            try H2RequestRules.checkTrailers(fields, streamID: sid)
            if let cl = s.contentLength, cl != s.received { throw .stream(sid, .protocolError, reason: "body shorter than content-length") }
            s.remoteClosed = true
            streams[sid] = s
            events.append(.trailers(H2Trailers(streamID: sid, fields: fields)))
            return
        }
        if sid <= lastClientStreamID {
            if wasReset(sid, byClient: false) || sid > goAwayLastStreamID { return }
            if wasReset(sid, byClient: true) { throw .connection(.streamClosed, reason: "HEADERS on a stream the client reset") }
            throw .connection(.protocolError, reason: "HEADERS on a closed stream")
        }
        lastClientStreamID = sid
        if goingAway { return }
        if block.selfDependent { throw .stream(sid, .protocolError, reason: "stream depends on itself") }
        if streams.count >= config.maxConcurrentStreams { throw .stream(sid, .refusedStream, reason: "concurrent streams exceeded") }
        var spare = spareRequests.popLast()
        if !isKnownUniquelyReferenced(&spare) { spare = nil }
        let result = try H2RequestRules.request(fields, streamID: sid, endStream: block.endStream, reusing: spare)
        let initialRecv = settingsAcked ? config.initialWindowSize : H2.defaultWindow
        var s = Stream(remoteClosed: block.endStream, sendWindow: peerInitialWindow, recvWindow: initialRecv)
        switch result {
        case .success(let request):
            s.contentLength = request.head.contentLength
            streams[sid] = s
            events.append(.request(request))
        case .failure(let error):
            streams[sid] = s
            events.append(.rejected(streamID: sid, error))
        }
    }

    mutating func rstStream(_ f: H2Frame, _ b: UnsafeRawBufferPointer, events: inout [H2Event]) throws(H2Error) {
        let sid = f.header.streamID
        let code = try H2FrameParser.rstStreamCode(f, b)
        if sid > lastClientStreamID { throw .connection(.protocolError, reason: "RST_STREAM on an idle stream") }
        guard streams.removeValue(forKey: sid) != nil else {
            try chargeControlFrame()
            return
        }
        remember(sid, byClient: true)
        events.append(.reset(streamID: sid, H2ErrorCode(rawValue: code) ?? .internalError))
        resetsCharged += 1
        if resetsCharged > config.resetBudget { throw .connection(.enhanceYourCalm, reason: "too many streams reset by the client") }
    }

    mutating func settings(_ f: H2Frame, _ b: UnsafeRawBufferPointer, events: inout [H2Event]) throws(H2Error) {
        try H2FrameParser.checkSettings(f)
        if f.header.has(H2Flags.ack) {
            if !settingsAcked {
                settingsAcked = true
                // Our initial window replaces the default for the streams already open (§6.9.2).
                let delta = config.initialWindowSize - H2.defaultWindow
                if delta != 0 { for id in streams.keys { streams[id]!.recvWindow += delta } }
            }
            return
        }
        try chargeControlFrame()
        try H2FrameParser.forEachSetting(f, b) { (id, value) throws(H2Error) in
            switch H2SettingID(rawValue: id) {
            case .headerTableSize:
                encoder.setPeerTableSize(Int(value))
            case .enablePush:
                if value > 1 { throw .connection(.protocolError, reason: "SETTINGS_ENABLE_PUSH not 0 or 1") }
            case .initialWindowSize:
                if Int(value) > H2.maxWindow { throw .connection(.flowControlError, reason: "SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1") }
                let delta = Int(value) - peerInitialWindow
                peerInitialWindow = Int(value)
                for id in streams.keys {
                    streams[id]!.sendWindow += delta
                    if streams[id]!.sendWindow > H2.maxWindow { throw .connection(.flowControlError, reason: "stream window above 2^31-1") }
                }
                if delta > 0 { windowsOpened(events: &events) }
            case .maxFrameSize:
                if Int(value) < H2.defaultMaxFrameSize || Int(value) > H2.maxMaxFrameSize {
                    throw .connection(.protocolError, reason: "SETTINGS_MAX_FRAME_SIZE out of range")
                }
                peerMaxFrameSize = Int(value)
            case .maxConcurrentStreams, .maxHeaderListSize, nil:
                break // we push nothing; the list size is advisory; unknown settings are ignored
            }
        }
        H2FrameWriter.settingsAck(into: &output)
    }

    mutating func windowUpdate(_ f: H2Frame, _ b: UnsafeRawBufferPointer, events: inout [H2Event]) throws(H2Error) {
        let sid = f.header.streamID
        try chargeControlFrame()
        let increment = try H2FrameParser.windowIncrement(f, b)
        if sid == 0 {
            connectionSendWindow += increment
            if connectionSendWindow > H2.maxWindow { throw .connection(.flowControlError, reason: "connection window above 2^31-1") }
            windowsOpened(events: &events)
            return
        }
        if sid > lastClientStreamID { throw .connection(.protocolError, reason: "WINDOW_UPDATE on an idle stream") }
        guard var s = streams[sid] else { return }
        s.sendWindow += increment
        if s.sendWindow > H2.maxWindow { throw .stream(sid, .flowControlError, reason: "stream window above 2^31-1") }
        if s.blocked && s.sendWindow > 0 && connectionSendWindow > 0 {
            s.blocked = false
            events.append(.windowOpened(streamID: sid))
        }
        streams[sid] = s
    }

    /// `.windowOpened` for each blocked stream that may send again.
    mutating func windowsOpened(events: inout [H2Event]) {
        guard connectionSendWindow > 0 else { return }
        for (id, s) in streams where s.blocked && s.sendWindow > 0 {
            streams[id]!.blocked = false
            events.append(.windowOpened(streamID: id))
        }
    }

    // MARK: Errors and budgets

    mutating func chargeControlFrame() throws(H2Error) {
        controlFramesCharged += 1
        if controlFramesCharged > config.controlFrameBudget { throw .connection(.enhanceYourCalm, reason: "control frame flood") }
    }

    /// One frame of response sent: the client earns back one control frame.
    @inline(__always)
    mutating func creditControlFrame() {
        if controlFramesCharged > 0 { controlFramesCharged -= 1 }
    }

    mutating func connectionError(_ e: H2Error, events: inout [H2Event]) {
        guard case .connection(let code, let reason) = e else { return }
        H2FrameWriter.goaway(lastStreamID: lastClientStreamID, code: code, into: &output)
        state = .closed(code)
        events.append(.goaway(code, reason: reason))
    }

    /// Resets a stream for a stream error: RST_STREAM out, `.reset` for the runtime if it knew
    /// the stream.
    mutating func resetStream(_ sid: UInt32, _ code: H2ErrorCode, events: inout [H2Event]) {
        H2FrameWriter.rstStream(sid, code: code, into: &output)
        remember(sid, byClient: false)
        if streams.removeValue(forKey: sid) != nil { events.append(.reset(streamID: sid, code)) }
    }

    mutating func remember(_ sid: UInt32, byClient: Bool) {
        recentlyReset[recentlyResetNext] = sid | (byClient ? 1 << 31 : 0)
        recentlyResetNext = (recentlyResetNext + 1) % recentlyReset.count
    }

    func wasReset(_ sid: UInt32, byClient: Bool) -> Bool {
        recentlyReset.contains(sid | (byClient ? 1 << 31 : 0))
    }

    // MARK: Responses (called by the runtime)

    /// Starts a response: HEADERS (and CONTINUATION) with `:status` and `fields`. Names are
    /// lower-cased and HTTP/1 connection-specific fields dropped, as RFC 9113 §8.2 requires.
    /// Returns false when the stream is gone (reset) or already answered.
    @discardableResult
    public mutating func sendHeaders(streamID sid: UInt32, status: Int, fields: [(name: String, value: String)], endStream: Bool) -> Bool {
        guard beginHeaders(streamID: sid, status: status) else { return false }
        for (name, value) in fields {
            var n = name, v = value
            n.withUTF8 { nb in v.withUTF8 { vb in addHeader(name: UnsafeRawBufferPointer(nb), value: UnsafeRawBufferPointer(vb)) } }
        }
        return endHeaders(streamID: sid, endStream: endStream)
    }

    /// `sendHeaders` in steps, without allocating: `beginHeaders`, `addHeader` per field,
    /// `endHeaders`. Returns false when the stream is gone or already answered.
    public mutating func beginHeaders(streamID sid: UInt32, status: Int) -> Bool {
        guard let s = streams[sid], !s.headersSent, canSend else { return false }
        if output.capacity < outputCapacityWhenBusy { output.reserveCapacity(outputCapacityWhenBusy) }
        encodeCount = 0
        blockRoom(1024)
        if encoder.nothingToSignal, let octet = HPACKEncoder.indexedStatus(status) {
            encodeBuffer[0] = octet
            encodeCount = 1
        } else {
            encodeScratch.removeAll(keepingCapacity: true)
            encoder.beginBlock(into: &encodeScratch)
            encoder.encodeStatus(status, into: &encodeScratch)
            putBlock(encodeScratch)
        }
        return true
    }

    /// Room for `n` more octets in the block being encoded.
    @inline(__always)
    mutating func blockRoom(_ n: Int) {
        let need = encodeCount + n
        if need > encodeBuffer.count {
            encodeBuffer.append(contentsOf: repeatElement(0, count: max(need, 2 * encodeBuffer.count) - encodeBuffer.count))
        }
    }

    /// Octets made elsewhere, added to the block being encoded.
    mutating func putBlock(_ b: [UInt8]) {
        guard !b.isEmpty else { return }
        blockRoom(b.count)
        let at = encodeCount
        encodeBuffer.withUnsafeMutableBytes { p in
            b.withUnsafeBytes { (p.baseAddress! + at).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        }
        encodeCount += b.count
    }

    /// One response field (any case; lower-cased here). Connection-specific fields are dropped.
    public mutating func addHeader(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
        addHeader(staticIndex: HPACKStaticTable.responseNameIndex(name), name: name, value: value)
    }

    /// `addHeader` when the caller has looked the name up already: `staticIndex` is
    /// `HPACKStaticTable.responseNameIndex(name)`.
    ///
    /// With no dynamic table (`H2Config.responseTableSize` 0, the default) every field is a
    /// literal without indexing, its value raw: a static name costs its index, any other name
    /// is written lower-cased, and nothing is looked up again or Huffman-coded (a value's
    /// Huffman form saves a few octets but costs a pass to size it and one to code it, on every
    /// response for `content-length`, every second for `date`).
    public mutating func addHeader(staticIndex index: Int, name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
        if index < 0 || index == 57 { return } // connection-specific (57: transfer-encoding)
        guard encoder.table.maxSize == 0 else {
            addIndexedHeader(name: name, value: value)
            return
        }
        blockRoom(name.count + value.count + HPACKCoding.literalOverhead)
        let at = encodeCount
        encodeCount += encodeBuffer.withUnsafeMutableBufferPointer { b -> Int in
            let p = b.baseAddress! + at
            if index > 0 {
                // accept-encoding: gzip, deflate is entry 16 whole.
                if index == 16 && H2RequestRules.equals(value, 0..<value.count, "gzip, deflate") {
                    p[0] = 0x90
                    return 1
                }
                return HPACKCoding.writeLiteral(nameIndex: index, rawValue: value, to: p)
            }
            return HPACKCoding.writeLiteral(lowerCasing: name, rawValue: value, to: p)
        }
    }

    /// How the body after a response head is delimited, as its fields say.
    public struct BodyFields: Sendable, Equatable {
        /// `Transfer-Encoding` ends in `chunked`.
        public var chunked = false
        /// `Content-Length`'s digits (the last such field), if any.
        public var contentLength: Int? = nil
    }

    /// The fields of a head in HTTP/1.1 form, `Name: value` lines ending in LF (CR LF), as the
    /// runtime writes them (no folding; a line without a colon is skipped; white space around a
    /// value is not part of it), each added as by `addHeader`; what `Content-Length` and
    /// `Transfer-Encoding` say is returned for the body's framing. Without a dynamic table the
    /// lines are encoded in place, several at a time, not through one call per field.
    public mutating func addHeaderLines(_ b: UnsafeRawBufferPointer) -> BodyFields {
        var framing = BodyFields()
        guard let base = b.baseAddress, !b.isEmpty else { return framing }
        var i = 0
        while i < b.count {
            if encoder.table.maxSize != 0 {
                i = H2Connection.nextLine(base, b.count, from: i) { name, value, index in
                    H2Connection.noteFraming(index, value, &framing)
                    addHeader(staticIndex: index, name: name, value: value)
                    return true
                }
                continue
            }
            // Room for the lines left and 32 literals' overhead: the next line always fits (a
            // line takes at most its length and one overhead); more passes when many short
            // lines need more.
            blockRoom(b.count - i + 32 * HPACKCoding.literalOverhead)
            let room = encodeBuffer.count
            var at = encodeCount
            encodeBuffer.withUnsafeMutableBufferPointer { out in
                let p = out.baseAddress!
                while i < b.count {
                    let next = H2Connection.nextLine(base, b.count, from: i) { name, value, index in
                        guard at + name.count + value.count + HPACKCoding.literalOverhead <= room else { return false }
                        H2Connection.noteFraming(index, value, &framing)
                        if index < 0 || index == 57 { return true } // connection-specific (57: transfer-encoding)
                        if index > 0 {
                            if index == 16 && H2RequestRules.equals(value, 0..<value.count, "gzip, deflate") {
                                p[at] = 0x90 // accept-encoding: gzip, deflate is entry 16 whole
                                at += 1
                            } else {
                                at += HPACKCoding.writeLiteral(nameIndex: index, rawValue: value, to: p + at)
                            }
                        } else {
                            at += HPACKCoding.writeLiteral(lowerCasing: name, rawValue: value, to: p + at)
                        }
                        return true
                    }
                    if next == i { break } // no room for this line: more is made
                    i = next
                }
            }
            encodeCount = at
        }
        return framing
    }

    /// The line of `b` (`count` octets) at `i`: calls `field` with its name, its value and the
    /// name's `HPACKStaticTable.responseNameIndex`, and returns where the next line starts, or
    /// `i` when `field` declined it. A line without a colon is skipped.
    @inline(__always)
    static func nextLine(_ base: UnsafeRawPointer, _ count: Int, from i: Int,
                         _ field: (UnsafeRawBufferPointer, UnsafeRawBufferPointer, Int) -> Bool) -> Int {
        let e = memchr(base + i, 0x0A, count - i).map { UnsafeRawPointer($0) - base } ?? count
        var lineEnd = e
        if lineEnd > i && base.load(fromByteOffset: lineEnd - 1, as: UInt8.self) == 0x0D { lineEnd -= 1 }
        if let c = memchr(base + i, 0x3A, lineEnd - i) {
            let colon = UnsafeRawPointer(c) - base
            var v = colon + 1
            while v < lineEnd, case let o = base.load(fromByteOffset: v, as: UInt8.self), o == 0x20 || o == 0x09 { v += 1 }
            var ve = lineEnd
            while ve > v, case let o = base.load(fromByteOffset: ve - 1, as: UInt8.self), o == 0x20 || o == 0x09 { ve -= 1 }
            let name = UnsafeRawBufferPointer(start: base + i, count: colon - i)
            let value = UnsafeRawBufferPointer(start: base + v, count: ve - v)
            if !field(name, value, HPACKStaticTable.responseNameIndex(name)) { return i }
        }
        return e + 1
    }

    /// What a `Transfer-Encoding` (57) or `Content-Length` (28) field says of the body.
    @inline(__always)
    static func noteFraming(_ index: Int, _ value: UnsafeRawBufferPointer, _ framing: inout BodyFields) {
        if index == 57 {
            if value.count >= 7 && ASCII.equalsLower(value, (value.count - 7)..<value.count, "chunked") { framing.chunked = true }
        } else if index == 28 {
            var n = 0
            for c in value where c >= 0x30 && c <= 0x39 { n = n &* 10 &+ Int(c - 0x30) }
            framing.contentLength = n
        }
    }

    /// A field for the encoder with a dynamic table: its name lower-cased, then `addLowerHeader`.
    mutating func addIndexedHeader(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
        var lower = (0 as UInt64, 0 as UInt64, 0 as UInt64, 0 as UInt64) // 32 octets on the stack
        let n = name.count
        if n <= 32 {
            withUnsafeMutableBytes(of: &lower) { l in
                for i in 0..<n { l[i] = ASCII.lower(name[i]) }
                addLowerHeader(UnsafeRawBufferPointer(rebasing: l[0..<n]), value)
            }
        } else {
            let l = name.map { ASCII.lower($0) }
            l.withUnsafeBytes { addLowerHeader($0, value) }
        }
    }

    /// A connection-specific-free field with a lower-case name, for the encoder with a dynamic
    /// table.
    mutating func addLowerHeader(_ name: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) {
        encodeScratch.removeAll(keepingCapacity: true)
        if name.count == 14 && H2RequestRules.equals(name, 0..<14, "content-length") {
            // Different on every response: not worth table room.
            encoder.encode(name: name, value: value, indexing: .none, into: &encodeScratch)
        } else {
            // Large values would push useful entries out of the table.
            let indexing: HPACKIndexing = name.count + value.count + 32 <= encoder.table.maxSize / 4 ? .incremental : .none
            encoder.encode(name: name, value: value, indexing: indexing, into: &encodeScratch)
        }
        putBlock(encodeScratch)
    }

    /// Frames the block begun by `beginHeaders`.
    public mutating func endHeaders(streamID sid: UInt32, endStream: Bool) -> Bool {
        // A read and a write: the table's modify accessor on an optional costs more (measured).
        guard var s = streams[sid], !s.headersSent else { return false }
        s.headersSent = true
        streams[sid] = s
        let maxFrame = peerMaxFrameSize
        let count = encodeCount
        encodeBuffer.withUnsafeBytes { block in
            H2FrameWriter.headers(sid, block: UnsafeRawBufferPointer(rebasing: block[0..<count]), endStream: endStream, maxFrameSize: maxFrame, into: &output)
        }
        creditControlFrame()
        if endStream { finishSending(sid) }
        return true
    }

    /// Frames as much of `bytes` as flow control and the frame size allow now, in DATA frames
    /// of at most `chunkSize`. Returns how many octets were framed (all of them, or fewer: then
    /// `.windowOpened` comes when the client opens the window), or nil when the stream is gone.
    /// END_STREAM is sent only with the last octet. An empty final call ends the stream.
    public mutating func sendData(streamID sid: UInt32, _ bytes: UnsafeRawBufferPointer, endStream: Bool) -> Int? {
        guard var s = streams[sid], s.headersSent, canSend else { return nil }
        let allowed = max(0, min(bytes.count, s.sendWindow, connectionSendWindow))
        let frameSize = min(peerMaxFrameSize, config.chunkSize)
        var sent = 0
        if bytes.isEmpty && endStream {
            H2FrameWriter.data(sid, bytes, endStream: true, into: &output)
        }
        while sent < allowed {
            let n = min(frameSize, allowed - sent)
            let last = sent + n == bytes.count
            H2FrameWriter.data(sid, UnsafeRawBufferPointer(rebasing: bytes[sent..<sent + n]), endStream: endStream && last, into: &output)
            creditControlFrame()
            sent += n
        }
        connectionSendWindow -= sent
        if endStream && sent == bytes.count {
            finishSending(sid) // the stream goes: its windows need no update
        } else {
            s.sendWindow -= sent
            s.blocked = sent < bytes.count
            streams[sid] = s
        }
        return sent
    }

    /// We sent END_STREAM: the stream closes, or, if the client is still sending, we ask it to
    /// stop with RST_STREAM NO_ERROR (RFC 9113 §8.1, as nginx).
    mutating func finishSending(_ sid: UInt32) {
        guard let s = streams.removeValue(forKey: sid) else { return }
        if !s.remoteClosed {
            H2FrameWriter.rstStream(sid, code: .noError, into: &output)
            remember(sid, byClient: false)
        }
        // A stream served to the end pays back one reset of the client's budget.
        if resetsCharged > 0 { resetsCharged -= 1 }
    }

    /// The runtime took `count` body octets of a stream: they are given back to the client
    /// (WINDOW_UPDATE) once half the stream's window is waiting.
    public mutating func consumed(streamID sid: UInt32, _ count: Int) {
        guard var s = streams[sid] else { return }
        s.unacked += count
        if !s.remoteClosed && s.unacked >= config.initialWindowSize / 2 {
            H2FrameWriter.windowUpdate(sid, increment: s.unacked, into: &output)
            s.recvWindow += s.unacked
            s.unacked = 0
        }
        streams[sid] = s
    }

    /// The runtime gives up a stream (upstream failed mid-response, body too large…):
    /// RST_STREAM with `code` (INTERNAL_ERROR, CANCEL…).
    public mutating func reset(streamID sid: UInt32, code: H2ErrorCode) {
        guard canSend, streams.removeValue(forKey: sid) != nil else { return }
        H2FrameWriter.rstStream(sid, code: code, into: &output)
        remember(sid, byClient: false)
    }

    /// Graceful stop (reload, `keepalive_requests`, `keepalive_timeout`): GOAWAY NO_ERROR with
    /// the last stream id; the streams in flight finish, new ones are ignored. Close the
    /// connection once `activeStreams` is 0 and the output is written.
    public mutating func goAway() {
        guard !goingAway, !isClosed else { return }
        goingAway = true
        goAwayLastStreamID = lastClientStreamID
        H2FrameWriter.goaway(lastStreamID: lastClientStreamID, code: .noError, into: &output)
    }
}

extension H2Connection: CustomStringConvertible {
    /// One line for debug logs: state, streams, windows, budgets, output.
    public var description: String {
        let st: String
        switch state {
        case .preface: st = "preface"
        case .firstSettings: st = "first-settings"
        case .frames: st = "frames"
        case .continuation(let b): st = "continuation(\(b.streamID))"
        case .closed(let c): st = "closed(\(c))"
        }
        return "h2 state=\(st) streams=\(streams.count) last=\(lastClientStreamID) send-window=\(connectionSendWindow)"
            + " recv-window=\(connectionRecvWindow) resets=\(resetsCharged)/\(config.resetBudget)"
            + " control=\(controlFramesCharged)/\(config.controlFrameBudget) out=\(pendingOutputCount)"
            + (goingAway ? " going-away" : "") + (peerWentAway ? " peer-went-away" : "") + (settingsAcked ? "" : " settings-unacked")
    }
}
