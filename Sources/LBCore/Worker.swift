import Synchronization
import Glibc
import LBConfig
import LBHTTP
import LBIO

/// One event-loop thread's state: its connections, its upstream keep-alive pools, its log buffers.
public final class Worker: @unchecked Sendable {
    public let loop: EventLoop
    public let index: Int
    unowned let runtime: Runtime
    var dates = DateCache()
    /// Idle upstream connections by (upstream runtime id, peer index); LIFO. The dictionary maps
    /// to an index so the hot path mutates `poolLists` in place.
    var poolIndex: [PoolKey: Int] = [:]
    var poolLists: [[UpstreamConnection]] = []
    /// Recycled 4 KiB client buffers: connections return theirs when idle instead of freeing
    /// them (larger heads grow past it, like nginx's large_client_header_buffers).
    var spareBuffers: [UnsafeMutableRawPointer] = []
    static let bufferSize = 4096
    static let maxSpareBuffers = 256
    /// Emptied arrays of finished exchanges, for the next ones (ClientConnection.beginExchange).
    var spareExchangeStorage: [ExchangeStorage] = []
    /// Finished exchanges, reset, for the next requests of any connection or HTTP/2 stream, the
    /// last one finished first (ClientConnection.endExchange, beginExchange). The bound is above
    /// the requests a busy worker has in flight at once (64 HTTP/2 connections of 10 streams
    /// each proxying: 640), so that a burst of them ending is kept whole, not dropped to be
    /// allocated again; at most about 1.3 MB.
    var spareExchanges: [Exchange] = []
    static let maxSpareExchanges = 1024
    /// Request heads of connections that went idle, kept for the next request that arrives (on any
    /// connection): a keep-alive request after an idle wait takes one without allocating.
    var spareRequestHeads: [RequestHeadStorage.Pointer] = []
    static let maxSpareRequestHeads = 256
    var listeners: [Int32: ListenerSocket] = [:]
    var accessLogs: [String: AccessLogFile] = [:]
    /// Live client connections (for graceful stop and stats).
    var clients = 0
    /// Live client connections by number (graceful stop closes the idle ones).
    var live: [Int: ClientConnection] = [:]
    /// Mirror subrequests in progress (Mirror.swift): each pipe holds its connection.
    var mirrors: [ObjectIdentifier: MirrorPipe] = [:]
    var draining = false
    /// The newest generation, as this worker last heard (set at start and by every reload's
    /// message to the loop), so the request path reads it without the runtime's lock.
    var generation: Generation {
        // A reload: HTTP/2 connections of older generations say GOAWAY, finish their streams, close.
        didSet {
            for s in h2Sessions.values where s.generation !== generation { s.goAway() }
            if generation !== oldValue {
                dropOpenFileCaches()
                spareExchanges.removeAll() // (they refer to the old configuration's servers)
            }
        }
    }
    /// Live HTTP/2 connections by number (reload and graceful stop send them GOAWAY).
    var h2Sessions: [Int: H2Session] = [:]
    /// HTTP/2 connections whose streams framed output (or closed) outside the connection's own
    /// drive in this loop turn: an upstream's readiness, a timer. Written at the end of the turn
    /// (`endOfTurn`), so the responses of one epoll batch share one write. A session is here at
    /// most once (`H2Session.turnQueued`): bounded by the connections; both arrays keep their
    /// capacity, nothing is allocated per response.
    var h2EndOfTurn: [H2Session] = []
    private var h2EndOfTurnRunning: [H2Session] = []
    var nextConnection = 0
    public private(set) var accepted = 0
    /// Counters other threads read (status page, metrics).
    public let stats = WorkerStats()
    public private(set) var handled = 0

    struct PoolKey: Hashable {
        var upstream: Int
        var peer: Int
    }

    init(index: Int, runtime: Runtime) throws(IOError) {
        self.index = index
        self.runtime = runtime
        self.generation = runtime.current
        self.loop = try EventLoop(index: index)
        loop.onTurn = { [unowned self] in self.endOfTurn() }
    }

