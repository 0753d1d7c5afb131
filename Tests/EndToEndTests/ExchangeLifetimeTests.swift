import Foundation
import Testing

/// Each request is its own exchange: nothing of one request (status, error_page state, the
/// internal-redirect budget) reaches the next on the same keep-alive connection, and the budget
/// counts internal redirects per request as nginx's `uri_changes` does.
@Suite(.serialized) struct ExchangeLifetimeTests {
    final class Site: @unchecked Sendable {
        let root: URL
        let lb: LB
        deinit {
            lb.stop()
            try? FileManager.default.removeItem(at: root)
        }
        init() throws {
            root = try Harness.tempDirectory()
            let html = root.appendingPathComponent("html")
            try FileManager.default.createDirectory(at: html, withIntermediateDirectories: true)
            try "<h1>index</h1>".write(to: html.appendingPathComponent("index.html"), atomically: true, encoding: .utf8)
            try "custom not found".write(to: html.appendingPathComponent("404.html"), atomically: true, encoding: .utf8)
            lb = try LB("""
            events {}
            http {
                access_log off;
                server {
                    listen 127.0.0.1:{port};
                    root \(html.path);
                    error_page 404 /404.html;
                    location / { }
                    location /loop/ { error_page 404 /loop/missing.html; }
                    location /ping { try_files $uri /pong; }
                    location /pong { try_files $uri /ping; }
                }
            }
            """)
        }
    }

    let site: Site
    init() throws { site = try Site() }

    @Test func conditionalOnAnErrorPageIsNotAnsweredNotModifiedAndLeavesTheNextRequestAlone() throws {
        let c = try RawClient(port: site.lb.port)
        defer { c.close() }
        // A date in the future: a 200 would become 304; an error page must not (nginx's
        // not_modified filter acts on 200 only).
        let future = "If-Modified-Since: Fri, 01 Jan 2100 00:00:00 GMT"
        let missing = try c.get("/missing", headers: [future])
        #expect(missing.status == 404)
        #expect(missing.text == "custom not found")
        let index = try c.get("/index.html")
        #expect(index.status == 200)
        #expect(index.text == "<h1>index</h1>")
        // On a real 200 its own Last-Modified is answered 304 (nginx's default is the exact date).
        let lm = try #require(index.header("Last-Modified"))
        #expect(try c.get("/index.html", headers: ["If-Modified-Since: \(lm)"]).status == 304)
        #expect(try c.get("/missing", headers: ["If-Modified-Since: \(lm)"]).status == 404)
    }

    @Test func errorPageAppliesOnEveryRequestOfALongKeepAliveConnection() throws {
        let c = try RawClient(port: site.lb.port)
        defer { c.close() }
        for i in 1...120 {
            let r = try c.get("/missing-\(i)")
            #expect(r.status == 404, "request \(i)")
            #expect(r.text == "custom not found", "request \(i)")
            if r.text != "custom not found" { break }
        }
    }

    @Test func anErrorPageThatIsMissingItselfGetsTheBuiltInPage() throws {
        // nginx applies error_page once per request: the page's own 404 is the built-in one.
        let c = try RawClient(port: site.lb.port)
        defer { c.close() }
        let r = try c.get("/loop/x")
        #expect(r.status == 404)
        #expect(r.text.contains("<title>404 Not Found</title>"))
        let next = try c.get("/index.html")
        #expect(next.status == 200)
    }

    @Test func internalRedirectCycleEndsWith500AfterTenURIChanges() throws {
        let c = try RawClient(port: site.lb.port)
        defer { c.close() }
        let r = try c.get("/ping")
        #expect(r.status == 500)
        let deadline = Date().addingTimeInterval(5)
        while !site.lb.errorLog.contains("rewrite or internal redirection cycle") && Date() < deadline { usleep(20_000) }
        #expect(site.lb.errorLog.contains("rewrite or internal redirection cycle while internally redirecting to \"/p"))
        // The budget belongs to that request: the next one on the connection is served.
        let next = try c.get("/index.html")
        #expect(next.status == 200)
    }
}
