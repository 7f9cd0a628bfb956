// SPDX-License-Identifier: GPL-2.0-only
//
// The relocating encoder on hand-checked cases: each expected byte string was worked
// out by hand from the SDM encodings (rel32 = target - end of the new instruction),
// and the result is decoded again to check it reaches the same target.

@testable import Engine
import Testing

/// Decodes `original` at `from`, relocates it to `to`; returns the result and the bytes.
func relocate(_ original: [UInt8], from: UInt64, to: UInt64, capacity: Int = 64) -> (RelocationResult, [UInt8]) {
    var insn = Instruction()
    let status = original.withUnsafeBytes { Decoder.decode(bytes: $0, address: from, into: &insn) }
    precondition(status == .ok, "test input does not decode")
    var result = RelocationResult.unsupported
    let (bytes, _) = assemble(origin: to, capacity: capacity) { a in
        result = original.withUnsafeBytes { Relocator.relocate(insn, bytes: $0, to: to, into: &a) }
    }
    return (result, bytes)
}

/// Decodes the first instruction of `bytes` at `address`.
func decodeFirst(_ bytes: [UInt8], at address: UInt64) -> Instruction {
    var insn = Instruction()
    _ = bytes.withUnsafeBytes { Decoder.decode(bytes: $0, address: address, into: &insn) }
    return insn
}

struct RelocationCase: CustomTestStringConvertible, Sendable {
    let name: String
    let original: String
    let from: UInt64
    let to: UInt64
    let expected: String
    var testDescription: String { name }
}

@Suite("relocating encoder")
struct RelocateTests {
    static let cases: [RelocationCase] = [
        // EB 10 @0x1000 -> 0x1012; at 0x2000 E9 ends at 0x2005: 0x1012 - 0x2005 = -0xff3
        RelocationCase(name: "jmp rel8 widened", original: "eb10", from: 0x1000, to: 0x2000, expected: "e90df0ffff"),
        // 74 FE @0x1000 -> 0x1000; at 0x1100 ends at 0x1106: -0x106
        RelocationCase(name: "jz rel8 widened", original: "74fe", from: 0x1000, to: 0x1100, expected: "0f84fafeffff"),
        // 0F 85 rel32 @0x1000 -> 0x1016; at 0x1010 ends at 0x1016: 0
        RelocationCase(name: "jnz rel32", original: "0f8510000000", from: 0x1000, to: 0x1010, expected: "0f8500000000"),
        // E8 0 @0x1000 -> 0x1005; at 0 ends at 5: 0x1000
        RelocationCase(name: "call rel32", original: "e800000000", from: 0x1000, to: 0, expected: "e800100000"),
        // E9 rel32 backwards over 2 GiB - 1 is still fine when the distance shrinks
        RelocationCase(name: "jmp rel32", original: "e9fbffffff", from: 0x1000, to: 0x1000, expected: "e9fbffffff"),
        // 3E 74 00 @0 -> 3; at 0: 3E 0F 84 rel32 ends at 7: -4 (the branch hint is kept)
        RelocationCase(name: "prefix kept", original: "3e7400", from: 0, to: 0, expected: "3e0f84fcffffff"),
        // mov rax, [rip+0x10] @0x1000 -> 0x1017; at 0x2000 ends at 0x2007: -0xff0
        RelocationCase(name: "rip-relative load", original: "488b0510000000", from: 0x1000, to: 0x2000,
                       expected: "488b0510f0ffff"),
        // add dword [rip+0x10], 1 @0x1000 (7 bytes) -> 0x1017; at 0x1007 ends at 0x100e: 9
        RelocationCase(name: "rip-relative with immediate", original: "830510000000" + "01", from: 0x1000, to: 0x1007,
                       expected: "83050900000001"),
        // loop @0x1000 -> 0xff2; at 0x3000: E2 02 EB 05 E9 rel32 ends at 0x3009: -0x2017
        RelocationCase(name: "loop trampoline", original: "e2f0", from: 0x1000, to: 0x3000, expected: "e202eb05e9e9dfffff"),
        // jecxz @0x1000 -> 0x1013; at 0x1000: the 67 prefix stays; ends at 0x100a: 9
        RelocationCase(name: "jecxz trampoline", original: "67e310", from: 0x1000, to: 0x1000,
                       expected: "67e302eb05e909000000"),
        // xbegin @0x1000 -> 0x1006; at 0x2000 ends at 0x2006: -0x1000
        RelocationCase(name: "xbegin rel32", original: "c7f800000000", from: 0x1000, to: 0x2000, expected: "c7f800f0ffff"),
        // no relative field: copied
        RelocationCase(name: "plain copy", original: "4889e5", from: 0x1000, to: 0xffff_ffff_8100_0000, expected: "4889e5"),
    ]