    /// Adds listening sockets (shared fds; EPOLLEXCLUSIVE spreads accepts over workers). While
    /// accepting is paused they join the others when it resumes.
    func addListeners(_ fds: sending [(Int32, HostPort)]) {
        for (fd, addr) in fds where listeners[fd] == nil {
            let l = ListenerSocket(worker: self, fd: fd, address: addr)
            if acceptPause == .none && !activate(l) { continue }
            listeners[fd] = l
        }
    }

    /// Puts a listener into the loop; false (logged) when epoll refuses it.
    private func activate(_ l: ListenerSocket) -> Bool {
        do {
            try loop.register(l, events: EventLoop.readable | EventLoop.exclusive)
            l.active = true
            return true
        } catch {
            runtime.errorLog.log(.emerg, "epoll_ctl for listener \(l.address) failed: \(error)", worker: index)
            return false
        }
    }

    func removeListeners(_ fds: [Int32]) {
        for fd in fds {
            if let l = listeners.removeValue(forKey: fd) {
                loop.deregister(l)
                l.active = false
            }
        }
    }

    // MARK: connection limits

    /// Why this worker's listeners are out of its loop (nginx's `ngx_disable_accept_events`).
    enum AcceptPause {
        case none
        /// `worker_connections` were in use and none was idle when a client was accepted: until
        /// one of them closes, or (checked every `acceptRetryMs`) one is idle to reuse. That
        /// client waits in `parked`.
        case full
        /// accept4() ran out of file descriptors: for `acceptRetryMs`, as nginx's
        /// `accept_mutex_delay` timer does.
        case outOfFiles
    }

    var acceptPause = AcceptPause.none
    /// Counts pauses, so a retry timer of an earlier pause does nothing.
    var pauseNumber = 0
    /// The client accepted when the worker was full, admitted first when a connection closes
    /// (nginx closes it; here it waits, as do the clients still in the listen backlog).
    var parked: (fd: Int32, peer: SocketAddress, listener: ListenerSocket)?
    static let acceptRetryMs = 500
    /// Open upstream connections, in use or pooled (they count against `worker_connections`).
    var upstreamConnections = 0
    var reuseWarning = OncePerSecond()
    var fullAlert = OncePerSecond()

    /// This worker's share of connections: `worker_connections` of the newest configuration.
    var workerConnections: Int { generation.table.main.workerConnections }

    /// Connections in use as nginx counts them: listeners, clients and upstream connections.
    var connectionsInUse: Int { listeners.count + clients + upstreamConnections }

    /// Whether one more connection fits in `worker_connections`, after closing idle keep-alive
    /// client connections when few are free (nginx's `ngx_get_connection`, which client accepts
    /// and upstream connects both go through). A false answer is the caller's to report.
    func roomForConnection() -> Bool {
        let budget = ConnectionBudget(limit: workerConnections)
        if budget.hasSlack(inUse: connectionsInUse) { return true }
        reuseIdleConnections(budget)
        return connectionsInUse < budget.limit
    }

    /// nginx's `ngx_drain_connections`: closes a few idle client connections (those whose idle
    /// timeout comes first) so new work gets their slots.
    private func reuseIdleConnections(_ budget: ConnectionBudget) {
        var idle: [ClientConnection] = []
        for c in live.values where c.isIdle { idle.append(c) }
        let n = budget.reuseCount(reusable: idle.count)
        guard n > 0 else { return }
        if reuseWarning.due(nowMillis: loop.now) {
            runtime.errorLog.log(.warn, "\(budget.limit) worker_connections are not enough, reusing connections", worker: index)
        }
        if n < idle.count {
            idle.sort { $0.deadline < $1.deadline }
        }
        for c in idle.prefix(n) { c.close() }
    }

