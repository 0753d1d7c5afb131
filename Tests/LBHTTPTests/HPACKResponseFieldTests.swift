import Testing
@testable import LBHTTP

/// The response side's encoding without a dynamic table: static names found in any case
/// without a lower-case copy, values raw (no Huffman), connection-specific names dropped.
@Suite struct HPACKResponseFieldTests {
    func index(_ name: String) -> Int {
        var n = name
        return n.withUTF8 { HPACKStaticTable.responseNameIndex(UnsafeRawBufferPointer($0)) }
    }

    @Test func everyStaticNameIsFoundInAnyCase() {
        for i in 15...HPACKStaticTable.count {
            let name = HPACKStaticTable.entries[i].name.description
            var lower = name
            let expected = lower.withUTF8 { HPACKStaticTable.nameIndex(UnsafeRawBufferPointer($0)) }
            #expect(index(name) == expected, "\(name)")
            #expect(index(name.uppercased()) == expected, "\(name)")
            let canonical = name.split(separator: "-", omittingEmptySubsequences: false)
                .map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined(separator: "-")
            #expect(index(canonical) == expected, "\(canonical)")
        }
        #expect(index("Content-Type") == 31 && index("ETag") == 34 && index("WWW-Authenticate") == 61)
    }

    @Test func connectionSpecificNamesAreMarkedForDropping() {
        for name in ["Connection", "keep-alive", "Keep-Alive", "Proxy-Connection", "Upgrade", "UPGRADE"] {
            #expect(index(name) == -1, "\(name)")
        }
        #expect(index("Transfer-Encoding") == 57)
    }

    @Test func otherNamesAndNearMissesAreNotFound() {
        // Same lengths as static names, one octet off: a letter, the dash, a case-folded
        // non-letter (CR | 0x20 is `-`, `@` | 0x20 is the backtick).
        for name in ["content-typf", "content_type", "content\rtype", "Dates", "etag1", "x-powered-by", "X-Cache", "",
                     "a", "server ", "@ge", "Lasu-modified", "access-control-allow-origiN-", "strict-transport-securitx",
                     "content-lengtH\u{0}", "connectiom", "keep_alive"] {
            #expect(index(name) == 0, "\(name.debugDescription)")
        }
    }

    @Test func aStaticNameAndARawValueDecodeBack() throws {
        let longValue = String(repeating: "v", count: 300)
        let cases: [(Int, String)] = [(15, ""), (28, "1234"), (33, "Tue, 01 Dec 2026 00:00:00 GMT"), (61, String(repeating: "w", count: 126)),
                                      (54, String(repeating: "s", count: 127)), (46, longValue)]
        var block: [UInt8] = []
        for (i, v) in cases {
            var value = v
            value.withUTF8 { HPACKCoding.writeLiteral(nameIndex: i, rawValue: UnsafeRawBufferPointer($0), into: &block) }
        }
        var d = HPACKDecoder()
        let fields = try decodeBlock(&d, block)
        #expect(sameFields(fields, cases.map { (HPACKStaticTable.entries[$0.0].name.description, $0.1) }))
        #expect(d.table.count == 0) // without indexing
        // content-length: 1234 is 0x0F 0x0D (index 28 in a 4-bit prefix), length 4 unflagged, the digits.
        var one: [UInt8] = []
        var v = "1234"
        v.withUTF8 { HPACKCoding.writeLiteral(nameIndex: 28, rawValue: UnsafeRawBufferPointer($0), into: &one) }
        #expect(one == [0x0F, 0x0D, 0x04] + Array("1234".utf8))
    }

    @Test func aNewNameIsWrittenLowerCased() throws {
        var block: [UInt8] = []
        let long = "X-" + String(repeating: "Ab", count: 70) // 142 octets: a two-octet length
        for (n, v) in [("X-Powered-By", "PHP/8"), (long, "1"), ("x-empty", "")] {
            var name = n, value = v
            name.withUTF8 { nb in
                value.withUTF8 { vb in
                    HPACKCoding.writeLiteral(lowerCasing: UnsafeRawBufferPointer(nb), rawValue: UnsafeRawBufferPointer(vb), into: &block)
                }
            }
        }
        var d = HPACKDecoder()
        #expect(sameFields(try decodeBlock(&d, block), [("x-powered-by", "PHP/8"), (long.lowercased(), "1"), ("x-empty", "")]))
        #expect(Array(block.prefix(2)) == [0x00, 12])
    }

    @Test func aResponseHeadWithoutTableIsRawLiteralsOfTheFieldsLowerCased() throws {
        var c = TestClient()
        c.send(c.headers(1, TestClient.get()))
        let fields = [("Server", "lb"), ("Date", "Tue, 01 Dec 2026 00:00:00 GMT"), ("Content-Type", "text/html"), ("Content-Length", "4096"),
                      ("Connection", "keep-alive"), ("Keep-Alive", "timeout=5"), ("Transfer-Encoding", "chunked"), ("Upgrade", "h2c"),
                      ("ETag", "\"6577-1000\""), ("X-Powered-By", "Test"), ("accept-encoding", "gzip, deflate"), ("Vary", "Accept-Encoding")]
        let answered = c.conn.sendHeaders(streamID: 1, status: 200, fields: fields, endStream: true)
        #expect(answered)
        let out = c.output()
        #expect(out.map(\.0.type) == [.headers])
        let block = out[0].1
        #expect(sameFields(try c.responseFields(block), [(":status", "200"), ("server", "lb"), ("date", "Tue, 01 Dec 2026 00:00:00 GMT"),
                                                         ("content-type", "text/html"), ("content-length", "4096"), ("etag", "\"6577-1000\""),
                                                         ("x-powered-by", "Test"), ("accept-encoding", "gzip, deflate"),
                                                         ("vary", "Accept-Encoding")]))
        // The table size update to 0 (first block), :status 200 indexed, then server (index
        // 54 = 15 + 39) with "lb" raw.
        #expect(Array(block.prefix(7)) == [0x20, 0x88, 0x0F, 39, 2] + Array("lb".utf8))
        #expect(block.contains(0x90)) // accept-encoding: gzip, deflate is static entry 16 whole
        #expect(c.decoder.table.count == 0)
    }
}
