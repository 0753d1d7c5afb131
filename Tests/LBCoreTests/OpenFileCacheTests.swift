import Glibc
@testable import LBCore
import Testing

/// A file system in memory that counts the calls an `OpenFileCache` makes and which
/// descriptors are open.
final class FakeFileSystem {
    var nodes: [String: FileInfo] = [:]
    /// Paths whose lookups fail with this errno instead of ENOENT.
    var errors: [String: Int32] = [:]
    /// Paths that are symlinks: refused (ELOOP) under any `disable_symlinks` check.
    var links: Set<String> = []
    var open: [Int32: String] = [:]
    var nextFD: Int32 = 100
    var nextInode: UInt64 = 1
    var stats = 0, opens = 0, fstats = 0, closes = 0, reads = 0
    private var inodeOfFD: [Int32: FileInfo] = [:]
    /// Watches can be had (inotify); the watches on, by inode: number and uses.
    var watchesAvailable = true
    var watches: [UInt64: (wd: Int32, uses: Int)] = [:]
    private var nextWatch: Int32 = 1
    /// A file's content: its inode's number repeated, as many bytes as its size now.
    func content(_ info: FileInfo) -> [UInt8] { [UInt8](repeating: UInt8(truncatingIfNeeded: info.inode), count: info.size) }
    /// The watch on a path's inode.
    func watch(of path: String) -> Int32? { nodes[path].flatMap { watches[$0.inode]?.wd } }

    var syscalls: Int { stats + opens + fstats + closes }

    @discardableResult
    func write(_ path: String, size: Int = 10, mtime: Int = 1000) -> FileInfo {
        let info = FileInfo(kind: .file, size: size, mtime: mtime, inode: nextInode)
        nextInode += 1
        nodes[path] = info
        return info
    }

    func mkdir(_ path: String) {
        nodes[path] = FileInfo(kind: .directory, size: 4096, mtime: 1000, inode: nextInode)
        nextInode += 1
    }

    /// Changes a file in place (same inode).
    func modify(_ path: String, size: Int, mtime: Int) {
        nodes[path]!.size = size
        nodes[path]!.mtime = mtime
    }

    var calls: FileSystemCalls {
        FileSystemCalls(
            stat: { [unowned self] p, check in
                stats += 1
                let k = String(decoding: p, as: UTF8.self)
                if let e = errors[k] { return .failure(FileError(e)) }
                if check.mode != .off && links.contains(k) { return .failure(FileError(ELOOP)) }
                return nodes[k].map { .success($0) } ?? .failure(FileError(ENOENT))
            },
            open: { [unowned self] p, check in
                opens += 1
                let k = String(decoding: p, as: UTF8.self)
                if let e = errors[k] { return .failure(FileError(e)) }
                if check.mode != .off && links.contains(k) { return .failure(FileError(ELOOP)) }
                guard let info = nodes[k] else { return .failure(FileError(ENOENT)) }
                let fd = nextFD
                nextFD += 1
                open[fd] = k
                inodeOfFD[fd] = info
                return .success(fd)
            },
            fstat: { [unowned self] fd in
                fstats += 1
                // The descriptor's file, as it is now if the path still names it.
                let info = inodeOfFD[fd]!
                if let k = open[fd], let now = nodes[k], now.inode == info.inode { return .success(now) }
                return .success(info)
            },
            close: { [unowned self] fd in
                closes += 1
                precondition(open.removeValue(forKey: fd) != nil, "closed twice: \(fd)")
            },
            watch: { [unowned self] fd in
                guard watchesAvailable, let info = inodeOfFD[fd] else { return nil }
                if let w = watches[info.inode] {
                    watches[info.inode] = (w.wd, w.uses + 1)
                    return w.wd
                }
                nextWatch += 1
                watches[info.inode] = (nextWatch, 1)
                return nextWatch
            },
            unwatch: { [unowned self] wd in
                let (inode, w) = watches.first { $0.value.wd == wd }!
                watches[inode] = w.uses > 1 ? (wd, w.uses - 1) : nil
            },
            read: { [unowned self] fd, size in
                reads += 1
                let info = inodeOfFD[fd]!
                let now = open[fd].flatMap { nodes[$0] }.flatMap { $0.inode == info.inode ? $0 : nil } ?? info
                return now.size == size ? content(now) : nil
            })
    }
}

@Suite struct OpenFileCacheTests {
    let fs = FakeFileSystem()

