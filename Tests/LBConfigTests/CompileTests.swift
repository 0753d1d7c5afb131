import Testing
@testable import LBConfig

@Suite struct CompileTests {
    /// A main config in the style compose stacks ship: include conf.d/*.conf, a custom log_format
    /// from several strings, an upstream of 4 servers, /cache-me with proxy_cache, /health-check.
    static let composeMain = """
    user  nginx;
    worker_processes  auto;
    error_log  /var/log/nginx/error.log notice;
    pid        /var/run/nginx.pid;

    events {
        worker_connections  1024;
    }

    http {
        include       /etc/nginx/mime.types;
        default_type  application/octet-stream;

        log_format  main  '$remote_addr - $remote_user [$time_local] "$request" '
                          '$status $body_bytes_sent "$http_referer" '
                          '"$http_user_agent" "$http_x_forwarded_for"';

        access_log  /var/log/nginx/access.log  main;
        sendfile        on;
        #tcp_nopush     on;
        keepalive_timeout  65;
        #gzip  on;

        include /etc/nginx/conf.d/*.conf;
    }
    """

    static let composeSite = """
    proxy_cache_path /var/cache/nginx levels=1:2 keys_zone=my_cache:10m max_size=1g inactive=60m use_temp_path=off;

    upstream app_servers {
        server web1:5000;
        server web2:5000;
        server web3:5000;
        server web4:5000;
    }

    server {
        listen 80;
        server_name localhost;

        location / {
            proxy_pass http://app_servers;
            proxy_set_header Host $host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }

        location /cache-me {
            proxy_pass http://app_servers;
            proxy_cache my_cache;
            proxy_cache_lock on;
            proxy_cache_valid 200 10s;
            proxy_cache_use_stale updating;
            proxy_cache_background_update on;
            add_header X-Cache-Status $upstream_cache_status;
        }

        location /health-check {
            add_header Content-Type text/plain;
            return 200 "success";
        }
    }
    """

    static let mime = "types {\n text/html html htm;\n text/css css;\n}\n"

    @Test func composeStyleConfigCompiles() throws {
        let resolver = FixedResolver(answers: ["web1": ["127.0.1.1"], "web2": ["127.0.1.2"], "web3": ["127.0.1.3"], "web4": ["127.0.1.4"]])
        let loader = ConfigLoader(prefix: "/etc/nginx", fileSystem: MemoryFS(files: [
            "/etc/nginx/nginx.conf": Self.composeMain, "/etc/nginx/mime.types": Self.mime,
            "/etc/nginx/conf.d/default.conf": Self.composeSite,
        ]), resolver: resolver)
        let t = try loader.load(path: "/etc/nginx/nginx.conf").table
        #expect(t.main.workerProcesses == nil) // auto
        #expect(t.main.workerConnections == 1024)
        #expect(t.main.pid == "/var/run/nginx.pid")
        #expect(t.files.map(\.path) == ["/etc/nginx/nginx.conf", "/etc/nginx/mime.types", "/etc/nginx/conf.d/default.conf"])
        let fmt = try #require(t.logFormats["main"])
        #expect(fmt.template.source == #"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" "$http_x_forwarded_for""#)
        #expect(fmt.template.variables.contains(.httpHeader("x-forwarded-for")))

        let up = try #require(t.upstream(named: "app_servers"))
        #expect(up.peers.map(\.address.description) == ["127.0.1.1:5000", "127.0.1.2:5000", "127.0.1.3:5000", "127.0.1.4:5000"])
        #expect(up.peers.map(\.name) == ["web1:5000", "web2:5000", "web3:5000", "web4:5000"])
        #expect(up.policy == .roundRobin)

        #expect(t.cacheZones.count == 1)
        let zone = t.cacheZones[0]
        #expect(zone.name == "my_cache" && zone.levels == [1, 2] && zone.keysZoneSize == 10 << 20 && zone.maxSize == 1 << 30)
        #expect(zone.inactiveMs == 3_600_000 && zone.useTempPath == false && zone.path == "/var/cache/nginx")

        #expect(t.listeners.count == 1 && t.listeners[0].address == HostPort(host: "0.0.0.0", port: 80))
        let s = t.server(for: 0, host: "localhost")
        #expect(s.settings.types?["css"] == "text/css")
        #expect(s.settings.sendfile == true)
        #expect(s.settings.accessLogs?.first?.format == "main" && s.settings.accessLogs?.first?.logFormat.name == "main")

        let root = try #require(s.locations.find("/anything"))
        guard case .proxy(let target) = root.handler else { Issue.record("not proxy"); return }
        #expect(t.upstreams[target.upstream].name == "app_servers" && target.uri == nil)
        #expect(root.settings.proxySetHeaders?.map(\.name) == ["Host", "X-Real-IP", "X-Forwarded-For"])

        let cache = try #require(s.locations.find("/cache-me"))
        #expect(cache.settings.resolved.cacheZone == "my_cache")
        #expect(cache.settings.proxyCacheLock == true)
        #expect(cache.settings.proxyCacheValid == [CacheValid(codes: [200], ms: 10_000)])
        #expect(cache.settings.proxyCacheUseStale == [.updating])
        #expect(cache.settings.addHeaders?.first?.value.variables == [.upstreamCacheStatus])
        // proxy_set_header is not set in /cache-me and none at server/http level: nginx's defaults apply.
        #expect(cache.settings.proxySetHeaders == nil)

        let health = try #require(s.locations.find("/health-check"))
        guard case .return(let r) = health.handler else { Issue.record("not return"); return }
        #expect(r.code == 200 && r.text?.literalBytes == Array("success".utf8))
    }

