/// Redis's command flags that lb-store acts on.
public struct CommandFlags: OptionSet, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// May change the keyspace (Redis's `write`): only these commands' outcomes are logged to the
    /// append-only file, and only when they changed something.
    @inlinable public static var write: CommandFlags { CommandFlags(rawValue: 1 << 0) }
    /// Runs before AUTH when a password is set (Redis's `no_auth`).
    @inlinable public static var noAuth: CommandFlags { CommandFlags(rawValue: 1 << 1) }
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

/// Command names to table rows, case-insensitively and without allocating: a name of up to 15
/// bytes is packed into two little-endian words, every byte ORed with 0x20 (ASCII letters fold to
/// lowercase, the zero padding becomes 0x20) and the length in the top byte, then looked up in an
/// open-addressing table built once, whose slots hold the packed names themselves. Table names
/// are lowercase letters only, and for those the fold is exact: only `A`–`Z` and `a`–`z` fold
/// onto a lowercase letter, and the length keeps `get` apart from `get ` or `get\0`.
public struct CommandIndex: Sendable {
    @usableFromInline struct Slot: Sendable {
        @usableFromInline var lo: UInt64 = 0
        @usableFromInline var hi: UInt64 = 0
        /// The row, or -1 for an empty slot.
        @usableFromInline var row = -1
        @inlinable init() {}
    }

    @usableFromInline let slots: [Slot]
    @usableFromInline let shift: UInt64

    public init(names: [String]) {
        var bits: UInt64 = 4
        while 1 << bits < names.count * 2 { bits += 1 }
        var slots = [Slot](repeating: Slot(), count: 1 << bits)
        for (row, name) in names.enumerated() {
            let b = Array(name.utf8)
            precondition(!b.isEmpty && b.count <= 15 && b.allSatisfy { $0 >= 0x61 && $0 <= 0x7A },
                         "command name \(name): 1 to 15 lowercase letters")
            var k = Slot()
            (k.lo, k.hi) = CommandIndex.pack(b)
            k.row = row
            var s = CommandIndex.slot(k.lo, k.hi, 64 - bits)
            while slots[s].row >= 0 {
                precondition((slots[s].lo, slots[s].hi) != (k.lo, k.hi), "command \(name) listed twice")
                s = (s + 1) & (slots.count - 1)
            }
            slots[s] = k
        }
        self.slots = slots
        shift = 64 - bits
    }

    /// The row named `name` in any letter case, or nil.
    @inlinable @inline(__always) public func find(_ name: [UInt8]) -> Int? {
        guard name.count > 0 && name.count <= 15 else { return nil }
        let (lo, hi) = CommandIndex.pack(name)
        return slots.withUnsafeBufferPointer { slots in
            let mask = slots.count - 1
            var s = CommandIndex.slot(lo, hi, shift)
            while true {
                let e = slots[s]
                if e.row < 0 { return nil }
                if e.lo == lo && e.hi == hi { return e.row }
                s = (s + 1) & mask
            }
        }
    }

    /// `b` (1 to 15 bytes) packed little-endian into two words, every byte (padding too) | 0x20,
    /// the length in the last byte.
    @inlinable @inline(__always) static func pack(_ b: [UInt8]) -> (UInt64, UInt64) {
        var lo: UInt64 = 0, hi: UInt64 = 0
        b.withUnsafeBytes { p in
            let n = p.count
            if n >= 8 {
                lo = p.loadUnaligned(as: UInt64.self)
                var i = n
                while i > 8 { i -= 1; hi = hi << 8 | UInt64(p[i]) }
            } else {
                var i = n
                while i > 0 { i -= 1; lo = lo << 8 | UInt64(p[i]) }
            }
        }
        return (lo | 0x2020_2020_2020_2020, (hi | 0x0020_2020_2020_2020) & 0x00FF_FFFF_FFFF_FFFF | UInt64(b.count) << 56)
    }

    /// The home slot: the top bits of a multiplicative hash of the two words.
    @inlinable @inline(__always) static func slot(_ lo: UInt64, _ hi: UInt64, _ shift: UInt64) -> Int {
        let h = (lo ^ hi &* 0xC2B2_AE3D_27D4_EB4F) &* 0x9E37_79B9_7F4A_7C15
        return Int(truncatingIfNeeded: h >> shift)
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
