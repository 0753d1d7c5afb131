import Testing
@testable import LBConfig

/// fastcgi_* and uwsgi_* at load: targets, each module's own settings in the proxy fields the
/// runtime reads, nginx's inheritance of the param lists, and nginx's errors.
struct FastCGIConfigTests {
    func location(_ table: RoutingTable, _ path: String = "/") throws -> Location {
        try #require(table.servers.first?.locations.find(path))
    }

    func target(_ table: RoutingTable, _ path: String = "/") throws -> ProxyTarget {
        guard case .proxy(let t) = try location(table, path).handler else { throw ConfigError("not a pass location") }
        return t
    }

    @Test func passTargetsNameTheirProtocol() throws {
        #expect(try target(try load(server("location / { fastcgi_pass 127.0.0.1:9000; }"))).kind == .fastcgi)
        #expect(try target(try load(server("location / { uwsgi_pass 127.0.0.1:3031; }"))).kind == .uwsgi)
        #expect(try target(try load(server("location / { uwsgi_pass uwsgi://127.0.0.1:3031; }"))).port == 3031)
        #expect(try target(try load(server("location / { proxy_pass http://127.0.0.1:80; }"))).kind == .http)
        let t = try load("http { upstream php { server 127.0.0.1:9000; } server { listen 8080; location / { fastcgi_pass php; } } }")
        #expect(try target(t).kind == .fastcgi)
    }

    @Test func aFastCGILocationReadsFastCGISettingsNotProxyOnes() throws {
        let t = try load(server("""
            proxy_read_timeout 5s; proxy_buffer_size 64k; proxy_intercept_errors on; proxy_set_header X-A b;
            fastcgi_read_timeout 7s;
            location / { fastcgi_pass 127.0.0.1:9000; }
            location /p/ { proxy_pass http://127.0.0.1:80; }
            """))
        let f = try location(t).settings
        #expect(f.resolved.proxyReadTimeoutMs == 7000 && f.resolved.proxyBufferSize == 4096)
        #expect(f.proxyInterceptErrors == nil && f.proxySetHeaders == nil && f.proxyRedirectOff == true)
        let p = try location(t, "/p/").settings
        #expect(p.resolved.proxyReadTimeoutMs == 5000 && p.resolved.proxyBufferSize == 65536 && p.proxyInterceptErrors == true)
    }

    @Test func aLevelWithAnyParamReplacesTheParentsList() throws {
        let t = try load(server("""
            fastcgi_param A 1; fastcgi_param B 2;
            location / { fastcgi_pass 127.0.0.1:9000; }
            location /own { fastcgi_param C 3 if_not_empty; fastcgi_pass 127.0.0.1:9000; }
            """))
        #expect(try location(t).settings.fastcgi.params?.map { String(decoding: $0.name, as: UTF8.self) } == ["A", "B"])
        let own = try #require(try location(t, "/own").settings.fastcgi.params)
        #expect(own.map { String(decoding: $0.name, as: UTF8.self) } == ["C"] && own[0].ifNotEmpty)
        // uwsgi's list is its own.
        #expect(try location(t).settings.uwsgi.params == nil)
    }

    @Test func contentLengthParamIsRecognised() throws {
        let t = try load(server("fastcgi_param CONTENT_LENGTH $content_length; fastcgi_param X $content_length$uri; location / { fastcgi_pass 127.0.0.1:9000; }"))
        let p = try #require(try location(t).settings.fastcgi.params)
        #expect(p[0].isContentLength && !p[1].isContentLength)
    }

