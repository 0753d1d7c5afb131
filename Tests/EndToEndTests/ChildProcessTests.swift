import Foundation
import Glibc
import Synchronization
import Testing

/// The harness's own child processes (ChildProcess.swift): what every end-to-end test relies on.
@Suite struct ChildProcessTests {
    /// With ~2,000 descriptors open in the test process (Foundation's `Process` crashed here
    /// about one run in four: its /proc/self/fd scan read past glibc's buffer), children start,
    /// from several threads at once, and inherit none of them: only their standard streams.
    @Test func childrenStartBesideManyOpenDescriptorsAndInheritNone() throws {
        var held: [Int32] = []
        defer { for fd in held { close(fd) } }
        var limit = rlimit()
        getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
        let extra = min(2000, Int(limit.rlim_cur) - 400)
        for _ in 0..<max(0, extra) {
            let fd = open("/dev/null", O_RDONLY) // without O_CLOEXEC: only the spawn's closing keeps it out
            guard fd >= 0 else { break }
            held.append(fd)
        }
        let failures = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 4) { t in
            for i in 0..<25 {
                let p = Harness.process()
                p.executableURL = URL(fileURLWithPath: "/bin/sh")
                p.arguments = ["-c", "ls /proc/self/fd"] // the shell's descriptors, as ls (a child of it) has them
                let out = Pipe()
                p.standardOutput = out
                do { try p.run() } catch { failures.withLock { $0.append("\(t).\(i): \(error)") }; continue }
                let listed = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                p.waitUntilExit()
                let fds = listed.split(separator: "\n").compactMap { Int($0) }.sorted()
                // 0, 1, 2 and the one ls opened to read the directory.
                if p.terminationStatus != 0 || fds.count > 4 || Array(fds.prefix(3)) != [0, 1, 2] {
                    failures.withLock { $0.append("\(t).\(i): status \(p.terminationStatus), descriptors \(fds.prefix(10))…(\(fds.count))") }
                }
            }
        }
        #expect(held.count >= 1500, "could open only \(held.count) descriptors")
        #expect(failures.withLock { $0 } == [])
    }

    /// The exit code and the ending signal read back as `Process` gives them.
    @Test func terminationStatusIsTheExitCodeOrTheSignal() throws {
        let a = Harness.process()
        a.executableURL = URL(fileURLWithPath: "/bin/sh")
        a.arguments = ["-c", "exit 7"]
        try a.run()
        a.waitUntilExit()
        #expect(a.terminationStatus == 7)
        #expect(!a.isRunning)

        let b = Harness.process()
        b.executableURL = URL(fileURLWithPath: "/bin/sleep")
        b.arguments = ["30"]
        try b.run()
        #expect(b.isRunning)
        b.terminate()
        b.waitUntilExit()
        #expect(b.terminationStatus == SIGTERM)
    }
}
