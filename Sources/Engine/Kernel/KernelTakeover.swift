// SPDX-License-Identifier: GPL-2.0-only
//
// Kernel takeover (DESIGN.md, execution model). Attach points every CPU's IDT (a
// copy of the native gates with new offsets, same IST and DPL) and syscall entry
// MSR at stubs emitted into the code cache; the kernel then runs translated until
// it returns to user mode through its native exit tails.
//
// Entries:
//   syscall        swapgs; count; jump to entry_SYSCALL_64's translation (whose own
//                  swapgs the translator drops: translated code always has the
//                  kernel's GS, where its spills and counters live).
//   from user      swapgs; count; jump to the vector's handler translation.
//   from kernel    the trap handler (Swift, interrupts off) looks at the interrupted
//                  PC: native code is delivered to as it is (an interrupt pulls that
//                  code into the cache when its iret returns); a cache PC at a
//                  native instruction boundary becomes that native PC, so handlers
//                  see the native state; a cache PC inside instrumentation or
//                  mangling delays an interrupt: the frame goes back with IF clear
//                  and TF set, and the #DB stub delivers the interrupt, with a frame
//                  built as the CPU builds it, at the first native boundary (or
//                  the dispatcher does, when the stepped code exits to it). The
//                  stepping must survive: a routine that saved the flags before
//                  the interrupt gets TF in the saved copy (`savedFlags(at:)`),
//                  a faulting instruction at a boundary lets the interrupt in
//                  first, and an exception handler entered meanwhile (TF cleared
//                  for it) does not deliver: its iretq steps on.
//   exceptions     raised in kernel mode outside the cache (native tails, which may
//                  run with the user's GS) go straight to the native handler.
// Returns: a translated kernel-bound iretq goes back into the cache (the frame's
// rip becomes its translation); user-bound returns run natively.
// kdbt's own module text is never translated (it manages the cache).
//
// Detach: a detaching flag makes every exit and delivery native, links and the
// lookup table are cleared, and the native IDT and MSR go back on each CPU by an
// IPI that arrives through our IDT: when it runs on a CPU, that CPU has left the
// cache. Then the cache is freed.

#if hasFeature(Embedded)

#if canImport(Protocol)
import Protocol
#endif

@_extern(c, "kdbt_host_symbol")
func kdbt_host_symbol(_ name: UnsafePointer<UInt8>) -> UInt64
@_extern(c, "kdbt_host_is_function_start")
func kdbt_host_is_function_start(_ address: UInt64) -> Int32
@_extern(c, "kdbt_host_has_fault_fixup")
func kdbt_host_has_fault_fixup(_ address: UInt64) -> Int32
@_extern(c, "kdbt_host_c_function_at")
func kdbt_host_c_function_at(_ address: UInt64) -> Int32
@_extern(c, "kdbt_host_return_page")
func kdbt_host_return_page() -> UnsafeMutableRawPointer?
@_extern(c, "kdbt_host_pti_enabled")
func kdbt_host_pti_enabled() -> Int32
@_extern(c, "kdbt_host_module_text_start")
func kdbt_host_module_text_start() -> UInt64
@_extern(c, "kdbt_host_module_text_end")
func kdbt_host_module_text_end() -> UInt64
@_extern(c, "kdbt_host_idt_copy")
func kdbt_host_idt_copy() -> UnsafeMutableRawPointer?
@_extern(c, "kdbt_host_kernel_cs")
func kdbt_host_kernel_cs() -> UInt64
@_extern(c, "kdbt_host_kernel_ss")
func kdbt_host_kernel_ss() -> UInt64
@_extern(c, "kdbt_host_read_lstar")
func kdbt_host_read_lstar() -> UInt64
@_extern(c, "kdbt_host_dispatcher_stacks_create")
func kdbt_host_dispatcher_stacks_create() -> Int
@_extern(c, "kdbt_host_dispatcher_stack_top")
func kdbt_host_dispatcher_stack_top(_ cpu: UInt32) -> UInt64
@_extern(c, "kdbt_host_cpu_possible")
func kdbt_host_cpu_possible(_ cpu: UInt32) -> Int32
@_extern(c, "kdbt_host_cpu_ids")
func kdbt_host_cpu_ids() -> UInt32
@_extern(c, "kdbt_host_cpu_context")
func kdbt_host_cpu_context(_ cpu: UInt32) -> UnsafeMutableRawPointer
@_extern(c, "kdbt_host_load_takeover")
func kdbt_host_load_takeover(_ syscallStub: UInt64)
@_extern(c, "kdbt_host_load_native")
func kdbt_host_load_native()
@_extern(c, "kdbt_host_takeover_free")
func kdbt_host_takeover_free()
@_extern(c, "kdbt_host_translator_lock")
func kdbt_host_translator_lock()
@_extern(c, "kdbt_host_translator_unlock")
func kdbt_host_translator_unlock()
@_extern(c, "kdbt_host_translator_lock_irqsave")
func kdbt_host_translator_lock_irqsave() -> UInt
@_extern(c, "kdbt_host_translator_unlock_irqrestore")
func kdbt_host_translator_unlock_irqrestore(_ flags: UInt)
@_extern(c, "kdbt_host_clear_dr6")
func kdbt_host_clear_dr6()
@_extern(c, "kdbt_host_ktime_ns")
func kdbt_host_ktime_ns() -> UInt64
@_extern(c, "kdbt_host_code_pool_create")
func kdbt_host_code_pool_create(_ bytes: Int) -> Int
@_extern(c, "kdbt_host_code_pool_base")
func kdbt_host_code_pool_base() -> UInt64
@_extern(c, "kdbt_host_code_pool_bytes")
func kdbt_host_code_pool_bytes() -> Int