    func cache(max: Int = 10, inactiveMs: Int = 60_000) -> OpenFileCache {
        OpenFileCache(max: max, inactiveMs: inactiveMs, calls: fs.calls)
    }

    /// A descriptor lookup (a response sending the file).
    func send(_ c: OpenFileCache, _ path: String, at now: Int64, validMs: Int = 1000, minUses: Int = 1, errors: Bool = false) -> (FileInfo?, SharedFile?, Int32) {
        switch c.lookup(Array(path.utf8), now: now, validMs: validMs, minUses: minUses, errors: errors, descriptor: true) {
        case .found(let i, let f): return (i, f, 0)
        case .failed(let e): return (nil, nil, e)
        }
    }

    /// A probe (index, try_files, the static handler's stat).
    func probe(_ c: OpenFileCache, _ path: String, at now: Int64, validMs: Int = 1000, errors: Bool = false) -> FileLookup {
        c.lookup(Array(path.utf8), now: now, validMs: validMs, minUses: 1, errors: errors, descriptor: false)
    }

    @Test func withinValidAFileIsServedWithoutAnySystemCall() {
        let c = cache()
        fs.write("/a")
        let (_, f1, _) = send(c, "/a", at: 0)
        c.release(f1!)
        let before = fs.syscalls
        for t in stride(from: Int64(1), to: 1000, by: 100) {
            let (info, f, _) = send(c, "/a", at: t)
            #expect(f === f1 && info?.size == 10)
            c.release(f!)
        }
        #expect(fs.syscalls == before)
        #expect(fs.open.count == 1, "the descriptor stays open in the cache")
    }

    @Test func aMissOpensAndFstatsOnce() {
        let c = cache()
        fs.write("/a", size: 42)
        let (info, f, _) = send(c, "/a", at: 0)
        #expect(info?.size == 42 && f != nil)
        #expect(fs.opens == 1 && fs.fstats == 1 && fs.stats == 0)
        c.release(f!)
    }

    @Test func afterValidTheSameInodeKeepsTheDescriptorAndRefreshesSizeAndTime() {
        let c = cache()
        fs.write("/a", size: 10, mtime: 1000)
        // (A file held in memory is not kept through a change: aCopyIsDropped… below.)
        fs.watchesAvailable = false
        let (_, f1, _) = send(c, "/a", at: 0)
        c.release(f1!)
        fs.modify("/a", size: 20, mtime: 2000)
        // Still within valid: the old information.
        #expect(send(c, "/a", at: 999).0?.size == 10)
        c.release(f1!)
        let stats = fs.stats, opens = fs.opens
        let (info, f2, _) = send(c, "/a", at: 1000)
        #expect(f2 === f1, "same inode: the same descriptor")
        #expect(info?.size == 20 && info?.mtime == 2000)
        #expect(fs.stats == stats + 1 && fs.opens == opens, "one stat revalidates")
        c.release(f2!)
        #expect(fs.closes == 0)
    }

    @Test func afterValidAFileRenamedOverSwapsTheDescriptor() {
        let c = cache()
        fs.write("/a", size: 10)
        let (_, old, _) = send(c, "/a", at: 0)
        // The old descriptor is still in use by a response when the file is replaced.
        fs.write("/a", size: 30) // a new inode under the same name
        let (stale, same, _) = send(c, "/a", at: 500)
        #expect(same === old && stale?.size == 10, "within valid: the old file")
        c.release(same!)
        let (info, new, _) = send(c, "/a", at: 1000)
        #expect(new !== old && info?.size == 30)
        #expect(fs.open[old!.fd] != nil, "the old descriptor stays open while a response uses it")
        c.release(old!)
        #expect(fs.open[old!.fd] == nil, "closed when its last user releases it")
        #expect(fs.open[new!.fd] != nil)
        c.release(new!)
        #expect(fs.open.count == 1, "only the new one is kept")
    }

    @Test func aDeletedFileIsServedFromItsDescriptorWithinValidThenForgotten() {
        let c = cache()
        fs.write("/a")
        let (_, f, _) = send(c, "/a", at: 0)
        c.release(f!)
        fs.nodes["/a"] = nil
        let (info, g, _) = send(c, "/a", at: 900)
        #expect(info != nil && g === f)
        c.release(g!)
        let (none, h, e) = send(c, "/a", at: 1000)
        #expect(none == nil && h == nil && e == ENOENT)
        #expect(fs.open.isEmpty && c.count == 0, "errors off: the entry and its descriptor are gone")
    }

