import Testing
@testable import LBConfig

/// `proxy_pass https://…` and `proxy_ssl_*` at load: contexts, defaults, inheritance, errors.
struct ProxySSLTests {
    func target(_ table: RoutingTable, _ path: String = "/") throws -> ProxyTarget {
        let loc = try #require(table.servers.first?.locations.find(path))
        guard case .proxy(let t) = loc.handler else { throw ConfigError("not a proxy location") }
        return t
    }

    @Test func httpsTargetsGetAClientContextAndPort443() throws {
        let t = try target(try load(server("location / { proxy_pass https://127.0.0.1; }")))
        #expect(t.tls != nil && t.port == 443 && t.hostHeader == "127.0.0.1")
        let p = try target(try load(server("location / { proxy_pass http://127.0.0.1:8443; }")))
        #expect(p.tls == nil && p.port == 8443)
    }

    @Test func nginxDefaults() throws {
        let tls = try #require(try target(try load(server("location / { proxy_pass https://127.0.0.1; }"))).tls)
        #expect(!tls.sendsServerName && !tls.verify && tls.sessionReuse && tls.name == nil)
        let s = ProxySSLSettings()
        #expect(s.effectiveProtocols == ["TLSv1.2", "TLSv1.3"] && s.effectiveCiphers == "DEFAULT" && s.effectiveVerifyDepth == 1)
    }

    @Test func everyProxySSLSettingIsInheritedFieldByField() throws {
        let table = try load("""
            http {
              proxy_ssl_server_name on; proxy_ssl_name up.test; proxy_ssl_verify_depth 3;
              proxy_ssl_trusted_certificate /ca.crt; proxy_ssl_crl /crl.pem; proxy_ssl_certificate /c.crt;
              proxy_ssl_certificate_key /c.key; proxy_ssl_protocols TLSv1.3; proxy_ssl_ciphers HIGH;
              proxy_ssl_session_reuse off; proxy_ssl_conf_command Options -SessionTicket; proxy_ssl_password_file /pw;
              server { listen 8080; proxy_ssl_verify off;
                       location / { proxy_ssl_verify_depth 2; return 200; } }
            }
            """)
        let loc = try #require(table.servers.first?.locations.find("/"))
        let s = loc.settings.proxySSL
        #expect(s.serverName == true && s.verify == false && s.verifyDepth == 2 && s.trustedCertificate?.path == "/ca.crt")
        #expect(s.crl?.path == "/crl.pem" && s.certificate?.path == "/c.crt" && s.certificateKey?.path == "/c.key")
        #expect(s.protocols == ["TLSv1.3"] && s.ciphers == "HIGH" && s.sessionReuse == false && s.confCommands?.count == 1)
        #expect(s.name != nil)
        // Nothing left unset: a field that `inherit` forgets stays nil here.
        for child in Mirror(reflecting: s).children {
            let m = Mirror(reflecting: child.value)
            #expect(!(m.displayStyle == .optional && m.children.isEmpty), "\(child.label ?? "?") not inherited")
        }
    }

    @Test func errorsAsNginx() {
        #expect(loadError(server("location / { proxy_pass https://127.0.0.1; proxy_ssl_verify on; }"))
            == "no proxy_ssl_trusted_certificate for proxy_ssl_verify in t.conf:4")
        #expect(loadError(server("location / { proxy_pass https://127.0.0.1; proxy_ssl_certificate /nonexistent.crt; proxy_ssl_certificate_key /k; }"))
            .hasPrefix("cannot load certificate \"/nonexistent.crt\": BIO_new_file() failed"))
        #expect(loadError(server("location / { proxy_pass https://127.0.0.1; proxy_ssl_certificate /x.crt; }"))
            == "no \"proxy_ssl_certificate_key\" is defined for certificate \"/x.crt\" in t.conf:4")
        #expect(loadError(server("proxy_ssl_protocols TLSv9;")).hasPrefix("invalid value \"TLSv9\""))
        #expect(loadError(server("location / { proxy_pass https://127.0.0.1; proxy_ssl_ciphers NOSUCHCIPHER; }"))
            .hasPrefix("SSL_CTX_set_cipher_list(\"NOSUCHCIPHER\") failed"))
    }

    @Test func locationsWithTheSameSettingsShareOneClientContext() throws {
        let table = try load(server("""
            location /a { proxy_pass https://127.0.0.1; }
            location /b { proxy_pass https://127.0.0.1:8443; }
            location /c { proxy_pass https://127.0.0.1; proxy_ssl_server_name on; }
            """))
        let a = try #require(try target(table, "/a").tls), b = try #require(try target(table, "/b").tls)
        let c = try #require(try target(table, "/c").tls)
        #expect(a === b && a !== c)
        // A second load (a reload) while the first is alive gets the same one: its sessions carry over.
        let again = try load(server("location /a { proxy_pass https://127.0.0.1; }"))
        #expect(try target(again, "/a").tls === a)
    }

    @Test func plainTargetsBuildNoContextWhateverTheSettings() throws {
        // proxy_ssl_* on a plain-HTTP location are only settings (nginx checks them only for https).
        let t = try target(try load(server("location / { proxy_pass http://127.0.0.1; proxy_ssl_verify on; }")))
        #expect(t.tls == nil)
    }
}
