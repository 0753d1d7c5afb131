import Foundation
import Glibc

/// A child process of the tests, started with `posix_spawn`: the part of Foundation's `Process`
/// the tests use, with the same defaults (standard streams not given are /dev/null, a `Pipe`'s
/// other end is closed in the child and the child's end in the parent, every other descriptor is
/// closed in the child, a process group of its own, ignored signals stay ignored) — but no
/// signal blocked in the child, whatever the spawning thread blocks.
///
/// Why not `Process`: swift-corelibs-foundation 6.3.1 finds the descriptors to close by reading
/// /proc/self/fd and copies each entry's whole 256-byte `d_name`, reading past the end of
/// glibc's directory buffer; when the test process has ~1,400 descriptors open (end-to-end tests
/// running side by side) the last entry can sit at the buffer's end next to an unmapped page, and
/// the test process dies with SIGSEGV in `Process.run()` (seen once in a full run;
/// swiftlang/swift-corelibs-foundation#5472). Here the closing is the kernel's
/// (`posix_spawn_file_actions_addclosefrom_np`, glibc 2.34).
final class ChildProcess: @unchecked Sendable {
    var executableURL: URL?
    var arguments: [String] = []
    var currentDirectoryURL: URL?
    /// Nil: the test process's own environment.
    var environment: [String: String]?
    /// `Pipe`, `FileHandle` or nil (/dev/null), as `Process` takes them.
    var standardInput: Any?
    var standardOutput: Any?
    var standardError: Any?

    private(set) var processIdentifier: Int32 = 0
    private let lock = NSLock()
    /// The raw wait status once the child was reaped.
    private var waitStatus: Int32?

    private typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    private typealias AddChdir = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32
    private static let addCloseFrom: AddCloseFrom? = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np")
        .map { unsafeBitCast($0, to: AddCloseFrom.self) }
    private static let addChdir: AddChdir? = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addchdir_np")
        .map { unsafeBitCast($0, to: AddChdir.self) }

    struct SpawnError: Error, CustomStringConvertible {
        var description: String
    }

    func run() throws {
        guard let path = executableURL?.path else { throw SpawnError(description: "no executable") }
        guard let closeFrom = ChildProcess.addCloseFrom, let chdir = ChildProcess.addChdir else {
            throw SpawnError(description: "glibc without posix_spawn_file_actions_addclosefrom_np/addchdir_np")
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var attrs = posix_spawnattr_t()
        posix_spawnattr_init(&attrs)
        defer { posix_spawnattr_destroy(&attrs) }
        // A process group of its own (as `Process`), and no signal blocked: the test runner's
        // threads may block SIGTERM, which `Process` children inherited (and then ignored it).
        posix_spawnattr_setflags(&attrs, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK))
        posix_spawnattr_setpgroup(&attrs, 0)
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attrs, &none)

        let devNull = open("/dev/null", O_RDWR | O_CLOEXEC)
        guard devNull >= 0 else { throw SpawnError(description: "open /dev/null: \(errno)") }
        defer { Glibc.close(devNull) }
        func source(_ s: Any?, input: Bool) -> Int32 {
            switch s {
            case let p as Pipe: return input ? p.fileHandleForReading.fileDescriptor : p.fileHandleForWriting.fileDescriptor
            case let h as FileHandle: return h.fileDescriptor
            default: return devNull
            }
        }
        let sources = [source(standardInput, input: true), source(standardOutput, input: false), source(standardError, input: false)]
        for (target, fd) in sources.enumerated() {
            try check(posix_spawn_file_actions_adddup2(&actions, fd, Int32(target)), "adddup2")
        }
        try check(closeFrom(&actions, 3), "addclosefrom")
        if let dir = currentDirectoryURL?.path {
            try check(chdir(&actions, dir), "addchdir")
        }

        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        defer { for a in argv { free(a) } }
        let envStrings: [String] = environment.map { $0.map { "\($0.key)=\($0.value)" } }
            ?? ProcessInfo.processInfo.environment.map { "\($0.key)=\($0.value)" }
        let envp = envStrings.map { strdup($0) } + [nil]
        defer { for e in envp { free(e) } }
        var pid: pid_t = 0
        try check(posix_spawn(&pid, path, &actions, &attrs, argv, envp), "posix_spawn \(path)")
        processIdentifier = pid
        // The child's ends are the child's now.
        if let p = standardInput as? Pipe { try? p.fileHandleForReading.close() }
        if let p = standardOutput as? Pipe { try? p.fileHandleForWriting.close() }
        if let p = standardError as? Pipe, (standardOutput as? Pipe) !== p { try? p.fileHandleForWriting.close() }
    }

    private func check(_ rc: Int32, _ what: String) throws {
        if rc != 0 { throw SpawnError(description: "\(what): \(String(cString: strerror(rc)))") }
    }

    /// Reaps the child if it ended (waiting for it when `blocking`); true once it has.
    private func reap(blocking: Bool) -> Bool {
        guard processIdentifier > 0 else { return true }
        if lock.withLock({ waitStatus != nil }) { return true }
        var status: Int32 = 0
        while true {
            let r = waitpid(processIdentifier, &status, blocking ? 0 : WNOHANG)
            if r == processIdentifier {
                lock.withLock { waitStatus = status }
                return true
            }
            if r == 0 { return false }
            if errno == EINTR { continue }
            // ECHILD: another thread reaped it and is about to record the status.
            while !lock.withLock({ waitStatus != nil }) { usleep(1000) }
            return true
        }
    }

    var isRunning: Bool { processIdentifier > 0 && !reap(blocking: false) }

    func waitUntilExit() { _ = reap(blocking: true) }

    /// The exit code, or the signal that ended it (as `Process`).
    var terminationStatus: Int32 {
        _ = reap(blocking: true)
        let s = lock.withLock { waitStatus } ?? 0
        return (s & 0x7f) == 0 ? (s >> 8) & 0xff : s & 0x7f
    }

    /// SIGTERM, while it runs.
    func terminate() {
        if isRunning { kill(processIdentifier, SIGTERM) }
    }
}
