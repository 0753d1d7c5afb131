import Testing
@testable import LBHTTP

/// Bytes from the hex dumps of RFC 7541 (spaces ignored).
func hex(_ s: String) -> [UInt8] {
    let digits = s.utf8.filter { $0 != 0x20 && $0 != 0x0A }
    var out: [UInt8] = []
    var i = digits.startIndex
    while i != digits.endIndex {
        let hi = digits[i], lo = digits[digits.index(after: i)]
        func v(_ c: UInt8) -> UInt8 { c <= 0x39 ? c - 0x30 : (c | 0x20) - 0x61 + 10 }
        out.append(v(hi) << 4 | v(lo))
        i = digits.index(i, offsetBy: 2)
    }
    return out
}

func decodeBlock(_ d: inout HPACKDecoder, _ bytes: [UInt8]) throws -> [(String, String)] {
    var list = HPACKHeaderList()
    try bytes.withUnsafeBytes { b in try d.decode(b, into: &list) }
    return (0..<list.count).map { list.text($0) }
}

func encodeBlock(_ e: inout HPACKEncoder, _ fields: [(String, String)], indexing: HPACKIndexing = .incremental) -> [UInt8] {
    var out: [UInt8] = []
    e.beginBlock(into: &out)
    for (n, v) in fields { e.encode(n, v, indexing: indexing, into: &out) }
    return out
}

/// One example of RFC 7541 Appendix C: the list, its encoding, the table size after it.
struct HPACKExample: Sendable {
    var fields: [(String, String)]
    var wire: String
    var tableSize: Int
}


enum RFC7541 {
    static let request1: [(String, String)] = [(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "www.example.com")]
    static let request2 = request1 + [("cache-control", "no-cache")]
    static let request3: [(String, String)] = [(":method", "GET"), (":scheme", "https"), (":path", "/index.html"),
                                               (":authority", "www.example.com"), ("custom-key", "custom-value")]
    static let response1: [(String, String)] = [(":status", "302"), ("cache-control", "private"),
                                                ("date", "Mon, 21 Oct 2013 20:13:21 GMT"), ("location", "https://www.example.com")]
    static let response2: [(String, String)] = [(":status", "307")] + response1.dropFirst()
    static let response3: [(String, String)] = [(":status", "200"), ("cache-control", "private"),
                                                ("date", "Mon, 21 Oct 2013 20:13:22 GMT"), ("location", "https://www.example.com"),
                                                ("content-encoding", "gzip"),
                                                ("set-cookie", "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1")]

    /// C.3: requests without Huffman coding.
    static let c3 = [
        HPACKExample(fields: request1, wire: "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d", tableSize: 57),
        HPACKExample(fields: request2, wire: "8286 84be 5808 6e6f 2d63 6163 6865", tableSize: 110),
        HPACKExample(fields: request3, wire: "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65", tableSize: 164),
    ]
    /// C.4: the same with Huffman coding.
    static let c4 = [
        HPACKExample(fields: request1, wire: "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff", tableSize: 57),
        HPACKExample(fields: request2, wire: "8286 84be 5886 a8eb 1064 9cbf", tableSize: 110),
        HPACKExample(fields: request3, wire: "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf", tableSize: 164),
    ]
    /// C.5: responses without Huffman coding, table size 256 (evictions).
    static let c5 = [
        HPACKExample(fields: response1, wire: """
            4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133
            2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d
            """, tableSize: 222),
        HPACKExample(fields: response2, wire: "4803 3330 37c1 c0bf", tableSize: 222),
        HPACKExample(fields: response3, wire: """
            88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d
            54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049
            5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31
            """, tableSize: 215),
    ]
    /// C.6: the same with Huffman coding.
    static let c6 = [
        HPACKExample(fields: response1, wire: """
            4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
            2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3
            """, tableSize: 222),
        HPACKExample(fields: response2, wire: "4883 640e ffc1 c0bf", tableSize: 222),
        HPACKExample(fields: response3, wire: """
            88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
            77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
            9587 3160 65c0 03ed 4ee5 b106 3d50 07
            """, tableSize: 215),
    ]
}

func sameFields(_ a: [(String, String)], _ b: [(String, String)]) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
}

