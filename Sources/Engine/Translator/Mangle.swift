// SPDX-License-Identifier: GPL-2.0-only
//
// Mangling the control transfer that ends a block, so that the application keeps
// seeing native addresses: calls push the native return address, returns and
// indirect branches look their native target up (Routines.swift), direct branches
// leave through link stubs.

extension Translator {
    func mangleTransfer(_ insn: Instruction, _ bytes: UnsafeRawBufferPointer,
                        _ a: inout Assembler, _ exits: inout BlockExits) -> Bool {
        var literal = ReturnAddressLiteral()
        guard mangleTransfer(insn, bytes, &a, &exits, &literal) else { return false }
        literal.emit(&a)
        return true
    }

    func mangleTransfer(_ insn: Instruction, _ bytes: UnsafeRawBufferPointer, _ a: inout Assembler,
                        _ exits: inout BlockExits, _ literal: inout ReturnAddressLiteral) -> Bool {
        switch insn.controlFlow {
        case .jmp where directTarget(insn) == state.pointee.returnThunk:
            mangleReturn(popping: 0, &a)
        case .jmp:
            if let r = thunkRegister(directTarget(insn)) {
                a.mov(gs(ContextField.spillRCX), .rcx)
                a.mov(.rcx, r)
                emitInlineLookup(&a)
            } else {
                emitExitJump(&a, &exits, target: directTarget(insn), condition: nil)
            }
        case .jcc:
            emitExitJump(&a, &exits, target: directTarget(insn), condition: Condition(rawValue: insn.opcode & 0xF)!)
            emitExitJump(&a, &exits, target: insn.nextAddress, condition: nil)
        case .loop:
            // jrcxz/loop/loope/loopne have only rel8 forms: run them on a local
            // trampoline whose two arms are ordinary exits.
            a.bytes(UnsafeRawBufferPointer(rebasing: bytes[0..<bytes.count - 1]))
            a.byte(0)  // rel8 to the taken arm, patched below
            let rel8At = a.count - 1
            emitExitJump(&a, &exits, target: insn.nextAddress, condition: nil)
            let taken = a.count
            guard taken - (rel8At + 1) <= 127, !a.overflowed else { return failMangle(.cacheFull) }
            a.base.storeBytes(of: UInt8(taken - (rel8At + 1)), toByteOffset: rel8At, as: UInt8.self)
            emitExitJump(&a, &exits, target: directTarget(insn), condition: nil)
        case .call:
            if let r = thunkRegister(directTarget(insn)) {
                a.mov(gs(ContextField.spillRCX), .rcx)
                a.mov(.rcx, r)
                pushReturnAddress(insn.nextAddress, &a, &literal)
                emitInlineLookup(&a)
            } else {
                pushReturnAddress(insn.nextAddress, &a, &literal)
                emitExitJump(&a, &exits, target: directTarget(insn), condition: nil)
            }
        case .callIndirect:
            a.mov(gs(ContextField.spillRCX), .rcx)
            guard loadTarget(insn, into: .rcx, &a) else { return false }
            pushReturnAddress(insn.nextAddress, &a, &literal)
            emitInlineLookup(&a)
        case .jmpIndirect:
            a.mov(gs(ContextField.spillRCX), .rcx)
            guard loadTarget(insn, into: .rcx, &a) else { return false }
            emitInlineLookup(&a)
        case .ret:
            mangleReturn(popping: insn.immSize == 2 ? Int32(insn.imm & 0xFFFF) : 0, &a)
        case .iret:
            // The host decides where the frame's return goes (kernel: back into
            // the cache when it returns to kernel code). indirectTarget gets the
            // iretq's own address: the native state there is the current one.
            a.mov(gs(ContextField.spillRAX), .rax)
            a.mov(.rax, imm64: insn.address)
            a.mov(gs(ContextField.indirectTarget), .rax)
            a.mov(.rax, imm64: ContextField.iretExit)
            a.jmp(gs(ContextField.fcacheReturn))
        case .sysret, .sysexit:
            // Back to user mode, natively; nothing follows in this block.
            a.bytes(bytes)
        case .syscall where state.pointee.interceptedSyscallCount > 0:
            mangleSyscall(insn, bytes, &a, &exits)
        case .syscall, .int3, .interrupt, .int1, .hlt, .ud:
            // Executed as they are; the block's fall-through exit follows. Right
            // after one, the state is the native state after it: what an interrupt
            // waking `hlt`, or the trap of `int3`, sees.
            a.bytes(bytes)
            recordBoundary(cacheOffset: a.count, nativeOffset: insn.nextAddress - state.pointee.blockStart)
        default:
            return failMangle(.unsupportedInstruction)
        }
        return true
    }

