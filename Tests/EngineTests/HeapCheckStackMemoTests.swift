// SPDX-License-Identifier: GPL-2.0-only
//
// heapcheck's memo of whole stacks: a stack from the same place is taken from
// the memo only while every stack word its walk read (and bp, when the walk used
// it) holds the same value; any change walks again.

@testable import Engine
import Protocol
import Testing

/// The stand-in walker's world (a @convention(c) host function captures nothing).
nonisolated(unsafe) private var walks = 0
nonisolated(unsafe) private var walkUsesBP = false
nonisolated(unsafe) private var walkKnowsReads = true

@Suite("heapcheck stack memo", .serialized)
struct HeapCheckStackMemoTests {
    /// A walker over a fake stack: frame k (k >= 1) is the word at sp + 8(k-1),
    /// for three frames; it reports each word it read, and bp when it "used" it.
    static let walk: @convention(c) (UInt64, UInt64, UInt64, UnsafeMutablePointer<UInt64>, Int32,
                                     UnsafeMutablePointer<UInt64>?, UnsafeMutablePointer<Int32>?) -> Int32 = {
        pc, sp, bp, frames, capacity, reads, count in
        walks += 1
        let depth = min(Int(capacity), 4)
        var n: Int32 = 0
        frames[0] = pc &+ (walkUsesBP ? bp : 0)
        if walkUsesBP {
            reads?[Int(n)] = StackMemoEntry.bpRegister
            n += 1
        }
        for k in 1..<depth {
            let address = sp &+ UInt64(8 * (k - 1))
            frames[k] = UnsafePointer<UInt64>(bitPattern: UInt(address))!.pointee
            reads?[Int(n)] = address
            n += 1
        }
        count?.pointee = walkKnowsReads ? n : -1
        return Int32(depth)
    }

    final class Fixture {
        let arena: UnsafeMutableRawPointer
        let table: UnsafeMutablePointer<UInt64>
        let ringMemory: UnsafeMutableRawPointer
        let ring: UnsafeMutablePointer<FindingsRing>
        let stack: UnsafeMutablePointer<UInt64>
        let state: UnsafeMutablePointer<HeapCheckState>
        var sp: UInt64 { UInt64(UInt(bitPattern: stack)) }

        init() {
            var limits = HeapCheckLimits()
            limits.objects = 64
            limits.quarantineEntries = 64
            limits.shadowChunks = 4
            limits.stacks = 64
            limits.stackMemoCPUs = 2
            limits.stackMemoEntries = 16
            let bytes = HeapCheck.arenaBytes(limits, pages: 1)
            arena = .allocate(byteCount: bytes, alignment: 64)
            table = .allocate(capacity: 1)
            ringMemory = .allocate(byteCount: FindingsRing.bytes(capacity: 8), alignment: 8)
            ring = .allocate(capacity: 1)
            ring.initialize(to: FindingsRing(memory: ringMemory, capacity: 8, lock: {}, unlock: {}))
            stack = .allocate(capacity: 8)
            stack.initialize(from: [0x1111, 0x2222, 0x3333, 0, 0, 0, 0, 0], count: 8)
            let host = HeapCheckHostFunctions(
                captureStack: HeapCheckStackMemoTests.walk, currentTask: { _, _ in 0 }, release: { _, _ in },
                describeCache: { _, _, _ in 0 }, lock: {}, unlock: {}, now: { 0 })
            var a = Arena(base: arena, capacity: bytes)
            state = HeapCheck.create(in: &a, host: host, limits: limits, directMapBase: 0x10_0000, pages: 1,
                                     pageTable: table, redzone: 16, quarantineLimit: 1 << 20, findings: ring)!
            walks = 0
            walkUsesBP = false
            walkKnowsReads = true
        }

        deinit {
            arena.deallocate()
            table.deallocate()
            ringMemory.deallocate()
            ring.deallocate()
            stack.deallocate()
        }

        func capture(pc: UInt64 = 0x4000, bp: UInt64 = 0, cpu: UInt32 = 0, returnAddress: UInt64 = 0) -> UInt32 {
            HeapCheck.captureStack(state, pc: pc, sp: sp, bp: bp, returnAddress: returnAddress, cpu: cpu)
        }
    }

    @Test func theSameWordsGiveTheRememberedStack() {
        let f = Fixture()
        let first = f.capture()
        #expect(first != 0 && walks == 1)
        #expect(f.capture() == first)
        #expect(walks == 1 && f.state.pointee.statistics.stackMemoHits == 1)
        // Another start (pc, return address) is another entry.
        #expect(f.capture(pc: 0x5000) != first)
        #expect(f.capture(returnAddress: 0x6000) != first)
        #expect(walks == 3)
    }

    @Test func aChangedWordWalksAgain() {
        let f = Fixture()
        let first = f.capture()
        f.stack[1] = 0x2223
        let second = f.capture()
        #expect(walks == 2 && second != first)
        #expect(f.capture() == second && walks == 2)  // remembered anew
        f.stack[1] = 0x2222
        #expect(f.capture() == first && walks == 2)  // several ways: both remembered
        // Variants beyond the ways replace the oldest, round robin.
        var handles: [UInt32] = [first, second]
        for k in 2...StackMemoEntry.ways {
            f.stack[1] = 0x2222 + UInt64(k)
            handles.append(f.capture())
        }
        #expect(walks == StackMemoEntry.ways + 1)
        f.stack[1] = 0x2222
        #expect(f.capture() == first && walks == StackMemoEntry.ways + 2)  // the first went; the depot still has it
        f.stack[1] = 0x2222 + UInt64(StackMemoEntry.ways)
        #expect(f.capture() == handles[StackMemoEntry.ways] && walks == StackMemoEntry.ways + 2)  // the newest stays
    }

    @Test func bpCountsOnlyWhenTheWalkUsedIt() {
        let f = Fixture()
        let first = f.capture(bp: 1)
        #expect(f.capture(bp: 2) == first && walks == 1)  // not read: any bp
        walkUsesBP = true
        let withBP = f.capture(pc: 0x7000, bp: 1)
        #expect(f.capture(pc: 0x7000, bp: 1) == withBP && walks == 2)
        #expect(f.capture(pc: 0x7000, bp: 2) != withBP && walks == 3)
    }

    @Test func unknownReadsAndCPUsWithoutATableAlwaysWalk() {
        let f = Fixture()
        walkKnowsReads = false
        #expect(f.capture() == f.capture())
        #expect(walks == 2)
        walkKnowsReads = true
        #expect(f.capture(cpu: 2) == f.capture(cpu: 2))  // two tables: CPUs 0 and 1
        #expect(walks == 4 && f.state.pointee.statistics.stackMemoHits == 0)
    }
}
