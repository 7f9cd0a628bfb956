// SPDX-License-Identifier: GPL-2.0-only
//
// The routines every fragment shares, emitted once per translator:
//
//   fcache_return    an exit left the cache: save the application's registers and
//                    flags in the context, switch to the dispatcher stack, call the
//                    dispatcher, restore, jump to the cache PC it returned.
//   indirect_lookup  an indirect branch (ret, jmp/call through a register or memory)
//                    probes the native->cache table inline; a miss goes to
//                    fcache_return with reason `indirectExit`.
//   enter / leave    the in-process host's way into the cache from native code and
//                    back out when the translated function returns to the sentinel.
//
// Stubs reach fcache_return and indirect_lookup with `jmp *%gs:field`, so a fragment
// in any code unit can use them.

extension Translator {
    func emitRoutines() -> Bool {
        let hint = UInt64(UInt(bitPattern: state))
        guard let u = unit(near: hint, bytes: 4096) else { return false }
        var a = assembler(unit: u)
        state.pointee.fcacheReturn = a.address
        emitFcacheReturn(&a)
        a.align(16)
        state.pointee.indirectLookup = a.address
        emitIndirectLookup(&a)
        a.align(16)
        state.pointee.enter = a.address
        emitEnter(&a)
        a.align(16)
        state.pointee.leave = a.address
        emitLeave(&a)
        a.align(16)
        state.pointee.cleanCall = a.address
        emitCleanCall(&a)
        a.align(16)
        // takeover: a `ret` run translated: the caller's return address is looked
        // up like any return, so the caller continues in the cache.
        state.pointee.takeover = a.address
        a.mov(gs(ContextField.spillRCX), .rcx)
        a.pop(.rcx)
        a.jmp(gs(ContextField.indirectLookup))
        a.align(16)
        state.pointee.iretRoutine = a.address
        a.iretq()
        a.align(16)
        state.pointee.resume = a.address
        a.push(gs(ContextField.appFlags))
        a.popf()
        Translator.forEachSavedGPR { r in a.mov(r, gs(ContextField.appRegister(r))) }
        a.mov(.rsp, gs(ContextField.appRegister(.rsp)))
        a.jmp(gs(ContextField.nextCachePC))
        a.align(16)
        guard !a.failed else { return false }
        commit(unit: u, a)
        return true
    }

    /// The SysV callee-saved registers (rbx rbp r12 r13 r14 r15) by position.
    static func calleeSaved(_ i: Int) -> GPR {
        switch i {
        case 0: return .rbx
        case 1: return .rbp
        case 2: return .r12
        case 3: return .r13
        case 4: return .r14
        default: return .r15
        }
    }

    /// Every GPR but rsp, in encoding order.
    @inline(__always) static func forEachSavedGPR(_ body: (GPR) -> Void) {
        var i: UInt8 = 0
        while i < 16 {
            if i != GPR.rsp.rawValue { body(GPR(rawValue: i)!) }
            i += 1
        }
    }

    /// The xsave components the dispatcher saves: x87, SSE, AVX, MPX, AVX-512 and
    /// PKRU. AMX tile state is left out: Linux arms XFD for it until a program asks
    /// for it, and tiles are not touched by the dispatcher anyway.
    static let extendedStateMask: UInt64 = 0x2FF

