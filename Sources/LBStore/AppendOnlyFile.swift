import Glibc

/// The append-only file: every write command in RESP form, replayed at start.
public final class AppendOnlyFile {
    public enum Fsync: String { case always, everysec, no }

    public let path: String
    public let policy: Fsync
    public private(set) var fd: Int32 = -1
    public private(set) var size = 0
    /// Size right after the last rewrite (or load): growth beyond 2× triggers a rewrite.
    public var baseSize = 0
    var pending: [UInt8] = []
    /// While a background rewrite runs: everything written meanwhile, appended to the new file at the end.
    var rewriteBuffer: [UInt8]?

    public var isRewriting: Bool { rewriteBuffer != nil }

    public init(path: String, policy: Fsync) {
        self.path = path
        self.policy = policy
    }

    /// Replays the file into `keyspace`. A truncated tail (a crash mid-write) is cut off with a
    /// warning, as Redis does with `aof-load-truncated yes`. Returns warnings to print.
    public func load(into keyspace: inout Keyspace, now: Int64) throws -> [String] {
        var warnings: [String] = []
        let rfd = open(path, O_RDONLY | O_CLOEXEC)
        if rfd >= 0 {
            var data: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 1 << 16)
            while true {
                let n = chunk.withUnsafeMutableBytes { read(rfd, $0.baseAddress, $0.count) }
                if n <= 0 { break }
                data += chunk[0..<n]
            }
            close(rfd)
            var offset = 0
            var commands = 0
            var bad = false
            data.withUnsafeBytes { b in
                while offset < b.count {
                    do {
                        guard let (args, used) = try RESP.parseCommand(UnsafeRawBufferPointer(rebasing: b[offset...])), !args.isEmpty else {
                            bad = true
                            break
                        }
                        _ = keyspace.execute(args, now: now)
                        offset += used
                        commands += 1
                    } catch {
                        bad = true
                        break
                    }
                }
            }
            if bad {
                warnings.append("!!! Warning: short read while loading the AOF file \(path)!!!")
                warnings.append("AOF loaded anyway: \(data.count - offset) bytes of a partial command at the end were truncated (offset \(offset))")
                truncate(path, off_t(offset))
            }
            size = offset
            warnings.insert("DB loaded from append only file: \(commands) commands, \(keyspace.count) keys", at: 0)
        }
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw StoreError("can't open the append-only file \(path): \(String(cString: strerror(errno)))") }
        baseSize = max(size, 1)
        return warnings
    }

    /// Buffers records; `flush` writes them (and fsyncs under `always`) before replies go out.
    public func append(_ records: [[[UInt8]]]) {
        var w = ReplyWriter()
        swap(&w.bytes, &pending)
        for r in records {
            w.arrayHeader(r.count)
            for a in r { w.bulk(a) }
        }
        swap(&w.bytes, &pending)
    }

    /// Appends one command as received (RESP array of bulk strings).
    public func appendCommand(_ args: [[UInt8]]) {
        var w = ReplyWriter()
        swap(&w.bytes, &pending)
        w.arrayHeader(args.count)
        for a in args { w.bulk(a) }
        swap(&w.bytes, &pending)
    }

    public var hasPending: Bool { !pending.isEmpty }

    public func flush() {
        guard !pending.isEmpty, fd >= 0 else { return }
        var off = 0
        pending.withUnsafeBytes { p in
            while off < p.count {
                let n = write(fd, p.baseAddress! + off, p.count - off)
                if n < 0 { if errno == EINTR { continue }; break }
                off += n
            }
        }
        size += off
        rewriteBuffer?.append(contentsOf: pending)
        pending.removeAll(keepingCapacity: true)
        if policy == .always { fdatasync(fd) }
    }

    /// Starts a rewrite: from now on writes are also kept for the new file.
    public func beginRewrite() -> String {
        flush()
        rewriteBuffer = []
        return path + ".rewrite.tmp"
    }

    /// Writes a snapshot to `tmp` (on any thread: touches nothing shared). Returns bytes written.
    public static func writeSnapshot(_ records: [[[UInt8]]], to tmp: String) throws -> Int {
        let t = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard t >= 0 else { throw StoreError("rewrite: can't open \(tmp)") }
        defer { close(t) }
        var w = ReplyWriter()
        var written = 0
        func out() throws {
            try w.bytes.withUnsafeBytes { p in
                var o = 0
                while o < p.count {
                    let n = write(t, p.baseAddress! + o, p.count - o)
                    if n < 0 { if errno == EINTR { continue }; throw StoreError("rewrite: write failed (\(errno))") }
                    o += n
                }
                written += o
            }
            w.bytes.removeAll(keepingCapacity: true)
        }
        for r in records {
            w.array(r)
            if w.bytes.count > 1 << 20 { try out() }
        }
        try out()
        fdatasync(t)
        return written
    }

    /// Completes a rewrite on the owning thread: appends what arrived meanwhile, fsyncs, renames.
    public func finishRewrite(tmp: String, snapshotBytes: Int) throws {
        flush()
        guard let tail = rewriteBuffer else { return }
        rewriteBuffer = nil
        let t = open(tmp, O_WRONLY | O_APPEND | O_CLOEXEC)
        guard t >= 0 else { throw StoreError("rewrite: can't reopen \(tmp)") }
        tail.withUnsafeBytes { p in
            var o = 0
            while o < p.count {
                let n = write(t, p.baseAddress! + o, p.count - o)
                if n <= 0 { if errno == EINTR { continue }; break }
                o += n
            }
        }
        fdatasync(t)
        close(t)
        guard rename(tmp, path) == 0 else { throw StoreError("rewrite: rename failed (\(errno))") }
        close(fd)
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        size = snapshotBytes + tail.count
        baseSize = max(size, 1)
    }

    /// Abandons a failed rewrite.
    public func abortRewrite(tmp: String) {
        rewriteBuffer = nil
        unlink(tmp)
    }

    public func sync() { if fd >= 0 { fdatasync(fd) } }

    /// Replaces the file with `records` (written to a temp file, fsynced, renamed) plus `tail`.
    public func rewrite(_ records: [[[UInt8]]]) throws {
        let tmp = path + ".rewrite.tmp"
        let t = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard t >= 0 else { throw StoreError("rewrite: can't open \(tmp)") }
        var buf: [UInt8] = []
        var written = 0
        func out() {
            buf.withUnsafeBytes { p in
                var o = 0
                while o < p.count {
                    let n = write(t, p.baseAddress! + o, p.count - o)
                    if n <= 0 { if errno == EINTR { continue }; break }
                    o += n
                }
                written += o
            }
            buf.removeAll(keepingCapacity: true)
        }
        for r in records {
            buf += encodeCommand(r)
            if buf.count > 1 << 20 { out() }
        }
        flush()
        out()
        fdatasync(t)
        close(t)
        guard rename(tmp, path) == 0 else { throw StoreError("rewrite: rename failed") }
        close(fd)
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        size = written
        baseSize = max(written, 1)
    }
}

public struct StoreError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}
