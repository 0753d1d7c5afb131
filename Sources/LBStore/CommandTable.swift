/// Redis's command flags that lb-store acts on.
public struct CommandFlags: OptionSet, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// May change the keyspace (Redis's `write`): only these commands' outcomes are logged to the
    /// append-only file, and only when they changed something.
    public static let write = CommandFlags(rawValue: 1 << 0)
    /// Runs before AUTH when a password is set (Redis's `no_auth`).
    public static let noAuth = CommandFlags(rawValue: 1 << 1)
}

/// One row of a command table, in the manner of Redis's `redisCommand`: the generic checks (name
/// lookup, argument count) run once in the dispatcher (`CommandTable.resolve`); meaning lives in
/// `handler`, which may assume the arity holds.
public struct CommandSpec<Handler> {
    /// Lowercase letters, as Redis's error replies spell it.
    public let name: String
    /// Redis's arity, counting the name itself: positive means exactly, negative at least.
    public let arity: Int
    public let flags: CommandFlags
    public let handler: Handler

    public init(_ name: String, _ arity: Int, _ flags: CommandFlags = [], _ handler: Handler) {
        self.name = name
        self.arity = arity
        self.flags = flags
        self.handler = handler
    }

    /// True when `argc` arguments (the name included) satisfy the arity.
    @inlinable public func accepts(_ argc: Int) -> Bool { arity >= 0 ? argc == arity : argc >= -arity }

    /// The same row with another handler (the server wraps the keyspace's handlers in its own).
    public func map<Other>(_ transform: (Handler) -> Other) -> CommandSpec<Other> {
        CommandSpec<Other>(name, arity, flags, transform(handler))
    }
}

extension CommandSpec: Sendable where Handler: Sendable {}

/// A command table: the rows, and a case-insensitive name index built once.
public struct CommandTable<Handler> {
    public let commands: [CommandSpec<Handler>]
    public let index: CommandIndex

    public init(_ commands: [CommandSpec<Handler>]) {
        self.commands = commands
        index = CommandIndex(names: commands.map(\.name))
    }

    /// The row `args` call (an index into `commands`), or nil with Redis's error appended to
    /// `reply`: an unknown command, or the wrong number of arguments. `args` is not empty.
    @inlinable public func resolve(_ args: [[UInt8]], errorInto reply: inout ReplyWriter) -> Int? {
        guard let i = index.find(args[0]) else {
            reply.error(CommandError.unknownCommand(args))
            return nil
        }
        guard commands[i].accepts(args.count) else {
            reply.error(CommandError.wrongArity(commands[i].name))
            return nil
        }
        return i
    }
}

extension CommandTable: Sendable where Handler: Sendable {}

/// Command names to table rows, case-insensitively and without allocating: a name of up to 16
/// bytes is packed into two words with ASCII letters folded to lowercase (`| 0x20`), and looked up
/// in an open-addressing table sized at build time. Table names are lowercase letters only, and
/// for those the fold is exact: only `A`–`Z` and `a`–`z` fold onto a lowercase letter.
public struct CommandIndex: Sendable {
    @usableFromInline let slots: [Int16]
    @usableFromInline let keys: [Packed]
    @usableFromInline let shift: UInt64

    @usableFromInline struct Packed: Sendable, Equatable {
        @usableFromInline var lo: UInt64 = 0
        @usableFromInline var hi: UInt64 = 0
        @usableFromInline var count = 0
        @inlinable init() {}
    }

    public init(names: [String]) {
        var bits: UInt64 = 4
        while 1 << bits < names.count * 2 { bits += 1 }
        var slots = [Int16](repeating: -1, count: 1 << bits)
        var keys: [Packed] = []
        for (i, name) in names.enumerated() {
            let b = Array(name.utf8)
            precondition(b.allSatisfy { $0 >= 0x61 && $0 <= 0x7A }, "command name \(name): lowercase letters only")
            guard let k = CommandIndex.pack(b) else { preconditionFailure("command name \(name): 1 to 16 letters") }
            var s = CommandIndex.slot(k, 64 - bits, slots.count)
            while slots[s] >= 0 {
                precondition(keys[Int(slots[s])] != k, "command \(name) listed twice")
                s = (s + 1) & (slots.count - 1)
            }
            slots[s] = Int16(i)
            keys.append(k)
        }
        self.slots = slots
        self.keys = keys
        shift = 64 - bits
    }

