// libFuzzer target: an HTTP/2 server connection (H2Connection) fed arbitrary client bytes.
//
// The input's first octet sets how the bytes are split as they arrive; the rest follows the
// client preface and an empty SETTINGS frame. `H2Fuzz.connection` answers every request, sends
// bodies as the windows allow, reads its own output back with a client-side frame parser and
// HPACK decoder, and checks with `precondition` (kept in optimized builds) that what it consumed
// is within what it was given, that the header-block buffer stays under its cap, and that every
// header block it wrote decodes.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzH2(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    H2Fuzz.connection(input(data, size))
    return 0
}