/// What attach set up; in the attach arena, reached from every CPU's context.
struct TakeoverState {
    var translator: UnsafeMutablePointer<TranslatorState>
    var arena: UnsafeMutableRawPointer
    var detaching: UInt64
    var poolStart: UInt64
    var poolBytes: UInt64
    var attachedAt: UInt64
    var insCountOffset: Int32
    /// Native IDT targets and their translations, by vector (0: not taken over).
    var nativeHandler: UnsafeMutablePointer<UInt64>
    var cacheHandler: UnsafeMutablePointer<UInt64>
    /// Our stub for each taken-over vector.
    var stubAddress: UnsafeMutablePointer<UInt64>
    /// Depth of text_poke_bp_batch calls (text_mutex serializes them): the
    /// text_poke calls inside one flush once, at the end of the batch.
    var patchBatchDepth: UInt64 = 0
    /// A byte in the stubs' code unit, set at detach: from then on the entries
    /// from user mode (and the syscall entry) go to the native handlers. The
    /// stubs test it RIP-relative, before any GS is usable.
    var detachFlag: UInt64 = 0
    /// inscount's data and per-block profile, when it runs.
    var insCountData: UnsafeMutablePointer<InsCountData>? = nil
    /// heapcheck, when it runs.
    var heapCheck: UnsafeMutablePointer<KernelHeapCheck>? = nil
    /// The checking tools' report ring (in the attach arena), when one runs.
    var findings: UnsafeMutablePointer<FindingsRing>? = nil
    /// stackguard, when it runs.
    var stackGuard: UnsafeMutablePointer<StackGuardState>? = nil
    /// The tools attached and their settings, defaults resolved (for `status`).
    var tools = AttachRequest(tools: 0)
}

/// RFLAGS bits the trap handler changes.
private let flagTF: UInt64 = 1 << 8
private let flagIF: UInt64 = 1 << 9

/// Vectors whose exceptions push an error code.
@inline(__always) func hasErrorCode(_ v: UInt64) -> Bool {
    switch v {
    case 8, 10, 11, 12, 13, 14, 17, 21, 29, 30: return true
    default: return false
    }
}

/// Faults whose frame points at the faulting instruction, which runs again after
/// the handler returns (traps, aborts and NMIs are not).
@inline(__always) func isRestartableFault(_ v: UInt64) -> Bool {
    switch v {
    case 0, 5, 6, 7, 10, 11, 12, 13, 14, 16, 17, 19: return true
    default: return false
    }
}

extension KernelHost {
    var extraFeatures: FeatureBits { FeatureBits.selfTest.union(.attach) }

    static var takeoverLimits: TranslatorLimits {
        var limits = TranslatorLimits()
        // Invalidation drops translations without reclaiming them (a CPU may still
        // run an old fragment), so there is room for the working set many times.
        limits.maxUnits = 64
        limits.unitBytes = 1 << 20
        limits.maxFragments = 1 << 18
        limits.maxStubs = 1 << 19
        limits.maxBoundaries = 1 << 22
        limits.lookupEntries = 1 << 17
        // Every allocation call site's return is a post site for heapcheck, and
        // every task may have an allocation in flight.
        limits.postSiteEntries = 1 << 16
        limits.wrapFrameEntries = 1 << 16
        limits.lookupInCodeMemory = true
        limits.saveExtendedState = false
        limits.maskInterruptsInDispatcher = true
        return limits
    }

    func attach(_ request: inout AttachRequest, slot: UnsafeMutablePointer<UnsafeMutableRawPointer?>) -> Int32 {
        attach(&request, slot: slot, carryFindings: false)
    }

    func retool(_ request: inout AttachRequest, slot: UnsafeMutablePointer<UnsafeMutableRawPointer?>) -> Int32 {
        if kdbt_host_pti_enabled() != 0 { request.refusal = AttachRefusal.pageTableIsolation.rawValue; return 0 }
        if slot.pointee != nil {
            var detached = DetachRequest()
            let result = detach(&detached, slot: slot)
            if result != 0 { return result }
        }
        return attach(&request, slot: slot, carryFindings: true)
    }

    private func attach(_ request: inout AttachRequest, slot: UnsafeMutablePointer<UnsafeMutableRawPointer?>,
                        carryFindings: Bool) -> Int32 {
        let started = kdbt_host_ktime_ns()
        guard slot.pointee == nil else { request.refusal = AttachRefusal.alreadyAttached.rawValue; return 0 }
        if kdbt_host_pti_enabled() != 0 { request.refusal = AttachRefusal.pageTableIsolation.rawValue; return 0 }
        let refusal = setUp(&request, slot: slot, carryFindings: carryFindings)
        if refusal != .none {
            request.refusal = refusal.rawValue
            return 0
        }
        request.attachNanoseconds = kdbt_host_ktime_ns() &- started
        return 0
    }

