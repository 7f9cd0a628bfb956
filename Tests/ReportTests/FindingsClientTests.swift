// SPDX-License-Identifier: GPL-2.0-only
//
// KdbtClient.findings() against a device that serves a ring of records the way
// KDBT_IOC_FINDINGS is specified: pages of records copied to the caller's buffer.

import KdbtClient
import Protocol
import Testing

struct FindingsDevice: DeviceConnection {
    var records: [FindingRecord]
    var dropped: UInt64 = 0
    var recordBytes = UInt32(FindingRecord.sizeV1)

    func perform(_ number: UInt32, _ buffer: UnsafeMutableRawBufferPointer) -> Int32 {
        guard number == KdbtCommand.findings.number else { return -Errno.ENOTTY }
        let reader = LayoutReader(UnsafeRawBufferPointer(buffer))
        let bad = FindingsRequest.validate(reader)
        if bad != 0 { return -bad }
        var request = FindingsRequest(decoding: reader)
        let first = min(Int(request.first), records.count)
        let last = min(first + Int(request.capacity), records.count)
        let out = UnsafeMutableRawBufferPointer(start: UnsafeMutableRawPointer(bitPattern: UInt(request.buffer)),
                                                count: Int(request.capacity) * FindingRecord.sizeV1)
        for (k, record) in records[first..<last].enumerated() {
            record.encode(LayoutWriter(UnsafeMutableRawBufferPointer(
                rebasing: out[(k * FindingRecord.sizeV1)..<((k + 1) * FindingRecord.sizeV1)])))
        }
        request.count = UInt32(last - first)
        request.total = UInt32(records.count)
        request.dropped = dropped
        request.recordBytes = recordBytes
        request.encode(LayoutWriter(buffer))
        return 0
    }

    func close() {}
}

@Suite("findings: client")
struct FindingsClientTests {
    @Test("every record is read, in order, across several pages")
    func paging() throws {
        let records = (0..<150).map { i -> FindingRecord in
            var r = Fixture.useAfterFree
            r.count = UInt32(i + 1)
            return r
        }
        let snapshot = try KdbtClient(device: FindingsDevice(records: records, dropped: 4)).findings()
        #expect(snapshot.records == records)
        #expect(snapshot.dropped == 4)
    }

    @Test("an empty ring is no records")
    func empty() throws {
        #expect(try KdbtClient(device: FindingsDevice(records: [])).findings() == FindingsSnapshot(records: [], dropped: 0))
    }

    @Test("records of another size are refused rather than misread")
    func recordSize() {
        #expect(throws: DeviceError.malformedReply(command: "findings")) {
            try KdbtClient(device: FindingsDevice(records: [Fixture.useAfterFree], recordBytes: 1024)).findings()
        }
    }
}
