import Glibc

/// A decoded header list: names and values as ranges into one run of octets, in order. Reused
/// from block to block (`removeAll` keeps the storage), so decoding allocates nothing once warm.
///
/// The octets and the ranges live in storage of its own (not two arrays): the decoder writes
/// each field in place after one uniqueness check per block, where an array costs a uniqueness
/// and capacity check and a generic copy per append. A copy of the list (trailers in an event)
/// shares the storage until either is changed, as an array would.
public struct HPACKHeaderList: Sendable {
    /// The octets, then the field ranges, with room to grow; shared by copies until a change.
    final class Storage: @unchecked Sendable {
        let octets: UnsafeMutablePointer<UInt8>
        let octetCapacity: Int
        let fields: UnsafeMutablePointer<HeaderField>
        let fieldCapacity: Int

        init(octetCapacity: Int, fieldCapacity: Int) {
            octets = .allocate(capacity: octetCapacity)
            self.octetCapacity = octetCapacity
            fields = .allocate(capacity: fieldCapacity)
            self.fieldCapacity = fieldCapacity
        }

        deinit {
            octets.deallocate()
            fields.deallocate()
        }

        /// An empty list's storage: never written (it has no room), so it may be shared.
        static let empty = Storage(octetCapacity: 0, fieldCapacity: 0)
    }

    var storage = Storage.empty
    /// Octets used, from the start of the storage.
    public fileprivate(set) var byteCount = 0
    /// Number of fields.
    public fileprivate(set) var count = 0
    /// The list's size as RFC 9113 §6.5.2 counts it (name + value + 32 per field).
    public var size = 0

    /// An empty list.
    public init() {}

    /// Empties the list, keeping its storage.
    @inline(__always)
    public mutating func removeAll() {
        byteCount = 0
        count = 0
        size = 0
    }

    /// The list's octets (names and values, back to back), for as long as `body` runs.
    @inline(__always)
    public func withBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeRawBufferPointer(start: storage.octets, count: byteCount))
    }

    /// The fields' ranges of `withBytes`' octets, for as long as `body` runs.
    @inline(__always)
    public func withFields<R, E: Error>(_ body: (UnsafeBufferPointer<HeaderField>) throws(E) -> R) throws(E) -> R {
        try body(UnsafeBufferPointer(start: storage.fields, count: count))
    }

    /// A copy of the octets (tests, logs, not the hot path).
    public var bytes: [UInt8] { withBytes { Array($0) } }

    /// A copy of the ranges (tests, logs, not the hot path).
    public var fields: [HeaderField] { withFields { Array($0) } }

    /// The range of field `i`.
    public subscript(i: Int) -> HeaderField {
        precondition(i >= 0 && i < count, "field index out of range")
        return storage.fields[i]
    }

    /// The name and value of field `i`, as text (for tests and logs, not the hot path).
    public func text(_ i: Int) -> (name: String, value: String) {
        let f = self[i]
        return withBytes { b in
            (String(decoding: UnsafeRawBufferPointer(rebasing: b[f.name]), as: UTF8.self),
             String(decoding: UnsafeRawBufferPointer(rebasing: b[f.value]), as: UTF8.self))
        }
    }

    /// Appends a field (tests; the decoder writes in place). `size` counts it.
    public mutating func append(name: [UInt8], value: [UInt8]) {
        makeUnique()
        let n0 = byteCount
        let p = room(name.count + value.count)
        p.update(from: name, count: name.count)
        (p + name.count).update(from: value, count: value.count)
        byteCount += name.count + value.count
        appendField(n0, n0 + name.count, byteCount)
        size += name.count + value.count + HPACKDynamicTable.entryOverhead
    }

    /// Makes the storage this list's alone (a copy shares it): before writing in it.
    @inline(__always)
    mutating func makeUnique() {
        if !isKnownUniquelyReferenced(&storage) { grow(octets: 0, fields: 0) }
    }

    /// Room for `n` more octets after `byteCount` (the storage unique): where they go.
    @inline(__always)
    mutating func room(_ n: Int) -> UnsafeMutablePointer<UInt8> {
        if n > storage.octetCapacity - byteCount { grow(octets: n, fields: 0) }
        return storage.octets + byteCount
    }

    /// Appends the ranges of a field whose name is `nameStart..<nameEnd` and value
    /// `nameEnd..<valueEnd` (the storage unique).
    @inline(__always)
    mutating func appendField(_ nameStart: Int, _ nameEnd: Int, _ valueEnd: Int) {
        if count == storage.fieldCapacity { grow(octets: 0, fields: 1) }
        storage.fields[count] = HeaderField(nameStart: Int32(truncatingIfNeeded: nameStart), nameEnd: Int32(truncatingIfNeeded: nameEnd),
                                            valueStart: Int32(truncatingIfNeeded: nameEnd), valueEnd: Int32(truncatingIfNeeded: valueEnd))
        count += 1
    }

    /// New storage with room for `octets` and `fields` more (at least doubled when it grows),
    /// holding what the list has.
    @inline(never)
    mutating func grow(octets: Int, fields: Int) {
        let old = storage
        let octetCapacity = octets == 0 ? max(old.octetCapacity, 256) : max(old.octetCapacity * 2, byteCount + octets, 256)
        let fieldCapacity = fields == 0 ? max(old.fieldCapacity, 16) : max(old.fieldCapacity * 2, count + fields, 16)
        let new = Storage(octetCapacity: octetCapacity, fieldCapacity: fieldCapacity)
        new.octets.initialize(from: old.octets, count: byteCount)
        new.fields.initialize(from: old.fields, count: count)
        storage = new
    }
}

