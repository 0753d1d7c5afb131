import Foundation
import Testing

/// `geo`, `map` with `hostnames`, and map values cached per request, side by side with Debian's
/// nginx on the same configuration (see `Differential`), and `-t`'s words for the same files.
@Suite(.serialized, .enabled(if: Differential.available, "needs Debian's nginx at /usr/sbin/nginx"))
struct DifferentialGeoTests {
    static let geoBlocks = """
    geo $arg_ip $net {
        default def;
        include {root}/nets.conf;
        10.1.2.3 host;
        delete 10.1.2.0/24;
        192.168.0.0/16 lan;
        255.255.255.255 none;
        ::/0 v6def;
        2001:db8::/32 doc;
        2001:db8:1::/48 doc1;
        ::ffff:10.0.0.0/104 mapped6;
    }
    geo $arg_ip $rng {
        ranges;
        default rdef;
        10.0.0.0-10.0.255.255 a;
        10.0.1.0-10.0.1.9 b;
        10.0.1.5-10.0.1.5 c;
        1.0.0.0-1.2.255.255 big;
        delete 1.1.0.0-1.1.255.255;
        20.0.0.0-20.0.0.255 "x y";
    }
    geo $xff {
        proxy 127.0.0.1;
        proxy 10.0.0.0/8;
        default d;
        10.5.0.0/16 ten5;
        127.0.0.1 lo;
        1.1.1.1 one;
    }
    geo $xffr {
        proxy 127.0.0.1;
        proxy 10.0.0.0/8;
        proxy_recursive;
        default d;
        10.5.0.0/16 ten5;
        127.0.0.1 lo;
        1.1.1.1 one;
    }
    geo $plain { default d; 127.0.0.0/8 loop; }
    geo $unproxied { proxy 10.0.0.0/8; default d; 127.0.0.1 lo; 1.1.1.1 one; }
    geo $real { default d; 10.0.0.0/8 ten; 127.0.0.1 lo; }
    """

    static let nets = "10.0.0.0/8 ten;\n10.1.0.0/16 ten-one;\n10.1.2.0/24 ten-one-two;\n"

    /// Addresses from a variable: longest prefix of IPv4 and IPv6 networks (v4-mapped IPv6 looked
    /// up as IPv4, `delete`, entries from an included file), ranges split and deleted, and what
    /// is not an address looked up as 255.255.255.255.
    @Test func geoPicksAsNginxForAddressesFromAVariable() throws {
        let d = try Differential("""
        \(Self.geoBlocks)
        server {
            listen 127.0.0.1:{port};
            location / { return 200 "net=$net rng=$rng plain=$plain\\n"; }
        }
        """, files: ["nets.conf": Self.nets])
        let ips = ["10.9.9.9", "10.1.9.9", "10.1.2.9", "10.1.2.3", "192.168.1.1", "8.8.8.8", "255.255.255.255", "", "junk",
                   "2001:db8::1", "2001:db8:1::5", "::1", "::ffff:10.1.1.1", "::ffff:8.8.8.8", "01.1.2.3", "10..1.2",
                   "10.0.1.5", "10.0.1.6", "10.0.1.10", "10.0.0.200", "1.0.5.5", "1.1.5.5", "1.2.255.255", "20.0.0.7",
                   "1.2.3.4:80", "%5B::1%5D"]
        try d.compare(ips.map { Differential.Request(target: "/?ip=\($0)", expect: 200) })
        // Pinned, so that both answering defaults cannot pass.
        #expect(try d.fetch(Differential.Request(target: "/?ip=10.1.2.9"), port: d.lb.port).text == "net=ten-one rng=rdef plain=loop\n")
        #expect(try d.fetch(Differential.Request(target: "/?ip=10.0.1.5"), port: d.lb.port).text == "net=ten rng=c plain=loop\n")
        #expect(try d.fetch(Differential.Request(target: "/?ip=2001:db8:1::5"), port: d.lb.port).text == "net=doc1 rng=rdef plain=loop\n")
    }

    /// SplitMix64, so that the random tables are the same at every run.
    struct Seeded: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static func ip(_ a: UInt32) -> String { "\(a >> 24).\(a >> 16 & 255).\(a >> 8 & 255).\(a & 255)" }

