import Glibc

/// The on-disk format of a cache entry. One file per entry, named by the MD5 of its key (hex)
/// under nginx's `levels` directories:
///
///     0   "LBCACHE1"
///     8   header length (u32): bytes before the stored head (fixed part + key + vary names)
///     12  head length (u32)
///     16  body length (u64) — written last, when the body is complete
///     24  valid until (i64, wall-clock seconds) — rewritten in place by a revalidation
///     32  stale-while-revalidate (u32), 36 stale-if-error (u32)
///     40  created (i64, wall-clock seconds)
///     48  status (u16), 50 key length (u16), 52 vary names length (u16), 54 padding (u16)
///     56  primary hash (16 bytes)
///     72  key, vary names ("\n"-separated), then the head, `padding` zero bytes (so that the body
///         starts on a 4 KiB page boundary: `sendfile` then moves whole page-cache pages), then the body.
///
/// A file is written under a temporary name and renamed into place only when complete, so a
/// reader never sees a partial entry under the final name; the loader also checks that the
/// file's size is exactly header + head + body and that its key hashes to its name.
public enum CacheFile {
    static let magic = Array("LBCACHE1".utf8)
    static let fixedLength = 72
    static let bodyLengthOffset = 16
    static let validUntilOffset = 24

    public static func encodeHeader(_ e: CacheEntry, created: Int) -> [UInt8] {
        let vary = Array(e.varyNames.joined(separator: "\n").utf8)
        let unpadded = fixedLength + e.key.count + vary.count + e.head.count
        let padding = (4096 - unpadded % 4096) % 4096
        var b = magic
        b.reserveCapacity(fixedLength + e.key.count + vary.count + e.head.count)
        func put<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { b.append(contentsOf: $0) } }
        put(UInt32(fixedLength + e.key.count + vary.count))
        put(UInt32(e.head.count))
        put(UInt64(e.bodyLength))
        put(Int64(e.validUntil))
        put(UInt32(e.staleWhileRevalidate))
        put(UInt32(e.staleIfError))
        put(Int64(created))
        put(UInt16(e.status))
        put(UInt16(e.key.count))
        put(UInt16(vary.count))
        put(UInt16(padding))
        b += e.primary.bytes
        b += e.key
        b += vary
        b += e.head
        b += [UInt8](repeating: 0, count: padding)
        return b
    }

    /// Decodes a file's beginning (`bytes`, at least header + head) into an entry; nil when the
    /// bytes are not a complete, consistent lb cache file of `fileSize` bytes.
    public static func decode(_ bytes: [UInt8], fileSize: Int, inode: UInt64) -> CacheEntry? {
        guard bytes.count >= fixedLength, Array(bytes[0..<8]) == magic else { return nil }
        func get<T: FixedWidthInteger>(_ o: Int, _: T.Type) -> T {
            var v: T = 0
            for i in 0..<MemoryLayout<T>.size { v |= T(truncatingIfNeeded: bytes[o + i]) << (8 * i) }
            return v
        }
        let headerLength = Int(get(8, UInt32.self))
        let headLength = Int(get(12, UInt32.self))
        let bodyLength = Int(get(16, UInt64.self))
        let keyLength = Int(get(50, UInt16.self))
        let varyLength = Int(get(52, UInt16.self))
        let padding = Int(get(54, UInt16.self))
        guard headerLength == fixedLength + keyLength + varyLength, keyLength > 0,
              bytes.count >= headerLength + headLength, headLength >= 16, padding < 4096,
              bodyLength >= 0, headerLength + headLength + padding + bodyLength == fileSize else { return nil }
        let key = Array(bytes[fixedLength..<(fixedLength + keyLength)])
        let varyText = String(decoding: bytes[(fixedLength + keyLength)..<headerLength], as: UTF8.self)
        let head = Array(bytes[headerLength..<(headerLength + headLength)])
        let primary = CacheHash(digest: Array(bytes[56..<72]))
        let varyNames = varyText.isEmpty ? [] : varyText.split(separator: "\n").map(String.init)
        guard CacheHash(key: key) == primary else { return nil }
        return CacheEntry(hash: primary, primary: primary, key: key, varyNames: varyNames, head: head,
                          status: Int(get(48, UInt16.self)), bodyOffset: headerLength + headLength + padding, bodyLength: bodyLength,
                          validUntil: Int(get(24, Int64.self)), staleWhileRevalidate: Int(get(32, UInt32.self)),
                          staleIfError: Int(get(36, UInt32.self)), inode: inode)
    }

    /// The hash of a variant: the key plus the request's values of the Vary headers.
    public static func variantHash(key: [UInt8], names: [String], value: (String) -> [UInt8]) -> CacheHash {
        var b = key
        for n in names {
            b.append(0x0A)
            b += Array(n.utf8)
            b.append(UInt8(ascii: ":"))
            b += value(n)
        }
        return CacheHash(key: b)
    }

    /// A file's modification time in nanoseconds (what a hit compares with `CacheEntry.modified`).
    static func modifiedTime(_ st: stat) -> Int64 {
        Int64(st.st_mtim.tv_sec) &* 1_000_000_000 &+ Int64(st.st_mtim.tv_nsec)
    }

    /// Whether the open file `st` describes is still the entry's: linked (not deleted or renamed
    /// over), the same inode, size and modification time. One `fstat` per hit answers it.
    static func isCurrent(_ st: stat, _ e: CacheEntry) -> Bool {
        st.st_nlink > 0 && UInt64(st.st_ino) == e.inode && Int(st.st_size) == e.fileSize && modifiedTime(st) == e.modified
    }

    /// Reads and validates the entry file at `path`, expecting it to hold `hash`.
    public static func read(path: String, expecting hash: CacheHash) -> CacheEntry? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_size >= fixedLength else { return nil }
        let want = min(Int(st.st_size), 256 * 1024)
        var buf = [UInt8](repeating: 0, count: want)
        let n = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress, want, 0) }
        guard n == want else { return nil }
        guard var e = decode(buf, fileSize: Int(st.st_size), inode: UInt64(st.st_ino)) else { return nil }
        e.modified = modifiedTime(st)
        if e.primary != hash {
            // A variant: its name is the variant hash, recomputed from the key and vary names
            // is not possible without the request, so the name is trusted once the key checks out.
            guard !e.varyNames.isEmpty else { return nil }
        }
        e.hash = hash
        return e
    }
}

