import Testing
@testable import LBConfig

/// Where HTTP/2 is spoken, from nginx's two syntaxes, and the `http2_*` limits.
@Suite struct HTTP2ConfigTests {
    @Test func listenHttp2WithoutSslIsCleartextHTTP2() throws {
        let t = try load("http {\n server {\n  listen 127.0.0.1:8080 http2;\n }\n server {\n  listen 127.0.0.1:8081;\n }\n}")
        #expect(t.listeners[0].http2 && t.listeners[0].http2Cleartext)
        #expect(!t.listeners[1].http2 && !t.listeners[1].http2Cleartext)
    }

    @Test func http2OnInTheDefaultServerEnablesThePlainAddress() throws {
        let t = try load("http {\n http2 on;\n server {\n  listen 127.0.0.1:8080;\n }\n server {\n  listen 127.0.0.1:8081;\n  http2 off;\n }\n}")
        #expect(t.listeners[0].http2Cleartext && !t.listeners[0].http2)
        #expect(!t.listeners[1].http2Cleartext)
    }

    @Test func http2LimitsAreReadAndInherited() throws {
        let t = try load("http {\n http2_recv_buffer_size 128k;\n http2_chunk_size 16k;\n server {\n  listen 127.0.0.1:8080 http2;\n  http2_max_concurrent_streams 7;\n  http2_body_preread_size 1k;\n }\n}")
        let s = t.servers[0].settings
        #expect(s.http2MaxConcurrentStreams == 7 && s.http2BodyPrereadSize == 1024 && s.http2ChunkSize == 16384 && s.http2RecvBufferSize == 131072)
    }

    @Test func http2DirectivesAreRefusedWhereNginxRefusesThem() {
        #expect(loadError("http {\n server {\n  location / {\n   http2 on;\n  }\n }\n}") == "\"http2\" directive is not allowed here in t.conf:4")
        #expect(loadError("http {\n server {\n  http2 maybe;\n }\n}").hasPrefix("invalid value \"maybe\" in \"http2\" directive"))
        #expect(loadError("http {\n server {\n  http2_recv_buffer_size 1m;\n }\n}") == "\"http2_recv_buffer_size\" directive is not allowed here in t.conf:3")
    }
}