    private func setUp(_ request: inout AttachRequest, slot: UnsafeMutablePointer<UnsafeMutableRawPointer?>,
                       carryFindings: Bool) -> AttachRefusal {
        let lstar = kdbt_host_read_lstar()
        let entrySyscall = symbol("entry_SYSCALL_64")
        let sysretTail = symbol("entry_SYSRETQ_unsafe_stack")
        let iretTail = symbol("swapgs_restore_regs_and_return_to_usermode")
        guard lstar != 0, lstar == entrySyscall, sysretTail != 0, iretTail != 0 else { return .unexpectedSyscallEntry }
        var first: InlineArray<3, UInt8> = InlineArray(repeating: 0)
        guard kdbt_host_read_code(&first, lstar, 3) == 3, first[0] == 0x0F, first[1] == 0x01, first[2] == 0xF8
        else { return .unexpectedSyscallEntry }

        let limits = KernelHost.takeoverLimits
        // Past the cache: the lookup table, inscount's per-block counters and
        // heapcheck's page table.
        let heapCheckTable = request.tools & ToolBits.heapcheck != 0 ? Int(kdbt_hc_direct_map_pages()) * 8 : 0
        let poolBytes = limits.maxUnits * limits.unitBytes + LookupTable.indirectBytes + limits.maxFragments * 8 + heapCheckTable
        guard kdbt_host_code_pool_create(poolBytes) == 0
        else { return .outOfMemory }
        guard let idt = kdbt_host_idt_copy() else { kdbt_host_takeover_free(); return .unexpectedIDT }
        let arenaBytes = limits.arenaBytes + MemoryLayout<TakeoverState>.stride + 3 * 256 * 8 + 256 + KernelFindings.arenaBytes
            + StackGuard.arenaBytes(cpus: Int(kdbt_host_cpu_ids()))
            + limits.maxFragments * 8 + MemoryLayout<InsCountData>.stride + MemoryLayout<InsCountProfile>.stride + 64
        guard kdbt_host_dispatcher_stacks_create() == 0, let block = allocateArena(bytes: arenaBytes) else {
            kdbt_host_takeover_free()
            return .outOfMemory
        }
        var arena = Arena(base: block, capacity: arenaBytes)
        var heapCheck: UnsafeMutablePointer<KernelHeapCheck>? = nil
        // Everything allocated so far goes back.
        func outOfMemory() -> AttachRefusal {
            if let kh = heapCheck { KernelHeapCheck.destroy(kh, free: { freeArena($0) }) }
            freeArena(block)
            kdbt_host_takeover_free()
            return .outOfMemory
        }
        let functions = TranslatorHostFunctions(
            allocateCode: { bytes, near in kdbt_host_code_alloc(bytes, near) },
            readCode: { destination, address, count in kdbt_host_read_code(destination, address, count) },
            lock: kdbt_host_translator_lock, unlock: kdbt_host_translator_unlock,
            isFunctionStart: kdbt_host_is_function_start, hasFaultFixup: kdbt_host_has_fault_fixup,
            isCFunction: kdbt_host_c_function_at)
        guard let ts = arena.allocate(TakeoverState.self),
              let native = arena.allocate(bytes: 256 * 8, alignment: 8),
              let cache = arena.allocate(bytes: 256 * 8, alignment: 8),
              let stubTable = arena.allocate(bytes: 256 * 8, alignment: 8),
              let t = Translator.create(in: &arena, host: functions, limits: limits,
                                        contextGSOffset: Int32(kdbt_host_context_gs_offset()))
        else { return outOfMemory() }
        var insCountOffset: Int32 = -1
        var insCountData: UnsafeMutablePointer<InsCountData>? = nil
        if request.tools & ToolBits.null != 0 { _ = t.register(NullTool.registration, storageBytes: 0) }
        if request.tools & ToolBits.inscount != 0 {
            // Per-block counts for `kdbt report`: counters in the code pool (within
            // RIP reach of the cache), one slot per fragment.
            guard let data = arena.allocate(InsCountData.self), let profile = arena.allocate(InsCountProfile.self),
                  let starts = arena.allocate(bytes: limits.maxFragments * 8, alignment: 8),
                  let counters = kdbt_host_code_alloc(limits.maxFragments * 8, 0)
            else { return outOfMemory() }
            counters.initializeMemory(as: UInt8.self, repeating: 0, count: limits.maxFragments * 8)
            profile.initialize(to: InsCountProfile(
                counters: counters.bindMemory(to: UInt64.self, capacity: limits.maxFragments),
                blockStart: starts.bindMemory(to: UInt64.self, capacity: limits.maxFragments),
                capacity: limits.maxFragments))
            data.initialize(to: InsCountData(profile: profile))
            if t.register(InsCount.registration(data: data), storageBytes: InsCount.storageBytes) {
                insCountOffset = t.storageOffset(ofTool: t.state.pointee.toolCount - 1) + InsCount.counterOffset
                insCountData = data
            }
        }
        var findings: UnsafeMutablePointer<FindingsRing>? = nil
        if request.tools & ToolBits.checking != 0 {
            findings = KernelFindings.create(in: &arena)
            guard let ring = findings else { return outOfMemory() }
            if carryFindings { KernelFindings.adoptKept(ring) }
        }
        var resolved = AttachRequest(tools: request.tools)
        if request.tools & ToolBits.heapcheck != 0, let ring = findings {
            let redzone = request.redzoneBytes != 0 ? UInt64(request.redzoneBytes) : KernelHeapCheck.defaultRedzone
            let quarantine = request.quarantineBytes != 0 ? request.quarantineBytes : KernelHeapCheck.defaultQuarantine
            resolved.redzoneBytes = UInt32(redzone)
            resolved.quarantineBytes = quarantine
            heapCheck = KernelHeapCheck.create(t, redzone: redzone, quarantine: quarantine, findings: ring,
                                               allocate: { allocateArena(bytes: $0) }, free: { freeArena($0) })
            guard heapCheck != nil else { return outOfMemory() }
        }
        var stackGuard: UnsafeMutablePointer<StackGuardState>? = nil
        if request.tools & ToolBits.stackguard != 0, let ring = findings {
            let threshold = request.stackThreshold != 0 ? UInt64(request.stackThreshold) : KernelStackGuard.defaultThreshold
            resolved.stackThreshold = UInt32(threshold)
            stackGuard = KernelStackGuard.create(t, in: &arena, threshold: threshold, findings: ring)
            guard stackGuard != nil else { return outOfMemory() }
        }
        // Native: the return-to-user tails (their faults are recognised by their
        // native addresses, and they switch to the user's GS), and kdbt itself.
        _ = t.addNativeExit(sysretTail, end: sysretTail &+ 1)
        _ = t.addNativeExit(iretTail, end: iretTail &+ 1)
        // kdbt's functions that translated code calls (its file operations, IPI
        // callbacks, exported symbols) return into the cache, not natively.
        // Retpolines run as the indirect branches they stand for.
        _ = t.setBranchThunks(indirect: { symbol(KernelHost.retpolineThunk($0)) }, return: symbol("__x86_return_thunk"))
        guard let returnRoutine = emitReturnRoutine(t) else { return outOfMemory() }
        _ = t.addNativeExit(kdbt_host_module_text_start(), end: kdbt_host_module_text_end(), returnThrough: returnRoutine)

        let nativeHandler = native.bindMemory(to: UInt64.self, capacity: 256)
        let cacheHandler = cache.bindMemory(to: UInt64.self, capacity: 256)
        let stubAddress = stubTable.bindMemory(to: UInt64.self, capacity: 256)
        nativeHandler.initialize(repeating: 0, count: 256)
        cacheHandler.initialize(repeating: 0, count: 256)
        stubAddress.initialize(repeating: 0, count: 256)
        ts.initialize(to: TakeoverState(
            translator: t.state, arena: block, detaching: 0, poolStart: kdbt_host_code_pool_base(),
            poolBytes: UInt64(kdbt_host_code_pool_bytes()), attachedAt: 0, insCountOffset: insCountOffset,
            nativeHandler: nativeHandler, cacheHandler: cacheHandler, stubAddress: stubAddress,
            insCountData: insCountData, heapCheck: heapCheck, findings: findings, stackGuard: stackGuard,
            tools: resolved))
        if let kh = heapCheck { KernelHeapCheck.wrapAllocator(t, kh, symbol: { symbol($0) }) }

        // Cache consistency: the kernel's text patching runs translated, so its
        // choke points are wrapped; when one returns, translations are dropped.
        let tsData = UnsafeMutableRawPointer(ts)
        let batch = symbol("text_poke_bp_batch")
        if batch != 0 { _ = t.wrap(address: batch, pre: patchBatchBegin, post: patchBatchEnd, data: tsData) }
        func invalidateAfter(_ name: StaticString) {
            let address = symbol(name)
            if address != 0 { _ = t.wrap(address: address, pre: nil, post: patchDone, data: tsData) }
        }
        invalidateAfter("text_poke")
        invalidateAfter("text_poke_copy")
        invalidateAfter("text_poke_set")
        invalidateAfter("text_poke_kgdb")

        // Every CPU's context: this translator, its dispatcher stack, our state.
        var cpu: UInt32 = 0
        while cpu < kdbt_host_cpu_ids() {
            if kdbt_host_cpu_possible(cpu) != 0 {
                let context = kdbt_host_cpu_context(cpu)
                t.initializeContext(context, dispatcherStackTop: kdbt_host_dispatcher_stack_top(cpu),
                                    dispatch: UInt64(UInt(bitPattern: unsafeBitCast(kernelDispatch, to: UnsafeRawPointer.self))),
                                    sentinel: 0)
                context.storeBytes(of: UInt64(UInt(bitPattern: ts)), toByteOffset: Int(ContextField.hostState),
                                   as: UInt64.self)
                if let sg = stackGuard {
                    KernelStackGuard.initialize(sg, context: context, gsOffset: t.state.pointee.contextGSOffset)
                }
            }
            cpu += 1
        }

        // Entry points translated ahead, so the stubs can jump straight in.
        let syscallCache = t.translate(lstar)
        guard syscallCache != 0 else { return abandon(ts, block) }
        var v = 0
        while v < 256 {
            let gate = idt + 16 * v
            if let handler = Gate.target(gate), Gate.takenOver(gate, vector: v) {
                nativeHandler[v] = handler
                cacheHandler[v] = t.translate(handler)  // 0: deliver natively
            }
            v += 1
        }
        guard let syscallStub = emitEntryStubs(t, ts, syscallEntry: syscallCache, nativeSyscall: lstar) else { return abandon(ts, block) }
        v = 0
        while v < 256 {
            if nativeHandler[v] != 0 { Gate.setTarget(idt + 16 * v, stubAddress[v]) }
            v += 1
        }
        ts.pointee.attachedAt = kdbt_host_ktime_ns()
        if heapCheck != nil { kdbt_hc_set_active(1) }
        KernelHost.setReturnIntoCache(true)
        request.blocks = t.state.pointee.stats.blocks
        request.cpus = onlineCPUs
        slot.pointee = UnsafeMutableRawPointer(ts)
        kdbt_host_load_takeover(syscallStub)
        return .none
    }

