import Testing
@testable import LBConfig

/// `resolver`, `resolver_timeout`, `zone` and `server … resolve`/`service=`: what loads, what
/// fails and with nginx's words.
@Suite struct ResolverConfigTests {
    func http(_ body: String) -> String { "http {\n\(body)\n server { listen 8080; location / { proxy_pass http://u; } }\n}\n" }

    @Test func resolveServersBecomeDynamicMembers() throws {
        let t = try load(http("""
            resolver 127.0.0.1:5353 [::1] valid=10s ipv6=off;
            resolver_timeout 2s;
            upstream u { zone u 64k; server app.test:8080 resolve weight=2 max_fails=3; server app.test service=http resolve; server 10.0.0.1:80 resolve; }
            """))
        let u = t.upstream(named: "u")!
        #expect(u.zone == "u")
        #expect(u.peers.map(\.address.host) == ["10.0.0.1"])
        #expect(u.dynamic.count == 2)
        #expect(u.dynamic[0].name == "app.test" && u.dynamic[0].port == 8080 && u.dynamic[0].weight == 2 && u.dynamic[0].weightSet)
        #expect(u.dynamic[0].maxFails == 3 && u.dynamic[0].queryName == "app.test")
        #expect(u.dynamic[1].service == "http" && u.dynamic[1].queryName == "_http._tcp.app.test" && !u.dynamic[1].weightSet)
        #expect(u.resolver == ResolverSpec(servers: [HostPort(host: "127.0.0.1", port: 5353), HostPort(host: "::1", port: 53)],
                                           validMs: 10_000, ipv4: true, ipv6: false, timeoutMs: 2000))
    }

    @Test func upstreamResolverOverridesTheHTTPOne() throws {
        let t = try load(http("""
            resolver 127.0.0.1;
            upstream u { zone u; resolver 127.0.0.2:5300; resolver_timeout 5s; server app.test resolve; }
            """))
        let r = t.upstream(named: "u")!.resolver!
        #expect(r.servers == [HostPort(host: "127.0.0.2", port: 5300)] && r.timeoutMs == 5000)
        let d = try load(http("resolver 127.0.0.1;\nupstream u { zone u; server app.test resolve; }"))
        #expect(d.upstream(named: "u")!.resolver!.timeoutMs == 30_000)
    }

    @Test func srvQueryNamesAsNginxBuildsThem() {
        #expect(dyn("backend.example.com", "http").queryName == "_http._tcp.backend.example.com")
        #expect(dyn("backend.example.com", "_http._tcp").queryName == "_http._tcp.backend.example.com")
        #expect(dyn("example.com", "server1.backend").queryName == "server1.backend.example.com")
    }

    func dyn(_ name: String, _ service: String) -> DynamicServer {
        DynamicServer(name: name, port: 80, service: service, written: name, weight: 1, weightSet: false, maxFails: 1, failTimeoutMs: 0,
                      maxConns: 0, backup: false, down: false)
    }

    @Test(arguments: [
        ("resolver 127.0.0.1;\nupstream u { server app.test resolve; }",
         "resolving names at run time requires upstream \"u\" in t.conf:3 to be in shared memory"),
        ("upstream u { zone u; server app.test resolve; }",
         "no resolver defined to resolve names at run time in upstream \"u\" in t.conf:2"),
        ("resolver 127.0.0.1;\nupstream u { zone u; server app.test service=http; }",
         "service upstream \"app.test\" requires \"resolve\" parameter in t.conf:3"),
        ("resolver 127.0.0.1;\nupstream u { zone u; server app.test:80 service=http resolve; }",
         "service upstream \"app.test:80\" may not have port in t.conf:3"),
        ("resolver 127.0.0.1;\nupstream u { zone u; server 10.0.0.1 service=http resolve; }",
         "service upstream \"10.0.0.1\" requires domain name in t.conf:3"),
        ("resolver 127.0.0.1;\nupstream u { zone u; server app.test service= resolve; }", "service is empty in t.conf:3"),
        ("resolver 127.0.0.1 ipv4=off ipv6=off;", "\"ipv4\" and \"ipv6\" cannot both be \"off\" in t.conf:2"),
        ("resolver 127.0.0.1 valid=x;", "invalid parameter: valid=x in t.conf:2"),
        ("resolver valid=5s;", "no name servers defined in t.conf:2"),
        ("resolver nowhere.test;", "host not found in resolver \"nowhere.test\" in t.conf:2"),
        ("resolver 127.0.0.1;\nresolver 127.0.0.2;", "\"resolver\" directive is duplicate in t.conf:3"),
        ("upstream u { zone u 1k; server 10.0.0.1; }", "zone \"u\" is too small in t.conf:2"),
    ])
    func nginxErrors(_ config: String, _ expected: String) {
        #expect(loadError(http(config)) == expected)
    }

    @Test func resolverAtServerLevelIsCheckedToo() {
        #expect(loadError("http { server { listen 8080; resolver 127.0.0.1 ipv4=maybe; } }") == "invalid parameter: ipv4=maybe in t.conf:1")
    }
}
