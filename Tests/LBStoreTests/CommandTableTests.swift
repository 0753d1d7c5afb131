@testable import LBStore
import Testing

/// The command table: Redis's arities and flags, its error texts, case-insensitive lookup. The
/// expected replies were taken from redis-server 7.0.15 (Debian's), run with `--save ''
/// --appendonly no` on a loopback port and sent the same commands.
@Suite struct CommandTableTests {
    func reply(_ words: [String], _ ks: inout Keyspace) -> String {
        String(decoding: ks.execute(words.map { Array($0.utf8) }, now: 1000).reply.bytes, as: UTF8.self)
    }

    func reply(_ words: [String]) -> String {
        var ks = Keyspace()
        return reply(words, &ks)
    }

    /// `COMMAND INFO` of redis-server 7.0.15: arity, and whether the flags include `write`.
    static let redisArity: [String: (Int, Bool)] = [
        "get": (2, false), "set": (-3, true), "setnx": (3, true), "getset": (3, true), "mget": (-2, false),
        "mset": (-3, true), "incr": (2, true), "decr": (2, true), "incrby": (3, true), "decrby": (3, true),
        "append": (3, true), "strlen": (2, false), "del": (-2, true), "unlink": (-2, true), "exists": (-2, false),
        "expire": (-3, true), "pexpire": (-3, true), "expireat": (-3, true), "pexpireat": (-3, true),
        "persist": (2, true), "ttl": (2, false), "pttl": (2, false), "type": (2, false), "keys": (2, false),
        "scan": (-2, false), "dbsize": (1, false), "flushdb": (-1, true), "flushall": (-1, true),
        "hset": (-4, true), "hmset": (-4, true), "hget": (3, false), "hmget": (-3, false), "hgetall": (2, false),
        "hdel": (-3, true), "hincrby": (4, true), "hlen": (2, false), "lpush": (-3, true), "rpush": (-3, true),
        "lpop": (-2, true), "rpop": (-2, true), "lrange": (4, false), "llen": (2, false), "sadd": (-3, true),
        "srem": (-3, true), "smembers": (2, false), "sismember": (3, false), "scard": (2, false),
    ]

    @Test func everyDataCommandHasRedisArityAndWriteFlag() {
        #expect(Keyspace.commands.count == CommandTableTests.redisArity.count)
        for c in Keyspace.commands {
            guard let (arity, write) = CommandTableTests.redisArity[c.name] else {
                Issue.record("\(c.name) is not in the Redis list")
                continue
            }
            #expect(c.arity == arity, "\(c.name)")
            #expect(c.flags.contains(.write) == write, "\(c.name)")
        }
    }

    /// Each row, one argument short of its arity (and one over, for exact arities), gets
    /// `ERR wrong number of arguments for '<name>' command` and changes nothing.
    @Test func argumentCountOutsideTheArityGetsRedisErrorForEveryRow() {
        for c in Keyspace.commands {
            let least = c.arity > 0 ? c.arity : -c.arity
            var counts = [least - 1]
            if c.arity > 0 { counts.append(c.arity + 1) }
            for n in counts where n >= 1 {
                var ks = Keyspace()
                let words = [c.name.uppercased()] + Array(repeating: "1", count: n - 1)
                #expect(reply(words, &ks) == "-ERR wrong number of arguments for '\(c.name)' command\r\n", "\(words)")
                #expect(ks.count == 0)
            }
        }
    }

    @Test(arguments: [
        (["GET"], "get"), (["get", "a", "b"], "get"), (["GeT"], "get"), (["SET", "k"], "set"),
        (["MSET", "a"], "mset"), (["MSET", "a", "b", "c"], "mset"), (["HSET", "h", "f"], "hset"),
        (["HSET", "h", "f", "v", "g"], "hset"), (["HMSET", "h", "f", "v", "g"], "hmset"),
        (["LPOP", "l", "1", "2"], "lpop"), (["RPOP", "l", "1", "2"], "rpop"), (["KEYS"], "keys"), (["TTL"], "ttl"),
        (["LPUSH", "l"], "lpush"), (["sadd", "s"], "sadd"), (["HINCRBY", "h", "f"], "hincrby"),
        (["LRANGE", "l", "0"], "lrange"), (["DBSIZE", "x"], "dbsize"), (["EXPIRE", "k"], "expire"),
    ])
    func wrongArgumentCountMatchesRedis(_ words: [String], _ name: String) {
        #expect(reply(words) == "-ERR wrong number of arguments for '\(name)' command\r\n")
    }