/// How the encoder may index a field (RFC 7541 §6.2).
public enum HPACKIndexing: Sendable {
    /// Literal with incremental indexing: added to the dynamic table.
    case incremental
    /// Literal without indexing.
    case none
    /// Literal never indexed: intermediaries must not index it either (credentials).
    case never
}

/// When the encoder Huffman-codes a string.
public enum HPACKHuffmanPolicy: Sendable {
    case never
    case always
    /// Only when the coded form is shorter (the default).
    case whenShorter
}

/// HPACK primitive representations (RFC 7541 §5).
public enum HPACKCoding {
    /// Integers larger than this are refused (RFC 7541 §5.1 lets implementations limit them).
    public static let maxInteger = Int(Int32.max)

    /// Reads an integer with an `n`-bit prefix at `b[i]`; advances `i`.
    @inline(__always)
    public static func readInteger(_ b: UnsafeRawBufferPointer, _ i: inout Int, prefixBits n: Int) throws(HPACKError) -> Int {
        guard i < b.count else { throw .truncated }
        let mask = (1 << n) - 1
        var v = Int(b[i]) & mask
        i += 1
        if v < mask { return v }
        var shift = 0
        while true {
            guard i < b.count else { throw .truncated }
            let c = Int(b[i])
            i += 1
            v += (c & 0x7F) << shift
            if v > maxInteger { throw .integerOverflow }
            if c & 0x80 == 0 { return v }
            shift += 7
            if shift > 28 { throw .integerOverflow }
        }
    }

    /// Appends `value` with an `n`-bit prefix; `flags` holds the bits above the prefix.
    @inline(__always)
    public static func writeInteger(_ value: Int, prefixBits n: Int, flags: UInt8, into out: inout [UInt8]) {
        let mask = (1 << n) - 1
        if value < mask {
            out.append(flags | UInt8(value))
            return
        }
        out.append(flags | UInt8(mask))
        var v = value - mask
        while v >= 128 {
            out.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }

    /// Reads a string literal (§5.2) at `b[i]` and appends its octets to `out`, Huffman-decoded
    /// if flagged. `limit` caps the octets produced.
    @inline(__always)
    public static func readString(_ b: UnsafeRawBufferPointer, _ i: inout Int, into out: inout [UInt8], limit: Int,
                                  maxEncoded: Int = .max) throws(HPACKError) -> Int {
        guard i < b.count else { throw .truncated }
        let huffman = b[i] & 0x80 != 0
        let len = try readInteger(b, &i, prefixBits: 7)
        guard len <= maxEncoded else { throw .fieldTooLong }
        guard len <= b.count - i else { throw .truncated }
        let raw = UnsafeRawBufferPointer(rebasing: b[i..<i + len])
        i += len
        let before = out.count
        if huffman {
            try HPACKHuffman.decode(raw, into: &out, limit: limit)
        } else {
            guard len <= limit else { throw .stringTooLong }
            out.appendRaw(raw)
        }
        return out.count - before
    }

    /// Appends a string literal, Huffman-coded according to `policy`.
    @inline(__always)
    public static func writeString(_ s: UnsafeRawBufferPointer, huffman policy: HPACKHuffmanPolicy, into out: inout [UInt8]) {
        if policy != .never {
            let coded = HPACKHuffman.encodedLength(s)
            if policy == .always || coded < s.count {
                writeInteger(coded, prefixBits: 7, flags: 0x80, into: &out)
                HPACKHuffman.encode(s, length: coded, into: &out)
                return
            }
        }
        writeInteger(s.count, prefixBits: 7, flags: 0, into: &out)
        out.append(contentsOf: s)
    }
}

extension HPACKCoding {
    /// The most octets `writeLiteral` adds to a name's and a value's: the name's index or its
    /// literal's first octet (2), and two string lengths (6 each).
    public static let literalOverhead = 14

