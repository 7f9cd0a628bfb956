// SPDX-License-Identifier: GPL-2.0-only
//
// The real ioctl dispatch, driven through the in-process host: every validation rule
// of the uAPI, and the arena accounting that unload relies on.

import Engine
import Protocol
import Testing

/// An Engine on an in-process host, with `pages` of mapped "user memory".
final class Harness {
    let world = InProcessWorld()
    let engine: Engine<InProcessHost>
    let user: UnsafeMutableRawBufferPointer

    init(bytes: Int = 8192) {
        engine = Engine.create(host: InProcessHost(world: world))!
        user = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes, alignment: 16)
        user.initializeMemory(as: UInt8.self, repeating: 0)
        world.map(user)
    }

    deinit {
        engine.destroy()
        user.deallocate()
    }

    var address: UInt64 { UInt64(UInt(bitPattern: user.baseAddress)) }

    /// Writes the size field at `offset` into user memory and issues `command`.
    func call(_ command: KdbtCommand, size: Int, offset: Int = 0,
              prepare: (UnsafeMutableRawBufferPointer) -> Void = { _ in }) -> Int32 {
        user.initializeMemory(as: UInt8.self, repeating: 0)
        user.storeBytes(of: UInt32(truncatingIfNeeded: size), toByteOffset: offset, as: UInt32.self)
        prepare(UnsafeMutableRawBufferPointer(rebasing: user[offset...]))
        return engine.ioctl(number: command.number, argument: address + UInt64(offset))
    }
}

@Suite("ioctl dispatch")
struct IoctlDispatchTests {
    @Test("version reports the protocol, the engine version and the host's build id")
    func version() {
        let h = Harness()
        #expect(h.call(.version, size: VersionReply.sizeV1) == 0)
        let reply = VersionReply(decoding: LayoutReader(UnsafeRawBufferPointer(h.user)))
        #expect(reply.protocolVersion == kdbtProtocolVersion)
        #expect(reply.engineVersion == kdbtEngineVersion)
        #expect(reply.buildID == InProcessHost(world: h.world).buildID)
        #expect(reply.features.contains(.status))
        #expect(h.user.load(as: UInt32.self) == UInt32(VersionReply.sizeV1))
    }

    @Test("status counts requests and reports the arena and live allocations")
    func status() {
        let h = Harness()
        _ = h.call(.version, size: VersionReply.sizeV1)
        #expect(h.call(.status, size: StatusReply.sizeV1) == 0)
        let s = StatusReply(decoding: LayoutReader(UnsafeRawBufferPointer(h.user)))!
        #expect(s.state == .detached)
        #expect(s.ioctlCalls == 2)
        #expect(s.arenaBytes == UInt64(Engine<InProcessHost>.initialArenaBytes))
        #expect(s.arenaUsed > 0 && s.arenaUsed < s.arenaBytes)
        #expect(s.liveAllocations == 1)
        #expect(s.cpus == 2)
    }

    @Test("unknown numbers are ENOTTY", arguments: [UInt32(0), 0xC038_DB7F, 0xC03C_DB01, 0x4038_DB01])
    func unknown(number: UInt32) {
        let h = Harness()
        #expect(h.engine.ioctl(number: number, argument: h.address) == -Errno.ENOTTY)
    }

    @Test("sizes below the first layout are EINVAL", arguments: [0, 4, 8, 55])
    func short(size: Int) {
        #expect(Harness().call(.version, size: size) == -Errno.EINVAL)
    }

    @Test("a longer struct with a zero tail is accepted; only the known size is written back")
    func oversizedZero() {
        let h = Harness()
        let known = KdbtCommand.status.currentLayoutSize
        #expect(h.call(.status, size: known + 100) == 0)
        #expect(h.user.load(as: UInt32.self) == UInt32(known))
    }

    @Test("a longer struct with a non-zero tail is E2BIG")
    func oversizedNonZero() {
        let h = Harness()
        let known = KdbtCommand.status.currentLayoutSize
        let r = h.call(.status, size: known + 100) { $0[known + 99] = 1 }
        #expect(r == -Errno.E2BIG)
    }

    @Test("a size above one page is E2BIG")
    func tooLarge() {
        #expect(Harness().call(.status, size: kdbtMaxRequestSize + 1) == -Errno.E2BIG)
    }

    @Test("non-zero flags or reserved fields are EINVAL", arguments: [4, 36, 40, 55])
    func reserved(offset: Int) {
        let h = Harness()
        #expect(h.call(.version, size: VersionReply.sizeV1) { $0[offset] = 1 } == -Errno.EINVAL)
    }

