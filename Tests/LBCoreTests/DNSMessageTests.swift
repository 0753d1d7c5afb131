import Testing
@testable import LBCore

/// Byte vectors captured from Debian's dnsmasq 2.90 (`--addn-hosts`, `--srv-host`, `--cname`,
/// `--local=/test/`, `--local-ttl=30`) on a loopback port, asked by a small Python client.
enum DNSVectors {
    static func bytes(_ hex: String) -> [UInt8] {
        var out: [UInt8] = []
        var i = hex.startIndex
        while i < hex.endIndex {
            let j = hex.index(i, offsetBy: 2)
            out.append(UInt8(hex[i..<j], radix: 16)!)
            i = j
        }
        return out
    }

    /// `app.test A` (id 0x1234) and its answer: 127.0.0.11 and 127.0.0.12, TTL 30, names compressed.
    static let appAQuery = bytes("1234010000010000000000000361707004746573740000010001")
    static let appA = bytes("1234858000010002000000000361707004746573740000010001c00c000100010000001e00047f00000bc00c000100010000001e00047f00000c")
    /// `app.test AAAA`: ::1.
    static let appAAAA = bytes("12358580000100010000000003617070047465737400001c0001c00c001c00010000001e001000000000000000000000000000000001")
    /// `_http._tcp.app.test SRV`: app2.test:8082 (prio 0, weight 20), app1.test:8081 (weight 10),
    /// with the targets' A records in the additional section.
    static let appSRV = bytes("123685800001000200000002055f68747470045f7463700361707004746573740000210001c00c002100010000001e0011000000141f920461707032047465737400c00c002100010000001e00110000000a1f910461707031047465737400c054000100010000001e00047f000015c037000100010000001e00047f000016")
    /// `alias.test A`: CNAME app.test, then app.test's two A records.
    static let aliasA = bytes("12378580000100030000000005616c69617304746573740000010001c00c000500010000001e000a03617070047465737400c028000100010000001e00047f00000cc028000100010000001e00047f00000b")
    /// `nope.test A`: NXDOMAIN.
    static let nopeNX = bytes("123881830001000000000000046e6f706504746573740000010001")
    /// `many.test A` over UDP: 40 addresses do not fit 512 bytes, so 30 come back with TC set.
    static let manyTruncated = bytes("123987800001001e00000000046d616e7904746573740000010001" + String(repeating: "c00c000100010000001e00047f000103", count: 30))
    /// `other.example A` (outside --local): REFUSED.
    static let otherRefused = bytes("123b81850001000000000000056f74686572076578616d706c650000010001")
}

@Suite struct DNSMessageTests {
    @Test func queryIsTheBytesAResolverSends() {
        #expect(DNSMessage.query(id: 0x1234, name: "app.test", type: .a) == DNSVectors.appAQuery)
        #expect(DNSMessage.query(id: 0x1234, name: "app.test.", type: .a) == DNSVectors.appAQuery)
    }

    @Test func queryRefusesInvalidNames() {
        #expect(DNSMessage.query(id: 1, name: "", type: .a) == nil)
        #expect(DNSMessage.query(id: 1, name: "a..b", type: .a) == nil)
        #expect(DNSMessage.query(id: 1, name: String(repeating: "x", count: 64) + ".test", type: .a) == nil)
        #expect(DNSMessage.query(id: 1, name: String(repeating: "abcdefghi.", count: 26), type: .a) == nil)
    }

    @Test func parsesAnAAnswerWithCompressedNames() throws {
        let r = try DNSMessage.parse(DNSVectors.appA)
        #expect(r.id == 0x1234 && r.rcode == 0 && !r.truncated)
        #expect(r.questionName == "app.test" && r.questionType == 1)
        #expect(r.answers.map(\.data) == [.address("127.0.0.11"), .address("127.0.0.12")])
        #expect(r.answers.allSatisfy { $0.name == "app.test" && $0.ttl == 30 })
        let got = try r.records(for: "APP.test", type: .a).get()
        #expect(got.records.count == 2 && got.ttl == 30)
    }

    @Test func parsesAAAA() throws {
        let r = try DNSMessage.parse(DNSVectors.appAAAA)
        #expect(r.answers.map(\.data) == [.address("::1")])
    }

