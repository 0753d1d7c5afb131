import Foundation
import Testing

/// Runs the built executables (`lb`, later `lb-app`, `lb-store`) as a user would.
enum Harness {
    /// SIGPIPE ignored in the test process: a write to a socket or to the stdin pipe of a tool
    /// that has already gone (an early answer, an `openssl` that exited) must be an EPIPE error for
    /// that test, not a signal that ends the whole test run.
    static let ignoreSIGPIPE: Void = { signal(SIGPIPE, SIG_IGN) }()

    /// A test's child process (with SIGPIPE ignored first): `ChildProcess`, not Foundation's
    /// `Process` (see ChildProcess.swift).
    static func process() -> ChildProcess {
        _ = ignoreSIGPIPE
        return ChildProcess()
    }

    /// The directory holding the built products (beside the test bundle).
    static let productsDirectory: URL = {
        var url = Bundle.main.bundleURL
        while url.path != "/" {
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("lb").path) { return url }
            url.deleteLastPathComponent()
        }
        return URL(fileURLWithPath: ".build/debug")
    }()

    /// The repository root (where Package.swift is).
    static let repositoryRoot: URL = {
        var url = URL(fileURLWithPath: #filePath)
        while url.path != "/" {
            url.deleteLastPathComponent()
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { return url }
        }
        return URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
    }()

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs a product to completion (bounded by `timeout` seconds) and captures its output.
    static func run(_ product: String, _ args: [String], cwd: URL? = nil, timeout: TimeInterval = 30) throws -> Result {
        let p = Harness.process()
        p.executableURL = productsDirectory.appendingPathComponent(product)
        p.arguments = args
        p.currentDirectoryURL = cwd ?? repositoryRoot
        let dir = try tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let outURL = dir.appendingPathComponent("stdout"), errURL = dir.appendingPathComponent("stderr")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let out = try FileHandle(forWritingTo: outURL), err = try FileHandle(forWritingTo: errURL)
        defer { try? out.close(); try? err.close() }
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let deadline = Date().addingTimeInterval(timeout)
        while p.isRunning && Date() < deadline { usleep(5_000) }
        if p.isRunning {
            p.terminate()
            Issue.record("\(product) \(args) did not finish in \(timeout)s")
        }
        p.waitUntilExit()
        let outData = (try? Data(contentsOf: outURL)) ?? Data()
        let errData = (try? Data(contentsOf: errURL)) ?? Data()
        return Result(status: p.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                      stderr: String(decoding: errData, as: UTF8.self))
    }

    /// A fresh temporary directory.
    static func tempDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("lb-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}
