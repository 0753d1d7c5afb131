// libFuzzer target: the FastCGI response path (FastCGIRecordDecoder + CGIResponseTranslator), as
// the proxy reads an application's records.
//
// Invariants: whole and byte at a time give the same error, end state, stderr bytes, translated
// head and (chunk framing removed) body; an event's range lies inside the bytes fed; a translated
// head is one HTTP/1.1 response head that HeadParser.response accepts, framed by Content-Length
// or chunked (exactly one).

struct Outcome: Equatable {
    var head: [UInt8] = []
    var payload: [UInt8] = []
    var stderr: [UInt8] = []
    var ended = false
    var complete = false
    var error: String?
}

func translate(_ b: UnsafeRawBufferPointer, step: Int) -> Outcome {
    var d = FastCGIRecordDecoder()
    var t = CGIResponseTranslator(maxHead: 256)
    var out: [UInt8] = []
    var o = Outcome()
    var i = 0
    do {
        while i < b.count {
            let piece = UnsafeRawBufferPointer(rebasing: b[i..<min(b.count, i + step)])
            i += step
            try d.consume(piece) { e in
                switch e {
                case .stdout(let r):
                    check(r.lowerBound >= 0 && r.upperBound <= piece.count, "stdout range \(r) outside \(piece.count)")
                    try t.stdout(UnsafeRawBufferPointer(rebasing: piece[r]), into: &out)
                case .stderr(let r, _):
                    check(r.lowerBound >= 0 && r.upperBound <= piece.count, "stderr range \(r) outside \(piece.count)")
                    o.stderr += piece[r]
                case .end:
                    try t.end(into: &out)
                }
            }
        }
    } catch let e as FastCGIError {
        o.error = e.message
    } catch {
        check(false, "unexpected error \(error)")
    }
    o.ended = d.ended
    split(out, into: &o)
    return o
}

/// Separates the translated head from the body, checks the head, and removes chunk framing.
func split(_ out: [UInt8], into o: inout Outcome) {
    guard !out.isEmpty else { return }
    out.withUnsafeBytes { b in
        var scanner = HeadScanner(maxFirstLine: 8192, maxHeaderLine: 8192, maxHead: 1 << 20)
        guard let end = try? scanner.scan(b, isRequest: false) else {
            check(false, "translated output has no complete response head")
            return
        }
        o.head = Array(b[0..<end])
        let head: ResponseHead
        do { head = try HeadParser.response(b, start: 0, end: end) } catch {
            check(false, "translated head does not parse: \(error)")
            return
        }
        check(head.versionMinor == 1 && (100...999).contains(head.status), "status line \(head.status)")
        check(head.chunked != (head.contentLength != nil), "framing: chunked \(head.chunked), length \(String(describing: head.contentLength))")
        let body = UnsafeRawBufferPointer(rebasing: b[end...])
        if head.chunked {
            var f = ChunkedFramer()
            var payload: [UInt8] = []
            let n = (try? f.consume(body) { r in payload += body[r] }) ?? -1
            check(n >= 0, "translated chunked body is malformed")
            o.payload = payload
            o.complete = f.isDone
        } else {
            o.payload = Array(body)
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFastCGI(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let b = input(data, size)
    let whole = translate(b, step: max(size, 1))
    let bytewise = translate(b, step: 1)
    check(whole == bytewise, "whole \(whole) != byte at a time \(bytewise)")
    // The request ends with END_REQUEST: then the body is whole (or an error came first).
    if whole.ended && whole.error == nil && !whole.head.isEmpty && whole.head.count > 0 {
        check(whole.complete || !String(decoding: whole.head, as: UTF8.self).contains("Transfer-Encoding: chunked"), "ended without the last chunk")
    }
    return 0
}
