// SPDX-License-Identifier: GPL-2.0-only
//
// The CLI's parsing, output and exit codes, against fake devices: one backed by the
// real Engine dispatch in-process, others that fail the way a machine can.

import ArgumentParser
import Engine
import KdbtClient
import Protocol
import Testing

@testable import kdbt_cli

/// A device served by a real Engine through the in-process host.
struct EngineDevice: DeviceConnection {
    let world = InProcessWorld()
    let engine: Engine<InProcessHost>
    init() { engine = Engine.create(host: InProcessHost(world: world))! }
    func perform(_ number: UInt32, _ buffer: UnsafeMutableRawBufferPointer) -> Int32 {
        world.map(buffer)
        defer { world.unmapAll() }
        return engine.ioctl(number: number, argument: UInt64(UInt(bitPattern: buffer.baseAddress)))
    }
    func close() { engine.destroy() }
}

/// Answers every request with a fixed errno, or a version reply of another protocol.
struct BrokenDevice: DeviceConnection {
    var errno: Int32 = 0
    var protocolVersion: UInt32 = kdbtProtocolVersion
    func perform(_ number: UInt32, _ buffer: UnsafeMutableRawBufferPointer) -> Int32 {
        if errno != 0 { return -errno }
        buffer.storeBytes(of: UInt32(buffer.count), as: UInt32.self)
        buffer.storeBytes(of: protocolVersion, toByteOffset: 8, as: UInt32.self)
        return 0
    }
    func close() {}
}

struct RunResult {
    var exitCode: Int32
    var stdout: String
    var stderr: String
}

final class Capture: @unchecked Sendable {
    var out = ""
    var err = ""
}

/// Runs the CLI in-process with `open` deciding what the device path yields;
/// `configure` replaces more of the outside world (symbols, symbolizer).
func run(_ arguments: [String],
         open: @escaping (String) throws(DeviceError) -> any DeviceConnection = { _ throws(DeviceError) in EngineDevice() },
         configure: (inout CLIContext) -> Void = { _ in }
) -> RunResult {
    let capture = Capture()
    let saved = CLIContext.current
    CLIContext.current = CLIContext(
        write: { capture.out += $0 }, writeError: { capture.err += $0 }, openDevice: open)
    configure(&CLIContext.current)
    defer { CLIContext.current = saved }
    do {
        var command = try Kdbt.parseAsRoot(arguments)
        try command.run()
        return RunResult(exitCode: 0, stdout: capture.out, stderr: capture.err)
    } catch {
        // What Kdbt.exit(withError:) would print: help goes to stdout, errors to stderr.
        let code = Kdbt.exitCode(for: error).rawValue
        if code == 0 {
            capture.out += Kdbt.fullMessage(for: error)
        } else if capture.err.isEmpty {
            capture.err = Kdbt.fullMessage(for: error)
        }
        return RunResult(exitCode: code, stdout: capture.out, stderr: capture.err)
    }
}

@Suite("CLI", .serialized)
struct CLITests {
    @Test("status renders the engine's statistics as text")
    func statusText() {
        let r = run(["status"])
        #expect(r.exitCode == 0)
        #expect(r.stdout.contains("state:              detached"))
        #expect(r.stdout.contains("live allocations:   1"))
    }

    @Test("status --format json is one JSON object with every field")
    func statusJSON() {
        let r = run(["status", "--format", "json"])
        #expect(r.exitCode == 0)
        #expect(r.stdout.hasPrefix("{\"state\":\"detached\",\"cpus\":2,"))
        for key in ["ioctl_calls", "arena_bytes", "arena_used", "live_allocations", "live_bytes", "loaded_ns"] {
            #expect(r.stdout.contains("\"\(key)\":"))
        }
        #expect(r.stdout.hasSuffix("}\n"))
    }

    @Test("version shows CLI and module")
    func version() {
        let r = run(["version"])
        #expect(r.exitCode == 0)
        #expect(r.stdout.contains("kdbt CLI \(cliVersion) (protocol 1)"))
        #expect(r.stdout.contains("module   0.1.0 (protocol 1, build 6b64627474657374, 2 CPUs, features: status,read-text)"))
    }

