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

    // Frozen form for lookups: plain arrays of integers, no nested arrays to retain.
    var labelBytes: [UInt8] = []
    var flat: [FlatNode] = []
    var edgeBytes: [UInt8] = []
    var edgeNodes: [Int32] = []

    struct FlatNode: Sendable {
        var labelStart: Int32
        var labelCount: Int32
        var value: Int32
        var edgeStart: Int32
        var edgeCount: Int32
    }

    /// Builds the lookup form; call after the last insert.
    public mutating func freeze() {
        labelBytes = []
        flat = []
        edgeBytes = []
        edgeNodes = []
        flat.reserveCapacity(nodes.count)
        for n in nodes {
            flat.append(FlatNode(labelStart: Int32(labelBytes.count), labelCount: Int32(n.label.count), value: n.value,
                                 edgeStart: Int32(edgeBytes.count), edgeCount: Int32(n.children.count)))
            labelBytes += n.label
            edgeBytes += n.firstBytes
            edgeNodes += n.children
        }
    }

    /// The value of the longest stored prefix of `key` (after `freeze`).
    public func longestPrefix(_ key: UnsafeRawBufferPointer) -> Int? {
        precondition(flat.count == nodes.count, "PrefixTrie.freeze() was not called")
        return flat.withUnsafeBufferPointer { fl in
            labelBytes.withUnsafeBufferPointer { lb in
                edgeBytes.withUnsafeBufferPointer { eb in
                    edgeNodes.withUnsafeBufferPointer { en in
                        var best = fl[0].value
                        var n = 0
                        var i = 0
                        let count = key.count
                        outer: while i < count {
                            let b = key[i]
                            let node = fl[n]
                            var lo = Int(node.edgeStart), hi = lo + Int(node.edgeCount) - 1
                            var child = -1
                            while lo <= hi {
                                let mid = (lo + hi) >> 1
                                let e = eb[mid]
                                if e == b { child = Int(en[mid]); break }
                                if e < b { lo = mid + 1 } else { hi = mid - 1 }
                            }
                            if child < 0 { break }
                            let c = fl[child]
                            let len = Int(c.labelCount)
                            if count - i < len { break }
                            let start = Int(c.labelStart)
                            var j = 1
                            while j < len {
                                if lb[start + j] != key[i + j] { break outer }
                                j += 1
                            }
                            i += len
                            n = child
                            if c.value >= 0 { best = c.value }
                        }
                        return best >= 0 ? Int(best) : nil
                    }
                }
            }
        }
    }
}

/// The locations of one level (a server, or the nested locations of a location), searched in
/// nginx's order: exact match; else the longest prefix (searching its nested locations); unless
/// that prefix is `^~`, the regexes in config order (first match wins, with its nested search).
///
/// A class: filled while the configuration is built (`add`, `freeze`), then only read, by every
/// worker. As a struct it was copied (its four storages retained and released) at each use
/// through a `Location` or `VirtualServer`: ≈30 reference counts per request.
public final class LocationTree: @unchecked Sendable {
    // Written only while the configuration is built (and by `Location.deinit`): no dynamic
    // exclusivity checks on the request path.
    @exclusivity(unchecked) public internal(set) var locations: [Location] = []
    @exclusivity(unchecked) var exact: [[UInt8]: Int] = [:]
    @exclusivity(unchecked) var prefixes = PrefixTrie()
    @exclusivity(unchecked) var regexes: [Int] = []
    /// Whether any location here redirects its slashless form (skip the check otherwise).
    @exclusivity(unchecked) var hasAutoRedirect = false

    public init() {}

    public var isEmpty: Bool { locations.isEmpty }

    /// Prepares the prefix trie for lookups; call after the last `add`.
    func freeze() { prefixes.freeze() }

    /// Adds a location; returns false if the same exact or prefix location already exists.
    func add(_ loc: Location) -> Bool {
        let i = locations.count
        switch loc.match {
        case .exact(let s):
            let k = Array(s.utf8)
            if exact[k] != nil { return false }
            exact[k] = i
        case .prefix(let s), .prefixNoRegex(let s):
            if prefixes.insert(Array(s.utf8), value: i) != nil { return false }
            if loc.autoRedirect { hasAutoRedirect = true }
        case .regex:
            regexes.append(i)
        case .named:
            break
        }
        locations.append(loc)
        return true
    }

    /// Finds the location for a normalized URI path. `final` is true for exact and regex matches.
    ///
    /// nginx searches nested locations recursively; nesting has no small bound here, so the levels
    /// are walked with loops: down the longest prefixes, then the regexes from the deepest level up.
    public func find(_ uri: UnsafeRawBufferPointer) -> (location: Location?, final: Bool) {
        find(uri, observer: NoLocationObserver())
    }

    /// `find`, telling `trace` each step (`lb --explain`).
    public func find(_ uri: UnsafeRawBufferPointer, trace: RouteRecorder) -> (location: Location?, final: Bool) {
        let r = find(uri, observer: trace)
        trace.record(.chosen(r.location))
        return r
    }