    /// A client was accepted but the worker is full: it waits, and so does accepting, until one
    /// of the worker's connections closes (other workers still take clients from the backlog).
    func full(parking fd: Int32, peer: SocketAddress, listener: ListenerSocket) {
        if fullAlert.due(nowMillis: loop.now) {
            runtime.errorLog.log(.alert, "\(workerConnections) worker_connections are not enough", worker: index)
        }
        parked = (fd, peer, listener)
        pauseAccepting(.full)
        retryParked(pause: pauseNumber)
    }

    /// Connections that finish their requests stay open (keep-alive): without a close to wake
    /// the worker, it looks for idle ones to reuse every `acceptRetryMs`.
    private func retryParked(pause: Int) {
        loop.schedule(afterMillis: Worker.acceptRetryMs) { [unowned self] in
            guard self.acceptPause == .full, self.pauseNumber == pause else { return }
            if self.roomForConnection() { self.admitParked() } else { self.retryParked(pause: pause) }
        }
    }

    /// Takes the parked client (there is room for it) and accepts again; the next accept checks
    /// room once more.
    private func admitParked() {
        if let p = parked {
            parked = nil
            accepted(fd: p.fd, peer: p.peer, listener: p.listener)
        }
        if acceptPause == .full { resumeAccepting() }
    }

    /// accept4() failed with EMFILE/ENFILE: one line, then no accepts for `acceptRetryMs` (a
    /// level-triggered listener would otherwise report the same pending client at once, forever).
    func outOfFiles(_ error: IOError) {
        runtime.errorLog.log(.crit, error.description, worker: index)
        pauseAccepting(.outOfFiles)
        let pause = pauseNumber
        loop.schedule(afterMillis: Worker.acceptRetryMs) { [unowned self] in
            if self.acceptPause == .outOfFiles && self.pauseNumber == pause { self.resumeAccepting() }
        }
    }

    private func pauseAccepting(_ why: AcceptPause) {
        acceptPause = why
        pauseNumber += 1
        for l in listeners.values where l.active {
            loop.deregister(l)
            l.active = false
        }
    }

    private func resumeAccepting() {
        acceptPause = .none
        guard !draining else { return }
        for l in listeners.values where !l.active { _ = activate(l) }
    }

    /// A client or upstream connection closed: a full worker admits its parked client.
    @inline(__always)
    func connectionSlotFreed() {
        if acceptPause == .full && connectionsInUse < workerConnections { admitParked() }
    }

    /// Stops accepting and lets connections finish; stops the loop when none remain.
    func drain() {
        draining = true
        acceptPause = .none
        if let p = parked {
            Socket.close(p.fd)
            parked = nil
        }
        removeListeners(Array(listeners.keys))
        for list in poolLists { for c in list { c.close() } }
        poolLists = poolLists.map { _ in [] }
        for c in live.values where c.isIdle { c.close() }
        for s in Array(h2Sessions.values) { s.goAway() }
        checkDrained()
    }

    func checkDrained() {
        if draining && clients == 0 {
            flushLogs()
            loop.stop()
        }
    }

    func accepted(fd: Int32, peer: SocketAddress, listener: ListenerSocket) {
        accepted += 1
        stats.accepted.add(1, ordering: .relaxed)
        stats.connections.add(1, ordering: .relaxed)
        nextConnection += 1
        let gen = generation
        guard let li = gen.listenerIndex[listener.address] else {
            Socket.close(fd)
            return
        }
        // tcp_nodelay (on by default, as nginx): small responses leave without Nagle's delay.
        if gen.table.servers[gen.table.listeners[li].defaultServer].settings.resolved.tcpNodelay && !peer.isUnix {
            try? Socket.setOption(fd, 6 /* IPPROTO_TCP */, 1 /* TCP_NODELAY */, 1)
        }
        let number = nextConnection * runtime.workers.count + index
        if gen.table.listeners[li].proxyProtocol {
            // The PROXY protocol header first (before any TLS), then the connection as usual.
            clients += 1
            ProxyProtocolReader(worker: self, fd: fd, peer: peer, generation: gen, listener: li, number: number).start()
            return
        }
        admit(fd: fd, peer: peer, generation: gen, listener: li, number: number, proxyProtocol: nil)
    }

