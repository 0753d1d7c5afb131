import Testing
@testable import LBConfig

/// `geo` compiled into its tables, without sockets. The expected values are what Debian's nginx
/// 1.22 answered for the same blocks (`geo $arg_ip $v { … }`, `return 200 $v`), and its
/// `nginx -t` words for the warnings and errors.
struct GeoTests {
    static func loaded(_ geoBlocks: String) throws -> (table: RoutingTable, warnings: [String]) {
        let l = try ConfigLoader(prefix: "/p", fileSystem: MemoryFS(files: [:]), resolver: FixedResolver())
            .load(text: "events {}\nhttp {\n\(geoBlocks)\nserver { listen 80; }\n}\n", file: "t.conf")
        return (l.table, l.warnings.map(\.description))
    }

    static func geo(_ table: RoutingTable, _ v: String) throws -> GeoBlock {
        try #require(table.maps.first { $0.variable == v }?.geo)
    }

    static func value(_ g: GeoBlock, _ ip: String) -> String {
        String(decoding: g.value(for: GeoBlock.parseAddress(Array(ip.utf8))), as: UTF8.self)
    }

    static let networks = """
    geo $arg_ip $net {
        default def;
        10.0.0.0/8 ten;
        10.1.0.0/16 ten-one;
        10.1.2.0/24 ten-one-two;
        10.1.2.3 host;
        delete 10.1.2.0/24;
        192.168.0.0/16 lan;
        255.255.255.255 none;
        ::/0 v6def;
        2001:db8::/32 doc;
        2001:db8:1::/48 doc1;
        ::ffff:10.0.0.0/104 mapped6;
    }
    """

    @Test(arguments: [
        ("10.9.9.9", "ten"), ("10.1.9.9", "ten-one"), ("10.1.2.9", "ten-one"), ("10.1.2.3", "host"),
        ("192.168.1.1", "lan"), ("8.8.8.8", "def"), ("255.255.255.255", "none"), ("", "none"), ("junk", "none"),
        ("2001:db8::1", "doc"), ("2001:db8:1::5", "doc1"), ("::1", "v6def"), ("::ffff:10.1.1.1", "ten-one"),
        ("::ffff:8.8.8.8", "def"), ("01.1.2.3", "def"), ("10..1.2", "ten"), ("1.2.3.4:80", "none"), ("[::1]", "none"),
    ])
    func longestPrefixWinsAsNginxsRadixTree(_ ip: String, _ nginx: String) throws {
        let (t, _) = try Self.loaded(Self.networks)
        #expect(Self.value(try Self.geo(t, "net"), ip) == nginx)
    }

    @Test func aBlockWithoutDefaultAnswersEmpty() throws {
        let (t, _) = try Self.loaded("geo $arg_ip $v { 10.0.0.0/8 ten; }")
        let g = try Self.geo(t, "v")
        #expect(Self.value(g, "10.0.0.1") == "ten")
        #expect(Self.value(g, "11.0.0.1") == "")
        #expect(Self.value(g, "::1") == "")
    }

    static let ranges = """
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
    """

    @Test(arguments: [
        ("10.9.9.9", "rdef"), ("10.0.1.5", "c"), ("10.0.1.6", "b"), ("10.0.1.10", "a"), ("10.0.0.200", "a"),
        ("1.0.5.5", "big"), ("1.1.5.5", "rdef"), ("1.2.255.255", "big"), ("20.0.0.7", "x y"), ("10..1.2", "b"),
        ("::1", "rdef"), ("junk", "rdef"),
    ])
    func rangesSplitAndDeleteAsNginx(_ ip: String, _ nginx: String) throws {
        let (t, _) = try Self.loaded(Self.ranges)
        #expect(Self.value(try Self.geo(t, "rng"), ip) == nginx)
    }

    @Test func rangesAcrossSixteenBitBlocksAreCutPerBlock() {
        var r = GeoRanges()
        let added = r.add(0x0A00_FF00, 0x0A02_00FF, Array("x".utf8))
        #expect(added == .added(replaced: []))
        #expect(r.value(for: 0x0A01_8000) == Array("x".utf8))
        #expect(r.value(for: 0x0A02_0100) == [])
        // Deleting the middle /16 alone works; a range that is not a piece does not.
        let deleted = r.delete(0x0A01_0000, 0x0A01_FFFF)
        #expect(deleted)
        #expect(r.value(for: 0x0A01_8000) == [])
        let notAPiece = r.delete(0x0A00_FF00, 0x0A01_0010)
        #expect(!notAPiece)
    }

