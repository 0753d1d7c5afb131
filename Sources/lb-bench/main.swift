// lb-bench: in-process micro-benchmarks that need no network (config load, location lookup).
// Network benchmarks (wrk against lb, nginx, HAProxy) live in Tests/bench/*.sh.
import Glibc
import LBConfig

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

func fmt(_ x: Double, _ digits: Int = 1) -> String {
    var p = 1.0
    for _ in 0..<digits { p *= 10 }
    let r = (x * p).rounded() / p
    var s = "\(r)"
    if let dot = s.firstIndex(of: "."), s.distance(from: dot, to: s.endIndex) - 1 < digits { s += "0" }
    return s
}

func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }

/// A config with `upstreams × perUpstream` servers and `locations` prefix/regex/exact locations.
func generatedConfig(upstreams: Int, perUpstream: Int, locations: Int) -> String {
    var s = "worker_processes 1;\nevents { worker_connections 1024; }\nhttp {\n"
    for u in 0..<upstreams {
        s += "  upstream u\(u) {\n"
        for p in 0..<perUpstream {
            s += "    server 127.\((u >> 8) & 255).\(u & 255).\(p % 250 + 1):\(9000 + p) weight=\(p % 5 + 1) max_fails=3 fail_timeout=10s;\n"
        }
        s += "  }\n"
    }
    s += "  server {\n    listen 8080;\n    server_name example.com;\n"
    for l in 0..<locations {
        switch l % 10 {
        case 0: s += "    location = /exact/\(l) { return 200 \"e\(l)\"; }\n"
        case 1: s += "    location ~ ^/re/\(l)/[a-z]+$ { return 200 \"r\(l)\"; }\n"
        default: s += "    location /app/\(l)/section/ { proxy_pass http://u\(l % upstreams); proxy_set_header Host $host; }\n"
        }
    }
    s += "  }\n}\n"
    return s
}

func benchConfig() {
    let text = generatedConfig(upstreams: 100, perUpstream: 100, locations: 5000)
    let loader = ConfigLoader(prefix: "/tmp")
    var times: [Double] = []
    var table: RoutingTable? = nil
    for _ in 0..<7 {
        let t0 = now()
        table = try! loader.load(text: text, file: "generated.conf").table
        times.append(now() - t0)
    }
    let peers = table!.upstreams.reduce(0) { $0 + $1.peers.count }
    print("config: \(text.utf8.count) bytes, \(peers) upstream servers, \(table!.servers[0].locations.all.count) locations")
    print("config load+compile: median \(fmt(median(times) * 1000)) ms (min \(fmt(times.min()! * 1000)), max \(fmt(times.max()! * 1000))) over \(times.count) runs")
}

func benchLookup() {
    print("location lookup (prefix locations; URI /app/N/section/page.html, 80% of prefix lookups hit):")
    for n in [10, 100, 1000, 5000] {
        var s = "events {}\nhttp {\n server {\n  listen 8080;\n"
        for l in 0..<n { s += "  location /app/\(l)/section/ { return 200; }\n" }
        s += " }\n}\n"
        let t = try! ConfigLoader(prefix: "/tmp").load(text: s).table
        let tree = t.servers[0].locations
        let uris: [[UInt8]] = (0..<1024).map { i in Array("/app/\(i * 7 % (n * 5 / 4 + 1))/section/page.html".utf8) }
        var sink = 0
        var rounds: [Double] = []
        for _ in 0..<5 {
            let iterations = 400_000
            let t0 = now()
            for i in 0..<iterations {
                uris[i & 1023].withUnsafeBytes { if let l = tree.find($0).location { sink &+= l.id } }
            }
            rounds.append((now() - t0) / Double(iterations))
        }
        print("  \(n) locations: \(fmt(median(rounds) * 1e9)) ns/lookup" + (sink == 42 ? " " : ""))
    }
}

let what = CommandLine.arguments.dropFirst().first ?? "all"
if what == "config" || what == "all" { benchConfig() }
if what == "lookup" || what == "all" { benchLookup() }
