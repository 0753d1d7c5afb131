import Foundation
import Glibc
@testable import LBCore
import Testing

/// `disable_symlinks` with the open file cache: which part of a path is checked
/// (`ngx_http_set_disable_symlinks`), entries kept per check, the checked open on a real file
/// system (`ngx_open_file_wrapper`), and the file information the rewrite module's tests read.
@Suite struct OpenFileCacheSymlinkTests {
    let fs = FakeFileSystem()

    static func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

    /// (path, from=, the check's `from`; nil: the check is off).
    @Test(arguments: [
        ("/srv/www/a.txt", nil, 0),
        ("/srv/www/a.txt", "", 0),
        ("/srv/www/a.txt", "/srv/www", 8), // ends before a `/`
        ("/srv/www/a.txt", "/srv/www/", 8), // ends after one: the `/` before it
        ("/srv/www/a.txt", "/srv/ww", 0), // not at a component's end: all checked
        ("/srv/www/a.txt", "/other", 0), // not a prefix
        ("/srv/www/a.txt", "/srv/www/a.txt/more", 0), // longer than the path
        ("/srv/www/a.txt", "/srv/www/a.txt", nil), // the whole path: nothing to check
    ] as [(String, String?, Int?)])
    func fromStartsTheChecksAsInNginx(path: String, from: String?, expected: Int?) {
        let c = SymlinkCheck.forPath(Self.bytes(path), mode: .on, from: from.map(Self.bytes))
        if let expected {
            #expect(c == SymlinkCheck(mode: .on, from: expected))
        } else {
            #expect(c == .off)
        }
    }

    @Test func offStaysOffWhateverFromSays() {
        #expect(SymlinkCheck.forPath(Self.bytes("/a/b"), mode: .off, from: Self.bytes("/a")) == .off)
    }

    func lookup(_ c: OpenFileCache, _ path: String, at now: Int64, check: SymlinkCheck, errors: Bool = false) -> FileLookup {
        let r = c.lookup(Self.bytes(path), now: now, validMs: 1000, minUses: 1, errors: errors, descriptor: true, symlinks: check)
        if case .found(_, let f?) = r { c.release(f) }
        return r
    }

    static func errno(_ r: FileLookup) -> Int32? {
        if case .failed(let e) = r { return e }
        return nil
    }

    @Test func anEntryOpenedWithSymlinksAllowedIsNotServedWhereTheyAreRefused() {
        let c = OpenFileCache(max: 10, inactiveMs: 60_000, calls: fs.calls)
        fs.write("/w/link")
        fs.links = ["/w/link"]
        #expect(lookup(c, "/w/link", at: 0, check: .off).info != nil)
        let on = SymlinkCheck(mode: .on)
        #expect(Self.errno(lookup(c, "/w/link", at: 1, check: on)) == ELOOP, "within valid, but opened under another check")
        #expect(fs.open.isEmpty && c.count == 0, "errors off: the entry and its descriptor are gone")
        // And back: refused (errors cached) under `on`, then looked up again with symlinks allowed.
        #expect(Self.errno(lookup(c, "/w/link", at: 2, check: on, errors: true)) == ELOOP)
        #expect(Self.errno(lookup(c, "/w/link", at: 3, check: on, errors: true)) == ELOOP)
        #expect(lookup(c, "/w/link", at: 4, check: .off, errors: true).info != nil)
        // The stricter check with another `from` is another check too.
        #expect(Self.errno(lookup(c, "/w/link", at: 5, check: SymlinkCheck(mode: .on, from: 2))) == ELOOP)
    }

    @Test func withinValidAnEntryIsServedUncheckedUnderItsOwnCheck() {
        // nginx opens under disable_symlinks only on a miss or once valid has passed: a file
        // replaced by a symlink is still the cached file until then.
        let c = OpenFileCache(max: 10, inactiveMs: 60_000, calls: fs.calls)
        let on = SymlinkCheck(mode: .on)
        fs.write("/w/f")
        let first = c.lookup(Self.bytes("/w/f"), now: 0, validMs: 1000, minUses: 1, errors: false, descriptor: true, symlinks: on)
        guard case .found(_, let f?) = first else { Issue.record("not found"); return }
        c.release(f)
        fs.links = ["/w/f"]
        let calls = fs.syscalls
        #expect(lookup(c, "/w/f", at: 999, check: on).info != nil)
        #expect(fs.syscalls == calls)
        #expect(Self.errno(lookup(c, "/w/f", at: 1000, check: on)) == ELOOP)
    }

