/// Validates (and optionally decodes) a chunked body as it streams through, so lb knows exactly
/// where the message ends. Strict: hex size, optional extensions, CRLF everywhere, trailers.
public struct ChunkedFramer: Sendable {
    enum State: Sendable { case size, ext, sizeLF, data, dataCR, dataLF, trailerStart, trailer, trailerLF, finalLF, done }

    private var state: State = .size
    private var remaining = 0
    private var digits = 0
    private var lastChunk = false

    public init() {}

    public var isDone: Bool { state == .done }

    /// Consumes bytes of the body; returns how many belong to it (the rest is the next message)
    /// and calls `data` with the payload ranges and `trailer` with the ranges of trailer fields
    /// (each line with its CRLF; a line split across calls is reported in pieces). Throws on
    /// malformed framing.
    @inline(__always)
    public mutating func consume(_ b: UnsafeRawBufferPointer, data: (Range<Int>) -> Void = { _ in },
                                 trailer: (Range<Int>) -> Void = { _ in }) throws(HTTPError) -> Int {
        var i = 0
        let n = b.count
        // A trailer line that began in an earlier call continues at the start of this one.
        var trailerFrom: Int? = state == .trailer || state == .trailerLF ? 0 : nil
        defer { if let s = trailerFrom, i > s { trailer(s..<i) } }
        while i < n {
            switch state {
            case .data:
                let take = min(remaining, n - i)
                data(i..<(i + take))
                i += take
                remaining -= take
                if remaining == 0 { state = .dataCR }
                continue
            case .done:
                return i
            default:
                break
            }
            let c = b[i]
            i += 1
            switch state {
            case .size:
                if let v = URI.hex(c) {
                    digits += 1
                    if digits > 15 { throw HTTPError(400, "chunk size too large") }
                    remaining = remaining << 4 | v
                } else if digits > 0 && (c == UInt8(ascii: ";") || c == 0x20 || c == 0x09) {
                    state = .ext
                } else if digits > 0 && c == 0x0D {
                    state = .sizeLF
                } else {
                    throw HTTPError(400, "invalid chunk size")
                }
            case .ext:
                if c == 0x0D { state = .sizeLF } else if c == 0x0A || (c < 0x20 && c != 0x09) { throw HTTPError(400, "invalid chunk extension") }
            case .sizeLF:
                guard c == 0x0A else { throw HTTPError(400, "invalid chunk size line") }
                digits = 0
                if remaining == 0 { state = .trailerStart } else { state = .data }
            case .dataCR:
                guard c == 0x0D else { throw HTTPError(400, "invalid chunk data end") }
                state = .dataLF
            case .dataLF:
                guard c == 0x0A else { throw HTTPError(400, "invalid chunk data end") }
                state = .size
            case .trailerStart:
                if c == 0x0D { state = .finalLF } else if c == 0x0A || c == 0x20 || c == 0x09 { throw HTTPError(400, "invalid trailer") } else {
                    state = .trailer
                    trailerFrom = i - 1
                }
            case .trailer:
                if c == 0x0D { state = .trailerLF } else if c == 0x0A { throw HTTPError(400, "invalid trailer") }
            case .trailerLF:
                guard c == 0x0A else { throw HTTPError(400, "invalid trailer") }
                state = .trailerStart
                if let s = trailerFrom { trailer(s..<i) }
                trailerFrom = nil
            case .finalLF:
                guard c == 0x0A else { throw HTTPError(400, "invalid last chunk") }
                state = .done
                return i
            case .data, .done:
                break
            }
        }
        return i
    }

}
