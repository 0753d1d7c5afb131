@testable import LBStore
import Testing

/// The store's pure parts: the RESP parser and the keyspace's commands, with time passed in.
@Suite struct RESPParserTests {
    func parse(_ s: String, into args: inout [[UInt8]]) throws -> Int? {
        try Array(s.utf8).withUnsafeBytes { try RESP.parseCommand($0, into: &args) }
    }

    @Test func reusesArgumentArraysAcrossCommands() throws {
        var args: [[UInt8]] = []
        #expect(try parse("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n", into: &args) == 31)
        #expect(args.map { String(decoding: $0, as: UTF8.self) } == ["SET", "k", "value"])
        // A shorter command after a longer one: no argument left over.
        #expect(try parse("*2\r\n$4\r\nINCR\r\n$3\r\nctr\r\n", into: &args) == 23)
        #expect(args.map { String(decoding: $0, as: UTF8.self) } == ["INCR", "ctr"])
        // Incomplete input: nil (more bytes needed), never a partial command.
        #expect(try parse("*2\r\n$4\r\nINCR\r\n$3\r\nct", into: &args) == nil)
        // Inline commands.
        #expect(try parse("PING hello\r\n", into: &args) != nil)
        #expect(args.map { String(decoding: $0, as: UTF8.self) } == ["PING", "hello"])
        #expect(throws: RESP.ParseError.self) { try parse("*1\r\n+OK\r\n", into: &args) }
        #expect(throws: RESP.ParseError.self) { try parse("*1\r\n$3\r\nabcXY", into: &args) }
    }
}

@Suite struct KeyspaceTests {
    func run(_ ks: inout Keyspace, _ words: [String], now: Int64 = 1000) -> String {
        String(decoding: ks.execute(words.map { Array($0.utf8) }, now: now).reply.bytes, as: UTF8.self)
    }

    @Test func integersAreCanonicalAsRedisParsesThem() {
        #expect(Keyspace.int(Array("0".utf8)) == 0)
        #expect(Keyspace.int(Array("-12".utf8)) == -12)
        #expect(Keyspace.int(Array("9223372036854775807".utf8)) == Int.max)
        #expect(Keyspace.int(Array("-9223372036854775808".utf8)) == Int.min)
        for bad in ["", "-", "+1", "01", "-0", "1 ", "9223372036854775808", "1a", "00"] {
            #expect(Keyspace.int(Array(bad.utf8)) == nil, "\(bad)")
        }
        #expect(Keyspace.digits(-9_223_372_036_854_775_807) == Array("-9223372036854775807".utf8))
    }

    @Test func incrKeepsTheTTLAndRestartsAnExpiredKey() {
        var ks = Keyspace()
        #expect(run(&ks, ["SET", "k", "5", "PX", "100"]) == "+OK\r\n")
        #expect(run(&ks, ["INCR", "k"], now: 1050) == ":6\r\n")
        #expect(ks.entries[Key(Array("k".utf8))]?.expireAt == 1100) // TTL kept
        #expect(run(&ks, ["INCR", "k"], now: 1200) == ":1\r\n") // expired: starts again
        #expect(ks.entries[Key(Array("k".utf8))]?.expireAt == 0)
        #expect(run(&ks, ["INCRBY", "k", "-11"]) == ":-10\r\n")
        #expect(run(&ks, ["DECR", "missing"]) == ":-1\r\n")
        #expect(run(&ks, ["LPUSH", "l", "a"]) == ":1\r\n")
        #expect(run(&ks, ["INCR", "l"]).hasPrefix("-WRONGTYPE"))
        #expect(run(&ks, ["SET", "s", "abc"]) == "+OK\r\n")
        #expect(run(&ks, ["INCR", "s"]) == "-ERR value is not an integer or out of range\r\n")
        #expect(run(&ks, ["SET", "m", "9223372036854775807"]) == "+OK\r\n")
        #expect(run(&ks, ["INCR", "m"]) == "-ERR increment or decrement would overflow\r\n")
    }

    @Test func writesAreLoggedSoAReplayGivesTheSameState() {
        var ks = Keyspace()
        var log: [[[UInt8]]] = []
        for words in [["SET", "a", "1"], ["INCR", "a"], ["SET", "b", "x", "EX", "10"], ["DEL", "missing"], ["GET", "a"]] {
            let args = words.map { Array($0.utf8) }
            let o = ks.execute(args, now: 1000)
            if o.logAsReceived { log.append(args) }
            log += o.log
        }
        // Reads are not logged; the relative expiry is logged as an absolute one.
        #expect(!log.contains { String(decoding: $0[0], as: UTF8.self) == "GET" })
        #expect(log.contains { String(decoding: $0[0], as: UTF8.self) == "PEXPIREAT" })
        var replay = Keyspace()
        for args in log { replay.execute(args, now: 2000) }
        #expect(run(&replay, ["GET", "a"], now: 2000) == "$1\r\n2\r\n")
        #expect(replay.entries[Key(Array("b".utf8))]?.expireAt == 11_000)
    }
}
