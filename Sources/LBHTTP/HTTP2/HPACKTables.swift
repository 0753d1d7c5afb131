/// Why a header block could not be decoded. Every case is a COMPRESSION_ERROR for HTTP/2
/// (RFC 9113 §4.3) except `headerListTooLarge`, which nginx answers with ENHANCE_YOUR_CALM.
public enum HPACKError: Error, Equatable, Sendable {
    /// The block ended in the middle of a representation.
    case truncated
    /// An integer longer than our limit (2^31 − 1) or with too many continuation octets.
    case integerOverflow
    /// Index 0, or beyond the static and dynamic tables.
    case invalidIndex
    /// A Huffman string with EOS, bad padding or padding longer than 7 bits.
    case invalidHuffman
    /// A dynamic table size update above the allowed maximum.
    case invalidTableSizeUpdate
    /// A dynamic table size update after the first header field of the block.
    case lateTableSizeUpdate
    /// A single string longer than the decoded header list may be.
    case stringTooLong
    /// A single string literal longer than `maxFieldSize` as sent.
    case fieldTooLong
    /// The decoded header list exceeded its cap (an HPACK bomb, or simply too large).
    case headerListTooLarge
}

/// The HPACK static table (RFC 7541 Appendix A), and fast lookups into it for the encoder.
public enum HPACKStaticTable {
    /// Entries 1–61; index 0 of this array is a placeholder.
    public static let entries: [(name: StaticString, value: StaticString)] = [
        ("", ""),
        (":authority", ""), (":method", "GET"), (":method", "POST"), (":path", "/"), (":path", "/index.html"),
        (":scheme", "http"), (":scheme", "https"), (":status", "200"), (":status", "204"), (":status", "206"),
        (":status", "304"), (":status", "400"), (":status", "404"), (":status", "500"), ("accept-charset", ""),
        ("accept-encoding", "gzip, deflate"), ("accept-language", ""), ("accept-ranges", ""), ("accept", ""),
        ("access-control-allow-origin", ""), ("age", ""), ("allow", ""), ("authorization", ""), ("cache-control", ""),
        ("content-disposition", ""), ("content-encoding", ""), ("content-language", ""), ("content-length", ""),
        ("content-location", ""), ("content-range", ""), ("content-type", ""), ("cookie", ""), ("date", ""),
        ("etag", ""), ("expect", ""), ("expires", ""), ("from", ""), ("host", ""), ("if-match", ""),
        ("if-modified-since", ""), ("if-none-match", ""), ("if-range", ""), ("if-unmodified-since", ""),
        ("last-modified", ""), ("link", ""), ("location", ""), ("max-forwards", ""), ("proxy-authenticate", ""),
        ("proxy-authorization", ""), ("range", ""), ("referer", ""), ("refresh", ""), ("retry-after", ""),
        ("server", ""), ("set-cookie", ""), ("strict-transport-security", ""), ("transfer-encoding", ""),
        ("user-agent", ""), ("vary", ""), ("via", ""), ("www-authenticate", ""),
    ]

    /// Entries in the static table.
    public static let count = 61

    /// The same entries as bytes: `bytes[offsets[i]..<offsets[i] + nameLengths[i]]` is the name
    /// of entry i, followed directly by its value.
    static let flat: (bytes: [UInt8], offsets: [Int], nameLengths: [Int], valueLengths: [Int]) = {
        var bytes: [UInt8] = [], offsets = [0], names = [0], values = [0]
        for i in 1...count {
            let e = entries[i]
            offsets.append(bytes.count)
            e.name.withUTF8Buffer { bytes.append(contentsOf: $0) }
            e.value.withUTF8Buffer { bytes.append(contentsOf: $0) }
            names.append(e.name.utf8CodeUnitCount)
            values.append(e.value.utf8CodeUnitCount)
        }
        return (bytes, offsets, names, values)
    }()

    /// `flat` as immortal pointers, for the decoder's hot path: entry i's name and value are
    /// `bytes[offsets[i]..<offsets[i] + names[i] + values[i]]`.
    struct Raw: @unchecked Sendable {
        let bytes: UnsafePointer<UInt8>
        let offsets: UnsafePointer<Int>
        let names: UnsafePointer<Int>
        let values: UnsafePointer<Int>
    }

    static let raw: Raw = {
        func copy<T>(_ a: [T]) -> UnsafePointer<T> {
            let p = UnsafeMutablePointer<T>.allocate(capacity: a.count)
            p.initialize(from: a, count: a.count)
            return UnsafePointer(p)
        }
        let f = flat
        return Raw(bytes: copy(f.bytes), offsets: copy(f.offsets), names: copy(f.nameLengths), values: copy(f.valueLengths))
    }()

