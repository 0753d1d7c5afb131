// libFuzzer target: the store's RESP command parser (RESP.parseCommand), as the server reads a
// pipelined stream of commands.
//
// Invariants: every parsed command consumes at least one byte and no more than it was given;
// reading the stream with a growing buffer (one byte more per call, as bytes trickle in) finds
// the same commands, the same leftover and the same error as reading it all at once; reusing the
// argument arrays gives what fresh arrays give; a command re-encoded with encodeCommand parses back to itself.

struct Stream: Equatable {
    var commands: [[[UInt8]]] = []
    var consumed = 0
    var error: RESP.ParseError? = nil
}

nonisolated(unsafe) var reusedArgs: [[UInt8]] = [Array("stale".utf8), [], Array("x".utf8)]

func readAll(_ b: UnsafeRawBufferPointer) -> Stream {
    var s = Stream()
    while s.consumed < b.count {
        let rest = UnsafeRawBufferPointer(rebasing: b[s.consumed...])
        do {
            guard let (args, used) = try RESP.parseCommand(rest) else { break }
            check(used >= 1 && used <= rest.count, "consumed \(used) of \(rest.count)")
            let again = try RESP.parseCommand(rest, into: &reusedArgs)
            check(again == used && reusedArgs == args, "parse into reused arguments differs")
            if !args.isEmpty {
                let encoded = encodeCommand(args)
                let back = encoded.withUnsafeBytes { e in try? RESP.parseCommand(e) }
                check(back?.args == args && back?.consumed == encoded.count, "command does not survive encodeCommand")
            }
            s.commands.append(args)
            s.consumed += used
        } catch {
            s.error = error
            break
        }
    }
    return s
}

/// Bytes arrive one at a time; each arrival retries the unparsed rest.
func readTrickle(_ b: UnsafeRawBufferPointer) -> Stream {
    var s = Stream()
    var have = 0
    while have < b.count {
        have += 1
        while s.consumed < have {
            let rest = UnsafeRawBufferPointer(rebasing: b[s.consumed..<have])
            do {
                guard let (args, used) = try RESP.parseCommand(rest) else { break }
                s.commands.append(args)
                s.consumed += used
            } catch {
                s.error = error
                return s
            }
        }
    }
    return s
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRESP(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let b = input(data, size)
    let whole = readAll(b)
    let trickle = readTrickle(b)
    check(whole == trickle, "whole \(whole.commands.count) commands, \(whole.consumed) bytes, \(String(describing: whole.error)) != trickled \(trickle.commands.count), \(trickle.consumed), \(String(describing: trickle.error))")
    return 0
}