    @Test("--device reaches the open call, before or after the subcommand",
          arguments: [["--device", "/x/y", "status"], ["status", "--device", "/x/y"]])
    func devicePath(arguments: [String]) {
        final class Seen: @unchecked Sendable { var path = "" }
        let seen = Seen()
        let r = run(arguments, open: { path throws(DeviceError) in seen.path = path; return EngineDevice() })
        #expect(r.exitCode == 0)
        #expect(seen.path == "/x/y")
    }

    @Test("no module: exit 2 with a message saying how to load it")
    func notLoaded() {
        let r = run(["status"], open: { path throws(DeviceError) in throw .notLoaded(path: path) })
        #expect(r.exitCode == 2)
        #expect(r.stderr.contains("/dev/kdbt does not exist"))
        #expect(r.stderr.contains("insmod"))
        #expect(r.stdout.isEmpty)
    }

    @Test("no permission: exit 2 with a message")
    func noPermission() {
        let open = run(["version"], open: { path throws(DeviceError) in throw .permissionDenied(path: path) })
        #expect(open.exitCode == 2)
        #expect(open.stderr.contains("needs root"))
        let ioctl = run(["status"], open: { _ throws(DeviceError) in BrokenDevice(errno: Errno.EPERM) })
        #expect(ioctl.exitCode == 2)
        #expect(ioctl.stderr.contains("CAP_SYS_ADMIN"))
    }

    @Test("a module speaking another protocol is a clear error")
    func mismatch() {
        let r = run(["version"], open: { _ throws(DeviceError) in BrokenDevice(protocolVersion: 99) })
        #expect(r.exitCode == 2)
        #expect(r.stderr.contains("protocol mismatch: the loaded module speaks kdbt protocol 99"))
    }

    @Test("usage errors exit 64", arguments: [
        ["bogus"], ["status", "--format", "xml"], ["status", "--nope"], ["version", "extra"], ["--device"],
    ])
    func usage(arguments: [String]) {
        #expect(run(arguments).exitCode == 64)
    }

    @Test("--help works on every command", arguments: [["--help"], ["status", "--help"], ["version", "--help"], ["help", "status"]])
    func help(arguments: [String]) {
        let r = run(arguments)
        #expect(r.exitCode == 0)
        #expect(r.stdout.contains("USAGE: kdbt"))
    }
}

@Suite("rendering")
struct RenderTests {
    @Test("durations") func durations() {
        #expect(formatDuration(nanoseconds: 1_234_000_000) == "1.234s")
        #expect(formatDuration(nanoseconds: 5_000_000) == "0.005s")
        #expect(formatDuration(nanoseconds: 125_000_000_000) == "2m5s")
    }

    @Test("JSON escapes") func escapes() {
        var o = JSONObject()
        o.add("a\"b", .string("line\n\u{1}"))
        #expect(o.value.serialized() == #"{"a\"b":"line\n\u0001"}"#)
    }
}

@Suite("status rendering while attached")
struct AttachedStatusRenderTests {
    @Test("per-CPU counters appear in text and JSON")
    func perCPU() {
        var status = StatusReply(state: .attached, cpus: 1, ioctlCalls: 1, arenaBytes: 2, arenaUsed: 1,
                                 liveAllocations: 1, liveBytes: 2, loadedNanoseconds: 3)
        status.blocks = 10
        var c = CPUStatsRequest(cpu: 0)
        c.syscalls = 11; c.userInterrupts = 12; c.kernelInterrupts = 13; c.userExceptions = 14; c.exceptions = 15
        c.delayed = 16; c.delayedDelivered = 16; c.instructions = 17; c.invalidations = 18
        let json = renderStatus(status, cpus: [c], format: .json)
        #expect(json.contains("\"user_exceptions\":14"))
        #expect(json.contains("\"delayed_delivered\":16"))
        #expect(json.contains("\"invalidations\":18"))
        let text = renderStatus(status, cpus: [c], format: .text)
        #expect(text.contains("12,13"))
        #expect(text.contains("14,15"))
        #expect(text.contains("16(16)"))
    }
}