    /// The return page's layout: a flag word (1 while attached), then the
    /// routine kdbt's functions return through when translated code called them:
    /// `[rsp]` is the caller's native return address; while attached it goes on
    /// at that address's translation (as a translated `ret`), otherwise natively.
    static let returnFlagOffset = 0
    static let returnRoutineOffset = 16

    private func emitReturnRoutine(_ t: Translator) -> UInt64? {
        guard let page = kdbt_host_return_page() else { return nil }
        let origin = UInt64(UInt(bitPattern: page))
        var a = Assembler(base: page + KernelHost.returnRoutineOffset, capacity: 256,
                          origin: origin + UInt64(KernelHost.returnRoutineOffset))
        a.cmp(.rip(origin + UInt64(KernelHost.returnFlagOffset)), imm8: 0)
        let toNative = a.count
        a.jcc(.e, to: a.address)
        a.mov(t.gs(ContextField.spillRCX), .rcx)
        a.pop(.rcx)
        a.jmp(t.gs(ContextField.indirectLookup))
        let native = a.address
        a.ret()
        guard !a.failed else { return nil }
        a.patch32(at: toNative + 2, UInt32(truncatingIfNeeded: native &- (a.origin + UInt64(toNative + 6))))
        return origin + UInt64(KernelHost.returnRoutineOffset)
    }

    /// Whether kdbt's functions return into the cache (see emitReturnRoutine).
    static func setReturnIntoCache(_ on: Bool) {
        guard let page = kdbt_host_return_page() else { return }
        page.storeBytes(of: UInt64(on ? 1 : 0), toByteOffset: returnFlagOffset, as: UInt64.self)
    }

    private func abandon(_ ts: UnsafeMutablePointer<TakeoverState>, _ block: UnsafeMutableRawPointer) -> AttachRefusal {
        if let kh = ts.pointee.heapCheck { KernelHeapCheck.destroy(kh, free: { freeArena($0) }) }
        freeArena(block)
        kdbt_host_takeover_free()
        return .untranslatableEntry
    }

    func symbol(_ name: StaticString) -> UInt64 { kdbt_host_symbol(name.utf8Start) }

    /// arch/x86/lib/retpoline.S: one thunk per register but rsp.
    static func retpolineThunk(_ r: GPR) -> StaticString {
        switch r {
        case .rax: return "__x86_indirect_thunk_rax"
        case .rcx: return "__x86_indirect_thunk_rcx"
        case .rdx: return "__x86_indirect_thunk_rdx"
        case .rbx: return "__x86_indirect_thunk_rbx"
        case .rsp: return "__x86_indirect_thunk_rsp"
        case .rbp: return "__x86_indirect_thunk_rbp"
        case .rsi: return "__x86_indirect_thunk_rsi"
        case .rdi: return "__x86_indirect_thunk_rdi"
        case .r8: return "__x86_indirect_thunk_r8"
        case .r9: return "__x86_indirect_thunk_r9"
        case .r10: return "__x86_indirect_thunk_r10"
        case .r11: return "__x86_indirect_thunk_r11"
        case .r12: return "__x86_indirect_thunk_r12"
        case .r13: return "__x86_indirect_thunk_r13"
        case .r14: return "__x86_indirect_thunk_r14"
        case .r15: return "__x86_indirect_thunk_r15"
        }
    }

