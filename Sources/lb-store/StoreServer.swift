import Glibc
import LBIO
import LBStore

/// The server: accepts clients, runs their (pipelined) commands against one keyspace, writes the
/// append-only file before replying, expires keys actively.
final class StoreServer: @unchecked Sendable {
    let config: Config
    let loop: EventLoop
    var keyspace = Keyspace()
    var aof: AppendOnlyFile?
    var clients: [Int32: StoreClient] = [:]
    var nextClientID = 0
    var totalConnections = 0
    let startTime = wallClock().seconds
    var lastRewrite = 0

    init(config: Config) {
        self.config = config
        do { loop = try EventLoop(index: 0) } catch { fail("\(error)") }
        loop.onTurn = { [unowned self] in commitAndReply() }
        loop.busyPoll = BusyPoll(maxMicros: config.busyPollMicros)
    }

    /// Clients with replies produced in this loop turn.
    var pendingReplies: [StoreClient] = []

    /// End of a loop turn (as redis-server's beforeSleep): one AOF write (and fsync under
    /// `always`) for every client's commands of the turn, then their replies. No reply leaves
    /// before the write it acknowledges is in the file.
    func commitAndReply() {
        guard !pendingReplies.isEmpty else { return }
        aof?.flush()
        let clients = pendingReplies
        pendingReplies.removeAll(keepingCapacity: true)
        for c in clients {
            c.pending = false
            c.committed = c.out.bytes.count
            c.writeCommitted()
        }
    }

