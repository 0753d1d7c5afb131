/// nginx's sub_filter matcher (ngx_http_sub_filter_module), streaming and pure: bytes in, bytes
/// out, any split of the input gives the same output. At each position the first pattern (in
/// configuration order) that matches, ignoring ASCII case, is replaced and scanning resumes
/// after it; bytes that may begin a match are held back until the next input decides.
public struct SubFilterMatcher: Sendable {
    /// Lowercased match strings (non-empty) and their replacements.
    public let patterns: [[UInt8]]
    public let replacements: [[UInt8]]
    /// `sub_filter_once on`: each pattern is replaced at most once.
    public let once: Bool
    private var used: [Bool]
    private var usedCount = 0
    /// Bytes held back: they may begin a match the next input completes.
    private var held: [UInt8] = []

    public init(patterns: [[UInt8]], replacements: [[UInt8]], once: Bool) {
        self.patterns = patterns.map { $0.map(ASCII.lower) }
        self.replacements = replacements
        self.once = once
        used = Array(repeating: false, count: patterns.count)
    }

    /// Filters the next piece of the body into `out`.
    public mutating func feed(_ input: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        if once && usedCount == patterns.count && held.isEmpty {
            out.append(contentsOf: input)
            return
        }
        held.append(contentsOf: input)
        scan(final: false, into: &out)
    }

    /// The body ended: what was held back goes out (partial matches are not matches).
    public mutating func finish(into out: inout [UInt8]) {
        scan(final: true, into: &out)
    }

    private enum Match { case none, partial, full(Int) }

    private func match(_ data: [UInt8], at p: Int, final: Bool) -> Match {
        var waiting = false
        for (i, pat) in patterns.enumerated() where !(once && used[i]) {
            var k = 0
            while k < pat.count && p + k < data.count && ASCII.lower(data[p + k]) == pat[k] { k += 1 }
            if k == pat.count { return waiting ? .partial : .full(i) }
            if p + k == data.count && !final { waiting = true }
        }
        return waiting ? .partial : .none
    }

    private mutating func scan(final: Bool, into out: inout [UInt8]) {
        let data = held
        var p = 0
        var copied = 0
        while p < data.count {
            if once && usedCount == patterns.count { break }
            switch match(data, at: p, final: final) {
            case .none:
                p += 1
            case .partial:
                out.append(contentsOf: data[copied..<p])
                held = Array(data[p...])
                return
            case .full(let i):
                out.append(contentsOf: data[copied..<p])
                out.append(contentsOf: replacements[i])
                p += patterns[i].count
                copied = p
                if once {
                    used[i] = true
                    usedCount += 1
                }
            }
        }
        out.append(contentsOf: data[copied...])
        held = []
    }
}
