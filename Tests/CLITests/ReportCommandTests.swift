// SPDX-License-Identifier: GPL-2.0-only
//
// `kdbt report` with findings: argument validation, formats, exit codes, and the
// --symbolize seam, against a device that serves a findings ring.

import KdbtClient
import Protocol
import Testing

@testable import kdbt_cli

/// A detached module whose findings ring holds `records` (or answers `findingsErrno`).
struct FindingsRingDevice: DeviceConnection {
    var records: [FindingRecord]
    var dropped: UInt64 = 0
    var findingsErrno: Int32 = 0

    func perform(_ number: UInt32, _ buffer: UnsafeMutableRawBufferPointer) -> Int32 {
        switch KdbtCommand(number: number) {
        case .version:
            VersionReply(protocolVersion: kdbtProtocolVersion, engineVersion: 1, buildID: 1, features: .status, cpus: 1)
                .encode(LayoutWriter(buffer))
        case .status:
            StatusReply(state: .detached, cpus: 1, ioctlCalls: 1, arenaBytes: 1, arenaUsed: 1, liveAllocations: 1,
                        liveBytes: 1, loadedNanoseconds: 1).encode(LayoutWriter(buffer))
        case .findings:
            if findingsErrno != 0 { return -findingsErrno }
            var request = FindingsRequest(decoding: LayoutReader(UnsafeRawBufferPointer(buffer)))
            let first = min(Int(request.first), records.count)
            let last = min(first + Int(request.capacity), records.count)
            let out = UnsafeMutableRawPointer(bitPattern: UInt(request.buffer))!
            for (k, record) in records[first..<last].enumerated() {
                record.encode(LayoutWriter(UnsafeMutableRawBufferPointer(
                    start: out + k * FindingRecord.sizeV1, count: FindingRecord.sizeV1)))
            }
            request.count = UInt32(last - first)
            request.total = UInt32(records.count)
            request.dropped = dropped
            request.recordBytes = UInt32(FindingRecord.sizeV1)
            request.encode(LayoutWriter(buffer))
        default:
            return -Errno.ENOTTY
        }
        return 0
    }

    func close() {}
}

/// A source-line table for the one frame the tests symbolize.
struct TableSymbolizer: FrameSymbolizing {
    func sourceFrames(for location: SymbolLocation, isReturnAddress: Bool) -> [SourceFrame] {
        guard location.function == "kdbt_heapbugs_uaf_read" && location.offset == 0x2A else { return [] }
        return [SourceFrame(function: "read_field", file: "heapbugs.c", line: 20, inlined: true),
                SourceFrame(function: "kdbt_heapbugs_uaf_read", file: "heapbugs.c", line: 41, inlined: false)]
    }
}

enum ReportFixture {
    static let kallsyms = try! Kallsyms(text: """
        ffffffff81200100 T kfree
        ffffffff81200200 T do_syscall_64
        ffffffff81200300 T _etext
        ffffffffc0001000 t kdbt_heapbugs_uaf_read\t[kdbt_heapbugs]
        ffffffffc0001060 t kdbt_heapbugs_end\t[kdbt_heapbugs]
        ffffffffc0002000 t deep_recursion\t[kdbt_stackbugs]
        ffffffffc0002040 t kdbt_stackbugs_end\t[kdbt_stackbugs]
        """)

    static let useAfterFree = FindingRecord(
        tool: FindingTool.heapcheck.rawValue, kind: HeapBugKind.useAfterFree.rawValue,
        address: 0xFFFF_8880_03D4_C80C, pc: 0xFFFF_FFFF_C000_102A, accessSize: 4, cpu: 1, pid: 123, comm: "sh",
        objectStart: 0xFFFF_8880_03D4_C800, objectSize: 96, cacheObjectSize: 128, cacheName: "kmalloc-128",
        accessStack: FindingStack(frames: [0xFFFF_FFFF_C000_102A, 0xFFFF_FFFF_8120_0240]),
        allocated: FindingTrack(pid: 123, cpu: 1, comm: "sh", stack: FindingStack(frames: [0xFFFF_FFFF_8120_0240])),
        freed: FindingTrack(pid: 123, cpu: 1, comm: "sh", stack: FindingStack(frames: [0xFFFF_FFFF_8120_0120])),
        shadowAddress: 0xFFFF_8880_03D4_C700,
        shadow: [UInt8](repeating: ShadowByte.slabFree, count: 80))

