// SPDX-License-Identifier: GPL-2.0-only
//
// `kdbt tool enable|disable|list` and the tools line of `kdbt status`, against a
// device that keeps a tool set and records the retool requests it gets.

import KdbtClient
import Protocol
import Testing

@testable import kdbt_cli

/// A module attached with `tools` (nil: detached); retool requests are recorded
/// and applied, defaults resolved as the module resolves them.
final class ToolSetDevice: DeviceConnection, @unchecked Sendable {
    var tools: AttachRequest?
    var retools: [AttachRequest] = []
    /// An AttachRefusal to answer retool with (the module then stays detached).
    var refusal: UInt32 = 0

    init(tools: AttachRequest?) { self.tools = tools }

    func perform(_ number: UInt32, _ buffer: UnsafeMutableRawBufferPointer) -> Int32 {
        switch KdbtCommand(number: number) {
        case .version:
            VersionReply(protocolVersion: kdbtProtocolVersion, engineVersion: 1, buildID: 1,
                         features: FeatureBits.status.union(.attach), cpus: 2).encode(LayoutWriter(buffer))
        case .status:
            var reply = StatusReply(state: tools == nil ? .detached : .attached, cpus: 2, ioctlCalls: 1, arenaBytes: 1,
                                    arenaUsed: 1, liveAllocations: 1, liveBytes: 1, loadedNanoseconds: 1)
            if let t = tools { reply.tools = t }
            reply.encode(LayoutWriter(buffer))
        case .cpuStats:
            CPUStatsRequest(decoding: LayoutReader(UnsafeRawBufferPointer(buffer))).encode(LayoutWriter(buffer))
        case .retool:
            var request = AttachRequest(decoding: LayoutReader(UnsafeRawBufferPointer(buffer)))
            retools.append(request)
            if refusal != 0 {
                tools = nil
                request.refusal = refusal
                request.encode(LayoutWriter(buffer))
                return 0
            }
            if request.tools & ToolBits.heapcheck != 0 {
                if request.quarantineBytes == 0 { request.quarantineBytes = 4 << 20 }
                if request.redzoneBytes == 0 { request.redzoneBytes = 16 }
            }
            if request.tools & ToolBits.stackguard != 0 && request.stackThreshold == 0 { request.stackThreshold = 4096 }
            tools = request
            request.cpus = 2
            request.encode(LayoutWriter(buffer))
        default:
            return -Errno.ENOTTY
        }
        return 0
    }

    func close() {}
}

// Nested in the serialized CLI suite: the CLI context is global.
extension CLITests {
    @Suite("kdbt tool")
    struct ToolCommandTests {
        static let heapcheck = AttachRequest(tools: ToolBits.heapcheck, quarantineBytes: 2 << 20, redzoneBytes: 32)

        func cli(_ arguments: [String], _ device: ToolSetDevice) -> RunResult {
            run(arguments, open: { _ throws(DeviceError) in device })
        }

        @Test("enable adds the tool and keeps the others' settings")
        func enableKeepsSettings() {
            let device = ToolSetDevice(tools: ToolCommandTests.heapcheck)
            let r = cli(["tool", "enable", "stackguard", "--threshold", "8192"], device)
            #expect(r.exitCode == 0)
            #expect(device.retools == [AttachRequest(tools: ToolBits.heapcheck | ToolBits.stackguard, quarantineBytes: 2 << 20,
                                                     redzoneBytes: 32, stackThreshold: 8192)])
            #expect(r.stdout.contains("tools: heapcheck,stackguard"))
        }

        @Test("enable when detached attaches with the tool")
        func enableAttaches() {
            let device = ToolSetDevice(tools: nil)
            let r = cli(["tool", "enable", "inscount"], device)
            #expect(r.exitCode == 0)
            #expect(device.retools == [AttachRequest(tools: ToolBits.inscount)])
            #expect(r.stdout.hasPrefix("attached: 2 CPUs"))
        }

        @Test("enabling a running tool with the same settings changes nothing")
        func enableNoChange() {
            let device = ToolSetDevice(tools: ToolCommandTests.heapcheck)
            let r = cli(["tool", "enable", "heapcheck", "--quarantine", "2097152"], device)
            #expect(r.exitCode == 0)
            #expect(device.retools.isEmpty)
            #expect(r.stdout == "heapcheck is enabled already\n")
            let changed = cli(["tool", "enable", "heapcheck", "--quarantine", "1048576"], device)
            #expect(changed.exitCode == 0)
            #expect(device.retools.map(\.quarantineBytes) == [1 << 20])
        }

        @Test("disable removes the tool; a tool not running changes nothing")
        func disable() {
            let device = ToolSetDevice(tools: AttachRequest(tools: ToolBits.heapcheck | ToolBits.inscount, quarantineBytes: 2 << 20,
                                                            redzoneBytes: 32))
            let r = cli(["tool", "disable", "heapcheck", "--format", "json"], device)
            #expect(r.exitCode == 0)
            #expect(device.retools.map(\.tools) == [ToolBits.inscount])
            #expect(r.stdout.contains("\"tools\":[\"inscount\"]"))
            let again = cli(["tool", "disable", "stackguard"], device)
            #expect(again.exitCode == 0)
            #expect(again.stdout == "stackguard is not enabled\n")
            #expect(device.retools.count == 1)
        }

        @Test("a refusal after the detach: exit 2, and the message says the kernel stays detached")
        func refusedAfterDetach() {
            let device = ToolSetDevice(tools: ToolCommandTests.heapcheck)
            device.refusal = AttachRefusal.outOfMemory.rawValue
            let r = cli(["tool", "enable", "stackguard"], device)
            #expect(r.exitCode == 2)
            #expect(r.stderr.contains("stays detached"))
            #expect(r.stderr.contains("cannot attach"))
        }

        @Test("usage errors exit 64 and send nothing", arguments: [
            ["tool", "enable", "nosuch"], ["tool", "enable", "inscount", "--threshold", "4096"],
            ["tool", "enable", "stackguard", "--threshold", "0"], ["tool", "enable", "heapcheck", "--redzone", "4"],
            ["tool", "enable"], ["tool", "disable", "heapcheck", "--quarantine", "1"], ["tool", "bogus"],
        ])
        func usage(arguments: [String]) {
            let device = ToolSetDevice(tools: nil)
            #expect(cli(arguments, device).exitCode == 64)
            #expect(device.retools.isEmpty)
        }

        @Test("list shows which tools run; status names them with their settings")
        func listAndStatus() {
            let device = ToolSetDevice(tools: AttachRequest(tools: ToolBits.heapcheck | ToolBits.stackguard, quarantineBytes: 2 << 20,
                                                            redzoneBytes: 32, stackThreshold: 8192))
            let list = cli(["tool", "list"], device)
            #expect(list.exitCode == 0)
            #expect(list.stdout.contains("heapcheck   enabled  "))
            #expect(list.stdout.contains("inscount    -        "))
            let status = cli(["status"], device)
            #expect(status.stdout.contains(
                "tools:              heapcheck (quarantine 2097152 bytes, redzone 32 bytes), stackguard (threshold 8192 bytes)"))
            let json = cli(["status", "--format", "json"], device)
            #expect(json.stdout.contains("\"tools\":[\"heapcheck\",\"stackguard\"],\"quarantine_limit\":2097152,\"redzone\":32,\"stack_threshold\":8192"))
        }
    }
}
