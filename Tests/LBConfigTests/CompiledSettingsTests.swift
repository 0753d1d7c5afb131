import Testing
@testable import LBConfig

/// Settings are compiled at load: `try_files` entries parsed once, defaults resolved once,
/// keyword lists as bit sets, header names prepared once.
struct CompiledSettingsTests {
    @Test func tryFilesEntriesAreParsedAtLoad() throws {
        let t = try load(server("""
            location /a { try_files $uri $uri/ /index.php?$args; }
            location /b { try_files $uri @back; }
            location /c { try_files $uri =418; }
            location @back { return 204; }
            """))
        let a = try #require(t.servers[0].locations.find("/a")?.tryFiles)
        #expect(a.candidates.map(\.source) == ["$uri", "$uri/"])
        #expect(a.candidates.map(\.uri.source) == ["$uri", "$uri/"])
        guard case .uri(let u) = a.fallback else { Issue.record("fallback \(a.fallback)"); return }
        #expect(u.source == "/index.php?$args")
        guard case .named("back") = try #require(t.servers[0].locations.find("/b")?.tryFiles).fallback else {
            Issue.record("not the named fallback"); return
        }
        guard case .code(418) = try #require(t.servers[0].locations.find("/c")?.tryFiles).fallback else {
            Issue.record("not the code fallback"); return
        }
    }

    @Test func serverLevelTryFilesIsCompiledToo() throws {
        let t = try load(server("try_files $uri /fallback;"))
        let tf = try #require(t.servers[0].serverTryFiles)
        #expect(tf.entries == ["$uri", "/fallback"])
        guard case .uri(let u) = tf.fallback else { Issue.record("fallback \(tf.fallback)"); return }
        #expect(u.isLiteral)
    }

    @Test func invalidTryFilesEntryIsALoadErrorWithItsLine() {
        #expect(loadError(server("location / {\ntry_files ${uri $uri/ =404; }")) == "the closing bracket in \"uri\" variable is missing in t.conf:5")
        #expect(loadError(server("location / {\ntry_files $uri $nosuch; }")) == "unknown \"nosuch\" variable in t.conf:5")
        #expect(loadError(server("location / {\ntry_files $uri =99; }")) == "invalid code \"=99\" in t.conf:5")
        #expect(loadError(server("location / {\ntry_files $uri =4x4; }")) == "invalid code \"=4x4\" in t.conf:5")
    }

    /// Every field of `ResolvedSettings` with the value nginx documents as its default (as
    /// `String(describing:)` prints it). A field added without an entry here fails the test.
    static let documentedDefaults: [String: String] = [
        "index": "[index.html]", "defaultType": "text/plain", "types": "\(Defaults.builtinTypes)", "keepaliveTimeoutMs": "75000",
        "keepaliveRequests": "1000", "keepaliveTimeMs": "3600000", "sendTimeoutMs": "60000",
        "clientMaxBodySize": "1048576", "clientBodyBufferSize": "16384", "clientBodyTimeoutMs": "60000",
        "clientBodyInFileOnly": "off", "clientBodyTempPath": "client_body_temp", "clientHeaderTimeoutMs": "60000",
        "clientHeaderBufferSize": "1024", "largeClientHeaderBuffers": "(count: 4, size: 8192)", "serverTokens": "true",
        "sendfile": "false", "tcpNopush": "false", "tcpNodelay": "true",
        "etag": "true", "ifModifiedSince": "exact", "disableSymlinks": "off", "openFileCache": "nil", "autoindex": "false",
        "logNotFound": "true", "keepaliveDisable": "KeepaliveDisable(rawValue: 1)", "chunkedTransferEncoding": "true",
        "absoluteRedirect": "true", "portInRedirect": "true", "serverNameInRedirect": "false",
        "recursiveErrorPages": "false", "mergeSlashes": "true", "underscoresInHeaders": "false",
        "ignoreInvalidHeaders": "true", "rewriteLog": "false", "uninitializedVariableWarn": "true",
        "realIPHeader": "[\"x-real-ip\"]", "realIPRecursive": "false", "resolverTimeoutMs": "30000",
        "http2MaxConcurrentStreams": "128", "http2RecvBufferSize": "262144", "http2ChunkSize": "8192", "http2BodyPrereadSize": "65536",
        "gzip": "false", "gzipTypes": "[\"text/html\"]", "gzipMinLength": "20", "gzipCompLevel": "1",
        "gzipVary": "false", "expires": "false", "gzipProxied": "GzipProxied(rawValue: 0)", "gzipStatic": "false", "subFilterTypes": "[]",
        "subFilterOnce": "true", "subFilterLastModified": "false",
        "proxyHTTP11": "false", "proxyConnectTimeoutMs": "60000", "proxyReadTimeoutMs": "60000",
        "proxySendTimeoutMs": "60000", "proxyNextUpstream": "UpstreamConditions(rawValue: 3)",
        "proxyNextUpstreamTries": "0", "proxyNextUpstreamTimeoutMs": "0", "proxyBuffering": "true",
        "proxyBufferSize": "4096", "proxyRequestBuffering": "true", "proxyInterceptErrors": "false",
        "proxyPassRequestHeaders": "true", "proxyPassRequestBody": "true", "passesClientBody": "true",
        "proxyProtocol": "false", "proxyRedirectOff": "false", "proxyHideHeaders": "[]", "proxyPassHeaders": "[]",
        "proxyIgnoreHeaders": "IgnoredHeaders(rawValue: 0)", "proxyCookieDomains": "[]", "proxyCookiePaths": "[]", "proxyCookieFlags": "[]",
        "proxyIgnoreClientAbort": "false", "mirrorRequestBody": "true", "gzipHTTP10": "false", "mirrors": "false", "limitRate": "0", "limitRateAfter": "0", "cacheZone": "nil",
        "proxyCacheKey": "$scheme$proxy_host$request_uri", "proxyCacheMethods": "CacheMethods(rawValue: 3)",
        "proxyCacheValid": "[]", "proxyCacheUseStale": "UpstreamConditions(rawValue: 0)", "proxyCacheLock": "false",
        "proxyCacheLockTimeoutMs": "5000", "proxyCacheLockAgeMs": "5000", "proxyCacheRevalidate": "false",
        "proxyCacheBackgroundUpdate": "false", "proxyCacheConvertHead": "true",
        "limitReqStatus": "503", "limitConnStatus": "503", "limitReqLogLevel": "error",
        "limitReqDelayLogLevel": "warn", "limitConnLogLevel": "error", "authRequestSet": "[]",
    ]

    /// Directives (set at the http level) giving every resolved field a value other than its default.
    static let everyDirectiveSet = """
        index a.html; default_type text/x; types { text/x-lb lb; } keepalive_timeout 10s; keepalive_requests 5; keepalive_time 10m;
        send_timeout 5s; client_max_body_size 5m; client_body_buffer_size 32k; client_body_timeout 5s;
        client_body_in_file_only on; client_body_temp_path /tmp/cb; client_header_timeout 5s;
        client_header_buffer_size 2k; large_client_header_buffers 8 16k; server_tokens off; sendfile on;
        tcp_nopush on; tcp_nodelay off; limit_rate $arg_rate; limit_rate_after 1m; etag off; if_modified_since before;
        disable_symlinks on; open_file_cache max=10; open_file_cache_valid 5s; autoindex on; log_not_found off; keepalive_disable safari; chunked_transfer_encoding off;
        absolute_redirect off; port_in_redirect off; server_name_in_redirect on; recursive_error_pages on;
        merge_slashes off; underscores_in_headers on; ignore_invalid_headers off; rewrite_log on;
        uninitialized_variable_warn off; real_ip_header X-Forwarded-For; real_ip_recursive on; resolver_timeout 5s;
        http2_max_concurrent_streams 64; http2_recv_buffer_size 512k; http2_chunk_size 16k; http2_body_preread_size 32k;
        gzip on; gzip_types text/css; gzip_min_length 100; gzip_comp_level 5; gzip_vary on; gzip_proxied any;
        gzip_static on; sub_filter_types text/css; sub_filter_once off; sub_filter_last_modified on;
        proxy_http_version 1.1; proxy_connect_timeout 5s; proxy_read_timeout 6s; proxy_send_timeout 7s;
        proxy_next_upstream error http_502; proxy_next_upstream_tries 3; proxy_next_upstream_timeout 10s;
        proxy_buffering off; proxy_buffer_size 8k; proxy_request_buffering off; proxy_intercept_errors on;
        proxy_pass_request_headers off; proxy_pass_request_body off; proxy_protocol on; proxy_redirect off;
        proxy_hide_header X-A; proxy_pass_header X-B; proxy_ignore_headers Expires;
        proxy_cookie_domain a.example b.example; proxy_cookie_path /a /b; proxy_cookie_flags one secure;
        proxy_ignore_client_abort on; mirror_request_body off; gzip_http_version 1.0; mirror /m; expires 1h;

        proxy_cache_path /c keys_zone=z:1m; proxy_cache z; proxy_cache_key $uri; proxy_cache_methods POST;
        proxy_cache_valid 200 1m; proxy_cache_use_stale error; proxy_cache_lock on; proxy_cache_lock_timeout 1s;
        proxy_cache_lock_age 2s; proxy_cache_revalidate on; proxy_cache_background_update on;
        proxy_cache_convert_head off; limit_req_status 429; limit_conn_status 429; limit_req_log_level info;
        limit_conn_log_level warn; auth_request_set $who $upstream_http_x_user;
        """

    static func fields(_ r: ResolvedSettings) -> [(String, String)] {
        Mirror(reflecting: r).children.map { ($0.label!, String(describing: $0.value)) }
    }

    @Test func anEmptyConfigResolvesToTheDocumentedDefaults() throws {
        let loc = try #require(load(server("location / { }")).servers[0].locations.find("/"))
        let fields = Self.fields(loc.settings.resolved)
        for (name, value) in fields {
            #expect(Self.documentedDefaults[name] == value, "\(name)")
        }
        #expect(Set(fields.map(\.0)) == Set(Self.documentedDefaults.keys))
        #expect(loc.settings.resolved.types == ["html": "text/html", "gif": "image/gif", "jpg": "image/jpeg"])
        // The server level (connection settings, requests no location matches) is resolved too.
        #expect(Self.fields(try load(server("")).servers[0].settings.resolved).map(\.1) == fields.map(\.1))
    }

    @Test func everyResolvedFieldIsFilledFromTheMergedSettings() throws {
        let text = "http {\n\(Self.everyDirectiveSet)\nserver { listen 8080; location / { } }\n}\n"
        let table = try load(text)
        let defaults = Dictionary(uniqueKeysWithValues: Self.fields(ResolvedSettings()))
        for r in [try #require(table.servers[0].locations.find("/")).settings.resolved, table.servers[0].settings.resolved] {
            let unchanged = Self.fields(r).filter { defaults[$0.0] == $0.1 }.map(\.0)
            #expect(unchanged.isEmpty, "resolved fields not taken from the merged settings: \(unchanged)")
            #expect(r.keepaliveTimeoutMs == 10_000 && r.largeClientHeaderBuffers == (8, 16 * 1024) && r.cacheZone == "z")
            #expect(r.proxyNextUpstream == [.error, .http502] && r.limitReqDelayLogLevel == .info && !r.passesClientBody)
        }
    }

    @Test func proxySetBodyAloneStopsTheClientBody() throws {
        let loc = try #require(load(server("location / { proxy_set_body x; proxy_pass http://127.0.0.1:9; }")).servers[0].locations.find("/"))
        #expect(!loc.settings.resolved.passesClientBody && loc.settings.resolved.proxyPassRequestBody)
    }

    @Test func keywordListsAreBitSets() throws {
        let t = try load("""
            http { gzip_proxied no-cache auth; keepalive_disable msie6 safari;
            server { listen 8080;
            location / { proxy_ignore_headers Expires Vary; proxy_cache_methods POST; }
            location /n { keepalive_disable none; gzip_proxied off; fastcgi_ignore_headers X-Accel-Redirect; fastcgi_cache_methods HEAD; fastcgi_pass 127.0.0.1:9000; }
            } }
            """)
        let r = try #require(t.servers[0].locations.find("/")).settings.resolved
        #expect(r.proxyIgnoreHeaders == [.expires, .vary])
        #expect(r.proxyCacheMethods == [.get, .head, .post])
        #expect(r.keepaliveDisable == [.msie6, .safari])
        #expect(r.gzipProxied == [.noCache, .auth])
        let n = try #require(t.servers[0].locations.find("/n")).settings.resolved
        #expect(n.keepaliveDisable.isEmpty && n.gzipProxied.isEmpty)
        #expect(n.proxyIgnoreHeaders == .xAccelRedirect && n.proxyCacheMethods == [.get, .head])
        #expect(loadError(server("location / {\nproxy_ignore_headers Expires X-Foo; }")) == "invalid value \"X-Foo\" in t.conf:5")
        #expect(loadError(server("location / {\nproxy_cache_methods GET PUT; }")) == "invalid value \"PUT\" in t.conf:5")
        #expect(loadError(server("location / {\ngzip_proxied off any; }")) == "invalid value \"off\" in t.conf:5")
        #expect(loadError(server("location / {\nkeepalive_disable opera; }")) == "invalid value \"opera\" in t.conf:5")
    }

    @Test func headerNamesArePreparedAtLoad() throws {
        let t = try load(server("""
            location / { proxy_hide_header X-Secret; proxy_pass_header Server; add_header X-Served-By lb; proxy_set_header X-Real-IP $remote_addr;
                         gzip_types Text/CSS; sub_filter_types Text/XML; real_ip_header X-Forwarded-For; }
            """))
        let loc = try #require(t.servers[0].locations.find("/"))
        let r = loc.settings.resolved
        let raw = Array("x: 1\r\nX-SECRET".utf8)
        raw.withUnsafeBytes { b in
            #expect(r.proxyHideHeaders.contains(b, 6..<14))
            #expect(!r.proxyHideHeaders.contains(b, 0..<1))
        }
        #expect(r.proxyHideHeaders.names == [Array("x-secret".utf8)])
        #expect(r.proxyPassHeaders.contains(lowercased: "server") && !r.proxyPassHeaders.contains(lowercased: "date"))
        #expect(loc.settings.addHeaders?.first?.nameBytes == Array("X-Served-By".utf8))
        #expect(r.gzipTypes == ["text/css"] && r.subFilterTypes == ["text/xml"])
        #expect(r.realIPHeader.names == [Array("x-forwarded-for".utf8)])
        #expect(loc.proxyHeaders.first?.lowerName == Array("x-real-ip".utf8) && loc.proxyHeaders.first?.name == Array("X-Real-IP".utf8))
    }

    @Test func configuredTypesWinOverTheBuiltInOnesWhichStillAnswerTheRest() throws {
        let loc = try #require(load(server("location / { types { image/png html; text/x-lb lb; } }")).servers[0].locations.find("/"))
        #expect(loc.settings.resolved.types == ["html": "image/png", "lb": "text/x-lb", "gif": "image/gif", "jpg": "image/jpeg"])
    }
}
