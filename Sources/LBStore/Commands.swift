/// Data commands: one table row each (name, Redis's arity and flags, handler), answered in
/// Redis's words, each reporting what the append-only file must record.
extension Keyspace {
    /// A data command's meaning. `args` already satisfy the row's arity; the reply, and what the
    /// append-only file must record, go into `o`.
    public typealias Handler = @Sendable (inout Keyspace, _ args: [[UInt8]], _ now: Int64, _ o: inout Outcome) -> Void

    /// The data commands, with the arity and `write` flag of Redis 7.0's `COMMAND INFO`.
    public static let commands: [CommandSpec<Handler>] = [
        // MARK: strings
        CommandSpec("get", 2) { ks, a, now, o in ks.get(a, now, &o) },
        CommandSpec("set", -3, .write) { ks, a, now, o in ks.set(a, now, &o) },
        CommandSpec("setnx", 3, .write) { ks, a, now, o in ks.setnx(a, now, &o) },
        CommandSpec("getset", 3, .write) { ks, a, now, o in ks.getset(a, now, &o) },
        CommandSpec("mget", -2) { ks, a, now, o in ks.mget(a, now, &o) },
        CommandSpec("mset", -3, .write) { ks, a, _, o in ks.mset(a, &o) },
        CommandSpec("incr", 2, .write) { ks, a, now, o in ks.incr(a, now, &o, by: 1) },
        CommandSpec("decr", 2, .write) { ks, a, now, o in ks.incr(a, now, &o, by: -1) },
        CommandSpec("incrby", 3, .write) { ks, a, now, o in ks.incr(a, now, &o, by: 1, argument: true) },
        CommandSpec("decrby", 3, .write) { ks, a, now, o in ks.incr(a, now, &o, by: -1, argument: true) },
        CommandSpec("append", 3, .write) { ks, a, now, o in ks.append(a, now, &o) },
        CommandSpec("strlen", 2) { ks, a, now, o in ks.strlen(a, now, &o) },
        // MARK: keys
        CommandSpec("del", -2, .write) { ks, a, now, o in ks.del(a, now, &o) },
        CommandSpec("unlink", -2, .write) { ks, a, now, o in ks.del(a, now, &o) },
        CommandSpec("exists", -2) { ks, a, now, o in ks.exists(a, now, &o) },
        CommandSpec("expire", -3, .write) { ks, a, now, o in ks.expire(a, now, &o, "expire", scale: 1000, relative: true) },
        CommandSpec("pexpire", -3, .write) { ks, a, now, o in ks.expire(a, now, &o, "pexpire", scale: 1, relative: true) },
        CommandSpec("expireat", -3, .write) { ks, a, now, o in ks.expire(a, now, &o, "expireat", scale: 1000, relative: false) },
        CommandSpec("pexpireat", -3, .write) { ks, a, now, o in ks.expire(a, now, &o, "pexpireat", scale: 1, relative: false) },
        CommandSpec("persist", 2, .write) { ks, a, now, o in ks.persist(a, now, &o) },
        CommandSpec("ttl", 2) { ks, a, now, o in ks.ttl(a, now, &o, millis: false) },
        CommandSpec("pttl", 2) { ks, a, now, o in ks.ttl(a, now, &o, millis: true) },
        CommandSpec("type", 2) { ks, a, now, o in ks.type(a, now, &o) },
        CommandSpec("keys", 2) { ks, a, now, o in o.reply.array(ks.keys(matching: a[1], now: now)) },
        CommandSpec("scan", -2) { ks, a, now, o in ks.scan(a, now, &o) },
        CommandSpec("dbsize", 1) { ks, _, _, o in o.reply.integer(ks.entries.count) },
        CommandSpec("flushdb", -1, .write) { ks, a, _, o in ks.flush(a, &o) },
        CommandSpec("flushall", -1, .write) { ks, a, _, o in ks.flush(a, &o) },
        // MARK: hashes
        CommandSpec("hset", -4, .write) { ks, a, now, o in ks.hset(a, now, &o, name: "hset") },
        CommandSpec("hmset", -4, .write) { ks, a, now, o in ks.hset(a, now, &o, name: "hmset") },
        CommandSpec("hget", 3) { ks, a, now, o in ks.hget(a, now, &o) },
        CommandSpec("hmget", -3) { ks, a, now, o in ks.hmget(a, now, &o) },
        CommandSpec("hgetall", 2) { ks, a, now, o in ks.hgetall(a, now, &o) },
        CommandSpec("hdel", -3, .write) { ks, a, now, o in ks.hdel(a, now, &o) },
        CommandSpec("hincrby", 4, .write) { ks, a, now, o in ks.hincrby(a, now, &o) },
        CommandSpec("hlen", 2) { ks, a, now, o in ks.hlen(a, now, &o) },
        // MARK: lists
        CommandSpec("lpush", -3, .write) { ks, a, now, o in ks.push(a, now, &o, front: true) },
        CommandSpec("rpush", -3, .write) { ks, a, now, o in ks.push(a, now, &o, front: false) },
        CommandSpec("lpop", -2, .write) { ks, a, now, o in ks.pop(a, now, &o, front: true) },
        CommandSpec("rpop", -2, .write) { ks, a, now, o in ks.pop(a, now, &o, front: false) },
        CommandSpec("lrange", 4) { ks, a, now, o in ks.lrange(a, now, &o) },
        CommandSpec("llen", 2) { ks, a, now, o in ks.llen(a, now, &o) },
        // MARK: sets
        CommandSpec("sadd", -3, .write) { ks, a, now, o in ks.sadd(a, now, &o) },
        CommandSpec("srem", -3, .write) { ks, a, now, o in ks.srem(a, now, &o) },
        CommandSpec("smembers", 2) { ks, a, now, o in ks.smembers(a, now, &o) },
        CommandSpec("sismember", 3) { ks, a, now, o in ks.sismember(a, now, &o) },
        CommandSpec("scard", 2) { ks, a, now, o in ks.scard(a, now, &o) },
    ]