    // MARK: the system's checked open

    /// `root/real.txt`, `root/link.txt` → real.txt, `root/dir/x.txt`, `root/dlink` → dir.
    static func tree() throws -> String {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("ofc-symlinks-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        try FileManager.default.createDirectory(atPath: root + "/dir", withIntermediateDirectories: true)
        try "real".write(toFile: root + "/real.txt", atomically: true, encoding: .utf8)
        try "x".write(toFile: root + "/dir/x.txt", atomically: true, encoding: .utf8)
        #expect(symlink("real.txt", root + "/link.txt") == 0)
        #expect(symlink("dir", root + "/dlink") == 0)
        return root
    }

    static func stat(_ path: String, _ check: SymlinkCheck) -> Result<FileInfo, FileError> {
        FileSystemCalls.system.stat(bytes(path), check)
    }

    @Test func theCheckedOpenRefusesSymlinksAsNginxsOpenat() throws {
        let root = try Self.tree()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let on = SymlinkCheck(mode: .on)
        #expect(try Self.stat(root + "/real.txt", on).get().kind == .file)
        #expect(try Self.stat(root + "/dir/", on).get().kind == .directory, "a trailing slash opens the directory")
        #expect(Self.stat(root + "/link.txt", on) == .failure(FileError(ELOOP)), "the last component: O_NOFOLLOW")
        #expect(Self.stat(root + "/dlink/x.txt", on) == .failure(FileError(ENOTDIR)), "a directory component: O_NOFOLLOW|O_DIRECTORY")
        #expect(Self.stat(root + "/missing", on) == .failure(FileError(ENOENT)))
        #expect(try Self.stat(root + "/link.txt", .off).get().kind == .file)
        // from= past the symlinked directory: it is followed.
        let path = Self.bytes(root + "/dlink/x.txt")
        let from = SymlinkCheck.forPath(path, mode: .on, from: Self.bytes(root + "/dlink"))
        #expect(try FileSystemCalls.system.stat(path, from).get().kind == .file)
        guard case .success(let fd) = FileSystemCalls.system.open(path, from) else { Issue.record("not opened"); return }
        var buf = [UInt8](repeating: 0, count: 4)
        #expect(read(fd, &buf, 4) == 1 && buf[0] == UInt8(ascii: "x"), "the descriptor reads the file")
        close(fd)
    }

    @Test func ifNotOwnerRefusesOnlyASymlinkOwnedByAnother() throws {
        let root = try Self.tree()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let check = SymlinkCheck(mode: .ifNotOwner)
        #expect(try Self.stat(root + "/link.txt", check).get().kind == .file, "same owner: followed")
        #expect(try Self.stat(root + "/dlink/x.txt", check).get().kind == .file)
        guard getuid() == 0 else { return } // giving the target away needs root
        #expect(chown(root + "/real.txt", 12345, 12345) == 0)
        #expect(Self.stat(root + "/link.txt", check) == .failure(FileError(ELOOP)))
        #expect(try Self.stat(root + "/real.txt", check).get().kind == .file, "not a symlink: its owner does not matter")
    }

    @Test func executableIsTheOwnersExecuteBitAsNginxsIsExec() throws {
        let root = try Self.tree()
        defer { try? FileManager.default.removeItem(atPath: root) }
        #expect(try Self.stat(root + "/real.txt", .off).get().executable == false)
        chmod(root + "/real.txt", 0o744)
        #expect(try Self.stat(root + "/real.txt", .off).get().executable == true)
        chmod(root + "/real.txt", 0o655)
        #expect(try Self.stat(root + "/real.txt", .off).get().executable == false, "group and others do not count")
        #expect(try Self.stat(root + "/dir", .off).get().executable == true, "directories too")
    }
}
