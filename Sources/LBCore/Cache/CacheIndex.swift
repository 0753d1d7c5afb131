import LBHTTP

/// A cache key's MD5, as two words (cheap to hash and compare).
public struct CacheHash: Hashable, Sendable, CustomStringConvertible {
    public var hi: UInt64
    public var lo: UInt64

    public init(digest d: [UInt8]) {
        precondition(d.count == 16)
        var h: UInt64 = 0, l: UInt64 = 0
        for i in 0..<8 { h = h << 8 | UInt64(d[i]) }
        for i in 8..<16 { l = l << 8 | UInt64(d[i]) }
        hi = h
        lo = l
    }

    public init(key: [UInt8]) {
        let w = key.withUnsafeBytes { MD5.words($0) }
        // The digest's bytes, big-endian into two words (byte 0 is the high byte of `hi`).
        hi = UInt64(w.0.byteSwapped) << 32 | UInt64(w.1.byteSwapped)
        lo = UInt64(w.2.byteSwapped) << 32 | UInt64(w.3.byteSwapped)
    }

    /// Parses 32 lowercase hex digits (a cache file's name); nil for anything else.
    public init?(hex: some StringProtocol) {
        let u = Array(hex.utf8)
        guard u.count == 32 else { return nil }
        var d: [UInt8] = []
        for i in stride(from: 0, to: 32, by: 2) {
            guard let a = MD5.hexValue(u[i]), let b = MD5.hexValue(u[i + 1]) else { return nil }
            d.append(a << 4 | b)
        }
        self.init(digest: d)
    }

    public var bytes: [UInt8] {
        var out: [UInt8] = []
        for i in (0..<8).reversed() { out.append(UInt8(truncatingIfNeeded: hi >> (8 * UInt64(i)))) }
        for i in (0..<8).reversed() { out.append(UInt8(truncatingIfNeeded: lo >> (8 * UInt64(i)))) }
        return out
    }

    public var description: String { MD5.hex(bytes) }
}

extension MD5 {
    static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - 48
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - 87
        default: nil
        }
    }
}

/// One stored response: where its file is and what the index needs to serve and manage it.
public struct CacheEntry: Sendable {
    public var hash: CacheHash
    /// The hash of the key alone; differs from `hash` for a Vary variant.
    public var primary: CacheHash
    public var key: [UInt8]
    /// Request headers this variant was chosen by (lowercased), empty without Vary.
    public var varyNames: [String]
    /// The upstream's response head as stored (no framing or hop-by-hop headers).
    public var head: [UInt8]
    public var status: Int
    public var bodyOffset: Int
    public var bodyLength: Int
    /// Wall-clock second the entry is fresh until.
    public var validUntil: Int
    public var staleWhileRevalidate: Int
    public var staleIfError: Int
    /// The file's inode: a hit checks it, so a file replaced since the lookup is never served
    /// with another entry's head.
    public var inode: UInt64
    /// The file's modification time (ns since the epoch) when it was written or last refreshed: a
    /// hit checks it too, so a file rewritten in place (`cp` over it) is never served.
    public var modified: Int64 = 0
    /// `head` parsed once (a hit does not parse it again).
    public var parsed = ResponseHead()

    public var fileSize: Int { bodyOffset + bodyLength }
    /// What the entry costs in the keys zone (bounded by its size, as nginx's shared zone is).
    public var memoryCost: Int { 192 + key.count + head.count + varyNames.reduce(0) { $0 + $1.utf8.count + 16 } }

    public init(hash: CacheHash, primary: CacheHash, key: [UInt8], varyNames: [String], head: [UInt8], status: Int,
                bodyOffset: Int, bodyLength: Int, validUntil: Int, staleWhileRevalidate: Int, staleIfError: Int, inode: UInt64) {
        self.hash = hash
        self.primary = primary
        self.key = key
        self.varyNames = varyNames
        self.head = head
        self.status = status
        self.bodyOffset = bodyOffset
        self.bodyLength = bodyLength
        self.validUntil = validUntil
        self.staleWhileRevalidate = staleWhileRevalidate
        self.staleIfError = staleIfError
        self.inode = inode
        head.withUnsafeBytes { b in if let p = try? HeadParser.response(b, start: 0, end: b.count) { parsed = p } }
    }
}