    /// Saves the application state into the context and moves to the dispatcher
    /// stack (flags saved, DF cleared, vector state saved when configured). Expects
    /// the application's rax in spillRAX; rax is free.
    func emitSaveApplicationState(_ a: inout Assembler) {
        a.mov(.rax, gs(ContextField.spillRAX))
        Translator.forEachSavedGPR { r in a.mov(gs(ContextField.appRegister(r)), r) }
        a.mov(gs(ContextField.appRegister(.rsp)), .rsp)
        // Off the application stack before pushing anything: user code may keep live
        // data in the red zone below rsp.
        a.mov(.rsp, gs(ContextField.dispatcherStack))
        a.pushf()
        let pushed = a.address
        a.pop(gs(ContextField.appFlags))
        if state.pointee.limits.maskInterruptsInDispatcher {
            let popped = a.address
            a.push(imm32: 2)  // IF, TF and DF clear (bit 1 is always set)
            a.popf()
            // Two routines save this way (fcache_return, the clean call).
            let n = state.pointee.flagsSaveWindowCount
            if 3 * n < state.pointee.flagsSaveWindows.count {
                state.pointee.flagsSaveWindows[3 * n] = pushed
                state.pointee.flagsSaveWindows[3 * n + 1] = popped
                state.pointee.flagsSaveWindows[3 * n + 2] = a.address
                state.pointee.flagsSaveWindowCount = n + 1
            }
        } else {
            a.cld()  // the C ABI wants DF clear
        }
        if state.pointee.limits.saveExtendedState {
            a.lea(.rsp, .at(.rsp, -(state.pointee.limits.extendedStateBytes + 64)))
            a.and(.rsp, imm32: -64)
            a.mov(.rax, imm64: Translator.extendedStateMask)
            a.mov(.rdx, imm64: 0)
            a.xsave64(.at(.rsp))
        }
    }

    /// Where the application's flags are when an interrupt arrives at `pc`, if `pc`
    /// lies between a routine's `pushf` and its masking `popf`. An interrupt
    /// delayed there must set TF in them too: the routine would otherwise restore
    /// flags captured before the interrupt, and the stepping would end unseen.
    public func savedFlags(at pc: UInt64) -> SavedFlags? {
        let w = state.pointee.flagsSaveWindows
        for i in 0..<state.pointee.flagsSaveWindowCount {
            if pc >= w[3 * i] && pc < w[3 * i + 1] { return .stackTop }
            if pc >= w[3 * i + 1] && pc < w[3 * i + 2] { return .context }
        }
        return nil
    }

    /// The inverse of emitSaveApplicationState, then `jmp *%gs:resume`.
    func emitRestoreApplicationState(_ a: inout Assembler, resume: Int32) {
        if state.pointee.limits.saveExtendedState {
            a.mov(.rax, imm64: Translator.extendedStateMask)
            a.mov(.rdx, imm64: 0)
            a.xrstor64(.at(.rsp))
        }
        a.push(gs(ContextField.appFlags))
        a.popf()
        Translator.forEachSavedGPR { r in a.mov(r, gs(ContextField.appRegister(r))) }
        a.mov(.rsp, gs(ContextField.appRegister(.rsp)))
        a.jmp(gs(resume))
    }

    /// A clean call: `cleanCallFunction(context, cleanCallArgument)` with the whole
    /// application state in the context, then back to `cleanCallReturn`. The
    /// function may change the saved registers; the application continues with
    /// the changed values.
    func emitCleanCall(_ a: inout Assembler) {
        emitSaveApplicationState(&a)
        a.mov(.rdi, gs(ContextField.selfPointer))
        a.mov(.rsi, gs(ContextField.cleanCallArgument))
        state.pointee.cleanCallCall = a.address
        a.call(gs(ContextField.cleanCallFunction))
        emitRestoreApplicationState(&a, resume: ContextField.cleanCallReturn)
    }

    /// Entered by a stub or a lookup miss: app rax is in spillRAX, rax holds the
    /// exit reason (link-stub index or indirectExit); every other register and the
    /// flags are the application's.
    func emitFcacheReturn(_ a: inout Assembler) {
        a.mov(gs(ContextField.exitReason), .rax)
        emitSaveApplicationState(&a)
        a.mov(.rdi, gs(ContextField.selfPointer))
        state.pointee.fcacheReturnCall = a.address
        a.call(gs(ContextField.dispatchFunction))
        a.mov(gs(ContextField.nextCachePC), .rax)
        emitRestoreApplicationState(&a, resume: ContextField.nextCachePC)
    }

