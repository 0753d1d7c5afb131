@testable import LBHTTP

/// The decoded list as the decoder before in-place writing kept it: two arrays.
struct ReferenceList {
    var bytes: [UInt8] = []
    var fields: [HeaderField] = []
    var size = 0
    mutating func removeAll() {
        bytes.removeAll(keepingCapacity: true)
        fields.removeAll(keepingCapacity: true)
        size = 0
    }
}

/// `HPACKDecoder` and its string and Huffman reading as they were before the decoder wrote
/// into the list's storage in place (commit 80565a7), kept verbatim but for the list type:
/// `HPACKDecoderEquivalenceTests` compares the two.
struct HPACKDecoderReference {
    /// The peer's entries, as its encoder has them.
    private(set) var table: HPACKDynamicTable
    /// The largest table size the peer may ask for: our SETTINGS_HEADER_TABLE_SIZE.
    let maxTableSize: Int
    /// Cap on the decoded header list (RFC 9113 §6.5.2 size). An HPACK bomb (a few octets of
    /// indexed references that expand to a large list) stops here.
    var maxHeaderListSize: Int
    /// Cap on one string literal as sent (its encoded length, before Huffman decoding), as
    /// nginx checks each against one of `large_client_header_buffers`.
    var maxFieldSize: Int

    /// - Parameters:
    ///   - maxTableSize: our SETTINGS_HEADER_TABLE_SIZE (at most `HPACKDynamicTable.maxCapacity`).
    ///   - maxHeaderListSize: the cap on a decoded list.
    ///   - maxFieldSize: the cap on one string literal as sent.
    init(maxTableSize: Int = 4096, maxHeaderListSize: Int = 32768, maxFieldSize: Int = .max) {
        table = HPACKDynamicTable(capacity: maxTableSize)
        self.maxTableSize = table.capacity
        self.maxHeaderListSize = maxHeaderListSize
        self.maxFieldSize = maxFieldSize
    }

