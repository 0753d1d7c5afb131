// libFuzzer target: the response head scanner and parser (HeadScanner with isRequest: false,
// HeadParser.response), as the proxy and the health checks read upstream heads.
//
// Invariants: the scanner's end lies inside the input; one byte at a time gives the same head
// (or fails too) as the whole buffer; ranges lie inside the head; a reused head parses as a fresh
// one. The parser also gets the raw input as a "head" (a cache file's stored head is parsed
// with start 0 and end at its size) and must not trap.

func responseScanner() -> HeadScanner { HeadScanner(maxFirstLine: 96, maxHeaderLine: 64, maxHead: 384) }

enum ResponseScan: Equatable {
    case head(Int)
    case incomplete
    case failed
}

func scanResponse(_ b: UnsafeRawBufferPointer, bytewise: Bool) -> ResponseScan {
    var s = responseScanner()
    for k in (bytewise ? 1 : b.count)...max(b.count, 1) where k <= b.count {
        let view = UnsafeRawBufferPointer(rebasing: b[0..<k])
        do {
            guard let end = try s.scan(view, isRequest: false) else { continue }
            check(end <= k, "scanner end \(end) past input \(k)")
            check(s.leadingBytes == 0, "leading bytes skipped in a response")
            return .head(end)
        } catch {
            return .failed
        }
    }
    return .incomplete
}

func same(_ a: ResponseHead, _ b: ResponseHead) -> Bool {
    a.status == b.status && a.versionMinor == b.versionMinor && a.reasonRange == b.reasonRange && a.headers == b.headers
        && a.contentLength == b.contentLength && a.chunked == b.chunked && a.close == b.close && a.length == b.length
}

nonisolated(unsafe) var reusedResponse = ResponseHead()

func parseResponse(_ b: UnsafeRawBufferPointer, end: Int) {
    let fresh = Result(catching: { () throws(HTTPError) in try HeadParser.response(b, start: 0, end: end) })
    let again = Result(catching: { () throws(HTTPError) in try HeadParser.response(b, start: 0, end: end, into: &reusedResponse) })
    switch (fresh, again) {
    case (.success(let h), .success):
        check(same(h, reusedResponse), "parsing into a reused head differs from a fresh parse")
        check(h.length == end, "head length \(h.length) != \(end)")
        check((100...999).contains(h.status), "status \(h.status)")
        check(h.reasonRange.lowerBound >= 0 && h.reasonRange.upperBound <= end, "reason \(h.reasonRange) outside \(end)")
        for f in h.headers {
            check(f.name.lowerBound >= 0 && f.value.upperBound <= end && f.name.upperBound <= f.value.lowerBound,
                  "header \(f) outside head of \(end) bytes")
        }
        if h.chunked { check(h.contentLength == nil, "chunked response keeps a Content-Length") }
    case (.failure(let e1), .failure(let e2)):
        check(e1 == e2, "reused parse error \(e2) != fresh parse error \(e1)")
        check(e1.status == 502, "response error status \(e1.status)")
    default:
        check(false, "fresh and reused parse disagree: \(fresh) vs \(again)")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzResponseHead(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let b = input(data, size)
    let whole = scanResponse(b, bytewise: false)
    let bytewise = scanResponse(b, bytewise: true)
    check(whole == bytewise, "whole-buffer scan \(whole) != byte-at-a-time scan \(bytewise)")
    if case .head(let end) = whole { parseResponse(b, end: end) }
    parseResponse(b, end: b.count)
    return 0
}
