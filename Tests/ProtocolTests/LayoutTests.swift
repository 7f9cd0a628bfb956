// SPDX-License-Identifier: GPL-2.0-only
import Protocol
import Testing

@Suite("uAPI layouts")
struct LayoutTests {
    @Test("ioctl numbers are _IOWR(0xDB, nr, first layout size)")
    func ioctlNumbers() {
        // Values computed by hand from asm-generic/ioctl.h: (3<<30)|(size<<16)|(0xDB<<8)|nr.
        #expect(KdbtCommand.version.number == 0xC038_DB01)
        #expect(KdbtCommand.status.number == 0xC060_DB02)
        #expect(KdbtCommand(number: 0xC038_DB01) == .version)
        #expect(KdbtCommand(number: 0xC060_DB02) == .status)
        #expect(KdbtCommand.readText.number == 0xC030_DB03)
    }

    @Test("numbers that are not exactly ours are rejected", arguments: [
        UInt32(0xC038_DB7F),  // unknown nr
        0xC03C_DB01,  // another size
        0x8038_DB01,  // read-only direction
        0xC038_4201,  // another type
        0,
    ])
    func foreignNumbers(number: UInt32) {
        #expect(KdbtCommand(number: number) == nil)
    }

    @Test("version reply round-trips through its byte layout")
    func versionRoundTrip() {
        let reply = VersionReply(protocolVersion: 1, engineVersion: 0x0001_0203, buildID: 0xDEAD_BEEF_0123_4567,
                                 features: .status, cpus: 2)
        withBuffer(VersionReply.sizeV1) { buffer in
            reply.encode(LayoutWriter(buffer))
            let bytes = UnsafeRawBufferPointer(buffer)
            #expect(bytes.loadUnaligned(fromByteOffset: 8, as: UInt32.self) == 1)
            #expect(bytes.loadUnaligned(fromByteOffset: 12, as: UInt32.self) == 0x0001_0203)
            #expect(bytes.loadUnaligned(fromByteOffset: 16, as: UInt64.self) == 0xDEAD_BEEF_0123_4567)
            #expect(bytes.loadUnaligned(fromByteOffset: 24, as: UInt64.self) == 1)
            #expect(bytes.loadUnaligned(fromByteOffset: 32, as: UInt32.self) == 2)
            #expect(VersionReply(decoding: LayoutReader(bytes)) == reply)
            #expect(VersionReply.validate(LayoutReader(bytes)) == 0)
        }
    }

    @Test("status reply round-trips; an unknown state is refused")
    func statusRoundTrip() {
        let reply = StatusReply(state: .attached, cpus: 2, ioctlCalls: 7, arenaBytes: 65536, arenaUsed: 64,
                                liveAllocations: 1, liveBytes: 65536, loadedNanoseconds: 123)
        withBuffer(StatusReply.sizeV1) { buffer in
            reply.encode(LayoutWriter(buffer))
            #expect(StatusReply(decoding: LayoutReader(UnsafeRawBufferPointer(buffer))) == reply)
            LayoutWriter(buffer).u32(8, 9)
            #expect(StatusReply(decoding: LayoutReader(UnsafeRawBufferPointer(buffer))) == nil)
        }
    }

    @Test("status v3 carries the tool set and its settings; a v2 reply leaves them zero")
    func statusTools() {
        var reply = StatusReply(state: .attached, cpus: 2, ioctlCalls: 7, arenaBytes: 65536, arenaUsed: 64,
                                liveAllocations: 1, liveBytes: 65536, loadedNanoseconds: 123)
        reply.tools = AttachRequest(tools: ToolBits.heapcheck | ToolBits.stackguard, quarantineBytes: 1 << 20,
                                    redzoneBytes: 32, stackThreshold: 8192)
        withBuffer(StatusReply.sizeV3) { buffer in
            reply.encode(LayoutWriter(buffer))
            #expect(StatusReply(decoding: LayoutReader(UnsafeRawBufferPointer(buffer))) == reply)
        }
        withBuffer(StatusReply.sizeV2) { buffer in
            reply.encode(LayoutWriter(buffer))
            #expect(StatusReply(decoding: LayoutReader(UnsafeRawBufferPointer(buffer)))?.tools == AttachRequest(tools: 0))
        }
        #expect(KdbtCommand.retool.firstLayoutSize == AttachRequest.sizeV2)
        #expect(KdbtCommand(number: KdbtCommand.retool.number) == .retool)
    }

    @Test("every reserved byte and the flags are checked", arguments: Array(4..<VersionReply.sizeV1))
    func versionReserved(offset: Int) {
        let inputChecked = (4..<8).contains(offset) || offset >= 36
        withBuffer(VersionReply.sizeV1) { buffer in
            buffer[offset] = 1
            let result = VersionReply.validate(LayoutReader(UnsafeRawBufferPointer(buffer)))
            #expect(result == (inputChecked ? Errno.EINVAL : 0))
        }
    }

