import Glibc
import LBConfig
import LBCore
import LBHTTP

let version = LBVersion.number

/// Start-up messages go to stderr, or to the `-e` file once options are parsed.
nonisolated(unsafe) var startupLogFD: Int32 = 2

func printErr(_ s: String) {
    var s = s
    if !s.hasSuffix("\n") { s += "\n" }
    var bytes = Array(s.utf8)[...]
    while !bytes.isEmpty {
        let n = bytes.withUnsafeBytes { write(startupLogFD, $0.baseAddress, $0.count) }
        if n <= 0 { if errno == EINTR { continue } else { return } }
        bytes = bytes.dropFirst(n)
    }
}

func currentDirectory() -> String {
    var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    guard getcwd(&buf, buf.count) != nil else { return "." }
    return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

let options: Options
do {
    options = try Options.parse(Array(CommandLine.arguments.dropFirst()))
} catch {
    printErr("lb: \(error.message)")
    printErr(Options.usage)
    exit(1)
}
if options.explain == nil && (!options.explainHeaders.isEmpty || options.explainClient != nil) {
    printErr("lb: options \"-H\" and \"--client\" describe the request of \"--explain\"")
    exit(1)
}
// A malformed request to explain is refused before the configuration is read.
let explainRequest: ExplainRequest?
do {
    explainRequest = try options.explain.map { try ExplainRequest.parse($0, headers: options.explainHeaders, client: options.explainClient) }
} catch {
    printErr("lb: [emerg] --explain: \(error)")
    exit(1)
}

let prefix: String = {
    guard let p = options.prefix else { return currentDirectory() }
    return p.hasPrefix("/") ? p : joinPath(currentDirectory(), p)
}()

// `-e FILE`: the log of startup (before the configuration's error_log takes over); a relative
// path resolves against the prefix, as nginx resolves it.
if let e = options.errorLog, e != "stderr" {
    let path = e.hasPrefix("/") ? e : joinPath(prefix, e)
    let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
    if fd < 0 {
        let err = errno
        printErr("lb: [alert] could not open error log file: open() \"\(path)\" failed (\(err): \(String(cString: strerror(err))))")
    } else {
        startupLogFD = fd
    }
}

switch options.action {
case .help:
    print("lb version: lb/\(version)")
    print(Options.usage, terminator: "")
    exit(0)
case .version:
    printErr("lb version: lb/\(version)")
    exit(0)
case .versionVerbose:
    printErr("lb version: lb/\(version)")
    printErr("built with Swift; PCRE2 \(PCRE.isAvailable ? "available" : "NOT available")")
    printErr("configure arguments: none (toolchain only, no package dependencies)")
    exit(0)
default:
    break
}

let configPath = options.configPath ?? "conf/lb.conf"
let displayPath = configPath.hasPrefix("/") ? configPath : joinPath(prefix, configPath)
let loader = ConfigLoader(prefix: prefix, globalDirectives: options.globalDirectives)

let loaded: ConfigLoader.Loaded
do {
    loaded = try loader.load(path: configPath)
} catch {
    for w in error.earlierWarnings { printErr("lb: [warn] \(w)") }
    printErr("lb: [emerg] \(error)")
    if case .test = options.action { printErr("lb: configuration file \(displayPath) test failed") }
    if case .testAndDump = options.action { printErr("lb: configuration file \(displayPath) test failed") }
    exit(1)
}
for w in loaded.warnings { printErr("lb: [warn] \(w)") }

switch options.action {
case .test, .testAndDump:
    if !options.quiet {
        printErr("lb: the configuration file \(displayPath) syntax is ok")
        printErr("lb: configuration file \(displayPath) test is successful")
    }
    if case .testAndDump = options.action {
        for f in loaded.table.files {
            print("# configuration file \(f.path):")
            print(f.text, terminator: f.text.hasSuffix("\n") ? "\n" : "\n\n")
        }
    }
    if let r = explainRequest {
        do {
            print(try RouteExplainer.explain(r, table: loaded.table), terminator: "")
        } catch {
            printErr("lb: [emerg] --explain: \(error)")
            exit(1)
        }
    }
    exit(0)
case .signal(let s):
    let r = sendSignal(s, table: loaded.table)
    if !r.ok {
        printErr("lb: [error] \(r.message)")
        exit(1)
    }
    exit(0)
default:
    let runtime = Runtime(table: loaded.table, loader: loader, configPath: configPath)
    exit(runtime.run())
}
