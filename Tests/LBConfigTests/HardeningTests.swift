import Glibc
import Synchronization
import Testing
@testable import LBConfig

/// Configurations built to hurt the loader: deep nesting, endless or huge files, huge names.
@Suite struct HardeningTests {
    // MARK: - Deep nesting

    /// `levels` nested `location /` blocks inside http/server (whose blocks count as two levels);
    /// the innermost returns "deep". Location k (from 1) is on line 3 + k.
    static func nestedLocations(_ levels: Int) -> String {
        server(String(repeating: "location / {\n", count: levels) + "return 200 \"deep\";\n" + String(repeating: "}\n", count: levels))
    }

    /// Runs `body` on a thread with a `stackBytes` stack (a test of "no recursion per level": a
    /// loader that recursed would overflow it and crash the test run).
    final class Job: Sendable {
        let body: @Sendable () -> String
        let result = Mutex<String?>(nil)
        init(_ body: @escaping @Sendable () -> String) { self.body = body }
    }

    static func onSmallStack(stackBytes: Int = 256 << 10, _ body: @escaping @Sendable () -> String) -> String? {
        let job = Job(body)
        var attr = pthread_attr_t()
        pthread_attr_init(&attr)
        defer { pthread_attr_destroy(&attr) }
        guard pthread_attr_setstacksize(&attr, stackBytes) == 0 else { return nil }
        var tid = pthread_t()
        let arg = Unmanaged.passRetained(job).toOpaque()
        let rc = pthread_create(&tid, &attr, { arg in
            let job = Unmanaged<Job>.fromOpaque(arg!).takeRetainedValue()
            let value = job.body()
            job.result.withLock { $0 = value }
            return nil
        }, arg)
        guard rc == 0 else {
            Unmanaged<Job>.fromOpaque(arg).release()
            return nil
        }
        pthread_join(tid, nil)
        return job.result.withLock { $0 }
    }

    static func text(of loc: Location?) -> String? {
        guard let loc, case .return(let r) = loc.handler, let t = r.text else { return nil }
        return String(decoding: t.literalBytes, as: UTF8.self)
    }

    @Test func nestingUpToTheLimitLoadsSearchesAndFreesOnASmallStack() {
        let levels = ConfigLimits.maxBlockDepth - 2
        let outcome = Self.onSmallStack {
            guard let table = try? load(Self.nestedLocations(levels)) else { return "load failed" }
            let found = table.servers[0].locations.find("/x")
            return "\(found?.id ?? -1) \(Self.text(of: found) ?? "none") \(table.servers[0].locations.all.count)"
            // The table is freed here, on the small stack too.
        }
        #expect(outcome == "\(levels - 1) deep \(levels)")
    }

    @Test func theIssuesThreeThousandNestedLocationsLoad() throws {
        // nginx 1.22 accepts these (and crashes near 13,000 on an 8 MB stack); lb crashed.
        let table = try load(Self.nestedLocations(3000))
        #expect(Self.text(of: table.servers[0].locations.find("/a/b")) == "deep")
    }

