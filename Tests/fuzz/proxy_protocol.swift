// libFuzzer target: the PROXY protocol reader (ProxyProtocol.parse).
//
// Invariants: a header's length is at least 8 (v1) or 16 (v2) bytes and within the input and the
// 4,096-byte limit (v1: 107); every strict prefix of the input is incomplete when the whole is a
// header or incomplete (the answer does not depend on how the bytes arrive), and the header part
// alone gives the same answer as the header followed by the rest; an invalid input stays invalid
// with more bytes after it.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzProxyProtocol(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let b = input(data, size)
    let whole = ProxyProtocol.parse(b)
    switch whole {
    case .header(_, let length):
        check(length >= 8 && length <= size && length <= ProxyProtocol.maxLength, "header length \(length) of \(size)")
        if b[0] == UInt8(ascii: "P") { check(length <= ProxyProtocol.v1MaxLength, "v1 header of \(length) bytes") }
        check(ProxyProtocol.parse(UnsafeRawBufferPointer(rebasing: b[0..<length])) == whole, "the header alone differs")
        for k in 0..<length {
            check(ProxyProtocol.parse(UnsafeRawBufferPointer(rebasing: b[0..<k])) == .incomplete, "prefix \(k) of a \(length)-byte header")
        }
    case .incomplete:
        check(size < ProxyProtocol.maxLength, "incomplete after \(size) bytes")
        for k in 0..<size {
            check(ProxyProtocol.parse(UnsafeRawBufferPointer(rebasing: b[0..<k])) == .incomplete, "prefix \(k) of an incomplete input")
        }
    case .invalid(let why):
        check(!why.isEmpty, "invalid without a reason")
        var more = Array(b)
        more += Array("\r\nGET / HTTP/1.1\r\n\r\n".utf8)
        if case .invalid = ProxyProtocol.parse(more) {} else { check(false, "invalid input became valid with more bytes") }
    }
    return 0
}
