import Testing
@testable import LBHTTP

/// The stream table (a Dictionary with a cheap hash of stream ids) and the literal cache of an
/// HPACK encoder without a dynamic table.
@Suite struct H2StreamTableTests {
    @Test func aStreamTableAgreesWithADictionaryOverInsertsUpdatesAndRemovals() {
        var table = H2StreamTable<Int>()
        var reference: [UInt32: Int] = [:]
        var rng: UInt64 = 0x1234_5678
        func next() -> UInt64 { rng = rng &* 6364136223846793005 &+ 1442695040888963407; return rng >> 33 }
        var nextID: UInt32 = 1
        for step in 0..<5000 {
            switch next() % 4 {
            case 0, 1: // a new client stream (odd ids, increasing)
                table[nextID] = step
                reference[nextID] = step
                nextID += 2
            case 2: // an update through the subscript
                if !reference.isEmpty {
                    let id = reference.keys.sorted()[Int(next() % UInt64(reference.count))]
                    table[id]! += 1
                    reference[id]! += 1
                }
            default: // a removal
                if !reference.isEmpty {
                    let id = reference.keys.sorted()[Int(next() % UInt64(reference.count))]
                    #expect(table.removeValue(forKey: id) == reference.removeValue(forKey: id))
                }
            }
            if reference.count > 200, let id = reference.keys.min() { // bounded, as the concurrency limit does
                table.removeValue(forKey: id)
                reference.removeValue(forKey: id)
            }
        }
        #expect(table.count == reference.count)
        #expect(table.isEmpty == reference.isEmpty)
        for (id, v) in reference { #expect(table[id] == v) }
        #expect(table[nextID] == nil)
        var seen: [UInt32: Int] = [:]
        for (id, v) in table { seen[id] = v }
        #expect(seen == reference)
        #expect(Set(table.keys) == Set(reference.keys))
        #expect(table.values.sorted() == reference.values.sorted())
        table.removeAll()
        #expect(table.isEmpty && table[1] == nil)
    }
}