    func start() {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGPIPE)
        pthread_sigmask(SIG_BLOCK, &set, nil)
        if config.appendOnly {
            let f = AppendOnlyFile(path: config.appendFilename, policy: config.fsync)
            do {
                for w in try f.load(into: &keyspace, now: Int64(wallClock().seconds) * 1000 + Int64(wallClock().millis)) { log(w) }
            } catch { fail("\(error)") }
            aof = f
        }
        guard let addr = SocketAddress(ip: config.bind, port: config.port) else { fail("invalid bind address \(config.bind)") }
        let fd: Int32
        do { fd = try Socket.listen(addr, backlog: 511, reusePort: false) } catch { fail("Could not create server TCP listening socket \(config.bind):\(config.port): \(error)") }
        let l = StoreListener(server: self)
        l.fd = fd
        do { try loop.register(l, events: EventLoop.readable) } catch { fail("\(error)") }
        loop.schedule(afterMillis: 100) { [self] in self.cron() }
        if config.fsync == .everysec, let a = aof {
            let fdCopy = a.fd
            startSyncThread(fdCopy)
        }
        log("lb-store ready to accept connections on \(config.bind):\(config.port)")
        loop.run()
    }

    func startSyncThread(_ fd: Int32) {
        final class Box: @unchecked Sendable { let s: StoreServer; init(_ s: StoreServer) { self.s = s } }
        let box = Box(self)
        do {
            try Threads.start {
                while true {
                    sleep(1)
                    box.s.aof?.sync()
                }
            }
        } catch {
            // Without the thread, everysec becomes "whenever the OS writes back": say so.
            log("\(error): appendfsync everysec runs without its sync thread")
        }
    }

    /// 10 times a second: active expiry, AOF growth check.
    func cron() {
        let gone = keyspace.expireSome(now: nowMillis())
        if !gone.isEmpty { aof?.append(gone.map { [Array("DEL".utf8), $0] }) }
        aof?.flush()
        if let a = aof, a.size > 64 * 1024 * 1024, a.size > 2 * a.baseSize { rewriteAOF() }
        loop.schedule(afterMillis: 100) { [self] in self.cron() }
    }

    /// Background rewrite: the snapshot is taken here (copy-on-write values make it cheap), written
    /// on its own thread, and swapped in on the loop with everything written meanwhile.
    func rewriteAOF() {
        guard let a = aof, !a.isRewriting else { return }
        let snapshot = keyspace.dump()
        let tmp = a.beginRewrite()
        log("Background append only file rewriting started")
        let job = RewriteJob(self, snapshot, tmp)
        do {
            try Threads.start { Self.runRewrite(job) }
        } catch {
            a.abortRewrite(tmp: tmp)
            log("Background AOF rewrite failed: \(error)")
        }
    }

    private static func runRewrite(_ job: RewriteJob) {
            let result: Result<Int, Error> = Result { try AppendOnlyFile.writeSnapshot(job.snapshot, to: job.tmp) }
            let server = job.server, tmp = job.tmp
            server.loop.execute {
                guard let a = server.aof else { return }
                do {
                    let bytes = try result.get()
                    try a.finishRewrite(tmp: tmp, snapshotBytes: bytes)
                    log("Background append only file rewriting terminated with success (\(a.size) bytes)")
                } catch {
                    a.abortRewrite(tmp: tmp)
                    log("Background AOF rewrite failed: \(error)")
                }
            }
    }

    func nowMillis() -> Int64 {
        let (s, ms) = wallClock()
        return Int64(s) * 1000 + Int64(ms)
    }

    /// The time for commands of one read batch (taken once per read, not once per command).
    var batchNow: Int64 = 0

    func accept(_ fd: Int32) {
        nextClientID += 1
        totalConnections += 1
        let c = StoreClient(server: self, fd: fd, id: nextClientID)
        clients[fd] = c
        do { try loop.register(c, events: EventLoop.readable | EventLoop.writable | EventLoop.edge | EventLoop.hangup) } catch {
            Socket.close(fd)
            clients[fd] = nil
            return
        }
        c.readable = true
        c.drive()
    }

    // MARK: commands

    /// A row's meaning: a keyspace command (run against `keyspace`, its outcome logged when the
    /// row has the `write` flag), or a server command (connection, introspection, persistence).
    enum Handler: Sendable {
        case keyspace(Keyspace.Handler)
        case server(@Sendable (StoreServer, _ args: [[UInt8]], _ client: StoreClient, _ reply: inout ReplyWriter) -> Void)
    }

    /// Every command, indexed once: the keyspace's rows, then the server's.
    let commands = CommandTable(Keyspace.commands.map { $0.map(Handler.keyspace) } + StoreServer.serverCommands)

    /// The server commands, with the arity and flags of Redis 7.0's `COMMAND INFO`.
    static let serverCommands: [CommandSpec<Handler>] = [
        CommandSpec("ping", -1, [], .server { _, a, _, r in
            if a.count == 1 { r.simple("PONG") } else if a.count == 2 { r.bulk(a[1]) } else { r.error(CommandError.wrongArity("ping")) }
        }),
        CommandSpec("echo", 2, [], .server { _, a, _, r in r.bulk(a[1]) }),
        CommandSpec("select", 2, [], .server { _, a, _, r in
            guard let db = Keyspace.int(a[1]) else { r.error("ERR value is not an integer or out of range"); return }
            if db == 0 { r.ok() } else { r.error("ERR DB index is out of range") }
        }),
        CommandSpec("auth", -2, .noAuth, .server { s, a, c, r in s.auth(a, c, &r) }),
        CommandSpec("quit", -1, .noAuth, .server { _, _, c, r in
            r.ok()
            c.closeAfterWrite = true
        }),
        CommandSpec("info", -1, [], .server { s, a, _, r in
            r.bulk(s.info(a.count > 1 ? String(decoding: a[1], as: UTF8.self).lowercased() : "default"))
        }),
        CommandSpec("command", -1, [], .server { s, a, _, r in s.command(a, &r) }),
        CommandSpec("config", -2, [], .server { s, a, _, r in s.config(a, &r) }),
        CommandSpec("client", -2, [], .server { _, a, c, r in
            switch Keyspace.upper(a[1]) {
            case "SETNAME": if a.count == 3 { c.name = a[2]; r.ok() } else { r.error(CommandError.wrongArity("client|setname")) }
            case "GETNAME": if a.count == 2 { if c.name.isEmpty { r.null() } else { r.bulk(c.name) } } else { r.error(CommandError.wrongArity("client|getname")) }
            case "ID": if a.count == 2 { r.integer(c.id) } else { r.error(CommandError.wrongArity("client|id")) }
            // Redis 7.2's client library report (redis-py and others send it); accepted and ignored.
            case "SETINFO": if a.count == 4 { r.ok() } else { r.error(CommandError.wrongArity("client|setinfo")) }
            default: r.error(CommandError.unknownSubcommand(a[1], of: "CLIENT"))
            }
        }),
        CommandSpec("bgrewriteaof", 1, [], .server { s, _, _, r in
            if s.aof?.isRewriting == true {
                r.error("ERR Background append only file rewriting already in progress")
            } else {
                s.rewriteAOF()
                r.simple("Background append only file rewriting started")
            }
        }),
        CommandSpec("save", 1, [], .server { s, _, _, r in s.save(&r) }),
        CommandSpec("bgsave", -1, [], .server { s, a, _, r in
            guard a.count == 1 || (a.count == 2 && Keyspace.upper(a[1]) == "SCHEDULE") else { r.error("ERR syntax error"); return }
            s.save(&r)
        }),
    ]

    /// Runs one command: lookup and arity (Redis's errors) in `CommandTable.resolve`, then the
    /// password gate, then the row's handler. Keyspace replies go straight into the client's buffer.
    func run(_ args: [[UInt8]], client c: StoreClient, into r: inout ReplyWriter) {
        guard let i = commands.resolve(args, errorInto: &r) else { return }
        let flags = commands.commands[i].flags
        if !c.authenticated && !flags.contains(.noAuth) {
            r.error("NOAUTH Authentication required.")
            return
        }
        keyspace.stats.commands += 1
        switch commands.commands[i].handler {
        case .keyspace(let handler):
            var outcome = Keyspace.Outcome()
            swap(&outcome.reply, &r)
            handler(&keyspace, args, batchNow, &outcome)
            swap(&outcome.reply, &r)
            if flags.contains(.write) {
                if outcome.logAsReceived { aof?.appendCommand(args) }
                if !outcome.log.isEmpty { aof?.append(outcome.log) }
            }
        case .server(let handler):
            handler(self, args, c, &r)
        }
    }

    func auth(_ args: [[UInt8]], _ c: StoreClient, _ r: inout ReplyWriter) {
        guard args.count <= 3 else { r.error("ERR syntax error"); return }
        guard let pass = config.requirePass else {
            r.error("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")
            return
        }
        if String(decoding: args.last!, as: UTF8.self) == pass && (args.count == 2 || String(decoding: args[1], as: UTF8.self) == "default") {
            c.authenticated = true
            r.ok()
        } else {
            r.error("WRONGPASS invalid username-password pair or user is disabled.")
        }
    }

    /// COMMAND [COUNT | INFO | DOCS]: the count is the table's; INFO and DOCS answer empty.
    func command(_ args: [[UInt8]], _ r: inout ReplyWriter) {
        guard args.count > 1 else { r.arrayHeader(0); return }
        switch Keyspace.upper(args[1]) {
        case "COUNT": if args.count == 2 { r.integer(commands.commands.count) } else { r.error(CommandError.wrongArity("command|count")) }
        case "DOCS", "INFO": r.arrayHeader(0)
        default: r.error(CommandError.unknownSubcommand(args[1], of: "COMMAND"))
        }
    }

    /// CONFIG GET pattern... (the settings a client may ask for) and CONFIG SET (accepted, ignored).
    func config(_ args: [[UInt8]], _ r: inout ReplyWriter) {
        switch Keyspace.upper(args[1]) {
        case "GET":
            guard args.count >= 3 else { r.error(CommandError.wrongArity("config|get")); return }
            let settings: [(String, String)] = [("port", "\(config.port)"), ("bind", config.bind), ("dir", config.dir),
                                                ("appendonly", config.appendOnly ? "yes" : "no"), ("appendfsync", config.fsync.rawValue),
                                                ("save", ""), ("databases", "1"), ("maxmemory", "0"), ("requirepass", config.requirePass ?? "")]
            var out: [[UInt8]] = []
            for p in args[2...] {
                for (k, v) in settings where Keyspace.matches(pattern: p, Array(k.utf8)) { out += [Array(k.utf8), Array(v.utf8)] }
            }
            r.array(out)
        case "SET":
            guard args.count >= 4 && args.count % 2 == 0 else { r.error(CommandError.wrongArity("config|set")); return }
            r.ok()
        default:
            r.error(CommandError.unknownSubcommand(args[1], of: "CONFIG"))
        }
    }

    /// SAVE and BGSAVE: the append-only file is the persistence; both write and fsync it now.
    func save(_ r: inout ReplyWriter) {
        aof?.flush()
        aof?.sync()
        r.ok()
    }

    func info(_ section: String) -> String {
        var s = ""
        let all = section == "default" || section == "all" || section == "everything"
        if all || section == "server" {
            s += "# Server\r\nredis_version:7.0.0\r\nlb_store_version:0.1.0\r\nredis_mode:standalone\r\nos:Linux\r\narch_bits:64\r\nprocess_id:\(getpid())\r\ntcp_port:\(config.port)\r\nuptime_in_seconds:\(wallClock().seconds - startTime)\r\n\r\n"
        }
        if all || section == "clients" {
            s += "# Clients\r\nconnected_clients:\(clients.count)\r\n\r\n"
        }
        if all || section == "persistence" {
            s += "# Persistence\r\nloading:0\r\naof_enabled:\(aof != nil ? 1 : 0)\r\naof_rewrite_in_progress:\(aof?.isRewriting == true ? 1 : 0)\r\naof_current_size:\(aof?.size ?? 0)\r\naof_base_size:\(aof?.baseSize ?? 0)\r\naof_fsync_policy:\(config.fsync.rawValue)\r\n\r\n"
        }
        if all || section == "stats" {
            s += "# Stats\r\ntotal_connections_received:\(totalConnections)\r\ntotal_commands_processed:\(keyspace.stats.commands)\r\nexpired_keys:\(keyspace.stats.expired)\r\nkeyspace_hits:\(keyspace.stats.hits)\r\nkeyspace_misses:\(keyspace.stats.misses)\r\n\r\n"
        }
        if all || section == "keyspace" {
            s += "# Keyspace\r\n"
            if keyspace.count > 0 { s += "db0:keys=\(keyspace.count),expires=\(keyspace.expiresCount),avg_ttl=0\r\n" }
            s += "\r\n"
        }
        return s
    }
}

