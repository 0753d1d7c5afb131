import Testing
@testable import LBHTTP

/// What the connection reported, with payloads copied out (they index the input buffer).
enum Seen: Equatable, CustomStringConvertible {
    case request(UInt32, String, endStream: Bool)   // "GET /path host"
    case rejected(UInt32, Int)
    case data(UInt32, String, endStream: Bool)
    case trailers(UInt32, String)
    case reset(UInt32, H2ErrorCode)
    case windowOpened(UInt32)
    case goaway(H2ErrorCode)
    case peerGoAway(UInt32)

    var description: String {
        switch self {
        case .request(let id, let s, let e): "request(\(id), \(s), end: \(e))"
        case .rejected(let id, let s): "rejected(\(id), \(s))"
        case .data(let id, let s, let e): "data(\(id), \(s), end: \(e))"
        case .trailers(let id, let s): "trailers(\(id), \(s))"
        case .reset(let id, let c): "reset(\(id), \(c))"
        case .windowOpened(let id): "windowOpened(\(id))"
        case .goaway(let c): "goaway(\(c))"
        case .peerGoAway(let id): "peerGoAway(\(id))"
        }
    }
}

/// A client driving an `H2Connection` with frames, as the runtime would feed it.
struct TestClient {
    var conn: H2Connection
    var encoder = HPACKEncoder()
    var decoder = HPACKDecoder()
    /// Octets the connection has not taken yet (an incomplete frame).
    var pending: [UInt8] = []
    /// Requests as the connection gave them.
    var requests: [UInt32: H2Request] = [:]

    init(config: H2Config = H2Config(), handshake: Bool = true) {
        conn = H2Connection(config: config)
        if handshake {
            let seen = send(H2.preface + rawFrame(.settings) + rawFrame(.settings, flags: H2Flags.ack))
            precondition(seen.isEmpty)
            _ = conn.takeOutput()
        }
    }

    /// Feeds octets `step` at a time; returns what the connection reported.
    @discardableResult
    mutating func send(_ bytes: [UInt8], step: Int = Int.max) -> [Seen] {
        var seen: [Seen] = []
        var fed = 0
        repeat {
            let n = min(step, bytes.count - fed)
            pending += bytes[fed..<fed + n]
            fed += n
            var events: [H2Event] = []
            let used = pending.withUnsafeBytes { b in conn.receive(b, events: &events) }
            for e in events {
                switch e {
                case .request(let r):
                    requests[r.streamID] = r
                    let h = r.head
                    let text = String(decoding: r.bytes[h.methodRange], as: UTF8.self) + " " + String(decoding: r.bytes[h.targetRange], as: UTF8.self)
                        + " " + (h.host.map { String(decoding: r.bytes[$0], as: UTF8.self) } ?? "-")
                    seen.append(.request(r.streamID, text, endStream: r.endStream))
                case .rejected(let id, let error): seen.append(.rejected(id, error.status))
                case .data(let id, let payload, let end): seen.append(.data(id, String(decoding: pending[payload], as: UTF8.self), endStream: end))
                case .trailers(let t):
                    seen.append(.trailers(t.streamID, (0..<t.fields.count).map { "\(t.fields.text($0).name)=\(t.fields.text($0).value)" }.joined(separator: ",")))
                case .reset(let id, let code): seen.append(.reset(id, code))
                case .windowOpened(let id): seen.append(.windowOpened(id))
                case .goaway(let code, _): seen.append(.goaway(code))
                case .peerGoAway(let id, _): seen.append(.peerGoAway(id))
                }
            }
            pending.removeFirst(used)
        } while fed < bytes.count
        return seen
    }

    /// `sendData` from an array.
    mutating func data(_ stream: UInt32, _ bytes: some Collection<UInt8>, end: Bool) -> Int? {
        Array(bytes).withUnsafeBytes { conn.sendData(streamID: stream, $0, endStream: end) }
    }

    /// A HEADERS frame with `fields` encoded by this client's encoder.
    mutating func headers(_ stream: UInt32, _ fields: [(String, String)], endStream: Bool = true, flags extra: UInt8 = 0) -> [UInt8] {
        let block = encodeBlock(&encoder, fields)
        return rawFrame(.headers, flags: H2Flags.endHeaders | (endStream ? H2Flags.endStream : 0) | extra, stream: stream, block)
    }

    static func get(_ path: String = "/", authority: String = "example.com") -> [(String, String)] {
        [(":method", "GET"), (":scheme", "https"), (":path", path), (":authority", authority)]
    }

    static func post(_ path: String = "/upload", length: Int? = nil) -> [(String, String)] {
        [(":method", "POST"), (":scheme", "https"), (":path", path), (":authority", "example.com")]
            + (length.map { [("content-length", "\($0)")] } ?? [])
    }

    /// The frames the connection wrote since the last call.
    mutating func output() -> [(H2FrameHeader, [UInt8])] {
        (try? parseFrames(conn.takeOutput(), step: .max, maxFrameSize: H2.maxMaxFrameSize)) ?? []
    }

    /// Frame types and stream ids of the output, as text ("HEADERS 1 END_STREAM").
    mutating func outputSummary() -> [String] {
        output().map { (h, p) in
            // GOAWAY shows its last stream id, other frames their stream.
            let id = h.type == .goaway ? p.prefix(4).reduce(0) { $0 << 8 | UInt32($1) } : h.streamID
            var s = "\(h.type.map { "\($0)" } ?? "?") \(id)"
            if h.type == .rstStream || h.type == .goaway {
                let code = p.suffix(4).reduce(0) { $0 << 8 | UInt32($1) }
                s += " \(H2ErrorCode(rawValue: code).map { "\($0)" } ?? "\(code)")"
            }
            if h.type == .data || h.type == .headers, h.has(H2Flags.endStream) { s += " END_STREAM" }
            if h.type == .windowUpdate { s += " +\(p.reduce(0) { $0 << 8 | Int($1) })" }
            return s
        }
    }

