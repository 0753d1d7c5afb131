import Foundation
import Testing

/// A cache hit's body in several parts: the entry's file goes out part by part from its shared
/// handle (the `.file` responder's multipart state), on one keep-alive connection, twice.
extension CacheTests {
    @Test func severalRangesOfACacheHitAreSentAsMultipartFromTheEntry() throws {
        let b = try Backend(name: "c")
        let dir = try cacheDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let lb = try LB(Self.config(b, cacheDir: dir.path))
        let c = try RawClient(port: lb.port)
        let full = try c.get("/gen?mr=1&size=1000")
        #expect(full.status == 200 && full.body.count == 1000)
        #expect(try c.get("/gen?mr=1&size=1000").header("X-Cache") == "HIT")
        let type = try #require(full.header("Content-Type"))
        for _ in 0..<2 {
            let multi = try c.get("/gen?mr=1&size=1000", headers: ["Range: bytes=0-1,500-509"])
            #expect(multi.status == 206)
            #expect(multi.header("X-Cache") == "HIT")
            let partsType = try #require(multi.header("Content-Type"))
            #expect(partsType.hasPrefix("multipart/byteranges; boundary="))
            let boundary = String(partsType.dropFirst("multipart/byteranges; boundary=".count))
            var expected = Array("\r\n--\(boundary)\r\nContent-Type: \(type)\r\nContent-Range: bytes 0-1/1000\r\n\r\n".utf8)
            expected += full.body[0..<2]
            expected += Array("\r\n--\(boundary)\r\nContent-Type: \(type)\r\nContent-Range: bytes 500-509/1000\r\n\r\n".utf8)
            expected += full.body[500..<510]
            expected += Array("\r\n--\(boundary)--\r\n".utf8)
            #expect(multi.body == expected)
            #expect(multi.header("Content-Length") == "\(expected.count)")
        }
        // The connection goes on after the multipart bodies, and the upstream saw one request.
        #expect(try c.get("/gen?mr=1&size=1000", headers: ["Range: bytes=10-19"]).body == Array(full.body[10..<20]))
        #expect(try counts(b)["/gen?mr=1&size=1000"] == 1)
    }
}
