import Testing
@testable import LBConfig

/// nginx's location precedence, case by case.
@Suite struct LocationTests {
    static let config = server("""
    location = / { return 200 "exact-root"; }
    location / { return 200 "root"; }
    location /documents/ { return 200 "documents"; }
    location ^~ /images/ { return 200 "images"; }
    location ~* \\.(gif|jpg|jpeg)$ { return 200 "regex-images"; }
    location /static/ {
        location ~ \\.css$ { return 200 "nested-css"; }
        location /static/deep/ { return 200 "static-deep"; }
        return 200 "static";
    }
    location ^~ /assets/ {
        location ~ \\.js$ { return 200 "assets-js"; }
        return 200 "assets";
    }
    location ~ ^/api/(v\\d+)/ { return 200 "api-regex"; }
    location ~ ^/api/ { return 200 "api-second-regex"; }
    location /api/ { return 200 "api-prefix"; }
    location = /exact { return 200 "exact"; }
    location /exact { return 200 "exact-prefix"; }
    location @fallback { return 200 "named"; }
    """)

    static let table = try! load(config)

    func which(_ uri: String) -> String {
        guard let loc = Self.table.servers[0].locations.find(uri) else { return "none" }
        guard case .return(let r) = loc.handler, let t = r.text else { return "?" }
        return String(decoding: t.literalBytes, as: UTF8.self)
    }

    @Test(arguments: [
        ("/", "exact-root"),                         // = beats everything
        ("/index.html", "root"),                     // longest prefix is /
        ("/documents/document.html", "documents"),   // longer prefix wins
        ("/documents/1.jpg", "regex-images"),        // regex beats a plain prefix
        ("/images/1.gif", "images"),                 // ^~ stops the regex search
        ("/static/a.css", "nested-css"),             // nested regex of the matched prefix
        ("/static/deep/a.txt", "static-deep"),       // nested prefix
        ("/static/deep/a.css", "nested-css"),        // nested regex beats nested prefix
        ("/static/a.gif", "regex-images"),           // outer regex after nested search fails
        ("/assets/app.js", "assets-js"),             // ^~ does not stop nested regexes
        ("/assets/a.gif", "assets"),                 // but stops the outer ones
        ("/api/v1/users", "api-regex"),              // regexes in order of appearance
        ("/api/users", "api-second-regex"),
        ("/exact", "exact"),
        ("/exact/more", "exact-prefix"),
        ("/EXACT", "root"),                          // prefixes are case-sensitive
        ("/x.JPG", "regex-images"),                  // ~* is case-insensitive
    ])
    func precedence(_ uri: String, _ expected: String) {
        #expect(which(uri) == expected)
    }

    @Test func namedLocationsAreNotMatchedByURI() {
        #expect(Self.table.servers[0].named["fallback"] != nil)
        #expect(which("@fallback") == "none")
    }

    @Test func noLocationMeansNone() throws {
        let t = try load(server("location /a { }"))
        #expect(t.servers[0].locations.find("/b") == nil)
    }

    @Test func trieFindsLongestPrefix() {
        var trie = PrefixTrie()
        for (i, p) in ["/", "/a", "/abc", "/abd/", "/b/c/d", "/ab"].enumerated() { trie.insert(Array(p.utf8), value: i) }
        trie.freeze()
        func lp(_ s: String) -> Int? { Array(s.utf8).withUnsafeBytes { trie.longestPrefix($0) } }
        #expect(lp("/") == 0 && lp("/x") == 0 && lp("/a") == 1 && lp("/ab") == 5 && lp("/abc") == 2 && lp("/abcd") == 2)
        #expect(lp("/abd") == 5 && lp("/abd/") == 3 && lp("/b/c") == 0 && lp("/b/c/d/e") == 4 && lp("") == nil)
        #expect(trie.insert(Array("/a".utf8), value: 9) == 1)
        trie.freeze()
        #expect(lp("/a") == 9)
    }

    @Test func trieAgreesWithLinearScanOnRandomPrefixes() {
        var rng = SystemRandomNumberGenerator()
        let alphabet = Array("/ab".utf8)
        func random(_ n: Int) -> [UInt8] { (0..<n).map { _ in alphabet.randomElement(using: &rng)! } }
        var trie = PrefixTrie()
        var prefixes: [[UInt8]: Int] = [:]
        for i in 0..<300 {
            let p = random(Int.random(in: 0...8, using: &rng))
            if prefixes[p] == nil { prefixes[p] = i; trie.insert(p, value: i) }
        }
        trie.freeze()
        for _ in 0..<2000 {
            let key = random(Int.random(in: 0...10, using: &rng))
            let expected = prefixes.filter { key.starts(with: $0.key) }.max { $0.key.count < $1.key.count }?.value
            #expect(key.withUnsafeBytes { trie.longestPrefix($0) } == expected)
        }
    }
}