    @Test func arrayDirectivesReplaceRatherThanMerge() throws {
        let t = try load("""
        http {
            proxy_set_header X-A a;
            add_header X-H h;
            server {
                listen 80;
                location /inherits { }
                location /replaces {
                    proxy_set_header X-B b;
                    location /replaces/deeper { add_header X-D d; }
                }
            }
        }
        """)
        let s = t.servers[0]
        #expect(s.locations.find("/inherits")?.settings.proxySetHeaders?.map(\.name) == ["X-A"])
        #expect(s.locations.find("/replaces")?.settings.proxySetHeaders?.map(\.name) == ["X-B"])
        #expect(s.locations.find("/replaces")?.settings.addHeaders?.map(\.name) == ["X-H"])
        let deeper = try #require(s.locations.find("/replaces/deeper/x"))
        #expect(deeper.settings.proxySetHeaders?.map(\.name) == ["X-B"])
        #expect(deeper.settings.addHeaders?.map(\.name) == ["X-D"])
    }

    @Test func scalarSettingsInheritDownAndDefaultsApply() throws {
        let t = try load(server("client_max_body_size 5m;\nlocation /a { proxy_read_timeout 3s; }\nlocation /b { client_max_body_size 0; }"))
        let s = t.servers[0]
        #expect(s.locations.find("/a")?.settings.resolved.clientMaxBodySize == 5 << 20)
        #expect(s.locations.find("/a")?.settings.resolved.proxyReadTimeoutMs == 3000)
        #expect(s.locations.find("/b")?.settings.resolved.clientMaxBodySize == 0)
        #expect(s.fallback.settings.resolved.proxyReadTimeoutMs == 60_000)
        #expect(s.fallback.settings.resolved.keepaliveTimeoutMs == 75_000)
    }

    @Test func upstreamPeersPoliciesAndHostnames() throws {
        let resolver = FixedResolver(answers: ["app": ["127.0.2.1", "127.0.2.2", "127.0.2.3"]])
        let t = try load("""
        http {
            upstream a { least_conn; server 127.0.0.1:1 weight=5 max_fails=3 fail_timeout=30s max_conns=10; server 127.0.0.1:2 backup; server 127.0.0.1:3 down; keepalive 16; }
            upstream b { hash $request_uri consistent; server app:5000; }
            upstream c { ip_hash; server [::1]:8080; }
        }
        """, resolver: resolver)
        let a = try #require(t.upstream(named: "a"))
        #expect(a.policy == .leastConn && a.keepalive == 16)
        #expect(a.peers[0].weight == 5 && a.peers[0].maxFails == 3 && a.peers[0].failTimeoutMs == 30_000 && a.peers[0].maxConns == 10)
        #expect(a.peers[1].backup && a.peers[2].down)
        let b = try #require(t.upstream(named: "b"))
        // A hostname with several addresses becomes several peers, as compose --scale relies on.
        #expect(b.peers.map(\.address.description) == ["127.0.2.1:5000", "127.0.2.2:5000", "127.0.2.3:5000"])
        guard case .hash(let key, let consistent) = b.policy else { Issue.record("policy"); return }
        #expect(key.variables == [.requestURI] && consistent)
        #expect(t.upstream(named: "c")?.peers[0].address == HostPort(host: "::1", port: 8080))
    }

