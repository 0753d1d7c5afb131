import LBConfig
import Testing

@testable import LBCore

/// Which location's `proxy_pass` (and `proxy_ssl_*` settings) the probes of an upstream follow.
struct HealthProbeSchemeTests {
    func choice(_ locations: String) throws -> HealthProbeScheme.Choice {
        let text = """
            http {
              upstream u { server 127.0.0.1:1; health_check; }
              upstream other { server 127.0.0.1:2; }
              server { listen 8080;
            \(locations)
              }
            }
            """
        let table = try ConfigLoader(prefix: "/p").load(text: text, file: "t.conf").table
        return HealthProbeScheme.choose(table, upstream: table.upstreamIndex["u"]!)
    }

    @Test func anHTTPSLocationMakesTheProbesSpeakTLSWithItsName() throws {
        let c = try choice("location /a { proxy_pass http://other; }\nlocation /b { proxy_pass https://u; proxy_ssl_name api.internal:8443; }")
        #expect(c.tls != nil && c.name == "api.internal" && !c.mixed)
        #expect(c.decidedBy?.line == 6)
    }

    @Test func withoutProxySSLNameTheNameIsTheProxyHost() throws {
        #expect(try choice("location / { proxy_pass https://u; }").name == "u")
        #expect(try choice("location / { proxy_pass https://u; proxy_ssl_name $proxy_host.example:$proxy_port; }").name == "u.example")
        // No request: other variables are empty.
        #expect(try choice("location / { proxy_pass https://u; proxy_ssl_name x$host; }").name == "x")
    }

    @Test func theFirstLocationInConfigurationOrderDecidesAndMixedUseIsNoted() throws {
        let plainFirst = try choice("location /a { proxy_pass http://u; }\nlocation /b { proxy_pass https://u; }")
        #expect(plainFirst.tls == nil && plainFirst.mixed && plainFirst.decidedBy?.line == 5)
        let tlsFirst = try choice("location /b { proxy_pass https://u; }\nlocation /a { proxy_pass http://u; }")
        #expect(tlsFirst.tls != nil && tlsFirst.mixed)
        // Nested locations come right after their parent.
        let nested = try choice("location /a { location /a/b { proxy_pass https://u; } }\nlocation /c { proxy_pass http://u; }")
        #expect(nested.tls != nil && nested.mixed)
    }

    @Test func aProxyPassInsideIfCounts() throws {
        let c = try choice("location / { if ($arg_x) { proxy_pass https://u; } }")
        #expect(c.tls != nil && c.decidedBy?.line == 5)
    }

    @Test func anUpstreamNoLocationNamesIsProbedOverPlainHTTP() throws {
        let c = try choice("location / { proxy_pass https://other; }")
        #expect(c.tls == nil && c.decidedBy == nil && !c.mixed)
    }
}
