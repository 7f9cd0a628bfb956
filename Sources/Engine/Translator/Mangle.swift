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
                emitInlineLookup(target: beginLookup(register: r, &a), &a)
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
                let target = beginLookup(register: r, &a)
                pushReturnAddress(insn.nextAddress, &a, &literal)
                emitInlineLookup(target: target, &a)
            } else {
                pushReturnAddress(insn.nextAddress, &a, &literal)
                emitExitJump(&a, &exits, target: directTarget(insn), condition: nil)
            }
        case .callIndirect:
            guard let target = beginLookup(insn, &a) else { return false }
            pushReturnAddress(insn.nextAddress, &a, &literal)
            emitInlineLookup(target: target, &a)
        case .jmpIndirect:
            guard let target = beginLookup(insn, &a) else { return false }
            emitInlineLookup(target: target, &a)
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
            recordBoundary(cacheOffset: a.count, native: insn.nextAddress)
        default:
            return failMangle(.unsupportedInstruction)
        }
        return true
    }

    /// `ret` / `ret imm16`: the native return address is popped and looked up.
    func mangleReturn(popping extra: Int32, _ a: inout Assembler) {
        a.mov(gs(ContextField.spillRCX), .rcx)
        a.mov(gs(ContextField.spillRAX), .rax)
        a.pop(.rax)
        if extra != 0 { a.lea(.rsp, .at(.rsp, extra)) }
        emitInlineLookup(target: .scratchRAX, &a)
    }

    /// The start of an indirect jmp/call's lookup: rcx spilled, and the target
    /// where `emitInlineLookup` reads it, before anything changed the registers
    /// or the stack the operand refers to.
    func beginLookup(_ insn: Instruction, _ a: inout Assembler) -> LookupTarget? {
        var operands = Operands()
        Decoder.decodeOperands(insn, into: &operands)
        guard operands.count >= 1 else { _ = failMangle(.unsupportedInstruction); return nil }
        let op = operands[0]
        switch op.type {
        case .register:
            guard op.reg.cls == .gpr64, let r = GPR(rawValue: op.reg.index) else {
                _ = failMangle(.unsupportedInstruction); return nil
            }
            return beginLookup(register: r, &a)
        case .memory:
            guard let m = asmMemory(op.mem, insn) else { _ = failMangle(.unsupportedInstruction); return nil }
            a.mov(gs(ContextField.spillRCX), .rcx)
            a.mov(gs(ContextField.spillRAX), .rax)
            a.mov(.rax, m)
            return .scratchRAX
        default:
            _ = failMangle(.unsupportedInstruction); return nil
        }
    }

    /// `register` holds the target: it is read in place unless the lookup needs it
    /// (rcx) or the call's push moves it (rsp).
    func beginLookup(register r: GPR, _ a: inout Assembler) -> LookupTarget {
        a.mov(gs(ContextField.spillRCX), .rcx)
        if r != .rcx && r != .rsp { return .register(r) }
        a.mov(gs(ContextField.spillRAX), .rax)
        a.mov(.rax, r)
        return .scratchRAX
    }

    /// The first probe of the indirect-branch lookup, inline at each site so that
    /// each site's final indirect jump has its own branch-predictor entry. Entered
    /// with the application's rcx in spillRCX and the target as `beginLookup` left
    /// it. It needs only rcx: the slot is the target's low 16 bits (`movzx`), the
    /// tag compare is a `lea` and `jrcxz` (no flags, so no lahf/sahf), and a hit
    /// jumps through the table's cache-PC word to the fragment's indirect entry,
    /// which restores rcx (`emitIndirectEntry`). A collision or miss continues in
    /// the shared routine, entered with the target in rcx. The table must sit at
    /// an absolute disp32 (the user host maps it low, the kernel host in the code
    /// pool); otherwise every lookup takes the shared routine.
    func emitInlineLookup(target: LookupTarget, _ a: inout Assembler) {
        let t: GPR
        switch target {
        case .register(let r): t = r
        case .scratchRAX: t = .rax
        }
        func restoreScratch(_ a: inout Assembler) {
            if case .scratchRAX = target { a.mov(.rax, gs(ContextField.spillRAX)) }
        }
        let tags = Int64(Int(bitPattern: state.pointee.indirect.tags))
        let absolute = tags >= Int64(Int32.min) && tags + Int64(LookupTable.indirectBytes) <= Int64(Int32.max)
        var jrcxz = -1
        if state.pointee.limits.inlineLookup && absolute {
            a.movzxWord(.rcx, t)  // the slot
            a.mov(.rcx, AsmMemory(base: .absolute, index: .rcx, scale: 8, displacement: Int32(tags)))  // ~tag
            a.lea(.rcx, AsmMemory(base: .register(.rcx), index: t, scale: 1, displacement: 1))  // target - tag
            jrcxz = a.count
            a.jrcxz(0)  // to the hit path, patched below
        }
        a.mov(.rcx, t)
        restoreScratch(&a)
        a.jmp(gs(ContextField.indirectLookup))
        guard jrcxz >= 0 else { return }
        let hit = a.count
        if !a.overflowed { a.base.storeBytes(of: UInt8(hit - (jrcxz + 2)), toByteOffset: jrcxz + 1, as: UInt8.self) }
        a.movzxWord(.rcx, t)
        restoreScratch(&a)
        a.jmp(AsmMemory(base: .absolute, index: .rcx, scale: 8,
                        displacement: Int32(tags) + LookupTable.indirectTargetsOffset))
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
        recordBoundary(cacheOffset: a.count, native: insn.address)
        a.bytes(bytes)
        recordBoundary(cacheOffset: a.count, native: insn.nextAddress)
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

/// Where an indirect branch's native target is when its lookup starts.
enum LookupTarget {
    /// In an application register that the branch leaves unchanged (`jmp *%rdx`).
    case register(GPR)
    /// In rax, whose application value is in spillRAX.
    case scratchRAX
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