    /// Many random networks (nested, repeated, deleted; IPv4 and IPv6) and nested ranges across
    /// /16 boundaries (some deleted after being split): hundreds of random addresses answer as in
    /// nginx, whose radix trees and range pieces are the reference.
    @Test func randomTablesAnswerAsNginx() throws {
        var g = Seeded(state: 15)
        var nets: [String] = [], added: [String] = []
        for i in 0..<1500 {
            if i % 12 == 11, let victim = added.randomElement(using: &g) { nets.append("delete \(victim);"); continue }
            if i % 5 == 0 {
                let len = Int.random(in: 32...128, using: &g)
                var groups = (0..<8).map { _ in UInt16.random(in: 0...UInt16.max, using: &g) }
                groups[0] = 0x2001
                groups[1] = 0x0db8
                for k in 0..<8 {
                    let keep = max(0, min(16, len - 16 * k))
                    groups[k] &= keep == 0 ? 0 : UInt16.max << UInt16(16 - keep)
                }
                let net = groups.map { String($0, radix: 16) }.joined(separator: ":") + "/\(len)"
                nets.append("\(net) v6-\(i);")
                added.append(net)
                continue
            }
            let len = Int.random(in: 14...32, using: &g)
            let a = (10 << 24 | UInt32.random(in: 0..<(1 << 18), using: &g)) & (len == 0 ? 0 : UInt32.max << UInt32(32 - len))
            let net = Self.ip(a) + "/\(len)"
            nets.append("\(net) n\(i);")
            added.append(net)
        }
        // Ranges: a laminar family (each inside an earlier one or apart from all), parents first.
        var ranges: [String] = [], kept: [String] = []
        func fill(_ lo: UInt32, _ hi: UInt32, depth: Int) {
            guard depth < 4, hi > lo + 4 else { return }
            var cursor = lo
            for _ in 0..<Int.random(in: 1...4, using: &g) {
                guard cursor < hi else { break }
                let s = UInt32.random(in: cursor...min(hi, cursor + (hi - lo) / 3), using: &g)
                let e = UInt32.random(in: s...min(hi, s + (hi - lo) / 2), using: &g)
                let r = Self.ip(s) + "-" + Self.ip(e)
                ranges.append("\(r) r\(ranges.count);")
                kept.append(r)
                if Bool.random(using: &g) { fill(s, e, depth: depth + 1) }
                cursor = e &+ 1
            }
            if Int.random(in: 0..<4, using: &g) == 0, let victim = kept.randomElement(using: &g) { ranges.append("delete \(victim);") }
        }
        fill(10 << 24, 10 << 24 | 0x3_FFFF, depth: 0)
        let d = try Differential("""
        geo $arg_ip $net { default none; include {root}/random.geo; }
        geo $arg_ip $rng { ranges; default none; include {root}/random-ranges.geo; }
        server {
            listen 127.0.0.1:{port};
            location / { return 200 "net=$net rng=$rng\\n"; }
        }
        """, files: ["random.geo": nets.joined(separator: "\n") + "\n", "random-ranges.geo": ranges.joined(separator: "\n") + "\n"])
        var ips = (0..<300).map { _ in Self.ip(10 << 24 | UInt32.random(in: 0..<(1 << 18), using: &g)) }
        ips += (0..<60).map { _ in "2001:db8:" + (0..<6).map { _ in String(UInt16.random(in: 0...UInt16.max, using: &g), radix: 16) }.joined(separator: ":") }
        try d.compare(ips.map { Differential.Request(target: "/?ip=\($0)", expect: 200) })
        // Not vacuous: most answers come from entries, not the default.
        var netHits = 0, rangeHits = 0
        for ip in ips.prefix(40) {
            let text = try d.fetch(Differential.Request(target: "/?ip=\(ip)"), port: d.lb.port).text
            if !text.hasPrefix("net=none") { netHits += 1 }
            if !text.contains("rng=none") { rangeHits += 1 }
        }
        #expect(netHits > 20 && rangeHits > 10, "\(netHits) \(rangeHits); \(ranges.count) range lines")
    }