/// The in-memory index of one cache zone: entries by hash in LRU order, bounded in memory by the
/// keys zone size and on disk by `max_size`; plus the per-key state of requests in flight (the
/// `proxy_cache_lock` holder, `proxy_cache_min_uses` counts) and which keys vary. Pure data: the
/// caller holds it under a lock and does the file work; removed entries are queued in `removed`
/// for the caller to unlink.
public struct CacheIndex: Sendable {
    struct Slot: Sendable {
        var entry: CacheEntry?
        var prev = -1
        var next = -1
        var lastAccess: Int64 = 0
    }

    struct Pending: Sendable {
        var uses = 0
        /// Monotonic ms since which a request has been fetching this key, or nil.
        var updatingSince: Int64?
        var lastSeen: Int64 = 0
    }

    public let memoryLimit: Int
    public let maxSize: Int?
    private var slots: [Slot] = []
    private var free: [Int] = []
    private var map: [CacheHash: Int] = [:]
    /// Most and least recently used slots.
    private var newest = -1
    private var oldest = -1
    private var pending: [CacheHash: Pending] = [:]
    /// Primary hash → the request headers its variants are keyed by.
    private var vary: [CacheHash: [String]] = [:]
    public private(set) var diskBytes = 0
    public private(set) var memoryBytes = 0
    /// Entries dropped (evicted, expired, purged, replaced) whose files the caller must unlink.
    public var removed: [CacheEntry] = []

    public init(memoryLimit: Int, maxSize: Int?) {
        self.memoryLimit = memoryLimit
        self.maxSize = maxSize
    }

    public var count: Int { map.count }

    /// The entry for a hash, marking it used.
    public mutating func lookup(_ h: CacheHash, now: Int64) -> CacheEntry? {
        guard let i = map[h] else { return nil }
        slots[i].lastAccess = now
        moveToFront(i)
        return slots[i].entry
    }

    /// The entry without touching its LRU position.
    public func peek(_ h: CacheHash) -> CacheEntry? { map[h].flatMap { slots[$0].entry } }

    /// The Vary header names recorded for a key, if its responses vary.
    public func varyNames(_ primary: CacheHash) -> [String]? { vary[primary] }

    /// Adds or replaces an entry; evicts least recently used entries beyond the limits. With
    /// `onlyIfAbsent` (the start-up loader), an entry already indexed by live traffic wins.
    @discardableResult
    public mutating func insert(_ e: CacheEntry, now: Int64, onlyIfAbsent: Bool = false) -> Bool {
        if let i = map[e.hash] {
            if onlyIfAbsent { return false }
            // The new file replaced the old one at the same path (rename): nothing to unlink.
            unlink(i)
            release(i)
        }
        if e.hash != e.primary { vary[e.primary] = e.varyNames } else if !onlyIfAbsent { vary[e.primary] = nil }
        let i: Int
        if let f = free.popLast() { i = f } else { slots.append(Slot()); i = slots.count - 1 }
        slots[i] = Slot(entry: e, prev: -1, next: -1, lastAccess: now)
        map[e.hash] = i
        pushFront(i)
        diskBytes += e.fileSize
        memoryBytes += e.memoryCost
        evictBeyondLimits(keep: i)
        return true
    }

    /// Updates the freshness of an entry (a 304 revalidation).
    public mutating func refresh(_ h: CacheHash, validUntil: Int, staleWhileRevalidate: Int, staleIfError: Int, modified: Int64? = nil) {
        guard let i = map[h] else { return }
        if let m = modified { slots[i].entry!.modified = m }
        slots[i].entry!.validUntil = validUntil
        slots[i].entry!.staleWhileRevalidate = staleWhileRevalidate
        slots[i].entry!.staleIfError = staleIfError
    }

    /// Removes an entry (its file is queued for unlinking).
    public mutating func remove(_ h: CacheHash) {
        guard let i = map[h], let e = slots[i].entry else { return }
        removed.append(e)
        unlink(i)
        release(i)
    }

    /// Drops an entry whose file turned out missing or different: nothing to unlink.
    public mutating func forget(_ h: CacheHash, inode: UInt64) {
        guard let i = map[h], slots[i].entry?.inode == inode else { return }
        unlink(i)
        release(i)
    }

