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
            #expect(r.isZero(672, 96))
            #expect(FindingRecord(decoding: r) == Self.record)
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