    @Test(arguments: [
        (["foo"], "ERR unknown command 'foo', with args beginning with: "),
        (["foo", "a", "b"], "ERR unknown command 'foo', with args beginning with: 'a' 'b' "),
        (["FOO", String(repeating: "x", count: 200)],
         "ERR unknown command 'FOO', with args beginning with: '\(String(repeating: "x", count: 128))' "),
        // Arguments are listed while the list is under 128 bytes: ten of 13 bytes each.
        (["foo"] + Array(repeating: "abcdefghij", count: 20),
         "ERR unknown command 'foo', with args beginning with: " + String(repeating: "'abcdefghij' ", count: 10)),
        (["foo", "a\r\nb"], "ERR unknown command 'foo', with args beginning with: 'a  b' "),
        (["f\r\noo", "x"], "ERR unknown command 'f  oo', with args beginning with: 'x' "),
        ([String(repeating: "x", count: 200)],
         "ERR unknown command '\(String(repeating: "x", count: 128))', with args beginning with: "),
        (["foo", "\u{0}x"], "ERR unknown command 'foo', with args beginning with: '' "),
        (["f\u{0}oo"], "ERR unknown command 'f', with args beginning with: "),
        (["hello"], "ERR unknown command 'hello', with args beginning with: "),
    ])
    func unknownCommandMatchesRedis(_ words: [String], _ error: String) {
        #expect(reply(words) == "-\(error)\r\n")
    }

