import Glibc
import LBConfig
import LBIO
import Synchronization

/// One `proxy_cache_path` zone at run time: its directory, the shared index (locked; every worker
/// uses it), counters, and the manager work (start-up loading, `inactive`, `max_size`, unlinking)
/// that runs on the cache manager thread, never on a worker loop. Kept across reloads while the
/// zone's path and shape stay the same, so a reload keeps every entry.
public final class CacheZoneRuntime: Sendable {
    public let zone: CacheZone
    let index: Mutex<CacheIndex>
    let loaded = Atomic<Bool>(false)
    let tempSerial = Atomic<Int>(0)
    public let hits = Atomic<Int>(0)
    public let misses = Atomic<Int>(0)
    public let stale = Atomic<Int>(0)
    public let updating = Atomic<Int>(0)
    public let revalidated = Atomic<Int>(0)
    public let expired = Atomic<Int>(0)
    public let bypassed = Atomic<Int>(0)
    public let stores = Atomic<Int>(0)
    let tempDirectory: String

    init(_ zone: CacheZone) {
        self.zone = zone
        index = Mutex(CacheIndex(memoryLimit: zone.keysZoneSize, maxSize: zone.maxSize))
        tempDirectory = zone.path + "/.lb-temp"
    }

    func sameShape(_ z: CacheZone) -> Bool {
        z.path == zone.path && z.levels == zone.levels && z.keysZoneSize == zone.keysZoneSize && z.maxSize == zone.maxSize
            && z.inactiveMs == zone.inactiveMs
    }

    /// The directory of an entry: nginx's `levels` — characters taken from the end of the hex name.
    func directory(for h: CacheHash) -> String {
        let hex = Array(h.description.utf8)
        var path = zone.path
        var end = hex.count
        for l in zone.levels {
            path += "/" + String(decoding: hex[(end - l)..<end], as: UTF8.self)
            end -= l
        }
        return path
    }

    public func path(for h: CacheHash) -> String { directory(for: h) + "/" + h.description }

    func tempPath() -> String {
        tempDirectory + "/\(getpid()).\(tempSerial.add(1, ordering: .relaxed).newValue)"
    }

    func makeDirectory(_ path: String) {
        if mkdir(path, 0o700) == 0 || errno == EEXIST { return }
        if errno == ENOENT, let slash = path.lastIndex(of: "/"), slash > path.startIndex {
            makeDirectory(String(path[..<slash]))
            mkdir(path, 0o700)
        }
    }

    // MARK: manager work (cache manager thread)

    /// Rebuilds the index from the files on disk (nginx's cache loader): valid entries are
    /// indexed, truncated or corrupted lb files are removed, foreign files are left alone and
    /// never served, leftover temporary files are removed.
    func load(log: (ErrorLog.Level, String) -> Void) {
        makeDirectory(zone.path)
        removeTemporaries()
        var count = 0, skipped = 0
        walk(zone.path, depth: 0) { dir, name in
            guard let h = CacheHash(hex: name) else { return }
            let path = dir + "/" + name
            guard dir == directory(for: h) || zone.levels.isEmpty && dir == zone.path,
                  let e = CacheFile.read(path: path, expecting: h) else {
                skipped += 1
                log(.warn, "cache file \"\(path)\" is invalid or truncated, removed")
                unlink(path)
                return
            }
            let now = monotonicMillis()
            if index.withLock({ $0.insert(e, now: now, onlyIfAbsent: true) }) { count += 1 }
        }
        loaded.store(true, ordering: .releasing)
        log(.notice, "cache \"\(zone.name)\": \(count) entries loaded from \"\(zone.path)\"\(skipped > 0 ? ", \(skipped) invalid files removed" : "")")
    }

    private func removeTemporaries() {
        guard let d = opendir(tempDirectory) else { return }
        defer { closedir(d) }
        while let ent = readdir(d) {
            let name = withUnsafeBytes(of: ent.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if name == "." || name == ".." { continue }
            unlink(tempDirectory + "/" + name)
        }
    }

    private func walk(_ dir: String, depth: Int, _ visit: (String, String) -> Void) {
        guard let d = opendir(dir) else { return }
        var subdirs: [String] = []
        while let ent = readdir(d) {
            let name = withUnsafeBytes(of: ent.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if name == "." || name == ".." || name == ".lb-temp" { continue }
            if ent.pointee.d_type == UInt8(DT_DIR) {
                if depth < zone.levels.count { subdirs.append(dir + "/" + name) }
            } else if depth == zone.levels.count {
                visit(dir, name)
            }
        }
        closedir(d)
        for s in subdirs { walk(s, depth: depth + 1, visit) }
    }

    /// Periodic work: `inactive` removal, and unlinking files of removed entries.
    func maintain() {
        let now = monotonicMillis()
        let victims = index.withLock { ix -> [CacheEntry] in
            ix.expireInactive(now: now, inactiveMs: Int64(zone.inactiveMs))
            let v = ix.removed
            ix.removed.removeAll()
            return v
        }
        for e in victims { unlinkIfSame(e) }
    }

    /// Unlinks an entry's file unless it has been replaced since (another inode at the path).
    func unlinkIfSame(_ e: CacheEntry) {
        let p = path(for: e.hash)
        var st = stat()
        if stat(p, &st) == 0 && UInt64(st.st_ino) == e.inode { unlink(p) }
    }

    public struct Snapshot: Sendable {
        public var name: String
        public var entries: Int
        public var diskBytes: Int
        public var memoryBytes: Int
        public var maxSize: Int?
        public var hits, misses, stale, updating, revalidated, expired, bypassed, stores: Int
    }

    public var snapshot: Snapshot {
        let (n, d, m) = index.withLock { ($0.count, $0.diskBytes, $0.memoryBytes) }
        return Snapshot(name: zone.name, entries: n, diskBytes: d, memoryBytes: m, maxSize: zone.maxSize,
                        hits: hits.load(ordering: .relaxed), misses: misses.load(ordering: .relaxed),
                        stale: stale.load(ordering: .relaxed), updating: updating.load(ordering: .relaxed),
                        revalidated: revalidated.load(ordering: .relaxed), expired: expired.load(ordering: .relaxed),
                        bypassed: bypassed.load(ordering: .relaxed), stores: stores.load(ordering: .relaxed))
    }
}
