import Glibc

/// What a lookup learns of a path (the part of nginx's `ngx_open_file_info_t` lb reads).
struct FileInfo: Equatable {
    enum Kind: Equatable {
        case file
        case directory
        /// A device, FIFO or socket: never served.
        case other
    }

    var kind: Kind
    var size: Int
    /// Modification time, seconds.
    var mtime: Int
    var inode: UInt64

    init(kind: Kind, size: Int, mtime: Int, inode: UInt64) {
        self.kind = kind
        self.size = size
        self.mtime = mtime
        self.inode = inode
    }

    init(_ st: stat) {
        switch st.st_mode & S_IFMT {
        case S_IFREG: kind = .file
        case S_IFDIR: kind = .directory
        default: kind = .other
        }
        size = Int(st.st_size)
        mtime = Int(st.st_mtim.tv_sec)
        inode = UInt64(st.st_ino)
    }
}

/// The answer of a lookup: the file's information and, when a descriptor was asked for and the
/// path is a regular file, the open file (one use counted for the caller, who releases it); or
/// the errno of the failed stat/open.
enum FileLookup {
    case found(FileInfo, SharedFile?)
    case failed(Int32)

    /// The information, nil when the lookup failed.
    var info: FileInfo? {
        if case .found(let i, _) = self { return i }
        return nil
    }
}

/// The system calls an `OpenFileCache` makes, injected so that its policy is tested on a fake
/// file system and a fake clock.
struct FileSystemCalls {
    /// stat(2): the information, or the errno.
    var stat: ([UInt8]) -> Result<FileInfo, FileError>
    /// open(2) read-only: the descriptor, or the errno.
    var open: ([UInt8]) -> Result<Int32, FileError>
    /// fstat(2) of an open descriptor.
    var fstat: (Int32) -> Result<FileInfo, FileError>
    var close: (Int32) -> Void

    /// The real ones.
    static var system: FileSystemCalls { FileSystemCalls(stat: systemStat, open: systemOpen, fstat: systemFstat, close: { fd in _ = Glibc.close(fd) }) }
}

private func systemStat(_ path: [UInt8]) -> Result<FileInfo, FileError> {
    var st = stat()
    let ok = (path + [0]).withUnsafeBufferPointer { p in
        p.withMemoryRebound(to: CChar.self) { stat($0.baseAddress!, &st) == 0 }
    }
    return ok ? .success(FileInfo(st)) : .failure(FileError(errno))
}

private func systemOpen(_ path: [UInt8]) -> Result<Int32, FileError> {
    let fd = (path + [0]).withUnsafeBufferPointer { p in
        p.withMemoryRebound(to: CChar.self) { open($0.baseAddress!, O_RDONLY | O_CLOEXEC | O_NONBLOCK) }
    }
    return fd >= 0 ? .success(fd) : .failure(FileError(errno))
}

private func systemFstat(_ fd: Int32) -> Result<FileInfo, FileError> {
    var st = stat()
    return fstat(fd, &st) == 0 ? .success(FileInfo(st)) : .failure(FileError(errno))
}

/// A path as a dictionary key, hashed as one run of bytes (an array of bytes hashes byte by byte).
struct PathKey: Hashable {
    let bytes: [UInt8]

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    func hash(into h: inout Hasher) {
        bytes.withUnsafeBytes { h.combine(bytes: $0) }
    }

    static func == (a: PathKey, b: PathKey) -> Bool { a.bytes == b.bytes }
}

/// An errno from a file system call.
struct FileError: Error, Equatable {
    var code: Int32
    init(_ code: Int32) { self.code = code }
}

/// nginx's open file cache (`ngx_open_file_cache.c`), one per worker and `open_file_cache`
/// occurrence: by full path, a file's stat information and, for a regular file looked up for
/// sending `min_uses` times, a descriptor kept open and shared by the responses that send it
/// (they read with explicit offsets). Directories are cached as information, failed lookups
/// (not found, not a directory, no access) only when `open_file_cache_errors` is on.
///
/// - Information younger than `valid` is used without any system call.
/// - Older information is checked again: a kept descriptor is kept while `stat` shows the same
///   inode (size and mtime refreshed); another inode, or none, retires it.
/// - Entries not looked up for `inactive` are dropped, a few at each lookup and all at each
///   `sweep` (one periodic timer per worker); at `max` entries the least recently used goes.
/// - A descriptor leaves the cache by being retired (`SharedFile.retire`): it is closed when
///   the last response using it releases it, never under one.
///
/// Times are milliseconds of an injected clock (the caller passes `now`).
final class OpenFileCache {
    /// One cached path. `info` nil: a cached error (`error`).
    struct Entry {
        var path: [UInt8]
        var info: FileInfo?
        var error: Int32 = 0
        /// The kept descriptor of a regular file.
        var file: SharedFile?
        /// Lookups that asked for a descriptor (nginx's `uses`).
        var uses = 0
        /// When the information was last taken from the file system.
        var validated: Int64
        /// When it was last looked up.
        var accessed: Int64
        /// The least-recently-used list (slot numbers; -1 at its ends).
        var newer = -1
        var older = -1
    }