    /// Appends a literal field without indexing (§6.2.2) whose name is static entry `index`
    /// (1–61), its value as is: no Huffman coding (§5.2 leaves it to the encoder; HAProxy sends
    /// values raw too), so no pass over the value but the copy.
    public static func writeLiteral(nameIndex index: Int, rawValue value: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        var tmp = [UInt8](repeating: 0, count: value.count + literalOverhead)
        let n = tmp.withUnsafeMutableBufferPointer { writeLiteral(nameIndex: index, rawValue: value, to: $0.baseAddress!) }
        out.append(contentsOf: tmp[0..<n])
    }

    /// Appends a literal field without indexing with a new name: `name` lower-cased (RFC 9113
    /// §8.2.1), then `value`, both raw.
    public static func writeLiteral(lowerCasing name: UnsafeRawBufferPointer, rawValue value: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        var tmp = [UInt8](repeating: 0, count: name.count + value.count + literalOverhead)
        let n = tmp.withUnsafeMutableBufferPointer { writeLiteral(lowerCasing: name, rawValue: value, to: $0.baseAddress!) }
        out.append(contentsOf: tmp[0..<n])
    }

    /// `writeLiteral(nameIndex:rawValue:into:)` at `p`, which has room for the value and
    /// `literalOverhead`: returns the octets written.
    @inline(__always)
    public static func writeLiteral(nameIndex index: Int, rawValue value: UnsafeRawBufferPointer, to p: UnsafeMutablePointer<UInt8>) -> Int {
        var n: Int
        if index < 15 {
            p[0] = UInt8(truncatingIfNeeded: index)
            n = 1
        } else {
            p[0] = 0x0F
            p[1] = UInt8(truncatingIfNeeded: index - 15)
            n = 2
        }
        n += writeRawString(value, to: p + n)
        return n
    }

    /// `writeLiteral(lowerCasing:rawValue:into:)` at `p`, which has room for the name, the
    /// value and `literalOverhead`: returns the octets written.
    @inline(__always)
    public static func writeLiteral(lowerCasing name: UnsafeRawBufferPointer, rawValue value: UnsafeRawBufferPointer, to p: UnsafeMutablePointer<UInt8>) -> Int {
        p[0] = 0x00
        var n = 1
        n += writeRawString(name, to: p + n)
        for k in (n - name.count)..<n where p[k] >= 0x41 && p[k] <= 0x5A { p[k] |= 0x20 }
        n += writeRawString(value, to: p + n)
        return n
    }

    /// A string literal (§5.2) without Huffman coding at `p` (room for its octets and 6):
    /// returns the octets written.
    @inline(__always)
    public static func writeRawString(_ s: UnsafeRawBufferPointer, to p: UnsafeMutablePointer<UInt8>) -> Int {
        var n: Int
        if s.count < 127 {
            p[0] = UInt8(truncatingIfNeeded: s.count)
            n = 1
        } else {
            p[0] = 0x7F
            n = 1
            var v = s.count - 127
            while v >= 128 {
                p[n] = UInt8(v & 0x7F) | 0x80
                n += 1
                v >>= 7
            }
            p[n] = UInt8(v)
            n += 1
        }
        if let b = s.baseAddress, !s.isEmpty { UnsafeMutableRawPointer(p + n).copyMemory(from: b, byteCount: s.count) }
        return n + s.count
    }