    /// Decodes a response HEADERS block written by the connection.
    mutating func responseFields(_ payload: [UInt8]) throws -> [(String, String)] {
        try decodeBlock(&decoder, payload)
    }
}

func settingsPayload(_ params: [(H2SettingID, UInt32)]) -> [UInt8] {
    params.flatMap { (id, v) in [UInt8(id.rawValue >> 8), UInt8(id.rawValue & 0xFF), UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
}

func u32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }

@Suite struct H2ConnectionTests {
    // MARK: Start

    @Test func serverSendsSettingsAndAcknowledgesTheClients() throws {
        var c = TestClient(handshake: false)
        var config = H2Config()
        config.maxConcurrentStreams = 100
        c = TestClient(config: config, handshake: false)
        let first = c.output()
        #expect(first.map(\.0.type) == [.settings, .windowUpdate])
        var settings: [UInt16: UInt32] = [:]
        first[0].1.withUnsafeBytes { b in
            try? H2FrameParser.forEachSetting(H2Frame(header: first[0].0, payload: 0..<first[0].1.count), b) { id, v in settings[id] = v }
        }
        #expect(settings[H2SettingID.maxConcurrentStreams.rawValue] == 100)
        #expect(settings[H2SettingID.initialWindowSize.rawValue] == 65536)
        #expect(settings[H2SettingID.enablePush.rawValue] == 0)
        #expect(c.send(H2.preface + rawFrame(.settings, settingsPayload([(.initialWindowSize, 1000)])), step: 1).isEmpty)
        #expect(c.outputSummary() == ["settings 0"])
        #expect(c.output().isEmpty)
    }

    @Test func prefaceThatIsNotHTTP2EndsTheConnection() {
        var c = TestClient(handshake: false)
        _ = c.output()
        #expect(c.send(Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8)) == [.goaway(.protocolError)])
        #expect(c.outputSummary() == ["goaway 0 protocolError"])
        #expect(c.conn.isClosed)
    }

    @Test func firstFrameMustBeSettings() {
        var c = TestClient(handshake: false)
        _ = c.output()
        #expect(c.send(H2.preface + rawFrame(.ping, [0, 0, 0, 0, 0, 0, 0, 0])) == [.goaway(.protocolError)])
    }

    // MARK: Happy paths

    @Test(arguments: [1, 3, 11, Int.max])
    func getIsAnsweredWithHeadersAndData(_ step: Int) throws {
        var c = TestClient()
        let seen = c.send(c.headers(1, TestClient.get("/index.html?x=1") + [("accept", "*/*"), ("user-agent", "curl/8")]), step: step)
        #expect(seen == [.request(1, "GET /index.html?x=1 example.com", endStream: true)])
        let r = try #require(c.requests[1])
        #expect(r.head.method == .get && r.head.versionMajor == 2 && r.head.versionMinor == 0)
        #expect(String(decoding: r.bytes[r.head.pathRange], as: UTF8.self) == "/index.html")
        #expect(String(decoding: r.bytes[try #require(r.head.queryRange)], as: UTF8.self) == "x=1")
        #expect(String(decoding: r.bytes[r.scheme], as: UTF8.self) == "https")
        #expect(r.head.headers.count == 3) // host, accept, user-agent
        #expect(c.conn.activeStreams == 1)

        let answered = c.conn.sendHeaders(streamID: 1, status: 200, fields: [("Content-Type", "text/plain"), ("Content-Length", "5"), ("Connection", "keep-alive")], endStream: false)
        #expect(answered)
        let sent = c.data(1, Array("hello".utf8), end: true)
        #expect(sent == 5)
        let out = c.output()
        #expect(out.map(\.0.type) == [.headers, .data])
        let fields = try c.responseFields(out[0].1)
        #expect(sameFields(fields, [(":status", "200"), ("content-type", "text/plain"), ("content-length", "5")]))
        #expect(out[1].1 == Array("hello".utf8) && out[1].0.has(H2Flags.endStream))
        #expect(c.conn.activeStreams == 0)
    }

    @Test func postBodyArrivesAsDataAndTheWindowIsGivenBack() throws {
        var config = H2Config()
        config.initialWindowSize = 100
        var c = TestClient(config: config)
        var seen = c.send(c.headers(1, TestClient.post(length: 11), endStream: false))
        #expect(seen == [.request(1, "POST /upload example.com", endStream: false)])
        #expect(c.requests[1]?.head.contentLength == 11)
        seen = c.send(rawFrame(.data, stream: 1, Array("hello ".utf8)) + rawFrame(.data, flags: H2Flags.endStream, stream: 1, Array("world".utf8)), step: 4)
        #expect(seen == [.data(1, "hello ", endStream: false), .data(1, "world", endStream: true)])
        c.conn.consumed(streamID: 1, 11)
        // The stream is half-closed (remote): no WINDOW_UPDATE for it.
        #expect(c.outputSummary().isEmpty)
    }

    @Test func tinyReceiveWindowIsEnforcedAndReopenedAsTheBodyIsConsumed() {
        var config = H2Config()
        config.initialWindowSize = 16
        var c = TestClient(config: config)   // settings acknowledged: 16 octets per stream
        c.send(c.headers(1, TestClient.post(), endStream: false))
        let chunk = [UInt8](repeating: 0x61, count: 8)
        #expect(c.send(rawFrame(.data, stream: 1, chunk)) == [.data(1, "aaaaaaaa", endStream: false)])
        c.conn.consumed(streamID: 1, 8)
        #expect(c.outputSummary() == ["windowUpdate 1 +8"])
        #expect(c.send(rawFrame(.data, stream: 1, chunk) + rawFrame(.data, stream: 1, chunk)).count == 2)
        // 16 in flight, window 0: one more octet is a stream error.
        #expect(c.send(rawFrame(.data, stream: 1, [0x61])) == [.reset(1, .flowControlError)])
        #expect(c.outputSummary() == ["rstStream 1 flowControlError"])
    }

    @Test func dataBeforeOurSettingsAreAcknowledgedMayUseTheDefaultWindow() {
        var config = H2Config()
        config.initialWindowSize = 16
        var c = TestClient(config: config, handshake: false)
        c.send(H2.preface + rawFrame(.settings))
        c.send(c.headers(1, TestClient.post(), endStream: false))
        let big = [UInt8](repeating: 0x61, count: 1000)
        #expect(c.send(rawFrame(.data, stream: 1, big)).count == 1)
        // The ACK applies our 16: the stream is now 65535 - 1000 - (65535 - 16) below zero.
        c.send(rawFrame(.settings, flags: H2Flags.ack))
        #expect(c.send(rawFrame(.data, stream: 1, [0x61])) == [.reset(1, .flowControlError)])
    }

    @Test func responseLargerThanTheClientsWindowWaitsForWindowUpdates() throws {
        var c = TestClient()
        c.send(rawFrame(.settings, settingsPayload([(.initialWindowSize, 10)])))
        c.send(c.headers(1, TestClient.get()))
        _ = c.output()
        c.conn.sendHeaders(streamID: 1, status: 200, fields: [], endStream: false)
        let body = [UInt8](repeating: 0x62, count: 25)
        #expect(c.data(1, body, end: true) == 10)
        #expect(c.outputSummary() == ["headers 1", "data 1"])
        #expect(c.send(rawFrame(.windowUpdate, stream: 1, u32(20))) == [.windowOpened(1)])
        #expect(c.data(1, body[10...], end: true) == 15)
        #expect(c.outputSummary() == ["data 1 END_STREAM"])
        #expect(c.conn.activeStreams == 0)
    }

    @Test func connectionWindowLimitsAllStreamsTogether() {
        var config = H2Config()
        config.chunkSize = 16384
        var c = TestClient(config: config)
        c.send(rawFrame(.settings, settingsPayload([(.initialWindowSize, 1 << 20)])))
        c.send(c.headers(1, TestClient.get()) + c.headers(3, TestClient.get("/b")))
        c.conn.sendHeaders(streamID: 1, status: 200, fields: [], endStream: false)
        c.conn.sendHeaders(streamID: 3, status: 200, fields: [], endStream: false)
        let body = [UInt8](repeating: 0x63, count: 40000)
        #expect(c.data(1, body, end: true) == 40000)
        #expect(c.data(3, body, end: true) == 65535 - 40000)
        let frames = c.output().filter { $0.0.type == .data }
        #expect(frames.allSatisfy { $0.1.count <= 16384 })
        #expect(frames.reduce(0) { $0 + $1.1.count } == 65535)
        #expect(c.send(rawFrame(.windowUpdate, stream: 0, u32(100_000))) == [.windowOpened(3)])
    }

    @Test func initialWindowChangesApplyToOpenStreams() {
        var c = TestClient()
        c.send(c.headers(1, TestClient.get()))
        c.conn.sendHeaders(streamID: 1, status: 200, fields: [], endStream: false)
        let body = [UInt8](repeating: 0x64, count: 65535)
        #expect(c.data(1, body, end: false) == 65535)
        // Window 0; the client lowers the initial window by 1000: now -1000.
        c.send(rawFrame(.settings, settingsPayload([(.initialWindowSize, 64535)])))
        c.send(rawFrame(.windowUpdate, stream: 0, u32(1_000_000)))
        #expect(c.data(1, body, end: false) == 0)
        #expect(c.send(rawFrame(.windowUpdate, stream: 1, u32(500))).isEmpty) // still -500
        #expect(c.send(rawFrame(.settings, settingsPayload([(.initialWindowSize, 70000)]))) == [.windowOpened(1)])
        #expect(c.data(1, body, end: false) == 70000 - 64535 - 500)
    }

    @Test func headersSplitIntoContinuationFramesAreOneRequest() {
        var c = TestClient()
        let block = encodeBlock(&c.encoder, TestClient.get("/split") + [("x-long", String(repeating: "v", count: 300))])
        let frames = rawFrame(.headers, flags: H2Flags.endStream, stream: 1, Array(block[0..<10]))
            + rawFrame(.continuation, stream: 1, Array(block[10..<20]))
            + rawFrame(.continuation, stream: 1, [])
            + rawFrame(.continuation, flags: H2Flags.endHeaders, stream: 1, Array(block[20...]))
        #expect(c.send(frames, step: 7) == [.request(1, "GET /split example.com", endStream: true)])
    }

    @Test(arguments: [0, 4096])
    func responseFieldsDecodeWithOrWithoutTheEncodersTable(_ tableSize: Int) throws {
        var config = H2Config()
        config.responseTableSize = tableSize
        var c = TestClient(config: config)
        var sizes: [Int] = []
        for id: UInt32 in [1, 3, 5] {
            c.send(c.headers(id, TestClient.get()))
            let fields = [("Server", "lb"), ("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "max-age=3600"), ("X-Id", "\(id)")]
            c.conn.sendHeaders(streamID: id, status: 404, fields: fields, endStream: true)
            let out = c.output()
            sizes.append(out[0].1.count)
            let got = try c.responseFields(out[0].1)
            #expect(sameFields(got, [(":status", "404"), ("server", "lb"), ("content-type", "text/html; charset=utf-8"),
                                     ("cache-control", "max-age=3600"), ("x-id", "\(id)")]))
        }
        // With a table, the repeated fields shrink to an octet each after the first response.
        // Without one, the first block tells the client it may free its table (one octet).
        if tableSize > 0 { #expect(sizes[1] < sizes[0] / 2) } else { #expect(sizes[2] == sizes[1] && sizes[0] == sizes[1] + 1) }
    }

    @Test(arguments: [0, 4096])
    func clientLoweringItsTableSizeGetsASizeUpdate(_ tableSize: Int) throws {
        var config = H2Config()
        config.responseTableSize = tableSize
        var c = TestClient(config: config)
        c.send(c.headers(1, TestClient.get()))
        c.conn.sendHeaders(streamID: 1, status: 200, fields: [("server", "lb")], endStream: true)
        _ = try c.responseFields(c.output()[0].1)
        c.send(rawFrame(.settings, settingsPayload([(.headerTableSize, 100)])))
        _ = c.output()
        c.send(c.headers(3, TestClient.get()))
        c.conn.sendHeaders(streamID: 3, status: 200, fields: [("server", "lb")], endStream: true)
        let block = c.output()[0].1
        if tableSize == 0 {
            // The first response already brought the client's table to 0: nothing to say.
            #expect(c.decoder.table.maxSize == 0 && block[0] == 0x88)
        } else {
            // A dynamic table size update (001xxxxx) of at most 100 opens the block.
            #expect(block[0] & 0xE0 == 0x20)
            var i = 0
            let size = try block.withUnsafeBytes { try HPACKCoding.readInteger($0, &i, prefixBits: 5) }
            #expect(size <= 100)
        }
        _ = try c.responseFields(block)
        #expect(c.decoder.table.maxSize <= 100)
    }

    @Test func responseHeadersLargerThanAFrameUseContinuation() throws {
        var c = TestClient()
        c.send(c.headers(1, TestClient.get()))
        let big = String(repeating: "z", count: 20000)
        c.conn.sendHeaders(streamID: 1, status: 200, fields: [("x-big", big)], endStream: true)
        let out = c.output()
        #expect(out.map(\.0.type) == [.headers, .continuation])
        #expect(out[0].0.has(H2Flags.endStream) && !out[0].0.has(H2Flags.endHeaders) && out[1].0.has(H2Flags.endHeaders))
        let fields = try c.responseFields(out.flatMap(\.1))
        #expect(fields.count == 2 && fields[1].1 == big)
    }

    @Test func responsesGoOutWhileAClientHeaderBlockIsIncomplete() throws {
        var c = TestClient()
        c.send(c.headers(1, TestClient.get()))
        let block = encodeBlock(&c.encoder, TestClient.get("/next"))
        #expect(c.send(rawFrame(.headers, flags: H2Flags.endStream, stream: 3, Array(block[0..<3]))).isEmpty)
        let answered = c.conn.sendHeaders(streamID: 1, status: 200, fields: [], endStream: false)
        #expect(answered)
        #expect(c.data(1, Array("x".utf8), end: true) == 1)
        #expect(c.outputSummary() == ["headers 1", "data 1 END_STREAM"])
        #expect(c.send(rawFrame(.continuation, flags: H2Flags.endHeaders, stream: 3, Array(block[3...]))) == [.request(3, "GET /next example.com", endStream: true)])
    }

    @Test func cookiesAreJoinedIntoOneField() throws {
        var c = TestClient()
        c.send(c.headers(1, TestClient.get() + [("cookie", "a=1"), ("accept", "*/*"), ("cookie", "b=2"), ("cookie", "c=3")]))
        let r = try #require(c.requests[1])
        let cookies = r.head.headers.filter { String(decoding: r.bytes[$0.name], as: UTF8.self) == "cookie" }
        #expect(cookies.count == 1)
        #expect(cookies.first.map { String(decoding: r.bytes[$0.value], as: UTF8.self) } == "a=1; b=2; c=3")
    }

    @Test func trailersEndTheBody() {
        var c = TestClient()
        c.send(c.headers(1, TestClient.post(length: 2) + [("te", "trailers")], endStream: false))
        #expect(c.send(rawFrame(.data, stream: 1, [0x6F, 0x6B])) == [.data(1, "ok", endStream: false)])
        #expect(c.send(c.headers(1, [("x-checksum", "abc")])) == [.trailers(1, "x-checksum=abc")])
        // The body is complete: more DATA is a stream error.
        #expect(c.send(rawFrame(.data, stream: 1, [0x6F])) == [.reset(1, .streamClosed)])
    }

    @Test func pingIsAnsweredWithTheSameOctets() {
        var c = TestClient()
        #expect(c.send(rawFrame(.ping, [1, 2, 3, 4, 5, 6, 7, 8])).isEmpty)
        let out = c.output()
        #expect(out.count == 1 && out[0].0.type == .ping && out[0].0.has(H2Flags.ack) && out[0].1 == [1, 2, 3, 4, 5, 6, 7, 8])
        #expect(c.send(rawFrame(.ping, flags: H2Flags.ack, [1, 2, 3, 4, 5, 6, 7, 8])).isEmpty)
        #expect(c.output().isEmpty)
    }

    @Test func priorityAndUnknownFramesAreIgnored() {
        var c = TestClient()
        #expect(c.send(rawFrame(.priority, stream: 9, [0, 0, 0, 1, 255]) + rawFrame(0x20, flags: 3, stream: 1, [1, 2, 3])).isEmpty)
        #expect(c.send(c.headers(1, TestClient.get())).count == 1)
        #expect(c.output().isEmpty)
    }

    @Test func responseEndedBeforeTheBodyResetsTheStreamWithNoError() {
        var c = TestClient()
        c.send(c.headers(1, TestClient.post(), endStream: false))
        c.conn.sendHeaders(streamID: 1, status: 413, fields: [], endStream: true)
        #expect(c.outputSummary() == ["headers 1 END_STREAM", "rstStream 1 noError"])
        // Body frames already in flight are ignored.
        #expect(c.send(rawFrame(.data, stream: 1, [1, 2, 3])).isEmpty)
        #expect(c.outputSummary().isEmpty)
        #expect(c.conn.activeStreams == 0)
    }

    @Test func clientGoAwayIsReported() {
        var c = TestClient()
        #expect(c.send(rawFrame(.goaway, u32(0) + u32(0))) == [.peerGoAway(0)])
        #expect(c.conn.peerWentAway)
    }

    @Test func gracefulGoAwayFinishesStreamsInFlightAndIgnoresNewOnes() {
        var c = TestClient()
        c.send(c.headers(1, TestClient.get()))
        c.conn.goAway()
        #expect(c.outputSummary() == ["goaway 1 noError"])
        #expect(c.send(c.headers(3, TestClient.get())).isEmpty)
        let answered = c.conn.sendHeaders(streamID: 1, status: 204, fields: [], endStream: true)
        #expect(answered)
        #expect(c.conn.activeStreams == 0)
        // The HPACK state stayed in step through the ignored stream.
        c.conn.goAway()
        #expect(c.outputSummary() == ["headers 1 END_STREAM"])
        // Body frames of the ignored stream are ignored too.
        c = TestClient()
        c.send(c.headers(1, TestClient.get()))
        c.conn.goAway()
        _ = c.output()
        #expect(c.send(c.headers(3, TestClient.post(), endStream: false) + rawFrame(.data, stream: 3, [1, 2])).isEmpty)
        #expect(c.output().isEmpty)
        #expect(c.conn.description.contains("going-away"))
    }

    @Test func runtimeResetSendsRstStream() {
        var c = TestClient()
        c.send(c.headers(1, TestClient.get()))
        c.conn.reset(streamID: 1, code: .internalError)
        #expect(c.outputSummary() == ["rstStream 1 internalError"])
        let answered = c.conn.sendHeaders(streamID: 1, status: 200, fields: [], endStream: true)
        #expect(!answered)
        #expect(c.data(1, [UInt8](), end: true) == nil)
    }

    // MARK: Requests the HTTP/1 rules refuse (answered, not reset)

    @Test(arguments: [
        ([(":method", "TRACE"), (":scheme", "https"), (":path", "/"), (":authority", "a")], 405),
        ([(":method", "CONNECT"), (":authority", "a:443")], 405),
        ([(":method", "GET"), (":scheme", "https"), (":path", "/"), (":authority", "a/b")], 400),
        ([(":method", "get"), (":scheme", "https"), (":path", "/"), (":authority", "a")], 400),
        ([(":method", "GET"), (":scheme", "https"), (":path", "/")], 400),   // no host at all
    ])
    func requestsRefusedByTheHTTP1RulesAreAnswered(_ fields: [(String, String)], _ status: Int) {
        var c = TestClient()
        #expect(c.send(c.headers(1, fields)) == [.rejected(1, status)])
        let answered = c.conn.sendHeaders(streamID: 1, status: status, fields: [], endStream: true)
        #expect(answered)
    }

    // MARK: Malformed requests: stream errors (PROTOCOL_ERROR)

    static let base: [(String, String)] = [(":method", "GET"), (":scheme", "https"), (":path", "/"), (":authority", "a")]

    static let malformed: [([(String, String)], String)] = [
        ([(":scheme", "https"), (":path", "/"), (":authority", "a")], "no :method"),
        ([(":method", "GET"), (":path", "/"), (":authority", "a")], "no :scheme"),
        ([(":method", "GET"), (":scheme", "https"), (":authority", "a")], "no :path"),
        ([(":method", "GET"), (":scheme", "https"), (":path", ""), (":authority", "a")], "empty :path"),
        (base + [(":path", "/again")], "duplicate :path"),
        (base + [(":method", "GET")], "duplicate :method"),
        (base + [(":foo", "x")], "unknown pseudo-header"),
        (base + [(":status", "200")], "response pseudo-header"),
        ([(":method", "GET"), ("accept", "*/*"), (":scheme", "https"), (":path", "/"), (":authority", "a")], "pseudo after regular"),
        (base + [("Accept", "*/*")], "upper-case name"),
        (base + [("connection", "keep-alive")], "connection"),
        (base + [("keep-alive", "5")], "keep-alive"),
        (base + [("proxy-connection", "x")], "proxy-connection"),
        (base + [("transfer-encoding", "chunked")], "transfer-encoding"),
        (base + [("upgrade", "h2c")], "upgrade"),
        (base + [("te", "gzip")], "te other than trailers"),
        (base + [("x-a", "b\r\nx-c: d")], "CR LF in a value"),
        (base + [("x-a", " padded")], "leading space"),
        (base + [("x a", "b")], "space in a name"),
        (base + [("content-length", "5")], "content-length on END_STREAM"),
        (base + [("content-length", "x")], "invalid content-length"),
        ([(":method", "GET"), (":scheme", "https"), (":path", "/"), (":authority", "user@a")], "userinfo in :authority"),
    ]

    @Test(arguments: malformed)
    func malformedRequestsResetTheStream(_ fields: [(String, String)], _ why: String) {
        var c = TestClient()
        #expect(c.send(c.headers(1, fields)).isEmpty, "\(why)")
        #expect(c.outputSummary() == ["rstStream 1 protocolError"], "\(why)")
        // The connection goes on.
        #expect(c.send(c.headers(3, TestClient.get())) == [.request(3, "GET / example.com", endStream: true)], "\(why)")
    }

    @Test func teTrailersIsAllowed() {
        var c = TestClient()
        #expect(c.send(c.headers(1, Self.base + [("te", "trailers")])).count == 1)
    }

    @Test func contentLengthIsCheckedAgainstData() {
        var c = TestClient()
        c.send(c.headers(1, TestClient.post(length: 3), endStream: false))
        #expect(c.send(rawFrame(.data, stream: 1, [1, 2, 3, 4])) == [.reset(1, .protocolError)])
        c.send(c.headers(3, TestClient.post(length: 3), endStream: false))
        #expect(c.send(rawFrame(.data, flags: H2Flags.endStream, stream: 3, [1, 2])) == [.reset(3, .protocolError)])
        c.send(c.headers(5, TestClient.post(length: 3), endStream: false))
        #expect(c.send(rawFrame(.data, flags: H2Flags.endStream, stream: 5, [1, 2, 3])) == [.data(5, "\u{1}\u{2}\u{3}", endStream: true)])
    }

    @Test func badTrailersResetTheStream() {
        var c = TestClient()
        c.send(c.headers(1, TestClient.post(), endStream: false))
        #expect(c.send(c.headers(1, [("x-t", "1")], endStream: false)) == [.reset(1, .protocolError)])
        c.send(c.headers(3, TestClient.post(), endStream: false))
        #expect(c.send(c.headers(3, [(":path", "/x")])) == [.reset(3, .protocolError)])
    }

    // MARK: Stream state errors

    @Test func streamStateErrors() {
        // DATA after END_STREAM: stream error STREAM_CLOSED.
        var c = TestClient()
        c.send(c.headers(1, TestClient.get()))
        #expect(c.send(rawFrame(.data, stream: 1, [1])) == [.reset(1, .streamClosed)])
        // HEADERS after END_STREAM (no trailers possible).
        c = TestClient()
        c.send(c.headers(1, TestClient.get()))
        #expect(c.send(c.headers(1, [("x", "y")])) == [.reset(1, .streamClosed)])
    }

    static let connectionErrors: [(String, [UInt8], H2ErrorCode)] = [
        ("DATA on an idle stream", rawFrame(.data, stream: 5, [1]), H2ErrorCode.protocolError),
        ("DATA on stream 0", rawFrame(.data, stream: 0, [1]), .protocolError),
        ("RST_STREAM on an idle stream", rawFrame(.rstStream, stream: 5, u32(8)), .protocolError),
        ("RST_STREAM on stream 0", rawFrame(.rstStream, stream: 0, u32(8)), .protocolError),
        ("RST_STREAM of 3 octets", rawFrame(.rstStream, stream: 1, [0, 0, 8]), .frameSizeError),
        ("WINDOW_UPDATE on an idle stream", rawFrame(.windowUpdate, stream: 5, u32(1)), .protocolError),
        ("WINDOW_UPDATE of 0 on the connection", rawFrame(.windowUpdate, stream: 0, u32(0)), .protocolError),
        ("WINDOW_UPDATE of 3 octets", rawFrame(.windowUpdate, stream: 0, [0, 0, 1]), .frameSizeError),
        ("connection window overflow", rawFrame(.windowUpdate, stream: 0, u32(0x7FFF_FFFF)), .flowControlError),
        ("CONTINUATION without HEADERS", rawFrame(.continuation, flags: H2Flags.endHeaders, stream: 1, [0x82]), .protocolError),
        ("PUSH_PROMISE from the client", rawFrame(.pushPromise, flags: H2Flags.endHeaders, stream: 1, u32(2) + [0x82]), .protocolError),
        ("PING of 7 octets", rawFrame(.ping, [0, 0, 0, 0, 0, 0, 0]), .frameSizeError),
        ("PING on a stream", rawFrame(.ping, stream: 1, [0, 0, 0, 0, 0, 0, 0, 0]), .protocolError),
        ("GOAWAY on a stream", rawFrame(.goaway, stream: 1, u32(0) + u32(0)), .protocolError),
        ("SETTINGS ACK with a payload", rawFrame(.settings, flags: H2Flags.ack, [0, 0, 0, 0, 0, 0]), .frameSizeError),
        ("SETTINGS of 5 octets", rawFrame(.settings, [0, 1, 0, 0, 0]), .frameSizeError),
        ("SETTINGS on a stream", rawFrame(.settings, stream: 1), .protocolError),
        ("ENABLE_PUSH 2", rawFrame(.settings, settingsPayload([(.enablePush, 2)])), .protocolError),
        ("INITIAL_WINDOW_SIZE 2^31", rawFrame(.settings, settingsPayload([(.initialWindowSize, 0x8000_0000)])), .flowControlError),
        ("MAX_FRAME_SIZE 100", rawFrame(.settings, settingsPayload([(.maxFrameSize, 100)])), .protocolError),
        ("MAX_FRAME_SIZE 2^24", rawFrame(.settings, settingsPayload([(.maxFrameSize, 1 << 24)])), .protocolError),
        ("HEADERS on stream 0", rawFrame(.headers, flags: H2Flags.endHeaders, stream: 0, [0x82]), .protocolError),
        ("HEADERS on an even stream", rawFrame(.headers, flags: H2Flags.endHeaders, stream: 2, [0x82]), .protocolError),
        ("frame above SETTINGS_MAX_FRAME_SIZE", rawFrame(.data, stream: 1, [UInt8](repeating: 0, count: 16385)), .frameSizeError),
        ("invalid HPACK", rawFrame(.headers, flags: H2Flags.endHeaders | H2Flags.endStream, stream: 1, [0x80]), .compressionError),
    ]

    @Test(arguments: connectionErrors)
    func connectionErrorsSendGoAway(_ why: String, _ frame: [UInt8], _ code: H2ErrorCode) {
        var c = TestClient()
        #expect(c.send(frame) == [.goaway(code)], "\(why)")
        #expect(c.outputSummary() == ["goaway 0 \(code)"], "\(why)")
        // Nothing more is read.
        #expect(c.send(c.headers(1, TestClient.get())).isEmpty, "\(why)")
        #expect(c.output().isEmpty)
    }

    @Test func goAwayCarriesTheLastStreamID() {
        var c = TestClient()
        c.send(c.headers(1, TestClient.get()) + c.headers(7, TestClient.get()))
        #expect(c.send(c.headers(5, TestClient.get())) == [.goaway(.protocolError)]) // lower than 7
        #expect(c.outputSummary() == ["goaway 7 protocolError"])
    }

    @Test func headersOnAStreamTheClientResetIsStreamClosed() {
        var c = TestClient()
        c.send(c.headers(1, TestClient.post(), endStream: false))
        #expect(c.send(rawFrame(.rstStream, stream: 1, u32(8))) == [.reset(1, .cancel)])
        #expect(c.send(c.headers(1, [("x", "y")])) == [.goaway(.streamClosed)])
    }

    @Test func streamErrorsOfFlowControlAndPriority() {
        var c = TestClient()
        c.send(c.headers(1, TestClient.post(), endStream: false))
        #expect(c.send(rawFrame(.windowUpdate, stream: 1, u32(0))) == [.reset(1, .protocolError)])
        c.send(c.headers(3, TestClient.post(), endStream: false))
        #expect(c.send(rawFrame(.windowUpdate, stream: 3, u32(0x7FFF_FFFF))) == [.reset(3, .flowControlError)])
        c.send(c.headers(5, TestClient.post(), endStream: false))
        #expect(c.send(rawFrame(.priority, stream: 5, u32(5) + [16])) == [.reset(5, .protocolError)])
        #expect(c.send(rawFrame(.priority, stream: 9, u32(1))).isEmpty)
        #expect(c.outputSummary().last == "rstStream 9 frameSizeError")
        // HEADERS depending on itself: decoded (HPACK stays in step), then reset.
        #expect(c.send(c.headers(11, TestClient.get(), flags: H2Flags.priority).withPriority(dependency: 11)).isEmpty)
        #expect(c.outputSummary() == ["rstStream 11 protocolError"])
        #expect(c.send(c.headers(13, TestClient.get())).count == 1)
    }

    @Test func initialWindowOverflowOfAnOpenStreamIsAConnectionError() {
        var c = TestClient()
        c.send(c.headers(1, TestClient.get()))
        c.send(rawFrame(.windowUpdate, stream: 1, u32(0x7FFF_FFFF - 65535)))
        #expect(c.send(rawFrame(.settings, settingsPayload([(.initialWindowSize, 65536)]))) == [.goaway(.flowControlError)])
    }

    @Test func streamsBeyondTheLimitAreRefused() {
        var config = H2Config()
        config.maxConcurrentStreams = 2
        var c = TestClient(config: config)
        let seen = c.send(c.headers(1, TestClient.get()) + c.headers(3, TestClient.get()) + c.headers(5, TestClient.get()))
        #expect(seen.count == 2)
        #expect(c.outputSummary() == ["rstStream 5 refusedStream"])
        c.conn.sendHeaders(streamID: 1, status: 204, fields: [], endStream: true)
        #expect(c.send(c.headers(7, TestClient.get())).count == 1)
    }

    @Test func continuationInterruptedByAnotherFrameIsAConnectionError() {
        var c = TestClient()
        let block = encodeBlock(&c.encoder, TestClient.get())
        #expect(c.send(rawFrame(.headers, stream: 1, Array(block[0..<4])) + rawFrame(.ping, [0, 0, 0, 0, 0, 0, 0, 0])) == [.goaway(.protocolError)])
        c = TestClient()
        _ = encodeBlock(&c.encoder, [])
        #expect(c.send(rawFrame(.headers, stream: 1, Array(block[0..<4])) + rawFrame(.continuation, flags: H2Flags.endHeaders, stream: 3, Array(block[4...])))
                == [.goaway(.protocolError)])
    }

    // MARK: Floods (each ends in GOAWAY ENHANCE_YOUR_CALM with bounded memory)

    @Test func rapidResetEndsTheConnectionPastTheBudget() {
        var config = H2Config()
        config.resetBudget = 10
        var c = TestClient(config: config)
        var seen: [Seen] = []
        var id: UInt32 = 1
        for _ in 0..<11 {
            seen += c.send(c.headers(id, TestClient.get()) + rawFrame(.rstStream, stream: id, u32(8)))
            id += 2
        }
        #expect(seen.filter { if case .request = $0 { true } else { false } }.count == 11)
        #expect(seen.last == .goaway(.enhanceYourCalm))
        #expect(c.outputSummary().last == "goaway 21 enhanceYourCalm")
    }

    @Test func streamsServedToTheEndRefillTheResetBudget() {
        var config = H2Config()
        config.resetBudget = 10
        var c = TestClient(config: config)
        var id: UInt32 = 1
        for _ in 0..<100 {
            c.send(c.headers(id, TestClient.get()) + rawFrame(.rstStream, stream: id, u32(8)))
            c.send(c.headers(id + 2, TestClient.get()))
            c.conn.sendHeaders(streamID: id + 2, status: 200, fields: [], endStream: true)
            id += 4
        }
        #expect(!c.conn.isClosed)
    }

    @Test(arguments: [
        ("SETTINGS", rawFrame(.settings, settingsPayload([(.headerTableSize, 4096)]))),
        ("PING", rawFrame(.ping, [0, 0, 0, 0, 0, 0, 0, 0])),
        ("PRIORITY", rawFrame(.priority, stream: 3, [0, 0, 0, 0, 1])),
        ("WINDOW_UPDATE", rawFrame(.windowUpdate, stream: 0, u32(1))),
        ("unknown frame", rawFrame(0x42, stream: 0, [])),
        ("RST_STREAM of a closed stream", rawFrame(.rstStream, stream: 1, u32(0))),
        ("empty DATA", rawFrame(.data, stream: 1, [])),
    ])
    func controlFrameFloodsEndTheConnection(_ what: String, _ frame: [UInt8]) {
        var config = H2Config()
        config.controlFrameBudget = 50
        var c = TestClient(config: config)
        let first = what == "RST_STREAM of a closed stream" ? c.headers(1, TestClient.get()) : c.headers(1, TestClient.post(), endStream: false)
        c.send(first)
        if what == "RST_STREAM of a closed stream" { c.conn.sendHeaders(streamID: 1, status: 204, fields: [], endStream: true) }
        var seen: [Seen] = []
        for _ in 0..<60 { seen += c.send(frame) }
        #expect(seen.contains(.goaway(.enhanceYourCalm)), "\(what)")
        #expect(c.conn.isClosed, "\(what)")
    }

    @Test func continuationFloodIsCappedBeforeDecoding() {
        var config = H2Config()
        config.maxHeaderBlockSize = 4096
        var c = TestClient(config: config)
        var seen = c.send(rawFrame(.headers, stream: 1, [0x82]))
        let junk = [UInt8](repeating: 0x41, count: 1000)
        for _ in 0..<5 { seen += c.send(rawFrame(.continuation, stream: 1, junk)) }
        #expect(seen == [.goaway(.enhanceYourCalm)])
        #expect(c.conn.blockBuffer.count <= 4096)
    }

    @Test func emptyContinuationFloodIsCounted() {
        var config = H2Config()
        config.controlFrameBudget = 20
        var c = TestClient(config: config)
        var seen = c.send(rawFrame(.headers, stream: 1, [0x82]))
        for _ in 0..<30 { seen += c.send(rawFrame(.continuation, stream: 1, [])) }
        #expect(seen == [.goaway(.enhanceYourCalm)])
    }

    @Test func hpackBombEndsTheConnection() {
        var config = H2Config()
        config.maxHeaderListSize = 8192
        var c = TestClient(config: config)
        let big = String(repeating: "b", count: 3000)
        // First request indexes a 3000-octet field; the second references it 100 times.
        #expect(c.send(c.headers(1, TestClient.get() + [("x-bomb", big)])).count == 1)
        let block = [0x82, 0x87, 0x84, 0x41, 0x01, 0x61] + [UInt8](repeating: 0xBE + 1, count: 100)
        #expect(c.send(rawFrame(.headers, flags: H2Flags.endHeaders | H2Flags.endStream, stream: 3, block)) == [.goaway(.enhanceYourCalm)])
    }

    @Test func clientThatDoesNotReadStopsBeingRead() {
        var config = H2Config()
        config.outboundHighWater = 1000
        var c = TestClient(config: config)
        let pings = (0..<200).flatMap { _ in rawFrame(.ping, [0, 0, 0, 0, 0, 0, 0, 0]) }
        c.send(pings)
        // 17 octets per PING ACK: reading stopped once 1000 were waiting.
        #expect(c.conn.pendingOutputCount < 1000 + 17)
        #expect(c.pending.count > 0)
        _ = c.conn.takeOutput()
        c.send([])
        #expect(c.conn.pendingOutputCount < 1000 + 17)
    }
}

extension Array where Element == UInt8 {
    /// Puts a priority block (dependency, weight 16) in front of a HEADERS frame's fragment.
    func withPriority(dependency: UInt32) -> [UInt8] {
        let payload = u32(dependency) + [15] + self[9...]
        return rawFrame(.headers, flags: self[4], stream: UInt32(self[8]), payload)
    }
}
