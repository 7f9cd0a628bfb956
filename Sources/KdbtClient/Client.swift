// SPDX-License-Identifier: GPL-2.0-only
//
// Typed requests over a DeviceConnection: builds each request buffer from its
// Protocol layout, checks the protocol version once per connection.

import Protocol

public struct KdbtClient<Device: DeviceConnection> {
    public let device: Device

    public init(device: Device) { self.device = device }

    /// The module's identity, without judging its protocol version.
    public func version() throws(DeviceError) -> VersionReply {
        try request(.version, size: VersionReply.sizeV1) { VersionReply(decoding: $0) }
    }

    /// Fails with `.protocolMismatch` unless the module speaks our protocol.
    public func handshake() throws(DeviceError) -> VersionReply {
        let reply = try version()
        guard reply.protocolVersion == kdbtProtocolVersion else {
            throw .protocolMismatch(module: reply.protocolVersion, cli: kdbtProtocolVersion)
        }
        return reply
    }

    public func status() throws(DeviceError) -> StatusReply {
        try request(.status, size: StatusReply.sizeV3) { StatusReply(decoding: $0) }
    }

    /// `length` bytes of live kernel text at `address`, as the CPU runs them now
    /// (alternatives, static calls and jump labels applied). At most
    /// `ReadTextRequest.maxLength` bytes; the module answers EFAULT unless the whole
    /// range is kernel text (`requestFailed(errno: EFAULT)`).
    public func readText(address: UInt64, length: Int) throws(DeviceError) -> [UInt8] {
        precondition(length > 0 && length <= Int(ReadTextRequest.maxLength), "readText length out of range")
        let text = UnsafeMutableRawBufferPointer.allocate(byteCount: length, alignment: 16)
        defer { text.deallocate() }
        text.initializeMemory(as: UInt8.self, repeating: 0)
        let reply = try request(.readText, size: ReadTextRequest.sizeV1, encode: { writer in
            ReadTextRequest(address: address, buffer: UInt64(UInt(bitPattern: text.baseAddress)),
                            length: UInt32(length)).encode(writer)
        }) { ReadTextRequest(decoding: $0) }
        guard reply.bytesRead == UInt32(length) else { throw .malformedReply(command: "\(KdbtCommand.readText)") }
        return Array(UnsafeRawBufferPointer(text))
    }

    /// Runs a built-in kernel workload natively and translated (KDBT_IOC_SELFTEST).
    public func selfTest(_ workload: SelfTestWorkload, argument: UInt64) throws(DeviceError) -> SelfTestRequest {
        try request(.selfTest, size: SelfTestRequest.sizeV1, encode: { writer in
            SelfTestRequest(workload: workload.rawValue, argument: argument).encode(writer)
        }) { SelfTestRequest(decoding: $0) }
    }

    /// `quarantineBytes`, `redzoneBytes`: heapcheck's settings (0: the module's defaults).
    public func attach(tools: UInt64, quarantineBytes: UInt64 = 0, redzoneBytes: UInt32 = 0,
                       stackThreshold: UInt32 = 0) throws(DeviceError) -> AttachRequest {
        let request = AttachRequest(tools: tools, quarantineBytes: quarantineBytes, redzoneBytes: redzoneBytes,
                                    stackThreshold: stackThreshold)
        return try self.request(.attach, size: AttachRequest.sizeV2, encode: { request.encode($0) }) {
            AttachRequest(decoding: $0)
        }
    }

    /// Changes the tool set: detach and attach again in one request, findings kept
    /// (KDBT_IOC_RETOOL); attaches when not attached.
    public func retool(_ tools: AttachRequest) throws(DeviceError) -> AttachRequest {
        try request(.retool, size: AttachRequest.sizeV2, encode: { tools.encode($0) }) { AttachRequest(decoding: $0) }
    }

    public func detach() throws(DeviceError) -> DetachRequest {
        try request(.detach, size: DetachRequest.sizeV1) { DetachRequest(decoding: $0) }
    }

