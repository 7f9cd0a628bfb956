// SPDX-License-Identifier: GPL-2.0-only
//
// stackguard's placement: one inline check per run of stack-pointer moves with
// known amounts, checking the deepest point it reaches and 8 bytes below (a
// return address), from wherever in the run the check costs least (flags dead,
// a register dead to borrow; the latest such). Calls from a function with a
// frame need no check of their own.
import Testing
import UserHost
@testable import Engine

/// What the test host's ORC says: the frame at each code address (-1: unknown).
nonisolated(unsafe) var frameBytesForTests: Int32 = -1

@Suite(.serialized) struct StackGuardPlacementTests {
    /// The checks stackguard inserts into the block decoded from `code`:
    /// (position, displacement from rsp there).
    func checks(_ code: [UInt8], at base: UInt64 = 0x1000, instructions limit: Int = .max,
                translator: UnsafeMutablePointer<TranslatorState>? = nil) -> [(Int, Int32)] {
        var instructions: [Instruction] = []
        var offset = 0
        while offset < code.count && instructions.count < limit {
            var insn = Instruction()
            let status = code.withUnsafeBytes {
                Decoder.decode(bytes: UnsafeRawBufferPointer(rebasing: $0[offset...]), address: base + UInt64(offset),
                               into: &insn)
            }
            #expect(status == .ok)
            instructions.append(insn)
            offset += Int(insn.length)
        }
        let host = StackGuardHostFunctions(
            classify: { _, _, _ in 0 }, captureFrames: { _, _, _, _, _, _ in 0 }, currentTask: { _, _ in 0 }, now: { 0 },
            frameBytes: { _ in frameBytesForTests })
        let state = UnsafeMutablePointer<StackGuardState>.allocate(capacity: 1)
        let ring = UnsafeMutablePointer<FindingsRing>.allocate(capacity: 1)
        state.initialize(to: StackGuardState(host: host, threshold: 1024, findings: ring, highWater: .allocate(capacity: 1), cpus: 1))
        let meta = UnsafeMutablePointer<MetaEntry>.allocate(capacity: 16)
        defer { meta.deallocate(); state.deallocate(); ring.deallocate() }
        return instructions.withUnsafeBufferPointer { buffer in
            var block = InstrumentedBlock(startPC: 0x1000, instructions: buffer.baseAddress!, count: buffer.count,
                                          meta: meta, metaCapacity: 16, contextGSOffset: 0)
            block.phase = .insertion
            block.translator = translator
            withUnsafeMutablePointer(to: &block) { StackGuard.onBlock(state, UnsafeMutableRawPointer($0), 2) }
            return (0..<block.metaCount).map { m -> (Int, Int32) in
                guard case .inlineCheck(let check) = block.meta[m].instruction else { return (-1, 0) }
                return (block.meta[m].before, check.memory.displacement)
            }
        }
    }

    @Test func aPrologueAndItsCallAreOneCheck() {
        // push rbp; push rbx; sub rsp, 0x20; mov rax, rdi; call +0: before the sub
        // the flags are dead (the sub writes them) and so is rax; after it they
        // are live up to the call.
        let c = checks([0x55, 0x53, 0x48, 0x83, 0xEC, 0x20, 0x48, 0x89, 0xF8, 0xE8, 0, 0, 0, 0])
        #expect(c.count == 1)
        #expect(c.first?.0 == 2 && c.first?.1 == -0x30)
    }

    @Test func theCheckFollowsThePrologueWhereItsRegistersAreFree() {
        // push rbp; push rbx; sub rsp, 0x20; mov rbx, rdi; test eax, eax; ret:
        // right after the sub, rbx is dead and the test overwrites the flags.
        let c = checks([0x55, 0x53, 0x48, 0x83, 0xEC, 0x20, 0x48, 0x89, 0xFB, 0x85, 0xC0, 0xC3])
        #expect(c.count == 1 && c.first! == (3, -8))
    }