    @Test func unknownSubcommandMatchesRedis() {
        #expect(String(decoding: CommandError.unknownSubcommand(Array("FOO".utf8), of: "CONFIG"), as: UTF8.self)
            == "ERR unknown subcommand 'FOO'. Try CONFIG HELP.")
    }

    @Test func commandNamesMatchInAnyLetterCaseAndNothingElse() {
        let table = Keyspace.table
        let rows = Dictionary(uniqueKeysWithValues: table.commands.enumerated().map { ($1.name, $0) })
        for (i, c) in table.commands.enumerated() {
            let lower = Array(c.name.utf8)
            #expect(table.index.find(lower) == i)
            #expect(table.index.find(Array(c.name.uppercased().utf8)) == i)
            let mixed = lower.enumerated().map { $0.offset % 2 == 0 ? $0.element - 32 : $0.element }
            #expect(table.index.find(mixed) == i)
            // Every one-byte change is another row (a real name in some case) or no row.
            for p in lower.indices {
                for b in 0...255 where b != Int(lower[p]) && b != Int(lower[p]) - 32 {
                    var w = lower
                    w[p] = UInt8(b)
                    let folded = (b >= 0x41 && b <= 0x5A) ? UInt8(b + 32) : UInt8(b)
                    var expected = lower
                    expected[p] = folded
                    #expect(table.index.find(w) == rows[String(decoding: expected, as: UTF8.self)], "\(w)")
                }
            }
            #expect(table.index.find(lower + [0]) == nil)
            #expect(table.index.find(lower + [UInt8(ascii: " ")]) == nil)
            #expect(table.index.find(Array(lower.dropLast())) == rows[String(decoding: lower.dropLast(), as: UTF8.self)])
        }
        #expect(table.index.find([]) == nil)
        #expect(table.index.find(Array(String(repeating: "a", count: 16).utf8)) == nil)
        #expect(table.index.find(Array(String(repeating: "g", count: 300).utf8)) == nil)
    }

    @Test func indexTellsApartNamesThatDifferOnlyInLengthOrTheirLastByte() {
        let names = ["abcdefghijklmno", "abcdefghijklmnp", "abcdefghijklmn", "abcdefgh", "abcdefg", "a"]
        let index = CommandIndex(names: names)
        for (i, n) in names.enumerated() {
            #expect(index.find(Array(n.utf8)) == i)
            #expect(index.find(Array(n.uppercased().utf8)) == i)
            #expect(index.find(Array(n.utf8) + [0]) == names.firstIndex(of: n + "\u{0}"))
        }
        #expect(index.find(Array("abcdefghijklmnop".utf8)) == nil) // 16 bytes: longer than any name
        #expect(index.find(Array("abcdefghijklmno ".utf8)) == nil)
        #expect(index.find(Array("abcdefghi".utf8)) == nil)
        #expect(index.find(Array("abcdefgh ".utf8)) == nil)
        #expect(index.find(Array("b".utf8)) == nil)
    }

    /// The AOF logs only what `write` rows report; a row without the flag must never change the
    /// keyspace or ask to be logged.
    @Test func onlyWriteRowsChangeOrLogTheKeyspace() {
        for c in Keyspace.commands {
            var ks = Keyspace()
            _ = ks.execute([Array("SET".utf8), Array("1".utf8), Array("1".utf8)], now: 1000)
            let before = ks.entries.mapValues { "\($0.value)/\($0.expireAt)" }
            let n = c.arity > 0 ? c.arity : -c.arity
            let o = ks.execute([Array(c.name.utf8)] + Array(repeating: Array("1".utf8), count: n - 1), now: 1000)
            let changed = ks.entries.mapValues { "\($0.value)/\($0.expireAt)" } != before
            if !c.flags.contains(.write) {
                #expect(!changed && !o.logAsReceived && o.log.isEmpty, "\(c.name)")
            } else if changed {
                #expect(o.logAsReceived || !o.log.isEmpty, "\(c.name) changed the keyspace without logging it")
            }
        }
    }

    @Test func expireTakesRedisSevenOptions() {
        var ks = Keyspace()
        #expect(reply(["SET", "k", "1"], &ks) == "+OK\r\n")
        #expect(reply(["EXPIRE", "k", "10", "GT"], &ks) == ":0\r\n") // no TTL counts as infinite
        #expect(reply(["EXPIRE", "k", "10", "XX"], &ks) == ":0\r\n")
        #expect(reply(["EXPIRE", "k", "100", "nx"], &ks) == ":1\r\n")
        #expect(reply(["EXPIRE", "k", "200", "NX"], &ks) == ":0\r\n")
        #expect(reply(["EXPIRE", "k", "10", "GT"], &ks) == ":0\r\n")
        #expect(reply(["EXPIRE", "k", "1000", "GT"], &ks) == ":1\r\n")
        #expect(reply(["EXPIRE", "k", "10", "LT"], &ks) == ":1\r\n")
        #expect(ks.entries[Key(Array("k".utf8))]?.expireAt == 11_000)
        #expect(reply(["EXPIRE", "k", "10", "GT", "LT"], &ks) == "-ERR GT and LT options at the same time are not compatible\r\n")
        #expect(reply(["EXPIRE", "k", "10", "NX", "XX"], &ks) == "-ERR NX and XX, GT or LT options at the same time are not compatible\r\n")
        // Options are checked before the time and before the key.
        #expect(reply(["EXPIRE", "missing", "x", "BOGUS"], &ks) == "-ERR Unsupported option BOGUS\r\n")
    }

    @Test func timesThatWouldOverflowAreInvalidNotACrash() {
        var ks = Keyspace()
        #expect(reply(["SET", "k", "1"], &ks) == "+OK\r\n")
        #expect(reply(["EXPIRE", "k", "9223372036854775807"], &ks) == "-ERR invalid expire time in 'expire' command\r\n")
        #expect(reply(["EXPIRE", "k", "-9223372036854775808"], &ks) == "-ERR invalid expire time in 'expire' command\r\n")
        #expect(reply(["PEXPIRE", "k", "9223372036854775807"], &ks) == "-ERR invalid expire time in 'pexpire' command\r\n")
        #expect(reply(["EXPIREAT", "k", "9223372036854775807"], &ks) == "-ERR invalid expire time in 'expireat' command\r\n")
        #expect(reply(["PEXPIREAT", "k", "9223372036854775807"], &ks) == ":1\r\n")
        #expect(reply(["SET", "k", "v", "EX", "9223372036854775807"], &ks) == "-ERR invalid expire time in 'set' command\r\n")
        #expect(reply(["SET", "k", "v", "EX", "9223372036854775"], &ks) == "-ERR invalid expire time in 'set' command\r\n")
        #expect(reply(["SET", "k", "v", "PX", "9223372036854775807"], &ks) == "-ERR invalid expire time in 'set' command\r\n")
        #expect(reply(["SET", "k", "v", "EXAT", "9223372036854775807"], &ks) == "-ERR invalid expire time in 'set' command\r\n")
        #expect(reply(["SET", "k", "v", "PXAT", "9223372036854775807"], &ks) == "+OK\r\n")
        #expect(reply(["SET", "n", "5"], &ks) == "+OK\r\n")
        #expect(reply(["DECRBY", "n", "-9223372036854775808"], &ks) == "-ERR decrement would overflow\r\n")
        #expect(reply(["INCRBY", "n", "-9223372036854775808"], &ks) == ":-9223372036854775803\r\n")
    }

    @Test(arguments: [
        ["SET", "k", "v", "NX", "XX"], ["SET", "k", "v", "EX", "5", "KEEPTTL"], ["SET", "k", "v", "KEEPTTL", "PX", "5"],
        ["SET", "k", "v", "EX", "5", "PX", "5"], ["SET", "k", "v", "EX", "x", "NX", "XX"], ["SET", "k", "v", "EX"],
        ["FLUSHDB", "a"], ["FLUSHALL", "ASYNC", "x"],
    ])
    func conflictingOptionsAreASyntaxError(_ words: [String]) {
        #expect(reply(words) == "-ERR syntax error\r\n")
    }

    @Test func repeatedExpiryOfOneUnitIsAccepted() {
        var ks = Keyspace()
        #expect(reply(["set", "k", "v", "ex", "5", "ex", "6"], &ks) == "+OK\r\n")
        #expect(ks.entries[Key(Array("k".utf8))]?.expireAt == 7000)
        #expect(reply(["flushdb", "Sync"], &ks) == "+OK\r\n")
        #expect(ks.count == 0)
    }
}
