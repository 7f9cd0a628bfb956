// SPDX-License-Identifier: GPL-2.0-only
//
// heapcheck's precise check (the slow path and rep strings) over a stand-in
// direct map in this process, with the flat shadow and with chunks: the first bad
// byte of a range is the one reported, wherever the scan finds it (32 granules at
// a time, then 8, then one), partial granules and page ends included.

@testable import Engine
import Protocol
import Testing

/// What the stand-in allocator got back from the quarantine: (cache, pointer).
nonisolated(unsafe) private var releasedObjects: [(UInt64, UInt64)] = []

@Suite("heapcheck shadow", .serialized)
struct HeapCheckShadowTests {
    static let pages = 4

    /// A heapcheck state over `pages` pages of this process's memory, and what to
    /// free afterwards.
    final class Fixture {
        let memory: UnsafeMutableRawPointer
        let table: UnsafeMutablePointer<UInt64>
        let flat: UnsafeMutablePointer<UInt8>?
        let arena: UnsafeMutableRawPointer
        let ringMemory: UnsafeMutableRawPointer
        let ring: UnsafeMutablePointer<FindingsRing>
        let context: UnsafeMutableRawPointer
        let state: UnsafeMutablePointer<HeapCheckState>
        var base: UInt64 { UInt64(UInt(bitPattern: memory)) }

        init(flatShadow: Bool) {
            memory = .allocate(byteCount: HeapCheckShadowTests.pages * 4096, alignment: 4096)
            let pages = UInt64(HeapCheckShadowTests.pages)
            table = .allocate(capacity: HeapCheckShadowTests.pages)
            flat = flatShadow ? .allocate(capacity: FlatShadow.bytes(pages: pages)) : nil
            flat?.initialize(repeating: 0, count: FlatShadow.bytes(pages: pages))
            var limits = HeapCheckLimits()
            limits.objects = 64
            limits.quarantineEntries = 64
            limits.shadowChunks = flatShadow ? 0 : 8
            limits.stacks = 16
            let bytes = HeapCheck.arenaBytes(limits, pages: pages)
            arena = .allocate(byteCount: bytes, alignment: 64)
            ringMemory = .allocate(byteCount: FindingsRing.bytes(capacity: 8), alignment: 8)
            ring = .allocate(capacity: 1)
            ring.initialize(to: FindingsRing(memory: ringMemory, capacity: 8, lock: {}, unlock: {}))
            context = .allocate(byteCount: 0x400, alignment: 64)
            context.initializeMemory(as: UInt8.self, repeating: 0, count: 0x400)
            let host = HeapCheckHostFunctions(
                captureStack: { _, _, _, _, _, _, count in
                    count?.pointee = -1  // no stack words known: never memoized
                    return 0
                },
                currentTask: { _, _ in 0 },
                release: { cache, pointer in releasedObjects.append((cache, pointer)) },
                describeCache: { _, _, _ in 0 }, lock: {}, unlock: {}, now: { 0 })
            var a = Arena(base: arena, capacity: bytes)
            state = HeapCheck.create(in: &a, host: host, limits: limits, directMapBase: UInt64(UInt(bitPattern: memory)),
                                     pages: pages, pageTable: table, flatShadow: flat, redzone: 16,
                                     quarantineLimit: 1 << 20, findings: ring)!
        }

        deinit {
            memory.deallocate()
            table.deallocate()
            flat?.deallocate()
            arena.deallocate()
            ringMemory.deallocate()
            ring.deallocate()
            context.deallocate()
        }

        /// Shadow for `page`, `value` over [offset, offset + bytes) of it.
        func poison(page: Int, offset: Int, bytes: Int, _ value: UInt8) {
            let start = base + UInt64(page * 4096 + offset)
            #expect(HeapCheck.ensureShadow(state, start, UInt64(bytes), kind: ShadowPageKind.shared))
            HeapCheck.fill(state, start, UInt64(bytes), value)
        }

        /// The address the check of [offset, offset + size) reports, as an offset
        /// into the stand-in direct map; nil when it reports nothing.
        func firstBad(offset: Int, size: Int) -> Int? {
            let before = ring.pointee.count
            HeapCheck.check(state, context, pc: 0x1000 + UInt64(offset), address: base + UInt64(offset),
                            size: UInt64(size), write: true)
            guard ring.pointee.count > before else { return nil }
            let record = UnsafeMutableRawPointer.allocate(byteCount: FindingLayout.recordBytes, alignment: 8)
            defer { record.deallocate() }
            let copied = ring.pointee.copy(ring.pointee.count - 1, to: record)
            #expect(copied)
            let address = record.load(fromByteOffset: FindingLayout.Offset.address, as: UInt64.self)
            return Int(address - base)
        }
    }

