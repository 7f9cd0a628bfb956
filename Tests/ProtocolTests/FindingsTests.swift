// SPDX-License-Identifier: GPL-2.0-only
import Protocol
import Testing

@Suite("finding records")
struct FindingsLayoutTests {
    static let record = FindingRecord(
        tool: FindingTool.heapcheck.rawValue, kind: HeapBugKind.useAfterFree.rawValue,
        flags: FindingRecord.Flags(rawValue: FindingRecord.Flags.write), count: 3,
        address: 0xFFFF_8880_03D4_C80C, pc: 0xFFFF_FFFF_C000_102A, accessSize: 4, cpu: 1, pid: 123, comm: "sh",
        objectStart: 0xFFFF_8880_03D4_C800, objectSize: 96, cacheObjectSize: 128, cacheName: "kmalloc-128",
        accessStack: FindingStack(frames: [0xFFFF_FFFF_C000_102A, 0xFFFF_FFFF_8100_0010]),
        allocated: FindingTrack(pid: 123, cpu: 1, comm: "sh", stack: FindingStack(frames: [0xFFFF_FFFF_8120_0000])),
        freed: FindingTrack(pid: 124, cpu: 0, comm: "kworker/0:1", stack: FindingStack(frames: [1, 2, 3])),
        shadowAddress: 0xFFFF_8880_03D4_C700, shadow: (0..<80).map { UInt8($0) }, timestampNanoseconds: 42)

    @Test("a record round-trips through its byte layout, at the documented offsets")
    func roundTrip() {
        withBuffer(FindingRecord.sizeV1) { buffer in
            Self.record.encode(LayoutWriter(buffer))
            let r = LayoutReader(UnsafeRawBufferPointer(buffer))
            #expect(r.u32(0) == 768)
            #expect(r.u16(6) == 1)
            #expect(r.u32(12) == 3)
            #expect(r.u64(16) == 0xFFFF_8880_03D4_C80C)
            #expect(r.u8(48) == UInt8(ascii: "s") && r.u8(50) == 0)
            #expect(r.u8(88) == UInt8(ascii: "k"))
            #expect(r.u32(120) == 2 && r.u64(128) == 0xFFFF_FFFF_C000_102A)
            #expect(r.u32(416) == 124 && r.u32(416 + 24) == 3)
            #expect(r.u8(584 + 79) == 79)
            #expect(r.u64(664) == 42)
            // heapcheck leaves stackguard's fields and the reserved tail zero.
            #expect(r.isZero(672, 96))
            #expect(FindingRecord(decoding: r) == Self.record)
            #expect(FindingRecord(decoding: r).frameBytes == [0, 0])
        }
    }

    static let stackRecord = FindingRecord(
        tool: FindingTool.stackguard.rawValue, kind: StackBugKind.nearOverflow.rawValue, count: 2,
        address: 0xFFFF_C900_0043_3A10, pc: 0xFFFF_FFFF_C000_201D, accessSize: 264, cpu: 1, pid: 123, comm: "sh",
        objectStart: 0xFFFF_C900_0043_0000, objectSize: 16384, cacheObjectSize: 1552, cacheName: "task",
        accessStack: FindingStack(frames: [0xFFFF_FFFF_C000_201D, 0xFFFF_FFFF_C000_202E, 0xFFFF_FFFF_8120_0240]),
        allocated: FindingTrack(pid: 0, cpu: 0, comm: "", stack: FindingStack(frames: [])),
        timestampNanoseconds: 7, frameBytes: [272, 0, 120], stackKind: StackKind.task.rawValue)

    @Test("stackguard's frame sizes and stack kind sit at 672 and 736 and round-trip")
    func stackguardRoundTrip() {
        withBuffer(FindingRecord.sizeV1) { buffer in
            Self.stackRecord.encode(LayoutWriter(buffer))
            let r = LayoutReader(UnsafeRawBufferPointer(buffer))
            #expect(r.u16(4) == 2 && r.u16(6) == 1)
            #expect(r.u32(672) == 272 && r.u32(676) == 0 && r.u32(680) == 120)
            #expect(r.isZero(684, 52))
            #expect(r.u32(736) == 1)
            #expect(r.isZero(740, 28))
            let decoded = FindingRecord(decoding: r)
            #expect(decoded == Self.stackRecord)
            #expect(decoded.frameBytes == [272, 0, 120])
            #expect(decoded.stackKind == StackKind.task.rawValue)
            #expect(decoded.freed == nil)
        }
    }

    @Test("frame sizes follow the stack depth: missing ones are unknown (0), extra ones dropped")
    func frameBytesDepth() {
        var record = Self.stackRecord
        let frames = FindingStack(frames: [1, 2, 3, 4])
        let short = FindingRecord(tool: 2, kind: 1, address: 0, pc: 0, accessSize: 0, cpu: 0, pid: 0, comm: "",
                                  accessStack: frames, allocated: record.allocated, frameBytes: [8])
        #expect(short.frameBytes == [8, 0, 0, 0])
        let long = FindingRecord(tool: 2, kind: 1, address: 0, pc: 0, accessSize: 0, cpu: 0, pid: 0, comm: "",
                                 accessStack: FindingStack(frames: [1]), allocated: record.allocated, frameBytes: [8, 9])
        #expect(long.frameBytes == [8])
        // A full stack: all 16 sizes are encoded and decoded.
        record.accessStack = FindingStack(frames: (1...16).map { UInt64($0) })
        record.frameBytes = (1...16).map { UInt32($0) * 16 }
        withBuffer(FindingRecord.sizeV1) { buffer in
            record.encode(LayoutWriter(buffer))
            let r = LayoutReader(UnsafeRawBufferPointer(buffer))
            #expect(r.u32(672 + 4 * 15) == 256)
            #expect(FindingRecord(decoding: r).frameBytes == record.frameBytes)
        }
    }

    @Test("a record with no free track decodes freed as nil; long strings are cut to their field")
    func edges() {
        var record = Self.record
        record.freed = nil
        record.comm = "a-very-long-command-name"
        withBuffer(FindingRecord.sizeV1) { buffer in
            record.encode(LayoutWriter(buffer))
            let decoded = FindingRecord(decoding: LayoutReader(UnsafeRawBufferPointer(buffer)))
            #expect(decoded.freed == nil)
            #expect(decoded.comm == "a-very-long-com")
        }
    }

    @Test("findings request round-trips; flags, capacity and reserved bytes are checked")
    func request() {
        withBuffer(FindingsRequest.sizeV1) { buffer in
            var request = FindingsRequest(first: 5, capacity: 7, buffer: 0x1000)
            request.count = 2; request.total = 9; request.dropped = 4; request.recordBytes = 768
            request.encode(LayoutWriter(buffer))
            let r = LayoutReader(UnsafeRawBufferPointer(buffer))
            #expect(FindingsRequest(decoding: r) == request)
            #expect(FindingsRequest.validate(r) == 0)
            LayoutWriter(buffer).u32(12, FindingsRequest.maxCapacity + 1)
            #expect(FindingsRequest.validate(r) == Errno.EINVAL)
        }
    }
}
