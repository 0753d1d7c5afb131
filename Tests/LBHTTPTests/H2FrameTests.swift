import Testing
@testable import LBHTTP

/// A frame as octets: the 9-octet header then the payload.
func rawFrame(_ type: UInt8, flags: UInt8 = 0, stream: UInt32 = 0, _ payload: [UInt8] = []) -> [UInt8] {
    let n = payload.count
    return [UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF), type, flags,
            UInt8(stream >> 24 & 0xFF), UInt8(stream >> 16 & 0xFF), UInt8(stream >> 8 & 0xFF), UInt8(stream & 0xFF)] + payload
}

func rawFrame(_ type: H2FrameType, flags: UInt8 = 0, stream: UInt32 = 0, _ payload: [UInt8] = []) -> [UInt8] {
    rawFrame(type.rawValue, flags: flags, stream: stream, payload)
}

/// The frames found in `bytes` when they are handed over `step` octets at a time, the caller
/// keeping what the parser did not take (as the runtime's read buffer does).
func parseFrames(_ bytes: [UInt8], step: Int, maxFrameSize: Int = 16384) throws -> [(H2FrameHeader, [UInt8])] {
    let p = H2FrameParser(maxFrameSize: maxFrameSize)
    var buffer: [UInt8] = []
    var out: [(H2FrameHeader, [UInt8])] = []
    var fed = 0
    while fed < bytes.count {
        let n = min(step, bytes.count - fed)
        buffer += bytes[fed..<fed + n]
        fed += n
        var used = 0
        try buffer.withUnsafeBytes { b in
            while let f = try p.next(b, from: used) {
                out.append((f.header, Array(b[f.payload])))
                used = f.end
            }
        }
        buffer.removeFirst(used)
    }
    #expect(buffer.isEmpty)
    return out
}

@Suite struct H2FrameTests {
    static let stream: [UInt8] =
        rawFrame(.settings, [0, 3, 0, 0, 0, 100, 0, 4, 0, 0, 0xFF, 0xFF])
        + rawFrame(.headers, flags: H2Flags.endHeaders | H2Flags.endStream, stream: 1, [0x82, 0x86, 0x84])
        + rawFrame(.data, flags: H2Flags.padded, stream: 1, [3] + Array("body".utf8) + [0, 0, 0])
        + rawFrame(.ping, [1, 2, 3, 4, 5, 6, 7, 8])
        + rawFrame(0xFA, flags: 0xFF, stream: 7, [9, 9])
        + rawFrame(.windowUpdate, stream: 1, [0, 0, 0x10, 0])

    @Test(arguments: [1, 2, 5, 9, 10, 17, 64, Int.max])
    func sameFramesAtAnySplit(_ step: Int) throws {
        let frames = try parseFrames(Self.stream, step: step)
        #expect(frames.map(\.0.rawType) == [4, 1, 0, 6, 0xFA, 8])
        #expect(frames.map(\.0.streamID) == [0, 1, 1, 0, 7, 1])
        #expect(frames[1].1 == [0x82, 0x86, 0x84])
        #expect(frames[1].0.has(H2Flags.endStream) && frames[1].0.has(H2Flags.endHeaders))
        #expect(frames[4].0.type == nil && frames[4].0.flags == 0xFF)
    }

    @Test func headerReadsLengthTypeFlagsAndDropsTheReservedBit() {
        let bytes: [UInt8] = [0x01, 0x02, 0x03, 0x01, 0x25, 0x80, 0x00, 0x00, 0x05]
        let h = bytes.withUnsafeBytes { H2FrameHeader.read($0) }
        #expect(h == H2FrameHeader(length: 0x010203, rawType: 1, flags: 0x25, streamID: 5))
    }