@Suite struct HPACKTests {
    // MARK: RFC 7541 Appendix C, byte for byte

    @Test func integersEncodeAsAppendixC1() throws {
        var out: [UInt8] = []
        HPACKCoding.writeInteger(10, prefixBits: 5, flags: 0xE0, into: &out)
        #expect(out == [0xEA])
        out = []
        HPACKCoding.writeInteger(1337, prefixBits: 5, flags: 0, into: &out)
        #expect(out == [0x1F, 0x9A, 0x0A])
        out = []
        HPACKCoding.writeInteger(42, prefixBits: 8, flags: 0, into: &out)
        #expect(out == [42])
        var i = 0
        let v = try [UInt8]([0x1F, 0x9A, 0x0A]).withUnsafeBytes { b in try HPACKCoding.readInteger(b, &i, prefixBits: 5) }
        #expect(v == 1337 && i == 3)
    }

    @Test func literalWithIndexingIsAddedToTheTable() throws {
        var d = HPACKDecoder()
        let got = try decodeBlock(&d, hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572"))
        #expect(sameFields(got, [("custom-key", "custom-header")]))
        #expect(d.table.size == 55 && d.table.count == 1)
        var e = HPACKEncoder(huffman: .never)
        #expect(encodeBlock(&e, [("custom-key", "custom-header")]) == hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572"))
    }

    @Test func literalWithoutIndexingLeavesTheTableEmpty() throws {
        var d = HPACKDecoder()
        #expect(sameFields(try decodeBlock(&d, hex("040c 2f73 616d 706c 652f 7061 7468")), [(":path", "/sample/path")]))
        #expect(d.table.count == 0)
        var e = HPACKEncoder(huffman: .never)
        #expect(encodeBlock(&e, [(":path", "/sample/path")], indexing: .none) == hex("040c 2f73 616d 706c 652f 7061 7468"))
    }

    @Test func literalNeverIndexedLeavesTheTableEmpty() throws {
        var d = HPACKDecoder()
        #expect(sameFields(try decodeBlock(&d, hex("1008 7061 7373 776f 7264 0673 6563 7265 74")), [("password", "secret")]))
        #expect(d.table.count == 0)
        var e = HPACKEncoder(huffman: .never)
        #expect(encodeBlock(&e, [("password", "secret")], indexing: .never) == hex("1008 7061 7373 776f 7264 0673 6563 7265 74"))
    }

    @Test func indexedFieldFromTheStaticTable() throws {
        var d = HPACKDecoder()
        #expect(sameFields(try decodeBlock(&d, [0x82]), [(":method", "GET")]))
    }

    @Test(arguments: [("C.3", RFC7541.c3, 4096, HPACKHuffmanPolicy.never), ("C.4", RFC7541.c4, 4096, .always),
                      ("C.5", RFC7541.c5, 256, .never), ("C.6", RFC7541.c6, 256, .always)])
    func appendixExamplesDecodeAndEncodeByteForByte(_ name: String, _ examples: [HPACKExample], _ tableSize: Int, _ huffman: HPACKHuffmanPolicy) throws {
        var d = HPACKDecoder(maxTableSize: tableSize)
        var e = HPACKEncoder(capacity: tableSize, huffman: huffman)
        for (k, ex) in examples.enumerated() {
            let wire = hex(ex.wire)
            let got = try decodeBlock(&d, wire)
            #expect(sameFields(got, ex.fields), "\(name).\(k + 1) decode")
            #expect(d.table.size == ex.tableSize, "\(name).\(k + 1) decoder table size")
            let encoded = encodeBlock(&e, ex.fields)
            #expect(encoded == wire, "\(name).\(k + 1) encode")
            #expect(e.table.size == ex.tableSize, "\(name).\(k + 1) encoder table size")
        }
    }

    @Test func appendixExamplesDecodeAfterAnyTableSizeUpdate() throws {
        // A size update to 256 at the start of the first block, then C.5 as is.
        var d = HPACKDecoder(maxTableSize: 4096)
        var first = [UInt8]()
        HPACKCoding.writeInteger(256, prefixBits: 5, flags: 0x20, into: &first)
        first += hex(RFC7541.c5[0].wire)
        _ = try decodeBlock(&d, first)
        #expect(d.table.maxSize == 256)
        for ex in RFC7541.c5.dropFirst() { #expect(sameFields(try decodeBlock(&d, hex(ex.wire)), ex.fields)) }
        #expect(d.table.size == 215)
    }

    @Test func encoderSignalsTableSizeChangesAtTheNextBlock() throws {
        var e = HPACKEncoder(capacity: 4096, huffman: .never)
        var d = HPACKDecoder(maxTableSize: 4096)
        _ = try decodeBlock(&d, encodeBlock(&e, RFC7541.request3))
        e.setPeerTableSize(0)
        e.setPeerTableSize(100)
        let block = encodeBlock(&e, RFC7541.request3)
        // Smallest size (0) then the final one (100), as RFC 7541 §4.2 asks.
        #expect(Array(block.prefix(3)) == [0x20, 0x3F, 0x45])
        #expect(sameFields(try decodeBlock(&d, block), RFC7541.request3))
        #expect(d.table.maxSize == 100 && e.table.maxSize == 100)
        #expect(d.table.size == e.table.size)
    }

    // MARK: Huffman

    @Test func huffmanCodesAreTheRFCs() {
        // A few rows of Appendix B: '0' 00000 (5), 'a' 00011 (5), ' ' 010100 (6), EOS 30 ones.
        #expect(HPACKHuffman.codes[0x30] == 0x0 && HPACKHuffman.lengths[0x30] == 5)
        #expect(HPACKHuffman.codes[0x61] == 0x3)
        #expect(HPACKHuffman.codes[0x20] == 0x14)
        #expect(HPACKHuffman.codes[256] == 0x3FFF_FFFF && HPACKHuffman.lengths[256] == 30)
        #expect(HPACKHuffman.codes[0] == 0x1FF8 && HPACKHuffman.lengths[0] == 13)
        #expect(HPACKHuffman.codes[255] == 0x3FF_FFEE && HPACKHuffman.lengths[255] == 26)
    }

    @Test func huffmanRoundTripsEveryOctet() throws {
        var all = [UInt8](0...255) + [UInt8](0...255).reversed()
        all += Array("www.example.com".utf8)
        var coded: [UInt8] = []
        all.withUnsafeBytes { HPACKHuffman.encode($0, into: &coded) }
        #expect(coded.count == all.withUnsafeBytes { HPACKHuffman.encodedLength($0) })
        var back: [UInt8] = []
        try coded.withUnsafeBytes { b in try HPACKHuffman.decode(b, into: &back) }
        #expect(back == all)
    }

    @Test(arguments: [
        ([UInt8]([0xFF, 0xFF, 0xFF, 0xFF]), "EOS in the string"),
        ([0x1F, 0xFF], "'a' then 11 padding bits: longer than 7"),
        ([0x00], "'0' then 000 padding: not ones"),
        ([0xFE], "7 ones of padding after nothing but an unfinished code"),
    ])
    func malformedHuffmanIsRefused(_ bytes: [UInt8], _ why: String) {
        var out: [UInt8] = []
        #expect(throws: HPACKError.invalidHuffman, "\(why)") {
            try bytes.withUnsafeBytes { b in try HPACKHuffman.decode(b, into: &out) }
        }
    }

    // MARK: Malformed blocks

    @Test(arguments: [
        (hex("80"), HPACKError.invalidIndex),                       // index 0
        (hex("be"), .invalidIndex),                                 // 62 with an empty dynamic table
        (hex("ff ff ff ff ff 0f"), .integerOverflow),               // beyond 2^31 - 1
        (hex("ff 80 80 80 80 80 01"), .integerOverflow),            // too many continuation octets
        (hex("41 0f 77 77"), .truncated),                           // value shorter than its length
        (hex("ff"), .truncated),                                    // integer cut short
        (hex("82 20"), .lateTableSizeUpdate),                       // update after a field
        (hex("3f e2 1f"), .invalidTableSizeUpdate),                 // 4097 > 4096
        (hex("41 81 ff"), .invalidHuffman),                         // Huffman value with bad padding
    ])
    func malformedBlocksAreCompressionErrors(_ block: [UInt8], _ error: HPACKError) {
        var d = HPACKDecoder()
        #expect(throws: error) { try decodeBlock(&d, block) }
    }

    @Test func hpackBombStopsAtTheHeaderListCap() throws {
        // One 4000-octet entry, then 100 one-octet references to it: 400 KB from 100 octets.
        var e = HPACKEncoder(huffman: .never)
        let big = String(repeating: "x", count: 4000)
        var first = encodeBlock(&e, [("bomb", big)])
        var d = HPACKDecoder(maxTableSize: 4096, maxHeaderListSize: 16384)
        _ = try decodeBlock(&d, first)
        first = [UInt8](repeating: 0xBE, count: 100)
        var list = HPACKHeaderList()
        #expect(throws: HPACKError.headerListTooLarge) {
            try first.withUnsafeBytes { b in try d.decode(b, into: &list) }
        }
        // Nothing past the cap was copied.
        #expect(list.bytes.count <= 16384)
    }