    func detach(_ request: inout DetachRequest, slot: UnsafeMutablePointer<UnsafeMutableRawPointer?>) -> Int32 {
        guard let raw = slot.pointee else { return 0 }
        let started = kdbt_host_ktime_ns()
        let ts = raw.assumingMemoryBound(to: TakeoverState.self)
        let t = Translator(state: ts.pointee.translator)
        request.instructions = totalInstructions(ts)
        // From now on every exit and delivery is native; then nothing leads back in.
        KernelHost.setReturnIntoCache(false)
        let flags = kdbt_host_translator_lock_irqsave()
        ts.pointee.detaching = 1
        UnsafeMutablePointer<UInt8>(bitPattern: UInt(ts.pointee.detachFlag))!.pointee = 1
        t.unlinkAll()
        kdbt_host_translator_unlock_irqrestore(flags)
        kdbt_host_load_native()
        // No CPU is in the cache now; nothing may find this state any more.
        var cpu: UInt32 = 0
        while cpu < kdbt_host_cpu_ids() {
            if kdbt_host_cpu_possible(cpu) != 0 {
                kdbt_host_cpu_context(cpu).storeBytes(of: UInt64(0), toByteOffset: Int(ContextField.hostState), as: UInt64.self)
            }
            cpu += 1
        }
        if let kh = ts.pointee.heapCheck {
            // Every CPU is native now: the quarantine goes back to the allocator.
            kdbt_hc_set_active(0)
            HeapCheck.releaseAll(kh.pointee.state)
            KernelHeapCheck.destroy(kh, free: { freeArena($0) })
        }
        if let ring = ts.pointee.findings { KernelFindings.keep(ring) }
        freeArena(ts.pointee.arena)
        kdbt_host_takeover_free()
        slot.pointee = nil
        request.wasAttached = 1
        request.detachNanoseconds = kdbt_host_ktime_ns() &- started
        return 0
    }

    func totalInstructions(_ ts: UnsafeMutablePointer<TakeoverState>) -> UInt64 {
        guard ts.pointee.insCountOffset >= 0 else { return 0 }
        var total: UInt64 = 0
        var cpu: UInt32 = 0
        while cpu < kdbt_host_cpu_ids() {
            if kdbt_host_cpu_possible(cpu) != 0 {
                total &+= kdbt_host_cpu_context(cpu).load(fromByteOffset: Int(ts.pointee.insCountOffset), as: UInt64.self)
            }
            cpu += 1
        }
        return total
    }

    func cpuStats(_ request: inout CPUStatsRequest, takeover: UnsafeMutableRawPointer?) -> Int32 {
        guard request.cpu < kdbt_host_cpu_ids(), kdbt_host_cpu_possible(request.cpu) != 0 else { return -Errno.EINVAL }
        guard let raw = takeover else { return 0 }
        let ts = raw.assumingMemoryBound(to: TakeoverState.self)
        let c = kdbt_host_cpu_context(request.cpu)
        func word(_ field: Int32) -> UInt64 { c.load(fromByteOffset: Int(field), as: UInt64.self) }
        request.attached = 1
        request.syscalls = word(ContextField.syscallEntries)
        request.userInterrupts = word(ContextField.userInterrupts)
        request.kernelInterrupts = word(ContextField.kernelInterrupts)
        request.exceptions = word(ContextField.kernelExceptions)
        request.delayed = word(ContextField.delayedInterrupts)
        request.delayedDelivered = word(ContextField.delayedDelivered)
        request.userExceptions = word(ContextField.userExceptions)
        request.untranslatedFaults = word(ContextField.untranslatedFaults)
        request.invalidations = word(ContextField.invalidations)
        request.nativeFallbacks = word(ContextField.nativeFallbacks)
        if ts.pointee.insCountOffset >= 0 { request.instructions = word(ts.pointee.insCountOffset) }
        if let sg = ts.pointee.stackGuard {
            let marks = StackGuard.highWater(sg, cpu: Int(request.cpu))
            request.taskStackMinFree = marks.task
            request.irqStackMinFree = marks.irq
            request.exceptionStackMinFree = marks.exception
        }
        return 0
    }

    func profile(_ request: inout ProfileRequest, takeover: UnsafeMutableRawPointer?,
                 scratch: UnsafeMutableRawPointer) -> Int32 {
        guard let raw = takeover,
              let profile = raw.assumingMemoryBound(to: TakeoverState.self).pointee.insCountData?.pointee.profile
        else { return -Errno.ENOENT }
        // A snapshot of `used` (blocks translated meanwhile are in the next read).
        let used = profile.pointee.used
        request.total = UInt32(truncatingIfNeeded: used)
        request.overflow = profile.pointee.overflow
        let first = Int(request.first)
        let wanted = first < used ? min(Int(request.capacity), used - first) : 0
        let perPage = scratchBytes / ProfileRequest.entryBytes
        var done = 0
        while done < wanted {
            let chunk = min(perPage, wanted - done)
            let out = scratch.assumingMemoryBound(to: UInt64.self)
            for k in 0..<chunk {
                out[2 * k] = profile.pointee.blockStart[first + done + k]
                out[2 * k + 1] = profile.pointee.counters[first + done + k]
            }
            let to = request.buffer &+ UInt64(done * ProfileRequest.entryBytes)
            guard copyToUser(to, scratch, chunk * ProfileRequest.entryBytes) else { return -Errno.EFAULT }
            done += chunk
        }
        request.count = UInt32(wanted)
        return 0
    }

