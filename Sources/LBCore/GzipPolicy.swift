import LBConfig

/// Whether a response is gzipped, as nginx's gzip filter decides. Pure logic.
public enum GzipPolicy {
    /// The largest static file or cached entry compressed in memory; bigger ones go out as they are.
    public static let maxInMemory = 8 * 1024 * 1024

    /// deflate's window bits and memory level for a body of `contentLength` bytes, as nginx's gzip
    /// filter chooses them (`ngx_http_gzip_filter_memory`): from 15 and 8, one step down each
    /// while the body is shorter than half the window less 262 bytes; the memory level at least 1.
    public static func window(contentLength: Int?) -> (bits: Int, memLevel: Int) {
        var bits = 15, mem = 8
        if let n = contentLength, n > 0 {
            while n < (1 << (bits - 1)) - 262 { bits -= 1; mem -= 1 }
        }
        return (bits, max(mem, 1))
    }

    /// `$gzip_ratio` as nginx prints it: input over deflate output with two decimals, the third
    /// decimal rounding half up (2.125 → "2.13"); nil when nothing came out.
    public static func ratio(input: Int, output: Int) -> String? {
        guard output > 0 else { return nil }
        var whole = input / output
        var fraction = input * 100 / output % 100
        if input * 1000 / output % 10 > 4 {
            fraction += 1
            if fraction > 99 { whole += 1; fraction = 0 }
        }
        return fraction < 10 ? "\(whole).0\(fraction)" : "\(whole).\(fraction)"
    }

    /// The request's side: `Accept-Encoding` names gzip (or `*`) with a non-zero q, a version
    /// `gzip_http_version` allows (`http11`: HTTP/1.1, or 1.0 with `gzip_http_version 1.0`), not
    /// HEAD, no Range.
    public static func requestAccepts(acceptEncoding: String?, http11: Bool, head: Bool, range: Bool) -> Bool {
        guard http11, !head, !range, let ae = acceptEncoding else { return false }
        for part in ae.split(separator: ",") {
            let fields = part.split(separator: ";")
            guard let coding = fields.first?.trimmed.lowercased(), coding == "gzip" || coding == "*" || coding == "x-gzip" else { continue }
            var q = 1.0
            for f in fields.dropFirst() {
                let kv = f.trimmed
                if kv.lowercased().hasPrefix("q="), let v = Double(kv.dropFirst(2)) { q = v }
            }
            return q > 0
        }
        return false
    }

    /// The response's side: status 200/403/404, not already encoded, the type listed (`text/html`
    /// always; `*` for all; `types` lowercased, as resolved at load), and at least
    /// `gzip_min_length` bytes when the length is known.
    public static func responseQualifies(status: Int, contentEncoding: String?, contentType: String?, contentLength: Int?,
                                         types: [String], minLength: Int) -> Bool {
        guard status == 200 || status == 403 || status == 404 else { return false }
        if let ce = contentEncoding, !ce.trimmed.isEmpty, ce.trimmed.lowercased() != "identity" { return false }
        if let n = contentLength, n < minLength { return false }
        // `*` passes every response, one without a Content-Type too (nginx's empty types hash).
        if types.contains("*") { return true }
        guard let ct = contentType else { return false }
        let bare = (ct.split(separator: ";").first.map { $0.trimmed.lowercased() }) ?? ""
        return bare == "text/html" || types.contains("*") || types.contains(bare)
    }

    /// `gzip_proxied` for a request that came through a proxy (has `Via`); without `Via`, true.
    public static func proxiedAllows(requestHasVia: Bool, requestHasAuthorization: Bool, rules: GzipProxied,
                                     expires: String?, cacheControl: String?, lastModified: Bool, etag: Bool, now: Int) -> Bool {
        guard requestHasVia else { return true }
        if rules.isEmpty { return false }
        if rules.contains(.any) { return true }
        let cc = CachePolicy.directives(cacheControl ?? "")
        if rules.contains(.expired), let e = expires, let t = DateCache.parse(e.trimmed), t <= now { return true }
        if rules.contains(.noCache) && cc["no-cache"] != nil { return true }
        if rules.contains(.noStore) && cc["no-store"] != nil { return true }
        if rules.contains(.private) && cc["private"] != nil { return true }
        if rules.contains(.noLastModified) && !lastModified { return true }
        if rules.contains(.noEtag) && !etag { return true }
        if rules.contains(.auth) && requestHasAuthorization { return true }
        return false
    }

    /// A strong ETag made weak (a compressed body is not byte-identical to the original).
    public static func weakened(_ etag: String) -> String { etag.hasPrefix("W/") ? etag : "W/" + etag }
}

import LBHTTP