    /// Entered with the app's rcx in spillRCX and the native target in rcx.
    /// Arithmetic flags are kept in ax (lahf + seto) rather than pushed: pushf would
    /// write below the application's stack pointer.
    func emitIndirectLookup(_ a: inout Assembler) {
        a.mov(gs(ContextField.spillRAX), .rax)
        a.lahf()
        a.seto(.rax)
        a.mov(gs(ContextField.spillRDX), .rdx)
        a.movzxWord(.rdx, .rcx)
        a.shl(.rdx, 3)
        a.add(.rdx, gs(ContextField.lookupTable))  // &tags[slot]
        a.not(.rcx)  // tags hold ~pc (LookupTable)
        let loop = a.address
        a.cmp(.rcx, .at(.rdx))
        let hitBranch = a.count
        a.jcc(.e, to: a.address)  // patched below
        a.cmp(.at(.rdx), imm8: 0)
        let missBranch = a.count
        a.jcc(.e, to: a.address)  // patched below
        a.add(.rdx, imm32: 8)
        a.jmp(to: loop)

        // Hit: jump to the fragment's indirect entry, which restores rcx.
        let hit = a.address
        a.mov(.rcx, .at(.rdx, LookupTable.indirectTargetsOffset))
        a.addAL(0x7F)  // OF back from al (seto), then the rest from ah
        a.sahf()
        a.mov(.rax, gs(ContextField.spillRAX))
        a.mov(.rdx, gs(ContextField.spillRDX))
        a.jmp(.rcx)

        // Miss: record the target and leave through fcache_return.
        let miss = a.address
        a.not(.rcx)
        a.mov(gs(ContextField.indirectTarget), .rcx)
        a.addAL(0x7F)
        a.sahf()
        a.mov(.rcx, gs(ContextField.spillRCX))
        a.mov(.rdx, gs(ContextField.spillRDX))
        a.mov(.rax, imm64: ContextField.indirectExit)
        a.jmp(gs(ContextField.fcacheReturn))

        patchBranch(&a, at: hitBranch, opcodeBytes: 2, to: hit)
        patchBranch(&a, at: missBranch, opcodeBytes: 2, to: miss)
    }

    /// Patches the rel32 of a branch emitted at offset `at` in `a`.
    func patchBranch(_ a: inout Assembler, at offset: Int, opcodeBytes: Int, to target: UInt64) {
        let end = a.origin + UInt64(offset + opcodeBytes + 4)
        a.patch32(at: offset + opcodeBytes, UInt32(bitPattern: Int32(truncatingIfNeeded: Int64(bitPattern: target &- end))))
    }

    /// `UInt64 enter(void)`, C ABI: saves the native callee-saved registers, builds
    /// the application's stack below the caller's (with the sentinel as return
    /// address), loads the application registers from the context and jumps to
    /// nextCachePC.
    func emitEnter(_ a: inout Assembler) {
        for i in 0..<6 { a.mov(gs(ContextField.nativeSaved + Int32(i * 8)), Translator.calleeSaved(i)) }
        a.mov(gs(ContextField.nativeSaved + 48), .rsp)
        // enterStackGap below the caller's frame, 16-byte aligned, then the return
        // address: the function starts with rsp = 8 mod 16 as after a call.
        a.lea(.rax, .at(.rsp, -state.pointee.limits.enterStackGap))
        a.and(.rax, imm32: -16)
        a.lea(.rax, .at(.rax, -8))
        a.mov(.rcx, gs(ContextField.sentinel))
        a.mov(.at(.rax), .rcx)
        a.mov(gs(ContextField.appRegister(.rsp)), .rax)
        Translator.forEachSavedGPR { r in a.mov(r, gs(ContextField.appRegister(r))) }
        a.mov(.rsp, gs(ContextField.appRegister(.rsp)))
        a.jmp(gs(ContextField.nextCachePC))
    }

    /// Back to the native caller of `enter`, with the application's rax as result.
    func emitLeave(_ a: inout Assembler) {
        for i in 0..<6 { a.mov(Translator.calleeSaved(i), gs(ContextField.nativeSaved + Int32(i * 8))) }
        a.mov(.rsp, gs(ContextField.nativeSaved + 48))
        a.ret()
    }
}