    /// The data commands indexed by name.
    public static let table = CommandTable(commands)

    /// Runs one command through the table (the append-only file's replay, tests): an unknown
    /// command or a wrong argument count gets Redis's error and changes nothing.
    @discardableResult
    public mutating func execute(_ args: [[UInt8]], now: Int64) -> Outcome {
        var o = Outcome()
        guard !args.isEmpty, let i = Keyspace.table.resolve(args, errorInto: &o.reply) else { return o }
        Keyspace.table.commands[i].handler(&self, args, now, &o)
        return o
    }

    // MARK: strings

    mutating func get(_ a: [[UInt8]], _ now: Int64, _ o: inout Outcome) {
        switch live(a[1], now)?.value {
        case .string(let v)?: stats.hits += 1; o.reply.bulk(v)
        case nil: stats.misses += 1; o.reply.null()
        default: o.reply.error(Keyspace.wrongType)
        }
    }

    /// SET key value [NX | XX] [GET] [EX s | PX ms | EXAT s | PXAT ms | KEEPTTL], options parsed
    /// as Redis does: conflicting ones are a syntax error before any value is read.
    mutating func set(_ a: [[UInt8]], _ now: Int64, _ o: inout Outcome) {
        let n = a.count
        var nx = false, xx = false, get = false, keep = false
        var unit = "", expireArg: [UInt8]? = nil
        var i = 3
        while i < n {
            let opt = Keyspace.upper(a[i])
            let isExpiry = opt == "EX" || opt == "PX" || opt == "EXAT" || opt == "PXAT"
            if opt == "NX" && !xx {
                nx = true
            } else if opt == "XX" && !nx {
                xx = true
            } else if opt == "GET" {
                get = true
            } else if opt == "KEEPTTL" && unit.isEmpty {
                keep = true
            } else if isExpiry && !keep && (unit.isEmpty || unit == opt) && i + 1 < n {
                unit = opt
                expireArg = a[i + 1]
                i += 1
            } else {
                o.reply.error(Keyspace.syntax)
                return
            }
            i += 1
        }
        var expireAt: Int64 = 0
        if let arg = expireArg {
            guard let v = Keyspace.int(arg) else { o.reply.error(Keyspace.notInteger); return }
            guard let at = Keyspace.expiry(v, scale: unit.hasPrefix("E") ? 1000 : 1, base: unit.hasSuffix("AT") ? 0 : now), v > 0, at > 0 else {
                o.reply.error("ERR invalid expire time in 'set' command")
                return
            }
            expireAt = at
        }
        let old = live(a[1], now)
        var oldValue: [UInt8]? = nil
        if get, let old {
            guard case .string(let v) = old.value else { o.reply.error(Keyspace.wrongType); return }
            oldValue = v
        }
        if (nx && old != nil) || (xx && old == nil) {
            if get, let oldValue { o.reply.bulk(oldValue) } else { o.reply.null() }
            return
        }
        put(a[1], .string(a[2]), keepTTL: keep)
        if expireAt != 0 { setExpire(a[1], expireAt) }
        if n == 3 { o.logAsReceived = true } else { o.log.append([Keyspace.setName, a[1], a[2]] + (keep ? [Array("KEEPTTL".utf8)] : [])) }
        if expireAt != 0 { o.log.append([Array("PEXPIREAT".utf8), a[1], Array("\(expireAt)".utf8)]) }
        if get { if let oldValue { o.reply.bulk(oldValue) } else { o.reply.null() } } else { o.reply.ok() }
    }

