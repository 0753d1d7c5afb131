import Testing
@testable import LBConfig

/// Upstream names match without regard to case, as nginx's (`ngx_http_upstream_add` compares with
/// `ngx_strncasecmp`): `proxy_pass http://backend` reaches `upstream Backend`, and no host name is
/// resolved for it.
struct UpstreamNameCaseTests {
    @Test func proxyPassFindsAnUpstreamWhateverTheCaseOfItsName() throws {
        let t = try load("""
            http {
                upstream Backend { server 127.0.0.1:9001; server 127.0.0.1:9002; }
                server { listen 8080; location /a/ { proxy_pass http://backend; } location /b/ { proxy_pass http://BACKEND/x/; } }
            }
            """) // FixedResolver() knows no host: a lookup of "backend" as a host would fail the load
        #expect(t.upstreams.count == 1)
        #expect(t.upstream(named: "bAcKeNd")?.name == "Backend")
        #expect(t.upstreams[0].peers.count == 2)
    }

    @Test func aUnixSocketPathKeepsItsCase() {
        #expect(RoutingTable.upstreamKey("unix:/tmp/A.sock") == "unix:/tmp/A.sock")
        #expect(RoutingTable.upstreamKey("Backend") == "backend")
    }
}