    @Test("re-encodes for the new address", arguments: cases)
    func reencodes(_ c: RelocationCase) {
        let (result, bytes) = relocate(hex(c.original), from: c.from, to: c.to)
        #expect(result == .relocated(length: hex(c.expected).count))
        #expect(bytes == hex(c.expected))
        // Decoding the result at the new address gives the same absolute target.
        let before = decodeFirst(hex(c.original), at: c.from)
        let after = decodeFirst(bytes, at: c.to)
        #expect(after.mnemonic == before.mnemonic)
        if let t = before.ripRelativeTarget { #expect(after.ripRelativeTarget == t) }
        if let t = before.directBranchTarget {
            if before.opcode >= 0xE0 && before.opcode <= 0xE3 {
                // the trampoline: the taken path lands on the rel32 jmp, which reaches t
                #expect(after.directBranchTarget == after.nextAddress + 2)
                let jmp = decodeFirst(Array(bytes[Int(after.length) + 2..<bytes.count]), at: after.nextAddress + 2)
                #expect(jmp.directBranchTarget == t)
                // not taken: jmp +5 continues right after the sequence
                let skip = decodeFirst(Array(bytes[Int(after.length)...]), at: after.nextAddress)
                #expect(skip.directBranchTarget == c.to + UInt64(bytes.count))
            } else {
                #expect(after.directBranchTarget == t)
            }
        }
    }

    @Test("a branch beyond ±2 GiB is refused and nothing is written")
    func branchOutOfReach() {
        // EB 00 @0x1000 -> 0x1002; from 0x8000_1000 the E9 would end at 0x8000_1005: -0x8000_0003
        let (result, bytes) = relocate(hex("eb00"), from: 0x1000, to: 0x8000_1000)
        #expect(result == .outOfReach)
        #expect(bytes.isEmpty)
        // One byte closer and it reaches: -0x8000_0000 is Int32.min.
        let (near, nearBytes) = relocate(hex("eb00"), from: 0x1000, to: 0x8000_0FFD)
        #expect(near == .relocated(length: 5))
        #expect(nearBytes == hex("e900000080"))
    }

    @Test("a RIP-relative operand beyond ±2 GiB is refused")
    func ripRelativeOutOfReach() {
        let (result, bytes) = relocate(hex("488b0500000000"), from: 0xffff_ffff_8100_0000, to: 0x1_0000_0000)
        #expect(result == .outOfReach)
        #expect(bytes.isEmpty)
        let (loop, loopBytes) = relocate(hex("e2fe"), from: 0, to: 0x1_0000_0000)
        #expect(loop == .outOfReach)
        #expect(loopBytes.isEmpty)
    }

    @Test("no room: nothing is written")
    func noRoom() {
        let (result, bytes) = relocate(hex("74fe"), from: 0x1000, to: 0x1000, capacity: 5)
        #expect(result == .noRoom)
        #expect(bytes.isEmpty)
    }

    @Test("rel16 branches are refused")
    func rel16() {
        let (result, bytes) = relocate(hex("66eb00"), from: 0x1000, to: 0x2000)
        #expect(result == .unsupported)
        #expect(bytes.isEmpty)
    }

    @Test("EIP-relative (67 prefix) wraps at 4 GiB and always reaches")
    func eipRelative() {
        // lea eax, [eip+0x10] @0x1000 (7 bytes) -> 0x1017; at 0x1_0000_2000 ends at 0x1_0000_2007:
        // (0x0000_2007 + d) mod 2^32 = 0x1017 -> d = -0xff0
        let (result, bytes) = relocate(hex("678d0510000000"), from: 0x1000, to: 0x1_0000_2000)
        #expect(result == .relocated(length: 7))
        #expect(bytes == hex("678d0510f0ffff"))
    }
}
