/// Data commands. Each checks its arity as Redis does (`ERR wrong number of arguments for 'x'
/// command`), answers in Redis's words, and reports what the append-only file must record.
extension Keyspace {
    /// Runs a data command; nil when `name` is not one (the server handles the rest).
    public mutating func execute(_ args: [[UInt8]], now: Int64) -> Outcome? {
        var o = Outcome()
        execute(args, name: Keyspace.upper(args[0]), now: now, into: &o)
        return o.handled ? o : nil
    }

    /// Runs a data command into `o` (reply appended); `o.handled` is false when `name` is not one.
    public mutating func execute(_ args: [[UInt8]], name: String, now: Int64, into o: inout Outcome) {
        let n = args.count
        stats.commands += 1
        o.handled = true
        switch name {
        // MARK: strings
        case "GET":
            guard n == 2 else { o.arity(args[0]); return }
            switch live(args[1], now)?.value {
            case .string(let v)?: stats.hits += 1; o.reply.bulk(v)
            case nil: stats.misses += 1; o.reply.null()
            default: o.reply.error(Keyspace.wrongType)
            }
        case "SET":
            guard n >= 3 else { o.arity(args[0]); return }
            var nx = false, xx = false, get = false, keep = false
            var expireAt: Int64 = 0
            var i = 3
            while i < n {
                let opt = Keyspace.upper(args[i])
                switch opt {
                case "NX": nx = true
                case "XX": xx = true
                case "GET": get = true
                case "KEEPTTL": keep = true
                case "EX", "PX", "EXAT", "PXAT":
                    guard i + 1 < n, let v = Keyspace.int(args[i + 1]) else { o.reply.error(i + 1 < n ? Keyspace.notInteger : Keyspace.syntax); return }
                    guard v > 0 else { o.reply.error("ERR invalid expire time in 'set' command"); return }
                    switch opt {
                    case "EX": expireAt = now + Int64(v) * 1000
                    case "PX": expireAt = now + Int64(v)
                    case "EXAT": expireAt = Int64(v) * 1000
                    default: expireAt = Int64(v)
                    }
                    i += 1
                default:
                    o.reply.error(Keyspace.syntax)
                    return
                }
                i += 1
            }
            if (nx && xx) || (keep && expireAt != 0) { o.reply.error(Keyspace.syntax); return }
            let old = live(args[1], now)
            var oldValue: [UInt8]? = nil
            if get, let old {
                guard case .string(let v) = old.value else { o.reply.error(Keyspace.wrongType); return }
                oldValue = v
            }
            if (nx && old != nil) || (xx && old == nil) {
                if get { if let oldValue { o.reply.bulk(oldValue) } else { o.reply.null() } } else { o.reply.null() }
                return
            }
            put(args[1], .string(args[2]), keepTTL: keep)
            if expireAt != 0 { setExpire(args[1], expireAt) }
            if n == 3 { o.logAsReceived = true } else { o.log.append([Keyspace.setName, args[1], args[2]] + (keep ? [Array("KEEPTTL".utf8)] : [])) }
            if expireAt != 0 { o.log.append([Array("PEXPIREAT".utf8), args[1], Array("\(expireAt)".utf8)]) }
            if get { if let oldValue { o.reply.bulk(oldValue) } else { o.reply.null() } } else { o.reply.ok() }
        case "SETNX":
            guard n == 3 else { o.arity(args[0]); return }
            if live(args[1], now) != nil { o.reply.integer(0) } else {
                put(args[1], .string(args[2]))
                o.logAsReceived = true
                o.reply.integer(1)
            }
        case "GETSET":
            guard n == 3 else { o.arity(args[0]); return }
            let old = live(args[1], now)
            if let old, case .string(let v) = old.value { o.reply.bulk(v) } else if old == nil { o.reply.null() } else { o.reply.error(Keyspace.wrongType); return }
            put(args[1], .string(args[2]))
            o.logAsReceived = true
        case "MGET":
            guard n >= 2 else { o.arity(args[0]); return }
            o.reply.arrayHeader(n - 1)
            for k in args[1...] {
                if case .string(let v)? = live(k, now)?.value { o.reply.bulk(v) } else { o.reply.null() }
            }
        case "MSET":
            guard n >= 3 && n % 2 == 1 else { o.arity(args[0]); return }
            for i in stride(from: 1, to: n, by: 2) { put(args[i], .string(args[i + 1])) }
            o.logAsReceived = true
            o.reply.ok()
        case "INCR", "DECR", "INCRBY", "DECRBY":
            let by = name.utf8.count > 4
            guard n == (by ? 3 : 2) else { o.arity(args[0]); return }
            var delta = name.utf8.first == UInt8(ascii: "D") ? -1 : 1
            if by {
                guard let d = Keyspace.int(args[2]) else { o.reply.error(Keyspace.notInteger); return }
                delta *= d
            }
            // One hash lookup: read, check expiry and type, and write back through the index.
            let key = Key(args[1])
            var slot = entries.index(forKey: key)
            if let i = slot, entries.values[i].expireAt != 0, entries.values[i].expireAt <= now {
                entries.remove(at: i)
                volatile.remove(key)
                stats.expired += 1
                slot = nil
            }
            var cur = 0
            if let i = slot {
                guard case .string(let v) = entries.values[i].value else { o.reply.error(Keyspace.wrongType); return }
                guard let c = Keyspace.int(v) else { o.reply.error(Keyspace.notInteger); return }
                cur = c
            }
            let (r, overflow) = cur.addingReportingOverflow(delta)
            if overflow { o.reply.error("ERR increment or decrement would overflow"); return }
            if let i = slot {
                entries.values[i].value = .string(Keyspace.digits(r))
            } else {
                entries[key] = Entry(value: .string(Keyspace.digits(r)), expireAt: 0)
            }
            o.logAsReceived = true
            o.reply.integer(r)
        case "APPEND":
            guard n == 3 else { o.arity(args[0]); return }
            var v: [UInt8] = []
            if let e = live(args[1], now) {
                guard case .string(let s) = e.value else { o.reply.error(Keyspace.wrongType); return }
                v = s
            }
            v += args[2]
            put(args[1], .string(v), keepTTL: true)
            o.logAsReceived = true
            o.reply.integer(v.count)
        case "STRLEN":
            guard n == 2 else { o.arity(args[0]); return }
            switch live(args[1], now)?.value {
            case .string(let v)?: o.reply.integer(v.count)
            case nil: o.reply.integer(0)
            default: o.reply.error(Keyspace.wrongType)
            }
        // MARK: keys
        case "DEL", "UNLINK":
            guard n >= 2 else { o.arity(args[0]); return }
            var c = 0
            for k in args[1...] where live(k, now) != nil { if remove(k) { c += 1 } }
            if c > 0 { o.logAsReceived = true }
            o.reply.integer(c)
        case "EXISTS":
            guard n >= 2 else { o.arity(args[0]); return }
            o.reply.integer(args[1...].filter { live($0, now) != nil }.count)
        case "EXPIRE", "PEXPIRE", "EXPIREAT", "PEXPIREAT":
            guard n >= 3 else { o.arity(args[0]); return }
            guard let v = Keyspace.int(args[2]) else { o.reply.error(Keyspace.notInteger); return }
            guard live(args[1], now) != nil else { o.reply.integer(0); return }
            let at: Int64
            switch name {
            case "EXPIRE": at = now + Int64(v) * 1000
            case "PEXPIRE": at = now + Int64(v)
            case "EXPIREAT": at = Int64(v) * 1000
            default: at = Int64(v)
            }
            if at <= now {
                _ = remove(args[1])
                o.log.append([Array("DEL".utf8), args[1]])
            } else {
                setExpire(args[1], at)
                o.log.append([Array("PEXPIREAT".utf8), args[1], Array("\(at)".utf8)])
            }
            o.reply.integer(1)
        case "PERSIST":
            guard n == 2 else { o.arity(args[0]); return }
            if let e = live(args[1], now), e.expireAt != 0 {
                setExpire(args[1], 0)
                o.logAsReceived = true
                o.reply.integer(1)
            } else { o.reply.integer(0) }
        case "TTL", "PTTL":
            guard n == 2 else { o.arity(args[0]); return }
            guard let e = live(args[1], now) else { o.reply.integer(-2); return }
            if e.expireAt == 0 { o.reply.integer(-1); return }
            let ms = e.expireAt - now
            o.reply.integer(name == "TTL" ? Int((ms + 500) / 1000) : Int(ms))
        case "TYPE":
            guard n == 2 else { o.arity(args[0]); return }
            o.reply.simple(live(args[1], now)?.value.typeName ?? "none")
        case "KEYS":
            guard n == 2 else { o.arity(args[0]); return }
            o.reply.array(keys(matching: args[1], now: now))
        case "SCAN":
            guard n >= 2 else { o.arity(args[0]); return }
            guard let cursor = Keyspace.int(args[1]), cursor >= 0 else { o.reply.error("ERR invalid cursor"); return }
            var pattern: [UInt8] = [UInt8(ascii: "*")]
            var countHint = 10
            var typeFilter: String? = nil
            var i = 2
            while i + 1 < n {
                switch Keyspace.upper(args[i]) {
                case "MATCH": pattern = args[i + 1]
                case "COUNT":
                    guard let c = Keyspace.int(args[i + 1]), c > 0 else { o.reply.error(Keyspace.notInteger); return }
                    countHint = c
                case "TYPE": typeFilter = String(decoding: args[i + 1], as: UTF8.self).lowercased()
                default: o.reply.error(Keyspace.syntax); return
                }
                i += 2
            }
            if i != n { o.reply.error(Keyspace.syntax); return }
            // Sorted key order makes the cursor an index that survives unrelated inserts reasonably.
            let all = entries.keys.map(\.bytes).sorted { $0.lexicographicallyPrecedes($1) }
            let end = min(all.count, cursor + countHint)
            var out: [[UInt8]] = []
            if cursor < all.count {
                for k in all[cursor..<end] {
                    guard let e = live(k, now), Keyspace.glob(pattern[...], k[...]) else { continue }
                    if let t = typeFilter, e.value.typeName != t { continue }
                    out.append(k)
                }
            }
            o.reply.arrayHeader(2)
            o.reply.bulk(Array(String(end >= all.count ? 0 : end).utf8))
            o.reply.array(out)
        case "DBSIZE":
            guard n == 1 else { o.arity(args[0]); return }
            o.reply.integer(entries.count)
        case "FLUSHDB", "FLUSHALL":
            entries.removeAll()
            volatile.removeAll()
            o.logAsReceived = true
            o.reply.ok()
        // MARK: hashes
        case "HSET", "HMSET":
            guard n >= 4 && n % 2 == 0 else { o.arity(args[0]); return }
            var h: [[UInt8]: [UInt8]] = [:]
            if let e = live(args[1], now) {
                guard case .hash(let x) = e.value else { o.reply.error(Keyspace.wrongType); return }
                h = x
            }
            var added = 0
            for i in stride(from: 2, to: n, by: 2) {
                if h.updateValue(args[i + 1], forKey: args[i]) == nil { added += 1 }
            }
            put(args[1], .hash(h), keepTTL: true)
            o.logAsReceived = true
            if name == "HMSET" { o.reply.ok() } else { o.reply.integer(added) }
        case "HGET":
            guard n == 3 else { o.arity(args[0]); return }
            switch live(args[1], now)?.value {
            case .hash(let h)?: if let v = h[args[2]] { o.reply.bulk(v) } else { o.reply.null() }
            case nil: o.reply.null()
            default: o.reply.error(Keyspace.wrongType)
            }
        case "HMGET":
            guard n >= 3 else { o.arity(args[0]); return }
            var h: [[UInt8]: [UInt8]] = [:]
            if let e = live(args[1], now) {
                guard case .hash(let x) = e.value else { o.reply.error(Keyspace.wrongType); return }
                h = x
            }
            o.reply.arrayHeader(n - 2)
            for f in args[2...] { if let v = h[f] { o.reply.bulk(v) } else { o.reply.null() } }
        case "HGETALL":
            guard n == 2 else { o.arity(args[0]); return }
            switch live(args[1], now)?.value {
            case .hash(let h)?:
                o.reply.arrayHeader(h.count * 2)
                for (k, v) in h.sorted(by: { $0.key.lexicographicallyPrecedes($1.key) }) { o.reply.bulk(k); o.reply.bulk(v) }
            case nil: o.reply.arrayHeader(0)
            default: o.reply.error(Keyspace.wrongType)
            }
        case "HDEL":
            guard n >= 3 else { o.arity(args[0]); return }
            guard let e = live(args[1], now) else { o.reply.integer(0); return }
            guard case .hash(var h) = e.value else { o.reply.error(Keyspace.wrongType); return }
            var c = 0
            for f in args[2...] where h.removeValue(forKey: f) != nil { c += 1 }
            if h.isEmpty { _ = remove(args[1]) } else { put(args[1], .hash(h), keepTTL: true) }
            if c > 0 { o.logAsReceived = true }
            o.reply.integer(c)
        case "HINCRBY":
            guard n == 4 else { o.arity(args[0]); return }
            guard let d = Keyspace.int(args[3]) else { o.reply.error(Keyspace.notInteger); return }
            var h: [[UInt8]: [UInt8]] = [:]
            if let e = live(args[1], now) {
                guard case .hash(let x) = e.value else { o.reply.error(Keyspace.wrongType); return }
                h = x
            }
            var cur = 0
            if let v = h[args[2]] {
                guard let c = Keyspace.int(v) else { o.reply.error("ERR hash value is not an integer"); return }
                cur = c
            }
            let (r, ov) = cur.addingReportingOverflow(d)
            if ov { o.reply.error("ERR increment or decrement would overflow"); return }
            h[args[2]] = Keyspace.digits(r)
            put(args[1], .hash(h), keepTTL: true)
            o.logAsReceived = true
            o.reply.integer(r)
        case "HLEN":
            guard n == 2 else { o.arity(args[0]); return }
            switch live(args[1], now)?.value {
            case .hash(let h)?: o.reply.integer(h.count)
            case nil: o.reply.integer(0)
            default: o.reply.error(Keyspace.wrongType)
            }
        // MARK: lists
        case "LPUSH", "RPUSH":
            guard n >= 3 else { o.arity(args[0]); return }
            var l: [[UInt8]] = []
            if let e = live(args[1], now) {
                guard case .list(let x) = e.value else { o.reply.error(Keyspace.wrongType); return }
                l = x
            }
            if name == "LPUSH" { for v in args[2...] { l.insert(v, at: 0) } } else { l.append(contentsOf: args[2...]) }
            put(args[1], .list(l), keepTTL: true)
            o.logAsReceived = true
            o.reply.integer(l.count)
        case "LPOP", "RPOP":
            guard n == 2 || n == 3 else { o.arity(args[0]); return }
            var count: Int? = nil
            if n == 3 {
                guard let c = Keyspace.int(args[2]), c >= 0 else { o.reply.error("ERR value is out of range, must be positive"); return }
                count = c
            }
            guard let e = live(args[1], now) else { if count != nil { o.reply.nullArray() } else { o.reply.null() }; return }
            guard case .list(var l) = e.value else { o.reply.error(Keyspace.wrongType); return }
            let k = min(count ?? 1, l.count)
            var popped: [[UInt8]] = []
            for _ in 0..<k { popped.append(name == "LPOP" ? l.removeFirst() : l.removeLast()) }
            if l.isEmpty { _ = remove(args[1]) } else { put(args[1], .list(l), keepTTL: true) }
            if k > 0 { o.logAsReceived = true }
            if count != nil { o.reply.array(popped) } else { o.reply.bulk(popped[0]) }
        case "LRANGE":
            guard n == 4 else { o.arity(args[0]); return }
            guard var a = Keyspace.int(args[2]), var b = Keyspace.int(args[3]) else { o.reply.error(Keyspace.notInteger); return }
            guard let e = live(args[1], now) else { o.reply.arrayHeader(0); return }
            guard case .list(let l) = e.value else { o.reply.error(Keyspace.wrongType); return }
            if a < 0 { a += l.count }
            if b < 0 { b += l.count }
            a = max(a, 0)
            b = min(b, l.count - 1)
            o.reply.array(a <= b ? Array(l[a...b]) : [])
        case "LLEN":
            guard n == 2 else { o.arity(args[0]); return }
            switch live(args[1], now)?.value {
            case .list(let l)?: o.reply.integer(l.count)
            case nil: o.reply.integer(0)
            default: o.reply.error(Keyspace.wrongType)
            }
        // MARK: sets
        case "SADD":
            guard n >= 3 else { o.arity(args[0]); return }
            var s: Set<[UInt8]> = []
            if let e = live(args[1], now) {
                guard case .set(let x) = e.value else { o.reply.error(Keyspace.wrongType); return }
                s = x
            }
            var added = 0
            for m in args[2...] where s.insert(m).inserted { added += 1 }
            put(args[1], .set(s), keepTTL: true)
            if added > 0 { o.logAsReceived = true }
            o.reply.integer(added)
        case "SREM":
            guard n >= 3 else { o.arity(args[0]); return }
            guard let e = live(args[1], now) else { o.reply.integer(0); return }
            guard case .set(var s) = e.value else { o.reply.error(Keyspace.wrongType); return }
            var c = 0
            for m in args[2...] where s.remove(m) != nil { c += 1 }
            if s.isEmpty { _ = remove(args[1]) } else { put(args[1], .set(s), keepTTL: true) }
            if c > 0 { o.logAsReceived = true }
            o.reply.integer(c)
        case "SMEMBERS":
            guard n == 2 else { o.arity(args[0]); return }
            switch live(args[1], now)?.value {
            case .set(let s)?: o.reply.array(s.sorted { $0.lexicographicallyPrecedes($1) })
            case nil: o.reply.arrayHeader(0)
            default: o.reply.error(Keyspace.wrongType)
            }
        case "SISMEMBER":
            guard n == 3 else { o.arity(args[0]); return }
            switch live(args[1], now)?.value {
            case .set(let s)?: o.reply.integer(s.contains(args[2]) ? 1 : 0)
            case nil: o.reply.integer(0)
            default: o.reply.error(Keyspace.wrongType)
            }
        case "SCARD":
            guard n == 2 else { o.arity(args[0]); return }
            switch live(args[1], now)?.value {
            case .set(let s)?: o.reply.integer(s.count)
            case nil: o.reply.integer(0)
            default: o.reply.error(Keyspace.wrongType)
            }
        default:
            stats.commands -= 1
            o.handled = false
        }
    }

    /// Commands that rebuild the keyspace (for AOF rewrite): one per key, plus expiry.
    public func dump() -> [[[UInt8]]] {
        var out: [[[UInt8]]] = []
        for (key, e) in entries {
            let k = key.bytes
            switch e.value {
            case .string(let v): out.append([Array("SET".utf8), k, v])
            case .hash(let h): out.append([Array("HSET".utf8), k] + h.flatMap { [$0.key, $0.value] })
            case .list(let l): out.append([Array("RPUSH".utf8), k] + l)
            case .set(let s): out.append([Array("SADD".utf8), k] + Array(s))
            }
            if e.expireAt != 0 { out.append([Array("PEXPIREAT".utf8), k, Array("\(e.expireAt)".utf8)]) }
        }
        return out
    }
}
