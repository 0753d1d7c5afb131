import Glibc

// libFuzzer target: the config lexer, parser and compiler (LBConfig), from bytes through an
// in-memory file system and a fixed resolver (no disk, no DNS), as Tests/LBConfigTests do.
//
// The input up to its first NUL byte is the main file `t.conf`; what follows is `/p/part.conf`,
// which the main file can `include part.conf;`.
//
// Invariants: the lexer ends with one end-of-file token and its tokens' lines never go back nor
// pass the last line; loading either gives a routing table or a ConfigError with a message, and a
// location whose line lies inside its file; loading twice gives the same outcome.

struct FuzzFS: ConfigFileSystem {
    var files: [String: String]
    func read(_ path: String) throws(ConfigError) -> String {
        guard let t = files[path] else { throw ConfigError("open() \"\(path)\" failed (2: No such file or directory)") }
        return t
    }
    func glob(_ pattern: String) -> [String] {
        files.keys.filter { fnmatch(pattern, $0, FNM_PATHNAME) == 0 }.sorted()
    }
    func canonical(_ path: String) -> String { path }
}

struct FuzzResolver: HostResolver {
    func resolve(_ host: String) -> [String] { host == "localhost" ? ["127.0.0.1"] : [] }
}

func lines(_ text: String) -> Int { text.utf8.reduce(1) { $0 + ($1 == 0x0A ? 1 : 0) } }

func load(_ main: String, _ files: [String: String]) -> Result<Int, ConfigError> {
    let loader = ConfigLoader(prefix: "/p", fileSystem: FuzzFS(files: files), resolver: FuzzResolver())
    return Result(catching: { () throws(ConfigError) in try loader.load(text: main, file: "t.conf").warnings.count })
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfig(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let b = UnsafeBufferPointer(start: data, count: size)
    let cut = b.firstIndex(of: 0) ?? size
    let main = String(decoding: b[0..<cut], as: UTF8.self)
    let part = cut < size ? String(decoding: b[(cut + 1)...], as: UTF8.self) : "listen 8080;"
    let files = ["/p/part.conf": part]

    if let tokens = try? Lexer.tokenize(main, file: "t.conf") {
        check(tokens.last?.kind == .endOfFile && tokens.filter { $0.kind == .endOfFile }.count == 1, "lexer end of file")
        var line = 1
        let last = lines(main)
        for t in tokens {
            check(t.location.line >= line && t.location.line <= last && t.location.column >= 1,
                  "token at \(t.location.line):\(t.location.column) after line \(line) of \(last)")
            line = t.location.line
        }
    }

    let first = load(main, files)
    if case .failure(let e) = first {
        check(!e.message.isEmpty, "error without a message")
        if let l = e.location {
            let text = l.file == "t.conf" ? main : files[l.file]
            check(l.line >= 1 && l.line <= lines(text ?? ""), "error at line \(l.line) of \(l.file) (\(lines(text ?? "")) lines): \(e)")
        }
    }
    check(first == load(main, files), "loading the same config twice differs")
    return 0
}