    /// `ret` / `ret imm16`: the native return address is popped and looked up.
    func mangleReturn(popping extra: Int32, _ a: inout Assembler) {
        a.mov(gs(ContextField.spillRCX), .rcx)
        a.pop(.rcx)
        if extra != 0 { a.lea(.rsp, .at(.rsp, extra)) }
        emitInlineLookup(&a)
    }

    /// The first probe of the indirect-branch lookup, inline at each site so that
    /// each site's final indirect jump has its own branch-predictor entry. It
    /// touches no flags (movzx, lea, not, jrcxz), so it needs no lahf/sahf; a
    /// collision or miss continues in the shared routine. Entered with the native
    /// target in rcx and the application's rcx in spillRCX. A hit jumps to the
    /// fragment's indirect entry, which restores rcx (`emitIndirectEntry`).
    func emitInlineLookup(_ a: inout Assembler) {
        guard state.pointee.limits.inlineLookup else {
            a.jmp(gs(ContextField.indirectLookup))
            return
        }
        let table = state.pointee.indirect
        // The table at an absolute disp32 when the host placed it low (user mode)
        // or in the top 2 GiB (kernel: in the code pool); else its address comes
        // from the context.
        let tags = Int64(Int(bitPattern: table.tags))
        let absolute = tags >= Int64(Int32.min) && tags + Int64(LookupTable.indirectBytes) <= Int64(Int32.max)
        a.mov(gs(ContextField.spillRAX), .rax)
        a.mov(gs(ContextField.spillRDX), .rdx)
        a.movzxWord(.rdx, .rcx)  // the slot: the target's low 16 bits
        let tag: AsmMemory
        let entry: AsmMemory
        if absolute {
            tag = AsmMemory(base: .absolute, index: .rdx, scale: 8, displacement: Int32(tags))
            entry = AsmMemory(base: .absolute, index: .rdx, scale: 8, displacement: Int32(tags) + LookupTable.indirectTargetsOffset)
        } else {
            a.mov(.rax, gs(ContextField.lookupTable))
            a.lea(.rdx, AsmMemory(base: .register(.rax), index: .rdx, scale: 8))  // &tags[slot]
            tag = .at(.rdx)
            entry = .at(.rdx, LookupTable.indirectTargetsOffset)
        }
        a.mov(.rax, tag)  // ~tag
        a.lea(.rcx, AsmMemory(base: .register(.rcx), index: .rax, scale: 1, displacement: 1))  // target - tag
        let jrcxz = a.count
        a.jrcxz(0)  // to `hit`, patched below
        a.not(.rax)
        a.lea(.rcx, AsmMemory(base: .register(.rcx), index: .rax, scale: 1))  // the target again
        a.mov(.rax, gs(ContextField.spillRAX))
        a.mov(.rdx, gs(ContextField.spillRDX))
        a.jmp(gs(ContextField.indirectLookup))
        let hit = a.count
        if !a.overflowed { a.base.storeBytes(of: UInt8(hit - (jrcxz + 2)), toByteOffset: jrcxz + 1, as: UInt8.self) }
        a.mov(.rcx, entry)
        a.mov(.rax, gs(ContextField.spillRAX))
        a.mov(.rdx, gs(ContextField.spillRDX))
        a.jmp(.rcx)
    }

    /// A fragment's indirect entry, just before its body: the lookup table maps
    /// native PCs here, and indirect branches arrive with the application's rcx
    /// still in spillRCX (they used rcx for the jump). Fixed size, so the body is
    /// always `entry + indirectEntryBytes`.
    func emitIndirectEntry(_ a: inout Assembler) {
        a.mov(.rcx, gs(ContextField.spillRCX))
    }

    /// `mov rcx, %gs:disp32`: 65 48 8B 0C 25 disp32.
    static let indirectEntryBytes = 9

    /// `syscall` with interception: rcx and r11 are clobbered by the instruction
    /// anyway, but the flags must survive up to it, so the number check runs
    /// under pushf/popf, below the red zone (user mode keeps live data there).
    /// Matching numbers leave through a syscall exit; the host performs them.
    func mangleSyscall(_ insn: Instruction, _ bytes: UnsafeRawBufferPointer,
                       _ a: inout Assembler, _ exits: inout BlockExits) {
        a.lea(.rsp, .at(.rsp, -128))
        a.pushf()
        var branches: InlineArray<8, Int> = InlineArray(repeating: 0)
        let n = state.pointee.interceptedSyscallCount
        for i in 0..<n {
            a.cmp(.rax, imm32: Int32(bitPattern: state.pointee.interceptedSyscalls[i]))
            branches[i] = a.count
            a.jcc(.e, to: a.address)  // patched to `special` below
        }
        a.popf()
        a.lea(.rsp, .at(.rsp, 128))
        // At the copied syscall, and right after it, the state is the native one:
        // a signal that interrupts (or restarts) the call is delivered exactly.
        let blockStart = state.pointee.blockStart
        recordBoundary(cacheOffset: a.count, nativeOffset: insn.address - blockStart)
        a.bytes(bytes)
        recordBoundary(cacheOffset: a.count, nativeOffset: insn.nextAddress - blockStart)
        emitExitJump(&a, &exits, target: insn.nextAddress, condition: nil)
        let special = a.address
        for i in 0..<n { patchBranch(&a, at: branches[i], opcodeBytes: 2, to: special) }
        a.popf()
        a.lea(.rsp, .at(.rsp, 128))
        emitExitJump(&a, &exits, target: insn.address, condition: nil, syscall: true)
    }

