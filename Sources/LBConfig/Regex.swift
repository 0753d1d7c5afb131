import CLBShim

/// A compiled PCRE2 pattern, as nginx uses for `location ~`, `server_name ~` and `map`.
/// Safe to share between threads (match data is per thread in the shim).
public final class PCRE: @unchecked Sendable {
    public let pattern: String
    public let caseless: Bool
    private let handle: OpaquePointer
    /// Number of capture groups.
    public let captureCount: Int
    /// Named captures: name → group number (nginx makes these variables).
    public let names: [(name: String, group: Int)]

    /// Compiles; throws a message in nginx's words (`pcre2_compile() failed: … in "…" at "…"`).
    public init(_ pattern: String, caseless: Bool = false) throws(ConfigError) {
        var err = [CChar](repeating: 0, count: 256)
        var offset = 0
        let bytes = Array(pattern.utf8)
        let h: OpaquePointer? = bytes.withUnsafeBufferPointer { b in
            b.withMemoryRebound(to: CChar.self) { c in
                lb_regex_compile(c.baseAddress, c.count, caseless ? 1 : 0, &err, err.count, &offset)
            }
        }
        guard let h else {
            let msg = String(decoding: err.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            // nginx names the rest of the pattern unless the error is at its end.
            guard offset < bytes.count else { throw ConfigError("pcre2_compile() failed: \(msg) in \"\(pattern)\"") }
            let at = String(decoding: bytes[offset...], as: UTF8.self)
            throw ConfigError("pcre2_compile() failed: \(msg) in \"\(pattern)\" at \"\(at)\"")
        }
        self.handle = h
        self.pattern = pattern
        self.caseless = caseless
        self.captureCount = Int(lb_regex_capture_count(h))
        var names: [(String, Int)] = []
        var buf = [CChar](repeating: 0, count: 128)
        for i in 0..<Int(lb_regex_name_count(h)) {
            var group: Int32 = 0
            if lb_regex_name_at(h, Int32(i), &group, &buf, buf.count) == 0 {
                names.append((String(decoding: buf.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self), Int(group)))
            }
        }
        self.names = names
    }

    deinit { lb_regex_free(handle) }

    /// Whether PCRE2 could be loaded on this machine.
    public static var isAvailable: Bool { lb_pcre_available() != 0 }

    /// Tests a byte string; no captures.
    @inlinable
    public func matches(_ subject: UnsafeRawBufferPointer) -> Bool {
        var ov = (0, 0)
        return withUnsafeMutableBytes(of: &ov) { o in
            rawMatch(subject, o.baseAddress!.assumingMemoryBound(to: Int.self), 1)
        } > 0
    }

    public func matches(_ s: String) -> Bool {
        var s = s
        return s.withUTF8 { matches(UnsafeRawBufferPointer($0)) }
    }

    /// Matches and returns capture ranges (index 0 is the whole match); nil on no match.
    public func captures(_ subject: UnsafeRawBufferPointer) -> [Range<Int>?]? {
        let pairs = captureCount + 1
        var ov = [Int](repeating: -1, count: pairs * 2)
        let rc = ov.withUnsafeMutableBufferPointer { rawMatch(subject, $0.baseAddress!, Int32(pairs)) }
        guard rc > 0 else { return nil }
        var out: [Range<Int>?] = []
        out.reserveCapacity(pairs)
        for i in 0..<pairs {
            let a = ov[2 * i], b = ov[2 * i + 1]
            if i < rc, a >= 0, b >= a, a != Int(bitPattern: UInt(bitPattern: -1)) { out.append(a..<b) } else { out.append(nil) }
        }
        return out
    }

    public func captures(_ s: String) -> [String?]? {
        let bytes = Array(s.utf8)
        guard let r = bytes.withUnsafeBytes({ captures($0) }) else { return nil }
        return r.map { $0.map { String(decoding: bytes[$0], as: UTF8.self) } }
    }

    @usableFromInline
    func rawMatch(_ subject: UnsafeRawBufferPointer, _ ov: UnsafeMutablePointer<Int>, _ pairs: Int32) -> Int32 {
        ov.withMemoryRebound(to: Int.self, capacity: Int(pairs) * 2) { p in
            p.withMemoryRebound(to: size_t.self, capacity: Int(pairs) * 2) { sp in
                lb_regex_match(handle, subject.baseAddress?.assumingMemoryBound(to: UInt8.self), subject.count, sp, pairs)
            }
        }
    }
}

/// Compiles a regex from the config, placing any error at `location`.
func compileRegex(_ pattern: String, caseless: Bool, at location: SourceLocation) throws(ConfigError) -> PCRE {
    do {
        return try PCRE(pattern, caseless: caseless)
    } catch {
        throw ConfigError(error.message, at: location)
    }
}