    @Test func parsesSRVWithAdditionalAddresses() throws {
        let r = try DNSMessage.parse(DNSVectors.appSRV)
        #expect(r.answers.map(\.data) == [.srv(priority: 0, weight: 20, port: 8082, target: "app2.test"),
                                          .srv(priority: 0, weight: 10, port: 8081, target: "app1.test")])
        #expect(r.additional.map(\.name) == ["app1.test", "app2.test"])
        #expect(r.additional.map(\.data) == [.address("127.0.0.21"), .address("127.0.0.22")])
    }

    @Test func followsACNAMEChain() throws {
        let r = try DNSMessage.parse(DNSVectors.aliasA)
        let got = try r.records(for: "alias.test", type: .a).get()
        #expect(Set(got.records) == [.address("127.0.0.11"), .address("127.0.0.12")])
        #expect(got.ttl == 30)
    }

    @Test func cnameLoopIsAnError() {
        let loop = DNSResponse(id: 1, truncated: false, rcode: 0, questionName: "a", questionType: 1,
                               answers: [DNSRecord(name: "a", type: 5, ttl: 9, data: .cname("b")), DNSRecord(name: "b", type: 5, ttl: 9, data: .cname("a"))],
                               authority: [], additional: [])
        guard case .failure(.malformed) = loop.records(for: "a", type: .a) else { Issue.record("a CNAME loop was followed"); return }
    }

    @Test func nxdomainAndRefusedAreErrors() throws {
        let nx = try DNSMessage.parse(DNSVectors.nopeNX)
        #expect(nx.rcode == 3)
        #expect(throws: DNSLookupError.rcode(3)) { try nx.records(for: "nope.test", type: .a).get() }
        #expect(DNSLookupError.rcode(3).description == "(3: Host not found)")
        let refused = try DNSMessage.parse(DNSVectors.otherRefused)
        #expect(throws: DNSLookupError.rcode(5)) { try refused.records(for: "other.example", type: .a).get() }
        // SERVFAIL: dnsmasq's NXDOMAIN answer with RCODE 2 (dnsmasq gives none on loopback).
        var servfail = DNSVectors.nopeNX
        servfail[3] = 0x82
        #expect(throws: DNSLookupError.rcode(2)) { try DNSMessage.parse(servfail).records(for: "nope.test", type: .a).get() }
        #expect(DNSLookupError.rcode(2).description == "(2: Server failure)")
    }

    @Test func truncatedAnswerHasTheTCBit() throws {
        let r = try DNSMessage.parse(DNSVectors.manyTruncated)
        #expect(r.truncated)
        #expect(r.answers.count == 30)
    }

    @Test func malformedMessagesAreRejectedNotTrapped() {
        // Every prefix of a real answer is either an error or (the whole message) parses.
        for v in [DNSVectors.appA, DNSVectors.appSRV, DNSVectors.aliasA] {
            for n in 0..<v.count {
                #expect(throws: DNSParseError.self) { try DNSMessage.parse(Array(v[0..<n])) }
            }
        }
        // A compression pointer to itself, and one pointing forward.
        var selfPointer = DNSVectors.appA
        selfPointer[26] = 0xC0
        selfPointer[27] = 26
        #expect(throws: DNSParseError.self) { try DNSMessage.parse(selfPointer) }
        var forward = DNSVectors.appA
        forward[27] = 0x30
        #expect(throws: DNSParseError.self) { try DNSMessage.parse(forward) }
        // A query (QR clear) is not an answer.
        #expect(throws: DNSParseError.self) { try DNSMessage.parse(DNSVectors.appAQuery) }
    }

    @Test func negativeTTLComesFromTheSOA() {
        let r = DNSResponse(id: 1, truncated: false, rcode: 3, questionName: "x", questionType: 1, answers: [],
                            authority: [DNSRecord(name: "test", type: 6, ttl: 600, data: .soa(minimum: 60))], additional: [])
        #expect(r.negativeTTL == 60)
    }
}

/// A transport with canned answers: counts the queries and answers each with the response the
/// test set for (name, type), re-stamped with the query's id.
final class CannedTransport: DNSTransport {
    var answers: [String: Result<DNSResponse, DNSLookupError>] = [:]
    var asked: [String] = []

    func set(_ name: String, _ type: DNSType, _ r: Result<DNSResponse, DNSLookupError>) { answers["\(name) \(type.rawValue)"] = r }

    func exchange(_ query: [UInt8], id: UInt16) -> Result<DNSResponse, DNSLookupError> {
        var i = 12
        let name = (try? DNSMessage.readName(query, &i)) ?? ""
        let type = Int(query[i]) << 8 | Int(query[i + 1])
        asked.append("\(name) \(type)")
        guard let r = answers["\(name) \(type)"] else { return .failure(.timedOut) }
        return r.map { var c = $0; c.id = id; return c }
    }
}

func answer(_ name: String, _ type: DNSType, ttl: UInt32, _ data: [DNSRecordData], rcode: Int = 0) -> DNSResponse {
    DNSResponse(id: 0, truncated: false, rcode: rcode, questionName: name, questionType: type.rawValue,
                answers: data.map { DNSRecord(name: name, type: type.rawValue, ttl: ttl, data: $0) }, authority: [], additional: [])
}

final class FakeClock: @unchecked Sendable {
    var ms: Int64 = 1_000_000
}

