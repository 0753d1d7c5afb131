import COpenSSL
import Foundation
import Glibc
import LBConfig
import LBIO
import Testing

/// The TLS record layer over a non-blocking socketpair: lb's `TLSStream` as the server, a plain
/// OpenSSL client on the other end, both driven by hand (no event loop).
@Suite(.serialized) struct TLSStreamTests {
    /// Certificates made once by Tests/support/make-test-certs.sh.
    static let certs: String = {
        var url = URL(fileURLWithPath: #filePath)
        while !FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { url.deleteLastPathComponent() }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lb-tls-unit-certs-\(getpid())").path
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = [url.appendingPathComponent("Tests/support/make-test-certs.sh").path, dir]
        try? p.run()
        p.waitUntilExit()
        return dir
    }()

    /// The server context, built by the configuration loader as lb builds it.
    static let table: RoutingTable = {
        let c = certs
        let text = "events {} http { server { listen 127.0.0.1:1 ssl; ssl_certificate \(c)/a-ec.crt; ssl_certificate_key \(c)/a-ec.key; } }"
        return try! ConfigLoader(prefix: "/tmp").load(text: text).table
    }()

    /// A connected pair: lb's server stream and an OpenSSL client, handshake done.
    final class Pair {
        let server: TLSStream
        let client: OpaquePointer
        let clientCtx: OpaquePointer
        let fds: (Int32, Int32)

        init(sendBuffer: Int32? = nil) throws {
            var sv: [Int32] = [0, 0]
            guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0, &sv) == 0 else { throw HarnessError("socketpair") }
            fds = (sv[0], sv[1])
            if var size = sendBuffer {
                setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &size, 4)
                setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &size, 4)
            }
            let listener = TLSStreamTests.table.listeners[0].tls!
            server = TLSStream(context: listener.defaultContext.ctx, fd: sv[0], appData: Unmanaged.passUnretained(listener).toOpaque())!
            clientCtx = SSL_CTX_new(TLS_client_method())!
            _ = SSL_CTX_load_verify_locations(clientCtx, TLSStreamTests.certs + "/ca.crt", nil)
            SSL_CTX_set_verify(clientCtx, SSL_VERIFY_PEER, nil)
            client = SSL_new(clientCtx)!
            SSL_set_fd(client, sv[1])
            _ = lb_SSL_set_tlsext_host_name(client, "a.test")
            SSL_set_connect_state(client)
            var serverDone = false, clientDone = false
            for _ in 0..<100 where !(serverDone && clientDone) {
                if !clientDone { clientDone = SSL_do_handshake(client) == 1 }
                if !serverDone, case .done = try server.handshake() { serverDone = true }
            }
            guard serverDone && clientDone else { throw HarnessError("handshake did not finish") }
            // TLS 1.3 session tickets follow the handshake: let the client consume them.
            _ = clientRead(1)
        }

        deinit {
            SSL_free(client)
            SSL_CTX_free(clientCtx)
            close(fds.0)
            close(fds.1)
        }

        /// Up to `max` bytes the client can read now.
        func clientRead(_ max: Int) -> [UInt8] {
            var buf = [UInt8](repeating: 0, count: max)
            var n = 0
            guard SSL_read_ex(client, &buf, max, &n) == 1 else { return [] }
            return Array(buf[0..<n])
        }

        func clientWrite(_ b: [UInt8]) {
            var n = 0
            precondition(SSL_write_ex(client, b, b.count, &n) == 1 && n == b.count)
        }

        /// Bytes waiting in the client's socket (not yet read by its TLS layer).
        var onTheWire: Int {
            var buf = [UInt8](repeating: 0, count: 1 << 20)
            return max(0, recv(fds.1, &buf, buf.count, Int32(MSG_PEEK)))
        }
    }

    struct HarnessError: Error { let what: String; init(_ w: String) { what = w } }

    @Test func handshakeThenBytesBothWays() throws {
        let p = try Pair()
        #expect(p.server.established && p.server.protocolName == "TLSv1.3" && p.server.serverName == "a.test")
        #expect(try p.server.write("hello", 5) == 5)
        #expect(p.clientRead(100) == Array("hello".utf8))
        p.clientWrite(Array("ping".utf8))
        var buf = [UInt8](repeating: 0, count: 64)
        #expect(try p.server.read(&buf, 64) == 4 && buf[0..<4] == Array("ping".utf8)[...])
        // Nothing more: would block, like an empty socket.
        if case .done = try p.server.read(&buf, 64) { Issue.record("read returned data that was never sent") }
    }

    @Test func writevSendsAShortHeadAndItsBodyInOneRecord() throws {
        let p = try Pair()
        #expect(p.onTheWire == 0)
        let head = [UInt8](repeating: 0x48, count: 100), body = [UInt8](repeating: 0x62, count: 200)
        let n = try head.withUnsafeBytes { a in try body.withUnsafeBytes { b in try p.server.writev(a, b) } }
        #expect(n == 300)
        // One TLS 1.3 record: 5-byte header, 300 bytes, the inner content type, a 16-byte tag.
        #expect(p.onTheWire == 5 + 300 + 1 + 16)
        #expect(p.clientRead(1000) == head + body)
    }

    @Test func aReadStopsAtTheCallersLimitAndTheRestIsReadNext() throws {
        let p = try Pair()
        let sent = (0..<10_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        p.clientWrite(sent)
        var small = [UInt8](repeating: 0, count: 100)
        #expect(try p.server.read(&small, 100) == 100)
        // The rest of the record is inside OpenSSL, not in the socket: still readable at once.
        #expect(p.onTheWireAtServer == 0)
        var rest = [UInt8](repeating: 0, count: 20_000)
        #expect(try p.server.read(&rest, rest.count) == 9_900)
        #expect(small + rest[0..<9_900] == sent[...])
    }

    @Test func aShortRecvEndsTheReadWithoutAnotherRecv() throws {
        let p = try Pair()
        p.clientWrite(Array("ping".utf8))
        shutdown(p.fds.1, Int32(SHUT_WR)) // the client's FIN is already behind its record
        var buf = [UInt8](repeating: 0, count: 64)
        // One recv took the record (and came back short): the read stops there. Had it called
        // recv again, it would have met the FIN and marked the stream finished.
        #expect(try p.server.read(&buf, 64) == 4 && buf[0..<4] == Array("ping".utf8)[...])
        #expect(!p.server.failed)
        // The next call (after a readiness event) reads the socket again and sees the end.
        #expect(try p.server.read(&buf, 64) == 0)
        #expect(p.server.failed)
    }

    @Test func bytesArrivingAfterAShortReadAreReadAtTheNextCall() throws {
        let p = try Pair()
        var buf = [UInt8](repeating: 0, count: 64)
        for word in ["one", "two", "three"] {
            p.clientWrite(Array(word.utf8))
            #expect(try p.server.read(&buf, 64) == word.utf8.count && buf[0..<word.utf8.count] == Array(word.utf8)[...])
            if case .done = try p.server.read(&buf, 64) { Issue.record("read returned data that was never sent") }
        }
    }

    @Test func aBlockedWriteIsRetriedWithTheSameBytesAndLosesNothing() throws {
        let p = try Pair(sendBuffer: 8192)
        let head = Array("HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n".utf8)
        let body = (0..<1_000_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 9) }
        var headSent = 0, bodySent = 0, blocked = 0
        var received: [UInt8] = []
        while headSent < head.count || bodySent < body.count {
            // The caller's rule: after .wouldBlock, the same bytes (from wherever they are now).
            let r = try head[headSent...].withUnsafeBytes { a in try body[bodySent...].withUnsafeBytes { b in try p.server.writev(a, b) } }
            switch r {
            case .done(let n):
                let fromHead = min(n, head.count - headSent)
                headSent += fromHead
                bodySent += n - fromHead
            case .wouldBlock:
                blocked += 1
                received += p.clientRead(1 << 16)
            }
        }
        while received.count < head.count + body.count {
            let more = p.clientRead(1 << 16)
            if more.isEmpty { break }
            received += more
        }
        #expect(blocked > 0) // the socket did fill: the retry path ran
        #expect(received == head + body)
    }

    @Test func shutdownSendsCloseNotify() throws {
        let p = try Pair()
        p.server.shutdown()
        var buf = [UInt8](repeating: 0, count: 16)
        var n = 0
        #expect(SSL_read_ex(p.client, &buf, 16, &n) == 0 && SSL_get_error(p.client, 0) == SSL_ERROR_ZERO_RETURN)
    }

    @Test func thePeersCloseIsTheEndOfTheStream() throws {
        let p = try Pair()
        _ = SSL_shutdown(p.client)
        var buf = [UInt8](repeating: 0, count: 16)
        #expect(try p.server.read(&buf, 16) == 0)
        // A failed or closed stream sends no close_notify back.
        p.server.shutdown()
        #expect(p.onTheWire == 0)
    }

    @Test func garbageFailsTheHandshakeWithOpenSSLsWords() throws {
        var sv: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0, &sv) == 0)
        defer { close(sv[0]); close(sv[1]) }
        let listener = TLSStreamTests.table.listeners[0].tls!
        let s = TLSStream(context: listener.defaultContext.ctx, fd: sv[0], appData: Unmanaged.passUnretained(listener).toOpaque())!
        let junk = Array("\u{16}\u{03}\u{01}\u{00}\u{05}hello".utf8)
        _ = write(sv[1], junk, junk.count)
        #expect(throws: TLSError.self) { _ = try s.handshake() }
        #expect(s.lastError.hasPrefix("SSL_do_handshake() failed (SSL: error:"))
    }
}

extension TLSStreamTests.Pair {
    /// Bytes waiting in the server's socket.
    var onTheWireAtServer: Int {
        var buf = [UInt8](repeating: 0, count: 1 << 16)
        return max(0, recv(fds.0, &buf, buf.count, Int32(MSG_PEEK)))
    }
}

/// `.done(n)` compares with `n`.
func == (r: IOResult<Int>, n: Int) -> Bool {
    if case .done(let k) = r { return k == n }
    return false
}