    /// The row named `name` in any letter case, or nil.
    @inlinable public func find(_ name: [UInt8]) -> Int? {
        guard let k = CommandIndex.pack(name) else { return nil }
        var s = CommandIndex.slot(k, shift, slots.count)
        while true {
            let i = Int(slots[s])
            if i < 0 { return nil }
            if keys[i] == k { return i }
            s = (s + 1) & (slots.count - 1)
        }
    }

    @inlinable static func pack(_ b: [UInt8]) -> Packed? {
        let n = b.count
        guard n > 0 && n <= 16 else { return nil }
        var k = Packed()
        k.count = n
        b.withUnsafeBufferPointer { p in
            for i in 0..<min(n, 8) { k.lo |= UInt64(p[i] | 0x20) << (8 * UInt64(i)) }
            if n > 8 { for i in 8..<n { k.hi |= UInt64(p[i] | 0x20) << (8 * UInt64(i - 8)) } }
        }
        return k
    }

    @inlinable static func slot(_ k: Packed, _ shift: UInt64, _ size: Int) -> Int {
        let h = (k.lo &* 0x9E37_79B9_7F4A_7C15) ^ (k.hi &* 0xC2B2_AE3D_27D4_EB4F) ^ UInt64(k.count)
        return Int(truncatingIfNeeded: (h &* 0x9E37_79B9_7F4A_7C15) >> shift) & (size - 1)
    }
}

/// Redis's words for the errors every command shares (server.c's `processCommand`).
public enum CommandError {
    /// `ERR wrong number of arguments for 'get' command`; `fullName` is lowercase, with `|`
    /// between a container and its subcommand (`config|get`).
    public static func wrongArity(_ fullName: String) -> String {
        "ERR wrong number of arguments for '\(fullName)' command"
    }

    /// `ERR unknown command 'foo', with args beginning with: 'a' 'b' `, as bytes: the name cut at
    /// 128 bytes, arguments quoted while the list is under 128 bytes (each cut to the room left),
    /// each ending at a NUL byte (C strings), CR and LF turned into spaces.
    public static func unknownCommand(_ args: [[UInt8]]) -> [UInt8] {
        var list: [UInt8] = []
        for a in args.dropFirst() {
            if list.count >= 128 { break }
            let room = 128 - list.count
            list.append(UInt8(ascii: "'"))
            list += cString(a, max: room)
            list += [UInt8(ascii: "'"), UInt8(ascii: " ")]
        }
        return oneLine(Array("ERR unknown command '".utf8) + cString(args[0], max: 128)
            + Array("', with args beginning with: ".utf8) + list)
    }

    /// `ERR unknown subcommand 'FOO'. Try CONFIG HELP.`, as bytes (`container` as it is shown).
    public static func unknownSubcommand(_ sub: [UInt8], of container: String) -> [UInt8] {
        oneLine(Array("ERR unknown subcommand '".utf8) + cString(sub, max: 128) + Array("'. Try \(container) HELP.".utf8))
    }

    /// At most `max` bytes, up to the first NUL (as `%.*s` prints an sds string).
    static func cString(_ b: [UInt8], max: Int) -> ArraySlice<UInt8> {
        let cut = b.prefix(Swift.max(0, max))
        return cut.firstIndex(of: 0).map { cut[..<$0] } ?? cut
    }

    /// CR and LF become spaces, so the error stays one line (as Redis's `addReplyErrorFormat`).
    static func oneLine(_ b: [UInt8]) -> [UInt8] {
        b.map { $0 == 0x0D || $0 == 0x0A ? 0x20 : $0 }
    }
}
