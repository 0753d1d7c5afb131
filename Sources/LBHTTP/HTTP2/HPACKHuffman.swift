/// The static Huffman code of HPACK (RFC 7541 §5.2, Appendix B).
///
/// The code is canonical: codes are handed out in order of (length, symbol), so the 257 code
/// lengths of Appendix B are the whole table and the codes follow from them. Decoding walks a
/// state machine four bits at a time (as nghttp2 and HAProxy do), built once from the same
/// lengths: 256 states (the inner nodes of the code tree) × 16 nibbles.
public enum HPACKHuffman {
    /// Code length in bits of each symbol: 0–255 are octets, 256 is EOS (Appendix B).
    static let lengths: [UInt8] = [
        13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28,  // 0...
        28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,  // 16...
        6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6,  // 32...
        5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,  // 48...
        13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,  // 64...
        7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,  // 80...
        15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5,  // 96...
        6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,  // 112...
        20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23,  // 128...
        24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,  // 144...
        22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23,  // 160...
        21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,  // 176...
        26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25,  // 192...
        19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,  // 208...
        20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23,  // 224...
        26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,  // 240...
        30,  // 256 (EOS)
    ]

    /// The code of each symbol, right-aligned, assigned canonically from `lengths`.
    static let codes: [UInt32] = {
        let order = (0..<257).sorted { (Int(lengths[$0]), $0) < (Int(lengths[$1]), $1) }
        var codes = [UInt32](repeating: 0, count: 257)
        var code: UInt32 = 0
        var previous = lengths[order[0]]
        for (k, s) in order.enumerated() {
            if k > 0 { code = (code + 1) << UInt32(lengths[s] - previous) }
            previous = lengths[s]
            codes[s] = code
        }
        return codes
    }()

    // Decoder transition entry: next state (bits 0–7), symbol (8–15), flags (16–18).
    static let emitFlag: UInt32 = 1 << 16
    static let failFlag: UInt32 = 1 << 17
    static let acceptFlag: UInt32 = 1 << 18

    /// `decodeTable[state * 16 + nibble]`. A state may end the string (`acceptFlag`) when it is
    /// the root or lies on the all-ones path less than 8 bits deep (padding, RFC 7541 §5.2).
    static let decodeTable: [UInt32] = {
        // The code tree: children of inner nodes; a leaf is stored as -(symbol + 1).
        var left: [Int] = [0], right: [Int] = [0]
        var depth: [Int] = [0], allOnes: [Bool] = [true]
        for s in 0..<257 {
            var node = 0
            let len = Int(lengths[s])
            for b in stride(from: len - 1, through: 0, by: -1) {
                let bit = (codes[s] >> UInt32(b)) & 1
                if b == 0 {
                    if bit == 0 { left[node] = -(s + 1) } else { right[node] = -(s + 1) }
                    break
                }
                var next = bit == 0 ? left[node] : right[node]
                if next == 0 {
                    next = left.count
                    left.append(0); right.append(0)
                    depth.append(depth[node] + 1)
                    allOnes.append(allOnes[node] && bit == 1)
                    if bit == 0 { left[node] = next } else { right[node] = next }
                }
                node = next
            }
        }
        precondition(left.count == 256, "HPACK Huffman tree must have 256 inner nodes")
        var table = [UInt32](repeating: 0, count: 256 * 16)
        for state in 0..<256 {
            for nibble in 0..<16 {
                var node = state
                var entry: UInt32 = 0
                for b in stride(from: 3, through: 0, by: -1) {
                    let child = (nibble >> b) & 1 == 0 ? left[node] : right[node]
                    if child < 0 {
                        let sym = -child - 1
                        if sym == 256 { entry |= failFlag; break }
                        entry |= emitFlag | (UInt32(sym) << 8)
                        node = 0
                    } else {
                        node = child
                    }
                }
                if node == 0 || (allOnes[node] && depth[node] <= 7) { entry |= acceptFlag }
                table[state * 16 + nibble] = entry | UInt32(node)
            }
        }
        return table
    }()

    /// The decoder table as an immortal pointer (no array access on the hot path).
    static let decoder: Immortal = {
        let p = UnsafeMutablePointer<UInt32>.allocate(capacity: decodeTable.count)
        p.initialize(from: decodeTable, count: decodeTable.count)
        return Immortal(table: UnsafePointer(p))
    }()

