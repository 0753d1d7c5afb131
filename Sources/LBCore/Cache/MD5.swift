import Glibc

/// MD5 (RFC 1321), used as nginx uses it: to name cache files after their key, so that
/// `echo -n KEY | md5sum` finds an entry on disk. Not used for anything security-related.
/// Runs on every cache lookup, so it works on raw bytes without allocating.
public enum MD5 {
    static let shifts: [UInt32] = [7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
                                   5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20,
                                   4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
                                   6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21]
    /// floor(abs(sin(i + 1)) × 2^32).
    static let table: [UInt32] = (0..<64).map { i in UInt32(truncatingIfNeeded: Int64((abs(sin(Double(i + 1))) * 4_294_967_296.0).rounded(.down))) }

    struct State {
        var a: UInt32 = 0x6745_2301, b: UInt32 = 0xEFCD_AB89, c: UInt32 = 0x98BA_DCFE, d: UInt32 = 0x1032_5476

        mutating func block(_ p: UnsafeRawPointer, _ k: UnsafePointer<UInt32>, _ r: UnsafePointer<UInt32>) {
            var a = self.a, b = self.b, c = self.c, d = self.d
            for i in 0..<64 {
                var f: UInt32
                let g: Int
                switch i {
                case 0..<16: f = (b & c) | (~b & d); g = i
                case 16..<32: f = (d & b) | (~d & c); g = (5 &* i &+ 1) & 15
                case 32..<48: f = b ^ c ^ d; g = (3 &* i &+ 5) & 15
                default: f = c ^ (b | ~d); g = (7 &* i) & 15
                }
                let m = UInt32(littleEndian: p.loadUnaligned(fromByteOffset: g &* 4, as: UInt32.self))
                f = f &+ a &+ k[i] &+ m
                a = d
                d = c
                c = b
                b = b &+ (f << r[i] | f >> (32 &- r[i]))
            }
            self.a &+= a; self.b &+= b; self.c &+= c; self.d &+= d
        }
    }

    /// The digest of `bytes` as its four little-endian words.
    static func words(_ bytes: UnsafeRawBufferPointer) -> (UInt32, UInt32, UInt32, UInt32) {
        var s = State()
        table.withUnsafeBufferPointer { k in
            shifts.withUnsafeBufferPointer { r in
                let n = bytes.count
                var off = 0
                while n - off >= 64 {
                    s.block(bytes.baseAddress! + off, k.baseAddress!, r.baseAddress!)
                    off += 64
                }
                // The tail, the 0x80 marker and the bit length, in one or two blocks on the stack.
                withUnsafeTemporaryAllocation(byteCount: 128, alignment: 8) { tail in
                    tail.initializeMemory(as: UInt8.self, repeating: 0)
                    let rest = n - off
                    if rest > 0 { tail.baseAddress!.copyMemory(from: bytes.baseAddress! + off, byteCount: rest) }
                    tail[rest] = 0x80
                    let blocks = rest < 56 ? 1 : 2
                    tail.storeBytes(of: (UInt64(n) &* 8).littleEndian, toByteOffset: blocks * 64 - 8, as: UInt64.self)
                    for i in 0..<blocks { s.block(UnsafeRawPointer(tail.baseAddress!) + i * 64, k.baseAddress!, r.baseAddress!) }
                }
            }
        }
        return (s.a, s.b, s.c, s.d)
    }

    /// The 16-byte digest of `bytes`.
    public static func digest(_ bytes: some Collection<UInt8>) -> [UInt8] {
        let w = Array(bytes).withUnsafeBytes { words($0) }
        var out: [UInt8] = []
        out.reserveCapacity(16)
        for x in [w.0, w.1, w.2, w.3] { for k in 0..<4 { out.append(UInt8(truncatingIfNeeded: x >> (8 * UInt32(k)))) } }
        return out
    }

    static let hexDigits = Array("0123456789abcdef".utf8)

    /// Lowercase hex of a digest.
    public static func hex(_ d: [UInt8]) -> String {
        var s: [UInt8] = []
        s.reserveCapacity(d.count * 2)
        for b in d {
            s.append(hexDigits[Int(b >> 4)])
            s.append(hexDigits[Int(b & 15)])
        }
        return String(decoding: s, as: UTF8.self)
    }
}