    /// Removes every entry whose key satisfies `matches`; returns how many.
    public mutating func removeAll(where matches: (CacheEntry) -> Bool) -> Int {
        let victims = map.values.filter { slots[$0].entry.map(matches) ?? false }
        for i in victims {
            if let e = slots[i].entry {
                removed.append(e)
                if e.hash != e.primary { vary[e.primary] = nil }
            }
            unlink(i)
            release(i)
        }
        return victims.count
    }

    /// Removes entries not used for `inactiveMs` (nginx's `inactive`), and stale pending records.
    public mutating func expireInactive(now: Int64, inactiveMs: Int64) {
        while oldest >= 0 && now - slots[oldest].lastAccess >= inactiveMs {
            let i = oldest
            if let e = slots[i].entry { removed.append(e) }
            unlink(i)
            release(i)
        }
        if pending.count > 0 {
            pending = pending.filter { _, p in p.updatingSince != nil || now - p.lastSeen < inactiveMs }
        }
    }

    // MARK: requests in flight

    /// Counts a request for a key that missed (`proxy_cache_min_uses`); returns the count.
    public mutating func countUse(_ h: CacheHash, now: Int64) -> Int {
        if pending.count > 65_536 && pending[h] == nil { pending = pending.filter { $0.value.updatingSince != nil } }
        pending[h, default: Pending()].uses += 1
        pending[h]!.lastSeen = now
        return pending[h]!.uses
    }

    /// Becomes the one request fetching a key, unless another holds it and is younger than
    /// `maxAgeMs` (`proxy_cache_lock_age`).
    public mutating func tryLock(_ h: CacheHash, now: Int64, maxAgeMs: Int64) -> Bool {
        if let since = pending[h]?.updatingSince, now - since < maxAgeMs { return false }
        pending[h, default: Pending()].updatingSince = now
        pending[h]!.lastSeen = now
        return true
    }

    public func isLocked(_ h: CacheHash, now: Int64, maxAgeMs: Int64) -> Bool {
        if let since = pending[h]?.updatingSince { return now - since < maxAgeMs }
        return false
    }

    public mutating func unlock(_ h: CacheHash) {
        guard pending[h] != nil else { return }
        pending[h]!.updatingSince = nil
        if pending[h]!.uses == 0 { pending[h] = nil }
    }

    public mutating func clearUses(_ h: CacheHash) {
        if pending[h]?.updatingSince == nil { pending[h] = nil } else { pending[h]!.uses = 0 }
    }

    /// Every entry, oldest first (status pages, tests).
    public var entriesOldestFirst: [CacheEntry] {
        var out: [CacheEntry] = []
        var i = oldest
        while i >= 0 {
            if let e = slots[i].entry { out.append(e) }
            i = slots[i].prev
        }
        return out
    }

    // MARK: LRU list

    private mutating func evictBeyondLimits(keep: Int) {
        while oldest >= 0 && oldest != keep && (memoryBytes > memoryLimit || (maxSize.map { diskBytes > $0 } ?? false)) {
            let i = oldest
            if let e = slots[i].entry { removed.append(e) }
            unlink(i)
            release(i)
        }
    }

    private mutating func pushFront(_ i: Int) {
        slots[i].prev = -1
        slots[i].next = newest
        if newest >= 0 { slots[newest].prev = i }
        newest = i
        if oldest < 0 { oldest = i }
    }

    private mutating func unlink(_ i: Int) {
        let p = slots[i].prev, n = slots[i].next
        if p >= 0 { slots[p].next = n } else { newest = n }
        if n >= 0 { slots[n].prev = p } else { oldest = p }
        slots[i].prev = -1
        slots[i].next = -1
    }

    private mutating func moveToFront(_ i: Int) {
        guard newest != i else { return }
        unlink(i)
        pushFront(i)
    }

    private mutating func release(_ i: Int) {
        if let e = slots[i].entry {
            diskBytes -= e.fileSize
            memoryBytes -= e.memoryCost
            map[e.hash] = nil
        }
        slots[i].entry = nil
        free.append(i)
    }
}
