// SPDX-License-Identifier: GPL-2.0-only
//
// Relocating encoder: re-emits a decoded instruction so that it runs at another
// address with the same meaning. RIP-relative displacements are recomputed, relative
// branches are re-encoded with rel32 (short jmp/jcc are widened), and the rel8-only
// branches (jrcxz, jecxz, loop, loope, loopne) become a short trampoline. Kernel-safe:
// nothing allocates, and nothing is written unless the whole result fits and reaches.

/// What `Relocator.relocate` did.
public enum RelocationResult: Equatable, Sendable {
    /// `length` bytes were emitted into the assembler.
    case relocated(length: Int)
    /// A branch target or RIP-relative address is beyond ±2 GiB of the new code.
    /// Nothing was emitted: the caller must route through an indirect stub.
    case outOfReach
    /// The assembler has no room for the result. Nothing was emitted.
    case noRoom
    /// The instruction cannot be relocated faithfully (a rel16 branch: 66-prefixed
    /// jmp/jcc/call/xbegin, whose target the CPU truncates to 16 bits). Nothing was emitted.
    case unsupported

    public var emittedLength: Int? {
        if case .relocated(let n) = self { return n }
        return nil
    }
}

public enum Relocator {
    /// The longest sequence `relocate` emits: prefixes (at most 14) + 9-byte trampoline.
    public static let maxLength = 24

    /// Re-emits `insn` (decoded from `bytes`, which holds at least `insn.length` bytes)
    /// to run at `newAddress` (normally `asm.address`).
    ///
    /// - jmp rel8/rel32 → E9 rel32; jcc rel8/rel32 → 0F 8x rel32; call rel32 → E8 rel32;
    ///   xbegin rel32 → C7 F8 rel32. Legacy prefixes and REX are kept as they were.
    /// - jrcxz/jecxz/loop/loope/loopne (rel8 only) →
    ///   `op +2; jmp +5; jmp rel32 target` (9 bytes + prefixes); the condition and its
    ///   address-size prefix are unchanged, the taken path reaches the rel32 jmp.
    /// - RIP-relative memory operands: the disp32 is recomputed for the same absolute
    ///   address (the instruction length does not change).
    /// - Everything else is copied unchanged.
    public static func relocate(_ insn: Instruction, bytes: UnsafeRawBufferPointer, to newAddress: UInt64,
                                into asm: inout Assembler) -> RelocationResult {
        let length = Int(insn.length)
        if length == 0 || bytes.count < length { return .unsupported }
        let room = asm.capacity - asm.count

        if let target = insn.directBranchTarget {
            if insn.prefixes.has(Prefixes.operandSize) { return .unsupported }
            let prefixLength = Int(insn.prefixCount)
            let prefixBytes = UnsafeRawBufferPointer(rebasing: bytes[0..<prefixLength])
            let op = insn.opcode
            if insn.map == .primary && (op == 0xE0 || op == 0xE1 || op == 0xE2 || op == 0xE3) {
                // op +2 (to the rel32 jmp) ; jmp +5 (over it: not taken) ; jmp rel32 target
                let total = prefixLength + 9
                guard let rel = Assembler.rel32(from: newAddress &+ UInt64(total), to: target) else { return .outOfReach }
                if room < total { return .noRoom }
                asm.bytes(prefixBytes)
                asm.byte(op); asm.byte(0x02)
                asm.byte(0xEB); asm.byte(0x05)
                asm.byte(0xE9); asm.u32(UInt32(bitPattern: rel))
                return .relocated(length: total)
            }
            // Opcode bytes of the rel32 form.
            var opcode0: UInt8 = 0, opcode1: UInt8 = 0, opcodeLength = 1
            if insn.map == .primary {
                switch op {
                case 0xE8, 0xE9: opcode0 = op
                case 0xEB: opcode0 = 0xE9
                case 0x70...0x7F: opcode0 = 0x0F; opcode1 = 0x80 | (op & 0x0F); opcodeLength = 2
                case 0xC7: opcode0 = 0xC7; opcode1 = 0xF8; opcodeLength = 2  // xbegin
                default: return .unsupported
                }
            } else if insn.map == .map0F && op & 0xF0 == 0x80 {
                opcode0 = 0x0F; opcode1 = op; opcodeLength = 2
            } else {
                return .unsupported
            }
            let total = prefixLength + opcodeLength + 4
            guard let rel = Assembler.rel32(from: newAddress &+ UInt64(total), to: target) else { return .outOfReach }
            if room < total { return .noRoom }
            asm.bytes(prefixBytes)
            asm.byte(opcode0)
            if opcodeLength == 2 { asm.byte(opcode1) }
            asm.u32(UInt32(bitPattern: rel))
            return .relocated(length: total)
        }

        if let target = insn.ripRelativeTarget, insn.dispSize == 4 {
            let end = newAddress &+ UInt64(length)
            let disp: UInt32
            if insn.addressSize == 32 {
                // EIP-relative: the sum is truncated to 32 bits, so every disp32 reaches.
                disp = UInt32(truncatingIfNeeded: target &- end)
            } else {
                guard let rel = Assembler.rel32(from: end, to: target) else { return .outOfReach }
                disp = UInt32(bitPattern: rel)
            }
            if room < length { return .noRoom }
            let at = Int(insn.dispOffset)
            asm.bytes(UnsafeRawBufferPointer(rebasing: bytes[0..<at]))
            asm.u32(disp)
            asm.bytes(UnsafeRawBufferPointer(rebasing: bytes[(at + 4)..<length]))
            return .relocated(length: length)
        }

        if room < length { return .noRoom }
        asm.bytes(UnsafeRawBufferPointer(rebasing: bytes[0..<length]))
        return .relocated(length: length)
    }
}