    /// From a `proxy` address the client is X-Forwarded-For's last address, or with
    /// `proxy_recursive` the last one that is not itself a proxy; a bad item keeps the
    /// connection's address; a geo without our address as proxy ignores the header.
    @Test func geoReadsXForwardedForFromItsProxiesAsNginx() throws {
        let d = try Differential("""
        \(Self.geoBlocks)
        server {
            listen 127.0.0.1:{port};
            set_real_ip_from 127.0.0.1;
            real_ip_header X-Real-IP;
            location / { return 200 "xff=$xff xffr=$xffr unproxied=$unproxied real=$real\\n"; }
        }
        """, files: ["nets.conf": Self.nets])
        let values = ["1.1.1.1", "10.5.1.1", "1.1.1.1, 10.5.1.1", "1.1.1.1, 10.9.9.9", "10.5.5.5, 10.9.9.9", "junk",
                      "1.1.1.1, junk", "1.1.1.1,10.2.2.2", "1.1.1.1 10.2.2.2", "[::1]", "[::1]:80", "2001:db8::1", "1.1.1.1:80"]
        var requests = values.map { Differential.Request(target: "/", headers: ["X-Forwarded-For: \($0)"], expect: 200) }
        requests.append(Differential.Request(target: "/", expect: 200))
        requests.append(Differential.Request(target: "/", headers: ["X-Forwarded-For: 1.1.1.1", "X-Forwarded-For: 10.2.2.2"], expect: 200))
        // The connection's address is the one realip chose (server level, before the rewrite phase).
        requests += [["X-Real-IP: 10.1.1.1"], ["X-Real-IP: 10.5.0.1", "X-Forwarded-For: 1.1.1.1"],
                     ["X-Real-IP: 1.1.1.1", "X-Forwarded-For: 10.5.0.1"]].map { Differential.Request(target: "/", headers: $0, expect: 200) }
        try d.compare(requests)
        let r = try d.fetch(Differential.Request(target: "/", headers: ["X-Forwarded-For: 1.1.1.1, 10.5.1.1"]), port: d.lb.port)
        #expect(r.text == "xff=ten5 xffr=one unproxied=lo real=lo\n")
        let real = try d.fetch(Differential.Request(target: "/", headers: ["X-Real-IP: 10.5.0.1", "X-Forwarded-For: 1.1.1.1"]), port: d.lb.port)
        #expect(real.text == "xff=one xffr=one unproxied=one real=ten\n")
    }

    /// `hostnames`: exact keys, then the longest leading wildcard (`*.x` not matching x itself,
    /// `.x` matching it), then trailing ones; names without case and without a trailing dot;
    /// regexes after them. Also keyed by `$host`, as configurations do.
    @Test func mapHostnamesMatchesWildcardsAsNginx() throws {
        let d = try Differential("""
        map $arg_h $m {
            hostnames;
            default none;
            example.com exact;
            *.example.com star;
            .example.org dot;
            *.a.example.org star-a;
            www.example.* tail;
            www.example.com.* tail2;
            ~^re\\.(?<x>.+)$ re-$x;
        }
        map $host $byhost {
            hostnames;
            default none;
            .example.net net;
            api.* api;
        }
        server {
            listen 127.0.0.1:{port};
            location / { return 200 "m=$m host=$byhost\\n"; }
        }
        """)
        let names = ["example.com", "EXAMPLE.com.", "www.example.com", "a.b.example.com", "example.org", "x.example.org",
                     "a.example.org", "z.a.example.org", "www.example.net", "www.example", "www.example.com.au",
                     "www.example.com.x.y", "re.thing", "", ".", "example.com..", "org"]
        var requests = names.map { Differential.Request(target: "/?h=\($0)", expect: 200) }
        requests += ["example.net", "www.Example.NET", "api.local", "api", "other"].map {
            Differential.Request(target: "/", expect: 200, host: $0)
        }
        try d.compare(requests)
        #expect(try d.fetch(Differential.Request(target: "/?h=z.a.example.org", host: "api.x"), port: d.lb.port).text == "m=star-a host=api\n")
    }

    /// A map is evaluated once per request: a second use neither re-runs its regex (whose
    /// captures would replace a later regex's) nor sees a changed source. `volatile` evaluates
    /// at each use.
    @Test func mapValuesAreCachedPerRequestUnlessVolatile() throws {
        let d = try Differential("""
        map $arg_a $m { ~^(.*)$ "a:$1"; }
        map $arg_a $mv { volatile; ~^(.*)$ "a:$1"; }
        map $args $margs { default "[$args]"; }
        map $args $margsv { volatile; default "[$args]"; }
        server {
            listen 127.0.0.1:{port};
            location /cached {
                set $first $m;
                if ($arg_b ~ ^(.*)$) { set $b $1; }
                return 200 "m=$m one=$1\\n";
            }
            location /volatile {
                set $first $mv;
                if ($arg_b ~ ^(.*)$) { set $b $1; }
                return 200 "m=$mv one=$1\\n";
            }
            location /args {
                set $before "$margs $margsv";
                set $args "changed";
                return 200 "$before after=$margs $margsv\\n";
            }
        }
        """)
        try d.compare([
            Differential.Request(target: "/cached?a=X&b=Y", expect: 200),
            Differential.Request(target: "/volatile?a=X&b=Y", expect: 200),
            Differential.Request(target: "/args?k=v", expect: 200),
        ])
        #expect(try d.fetch(Differential.Request(target: "/cached?a=X&b=Y"), port: d.lb.port).text == "m=a:X one=Y\n")
        #expect(try d.fetch(Differential.Request(target: "/volatile?a=X&b=Y"), port: d.lb.port).text == "m=a:X one=X\n")
        #expect(try d.fetch(Differential.Request(target: "/args?k=v"), port: d.lb.port).text == "[k=v] [k=v] after=[k=v] [changed]\n")
    }