    mutating func setnx(_ a: [[UInt8]], _ now: Int64, _ o: inout Outcome) {
        if live(a[1], now) != nil { o.reply.integer(0); return }
        put(a[1], .string(a[2]))
        o.logAsReceived = true
        o.reply.integer(1)
    }

    mutating func getset(_ a: [[UInt8]], _ now: Int64, _ o: inout Outcome) {
        let old = live(a[1], now)
        if let old, case .string(let v) = old.value { o.reply.bulk(v) } else if old == nil { o.reply.null() } else { o.reply.error(Keyspace.wrongType); return }
        put(a[1], .string(a[2]))
        o.logAsReceived = true
    }

    mutating func mget(_ a: [[UInt8]], _ now: Int64, _ o: inout Outcome) {
        o.reply.arrayHeader(a.count - 1)
        for k in a[1...] {
            if case .string(let v)? = live(k, now)?.value { o.reply.bulk(v) } else { o.reply.null() }
        }
    }

    mutating func mset(_ a: [[UInt8]], _ o: inout Outcome) {
        guard a.count % 2 == 1 else { o.reply.error(CommandError.wrongArity("mset")); return }
        for i in stride(from: 1, to: a.count, by: 2) { put(a[i], .string(a[i + 1])) }
        o.logAsReceived = true
        o.reply.ok()
    }

    /// INCR, DECR (`sign` ±1) and INCRBY, DECRBY (`argument`: the amount is the third word).
    mutating func incr(_ a: [[UInt8]], _ now: Int64, _ o: inout Outcome, by sign: Int, argument: Bool = false) {
        var delta = sign
        if argument {
            guard let d = Keyspace.int(a[2]) else { o.reply.error(Keyspace.notInteger); return }
            // DECRBY of Int.min has no positive counterpart (Redis: "decrement would overflow").
            if sign < 0 && d == Int.min { o.reply.error("ERR decrement would overflow"); return }
            delta = sign * d
        }
        // One hash lookup: read, check expiry and type, and write back through the index.
        let key = Key(a[1])
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
    }

    mutating func append(_ a: [[UInt8]], _ now: Int64, _ o: inout Outcome) {
        var v: [UInt8] = []
        if let e = live(a[1], now) {
            guard case .string(let s) = e.value else { o.reply.error(Keyspace.wrongType); return }
            v = s
        }
        v += a[2]
        put(a[1], .string(v), keepTTL: true)
        o.logAsReceived = true
        o.reply.integer(v.count)
    }

    mutating func strlen(_ a: [[UInt8]], _ now: Int64, _ o: inout Outcome) {
        switch live(a[1], now)?.value {
        case .string(let v)?: o.reply.integer(v.count)
        case nil: o.reply.integer(0)
        default: o.reply.error(Keyspace.wrongType)
        }
    }

    // MARK: keys

    mutating func del(_ a: [[UInt8]], _ now: Int64, _ o: inout Outcome) {
        var c = 0
        for k in a[1...] where live(k, now) != nil { if remove(k) { c += 1 } }
        if c > 0 { o.logAsReceived = true }
        o.reply.integer(c)
    }

    mutating func exists(_ a: [[UInt8]], _ now: Int64, _ o: inout Outcome) {
        var c = 0
        for k in a[1...] where live(k, now) != nil { c += 1 }
        o.reply.integer(c)
    }

