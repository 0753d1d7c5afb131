import Testing
@testable import LBHTTP

/// The uwsgi request packet as nginx's uwsgi module sends it.
@Suite struct UwsgiTests {
    @Test func packetHeaderIsModifiersAroundALittleEndianSize() {
        #expect(Uwsgi.header(varsSize: 0x1234, modifier1: 0, modifier2: 0) == [0, 0x34, 0x12, 0])
        #expect(Uwsgi.header(varsSize: 70000, modifier1: 0, modifier2: 0) == nil)
    }

    @Test func varsAreLengthPrefixedLittleEndian() {
        var v: [UInt8] = []
        Uwsgi.appendVar(name: Array("REQUEST_METHOD".utf8), value: Array("GET".utf8), into: &v)
        #expect(v == [14, 0] + Array("REQUEST_METHOD".utf8) + [3, 0] + Array("GET".utf8))
        let long = [UInt8](repeating: 65, count: 300)
        Uwsgi.appendVar(name: Array("X".utf8), value: long, into: &v)
        let packet = Uwsgi.header(varsSize: v.count, modifier1: 5, modifier2: 9)! + v
        let d = Uwsgi.decode(packet)
        #expect(d?.modifier1 == 5 && d?.modifier2 == 9)
        #expect(d?.vars.count == 2 && d?.vars[1].value == long)
        #expect(!Uwsgi.appendVar(name: Array("Y".utf8), value: [UInt8](repeating: 0, count: 70000), into: &v))
    }
}