    /// Starts the client connection of an accepted socket (after its PROXY protocol header, if
    /// the listener has `proxy_protocol`).
    func admit(fd: Int32, peer: SocketAddress, generation gen: Generation, listener li: Int, number: Int,
               proxyProtocol: ProxyProtocolHeader?) {
        let c = ClientConnection(worker: self, fd: fd, peer: peer, generation: gen, listener: li, number: number)
        if proxyProtocol != nil { c.proxyProtocol = proxyProtocol }
        if let tls = gen.table.listeners[li].tls { c.startTLS(tls) }
        clients += 1
        c.start()
    }

    func connectionClosed() {
        clients -= 1
        stats.connections.subtract(1, ordering: .relaxed)
        handled += 1
        if draining { checkDrained() } else { connectionSlotFreed() }
    }

    // MARK: upstream pools

    func takeIdle(upstream: Int, peer: Int) -> UpstreamConnection? {
        guard let i = poolIndex[PoolKey(upstream: upstream, peer: peer)] else { return nil }
        while let c = poolLists[i].popLast() {
            if c.isUsable { return c }
            c.close()
        }
        return nil
    }

    func putIdle(_ c: UpstreamConnection, keepalive: Int, timeoutMs: Int) {
        let key = PoolKey(upstream: c.upstreamID, peer: c.peerIndex)
        let i: Int
        if let existing = poolIndex[key] { i = existing } else {
            i = poolLists.count
            poolLists.append([])
            poolIndex[key] = i
        }
        if poolLists[i].count >= keepalive {
            // nginx closes the least recently used one.
            poolLists[i].removeFirst().close()
        }
        c.owner = nil
        c.pooled = true
        loop.setDeadline(c, afterMillis: timeoutMs)
        poolLists[i].append(c)
    }

    func removeIdle(_ c: UpstreamConnection) {
        if let i = poolIndex[PoolKey(upstream: c.upstreamID, peer: c.peerIndex)], let j = poolLists[i].firstIndex(where: { $0 === c }) {
            poolLists[i].remove(at: j)
        }
    }

    // MARK: static file metadata

    struct FileMeta {
        var mtime: Int
        var size: Int
        var etag: String
        var lastModified: [UInt8]
        var type: String
    }

    /// Per-worker cache of formatted validators, keyed by file path and checked against the
    /// `stat` the request does anyway (so a changed file is never served with stale validators).
    var fileMetaCache: [PathKey: FileMeta] = [:] // PathKey: the path hashed as one run of bytes

    func fileMeta(path: [UInt8], mtime: Int, size: Int, type: () -> String) -> FileMeta {
        let key = PathKey(path)
        if let m = fileMetaCache[key], m.mtime == mtime, m.size == size { return m }
        if fileMetaCache.count >= 4096 { fileMetaCache.removeAll(keepingCapacity: true) }
        let m = FileMeta(mtime: mtime, size: size, etag: "\"\(String(mtime, radix: 16))-\(String(size, radix: 16))\"",
                         lastModified: Array(DateCache.httpDate(mtime).utf8), type: type())
        fileMetaCache[key] = m
        return m
    }

    // MARK: buffers

    /// Gives `b` standard-size storage (from the spare list when possible) when it has none.
    @inline(__always)
    // MARK: open cache files

    /// Cache entry files kept open per worker, so a hit costs no open/close. Keyed by zone and
    /// hash; a file is used only while its inode is the indexed one, is shared by concurrent
    /// responses (sendfile takes an explicit offset), and closed only when no response uses it.
    var sharedFiles: [SharedFileKey: SharedFile] = [:]
    static let maxSharedFiles = 1024
    var sharedFileSweep = false

