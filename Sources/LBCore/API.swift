import Glibc
import LBConfig
import LBHTTP
import LBIO

/// A flat JSON object as the API accepts it: string, integer, boolean or null values.
enum APIValue: Equatable {
    case string(String)
    case int(Int)
    case bool(Bool)
    case null
}

/// Parses `{"key": value, …}` (flat; what the API's requests carry). Pure.
struct APIError: Error { var message: String }

func parseFlatJSONObject(_ b: [UInt8]) -> Result<[String: APIValue], APIError> {
    var i = 0
    func ws() { while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 } }
    func str() -> String? {
        guard i < b.count, b[i] == UInt8(ascii: "\"") else { return nil }
        i += 1
        var out: [UInt8] = []
        while i < b.count {
            let c = b[i]
            if c == UInt8(ascii: "\"") { i += 1; return String(decoding: out, as: UTF8.self) }
            if c == UInt8(ascii: "\\") {
                guard i + 1 < b.count else { return nil }
                let e = b[i + 1]
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "t"): out.append(0x09)
                default: return nil
                }
                i += 2
                continue
            }
            if c < 0x20 { return nil }
            out.append(c)
            i += 1
        }
        return nil
    }
    ws()
    guard i < b.count, b[i] == UInt8(ascii: "{") else { return .failure(APIError(message: "the body must be a JSON object")) }
    i += 1
    var obj: [String: APIValue] = [:]
    ws()
    if i < b.count, b[i] == UInt8(ascii: "}") { i += 1; ws(); return i == b.count ? .success(obj) : .failure(APIError(message: "trailing data after the object")) }
    while true {
        ws()
        guard let key = str() else { return .failure(APIError(message: "expected a string key at byte \(i)")) }
        ws()
        guard i < b.count, b[i] == UInt8(ascii: ":") else { return .failure(APIError(message: "expected ':' at byte \(i)")) }
        i += 1
        ws()
        guard i < b.count else { return .failure(APIError(message: "unexpected end of JSON")) }
        if b[i] == UInt8(ascii: "\"") {
            guard let s = str() else { return .failure(APIError(message: "invalid string at byte \(i)")) }
            obj[key] = .string(s)
        } else if b[i...].starts(with: Array("true".utf8)) { obj[key] = .bool(true); i += 4 }
        else if b[i...].starts(with: Array("false".utf8)) { obj[key] = .bool(false); i += 5 }
        else if b[i...].starts(with: Array("null".utf8)) { obj[key] = .null; i += 4 }
        else {
            var j = i
            if j < b.count, b[j] == UInt8(ascii: "-") { j += 1 }
            while j < b.count, b[j] >= 0x30, b[j] <= 0x39 { j += 1 }
            guard j > i, let n = Int(String(decoding: b[i..<j], as: UTF8.self)) else { return .failure(APIError(message: "unsupported value for \"\(key)\" (strings, integers, booleans)")) }
            obj[key] = .int(n)
            i = j
        }
        ws()
        guard i < b.count else { return .failure(APIError(message: "unexpected end of JSON")) }
        if b[i] == UInt8(ascii: ",") { i += 1; continue }
        if b[i] == UInt8(ascii: "}") { i += 1; break }
        return .failure(APIError(message: "expected ',' or '}' at byte \(i)"))
    }
    ws()
    return i == b.count ? .success(obj) : .failure(APIError(message: "trailing data after the object"))
}

/// The runtime upstream API (`api;`): list upstreams and peers, add a peer, set weight, mark
/// down/up, drain, remove — applied under the upstream's lock, so every worker sees the change at
/// its next pick, with no reload. With `state FILE;` the upstream's servers are rewritten to the
/// file (atomically) after every change, and read back at start and reload.
extension ClientConnection {
    static let apiMaxBody = 64 * 1024

    func startAPI() {
        // Refused to everyone unless the location says who may use it.
        guard let rules = settings.accessRules, !rules.isEmpty else {
            log(.error, "the API location has no allow rules: refused")
            apiReply(403, error: "the API is refused to everyone unless its location has allow/deny rules")
            return
        }
        if req.hasBody {
            guard let cl = req.contentLength, !req.chunked else { apiReply(411, error: "a Content-Length is required"); return }
            guard cl <= ClientConnection.apiMaxBody else { closeAfterResponse = true; apiReply(413, error: "the body is larger than 64 KiB"); return }
            if inBuf.readable < cl {
                ex.responder = .apiBody(length: cl)
                worker.loop.setDeadline(self, afterMillis: settings.resolved.clientBodyTimeoutMs)
                readAPIBody(cl)
                return
            }
        }
        takeBodyAndHandle()
    }