    /// A table allocated once and never freed or written again.
    struct Immortal: @unchecked Sendable { let table: UnsafePointer<UInt32> }

    /// Decodes `input`, appending the octets to `out`. Throws on EOS in the string, padding
    /// longer than 7 bits or not made of ones (RFC 7541 §5.2), or when the output would exceed
    /// `limit` octets.
    public static func decode(_ input: UnsafeRawBufferPointer, into out: inout [UInt8], limit: Int = Int.max) throws(HPACKError) {
        // Decoded into scratch space of the largest size it can take, appended at once.
        let bound = decodeBound(input.count, limit: limit)
        var failure: HPACKError? = nil
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: bound) { o in
            do throws(HPACKError) {
                let n = try decode(input, to: o.baseAddress!, bound: bound, limit: limit)
                if n > 0 { out.append(contentsOf: UnsafeBufferPointer(rebasing: o[0..<n])) }
            } catch {
                failure = error
            }
        }
        if let failure { throw failure }
    }

    /// The room `decode(_:to:bound:limit:)` needs for `count` coded octets: at most 8/5
    /// octets out per octet in (the shortest code has 5 bits), or one past `limit` (where a
    /// longer string is known to be too long).
    @inline(__always)
    static func decodeBound(_ count: Int, limit: Int) -> Int {
        let natural = count * 8 / 5 + 1
        return limit < natural ? limit + 1 : natural
    }

    /// Decodes `input` to `p`, which has room for `bound` (`decodeBound`) octets; returns how
    /// many it wrote. The errors of `decode(_:into:limit:)`.
    @inline(__always)
    static func decode(_ input: UnsafeRawBufferPointer, to p: UnsafeMutablePointer<UInt8>, bound: Int, limit: Int) throws(HPACKError) -> Int {
        let t = decoder.table
        var state = 0
        var accept = true
        var w = 0
        var failed = false
        for byte in input {
            var e = t[state &* 16 &+ Int(byte >> 4)]
            if e & 0x30000 != 0 {
                if e & 0x20000 != 0 || w == bound { failed = true; break }  // EOS, or past the limit
                p[w] = UInt8(truncatingIfNeeded: e >> 8)
                w &+= 1
            }
            state = Int(e & 0xFF)
            e = t[state &* 16 &+ Int(byte & 0x0F)]
            if e & 0x30000 != 0 {
                if e & 0x20000 != 0 || w == bound { failed = true; break }  // EOS, or past the limit
                p[w] = UInt8(truncatingIfNeeded: e >> 8)
                w &+= 1
            }
            state = Int(e & 0xFF)
            accept = e & 0x40000 != 0
        }
        if failed { throw w == bound && w > limit ? .stringTooLong : .invalidHuffman }
        if w > limit { throw .stringTooLong }
        if !accept { throw .invalidHuffman }
        return w
    }

    /// The length in octets of `input` once Huffman-coded, padding included.
    public static func encodedLength(_ input: UnsafeRawBufferPointer) -> Int {
        var bits = 0
        lengths.withUnsafeBufferPointer { l in
            for byte in input { bits += Int(l[Int(byte)]) }
        }
        return (bits + 7) >> 3
    }

    /// Appends `input` Huffman-coded, padded with the high bits of EOS (ones) to an octet.
    public static func encode(_ input: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        encode(input, length: encodedLength(input), into: &out)
    }

    /// `encode` when the caller has `encodedLength(input)` already: the code is written into
    /// scratch space and appended at once (not an `append` per octet).
    public static func encode(_ input: UnsafeRawBufferPointer, length: Int, into out: inout [UInt8]) {
        guard length > 0 else { return }
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: length) { o in
            var w = 0
            var acc: UInt64 = 0
            var nbits = 0
            codes.withUnsafeBufferPointer { c in
                lengths.withUnsafeBufferPointer { l in
                    for byte in input {
                        let len = Int(l[Int(byte)])
                        acc = (acc << UInt64(len)) | UInt64(c[Int(byte)])
                        nbits += len
                        while nbits >= 8 {
                            nbits -= 8
                            o[w] = UInt8(truncatingIfNeeded: acc >> UInt64(nbits))
                            w += 1
                        }
                    }
                }
            }
            if nbits > 0 {
                let pad = 8 - nbits
                o[w] = UInt8(truncatingIfNeeded: (acc << UInt64(pad)) | ((1 << UInt64(pad)) - 1))
                w += 1
            }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: o[0..<w]))
        }
    }
}
