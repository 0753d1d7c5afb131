import Testing
@testable import LBHTTP

/// `H2Connection.addHeaderLines` encodes a head's `Name: value` lines in place, several at a
/// time: its HEADERS must be what `addHeader` field by field makes of the same lines, and the
/// framing it reads what the lines say, with and without the encoder's table.
@Suite struct H2HeaderLinesTests {
    /// A head's fields as the runtime writes them, and each field as `addHeader` takes it.
    static let heads: [(String, [(String, String)], H2Connection.BodyFields)] = [
        ("Server: lb\r\nDate: Tue, 01 Dec 2026 00:00:00 GMT\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n",
         [("Server", "lb"), ("Date", "Tue, 01 Dec 2026 00:00:00 GMT"), ("Content-Type", "text/plain"), ("Content-Length", "2")],
         H2Connection.BodyFields(chunked: false, contentLength: 2)),
        // LF alone, white space around values, a line without a colon, connection-specific
        // fields dropped, chunked (in any case) read, accept-encoding's whole static entry.
        ("X-A:  1 \nno colon here\r\nConnection: keep-alive\r\nTransfer-Encoding: gzip, CHUNKED\r\nAccept-Encoding: gzip, deflate\r\nX-Empty:\r\n",
         [("X-A", "1"), ("Connection", "keep-alive"), ("Transfer-Encoding", "gzip, CHUNKED"), ("Accept-Encoding", "gzip, deflate"),
          ("X-Empty", "")],
         H2Connection.BodyFields(chunked: true, contentLength: nil)),
        // A value of 127 octets and more (a longer length prefix), one longer than 8 KiB.
        ("Set-Cookie: \(String(repeating: "c", count: 127))\r\nX-Big: \(String(repeating: "b", count: 9000))\r\n",
         [("Set-Cookie", String(repeating: "c", count: 127)), ("X-Big", String(repeating: "b", count: 9000))],
         H2Connection.BodyFields()),
        // Many short lines: more than one pass over the lines.
        ((0..<200).map { "x\($0):v\r\n" }.joined(), (0..<200).map { ("x\($0)", "v") }, H2Connection.BodyFields()),
        ("", [], H2Connection.BodyFields()),
    ]

    @Test(arguments: [0, 4096], 0..<heads.count)
    func linesAreEncodedAsFieldByField(_ tableSize: Int, _ k: Int) throws {
        let (text, fields, framing) = Self.heads[k]
        var config = H2Config()
        config.responseTableSize = tableSize
        var byLines = TestClient(config: config), byField = TestClient(config: config)
        for id: UInt32 in [1, 3] { // the second block with a table that has the first's entries
            byLines.send(byLines.headers(id, TestClient.get()))
            byField.send(byField.headers(id, TestClient.get()))
            #expect(byLines.conn.beginHeaders(streamID: id, status: 200) && byField.conn.beginHeaders(streamID: id, status: 200))
            var t = text
            let read = t.withUTF8 { byLines.conn.addHeaderLines(UnsafeRawBufferPointer($0)) }
            #expect(read == framing)
            for (name, value) in fields {
                var n = name, v = value
                n.withUTF8 { nb in v.withUTF8 { vb in byField.conn.addHeader(name: UnsafeRawBufferPointer(nb), value: UnsafeRawBufferPointer(vb)) } }
            }
            #expect(byLines.conn.endHeaders(streamID: id, endStream: true) && byField.conn.endHeaders(streamID: id, endStream: true))
            let a = byLines.conn.takeOutput(), b = byField.conn.takeOutput()
            #expect(a == b, "\(k) table \(tableSize) stream \(id)")
            #expect(!a.isEmpty)
        }
    }
}