    /// Appends a string literal (§5.2) without Huffman coding.
    @inline(__always)
    public static func writeRawString(_ s: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        if s.count < 127 {
            out.append(UInt8(truncatingIfNeeded: s.count))
        } else {
            writeInteger(s.count, prefixBits: 7, flags: 0, into: &out)
        }
        // As typed octets: Array copies a contiguous buffer with one memcpy (a raw buffer, as a
        // plain Sequence, costs ≈100 instructions more).
        if !s.isEmpty { s.withMemoryRebound(to: UInt8.self) { out.append(contentsOf: $0) } }
    }
}

/// Decodes header blocks (RFC 7541 §3) with its own dynamic table: one per connection, for the
/// blocks the peer sends.
public struct HPACKDecoder: Sendable {
    /// The peer's entries, as its encoder has them.
    public private(set) var table: HPACKDynamicTable
    /// The largest table size the peer may ask for: our SETTINGS_HEADER_TABLE_SIZE.
    public let maxTableSize: Int
    /// Cap on the decoded header list (RFC 9113 §6.5.2 size). An HPACK bomb (a few octets of
    /// indexed references that expand to a large list) stops here.
    public var maxHeaderListSize: Int
    /// Cap on one string literal as sent (its encoded length, before Huffman decoding), as
    /// nginx checks each against one of `large_client_header_buffers`.
    public var maxFieldSize: Int
    /// `HPACKStaticTable.raw`, held here: no lazy-global check on each indexed field.
    let staticTable = HPACKStaticTable.raw

    /// - Parameters:
    ///   - maxTableSize: our SETTINGS_HEADER_TABLE_SIZE (at most `HPACKDynamicTable.maxCapacity`).
    ///   - maxHeaderListSize: the cap on a decoded list.
    ///   - maxFieldSize: the cap on one string literal as sent.
    public init(maxTableSize: Int = 4096, maxHeaderListSize: Int = 32768, maxFieldSize: Int = .max) {
        table = HPACKDynamicTable(capacity: maxTableSize)
        self.maxTableSize = table.capacity
        self.maxHeaderListSize = maxHeaderListSize
        self.maxFieldSize = maxFieldSize
    }

    /// Decodes one complete header block, appending the fields to `list` (cleared first).
    /// Any error leaves the dynamic table out of step with the peer's: the connection must end.
    public mutating func decode(_ b: UnsafeRawBufferPointer, into list: inout HPACKHeaderList) throws(HPACKError) {
        list.removeAll()
        list.makeUnique()
        var i = 0
        var sawField = false
        while i < b.count {
            let c = b[i]
            if c & 0x80 != 0 {
                // Indexed field (§6.1).
                let index = try HPACKCoding.readInteger(b, &i, prefixBits: 7)
                try appendIndexed(index, into: &list)
                sawField = true
            } else if c & 0xE0 == 0x20 {
                // Dynamic table size update (§6.3), only before the first field.
                if sawField { throw .lateTableSizeUpdate }
                let size = try HPACKCoding.readInteger(b, &i, prefixBits: 5)
                guard size <= maxTableSize else { throw .invalidTableSizeUpdate }
                table.setMaxSize(size)
            } else {
                // Literal (§6.2): with incremental indexing (01), without (0000) or never indexed (0001).
                let incremental = c & 0xC0 == 0x40
                let index = try HPACKCoding.readInteger(b, &i, prefixBits: incremental ? 6 : 4)
                let nameStart = list.byteCount
                let room = maxHeaderListSize - list.size - HPACKDynamicTable.entryOverhead
                guard room >= 0 else { throw .headerListTooLarge }
                if index == 0 {
                    try HPACKCoding.readString(b, &i, into: &list, limit: room, maxEncoded: maxFieldSize)
                } else {
                    try appendName(index, into: &list)
                }
                let nameEnd = list.byteCount
                let valueRoom = room - (nameEnd - nameStart)
                guard valueRoom >= 0 else { throw .headerListTooLarge }
                try HPACKCoding.readString(b, &i, into: &list, limit: valueRoom, maxEncoded: maxFieldSize)
                let valueEnd = list.byteCount
                try add(&list, nameStart, nameEnd, valueEnd)
                if incremental {
                    list.withBytes { lb in
                        table.insert(name: UnsafeRawBufferPointer(rebasing: lb[nameStart..<nameEnd]),
                                     value: UnsafeRawBufferPointer(rebasing: lb[nameEnd..<valueEnd]))
                    }
                }
                sawField = true
            }
        }
    }

    /// Counts the field whose octets were just written and appends its ranges.
    @inline(__always)
    func add(_ list: inout HPACKHeaderList, _ nameStart: Int, _ nameEnd: Int, _ valueEnd: Int) throws(HPACKError) {
        list.size += valueEnd - nameStart + HPACKDynamicTable.entryOverhead
        if list.size > maxHeaderListSize { throw .headerListTooLarge }
        list.appendField(nameStart, nameEnd, valueEnd)
    }