    @Test func longLiteralIsRefusedBeforeItIsCopied() {
        var d = HPACKDecoder(maxTableSize: 4096, maxHeaderListSize: 100)
        var block: [UInt8] = [0x00]
        HPACKCoding.writeInteger(200, prefixBits: 7, flags: 0, into: &block)
        block += [UInt8](repeating: 0x61, count: 200) + [0x00]
        #expect(throws: HPACKError.stringTooLong) { try decodeBlock(&d, block) }
    }

    @Test func dynamicTableEvictsAndCompactsWithoutLosingEntries() throws {
        // Many insertions through a small table: the decoder and encoder stay in step.
        var e = HPACKEncoder(capacity: 256, huffman: .whenShorter)
        var d = HPACKDecoder(maxTableSize: 256)
        for k in 0..<500 {
            let fields = [("x-key-\(k % 7)", String(repeating: "v", count: k % 90)), ("x-other", "\(k)")]
            let got = try decodeBlock(&d, encodeBlock(&e, fields))
            #expect(sameFields(got, fields))
            #expect(d.table.size == e.table.size && d.table.size <= 256)
        }
    }

    @Test(arguments: [64, 256, 4096])
    func dynamicTableMatchesAPlainListModel(_ capacity: Int) {
        // The table against the RFC's description done naively: a list, newest first, evicted
        // from the end while the sizes (name + value + 32) exceed the maximum.
        var t = HPACKDynamicTable(capacity: capacity)
        var model: [([UInt8], [UInt8])] = []
        var maxSize = capacity
        var rng = SplitMix(state: UInt64(capacity))
        for step in 0..<3000 {
            if step % 500 == 499 {
                maxSize = rng.below(capacity + 1)
                t.setMaxSize(maxSize)
            }
            let name = [UInt8](repeating: UInt8(0x61 + step % 26), count: rng.below(capacity / 4) + 1)
            let value = [UInt8](repeating: UInt8(0x30 + step % 10), count: rng.below(capacity / 2))
            name.withUnsafeBytes { n in value.withUnsafeBytes { v in t.insert(name: n, value: v) } }
            model.insert((name, value), at: 0)
            while model.reduce(0, { $0 + $1.0.count + $1.1.count + 32 }) > maxSize { model.removeLast() }
            #expect(t.count == model.count)
            #expect(t.size == model.reduce(0, { $0 + $1.0.count + $1.1.count + 32 }))
            for i in 0..<model.count {
                let same = t.withEntry(i + 1) { n, v in Array(n) == model[i].0 && Array(v) == model[i].1 }
                #expect(same, "entry \(i + 1) after insertion \(step)")
            }
        }
    }

    @Test func entryLargerThanTheTableEmptiesIt() throws {
        var t = HPACKDynamicTable(capacity: 64)
        "ab".utf8CString.withUnsafeBytes { n in
            t.insert(name: UnsafeRawBufferPointer(rebasing: n[0..<2]), value: UnsafeRawBufferPointer(rebasing: n[0..<2]))
        }
        #expect(t.count == 1 && t.size == 36)
        let big = [UInt8](repeating: 0x61, count: 40)
        big.withUnsafeBytes { t.insert(name: $0, value: $0) }
        #expect(t.count == 0 && t.size == 0)
    }
}
