// SPDX-License-Identifier: GPL-2.0-only
//
// Building and encoding finding records on the hosted side: the module writes
// records itself; these let tests (and tools) produce the same bytes and
// round-trip them through `FindingRecord(decoding:)`.

#if !hasFeature(Embedded)
extension FindingRecord {
    public init(tool: UInt16, kind: UInt16, flags: Flags = Flags(rawValue: 0), count: UInt32 = 1,
                address: UInt64, pc: UInt64, accessSize: UInt32, cpu: UInt32, pid: UInt32, comm: String,
                objectStart: UInt64 = 0, objectSize: UInt64 = 0, cacheObjectSize: UInt64 = 0,
                cacheName: String = "", accessStack: FindingStack, allocated: FindingTrack,
                freed: FindingTrack? = nil, shadowAddress: UInt64 = 0,
                shadow: [UInt8] = [UInt8](repeating: 0, count: FindingLayout.shadowRows * FindingLayout.shadowRowBytes),
                timestampNanoseconds: UInt64 = 0, frameBytes: [UInt32] = [], stackKind: UInt32 = 0) {
        self.tool = tool
        self.kind = kind
        self.flags = flags
        self.count = count
        self.address = address
        self.pc = pc
        self.accessSize = accessSize
        self.cpu = cpu
        self.pid = pid
        self.comm = comm
        self.objectStart = objectStart
        self.objectSize = objectSize
        self.cacheObjectSize = cacheObjectSize
        self.cacheName = cacheName
        self.accessStack = accessStack
        self.allocated = allocated
        self.freed = freed
        self.shadowAddress = shadowAddress
        self.shadow = shadow
        self.timestampNanoseconds = timestampNanoseconds
        // As decoding yields them: one per frame of the access stack, unknown (0)
        // where none was given.
        let depth = min(accessStack.frames.count, FindingStack.maxFrames)
        self.frameBytes = Array(frameBytes.prefix(depth)) + Array(repeating: 0, count: max(0, depth - frameBytes.count))
        self.stackKind = stackKind
    }

    /// Writes the record into `sizeV1` bytes, as the module does; reserved bytes
    /// are zeroed. Strings and stacks longer than their fields are truncated.
    public func encode(_ w: LayoutWriter) {
        typealias O = Offset
        for i in 0..<FindingRecord.sizeV1 { w.u8(i, 0) }
        w.u32(O.recordBytes, UInt32(FindingRecord.sizeV1))
        w.u16(O.tool, tool)
        w.u16(O.kind, kind)
        w.u32(O.flags, flags.rawValue)
        w.u32(O.count, count)
        w.u64(O.address, address)
        w.u64(O.pc, pc)
        w.u32(O.accessSize, accessSize)
        w.u32(O.cpu, cpu)
        w.u32(O.pid, pid)
        FindingRecord.encode(comm, w, O.comm, FindingRecord.commBytes)
        w.u64(O.objectStart, objectStart)
        w.u64(O.objectSize, objectSize)
        w.u64(O.cacheObjectSize, cacheObjectSize)
        FindingRecord.encode(cacheName, w, O.cacheName, FindingRecord.cacheNameBytes)
        FindingRecord.encode(accessStack, w, O.accessStack)
        FindingRecord.encode(allocated, w, O.allocated)
        if let freed { FindingRecord.encode(freed, w, O.freed) }
        w.u64(O.shadowAddress, shadowAddress)
        for (i, b) in shadow.prefix(FindingRecord.shadowRows * FindingRecord.shadowRowBytes).enumerated() {
            w.u8(O.shadow + i, b)
        }
        w.u64(O.timestamp, timestampNanoseconds)
        for (i, bytes) in frameBytes.prefix(FindingLayout.maxFrames).enumerated() { w.u32(O.frameBytes + 4 * i, bytes) }
        w.u32(O.stackKind, stackKind)
    }

    /// NUL-padded; one byte is kept for the terminator, as the kernel's strscpy does.
    static func encode(_ s: String, _ w: LayoutWriter, _ offset: Int, _ bytes: Int) {
        for (i, c) in s.utf8.prefix(bytes - 1).enumerated() { w.u8(offset + i, c) }
    }

    static func encode(_ stack: FindingStack, _ w: LayoutWriter, _ offset: Int) {
        let frames = stack.frames.prefix(FindingStack.maxFrames)
        w.u32(offset, UInt32(frames.count))
        for (i, f) in frames.enumerated() { w.u64(offset + Offset.stackFrames + 8 * i, f) }
    }

    static func encode(_ track: FindingTrack, _ w: LayoutWriter, _ offset: Int) {
        w.u32(offset, track.pid)
        w.u32(offset + 4, track.cpu)
        encode(track.comm, w, offset + Offset.trackComm, FindingRecord.commBytes)
        encode(track.stack, w, offset + Offset.trackStack)
    }
}
#endif
