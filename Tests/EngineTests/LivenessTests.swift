// SPDX-License-Identifier: GPL-2.0-only
//
// The instrumentation API's register liveness: an inline check spills a scratch
// register only when it is live, so a register called dead must really be
// overwritten before it is read.
import Testing
@testable import Engine

@Suite struct LivenessTests {
    /// Registers live before instruction `index` of the block decoded from `code`.
    /// `faultExits`: instructions whose faults continue at a fixup.
    func live(_ code: [UInt8], before index: Int = 0, faultExits: UInt64 = 0) -> UInt16 {
        let instructions = decode(code)
        let meta = UnsafeMutablePointer<MetaEntry>.allocate(capacity: 1)
        defer { meta.deallocate() }
        return instructions.withUnsafeBufferPointer { buffer in
            var block = InstrumentedBlock(startPC: 0x1000, instructions: buffer.baseAddress!, count: buffer.count,
                                          meta: meta, metaCapacity: 1, contextGSOffset: 0)
            block.faultExits[0] = faultExits
            return block.liveRegisters(before: index)
        }
    }

    /// The instructions of `code`, decoded at 0x1000.
    func decode(_ code: [UInt8]) -> [Instruction] {
        var instructions: [Instruction] = []
        var offset = 0
        while offset < code.count {
            var insn = Instruction()
            let status = code.withUnsafeBytes {
                Decoder.decode(bytes: UnsafeRawBufferPointer(rebasing: $0[offset...]), address: 0x1000 + UInt64(offset),
                               into: &insn)
            }
            #expect(status == .ok)
            instructions.append(insn)
            offset += Int(insn.length)
        }
        return instructions
    }

    let r10: UInt16 = 1 << 10

    /// The table one backward pass fills (`computeLiveness`) answers as the
    /// per-question passes do, before every instruction, for registers and flags,
    /// with side exits (their own live sets) and fault exits.
    @Test func theLivenessTableAgreesWithThePerQuestionPasses() {
        let code: [UInt8] = [
            0x48, 0x8B, 0x06,        // mov rax, [rsi]
            0x85, 0xC0,              // test eax, eax
            0x74, 0x06,              // jz +6 (side exit)
            0x41, 0xBA, 1, 0, 0, 0,  // mov r10d, 1
            0x4C, 0x01, 0xD1,        // add rcx, r10
            0x48, 0x31, 0xD2,        // xor rdx, rdx
            0x75, 0x02,              // jnz +2 (side exit)
            0x4D, 0x8B, 0x1B,        // mov r11, [r11]
            0xC3,                    // ret
        ]
        let instructions = decode(code)
        let meta = UnsafeMutablePointer<MetaEntry>.allocate(capacity: 1)
        defer { meta.deallocate() }
        for faults: UInt64 in [0, 0b100000] {
            instructions.withUnsafeBufferPointer { buffer in
                var block = InstrumentedBlock(startPC: 0x1000, instructions: buffer.baseAddress!, count: buffer.count,
                                              meta: meta, metaCapacity: 1, contextGSOffset: 0)
                block.faultExits[0] = faults
                block.registersLiveAtEnd = 0x0F0F
                block.flagsLiveAtEnd = 0
                block.sideExitRegisters[0] = r10
                block.sideExitRegisters[1] = 1 << 2
                block.sideExitFlags[0] = Flag.cf
                block.sideExitFlags[1] = 0
                var expected: [(UInt16, Bool)] = []
                for i in 0..<block.count { expected.append((block.liveRegisters(before: i), block.arithmeticFlagsDead(before: i))) }
                let firstDead = block.firstFlagsDeadPosition(from: 1)
                block.computeLiveness()
                #expect(block.livenessKnown)
                for i in 0..<block.count {
                    #expect(block.liveRegisters(before: i) == expected[i].0, "registers before \(i)")
                    #expect(block.arithmeticFlagsDead(before: i) == expected[i].1, "flags before \(i)")
                }
                #expect(block.firstFlagsDeadPosition(from: 1) == firstDead)
                #expect(expected.contains { $0.1 } && expected.contains { !$0.1 })  // both answers occur
            }
        }
    }

    @Test func fullWidthWriteKills() {
        #expect(live([0x41, 0xBA, 1, 0, 0, 0, 0xC3]) & r10 == 0)  // mov r10d, 1; ret
    }

    @Test func byteWriteKeepsTheRest() {
        #expect(live([0x41, 0xB2, 1, 0xC3]) & r10 != 0)  // mov r10b, 1; ret
    }

    @Test func cmovWritesOnlyWhenItsConditionHolds() {
        #expect(live([0x4C, 0x0F, 0x42, 0xD0, 0xC3]) & r10 != 0)  // cmovb r10, rax; ret
    }

    @Test func bsfAndBsrLeaveTheDestinationForAZeroSource() {
        #expect(live([0x4C, 0x0F, 0xBD, 0xD0, 0xC3]) & r10 != 0)  // bsr r10, rax
        #expect(live([0x4C, 0x0F, 0xBC, 0xD0, 0xC3]) & r10 != 0)  // bsf r10, rax
        #expect(live([0xF3, 0x4C, 0x0F, 0xBC, 0xD0, 0xC3]) & r10 == 0)  // tzcnt r10, rax always writes
    }

    @Test func readsBeforeTheKillKeepItLive() {
        // add rax, r10; mov r10d, 1; ret: live before the add, dead before the mov.
        let code: [UInt8] = [0x4C, 0x01, 0xD0, 0x41, 0xBA, 1, 0, 0, 0, 0xC3]
        #expect(live(code, before: 0) & r10 != 0)
        #expect(live(code, before: 1) & r10 == 0)
    }

    @Test func aFixupKeepsEverythingLive() {
        // mov rax, [rsi]; mov r10d, 1; ret: r10 is dead before the load, unless a
        // fault of the load goes to a fixup (which may still read r10); then even
        // the load's own destination is live (the fixup sees its old value).
        let code: [UInt8] = [0x48, 0x8B, 0x06, 0x41, 0xBA, 1, 0, 0, 0, 0xC3]
        #expect(live(code, before: 0) & r10 == 0)
        #expect(live(code, before: 0) & 1 == 0)
        #expect(live(code, before: 0, faultExits: 1) == 0xFFFF)
        #expect(live(code, before: 1, faultExits: 1) & r10 == 0)  // after the load: its fault is behind
    }
}