    func sharedFile(zone: CacheZoneRuntime, hash: CacheHash, inode: UInt64, open: () -> Int32?) -> SharedFile? {
        let key = SharedFileKey(zone: ObjectIdentifier(zone), hash: hash)
        if let f = sharedFiles[key] {
            if f.inode == inode {
                f.lastUse = loop.now
                return f
            }
            retire(f)
            sharedFiles[key] = nil
        }
        guard let fd = open() else { return nil }
        if sharedFiles.count >= Worker.maxSharedFiles {
            for f in sharedFiles.values { retire(f) }
            sharedFiles.removeAll(keepingCapacity: true)
        }
        let f = SharedFile(fd: fd, inode: inode, now: loop.now)
        sharedFiles[key] = f
        if !sharedFileSweep {
            sharedFileSweep = true
            loop.schedule(afterMillis: 5000) { [unowned self] in self.sweepSharedFiles() }
        }
        return f
    }

    /// Drops a file from the table (closing it once no response uses it).
    func forgetSharedFile(zone: CacheZoneRuntime, hash: CacheHash) {
        let key = SharedFileKey(zone: ObjectIdentifier(zone), hash: hash)
        if let f = sharedFiles.removeValue(forKey: key) { retire(f) }
    }

    /// A response is done with a shared file (a cache hit's, or one of an open file cache):
    /// closed when it was retired and this was its last user.
    func releaseSharedFile(_ f: SharedFile) {
        if f.release() { Glibc.close(f.fd) }
    }

    private func retire(_ f: SharedFile) {
        if f.retire() { Glibc.close(f.fd) }
    }

    /// Closes files unused for 5 s (an evicted or purged entry's disk space is freed soon).
    private func sweepSharedFiles() {
        let now = loop.now
        for (k, f) in sharedFiles where now - f.lastUse >= 5000 {
            retire(f)
            sharedFiles[k] = nil
        }
        if sharedFiles.isEmpty {
            sharedFileSweep = false
        } else {
            loop.schedule(afterMillis: 5000) { [unowned self] in self.sweepSharedFiles() }
        }
    }

    // MARK: open file caches (open_file_cache)

    /// This worker's cache of each `open_file_cache` occurrence in use (nginx's caches are per
    /// worker process and per directive). Keyed by the zone's identity; the cache holds the
    /// zone, so the key stays unique while it is here.
    var openFileCaches: [ObjectIdentifier: (zone: OpenFileCacheZone, cache: OpenFileCache)] = [:]
    var openFileCacheSweep = false
    /// Watches the files the caches hold in memory (made with the first cache; nil if the
    /// system has no inotify instance to give).
    var fileWatcher: FileWatcher?

    /// The last cache asked for (most requests of a worker use one): no hashing then.
    private var lastOpenFileCache: (zone: OpenFileCacheZone, cache: OpenFileCache)?

    func openFileCache(_ zone: OpenFileCacheZone) -> OpenFileCache {
        if let last = lastOpenFileCache, last.zone === zone { return last.cache }
        if let c = openFileCaches[ObjectIdentifier(zone)] {
            lastOpenFileCache = c
            return c.cache
        }
        var calls = FileSystemCalls.system
        if fileWatcher == nil { fileWatcher = FileWatcher(worker: self) }
        if let w = fileWatcher {
            calls.watch = { [unowned w] file in w.watch(file) }
            calls.unwatch = { [unowned w] wd in w.unwatch(wd) }
        }
        let c = OpenFileCache(max: zone.max, inactiveMs: zone.inactiveMs, calls: calls)
        openFileCaches[ObjectIdentifier(zone)] = (zone, c)
        lastOpenFileCache = (zone, c)
        scheduleOpenFileCacheSweep()
        return c
    }

    /// One timer for all caches: entries idle for their `inactive` are dropped (their
    /// descriptors closed) even when nothing is looked up; an emptied cache goes.
    private func scheduleOpenFileCacheSweep() {
        guard !openFileCacheSweep, !openFileCaches.isEmpty else { return }
        openFileCacheSweep = true
        let shortest = openFileCaches.values.map { $0.cache.inactiveMs }.min() ?? 5000
        loop.schedule(afterMillis: Int(min(5000, max(1000, shortest)))) { [unowned self] in
            self.openFileCacheSweep = false
            let now = self.loop.now
            for (k, c) in self.openFileCaches where !c.cache.sweep(now: now) {
                self.openFileCaches[k] = nil
                if self.lastOpenFileCache?.cache === c.cache { self.lastOpenFileCache = nil }
            }
            self.scheduleOpenFileCacheSweep()
        }
    }

