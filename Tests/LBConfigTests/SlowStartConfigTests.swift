import Testing
@testable import LBConfig

/// `slow_start=` is refused where nginx Plus refuses it, and checked as a time.
struct SlowStartConfigTests {
    @Test func refusedWithHashIpHashAndRandom() {
        for policy in ["hash $uri", "ip_hash", "random"] {
            let e = loadError("http { upstream u { \(policy); server 127.0.0.1:1 slow_start=30s; server 127.0.0.1:2; } server { listen 8080; } }")
            #expect(e.hasPrefix("balancing method does not support \"slow_start\" in upstream \"u\""), "\(policy): \(e)")
        }
        #expect(loadError("http { upstream u { server 127.0.0.1:1 slow_start=x; } server { listen 8080; } }").hasPrefix("invalid parameter \"slow_start=x\""))
        #expect(loadError("http { upstream u { least_conn; server 127.0.0.1:1 slow_start=30s; } server { listen 8080; } }") == "no error")
    }

}
