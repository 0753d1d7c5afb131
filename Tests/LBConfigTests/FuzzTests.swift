import Testing
@testable import LBConfig

/// Mutates valid configs (delete, duplicate, swap tokens, random bytes) and asserts that loading
/// never crashes or hangs: every outcome is a table or a clean ConfigError.
@Suite struct FuzzTests {
    static let seeds = [CompileTests.composeSite, LocationTests.config, """
    worker_processes 2;
    events { worker_connections 64; }
    http {
        log_format x '$a' "$b" $c;
        map $http_upgrade $u { default upgrade; '' close; ~^x(?<n>\\d+) $n; }
        upstream u { hash $remote_addr consistent; server 127.0.0.1:1 weight=2; keepalive 4; }
        server { listen [::1]:80 default_server; server_name ~^w+\\.x$ .y.z; error_page 404 =200 @n;
            location @n { return 404; } location / { try_files $uri $uri/ =404; expires -1h; allow 10.0.0.0/8; deny all; } }
    }
    """]

    struct SplitMix: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static func mutate(_ text: String, _ rng: inout SplitMix) -> String {
        var words = text.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
        var bytes = Array(text.utf8)
        switch rng.next() % 6 {
        case 0 where !words.isEmpty:
            words.remove(at: Int(rng.next() % UInt64(words.count)))
            return words.joined(separator: " ")
        case 1 where !words.isEmpty:
            let i = Int(rng.next() % UInt64(words.count))
            words.insert(words[i], at: i)
            return words.joined(separator: " ")
        case 2 where words.count > 1:
            let i = Int(rng.next() % UInt64(words.count)), j = Int(rng.next() % UInt64(words.count))
            words.swapAt(i, j)
            return words.joined(separator: " ")
        case 3 where !bytes.isEmpty:
            for _ in 0..<(1 + rng.next() % 4) {
                bytes[Int(rng.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: rng.next())
            }
            return String(decoding: bytes, as: UTF8.self)
        case 4 where !bytes.isEmpty:
            let specials = Array("{};\"'$\\#\n~=^*@".utf8)
            bytes.insert(specials[Int(rng.next() % UInt64(specials.count))], at: Int(rng.next() % UInt64(bytes.count)))
            return String(decoding: bytes, as: UTF8.self)
        default:
            return String(decoding: bytes.prefix(Int(rng.next() % UInt64(bytes.count + 1))), as: UTF8.self)
        }
    }

    @Test func mutatedConfigsFailCleanly() {
        var rng = SplitMix(state: 0x1b_2025)
        var ok = 0, failed = 0
        for round in 0..<3000 {
            var text = Self.seeds[round % Self.seeds.count]
            for _ in 0..<(1 + rng.next() % 3) { text = Self.mutate(text, &rng) }
            do {
                _ = try load(text)
                ok += 1
            } catch {
                failed += 1
                #expect(!error.message.isEmpty)
                if let l = error.location { #expect(l.line >= 1) }
            }
        }
        // Both outcomes occur, so the mutations are neither all harmless nor all fatal.
        #expect(ok > 0 && failed > 0)
    }
}
