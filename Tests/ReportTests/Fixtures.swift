// SPDX-License-Identifier: GPL-2.0-only
//
// Findings as the module would write them (encoded, then decoded, so the tests
// see exactly what the CLI reads), a small kernel symbol table, and a symbolizer
// that answers from a table.

import KdbtClient
import Protocol

enum Fixture {
    static let kallsymsText = """
        ffffffff81000000 T _stext
        ffffffff811ffe00 T ksys_write
        ffffffff811fff00 T vfs_write
        ffffffff81200000 T __kmalloc
        ffffffff81200100 T kfree
        ffffffff81200200 T do_syscall_64
        ffffffff81200300 T entry_SYSCALL_64
        ffffffff81200400 T _etext
        ffffffffc0001000 t kdbt_heapbugs_uaf_read\t[kdbt_heapbugs]
        ffffffffc0001060 t kdbt_heapbugs_write\t[kdbt_heapbugs]
        ffffffffc0001100 t kdbt_heapbugs_end\t[kdbt_heapbugs]
        ffffffffc0002000 t deep_recursion\t[kdbt_stackbugs]
        ffffffffc0002040 t stack_hog\t[kdbt_stackbugs]
        ffffffffc0002100 t kdbt_stackbugs_end\t[kdbt_stackbugs]
        """
    static let kallsyms = try! Kallsyms(text: kallsymsText)

    static let kmalloc: UInt64 = 0xFFFF_FFFF_8120_0000
    static let kfree: UInt64 = 0xFFFF_FFFF_8120_0100
    static let syscall: UInt64 = 0xFFFF_FFFF_8120_0200
    static let entry: UInt64 = 0xFFFF_FFFF_8120_0300
    static let uafRead: UInt64 = 0xFFFF_FFFF_C000_1000
    static let write: UInt64 = 0xFFFF_FFFF_C000_1060
    static let ksysWrite: UInt64 = 0xFFFF_FFFF_811F_FE00
    static let vfsWrite: UInt64 = 0xFFFF_FFFF_811F_FF00
    static let deepRecursion: UInt64 = 0xFFFF_FFFF_C000_2000
    static let stackHog: UInt64 = 0xFFFF_FFFF_C000_2040

    static let object: UInt64 = 0xFFFF_8880_03D4_C800
    /// Two rows before the object's row, as KASAN centres the dump.
    static let shadowStart: UInt64 = object - 256

    static let fc = ShadowByte.slabRedzone, fb = ShadowByte.slabFree

    static func row(_ bytes: [UInt8]) -> [UInt8] {
        precondition(bytes.count == 16)
        return bytes
    }

    static func shadow(objectRow: [UInt8]) -> [UInt8] {
        row(Array(repeating: fc, count: 16)) + row(Array(repeating: 0, count: 12) + Array(repeating: fc, count: 4))
            + row(objectRow) + row(Array(repeating: 0, count: 16)) + row(Array(repeating: fc, count: 16))
    }

    static let allocated = FindingTrack(pid: 123, cpu: 1, comm: "sh",
                                        stack: FindingStack(frames: [kmalloc + 0x30, uafRead + 0x10, syscall + 0x40]))
    static let freed = FindingTrack(pid: 77, cpu: 0, comm: "kworker/0:1",
                                    stack: FindingStack(frames: [kfree + 0x20, uafRead + 0x20]))

