// swift-tools-version:6.0
// lb — an nginx-compatible load balancer. Toolchain only: no package dependencies.
import PackageDescription

// Release builds of the libraries the request path runs through offer their function bodies to
// the modules that call them (`-cross-module-optimization`), so that LBCore inlines and
// specializes LBHTTP's and LBIO's small functions as it does its own. Measured under callgrind
// (h2load -c 64 -m 10 over h2, docs/performance.md): 2.4% fewer instructions and 11% fewer
// instruction-cache misses per `return 200` request, 1.2% and 1.0% fewer instructions per
// proxied and static 4 KiB response.
let crossModule: [SwiftSetting] = [.unsafeFlags(["-cross-module-optimization"], .when(configuration: .release))]

// The runtime's hot paths skip dynamic exclusivity checks in release builds (measured: ~4% of
// CPU per proxied request went to swift_beginAccess and its thread-local bookkeeping; session 4,
// with a per-request Exchange: 58% more user-space instructions per proxied request without it,
// docs/performance.md). Debug builds, where the tests run, keep them.
let hotPath: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))] + crossModule

let package = Package(
    name: "lb",
    products: [
        .executable(name: "lb", targets: ["lb"]),
    ],
    targets: [
        // Our own C shim: epoll/eventfd/accept4 (not in Glibc's Swift overlay) and PCRE2 through dlopen.
        .target(name: "CLBShim", cSettings: [.define("_GNU_SOURCE")]),
        // The system zlib for gzip (Debian's zlib1g-dev); no Swift package.
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        // The system OpenSSL 3 for TLS (Debian's libssl-dev); no Swift package, no crypto of our own.
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        // The system libxcrypt for auth_basic_user_file's crypt(3) hashes (Debian's libcrypt-dev).
        .systemLibrary(name: "CCrypt", pkgConfig: "libxcrypt", providers: [.apt(["libcrypt-dev"])]),
        // The config language: lexer, parser, schema table, validator, routing table. No I/O but file
        // reads; TLS contexts (certificates, keys) are built and checked here, at load, as regexes are compiled.
        .target(name: "LBConfig", dependencies: ["CLBShim", "COpenSSL"], swiftSettings: crossModule),
        // epoll event loops, sockets, timers, buffers. Knows nothing of HTTP.
        .target(name: "LBIO", dependencies: ["CLBShim", "COpenSSL"], swiftSettings: hotPath),
        // HTTP/1.1 heads, chunked framing, URIs: pure byte logic, no I/O.
        .target(name: "LBHTTP", swiftSettings: hotPath),
        // Routing, balancing, proxy, static files, logs, reload: the runtime.
        .target(name: "LBCore", dependencies: ["LBConfig", "LBIO", "LBHTTP", "LBStack", "CZlib", "COpenSSL", "CCrypt"], swiftSettings: hotPath),
        // The Redis-protocol store: RESP codec, keyspace, commands (pure), and its server.
        .target(name: "LBStore", swiftSettings: hotPath),
        .executableTarget(name: "lb-store", dependencies: ["LBStore", "LBIO"], swiftSettings: hotPath),
        // The example app server of the stack.
        .executableTarget(name: "lb-app", dependencies: ["LBIO", "LBHTTP"]),
        // Process supervision for the `stack { }` block.
        .target(name: "LBStack", dependencies: ["LBConfig", "LBIO", "CLBShim"], swiftSettings: crossModule),
        .executableTarget(name: "lb", dependencies: ["LBConfig", "LBCore", "LBHTTP", "LBStack"]),
        // In-process micro-benchmarks (docs/performance.md).
        .executableTarget(name: "lb-bench", dependencies: ["LBConfig"]),
        .testTarget(name: "LBConfigTests", dependencies: ["LBConfig"]),
        .testTarget(name: "LBHTTPTests", dependencies: ["LBHTTP"]),
        .testTarget(name: "LBCoreTests", dependencies: ["LBCore"]),
        .testTarget(name: "LBStoreTests", dependencies: ["LBStore"]),
        // Black-box tests: the built executables run as real processes over real loopback sockets.
        .testTarget(name: "EndToEndTests", dependencies: ["lb"]),
    ]
)