@Suite struct DNSResolverTests {
    @Test func answersAreCachedForTheirTTL() throws {
        let t = CannedTransport()
        let clock = FakeClock()
        t.set("app.test", .a, .success(answer("app.test", .a, ttl: 30, [.address("10.0.0.1")])))
        let r = DNSResolver(transport: t, validMs: nil, ipv6: false, now: { clock.ms })
        #expect(try r.addresses("app.test").get().ips == ["10.0.0.1"])
        #expect(try r.addresses("app.test").get().lifetimeMs == 30_000)
        #expect(t.asked.count == 1)
        clock.ms += 29_999
        #expect(try r.addresses("app.test").get().lifetimeMs == 1)
        #expect(t.asked.count == 1)
        clock.ms += 1
        t.set("app.test", .a, .success(answer("app.test", .a, ttl: 30, [.address("10.0.0.2")])))
        #expect(try r.addresses("app.test").get().ips == ["10.0.0.2"])
        #expect(t.asked.count == 2)
    }

    @Test func validReplacesTheTTL() throws {
        let t = CannedTransport()
        let clock = FakeClock()
        t.set("app.test", .a, .success(answer("app.test", .a, ttl: 3600, [.address("10.0.0.1")])))
        let r = DNSResolver(transport: t, validMs: 5_000, ipv6: false, now: { clock.ms })
        #expect(try r.addresses("app.test").get().lifetimeMs == 5_000)
        clock.ms += 5_000
        _ = r.addresses("app.test")
        #expect(t.asked.count == 2)
    }

    @Test func nxdomainIsCachedButFailuresAreNot() {
        let t = CannedTransport()
        let clock = FakeClock()
        t.set("gone.test", .a, .success(answer("gone.test", .a, ttl: 0, [], rcode: 3)))
        let r = DNSResolver(transport: t, validMs: 10_000, ipv6: false, now: { clock.ms })
        #expect(throws: DNSLookupError.rcode(3)) { try r.addresses("gone.test").get() }
        #expect(throws: DNSLookupError.rcode(3)) { try r.addresses("gone.test").get() }
        #expect(t.asked.count == 1)
        #expect(r.stats.nxdomain.load(ordering: .relaxed) == 1)
        t.set("flaky.test", .a, .success(answer("flaky.test", .a, ttl: 0, [], rcode: 2)))
        _ = r.addresses("flaky.test")
        _ = r.addresses("flaky.test")
        #expect(t.asked.filter { $0.hasPrefix("flaky") }.count == 2)
        #expect(r.stats.failures.load(ordering: .relaxed) == 2)
        #expect(throws: DNSLookupError.timedOut) { try r.addresses("silent.test").get() }
        #expect(r.stats.timeouts.load(ordering: .relaxed) == 1)
    }

    @Test func ipv4AndIPv6AreBothAskedUnlessTurnedOff() throws {
        let t = CannedTransport()
        t.set("app.test", .a, .success(try DNSMessage.parse(DNSVectors.appA)))
        t.set("app.test", .aaaa, .success(try DNSMessage.parse(DNSVectors.appAAAA)))
        let both = DNSResolver(transport: t, validMs: nil, now: { 0 })
        #expect(try both.addresses("app.test").get().ips == ["127.0.0.11", "127.0.0.12", "::1"])
        let v6 = DNSResolver(transport: t, validMs: nil, ipv4: false, now: { 0 })
        #expect(try v6.addresses("app.test").get().ips == ["::1"])
        // A failure of either type is the result (the caller keeps its members).
        t.set("half.test", .a, .success(answer("half.test", .a, ttl: 5, [.address("10.0.0.1")])))
        #expect(throws: DNSLookupError.timedOut) { try both.addresses("half.test").get() }
    }

    @Test func srvTargetsComeFromTheAdditionalSection() throws {
        let t = CannedTransport()
        t.set("_http._tcp.app.test", .srv, .success(try DNSMessage.parse(DNSVectors.appSRV)))
        let r = DNSResolver(transport: t, validMs: nil, ipv6: false, now: { 0 })
        let got = try r.service("_http._tcp.app.test").get()
        #expect(got.addresses == [ResolvedAddress(ip: "127.0.0.22", port: 8082, weight: 20, priority: 0, target: "app2.test"),
                                  ResolvedAddress(ip: "127.0.0.21", port: 8081, weight: 10, priority: 0, target: "app1.test")])
        #expect(t.asked == ["_http._tcp.app.test 33"])
    }

    @Test func answerToAnotherQuestionIsRejected() {
        let t = CannedTransport()
        t.set("app.test", .a, .success(answer("evil.test", .a, ttl: 5, [.address("10.6.6.6")])))
        let r = DNSResolver(transport: t, validMs: nil, ipv6: false, now: { 0 })
        guard case .failure(.malformed) = r.addresses("app.test") else { Issue.record("a mismatched answer was accepted"); return }
    }
}