    @Test func nginxErrors() {
        #expect(loadError(server("location / { fastcgi_pass localhost; }")).hasPrefix("no port in upstream \"localhost\" in t.conf"))
        #expect(loadError(server("location / { proxy_pass http://127.0.0.1:80; fastcgi_pass 127.0.0.1:9000; }")).hasPrefix("\"fastcgi_pass\" directive is duplicate"))
        #expect(loadError(server("fastcgi_param A 1 sometimes; location / { fastcgi_pass 127.0.0.1:9000; }")).hasPrefix("invalid parameter \"sometimes\""))
        #expect(loadError("http { fastcgi_cache_path /c keys_zone=z:1m; server { listen 8080; location / { fastcgi_cache z; fastcgi_pass 127.0.0.1:9000; } } }")
            .hasPrefix("no \"fastcgi_cache_key\" for \"fastcgi_cache\""))
        #expect(loadError(server("location / { fastcgi_cache nope; fastcgi_cache_key $uri; fastcgi_pass 127.0.0.1:9000; }")).contains("nope"))
        #expect(loadError(server("fastcgi_pass 127.0.0.1:9000;")).hasPrefix("\"fastcgi_pass\" directive is not allowed here"))
        #expect(loadError(server("location / { uwsgi_pass suwsgi://127.0.0.1:1; }")).contains("not supported"))
        // unix: addresses go through proxy_pass's parser, with nginx's words for a bad one.
        #expect(loadError(server("location / { fastcgi_pass unix:/run/php/php-fpm.sock; }")) == "no error")
        #expect(loadError(server("location / { uwsgi_pass unix:/run/uwsgi.sock; }")) == "no error")
        #expect(loadError(server("location / { fastcgi_pass unix:; }")).hasPrefix("no path in the unix domain socket"))
    }

    @Test func passWithVariablesKeepsTheTextAsWrittenForEachRequest() throws {
        let t = try load(server("location / { fastcgi_pass $arg_b; } location /u/ { uwsgi_pass uwsgi://$host:3031; }"))
        let f = try target(t), u = try target(t, "/u/")
        #expect(f.kind == .fastcgi && f.variableURLIndex == 0 && u.kind == .uwsgi && u.variableURLIndex == 1)
        #expect(t.variableProxyURLs.map(\.source) == ["$arg_b", "uwsgi://$host:3031"])
        #expect(loadError(server("location / { fastcgi_pass 127.0.0.1:$nope; }")) == "unknown \"nope\" variable in t.conf:4")
        #expect(loadError(server("location / { uwsgi_pass suwsgi://$host; }")).contains("not supported"))
        // The cache with a key of its own, as nginx requires one.
        #expect(loadError("http { fastcgi_cache_path /c keys_zone=z:1m; server { listen 8080; location / { fastcgi_cache z; fastcgi_cache_key $uri; fastcgi_pass $arg_b; } } }") == "no error")
        #expect(loadError("http { fastcgi_cache_path /c keys_zone=z:1m; server { listen 8080; location / { fastcgi_cache z; fastcgi_pass $arg_b; } } }")
            .hasPrefix("no \"fastcgi_cache_key\" for \"fastcgi_cache\""))
    }

    @Test func cacheThroughTheSharedZones() throws {
        let t = try load("http { fastcgi_cache_path /c keys_zone=z:1m; server { listen 8080; location / { fastcgi_cache z; fastcgi_cache_key $uri; fastcgi_cache_valid 200 1m; fastcgi_pass 127.0.0.1:9000; } location /p { proxy_pass http://127.0.0.1:80; } } }")
        let s = try location(t).settings
        #expect(s.resolved.cacheZone == "z" && s.proxyCacheValid?.first?.ms == 60_000)
        // fastcgi_cache does not turn on the proxy cache elsewhere.
        #expect(try location(t, "/p").settings.resolved.cacheZone == nil)
    }

    @Test func splitPathInfoAndIndexAreKept() throws {
        let t = try load(server("location /a { fastcgi_split_path_info ^(.+\\.php)(/.*)$; fastcgi_index index.php; fastcgi_pass 127.0.0.1:9000; }"))
        let f = try location(t, "/a.php/b").settings.fastcgi
        #expect(f.index == "index.php")
        let caps = try #require(f.splitPathInfo?.regex.captures("/a.php/b/c"))
        #expect(caps.count >= 3 && caps[1] == "/a.php" && caps[2] == "/b/c")
    }
}
