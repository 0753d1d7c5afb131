import Glibc

// Shared by every fuzz target (compiled into each target's module; see run.sh).

/// Stops the fuzzer with a message when an invariant does not hold (libFuzzer records the input
/// as a crash artifact). Unlike `assert`, it is checked in optimized builds.
@inline(__always)
func check(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
           file: StaticString = #fileID, line: UInt = #line) {
    if !condition() {
        fputs("fuzz invariant failed at \(file):\(line): \(message())\n", stderr)
        abort()
    }
}

/// The fuzzer's input as a raw buffer.
@inline(__always)
func input(_ data: UnsafePointer<UInt8>, _ size: Int) -> UnsafeRawBufferPointer {
    UnsafeRawBufferPointer(start: data, count: size)
}