    let max: Int
    let inactiveMs: Int64
    let calls: FileSystemCalls
    private var slots: [Entry] = []
    private var freeSlots: [Int] = []
    private var index: [PathKey: Int] = [:]
    /// The slot of the last lookup: the static handler looks a path up twice in a row (its
    /// stat, then its descriptor), the second time without hashing. A freed slot's path is
    /// empty, so it never matches.
    private var lastSlot = -1
    /// Ends of the least-recently-used list.
    private var newest = -1
    private var oldest = -1

    init(max: Int, inactiveMs: Int, calls: FileSystemCalls = .system) {
        self.max = Swift.max(1, max)
        self.inactiveMs = Int64(inactiveMs)
        self.calls = calls
    }

    /// Entries cached.
    var count: Int { index.count }

    /// Descriptors the cache keeps open (responses may hold retired ones besides).
    var openDescriptors: Int { index.values.reduce(0) { $0 + (slots[$1].file == nil ? 0 : 1) } }

    /// Looks `path` up. With `descriptor`, a regular file comes with an open `SharedFile` (one
    /// use held for the caller, who gives it back with `release` or the worker's
    /// `releaseSharedFile`); without, it is a probe (stat only: index, try_files, gzip_static).
    /// Only descriptor lookups count towards `minUses`.
    func lookup(_ path: [UInt8], now: Int64, validMs: Int, minUses: Int, errors: Bool, descriptor: Bool) -> FileLookup {
        expire(now: now, atMost: 2)
        let found: Int?
        if lastSlot >= 0 && !path.isEmpty && slots[lastSlot].path == path { found = lastSlot } else { found = index[PathKey(path)] }
        guard let i = found else {
            let r = fetch(path, descriptor: descriptor)
            switch r {
            case .failure(let e):
                if errors && OpenFileCache.cacheable(e.code) {
                    _ = insert(Entry(path: path, info: nil, error: e.code, validated: now, accessed: now))
                }
                return .failed(e.code)
            case .success(let (info, fd)):
                let n = insert(Entry(path: path, info: info, uses: descriptor ? 1 : 0, validated: now, accessed: now))
                return .found(info, fd.map { attach($0, info: info, slot: n, minUses: minUses, now: now) })
            }
        }
        lastSlot = i
        touch(i, now: now)
        if descriptor { slots[i].uses += 1 }
        if now - slots[i].validated < Int64(validMs) {
            guard let info = slots[i].info else { return .failed(slots[i].error) }
            if !descriptor || info.kind != .file { return .found(info, nil) }
            if let f = slots[i].file {
                f.users += 1
                return .found(info, f)
            }
            // Known, but no descriptor kept (a probe found it, or it was used too few times).
        }
        return revalidate(i, now: now, minUses: minUses, errors: errors, descriptor: descriptor)
    }

    /// Gives back a descriptor `lookup` handed out; closes it when it was retired and this was
    /// its last user.
    func release(_ f: SharedFile) {
        if f.release() { calls.close(f.fd) }
    }

    /// Drops every entry not looked up for `inactive`; true when entries remain.
    @discardableResult
    func sweep(now: Int64) -> Bool {
        expire(now: now, atMost: Int.max)
        return !index.isEmpty
    }

    /// Drops every entry (a reload: the next generation starts with its own caches).
    func removeAll() {
        while oldest >= 0 { remove(oldest) }
    }

    // MARK: policy

    /// Errors worth caching: those that stay until someone changes the file system.
    static func cacheable(_ e: Int32) -> Bool { e == ENOENT || e == ENOTDIR || e == EACCES }

