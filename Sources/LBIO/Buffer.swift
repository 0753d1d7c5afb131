import Glibc

/// A bounded byte buffer with read and write indices, manually allocated (no ARC, no COW checks).
/// Owned by exactly one connection; `release()` frees it (idle connections hold none).
///
/// Not copyable: two copies would share one allocation and free it twice, so the compiler refuses
/// any copy, and the storage is freed when its owner goes away (`deinit`) even if nobody called
/// `release()`.
public struct Buffer: ~Copyable {
    public private(set) var base: UnsafeMutableRawPointer?
    public private(set) var capacity: Int = 0
    public var readIndex = 0
    public var writeIndex = 0

    public init() {}

    deinit { free(base) }

    public var readable: Int { writeIndex - readIndex }
    public var isEmpty: Bool { writeIndex == readIndex }
    public var writableTail: Int { capacity - writeIndex }

    /// Ensures storage of at least `capacity` bytes exists.
    public mutating func reserve(_ n: Int) {
        if n <= capacity { return }
        let p = realloc(base, n)!
        base = p
        capacity = n
    }

    /// Moves unread bytes to the front so the tail has room.
    public mutating func compact() {
        if readIndex == 0 { return }
        let n = readable
        if n > 0, let b = base { memmove(b, b + readIndex, n) }
        readIndex = 0
        writeIndex = n
    }

    /// Drops everything.
    public mutating func clear() {
        readIndex = 0
        writeIndex = 0
    }

    /// Takes storage that someone else allocated with malloc (a buffer pool).
    public mutating func adopt(_ p: UnsafeMutableRawPointer, capacity: Int) {
        precondition(base == nil)
        base = p
        self.capacity = capacity
        readIndex = 0
        writeIndex = 0
    }

    /// Gives up the storage without freeing it.
    public mutating func disown() -> UnsafeMutableRawPointer? {
        let p = base
        base = nil
        capacity = 0
        readIndex = 0
        writeIndex = 0
        return p
    }

    /// Frees the storage (the buffer may be used again later).
    public mutating func release() {
        free(base)
        base = nil
        capacity = 0
        readIndex = 0
        writeIndex = 0
    }

    @inline(__always)
    public var readPointer: UnsafeMutableRawPointer { base! + readIndex }
    @inline(__always)
    public var writePointer: UnsafeMutableRawPointer { base! + writeIndex }

    /// The unread bytes.
    @inline(__always)
    public var readableBytes: UnsafeRawBufferPointer {
        guard let b = base else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: b + readIndex, count: readable)
    }

    @inline(__always)
    public subscript(i: Int) -> UInt8 { base!.load(fromByteOffset: i, as: UInt8.self) }

    /// Appends bytes, growing as needed.
    @inline(__always)
    public mutating func append(_ p: UnsafeRawBufferPointer) {
        guard p.count > 0 else { return }
        if writableTail < p.count {
            compact()
            if writableTail < p.count { reserve(max(capacity * 2, writeIndex + p.count, 256)) }
        }
        memcpy(base! + writeIndex, p.baseAddress!, p.count)
        writeIndex += p.count
    }

    @inline(__always)
    public mutating func append(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { append($0) }
    }

    @inline(__always)
    public mutating func append(_ s: StaticString) {
        append(UnsafeRawBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    public mutating func append(string s: String) {
        var s = s
        s.withUTF8 { append(UnsafeRawBufferPointer($0)) }
    }

    @inline(__always)
    public mutating func append(byte: UInt8) {
        if writableTail < 1 {
            compact()
            if writableTail < 1 { reserve(max(capacity * 2, 256)) }
        }
        base!.storeBytes(of: byte, toByteOffset: writeIndex, as: UInt8.self)
        writeIndex += 1
    }

    /// Appends a non-negative decimal number.
    public mutating func append(decimal v: Int) {
        if v < 0 { append(byte: UInt8(ascii: "-")); append(decimal: -v); return }
        var tmp: (UInt64, UInt64, UInt64) = (0, 0, 0)
        var n = v
        var len = 0
        withUnsafeMutableBytes(of: &tmp) { t in
            repeat {
                t[23 - len] = UInt8(truncatingIfNeeded: 0x30 + n % 10)
                n /= 10
                len += 1
            } while n > 0
            append(UnsafeRawBufferPointer(rebasing: t[(24 - len)...]))
        }
    }

    /// Appends a number in lowercase hex (chunk sizes).
    public mutating func append(hex v: Int) {
        let digits: StaticString = "0123456789abcdef"
        var n = v
        var tmp = [UInt8]()
        repeat {
            tmp.append(digits.utf8Start[n & 15])
            n >>= 4
        } while n > 0
        append(tmp.reversed())
    }
}
