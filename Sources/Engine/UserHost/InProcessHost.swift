// SPDX-License-Identifier: GPL-2.0-only
//
// A user-mode host for the Engine: "user memory" is this process's memory, limited
// to the regions a caller maps, so tests can drive the real ioctl dispatch, bad
// pointers included. Hosted build only.

#if !hasFeature(Embedded)

/// Shared state of an in-process host: mapped "user" regions and allocation counts.
public final class InProcessWorld: @unchecked Sendable {
    public internal(set) var liveAllocations: UInt64 = 0
    public internal(set) var liveBytes: UInt64 = 0
    var regions: [(start: UInt64, count: Int)] = []
    var kernelText: [(address: UInt64, bytes: [UInt8])] = []
    var arenaSizes: [UnsafeMutableRawPointer: Int] = [:]
    let loadedAt = ContinuousClock.now

    public init() {}

    /// Makes `buffer` readable and writable as "user memory".
    public func map(_ buffer: UnsafeMutableRawBufferPointer) {
        regions.append((UInt64(UInt(bitPattern: buffer.baseAddress)), buffer.count))
    }

    public func unmapAll() { regions.removeAll() }

    /// Pretends `bytes` are kernel text at `address` (for the read-text request).
    public func addKernelText(_ bytes: [UInt8], at address: UInt64) {
        kernelText.append((address, bytes))
    }

    func isMapped(_ address: UInt64, _ count: Int) -> Bool {
        regions.contains { r in
            address >= r.start && count >= 0 && address &+ UInt64(count) <= r.start &+ UInt64(r.count)
                && address &+ UInt64(count) >= address
        }
    }
}

public struct InProcessHost: EngineHost {
    public let world: InProcessWorld
    public var onlineCPUs: UInt32
    public var buildID: UInt64

    public init(world: InProcessWorld, onlineCPUs: UInt32 = 2, buildID: UInt64 = 0x6b64_6274_7465_7374) {
        self.world = world
        self.onlineCPUs = onlineCPUs
        self.buildID = buildID
    }

    private func pointer(_ address: UInt64) -> UnsafeMutableRawPointer {
        UnsafeMutableRawPointer(bitPattern: UInt(address))!
    }

    public func copyFromUser(_ destination: UnsafeMutableRawPointer, _ source: UInt64, _ count: Int) -> Bool {
        guard world.isMapped(source, count) else { return false }
        destination.copyMemory(from: pointer(source), byteCount: count)
        return true
    }

    public func copyToUser(_ destination: UInt64, _ source: UnsafeRawPointer, _ count: Int) -> Bool {
        guard world.isMapped(destination, count) else { return false }
        pointer(destination).copyMemory(from: source, byteCount: count)
        return true
    }

    public func checkZeroedUser(_ address: UInt64, _ count: Int) -> Int32 {
        guard world.isMapped(address, count) else { return -14 }  // EFAULT
        let bytes = UnsafeRawBufferPointer(start: pointer(address), count: count)
        return bytes.allSatisfy { $0 == 0 } ? 1 : 0
    }

    public func readKernelText(_ destination: UnsafeMutableRawPointer, _ address: UInt64, _ count: Int) -> Bool {
        for text in world.kernelText where address >= text.address {
            let offset = address - text.address
            guard offset <= UInt64(text.bytes.count), UInt64(count) <= UInt64(text.bytes.count) - offset else { continue }
            text.bytes.withUnsafeBytes { destination.copyMemory(from: $0.baseAddress! + Int(offset), byteCount: count) }
            return true
        }
        return false
    }

    public func allocateArena(bytes: Int) -> UnsafeMutableRawPointer? {
        guard bytes > 0 else { return nil }
        let block = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 16)
        block.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
        world.arenaSizes[block] = bytes
        world.liveAllocations += 1
        world.liveBytes += UInt64(bytes)
        return block
    }

    public func freeArena(_ block: UnsafeMutableRawPointer) {
        guard let bytes = world.arenaSizes.removeValue(forKey: block) else {
            fatalError("freeArena of a block this host did not allocate")
        }
        world.liveAllocations -= 1
        world.liveBytes -= UInt64(bytes)
        block.deallocate()
    }

    public var liveAllocations: UInt64 { world.liveAllocations }
    public var liveBytes: UInt64 { world.liveBytes }
    public var nanosecondsSinceLoad: UInt64 {
        let d = ContinuousClock.now - world.loadedAt
        return UInt64(d.components.seconds) * 1_000_000_000 + UInt64(d.components.attoseconds / 1_000_000_000)
    }
}

#endif