    /// stackguard: 1552 bytes left on the task stack, two frames of deep_recursion.
    static let nearOverflow = FindingRecord(
        tool: FindingTool.stackguard.rawValue, kind: StackBugKind.nearOverflow.rawValue,
        address: 0xFFFF_C900_0043_0610, pc: 0xFFFF_FFFF_C000_201D, accessSize: 264, cpu: 0, pid: 77, comm: "sh",
        objectStart: 0xFFFF_C900_0043_0000, objectSize: 16384, cacheObjectSize: 1552, cacheName: "task",
        accessStack: FindingStack(frames: [0xFFFF_FFFF_C000_201D, 0xFFFF_FFFF_C000_202E, 0xFFFF_FFFF_8120_0240]),
        allocated: FindingTrack(pid: 0, cpu: 0, comm: "", stack: FindingStack(frames: [])),
        frameBytes: [272, 272, 96], stackKind: StackKind.task.rawValue)

    static func ring(_ records: [FindingRecord], dropped: UInt64 = 0, errno: Int32 = 0)
        -> (String) throws(DeviceError) -> any DeviceConnection {
        { _ throws(DeviceError) in FindingsRingDevice(records: records, dropped: dropped, findingsErrno: errno) }
    }

    static func symbols(_ context: inout CLIContext) {
        context.loadKallsyms = { () throws(ELFError) in kallsyms }
    }
}

// Nested in the serialized CLI suite: commands share CLIContext.current.
extension CLITests {
    @Suite("report: findings")
    struct ReportCommandTests {
        @Test("an unknown --format is a usage error that lists the formats")
        func unknownFormat() {
            let r = run(["report", "--format", "xml"], open: ReportFixture.ring([]))
            #expect(r.exitCode == 64)
            #expect(r.stderr.contains("'xml'"))
            #expect(r.stderr.contains("sarif"))
        }

        @Test("--vmlinux and --modules need --symbolize; --top must be positive", arguments: [
            ["report", "--vmlinux", "/boot/vmlinux"], ["report", "--modules", "/lib/modules"], ["report", "--top", "0"],
        ])
        func optionRules(arguments: [String]) {
            let r = run(arguments, open: ReportFixture.ring([]))
            #expect(r.exitCode == 64)
            #expect(r.stdout.isEmpty)
        }

        @Test("nothing attached and no findings kept: exit 2 with what to do")
        func nothingToReport() {
            let r = run(["report"])  // the in-process Engine keeps no findings (EOPNOTSUPP)
            #expect(r.exitCode == 2)
            #expect(r.stderr.contains("nothing to report"))
        }

