// libFuzzer target: the HPACK decoder (RFC 7541) with its dynamic table.
//
// The input's first octet sets the size of the pieces the rest is cut into; each piece is decoded
// as one header block by the same decoder (so table insertions and size updates carry over).
// `H2Fuzz.hpack` checks that a decoded list stays within the header-list limit and the table
// within its size, then re-encodes the list with lb's encoder and decodes that with a fresh
// decoder: the two lists must be equal, name by name and value by value.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHPACK(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    H2Fuzz.hpack(input(data, size))
    return 0
}