    /// An indexed field (§6.1): the entry's name and value copied into the list, in one run.
    @inline(__always)
    func appendIndexed(_ index: Int, into list: inout HPACKHeaderList) throws(HPACKError) {
        let start = list.byteCount
        let nameLength: Int, valueLength: Int
        if index >= 1 && index <= HPACKStaticTable.count {
            // Static entries are small: the list's cap is checked by add().
            let r = staticTable
            nameLength = r.names[index]
            valueLength = r.values[index]
            H2Octets.copy(r.bytes + r.offsets[index], to: list.room(nameLength + valueLength), count: nameLength + valueLength)
        } else {
            let d = index - HPACKStaticTable.count
            guard d >= 1 && d <= table.count else { throw .invalidIndex }
            let e = table.entry(d)
            nameLength = Int(e.nameLength)
            valueLength = Int(e.valueLength)
            // Checked before copying, so that a bomb costs no memory.
            if list.size + nameLength + valueLength + HPACKDynamicTable.entryOverhead > maxHeaderListSize { throw .headerListTooLarge }
            let p = list.room(nameLength + valueLength)
            // An entry's name and value are one run of the table's storage: one copy.
            table.copyEntry(e, to: p)
        }
        list.byteCount += nameLength + valueLength
        try add(&list, start, start + nameLength, list.byteCount)
    }

    /// A literal's indexed name (§6.2), copied into the list.
    func appendName(_ index: Int, into list: inout HPACKHeaderList) throws(HPACKError) {
        let n: Int
        if index >= 1 && index <= HPACKStaticTable.count {
            let r = staticTable
            n = r.names[index]
            H2Octets.copy(r.bytes + r.offsets[index], to: list.room(n), count: n)
        } else {
            let d = index - HPACKStaticTable.count
            guard d >= 1 && d <= table.count else { throw .invalidIndex }
            let e = table.entry(d)
            n = Int(e.nameLength)
            table.copyEntry(HPACKDynamicTable.Entry(start: e.start, nameLength: e.nameLength, valueLength: 0), to: list.room(n))
        }
        list.byteCount += n
    }
}

extension HPACKCoding {
    /// `readString` into a header list being decoded (its storage unique): the octets are
    /// written in place after `list.byteCount`, which grows by their number.
    @inline(__always)
    static func readString(_ b: UnsafeRawBufferPointer, _ i: inout Int, into list: inout HPACKHeaderList, limit: Int,
                           maxEncoded: Int) throws(HPACKError) {
        guard i < b.count else { throw .truncated }
        let huffman = b[i] & 0x80 != 0
        let len = try readInteger(b, &i, prefixBits: 7)
        guard len <= maxEncoded else { throw .fieldTooLong }
        guard len <= b.count - i else { throw .truncated }
        let raw = UnsafeRawBufferPointer(start: b.baseAddress! + i, count: len)
        i += len
        if huffman {
            let bound = HPACKHuffman.decodeBound(len, limit: limit)
            let n = try HPACKHuffman.decode(raw, to: list.room(bound), bound: bound, limit: limit)
            list.byteCount += n
        } else {
            guard len <= limit else { throw .stringTooLong }
            H2Octets.copy(raw.baseAddress!.assumingMemoryBound(to: UInt8.self), to: list.room(len), count: len)
            list.byteCount += len
        }
    }
}

/// Encodes header blocks with its own dynamic table (the peer's decoder mirrors it).
public struct HPACKEncoder: Sendable {
    /// The one octet of `:status` for the seven statuses of the static table, else nil.
    @inline(__always)
    public static func indexedStatus(_ status: Int) -> UInt8? {
        switch status {
        case 200: 0x88
        case 204: 0x89
        case 206: 0x8A
        case 304: 0x8B
        case 400: 0x8C
        case 404: 0x8D
        case 500: 0x8E
        default: nil
        }
    }

    /// No dynamic table size update is due at the next block (`beginBlock` writes nothing).
    var nothingToSignal: Bool { pendingFinal == nil }

    /// Our entries, as the peer's decoder has them.
    public private(set) var table: HPACKDynamicTable
    /// Smallest and last table size to signal at the next block (§4.2: both are signalled).
    var pendingMin: Int? = nil
    var pendingFinal: Int? = nil
    /// The maximum size the peer's decoder holds now: the one we signalled last, or its
    /// initial value.
    public private(set) var signalledSize: Int
    /// When strings are Huffman-coded.
    public var huffman: HPACKHuffmanPolicy