    /// EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT key time [NX | XX | GT | LT] (Redis 7's options; a
    /// key without a TTL counts as never expiring for GT and LT). The new expiry is logged as an
    /// absolute PEXPIREAT, or as DEL when it is already past.
    mutating func expire(_ a: [[UInt8]], _ now: Int64, _ o: inout Outcome, _ name: String, scale: Int64, relative: Bool) {
        var nx = false, xx = false, gt = false, lt = false
        for opt in a[3...] {
            switch Keyspace.upper(opt) {
            case "NX": nx = true
            case "XX": xx = true
            case "GT": gt = true
            case "LT": lt = true
            default: o.reply.error("ERR Unsupported option \(String(decoding: opt, as: UTF8.self))"); return
            }
        }
        if nx && (xx || gt || lt) { o.reply.error("ERR NX and XX, GT or LT options at the same time are not compatible"); return }
        if gt && lt { o.reply.error("ERR GT and LT options at the same time are not compatible"); return }
        guard let v = Keyspace.int(a[2]) else { o.reply.error(Keyspace.notInteger); return }
        guard let at = Keyspace.expiry(v, scale: scale, base: relative ? now : 0) else {
            o.reply.error("ERR invalid expire time in '\(name)' command")
            return
        }
        guard let e = live(a[1], now) else { o.reply.integer(0); return }
        let current = e.expireAt
        if (nx && current != 0) || (xx && current == 0) || (gt && (current == 0 || at <= current)) || (lt && current != 0 && at >= current) {
            o.reply.integer(0)
            return
        }
        if at <= now {
            _ = remove(a[1])
            o.log.append([Array("DEL".utf8), a[1]])
        } else {
            setExpire(a[1], at)
            o.log.append([Array("PEXPIREAT".utf8), a[1], Array("\(at)".utf8)])
        }
        o.reply.integer(1)
    }

    mutating func persist(_ a: [[UInt8]], _ now: Int64, _ o: inout Outcome) {
        guard let e = live(a[1], now), e.expireAt != 0 else { o.reply.integer(0); return }
        setExpire(a[1], 0)
        o.logAsReceived = true
        o.reply.integer(1)
    }

    mutating func ttl(_ a: [[UInt8]], _ now: Int64, _ o: inout Outcome, millis: Bool) {
        guard let e = live(a[1], now) else { o.reply.integer(-2); return }
        if e.expireAt == 0 { o.reply.integer(-1); return }
        let ms = e.expireAt - now
        o.reply.integer(millis ? Int(ms) : Int((ms + 500) / 1000))
    }

    mutating func type(_ a: [[UInt8]], _ now: Int64, _ o: inout Outcome) {
        o.reply.simple(live(a[1], now)?.value.typeName ?? "none")
    }

