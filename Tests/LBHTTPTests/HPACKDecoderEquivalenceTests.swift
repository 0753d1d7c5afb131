import Testing
@testable import LBHTTP

/// The decoder writing fields in place into the list's own storage decodes exactly what the
/// decoder appending to two arrays did (`HPACKDecoderReference`): the same fields, list size,
/// errors and dynamic table, block after block, under tight and loose limits; and a list's copy
/// keeps its fields while the original decodes on.
@Suite struct HPACKDecoderEquivalenceTests {
    typealias Outcome = (fields: [[UInt8]], size: Int, error: HPACKError?)

    static func decodeNew(_ d: inout HPACKDecoder, _ list: inout HPACKHeaderList, _ block: [UInt8]) -> Outcome {
        do throws(HPACKError) {
            try block.withBytes { (b) throws(HPACKError) in try d.decode(b, into: &list) }
        } catch {
            return ([], 0, error)
        }
        let bytes = list.bytes
        return (list.fields.flatMap { [Array(bytes[$0.name]), Array(bytes[$0.value])] }, list.size, nil)
    }

    static func decodeOld(_ d: inout HPACKDecoderReference, _ list: inout ReferenceList, _ block: [UInt8]) -> Outcome {
        do throws(HPACKError) {
            try block.withBytes { (b) throws(HPACKError) in try d.decode(b, into: &list) }
        } catch {
            return ([], 0, error)
        }
        return (list.fields.flatMap { [Array(list.bytes[$0.name]), Array(list.bytes[$0.value])] }, list.size, nil)
    }

    /// Blocks of a client, in the order they are sent (later ones index the entries earlier
    /// ones added): RFC 7541's, and long ones of many fields (beyond the list's first storage),
    /// Huffman-coded or not, indexed or not.
    static let sequences: [[[UInt8]]] = {
        var sequences: [[[UInt8]]] = [RFC7541.c3, RFC7541.c4, RFC7541.c5, RFC7541.c6].map { $0.map { hex($0.wire) } }
        var e = HPACKEncoder(huffman: .whenShorter), raw = HPACKEncoder(huffman: .never)
        let many = (0..<40).map { ("x-field-\($0)", String(repeating: "v\($0) ", count: $0 % 7 + 1) + "end") }
        sequences.append([encodeBlock(&e, TestClient.get("/a") + many), encodeBlock(&e, TestClient.get("/a") + many),
                          [0x3F, 0xE1, 0x1F] + encodeBlock(&e, TestClient.get("/b"))])
        sequences.append([encodeBlock(&raw, TestClient.post(length: 3) + many, indexing: .none),
                          encodeBlock(&raw, [("x-long", String(repeating: "long value ", count: 60))], indexing: .never)])
        return sequences
    }()

    static let limits: [(table: Int, list: Int, field: Int)] = [(4096, 32768, .max), (256, 300, 20), (4096, 120, .max), (100, 1 << 20, 8)]

    @Test func mutatedBlocksDecodeAsBefore() {
        var rng = SplitMix(state: 0xDEC0)
        var decoded = 0, refused = 0
        for round in 0..<1200 {
            let l = Self.limits[round % Self.limits.count]
            var new = HPACKDecoder(maxTableSize: l.table, maxHeaderListSize: l.list, maxFieldSize: l.field)
            var old = HPACKDecoderReference(maxTableSize: l.table, maxHeaderListSize: l.list, maxFieldSize: l.field)
            var newList = HPACKHeaderList(), oldList = ReferenceList()
            // A connection's blocks, in order, some mutated: the tables must stay in step.
            for (step, sent) in Self.sequences[rng.below(Self.sequences.count)].enumerated() {
                let block = rng.below(3) == 0 ? mutate(sent, &rng) : sent
                let a = Self.decodeNew(&new, &newList, block), b = Self.decodeOld(&old, &oldList, block)
                #expect(a.error == b.error && a.fields == b.fields && a.size == b.size, "round \(round) step \(step): \(block)")
                #expect(new.table.size == old.table.size && new.table.count == old.table.count, "round \(round) step \(step)")
                guard a.error == nil, b.error == nil else { refused += 1; break }
                decoded += 1
            }
        }
        // Not vacuous: both ways are taken often.
        #expect(decoded > 400 && refused > 400, "\(decoded) decoded, \(refused) refused")
    }

    /// Every block of every sequence under a list cap at, just below and just above each size
    /// the list passes through field by field, and under each field-size cap up to 70: the
    /// refusals come where they came.
    @Test func capsAtEveryBoundaryRefuseAsBefore() {
        var refused = 0, decoded = 0
        for sequence in Self.sequences {
            var probe = HPACKDecoderReference(maxTableSize: 4096, maxHeaderListSize: 1 << 20)
            var probed = ReferenceList()
            var cuts: Set<Int> = []
            for block in sequence {
                _ = Self.decodeOld(&probe, &probed, block)
                var size = 0
                for f in probed.fields {
                    size += f.value.upperBound - f.name.lowerBound + HPACKDynamicTable.entryOverhead
                    cuts.formUnion([size - 1, size, size + 1])
                }
            }
            let caps = cuts.sorted().map { (list: $0, field: Int.max) } + (0...70).map { (list: 1 << 20, field: $0) }
            for cap in caps {
                var new = HPACKDecoder(maxTableSize: 4096, maxHeaderListSize: cap.list, maxFieldSize: cap.field)
                var old = HPACKDecoderReference(maxTableSize: 4096, maxHeaderListSize: cap.list, maxFieldSize: cap.field)
                var newList = HPACKHeaderList(), oldList = ReferenceList()
                for (step, block) in sequence.enumerated() {
                    let a = Self.decodeNew(&new, &newList, block), b = Self.decodeOld(&old, &oldList, block)
                    #expect(a.error == b.error && a.fields == b.fields && a.size == b.size, "cap \(cap) step \(step)")
                    guard a.error == nil, b.error == nil else { refused += 1; break }
                    decoded += 1
                }
            }
        }
        #expect(refused > 100 && decoded > 100, "\(decoded) decoded, \(refused) refused")
    }

    @Test func aCopyOfAListKeepsItsFieldsWhileTheOriginalDecodesOn() throws {
        var d = HPACKDecoder()
        var e = HPACKEncoder()
        var list = HPACKHeaderList()
        let first = TestClient.get("/first") + [("x-a", "1")]
        try encodeBlock(&e, first).withUnsafeBytes { try d.decode($0, into: &list) }
        let copy = list
        let many = (0..<50).map { ("x-\($0)", String(repeating: "y", count: 30)) }
        try encodeBlock(&e, TestClient.get("/second") + many).withUnsafeBytes { try d.decode($0, into: &list) }
        #expect((0..<copy.count).map { copy.text($0).name + "=" + copy.text($0).value } == first.map { $0.0 + "=" + $0.1 })
        #expect((0..<list.count).map { list.text($0).value }.first { $0.hasPrefix("/") } == "/second")
        #expect(list.count == 4 + 50 && list.byteCount > 1500)
    }
}
