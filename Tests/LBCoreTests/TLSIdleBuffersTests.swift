import COpenSSL
import Glibc
@testable import LBCore
import LBIO
import Testing

/// OpenSSL's record buffers on a client connection: kept while it is busy, freed when it goes
/// idle (`SSL_free_buffers`), and allocated again by the next read or write — over lb's socket
/// BIO with read-ahead, on a socketpair driven by hand.
@Suite(.serialized) struct TLSIdleBuffersTests {
    @Test func idleBuffersAreFreedAndTheStreamGoesOnReadingAndWriting() throws {
        let p = try TLSStreamTests.Pair()
        p.server.keepBuffersWhileBusy()
        var buf = [UInt8](repeating: 0, count: 64)
        for word in ["one", "two", "three"] {
            p.clientWrite(Array(word.utf8))
            #expect(try p.server.read(&buf, 64) == word.utf8.count && buf[0..<word.utf8.count] == Array(word.utf8)[...])
            #expect(try p.server.write(word, word.utf8.count) == word.utf8.count)
            // The read that finds nothing: the connection is idle, nothing is held.
            if case .done = try p.server.read(&buf, 64) { Issue.record("read returned data that was never sent") }
            #expect(p.server.releaseBuffers())
            #expect(p.clientRead(64) == Array(word.utf8))
        }
    }

    @Test func buffersHoldingBytesAreNotFreed() throws {
        let p = try TLSStreamTests.Pair()
        p.server.keepBuffersWhileBusy()
        let sent = (0..<10_000).map { UInt8(truncatingIfNeeded: $0 &* 13) }
        p.clientWrite(sent)
        var small = [UInt8](repeating: 0, count: 100)
        #expect(try p.server.read(&small, 100) == 100)
        // The rest of the record is inside OpenSSL: freeing now would lose it, so OpenSSL refuses.
        #expect(!p.server.releaseBuffers())
        var rest = [UInt8](repeating: 0, count: 20_000)
        #expect(try p.server.read(&rest, rest.count) == 9_900)
        #expect(small + rest[0..<9_900] == sent[...])
        #expect(p.server.releaseBuffers())
    }

    @Test func aWriteLeftInTheBufferIsNotFreed() throws {
        let p = try TLSStreamTests.Pair(sendBuffer: 8192)
        p.server.keepBuffersWhileBusy()
        let body = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 8) }
        var sent = 0
        var blocked = false
        while sent < body.count && !blocked {
            switch try body[sent...].withUnsafeBytes({ b in try p.server.write(b.baseAddress!, b.count) }) {
            case .done(let n): sent += n
            case .wouldBlock: blocked = true
            }
        }
        #expect(blocked) // a record sits in OpenSSL's write buffer, partly sent
        #expect(!p.server.releaseBuffers())
        var received: [UInt8] = []
        while sent < body.count {
            switch try body[sent...].withUnsafeBytes({ b in try p.server.write(b.baseAddress!, b.count) }) {
            case .done(let n): sent += n
            case .wouldBlock: received += p.clientRead(1 << 16)
            }
        }
        while received.count < body.count {
            let more = p.clientRead(1 << 16)
            if more.isEmpty { break }
            received += more
        }
        #expect(received == body)
        #expect(p.server.releaseBuffers())
    }
}