    @Test func warningsAreNginxs() throws {
        let (_, w) = try Self.loaded("""
        geo $a {
            default x;
            default y;
            10.0.0.0/8 a;
            10.0.0.0/8 b;
            10.1.2.3/8 c;
            delete 11.0.0.0/8;
            ::1 v6;
            ::1/128 v6b;
        }
        geo $arg_ip $r {
            ranges;
            default x;
            default y;
            10.0.0.0-10.0.255.255 a;
            10.0.0.0-10.0.255.255 b;
            delete 10.0.5.0-10.0.5.9;
        }
        """)
        #expect(w == [
            "duplicate network \"default\", value: \"y\", old value: \"x\" in t.conf:5",
            "duplicate network \"default\", value: \"y\", old value: \"x\" in t.conf:5",
            "duplicate network \"10.0.0.0/8\", value: \"b\", old value: \"a\" in t.conf:7",
            "low address bits of 10.1.2.3/8 are meaningless in t.conf:8",
            "duplicate network \"10.1.2.3/8\", value: \"c\", old value: \"b\" in t.conf:8",
            "no network \"11.0.0.0/8\" to delete in t.conf:9",
            "duplicate network \"::1/128\", value: \"v6b\", old value: \"v6\" in t.conf:11",
            "duplicate default geo range value: \"y\", old value: \"x\" in t.conf:16",
            "duplicate range \"10.0.0.0-10.0.255.255\", value: \"b\", old value: \"a\" in t.conf:18",
            "no address range \"10.0.5.0-10.0.5.9\" to delete in t.conf:19",
        ])
    }

    @Test(arguments: [
        ("geo $a { 1.2.3.4/33 bad; }", "invalid network \"1.2.3.4/33\" in t.conf:3"),
        ("geo $a { 1.2.3.4/ bad; }", "invalid network \"1.2.3.4/\" in t.conf:3"),
        ("geo $a { ::1-::2 x; }", "invalid network \"::1-::2\" in t.conf:3"),
        ("geo $a { * x; }", "invalid network \"*\" in t.conf:3"),
        ("geo $a { proxy 1.2.3.4/40; }", "invalid network \"1.2.3.4/40\" in t.conf:3"),
        ("geo $a { default; }", "invalid number of the geo parameters in t.conf:3"),
        ("geo $a { a b c; }", "invalid number of the geo parameters in t.conf:3"),
        ("geo $a { foo; }", "invalid number of the geo parameters in t.conf:3"),
        // nginx 1.22 has no `volatile` in geo (later versions do).
        ("geo $a { volatile; }", "invalid number of the geo parameters in t.conf:3"),
        ("geo $a { x { } }", "unexpected \"{\" in t.conf:3"),
        ("geo $a {\n default x;\n ranges;\n}", "the \"ranges\" directive must be the first directive inside \"geo\" block in t.conf:5"),
        ("geo $a { ranges; 10.0.0.5-10.0.0.1 x; }", "invalid range \"10.0.0.5-10.0.0.1\" in t.conf:3"),
        ("geo $a { ranges; 10.0.0.1 x; }", "invalid range \"10.0.0.1\" in t.conf:3"),
        ("geo $a { ranges; 10.0.0.1-255.255.255.255 x; }", "invalid range \"10.0.0.1-255.255.255.255\" in t.conf:3"),
        ("geo $a { ranges;\n10.0.0.0-10.0.0.9 x;\n10.0.0.5-10.0.0.20 y; }", "range \"10.0.0.5-10.0.0.20\" overlaps \"10.0.0.0-10.0.0.9\" in t.conf:5"),
        ("geo $a { ranges;\n10.0.0.5-10.0.0.9 x;\n10.0.0.0-10.0.0.20 y; }", "range \"10.0.0.0-10.0.0.20\" overlaps \"10.0.0.5-10.0.0.9\" in t.conf:5"),
        ("geo a { }", "invalid variable name \"a\" in t.conf:3"),
        ("geo $a b { }", "invalid variable name \"b\" in t.conf:3"),
        ("geo $a $b $c { }", "invalid number of arguments in \"geo\" directive in t.conf:3"),
        ("geo $remote_addr { }", "the duplicate \"remote_addr\" variable in t.conf:3"),
        ("geo $pid { }", "the duplicate \"pid\" variable in t.conf:3"),
        ("map $host $server_port { }", "the duplicate \"server_port\" variable in t.conf:3"),
        ("map $host $uri { }", "the duplicate \"uri\" variable in t.conf:3"),
        ("split_clients $host $remote_addr { * a; }", "the duplicate \"remote_addr\" variable in t.conf:3"),
        ("map $host $a { } map $host $a { } geo $a { } split_clients $host $a { * x; } map $host $a { }", "no error"),
    ])
    func loadErrorsAreNginxs(_ block: String, _ nginx: String) {
        // Each case's words checked with nginx -t 1.22.1.
        #expect(loadError("events {}\nhttp {\n\(block)\nserver { listen 80; }\n}\n") == nginx)
    }

    /// nginx lets these blocks replace a changeable built-in or define a prefixed name, and then
    /// answers with the block's value; lb reads those variables itself, so it refuses them at
    /// load rather than answer differently (docs/configuration.md, map).
    @Test(arguments: ["map $host $args { }", "geo $http_x { }", "split_clients $host $arg_a { * x; }",
                      "map $host $ssl_client_verify { }"])
    func builtInsLbReadsItselfAreRefused(_ block: String) {
        let name = block.split(separator: " ").first { $0.hasPrefix("$") && $0 != "$host" }!
        #expect(loadError("events {}\nhttp {\n\(block)\nserver { listen 80; }\n}\n")
                == "defining the built-in variable \"\(name)\" in a map, geo or split_clients block is not supported by lb in t.conf:3")
    }

    @Test func entriesComeFromIncludedFilesAtTheirOwnLines() throws {
        let conf = "events {}\nhttp {\ngeo $v {\n default d;\n include /p/nets.conf;\n}\nserver { listen 80; }\n}\n"
        let t = try load(conf, files: ["/p/nets.conf": "10.0.0.0/8 ten;\n"])
        #expect(Self.value(try Self.geo(t, "v"), "10.2.3.4") == "ten")
        #expect(loadError(conf, files: ["/p/nets.conf": "10.0.0.0/8 ten;\n1.2.3.4/99 x;\n"]) == "invalid network \"1.2.3.4/99\" in /p/nets.conf:2")
    }

    @Test func proxiesAndTheAddressSourceAreKept() throws {
        let (t, _) = try Self.loaded("geo $g { proxy 127.0.0.1; proxy 10.0.0.0/8; proxy_recursive; 1.1.1.1 one; }\ngeo $arg_ip $h { }")
        let g = try Self.geo(t, "g")
        #expect(!g.addressFromVariable && g.proxyRecursive)
        #expect(g.proxies.map(\.description) == ["127.0.0.1", "10.0.0.0/8"])
        #expect(g.proxies[1].contains([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 10, 9, 8, 7]))
        #expect(try Self.geo(t, "h").addressFromVariable)
    }

    @Test func aLaterBlockForTheSameVariableReplacesTheEarlier() throws {
        let (t, _) = try Self.loaded("geo $arg_ip $v { default first; }\ngeo $arg_ip $v { default second; }")
        #expect(t.maps.filter { $0.variable == "v" }.count == 1)
        #expect(Self.value(try Self.geo(t, "v"), "1.2.3.4") == "second")
        // A map after a geo of the same variable, as nginx: the last block defines it.
        let (t2, _) = try Self.loaded("geo $v { default g; }\nmap $host $v { default m; }")
        #expect(t2.maps.filter { $0.variable == "v" }.count == 1 && t2.maps.first { $0.variable == "v" }?.geo == nil)
    }

    @Test(arguments: [
        ("1.2.3.4", "1.2.3.4"), ("01.2.3.4", "1.2.3.4"), ("1..2.3", "1.0.2.3"), ("1.2.3", nil), ("1.2.3.4.5", nil),
        ("1.2.3.256", nil), ("255.255.255.255", nil), ("1.2.3.4 ", nil),
    ] as [(String, String?)])
    func ipv4LiteralsReadAsNginxsInetAddr(_ text: String, _ expected: String?) {
        let v = GeoBlock.inetAddr(Array(text.utf8)[...])
        #expect(v.map { "\($0 >> 24).\($0 >> 16 & 255).\($0 >> 8 & 255).\($0 & 255)" } == expected)
    }
}
