import Glibc
import LBConfig
import Synchronization

/// A request body read whole before the upstream is chosen (`proxy_request_buffering on`, nginx's
/// default): in memory up to `client_body_buffer_size`, then in an anonymous temporary file under
/// `client_body_temp_path`. Chunked bodies are stored decoded, and go upstream with a
/// Content-Length, as nginx sends them. Every try reads it again from the start, so a retry can
/// always resend the body. Owned by one exchange; the file goes away with it.
final class BufferedBody {
    /// The whole body when it is held in memory (`$request_body`: nginx gives it only then).
    var inMemory: [UInt8]? { fd < 0 ? memory : nil }

    /// Bytes kept in memory before the body moves to a file.
    let memoryLimit: Int
    let tempDirectory: String
    private(set) var memory: [UInt8] = []
    private(set) var fd: Int32 = -1
    /// Body bytes stored so far.
    private(set) var length = 0
    /// `client_body_in_file_only on|clean`: the body goes to a named file (`$request_body_file`).
    let named: BodyFileMode
    private(set) var path: String?
    nonisolated static let tempNumber = Atomic<UInt32>(UInt32(truncatingIfNeeded: getpid()) &* 100_000)

    fileprivate func setNamed(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    init(memoryLimit: Int, tempDirectory: String, expected: Int?, named: BodyFileMode = .off) {
        self.memoryLimit = named == .off ? memoryLimit : 0
        self.tempDirectory = tempDirectory
        self.named = named
        if let e = expected, e <= self.memoryLimit { memory.reserveCapacity(e) }
    }

    deinit {
        if fd >= 0 { Glibc.close(fd) }
        if named == .clean, let p = path { unlink(p) }
    }

    /// Linux's O_TMPFILE (a macro Swift does not import).
    static let tmpfile = Int32(0o20000000) | O_DIRECTORY

    /// Whether the body went to a file.
    var inFile: Bool { fd >= 0 }

    struct StoreError: Error { var message: String }

    /// Appends body bytes; moves everything to a temporary file once past the memory limit.
    func append(_ bytes: UnsafeRawBufferPointer) throws(StoreError) {
        guard !bytes.isEmpty else { return }
        if fd < 0 && length + bytes.count <= memoryLimit {
            memory.append(contentsOf: bytes)
            length += bytes.count
            return
        }
        if fd < 0 {
            try openFile()
            let failed: StoreError? = memory.withUnsafeBytes { m in
                do throws(StoreError) { try writeAll(m); return nil } catch { return error }
            }
            if let failed { throw failed }
            memory = []
        }
        try writeAll(bytes)
        length += bytes.count
    }

    /// Copies up to `max` bytes at `offset` into `into`; returns how many (0 at the end).
    func read(at offset: Int, into: UnsafeMutableRawPointer, max: Int) -> Int {
        let n = min(max, length - offset)
        guard n > 0 else { return 0 }
        if fd < 0 {
            memory.withUnsafeBytes { m in into.copyMemory(from: m.baseAddress! + offset, byteCount: n) }
            return n
        }
        var done = 0
        while done < n {
            let r = pread(fd, into + done, n - done, off_t(offset + done))
            if r < 0 && errno == EINTR { continue }
            if r <= 0 { break }
            done += r
        }
        return done
    }

    private func openFile() throws(StoreError) {
        mkdir(tempDirectory, 0o700)
        if named != .off {
            try openNamedFile()
            return
        }
        // O_TMPFILE: a file with no name, gone when its descriptor closes (no cleanup on crash).
        let f = open(tempDirectory, BufferedBody.tmpfile | O_RDWR | O_CLOEXEC, 0o600)
        guard f >= 0 else {
            throw StoreError(message: "open() \"\(tempDirectory)\" failed (\(errno): \(String(cString: strerror(errno))))")
        }
        fd = f
    }

    private func writeAll(_ b: UnsafeRawBufferPointer) throws(StoreError) {
        var off = 0
        while off < b.count {
            let r = Glibc.write(fd, b.baseAddress! + off, b.count - off)
            if r < 0 && errno == EINTR { continue }
            guard r > 0 else {
                throw StoreError(message: "write() to a temporary file in \"\(tempDirectory)\" failed (\(errno): \(String(cString: strerror(errno))))")
            }
            off += r
        }
    }
}

extension BufferedBody {
    /// A named file, `DIR/NNNNNNNNNN` as nginx names its temporary files (a 10-digit number; the
    /// next one on a collision).
    fileprivate func openNamedFile() throws(StoreError) {
        for _ in 0..<100 {
            let n = BufferedBody.nextTempNumber()
            let digits = String(n)
            let name = tempDirectory + "/" + String(repeating: "0", count: max(0, 10 - digits.count)) + digits
            let f = open(name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0o600)
            if f >= 0 {
                setNamed(fd: f, path: name)
                return
            }
            if errno != EEXIST {
                throw StoreError(message: "open() \"\(name)\" failed (\(errno): \(String(cString: strerror(errno))))")
            }
        }
        throw StoreError(message: "no free temporary file name in \"\(tempDirectory)\"")
    }

    /// Process-wide counter for temporary file names (seeded from the pid, so restarts rarely collide).
    static func nextTempNumber() -> UInt32 {
        tempNumber.add(1, ordering: .relaxed).newValue
    }
}
