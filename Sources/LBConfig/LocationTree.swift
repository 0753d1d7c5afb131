/// A compressed byte trie mapping prefixes to values; `longestPrefix` walks the key once,
/// so lookup cost depends on the URI's length, not on the number of prefixes.
public struct PrefixTrie: Sendable {
    struct Node: Sendable {
        var label: [UInt8]
        var value: Int32 = -1
        var firstBytes: [UInt8] = []
        var children: [Int32] = []
    }

    var nodes: [Node] = [Node(label: [])]

    public init() {}

    public var isEmpty: Bool { nodes.count == 1 && nodes[0].value < 0 }

    /// Inserts a prefix; returns the previous value if the exact prefix was present.
    @discardableResult
    public mutating func insert(_ key: [UInt8], value: Int) -> Int? {
        var n = 0
        var i = 0
        while true {
            if i == key.count {
                let old = nodes[n].value
                nodes[n].value = Int32(value)
                return old >= 0 ? Int(old) : nil
            }
            let b = key[i]
            guard let slot = childSlot(n, b) else {
                let new = Int32(nodes.count)
                nodes.append(Node(label: Array(key[i...]), value: Int32(value)))
                let at = nodes[n].firstBytes.firstIndex(where: { $0 > b }) ?? nodes[n].firstBytes.count
                nodes[n].firstBytes.insert(b, at: at)
                nodes[n].children.insert(new, at: at)
                return nil
            }
            let c = Int(nodes[n].children[slot])
            let label = nodes[c].label
            var j = 0
            while j < label.count && i + j < key.count && label[j] == key[i + j] { j += 1 }
            if j == label.count {
                n = c
                i += j
                continue
            }
            // Split the child at j.
            let tail = Node(label: Array(label[j...]), value: nodes[c].value, firstBytes: nodes[c].firstBytes, children: nodes[c].children)
            let tailIndex = Int32(nodes.count)
            nodes.append(tail)
            nodes[c].label = Array(label[..<j])
            nodes[c].value = -1
            nodes[c].firstBytes = [label[j]]
            nodes[c].children = [tailIndex]
            n = c
            i += j
        }
    }

    private func childSlot(_ n: Int, _ b: UInt8) -> Int? {
        let fb = nodes[n].firstBytes
        var lo = 0, hi = fb.count - 1
        while lo <= hi {
            let mid = (lo + hi) >> 1
            if fb[mid] == b { return mid }
            if fb[mid] < b { lo = mid + 1 } else { hi = mid - 1 }
        }
        return nil
    }

    /// The value of the longest stored prefix of `key`.
    public func longestPrefix(_ key: UnsafeRawBufferPointer) -> Int? {
        var best: Int32 = nodes[0].value
        var n = 0
        var i = 0
        while i < key.count {
            guard let slot = childSlot(n, key[i]) else { break }
            let c = Int(nodes[n].children[slot])
            let label = nodes[c].label
            if key.count - i < label.count { break }
            var same = true
            label.withUnsafeBufferPointer { lb in
                for j in 1..<max(lb.count, 1) where j < lb.count {
                    if lb[j] != key[i + j] { same = false; break }
                }
            }
            if !same { break }
            i += label.count
            n = c
            if nodes[c].value >= 0 { best = nodes[c].value }
        }
        return best >= 0 ? Int(best) : nil
    }
}

/// The locations of one level (a server, or the nested locations of a location), searched in
/// nginx's order: exact match; else the longest prefix (searching its nested locations); unless
/// that prefix is `^~`, the regexes in config order (first match wins, with its nested search).
public struct LocationTree: Sendable {
    public var locations: [Location] = []
    var exact: [[UInt8]: Int] = [:]
    var prefixes = PrefixTrie()
    var regexes: [Int] = []

    public init() {}

    public var isEmpty: Bool { locations.isEmpty }

    /// Adds a location; returns false if the same exact or prefix location already exists.
    mutating func add(_ loc: Location) -> Bool {
        let i = locations.count
        switch loc.match {
        case .exact(let s):
            let k = Array(s.utf8)
            if exact[k] != nil { return false }
            exact[k] = i
        case .prefix(let s), .prefixNoRegex(let s):
            if prefixes.insert(Array(s.utf8), value: i) != nil { return false }
        case .regex:
            regexes.append(i)
        case .named:
            break
        }
        locations.append(loc)
        return true
    }

    /// Finds the location for a normalized URI path. `final` is true for exact and regex matches.
    public func find(_ uri: UnsafeRawBufferPointer) -> (location: Location?, final: Bool) {
        if !exact.isEmpty, let e = exact[Array(uri)] { return (locations[e], true) }
        var current: Location? = nil
        var noRegex = false
        if let p = prefixes.longestPrefix(uri) {
            let loc = locations[p]
            current = loc
            if case .prefixNoRegex = loc.match { noRegex = true }
            if !loc.nested.isEmpty {
                let (n, final) = loc.nested.find(uri)
                if let n { current = n }
                if final { return (current, true) }
            }
        }
        if !noRegex {
            for r in regexes {
                let loc = locations[r]
                if loc.regex?.matches(uri) == true {
                    if !loc.nested.isEmpty, let n = loc.nested.find(uri).location { return (n, true) }
                    return (loc, true)
                }
            }
        }
        return (current, false)
    }

    public func find(_ uri: String) -> Location? {
        var u = uri
        return u.withUTF8 { find(UnsafeRawBufferPointer($0)).location }
    }

    /// Every location of this level and below, depth first.
    public var all: [Location] {
        locations.flatMap { [$0] + $0.nested.all }
    }
}

/// Name lookup for the servers on one listener (nginx's server_name rules).
public struct ServerNameTable: Sendable {
    var exact: [String: Int] = [:]
    /// `*.example.com` and `.example.com` stored as `.example.com`.
    var leading: [String: Int] = [:]
    /// `www.example.*` stored as `www.example.`.
    var trailing: [String: Int] = [:]
    var regexes: [(PCRE, Int)] = []

    init() {}

    mutating func add(_ rawName: String, server: Int) throws(ConfigError) {
        let name = rawName.lowercased()
        if name.hasPrefix("~") {
            let re = try PCRE(String(rawName.dropFirst()), caseless: true)
            regexes.append((re, server))
        } else if name.hasPrefix("*.") {
            if leading[String(name.dropFirst())] == nil { leading[String(name.dropFirst())] = server }
        } else if name.hasPrefix(".") {
            if leading[name] == nil { leading[name] = server }
            if exact[String(name.dropFirst())] == nil { exact[String(name.dropFirst())] = server }
        } else if name.hasSuffix(".*") {
            if trailing[String(name.dropLast())] == nil { trailing[String(name.dropLast())] = server }
        } else if name.contains("*") {
            throw ConfigError("invalid server name or wildcard \"\(rawName)\"")
        } else {
            if exact[name] == nil { exact[name] = server }
        }
    }

    /// The server for a lowercased host without port.
    public func find(_ host: String) -> Int? {
        if let i = exact[host] { return i }
        if !leading.isEmpty {
            var idx = host.startIndex
            while let dot = host[idx...].firstIndex(of: ".") {
                if let i = leading[String(host[dot...])] { return i }
                idx = host.index(after: dot)
            }
        }
        if !trailing.isEmpty {
            var end = host.endIndex
            while let dot = host[..<end].lastIndex(of: ".") {
                if let i = trailing[String(host[...dot])] { return i }
                end = dot
            }
        }
        for (re, i) in regexes where re.matches(host) { return i }
        return nil
    }
}
