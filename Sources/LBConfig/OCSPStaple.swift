import COpenSSL
import Glibc
import Synchronization

// OCSP stapling by fetching (`ssl_stapling on` without `ssl_stapling_file`), nginx's
// src/event/ngx_event_openssl_stapling.c: at load each certificate gets its issuer and its
// responder (or a warning, and no stapling); at run time a handshake that asks for the status
// gets the current response, and one that finds it due queues a fetch. The fetch itself (socket,
// DNS, HTTP/1.0) is LBCore's `OCSPFetcher`, on threads of its own; this file holds what is pure
// or OpenSSL: the responder URL, the request, the HTTP response head, the verdict on a response
// and the refresh schedule.

/// Where OCSP requests for a certificate go: `http://HOST[:PORT][/URI]` from the certificate's
/// Authority Information Access extension or `ssl_stapling_responder` (nginx's `ngx_parse_url`
/// with `uri_part`, port 80 by default).
public struct OCSPResponder: Sendable, Hashable {
    /// As written in the URL (an IPv6 literal without its brackets).
    public var host: String
    public var port: Int
    /// The path requests are made under, `/` when the URL has none.
    public var uri: String
    /// The addresses the host had at load (an IP literal: itself), used when no `resolver` is set.
    public var addresses: [String]

    /// Parses a responder URL; the error is nginx's text for the warning (`invalid URL prefix in
    /// OCSP responder "…"`, `host not found in OCSP responder "…"`).
    public static func parse(_ url: String, resolve: (String) -> [String]) -> Result<OCSPResponder, OCSPError> {
        guard url.count > 7, url.prefix(7).lowercased() == "http://" else {
            return .failure(OCSPError("invalid URL prefix in OCSP responder \"\(url)\""))
        }
        let rest = String(url.dropFirst(7))
        func fail(_ why: String) -> Result<OCSPResponder, OCSPError> { .failure(OCSPError("\(why) in OCSP responder \"\(rest)\"")) }
        var authority = Substring(rest)
        var uri = "/"
        if let slash = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) {
            authority = rest[..<slash]
            uri = String(rest[slash...])
            if uri.hasPrefix("?") { uri = "/" + uri }
        }
        var host = String(authority)
        var port = 80
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return fail("invalid host") }
            host = String(authority[authority.index(after: authority.startIndex)..<close])
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":"), let p = Int(after.dropFirst()), p > 0, p <= 65535 else { return fail("invalid port") }
                port = p
            }
            guard isIPLiteral(host) else { return fail("invalid host") }
        } else if let colon = authority.lastIndex(of: ":") {
            host = String(authority[..<colon])
            guard let p = Int(authority[authority.index(after: colon)...]), p > 0, p <= 65535 else { return fail("invalid port") }
            port = p
        }
        guard !host.isEmpty else { return fail("no host") }
        let addresses = isIPLiteral(host) ? [host] : resolve(host)
        guard !addresses.isEmpty else { return fail("host not found") }
        return .success(OCSPResponder(host: host, port: port, uri: uri, addresses: addresses))
    }

    /// nginx's request: `GET URI/BASE64 HTTP/1.0` with the DER request in base64, escaped as a URI
    /// component, and `Host:` without the port.
    public func request(der: [UInt8]) -> [UInt8] {
        var line = "GET " + uri
        if !uri.hasSuffix("/") { line += "/" }
        line += OCSPResponder.escapeComponent(OCSPResponder.base64(der))
        return Array("\(line) HTTP/1.0\r\nHost: \(host)\r\n\r\n".utf8)
    }

    static func base64(_ b: [UInt8]) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        var out: [UInt8] = []
        var i = 0
        while i < b.count {
            let n = min(3, b.count - i)
            let v = Int(b[i]) << 16 | (n > 1 ? Int(b[i + 1]) << 8 : 0) | (n > 2 ? Int(b[i + 2]) : 0)
            out.append(alphabet[v >> 18 & 63])
            out.append(alphabet[v >> 12 & 63])
            out.append(n > 1 ? alphabet[v >> 6 & 63] : UInt8(ascii: "="))
            out.append(n > 2 ? alphabet[v & 63] : UInt8(ascii: "="))
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// nginx's NGX_ESCAPE_URI_COMPONENT: all but letters, digits and `-._~`, as `%XX`.
    static func escapeComponent(_ s: String) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        for c in s.utf8 {
            switch c {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.append(c)
            default:
                out += [UInt8(ascii: "%"), hex[Int(c >> 4)], hex[Int(c & 15)]]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// The head of a responder's HTTP answer, read as nginx reads it: a status line, headers (a
/// `Content-Type` other than `application/ocsp-response` is refused), then the body up to the
/// end of the connection (HTTP/1.0; `Content-Length` is not honoured, as in nginx).
public enum OCSPHTTPHead: Equatable, Sendable {
    /// More bytes are needed.
    case incomplete
    /// The head ends before `bodyStart`; `code` is the status.
    case complete(code: Int, bodyStart: Int)
    /// nginx's error line (`OCSP responder sent invalid response`, `… invalid "Content-Type" …`).
    case invalid(String)

    public static func parse(_ b: [UInt8]) -> OCSPHTTPHead {
        // Status line: HTTP/D.D NNN[ text]
        guard let lf = b.firstIndex(of: 10) else { return prefixValid(b) ? .incomplete : .invalid("OCSP responder sent invalid response") }
        var line = Array(b[..<lf])
        if line.last == 13 { line.removeLast() }
        guard let code = statusCode(line) else { return .invalid("OCSP responder sent invalid response") }
        var i = lf + 1
        while true {
            guard let end = b[i...].firstIndex(of: 10) else {
                // A partial header line: refused at once only when its name is already malformed.
                return .incomplete
            }
            var h = Array(b[i..<end])
            if h.last == 13 { h.removeLast() }
            i = end + 1
            if h.isEmpty { return .complete(code: code, bodyStart: i) }
            guard let colon = h.firstIndex(of: UInt8(ascii: ":")),
                  colon > 0, h[..<colon].allSatisfy({ isNameByte($0) }) else {
                return .invalid("OCSP responder sent invalid response")
            }
            let name = String(decoding: h[..<colon], as: UTF8.self)
            var value = h[(colon + 1)...].drop { $0 == 32 }
            while value.last == 32 { value.removeLast() }
            if name.lowercased() == "content-type" {
                let v = String(decoding: value, as: UTF8.self)
                if v.lowercased() != "application/ocsp-response" {
                    return .invalid("OCSP responder sent invalid \"Content-Type\" header: \"\(v)\"")
                }
            }
        }
    }

    static func isNameByte(_ c: UInt8) -> Bool {
        (c | 0x20) >= 0x61 && (c | 0x20) <= 0x7A || (c >= 0x30 && c <= 0x39) || c == UInt8(ascii: "-")
    }

    /// What has come of the status line so far could still be one.
    static func prefixValid(_ b: [UInt8]) -> Bool {
        let h = Array("HTTP/".utf8)
        for (k, c) in b.prefix(5).enumerated() where c != h[k] { return false }
        return true
    }

    /// `HTTP/1.0 200 OK` → 200 (nginx's state machine: major digits, a dot, minor digits, a
    /// space, three digits, then a space, a dot, or the end).
    static func statusCode(_ l: [UInt8]) -> Int? {
        let s = String(decoding: l, as: UTF8.self)
        guard s.hasPrefix("HTTP/") else { return nil }
        let rest = s.dropFirst(5)
        guard let dot = rest.firstIndex(of: "."), let sp = rest.firstIndex(of: " "), dot < sp else { return nil }
        let major = rest[..<dot], minor = rest[rest.index(after: dot)..<sp]
        guard let m = major.first, m >= "1", m <= "9", major.allSatisfy(\.isASCIIDigit),
              !minor.isEmpty, minor.allSatisfy(\.isASCIIDigit) else { return nil }
        let tail = rest[rest.index(after: sp)...].drop { $0 == " " }
        let digits = tail.prefix(3)
        guard digits.count == 3, digits.allSatisfy(\.isASCIIDigit) else { return nil }
        let after = tail.dropFirst(3)
        guard after.isEmpty || after.first == " " || after.first == "." else { return nil }
        return Int(digits)
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { self >= "0" && self <= "9" }
}

/// One certificate's stapled response in fetch mode (nginx's `ngx_ssl_stapling_t`): what is
/// needed to ask for it and check it, and the current response with its schedule. Handshakes on
/// every worker read it under its lock; the fetcher replaces it.
public final class OCSPStaple: @unchecked Sendable {
    /// The certificate (`X509*`, as the context holds it: handshakes find their staple by it).
    public let cert: OpaquePointer
    /// Its issuer (`X509*`): from the chain, else from `ssl_trusted_certificate`.
    let issuer: OpaquePointer
    /// The chain sent with the certificate (a `STACK_OF(X509)*` of our own), trusted signers
    /// for `OCSP_basic_verify`.
    let chain: OpaquePointer?
    /// The context's certificate store (`X509_STORE*`, referenced): `ssl_trusted_certificate`.
    let store: OpaquePointer
    /// The `ssl_certificate` file, for log lines (`certificate: "…"`).
    public let name: String
    public let responder: OCSPResponder
    /// `ssl_stapling_verify`.
    public let verify: Bool
    /// The server's `resolver` (nil: none; host names then use their load-time addresses).
    public let resolver: ResolverSpec?
    /// What makes two staples the same across a reload (the newer one starts with the older one's response).
    let key: String

    private let state = Mutex(OCSPStapleState())

    deinit {
        X509_free(cert)
        X509_free(issuer)
        if let chain { lb_sk_X509_pop_free(chain) }
        X509_STORE_free(store)
    }

    init(cert: OpaquePointer, issuer: OpaquePointer, chain: OpaquePointer?, store: OpaquePointer, name: String,
         responder: OCSPResponder, verify: Bool, resolver: ResolverSpec?) {
        _ = X509_up_ref(cert)
        _ = X509_STORE_up_ref(store)
        self.cert = cert
        self.issuer = issuer
        self.chain = chain.flatMap { X509_chain_up_ref($0) }
        self.store = store
        self.name = name
        self.responder = responder
        self.verify = verify
        self.resolver = resolver
        key = [OCSPStaple.derDigest(cert), OCSPStaple.derDigest(issuer), "\(responder)", "\(verify)", "\(String(describing: resolver))"]
            .joined(separator: "|")
        // A reload that rebuilt the context carries the response over.
        OCSPStaple.registry.withLock { r in
            if let old = r[key]?.staple {
                let s = old.state.withLock { s in OCSPStapleState(response: s.response, valid: s.valid, refresh: s.refresh) }
                state.withLock { $0 = s }
            }
            r = r.filter { $0.value.staple != nil }
            r[key] = WeakStaple(staple: self)
        }
        OCSPStaple.configured.store(true, ordering: .relaxed)
    }

    struct WeakStaple: @unchecked Sendable { weak var staple: OCSPStaple? }
    static let registry = Mutex<[String: WeakStaple]>([:])
    /// Whether this process built any staple that fetches (the runtime then starts the fetcher).
    public static let configured = Atomic<Bool>(false)

    static func derDigest(_ x509: OpaquePointer) -> String {
        var md = [UInt8](repeating: 0, count: 32)
        var len: UInt32 = 0
        _ = X509_digest(x509, EVP_sha256(), &md, &len)
        return md.map { String($0, radix: 16) }.joined()
    }

    /// For a handshake that asked for the status: the response while it is valid (nil: none), and
    /// a fetch queued when one is due (nginx's `ngx_ssl_certificate_status_callback`).
    public func response(now: Int) -> [UInt8]? {
        let running = OCSPFetchQueue.running.load(ordering: .relaxed)
        let (out, due) = state.withLock { $0.handshake(now: now, canFetch: running) }
        if due { OCSPFetchQueue.push(self) }
        return out
    }

    /// The fetch ended (see `OCSPStapleState.finish`).
    public func finish(_ outcome: (response: [UInt8], valid: Int)?, now: Int) {
        state.withLock { $0.finish(outcome, now: now) }
    }

    public static func nextRefresh(valid: Int?, now: Int) -> Int { OCSPStapleState.nextRefresh(valid: valid, now: now) }

    /// The DER request for this certificate (nil when OpenSSL cannot make one, with its error).
    public func requestDER() -> Result<[UInt8], OCSPError> {
        guard let req = OCSP_REQUEST_new() else { return .failure(OCSPError("OCSP_REQUEST_new() failed (\(TLSContext.queue()))")) }
        defer { OCSP_REQUEST_free(req) }
        guard let id = OCSP_cert_to_id(nil, cert, issuer) else { return .failure(OCSPError("OCSP_cert_to_id() failed (\(TLSContext.queue()))")) }
        guard OCSP_request_add0_id(req, id) != nil else {
            OCSP_CERTID_free(id)
            return .failure(OCSPError("OCSP_request_add0_id() failed (\(TLSContext.queue()))"))
        }
        let len = i2d_OCSP_REQUEST(req, nil)
        guard len > 0 else { return .failure(OCSPError("i2d_OCSP_REQUEST() failed (\(TLSContext.queue()))")) }
        var out = [UInt8](repeating: 0, count: Int(len))
        let n = out.withUnsafeMutableBufferPointer { b -> Int32 in
            var p: UnsafeMutablePointer<UInt8>? = b.baseAddress
            return i2d_OCSP_REQUEST(req, &p)
        }
        guard n == len else { return .failure(OCSPError("i2d_OCSP_REQUEST() failed (\(TLSContext.queue()))")) }
        return .success(out)
    }

    /// The verdict on a responder's answer (nginx's `ngx_ssl_ocsp_verify` and the status check of
    /// `ngx_ssl_stapling_ocsp_handler`): good, with the response's nextUpdate; or why not, as
    /// nginx logs it (a status other than 200 is refused without a line, as in nginx).
    public func check(code: Int, body: [UInt8]) -> Result<Int, OCSPRefusal> {
        guard code == 200 else { return .failure(OCSPRefusal(level: nil, message: "")) }
        ERR_clear_error()
        defer { ERR_clear_error() }
        let resp: OpaquePointer? = body.withUnsafeBufferPointer { b in
            var p: UnsafePointer<UInt8>? = b.baseAddress
            return d2i_OCSP_RESPONSE(nil, &p, b.count)
        }
        guard let resp else { return .failure(.error("d2i_OCSP_RESPONSE() failed (\(TLSContext.queue()))")) }
        defer { OCSP_RESPONSE_free(resp) }
        let n = OCSP_response_status(resp)
        guard n == OCSP_RESPONSE_STATUS_SUCCESSFUL else {
            return .failure(.error("OCSP response not successful (\(n): \(String(cString: OCSP_response_status_str(Int(n)))))"))
        }
        guard let basic = OCSP_response_get1_basic(resp) else {
            return .failure(.error("OCSP_response_get1_basic() failed (\(TLSContext.queue()))"))
        }
        defer { OCSP_BASICRESP_free(basic) }
        let flags = UInt(verify ? OCSP_TRUSTOTHER : OCSP_NOVERIFY)
        guard OCSP_basic_verify(basic, chain, store, flags) == 1 else {
            return .failure(.error("OCSP_basic_verify() failed (\(TLSContext.queue()))"))
        }
        guard let id = OCSP_cert_to_id(nil, cert, issuer) else {
            return .failure(OCSPRefusal(level: .crit, message: "OCSP_cert_to_id() failed (\(TLSContext.queue()))"))
        }
        defer { OCSP_CERTID_free(id) }
        var status: Int32 = -1
        var thisUpdate: UnsafeMutablePointer<ASN1_GENERALIZEDTIME>? = nil
        var nextUpdate: UnsafeMutablePointer<ASN1_GENERALIZEDTIME>? = nil
        guard OCSP_resp_find_status(basic, id, &status, nil, nil, &thisUpdate, &nextUpdate) == 1 else {
            return .failure(.error("certificate status not found in the OCSP response"))
        }
        guard OCSP_check_validity(thisUpdate, nextUpdate, 300, -1) == 1 else {
            return .failure(.error("OCSP_check_validity() failed (\(TLSContext.queue()))"))
        }
        var valid = Int.max
        if let nextUpdate {
            var tm = Glibc.tm()
            guard ASN1_TIME_to_tm(nextUpdate, &tm) == 1 else { return .failure(.error("invalid nextUpdate time in certificate status")) }
            valid = timegm(&tm)
        }
        guard status == V_OCSP_CERTSTATUS_GOOD else {
            return .failure(.error("certificate status \"\(String(cString: OCSP_cert_status_str(Int(status))))\" in the OCSP response"))
        }
        return .success(valid)
    }
}

/// A staple's response and schedule (nginx's `staple->staple`, `valid`, `refresh`, `loading`),
/// as a value: the staple keeps it under its lock; the clock is the caller's (wall seconds).
public struct OCSPStapleState: Sendable, Equatable {
    public var response: [UInt8]?
    /// Until when the response may be stapled (its nextUpdate).
    public var valid = 0
    /// Not before then is a new fetch started.
    public var refresh = 0
    /// A fetch is under way.
    public var loading = false

    public init(response: [UInt8]? = nil, valid: Int = 0, refresh: Int = 0) {
        self.response = response
        self.valid = valid
        self.refresh = refresh
    }

    /// A handshake asked for the status: the response while it is valid, and whether to start a
    /// fetch (one is due and none is under way; never without a fetcher).
    public mutating func handshake(now: Int, canFetch: Bool) -> (response: [UInt8]?, fetch: Bool) {
        let r = response != nil && valid >= now ? response : nil
        guard canFetch, !loading, refresh < now else { return (r, false) }
        loading = true
        return (r, true)
    }

    /// The fetch ended: a good response is installed until its nextUpdate and refreshed before,
    /// but not sooner than in 5 minutes and at least every hour; after a failure the response
    /// kept (if any) stays until its own nextUpdate, and the next fetch is in 5 minutes.
    public mutating func finish(_ outcome: (response: [UInt8], valid: Int)?, now: Int) {
        loading = false
        refresh = OCSPStapleState.nextRefresh(valid: outcome?.valid, now: now)
        if let outcome {
            response = outcome.response
            valid = outcome.valid
        }
    }

    /// nginx: `max(min(valid - 300, now + 3600), now + 300)` after a good response, `now + 300`
    /// after a failure.
    public static func nextRefresh(valid: Int?, now: Int) -> Int {
        guard let valid else { return now + 300 }
        let v = valid == Int.max ? Int.max - 300 : valid
        return max(min(v - 300, now + 3600), now + 300)
    }
}

/// A failure in nginx's words (a responder URL that cannot be used, a request OpenSSL cannot make).
public struct OCSPError: Error, Sendable, Equatable, ExpressibleByStringLiteral {
    public var message: String
    public init(_ m: String) { message = m }
    public init(stringLiteral m: String) { message = m }
}

/// Why a responder's answer is not stapled: nginx's log line and its level (nil: no line).
public struct OCSPRefusal: Error, Sendable, Equatable {
    public var level: ErrorLog.Level?
    public var message: String
    static func error(_ m: String) -> OCSPRefusal { OCSPRefusal(level: .error, message: m) }
}

/// Staples whose fetch is due, from the handshakes that found them due to the fetcher thread.
/// Nothing is queued while no fetcher runs (`lb -t`, unit tests).
public enum OCSPFetchQueue {
    public static let running = Atomic<Bool>(false)
    static let pending = Mutex<[OCSPStaple]>([])
    nonisolated(unsafe) static let ready: UnsafeMutablePointer<sem_t> = {
        let p = UnsafeMutablePointer<sem_t>.allocate(capacity: 1)
        sem_init(p, 0, 0)
        return p
    }()

    static func push(_ s: OCSPStaple) {
        pending.withLock { $0.append(s) }
        sem_post(ready)
    }

    /// The next staple to fetch; blocks the calling (fetcher) thread until there is one.
    public static func next() -> OCSPStaple {
        while true {
            while sem_wait(ready) != 0 {}
            if let s = pending.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) { return s }
        }
    }
}