    /// Open-addressed hash of names → first index with that name (the encoder's name lookup).
    static let nameSlots: [UInt8] = {
        var slots = [UInt8](repeating: 0, count: 256)
        for i in 1...count {
            if i > 1 && entries[i].name.utf8CodeUnitCount == entries[i - 1].name.utf8CodeUnitCount
                && equal(entries[i].name, entries[i - 1].name) { continue }
            var h = entries[i].name.withUTF8Buffer { hash(UnsafeRawBufferPointer($0)) } & 255
            while slots[h] != 0 { h = (h + 1) & 255 }
            slots[h] = UInt8(i)
        }
        return slots
    }()

    static func equal(_ a: StaticString, _ b: StaticString) -> Bool {
        a.withUTF8Buffer { x in b.withUTF8Buffer { y in x.elementsEqual(y) } }
    }

    /// FNV-1a over the bytes.
    @inline(__always)
    static func hash(_ b: UnsafeRawBufferPointer) -> Int {
        var h: UInt32 = 2_166_136_261
        for c in b { h = (h ^ UInt32(c)) &* 16_777_619 }
        return Int(h)
    }

    /// The first static index whose name is `name`, or 0.
    public static func nameIndex(_ name: UnsafeRawBufferPointer) -> Int {
        let f = flat
        var h = hash(name) & 255
        return nameSlots.withUnsafeBufferPointer { slots in
            while true {
                let i = Int(slots[h])
                if i == 0 { return 0 }
                if f.nameLengths[i] == name.count && memeq(f.bytes, f.offsets[i], name) { return i }
                h = (h + 1) & 255
            }
        }
    }

    /// The static index of the exact (name, value) pair, or 0. Only entries 2–16 have values.
    public static func fullIndex(_ name: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer, nameIndex i: Int) -> Int {
        guard i >= 2 && i <= 16 else { return 0 }
        let f = flat
        var k = i
        while k <= 16 && f.nameLengths[k] == name.count && memeq(f.bytes, f.offsets[k], name) {
            if f.valueLengths[k] == value.count && memeq(f.bytes, f.offsets[k] + f.nameLengths[k], value) { return k }
            k += 1
        }
        return 0
    }

    /// `nameIndex` for a response field's name in any case, without hashing or a lower-case
    /// copy: a switch on the length, then case-insensitive compares with the few static names of
    /// that length. The static index of the first entry named so (15–61: pseudo-header names
    /// never come here), -1 for the HTTP/1 connection-specific names RFC 9113 §8.2.2 drops that
    /// the table lacks (`connection`, `keep-alive`, `proxy-connection`, `upgrade`; the fifth,
    /// `transfer-encoding`, is entry 57), 0 for any other name.
    public static func responseNameIndex(_ n: UnsafeRawBufferPointer) -> Int {
        switch n.count {
        case 3: return named(n, "age") ? 21 : named(n, "via") ? 60 : 0
        case 4: return named(n, "date") ? 33 : named(n, "etag") ? 34 : named(n, "vary") ? 59 : named(n, "link") ? 45
            : named(n, "host") ? 38 : named(n, "from") ? 37 : 0
        case 5: return named(n, "allow") ? 22 : named(n, "range") ? 50 : 0
        case 6: return named(n, "server") ? 54 : named(n, "accept") ? 19 : named(n, "cookie") ? 32 : named(n, "expect") ? 35 : 0
        case 7: return named(n, "expires") ? 36 : named(n, "upgrade") ? -1 : named(n, "referer") ? 51 : named(n, "refresh") ? 52 : 0
        case 8: return named(n, "location") ? 46 : named(n, "if-match") ? 39 : named(n, "if-range") ? 42 : 0
        case 10: return named(n, "connection") ? -1 : named(n, "keep-alive") ? -1 : named(n, "set-cookie") ? 55 : named(n, "user-agent") ? 58 : 0
        case 11: return named(n, "retry-after") ? 53 : 0
        case 12: return named(n, "content-type") ? 31 : named(n, "max-forwards") ? 47 : 0
        case 13: return named(n, "last-modified") ? 44 : named(n, "accept-ranges") ? 18 : named(n, "cache-control") ? 24
            : named(n, "content-range") ? 30 : named(n, "if-none-match") ? 41 : named(n, "authorization") ? 23 : 0
        case 14: return named(n, "content-length") ? 28 : named(n, "accept-charset") ? 15 : 0
        case 15: return named(n, "accept-encoding") ? 16 : named(n, "accept-language") ? 17 : 0
        case 16: return named(n, "content-encoding") ? 26 : named(n, "proxy-connection") ? -1 : named(n, "content-language") ? 27
            : named(n, "content-location") ? 29 : named(n, "www-authenticate") ? 61 : 0
        case 17: return named(n, "transfer-encoding") ? 57 : named(n, "if-modified-since") ? 40 : 0
        case 18: return named(n, "proxy-authenticate") ? 48 : 0
        case 19: return named(n, "content-disposition") ? 25 : named(n, "if-unmodified-since") ? 43 : named(n, "proxy-authorization") ? 49 : 0
        case 25: return named(n, "strict-transport-security") ? 56 : 0
        case 27: return named(n, "access-control-allow-origin") ? 20 : 0
        default: return 0
        }
    }