/// Writes one response into a temporary file while it is relayed, then renames it into place.
/// A failed system call (a full or read-only disk) stops the writer and leaves `failure`, worded
/// as nginx words it (`write() "PATH" failed (28: No space left on device)`), for the caller to
/// log; the response itself goes on to the client.
final class CacheWriter {
    let zone: CacheZoneRuntime
    var entry: CacheEntry
    let tempPath: String
    var fd: Int32
    var failed = false
    /// Why the entry could not be stored (logged at `crit` by the caller), nil when nothing failed.
    var failure: String?
    var bodyBytes = 0
    /// De-chunks a chunked upstream body on its way to the file (the client may still get chunks).
    var framer: ChunkedFramerBox?

    /// Opens the temporary file and writes the entry's header; a writer that failed to
    /// (`failed`, with `failure` set) has already removed its file.
    init(zone: CacheZoneRuntime, entry: CacheEntry, created: Int) {
        self.zone = zone
        self.entry = entry
        tempPath = zone.tempPath()
        fd = open(tempPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        if fd < 0 {
            zone.makeDirectory(zone.tempDirectory)
            fd = open(tempPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            if fd < 0 {
                fail("open() \"\(tempPath)\" failed", errno)
                return
            }
        }
        let header = CacheFile.encodeHeader(entry, created: created)
        self.entry.bodyOffset = header.count
        if !write(header) { abort() }
    }

    private func fail(_ what: String, _ err: Int32) {
        failed = true
        if failure == nil { failure = what + " (\(err): \(String(cString: strerror(err))))" }
    }

    @discardableResult
    func write(_ bytes: [UInt8]) -> Bool { bytes.withUnsafeBytes { write($0) } }

    @discardableResult
    func write(_ b: UnsafeRawBufferPointer) -> Bool {
        guard !failed, b.count > 0 else { return !failed }
        var off = 0
        while off < b.count {
            let n = Glibc.write(fd, b.baseAddress! + off, b.count - off)
            if n < 0 {
                if errno == EINTR { continue }
                fail("write() \"\(tempPath)\" failed", errno)
                return false
            }
            if n == 0 {
                failed = true
                failure = failure ?? "write() \"\(tempPath)\" has written only \(off) of \(b.count)"
                return false
            }
            off += n
        }
        return true
    }

    func appendBody(_ b: UnsafeRawBufferPointer) {
        if write(b) { bodyBytes += b.count }
    }

    /// Finishes the file and publishes it; returns the entry as indexed, or nil on failure
    /// (`failure` says why when a system call failed).
    func commit() -> CacheEntry? {
        guard !failed, fd >= 0 else { abort(); return nil }
        var len = UInt64(bodyBytes).littleEndian
        let written = withUnsafeBytes(of: &len) { pwrite(fd, $0.baseAddress, 8, off_t(CacheFile.bodyLengthOffset)) }
        if written != 8 {
            fail("pwrite() \"\(tempPath)\" failed", written < 0 ? errno : ENOSPC)
            abort()
            return nil
        }
        var st = stat()
        if fstat(fd, &st) != 0 {
            fail("fstat() \"\(tempPath)\" failed", errno)
            abort()
            return nil
        }
        // close() is where some file systems (NFS) report a failed write.
        let closed = close(fd)
        fd = -1
        if closed != 0 {
            fail("close() \"\(tempPath)\" failed", errno)
            abort()
            return nil
        }
        entry.bodyLength = bodyBytes
        entry.inode = UInt64(st.st_ino)
        entry.modified = CacheFile.modifiedTime(st)
        guard Int(st.st_size) == entry.fileSize else { unlink(tempPath); return nil }
        let final = zone.path(for: entry.hash)
        if rename(tempPath, final) != 0 {
            zone.makeDirectory(zone.directory(for: entry.hash))
            if rename(tempPath, final) != 0 {
                fail("rename() \"\(tempPath)\" to \"\(final)\" failed", errno)
                unlink(tempPath)
                return nil
            }
        }
        return entry
    }

    func abort() {
        if fd >= 0 {
            close(fd)
            fd = -1
        }
        unlink(tempPath)
    }
}

/// A class box so a writer can carry a mutable chunk framer.
final class ChunkedFramerBox {
    var framer: ChunkedFramer
    init() { framer = ChunkedFramer() }
}

import LBHTTP
