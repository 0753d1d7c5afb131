import Testing
@testable import LBConfig

/// Every inheritable setting reaches a location from the http level: a field that `inherit`
/// forgets to merge stays nil below, and this test names it.
struct MergeTests {
    /// Values for directives whose documented default is not itself a valid argument list.
    static let values: [String: String] = [
        "root": "/srv", "alias": "/srv/", "index": "index.html", "error_page": "404 /404.html",
        "access_log": "logs/a.log", "add_header": "X-A b", "expires": "1h", "allow": "127.0.0.1",
        "deny": "all", "proxy_set_header": "X-A b", "proxy_hide_header": "X-A", "proxy_pass_header": "X-A",
        "proxy_redirect": "off", "proxy_ignore_headers": "Expires", "proxy_cache": "$arg_zone", "resolver": "127.0.0.1",
        "proxy_cache_valid": "200 1m", "proxy_cache_bypass": "$arg_x", "proxy_no_cache": "$arg_x",
        "proxy_cache_purge": "127.0.0.1", "proxy_cache_key": "$uri", "types": "", "error_log": "logs/e.log",
        "gzip_types": "text/css", "max_ranges": "2", "charset": "utf-8", "set_real_ip_from": "10.0.0.0/8", "try_files": "$uri =404", "limit_except": "",
        "gzip_proxied": "any", "open_file_cache": "off", "keepalive_timeout": "75s 60",
        "large_client_header_buffers": "4 8k", "client_body_temp_path": "client_body_temp",
        "proxy_cache_use_stale": "error", "proxy_cache_methods": "GET HEAD", "proxy_next_upstream": "error timeout",
        "proxy_method": "POST", "proxy_set_body": "x=$arg_x", "sub_filter": "a b",
    ]

    /// HTTPSettings fields that no http-level directive sets (documented why).
    static let notFromHTTP: Set<String> = [
        "docRoot",          // root/alias: set in the test at http (alias is location-only)
        "proxyRedirects",   // proxy_redirect FROM TO pairs; `off` sets proxyRedirectOff instead
        "accessLogOff",     // access_log off; the test sets a path
        "http2RecvBufferSize", // http2_recv_buffer_size: http level only (the test writes http+server directives)
    ]

    @Test func everyInheritableSettingReachesALocation() throws {
        var lines: [String] = []
        for spec in Compiler.allDirectives where spec.contexts.contains(.http) && spec.contexts.contains(.server) && !spec.block {
            if spec.note?.hasPrefix("accepted for compatibility") == true { continue } // no effect
            guard let v = Self.values[spec.name] ?? spec.defaultValue, !v.isEmpty, v != "—" else { continue }
            if ["alias", "limit_except", "try_files"].contains(spec.name) { continue }
            lines.append("\(spec.name) \(v);")
        }
        lines.append("types { text/html html; }")
        let text = "events {}\nhttp {\n" + lines.joined(separator: "\n") + "\nserver { listen 8080; location / { } }\n}\n"
        let table = try load(text)
        let settings = try #require(table.servers.first?.locations.find("/")).settings
        var missing: [String] = []
        for child in Mirror(reflecting: settings).children {
            guard let name = child.label, !Self.notFromHTTP.contains(name) else { continue }
            if case Optional<Any>.none = child.value as Any? ?? nil { missing.append(name); continue }
            let m = Mirror(reflecting: child.value)
            if m.displayStyle == .optional && m.children.isEmpty { missing.append(name) }
        }
        #expect(missing.isEmpty, "not inherited from http (or no directive sets them): \(missing)")
    }
}
