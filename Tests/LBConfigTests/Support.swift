import Glibc
@testable import LBConfig

/// An in-memory file system for include tests.
struct MemoryFS: ConfigFileSystem {
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

/// A resolver with fixed answers (no DNS in unit tests).
struct FixedResolver: HostResolver {
    var answers: [String: [String]] = ["localhost": ["127.0.0.1"]]
    func resolve(_ host: String) -> [String] { answers[host] ?? [] }
}

func load(_ text: String, files: [String: String] = [:], resolver: FixedResolver = FixedResolver()) throws(ConfigError) -> RoutingTable {
    try ConfigLoader(prefix: "/p", fileSystem: MemoryFS(files: files), resolver: resolver).load(text: text, file: "t.conf").table
}

func loadError(_ text: String, files: [String: String] = [:], resolver: FixedResolver = FixedResolver()) -> String {
    do {
        _ = try load(text, files: files, resolver: resolver)
        return "no error"
    } catch {
        return error.description
    }
}

/// Wraps server directives in a minimal http/server.
func server(_ body: String) -> String {
    "http {\n server {\n listen 8080;\n\(body)\n }\n}\n"
}
