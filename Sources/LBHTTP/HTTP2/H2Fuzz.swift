/// Entry points for fuzzing the HTTP/2 code with arbitrary bytes (a libFuzzer target calls
/// these from `LLVMFuzzerTestOneInput`). Each one checks invariants with `precondition`, so a
/// fuzzer finds broken invariants as well as crashes.
public enum H2Fuzz {
    /// Feeds `data` to a fresh `H2Connection` after the client preface and an empty SETTINGS,
    /// in pieces whose size is taken from the first octet (the same bytes split differently
    /// must not change what happens). Every request is answered with HEADERS and a small body;
    /// windows that open are used; our own output is read back with a client-side parser and
    /// HPACK decoder, which must accept it.
    @discardableResult
    public static func connection(_ data: UnsafeRawBufferPointer) -> Summary {
        var summary = Summary()
        var config = H2Config()
        config.initialWindowSize = 1024
        config.maxConcurrentStreams = 8
        config.resetBudget = 16
        config.controlFrameBudget = 64
        config.outboundHighWater = 64 * 1024
        var conn = H2Connection(config: config)
        let step = data.isEmpty ? 1 : Int(data[0] % 16) + 1
        var input = H2.preface + [0, 0, 0, 4, 0, 0, 0, 0, 0]
        if data.count > 1 { input.append(contentsOf: UnsafeRawBufferPointer(rebasing: data[1...])) }

        var reader = OutputReader()
        var buffer: [UInt8] = []
        var events: [H2Event] = []
        var fed = 0
        let body = [UInt8](repeating: 0x78, count: 3000)
        var open: [UInt32: Int] = [:]    // stream → body octets still to send
        while fed < input.count || !buffer.isEmpty {
            let n = min(step, input.count - fed)
            buffer.append(contentsOf: input[fed..<fed + n])
            fed += n
            events.removeAll(keepingCapacity: true)
            let used = buffer.withUnsafeBytes { conn.receive($0, events: &events) }
            precondition(used <= buffer.count)
            for e in events {
                switch e {
                case .request(let r):
                    summary.requests += 1
                    precondition(r.head.versionMajor == 2 && r.head.length <= r.bytes.count)
                    if conn.sendHeaders(streamID: r.streamID, status: 200, fields: [("content-type", "text/plain"), ("x-id", "\(r.streamID)")], endStream: false) {
                        open[r.streamID] = body.count
                    }
                case .rejected(let id, let error):
                    _ = conn.sendHeaders(streamID: id, status: error.status, fields: [], endStream: true)
                case .data(let id, let payload, _):
                    summary.bodyOctets += payload.count
                    precondition(payload.upperBound <= buffer.count)
                    conn.consumed(streamID: id, payload.count)
                case .reset(let id, _): open[id] = nil
                case .trailers: summary.trailers += 1
                case .windowOpened, .peerGoAway: break
                case .goaway(let code, _): summary.goaway = code
                }
            }
            for (id, left) in open {
                let sent = body[(body.count - left)...].withUnsafeBytes { conn.sendData(streamID: id, $0, endStream: true) }
                if let sent, sent < left { open[id] = left - sent } else { open[id] = nil }
            }
            buffer.removeFirst(used)
            // What we wrote must parse, and its header blocks decode.
            reader.read(conn.takeOutput())
            precondition(conn.blockBuffer.count <= config.maxHeaderBlockSize)
            if conn.isClosed { break }
            if used == 0 && n == 0 { break } // an incomplete frame and nothing more to feed
        }
        summary.responseOctets = reader.octets
        summary.responsesComplete = reader.streamsEnded
        return summary
    }

    /// What a `connection` run saw (for tests of the harness itself).
    public struct Summary: Sendable {
        /// Requests received, body octets, trailers, the connection error if any, octets and complete responses written.
        public var requests = 0
        public var bodyOctets = 0
        public var trailers = 0
        public var goaway: H2ErrorCode? = nil
        public var responseOctets = 0
        public var responsesComplete = 0
    }

    /// Decodes `data` as a sequence of header blocks (the first octet gives the split points)
    /// through one decoder, then re-encodes each decoded list and decodes it again: the lists
    /// must match.
    public static func hpack(_ data: UnsafeRawBufferPointer) {
        var decoder = HPACKDecoder(maxTableSize: 4096, maxHeaderListSize: 16384)
        var encoder = HPACKEncoder()
        var check = HPACKDecoder(maxTableSize: 4096, maxHeaderListSize: 1 << 20)
        var list = HPACKHeaderList(), again = HPACKHeaderList()
        let piece = data.isEmpty ? 1 : Int(data[0]) + 1
        var i = data.isEmpty ? 0 : 1
        var block: [UInt8] = []
        while i < data.count {
            let end = min(data.count, i + piece)
            do {
                try decoder.decode(UnsafeRawBufferPointer(rebasing: data[i..<end]), into: &list)
            } catch {
                return // the connection would end here
            }
            precondition(list.size <= decoder.maxHeaderListSize && decoder.table.size <= decoder.table.maxSize)
            block.removeAll(keepingCapacity: true)
            encoder.beginBlock(into: &block)
            list.bytes.withUnsafeBytes { b in
                for f in list.fields {
                    encoder.encode(name: UnsafeRawBufferPointer(rebasing: b[f.name]), value: UnsafeRawBufferPointer(rebasing: b[f.value]), into: &block)
                }
            }
            do {
                try block.withUnsafeBytes { try check.decode($0, into: &again) }
            } catch {
                preconditionFailure("our encoding did not decode: \(error)")
            }
            precondition(again.fields.count == list.fields.count)
            for k in 0..<list.fields.count {
                let a = list.fields[k], b = again.fields[k]
                precondition(list.bytes[a.name] == again.bytes[b.name] && list.bytes[a.value] == again.bytes[b.value])
            }
            i = end
        }
    }

    /// Reads the server's output as a client would: frames, and HPACK for header blocks.
    struct OutputReader {
        var decoder = HPACKDecoder(maxTableSize: 4096, maxHeaderListSize: 1 << 20)
        var pending: [UInt8] = []
        var block: [UInt8] = []
        var list = HPACKHeaderList()
        var octets = 0
        var streamsEnded = 0

        mutating func read(_ bytes: [UInt8]) {
            octets += bytes.count
            pending.append(contentsOf: bytes)
            let parser = H2FrameParser(maxFrameSize: H2.maxMaxFrameSize)
            var used = 0
            pending.withUnsafeBytes { b in
                while true {
                    guard let f = try? parser.next(b, from: used) else { break }
                    used = f.end
                    let t = f.header.type
                    if (t == .data || t == .headers) && f.header.has(H2Flags.endStream) { streamsEnded += 1 }
                    if t == .headers || t == .continuation {
                        block.append(contentsOf: b[f.payload])
                        if f.header.has(H2Flags.endHeaders) {
                            do {
                                try block.withUnsafeBytes { try decoder.decode($0, into: &list) }
                            } catch {
                                preconditionFailure("our header block did not decode: \(error)")
                            }
                            block.removeAll(keepingCapacity: true)
                        }
                    }
                }
            }
            pending.removeFirst(used)
        }
    }
}