final class StoreListener: Pollable {
    unowned(unsafe) let server: StoreServer
    init(server: StoreServer) { self.server = server }
    override func ready(_ events: UInt32) {
        var peer = SocketAddress()
        for _ in 0..<64 {
            guard case .done(let fd)? = try? Socket.accept(self.fd, peer: &peer) else { return }
            try? Socket.setOption(fd, 6, 1, 1)
            server.accept(fd)
        }
    }
}

/// One client connection: pipelined commands in, replies out, with backpressure.
final class StoreClient: Pollable {
    unowned(unsafe) let server: StoreServer
    let id: Int
    var inBuf = Buffer()
    var out = ReplyWriter()
    var outOffset = 0
    var readable = false
    var writable = true
    var closed = false
    var closeAfterWrite = false
    var authenticated = false
    var name: [UInt8] = []
    /// Queued for the end-of-turn commit; replies up to `committed` may be written.
    var pending = false
    var committed = 0

    init(server: StoreServer, fd: Int32, id: Int) {
        self.server = server
        self.id = id
        super.init()
        self.fd = fd
        authenticated = server.config.requirePass == nil
    }

    deinit { inBuf.release() }

    override func ready(_ events: UInt32) {
        if events & EventLoop.readable != 0 { readable = true }
        if events & EventLoop.writable != 0 { writable = true }
        if events & (EventLoop.hangup | EventLoop.error) != 0 { readable = true }
        drive()
    }