    /// Reads the API request's body of `cl` bytes (its Content-Length), then handles the request.
    func readAPIBody(_ cl: Int) {
        let alive = readClient(limit: cl)
        if inBuf.readable >= cl {
            ex.responder = .routing
            takeBodyAndHandle()
        } else if !alive {
            close()
        }
    }

    func takeBodyAndHandle() {
        let cl = req.contentLength ?? 0
        var body: [UInt8] = []
        if cl > 0 {
            body = Array(inBuf.readableBytes[0..<cl])
            inBuf.readIndex += cl
        }
        ex.requestBodyComplete = true
        ex.requestBody = .none
        handleAPI(body)
    }

    func apiReply(_ code: Int, error: String) {
        var j = JSONWriter()
        j.raw("{\"error\":")
        j.string(error)
        j.raw("}\n")
        apiReply(code, j.out)
    }

    func apiReply(_ code: Int, _ body: [UInt8]) {
        var extra = Buffer()
        extra.append("Cache-Control: no-store\r\n")
        respond(code, contentType: "application/json", body: body, extraHeaders: extra.readableBytes)
        extra.release()
    }

    func handleAPI(_ body: [UInt8]) {
        // The path after the location prefix: [upstreams[/NAME[/peers[/ID]]]].
        let path = String(decoding: ex.uri, as: UTF8.self)
        let parts = path.split(separator: "/").map(String.init)
        guard let at = parts.firstIndex(of: "upstreams") else {
            apiReply(404, error: "unknown API path \"\(path)\" (try …/upstreams)")
            return
        }
        let rest = Array(parts[(at + 1)...])
        let method = String(decoding: head.readableBytes[req.methodRange], as: UTF8.self)
        let gen = worker.generation
        if rest.isEmpty {
            guard method == "GET" else { apiReply(405, error: "use GET on /upstreams"); return }
            var j = JSONWriter()
            j.raw("{\"upstreams\":[")
            for (i, u) in gen.upstreams.enumerated() {
                if i > 0 { j.raw(",") }
                upstreamJSON(&j, u)
            }
            j.raw("]}\n")
            apiReply(200, j.out)
            return
        }
        guard let rt = gen.upstreams.first(where: { $0.group.name == rest[0] }) else {
            apiReply(404, error: "no upstream \"\(rest[0])\"")
            return
        }
        if rest.count == 1 {
            guard method == "GET" else { apiReply(405, error: "use GET on /upstreams/NAME"); return }
            var j = JSONWriter()
            upstreamJSON(&j, rt)
            j.raw("\n")
            apiReply(200, j.out)
            return
        }
        guard rest[1] == "peers", rest.count <= 3 else { apiReply(404, error: "unknown API path \"\(path)\""); return }
        var fields: [String: APIValue] = [:]
        if method == "POST" || method == "PATCH" {
            switch parseFlatJSONObject(body) {
            case .success(let o): fields = o
            case .failure(let m): apiReply(400, error: "invalid JSON: \(m.message)"); return
            }
        }
        if rest.count == 2 {
            switch method {
            case "GET":
                var j = JSONWriter()
                upstreamJSON(&j, rt)
                j.raw("\n")
                apiReply(200, j.out)
            case "POST": addPeer(rt, fields)
            default: apiReply(405, error: "use GET or POST on /upstreams/NAME/peers")
            }
            return
        }
        guard let id = Int(rest[2]) else { apiReply(400, error: "a peer id is a number (see GET /upstreams/\(rt.group.name))"); return }
        switch method {
        case "GET":
            let found = rt.balancer.withLock { core in core.index(ofID: id).map { core.peers[$0] } }
            guard let p = found else { apiReply(404, error: "no peer \(id) in upstream \"\(rt.group.name)\""); return }
            var j = JSONWriter()
            peerJSON(&j, p)
            j.raw("\n")
            apiReply(200, j.out)
        case "PATCH": patchPeer(rt, id, fields)
        case "DELETE":
            let removed = rt.balancer.withLock { core -> Bool in
                guard let i = core.index(ofID: id) else { return false }
                core.remove(i)
                return true
            }
            guard removed else { apiReply(404, error: "no peer \(id) in upstream \"\(rt.group.name)\""); return }
            worker.runtime.errorLog.log(.notice, "API: upstream \"\(rt.group.name)\" peer \(id) removed, client: \(peer.ip)", worker: worker.index)
            saveState(rt)
            apiReply(200, Array("{\"removed\":\(id)}\n".utf8))
        default: apiReply(405, error: "use GET, PATCH or DELETE on /upstreams/NAME/peers/ID")
        }
    }