    mutating func scan(_ a: [[UInt8]], _ now: Int64, _ o: inout Outcome) {
        let n = a.count
        guard let cursor = Keyspace.int(a[1]), cursor >= 0 else { o.reply.error("ERR invalid cursor"); return }
        var pattern: [UInt8] = [UInt8(ascii: "*")]
        var countHint = 10
        var typeFilter: String? = nil
        var i = 2
        while i + 1 < n {
            switch Keyspace.upper(a[i]) {
            case "MATCH": pattern = a[i + 1]
            case "COUNT":
                guard let c = Keyspace.int(a[i + 1]), c > 0 else { o.reply.error(Keyspace.notInteger); return }
                countHint = c
            case "TYPE": typeFilter = String(decoding: a[i + 1], as: UTF8.self).lowercased()
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
    }

    /// FLUSHDB and FLUSHALL [ASYNC | SYNC] (both flush at once here).
    mutating func flush(_ a: [[UInt8]], _ o: inout Outcome) {
        if a.count > 2 || (a.count == 2 && !["ASYNC", "SYNC"].contains(Keyspace.upper(a[1]))) {
            o.reply.error(Keyspace.syntax)
            return
        }
        entries.removeAll()
        volatile.removeAll()
        o.logAsReceived = true
        o.reply.ok()
    }

    // MARK: hashes

    /// The hash at `key`, empty when there is none; nil (with the error replied) for another type.
    mutating func hashAt(_ key: [UInt8], _ now: Int64, _ o: inout Outcome) -> [[UInt8]: [UInt8]]? {
        guard let e = live(key, now) else { return [:] }
        guard case .hash(let h) = e.value else { o.reply.error(Keyspace.wrongType); return nil }
        return h
    }

    /// HSET (replies the fields added) and HMSET (replies OK).
    mutating func hset(_ a: [[UInt8]], _ now: Int64, _ o: inout Outcome, name: String) {
        guard a.count % 2 == 0 else { o.reply.error(CommandError.wrongArity(name)); return }
        guard var h = hashAt(a[1], now, &o) else { return }
        var added = 0
        for i in stride(from: 2, to: a.count, by: 2) where h.updateValue(a[i + 1], forKey: a[i]) == nil { added += 1 }
        put(a[1], .hash(h), keepTTL: true)
        o.logAsReceived = true
        if name == "hmset" { o.reply.ok() } else { o.reply.integer(added) }
    }

    mutating func hget(_ a: [[UInt8]], _ now: Int64, _ o: inout Outcome) {
        guard let h = hashAt(a[1], now, &o) else { return }
        if let v = h[a[2]] { o.reply.bulk(v) } else { o.reply.null() }
    }

    mutating func hmget(_ a: [[UInt8]], _ now: Int64, _ o: inout Outcome) {
        guard let h = hashAt(a[1], now, &o) else { return }
        o.reply.arrayHeader(a.count - 2)
        for f in a[2...] { if let v = h[f] { o.reply.bulk(v) } else { o.reply.null() } }
    }

    mutating func hgetall(_ a: [[UInt8]], _ now: Int64, _ o: inout Outcome) {
        guard let h = hashAt(a[1], now, &o) else { return }
        o.reply.arrayHeader(h.count * 2)
        for (k, v) in h.sorted(by: { $0.key.lexicographicallyPrecedes($1.key) }) { o.reply.bulk(k); o.reply.bulk(v) }
    }

    mutating func hdel(_ a: [[UInt8]], _ now: Int64, _ o: inout Outcome) {
        guard let e = live(a[1], now) else { o.reply.integer(0); return }
        guard case .hash(var h) = e.value else { o.reply.error(Keyspace.wrongType); return }
        var c = 0
        for f in a[2...] where h.removeValue(forKey: f) != nil { c += 1 }
        if h.isEmpty { _ = remove(a[1]) } else { put(a[1], .hash(h), keepTTL: true) }
        if c > 0 { o.logAsReceived = true }
        o.reply.integer(c)
    }

    mutating func hincrby(_ a: [[UInt8]], _ now: Int64, _ o: inout Outcome) {
        guard let d = Keyspace.int(a[3]) else { o.reply.error(Keyspace.notInteger); return }
        guard var h = hashAt(a[1], now, &o) else { return }
        var cur = 0
        if let v = h[a[2]] {
            guard let c = Keyspace.int(v) else { o.reply.error("ERR hash value is not an integer"); return }
            cur = c
        }
        let (r, overflow) = cur.addingReportingOverflow(d)
        if overflow { o.reply.error("ERR increment or decrement would overflow"); return }
        h[a[2]] = Keyspace.digits(r)
        put(a[1], .hash(h), keepTTL: true)
        o.logAsReceived = true
        o.reply.integer(r)
    }

    mutating func hlen(_ a: [[UInt8]], _ now: Int64, _ o: inout Outcome) {
        guard let h = hashAt(a[1], now, &o) else { return }
        o.reply.integer(h.count)
    }

    // MARK: lists

    /// The list at `key`, empty when there is none; nil (with the error replied) for another type.
    mutating func listAt(_ key: [UInt8], _ now: Int64, _ o: inout Outcome) -> [[UInt8]]? {
        guard let e = live(key, now) else { return [] }
        guard case .list(let l) = e.value else { o.reply.error(Keyspace.wrongType); return nil }
        return l
    }

    mutating func push(_ a: [[UInt8]], _ now: Int64, _ o: inout Outcome, front: Bool) {
        guard var l = listAt(a[1], now, &o) else { return }
        if front { for v in a[2...] { l.insert(v, at: 0) } } else { l.append(contentsOf: a[2...]) }
        put(a[1], .list(l), keepTTL: true)
        o.logAsReceived = true
        o.reply.integer(l.count)
    }

    /// LPOP and RPOP key [count]: a bulk string without a count, an array with one.
    mutating func pop(_ a: [[UInt8]], _ now: Int64, _ o: inout Outcome, front: Bool) {
        guard a.count <= 3 else { o.reply.error(CommandError.wrongArity(front ? "lpop" : "rpop")); return }
        var count: Int? = nil
        if a.count == 3 {
            guard let c = Keyspace.int(a[2]), c >= 0 else { o.reply.error("ERR value is out of range, must be positive"); return }
            count = c
        }
        guard let e = live(a[1], now) else { if count != nil { o.reply.nullArray() } else { o.reply.null() }; return }
        guard case .list(var l) = e.value else { o.reply.error(Keyspace.wrongType); return }
        let k = min(count ?? 1, l.count)
        var popped: [[UInt8]] = []
        for _ in 0..<k { popped.append(front ? l.removeFirst() : l.removeLast()) }
        if l.isEmpty { _ = remove(a[1]) } else { put(a[1], .list(l), keepTTL: true) }
        if k > 0 { o.logAsReceived = true }
        if count != nil { o.reply.array(popped) } else { o.reply.bulk(popped[0]) }
    }

    mutating func lrange(_ a: [[UInt8]], _ now: Int64, _ o: inout Outcome) {
        guard var from = Keyspace.int(a[2]), var to = Keyspace.int(a[3]) else { o.reply.error(Keyspace.notInteger); return }
        guard let l = listAt(a[1], now, &o) else { return }
        if from < 0 { from += l.count }
        if to < 0 { to += l.count }
        from = max(from, 0)
        to = min(to, l.count - 1)
        o.reply.array(from <= to ? Array(l[from...to]) : [])
    }

    mutating func llen(_ a: [[UInt8]], _ now: Int64, _ o: inout Outcome) {
        guard let l = listAt(a[1], now, &o) else { return }
        o.reply.integer(l.count)
    }

    // MARK: sets

    /// The set at `key`, empty when there is none; nil (with the error replied) for another type.
    mutating func setAt(_ key: [UInt8], _ now: Int64, _ o: inout Outcome) -> Set<[UInt8]>? {
        guard let e = live(key, now) else { return [] }
        guard case .set(let s) = e.value else { o.reply.error(Keyspace.wrongType); return nil }
        return s
    }

    mutating func sadd(_ a: [[UInt8]], _ now: Int64, _ o: inout Outcome) {
        guard var s = setAt(a[1], now, &o) else { return }
        var added = 0
        for m in a[2...] where s.insert(m).inserted { added += 1 }
        put(a[1], .set(s), keepTTL: true)
        if added > 0 { o.logAsReceived = true }
        o.reply.integer(added)
    }

    mutating func srem(_ a: [[UInt8]], _ now: Int64, _ o: inout Outcome) {
        guard let e = live(a[1], now) else { o.reply.integer(0); return }
        guard case .set(var s) = e.value else { o.reply.error(Keyspace.wrongType); return }
        var c = 0
        for m in a[2...] where s.remove(m) != nil { c += 1 }
        if s.isEmpty { _ = remove(a[1]) } else { put(a[1], .set(s), keepTTL: true) }
        if c > 0 { o.logAsReceived = true }
        o.reply.integer(c)
    }

    mutating func smembers(_ a: [[UInt8]], _ now: Int64, _ o: inout Outcome) {
        guard let s = setAt(a[1], now, &o) else { return }
        o.reply.array(s.sorted { $0.lexicographicallyPrecedes($1) })
    }

    mutating func sismember(_ a: [[UInt8]], _ now: Int64, _ o: inout Outcome) {
        guard let s = setAt(a[1], now, &o) else { return }
        o.reply.integer(s.contains(a[2]) ? 1 : 0)
    }

    mutating func scard(_ a: [[UInt8]], _ now: Int64, _ o: inout Outcome) {
        guard let s = setAt(a[1], now, &o) else { return }
        o.reply.integer(s.count)
    }

    // MARK: helpers

    /// An absolute expiry in ms from a command's `value` (`scale` 1000 for seconds, `base` now for
    /// relative times); nil where Redis says "invalid expire time" (the arithmetic would overflow).
    static func expiry(_ value: Int, scale: Int64, base: Int64) -> Int64? {
        let (ms, o1) = Int64(value).multipliedReportingOverflow(by: scale)
        let (at, o2) = ms.addingReportingOverflow(base)
        return o1 || o2 ? nil : at
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
