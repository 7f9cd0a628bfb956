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

    /// The register a decoded instruction loads with the running task (current_task
    /// at %gs:0x1fb80 here), or nil.
    func loadsCurrent(_ bytes: [UInt8], slot: Int64 = 0x1FB80) -> GPR? {
        var insn = Instruction()
        let status = bytes.withUnsafeBytes { Decoder.decode(bytes: $0, address: 0x1000, into: &insn) }
        #expect(status == .ok)
        var operands = Operands()
        Decoder.decodeOperands(insn, into: &operands)
        return HeapCheck.loadsCurrentTask(insn, operands, slot: slot)
    }

    @Test("mov r64, %gs:current_task loads the running task; other loads do not")
    func currentTask() {
        #expect(loadsCurrent([0x65, 0x48, 0x8B, 0x04, 0x25, 0x80, 0xFB, 0x01, 0x00]) == .rax)
        #expect(loadsCurrent([0x65, 0x4C, 0x8B, 0x24, 0x25, 0x80, 0xFB, 0x01, 0x00]) == .r12)
        #expect(loadsCurrent([0x65, 0x48, 0x8B, 0x04, 0x25, 0x80, 0xFB, 0x01, 0x00], slot: -1) == nil)  // unknown slot
        #expect(loadsCurrent([0x65, 0x48, 0x8B, 0x04, 0x25, 0x88, 0xFB, 0x01, 0x00]) == nil)  // another per-CPU word
        #expect(loadsCurrent([0x65, 0x8B, 0x04, 0x25, 0x80, 0xFB, 0x01, 0x00]) == nil)  // 32 bits
        #expect(loadsCurrent([0x48, 0x8B, 0x04, 0x25, 0x80, 0xFB, 0x01, 0x00]) == nil)  // not %gs:
        #expect(loadsCurrent([0x65, 0x48, 0x8B, 0x80, 0x80, 0xFB, 0x01, 0x00]) == nil)  // %gs:0x1fb80(%rax)
        #expect(loadsCurrent([0x65, 0x48, 0x03, 0x04, 0x25, 0x80, 0xFB, 0x01, 0x00]) == nil)  // add, not mov
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

    @Test("accesses through the same registers within 16 bytes join; others, and written registers, do not")
    func joining() {
        var j = JoinableChecks()
        j.add(at(.rdi, 0x10), size: 8, at: 0, pc: 0xFFFF_FFFF_8100_0000, entry: 3)
        #expect(j.joinable(at(.rdi, 0x18), size: 8, at: 1) == 0)  // [0x10, 0x20): 16 bytes
        #expect(j.joinable(at(.rdi, 0x19), size: 8, at: 1) == nil)  // 17 bytes
        #expect(j.joinable(at(.rdi, 0x08), size: 8, at: 1) == 0)  // [0x08, 0x18)
        #expect(j.joinable(at(.rsi, 0x18), size: 8, at: 1) == nil)  // another base
        #expect(j.joinable(at(.rdi, 0x18, index: .rax), size: 8, at: 1) == nil)  // an index
        let e = j.join(0, at(.rdi, 0x08), size: 8)
        #expect(e.low == 0x08 && e.high == 0x18 && e.entry == 3 && e.displacement == 0x10)
        // Now [0x08, 0x18): 0x18 + 8 would make 24 bytes.
        #expect(j.joinable(at(.rdi, 0x18), size: 8, at: 3) == nil)
        j.forget(written: 1 << UInt16(GPR.rsi.rawValue))
        #expect(j.joinable(at(.rdi, 0x10), size: 4, at: 3) == 0)
        j.forget(written: 1 << UInt16(GPR.rdi.rawValue))
        #expect(j.joinable(at(.rdi, 0x10), size: 4, at: 3) == nil)
        // Displacements 4 GiB apart through one register: no join (and no overflow).
        j.add(at(.rdx, Int32.min + 100), size: 8, at: 4, pc: 0xFFFF_FFFF_8100_0008, entry: 4)
        #expect(j.joinable(at(.rdx, Int32.max - 100), size: 8, at: 5) == nil)
        j.add(at(.rbx, 0), size: 8, at: 4, pc: 0xFFFF_FFFF_8100_0010, entry: 5)
        j.close()
        #expect(j.joinable(at(.rbx, 8), size: 8, at: 5) == nil)
    }

    @Test("a joined check's argument round-trips and is never a plain PC")
    func joinedArgument() throws {
        let joined = JoinedAccesses(pc: 0xFFFF_FFFF_8123_4567, instructions: 7, lowOffset: -8, bytes: 16)
        let back = try #require(JoinedAccesses(argument: joined.argument))
        #expect(back.pc == 0xFFFF_FFFF_8123_4567 && back.instructions == 7 && back.lowOffset == -8 && back.bytes == 16)
        #expect(JoinedAccesses(argument: 0xFFFF_FFFF_8123_4567) == nil)  // a kernel PC
        #expect(JoinedAccesses(argument: 0x5555_5555_1000) == nil)  // a user PC
        // The joined bytes [first - 8, first + 8) through the same registers.
        #expect(back.covers(at(.rdi, 0x08), size: 8, first: at(.rdi, 0x10)))
        #expect(back.covers(at(.rdi, 0x10), size: 8, first: at(.rdi, 0x10)))
        #expect(!back.covers(at(.rdi, 0x14), size: 8, first: at(.rdi, 0x10)))
        #expect(!back.covers(at(.rsi, 0x10), size: 8, first: at(.rdi, 0x10)))
        #expect(!JoinedAccesses.fits(0x5555_5555_1000) && JoinedAccesses.fits(0xFFFF_FFFF_8123_4567))
    }
}