    func findings(_ request: inout FindingsRequest, takeover: UnsafeMutableRawPointer?) -> Int32 {
        let ring = takeover?.assumingMemoryBound(to: TakeoverState.self).pointee.findings
        return KernelFindings.serve(&request, ring, copyToUser: { copyToUser($0, $1, $2) })
    }

    func takeoverSummary(_ takeover: UnsafeMutableRawPointer?, into reply: inout StatusReply) {
        guard let raw = takeover else { return }
        let ts = raw.assumingMemoryBound(to: TakeoverState.self)
        let s = ts.pointee.translator.pointee.stats
        reply.blocks = s.blocks
        reply.cacheBytes = s.cacheBytes
        reply.nativeBytes = s.nativeBytes
        reply.attachedNanoseconds = kdbt_host_ktime_ns() &- ts.pointee.attachedAt
        reply.heapCheck.wrapFramesDropped = s.wrapFramesDropped
        reply.tools = ts.pointee.tools
        if let kh = ts.pointee.heapCheck { KernelHeapCheck.status(kh.pointee.state, into: &reply.heapCheck) }
    }
}

/// IDT gate fields (desc_defs.h: offset 0:15, selector, ist/type/dpl/p, offset
/// 16:31, offset 32:63, reserved).
enum Gate {
    static func target(_ gate: UnsafeMutableRawPointer) -> UInt64? {
        let bits = gate.load(fromByteOffset: 4, as: UInt16.self)
        guard bits & 0x8000 != 0 else { return nil }  // present
        let low = UInt64(gate.load(fromByteOffset: 0, as: UInt16.self))
        let mid = UInt64(gate.load(fromByteOffset: 6, as: UInt16.self))
        let high = UInt64(gate.load(fromByteOffset: 8, as: UInt32.self))
        return low | mid << 16 | high << 32
    }

    /// Interrupt gates on the ordinary stack, and #DB (stepping). NMI, #DF, #MC and
    /// #VC (IST stacks with nesting protocols of their own) stay native.
    static func takenOver(_ gate: UnsafeMutableRawPointer, vector: Int) -> Bool {
        let bits = gate.load(fromByteOffset: 4, as: UInt16.self)
        let ist = bits & 7
        let type = (bits >> 8) & 0xF
        guard type == 0xE else { return false }
        return ist == 0 || vector == 1
    }

    static func setTarget(_ gate: UnsafeMutableRawPointer, _ target: UInt64) {
        gate.storeBytes(of: UInt16(truncatingIfNeeded: target), toByteOffset: 0, as: UInt16.self)
        gate.storeBytes(of: UInt16(truncatingIfNeeded: target >> 16), toByteOffset: 6, as: UInt16.self)
        gate.storeBytes(of: UInt32(truncatingIfNeeded: target >> 32), toByteOffset: 8, as: UInt32.self)
    }
}

extension KernelHost {
    /// The syscall stub (its address is returned), the trap entry, and one stub per
    /// taken-over vector (addresses in `stubAddress`).
    func emitEntryStubs(_ t: Translator, _ ts: UnsafeMutablePointer<TakeoverState>, syscallEntry: UInt64,
                        nativeSyscall: UInt64) -> UInt64? {
        guard let u = t.unit(near: syscallEntry, bytes: 256 * 112 + 1024) else { return nil }
        var a = t.assembler(unit: u)
        func gs(_ field: Int32) -> AsmMemory { t.gs(field) }

        let flag = a.address
        a.u64(0)  // the detach flag (RWX pool memory)
        ts.pointee.detachFlag = flag
        a.align(16)

        // syscall: the user's rsp and GS; SFMASK cleared IF. Count, then go in.
        let syscallStub = a.address
        a.cmp(AsmMemory.rip(flag), imm8: 0)
        a.jcc(.ne, to: nativeSyscall)
        a.swapgs()
        a.inc(gs(ContextField.syscallEntries))
        a.jmp(to: syscallEntry)
        a.align(16)

        // The trap entry: [rsp] = vector, above it the hardware frame.
        let trapEntry = a.address
        var r = 15
        while r >= 0 { a.push(GPR(rawValue: UInt8(r))!); r -= 1 }  // [rsp + 8*i] = register i
        a.mov(.rbx, .rsp)
        a.and(.rsp, imm32: -16)
        a.mov(.rdi, .rbx)
        a.mov(.rax, imm64: UInt64(UInt(bitPattern: unsafeBitCast(kernelTrap, to: UnsafeRawPointer.self))))
        a.call(.rax)
        a.mov(.rsp, .rbx)
        r = 0
        while r < 16 {
            if r == Int(GPR.rsp.rawValue) { a.lea(.rsp, .at(.rsp, 8)) } else { a.pop(GPR(rawValue: UInt8(r))!) }
            r += 1
        }
        a.lea(.rsp, .at(.rsp, 8))  // the vector
        a.cmp(gs(ContextField.trapAction), imm8: 1)
        let toDeliver = a.count
        a.jcc(.e, to: a.address)
        let toSwitch = a.count
        a.jcc(.a, to: a.address)
        a.iretq()
        let deliver = a.address
        a.jmp(gs(ContextField.interruptTarget))
        let switchStack = a.address
        a.mov(.rsp, gs(ContextField.switchStack))
        a.jmp(gs(ContextField.interruptTarget))
        t.patchBranch(&a, at: toDeliver, opcodeBytes: 2, to: deliver)
        t.patchBranch(&a, at: toSwitch, opcodeBytes: 2, to: switchStack)
        a.align(16)

        var v = 0
        while v < 256 {
            let native = ts.pointee.nativeHandler[v]
            if native != 0 {
                ts.pointee.stubAddress[v] = a.address
                let csOffset: Int32 = hasErrorCode(UInt64(v)) ? 16 : 8
                a.testByte(.at(.rsp, csOffset), imm8: 3)
                let toUser = a.count
                a.jcc(.ne, to: a.address)
                if v == 1 {
                    // A #DB in kernel mode is ours while this CPU steps towards a
                    // delayed interrupt (in the cache, or just out of it).
                    a.cmp(gs(ContextField.stepping), imm8: 0)
                    a.jcc(.e, to: native)
                } else if v < 32 {
                    // An exception in kernel mode outside the cache (a native tail,
                    // perhaps with the user's GS) is the native handler's.
                    a.push(.rax)
                    a.push(.rcx)
                    a.mov(.rax, .at(.rsp, 16 + csOffset - 8))
                    a.mov(.rcx, imm64: ts.pointee.poolStart)
                    a.sub(.rax, .rcx)
                    a.mov(.rcx, imm64: ts.pointee.poolBytes)
                    a.cmp(.rax, .rcx)
                    a.pop(.rcx)
                    a.pop(.rax)
                    a.jcc(.ae, to: native)
                }
                a.push(imm32: Int32(v))
                a.jmp(to: trapEntry)
                t.patchBranch(&a, at: toUser, opcodeBytes: 2, to: a.address)
                let cached = ts.pointee.cacheHandler[v]
                if v == 1 || cached == 0 {
                    a.jmp(to: native)  // user-mode #DB (ptrace), or no translation
                } else {
                    // Detaching: the native handler (it does its own swapgs).
                    a.cmp(AsmMemory.rip(flag), imm8: 0)
                    a.jcc(.ne, to: native)
                    // The handler's own swapgs is dropped in translation.
                    a.swapgs()
                    a.inc(gs(v < 32 ? ContextField.userExceptions : ContextField.userInterrupts))
                    a.jmp(to: cached)
                }
                a.align(8)
            }
            v += 1
        }
        guard !a.failed, !a.outOfReach else { return nil }
        t.commit(unit: u, a)
        return syscallStub
    }
}