    /// A reload: the new generation's locations name new zones; the old caches close their
    /// descriptors now (those in use when their responses end).
    func dropOpenFileCaches() {
        for c in openFileCaches.values { c.cache.removeAll() }
        openFileCaches.removeAll()
        lastOpenFileCache = nil
    }

    /// A request head for a connection whose request begins (from the pool when one is there).
    @inline(__always)
    func takeRequestHead() -> RequestHeadStorage.Pointer {
        spareRequestHeads.popLast() ?? RequestHeadStorage.allocate()
    }

    /// Takes back the head of a connection that went idle: its bytes and header list keep their
    /// storage for the next request (up to the standard size), beyond the pool's bound it is freed.
    @inline(__always)
    func putRequestHead(_ h: RequestHeadStorage.Pointer) {
        guard spareRequestHeads.count < Worker.maxSpareRequestHeads else {
            RequestHeadStorage.free(h)
            return
        }
        let bytes = RequestHeadStorage.bytes(h), parsed = RequestHeadStorage.parsed(h)
        bytes.pointee.clear()
        if bytes.pointee.capacity > Worker.bufferSize { bytes.pointee.release() }
        if parsed.pointee.headers.capacity > 64 { parsed.pointee.headers = [] }
        spareRequestHeads.append(h)
    }

    func prepare(_ b: inout Buffer) {
        guard b.base == nil else { return }
        if let p = spareBuffers.popLast() { b.adopt(p, capacity: Worker.bufferSize) } else { b.reserve(Worker.bufferSize) }
    }

    /// Takes `b`'s storage back (standard-size ones are kept for reuse); `b` is left empty.
    @inline(__always)
    func recycle(_ b: inout Buffer) {
        if b.capacity == Worker.bufferSize && spareBuffers.count < Worker.maxSpareBuffers, let p = b.disown() {
            spareBuffers.append(p)
        } else {
            b.release()
        }
    }

    // MARK: logs

    func accessLog(_ path: String) -> AccessLogFile {
        if let f = accessLogs[path] { return f }
        let f = AccessLogFile(path: path)
        accessLogs[path] = f
        return f
    }

    func reopenLogs() {
        for (_, f) in accessLogs { f.reopen() }
    }

    func flushLogs() {
        for (_, f) in accessLogs { f.flush() }
    }

    private func endOfTurn() {
        // Until none is left: a session's settle can queue it again (the streams a connection
        // error closes) or, through a stream, another one.
        while !h2EndOfTurn.isEmpty {
            swap(&h2EndOfTurn, &h2EndOfTurnRunning)
            for s in h2EndOfTurnRunning { s.endOfTurn() }
            h2EndOfTurnRunning.removeAll(keepingCapacity: true)
        }
        for (_, f) in accessLogs where !f.isEmpty { f.flushIfDue(now: loop.now) }
    }
}

/// A listening socket as seen by one worker.
final class ListenerSocket: Pollable {
    /// The worker outlives every connection it owns: no reference counting on this hot field.
    unowned(unsafe) let worker: Worker
    let address: HostPort
    /// Registered with the worker's loop (false while accepting is paused).
    var active = false

    init(worker: Worker, fd: Int32, address: HostPort) {
        self.worker = worker
        self.address = address
        super.init()
        self.fd = fd
    }

