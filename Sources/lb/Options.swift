/// Command-line options, parsed the way nginx parses its own: single-letter flags that may be
/// grouped (`-tq`), options with a value either attached (`-cFILE`) or next (`-c FILE`).
struct Options {
    enum Action { case run, test, testAndDump, version, versionVerbose, help, signal(String) }

    var action: Action = .run
    var configPath: String?
    var prefix: String?
    var errorLog: String?
    var globalDirectives: String?
    var quiet = false
    /// `--explain REQUEST`: after the test, how that request would be routed.
    var explain: String?
    /// `-H 'Name: value'` headers of the explained request.
    var explainHeaders: [String] = []
    /// `--client ADDRESS`: the explained request's client address.
    var explainClient: String?

    static let usage = """
    Usage: lb [-?hvVtTq] [-s signal] [-p prefix] [-e filename] [-c filename] [-g directives]
              [--explain 'METHOD http://host[:port]/path?args' [-H 'Name: value']... [--client address]]

    Options:
      -?,-h,--help     : this help
      -v               : show version and exit
      -V               : show version and configure options then exit
      -t,--test-config : test configuration and exit
      -T               : test configuration, dump it and exit
      -q               : suppress non-error messages during configuration testing
      -s signal        : send signal to the running lb: stop, quit, reopen, reload
      -p prefix        : set prefix path (default: the current directory)
      -e filename      : set error log file (default: stderr)
      -c filename      : set configuration file (default: conf/lb.conf)
      -g directives    : set global directives out of configuration file
      --explain request: test configuration, then show how the request would be routed
                         (listener, server, locations, rewrites, handler), starting nothing
      -H header        : a header of the explained request ("Name: value"; repeatable)
      --client address : the explained request's client address (default 127.0.0.1)

    """

    struct Failure: Error { var message: String }

    static func parse(_ args: [String]) throws(Failure) -> Options {
        var o = Options()
        var i = 0
        func value(_ rest: Substring, _ flag: Character) throws(Failure) -> String {
            if !rest.isEmpty { return String(rest) }
            i += 1
            guard i < args.count else { throw Failure(message: "option \"-\(flag)\" requires \(flagValueName(flag))") }
            return args[i]
        }
        func longValue(_ a: String, _ name: String) throws(Failure) -> String {
            if a.count > name.count + 1 { return String(a.dropFirst(name.count + 1)) } // --name=value
            i += 1
            guard i < args.count else { throw Failure(message: "option \"\(name)\" requires a parameter") }
            return args[i]
        }
        while i < args.count {
            let a = args[i]
            switch a {
            case _ where a == "--explain" || a.hasPrefix("--explain="):
                o.explain = try longValue(a, "--explain")
                if case .run = o.action { o.action = .test }
            case _ where a == "--client" || a.hasPrefix("--client="):
                o.explainClient = try longValue(a, "--client")
            case "--help": o.action = .help
            case "--test-config": if case .run = o.action { o.action = .test }
            case "--version": o.action = .version
            default:
                guard a.hasPrefix("-"), a.count > 1 else { throw Failure(message: "invalid option: \"\(a)\"") }
                var chars = a.dropFirst()
                flags: while let f = chars.first {
                    chars = chars.dropFirst()
                    switch f {
                    case "?", "h": o.action = .help
                    case "v": o.action = .version
                    case "V": o.action = .versionVerbose
                    case "t": if case .run = o.action { o.action = .test }
                    case "T": o.action = .testAndDump
                    case "q": o.quiet = true
                    case "c": o.configPath = try value(chars, f); break flags
                    case "p": o.prefix = try value(chars, f); break flags
                    case "e": o.errorLog = try value(chars, f); break flags
                    case "g": o.globalDirectives = try value(chars, f); break flags
                    case "H": o.explainHeaders.append(try value(chars, f)); break flags
                    case "s":
                        let s = try value(chars, f)
                        guard ["stop", "quit", "reopen", "reload"].contains(s) else { throw Failure(message: "invalid option: \"-s \(s)\"") }
                        o.action = .signal(s)
                        break flags
                    default: throw Failure(message: "invalid option: \"\(f)\"")
                    }
                }
            }
            i += 1
        }
        return o
    }

    private static func flagValueName(_ f: Character) -> String {
        switch f {
        case "c": "file name"
        case "p": "directory name"
        case "e": "file name"
        case "g": "directives"
        case "H": "a header"
        default: "parameter"
        }
    }
}