    public func cpuStats(cpu: UInt32) throws(DeviceError) -> CPUStatsRequest {
        try request(.cpuStats, size: CPUStatsRequest.sizeV2, encode: { CPUStatsRequest(cpu: cpu).encode($0) }) {
            CPUStatsRequest(decoding: $0)
        }
    }

    /// inscount's per-block counts: (block address, instructions) for every block
    /// profiled, read a page of entries at a time, and how many blocks found the
    /// profile full.
    public func profile() throws(DeviceError) -> (entries: [(address: UInt64, instructions: UInt64)], overflow: UInt64) {
        let capacity = 4096
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: capacity * ProfileRequest.entryBytes, alignment: 8)
        defer { buffer.deallocate() }
        var entries: [(address: UInt64, instructions: UInt64)] = []
        var overflow: UInt64 = 0
        while true {
            let first = UInt32(entries.count)
            let reply = try request(.profile, size: ProfileRequest.sizeV1, encode: { writer in
                ProfileRequest(first: first, capacity: UInt32(capacity),
                               buffer: UInt64(UInt(bitPattern: buffer.baseAddress))).encode(writer)
            }) { ProfileRequest(decoding: $0) }
            overflow = reply.overflow
            for k in 0..<Int(reply.count) {
                entries.append((buffer.load(fromByteOffset: k * 16, as: UInt64.self),
                                buffer.load(fromByteOffset: k * 16 + 8, as: UInt64.self)))
            }
            if reply.count < UInt32(capacity) || entries.count >= Int(reply.total) { break }
        }
        return (entries, overflow)
    }

    /// Every record in the module's findings ring, read a page of records at a
    /// time, and how many findings found the ring full.
    public func findings() throws(DeviceError) -> FindingsSnapshot {
        let capacity = 64
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: capacity * FindingRecord.sizeV1, alignment: 8)
        defer { buffer.deallocate() }
        var records: [FindingRecord] = []
        var dropped: UInt64 = 0
        while true {
            let first = UInt32(records.count)
            let reply = try request(.findings, size: FindingsRequest.sizeV1, encode: { writer in
                FindingsRequest(first: first, capacity: UInt32(capacity),
                                buffer: UInt64(UInt(bitPattern: buffer.baseAddress))).encode(writer)
            }) { FindingsRequest(decoding: $0) }
            // Records of another size would be misread, not just truncated.
            guard reply.count <= UInt32(capacity),
                  reply.count == 0 || Int(reply.recordBytes) == FindingRecord.sizeV1 else {
                throw .malformedReply(command: "\(KdbtCommand.findings)")
            }
            dropped = reply.dropped
            for k in 0..<Int(reply.count) {
                let record = UnsafeRawBufferPointer(rebasing: buffer[(k * FindingRecord.sizeV1)..<((k + 1) * FindingRecord.sizeV1)])
                records.append(FindingRecord(decoding: LayoutReader(record)))
            }
            if reply.count < UInt32(capacity) || records.count >= Int(reply.total) { break }
        }
        return FindingsSnapshot(records: records, dropped: dropped)
    }

    private func request<Reply>(
        _ command: KdbtCommand, size: Int, encode: (LayoutWriter) -> Void = { _ in },
        decode: (LayoutReader) -> Reply?
    ) throws(DeviceError) -> Reply {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 8)
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 0)
        encode(LayoutWriter(buffer))
        LayoutWriter(buffer).u32(RequestHeader.sizeOffset, UInt32(size))
        let result = device.perform(command.number, buffer)
        if result < 0 { throw .requestFailed(command: "\(command)", errno: -result) }
        let reader = LayoutReader(UnsafeRawBufferPointer(buffer))
        guard Int(reader.u32(RequestHeader.sizeOffset)) == size, let reply = decode(reader) else {
            throw .malformedReply(command: "\(command)")
        }
        return reply
    }
}

/// What `findings()` read: the records, oldest first, and the findings dropped.
public struct FindingsSnapshot: Equatable, Sendable {
    public var records: [FindingRecord]
    public var dropped: UInt64
    public init(records: [FindingRecord], dropped: UInt64) {
        self.records = records
        self.dropped = dropped
    }
}