    private func find<O: LocationObserver>(_ uri: UnsafeRawBufferPointer, observer: O) -> (location: Location?, final: Bool) {
        var outcome = search(uri, observer, level: nil)
        // A regex location with nested ones: its nested result, or itself.
        var regexOwner: Location? = nil
        while case .regexWithNested(let r) = outcome {
            regexOwner = r
            outcome = r.nested.search(uri, observer, level: r)
        }
        guard case .found(let location, let final) = outcome else { return (nil, false) }
        if let regexOwner { return (location ?? regexOwner, true) }
        return (location, final)
    }

    private enum Outcome {
        case found(Location?, final: Bool)
        /// A regex matched whose nested locations must be searched in turn.
        case regexWithNested(Location)
    }

    /// One search from this level down through the longest prefixes' nested levels.
    private func search<O: LocationObserver>(_ uri: UnsafeRawBufferPointer, _ observer: O, level: Location?) -> Outcome {
        observer.event(.searchLevel(parent: level))
        if !exact.isEmpty, let e = exact[Array(uri)] {
            observer.event(.exactMatch(locations[e]))
            return .found(locations[e], final: true)
        }
        var current: Location? = nil
        var regexesHere = !regexes.isEmpty
        var next: Location? = nil
        if let p = prefixes.longestPrefix(uri) {
            let loc = locations[p]
            current = loc
            if case .prefixNoRegex = loc.match {
                if regexesHere { observer.event(.regexesSkipped(level: level, because: loc)) }
                regexesHere = false
            }
            if !loc.nested.isEmpty { next = loc }
        }
        observer.event(.longestPrefix(current, level: level))
        // Prefix locations whose nested level has regexes to try, outermost first.
        var regexLevels: [Location] = []
        while let parent = next {
            next = nil
            observer.event(.searchLevel(parent: parent))
            if !parent.nested.exact.isEmpty, let e = parent.nested.exact[Array(uri)] {
                observer.event(.exactMatch(parent.nested.locations[e]))
                return .found(parent.nested.locations[e], final: true)
            }
            var tryRegexes = !parent.nested.regexes.isEmpty
            var longest: Location? = nil
            if let p = parent.nested.prefixes.longestPrefix(uri) {
                let loc = parent.nested.locations[p]
                current = loc
                longest = loc
                if case .prefixNoRegex = loc.match {
                    if tryRegexes { observer.event(.regexesSkipped(level: parent, because: loc)) }
                    tryRegexes = false
                }
                if !loc.nested.isEmpty { next = loc }
            }
            observer.event(.longestPrefix(longest, level: parent))
            if tryRegexes { regexLevels.append(parent) }
        }
        for parent in regexLevels.reversed() {
            if let r = parent.nested.firstRegex(uri, observer) { return r.nested.isEmpty ? .found(r, final: true) : .regexWithNested(r) }
        }
        if regexesHere, let r = firstRegex(uri, observer) { return r.nested.isEmpty ? .found(r, final: true) : .regexWithNested(r) }
        return .found(current, final: false)
    }

    /// The first regex location of this level (config order) matching `uri`.
    private func firstRegex<O: LocationObserver>(_ uri: UnsafeRawBufferPointer, _ observer: O) -> Location? {
        for r in regexes {
            let loc = locations[r]
            let matched = loc.regex?.matches(uri) == true
            observer.event(.regexTried(loc, matched: matched))
            if matched { return loc }
        }
        return nil
    }

    /// nginx's auto redirect: a prefix location `/p/` with proxy_pass, requested as `/p`.
    public func autoRedirect(_ uri: UnsafeRawBufferPointer) -> Location? {
        guard hasAutoRedirect, uri.count > 0 else { return nil }
        var key = Array(uri)
        if !exact.isEmpty && exact[key] != nil { return nil }
        key.append(UInt8(ascii: "/"))
        guard let i = key.withUnsafeBytes({ prefixes.longestPrefix($0) }), locations[i].autoRedirect,
              locations[i].pattern.utf8.count == key.count else { return nil }
        return locations[i]
    }

    public func find(_ uri: String) -> Location? {
        var u = uri
        return u.withUTF8 { find(UnsafeRawBufferPointer($0)).location }
    }

    /// Every location of this level and below, depth first.
    public var all: [Location] {
        var out: [Location] = []
        var pending = Array(locations.reversed())
        while let l = pending.popLast() {
            out.append(l)
            pending.append(contentsOf: l.nested.locations.reversed())
        }
        return out
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
    public func find(_ host: String) -> Int? { lookup(host)?.server }

    /// The server for a lowercased host without port, and which kind of name matched.
    public func lookup(_ host: String) -> (server: Int, match: ServerNameMatch)? {
        if let i = exact[host] { return (i, .exact(host)) }
        if !leading.isEmpty {
            var idx = host.startIndex
            while let dot = host[idx...].firstIndex(of: ".") {
                let key = String(host[dot...])
                if let i = leading[key] { return (i, .leadingWildcard(key)) }
                idx = host.index(after: dot)
            }
        }
        if !trailing.isEmpty {
            var end = host.endIndex
            while let dot = host[..<end].lastIndex(of: ".") {
                let key = String(host[...dot])
                if let i = trailing[key] { return (i, .trailingWildcard(key)) }
                end = dot
            }
        }
        for (re, i) in regexes where re.matches(host) { return (i, .regex(re.pattern)) }
        return nil
    }
}