    /// - Parameters:
    ///   - capacity: the most dynamic table this encoder will use, whatever the peer allows.
    ///   - huffman: when strings are Huffman-coded.
    ///   - peerTableSize: the table size the peer's decoder starts with (4096 in HTTP/2); by
    ///     default `capacity`. When `capacity` is smaller, the first block says so.
    public init(capacity: Int = 4096, huffman: HPACKHuffmanPolicy = .whenShorter, peerTableSize: Int? = nil) {
        table = HPACKDynamicTable(capacity: capacity)
        self.huffman = huffman
        let peer = peerTableSize ?? table.capacity
        signalledSize = peer
        let desired = min(peer, table.capacity)
        table.setMaxSize(desired)
        if desired != peer {
            pendingMin = desired
            pendingFinal = desired
        }
    }

    /// The peer's SETTINGS_HEADER_TABLE_SIZE changed: the next block signals the size we will
    /// use (at most our capacity). A peer that lowers its size below what its decoder holds
    /// must see an update, even if our table was already smaller (RFC 7541 §4.2).
    public mutating func setPeerTableSize(_ size: Int) {
        let desired = min(size, table.capacity)
        if desired == (pendingFinal ?? signalledSize) { return }
        pendingMin = min(pendingMin ?? desired, desired)
        pendingFinal = desired
    }

    /// Starts a header block: writes any pending dynamic table size updates.
    public mutating func beginBlock(into out: inout [UInt8]) {
        guard let final = pendingFinal else { return }
        if let low = pendingMin, low < final {
            HPACKCoding.writeInteger(low, prefixBits: 5, flags: 0x20, into: &out)
            table.setMaxSize(low)
        }
        HPACKCoding.writeInteger(final, prefixBits: 5, flags: 0x20, into: &out)
        table.setMaxSize(final)
        signalledSize = final
        pendingMin = nil
        pendingFinal = nil
    }

    /// Appends one field: indexed when the table has it whole, else a literal that reuses an
    /// indexed name when there is one (static names first, as RFC 7541's examples do).
    public mutating func encode(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer, indexing: HPACKIndexing = .incremental,
                                into out: inout [UInt8]) {
        let staticName = HPACKStaticTable.nameIndex(name)
        let staticFull = HPACKStaticTable.fullIndex(name, value, nameIndex: staticName)
        if staticFull > 0 {
            HPACKCoding.writeInteger(staticFull, prefixBits: 7, flags: 0x80, into: &out)
            return
        }
        let dynamic: (full: Int, name: Int) = table.count > 0 ? table.find(name: name, value: value) : (0, 0)
        if dynamic.full > 0 && indexing != .never {
            HPACKCoding.writeInteger(HPACKStaticTable.count + dynamic.full, prefixBits: 7, flags: 0x80, into: &out)
            return
        }
        let nameIndex = staticName > 0 ? staticName : (dynamic.name > 0 ? HPACKStaticTable.count + dynamic.name : 0)
        switch indexing {
        case .incremental: HPACKCoding.writeInteger(nameIndex, prefixBits: 6, flags: 0x40, into: &out)
        case .none: HPACKCoding.writeInteger(nameIndex, prefixBits: 4, flags: 0x00, into: &out)
        case .never: HPACKCoding.writeInteger(nameIndex, prefixBits: 4, flags: 0x10, into: &out)
        }
        if nameIndex == 0 { HPACKCoding.writeString(name, huffman: huffman, into: &out) }
        HPACKCoding.writeString(value, huffman: huffman, into: &out)
        if indexing == .incremental { table.insert(name: name, value: value) }
    }

    /// `encode` for text (tests, rare headers).
    public mutating func encode(_ name: String, _ value: String, indexing: HPACKIndexing = .incremental, into out: inout [UInt8]) {
        var n = name, v = value
        n.withUTF8 { nb in
            v.withUTF8 { vb in
                encode(name: UnsafeRawBufferPointer(nb), value: UnsafeRawBufferPointer(vb), indexing: indexing, into: &out)
            }
        }
    }

    /// Appends `:status`: one octet for the seven statuses of the static table, else a literal
    /// with the static name, not indexed (statuses vary too much to be worth table room).
    public mutating func encodeStatus(_ status: Int, into out: inout [UInt8]) {
        if let octet = HPACKEncoder.indexedStatus(status) {
            out.append(octet)
            return
        }
        switch status {
        default:
            // Literal without indexing, name index 8 (:status), raw three digits.
            out.append(0x08)
            out.append(3)
            let s = min(max(status, 100), 999)
            out.append(UInt8(0x30 + s / 100))
            out.append(UInt8(0x30 + (s / 10) % 10))
            out.append(UInt8(0x30 + s % 10))
        }
    }
}
