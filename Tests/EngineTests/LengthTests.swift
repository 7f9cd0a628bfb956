// SPDX-License-Identifier: GPL-2.0-only
//
// Length-only decode (Decoder.instructionLength) gives decode's answer: the length for
// what decodes, 0 for what does not. The whole corpus and the fuzzer check the same
// property at scale (make decoder-diff, make fuzz); these are the paths by hand.

@testable import Engine
import Testing

@Suite("length-only decode")
struct LengthTests {
    static let vectors: [(String, Int)] = [
        ("90", 1), ("4889e5", 3), ("48b88877665544332211", 10),  // nop, mov, movabs imm64
        ("66c7400400", 0),                                         // truncated (needs 7 bytes)
        ("66c740040000", 6), ("f0830001", 4), ("f00fb111", 4),    // imm16, lock add, lock cmpxchg
        ("f001c0", 0), ("f090", 0),                                // lock on a register / non-lockable
        ("678b0410", 4), ("65488b042528000000", 9),                // addr32 SIB, gs:[disp32]
        ("0f1f840000000000", 8), ("660f3a0fc108", 6),              // nop Ev, palignr (0F 3A imm8)
        ("c4e27d18c0", 5), ("c4e27918c0", 5),                      // VEX: vbroadcastss ymm0/xmm0, xmm0
        ("62f1fd486f4701", 7), ("8f00", 2), ("8fc0", 2),           // EVEX, pop [rax], pop rax (8F, not XOP)
        ("0f0fc0b4", 4),                                          // 3DNow! pfmul
        ("0f22c0", 3), ("0f22c8", 0), ("8ec8", 0),                 // mov cr0 / cr1 (#UD) / mov cs (#UD)
        ("0f1a00", 3), ("0fb9cc", 3), ("e800000000", 5), ("", 0),
        ("f3f3f3f3f3f3f3f3f3f3f3f3f3f3f390", 0),                   // 16 bytes: too long
    ]

    @Test("equals decode", arguments: vectors)
    func equalsDecode(_ v: (String, Int)) {
        let bytes = hex(v.0)
        var insn = Instruction()
        let status = bytes.withUnsafeBytes { Decoder.decode(bytes: $0, address: 0x1000, into: &insn) }
        let expected = status == .ok ? Int(insn.length) : 0
        let length = bytes.withUnsafeBytes { Decoder.instructionLength(bytes: $0) }
        #expect(length == expected)
        #expect(length == v.1, "\(v.0): decode says \(status) \(insn.length)")
    }
}