    @Test func nestingBeyondTheLimitIsRefusedAtItsLine() {
        let levels = ConfigLimits.maxBlockDepth - 1
        #expect(loadError(Self.nestedLocations(levels))
            == "too deeply nested blocks (more than \(ConfigLimits.maxBlockDepth) levels) in t.conf:\(3 + levels)")
    }

    @Test func aHundredThousandNestedBlocksFailCleanlyOnASmallStack() {
        let n = 100_000
        let outcome = Self.onSmallStack {
            loadError(String(repeating: "a {\n", count: n) + String(repeating: "}\n", count: n))
        }
        #expect(outcome == "too deeply nested blocks (more than \(ConfigLimits.maxBlockDepth) levels) in t.conf:\(ConfigLimits.maxBlockDepth + 1)")
    }

    @Test func aDeepTreeBeforeAnErrorIsFreedOnASmallStack() {
        // The parse error comes after a complete tree at the limit, which must be freed too.
        let outcome = Self.onSmallStack { loadError(Self.nestedLocations(ConfigLimits.maxBlockDepth - 2) + "}\n") }
        #expect(outcome?.hasPrefix("unexpected \"}\" in t.conf:") == true)
    }

    @Test func nestingCountsAcrossIncludes() {
        // Three blocks are open at the include; the included file's location k is at depth 3 + k.
        let deep = String(repeating: "location / {\n", count: ConfigLimits.maxBlockDepth)
        let text = server("location / {\ninclude /etc/lb/deep.conf;\n}")
        #expect(loadError(text, files: ["/etc/lb/deep.conf": deep])
            == "too deeply nested blocks (more than \(ConfigLimits.maxBlockDepth) levels) in /etc/lb/deep.conf:\(ConfigLimits.maxBlockDepth - 2)")
    }

    @Test func longIncludeChainsDoNotRecurse() {
        let n = 2000
        var files: [String: String] = [:]
        for i in 0..<n { files["/etc/lb/f\(i).conf"] = "d\(i);\n" + (i + 1 < n ? "include f\(i + 1).conf;\n" : "") }
        let fs = MemoryFS(files: files)
        let names = Self.onSmallStack {
            var p = Parser(fileSystem: fs, includeBase: "/etc/lb")
            return (try? p.parseFile("/etc/lb/f0.conf").map(\.name).joined(separator: " ")) ?? "parse failed"
        }
        #expect(names == (0..<n).map { "d\($0)" }.joined(separator: " "))
    }

    @Test func unclosedBlockInAnIncludedFileIsItsError() {
        let files = ["/etc/lb/a.conf": "b {\n c;\n"]
        #expect(loadError("x {\ninclude /etc/lb/a.conf;\n}\n", files: files) == "unexpected end of file, expecting \"}\" in /etc/lb/a.conf:3")
    }

    // MARK: - Nested location search

    /// nginx's recursive search (`ngx_http_core_find_location`), the shape `LocationTree.find` had
    /// before it became loops: the model the loops must agree with.
    static func referenceFind(_ t: LocationTree, _ uri: [UInt8]) -> (Location?, Bool) {
        if let e = t.exact[uri] { return (t.locations[e], true) }
        var current: Location? = nil
        var noRegex = false
        if let p = uri.withUnsafeBytes({ t.prefixes.longestPrefix($0) }) {
            let loc = t.locations[p]
            current = loc
            if case .prefixNoRegex = loc.match { noRegex = true }
            if !loc.nested.isEmpty {
                let (n, final) = referenceFind(loc.nested, uri)
                if let n { current = n }
                if final { return (current, true) }
            }
        }
        if !noRegex {
            for r in t.regexes {
                let loc = t.locations[r]
                if uri.withUnsafeBytes({ loc.regex!.matches($0) }) {
                    if !loc.nested.isEmpty, let n = referenceFind(loc.nested, uri).0 { return (n, true) }
                    return (loc, true)
                }
            }
        }
        return (current, false)
    }

    /// Random location trees (prefix, `^~`, `=` and regex, nested three deep) searched with
    /// random URIs give what the recursive model gives.
    @Test func nestedSearchAgreesWithTheRecursiveModel() {
        var rng = FuzzTests.SplitMix(state: 0x10ca_7e)
        let alphabet = Array("/ab")
        func word(_ max: Int) -> String { String((0..<Int(rng.next() % UInt64(max + 1))).map { _ in alphabet[Int(rng.next() % 3)] }) }
        func block(prefix: String, depth: Int) -> String {
            var out = ""
            for _ in 0..<(1 + rng.next() % 3) {
                let p = prefix + word(2)
                let kind = rng.next() % 5
                let head: String
                switch kind {
                case 0: head = "location \(p.isEmpty ? "/" : p)"
                case 1: head = "location ^~ \(p.isEmpty ? "/" : p)"
                case 2: head = "location ~ \"^\(prefix)\(word(2))\""
                case 3: head = "location ~ \"\(word(2))b$\""
                default: head = "location = \(p.isEmpty ? "/" : p)"
                }
                let inner = kind < 4 && depth < 3 && rng.next() % 2 == 0
                    ? block(prefix: kind < 2 ? (p.isEmpty ? "/" : p) : "", depth: depth + 1) : ""
                out += "\(head) { \(inner) }\n"
            }
            return out
        }
        var compared = 0
        for _ in 0..<300 {
            // Duplicates and impossible nestings are refused by the loader; those trees are skipped.
            guard let table = try? load(server(block(prefix: "/", depth: 0))) else { continue }
            let tree = table.servers[0].locations
            for _ in 0..<30 {
                let uri = Array(("/" + word(6)).utf8)
                let got = uri.withUnsafeBytes { tree.find($0) }
                let want = Self.referenceFind(tree, uri)
                #expect(got.location?.id == want.0?.id && got.final == want.1, "\(String(decoding: uri, as: UTF8.self))")
                compared += 1
            }
        }
        #expect(compared > 3000)
    }

    // MARK: - Files that are not config files

    static func diskLoad(_ text: String) -> String {
        do {
            _ = try ConfigLoader(prefix: "/tmp", resolver: FixedResolver()).load(text: text, file: "t.conf")
            return "no error"
        } catch {
            return error.description
        }
    }

    static func diskLoad(path: String) -> String {
        do {
            _ = try ConfigLoader(prefix: "/tmp", resolver: FixedResolver()).load(path: path)
            return "no error"
        } catch {
            return error.description
        }
    }

    static func tempDirectory() -> String {
        var template = Array("/tmp/lb-cfg-test-XXXXXX".utf8CString)
        return template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
    }

    @Test func includeOfDevZeroIsRefused() {
        #expect(Self.diskLoad(server("include /dev/zero;")) == "\"/dev/zero\" is not a regular file in t.conf:4")
    }

    @Test func mainConfigThatIsADeviceIsRefused() {
        #expect(Self.diskLoad(path: "/dev/zero") == "\"/dev/zero\" is not a regular file")
    }

    @Test func fifoAndDirectoryAreRefusedWithoutWaiting() {
        let dir = Self.tempDirectory()
        defer { rmdir(dir) }
        let fifo = dir + "/fifo"
        #expect(mkfifo(fifo, 0o600) == 0)
        defer { unlink(fifo) }
        // Opening a FIFO for reading would wait for a writer forever.
        #expect(Self.diskLoad("include \(fifo);") == "\"\(fifo)\" is not a regular file in t.conf:1")
        #expect(Self.diskLoad("include \(dir);") == "\"\(dir)\" is not a regular file in t.conf:1")
        #expect(Self.diskLoad("include /etc/lb-no-such-dir/x.conf;")
            == "open() \"/etc/lb-no-such-dir/x.conf\" failed (2: No such file or directory) in t.conf:1")
    }

    @Test func fileOverTheLimitIsRefusedUnread() {
        let dir = Self.tempDirectory()
        defer { rmdir(dir) }
        let big = dir + "/big.conf"
        let fd = open(big, O_CREAT | O_WRONLY, 0o600)
        #expect(fd >= 0)
        defer { unlink(big) }
        // Sparse: no disk is written, and lb refuses it by its size alone.
        #expect(ftruncate(fd, off_t(ConfigLimits.maxConfigBytes + 1)) == 0)
        close(fd)
        let message = "\"\(big)\" is too large: the configuration files may hold at most 64 MiB together"
        #expect(Self.diskLoad("include \(big);") == "\(message) in t.conf:1")
        #expect(Self.diskLoad(path: big) == message)
    }

    @Test func includedFilesShareOneSizeLimit() {
        // Each file is under the limit; together they are over it.
        let half = "#" + String(repeating: "x", count: ConfigLimits.maxConfigBytes / 2) + "\n"
        let files = ["/etc/lb/a.conf": half, "/etc/lb/b.conf": half]
        #expect(loadError("include /etc/lb/a.conf;\ninclude /etc/lb/b.conf;\n", files: files)
            == "\"/etc/lb/b.conf\" is too large: the configuration files may hold at most 64 MiB together in t.conf:2")
    }

    // MARK: - "did you mean" hints

    @Test func hugeUnknownNameGetsNoHint() {
        let name = "proxy_pass" + String(repeating: "x", count: 3_000_000)
        #expect(loadError("\(name);") == "unknown directive \"\(name)\" in t.conf:1")
        #expect(Compiler.suggestion(for: String(repeating: "a", count: Compiler.maxSuggestedNameLength + 1)) == nil)
    }

    @Test func boundedEditDistanceGivesUpPastItsLimit() {
        let a = Array("proxy_pass".utf8), b = Array("proxy_pas".utf8)
        #expect(Compiler.editDistance(a, b, atMost: 1) == 1)
        #expect(Compiler.editDistance(a, Array("proxy_cache".utf8), atMost: 4) == 4)
        #expect(Compiler.editDistance(a, Array("proxy_cache".utf8), atMost: 3) == nil)
        #expect(Compiler.editDistance(a, Array(String(repeating: "p", count: 1000).utf8), atMost: 3) == nil)
        #expect(Compiler.suggestion(for: "proxy_pas") == "proxy_pass")
    }
}
