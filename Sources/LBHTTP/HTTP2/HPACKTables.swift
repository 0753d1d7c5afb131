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
