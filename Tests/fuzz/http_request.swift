// libFuzzer target: the request head scanner and parser (LBHTTP's HeadScanner, HeadParser.request).
//
// Invariants: the scanner never reports a head longer than its input; feeding the bytes one at a
// time (dropping skipped empty lines as ClientConnection does) gives the same head or the same
// error as feeding them all at once; the parsed head's ranges lie inside the head; parsing into
// a reused head gives what a fresh parse gives.

/// Small limits so the fuzzer reaches the 414/431 paths with short inputs.
func scanner() -> HeadScanner { HeadScanner(maxFirstLine: 96, maxHeaderLine: 64, maxHead: 384) }

enum RequestScan: Equatable {
    case head([UInt8])
    case incomplete
    /// The status only: when a head is both too large and has a too long line, which of the two
    /// (both 431) is seen first depends on where the bytes were split.
    case failed(Int)
}

/// All bytes at once.
func scanWhole(_ b: UnsafeRawBufferPointer) -> RequestScan {
    var s = scanner()
    do {
        guard let end = try s.scan(b, isRequest: true) else { return .incomplete }
        check(end <= b.count, "scanner end \(end) past input \(b.count)")
        check(s.leadingBytes <= end, "leading bytes \(s.leadingBytes) past end \(end)")
        return .head(Array(b[s.leadingBytes..<end]))
    } catch {
        return .failed(error.status)
    }
}

/// One byte more per call, the buffer front dropped by `discardLeading()` as ClientConnection does.
func scanBytewise(_ b: UnsafeRawBufferPointer) -> RequestScan {
    var s = scanner()
    var front = 0
    for k in 1...max(b.count, 1) where k <= b.count {
        let view = UnsafeRawBufferPointer(rebasing: b[front..<k])
        do {
            guard let end = try s.scan(view, isRequest: true) else {
                if s.leadingBytes > 0 { front += s.discardLeading() }
                continue
            }
            check(end <= view.count, "scanner end \(end) past input \(view.count)")
            return .head(Array(view[s.leadingBytes..<end]))
        } catch {
            return .failed(error.status)
        }
    }
    return .incomplete
}

func checkRanges(_ h: RequestHead, _ n: Int) {
    func inside(_ r: Range<Int>?, _ what: String) {
        if let r { check(r.lowerBound >= 0 && r.upperBound <= n, "\(what) \(r) outside head of \(n) bytes") }
    }
    check(h.length == n, "head length \(h.length) != \(n)")
    inside(h.methodRange, "method")
    inside(h.targetRange, "target")
    inside(h.pathRange, "path")
    inside(h.queryRange, "query")
    inside(h.absoluteHost, "absolute host")
    inside(h.host, "host")
    check(h.targetRange.lowerBound <= h.pathRange.lowerBound && h.pathRange.upperBound <= h.targetRange.upperBound,
          "path \(h.pathRange) outside target \(h.targetRange)")
    for f in h.headers {
        inside(f.name, "header name")
        inside(f.value, "header value")
        check(f.name.upperBound <= f.value.lowerBound, "header value before its name")
    }
}

func same(_ a: RequestHead, _ b: RequestHead) -> Bool {
    a.method == b.method && a.methodRange == b.methodRange && a.targetRange == b.targetRange && a.pathRange == b.pathRange
        && a.queryRange == b.queryRange && a.absoluteHost == b.absoluteHost && a.versionMinor == b.versionMinor
        && a.versionMajor == b.versionMajor && a.headers == b.headers && a.host == b.host && a.contentLength == b.contentLength
        && a.chunked == b.chunked && a.keepAlive == b.keepAlive && a.expectContinue == b.expectContinue
        && a.upgrade == b.upgrade && a.length == b.length
}

/// A head parsed earlier, so that `request(into:)` must clear everything it left behind.
nonisolated(unsafe) var reused = RequestHead()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRequestHead(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let b = input(data, size)
    let whole = scanWhole(b)
    let bytewise = scanBytewise(b)
    check(whole == bytewise, "whole-buffer scan \(whole) != byte-at-a-time scan \(bytewise)")
    guard case .head(let head) = whole else { return 0 }
    head.withUnsafeBytes { hb in
        let fresh: Result<RequestHead, HTTPError> = Result(catching: { () throws(HTTPError) in try HeadParser.request(hb, start: 0, end: hb.count) })
        let again: Result<Void, HTTPError> = Result(catching: { () throws(HTTPError) in try HeadParser.request(hb, start: 0, end: hb.count, into: &reused) })
        switch (fresh, again) {
        case (.success(let h), .success):
            checkRanges(h, hb.count)
            check(same(h, reused), "parsing into a reused head differs from a fresh parse")
            if h.isHTTP09 { check(h.headers.isEmpty, "HTTP/0.9 request with headers") }
            if h.chunked { check(h.contentLength == nil, "chunked with Content-Length accepted") }
        case (.failure(let e1), .failure(let e2)):
            check(e1 == e2, "reused parse error \(e2) != fresh parse error \(e1)")
            check((400...599).contains(e1.status), "error status \(e1.status)")
        default:
            check(false, "fresh and reused parse disagree: \(fresh) vs \(again)")
        }
    }
    return 0
}