/// Drops every translation (links and lookup entries; fragments stay until detach
/// for CPUs still inside them): kernel text changed.
func invalidateTranslations(_ ts: UnsafeMutablePointer<TakeoverState>, _ context: UnsafeMutableRawPointer) {
    let flags = kdbt_host_translator_lock_irqsave()
    Translator(state: ts.pointee.translator).unlinkAll()
    kdbt_host_translator_unlock_irqrestore(flags)
    bump(context, ContextField.invalidations)
}

let patchBatchBegin: WrapHook = { _, data in
    data!.assumingMemoryBound(to: TakeoverState.self).pointee.patchBatchDepth &+= 1
}

let patchBatchEnd: WrapHook = { raw, data in
    let ts = data!.assumingMemoryBound(to: TakeoverState.self)
    ts.pointee.patchBatchDepth &-= 1
    invalidateTranslations(ts, WrapCall.from(raw).pointee.context)
}

let patchDone: WrapHook = { raw, data in
    let ts = data!.assumingMemoryBound(to: TakeoverState.self)
    if ts.pointee.patchBatchDepth == 0 { invalidateTranslations(ts, WrapCall.from(raw).pointee.context) }
}

/// A module's text is about to run (the shim's module notifier, natively): if
/// freed code at those addresses was ever translated, those translations are stale.
@_cdecl("kdbt_engine_module_changed")
public func kdbt_engine_module_changed(_ start: UInt64, _ bytes: UInt64) {
    let context = kdbt_host_this_cpu_context()
    let raw = word(context, ContextField.hostState)
    guard raw != 0, bytes > 0 else { return }
    let ts = UnsafeMutablePointer<TakeoverState>(bitPattern: UInt(raw))!
    let flags = kdbt_host_translator_lock_irqsave()
    let stale = Translator(state: ts.pointee.translator).hasFragments(from: start, to: start &+ bytes)
    kdbt_host_translator_unlock_irqrestore(flags)
    if stale { invalidateTranslations(ts, context) }
}

@inline(__always) private func word(_ context: UnsafeMutableRawPointer, _ field: Int32) -> UInt64 {
    context.load(fromByteOffset: Int(field), as: UInt64.self)
}

@inline(__always) private func setWord(_ context: UnsafeMutableRawPointer, _ field: Int32, _ value: UInt64) {
    context.storeBytes(of: value, toByteOffset: Int(field), as: UInt64.self)
}

@inline(__always) private func bump(_ context: UnsafeMutableRawPointer, _ field: Int32) {
    setWord(context, field, word(context, field) &+ 1)
}

@inline(__always) private func takeover(_ context: UnsafeMutableRawPointer) -> UnsafeMutablePointer<TakeoverState> {
    UnsafeMutablePointer<TakeoverState>(bitPattern: UInt(word(context, ContextField.hostState)))!
}

/// fcache_return's C entry in the kernel (interrupts off): the next cache PC, or a
/// native PC to leave the cache (detaching, or translation failed).
let kernelDispatch: @convention(c) (UnsafeMutableRawPointer) -> UInt64 = { context in
    let ts = takeover(context)
    let t = Translator(state: ts.pointee.translator)
    kdbt_host_translator_lock()
    let exit = t.exit(of: context)
    let iretFrame = exit.isIret
        ? UnsafeMutablePointer<UInt64>(bitPattern: UInt(word(context, ContextField.appRegister(.rsp))))! : nil
    // Only code that was being stepped (TF in the flags it left with) delivers
    // the delayed interrupt here. `stepping` stays set while an exception taken
    // during the stepping is handled (the CPU clears TF for its handler and its
    // iretq sets it again): delivering inside that handler would deliver where
    // its interrupts may be off.
    if word(context, ContextField.stepping) != 0 && word(context, ContextField.appFlags) & flagTF != 0 {
        // A delayed interrupt, and here the state is native: at the exit's target,
        // or (iretq) at the iretq itself, whose address the stub left. Deliver it
        // now rather than step on.
        kdbt_host_translator_unlock()
        let native = exit.isIret ? word(context, ContextField.indirectTarget) : exit.target
        let sp = word(context, ContextField.appRegister(.rsp))
        let flags = word(context, ContextField.appFlags)
        let frame = pushInterruptFrame(below: sp, rip: native, cs: kdbt_host_kernel_cs(), flags: flags,
                                       ss: kdbt_host_kernel_ss())
        setWord(context, ContextField.appRegister(.rsp), frame)
        setWord(context, ContextField.appFlags, flags & ~(flagTF | flagIF))
        return deliverDelayed(context, ts)
    }
    var next: UInt64
    if let frame = iretFrame {
        // Native-exit code stays native (kdbt's own functions are entered only
        // by calls: see emitReturnRoutine). A frame already in the cache (an
        // exception taken inside instrumentation) goes back there as it is.
        if frame[1] & 3 == 0 && ts.pointee.detaching == 0 && !isInPool(ts, exit.target) && !t.isNativeExit(exit.target) {
            let cachePC = t.translate(exit.target)
            if cachePC != 0 { frame[0] = cachePC } else { bump(context, ContextField.nativeFallbacks) }
        }
        next = t.state.pointee.iretRoutine
    } else if ts.pointee.detaching != 0 {
        next = exit.target
    } else {
        next = t.resume(at: exit.target, after: exit)
        if next == 0 {
            next = exit.target
            bump(context, ContextField.nativeFallbacks)
        }
    }
    kdbt_host_translator_unlock()
    return next
}