    @Test func popsDoNotHideTheDeepestPoint() {
        // push rax; push rbx; pop rbx; pop rax; push rcx; ret
        let c = checks([0x50, 0x53, 0x5B, 0x58, 0x51, 0xC3])
        #expect(c.count == 1)
        #expect(c.first?.0 == 2 && c.first?.1 == -8)  // rbx is dead before its pop
    }

    @Test func addAndSubWorkEitherWay() {
        // add rsp, -0x10; ret: a descent
        let c = checks([0x48, 0x83, 0xC4, 0xF0, 0xC3])
        #expect(c.count == 1 && c.first! == (0, -24))
        // push rax; sub rsp, -8; push rax; ret: the sub gives the push's room back
        let d = checks([0x50, 0x48, 0x83, 0xEC, 0xF8, 0x50, 0xC3])
        #expect(d.count == 1 && d.first! == (1, -8))
    }

    @Test func anUnknownWriteOfRspEndsARun() {
        // push rax; mov rsp, rbx; push rax; ret
        let c = checks([0x50, 0x48, 0x89, 0xDC, 0x50, 0xC3])
        #expect(c.count == 2)
        #expect(c.count == 2 && c[0] == (1, -8) && c[1] == (3, -8))
    }

    @Test func aSideExitEndsARun() {
        // push rax; jz +0; push rbx; ret
        let c = checks([0x50, 0x74, 0x00, 0x53, 0xC3])
        #expect(c.count == 2)
        #expect(c.count == 2 && c[0] == (1, -8) && c[1] == (3, -8))
    }

    /// `mov rax, rdi; call +3; int3 x3; ` then a callee: the call's own check
    /// goes only when the callee does not go deeper at once.
    func callChecks(callee: [UInt8]) -> [(Int, Int32)] {
        let runner = InProcessRunner()
        let code: [UInt8] = [0x48, 0x89, 0xF8, 0xE8, 3, 0, 0, 0, 0xCC, 0xCC, 0xCC] + callee + [UInt8](repeating: 0xCC, count: 16)
        return code.withUnsafeBufferPointer { buffer in
            checks(code, at: UInt64(UInt(bitPattern: buffer.baseAddress!)), instructions: 2,
                   translator: runner.translator.state)
        }
    }

    @Test func aCallIntoAPrologueLeavesTheCheckToIt() {
        #expect(callChecks(callee: [0xF3, 0x0F, 0x1E, 0xFA, 0x55, 0xC3]).isEmpty)  // endbr64; push rbp; ret
        #expect(callChecks(callee: [0x48, 0x83, 0xEC, 0x18, 0xC3]).isEmpty)  // sub rsp, 0x18; ret
    }

    @Test func aCallIntoALeafKeepsItsCheck() {
        let leaf = callChecks(callee: [0xB8, 1, 0, 0, 0, 0xC3])  // mov eax, 1; ret
        #expect(leaf.count == 1 && leaf.first! == (1, -16))
        let branchy = callChecks(callee: [0x85, 0xFF, 0x74, 0x01, 0x55, 0xC3])  // test edi, edi; jz; push rbp
        #expect(branchy.count == 1 && branchy.first! == (1, -16))
        // Without a translator to read the callee with, the check stays.
        let unknown = checks([0x48, 0x89, 0xF8, 0xE8, 0, 0, 0, 0])
        #expect(unknown.count == 1 && unknown.first! == (1, -16))
    }

    @Test func aCallFromAFunctionWithAFrameNeedsNoCheck() {
        // mov rax, rdi; call +0, where ORC says the function has pushed 16 bytes:
        // its deepest check had room for this return address.
        frameBytesForTests = 16
        defer { frameBytesForTests = -1 }
        #expect(checks([0x48, 0x89, 0xF8, 0xE8, 0, 0, 0, 0]).isEmpty)
        // Frameless there (only the return address on the stack): checked.
        frameBytesForTests = 0
        #expect(checks([0x48, 0x89, 0xF8, 0xE8, 0, 0, 0, 0]).count == 1)
    }
}