    @Test("the first bad byte of long ranges, in every scanning step, both layouts", arguments: [true, false])
    func longRanges(flat: Bool) {
        let f = Fixture(flatShadow: flat)
        f.poison(page: 1, offset: 0, bytes: 4096, 0)  // shadow, all clean
        #expect(f.firstBad(offset: 4096, size: 4096) == nil)
        // A freed granule deep in page 1 (at 4096 + 3000 = 7096): found by the
        // 32-granule step, then by the 8-granule and single steps near the end.
        f.poison(page: 1, offset: 3000, bytes: 8, ShadowByte.slabFree)
        #expect(f.firstBad(offset: 4096 + 8, size: 4000) == 7096)
        #expect(f.firstBad(offset: 4096 + 2900, size: 140) == 7096)
        #expect(f.firstBad(offset: 4096 + 2990, size: 14) == 7096)
        #expect(f.firstBad(offset: 4096 + 2990, size: 10) == nil)  // ends before it
        // From page 0 (no shadow) into page 1.
        #expect(f.firstBad(offset: 2048, size: 5000) == nil)
        #expect(f.firstBad(offset: 2048, size: 5100) == 7096)
    }

    @Test("fill sets exactly the granules of its range, short or long, across pages, both layouts",
          arguments: [true, false])
    func fillSetsItsRangeOnly(flat: Bool) {
        let f = Fixture(flatShadow: flat)
        f.poison(page: 1, offset: 0, bytes: 3 * 4096, 0)
        // Every length up to past the stores' limit (64 shadow bytes), some long
        // ones, from starts inside a page and a few granules before its end.
        let lengths = Array(1...70) + [100, 512, 600]
        for start in [4096, 4096 + 8, 4096 + 24, 2 * 4096 - 16] {
            for granules in lengths {
                HeapCheck.fill(f.state, f.base + UInt64(start), UInt64(granules * 8), ShadowByte.slabFree)
                var wrong = 0
                for granule in (4096 / 8)..<(4 * 4096 / 8) {
                    let inside = granule * 8 >= start && granule * 8 < start + granules * 8
                    let byte = HeapCheck.shadowByte(f.state, f.base + UInt64(granule * 8))
                    if byte != (inside ? ShadowByte.slabFree : 0) { wrong += 1 }
                }
                #expect(wrong == 0, "start \(start), \(granules) granules")
                HeapCheck.fill(f.state, f.base + UInt64(start), UInt64(granules * 8), 0)
            }
        }
    }

    @Test("frees go to the quarantine, which gives the oldest back past its limit; double and invalid frees stay",
          arguments: [true, false])
    func quarantine(flat: Bool) {
        let f = Fixture(flatShadow: flat)
        releasedObjects = []
        f.state.pointee.quarantineLimit = 100
        let stack = UnsafeMutablePointer<UInt64>.allocate(capacity: 4)
        defer { stack.deallocate() }
        stack.initialize(repeating: 0x3000, count: 4)
        var call = WrapCall(context: f.context, function: 0x1000, returnAddress: 0x2000,
                            entryStackPointer: UInt64(UInt(bitPattern: stack)), userData: 0)
        let cache: UInt64 = 0xCAC4E
        let objects = (0..<3).map { f.base + 4096 + UInt64($0 * 64) }
        for o in objects {
            HeapCheck.track(f.state, &call, start: o, size: 40, origin: HeapObject.fromNamedCache, sizeClass: 0,
                            cache: cache, slot: 48)
        }
        #expect(f.state.pointee.objectCount == 3)
        #expect(HeapCheck.free(f.state, &call, pointer: objects[0]))
        #expect(HeapCheck.free(f.state, &call, pointer: objects[1]))
        #expect(releasedObjects.isEmpty)
        #expect(HeapCheck.shadowByte(f.state, objects[0]) == ShadowByte.slabFree)
        // 120 quarantined bytes: over 100, so the oldest goes back, its shadow
        // "unknown" again.
        #expect(HeapCheck.free(f.state, &call, pointer: objects[2]))
        #expect(releasedObjects.count == 1 && releasedObjects.first! == (cache, objects[0]))
        #expect(HeapCheck.shadowByte(f.state, objects[0]) == 0)
        #expect(HeapCheck.shadowByte(f.state, objects[1]) == ShadowByte.slabFree)
        #expect(f.state.pointee.objectCount == 2)
        // A second free is reported and kept from the allocator; a pointer never
        // tracked is the allocator's.
        let findings = f.ring.pointee.count
        #expect(HeapCheck.free(f.state, &call, pointer: objects[1]))
        #expect(f.ring.pointee.count == findings + 1)
        #expect(!HeapCheck.free(f.state, &call, pointer: f.base + 3 * 4096))
        #expect(releasedObjects.count == 1)
        HeapCheck.releaseAll(f.state)
        #expect(releasedObjects.map { $0.1 } == [objects[0], objects[1], objects[2]])
        #expect(f.state.pointee.objectCount == 0 && f.state.pointee.quarantineCount == 0)
    }

    @Test("a partial granule: the accessible bytes pass, the next one is bad", arguments: [true, false])
    func partialGranule(flat: Bool) {
        let f = Fixture(flatShadow: flat)
        f.poison(page: 2, offset: 0, bytes: 64, 0)
        f.poison(page: 2, offset: 40, bytes: 8, 5)  // bytes 40..44 accessible
        f.poison(page: 2, offset: 48, bytes: 16, ShadowByte.slabRedzone)
        let object = 2 * 4096
        #expect(f.firstBad(offset: object, size: 45) == nil)
        #expect(f.firstBad(offset: object + 44, size: 1) == nil)
        #expect(f.firstBad(offset: object, size: 46) == object + 45)
        #expect(f.firstBad(offset: object + 45, size: 2) == object + 45)
        #expect(f.firstBad(offset: object + 8, size: 56) == object + 45)
    }
}