    func addPeer(_ rt: UpstreamRuntime, _ f: [String: APIValue]) {
        let known: Set<String> = ["address", "weight", "max_fails", "fail_timeout", "backup", "down", "max_conns"]
        if let bad = f.keys.first(where: { !known.contains($0) }) { apiReply(400, error: "unknown field \"\(bad)\""); return }
        guard case .string(let addrText)? = f["address"], let hp = HostPort.parse(addrText, portOnlyAllowed: false),
              let port = hp.port, SocketAddress(ip: hp.host, port: port) != nil else {
            apiReply(400, error: "\"address\" must be an IP address and port, like \"127.0.0.1:9005\" or \"[::1]:9005\"")
            return
        }
        func int(_ k: String, _ def: Int, _ range: ClosedRange<Int>) -> Int?? {
            switch f[k] {
            case nil: return .some(def)
            case .int(let n)?: return range.contains(n) ? .some(n) : .some(nil)
            default: return .some(nil)
            }
        }
        func flag(_ k: String) -> Bool?? {
            switch f[k] {
            case nil: return .some(false)
            case .bool(let b)?: return .some(b)
            default: return .some(nil)
            }
        }
        guard let weight = int("weight", 1, 1...1_000_000)!, let maxFails = int("max_fails", 1, 0...1_000_000)!,
              let maxConns = int("max_conns", 0, 0...1_000_000)! else {
            apiReply(400, error: "\"weight\" (1…1000000), \"max_fails\" and \"max_conns\" (0…1000000) are integers")
            return
        }
        var failTimeout = 10_000
        switch f["fail_timeout"] {
        case nil: break
        case .string(let s)?:
            guard let ms = Values.milliseconds(s) else { apiReply(400, error: "invalid \"fail_timeout\" \"\(s)\""); return }
            failTimeout = ms
        case .int(let n)? where n >= 0: failTimeout = n * 1000
        default: apiReply(400, error: "\"fail_timeout\" is a time like \"10s\""); return
        }
        guard let backup = flag("backup")!, let down = flag("down")! else { apiReply(400, error: "\"backup\" and \"down\" are booleans"); return }
        if backup {
            switch rt.group.policy {
            case .ipHash, .hash, .random: apiReply(400, error: "balancing method does not support \"backup\" servers"); return
            default: break
            }
        }
        let p = Peer(address: HostPort(host: hp.host, port: port), name: addrText, weight: weight, maxFails: maxFails,
                     failTimeoutMs: failTimeout, maxConns: maxConns, backup: backup, down: down)
        let text = p.address.description
        let added = rt.balancer.withLock { core -> PeerState? in
            if core.index(ofAddress: text) != nil { return nil }
            let i = core.add(p)
            return core.peers[i]
        }
        guard let state = added else { apiReply(409, error: "upstream \"\(rt.group.name)\" already has peer \(text)"); return }
        worker.runtime.errorLog.log(.notice, "API: upstream \"\(rt.group.name)\" peer \(text) added (id \(state.id)), client: \(peer.ip)", worker: worker.index)
        if rt.group.healthCheck != nil, let i = rt.balancer.withLock({ $0.index(ofID: state.id) }) {
            worker.runtime.startProbe(rt, peer: i, table: generation.table, offsetMs: 10)
        }
        saveState(rt)
        var j = JSONWriter()
        peerJSON(&j, state)
        j.raw("\n")
        apiReply(201, j.out)
    }