    @Test("status reserved bytes and flags are checked", arguments: Array(4..<StatusReply.sizeV1))
    func statusReserved(offset: Int) {
        let inputChecked = (4..<8).contains(offset) || offset >= 64
        withBuffer(StatusReply.sizeV1) { buffer in
            buffer[offset] = 0x80
            let result = StatusReply.validate(LayoutReader(UnsafeRawBufferPointer(buffer)))
            #expect(result == (inputChecked ? Errno.EINVAL : 0))
        }
    }

    @Test("feature bits")
    func features() {
        #expect(FeatureBits.known.contains(.status))
        #expect(!FeatureBits(rawValue: 0).contains(.status))
        #expect(FeatureBits(rawValue: 0).union(.status) == .status)
    }
}

func withBuffer(_ size: Int, _ body: (UnsafeMutableRawBufferPointer) -> Void) {
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 8)
    defer { buffer.deallocate() }
    buffer.initializeMemory(as: UInt8.self, repeating: 0)
    body(buffer)
}

@Suite("takeover request layouts")
struct TakeoverLayoutTests {
    @Test("attach, detach, CPU statistics and self-test round-trip through their bytes")
    func roundTrips() {
        var stats = CPUStatsRequest(cpu: 1)
        stats.attached = 1
        stats.syscalls = 2; stats.userInterrupts = 3; stats.kernelInterrupts = 4; stats.exceptions = 5
        stats.delayed = 6; stats.instructions = 7; stats.nativeFallbacks = 8; stats.userExceptions = 9
        stats.delayedDelivered = 10; stats.untranslatedFaults = 11; stats.invalidations = 12
        withBuffer(CPUStatsRequest.sizeV1) { buffer in
            stats.encode(LayoutWriter(buffer))
            let bytes = UnsafeRawBufferPointer(buffer)
            #expect(bytes.loadUnaligned(fromByteOffset: 72, as: UInt64.self) == 9)
            #expect(bytes.loadUnaligned(fromByteOffset: 96, as: UInt64.self) == 12)
            #expect(CPUStatsRequest(decoding: LayoutReader(bytes)) == stats)
        }
        var attach = AttachRequest(tools: ToolBits.inscount)
        attach.refusal = 2; attach.cpus = 2; attach.attachNanoseconds = 5; attach.blocks = 6
        withBuffer(AttachRequest.sizeV1) { buffer in
            attach.encode(LayoutWriter(buffer))
            #expect(AttachRequest(decoding: LayoutReader(UnsafeRawBufferPointer(buffer))) == attach)
        }
        var detach = DetachRequest()
        detach.wasAttached = 1; detach.detachNanoseconds = 3; detach.instructions = 4
        withBuffer(DetachRequest.sizeV1) { buffer in
            detach.encode(LayoutWriter(buffer))
            #expect(DetachRequest(decoding: LayoutReader(UnsafeRawBufferPointer(buffer))) == detach)
        }
    }

    @Test("inputs are checked: flags, reserved fields, tool bits")
    func validation() {
        withBuffer(AttachRequest.sizeV1) { buffer in
            AttachRequest(tools: 1 << 40).encode(LayoutWriter(buffer))
            #expect(AttachRequest.validate(LayoutReader(UnsafeRawBufferPointer(buffer))) == Errno.EINVAL)
            AttachRequest(tools: ToolBits.known).encode(LayoutWriter(buffer))
            #expect(AttachRequest.validate(LayoutReader(UnsafeRawBufferPointer(buffer))) == 0)
            LayoutWriter(buffer).u32(4, 1)
            #expect(AttachRequest.validate(LayoutReader(UnsafeRawBufferPointer(buffer))) == Errno.EINVAL)
        }
        withBuffer(CPUStatsRequest.sizeV1) { buffer in
            CPUStatsRequest(cpu: 0).encode(LayoutWriter(buffer))
            #expect(CPUStatsRequest.validate(LayoutReader(UnsafeRawBufferPointer(buffer))) == 0)
            LayoutWriter(buffer).u64(104, 1)
            #expect(CPUStatsRequest.validate(LayoutReader(UnsafeRawBufferPointer(buffer))) == Errno.EINVAL)
        }
    }
}

@Suite struct KnownLayoutSizeTests {
    /// The module's request buffer holds every layout it knows (a layout that
    /// outgrew it would overrun a kernel stack buffer).
    @Test func everyLayoutFitsTheModuleBuffer() {
        for nr in UInt32(1)...32 {
            guard let command = KdbtCommand(rawValue: nr) else { continue }
            #expect(command.currentLayoutSize <= kdbtLargestKnownLayout, "\(command)")
            #expect(command.currentLayoutSize >= command.firstLayoutSize, "\(command)")
        }
    }
}