    func failMangle(_ error: TranslateError) -> Bool {
        state.pointee.lastError = error
        return false
    }

    /// The absolute target of a relative branch (every direct transfer has one).
    func directTarget(_ insn: Instruction) -> UInt64 { insn.directBranchTarget ?? insn.nextAddress }

    /// Pushes a 64-bit native return address without touching the flags, with
    /// one 8-byte store: the `ret` that pops it soon after then gets it by store
    /// forwarding (two 4-byte stores read back as one 8-byte load stall it).
    /// Kernel text (top 2 GiB) fits a sign-extended `push imm32`; other addresses
    /// are pushed from a literal placed after the block's final jump.
    func pushReturnAddress(_ address: UInt64, _ a: inout Assembler, _ literal: inout ReturnAddressLiteral) {
        let signed = Int64(bitPattern: address)
        if signed >= Int64(Int32.min) && signed <= Int64(Int32.max) {
            a.push(imm32: Int32(signed))
        } else {
            a.push(.rip(a.address))  // disp32 patched by literal.emit
            literal.value = address
            literal.displacementAt = a.count - 4
        }
    }

    /// `mov dst, <target operand of an indirect jmp/call>`, before anything changed
    /// the registers or the stack the operand refers to.
    func loadTarget(_ insn: Instruction, into dst: GPR, _ a: inout Assembler) -> Bool {
        var operands = Operands()
        Decoder.decodeOperands(insn, into: &operands)
        guard operands.count >= 1 else { return failMangle(.unsupportedInstruction) }
        let op = operands[0]
        switch op.type {
        case .register:
            guard op.reg.cls == .gpr64, let r = GPR(rawValue: op.reg.index) else {
                return failMangle(.unsupportedInstruction)
            }
            a.mov(dst, r)
        case .memory:
            guard let m = asmMemory(op.mem, insn) else { return failMangle(.unsupportedInstruction) }
            a.mov(dst, m)
        default:
            return failMangle(.unsupportedInstruction)
        }
        return true
    }

    /// The decoder's memory operand as one the assembler can encode.
    func asmMemory(_ m: MemoryOperand, _ insn: Instruction) -> AsmMemory? {
        var segment = SegmentOverride.none
        switch m.segment {
        case 4: segment = .fs
        case 5: return nil  // %gs belongs to the translator in user mode
        default: break
        }
        var index: GPR? = nil
        if m.index.cls == .gpr64 {
            index = GPR(rawValue: m.index.index)
        } else if m.index.cls != .none {
            return nil
        }
        guard m.disp >= Int64(Int32.min) && m.disp <= Int64(Int32.max) else { return nil }
        switch m.base.cls {
        case .rip:
            return AsmMemory(base: .rip(target: insn.nextAddress &+ UInt64(bitPattern: m.disp)), segment: segment)
        case .gpr64:
            guard let base = GPR(rawValue: m.base.index) else { return nil }
            return AsmMemory(base: .register(base), index: index, scale: m.scale == 0 ? 1 : m.scale,
                             displacement: Int32(m.disp), segment: segment)
        case .none:
            return AsmMemory(base: .absolute, index: index, scale: m.scale == 0 ? 1 : m.scale,
                             displacement: Int32(m.disp), segment: segment)
        default:
            return nil
        }
    }
}

/// The 8-byte literal a `push qword [rip+disp32]` of a return address reads.
struct ReturnAddressLiteral {
    var value: UInt64 = 0
    /// Assembler offset of the push's disp32 (the push ends right after it); -1: none.
    var displacementAt = -1

    /// Emits the literal (8-byte aligned, after the block's final jump, never
    /// executed) and points the push at it.
    func emit(_ a: inout Assembler) {
        guard displacementAt >= 0 else { return }
        a.align(8)
        let at = a.address
        a.u64(value)
        let end = a.origin + UInt64(displacementAt + 4)
        a.patch32(at: displacementAt, UInt32(truncatingIfNeeded: at &- end))
    }
}
