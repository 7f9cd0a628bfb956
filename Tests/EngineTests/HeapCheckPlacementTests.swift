// SPDX-License-Identifier: GPL-2.0-only
//
// heapcheck's placement decisions that need no kernel: which accesses an earlier
// check in the block already covers, and the rep-string argument that spares the
// check a decode.

@testable import Engine
import Testing

@Suite("heapcheck placement")
struct HeapCheckPlacementTests {
    func at(_ base: GPR, _ disp: Int32, index: GPR? = nil) -> AsmMemory {
        AsmMemory(base: .register(base), index: index, scale: index == nil ? 1 : 8, displacement: disp)
    }

    @Test("an access inside an earlier checked range through the same registers is covered")
    func covered() {
        var c = CoveredAccesses()
        c.add(at(.rdi, 0x10), size: 8)
        #expect(c.contains(at(.rdi, 0x10), size: 8))
        #expect(c.contains(at(.rdi, 0x14), size: 4))
        #expect(!c.contains(at(.rdi, 0x14), size: 8))  // runs past the checked bytes
        #expect(!c.contains(at(.rdi, 0x08), size: 8))
        #expect(!c.contains(at(.rsi, 0x10), size: 8))  // another base
        #expect(!c.contains(at(.rdi, 0x10, index: .rax), size: 8))  // another index
    }

    @Test("writing a base or index register forgets what was checked through it")
    func forgotten() {
        var c = CoveredAccesses()
        c.add(at(.rdi, 0), size: 8)
        c.add(at(.rsi, 0, index: .rcx), size: 8)
        c.forget(written: 1 << UInt16(GPR.rax.rawValue))
        #expect(c.contains(at(.rdi, 0), size: 8) && c.contains(at(.rsi, 0, index: .rcx), size: 8))
        c.forget(written: 1 << UInt16(GPR.rcx.rawValue))
        #expect(c.contains(at(.rdi, 0), size: 8))
        #expect(!c.contains(at(.rsi, 0, index: .rcx), size: 8))
        c.forget(written: 1 << UInt16(GPR.rdi.rawValue))
        #expect(!c.contains(at(.rdi, 0), size: 8))
    }

    @Test("more accesses than slots: the newest replaces the last slot, nothing wrong is claimed")
    func full() {
        var c = CoveredAccesses()
        for k in 0..<12 { c.add(at(.rbx, Int32(k * 16)), size: 8) }
        #expect(c.contains(at(.rbx, 11 * 16), size: 8))
        #expect(!c.contains(at(.rbx, 8), size: 8))
    }

    @Test("a kernel rep string travels packed in the argument; other PCs travel as they are")
    func repStringArgument() throws {
        var insn = Instruction()
        let bytes: [UInt8] = [0xF3, 0x48, 0xAB]  // rep stosq
        let status = bytes.withUnsafeBytes {
            Decoder.decode(bytes: $0, address: 0xFFFF_FFFF_8123_4567, into: &insn)
        }
        #expect(status == .ok)
        guard case .constant(let packed) = RepString.argument(insn) else {
            Issue.record("a kernel PC is packed")
            return
        }
        let translator = Translator(state: UnsafeMutablePointer(bitPattern: 8)!)  // not read for packed arguments
        let op = try #require(RepString(argument: packed, translator))
        #expect(op.kind == .store && op.elementSize == 8 && op.pc == 0xFFFF_FFFF_8123_4567)

        let user = bytes.withUnsafeBytes { Decoder.decode(bytes: $0, address: 0x5555_5555_1000, into: &insn) }
        #expect(user == .ok)
        #expect(RepString.argument(insn) == .applicationPC)
    }
}