/// Writes the frame the CPU pushes for an interrupt in kernel mode (16-byte
/// aligned below `sp`; rip, cs, rflags with IF as it was when the interrupt
/// arrived, rsp, ss) and returns its address.
func pushInterruptFrame(below sp: UInt64, rip: UInt64, cs: UInt64, flags: UInt64, ss: UInt64) -> UInt64 {
    let at = (sp & ~15) &- 40
    let frame = UnsafeMutablePointer<UInt64>(bitPattern: UInt(at))!
    frame[0] = rip
    frame[1] = cs
    frame[2] = (flags & ~flagTF) | flagIF
    frame[3] = sp
    frame[4] = ss
    return at
}

/// Whether `pc` lies in the code pool (fragments, routines, entry stubs).
@inline(__always) func isInPool(_ ts: UnsafeMutablePointer<TakeoverState>, _ pc: UInt64) -> Bool {
    pc &- ts.pointee.poolStart < ts.pointee.poolBytes
}

/// Ends stepping and returns where the delayed interrupt's handler starts.
func deliverDelayed(_ context: UnsafeMutableRawPointer, _ ts: UnsafeMutablePointer<TakeoverState>) -> UInt64 {
    let pending = Int(word(context, ContextField.pendingSignal))
    setWord(context, ContextField.stepping, 0)
    setWord(context, ContextField.pendingSignal, 0)
    bump(context, ContextField.delayedDelivered)
    let cached = ts.pointee.cacheHandler[pending]
    return ts.pointee.detaching == 0 && cached != 0 ? cached : ts.pointee.nativeHandler[pending]
}

/// The trap handler, from the trap entry with interrupts off; `regs` holds the 16
/// registers, the vector, then the hardware frame. Tells the entry what to do next
/// through the context's trapAction: 0 iret, 1 jump to interruptTarget, 2 switch
/// to switchStack and jump to interruptTarget.
let kernelTrap: @convention(c) (UnsafeMutableRawPointer) -> Void = { raw in
    let regs = raw.assumingMemoryBound(to: UInt64.self)
    let context = kdbt_host_this_cpu_context()
    let ts = takeover(context)
    let t = Translator(state: ts.pointee.translator)
    let vector = regs[16]
    let frame = regs + 17 + (hasErrorCode(vector) ? 1 : 0)
    let rip = frame[0]
    let inCache = isInPool(ts, rip)

    func target(_ v: UInt64) -> UInt64 {
        let cached = ts.pointee.cacheHandler[Int(v)]
        return ts.pointee.detaching == 0 && cached != 0 ? cached : ts.pointee.nativeHandler[Int(v)]
    }
    func boundary() -> UInt64? {
        guard inCache else { return rip }
        kdbt_host_translator_lock()
        let native = t.nativeBoundary(at: rip)
        kdbt_host_translator_unlock()
        return native
    }
    /// Delivers the delayed interrupt at `native` with the frame the CPU would
    /// have pushed there, on the interrupted stack.
    func deliverDelayedHere(_ native: UInt64) {
        let sp = pushInterruptFrame(below: frame[3], rip: native, cs: frame[1], flags: frame[2], ss: frame[4])
        setWord(context, ContextField.switchStack, sp)
        setWord(context, ContextField.interruptTarget, deliverDelayed(context, ts))
        setWord(context, ContextField.trapAction, 2)
    }

    if vector == 1 {
        // Stepping towards a delayed interrupt (the stub checked `stepping`). Out
        // of the cache, every instruction is a native boundary.
        guard let native = boundary() else {
            setWord(context, ContextField.trapAction, 0)
            return
        }
        kdbt_host_clear_dr6()
        deliverDelayedHere(native)
        return
    }
    bump(context, vector < 32 ? ContextField.kernelExceptions : ContextField.kernelInterrupts)
    if inCache && word(context, ContextField.stepping) != 0 && frame[2] & flagTF != 0 && isRestartableFault(vector),
       let native = boundary() {
        // Stepping towards a delayed interrupt reached a native boundary in the
        // cache whose instruction faulted. The CPU takes a pending interrupt
        // before the instruction: deliver it here; the instruction runs, and
        // faults, after. (Faults in kdbt's own code, which runs with TF clear
        // while `stepping` stays set, are not this case.)
        deliverDelayedHere(native)
        return
    }
    if let native = boundary() {
        frame[0] = native
    } else if vector < 32 {
        // A fault inside instrumentation or mangling: no native state to show.
        bump(context, ContextField.untranslatedFaults)
    } else {
        // Mid-instrumentation: back with interrupts off, stepping to the next
        // native boundary, where the #DB stub delivers it.
        setWord(context, ContextField.pendingSignal, vector)
        setWord(context, ContextField.stepping, 1)
        frame[2] = (frame[2] & ~flagIF) | flagTF
        switch t.savedFlags(at: rip) {
        case .stackTop: UnsafeMutablePointer<UInt64>(bitPattern: UInt(frame[3]))!.pointee |= flagTF
        case .context: setWord(context, ContextField.appFlags, word(context, ContextField.appFlags) | flagTF)
        case nil: break
        }
        bump(context, ContextField.delayedInterrupts)
        setWord(context, ContextField.trapAction, 0)
        return
    }
    setWord(context, ContextField.interruptTarget, target(vector))
    setWord(context, ContextField.trapAction, 1)
}

#endif