    @Test func minUsesKeepsTheDescriptorOnlyFromTheNthUse() {
        let c = cache()
        fs.write("/a")
        for _ in 0..<2 {
            let (_, f, _) = send(c, "/a", at: 0, minUses: 3)
            #expect(f?.retired == true, "used too few times: not kept")
            c.release(f!)
            #expect(fs.open.isEmpty, "closed after its response")
        }
        let (_, kept, _) = send(c, "/a", at: 0, minUses: 3)
        #expect(kept?.retired == false)
        c.release(kept!)
        #expect(fs.open.count == 1 && c.openDescriptors == 1)
        let opens = fs.opens
        let (_, again, _) = send(c, "/a", at: 1, minUses: 3)
        #expect(again === kept && fs.opens == opens)
        c.release(again!)
    }

    @Test func probesDoNotCountAsUsesButTheirInformationIsCached() {
        let c = cache()
        fs.write("/a")
        for t in 0..<5 { _ = probe(c, "/a", at: Int64(t)) }
        #expect(fs.stats == 1, "one stat, then the cached information")
        let (_, f, _) = send(c, "/a", at: 5, minUses: 2)
        #expect(f?.retired == true, "five probes and one send are one use")
        c.release(f!)
    }

    @Test func directoriesAreCachedAsInformationWithoutADescriptor() {
        let c = cache()
        fs.mkdir("/d")
        guard case .found(let info, nil) = probe(c, "/d", at: 0) else { Issue.record("not found"); return }
        #expect(info.kind == .directory)
        let (dir, f, _) = send(c, "/d", at: 1)
        #expect(dir?.kind == .directory && f == nil)
        #expect(fs.open.isEmpty && fs.stats == 1)
    }

    @Test func entriesIdleForInactiveAreDroppedOnUseAndBySweep() {
        let c = cache(inactiveMs: 5000)
        fs.write("/a")
        fs.write("/b")
        let (_, a, _) = send(c, "/a", at: 0)
        c.release(a!)
        let (_, b, _) = send(c, "/b", at: 3000)
        c.release(b!)
        // At 5001, /a is idle for more than 5 s: a lookup of anything drops it.
        _ = probe(c, "/b", at: 5001)
        #expect(c.count == 1 && fs.open[a!.fd] == nil && fs.open[b!.fd] != nil)
        #expect(c.sweep(now: 8000), "/b was looked up at 5001")
        #expect(!c.sweep(now: 10_002))
        #expect(c.count == 0 && fs.open.isEmpty)
    }

    @Test func atMaxTheLeastRecentlyUsedGoes() {
        let c = cache(max: 2)
        for p in ["/a", "/b", "/c"] { fs.write(p) }
        let (_, a, _) = send(c, "/a", at: 0)
        let (_, b, _) = send(c, "/b", at: 1)
        c.release(a!)
        c.release(b!)
        _ = send(c, "/a", at: 2).1.map { c.release($0) } // /a is now the newer
        let (_, cf, _) = send(c, "/c", at: 3)
        c.release(cf!)
        #expect(c.count == 2 && c.openDescriptors == 2)
        #expect(fs.open[b!.fd] == nil, "/b, the least recently used, went")
        #expect(fs.open[a!.fd] != nil && fs.open[cf!.fd] != nil)
    }

    @Test func errorsAreCachedOnlyWhenOn() {
        let off = cache()
        _ = send(off, "/x", at: 0)
        fs.write("/x")
        let (found, f, _) = send(off, "/x", at: 1)
        #expect(found != nil, "errors off: a file created since is found at once")
        off.release(f!)

        let on = cache()
        #expect(send(on, "/y", at: 0, errors: true).2 == ENOENT)
        fs.write("/y")
        let stats = fs.syscalls
        #expect(send(on, "/y", at: 999, errors: true).2 == ENOENT, "cached for valid")
        #expect(fs.syscalls == stats)
        let (y, g, _) = send(on, "/y", at: 1000, errors: true)
        #expect(y != nil, "after valid it is looked up again")
        on.release(g!)
    }