    @Test func frameLargerThanTheLimitIsRefusedFromItsHeaderAlone() {
        // 16385 announced; only the 9 header octets are there.
        let header: [UInt8] = [0x00, 0x40, 0x01, 0x00, 0x00, 0, 0, 0, 1]
        #expect(throws: H2Error.connection(.frameSizeError, reason: "")) {
            try header.withUnsafeBytes { b in try H2FrameParser().next(b) }
        }
        // Allowed once the limit is raised; then it waits for the payload.
        let f = try? header.withUnsafeBytes { b in try H2FrameParser(maxFrameSize: 20000).next(b) }
        #expect(f == .some(nil))
    }

    @Test func prefaceIsRecognisedInPiecesAndHTTP1IsRefusedAtOnce() {
        #expect(H2.preface.count == 24)
        #expect(Array(H2.preface.prefix(5)).withUnsafeBytes { H2.checkPreface($0) } == .partial)
        #expect(H2.preface.withUnsafeBytes { H2.checkPreface($0) } == .complete)
        #expect(Array("GET / HTTP/1.1\r\n".utf8).withUnsafeBytes { H2.checkPreface($0) } == .mismatch)
        #expect(Array("P".utf8).withUnsafeBytes { H2.checkPreface($0) } == .partial)
    }

    func one(_ bytes: [UInt8]) throws -> H2Frame {
        try #require(try bytes.withUnsafeBytes { b in try H2FrameParser().next(b) })
    }

    @Test func paddedDataLosesItsPadding() throws {
        let bytes = rawFrame(.data, flags: H2Flags.padded, stream: 1, [2, 0x61, 0x62, 0, 0])
        let f = try one(bytes)
        let r = try bytes.withUnsafeBytes { b in try H2FrameParser.dataPayload(f, b) }
        #expect(Array(bytes[r]) == [0x61, 0x62])
    }

    @Test(arguments: [
        (rawFrame(.data, flags: H2Flags.padded, stream: 1, [4, 0x61, 0, 0]), H2ErrorCode.protocolError),  // pad ≥ payload
        (rawFrame(.data, flags: H2Flags.padded, stream: 1, []), .frameSizeError),                            // no Pad Length
        (rawFrame(.data, stream: 0, [1]), .protocolError),                                                   // stream 0
    ])
    func badDataFramesAreConnectionErrors(_ bytes: [UInt8], _ code: H2ErrorCode) throws {
        let f = try one(bytes)
        #expect(throws: H2Error.connection(code, reason: "")) { try bytes.withUnsafeBytes { b in try H2FrameParser.dataPayload(f, b) } }
    }

    @Test func headersWithPaddingAndPriorityGiveTheFragment() throws {
        let payload: [UInt8] = [1, 0x80, 0, 0, 3, 15, 0x82, 0x84, 0]
        let bytes = rawFrame(.headers, flags: H2Flags.padded | H2Flags.priority | H2Flags.endHeaders, stream: 1, payload)
        let f = try one(bytes)
        let p = try bytes.withUnsafeBytes { b in try H2FrameParser.headersPayload(f, b) }
        #expect(Array(bytes[p.fragment]) == [0x82, 0x84])
        #expect(p.dependency == 3)
    }

    @Test func priorityIsCheckedThenIgnored() throws {
        let ok = rawFrame(.priority, stream: 3, [0, 0, 0, 1, 16])
        try ok.withUnsafeBytes { b in try H2FrameParser.checkPriority(try one(ok), b) }
        let selfDep = rawFrame(.priority, stream: 3, [0, 0, 0, 3, 16])
        #expect(throws: H2Error.stream(3, .protocolError, reason: "")) {
            try selfDep.withUnsafeBytes { b in try H2FrameParser.checkPriority(try one(selfDep), b) }
        }
        let short = rawFrame(.priority, stream: 3, [0, 0, 0, 1])
        #expect(throws: H2Error.stream(3, .frameSizeError, reason: "")) {
            try short.withUnsafeBytes { b in try H2FrameParser.checkPriority(try one(short), b) }
        }
    }

    @Test func writersProduceTheRFCLayouts() {
        var out: [UInt8] = []
        H2FrameWriter.settingsAck(into: &out)
        #expect(out == [0, 0, 0, 4, 1, 0, 0, 0, 0])
        out = []
        H2FrameWriter.settings([(.maxConcurrentStreams, 100), (.initialWindowSize, 65536)], into: &out)
        #expect(out == [0, 0, 12, 4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 100, 0, 4, 0, 1, 0, 0])
        out = []
        H2FrameWriter.goaway(lastStreamID: 7, code: .enhanceYourCalm, into: &out)
        #expect(out == [0, 0, 8, 7, 0, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0x0B])
        out = []
        H2FrameWriter.rstStream(3, code: .refusedStream, into: &out)
        #expect(out == [0, 0, 4, 3, 0, 0, 0, 0, 3, 0, 0, 0, 7])
        out = []
        H2FrameWriter.windowUpdate(0, increment: 0x7FFF_0000, into: &out)
        #expect(out == [0, 0, 4, 8, 0, 0, 0, 0, 0, 0x7F, 0xFF, 0, 0])
        out = []
        [UInt8](1...8).withUnsafeBytes { H2FrameWriter.ping($0, ack: true, into: &out) }
        #expect(out == [0, 0, 8, 6, 1, 0, 0, 0, 0] + [UInt8](1...8))
        out = []
        Array("hi".utf8).withUnsafeBytes { H2FrameWriter.data(5, $0, endStream: true, into: &out) }
        #expect(out == [0, 0, 2, 0, 1, 0, 0, 0, 5, 0x68, 0x69])
    }

    @Test func longHeaderBlocksAreSplitIntoContinuations() throws {
        let block = [UInt8](repeating: 0x82, count: 40)
        var out: [UInt8] = []
        block.withUnsafeBytes { H2FrameWriter.headers(1, block: $0, endStream: true, maxFrameSize: 16, into: &out) }
        let frames = try parseFrames(out, step: .max)
        #expect(frames.map(\.0.type) == [.headers, .continuation, .continuation])
        #expect(frames.map(\.1.count) == [16, 16, 8])
        #expect(frames.map(\.0.flags) == [H2Flags.endStream, 0, H2Flags.endHeaders])
        #expect(frames.flatMap(\.1) == block)
    }

    @Test(arguments: [
        (rawFrame(.settings, flags: H2Flags.ack, [0, 0, 0, 0, 0, 0]), H2Error.connection(.frameSizeError, reason: "")),
        (rawFrame(.settings, [0, 0, 0, 0, 0]), .connection(.frameSizeError, reason: "")),
        (rawFrame(.settings, stream: 1, []), .connection(.protocolError, reason: "")),
    ])
    func badSettingsLayouts(_ bytes: [UInt8], _ error: H2Error) throws {
        let f = try one(bytes)
        #expect(throws: error) { try H2FrameParser.checkSettings(f) }
    }
}
