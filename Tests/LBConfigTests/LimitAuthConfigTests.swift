import Testing
@testable import LBConfig

/// limit_req / limit_conn / auth_basic / satisfy as the config compiles them, with nginx's errors.
struct LimitAuthConfigTests {
    static func http(_ top: String, _ loc: String) -> String {
        "http {\n\(top)\n server {\n listen 8080;\n location / {\n\(loc)\n }\n }\n}\n"
    }

    @Test func zonesAndLimitsCompileWithNginxsUnits() throws {
        let t = try load(LimitAuthConfigTests.http("""
            limit_req_zone $binary_remote_addr zone=one:10m rate=30r/m;
            limit_req_zone $server_name zone=srv:1m rate=5r/s;
            limit_conn_zone $binary_remote_addr zone=addr:1m;
            limit_req_status 429;
            """, """
            limit_req zone=one burst=5 nodelay;
            limit_req zone=srv burst=2 delay=1;
            limit_conn addr 3;
            limit_conn_dry_run on;
            limit_req_log_level warn;
            """))
        #expect(t.limitZones.map(\.name) == ["one", "srv", "addr"])
        #expect(t.limitZones[0].rate == 500 && t.limitZones[1].rate == 5000 && t.limitZones[0].size == 10 << 20)
        let p = t.servers[0].locations.find("/")!.settings.accessPhase
        #expect(p.limitReq == [LimitReqRule(zone: 0, burst: 5000, delay: Int.max / 1000 * 1000), LimitReqRule(zone: 1, burst: 2000, delay: 1000)])
        #expect(p.limitConn == [LimitConnRule(zone: 2, limit: 3)])
        let r = t.servers[0].locations.find("/")!.settings.resolved
        #expect(r.limitReqStatus == 429 && r.limitConnStatus == 503 && p.limitConnDryRun == true)
        #expect(r.limitReqLogLevel == .warn && r.limitReqDelayLogLevel == .notice)
        #expect(p.active)
    }

    @Test func aLocationWithoutLimitsOrAuthHasNoAccessPhaseWork() throws {
        let t = try load(LimitAuthConfigTests.http("limit_req_zone $binary_remote_addr zone=one:1m rate=1r/s;", "return 200;"))
        #expect(!t.servers[0].locations.find("/")!.settings.accessPhase.active)
    }

    @Test(arguments: [
        ("limit_req_zone $binary_remote_addr zone=one:10m rate=1r/s sync;", "",
         "\"sync\" is not supported by lb: zones are shared by the worker threads of one lb, not synchronized across a cluster (nginx Plus) in t.conf:2"),
        ("limit_req_zone $binary_remote_addr zone=one:10k rate=1r/s;", "", "zone \"zone=one:10k\" is too small in t.conf:2"),
        ("limit_req_zone $binary_remote_addr zone=one rate=1r/s;", "", "invalid zone size \"zone=one\" in t.conf:2"),
        ("limit_req_zone $binary_remote_addr zone=one:1m rate=0r/s;", "", "invalid rate \"rate=0r/s\" in t.conf:2"),
        ("", "limit_req zone=nowhere;", "zero size shared memory zone \"nowhere\" in t.conf:6"),
        ("limit_req_zone $binary_remote_addr zone=one:1m rate=1r/s;", "limit_req zone=one; limit_req zone=one;", "\"limit_req\" directive is duplicate in t.conf:6"),
        ("limit_req_zone $binary_remote_addr zone=one:1m rate=1r/s;", "limit_req zone=one burst=0;", "invalid burst value \"burst=0\" in t.conf:6"),
        ("limit_req_zone $binary_remote_addr zone=one:1m rate=1r/s;", "limit_req zone=one burst=999999999999999999;",
         "invalid burst value \"burst=999999999999999999\" in t.conf:6"),
        ("limit_req_zone $binary_remote_addr zone=one:1m rate=999999999999999999r/s;", "", "invalid rate \"rate=999999999999999999r/s\" in t.conf:2"),
        ("limit_req_zone $binary_remote_addr zone=one:1m rate=1r/s;", "limit_conn one 1;",
         "the shared memory zone \"one\" is already declared for a different use in t.conf:6"),
        ("limit_conn_zone $binary_remote_addr zone=addr:1m;", "limit_conn addr 0;", "invalid number of connections \"0\" in t.conf:6"),
        ("limit_conn_zone $binary_remote_addr zone=addr:1m;\nlimit_conn_zone $remote_addr zone=addr:1m;", "",
         "limit_conn_zone \"addr\" is already bound to key \"$binary_remote_addr\" in t.conf:3"),
        ("limit_req_status 200;", "", "value must be between 400 and 599 in t.conf:2"),
        ("", "limit_conn_log_level crit;", "invalid value \"crit\" in \"limit_conn_log_level\" directive, it must be \"info\", \"notice\", \"warn\" or \"error\" in t.conf:6"),
        ("", "satisfy some;", "invalid value \"some\" in \"satisfy\" directive, it must be \"all\" or \"any\" in t.conf:6"),
        ("", "auth_request /a; auth_request /b;", "\"auth_request\" directive is duplicate in t.conf:6"),
        ("", "auth_request_set user $upstream_status;", "invalid variable name \"user\" in t.conf:6"),
        ("", "auth_request /a; proxy_set_header X-User $user;", "unknown \"user\" variable in t.conf:6"),
    ])
    func refusalsSayWhyAndWhere(top: String, loc: String, expected: String) {
        #expect(loadError(LimitAuthConfigTests.http(top, loc)) == expected)
    }

    @Test func authBasicInheritsAndOffTurnsItOff() throws {
        let t = try load("""
            http {
              auth_basic "Closed site";
              auth_basic_user_file conf/htpasswd;
              satisfy any;
              server {
                listen 8080;
                location / { }
                location /public/ { auth_basic off; }
              }
            }
            """)
        let root = t.servers[0].locations.find("/x")!.settings.accessPhase
        let pub = t.servers[0].locations.find("/public/x")!.settings.accessPhase
        #expect(root.active && root.satisfyAny == true)
        #expect(root.authBasicUserFile?.literalBytes == Array("/p/conf/htpasswd".utf8))
        #expect(!pub.active)
    }

    @Test func authRequestInheritsItsURIAndAssignmentsAndOffTurnsItOff() throws {
        let t = try load("""
            http {
              auth_request /auth;
              auth_request_set $user $upstream_http_x_user;
              server {
                listen 8080;
                location / { proxy_set_header X-User $user; return 200; }
                location /mine/ { auth_request_set $role $upstream_http_x_role; return 200 $role; }
                location /public/ { auth_request off; }
                location = /auth { internal; return 204; }
              }
            }
            """)
        func phase(_ uri: String) -> AccessPhaseSettings {
            t.servers[0].locations.find(uri)!.settings.accessPhase
        }
        #expect(phase("/x").active && phase("/x").authRequest == .some(.some(Array("/auth".utf8))))
        #expect(phase("/x").authRequestSet?.map(\.name) == ["user"])
        // A level's own assignments replace the inherited ones (nginx merges the array whole).
        #expect(phase("/mine/x").authRequestSet?.map(\.name) == ["role"])
        #expect(phase("/mine/x").authRequestSet?.first?.value.variables == [.upstreamHeader("x-role")])
        #expect(!phase("/public/x").active)
    }
}
