// lb-app: the stack's example app server (what the compose stacks run as Flask + gunicorn), on
// lb's own event loop and HTTP parser. Talks RESP to lb-store or a real redis-server.
import Glibc
import LBIO

func env(_ k: String) -> String? { getenv(k).map { String(cString: $0) } }

func fail(_ s: String) -> Never {
    _ = "lb-app: \(s)\n".withCString { write(2, $0, strlen($0)) }
    exit(1)
}

var port = Int(env("PORT") ?? "") ?? 5000
var socketPath = env("SOCKET")
var name = env("INSTANCE_NAME") ?? ""
var bind = "127.0.0.1"
var storeHost = env("STORE_HOST") ?? env("REDIS_HOST") ?? "127.0.0.1"
var storePort = Int(env("STORE_PORT") ?? env("REDIS_PORT") ?? "") ?? 6379
var args = Array(CommandLine.arguments.dropFirst())
while !args.isEmpty {
    let a = args.removeFirst()
    func value() -> String {
        guard !args.isEmpty else { fail("option \(a) needs a value") }
        return args.removeFirst()
    }
    switch a {
    case "--port": port = Int(value()) ?? 0
    case "--socket": socketPath = value()
    case "--name": name = value()
    case "--bind": bind = value()
    case "--store-host": storeHost = value()
    case "--store-port": storePort = Int(value()) ?? 0
    case "-h", "--help":
        print("usage: lb-app [--port 5000 [--bind 127.0.0.1] | --socket PATH] [--name NAME] [--store-host H] [--store-port P]  (env: STORE_HOST/STORE_PORT or REDIS_HOST/REDIS_PORT)")
        exit(0)
    default: fail("unknown option \(a)")
    }
}
guard socketPath != nil || (1...65535).contains(port) else { fail("invalid port") }
guard isIP(bind) else { fail("--bind takes an IP address") }
if name.isEmpty { name = "app-\(port)" }
if !isIP(storeHost) {
    // Resolve once at start (compose-style names like "redis").
    storeHost = resolve(storeHost) ?? storeHost
}

let app = AppServer(bind: bind, port: port, name: name, storeHost: storeHost, storePort: storePort)
app.socketPath = socketPath
app.run()
