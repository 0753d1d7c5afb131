/// Values keyed by HTTP/2 stream id: a `Dictionary` whose keys hash with one multiplication
/// instead of SipHash (a stream's entries are looked up some twenty times while it lives, in the
/// connection and in the runtime's session). The ids are the client's to choose, but a table
/// holds at most `http2_max_concurrent_streams` of them, which bounds what colliding ids cost.
public struct H2StreamTable<Value> {
    @usableFromInline
    struct Key: Hashable {
        @usableFromInline var id: UInt32
        @inlinable init(_ id: UInt32) { self.id = id }
        @inlinable func hash(into h: inout Hasher) { h.combine(id) }
        /// Fibonacci hashing, folded so that the low bits (the bucket) depend on every bit of
        /// the id (client ids are odd: the low bit alone says nothing).
        @inlinable func _rawHashValue(seed: Int) -> Int {
            let x = (UInt64(id) &+ UInt64(UInt(bitPattern: seed))) &* 0x9E37_79B9_7F4A_7C15
            return Int(truncatingIfNeeded: x ^ (x >> 29))
        }
    }

    @usableFromInline var storage: [Key: Value] = [:]

    @inlinable public init() {}

    @inlinable public subscript(id: UInt32) -> Value? {
        get { storage[Key(id)] }
        _modify { yield &storage[Key(id)] }
    }

    @inlinable @discardableResult
    public mutating func removeValue(forKey id: UInt32) -> Value? { storage.removeValue(forKey: Key(id)) }

    @inlinable public mutating func removeAll() { storage.removeAll() }

    @inlinable public var count: Int { storage.count }

    @inlinable public var isEmpty: Bool { storage.isEmpty }

    /// The ids (a copy: the table may change while they are visited).
    @inlinable public var keys: [UInt32] { storage.keys.map { $0.id } }

    @inlinable public var values: [Value] { Array(storage.values) }
}

extension H2StreamTable: Sequence {
    @inlinable public func makeIterator() -> AnyIterator<(key: UInt32, value: Value)> {
        var it = storage.makeIterator()
        return AnyIterator { it.next().map { (key: $0.key.id, value: $0.value) } }
    }
}

extension H2StreamTable: Sendable where Value: Sendable {}
extension H2StreamTable.Key: Sendable {}