    func drive() {
        while !closed {
            // Reply backlog bounds reading (a client that does not read its replies stops being read).
            if out.bytes.count - outOffset < 1 << 20 && readable && !closeAfterWrite {
                if inBuf.writableTail < 4096 {
                    inBuf.compact()
                    if inBuf.writableTail < 4096 { inBuf.reserve(max(inBuf.capacity * 2, 16384)) }
                }
                switch try? Socket.read(fd, inBuf.writePointer, inBuf.writableTail) {
                case .done(0)?, nil:
                    close()
                    return
                case .done(let n)?:
                    inBuf.writeIndex += n
                    if n < inBuf.writableTail { readable = false }
                case .wouldBlock?:
                    readable = false
                }
                process()
            }
            // Replies wait for the end of the loop turn (group commit with every other client).
            if out.bytes.count > committed && !pending {
                pending = true
                server.pendingReplies.append(self)
            }
            // What an earlier turn committed can go now (the socket was full then).
            if committed > outOffset && !flush(upTo: committed) { return }
            if !readable || closeAfterWrite { return }
        }
    }

    /// Writes the committed replies; closes after QUIT once everything is out.
    func writeCommitted() {
        guard !closed else { return }
        if !flush(upTo: committed) { return }
        if closeAfterWrite && out.bytes.count == outOffset { close() }
    }

    /// The current command's arguments; their buffers are reused from command to command.
    var args: [[UInt8]] = []

    func process() {
        server.batchNow = server.nowMillis()
        while inBuf.readable > 0 && !closeAfterWrite {
            let used: Int?
            do { used = try RESP.parseCommand(inBuf.readableBytes, into: &args) } catch {
                if case .protocolError(let m) = error { out.error("ERR Protocol error: \(m)") }
                closeAfterWrite = true
                inBuf.clear()
                return
            }
            guard let used else { return }
            inBuf.readIndex += used
            if args.isEmpty { continue }
            server.run(args, client: self, into: &out)
        }
        if inBuf.isEmpty { inBuf.clear() }
    }

    /// Writes replies up to `limit`; false when the socket is full or closed.
    func flush(upTo limit: Int) -> Bool {
        while outOffset < limit {
            guard writable else { return false }
            let r = out.bytes.withUnsafeBytes { p in try? Socket.write(fd, p.baseAddress! + outOffset, limit - outOffset) }
            switch r {
            case .done(let n)?: outOffset += n
            case .wouldBlock?: writable = false; return false
            case nil: close(); return false
            }
        }
        if outOffset == out.bytes.count {
            out.bytes.removeAll(keepingCapacity: out.bytes.count < 1 << 16)
            outOffset = 0
            committed = 0
        }
        return true
    }

    func close() {
        guard !closed else { return }
        closed = true
        server.loop.deregister(self)
        Socket.close(fd)
        server.clients[fd] = nil
    }
}

/// A background AOF rewrite: the snapshot and where it goes, handed to its thread.
final class RewriteJob: @unchecked Sendable {
    let server: StoreServer
    let snapshot: [[[UInt8]]]
    let tmp: String
    init(_ s: StoreServer, _ r: [[[UInt8]]], _ t: String) { server = s; snapshot = r; tmp = t }
}