    /// Whether `n` is `lower` (same length, lower-case letters, digits and `-`) in any case:
    /// eight octets at a time, each letter's 0x20 bit forced on on both sides.
    @inline(__always)
    static func named(_ n: UnsafeRawBufferPointer, _ lower: StaticString) -> Bool {
        let count = n.count
        assert(count == lower.utf8CodeUnitCount)
        let a = n.baseAddress!, b = UnsafeRawPointer(lower.utf8Start)
        var i = 0
        while i + 8 <= count {
            let x = a.loadUnaligned(fromByteOffset: i, as: UInt64.self), y = b.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            if x | letterBits(y) != y { return false }
            i += 8
        }
        while i < count {
            let y = b.load(fromByteOffset: i, as: UInt8.self)
            let x = a.load(fromByteOffset: i, as: UInt8.self)
            if x != y && (y < 0x61 || x | 0x20 != y) { return false }
            i += 1
        }
        return true
    }

    /// 0x20 in each octet of `y` that is a lower-case letter (`y` holds letters, digits and `-`,
    /// all below 0x7B: an octet ≥ 0x61 is a letter).
    @inline(__always)
    static func letterBits(_ y: UInt64) -> UInt64 {
        // An octet is ≥ 0x61 iff adding 0x1F sets its 0x80 bit (no octet exceeds 0x7A, so no carry).
        ((y &+ 0x1F1F_1F1F_1F1F_1F1F) & 0x8080_8080_8080_8080) >> 2
    }

    @inline(__always)
    static func memeq(_ bytes: [UInt8], _ at: Int, _ other: UnsafeRawBufferPointer) -> Bool {
        bytes.withUnsafeBufferPointer { b in
            for k in 0..<other.count where b[at + k] != other[k] { return false }
            return true
        }
    }
}

/// The HPACK dynamic table (RFC 7541 §2.3.2, §4) in one preallocated byte store: entries are
/// appended at the end, evicted from the front, and the live bytes moved back to the start when
/// the end is reached. The store is 1.25 table sizes: after evictions the live entries and the
/// new one always fit in one table size, so a compaction makes room, and it moves at most one
/// table size of bytes per quarter table size inserted. Entries are 6 octets of offsets. The
/// store is allocated at the first insertion (an idle connection whose peer never indexes
/// anything holds none), small, and doubled as needed up to its full size.
public struct HPACKDynamicTable: Sendable {
    /// One entry: its name then its value, at `start` in `storage`.
    struct Entry: Sendable {
        var start: UInt16
        var nameLength: UInt16
        var valueLength: UInt16
    }

    /// RFC 7541 §4.1: each entry counts its name, its value and 32.
    public static let entryOverhead = 32

    var storage: [UInt8]
    var storageStart = 0
    var storageEnd = 0
    /// Entries oldest first, as a ring.
    var ring: [Entry]
    var ringHead = 0
    /// Entries in the table.
    public private(set) var count = 0
    /// Current size as RFC 7541 §4.1 counts it.
    public private(set) var size = 0
    /// Current maximum size (changed by dynamic table size updates).
    public private(set) var maxSize: Int
    /// The largest `maxSize` this table was built for.
    public let capacity: Int

    /// The largest table this store can hold (its offsets are 16 bits).
    public static let maxCapacity = 32768

    /// - Parameter capacity: the largest size the table may be given (clamped to `maxCapacity`).
    public init(capacity: Int = 4096) {
        self.capacity = min(max(capacity, 0), Self.maxCapacity)
        self.maxSize = self.capacity
        storage = []
        ring = []
    }

    /// The store's full size: 1.25 table sizes.
    var fullStorage: Int { max(capacity + capacity / 4, 64) }

    /// Allocates the ring and a first, small store (first insertion): the store grows by
    /// doubling up to `fullStorage` as entries need it, so a peer that indexes little (an idle
    /// HTTP/2 connection after one request) costs little.
    mutating func allocate() {
        storage = [UInt8](repeating: 0, count: min(fullStorage, 512))
        ring = [Entry](repeating: Entry(start: 0, nameLength: 0, valueLength: 0), count: capacity / Self.entryOverhead + 1)
    }

    /// Sets the maximum size, evicting as needed. `newMax` must not exceed `capacity`.
    public mutating func setMaxSize(_ newMax: Int) {
        precondition(newMax <= capacity)
        maxSize = newMax
        evict(toFit: 0)
    }

