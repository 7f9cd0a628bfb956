// SPDX-License-Identifier: GPL-2.0-only
//
// Liveness of the arithmetic flags and of the general-purpose registers across a
// block's end. Tools insert flag-writing
// code (inscount's `add`) only where the flags are dead; within the block the
// liveness service sees that, but at the end it had to assume every flag live,
// and a block that never overwrote them (`pop; jmp`, `mov; call`) paid for a
// flags-preserving sequence. Where the block's only successor is known (a direct
// jump or call, or the next instruction of a cut block), its first instructions
// are read ahead: a flag overwritten there before it is read is dead here. The
// same goes for registers, which inline checks borrow when dead instead of
// spilling them.

extension Translator {
    /// Instructions read ahead at most; the code is read, not translated.
    static let lookaheadInstructions = 16

    /// The arithmetic flags that may be read after the block ending in `last`
    /// (a subset of `Flag.status`).
    func flagsLive(after last: Instruction) -> UInt16 {
        if returnsByABI(last) { return 0 }
        let successor: UInt64
        switch last.controlFlow {
        case .none:
            successor = last.nextAddress
        case .call:
            // A called function never reads the status flags its caller left: the
            // psABI gives them no role in a call (and C has no way to pass them).
            return 0
        case .jmp:
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
            if returnsByABI(insn) { return 0 }
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

    /// The general-purpose registers that may be read after the block ending in
    /// `last`: every one unless its successor is known (as for the flags).
    func registersLive(after last: Instruction) -> UInt16 {
        if returnsByABI(last) { return Translator.liveAfterReturn }
        switch last.controlFlow {
        case .none:
            return registersLive(at: last.nextAddress)
        case .jmp, .call:
            let target = directTarget(last)
            return isBranchThunk(target) ? 0xFFFF : registersLive(at: target)
        default:
            return 0xFFFF
        }
    }

    /// The general-purpose registers the code at `pc` may read before it
    /// overwrites them. Straight-line code and direct jumps only, as for the flags;
    /// code whose block starts with a hook (a wrapped function's entry, a post
    /// site: hooks read any register), runs natively, or may fault to a fixup
    /// ends the search with every undetermined register live.
    func registersLive(at pc: UInt64) -> UInt16 {
        var undetermined: UInt16 = 0xFFFF
        var live: UInt16 = 0
        var pc = pc
        var insn = Instruction()
        var operands = Operands()
        let fixup = state.pointee.host.hasFaultFixup
        for k in 0..<Translator.lookaheadInstructions {
            if k == 0 || insn.controlFlow == .jmp {
                // A block may start here.
                if isWrapped(pc) || (state.pointee.postSiteCount > 0 && isPostSite(pc)) || isNativeExit(pc) { break }
            }
            guard decodeOne(at: pc, into: &insn), fixup?(pc) ?? 0 == 0 else { break }
            if returnsByABI(insn) { return live | (undetermined & Translator.liveAfterReturn) }
            if insn.controlFlow == .jmp, let target = insn.directBranchTarget, !isBranchThunk(target) {
                pc = target
                continue
            }
            guard insn.controlFlow == .none else { break }
            if insn.mnemonic == .nop {  // its operand is not read (ftrace's 5-byte nop names rax)
                pc = insn.nextAddress
                continue
            }
            Decoder.decodeOperands(insn, into: &operands)
            let read = InstrumentedBlock.readRegisters(insn, operands)
            live |= read & undetermined
            undetermined &= ~read & ~InstrumentedBlock.killedRegisters(insn, operands)
            if undetermined == 0 { break }
            pc = insn.nextAddress
        }
        return live | undetermined
    }

    /// What a C function's caller may read after it returns: rax and rdx (the
    /// return value), rsp, and the callee-saved rbx, rbp, r12 to r15.
    static let liveAfterReturn: UInt16 = 0b1111_0000_0011_1101

    /// Whether `insn` returns (`ret`, or a jump to the return thunk) from a
    /// function the host knows to keep the psABI: its caller reads no
    /// caller-saved register and no status flag before writing it. Returns from
    /// assembly functions are unknown: some callers (inline asm with a short
    /// clobber list) keep values in registers across those calls.
    func returnsByABI(_ insn: Instruction) -> Bool {
        let returns = insn.controlFlow == .ret
            || (insn.controlFlow == .jmp && insn.directBranchTarget == state.pointee.returnThunk
                && state.pointee.returnThunk != 0)
        guard returns, let isC = state.pointee.host.isCFunction else { return false }
        return isC(insn.address) != 0
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