    /// Blocks defining the same variable: the last one defines it, whatever its kind.
    @Test func theLastBlockOfAVariableDefinesItAsNginx() throws {
        let d = try Differential("""
        map $host $a { default map1; }
        geo $a { default geo; }
        geo $b { default geo; }
        map $host $b { default map2; }
        split_clients $host $c { * split; }
        map $host $c { default map3; }
        geo $c { default geo3; }
        server {
            listen 127.0.0.1:{port};
            location / { return 200 "a=$a b=$b c=$c\n"; }
        }
        """)
        try d.compare([Differential.Request(target: "/", expect: 200)])
        #expect(try d.fetch(Differential.Request(target: "/"), port: d.lb.port).text == "a=geo b=map2 c=geo3\n")
    }

    /// `nginx -t` and `lb -t` on the same files: each `[warn]` and the `[emerg]`, in order.
    /// (lb names the place of an unknown variable, nginx does not: not compared here.)
    func check(_ files: [String: String]) throws -> (nginx: [String], lb: [String]) {
        let dir = try Harness.tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        for (name, text) in files {
            try text.write(to: dir.appendingPathComponent(name), atomically: true, encoding: .utf8)
        }
        let conf = dir.appendingPathComponent("nginx.conf").path
        let n = try Started(URL(fileURLWithPath: Differential.nginxPath),
                            ["-t", "-e", "stderr", "-p", dir.path, "-c", conf, "-g", "pid \(dir.path)/nginx.pid;"], cwd: dir)
        #expect(n.wait(timeout: 30))
        let l = try Harness.run("lb", ["-t", "-p", dir.path, "-c", conf])
        func messages(_ s: String) -> [String] {
            s.split(separator: "\n").compactMap { line -> String? in
                guard let r = line.range(of: "[warn] ") ?? line.range(of: "[emerg] ") else { return nil }
                let level = line[r.lowerBound...].hasPrefix("[warn]") ? "warn" : "emerg"
                var m = line[r.upperBound...]
                if let colon = m.range(of: ": "), m[..<colon.lowerBound].allSatisfy({ $0.isNumber || $0 == "#" }) { m = m[colon.upperBound...] }
                return "\(level): " + m.replacingOccurrences(of: dir.path, with: "DIR")
            }
        }
        return (messages(n.stderr), messages(l.stderr))
    }

    @Test func loadWarningsAndErrorsAreNginxs() throws {
        func conf(_ block: String) -> String { "events {}\nhttp {\n\(block)\n server { listen 127.0.0.1:1; }\n}\n" }
        let cases: [(String, [String: String])] = [
            ("geo $a {\n default x;\n default y;\n 10.0.0.0/8 a;\n 10.0.0.0/8 b;\n 10.1.2.3/8 c;\n delete 11.0.0.0/8;\n ::1 v6;\n ::1/128 v6b;\n}", [:]),
            ("geo $arg_ip $r {\n ranges;\n default x;\n default y;\n 10.0.0.0-10.0.255.255 a;\n 10.0.0.0-10.0.255.255 b;\n delete 10.0.5.0-10.0.5.9;\n}", [:]),
            ("geo $a {\n include nets.conf;\n}", ["nets.conf": "10.0.0.0/8 a;\n1.2.3.4/40 b;\n"]),
            ("geo $a {\n default x;\n ranges;\n}", [:]),
            ("geo $a {\n ranges;\n 10.0.0.0-10.0.0.9 x;\n 10.0.0.5-10.0.0.20 y;\n}", [:]),
            ("geo $a {\n ranges;\n 10.0.0.9-10.0.0.1 x;\n}", [:]),
            ("geo $a {\n proxy 10.0.0.1/8;\n volatile;\n}", [:]),
            ("geo $a $b $c { }", [:]),
            ("map $host $m {\n hostnames;\n .example.com a;\n example.com b;\n}", [:]),
            ("map $host $m {\n hostnames;\n www.*.com a;\n}", [:]),
            ("map $host $uri {\n default x;\n}", [:]),
            ("split_clients $host $remote_addr {\n * x;\n}", [:]),
        ]
        for (block, files) in cases {
            var all = files
            all["nginx.conf"] = conf(block)
            var (n, l) = try check(all)
            #expect(!n.isEmpty, "\(block): nginx said nothing")
            // lb prints the warnings of a configuration it loads; of a failed one, the error.
            if n.contains(where: { $0.hasPrefix("emerg") }) { n.removeAll { $0.hasPrefix("warn") } }
            if l.contains(where: { $0.hasPrefix("emerg") }) { l.removeAll { $0.hasPrefix("warn") } }
            #expect(l == n, "\(block)")
        }
    }
}