    /// Decodes one complete header block, appending the fields to `list` (cleared first).
    /// Any error leaves the dynamic table out of step with the peer's: the connection must end.
    mutating func decode(_ b: UnsafeRawBufferPointer, into list: inout ReferenceList) throws(HPACKError) {
        list.removeAll()
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
                let nameStart = list.bytes.count
                let room = maxHeaderListSize - list.size - HPACKDynamicTable.entryOverhead
                guard room >= 0 else { throw .headerListTooLarge }
                if index == 0 {
                    _ = try HPACKDecoderReference.readString(b, &i, into: &list.bytes, limit: room, maxEncoded: maxFieldSize)
                } else {
                    try appendName(index, into: &list.bytes)
                }
                let nameEnd = list.bytes.count
                let valueRoom = room - (nameEnd - nameStart)
                guard valueRoom >= 0 else { throw .headerListTooLarge }
                _ = try HPACKDecoderReference.readString(b, &i, into: &list.bytes, limit: valueRoom, maxEncoded: maxFieldSize)
                let valueEnd = list.bytes.count
                try add(&list, nameStart, nameEnd, valueEnd)
                if incremental {
                    list.bytes.withUnsafeBytes { lb in
                        table.insert(name: UnsafeRawBufferPointer(rebasing: lb[nameStart..<nameEnd]),
                                     value: UnsafeRawBufferPointer(rebasing: lb[nameEnd..<valueEnd]))
                    }
                }
                sawField = true
            }
        }
    }

    @inline(__always)
    mutating func add(_ list: inout ReferenceList, _ nameStart: Int, _ nameEnd: Int, _ valueEnd: Int) throws(HPACKError) {
        list.size += valueEnd - nameStart + HPACKDynamicTable.entryOverhead
        if list.size > maxHeaderListSize { throw .headerListTooLarge }
        list.fields.append(HeaderField(nameStart: Int32(nameStart), nameEnd: Int32(nameEnd), valueStart: Int32(nameEnd), valueEnd: Int32(valueEnd)))
    }

    mutating func appendIndexed(_ index: Int, into list: inout ReferenceList) throws(HPACKError) {
        let start = list.bytes.count
        let nameEnd: Int
        if index >= 1 && index <= HPACKStaticTable.count {
            let r = HPACKStaticTable.raw
            // Static entries are small: the list's cap is checked by add().
            list.bytes.appendRaw(UnsafeRawBufferPointer(start: r.bytes + r.offsets[index], count: r.names[index] + r.values[index]))
            nameEnd = start + r.names[index]
        } else {
            let d = index - HPACKStaticTable.count
            guard d >= 1 && d <= table.count else { throw .invalidIndex }
            // Checked before copying, so that a bomb costs no memory.
            let len = table.lengths(d)
            if list.size + len.name + len.value + HPACKDynamicTable.entryOverhead > maxHeaderListSize { throw .headerListTooLarge }
            table.withEntry(d) { name, value in
                // An entry's name and value are one run of the table's storage: one copy.
                list.bytes.appendRaw(UnsafeRawBufferPointer(start: name.baseAddress, count: name.count + value.count))
            }
            nameEnd = start + len.name
        }
        try add(&list, start, nameEnd, list.bytes.count)
    }

    mutating func appendName(_ index: Int, into out: inout [UInt8]) throws(HPACKError) {
        if index >= 1 && index <= HPACKStaticTable.count {
            let r = HPACKStaticTable.raw
            out.appendRaw(UnsafeRawBufferPointer(start: r.bytes + r.offsets[index], count: r.names[index]))
        } else {
            let d = index - HPACKStaticTable.count
            guard d >= 1 && d <= table.count else { throw .invalidIndex }
            table.withEntry(d) { name, _ in out.appendRaw(name) }
        }
    }

    /// Reads a string literal (§5.2) at `b[i]` and appends its octets to `out`, Huffman-decoded
    /// if flagged. `limit` caps the octets produced.
    @inline(__always)
    static func readString(_ b: UnsafeRawBufferPointer, _ i: inout Int, into out: inout [UInt8], limit: Int,
                                  maxEncoded: Int = .max) throws(HPACKError) -> Int {
        guard i < b.count else { throw .truncated }
        let huffman = b[i] & 0x80 != 0
        let len = try HPACKCoding.readInteger(b, &i, prefixBits: 7)
        guard len <= maxEncoded else { throw .fieldTooLong }
        guard len <= b.count - i else { throw .truncated }
        let raw = UnsafeRawBufferPointer(rebasing: b[i..<i + len])
        i += len
        let before = out.count
        if huffman {
            try HPACKDecoderReference.huffman(raw, into: &out, limit: limit)
        } else {
            guard len <= limit else { throw .stringTooLong }
            out.appendRaw(raw)
        }
        return out.count - before
    }

    /// Decodes `input`, appending the octets to `out`. Throws on EOS in the string, padding
    /// longer than 7 bits or not made of ones (RFC 7541 §5.2), or when the output would exceed
    /// `limit` octets.
    static func huffman(_ input: UnsafeRawBufferPointer, into out: inout [UInt8], limit: Int = Int.max) throws(HPACKError) {
        // At most 8/5 octets out per octet in (the shortest code has 5 bits): decoded into
        // scratch space of that size, appended at once.
        let natural = input.count * 8 / 5 + 1
        let bound = limit < natural ? limit + 1 : natural
        let t = HPACKHuffman.decoder.table
        var state = 0
        var accept = true
        var w = 0
        var failed = false
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: bound) { o in
            let p = o.baseAddress!
            for byte in input {
                var e = t[state &* 16 &+ Int(byte >> 4)]
                if e & 0x30000 != 0 {
                    if e & 0x20000 != 0 || w == bound { failed = true; break }  // EOS, or past the limit
                    p[w] = UInt8(truncatingIfNeeded: e >> 8)
                    w &+= 1
                }
                state = Int(e & 0xFF)
                e = t[state &* 16 &+ Int(byte & 0x0F)]
                if e & 0x30000 != 0 {
                    if e & 0x20000 != 0 || w == bound { failed = true; break }  // EOS, or past the limit
                    p[w] = UInt8(truncatingIfNeeded: e >> 8)
                    w &+= 1
                }
                state = Int(e & 0xFF)
                accept = e & 0x40000 != 0
            }
            if !failed && w <= limit && accept && w > 0 { out.append(contentsOf: UnsafeBufferPointer(rebasing: o[0..<w])) }
        }
        if failed { throw w == bound && w > limit ? .stringTooLong : .invalidHuffman }
        if w > limit { throw .stringTooLong }
        if !accept { throw .invalidHuffman }
    }
}