    func patchPeer(_ rt: UpstreamRuntime, _ id: Int, _ f: [String: APIValue]) {
        let known: Set<String> = ["weight", "down", "drain"]
        if let bad = f.keys.first(where: { !known.contains($0) }) { apiReply(400, error: "unknown field \"\(bad)\" (weight, down, drain)"); return }
        if f.isEmpty { apiReply(400, error: "nothing to change (weight, down, drain)"); return }
        var weight: Int?, down: Bool?, drain: Bool?
        switch f["weight"] {
        case nil: break
        case .int(let n)? where (1...1_000_000).contains(n): weight = n
        default: apiReply(400, error: "\"weight\" is an integer 1…1000000"); return
        }
        switch f["down"] {
        case nil: break
        case .bool(let b)?: down = b
        default: apiReply(400, error: "\"down\" is a boolean"); return
        }
        switch f["drain"] {
        case nil: break
        case .bool(let b)?: drain = b
        default: apiReply(400, error: "\"drain\" is a boolean"); return
        }
        // Everything validated: applied in one critical section (nothing half-applied).
        let result = rt.balancer.withLock { core -> PeerState? in
            guard let i = core.index(ofID: id) else { return nil }
            if let w = weight { core.setWeight(i, w) }
            if let d = down { core.setDown(i, d) }
            if let d = drain { core.setDraining(i, d) }
            return core.peers[i]
        }
        guard let state = result else { apiReply(404, error: "no peer \(id) in upstream \"\(rt.group.name)\""); return }
        worker.runtime.errorLog.log(.notice, "API: upstream \"\(rt.group.name)\" peer \(state.text) changed (\(f.keys.sorted().joined(separator: ", "))), client: \(peer.ip)", worker: worker.index)
        saveState(rt)
        var j = JSONWriter()
        peerJSON(&j, state)
        j.raw("\n")
        apiReply(200, j.out)
    }

    func upstreamJSON(_ j: inout JSONWriter, _ u: UpstreamRuntime) {
        let peers = u.balancer.withLock { $0.peers.filter { !$0.removed } }
        j.raw("{\"name\":")
        j.string(u.group.name)
        j.raw(",\"policy\":")
        j.string(policyName(u.group.policy))
        j.raw(",\"state_file\":")
        if let s = u.group.statePath { j.string(s) } else { j.raw("null") }
        j.raw(",\"peers\":[")
        for (i, p) in peers.enumerated() {
            if i > 0 { j.raw(",") }
            peerJSON(&j, p)
        }
        j.raw("]}")
    }

    func peerJSON(_ j: inout JSONWriter, _ p: PeerState) {
        j.raw("{\"id\":\(p.id),\"address\":")
        j.string(p.text)
        j.raw(",\"state\":")
        j.string(p.state(worker.loop.now))
        j.raw(",\"weight\":\(p.weight),\"max_fails\":\(p.maxFails),\"fail_timeout_ms\":\(p.failTimeoutMs),\"max_conns\":\(p.maxConns),")
        j.raw("\"backup\":\(p.backup),\"down\":\(p.down),\"draining\":\(p.draining),\"active\":\(p.conns),\"requests\":\(p.requests),\"failures\":\(p.failures)}")
    }

    /// `state FILE`: the upstream's live servers in nginx syntax, written to a temporary file and
    /// renamed over the old one (a crash leaves the old or the new file, never half of one).
    func saveState(_ rt: UpstreamRuntime) {
        guard let path = rt.group.statePath else { return }
        let peers = rt.balancer.withLock { $0.livePeers }
        var text = "# lb upstream \"\(rt.group.name)\": written by the runtime API; read at start and reload.\n"
        for p in peers {
            text += "server \(p.address.description) weight=\(p.weight) max_fails=\(p.maxFails) fail_timeout=\(p.failTimeoutMs)ms"
            if p.maxConns > 0 { text += " max_conns=\(p.maxConns)" }
            if p.backup { text += " backup" }
            if p.down { text += " down" }
            text += ";\n"
        }
        let temp = path + ".tmp.\(getpid()).\(worker.index)"
        let fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            worker.runtime.errorLog.log(.error, "API: cannot write state file \"\(temp)\" (\(errno))", worker: worker.index)
            return
        }
        let bytes = Array(text.utf8)
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + off, $0.count - off) }
            if n <= 0 { break }
            off += n
        }
        fsync(fd)
        Glibc.close(fd)
        if off != bytes.count || rename(temp, path) != 0 {
            unlink(temp)
            worker.runtime.errorLog.log(.error, "API: cannot replace state file \"\(path)\"", worker: worker.index)
        }
    }
}