    @Test func proxyPassTargets() throws {
        let t = try load(server("""
        location /up/ { proxy_pass http://pool/; }
        location /direct { proxy_pass http://127.0.0.1:9009; }
        location /v2/ { proxy_pass http://127.0.0.1:9009/api/v2/; }
        """).replacing("http {", with: "http {\nupstream pool { server 127.0.0.1:7000; }"))
        let s = t.servers[0]
        guard case .proxy(let up) = s.locations.find("/up/x")?.handler,
              case .proxy(let direct) = s.locations.find("/direct")?.handler,
              case .proxy(let v2) = s.locations.find("/v2/a")?.handler else { Issue.record("handlers"); return }
        #expect(t.upstreams[up.upstream].name == "pool" && up.uri == "/" && up.hostHeader == "pool")
        #expect(t.upstreams[direct.upstream].implicit && direct.uri == nil && direct.hostHeader == "127.0.0.1:9009")
        #expect(v2.upstream == direct.upstream && v2.uri == "/api/v2/")
        #expect(s.locations.find("/up/x")?.autoRedirect == true)
    }

    @Test func listenersAndServerNames() throws {
        let t = try load("""
        http {
            server { listen 127.0.0.1:8080; server_name example.com www.example.com; }
            server { listen 127.0.0.1:8080 default_server; server_name *.example.com; }
            server { listen 127.0.0.1:8080; server_name www.example.*; }
            server { listen 127.0.0.1:8080; server_name ~^(?<sub>api\\d+)\\.test$; add_header X-Sub $sub; }
            server { listen [::1]:8081; listen 8082 reuseport backlog=100; }
        }
        """)
        #expect(t.listeners.map(\.address.description) == ["127.0.0.1:8080", "[::1]:8081", "0.0.0.0:8082"])
        #expect(t.listeners[2].reuseport && t.listeners[2].backlog == 100)
        #expect(t.server(for: 0, host: "example.com").index == 0)
        #expect(t.server(for: 0, host: "www.example.com").index == 0) // exact beats wildcards
        #expect(t.server(for: 0, host: "a.b.example.com").index == 1)
        #expect(t.server(for: 0, host: "www.example.org").index == 2)
        #expect(t.server(for: 0, host: "api7.test").index == 3)
        #expect(t.server(for: 0, host: "unknown.host").index == 1) // default_server
        #expect(t.server(for: 1, host: "anything").index == 4)
    }

    @Test func conflictingServerNamesWarn() throws {
        let loaded = try ConfigLoader(prefix: "/p", fileSystem: MemoryFS(files: [:]), resolver: FixedResolver())
            .load(text: "http {\n server { listen 80; server_name a; }\n server { listen 80; server_name a; }\n}")
        #expect(loaded.warnings.map(\.description) == ["conflicting server name \"a\" on 0.0.0.0:80, ignored in test.conf:3"])
    }

    @Test func mapsDefineVariables() throws {
        let t = try load("""
        http {
            map $http_upgrade $connection_upgrade {
                default upgrade;
                ''      close;
            }
            server { listen 80; location /ws { proxy_pass http://127.0.0.1:1; proxy_set_header Connection $connection_upgrade; } }
        }
        """)
        #expect(t.maps.count == 1 && t.maps[0].variable == "connection_upgrade")
        #expect(t.maps[0].exact[""]?.literalBytes == Array("close".utf8))
        #expect(t.maps[0].defaultValue.literalBytes == Array("upgrade".utf8))
    }

    @Test func relativePathsResolveAgainstPrefix() throws {
        let t = try ConfigLoader(prefix: "/srv/lb", fileSystem: MemoryFS(files: [:]), resolver: FixedResolver()).load(text: """
        pid logs/lb.pid;
        http { proxy_cache_path cache keys_zone=z:1m; server { listen 80; root www; access_log logs/a.log; } }
        """).table
        #expect(t.main.pid == "/srv/lb/logs/lb.pid")
        #expect(t.cacheZones[0].path == "/srv/lb/cache")
        #expect(t.servers[0].settings.docRoot == .root(Template(literal: "/srv/lb/www")))
        #expect(t.servers[0].settings.accessLogs?.first?.path == "/srv/lb/logs/a.log")
    }