    /// The encode/decode round trip every fixture goes through.
    static func roundTrip(_ record: FindingRecord) -> FindingRecord {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: FindingRecord.sizeV1, alignment: 8)
        defer { buffer.deallocate() }
        record.encode(LayoutWriter(buffer))
        return FindingRecord(decoding: LayoutReader(UnsafeRawBufferPointer(buffer)))
    }

    static func access(_ kind: HeapBugKind, address: UInt64, size: UInt32, write: Bool = false, pc: UInt64,
                       objectSize: UInt64 = 96, freed: FindingTrack? = nil, objectRow: [UInt8], count: UInt32 = 1,
                       flags: UInt32 = 0, cacheName: String = "kmalloc-128", cacheObjectSize: UInt64 = 128) -> FindingRecord {
        roundTrip(FindingRecord(
            tool: FindingTool.heapcheck.rawValue, kind: kind.rawValue,
            flags: FindingRecord.Flags(rawValue: flags | (write ? FindingLayout.Flags.write : 0)), count: count,
            address: address, pc: pc, accessSize: size, cpu: 1, pid: 123, comm: "sh",
            objectStart: object, objectSize: objectSize, cacheObjectSize: cacheObjectSize, cacheName: cacheName,
            accessStack: FindingStack(frames: [pc, syscall + 0x40, entry + 0x60]),
            allocated: allocated, freed: freed, shadowAddress: shadowStart, shadow: shadow(objectRow: objectRow),
            timestampNanoseconds: 5_000_000_123))
    }

    /// A read of 4 bytes 12 bytes into a freed 96-byte kmalloc-128 object.
    static var useAfterFree: FindingRecord {
        access(.useAfterFree, address: object + 12, size: 4, pc: uafRead + 0x2A, freed: freed,
               objectRow: Array(repeating: fb, count: 16))
    }

    /// 100 requested bytes in a 128-byte slot: 12 granules, one of 4 bytes, redzone.
    static let oobRow: [UInt8] = Array(repeating: 0, count: 12) + [4, fc, fc, fc]

    static func outOfBounds(address: UInt64, size: UInt32 = 1) -> FindingRecord {
        access(.outOfBounds, address: address, size: size, write: true, pc: write + 0x10, objectSize: 100,
               objectRow: oobRow)
    }

    static let taskStack: UInt64 = 0xFFFF_C900_0043_0000

    /// stackguard: 1552 bytes left on a 16 KiB task stack after a 264-byte
    /// adjustment in deep_recursion, four frames deep in it; do_syscall_64's
    /// frame size is not known, one frame is at an address kallsyms does not know.
    static func nearOverflow(count: UInt32 = 1, stackKind: StackKind = .task,
                             frameBytes: [UInt32] = [272, 272, 272, 272, 1032, 120, 24, 0, 40, 16]) -> FindingRecord {
        roundTrip(FindingRecord(
            tool: FindingTool.stackguard.rawValue, kind: StackBugKind.nearOverflow.rawValue, count: count,
            address: taskStack + 1552, pc: deepRecursion + 0x1D, accessSize: 264, cpu: 1, pid: 123, comm: "sh",
            objectStart: taskStack, objectSize: 16384, cacheObjectSize: 1552, cacheName: "\(stackKind.name)",
            accessStack: FindingStack(frames: [
                deepRecursion + 0x1D, deepRecursion + 0x2E, deepRecursion + 0x2E, deepRecursion + 0x2E,
                stackHog + 0x30, vfsWrite + 0x50, ksysWrite + 0x20, syscall + 0x40, entry + 0x60, 0x1234,
            ]),
            allocated: FindingTrack(pid: 0, cpu: 0, comm: "", stack: FindingStack(frames: [])),
            timestampNanoseconds: 9_000_000_456, frameBytes: frameBytes, stackKind: stackKind.rawValue))
    }

    static func badFree(_ kind: HeapBugKind, address: UInt64) -> FindingRecord {
        roundTrip(FindingRecord(
            tool: FindingTool.heapcheck.rawValue, kind: kind.rawValue, address: address, pc: kfree + 0x10,
            accessSize: 0, cpu: 0, pid: 77, comm: "kworker/0:1",
            objectStart: object, objectSize: 96, cacheObjectSize: 128, cacheName: "kmalloc-128",
            accessStack: FindingStack(frames: [kfree + 0x10, uafRead + 0x20, syscall + 0x40]),
            allocated: allocated, freed: kind == .doubleFree ? freed : nil, shadowAddress: shadowStart,
            shadow: shadow(objectRow: Array(repeating: kind == .doubleFree ? fb : 0, count: 12) + [fc, fc, fc, fc])))
    }
}

/// Answers from a table keyed by "function+offset", and records what it was asked.
final class FakeSymbolizer: FrameSymbolizing {
    var table: [String: [SourceFrame]]
    var asked: [(key: String, isReturnAddress: Bool)] = []

    init(_ table: [String: [SourceFrame]]) { self.table = table }

    func sourceFrames(for location: SymbolLocation, isReturnAddress: Bool) -> [SourceFrame] {
        let key = "\(location.function)+0x\(String(location.offset, radix: 16))"
        asked.append((key, isReturnAddress))
        return table[key] ?? []
    }

    static func standard() -> FakeSymbolizer {
        FakeSymbolizer([
            "kdbt_heapbugs_uaf_read+0x2a": [
                SourceFrame(function: "read_field", file: "drivers/kdbt/heapbugs.c", line: 20, column: 9, inlined: true),
                SourceFrame(function: "kdbt_heapbugs_uaf_read", file: "drivers/kdbt/heapbugs.c", line: 41, inlined: false),
            ],
            "do_syscall_64+0x40": [
                SourceFrame(function: "do_syscall_x64", file: "arch/x86/entry/common.c", line: 50, inlined: true),
                SourceFrame(function: "do_syscall_64", file: "arch/x86/entry/common.c", line: 80, inlined: false),
            ],
            "__kmalloc+0x30": [SourceFrame(function: "__kmalloc", file: "/src/linux/mm/slab common.c", line: 967, inlined: false)],
        ])
    }
}