    override func ready(_ events: UInt32) {
        var peer = SocketAddress()
        // Accept a bounded batch per event so one busy listener cannot starve the loop.
        // Room is checked after an accept, as nginx does: idle connections are closed for a client
        // that is there, never in case one comes.
        for _ in 0..<64 {
            guard active else { return }
            do {
                switch try Socket.accept(fd, peer: &peer) {
                case .done(let cfd):
                    if worker.roomForConnection() {
                        worker.accepted(fd: cfd, peer: peer, listener: self)
                    } else {
                        worker.full(parking: cfd, peer: peer, listener: self)
                    }
                case .wouldBlock: return
                }
            } catch {
                if error.errno == EMFILE || error.errno == ENFILE { worker.outOfFiles(error) }
                return
            }
        }
    }
}

/// A buffered access log file for one worker: lines are appended in memory and written at the end
/// of a loop turn (or when the buffer fills), so a slow disk costs one write per turn, not per request.
final class AccessLogFile {
    let path: String
    var fd: Int32 = -1
    var buf = Buffer()
    var bufferLimit = 64 * 1024
    var flushEveryMs: Int64 = 0
    var lastFlush: Int64 = 0

    init(path: String) {
        self.path = path
        reopen()
    }

    deinit {
        flush()
        if fd > 2 { close(fd) }
    }

    var isEmpty: Bool { buf.isEmpty }

    func reopen() {
        flush()
        if fd > 2 { close(fd) }
        switch path {
        case "stderr": fd = 2
        case "/dev/stdout": fd = 1
        default: fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        }
    }

    func flushIfDue(now: Int64) {
        if flushEveryMs == 0 || buf.readable >= bufferLimit || now - lastFlush >= flushEveryMs {
            lastFlush = now
            flush()
        }
    }

    func flush() {
        guard !buf.isEmpty else { return }
        if fd >= 0 {
            var p = buf.readableBytes
            while !p.isEmpty {
                let n = write(fd, p.baseAddress, p.count)
                if n < 0 { if errno == EINTR { continue } else { break } }
                p = UnsafeRawBufferPointer(rebasing: p[n...])
            }
        }
        buf.clear()
    }
}

struct SharedFileKey: Hashable {
    var zone: ObjectIdentifier
    var hash: CacheHash
}

/// A request's head as a connection holds it while the request lasts: the bytes (copied out of
/// the read buffer, so that buffer can go back to the pool) and the parsed head pointing into
/// them. Between requests a connection holds none (`ClientConnection.requestHead` is nil), so an
/// idle keep-alive connection keeps neither the bytes, the header list nor the 340-byte parsed
/// head; the worker pools a bounded number for reuse. Allocated by hand (like `Buffer`'s bytes):
/// the connection's `head` and `req` reach it through a plain pointer, with no reference counting
/// on the request path.
enum RequestHeadStorage {
    /// Where one storage lives: a `Buffer` and, after it, a `RequestHead`, in one allocation.
    typealias Pointer = UnsafeMutableRawPointer

    /// The parsed head's offset: after the buffer, aligned for `RequestHead`.
    private static let parsedOffset = (MemoryLayout<Buffer>.size + MemoryLayout<RequestHead>.alignment - 1)
        & ~(MemoryLayout<RequestHead>.alignment - 1)

    static func allocate() -> Pointer {
        let p = UnsafeMutableRawPointer.allocate(byteCount: parsedOffset + MemoryLayout<RequestHead>.size,
                                                 alignment: max(MemoryLayout<Buffer>.alignment, MemoryLayout<RequestHead>.alignment))
        p.initializeMemory(as: Buffer.self, to: Buffer())
        (p + parsedOffset).initializeMemory(as: RequestHead.self, to: RequestHead())
        return p
    }

    @inline(__always) static func bytes(_ p: Pointer) -> UnsafeMutablePointer<Buffer> {
        p.assumingMemoryBound(to: Buffer.self)
    }

    @inline(__always) static func parsed(_ p: Pointer) -> UnsafeMutablePointer<RequestHead> {
        (p + parsedOffset).assumingMemoryBound(to: RequestHead.self)
    }

