// SPDX-License-Identifier: GPL-2.0-only
//
// The synthesizing assembler against GNU as: the expected bytes below were produced
// by `as` from the Intel-syntax listing in each comment (binutils 2.40) and are
// facts about the encoding, not output of this code.

@testable import Engine
import Testing

func assemble(origin: UInt64 = 0, capacity: Int = 256, _ body: (inout Assembler) -> Void) -> (bytes: [UInt8], asm: Assembler) {
    let buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
    defer { buffer.deallocate() }
    var a = Assembler(base: buffer, capacity: capacity, origin: origin)
    body(&a)
    return (Array(UnsafeRawBufferPointer(start: buffer, count: a.count)), a)
}

func hex(_ s: String) -> [UInt8] {
    var out: [UInt8] = []
    var i = s.startIndex
    while i < s.endIndex {
        let j = s.index(i, offsetBy: 2)
        out.append(UInt8(s[i..<j], radix: 16)!)
        i = j
    }
    return out
}

@Suite("assembler")
struct AssemblerTests {
    @Test("matches GNU as on the instructions a translator synthesizes")
    func matchesGNUAs() {
        let (bytes, a) = assemble { a in
            a.jmp(.rip(0x16))                          // jmp qword ptr [rip+0x10]
            a.mov(.rax, .gs(0x28))                      // mov rax, qword ptr gs:[0x28]
            a.mov(.gs(0x30), .r11)                      // mov qword ptr gs:[0x30], r11
            a.mov(.r12, .at(.r13))                      // mov r12, qword ptr [r13]
            a.mov(.at(.rsp, 8), .rbx)                   // mov qword ptr [rsp+8], rbx
            a.lea(.r9, AsmMemory(base: .register(.rbp), index: .rcx, scale: 4, displacement: -0x80))
            a.add(.rip(0x2e + 0x100), imm32: 5)         // add qword ptr [rip+0x100], 5 (at 0x26, len 8)
            a.add(.at(.r12, 0x1000), imm32: 0x12345)    // add qword ptr [r12+0x1000], 0x12345
            a.inc(.at(.rax))                            // inc qword ptr [rax]
            a.xchg(.rcx, .at(.rsp))                     // xchg rcx, qword ptr [rsp]
            a.push(.r15)
            a.pop(.rax)
            a.push(.gs(0x40))                           // push qword ptr gs:[0x40]
            a.seto(.r11)
            a.seto(.rsi)
            a.mov(.rax, imm64: 0x1234_5678)             // mov eax, 0x12345678
            a.mov(.rcx, imm64: 0x1122_3344_5566_7788)   // movabs rcx, ...
            a.jmp(.r11)
            a.call(.rax)
            a.cmp(.r10, AsmMemory(base: .register(.rdx), index: .r8, scale: 8))
            a.and(.rdx, imm32: 0x7ff8)
            a.mov(.rip(0x7e + 0x20), imm32: -1)         // mov qword ptr [rip+0x20], -1 (at 0x73, len 11)
        }
        #expect(!a.failed)
        let expected = hex(
            "ff251000000065488b042528000000654c891c25300000004d8b650048895c24084c8d4c8d80488305000100000549818424"
                + "001000004523010048ff0048870c2441575865ff342540000000410f90c3400f90c6b87856341248b98877665544332211"
                + "41ffe3ffd04e3b14c24881e2f87f000048c70520000000ffffffff")
        #expect(bytes == expected)
    }

    @Test("kernel entry and exit instructions match GNU as")
    func kernelInstructions() {
        let (bytes, a) = assemble { a in
            a.iretq()                                   // iretq
            a.swapgs()                                  // swapgs
            a.testByte(.at(.rsp, 16), imm8: 3)          // test byte ptr [rsp+16], 3
            a.testByte(.gs(0x1234), imm8: 3)            // test byte ptr gs:[0x1234], 3
            a.cmp(.gs(0x40), imm8: 0)                   // cmp qword ptr gs:[0x40], 0
            a.sub(.rax, .rcx)                           // sub rax, rcx
            a.cmp(.rax, .r9)                            // cmp rax, r9
        }
        #expect(!a.failed)
        #expect(bytes == hex("48cf" + "0f01f8" + "f644241003" + "65f6042534120000" + "03" + "6548833c254000000000"
                             + "4829c8" + "4c39c8"))
    }

    @Test("flag-free lookup helpers match GNU as")
    func flagFree() {
        let (bytes, a) = assemble { a in
            a.movzxWord(.rdx, .rcx)       // movzx edx, cx
            a.movzxWord(.r10, .r11)       // movzx r10d, r11w
            a.not(.rax)                   // not rax
            a.jrcxz(3)                    // jrcxz .+5
            a.lea(.rax, AsmMemory(base: .register(.rax), index: .rcx, scale: 1, displacement: 1))
        }
        #expect(!a.failed)
        #expect(bytes == hex("0fb7d1" + "450fb7d3" + "48f7d0" + "e303" + "488d440801"))
    }

    @Test("padding is one NOP instruction of each length (SDM recommended forms)")
    func nops() {
        let (bytes, a) = assemble { a in for length in 1...9 { a.nop(length) } }
        #expect(!a.failed)
        #expect(bytes == hex("90" + "6690" + "0f1f00" + "0f1f4000" + "0f1f440000" + "660f1f440000"
                             + "0f1f8000000000" + "0f1f840000000000" + "660f1f840000000000"))
    }

    @Test("rel32 branches are relative to the end of the instruction")
    func branches() {
        let origin: UInt64 = 0xffff_ffff_c000_0000
        let (bytes, a) = assemble(origin: origin) { a in
            a.jmp(to: origin + 5)          // jmp to the next instruction: rel 0
            a.call(to: origin)             // call back to the start: rel -10
            a.jcc(.ne, to: origin + 0x100)  // 0f 85, ends at +16
        }
        #expect(!a.failed)
        #expect(bytes == hex("e900000000" + "e8f6ffffff" + "0f85f0000000"))
    }

    @Test("a target out of rel32 reach is reported, not truncated")
    func outOfReach() {
        let (_, a) = assemble(origin: 0x1000) { a in a.jmp(to: 0x1_0000_1000 + 0x1000) }
        #expect(a.outOfReach)
        let (_, b) = assemble(origin: 0xffff_ffff_8000_0000) { a in a.mov(.rax, .rip(0x7fff_0000_0000)) }
        #expect(b.outOfReach)
    }

    @Test("running out of room stops writing and says so")
    func overflow() {
        let (bytes, a) = assemble(capacity: 4) { a in a.mov(.rcx, imm64: 0x1122_3344_5566_7788) }
        #expect(a.overflowed)
        #expect(bytes.count == 4)
    }

    @Test("every base register encodes, including rsp/r12 (SIB) and rbp/r13 (disp8 0)",
          arguments: (0..<16).map { GPR(rawValue: UInt8($0))! })
    func everyBase(base: GPR) {
        let (bytes, a) = assemble { a in a.mov(.rax, .at(base)) }
        #expect(!a.failed)
        let rex: UInt8 = base.rawValue >= 8 ? 0x49 : 0x48
        var expected: [UInt8] = [rex, 0x8B]
        switch base.rawValue & 7 {
        case 4: expected += [0x04, 0x24]
        case 5: expected += [0x45, 0x00]
        default: expected += [base.rawValue & 7]
        }
        #expect(bytes == expected)
    }
}
