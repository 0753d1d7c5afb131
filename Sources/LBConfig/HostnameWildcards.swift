/// The wildcard keys of a `map` with `hostnames`, as nginx's combined hash
/// (`ngx_hash_add_key` with `NGX_HASH_WILDCARD_KEY`, `ngx_hash_find_combined`):
///
/// - `*.example.com` matches every name under example.com, not example.com itself;
/// - `.example.com` matches example.com and every name under it;
/// - `www.example.*` matches www.example. followed by anything.
///
/// A name is looked up as an exact key first, then among the leading wildcards (the longest
/// suffix that has a value wins), then among the trailing ones (the longest prefix). Keys and
/// names are compared without ASCII case; the map drops one trailing dot of the name.
public struct HostnameWildcards: Sendable {
    struct Node: Sendable {
        var value: Template?
        /// `*.example.com`: the node's value is not for example.com itself.
        var starOnly = false
        var children: [String: Int] = [:]
    }

    /// Tries of labels: leading wildcards right to left, trailing ones left to right (index 0 the root).
    var head: [Node] = [Node()]
    var tail: [Node] = [Node()]
    /// Names whose exact key `.example.com` takes (nginx: another key `example.com` conflicts).
    var reservedExact: Set<String> = []
    /// Wildcards already added (nginx's conflict check: `*.example.com` and `.example.com`
    /// are the same key; `www.example.*` another kind).
    var headNames: Set<String> = []
    var tailNames: Set<String> = []

    public init() {}

    public var isEmpty: Bool { head.count == 1 && tail.count == 1 }

    public enum Added: Equatable {
        /// Not a wildcard: the caller adds it as an exact key (lowercased), checking `conflicts`.
        case exact(String)
        case added
        /// nginx: `invalid hostname or wildcard "KEY"`.
        case invalid
        /// nginx: `conflicting parameter "KEY"` (the key lowercased).
        case conflict(String)
    }

    /// Whether an exact key conflicts with one a `.example.com` key took.
    public func conflicts(exact key: String) -> Bool { reservedExact.contains(key) }

    /// Adds a key of a `hostnames` map (its `\` escape already dropped).
    public mutating func add(_ key: String, _ value: Template, exact: [String: Template]) -> Added {
        let b = Array(key.utf8)
        var stars = 0
        for (i, c) in b.enumerated() {
            if c == UInt8(ascii: "*") { stars += 1; if stars > 1 { return .invalid } }
            if c == UInt8(ascii: "."), i + 1 < b.count, b[i + 1] == UInt8(ascii: ".") { return .invalid }
            if c == 0 { return .invalid }
        }
        let low = String(decoding: b.map { $0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0 }, as: UTF8.self)
        if b.count > 1 && b[0] == UInt8(ascii: ".") {
            let name = String(low.dropFirst())
            if exact[name] != nil || reservedExact.contains(name) { return .conflict(low) }
            reservedExact.insert(name)
            return addHead(name, starOnly: false, value, shown: low)
        }
        if b.count > 2 {
            if b[0] == UInt8(ascii: "*") && b[1] == UInt8(ascii: ".") {
                return addHead(String(low.dropFirst(2)), starOnly: true, value, shown: low)
            }
            if b[b.count - 2] == UInt8(ascii: ".") && b[b.count - 1] == UInt8(ascii: "*") {
                let name = String(low.dropLast(2))
                guard tailNames.insert(name).inserted else { return .conflict(low) }
                var node = 0
                for label in name.split(separator: ".", omittingEmptySubsequences: false) {
                    node = child(of: node, String(label), in: &tail)
                }
                tail[node].value = value
                return .added
            }
        }
        if stars > 0 { return .invalid }
        return .exact(low)
    }

    private mutating func addHead(_ name: String, starOnly: Bool, _ value: Template, shown: String) -> Added {
        guard headNames.insert(name).inserted else { return .conflict(shown) }
        var node = 0
        for label in name.split(separator: ".", omittingEmptySubsequences: false).reversed() {
            node = child(of: node, String(label), in: &head)
        }
        head[node].value = value
        head[node].starOnly = starOnly
        return .added
    }

    private func child(of node: Int, _ label: String, in trie: inout [Node]) -> Int {
        if let c = trie[node].children[label] { return c }
        trie.append(Node())
        trie[node].children[label] = trie.count - 1
        return trie.count - 1
    }

    /// The value of the wildcard matching a (lowercased) name: leading wildcards, then trailing.
    public func find(_ name: Substring) -> Template? {
        if name.isEmpty { return nil }
        return findHead(0, name) ?? findTail(0, name)
    }

    /// nginx's `ngx_hash_find_wc_head`: the last label picks a child; a name with labels left
    /// goes on below it (falling back to the child's own value), a name used up takes the child's
    /// value unless that is a `*.` key's.
    private func findHead(_ node: Int, _ name: Substring) -> Template? {
        let dot = name.lastIndex(of: ".")
        let label = dot.map { name[name.index(after: $0)...] } ?? name
        guard let c = head[node].children[String(label)] else { return head[node].value }
        guard let dot else { return head[c].starOnly ? nil : head[c].value }
        return findHead(c, name[..<dot]) ?? head[c].value
    }

    /// nginx's `ngx_hash_find_wc_tail`: the first label picks a child; a name without a further
    /// label matches nothing at that level.
    private func findTail(_ node: Int, _ name: Substring) -> Template? {
        guard let dot = name.firstIndex(of: ".") else { return nil }
        guard let c = tail[node].children[String(name[..<dot])] else { return tail[node].value }
        if tail[c].children.isEmpty { return tail[c].value }
        return findTail(c, name[name.index(after: dot)...]) ?? tail[c].value
    }
}