    @Test func everyErrorIsCachedWhenErrorsAreOnAsInNginx() {
        // ngx_open_cached_file keeps any errno of the open (`of->err`) when `of->errors` is set.
        let c = cache()
        fs.errors["/denied"] = EACCES
        fs.errors["/full"] = EMFILE
        fs.errors["/long"] = ENAMETOOLONG
        #expect(send(c, "/denied", at: 0, errors: true).2 == EACCES)
        #expect(send(c, "/full", at: 0, errors: true).2 == EMFILE)
        guard case .failed(ENAMETOOLONG) = probe(c, "/long", at: 0, errors: true) else { Issue.record("not ENAMETOOLONG"); return }
        #expect(c.count == 3)
        fs.errors = [:]
        for p in ["/denied", "/full", "/long"] { fs.write(p) }
        let calls = fs.syscalls
        #expect(send(c, "/full", at: 999, errors: true).2 == EMFILE, "within valid: the error")
        #expect(fs.syscalls == calls)
    }

    @Test func aDescriptorIsClosedOnlyAfterItsLastUserReleasesIt() {
        let c = cache(max: 1)
        fs.write("/a")
        fs.write("/b")
        let (_, a1, _) = send(c, "/a", at: 0)
        let (_, a2, _) = send(c, "/a", at: 1)
        #expect(a1 === a2 && a1?.users == 2)
        // /b evicts /a while two responses still send it.
        let (_, b, _) = send(c, "/b", at: 2)
        #expect(fs.open[a1!.fd] != nil)
        c.release(a1!)
        #expect(fs.open[a1!.fd] != nil, "one response still uses it")
        c.release(a2!)
        #expect(fs.open[a1!.fd] == nil)
        c.release(b!)
        #expect(fs.open.count == 1)
    }

    @Test func removeAllClosesKeptDescriptorsButNotOnesInUse() {
        let c = cache()
        fs.write("/a")
        fs.write("/b")
        let (_, a, _) = send(c, "/a", at: 0)
        let (_, b, _) = send(c, "/b", at: 0)
        c.release(a!)
        c.removeAll()
        #expect(c.count == 0 && fs.open[a!.fd] == nil && fs.open[b!.fd] != nil)
        c.release(b!)
        #expect(fs.open.isEmpty)
    }

    @Test func aFileThatBecameADirectoryRetiresItsDescriptor() {
        let c = cache()
        fs.write("/a")
        let (_, f, _) = send(c, "/a", at: 0)
        c.release(f!)
        fs.mkdir("/a")
        let (info, g, _) = send(c, "/a", at: 1000)
        #expect(info?.kind == .directory && g == nil && fs.open.isEmpty)
    }

    @Test func theLastLookupsSlotIsReusedOnlyForTheSamePath() {
        let c = cache(max: 1)
        fs.write("/a", size: 1)
        fs.write("/b", size: 2)
        _ = probe(c, "/a", at: 0)
        #expect(send(c, "/a", at: 0).0?.size == 1)
        // /b takes /a's slot (max 1); a lookup of /a must not find /b there.
        #expect(send(c, "/b", at: 1).0?.size == 2)
        #expect(send(c, "/a", at: 2).0?.size == 1)
        #expect(c.count == 1)
    }

    // MARK: small files held in memory

    @Test func aSmallKeptFileIsHeldInMemoryWhileWatched() {
        let c = cache()
        let info = fs.write("/a", size: 100)
        let (_, f, _) = send(c, "/a", at: 0)
        #expect(f?.content == fs.content(info) && f?.watch == fs.watch(of: "/a"))
        #expect(fs.reads == 1 && c.contentsHeld == 1)
        c.release(f!)
        // Served from the copy after that: no read, no system call.
        let before = fs.syscalls + fs.reads
        let (_, g, _) = send(c, "/a", at: 10)
        #expect(g === f && g?.content?.count == 100)
        #expect(fs.syscalls + fs.reads == before)
        c.release(g!)
    }

    @Test func nothingIsHeldForALargeFileAnEmptyOneOrWithoutWatches() {
        let c = cache()
        fs.write("/big", size: OpenFileCache.contentLimit + 1)
        fs.write("/edge", size: OpenFileCache.contentLimit)
        fs.write("/empty", size: 0)
        for p in ["/big", "/edge", "/empty"] { c.release(send(c, p, at: 0).1!) }
        #expect(c.contentsHeld == 1 && fs.watches.count == 1 && fs.watch(of: "/edge") != nil)
        fs.watchesAvailable = false
        fs.write("/b", size: 10)
        let (_, f, _) = send(c, "/b", at: 0)
        #expect(f != nil && f?.content == nil && fs.reads == 1, "no copy without a watch")
        c.release(f!)
    }