    /// The information (and, for a regular file looked up for a descriptor, an open one) from
    /// the file system: open + fstat as nginx (the descriptor and the information agree), or
    /// stat alone for a probe.
    private func fetch(_ path: [UInt8], descriptor: Bool) -> Result<(FileInfo, Int32?), FileError> {
        guard descriptor else { return calls.stat(path).map { ($0, nil) } }
        switch calls.open(path) {
        case .failure(let e): return .failure(e)
        case .success(let fd):
            switch calls.fstat(fd) {
            case .failure(let e):
                calls.close(fd)
                return .failure(e)
            case .success(let info):
                if info.kind == .file { return .success((info, fd)) }
                calls.close(fd)
                return .success((info, nil))
            }
        }
    }

    /// Information older than `valid`, or a descriptor wanted that is not kept: ask the file
    /// system again. A kept descriptor survives while the path still names its inode.
    private func revalidate(_ i: Int, now: Int64, minUses: Int, errors: Bool, descriptor: Bool) -> FileLookup {
        if let kept = slots[i].file {
            switch calls.stat(slots[i].path) {
            case .failure(let e):
                return failed(i, e.code, errors: errors, now: now)
            case .success(let info) where info.kind == .file && info.inode == kept.inode:
                slots[i].info = info
                slots[i].validated = now
                guard descriptor else { return .found(info, nil) }
                kept.users += 1
                return .found(info, kept)
            case .success(let info):
                // Another file (renamed over) or no longer a file: the old descriptor retires.
                retire(i)
                if !descriptor || info.kind != .file {
                    slots[i].info = info
                    slots[i].validated = now
                    return .found(info, nil)
                }
            }
        }
        switch fetch(slots[i].path, descriptor: descriptor) {
        case .failure(let e):
            return failed(i, e.code, errors: errors, now: now)
        case .success(let (info, fd)):
            slots[i].info = info
            slots[i].error = 0
            slots[i].validated = now
            return .found(info, fd.map { attach($0, info: info, slot: i, minUses: minUses, now: now) })
        }
    }

    /// A lookup that failed with `e`: cached when errors are, else the entry goes.
    private func failed(_ i: Int, _ e: Int32, errors: Bool, now: Int64) -> FileLookup {
        if errors && OpenFileCache.cacheable(e) {
            retire(i)
            slots[i].info = nil
            slots[i].error = e
            slots[i].validated = now
        } else {
            remove(i)
        }
        return .failed(e)
    }

    /// A fresh descriptor for slot `i`: kept when the entry was looked up for one `minUses`
    /// times, else handed out alone (closed when its response releases it).
    private func attach(_ fd: Int32, info: FileInfo, slot i: Int, minUses: Int, now: Int64) -> SharedFile {
        let f = SharedFile(fd: fd, inode: info.inode, now: now)
        f.users = 1
        if slots[i].uses >= minUses {
            retire(i)
            slots[i].file = f
        } else {
            f.retired = true
        }
        return f
    }

    // MARK: entries and the least-recently-used list

    private func insert(_ e: Entry) -> Int {
        if index.count >= max, oldest >= 0 { remove(oldest) }
        let i: Int
        if let free = freeSlots.popLast() {
            slots[free] = e
            i = free
        } else {
            slots.append(e)
            i = slots.count - 1
        }
        index[PathKey(e.path)] = i
        link(i)
        lastSlot = i
        return i
    }

    /// Drops entries not looked up for `inactive`, oldest first, at most `n`.
    private func expire(now: Int64, atMost n: Int) {
        var left = n
        while left > 0, oldest >= 0, now - slots[oldest].accessed > inactiveMs {
            remove(oldest)
            left -= 1
        }
    }

    private func remove(_ i: Int) {
        retire(i)
        unlink(i)
        index[PathKey(slots[i].path)] = nil
        slots[i].path = []
        slots[i].info = nil
        freeSlots.append(i)
    }

    /// The entry's kept descriptor leaves it (closed now if no response uses it).
    private func retire(_ i: Int) {
        guard let f = slots[i].file else { return }
        slots[i].file = nil
        if f.retire() { calls.close(f.fd) }
    }

    private func touch(_ i: Int, now: Int64) {
        slots[i].accessed = now
        guard newest != i else { return }
        unlink(i)
        link(i)
    }

    /// Puts slot `i` at the newest end.
    private func link(_ i: Int) {
        slots[i].older = newest
        slots[i].newer = -1
        if newest >= 0 { slots[newest].newer = i }
        newest = i
        if oldest < 0 { oldest = i }
    }

    private func unlink(_ i: Int) {
        let (n, o) = (slots[i].newer, slots[i].older)
        if n >= 0 { slots[n].older = o } else { newest = o }
        if o >= 0 { slots[o].newer = n } else { oldest = n }
        slots[i].newer = -1
        slots[i].older = -1
    }
}
