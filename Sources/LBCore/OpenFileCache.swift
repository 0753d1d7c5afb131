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
    /// The owner may execute it (nginx's `ngx_is_exec`, directories too): the rewrite module's `-x`.
    var executable: Bool

    init(kind: Kind, size: Int, mtime: Int, inode: UInt64, executable: Bool = false) {
        self.kind = kind
        self.size = size
        self.mtime = mtime
        self.inode = inode
        self.executable = executable
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
        executable = st.st_mode & S_IXUSR != 0
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

/// How `disable_symlinks` applies to one path: nginx's `of.disable_symlinks` and
/// `of.disable_symlinks_from`, as `ngx_http_set_disable_symlinks` sets them. A cache entry
/// remembers the check it was opened under and is not used under another one.
struct SymlinkCheck: Equatable {
    enum Mode: Equatable {
        case off
        /// Any symlink refuses (`on`).
        case on
        /// A symlink whose owner differs from its target's refuses (`if_not_owner`).
        case ifNotOwner
    }

    var mode: Mode
    /// The bytes of the path opened as they are (symlinks there followed) before the checks
    /// start, always before a `/`; 0: every component is checked.
    var from: Int

    init(mode: Mode, from: Int = 0) {
        self.mode = mode
        self.from = from
    }

    static let off = SymlinkCheck(mode: .off)

    /// The check for `path` under `mode` with `from=` evaluated to `from` (nil: no `from=`): a
    /// `from` that is not a prefix of the path, or is empty, checks the whole path; one equal
    /// to the path checks nothing; otherwise the checks start at the `/` at its end or after it.
    static func forPath(_ path: [UInt8], mode: Mode, from: [UInt8]?) -> SymlinkCheck {
        guard mode != .off, let from, !from.isEmpty, from.count <= path.count, path.starts(with: from) else {
            return SymlinkCheck(mode: mode)
        }
        if from.count == path.count { return .off }
        if path[from.count] == UInt8(ascii: "/") { return SymlinkCheck(mode: mode, from: from.count) }
        if path[from.count - 1] == UInt8(ascii: "/") { return SymlinkCheck(mode: mode, from: from.count - 1) }
        return SymlinkCheck(mode: mode)
    }
}

/// The system calls an `OpenFileCache` makes, injected so that its policy is tested on a fake
/// file system and a fake clock.
struct FileSystemCalls {
    /// stat(2) (under a symlink check: the checked open, fstat and close): the information, or
    /// the errno.
    var stat: ([UInt8], SymlinkCheck) -> Result<FileInfo, FileError>
    /// open(2) read-only (under a symlink check, component by component): the descriptor, or
    /// the errno.
    var open: ([UInt8], SymlinkCheck) -> Result<Int32, FileError>
    /// fstat(2) of an open descriptor.
    var fstat: (Int32) -> Result<FileInfo, FileError>
    var close: (Int32) -> Void
    /// Starts watching an open file for changes of its content (the worker's `FileWatcher`):
    /// the watch's number, nil when none can be had (then no copy of the file is held).
    var watch: (Int32) -> Int32? = { _ in nil }
    /// Ends a watch `watch` started.
    var unwatch: (Int32) -> Void = { _ in }
    /// The whole content of an open file of `size` bytes, nil unless exactly that many were read.
    var read: (Int32, Int) -> [UInt8]? = systemRead

    /// The real ones (without watches: no copies held).
    static var system: FileSystemCalls { FileSystemCalls(stat: systemStat, open: systemOpen, fstat: systemFstat, close: { fd in _ = Glibc.close(fd) }) }
}

private func systemRead(_ fd: Int32, _ size: Int) -> [UInt8]? {
    var ok = false
    let bytes = [UInt8](unsafeUninitializedCapacity: size) { p, count in
        var done = 0
        while done < size {
            let n = pread(fd, p.baseAddress! + done, size - done, off_t(done))
            if n > 0 {
                done += n
            } else if n < 0 && errno == EINTR {
                continue
            } else {
                break
            }
        }
        // One byte more means the file grew since its fstat: not a copy of what was measured.
        var extra: UInt8 = 0
        ok = done == size && pread(fd, &extra, 1, off_t(size)) == 0
        count = done
    }
    return ok ? bytes : nil
}

private func systemStat(_ path: [UInt8], _ check: SymlinkCheck) -> Result<FileInfo, FileError> {
    if check.mode != .off {
        switch systemOpen(path, check) {
        case .failure(let e): return .failure(e)
        case .success(let fd):
            defer { _ = close(fd) }
            return systemFstat(fd)
        }
    }
    var st = stat()
    let ok = (path + [0]).withUnsafeBufferPointer { p in
        p.withMemoryRebound(to: CChar.self) { stat($0.baseAddress!, &st) == 0 }
    }
    return ok ? .success(FileInfo(st)) : .failure(FileError(errno))
}

private let readFlags = O_RDONLY | O_CLOEXEC | O_NONBLOCK

private func systemOpen(_ path: [UInt8], _ check: SymlinkCheck) -> Result<Int32, FileError> {
    if check.mode != .off { return openChecked(path, check) }
    let fd = (path + [0]).withUnsafeBufferPointer { p in
        p.withMemoryRebound(to: CChar.self) { open($0.baseAddress!, readFlags) }
    }
    return fd >= 0 ? .success(fd) : .failure(FileError(errno))
}

private func systemFstat(_ fd: Int32) -> Result<FileInfo, FileError> {
    var st = stat()
    return fstat(fd, &st) == 0 ? .success(FileInfo(st)) : .failure(FileError(errno))
}

/// Linux's O_PATH: a descriptor that only names a directory to walk from.
private let oPath: Int32 = 0o10000000
private let searchFlags = oPath | O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NONBLOCK

/// open(2) under `disable_symlinks`, as nginx's ngx_open_file_wrapper does it: the first
/// `check.from` bytes opened as they are, then each component with openat(2) from the last,
/// refusing a symlink (O_NOFOLLOW: ELOOP for the last component, ENOTDIR for one that must be a
/// directory) or, for `if_not_owner`, a component whose owner differs from what it opened (ELOOP).
/// A path ending in `/` opens its last directory (`.`).
private func openChecked(_ path: [UInt8], _ check: SymlinkCheck) -> Result<Int32, FileError> {
    func cString<T>(_ bytes: ArraySlice<UInt8>, _ body: (UnsafePointer<CChar>) -> T) -> T {
        (Array(bytes) + [0]).withUnsafeBufferPointer { p in p.withMemoryRebound(to: CChar.self) { body($0.baseAddress!) } }
    }
    /// One component from `at`, checked.
    func component(_ at: Int32, _ name: ArraySlice<UInt8>, _ flags: Int32) -> Int32 {
        cString(name) { n in
            if check.mode == .on { return openat(at, n, flags | O_NOFOLLOW) }
            let fd = openat(at, n, flags)
            guard fd >= 0 else { return -1 }
            var link = stat(), target = stat()
            var e: Int32 = 0
            if fstatat(at, n, &link, AT_SYMLINK_NOFOLLOW) != 0 || fstat(fd, &target) != 0 {
                e = errno
            } else if link.st_uid != target.st_uid {
                e = ELOOP
            }
            if e == 0 { return fd }
            _ = close(fd)
            errno = e
            return -1
        }
    }
    var at = AT_FDCWD
    var p = 0
    if check.from > 0 {
        at = cString(path[..<check.from]) { open($0, searchFlags) }
        p = check.from + 1
    } else if path.first == UInt8(ascii: "/") {
        at = open("/", searchFlags)
        p = 1
    }
    if at == -1 { return .failure(FileError(errno)) }
    defer { if at != AT_FDCWD { _ = close(at) } }
    while let slash = path[p...].firstIndex(of: UInt8(ascii: "/")) {
        if slash == p {
            p += 1
            continue
        }
        let fd = component(at, path[p..<slash], searchFlags)
        if fd < 0 { return .failure(FileError(errno)) }
        if at != AT_FDCWD { _ = close(at) }
        at = fd
        p = slash + 1
    }
    let fd = p >= path.count ? openat(at, ".", readFlags) : component(at, path[p...], readFlags)
    return fd >= 0 ? .success(fd) : .failure(FileError(errno))
}

/// A path as a dictionary key, hashed as one run of bytes (an array of bytes hashes byte by byte).
struct PathKey: Hashable {
    let bytes: [UInt8]

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    func hash(into h: inout Hasher) {
        bytes.withUnsafeBytes { h.combine(bytes: $0) }
    }

    static func == (a: PathKey, b: PathKey) -> Bool { PathKey.same(a.bytes, b.bytes) }

    /// Whether two paths have the same octets: one `memcmp` (the generic `==` of two arrays
    /// compares element by element, ≈230 instructions for a short path).
    @inline(__always)
    static func same(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        return a.withUnsafeBytes { x in b.withUnsafeBytes { y in x.count == 0 || Glibc.memcmp(x.baseAddress!, y.baseAddress!, x.count) == 0 } }
    }
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
/// (any errno of the open or stat, as nginx) only when `open_file_cache_errors` is on.
///
/// - Information younger than `valid` is used without any system call, when it was taken under
///   the same `disable_symlinks` check as the lookup's (else it is taken again, under the
///   lookup's: a path opened where symlinks are allowed is not served where they are not).
/// - Older information is checked again: a kept descriptor is kept while `stat` shows the same
///   inode (size and mtime refreshed); another inode, or none, retires it.
/// - Entries not looked up for `inactive` are dropped, a few at each lookup and all at each
///   `sweep` (one periodic timer per worker); at `max` entries the least recently used goes.
/// - A descriptor leaves the cache by being retired (`SharedFile.retire`): it is closed when
///   the last response using it releases it, never under one.
/// - A kept file of at most `contentLimit` bytes is also held in memory (`SharedFile.content`:
///   responses that must see the bytes, TLS and HTTP/2, copy them from there instead of reading
///   the file each time) while the worker watches it (inotify): a change of its content retires
///   the descriptor and the copy at once and makes the next lookup take the information again,
///   so an edit in place is served whole with its new size and validators (nginx reads the new
///   bytes through the kept descriptor but keeps the old size and validators until `valid`).
///   Without a watch (inotify unavailable or out of watches) nothing is held in memory.
///
/// Times are milliseconds of an injected clock (the caller passes `now`).
final class OpenFileCache {
    /// One cached path. `info` nil: a cached error (`error`).
    struct Entry {
        var path: [UInt8]
        var info: FileInfo?
        var error: Int32 = 0
        /// The `disable_symlinks` check it was taken under.
        var symlinks = SymlinkCheck.off
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

    /// The largest file held in memory besides its descriptor.
    static let contentLimit = 16384

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
    /// Only descriptor lookups count towards `minUses`. `symlinks`: the `disable_symlinks` check
    /// the path is opened under.
    func lookup(_ path: [UInt8], now: Int64, validMs: Int, minUses: Int, errors: Bool, descriptor: Bool, symlinks: SymlinkCheck = .off) -> FileLookup {
        expire(now: now, atMost: 2)
        let found: Int?
        if lastSlot >= 0 && !path.isEmpty && PathKey.same(slots[lastSlot].path, path) { found = lastSlot } else { found = index[PathKey(path)] }
        guard let i = found else {
            let r = fetch(path, descriptor: descriptor, symlinks: symlinks)
            switch r {
            case .failure(let e):
                if errors {
                    _ = insert(Entry(path: path, info: nil, error: e.code, symlinks: symlinks, validated: now, accessed: now))
                }
                return .failed(e.code)
            case .success(let (info, fd)):
                let n = insert(Entry(path: path, info: info, symlinks: symlinks, uses: descriptor ? 1 : 0, validated: now, accessed: now))
                return .found(info, fd.map { attach($0, info: info, slot: n, minUses: minUses, now: now) })
            }
        }
        lastSlot = i
        touch(i, now: now)
        if descriptor { slots[i].uses += 1 }
        if now - slots[i].validated < Int64(validMs) && slots[i].symlinks == symlinks {
            guard let info = slots[i].info else { return .failed(slots[i].error) }
            if !descriptor || info.kind != .file { return .found(info, nil) }
            if let f = slots[i].file {
                f.users += 1
                return .found(info, f)
            }
            // Known, but no descriptor kept (a probe found it, or it was used too few times).
        }
        return revalidate(i, now: now, minUses: minUses, errors: errors, descriptor: descriptor, symlinks: symlinks)
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

    /// The static module's answer to a failed open (`ngx_http_static_handler`): not found,
    /// forbidden (refused by `disable_symlinks` too), else an internal error.
    static func status(openError e: Int32) -> Int {
        switch e {
        case ENOENT, ENOTDIR, ENAMETOOLONG: return 404
        case EACCES, EMLINK, ELOOP: return 403
        default: return 500
        }
    }

    /// Drops every entry (a reload: the next generation starts with its own caches).
    func removeAll() {
        while oldest >= 0 { remove(oldest) }
    }

    // MARK: policy

    /// The information (and, for a regular file looked up for a descriptor, an open one) from
    /// the file system: open + fstat as nginx (the descriptor and the information agree), or
    /// stat alone for a probe.
    private func fetch(_ path: [UInt8], descriptor: Bool, symlinks: SymlinkCheck) -> Result<(FileInfo, Int32?), FileError> {
        guard descriptor else { return calls.stat(path, symlinks).map { ($0, nil) } }
        switch calls.open(path, symlinks) {
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
    /// system again. A kept descriptor survives while the path still names its inode (under
    /// the lookup's symlink check, which the entry takes).
    private func revalidate(_ i: Int, now: Int64, minUses: Int, errors: Bool, descriptor: Bool, symlinks: SymlinkCheck) -> FileLookup {
        slots[i].symlinks = symlinks
        if let kept = slots[i].file {
            switch calls.stat(slots[i].path, symlinks) {
            case .failure(let e):
                return failed(i, e.code, errors: errors, now: now)
            case .success(let info) where info.kind == .file && info.inode == kept.inode
                && (kept.content == nil || (info.size == slots[i].info?.size && info.mtime == slots[i].info?.mtime)):
                // (A copy in memory is kept only while the file is unchanged, should its
                // watch's news be still on the way.)
                slots[i].info = info
                slots[i].validated = now
                guard descriptor else { return .found(info, nil) }
                kept.users += 1
                return .found(info, kept)
            case .success(let info):
                // Another file (renamed over), no longer a file, or a copy in memory that is
                // no longer the file's: the old descriptor retires.
                retire(i)
                if !descriptor || info.kind != .file {
                    slots[i].info = info
                    slots[i].validated = now
                    return .found(info, nil)
                }
            }
        }
        switch fetch(slots[i].path, descriptor: descriptor, symlinks: symlinks) {
        case .failure(let e):
            return failed(i, e.code, errors: errors, now: now)
        case .success(let (info, fd)):
            slots[i].info = info
            slots[i].error = 0
            slots[i].validated = now
            return .found(info, fd.map { attach($0, info: info, slot: i, minUses: minUses, now: now) })
        }
    }

    /// A lookup that failed with `e`: cached when errors are (whatever the errno, as nginx),
    /// else the entry goes.
    private func failed(_ i: Int, _ e: Int32, errors: Bool, now: Int64) -> FileLookup {
        if errors {
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
            hold(f, size: info.size)
        } else {
            f.retired = true
        }
        return f
    }

    /// Holds a small kept file in memory, watched first so that no change after the read
    /// goes unnoticed.
    private func hold(_ f: SharedFile, size: Int) {
        guard size > 0, size <= OpenFileCache.contentLimit, let wd = calls.watch(f.fd) else { return }
        guard let bytes = calls.read(f.fd, size) else {
            calls.unwatch(wd)
            return
        }
        f.content = bytes
        f.watch = wd
    }

    /// The content of the files of watch `wd` changed (nil: of any held file; the watcher lost
    /// news): their descriptors and copies retire (responses sending a copy finish with it), and
    /// their information is taken again at the next lookup.
    func contentChanged(watch wd: Int32?) {
        for i in slots.indices where !slots[i].path.isEmpty {
            guard let f = slots[i].file, f.watch >= 0, wd == nil || f.watch == wd else { continue }
            retire(i)
            slots[i].validated = Int64.min / 2
        }
    }

    /// Files held in memory now.
    var contentsHeld: Int { index.values.reduce(0) { $0 + (slots[$1].file?.content == nil ? 0 : 1) } }

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
        if f.watch >= 0 {
            calls.unwatch(f.watch)
            f.watch = -1
        }
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