    @Test func aFileNotYetKeptIsNotHeld() {
        let c = cache()
        fs.write("/a", size: 10)
        let (_, f, _) = send(c, "/a", at: 0, minUses: 2)
        #expect(f?.content == nil && fs.watches.isEmpty)
        c.release(f!)
        let (_, g, _) = send(c, "/a", at: 1, minUses: 2)
        #expect(g?.content != nil && fs.watches.count == 1)
        c.release(g!)
    }

    @Test func aChangeOfContentRetiresTheCopyAndTheNextLookupTakesTheFileAgain() {
        let c = cache()
        fs.write("/a", size: 10, mtime: 1000)
        let (_, f, _) = send(c, "/a", at: 0)
        let wd = f!.watch
        // Written in place: same inode, new size and time; the watch tells at once.
        fs.modify("/a", size: 20, mtime: 1001)
        c.contentChanged(watch: wd)
        #expect(fs.watches.isEmpty, "the retired copy's watch ends")
        #expect(f?.content?.count == 10, "a response still sending the old copy finishes with it")
        #expect(fs.open[f!.fd] != nil, "its descriptor stays open while that response uses it")
        // Well within `valid`, the new file with its new information.
        let (info, g, _) = send(c, "/a", at: 1)
        #expect(info?.size == 20 && info?.mtime == 1001 && g !== f && g?.content?.count == 20)
        c.release(f!)
        #expect(fs.open[f!.fd] == nil)
        c.release(g!)
        #expect(fs.open.count == 1 && fs.watches.count == 1)
    }

    @Test func aChangeOfAnotherWatchLeavesTheCopy() {
        let c = cache()
        fs.write("/a", size: 10)
        fs.write("/b", size: 10)
        let (_, a, _) = send(c, "/a", at: 0)
        let (_, b, _) = send(c, "/b", at: 0)
        c.release(a!)
        c.release(b!)
        c.contentChanged(watch: b!.watch)
        let opens = fs.opens
        #expect(send(c, "/a", at: 1).1 === a)
        #expect(fs.opens == opens && c.contentsHeld == 1)
        c.release(a!)
        // Lost news (the watcher's queue overflowed): every copy goes.
        c.contentChanged(watch: nil)
        #expect(c.contentsHeld == 0 && fs.watches.isEmpty)
    }

    @Test func twoPathsOfOneInodeShareTheWatchUntilBothGo() {
        let c = cache()
        let info = fs.write("/a", size: 10)
        fs.nodes["/hard"] = info
        c.release(send(c, "/a", at: 0).1!)
        c.release(send(c, "/hard", at: 0).1!)
        #expect(fs.watches[info.inode]?.uses == 2 && c.contentsHeld == 2)
        c.contentChanged(watch: fs.watches[info.inode]!.wd)
        #expect(fs.watches.isEmpty && c.contentsHeld == 0)
        #expect(fs.open.isEmpty)
    }

    @Test func aCopyIsDroppedWhenRevalidationSeesTheFileChangedBeforeItsNews() {
        let c = cache()
        fs.write("/a", size: 10, mtime: 1000)
        let (_, f, _) = send(c, "/a", at: 0)
        c.release(f!)
        fs.modify("/a", size: 10, mtime: 1005)
        let (info, g, _) = send(c, "/a", at: 2000)
        #expect(info?.mtime == 1005 && g !== f && g?.content != nil && fs.open[f!.fd] == nil)
        c.release(g!)
        // Unchanged at the next revalidation: the same descriptor and copy.
        let (_, h, _) = send(c, "/a", at: 4000)
        #expect(h === g)
        c.release(h!)
    }

    @Test func aFileThatGrewBetweenFstatAndReadIsNotHeld() {
        fs.write("/a", size: 10)
        // The fake reads what the path names now: a file grown after the fstat.
        var calls = fs.calls
        let read = calls.read
        calls.read = { [fs] fd, size in
            fs.modify("/a", size: 11, mtime: 1000)
            return read(fd, size)
        }
        let c2 = OpenFileCache(max: 10, inactiveMs: 60_000, calls: calls)
        let (_, f, _) = send(c2, "/a", at: 0)
        #expect(f != nil && f?.content == nil && fs.watches.isEmpty)
        c2.release(f!)
    }

    @Test func removeAllEndsEveryWatch() {
        let c = cache()
        fs.write("/a", size: 10)
        fs.write("/b", size: 10)
        c.release(send(c, "/a", at: 0).1!)
        c.release(send(c, "/b", at: 0).1!)
        #expect(fs.watches.count == 2)
        c.removeAll()
        #expect(fs.watches.isEmpty && fs.open.isEmpty)
    }
}
