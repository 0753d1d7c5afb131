import Testing
@testable import LBConfig

/// `unix:` addresses in `listen`, `server` and `proxy_pass`, and `listen … proxy_protocol`, as
/// nginx parses them.
@Suite struct UnixAndProxyProtocolConfigTests {
    @Test func unixListenHasNoPortAndSharesProxyProtocolAcrossServers() throws {
        let t = try load("""
        http {
            server { listen unix:/run/lb.sock proxy_protocol; listen 8080; }
            server { listen unix:/run/lb.sock; server_name b; }
        }
        """)
        let unix = try #require(t.listeners.first { $0.address.isUnix })
        #expect(unix.address.description == "unix:/run/lb.sock")
        #expect(unix.address.port == nil && unix.address.unixPath == "/run/lb.sock")
        #expect(unix.proxyProtocol)
        #expect(unix.serverCount == 2)
        #expect(t.listeners.first { !$0.address.isUnix }?.proxyProtocol == false)
    }

    @Test func unixUpstreamServersKeepTheirParameters() throws {
        let t = try load("""
        http {
            upstream app { server unix:/run/a.sock weight=3 max_fails=2 fail_timeout=5s; server unix:/run/b.sock backup; }
            server { listen 80; location / { proxy_pass http://app; } }
        }
        """)
        let u = try #require(t.upstream(named: "app"))
        #expect(u.peers.map(\.address.description) == ["unix:/run/a.sock", "unix:/run/b.sock"])
        #expect(u.peers[0].weight == 3 && u.peers[0].maxFails == 2 && u.peers[0].failTimeoutMs == 5000)
        #expect(u.peers[1].backup)
    }

    @Test(arguments: [
        ("http://unix:/run/app.sock:/v1/", "/v1/"),
        ("http://unix:/run/app.sock", nil),
    ] as [(String, String?)])
    func proxyPassToAUnixURL(_ url: String, _ uri: String?) throws {
        let t = try load("http { server { listen 80; location /a/ { proxy_pass \(url); } } }")
        guard case .proxy(let target)? = t.servers[0].locations.find("/a/x")?.handler else {
            Issue.record("not proxied")
            return
        }
        #expect(target.uri == uri)
        #expect(target.hostHeader == "localhost")
        #expect(t.upstreams[target.upstream].peers.map(\.address.description) == ["unix:/run/app.sock"])
    }

    @Test func unixAddressErrorsInNginxsWords() {
        #expect(loadError(server("listen unix:;")).hasPrefix("no path in the unix domain socket in \"unix:\" of the \"listen\" directive in t.conf:"))
        #expect(loadError("http { upstream u { server unix:; } }").hasPrefix("no path in the unix domain socket in upstream \"unix:\""))
        let long = "/" + String(repeating: "s", count: 110)
        #expect(loadError(server("listen unix:\(long);")).hasPrefix("too long path in the unix domain socket"))
    }

    @Test func unixInAccessAndRealIPRules() throws {
        let t = try load(server("allow unix:; deny all; set_real_ip_from unix:; real_ip_header proxy_protocol;"))
        let s = t.servers[0].fallback.settings
        #expect(s.accessRules?.first?.network == CIDR.unix)
        #expect(s.realIPFrom == [CIDR.unix])
        #expect(s.realIPHeader == "proxy_protocol")
        #expect(CIDR.unix.contains([]))
        #expect(!CIDR.unix.contains([UInt8](repeating: 0, count: 16)))
        #expect(!(parseCIDR("0.0.0.0/0")!.contains([])))
    }
}
