import Testing
@testable import LBConfig

/// Constructs found refused in published nginx configurations (issue 15), each checked against
/// what nginx does with it.
struct RealConfigCompatTests {
    static func loaded(_ text: String, files: [String: String] = [:]) throws -> ConfigLoader.Loaded {
        try ConfigLoader(prefix: "/p", fileSystem: MemoryFS(files: files), resolver: FixedResolver()).load(text: text, file: "t.conf")
    }

    @Test func typesBlocksAtOneLevelAddUpAndTheLaterTypeOfAnExtensionWins() throws {
        let conf = """
        http {
         include mime.types;
         types { text/csv csv; text/x-later htm; }
         server { listen 8080; }
        }
        """
        let l = try Self.loaded(conf, files: ["/p/mime.types": "types {\n text/html html htm;\n text/css css;\n}\n"])
        let types = try #require(l.table.servers[0].settings.types)
        #expect(types["css"] == "text/css")
        #expect(types["csv"] == "text/csv")
        #expect(types["html"] == "text/html")
        #expect(types["htm"] == "text/x-later")
        #expect(l.warnings.map(\.description) == ["duplicate extension \"htm\", content type: \"text/x-later\", previous content type: \"text/html\" in t.conf:3"])
    }

    @Test func aTypesBlockInAServerReplacesTheInheritedOneAndASecondAddsToIt() throws {
        let conf = """
        http {
         types { text/css css; }
         server { listen 8080; types { text/a a; } types { text/b b; } }
         server { listen 8081; }
        }
        """
        let l = try Self.loaded(conf)
        #expect(l.table.servers[0].settings.types == ["a": "text/a", "b": "text/b"])
        #expect(l.table.servers[1].settings.types == ["css": "text/css"])
        #expect(l.warnings.isEmpty)
    }

    @Test func sendfileMaxChunkIsAcceptedAtEveryHTTPLevel() throws {
        #expect(loadError("http {\n sendfile_max_chunk 2m;\n server {\n listen 8080;\n sendfile_max_chunk 1m;\n location / { sendfile_max_chunk 512k; }\n }\n}\n") == "no error")
        #expect(loadError(server("sendfile_max_chunk;")) == "invalid number of arguments in \"sendfile_max_chunk\" directive in t.conf:4")
    }

    @Test func obsoleteHTTP2DirectivesLoadWithNginxsWarning() throws {
        let l = try Self.loaded("http {\n http2_max_requests 1000;\n server {\n listen 8080;\n http2_idle_timeout 3m;\n http2_recv_timeout 30s;\n http2_max_field_size 8k;\n http2_max_header_size 32k;\n }\n}\n")
        #expect(l.warnings.map(\.description) == [
            "the \"http2_max_requests\" directive is obsolete, use the \"keepalive_requests\" directive instead in t.conf:2",
            "the \"http2_idle_timeout\" directive is obsolete, use the \"keepalive_timeout\" directive instead in t.conf:5",
            "the \"http2_recv_timeout\" directive is obsolete, use the \"client_header_timeout\" directive instead in t.conf:6",
            "the \"http2_max_field_size\" directive is obsolete, use the \"large_client_header_buffers\" directive instead in t.conf:7",
            "the \"http2_max_header_size\" directive is obsolete, use the \"large_client_header_buffers\" directive instead in t.conf:8",
        ])
    }

    @Test func obsoleteHTTP2DirectivesStayOutOfLocations() {
        #expect(loadError(server("location / { http2_max_requests 10; }")) == "\"http2_max_requests\" directive is not allowed here in t.conf:4")
    }
}

struct IgnoreClientAbortTests {
    @Test func proxyIgnoreClientAbortOffIsTheDefaultAndLoads() throws {
        #expect(loadError("http {\n proxy_ignore_client_abort off;\n server {\n listen 8080;\n location / { proxy_ignore_client_abort off; proxy_pass http://127.0.0.1:9000; }\n }\n}\n") == "no error")
        let t = try load(server("location / { proxy_pass http://127.0.0.1:9000; }"))
        #expect(t.servers[0].locations.find("/")?.settings.proxyIgnoreClientAbort != true)
    }

    @Test func ignoreClientAbortOnIsInheritedAndEachModuleHasItsOwn() throws {
        let t = try load(server("""
            proxy_ignore_client_abort on; fastcgi_ignore_client_abort off;
            location /p/ { proxy_pass http://127.0.0.1:9000; }
            location /f/ { fastcgi_pass 127.0.0.1:9000; }
            location /u/ { uwsgi_ignore_client_abort on; uwsgi_pass 127.0.0.1:9000; }
            """))
        let s = t.servers[0].locations
        #expect(s.find("/p/")?.settings.proxyIgnoreClientAbort == true)
        // A FastCGI location reads fastcgi_ignore_client_abort, never proxy_ignore_client_abort.
        #expect(s.find("/f/")?.settings.proxyIgnoreClientAbort == false)
        #expect(s.find("/u/")?.settings.proxyIgnoreClientAbort == true)
        #expect(loadError(server("proxy_ignore_client_abort maybe;")) == "invalid value \"maybe\" in \"proxy_ignore_client_abort\" directive, it must be \"on\" or \"off\" in t.conf:4")
    }
}