    @Test("pointers outside user memory are EFAULT")
    func badPointer() {
        let h = Harness()
        #expect(h.engine.ioctl(number: KdbtCommand.version.number, argument: 0) == -Errno.EFAULT)
        #expect(h.engine.ioctl(number: KdbtCommand.version.number, argument: 0xffff_ffff_8100_0000) == -Errno.EFAULT)
        // The struct runs past the end of mapped memory.
        let offset = h.user.count - 16
        #expect(h.call(.version, size: VersionReply.sizeV1, offset: offset) == -Errno.EFAULT)
    }

    @Test("destroy releases every arena")
    func cleanup() {
        let world = InProcessWorld()
        let engine = Engine.create(host: InProcessHost(world: world))!
        #expect(world.liveAllocations == 1)
        engine.destroy()
        #expect(world.liveAllocations == 0)
        #expect(world.liveBytes == 0)
    }
}

@Suite("arena")
struct ArenaTests {
    @Test("allocations are aligned, bounded and never overlap")
    func bump() {
        let block = UnsafeMutableRawPointer.allocate(byteCount: 256, alignment: 16)
        defer { block.deallocate() }
        var arena = Arena(base: block, capacity: 256)
        let a = arena.allocate(bytes: 3, alignment: 1)!
        let b = arena.allocate(bytes: 8, alignment: 8)!
        #expect(a == block)
        #expect(b == block + 8)
        #expect(arena.allocate(bytes: 300, alignment: 1) == nil)
        #expect(arena.allocate(bytes: -1, alignment: 1) == nil)
        #expect(arena.allocate(bytes: 240, alignment: 16) == block + 16)
        #expect(arena.allocate(bytes: 1, alignment: 1) == nil)
        #expect(arena.used == 256)
    }
}

@Suite("read kernel text")
struct ReadTextTests {
    static let textAddress: UInt64 = 0xffff_ffff_8100_0ff0  // crosses a page boundary

    /// Issues READ_TEXT for `length` bytes at `address` into user memory at offset 512.
    func read(_ h: Harness, address: UInt64, length: UInt32, buffer: UInt64? = nil) -> (Int32, [UInt8], UInt32) {
        let target = buffer ?? h.address + 512
        let r = h.call(.readText, size: ReadTextRequest.sizeV1) { b in
            ReadTextRequest(address: address, buffer: target, length: length).encode(LayoutWriter(b))
        }
        let reply = ReadTextRequest(decoding: LayoutReader(UnsafeRawBufferPointer(h.user)))
        return (r, Array(h.user[512..<512 + Int(min(length, 1024))]), reply.bytesRead)
    }

    @Test("copies text across a page boundary")
    func copies() {
        let h = Harness()
        let text = (0..<64).map { UInt8($0 * 3 & 0xFF) }
        h.world.addKernelText(text, at: Self.textAddress)
        let (r, bytes, count) = read(h, address: Self.textAddress + 4, length: 40)
        #expect(r == 0)
        #expect(count == 40)
        #expect(Array(bytes[0..<40]) == Array(text[4..<44]))
    }

    @Test("text the kernel does not know, or a range running past it, is EFAULT")
    func unknownText() {
        let h = Harness()
        h.world.addKernelText([UInt8](repeating: 0x90, count: 16), at: Self.textAddress)
        #expect(read(h, address: 0x1000, length: 4).0 == -Errno.EFAULT)
        #expect(read(h, address: Self.textAddress + 8, length: 16).0 == -Errno.EFAULT)
        #expect(read(h, address: UInt64.max - 2, length: 16).0 == -Errno.EFAULT)
    }

    @Test("an unwritable user buffer is EFAULT")
    func badBuffer() {
        let h = Harness()
        h.world.addKernelText([UInt8](repeating: 0x90, count: 16), at: Self.textAddress)
        #expect(read(h, address: Self.textAddress, length: 16, buffer: 0x10).0 == -Errno.EFAULT)
        #expect(read(h, address: Self.textAddress, length: 16, buffer: UInt64.max - 4).0 == -Errno.EFAULT)
    }

    @Test("lengths outside 1 ... 64 KiB and non-zero reserved fields are EINVAL")
    func badLengths() {
        let h = Harness()
        #expect(read(h, address: Self.textAddress, length: 0).0 == -Errno.EINVAL)
        #expect(read(h, address: Self.textAddress, length: ReadTextRequest.maxLength + 1).0 == -Errno.EINVAL)
        let r = h.call(.readText, size: ReadTextRequest.sizeV1) { b in
            ReadTextRequest(address: Self.textAddress, buffer: h.address, length: 4).encode(LayoutWriter(b))
            b[40] = 1
        }
        #expect(r == -Errno.EINVAL)
    }
}
