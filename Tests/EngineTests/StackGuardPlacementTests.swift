// SPDX-License-Identifier: GPL-2.0-only
//
// stackguard's placement: one inline check per run of stack-pointer moves with
// known amounts, before the run's first descent, at the deepest point it reaches.
import Testing
@testable import Engine

@Suite struct StackGuardPlacementTests {
    /// The checks stackguard inserts into the block decoded from `code`:
    /// (position, displacement from rsp there).
    func checks(_ code: [UInt8]) -> [(Int, Int32)] {
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
        let host = StackGuardHostFunctions(
            classify: { _, _, _ in 0 }, captureFrames: { _, _, _, _, _, _ in 0 }, currentTask: { _, _ in 0 }, now: { 0 })
        let state = UnsafeMutablePointer<StackGuardState>.allocate(capacity: 1)
        let ring = UnsafeMutablePointer<FindingsRing>.allocate(capacity: 1)
        state.initialize(to: StackGuardState(host: host, threshold: 1024, findings: ring, highWater: .allocate(capacity: 1), cpus: 1))
        let meta = UnsafeMutablePointer<MetaEntry>.allocate(capacity: 16)
        defer { meta.deallocate(); state.deallocate(); ring.deallocate() }
        return instructions.withUnsafeBufferPointer { buffer in
            var block = InstrumentedBlock(startPC: 0x1000, instructions: buffer.baseAddress!, count: buffer.count,
                                          meta: meta, metaCapacity: 16, contextGSOffset: 0)
            block.phase = .insertion
            withUnsafeMutablePointer(to: &block) { StackGuard.onBlock(state, UnsafeMutableRawPointer($0), 2) }
            return (0..<block.metaCount).map { m -> (Int, Int32) in
                guard case .inlineCheck(let check) = block.meta[m].instruction else { return (-1, 0) }
                return (block.meta[m].before, check.memory.displacement)
            }
        }
    }

    @Test func aPrologueAndItsCallAreOneCheck() {
        // push rbp; push rbx; sub rsp, 0x20; mov rax, rdi; call +0
        let c = checks([0x55, 0x53, 0x48, 0x83, 0xEC, 0x20, 0x48, 0x89, 0xF8, 0xE8, 0, 0, 0, 0])
        #expect(c.count == 1)
        #expect(c.first?.0 == 0 && c.first?.1 == -0x38)
    }

    @Test func popsDoNotHideTheDeepestPoint() {
        // push rax; push rbx; pop rbx; pop rax; push rcx; ret
        let c = checks([0x50, 0x53, 0x5B, 0x58, 0x51, 0xC3])
        #expect(c.count == 1)
        #expect(c.first?.0 == 0 && c.first?.1 == -16)
    }

    @Test func anUnknownWriteOfRspEndsARun() {
        // push rax; mov rsp, rbx; push rax; ret
        let c = checks([0x50, 0x48, 0x89, 0xDC, 0x50, 0xC3])
        #expect(c.count == 2)
        #expect(c.count == 2 && c[0] == (0, -8) && c[1] == (2, -8))
    }

    @Test func aSideExitEndsARun() {
        // push rax; jz +0; push rbx; ret
        let c = checks([0x50, 0x74, 0x00, 0x53, 0xC3])
        #expect(c.count == 2)
        #expect(c.count == 2 && c[0] == (0, -8) && c[1] == (2, -8))
    }
}