    /// Frees the bytes (the buffer's `deinit`), the parsed head and the allocation.
    static func free(_ p: Pointer) {
        bytes(p).deinitialize(count: 1)
        parsed(p).deinitialize(count: 1)
        p.deallocate()
    }
}

/// An open file shared by the responses of one worker: a proxy_cache entry's, or one kept by an
/// open file cache. Its table holds it without counting; each response using it is one of
/// `users`. Once `retired` (out of its table) it is closed by whoever drops the last use.
final class SharedFile {
    let fd: Int32
    let inode: UInt64
    var users = 0
    var retired = false
    var lastUse: Int64
    /// The whole file, for an open file cache's small file (`OpenFileCache.hold`); unchanged
    /// while `watch` is on (responses still sending it after that finish with this copy).
    var content: [UInt8]?
    /// The worker's watch of the file's content; -1: none.
    var watch: Int32 = -1

    init(fd: Int32, inode: UInt64, now: Int64) {
        self.fd = fd
        self.inode = inode
        lastUse = now
    }

    /// Its table lets it go; true when no response uses it (the caller closes it now).
    func retire() -> Bool {
        retired = true
        return users == 0
    }

    /// A response is done with it; true when it was retired and that was the last use (the
    /// caller closes it now).
    func release() -> Bool {
        users -= 1
        return retired && users == 0
    }
}

/// A worker's counters, readable from any thread.
public final class WorkerStats: Sendable {
    public let connections = Atomic<Int>(0)
    public let accepted = Atomic<Int>(0)
    public let requests = Atomic<Int>(0)
    /// Connections reading a request head, and requests in progress (nginx's stub_status
    /// "Reading" and "Writing"). Written by the worker's own thread only (load + store, no
    /// read-modify-write), read by any.
    public let reading = Atomic<Int>(0)
    public let writing = Atomic<Int>(0)

    @inline(__always) func adjust(_ counter: borrowing Atomic<Int>, by n: Int) {
        counter.store(counter.load(ordering: .relaxed) &+ n, ordering: .relaxed)
    }
}

/// Requests of one server block by status class, readable from any thread.
public final class ServerStats: Sendable {
    public let c1 = Atomic<Int>(0), c2 = Atomic<Int>(0), c3 = Atomic<Int>(0), c4 = Atomic<Int>(0), c5 = Atomic<Int>(0)

    @inline(__always) func count(_ status: Int) {
        switch status {
        case 100..<200: c1.add(1, ordering: .relaxed)
        case 200..<300: c2.add(1, ordering: .relaxed)
        case 300..<400: c3.add(1, ordering: .relaxed)
        case 400..<500: c4.add(1, ordering: .relaxed)
        default: c5.add(1, ordering: .relaxed)
        }
    }

    public var byClass: [(String, Int)] {
        [("1xx", c1.load(ordering: .relaxed)), ("2xx", c2.load(ordering: .relaxed)), ("3xx", c3.load(ordering: .relaxed)),
         ("4xx", c4.load(ordering: .relaxed)), ("5xx", c5.load(ordering: .relaxed))]
    }
}

/// nginx's arithmetic for one worker's `worker_connections` (`ngx_get_connection`,
/// `ngx_drain_connections`): idle connections are reused only when at most a sixteenth of the
/// connections are free, an eighth of the idle ones at a time, between 1 and 32.
struct ConnectionBudget {
    let limit: Int

    /// More than a sixteenth of the connections are free: nothing to reuse yet.
    func hasSlack(inUse: Int) -> Bool { limit - inUse > limit / 16 }

    /// How many of `reusable` idle connections to close now.
    func reuseCount(reusable: Int) -> Int {
        reusable == 0 ? 0 : max(min(32, reusable / 8), 1)
    }
}

/// Rate-limits a log line to one per second (nginx's `connections_reuse_time`).
struct OncePerSecond {
    private var lastSecond: Int64 = -1

    mutating func due(nowMillis: Int64) -> Bool {
        let s = nowMillis / 1000
        if s == lastSecond { return false }
        lastSecond = s
        return true
    }
}
