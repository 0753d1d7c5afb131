import Testing
@testable import LBHTTP

/// A small deterministic generator (SplitMix64), so that a failure can be replayed.
struct SplitMix {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(max(n, 1))) }
}

/// Mutates `seed` a few times: flipped, inserted, deleted and duplicated octets.
func mutate(_ seed: [UInt8], _ rng: inout SplitMix) -> [UInt8] {
    var b = seed
    for _ in 0...rng.below(6) {
        switch rng.below(5) {
        case 0 where !b.isEmpty: b[rng.below(b.count)] ^= UInt8(1 << rng.below(8))
        case 1 where !b.isEmpty: b[rng.below(b.count)] = UInt8(truncatingIfNeeded: rng.next())
        case 2: b.insert(UInt8(truncatingIfNeeded: rng.next()), at: rng.below(b.count + 1))
        case 3 where !b.isEmpty: b.remove(at: rng.below(b.count))
        case 4 where b.count > 2:
            let s = rng.below(b.count - 1), n = rng.below(min(32, b.count - s)) + 1
            b.insert(contentsOf: b[s..<s + n], at: rng.below(b.count))
        default: break
        }
    }
    return b
}

@Suite struct H2FuzzTests {
    /// Valid client traffic: requests with and without bodies, CONTINUATION, trailers, pings,
    /// settings, window updates and resets.
    static let seed: [UInt8] = {
        var e = HPACKEncoder()
        var out: [UInt8] = [7] // split step
        out += rawFrame(.settings, settingsPayload([(.initialWindowSize, 100), (.headerTableSize, 256)]))
        out += rawFrame(.headers, flags: H2Flags.endHeaders | H2Flags.endStream, stream: 1, encodeBlock(&e, TestClient.get("/a")))
        let post = encodeBlock(&e, TestClient.post(length: 4) + [("cookie", "a=1"), ("cookie", "b=2")])
        out += rawFrame(.headers, stream: 3, Array(post[0..<5]))
        out += rawFrame(.continuation, flags: H2Flags.endHeaders, stream: 3, Array(post[5...]))
        out += rawFrame(.data, flags: H2Flags.padded, stream: 3, [2, 0x61, 0x62, 0, 0])
        out += rawFrame(.data, stream: 3, [0x63, 0x64])
        out += rawFrame(.headers, flags: H2Flags.endHeaders | H2Flags.endStream, stream: 3, encodeBlock(&e, [("x-t", "1")]))
        out += rawFrame(.ping, [1, 2, 3, 4, 5, 6, 7, 8])
        out += rawFrame(.windowUpdate, stream: 0, u32(100_000))
        out += rawFrame(.windowUpdate, stream: 1, u32(5000))
        out += rawFrame(.priority, stream: 5, [0, 0, 0, 1, 9])
        out += rawFrame(.headers, flags: H2Flags.endHeaders | H2Flags.priority, stream: 5, [0, 0, 0, 3, 9] + encodeBlock(&e, TestClient.get("/b")))
        out += rawFrame(.rstStream, stream: 5, u32(8))
        out += rawFrame(.goaway, u32(5) + u32(0))
        return out
    }()

    @Test func seedRunsCleanly() {
        let s = Self.seed.withUnsafeBytes { H2Fuzz.connection($0) }
        // Stream 5 is reset by the client before its body is sent.
        #expect(s.requests == 3 && s.bodyOctets == 4 && s.trailers == 1 && s.goaway == nil)
        // Stream 1 completes after its WINDOW_UPDATE; stream 3 waits on its 100-octet window.
        #expect(s.responsesComplete == 1 && s.responseOctets > 3100, "\(s)")
    }

    @Test func mutatedConnectionInputsKeepTheInvariants() {
        var rng = SplitMix(state: 0x5EED)
        var requests = 0, errors = 0
        for _ in 0..<1500 {
            let input = mutate(Self.seed, &rng)
            let s = input.withUnsafeBytes { H2Fuzz.connection($0) }
            requests += s.requests
            if s.goaway != nil { errors += 1 }
        }
        // The mutations reach both the request path and the error paths.
        #expect(requests > 1000 && errors > 100)
    }

    @Test func mutatedHeaderBlocksKeepTheInvariants() {
        var rng = SplitMix(state: 0xB10C)
        var seeds: [[UInt8]] = RFC7541.c3.map { [UInt8(hex($0.wire).count - 1)] + hex($0.wire) }
        seeds += RFC7541.c6.map { [UInt8(hex($0.wire).count - 1)] + hex($0.wire) }
        seeds.append([10] + RFC7541.c4.flatMap { hex($0.wire) })
        for _ in 0..<3000 {
            let input = mutate(seeds[rng.below(seeds.count)], &rng)
            input.withUnsafeBytes { H2Fuzz.hpack($0) }
        }
    }
}
