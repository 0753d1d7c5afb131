// libFuzzer target: URI normalization (URI.normalize), nginx's percent-decoding and `.`/`..`/`//`
// resolution for location matching.
//
// Invariants: the fast path (normalize(_:into:)) agrees with the full one; a result starts with
// `/`, holds no NUL, no `//`, no `.` or `..` segment, and is no longer than its input (or "/");
// normalizing a result again changes nothing when it holds no `%` (a decoded `%25` would decode
// again, as it does in nginx).

nonisolated(unsafe) var scratch: [UInt8] = Array("/previous/result".utf8)

func checkNormalized(_ r: [UInt8], from n: Int) {
    check(r.first == UInt8(ascii: "/"), "result does not start with /")
    check(r.count <= max(n, 1), "result \(r.count) bytes from \(n)")
    check(!r.contains(0), "NUL in result")
    var start = 0
    for i in 1...r.count {
        if i == r.count || r[i] == UInt8(ascii: "/") {
            let seg = r[(start + 1)..<i]
            check(!(seg.isEmpty && i < r.count), "empty segment in result")
            check(!seg.elementsEqual([0x2E]) && !seg.elementsEqual([0x2E, 0x2E]), "dot segment in result")
            start = i
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzURI(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let b = input(data, size)
    let full = URI.normalize(b)
    let ok = URI.normalize(b, into: &scratch)
    check(ok == (full != nil), "fast path \(ok) != full path \(full != nil)")
    guard let r = full else { return 0 }
    check(scratch == r, "fast path result differs from the full one")
    checkNormalized(r, from: size)
    if !r.contains(UInt8(ascii: "%")) {
        let again = r.withUnsafeBytes { URI.normalize($0) }
        check(again == r, "normalize is not idempotent")
    }
    let escaped = URI.escapePath(r)
    check(!escaped.contains(where: { $0 <= 0x20 || $0 >= 0x7F || $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") }), "escapePath left a raw byte")
    check(escaped.withUnsafeBytes { URI.normalize($0) } == r, "escapePath does not decode back")
    return 0
}