    /// Name and value lengths of entry `i` (1 = newest; HPACK index − 61).
    @inline(__always)
    public func lengths(_ i: Int) -> (name: Int, value: Int) {
        let e = ring[(ringHead + count - i) % ring.count]
        return (Int(e.nameLength), Int(e.valueLength))
    }

    /// Calls `body` with the name and value bytes of entry `i` (1 = newest).
    @inline(__always)
    public func withEntry<R>(_ i: Int, _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> R) -> R {
        let e = ring[(ringHead + count - i) % ring.count]
        return storage.withUnsafeBytes { b in
            let s = Int(e.start), n = Int(e.nameLength), v = Int(e.valueLength)
            return body(UnsafeRawBufferPointer(rebasing: b[s..<s + n]), UnsafeRawBufferPointer(rebasing: b[s + n..<s + n + v]))
        }
    }

    /// Where entry `i` (1 = newest; 1 ≤ i ≤ count) lies in the store.
    @inline(__always)
    func entry(_ i: Int) -> Entry {
        var k = ringHead + count - i
        if k >= ring.count { k -= ring.count }
        return ring[k]
    }

    /// Copies an entry's name and value (one run of the store) to `p`.
    @inline(__always)
    func copyEntry(_ e: Entry, to p: UnsafeMutablePointer<UInt8>) {
        let n = Int(e.nameLength) + Int(e.valueLength)
        guard n > 0 else { return }
        storage.withUnsafeBufferPointer { b in
            precondition(Int(e.start) + n <= b.count)
            H2Octets.copy(b.baseAddress! + Int(e.start), to: p, count: n)
        }
    }

    /// Adds an entry, evicting the oldest ones first. An entry larger than `maxSize` empties the
    /// table and is not added (RFC 7541 §4.4). The bytes must not point into this table.
    public mutating func insert(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
        let needed = name.count + value.count + Self.entryOverhead
        if needed > maxSize {
            evict(toFit: maxSize + 1)
            return
        }
        evict(toFit: needed)
        if ring.isEmpty { allocate() }
        let bytes = name.count + value.count
        if storageEnd + bytes > storage.count {
            compact()
            if storageEnd + bytes > storage.count {
                storage.append(contentsOf: repeatElement(0, count: min(fullStorage, max(storage.count * 2, storageEnd + bytes)) - storage.count))
            }
        }
        storage.withUnsafeMutableBytes { s in
            if name.count > 0 { (s.baseAddress! + storageEnd).copyMemory(from: name.baseAddress!, byteCount: name.count) }
            if value.count > 0 { (s.baseAddress! + storageEnd + name.count).copyMemory(from: value.baseAddress!, byteCount: value.count) }
        }
        ring[(ringHead + count) % ring.count] = Entry(start: UInt16(storageEnd), nameLength: UInt16(name.count), valueLength: UInt16(value.count))
        count += 1
        storageEnd += bytes
        size += needed
    }

    /// Evicts oldest entries until `needed` more octets fit under `maxSize`.
    mutating func evict(toFit needed: Int) {
        while count > 0 && size + needed > maxSize {
            let e = ring[ringHead]
            size -= Int(e.nameLength) + Int(e.valueLength) + Self.entryOverhead
            ringHead = (ringHead + 1) % ring.count
            count -= 1
            storageStart = count == 0 ? storageEnd : Int(ring[ringHead].start)
        }
        if count == 0 { storageStart = 0; storageEnd = 0 }
    }

    /// Moves the live bytes to the front of the store.
    mutating func compact() {
        let live = storageEnd - storageStart
        let shift = storageStart
        if shift == 0 { return }
        storage.withUnsafeMutableBytes { s in
            let base = s.baseAddress!
            base.copyMemory(from: base + shift, byteCount: live)
        }
        for k in 0..<count {
            let r = (ringHead + k) % ring.count
            ring[r].start -= UInt16(shift)
        }
        storageStart = 0
        storageEnd = live
    }

    /// Index (1 = newest) of an entry equal to (name, value), and of the newest entry with that
    /// name, 0 when none. For the encoder.
    public func find(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) -> (full: Int, name: Int) {
        var nameHit = 0
        return storage.withUnsafeBytes { b in
            var i = 1
            while i <= count {
                let e = ring[(ringHead + count - i) % ring.count]
                if Int(e.nameLength) == name.count && memcmp(b, Int(e.start), name) {
                    if Int(e.valueLength) == value.count && memcmp(b, Int(e.start) + name.count, value) { return (i, i) }
                    if nameHit == 0 { nameHit = i }
                }
                i += 1
            }
            return (0, nameHit)
        }
    }

    @inline(__always)
    func memcmp(_ b: UnsafeRawBufferPointer, _ at: Int, _ other: UnsafeRawBufferPointer) -> Bool {
        for k in 0..<other.count where b[at + k] != other[k] { return false }
        return true
    }
}