    /// nginx drops a root's trailing `/` as it reads it (ngx_http_core_root), before making it
    /// absolute; an alias keeps its own.
    @Test func rootDropsItsTrailingSlash() throws {
        let t = try ConfigLoader(prefix: "/srv/lb", fileSystem: MemoryFS(files: [:]), resolver: FixedResolver()).load(text: """
        http { server { listen 80; root /srv/www/;
            location /a/ { root www/; } location /b/ { root /; } location /c/ { root $host/; } location /d/ { alias /srv/d/; } } }
        """).table
        let s = t.servers[0]
        #expect(s.settings.docRoot == .root(Template(literal: "/srv/www")))
        func root(_ p: String) -> DocRoot? { s.locations.all.first { $0.match == .prefix(p) }?.settings.docRoot }
        #expect(root("/a/") == .root(Template(literal: "/srv/lb/www")))
        #expect(root("/b/") == .root(Template(literal: "")))
        #expect(root("/c/") == .root(try Template(parsing: "$host")))
        #expect(root("/d/") == .alias(Template(literal: "/srv/d/"), locationLength: 3))
    }

    @Test func stackBlockAndServiceUpstream() throws {
        let t = try load("""
        stack {
            service store { command lb-store --port 6380; }
            service app { command lb-app --port $port; scale 3; port 9001; environment STORE_PORT 6380; }
        }
        http { upstream app { service app; } }
        """)
        let stack = try #require(t.stack)
        #expect(stack.services.map(\.name) == ["store", "app"])
        #expect(stack.services[1].command == ["lb-app", "--port", "$port"] && stack.services[1].scale == 3)
        #expect(t.upstream(named: "app")?.peers.map(\.address.description) == ["127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"])
        #expect(loadError("http { upstream app { service nope; } }") == "unknown service \"nope\" in upstream \"app\" in t.conf:1")
    }

    @Test func templatesParseVariables() throws {
        let t = try Template(parsing: "a$host:${server_port}b$1$http_X_Custom_Header")
        #expect(t.parts == [.literal(Array("a".utf8)), .variable(.host), .literal(Array(":".utf8)), .variable(.serverPort),
                            .literal(Array("b".utf8)), .variable(.capture(1)), .variable(.httpHeader("x-custom-header"))])
        #expect(throws: ConfigError.self) { try Template(parsing: "x$") }
        #expect(throws: ConfigError.self) { try Template(parsing: "${unclosed") }
    }
}

/// The configuration Debian's nginx package installs, loaded unchanged.
@Suite struct StockConfigTests {
    static let debianMain = """
    user www-data;
    worker_processes auto;
    pid /run/nginx.pid;
    include /etc/nginx/modules-enabled/*.conf;

    events {
    \tworker_connections 768;
    \t# multi_accept on;
    }

    http {
    \tsendfile on;
    \ttcp_nopush on;
    \ttypes_hash_max_size 2048;
    \t# server_tokens off;
    \tinclude /etc/nginx/mime.types;
    \tdefault_type application/octet-stream;
    \tssl_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3; # Dropping SSLv3, ref: POODLE
    \tssl_prefer_server_ciphers on;
    \taccess_log /var/log/nginx/access.log;
    \terror_log /var/log/nginx/error.log;
    \tgzip on;
    \tinclude /etc/nginx/conf.d/*.conf;
    \tinclude /etc/nginx/sites-enabled/*;
    }
    """

    static let debianSite = """
    server {
    \tlisten 80 default_server;
    \tlisten [::]:80 default_server;
    \troot /var/www/html;
    \tindex index.html index.htm index.nginx-debian.html;
    \tserver_name _;
    \tlocation / {
    \t\ttry_files $uri $uri/ =404;
    \t}
    }
    """

    @Test func debianDefaultLoadsWithAWarningForItsModule() throws {
        let fs = MemoryFS(files: ["/etc/nginx/nginx.conf": Self.debianMain, "/etc/nginx/mime.types": CompileTests.mime,
                                  "/etc/nginx/modules-enabled/50-mod-http-echo.conf": "load_module modules/ngx_http_echo_module.so;\n",
                                  "/etc/nginx/sites-enabled/default": Self.debianSite])
        let loaded = try ConfigLoader(prefix: "/usr/share/nginx", fileSystem: fs, resolver: FixedResolver()).load(path: "/etc/nginx/nginx.conf")
        #expect(loaded.warnings.map(\.message) == ["module \"modules/ngx_http_echo_module.so\" is not loaded: lb has no dynamic modules"])
        let t = loaded.table
        #expect(t.listeners.map(\.address.description) == ["0.0.0.0:80", "[::]:80"])
        #expect(t.servers[0].settings.resolved.index.map(\.source) == ["index.html", "index.htm", "index.nginx-debian.html"])
        #expect(t.servers[0].locations.find("/x")?.tryFiles?.entries == ["$uri", "$uri/", "=404"])
    }
}