        @Test("findings print in KASAN's layout; exit 0 unless --fail-on-findings")
        func text() {
            let r = run(["report"], open: ReportFixture.ring([ReportFixture.useAfterFree]), configure: ReportFixture.symbols)
            #expect(r.exitCode == 0)
            #expect(r.stdout.hasPrefix(String(repeating: "=", count: 66) + "\n"
                + "BUG: KDBT: use-after-free in kdbt_heapbugs_uaf_read+0x2a/0x60 [kdbt_heapbugs]\n"
                + "Read of size 4 at addr ffff888003d4c80c by task sh/123\n"))
            #expect(r.stdout.contains("\n do_syscall_64+0x40/0x100\n"))
            let failing = run(["report", "--fail-on-findings"], open: ReportFixture.ring([ReportFixture.useAfterFree]),
                              configure: ReportFixture.symbols)
            #expect(failing.exitCode == 1)
            #expect(failing.stdout == r.stdout)
        }

        @Test("an empty ring: no findings, exit 0 even with --fail-on-findings; dropped findings still fail")
        func empty() {
            let r = run(["report", "--fail-on-findings"], open: ReportFixture.ring([]), configure: ReportFixture.symbols)
            #expect(r.exitCode == 0)
            #expect(r.stdout == "findings: none\n")
            let dropped = run(["report", "--fail-on-findings", "--format", "json"], open: ReportFixture.ring([], dropped: 2))
            #expect(dropped.exitCode == 1)
            #expect(dropped.stdout.isEmpty)
            #expect(dropped.stderr.contains("2 findings dropped"))
        }

        @Test("json: one line per finding; sarif: one log")
        func machineFormats() {
            let two = ReportFixture.ring([ReportFixture.useAfterFree, ReportFixture.useAfterFree])
            let json = run(["report", "--format", "json"], open: two, configure: ReportFixture.symbols)
            #expect(json.exitCode == 0)
            let lines = json.stdout.split(separator: "\n")
            #expect(lines.count == 2)
            #expect(lines.allSatisfy { $0.hasPrefix("{\"tool\":\"heapcheck\",\"kind\":\"use-after-free\"") })
            let sarif = run(["report", "--format", "sarif"], open: two, configure: ReportFixture.symbols)
            #expect(sarif.exitCode == 0)
            #expect(sarif.stdout.hasPrefix("{\"$schema\":\"https://json.schemastore.org/sarif-2.1.0.json\",\"version\":\"2.1.0\""))
            #expect(sarif.stdout.ranges(of: "\"ruleId\":\"KDBT-HEAP-UAF\"").count == 2)
            #expect(sarif.stdout.split(separator: "\n").count == 1)
        }

        @Test("--symbolize without debug information: kallsyms frames and a note per code object saying why")
        func symbolizeFallback() {
            let r = run(["report", "--symbolize", "--modules", "/nonexistent-kdbt-modules"],
                        open: ReportFixture.ring([ReportFixture.useAfterFree]), configure: ReportFixture.symbols)
            #expect(r.exitCode == 0)
            #expect(r.stderr.contains("note: --symbolize: kdbt_heapbugs: "))
            #expect(r.stderr.contains("(see --modules); its frames are kallsyms function+offset"))
            #expect(r.stdout.contains("\n kdbt_heapbugs_uaf_read+0x2a/0x60 [kdbt_heapbugs]\n"))
            #expect(!r.stdout.contains("[inline]"))
        }

        @Test("--symbolize with a symbolizer: the factory gets --vmlinux and --modules, frames get lines")
        func symbolizeSeam() {
            final class Seen: @unchecked Sendable { var arguments: (String?, String?)? }
            let seen = Seen()
            let r = run(["report", "--symbolize", "--vmlinux", "/v", "--modules", "/m"],
                        open: ReportFixture.ring([ReportFixture.useAfterFree])) { context in
                ReportFixture.symbols(&context)
                context.makeSymbolizer = { vmlinux, modules in
                    seen.arguments = (vmlinux, modules)
                    return .available(TableSymbolizer())
                }
            }
            #expect(r.exitCode == 0)
            #expect(seen.arguments?.0 == "/v" && seen.arguments?.1 == "/m")
            #expect(r.stderr.isEmpty)
            #expect(r.stdout.contains("\n read_field heapbugs.c:20 [inline]\n kdbt_heapbugs_uaf_read+0x2a/0x60 [kdbt_heapbugs] heapbugs.c:41\n"))
        }

        @Test("stackguard findings alone: rendered in each format; --fail-on-findings exits 1")
        func stackguardOnly() {
            let ring = ReportFixture.ring([ReportFixture.nearOverflow])
            let r = run(["report"], open: ring, configure: ReportFixture.symbols)
            #expect(r.exitCode == 0)
            #expect(r.stdout.contains("\nBUG: KDBT: stack-near-overflow in deep_recursion+0x1d/0x40 [kdbt_stackbugs]\n"
                + "Stack pointer ffffc90000430610 leaves 1552 bytes free on the task stack"))
            #expect(r.stdout.contains("\nLargest stack users on this path:\n deep_recursion [kdbt_stackbugs]: 544 bytes in 2 frames\n"
                + " do_syscall_64: 96 bytes in 1 frame\n"))
            let failing = run(["report", "--fail-on-findings"], open: ring, configure: ReportFixture.symbols)
            #expect(failing.exitCode == 1)
            #expect(failing.stdout == r.stdout)
            let json = run(["report", "--fail-on-findings", "--format", "json"], open: ring, configure: ReportFixture.symbols)
            #expect(json.exitCode == 1)
            #expect(json.stdout.hasPrefix("{\"tool\":\"stackguard\",\"kind\":\"stack-near-overflow\",\"rule\":\"KDBT-STACK-NEAR-OVERFLOW\""))
        }

        @Test("a ring with both tools' findings: both reports in ring order, one SARIF run")
        func mixed() {
            let ring = ReportFixture.ring([ReportFixture.useAfterFree, ReportFixture.nearOverflow])
            let r = run(["report"], open: ring, configure: ReportFixture.symbols)
            #expect(r.exitCode == 0)
            let uaf = r.stdout.firstRange(of: "BUG: KDBT: use-after-free in ")
            let stack = r.stdout.firstRange(of: "BUG: KDBT: stack-near-overflow in ")
            #expect(uaf != nil && stack != nil && uaf!.lowerBound < stack!.lowerBound)
            let sarif = run(["report", "--format", "sarif"], open: ring, configure: ReportFixture.symbols)
            #expect(sarif.stdout.ranges(of: "\"runs\":[").count == 1)
            #expect(sarif.stdout.ranges(of: "\"ruleId\":\"KDBT-HEAP-UAF\"").count == 1)
            #expect(sarif.stdout.ranges(of: "\"ruleId\":\"KDBT-STACK-NEAR-OVERFLOW\",\"ruleIndex\":4").count == 1)
        }

        @Test("a module refusing the findings request is an environment error")
        func refused() {
            let r = run(["report"], open: ReportFixture.ring([], errno: Errno.EPERM))
            #expect(r.exitCode == 2)
            #expect(r.stderr.contains("CAP_SYS_ADMIN"))
        }
    }
}
