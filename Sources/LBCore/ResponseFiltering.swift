import LBConfig
import LBHTTP
import Synchronization

/// The request side of the response filters (LBHTTP's `NotModifiedFilter`, `RangeFilter`): the
/// known headers the parser found, and the location's settings, in the filters' terms.
extension ClientConnection {
    /// The request's conditional and range headers (found once while parsing).
    func conditionalHeaders() -> ConditionalHeaders {
        let hb = head.readableBytes
        func bytes(_ r: Range<Int>?) -> [UInt8]? { r.map { Array(hb[$0]) } }
        return ConditionalHeaders(ifMatch: bytes(req.ifMatch), ifNoneMatch: bytes(req.ifNoneMatch),
                                  ifModifiedSince: bytes(req.ifModifiedSince), ifUnmodifiedSince: bytes(req.ifUnmodifiedSince),
                                  range: bytes(req.range), ifRange: bytes(req.ifRange))
    }

    /// Whether the request carries any header the filters act on (most do not: no work then).
    var hasConditionalHeaders: Bool {
        req.ifMatch != nil || req.ifNoneMatch != nil || req.ifModifiedSince != nil || req.ifUnmodifiedSince != nil || req.range != nil
    }

    var ifModifiedSinceMode: IfModifiedSinceMode {
        switch settings.resolved.ifModifiedSince {
        case .off: .off
        case .exact: .exact
        case .before: .before
        }
    }

    /// A multipart/byteranges boundary: nginx's is a counter too (any unique value serves).
    static func nextBoundary() -> UInt64 {
        boundaryCounter.add(1, ordering: .relaxed).newValue
    }
}

private let boundaryCounter = Atomic<UInt64>(0)
