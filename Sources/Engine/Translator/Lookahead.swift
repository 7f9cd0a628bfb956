// SPDX-License-Identifier: GPL-2.0-only
//
// Liveness of the arithmetic flags across a block's end. Tools insert flag-writing
// code (inscount's `add`) only where the flags are dead; within the block the
// liveness service sees that, but at the end it had to assume every flag live,
// and a block that never overwrote them (`pop; jmp`, `mov; call`) paid for a
// flags-preserving sequence. Where the block's only successor is known (a direct
// jump or call, or the next instruction of a cut block), its first instructions
// are read ahead: a flag overwritten there before it is read is dead here.

extension Translator {
    /// Instructions read ahead at most; the code is read, not translated.
    static let lookaheadInstructions = 16

    /// The arithmetic flags that may be read after the block ending in `last`
    /// (a subset of `Flag.status`).
    func flagsLive(after last: Instruction) -> UInt16 {
        let successor: UInt64
        switch last.controlFlow {
        case .none:
            successor = last.nextAddress
        case .jmp, .call:
            let target = directTarget(last)
            // Thunks run as the branches they stand for: the successor is not known.
            guard !isBranchThunk(target) else { return Flag.status }
            successor = target
        default:
            // Indirect branches and returns (any target), conditional branches
            // (they read the flags themselves), traps and system calls (the
            // handler sees the flags in its frame).
            return Flag.status
        }
        return flagsLive(at: successor)
    }

    /// The arithmetic flags that may be read by the native code at `pc` before
    /// it overwrites them.
    func flagsLive(at pc: UInt64) -> UInt16 {
        var undetermined = Flag.status
        var pc = pc
        var insn = Instruction()
        for _ in 0..<Translator.lookaheadInstructions {
            // Straight-line code and direct jumps only; an unreadable or
            // undecodable instruction, another branch, or a read of a flag not yet
            // overwritten ends the search with those flags live.
            guard decodeOne(at: pc, into: &insn), insn.flagsRead & undetermined == 0 else { break }
            if insn.controlFlow == .jmp, let target = insn.directBranchTarget, !isBranchThunk(target) {
                pc = target  // a direct jump: its target is the only way on
                continue
            }
            guard insn.controlFlow == .none else { break }
            undetermined &= ~InstrumentedBlock.killedFlags(insn)
            if undetermined == 0 { break }
            pc = insn.nextAddress
        }
        return undetermined
    }

    /// Decodes the native instruction at `pc` (read through the host); false when
    /// it is unreadable or undecodable.
    func decodeOne(at pc: UInt64, into insn: inout Instruction) -> Bool {
        var bytes: InlineArray<16, UInt8> = InlineArray(repeating: 0)
        let n = withUnsafeMutableBytes(of: &bytes) { state.pointee.host.readCode($0.baseAddress!, pc, 15) }
        guard n > 0 else { return false }
        return withUnsafeBytes(of: &bytes) {
            Decoder.decode(bytes: UnsafeRawBufferPointer(rebasing: $0[0..<n]), address: pc, into: &insn) == .ok
        }
    }
}
