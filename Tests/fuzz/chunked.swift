// libFuzzer target: the chunked body framer (ChunkedFramer).
//
// Invariants: consumed ≤ input; payload ranges lie inside the consumed bytes, in order; the
// input fed whole, one byte at a time, and split at a point taken from the input give the same
// consumed count, the same payload, the same end state and the same error.

struct Framing: Equatable {
    var consumed = 0
    var payload: [UInt8] = []
    var done = false
    var error: HTTPError? = nil
}

func frame(_ b: UnsafeRawBufferPointer, pieces: [Range<Int>]) -> Framing {
    var f = ChunkedFramer()
    var out = Framing()
    for piece in pieces {
        let view = UnsafeRawBufferPointer(rebasing: b[piece])
        var last = 0
        do {
            let used = try f.consume(view, data: { r in
                check(r.lowerBound >= last && r.upperBound <= view.count && !r.isEmpty, "payload range \(r) after \(last) in \(view.count)")
                last = r.upperBound
                out.payload.append(contentsOf: view[r])
            })
            check(used <= view.count && used >= last, "consumed \(used) of \(view.count), payload to \(last)")
            out.consumed += used
            if f.isDone {
                check(used <= view.count, "consumed past the input")
                break
            }
            check(used == view.count, "stopped at \(used) of \(view.count) without being done")
        } catch {
            // What earlier pieces consumed does not matter once the body is refused.
            out.consumed = 0
            out.error = error
            break
        }
    }
    out.done = f.isDone
    return out
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzChunked(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let b = input(data, size)
    let whole = frame(b, pieces: [0..<size])
    check(whole.consumed <= size, "consumed \(whole.consumed) > \(size)")
    let bytes = frame(b, pieces: (0..<size).map { $0..<($0 + 1) })
    check(whole == bytes, "whole \(whole.consumed)/\(whole.done)/\(String(describing: whole.error)) != bytewise \(bytes.consumed)/\(bytes.done)/\(String(describing: bytes.error))")
    if size > 1 {
        let cut = Int(b[0]) % size
        let split = frame(b, pieces: [0..<cut, cut..<size])
        check(whole == split, "whole != split at \(cut)")
    }
    return 0
}
